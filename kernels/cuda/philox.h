// kernels/cuda/philox.h: Philox4x32-10 and the sampling stream's uniform as __host__ __device__ functions, so a
// kernel draws exactly the numbers of host/rng.c (rlc_philox4x32, rlc_rng_uniform) from the same key; the
// counter / key layout and the float conversion are specified in include/rlc/rng.h. Pure integer arithmetic (the
// 32x32 -> 64-bit products compile to mul.lo / mul.hi on the device), so there is nothing to round differently.
// tests/emu/test_philox.cpp checks bitwise equality with the CPU in a kernel (and tests/gpu/test_philox.cpp on a GPU).
#pragma once
#include <stdint.h>

#include "rlc_cuda.h"
extern "C" {
#include "rlc/rng.h" // RLC_RNG_MAX_K
}

// The round multipliers and Weyl key increments of host/rng.c.
#define RLC_PHILOX_M0 0xD2511F53u
#define RLC_PHILOX_M1 0xCD9E8D57u
#define RLC_PHILOX_W0 0x9E3779B9u
#define RLC_PHILOX_W1 0xBB67AE85u

// out = Philox4x32-10(ctr, key); word 0 is the "low" word, as in rlc_philox4x32.
__host__ __device__ inline void rlc_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        if (r > 0) { // the key is bumped before every round but the first
            k0 += RLC_PHILOX_W0;
            k1 += RLC_PHILOX_W1;
        }
        const uint64_t p0 = (uint64_t)RLC_PHILOX_M0 * c0, p1 = (uint64_t)RLC_PHILOX_M1 * c2;
        const uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0, hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

// rlc_rng_uniform: draw k at one sampling position; a float in [0, 1) with 24 random bits.
__host__ __device__ inline float rlc_philox_uniform(uint64_t seed, uint64_t step, uint64_t prompt_id,
                                                    uint64_t sample_id, uint64_t position, int k) {
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    const uint32_t kk = (uint32_t)k & (RLC_RNG_MAX_K - 1);
    const uint32_t ctr[4] = {(uint32_t)step, (uint32_t)prompt_id, (uint32_t)sample_id,
                             ((kk >> 2) << 24) | ((uint32_t)position & 0xffffffu)};
    uint32_t out[4];
    rlc_philox4x32_10(ctr, key, out);
    // selects instead of out[kk & 3]: a run-time index would put out[] in local memory on the device
    const uint32_t j = kk & 3, w = j == 0 ? out[0] : j == 1 ? out[1] : j == 2 ? out[2] : out[3];
    return (float)(w >> 8) * (1.0f / 16777216.0f); // exact: 24 bits fit a float's mantissa
}
