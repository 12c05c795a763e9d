// include/rlc/strbuf.h: a growable NUL-terminated string (printf-style appends), for the text that `rlc repro`
// writes (markdown, CSV, SVG).
#pragma once
#include <stddef.h>

typedef struct rlc_sb {
    char *s;        // the text (NULL until the first append)
    size_t n, cap;  // length without the NUL, allocated bytes
} rlc_sb;

// Append formatted text (aborts on allocation failure, like rlc_malloc).
void rlc_sb_printf(rlc_sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Append s with the XML special characters (& < > " ') escaped.
void rlc_sb_xml(rlc_sb *b, const char *s);
// The text, handed over to the caller (free it); the buffer is left empty. Never NULL.
char *rlc_sb_take(rlc_sb *b);
void rlc_sb_free(rlc_sb *b);
