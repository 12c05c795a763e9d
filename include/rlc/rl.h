// include/rlc/rl.h: one RL step: sample prompts, generate G samples each, score them, recompute old (and
// reference) log-probs, compute advantages for the configured method (GRPO, DAPO, Dr.GRPO, RLOO,
// REINFORCE++(-baseline), PPO with GAE, EMPG on GRPO/DAPO), then K epochs over mini-batches with micro-batch
// accumulation and an AdamW step per mini-batch. DPO/IPO steps on preference pairs. Also owns the training
// state shared with the SFT phase (model, optimizer, reference policy). With a process group of several ranks
// (rlc_rl_set_dist) the step is data-parallel as include/rlc/scheduler.h describes; every rank calls it.
#pragma once
#include <stdint.h>
#include "rlc/comm.h"
#include "rlc/config.h"
#include "rlc/loss.h"
#include "rlc/metrics.h"
#include "rlc/model.h"
#include "rlc/optim.h"
#include "rlc/task.h"

typedef struct rlc_rl {
    rlc_config cfg;
    const rlc_ops *ops;
    const rlc_task *task;
    rlc_model model;
    rlc_model ref;       // frozen reference policy (allocated when a KL term or DPO needs it)
    int has_ref;
    rlc_adamw opt;
    rlc_loss_config loss;
    int phase;           // 0 SFT, 1 RL
    int step;            // optimizer steps (SFT) or RL steps (RL) done in the current phase
    uint64_t data_pos;   // next problem index of the phase's training stream
    double kl_beta;      // current KL coefficient (adaptive when rl.kl_target > 0)
    const rlc_dist *dist; // process group (NULL: a single process)
} rlc_rl;

int rlc_rl_init(rlc_rl *rl, const rlc_config *cfg, const rlc_ops *ops, const rlc_task *task, int max_tokens);
void rlc_rl_free(rlc_rl *rl);
// Train data-parallel over the ranks of d (kept by pointer; NULL: single process). Re-allocates the optimizer
// state (this rank's shard of it with rl.zero1 and several ranks), so call it right after rlc_rl_init.
void rlc_rl_set_dist(rlc_rl *rl, const rlc_dist *d);
// Enter the RL phase: step 0, fresh optimizer state, reference policy = current weights.
void rlc_rl_begin(rlc_rl *rl);
int rlc_rl_needs_ref(const rlc_rl *rl);
int rlc_rl_save_ref(rlc_rl *rl, const char *run_dir, char *err, size_t errlen);
int rlc_rl_load_ref(rlc_rl *rl, const char *run_dir, char *err, size_t errlen);
// One RL step (increments rl->step); metrics added to mt. Returns 0, or -1 after printing an error.
int rlc_rl_step(rlc_rl *rl, rlc_metrics *mt);
