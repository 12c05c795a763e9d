// host/util.c: fatal errors, checked allocation, file reads, timing (see include/rlc/util.h).
#define _POSIX_C_SOURCE 200809L
#include "rlc/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void rlc_fatal(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "rlc: %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

void *rlc_malloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) RLC_FATAL("out of memory: malloc of %zu bytes failed", bytes);
    return p;
}

void *rlc_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) RLC_FATAL("out of memory: calloc of %zu x %zu bytes failed", n, size);
    return p;
}

char *rlc_read_file(const char *path, size_t *len_out) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = rlc_malloc(cap);
    for (;;) {
        if (len + 1 >= cap) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - 1 - len, f);
        len += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    buf[len] = 0;
    if (len_out) *len_out = len;
    return buf;
}

char *rlc_read_text(const char *path, const char *what, char *err, size_t errlen) {
    size_t len = 0;
    char *text = rlc_read_file(path, &len);
    if (!text) {
        rlc_errf(err, errlen, "%s: cannot read %s: %s", path, what, strerror(errno));
        return NULL;
    }
    const size_t nul = strlen(text);
    if (nul != len) {
        free(text);
        rlc_errf(err, errlen, "%s: %s contains a NUL byte at byte %zu (not a JSON text file)", path, what, nul);
        return NULL;
    }
    return text;
}

double rlc_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int rlc_errf(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}
