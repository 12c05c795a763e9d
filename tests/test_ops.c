// tests/test_ops.c: the CPU op table in the engine's precision (rlc_f = float). The fused log-prob/entropy op
// against the spec's hand-checked vectors (losses.md section 8), its shift invariance, float kernels against
// naive double-precision references on a packed batch (T ~ 300), and bitwise reproducibility across thread
// counts of the ops whose reductions could depend on scheduling.
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rlc/ops.h"
#include "test_util.h"

#ifdef RLC_F64
#error "test_ops.c is the float build"
#endif

static const rlc_ops *ops;
static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static double urand(void) { // uniform in [-1, 1)
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}
static float *rand_f(size_t n, double scale) {
    float *x = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = (float)(scale * urand());
    return x;
}
static float *zeros_f(size_t n) { return calloc(n ? n : 1, sizeof(float)); }
static double *to_d(const float *x, size_t n) {
    double *y = malloc((n ? n : 1) * sizeof(double));
    for (size_t i = 0; i < n; i++) y[i] = x[i];
    return y;
}
static double dotd(const double *a, const double *b, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

// max |got - ref| <= rtol * max |ref| (+ a tiny floor for all-zero references)
static void check_tensor(const char *what, const float *got, const double *ref, size_t n, double rtol) {
    double md = 0, mr = 0;
    int finite = 1;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i])) finite = 0;
        md = fmax(md, fabs(got[i] - ref[i]));
        mr = fmax(mr, fabs(ref[i]));
    }
    printf("  %-26s max|ref|=%.3e max|diff|=%.3e rel=%.2e\n", what, mr, md, mr > 0 ? md / mr : md);
    CHECK(finite && md <= rtol * mr + 1e-30, "%s: float vs double reference rel %.3e", what, mr > 0 ? md / mr : md);
}

// ---------------- spec vectors ----------------
// C = 1, hidden = [1], w (V,1) = the logits: z = w and dL/dz = dw.
static void spec_case(const float *z, int V, int y, float tau, double logp_ref, double H_ref, const double *dlogp_ref,
                      const double *dH_ref, const char *what) {
    float hidden[1] = {1}, logp, H, lse;
    int tgt[1] = {y};
    ops->logprob_forward(&logp, &H, &lse, hidden, z, tgt, 1, 1, V, tau);
    char name[128];
    snprintf(name, sizeof name, "%s logp", what);
    CHECK_CLOSE(logp, logp_ref, 2e-6, 1e-5, name);
    snprintf(name, sizeof name, "%s H", what);
    CHECK_CLOSE(H, H_ref, 2e-6, 1e-5, name);
    if (!dlogp_ref) return;
    float one = 1, zero = 0, dh[1];
    float *dw = zeros_f(V);
    dh[0] = 0;
    ops->logprob_backward(dh, dw, &one, &zero, hidden, z, tgt, &lse, &H, 1, 1, V, tau);
    for (int j = 0; j < V; j++) {
        snprintf(name, sizeof name, "%s dlogp/dz[%d]", what, j);
        CHECK_CLOSE(dw[j], dlogp_ref[j], 2e-6, 1e-5, name);
    }
    // dhidden = sum_j dz_j w_j
    double s = 0;
    for (int j = 0; j < V; j++) s += dlogp_ref[j] * z[j];
    snprintf(name, sizeof name, "%s dlogp/dhidden", what);
    CHECK_CLOSE(dh[0], s, 2e-6, 1e-5, name);
    memset(dw, 0, V * sizeof(float));
    ops->logprob_backward(NULL, dw, &zero, &one, hidden, z, tgt, &lse, &H, 1, 1, V, tau);
    for (int j = 0; j < V; j++) {
        snprintf(name, sizeof name, "%s dH/dz[%d]", what, j);
        CHECK_CLOSE(dw[j], dH_ref[j], 2e-6, 1e-5, name);
    }
    free(dw);
}

static void test_spec_vectors(void) {
    const float z[4] = {1, 2, 0.5f, -1};
    const double dl1[4] = {-0.2242078, 0.3905400, -0.1359889, -0.0303432};
    const double dh1[4] = {0.1077944, -0.3164444, 0.1333751, 0.0752748};
    const double dl7[4] = {-0.2497630, 0.3863769, -0.1222694, -0.0143445};
    const double dh7[4] = {0.2378670, -0.4962938, 0.2037811, 0.0546457};
    spec_case(z, 4, 1, 1.0f, -0.4951819, 1.0144028, dl1, dh1, "spec tau 1");
    spec_case(z, 4, 1, 0.7f, -0.3153464, 0.7915471, dl7, dh7, "spec tau 0.7");
    const float zu[4] = {0, 0, 0, 0};
    spec_case(zu, 4, 2, 1.0f, -log(4.0), log(4.0), NULL, NULL, "uniform");
    const float zp[4] = {logf(0.7f), logf(0.1f), logf(0.1f), logf(0.1f)};
    spec_case(zp, 4, 0, 1.0f, log(0.7), 0.9404480, NULL, NULL, "p=[.7,.1,.1,.1]");
    // ignored target: logp 0, entropy still computed
    float hidden[1] = {1}, logp = 5, H, lse;
    int tgt[1] = {-1};
    ops->logprob_forward(&logp, &H, &lse, hidden, z, tgt, 1, 1, 4, 1.0f);
    CHECK(logp == 0, "ignored target: logp %g", logp);
    CHECK_CLOSE(H, 1.0144028, 2e-6, 1e-5, "ignored target: H");
}

// Adding a constant to every logit of a row changes nothing: hidden gets a constant extra column whose
// weight column is k; logp, H and dL/dhidden[:, :C] are independent of k, dL/dhidden[:, C] = k sum_j dz_j = 0.
static void test_shift_invariance(void) {
    int T = 5, C = 7, C1 = C + 1, V = 3001;
    float tau = 0.8f;
    float *h = rand_f((size_t)T * C1, 1), *w = rand_f((size_t)V * C1, 1);
    for (int t = 0; t < T; t++) h[(size_t)t * C1 + C] = 1;
    int tgt[5] = {0, 2999, 1234, -1, 3000};
    float cl[5] = {1, -0.5f, 2, 1, 0.3f}, ce[5] = {0.2f, 1, -1, 0.7f, 0};
    float lp[2][5], ent[2][5], lse[2][5];
    float *dh[2] = {zeros_f((size_t)T * C1), zeros_f((size_t)T * C1)};
    float *dw[2] = {zeros_f((size_t)V * C1), zeros_f((size_t)V * C1)};
    for (int s = 0; s < 2; s++) {
        for (int j = 0; j < V; j++) w[(size_t)j * C1 + C] = s ? 6.0f : 0.0f;
        ops->logprob_forward(lp[s], ent[s], lse[s], h, w, tgt, T, C1, V, tau);
        ops->logprob_backward(dh[s], dw[s], cl, ce, h, w, tgt, lse[s], ent[s], T, C1, V, tau);
    }
    for (int t = 0; t < T; t++) {
        CHECK_CLOSE(lp[1][t], lp[0][t], 1e-5, 1e-5, "shift: logp");
        CHECK_CLOSE(ent[1][t], ent[0][t], 1e-5, 1e-5, "shift: entropy");
        CHECK_CLOSE(lse[1][t], lse[0][t] + 6.0 / tau, 1e-5, 1e-5, "shift: lse moves by k/tau");
        for (int c = 0; c < C; c++) CHECK_CLOSE(dh[1][(size_t)t * C1 + c], dh[0][(size_t)t * C1 + c], 1e-5, 1e-4, "shift: dhidden");
        CHECK_CLOSE(dh[1][(size_t)t * C1 + C], 0, 1e-4, 0, "shift: dhidden of the constant column");
    }
    double md = 0, mr = 0;
    for (int j = 0; j < V; j++)
        for (int c = 0; c < C; c++)
            md = fmax(md, fabs(dw[1][(size_t)j * C1 + c] - dw[0][(size_t)j * C1 + c])), mr = fmax(mr, fabs(dw[0][(size_t)j * C1 + c]));
    CHECK(mr > 0 && md <= 1e-4 * mr, "shift: dw rel diff %g", md / mr);
    CHECK(lp[0][3] == 0, "ignored target logp");
    free(h), free(w), free(dh[0]), free(dh[1]), free(dw[0]), free(dw[1]);
}

// ---------------- float kernels vs double references on a packed batch ----------------
static const int CU[] = {0, 1, 40, 105, 300}; // lengths 1, 39, 65, 195
enum { NB = 4, TT = 300, NH = 4, NKV = 2, HD = 16, CC = 64, OC = 96, VV = 3000, FF = 128 };

static void ref_attention(const int *cu, int nb, double *out, double *dq, double *dk, double *dv, const double *q,
                          const double *k, const double *v, const double *dout) {
    int rep = NH / NKV;
    double sc = 1.0 / sqrt((double)HD);
    memset(dk, 0, sizeof(double) * TT * NKV * HD);
    memset(dv, 0, sizeof(double) * TT * NKV * HD);
    for (int b = 0; b < nb; b++) {
        int s0 = cu[b], L = cu[b + 1] - s0;
        double *P = calloc((size_t)L * L, sizeof(double)), *dS = calloc((size_t)L * L, sizeof(double));
        for (int h = 0; h < NH; h++) {
            int g = h / rep;
#define QP(i) (q + ((size_t)(s0 + (i)) * NH + h) * HD)
#define KP(j) (k + ((size_t)(s0 + (j)) * NKV + g) * HD)
#define VP(j) (v + ((size_t)(s0 + (j)) * NKV + g) * HD)
#define DOP(i) (dout + ((size_t)(s0 + (i)) * NH + h) * HD)
            for (int i = 0; i < L; i++) {
                double mx = -INFINITY, s = 0;
                for (int j = 0; j <= i; j++) mx = fmax(mx, P[i * L + j] = sc * dotd(QP(i), KP(j), HD));
                for (int j = 0; j <= i; j++) s += (P[i * L + j] = exp(P[i * L + j] - mx));
                for (int j = 0; j <= i; j++) P[i * L + j] /= s;
                for (int d = 0; d < HD; d++) {
                    double a = 0;
                    for (int j = 0; j <= i; j++) a += P[i * L + j] * VP(j)[d];
                    out[((size_t)(s0 + i) * NH + h) * HD + d] = a;
                }
                double rs = 0;
                for (int j = 0; j <= i; j++) rs += P[i * L + j] * (dS[i * L + j] = dotd(DOP(i), VP(j), HD));
                for (int j = 0; j <= i; j++) dS[i * L + j] = P[i * L + j] * (dS[i * L + j] - rs);
            }
            for (int i = 0; i < L; i++)
                for (int d = 0; d < HD; d++) {
                    double a = 0;
                    for (int j = 0; j <= i; j++) a += dS[i * L + j] * KP(j)[d];
                    dq[((size_t)(s0 + i) * NH + h) * HD + d] = sc * a;
                }
            for (int j = 0; j < L; j++)
                for (int d = 0; d < HD; d++) {
                    double a = 0, c = 0;
                    for (int i = j; i < L; i++) a += dS[i * L + j] * QP(i)[d], c += P[i * L + j] * DOP(i)[d];
                    dk[((size_t)(s0 + j) * NKV + g) * HD + d] += sc * a;
                    dv[((size_t)(s0 + j) * NKV + g) * HD + d] += c;
                }
#undef QP
#undef KP
#undef VP
#undef DOP
        }
        free(P), free(dS);
    }
}

static void ref_logprob(double *logp, double *ent, double *dh, double *dw, const double *h, const double *w,
                        const int *tgt, const double *cl, const double *ce, double tau) {
    double *u = malloc(VV * sizeof(double));
    memset(dh, 0, sizeof(double) * TT * CC);
    memset(dw, 0, sizeof(double) * VV * CC);
    for (int t = 0; t < TT; t++) {
        double mx = -INFINITY, s = 0, H = 0;
        for (int j = 0; j < VV; j++) mx = fmax(mx, u[j] = dotd(h + (size_t)t * CC, w + (size_t)j * CC, CC) / tau);
        for (int j = 0; j < VV; j++) s += exp(u[j] - mx);
        double lse = mx + log(s);
        for (int j = 0; j < VV; j++) H -= exp(u[j] - lse) * (u[j] - lse);
        logp[t] = tgt[t] >= 0 ? u[tgt[t]] - lse : 0;
        ent[t] = H;
        double c = tgt[t] >= 0 ? cl[t] : 0;
        for (int j = 0; j < VV; j++) {
            double p = exp(u[j] - lse);
            double dz = (c * ((j == tgt[t]) - p) - ce[t] * p * (u[j] - lse + H)) / tau;
            for (int d = 0; d < CC; d++) {
                dh[(size_t)t * CC + d] += dz * w[(size_t)j * CC + d];
                dw[(size_t)j * CC + d] += dz * h[(size_t)t * CC + d];
            }
        }
    }
    free(u);
}

static void check_attention(const int *cu, int B, const char *tag) {
    const size_t nQ = (size_t)TT * NH * HD, nK = (size_t)TT * NKV * HD;
    char name[96];
    {
        float *q = rand_f(nQ, 2), *k = rand_f(nK, 2), *v = rand_f(nK, 1), *o = zeros_f(nQ), *lse = zeros_f((size_t)TT * NH);
        float *dout = rand_f(nQ, 1), *dq = zeros_f(nQ), *dk = zeros_f(nK), *dv = zeros_f(nK);
        ops->attention_forward(o, lse, q, k, v, cu, B, TT, NH, NKV, HD);
        ops->attention_backward(dq, dk, dv, dout, q, k, v, o, lse, cu, B, TT, NH, NKV, HD);
        double *qd = to_d(q, nQ), *kd = to_d(k, nK), *vd = to_d(v, nK), *dod = to_d(dout, nQ);
        double *ro = malloc(8 * nQ), *rdq = malloc(8 * nQ), *rdk = malloc(8 * nK), *rdv = malloc(8 * nK);
        ref_attention(cu, B, ro, rdq, rdk, rdv, qd, kd, vd, dod);
        snprintf(name, sizeof name, "%s out", tag);
        check_tensor(name, o, ro, nQ, 1e-5);
        // decode: row t of sequence b reads slot B-1-b (the cache holds the sequence's K/V) with kv_len t - s0 + 1
        int cap = 0;
        for (int b = 0; b < B; b++) cap = cu[b + 1] - cu[b] > cap ? cu[b + 1] - cu[b] : cap;
        size_t se = (size_t)NKV * HD;
        float *kc = zeros_f((size_t)B * cap * se), *vc = zeros_f((size_t)B * cap * se), *dec = zeros_f(nQ);
        int *slot = malloc(TT * sizeof(int)), *kv_len = malloc(TT * sizeof(int));
        for (int b = 0; b < B; b++)
            for (int j = 0; j < cu[b + 1] - cu[b]; j++) {
                memcpy(kc + ((size_t)(B - 1 - b) * cap + j) * se, k + (size_t)(cu[b] + j) * se, se * sizeof(float));
                memcpy(vc + ((size_t)(B - 1 - b) * cap + j) * se, v + (size_t)(cu[b] + j) * se, se * sizeof(float));
                slot[cu[b] + j] = B - 1 - b, kv_len[cu[b] + j] = j + 1;
            }
        ops->attention_decode(dec, q, kc, vc, slot, kv_len, TT, cap, NH, NKV, HD);
        snprintf(name, sizeof name, "%s decode", tag);
        check_tensor(name, dec, ro, nQ, 1e-5);
        free(kc), free(vc), free(dec), free(slot), free(kv_len);
        snprintf(name, sizeof name, "%s dq", tag);
        check_tensor(name, dq, rdq, nQ, 1e-4);
        snprintf(name, sizeof name, "%s dk", tag);
        check_tensor(name, dk, rdk, nK, 1e-4);
        snprintf(name, sizeof name, "%s dv", tag);
        check_tensor(name, dv, rdv, nK, 1e-4);
        free(q), free(k), free(v), free(o), free(lse), free(dout), free(dq), free(dk), free(dv), free(qd), free(kd);
        free(vd), free(dod), free(ro), free(rdq), free(rdk), free(rdv);
    }
}

static void test_vs_double(void) {
    const size_t nTC = (size_t)TT * CC, nQ = (size_t)TT * NH * HD;
    // matmul
    {
        float *x = rand_f(nTC, 1), *w = rand_f((size_t)OC * CC, 0.2), *b = rand_f(OC, 1), *o = zeros_f((size_t)TT * OC);
        float *dout = rand_f((size_t)TT * OC, 1), *dx = zeros_f(nTC), *dw = zeros_f((size_t)OC * CC), *db = zeros_f(OC);
        ops->matmul_forward(o, x, w, b, TT, CC, OC);
        ops->matmul_backward(dx, dw, db, dout, x, w, TT, CC, OC);
        double *ro = malloc(sizeof(double) * TT * OC), *rdx = calloc(nTC, 8), *rdw = calloc((size_t)OC * CC, 8), *rdb = calloc(OC, 8);
        for (int t = 0; t < TT; t++)
            for (int oc = 0; oc < OC; oc++) {
                double s = b[oc], g = dout[(size_t)t * OC + oc];
                for (int c = 0; c < CC; c++) {
                    s += (double)x[(size_t)t * CC + c] * w[(size_t)oc * CC + c];
                    rdx[(size_t)t * CC + c] += g * w[(size_t)oc * CC + c];
                    rdw[(size_t)oc * CC + c] += g * x[(size_t)t * CC + c];
                }
                ro[(size_t)t * OC + oc] = s;
                rdb[oc] += g;
            }
        check_tensor("matmul out", o, ro, (size_t)TT * OC, 1e-5);
        check_tensor("matmul dinp", dx, rdx, nTC, 1e-5);
        check_tensor("matmul dw", dw, rdw, (size_t)OC * CC, 1e-5);
        check_tensor("matmul dbias", db, rdb, OC, 1e-5);
        free(x), free(w), free(b), free(o), free(dout), free(dx), free(dw), free(db), free(ro), free(rdx), free(rdw), free(rdb);
    }
    // rmsnorm
    {
        float *x = rand_f(nTC, 3), *wt = rand_f(CC, 1), *o = zeros_f(nTC), *rs = zeros_f(TT), *dout = rand_f(nTC, 1);
        float *dx = zeros_f(nTC), *dwt = zeros_f(CC);
        ops->rmsnorm_forward(o, rs, x, wt, 1e-6f, TT, CC);
        ops->rmsnorm_backward(dx, dwt, dout, x, wt, rs, TT, CC);
        double *ro = malloc(sizeof(double) * nTC), *rdx = malloc(sizeof(double) * nTC), *rdw = calloc(CC, 8);
        for (int t = 0; t < TT; t++) {
            const float *xr = x + (size_t)t * CC, *gr = dout + (size_t)t * CC;
            double ms = 0, gwx = 0;
            for (int c = 0; c < CC; c++) ms += (double)xr[c] * xr[c] / CC, gwx += (double)gr[c] * wt[c] * xr[c];
            double r = 1 / sqrt(ms + 1e-6);
            for (int c = 0; c < CC; c++) {
                ro[(size_t)t * CC + c] = xr[c] * r * wt[c];
                rdx[(size_t)t * CC + c] = r * wt[c] * gr[c] - xr[c] * r * r * r * gwx / CC;
                rdw[c] += gr[c] * xr[c] * r;
            }
        }
        check_tensor("rmsnorm out", o, ro, nTC, 1e-5);
        check_tensor("rmsnorm dinp", dx, rdx, nTC, 1e-5);
        check_tensor("rmsnorm dweight", dwt, rdw, CC, 1e-5);
        free(x), free(wt), free(o), free(rs), free(dout), free(dx), free(dwt), free(ro), free(rdx), free(rdw);
    }
    // rope (positions within each sequence, one large)
    {
        int *pos = malloc(TT * sizeof(int));
        for (int b = 0; b < NB; b++)
            for (int t = CU[b]; t < CU[b + 1]; t++) pos[t] = t - CU[b] + (b == 3 ? 30000 : 0);
        float *x = rand_f(nQ, 1);
        double *r = malloc(sizeof(double) * nQ);
        for (int t = 0; t < TT; t++)
            for (int h = 0; h < NH; h++)
                for (int i = 0; i < HD / 2; i++) {
                    size_t o = ((size_t)t * NH + h) * HD;
                    double a = pos[t] * pow(1e6, -2.0 * i / HD), x0 = x[o + i], x1 = x[o + i + HD / 2];
                    r[o + i] = x0 * cos(a) - x1 * sin(a);
                    r[o + i + HD / 2] = x1 * cos(a) + x0 * sin(a);
                }
        float *y = malloc(sizeof(float) * nQ);
        memcpy(y, x, sizeof(float) * nQ);
        ops->rope_forward(y, pos, TT, NH, HD, 1e6f);
        check_tensor("rope forward", y, r, nQ, 1e-5);
        ops->rope_backward(y, pos, TT, NH, HD, 1e6f);
        double *xd = to_d(x, nQ);
        check_tensor("rope backward(forward(x))", y, xd, nQ, 1e-5);
        free(pos), free(x), free(r), free(y), free(xd);
    }
    // attention: few uneven sequences (two-pass backward) and ten similar ones (fused backward)
    static const int cu_even[] = {0, 30, 60, 91, 120, 150, 180, 210, 240, 272, 300};
    check_attention(CU, NB, "attention");
    check_attention(cu_even, 10, "attention (10 seqs)");
    // swiglu
    {
        size_t n = (size_t)TT * FF - 5; // not a multiple of the vector width
        float *g = rand_f(n, 8), *u = rand_f(n, 2), *o = zeros_f(n), *dout = rand_f(n, 1), *dg = zeros_f(n), *du = zeros_f(n);
        ops->swiglu_forward(o, g, u, n);
        ops->swiglu_backward(dg, du, dout, g, u, n);
        double *ro = malloc(8 * n), *rdg = malloc(8 * n), *rdu = malloc(8 * n);
        for (size_t i = 0; i < n; i++) {
            double s = 1 / (1 + exp(-(double)g[i]));
            ro[i] = g[i] * s * u[i];
            rdu[i] = dout[i] * g[i] * s;
            rdg[i] = dout[i] * u[i] * (s + g[i] * s * (1 - s));
        }
        check_tensor("swiglu out", o, ro, n, 1e-5);
        check_tensor("swiglu dgate", dg, rdg, n, 1e-5);
        check_tensor("swiglu dup", du, rdu, n, 1e-5);
        free(g), free(u), free(o), free(dout), free(dg), free(du), free(ro), free(rdg), free(rdu);
    }
    // embedding
    {
        int V = 50;
        int *tok = malloc(TT * sizeof(int));
        for (int t = 0; t < TT; t++) tok[t] = (int)((urand() + 1) * 0.5 * V) % V;
        float *wte = rand_f((size_t)V * CC, 1), *o = zeros_f(nTC), *dout = rand_f(nTC, 1), *dw = zeros_f((size_t)V * CC);
        ops->embedding_forward(o, tok, wte, TT, CC);
        ops->embedding_backward(dw, dout, tok, TT, CC);
        double *ro = malloc(8 * nTC), *rdw = calloc((size_t)V * CC, 8);
        for (int t = 0; t < TT; t++)
            for (int c = 0; c < CC; c++) {
                ro[(size_t)t * CC + c] = wte[(size_t)tok[t] * CC + c];
                rdw[(size_t)tok[t] * CC + c] += dout[(size_t)t * CC + c];
            }
        check_tensor("embedding out", o, ro, nTC, 0);
        check_tensor("embedding dwte", dw, rdw, (size_t)V * CC, 1e-5);
        free(tok), free(wte), free(o), free(dout), free(dw), free(ro), free(rdw);
    }
    // logprob
    {
        float tau = 0.9f;
        int *tgt = malloc(TT * sizeof(int));
        for (int t = 0; t < TT; t++) tgt[t] = t % 11 == 5 ? -1 : (int)((urand() + 1) * 0.5 * VV) % VV;
        float *h = rand_f(nTC, 1), *w = rand_f((size_t)VV * CC, 0.5), *cl = rand_f(TT, 1), *ce = rand_f(TT, 1);
        float *lp = zeros_f(TT), *ent = zeros_f(TT), *lse = zeros_f(TT), *dh = zeros_f(nTC), *dw = zeros_f((size_t)VV * CC);
        ops->logprob_forward(lp, ent, lse, h, w, tgt, TT, CC, VV, tau);
        ops->logprob_backward(dh, dw, cl, ce, h, w, tgt, lse, ent, TT, CC, VV, tau);
        double *hd = to_d(h, nTC), *wd = to_d(w, (size_t)VV * CC), *cld = to_d(cl, TT), *ced = to_d(ce, TT);
        double *rlp = malloc(8 * TT), *rent = malloc(8 * TT), *rdh = malloc(8 * nTC), *rdw = malloc(8 * (size_t)VV * CC);
        ref_logprob(rlp, rent, rdh, rdw, hd, wd, tgt, cld, ced, tau);
        check_tensor("logprob logp", lp, rlp, TT, 1e-5);
        check_tensor("logprob entropy", ent, rent, TT, 1e-5);
        check_tensor("logprob dhidden", dh, rdh, nTC, 1e-4);
        check_tensor("logprob dw", dw, rdw, (size_t)VV * CC, 1e-4);
        free(tgt), free(h), free(w), free(cl), free(ce), free(lp), free(ent), free(lse), free(dh), free(dw), free(hd);
        free(wd), free(cld), free(ced), free(rlp), free(rent), free(rdh), free(rdw);
    }
}

// ---------------- bitwise reproducibility across thread counts ----------------
static int same(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof(float)) == 0; }

static void test_determinism(void) {
    const size_t nTC = (size_t)TT * CC, nQ = (size_t)TT * NH * HD, nK = (size_t)TT * NKV * HD;
    float *q = rand_f(nQ, 2), *k = rand_f(nK, 2), *v = rand_f(nK, 1), *dout = rand_f(nQ, 1);
    float *h = rand_f(nTC, 1), *w = rand_f((size_t)VV * CC, 0.5), *cl = rand_f(TT, 1), *ce = rand_f(TT, 1);
    float *g = rand_f(nTC, 1);
    int *tgt = malloc(TT * sizeof(int)), *tok = malloc(TT * sizeof(int));
    for (int t = 0; t < TT; t++) tgt[t] = (int)((urand() + 1) * 0.5 * VV) % VV, tok[t] = t % 13;
    float *res[3][15];
    double ss[3];
    static const int nthreads[3] = {1, 2, 3};
    int saved = omp_get_max_threads();
    for (int r = 0; r < 3; r++) {
        omp_set_num_threads(nthreads[r]);
        float **o = res[r];
        o[0] = zeros_f(nQ), o[1] = zeros_f((size_t)TT * NH), o[2] = zeros_f(nQ), o[3] = zeros_f(nK), o[4] = zeros_f(nK);
        ops->attention_forward(o[0], o[1], q, k, v, CU, NB, TT, NH, NKV, HD);
        ops->attention_backward(o[2], o[3], o[4], dout, q, k, v, o[0], o[1], CU, NB, TT, NH, NKV, HD);
        o[5] = zeros_f(TT), o[6] = zeros_f(TT), o[7] = zeros_f(TT), o[8] = zeros_f(nTC), o[9] = zeros_f((size_t)VV * CC);
        ops->logprob_forward(o[5], o[6], o[7], h, w, tgt, TT, CC, VV, 1.0f);
        ops->logprob_backward(o[8], o[9], cl, ce, h, w, tgt, o[7], o[6], TT, CC, VV, 1.0f);
        o[10] = zeros_f(13 * CC);
        ops->embedding_backward(o[10], g, tok, TT, CC);
        o[11] = zeros_f(CC + OC);
        float *dx = zeros_f(nTC);
        ops->rmsnorm_backward(dx, o[11], g, g, w, cl, TT, CC); // dweight into o[11][0..CC)
        free(dx);
        ops->matmul_backward(NULL, NULL, o[11] + CC, w, g, g, TT, CC, OC);
        ss[r] = ops->sumsq(w, (size_t)VV * CC);
        // matmul: gemm tiles depend only on the shape, so the thread count cannot change any element
        o[12] = zeros_f((size_t)VV * OC), o[13] = zeros_f((size_t)VV * CC), o[14] = zeros_f((size_t)OC * CC);
        ops->matmul_forward(o[12], w, w, cl, VV, CC, OC);
        ops->matmul_backward(o[13], o[14], NULL, o[12], w, w, VV, CC, OC);
    }
    omp_set_num_threads(saved);
    static const char *names[15] = {"attention out", "attention lse", "attention dq", "attention dk", "attention dv",
                                    "logprob logp", "logprob entropy", "logprob lse", "logprob dhidden",
                                    "logprob dw", "embedding dwte", "rmsnorm dweight / dbias", "matmul out",
                                    "matmul dinp", "matmul dw"};
    size_t sizes[15] = {nQ, (size_t)TT * NH, nQ, nK, nK, TT, TT, TT, nTC, (size_t)VV * CC, 13 * CC, CC + OC,
                        (size_t)VV * OC, (size_t)VV * CC, (size_t)OC * CC};
    for (int i = 0; i < 15; i++)
        for (int r = 1; r < 3; r++) CHECK(same(res[0][i], res[r][i], sizes[i]), "%s differs between 1 and %d threads", names[i], nthreads[r]);
    CHECK(ss[0] == ss[1] && ss[0] == ss[2], "sumsq differs across thread counts");
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < 15; i++) free(res[r][i]);
    free(q), free(k), free(v), free(dout), free(h), free(w), free(cl), free(ce), free(g), free(tgt), free(tok);
}

int main(void) {
    ops = rlc_ops_cpu();
    test_spec_vectors();
    test_shift_invariance();
    test_vs_double();
    test_determinism();
    return test_finish("test_ops");
}
