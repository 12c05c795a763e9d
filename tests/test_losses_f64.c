// tests/test_losses_f64.c: central finite-difference checks (double precision, rlc_f = double) of every loss's
// analytic gradient: PPO clip at ratios away from the kinks (with TIS and dual clip), GSPO, CISPO, each KL
// estimator (k3+/k1+ against the k2 loss they borrow their gradient from), the entropy bonus, the clipped value
// loss, DPO, IPO and SFT with respect to their per-token inputs; then the same losses composed with the CPU
// fused log-prob op (logits = hidden @ w^T / tau), checking dL/dhidden and dL/dw against central differences.
// Relative error <= 1e-6 everywhere.
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "rlc/loss.h"
#include "rlc/ops.h"
#include "test_util.h"

#define FD_H 1e-5
#define REL_TOL 1e-6

static double max_rel = 0; // worst relative error seen, reported at the end

static void check_grad(double analytic, double fd, const char *what, int idx) {
    // relative error, with the denominator floored at 1e-4: below that the central difference's round-off
    // (~1e-16 * |L| / h) dominates, so tiny gradients are held to an absolute 1e-10 instead
    double scale = fmax(fmax(fabs(analytic), fabs(fd)), 1e-4);
    double rel = fabs(analytic - fd) / scale;
    if (rel > max_rel) max_rel = rel;
    CHECK(isfinite(analytic) && rel <= REL_TOL, "%s [%d]: analytic %.12g fd %.12g rel %.3g", what, idx, analytic, fd,
          rel);
}

static uint64_t rng_state = 0x243F6A8885A308D3ull;
static double urand(void) {
    rng_state ^= rng_state >> 12, rng_state ^= rng_state << 25, rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

// ---- a small packed batch: 3 sequences, prompt tokens masked ----
#define T 14
#define B 3
static int cu[B + 1] = {0, 5, 9, 14};
static uint8_t mask[T] = {0, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 1, 1};
static rlc_loss_batch batch = {T, B, cu, mask};
// ratios of the response tokens, chosen away from the kinks at 1 - eps_low = 0.8, 1 + eps_high = 1.2, c = 3
static const double ratio_of[T] = {1, 0.5, 0.9, 1.1, 1.3, 1, 1, 2.0, 4.0, 1, 0.7, 1.05, 3.5, 0.95};

static rlc_f logp[T], old[T], ref[T], roll[T], adv[T], ent[T], dlogp[T], dent[T];

typedef enum { X_LOGP, X_ENT } wrt;

static double eval_policy(const rlc_loss_config *cfg, const rlc_loss_norm *n, rlc_f *gl, rlc_f *ge) {
    rlc_policy_inputs in = {logp, old, ref, roll, adv, ent};
    rlc_loss_stats st = {0};
    return rlc_policy_loss(cfg, n, &batch, &in, gl, ge, &st);
}

// FD of the policy loss w.r.t. logp (or entropy) at every response token. shift_old: move old together with
// logp (the CISPO weight is detached: with r held fixed, the loss changes only through its logp factor).
static void fd_policy(const rlc_loss_config *cfg, const rlc_loss_norm *n, wrt x, int shift_old, const char *what) {
    rlc_f gl[T], ge[T], scratch_l[T], scratch_e[T];
    eval_policy(cfg, n, gl, ge);
    for (int t = 0; t < T; t++) {
        if (!mask[t]) continue;
        rlc_f *v = x == X_LOGP ? &logp[t] : &ent[t];
        rlc_f save = *v, save_old = old[t];
        *v = save + FD_H;
        if (shift_old) old[t] = save_old + FD_H;
        double fp = eval_policy(cfg, n, scratch_l, scratch_e);
        *v = save - FD_H;
        if (shift_old) old[t] = save_old - FD_H;
        double fm = eval_policy(cfg, n, scratch_l, scratch_e);
        *v = save, old[t] = save_old;
        check_grad(x == X_LOGP ? gl[t] : ge[t], (fp - fm) / (2 * FD_H), what, t);
    }
}

static void init_tokens(int seq_const_adv) {
    for (int i = 0; i < B; i++) {
        double A = i == 1 ? -0.8 : 0.6 + 0.3 * i;
        for (int t = cu[i]; t < cu[i + 1]; t++) {
            logp[t] = -0.2 - 2.5 * urand();
            old[t] = logp[t] - log(ratio_of[t]);
            ref[t] = logp[t] + 0.9 * (urand() - 0.5);
            roll[t] = old[t] + 0.4 * (urand() - 0.5);
            // alternating signs exercise both PPO branches at every ratio
            adv[t] = seq_const_adv ? A : ((t % 2) ? 1.0 : -1.0) * (0.3 + urand());
            ent[t] = 0.1 + 2 * urand();
        }
    }
}

static void test_policy_fd(void) {
    rlc_loss_norm n = {0, 0, 7};
    rlc_loss_norm_add(&n, &batch);
    init_tokens(0);
    for (int a = 0; a < 4; a++) {
        // PPO with dual clip, asymmetric range, k3 KL, entropy bonus and token TIS truncation
        rlc_loss_config cfg = {.policy = RLC_PL_PPO, .eps_low = 0.2f, .eps_high = 0.2f, .dual_clip = 3,
                               .agg = (rlc_agg)a, .kl_beta = 0.3f, .kl_est = RLC_KL_K3, .ent_coef = 0.02f,
                               .tis = RLC_TIS_TOKEN, .tis_mode = RLC_TIS_TRUNCATE, .tis_c = 1.1f};
        fd_policy(&cfg, &n, X_LOGP, 0, "PPO+k3+TIS dL/dlogp");
        fd_policy(&cfg, &n, X_ENT, 0, "entropy bonus dL/dH");
        cfg.tis = RLC_TIS_SEQ, cfg.tis_mode = RLC_TIS_MASK, cfg.tis_c_min = 0.5f, cfg.tis_c_max = 1.3f;
        fd_policy(&cfg, &n, X_LOGP, 0, "PPO seq-TIS mask dL/dlogp");
        cfg.tis = RLC_TIS_OFF, cfg.dual_clip = 0, cfg.eps_high = 0.28f, cfg.kl_beta = 0;
        fd_policy(&cfg, &n, X_LOGP, 0, "PPO no dual clip dL/dlogp");
        // CISPO: eps_max between the ratios so that both the r and the eps_max weights occur
        rlc_loss_config cc = {.policy = RLC_PL_CISPO, .cispo_eps_max = 1.2f, .agg = (rlc_agg)a};
        fd_policy(&cc, &n, X_LOGP, 1, "CISPO dL/dlogp (detached weight)");
    }
    // KL estimators alone (A = 0): k1, abs, k2, k3 against their own value; k3+ / k1+ against k2's
    for (int t = 0; t < T; t++) adv[t] = 0;
    const rlc_kl_est ests[4] = {RLC_KL_K1, RLC_KL_ABS, RLC_KL_K2, RLC_KL_K3};
    for (int e = 0; e < 4; e++) {
        rlc_loss_config cfg = {.policy = RLC_PL_PPO, .eps_low = 0.2f, .eps_high = 0.2f,
                               .agg = RLC_AGG_SEQ_MEAN_TOKEN_MEAN, .kl_beta = 0.7f, .kl_est = ests[e]};
        fd_policy(&cfg, &n, X_LOGP, 0, "KL estimator dL/dlogp");
    }
    for (int e = 0; e < 2; e++) {
        rlc_loss_config plus = {.policy = RLC_PL_PPO, .agg = RLC_AGG_TOKEN_MEAN, .kl_beta = 0.7f,
                                .kl_est = e ? RLC_KL_K1P : RLC_KL_K3P};
        rlc_loss_config k2 = plus;
        k2.kl_est = RLC_KL_K2;
        rlc_f gp[T], gk[T];
        eval_policy(&plus, &n, gp, NULL);
        eval_policy(&k2, &n, gk, NULL);
        for (int t = 0; t < T; t++)
            if (mask[t]) check_grad(gp[t], gk[t], e ? "k1+ gradient = k2 gradient" : "k3+ gradient = k2 gradient", t);
        fd_policy(&k2, &n, X_LOGP, 0, "k2 dL/dlogp");
    }
    // GSPO: sequence-level advantages (its sg form equals the true gradient of the sequence objective then);
    // sequence ratios placed inside and outside the clip range
    init_tokens(1);
    const double seq_ratio[B] = {1.05, 1.5, 0.6};
    for (int i = 0; i < B; i++)
        for (int t = cu[i]; t < cu[i + 1]; t++) old[t] = logp[t] - log(seq_ratio[i]) + 0.2 * (urand() - 0.5);
    for (int a = 0; a < 4; a++) {
        rlc_loss_config cfg = {.policy = RLC_PL_GSPO, .eps_low = 0.2f, .eps_high = 0.2f, .agg = (rlc_agg)a,
                               .kl_beta = 0.1f, .kl_est = RLC_KL_K2, .ent_coef = 0.05f};
        fd_policy(&cfg, &n, X_LOGP, 0, "GSPO dL/dlogp");
        fd_policy(&cfg, &n, X_ENT, 0, "GSPO entropy bonus dL/dH");
    }
}

static void test_value_fd(void) {
    rlc_f v[T], vo[T], R[T], dv[T], tmp[T];
    for (int t = 0; t < T; t++) {
        vo[t] = urand();
        R[t] = 2 * urand() - 0.5;
        // v either well inside [vo - cv, vo + cv] or well outside it
        v[t] = vo[t] + ((t % 3 == 0) ? 0.05 : (t % 3 == 1 ? 0.6 : -0.7));
    }
    rlc_loss_norm n = {0, 0, 6};
    rlc_loss_norm_add(&n, &batch);
    for (int a = 0; a < 4; a++) {
        rlc_loss_stats st = {0};
        rlc_value_loss(v, vo, R, &batch, (rlc_agg)a, &n, 0.2f, 0.7f, dv, &st);
        for (int t = 0; t < T; t++) {
            if (!mask[t]) continue;
            rlc_f s = v[t];
            v[t] = s + FD_H;
            double fp = rlc_value_loss(v, vo, R, &batch, (rlc_agg)a, &n, 0.2f, 0.7f, tmp, &st);
            v[t] = s - FD_H;
            double fm = rlc_value_loss(v, vo, R, &batch, (rlc_agg)a, &n, 0.2f, 0.7f, tmp, &st);
            v[t] = s;
            check_grad(dv[t], (fp - fm) / (2 * FD_H), "value loss dL/dv", t);
        }
    }
}

// DPO / IPO / SFT w.r.t. logp. The pairs use sequences 0/1 of a 4-sequence view.
static void test_pref_sft_fd(void) {
    int cu4[5] = {0, 5, 9, 12, 14};
    rlc_loss_batch pb = {T, 4, cu4, mask};
    init_tokens(0);
    rlc_f tmp[T];
    for (int k = 0; k < 3; k++) {
        rlc_loss_norm n = {0, 0, 5};
        rlc_loss_norm_add(&n, &pb);
        rlc_loss_stats st = {0};
        rlc_f g[T];
#define LOSS_K(out)                                                                                            \
    (k == 2 ? rlc_sft_loss(logp, &pb, RLC_AGG_TOKEN_MEAN, &n, out, &st)                                        \
            : rlc_pref_loss(k ? RLC_PREF_IPO : RLC_PREF_DPO, 0.5f, logp, ref, &pb, 2, out, &st))
        LOSS_K(g);
        for (int t = 0; t < T; t++) {
            if (!mask[t]) continue;
            rlc_f s = logp[t];
            logp[t] = s + FD_H;
            double fp = LOSS_K(tmp);
            logp[t] = s - FD_H;
            double fm = LOSS_K(tmp);
            logp[t] = s;
            check_grad(g[t], (fp - fm) / (2 * FD_H), k == 2 ? "SFT" : (k ? "IPO" : "DPO"), t);
        }
#undef LOSS_K
    }
}

// ---- through the fused log-prob op down to hidden and the LM head ----
#define C 8
#define V 13
static rlc_f hid[T * C], W[V * C], lse[T];
static int targets[T];
static const float TAU = 0.7f;

typedef enum { L_PPO, L_GSPO, L_CISPO, L_DPO, L_IPO, L_SFT, L_COUNT } op_loss;
static const char *op_loss_name[L_COUNT] = {"PPO+k3+entropy", "GSPO", "CISPO", "DPO", "IPO", "SFT"};

// Forward through the op, then the loss; fills dlogp / dent when want_grad.
static double op_eval(op_loss k, int want_grad) {
    const rlc_ops *ops = rlc_ops_cpu();
    ops->logprob_forward(logp, ent, lse, hid, W, targets, T, C, V, TAU);
    rlc_f gl[T], ge[T];
    rlc_loss_norm n = {0, 0, 6};
    rlc_loss_norm_add(&n, &batch);
    rlc_loss_stats st = {0};
    int cu4[5] = {0, 5, 9, 12, 14};
    rlc_loss_batch pb = {T, 4, cu4, mask};
    rlc_loss_norm n4 = {0, 0, 6};
    rlc_loss_norm_add(&n4, &pb);
    double L = 0;
    for (int t = 0; t < T; t++) ge[t] = 0;
    switch (k) {
    case L_PPO:
    case L_GSPO:
    case L_CISPO: {
        rlc_loss_config cfg = {.policy = k == L_PPO ? RLC_PL_PPO : (k == L_GSPO ? RLC_PL_GSPO : RLC_PL_CISPO),
                               .eps_low = 0.2f, .eps_high = 0.2f, .dual_clip = 3, .cispo_eps_max = 0.4f,
                               .agg = RLC_AGG_SEQ_MEAN_TOKEN_MEAN, .kl_beta = 0.2f, .kl_est = RLC_KL_K3,
                               .ent_coef = 0.05f, .tis = RLC_TIS_TOKEN, .tis_c = 1.1f};
        // GSPO's per-token sg form is the gradient of its sequence objective only when every token of a
        // sequence carries the same weight: sequence-level TIS there
        if (k == L_GSPO) cfg.tis = RLC_TIS_SEQ;
        L = eval_policy(&cfg, &n, gl, ge);
        break;
    }
    case L_DPO: L = rlc_pref_loss(RLC_PREF_DPO, 0.5f, logp, ref, &pb, 2, gl, &st); break;
    case L_IPO: L = rlc_pref_loss(RLC_PREF_IPO, 0.5f, logp, ref, &pb, 2, gl, &st); break;
    default: L = rlc_sft_loss(logp, &batch, RLC_AGG_TOKEN_MEAN, &n, gl, &st); break;
    }
    if (want_grad) memcpy(dlogp, gl, sizeof gl), memcpy(dent, ge, sizeof ge);
    return L;
}

static void test_through_op(void) {
    const rlc_ops *ops = rlc_ops_cpu();
    for (int i = 0; i < T * C; i++) hid[i] = 2 * urand() - 1;
    for (int i = 0; i < V * C; i++) W[i] = 2 * urand() - 1;
    for (int t = 0; t < T; t++) targets[t] = mask[t] ? (int)(urand() * V) : -1;
    ops->logprob_forward(logp, ent, lse, hid, W, targets, T, C, V, TAU);
    // old / ref / roll fixed at the starting point so that the ratios sit away from the kinks; sequence-level
    // advantages (GSPO); CISPO's eps_max 0.4 is below every ratio, so its weight is constant near here
    for (int i = 0; i < B; i++)
        for (int t = cu[i]; t < cu[i + 1]; t++) {
            double r = (i == 0) ? ratio_of[t] : (i == 1 ? 1.1 : 0.62 + 0.07 * (t - cu[i]));
            if (i == 1 && t == cu[i] + 3) r = 2.0;
            old[t] = logp[t] - log(r);
            ref[t] = logp[t] + 0.6 * (urand() - 0.5);
            roll[t] = old[t] + 0.3 * (urand() - 0.5);
            adv[t] = i == 1 ? -0.9 : 0.5 + 0.4 * i;
        }
    for (int k = 0; k < L_COUNT; k++) {
        op_eval((op_loss)k, 1);
        rlc_f dh[T * C], dw[V * C];
        memset(dh, 0, sizeof dh), memset(dw, 0, sizeof dw);
        ops->logprob_backward(dh, dw, dlogp, dent, hid, W, targets, lse, ent, T, C, V, TAU);
        char what[96];
        snprintf(what, sizeof what, "%s through the op: dL/dhidden", op_loss_name[k]);
        for (int i = 0; i < T * C; i++) {
            rlc_f s = hid[i];
            hid[i] = s + FD_H;
            double fp = op_eval((op_loss)k, 0);
            hid[i] = s - FD_H;
            double fm = op_eval((op_loss)k, 0);
            hid[i] = s;
            check_grad(dh[i], (fp - fm) / (2 * FD_H), what, i);
        }
        snprintf(what, sizeof what, "%s through the op: dL/dw", op_loss_name[k]);
        for (int i = 0; i < V * C; i += 5) {
            rlc_f s = W[i];
            W[i] = s + FD_H;
            double fp = op_eval((op_loss)k, 0);
            W[i] = s - FD_H;
            double fm = op_eval((op_loss)k, 0);
            W[i] = s;
            check_grad(dw[i], (fp - fm) / (2 * FD_H), what, i);
        }
    }
}

int main(void) {
    test_policy_fd();
    test_value_fd();
    test_pref_sft_fd();
    test_through_op();
    printf("test_losses_f64: worst relative error %.3g\n", max_rel);
    return test_finish("test_losses_f64");
}
