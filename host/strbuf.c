// host/strbuf.c: growable strings (see include/rlc/strbuf.h).
#include "rlc/strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rlc/util.h"

static void sb_reserve(rlc_sb *b, size_t extra) {
    if (b->n + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra + 1) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) RLC_FATAL("out of memory growing a string to %zu bytes", cap);
    b->s = s;
    b->cap = cap;
}

void rlc_sb_printf(rlc_sb *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need < 0) return;
    sb_reserve(b, (size_t)need);
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, (size_t)need + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)need;
}

void rlc_sb_xml(rlc_sb *b, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': rlc_sb_printf(b, "&amp;"); break;
        case '<': rlc_sb_printf(b, "&lt;"); break;
        case '>': rlc_sb_printf(b, "&gt;"); break;
        case '"': rlc_sb_printf(b, "&quot;"); break;
        case '\'': rlc_sb_printf(b, "&apos;"); break;
        default:
            // control characters other than tab/newline are not allowed in XML 1.0
            if ((unsigned char)*s < 0x20 && *s != '\t' && *s != '\n') rlc_sb_printf(b, " ");
            else rlc_sb_printf(b, "%c", *s);
        }
    }
}

char *rlc_sb_take(rlc_sb *b) {
    if (!b->s) sb_reserve(b, 0), b->s[0] = 0;
    char *s = b->s;
    memset(b, 0, sizeof *b);
    return s;
}

void rlc_sb_free(rlc_sb *b) {
    free(b->s);
    memset(b, 0, sizeof *b);
}
