// include/rlc/loss.h: the training losses on host arrays (spec: ../shared/spec/losses.md sections 2-4, 6, 7).
// Policy losses (PPO clip with eps_low/eps_high and dual clip, GSPO, CISPO) with KL to a reference, entropy
// bonus and TIS rollout correction; the clipped value loss; DPO / IPO; SFT; the PPO-style KL reward and the
// adaptive KL coefficient. Pure functions: no allocation, no global state. All per-token math runs in double
// and is stored as rlc_f (float in the engine, double in the gradient-check build).
//
// How the trainer uses them, per optimizer step:
//   1. Count the normalisers over the WHOLE optimizer batch (all micro-batches, later all ranks):
//        rlc_loss_norm nrm = {0}; nrm.l_const = max response length from the config;
//        for each micro-batch: rlc_loss_norm_add(&nrm, &mb);        (all-reduce n_tok / n_seq across ranks)
//   2. For each micro-batch (whole sequences only; never split a sequence):
//        forward -> logp, entropy (T) from the fused log-prob op;
//        loss += rlc_policy_loss(&cfg, &nrm, &mb, &in, dlogp, dent, &stats);
//        ops->logprob_backward(dhidden, dw, dlogp, dent, ...)   -> model backward (gradients accumulate)
//   3. The sum over micro-batches of the returned values is the full-batch loss, and the accumulated
//      gradient equals the gradient of one pass over the batch, whatever the micro-batch split.
// Output gradients (dlogp, dent, dv) are OVERWRITTEN (0 on masked tokens); stats are ACCUMULATED (+=),
// so zero them (= {0}) once per step.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "rlc/config.h"
#include "rlc/ops.h"

typedef enum { RLC_PL_PPO = 0, RLC_PL_GSPO, RLC_PL_CISPO } rlc_policy_kind;
typedef enum {
    RLC_AGG_TOKEN_MEAN = 0,         // sum L*m / N_tok
    RLC_AGG_SEQ_MEAN_TOKEN_SUM,     // sum_i (sum_t L*m) / N_seq
    RLC_AGG_SEQ_MEAN_TOKEN_MEAN,    // sum_i (sum_t L*m / n_i) / N_seq
    RLC_AGG_SEQ_MEAN_TOKEN_SUM_NORM // sum L*m / (N_seq * L_const)
} rlc_agg;
typedef enum { RLC_KL_K1 = 0, RLC_KL_ABS, RLC_KL_K2, RLC_KL_K3, RLC_KL_K3P, RLC_KL_K1P } rlc_kl_est;
typedef enum { RLC_TIS_OFF = 0, RLC_TIS_TOKEN, RLC_TIS_SEQ } rlc_tis_level;
typedef enum { RLC_TIS_TRUNCATE = 0, RLC_TIS_MASK } rlc_tis_mode;
typedef enum { RLC_PREF_DPO = 0, RLC_PREF_IPO } rlc_pref_kind;

// Everything the policy loss needs from the config.
typedef struct rlc_loss_config {
    rlc_policy_kind policy;
    float eps_low, eps_high;  // PPO/GSPO clip range [1-eps_low, 1+eps_high]
    float dual_clip;          // c > 1 (PPO only); 0 = off
    float cispo_eps_max;      // CISPO: weight = min(r, eps_max)
    rlc_agg agg;              // aggregation of the PPO/CISPO term, the KL term and the entropy term (GSPO's policy
                              // term always uses seq-mean-token-mean)
    float kl_beta;            // 0 = no KL term in the loss (needs ref otherwise)
    rlc_kl_est kl_est;
    float ent_coef;           // 0 = no entropy bonus
    rlc_tis_level tis;        // rollout correction (needs roll otherwise)
    rlc_tis_mode tis_mode;
    float tis_c;              // truncate: w = min(w, C)
    float tis_c_min, tis_c_max; // mask: w = 0 outside [C_min, C_max] (w kept inside)
} rlc_loss_config;

// Global normalisers of the whole optimizer batch (every micro-batch, every rank).
typedef struct rlc_loss_norm {
    double n_tok;   // response tokens (mask == 1)
    double n_seq;   // sequences with at least one response token
    double l_const; // seq-mean-token-sum-norm's constant (max response length from the config)
} rlc_loss_norm;

// A packed micro-batch's layout (host arrays). Sequences are whole; mask (T) is 1 on response tokens (loss
// targets) and 0 on prompt / observation / padding tokens; mask NULL means every token is a response token.
typedef struct rlc_loss_batch {
    int T, B;
    const int *cu_seqlens; // (B+1), cu_seqlens[0] = 0, cu_seqlens[B] = T
    const uint8_t *mask;   // (T) or NULL
} rlc_loss_batch;

// Per-token inputs of the policy loss, all (T). Values on masked tokens are never read into any sum, so they
// may be garbage (NaN, inf).
typedef struct rlc_policy_inputs {
    const rlc_f *logp;    // current policy (the fused op's output)
    const rlc_f *old;     // the policy being improved (recomputed, or the rollout's)
    const rlc_f *ref;     // frozen reference; NULL allowed when kl_beta == 0 (no KL metric then)
    const rlc_f *roll;    // rollout engine's log-probs; NULL allowed when tis is off (no mismatch metric then)
    const rlc_f *adv;     // advantages (a sequence's advantage broadcast to its tokens)
    const rlc_f *entropy; // current policy entropy; NULL allowed when ent_coef == 0 (no entropy metric then)
} rlc_policy_inputs;

// Metric sums. Every field adds across micro-batches and ranks (all-reduce SUM) except the *_max fields
// (all-reduce MAX). Means: divide a *_sum by tok (or pairs, seq) -- see rlc_loss_stats_mean.
typedef struct rlc_loss_stats {
    double loss;          // total loss contribution (everything below that is a loss, already normalised)
    double pg_loss, kl_loss, ent_loss, vf_loss, pref_loss, sft_loss; // the terms (vf_loss without its coef)
    double tok, seq;      // response tokens / sequences with n_i > 0 seen
    double clip_sum;      // tokens with L2 > L1 (CISPO: r > eps_max)
    double clip_low_sum;  // tokens hit by the dual clip (A < 0 and Lc > -A*c)
    double ratio_sum;     // sum of r (GSPO: the sequence ratio on each token)
    double kl_sum;        // sum of the estimator's kl(logp, ref) (when ref given)
    double ent_sum;       // sum of entropy (when given)
    double mismatch_sum;  // sum |old - roll| (when roll given)
    double tis_w_sum;     // sum of TIS weights after truncation/masking (when on)
    double tis_masked;    // tokens zeroed by TIS mask mode
    double nll_sum;       // SFT: sum of -logp
    double vf_tok, vf_clip_sum, vf_err_sum; // value loss: tokens, clipped branch taken, sum (v - R)^2
    double pairs;         // DPO/IPO pairs
    double reward_chosen_sum, reward_rejected_sum, margin_sum, pref_acc_sum; // implicit rewards beta*(logp-ref)
    double ratio_max;     // MAX
    double mismatch_max;  // MAX
} rlc_loss_stats;

// dst += src (max for *_max).
void rlc_loss_stats_merge(rlc_loss_stats *dst, const rlc_loss_stats *src);

// ---- config ----
// String names -> enums; -1 (with a message naming the key and the valid values in err) on unknown names.
int rlc_policy_kind_parse(const char *s, rlc_policy_kind *out, char *err, size_t errlen);
int rlc_agg_parse(const char *s, rlc_agg *out, char *err, size_t errlen);
int rlc_kl_est_parse(const char *s, rlc_kl_est *out, char *err, size_t errlen);
// Fill cfg from the rl section of the run config (rl.policy_loss, rl.loss_agg, rl.kl_estimator, rl.tis, ...).
int rlc_loss_config_from_rl(rlc_loss_config *cfg, const rlc_rl_config *rl, char *err, size_t errlen);

// ---- normalisers ----
// Add a micro-batch's response-token and non-empty-sequence counts to n (l_const untouched).
void rlc_loss_norm_add(rlc_loss_norm *n, const rlc_loss_batch *b);
// Aggregation weight of each response token of a sequence with n_i response tokens: agg(L) = sum_t w*m*L.
// 0 when the normaliser it needs is 0 (an empty batch has loss 0, not NaN).
double rlc_agg_weight(rlc_agg agg, int n_i, const rlc_loss_norm *n);

// ---- per-token building blocks (also the reference for the CUDA twins) ----
// PPO clip on one token (spec section 2): returns L, writes dL/dr. c <= 0 = no dual clip. clipped /
// lower_clipped (may be NULL) receive the clip-fraction indicators.
double rlc_ppo_token(double r, double A, double eps_low, double eps_high, double c, double *dL_dr, int *clipped,
                     int *lower_clipped);
// KL estimator of (logp, ref) (spec section 3): returns its value, writes d/dlogp (may be NULL).
double rlc_kl_token(rlc_kl_est est, double logp, double ref, double *dkl_dlogp);

// ---- losses ----
// Policy loss over one micro-batch: pg + kl_beta * agg(kl) - ent_coef * agg(H), with pg = agg(w_tis * L_policy)
// (GSPO: seq-mean-token-mean). Returns this micro-batch's contribution to the full-batch loss. Writes
// dlogp (T) = dL/dlogp and dent (T) = dL/dH (dent may be NULL when ent_coef == 0). Accumulates stats.
double rlc_policy_loss(const rlc_loss_config *cfg, const rlc_loss_norm *norm, const rlc_loss_batch *b,
                       const rlc_policy_inputs *in, rlc_f *dlogp, rlc_f *dent, rlc_loss_stats *stats);

// Clipped value loss (spec section 5, GAE): coef * 0.5 * agg(max((v-R)^2, (v_clip-R)^2)),
// v_clip = clamp(v, v_old - cv, v_old + cv) (cv <= 0: no clipping). v, v_old, ret (T). Writes dv (T) = dL/dv.
// Returns the contribution; stats->vf_loss gets it without coef.
double rlc_value_loss(const rlc_f *v, const rlc_f *v_old, const rlc_f *ret, const rlc_loss_batch *b, rlc_agg agg,
                      const rlc_loss_norm *norm, float cv, float coef, rlc_f *dv, rlc_loss_stats *stats);

// DPO / IPO over pairs of sequences: sequence 2p is the chosen and 2p+1 the rejected response of pair p
// (B even). Log-probs are summed over response tokens (IPO: averaged). L = mean over pairs of
// -log sigmoid(beta*h) (DPO) or (h_bar - 1/(2 beta))^2 (IPO); n_pairs = pairs in the whole optimizer batch.
// logp, ref (T); writes dlogp (T). Returns the contribution.
double rlc_pref_loss(rlc_pref_kind kind, float beta, const rlc_f *logp, const rlc_f *ref, const rlc_loss_batch *b,
                     double n_pairs, rlc_f *dlogp, rlc_loss_stats *stats);

// SFT: -agg(logp) (the spec uses token-mean). Writes dlogp (T); returns the contribution.
double rlc_sft_loss(const rlc_f *logp, const rlc_loss_batch *b, rlc_agg agg, const rlc_loss_norm *norm,
                    rlc_f *dlogp, rlc_loss_stats *stats);

// ---- KL in the reward (PPO style) and adaptive beta ----
// rewards (T) = -beta * kl(old, ref) on response tokens (nothing when ref is NULL or beta == 0), plus
// scores[i] on the last response token of sequence i; 0 on masked tokens. Returns the sum of kl over the
// response tokens (divide by sequences for the controller's per-sequence KL).
double rlc_kl_reward(rlc_f *rewards, const rlc_f *old, const rlc_f *ref, const float *scores,
                     const rlc_loss_batch *b, float beta, rlc_kl_est est);

// Adaptive KL coefficient: err = clip(kl_now/target - 1, -0.2, 0.2); beta *= 1 + err * n / horizon, n = samples
// in the step. target <= 0: beta stays fixed.
typedef struct rlc_kl_ctl {
    double beta, target, horizon;
} rlc_kl_ctl;
void rlc_kl_ctl_update(rlc_kl_ctl *c, double kl_now, int n);
