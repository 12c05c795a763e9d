// tests/test_overlong.c: DAPO's overlong filtering (rl.overlong_filter) on the CPU backend. With every response
// truncated (rollout.ignore_eos: no response ends before rollout.max_new_tokens) and an entropy bonus (a loss term
// that does not vanish when all advantages are 0), one GRPO step must:
//   - without the filter: report every response truncated, none filtered, a non-zero loss, and move the weights;
//   - with the filter: report every response filtered, a loss of exactly 0, and leave the weights bit for bit as
//     they were (zero gradients and no weight decay: AdamW's update is 0 / (0 + eps) = 0).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rlc/config.h"
#include "rlc/metrics.h"
#include "rlc/rl.h"
#include "rlc/task.h"
#include "test_util.h"

// One GRPO step from fresh weights; returns whether the weights changed, with the step's metrics in *mt.
static int one_step(const char *const *extra, int n_extra, rlc_metrics *mt) {
    const char *base[] = {"model.dim=32",           "model.n_layers=2",          "model.n_heads=4",
                          "model.n_kv_heads=2",     "model.head_dim=8",          "model.hidden_dim=64",
                          "model.max_seq_len=64",   "rollout.group_size=4",      "rollout.prompts_per_step=4",
                          "rl.micro_batch_tokens=512", "sft.micro_batch_tokens=512", "rl.method=grpo",
                          "rl.ent_coef=0.1",        "rl.optim.weight_decay=0",   "rl.kl_beta=0"};
    const char *over[32];
    int n = 0;
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++) over[n++] = base[i];
    for (int i = 0; i < n_extra; i++) over[n++] = extra[i];
    rlc_config cfg;
    char err[512];
    if (rlc_config_parse(&cfg, NULL, "<test>", over, n, err, sizeof err) != 0) {
        CHECK(0, "config: %s", err);
        return -1;
    }
    const rlc_task *task = rlc_task_find(cfg.task.name);
    rlc_rl rl;
    const rlc_ops *o = rlc_ops_cpu();
    if (rlc_rl_init(&rl, &cfg, o, task, 512) != 0) {
        CHECK(0, "rlc_rl_init");
        return -1;
    }
    rlc_rl_set_dist(&rl, NULL);
    rlc_model_init_weights(&rl.model, cfg.seed);
    size_t np = rl.model.n_params;
    rlc_f *before = malloc(np * sizeof(rlc_f)), *after = malloc(np * sizeof(rlc_f));
    o->download(before, rl.model.params, np * sizeof(rlc_f));
    rlc_rl_begin(&rl);
    memset(mt, 0, sizeof *mt);
    mt->quiet = 1;
    rlc_metrics_begin(mt);
    CHECK(rlc_rl_step(&rl, mt) == 0, "rlc_rl_step");
    o->download(after, rl.model.params, np * sizeof(rlc_f));
    int changed = memcmp(before, after, np * sizeof(rlc_f)) != 0;
    free(before);
    free(after);
    rlc_rl_free(&rl);
    return changed;
}

int main(void) {
    rlc_metrics mt;
    const char *trunc_off[] = {"rollout.ignore_eos=true", "rollout.max_new_tokens=4", "rl.overlong_filter=false"};
    int changed = one_step(trunc_off, 3, &mt);
    double tf = rlc_metrics_get(&mt, "truncated_frac", -1), ff = rlc_metrics_get(&mt, "overlong_filtered", -1);
    double loss = rlc_metrics_get(&mt, "loss", NAN);
    printf("filter off: truncated %.3f, filtered %.3f, loss %.6g, weights %s\n", tf, ff, loss,
           changed ? "changed" : "unchanged");
    CHECK(tf == 1.0 && ff == 0.0, "filter off: truncated_frac %g (want 1), overlong_filtered %g (want 0)", tf, ff);
    CHECK(isfinite(loss) && loss != 0.0 && changed == 1, "filter off: loss %g must be non-zero and move the weights",
          loss);

    const char *trunc_on[] = {"rollout.ignore_eos=true", "rollout.max_new_tokens=4", "rl.overlong_filter=true"};
    changed = one_step(trunc_on, 3, &mt);
    tf = rlc_metrics_get(&mt, "truncated_frac", -1), ff = rlc_metrics_get(&mt, "overlong_filtered", -1);
    loss = rlc_metrics_get(&mt, "loss", NAN);
    printf("filter on:  truncated %.3f, filtered %.3f, loss %.6g, weights %s\n", tf, ff, loss,
           changed ? "changed" : "unchanged");
    CHECK(tf == 1.0 && ff == 1.0, "filter on: truncated_frac %g, overlong_filtered %g (want 1 and 1)", tf, ff);
    CHECK(loss == 0.0 && changed == 0, "filter on: loss %g must be 0 and the weights unchanged (changed: %d)", loss,
          changed);

    return test_finish("test_overlong");
}
