// include/rlc/sft.h: supervised fine-tuning on expert demonstrations of a task: token-mean cross-entropy over
// response tokens (through the fused log-prob op), global token normalisation across micro-batches.
#pragma once
#include "rlc/config.h"
#include "rlc/model.h"
#include "rlc/optim.h"
#include "rlc/rollout.h"
#include "rlc/task.h"

typedef struct rlc_sft_stats {
    double loss;      // token-mean NLL over the step's response tokens
    double grad_norm; // before clipping
    int tokens;       // response (target) tokens
    int seqs;
} rlc_sft_stats;

// Expert sequences of problems [first, first + cfg->sft.batch_size) (*seqs_out, malloc'd; free each with
// rlc_sequence_free). Returns the number of response (target) tokens of the whole batch.
int rlc_sft_build(const rlc_config *cfg, const rlc_task *task, int max_seq_len, uint64_t first,
                  rlc_sequence **seqs_out);
// Forward/backward of seqs[idx[0..n-1]] (all n when idx is NULL) in micro-batches of `budget` tokens,
// accumulating gradients of the token-mean NLL normalised by the global count n_tok. Returns the loss part.
double rlc_sft_accumulate(rlc_model *m, const rlc_sequence *seqs, const int *idx, int n, int n_tok, int budget);
// One optimizer step on problems [first, first + cfg->sft.batch_size) of the training stream (cfg->seed).
void rlc_sft_step(rlc_model *m, rlc_adamw *opt, const rlc_config *cfg, const rlc_task *task, uint64_t first,
                  float lr, rlc_sft_stats *st);
