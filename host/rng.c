// host/rng.c: Philox4x32 (Salmon, Moraes, Dror, Shaw: "Parallel random numbers: as easy as 1, 2, 3", SC'11)
// and the two keyed streams the engine uses (layouts documented in include/rlc/rng.h).
#include "rlc/rng.h"

// Round multipliers and key-schedule (Weyl) increments of Philox4x32.
#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u // golden ratio
#define PHILOX_W1 0xBB67AE85u // sqrt(3) - 1

static inline void mulhilo32(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo) {
    uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

void rlc_philox4x32_r(int rounds, const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int r = 0; r < rounds; r++) {
        if (r > 0) { // the key is bumped before every round but the first
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        uint32_t hi0, lo0, hi1, lo1;
        mulhilo32(PHILOX_M0, c0, &hi0, &lo0);
        mulhilo32(PHILOX_M1, c2, &hi1, &lo1);
        uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
        c0 = n0;
        c1 = n1;
        c2 = n2;
        c3 = n3;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

void rlc_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    rlc_philox4x32_r(10, ctr, key, out);
}

float rlc_rng_uniform(uint64_t seed, uint64_t step, uint64_t prompt_id, uint64_t sample_id, uint64_t position,
                      int k) {
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t kk = (uint32_t)k & (RLC_RNG_MAX_K - 1);
    uint32_t ctr[4] = {(uint32_t)step, (uint32_t)prompt_id, (uint32_t)sample_id,
                       ((kk >> 2) << 24) | ((uint32_t)position & 0xffffffu)};
    uint32_t out[4];
    rlc_philox4x32(ctr, key, out);
    // top 24 bits -> exactly representable in a float, so u < 1 always holds
    return (float)(out[kk & 3] >> 8) * (1.0f / 16777216.0f);
}

uint64_t rlc_rng_u64(uint64_t seed, uint64_t stream, uint64_t index) {
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t ctr[4] = {(uint32_t)index, (uint32_t)(index >> 32), (uint32_t)stream,
                       0x80000000u | ((uint32_t)(stream >> 32) & 0x7fffffffu)};
    uint32_t out[4];
    rlc_philox4x32(ctr, key, out);
    return (uint64_t)out[0] | ((uint64_t)out[1] << 32);
}

uint64_t rlc_rng_next_u64(rlc_rng_stream *s) { return rlc_rng_u64(s->seed, s->stream, s->index++); }

uint64_t rlc_rng_next_below(rlc_rng_stream *s, uint64_t n) { return n <= 1 ? 0 : rlc_rng_next_u64(s) % n; }

int64_t rlc_rng_next_range(rlc_rng_stream *s, int64_t lo, int64_t hi) {
    return lo + (int64_t)rlc_rng_next_below(s, (uint64_t)(hi - lo) + 1);
}

double rlc_rng_next_double(rlc_rng_stream *s) { return (double)(rlc_rng_next_u64(s) >> 11) * (1.0 / 9007199254740992.0); }
