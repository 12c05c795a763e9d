// kernels/cuda/elementwise.cu: elementwise and small-reduction kernels of the CUDA op table (interface:
// elementwise.h; CPU twins: kernels/cpu/ops_cpu.c). All memory-bound: one thread per element in grid-stride
// loops of 256-thread blocks, the grid capped so that a huge tensor does not launch millions of blocks.
// Reductions (sum of squares, column sums) run over a partition fixed by the shapes, partials in double, so they
// are deterministic and agree with the CPU twin to double rounding; the sum of squares (the global gradient norm)
// is one launch whose last block adds the partials in order. The multi-tensor AdamW updates every tensor of a
// flat buffer in one launch and writes the bf16 working copy of the new weights alongside the fp32 master.
#include "elementwise.h"

#include <math.h>

#include "rlc_cuda.h"

#define EW_THREADS 256
#define EW_MAX_BLOCKS 8192 // grid-stride beyond 2M elements (about 16 blocks per SM on an H100)

typedef __nv_bfloat16 bf16;

static unsigned ew_blocks(size_t n) {
    size_t b = (n + EW_THREADS - 1) / EW_THREADS;
    if (b < 1) b = 1;
    return (unsigned)(b < EW_MAX_BLOCKS ? b : EW_MAX_BLOCKS);
}

static int ew_launch_ok(const char *what) {
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) return 0;
    fprintf(stderr, "%s: kernel launch failed: %s\n", what, cudaGetErrorString(e));
    return -1;
}

#define EW_FOR(i, n)                                                                                           \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

// ---------------------------------------------------------------------------------------------- elementwise

template <typename A> __global__ void ew_add_kernel(float *out, const float *a, const A *b, size_t n) {
    EW_FOR(i, n) out[i] = a[i] + rlc_ld(b + i);
}

template <typename A> __global__ void ew_add_into_kernel(A *dst, const float *src, size_t n) {
    EW_FOR(i, n) rlc_st(dst + i, rlc_ld(dst + i) + src[i]);
}

__global__ void ew_scale_kernel(float *x, float s, size_t n) {
    EW_FOR(i, n) x[i] *= s;
}

// silu(g) = g / (1 + e^-g): for g -> -inf, e^-g = inf and the quotient is -0 (no NaN).
template <typename A> __global__ void ew_swiglu_fwd_kernel(A *out, const A *gate, const A *up, size_t n) {
    EW_FOR(i, n) {
        float g = rlc_ld(gate + i);
        rlc_st(out + i, g / (1.0f + expf(-g)) * rlc_ld(up + i));
    }
}

// d silu(g) / dg = sg (1 + g (1 - sg)) with sg = sigmoid(g).
template <typename A>
__global__ void ew_swiglu_bwd_kernel(A *dgate, A *dup, const A *dout, const A *gate, const A *up, size_t n) {
    EW_FOR(i, n) {
        float g = rlc_ld(gate + i), d = rlc_ld(dout + i), sg = 1.0f / (1.0f + expf(-g));
        rlc_st(dgate + i, d * rlc_ld(up + i) * sg * (1.0f + g * (1.0f - sg)));
        rlc_st(dup + i, d * g * sg);
    }
}

// One element of AdamW: the CPU twin's arithmetic in the same order (bias corrections computed once on the host
// in double). Returns the new master weight (also stored in p[i]).
__device__ __forceinline__ float ew_adamw_elem(float *p, const float *g, float *m, float *v, size_t i, float lr,
                                               float b1, float b2, float eps, float wd, float gs, float bc1,
                                               float bc2) {
    float gi = g[i] * gs;
    float mi = b1 * m[i] + (1.0f - b1) * gi;
    float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    float pi = p[i];
    pi = pi - lr * ((mi * bc1) / (sqrtf(vi * bc2) + eps) + wd * pi);
    p[i] = pi;
    return pi;
}

__global__ void ew_adamw_kernel(float *p, const float *g, float *m, float *v, size_t n, float lr, float b1, float b2,
                                float eps, float wd, float gs, float bc1, float bc2) {
    EW_FOR(i, n) ew_adamw_elem(p, g, m, v, i, lr, b1, b2, eps, wd, gs, bc1, bc2);
}

// Multi-tensor AdamW: block c (grid-stride over chunks) takes chunk c of the flat buffer, i.e. elements
// [k * RLC_ADAMW_CHUNK, ...) of the tensor whose chunk range holds c (binary search over the table's chunk0, once per
// chunk). Per element ew_adamw_elem (the CPU twin's arithmetic, in its order) with the tensor's weight
// decay; pb (may be NULL) gets the new master rounded to nearest even, so the bf16 working copy is never stale.
__global__ void ew_adamw_multi_kernel(float *p, bf16 *pb, const float *g, float *m, float *v,
                                      const rlc_cuda_adamw_tensor *tab, int nt, size_t nchunks, float lr, float b1,
                                      float b2, float eps, float gs, float bc1, float bc2) {
    for (size_t c = blockIdx.x; c < nchunks; c += gridDim.x) {
        int lo = 0, hi = nt - 1; // the last entry with chunk0 <= c (empty tensors share their successor's chunk0)
        while (lo < hi) {
            const int mid = (lo + hi + 1) / 2;
            if (tab[mid].chunk0 <= c) lo = mid;
            else hi = mid - 1;
        }
        const size_t off = tab[lo].offset, numel = tab[lo].numel;
        const float wd = tab[lo].wd;
        const size_t a = (c - tab[lo].chunk0) * RLC_ADAMW_CHUNK;
        const size_t b = a + RLC_ADAMW_CHUNK < numel ? a + RLC_ADAMW_CHUNK : numel;
        for (size_t j = a + threadIdx.x; j < b; j += blockDim.x) {
            const size_t i = off + j;
            const float pi = ew_adamw_elem(p, g, m, v, i, lr, b1, b2, eps, wd, gs, bc1, bc2);
            if (pb) pb[i] = __float2bfloat16_rn(pi);
        }
    }
}

// ---------------------------------------------------------------------------------------------- conversions

// dst (rows, ld) bf16 = round(scale * src (rows, cols)), zero-padded; src fp32 or bf16.
template <typename S>
__global__ void ew_pad_bf16_kernel(bf16 *dst, const S *src, size_t rows, int cols, int ld, float scale) {
    EW_FOR(i, rows * ld) {
        size_t r = i / ld;
        int c = (int)(i - r * ld);
        dst[i] = __float2bfloat16_rn(c < cols ? scale * rlc_ld(src + r * cols + c) : 0.0f);
    }
}

__global__ void ew_f32_to_bf16_flat_kernel(bf16 *dst, const float *src, size_t n) {
    EW_FOR(i, n) dst[i] = __float2bfloat16_rn(src[i]);
}

__global__ void ew_bf16_to_f32_kernel(float *dst, const bf16 *src, size_t rows, int cols, int ld, float scale) {
    EW_FOR(i, rows * cols) {
        size_t r = i / cols;
        int c = (int)(i - r * cols);
        dst[i] = scale * __bfloat162float(src[r * ld + c]);
    }
}

template <typename D, typename S>
__global__ void ew_unpad_kernel(D *dst, const S *src, size_t rows, int cols, int ld, float scale) {
    EW_FOR(i, rows * cols) {
        size_t r = i / cols;
        int c = (int)(i - r * cols);
        rlc_st(dst + i, scale * rlc_ld(src + r * ld + c));
    }
}

__global__ void ew_bf16_to_f32_flat_kernel(float *dst, const bf16 *src, size_t n) {
    EW_FOR(i, n) dst[i] = __bfloat162float(src[i]);
}

// grid (blocks over one slot's max_len * row_heads * HDp elements, U): block row y gathers slot u = y.
template <typename A>
__global__ void ew_kv_gather_kernel(bf16 *dst, const A *src, const int *src_slot, const int *len, int cap,
                                    int dst_cap, int max_len, int row_heads, int HD, int HDp) {
    const int u = blockIdx.y, n = len[u];
    const size_t row_out = (size_t)row_heads * HDp, row_in = (size_t)row_heads * HD;
    const A *s = src + (size_t)src_slot[u] * cap * row_in;
    bf16 *d = dst + (size_t)u * dst_cap * row_out;
    const size_t total = (size_t)(n < max_len ? n : max_len) * row_out;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / HDp; // (position, head) row
        int c = (int)(i - r * HDp);
        d[i] = __float2bfloat16_rn(c < HD ? rlc_ld(s + r * HD + c) : 0.0f);
    }
}

// Flat over the n * row elements of k_new / v_new (row = NKV * HD): element c of row r goes to position pos[r]
// of slot slot[r]. Reads and writes are contiguous within each row.
template <typename A>
__global__ void ew_kv_append_kernel(A *k_cache, A *v_cache, const A *k_new, const A *v_new, const int *slot,
                                    const int *pos, size_t total, int cap, int row) {
    EW_FOR(i, total) {
        const size_t r = i / (size_t)row, c = i - r * (size_t)row;
        const size_t dst = ((size_t)slot[r] * cap + (size_t)pos[r]) * row + c;
        k_cache[dst] = k_new[i];
        v_cache[dst] = v_new[i];
    }
}

// ---------------------------------------------------------------------------------------------- reductions

// Block-wide sum of one double per thread (EW_THREADS threads) in a fixed tree order; the result is valid in
// thread 0. Every thread must call it (it has barriers).
__device__ double ew_block_sum(double x, double *sh) {
    sh[threadIdx.x] = x;
    __syncthreads();
    for (int s = EW_THREADS / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    return sh[0];
}

// One launch for the whole sum. Block b: elements [b * RLC_SUMSQ_BLOCK, ...) strided by the block's threads, then
// the tree; its partial goes to part[b]. The last block to finish (an integer counter, never a float atomic) adds
// the partials: thread j takes partials j, j + 256, ... in order, then the tree. The order is fixed by n alone, so
// the result is the same whichever block finishes last (and equal to the former two-launch version's).
__global__ void ew_sumsq_kernel(double *result, double *part, unsigned *done, const float *x, size_t n, size_t nb) {
    __shared__ double sh[EW_THREADS];
    __shared__ int last;
    const size_t i0 = (size_t)blockIdx.x * RLC_SUMSQ_BLOCK;
    const size_t i1 = i0 + RLC_SUMSQ_BLOCK < n ? i0 + RLC_SUMSQ_BLOCK : n;
    double s = 0.0;
    for (size_t i = i0 + threadIdx.x; i < i1; i += EW_THREADS) s += (double)x[i] * (double)x[i];
    s = ew_block_sum(s, sh);
    if (threadIdx.x == 0) {
        part[blockIdx.x] = s;
        __threadfence(); // the partial is visible device-wide before the count says so
        last = atomicAdd(done, 1u) == gridDim.x - 1;
    }
    __syncthreads();
    if (!last) return; // uniform over the block: no barrier below is skipped by only some threads
    __threadfence();
    const volatile double *vp = part; // written by other blocks: read past this SM's L1
    double t = 0.0;
    for (size_t i = threadIdx.x; i < nb; i += EW_THREADS) t += vp[i];
    t = ew_block_sum(t, sh);
    if (threadIdx.x == 0) *result = t;
}

// grid (ceil(N / 256), chunks): thread = column, rows of the chunk in order.
template <typename A> __global__ void ew_colsum_part_kernel(double *part, const A *src, int T, int N) {
    const int col = blockIdx.x * blockDim.x + threadIdx.x, ch = blockIdx.y;
    if (col >= N) return;
    const int t0 = ch * RLC_COLSUM_ROWS, t1 = t0 + RLC_COLSUM_ROWS < T ? t0 + RLC_COLSUM_ROWS : T;
    double s = 0.0;
    for (int t = t0; t < t1; t++) s += rlc_ld(src + (size_t)t * N + col);
    part[(size_t)ch * N + col] = s;
}

__global__ void ew_partials_finish_kernel(float *dst, const double *part, int nch, int N) {
    const int col = blockIdx.x * blockDim.x + threadIdx.x;
    if (col >= N) return;
    double s = 0.0;
    for (int c = 0; c < nch; c++) s += part[(size_t)c * N + col];
    dst[col] += (float)s;
}

template <typename A> __global__ void ew_bias_rows_kernel(A *out, const float *bias, size_t T, int N) {
    EW_FOR(i, T * N) rlc_st(out + i, bias[i % N]);
}

__global__ void ew_bias_round_kernel(bf16 *out, const float *acc, const float *bias, size_t T, int N) {
    EW_FOR(i, T * N) out[i] = __float2bfloat16_rn(acc[i] + bias[i % N]);
}

// ---------------------------------------------------------------------------------------------------- host

extern "C" int rlc_cuda_add(float *out, const float *a, const void *b, int b_bf16, size_t n, void *stream) {
    if (n == 0) return 0;
    RLC_ACT_DISPATCH(b_bf16, A,
                     RLC_LAUNCH(ew_add_kernel<A>, ew_blocks(n), EW_THREADS, 0, (cudaStream_t)stream, out, a,
                                (const A *)b, n));
    return ew_launch_ok("rlc_cuda_add");
}

extern "C" int rlc_cuda_add_into(void *dst, int dst_bf16, const float *src, size_t n, void *stream) {
    if (n == 0) return 0;
    RLC_ACT_DISPATCH(dst_bf16, A,
                     RLC_LAUNCH(ew_add_into_kernel<A>, ew_blocks(n), EW_THREADS, 0, (cudaStream_t)stream, (A *)dst,
                                src, n));
    return ew_launch_ok("rlc_cuda_add_into");
}

extern "C" int rlc_cuda_scale(float *x, float s, size_t n, void *stream) {
    if (n == 0) return 0;
    RLC_LAUNCH(ew_scale_kernel, ew_blocks(n), EW_THREADS, 0, (cudaStream_t)stream, x, s, n);
    return ew_launch_ok("rlc_cuda_scale");
}

static size_t ew_sumsq_blocks(size_t n) { return (n + RLC_SUMSQ_BLOCK - 1) / RLC_SUMSQ_BLOCK; }

// partials (one per block, at least one), then the 8-byte aligned finish counter
extern "C" size_t rlc_cuda_sumsq_workspace_bytes(size_t n) {
    size_t nb = ew_sumsq_blocks(n);
    return (nb ? nb : 1) * sizeof(double) + sizeof(double);
}

extern "C" int rlc_cuda_sumsq(double *result, const float *x, size_t n, void *workspace, void *stream) {
    cudaStream_t st = (cudaStream_t)stream;
    const size_t nb = ew_sumsq_blocks(n), grid = nb ? nb : 1; // n = 0: one block adds no partials, result 0
    double *part = (double *)workspace;
    unsigned *done = (unsigned *)(part + grid);
    if (nb > 2147483647u) {
        fprintf(stderr, "rlc_cuda_sumsq: %zu elements is too many\n", n);
        return -1;
    }
    if (cudaMemsetAsync(done, 0, sizeof(unsigned), st) != cudaSuccess) {
        fprintf(stderr, "rlc_cuda_sumsq: cudaMemsetAsync of the counter failed\n");
        return -1;
    }
    RLC_LAUNCH(ew_sumsq_kernel, (unsigned)grid, EW_THREADS, 0, st, result, part, done, x, n, nb);
    return ew_launch_ok("rlc_cuda_sumsq");
}

extern "C" int rlc_cuda_swiglu_forward(void *out, const void *gate, const void *up, int bf16_act, size_t n,
                                       void *stream) {
    if (n == 0) return 0;
    RLC_ACT_DISPATCH(bf16_act, A,
                     RLC_LAUNCH(ew_swiglu_fwd_kernel<A>, ew_blocks(n), EW_THREADS, 0, (cudaStream_t)stream, (A *)out,
                                (const A *)gate, (const A *)up, n));
    return ew_launch_ok("rlc_cuda_swiglu_forward");
}

extern "C" int rlc_cuda_swiglu_backward(void *dgate, void *dup, const void *dout, const void *gate, const void *up,
                                        int bf16_act, size_t n, void *stream) {
    if (n == 0) return 0;
    RLC_ACT_DISPATCH(bf16_act, A,
                     RLC_LAUNCH(ew_swiglu_bwd_kernel<A>, ew_blocks(n), EW_THREADS, 0, (cudaStream_t)stream,
                                (A *)dgate, (A *)dup, (const A *)dout, (const A *)gate, (const A *)up, n));
    return ew_launch_ok("rlc_cuda_swiglu_backward");
}

extern "C" int rlc_cuda_adamw(float *p, const float *g, float *m, float *v, size_t n, float lr, float b1, float b2,
                              float eps, float wd, float grad_scale, int t, void *stream) {
    if (n == 0) return 0;
    // as the CPU twin: 1 / (1 - b^t) in double, rounded once to float
    const float bc1 = (float)(1.0 / (1.0 - pow((double)b1, t))), bc2 = (float)(1.0 / (1.0 - pow((double)b2, t)));
    RLC_LAUNCH(ew_adamw_kernel, ew_blocks(n), EW_THREADS, 0, (cudaStream_t)stream, p, g, m, v, n, lr, b1, b2, eps,
               wd, grad_scale, bc1, bc2);
    return ew_launch_ok("rlc_cuda_adamw");
}

extern "C" size_t rlc_cuda_adamw_multi_plan(rlc_cuda_adamw_tensor *tab, int n_tensors) {
    size_t c = 0;
    for (int i = 0; i < n_tensors; i++) {
        tab[i].chunk0 = c;
        c += (tab[i].numel + RLC_ADAMW_CHUNK - 1) / RLC_ADAMW_CHUNK;
    }
    return c;
}

extern "C" int rlc_cuda_adamw_multi(float *p, void *p_bf16, const float *g, float *m, float *v,
                                    const rlc_cuda_adamw_tensor *tab, int n_tensors, size_t n_chunks, float lr,
                                    float b1, float b2, float eps, float grad_scale, int t, void *stream) {
    if (n_chunks == 0 || n_tensors <= 0) return 0;
    // as the CPU twin: 1 / (1 - b^t) in double, rounded once to float
    const float bc1 = (float)(1.0 / (1.0 - pow((double)b1, t))), bc2 = (float)(1.0 / (1.0 - pow((double)b2, t)));
    RLC_LAUNCH(ew_adamw_multi_kernel, ew_blocks(n_chunks * EW_THREADS), EW_THREADS, 0, (cudaStream_t)stream, p,
               (bf16 *)p_bf16, g, m, v, tab, n_tensors, n_chunks, lr, b1, b2, eps, grad_scale, bc1, bc2);
    return ew_launch_ok("rlc_cuda_adamw_multi");
}

extern "C" int rlc_cuda_f32_to_bf16_flat(void *dst, const float *src, size_t n, void *stream) {
    if (n == 0) return 0;
    RLC_LAUNCH(ew_f32_to_bf16_flat_kernel, ew_blocks(n), EW_THREADS, 0, (cudaStream_t)stream, (bf16 *)dst, src, n);
    return ew_launch_ok("rlc_cuda_f32_to_bf16_flat");
}

static int ew_pad_bf16(const char *what, void *dst, const void *src, int src_bf16, size_t rows, int cols, int ld_dst,
                       float scale, void *stream) {
    if (cols > ld_dst || cols < 0) {
        fprintf(stderr, "%s: %d columns into rows of %d\n", what, cols, ld_dst);
        return -1;
    }
    if (rows == 0 || ld_dst == 0) return 0;
    RLC_ACT_DISPATCH(src_bf16, S,
                     RLC_LAUNCH(ew_pad_bf16_kernel<S>, ew_blocks(rows * ld_dst), EW_THREADS, 0, (cudaStream_t)stream,
                                (bf16 *)dst, (const S *)src, rows, cols, ld_dst, scale));
    return ew_launch_ok(what);
}

extern "C" int rlc_cuda_f32_to_bf16(void *dst, const float *src, size_t rows, int cols, int ld_dst, float scale,
                                    void *stream) {
    return ew_pad_bf16("rlc_cuda_f32_to_bf16", dst, src, 0, rows, cols, ld_dst, scale, stream);
}

extern "C" int rlc_cuda_bf16_to_f32(float *dst, const void *src, size_t rows, int cols, int ld_src, float scale,
                                    void *stream) {
    if (cols > ld_src || cols < 0) {
        fprintf(stderr, "rlc_cuda_bf16_to_f32: %d columns from rows of %d\n", cols, ld_src);
        return -1;
    }
    if (rows == 0 || cols == 0) return 0;
    RLC_LAUNCH(ew_bf16_to_f32_kernel, ew_blocks(rows * cols), EW_THREADS, 0, (cudaStream_t)stream, dst,
               (const bf16 *)src, rows, cols, ld_src, scale);
    return ew_launch_ok("rlc_cuda_bf16_to_f32");
}

extern "C" int rlc_cuda_f32_unpad(void *dst, int dst_bf16, const float *src, size_t rows, int cols, int ld_src,
                                  float scale, void *stream) {
    if (cols > ld_src || cols < 0) {
        fprintf(stderr, "rlc_cuda_f32_unpad: %d columns from rows of %d\n", cols, ld_src);
        return -1;
    }
    if (rows == 0 || cols == 0) return 0;
    RLC_ACT_DISPATCH(dst_bf16, A,
                     RLC_LAUNCH((ew_unpad_kernel<A, float>), ew_blocks(rows * cols), EW_THREADS, 0,
                                (cudaStream_t)stream, (A *)dst, src, rows, cols, ld_src, scale));
    return ew_launch_ok("rlc_cuda_f32_unpad");
}

extern "C" int rlc_cuda_bf16_unpad(void *dst, const void *src, size_t rows, int cols, int ld_src, void *stream) {
    if (cols > ld_src || cols < 0) {
        fprintf(stderr, "rlc_cuda_bf16_unpad: %d columns from rows of %d\n", cols, ld_src);
        return -1;
    }
    if (rows == 0 || cols == 0) return 0;
    RLC_LAUNCH((ew_unpad_kernel<bf16, bf16>), ew_blocks(rows * cols), EW_THREADS, 0, (cudaStream_t)stream, (bf16 *)dst,
               (const bf16 *)src, rows, cols, ld_src, 1.0f);
    return ew_launch_ok("rlc_cuda_bf16_unpad");
}

extern "C" int rlc_cuda_bf16_pad(void *dst, const void *src, size_t rows, int cols, int ld_dst, float scale,
                                 void *stream) {
    return ew_pad_bf16("rlc_cuda_bf16_pad", dst, src, 1, rows, cols, ld_dst, scale, stream);
}

extern "C" int rlc_cuda_bf16_to_f32_flat(float *dst, const void *src, size_t n, void *stream) {
    if (n == 0) return 0;
    RLC_LAUNCH(ew_bf16_to_f32_flat_kernel, ew_blocks(n), EW_THREADS, 0, (cudaStream_t)stream, dst, (const bf16 *)src,
               n);
    return ew_launch_ok("rlc_cuda_bf16_to_f32_flat");
}

extern "C" int rlc_cuda_kv_gather_bf16(void *dst, const void *src, int src_bf16, const int *src_slot,
                                       const int *len, int U, int cap, int dst_cap, int max_len, int row_heads,
                                       int HD, int HDp, void *stream) {
    if (HD > HDp || max_len > dst_cap || U > 65535) {
        fprintf(stderr, "rlc_cuda_kv_gather_bf16: bad shape (U=%d HD=%d HDp=%d max_len=%d dst_cap=%d)\n", U, HD, HDp,
                max_len, dst_cap);
        return -1;
    }
    if (U <= 0 || max_len <= 0) return 0;
    const size_t per_slot = (size_t)max_len * row_heads * HDp;
    unsigned bx = ew_blocks(per_slot);
    if (bx > 512) bx = 512; // U slots in grid y already
    RLC_ACT_DISPATCH(src_bf16, A,
                     RLC_LAUNCH(ew_kv_gather_kernel<A>, dim3(bx, (unsigned)U), EW_THREADS, 0, (cudaStream_t)stream,
                                (bf16 *)dst, (const A *)src, src_slot, len, cap, dst_cap, max_len, row_heads, HD,
                                HDp));
    return ew_launch_ok("rlc_cuda_kv_gather_bf16");
}

extern "C" int rlc_cuda_kv_append(void *k_cache, void *v_cache, const void *k_new, const void *v_new, int bf16_act,
                                  const int *slot, const int *pos, int n, int cap, int NKV, int HD, void *stream) {
    if (n < 0 || cap < 1 || NKV < 1 || HD < 1) {
        fprintf(stderr, "rlc_cuda_kv_append: bad shape (n=%d cap=%d NKV=%d HD=%d)\n", n, cap, NKV, HD);
        return -1;
    }
    if (n == 0) return 0;
    const size_t total = (size_t)n * NKV * HD;
    RLC_ACT_DISPATCH(bf16_act, A,
                     RLC_LAUNCH(ew_kv_append_kernel<A>, ew_blocks(total), EW_THREADS, 0, (cudaStream_t)stream,
                                (A *)k_cache, (A *)v_cache, (const A *)k_new, (const A *)v_new, slot, pos, total, cap,
                                NKV * HD));
    return ew_launch_ok("rlc_cuda_kv_append");
}

extern "C" int rlc_cuda_bias_rows(float *out, const float *bias, int T, int N, void *stream) {
    if (T <= 0 || N <= 0) return 0;
    const size_t n = (size_t)T * N;
    RLC_LAUNCH(ew_bias_rows_kernel<float>, ew_blocks(n), EW_THREADS, 0, (cudaStream_t)stream, out, bias, (size_t)T,
               N);
    return ew_launch_ok("rlc_cuda_bias_rows");
}

extern "C" int rlc_cuda_bias_round_bf16(void *out, const float *acc, const float *bias, int T, int N, void *stream) {
    if (T <= 0 || N <= 0) return 0;
    const size_t n = (size_t)T * N;
    RLC_LAUNCH(ew_bias_round_kernel, ew_blocks(n), EW_THREADS, 0, (cudaStream_t)stream, (bf16 *)out, acc, bias,
               (size_t)T, N);
    return ew_launch_ok("rlc_cuda_bias_round_bf16");
}

static int ew_colsum_chunks(int T) { return (T + RLC_COLSUM_ROWS - 1) / RLC_COLSUM_ROWS; }

extern "C" size_t rlc_cuda_colsum_workspace_bytes(int T, int N) {
    int nch = ew_colsum_chunks(T);
    return (size_t)(nch > 0 ? nch : 1) * (N > 0 ? N : 1) * sizeof(double);
}

extern "C" int rlc_cuda_colsum_add(float *dst, const void *src, int src_bf16, int T, int N, void *workspace,
                                   void *stream) {
    const int nch = ew_colsum_chunks(T);
    if (T <= 0 || N <= 0) return 0;
    if (nch > 65535) {
        fprintf(stderr, "rlc_cuda_colsum_add: %d rows is too many\n", T);
        return -1;
    }
    double *part = (double *)workspace;
    RLC_ACT_DISPATCH(src_bf16, A,
                     RLC_LAUNCH(ew_colsum_part_kernel<A>, dim3((N + EW_THREADS - 1) / EW_THREADS, nch), EW_THREADS, 0,
                                (cudaStream_t)stream, part, (const A *)src, T, N));
    if (ew_launch_ok("rlc_cuda_colsum_add")) return -1;
    return rlc_cuda_partials_finish(dst, part, nch, N, stream);
}

extern "C" int rlc_cuda_partials_finish(float *dst, const double *part, int nch, int N, void *stream) {
    if (N <= 0) return 0;
    RLC_LAUNCH(ew_partials_finish_kernel, (N + EW_THREADS - 1) / EW_THREADS, EW_THREADS, 0, (cudaStream_t)stream,
               dst, part, nch, N);
    return ew_launch_ok("rlc_cuda_partials_finish");
}
