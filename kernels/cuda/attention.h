// kernels/cuda/attention.h: CUDA attention kernels (implementation: attention.cu): FlashAttention-2 style
// forward and backward for causal GQA attention on token-packed batches, and split-K decode (flash-decoding)
// against a KV cache. CPU twins: attention_forward / attention_backward / attention_decode of include/rlc/ops.h
// (kernels/cpu/attention_cpu.c); the shapes and semantics here are the same.
//
// Conventions
// - Every pointer is DEVICE memory: tensors, cu_seqlens (B+1), slot and kv_len (B), workspaces. `stream` is a
//   cudaStream_t (NULL = default stream). Nothing synchronises and nothing allocates; workspaces are passed in,
//   sized by the *_workspace_bytes functions.
// - bf16 tensors are __nv_bfloat16 arrays passed as void *; statistics and gradients are fp32.
// - Head dims 64 and 128; NH a multiple of NKV (query head h reads kv head h / (NH / NKV)); scale 1/sqrt(HD).
// - Deterministic: every output element has exactly one writer and every sum runs in a fixed order, so results
//   are bitwise reproducible run to run (backward variants 3 and 4 add dQ with float atomics whose order is
//   enforced).
// - Functions return 0, or -1 with a message on stderr (bad shapes, a launch error).
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// out (T,NH,HD) bf16, lse (T,NH) fp32 = natural log-sum-exp of each row of scaled scores (for the backward);
// q (T,NH,HD), k, v (T,NKV,HD) bf16; causal inside each sequence of cu_seqlens (B+1, cu[0]=0, cu[B]=T).
int rlc_cuda_attention_forward(void *out, float *lse, const void *q, const void *k, const void *v,
                               const int *cu_seqlens, int B, int T, int NH, int NKV, int HD, void *stream);

// Bytes of workspace the backward needs (D = rowsum(dout * out), (T,NH) fp32, and (T,NH) + 1 counters).
size_t rlc_cuda_attention_backward_workspace_bytes(int T, int NH);
// dq (T,NH,HD), dk, dv (T,NKV,HD) fp32, overwritten; dout, q, k, v, out bf16 (out and lse from the forward).
// Probabilities are recomputed from lse; dk/dv of a kv head sum its query heads in a fixed order.
int rlc_cuda_attention_backward(float *dq, float *dk, float *dv, const void *dout, const void *q, const void *k,
                                const void *v, const void *out, const float *lse, const int *cu_seqlens, int B,
                                int T, int NH, int NKV, int HD, void *workspace, size_t workspace_bytes,
                                void *stream);

// Decode: q (B,NH,HD) bf16, one query per row; k_cache, v_cache (n_slots, cap, NKV, HD) bf16; row b reads keys
// 0..kv_len[b]-1 of slot slot[b] (kv_len[b] <= cap; 0 gives a zero output); out (B,NH,HD) bf16.
// The cache length is split into pieces of split_len keys (0 = chosen from the shapes; else rounded up to a
// multiple of 128), each piece one block, and the partial results are combined by a second kernel.
size_t rlc_cuda_attention_decode_workspace_bytes(int B, int cap, int NH, int NKV, int HD, int split_len);
int rlc_cuda_attention_decode(void *out, const void *q, const void *k_cache, const void *v_cache, const int *slot,
                              const int *kv_len, int B, int cap, int NH, int NKV, int HD, int split_len,
                              void *workspace, size_t workspace_bytes, void *stream);

// Kernel variants, for benchmarking (bench_attention_gpu --variants): op 0 forward, 1 backward, 2 decode.
// Variant 0 of each op is the default (the fastest measured on an H200); the others are candidates, not yet timed
// on a GPU: backward 1 and 2 (32-key dK/dV warp tiles), backward 3 and 4 (0 and 1 with dQ added by the dK/dV
// kernel; no dQ kernel). The forward and the decode have one variant each. The
// environment variable RLC_ATTN_VARIANTS="fwd,bwd,dec" (e.g. "0,1,0") overrides the defaults (read at the first
// call); set_variant overrides both. Every variant computes the same function within the tolerances of
// tests/emu/test_attention.cpp and is deterministic. (Numbering since 2026-11-27; the log of that day's H200 run
// uses the old one: fwd v1, bwd v6 / v7 / v8, dec v2 are now fwd 0, bwd 0 / 1 / 2, dec 0.)
int rlc_cuda_attention_variant_count(int op);
const char *rlc_cuda_attention_variant_name(int op, int v); // NULL if out of range
int rlc_cuda_attention_set_variant(int op, int v);          // 0, or -1 if out of range
int rlc_cuda_attention_get_variant(int op);

#ifdef __cplusplus
}
#endif
