// kernels/cuda/logprob.cu: fused LM-head log-prob / entropy (forward and backward) on the GPU; interface and
// formulas in logprob.h. Per (token chunk, vocabulary chunk):
//   forward:  GEMM U (tb, vc) = hidden[t0:] @ w[v0:]^T * log2(e) / tau (fp32 scratch, row stride ldu): the
//             logits in base-2 units, u2 = u / ln 2, so that every exponential below is one MUFU ex2
//             (rlc_exp2_ftz) after one add (expf adds a range reduction per element; at C = 896 the statistics
//             kernel took about as long as the GEMM on an H200, bench/results/gpu_h200_kernels.md);
//             lp_online_kernel: one block per row folds the chunk into (m, s, a, u_y) with
//               m = running max of u2, s = sum 2^(u2 - m), a = sum 2^(u2 - m) (u2 - m), u_y = the target's
//               logit (natural units);
//   then lp_finalize_kernel: lse = m ln 2 + log s, H = log s - (a/s) ln 2 (both terms >= 0: no cancellation),
//   logp.
//   backward: the same GEMM, lp_dz_kernel overwrites each fp32 row with its bf16 dz (in place: the bf16 row r
//             occupies the first half of fp32 row r, so the bf16 matrix has row stride 2*ldu), then
//             dhidden[t0:] += dz @ w[v0:] and dw[v0:] += dz^T @ hidden[t0:].
// Statistics are fp32 (the online rescaling keeps every exponent <= 0); reductions are fixed warp butterflies
// and a fixed order over warps, so the result does not depend on scheduling.
#include "rlc_cuda.h"

#include <math.h>
#include <stdint.h>

#include "logprob.h"

#define LP_THREADS 256 // threads per row block
#define LP_WARPS (LP_THREADS / 32)
#define LP_SEG 8       // elements per thread per in-place segment of the dz kernel

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
__device__ __forceinline__ LpState lp_block_merge(LpState st) {
    __shared__ LpState sh[LP_WARPS];
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

// One block per row r of the chunk U (tb, vc), row stride ldu. Folds the row into the token's state
// (m, s, a, uy at index r; `first` = first vocabulary chunk: the state starts empty).
__global__ void __launch_bounds__(LP_THREADS)
    lp_online_kernel(const float *U, int vc, int ldu, int v0, const int *targets, float *m, float *s, float *a,
                     float *uy, int first) {
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
    st = lp_block_merge(st);
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

// One block per row r of the chunk U (tb, vc), row stride ldu (fp32): overwrites it with bf16 dz, row stride
// 2*ldu (bf16 elements). Segments of LP_THREADS*LP_SEG elements are read in order; the bf16 writes of segment k
// land on fp32 elements < (k+1)*LP_THREADS*LP_SEG, all read before this segment's barrier, and never on
// elements of later segments.
__global__ void __launch_bounds__(LP_THREADS)
    lp_dz_kernel(float *U, int vc, int ldu, int v0, const int *targets, const float *dlogp, const float *dent,
                 const float *lse, const float *entropy, float inv_tau) {
    const int r = blockIdx.x, y = targets[r];
    float *row = U + (size_t)r * ldu;
    __nv_bfloat16 *out = reinterpret_cast<__nv_bfloat16 *>(row);
    const float c = (dlogp && y >= 0) ? dlogp[r] * inv_tau : 0.0f;
    const float e = dent ? dent[r] * inv_tau : 0.0f;
    const float l = lse[r], l2 = l * RLC_LOG2E, H = entropy[r];
    const int yj = y - v0; // the target's column in this chunk (may be outside)
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
            const float lp = z[k] * RLC_LN2 - l, p = rlc_exp2_ftz(z[k] - l2); // z in base-2 units
            float dz = -c * p - e * p * (lp + H);
            if (j == yj) dz += c;
            out[j] = __float2bfloat16(dz);
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
    for (int t0 = 0; t0 < T; t0 += p.tc) {
        const int tb = T - t0 < p.tc ? T - t0 : p.tc;
        for (int v0 = 0; v0 < V; v0 += p.vc) {
            const int vc = V - v0 < p.vc ? V - v0 : p.vc, ldu = lp_round8(vc);
            if (lp_logits(blas, p, hidden, w, t0, tb, v0, vc, ldu, C, inv_tau)) return -1;
            RLC_LAUNCH(lp_online_kernel, tb, LP_THREADS, 0, st, (const float *)p.U, vc, ldu, v0, targets + t0, p.m,
                       p.s, p.a, p.uy, (int)(v0 == 0));
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
    const __nv_bfloat16 *hid = (const __nv_bfloat16 *)hidden, *wt = (const __nv_bfloat16 *)w;
    for (int t0 = 0; t0 < T; t0 += p.tc) {
        const int tb = T - t0 < p.tc ? T - t0 : p.tc;
        for (int v0 = 0; v0 < V; v0 += p.vc) {
            const int vc = V - v0 < p.vc ? V - v0 : p.vc, ldu = lp_round8(vc);
            if (lp_logits(blas, p, hidden, w, t0, tb, v0, vc, ldu, C, inv_tau)) return -1;
            RLC_LAUNCH(lp_dz_kernel, tb, LP_THREADS, 0, st, p.U, vc, ldu, v0, targets + t0,
                       dlogp ? dlogp + t0 : (const float *)NULL, dent ? dent + t0 : (const float *)NULL, lse + t0,
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
