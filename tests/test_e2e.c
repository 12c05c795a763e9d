// tests/test_e2e.c: end-to-end learning tests (seeded, deterministic, each well under two minutes on 2 cores):
//   grpo   GRPO raises the success rate on a small arithmetic setting;
//   ppo    the same for PPO with a value head (GAE, clipped value loss);
//   empg   GRPO+EMPG raises the success rate on a small maze (multi-turn, sparse delayed reward);
//   dpo    DPO on the preference task: the preference margin and accuracy grow.
// Each scenario runs the trainer in-process (SFT warm start, then the RL phase) and reads metrics.jsonl.
// Usage: test_e2e [scenario ...] (default: all).
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "rlc/config.h"
#include "rlc/trainer.h"
#include "rlc/util.h"
#include "test_util.h"

#define MAX_STEPS 512

typedef struct {
    int n;
    double v[MAX_STEPS];
} series;

// Values of `key` over the RL phase's step records.
static series read_series(const char *run, const char *key) {
    series s = {0};
    char path[256];
    snprintf(path, sizeof path, "test_e2e_runs/%s/metrics.jsonl", run);
    char *txt = rlc_read_file(path, NULL);
    if (!txt) return s;
    for (char *line = strtok(txt, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        cJSON *ph = o ? cJSON_GetObjectItem(o, "phase") : NULL, *v = o ? cJSON_GetObjectItem(o, key) : NULL;
        if (ph && cJSON_IsString(ph) && strcmp(ph->valuestring, "rl") == 0 && cJSON_IsNumber(v) && s.n < MAX_STEPS)
            s.v[s.n++] = v->valuedouble;
        cJSON_Delete(o);
    }
    free(txt);
    return s;
}

static double mean_range(const series *s, int a, int b) {
    double t = 0;
    int n = 0;
    for (int i = a; i < b && i < s->n; i++, n++) t += s->v[i];
    return n ? t / n : 0;
}

static int run(const char *name, const char *const *over, int n_over) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf test_e2e_runs/%s", name);
    if (system(cmd) != 0) return -1;
    const char *all[64];
    int n = 0;
    all[n++] = "out_dir=test_e2e_runs";
    static char nm[64];
    snprintf(nm, sizeof nm, "name=%s", name);
    all[n++] = nm;
    for (int i = 0; i < n_over; i++) all[n++] = over[i];
    rlc_config cfg;
    char err[1024];
    if (rlc_config_load(&cfg, NULL, all, n, err, sizeof err) != 0) {
        fprintf(stderr, "%s: config: %s\n", name, err);
        return -1;
    }
    rlc_train_opts o = {.quiet = 1};
    double t0 = rlc_now();
    int rc = rlc_train(&cfg, &o);
    printf("%s: trained in %.1f s\n", name, rlc_now() - t0);
    return rc;
}

// Success early vs late in the RL phase (means over `w` steps).
static void check_rise(const char *name, const char *key, int w, double min_gain) {
    series s = read_series(name, key);
    CHECK(s.n >= 2 * w, "%s: only %d RL steps with %s", name, s.n, key);
    double early = mean_range(&s, 0, w), late = mean_range(&s, s.n - w, s.n);
    printf("%s: %s first %d steps %.3f, last %d steps %.3f\n", name, key, w, early, w, late);
    CHECK(late >= early + min_gain, "%s: %s did not rise by %.2f (%.3f -> %.3f)", name, key, min_gain, early, late);
}

static const char *small_model[] = {"model.dim=64", "model.n_layers=2", "model.n_heads=4", "model.n_kv_heads=2",
                                    "model.head_dim=16", "model.hidden_dim=192"};
#define NSM (int)(sizeof small_model / sizeof small_model[0])

static void scenario_arith(const char *name, const char *method) {
    const char *over[40];
    int n = 0;
    for (int i = 0; i < NSM; i++) over[n++] = small_model[i];
    const char *rest[] = {"task.name=addition", "task.digits=1", "task.min_digits=1", "sft.steps=60", "sft.optim.lr=3e-3",
                          "sft.teacher_error=0", "sft.optim.warmup_steps=10", "rl.steps=100", "rl.optim.lr=3e-4", "rollout.prompts_per_step=16",
                          "rollout.group_size=8", "eval_every=0", "ckpt_every=0", "task.eval_size=16"};
    for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++) over[n++] = rest[i];
    static char m[64];
    snprintf(m, sizeof m, "rl.method=%s", method);
    over[n++] = m;
    if (strcmp(method, "ppo") == 0) {
        over[n++] = "model.value_head=true";
        over[n++] = "rl.epochs=2";
    }
    CHECK(run(name, over, n) == 0, "%s: training failed", name);
    check_rise(name, "success_rate", 15, 0.05);
}

static void scenario_empg(void) {
    const char *over[60];
    int n = 0;
    for (int i = 0; i < NSM; i++) over[n++] = small_model[i];
    const char *rest[] = {"task.name=maze", "task.maze_size=4", "task.maze_keys=0", "task.max_turns=8",
                          "model.max_seq_len=160", "rollout.max_new_tokens=2", "sft.steps=150", "sft.batch_size=16",
                          "sft.optim.lr=3e-3", "rl.steps=100", "rl.optim.lr=1e-3", "rollout.prompts_per_step=8",
                          "rollout.group_size=8", "rl.empg=true", "eval_every=0", "ckpt_every=0",
                          "task.eval_size=16", "rl.micro_batch_tokens=4096", "sft.micro_batch_tokens=4096"};
    for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++) over[n++] = rest[i];
    CHECK(run("empg", over, n) == 0, "empg: training failed");
    check_rise("empg", "success_rate", 10, 0.05);
}

static void scenario_dpo(void) {
    const char *over[40];
    int n = 0;
    for (int i = 0; i < NSM; i++) over[n++] = small_model[i];
    const char *rest[] = {"task.name=preference", "task.digits=1", "task.min_digits=1", "sft.steps=40", "sft.optim.lr=3e-3",
                          "rl.method=dpo", "rl.steps=40", "rl.optim.lr=1e-3", "rollout.prompts_per_step=32",
                          "eval_every=0", "ckpt_every=0", "task.eval_size=16"};
    for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++) over[n++] = rest[i];
    CHECK(run("dpo", over, n) == 0, "dpo: training failed");
    check_rise("dpo", "pref_margin", 8, 0.2);
    check_rise("dpo", "pref_acc", 8, 0.10);
}

int main(int argc, char **argv) {
    int all = argc < 2;
    for (int i = all ? 0 : 1; i < (all ? 1 : argc); i++) {
        const char *s = all ? NULL : argv[i];
        if (all || !strcmp(s, "grpo")) scenario_arith("grpo", "grpo");
        if (all || !strcmp(s, "ppo")) scenario_arith("ppo", "ppo");
        if (all || !strcmp(s, "empg")) scenario_empg();
        if (all || !strcmp(s, "dpo")) scenario_dpo();
    }
    return test_finish("test_e2e");
}
