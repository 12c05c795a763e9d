// include/rlc/advantage.h: advantage estimators on host arrays (spec: ../shared/spec/losses.md section 5):
// GRPO (group / batch / no scaling), RLOO, REINFORCE++ (and -baseline), GAE, EMPG, whitening, DAPO overlong
// shaping and the dynamic-sampling predicate. Pure functions, no allocation except where noted.
//
// Layouts. Per-sequence arrays (scores, sequence advantages) are float, n_groups * G entries with the G samples
// of prompt p at p*G .. p*G+G-1. Per-token arrays are rlc_f (T) over a packed batch described by an
// rlc_loss_batch (cu_seqlens + response mask; include/rlc/loss.h); token t's reward/value/advantage belong to
// the same packed position as its log-prob.
// Batch-wide statistics (whitening moments, EMPG's min/max/means) are split from their application so that a
// caller with several ranks can all-reduce the partial statistics in between; single-process wrappers do both.
#pragma once
#include <stdint.h>
#include "rlc/loss.h"
#include "rlc/ops.h"

typedef enum { RLC_ADV_SCALE_GROUP = 0, RLC_ADV_SCALE_BATCH, RLC_ADV_SCALE_NONE } rlc_adv_scale;
int rlc_adv_scale_parse(const char *s, rlc_adv_scale *out, char *err, size_t errlen); // "group"|"batch"|"none"

// ---- outcome advantages (one value per sequence) ----
// GRPO: A = (s - mean_g) / (std + 1e-6), std with n-1: std of the group (GROUP), of the whole batch of
// n_groups*G scores (BATCH), or no division (NONE, Dr.GRPO). A group whose scores are all equal gets 0. A group
// of one (G == 1) has mean 0: GROUP gives s / (1 + 1e-6), NONE gives s, BATCH gives s / (std_batch + 1e-6).
void rlc_adv_grpo(float *adv, const float *scores, int n_groups, int G, rlc_adv_scale scale);
// RLOO: A_i = s_i - mean_{j != i} s_j; group of one: s_i.
void rlc_adv_rloo(float *adv, const float *scores, int n_groups, int G);
// Baseline only: A = s - mean_g (REINFORCE++-baseline before whitening); group of one: s.
void rlc_adv_baseline(float *adv, const float *scores, int n_groups, int G);
// Dynamic sampling (DAPO): 1 when all G scores of a group are equal (the group carries no signal: drop it).
int rlc_group_all_equal(const float *scores, int G);
// DAPO overlong shaping: min(-(len - (max_len - buf)) / buf, 0) * factor, to add to the score. buf <= 0: 0.
float rlc_overlong_penalty(int len, int max_len, int buf, float factor);

// ---- per-token ----
// adv_tok (T) = adv_seq[i] on the response tokens of sequence i, 0 elsewhere.
void rlc_adv_broadcast(rlc_f *adv_tok, const float *adv_seq, const rlc_loss_batch *b);
// Discounted returns G_t = r_t + gamma * G_{t+1} within each sequence over response tokens (masked tokens are
// skipped: they pass G through and get 0). rewards, ret (T); ret may alias rewards.
void rlc_returns(rlc_f *ret, const rlc_f *rewards, const rlc_loss_batch *b, float gamma);
// GAE, backwards over each sequence's response tokens; masked tokens pass V_next and gae through unchanged
// and get adv = ret = 0. delta = r_t + gamma*V_next - V_t, gae = delta + gamma*lam*gae, V_next = 0 after the
// last response token; ret = gae + V. Raw (unwhitened) advantages: whiten them with rlc_whiten.
void rlc_adv_gae(rlc_f *adv, rlc_f *ret, const rlc_f *rewards, const rlc_f *values, const rlc_loss_batch *b,
                 float gamma, float lam);

// Whitening over the response tokens of the whole batch: x = (x - mean) / sqrt(var + 1e-8), var with n-1.
typedef struct rlc_moments {
    double n, sum, sumsq; // all-reduce SUM across micro-batches / ranks
} rlc_moments;
void rlc_moments_add(rlc_moments *m, const rlc_f *x, const rlc_loss_batch *b); // phase 1 (accumulates)
void rlc_whiten_apply(rlc_f *x, const rlc_loss_batch *b, const rlc_moments *m); // phase 2 (masked tokens -> 0)
void rlc_whiten(rlc_f *x, const rlc_loss_batch *b);                            // both, one process
// REINFORCE++: whitened discounted returns of per-token rewards (e.g. from rlc_kl_reward), one process.
void rlc_adv_reinforce_pp(rlc_f *adv, const rlc_f *rewards, const rlc_loss_batch *b, float gamma);
// REINFORCE++-baseline: s - mean_g broadcast to the tokens, whitened over the batch, one process. scores are
// per sequence of the packed batch (B = n_groups * G sequences in group order).
void rlc_adv_reinforce_pp_baseline(rlc_f *adv, const float *scores, int G, const rlc_loss_batch *b);

// ---- EMPG (entropy-modulated policy gradient) over S steps (policy turns) ----
// Inputs per step: H (S) the mean rollout entropy of the step's response tokens (rlc_empg_step_entropy),
// next (S) the index of the next step of the same episode or -1 for an episode's last step (episodes are whole
// on one rank), a_traj (S) the episode's base advantage (GRPO or DAPO). Batch statistics span every step of the
// batch on every rank: run the phases, all-reducing the stats after each (min/max after 1, sums after 2 and 3).
typedef struct rlc_empg_stats {
    double h_min, h_max; // phase 1 (all-reduce MIN / MAX); start at +inf / -inf (rlc_empg_stats_init)
    double n, g_sum;     // phase 2: steps and sum of exp(-k*Hn) (all-reduce SUM)
    double amod_sum;     // phase 3: sum of A_mod (all-reduce SUM)
} rlc_empg_stats;
void rlc_empg_stats_init(rlc_empg_stats *st);
// Mean of ent over tokens [start, end) with mask 1 (mask NULL: all); 0 for an empty step.
double rlc_empg_step_entropy(const float *ent, const uint8_t *mask, int start, int end);
void rlc_empg_phase1(rlc_empg_stats *st, const float *H, int S);
void rlc_empg_phase2(rlc_empg_stats *st, const float *H, int S, float k);
// a_mod (S) = g * a_traj + zeta * f_next; g_out (S, may be NULL) receives g.
void rlc_empg_phase3(rlc_empg_stats *st, float *a_mod, float *g_out, const float *H, const int *next,
                     const float *a_traj, int S, float k, float k2, float zeta);
// a (S) = a_mod - mean_B(a_mod), in place.
void rlc_empg_finish(float *a, int S, const rlc_empg_stats *st);
// All four phases in one process: a_final (S), g_out (S, may be NULL).
void rlc_adv_empg(float *a_final, float *g_out, const float *H, const int *next, const float *a_traj, int S,
                  float k, float k2, float zeta);
