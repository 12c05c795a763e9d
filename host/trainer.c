// host/trainer.c: the training driver (see include/rlc/trainer.h). Owns the run directory, the phase/step
// state machine (SFT warm start, then RL), evaluation, metrics, checkpoints and resume. The RL step itself
// (rollouts, advantages, losses, updates) is in host/rl.c. In a multi-rank job every rank runs this driver in
// lockstep; rank 0 alone writes the run directory, and an error on any rank ends the whole job. The backend comes
// from the config's "device" key (host/backend.c) unless the caller injects one (rlc_train_opts.ops); right after
// it, on the CUDA backend with several ranks (or RLC_FORCE_NCCL=1), the NCCL gradient collectives are attached to
// the job's process group (rlc_backend_attach_dist).
#define _POSIX_C_SOURCE 200809L
#include "rlc/trainer.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rlc/backend.h"
#include "rlc/checkpoint.h"
#include "rlc/metrics.h"
#include "rlc/optim.h"
#include "rlc/rl.h"
#include "rlc/rollout.h"
#include "rlc/safetensors.h"
#include "rlc/scheduler.h"
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

// An error on this rank. With several ranks it ends the whole job with "rlc: rank R: <message>" (the others may
// be waiting in a collective); with one it prints "rlc: <message>" and returns 1 for the caller to return.
static int train_fail(const rlc_dist *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int train_fail(const rlc_dist *d, const char *fmt, ...) {
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (d->size > 1) rlc_dist_abort(d, 1, "%s", msg);
    fprintf(stderr, "rlc: %s\n", msg);
    return 1;
}

// Test hooks of the failure handling (tests/cli_tests.cmake): RLC_TEST_FAIL_RANK=R makes rank R fail before its
// first RL step; RLC_TEST_HANG_RANK=R makes it hang there (the others' collective watchdog must end the job).
static void test_hooks(const rlc_dist *d, int step) {
    const char *f = getenv("RLC_TEST_FAIL_RANK"), *h = getenv("RLC_TEST_HANG_RANK");
    if (f && *f && atoi(f) == d->rank && step == 0)
        rlc_dist_abort(d, 1, "injected failure before RL step %d (RLC_TEST_FAIL_RANK=%s)", step + 1, f);
    if (h && *h && atoi(h) == d->rank && step == 0) {
        fprintf(stderr, "rlc: rank %d: hanging on purpose (RLC_TEST_HANG_RANK)\n", d->rank);
        sleep(3600);
    }
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

static void eval_and_log(rlc_rl *rl, rlc_metrics *mt, const rlc_dist *d) {
    double t0 = rlc_now();
    double succ = rlc_sched_eval(d, &rl->model, &rl->cfg.rollout, rl->task, &rl->cfg.task, rl->cfg.task.eval_size, 64);
    rlc_metrics_add(mt, "eval_success", succ);
    rlc_metrics_add(mt, "time_eval", rlc_now() - t0);
}

// Collective with ZeRO-1 (the moments are gathered first, so that any number of ranks can resume); rank 0 writes.
static int save_ckpt(rlc_rl *rl, const char *run_dir, const rlc_dist *d) {
    char err[512];
    rlc_train_state st = {0};
    st.step = rl->step;
    st.phase = rl->phase;
    st.rng_seed = rl->cfg.seed;
    st.data_pos = rl->data_pos;
    st.kl_beta = rl->kl_beta;
    st.opt_t = rl->opt.t;
    const rlc_f *m = rl->opt.m, *v = rl->opt.v;
    rlc_f *fm = NULL, *fv = NULL; // full moments (backend memory, as the checkpoint expects)
    if (rlc_sched_zero1_active(d, rl->cfg.rl.zero1)) {
        fm = rl->ops->alloc(rl->model.n_params * sizeof(rlc_f));
        fv = rl->ops->alloc(rl->model.n_params * sizeof(rlc_f));
        rlc_sched_adamw_gather(d, rl->cfg.rl.zero1, &rl->opt, &rl->model, fm, fv);
        m = fm, v = fv;
    }
    int rc = 0;
    if (d->rank == 0) {
        char dir[600];
        snprintf(dir, sizeof dir, "%s/ckpt", run_dir);
        if (rlc_checkpoint_save(&rl->model, &rl->cfg, dir, &st, m, v, err, sizeof err) != 0)
            rc = train_fail(d, "checkpoint: %s", err);
    }
    if (fm) rl->ops->free(fm);
    if (fv) rl->ops->free(fv);
    return rc ? -1 : 0;
}

// Every rank reads the checkpoint (a shared file system): weights, train state, moments (this rank's part).
static int resume_load(rlc_rl *rl, const char *run_dir, const rlc_dist *d) {
    char err[512], dir[600], res[700];
    rlc_train_state st;
    snprintf(dir, sizeof dir, "%s/ckpt", run_dir);
    rlc_checkpoint_resolve(dir, res, sizeof res);
    int z = rlc_sched_zero1_active(d, rl->cfg.rl.zero1);
    // full moments in backend memory (the checkpoint loader uploads into them)
    rlc_f *fm = z ? rl->ops->alloc(rl->model.n_params * sizeof(rlc_f)) : rl->opt.m;
    rlc_f *fv = z ? rl->ops->alloc(rl->model.n_params * sizeof(rlc_f)) : rl->opt.v;
    int bad = rlc_checkpoint_load_model(&rl->model, res, err, sizeof err) != 0 ||
              rlc_checkpoint_load_state(&rl->model, res, &st, fm, fv, err, sizeof err) != 0;
    if (!bad && z) rlc_sched_adamw_scatter(d, rl->cfg.rl.zero1, &rl->opt, &rl->model, fm, fv);
    if (z) {
        rl->ops->free(fm);
        rl->ops->free(fv);
    }
    if (bad) return train_fail(d, "resume from %s: %s", run_dir, err);
    rl->step = st.step;
    rl->phase = st.phase;
    rl->data_pos = st.data_pos;
    rl->kl_beta = st.kl_beta;
    rl->opt.t = st.opt_t;
    if (rl->phase == 1 && rlc_rl_needs_ref(rl) && rlc_rl_load_ref(rl, run_dir, err, sizeof err) != 0)
        return train_fail(d, "resume from %s: %s", run_dir, err);
    if (d->rank == 0) fprintf(stderr, "rlc: resumed %s at %s step %d\n", run_dir, rl->phase ? "rl" : "sft", rl->step);
    return 0;
}

static int train_job(rlc_config cfg, const rlc_train_opts *opts, const rlc_dist *d, const rlc_ops *ops);

int rlc_train(const rlc_config *cfg_in, const rlc_train_opts *opts) {
    rlc_dist one;
    rlc_dist_single(&one);
    // this job's process group: a copy, to which the backend's device collectives (NCCL) are attached
    rlc_dist dv = opts->dist ? *opts->dist : one;
    // the backend first: a device that cannot be used is an error before any work (run directory, model); then
    // the GPU path's NCCL communicator, before the backend allocates anything
    const rlc_ops *ops = opts->ops;
    char err[512];
    if (!ops) {
        ops = rlc_backend_select(cfg_in->device, dv.local_rank, err, sizeof err);
        if (!ops || rlc_backend_set_precision(ops, cfg_in->precision, err, sizeof err) != 0)
            return train_fail(&dv, "%s: %s", cfg_in->source, err);
    }
    if (rlc_backend_attach_dist(ops, &dv, rlc_sched_zero1_active(&dv, cfg_in->rl.zero1), 0, err, sizeof err) != 0)
        return train_fail(&dv, "%s", err);
    int rc = train_job(*cfg_in, opts, &dv, ops);
    rlc_backend_detach_dist(&dv);
    return rc;
}

static int train_job(rlc_config cfg, const rlc_train_opts *opts, const rlc_dist *d, const rlc_ops *ops) {
    if (cfg.threads > 0) {
        omp_set_num_threads(cfg.threads);
    } else if (d->local_size > 1 && !getenv("OMP_NUM_THREADS")) {
        // several ranks on one node: share its cores instead of each taking all of them
        int n = omp_get_num_procs() / d->local_size;
        omp_set_num_threads(n > 0 ? n : 1);
    }
    const rlc_task *task = rlc_task_find(cfg.task.name);
    if (!task)
        return train_fail(d, "%s: task.name \"%s\" is not a task (expected one of %s)", cfg.source, cfg.task.name,
                          rlc_task_names());
    char run_dir[512];
    if (opts->resume) snprintf(run_dir, sizeof run_dir, "%s", opts->resume);
    else snprintf(run_dir, sizeof run_dir, "%s/%s", cfg.out_dir, cfg.name);
    char path[600];
    if (d->rank == 0) {
        if (mkdir_p(run_dir) != 0) return train_fail(d, "cannot create run directory %s: %s", run_dir, strerror(errno));
        // the effective config, so that `--resume` continues with exactly this job
        snprintf(path, sizeof path, "%s/config.json", run_dir);
        if (!opts->resume) {
            char *js = rlc_config_to_json(&cfg), err[512];
            int bad = rlc_write_file_atomic(path, js, strlen(js), err, sizeof err);
            free(js);
            if (bad) return train_fail(d, "%s", err);
        }
        if (d->size > 1)
            fprintf(stderr, "rlc: data-parallel over %d ranks (%d on this node)%s\n", d->size, d->local_size,
                    cfg.rl.zero1 ? ", ZeRO-1" : "");
        if (!rlc_backend_is_host(ops)) fprintf(stderr, "rlc: backend: %s (device \"%s\")\n", ops->name, cfg.device);
    }

    rlc_rl rl;
    if (rlc_rl_init(&rl, &cfg, ops, task, model_max_tokens(&cfg)) != 0)
        return d->size > 1 ? train_fail(d, "cannot set up the model (see above)") : 1;
    rlc_rl_set_dist(&rl, d);
    if (opts->resume) {
        if (resume_load(&rl, run_dir, d) != 0) {
            rlc_rl_free(&rl);
            return 1;
        }
    } else {
        rlc_model_init_weights(&rl.model, cfg.seed);
    }

    rlc_metrics mt;
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    if (rlc_metrics_open(&mt, d->rank == 0 ? path : NULL) != 0) {
        int rc = train_fail(d, "cannot open %s: %s", path, strerror(errno));
        rlc_rl_free(&rl);
        return rc;
    }
    mt.quiet = opts->quiet || d->rank != 0;
    int budget = opts->max_steps > 0 ? opts->max_steps : -1, rc = 0;

    // ---- SFT phase ----
    if (rl.phase == 0) {
        static const char *keys[] = {"loss", "eval_success"};
        int total = cfg.sft.steps;
        if (rl.step == 0 && total > 0) {
            rlc_metrics_begin(&mt);
            rlc_metrics_add(&mt, "step", 0);
            eval_and_log(&rl, &mt, d);
            rlc_metrics_write(&mt, "sft_eval");
        }
        while (rl.step < total && budget != 0) {
            double t0 = rlc_now();
            float lr = rlc_lr_at(&cfg.sft.optim, rl.step, total);
            rlc_sft_stats st;
            rlc_sched_sft_step(d, cfg.rl.zero1, &rl.model, &rl.opt, &cfg, task, rl.data_pos, lr, &st);
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
            if (!isfinite(st.loss)) { // the loss is global: every rank stops here
                if (d->rank == 0)
                    fprintf(stderr, "\nrlc: SFT loss is not finite at step %d (lr %g); stopping\n", rl.step, lr);
                rc = 1;
                break;
            }
            int last = rl.step == total;
            if ((cfg.eval_every > 0 && rl.step % cfg.eval_every == 0) || last) eval_and_log(&rl, &mt, d);
            rlc_metrics_write(&mt, "sft");
            rlc_metrics_progress(&mt, "sft", rl.step, total, keys, 2);
            if ((cfg.ckpt_every > 0 && rl.step % cfg.ckpt_every == 0) || last || budget == 0)
                if (save_ckpt(&rl, run_dir, d) != 0) {
                    rc = 1;
                    break;
                }
        }
        if (rc == 0 && rl.step >= total && !opts->sft_only && budget != 0) {
            // enter the RL phase: fresh optimizer state, reference policy = the SFT result
            rlc_rl_begin(&rl);
            if (rlc_rl_needs_ref(&rl) && d->rank == 0) {
                char err[512];
                if (rlc_rl_save_ref(&rl, run_dir, err, sizeof err) != 0) rc = train_fail(d, "%s", err);
            }
            if (rc == 0 && save_ckpt(&rl, run_dir, d) != 0) rc = 1;
        }
    }

    // ---- RL phase ----
    if (rc == 0 && rl.phase == 1 && !opts->sft_only) {
        static const char *keys[] = {"score_mean", "eval_success", "entropy", "kl"};
        int total = cfg.rl.steps;
        if (rl.step == 0 && total > 0) {
            rlc_metrics_begin(&mt);
            rlc_metrics_add(&mt, "step", 0);
            eval_and_log(&rl, &mt, d);
            rlc_metrics_write(&mt, "rl_eval");
        }
        while (rl.step < total && budget != 0) {
            test_hooks(d, rl.step);
            rlc_metrics_begin(&mt);
            if (rlc_rl_step(&rl, &mt) != 0) { // its errors are global: every rank stops here
                rc = 1;
                break;
            }
            if (budget > 0) budget--;
            int last = rl.step == total;
            if ((cfg.eval_every > 0 && rl.step % cfg.eval_every == 0) || last) eval_and_log(&rl, &mt, d);
            rlc_metrics_write(&mt, "rl");
            rlc_metrics_progress(&mt, "rl", rl.step, total, keys, 4);
            if ((cfg.ckpt_every > 0 && rl.step % cfg.ckpt_every == 0) || last || budget == 0)
                if (save_ckpt(&rl, run_dir, d) != 0) {
                    rc = 1;
                    break;
                }
        }
    }
    if (rc == 0 && d->rank == 0) fprintf(stderr, "rlc: done: %s (metrics in %s/metrics.jsonl)\n", run_dir, run_dir);
    rlc_metrics_close(&mt);
    rlc_rl_free(&rl);
    return rc;
}
