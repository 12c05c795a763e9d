// include/rlc/sample.h: next-token sampling, the specification. rlc_sample_token draws one token from one row of
// logits given a uniform number; the op table's sample_tokens entry (include/rlc/ops.h) does it for a batch of
// rows with the uniforms of the rollout's Philox stream (include/rlc/rng.h), on the backend that holds the logits.
// Definition: kernels/cpu/sample_cpu.c (the CPU twin of the batched entry calls it row by row).
#pragma once
#ifdef __cplusplus
extern "C" { // C linkage for ops.h's declarations too, whichever header a C++ file includes first
#endif
#include "rlc/ops.h"

typedef struct rlc_sampling {
    float temperature;  // > 0
    int top_k;          // 0 = off
    float top_p;        // 1 = off
    int greedy;         // 1: argmax (ties -> lowest id), no randomness
} rlc_sampling;

// Where one draw sits in the sampling stream: u = rlc_rng_uniform(seed, step, prompt_id, sample_id, position, 0).
typedef struct rlc_sample_key {
    int prompt_id, sample_id, position;
} rlc_sample_key;

// Sample one token from logits (V) given a uniform u in [0,1). With tau = temperature (1 when greedy) and
// p = softmax(logits / tau) in double:
//   greedy: the argmax (lowest id on ties);
//   else:   tokens ordered by p descending (id ascending on ties); keep the first top_k (top_k > 0); then the
//           shortest prefix whose cumulative p reaches top_p (top_p < 1); total = sum of the kept p; the token is
//           the first kept one whose cumulative p exceeds u * total.
// Writes the token's log-prob and the entropy of softmax(logits/tau) (the untruncated distribution the trainer
// recomputes) when non-NULL.
int rlc_sample_token(const rlc_f *logits, int V, const rlc_sampling *s, float u, float *logp, float *ent);

#ifdef __cplusplus
}
#endif
