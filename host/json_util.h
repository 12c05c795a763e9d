// host/json_util.h: JSON helpers shared by the config, checkpoint and repro writers (host-internal).
#pragma once
#include <cjson/cJSON.h>

// Shortest decimal that reads back as the same float, kept a float in JSON ("1e-05", "10000.0"), so that
// readers that check the type (HF config.json) see a float.
cJSON *rlc_json_float(float v);

// cJSON prints a number with 15 significant digits whenever that reads back within a relative DBL_EPSILON, which
// is not exact: 9007199254740991 prints as 9.00719925474099e+15 (...990). Every number under o (recursively) that
// 15 digits do not reproduce exactly becomes a raw "%.17g" item, so that printing o loses nothing.
void rlc_json_exact_numbers(cJSON *o);
// cJSON_PrintUnformatted of a copy of item (itself a number, or holding numbers) with rlc_json_exact_numbers
// applied; free with cJSON_free.
char *rlc_json_print_exact(const cJSON *item);

// o printed (indented) as a file's text with a final newline, then deleted; free the text with free().
char *rlc_json_take_text(cJSON *o);

// The first member, anywhere under o, whose name repeats an earlier member of the same object (NULL when none).
// JSON leaves the meaning of duplicate names open and cJSON's lookups take the first: every reader refuses them.
const cJSON *rlc_json_duplicate(const cJSON *o);
