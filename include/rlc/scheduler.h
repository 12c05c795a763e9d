// include/rlc/scheduler.h: how a step's work is spread over the ranks of an rlc_dist group, and the
// data-parallel pieces of training built on its collectives.
//
//   Generation: a round's prompts are split across ranks in contiguous blocks of whole groups (rank r gets
//     prompts [n*r/size, n*(r+1)/size) of the round); the rollout RNG is keyed by global prompt and sample ids,
//     so each sample's tokens do not depend on the rank count. The kept sequences are all-gathered (serialized),
//     so every rank holds the step's whole batch in global (prompt id) order.
//   Training: every mini-batch (the same whole groups as in a single process) is partitioned across ranks by
//     token count (longest-processing-time greedy on a fixed order: deterministic); DPO pairs stay together.
//     Advantages are computed before that from the all-gathered scores (or, for token-level estimators, with
//     all-reduced moments), losses are normalised by all-reduced global counts, and the gradients are SUMMED
//     over ranks (the losses already divide by global counts).
//   Optimizer: bucketed all-reduce of the flat gradients then AdamW on every rank, or ZeRO-1: reduce-scatter,
//     AdamW on this rank's shard of the moments, all-gather of the weights.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "rlc/comm.h"
#include "rlc/config.h"
#include "rlc/loss.h"
#include "rlc/model.h"
#include "rlc/optim.h"
#include "rlc/rollout.h"
#include "rlc/sft.h"
#include "rlc/task.h"

// ---- partitions ----
// Contiguous block of n items for rank r: [n*r/size, n*(r+1)/size).
void rlc_sched_block(int n, int size, int r, int *lo, int *hi);
// Longest-processing-time partition of n units with costs (>= 0) over size ranks: units in order of decreasing
// cost (ties: lower index first), each to the rank with the smallest load so far (ties: lowest rank). owner (n)
// receives each unit's rank. Deterministic: depends only on the costs.
void rlc_sched_partition(const int64_t *cost, int n, int size, int *owner);

// The sequences one rank trains on in a step, mini-batch by mini-batch.
typedef struct rlc_sched_plan {
    int n;          // sequences of this rank
    int *idx;       // (n) global sequence indices: mini-batch 0's, then 1's, ...; ascending within a mini-batch
    int n_mb;       // mini-batches
    int *mb_start;  // (n_mb + 1) boundaries in idx
} rlc_sched_plan;
// Units are `unit` consecutive sequences (2 for DPO pairs); mini-batch b holds units [mb_units[b],
// mb_units[b+1]) (global). Each mini-batch's units are partitioned by token count (sum of len - 1).
void rlc_sched_plan_build(rlc_sched_plan *p, const rlc_sequence *seqs, int unit, const int *mb_units, int n_mb,
                          int size, int rank);
void rlc_sched_plan_free(rlc_sched_plan *p);

// ---- sequences over the wire ----
size_t rlc_seq_serialized_size(const rlc_sequence *s);
// Write s into buf (rlc_seq_serialized_size bytes); returns the bytes written.
size_t rlc_seq_serialize(const rlc_sequence *s, unsigned char *buf);
// Read one sequence (allocated to its exact size; free with rlc_sequence_free); returns the bytes read, 0 when
// the buffer is truncated or malformed.
size_t rlc_seq_deserialize(rlc_sequence *s, const unsigned char *buf, size_t avail);
// All-gather: every rank's n_local sequences, concatenated in rank order, into out (capacity cap); returns the
// total count. The local sequences are copied (the caller still owns them).
int rlc_sched_allgather_seqs(const rlc_dist *d, const rlc_sequence *local, int n_local, rlc_sequence *out, int cap);
// A 29-bit hash (exact in metrics' %.9g) of the ids, tokens and masks of n sequences in order: equal across
// rank counts when the rollouts are identical.
double rlc_sched_rollout_hash(const rlc_sequence *seqs, int n);

// ---- collective reductions of training statistics ----
// Loss stats summed over ranks (the *_max fields: max).
void rlc_sched_reduce_loss_stats(const rlc_dist *d, rlc_loss_stats *st);

// ---- optimizer with data parallelism ----
// ZeRO-1 is active when requested and the group has more than one rank; opt->m/v then hold only this rank's
// shard [lo, hi) of the flat parameters (rlc_dist_shard) and opt->n = hi - lo.
int rlc_sched_zero1_active(const rlc_dist *d, int zero1);
// (Re)allocate zeroed moments (full, or this rank's shard) and t = 0.
void rlc_sched_adamw_init(const rlc_dist *d, int zero1, rlc_adamw *opt, const rlc_model *m);
// Sum the gradients over ranks, then one AdamW step (see optim.h; the clip uses the global gradient norm).
// A group of one calls rlc_adamw_step unchanged. Returns the pre-clip global gradient norm.
double rlc_sched_adamw_step(const rlc_dist *d, int zero1, rlc_adamw *opt, rlc_model *m, const rlc_optim_config *cfg,
                            float lr);
// The gradients of this step will not be used (every rank stops before the optimizer step, e.g. a non-finite
// loss): complete their device collectives that the last backward started (collective; nothing without them).
void rlc_sched_discard_grads(const rlc_dist *d, rlc_model *m);
// Full moments (n_params each) into full_m / full_v on every rank (collective with ZeRO-1, a copy otherwise).
// full_m / full_v are backend memory (as rlc_adamw.m / .v); here and in rlc_sched_adamw_step a device backend's
// buffers go to the group's device collectives (rlc_dist.dev: NCCL), or without them to MPI through a host
// staging copy. With device collectives attached, a group of one runs them too (RLC_FORCE_NCCL: to measure them).
void rlc_sched_adamw_gather(const rlc_dist *d, int zero1, const rlc_adamw *opt, const rlc_model *m, rlc_f *full_m,
                            rlc_f *full_v);
// This rank's part of full moments (backend memory; e.g. read from a checkpoint written with any rank count).
void rlc_sched_adamw_scatter(const rlc_dist *d, int zero1, rlc_adamw *opt, const rlc_model *m, const rlc_f *full_m,
                             const rlc_f *full_v);

// ---- phases ----
// Greedy evaluation on n held-out problems split in blocks across ranks; returns the global mean score (a group
// of one calls rlc_rollout_eval).
double rlc_sched_eval(const rlc_dist *d, rlc_model *m, const rlc_rollout_config *rc, const rlc_task *task,
                      const rlc_task_config *tc, int n, int batch);
// One SFT optimizer step on problems [first, first + batch_size): the batch partitioned across ranks by token
// count, token-mean over the global count, gradients summed (a group of one calls rlc_sft_step).
void rlc_sched_sft_step(const rlc_dist *d, int zero1, rlc_model *m, rlc_adamw *opt, const rlc_config *cfg,
                        const rlc_task *task, uint64_t first, float lr, rlc_sft_stats *st);
