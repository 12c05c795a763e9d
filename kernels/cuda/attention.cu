// kernels/cuda/attention.cu: causal GQA attention on token-packed batches (forward, backward) and split-K decode
// against a KV cache, on tensor cores (ldmatrix + mma.sync m16n8k16 bf16 -> fp32). Interface: attention.h; CPU
// twin: kernels/cpu/attention_cpu.c; fragment layouts: shared/spec/tensor_core_layouts.md.
//
// Forward (FlashAttention-2): one block of 4 warps per (64-query tile, head); warp w owns query rows 16w..16w+15.
// K/V tiles of 64 keys stream through shared memory with cp.async double buffering; S = Q K^T and O += P V are
// mma.sync; the softmax is online in fp32 (exp2 domain), P is rounded to bf16 for the PV product as on every
// flash kernel. Only tiles left of the diagonal are visited; the diagonal tile and the tail of a sequence are
// masked. The per-row log-sum-exp is saved for the backward.
// Backward: D = rowsum(dO * O) first (small kernel); then two kernels that recompute P from lse:
//   dK/dV: one block per (64-key tile, kv head); loops over the query heads of the group and the query tiles
//          at or after the diagonal in a fixed order, accumulating dV += P^T dO and dK += dS^T Q in registers;
//   dQ:    one block per (64-query tile, head); loops over the key tiles, dQ += dS K.
// Every output element has one writer and every sum a fixed order: deterministic, no atomics.
// Decode (flash-decoding): one block per (cache piece, kv head, row); the block's 4 warps take key tiles in
// turn, each with its own cp.async double buffer and online softmax over the (up to 16) query heads of the group
// padded to the 16 rows of an mma; the warps are merged in shared memory, each piece writes (normalised output,
// log-sum-exp) and a second kernel combines the pieces.
// Pipelines: each loop step waits for its own tile, then one barrier (all threads' copies visible, and every warp
// done with the previous tile), then issues the prefetch of the next tile into the stage just freed, then computes.
// Packed sequences: a block finds its (sequence, tile) from cu_seqlens with a warp-wide scan, so the grid is an
// upper bound on the tile count computed on the host without reading cu_seqlens.
// Registers (nvcc 13, sm_90a, no spills): forward 131 (HD 64) / 168 (HD 128); dK/dV 218 / 238; dQ 176 / 233;
// decode 128 / 168.
#include "attention.h"

#include <math.h>

#include "rlc_cuda.h"

// nvcc unrolls these loops fully (register arrays indexed by the loop variable must not go to local memory);
// g++ (the emulator) would warn about an unknown pragma.
#if defined(__CUDACC__)
#define ATT_UNROLL _Pragma("unroll")
#else
#define ATT_UNROLL
#endif

#define ATT_THREADS 128 // 4 warps in every kernel here
#define ATT_BM 64       // query rows per block (forward, dQ) and keys per block (dK/dV)
#define ATT_BN 64       // keys per K/V tile of the forward
#define ATT_LOG2E 1.4426950408889634f
#define ATT_LN2 0.6931471805599453f

typedef __nv_bfloat16 bf16;

// Keys per K/V tile of the dQ kernel and queries per Q/dO tile of the dK/dV kernel: smaller for head dim 128 so
// that the per-warp accumulators (dQ or dK+dV, 16 x HD each, plus two 16 x tile score blocks) fit in registers.
template <int HD> struct AttBwd {
    static constexpr int BT = HD == 128 ? 32 : 64;
};
// Keys per warp tile of the decode kernel (4 warps x 2 stages x K,V tiles of KT x HD in shared memory).
template <int HD> struct AttDec {
    static constexpr int KT = HD == 128 ? 16 : 32;
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

// Tile `tile` (in order: all tiles of sequence 0, then of sequence 1, ...; a sequence of length L has
// ceil(L/BT) tiles) -> sequence *b, index *local of the tile in it, *ntile tiles in that sequence. False if
// tile is past the last one. Warp-wide (all 32 lanes call it): 32 sequences per step, a prefix sum by shuffles.
__device__ __forceinline__ bool att_find_tile(const int *cu_seqlens, int B, int BT, int tile, int lane, int *b,
                                              int *local, int *ntile) {
    int base = 0; // tiles of the sequences before this chunk of 32
    for (int c = 0; c < B; c += 32) {
        int bb = c + lane, n = 0;
        if (bb < B) n = (cu_seqlens[bb + 1] - cu_seqlens[bb] + BT - 1) / BT;
        int incl = n;
        for (int o = 1; o < 32; o <<= 1) {
            int y = __shfl_up_sync(0xffffffffu, incl, o);
            if (lane >= o) incl += y;
        }
        int total = __shfl_sync(0xffffffffu, incl, 31);
        if (tile < base + total) {
            unsigned hit = __ballot_sync(0xffffffffu, tile < base + incl);
            int first = __ffs((int)hit) - 1;
            int excl = __shfl_sync(0xffffffffu, incl - n, first);
            *b = c + first;
            *local = tile - base - excl;
            *ntile = __shfl_sync(0xffffffffu, n, first);
            return true;
        }
        base += total;
    }
    return false;
}

// cp.async of rows [0, n_valid) of a (ROWS, HD) bf16 tile with global row stride ld (elements) into shared memory
// with row stride HD + 8 (the pad keeps ldmatrix's 8 row addresses on distinct banks); rows n_valid..ROWS-1 are
// zero-filled (their source address is the tile's first row, never read). NTHR threads, thread index i.
template <int HD, int ROWS, int NTHR>
__device__ __forceinline__ void att_load_tile(bf16 *s, const bf16 *g, size_t ld, int n_valid, int i) {
    constexpr int CPR = HD / 8; // 16-byte chunks per row
    ATT_UNROLL
    for (int c = i; c < ROWS * CPR; c += NTHR) {
        int r = c / CPR, cc = c % CPR;
        bool ok = r < n_valid;
        rlc_cp_async16_zfill(&s[r * (HD + 8) + cc * 8], g + (ok ? (size_t)r * ld + cc * 8 : 0), ok ? 16 : 0);
    }
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

// Online-softmax step for one warp's 16 rows (this lane: rows g and g+8, held as c[.][0..1] and c[.][2..3]):
// scores s (raw, -inf where masked) become bf16-ready probabilities exp2(s * sl2 - m); m (scaled, log2 units)
// and the lane's partial row sums l are updated and the output accumulator o rescaled.
template <int SN, int NT>
__device__ __forceinline__ void att_online_softmax(float (&s)[SN][4], float (&o)[NT][4], float (&m)[2],
                                                   float (&l)[2], float sl2) {
    float mx[2] = {m[0], m[1]};
    ATT_UNROLL
    for (int nt = 0; nt < SN; nt++) {
        mx[0] = fmaxf(mx[0], fmaxf(s[nt][0], s[nt][1]) * sl2);
        mx[1] = fmaxf(mx[1], fmaxf(s[nt][2], s[nt][3]) * sl2);
    }
    float alpha[2], mu[2];
    ATT_UNROLL
    for (int r = 0; r < 2; r++) {
        mx[r] = att_quad_max(mx[r]);
        mu[r] = mx[r] == -INFINITY ? 0.0f : mx[r]; // a row with every key masked so far: keep it at zero
        alpha[r] = exp2f(m[r] - mu[r]);
        m[r] = mx[r];
        l[r] *= alpha[r];
    }
    ATT_UNROLL
    for (int nt = 0; nt < NT; nt++) {
        o[nt][0] *= alpha[0], o[nt][1] *= alpha[0];
        o[nt][2] *= alpha[1], o[nt][3] *= alpha[1];
    }
    ATT_UNROLL
    for (int nt = 0; nt < SN; nt++) {
        ATT_UNROLL
        for (int e = 0; e < 4; e++) s[nt][e] = exp2f(fmaf(s[nt][e], sl2, -mu[e >> 1]));
        l[0] += s[nt][0] + s[nt][1];
        l[1] += s[nt][2] + s[nt][3];
    }
}

// o (16 x NT*8 per warp) += P (16 x 16*(SN/2), probabilities in s, packed to bf16 A fragments) @ V (rows of the
// shared-memory tile sV with stride lds). Shared by the forward and the decode kernels.
template <int SN, int NT>
__device__ __forceinline__ void att_pv_accumulate(float (&o)[NT][4], const float (&s)[SN][4], const bf16 *sV, int lds,
                                                  int lane) {
    ATT_UNROLL
    for (int kk = 0; kk < SN / 2; kk++) {
        uint32_t a[4];
        att_acc_to_a(a, s[2 * kk], s[2 * kk + 1]);
        ATT_UNROLL
        for (int np = 0; np < NT / 2; np++) {
            uint32_t b0[2], b1[2];
            att_ldm_b(b0, b1, sV, lds, kk * 16, np * 16, lane);
            rlc_mma_m16n8k16_bf16(o[2 * np], a, b0, o[2 * np]);
            rlc_mma_m16n8k16_bf16(o[2 * np + 1], a, b1, o[2 * np + 1]);
        }
    }
}

// ----------------------------------------------------------------------------------------------- forward

template <int HD> constexpr size_t att_fwd_smem() { return (size_t)(ATT_BM + 4 * ATT_BN) * (HD + 8) * sizeof(bf16); }

template <int HD>
__global__ void __launch_bounds__(ATT_THREADS)
    att_fwd_kernel(bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, const int *cu_seqlens, int B,
                   int NH, int NKV, float sl2) {
    constexpr int LDS = HD + 8, KS = HD / 16, NT = HD / 8, SN = ATT_BN / 8;
    RLC_DYN_SMEM(bf16, smem);
    bf16 *sQ = smem;                  // (BM, LDS)
    bf16 *sK = sQ + ATT_BM * LDS;     // 2 stages x (BN, LDS)
    bf16 *sV = sK + 2 * ATT_BN * LDS; // 2 stages x (BN, LDS)
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g4 = lane >> 2, t4 = lane & 3;
    const int h = blockIdx.y, kvh = h / (NH / NKV);
    int b, tile, ntile;
    if (!att_find_tile(cu_seqlens, B, ATT_BM, blockIdx.x, lane, &b, &tile, &ntile)) return;
    tile = ntile - 1 - tile; // the last tiles of a sequence see the most keys: start them first
    const int s0 = cu_seqlens[b], L = cu_seqlens[b + 1] - s0, i0 = tile * ATT_BM;
    const int qn = min(ATT_BM, L - i0), kend = i0 + qn, nkv = (kend + ATT_BN - 1) / ATT_BN;
    const size_t ldq = (size_t)NH * HD, ldk = (size_t)NKV * HD;
    const bf16 *Kg = k + ((size_t)s0 * NKV + kvh) * HD, *Vg = v + ((size_t)s0 * NKV + kvh) * HD;

    att_load_tile<HD, ATT_BM, ATT_THREADS>(sQ, q + ((size_t)(s0 + i0) * NH + h) * HD, ldq, qn, tid);
    att_load_tile<HD, ATT_BN, ATT_THREADS>(sK, Kg, ldk, min(ATT_BN, L), tid);
    att_load_tile<HD, ATT_BN, ATT_THREADS>(sV, Vg, ldk, min(ATT_BN, L), tid);
    rlc_cp_async_commit();

    float o[NT][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    ATT_UNROLL
    for (int nt = 0; nt < NT; nt++) o[nt][0] = o[nt][1] = o[nt][2] = o[nt][3] = 0.0f;
    uint32_t qf[KS][4];
    const int r0 = i0 + 16 * warp + g4; // this lane's query rows (positions in the sequence): r0 and r0 + 8

    for (int j = 0; j < nkv; j++) {
        // Tile j has landed for every thread, and every warp is done with tile j-1, whose stage the prefetch of
        // tile j+1 now refills (one barrier per tile; the prefetch overlaps this tile's math).
        rlc_cp_async_wait<0>();
        __syncthreads();
        if (j + 1 < nkv) {
            const int nb = (j + 1) & 1, k0 = (j + 1) * ATT_BN;
            att_load_tile<HD, ATT_BN, ATT_THREADS>(sK + nb * ATT_BN * LDS, Kg + k0 * ldk, ldk, min(ATT_BN, L - k0), tid);
            att_load_tile<HD, ATT_BN, ATT_THREADS>(sV + nb * ATT_BN * LDS, Vg + k0 * ldk, ldk, min(ATT_BN, L - k0), tid);
            rlc_cp_async_commit();
        }
        if (j == 0) {
            ATT_UNROLL
            for (int kk = 0; kk < KS; kk++) att_ldm_a(qf[kk], sQ, LDS, 16 * warp, kk * 16, lane);
        }
        const bf16 *sKj = sK + (j & 1) * ATT_BN * LDS, *sVj = sV + (j & 1) * ATT_BN * LDS;

        float s[SN][4];
        ATT_UNROLL
        for (int nt = 0; nt < SN; nt++) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
        ATT_UNROLL
        for (int kk = 0; kk < KS; kk++) {
            ATT_UNROLL
            for (int np = 0; np < SN / 2; np++) {
                uint32_t b0[2], b1[2];
                att_ldm_bt(b0, b1, sKj, LDS, np * 16, kk * 16, lane);
                rlc_mma_m16n8k16_bf16(s[2 * np], qf[kk], b0, s[2 * np]);
                rlc_mma_m16n8k16_bf16(s[2 * np + 1], qf[kk], b1, s[2 * np + 1]);
            }
        }
        const int kb = j * ATT_BN;
        if (kb + ATT_BN > i0 || kb + ATT_BN > L) { // the tile crosses the diagonal or the end of the sequence
            ATT_UNROLL
            for (int nt = 0; nt < SN; nt++) {
                ATT_UNROLL
                for (int e = 0; e < 4; e++) {
                    int c = kb + nt * 8 + 2 * t4 + (e & 1), r = r0 + (e >> 1) * 8;
                    if (c > r || c >= L) s[nt][e] = -INFINITY;
                }
            }
        }
        att_online_softmax<SN, NT>(s, o, m, l, sl2);
        att_pv_accumulate<SN, NT>(o, s, sVj, LDS, lane);
    }

    // Normalise, stage this warp's 16 rows in its own rows of sQ (only this warp ever read them), then store
    // 16-byte chunks of whole rows.
    l[0] = att_quad_sum(l[0]);
    l[1] = att_quad_sum(l[1]);
    const float inv0 = 1.0f / l[0], inv1 = 1.0f / l[1];
    bf16 *sO = sQ + 16 * warp * LDS;
    ATT_UNROLL
    for (int nt = 0; nt < NT; nt++) {
        *reinterpret_cast<uint32_t *>(&sO[g4 * LDS + nt * 8 + 2 * t4]) = att_pack_bf16(o[nt][0] * inv0, o[nt][1] * inv0);
        *reinterpret_cast<uint32_t *>(&sO[(g4 + 8) * LDS + nt * 8 + 2 * t4]) =
            att_pack_bf16(o[nt][2] * inv1, o[nt][3] * inv1);
    }
    __syncwarp();
    ATT_UNROLL
    for (int c = lane; c < 16 * HD / 8; c += 32) {
        int r = c / (HD / 8), cc = c % (HD / 8), row = i0 + 16 * warp + r;
        if (row < L)
            *reinterpret_cast<uint4 *>(&out[((size_t)(s0 + row) * NH + h) * HD + cc * 8]) =
                *reinterpret_cast<const uint4 *>(&sO[r * LDS + cc * 8]);
    }
    if (t4 == 0) {
        if (r0 < L) lse[(size_t)(s0 + r0) * NH + h] = (m[0] + log2f(l[0])) * ATT_LN2;
        if (r0 + 8 < L) lse[(size_t)(s0 + r0 + 8) * NH + h] = (m[1] + log2f(l[1])) * ATT_LN2;
    }
}

// ---------------------------------------------------------------------------------------------- backward

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

template <int HD> constexpr size_t att_dkdv_smem() {
    return (size_t)(2 * ATT_BM + 4 * AttBwd<HD>::BT) * (HD + 8) * sizeof(bf16) + 4 * AttBwd<HD>::BT * sizeof(float);
}

// Issues the loads of item it of a dK/dV block: query head h = head0 + it / nqt, query tile qt0 + it % nqt
// (BQ rows of Q and dO by cp.async; lse * log2(e) and D by plain loads, +inf / 0 past the sequence end so that
// those rows get probability 0).
template <int HD>
__device__ __forceinline__ void att_dkdv_issue(bf16 *sQ, bf16 *sO, float *sL, float *sD, const bf16 *q,
                                               const bf16 *dout, const float *lse, const float *Drow, int it, int nqt,
                                               int qt0, int head0, int s0, int L, int NH, int tid) {
    constexpr int BQ = AttBwd<HD>::BT;
    const int h = head0 + it / nqt, qs = (qt0 + it % nqt) * BQ, qn = min(BQ, L - qs);
    const size_t off = ((size_t)(s0 + qs) * NH + h) * HD, ld = (size_t)NH * HD;
    att_load_tile<HD, BQ, ATT_THREADS>(sQ, q + off, ld, qn, tid);
    att_load_tile<HD, BQ, ATT_THREADS>(sO, dout + off, ld, qn, tid);
    if (tid < BQ) {
        bool ok = tid < qn;
        size_t i = (size_t)(s0 + qs + tid) * NH + h;
        sL[tid] = ok ? lse[i] * ATT_LOG2E : INFINITY;
        sD[tid] = ok ? Drow[i] : 0.0f;
    }
}

template <int HD>
__global__ void __launch_bounds__(ATT_THREADS)
    att_bwd_dkdv_kernel(float *dk, float *dv, const bf16 *dout, const bf16 *q, const bf16 *k, const bf16 *v,
                        const float *lse, const float *Drow, const int *cu_seqlens, int B, int NH, int NKV,
                        float scale, float sl2) {
    constexpr int LDS = HD + 8, KS = HD / 16, NT = HD / 8, BQ = AttBwd<HD>::BT, QN = BQ / 8;
    RLC_DYN_SMEM(bf16, smem);
    bf16 *sK = smem;               // (BM keys, LDS)
    bf16 *sV = sK + ATT_BM * LDS;  // (BM, LDS)
    bf16 *sQ = sV + ATT_BM * LDS;  // 2 stages x (BQ, LDS)
    bf16 *sO = sQ + 2 * BQ * LDS;  // 2 stages x (BQ, LDS): dO
    float *sL = reinterpret_cast<float *>(sO + 2 * BQ * LDS); // 2 x BQ: lse * log2(e)
    float *sD = sL + 2 * BQ;                                   // 2 x BQ: D
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g4 = lane >> 2, t4 = lane & 3;
    const int kvh = blockIdx.y, rep = NH / NKV;
    int b, tile, ntile;
    if (!att_find_tile(cu_seqlens, B, ATT_BM, blockIdx.x, lane, &b, &tile, &ntile)) return;
    const int s0 = cu_seqlens[b], L = cu_seqlens[b + 1] - s0, j0 = tile * ATT_BM, kn = min(ATT_BM, L - j0);
    const int qt0 = j0 / BQ, nqt = (L + BQ - 1) / BQ - qt0, nit = rep * nqt; // queries >= j0 only (causal)
    const size_t ldk = (size_t)NKV * HD, koff = ((size_t)(s0 + j0) * NKV + kvh) * HD;

    att_load_tile<HD, ATT_BM, ATT_THREADS>(sK, k + koff, ldk, kn, tid);
    att_load_tile<HD, ATT_BM, ATT_THREADS>(sV, v + koff, ldk, kn, tid);
    att_dkdv_issue<HD>(sQ, sO, sL, sD, q, dout, lse, Drow, 0, nqt, qt0, kvh * rep, s0, L, NH, tid);
    rlc_cp_async_commit();

    float dka[NT][4], dva[NT][4];
    ATT_UNROLL
    for (int nt = 0; nt < NT; nt++)
        ATT_UNROLL
        for (int e = 0; e < 4; e++) dka[nt][e] = dva[nt][e] = 0.0f;
    const int kr0 = j0 + 16 * warp + g4; // this lane's key rows: kr0 and kr0 + 8

    for (int it = 0; it < nit; it++) {
        rlc_cp_async_wait<0>(); // item it has landed; after the barrier the other stage is free for item it+1
        __syncthreads();
        if (it + 1 < nit) {
            const int nb = (it + 1) & 1;
            att_dkdv_issue<HD>(sQ + nb * BQ * LDS, sO + nb * BQ * LDS, sL + nb * BQ, sD + nb * BQ, q, dout, lse, Drow,
                               it + 1, nqt, qt0, kvh * rep, s0, L, NH, tid);
            rlc_cp_async_commit();
        }
        const int cb = it & 1, qs = (qt0 + it % nqt) * BQ;
        const bf16 *sQb = sQ + cb * BQ * LDS, *sOb = sO + cb * BQ * LDS;
        const float *sLb = sL + cb * BQ, *sDb = sD + cb * BQ;

        // S^T = K Q^T and dP^T = V dO^T for this warp's 16 keys x BQ queries.
        float st[QN][4], dp[QN][4];
        ATT_UNROLL
        for (int nt = 0; nt < QN; nt++)
            ATT_UNROLL
            for (int e = 0; e < 4; e++) st[nt][e] = dp[nt][e] = 0.0f;
        ATT_UNROLL
        for (int kk = 0; kk < KS; kk++) {
            uint32_t ka[4], va[4];
            att_ldm_a(ka, sK, LDS, 16 * warp, kk * 16, lane);
            att_ldm_a(va, sV, LDS, 16 * warp, kk * 16, lane);
            ATT_UNROLL
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
        const bool diag = qs < j0 + ATT_BM;
        ATT_UNROLL
        for (int nt = 0; nt < QN; nt++) {
            ATT_UNROLL
            for (int e = 0; e < 4; e++) {
                const int c = nt * 8 + 2 * t4 + (e & 1), kr = kr0 + (e >> 1) * 8;
                float p = exp2f(fmaf(st[nt][e], sl2, -sLb[c]));
                if (diag && qs + c < kr) p = 0.0f;
                st[nt][e] = p;
                dp[nt][e] = p * (dp[nt][e] - sDb[c]);
            }
        }
        // dV += P^T dO, dK += dS^T Q (k = the BQ queries).
        ATT_UNROLL
        for (int kq = 0; kq < BQ / 16; kq++) {
            uint32_t pa[4], da[4];
            att_acc_to_a(pa, st[2 * kq], st[2 * kq + 1]);
            att_acc_to_a(da, dp[2 * kq], dp[2 * kq + 1]);
            ATT_UNROLL
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

    ATT_UNROLL
    for (int half = 0; half < 2; half++) {
        const int kr = kr0 + 8 * half;
        if (kr >= L) continue;
        const size_t off = ((size_t)(s0 + kr) * NKV + kvh) * HD + 2 * t4;
        ATT_UNROLL
        for (int nt = 0; nt < NT; nt++) {
            *reinterpret_cast<float2 *>(&dk[off + nt * 8]) =
                make_float2(dka[nt][2 * half] * scale, dka[nt][2 * half + 1] * scale);
            *reinterpret_cast<float2 *>(&dv[off + nt * 8]) = make_float2(dva[nt][2 * half], dva[nt][2 * half + 1]);
        }
    }
}

template <int HD> constexpr size_t att_dq_smem() {
    return (size_t)(2 * ATT_BM + 4 * AttBwd<HD>::BT) * (HD + 8) * sizeof(bf16);
}

template <int HD>
__global__ void __launch_bounds__(ATT_THREADS)
    att_bwd_dq_kernel(float *dq, const bf16 *dout, const bf16 *q, const bf16 *k, const bf16 *v, const float *lse,
                      const float *Drow, const int *cu_seqlens, int B, int NH, int NKV, float scale, float sl2) {
    constexpr int LDS = HD + 8, KS = HD / 16, NT = HD / 8, BK = AttBwd<HD>::BT, SN = BK / 8;
    RLC_DYN_SMEM(bf16, smem);
    bf16 *sQ = smem;              // (BM, LDS)
    bf16 *sO = sQ + ATT_BM * LDS; // (BM, LDS): dO
    bf16 *sK = sO + ATT_BM * LDS; // 2 stages x (BK, LDS)
    bf16 *sV = sK + 2 * BK * LDS; // 2 stages x (BK, LDS)
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g4 = lane >> 2, t4 = lane & 3;
    const int h = blockIdx.y, kvh = h / (NH / NKV);
    int b, tile, ntile;
    if (!att_find_tile(cu_seqlens, B, ATT_BM, blockIdx.x, lane, &b, &tile, &ntile)) return;
    tile = ntile - 1 - tile;
    const int s0 = cu_seqlens[b], L = cu_seqlens[b + 1] - s0, i0 = tile * ATT_BM;
    const int qn = min(ATT_BM, L - i0), kend = i0 + qn, nkv = (kend + BK - 1) / BK;
    const size_t ldq = (size_t)NH * HD, ldk = (size_t)NKV * HD, qoff = ((size_t)(s0 + i0) * NH + h) * HD;
    const bf16 *Kg = k + ((size_t)s0 * NKV + kvh) * HD, *Vg = v + ((size_t)s0 * NKV + kvh) * HD;

    att_load_tile<HD, ATT_BM, ATT_THREADS>(sQ, q + qoff, ldq, qn, tid);
    att_load_tile<HD, ATT_BM, ATT_THREADS>(sO, dout + qoff, ldq, qn, tid);
    att_load_tile<HD, BK, ATT_THREADS>(sK, Kg, ldk, min(BK, L), tid);
    att_load_tile<HD, BK, ATT_THREADS>(sV, Vg, ldk, min(BK, L), tid);
    rlc_cp_async_commit();

    const int r0 = i0 + 16 * warp + g4; // this lane's query rows r0, r0 + 8
    float lrow[2], drow[2];             // lse * log2(e) and D of the two rows (0 past the end: never stored)
    ATT_UNROLL
    for (int half = 0; half < 2; half++) {
        const int r = r0 + 8 * half;
        const size_t i = (size_t)(s0 + r) * NH + h;
        lrow[half] = r < L ? lse[i] * ATT_LOG2E : 0.0f;
        drow[half] = r < L ? Drow[i] : 0.0f;
    }
    float dqa[NT][4];
    ATT_UNROLL
    for (int nt = 0; nt < NT; nt++) dqa[nt][0] = dqa[nt][1] = dqa[nt][2] = dqa[nt][3] = 0.0f;
    uint32_t qf[KS][4], of[KS][4];

    for (int j = 0; j < nkv; j++) {
        rlc_cp_async_wait<0>(); // tile j has landed; after the barrier the other stage is free for tile j+1
        __syncthreads();
        if (j + 1 < nkv) {
            const int nb = (j + 1) & 1, k0 = (j + 1) * BK;
            att_load_tile<HD, BK, ATT_THREADS>(sK + nb * BK * LDS, Kg + k0 * ldk, ldk, min(BK, L - k0), tid);
            att_load_tile<HD, BK, ATT_THREADS>(sV + nb * BK * LDS, Vg + k0 * ldk, ldk, min(BK, L - k0), tid);
            rlc_cp_async_commit();
        }
        if (j == 0) {
            ATT_UNROLL
            for (int kk = 0; kk < KS; kk++) {
                att_ldm_a(qf[kk], sQ, LDS, 16 * warp, kk * 16, lane);
                att_ldm_a(of[kk], sO, LDS, 16 * warp, kk * 16, lane);
            }
        }
        const bf16 *sKj = sK + (j & 1) * BK * LDS, *sVj = sV + (j & 1) * BK * LDS;

        // S = Q K^T, dP = dO V^T (16 queries x BK keys per warp).
        float s[SN][4], dp[SN][4];
        ATT_UNROLL
        for (int nt = 0; nt < SN; nt++)
            ATT_UNROLL
            for (int e = 0; e < 4; e++) s[nt][e] = dp[nt][e] = 0.0f;
        ATT_UNROLL
        for (int kk = 0; kk < KS; kk++) {
            ATT_UNROLL
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
        const int kb = j * BK;
        const bool edge = kb + BK > i0 || kb + BK > L;
        ATT_UNROLL
        for (int nt = 0; nt < SN; nt++) {
            ATT_UNROLL
            for (int e = 0; e < 4; e++) {
                const int c = kb + nt * 8 + 2 * t4 + (e & 1), half = e >> 1, r = r0 + 8 * half;
                float p = exp2f(fmaf(s[nt][e], sl2, -lrow[half]));
                if (edge && (c > r || c >= L)) p = 0.0f;
                dp[nt][e] = p * (dp[nt][e] - drow[half]);
            }
        }
        // dQ += dS K (k = the BK keys).
        ATT_UNROLL
        for (int kk = 0; kk < BK / 16; kk++) {
            uint32_t da[4];
            att_acc_to_a(da, dp[2 * kk], dp[2 * kk + 1]);
            ATT_UNROLL
            for (int np = 0; np < NT / 2; np++) {
                uint32_t b0[2], b1[2];
                att_ldm_b(b0, b1, sKj, LDS, kk * 16, np * 16, lane);
                rlc_mma_m16n8k16_bf16(dqa[2 * np], da, b0, dqa[2 * np]);
                rlc_mma_m16n8k16_bf16(dqa[2 * np + 1], da, b1, dqa[2 * np + 1]);
            }
        }
    }

    ATT_UNROLL
    for (int half = 0; half < 2; half++) {
        const int r = r0 + 8 * half;
        if (r >= L) continue;
        float *d = dq + ((size_t)(s0 + r) * NH + h) * HD + 2 * t4;
        ATT_UNROLL
        for (int nt = 0; nt < NT; nt++)
            *reinterpret_cast<float2 *>(&d[nt * 8]) = make_float2(dqa[nt][2 * half] * scale, dqa[nt][2 * half + 1] * scale);
    }
}

// ------------------------------------------------------------------------------------------------ decode

template <int HD> constexpr size_t att_dec_smem() {
    return (size_t)(16 + 4 * 2 * 2 * AttDec<HD>::KT) * (HD + 8) * sizeof(bf16);
}

// One block per (piece s of split_len keys, (kv head, chunk of 16 query heads), row b). Writes, for each query
// head of the chunk, the piece's normalised output part_o (B, NH, n_split, HD) and its log-sum-exp in log2 units
// of the scaled scores part_lse (B, NH, n_split). Pieces at or past kv_len[b] write nothing.
template <int HD>
__global__ void __launch_bounds__(ATT_THREADS)
    att_dec_kernel(float *part_o, float *part_lse, const bf16 *q, const bf16 *k_cache, const bf16 *v_cache,
                   const int *slot, const int *kv_len, int cap, int NH, int NKV, int n_split, int split_len,
                   float sl2) {
    constexpr int LDS = HD + 8, KS = HD / 16, NT = HD / 8, KT = AttDec<HD>::KT, SN = KT / 8;
    constexpr int NW = ATT_THREADS / 32, STAGE = 2 * KT * LDS; // a stage holds a K and a V tile
    RLC_DYN_SMEM(bf16, smem);
    bf16 *sQ = smem;       // (16, LDS): the group's query heads, zero rows past nh
    bf16 *sKV = sQ + 16 * LDS; // NW warps x 2 stages x (K, V) x (KT, LDS)
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g4 = lane >> 2, t4 = lane & 3;
    const int b = blockIdx.z, s = blockIdx.x, rep = NH / NKV, nhc = (rep + 15) / 16;
    const int kvh = blockIdx.y / nhc, h0 = kvh * rep + (blockIdx.y % nhc) * 16, nh = min(16, kvh * rep + rep - h0);
    const int n = kv_len[b], kstart = s * split_len;
    if (kstart >= n) return;
    const int nk = min(n - kstart, split_len), ntiles = (nk + KT - 1) / KT;
    const int nmy = warp < ntiles ? (ntiles - warp + NW - 1) / NW : 0; // this warp's tiles: warp, warp + NW, ...
    const size_t ld = (size_t)NKV * HD, base = (((size_t)slot[b] * cap + kstart) * NKV + kvh) * HD;
    const bf16 *Kg = k_cache + base, *Vg = v_cache + base;
    bf16 *sW = sKV + warp * 2 * STAGE;

    att_load_tile<HD, 16, ATT_THREADS>(sQ, q + ((size_t)b * NH + h0) * HD, HD, nh, tid);
    rlc_cp_async_commit();
    if (nmy > 0) {
        att_load_tile<HD, KT, 32>(sW, Kg + (size_t)warp * KT * ld, ld, min(KT, nk - warp * KT), lane);
        att_load_tile<HD, KT, 32>(sW + KT * LDS, Vg + (size_t)warp * KT * ld, ld, min(KT, nk - warp * KT), lane);
    }
    rlc_cp_async_commit();
    rlc_cp_async_wait<1>(); // the query rows have landed
    __syncthreads();
    uint32_t qf[KS][4];
    ATT_UNROLL
    for (int kk = 0; kk < KS; kk++) att_ldm_a(qf[kk], sQ, LDS, 0, kk * 16, lane);

    float o[NT][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    ATT_UNROLL
    for (int nt = 0; nt < NT; nt++) o[nt][0] = o[nt][1] = o[nt][2] = o[nt][3] = 0.0f;
    for (int i = 0; i < nmy; i++) {
        const int u = warp + NW * i;
        rlc_cp_async_wait<0>(); // this warp's tile i has landed; after the warp barrier its other stage is free
        __syncwarp();
        if (i + 1 < nmy) {
            const int k0 = (u + NW) * KT;
            bf16 *st = sW + ((i + 1) & 1) * STAGE;
            att_load_tile<HD, KT, 32>(st, Kg + (size_t)k0 * ld, ld, min(KT, nk - k0), lane);
            att_load_tile<HD, KT, 32>(st + KT * LDS, Vg + (size_t)k0 * ld, ld, min(KT, nk - k0), lane);
            rlc_cp_async_commit();
        }
        const bf16 *sK = sW + (i & 1) * STAGE, *sV = sK + KT * LDS;
        float sc[SN][4];
        ATT_UNROLL
        for (int nt = 0; nt < SN; nt++) sc[nt][0] = sc[nt][1] = sc[nt][2] = sc[nt][3] = 0.0f;
        ATT_UNROLL
        for (int kk = 0; kk < KS; kk++) {
            ATT_UNROLL
            for (int np = 0; np < SN / 2; np++) {
                uint32_t b0[2], b1[2];
                att_ldm_bt(b0, b1, sK, LDS, np * 16, kk * 16, lane);
                rlc_mma_m16n8k16_bf16(sc[2 * np], qf[kk], b0, sc[2 * np]);
                rlc_mma_m16n8k16_bf16(sc[2 * np + 1], qf[kk], b1, sc[2 * np + 1]);
            }
        }
        if ((u + 1) * KT > nk) {
            ATT_UNROLL
            for (int nt = 0; nt < SN; nt++)
                ATT_UNROLL
                for (int e = 0; e < 4; e++)
                    if (u * KT + nt * 8 + 2 * t4 + (e & 1) >= nk) sc[nt][e] = -INFINITY;
        }
        att_online_softmax<SN, NT>(sc, o, m, l, sl2);
        att_pv_accumulate<SN, NT>(o, sc, sV, LDS, lane);
    }
    l[0] = att_quad_sum(l[0]);
    l[1] = att_quad_sum(l[1]);

    // Merge the warps: their (m, l, unnormalised o) go to shared memory (over the K/V stages, now free).
    __syncthreads();
    float *sOw = reinterpret_cast<float *>(sKV); // (NW, 16, HD)
    float *sM = sOw + NW * 16 * HD, *sL = sM + NW * 16;
    ATT_UNROLL
    for (int nt = 0; nt < NT; nt++) {
        *reinterpret_cast<float2 *>(&sOw[(warp * 16 + g4) * HD + nt * 8 + 2 * t4]) = make_float2(o[nt][0], o[nt][1]);
        *reinterpret_cast<float2 *>(&sOw[(warp * 16 + g4 + 8) * HD + nt * 8 + 2 * t4]) = make_float2(o[nt][2], o[nt][3]);
    }
    if (t4 == 0) {
        sM[warp * 16 + g4] = m[0], sL[warp * 16 + g4] = l[0];
        sM[warp * 16 + g4 + 8] = m[1], sL[warp * 16 + g4 + 8] = l[1];
    }
    __syncthreads();
    for (int idx = tid; idx < nh * HD; idx += ATT_THREADS) {
        const int r = idx / HD, d = idx % HD;
        float M = -INFINITY;
        for (int w = 0; w < NW; w++) M = fmaxf(M, sM[w * 16 + r]); // finite: warp 0 has the piece's first tile
        float sum = 0.0f, acc = 0.0f;
        for (int w = 0; w < NW; w++) {
            if (sM[w * 16 + r] == -INFINITY) continue; // a warp without tiles
            const float e = exp2f(sM[w * 16 + r] - M);
            sum += e * sL[w * 16 + r];
            acc += e * sOw[(w * 16 + r) * HD + d];
        }
        const size_t pi = ((size_t)b * NH + h0 + r) * n_split + s;
        part_o[pi * HD + d] = acc / sum;
        if (d == 0) part_lse[pi] = M + log2f(sum);
    }
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

template <class K> static int att_smem_attr(K kernel, size_t bytes, const char *what) {
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
    if (e != cudaSuccess) {
        fprintf(stderr, "%s: cannot allow %zu bytes of dynamic shared memory: %s\n", what, bytes, cudaGetErrorString(e));
        return 0;
    }
    return 1;
}

template <int HD>
static int att_forward_hd(bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, const int *cu,
                          int B, int T, int NH, int NKV, cudaStream_t st) {
    const char *what = "rlc_cuda_attention_forward";
    const unsigned tiles = att_tiles_ub(T, B, ATT_BM);
    if (tiles == 0) return 0;
    const size_t smem = att_fwd_smem<HD>();
    if (!att_smem_attr(att_fwd_kernel<HD>, smem, what)) return -1;
    const float sl2 = (float)(1.0 / sqrt((double)HD)) * ATT_LOG2E;
    RLC_LAUNCH(att_fwd_kernel<HD>, dim3(tiles, NH), ATT_THREADS, smem, st, out, lse, q, k, v, cu, B, NH, NKV, sl2);
    return att_launch_ok(what) ? 0 : -1;
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

extern "C" size_t rlc_cuda_attention_backward_workspace_bytes(int T, int NH) {
    return (size_t)(T > 0 ? T : 1) * (size_t)(NH > 0 ? NH : 1) * sizeof(float);
}

template <int HD>
static int att_backward_hd(float *dq, float *dk, float *dv, const bf16 *dout, const bf16 *q, const bf16 *k,
                           const bf16 *v, const bf16 *out, const float *lse, const int *cu, int B, int T, int NH,
                           int NKV, float *Drow, cudaStream_t st) {
    const char *what = "rlc_cuda_attention_backward";
    const unsigned tiles = att_tiles_ub(T, B, ATT_BM);
    if (tiles == 0) return 0;
    const int rows = T * NH, rows_per_block = ATT_THREADS / 32;
    RLC_LAUNCH(att_bwd_dot_kernel, (rows + rows_per_block - 1) / rows_per_block, ATT_THREADS, 0, st, Drow, dout, out,
               rows, HD);
    if (!att_launch_ok(what)) return -1;
    const float scale = (float)(1.0 / sqrt((double)HD)), sl2 = scale * ATT_LOG2E;
    const size_t smem_kv = att_dkdv_smem<HD>(), smem_q = att_dq_smem<HD>();
    if (!att_smem_attr(att_bwd_dkdv_kernel<HD>, smem_kv, what) || !att_smem_attr(att_bwd_dq_kernel<HD>, smem_q, what))
        return -1;
    RLC_LAUNCH(att_bwd_dkdv_kernel<HD>, dim3(tiles, NKV), ATT_THREADS, smem_kv, st, dk, dv, dout, q, k, v, lse, Drow,
               cu, B, NH, NKV, scale, sl2);
    if (!att_launch_ok(what)) return -1;
    RLC_LAUNCH(att_bwd_dq_kernel<HD>, dim3(tiles, NH), ATT_THREADS, smem_q, st, dq, dout, q, k, v, lse, Drow, cu, B,
               NH, NKV, scale, sl2);
    return att_launch_ok(what) ? 0 : -1;
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

// Piece length for the decode: the caller's (rounded up to a multiple of 128 = 4 warps x the largest key tile),
// or one that gives about two blocks per SM of an H100 (132 SMs) but at least 256 keys per piece.
static int att_dec_split_len(int B, int cap, int NH, int NKV, int split_len) {
    if (split_len <= 0) {
        const int rep = NH / NKV, base = B * NKV * ((rep + 15) / 16), want = (264 + base - 1) / base;
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
    const size_t smem = att_dec_smem<HD>();
    if (!att_smem_attr(att_dec_kernel<HD>, smem, what)) return -1;
    const float sl2 = (float)(1.0 / sqrt((double)HD)) * ATT_LOG2E;
    RLC_LAUNCH(att_dec_kernel<HD>, dim3(n_split, NKV * nhc, B), ATT_THREADS, smem, st, part_o, part_lse, q, kc, vc,
               slot, kv_len, cap, NH, NKV, n_split, split_len, sl2);
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
