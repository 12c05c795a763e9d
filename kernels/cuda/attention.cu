// kernels/cuda/attention.cu: causal GQA attention on token-packed batches (forward, backward) and split-K decode
// against a KV cache, on tensor cores (ldmatrix + mma.sync m16n8k16 bf16 -> fp32). Interface: attention.h; CPU
// twin: kernels/cpu/attention_cpu.c; fragment layouts: shared/spec/tensor_core_layouts.md.
//
// Forward (FlashAttention-2): one block of NW warps per (BM-query tile, head); warp w owns MT m-tiles of 16
// query rows (BM = 16 MT NW; the default: 128 rows, 4 warps x 32). With MT = 2 every K/V fragment read from
// shared memory feeds two mma instead of one, which halves the shared-memory traffic per flop (the bound of the
// 16-row kernel). K/V tiles of BN keys stream through shared memory with cp.async double buffering; S = Q K^T and
// O += P V are mma.sync; the softmax is online in fp32 in the exp2 domain (the scale folded into one FFMA per
// score, exp2 on the MUFU unit without the denormal fix-up: att_exp2), P is rounded to bf16 for the PV product as
// on every flash kernel. A warp skips the key tiles that lie wholly after its rows and masks only the tiles that
// cross its diagonal. With LAZY the running maximum is only moved (and O, l rescaled) when a row's maximum grows
// by more than ATT_LAZY_SLACK (log2 units): the probabilities are then bounded by 2^ATT_LAZY_SLACK instead of 1,
// which costs nothing in accuracy (bf16 and fp32 are relative formats) and skips the rescale of O on most tiles.
// The per-row log-sum-exp is saved for the backward.
// Backward: D = rowsum(dO * O) first (small kernel); then two kernels that recompute P from lse:
//   dK/dV: one block per (key tile, kv head, head split); loops over its query heads of the group and the query
//          tiles at or after the diagonal in a fixed order, accumulating dV += P^T dO and dK += dS^T Q in
//          registers. With few kv heads and short sequences the heads of a group are shared out among up to
//          rep/2 blocks whose partials (in dq's memory, free until the dQ kernel) a small kernel sums in order.
//          att_bwd_dkdv_kernel: 16-key warp tiles, P stays in registers; att_bwd_dkdv2_kernel: 32-key warp tiles
//          with P^T / dS^T passed through shared memory (fewer shared-memory bytes per flop, one more barrier).
//   dQ:    one block per (query tile, head); loops over the key tiles, dQ += dS K.
//   Or (backward 3 and 4) no dQ kernel: the dK/dV blocks add dQ += dS K themselves, with float atomics whose
//   order is fixed (key tile after key tile, behind a per-tile count; AttDq, att_dq_turn, att_dq_add), and the
//   head splits of a key tile write dK/dV one after the other (no partials, no reduce kernel). That does the
//   product dS K once instead of recomputing S and dP in a second kernel (5 matrix products instead of 7), at the
//   price of the atomics' traffic and the waits between blocks.
// Every output element has one writer (or, in backward 3 and 4, its atomics in one order) and every sum a fixed
// order: deterministic.
// Decode (flash-decoding): one block per (cache piece, kv head, row); the block's 4 warps take key tiles in
// turn, each with its own cp.async ring of NS stages and online softmax over the (up to 16) query heads of the
// group padded to the 16 rows of an mma; the warps are merged in shared memory, each piece writes (normalised
// output, log-sum-exp) and a second kernel combines the pieces.
// Pipelines: each loop step waits for its own tile, then one barrier (all threads' copies visible, and every warp
// done with the previous tile), then issues the prefetch of the next tile into the stage just freed, then computes.
// Tile loads (att_load_rows) have compile-time trip counts and no division: the loops of the first kernels'
// loader (a division per 16-byte chunk) cost as many instructions per tile as the math of the backward kernels.
// Schedule: the grid is one-dimensional, heads fastest (the blocks of one tile for the heads of a GQA group run
// together and share K/V in L2); a block finds its (sequence, tile) from cu_seqlens with warp-wide scans, so the
// grid is an upper bound on the tile count computed on the host without reading cu_seqlens. With lpt the tiles
// of each 32 sequences run longest first (causal work grows with the query tile's index and shrinks with the key
// tile's), so the last wave holds the short tiles.
// Variants: rlc_cuda_attention_set_variant picks among the compiled candidates at run time so that one run of
// bench_attention_gpu --variants compares them. What remains after the H200 comparison of 2026-11-27
// (bench/results/logs/h200_2026-11-27_attention_variants.log, whose v-numbers are the old ones: fwd v1, bwd v6,
// dec v2 are the defaults here) is one forward, one decode and three backwards: 0 (the default, the fastest
// measured) and the unmeasured candidates 1 and 2 (32-key dK/dV warp tiles); backward 3 and 4 (0 and 1 with dQ
// added by the dK/dV kernel) came after that run and are unmeasured too. The dominated variants, among them
// the kernels before this rewrite, are deleted. Measured: time vs the kernels before the rewrite (geometric
// mean over 0.5B- and 7B-like shapes, 4k-32k tokens): forward 0.57, backward 0.67, decode 0.96 (queued). vs
// torch SDPA (flash): forward 1.05-1.78x; backward 0.76-1.23x; decode 58-100% of the device copy bandwidth.
// Registers (nvcc 13, sm_90a, no spills): forward 228 (HD 64) / 236 (HD 128); backward dK/dV 0: 212 / 246,
// 1: 224 / 254, 2: 252 / 244, 3: 235 / 245, 4: 238 / 255; dQ 206 / 238; decode 94 / 165.
#include "attention.h"

#include <math.h>

#include <algorithm>
#include <mutex>
#include <set>
#include <utility>

#include "rlc_cuda.h"


#define ATT_THREADS 128 // 4 warps: the decode and the D kernel of the backward
#define ATT_BM 64       // rows per tile of the early return of forward / backward on an empty batch
#define ATT_LOG2E 1.4426950408889634f
#define ATT_LN2 0.6931471805599453f
#define ATT_LAZY_SLACK 8.0f // lazy rescale: probabilities up to 2^8 before the running maximum is moved
#define ATT_FULL 0xffffffffu

typedef __nv_bfloat16 bf16;

// Keys per K/V tile of the dQ kernel and queries per Q/dO tile of the dK/dV kernel: smaller for head dim 128 so
// that the per-warp accumulators (dQ or dK+dV, 16 x HD each, plus two 16 x tile score blocks) fit in registers.
template <int HD> struct AttBwd {
    static constexpr int BT = HD == 128 ? 32 : 64;
};

// --------------------------------------------------------------------------------------------------- helpers

__device__ __forceinline__ uint32_t att_pack_bf16(float lo, float hi) {
    return (uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(lo)) |
           ((uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(hi)) << 16);
}

__device__ __forceinline__ float att_quad_max(float x) {
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
    return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float att_quad_sum(float x) {
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// A operand (16 x 16 row-major, rows row0.., columns k0..) of one warp from shared memory (row stride lds).
__device__ __forceinline__ void att_ldm_a(uint32_t (&a)[4], const bf16 *s, int lds, int row0, int k0, int lane) {
    rlc_ldmatrix_x4(a, &s[(row0 + (lane & 15)) * lds + k0 + (lane >> 4) * 8]);
}
// B operands of two n-tiles (n0..n0+7 and n0+8..n0+15) over k0..k0+15 where B[k][n] = S[n][k] (S stored with
// n as the row: keys of K^T, queries of Q^T): non-transposed ldmatrix.
__device__ __forceinline__ void att_ldm_bt(uint32_t (&b0)[2], uint32_t (&b1)[2], const bf16 *s, int lds, int n0,
                                           int k0, int lane) {
    uint32_t r[4];
    rlc_ldmatrix_x4(r, &s[(n0 + (lane >> 4) * 8 + (lane & 7)) * lds + k0 + ((lane >> 3) & 1) * 8]);
    b0[0] = r[0], b0[1] = r[1], b1[0] = r[2], b1[1] = r[3];
}
// B operands of two n-tiles where B[k][n] = S[k][n] (S stored with k as the row: V, dO, Q, K as right factors):
// transposed ldmatrix.
__device__ __forceinline__ void att_ldm_b(uint32_t (&b0)[2], uint32_t (&b1)[2], const bf16 *s, int lds, int k0,
                                          int n0, int lane) {
    uint32_t r[4];
    rlc_ldmatrix_x4_trans(r, &s[(k0 + ((lane >> 3) & 1) * 8 + (lane & 7)) * lds + n0 + (lane >> 4) * 8]);
    b0[0] = r[0], b0[1] = r[1], b1[0] = r[2], b1[1] = r[3];
}
// A operand for k-step kk built from two accumulator n-tiles (2kk, 2kk+1) of a 16 x N fp32 block held in
// registers (the C layout of n-tile pairs is the A layout of one 16 x 16 step), rounded to bf16.
__device__ __forceinline__ void att_acc_to_a(uint32_t (&a)[4], const float (&c0)[4], const float (&c1)[4]) {
    a[0] = att_pack_bf16(c0[0], c0[1]);
    a[1] = att_pack_bf16(c0[2], c0[3]);
    a[2] = att_pack_bf16(c1[0], c1[1]);
    a[3] = att_pack_bf16(c1[2], c1[3]);
}

// 2^x on the MUFU unit (rlc_cuda.h): the scores never need denormal probabilities (they underflow to 0 either way
// after the bf16 rounding).
__device__ __forceinline__ float att_exp2(float x) { return rlc_exp2_ftz(x); }

// Block u of a schedule -> sequence *b, index *t of the tile in it, *n tiles in that sequence (a sequence of
// length L has ceil(L/BT) tiles). False if u is past the last tile. The tiles are taken 32 sequences at a time,
// in order; within such a chunk either sequence after sequence (lpt = 0; each sequence's tiles last to first if
// desc, else first to last), or level by level (lpt = 1): with desc all tiles of index
// n_max-1 of the chunk first, then those of index n_max-2, ... (longest first for query tiles of a causal
// forward or dQ, whose work grows with the index); without desc index 0 first (key tiles of dK/dV, whose work
// shrinks with the index). Warp-wide (all 32 lanes call it): prefix sums by shuffles, a binary search over the
// levels by warp reductions.
__device__ __forceinline__ bool att_schedule(const int *cu_seqlens, int B, int BT, int u, int lane, int lpt,
                                             bool desc, int *b, int *t, int *n) {
    int base = 0; // tiles of the sequences before this chunk of 32
    for (int c = 0; c < B; c += 32) {
        const int bb = c + lane;
        const int nl = bb < B ? (cu_seqlens[bb + 1] - cu_seqlens[bb] + BT - 1) / BT : 0;
        const int total = (int)__reduce_add_sync(ATT_FULL, (unsigned)nl);
        if (u < base + total) {
            const int v = u - base; // index of the tile within this chunk's order
            if (!lpt) {
                int incl = nl;
                for (int o = 1; o < 32; o <<= 1) {
                    const int y = __shfl_up_sync(ATT_FULL, incl, o);
                    if (lane >= o) incl += y;
                }
                const int first = __ffs((int)__ballot_sync(ATT_FULL, v < incl)) - 1;
                const int excl = __shfl_sync(ATT_FULL, incl - nl, first);
                *b = c + first;
                *n = __shfl_sync(ATT_FULL, nl, first);
                *t = desc ? *n - 1 - (v - excl) : v - excl;
                return true;
            }
            // before(L): tiles ordered before level L (desc: indices > L; else: indices < L); non-increasing in L
            // for desc, non-decreasing otherwise. The tile's level: desc, the smallest L with before(L) <= v; else
            // the largest.
            const int nmax = __reduce_max_sync(ATT_FULL, nl);
            int lo = 0, hi = nmax - 1;
            while (lo < hi) {
                const int mid = desc ? (lo + hi) >> 1 : (lo + hi + 1) >> 1;
                const int before = (int)__reduce_add_sync(ATT_FULL, (unsigned)(desc ? max(0, nl - mid - 1) : min(nl, mid)));
                if (desc) {
                    if (before <= v) hi = mid;
                    else lo = mid + 1;
                } else {
                    if (before <= v) lo = mid;
                    else hi = mid - 1;
                }
            }
            const int before = (int)__reduce_add_sync(ATT_FULL, (unsigned)(desc ? max(0, nl - lo - 1) : min(nl, lo)));
            // the (v - before)-th sequence, in order, of those with a tile at level lo
            const bool has = nl > lo;
            const unsigned mask = __ballot_sync(ATT_FULL, has);
            const bool me = has && __popc(mask & ((1u << lane) - 1u)) == v - before;
            const int sel = __ffs((int)__ballot_sync(ATT_FULL, me)) - 1;
            *b = c + sel;
            *t = lo;
            *n = __shfl_sync(ATT_FULL, nl, sel);
            return true;
        }
        base += total;
    }
    return false;
}

// cp.async of rows [0, n_valid) of a (ROWS, HD) bf16 tile with global row stride ld (elements) into shared memory
// with row stride HD + 8 (the pad keeps ldmatrix's 8 row addresses on distinct banks); rows n_valid..ROWS-1 are
// zero-filled (their source address is the tile's first row, never read). NTHR threads, thread index i; each
// thread copies the same 16-byte column of rows r0, r0 + NTHR/CPR, ... (compile-time trip count, no division in
// the loop).
template <int HD, int ROWS, int NTHR>
__device__ __forceinline__ void att_load_rows(bf16 *s, const bf16 *g, int ld, int n_valid, int i) {
    constexpr int CPR = HD / 8, TOTAL = ROWS * CPR, ITERS = (TOTAL + NTHR - 1) / NTHR, RSTEP = NTHR / CPR;
    static_assert(NTHR % CPR == 0, "threads must cover whole rows");
    const int r0 = i / CPR, cc = (i % CPR) * 8;
    RLC_UNROLL
    for (int it = 0; it < ITERS; it++) {
        const int r = r0 + it * RSTEP;
        if (TOTAL % NTHR != 0 && r >= ROWS) break;
        const bool ok = r < n_valid;
        rlc_cp_async16_zfill(s + r * (HD + 8) + cc, g + (ok ? r * ld + cc : 0), ok ? 16 : 0);
    }
}

// ------------------------------------------------------------------------- backward D, decode combine

// Drow (rows) = sum_d dout[row][d] * out[row][d], rows = T * NH; one warp per row, fp32.
__global__ void __launch_bounds__(ATT_THREADS)
    att_bwd_dot_kernel(float *Drow, const bf16 *dout, const bf16 *out, int rows, int HD) {
    const int lane = threadIdx.x & 31;
    const long row = (long)blockIdx.x * (ATT_THREADS / 32) + (threadIdx.x >> 5);
    if (row >= rows) return; // whole warps leave together
    const __nv_bfloat162 *a = reinterpret_cast<const __nv_bfloat162 *>(dout + (size_t)row * HD);
    const __nv_bfloat162 *o = reinterpret_cast<const __nv_bfloat162 *>(out + (size_t)row * HD);
    float s = 0.0f;
    for (int i = lane; i < HD / 2; i += 32) {
        float2 x = __bfloat1622float2(a[i]), y = __bfloat1622float2(o[i]);
        s = fmaf(x.x, y.x, fmaf(x.y, y.y, s));
    }
    for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
    if (lane == 0) Drow[row] = s;
}

// out (B*NH rows, HD) = the pieces of each row weighted by exp2(part_lse - max); blockDim.x = HD.
__global__ void att_dec_combine_kernel(bf16 *out, const float *part_o, const float *part_lse, const int *kv_len,
                                       int NH, int HD, int n_split, int split_len) {
    const int bh = blockIdx.x, d = threadIdx.x, n = kv_len[bh / NH], ns = (n + split_len - 1) / split_len;
    const float *pl = part_lse + (size_t)bh * n_split;
    float M = -INFINITY;
    for (int s = 0; s < ns; s++) M = fmaxf(M, pl[s]);
    float sum = 0.0f, acc = 0.0f;
    for (int s = 0; s < ns; s++) {
        const float w = exp2f(pl[s] - M);
        sum += w;
        acc += w * part_o[((size_t)bh * n_split + s) * HD + d];
    }
    out[(size_t)bh * HD + d] = __float2bfloat16_rn(ns > 0 ? acc / sum : 0.0f);
}

// ----------------------------------------------------------------------------------------------- forward

// Online-softmax step for one warp's MT m-tiles (this lane: rows g and g+8 of each, held as c[.][0..1] and
// c[.][2..3]): scores s (raw, -inf where masked) become bf16-ready probabilities exp2(s * sl2 - m); m (scaled,
// log2 units) and the lane's partial row sums l are updated and the output accumulator o rescaled. LAZY: see the
// header (m moves only when some row of the warp outgrows it by ATT_LAZY_SLACK; the vote keeps the branch
// warp-uniform).
template <int MT, int SN, int NT, bool LAZY>
__device__ __forceinline__ void att_softmax(float (&s)[MT][SN][4], float (&o)[MT][NT][4], float (&m)[MT][2],
                                            float (&l)[MT][2], float sl2) {
    float mx[MT][2];
    RLC_UNROLL
    for (int mt = 0; mt < MT; mt++) {
        float a = -INFINITY, c = -INFINITY;
        RLC_UNROLL
        for (int nt = 0; nt < SN; nt++) {
            a = fmaxf(a, fmaxf(s[mt][nt][0], s[mt][nt][1]));
            c = fmaxf(c, fmaxf(s[mt][nt][2], s[mt][nt][3]));
        }
        mx[mt][0] = att_quad_max(a) * sl2; // sl2 > 0: the maximum of the scaled scores
        mx[mt][1] = att_quad_max(c) * sl2;
    }
    bool rescale = true;
    if (LAZY) {
        bool need = false;
        RLC_UNROLL
        for (int mt = 0; mt < MT; mt++)
            RLC_UNROLL
            for (int r = 0; r < 2; r++) need = need || mx[mt][r] > m[mt][r] + ATT_LAZY_SLACK; // false while -inf
        rescale = __any_sync(ATT_FULL, need);
    }
    if (rescale) {
        RLC_UNROLL
        for (int mt = 0; mt < MT; mt++) {
            RLC_UNROLL
            for (int r = 0; r < 2; r++) {
                const float mn = fmaxf(m[mt][r], mx[mt][r]);
                const float alpha = att_exp2(m[mt][r] - (mn == -INFINITY ? 0.0f : mn)); // 0 from -inf
                m[mt][r] = mn;
                l[mt][r] *= alpha;
                RLC_UNROLL
                for (int nt = 0; nt < NT; nt++) o[mt][nt][2 * r] *= alpha, o[mt][nt][2 * r + 1] *= alpha;
            }
        }
    }
    RLC_UNROLL
    for (int mt = 0; mt < MT; mt++) {
        // a row with every key masked so far keeps its probabilities at exp2(-inf) = 0
        const float mu0 = m[mt][0] == -INFINITY ? 0.0f : m[mt][0], mu1 = m[mt][1] == -INFINITY ? 0.0f : m[mt][1];
        RLC_UNROLL
        for (int nt = 0; nt < SN; nt++) {
            s[mt][nt][0] = att_exp2(fmaf(s[mt][nt][0], sl2, -mu0));
            s[mt][nt][1] = att_exp2(fmaf(s[mt][nt][1], sl2, -mu0));
            s[mt][nt][2] = att_exp2(fmaf(s[mt][nt][2], sl2, -mu1));
            s[mt][nt][3] = att_exp2(fmaf(s[mt][nt][3], sl2, -mu1));
            l[mt][0] += s[mt][nt][0] + s[mt][nt][1];
            l[mt][1] += s[mt][nt][2] + s[mt][nt][3];
        }
    }
}

// o (MT m-tiles x NT*8 per warp) += P (probabilities in s, packed to bf16 A fragments) @ V (rows of the
// shared-memory tile sV with stride lds): each V fragment feeds MT mma. Shared by the forward and the decode.
template <int MT, int SN, int NT>
__device__ __forceinline__ void att_pv(float (&o)[MT][NT][4], const float (&s)[MT][SN][4], const bf16 *sV, int lds,
                                       int lane) {
    RLC_UNROLL
    for (int kk = 0; kk < SN / 2; kk++) {
        uint32_t a[MT][4];
        RLC_UNROLL
        for (int mt = 0; mt < MT; mt++) att_acc_to_a(a[mt], s[mt][2 * kk], s[mt][2 * kk + 1]);
        RLC_UNROLL
        for (int np = 0; np < NT / 2; np++) {
            uint32_t b0[2], b1[2];
            att_ldm_b(b0, b1, sV, lds, kk * 16, np * 16, lane);
            RLC_UNROLL
            for (int mt = 0; mt < MT; mt++) {
                rlc_mma_m16n8k16_bf16(o[mt][2 * np], a[mt], b0, o[mt][2 * np]);
                rlc_mma_m16n8k16_bf16(o[mt][2 * np + 1], a[mt], b1, o[mt][2 * np + 1]);
            }
        }
    }
}

template <int HD, int BM, int BN> constexpr size_t att_fwd_smem() { return (size_t)(BM + 4 * BN) * (HD + 8) * sizeof(bf16); }

// Grid: (query tiles upper bound) x NH blocks, head fastest. Q fragments stay in registers when they take at
// most 32 of them (MT * HD / 16 <= 8) and the budget allows; otherwise (HD 128 with MT = 2, or MINB > 1) they are
// re-read from shared memory at each k-step, which the register budget of the 2 x 16 x 128 accumulator needs.
template <int HD, int BM, int BN, int BS, int NW, bool LAZY, int MINB>
__global__ void __launch_bounds__(NW * 32, MINB)
    att_fwd_kernel(bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, const int *cu_seqlens, int B,
                   int NH, int NKV, float sl2, int lpt) {
    constexpr int NTHR = NW * 32, MT = BM / (16 * NW), LDS = HD + 8, KS = HD / 16, NT = HD / 8, SN = BS / 8;
    // Q fragments in registers when they take at most 32 and the register budget is the full 255 (MINB blocks of
    // NW warps per SM at most 256 threads' worth); else re-read from shared memory at each k-step
    constexpr bool QREG = MT * KS <= 8 && MINB * NW * 32 <= 256;
    static_assert(BM == 16 * MT * NW && (MT == 1 || MT == 2), "16 or 32 query rows per warp");
    static_assert(BN % BS == 0 && BS % 16 == 0, "steps of whole k-steps");
    RLC_DYN_SMEM(bf16, smem);
    bf16 *sQ = smem;              // (BM, LDS)
    bf16 *sK = sQ + BM * LDS;     // 2 stages x (BN, LDS)
    bf16 *sV = sK + 2 * BN * LDS; // 2 stages x (BN, LDS)
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g4 = lane >> 2, t4 = lane & 3;
    const int h = (int)(blockIdx.x % (unsigned)NH), kvh = h / (NH / NKV);
    int b, tile, ntile;
    if (!att_schedule(cu_seqlens, B, BM, (int)(blockIdx.x / (unsigned)NH), lane, lpt, true, &b, &tile, &ntile)) return;
    const int s0 = cu_seqlens[b], L = cu_seqlens[b + 1] - s0, i0 = tile * BM;
    const int qn = min(BM, L - i0), nkv = (i0 + qn + BN - 1) / BN;
    const int ldk = NKV * HD;
    // K/V rows of this kv head from key k0 of the sequence on (recomputed per tile: no 64-bit pointers live
    // across the loop, whose registers the accumulators need)
    auto kv_at = [&](const bf16 *base, int k0) { return base + ((size_t)(s0 + k0) * NKV + kvh) * HD; };

    att_load_rows<HD, BM, NTHR>(sQ, q + ((size_t)(s0 + i0) * NH + h) * HD, NH * HD, qn, tid);
    att_load_rows<HD, BN, NTHR>(sK, kv_at(k, 0), ldk, min(BN, L), tid);
    att_load_rows<HD, BN, NTHR>(sV, kv_at(v, 0), ldk, min(BN, L), tid);
    rlc_cp_async_commit();

    const int wr = warp * 16 * MT;         // the warp's first row in the tile
    const int wq0 = i0 + wr, wq1 = wq0 + 16 * MT - 1; // its first and last query (positions in the sequence)
    const bool live = wq0 < L;            // some row of the warp is in the sequence
    const int r0 = wq0 + g4;              // this lane's rows: r0 + 16 mt + 8 half
    float o[MT][NT][4], m[MT][2], l[MT][2];
    RLC_UNROLL
    for (int mt = 0; mt < MT; mt++) {
        m[mt][0] = m[mt][1] = -INFINITY, l[mt][0] = l[mt][1] = 0.0f;
        RLC_UNROLL
        for (int nt = 0; nt < NT; nt++) o[mt][nt][0] = o[mt][nt][1] = o[mt][nt][2] = o[mt][nt][3] = 0.0f;
    }
    uint32_t qf[QREG ? MT : 1][QREG ? KS : 1][4];

    for (int j = 0; j < nkv; j++) {
        // Tile j has landed for every thread, and every warp is done with tile j-1, whose stage the prefetch of
        // tile j+1 now refills (one barrier per tile; the prefetch overlaps this tile's math).
        rlc_cp_async_wait<0>();
        __syncthreads();
        if (j + 1 < nkv) {
            const int nb = (j + 1) & 1, k0 = (j + 1) * BN;
            att_load_rows<HD, BN, NTHR>(sK + nb * BN * LDS, kv_at(k, k0), ldk, min(BN, L - k0), tid);
            att_load_rows<HD, BN, NTHR>(sV + nb * BN * LDS, kv_at(v, k0), ldk, min(BN, L - k0), tid);
            rlc_cp_async_commit();
        }
        const int kb = j * BN;
        if (!live || kb > wq1) continue; // every key of the tile is after every row of the warp (warp-uniform)
        if (QREG && j == 0) {
            RLC_UNROLL
            for (int mt = 0; mt < MT; mt++)
                RLC_UNROLL
                for (int kk = 0; kk < KS; kk++) att_ldm_a(qf[QREG ? mt : 0][QREG ? kk : 0], sQ, LDS, wr + 16 * mt, kk * 16, lane);
        }
        // The tile in steps of BS keys (BS < BN when the scores of a whole tile would not fit in registers next
        // to the accumulator: HD 128 with 32 rows per warp).
        RLC_UNROLL
        for (int hs = 0; hs < BN / BS; hs++) {
            const int kh = kb + hs * BS;
            if (hs > 0 && kh > wq1) break; // the rest of the tile is after every row of the warp
            const bf16 *sKj = sK + ((j & 1) * BN + hs * BS) * LDS, *sVj = sV + ((j & 1) * BN + hs * BS) * LDS;
            float s[MT][SN][4];
            RLC_UNROLL
            for (int mt = 0; mt < MT; mt++)
                RLC_UNROLL
                for (int nt = 0; nt < SN; nt++) s[mt][nt][0] = s[mt][nt][1] = s[mt][nt][2] = s[mt][nt][3] = 0.0f;
            RLC_UNROLL
            for (int kk = 0; kk < KS; kk++) {
                uint32_t qa[MT][4];
                RLC_UNROLL
                for (int mt = 0; mt < MT; mt++) {
                    if (QREG) {
                        RLC_UNROLL
                        for (int e = 0; e < 4; e++) qa[mt][e] = qf[QREG ? mt : 0][QREG ? kk : 0][e];
                    } else {
                        att_ldm_a(qa[mt], sQ, LDS, wr + 16 * mt, kk * 16, lane);
                    }
                }
                RLC_UNROLL
                for (int np = 0; np < SN / 2; np++) {
                    uint32_t b0[2], b1[2];
                    att_ldm_bt(b0, b1, sKj, LDS, np * 16, kk * 16, lane);
                    RLC_UNROLL
                    for (int mt = 0; mt < MT; mt++) {
                        rlc_mma_m16n8k16_bf16(s[mt][2 * np], qa[mt], b0, s[mt][2 * np]);
                        rlc_mma_m16n8k16_bf16(s[mt][2 * np + 1], qa[mt], b1, s[mt][2 * np + 1]);
                    }
                }
            }
            // Causal mask where the step reaches past the warp's first row. Keys past the end of the sequence need
            // no mask of their own: they come after every row in it (rows past the end are never stored; their
            // keys there are zero-filled, so everything stays finite).
            if (kh + BS - 1 > wq0) {
                RLC_UNROLL
                for (int mt = 0; mt < MT; mt++)
                    RLC_UNROLL
                    for (int nt = 0; nt < SN; nt++)
                        RLC_UNROLL
                        for (int e = 0; e < 4; e++)
                            if (kh + nt * 8 + 2 * t4 + (e & 1) > r0 + 16 * mt + (e >> 1) * 8) s[mt][nt][e] = -INFINITY;
            }
            att_softmax<MT, SN, NT, LAZY>(s, o, m, l, sl2);
            att_pv<MT, SN, NT>(o, s, sVj, LDS, lane);
        }
    }
    if (!live) return; // no barrier below

    // Normalise, stage this warp's rows in its own rows of sQ (only this warp ever read them), then store
    // 16-byte chunks of whole rows.
    bf16 *sO = sQ + wr * LDS;
    RLC_UNROLL
    for (int mt = 0; mt < MT; mt++) {
        l[mt][0] = att_quad_sum(l[mt][0]);
        l[mt][1] = att_quad_sum(l[mt][1]);
        const float inv0 = 1.0f / l[mt][0], inv1 = 1.0f / l[mt][1];
        RLC_UNROLL
        for (int nt = 0; nt < NT; nt++) {
            *reinterpret_cast<uint32_t *>(&sO[(16 * mt + g4) * LDS + nt * 8 + 2 * t4]) =
                att_pack_bf16(o[mt][nt][0] * inv0, o[mt][nt][1] * inv0);
            *reinterpret_cast<uint32_t *>(&sO[(16 * mt + g4 + 8) * LDS + nt * 8 + 2 * t4]) =
                att_pack_bf16(o[mt][nt][2] * inv1, o[mt][nt][3] * inv1);
        }
    }
    __syncwarp();
    // rows of (out, lse) from the warp's first: (s0 + wq0) * NH + h, then NH apart; nrow of them in the sequence
    const int nrow = L - wq0;
    const size_t row0 = (size_t)(s0 + wq0) * NH + h;
    RLC_UNROLL
    for (int c = lane; c < 16 * MT * HD / 8; c += 32) {
        const int r = c / (HD / 8), cc = c % (HD / 8);
        if (r < nrow)
            *reinterpret_cast<uint4 *>(&out[(row0 + (size_t)r * NH) * HD + cc * 8]) =
                *reinterpret_cast<const uint4 *>(&sO[r * LDS + cc * 8]);
    }
    if (t4 == 0) {
        RLC_UNROLL
        for (int mt = 0; mt < MT; mt++)
            RLC_UNROLL
            for (int half = 0; half < 2; half++) {
                const int r = g4 + 16 * mt + 8 * half;
                if (r < nrow) lse[row0 + (size_t)r * NH] = (m[mt][half] + log2f(l[mt][half])) * ATT_LN2;
            }
    }
}

// ---------------------------------------------------------------------------------------------- backward

template <int HD, int NW, int BQ, bool DQ> constexpr size_t att_dkdv_smem() {
    return (size_t)(2 * 16 * NW + 4 * BQ) * (HD + 8) * sizeof(bf16) + 4 * BQ * sizeof(float) +
           (DQ ? (size_t)16 * NW * (BQ + 8) * sizeof(bf16) : 0);
}

// The dQ of the backward variants that add it from the dK/dV kernel (DQ = true): every block adds its keys'
// contribution to each query tile it visits with atomics, in key-tile order, so that each element's sum runs in
// the same order every run; key tile 0, first for every query tile and over all of its rows, stores instead (dq
// needs no zeroing). sem (NH, T), zeroed: sem[h T + t] counts the key tiles that have added to the tile of head h
// whose first query is token t; a block adds its part once the count equals its key tile's index, then publishes
// index + 1. next, zeroed: the work counter the blocks take their key tile from (instead of blockIdx), so every
// tile a block waits for was taken by a block that is already running: CUDA does not promise to start blocks in
// index order, and the emulator does not.
// With a head split (nsplit > 1) the splits of a key tile write its dK/dV in split order the same way: kcnt (NKV,
// T), zeroed: kcnt[kvh T + t] counts the splits of the key tile of kv head kvh whose first key is token t that
// have written; split 0 stores, the others add (att_kv_out_begin / _end).
struct AttDq {
    float *dq;
    unsigned *sem;
    unsigned *next;
    unsigned *kcnt;
    int T;
};

// Issues the loads of one item of a dK/dV block: BQ rows of Q and dO of query head h from query qs on by
// cp.async; lse * log2(e) and D by plain loads (+inf / 0 past the sequence end, so that those rows get
// probability 0). Visible to all threads after the next barrier.
template <int HD, int BQ, int NTHR>
__device__ __forceinline__ void att_dkdv_issue(bf16 *sQ, bf16 *sO, float *sL, float *sD, const bf16 *q,
                                               const bf16 *dout, const float *lse, const float *Drow, int h, int qs,
                                               int s0, int L, int NH, int tid) {
    const int qn = min(BQ, L - qs);
    const size_t off = ((size_t)(s0 + qs) * NH + h) * HD, ld = (size_t)NH * HD;
    att_load_rows<HD, BQ, NTHR>(sQ, q + off, ld, qn, tid);
    att_load_rows<HD, BQ, NTHR>(sO, dout + off, ld, qn, tid);
    if (tid < BQ) {
        const bool ok = tid < qn;
        const size_t i = (size_t)(s0 + qs + tid) * NH + h;
        sL[tid] = ok ? lse[i] * ATT_LOG2E : INFINITY;
        sD[tid] = ok ? Drow[i] : 0.0f;
    }
}

// A operand (16 x 16, rows m0.., columns k0..) of one warp from shared memory that holds its transpose (S[k][m],
// row stride lds): transposed ldmatrix (dS from dS^T).
__device__ __forceinline__ void att_ldm_at(uint32_t (&a)[4], const bf16 *s, int lds, int m0, int k0, int lane) {
    rlc_ldmatrix_x4_trans(a, &s[(k0 + (lane >> 4) * 8 + (lane & 7)) * lds + m0 + ((lane >> 3) & 1) * 8]);
}

// ---- the dQ of the backward variants whose dK/dV kernel adds it (DQ; AttDq), shared by both dK/dV kernels

// The block's work index: blockIdx.x, or with DQ the next value of the work counter (so that every block a block
// waits for has started: the index order is the order in which blocks took their tiles).
template <bool DQ> __device__ __forceinline__ int att_work_index(const AttDq &dqs) {
    if constexpr (DQ) {
        __shared__ int sh_work;
        if (threadIdx.x == 0) sh_work = (int)atomicAdd(dqs.next, 1u);
        __syncthreads();
        return sh_work;
    } else {
        return (int)blockIdx.x;
    }
}

// Item it of a dK/dV block -> its query head hh (from the block's first) and query tile qt (from the first at or
// after the block's keys). Heads outer, tiles first to last; with DQ tiles last to first, heads inner: every
// key tile of a sequence then meets the query tiles in the same order, so a block that started with or after its
// predecessor (the key tile before it) finds that tile's dQ added by the time it gets there, or soon after.
template <bool DQ> __device__ __forceinline__ void att_item(int it, int nhead, int nqt, int &hh, int &qt) {
    if constexpr (DQ) hh = it % nhead, qt = nqt - 1 - it / nhead;
    else hh = it / nqt, qt = it % nqt;
}

// This block's turn to add to the dQ tile whose count is cnt (whole block, in place of a barrier; thread 0 read
// *cnt into seen early). The previous item's atomics are ordered before its count (each thread's fence, then the
// barrier), the thread 0 publishes that count (key tile + 1) and waits until cnt equals this key tile.
__device__ __forceinline__ void att_dq_turn(unsigned *&pub, unsigned *cnt, unsigned &seen, int tile) {
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        if (pub) atomicExch(pub, (unsigned)tile + 1u);
        pub = cnt;
        while (seen != (unsigned)tile) seen = atomicAdd(cnt, 0u);
        __threadfence(); // the earlier tiles' atomics are seen before this block's
    }
    __syncthreads();
}
// After the last item (whole block): publish its count.
__device__ __forceinline__ void att_dq_last(unsigned *pub, int tile) {
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0 && pub) atomicExch(pub, (unsigned)tile + 1u);
}

// p[0], p[1] = x, y, or += with add (an 8-byte vector reduction).
__device__ __forceinline__ void att_put2(float *p, float x, float y, bool add) {
    if (add) rlc_red_add_f32x2(p, x, y);
    else *reinterpret_cast<float2 *>(p) = make_float2(x, y);
}

// The dK/dV output of a block (whole block): with DQ and a head split, split s > 0 of a key tile first waits
// until splits 0..s-1 have written (their count, AttDq::kcnt, at key = kvh T + first key token) and adds;
// otherwise the block stores. Returns whether it adds. att_kv_out_end then publishes s + 1.
template <bool DQ>
__device__ __forceinline__ bool att_kv_out_begin(const AttDq &dqs, unsigned *&kc, int nsplit, int split, size_t key) {
    if constexpr (DQ) {
        if (nsplit > 1) {
            kc = dqs.kcnt + key;
            if (split > 0) {
                if (threadIdx.x == 0) {
                    while (atomicAdd(kc, 0u) != (unsigned)split) {
                    }
                    __threadfence(); // the earlier splits' writes are seen before this block's atomics
                }
                __syncthreads();
                return true;
            }
        }
    }
    return false;
}
template <bool DQ> __device__ __forceinline__ void att_kv_out_end(unsigned *kc, int nsplit, int split) {
    if constexpr (DQ) {
        if (nsplit > 1 && split + 1 < nsplit) {
            __threadfence(); // this block's writes are ordered before the count (each thread's fence, the barrier)
            __syncthreads();
            if (threadIdx.x == 0) atomicExch(kc, (unsigned)split + 1u);
        }
    }
}

// dQ[query qi + r] of head h += scale dS K over the block's BK keys from key j0 (whole block, NW warps): dS^T in
// sS (BK x BQ, row stride ldss), K in sK (row stride HD + 8). Warp pieces of 16 queries x 32 columns, in steps of
// BQS = 32 NW / HD * 16 queries; each piece over the key steps up to its last query (later ones are zero, and a
// warp of the dK/dV kernel that had nothing to do in a step wrote no dS^T there), added with 8-byte vector
// reductions, or stored by key tile 0 (j0 = 0: the first). Rows past the sequence end L are not written.
template <int HD, int NW, int BK, int BQ>
__device__ __forceinline__ void att_dq_add(const AttDq &dqs, const bf16 *sS, int ldss, const bf16 *sK, int qi, int j0,
                                           int L, int s0, int NH, int h, float scale) {
    constexpr int CW = 32, MQ = CW * NW / HD, BQS = 16 * MQ;
    static_assert(MQ >= 1 && CW * NW == MQ * HD && BQ % BQS == 0, "dQ pieces: 16 queries x 32 columns per warp");
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g4 = lane >> 2, t4 = lane & 3;
    const int mq = warp % MQ, cw = warp / MQ * CW;
    RLC_UNROLL
    for (int hs = 0; hs < BQ / BQS; hs++) {
        const int qr0 = qi + hs * BQS + 16 * mq, klast = min(qr0 + 15, L - 1) - j0;
        if (qr0 >= L) continue; // warp-uniform
        float acc[CW / 8][4];
        RLC_UNROLL
        for (int nt = 0; nt < CW / 8; nt++) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
        RLC_UNROLL
        for (int kk = 0; kk < BK / 16; kk++) {
            if (16 * kk > klast) break;
            uint32_t a[4];
            att_ldm_at(a, sS, ldss, hs * BQS + 16 * mq, 16 * kk, lane);
            RLC_UNROLL
            for (int np = 0; np < CW / 16; np++) {
                uint32_t b0[2], b1[2];
                att_ldm_b(b0, b1, sK, HD + 8, 16 * kk, cw + 16 * np, lane);
                rlc_mma_m16n8k16_bf16(acc[2 * np], a, b0, acc[2 * np]);
                rlc_mma_m16n8k16_bf16(acc[2 * np + 1], a, b1, acc[2 * np + 1]);
            }
        }
        RLC_UNROLL
        for (int half = 0; half < 2; half++) {
            const int r = qr0 + g4 + 8 * half;
            if (r >= L) continue;
            float *d = dqs.dq + ((size_t)(s0 + r) * NH + h) * HD + cw + 2 * t4;
            RLC_UNROLL
            for (int nt = 0; nt < CW / 8; nt++) { // one 8-byte store or vector reduction per pair of columns
                att_put2(&d[nt * 8], acc[nt][2 * half] * scale, acc[nt][2 * half + 1] * scale, j0 > 0);
            }
        }
    }
}

// One dK/dV block's work (both dK/dV kernels): its key tile (index tile, keys j0.. of the sequence at s0 of length
// L, kv head kvh) and its items (query head of head0.. head0 + nhead - 1, query tile of BQ rows from qt0 on, in
// att_item's order), whose Q and dO rows, lse * log2(e) and D go through the two stages of sQ, sO, sL, sD.
template <int HD, int BK, int BQ, int NTHR, bool DQ> struct AttKVBlock {
    bf16 *sQ, *sO;
    float *sL, *sD;
    const bf16 *q, *dout;
    const float *lse, *Drow;
    int NH, kvh = 0, split = 0, head0 = 0, nhead = 0, tile = 0, s0 = 0, L = 0, j0 = 0, qt0 = 0, nqt = 0, nit = 0;

    __device__ __forceinline__ AttKVBlock(bf16 *sQ_, bf16 *sO_, float *sL_, float *sD_, const bf16 *q_,
                                          const bf16 *dout_, const float *lse_, const float *Drow_, int NH_)
        : sQ(sQ_), sO(sO_), sL(sL_), sD(sD_), q(q_), dout(dout_), lse(lse_), Drow(Drow_), NH(NH_) {}
    // Finds the block's work (false: past the last key tile, and the whole block returns), loads its K and V
    // rows into sK, sV and issues item 0 (one cp.async group).
    __device__ __forceinline__ bool start(const AttDq &dqs, const int *cu, int B, int NKV, int lpt, int nsplit,
                                          bf16 *sK, bf16 *sV, const bf16 *k, const bf16 *v) {
        const int wi = att_work_index<DQ>(dqs), rep = NH / NKV;
        split = wi % nsplit, kvh = wi / nsplit % NKV;
        head0 = kvh * rep + split * rep / nsplit, nhead = kvh * rep + (split + 1) * rep / nsplit - head0;
        int b, ntile;
        if (!att_schedule(cu, B, BK, wi / (nsplit * NKV), threadIdx.x & 31, lpt, false, &b, &tile, &ntile))
            return false;
        s0 = cu[b], L = cu[b + 1] - s0, j0 = tile * BK;
        qt0 = j0 / BQ, nqt = (L + BQ - 1) / BQ - qt0, nit = nhead * nqt; // queries >= j0 only (causal)
        const size_t koff = ((size_t)(s0 + j0) * NKV + kvh) * HD;
        att_load_rows<HD, BK, NTHR>(sK, k + koff, NKV * HD, min(BK, L - j0), threadIdx.x);
        att_load_rows<HD, BK, NTHR>(sV, v + koff, NKV * HD, min(BK, L - j0), threadIdx.x);
        if (nit > 0) issue(0);
        else rlc_cp_async_commit();
        return true;
    }
    // Issues item it's rows into stage it & 1.
    __device__ __forceinline__ void issue(int it) {
        const int nb = it & 1;
        int hh, qt;
        att_item<DQ>(it, nhead, nqt, hh, qt);
        att_dkdv_issue<HD, BQ, NTHR>(sQ + nb * BQ * (HD + 8), sO + nb * BQ * (HD + 8), sL + nb * BQ, sD + nb * BQ, q,
                                     dout, lse, Drow, head0 + hh, (qt0 + qt) * BQ, s0, L, NH, threadIdx.x);
        rlc_cp_async_commit();
    }
    // Start of item it (whole block): waits until its rows have landed and every warp is done with item it - 1
    // (whose stage item it + 1 then takes), issues item it + 1, and gives item it's query head h and first query qi.
    __device__ __forceinline__ void next(int it, int &h, int &qi) {
        rlc_cp_async_wait<0>();
        __syncthreads();
        if (it + 1 < nit) issue(it + 1);
        int hh, qt;
        att_item<DQ>(it, nhead, nqt, hh, qt);
        h = head0 + hh, qi = (qt0 + qt) * BQ;
    }
};

// With DQ, the count of the dQ tile of head h whose first query is token t (nullptr without DQ); the thread 0
// starts reading it into seen, so that the read's latency passes during the item's products.
template <bool DQ> __device__ __forceinline__ unsigned *att_dq_count(const AttDq &dqs, int h, int t, unsigned &seen) {
    if constexpr (DQ) {
        unsigned *c = dqs.sem + (size_t)h * dqs.T + t;
        if (threadIdx.x == 0) seen = atomicAdd(c, 0u);
        return c;
    } else {
        return nullptr;
    }
}

// Grid: (key tiles of 16 NW keys, upper bound) x NKV x nsplit blocks, split fastest, then kv head; warp w owns
// keys 16w..16w+15 of the tile. The query heads of the group are shared out among nsplit blocks (contiguous
// ranges; nsplit > 1 when the tiles alone give too few blocks, as with few kv heads and short sequences), each
// writing its partial dK/dV at dk/dv + split * split_stride (att_bwd_reduce_kernel sums them in order). Items
// (query head of the block's range, query tile of BQ rows at or after the tile's first key) in a fixed order:
// heads outer, query tiles inner; each item is computed in steps of BQS queries (BQS < BQ halves the barriers
// per flop where the scores of a whole item would not fit in registers). A warp skips the steps whose queries
// all come before its keys.
// With DQ (AttDq) the block also adds dQ += dS K for each item (att_dq_add, after att_dq_turn):
// the warps put their dS^T in shared memory (sS). The items then run in att_item's DQ order. An item's count is
// published at the next item's turn, when its atomics have long completed, so that the fence before it costs
// little. A head split then writes dK/dV in split order (att_kv_out_begin), not through partials.
template <int HD, int NW, int BQ, int BQS, bool DQ>
__global__ void __launch_bounds__(NW * 32, 1)
    att_bwd_dkdv_kernel(float *dk, float *dv, const bf16 *dout, const bf16 *q, const bf16 *k, const bf16 *v,
                        const float *lse, const float *Drow, const int *cu_seqlens, int B, int NH, int NKV,
                        float scale, float sl2, int lpt, int nsplit, size_t split_stride, AttDq dqs) {
    constexpr int NTHR = NW * 32, BK = 16 * NW, LDS = HD + 8, KS = HD / 16, NT = HD / 8, QN = BQS / 8;
    constexpr int LDSS = BQ + 8; // DQ: row stride of sS
    static_assert(BQ % BQS == 0 && BQS % 16 == 0, "steps of whole k-steps");
    RLC_DYN_SMEM(bf16, smem);
    bf16 *sK = smem;               // (BK keys, LDS)
    bf16 *sV = sK + BK * LDS;      // (BK, LDS)
    bf16 *sQ = sV + BK * LDS;      // 2 stages x (BQ, LDS)
    bf16 *sO = sQ + 2 * BQ * LDS;  // 2 stages x (BQ, LDS): dO
    float *sL = reinterpret_cast<float *>(sO + 2 * BQ * LDS); // 2 x BQ: lse * log2(e)
    float *sD = sL + 2 * BQ;                                   // 2 x BQ: D
    bf16 *sS = reinterpret_cast<bf16 *>(sD + 2 * BQ);          // DQ: (BK keys, LDSS): dS^T of the item, bf16
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g4 = lane >> 2, t4 = lane & 3;
    AttKVBlock<HD, BK, BQ, NTHR, DQ> kb(sQ, sO, sL, sD, q, dout, lse, Drow, NH);
    if (!kb.start(dqs, cu_seqlens, B, NKV, lpt, nsplit, sK, sV, k, v)) return;
    const int s0 = kb.s0, L = kb.L, j0 = kb.j0, tile = kb.tile, kvh = kb.kvh;

    float dka[NT][4], dva[NT][4];
    RLC_UNROLL
    for (int nt = 0; nt < NT; nt++)
        RLC_UNROLL
        for (int e = 0; e < 4; e++) dka[nt][e] = dva[nt][e] = 0.0f;
    const int kw0 = j0 + 16 * warp, kr0 = kw0 + g4; // the warp's first key; this lane's keys: kr0 and kr0 + 8
    const bool live = kw0 < L;
    unsigned *pub = nullptr, seen = 0; // DQ, thread 0: the count the previous item publishes; this item's count

    for (int it = 0; it < kb.nit; it++) {
        int h, qi;
        kb.next(it, h, qi);
        unsigned *cnt = att_dq_count<DQ>(dqs, h, s0 + qi, seen);
        const int cb = it & 1;
        RLC_UNROLL
        for (int hs = 0; hs < BQ / BQS; hs++) {
            const int qs = qi + hs * BQS;
            if (!live || qs + BQS - 1 < kw0) continue; // every query of the step is before every key of the warp
            const bf16 *sQb = sQ + (cb * BQ + hs * BQS) * LDS, *sOb = sO + (cb * BQ + hs * BQS) * LDS;
            const float *sLb = sL + cb * BQ + hs * BQS, *sDb = sD + cb * BQ + hs * BQS;

            // S^T = K Q^T and dP^T = V dO^T for this warp's 16 keys x BQS queries.
            float st[QN][4], dp[QN][4];
            RLC_UNROLL
            for (int nt = 0; nt < QN; nt++)
                RLC_UNROLL
                for (int e = 0; e < 4; e++) st[nt][e] = dp[nt][e] = 0.0f;
            RLC_UNROLL
            for (int kk = 0; kk < KS; kk++) {
                uint32_t ka[4], va[4];
                att_ldm_a(ka, sK, LDS, 16 * warp, kk * 16, lane);
                att_ldm_a(va, sV, LDS, 16 * warp, kk * 16, lane);
                RLC_UNROLL
                for (int np = 0; np < QN / 2; np++) {
                    uint32_t b0[2], b1[2];
                    att_ldm_bt(b0, b1, sQb, LDS, np * 16, kk * 16, lane);
                    rlc_mma_m16n8k16_bf16(st[2 * np], ka, b0, st[2 * np]);
                    rlc_mma_m16n8k16_bf16(st[2 * np + 1], ka, b1, st[2 * np + 1]);
                    att_ldm_bt(b0, b1, sOb, LDS, np * 16, kk * 16, lane);
                    rlc_mma_m16n8k16_bf16(dp[2 * np], va, b0, dp[2 * np]);
                    rlc_mma_m16n8k16_bf16(dp[2 * np + 1], va, b1, dp[2 * np + 1]);
                }
            }
            // P^T = exp2(S^T * scale * log2 e - lse * log2 e) (0 where key > query), dS^T = P^T * (dP^T - D).
            const bool diag = qs < kw0 + 15; // some query of the step is before some key of the warp
            RLC_UNROLL
            for (int nt = 0; nt < QN; nt++) {
                const float2 lq = *reinterpret_cast<const float2 *>(&sLb[nt * 8 + 2 * t4]);
                const float2 dq2 = *reinterpret_cast<const float2 *>(&sDb[nt * 8 + 2 * t4]);
                RLC_UNROLL
                for (int e = 0; e < 4; e++) {
                    const int c = nt * 8 + 2 * t4 + (e & 1), kr = kr0 + (e >> 1) * 8;
                    float p = att_exp2(fmaf(st[nt][e], sl2, -((e & 1) ? lq.y : lq.x)));
                    if (diag && qs + c < kr) p = 0.0f;
                    st[nt][e] = p;
                    dp[nt][e] = p * (dp[nt][e] - ((e & 1) ? dq2.y : dq2.x));
                }
            }
            // dV += P^T dO, dK += dS^T Q (k = the BQS queries).
            RLC_UNROLL
            for (int kq = 0; kq < BQS / 16; kq++) {
                uint32_t pa[4], da[4];
                att_acc_to_a(pa, st[2 * kq], st[2 * kq + 1]);
                att_acc_to_a(da, dp[2 * kq], dp[2 * kq + 1]);
                if constexpr (DQ) { // dS^T (keys g4, g4 + 8 x queries 2 t4.. of the two n-tiles), as the A operand
                    bf16 *w = sS + (16 * warp + g4) * LDSS + hs * BQS + kq * 16 + 2 * t4;
                    *reinterpret_cast<uint32_t *>(w) = da[0];
                    *reinterpret_cast<uint32_t *>(w + 8 * LDSS) = da[1];
                    *reinterpret_cast<uint32_t *>(w + 8) = da[2];
                    *reinterpret_cast<uint32_t *>(w + 8 * LDSS + 8) = da[3];
                }
                RLC_UNROLL
                for (int np = 0; np < NT / 2; np++) {
                    uint32_t b0[2], b1[2];
                    att_ldm_b(b0, b1, sOb, LDS, kq * 16, np * 16, lane);
                    rlc_mma_m16n8k16_bf16(dva[2 * np], pa, b0, dva[2 * np]);
                    rlc_mma_m16n8k16_bf16(dva[2 * np + 1], pa, b1, dva[2 * np + 1]);
                    att_ldm_b(b0, b1, sQb, LDS, kq * 16, np * 16, lane);
                    rlc_mma_m16n8k16_bf16(dka[2 * np], da, b0, dka[2 * np]);
                    rlc_mma_m16n8k16_bf16(dka[2 * np + 1], da, b1, dka[2 * np + 1]);
                }
            }
        }
        if constexpr (DQ) {
            att_dq_turn(pub, cnt, seen, tile); // this item's dS^T is complete, the earlier key tiles have added
            att_dq_add<HD, NW, BK, BQ>(dqs, sS, LDSS, sK, qi, j0, L, s0, NH, h, scale);
        }
    }
    if constexpr (DQ) att_dq_last(pub, tile);

    dk += kb.split * split_stride, dv += kb.split * split_stride;
    unsigned *kc = nullptr;
    const bool add = att_kv_out_begin<DQ>(dqs, kc, nsplit, kb.split, (size_t)kvh * dqs.T + s0 + j0);
    RLC_UNROLL
    for (int half = 0; half < 2; half++) {
        const int kr = kr0 + 8 * half;
        if (kr >= L) continue;
        const size_t off = ((size_t)(s0 + kr) * NKV + kvh) * HD + 2 * t4;
        RLC_UNROLL
        for (int nt = 0; nt < NT; nt++) {
            att_put2(&dk[off + nt * 8], dka[nt][2 * half] * scale, dka[nt][2 * half + 1] * scale, add);
            att_put2(&dv[off + nt * 8], dva[nt][2 * half], dva[nt][2 * half + 1], add);
        }
    }
    att_kv_out_end<DQ>(kc, nsplit, kb.split);
}

template <int HD, int WK, int WH, int BQ> constexpr size_t att_dkdv2_smem() {
    return (size_t)(2 * 32 * WK + 4 * BQ) * (HD + 8) * sizeof(bf16) + (size_t)2 * 32 * WK * (BQ + 8) * sizeof(bf16) +
           4 * BQ * sizeof(float);
}

// dK/dV with warp tiles of 32 rows (the FlashAttention-2 layout): NW = WK x WH warps; the block's BK = 32 WK keys,
// warp (wk, wj) owns keys 32wk..32wk+31 in both phases of an item of BQ queries:
//   1. S^T and dP^T for its keys x the queries QW wj .. QW wj + QW-1 (QW = BQ / WH), reduced over the head dim;
//      P^T and dS^T go to shared memory in bf16 (sP, sS: BK x BQ);
//   2. after a barrier, dV += P^T dO and dK += dS^T Q for its keys x the head-dim columns HW wj .. (HW = HD / WH),
//      the A operands read back from sP / sS.
// Each K/V/Q/dO fragment read from shared memory feeds two mma (32-row m-tiles) instead of one, and the
// accumulators of 32 keys x HD/WH columns fit in registers: about 30% fewer shared-memory bytes per flop than
// att_bwd_dkdv_kernel, for one more barrier per item. Grid, head split, order of the items and outputs as there.
// With DQ as in att_bwd_dkdv_kernel: dQ += dS K from sS after phase 1 (att_dq_turn, att_dq_add).
template <int HD, int WK, int WH, int BQ, bool DQ>
__global__ void __launch_bounds__(WK * WH * 32, 1)
    att_bwd_dkdv2_kernel(float *dk, float *dv, const bf16 *dout, const bf16 *q, const bf16 *k, const bf16 *v,
                         const float *lse, const float *Drow, const int *cu_seqlens, int B, int NH, int NKV,
                         float scale, float sl2, int lpt, int nsplit, size_t split_stride, AttDq dqs) {
    constexpr int NW = WK * WH, NTHR = NW * 32, BK = 32 * WK, QW = BQ / WH, HW = HD / WH;
    constexpr int LDS = HD + 8, LDP = BQ + 8, KS = HD / 16, QN = QW / 8, NT = HW / 8;
    static_assert(QW % 16 == 0 && HW % 16 == 0, "warp tiles of whole 16-column steps");
    RLC_DYN_SMEM(bf16, smem);
    bf16 *sK = smem;              // (BK keys, LDS)
    bf16 *sV = sK + BK * LDS;     // (BK, LDS)
    bf16 *sQ = sV + BK * LDS;     // 2 stages x (BQ, LDS)
    bf16 *sO = sQ + 2 * BQ * LDS; // 2 stages x (BQ, LDS): dO
    bf16 *sP = sO + 2 * BQ * LDS; // (BK keys, LDP): P^T of the item
    bf16 *sS = sP + BK * LDP;     // (BK, LDP): dS^T
    float *sL = reinterpret_cast<float *>(sS + BK * LDP); // 2 x BQ: lse * log2(e)
    float *sD = sL + 2 * BQ;                               // 2 x BQ: D
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g4 = lane >> 2, t4 = lane & 3;
    const int wk = warp / WH, wj = warp % WH;
    AttKVBlock<HD, BK, BQ, NTHR, DQ> kb(sQ, sO, sL, sD, q, dout, lse, Drow, NH);
    if (!kb.start(dqs, cu_seqlens, B, NKV, lpt, nsplit, sK, sV, k, v)) return;
    const int s0 = kb.s0, L = kb.L, j0 = kb.j0, tile = kb.tile, kvh = kb.kvh;

    float dka[2][NT][4], dva[2][NT][4];
    RLC_UNROLL
    for (int mt = 0; mt < 2; mt++)
        RLC_UNROLL
        for (int nt = 0; nt < NT; nt++)
            RLC_UNROLL
            for (int e = 0; e < 4; e++) dka[mt][nt][e] = dva[mt][nt][e] = 0.0f;
    const int kw0 = j0 + 32 * wk, kr0 = kw0 + g4; // the warp's first key; this lane's keys: kr0 + 16 mt + 8 half
    const bool live = kw0 < L; // (warps (wk, *) read only the rows of sP / sS that they wrote; dQ: see att_dq_add)
    unsigned *pub = nullptr, seen = 0; // DQ, thread 0: the count the previous item publishes; this item's count

    for (int it = 0; it < kb.nit; it++) {
        int h, qi; // (next: every warp is also done with item it-1's sP, sS)
        kb.next(it, h, qi);
        unsigned *cnt = att_dq_count<DQ>(dqs, h, s0 + qi, seen);
        const int cb = it & 1;
        const bf16 *sQb = sQ + cb * BQ * LDS, *sOb = sO + cb * BQ * LDS;

        // Phase 1: P^T, dS^T of the warp's 32 keys x QW queries into sP / sS (zeros where every query of the
        // warp's range is before every one of its keys).
        const int q0 = qi + QW * wj; // the warp's first query
        if (live) {
            float st[2][QN][4], dp[2][QN][4];
            const bool any = q0 + QW - 1 >= kw0;
            if (any) {
                RLC_UNROLL
                for (int mt = 0; mt < 2; mt++)
                    RLC_UNROLL
                    for (int nt = 0; nt < QN; nt++)
                        RLC_UNROLL
                        for (int e = 0; e < 4; e++) st[mt][nt][e] = dp[mt][nt][e] = 0.0f;
                RLC_UNROLL
                for (int kk = 0; kk < KS; kk++) {
                    uint32_t ka[2][4], va[2][4];
                    RLC_UNROLL
                    for (int mt = 0; mt < 2; mt++) {
                        att_ldm_a(ka[mt], sK, LDS, 32 * wk + 16 * mt, kk * 16, lane);
                        att_ldm_a(va[mt], sV, LDS, 32 * wk + 16 * mt, kk * 16, lane);
                    }
                    RLC_UNROLL
                    for (int np = 0; np < QN / 2; np++) {
                        uint32_t b0[2], b1[2];
                        att_ldm_bt(b0, b1, sQb, LDS, QW * wj + np * 16, kk * 16, lane);
                        RLC_UNROLL
                        for (int mt = 0; mt < 2; mt++) {
                            rlc_mma_m16n8k16_bf16(st[mt][2 * np], ka[mt], b0, st[mt][2 * np]);
                            rlc_mma_m16n8k16_bf16(st[mt][2 * np + 1], ka[mt], b1, st[mt][2 * np + 1]);
                        }
                        att_ldm_bt(b0, b1, sOb, LDS, QW * wj + np * 16, kk * 16, lane);
                        RLC_UNROLL
                        for (int mt = 0; mt < 2; mt++) {
                            rlc_mma_m16n8k16_bf16(dp[mt][2 * np], va[mt], b0, dp[mt][2 * np]);
                            rlc_mma_m16n8k16_bf16(dp[mt][2 * np + 1], va[mt], b1, dp[mt][2 * np + 1]);
                        }
                    }
                }
                // P^T = exp2(S^T * scale * log2 e - lse * log2 e) (0 where key > query), dS^T = P^T (dP^T - D).
                const bool diag = q0 < kw0 + 31; // some query of the range is before some key of the warp
                const float *sLb = sL + cb * BQ + QW * wj, *sDb = sD + cb * BQ + QW * wj;
                RLC_UNROLL
                for (int nt = 0; nt < QN; nt++) {
                    const float2 lq = *reinterpret_cast<const float2 *>(&sLb[nt * 8 + 2 * t4]);
                    const float2 dq2 = *reinterpret_cast<const float2 *>(&sDb[nt * 8 + 2 * t4]);
                    RLC_UNROLL
                    for (int mt = 0; mt < 2; mt++)
                        RLC_UNROLL
                        for (int e = 0; e < 4; e++) {
                            const int c = nt * 8 + 2 * t4 + (e & 1), kr = kr0 + 16 * mt + (e >> 1) * 8;
                            float p = att_exp2(fmaf(st[mt][nt][e], sl2, -((e & 1) ? lq.y : lq.x)));
                            if (diag && q0 + c < kr) p = 0.0f;
                            st[mt][nt][e] = p;
                            dp[mt][nt][e] = p * (dp[mt][nt][e] - ((e & 1) ? dq2.y : dq2.x));
                        }
                }
            } else {
                RLC_UNROLL
                for (int mt = 0; mt < 2; mt++)
                    RLC_UNROLL
                    for (int nt = 0; nt < QN; nt++)
                        RLC_UNROLL
                        for (int e = 0; e < 4; e++) st[mt][nt][e] = dp[mt][nt][e] = 0.0f;
            }
            RLC_UNROLL
            for (int mt = 0; mt < 2; mt++)
                RLC_UNROLL
                for (int nt = 0; nt < QN; nt++) {
                    const int o0 = (32 * wk + 16 * mt + g4) * LDP + QW * wj + nt * 8 + 2 * t4, o1 = o0 + 8 * LDP;
                    *reinterpret_cast<uint32_t *>(&sP[o0]) = att_pack_bf16(st[mt][nt][0], st[mt][nt][1]);
                    *reinterpret_cast<uint32_t *>(&sP[o1]) = att_pack_bf16(st[mt][nt][2], st[mt][nt][3]);
                    *reinterpret_cast<uint32_t *>(&sS[o0]) = att_pack_bf16(dp[mt][nt][0], dp[mt][nt][1]);
                    *reinterpret_cast<uint32_t *>(&sS[o1]) = att_pack_bf16(dp[mt][nt][2], dp[mt][nt][3]);
                }
        }
        if constexpr (DQ) { // sP / sS complete, the earlier key tiles have added to this dQ tile
            att_dq_turn(pub, cnt, seen, tile);
            att_dq_add<HD, NW, BK, BQ>(dqs, sS, LDP, sK, qi, j0, L, s0, NH, h, scale);
        } else {
            __syncthreads(); // sP / sS complete for every warp of the same keys
        }

        // Phase 2: dV += P^T dO, dK += dS^T Q for the warp's 32 keys x HW columns (k = the BQ queries).
        if (live && qi + BQ - 1 >= kw0) {
            RLC_UNROLL
            for (int kq = 0; kq < BQ / 16; kq++) {
                uint32_t pa[2][4], da[2][4];
                RLC_UNROLL
                for (int mt = 0; mt < 2; mt++) {
                    att_ldm_a(pa[mt], sP, LDP, 32 * wk + 16 * mt, kq * 16, lane);
                    att_ldm_a(da[mt], sS, LDP, 32 * wk + 16 * mt, kq * 16, lane);
                }
                RLC_UNROLL
                for (int np = 0; np < NT / 2; np++) {
                    uint32_t b0[2], b1[2];
                    att_ldm_b(b0, b1, sOb, LDS, kq * 16, HW * wj + np * 16, lane);
                    RLC_UNROLL
                    for (int mt = 0; mt < 2; mt++) {
                        rlc_mma_m16n8k16_bf16(dva[mt][2 * np], pa[mt], b0, dva[mt][2 * np]);
                        rlc_mma_m16n8k16_bf16(dva[mt][2 * np + 1], pa[mt], b1, dva[mt][2 * np + 1]);
                    }
                    att_ldm_b(b0, b1, sQb, LDS, kq * 16, HW * wj + np * 16, lane);
                    RLC_UNROLL
                    for (int mt = 0; mt < 2; mt++) {
                        rlc_mma_m16n8k16_bf16(dka[mt][2 * np], da[mt], b0, dka[mt][2 * np]);
                        rlc_mma_m16n8k16_bf16(dka[mt][2 * np + 1], da[mt], b1, dka[mt][2 * np + 1]);
                    }
                }
            }
        }
    }

    if constexpr (DQ) att_dq_last(pub, tile);

    dk += kb.split * split_stride, dv += kb.split * split_stride;
    unsigned *kc = nullptr;
    const bool add = att_kv_out_begin<DQ>(dqs, kc, nsplit, kb.split, (size_t)kvh * dqs.T + s0 + j0);
    RLC_UNROLL
    for (int mt = 0; mt < 2; mt++)
        RLC_UNROLL
        for (int half = 0; half < 2; half++) {
            const int kr = kr0 + 16 * mt + 8 * half;
            if (kr >= L) continue;
            const size_t off = ((size_t)(s0 + kr) * NKV + kvh) * HD + HW * wj + 2 * t4;
            RLC_UNROLL
            for (int nt = 0; nt < NT; nt++) {
                att_put2(&dk[off + nt * 8], dka[mt][nt][2 * half] * scale, dka[mt][nt][2 * half + 1] * scale, add);
                att_put2(&dv[off + nt * 8], dva[mt][nt][2 * half], dva[mt][nt][2 * half + 1], add);
            }
        }
    att_kv_out_end<DQ>(kc, nsplit, kb.split);
}

// dk, dv (n floats each) = the sum over s = 0..nsplit-1, in that order, of part[2s n ..] and part[(2s+1) n ..]
// (the head-split partials of the dK/dV kernel). n is a multiple of 4.
__global__ void att_bwd_reduce_kernel(float *dk, float *dv, const float *part, size_t n, int nsplit) {
    const size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * 4;
    if (i >= n) return;
    float4 a = *reinterpret_cast<const float4 *>(&part[i]), c = *reinterpret_cast<const float4 *>(&part[n + i]);
    for (int s = 1; s < nsplit; s++) {
        const float4 x = *reinterpret_cast<const float4 *>(&part[2 * s * n + i]);
        const float4 y = *reinterpret_cast<const float4 *>(&part[(2 * s + 1) * n + i]);
        a.x += x.x, a.y += x.y, a.z += x.z, a.w += x.w;
        c.x += y.x, c.y += y.y, c.z += y.z, c.w += y.w;
    }
    *reinterpret_cast<float4 *>(&dk[i]) = a;
    *reinterpret_cast<float4 *>(&dv[i]) = c;
}

template <int HD, int NW, int BK> constexpr size_t att_dq_smem() {
    return (size_t)(2 * 16 * NW + 4 * BK) * (HD + 8) * sizeof(bf16);
}

// Grid: (query tiles of 16 NW rows, upper bound) x NH blocks, head fastest; warp w owns rows 16w..16w+15. K/V
// tiles of BK keys, computed in steps of BKS keys (BKS < BK: fewer barriers per flop where a whole tile's scores
// would not fit in registers). A warp skips the steps after its last row and masks only those that cross its
// diagonal.
template <int HD, int NW, int BK, int BKS>
__global__ void __launch_bounds__(NW * 32, 1)
    att_bwd_dq_kernel(float *dq, const bf16 *dout, const bf16 *q, const bf16 *k, const bf16 *v, const float *lse,
                      const float *Drow, const int *cu_seqlens, int B, int NH, int NKV, float scale, float sl2,
                      int lpt) {
    constexpr int NTHR = NW * 32, BM = 16 * NW, LDS = HD + 8, KS = HD / 16, NT = HD / 8, SN = BKS / 8;
    static_assert(BK % BKS == 0 && BKS % 16 == 0, "steps of whole k-steps");
    RLC_DYN_SMEM(bf16, smem);
    bf16 *sQ = smem;              // (BM, LDS)
    bf16 *sO = sQ + BM * LDS;     // (BM, LDS): dO
    bf16 *sK = sO + BM * LDS;     // 2 stages x (BK, LDS)
    bf16 *sV = sK + 2 * BK * LDS; // 2 stages x (BK, LDS)
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g4 = lane >> 2, t4 = lane & 3;
    const int h = (int)(blockIdx.x % (unsigned)NH), kvh = h / (NH / NKV);
    int b, tile, ntile;
    if (!att_schedule(cu_seqlens, B, BM, (int)(blockIdx.x / (unsigned)NH), lane, lpt, true, &b, &tile, &ntile)) return;
    const int s0 = cu_seqlens[b], L = cu_seqlens[b + 1] - s0, i0 = tile * BM;
    const int qn = min(BM, L - i0), nkv = (i0 + qn + BK - 1) / BK;
    const int ldk = NKV * HD;
    const size_t qoff = ((size_t)(s0 + i0) * NH + h) * HD;
    // K/V rows of this kv head from key k0 of the sequence on (recomputed per tile, as in the forward)
    auto kv_at = [&](const bf16 *base, int k0) { return base + ((size_t)(s0 + k0) * NKV + kvh) * HD; };

    att_load_rows<HD, BM, NTHR>(sQ, q + qoff, NH * HD, qn, tid);
    att_load_rows<HD, BM, NTHR>(sO, dout + qoff, NH * HD, qn, tid);
    att_load_rows<HD, BK, NTHR>(sK, kv_at(k, 0), ldk, min(BK, L), tid);
    att_load_rows<HD, BK, NTHR>(sV, kv_at(v, 0), ldk, min(BK, L), tid);
    rlc_cp_async_commit();

    const int wq0 = i0 + 16 * warp, wq1 = wq0 + 15, r0 = wq0 + g4; // this lane's query rows r0, r0 + 8
    const bool live = wq0 < L;
    float lrow[2], drow[2]; // lse * log2(e) and D of the two rows (+inf / 0 past the end: probability 0)
    RLC_UNROLL
    for (int half = 0; half < 2; half++) {
        const int r = r0 + 8 * half;
        const size_t i = (size_t)(s0 + r) * NH + h;
        lrow[half] = r < L ? lse[i] * ATT_LOG2E : INFINITY;
        drow[half] = r < L ? Drow[i] : 0.0f;
    }
    float dqa[NT][4];
    RLC_UNROLL
    for (int nt = 0; nt < NT; nt++) dqa[nt][0] = dqa[nt][1] = dqa[nt][2] = dqa[nt][3] = 0.0f;
    uint32_t qf[KS][4], of[KS][4];

    for (int j = 0; j < nkv; j++) {
        rlc_cp_async_wait<0>(); // tile j has landed; after the barrier the other stage is free for tile j+1
        __syncthreads();
        if (j + 1 < nkv) {
            const int nb = (j + 1) & 1, k0 = (j + 1) * BK;
            att_load_rows<HD, BK, NTHR>(sK + nb * BK * LDS, kv_at(k, k0), ldk, min(BK, L - k0), tid);
            att_load_rows<HD, BK, NTHR>(sV + nb * BK * LDS, kv_at(v, k0), ldk, min(BK, L - k0), tid);
            rlc_cp_async_commit();
        }
        const int kt = j * BK;
        if (!live || kt > wq1) continue; // every key of the tile is after every row of the warp
        if (j == 0) {
            RLC_UNROLL
            for (int kk = 0; kk < KS; kk++) {
                att_ldm_a(qf[kk], sQ, LDS, 16 * warp, kk * 16, lane);
                att_ldm_a(of[kk], sO, LDS, 16 * warp, kk * 16, lane);
            }
        }
        RLC_UNROLL
        for (int hs = 0; hs < BK / BKS; hs++) {
            const int kb = kt + hs * BKS;
            if (hs > 0 && kb > wq1) break;
            const bf16 *sKj = sK + ((j & 1) * BK + hs * BKS) * LDS, *sVj = sV + ((j & 1) * BK + hs * BKS) * LDS;

            // S = Q K^T, dP = dO V^T (16 queries x BKS keys per warp).
            float s[SN][4], dp[SN][4];
            RLC_UNROLL
            for (int nt = 0; nt < SN; nt++)
                RLC_UNROLL
                for (int e = 0; e < 4; e++) s[nt][e] = dp[nt][e] = 0.0f;
            RLC_UNROLL
            for (int kk = 0; kk < KS; kk++) {
                RLC_UNROLL
                for (int np = 0; np < SN / 2; np++) {
                    uint32_t b0[2], b1[2];
                    att_ldm_bt(b0, b1, sKj, LDS, np * 16, kk * 16, lane);
                    rlc_mma_m16n8k16_bf16(s[2 * np], qf[kk], b0, s[2 * np]);
                    rlc_mma_m16n8k16_bf16(s[2 * np + 1], qf[kk], b1, s[2 * np + 1]);
                    att_ldm_bt(b0, b1, sVj, LDS, np * 16, kk * 16, lane);
                    rlc_mma_m16n8k16_bf16(dp[2 * np], of[kk], b0, dp[2 * np]);
                    rlc_mma_m16n8k16_bf16(dp[2 * np + 1], of[kk], b1, dp[2 * np + 1]);
                }
            }
            const bool edge = kb + BKS - 1 > wq0; // the step reaches past the warp's first row
            RLC_UNROLL
            for (int nt = 0; nt < SN; nt++) {
                RLC_UNROLL
                for (int e = 0; e < 4; e++) {
                    const int c = kb + nt * 8 + 2 * t4 + (e & 1), half = e >> 1;
                    float p = att_exp2(fmaf(s[nt][e], sl2, -lrow[half]));
                    if (edge && c > r0 + 8 * half) p = 0.0f;
                    dp[nt][e] = p * (dp[nt][e] - drow[half]);
                }
            }
            // dQ += dS K (k = the BKS keys).
            RLC_UNROLL
            for (int kk = 0; kk < BKS / 16; kk++) {
                uint32_t da[4];
                att_acc_to_a(da, dp[2 * kk], dp[2 * kk + 1]);
                RLC_UNROLL
                for (int np = 0; np < NT / 2; np++) {
                    uint32_t b0[2], b1[2];
                    att_ldm_b(b0, b1, sKj, LDS, kk * 16, np * 16, lane);
                    rlc_mma_m16n8k16_bf16(dqa[2 * np], da, b0, dqa[2 * np]);
                    rlc_mma_m16n8k16_bf16(dqa[2 * np + 1], da, b1, dqa[2 * np + 1]);
                }
            }
        }
    }

    RLC_UNROLL
    for (int half = 0; half < 2; half++) {
        const int r = r0 + 8 * half;
        if (r >= L) continue;
        float *d = dq + ((size_t)(s0 + r) * NH + h) * HD + 2 * t4;
        RLC_UNROLL
        for (int nt = 0; nt < NT; nt++)
            *reinterpret_cast<float2 *>(&d[nt * 8]) = make_float2(dqa[nt][2 * half] * scale, dqa[nt][2 * half + 1] * scale);
    }
}

// ------------------------------------------------------------------------------------------------ decode

template <int HD, int NS, int KT> constexpr size_t att_dec_smem() {
    return (size_t)(16 + 4 * NS * 2 * KT) * (HD + 8) * sizeof(bf16);
}

// One block per (piece s of split_len keys, (kv head, chunk of 16 query heads), row b). Writes, for each query
// head of the chunk, the piece's normalised output part_o (B, NH, n_split, HD) and its log-sum-exp in log2 units
// of the scaled scores part_lse (B, NH, n_split). Pieces at or past kv_len[b] write nothing. Each warp keeps
// NS - 1 of its key tiles in flight (a ring of NS stages; every step commits one group, empty at the end, so
// that wait<NS-2> always means "this step's tile has landed").
template <int HD, int NS, int KT>
__global__ void __launch_bounds__(ATT_THREADS)
    att_dec_kernel(float *part_o, float *part_lse, const bf16 *q, const bf16 *k_cache, const bf16 *v_cache,
                   const int *slot, const int *kv_len, int cap, int NH, int NKV, int n_split, int split_len,
                   float sl2) {
    constexpr int LDS = HD + 8, KS = HD / 16, NT = HD / 8, SN = KT / 8;
    constexpr int NW = ATT_THREADS / 32, STAGE = 2 * KT * LDS; // a stage holds a K and a V tile
    static_assert(NS >= 2 && KT % 16 == 0, "at least double buffering, whole k-steps");
    static_assert(NW * NS * STAGE * sizeof(bf16) >= (NW * 16 * HD + 2 * NW * 16) * sizeof(float),
                  "the stages hold the merge's scratch");
    RLC_DYN_SMEM(bf16, smem);
    bf16 *sQ = smem;           // (16, LDS): the group's query heads, zero rows past nh
    bf16 *sKV = sQ + 16 * LDS; // NW warps x NS stages x (K, V) x (KT, LDS)
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g4 = lane >> 2, t4 = lane & 3;
    const int b = blockIdx.z, s = blockIdx.x, rep = NH / NKV, nhc = (rep + 15) / 16;
    const int kvh = blockIdx.y / nhc, h0 = kvh * rep + (blockIdx.y % nhc) * 16, nh = min(16, kvh * rep + rep - h0);
    const int n = kv_len[b], kstart = s * split_len;
    if (kstart >= n) return;
    const int nk = min(n - kstart, split_len), ntiles = (nk + KT - 1) / KT;
    const int nmy = warp < ntiles ? (ntiles - warp + NW - 1) / NW : 0; // this warp's tiles: warp, warp + NW, ...
    const size_t ld = (size_t)NKV * HD, base = (((size_t)slot[b] * cap + kstart) * NKV + kvh) * HD;
    const bf16 *Kg = k_cache + base, *Vg = v_cache + base;
    bf16 *sW = sKV + warp * NS * STAGE;

    att_load_rows<HD, 16, ATT_THREADS>(sQ, q + ((size_t)b * NH + h0) * HD, HD, nh, tid);
    rlc_cp_async_commit();
    RLC_UNROLL
    for (int p = 0; p < NS - 1; p++) {
        if (p < nmy) {
            const int k0 = (warp + NW * p) * KT;
            att_load_rows<HD, KT, 32>(sW + p * STAGE, Kg + (size_t)k0 * ld, ld, min(KT, nk - k0), lane);
            att_load_rows<HD, KT, 32>(sW + p * STAGE + KT * LDS, Vg + (size_t)k0 * ld, ld, min(KT, nk - k0), lane);
        }
        rlc_cp_async_commit();
    }
    rlc_cp_async_wait<NS - 1>(); // the query rows have landed
    __syncthreads();
    uint32_t qf[KS][4];
    RLC_UNROLL
    for (int kk = 0; kk < KS; kk++) att_ldm_a(qf[kk], sQ, LDS, 0, kk * 16, lane);

    float o[1][NT][4], m[1][2] = {{-INFINITY, -INFINITY}}, l[1][2] = {{0.0f, 0.0f}};
    RLC_UNROLL
    for (int nt = 0; nt < NT; nt++) o[0][nt][0] = o[0][nt][1] = o[0][nt][2] = o[0][nt][3] = 0.0f;
    int cur = 0; // stage of tile i
    for (int i = 0; i < nmy; i++) {
        const int u = warp + NW * i;
        rlc_cp_async_wait<NS - 2>(); // this warp's tile i has landed; after the warp barrier stage i-1 is free
        __syncwarp();
        {
            const int ip = i + NS - 1, st = cur == 0 ? NS - 1 : cur - 1;
            if (ip < nmy) {
                const int k0 = (warp + NW * ip) * KT;
                att_load_rows<HD, KT, 32>(sW + st * STAGE, Kg + (size_t)k0 * ld, ld, min(KT, nk - k0), lane);
                att_load_rows<HD, KT, 32>(sW + st * STAGE + KT * LDS, Vg + (size_t)k0 * ld, ld, min(KT, nk - k0), lane);
            }
            rlc_cp_async_commit();
        }
        const bf16 *sK = sW + cur * STAGE, *sV = sK + KT * LDS;
        cur = cur + 1 == NS ? 0 : cur + 1;
        float sc[1][SN][4];
        RLC_UNROLL
        for (int nt = 0; nt < SN; nt++) sc[0][nt][0] = sc[0][nt][1] = sc[0][nt][2] = sc[0][nt][3] = 0.0f;
        RLC_UNROLL
        for (int kk = 0; kk < KS; kk++) {
            RLC_UNROLL
            for (int np = 0; np < SN / 2; np++) {
                uint32_t b0[2], b1[2];
                att_ldm_bt(b0, b1, sK, LDS, np * 16, kk * 16, lane);
                rlc_mma_m16n8k16_bf16(sc[0][2 * np], qf[kk], b0, sc[0][2 * np]);
                rlc_mma_m16n8k16_bf16(sc[0][2 * np + 1], qf[kk], b1, sc[0][2 * np + 1]);
            }
        }
        if ((u + 1) * KT > nk) {
            RLC_UNROLL
            for (int nt = 0; nt < SN; nt++)
                RLC_UNROLL
                for (int e = 0; e < 4; e++)
                    if (u * KT + nt * 8 + 2 * t4 + (e & 1) >= nk) sc[0][nt][e] = -INFINITY;
        }
        att_softmax<1, SN, NT, false>(sc, o, m, l, sl2);
        att_pv<1, SN, NT>(o, sc, sV, LDS, lane);
    }
    l[0][0] = att_quad_sum(l[0][0]);
    l[0][1] = att_quad_sum(l[0][1]);

    // Merge the warps: their (m, l, unnormalised o) go to shared memory (over the K/V stages, now free).
    rlc_cp_async_wait<0>(); // (only empty groups can be pending here)
    __syncthreads();
    float *sOw = reinterpret_cast<float *>(sKV); // (NW, 16, HD)
    float *sM = sOw + NW * 16 * HD, *sL = sM + NW * 16;
    RLC_UNROLL
    for (int nt = 0; nt < NT; nt++) {
        *reinterpret_cast<float2 *>(&sOw[(warp * 16 + g4) * HD + nt * 8 + 2 * t4]) = make_float2(o[0][nt][0], o[0][nt][1]);
        *reinterpret_cast<float2 *>(&sOw[(warp * 16 + g4 + 8) * HD + nt * 8 + 2 * t4]) = make_float2(o[0][nt][2], o[0][nt][3]);
    }
    if (t4 == 0) {
        sM[warp * 16 + g4] = m[0][0], sL[warp * 16 + g4] = l[0][0];
        sM[warp * 16 + g4 + 8] = m[0][1], sL[warp * 16 + g4 + 8] = l[0][1];
    }
    __syncthreads();
    for (int idx = tid; idx < nh * HD; idx += ATT_THREADS) {
        const int r = idx / HD, d = idx % HD;
        float M = -INFINITY;
        for (int w = 0; w < NW; w++) M = fmaxf(M, sM[w * 16 + r]); // finite: warp 0 has the piece's first tile
        float sum = 0.0f, acc = 0.0f;
        for (int w = 0; w < NW; w++) {
            if (sM[w * 16 + r] == -INFINITY) continue; // a warp without tiles
            const float e = att_exp2(sM[w * 16 + r] - M);
            sum += e * sL[w * 16 + r];
            acc += e * sOw[(w * 16 + r) * HD + d];
        }
        const size_t pi = ((size_t)b * NH + h0 + r) * n_split + s;
        part_o[pi * HD + d] = acc / sum;
        if (d == 0) part_lse[pi] = M + log2f(sum);
    }
}

// -------------------------------------------------------------------------------------------------- host

static int att_shapes_ok(const char *what, int B, int T, int NH, int NKV, int HD) {
    if (B < 0 || T < 0 || NKV <= 0 || NH <= 0 || NH % NKV != 0 || (HD != 64 && HD != 128)) {
        fprintf(stderr, "%s: unsupported shapes B=%d T=%d NH=%d NKV=%d HD=%d (need NH a multiple of NKV, HD 64 or 128)\n",
                what, B, T, NH, NKV, HD);
        return 0;
    }
    return 1;
}

static int att_launch_ok(const char *what) {
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) {
        fprintf(stderr, "%s: kernel launch failed: %s\n", what, cudaGetErrorString(e));
        return 0;
    }
    return 1;
}

// Upper bound of the number of BT-row tiles of a packed batch: sum ceil(L_b / BT) <= (T + (BT-1) B) / BT.
static unsigned att_tiles_ub(int T, int B, int BT) { return (unsigned)(((long)T + (long)(BT - 1) * B) / BT); }

// A one-dimensional grid of tiles x heads blocks (heads fastest); 0 if empty; -1 if it is too large for gridDim.x.
static long att_grid(const char *what, unsigned tiles, int heads) {
    const long n = (long)tiles * heads;
    if (n > 2147483647L) {
        fprintf(stderr, "%s: %ld blocks exceed the grid limit\n", what, n);
        return -1;
    }
    return n;
}


// ------------------------------------------------------------------------------------------- variants

// Candidates compared by bench_attention_gpu --variants (renumbered 2026-11-27; old numbers in brackets, as in
// bench/results/logs/h200_2026-11-27_attention_variants.log). Variant 0 of each op is the default.
static const char *const att_fwd_names[] = {
    "v0: 128q, 4 warps x 32 rows, lazy; hd64 64k tiles, hd128 32k [old v1]",
};
static const char *const att_bwd_names[] = {
    "v0: dKdV 128k x 8 warps, dQ 128q x 8 warps, head split, items/tiles of 2x rows in two steps [old v6]",
    "v1: dKdV 32-key warp tiles, 128k x 8 warps, P/dS via smem; dQ as v0 [old v7]",
    "v2: v1 with 32-query items (hd64: 4 warps x all 64 columns) [old v8]",
    "v3: v0's dKdV adding dQ in key-tile order (atomics after a per-tile count), no dQ kernel",
    "v4: v1's dKdV adding dQ as v3",
};
static const char *const att_dec_names[] = {
    "v0: 2 stages per warp, 16-key tiles [old v2]",
};
#define ATT_NV(a) ((int)(sizeof(a) / sizeof(a[0])))
#define ATT_DEFAULT_FWD 0
#define ATT_DEFAULT_BWD 0
#define ATT_DEFAULT_DEC 0

static int g_att_var[3] = {-1, -1, -1}; // fwd, bwd, dec; -1: not chosen yet (env RLC_ATTN_VARIANTS or default)
static int g_att_bwd_stages = 7;        // benchmarking: bit 0 the D kernel, bit 1 dK/dV (+ reduce), bit 2 dQ

static int att_variant(int op) {
    static std::once_flag once;
    std::call_once(once, [] {
        int v[3] = {ATT_DEFAULT_FWD, ATT_DEFAULT_BWD, ATT_DEFAULT_DEC};
        const char *e = getenv("RLC_ATTN_VARIANTS"); // "fwd,bwd,dec", e.g. "0,1,0"
        if (e) {
            int f = -1, b = -1, d = -1;
            if (sscanf(e, "%d,%d,%d", &f, &b, &d) == 3 && f >= 0 && f < ATT_NV(att_fwd_names) && b >= 0 &&
                b < ATT_NV(att_bwd_names) && d >= 0 && d < ATT_NV(att_dec_names))
                v[0] = f, v[1] = b, v[2] = d;
            else
                fprintf(stderr, "rlc attention: ignoring RLC_ATTN_VARIANTS=%s (want fwd,bwd,dec in range)\n", e);
        }
        for (int i = 0; i < 3; i++)
            if (g_att_var[i] < 0) g_att_var[i] = v[i];
    });
    return g_att_var[op];
}

extern "C" int rlc_cuda_attention_variant_count(int op) {
    return op == 0 ? ATT_NV(att_fwd_names) : op == 1 ? ATT_NV(att_bwd_names) : op == 2 ? ATT_NV(att_dec_names) : 0;
}
extern "C" const char *rlc_cuda_attention_variant_name(int op, int v) {
    if (v < 0 || v >= rlc_cuda_attention_variant_count(op)) return NULL;
    return op == 0 ? att_fwd_names[v] : op == 1 ? att_bwd_names[v] : att_dec_names[v];
}
extern "C" int rlc_cuda_attention_set_variant(int op, int v) {
    if (op == 3) { // benchmarking: which stages of the backward run (a mask, 7 = all)
        if (v < 0 || v > 7) return -1;
        g_att_bwd_stages = v;
        return 0;
    }
    if (v < 0 || v >= rlc_cuda_attention_variant_count(op)) return -1;
    att_variant(op); // the environment is read first, so that it cannot override this call later
    g_att_var[op] = v;
    return 0;
}
extern "C" int rlc_cuda_attention_get_variant(int op) {
    return op >= 0 && op < 3 ? att_variant(op) : op == 3 ? g_att_bwd_stages : -1;
}

// Multiprocessors of the current device (cached per device).
static int att_sm_count() {
    static std::mutex mu;
    static int cache[64] = {0};
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= 64) dev = 0;
    std::lock_guard<std::mutex> g(mu);
    if (!cache[dev]) {
        int n = 0;
        if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || n <= 0) n = 132;
        cache[dev] = n;
    }
    return cache[dev];
}

// ------------------------------------------------------------------------------------------- forward

template <int HD, int BM, int BN, int BS, int NW, bool LAZY, int MINB = 1>
static int att_forward_run(bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, const int *cu, int B,
                           int T, int NH, int NKV, float sl2, int lpt, cudaStream_t st, const char *what) {
    const long grid = att_grid(what, att_tiles_ub(T, B, BM), NH);
    if (grid <= 0) return (int)grid;
    const size_t smem = att_fwd_smem<HD, BM, BN>();
    void (*kern)(bf16 *, float *, const bf16 *, const bf16 *, const bf16 *, const int *, int, int, int, float, int) =
        att_fwd_kernel<HD, BM, BN, BS, NW, LAZY, MINB>;
    if (!rlc_smem_allow(kern, smem, what)) return -1;
    RLC_LAUNCH(kern, (unsigned)grid, NW * 32, smem, st, out, lse, q, k, v, cu, B, NH, NKV, sl2, lpt);
    return att_launch_ok(what) ? 0 : -1;
}

template <int HD>
static int att_forward_hd(bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, const int *cu,
                          int B, int T, int NH, int NKV, cudaStream_t st) {
    const char *what = "rlc_cuda_attention_forward";
    if (att_tiles_ub(T, B, ATT_BM) == 0) return 0;
    const float sl2 = (float)(1.0 / sqrt((double)HD)) * ATT_LOG2E;
    // 128 queries per block, 4 warps x 32 rows (each K/V fragment feeds two mma). Key tiles: 64 at HD 64 (Q stays
    // in registers); 32 at HD 128, where 2 x 16 x 128 accumulators leave room for no more scores (measured on an
    // H200: 32-key tiles beat 64-key tiles computed in two steps of 32, bench_attention_gpu --variants).
    // (Also measured there and deleted as dominated: 64/128-key tiles in two steps, the plain rescale, sequence
    // order instead of longest-first.)
    constexpr int BN = HD == 128 ? 32 : 64;
    return att_forward_run<HD, 128, BN, BN, 4, true>(out, lse, q, k, v, cu, B, T, NH, NKV, sl2, 1, st, what);
}

extern "C" int rlc_cuda_attention_forward(void *out, float *lse, const void *q, const void *k, const void *v,
                                          const int *cu_seqlens, int B, int T, int NH, int NKV, int HD, void *stream) {
    if (!att_shapes_ok("rlc_cuda_attention_forward", B, T, NH, NKV, HD)) return -1;
    cudaStream_t st = (cudaStream_t)stream;
    if (HD == 64)
        return att_forward_hd<64>((bf16 *)out, lse, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, cu_seqlens, B,
                                  T, NH, NKV, st);
    return att_forward_hd<128>((bf16 *)out, lse, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, cu_seqlens, B, T,
                               NH, NKV, st);
}

// ------------------------------------------------------------------------------------------- backward

// D (T NH floats), then the counts of the DQ variants (2 T NH + 1 unsigned: AttDq's sem, next and kcnt, whose
// T NKV entries fit in T NH).
extern "C" size_t rlc_cuda_attention_backward_workspace_bytes(int T, int NH) {
    return ((size_t)(T > 0 ? T : 1) * (size_t)(NH > 0 ? NH : 1) * 3 + 1) * sizeof(float);
}

// dK/dV with NWK warps (16 NWK keys per block), items of BQ queries computed in steps of BQS; dQ with NWQ warps,
// tiles of BKQ keys computed in steps of BKS. The query heads of a group are shared out among up to rep / 2
// blocks per key tile when the key tiles alone give fewer than 8 blocks per SM (few kv heads, short
// sequences): the partial dK/dV go to dq's memory (2 nsplit T NKV HD <= T NH HD floats, free until the dQ kernel
// writes it) and att_bwd_reduce_kernel sums them in a fixed order. When the dK/dV kernel adds dQ itself (KV::DQ)
// there is no dQ kernel, and the splits of a key tile write dK/dV one after the other (dq holds the sums).
typedef void (*AttKVKernel)(float *, float *, const bf16 *, const bf16 *, const bf16 *, const bf16 *, const float *,
                            const float *, const int *, int, int, int, float, float, int, int, size_t, AttDq);
// The dK/dV kernel of a backward variant: att_bwd_dkdv_kernel (16-key warp tiles) or att_bwd_dkdv2_kernel (32);
// with DQ it adds dQ too.
template <int HD, int NW, int BQ, int BQS, bool DQ_ = false> struct AttKV1 {
    static constexpr int BK = 16 * NW, THREADS = NW * 32;
    static constexpr bool DQ = DQ_;
    static constexpr size_t SMEM = att_dkdv_smem<HD, NW, BQ, DQ_>();
    static AttKVKernel kernel() { return att_bwd_dkdv_kernel<HD, NW, BQ, BQS, DQ_>; }
};
template <int HD, int WK, int WH, int BQ, bool DQ_ = false> struct AttKV2 {
    static constexpr int BK = 32 * WK, THREADS = WK * WH * 32;
    static constexpr bool DQ = DQ_;
    static constexpr size_t SMEM = att_dkdv2_smem<HD, WK, WH, BQ>();
    static AttKVKernel kernel() { return att_bwd_dkdv2_kernel<HD, WK, WH, BQ, DQ_>; }
};

template <int HD, class KV, int NWQ, int BKQ, int BKS>
static int att_backward_run(float *dq, float *dk, float *dv, const bf16 *dout, const bf16 *q, const bf16 *k,
                            const bf16 *v, const float *lse, const int *cu, int B, int T, int NH, int NKV,
                            const float *Drow, unsigned *sync, float scale, float sl2, int lpt, cudaStream_t st,
                            const char *what) {
    const unsigned tkv = att_tiles_ub(T, B, KV::BK);
    const int rep = NH / NKV;
    int ns = 1;
    if (rep >= 4) {
        const long want = 8L * att_sm_count(), have = (long)tkv * NKV;
        ns = (int)std::min<long>((want + have - 1) / have, rep / 2);
        if (ns < 1) ns = 1;
    }
    const long gkv = att_grid(what, tkv, NKV * ns), gq = att_grid(what, att_tiles_ub(T, B, 16 * NWQ), NH);
    if (gkv < 0 || gq < 0) return -1;
    const size_t smem_kv = KV::SMEM, smem_q = att_dq_smem<HD, NWQ, BKQ>();
    auto kkv = KV::kernel();
    void (*kq)(float *, const bf16 *, const bf16 *, const bf16 *, const bf16 *, const float *, const float *,
               const int *, int, int, int, float, float, int) = att_bwd_dq_kernel<HD, NWQ, BKQ, BKS>;
    if (!rlc_smem_allow(kkv, smem_kv, what) || (!KV::DQ && !rlc_smem_allow(kq, smem_q, what))) return -1;
    const size_t n = (size_t)T * NKV * HD;
    if (gkv > 0 && (g_att_bwd_stages & 2)) {
        if constexpr (KV::DQ) {
            const AttDq dqs = {dq, sync, sync + (size_t)T * NH, sync + (size_t)T * NH + 1, T};
            if (cudaMemsetAsync(sync, 0, ((size_t)T * NH * 2 + 1) * sizeof(unsigned), st) != cudaSuccess) {
                fprintf(stderr, "%s: cudaMemsetAsync of the counts failed: %s\n", what,
                        cudaGetErrorString(cudaGetLastError()));
                return -1;
            }
            RLC_LAUNCH(kkv, (unsigned)gkv, KV::THREADS, smem_kv, st, dk, dv, dout, q, k, v, lse, Drow, cu, B, NH, NKV,
                       scale, sl2, lpt, ns, (size_t)0, dqs);
            return att_launch_ok(what) ? 0 : -1;
        } else {
            float *kd = ns > 1 ? dq : dk, *vd = ns > 1 ? dq + n : dv;
            RLC_LAUNCH(kkv, (unsigned)gkv, KV::THREADS, smem_kv, st, kd, vd, dout, q, k, v, lse, Drow, cu, B, NH, NKV,
                       scale, sl2, lpt, ns, ns > 1 ? 2 * n : (size_t)0, AttDq{}); // AttDq unread without DQ
            if (!att_launch_ok(what)) return -1;
            if (ns > 1) {
                const size_t threads = n / 4;
                RLC_LAUNCH(att_bwd_reduce_kernel, (unsigned)((threads + 255) / 256), 256, 0, st, dk, dv, dq, n, ns);
                if (!att_launch_ok(what)) return -1;
            }
        }
    }
    if (!KV::DQ && gq > 0 && (g_att_bwd_stages & 4)) {
        RLC_LAUNCH(kq, (unsigned)gq, NWQ * 32, smem_q, st, dq, dout, q, k, v, lse, Drow, cu, B, NH, NKV, scale, sl2,
                   lpt);
        if (!att_launch_ok(what)) return -1;
    }
    return 0;
}

template <int HD>
static int att_backward_hd(float *dq, float *dk, float *dv, const bf16 *dout, const bf16 *q, const bf16 *k,
                           const bf16 *v, const bf16 *out, const float *lse, const int *cu, int B, int T, int NH,
                           int NKV, float *Drow, cudaStream_t st) {
    const char *what = "rlc_cuda_attention_backward";
    if (att_tiles_ub(T, B, ATT_BM) == 0) return 0;
    const int rows = T * NH, rows_per_block = ATT_THREADS / 32;
    if (g_att_bwd_stages & 1) {
        RLC_LAUNCH(att_bwd_dot_kernel, (rows + rows_per_block - 1) / rows_per_block, ATT_THREADS, 0, st, Drow, dout,
                   out, rows, HD);
        if (!att_launch_ok(what)) return -1;
    }
    const float scale = (float)(1.0 / sqrt((double)HD)), sl2 = scale * ATT_LOG2E;
    constexpr int BT = AttBwd<HD>::BT;
    typedef AttKV1<HD, 8, 2 * BT, BT> KV8x2; // 8 warps: 128 keys, items of 2 BT queries in steps of BT
    typedef AttKV2<HD, 4, 2, 64> KV2a; // 8 warps: 128 keys x 64 queries per item
    typedef AttKV2<HD, 4, HD == 64 ? 1 : 2, 32> KV2b; // hd64: 4 warps (32 keys x all 64 columns), 32 queries
    typedef AttKV1<HD, 8, 2 * BT, BT, true> KV8x2dq;  // KV8x2 adding dQ itself
    typedef AttKV2<HD, 4, 2, 64, true> KV2adq;        // KV2a adding dQ itself
    unsigned *sync = reinterpret_cast<unsigned *>(Drow + (size_t)T * NH);
    switch (att_variant(1)) {
    case 1:
        return att_backward_run<HD, KV2a, 8, 2 * BT, BT>(dq, dk, dv, dout, q, k, v, lse, cu, B, T, NH, NKV, Drow, sync, scale,
                                                         sl2, 1, st, what);
    case 2:
        return att_backward_run<HD, KV2b, 8, 2 * BT, BT>(dq, dk, dv, dout, q, k, v, lse, cu, B, T, NH, NKV, Drow, sync, scale,
                                                         sl2, 1, st, what);
    case 3:
        return att_backward_run<HD, KV8x2dq, 8, 2 * BT, BT>(dq, dk, dv, dout, q, k, v, lse, cu, B, T, NH, NKV, Drow,
                                                            sync, scale, sl2, 1, st, what);
    case 4:
        return att_backward_run<HD, KV2adq, 8, 2 * BT, BT>(dq, dk, dv, dout, q, k, v, lse, cu, B, T, NH, NKV, Drow,
                                                           sync, scale, sl2, 1, st, what);
    default:
        return att_backward_run<HD, KV8x2, 8, 2 * BT, BT>(dq, dk, dv, dout, q, k, v, lse, cu, B, T, NH, NKV, Drow, sync, scale,
                                                          sl2, 1, st, what);
    }
}

extern "C" int rlc_cuda_attention_backward(float *dq, float *dk, float *dv, const void *dout, const void *q,
                                           const void *k, const void *v, const void *out, const float *lse,
                                           const int *cu_seqlens, int B, int T, int NH, int NKV, int HD,
                                           void *workspace, size_t workspace_bytes, void *stream) {
    const char *what = "rlc_cuda_attention_backward";
    if (!att_shapes_ok(what, B, T, NH, NKV, HD)) return -1;
    if (workspace_bytes < rlc_cuda_attention_backward_workspace_bytes(T, NH) || !workspace) {
        fprintf(stderr, "%s: workspace of %zu bytes, need %zu\n", what, workspace_bytes,
                rlc_cuda_attention_backward_workspace_bytes(T, NH));
        return -1;
    }
    cudaStream_t st = (cudaStream_t)stream;
    if (HD == 64)
        return att_backward_hd<64>(dq, dk, dv, (const bf16 *)dout, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v,
                                   (const bf16 *)out, lse, cu_seqlens, B, T, NH, NKV, (float *)workspace, st);
    return att_backward_hd<128>(dq, dk, dv, (const bf16 *)dout, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v,
                                (const bf16 *)out, lse, cu_seqlens, B, T, NH, NKV, (float *)workspace, st);
}

// --------------------------------------------------------------------------------------------- decode

// Piece length for the decode: the caller's (rounded up to a multiple of 128 = 4 warps x the largest key tile),
// or one that gives about 2 blocks per SM of an H100 (132 SMs) but at least 256 keys per piece.
static int att_dec_split_len(int B, int cap, int NH, int NKV, int split_len) {
    if (split_len <= 0) {
        const int per_sm = 2;
        const int rep = NH / NKV, base = B * NKV * ((rep + 15) / 16), want = (132 * per_sm + base - 1) / base;
        split_len = (cap + want - 1) / want;
        if (split_len < 256) split_len = 256;
    }
    return (split_len + 127) / 128 * 128;
}

extern "C" size_t rlc_cuda_attention_decode_workspace_bytes(int B, int cap, int NH, int NKV, int HD, int split_len) {
    if (B <= 0 || cap <= 0 || NKV <= 0 || NH <= 0 || NH % NKV != 0) return 16;
    const int sl = att_dec_split_len(B, cap, NH, NKV, split_len), n_split = (cap + sl - 1) / sl;
    return (size_t)B * NH * n_split * ((size_t)HD + 1) * sizeof(float);
}

template <int HD>
static int att_decode_hd(bf16 *out, const bf16 *q, const bf16 *kc, const bf16 *vc, const int *slot, const int *kv_len,
                         int B, int cap, int NH, int NKV, int split_len, float *ws, cudaStream_t st) {
    const char *what = "rlc_cuda_attention_decode";
    const int n_split = (cap + split_len - 1) / split_len, nhc = (NH / NKV + 15) / 16;
    float *part_o = ws, *part_lse = ws + (size_t)B * NH * n_split * HD;
    const float sl2 = (float)(1.0 / sqrt((double)HD)) * ATT_LOG2E;
    const dim3 grid(n_split, NKV * nhc, B);
    // 2 stages of 16-key tiles per warp (measured on an H200: faster than 32-key tiles at HD 64, the same at 128)
    void (*kern)(float *, float *, const bf16 *, const bf16 *, const bf16 *, const int *, const int *, int, int, int,
                 int, int, float) = att_dec_kernel<HD, 2, 16>;
    const size_t smem = att_dec_smem<HD, 2, 16>();
    if (!rlc_smem_allow(kern, smem, what)) return -1;
    RLC_LAUNCH(kern, grid, ATT_THREADS, smem, st, part_o, part_lse, q, kc, vc, slot, kv_len, cap, NH, NKV, n_split,
               split_len, sl2);
    if (!att_launch_ok(what)) return -1;
    RLC_LAUNCH(att_dec_combine_kernel, B * NH, HD, 0, st, out, part_o, part_lse, kv_len, NH, HD, n_split, split_len);
    return att_launch_ok(what) ? 0 : -1;
}

extern "C" int rlc_cuda_attention_decode(void *out, const void *q, const void *k_cache, const void *v_cache,
                                         const int *slot, const int *kv_len, int B, int cap, int NH, int NKV, int HD,
                                         int split_len, void *workspace, size_t workspace_bytes, void *stream) {
    const char *what = "rlc_cuda_attention_decode";
    if (!att_shapes_ok(what, B, 0, NH, NKV, HD)) return -1;
    if (B == 0) return 0;
    if (cap <= 0) {
        fprintf(stderr, "%s: cache capacity %d\n", what, cap);
        return -1;
    }
    const size_t need = rlc_cuda_attention_decode_workspace_bytes(B, cap, NH, NKV, HD, split_len);
    if (workspace_bytes < need || !workspace) {
        fprintf(stderr, "%s: workspace of %zu bytes, need %zu\n", what, workspace_bytes, need);
        return -1;
    }
    const int sl = att_dec_split_len(B, cap, NH, NKV, split_len);
    cudaStream_t st = (cudaStream_t)stream;
    if (HD == 64)
        return att_decode_hd<64>((bf16 *)out, (const bf16 *)q, (const bf16 *)k_cache, (const bf16 *)v_cache, slot,
                                 kv_len, B, cap, NH, NKV, sl, (float *)workspace, st);
    return att_decode_hd<128>((bf16 *)out, (const bf16 *)q, (const bf16 *)k_cache, (const bf16 *)v_cache, slot, kv_len,
                              B, cap, NH, NKV, sl, (float *)workspace, st);
}
