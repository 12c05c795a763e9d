// tests/test_sft.c: SFT smoke test. On k-digit addition a small model's token-mean NLL falls below a
// threshold within a bounded number of steps, through the same fused log-prob op the RL losses use; the run
// is seeded and deterministic (two runs give bit-identical losses and weights).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rlc/config.h"
#include "rlc/sft.h"
#include "test_util.h"

enum { STEPS = 150 };

static void train(const rlc_config *cfg, const rlc_task *task, double *losses, rlc_f **weights, size_t *n) {
    rlc_model m;
    CHECK(rlc_model_init(&m, &cfg->model, rlc_ops_cpu(), 2048) == 0, "model init");
    rlc_model_init_weights(&m, cfg->seed);
    rlc_adamw opt;
    rlc_adamw_init(&opt, &m);
    for (int s = 0; s < STEPS; s++) {
        rlc_sft_stats st;
        rlc_sft_step(&m, &opt, cfg, task, (uint64_t)s * cfg->sft.batch_size, rlc_lr_at(&cfg->sft.optim, s, STEPS), &st);
        losses[s] = st.loss;
    }
    *n = m.n_params;
    *weights = malloc(m.n_params * sizeof(rlc_f));
    memcpy(*weights, m.params, m.n_params * sizeof(rlc_f));
    rlc_adamw_free(&opt, &m);
    rlc_model_free(&m);
}

int main(void) {
    const char *over[] = {"model.dim=64",        "model.n_layers=2",      "model.n_heads=4",
                          "model.n_kv_heads=2",  "model.head_dim=16",     "model.hidden_dim=192",
                          "task.name=addition",  "task.digits=2",         "task.min_digits=1", "sft.batch_size=32",
                          "sft.teacher_error=0",
                          "sft.optim.lr=3e-3",   "sft.optim.warmup_steps=10", "sft.micro_batch_tokens=200"};
    rlc_config cfg;
    char err[512];
    CHECK(rlc_config_load(&cfg, NULL, over, (int)(sizeof over / sizeof over[0]), err, sizeof err) == 0, "config: %s",
          err);
    const rlc_task *task = rlc_task_find("addition");
    double l1[STEPS], l2[STEPS];
    rlc_f *w1, *w2;
    size_t n1, n2;
    train(&cfg, task, l1, &w1, &n1);
    train(&cfg, task, l2, &w2, &n2);
    double first = (l1[0] + l1[1] + l1[2]) / 3, last = (l1[STEPS - 3] + l1[STEPS - 2] + l1[STEPS - 1]) / 3;
    printf("sft: loss %.3f (first 3 steps) -> %.3f (last 3 steps); ln(V) = %.3f\n", first, last, log(98.0));
    CHECK(first > 3.0, "initial loss %.3f should be near ln(98) = 4.58", first);
    CHECK(last < 1.6, "loss did not fall below 1.6 in %d steps (%.3f)", STEPS, last);
    CHECK(memcmp(l1, l2, sizeof l1) == 0, "two seeded runs give different losses");
    CHECK(n1 == n2 && memcmp(w1, w2, n1 * sizeof(rlc_f)) == 0, "two seeded runs give different weights");
    free(w1);
    free(w2);

    // sft.teacher_error: that share of the demonstrations comes from the imperfect teacher, chosen per problem
    // index (so the same demonstrations are flawed whatever the batch size), and only those differ
    rlc_config cc = cfg, ct = cfg;
    cc.sft.batch_size = 400;
    ct.sft.teacher_error = 0.5f;
    ct.sft.batch_size = 400;
    rlc_sequence *clean, *mixed, *part;
    rlc_sft_build(&cc, task, cfg.model.max_seq_len, 1000, &clean);
    rlc_sft_build(&ct, task, cfg.model.max_seq_len, 1000, &mixed);
    ct.sft.batch_size = 37;
    rlc_sft_build(&ct, task, cfg.model.max_seq_len, 1100, &part); // problems 1100..1136 of the same stream
    int n_diff = 0, n_carry = 0;
    for (int i = 0; i < 400; i++) {
        rlc_problem p;
        task->generate(&cfg.task, cfg.seed, 1000 + (uint64_t)i, &p);
        int differs = strcmp(clean[i].response, mixed[i].response) != 0;
        CHECK(strcmp(clean[i].response, p.answer) == 0, "clean demonstration %d is the expert's", i);
        char flawed[64];
        task->flawed_solve(&cfg.task, &p, flawed, sizeof flawed);
        CHECK(!differs || strcmp(mixed[i].response, flawed) == 0, "demonstration %d: %s is neither teacher's", i,
              mixed[i].response);
        n_carry += strcmp(flawed, p.answer) != 0;
        n_diff += differs;
        if (i >= 100 && i < 137)
            CHECK(strcmp(part[i - 100].response, mixed[i].response) == 0, "demonstration %d depends on the batch", i);
    }
    printf("sft: teacher_error 0.5: %d of %d demonstrations with a carry out came from the flawed teacher\n", n_diff,
           n_carry);
    CHECK(n_carry > 50 && n_diff > 0.35 * n_carry && n_diff < 0.65 * n_carry,
          "teacher_error 0.5 flawed %d of %d carry-out demonstrations", n_diff, n_carry);
    for (int i = 0; i < 400; i++) {
        rlc_sequence_free(&clean[i]);
        rlc_sequence_free(&mixed[i]);
        if (i < 37) rlc_sequence_free(&part[i]);
    }
    free(clean);
    free(mixed);
    free(part);
    return test_finish("test_sft");
}
