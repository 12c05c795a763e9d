// tests/emu/test_common.h: helpers shared by the CUDA kernel tests whether they run under the emulator
// (tests/emu/, through emu_test.h) or on a GPU (tests/gpu/ includes some of the same test sources): a hash-based
// uniform for reproducible inputs, a host bf16 rounding written with integer operations (independent of the
// toolkit's conversions that the kernels use) and a death test that runs a function in a child process.
#pragma once
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <vector>

extern "C" {
#include "rlc/ops.h"
}
#include "test_util.h"

namespace rlc_test {

// Deterministic uniform in [-1, 1) from an index and a salt (a hash: the same data on every machine).
inline float hash_uniform(uint32_t i, uint32_t salt) {
    uint32_t x = i * 2654435761u + salt * 0x9e3779b9u + 0x7f4a7c15u;
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return (float)((double)x / 4294967296.0 * 2.0 - 1.0);
}

// Round to nearest even of an fp32 to bf16 bits: add 0x7fff plus the lowest kept bit, drop the low 16 bits (a
// tie goes to the even neighbour, overflow carries into the exponent up to infinity). NaN stays a quiet NaN.
inline uint16_t bf16_rne(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
// bf16 bits widened to fp32 (exact).
inline float bf16_widen(uint16_t b) {
    const uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
// x rounded to the nearest bf16, as an fp32.
inline float bf16_round(float x) { return bf16_widen(bf16_rne(x)); }

// Runs fn in a child process; passes if the child fails (non-zero exit or signal) and its stderr contains
// needle. The first lines of the child's stderr are echoed so the log shows the message.
inline void expect_death(const char *what, const std::function<void()> &fn, const char *needle) {
    fflush(stdout);
    fflush(stderr);
    int fds[2];
    if (pipe(fds) != 0) {
        CHECK(0, "%s: pipe failed", what);
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        fn();
        fflush(stderr);
        _exit(0);
    }
    close(fds[1]);
    std::string err;
    char buf[4096];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof buf)) > 0) err.append(buf, (size_t)n);
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    bool failed = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    bool found = err.find(needle) != std::string::npos;
    // Echo only the first lines of the child's report (sanitizer reports are long).
    size_t cut = 0;
    for (int lines = 0; lines < 6 && cut != std::string::npos; lines++) cut = err.find('\n', cut + 1);
    printf("  [%s] child %s; stderr: %s%s\n", what, failed ? "failed as expected" : "exited 0",
           err.substr(0, cut == std::string::npos ? err.size() : cut).c_str(), cut == std::string::npos ? "" : " ...");
    CHECK(failed && found, "%s: expected the child to fail with \"%s\" (failed=%d)", what, needle, (int)failed);
}

// Copies through an op table (so that alloc, upload and download are exercised by every test that uses them): a
// backend copy of h (one spare element, so that an empty vector still gives a valid pointer) and n elements back.
template <class T> inline T *to_backend(const rlc_ops *o, const std::vector<T> &h) {
    T *d = (T *)o->alloc((h.size() + 1) * sizeof(T));
    o->upload(d, h.data(), h.size() * sizeof(T));
    return d;
}
template <class T> inline std::vector<T> from_backend(const rlc_ops *o, const T *d, size_t n) {
    std::vector<T> h(n);
    o->download(h.data(), d, n * sizeof(T));
    return h;
}

} // namespace rlc_test
