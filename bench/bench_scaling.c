// bench/bench_scaling.c: data-parallel scaling of a fixed GRPO workload (strong scaling: the same global batch
// whatever the rank count), through the RL step API with a config built in code.
//   mpirun -np N ./build/bench/bench_scaling [--steps S] [--warmup W] [--prompts P] [--no-baseline]
// Rank 0 first runs the workload alone (the 1-rank baseline, the other ranks wait), then all N ranks run it;
// it prints tokens/s (trained tokens: prompt + response of every sequence, times epochs) in total and per rank,
// and the scaling efficiency = tokens/s with N ranks / (N * tokens/s with 1 rank). Rollouts are identical on
// every rank count, so both runs do the same work. On CPU give each rank its cores (OMP_NUM_THREADS).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rlc/comm.h"
#include "rlc/config.h"
#include "rlc/rl.h"
#include "rlc/util.h"

typedef struct {
    double seconds, tokens, rollout_tokens;
} bench_result;

static bench_result run(const rlc_config *cfg, const rlc_dist *d, int warmup, int steps) {
    const rlc_task *task = rlc_task_find(cfg->task.name);
    rlc_rl rl;
    int max_tokens = cfg->rl.micro_batch_tokens;
    if (cfg->rollout.prompts_per_step * cfg->rollout.group_size > max_tokens)
        max_tokens = cfg->rollout.prompts_per_step * cfg->rollout.group_size;
    if (cfg->model.max_seq_len > max_tokens) max_tokens = cfg->model.max_seq_len;
    if (rlc_rl_init(&rl, cfg, rlc_ops_cpu(), task, max_tokens) != 0) rlc_dist_abort(d, 1, "bench: rlc_rl_init");
    rlc_rl_set_dist(&rl, d);
    rlc_model_init_weights(&rl.model, cfg->seed);
    rlc_rl_begin(&rl);
    rlc_metrics mt;
    rlc_metrics_open(&mt, NULL);
    mt.quiet = 1;
    bench_result r = {0};
    double t0 = 0;
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) {
            rlc_dist_barrier(d);
            t0 = rlc_now();
        }
        rlc_metrics_begin(&mt);
        if (rlc_rl_step(&rl, &mt) != 0) rlc_dist_abort(d, 1, "bench: RL step %d failed", s);
        if (s >= warmup) {
            r.tokens += rlc_metrics_get(&mt, "train_tokens", 0);
            r.rollout_tokens += rlc_metrics_get(&mt, "rollout_tokens", 0);
        }
    }
    rlc_dist_barrier(d);
    r.seconds = rlc_now() - t0;
    rlc_metrics_close(&mt);
    rlc_rl_free(&rl);
    return r;
}

int main(int argc, char **argv) {
    rlc_dist d;
    char err[512];
    if (rlc_dist_init(&d, &argc, &argv, err, sizeof err) != 0) {
        fprintf(stderr, "bench_scaling: %s\n", err);
        return 1;
    }
    int steps = 3, warmup = 1, prompts = 16, baseline = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) steps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--warmup") == 0 && i + 1 < argc) warmup = atoi(argv[++i]);
        else if (strcmp(argv[i], "--prompts") == 0 && i + 1 < argc) prompts = atoi(argv[++i]);
        else if (strcmp(argv[i], "--no-baseline") == 0) baseline = 0;
        else {
            if (d.rank == 0)
                fprintf(stderr, "usage: mpirun -np N bench_scaling [--steps S] [--warmup W] [--prompts P] "
                                "[--no-baseline]\n");
            rlc_dist_finalize(&d);
            return 2;
        }
    }
    // the workload: the default model (128 x 4 layers), GRPO on 2-digit addition, 8 samples per prompt
    char o_prompts[64];
    snprintf(o_prompts, sizeof o_prompts, "rollout.prompts_per_step=%d", prompts);
    const char *over[] = {o_prompts, "rollout.group_size=8", "rollout.max_new_tokens=8", "rl.micro_batch_tokens=1024",
                          "rl.method=grpo", "rl.epochs=1", "rl.mini_batches=1", "sft.steps=0"};
    rlc_config cfg;
    if (rlc_config_parse(&cfg, NULL, "<bench_scaling>", over, (int)(sizeof over / sizeof over[0]), err, sizeof err))
        rlc_dist_abort(&d, 1, "bench_scaling: %s", err);

    bench_result one = {0}, all;
    int have_one = d.size == 1 || baseline;
    if (d.size > 1 && baseline) {
        if (d.rank == 0) {
            rlc_dist single;
            rlc_dist_single(&single);
            one = run(&cfg, &single, warmup, steps);
        }
        rlc_dist_barrier(&d); // the other ranks wait for the baseline
    }
    all = run(&cfg, &d, warmup, steps);
    if (d.size == 1) one = all;
    if (d.rank == 0) {
        printf("bench_scaling: GRPO, model %d x %d layers, %d prompts x %d samples, %d timed steps (%d warm-up), "
               "OMP threads per rank: %s\n",
               cfg.model.dim, cfg.model.n_layers, prompts, cfg.rollout.group_size, steps, warmup,
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
        if (have_one && one.tokens != all.tokens)
            printf("note: the 1-rank and %d-rank runs trained different token counts (%.0f vs %.0f)\n", d.size,
                   one.tokens, all.tokens);
    }
    rlc_dist_finalize(&d);
    return 0;
}
