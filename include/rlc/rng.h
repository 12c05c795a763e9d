// include/rlc/rng.h: counter-based random numbers (Philox4x32-10, Salmon et al., SC'11). Every number is a
// pure function of (key, counter): there is no generator state to carry, so a draw does not depend on the
// order of calls or on which other sequences share a batch, and the CUDA backend computes the same numbers
// from the same formula.
//
// Layouts (the CUDA port must reproduce them exactly):
//   key     = (seed & 0xffffffff, seed >> 32)                                    for both streams below.
//   Sampling stream, rlc_rng_uniform(seed, step, prompt_id, sample_id, position, k):
//     counter = (step, prompt_id, sample_id, (k >> 2) << 24 | position)   (low 32 bits of step/prompt/sample)
//     word    = out[k & 3];  u = (word >> 8) * 2^-24                      (24-bit mantissa, u in [0, 1))
//     Requires position < 2^24 and k < RLC_RNG_MAX_K (= 512), which keeps the counter's top bit 0.
//   Sequential stream, rlc_rng_u64(seed, stream, index):
//     counter = (index lo, index hi, stream lo, 0x80000000 | (stream hi & 0x7fffffff))
//     value   = out[0] | (uint64)out[1] << 32
//     The counter's top bit is 1 here, so the two streams never share a Philox block.
#pragma once
#include <stdint.h>

#define RLC_RNG_MAX_K 512

// Philox4x32 with `rounds` rounds (10 is the standard; 7 is exposed for the published 7-round vectors).
// Word 0 of ctr/out is the "low" word of the published test vectors.
void rlc_philox4x32_r(int rounds, const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);
// Philox4x32-10.
void rlc_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

// Uniform float in [0, 1) for draw k at one sampling position (layout above).
float rlc_rng_uniform(uint64_t seed, uint64_t step, uint64_t prompt_id, uint64_t sample_id, uint64_t position,
                      int k);

// 64 random bits: element `index` of stream `stream` (layout above).
uint64_t rlc_rng_u64(uint64_t seed, uint64_t stream, uint64_t index);

// A cursor over one sequential stream, for code that wants "the next number" (task generators). It is plain
// data owned by the caller: copying it forks the sequence, nothing is global.
typedef struct rlc_rng_stream {
    uint64_t seed, stream, index;
} rlc_rng_stream;

static inline rlc_rng_stream rlc_rng_stream_init(uint64_t seed, uint64_t stream) {
    rlc_rng_stream s = {seed, stream, 0};
    return s;
}
uint64_t rlc_rng_next_u64(rlc_rng_stream *s);
// Uniform integer in [0, n) (n >= 1; modulo bias is below n / 2^64, negligible for the small n used here).
uint64_t rlc_rng_next_below(rlc_rng_stream *s, uint64_t n);
// Uniform integer in [lo, hi] (inclusive; lo <= hi).
int64_t rlc_rng_next_range(rlc_rng_stream *s, int64_t lo, int64_t hi);
// Uniform double in [0, 1) with 53 random bits.
double rlc_rng_next_double(rlc_rng_stream *s);
