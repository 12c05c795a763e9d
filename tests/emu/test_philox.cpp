// tests/emu/test_philox.cpp: the device Philox (kernels/cuda/philox.h) against host/rng.c, bitwise, computed in a
// kernel. Under the emulator (ctest label emu) in the three schedule orders (bitwise-identical outputs required);
// built for a GPU (tests/gpu/test_philox.cpp includes this file) on the device, twice, with more keys.
// Checks: rlc_philox4x32_10 = rlc_philox4x32 on random counters and keys (all four words) and on the published
// 10-round vectors; rlc_philox_uniform = rlc_rng_uniform on random sampling keys: 64-bit seeds and steps, prompt
// and sample ids past 2^32 (the layout keeps the low 32 bits), positions past 2^24 and draws k past 512 or
// negative (masked); and, so that the comparison can fail, the same uniforms under a wrong key (step + 1) must
// differ almost everywhere.
#include <stdint.h>
#include <string.h>

#include <functional>
#include <string>
#include <vector>

#include "philox.h"
#include "rlc_cuda.h"
#include "test_util.h"
#ifdef RLC_EMU
#include "emu_test.h"
#endif

#ifdef RLC_EMU
using Outputs = emu_test::Outputs;
static void run_case(const char *name, const std::function<void(Outputs &)> &body) {
    emu_test::run_all_schedules(name, body);
}
#else
struct Outputs {
    std::vector<std::vector<unsigned char>> items;
    template <class T> void add(const char *, const std::vector<T> &v) {
        const unsigned char *b = (const unsigned char *)v.data();
        items.emplace_back(b, b + v.size() * sizeof(T));
    }
};
static void run_case(const char *name, const std::function<void(Outputs &)> &body) {
    Outputs a, b;
    body(a);
    body(b);
    CHECK(a.items == b.items, "%s: two runs differ", name);
}
#endif

template <class T> static T *to_dev(const std::vector<T> &h) {
    T *d = nullptr;
    RLC_CUDA_CHECK(cudaMalloc((void **)&d, h.size() * sizeof(T)));
    RLC_CUDA_CHECK(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
    return d;
}

// One thread per key: the raw words of (ctr, key) (6 words in, 4 out) and the uniform of a sampling key (6 u64).
__global__ void philox_words_kernel(uint32_t *out, const uint32_t *in, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    rlc_philox4x32_10(in + 6 * (size_t)i, in + 6 * (size_t)i + 4, out + 4 * (size_t)i);
}
__global__ void philox_uniform_kernel(float *u, const uint64_t *keys, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const uint64_t *k = keys + 6 * (size_t)i;
    u[i] = rlc_philox_uniform(k[0], k[1], k[2], k[3], k[4], (int)(int64_t)k[5]);
}

struct Mix { // splitmix64
    uint64_t s;
    uint64_t next() {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
};

static void test_words(int n) {
    // the published Random123 10-round vectors first, then random counters and keys
    const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d, 0x41c83b0e, 0xa20bc7c6,
         0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb, 0x5001e420,
         0x24126ea1}};
    Mix r{1};
    std::vector<uint32_t> in((size_t)6 * n), want((size_t)4 * n);
    for (int i = 0; i < n; i++) {
        for (int w = 0; w < 6; w++) in[(size_t)6 * i + w] = i < 3 ? kat[i][w] : (uint32_t)r.next();
        rlc_philox4x32(&in[(size_t)6 * i], &in[(size_t)6 * i + 4], &want[(size_t)4 * i]);
        if (i < 3)
            for (int w = 0; w < 4; w++) CHECK(want[(size_t)4 * i + w] == kat[i][6 + w], "host/rng.c vector %d", i);
    }
    char name[64];
    snprintf(name, sizeof name, "philox4x32-10 words n=%d", n);
    run_case(name, [&](Outputs &o) {
        uint32_t *din = to_dev(in), *dout = to_dev(std::vector<uint32_t>((size_t)4 * n, 0));
        RLC_LAUNCH(philox_words_kernel, (n + 127) / 128, 128, 0, 0, dout, din, n);
        RLC_CUDA_CHECK(cudaGetLastError());
        std::vector<uint32_t> got((size_t)4 * n);
        RLC_CUDA_CHECK(cudaMemcpy(got.data(), dout, got.size() * sizeof(uint32_t), cudaMemcpyDeviceToHost));
        size_t bad = 0;
        for (size_t i = 0; i < got.size(); i++) bad += got[i] != want[i];
        CHECK(bad == 0, "%s: %zu of %zu words differ from rlc_philox4x32", name, bad, got.size());
        printf("  %-40s %zu words bitwise equal\n", name, got.size() - bad);
        o.add("words", got);
        RLC_CUDA_CHECK(cudaFree(din));
        RLC_CUDA_CHECK(cudaFree(dout));
    });
}

static void test_uniforms(int n) {
    Mix r{0xC0FFEE};
    std::vector<uint64_t> keys((size_t)6 * n);
    std::vector<float> want(n), wrong(n);
    for (int i = 0; i < n; i++) {
        uint64_t *k = &keys[(size_t)6 * i];
        k[0] = r.next();                                               // seed: 64 bits
        k[1] = i % 4 == 0 ? r.next() : r.next() % 1000;                // step: small, or past 2^32 (truncated)
        k[2] = i % 5 == 0 ? r.next() : r.next() % 100000;              // prompt id
        k[3] = i % 7 == 0 ? r.next() : r.next() % 64;                  // sample id
        k[4] = i % 3 == 0 ? r.next() % (1ull << 26) : r.next() % 4096; // position, also past 2^24 (masked)
        const int kk = i % 11 == 0 ? (int)(r.next() % 2000) - 1000 : (int)(r.next() % 512); // draw: also masked
        k[5] = (uint64_t)(int64_t)kk;
        want[i] = rlc_rng_uniform(k[0], k[1], k[2], k[3], k[4], kk);
        wrong[i] = rlc_rng_uniform(k[0], k[1] + 1, k[2], k[3], k[4], kk);
    }
    char name[64];
    snprintf(name, sizeof name, "sampling uniforms n=%d", n);
    run_case(name, [&](Outputs &o) {
        uint64_t *dk = to_dev(keys);
        float *du = to_dev(std::vector<float>(n, -1.0f));
        RLC_LAUNCH(philox_uniform_kernel, (n + 127) / 128, 128, 0, 0, du, dk, n);
        RLC_CUDA_CHECK(cudaGetLastError());
        std::vector<float> got(n);
        RLC_CUDA_CHECK(cudaMemcpy(got.data(), du, (size_t)n * sizeof(float), cudaMemcpyDeviceToHost));
        int bad = 0, differ_wrong = 0;
        for (int i = 0; i < n; i++) {
            if (memcmp(&got[i], &want[i], sizeof(float)) != 0 && bad++ < 5)
                CHECK(0, "key %d: device %.9g host %.9g", i, got[i], want[i]);
            differ_wrong += memcmp(&got[i], &wrong[i], sizeof(float)) != 0;
            CHECK(got[i] >= 0.0f && got[i] < 1.0f, "uniform %d = %g outside [0, 1)", i, got[i]);
        }
        CHECK(bad == 0, "%s: %d of %d uniforms differ from rlc_rng_uniform", name, bad, n);
        // planted bug: a wrong key must be seen (2^-24 chance per draw to agree by accident)
        CHECK(differ_wrong >= n - n / 1000 - 1, "%s: only %d of %d uniforms differ under a wrong key", name,
              differ_wrong, n);
        printf("  %-40s %d bitwise equal; a wrong step changes %d of them\n", name, n - bad, differ_wrong);
        o.add("u", got);
        RLC_CUDA_CHECK(cudaFree(dk));
        RLC_CUDA_CHECK(cudaFree(du));
    });
}

int main() {
#ifdef RLC_EMU
    test_words(5000);
    test_uniforms(20000);
#else
    test_words(1 << 20);
    test_uniforms(1 << 22);
#endif
    return test_finish("test_philox");
}
