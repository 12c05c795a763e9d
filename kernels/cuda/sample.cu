// kernels/cuda/sample.cu: next-token sampling (interface and method: sample.h; CPU twin: kernels/cpu/sample_cpu.c).
// One block per row. Order of the vocabulary: logit descending, id ascending (the CPU's probability order: exp is
// monotonic, and equal logits have equal probabilities). Selections walk that order by radix descent on a 32-bit
// order-preserving key of the logit, 10 + 11 + 11 bits, with shared-memory histograms of (count, fixed-point
// mass); integer atomics make every histogram exact whatever the schedule.
//
// Two variants (rlc_cuda_sample_set_variant), the same tokens (the masses and the descent are the same; logp and
// entropy are sums in another order):
//   0 (default): 256-thread blocks, 4 per multiprocessor; every pass reads the row from global memory. At 512 rows
//     of V = 151936 the 528 rows in flight (0.3 GB) do not fit in L2, so each pass reads DRAM.
//   1: 1024-thread blocks, one per multiprocessor; the max pass also copies the row's first 40960 logits (160 KiB)
//     into shared memory, where the later passes read them (all of a row up to V = 40960). With 132 rows in flight
//     the rest of the rows (59 MB at V = 151936) about fits in L2, so the later passes mostly read L2, not DRAM.
// Neither has run on a GPU yet: tests/gpu/test_sample times both.
#include "sample.h"

#include <limits.h>
#include <math.h>

#include "philox.h"
#include "rlc_cuda.h"

#define SMP_MAX_WARPS 32 // per-warp partials: room for 1024-thread blocks
#define SMP_CACHE 40960  // variant 1: logits of a row kept in shared memory (160 KiB)
#define SMP_N1 1024 // level-1 bins: key bits 31..22
#define SMP_N2 2048 // level-2 and level-3 bins: key bits 21..11, then 10..0
#define SMP_FULL 0xffffffffu

struct SmpParams {
    int V;
    size_t ld;
    double tau;        // temperature (1 when greedy)
    int top_k;
    float top_p;
    int greedy;
    uint64_t seed, step;
    double scale;      // 2^shift: fixed-point unit of the masses exp((z - max)/tau) <= 1
};

// Shared state of one block (44 KiB: under the 48 KiB of static shared memory).
// A row of logits; CACHE (variant 1): its first n_cached entries also in shared memory, where reads of them go.
template <bool CACHE> struct SmpRow {
    const float *g;      // (V) global
    const float *cached; // (n_cached) shared
    int n_cached;
    __device__ __forceinline__ float operator[](int j) const { return CACHE && j < n_cached ? cached[j] : g[j]; }
};

struct SmpShared {
    unsigned long long h1m[SMP_N1]; // level-1 histogram (kept for all selections of the row): mass, count
    unsigned h1c[SMP_N1];
    unsigned long long hm[SMP_N2];  // level-2 / level-3 histogram: mass, count, lowest id (level 3)
    unsigned hc[SMP_N2];
    int hid[SMP_N2];
    double wd[2][SMP_MAX_WARPS];    // per-warp partials
    unsigned long long wq[SMP_MAX_WARPS];
    float wv[SMP_MAX_WARPS];
    int wi[SMP_MAX_WARPS];
    unsigned wcnt[SMP_MAX_WARPS];
    unsigned sel_bin;               // smp_find's answer
    unsigned long long sel_cnt, sel_mass;
    int found;
};

// Order-preserving key: z1 < z2 <=> key(z1) < key(z2). -0 and +0 get one key (the CPU compares them equal).
__device__ __forceinline__ uint32_t smp_key(float z) {
    const uint32_t b = __float_as_uint(z == 0.0f ? 0.0f : z);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// Fixed-point mass of e = exp((z - max)/tau) in [0, 1]. scale is a power of two, so e * scale is exact and the
// rounding is the same whether or not the compiler fuses the multiply-add.
__device__ __forceinline__ unsigned long long smp_mass(double e, double scale) {
    return e > 0.0 ? (unsigned long long)(e * scale + 0.5) : 0ull;
}

// (z - max) / tau in double. tau = 1 (the usual rollout temperature) skips the division, whose result would be the
// same bits: in the PTX a double division is a reciprocal estimate, Newton steps and a range check, about ten
// double operations next to the exp's fifteen, per logit of the statistics pass (unmeasured on a GPU).
__device__ __forceinline__ double smp_scaled(float z, double mx, double tau) {
    const double d = (double)z - mx;
    return tau == 1.0 ? d : d / tau;
}
__device__ __forceinline__ double smp_exp(float z, double mx, double tau) { return exp(smp_scaled(z, mx, tau)); }

// Larger logit first; equal logits: lower id first.
__device__ __forceinline__ bool smp_better(float v, int i, float bv, int bi) { return v > bv || (v == bv && i < bi); }

// Warp 0 finds, over bins in descending order, the first bin where the cumulative measure (mass when by_mass, else
// count) reaches thr (1 <= thr <= the total). Answer in sh.sel_bin and the count / mass of the bins before it in
// sh.sel_cnt / sh.sel_mass. Every thread calls it (barriers: the previous answer has been read; the new one is
// visible).
__device__ __forceinline__ void smp_find(const unsigned *hc, const unsigned long long *hm, int nbins, bool by_mass,
                                         unsigned long long thr, SmpShared &sh) {
    __syncthreads();
    if (threadIdx.x < 32) {
        const int lane = threadIdx.x, per = nbins / 32;
        // lane l owns descending positions [l*per, (l+1)*per): bins nbins-1-l*per down to nbins-(l+1)*per
        unsigned long long c = 0, m = 0;
        for (int t = lane * per; t < (lane + 1) * per; t++) {
            c += hc[nbins - 1 - t];
            m += hm[nbins - 1 - t];
        }
        unsigned long long ci = c, mi = m; // inclusive prefix over lanes
        for (int o = 1; o < 32; o <<= 1) {
            const unsigned long long cu = __shfl_up_sync(SMP_FULL, ci, o), mu = __shfl_up_sync(SMP_FULL, mi, o);
            if (lane >= o) {
                ci += cu;
                mi += mu;
            }
        }
        const unsigned hit = __ballot_sync(SMP_FULL, (by_mass ? mi : ci) >= thr);
        const int first = hit ? __ffs((int)hit) - 1 : 31; // thr <= total: never empty
        if (lane == first) {
            unsigned long long cb = ci - c, mb = mi - m;
            int bin = nbins - (lane + 1) * per; // the lane's last bin if nothing crosses (cannot happen)
            for (int t = lane * per; t < (lane + 1) * per; t++) {
                const int b = nbins - 1 - t;
                const unsigned long long nc = cb + hc[b], nm = mb + hm[b];
                if ((by_mass ? nm : nc) >= thr) {
                    bin = b;
                    break;
                }
                cb = nc;
                mb = nm;
            }
            sh.sel_bin = (unsigned)bin;
            sh.sel_cnt = cb;
            sh.sel_mass = mb;
        }
    }
    __syncthreads();
}

// Histogram into sh.hc / sh.hm / sh.hid of the logits whose key >> (dshift + 11) equals prefix, binned by the 11
// key bits at dshift. Every thread calls it.
template <int NT, bool CACHE>
__device__ __forceinline__ void smp_hist(const SmpRow<CACHE> &row, const SmpParams &p, double mx, uint32_t prefix,
                                         int dshift, SmpShared &sh) {
    __syncthreads(); // everybody has read the previous histogram's answer
    for (int b = threadIdx.x; b < SMP_N2; b += NT) {
        sh.hc[b] = 0;
        sh.hm[b] = 0;
        sh.hid[b] = INT_MAX;
    }
    __syncthreads();
    for (int j = threadIdx.x; j < p.V; j += NT) {
        const float z = row[j];
        const uint32_t key = smp_key(z);
        if ((key >> (dshift + 11)) != prefix) continue;
        const int d = (int)((key >> dshift) & (SMP_N2 - 1));
        atomicAdd(&sh.hc[d], 1u);
        atomicAdd(&sh.hm[d], smp_mass(smp_exp(z, mx, p.tau), p.scale));
        atomicMin(&sh.hid[d], j);
    }
    __syncthreads();
}

// The logit value (as its key) at the first position in sorted order where the cumulative count (by_mass false)
// or mass reaches thr, with the count and mass of everything before that value, and the count, mass and lowest
// id of the logits equal to it.
struct SmpSel {
    uint32_t key;
    unsigned long long n_gt, m_gt, n_eq, m_eq;
    int min_id;
};

template <int NT, bool CACHE>
__device__ __forceinline__ SmpSel smp_select(const SmpRow<CACHE> &row, const SmpParams &p, double mx, bool by_mass,
                                             unsigned long long thr, SmpShared &sh) {
    smp_find(sh.h1c, sh.h1m, SMP_N1, by_mass, thr, sh);
    const uint32_t b1 = sh.sel_bin;
    unsigned long long n_gt = sh.sel_cnt, m_gt = sh.sel_mass;
    smp_hist<NT>(row, p, mx, b1, 11, sh);
    smp_find(sh.hc, sh.hm, SMP_N2, by_mass, thr - (by_mass ? m_gt : n_gt), sh);
    const uint32_t b2 = sh.sel_bin;
    n_gt += sh.sel_cnt;
    m_gt += sh.sel_mass;
    smp_hist<NT>(row, p, mx, (b1 << 11) | b2, 0, sh);
    smp_find(sh.hc, sh.hm, SMP_N2, by_mass, thr - (by_mass ? m_gt : n_gt), sh);
    const uint32_t b3 = sh.sel_bin;
    SmpSel r;
    r.key = (b1 << 22) | (b2 << 11) | b3;
    r.n_gt = n_gt + sh.sel_cnt;
    r.m_gt = m_gt + sh.sel_mass;
    r.n_eq = sh.hc[b3];
    r.m_eq = sh.hm[b3];
    r.min_id = sh.hid[b3];
    return r;
}

// The mass of each of the equal logits a selection ended on (equal logits have one mass). A selection by mass
// ends on logits of positive mass; at_least_1 keeps its callers' divisions safe regardless.
__device__ __forceinline__ unsigned long long smp_each(const SmpSel &s, bool at_least_1) {
    const unsigned long long q = s.n_eq ? s.m_eq / s.n_eq : 0;
    return q || !at_least_1 ? q : 1;
}

// The id of the i-th (0-based) logit, in id order, whose key is `key`: the row in chunks of the block's threads,
// a ballot count per warp, the warps' counts in order. Every thread calls it.
template <int NT, bool CACHE>
__device__ __forceinline__ int smp_nth_equal(const SmpRow<CACHE> &row, int V, uint32_t key, unsigned long long i,
                                             SmpShared &sh) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    unsigned long long base = 0;
    __syncthreads();
    if (threadIdx.x == 0) sh.found = 0;
    for (int j0 = 0; j0 < V; j0 += NT) {
        const int j = j0 + (int)threadIdx.x;
        const bool f = j < V && smp_key(row[j]) == key;
        const unsigned bal = __ballot_sync(SMP_FULL, f);
        if (lane == 0) sh.wcnt[warp] = (unsigned)__popc(bal);
        __syncthreads();
        unsigned long long before = base, chunk = 0;
        for (int w = 0; w < NT / 32; w++) {
            if (w < warp) before += sh.wcnt[w];
            chunk += sh.wcnt[w];
        }
        if (f && before + (unsigned long long)__popc(bal & ((1u << lane) - 1u)) == i) sh.found = j;
        base += chunk;
        __syncthreads(); // sh.found visible, sh.wcnt free again
        if (base > i) break;
    }
    return sh.found;
}

// The sampled token of a row (not greedy); arg = the argmax, Q = the row's total mass.
template <int NT, bool CACHE>
__device__ __forceinline__ int smp_draw(const SmpRow<CACHE> &row, const SmpParams &p, double mx, int arg,
                                        unsigned long long Q, const int *key, SmpShared &sh) {
    const unsigned long long V = (unsigned long long)p.V;
    // top-k: the first K logits, mass_k
    const unsigned long long K = p.top_k > 0 && (unsigned long long)p.top_k < V ? (unsigned long long)p.top_k : V;
    unsigned long long n_keep = K, mass_keep = Q;
    if (K < V) {
        const SmpSel a = smp_select<NT>(row, p, mx, false, K, sh);
        mass_keep = a.m_gt + (K - a.n_gt) * smp_each(a, false);
    }
    // top-p: the shortest prefix whose mass reaches top_p * Q, unless the top-k cut is shorter
    if (p.top_p < 1.0f) {
        const double t = ceil((double)p.top_p * (double)Q);
        const unsigned long long thr = !(t >= 1.0) ? 1ull : t >= (double)Q ? Q : (unsigned long long)t;
        const SmpSel b = smp_select<NT>(row, p, mx, true, thr, sh);
        const unsigned long long q = smp_each(b, true), take = (thr - b.m_gt + q - 1) / q; // equal logits taken
        if (b.n_gt + take < n_keep) {
            n_keep = b.n_gt + take;
            mass_keep = b.m_gt + take * q;
        }
    }
    if (n_keep == 1) return arg; // the first logit in the order is the argmax
    // the draw: the first logit whose cumulative mass exceeds u * mass_keep
    const float u = rlc_philox_uniform(p.seed, p.step, (uint64_t)key[0], (uint64_t)key[1], (uint64_t)key[2], 0);
    unsigned long long thr = (unsigned long long)((double)u * (double)mass_keep) + 1;
    if (thr > mass_keep) thr = mass_keep;
    const SmpSel c = smp_select<NT>(row, p, mx, true, thr, sh);
    const unsigned long long q = smp_each(c, true), i = (thr - c.m_gt + q - 1) / q - 1; // index among equal logits
    return i == 0 || i >= c.n_eq ? c.min_id : smp_nth_equal<NT>(row, p.V, c.key, i, sh);
}

// NT threads a block, MINB blocks a multiprocessor (variant 0: 256 x 4, up to 64 registers a thread: ptxas's
// default target for this shared-memory size is 48 registers, which spills; variant 1: 1024 x 1). CACHE (variant 1):
// the dynamic shared memory holds the row's first min(V, SMP_CACHE) logits after the max pass.
template <int NT, int MINB, bool CACHE>
__global__ void __launch_bounds__(NT, MINB)
    smp_kernel(int *tok_out, float *logp_out, float *ent_out, const float *logits, const int *keys, SmpParams p) {
    __shared__ SmpShared sh;
    RLC_DYN_SMEM(float, cache); // (min(V, SMP_CACHE)) with CACHE
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int n_cache = CACHE ? min(p.V, SMP_CACHE) : 0;
    SmpRow<CACHE> row = {logits + (size_t)blockIdx.x * p.ld, cache, 0}; // reads global until the cache is filled
    for (int b = threadIdx.x; b < SMP_N1; b += NT) {
        sh.h1c[b] = 0;
        sh.h1m[b] = 0;
    }
    // 1. max and argmax (the first maximum: per thread by strict >, across threads by the lower id)
    float bv = -INFINITY;
    int bi = INT_MAX;
    for (int j = threadIdx.x; j < p.V; j += NT) {
        const float z = row.g[j];
        if (CACHE && j < n_cache) cache[j] = z;
        if (z > bv) {
            bv = z;
            bi = j;
        }
    }
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(SMP_FULL, bv, o);
        const int oi = __shfl_xor_sync(SMP_FULL, bi, o);
        if (smp_better(ov, oi, bv, bi)) {
            bv = ov;
            bi = oi;
        }
    }
    if (lane == 0) {
        sh.wv[warp] = bv;
        sh.wi[warp] = bi;
    }
    __syncthreads(); // also: the cache is filled
    row.n_cached = n_cache;
    bv = sh.wv[0];
    bi = sh.wi[0];
    for (int w = 1; w < NT / 32; w++)
        if (smp_better(sh.wv[w], sh.wi[w], bv, bi)) {
            bv = sh.wv[w];
            bi = sh.wi[w];
        }
    const double mx = (double)bv;
    const int arg = bi == INT_MAX ? 0 : bi; // all -inf: the CPU's initial 0

    // 2. softmax statistics in double (+ the level-1 histogram and the total mass when sampling)
    double s = 0.0, spu = 0.0;
    unsigned long long qs = 0;
    for (int j = threadIdx.x; j < p.V; j += NT) {
        const float z = row[j];
        const double x = smp_scaled(z, mx, p.tau), e = exp(x); // smp_exp: the histograms' very expression
        s += e;
        spu += e * x;
        if (!p.greedy) {
            const unsigned long long q = smp_mass(e, p.scale);
            const uint32_t b = smp_key(z) >> 22;
            qs += q;
            atomicAdd(&sh.h1c[b], 1u);
            atomicAdd(&sh.h1m[b], q);
        }
    }
    for (int o = 16; o > 0; o >>= 1) { // butterfly: every lane ends with the same sums
        s += __shfl_xor_sync(SMP_FULL, s, o);
        spu += __shfl_xor_sync(SMP_FULL, spu, o);
        qs += __shfl_xor_sync(SMP_FULL, qs, o);
    }
    if (lane == 0) {
        sh.wd[0][warp] = s;
        sh.wd[1][warp] = spu;
        sh.wq[warp] = qs;
    }
    __syncthreads();
    double sum = 0.0, sum_pu = 0.0;
    unsigned long long Q = 0;
    for (int w = 0; w < NT / 32; w++) {
        sum += sh.wd[0][w];
        sum_pu += sh.wd[1][w];
        Q += sh.wq[w];
    }
    const double lse = log(sum);

    // 3. the token
    const int tok = p.greedy ? arg : smp_draw<NT>(row, p, mx, arg, Q, keys + 3 * (size_t)blockIdx.x, sh);
    if (threadIdx.x == 0) {
        tok_out[blockIdx.x] = tok;
        logp_out[blockIdx.x] = (float)(smp_scaled(row[tok], mx, p.tau) - lse);
        ent_out[blockIdx.x] = (float)(lse - sum_pu / sum);
    }
}

static int smp_variant = 0; // rlc_cuda_sample_set_variant (tests and benches)

static int smp_launch_ok(const char *what) {
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) return 0;
    fprintf(stderr, "%s: kernel launch failed: %s\n", what, cudaGetErrorString(e));
    return -1;
}

extern "C" int rlc_cuda_sample_tokens(int *tok, float *logp, float *ent, const float *logits, size_t ld, int n, int V,
                                      float temperature, int top_k, float top_p, int greedy, const int *keys,
                                      uint64_t seed, uint64_t step, void *stream) {
    if (V < 1 || n < 0 || (!greedy && !(temperature > 0.0f))) {
        fprintf(stderr, "rlc_cuda_sample_tokens: bad arguments (n=%d V=%d temperature=%g greedy=%d)\n", n, V,
                (double)temperature, greedy);
        return -1;
    }
    if (n == 0) return 0;
    int clog = 0; // ceil(log2 V)
    while (((size_t)1 << clog) < (size_t)V) clog++;
    SmpParams p;
    p.V = V;
    p.ld = ld;
    p.tau = greedy ? 1.0 : (double)temperature;
    p.top_k = top_k;
    p.top_p = top_p;
    p.greedy = greedy;
    p.seed = seed;
    p.step = step;
    p.scale = ldexp(1.0, 62 - clog); // V masses of at most 2^(62 - clog) sum to at most 2^62
    if (smp_variant == 1) {
        const size_t smem = (size_t)(V < SMP_CACHE ? V : SMP_CACHE) * sizeof(float);
        if (!rlc_smem_allow(smp_kernel<1024, 1, true>, smem, "rlc_cuda_sample_tokens")) return -1;
        RLC_LAUNCH((smp_kernel<1024, 1, true>), (unsigned)n, 1024, smem, (cudaStream_t)stream, tok, logp, ent, logits,
                   keys, p);
    } else {
        RLC_LAUNCH((smp_kernel<256, 4, false>), (unsigned)n, 256, 0, (cudaStream_t)stream, tok, logp, ent, logits, keys,
                   p);
    }
    return smp_launch_ok("rlc_cuda_sample_tokens");
}

extern "C" int rlc_cuda_sample_set_variant(int v) {
    if (v < 0 || v > 1) return -1;
    smp_variant = v;
    return 0;
}
