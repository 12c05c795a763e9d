// bench/bench_scaling.c: data-parallel scaling of a fixed GRPO workload (strong scaling: the same global batch
// whatever the rank count), through the RL step API with a config built in code; and the overhead of the NCCL
// gradient path on one GPU.
//   mpirun -np N ./build/bench/bench_scaling [--device cpu|cuda] [--steps S] [--warmup W] [--prompts P]
//                                            [--no-baseline] [--set key=value ...]
//   ./build/bench/bench_scaling --nccl-overhead [--steps S] [--warmup W] [--prompts P] [--set key=value ...]
// Scaling: rank 0 first runs the workload alone (the 1-rank baseline, no communication; the other ranks wait),
// then all N ranks run it; it prints tokens/s (trained tokens: prompt + response of every sequence, times epochs)
// in total and per rank, and the scaling efficiency = tokens/s with N ranks / (N * tokens/s with 1 rank). Rollouts
// are identical on every rank count, so both runs do the same work. On CPU give each rank its cores
// (OMP_NUM_THREADS); with --device cuda rank r uses GPU local_rank and the gradients go over NCCL (host/comm_nccl.c).
// --nccl-overhead (one process, one GPU): the workload on the CUDA backend without communication, then with the
// NCCL path forced on the single rank (what RLC_FORCE_NCCL=1 does to `rlc train`: every optimizer step's gradients
// all-reduced in buckets on a side stream, overlapped with the backward), then without again (drift check); it
// prints the step time and the update phase's time (forward + backward + optimizer of the training pass, where the
// collectives are) and their overhead ratios. The default model is small (one 25 MiB bucket); --set
// model.dim=... and RLC_NCCL_BUCKET_MB make more buckets.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rlc/backend.h"
#include "rlc/comm.h"
#include "rlc/config.h"
#include "rlc/rl.h"
#include "rlc/util.h"

typedef struct {
    double seconds, tokens, rollout_tokens, update_s;
    int have_dev;
    rlc_dist_dev_stats dev; // the NCCL path's counters over the timed steps
} bench_result;

static rlc_dist_dev_stats dev_stats(const rlc_dist *d) {
    rlc_dist_dev_stats st = {0};
    if (d->dev) d->dev->stats(d->dev->ctx, &st);
    return st;
}

static bench_result run(const rlc_config *cfg, const rlc_dist *d, const rlc_ops *ops, int warmup, int steps) {
    const rlc_task *task = rlc_task_find(cfg->task.name);
    rlc_rl rl;
    int max_tokens = cfg->rl.micro_batch_tokens;
    if (cfg->rollout.prompts_per_step * cfg->rollout.group_size > max_tokens)
        max_tokens = cfg->rollout.prompts_per_step * cfg->rollout.group_size;
    if (cfg->model.max_seq_len > max_tokens) max_tokens = cfg->model.max_seq_len;
    if (rlc_rl_init(&rl, cfg, ops, task, max_tokens) != 0) rlc_dist_abort(d, 1, "bench: rlc_rl_init");
    rlc_rl_set_dist(&rl, d);
    rlc_model_init_weights(&rl.model, cfg->seed);
    rlc_rl_begin(&rl);
    rlc_metrics mt;
    rlc_metrics_open(&mt, NULL);
    mt.quiet = 1;
    bench_result r = {0};
    rlc_dist_dev_stats s0 = {0};
    double t0 = 0;
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) {
            rlc_dist_barrier(d);
            t0 = rlc_now();
            s0 = dev_stats(d);
        }
        rlc_metrics_begin(&mt);
        if (rlc_rl_step(&rl, &mt) != 0) rlc_dist_abort(d, 1, "bench: RL step %d failed", s);
        if (s >= warmup) {
            r.tokens += rlc_metrics_get(&mt, "train_tokens", 0);
            r.rollout_tokens += rlc_metrics_get(&mt, "rollout_tokens", 0);
            r.update_s += rlc_metrics_get(&mt, "time_update", 0);
        }
    }
    rlc_dist_barrier(d);
    r.seconds = rlc_now() - t0;
    if (d->dev) {
        rlc_dist_dev_stats s1 = dev_stats(d);
        r.have_dev = 1;
        r.dev.rounds = s1.rounds - s0.rounds;
        r.dev.buckets = s1.buckets - s0.buckets;
        r.dev.buckets_overlapped = s1.buckets_overlapped - s0.buckets_overlapped;
        r.dev.wait_s = s1.wait_s - s0.wait_s;
    }
    rlc_metrics_close(&mt);
    rlc_rl_free(&rl);
    return r;
}

static void print_nccl(const bench_result *r) {
    if (!r->have_dev) return;
    printf("  NCCL: %ld rounds, %.1f buckets per round, %.0f%% launched during the backward, host wait %.2f ms per "
           "round\n", r->dev.rounds, r->dev.rounds ? (double)r->dev.buckets / r->dev.rounds : 0.0,
           r->dev.buckets ? 100.0 * r->dev.buckets_overlapped / r->dev.buckets : 0.0,
           r->dev.rounds ? 1e3 * r->dev.wait_s / r->dev.rounds : 0.0);
}

// --nccl-overhead: one rank, one GPU.
static int nccl_overhead(const rlc_config *cfg, rlc_dist *d, const rlc_ops *ops, int warmup, int steps) {
    char err[512];
    bench_result a = run(cfg, d, ops, warmup, steps);
    rlc_dist dn = *d;
    if (rlc_backend_attach_dist(ops, &dn, 0, 1, err, sizeof err) != 0) {
        fprintf(stderr, "bench_scaling: %s\n", err);
        return 1;
    }
    bench_result b = run(cfg, &dn, ops, warmup, steps);
    rlc_backend_detach_dist(&dn);
    bench_result a2 = run(cfg, d, ops, warmup, steps);
    printf("bench_scaling --nccl-overhead: GRPO, model %d x %d layers, %d prompts x %d samples, %d timed steps (%d "
           "warm-up), one rank on the CUDA backend\n",
           cfg->model.dim, cfg->model.n_layers, cfg->rollout.prompts_per_step, cfg->rollout.group_size, steps, warmup);
    printf("%-22s %10s %12s %12s %16s\n", "path", "step_s", "tokens/s", "update_s", "update_tokens/s");
    const bench_result *rows[3] = {&a, &b, &a2};
    const char *names[3] = {"no communication", "NCCL (forced, 1 rank)", "no communication (2)"};
    for (int i = 0; i < 3; i++)
        printf("%-22s %10.4f %12.0f %12.4f %16.0f\n", names[i], rows[i]->seconds / steps,
               rows[i]->tokens / rows[i]->seconds, rows[i]->update_s / steps, rows[i]->tokens / rows[i]->update_s);
    double base_step = 0.5 * (a.seconds + a2.seconds), base_upd = 0.5 * (a.update_s + a2.update_s);
    printf("overhead of the NCCL path: step time x%.4f (%+.2f%%), update phase x%.4f (%+.2f%%); the two runs without "
           "communication differ by %.2f%% (step) and %.2f%% (update)\n",
           b.seconds / base_step, 100.0 * (b.seconds / base_step - 1), b.update_s / base_upd,
           100.0 * (b.update_s / base_upd - 1), 100.0 * (a2.seconds - a.seconds) / base_step,
           100.0 * (a2.update_s - a.update_s) / base_upd);
    print_nccl(&b);
    if (a.tokens != b.tokens || a.tokens != a2.tokens)
        printf("note: the runs trained different token counts (%.0f, %.0f, %.0f)\n", a.tokens, b.tokens, a2.tokens);
    return 0;
}

int main(int argc, char **argv) {
    rlc_dist d;
    char err[512];
    if (rlc_dist_init(&d, &argc, &argv, err, sizeof err) != 0) {
        fprintf(stderr, "bench_scaling: %s\n", err);
        return 1;
    }
    int steps = 3, warmup = 1, prompts = 16, baseline = 1, overhead = 0, n_extra = 0;
    const char *device = "cpu";
    const char **extra = calloc((size_t)argc + 1, sizeof(char *));
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) steps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--warmup") == 0 && i + 1 < argc) warmup = atoi(argv[++i]);
        else if (strcmp(argv[i], "--prompts") == 0 && i + 1 < argc) prompts = atoi(argv[++i]);
        else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) device = argv[++i];
        else if (strcmp(argv[i], "--set") == 0 && i + 1 < argc) extra[n_extra++] = argv[++i];
        else if (strcmp(argv[i], "--no-baseline") == 0) baseline = 0;
        else if (strcmp(argv[i], "--nccl-overhead") == 0) overhead = 1, device = "cuda";
        else {
            if (d.rank == 0)
                fprintf(stderr, "usage: mpirun -np N bench_scaling [--device cpu|cuda] [--steps S] [--warmup W] "
                                "[--prompts P] [--no-baseline] [--set key=value ...]\n"
                                "       bench_scaling --nccl-overhead [--steps S] [--warmup W] [--prompts P] "
                                "[--set key=value ...]\n");
            rlc_dist_finalize(&d);
            free(extra);
            return 2;
        }
    }
    if (steps < 1) steps = 1;
    if (warmup < 0) warmup = 0;
    // the workload: the default model (128 x 4 layers), GRPO on 2-digit addition, 8 samples per prompt
    char o_prompts[64];
    snprintf(o_prompts, sizeof o_prompts, "rollout.prompts_per_step=%d", prompts);
    const char *base[] = {o_prompts, "rollout.group_size=8", "rollout.max_new_tokens=8", "rl.micro_batch_tokens=1024",
                          "rl.method=grpo", "rl.epochs=1", "rl.mini_batches=1", "sft.steps=0"};
    int n_base = (int)(sizeof base / sizeof base[0]);
    const char **over = calloc((size_t)(n_base + n_extra), sizeof(char *));
    memcpy(over, base, sizeof base);
    memcpy(over + n_base, extra, (size_t)n_extra * sizeof(char *)); // --set after the defaults: they win
    rlc_config cfg;
    if (rlc_config_parse(&cfg, NULL, "<bench_scaling>", over, n_base + n_extra, err, sizeof err))
        rlc_dist_abort(&d, 1, "bench_scaling: %s", err);
    free(over);
    free(extra);
    // the backend before anything else allocates (rank r: GPU local_rank)
    const rlc_ops *ops = rlc_backend_select(device, d.local_rank, err, sizeof err);
    if (!ops) rlc_dist_abort(&d, 1, "bench_scaling: --device %s: %s", device, err);
    int on_gpu = !rlc_backend_is_host(ops);

    if (overhead) {
        if (d.size != 1) rlc_dist_abort(&d, 1, "bench_scaling: --nccl-overhead runs on one rank (no mpirun -np N)");
        int rc = nccl_overhead(&cfg, &d, ops, warmup, steps);
        rlc_dist_finalize(&d);
        return rc;
    }

    bench_result one = {0}, all;
    int have_one = d.size == 1 || baseline;
    if (d.size > 1 && baseline) {
        if (d.rank == 0) {
            rlc_dist single;
            rlc_dist_single(&single);
            one = run(&cfg, &single, ops, warmup, steps);
        }
        rlc_dist_barrier(&d); // the other ranks wait for the baseline
    }
    // the job's collectives: NCCL on GPUs (several ranks), MPI on CPUs
    rlc_dist dj = d;
    if (rlc_backend_attach_dist(ops, &dj, 0, 0, err, sizeof err) != 0) rlc_dist_abort(&d, 1, "bench_scaling: %s", err);
    all = run(&cfg, &dj, ops, warmup, steps);
    if (d.size == 1) one = all;
    if (d.rank == 0) {
        printf("bench_scaling: GRPO, model %d x %d layers, %d prompts x %d samples, %d timed steps (%d warm-up), "
               "device %s%s, OMP threads per rank: %s\n",
               cfg.model.dim, cfg.model.n_layers, prompts, cfg.rollout.group_size, steps, warmup, ops->name,
               on_gpu ? (dj.dev ? " (NCCL)" : " (collectives staged through MPI)") : "",
               getenv("OMP_NUM_THREADS") ? getenv("OMP_NUM_THREADS") : "default");
        printf("%-6s %10s %12s %14s %14s %11s\n", "ranks", "step_s", "tokens/s", "tokens/s/rank", "rollout_tok/s",
               "efficiency");
        if (d.size > 1 && have_one)
            printf("%-6d %10.3f %12.0f %14.0f %14.0f %10.1f%%\n", 1, one.seconds / steps, one.tokens / one.seconds,
                   one.tokens / one.seconds, one.rollout_tokens / one.seconds, 100.0);
        double tps = all.tokens / all.seconds, eff = have_one ? tps / (d.size * (one.tokens / one.seconds)) : 0;
        printf("%-6d %10.3f %12.0f %14.0f %14.0f", d.size, all.seconds / steps, tps, tps / d.size,
               all.rollout_tokens / all.seconds);
        if (have_one) printf(" %10.1f%%\n", 100.0 * eff);
        else printf(" %11s\n", "-");
        print_nccl(&all);
        if (have_one && one.tokens != all.tokens)
            printf("note: the 1-rank and %d-rank runs trained different token counts (%.0f vs %.0f)\n", d.size,
                   one.tokens, all.tokens);
    }
    rlc_backend_detach_dist(&dj);
    rlc_dist_finalize(&d);
    return 0;
}
