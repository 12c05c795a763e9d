// host/json_util.h: JSON helpers shared by the config and checkpoint writers (host-internal).
#pragma once
#include <cjson/cJSON.h>

// Shortest decimal that reads back as the same float, kept a float in JSON ("1e-05", "10000.0"), so that
// readers that check the type (HF config.json) see a float.
cJSON *rlc_json_float(float v);
