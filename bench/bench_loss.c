// bench/bench_loss.c: the policy loss of the CPU backend (rlc_policy_loss, host/loss.c) over packed batches of
// 4k to 32k tokens (sequences of 256 tokens, a 64-token masked prompt each), for PPO (dual clip, k3 KL,
// entropy bonus, token TIS) and GSPO (sequence-level TIS). Per case it prints the time, the effective
// bandwidth (bytes the op must move: logp, old, ref, roll, adv, entropy and mask read, dlogp and dent written:
// 33 B per token), the peak extra memory (none on the CPU: the op allocates nothing) and the ratio to a memcpy
// bandwidth measured in the same run (read + write of a 64 MiB buffer). The GPU version is
// bench/gpu/bench_loss_gpu.cu (target there: >= 70% of the device copy bandwidth).
//   bench_loss [--reps 20]
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rlc/loss.h"
#include "rlc/util.h"

static double memcpy_gbs(size_t bytes, int reps) {
    char *a = rlc_malloc(bytes), *b = rlc_malloc(bytes);
    memset(a, 1, bytes);
    memset(b, 2, bytes);
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) {
        double t0 = rlc_now();
        memcpy(b, a, bytes);
        double dt = rlc_now() - t0;
        if (r > 0 && dt < best) best = dt;
    }
    volatile char sink = b[bytes / 2];
    (void)sink;
    free(a);
    free(b);
    return 2.0 * bytes / best / 1e9;
}

static float frand(unsigned *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)(*s >> 8) / 16777216.0f;
}

int main(int argc, char **argv) {
    int reps = 20;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench_loss: unknown option %s (expected --reps)\n", argv[i]);
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    const double copy = memcpy_gbs((size_t)64 << 20, 5);
    printf("bench_loss (CPU backend): policy loss vs memcpy bandwidth (%.1f GB/s, read + write, same run)\n", copy);
    printf("%-5s %6s %5s | %9s %8s | %9s | %s\n", "loss", "T", "B", "time us", "GB/s", "extra B", "vs memcpy");
    const int Ts[3] = {4096, 16384, 32768};
    for (int ti = 0; ti < 3; ti++) {
        const int T = Ts[ti], L = 256, B = T / L;
        int *cu = rlc_malloc((size_t)(B + 1) * sizeof(int));
        uint8_t *mask = rlc_malloc((size_t)T);
        float *x[6];
        for (int k = 0; k < 6; k++) x[k] = rlc_malloc((size_t)T * sizeof(float));
        float *dlogp = rlc_malloc((size_t)T * sizeof(float)), *dent = rlc_malloc((size_t)T * sizeof(float));
        unsigned s = 12345u + T;
        for (int i = 0; i <= B; i++) cu[i] = i * L;
        for (int t = 0; t < T; t++) {
            mask[t] = t % L >= 64;
            float lp = -4.0f * frand(&s);
            x[0][t] = lp;                                  // logp
            x[1][t] = lp + 0.4f * (frand(&s) - 0.5f);      // old
            x[2][t] = lp + 0.4f * (frand(&s) - 0.5f);      // ref
            x[3][t] = x[1][t] + 0.2f * (frand(&s) - 0.5f); // roll
            x[4][t] = 2.0f * frand(&s) - 1.0f;             // adv
            x[5][t] = 3.0f * frand(&s);                    // entropy
        }
        rlc_loss_batch b = {T, B, cu, mask};
        rlc_policy_inputs in = {x[0], x[1], x[2], x[3], x[4], x[5]};
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
            rlc_loss_norm nrm = {0, 0, 1024};
            rlc_loss_norm_add(&nrm, &b);
            double best = 1e30, loss = 0;
            for (int r = 0; r < reps + 1; r++) {
                rlc_loss_stats st;
                memset(&st, 0, sizeof st);
                double t0 = rlc_now();
                loss = rlc_policy_loss(&cfg, &nrm, &b, &in, dlogp, dent, &st);
                double dt = rlc_now() - t0;
                if (r > 0 && dt < best) best = dt;
            }
            const double bytes = 33.0 * T;
            printf("%-5s %6d %5d | %9.1f %8.2f | %9d | %.2fx%s\n", kind == 0 ? "ppo" : "gspo", T, B, best * 1e6,
                   bytes / best / 1e9, 0, bytes / best / 1e9 / copy, loss == loss ? "" : "  (NaN LOSS)");
        }
        free(cu), free(mask), free(dlogp), free(dent);
        for (int k = 0; k < 6; k++) free(x[k]);
    }
    return 0;
}
