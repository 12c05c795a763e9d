// bench/gpu/bench_loss_gpu.cu: the policy-loss kernels (kernels/cuda/loss.cu) on a GPU over packed batches of
// 4k to 32k tokens (the issue's shapes; there the launches, not the bytes, dominate) and of 1M and 8M tokens
// (where bandwidth does), sequences of 256 tokens with a 64-token masked prompt. Per case it prints the time
// (cudaEvents, best of --reps after a warm-up, each rep queued behind an L2 flush: bench_gpu.h), the effective
// bandwidth (logp, old, ref, roll, adv, entropy and mask read, dlogp and dent written: 33 B per token), the time
// with the device idle at the start event (how every loss figure up to 2026-11-27 was taken: it adds the host's
// launch latency), the extra memory (the workspace) and the ratio to the device copy bandwidth
// (cudaMemcpyAsync device to device, read + write, of the same bytes and of 256 MiB, timed the same queued way)
// measured in the same run. Target (issue 5): >= 70% of copy bandwidth. CPU version: bench/bench_loss.c.
// PPO runs without a per-sequence pre-pass (token-mean weights are constant); GSPO with sequence TIS needs it:
// row gspo is the fused kernel (the default), row gspo-sep the separate pre-pass kernels, timed in the same run.
// Before timing, PPO, GSPO and CISPO on a small packed batch are compared with the CPU twin rlc_policy_loss
// (tolerances of tests/emu/test_loss.cpp: gradients 1e-5 relative + 1e-6 of the largest, loss and sums 1e-5
// relative), with aligned inputs, misaligned inputs (scalar path) and a one-block grid, and the aligned run
// must repeat bit for bit. Exit status 1 on a mismatch.
//   bench_loss_gpu [--reps 20] [--max-tokens 8388608] [--min-tokens 0] [--max-blocks 0] [--check 1]
//     --max-blocks N  cap the token kernels' grid at N blocks (rlc_cuda_loss_set_max_blocks; 0 = default 1024)
//     --check 0       skip the comparison with the CPU twin
#include "rlc_cuda.h"

#include "bench_gpu.h"

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

// Milliseconds of the best of reps runs of fn after one warm-up run.
template <class F> static float time_best(int reps, F fn, BenchStart start = BENCH_QUEUED) {
    return bench_time(reps, 1, fn, start).best;
}

// Device copy bandwidth (GB/s, read + write) of `bytes`.
static double copy_gbs(size_t bytes, int reps) {
    void *a, *b;
    RLC_CUDA_CHECK(cudaMalloc(&a, bytes));
    RLC_CUDA_CHECK(cudaMalloc(&b, bytes));
    RLC_CUDA_CHECK(cudaMemset(a, 1, bytes));
    const float ms = time_best(reps, [&] { RLC_CUDA_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, 0)); });
    RLC_CUDA_CHECK(cudaFree(a));
    RLC_CUDA_CHECK(cudaFree(b));
    return 2.0 * bytes / (ms * 1e-3) / 1e9;
}

// One configuration of the check: 0 = PPO (dual clip, k3 KL, entropy, token TIS truncation, token-mean),
// 1 = GSPO (sequence TIS mask, seq-mean-token-sum), 2 = CISPO (k2 KL, entropy, seq-mean-token-mean).
static rlc_loss_config check_cfg(int kind) {
    rlc_loss_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.policy = kind == 0 ? RLC_PL_PPO : kind == 1 ? RLC_PL_GSPO : RLC_PL_CISPO;
    cfg.eps_low = 0.2f, cfg.eps_high = 0.28f, cfg.dual_clip = kind == 0 ? 3.0f : 0.0f, cfg.cispo_eps_max = 1.2f;
    cfg.agg = kind == 0 ? RLC_AGG_TOKEN_MEAN : kind == 1 ? RLC_AGG_SEQ_MEAN_TOKEN_SUM : RLC_AGG_SEQ_MEAN_TOKEN_MEAN;
    cfg.kl_beta = 0.05f, cfg.kl_est = kind == 2 ? RLC_KL_K2 : RLC_KL_K3, cfg.ent_coef = 0.01f;
    cfg.tis = kind == 0 ? RLC_TIS_TOKEN : kind == 1 ? RLC_TIS_SEQ : RLC_TIS_OFF;
    cfg.tis_mode = kind == 0 ? RLC_TIS_TRUNCATE : RLC_TIS_MASK;
    cfg.tis_c = 2.0f, cfg.tis_c_min = 0.5f, cfg.tis_c_max = 1.5f;
    return cfg;
}

// The kernels against the CPU twin on a small packed batch (sequences of 0 to 700 tokens, T not a multiple of
// 4), three configurations, each with 16-byte aligned inputs (vector loads), inputs one element off (the
// scalar path) and a one-block grid (many steps per warp); each run is repeated and must give the same bits,
// and once more with the separate pre-pass kernels (rlc_cuda_loss_set_fused(0)), which must give them too.
// Returns the number of failures.
static int check_vs_cpu(void) {
    std::vector<int> lens;
    for (int i = 0; i < 14; i++) lens.push_back(256);
    for (int L : {1, 2, 0, 700, 3}) lens.push_back(L);
    const int B = (int)lens.size();
    std::vector<int> cu(B + 1, 0);
    for (int i = 0; i < B; i++) cu[i + 1] = cu[i] + lens[i];
    const int T = cu[B];
    std::vector<uint8_t> mask(T);
    std::vector<float> x[6];
    for (int k = 0; k < 6; k++) x[k].resize(T);
    unsigned s = 7;
    auto rnd = [&] {
        s = s * 1664525u + 1013904223u;
        return (float)(s >> 8) / 16777216.0f;
    };
    for (int i = 0; i < B; i++)
        for (int t = cu[i]; t < cu[i + 1]; t++) {
            mask[t] = (t - cu[i] >= 64 || lens[i] < 64) && t % 17 != 0;
            const float lp = -4.0f * rnd();
            x[0][t] = lp, x[1][t] = lp + 0.3f * (rnd() - 0.5f), x[2][t] = lp + 0.4f * (rnd() - 0.5f);
            x[3][t] = x[1][t] + 0.2f * (rnd() - 0.5f), x[4][t] = (float)(i % 5) - 2.0f, x[5][t] = 3.0f * rnd();
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
    const int pad = 4; // room for the misaligned copies
    RLC_CUDA_CHECK(cudaMalloc(&d_cu, (B + 1) * 4));
    RLC_CUDA_CHECK(cudaMalloc(&d_mask, T + pad));
    RLC_CUDA_CHECK(cudaMemcpy(d_cu, cu.data(), (B + 1) * 4, cudaMemcpyHostToDevice));
    for (int k = 0; k < 6; k++) RLC_CUDA_CHECK(cudaMalloc(&d_x[k], (T + pad) * 4));
    RLC_CUDA_CHECK(cudaMalloc(&d_dlogp, (T + pad) * 4));
    RLC_CUDA_CHECK(cudaMalloc(&d_dent, (T + pad) * 4));
    RLC_CUDA_CHECK(cudaMalloc(&d_st, sizeof(rlc_loss_stats)));
    RLC_CUDA_CHECK(cudaMalloc(&d_loss, sizeof(double)));
    rlc_policy_inputs hin = {x[0].data(), x[1].data(), x[2].data(), x[3].data(), x[4].data(), x[5].data()};
    int fails = 0;
    for (int kind = 0; kind < 3; kind++)
        for (int variant = 0; variant < 3; variant++) {
            const int off = variant == 1 ? 1 : 0; // elements (floats and mask bytes)
            rlc_cuda_loss_set_max_blocks(variant == 2 ? 1 : 0);
            RLC_CUDA_CHECK(cudaMemcpy(d_mask + off, mask.data(), T, cudaMemcpyHostToDevice));
            for (int k = 0; k < 6; k++)
                RLC_CUDA_CHECK(cudaMemcpy(d_x[k] + off, x[k].data(), T * 4, cudaMemcpyHostToDevice));
            rlc_loss_batch db = {T, B, d_cu, d_mask + off};
            rlc_policy_inputs din = {d_x[0] + off, d_x[1] + off, d_x[2] + off, d_x[3] + off, d_x[4] + off, d_x[5] + off};
            const rlc_loss_config cfg = check_cfg(kind);
            std::vector<float> g_c(T), e_c(T), g(T), e(T), g2(T), g3(T);
            rlc_loss_stats st_c, st, st2, st3;
            memset(&st_c, 0, sizeof st_c);
            const double loss_c = rlc_policy_loss(&cfg, &nrm, &hb, &hin, g_c.data(), e_c.data(), &st_c);
            void *ws;
            RLC_CUDA_CHECK(cudaMalloc(&ws, rlc_cuda_policy_loss_workspace_bytes(T, B)));
            double loss = 0;
            for (int rep = 0; rep < 3; rep++) { // twice as set, then with the separate pre-pass kernels
                float *gr[3] = {g.data(), g2.data(), g3.data()};
                rlc_loss_stats *sr[3] = {&st, &st2, &st3};
                rlc_cuda_loss_set_fused(rep < 2);
                RLC_CUDA_CHECK(cudaMemset(d_st, 0, sizeof(rlc_loss_stats)));
                RLC_CUDA_CHECK(cudaMemset(d_dlogp, 0xff, (T + pad) * 4));
                fails += rlc_cuda_policy_loss(&cfg, &nrm, &db, &din, d_dlogp + off, d_dent + off, d_st, d_loss, ws,
                                              NULL) != 0;
                RLC_CUDA_CHECK(cudaMemcpy(gr[rep], d_dlogp + off, T * 4, cudaMemcpyDeviceToHost));
                RLC_CUDA_CHECK(cudaMemcpy(sr[rep], d_st, sizeof st, cudaMemcpyDeviceToHost));
                if (rep == 1) RLC_CUDA_CHECK(cudaMemcpy(&loss, d_loss, sizeof loss, cudaMemcpyDeviceToHost));
            }
            rlc_cuda_loss_set_fused(1);
            RLC_CUDA_CHECK(cudaMemcpy(e.data(), d_dent + off, T * 4, cudaMemcpyDeviceToHost));
            RLC_CUDA_CHECK(cudaFree(ws));
            double mx = 0;
            for (int t = 0; t < T; t++) mx = fmax(mx, fabs((double)g_c[t]));
            int bad = 0;
            auto expect = [&](bool ok, const char *what, long i, double got, double want) {
                if (!ok && bad++ < 3) fprintf(stderr, "  %s[%ld]: %.9g, CPU %.9g\n", what, i, got, want);
            };
            for (int t = 0; t < T; t++) {
                expect(fabs((double)g[t] - g_c[t]) <= 1e-5 * fabs((double)g_c[t]) + 1e-6 * mx, "dlogp", t, g[t],
                       g_c[t]);
                expect(fabs((double)e[t] - e_c[t]) <= 1e-5 * fabs((double)e_c[t]) + 1e-12, "dent", t, e[t], e_c[t]);
            }
            const double *a = (const double *)&st, *b = (const double *)&st_c;
            for (size_t k = 0; k < sizeof st / sizeof(double); k++)
                expect(fabs(a[k] - b[k]) <= 1e-9 + 1e-5 * fabs(b[k]), "stats field", (long)k, a[k], b[k]);
            expect(fabs(loss - loss_c) <= 1e-9 + 1e-5 * fabs(loss_c), "loss", 0, loss, loss_c);
            expect(!memcmp(g.data(), g2.data(), T * 4) && !memcmp(&st, &st2, sizeof st), "run-to-run bits", 0, 0, 0);
            expect(!memcmp(g.data(), g3.data(), T * 4) && !memcmp(&st, &st3, sizeof st),
                   "fused vs separate pre-pass bits", 0, 0, 0);
            static const char *kinds[3] = {"ppo", "gspo", "cispo"}, *vars[3] = {"aligned", "offset 1", "1 block"};
            printf("check vs CPU twin (%s, %s, T %d, B %d): %s (loss %.8g, CPU %.8g)\n", kinds[kind], vars[variant], T,
                   B, bad ? "FAILED" : "ok", loss, loss_c);
            fails += bad;
        }
    rlc_cuda_loss_set_max_blocks(0);
    for (int k = 0; k < 6; k++) RLC_CUDA_CHECK(cudaFree(d_x[k]));
    for (void *p : {(void *)d_cu, (void *)d_mask, (void *)d_dlogp, (void *)d_dent, (void *)d_st, (void *)d_loss})
        RLC_CUDA_CHECK(cudaFree(p));
    return fails;
}

int main(int argc, char **argv) {
    int reps = 20, max_tokens = 1 << 23, min_tokens = 0, max_blocks = 0, check = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--max-tokens")) max_tokens = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--min-tokens")) min_tokens = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--max-blocks")) max_blocks = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--check")) check = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench_loss_gpu: unknown option %s (expected --reps, --max-tokens, --min-tokens, "
                            "--max-blocks, --check)\n",
                    argv[i]);
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    cudaDeviceProp prop;
    RLC_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    int rc = check && check_vs_cpu() ? 1 : 0;
    rlc_cuda_loss_set_max_blocks(max_blocks); // token-kernel grid cap (0: the default); before the workspace sizes
    const double copy_big = copy_gbs((size_t)256 << 20, 10);
    printf("bench_loss_gpu on %s: policy-loss kernels vs device copy bandwidth (%.0f GB/s for 256 MiB, same run)\n",
           prop.name, copy_big);
    if (max_blocks > 0) printf("token-kernel grid capped at %d blocks (--max-blocks)\n", max_blocks);
    printf("%-8s %8s %6s | %9s %8s | %9s | %10s | %10s %9s | %s\n", "loss", "T", "B", "time us", "GB/s", "idle us",
           "extra KiB", "copy GB/s", "vs copy", "vs 256MiB copy");
    const int Ts[5] = {4096, 16384, 32768, 1 << 20, 1 << 23};
    const int L = 256;
    for (int ti = 0; ti < 5; ti++) {
        const int T = Ts[ti], B = T / L;
        if (T > max_tokens || T < min_tokens) continue;
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
        for (int kind = 0; kind < 3; kind++) { // ppo, gspo (fused kernel), gspo with the separate pre-pass
            rlc_loss_config cfg;
            memset(&cfg, 0, sizeof cfg);
            cfg.policy = kind == 0 ? RLC_PL_PPO : RLC_PL_GSPO;
            rlc_cuda_loss_set_fused(kind != 2);
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
            auto run = [&] { err |= rlc_cuda_policy_loss(&cfg, &nrm, &b, &in, dlogp, dent, st, loss, ws, NULL); };
            const float ms = time_best(reps, run), idle_ms = time_best(reps, run, BENCH_IDLE);
            double h_loss = 0;
            RLC_CUDA_CHECK(cudaMemcpy(&h_loss, loss, sizeof h_loss, cudaMemcpyDeviceToHost));
            if (!(h_loss == h_loss)) err = 1;
            const double gbs = bytes / (ms * 1e-3) / 1e9;
            printf("%-8s %8d %6d | %9.1f %8.1f | %9.1f | %10.1f | %10.0f %8.2fx | %.2fx%s\n",
                   kind == 0 ? "ppo" : kind == 1 ? "gspo" : "gspo-sep", T, B, ms * 1e3, gbs, idle_ms * 1e3, wsb / 1024.0, copy, gbs / copy,
                   gbs / copy_big, err ? "  (ERROR)" : "");
            rc |= err;
            RLC_CUDA_CHECK(cudaFree(ws));
        }
        rlc_cuda_loss_set_fused(1);
        for (int k = 0; k < 6; k++) RLC_CUDA_CHECK(cudaFree(x[k]));
        for (void *p : {(void *)dlogp, (void *)dent, (void *)mask, (void *)cu, (void *)st, (void *)loss})
            RLC_CUDA_CHECK(cudaFree(p));
    }
    return rc;
}
