// tests/test_util.h: tiny helpers shared by the C tests. A failed CHECK prints file:line and counts;
// test_finish() exits non-zero if anything failed; test_rm_tree() removes a test's scratch tree.
#pragma once
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

// rm -r for the small trees a test creates (no error when p does not exist).
static inline void test_rm_tree(const char *p) {
    struct stat sb;
    if (lstat(p, &sb) != 0) return;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(p);
        for (struct dirent *e; d && (e = readdir(d));) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char q[1024];
            if (snprintf(q, sizeof q, "%s/%s", p, e->d_name) < (int)sizeof q) test_rm_tree(q); // never a cut path
        }
        if (d) closedir(d);
        rmdir(p);
    } else {
        unlink(p);
    }
}
