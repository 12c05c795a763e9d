// include/rlc/sft.h: supervised fine-tuning on expert demonstrations of a task: token-mean cross-entropy over
// response tokens (through the fused log-prob op), global token normalisation across micro-batches.
#pragma once
#include "rlc/config.h"
#include "rlc/model.h"
#include "rlc/optim.h"
#include "rlc/task.h"

typedef struct rlc_sft_stats {
    double loss;      // token-mean NLL over the step's response tokens
    double grad_norm; // before clipping
    int tokens;       // response (target) tokens
    int seqs;
} rlc_sft_stats;

// One optimizer step on problems [first, first + cfg->sft.batch_size) of the training stream (cfg->seed).
void rlc_sft_step(rlc_model *m, rlc_adamw *opt, const rlc_config *cfg, const rlc_task *task, uint64_t first,
                  float lr, rlc_sft_stats *st);
