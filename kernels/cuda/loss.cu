// kernels/cuda/loss.cu: policy-loss (PPO clip with asymmetric eps and dual clip, GSPO, CISPO; KL estimators,
// entropy bonus, TIS weights and masks, aggregation with global counts), clipped value loss, GRPO / RLOO group
// advantages and the EMPG modulation on the GPU. Interface and conventions: loss.h; CPU twins: host/loss.c and
// host/advantage.c, whose semantics are matched case by case (the comments there explain the why).
//
// Structure of a loss call (T tokens, B sequences):
//   1. seq_prepass: one block per sequence sums what is per-sequence (response tokens n_i, sum of logp - old for
//      GSPO, sum of old - roll for sequence-level TIS) and turns it into the sequence's aggregation weights.
//   2. token kernel: a thread per token (grid-stride past LS_MAX_BLOCKS blocks); writes dL/dlogp and dL/dH and
//      reduces this block's loss terms and metric counters (fp64) into one row of partials, in a fixed
//      shuffle-tree order.
//   3. finalize: one block adds the partial rows in index order and accumulates them into the stats.
// Per-token math is fp32, sums are fp64; nothing uses float atomics, so the result is bitwise reproducible.
#include "rlc_cuda.h"

#include <math.h>

#include "loss.h"

#define LS_THREADS 256                // threads per block of every kernel here (8 warps)
#define LS_WARPS (LS_THREADS / 32)
#define LS_LOG_RATIO_CLAMP 20.0f      // as host/loss.c

// ------------------------------------------------------------------------------------------------ helpers

static inline size_t ls_align(size_t n) { return (n + 255) & ~(size_t)255; }

#define LS_MAX_BLOCKS 1024 // token kernels: at most this many blocks (and partial rows), grid-stride beyond

// Blocks of a token kernel: a function of T only (never of the GPU), so that results are reproducible anywhere.
static inline int ls_grid(int T) {
    const int n = T > 0 ? (T + LS_THREADS - 1) / LS_THREADS : 1;
    return n < LS_MAX_BLOCKS ? n : LS_MAX_BLOCKS;
}

__device__ __forceinline__ float ls_clampf(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }

__device__ __forceinline__ bool ls_on(const uint8_t *mask, int t) { return mask ? mask[t] != 0 : true; }

// Sequence of token t: the largest i in [0, B) with cu[i] <= t (skips empty sequences).
__device__ __forceinline__ int ls_seq_of(const int *cu, int B, int t) {
    int lo = 0, hi = B - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) >> 1;
        if (cu[mid] <= t) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

// rlc_agg_weight's twin (fp64: it multiplies fp32 terms that are then summed in fp64).
__device__ __forceinline__ double ls_agg_weight(rlc_agg agg, int n_i, rlc_loss_norm n) {
    if (n_i <= 0) return 0.0;
    switch (agg) {
    case RLC_AGG_TOKEN_MEAN: return n.n_tok > 0 ? 1.0 / n.n_tok : 0.0;
    case RLC_AGG_SEQ_MEAN_TOKEN_SUM: return n.n_seq > 0 ? 1.0 / n.n_seq : 0.0;
    case RLC_AGG_SEQ_MEAN_TOKEN_MEAN: return n.n_seq > 0 ? 1.0 / (n.n_seq * n_i) : 0.0;
    case RLC_AGG_SEQ_MEAN_TOKEN_SUM_NORM: return n.n_seq > 0 && n.l_const > 0 ? 1.0 / (n.n_seq * n.l_const) : 0.0;
    }
    return 0.0;
}

// Warp butterfly: every lane ends with the same bits (a + b == b + a at each level).
__device__ __forceinline__ double ls_warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ double ls_warp_min(double v) {
    for (int o = 16; o > 0; o >>= 1) v = fmin(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ double ls_warp_max(double v) {
    for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Reduces v[0..N) over the block (entries < NSUM are sums, the rest maxima) and writes the result to out[0..N)
// (global memory, threads 0..N-1). Fixed order: warp butterflies, then warps 0..7 in order. Every thread of
// the block must call it (it has a barrier).
template <int N, int NSUM> __device__ void ls_block_reduce(double (&v)[N], double *out) {
    __shared__ double sh[LS_WARPS][N];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int k = 0; k < N; k++) v[k] = k < NSUM ? ls_warp_sum(v[k]) : ls_warp_max(v[k]);
    if (lane == 0)
        for (int k = 0; k < N; k++) sh[warp][k] = v[k];
    __syncthreads();
    if (threadIdx.x < N) {
        const int k = threadIdx.x;
        double acc = sh[0][k];
        for (int w = 1; w < LS_WARPS; w++) acc = k < NSUM ? acc + sh[w][k] : fmax(acc, sh[w][k]);
        out[k] = acc;
    }
}

// ------------------------------------------------------------------------------ per-token building blocks

// rlc_ppo_token's twin: returns L, writes dL/dr and the clip indicators. c <= 0: no dual clip.
__device__ __forceinline__ float ls_ppo_token(float r, float A, float eps_low, float eps_high, float c, float *dL_dr,
                                              int *clipped, int *lower) {
    float rc = ls_clampf(r, 1.0f - eps_low, 1.0f + eps_high);
    float L1 = -A * r, L2 = -A * rc;
    float L = L1, g = -A; // tie (r inside the range): the unclipped branch carries the gradient
    if (L2 > L1) L = L2, g = 0.0f;
    int low = 0;
    if (A < 0 && c > 0 && L > -A * c) L = -A * c, g = 0.0f, low = 1;
    *dL_dr = g;
    *clipped = L2 > L1;
    *lower = low;
    return L;
}

// rlc_kl_token's twin: returns the estimator's value, writes d/dlogp.
__device__ __forceinline__ float ls_kl_token(rlc_kl_est est, float logp, float ref, float *dk) {
    float D = logp - ref, v = 0.0f, g = 0.0f;
    switch (est) {
    case RLC_KL_K1: v = D, g = 1.0f; break;
    case RLC_KL_ABS: v = fabsf(D), g = D > 0 ? 1.0f : (D < 0 ? -1.0f : 0.0f); break;
    case RLC_KL_K2: v = 0.5f * D * D, g = D; break;
    case RLC_KL_K1P: v = D, g = D; break;
    case RLC_KL_K3:
    case RLC_KL_K3P: {
        float qr = ref - logp, q = ls_clampf(qr, -LS_LOG_RATIO_CLAMP, LS_LOG_RATIO_CLAMP);
        float e = expf(q), k3 = e - q - 1.0f;
        v = ls_clampf(k3, -10.0f, 10.0f);
        if (est == RLC_KL_K3P) g = D;
        else g = (q == qr && k3 <= 10.0f && k3 >= -10.0f) ? 1.0f - e : 0.0f;
        break;
    }
    }
    *dk = g;
    return v;
}

// ------------------------------------------------------------------------------------- per-sequence pre-pass

// Per-sequence results of the pre-pass (workspace arrays of B entries).
struct SeqInfo {
    float *w_agg;  // aggregation weight of the KL / entropy / value terms
    float *w_pg;   // aggregation weight of the policy term (GSPO: seq-mean-token-mean)
    float *gspo_d; // clamp(mean(logp - old), +-20) over response tokens (GSPO)
    float *seq_w;  // exp(clamp(sum(old - roll), +-20)) (sequence-level TIS)
    int *n;        // response tokens n_i
};

// One block per sequence. logp/old/roll may be NULL (then their sums are 0).
__global__ void __launch_bounds__(LS_THREADS)
    ls_seq_prepass_kernel(SeqInfo si, const int *cu, const uint8_t *mask, const float *logp, const float *old,
                          const float *roll, rlc_agg agg, rlc_agg pg_agg, rlc_loss_norm norm) {
    const int i = blockIdx.x, t0 = cu[i], t1 = cu[i + 1];
    double v[3] = {0.0, 0.0, 0.0}; // n_i, sum(logp - old), sum(old - roll)
    for (int t = t0 + threadIdx.x; t < t1; t += LS_THREADS) {
        if (!ls_on(mask, t)) continue; // masked inputs are never read
        v[0] += 1.0;
        if (logp) v[1] += (double)logp[t] - (double)old[t];
        if (roll) v[2] += (double)old[t] - (double)roll[t];
    }
    __shared__ double red[3];
    ls_block_reduce<3, 3>(v, red);
    __syncthreads();
    if (threadIdx.x == 0) {
        const int ni = (int)red[0];
        si.n[i] = ni;
        si.w_agg[i] = (float)ls_agg_weight(agg, ni, norm);
        si.w_pg[i] = (float)ls_agg_weight(pg_agg, ni, norm);
        double d = ni > 0 ? red[1] / ni : 0.0;
        d = d < -LS_LOG_RATIO_CLAMP ? -LS_LOG_RATIO_CLAMP : (d > LS_LOG_RATIO_CLAMP ? LS_LOG_RATIO_CLAMP : d);
        si.gspo_d[i] = (float)d;
        double s = red[2] < -LS_LOG_RATIO_CLAMP ? -LS_LOG_RATIO_CLAMP
                                                 : (red[2] > LS_LOG_RATIO_CLAMP ? LS_LOG_RATIO_CLAMP : red[2]);
        si.seq_w[i] = (float)exp(s);
    }
}

// ------------------------------------------------------------------------------------------ policy loss

// Partial-row layout of the policy loss: sums first, then maxima.
enum {
    PL_PG = 0, PL_KL, PL_ENT, PL_TOK, PL_SEQ, PL_CLIP, PL_CLIP_LOW, PL_RATIO, PL_KL_SUM, PL_ENT_SUM, PL_MM_SUM,
    PL_TIS_W, PL_TIS_MASKED,
    PL_NSUM,
    PL_RATIO_MAX = PL_NSUM, PL_MM_MAX,
    PL_N
};

struct PolicyArgs {
    rlc_loss_config cfg;
    int T, B;
    const int *cu;
    const uint8_t *mask;
    const float *logp, *old, *ref, *roll, *adv, *entropy;
    float *dlogp, *dent;
    SeqInfo si;
    double *partials; // (gridDim.x, PL_N)
};

// One token: writes dlogp[t], dent[t] and sets this token's terms in v (zeros / -inf on entry).
__device__ __forceinline__ void ls_policy_token(const PolicyArgs &a, int t, double (&v)[PL_N]) {
    const rlc_loss_config &cfg = a.cfg;
    if (ls_on(a.mask, t)) {
        const int i = ls_seq_of(a.cu, a.B, t);
        const float w_pg = a.si.w_pg[i], w_agg = a.si.w_agg[i];
        const float A = a.adv[t], lp = a.logp[t], od = a.old[t];
        v[PL_TOK] = 1.0;

        // ratio and dr/dlogp (GSPO: the sequence ratio with derivative s_i)
        const float d_raw = lp - od;
        float r, dr;
        if (cfg.policy == RLC_PL_GSPO) {
            r = expf(a.si.gspo_d[i]);
            dr = r;
        } else {
            float d = ls_clampf(d_raw, -LS_LOG_RATIO_CLAMP, LS_LOG_RATIO_CLAMP);
            r = expf(d);
            dr = d == d_raw ? r : 0.0f;
        }
        v[PL_RATIO] = r;
        v[PL_RATIO_MAX] = r;

        // rollout correction weight (detached)
        float w_is = 1.0f;
        if (a.roll) {
            const float rl = a.roll[t], mm = fabsf(od - rl);
            v[PL_MM_SUM] = mm;
            v[PL_MM_MAX] = mm;
            if (cfg.tis != RLC_TIS_OFF) {
                w_is = cfg.tis == RLC_TIS_TOKEN ? expf(ls_clampf(od - rl, -LS_LOG_RATIO_CLAMP, LS_LOG_RATIO_CLAMP))
                                                : a.si.seq_w[i];
                if (cfg.tis_mode == RLC_TIS_TRUNCATE) {
                    if (w_is > cfg.tis_c) w_is = cfg.tis_c;
                } else if (w_is < cfg.tis_c_min || w_is > cfg.tis_c_max) {
                    w_is = 0.0f;
                    v[PL_TIS_MASKED] = 1.0;
                }
                v[PL_TIS_W] = w_is;
            }
        }

        // policy term
        float L, dL;
        if (cfg.policy == RLC_PL_CISPO) {
            const float wgt = r < cfg.cispo_eps_max ? r : cfg.cispo_eps_max;
            L = -wgt * A * lp;
            dL = -wgt * A;
            v[PL_CLIP] = r > cfg.cispo_eps_max;
        } else {
            const float c = cfg.policy == RLC_PL_PPO ? cfg.dual_clip : 0.0f;
            float dLdr;
            int cl, low;
            L = ls_ppo_token(r, A, cfg.eps_low, cfg.eps_high, c, &dLdr, &cl, &low);
            dL = dLdr * dr;
            v[PL_CLIP] = cl;
            v[PL_CLIP_LOW] = low;
        }
        v[PL_PG] = (double)(w_pg * w_is * L);
        float g = w_pg * w_is * dL;

        // KL to the reference
        if (a.ref) {
            float dk, k = ls_kl_token(cfg.kl_est, lp, a.ref[t], &dk);
            v[PL_KL_SUM] = k;
            if (cfg.kl_beta != 0) {
                v[PL_KL] = (double)(cfg.kl_beta * w_agg * k);
                g += cfg.kl_beta * w_agg * dk;
            }
        }
        // entropy bonus
        float ge = 0.0f;
        if (a.entropy) {
            const float H = a.entropy[t];
            v[PL_ENT_SUM] = H;
            if (cfg.ent_coef != 0) {
                v[PL_ENT] = -(double)(cfg.ent_coef * w_agg * H);
                ge = -cfg.ent_coef * w_agg;
            }
        }
        a.dlogp[t] = g;
        if (a.dent) a.dent[t] = ge;
    } else {
        a.dlogp[t] = 0.0f;
        if (a.dent) a.dent[t] = 0.0f;
    }
}

// Grid-stride over tokens with a grid that depends on T only (ls_grid), so the partial rows, and therefore
// the result, do not depend on the GPU.
__global__ void __launch_bounds__(LS_THREADS) ls_policy_token_kernel(PolicyArgs a) {
    double v[PL_N];
    for (int k = 0; k < PL_NSUM; k++) v[k] = 0.0;
    v[PL_RATIO_MAX] = v[PL_MM_MAX] = -INFINITY;
    for (int t = blockIdx.x * LS_THREADS + threadIdx.x; t < a.T; t += gridDim.x * LS_THREADS) {
        double u[PL_N];
        for (int k = 0; k < PL_NSUM; k++) u[k] = 0.0;
        u[PL_RATIO_MAX] = u[PL_MM_MAX] = -INFINITY;
        ls_policy_token(a, t, u);
        for (int k = 0; k < PL_NSUM; k++) v[k] += u[k];
        for (int k = PL_NSUM; k < PL_N; k++) v[k] = fmax(v[k], u[k]);
    }
    ls_block_reduce<PL_N, PL_NSUM>(v, a.partials + (size_t)blockIdx.x * PL_N);
}

// One block: adds the partial rows in index order (and counts the non-empty sequences), then accumulates the
// stats. Thread j takes rows j, j+256, ...; the block tree is fixed, so the order depends on nblk only.
__global__ void __launch_bounds__(LS_THREADS)
    ls_policy_finalize_kernel(const double *partials, int nblk, const int *seq_n, int B, double *red,
                              rlc_loss_stats *st, double *loss_out) {
    double v[PL_N];
    for (int k = 0; k < PL_NSUM; k++) v[k] = 0.0;
    v[PL_RATIO_MAX] = v[PL_MM_MAX] = -INFINITY;
    for (int b = threadIdx.x; b < nblk; b += LS_THREADS) {
        const double *p = partials + (size_t)b * PL_N;
        for (int k = 0; k < PL_NSUM; k++) v[k] += p[k];
        for (int k = PL_NSUM; k < PL_N; k++) v[k] = fmax(v[k], p[k]);
    }
    for (int i = threadIdx.x; i < B; i += LS_THREADS) v[PL_SEQ] += seq_n[i] > 0;
    ls_block_reduce<PL_N, PL_NSUM>(v, red);
    __syncthreads();
    if (threadIdx.x == 0) {
        const double loss = red[PL_PG] + red[PL_KL] + red[PL_ENT];
        st->pg_loss += red[PL_PG];
        st->kl_loss += red[PL_KL];
        st->ent_loss += red[PL_ENT];
        st->loss += loss;
        st->tok += red[PL_TOK];
        st->seq += red[PL_SEQ];
        st->clip_sum += red[PL_CLIP];
        st->clip_low_sum += red[PL_CLIP_LOW];
        st->ratio_sum += red[PL_RATIO];
        st->kl_sum += red[PL_KL_SUM];
        st->ent_sum += red[PL_ENT_SUM];
        st->mismatch_sum += red[PL_MM_SUM];
        st->tis_w_sum += red[PL_TIS_W];
        st->tis_masked += red[PL_TIS_MASKED];
        if (red[PL_RATIO_MAX] > st->ratio_max) st->ratio_max = red[PL_RATIO_MAX];
        if (red[PL_MM_MAX] > st->mismatch_max) st->mismatch_max = red[PL_MM_MAX];
        if (loss_out) *loss_out = loss;
    }
}

// Workspace layout shared by the policy and value losses.
struct LossWs {
    SeqInfo si;
    double *partials, *red;
    int nblk;
};
static LossWs ls_carve(void *ws, int T, int B, int nstat) {
    LossWs w;
    char *p = (char *)ws;
    const size_t fb = ls_align((size_t)(B > 0 ? B : 1) * sizeof(float));
    w.si.w_agg = (float *)p, p += fb;
    w.si.w_pg = (float *)p, p += fb;
    w.si.gspo_d = (float *)p, p += fb;
    w.si.seq_w = (float *)p, p += fb;
    w.si.n = (int *)p, p += fb;
    w.nblk = ls_grid(T);
    w.partials = (double *)p, p += ls_align((size_t)w.nblk * nstat * sizeof(double));
    w.red = (double *)p;
    return w;
}
static size_t ls_ws_bytes(int T, int B, int nstat) {
    const size_t fb = ls_align((size_t)(B > 0 ? B : 1) * sizeof(float));
    const size_t nblk = (size_t)ls_grid(T);
    return 5 * fb + ls_align(nblk * nstat * sizeof(double)) + ls_align((size_t)nstat * sizeof(double));
}

static int ls_check_launch(const char *what) {
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) return 0;
    fprintf(stderr, "%s: kernel launch failed: %s\n", what, cudaGetErrorString(e));
    return -1;
}

extern "C" size_t rlc_cuda_policy_loss_workspace_bytes(int T, int B) { return ls_ws_bytes(T, B, PL_N); }

extern "C" int rlc_cuda_policy_loss(const rlc_loss_config *cfg, const rlc_loss_norm *norm, const rlc_loss_batch *b,
                                    const rlc_policy_inputs *in, float *dlogp, float *dent, rlc_loss_stats *stats,
                                    double *loss_out, void *workspace, void *stream) {
    const char *bad = !in->logp || !in->old || !in->adv || !dlogp ? "logp, old, adv and dlogp are required"
                      : cfg->kl_beta != 0 && !in->ref                 ? "kl_beta > 0 needs ref log-probs"
                      : cfg->ent_coef != 0 && (!in->entropy || !dent) ? "ent_coef != 0 needs entropy and dent"
                      : cfg->tis != RLC_TIS_OFF && !in->roll          ? "TIS needs the rollout log-probs (roll)"
                      : b->B < 1 || b->T < 0 || !b->cu_seqlens         ? "a batch needs B >= 1 and cu_seqlens"
                      : !stats || !workspace                          ? "stats and workspace are required"
                                                                      : NULL;
    if (bad) {
        fprintf(stderr, "rlc_cuda_policy_loss: %s\n", bad);
        return -1;
    }
    cudaStream_t s = (cudaStream_t)stream;
    LossWs w = ls_carve(workspace, b->T, b->B, PL_N);
    const rlc_agg pg_agg = cfg->policy == RLC_PL_GSPO ? RLC_AGG_SEQ_MEAN_TOKEN_MEAN : cfg->agg;
    const float *pre_logp = cfg->policy == RLC_PL_GSPO ? in->logp : NULL;
    const float *pre_roll = cfg->tis == RLC_TIS_SEQ ? in->roll : NULL;
    RLC_LAUNCH(ls_seq_prepass_kernel, b->B, LS_THREADS, 0, s, w.si, b->cu_seqlens, b->mask, pre_logp, in->old,
               pre_roll, cfg->agg, pg_agg, *norm);
    PolicyArgs a;
    a.cfg = *cfg;
    a.T = b->T, a.B = b->B;
    a.cu = b->cu_seqlens, a.mask = b->mask;
    a.logp = in->logp, a.old = in->old, a.ref = in->ref, a.roll = in->roll, a.adv = in->adv, a.entropy = in->entropy;
    a.dlogp = dlogp, a.dent = dent;
    a.si = w.si;
    a.partials = w.partials;
    RLC_LAUNCH(ls_policy_token_kernel, w.nblk, LS_THREADS, 0, s, a);
    RLC_LAUNCH(ls_policy_finalize_kernel, 1, LS_THREADS, 0, s, (const double *)w.partials, w.nblk,
               (const int *)w.si.n, b->B, w.red, stats, loss_out);
    return ls_check_launch("rlc_cuda_policy_loss");
}

// ------------------------------------------------------------------------------------------- value loss

enum { VL_LOSS = 0, VL_TOK, VL_CLIP, VL_ERR, VL_N };

__global__ void __launch_bounds__(LS_THREADS)
    ls_value_token_kernel(const float *v, const float *v_old, const float *ret, const int *cu, const uint8_t *mask,
                          int T, int B, SeqInfo si, float cv, float coef, float *dv, double *partials) {
    double acc[VL_N] = {0.0, 0.0, 0.0, 0.0};
    for (int t = blockIdx.x * LS_THREADS + threadIdx.x; t < T; t += gridDim.x * LS_THREADS) {
        if (!ls_on(mask, t)) {
            dv[t] = 0.0f;
            continue;
        }
        const float w = si.w_agg[ls_seq_of(cu, B, t)];
        const float x = v[t], R = ret[t], e1 = (x - R) * (x - R);
        float L = e1, g = x - R;
        if (cv > 0) {
            const float vo = v_old[t], xc = ls_clampf(x, vo - cv, vo + cv), e2 = (xc - R) * (xc - R);
            if (e2 > e1) {
                L = e2;
                g = xc == x ? xc - R : 0.0f; // clamp' = 0 outside [v_old - cv, v_old + cv]
                acc[VL_CLIP] += 1.0;
            }
        }
        acc[VL_LOSS] += (double)(0.5f * w * L);
        acc[VL_TOK] += 1.0;
        acc[VL_ERR] += e1;
        dv[t] = coef * w * g;
    }
    ls_block_reduce<VL_N, VL_N>(acc, partials + (size_t)blockIdx.x * VL_N);
}

__global__ void __launch_bounds__(LS_THREADS)
    ls_value_finalize_kernel(const double *partials, int nblk, double *red, float coef, rlc_loss_stats *st,
                             double *loss_out) {
    double v[VL_N] = {0.0, 0.0, 0.0, 0.0};
    for (int b = threadIdx.x; b < nblk; b += LS_THREADS)
        for (int k = 0; k < VL_N; k++) v[k] += partials[(size_t)b * VL_N + k];
    ls_block_reduce<VL_N, VL_N>(v, red);
    __syncthreads();
    if (threadIdx.x == 0) {
        st->vf_loss += red[VL_LOSS];
        st->loss += coef * red[VL_LOSS];
        st->vf_tok += red[VL_TOK];
        st->vf_clip_sum += red[VL_CLIP];
        st->vf_err_sum += red[VL_ERR];
        if (loss_out) *loss_out = coef * red[VL_LOSS];
    }
}

extern "C" size_t rlc_cuda_value_loss_workspace_bytes(int T, int B) { return ls_ws_bytes(T, B, VL_N); }

extern "C" int rlc_cuda_value_loss(const float *v, const float *v_old, const float *ret, const rlc_loss_batch *b,
                                   rlc_agg agg, const rlc_loss_norm *norm, float cv, float coef, float *dv,
                                   rlc_loss_stats *stats, double *loss_out, void *workspace, void *stream) {
    if (!v || !ret || !dv || !stats || !workspace || (cv > 0 && !v_old) || b->B < 1 || !b->cu_seqlens) {
        fprintf(stderr, "rlc_cuda_value_loss: v, ret, dv, stats, workspace, cu_seqlens (B >= 1) and, with "
                        "clipping, v_old are required\n");
        return -1;
    }
    cudaStream_t s = (cudaStream_t)stream;
    LossWs w = ls_carve(workspace, b->T, b->B, VL_N);
    RLC_LAUNCH(ls_seq_prepass_kernel, b->B, LS_THREADS, 0, s, w.si, b->cu_seqlens, b->mask, (const float *)NULL,
               (const float *)NULL, (const float *)NULL, agg, agg, *norm);
    RLC_LAUNCH(ls_value_token_kernel, w.nblk, LS_THREADS, 0, s, v, v_old, ret, b->cu_seqlens, b->mask, b->T, b->B,
               w.si, cv, coef, dv, w.partials);
    RLC_LAUNCH(ls_value_finalize_kernel, 1, LS_THREADS, 0, s, (const double *)w.partials, w.nblk, w.red, coef, stats,
               loss_out);
    return ls_check_launch("rlc_cuda_value_loss");
}

// ------------------------------------------------------------------------------------ group advantages

// Standard deviation (n-1) of x (n) into *out, fp64, two passes like host/advantage.c's std_of. One block.
__global__ void __launch_bounds__(LS_THREADS) ls_batch_std_kernel(const float *x, int n, double *out) {
    __shared__ double red[1];
    double v[1] = {0.0};
    for (int j = threadIdx.x; j < n; j += LS_THREADS) v[0] += x[j];
    ls_block_reduce<1, 1>(v, red);
    __syncthreads();
    const double mean = n > 0 ? red[0] / n : 0.0;
    __syncthreads(); // everyone has read red before it is overwritten
    v[0] = 0.0;
    for (int j = threadIdx.x; j < n; j += LS_THREADS) v[0] += (x[j] - mean) * (x[j] - mean);
    ls_block_reduce<1, 1>(v, red);
    __syncthreads();
    if (threadIdx.x == 0) *out = n < 2 ? 0.0 : sqrt(red[0] / (n - 1));
}

// Group statistics of scores s (G) in one warp: sum, and whether all G equal s[0] (every lane gets both).
__device__ __forceinline__ double ls_group_sum(const float *s, int G, int lane, bool *all_equal) {
    double sum = 0.0;
    int diff = 0;
    const float s0 = s[0];
    for (int j = lane; j < G; j += 32) {
        sum += s[j];
        diff |= s[j] != s0;
    }
    *all_equal = !__any_sync(0xffffffffu, diff);
    return ls_warp_sum(sum);
}

// One warp per group (8 groups per block). mode: 0..2 = GRPO scale, 3 = RLOO.
__global__ void __launch_bounds__(LS_THREADS)
    ls_group_adv_kernel(float *adv, const float *scores, int n_groups, int G, int mode, const double *std_batch) {
    const int p = blockIdx.x * LS_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (p >= n_groups) return; // whole warps leave together
    const float *s = scores + (size_t)p * G;
    float *a = adv + (size_t)p * G;
    bool all_equal;
    const double sum = ls_group_sum(s, G, lane, &all_equal);
    if (mode == 3) { // RLOO
        for (int j = lane; j < G; j += 32) a[j] = G > 1 ? (float)(s[j] - (sum - s[j]) / (G - 1)) : s[j];
        return;
    }
    const rlc_adv_scale scale = (rlc_adv_scale)mode;
    if (G > 1 && all_equal) { // exactly 0
        for (int j = lane; j < G; j += 32) a[j] = 0.0f;
        return;
    }
    const double mean = G > 1 ? sum / G : 0.0;
    double sd;
    if (scale == RLC_ADV_SCALE_GROUP) {
        double ss = 0.0;
        for (int j = lane; j < G; j += 32) ss += (s[j] - mean) * (s[j] - mean);
        ss = ls_warp_sum(ss);
        sd = G > 1 ? sqrt(ss / (G - 1)) : 1.0;
    } else {
        sd = scale == RLC_ADV_SCALE_BATCH ? *std_batch : 0.0;
    }
    for (int j = lane; j < G; j += 32) {
        const double x = s[j] - mean;
        a[j] = (float)(scale == RLC_ADV_SCALE_NONE ? x : x / (sd + 1e-6));
    }
}

extern "C" size_t rlc_cuda_adv_grpo_workspace_bytes(void) { return 256; }

extern "C" int rlc_cuda_adv_grpo(float *adv, const float *scores, int n_groups, int G, rlc_adv_scale scale,
                                 void *workspace, void *stream) {
    if (n_groups < 0 || G < 1 || (n_groups > 0 && (!adv || !scores)) || (scale == RLC_ADV_SCALE_BATCH && !workspace)) {
        fprintf(stderr, "rlc_cuda_adv_grpo: bad arguments (n_groups %d, G %d; batch scaling needs a workspace)\n",
                n_groups, G);
        return -1;
    }
    if (n_groups == 0) return 0;
    cudaStream_t s = (cudaStream_t)stream;
    double *std_batch = (double *)workspace;
    if (scale == RLC_ADV_SCALE_BATCH) RLC_LAUNCH(ls_batch_std_kernel, 1, LS_THREADS, 0, s, scores, n_groups * G, std_batch);
    RLC_LAUNCH(ls_group_adv_kernel, (n_groups + LS_WARPS - 1) / LS_WARPS, LS_THREADS, 0, s, adv, scores, n_groups, G,
               (int)scale, (const double *)std_batch);
    return ls_check_launch("rlc_cuda_adv_grpo");
}

extern "C" int rlc_cuda_adv_rloo(float *adv, const float *scores, int n_groups, int G, void *stream) {
    if (n_groups < 0 || G < 1 || (n_groups > 0 && (!adv || !scores))) {
        fprintf(stderr, "rlc_cuda_adv_rloo: bad arguments (n_groups %d, G %d)\n", n_groups, G);
        return -1;
    }
    if (n_groups == 0) return 0;
    RLC_LAUNCH(ls_group_adv_kernel, (n_groups + LS_WARPS - 1) / LS_WARPS, LS_THREADS, 0, (cudaStream_t)stream, adv,
               scores, n_groups, G, 3, (const double *)NULL);
    return ls_check_launch("rlc_cuda_adv_rloo");
}

__global__ void __launch_bounds__(LS_THREADS)
    ls_broadcast_kernel(float *adv_tok, const float *adv_seq, const int *cu, const uint8_t *mask, int T, int B) {
    const int t = blockIdx.x * LS_THREADS + threadIdx.x;
    if (t >= T) return;
    adv_tok[t] = ls_on(mask, t) ? adv_seq[ls_seq_of(cu, B, t)] : 0.0f;
}

extern "C" int rlc_cuda_adv_broadcast(float *adv_tok, const float *adv_seq, const rlc_loss_batch *b, void *stream) {
    if (b->T <= 0) return 0;
    if (b->B < 1 || !b->cu_seqlens) {
        fprintf(stderr, "rlc_cuda_adv_broadcast: a batch needs B >= 1 and cu_seqlens\n");
        return -1;
    }
    RLC_LAUNCH(ls_broadcast_kernel, (b->T + LS_THREADS - 1) / LS_THREADS, LS_THREADS, 0, (cudaStream_t)stream,
               adv_tok, adv_seq, b->cu_seqlens, b->mask, b->T, b->B);
    return ls_check_launch("rlc_cuda_adv_broadcast");
}

// ------------------------------------------------------------------------------------------------- EMPG
// Steps are few (one per policy turn), so the statistics kernels are single blocks with a fixed-order
// reduction; fp64 like host/advantage.c.

// One warp per step.
__global__ void __launch_bounds__(LS_THREADS)
    ls_empg_step_entropy_kernel(float *H, const float *ent, const uint8_t *mask, const int *start, const int *end,
                                int S) {
    const int j = blockIdx.x * LS_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (j >= S) return;
    double s = 0.0, n = 0.0;
    for (int t = start[j] + lane; t < end[j]; t += 32)
        if (ls_on(mask, t)) s += ent[t], n += 1.0;
    s = ls_warp_sum(s);
    n = ls_warp_sum(n);
    if (lane == 0) H[j] = (float)(n > 0 ? s / n : 0.0);
}

__global__ void ls_empg_init_kernel(rlc_empg_stats *st) {
    st->h_min = INFINITY;
    st->h_max = -INFINITY;
    st->n = st->g_sum = st->amod_sum = 0.0;
}

__device__ __forceinline__ double ls_empg_hn(const rlc_empg_stats *st, double h) {
    return (h - st->h_min) / (st->h_max - st->h_min + 1e-8);
}

__global__ void __launch_bounds__(LS_THREADS) ls_empg_phase1_kernel(rlc_empg_stats *st, const float *H, int S) {
    __shared__ double red[2];
    double v[2] = {INFINITY, -INFINITY}; // -min, max (the reducer takes maxima)
    for (int j = threadIdx.x; j < S; j += LS_THREADS) {
        v[0] = fmin(v[0], (double)H[j]);
        v[1] = fmax(v[1], (double)H[j]);
    }
    v[0] = -v[0];
    ls_block_reduce<2, 0>(v, red);
    __syncthreads();
    if (threadIdx.x == 0) {
        if (-red[0] < st->h_min) st->h_min = -red[0];
        if (red[1] > st->h_max) st->h_max = red[1];
    }
}

__global__ void __launch_bounds__(LS_THREADS)
    ls_empg_phase2_kernel(rlc_empg_stats *st, const float *H, int S, float k) {
    __shared__ double red[1];
    double v[1] = {0.0};
    for (int j = threadIdx.x; j < S; j += LS_THREADS) v[0] += exp(-k * ls_empg_hn(st, H[j]));
    ls_block_reduce<1, 1>(v, red);
    __syncthreads();
    if (threadIdx.x == 0) {
        st->g_sum += red[0];
        st->n += S;
    }
}

__global__ void __launch_bounds__(LS_THREADS)
    ls_empg_phase3_kernel(rlc_empg_stats *st, float *a_mod, float *g_out, const float *H, const int *next,
                          const float *a_traj, int S, float k, float k2, float zeta) {
    __shared__ double red[1];
    const double gmean = st->n > 0 ? st->g_sum / st->n : 1.0;
    double v[1] = {0.0};
    for (int j = threadIdx.x; j < S; j += LS_THREADS) {
        const double g = exp(-k * ls_empg_hn(st, H[j])) / (gmean + 1e-8);
        const double f = next[j] >= 0 ? exp(-k2 * ls_empg_hn(st, H[next[j]])) : 0.0;
        const double am = g * a_traj[j] + zeta * f;
        a_mod[j] = (float)am;
        if (g_out) g_out[j] = (float)g;
        v[0] += am;
    }
    ls_block_reduce<1, 1>(v, red);
    __syncthreads();
    if (threadIdx.x == 0) st->amod_sum += red[0];
}

__global__ void __launch_bounds__(LS_THREADS) ls_empg_finish_kernel(float *a, int S, const rlc_empg_stats *st) {
    const int j = blockIdx.x * LS_THREADS + threadIdx.x;
    if (j >= S) return;
    const double mean = st->n > 0 ? st->amod_sum / st->n : 0.0;
    a[j] = (float)(a[j] - mean);
}

extern "C" int rlc_cuda_empg_step_entropy(float *H, const float *ent, const uint8_t *mask, const int *step_start,
                                          const int *step_end, int S, void *stream) {
    if (S <= 0) return 0;
    RLC_LAUNCH(ls_empg_step_entropy_kernel, (S + LS_WARPS - 1) / LS_WARPS, LS_THREADS, 0, (cudaStream_t)stream, H, ent,
               mask, step_start, step_end, S);
    return ls_check_launch("rlc_cuda_empg_step_entropy");
}
extern "C" int rlc_cuda_empg_stats_init(rlc_empg_stats *st, void *stream) {
    RLC_LAUNCH(ls_empg_init_kernel, 1, 1, 0, (cudaStream_t)stream, st);
    return ls_check_launch("rlc_cuda_empg_stats_init");
}
extern "C" int rlc_cuda_empg_phase1(rlc_empg_stats *st, const float *H, int S, void *stream) {
    RLC_LAUNCH(ls_empg_phase1_kernel, 1, LS_THREADS, 0, (cudaStream_t)stream, st, H, S);
    return ls_check_launch("rlc_cuda_empg_phase1");
}
extern "C" int rlc_cuda_empg_phase2(rlc_empg_stats *st, const float *H, int S, float k, void *stream) {
    RLC_LAUNCH(ls_empg_phase2_kernel, 1, LS_THREADS, 0, (cudaStream_t)stream, st, H, S, k);
    return ls_check_launch("rlc_cuda_empg_phase2");
}
extern "C" int rlc_cuda_empg_phase3(rlc_empg_stats *st, float *a_mod, float *g_out, const float *H, const int *next,
                                    const float *a_traj, int S, float k, float k2, float zeta, void *stream) {
    RLC_LAUNCH(ls_empg_phase3_kernel, 1, LS_THREADS, 0, (cudaStream_t)stream, st, a_mod, g_out, H, next, a_traj, S, k,
               k2, zeta);
    return ls_check_launch("rlc_cuda_empg_phase3");
}
extern "C" int rlc_cuda_empg_finish(float *a, int S, const rlc_empg_stats *st, void *stream) {
    if (S <= 0) return 0;
    RLC_LAUNCH(ls_empg_finish_kernel, (S + LS_THREADS - 1) / LS_THREADS, LS_THREADS, 0, (cudaStream_t)stream, a, S,
               st);
    return ls_check_launch("rlc_cuda_empg_finish");
}
extern "C" int rlc_cuda_adv_empg(float *a_final, float *g_out, const float *H, const int *next, const float *a_traj,
                                 int S, float k, float k2, float zeta, rlc_empg_stats *st, void *stream) {
    if (rlc_cuda_empg_stats_init(st, stream) || rlc_cuda_empg_phase1(st, H, S, stream) ||
        rlc_cuda_empg_phase2(st, H, S, k, stream) ||
        rlc_cuda_empg_phase3(st, a_final, g_out, H, next, a_traj, S, k, k2, zeta, stream))
        return -1;
    return rlc_cuda_empg_finish(a_final, S, st, stream);
}
