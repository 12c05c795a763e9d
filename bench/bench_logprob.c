// bench/bench_logprob.c: the fused LM-head log-prob / entropy op of the CPU backend (rlc_ops_cpu()->
// logprob_forward / logprob_backward) at Qwen2.5-0.5B-like (C 896, V 151936) and 7B-like (C 3584, V 152064)
// LM-head shapes, with token counts scaled down so that the CPU run takes seconds. Per shape it prints the
// forward and backward time, GFLOP/s (forward 2TVC; backward 6TVC: recomputed logits + two GEMMs), the peak
// extra memory of the forward (VmHWM growth, reset through /proc/self/clear_refs) next to the T x V fp32
// logits that an unfused op would hold, and the ratio to a baseline timed in the same run: the LM-head sgemm
// alone (T x V x C, OpenBLAS) at the same shape (the target on a GPU: forward <= 1.5x that GEMM).
// The GPU version is bench/gpu/bench_logprob_gpu.cu.
//   bench_logprob [--tokens-05b 64] [--tokens-7b 16] [--reps 1] [--tau 1.0]
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rlc/ops.h"
#include "rlc/util.h"

// Current and peak resident set (kB) from /proc/self/status; -1 where unavailable.
static long proc_status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    size_t n = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, n) && line[n] == ':') {
            v = atol(line + n + 1);
            break;
        }
    fclose(f);
    return v;
}
// Resets the peak RSS to the current RSS (Linux >= 4.0); 0 on success.
static int reset_peak_rss(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return -1;
    int ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static void fill(float *x, size_t n, unsigned seed, float scale) {
    unsigned s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = scale * ((float)(s >> 8) / 16777216.0f - 0.5f);
    }
}

typedef struct {
    const char *name;
    int C, V, T;
} shape;

int main(int argc, char **argv) {
    int t05 = 64, t7 = 16, reps = 1;
    float tau = 1.0f;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--tokens-05b")) t05 = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--tokens-7b")) t7 = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--tau")) tau = (float)atof(argv[i + 1]);
        else {
            fprintf(stderr, "bench_logprob: unknown option %s (expected --tokens-05b, --tokens-7b, --reps, --tau)\n",
                    argv[i]);
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    const shape shapes[2] = {{"qwen2.5-0.5b", 896, 151936, t05}, {"qwen2.5-7b", 3584, 152064, t7}};
    const rlc_ops *ops = rlc_ops_cpu();
    printf("bench_logprob (CPU backend): fused LM-head log-prob + entropy vs the LM-head sgemm alone\n");
    printf("%-13s %5s %5s %7s | %9s %8s | %9s %8s | %9s %8s | %10s %10s | %s\n", "shape", "T", "C", "V", "fwd ms",
           "GFLOP/s", "bwd ms", "GFLOP/s", "gemm ms", "GFLOP/s", "extra MiB", "logits MiB", "fwd/gemm");
    for (int si = 0; si < 2; si++) {
        const shape *s = &shapes[si];
        const int T = s->T, C = s->C, V = s->V;
        float *hid = rlc_malloc((size_t)T * C * sizeof(float)), *w = rlc_malloc((size_t)V * C * sizeof(float));
        fill(hid, (size_t)T * C, 1, 2.0f);
        fill(w, (size_t)V * C, 2, 2.0f / sqrtf((float)C));
        int *tgt = rlc_malloc((size_t)T * sizeof(int));
        for (int t = 0; t < T; t++) tgt[t] = (int)((t * 7919u) % (unsigned)V);
        float *logp = rlc_malloc(T * sizeof(float)), *ent = rlc_malloc(T * sizeof(float));
        float *lse = rlc_malloc(T * sizeof(float)), *dlogp = rlc_malloc(T * sizeof(float));
        float *dent = rlc_malloc(T * sizeof(float));
        fill(dlogp, T, 3, 1.0f);
        fill(dent, T, 4, 0.1f);
        float *dh = rlc_calloc((size_t)T * C, sizeof(float)), *dw = rlc_calloc((size_t)V * C, sizeof(float));
        memset(dw, 0, (size_t)V * C * sizeof(float)); // touch the pages before measuring the peak

        // forward (first call also measures the peak extra memory)
        long rss0 = reset_peak_rss() == 0 ? proc_status_kb("VmRSS") : -1;
        double best_f = 1e30, best_b = 1e30, best_g = 1e30;
        for (int r = 0; r < reps; r++) {
            double t0 = rlc_now();
            ops->logprob_forward(logp, ent, lse, hid, w, tgt, T, C, V, tau);
            double dt = rlc_now() - t0;
            if (dt < best_f) best_f = dt;
        }
        long hwm = rss0 >= 0 ? proc_status_kb("VmHWM") : -1;
        for (int r = 0; r < reps; r++) {
            double t0 = rlc_now();
            ops->logprob_backward(dh, dw, dlogp, dent, hid, w, tgt, lse, ent, T, C, V, tau);
            double dt = rlc_now() - t0;
            if (dt < best_b) best_b = dt;
        }
        // baseline: the LM-head GEMM alone, logits (T, V) = hid @ w^T (allocated outside the timing)
        float *logits = rlc_malloc((size_t)T * V * sizeof(float));
        for (int r = 0; r < reps + 1; r++) { // first run warms up
            double t0 = rlc_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, V, C, 1.0f / tau, hid, C, w, C, 0.0f, logits, V);
            double dt = rlc_now() - t0;
            if (r > 0 && dt < best_g) best_g = dt;
        }
        double fl = 2.0 * T * (double)V * C;
        int finite = 1;
        for (int t = 0; t < T; t++) finite &= isfinite(logp[t]) && isfinite(ent[t]);
        char extra[32];
        if (hwm >= 0) snprintf(extra, sizeof extra, "%.1f", (hwm - rss0) / 1024.0);
        else snprintf(extra, sizeof extra, "n/a");
        printf("%-13s %5d %5d %7d | %9.1f %8.1f | %9.1f %8.1f | %9.1f %8.1f | %10s %10.1f | %.2fx%s\n", s->name, T, C,
               V, best_f * 1e3, fl / best_f / 1e9, best_b * 1e3, 3 * fl / best_b / 1e9, best_g * 1e3,
               fl / best_g / 1e9, extra, (double)T * V * 4 / 1048576.0, best_f / best_g,
               finite ? "" : "  (NON-FINITE OUTPUT)");
        free(logits);
        free(hid), free(w), free(tgt), free(logp), free(ent), free(lse), free(dlogp), free(dent), free(dh), free(dw);
        if (!finite) return 1;
    }
    return 0;
}
