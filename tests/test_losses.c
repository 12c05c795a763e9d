// tests/test_losses.c: the loss vectors of spec losses.md section 8 (PPO clip values and dL/dr, dual clip,
// clip-higher, A = 0, clamped log-ratio, NaN under the mask, aggregation modes, KL estimators, value clip, DPO,
// TIS), an independent re-computation of the composed policy loss, and micro-batch invariance of every loss for
// every aggregation mode (one pass over a batch vs unequal micro-batches of whole sequences).
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "rlc/loss.h"
#include "test_util.h"

#define TOL 2e-6

// One response token: logp = log r, old = 0, token-mean over N_tok = 1, so loss = L and dlogp = dL/dr * r.
static void ppo_case(double A, double r, double eps_low, double eps_high, double c, double want_L, double want_g,
                     int want_low) {
    char what[96];
    double g;
    int cl, low;
    double L = rlc_ppo_token(r, A, eps_low, eps_high, c, &g, &cl, &low);
    snprintf(what, sizeof what, "ppo L A=%g r=%g", A, r);
    CHECK_CLOSE(L, want_L, TOL, 0, what);
    snprintf(what, sizeof what, "ppo dL/dr A=%g r=%g", A, r);
    CHECK_CLOSE(g, want_g, TOL, 0, what);
    CHECK(low == want_low, "lower clip indicator A=%g r=%g: got %d want %d", A, r, low, want_low);

    // the same through the batch API
    int cu[2] = {0, 1};
    uint8_t m[1] = {1};
    rlc_loss_batch b = {1, 1, cu, m};
    rlc_f logp = (rlc_f)log(r), old = 0, adv = (rlc_f)A, dlogp = 99, dent = 99;
    rlc_policy_inputs in = {&logp, &old, NULL, NULL, &adv, NULL};
    rlc_loss_config cfg = {.policy = RLC_PL_PPO, .eps_low = (float)eps_low, .eps_high = (float)eps_high,
                           .dual_clip = (float)c, .agg = RLC_AGG_TOKEN_MEAN};
    rlc_loss_norm nrm = {1, 1, 1};
    rlc_loss_stats st = {0};
    double loss = rlc_policy_loss(&cfg, &nrm, &b, &in, &dlogp, &dent, &st);
    double rr = exp((double)logp); // r as representable in rlc_f
    snprintf(what, sizeof what, "batch ppo loss A=%g r=%g", A, r);
    CHECK_CLOSE(loss, want_L, 1e-5, 0, what);
    snprintf(what, sizeof what, "batch ppo dlogp/r A=%g r=%g", A, r);
    CHECK_CLOSE(dlogp / rr, want_g, 1e-5, 0, what);
    CHECK(dent == 0, "dent must be overwritten with 0 when ent_coef = 0 (got %g)", (double)dent);
    CHECK(st.clip_low_sum == want_low, "stats lower clip A=%g r=%g: %g", A, r, st.clip_low_sum);
    CHECK(st.tok == 1 && st.seq == 1, "stats counts %g %g", st.tok, st.seq);
}

static void test_ppo_vectors(void) {
    ppo_case(+1, 1.0, 0.2, 0.2, 3, -1, -1, 0);
    ppo_case(-1, 1.0, 0.2, 0.2, 3, 1, +1, 0);
    ppo_case(+1, 1.3, 0.2, 0.2, 3, -1.2, 0, 0);
    ppo_case(+1, 0.5, 0.2, 0.2, 3, -0.5, -1, 0);
    ppo_case(-1, 0.5, 0.2, 0.2, 3, 0.8, 0, 0);
    ppo_case(-1, 1.3, 0.2, 0.2, 3, 1.3, +1, 0);
    ppo_case(-1, 4.0, 0.2, 0.2, 3, 3.0, 0, 1);
    ppo_case(+1, 4.0, 0.2, 0.2, 3, -1.2, 0, 0);
    ppo_case(+1, 1.25, 0.2, 0.28, 3, -1.25, -1, 0);
    ppo_case(0, 1.3, 0.2, 0.2, 3, 0, 0, 0);
    ppo_case(0, 0.5, 0.2, 0.2, 3, 0, 0, 0);
    // dual clip off: A < 0 keeps growing with r (and is not counted as lower-clipped)
    ppo_case(-1, 4.0, 0.2, 0.2, 0, 4.0, +1, 0);

    // clip fraction indicator: L2 > L1
    int cl;
    rlc_ppo_token(1.3, +1, 0.2, 0.2, 3, NULL, &cl, NULL);
    CHECK(cl == 1, "A=+1 r=1.3 is clipped");
    rlc_ppo_token(1.1, +1, 0.2, 0.2, 3, NULL, &cl, NULL);
    CHECK(cl == 0, "A=+1 r=1.1 is not clipped");
    rlc_ppo_token(0.5, -1, 0.2, 0.2, 3, NULL, &cl, NULL);
    CHECK(cl == 1, "A=-1 r=0.5 is clipped");

    // log-ratio 25 is clamped to 20: finite loss and gradient, for either sign of A, dual clip on or off
    for (int k = 0; k < 4; k++) {
        int cu[2] = {0, 1};
        rlc_loss_batch b = {1, 1, cu, NULL};
        rlc_f logp = 25, old = 0, adv = (k & 1) ? -1 : 1, dlogp, dent;
        rlc_policy_inputs in = {&logp, &old, NULL, NULL, &adv, NULL};
        rlc_loss_config cfg = {.policy = RLC_PL_PPO, .eps_low = 0.2f, .eps_high = 0.2f,
                               .dual_clip = (k & 2) ? 3.0f : 0.0f, .agg = RLC_AGG_TOKEN_MEAN};
        rlc_loss_norm nrm = {1, 1, 1};
        rlc_loss_stats st = {0};
        double loss = rlc_policy_loss(&cfg, &nrm, &b, &in, &dlogp, &dent, &st);
        CHECK(isfinite(loss) && isfinite((double)dlogp), "log-ratio 25 (case %d): loss %g dlogp %g", k, loss,
              (double)dlogp);
        CHECK(st.ratio_max <= exp(20.0) * (1 + 1e-12), "ratio clamped at e^20: %g", st.ratio_max);
        if (k == 1) CHECK_CLOSE(loss, exp(20.0), 0, 1e-6, "A=-1, no dual clip: L = e^20");
        CHECK(dlogp == 0, "the clamp is flat at log-ratio 25: dlogp %g (case %d)", (double)dlogp, k);
    }
}

// GSPO on hand-computed values: one sequence with log-ratios [0.05, 0.1] (s = exp(0.075)) and one with
// [0.3, 0.3, 0.3] (s = exp(0.3), clipped at 1.2 for A > 0), seq-mean-token-mean over 2 sequences.
static void test_gspo(void) {
    int cu[3] = {0, 3, 7};
    uint8_t m[7] = {0, 1, 1, 0, 1, 1, 1};
    rlc_f logp[7] = {NAN, -1.0f, -2.0f, NAN, -0.5f, -0.6f, -0.7f};
    rlc_f old[7] = {NAN, -1.05f, -2.1f, NAN, -0.8f, -0.9f, -1.0f};
    rlc_f adv[7] = {0, 1.5f, 1.5f, 0, 2.0f, 2.0f, 2.0f}, dlogp[7];
    rlc_loss_batch b = {7, 2, cu, m};
    rlc_policy_inputs in = {logp, old, NULL, NULL, adv, NULL};
    // agg in the config is ignored for GSPO's policy term (always seq-mean-token-mean)
    rlc_loss_config cfg = {.policy = RLC_PL_GSPO, .eps_low = 0.2f, .eps_high = 0.2f, .dual_clip = 3,
                           .agg = RLC_AGG_TOKEN_MEAN};
    rlc_loss_norm nrm = {5, 2, 4};
    rlc_loss_stats st = {0};
    double s0 = exp(((double)logp[1] - old[1] + (double)logp[2] - old[2]) / 2);
    double loss = rlc_policy_loss(&cfg, &nrm, &b, &in, dlogp, NULL, &st);
    CHECK_CLOSE(loss, (-1.5 * s0 - 2.0 * 1.2) / 2, 1e-6, 0, "GSPO loss");
    CHECK_CLOSE(dlogp[1], -1.5 * s0 / (2 * 2), 1e-6, 0, "GSPO dlogp (inside the range): -A s / (N_seq n_i)");
    CHECK(dlogp[5] == 0, "GSPO dlogp clipped sequence: %g", (double)dlogp[5]);
    CHECK_CLOSE(st.ratio_sum, 2 * s0 + 3 * exp(0.3), 1e-5, 0, "GSPO ratio metric");
    CHECK(st.clip_sum == 3, "GSPO clipped tokens %g", st.clip_sum);
}

// Masked tokens carrying NaN / inf in every input leave loss, gradients and metrics finite, and equal to the
// same batch without those tokens.
static void test_nan_under_mask(void) {
    const rlc_policy_kind kinds[3] = {RLC_PL_PPO, RLC_PL_GSPO, RLC_PL_CISPO};
    for (int kk = 0; kk < 3; kk++)
        for (int tis = 0; tis < 3; tis++) {
            int cu[3] = {0, 4, 6};
            uint8_t m[6] = {0, 1, 0, 1, 1, 0};
            rlc_f nan = NAN, inf = INFINITY;
            rlc_f logp[6] = {nan, -1.0f, inf, -0.5f, -2.0f, -inf};
            rlc_f old[6] = {nan, -1.1f, -inf, -0.3f, -2.2f, nan};
            rlc_f ref[6] = {inf, -1.3f, nan, -0.6f, -2.0f, nan};
            rlc_f roll[6] = {-inf, -1.05f, nan, -0.35f, -2.1f, inf};
            rlc_f adv[6] = {nan, 0.7f, inf, 0.7f, -0.4f, nan};
            rlc_f ent[6] = {nan, 1.2f, inf, 0.8f, 0.3f, nan};
            rlc_f dlogp[6], dent[6];
            rlc_loss_batch b = {6, 2, cu, m};
            rlc_policy_inputs in = {logp, old, ref, roll, adv, ent};
            rlc_loss_config cfg = {.policy = kinds[kk], .eps_low = 0.2f, .eps_high = 0.28f, .dual_clip = 3,
                                   .cispo_eps_max = 1.5f, .agg = RLC_AGG_SEQ_MEAN_TOKEN_MEAN, .kl_beta = 0.1f,
                                   .kl_est = RLC_KL_K3, .ent_coef = 0.01f, .tis = (rlc_tis_level)tis,
                                   .tis_mode = RLC_TIS_TRUNCATE, .tis_c = 2};
            rlc_loss_norm nrm = {0, 0, 8};
            rlc_loss_norm_add(&nrm, &b);
            CHECK(nrm.n_tok == 3 && nrm.n_seq == 2, "norm counts %g %g", nrm.n_tok, nrm.n_seq);
            rlc_loss_stats st = {0};
            double loss = rlc_policy_loss(&cfg, &nrm, &b, &in, dlogp, dent, &st);
            int ok = isfinite(loss) && isfinite(st.kl_sum) && isfinite(st.ent_sum) && isfinite(st.ratio_sum) &&
                     isfinite(st.mismatch_max) && isfinite(st.loss);
            for (int t = 0; t < 6; t++) ok &= isfinite((double)dlogp[t]) && isfinite((double)dent[t]);
            CHECK(ok, "NaN/inf under the mask leaked (policy %d, tis %d): loss %g", kk, tis, loss);
            CHECK(dlogp[0] == 0 && dlogp[2] == 0 && dlogp[5] == 0, "masked tokens get zero gradient");

            // the same batch with the masked tokens removed
            int cu2[3] = {0, 2, 3};
            rlc_f logp2[3] = {logp[1], logp[3], logp[4]}, old2[3] = {old[1], old[3], old[4]};
            rlc_f ref2[3] = {ref[1], ref[3], ref[4]}, roll2[3] = {roll[1], roll[3], roll[4]};
            rlc_f adv2[3] = {adv[1], adv[3], adv[4]}, ent2[3] = {ent[1], ent[3], ent[4]}, dl2[3], de2[3];
            rlc_loss_batch b2 = {3, 2, cu2, NULL};
            rlc_policy_inputs in2 = {logp2, old2, ref2, roll2, adv2, ent2};
            rlc_loss_stats st2 = {0};
            double loss2 = rlc_policy_loss(&cfg, &nrm, &b2, &in2, dl2, de2, &st2);
            CHECK_CLOSE(loss, loss2, 1e-9, 1e-9, "masked tokens do not change the loss");
            CHECK_CLOSE(dlogp[1], dl2[0], 1e-9, 1e-7, "dlogp tok 1");
            CHECK_CLOSE(dlogp[3], dl2[1], 1e-9, 1e-7, "dlogp tok 3");
            CHECK_CLOSE(dlogp[4], dl2[2], 1e-9, 1e-7, "dlogp tok 4");
            CHECK_CLOSE(dent[4], de2[2], 1e-9, 1e-7, "dent tok 4");
        }
}

// Spec aggregation vector through rlc_agg_weight and through the SFT loss (-agg(logp) with logp = -L).
static void test_aggregation(void) {
    const double want[4] = {1.25, 2.5, 1.5, 0.625};
    int cu[3] = {0, 4, 8};
    uint8_t m[8] = {1, 1, 1, 0, 1, 0, 0, 0};
    rlc_f L[8] = {1, 1, 1, NAN, 2, NAN, INFINITY, NAN};
    rlc_f logp[8], dlogp[8];
    for (int t = 0; t < 8; t++) logp[t] = -L[t];
    rlc_loss_batch b = {8, 2, cu, m};
    rlc_loss_norm nrm = {0, 0, 4};
    rlc_loss_norm_add(&nrm, &b);
    for (int a = 0; a < 4; a++) {
        double direct = 0;
        direct += rlc_agg_weight((rlc_agg)a, 3, &nrm) * 3.0 + rlc_agg_weight((rlc_agg)a, 1, &nrm) * 2.0;
        CHECK_CLOSE(direct, want[a], 1e-12, 0, "agg weights");
        rlc_loss_stats st = {0};
        double loss = rlc_sft_loss(logp, &b, (rlc_agg)a, &nrm, dlogp, &st);
        CHECK_CLOSE(loss, want[a], 1e-6, 0, "agg through SFT loss");
        CHECK_CLOSE(dlogp[0], -rlc_agg_weight((rlc_agg)a, 3, &nrm), 1e-7, 0, "SFT dlogp");
        CHECK(dlogp[3] == 0 && dlogp[6] == 0, "SFT masked dlogp 0");
    }
    CHECK_CLOSE(rlc_agg_weight(RLC_AGG_TOKEN_MEAN, 3, &(rlc_loss_norm){0, 0, 4}), 0, 0, 0, "empty batch: weight 0");
}

static void test_kl(void) {
    const double logp = -1.0, ref = -1.5;
    double g;
    CHECK_CLOSE(rlc_kl_token(RLC_KL_K1, logp, ref, &g), 0.5, 1e-7, 0, "k1");
    CHECK_CLOSE(g, 1.0, 1e-12, 0, "k1 grad");
    CHECK_CLOSE(rlc_kl_token(RLC_KL_ABS, logp, ref, &g), 0.5, 1e-7, 0, "abs");
    CHECK_CLOSE(g, 1.0, 1e-12, 0, "abs grad");
    CHECK_CLOSE(rlc_kl_token(RLC_KL_ABS, ref, logp, &g), 0.5, 1e-7, 0, "abs (negative D)");
    CHECK_CLOSE(g, -1.0, 1e-12, 0, "abs grad (negative D)");
    CHECK_CLOSE(rlc_kl_token(RLC_KL_K2, logp, ref, &g), 0.125, 1e-7, 0, "k2");
    CHECK_CLOSE(g, 0.5, 1e-12, 0, "k2 grad");
    CHECK_CLOSE(rlc_kl_token(RLC_KL_K3, logp, ref, &g), 0.1065307, 1e-7, 0, "k3");
    CHECK_CLOSE(g, 1.0 - exp(ref - logp), 1e-12, 0, "k3 grad = 1 - exp(ref - logp)");
    CHECK_CLOSE(rlc_kl_token(RLC_KL_K3P, logp, ref, &g), 0.1065307, 1e-7, 0, "k3+ value");
    CHECK_CLOSE(g, 0.5, 1e-12, 0, "k3+ grad = 0.5");
    CHECK_CLOSE(rlc_kl_token(RLC_KL_K1P, logp, ref, &g), 0.5, 1e-7, 0, "k1+ value");
    CHECK_CLOSE(g, 0.5, 1e-12, 0, "k1+ grad");
    // k3 stays finite and clamped for a huge log-ratio
    double v = rlc_kl_token(RLC_KL_K3, -30.0, 0.0, &g);
    CHECK(v == 10.0 && g == 0.0, "k3 clamps: %g %g", v, g);

    // through the policy loss: A = 0, beta = 1, one token: loss = k, dlogp = dk
    const rlc_kl_est ests[5] = {RLC_KL_K1, RLC_KL_ABS, RLC_KL_K2, RLC_KL_K3, RLC_KL_K3P};
    const double vals[5] = {0.5, 0.5, 0.125, 0.1065307, 0.1065307};
    const double grads[5] = {1, 1, 0.5, 1 - exp(-0.5), 0.5};
    for (int e = 0; e < 5; e++) {
        int cu[2] = {0, 1};
        rlc_loss_batch b = {1, 1, cu, NULL};
        rlc_f lp = -1.0f, old = -1.0f, rf = -1.5f, adv = 0, dlogp;
        rlc_policy_inputs in = {&lp, &old, &rf, NULL, &adv, NULL};
        rlc_loss_config cfg = {.policy = RLC_PL_PPO, .eps_low = 0.2f, .eps_high = 0.2f, .agg = RLC_AGG_TOKEN_MEAN,
                               .kl_beta = 1.0f, .kl_est = ests[e]};
        rlc_loss_norm nrm = {1, 1, 1};
        rlc_loss_stats st = {0};
        double loss = rlc_policy_loss(&cfg, &nrm, &b, &in, &dlogp, NULL, &st);
        CHECK_CLOSE(loss, vals[e], 1e-6, 0, "kl through policy loss");
        CHECK_CLOSE(dlogp, grads[e], 1e-6, 0, "kl grad through policy loss");
        CHECK_CLOSE(st.kl_sum, vals[e], 1e-6, 0, "kl metric");
    }
}

static void test_value_clip(void) {
    int cu[2] = {0, 2};
    rlc_loss_batch b = {2, 1, cu, NULL};
    // token 0: the spec vector (clipped branch wins, v outside the clip range -> no gradient);
    // token 1: v inside the range, unclipped branch: gradient v - R.
    rlc_f v[2] = {1.0f, 0.6f}, vo[2] = {0.5f, 0.5f}, R[2] = {2.0f, 2.0f}, dv[2];
    rlc_loss_norm nrm = {1, 1, 1};
    rlc_loss_stats st = {0};
    double loss = rlc_value_loss(v, vo, R, &(rlc_loss_batch){1, 1, (int[]){0, 1}, NULL}, RLC_AGG_TOKEN_MEAN, &nrm,
                                 0.2f, 1.0f, dv, &st);
    CHECK_CLOSE(loss, 0.845, 1e-6, 0, "value clip loss");
    CHECK(dv[0] == 0, "clipped value (v outside [v_old-cv, v_old+cv]) has zero gradient: %g", (double)dv[0]);
    CHECK(st.vf_clip_sum == 1, "value clip counted");
    nrm.n_tok = 2;
    loss = rlc_value_loss(v, vo, R, &b, RLC_AGG_TOKEN_MEAN, &nrm, 0.2f, 0.5f, dv, &st);
    CHECK_CLOSE(loss, 0.5 * 0.5 * (1.69 + 1.96) / 2, 1e-6, 0, "value loss two tokens, coef 0.5");
    CHECK_CLOSE(dv[1], 0.5 * (0.6 - 2.0) / 2, 1e-6, 0, "value grad inside the clip range");
}

static void test_dpo(void) {
    // chosen (logp, ref) sums (-10, -12) over 2 tokens, rejected (-15, -14) over 3 tokens
    int cu[3] = {0, 3, 7};
    uint8_t m[7] = {0, 1, 1, 0, 1, 1, 1};
    rlc_f logp[7] = {NAN, -4, -6, NAN, -7, -5, -3}, ref[7] = {NAN, -5, -7, NAN, -6, -4, -4}, dlogp[7];
    rlc_loss_batch b = {7, 2, cu, m};
    rlc_loss_stats st = {0};
    double loss = rlc_pref_loss(RLC_PREF_DPO, 0.1f, logp, ref, &b, 1, dlogp, &st);
    CHECK_CLOSE(loss, 0.5543552, 1e-6, 0, "DPO loss");
    double sig = 1.0 / (1.0 + exp(0.3)); // sigmoid(-beta*h)
    CHECK_CLOSE(dlogp[1], -0.1 * sig, 1e-7, 0, "DPO dlogp chosen");
    CHECK_CLOSE(dlogp[6], 0.1 * sig, 1e-7, 0, "DPO dlogp rejected");
    CHECK(dlogp[0] == 0 && dlogp[3] == 0, "DPO masked grads 0");
    CHECK_CLOSE(st.reward_chosen_sum, 0.2, 1e-6, 0, "implicit reward chosen");
    CHECK_CLOSE(st.reward_rejected_sum, -0.1, 1e-6, 0, "implicit reward rejected");
    CHECK_CLOSE(st.margin_sum, 0.3, 1e-6, 0, "margin");
    CHECK(st.pref_acc_sum == 1 && st.pairs == 1, "pref accuracy");
    // IPO: h_bar = 2/2 - (-1)/3 = 4/3, beta 0.1 -> (4/3 - 5)^2
    st = (rlc_loss_stats){0};
    loss = rlc_pref_loss(RLC_PREF_IPO, 0.1f, logp, ref, &b, 2, dlogp, &st);
    CHECK_CLOSE(loss, 0.5 * (4.0 / 3 - 5) * (4.0 / 3 - 5), 1e-5, 0, "IPO loss (n_pairs 2)");
    CHECK_CLOSE(dlogp[2], 0.5 * 2 * (4.0 / 3 - 5) / 2, 1e-6, 0, "IPO dlogp chosen");
    CHECK_CLOSE(dlogp[5], -0.5 * 2 * (4.0 / 3 - 5) / 3, 1e-6, 0, "IPO dlogp rejected");
}

// TIS: one sequence, A = 1, r = 1, seq-mean-token-sum over one sequence: dlogp[t] = -w_t.
static void test_tis(void) {
    int cu[2] = {0, 2};
    rlc_loss_batch b = {2, 1, cu, NULL};
    rlc_f logp[2] = {-1, -1}, old[2] = {-1, -1}, roll[2] = {-1.1f, -1.2f}, adv[2] = {1, 1}, dlogp[2];
    rlc_policy_inputs in = {logp, old, NULL, roll, adv, NULL};
    rlc_loss_norm nrm = {2, 1, 2};
    struct {
        rlc_tis_level lvl;
        rlc_tis_mode mode;
        float c;
        double w0, w1;
    } cases[4] = {{RLC_TIS_TOKEN, RLC_TIS_TRUNCATE, 2.0f, 1.1051709, 1.2214028},
                  {RLC_TIS_SEQ, RLC_TIS_TRUNCATE, 2.0f, 1.3498588, 1.3498588},
                  {RLC_TIS_TOKEN, RLC_TIS_TRUNCATE, 1.2f, 1.1051709, 1.2},
                  {RLC_TIS_TOKEN, RLC_TIS_MASK, 0, 1.1051709, 0}};
    for (int k = 0; k < 4; k++) {
        rlc_loss_config cfg = {.policy = RLC_PL_PPO, .eps_low = 0.2f, .eps_high = 0.2f,
                               .agg = RLC_AGG_SEQ_MEAN_TOKEN_SUM, .tis = cases[k].lvl, .tis_mode = cases[k].mode,
                               .tis_c = cases[k].c, .tis_c_min = 0.5f, .tis_c_max = 1.2f};
        rlc_loss_stats st = {0};
        double loss = rlc_policy_loss(&cfg, &nrm, &b, &in, dlogp, NULL, &st);
        CHECK_CLOSE(-dlogp[0], cases[k].w0, 1e-6, 0, "TIS w0");
        CHECK_CLOSE(-dlogp[1], cases[k].w1, 1e-6, 0, "TIS w1");
        CHECK_CLOSE(loss, -(cases[k].w0 + cases[k].w1), 1e-6, 0, "TIS loss");
        CHECK_CLOSE(st.mismatch_sum / st.tok, 0.15, 1e-6, 0, "mismatch mean");
        CHECK_CLOSE(st.mismatch_max, 0.2, 1e-6, 0, "mismatch max");
        if (cases[k].mode == RLC_TIS_MASK) CHECK(st.tis_masked == 1, "TIS mask count %g", st.tis_masked);
    }
}

// ---- a random packed batch for the invariance and composition tests ----
#define NS 9
static const int seq_len[NS] = {5, 3, 7, 1, 4, 6, 2, 5, 3};
static int g_cu[NS + 1], g_T;
static uint8_t g_mask[64];
static rlc_f g_logp[64], g_old[64], g_ref[64], g_roll[64], g_adv[64], g_ent[64], g_v[64], g_vo[64], g_R[64];

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double urand(void) { // xorshift64*, [0,1)
    rng_state ^= rng_state >> 12, rng_state ^= rng_state << 25, rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

static void make_batch(void) {
    g_cu[0] = 0;
    for (int i = 0; i < NS; i++) g_cu[i + 1] = g_cu[i] + seq_len[i];
    g_T = g_cu[NS];
    for (int i = 0; i < NS; i++) {
        double A = urand() * 2 - 1; // sequence-level advantage
        for (int t = g_cu[i]; t < g_cu[i + 1]; t++) {
            // a prompt token at the start of each sequence; sequence 3 has no response token at all
            g_mask[t] = (t > g_cu[i]) && i != 3 && urand() > 0.15;
            g_logp[t] = (rlc_f)(-3 * urand());
            g_old[t] = g_logp[t] + (rlc_f)(0.8 * (urand() - 0.5));
            g_ref[t] = g_logp[t] + (rlc_f)(0.6 * (urand() - 0.5));
            g_roll[t] = g_old[t] + (rlc_f)(0.2 * (urand() - 0.5));
            g_adv[t] = (rlc_f)(A + 0.3 * (urand() - 0.5));
            g_ent[t] = (rlc_f)(2 * urand());
            g_v[t] = (rlc_f)urand(), g_vo[t] = (rlc_f)urand(), g_R[t] = (rlc_f)(2 * urand());
            if (!g_mask[t]) g_old[t] = NAN; // must never be read
        }
    }
}

static rlc_loss_batch sub_batch(int s0, int s1, int *cu_buf) {
    for (int i = s0; i <= s1; i++) cu_buf[i - s0] = g_cu[i] - g_cu[s0];
    rlc_loss_batch b = {g_cu[s1] - g_cu[s0], s1 - s0, cu_buf, g_mask + g_cu[s0]};
    return b;
}

// Independent composition of the policy loss (PPO + dual clip + k3 KL + entropy + token TIS truncate) straight
// from the spec's formulas.
static double naive_policy_loss(rlc_agg agg, double l_const) {
    double ntok = 0, nseq = 0;
    for (int i = 0; i < NS; i++) {
        int ni = 0;
        for (int t = g_cu[i]; t < g_cu[i + 1]; t++) ni += g_mask[t];
        ntok += ni, nseq += ni > 0;
    }
    double total = 0;
    for (int i = 0; i < NS; i++) {
        int ni = 0;
        for (int t = g_cu[i]; t < g_cu[i + 1]; t++) ni += g_mask[t];
        double s = 0;
        for (int t = g_cu[i]; t < g_cu[i + 1]; t++) {
            if (!g_mask[t]) continue;
            double A = g_adv[t], r = exp((double)g_logp[t] - g_old[t]);
            double rc = fmin(fmax(r, 0.8), 1.28), Lc = fmax(-A * r, -A * rc);
            double L = A < 0 ? fmin(-A * 3.0, Lc) : Lc;
            double w = fmin(exp((double)g_old[t] - g_roll[t]), 2.0);
            double q = (double)g_ref[t] - g_logp[t], k3 = exp(q) - q - 1;
            s += w * L + 0.05 * k3 - 0.01 * g_ent[t];
        }
        if (agg == RLC_AGG_TOKEN_MEAN) total += s / ntok;
        if (agg == RLC_AGG_SEQ_MEAN_TOKEN_SUM) total += s / nseq;
        if (agg == RLC_AGG_SEQ_MEAN_TOKEN_MEAN && ni) total += s / ni / nseq;
        if (agg == RLC_AGG_SEQ_MEAN_TOKEN_SUM_NORM) total += s / (nseq * l_const);
    }
    return total;
}

// One pass over the whole batch vs unequal micro-batches of whole sequences, with global normalisers.
static void test_microbatch_invariance(void) {
    make_batch();
    const int splits[][5] = {{0, NS, -1}, {0, 2, 3, 7, NS}, {0, 1, 6, NS, -1}};
    const int nsplit[3] = {1, 4, 3};
    int cu_full[NS + 1];
    rlc_loss_batch full = sub_batch(0, NS, cu_full);
    for (int pk = 0; pk < 3; pk++)
        for (int a = 0; a < 4; a++) {
            rlc_loss_config cfg = {.policy = (rlc_policy_kind)pk, .eps_low = 0.2f, .eps_high = 0.28f,
                                   .dual_clip = 3, .cispo_eps_max = 1.1f, .agg = (rlc_agg)a, .kl_beta = 0.05f,
                                   .kl_est = RLC_KL_K3, .ent_coef = 0.01f, .tis = RLC_TIS_TOKEN,
                                   .tis_mode = RLC_TIS_TRUNCATE, .tis_c = 2};
            rlc_loss_norm nrm = {0, 0, 6};
            rlc_loss_norm_add(&nrm, &full);
            rlc_policy_inputs in = {g_logp, g_old, g_ref, g_roll, g_adv, g_ent};
            rlc_f dl_ref[64], de_ref[64], dv_ref[64], ds_ref[64], dp_ref[64];
            rlc_loss_stats st_ref = {0};
            double loss_ref = rlc_policy_loss(&cfg, &nrm, &full, &in, dl_ref, de_ref, &st_ref);
            CHECK(st_ref.seq == nrm.n_seq && st_ref.tok == nrm.n_tok, "policy stats counts %g %g", st_ref.seq,
                  st_ref.tok);
            double vloss_ref = rlc_value_loss(g_v, g_vo, g_R, &full, (rlc_agg)a, &nrm, 0.2f, 0.5f, dv_ref, &st_ref);
            double sloss_ref = rlc_sft_loss(g_logp, &full, (rlc_agg)a, &nrm, ds_ref, &st_ref);
            int cu8[NS + 1];
            rlc_loss_batch pairs = sub_batch(0, 8, cu8); // 4 DPO pairs
            double ploss_ref = rlc_pref_loss(RLC_PREF_DPO, 0.1f, g_logp, g_ref, &pairs, 4, dp_ref, &st_ref);
            if (pk == RLC_PL_PPO) {
                double want = naive_policy_loss((rlc_agg)a, 6);
                CHECK_CLOSE(loss_ref, want, 1e-7, 1e-6, "policy loss vs independent composition");
            }

            for (int sp = 1; sp < 3; sp++) {
                rlc_f dl[64], de[64], dv[64], ds[64], dp[64];
                rlc_loss_norm nrm2 = {0, 0, 6};
                int cu_mb[NS + 1];
                for (int k = 0; k < nsplit[sp]; k++) {
                    rlc_loss_batch mb = sub_batch(splits[sp][k], splits[sp][k + 1], cu_mb);
                    rlc_loss_norm_add(&nrm2, &mb);
                }
                CHECK(nrm2.n_tok == nrm.n_tok && nrm2.n_seq == nrm.n_seq, "norm from micro-batches");
                double loss = 0, vloss = 0, sloss = 0, ploss = 0;
                rlc_loss_stats st = {0};
                for (int k = 0; k < nsplit[sp]; k++) {
                    int s0 = splits[sp][k], s1 = splits[sp][k + 1], o = g_cu[s0];
                    rlc_loss_batch mb = sub_batch(s0, s1, cu_mb);
                    rlc_policy_inputs mi = {g_logp + o, g_old + o, g_ref + o, g_roll + o, g_adv + o, g_ent + o};
                    rlc_loss_stats part = {0};
                    loss += rlc_policy_loss(&cfg, &nrm2, &mb, &mi, dl + o, de + o, &part);
                    vloss += rlc_value_loss(g_v + o, g_vo + o, g_R + o, &mb, (rlc_agg)a, &nrm2, 0.2f, 0.5f, dv + o,
                                            &part);
                    sloss += rlc_sft_loss(g_logp + o, &mb, (rlc_agg)a, &nrm2, ds + o, &part);
                    rlc_loss_stats_merge(&st, &part);
                }
                // DPO pairs: micro-batches of 1 and 3 pairs
                int cu_p[NS + 1];
                rlc_loss_batch p1 = sub_batch(0, 2, cu_p);
                ploss += rlc_pref_loss(RLC_PREF_DPO, 0.1f, g_logp, g_ref, &p1, 4, dp, &st);
                rlc_loss_batch p2 = sub_batch(2, 8, cu_p);
                ploss += rlc_pref_loss(RLC_PREF_DPO, 0.1f, g_logp + g_cu[2], g_ref + g_cu[2], &p2, 4, dp + g_cu[2],
                                       &st);

                char what[96];
                snprintf(what, sizeof what, "policy %d agg %d split %d: loss", pk, a, sp);
                CHECK_CLOSE(loss, loss_ref, 1e-6, 0, what);
                CHECK_CLOSE(vloss, vloss_ref, 1e-6, 0, "value loss invariance");
                CHECK_CLOSE(sloss, sloss_ref, 1e-6, 0, "sft loss invariance");
                CHECK_CLOSE(ploss, ploss_ref, 1e-6, 0, "dpo loss invariance");
                double md = 0;
                for (int t = 0; t < g_T; t++) {
                    md = fmax(md, fabs((double)dl[t] - dl_ref[t]));
                    md = fmax(md, fabs((double)de[t] - de_ref[t]));
                    md = fmax(md, fabs((double)dv[t] - dv_ref[t]));
                    md = fmax(md, fabs((double)ds[t] - ds_ref[t]));
                    if (t < g_cu[8]) md = fmax(md, fabs((double)dp[t] - dp_ref[t]));
                }
                snprintf(what, sizeof what, "policy %d agg %d split %d: max grad diff %g", pk, a, sp, md);
                CHECK(md <= 1e-6, "%s", what);
                CHECK_CLOSE(st.kl_sum, st_ref.kl_sum, 1e-6, 0, "kl metric sums");
                CHECK_CLOSE(st.clip_sum, st_ref.clip_sum, 0, 0, "clip count sums");
                CHECK(st.ratio_max == st_ref.ratio_max, "ratio max merges");
                CHECK(st.tok == st_ref.tok && st.seq == st_ref.seq, "token counts merge");
            }
        }
}

static void test_kl_reward_and_ctl(void) {
    int cu[3] = {0, 3, 5};
    uint8_t m[5] = {0, 1, 1, 1, 0};
    rlc_f old[5] = {NAN, -1, -2, -0.5f, NAN}, ref[5] = {NAN, -1.5f, -1.5f, -0.7f, NAN}, rw[5];
    float scores[2] = {1.0f, 0.25f};
    rlc_loss_batch b = {5, 2, cu, m};
    double kl = rlc_kl_reward(rw, old, ref, scores, &b, 0.1f, RLC_KL_K1);
    CHECK_CLOSE(kl, 0.5 - 0.5 + 0.2, 1e-6, 0, "kl reward sum");
    CHECK(rw[0] == 0 && rw[4] == 0, "masked rewards 0");
    CHECK_CLOSE(rw[1], -0.05, 1e-7, 0, "kl reward t1");
    CHECK_CLOSE(rw[2], 0.05 + 1.0, 1e-6, 0, "kl reward + score on last response token");
    CHECK_CLOSE(rw[3], -0.02 + 0.25, 1e-6, 0, "kl reward seq 2");

    rlc_kl_ctl c = {0.1, 0.05, 1000};
    rlc_kl_ctl_update(&c, 1.0, 100); // err clipped to +0.2
    CHECK_CLOSE(c.beta, 0.1 * (1 + 0.2 * 100 / 1000.0), 1e-12, 0, "adaptive beta up");
    rlc_kl_ctl_update(&c, 0.045, 100); // err = -0.1
    CHECK_CLOSE(c.beta, 0.1 * 1.02 * (1 - 0.1 * 0.1), 1e-12, 0, "adaptive beta down");
    rlc_kl_ctl fixed = {0.1, 0, 1000};
    rlc_kl_ctl_update(&fixed, 5.0, 100);
    CHECK(fixed.beta == 0.1, "target 0: fixed beta");
}

static void test_config(void) {
    rlc_rl_config rl;
    memset(&rl, 0, sizeof rl);
    strcpy(rl.policy_loss, "gspo");
    strcpy(rl.loss_agg, "seq-mean-token-sum-norm");
    strcpy(rl.kl_estimator, "k3+");
    strcpy(rl.tis, "seq");
    strcpy(rl.tis_mode, "mask");
    rl.eps_low = 0.2f, rl.eps_high = 0.28f, rl.dual_clip = 3, rl.kl_beta = 0.01f;
    rlc_loss_config cfg;
    char err[256] = "";
    CHECK(rlc_loss_config_from_rl(&cfg, &rl, err, sizeof err) == 0, "valid config rejected: %s", err);
    CHECK(cfg.policy == RLC_PL_GSPO && cfg.agg == RLC_AGG_SEQ_MEAN_TOKEN_SUM_NORM && cfg.kl_est == RLC_KL_K3P &&
              cfg.tis == RLC_TIS_SEQ && cfg.tis_mode == RLC_TIS_MASK && cfg.kl_beta == 0.01f,
          "config mapping");
    strcpy(rl.loss_agg, "token-sum");
    CHECK(rlc_loss_config_from_rl(&cfg, &rl, err, sizeof err) != 0 && strstr(err, "rl.loss_agg"),
          "unknown agg rejected with the key: %s", err);
    strcpy(rl.loss_agg, "token-mean");
    rl.eps_low = 1.5f;
    CHECK(rlc_loss_config_from_rl(&cfg, &rl, err, sizeof err) != 0 && strstr(err, "rl.eps_low"),
          "eps_low > 1 rejected: %s", err);
}

int main(void) {
    test_ppo_vectors();
    test_gspo();
    test_nan_under_mask();
    test_aggregation();
    test_kl();
    test_value_clip();
    test_dpo();
    test_tis();
    test_microbatch_invariance();
    test_kl_reward_and_ctl();
    test_config();
    return test_finish("test_losses");
}
