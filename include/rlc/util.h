// include/rlc/util.h: small shared helpers: fatal errors with file and line, checked allocation, whole-file
// reads, wall-clock time.
#pragma once
#include <stddef.h>
#include <stdio.h>

#define RLC_FATAL(...) rlc_fatal(__FILE__, __LINE__, __VA_ARGS__)
#define RLC_CHECK(cond, ...)                      \
    do {                                          \
        if (!(cond)) RLC_FATAL(__VA_ARGS__);      \
    } while (0)

// Print "rlc: file:line: message" to stderr and exit(1).
_Noreturn void rlc_fatal(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
// malloc/calloc that abort with the byte count on failure.
void *rlc_malloc(size_t bytes);
void *rlc_calloc(size_t n, size_t size);
// Read a whole file into a NUL-terminated malloc'd buffer; returns NULL (errno set) on failure.
char *rlc_read_file(const char *path, size_t *len_out);
// rlc_read_file for a JSON text named `what` ("config", "repro config", ...): NULL with "<path>: cannot read
// <what>: <reason>" or, when the file holds a NUL byte (the parser would stop there and never see the rest),
// "<path>: <what> contains a NUL byte at byte N (not a JSON text file)" in err.
char *rlc_read_text(const char *path, const char *what, char *err, size_t errlen);
// Monotonic wall-clock seconds.
double rlc_now(void);
// snprintf into err (may be NULL) and return -1: `return rlc_errf(err, n, "...", ...)`.
int rlc_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
