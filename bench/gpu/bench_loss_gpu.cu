// bench/gpu/bench_loss_gpu.cu: the policy-loss kernels (kernels/cuda/loss.cu) on a GPU over packed batches of
// 4k to 32k tokens (the issue's shapes; there the launches, not the bytes, dominate) and of 1M and 8M tokens
// (where bandwidth does), sequences of 256 tokens with a 64-token masked prompt. Per case it prints the time
// (cudaEvents, best of --reps after a warm-up), the effective bandwidth (logp, old, ref, roll, adv, entropy
// and mask read, dlogp and dent written: 33 B per token), the extra memory (the workspace) and the ratio to the
// device copy bandwidth (cudaMemcpy device to device, read + write, of the same bytes and of 256 MiB) measured
// in the same run. Target (issue 5): >= 70% of copy bandwidth. CPU version: bench/bench_loss.c.
// Before timing, PPO (dual clip, k3 KL, entropy, token TIS truncation) and GSPO (sequence TIS mask) on 4096
// tokens are compared with the CPU twin rlc_policy_loss (tolerances of tests/emu/test_loss.cpp: gradients 1e-5
// relative + 1e-6 of the largest, loss and sums 1e-5 relative). Exit status 1 on a mismatch.
//   bench_loss_gpu [--reps 20] [--max-tokens 8388608]
#include "rlc_cuda.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>

#include <vector>

#include "loss.h"

__global__ void fill_inputs_kernel(float *logp, float *old, float *ref, float *roll, float *adv, float *ent,
                                   uint8_t *mask, int T, int L) {
    for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < T; t += gridDim.x * blockDim.x) {
        unsigned h = (unsigned)t * 2654435761u;
        float u[5];
        for (int k = 0; k < 5; k++) {
            h ^= h >> 16, h *= 0x7feb352du, h ^= h >> 15, h *= 0x846ca68bu, h ^= h >> 16;
            u[k] = (float)(h >> 8) / 16777216.0f;
        }
        const float lp = -4.0f * u[0];
        logp[t] = lp;
        old[t] = lp + 0.4f * (u[1] - 0.5f);
        ref[t] = lp + 0.4f * (u[2] - 0.5f);
        roll[t] = old[t] + 0.2f * (u[3] - 0.5f);
        adv[t] = 2.0f * u[4] - 1.0f;
        ent[t] = 3.0f * u[0];
        mask[t] = t % L >= 64;
    }
}
__global__ void cu_kernel(int *cu, int B, int L) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i <= B; i += gridDim.x * blockDim.x) cu[i] = i * L;
}

template <class F> static float time_best(int reps, F fn) {
    cudaEvent_t a, b;
    RLC_CUDA_CHECK(cudaEventCreate(&a));
    RLC_CUDA_CHECK(cudaEventCreate(&b));
    fn();
    RLC_CUDA_CHECK(cudaDeviceSynchronize());
    float best = 1e30f;
    for (int r = 0; r < reps; r++) {
        RLC_CUDA_CHECK(cudaEventRecord(a));
        fn();
        RLC_CUDA_CHECK(cudaEventRecord(b));
        RLC_CUDA_CHECK(cudaEventSynchronize(b));
        float ms = 0;
        RLC_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
        if (ms < best) best = ms;
    }
    RLC_CUDA_CHECK(cudaEventDestroy(a));
    RLC_CUDA_CHECK(cudaEventDestroy(b));
    return best;
}

// Device copy bandwidth (GB/s, read + write) of `bytes`.
static double copy_gbs(size_t bytes, int reps) {
    void *a, *b;
    RLC_CUDA_CHECK(cudaMalloc(&a, bytes));
    RLC_CUDA_CHECK(cudaMalloc(&b, bytes));
    RLC_CUDA_CHECK(cudaMemset(a, 1, bytes));
    const float ms = time_best(reps, [&] { RLC_CUDA_CHECK(cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice)); });
    RLC_CUDA_CHECK(cudaFree(a));
    RLC_CUDA_CHECK(cudaFree(b));
    return 2.0 * bytes / (ms * 1e-3) / 1e9;
}

static int check_vs_cpu(void) {
    const int T = 4096, L = 256, B = T / L;
    std::vector<int> cu(B + 1);
    std::vector<uint8_t> mask(T);
    std::vector<float> x[6];
    for (int k = 0; k < 6; k++) x[k].resize(T);
    unsigned s = 7;
    auto rnd = [&] {
        s = s * 1664525u + 1013904223u;
        return (float)(s >> 8) / 16777216.0f;
    };
    for (int i = 0; i <= B; i++) cu[i] = i * L;
    for (int t = 0; t < T; t++) {
        mask[t] = t % L >= 64 && t % 17 != 0;
        const float lp = -4.0f * rnd();
        x[0][t] = lp, x[1][t] = lp + 0.3f * (rnd() - 0.5f), x[2][t] = lp + 0.4f * (rnd() - 0.5f);
        x[3][t] = x[1][t] + 0.2f * (rnd() - 0.5f), x[4][t] = (float)((t / L) % 5) - 2.0f, x[5][t] = 3.0f * rnd();
        if (!mask[t]) x[0][t] = NAN, x[1][t] = INFINITY; // masked garbage must not leak
    }
    rlc_loss_batch hb = {T, B, cu.data(), mask.data()};
    rlc_loss_norm nrm = {0, 0, 512};
    rlc_loss_norm_add(&nrm, &hb);
    int *d_cu;
    uint8_t *d_mask;
    float *d_x[6], *d_dlogp, *d_dent;
    rlc_loss_stats *d_st;
    double *d_loss;
    RLC_CUDA_CHECK(cudaMalloc(&d_cu, (B + 1) * 4));
    RLC_CUDA_CHECK(cudaMalloc(&d_mask, T));
    RLC_CUDA_CHECK(cudaMemcpy(d_cu, cu.data(), (B + 1) * 4, cudaMemcpyHostToDevice));
    RLC_CUDA_CHECK(cudaMemcpy(d_mask, mask.data(), T, cudaMemcpyHostToDevice));
    for (int k = 0; k < 6; k++) {
        RLC_CUDA_CHECK(cudaMalloc(&d_x[k], T * 4));
        RLC_CUDA_CHECK(cudaMemcpy(d_x[k], x[k].data(), T * 4, cudaMemcpyHostToDevice));
    }
    RLC_CUDA_CHECK(cudaMalloc(&d_dlogp, T * 4));
    RLC_CUDA_CHECK(cudaMalloc(&d_dent, T * 4));
    RLC_CUDA_CHECK(cudaMalloc(&d_st, sizeof(rlc_loss_stats)));
    RLC_CUDA_CHECK(cudaMalloc(&d_loss, sizeof(double)));
    void *ws;
    RLC_CUDA_CHECK(cudaMalloc(&ws, rlc_cuda_policy_loss_workspace_bytes(T, B)));
    rlc_loss_batch db = {T, B, d_cu, d_mask};
    rlc_policy_inputs hin = {x[0].data(), x[1].data(), x[2].data(), x[3].data(), x[4].data(), x[5].data()};
    rlc_policy_inputs din = {d_x[0], d_x[1], d_x[2], d_x[3], d_x[4], d_x[5]};
    int fails = 0;
    for (int kind = 0; kind < 2; kind++) {
        rlc_loss_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.policy = kind == 0 ? RLC_PL_PPO : RLC_PL_GSPO;
        cfg.eps_low = 0.2f, cfg.eps_high = 0.28f, cfg.dual_clip = kind == 0 ? 3.0f : 0.0f;
        cfg.agg = kind == 0 ? RLC_AGG_TOKEN_MEAN : RLC_AGG_SEQ_MEAN_TOKEN_SUM;
        cfg.kl_beta = 0.05f, cfg.kl_est = RLC_KL_K3, cfg.ent_coef = 0.01f;
        cfg.tis = kind == 0 ? RLC_TIS_TOKEN : RLC_TIS_SEQ;
        cfg.tis_mode = kind == 0 ? RLC_TIS_TRUNCATE : RLC_TIS_MASK;
        cfg.tis_c = 2.0f, cfg.tis_c_min = 0.5f, cfg.tis_c_max = 1.5f;
        std::vector<float> g_c(T), e_c(T), g(T), e(T);
        rlc_loss_stats st_c, st;
        memset(&st_c, 0, sizeof st_c);
        const double loss_c = rlc_policy_loss(&cfg, &nrm, &hb, &hin, g_c.data(), e_c.data(), &st_c);
        RLC_CUDA_CHECK(cudaMemset(d_st, 0, sizeof(rlc_loss_stats)));
        fails += rlc_cuda_policy_loss(&cfg, &nrm, &db, &din, d_dlogp, d_dent, d_st, d_loss, ws, NULL) != 0;
        double loss = 0;
        RLC_CUDA_CHECK(cudaMemcpy(g.data(), d_dlogp, T * 4, cudaMemcpyDeviceToHost));
        RLC_CUDA_CHECK(cudaMemcpy(e.data(), d_dent, T * 4, cudaMemcpyDeviceToHost));
        RLC_CUDA_CHECK(cudaMemcpy(&st, d_st, sizeof st, cudaMemcpyDeviceToHost));
        RLC_CUDA_CHECK(cudaMemcpy(&loss, d_loss, sizeof loss, cudaMemcpyDeviceToHost));
        double mx = 0;
        for (int t = 0; t < T; t++) mx = fmax(mx, fabs((double)g_c[t]));
        int bad = 0;
        auto expect = [&](bool ok, const char *what, long i, double got, double want) {
            if (!ok && bad++ < 3) fprintf(stderr, "  %s[%ld]: %.9g, CPU %.9g\n", what, i, got, want);
        };
        for (int t = 0; t < T; t++) {
            expect(fabs((double)g[t] - g_c[t]) <= 1e-5 * fabs((double)g_c[t]) + 1e-6 * mx, "dlogp", t, g[t], g_c[t]);
            expect(fabs((double)e[t] - e_c[t]) <= 1e-5 * fabs((double)e_c[t]) + 1e-12, "dent", t, e[t], e_c[t]);
        }
        const double *a = (const double *)&st, *b = (const double *)&st_c;
        for (size_t k = 0; k < sizeof st / sizeof(double); k++)
            expect(fabs(a[k] - b[k]) <= 1e-9 + 1e-5 * fabs(b[k]), "stats field", (long)k, a[k], b[k]);
        expect(fabs(loss - loss_c) <= 1e-9 + 1e-5 * fabs(loss_c), "loss", 0, loss, loss_c);
        printf("check vs CPU twin (%s, T %d): %s (loss %.8g, CPU %.8g)\n", kind == 0 ? "ppo" : "gspo", T,
               bad ? "FAILED" : "ok", loss, loss_c);
        fails += bad;
    }
    for (int k = 0; k < 6; k++) RLC_CUDA_CHECK(cudaFree(d_x[k]));
    for (void *p : {(void *)d_cu, (void *)d_mask, (void *)d_dlogp, (void *)d_dent, (void *)d_st, (void *)d_loss, ws})
        RLC_CUDA_CHECK(cudaFree(p));
    return fails;
}

int main(int argc, char **argv) {
    int reps = 20, max_tokens = 1 << 23;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--max-tokens")) max_tokens = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench_loss_gpu: unknown option %s (expected --reps, --max-tokens)\n", argv[i]);
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    cudaDeviceProp prop;
    RLC_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    int rc = check_vs_cpu() ? 1 : 0;
    const double copy_big = copy_gbs((size_t)256 << 20, 10);
    printf("bench_loss_gpu on %s: policy-loss kernels vs device copy bandwidth (%.0f GB/s for 256 MiB, same run)\n",
           prop.name, copy_big);
    printf("%-5s %8s %6s | %9s %8s | %10s | %10s %9s | %s\n", "loss", "T", "B", "time us", "GB/s", "extra KiB",
           "copy GB/s", "vs copy", "vs 256MiB copy");
    const int Ts[5] = {4096, 16384, 32768, 1 << 20, 1 << 23};
    const int L = 256;
    for (int ti = 0; ti < 5; ti++) {
        const int T = Ts[ti], B = T / L;
        if (T > max_tokens) continue;
        float *x[6], *dlogp, *dent;
        uint8_t *mask;
        int *cu;
        rlc_loss_stats *st;
        double *loss;
        for (int k = 0; k < 6; k++) RLC_CUDA_CHECK(cudaMalloc(&x[k], (size_t)T * 4));
        RLC_CUDA_CHECK(cudaMalloc(&dlogp, (size_t)T * 4));
        RLC_CUDA_CHECK(cudaMalloc(&dent, (size_t)T * 4));
        RLC_CUDA_CHECK(cudaMalloc(&mask, (size_t)T));
        RLC_CUDA_CHECK(cudaMalloc(&cu, (size_t)(B + 1) * 4));
        RLC_CUDA_CHECK(cudaMalloc(&st, sizeof(rlc_loss_stats)));
        RLC_CUDA_CHECK(cudaMalloc(&loss, sizeof(double)));
        RLC_CUDA_CHECK(cudaMemset(st, 0, sizeof(rlc_loss_stats)));
        RLC_LAUNCH(fill_inputs_kernel, 1024, 256, 0, 0, x[0], x[1], x[2], x[3], x[4], x[5], mask, T, L);
        RLC_LAUNCH(cu_kernel, 64, 256, 0, 0, cu, B, L);
        RLC_CUDA_CHECK(cudaGetLastError());
        const double bytes = 33.0 * T, copy = copy_gbs((size_t)bytes, reps);
        rlc_loss_batch b = {T, B, cu, mask};
        rlc_policy_inputs in = {x[0], x[1], x[2], x[3], x[4], x[5]};
        // the normalisers are host values: counted from the layout (every sequence has L - 64 response tokens)
        rlc_loss_norm nrm = {(double)B * (L - 64), (double)B, 1024};
        for (int kind = 0; kind < 2; kind++) {
            rlc_loss_config cfg;
            memset(&cfg, 0, sizeof cfg);
            cfg.policy = kind == 0 ? RLC_PL_PPO : RLC_PL_GSPO;
            cfg.eps_low = 0.2f, cfg.eps_high = 0.28f, cfg.dual_clip = kind == 0 ? 3.0f : 0.0f;
            cfg.agg = RLC_AGG_TOKEN_MEAN;
            cfg.kl_beta = 0.01f, cfg.kl_est = RLC_KL_K3;
            cfg.ent_coef = 0.001f;
            cfg.tis = kind == 0 ? RLC_TIS_TOKEN : RLC_TIS_SEQ;
            cfg.tis_mode = RLC_TIS_TRUNCATE, cfg.tis_c = 2.0f;
            const size_t wsb = rlc_cuda_policy_loss_workspace_bytes(T, B);
            void *ws;
            RLC_CUDA_CHECK(cudaMalloc(&ws, wsb));
            int err = 0;
            const float ms = time_best(reps, [&] {
                err |= rlc_cuda_policy_loss(&cfg, &nrm, &b, &in, dlogp, dent, st, loss, ws, NULL);
            });
            double h_loss = 0;
            RLC_CUDA_CHECK(cudaMemcpy(&h_loss, loss, sizeof h_loss, cudaMemcpyDeviceToHost));
            if (!(h_loss == h_loss)) err = 1;
            const double gbs = bytes / (ms * 1e-3) / 1e9;
            printf("%-5s %8d %6d | %9.1f %8.1f | %10.1f | %10.0f %8.2fx | %.2fx%s\n", kind == 0 ? "ppo" : "gspo", T, B,
                   ms * 1e3, gbs, wsb / 1024.0, copy, gbs / copy, gbs / copy_big, err ? "  (ERROR)" : "");
            rc |= err;
            RLC_CUDA_CHECK(cudaFree(ws));
        }
        for (int k = 0; k < 6; k++) RLC_CUDA_CHECK(cudaFree(x[k]));
        for (void *p : {(void *)dlogp, (void *)dent, (void *)mask, (void *)cu, (void *)st, (void *)loss})
            RLC_CUDA_CHECK(cudaFree(p));
    }
    return rc;
}
