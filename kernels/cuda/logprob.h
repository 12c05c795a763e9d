// kernels/cuda/logprob.h: the fused LM-head log-prob / entropy op on the GPU (implementation: logprob.cu;
// formulas: ../shared/spec/losses.md section 1; CPU twin: rlc_ops_cpu()->logprob_forward / logprob_backward,
// kernels/cpu/logprob_cpu.c). With u = (hidden @ w^T) / tau for each token (row) over the vocabulary:
//   lse = logsumexp(u), logp = u[target] - lse (0 where target < 0), entropy H = lse - sum_j p_j u_j.
// The vocabulary is walked in chunks of (t_chunk tokens x v_chunk columns): one bf16 GEMM (rlc_blas.h) per
// chunk into an fp32 scratch, then a kernel that folds the chunk into per-token online statistics (running
// max, sum of exponentials, sum of p*u), so the extra memory is one chunk, never T x V.
// Backward (per-token coefficients c = dL/dlogp, e = dL/dH): each chunk's logits are recomputed, turned into
//   dz_j = (c (1[j==y] - p_j) - e p_j (log p_j + H)) / tau
// in place as bf16 (the GEMM's input type), then dhidden += dz @ w and dw += dz^T @ hidden (fp32 outputs).
//
// Conventions: device pointers; hidden (T,C) and w (V,C) are bf16 (__nv_bfloat16) row-major; logp, entropy,
// lse, dlogp, dent (T) fp32; targets (T) int; dhidden (T,C) and dw (V,C) fp32, accumulated. Any C >= 1
// (no multiple-of-8 requirement; cuBLAS picks slower kernels when rows are not 16-byte aligned). `stream` is a
// cudaStream_t; the blas handle is switched to it. Nothing is allocated: the caller passes `workspace` of
// rlc_cuda_logprob_workspace_bytes(), 16-byte aligned. Chunk sizes <= 0 take the defaults (RLC_LP_T_CHUNK x
// RLC_LP_V_CHUNK, clipped to T and V). Deterministic: fixed-order reductions, no atomics; the GEMMs are cuBLAS's (bitwise
// reproducible on one GPU model). Returns 0, or -1 with a message on stderr.
#pragma once
#include <stddef.h>

#include "rlc_blas.h"

#define RLC_LP_T_CHUNK 4096 // default tokens per chunk
#define RLC_LP_V_CHUNK 8192 // default vocabulary columns per chunk (scratch: 4096 x 8192 x 4 B = 128 MiB)

#ifdef __cplusplus
extern "C" {
#endif

// Kernel variants of the statistics and dz kernels (logprob.cu's header), for benchmarking
// (bench_logprob_gpu --variants): 0, the default, streams each row in batches with 8 loads in flight per thread;
// 1 is the first version (an online state updated per element). The environment variable RLC_LP_VARIANT
// overrides the default (read at the first call); set_variant overrides both. Both compute the same function
// within the tolerances of tests/emu/test_logprob.cpp.
int rlc_cuda_logprob_variant_count(void);
const char *rlc_cuda_logprob_variant_name(int v); // NULL if out of range
int rlc_cuda_logprob_set_variant(int v);          // 0, or -1 if out of range
int rlc_cuda_logprob_get_variant(void);

// Workspace bytes for the forward and the backward at this shape and chunking (one fp32 chunk plus O(t_chunk)
// row statistics).
size_t rlc_cuda_logprob_workspace_bytes(int T, int V, int t_chunk, int v_chunk);

// logp, entropy (may be NULL), lse (T): overwritten.
int rlc_cuda_logprob_forward(rlc_blas *blas, float *logp, float *entropy, float *lse, const void *hidden,
                             const void *w, const int *targets, int T, int C, int V, float tau, int t_chunk,
                             int v_chunk, void *workspace, void *stream);

// dhidden (T,C) += dz @ w (NULL: skip); dw (V,C) += dz^T @ hidden (NULL: skip). dlogp or dent may be NULL
// (coefficient 0). lse and entropy are the forward's.
int rlc_cuda_logprob_backward(rlc_blas *blas, float *dhidden, float *dw, const float *dlogp, const float *dent,
                              const void *hidden, const void *w, const int *targets, const float *lse,
                              const float *entropy, int T, int C, int V, float tau, int t_chunk, int v_chunk,
                              void *workspace, void *stream);

#ifdef __cplusplus
}
#endif
