// kernels/cuda/loss.cu: policy-loss (PPO clip with asymmetric eps and dual clip, GSPO, CISPO; KL estimators,
// entropy bonus, TIS weights and masks, aggregation with global counts), clipped value loss, GRPO / RLOO group
// advantages and the EMPG modulation on the GPU. Interface and conventions: loss.h; CPU twins: host/loss.c and
// host/advantage.c, whose semantics are matched case by case (the comments there explain the why).
//
// Structure of a policy-loss call (T tokens, B sequences). The loss kernels stream ~33 bytes per token and do
// little math per byte, so they are built to keep DRAM busy and to issue few instructions per token: a warp
// owns a contiguous token range and walks it in steps of 128 tokens; its lanes copy each step's inputs into
// shared memory with 16-byte cp.async one step ahead (the copies in flight hold no registers) and compute
// tokens lane, lane + 32, ...; sequences are never searched per token (LsWindow), and the sequence count is
// one OR over the warp per step (LsSeqCount).
//   1. pre-pass, only when a per-sequence quantity is needed (GSPO's sequence ratio, seq-mean-token-mean
//      weights 1 / n_i, sequence-level TIS): each warp sums (n_i, logp - old, old - roll) over a range of
//      LS_PRE_RANGE tokens; a sequence inside one range gets its weights there, one across ranges leaves a
//      partial per range and the fix-up adds them in range order. Every other configuration has constant
//      weights (1 / n_tok, 1 / n_seq, ...: a response token's sequence has n_i >= 1) and skips the pre-pass.
//      The policy loss runs it inside the token kernel (ls_policy_fused_kernel: each block the pre-pass of its
//      own tokens, then its token pass re-reads them from L2); the value loss, and the policy loss with
//      rlc_cuda_loss_set_fused(0), as kernels of their own (one block for both steps when T is small).
//   2. token kernel: writes dL/dlogp and dL/dH and reduces the block's loss terms and metric counters (fp64
//      sums, integer counts, the sequence count) into one column of partials in a fixed order.
//   3. finalize: a block per 32 columns adds them in order; the last block to finish adds those group sums in
//      order and accumulates them into the stats.
// Per-token math is fp32, sums are fp64; nothing uses float atomics, and the grid (ls_geom) depends on T only,
// so the result is bitwise reproducible. The value loss uses the same pre-pass and a register version of the
// token kernel (it reads 12 bytes per token).
#include "rlc_cuda.h"

#include <limits.h>
#include <math.h>

#include <utility>

#include "loss.h"

#define LS_THREADS 256                // threads per block of every kernel here (8 warps)
#define LS_WARPS (LS_THREADS / 32)
#define LS_FULL 0xffffffffu
#define LS_LOG_RATIO_CLAMP 20.0f      // as host/loss.c
#define LS_VEC 4                      // tokens per lane per step (one 16-byte load per input)
#define LS_STEP (32 * LS_VEC)         // tokens per warp per step
#define LS_TOKEN_MAX_BLOCKS 1024      // token kernels: at most this many blocks (more steps per warp beyond)
#define LS_PRE_RANGE 1024             // pre-pass: tokens per warp
#define LS_FIX_LONG 32                // pre-pass fix-up: a sequence over more ranges than this is summed by a warp
#define LS_PRE_ONE_BLOCK 32768        // pre-pass: up to this many tokens, one block does it all (one launch)

// ------------------------------------------------------------------------------------------------ helpers

static inline size_t ls_align(size_t n) { return (n + 255) & ~(size_t)255; }

// Blocks cap of the token kernels; settable for benchmarks and tests only (rlc_cuda_loss_set_max_blocks).
static int ls_max_blocks = LS_TOKEN_MAX_BLOCKS;
// Policy loss with a per-sequence quantity: the fused kernel (1, the default) or the separate pre-pass (0);
// the same bits either way. Settable for benchmarks and tests only (rlc_cuda_loss_set_fused).
static int ls_fused = 1;

// Token-kernel grid: `steps` steps of LS_STEP tokens per warp, nblk blocks. A function of T (and the cap)
// only, never of the GPU, so that results are reproducible anywhere.
struct LsGeom {
    int steps, nblk;
};
static LsGeom ls_geom(int T) {
    const long long nstep = T > 0 ? ((long long)T + LS_STEP - 1) / LS_STEP : 1; // warp-steps
    const long long cap = (long long)LS_WARPS * ls_max_blocks;
    LsGeom g;
    g.steps = (int)((nstep + cap - 1) / cap);
    const long long per_block = (long long)LS_WARPS * g.steps;
    g.nblk = (int)((nstep + per_block - 1) / per_block);
    return g;
}

__device__ __forceinline__ float ls_clampf(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }

__device__ __forceinline__ bool ls_on(const uint8_t *mask, int t) { return mask ? mask[t] != 0 : true; }

// Sequence of token t: the largest i in [lo, hi] with cu[i] <= t (lo when none; skips empty sequences).
__device__ __forceinline__ int ls_seq_in(const int *cu, int lo, int hi, int t) {
    while (lo < hi) {
        int mid = (lo + hi + 1) >> 1;
        if (__ldg(cu + mid) <= t) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}
__device__ __forceinline__ int ls_seq_of(const int *cu, int B, int t) { return ls_seq_in(cu, 0, B - 1, t); }

// ls_seq_of by a whole warp: each round splits the candidates into 32 chunks and every lane tests the first
// index of one (ceil(log32 B) rounds of one load per lane instead of log2 B dependent loads). All lanes get
// the answer.
__device__ int ls_warp_seq_of(const int *cu, int B, int t, int lane) {
    int lo = 0, n = B; // the answer is in [lo, lo + n)
    while (n > 1) {
        const int step = (n + 31) >> 5, idx = lo + lane * step;
        const bool le = lane == 0 || (idx < lo + n && __ldg(cu + idx) <= t);
        const int k = 31 - __clz((int)__ballot_sync(LS_FULL, le)); // cu is sorted: the true lanes are a prefix
        lo += k * step;
        n = min(step, n - k * step);
    }
    return lo;
}

// rlc_agg_weight's twin (fp64: it multiplies fp32 terms that are then summed in fp64).
__host__ __device__ inline double ls_agg_weight(rlc_agg agg, int n_i, rlc_loss_norm n) {
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
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(LS_FULL, v, o);
    return v;
}
__device__ __forceinline__ double ls_warp_min(double v) {
    for (int o = 16; o > 0; o >>= 1) v = fmin(v, __shfl_xor_sync(LS_FULL, v, o));
    return v;
}
__device__ __forceinline__ double ls_warp_max(double v) {
    for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(LS_FULL, v, o));
    return v;
}

// Reduces v[0..N) over the block of WARPS warps (entries < NSUM are sums, the rest maxima) and writes the
// result to out[k * stride] (global memory, threads 0..N-1). Fixed order: warp butterflies, then warps in order.
// Every thread of the block must call it (it has a barrier).
template <int N, int NSUM, int WARPS = LS_WARPS>
__device__ void ls_block_reduce(double (&v)[N], double *out, size_t stride = 1) {
    __shared__ double sh[WARPS][N];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int k = 0; k < N; k++) v[k] = k < NSUM ? ls_warp_sum(v[k]) : ls_warp_max(v[k]);
    if (lane == 0)
        for (int k = 0; k < N; k++) sh[warp][k] = v[k];
    __syncthreads();
    if (threadIdx.x < N) {
        const int k = threadIdx.x;
        double acc = sh[0][k];
        for (int w = 1; w < WARPS; w++) acc = k < NSUM ? acc + sh[w][k] : fmax(acc, sh[w][k]);
        out[k * stride] = acc;
    }
}

// --------------------------------------------------------------------------------- loads of 4 tokens
// A lane's 4 tokens t0..t0+3 (t0 a multiple of 4). VEC: one 16-byte (mask: 4-byte) load when all 4 are below
// T, which needs 16-byte aligned float arrays (4-byte aligned mask; the host checks); otherwise one load per
// token below T. Tokens at or past T read as 0 / off.

template <bool VEC> __device__ __forceinline__ void ls_load4(const float *p, int t0, int T, float (&x)[4]) {
    if (VEC && t0 + 4 <= T) {
        const float4 v = __ldg(reinterpret_cast<const float4 *>(p + t0));
        x[0] = v.x, x[1] = v.y, x[2] = v.z, x[3] = v.w;
    } else {
        for (int k = 0; k < 4; k++) x[k] = t0 + k < T ? __ldg(p + t0 + k) : 0.0f;
    }
}
// Bit k set: token t0 + k is below T and a response token.
template <bool VEC> __device__ __forceinline__ unsigned ls_mask4(const uint8_t *m, int t0, int T) {
    unsigned bits = 0;
    if (m && VEC && t0 + 4 <= T) {
        const unsigned w = __ldg(reinterpret_cast<const unsigned *>(m + t0));
        for (int k = 0; k < 4; k++) bits |= (unsigned)(((w >> (8 * k)) & 0xffu) != 0) << k;
    } else {
        for (int k = 0; k < 4; k++) bits |= (unsigned)(t0 + k < T && (!m || __ldg(m + t0 + k) != 0)) << k;
    }
    return bits;
}
template <bool VEC> __device__ __forceinline__ void ls_store4(float *p, int t0, int T, const float (&x)[4]) {
    if (VEC && t0 + 4 <= T) {
        *reinterpret_cast<float4 *>(p + t0) = make_float4(x[0], x[1], x[2], x[3]);
    } else {
        for (int k = 0; k < 4; k++)
            if (t0 + k < T) p[t0 + k] = x[k];
    }
}

// ------------------------------------------------------------------------------------- per-sequence weights

// info[i] = (w_pg, w_agg, gspo_d, seq_w) of sequence i:
//   w_agg   aggregation weight of the KL / entropy / value terms
//   w_pg    aggregation weight of the policy term (GSPO: seq-mean-token-mean)
//   gspo_d  clamp(mean(logp - old), +-20) over response tokens (GSPO)
//   seq_w   exp(clamp(sum(old - roll), +-20)) (sequence-level TIS)
// They come from per-sequence sums (n_i, sum(logp - old), sum(old - roll)): the pre-pass sums every warp range
// of LS_PRE_RANGE tokens and writes info[i] for a sequence inside one range; for a sequence across ranges it
// leaves per-range partial sums (part), which its fix-up step adds in range order.
struct SeqW {
    rlc_agg agg, pg_agg;
    rlc_loss_norm norm;
    double *part; // (ceil(T / LS_PRE_RANGE), 2, 3): per warp range, the partial (n, d, o) of the sequence at its
                  // first token (head) and at its last token (tail), where that one crosses ranges
};

__device__ float4 ls_seq_info(const SeqW &p, double n, double d, double o) {
    const int ni = (int)n;
    double gd = ni > 0 ? d / ni : 0.0;
    gd = gd < -LS_LOG_RATIO_CLAMP ? -LS_LOG_RATIO_CLAMP : (gd > LS_LOG_RATIO_CLAMP ? LS_LOG_RATIO_CLAMP : gd);
    const double s = o < -LS_LOG_RATIO_CLAMP ? -LS_LOG_RATIO_CLAMP : (o > LS_LOG_RATIO_CLAMP ? LS_LOG_RATIO_CLAMP : o);
    return make_float4((float)ls_agg_weight(p.pg_agg, ni, p.norm), (float)ls_agg_weight(p.agg, ni, p.norm), (float)gd,
                       (float)exp(s));
}

// ------------------------------------------------------------------------------ sequences of a warp's tokens

// A warp's view of the sequences around its current tokens, in shared memory: start[j] = cu[i0 + 1 + j] for
// j < 32 (INT_MAX past sequence B - 1) and, with SEQ, info[j] = the weights of sequence i0 + j. A token t at
// or after cu[i0] and before start[31] is in sequence i0 + c, c = #{j : start[j] <= t}; a lane keeps c from
// token to token (its tokens only increase), so typically one shared-memory compare per token. The window is
// reloaded (one coalesced load of 32 entries) when a step's tokens run past it; a step that spans more than
// 32 sequence starts (sequences of a few tokens) falls back to a binary search per token. FUSED (the fused
// kernel): the weights are read through L2 (__ldcg), since that kernel writes them earlier in the same launch
// and the read-only path of __ldg does not allow it; the block's head sequence ls_head().i takes ls_head().w
// instead of its global entry, and the window's entries past the block's last sequence, which later blocks may be
// writing, read as zeros (no token of the block is in them).
struct LsHead { // the fused kernel's head sequence and its weights (i = -1: none), and its last sequence
    int i, last;
    float4 w;
};
// The block's one LsHead, in shared memory. A function-local static: its address is a constant, so the token
// loop holds no pointer to it (the SEQ token kernel uses all of its 64 registers).
static __device__ __forceinline__ LsHead &ls_head() {
    __shared__ LsHead h;
    return h;
}
template <bool SEQ, bool FUSED = false> struct LsWindow {
    int *start;        // [32] shared
    float4 *info;      // [32] shared (SEQ)
    const int *cu;     // (B + 1)
    const float4 *gi;  // (B) per-sequence weights in global memory (SEQ)
    int B, i0, c;

    __device__ __forceinline__ float4 weights(int i) const {
        if (!FUSED) return __ldg(gi + i);
        if (i > ls_head().last) return make_float4(0.0f, 0.0f, 0.0f, 0.0f); // another block's: not read (never used)
        return i == ls_head().i ? ls_head().w : __ldcg(gi + i);
    }
    __device__ void load(int i, int lane) {
        __syncwarp(); // every lane is done with the old window
        i0 = i, c = 0;
        const int j = i + 1 + lane;
        start[lane] = j < B ? __ldg(cu + j) : INT_MAX;
        if (SEQ && i + lane < B) info[lane] = weights(i + lane);
        __syncwarp();
    }
    // Makes the window cover tokens [base, last] if 32 sequence starts allow it; returns whether it does.
    // Uniform over the warp (every lane reads the same shared entries).
    __device__ bool cover(int base, int last, int lane) {
        if (start[31] > last) return true;
        const int k = __popc(__ballot_sync(LS_FULL, start[lane] <= base));
        load(k < 32 ? i0 + k : ls_warp_seq_of(cu, B, base, lane), lane);
        return start[31] > last;
    }
    // Sequence of token t (not below this lane's previous token) and, with SEQ, its weights.
    __device__ int seq(bool fast, int t, float4 *w) {
        if (fast) {
            while (start[c] <= t) c++;
            if (SEQ) *w = info[c];
            return i0 + c;
        }
        const int i = ls_seq_in(cu, i0, B - 1, t);
        if (SEQ) *w = weights(i);
        return i;
    }
};

// Sequences with at least one response token, counted on the way through the tokens: a summary of a token
// range holds the number of distinct sequences of its response tokens and the first and last of them (-1:
// none). Summaries of adjacent ranges combine exactly (integers), in token order.
struct LsSeqCount {
    int cnt, fs, ls;
};
__device__ __forceinline__ void ls_count_fold(LsSeqCount &acc, const LsSeqCount &x) { // acc then x
    acc.cnt += x.cnt - (x.fs >= 0 && x.fs == acc.ls);
    if (acc.fs < 0) acc.fs = x.fs;
    if (x.ls >= 0) acc.ls = x.ls;
}
// Folds the 32 lanes' summaries in lane order (lane l's range precedes lane l + 1's); every lane gets the result.
__device__ LsSeqCount ls_warp_count_fold(LsSeqCount x, int lane) {
    const unsigned bal = __ballot_sync(LS_FULL, x.fs >= 0), below = bal & ((1u << lane) - 1u);
    const int prev = __shfl_sync(LS_FULL, x.ls, below ? 31 - __clz((int)below) : lane);
    const int dup = below && x.fs >= 0 && x.fs == prev; // continues the sequence of the previous non-empty lane
    LsSeqCount r;
    r.cnt = (int)__reduce_add_sync(LS_FULL, (unsigned)(x.cnt - dup));
    r.fs = __shfl_sync(LS_FULL, x.fs, bal ? __ffs((int)bal) - 1 : 0);
    r.ls = __shfl_sync(LS_FULL, x.ls, bal ? 31 - __clz((int)bal) : 0);
    if (!bal) r.fs = r.ls = -1;
    return r;
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

// Inputs and outputs of the pre-pass.
struct SeqPre {
    const int *cu;
    int B, T;
    const uint8_t *mask;
    const float *logp, *old, *roll; // logp / roll may be NULL (their sums are then 0)
    SeqW sw;                        // sw.part: the partials
    float4 *info;                   // (B)
};

// Warp range g (LS_PRE_RANGE tokens), by one warp: sequence by sequence over the range, each lane taking every
// 32nd token (4 in flight), then a butterfly.
__device__ void ls_seq_sums_range(const SeqPre &p, int g, int lane) {
    const int ws = g * LS_PRE_RANGE, we = min(p.T, ws + LS_PRE_RANGE);
    for (int i = ls_warp_seq_of(p.cu, p.B, ws, lane);; i++) {
        const int c0 = __ldg(p.cu + i), c1 = __ldg(p.cu + i + 1), ta = max(c0, ws), tb = min(c1, we);
        double s[3] = {0.0, 0.0, 0.0}; // n_i, sum(logp - old), sum(old - roll)
        for (int t = ta + lane; t < tb; t += 4 * 32) {
            bool on[4];
            float lp[4], od[4], rl[4];
            for (int k = 0; k < 4; k++) { // loads first, all independent
                const int u = t + 32 * k;
                const bool in = u < tb;
                on[k] = in && (!p.mask || __ldg(p.mask + u) != 0);
                lp[k] = in && p.logp ? __ldg(p.logp + u) : 0.0f;
                od[k] = in && (p.logp || p.roll) ? __ldg(p.old + u) : 0.0f;
                rl[k] = in && p.roll ? __ldg(p.roll + u) : 0.0f;
            }
            for (int k = 0; k < 4; k++) {
                if (!on[k]) continue; // masked inputs may be NaN / inf: never summed
                s[0] += 1.0;
                if (p.logp) s[1] += (double)lp[k] - (double)od[k];
                if (p.roll) s[2] += (double)od[k] - (double)rl[k];
            }
        }
        for (int k = 0; k < 3; k++) s[k] = ls_warp_sum(s[k]);
        if (lane == 0 && c1 > c0) { // empty sequences: ls_seq_fix
            if (c0 >= ws && c1 <= we) {
                p.info[i] = ls_seq_info(p.sw, s[0], s[1], s[2]);
            } else {
                double *row = p.sw.part + (size_t)g * 6;
                if (ta == ws) row[0] = s[0], row[1] = s[1], row[2] = s[2];
                if (tb == we) row[3] = s[0], row[4] = s[1], row[5] = s[2];
            }
        }
        if (c1 >= we || i + 1 >= p.B) break;
    }
}

// Sequence i when it crosses warp ranges (or is empty; valid = i < B): adds its partials in range order, tail
// of its first range then heads of the following ones, into s; returns whether i is such a sequence (its
// weights then come from s, not from its range). A sequence over more than LS_FIX_LONG ranges is added by its
// whole warp (lanes take every 32nd range, then a butterfly), so a single long sequence costs little. CG (the
// fused kernel): the partials are read through L2 (__ldcg), since other blocks wrote them in the same launch.
// Warp-collective: every lane of the warp calls it.
template <bool CG> __device__ __forceinline__ double ls_part(const double *p) { return CG ? __ldcg(p) : *p; }
template <bool CG>
__device__ __forceinline__ bool ls_seq_fix_sums(const SeqPre &p, int i, bool valid, int lane, double (&s)[3]) {
    const int c0 = valid ? __ldg(p.cu + i) : 0, c1 = valid ? __ldg(p.cu + i + 1) : 0;
    const int g0 = c0 / LS_PRE_RANGE, span = c1 > c0 ? (c1 - 1) / LS_PRE_RANGE - g0 : 0; // ranges after the first
    s[0] = s[1] = s[2] = 0.0;
    if (span > 0 && span <= LS_FIX_LONG) {
        const double *tail = p.sw.part + (size_t)g0 * 6 + 3;
        for (int k = 0; k < 3; k++) s[k] = ls_part<CG>(tail + k);
        for (int g = g0 + 1; g <= g0 + span; g++)
            for (int k = 0; k < 3; k++) s[k] += ls_part<CG>(p.sw.part + (size_t)g * 6 + k);
    }
    for (unsigned lb = __ballot_sync(LS_FULL, span > LS_FIX_LONG); lb; lb &= lb - 1) {
        const int src = __ffs((int)lb) - 1;
        const int a0 = __shfl_sync(LS_FULL, g0, src), n = __shfl_sync(LS_FULL, span, src);
        double x[3] = {0.0, 0.0, 0.0};
        for (int k = lane; k <= n; k += 32) {
            const double *row = p.sw.part + (size_t)(a0 + k) * 6 + (k == 0 ? 3 : 0);
            for (int m = 0; m < 3; m++) x[m] += ls_part<CG>(row + m);
        }
        for (int m = 0; m < 3; m++) x[m] = ls_warp_sum(x[m]);
        if (lane == src)
            for (int m = 0; m < 3; m++) s[m] = x[m];
    }
    return valid && (span > 0 || c1 <= c0);
}
__device__ void ls_seq_fix(const SeqPre &p, int i, bool valid, int lane) {
    double s[3];
    if (ls_seq_fix_sums<false>(p, i, valid, lane, s)) p.info[i] = ls_seq_info(p.sw, s[0], s[1], s[2]);
}

// One warp per range; no barriers: idle warps leave at once.
__global__ void __launch_bounds__(LS_THREADS) ls_seq_sums_kernel(SeqPre p) {
    const long long g = (long long)blockIdx.x * LS_WARPS + (threadIdx.x >> 5);
    if (g * LS_PRE_RANGE < p.T) ls_seq_sums_range(p, (int)g, threadIdx.x & 31);
}
// A thread per sequence.
__global__ void __launch_bounds__(LS_THREADS) ls_seq_fix_kernel(SeqPre p) {
    const int i = blockIdx.x * LS_THREADS + threadIdx.x;
    ls_seq_fix(p, i, i < p.B, threadIdx.x & 31);
}
// Small batches (T <= LS_PRE_ONE_BLOCK): both steps in one block, a barrier between them, one launch fewer
// (these batches are launch-bound). The same per-range and per-sequence code, so the same bits.
__global__ void __launch_bounds__(LS_THREADS) ls_seq_prepass_one_block_kernel(SeqPre p) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int g = warp; g * LS_PRE_RANGE < p.T; g += LS_WARPS) ls_seq_sums_range(p, g, lane);
    __syncthreads(); // the partials, written by this block, are visible to it
    for (int i0 = 0; i0 < p.B; i0 += LS_THREADS) {
        const int i = i0 + (int)threadIdx.x;
        ls_seq_fix(p, i, i < p.B, lane);
    }
}

__host__ __device__ inline int ls_pre_ranges(int T) { return T > 0 ? (T + LS_PRE_RANGE - 1) / LS_PRE_RANGE : 1; }

static void ls_prepass(const SeqPre &p, cudaStream_t s) {
    if (p.T <= LS_PRE_ONE_BLOCK) {
        RLC_LAUNCH(ls_seq_prepass_one_block_kernel, 1, LS_THREADS, 0, s, p);
        return;
    }
    RLC_LAUNCH(ls_seq_sums_kernel, (ls_pre_ranges(p.T) + LS_WARPS - 1) / LS_WARPS, LS_THREADS, 0, s, p);
    RLC_LAUNCH(ls_seq_fix_kernel, (p.B + LS_THREADS - 1) / LS_THREADS, LS_THREADS, 0, s, p);
}

// ------------------------------------------------------------------------------------------ policy loss

// Partial layout of the policy loss: fp64 sums, integer counts (as doubles), maxima, then the sequence count.
enum {
    PL_PG = 0, PL_KL, PL_ENT, PL_RATIO, PL_KL_SUM, PL_ENT_SUM, PL_MM_SUM, PL_TIS_W,
    PL_TOK, PL_CLIP, PL_CLIP_LOW, PL_TIS_MASKED,
    PL_NSUM,
    PL_RATIO_MAX = PL_NSUM, PL_MM_MAX,
    PL_NRED,                                  // entries reduced by ls_block_reduce
    PL_SEQ_CNT = PL_NRED, PL_SEQ_FS, PL_SEQ_LS, // LsSeqCount of the block's tokens
    PL_N
};

struct PolicyArgs {
    rlc_loss_config cfg;
    int T, B, steps;          // steps: LS_STEP-token steps per warp (ls_geom)
    const int *cu;
    const uint8_t *mask;
    const float *logp, *old, *ref, *roll, *adv, *entropy;
    float *dlogp, *dent;
    const float4 *info;       // per-sequence weights (SEQ kernels; ls_prepass)
    float w_pg, w_agg;        // the constant weights (kernels without SEQ)
    double kl_scale, ent_scale; // the constant KL / entropy loss factors of kernels without SEQ (else 0)
    double *partials;         // (PL_N, nblk), column b = block b
    double *gpartials;        // (PL_N, ngroups), column g = blocks [g, g + 1) * LS_GROUP
    unsigned *ticket;         // the finalize's block counter (zeroed by the token kernel)
    rlc_loss_stats *stats;
    double *loss_out;
};

// One thread's sums. Without SEQ the KL and entropy loss terms are constant multiples of kl_sum / ent_sum and
// the finalize applies the factor; with SEQ (per-sequence w_agg) they are summed here.
struct PolicyAcc {
    double pg, kl, ent, ratio, kl_sum, ent_sum, mm_sum, tis_w;
    int tok, clip, clip_low, tis_masked;
    float ratio_max, mm_max;
};

// One response token: returns dL/dlogp, writes dL/dH to *ge and adds the token's terms to acc. w: the
// sequence's weights (SEQ).
template <bool SEQ>
__device__ __forceinline__ float ls_policy_token(const PolicyArgs &a, const float4 &w, float lp, float od, float rf,
                                                 float rl, float A, float H, PolicyAcc &acc, float *ge) {
    const rlc_loss_config &cfg = a.cfg;
    const float w_pg = SEQ ? w.x : a.w_pg, w_agg = SEQ ? w.y : a.w_agg;
    acc.tok++;

    // ratio and dr/dlogp (GSPO: the sequence ratio with derivative s_i; GSPO always runs with SEQ)
    float r, dr;
    if (SEQ && cfg.policy == RLC_PL_GSPO) {
        r = expf(w.z);
        dr = r;
    } else {
        const float d_raw = lp - od, d = ls_clampf(d_raw, -LS_LOG_RATIO_CLAMP, LS_LOG_RATIO_CLAMP);
        r = expf(d);
        dr = d == d_raw ? r : 0.0f;
    }
    acc.ratio += r;
    acc.ratio_max = fmaxf(acc.ratio_max, r);

    // rollout correction weight (detached)
    float w_is = 1.0f;
    if (a.roll) {
        const float mm = fabsf(od - rl);
        acc.mm_sum += mm;
        acc.mm_max = fmaxf(acc.mm_max, mm);
        if (cfg.tis != RLC_TIS_OFF) {
            w_is = !SEQ || cfg.tis == RLC_TIS_TOKEN ? expf(ls_clampf(od - rl, -LS_LOG_RATIO_CLAMP, LS_LOG_RATIO_CLAMP))
                                                    : w.w;
            if (cfg.tis_mode == RLC_TIS_TRUNCATE) {
                if (w_is > cfg.tis_c) w_is = cfg.tis_c;
            } else if (w_is < cfg.tis_c_min || w_is > cfg.tis_c_max) {
                w_is = 0.0f;
                acc.tis_masked++;
            }
            acc.tis_w += w_is;
        }
    }

    // policy term
    float L, dL;
    if (cfg.policy == RLC_PL_CISPO) {
        const float wgt = r < cfg.cispo_eps_max ? r : cfg.cispo_eps_max;
        L = -wgt * A * lp;
        dL = -wgt * A;
        acc.clip += r > cfg.cispo_eps_max;
    } else {
        const float c = cfg.policy == RLC_PL_PPO ? cfg.dual_clip : 0.0f;
        float dLdr;
        int cl, low;
        L = ls_ppo_token(r, A, cfg.eps_low, cfg.eps_high, c, &dLdr, &cl, &low);
        dL = dLdr * dr;
        acc.clip += cl;
        acc.clip_low += low;
    }
    acc.pg += (double)(w_pg * w_is * L);
    float g = w_pg * w_is * dL;

    // KL to the reference
    if (a.ref) {
        float dk, k = ls_kl_token(cfg.kl_est, lp, rf, &dk);
        acc.kl_sum += k;
        if (cfg.kl_beta != 0) {
            if (SEQ) acc.kl += (double)(cfg.kl_beta * w_agg * k);
            g += cfg.kl_beta * w_agg * dk;
        }
    }
    // entropy bonus
    *ge = 0.0f;
    if (a.entropy) {
        acc.ent_sum += H;
        if (cfg.ent_coef != 0) {
            if (SEQ) acc.ent -= (double)(cfg.ent_coef * w_agg * H);
            *ge = -cfg.ent_coef * w_agg;
        }
    }
    return g;
}

// Shared-memory stage of one warp step: the step's 128 tokens of each input (float arrays in LsArr order),
// then its 128 mask bytes. Lane l copies tokens 4l..4l+3 of every array with one 16-byte cp.async (lanes 0..7
// copy 16 mask bytes each) and computes tokens l, l + 32, l + 64, l + 96: the reads are conflict-free and the
// global stores coalesced, and the copies of the next LS_STAGES - 1 steps stay in flight during the math
// without holding registers.
enum LsArr { LA_LOGP = 0, LA_OLD, LA_ADV, LA_REF, LA_ROLL, LA_ENT, LA_N };
#define LS_STAGE_FLOATS (LA_N * LS_STEP + LS_STEP / 4) // + the mask bytes
#define LS_STAGES 2 // copy pipeline depth: steps in flight per warp (3 measured slower on an H200: shared memory
                    // then limits a multiprocessor to 2 blocks instead of 4)

static size_t ls_stage_smem(int nst) { return (size_t)LS_WARPS * nst * LS_STAGE_FLOATS * sizeof(float); }

// Fills stage `st` with the step at `base` (nothing at or past T). VEC: 16-byte cp.async with zero fill past T
// (the caller commits the group); otherwise plain per-token loads in the compute layout.
template <bool VEC>
__device__ __forceinline__ void ls_stage_fill(const PolicyArgs &a, float *st, int base, int lane) {
    if (base >= a.T) return;
    uint8_t *mb = reinterpret_cast<uint8_t *>(st + LA_N * LS_STEP);
    if (VEC && base + LS_STEP <= a.T) { // a whole step: plain 16-byte copies (the common case, kept cheap)
        const int t0 = base + 4 * lane;
        float *d = st + 4 * lane;
        rlc_cp_async16(d + LA_LOGP * LS_STEP, a.logp + t0);
        rlc_cp_async16(d + LA_OLD * LS_STEP, a.old + t0);
        rlc_cp_async16(d + LA_ADV * LS_STEP, a.adv + t0);
        if (a.ref) rlc_cp_async16(d + LA_REF * LS_STEP, a.ref + t0);
        if (a.roll) rlc_cp_async16(d + LA_ROLL * LS_STEP, a.roll + t0);
        if (a.entropy) rlc_cp_async16(d + LA_ENT * LS_STEP, a.entropy + t0);
        if (a.mask && lane < LS_STEP / 16) rlc_cp_async16(mb + 16 * lane, a.mask + base + 16 * lane);
    } else if (VEC) { // the step that reaches T: zero fill past it
        const int t0 = base + 4 * lane, nb = 4 * max(0, min(4, a.T - t0));
        const auto cp = [&](int k, const float *p) {
            if (p) rlc_cp_async16_zfill(st + k * LS_STEP + 4 * lane, nb ? p + t0 : p, nb);
        };
        cp(LA_LOGP, a.logp), cp(LA_OLD, a.old), cp(LA_ADV, a.adv);
        cp(LA_REF, a.ref), cp(LA_ROLL, a.roll), cp(LA_ENT, a.entropy);
        if (a.mask && lane < LS_STEP / 16) {
            const int tm = base + 16 * lane, n = max(0, min(16, a.T - tm));
            rlc_cp_async16_zfill(mb + 16 * lane, n ? a.mask + tm : a.mask, n);
        }
    } else {
        for (int k = 0; k < 4; k++) {
            const int j = 32 * k + lane, t = base + j;
            if (t >= a.T) continue;
            st[LA_LOGP * LS_STEP + j] = __ldg(a.logp + t);
            st[LA_OLD * LS_STEP + j] = __ldg(a.old + t);
            st[LA_ADV * LS_STEP + j] = __ldg(a.adv + t);
            if (a.ref) st[LA_REF * LS_STEP + j] = __ldg(a.ref + t);
            if (a.roll) st[LA_ROLL * LS_STEP + j] = __ldg(a.roll + t);
            if (a.entropy) st[LA_ENT * LS_STEP + j] = __ldg(a.entropy + t);
            if (a.mask) mb[j] = __ldg(a.mask + t);
        }
    }
}

// Sequence counting over one row of a step (tokens base + 32k + lane, in lane order): a response token counts
// when its sequence differs from that of the previous response token of the warp's range. run holds the
// warp's first and last counted sequence (uniform); lane_cnt this lane's count.
__device__ __forceinline__ void ls_count_row(bool on, int i, int lane, LsSeqCount &run, int &lane_cnt) {
    const unsigned bal = __ballot_sync(LS_FULL, on);
    if (!bal) return; // uniform
    const unsigned below = bal & ((1u << lane) - 1u);
    const int prev = __shfl_sync(LS_FULL, i, below ? 31 - __clz((int)below) : lane);
    lane_cnt += on && i != (below ? prev : run.ls);
    if (run.fs < 0) run.fs = __shfl_sync(LS_FULL, i, __ffs((int)bal) - 1);
    run.ls = __shfl_sync(LS_FULL, i, 31 - __clz((int)bal));
}

#define LS_GROUP 32 // token-kernel columns per finalize block
// Block b owns tokens [b, b + 1) * LS_WARPS * steps * LS_STEP, warp w of it the w-th slice of steps *
// LS_STEP tokens. VEC: NST-stage cp.async pipeline (the copies of steps s + 1 .. s + NST - 1 are in flight
// while step s is computed); otherwise the stage is filled by plain loads just before use (same layout, same
// token order, so the same bits). Sums run per lane in token order, then warp butterflies and warps in order.
// The body of the token kernels: stages = the dynamic shared memory (LS_WARPS, NST, LS_STAGE_FLOATS); FUSED:
// the fused kernel's (LsWindow).
template <bool VEC, bool SEQ, int NST, bool FUSED>
__device__ __forceinline__ void ls_policy_tokens(const PolicyArgs &a, float *stages) {
    __shared__ int sh_start[LS_WARPS][32];
    __shared__ float4 sh_info[LS_WARPS][SEQ ? 32 : 1];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float *my = stages + (size_t)warp * NST * LS_STAGE_FLOATS;
    PolicyAcc acc;
    acc.pg = acc.kl = acc.ent = acc.ratio = acc.kl_sum = acc.ent_sum = acc.mm_sum = acc.tis_w = 0.0;
    acc.tok = acc.clip = acc.clip_low = acc.tis_masked = 0;
    acc.ratio_max = acc.mm_max = -INFINITY;
    LsSeqCount run = {0, -1, -1}; // the warp's tokens so far: first / last counted sequence (uniform)
    int lane_cnt = 0;
    const long long ws_l = ((long long)blockIdx.x * LS_WARPS + warp) * a.steps * LS_STEP;
    if (ws_l < a.T) { // whole warps
        const int ws = (int)ws_l;
        if (VEC) {
            for (int j = 0; j < NST - 1; j++) {
                if (j < a.steps) ls_stage_fill<VEC>(a, my + j * LS_STAGE_FLOATS, ws + j * LS_STEP, lane);
                rlc_cp_async_commit(); // one group per step, empty ones included, so wait<NST - 1> is exact
            }
        }
        LsWindow<SEQ, FUSED> win;
        win.start = sh_start[warp], win.info = sh_info[warp], win.cu = a.cu, win.gi = a.info, win.B = a.B;
        win.load(ls_warp_seq_of(a.cu, a.B, ws, lane), lane); // overlaps the first copies
        for (int s = 0; s < a.steps; s++) {
            const int base = ws + s * LS_STEP;
            if (base >= a.T) break; // uniform
            float *st = my + (VEC ? s % NST : 0) * LS_STAGE_FLOATS;
            if (VEC) {
                const int j = s + NST - 1;
                if (j < a.steps) ls_stage_fill<VEC>(a, my + (j % NST) * LS_STAGE_FLOATS, ws + j * LS_STEP, lane);
                rlc_cp_async_commit();
                rlc_cp_async_wait<NST - 1>(); // this lane's copies of step s have landed
            } else {
                ls_stage_fill<VEC>(a, st, base, lane);
            }
            __syncwarp(); // ... and every lane's (each lane reads tokens that other lanes copied)
            const bool fast = win.cover(base, min(base + LS_STEP, a.T) - 1, lane);
            const uint8_t *mb = reinterpret_cast<const uint8_t *>(st + LA_N * LS_STEP);
            unsigned seqs = 0; // fast steps: bit c = window sequence c has a response token in this step
            RLC_UNROLL
            for (int k = 0; k < 4; k++) {
                const int j = 32 * k + lane, t = base + j;
                const bool on = t < a.T && (!a.mask || mb[j] != 0);
                float4 w = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                const int i = on ? win.seq(fast, t, &w) : -1;
                if (fast) seqs |= on ? 1u << (i - win.i0) : 0u;
                else ls_count_row(on, i, lane, run, lane_cnt); // uniform branch
                float g = 0.0f, ge = 0.0f; // masked tokens (and their NaN / inf inputs): outputs 0, no sums
                if (on) // (absent arrays read stale shared memory that ls_policy_token never uses)
                    g = ls_policy_token<SEQ>(a, w, st[LA_LOGP * LS_STEP + j], st[LA_OLD * LS_STEP + j],
                                             st[LA_REF * LS_STEP + j], st[LA_ROLL * LS_STEP + j],
                                             st[LA_ADV * LS_STEP + j], st[LA_ENT * LS_STEP + j], acc, &ge);
                if (t < a.T) {
                    a.dlogp[t] = g;
                    if (a.dent) a.dent[t] = ge;
                }
            }
            if (fast) { // the step's sequences: one OR over the warp instead of a vote per row
                for (int o = 16; o > 0; o >>= 1) seqs |= __shfl_xor_sync(LS_FULL, seqs, o);
                if (seqs) {
                    const LsSeqCount x = {__popc(seqs), win.i0 + __ffs((int)seqs) - 1, win.i0 + 31 - __clz((int)seqs)};
                    ls_count_fold(run, x);
                }
            }
            __syncwarp(); // every lane is done with this stage before it is refilled
        }
        if (VEC) rlc_cp_async_wait<0>(); // no copy outlives the loop (it may end early at T)
    }
    run.cnt += (int)__reduce_add_sync(LS_FULL, (unsigned)lane_cnt); // counts of the rows of slow steps
    const int nblk = gridDim.x;
    __shared__ LsSeqCount sh_cnt[LS_WARPS];
    if (lane == 0) sh_cnt[warp] = run;
    double v[PL_NRED];
    v[PL_PG] = acc.pg, v[PL_KL] = acc.kl, v[PL_ENT] = acc.ent, v[PL_RATIO] = acc.ratio;
    v[PL_KL_SUM] = acc.kl_sum, v[PL_ENT_SUM] = acc.ent_sum, v[PL_MM_SUM] = acc.mm_sum, v[PL_TIS_W] = acc.tis_w;
    v[PL_TOK] = acc.tok, v[PL_CLIP] = acc.clip, v[PL_CLIP_LOW] = acc.clip_low, v[PL_TIS_MASKED] = acc.tis_masked;
    v[PL_RATIO_MAX] = acc.ratio_max, v[PL_MM_MAX] = acc.mm_max;
    ls_block_reduce<PL_NRED, PL_NSUM>(v, a.partials + blockIdx.x, nblk); // its barrier also publishes sh_cnt
    if (threadIdx.x == 0) {
        LsSeqCount c = sh_cnt[0];
        for (int w = 1; w < LS_WARPS; w++) ls_count_fold(c, sh_cnt[w]);
        a.partials[(size_t)PL_SEQ_CNT * nblk + blockIdx.x] = c.cnt;
        a.partials[(size_t)PL_SEQ_FS * nblk + blockIdx.x] = c.fs;
        a.partials[(size_t)PL_SEQ_LS * nblk + blockIdx.x] = c.ls;
    }
    if (blockIdx.x == 0 && threadIdx.x == 0) *a.ticket = 0; // for the finalize, which starts after this kernel
}

template <bool VEC, bool SEQ, int NST>
__global__ void __launch_bounds__(LS_THREADS, 4) ls_policy_token_kernel(PolicyArgs a) {
    RLC_DYN_SMEM(float, stages); // (LS_WARPS, NST, LS_STAGE_FLOATS)
    ls_policy_tokens<VEC, SEQ, NST, false>(a, stages);
}

// ------------------------------------------------------------ the fused kernel: pre-pass and token pass
// With a per-sequence quantity, the separate pre-pass reads logp, old, roll and the mask (13 bytes a token)
// from DRAM and the token kernel reads them again. The fused kernel reads them once from DRAM: block c first
// makes sure of the pre-pass of its own chunk (its tokens: pre-pass ranges [c, c + 1) * steps) and of the
// chunks its sequences reach into, then adds the partials of its sequences that cross ranges, then runs the
// token pass, whose second read of the chunk mostly hits L2. Same per-range code, same fix-up order and same
// token pass as the separate kernels, so the same bits.
//
// A chunk's pre-pass is done once, by whichever block claims it first (block c at its start, or a block whose
// sequences reach into chunk c; ls_chunks_ensure): state[c] is 0 untouched, 1 claimed, 2 published (zeroed
// before the launch).
// A claimant computes at once and never waits, so a block that waits on a claimed chunk waits on work that is
// running, whatever the number of resident blocks: no deadlock. The weights of a sequence that starts in chunk c
// are written to info once: by chunk c's pre-pass (whichever block runs it) when the sequence lies inside one
// range, else by block c's fix-up. Block c's head sequence, started in an earlier chunk, gets its weights in
// shared memory (the owner may be writing the global entry at the same time), and block c reads no entry past its
// last sequence (LsWindow).

// Claims chunk c and computes its pre-pass, or waits until its claimant has published it. Whole block.
__device__ void ls_chunk_ensure(const SeqPre &p, unsigned *state, int c, int steps) {
    __shared__ int sh_claim;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads(); // every thread has read the previous sh_claim
    if (threadIdx.x == 0) sh_claim = atomicCAS(state + c, 0u, 1u) == 0u;
    __syncthreads();
    if (sh_claim) {
        for (int g = c * steps + warp; g < (c + 1) * steps && (long long)g * LS_PRE_RANGE < p.T; g += LS_WARPS)
            ls_seq_sums_range(p, g, lane);
        __threadfence(); // this thread's weights and partials are visible device-wide before the flag
        __syncthreads();
        if (threadIdx.x == 0) atomicExch(state + c, 2u);
    } else {
        if (threadIdx.x == 0) {
            while (atomicAdd(state + c, 0u) != 2u) {
            }
            __threadfence(); // the claimant's stores are read after the flag
        }
        __syncthreads();
    }
}

// Makes sure chunks [ka, kz] (block c's own among them) are published. Whole block. Each round, all threads read
// the chunks' states (atomically; one read each), then the block claims or waits for the first unpublished one
// at or after its own chunk, wrapping around: its own first, and blocks whose sequences span the same chunks
// start their claims at different places. A long sequence over many chunks thus costs a block one scan of their
// states, not a claim and two barriers for each chunk.
__device__ void ls_chunks_ensure(const SeqPre &p, unsigned *state, int ka, int kz, int c, int steps) {
    __shared__ int sh_pick;
    const int span = kz - ka + 1, off = c - ka; // ka <= c <= kz
    for (;;) {
        if (threadIdx.x == 0) sh_pick = INT_MAX;
        __syncthreads();
        for (int r = (int)threadIdx.x; r < span; r += LS_THREADS)
            if (atomicAdd(state + ka + (off + r) % span, 0u) != 2u) atomicMin(&sh_pick, r);
        __threadfence(); // what this thread saw published is read after the flag (acquire), by any thread
        __syncthreads();
        const int r = sh_pick;
        if (r == INT_MAX) return; // uniform: every chunk published
        ls_chunk_ensure(p, state, ka + (off + r) % span, steps); // begins with a barrier: sh_pick has been read
    }
}

template <int NST>
__global__ void __launch_bounds__(LS_THREADS, 4) ls_policy_fused_kernel(PolicyArgs a, SeqPre p, unsigned *state) {
    RLC_DYN_SMEM(float, stages); // (LS_WARPS, NST, LS_STAGE_FLOATS)
    LsHead &sh_head = ls_head();
    const int lane = threadIdx.x & 31, c = blockIdx.x;
    const long long chunk = (long long)a.steps * LS_WARPS * LS_STEP, t0l = c * chunk; // chunk = steps ranges
    if (threadIdx.x == 0) sh_head.i = sh_head.last = -1, sh_head.w = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (t0l < a.T) { // uniform
        const int t0 = (int)t0l, t1 = (int)min((long long)a.T, t0l + chunk);
        // the block's sequences (first and last hold tokens of the chunk) and the chunks [c_a, c_z] they span
        const int i_first = ls_warp_seq_of(a.cu, a.B, t0, lane), i_last = ls_warp_seq_of(a.cu, a.B, t1 - 1, lane);
        const int c_a = __ldg(a.cu + i_first) / LS_PRE_RANGE / a.steps;
        const int c_z = (__ldg(a.cu + i_last + 1) - 1) / LS_PRE_RANGE / a.steps;
        if (threadIdx.x == 0) sh_head.last = i_last;
        ls_chunks_ensure(p, state, c_a, c_z, c, a.steps); // one call site of the pre-pass code (two copies spill)
        for (int i0 = i_first; i0 <= i_last; i0 += LS_THREADS) { // uniform trip count: warp-collective fix-ups
            const int i = i0 + (int)threadIdx.x;
            double sum[3];
            if (ls_seq_fix_sums<true>(p, i, i <= i_last, lane, sum) && __ldg(a.cu + i + 1) > __ldg(a.cu + i)) {
                const float4 w = ls_seq_info(p.sw, sum[0], sum[1], sum[2]);
                if (__ldg(a.cu + i) >= t0) p.info[i] = w;
                else sh_head.i = i, sh_head.w = w; // i == i_first
            }
        }
    }
    __syncthreads(); // the weights written above are visible to the block
    ls_policy_tokens<true, true, NST, true>(a, stages);
}

// Adds columns [c0, c0 + n) of src (PL_N rows of `stride` doubles) in column order into column `col` of dst
// (rows of dst_stride), or, when dst is NULL, into the shared array out (PL_N entries). Whole block: warp w
// takes rows w, w + 8, ... and its lane l the columns [c0 + l * per, c0 + (l + 1) * per) in order, then a
// butterfly; warp 0 also folds the sequence counts in column order. The order depends on n only. Reads with
// __ldcg: the columns were written by other blocks, L1 may not see them.
__device__ void ls_reduce_cols(const double *src, size_t stride, int c0, int n, double *dst, size_t dst_stride,
                               int col, double *out) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, per = (n + 31) / 32;
    const int b0 = c0 + min(n, lane * per), b1 = c0 + min(n, (lane + 1) * per);
    for (int k = warp; k < PL_NRED; k += LS_WARPS) {
        const double *row = src + (size_t)k * stride;
        double x = k < PL_NSUM ? 0.0 : -INFINITY;
        for (int b = b0; b < b1; b++) x = k < PL_NSUM ? x + __ldcg(row + b) : fmax(x, __ldcg(row + b));
        x = k < PL_NSUM ? ls_warp_sum(x) : ls_warp_max(x);
        if (lane == 0) (dst ? dst[(size_t)k * dst_stride + col] : out[k]) = x;
    }
    if (warp == 0) {
        LsSeqCount c = {0, -1, -1};
        for (int b = b0; b < b1; b++) {
            const LsSeqCount y = {(int)__ldcg(src + (size_t)PL_SEQ_CNT * stride + b),
                                  (int)__ldcg(src + (size_t)PL_SEQ_FS * stride + b),
                                  (int)__ldcg(src + (size_t)PL_SEQ_LS * stride + b)};
            ls_count_fold(c, y);
        }
        c = ls_warp_count_fold(c, lane);
        if (lane == 0) {
            double *o = dst ? dst + col : out;
            const size_t os = dst ? dst_stride : 1;
            o[PL_SEQ_CNT * os] = c.cnt, o[PL_SEQ_FS * os] = c.fs, o[PL_SEQ_LS * os] = c.ls;
        }
    }
}

// Finalize: block g adds the token kernel's columns [g, g + 1) * LS_GROUP into group column g; the last block
// to finish (an atomic ticket; the token kernel zeroed it) adds the group columns and updates the
// stats. Which block does that varies, the order of the additions does not, so neither do the bits. Many
// blocks pull the columns in parallel (one block alone spends microseconds on the round trips), and the
// fence stays out of the token kernel, whose blocks would otherwise wait for their last stores to drain.
__global__ void __launch_bounds__(LS_THREADS) ls_policy_finalize_kernel(PolicyArgs a, int nblk) {
    __shared__ bool sh_last;
    __shared__ double red[PL_N];
    const int ngroups = gridDim.x, g = blockIdx.x, g0 = g * LS_GROUP, gn = min(LS_GROUP, nblk - g0);
    ls_reduce_cols(a.partials, nblk, g0, gn, a.gpartials, ngroups, g, NULL);
    __threadfence(); // the group column is visible before the ticket is taken
    __syncthreads();
    if (threadIdx.x == 0) sh_last = atomicAdd(a.ticket, 1u) == (unsigned)ngroups - 1;
    __syncthreads();
    if (!sh_last) return; // the whole block
    __threadfence();
    ls_reduce_cols(a.gpartials, ngroups, 0, ngroups, NULL, 0, 0, red);
    __syncthreads();
    if (threadIdx.x == 0) {
        const double kl = red[PL_KL] + a.kl_scale * red[PL_KL_SUM], ent = red[PL_ENT] + a.ent_scale * red[PL_ENT_SUM];
        const double loss = red[PL_PG] + kl + ent;
        // One load and one store of the whole struct: field-by-field read-modify-writes of global memory would
        // be one dependent round trip each.
        rlc_loss_stats s = *a.stats;
        s.pg_loss += red[PL_PG];
        s.kl_loss += kl;
        s.ent_loss += ent;
        s.loss += loss;
        s.tok += red[PL_TOK];
        s.seq += red[PL_SEQ_CNT];
        s.clip_sum += red[PL_CLIP];
        s.clip_low_sum += red[PL_CLIP_LOW];
        s.ratio_sum += red[PL_RATIO];
        s.kl_sum += red[PL_KL_SUM];
        s.ent_sum += red[PL_ENT_SUM];
        s.mismatch_sum += red[PL_MM_SUM];
        s.tis_w_sum += red[PL_TIS_W];
        s.tis_masked += red[PL_TIS_MASKED];
        if (red[PL_RATIO_MAX] > s.ratio_max) s.ratio_max = red[PL_RATIO_MAX];
        if (red[PL_MM_MAX] > s.mismatch_max) s.mismatch_max = red[PL_MM_MAX];
        *a.stats = s;
        if (a.loss_out) *a.loss_out = loss;
    }
}

// Workspace layout shared by the policy and value losses: per-sequence weights, pre-pass partials, the token
// kernel's partial columns (nstat rows), then the policy finalize's group columns and ticket, and the fused
// kernel's chunk states.
struct LossWs {
    float4 *info;
    double *part, *partials, *gpartials;
    unsigned *ticket, *state;
    LsGeom geo;
    int ngroups;
};
// Byte offsets of the parts (o[6] = the total); ls_carve turns them into pointers.
static void ls_layout(int T, int B, int nstat, LsGeom *geo, int *ngroups, size_t (&o)[7]) {
    *geo = ls_geom(T);
    *ngroups = (geo->nblk + LS_GROUP - 1) / LS_GROUP;
    o[0] = 0;
    o[1] = o[0] + ls_align((size_t)(B > 0 ? B : 1) * sizeof(float4));          // info
    o[2] = o[1] + ls_align((size_t)ls_pre_ranges(T) * 6 * sizeof(double));     // part
    o[3] = o[2] + ls_align((size_t)geo->nblk * nstat * sizeof(double));        // partials
    o[4] = o[3] + ls_align((size_t)*ngroups * PL_N * sizeof(double));          // gpartials
    o[5] = o[4] + ls_align(sizeof(unsigned));                                  // ticket
    o[6] = o[5] + ls_align((size_t)geo->nblk * sizeof(unsigned));              // state
}
static LossWs ls_carve(void *ws, int T, int B, int nstat) {
    LossWs w;
    size_t o[7];
    ls_layout(T, B, nstat, &w.geo, &w.ngroups, o);
    char *p = (char *)ws;
    w.info = (float4 *)(p + o[0]);
    w.part = (double *)(p + o[1]);
    w.partials = (double *)(p + o[2]);
    w.gpartials = (double *)(p + o[3]);
    w.ticket = (unsigned *)(p + o[4]);
    w.state = (unsigned *)(p + o[5]);
    return w;
}
static size_t ls_ws_bytes(int T, int B, int nstat) {
    LsGeom geo;
    int ngroups;
    size_t o[7];
    ls_layout(T, B, nstat, &geo, &ngroups, o);
    return o[6];
}

static int ls_check_launch(const char *what) {
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) return 0;
    fprintf(stderr, "%s: kernel launch failed: %s\n", what, cudaGetErrorString(e));
    return -1;
}

static bool ls_aligned(const void *p, size_t a) { return (uintptr_t)p % a == 0; }

extern "C" void rlc_cuda_loss_set_max_blocks(int n) { ls_max_blocks = n > 0 ? n : LS_TOKEN_MAX_BLOCKS; }
extern "C" void rlc_cuda_loss_set_fused(int on) { ls_fused = on != 0; }


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
    // Per-sequence quantities: GSPO's ratio and policy weight, 1 / n_i weights, the sequence TIS weight.
    const bool seq = cfg->policy == RLC_PL_GSPO || cfg->agg == RLC_AGG_SEQ_MEAN_TOKEN_MEAN || cfg->tis == RLC_TIS_SEQ;
    SeqW sw;
    sw.agg = cfg->agg;
    sw.pg_agg = cfg->policy == RLC_PL_GSPO ? RLC_AGG_SEQ_MEAN_TOKEN_MEAN : cfg->agg;
    sw.norm = *norm;
    sw.part = w.part;
    SeqPre p;
    p.cu = b->cu_seqlens, p.B = b->B, p.T = b->T, p.mask = b->mask;
    p.logp = cfg->policy == RLC_PL_GSPO ? in->logp : NULL;
    p.old = in->old;
    p.roll = cfg->tis == RLC_TIS_SEQ ? in->roll : NULL;
    p.sw = sw;
    p.info = w.info;
    const bool vec = ls_aligned(in->logp, 16) && ls_aligned(in->old, 16) && ls_aligned(in->adv, 16) &&
                     ls_aligned(in->ref, 16) && ls_aligned(in->roll, 16) && ls_aligned(in->entropy, 16) &&
                     ls_aligned(b->mask, 16);
    // The fused kernel has the cp.async path only (the plain-load one spills in its 64 registers).
    const bool fused = seq && ls_fused && vec;
    if (seq && !fused) ls_prepass(p, s);
    PolicyArgs a;
    a.cfg = *cfg;
    a.T = b->T, a.B = b->B, a.steps = w.geo.steps;
    a.cu = b->cu_seqlens, a.mask = b->mask;
    a.logp = in->logp, a.old = in->old, a.ref = in->ref, a.roll = in->roll, a.adv = in->adv, a.entropy = in->entropy;
    a.dlogp = dlogp, a.dent = dent;
    a.info = w.info;
    // Without SEQ every response token has the same weights (its sequence has n_i >= 1 response tokens).
    a.w_pg = a.w_agg = (float)ls_agg_weight(cfg->agg, 1, *norm);
    a.kl_scale = !seq && cfg->kl_beta != 0 ? (double)cfg->kl_beta * a.w_agg : 0.0;
    a.ent_scale = !seq && cfg->ent_coef != 0 ? -(double)cfg->ent_coef * a.w_agg : 0.0;
    a.partials = w.partials, a.gpartials = w.gpartials, a.ticket = w.ticket;
    a.stats = stats, a.loss_out = loss_out;
    const size_t smem = ls_stage_smem(vec ? LS_STAGES : 1);
    if (fused) {
        void (*kernel)(PolicyArgs, SeqPre, unsigned *) = ls_policy_fused_kernel<LS_STAGES>;
        if (!rlc_smem_allow(kernel, smem, "rlc_cuda_policy_loss")) return -1;
        if (cudaMemsetAsync(w.state, 0, (size_t)w.geo.nblk * sizeof(unsigned), s) != cudaSuccess) {
            fprintf(stderr, "rlc_cuda_policy_loss: cudaMemsetAsync of the chunk states failed\n");
            return -1;
        }
        RLC_LAUNCH(kernel, w.geo.nblk, LS_THREADS, smem, s, a, p, w.state);
    } else {
        void (*kernel)(PolicyArgs) = vec ? (seq ? ls_policy_token_kernel<true, true, LS_STAGES>
                                                : ls_policy_token_kernel<true, false, LS_STAGES>)
                                         : (seq ? ls_policy_token_kernel<false, true, 1>
                                                : ls_policy_token_kernel<false, false, 1>);
        if (!rlc_smem_allow(kernel, smem, "rlc_cuda_policy_loss")) return -1;
        RLC_LAUNCH(kernel, w.geo.nblk, LS_THREADS, smem, s, a);
    }
    RLC_LAUNCH(ls_policy_finalize_kernel, w.ngroups, LS_THREADS, 0, s, a, w.geo.nblk);
    return ls_check_launch("rlc_cuda_policy_loss");
}

// ------------------------------------------------------------------------------------------- value loss

enum { VL_LOSS = 0, VL_TOK, VL_CLIP, VL_ERR, VL_N };

struct ValueArgs {
    int T, B, steps;
    const int *cu;
    const uint8_t *mask;
    const float *v, *v_old, *ret;
    float cv, coef, w_const;   // w_const: the weight of every token without SEQ
    const float4 *info;        // SEQ: per-sequence weights (.y = w_agg)
    float *dv;
    double *partials;          // (VL_N, nblk)
};

// Same layout as the policy token kernel (the window only with SEQ: other modes have constant weights).
template <bool VEC, bool SEQ> __global__ void __launch_bounds__(LS_THREADS) ls_value_token_kernel(ValueArgs a) {
    __shared__ int sh_start[LS_WARPS][SEQ ? 32 : 1];
    __shared__ float4 sh_info[LS_WARPS][SEQ ? 32 : 1];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    double acc[VL_N] = {0.0, 0.0, 0.0, 0.0};
    int tok = 0, clip = 0;
    const long long ws_l = ((long long)blockIdx.x * LS_WARPS + warp) * a.steps * LS_STEP;
    if (ws_l < a.T) {
        const int ws = (int)ws_l;
        LsWindow<SEQ> win;
        win.start = sh_start[warp], win.info = sh_info[warp], win.cu = a.cu, win.gi = a.info, win.B = a.B;
        if (SEQ) win.load(ls_warp_seq_of(a.cu, a.B, ws, lane), lane);
        for (int s = 0; s < a.steps; s++) {
            const int base = ws + s * LS_STEP;
            if (base >= a.T) break;
            const int t0 = base + lane * LS_VEC;
            float x[4], R[4], g[4], vo[4] = {0, 0, 0, 0};
            const unsigned on = ls_mask4<VEC>(a.mask, t0, a.T);
            ls_load4<VEC>(a.v, t0, a.T, x);
            ls_load4<VEC>(a.ret, t0, a.T, R);
            if (a.cv > 0) ls_load4<VEC>(a.v_old, t0, a.T, vo);
            const bool fast = SEQ ? win.cover(base, min(base + LS_STEP, a.T) - 1, lane) : true;
            for (int k = 0; k < 4; k++) {
                g[k] = 0.0f;
                if (!(on >> k & 1)) continue;
                float4 wi = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                if (SEQ) win.seq(fast, t0 + k, &wi);
                const float w = SEQ ? wi.y : a.w_const;
                const float e1 = (x[k] - R[k]) * (x[k] - R[k]);
                float L = e1, gr = x[k] - R[k];
                if (a.cv > 0) {
                    const float xc = ls_clampf(x[k], vo[k] - a.cv, vo[k] + a.cv), e2 = (xc - R[k]) * (xc - R[k]);
                    if (e2 > e1) {
                        L = e2;
                        gr = xc == x[k] ? xc - R[k] : 0.0f; // clamp' = 0 outside [v_old - cv, v_old + cv]
                        clip++;
                    }
                }
                acc[VL_LOSS] += (double)(0.5f * w * L);
                acc[VL_ERR] += e1;
                tok++;
                g[k] = a.coef * w * gr;
            }
            ls_store4<VEC>(a.dv, t0, a.T, g);
        }
    }
    acc[VL_TOK] = tok, acc[VL_CLIP] = clip;
    ls_block_reduce<VL_N, VL_N>(acc, a.partials + blockIdx.x, gridDim.x);
}

__global__ void __launch_bounds__(LS_THREADS)
    ls_value_finalize_kernel(const double *partials, int nblk, float coef, rlc_loss_stats *st, double *loss_out) {
    __shared__ double red[VL_N];
    double v[VL_N] = {0.0, 0.0, 0.0, 0.0};
    for (int b = threadIdx.x; b < nblk; b += LS_THREADS)
        for (int k = 0; k < VL_N; k++) v[k] += partials[(size_t)k * nblk + b];
    ls_block_reduce<VL_N, VL_N>(v, red);
    __syncthreads();
    if (threadIdx.x == 0) {
        rlc_loss_stats s = *st; // one load, one store (see ls_policy_finalize_kernel)
        s.vf_loss += red[VL_LOSS];
        s.loss += coef * red[VL_LOSS];
        s.vf_tok += red[VL_TOK];
        s.vf_clip_sum += red[VL_CLIP];
        s.vf_err_sum += red[VL_ERR];
        *st = s;
        if (loss_out) *loss_out = coef * red[VL_LOSS];
    }
}

extern "C" size_t rlc_cuda_value_loss_workspace_bytes(int T, int B) { return ls_ws_bytes(T, B, VL_N); }

extern "C" int rlc_cuda_value_loss(const float *v, const float *v_old, const float *ret, const rlc_loss_batch *b,
                                   rlc_agg agg, const rlc_loss_norm *norm, float cv, float coef, float *dv,
                                   rlc_loss_stats *stats, double *loss_out, void *workspace, void *stream) {
    if (!v || !ret || !dv || !stats || !workspace || (cv > 0 && !v_old) || b->B < 1 || b->T < 0 || !b->cu_seqlens) {
        fprintf(stderr, "rlc_cuda_value_loss: v, ret, dv, stats, workspace, cu_seqlens (B >= 1) and, with "
                        "clipping, v_old are required\n");
        return -1;
    }
    cudaStream_t s = (cudaStream_t)stream;
    LossWs w = ls_carve(workspace, b->T, b->B, VL_N);
    const bool seq = agg == RLC_AGG_SEQ_MEAN_TOKEN_MEAN;
    SeqW sw;
    sw.agg = sw.pg_agg = agg;
    sw.norm = *norm;
    sw.part = w.part;
    if (seq) {
        SeqPre p;
        p.cu = b->cu_seqlens, p.B = b->B, p.T = b->T, p.mask = b->mask;
        p.logp = p.old = p.roll = NULL;
        p.sw = sw;
        p.info = w.info;
        ls_prepass(p, s);
    }
    ValueArgs a;
    a.T = b->T, a.B = b->B, a.steps = w.geo.steps;
    a.cu = b->cu_seqlens, a.mask = b->mask;
    a.v = v, a.v_old = v_old, a.ret = ret;
    a.cv = cv, a.coef = coef, a.w_const = (float)ls_agg_weight(agg, 1, *norm);
    a.info = w.info, a.dv = dv, a.partials = w.partials;
    const bool vec = ls_aligned(v, 16) && ls_aligned(ret, 16) && ls_aligned(dv, 16) && ls_aligned(b->mask, 4) &&
                     (cv <= 0 || ls_aligned(v_old, 16));
    if (vec && seq) RLC_LAUNCH((ls_value_token_kernel<true, true>), w.geo.nblk, LS_THREADS, 0, s, a);
    else if (vec) RLC_LAUNCH((ls_value_token_kernel<true, false>), w.geo.nblk, LS_THREADS, 0, s, a);
    else if (seq) RLC_LAUNCH((ls_value_token_kernel<false, true>), w.geo.nblk, LS_THREADS, 0, s, a);
    else RLC_LAUNCH((ls_value_token_kernel<false, false>), w.geo.nblk, LS_THREADS, 0, s, a);
    RLC_LAUNCH(ls_value_finalize_kernel, 1, LS_THREADS, 0, s, (const double *)w.partials, w.geo.nblk, coef, stats,
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
