// kernels/cuda/logprob.cu: fused LM-head log-prob / entropy (forward and backward) on the GPU; interface and
// formulas in logprob.h. Per (token chunk, vocabulary chunk):
//   forward:  GEMM U (tb, vc) = hidden[t0:] @ w[v0:]^T * log2(e) / tau (fp32 scratch, row stride ldu): the
//             logits in base-2 units, u2 = u / ln 2, so that every exponential below is one MUFU ex2
//             (rlc_exp2_ftz) after one add;
//             a statistics kernel, one block per row, folds the chunk into (m, s, a, u_y) with
//               m = running max of u2, s = sum 2^(u2 - m), a = sum 2^(u2 - m) (u2 - m), u_y = the target's
//               logit (natural units);
//   then lp_finalize_kernel: lse = m ln 2 + log s, H = log s - (a/s) ln 2 (both terms >= 0: no cancellation),
//   logp.
//   backward: the same GEMM, a dz kernel overwrites each fp32 row with its bf16 dz (in place: the bf16 row r
//             occupies the first half of fp32 row r, so the bf16 matrix has row stride 2*ldu), then
//             dhidden[t0:] += dz @ w[v0:] and dw[v0:] += dz^T @ hidden[t0:].
// The statistics and dz kernels only stream the fp32 chunk (the GEMM writes it, they read it once), so they
// are written to keep DRAM busy (variant 0, the default): each thread loads its LP_VPT values of a batch with
// 16-byte loads all in flight at once, the block takes the batch's max first and then sums 2^(u2 - max) with
// no dependency between elements (no per-element rescaling), and the row's saved state is loaded before the
// batch, not after it. Variant 1 keeps the first kernels (a running max and a rescale per element, one load in
// flight per thread), which ran the statistics at ~1.6 TB/s on an H200 (bench/results/gpu_h200_kernels.md):
// rlc_cuda_logprob_set_variant / RLC_LP_VARIANT select it, for bench_logprob_gpu --variants.
// Statistics are fp32 (every exponent is <= 0); reductions are fixed warp butterflies and a fixed order over
// warps, so the result does not depend on scheduling.
#include "rlc_cuda.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mutex>

#include "logprob.h"

#define LP_THREADS 256 // threads per row block
#define LP_WARPS (LP_THREADS / 32)
#define LP_SEG 8       // variant 1: elements per thread per in-place segment of the dz kernel
#define LP_VPT 32      // variant 0: values per thread per batch (8 float4 loads in flight)
#define LP_BATCH (LP_THREADS * LP_VPT) // variant 0: row elements per batch (8192: one batch per default chunk)
// variant 0: exponents are clamped at this (2^-128 is below the smallest normal float, so ex2.approx.ftz gives 0
// either way); it keeps a masked element (-inf, past the row's end) from adding 0 * -inf to the sum a
#define LP_D_MIN -128.0f

// Online softmax state of a set of base-2 values relative to its max m: s = sum 2^(u - m), a = sum 2^(u - m)(u - m).
struct LpState {
    float m, s, a;
};

// Merge two states; an empty state (s == 0, m == -inf) contributes nothing. (Mathematically symmetric; with
// FMA contraction the bits may depend on the argument order, which is fixed by the lane, so results are still
// deterministic.)
__device__ __forceinline__ LpState lp_merge(LpState x, LpState y) {
    if (x.s == 0.0f) return y;
    if (y.s == 0.0f) return x;
    LpState r;
    r.m = fmaxf(x.m, y.m);
    const float dx = x.m - r.m, dy = y.m - r.m; // <= 0
    const float fx = rlc_exp2_ftz(dx), fy = rlc_exp2_ftz(dy);
    r.s = x.s * fx + y.s * fy;
    r.a = fx * (x.a + x.s * dx) + fy * (y.a + y.s * dy);
    return r;
}

// Block-wide merge in a fixed order; the result is valid in thread 0.
__device__ __forceinline__ LpState lp_block_merge(LpState st, LpState *sh /* LP_WARPS */) {
    for (int o = 16; o > 0; o >>= 1) {
        LpState y;
        y.m = __shfl_xor_sync(0xffffffffu, st.m, o);
        y.s = __shfl_xor_sync(0xffffffffu, st.s, o);
        y.a = __shfl_xor_sync(0xffffffffu, st.a, o);
        st = lp_merge(st, y);
    }
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = st;
    __syncthreads();
    if (threadIdx.x == 0)
        for (int w = 1; w < LP_WARPS; w++) st = lp_merge(st, sh[w]);
    return st;
}

// Folds one base-2 value u into a thread's state.
__device__ __forceinline__ void lp_fold(LpState &st, float u) {
    if (u > st.m) { // new running max: rescale what this thread has so far
        if (st.s > 0.0f) {
            const float d = st.m - u, f = rlc_exp2_ftz(d);
            st.a = f * (st.a + st.s * d);
            st.s *= f;
        }
        st.m = u;
    }
    const float d = u - st.m, e = rlc_exp2_ftz(d);
    st.s += e;
    st.a += e * d;
}

// Variant 1. One block per row r of the chunk U (tb, vc), row stride ldu. Folds the row into the token's state
// (m, s, a, uy at index r; `first` = first vocabulary chunk: the state starts empty).
__global__ void __launch_bounds__(LP_THREADS)
    lp_online_kernel(const float *U, int vc, int ldu, int v0, const int *targets, float *m, float *s, float *a,
                     float *uy, int first) {
    __shared__ LpState sh_merge[LP_WARPS];
    const int r = blockIdx.x;
    const float *row = U + (size_t)r * ldu;
    LpState st = {-INFINITY, 0.0f, 0.0f};
    // 16-byte loads (rows start 32-byte aligned: ldu is a multiple of 8 and U is 256-byte aligned), then the tail
    const float4 *row4 = reinterpret_cast<const float4 *>(row);
    const int n4 = vc >> 2;
    for (int j = threadIdx.x; j < n4; j += LP_THREADS) {
        const float4 q = row4[j];
        lp_fold(st, q.x);
        lp_fold(st, q.y);
        lp_fold(st, q.z);
        lp_fold(st, q.w);
    }
    for (int j = (n4 << 2) + threadIdx.x; j < vc; j += LP_THREADS) lp_fold(st, row[j]);
    st = lp_block_merge(st, sh_merge);
    if (threadIdx.x == 0) {
        if (!first) st = lp_merge(LpState{m[r], s[r], a[r]}, st);
        m[r] = st.m, s[r] = st.s, a[r] = st.a;
        const int y = targets[r];
        if (y >= v0 && y < v0 + vc) uy[r] = row[y - v0] * RLC_LN2;
        else if (first) uy[r] = 0.0f;
    }
}

__global__ void lp_finalize_kernel(int tb, const int *targets, const float *m, const float *s, const float *a,
                                   const float *uy, float *logp, float *entropy, float *lse) {
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= tb) return;
    const float ls = logf(s[r]), l = m[r] * RLC_LN2 + ls;
    lse[r] = l;
    if (entropy) entropy[r] = ls - a[r] / s[r] * RLC_LN2;
    logp[r] = targets[r] >= 0 ? uy[r] - l : 0.0f;
}

// The dz kernels' row (blockIdx.x) of U, read as fp32 and overwritten as bf16, and its constants: c = dL/dlogp /
// tau (0 without a target), e = dL/dH / tau, lse l (and in base-2 units l2), entropy H, and the target's column yj
// in this chunk (may be outside it).
struct LpDzRow {
    const float *row;
    __nv_bfloat16 *out;
    float c, e, l, l2, H;
    int yj;
};
__device__ __forceinline__ LpDzRow lp_dz_row(float *U, int ldu, int v0, const int *targets, const float *dlogp,
                                             const float *dent, const float *lse, const float *entropy,
                                             float inv_tau) {
    const int r = blockIdx.x, y = targets[r];
    LpDzRow q;
    q.row = U + (size_t)r * ldu;
    q.out = reinterpret_cast<__nv_bfloat16 *>(U + (size_t)r * ldu);
    q.c = (dlogp && y >= 0) ? dlogp[r] * inv_tau : 0.0f;
    q.e = dent ? dent[r] * inv_tau : 0.0f;
    q.l = lse[r], q.l2 = q.l * RLC_LOG2E, q.H = entropy[r];
    q.yj = y - v0;
    return q;
}
// dz of column j from its base-2 logit z: (c (1[j == y] - p) - e p (log p + H)) with log p = z ln 2 - l.
__device__ __forceinline__ float lp_dz(const LpDzRow &q, float z, int j) {
    const float lp = z * RLC_LN2 - q.l, p = rlc_exp2_ftz(z - q.l2);
    float dz = -q.c * p - q.e * p * (lp + q.H);
    if (j == q.yj) dz += q.c;
    return dz;
}

// Variant 1. One block per row r of the chunk U (tb, vc), row stride ldu (fp32): overwrites it with bf16 dz, row
// stride 2*ldu (bf16 elements). Segments of LP_THREADS*LP_SEG elements are read in order; the bf16 writes of segment k
// land on fp32 elements < (k+1)*LP_THREADS*LP_SEG, all read before this segment's barrier, and never on
// elements of later segments.
__global__ void __launch_bounds__(LP_THREADS)
    lp_dz_kernel(float *U, int vc, int ldu, int v0, const int *targets, const float *dlogp, const float *dent,
                 const float *lse, const float *entropy, float inv_tau) {
    const LpDzRow q = lp_dz_row(U, ldu, v0, targets, dlogp, dent, lse, entropy, inv_tau);
    const float *row = q.row;
    __nv_bfloat16 *out = q.out;
    for (int base = 0; base < vc; base += LP_THREADS * LP_SEG) {
        float z[LP_SEG];
        for (int k = 0; k < LP_SEG; k++) {
            const int j = base + k * LP_THREADS + threadIdx.x;
            z[k] = j < vc ? row[j] : 0.0f;
        }
        __syncthreads();
        for (int k = 0; k < LP_SEG; k++) {
            const int j = base + k * LP_THREADS + threadIdx.x;
            if (j >= vc) continue;
            const float dz = lp_dz(q, z[k], j);
            out[j] = __float2bfloat16(dz);
        }
    }
}

// ------------------------------------------------------------------------------------- variant 0 kernels

// Loads batch `base` (a multiple of LP_BATCH) of a row with vc valid values: u[4i + k] = row[base + 4 (i
// LP_THREADS + threadIdx.x) + k], -inf past vc. All LP_VPT / 4 loads are issued before any value is used. A
// float4 may cover up to 3 floats past vc: rows are padded to ldu (a multiple of 8) and 32-byte aligned.
__device__ __forceinline__ void lp_load_batch(const float *row, int vc, int base, float (&u)[LP_VPT]) {
    const float4 *row4 = reinterpret_cast<const float4 *>(row + base);
    const int n = vc - base; // valid values from base, > 0
    float4 q[LP_VPT / 4];
RLC_UNROLL
    for (int i = 0; i < LP_VPT / 4; i++) {
        const int j4 = i * LP_THREADS + threadIdx.x;
        q[i] = 4 * j4 < n ? row4[j4] : make_float4(-INFINITY, -INFINITY, -INFINITY, -INFINITY);
    }
RLC_UNROLL
    for (int i = 0; i < LP_VPT / 4; i++) {
        const int j = 4 * (i * LP_THREADS + threadIdx.x);
        u[4 * i + 0] = j + 0 < n ? q[i].x : -INFINITY;
        u[4 * i + 1] = j + 1 < n ? q[i].y : -INFINITY;
        u[4 * i + 2] = j + 2 < n ? q[i].z : -INFINITY;
        u[4 * i + 3] = j + 3 < n ? q[i].w : -INFINITY;
    }
}

// Max of x over the block, returned to every thread (fmaxf is exact: any order gives the same bits).
__device__ __forceinline__ float lp_block_max(float x, float *sh /* LP_WARPS */) {
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = x;
    __syncthreads();
    float r = sh[0];
    for (int w = 1; w < LP_WARPS; w++) r = fmaxf(r, sh[w]);
    return r;
}

// Sums of x and y over the block in a fixed order, valid in thread 0. The barrier orders this call's shared
// writes after every thread's reads of the previous lp_block_max (each thread reads it before calling this).
__device__ __forceinline__ void lp_block_sum2(float &x, float &y, float2 *sh /* LP_WARPS */) {
    for (int o = 16; o > 0; o >>= 1) {
        x += __shfl_xor_sync(0xffffffffu, x, o);
        y += __shfl_xor_sync(0xffffffffu, y, o);
    }
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = make_float2(x, y);
    __syncthreads();
    if (threadIdx.x == 0) {
        x = sh[0].x, y = sh[0].y;
        for (int w = 1; w < LP_WARPS; w++) x += sh[w].x, y += sh[w].y;
    }
}

// One block per row r of the chunk U (tb, vc), row stride ldu: as lp_online_kernel, batch by batch. A batch's
// state is (M, sum 2^(u - M), sum 2^(u - M)(u - M)) with M its max, so each element costs one subtraction, one
// ex2 and two adds, independent of the others; only the batches' states are merged with rescaling.
__global__ void __launch_bounds__(LP_THREADS)
    lp_stats_kernel(const float *U, int vc, int ldu, int v0, const int *targets, float *m, float *s, float *a,
                    float *uy, int first) {
    __shared__ float sh_max[LP_WARPS];
    __shared__ float2 sh_sum[LP_WARPS];
    const int r = blockIdx.x;
    const float *row = U + (size_t)r * ldu;
    // thread 0 issues the row's scalar loads first, so that their latency hides behind the batch's loads
    LpState prev = {-INFINITY, 0.0f, 0.0f}, st = {-INFINITY, 0.0f, 0.0f};
    if (threadIdx.x == 0) {
        const int yj = targets[r] - v0;
        if (yj >= 0 && yj < vc) uy[r] = row[yj] * RLC_LN2;
        else if (first) uy[r] = 0.0f;
        if (!first) prev = LpState{m[r], s[r], a[r]};
    }
    for (int base = 0; base < vc; base += LP_BATCH) {
        float u[LP_VPT];
        lp_load_batch(row, vc, base, u);
        float mx = u[0];
RLC_UNROLL
        for (int i = 1; i < LP_VPT; i++) mx = fmaxf(mx, u[i]);
        const float M = lp_block_max(mx, sh_max);
        float s0 = 0.0f, s1 = 0.0f, a0 = 0.0f, a1 = 0.0f; // two chains for instruction-level parallelism
RLC_UNROLL
        for (int i = 0; i < LP_VPT; i += 2) {
            const float d0 = fmaxf(u[i] - M, LP_D_MIN), d1 = fmaxf(u[i + 1] - M, LP_D_MIN);
            const float e0 = rlc_exp2_ftz(d0), e1 = rlc_exp2_ftz(d1);
            s0 += e0, s1 += e1;
            a0 = fmaf(e0, d0, a0), a1 = fmaf(e1, d1, a1);
        }
        float bs = s0 + s1, ba = a0 + a1;
        lp_block_sum2(bs, ba, sh_sum);
        if (threadIdx.x == 0) st = lp_merge(st, LpState{M, bs, ba});
    }
    if (threadIdx.x == 0) {
        if (!first) st = lp_merge(prev, st);
        m[r] = st.m, s[r] = st.s, a[r] = st.a;
    }
}

// One block per row r of the chunk U (tb, vc), row stride ldu (fp32): overwrites it with bf16 dz, row stride
// 2*ldu (bf16 elements), as lp_dz_kernel, batch by batch. A batch's bf16 writes land on fp32 elements
// < (base + LP_BATCH) / 2, all read before the batch's barrier, and never on later batches' elements.
__global__ void __launch_bounds__(LP_THREADS)
    lp_dz_batch_kernel(float *U, int vc, int ldu, int v0, const int *targets, const float *dlogp, const float *dent,
                       const float *lse, const float *entropy, float inv_tau) {
    const LpDzRow q = lp_dz_row(U, ldu, v0, targets, dlogp, dent, lse, entropy, inv_tau);
    const float *row = q.row;
    __nv_bfloat16 *out = q.out;
    for (int base = 0; base < vc; base += LP_BATCH) {
        float z[LP_VPT];
        lp_load_batch(row, vc, base, z);
        __syncthreads(); // every value of the batch is in registers before any thread overwrites it
RLC_UNROLL
        for (int i = 0; i < LP_VPT / 4; i++) {
            const int j = base + 4 * (i * LP_THREADS + threadIdx.x);
            if (j >= vc) continue;
            float dz[4];
RLC_UNROLL
            for (int k = 0; k < 4; k++) {
                dz[k] = j + k < vc ? lp_dz(q, z[4 * i + k], j + k) : 0.0f; // past vc: padding no GEMM reads
            }
            const __nv_bfloat162 lo = __floats2bfloat162_rn(dz[0], dz[1]), hi = __floats2bfloat162_rn(dz[2], dz[3]);
            uint2 v;
            memcpy(&v.x, &lo, 4);
            memcpy(&v.y, &hi, 4);
            *reinterpret_cast<uint2 *>(out + j) = v; // 8-byte aligned: j is a multiple of 4
        }
    }
}

// ------------------------------------------------------------------------------------------------- host

struct LpPlan {
    int tc, vc, ldu_max;
    float *U;                // (tc, ldu_max) fp32 scratch
    float *m, *s, *a, *uy;   // (tc) row statistics
};

static int lp_round8(int n) { return (n + 7) & ~7; }

// Kernel variants (see the header), for bench_logprob_gpu --variants. Variant 0 is the default.
static const char *const lp_variant_names[] = {
    "v0: batched (32 values per thread, 8 loads in flight; block max, then sums)",
    "v1: per-element online state, 8-element dz segments (H200, 2026-11-27)",
};
#define LP_NV ((int)(sizeof(lp_variant_names) / sizeof(lp_variant_names[0])))
static int g_lp_variant = -1; // -1: not chosen yet (RLC_LP_VARIANT or 0)

static int lp_variant() {
    static std::once_flag once;
    std::call_once(once, [] {
        int v = 0;
        const char *e = getenv("RLC_LP_VARIANT");
        if (e) {
            char *end = NULL;
            const long x = strtol(e, &end, 10);
            if (end != e && *end == '\0' && x >= 0 && x < LP_NV) v = (int)x;
            else fprintf(stderr, "rlc logprob: ignoring RLC_LP_VARIANT=%s (want 0..%d)\n", e, LP_NV - 1);
        }
        if (g_lp_variant < 0) g_lp_variant = v;
    });
    return g_lp_variant;
}

extern "C" int rlc_cuda_logprob_variant_count(void) { return LP_NV; }
extern "C" const char *rlc_cuda_logprob_variant_name(int v) { return v >= 0 && v < LP_NV ? lp_variant_names[v] : NULL; }
extern "C" int rlc_cuda_logprob_set_variant(int v) {
    if (v < 0 || v >= LP_NV) return -1;
    lp_variant(); // the environment is read first, so that it cannot override this call later
    g_lp_variant = v;
    return 0;
}
extern "C" int rlc_cuda_logprob_get_variant(void) { return lp_variant(); }

static size_t lp_align(size_t n) { return (n + 255) & ~(size_t)255; }

// Chunk sizes and the workspace layout: U, then m, s, a, uy. ws may be NULL (sizes only).
static LpPlan lp_plan(int T, int V, int t_chunk, int v_chunk, void *ws, size_t *bytes) {
    LpPlan p;
    p.tc = t_chunk > 0 ? t_chunk : RLC_LP_T_CHUNK;
    p.vc = v_chunk > 0 ? v_chunk : RLC_LP_V_CHUNK;
    if (p.tc > T) p.tc = T > 0 ? T : 1;
    if (p.vc > V) p.vc = V > 0 ? V : 1;
    p.ldu_max = lp_round8(p.vc); // rows 32-byte aligned for the GEMM
    const size_t ub = lp_align((size_t)p.tc * p.ldu_max * sizeof(float)), rb = lp_align((size_t)p.tc * sizeof(float));
    char *c = (char *)ws;
    p.U = p.m = p.s = p.a = p.uy = NULL;
    if (c) {
        p.U = (float *)c;
        p.m = (float *)(c + ub);
        p.s = (float *)(c + ub + rb);
        p.a = (float *)(c + ub + 2 * rb);
        p.uy = (float *)(c + ub + 3 * rb);
    }
    if (bytes) *bytes = ub + 4 * rb;
    return p;
}

extern "C" size_t rlc_cuda_logprob_workspace_bytes(int T, int V, int t_chunk, int v_chunk) {
    size_t bytes = 0;
    lp_plan(T, V, t_chunk, v_chunk, NULL, &bytes);
    return bytes;
}

static int lp_args_ok(const char *what, rlc_blas *blas, const void *hidden, const void *w, const int *targets, int T,
                      int C, int V, float tau, void *ws) {
    const char *bad = !blas                             ? "a blas handle is required"
                      : !hidden || !w || !targets || !ws ? "hidden, w, targets and workspace are required"
                      : T < 0 || C < 1 || V < 1          ? "shape must have T >= 0, C >= 1, V >= 1"
                      : !(tau > 0)                       ? "temperature must be > 0"
                      : ((uintptr_t)ws & 15) != 0        ? "workspace must be 16-byte aligned (cudaMalloc's is)"
                                                         : NULL;
    if (bad) fprintf(stderr, "%s: %s (T=%d C=%d V=%d tau=%g)\n", what, bad, T, C, V, tau);
    return bad == NULL;
}

static int lp_launch_ok(const char *what) {
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) return 1;
    fprintf(stderr, "%s: kernel launch failed: %s\n", what, cudaGetErrorString(e));
    return 0;
}

// U (tb, vc) with row stride ldu = hidden[t0 : t0+tb] @ w[v0 : v0+vc]^T * log2(e) / tau (base-2 logits).
static int lp_logits(rlc_blas *blas, const LpPlan &p, const void *hidden, const void *w, int t0, int tb, int v0,
                     int vc, int ldu, int C, float inv_tau) {
    const __nv_bfloat16 *h = (const __nv_bfloat16 *)hidden + (size_t)t0 * C;
    const __nv_bfloat16 *wc = (const __nv_bfloat16 *)w + (size_t)v0 * C;
    return rlc_blas_gemm_bf16(blas, 0, 1, tb, vc, C, inv_tau * RLC_LOG2E, h, C, wc, C, 0.0f, p.U, ldu, 0);
}

extern "C" int rlc_cuda_logprob_forward(rlc_blas *blas, float *logp, float *entropy, float *lse, const void *hidden,
                                        const void *w, const int *targets, int T, int C, int V, float tau,
                                        int t_chunk, int v_chunk, void *workspace, void *stream) {
    const char *what = "rlc_cuda_logprob_forward";
    if (!lp_args_ok(what, blas, hidden, w, targets, T, C, V, tau, workspace)) return -1;
    if (!logp || !lse) {
        fprintf(stderr, "%s: logp and lse are required\n", what);
        return -1;
    }
    if (T == 0) return 0;
    cudaStream_t st = (cudaStream_t)stream;
    rlc_blas_set_stream(blas, stream);
    const LpPlan p = lp_plan(T, V, t_chunk, v_chunk, workspace, NULL);
    const float inv_tau = (float)(1.0 / (double)tau);
    const int variant = lp_variant();
    for (int t0 = 0; t0 < T; t0 += p.tc) {
        const int tb = T - t0 < p.tc ? T - t0 : p.tc;
        for (int v0 = 0; v0 < V; v0 += p.vc) {
            const int vc = V - v0 < p.vc ? V - v0 : p.vc, ldu = lp_round8(vc);
            if (lp_logits(blas, p, hidden, w, t0, tb, v0, vc, ldu, C, inv_tau)) return -1;
            if (variant == 0)
                RLC_LAUNCH(lp_stats_kernel, tb, LP_THREADS, 0, st, (const float *)p.U, vc, ldu, v0, targets + t0,
                           p.m, p.s, p.a, p.uy, (int)(v0 == 0));
            else
                RLC_LAUNCH(lp_online_kernel, tb, LP_THREADS, 0, st, (const float *)p.U, vc, ldu, v0, targets + t0,
                           p.m, p.s, p.a, p.uy, (int)(v0 == 0));
            if (!lp_launch_ok(what)) return -1;
        }
        RLC_LAUNCH(lp_finalize_kernel, (tb + 127) / 128, 128, 0, st, tb, targets + t0, (const float *)p.m,
                   (const float *)p.s, (const float *)p.a, (const float *)p.uy, logp + t0,
                   entropy ? entropy + t0 : (float *)NULL, lse + t0);
        if (!lp_launch_ok(what)) return -1;
    }
    return 0;
}

extern "C" int rlc_cuda_logprob_backward(rlc_blas *blas, float *dhidden, float *dw, const float *dlogp,
                                         const float *dent, const void *hidden, const void *w, const int *targets,
                                         const float *lse, const float *entropy, int T, int C, int V, float tau,
                                         int t_chunk, int v_chunk, void *workspace, void *stream) {
    const char *what = "rlc_cuda_logprob_backward";
    if (!lp_args_ok(what, blas, hidden, w, targets, T, C, V, tau, workspace)) return -1;
    if (!lse || !entropy) {
        fprintf(stderr, "%s: the forward's lse and entropy are required\n", what);
        return -1;
    }
    if (T == 0 || (!dhidden && !dw) || (!dlogp && !dent)) return 0;
    cudaStream_t st = (cudaStream_t)stream;
    rlc_blas_set_stream(blas, stream);
    const LpPlan p = lp_plan(T, V, t_chunk, v_chunk, workspace, NULL);
    const float inv_tau = (float)(1.0 / (double)tau);
    const int variant = lp_variant();
    const __nv_bfloat16 *hid = (const __nv_bfloat16 *)hidden, *wt = (const __nv_bfloat16 *)w;
    for (int t0 = 0; t0 < T; t0 += p.tc) {
        const int tb = T - t0 < p.tc ? T - t0 : p.tc;
        for (int v0 = 0; v0 < V; v0 += p.vc) {
            const int vc = V - v0 < p.vc ? V - v0 : p.vc, ldu = lp_round8(vc);
            if (lp_logits(blas, p, hidden, w, t0, tb, v0, vc, ldu, C, inv_tau)) return -1;
            const float *dl = dlogp ? dlogp + t0 : (const float *)NULL, *de = dent ? dent + t0 : (const float *)NULL;
            if (variant == 0)
                RLC_LAUNCH(lp_dz_batch_kernel, tb, LP_THREADS, 0, st, p.U, vc, ldu, v0, targets + t0, dl, de, lse + t0,
                           entropy + t0, inv_tau);
            else
                RLC_LAUNCH(lp_dz_kernel, tb, LP_THREADS, 0, st, p.U, vc, ldu, v0, targets + t0, dl, de, lse + t0,
                           entropy + t0, inv_tau);
            if (!lp_launch_ok(what)) return -1;
            const __nv_bfloat16 *dz = (const __nv_bfloat16 *)p.U; // (tb, vc), row stride 2*ldu
            // dhidden[t0:] (tb, C) += dz (tb, vc) @ w[v0:] (vc, C)
            if (dhidden && rlc_blas_gemm_bf16(blas, 0, 0, tb, C, vc, 1.0f, dz, 2 * ldu, wt + (size_t)v0 * C, C, 1.0f,
                                              dhidden + (size_t)t0 * C, C, 0))
                return -1;
            // dw[v0:] (vc, C) += dz^T (vc, tb) @ hidden[t0:] (tb, C)
            if (dw && rlc_blas_gemm_bf16(blas, 1, 0, vc, C, tb, 1.0f, dz, 2 * ldu, hid + (size_t)t0 * C, C, 1.0f,
                                         dw + (size_t)v0 * C, C, 0))
                return -1;
        }
    }
    return 0;
}
