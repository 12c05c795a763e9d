// tests/test_resume.c: `rlc train --resume` continues bitwise: a run of 2N steps and a run interrupted after N
// steps (across the SFT -> RL boundary too) then resumed give identical final weights, optimizer state and
// metrics (timings excluded). Also: a run killed at random moments (SIGKILL, possibly while writing a
// checkpoint) always leaves a loadable checkpoint behind.
#define _DEFAULT_SOURCE
#include <cjson/cJSON.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rlc/checkpoint.h"
#include "rlc/config.h"
#include "rlc/trainer.h"
#include "rlc/util.h"
#include "test_util.h"

static const char *base_over[] = {
    "out_dir=test_resume_runs", "model.dim=32",        "model.n_layers=2",         "model.n_heads=4",
    "model.n_kv_heads=2",        "model.head_dim=8",    "model.hidden_dim=64",      "sft.steps=3",
    "sft.batch_size=8",          "rl.steps=3",          "rollout.prompts_per_step=4", "rollout.group_size=4",
    "task.eval_size=8",          "eval_every=2",        "ckpt_every=1",             "rl.kl_beta=0.05",
    "rl.epochs=2",               "rl.mini_batches=2"};

static void load_cfg(rlc_config *cfg, const char *name) {
    const char *over[32];
    int n = 0;
    for (size_t i = 0; i < sizeof base_over / sizeof base_over[0]; i++) over[n++] = base_over[i];
    static char nm[64];
    snprintf(nm, sizeof nm, "name=%s", name);
    over[n++] = nm;
    char err[512];
    if (rlc_config_load(cfg, NULL, over, n, err, sizeof err) != 0) RLC_FATAL("config: %s", err);
}

// Metrics lines with timing keys removed, as one string.
static char *metrics_without_times(const char *path) {
    char *txt = rlc_read_file(path, NULL);
    if (!txt) return NULL;
    size_t cap = strlen(txt) + 1;
    char *out = calloc(cap, 1);
    for (char *line = strtok(txt, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        if (!o) continue;
        for (cJSON *it = o->child; it;) {
            cJSON *next = it->next;
            if (strncmp(it->string, "time", 4) == 0 || strstr(it->string, "per_s")) cJSON_DeleteItemFromObject(o, it->string);
            it = next;
        }
        char *s = cJSON_PrintUnformatted(o);
        strncat(out, s, cap - strlen(out) - 2);
        strcat(out, "\n");
        free(s);
        cJSON_Delete(o);
    }
    free(txt);
    return out;
}

static int load_final(const char *run, rlc_model *m, const rlc_config *cfg, rlc_f **adam) {
    char dir[256], res[512], err[512];
    snprintf(dir, sizeof dir, "test_resume_runs/%s/ckpt", run);
    rlc_checkpoint_resolve(dir, res, sizeof res);
    rlc_model_config mc = cfg->model;
    if (rlc_model_init(m, &mc, rlc_ops_cpu(), 64) != 0) return -1;
    *adam = calloc(2 * m->n_params, sizeof(rlc_f));
    rlc_train_state st;
    if (rlc_checkpoint_load_model(m, res, err, sizeof err) != 0 ||
        rlc_checkpoint_load_state(m, res, &st, *adam, *adam + m->n_params, err, sizeof err) != 0) {
        fprintf(stderr, "load %s: %s\n", res, err);
        return -1;
    }
    return st.step + 1000 * st.phase;
}

int main(void) {
    CHECK(system("rm -rf test_resume_runs") == 0, "could not clear test_resume_runs");
    rlc_config cfg;
    rlc_train_opts full = {.quiet = 1};
    load_cfg(&cfg, "full");
    CHECK(rlc_train(&cfg, &full) == 0, "uninterrupted run");
    // interrupted twice: mid-SFT, then across the SFT -> RL boundary, then to the end
    load_cfg(&cfg, "parts");
    rlc_train_opts part = {.quiet = 1, .max_steps = 2};
    CHECK(rlc_train(&cfg, &part) == 0, "first part");
    rlc_train_opts res = {.quiet = 1, .max_steps = 2, .resume = "test_resume_runs/parts"};
    CHECK(rlc_train(&cfg, &res) == 0, "second part");
    res.max_steps = 0;
    CHECK(rlc_train(&cfg, &res) == 0, "last part");

    rlc_model a, b;
    rlc_f *adam_a, *adam_b;
    int sa = load_final("full", &a, &cfg, &adam_a), sb = load_final("parts", &b, &cfg, &adam_b);
    CHECK(sa == 1003 && sb == 1003, "both runs end at rl step 3 (got %d and %d)", sa, sb);
    if (sa > 0 && sb > 0) {
        CHECK(memcmp(a.params, b.params, a.n_params * sizeof(rlc_f)) == 0, "final weights differ");
        CHECK(memcmp(adam_a, adam_b, 2 * a.n_params * sizeof(rlc_f)) == 0, "optimizer moments differ");
    }
    char *ma = metrics_without_times("test_resume_runs/full/metrics.jsonl");
    char *mb = metrics_without_times("test_resume_runs/parts/metrics.jsonl");
    CHECK(ma && mb && strcmp(ma, mb) == 0, "metrics differ:\n--- full\n%s--- resumed\n%s", ma ? ma : "", mb ? mb : "");
    CHECK(ma && strstr(ma, "\"phase\":\"rl\"") != NULL, "metrics have RL steps");

    // killed at random moments: the last checkpoint must always load. The job runs as a separate `rlc`
    // process (fork without exec is not safe after OpenMP has started its threads).
    load_cfg(&cfg, "killed");
    srand((unsigned)time(NULL));
    for (int trial = 0; trial < 4; trial++) {
        pid_t pid = fork();
        if (pid == 0) {
            char *argv[64];
            int n = 0;
            argv[n++] = RLC_BINARY_DIR "/rlc";
            argv[n++] = "train";
            for (size_t i = 0; i < sizeof base_over / sizeof base_over[0]; i++) {
                argv[n++] = "--set";
                argv[n++] = (char *)base_over[i];
            }
            argv[n++] = "--set";
            argv[n++] = "name=killed";
            argv[n++] = "--set";
            argv[n++] = "sft.steps=400";
            argv[n++] = "--quiet";
            if (trial) {
                argv[n++] = "--resume";
                argv[n++] = "test_resume_runs/killed";
            }
            argv[n] = NULL;
            execv(argv[0], argv);
            _exit(127);
        }
        // wait for a first checkpoint, then kill at a random moment (often mid-save: ckpt_every = 1)
        for (int w = 0; w < 3000 && access("test_resume_runs/killed/ckpt/latest", F_OK) != 0; w++) usleep(10000);
        usleep((useconds_t)(rand() % 300000));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        CHECK(WIFSIGNALED(status), "the job ended before it was killed (trial %d, status %d)", trial, status);
        rlc_model k;
        rlc_f *adam_k = NULL;
        int st = load_final("killed", &k, &cfg, &adam_k);
        CHECK(st >= 0, "checkpoint after a kill (trial %d) does not load", trial);
        if (st >= 0) rlc_model_free(&k);
        free(adam_k);
    }
    free(ma);
    free(mb);
    rlc_model_free(&a);
    rlc_model_free(&b);
    free(adam_a);
    free(adam_b);
    CHECK(system("rm -rf test_resume_runs") == 0, "could not clear test_resume_runs");
    return test_finish("test_resume");
}
