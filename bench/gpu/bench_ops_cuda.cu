// bench/gpu/bench_ops_cuda.cu: times every entry of the CUDA op table (rlc_ops_cuda, kernels/cuda/ops_cuda.cu)
// at one transformer layer's shapes (default: Qwen2.5-0.5B, 4096 packed tokens in 8 sequences), through the
// table exactly as host code calls it, in each precision mode (kernels/cuda/ops_cuda.h): activations (rlc_act of
// include/rlc/ops.h) in the mode's type (bf16 in mixed precision, fp32 otherwise), the residual stream, statistics,
// weights and gradients in fp32, the GEMM weights registered as the model registers its parameters (the bf16
// modes read their bf16 copy), the adapters' conversions included. Prints the time per call and the effective
// bandwidth (memory-bound entries: bytes the entry must read and write at least, activations counted at the
// mode's element size) or TFLOP/s (GEMM-like entries).
//   bench_ops_cuda [--tokens T] [--seqs B] [--dim C] [--heads NH] [--kv-heads NKV] [--head-dim HD]
//                  [--hidden F] [--vocab V] [--iters N] [--precision mixed|bf16-gemm|fp32|all] [--only NAME]
// --precision picks the mode; all (the default) runs the whole table in fp32, bf16-gemm and mixed, one after the
// other. --only runs the entries whose name contains NAME.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <functional>
#include <vector>

#include "ops_cuda.h"
#include "rlc_cuda.h"

static const rlc_ops *G;
static int iters = 10;
static const char *only = NULL;

// n fp32 values uniform in [-amp, amp) (an xorshift stream per salt), in device memory.
static float *dalloc_f(size_t n, float amp, unsigned salt) {
    std::vector<float> h(n);
    unsigned x = 2463534242u + salt * 7919u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        h[i] = amp * ((float)(x >> 8) / 16777216.0f * 2.0f - 1.0f);
    }
    float *d = (float *)G->alloc(n * sizeof(float));
    G->upload(d, h.data(), n * sizeof(float));
    return d;
}
// The same values as an activation (G->act_bytes per element: the current mode's type).
static void *dalloc_act(size_t n, float amp, unsigned salt) {
    float *f = dalloc_f(n, amp, salt);
    void *a = G->alloc(n * G->act_bytes);
    G->act_from_f(a, f, n);
    G->free(f);
    return a;
}
static int *dalloc_i(const std::vector<int> &h) {
    int *d = (int *)G->alloc(h.size() * sizeof(int));
    G->upload(d, h.data(), h.size() * sizeof(int));
    return d;
}

// Mean ms per call over `iters` calls after two warm-up calls (events on the backend's stream).
static double time_ms(const std::function<void()> &fn) {
    cudaStream_t st = (cudaStream_t)rlc_ops_cuda_stream();
    fn();
    fn();
    rlc_ops_cuda_synchronize();
    cudaEvent_t a, b;
    RLC_CUDA_CHECK(cudaEventCreate(&a));
    RLC_CUDA_CHECK(cudaEventCreate(&b));
    RLC_CUDA_CHECK(cudaEventRecord(a, st));
    for (int i = 0; i < iters; i++) fn();
    RLC_CUDA_CHECK(cudaEventRecord(b, st));
    RLC_CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    RLC_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    rlc_ops_cuda_synchronize();
    return ms / iters;
}

// kind 'B': value = bytes (GB/s printed); 'F': value = flops (TFLOP/s printed).
static void report(const char *name, const char *shape, char kind, double value, const std::function<void()> &fn) {
    if (only && !strstr(name, only)) return;
    const double ms = time_ms(fn);
    if (kind == 'B') printf("%-34s %-28s %9.3f ms  %8.1f GB/s\n", name, shape, ms, value / (ms * 1e-3) / 1e9);
    else printf("%-34s %-28s %9.3f ms  %8.1f TFLOP/s\n", name, shape, ms, value / (ms * 1e-3) / 1e12);
    fflush(stdout);
}

// The whole table in the current precision mode.
static void bench_mode(int T, int B, int C, int NH, int NKV, int HD, int F, int V) {
    const char *mode = rlc_ops_cuda_precision_name(rlc_ops_cuda_precision());
    printf("---- precision %s (activations of %zu bytes)\n", mode, G->act_bytes);
    char sh[64], nm[64];
#define NAME(entry) (snprintf(nm, sizeof nm, "%s [%s]", entry, mode), nm)
    const size_t TC = (size_t)T * C, TF = (size_t)T * F, f4 = sizeof(float), ab = G->act_bytes;

    // ---- elementwise: a, c fp32 (the residual stream), b, ga, up, sw, dg, du activations
    {
        float *a = dalloc_f(TF, 1, 1), *c = dalloc_f(TF, 1, 3);
        void *b = dalloc_act(TF, 1, 2), *ga = dalloc_act(TF, 1, 4), *up = dalloc_act(TF, 1, 5);
        void *sw = dalloc_act(TF, 0, 6), *dg = dalloc_act(TF, 0, 7), *du = dalloc_act(TF, 0, 8);
        snprintf(sh, sizeof sh, "n=%zu", TF);
        report(NAME("add"), sh, 'B', (double)TF * (2 * f4 + ab), [&] { G->add(c, a, b, TF); });
        report(NAME("scale"), sh, 'B', 2.0 * TF * f4, [&] { G->scale(c, 0.999f, TF); });
        report(NAME("sumsq"), sh, 'B', 1.0 * TF * f4, [&] { (void)G->sumsq(a, TF); });
        report(NAME("swiglu_forward"), sh, 'B', 3.0 * TF * ab, [&] { G->swiglu_forward(sw, ga, up, TF); });
        report(NAME("swiglu_backward"), sh, 'B', 5.0 * TF * ab, [&] { G->swiglu_backward(dg, du, b, ga, up, TF); });
        G->free(a);
        G->free(c);
        for (void *q : {b, ga, up, sw, dg, du}) G->free(q);
    }
    {
        const size_t n = (size_t)3 * C * F; // one layer's MLP weights
        float *p = dalloc_f(n, 1, 9), *g = dalloc_f(n, 1, 10), *m = dalloc_f(n, 0.1f, 11), *v2 = dalloc_f(n, 0, 12);
        snprintf(sh, sizeof sh, "n=%zu", n);
        int t = 1;
        report(NAME("adamw_update"), sh, 'B', 7.0 * n * f4,
               [&] { G->adamw_update(p, g, m, v2, n, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, t++); });
        for (float *q : {p, g, m, v2}) G->free(q);
    }

    // ---- embedding (V rows of C; tokens with repeats as in text); the output is the residual stream (fp32)
    {
        std::vector<int> tok(T);
        for (int t = 0; t < T; t++) tok[t] = (int)(((unsigned)t * 2654435761u) % (unsigned)(t % 4 ? V : 64));
        int *dt = dalloc_i(tok);
        float *x = dalloc_f(TC, 0, 13), *wte = dalloc_f((size_t)V * C, 1, 14), *dwte = dalloc_f((size_t)V * C, 0, 15);
        snprintf(sh, sizeof sh, "T=%d C=%d V=%d", T, C, V);
        report(NAME("embedding_forward"), sh, 'B', 2.0 * TC * f4, [&] { G->embedding_forward(x, dt, wte, T, C); });
        report(NAME("embedding_backward"), sh, 'B', 3.0 * TC * f4, [&] { G->embedding_backward(dwte, x, dt, T, C); });
        G->free(dt);
        for (float *q : {x, wte, dwte}) G->free(q);
    }

    // ---- matmul (the MLP up projection: T x C -> F), the weight registered as the model's parameters are
    {
        float *w = dalloc_f((size_t)F * C, 0.05f, 16), *bias = dalloc_f(F, 0.1f, 17), *dw = dalloc_f((size_t)F * C, 0, 18);
        float *db = dalloc_f(F, 0, 19);
        void *x = dalloc_act(TC, 1, 20), *dx = dalloc_act(TC, 0, 21), *y = dalloc_act(TF, 0, 22);
        void *dy = dalloc_act(TF, 1, 23);
        if (G->register_params) G->register_params(w, (size_t)F * C);
        const double fl = 2.0 * T * C * F;
        snprintf(sh, sizeof sh, "T=%d C=%d OC=%d", T, C, F);
        report(NAME("matmul_forward (bias)"), sh, 'F', fl, [&] { G->matmul_forward(y, x, w, bias, T, C, F); });
        report(NAME("matmul_backward (all)"), sh, 'F', 2 * fl,
               [&] { G->matmul_backward(dx, dw, db, dy, x, w, T, C, F); });
        for (float *q : {w, bias, dw, db}) G->free(q); // free unregisters w
        for (void *q : {x, dx, y, dy}) G->free(q);
    }

    // ---- RMSNorm (input the fp32 residual stream, output an activation), RoPE (in place on an activation)
    {
        float *x = dalloc_f(TC, 1, 24), *wt = dalloc_f(C, 1, 25), *rs = dalloc_f(T, 0, 26), *dx = dalloc_f(TC, 0, 27);
        float *dwt = dalloc_f(C, 0, 28);
        void *y = dalloc_act(TC, 0, 29), *dy = dalloc_act(TC, 1, 30);
        snprintf(sh, sizeof sh, "T=%d C=%d", T, C);
        report(NAME("rmsnorm_forward"), sh, 'B', (double)TC * (f4 + ab),
               [&] { G->rmsnorm_forward(y, rs, x, wt, 1e-6f, T, C); });
        report(NAME("rmsnorm_backward"), sh, 'B', (double)TC * (3 * f4 + ab),
               [&] { G->rmsnorm_backward(dx, dwt, dy, x, wt, rs, T, C); });
        std::vector<int> pos(T);
        for (int t = 0; t < T; t++) pos[t] = t % (T / B);
        int *dp = dalloc_i(pos);
        const size_t nq = (size_t)T * NH * HD;
        void *q = dalloc_act(nq, 1, 31);
        snprintf(sh, sizeof sh, "T=%d H=%d HD=%d", T, NH, HD);
        report(NAME("rope_forward"), sh, 'B', 2.0 * nq * ab, [&] { G->rope_forward(q, dp, T, NH, HD, 1e6f); });
        report(NAME("rope_backward"), sh, 'B', 2.0 * nq * ab, [&] { G->rope_backward(q, dp, T, NH, HD, 1e6f); });
        G->free(dp);
        for (float *p : {x, wt, rs, dx, dwt}) G->free(p);
        for (void *p : {y, dy, q}) G->free(p);
    }

    // ---- attention: B sequences of T/B tokens (the last takes the rest)
    {
        std::vector<int> cu(B + 1);
        for (int i = 0; i <= B; i++) cu[i] = i == B ? T : i * (T / B);
        int *dcu = dalloc_i(cu);
        const size_t nq = (size_t)T * NH * HD, nk = (size_t)T * NKV * HD;
        void *q = dalloc_act(nq, 1, 32), *k = dalloc_act(nk, 1, 33), *v = dalloc_act(nk, 1, 34);
        void *o = dalloc_act(nq, 0, 35), *dq = dalloc_act(nq, 0, 36), *dk = dalloc_act(nk, 0, 37);
        void *dv = dalloc_act(nk, 0, 38), *dout = dalloc_act(nq, 1, 39);
        float *lse = dalloc_f((size_t)T * NH, 0, 40);
        double L = (double)T / B, fl = 4.0 * B * (L * (L + 1) / 2) * NH * HD; // causal: QK^T and PV
        snprintf(sh, sizeof sh, "B=%d T=%d NH=%d HD=%d", B, T, NH, HD);
        report(NAME("attention_forward"), sh, 'F', fl,
               [&] { G->attention_forward(o, lse, q, k, v, dcu, B, T, NH, NKV, HD); });
        report(NAME("attention_backward"), sh, 'F', 2.5 * fl,
               [&] { G->attention_backward(dq, dk, dv, dout, q, k, v, o, lse, dcu, B, T, NH, NKV, HD); });
        // decode: 64 rows in 64 slots of a 2048-token cache (in the activation type), each with 1024 keys
        const int R = 64, cap = 2048, len = 1024;
        std::vector<int> slot(R), kvl(R, len);
        for (int i = 0; i < R; i++) slot[i] = i;
        int *ds = dalloc_i(slot), *dl = dalloc_i(kvl);
        const size_t ncache = (size_t)R * cap * NKV * HD;
        void *kc = dalloc_act(ncache, 1, 41), *vc = dalloc_act(ncache, 1, 42);
        void *qd = dalloc_act((size_t)R * NH * HD, 1, 43), *od = dalloc_act((size_t)R * NH * HD, 0, 44); // (R, NH, HD)
        snprintf(sh, sizeof sh, "rows=%d kv_len=%d cap=%d", R, len, cap);
        report(NAME("attention_decode"), sh, 'B', 2.0 * R * len * NKV * HD * ab,
               [&] { G->attention_decode(od, qd, kc, vc, ds, dl, R, cap, NH, NKV, HD); });
        for (int *p : {dcu, ds, dl}) G->free(p);
        G->free(lse);
        for (void *p : {q, k, v, o, dq, dk, dv, dout, kc, vc, qd, od}) G->free(p);
    }

    // ---- fused log-prob over the LM head (hidden an activation, the LM head registered)
    {
        float *w = dalloc_f((size_t)V * C, 0.05f, 45), *dw = dalloc_f((size_t)V * C, 0, 46), *lp = dalloc_f(T, 0, 47);
        float *ent = dalloc_f(T, 0, 48), *lse = dalloc_f(T, 0, 49), *dlp = dalloc_f(T, 1, 50);
        float *dent = dalloc_f(T, 0.1f, 51);
        void *h = dalloc_act(TC, 1, 52), *dh = dalloc_act(TC, 0, 53);
        if (G->register_params) G->register_params(w, (size_t)V * C);
        std::vector<int> tgt(T);
        for (int t = 0; t < T; t++) tgt[t] = (int)(((unsigned)t * 40503u) % (unsigned)V);
        int *dt = dalloc_i(tgt);
        const double fl = 2.0 * T * C * (double)V;
        snprintf(sh, sizeof sh, "T=%d C=%d V=%d", T, C, V);
        report(NAME("logprob_forward"), sh, 'F', fl, [&] { G->logprob_forward(lp, ent, lse, h, w, dt, T, C, V, 1.0f); });
        report(NAME("logprob_backward"), sh, 'F', 3 * fl,
               [&] { G->logprob_backward(dh, dw, dlp, dent, h, w, dt, lse, ent, T, C, V, 1.0f); });
        G->free(dt);
        for (float *p : {w, dw, lp, ent, lse, dlp, dent}) G->free(p);
        G->free(h);
        G->free(dh);
    }
#undef NAME
    printf("workspace: %.1f MiB\n", rlc_ops_cuda_workspace_bytes() / 1048576.0);
}

int main(int argc, char **argv) {
    int T = 4096, B = 8, C = 896, NH = 14, NKV = 2, HD = 64, F = 4864, V = 151936;
    const char *prec = "all";
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--tokens")) T = atoi(v);
        else if (!strcmp(k, "--seqs")) B = atoi(v);
        else if (!strcmp(k, "--dim")) C = atoi(v);
        else if (!strcmp(k, "--heads")) NH = atoi(v);
        else if (!strcmp(k, "--kv-heads")) NKV = atoi(v);
        else if (!strcmp(k, "--head-dim")) HD = atoi(v);
        else if (!strcmp(k, "--hidden")) F = atoi(v);
        else if (!strcmp(k, "--vocab")) V = atoi(v);
        else if (!strcmp(k, "--iters")) iters = atoi(v);
        else if (!strcmp(k, "--precision")) prec = v;
        else if (!strcmp(k, "--only")) only = v;
        else {
            fprintf(stderr, "bench_ops_cuda: unknown option %s\n", k);
            return 2;
        }
    }
    if (T < B || B < 1 || NKV < 1 || NH % NKV || C < 1 || HD < 1 || F < 1 || V < 1 || iters < 1) {
        fprintf(stderr, "bench_ops_cuda: bad shape\n");
        return 2;
    }
    const int modes[3] = {RLC_CUDA_FP32, RLC_CUDA_BF16_GEMM, RLC_CUDA_MIXED};
    int run[3], n_run = 0;
    for (int m : modes)
        if (!strcmp(prec, "all") || !strcmp(prec, rlc_ops_cuda_precision_name(m))) run[n_run++] = m;
    if (!n_run) {
        fprintf(stderr, "bench_ops_cuda: --precision %s: expected mixed, bf16-gemm, fp32 or all\n", prec);
        return 2;
    }
    G = rlc_ops_cuda();
    cudaDeviceProp prop;
    RLC_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    printf("bench_ops_cuda on %s: T=%d (B=%d sequences) C=%d NH/NKV=%d/%d HD=%d F=%d V=%d, %d iterations\n",
           prop.name, T, B, C, NH, NKV, HD, F, V, iters);
    for (int i = 0; i < n_run; i++) {
        rlc_ops_cuda_set_precision(run[i]); // nothing is allocated between the modes
        bench_mode(T, B, C, NH, NKV, HD, F, V);
    }
    rlc_ops_cuda_release();
    return 0;
}
