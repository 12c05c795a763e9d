// kernels/cuda/elementwise.h: the elementwise and small-reduction kernels of the CUDA op table (implementation:
// elementwise.cu; CPU twins in kernels/cpu/ops_cpu.c): add, scale, sum of squares, SwiGLU forward / backward,
// AdamW (per tensor, and multi-tensor writing a bf16 copy of the weights), fp32 <-> bf16 conversions (with the
// head-dim padding the attention adapter needs), the KV-cache gather and append, the bias broadcast of a matmul
// and the column sums of its dbias.
//
// Conventions
// - Every pointer is DEVICE memory; fp32 unless it is a bf16 tensor (__nv_bfloat16, passed as void *).
//   `stream` is a cudaStream_t (NULL = default stream). Nothing allocates and nothing synchronises; the
//   reductions take a workspace sized by their *_workspace_bytes function.
// - Deterministic: every output element has one writer and every sum runs in an order fixed by the shapes (no
//   atomics on values; the sum of squares counts finished blocks with an integer atomic), so results are bitwise
//   reproducible run to run.
// - Functions return 0, or -1 with a message on stderr (a failed launch).
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// out (n) = a + b (out may alias a or b); b is fp32, or bf16 when b_bf16 (an activation added to the residual).
int rlc_cuda_add(float *out, const float *a, const void *b, int b_bf16, size_t n, void *stream);
// dst (n) += src (n) fp32; dst fp32, or bf16 when dst_bf16 (the sum rounded once).
int rlc_cuda_add_into(void *dst, int dst_bf16, const float *src, size_t n, void *stream);
// x (n) *= s.
int rlc_cuda_scale(float *x, float s, size_t n, void *stream);

// *result (one device double) = sum of x (n) squared: fixed blocks of RLC_SUMSQ_BLOCK elements summed in
// double, then the block partials in order, in ONE kernel launch (after a 4-byte memset of a counter in the
// workspace): the last block to finish adds the partials. No float atomics: bitwise reproducible.
#define RLC_SUMSQ_BLOCK 16384
size_t rlc_cuda_sumsq_workspace_bytes(size_t n);
int rlc_cuda_sumsq(double *result, const float *x, size_t n, void *workspace, void *stream);

// out (n) = silu(gate) * up; backward: dgate, dup (n) overwritten from dout. Every tensor fp32, or bf16 when
// bf16_act (math in fp32, results rounded once).
int rlc_cuda_swiglu_forward(void *out, const void *gate, const void *up, int bf16_act, size_t n, void *stream);
int rlc_cuda_swiglu_backward(void *dgate, void *dup, const void *dout, const void *gate, const void *up, int bf16_act,
                             size_t n, void *stream);

// AdamW on p, m, v (n) with gradient g * grad_scale, step t >= 1 (formula: include/rlc/ops.h adamw_update).
int rlc_cuda_adamw(float *p, const float *g, float *m, float *v, size_t n, float lr, float b1, float b2, float eps,
                   float wd, float grad_scale, int t, void *stream);

// Multi-tensor AdamW over one flat buffer: tensor i is elements [offset, offset + numel) of p, g, m, v, with
// weight decay wd; chunk0 is its first chunk of RLC_ADAMW_CHUNK elements (rlc_cuda_adamw_multi_plan fills it and
// returns the number of chunks). The table lives in device memory (upload it once). One launch updates every
// tensor with the math of rlc_cuda_adamw; p_bf16 (NULL: none) is a bf16 array indexed like p that receives
// round-to-nearest-even of every updated p. Elements outside every tensor are not touched.
#define RLC_ADAMW_CHUNK 4096
typedef struct rlc_cuda_adamw_tensor {
    size_t offset, numel, chunk0;
    float wd;
} rlc_cuda_adamw_tensor;
size_t rlc_cuda_adamw_multi_plan(rlc_cuda_adamw_tensor *tab, int n_tensors);
int rlc_cuda_adamw_multi(float *p, void *p_bf16, const float *g, float *m, float *v, const rlc_cuda_adamw_tensor *tab,
                         int n_tensors, size_t n_chunks, float lr, float b1, float b2, float eps, float grad_scale,
                         int t, void *stream);

// dst (n) bf16 = round-to-nearest-even of src (n) (the bf16 working weights' refresh).
int rlc_cuda_f32_to_bf16_flat(void *dst, const float *src, size_t n, void *stream);
// dst (rows, ld_dst) bf16 = round(scale * src (rows, cols)), columns cols..ld_dst-1 set to zero (cols <= ld_dst).
int rlc_cuda_f32_to_bf16(void *dst, const float *src, size_t rows, int cols, int ld_dst, float scale, void *stream);
// dst (rows, cols) fp32 = scale * src (rows, ld_src) bf16, dropping columns cols..ld_src-1.
int rlc_cuda_bf16_to_f32(float *dst, const void *src, size_t rows, int cols, int ld_src, float scale, void *stream);
// dst (rows, cols) = scale * src (rows, ld_src) fp32, dropping columns cols..ld_src-1; dst fp32, or bf16 when
// dst_bf16.
int rlc_cuda_f32_unpad(void *dst, int dst_bf16, const float *src, size_t rows, int cols, int ld_src, float scale,
                       void *stream);
// dst (rows, cols) bf16 = src (rows, ld_src) bf16, dropping columns cols..ld_src-1.
int rlc_cuda_bf16_unpad(void *dst, const void *src, size_t rows, int cols, int ld_src, void *stream);
// dst (rows, ld_dst) bf16 = round(scale * src (rows, cols) bf16), columns cols..ld_dst-1 set to zero.
int rlc_cuda_bf16_pad(void *dst, const void *src, size_t rows, int cols, int ld_dst, float scale, void *stream);
// dst (n) fp32 = src (n) bf16 (exact).
int rlc_cuda_bf16_to_f32_flat(float *dst, const void *src, size_t n, void *stream);
// KV-cache gather for the attention adapter: for u < U, rows 0..len[u]-1 of slot src_slot[u] of src
// (n_slots, cap, row_heads, HD) (fp32, or bf16 when src_bf16) go to rows 0..len[u]-1 of slot u of dst
// (U, dst_cap, row_heads, HDp) bf16,
// each head zero-padded from HD to HDp columns. src_slot and len (U) are device ints; rows past len[u] of dst
// are not written. max_len >= every len[u] bounds the grid.
int rlc_cuda_kv_gather_bf16(void *dst, const void *src, int src_bf16, const int *src_slot, const int *len, int U,
                            int cap, int dst_cap, int max_len, int row_heads, int HD, int HDp, void *stream);

// KV-cache append (op table kv_append; CPU twin in kernels/cpu/attention_cpu.c): row i of k_new, v_new
// (n, NKV, HD) goes to position pos[i] of slot slot[i] of k_cache, v_cache (n_slots, cap, NKV, HD), all fp32 or
// all bf16 (bf16_act). slot,
// pos (n) are device ints, 0 <= pos[i] < cap (not checked here: the caller checks its host copy). One launch for
// both caches.
int rlc_cuda_kv_append(void *k_cache, void *v_cache, const void *k_new, const void *v_new, int bf16_act,
                       const int *slot, const int *pos, int n, int cap, int NKV, int HD, void *stream);

// out (T, N) = bias (N) on every row.
int rlc_cuda_bias_rows(float *out, const float *bias, int T, int N, void *stream);
// out (T, N) bf16 = round(acc (T, N) fp32 + bias (N) on every row): a GEMM's bias epilogue with one rounding.
int rlc_cuda_bias_round_bf16(void *out, const float *acc, const float *bias, int T, int N, void *stream);

// dst (N) += sum over rows of src (T, N) (fp32, or bf16 when src_bf16): chunks of RLC_COLSUM_ROWS rows summed in double (rows in order), then
// the chunk partials in chunk order (the CPU twin's partition).
#define RLC_COLSUM_ROWS 256
size_t rlc_cuda_colsum_workspace_bytes(int T, int N);
int rlc_cuda_colsum_add(float *dst, const void *src, int src_bf16, int T, int N, void *workspace, void *stream);
// dst (N) += (float) sum over c < nch of part (nch, N) doubles, in chunk order (the second pass of a column sum;
// also used by the RMSNorm weight gradient).
int rlc_cuda_partials_finish(float *dst, const double *part, int nch, int N, void *stream);

#ifdef __cplusplus
}
#endif
