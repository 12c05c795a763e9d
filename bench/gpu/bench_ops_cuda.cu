// bench/gpu/bench_ops_cuda.cu: times every entry of the CUDA op table (rlc_ops_cuda, kernels/cuda/ops_cuda.cu)
// at one transformer layer's shapes (default: Qwen2.5-0.5B, 4096 packed tokens in 8 sequences), through the
// table exactly as host code calls it: fp32 tensors, the bf16 conversions of the attention and log-prob
// adapters included. Prints the time per call and the effective bandwidth (memory-bound entries: bytes the
// entry must read and write at least) or TFLOP/s (GEMM-like entries).
//   bench_ops_cuda [--tokens T] [--seqs B] [--dim C] [--heads NH] [--kv-heads NKV] [--head-dim HD]
//                  [--hidden F] [--vocab V] [--iters N] [--matmul fp32|bf16|both] [--only NAME]
// --matmul picks the matmul precision (RLC_CUDA_FP32: cuBLAS sgemm; BF16: operands converted to bf16,
// fp32 accumulation); both (the default) times the two in the same run. --only runs the entries whose name
// contains NAME.
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

int main(int argc, char **argv) {
    int T = 4096, B = 8, C = 896, NH = 14, NKV = 2, HD = 64, F = 4864, V = 151936;
    const char *mm = "both";
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
        else if (!strcmp(k, "--matmul")) mm = v;
        else if (!strcmp(k, "--only")) only = v;
        else {
            fprintf(stderr, "bench_ops_cuda: unknown option %s\n", k);
            return 2;
        }
    }
    if (T < B || B < 1 || NH % NKV) {
        fprintf(stderr, "bench_ops_cuda: bad shape\n");
        return 2;
    }
    G = rlc_ops_cuda();
    cudaDeviceProp prop;
    RLC_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    printf("bench_ops_cuda on %s: T=%d (B=%d sequences) C=%d NH/NKV=%d/%d HD=%d F=%d V=%d, %d iterations\n",
           prop.name, T, B, C, NH, NKV, HD, F, V, iters);
    char sh[64];
    const size_t TC = (size_t)T * C, TF = (size_t)T * F, f4 = sizeof(float);

    // ---- elementwise
    float *a = dalloc_f(TF, 1, 1), *b = dalloc_f(TF, 1, 2), *c = dalloc_f(TF, 1, 3), *d = dalloc_f(TF, 1, 4);
    snprintf(sh, sizeof sh, "n=%zu", TF);
    report("add", sh, 'B', 3.0 * TF * f4, [&] { G->add(c, a, b, TF); });
    report("scale", sh, 'B', 2.0 * TF * f4, [&] { G->scale(c, 0.999f, TF); });
    report("sumsq", sh, 'B', 1.0 * TF * f4, [&] { (void)G->sumsq(a, TF); });
    report("swiglu_forward", sh, 'B', 3.0 * TF * f4, [&] { G->swiglu_forward(c, a, b, TF); });
    report("swiglu_backward", sh, 'B', 5.0 * TF * f4, [&] { G->swiglu_backward(c, d, a, a, b, TF); });
    {
        const size_t n = (size_t)3 * C * F; // one layer's MLP weights
        float *p = dalloc_f(n, 1, 5), *g = dalloc_f(n, 1, 6), *m = dalloc_f(n, 0.1f, 7), *v2 = dalloc_f(n, 0, 8);
        snprintf(sh, sizeof sh, "n=%zu", n);
        int t = 1;
        report("adamw_update", sh, 'B', 7.0 * n * f4,
               [&] { G->adamw_update(p, g, m, v2, n, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, t++); });
        for (float *q : {p, g, m, v2}) G->free(q);
    }

    // ---- embedding (V rows of C; tokens with repeats as in text)
    {
        std::vector<int> tok(T);
        for (int t = 0; t < T; t++) tok[t] = (int)(((unsigned)t * 2654435761u) % (unsigned)(t % 4 ? V : 64));
        int *dt = dalloc_i(tok);
        float *wte = dalloc_f((size_t)V * C, 1, 9), *dwte = dalloc_f((size_t)V * C, 0, 10);
        snprintf(sh, sizeof sh, "T=%d C=%d V=%d", T, C, V);
        report("embedding_forward", sh, 'B', 2.0 * TC * f4, [&] { G->embedding_forward(a, dt, wte, T, C); });
        report("embedding_backward", sh, 'B', 3.0 * TC * f4, [&] { G->embedding_backward(dwte, a, dt, T, C); });
        G->free(dt);
        G->free(wte);
        G->free(dwte);
    }

    // ---- matmul (the MLP up projection: T x C -> F)
    {
        float *w = dalloc_f((size_t)F * C, 0.05f, 11), *bias = dalloc_f(F, 0.1f, 12), *dw = dalloc_f((size_t)F * C, 0, 13);
        float *db = dalloc_f(F, 0, 14), *x = dalloc_f(TC, 1, 15), *dx = dalloc_f(TC, 0, 16);
        const double fl = 2.0 * T * C * F;
        for (int mode = 0; mode < 2; mode++) {
            if (strcmp(mm, "both") && strcmp(mm, mode ? "bf16" : "fp32")) continue;
            rlc_ops_cuda_set_precision(mode ? RLC_CUDA_BF16_GEMM : RLC_CUDA_FP32);
            char nm[64];
            snprintf(sh, sizeof sh, "T=%d C=%d OC=%d", T, C, F);
            snprintf(nm, sizeof nm, "matmul_forward (%s, bias)", mode ? "bf16" : "fp32");
            report(nm, sh, 'F', fl, [&] { G->matmul_forward(a, x, w, bias, T, C, F); });
            snprintf(nm, sizeof nm, "matmul_backward (%s, all)", mode ? "bf16" : "fp32");
            report(nm, sh, 'F', 2 * fl, [&] { G->matmul_backward(dx, dw, db, a, x, w, T, C, F); });
        }
        rlc_ops_cuda_set_precision(RLC_CUDA_FP32);
        for (float *q : {w, bias, dw, db, x, dx}) G->free(q);
    }

    // ---- RMSNorm, RoPE
    {
        float *x = dalloc_f(TC, 1, 17), *wt = dalloc_f(C, 1, 18), *rs = dalloc_f(T, 0, 19), *dx = dalloc_f(TC, 0, 20);
        float *dwt = dalloc_f(C, 0, 21);
        snprintf(sh, sizeof sh, "T=%d C=%d", T, C);
        report("rmsnorm_forward", sh, 'B', 2.0 * TC * f4, [&] { G->rmsnorm_forward(a, rs, x, wt, 1e-6f, T, C); });
        report("rmsnorm_backward", sh, 'B', 4.0 * TC * f4, [&] { G->rmsnorm_backward(dx, dwt, a, x, wt, rs, T, C); });
        std::vector<int> pos(T);
        for (int t = 0; t < T; t++) pos[t] = t % (T / B);
        int *dp = dalloc_i(pos);
        const size_t nq = (size_t)T * NH * HD;
        snprintf(sh, sizeof sh, "T=%d H=%d HD=%d", T, NH, HD);
        report("rope_forward", sh, 'B', 2.0 * nq * f4, [&] { G->rope_forward(a, dp, T, NH, HD, 1e6f); });
        report("rope_backward", sh, 'B', 2.0 * nq * f4, [&] { G->rope_backward(a, dp, T, NH, HD, 1e6f); });
        G->free(dp);
        for (float *q : {x, wt, rs, dx, dwt}) G->free(q);
    }

    // ---- attention: B sequences of T/B tokens (the last takes the rest)
    {
        std::vector<int> cu(B + 1);
        for (int i = 0; i <= B; i++) cu[i] = i == B ? T : i * (T / B);
        int *dcu = dalloc_i(cu);
        const size_t nq = (size_t)T * NH * HD, nk = (size_t)T * NKV * HD;
        float *q = dalloc_f(nq, 1, 22), *k = dalloc_f(nk, 1, 23), *v = dalloc_f(nk, 1, 24), *o = dalloc_f(nq, 0, 25);
        float *lse = dalloc_f((size_t)T * NH, 0, 26), *dq = dalloc_f(nq, 0, 27), *dk = dalloc_f(nk, 0, 28);
        float *dv = dalloc_f(nk, 0, 29), *dout = dalloc_f(nq, 1, 30);
        double L = (double)T / B, fl = 4.0 * B * (L * (L + 1) / 2) * NH * HD; // causal: QK^T and PV
        snprintf(sh, sizeof sh, "B=%d T=%d NH=%d HD=%d", B, T, NH, HD);
        report("attention_forward", sh, 'F', fl, [&] { G->attention_forward(o, lse, q, k, v, dcu, B, T, NH, NKV, HD); });
        report("attention_backward", sh, 'F', 2.5 * fl,
               [&] { G->attention_backward(dq, dk, dv, dout, q, k, v, o, lse, dcu, B, T, NH, NKV, HD); });
        // decode: 64 rows in 64 slots of a 2048-token cache, each with 1024 keys
        const int R = 64, cap = 2048, len = 1024;
        std::vector<int> slot(R), kvl(R, len);
        for (int i = 0; i < R; i++) slot[i] = i;
        int *ds = dalloc_i(slot), *dl = dalloc_i(kvl);
        const size_t ncache = (size_t)R * cap * NKV * HD;
        float *kc = dalloc_f(ncache, 1, 31), *vc = dalloc_f(ncache, 1, 32);
        snprintf(sh, sizeof sh, "rows=%d kv_len=%d cap=%d", R, len, cap);
        report("attention_decode", sh, 'B', 2.0 * R * len * NKV * HD * f4,
               [&] { G->attention_decode(o, q, kc, vc, ds, dl, R, cap, NH, NKV, HD); });
        G->free(dcu);
        G->free(ds);
        G->free(dl);
        for (float *p : {q, k, v, o, lse, dq, dk, dv, dout, kc, vc}) G->free(p);
    }

    // ---- fused log-prob over the LM head
    {
        float *h = dalloc_f(TC, 1, 33), *w = dalloc_f((size_t)V * C, 0.05f, 34), *dh = dalloc_f(TC, 0, 35);
        float *dw = dalloc_f((size_t)V * C, 0, 36), *lp = dalloc_f(T, 0, 37), *ent = dalloc_f(T, 0, 38);
        float *lse = dalloc_f(T, 0, 39), *dlp = dalloc_f(T, 1, 40), *dent = dalloc_f(T, 0.1f, 41);
        std::vector<int> tgt(T);
        for (int t = 0; t < T; t++) tgt[t] = (int)(((unsigned)t * 40503u) % (unsigned)V);
        int *dt = dalloc_i(tgt);
        const double fl = 2.0 * T * C * (double)V;
        snprintf(sh, sizeof sh, "T=%d C=%d V=%d", T, C, V);
        report("logprob_forward", sh, 'F', fl, [&] { G->logprob_forward(lp, ent, lse, h, w, dt, T, C, V, 1.0f); });
        report("logprob_backward", sh, 'F', 3 * fl,
               [&] { G->logprob_backward(dh, dw, dlp, dent, h, w, dt, lse, ent, T, C, V, 1.0f); });
        G->free(dt);
        for (float *p : {h, w, dh, dw, lp, ent, lse, dlp, dent}) G->free(p);
    }
    for (float *p : {a, b, c, d}) G->free(p);
    printf("workspace: %.1f MiB\n", rlc_ops_cuda_workspace_bytes() / 1048576.0);
    rlc_ops_cuda_release();
    return 0;
}
