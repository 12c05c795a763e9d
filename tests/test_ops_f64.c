// tests/test_ops_f64.c: gradient checks of the CPU op table in double precision (rlc_f = double). Every op with
// a backward is checked against central finite differences of a random linear functional of its outputs
// (max |analytic - numeric| <= 1e-6 * max |numeric| per tensor); accumulating backwards start from a random
// non-zero gradient to check they add. Also: adamw_update against the scalar formula, attention_forward
// against a naive full-softmax reference, attention_decode against attention_forward rows.
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rlc/ops.h"
#include "test_util.h"

#ifndef RLC_F64
#error "test_ops_f64.c must be built against rlc_core_f64"
#endif

static const rlc_ops *ops;
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static double urand(void) { // uniform in [-1, 1)
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}
static double *rand_vec(size_t n, double scale) {
    double *x = malloc((n ? n : 1) * sizeof(double));
    for (size_t i = 0; i < n; i++) x[i] = scale * urand();
    return x;
}
static double *copy_vec(const double *x, size_t n) {
    double *y = malloc((n ? n : 1) * sizeof(double));
    memcpy(y, x, n * sizeof(double));
    return y;
}
static double dot(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

// Central differences of loss(ctx) with respect to x (n), compared with grad at up to max_checks entries
// (all of them when n is small, else an evenly spread pseudo-random subset).
typedef double (*loss_fn)(void *ctx);
static void fd_check(const char *what, loss_fn loss, void *ctx, double *x, size_t n, const double *grad,
                     size_t max_checks) {
    const double h = 1e-5;
    double max_diff = 0, max_ref = 0;
    size_t count = n < max_checks ? n : max_checks;
    // thousands of tiny forward calls: one thread, or OpenMP barriers dominate on a loaded machine (the
    // analytic gradients were computed with the default thread count)
    int saved_threads = omp_get_max_threads();
    omp_set_num_threads(1);
    for (size_t c = 0; c < count; c++) {
        size_t i = count == n ? c : (size_t)((c + 0.5 * (urand() + 1)) * n / count) % n;
        double save = x[i];
        x[i] = save + h;
        double lp = loss(ctx);
        x[i] = save - h;
        double lm = loss(ctx);
        x[i] = save;
        double num = (lp - lm) / (2 * h);
        double d = fabs(num - grad[i]);
        if (d > max_diff) max_diff = d;
        if (fabs(num) > max_ref) max_ref = fabs(num);
    }
    omp_set_num_threads(saved_threads);
    printf("  %-28s %6zu checked  max|num|=%.3e  max|diff|=%.3e  rel=%.2e\n", what, count, max_ref, max_diff,
           max_ref > 0 ? max_diff / max_ref : 0.0);
    CHECK(max_ref > 0, "%s: numeric gradient is identically zero", what);
    CHECK(max_diff <= 1e-6 * max_ref, "%s: gradient mismatch rel %.3e", what, max_diff / max_ref);
}

// analytic = (accumulated - prior): checks the backward adds into its output
static double *grad_minus_prior(const double *acc, const double *prior, size_t n) {
    double *g = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) g[i] = acc[i] - prior[i];
    return g;
}

// ---------------- matmul ----------------
typedef struct {
    int T, C, OC;
    double *inp, *w, *bias, *r, *out;
} mm_ctx;
static double mm_loss(void *p) {
    mm_ctx *c = p;
    ops->matmul_forward(c->out, c->inp, c->w, c->bias, c->T, c->C, c->OC);
    return dot(c->out, c->r, (size_t)c->T * c->OC);
}
// shapes: small; and T = 4500 tokens, which makes dw = dout^T inp a long-K product split into K chunks
static void test_matmul(int T, int C, int OC) {
    mm_ctx c = {.T = T, .C = C, .OC = OC};
    size_t ni = (size_t)c.T * c.C, nw = (size_t)c.OC * c.C, no = (size_t)c.T * c.OC;
    c.inp = rand_vec(ni, 1), c.w = rand_vec(nw, 1), c.bias = rand_vec(c.OC, 1), c.r = rand_vec(no, 1);
    c.out = rand_vec(no, 1);
    double *pi = rand_vec(ni, 1), *pw = rand_vec(nw, 1), *pb = rand_vec(c.OC, 1);
    double *di = copy_vec(pi, ni), *dw = copy_vec(pw, nw), *db = copy_vec(pb, c.OC);
    ops->matmul_backward(di, dw, db, c.r, c.inp, c.w, c.T, c.C, c.OC);
    double *gi = grad_minus_prior(di, pi, ni), *gw = grad_minus_prior(dw, pw, nw), *gb = grad_minus_prior(db, pb, c.OC);
    fd_check("matmul dinp", mm_loss, &c, c.inp, ni, gi, 2000);
    fd_check("matmul dw", mm_loss, &c, c.w, nw, gw, 2000);
    fd_check("matmul dbias", mm_loss, &c, c.bias, c.OC, gb, 2000);
    // NULL outputs are skipped
    ops->matmul_backward(NULL, NULL, db, c.r, c.inp, c.w, c.T, c.C, c.OC);
    double max_d = 0;
    for (int o = 0; o < c.OC; o++) max_d = fmax(max_d, fabs(db[o] - pb[o] - 2 * gb[o]));
    CHECK(max_d < 1e-12, "matmul dbias accumulates twice: diff %g", max_d);
    // no bias
    ops->matmul_forward(c.out, c.inp, c.w, NULL, c.T, c.C, c.OC);
    double ref = 0;
    for (int k = 0; k < c.C; k++) ref += c.inp[3 * c.C + k] * c.w[4 * c.C + k];
    CHECK_CLOSE(c.out[3 * c.OC + 4], ref, 1e-12, 1e-12, "matmul without bias");
    free(c.inp), free(c.w), free(c.bias), free(c.r), free(c.out), free(pi), free(pw), free(pb), free(di), free(dw);
    free(db), free(gi), free(gw), free(gb);
}

// ---------------- rmsnorm ----------------
typedef struct {
    int T, C;
    double *inp, *weight, *r, *out, *rstd;
} rn_ctx;
static double rn_loss(void *p) {
    rn_ctx *c = p;
    ops->rmsnorm_forward(c->out, c->rstd, c->inp, c->weight, 1e-5f, c->T, c->C);
    return dot(c->out, c->r, (size_t)c->T * c->C);
}
static void test_rmsnorm(void) {
    rn_ctx c = {.T = 13, .C = 29};
    size_t n = (size_t)c.T * c.C;
    c.inp = rand_vec(n, 1), c.weight = rand_vec(c.C, 1), c.r = rand_vec(n, 1), c.out = rand_vec(n, 1);
    c.rstd = rand_vec(c.T, 1);
    rn_loss(&c);
    double *pi = rand_vec(n, 1), *pw = rand_vec(c.C, 1);
    double *di = copy_vec(pi, n), *dw = copy_vec(pw, c.C);
    ops->rmsnorm_backward(di, dw, c.r, c.inp, c.weight, c.rstd, c.T, c.C);
    double *gi = grad_minus_prior(di, pi, n), *gw = grad_minus_prior(dw, pw, c.C);
    fd_check("rmsnorm dinp", rn_loss, &c, c.inp, n, gi, 2000);
    fd_check("rmsnorm dweight", rn_loss, &c, c.weight, c.C, gw, 2000);
    double ss = 0;
    for (int i = 0; i < c.C; i++) ss += c.inp[2 * c.C + i] * c.inp[2 * c.C + i];
    CHECK_CLOSE(c.rstd[2], 1.0 / sqrt(ss / c.C + (double)1e-5f), 0, 1e-12, "rmsnorm rstd");
    free(c.inp), free(c.weight), free(c.r), free(c.out), free(c.rstd), free(pi), free(pw), free(di), free(dw);
    free(gi), free(gw);
}

// ---------------- rope ----------------
typedef struct {
    int T, H, HD;
    int *pos;
    double *x, *r, *y;
} rope_ctx;
static double rope_loss(void *p) {
    rope_ctx *c = p;
    size_t n = (size_t)c->T * c->H * c->HD;
    memcpy(c->y, c->x, n * sizeof(double));
    ops->rope_forward(c->y, c->pos, c->T, c->H, c->HD, 10000.0f);
    return dot(c->y, c->r, n);
}
static void test_rope(void) {
    rope_ctx c = {.T = 9, .H = 3, .HD = 16};
    int pos[9] = {0, 1, 2, 7, 100, 5000, 3, 0, 40000};
    c.pos = pos;
    size_t n = (size_t)c.T * c.H * c.HD;
    c.x = rand_vec(n, 1), c.r = rand_vec(n, 1), c.y = rand_vec(n, 1);
    double *g = copy_vec(c.r, n);
    ops->rope_backward(g, c.pos, c.T, c.H, c.HD, 10000.0f);
    fd_check("rope dx", rope_loss, &c, c.x, n, g, 2000);
    // direct formula at one element: token 4 (pos 100), head 1, pair i = 3
    rope_loss(&c);
    int t = 4, h = 1, i = 3, half = c.HD / 2;
    double a = 100.0 * pow(10000.0, -2.0 * i / c.HD);
    const double *x = c.x + ((size_t)t * c.H + h) * c.HD;
    const double *y = c.y + ((size_t)t * c.H + h) * c.HD;
    CHECK_CLOSE(y[i], x[i] * cos(a) - x[i + half] * sin(a), 1e-12, 1e-12, "rope first half");
    CHECK_CLOSE(y[i + half], x[i + half] * cos(a) + x[i] * sin(a), 1e-12, 1e-12, "rope second half");
    free(c.x), free(c.r), free(c.y), free(g);
}

// ---------------- attention ----------------
typedef struct {
    int B, T, NH, NKV, HD;
    const int *cu;
    double *q, *k, *v, *r, *out, *lse;
} att_ctx;
static double att_loss(void *p) {
    att_ctx *c = p;
    ops->attention_forward(c->out, c->lse, c->q, c->k, c->v, c->cu, c->B, c->T, c->NH, c->NKV, c->HD);
    return dot(c->out, c->r, (size_t)c->T * c->NH * c->HD);
}

// naive reference: full softmax over keys 0..i of each sequence
static void att_naive(double *out, double *lse, const double *q, const double *k, const double *v, const int *cu,
                      int B, int NH, int NKV, int HD) {
    int rep = NH / NKV;
    for (int b = 0; b < B; b++) {
        int s0 = cu[b], L = cu[b + 1] - s0;
        double *sc = malloc((size_t)L * sizeof(double));
        for (int h = 0; h < NH; h++) {
            int g = h / rep;
            for (int i = 0; i < L; i++) {
                const double *qi = q + ((size_t)(s0 + i) * NH + h) * HD;
                double mx = -INFINITY;
                for (int j = 0; j <= i; j++) {
                    const double *kj = k + ((size_t)(s0 + j) * NKV + g) * HD;
                    sc[j] = dot(qi, kj, HD) / sqrt((double)HD);
                    mx = fmax(mx, sc[j]);
                }
                double sum = 0;
                for (int j = 0; j <= i; j++) sum += exp(sc[j] - mx);
                double *o = out + ((size_t)(s0 + i) * NH + h) * HD;
                for (int d = 0; d < HD; d++) {
                    double acc = 0;
                    for (int j = 0; j <= i; j++) acc += exp(sc[j] - mx) / sum * v[((size_t)(s0 + j) * NKV + g) * HD + d];
                    o[d] = acc;
                }
                lse[(size_t)(s0 + i) * NH + h] = mx + log(sum);
            }
        }
        free(sc);
    }
}

static void test_attention(const int *cu, int B, int NH, int NKV, int HD, size_t max_checks) {
    printf("  attention: %d sequences, T %d, NH %d, NKV %d, HD %d\n", B, cu[B], NH, NKV, HD);
    att_ctx c = {.B = B, .T = cu[B], .NH = NH, .NKV = NKV, .HD = HD, .cu = cu};
    size_t nq = (size_t)c.T * c.NH * c.HD, nk = (size_t)c.T * c.NKV * c.HD;
    c.q = rand_vec(nq, 1.5), c.k = rand_vec(nk, 1.5), c.v = rand_vec(nk, 1), c.r = rand_vec(nq, 1);
    c.out = rand_vec(nq, 1), c.lse = rand_vec((size_t)c.T * c.NH, 1);
    att_loss(&c);

    double *ref = rand_vec(nq, 1), *ref_lse = rand_vec((size_t)c.T * c.NH, 1);
    att_naive(ref, ref_lse, c.q, c.k, c.v, cu, c.B, c.NH, c.NKV, c.HD);
    double md = 0, ml = 0;
    for (size_t i = 0; i < nq; i++) md = fmax(md, fabs(ref[i] - c.out[i]));
    for (size_t i = 0; i < (size_t)c.T * c.NH; i++) ml = fmax(ml, fabs(ref_lse[i] - c.lse[i]));
    CHECK(md < 1e-12, "attention forward vs naive: max diff %g", md);
    CHECK(ml < 1e-12, "attention lse vs naive: max diff %g", ml);

    // garbage in dq/dk/dv must be overwritten
    double *dq = rand_vec(nq, 100), *dk = rand_vec(nk, 100), *dv = rand_vec(nk, 100);
    ops->attention_backward(dq, dk, dv, c.r, c.q, c.k, c.v, c.out, c.lse, cu, c.B, c.T, c.NH, c.NKV, c.HD);
    fd_check("attention dq", att_loss, &c, c.q, nq, dq, max_checks);
    fd_check("attention dk", att_loss, &c, c.k, nk, dk, max_checks);
    fd_check("attention dv", att_loss, &c, c.v, nk, dv, max_checks);

    att_loss(&c); // fd_check left out/lse from a perturbed input
    // decode: every row t of sequence b reads slot b with kv_len = t - s0 + 1 (prefill rows share a slot)
    int cap = 0, n_slots = c.B;
    for (int b = 0; b < c.B; b++) cap = cu[b + 1] - cu[b] > cap ? cu[b + 1] - cu[b] : cap;
    double *kc = rand_vec((size_t)n_slots * cap * c.NKV * c.HD, 50), *vc = rand_vec((size_t)n_slots * cap * c.NKV * c.HD, 50);
    int *slot = malloc((size_t)c.T * sizeof(int)), *kv_len = malloc((size_t)c.T * sizeof(int));
    for (int b = 0; b < c.B; b++) {
        int s0 = cu[b], L = cu[b + 1] - s0;
        // slots in reverse order so slot != sequence index
        int sl = n_slots - 1 - b;
        for (int j = 0; j < L; j++) {
            memcpy(kc + ((size_t)sl * cap + j) * c.NKV * c.HD, c.k + (size_t)(s0 + j) * c.NKV * c.HD,
                   (size_t)c.NKV * c.HD * sizeof(double));
            memcpy(vc + ((size_t)sl * cap + j) * c.NKV * c.HD, c.v + (size_t)(s0 + j) * c.NKV * c.HD,
                   (size_t)c.NKV * c.HD * sizeof(double));
            slot[s0 + j] = sl;
            kv_len[s0 + j] = j + 1;
        }
    }
    double *dec = rand_vec(nq, 1);
    ops->attention_decode(dec, c.q, kc, vc, slot, kv_len, c.T, cap, c.NH, c.NKV, c.HD);
    md = 0;
    for (size_t i = 0; i < nq; i++) md = fmax(md, fabs(dec[i] - c.out[i]));
    CHECK(md < 1e-12, "attention_decode vs attention_forward: max diff %g", md);
    // the last row of each sequence alone (one decode step per sequence)
    int *lslot = malloc(c.B * sizeof(int)), *llen = malloc(c.B * sizeof(int)), *lrow = malloc(c.B * sizeof(int)), nb = 0;
    double *lq = malloc((size_t)c.B * c.NH * c.HD * sizeof(double)), *lo = malloc((size_t)c.B * c.NH * c.HD * sizeof(double));
    for (int b = 0; b < c.B; b++) {
        if (cu[b + 1] == cu[b]) continue;
        int t = cu[b + 1] - 1;
        lslot[nb] = slot[t], llen[nb] = kv_len[t], lrow[nb] = t;
        memcpy(lq + (size_t)nb * c.NH * c.HD, c.q + (size_t)t * c.NH * c.HD, (size_t)c.NH * c.HD * sizeof(double));
        nb++;
    }
    ops->attention_decode(lo, lq, kc, vc, lslot, llen, nb, cap, c.NH, c.NKV, c.HD);
    md = 0;
    for (int b = 0; b < nb; b++)
        for (int i = 0; i < c.NH * c.HD; i++)
            md = fmax(md, fabs(lo[(size_t)b * c.NH * c.HD + i] - c.out[(size_t)lrow[b] * c.NH * c.HD + i]));
    CHECK(md < 1e-12, "attention_decode last rows vs forward: max diff %g", md);

    free(c.q), free(c.k), free(c.v), free(c.r), free(c.out), free(c.lse), free(ref), free(ref_lse), free(dq);
    free(dk), free(dv), free(kc), free(vc), free(slot), free(kv_len), free(dec), free(lq), free(lo), free(lslot);
    free(llen), free(lrow);
}

// ---------------- swiglu ----------------
typedef struct {
    size_t n;
    double *gate, *up, *r, *out;
} sw_ctx;
static double sw_loss(void *p) {
    sw_ctx *c = p;
    ops->swiglu_forward(c->out, c->gate, c->up, c->n);
    return dot(c->out, c->r, c->n);
}
static void test_swiglu(void) {
    sw_ctx c = {.n = 501};
    c.gate = rand_vec(c.n, 6), c.up = rand_vec(c.n, 2), c.r = rand_vec(c.n, 1), c.out = rand_vec(c.n, 1);
    double *dg = rand_vec(c.n, 100), *du = rand_vec(c.n, 100);
    ops->swiglu_backward(dg, du, c.r, c.gate, c.up, c.n);
    fd_check("swiglu dgate", sw_loss, &c, c.gate, c.n, dg, 2000);
    fd_check("swiglu dup", sw_loss, &c, c.up, c.n, du, 2000);
    sw_loss(&c);
    CHECK_CLOSE(c.out[7], c.gate[7] / (1 + exp(-c.gate[7])) * c.up[7], 1e-14, 1e-12, "swiglu value");
    free(c.gate), free(c.up), free(c.r), free(c.out), free(dg), free(du);
}

// ---------------- embedding ----------------
typedef struct {
    int T, C;
    const int *tok;
    double *wte, *r, *out;
} emb_ctx;
static double emb_loss(void *p) {
    emb_ctx *c = p;
    ops->embedding_forward(c->out, c->tok, c->wte, c->T, c->C);
    return dot(c->out, c->r, (size_t)c->T * c->C);
}
static void test_embedding(void) {
    static const int tok[] = {3, 0, 3, 7, 9, 3, 1, 9, 0, 5, 5};
    int V = 11;
    emb_ctx c = {.T = 11, .C = 37, .tok = tok};
    size_t nw = (size_t)V * c.C, no = (size_t)c.T * c.C;
    c.wte = rand_vec(nw, 1), c.r = rand_vec(no, 1), c.out = rand_vec(no, 1);
    double *pw = rand_vec(nw, 1), *dw = copy_vec(pw, nw);
    ops->embedding_backward(dw, c.r, tok, c.T, c.C);
    double *g = grad_minus_prior(dw, pw, nw);
    fd_check("embedding dwte", emb_loss, &c, c.wte, nw, g, 2000);
    free(c.wte), free(c.r), free(c.out), free(pw), free(dw), free(g);
}

// ---------------- logprob ----------------
typedef struct {
    int T, C, V;
    float tau;
    const int *tgt;
    double *hidden, *w, *cl, *ce, *logp, *ent, *lse;
} lp_ctx;
static double lp_loss(void *p) {
    lp_ctx *c = p;
    ops->logprob_forward(c->logp, c->ent, c->lse, c->hidden, c->w, c->tgt, c->T, c->C, c->V, c->tau);
    return dot(c->logp, c->cl, c->T) + dot(c->ent, c->ce, c->T);
}
// naive: full rows in double
static void lp_naive(double *logp, double *ent, const double *hidden, const double *w, const int *tgt, int T, int C,
                     int V, double tau) {
    double *u = malloc((size_t)V * sizeof(double));
    for (int t = 0; t < T; t++) {
        double mx = -INFINITY;
        for (int j = 0; j < V; j++) mx = fmax(mx, u[j] = dot(hidden + (size_t)t * C, w + (size_t)j * C, C) / tau);
        double s = 0;
        for (int j = 0; j < V; j++) s += exp(u[j] - mx);
        double lse = mx + log(s), H = 0;
        for (int j = 0; j < V; j++) H -= exp(u[j] - lse) * (u[j] - lse);
        ent[t] = H;
        logp[t] = tgt[t] >= 0 ? u[tgt[t]] - lse : 0;
    }
    free(u);
}
static void test_logprob(void) {
    // T = 270: three 128-token blocks (forward, dhidden) and two 256-token blocks (dw); V = 2100: not a multiple
    // of any vocabulary chunk (1024 forward, 128 for dw at this V)
    int T = 270, C = 5, V = 2100;
    int *tgt = malloc((size_t)T * sizeof(int));
    for (int t = 0; t < T; t++) tgt[t] = (t % 7 == 3) ? -1 : (int)((urand() + 1) * 0.5 * V) % V;
    tgt[0] = 0, tgt[1] = V - 1, tgt[2] = 2048, tgt[4] = 2047, tgt[5] = 512;
    lp_ctx c = {.T = T, .C = C, .V = V, .tau = 0.7f, .tgt = tgt};
    c.hidden = rand_vec((size_t)T * C, 1.5), c.w = rand_vec((size_t)V * C, 1.5);
    c.cl = rand_vec(T, 1), c.ce = rand_vec(T, 1);
    c.logp = rand_vec(T, 1), c.ent = rand_vec(T, 1), c.lse = rand_vec(T, 1);
    lp_loss(&c);
    double *rl = malloc(T * sizeof(double)), *re = malloc(T * sizeof(double));
    lp_naive(rl, re, c.hidden, c.w, tgt, T, C, V, c.tau);
    double ml = 0, me = 0;
    for (int t = 0; t < T; t++) ml = fmax(ml, fabs(rl[t] - c.logp[t])), me = fmax(me, fabs(re[t] - c.ent[t]));
    CHECK(ml < 1e-11, "logprob forward logp vs naive: %g", ml);
    CHECK(me < 1e-11, "logprob forward entropy vs naive: %g", me);
    CHECK(c.logp[3] == 0, "ignored target gives logp 0 (got %g)", c.logp[3]);

    size_t nh = (size_t)T * C, nw = (size_t)V * C;
    double *ph = rand_vec(nh, 1), *pw = rand_vec(nw, 1), *dh = copy_vec(ph, nh), *dw = copy_vec(pw, nw);
    ops->logprob_backward(dh, dw, c.cl, c.ce, c.hidden, c.w, tgt, c.lse, c.ent, T, C, V, c.tau);
    double *gh = grad_minus_prior(dh, ph, nh), *gw = grad_minus_prior(dw, pw, nw);
    fd_check("logprob dhidden", lp_loss, &c, c.hidden, nh, gh, 300);
    fd_check("logprob dw", lp_loss, &c, c.w, nw, gw, 300);
    // dw rows at chunk edges explicitly
    static const int rows[] = {0, 511, 512, 2047, 2048, 2099};
    double max_d = 0, max_r = 0;
    for (int ri = 0; ri < 6; ri++)
        for (int k = 0; k < C; k++) {
            size_t i = (size_t)rows[ri] * C + k;
            double save = c.w[i];
            c.w[i] = save + 1e-5;
            double lp = lp_loss(&c);
            c.w[i] = save - 1e-5;
            double lm = lp_loss(&c);
            c.w[i] = save;
            double num = (lp - lm) / 2e-5;
            max_d = fmax(max_d, fabs(num - gw[i]));
            max_r = fmax(max_r, fabs(num));
        }
    CHECK(max_r > 0 && max_d <= 1e-6 * max_r, "logprob dw at chunk edges: rel %g", max_d / max_r);
    // dw NULL skips dw and gives the same dhidden (forward rerun: fd_check left lse/entropy perturbed)
    lp_loss(&c);
    double *dh1 = copy_vec(ph, nh), *dh2 = copy_vec(ph, nh), *dw1 = copy_vec(pw, nw);
    ops->logprob_backward(dh1, dw1, c.cl, c.ce, c.hidden, c.w, tgt, c.lse, c.ent, T, C, V, c.tau);
    ops->logprob_backward(dh2, NULL, c.cl, c.ce, c.hidden, c.w, tgt, c.lse, c.ent, T, C, V, c.tau);
    double md = 0;
    for (size_t i = 0; i < nh; i++) md = fmax(md, fabs(dh2[i] - dh1[i]));
    CHECK(md == 0, "logprob backward with dw NULL changes dhidden: %g", md);
    free(tgt), free(c.hidden), free(c.w), free(c.cl), free(c.ce), free(c.logp), free(c.ent), free(c.lse), free(rl);
    free(re), free(ph), free(pw), free(dh), free(dw), free(gh), free(gw), free(dh1), free(dh2), free(dw1);
}

// ---------------- adamw ----------------
static void test_adamw(void) {
    size_t n = 1000;
    double *p = rand_vec(n, 1), *g = rand_vec(n, 1), *m = rand_vec(n, 0.1), *v = rand_vec(n, 0.1);
    for (size_t i = 0; i < n; i++) v[i] = fabs(v[i]);
    double *p0 = copy_vec(p, n), *m0 = copy_vec(m, n), *v0 = copy_vec(v, n);
    float lr = 3e-3f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f, gs = 0.5f;
    int t = 7;
    ops->adamw_update(p, g, m, v, n, lr, b1, b2, eps, wd, gs, t);
    double mp = 0, mm = 0, mv = 0;
    for (size_t i = 0; i < n; i++) {
        double gi = (double)gs * g[i];
        double mi = (double)b1 * m0[i] + (1 - (double)b1) * gi;
        double vi = (double)b2 * v0[i] + (1 - (double)b2) * gi * gi;
        double mhat = mi / (1 - pow(b1, t)), vhat = vi / (1 - pow(b2, t));
        double pi = p0[i] - (double)lr * (mhat / (sqrt(vhat) + (double)eps) + (double)wd * p0[i]);
        mp = fmax(mp, fabs(pi - p[i])), mm = fmax(mm, fabs(mi - m[i])), mv = fmax(mv, fabs(vi - v[i]));
    }
    CHECK(mp < 1e-13 && mm < 1e-14 && mv < 1e-14, "adamw vs scalar formula: p %g m %g v %g", mp, mm, mv);
    free(p), free(g), free(m), free(v), free(p0), free(m0), free(v0);
}

// ---------------- small ops ----------------
static void test_small(void) {
    size_t n = 100003;
    double *a = rand_vec(n, 1), *b = rand_vec(n, 1), *o = rand_vec(n, 1);
    ops->add(o, a, b, n);
    double md = 0, ss = 0;
    for (size_t i = 0; i < n; i++) md = fmax(md, fabs(o[i] - (a[i] + b[i]))), ss += a[i] * a[i];
    CHECK(md == 0, "add: %g", md);
    CHECK_CLOSE(ops->sumsq(a, n), ss, 0, 1e-12, "sumsq");
    ops->scale(a, 0.25, n);
    CHECK_CLOSE(a[17], 0.25 * (o[17] - b[17]), 1e-15, 1e-14, "scale");
    double *z = ops->alloc(64 * sizeof(double));
    int nz = 0;
    for (int i = 0; i < 64; i++) nz += z[i] != 0;
    CHECK(nz == 0, "alloc is zero-filled");
    ops->copy(z, a, 64 * sizeof(double));
    CHECK(z[63] == a[63], "copy");
    ops->zero(z, 64 * sizeof(double));
    CHECK(z[63] == 0, "zero");
    ops->free(z);
    free(a), free(b), free(o);
}

int main(void) {
    ops = rlc_ops_cpu();
    CHECK(strcmp(ops->name, "cpu") == 0, "backend name %s", ops->name);
    test_small();
    test_matmul(37, 19, 23);
    test_matmul(4500, 7, 5);
    test_rmsnorm();
    test_rope();
    // lengths 1, 5, 17, 70 (70: two query/key blocks of 64, the second partial) and an empty sequence: few,
    // uneven sequences take the two-pass backward
    static const int cu1[] = {0, 1, 6, 23, 23, 93};
    test_attention(cu1, 5, 4, 2, 8, 1500);
    // many similar sequences (NKV * sum L^2 >= 16 max L^2) take the fused backward
    static const int cu2[] = {0, 70, 71, 138, 204, 274, 279, 348};
    test_attention(cu2, 7, 8, 4, 8, 600);
    test_swiglu();
    test_embedding();
    test_logprob();
    test_adamw();
    return test_finish("test_ops_f64");
}
