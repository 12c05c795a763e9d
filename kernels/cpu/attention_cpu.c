// kernels/cpu/attention_cpu.c: causal GQA attention on token-packed batches (forward, backward, KV-cache decode
// and append) for the CPU backend. Work is split into (sequence, head, block of 64 queries) for the forward and the dq part
// of the backward, and (sequence, kv head, block of 64 keys) for dk/dv, so every output element has exactly one
// writer (race-free, bitwise independent of thread count) and scratch is bounded by 2 x 64 x (longest
// sequence). The block products are gemm calls (OpenBLAS on one thread inside the OpenMP region).
#include <stdlib.h>
#include <string.h>

#include "cpu_common.h"
#include "rlc/util.h"

#define ATT_BLOCK 64

// One unit of work: rows [i0, i0 + n) of sequence b (queries or keys depending on the pass); cost orders the
// dynamic schedule longest-first.
typedef struct att_item {
    int b, i0, n;
    long cost;
} att_item;

static int att_item_cmp(const void *pa, const void *pb) {
    const att_item *a = pa, *b = pb;
    if (a->cost != b->cost) return a->cost > b->cost ? -1 : 1;
    if (a->b != b->b) return a->b - b->b;
    return a->i0 - b->i0;
}

static void att_check(const int *cu_seqlens, int B, int T, int NH, int NKV, int HD) {
    RLC_CHECK(B >= 0 && NKV > 0 && NH % NKV == 0 && HD > 0, "attention: bad shapes B=%d NH=%d NKV=%d HD=%d", B, NH,
              NKV, HD);
    RLC_CHECK(cu_seqlens[0] == 0 && cu_seqlens[B] == T, "attention: cu_seqlens must run from 0 to T=%d (got %d..%d)",
              T, cu_seqlens[0], cu_seqlens[B]);
    for (int b = 0; b < B; b++)
        RLC_CHECK(cu_seqlens[b + 1] >= cu_seqlens[b], "attention: cu_seqlens decreases at %d", b);
}

// Multiply-adds of the causal scores and output over all heads (sum of L (L + 1) / 2 per sequence): the forward's
// work, and about 2/5 of the backward's; it decides whether a pass is worth a parallel region (cpu_par_gemm).
static double att_causal_macs(const int *cu_seqlens, int B, int NH, int HD) {
    double pairs = 0;
    for (int b = 0; b < B; b++) {
        double L = cu_seqlens[b + 1] - cu_seqlens[b];
        pairs += L * (L + 1) / 2;
    }
    return 2.0 * pairs * NH * HD;
}

// Blocks of ATT_BLOCK rows of every sequence; key_pass: the cost is the number of later queries (dk/dv pass),
// else the number of keys visible to the block (forward, dq pass). Returns the count and the longest sequence.
static att_item *att_items(const int *cu_seqlens, int B, int key_pass, int *n_items, int *max_len) {
    int n = 0, mx = 0;
    for (int b = 0; b < B; b++) {
        int L = cu_seqlens[b + 1] - cu_seqlens[b];
        n += (L + ATT_BLOCK - 1) / ATT_BLOCK;
        if (L > mx) mx = L;
    }
    att_item *it = rlc_malloc((size_t)(n ? n : 1) * sizeof(att_item));
    int k = 0;
    for (int b = 0; b < B; b++) {
        int L = cu_seqlens[b + 1] - cu_seqlens[b];
        for (int i0 = 0; i0 < L; i0 += ATT_BLOCK) {
            int len = L - i0 < ATT_BLOCK ? L - i0 : ATT_BLOCK;
            it[k] = (att_item){b, i0, len, key_pass ? (long)(L - i0) : (long)(i0 + len)};
            k++;
        }
    }
    qsort(it, (size_t)n, sizeof(att_item), att_item_cmp);
    *n_items = n;
    *max_len = mx;
    return it;
}

void cpu_attention_forward(rlc_act *out_, rlc_f *lse, const rlc_act *q_, const rlc_act *k_, const rlc_act *v_,
                           const int *cu_seqlens, int B, int T, int NH, int NKV, int HD) {
    rlc_f *out = out_;
    const rlc_f *q = q_;
    const rlc_f *k = k_;
    const rlc_f *v = v_;
    att_check(cu_seqlens, B, T, NH, NKV, HD);
    int n_items, max_len;
    att_item *items = att_items(cu_seqlens, B, 0, &n_items, &max_len);
    int rep = NH / NKV, ldq = NH * HD, ldk = NKV * HD;
    rlc_f scale = (rlc_f)(1.0 / sqrt((double)HD));
    int par = cpu_par_gemm(att_causal_macs(cu_seqlens, B, NH, HD));
    int blas_threads = cpu_blas_single_begin();
#pragma omp parallel if (par)
    {
        rlc_f *S = rlc_malloc((size_t)ATT_BLOCK * (max_len ? max_len : 1) * sizeof(rlc_f)); // (qb, kend)
#pragma omp for schedule(dynamic, 1)
        for (long w = 0; w < (long)n_items * NH; w++) {
            const att_item *it = &items[w / NH];
            int h = (int)(w % NH), g = h / rep;
            int s0 = cu_seqlens[it->b], i0 = it->i0, qb = it->n, kend = i0 + qb;
            const rlc_f *Q = q + ((size_t)(s0 + i0) * NH + h) * HD; // (qb, HD) stride ldq
            const rlc_f *K = k + ((size_t)s0 * NKV + g) * HD;       // (kend, HD) stride ldk
            const rlc_f *Vp = v + ((size_t)s0 * NKV + g) * HD;
            cpu_gemm(0, 1, qb, kend, HD, scale, Q, ldq, K, ldk, 0, S, kend);
            for (int r = 0; r < qb; r++) {
                rlc_f *row = S + (size_t)r * kend;
                int nv = i0 + r + 1; // causal: keys 0..i0+r
                rlc_f mx = cpu_row_max(row, nv);
                rlc_f sum = cpu_exp_sum(row, nv, mx);
                rlc_f inv = 1 / sum;
                for (int j = 0; j < nv; j++) row[j] *= inv;
                for (int j = nv; j < kend; j++) row[j] = 0;
                lse[(size_t)(s0 + i0 + r) * NH + h] = mx + CPU_LOG(sum);
            }
            cpu_gemm(0, 0, qb, HD, kend, 1, S, kend, Vp, ldk, 0, out + ((size_t)(s0 + i0) * NH + h) * HD, ldq);
        }
        free(S);
    }
    cpu_blas_single_end(blas_threads);
    free(items);
}

// Shared read-only arguments of the backward.
typedef struct att_bwd_args {
    const rlc_f *dout, *q, *k, *v, *lse, *D;
    const int *cu_seqlens;
    int NH, NKV, HD;
    rlc_f scale;
} att_bwd_args;

// Per-thread scratch of the key-block pass: 2 x (ATT_BLOCK, max_len) tiles, lse and D of max_len queries.
typedef struct att_scratch {
    rlc_f *PT, *dPT, *Lc, *Dc;
} att_scratch;

static att_scratch att_scratch_alloc(int max_len) {
    size_t ml = (size_t)(max_len ? max_len : 1);
    att_scratch sc;
    sc.PT = rlc_malloc((size_t)ATT_BLOCK * ml * 2 * sizeof(rlc_f));
    sc.dPT = sc.PT + (size_t)ATT_BLOCK * ml;
    sc.Lc = rlc_malloc(ml * 2 * sizeof(rlc_f));
    sc.Dc = sc.Lc + ml;
    return sc;
}
static void att_scratch_free(att_scratch *sc) {
    free(sc->PT);
    free(sc->Lc);
}

// Keys [j0, j0 + kb) of sequence b, kv head g, against all later queries j0..L-1 of every head of the group
// (in head order): dk, dv rows overwritten; with dq != NULL also dq[j0..L) += scale dS K (the caller owns all of
// the sequence's dq rows of the group).
static void att_bwd_key_block(const att_bwd_args *a, att_scratch *sc, int b, int g, int j0, int kb, rlc_f *dk,
                              rlc_f *dv, rlc_f *dq) {
    int NH = a->NH, NKV = a->NKV, HD = a->HD, rep = NH / NKV, ldq = NH * HD, ldk = NKV * HD;
    int s0 = a->cu_seqlens[b], L = a->cu_seqlens[b + 1] - s0, nq = L - j0;
    size_t koff = ((size_t)(s0 + j0) * NKV + g) * HD;
    for (int r = 0; r < kb; r++) {
        memset(dk + koff + (size_t)r * ldk, 0, (size_t)HD * sizeof(rlc_f));
        memset(dv + koff + (size_t)r * ldk, 0, (size_t)HD * sizeof(rlc_f));
    }
    for (int h = g * rep; h < (g + 1) * rep; h++) {
        size_t qoff = ((size_t)(s0 + j0) * NH + h) * HD; // queries j0..L-1
        cpu_gemm(0, 1, kb, nq, HD, a->scale, a->k + koff, ldk, a->q + qoff, ldq, 0, sc->PT, nq);
        cpu_gemm(0, 1, kb, nq, HD, 1, a->v + koff, ldk, a->dout + qoff, ldq, 0, sc->dPT, nq);
        for (int c = 0; c < nq; c++) { // lse and D of the queries, contiguous
            size_t th = (size_t)(s0 + j0 + c) * NH + h;
            sc->Lc[c] = a->lse[th];
            sc->Dc[c] = a->D[th];
        }
        for (int r = 0; r < kb; r++) { // key j0+r is seen by queries j0+c with c >= r
            rlc_f *p = sc->PT + (size_t)r * nq, *dp = sc->dPT + (size_t)r * nq;
            for (int c = 0; c < r; c++) p[c] = dp[c] = 0;
            cpu_softmax_grad_cols(p + r, dp + r, nq - r, sc->Lc + r, sc->Dc + r);
        }
        cpu_gemm(0, 0, kb, HD, nq, 1, sc->PT, nq, a->dout + qoff, ldq, 1, dv + koff, ldk);
        cpu_gemm(0, 0, kb, HD, nq, a->scale, sc->dPT, nq, a->q + qoff, ldq, 1, dk + koff, ldk);
        if (dq) cpu_gemm(1, 0, nq, HD, kb, a->scale, sc->dPT, nq, a->k + koff, ldk, 1, dq + qoff, ldq);
    }
}

// With P = softmax(scale Q K^T) (recomputed from lse), dO the output gradient and D_i = dO_i . O_i:
// dV = P^T dO, dS = P * (dO V^T - D), dQ = scale dS K, dK = scale dS^T Q.
// Two schedules, chosen from the shapes only (so results never depend on the thread count):
// - fused (5 products): one unit per (sequence, kv head) walks its key blocks and also accumulates dq, which it
//   owns. Used when the units are many and even: NKV * sum L^2 >= 16 * max L^2.
// - two passes (7 products, for few or uneven sequences): dq per (sequence, head, query block) from
//   recomputed rows, then dk/dv per (sequence, kv head, key block).
void cpu_attention_backward(rlc_act *dq_, rlc_act *dk_, rlc_act *dv_, const rlc_act *dout_, const rlc_act *q_, const rlc_act *k_,
                            const rlc_act *v_, const rlc_act *out_, const rlc_f *lse, const int *cu_seqlens, int B, int T,
                            int NH, int NKV, int HD) {
    rlc_f *dq = dq_;
    rlc_f *dk = dk_;
    rlc_f *dv = dv_;
    const rlc_f *dout = dout_;
    const rlc_f *q = q_;
    const rlc_f *k = k_;
    const rlc_f *v = v_;
    const rlc_f *out = out_;
    att_check(cu_seqlens, B, T, NH, NKV, HD);
    int rep = NH / NKV, ldq = NH * HD, ldk = NKV * HD;
    rlc_f scale = (rlc_f)(1.0 / sqrt((double)HD));

    rlc_f *D = rlc_malloc((size_t)(T ? T : 1) * NH * sizeof(rlc_f)); // (T, NH)
#pragma omp parallel for schedule(static) if (cpu_par((double)T * NH * HD))
    for (long th = 0; th < (long)T * NH; th++) {
        const rlc_f *o = out + (size_t)th * HD, *d = dout + (size_t)th * HD;
        double s = 0.0;
        for (int i = 0; i < HD; i++) s += (double)o[i] * d[i];
        D[th] = (rlc_f)s;
    }
    att_bwd_args args = {dout, q, k, v, lse, D, cu_seqlens, NH, NKV, HD, scale};

    double sum_sq = 0, max_sq = 0;
    int max_len = 0;
    for (int b = 0; b < B; b++) {
        double L = cu_seqlens[b + 1] - cu_seqlens[b];
        sum_sq += L * L;
        max_sq = L * L > max_sq ? L * L : max_sq;
        max_len = (int)L > max_len ? (int)L : max_len;
    }
    int fused = NKV * sum_sq >= 16 * max_sq;
    int par = cpu_par_gemm(2.5 * att_causal_macs(cu_seqlens, B, NH, HD));

    int blas_threads = cpu_blas_single_begin();
    if (fused) {
        att_item *units = rlc_malloc((size_t)(B ? B : 1) * sizeof(att_item)); // longest first
        for (int b = 0; b < B; b++) {
            long L = cu_seqlens[b + 1] - cu_seqlens[b];
            units[b] = (att_item){b, 0, (int)L, L * L};
        }
        qsort(units, (size_t)B, sizeof(att_item), att_item_cmp);
#pragma omp parallel if (par)
        {
            att_scratch sc = att_scratch_alloc(max_len);
#pragma omp for schedule(dynamic, 1)
            for (long w = 0; w < (long)B * NKV; w++) {
                const att_item *u = &units[w / NKV];
                int g = (int)(w % NKV), s0 = cu_seqlens[u->b];
                for (int t = 0; t < u->n; t++)
                    memset(dq + ((size_t)(s0 + t) * NH + g * rep) * HD, 0, (size_t)rep * HD * sizeof(rlc_f));
                for (int j0 = 0; j0 < u->n; j0 += ATT_BLOCK)
                    att_bwd_key_block(&args, &sc, u->b, g, j0, u->n - j0 < ATT_BLOCK ? u->n - j0 : ATT_BLOCK, dk, dv,
                                      dq);
            }
            att_scratch_free(&sc);
        }
        free(units);
    } else {
        // pass 1: dq, one writer per (sequence, head, query block)
        int n_items;
        att_item *items = att_items(cu_seqlens, B, 0, &n_items, &max_len);
#pragma omp parallel if (par)
        {
            size_t sz = (size_t)ATT_BLOCK * (max_len ? max_len : 1);
            rlc_f *P = rlc_malloc(sz * 2 * sizeof(rlc_f)), *dP = P + sz; // (qb, kend)
#pragma omp for schedule(dynamic, 1)
            for (long w = 0; w < (long)n_items * NH; w++) {
                const att_item *it = &items[w / NH];
                int h = (int)(w % NH), g = h / rep;
                int s0 = cu_seqlens[it->b], i0 = it->i0, qb = it->n, kend = i0 + qb;
                size_t qoff = ((size_t)(s0 + i0) * NH + h) * HD;
                const rlc_f *K = k + ((size_t)s0 * NKV + g) * HD, *Vp = v + ((size_t)s0 * NKV + g) * HD;
                cpu_gemm(0, 1, qb, kend, HD, scale, q + qoff, ldq, K, ldk, 0, P, kend);
                cpu_gemm(0, 1, qb, kend, HD, 1, dout + qoff, ldq, Vp, ldk, 0, dP, kend);
                for (int r = 0; r < qb; r++) {
                    size_t th = (size_t)(s0 + i0 + r) * NH + h;
                    rlc_f *p = P + (size_t)r * kend, *dp = dP + (size_t)r * kend;
                    int nv = i0 + r + 1;
                    cpu_softmax_grad(p, dp, nv, lse[th], D[th]);
                    for (int j = nv; j < kend; j++) dp[j] = 0;
                }
                cpu_gemm(0, 0, qb, HD, kend, scale, dP, kend, K, ldk, 0, dq + qoff, ldq);
            }
            free(P);
        }
        free(items);

        // pass 2: dk, dv, one writer per (sequence, kv head, key block)
        items = att_items(cu_seqlens, B, 1, &n_items, &max_len);
#pragma omp parallel if (par)
        {
            att_scratch sc = att_scratch_alloc(max_len);
#pragma omp for schedule(dynamic, 1)
            for (long w = 0; w < (long)n_items * NKV; w++) {
                const att_item *it = &items[w / NKV];
                att_bwd_key_block(&args, &sc, it->b, (int)(w % NKV), it->i0, it->n, dk, dv, NULL);
            }
            att_scratch_free(&sc);
        }
        free(items);
    }
    cpu_blas_single_end(blas_threads);
    free(D);
}

// Nothing per row: the scores of one (row, kv head) unit, rep x cap floats, are a transient allocation of the
// thread that computes it.
size_t cpu_attention_decode_scratch(int cap, int NH, int NKV, int HD) {
    (void)cap, (void)NH, (void)NKV, (void)HD;
    return 0;
}

// One query per (row b, head h) against rows 0..kv_len[b]-1 of cache slot slot[b]. One unit per (row, kv head):
// the group's rep query heads are one (rep, HD) block, so scores and output are two gemm calls.
void cpu_attention_decode(rlc_act *out_, const rlc_act *q_, const rlc_act *k_cache_, const rlc_act *v_cache_, const int *slot,
                          const int *kv_len, int B, int cap, int NH, int NKV, int HD) {
    rlc_f *out = out_;
    const rlc_f *q = q_;
    const rlc_f *k_cache = k_cache_;
    const rlc_f *v_cache = v_cache_;
    RLC_CHECK(NKV > 0 && NH % NKV == 0, "attention_decode: NH=%d not a multiple of NKV=%d", NH, NKV);
    for (int b = 0; b < B; b++)
        RLC_CHECK(kv_len[b] >= 0 && kv_len[b] <= cap && slot[b] >= 0,
                  "attention_decode: row %d has kv_len %d (cap %d), slot %d", b, kv_len[b], cap, slot[b]);
    int rep = NH / NKV, ldk = NKV * HD;
    rlc_f scale = (rlc_f)(1.0 / sqrt((double)HD));
    double macs = 0; // scores and output: 2 kv_len HD per query head
    for (int b = 0; b < B; b++) macs += 2.0 * kv_len[b] * NH * HD;
    int blas_threads = cpu_blas_single_begin();
#pragma omp parallel if (cpu_par_gemm(macs))
    {
        rlc_f *S = rlc_malloc((size_t)rep * (cap ? cap : 1) * sizeof(rlc_f)); // (rep, n)
#pragma omp for schedule(dynamic, 1)
        for (long w = 0; w < (long)B * NKV; w++) {
            int b = (int)(w / NKV), g = (int)(w % NKV), n = kv_len[b];
            size_t qoff = ((size_t)b * NH + (size_t)g * rep) * HD; // rep heads, contiguous (rep, HD)
            if (n == 0) {
                memset(out + qoff, 0, (size_t)rep * HD * sizeof(rlc_f));
                continue;
            }
            const rlc_f *K = k_cache + ((size_t)slot[b] * cap * NKV + g) * HD; // (n, HD) stride ldk
            const rlc_f *Vp = v_cache + ((size_t)slot[b] * cap * NKV + g) * HD;
            cpu_gemm(0, 1, rep, n, HD, scale, q + qoff, HD, K, ldk, 0, S, n);
            for (int r = 0; r < rep; r++) {
                rlc_f *row = S + (size_t)r * n;
                rlc_f mx = cpu_row_max(row, n);
                rlc_f inv = 1 / cpu_exp_sum(row, n, mx);
                for (int j = 0; j < n; j++) row[j] *= inv;
            }
            cpu_gemm(0, 0, rep, HD, n, 1, S, n, Vp, ldk, 0, out + qoff, HD);
        }
        free(S);
    }
    cpu_blas_single_end(blas_threads);
}

void cpu_kv_append(rlc_act *k_cache_, rlc_act *v_cache_, const rlc_act *k_new_, const rlc_act *v_new_, const int *slot,
                   const int *pos, int n, int cap, int NKV, int HD) {
    rlc_f *k_cache = k_cache_;
    rlc_f *v_cache = v_cache_;
    const rlc_f *k_new = k_new_;
    const rlc_f *v_new = v_new_;
    size_t row = (size_t)NKV * HD; // one token's (NKV, HD) block
    for (int i = 0; i < n; i++) {
        RLC_CHECK(slot[i] >= 0 && pos[i] >= 0 && pos[i] < cap, "kv_append: row %d to slot %d position %d (cap %d)", i,
                  slot[i], pos[i], cap);
        size_t dst = ((size_t)slot[i] * cap + (size_t)pos[i]) * row;
        memcpy(k_cache + dst, k_new + (size_t)i * row, row * sizeof(rlc_f));
        memcpy(v_cache + dst, v_new + (size_t)i * row, row * sizeof(rlc_f));
    }
}
