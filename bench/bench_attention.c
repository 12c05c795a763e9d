// bench/bench_attention.c: attention of the CPU backend (rlc_ops_cpu()->attention_forward / _backward /
// _decode) at smaller versions of the shapes of bench/bench_attention_gpu.cu: Qwen2.5-0.5B-like (14 heads, 2 KV
// heads, head dim 64) and 7B-like (28/4, head dim 128), T tokens packed as T/L sequences of length L. Prints per
// shape the time, the causal TFLOP/s (QK^T and PV over the L(L+1)/2 visible pairs, backward counted as 2.5x the
// forward) and a baseline column: the speed-up over a plain sgemm reference timed in the same run (per sequence
// and head: the full L x L score matrix through cblas_sgemm, softmax, sgemm with V; the backward likewise), whose
// results are also compared with the op's. Decode prints GB/s of K/V read and the fraction of the memcpy
// bandwidth measured in the same run. (On a GPU, bench_attention_gpu prints the same columns against torch.)
//   bench_attention [--model 0.5b|7b|all] [--tokens 4096] [--seq 1024] [--reps 1] [--cache 4096] [--rows 8]
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rlc/ops.h"
#include "rlc/util.h"

typedef struct {
    const char *name;
    int NH, NKV, HD;
} bench_model;

static float *rand_buf(size_t n, unsigned salt, float amp) {
    float *x = rlc_malloc((n ? n : 1) * sizeof(float));
    unsigned s = salt * 2654435761u + 12345u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = amp * ((float)(s >> 8) / 8388608.0f - 1.0f);
    }
    return x;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

// Plain reference: per (sequence, head) the whole L x L score block S = scale Q K^T by sgemm, causal softmax, O =
// P V by sgemm. S (L*L floats) is scratch.
static void ref_forward(float *out, float *lse, const float *q, const float *k, const float *v, const int *cu, int B,
                        int NH, int NKV, int HD, float *S) {
    const int rep = NH / NKV, ldq = NH * HD, ldk = NKV * HD;
    const float scale = 1.0f / sqrtf((float)HD);
    for (int b = 0; b < B; b++) {
        const int s0 = cu[b], L = cu[b + 1] - s0;
        for (int h = 0; h < NH; h++) {
            const float *Q = q + (size_t)s0 * ldq + h * HD, *K = k + (size_t)s0 * ldk + (h / rep) * HD;
            const float *V = v + (size_t)s0 * ldk + (h / rep) * HD;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, HD, scale, Q, ldq, K, ldk, 0.0f, S, L);
            for (int i = 0; i < L; i++) {
                float *row = S + (size_t)i * L, mx = row[0];
                for (int j = 1; j <= i; j++) mx = row[j] > mx ? row[j] : mx;
                double sum = 0;
                for (int j = 0; j <= i; j++) sum += (row[j] = expf(row[j] - mx));
                for (int j = 0; j <= i; j++) row[j] = (float)(row[j] / sum);
                for (int j = i + 1; j < L; j++) row[j] = 0.0f;
                lse[(size_t)(s0 + i) * NH + h] = mx + (float)log(sum);
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, HD, L, 1.0f, S, L, V, ldk, 0.0f,
                        out + (size_t)s0 * ldq + h * HD, ldq);
        }
    }
}

// Plain reference backward: P from lse over the whole L x L block, dP = dO V^T, dS = P (dP - D), then dV += P^T dO,
// dQ = scale dS K, dK += scale dS^T Q by sgemm. S and dS (L*L floats each) are scratch.
static void ref_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                         const float *v, const float *out, const float *lse, const int *cu, int B, int T, int NH,
                         int NKV, int HD, float *S, float *dS) {
    const int rep = NH / NKV, ldq = NH * HD, ldk = NKV * HD;
    const float scale = 1.0f / sqrtf((float)HD);
    memset(dk, 0, (size_t)T * ldk * sizeof(float));
    memset(dv, 0, (size_t)T * ldk * sizeof(float));
    for (int b = 0; b < B; b++) {
        const int s0 = cu[b], L = cu[b + 1] - s0;
        for (int h = 0; h < NH; h++) {
            const size_t qo = (size_t)s0 * ldq + h * HD, ko = (size_t)s0 * ldk + (h / rep) * HD;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, HD, scale, q + qo, ldq, k + ko, ldk, 0.0f, S, L);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, HD, 1.0f, dout + qo, ldq, v + ko, ldk, 0.0f, dS, L);
            for (int i = 0; i < L; i++) {
                const float *o = out + qo + (size_t)i * ldq, *d = dout + qo + (size_t)i * ldq;
                double D = 0;
                for (int c = 0; c < HD; c++) D += (double)o[c] * d[c];
                const float l = lse[(size_t)(s0 + i) * NH + h];
                float *p = S + (size_t)i * L, *ds = dS + (size_t)i * L;
                for (int j = 0; j < L; j++) {
                    p[j] = j <= i ? expf(p[j] - l) : 0.0f;
                    ds[j] = p[j] * (ds[j] - (float)D);
                }
            }
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, L, HD, L, 1.0f, S, L, dout + qo, ldq, 1.0f, dv + ko, ldk);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, HD, L, scale, dS, L, k + ko, ldk, 0.0f, dq + qo, ldq);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, L, HD, L, scale, dS, L, q + qo, ldq, 1.0f, dk + ko, ldk);
        }
    }
}

static double memcpy_gbs(void) {
    const size_t n = (size_t)256 << 20;
    char *a = rlc_malloc(n), *b = rlc_malloc(n);
    memset(a, 1, n);
    memset(b, 2, n);
    double best = 1e30;
    for (int r = 0; r < 4; r++) {
        double t0 = rlc_now();
        memcpy(b, a, n);
        double dt = rlc_now() - t0;
        if (r > 0 && dt < best) best = dt;
    }
    volatile char sink = b[n / 2];
    (void)sink;
    free(a);
    free(b);
    return 2.0 * n / best / 1e9;
}

int main(int argc, char **argv) {
    const char *which = "all";
    int T = 4096, L = 1024, reps = 1, cache = 4096, rows = 8;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model")) which = argv[i + 1];
        else if (!strcmp(argv[i], "--tokens")) T = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seq")) L = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--cache")) cache = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rows")) rows = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench_attention: unknown option %s (see the header of bench/bench_attention.c)\n", argv[i]);
            return 2;
        }
    }
    if (L <= 0 || L > T || T % L != 0 || reps < 1 || cache < 1 || rows < 1) {
        fprintf(stderr, "bench_attention: need 0 < --seq <= --tokens, --tokens a multiple of --seq, --reps, --cache, "
                        "--rows >= 1 (got T=%d L=%d reps=%d cache=%d rows=%d)\n", T, L, reps, cache, rows);
        return 2;
    }
    const bench_model models[2] = {{"0.5b-like", 14, 2, 64}, {"7b-like", 28, 4, 128}};
    const rlc_ops *ops = rlc_ops_cpu();
    const int B = T / L;
    int *cu = rlc_malloc((size_t)(B + 1) * sizeof(int));
    for (int b = 0; b <= B; b++) cu[b] = b * L;
    float *S = rlc_malloc((size_t)L * L * sizeof(float)), *dS = rlc_malloc((size_t)L * L * sizeof(float));
    int bad = 0;

    printf("bench_attention: CPU backend; baseline = plain sgemm reference (full L x L scores), same run\n");
    printf("%-7s %-10s %6s %6s %10s %8s %10s %9s %10s\n", "op", "model", "T", "L", "ms", "TFLOP/s", "ref_ms",
           "baseline", "max|diff|");
    for (int mi = 0; mi < 2; mi++) {
        const bench_model *m = &models[mi];
        if (strcmp(which, "all") && strncmp(which, m->name, strlen(which))) continue;
        const int NH = m->NH, NKV = m->NKV, HD = m->HD;
        const size_t nq = (size_t)T * NH * HD, nk = (size_t)T * NKV * HD;
        float *q = rand_buf(nq, 1, 1.0f), *k = rand_buf(nk, 2, 1.0f), *v = rand_buf(nk, 3, 1.0f);
        float *dout = rand_buf(nq, 4, 1.0f);
        float *out = rlc_malloc(nq * 4), *lse = rlc_malloc((size_t)T * NH * 4), *dq = rlc_malloc(nq * 4);
        float *dk = rlc_malloc(nk * 4), *dv = rlc_malloc(nk * 4);
        float *rout = rlc_malloc(nq * 4), *rlse = rlc_malloc((size_t)T * NH * 4), *rdq = rlc_malloc(nq * 4);
        float *rdk = rlc_malloc(nk * 4), *rdv = rlc_malloc(nk * 4);
        double t_op[2] = {1e30, 1e30}, t_ref[2] = {1e30, 1e30};
        for (int r = 0; r < reps; r++) {
            double t0 = rlc_now();
            ops->attention_forward(out, lse, q, k, v, cu, B, T, NH, NKV, HD);
            double t1 = rlc_now();
            ops->attention_backward(dq, dk, dv, dout, q, k, v, out, lse, cu, B, T, NH, NKV, HD);
            double t2 = rlc_now();
            ref_forward(rout, rlse, q, k, v, cu, B, NH, NKV, HD, S);
            double t3 = rlc_now();
            ref_backward(rdq, rdk, rdv, dout, q, k, v, out, lse, cu, B, T, NH, NKV, HD, S, dS);
            double t4 = rlc_now();
            t_op[0] = fmin(t_op[0], t1 - t0), t_op[1] = fmin(t_op[1], t2 - t1);
            t_ref[0] = fmin(t_ref[0], t3 - t2), t_ref[1] = fmin(t_ref[1], t4 - t3);
        }
        const double flops = 4.0 * HD * NH * B * ((double)L * (L + 1) / 2);
        const double diff[2] = {fmax(max_abs_diff(out, rout, nq), max_abs_diff(lse, rlse, (size_t)T * NH)),
                                fmax(max_abs_diff(dq, rdq, nq), fmax(max_abs_diff(dk, rdk, nk), max_abs_diff(dv, rdv, nk)))};
        for (int op = 0; op < 2; op++) {
            const double f = op ? 2.5 * flops : flops;
            printf("%-7s %-10s %6d %6d %10.1f %8.3f %10.1f %8.2fx %10.2e\n", op ? "bwd" : "fwd", m->name, T, L,
                   t_op[op] * 1e3, f / t_op[op] / 1e12, t_ref[op] * 1e3, t_ref[op] / t_op[op], diff[op]);
            if (!(diff[op] < 1e-3)) bad = 1; // fp32 both ways: only summation order differs
        }
        free(q), free(k), free(v), free(dout), free(out), free(lse), free(dq), free(dk), free(dv);
        free(rout), free(rlse), free(rdq), free(rdk), free(rdv);
    }
    free(S);
    free(dS);
    free(cu);

    const double copy = memcpy_gbs();
    printf("\nmemcpy: %.1f GB/s (read + write); decode baseline = fraction of it\n", copy);
    printf("%-7s %-10s %4s %6s %10s %8s %9s\n", "op", "model", "B", "len", "ms", "GB/s", "baseline");
    for (int mi = 0; mi < 2; mi++) {
        const bench_model *m = &models[mi];
        if (strcmp(which, "all") && strncmp(which, m->name, strlen(which))) continue;
        const int NH = m->NH, NKV = m->NKV, HD = m->HD;
        const size_t nc = (size_t)rows * cache * NKV * HD;
        float *q = rand_buf((size_t)rows * NH * HD, 5, 1.0f), *kc = rand_buf(nc, 6, 1.0f), *vc = rand_buf(nc, 7, 1.0f);
        float *out = rlc_malloc((size_t)rows * NH * HD * 4);
        int *slot = rlc_malloc((size_t)rows * sizeof(int)), *len = rlc_malloc((size_t)rows * sizeof(int));
        for (int b = 0; b < rows; b++) slot[b] = b, len[b] = cache;
        double best = 1e30;
        for (int r = 0; r < reps + 2; r++) {
            double t0 = rlc_now();
            ops->attention_decode(out, q, kc, vc, slot, len, rows, cache, NH, NKV, HD);
            best = fmin(best, rlc_now() - t0);
        }
        const double gbs = 2.0 * nc * sizeof(float) / best / 1e9;
        printf("%-7s %-10s %4d %6d %10.2f %8.1f %8.0f%%\n", "decode", m->name, rows, cache, best * 1e3, gbs,
               100.0 * gbs / copy);
        free(q), free(kc), free(vc), free(out), free(slot), free(len);
    }
    if (bad) fprintf(stderr, "bench_attention: the op and the sgemm reference disagree (max|diff| >= 1e-3)\n");
    return bad;
}
