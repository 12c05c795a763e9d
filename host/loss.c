// host/loss.c: policy / value / preference / SFT losses with their per-token gradients, the KL reward and
// the adaptive KL coefficient (interface and usage: include/rlc/loss.h; formulas: spec losses.md).
// Every aggregation mode is linear in the per-token losses, agg(L) = sum_t w_i * m_t * L_t with a per-sequence
// weight w_i built from GLOBAL counts, so micro-batch contributions add up to the full-batch loss. Masked
// tokens are skipped by a branch (never multiplied by 0), so NaN/inf in their inputs cannot leak.
#include "rlc/loss.h"
#include <math.h>
#include <string.h>
#include "rlc/util.h"

#define LOG_RATIO_CLAMP 20.0

static inline int tok_on(const rlc_loss_batch *b, int t) { return b->mask ? b->mask[t] != 0 : 1; }

static inline double clampd(double x, double lo, double hi) { return x < lo ? lo : (x > hi ? hi : x); }

// Response tokens of sequence i.
static int seq_count(const rlc_loss_batch *b, int i) {
    int n = 0;
    for (int t = b->cu_seqlens[i]; t < b->cu_seqlens[i + 1]; t++) n += tok_on(b, t);
    return n;
}

void rlc_loss_stats_merge(rlc_loss_stats *dst, const rlc_loss_stats *src) {
    // Every field but the two maxima is a sum; walk the struct as doubles up to ratio_max.
    double *d = (double *)dst;
    const double *s = (const double *)src;
    size_t nsum = offsetof(rlc_loss_stats, ratio_max) / sizeof(double);
    for (size_t k = 0; k < nsum; k++) d[k] += s[k];
    if (src->ratio_max > dst->ratio_max) dst->ratio_max = src->ratio_max;
    if (src->mismatch_max > dst->mismatch_max) dst->mismatch_max = src->mismatch_max;
}

// ---- config ----

static int parse_name(const char *s, const char *const *names, int n, int *out, const char *key, char *err,
                      size_t errlen) {
    for (int k = 0; k < n; k++)
        if (strcmp(s, names[k]) == 0) return *out = k, 0;
    char valid[256] = "";
    for (int k = 0; k < n; k++) {
        strncat(valid, k ? ", \"" : "\"", sizeof(valid) - strlen(valid) - 1);
        strncat(valid, names[k], sizeof(valid) - strlen(valid) - 1);
        strncat(valid, "\"", sizeof(valid) - strlen(valid) - 1);
    }
    return rlc_errf(err, errlen, "%s: unknown value \"%s\" (expected one of %s)", key, s, valid);
}

int rlc_policy_kind_parse(const char *s, rlc_policy_kind *out, char *err, size_t errlen) {
    static const char *const names[] = {"ppo", "gspo", "cispo"};
    int k;
    if (parse_name(s, names, 3, &k, "rl.policy_loss", err, errlen)) return -1;
    *out = (rlc_policy_kind)k;
    return 0;
}

int rlc_agg_parse(const char *s, rlc_agg *out, char *err, size_t errlen) {
    static const char *const names[] = {"token-mean", "seq-mean-token-sum", "seq-mean-token-mean",
                                        "seq-mean-token-sum-norm"};
    int k;
    if (parse_name(s, names, 4, &k, "rl.loss_agg", err, errlen)) return -1;
    *out = (rlc_agg)k;
    return 0;
}

int rlc_kl_est_parse(const char *s, rlc_kl_est *out, char *err, size_t errlen) {
    static const char *const names[] = {"k1", "abs", "k2", "k3", "k3+", "k1+"};
    int k;
    if (parse_name(s, names, 6, &k, "rl.kl_estimator", err, errlen)) return -1;
    *out = (rlc_kl_est)k;
    return 0;
}

int rlc_loss_config_from_rl(rlc_loss_config *cfg, const rlc_rl_config *rl, char *err, size_t errlen) {
    memset(cfg, 0, sizeof(*cfg));
    if (rlc_policy_kind_parse(rl->policy_loss, &cfg->policy, err, errlen)) return -1;
    if (rlc_agg_parse(rl->loss_agg, &cfg->agg, err, errlen)) return -1;
    if (rlc_kl_est_parse(rl->kl_estimator, &cfg->kl_est, err, errlen)) return -1;
    static const char *const tis_names[] = {"off", "token", "seq"};
    static const char *const mode_names[] = {"truncate", "mask"};
    int k;
    if (parse_name(rl->tis, tis_names, 3, &k, "rl.tis", err, errlen)) return -1;
    cfg->tis = (rlc_tis_level)k;
    if (parse_name(rl->tis_mode, mode_names, 2, &k, "rl.tis_mode", err, errlen)) return -1;
    cfg->tis_mode = (rlc_tis_mode)k;
    if (!(rl->eps_low >= 0 && rl->eps_low < 1))
        return rlc_errf(err, errlen, "rl.eps_low: %g must be in [0, 1)", rl->eps_low);
    if (!(rl->eps_high >= 0)) return rlc_errf(err, errlen, "rl.eps_high: %g must be >= 0", rl->eps_high);
    if (rl->dual_clip != 0 && !(rl->dual_clip > 1))
        return rlc_errf(err, errlen, "rl.dual_clip: %g must be > 1 (or 0 = off)", rl->dual_clip);
    cfg->eps_low = rl->eps_low;
    cfg->eps_high = rl->eps_high;
    cfg->dual_clip = rl->dual_clip;
    cfg->cispo_eps_max = rl->cispo_eps_max;
    cfg->kl_beta = rl->kl_in_reward ? 0.0f : rl->kl_beta;
    cfg->ent_coef = rl->ent_coef;
    cfg->tis_c = rl->tis_c;
    cfg->tis_c_min = rl->tis_c_min;
    cfg->tis_c_max = rl->tis_c_max;
    return 0;
}

// ---- normalisers ----

void rlc_loss_norm_add(rlc_loss_norm *n, const rlc_loss_batch *b) {
    for (int i = 0; i < b->B; i++) {
        int ni = seq_count(b, i);
        n->n_tok += ni;
        n->n_seq += ni > 0;
    }
}

double rlc_agg_weight(rlc_agg agg, int n_i, const rlc_loss_norm *n) {
    if (n_i <= 0) return 0.0;
    switch (agg) {
    case RLC_AGG_TOKEN_MEAN: return n->n_tok > 0 ? 1.0 / n->n_tok : 0.0;
    case RLC_AGG_SEQ_MEAN_TOKEN_SUM: return n->n_seq > 0 ? 1.0 / n->n_seq : 0.0;
    case RLC_AGG_SEQ_MEAN_TOKEN_MEAN: return n->n_seq > 0 ? 1.0 / (n->n_seq * n_i) : 0.0;
    case RLC_AGG_SEQ_MEAN_TOKEN_SUM_NORM:
        return n->n_seq > 0 && n->l_const > 0 ? 1.0 / (n->n_seq * n->l_const) : 0.0;
    }
    return 0.0;
}

// ---- per-token building blocks ----

double rlc_ppo_token(double r, double A, double eps_low, double eps_high, double c, double *dL_dr, int *clipped,
                     int *lower_clipped) {
    double rc = clampd(r, 1.0 - eps_low, 1.0 + eps_high);
    double L1 = -A * r, L2 = -A * rc;
    // Lc = max(L1, L2); on a tie (r inside the range) the unclipped branch carries the gradient -A.
    double L = L1, g = -A;
    if (L2 > L1) L = L2, g = 0.0; // L2 != L1 only when r is outside the range, where clamp' = 0
    int low = 0;
    if (A < 0 && c > 0 && L > -A * c) L = -A * c, g = 0.0, low = 1;
    if (dL_dr) *dL_dr = g;
    if (clipped) *clipped = L2 > L1;
    if (lower_clipped) *lower_clipped = low;
    return L;
}

double rlc_kl_token(rlc_kl_est est, double logp, double ref, double *dkl_dlogp) {
    double D = logp - ref, v = 0.0, g = 0.0;
    switch (est) {
    case RLC_KL_K1: v = D, g = 1.0; break;
    case RLC_KL_ABS: v = fabs(D), g = D > 0 ? 1.0 : (D < 0 ? -1.0 : 0.0); break;
    case RLC_KL_K2: v = 0.5 * D * D, g = D; break;
    case RLC_KL_K1P: v = D, g = D; break; // value of k1, gradient of k2
    case RLC_KL_K3:
    case RLC_KL_K3P: {
        double qr = ref - logp, q = clampd(qr, -LOG_RATIO_CLAMP, LOG_RATIO_CLAMP);
        double e = exp(q), k3 = e - q - 1.0;
        v = clampd(k3, -10.0, 10.0);
        if (est == RLC_KL_K3P) g = D; // value of k3, gradient of k2
        else g = (q == qr && k3 <= 10.0 && k3 >= -10.0) ? 1.0 - e : 0.0; // d/dlogp (e^q - q - 1), dq = -dlogp
        break;
    }
    }
    if (dkl_dlogp) *dkl_dlogp = g;
    return v;
}

// ---- policy loss ----

double rlc_policy_loss(const rlc_loss_config *cfg, const rlc_loss_norm *norm, const rlc_loss_batch *b,
                       const rlc_policy_inputs *in, rlc_f *dlogp, rlc_f *dent, rlc_loss_stats *st) {
    RLC_CHECK(in->logp && in->old && in->adv && dlogp, "rlc_policy_loss: logp, old, adv and dlogp are required");
    RLC_CHECK(cfg->kl_beta == 0 || in->ref, "rlc_policy_loss: kl_beta %g > 0 needs ref log-probs", cfg->kl_beta);
    RLC_CHECK(cfg->ent_coef == 0 || (in->entropy && dent), "rlc_policy_loss: ent_coef %g needs entropy and dent",
              cfg->ent_coef);
    RLC_CHECK(cfg->tis == RLC_TIS_OFF || in->roll, "rlc_policy_loss: TIS needs the rollout log-probs (roll)");
    const double c = cfg->policy == RLC_PL_PPO ? cfg->dual_clip : 0.0; // dual clip is PPO's only
    const rlc_agg pg_agg = cfg->policy == RLC_PL_GSPO ? RLC_AGG_SEQ_MEAN_TOKEN_MEAN : cfg->agg;
    double pg = 0, kl = 0, ent = 0;

    for (int i = 0; i < b->B; i++) {
        const int t0 = b->cu_seqlens[i], t1 = b->cu_seqlens[i + 1];
        int ni = 0;
        double sum_d = 0.0, sum_or = 0.0; // sum (logp - old), sum (old - roll) over response tokens
        for (int t = t0; t < t1; t++) {
            if (!tok_on(b, t)) continue;
            ni++;
            sum_d += (double)in->logp[t] - in->old[t];
            if (in->roll) sum_or += (double)in->old[t] - in->roll[t];
        }
        const double w_agg = rlc_agg_weight(cfg->agg, ni, norm), w_pg = rlc_agg_weight(pg_agg, ni, norm);
        const double gspo_d = ni > 0 ? clampd(sum_d / ni, -LOG_RATIO_CLAMP, LOG_RATIO_CLAMP) : 0.0;
        const double seq_w = exp(clampd(sum_or, -LOG_RATIO_CLAMP, LOG_RATIO_CLAMP));
        st->seq += ni > 0;

        for (int t = t0; t < t1; t++) {
            if (!tok_on(b, t)) {
                dlogp[t] = 0;
                if (dent) dent[t] = 0;
                continue;
            }
            const double A = in->adv[t];
            st->tok += 1;

            // ratio and dr/dlogp: PPO/CISPO per token (0 where the log-ratio clamp is active); GSPO's
            // exp(sg(log s_i) + logp - sg(logp)) has value s_i and derivative s_i.
            double d_raw = (double)in->logp[t] - in->old[t], d, r, dr;
            if (cfg->policy == RLC_PL_GSPO) {
                d = gspo_d, r = exp(d), dr = r;
            } else {
                d = clampd(d_raw, -LOG_RATIO_CLAMP, LOG_RATIO_CLAMP), r = exp(d);
                dr = d == d_raw ? r : 0.0;
            }
            st->ratio_sum += r;
            if (r > st->ratio_max) st->ratio_max = r;

            // rollout correction weight (detached)
            double w_is = 1.0;
            if (in->roll) {
                double mm = fabs((double)in->old[t] - in->roll[t]);
                st->mismatch_sum += mm;
                if (mm > st->mismatch_max) st->mismatch_max = mm;
            }
            if (cfg->tis != RLC_TIS_OFF) {
                w_is = cfg->tis == RLC_TIS_TOKEN
                           ? exp(clampd((double)in->old[t] - in->roll[t], -LOG_RATIO_CLAMP, LOG_RATIO_CLAMP))
                           : seq_w;
                if (cfg->tis_mode == RLC_TIS_TRUNCATE) {
                    if (w_is > cfg->tis_c) w_is = cfg->tis_c;
                } else if (w_is < cfg->tis_c_min || w_is > cfg->tis_c_max) {
                    w_is = 0.0;
                    st->tis_masked += 1;
                }
                st->tis_w_sum += w_is;
            }

            // policy term
            double L, dL; // per-token loss and dL/dlogp
            if (cfg->policy == RLC_PL_CISPO) {
                double wgt = r < cfg->cispo_eps_max ? r : cfg->cispo_eps_max;
                L = -wgt * A * in->logp[t];
                dL = -wgt * A;
                st->clip_sum += r > cfg->cispo_eps_max;
            } else {
                double dLdr;
                int cl, low;
                L = rlc_ppo_token(r, A, cfg->eps_low, cfg->eps_high, c, &dLdr, &cl, &low);
                dL = dLdr * dr;
                st->clip_sum += cl;
                st->clip_low_sum += low;
            }
            pg += w_pg * w_is * L;
            double g = w_pg * w_is * dL;

            // KL to the reference
            if (in->ref) {
                double dk, k = rlc_kl_token(cfg->kl_est, in->logp[t], in->ref[t], &dk);
                st->kl_sum += k;
                if (cfg->kl_beta != 0) {
                    kl += cfg->kl_beta * w_agg * k;
                    g += cfg->kl_beta * w_agg * dk;
                }
            }
            // entropy bonus
            double ge = 0.0;
            if (in->entropy) {
                st->ent_sum += in->entropy[t];
                if (cfg->ent_coef != 0) {
                    ent -= cfg->ent_coef * w_agg * in->entropy[t];
                    ge = -cfg->ent_coef * w_agg;
                }
            }
            dlogp[t] = (rlc_f)g;
            if (dent) dent[t] = (rlc_f)ge;
        }
    }
    st->pg_loss += pg;
    st->kl_loss += kl;
    st->ent_loss += ent;
    st->loss += pg + kl + ent;
    return pg + kl + ent;
}

// ---- value loss ----

double rlc_value_loss(const rlc_f *v, const rlc_f *v_old, const rlc_f *ret, const rlc_loss_batch *b, rlc_agg agg,
                      const rlc_loss_norm *norm, float cv, float coef, rlc_f *dv, rlc_loss_stats *st) {
    double loss = 0.0;
    for (int i = 0; i < b->B; i++) {
        const int t0 = b->cu_seqlens[i], t1 = b->cu_seqlens[i + 1];
        const double w = rlc_agg_weight(agg, seq_count(b, i), norm);
        for (int t = t0; t < t1; t++) {
            if (!tok_on(b, t)) {
                dv[t] = 0;
                continue;
            }
            double x = v[t], R = ret[t], e1 = (x - R) * (x - R), L = e1, g = x - R;
            if (cv > 0) {
                double vo = v_old[t], xc = clampd(x, vo - cv, vo + cv), e2 = (xc - R) * (xc - R);
                if (e2 > e1) {
                    L = e2;
                    g = (xc == x) ? xc - R : 0.0; // clamp' = 0 outside [v_old - cv, v_old + cv]
                    st->vf_clip_sum += 1;
                }
            }
            st->vf_tok += 1;
            st->vf_err_sum += e1;
            loss += 0.5 * w * L;
            dv[t] = (rlc_f)(coef * w * g); // d(0.5 * L)/dv = g
        }
    }
    st->vf_loss += loss;
    st->loss += coef * loss;
    return coef * loss;
}

// ---- DPO / IPO ----

double rlc_pref_loss(rlc_pref_kind kind, float beta, const rlc_f *logp, const rlc_f *ref, const rlc_loss_batch *b,
                     double n_pairs, rlc_f *dlogp, rlc_loss_stats *st) {
    RLC_CHECK(b->B % 2 == 0, "rlc_pref_loss: %d sequences, expected chosen/rejected pairs (an even count)", b->B);
    RLC_CHECK(beta > 0, "rlc_pref_loss: beta %g must be > 0", beta);
    const double wp = n_pairs > 0 ? 1.0 / n_pairs : 0.0;
    double loss = 0.0;
    for (int p = 0; p < b->B / 2; p++) {
        double lr[2];   // sum over response tokens of logp - ref, chosen then rejected
        int n[2];
        for (int s = 0; s < 2; s++) {
            int i = 2 * p + s;
            lr[s] = 0.0, n[s] = 0;
            for (int t = b->cu_seqlens[i]; t < b->cu_seqlens[i + 1]; t++)
                if (tok_on(b, t)) lr[s] += (double)logp[t] - ref[t], n[s]++;
        }
        double L, dh[2]; // loss and its derivative w.r.t. each response token's logp of either sequence
        if (kind == RLC_PREF_DPO) {
            double h = lr[0] - lr[1], z = beta * h;
            L = z > 0 ? log1p(exp(-z)) : -z + log1p(exp(z)); // -log sigmoid(z), stable
            double dz = -1.0 / (1.0 + exp(z));              // d/dz of -log sigmoid(z) = -sigmoid(-z)
            dh[0] = dz * beta, dh[1] = -dz * beta;
        } else {
            double a0 = n[0] ? lr[0] / n[0] : 0.0, a1 = n[1] ? lr[1] / n[1] : 0.0;
            double u = (a0 - a1) - 1.0 / (2.0 * beta);
            L = u * u;
            dh[0] = n[0] ? 2.0 * u / n[0] : 0.0, dh[1] = n[1] ? -2.0 * u / n[1] : 0.0;
        }
        loss += wp * L;
        for (int s = 0; s < 2; s++) {
            int i = 2 * p + s;
            for (int t = b->cu_seqlens[i]; t < b->cu_seqlens[i + 1]; t++)
                dlogp[t] = tok_on(b, t) ? (rlc_f)(wp * dh[s]) : (rlc_f)0;
        }
        double rc = beta * lr[0], rr = beta * lr[1];
        st->pairs += 1;
        st->reward_chosen_sum += rc;
        st->reward_rejected_sum += rr;
        st->margin_sum += rc - rr;
        st->pref_acc_sum += rc > rr;
    }
    st->pref_loss += loss;
    st->loss += loss;
    return loss;
}

// ---- SFT ----

double rlc_sft_loss(const rlc_f *logp, const rlc_loss_batch *b, rlc_agg agg, const rlc_loss_norm *norm,
                    rlc_f *dlogp, rlc_loss_stats *st) {
    double loss = 0.0;
    for (int i = 0; i < b->B; i++) {
        const int ni = seq_count(b, i);
        const double w = rlc_agg_weight(agg, ni, norm);
        st->seq += ni > 0;
        for (int t = b->cu_seqlens[i]; t < b->cu_seqlens[i + 1]; t++) {
            if (!tok_on(b, t)) {
                dlogp[t] = 0;
                continue;
            }
            loss -= w * logp[t];
            dlogp[t] = (rlc_f)(-w);
            st->tok += 1;
            st->nll_sum -= logp[t];
        }
    }
    st->sft_loss += loss;
    st->loss += loss;
    return loss;
}

// ---- KL reward and adaptive beta ----

double rlc_kl_reward(rlc_f *rewards, const rlc_f *old, const rlc_f *ref, const float *scores,
                     const rlc_loss_batch *b, float beta, rlc_kl_est est) {
    double kl_sum = 0.0;
    for (int i = 0; i < b->B; i++) {
        int last = -1;
        for (int t = b->cu_seqlens[i]; t < b->cu_seqlens[i + 1]; t++) {
            rewards[t] = 0;
            if (!tok_on(b, t)) continue;
            last = t;
            if (ref) {
                double k = rlc_kl_token(est, old[t], ref[t], NULL);
                kl_sum += k;
                rewards[t] = (rlc_f)(-beta * k);
            }
        }
        if (last >= 0 && scores) rewards[last] += scores[i];
    }
    return kl_sum;
}

void rlc_kl_ctl_update(rlc_kl_ctl *c, double kl_now, int n) {
    if (c->target <= 0 || c->horizon <= 0) return;
    double err = clampd(kl_now / c->target - 1.0, -0.2, 0.2);
    c->beta *= 1.0 + err * n / c->horizon;
}
