// kernels/cuda/sample.h: next-token sampling on the GPU (implementation: sample.cu; CPU twin: rlc_sample_token and
// the sample_tokens entry of include/rlc/ops.h, kernels/cpu/sample_cpu.c). The uniforms come from philox.h.
// Device pointers; `stream` a cudaStream_t (NULL = default). Nothing allocates or synchronises. Deterministic: the
// only atomics add integers, so results do not depend on the schedule. Functions return 0, or -1 with a message
// on stderr (a failed launch or a bad argument).
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// One block per row i < n of logits (row stride ld floats; 0: every row reads the same V logits). With tau =
// temperature (1 when greedy) and u_i = rlc_rng_uniform(seed, step, keys[3i], keys[3i+1], keys[3i+2], 0):
//   tok[i]  = rlc_sample_token's token: greedy: the argmax, lowest id on ties; else tokens ordered by logit
//             descending (= probability descending), id ascending on ties; the first top_k kept (top_k > 0), then
//             the shortest prefix whose cumulative probability reaches top_p (top_p < 1); the first kept token whose
//             cumulative probability exceeds u_i times the kept total.
//   logp[i] = log-prob of tok[i] under the full softmax(logits / tau), ent[i] = its entropy (double statistics,
//             as the CPU's, summed in another order).
// How: the max pass, then one pass for the softmax statistics that also builds a histogram of the top 10 bits of
// an order-preserving integer key of each logit, holding (count, mass) per bin, mass a 64-bit fixed-point
// exp((z - max)/tau) (exact integer sums: no rounding depends on the order of the atomics). Each "first position
// in sorted order where the cumulative count / mass reaches a threshold" (the top-k cut, the top-p cut, the
// draw) descends the key's bits 10 + 11 + 11 with one histogram pass per level over the logits that match the
// prefix found so far; logits with equal keys are equal, so the cut among them is arithmetic, and the token is
// the lowest id among them or, when the cut is deeper, found by one ordered scan. No sort: at most 9 passes over
// the row for any V (2 for greedy; 4, or 5 when the draw lands inside a run of equal logits, for plain temperature
// sampling; 2 more for each of top-k and top-p).
// Differences from the CPU: the masses are rounded to 2^-(shift+1) of the largest probability (shift = 62 -
// ceil(log2 V): 2^-45 for V = 151936) and the CPU sums doubles in sorted order, so a token can differ only where
// u * total (or top_p) lies within V * 2^-(shift+1) of the largest probability (4e-9 of it for V = 151936, 4e-12 for
// V = 5000) plus double rounding of a cumulative boundary. logits must be finite (-inf allowed); temperature > 0
// unless greedy. keys (n, 3) device ints: prompt id, sample id, position.
int rlc_cuda_sample_tokens(int *tok, float *logp, float *ent, const float *logits, size_t ld, int n, int V,
                           float temperature, int top_k, float top_p, int greedy, const int *keys, uint64_t seed,
                           uint64_t step, void *stream);

// Tests and benchmarks only: the kernel variant (sample.cu's header; the same tokens): 0 (the default), 256-thread
// blocks reading the row from global memory every pass; 1, 1024-thread blocks that keep the row's first 40960
// logits in shared memory. Returns 0, or -1 for another v.
int rlc_cuda_sample_set_variant(int v);

#ifdef __cplusplus
}
#endif
