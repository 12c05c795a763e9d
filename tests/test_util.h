// tests/test_util.h: tiny assertion helpers shared by the C tests. A failed CHECK prints file:line and
// counts; test_finish() exits non-zero if anything failed.
#pragma once
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int test_failures = 0;
static int test_checks = 0;

#define CHECK(cond, ...)                                                                 \
    do {                                                                                 \
        test_checks++;                                                                   \
        if (!(cond)) {                                                                   \
            test_failures++;                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                                \
            fprintf(stderr, "\n");                                                       \
        }                                                                                \
    } while (0)

// |a-b| <= atol + rtol*|b|
#define CHECK_CLOSE(a, b, atol, rtol, what)                                              \
    do {                                                                                 \
        double a_ = (double)(a), b_ = (double)(b);                                       \
        CHECK(isfinite(a_) && fabs(a_ - b_) <= (atol) + (rtol) * fabs(b_),               \
              "%s: got %.9g expected %.9g", (what), a_, b_);                             \
    } while (0)

static inline int test_finish(const char *name) {
    if (test_checks == 0) {
        fprintf(stderr, "%s: no checks ran\n", name);
        return 1;
    }
    printf("%s: %d checks, %d failed\n", name, test_checks, test_failures);
    return test_failures ? 1 : 0;
}
