// host/trainer.c: the training driver (see include/rlc/trainer.h). Owns the run directory, the phase/step
// state machine (SFT warm start, then RL), evaluation, metrics, checkpoints and resume. The RL step itself
// (rollouts, advantages, losses, updates) is in host/rl.c.
#define _POSIX_C_SOURCE 200809L
#include "rlc/trainer.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rlc/checkpoint.h"
#include "rlc/metrics.h"
#include "rlc/optim.h"
#include "rlc/rl.h"
#include "rlc/rollout.h"
#include "rlc/safetensors.h"
#include "rlc/sft.h"
#include "rlc/task.h"
#include "rlc/util.h"

static int mkdir_p(const char *path) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
    return 0;
}

static int max_i(int a, int b) { return a > b ? a : b; }

// Tokens the model must hold in one forward: the largest micro-batch, a whole sequence, a decode batch.
static int model_max_tokens(const rlc_config *c) {
    int n = max_i(c->sft.micro_batch_tokens, c->rl.micro_batch_tokens);
    n = max_i(n, c->model.max_seq_len);
    n = max_i(n, c->rollout.prompts_per_step * c->rollout.group_size);
    n = max_i(n, 64); // eval batch
    return n;
}

static void eval_and_log(rlc_rl *rl, rlc_metrics *mt) {
    double t0 = rlc_now();
    double succ = rlc_rollout_eval(&rl->model, &rl->cfg.rollout, rl->task, &rl->cfg.task, rl->cfg.task.eval_size, 64);
    rlc_metrics_add(mt, "eval_success", succ);
    rlc_metrics_add(mt, "time_eval", rlc_now() - t0);
}

static int save_ckpt(rlc_rl *rl, const char *run_dir) {
    char err[512];
    rlc_train_state st = {0};
    st.step = rl->step;
    st.phase = rl->phase;
    st.rng_seed = rl->cfg.seed;
    st.data_pos = rl->data_pos;
    st.kl_beta = rl->kl_beta;
    st.opt_t = rl->opt.t;
    char dir[600];
    snprintf(dir, sizeof dir, "%s/ckpt", run_dir);
    if (rlc_checkpoint_save(&rl->model, &rl->cfg, dir, &st, rl->opt.m, rl->opt.v, err, sizeof err) != 0) {
        fprintf(stderr, "rlc: checkpoint: %s\n", err);
        return -1;
    }
    return 0;
}

int rlc_train(const rlc_config *cfg_in, const rlc_train_opts *opts) {
    rlc_config cfg = *cfg_in;
    if (strcmp(cfg.device, "cuda") == 0) {
        fprintf(stderr, "rlc: %s: device \"cuda\" requested, but this build has no CUDA backend for training yet; "
                        "use \"cpu\" or \"auto\"\n", cfg.source);
        return 1;
    }
    if (cfg.threads > 0) omp_set_num_threads(cfg.threads);
    const rlc_task *task = rlc_task_find(cfg.task.name);
    if (!task) {
        fprintf(stderr, "rlc: %s: task.name \"%s\" is not a task (expected one of %s)\n", cfg.source, cfg.task.name,
                rlc_task_names());
        return 1;
    }
    char run_dir[512];
    if (opts->resume) snprintf(run_dir, sizeof run_dir, "%s", opts->resume);
    else snprintf(run_dir, sizeof run_dir, "%s/%s", cfg.out_dir, cfg.name);
    if (mkdir_p(run_dir) != 0) {
        fprintf(stderr, "rlc: cannot create run directory %s: %s\n", run_dir, strerror(errno));
        return 1;
    }
    // the effective config, so that `--resume` continues with exactly this job
    char path[600];
    snprintf(path, sizeof path, "%s/config.json", run_dir);
    if (!opts->resume) {
        char *js = rlc_config_to_json(&cfg), err[512];
        int bad = rlc_write_file_atomic(path, js, strlen(js), err, sizeof err);
        free(js);
        if (bad) {
            fprintf(stderr, "rlc: %s\n", err);
            return 1;
        }
    }

    rlc_rl rl;
    if (rlc_rl_init(&rl, &cfg, rlc_ops_cpu(), task, model_max_tokens(&cfg)) != 0) return 1;
    if (opts->resume) {
        char err[512], dir[600], res[700];
        rlc_train_state st;
        snprintf(dir, sizeof dir, "%s/ckpt", run_dir);
        rlc_checkpoint_resolve(dir, res, sizeof res);
        if (rlc_checkpoint_load_model(&rl.model, res, err, sizeof err) != 0 ||
            rlc_checkpoint_load_state(&rl.model, res, &st, rl.opt.m, rl.opt.v, err, sizeof err) != 0) {
            fprintf(stderr, "rlc: resume from %s: %s\n", run_dir, err);
            rlc_rl_free(&rl);
            return 1;
        }
        rl.step = st.step;
        rl.phase = st.phase;
        rl.data_pos = st.data_pos;
        rl.kl_beta = st.kl_beta;
        rl.opt.t = st.opt_t;
        if (rl.phase == 1 && rlc_rl_needs_ref(&rl) && rlc_rl_load_ref(&rl, run_dir, err, sizeof err) != 0) {
            fprintf(stderr, "rlc: resume from %s: %s\n", run_dir, err);
            rlc_rl_free(&rl);
            return 1;
        }
        fprintf(stderr, "rlc: resumed %s at %s step %d\n", run_dir, rl.phase ? "rl" : "sft", rl.step);
    } else {
        rlc_model_init_weights(&rl.model, cfg.seed);
    }

    rlc_metrics mt;
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    if (rlc_metrics_open(&mt, path) != 0) {
        fprintf(stderr, "rlc: cannot open %s: %s\n", path, strerror(errno));
        rlc_rl_free(&rl);
        return 1;
    }
    mt.quiet = opts->quiet;
    int budget = opts->max_steps > 0 ? opts->max_steps : -1, rc = 0;

    // ---- SFT phase ----
    if (rl.phase == 0) {
        static const char *keys[] = {"loss", "eval_success"};
        int total = cfg.sft.steps;
        if (rl.step == 0 && total > 0) {
            rlc_metrics_begin(&mt);
            rlc_metrics_add(&mt, "step", 0);
            eval_and_log(&rl, &mt);
            rlc_metrics_write(&mt, "sft_eval");
        }
        while (rl.step < total && budget != 0) {
            double t0 = rlc_now();
            float lr = rlc_lr_at(&cfg.sft.optim, rl.step, total);
            rlc_sft_stats st;
            rlc_sft_step(&rl.model, &rl.opt, &cfg, task, rl.data_pos, lr, &st);
            rl.data_pos += (uint64_t)cfg.sft.batch_size;
            rl.step++;
            if (budget > 0) budget--;
            rlc_metrics_begin(&mt);
            rlc_metrics_add(&mt, "step", rl.step);
            rlc_metrics_add(&mt, "loss", st.loss);
            rlc_metrics_add(&mt, "grad_norm", st.grad_norm);
            rlc_metrics_add(&mt, "lr", lr);
            rlc_metrics_add(&mt, "tokens", st.tokens);
            double dt = rlc_now() - t0;
            rlc_metrics_add(&mt, "time_step", dt);
            rlc_metrics_add(&mt, "tokens_per_s", st.tokens / (dt > 0 ? dt : 1e-9));
            if (!isfinite(st.loss)) {
                fprintf(stderr, "\nrlc: SFT loss is not finite at step %d (lr %g); stopping\n", rl.step, lr);
                rc = 1;
                break;
            }
            int last = rl.step == total;
            if ((cfg.eval_every > 0 && rl.step % cfg.eval_every == 0) || last) eval_and_log(&rl, &mt);
            rlc_metrics_write(&mt, "sft");
            rlc_metrics_progress(&mt, "sft", rl.step, total, keys, 2);
            if ((cfg.ckpt_every > 0 && rl.step % cfg.ckpt_every == 0) || last || budget == 0)
                if (save_ckpt(&rl, run_dir) != 0) {
                    rc = 1;
                    break;
                }
        }
        if (rc == 0 && rl.step >= total && !opts->sft_only && budget != 0) {
            // enter the RL phase: fresh optimizer state, reference policy = the SFT result
            rlc_rl_begin(&rl);
            if (rlc_rl_needs_ref(&rl)) {
                char err[512];
                if (rlc_rl_save_ref(&rl, run_dir, err, sizeof err) != 0) {
                    fprintf(stderr, "rlc: %s\n", err);
                    rc = 1;
                }
            }
            if (rc == 0 && save_ckpt(&rl, run_dir) != 0) rc = 1;
        }
    }

    // ---- RL phase ----
    if (rc == 0 && rl.phase == 1 && !opts->sft_only) {
        static const char *keys[] = {"score_mean", "eval_success", "entropy", "kl"};
        int total = cfg.rl.steps;
        if (rl.step == 0 && total > 0) {
            rlc_metrics_begin(&mt);
            rlc_metrics_add(&mt, "step", 0);
            eval_and_log(&rl, &mt);
            rlc_metrics_write(&mt, "rl_eval");
        }
        while (rl.step < total && budget != 0) {
            rlc_metrics_begin(&mt);
            if (rlc_rl_step(&rl, &mt) != 0) {
                rc = 1;
                break;
            }
            if (budget > 0) budget--;
            int last = rl.step == total;
            if ((cfg.eval_every > 0 && rl.step % cfg.eval_every == 0) || last) eval_and_log(&rl, &mt);
            rlc_metrics_write(&mt, "rl");
            rlc_metrics_progress(&mt, "rl", rl.step, total, keys, 4);
            if ((cfg.ckpt_every > 0 && rl.step % cfg.ckpt_every == 0) || last || budget == 0)
                if (save_ckpt(&rl, run_dir) != 0) {
                    rc = 1;
                    break;
                }
        }
    }
    if (rc == 0) fprintf(stderr, "rlc: done: %s (metrics in %s/metrics.jsonl)\n", run_dir, run_dir);
    rlc_metrics_close(&mt);
    rlc_rl_free(&rl);
    return rc;
}
