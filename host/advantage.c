// host/advantage.c: advantage estimators (GRPO, RLOO, REINFORCE++, GAE, EMPG), whitening, DAPO overlong
// shaping and dynamic-sampling predicate (interface: include/rlc/advantage.h; formulas: spec losses.md
// section 5). Statistics are accumulated in double.
#include "rlc/advantage.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "rlc/util.h"

static inline int tok_on(const rlc_loss_batch *b, int t) { return b->mask ? b->mask[t] != 0 : 1; }

int rlc_adv_scale_parse(const char *s, rlc_adv_scale *out, char *err, size_t errlen) {
    if (strcmp(s, "group") == 0) return *out = RLC_ADV_SCALE_GROUP, 0;
    if (strcmp(s, "batch") == 0) return *out = RLC_ADV_SCALE_BATCH, 0;
    if (strcmp(s, "none") == 0) return *out = RLC_ADV_SCALE_NONE, 0;
    return rlc_errf(err, errlen, "rl.adv_scale: unknown value \"%s\" (expected \"group\", \"batch\" or \"none\")", s);
}

int rlc_group_all_equal(const float *scores, int G) {
    for (int j = 1; j < G; j++)
        if (scores[j] != scores[0]) return 0;
    return 1;
}

static double mean_of(const float *x, int n) {
    double s = 0.0;
    for (int j = 0; j < n; j++) s += x[j];
    return n > 0 ? s / n : 0.0;
}

// Sample standard deviation (n-1); 0 for n < 2.
static double std_of(const float *x, int n) {
    if (n < 2) return 0.0;
    double m = mean_of(x, n), s = 0.0;
    for (int j = 0; j < n; j++) s += (x[j] - m) * (x[j] - m);
    return sqrt(s / (n - 1));
}

void rlc_adv_grpo(float *adv, const float *scores, int n_groups, int G, rlc_adv_scale scale) {
    const double std_batch = scale == RLC_ADV_SCALE_BATCH ? std_of(scores, n_groups * G) : 0.0;
    for (int p = 0; p < n_groups; p++) {
        const float *s = scores + (size_t)p * G;
        float *a = adv + (size_t)p * G;
        if (G > 1 && rlc_group_all_equal(s, G)) { // exactly 0, not round-off over 1e-6
            for (int j = 0; j < G; j++) a[j] = 0.0f;
            continue;
        }
        // A group of one has no baseline: mean 0 and (GROUP) std 1.
        double mean = G > 1 ? mean_of(s, G) : 0.0;
        double sd = scale == RLC_ADV_SCALE_GROUP ? (G > 1 ? std_of(s, G) : 1.0) : std_batch;
        for (int j = 0; j < G; j++) {
            double x = s[j] - mean;
            a[j] = (float)(scale == RLC_ADV_SCALE_NONE ? x : x / (sd + 1e-6));
        }
    }
}

void rlc_adv_rloo(float *adv, const float *scores, int n_groups, int G) {
    for (int p = 0; p < n_groups; p++) {
        const float *s = scores + (size_t)p * G;
        double sum = 0.0;
        for (int j = 0; j < G; j++) sum += s[j];
        for (int j = 0; j < G; j++)
            adv[(size_t)p * G + j] = G > 1 ? (float)(s[j] - (sum - s[j]) / (G - 1)) : s[j];
    }
}

void rlc_adv_baseline(float *adv, const float *scores, int n_groups, int G) {
    for (int p = 0; p < n_groups; p++) {
        const float *s = scores + (size_t)p * G;
        double mean = G > 1 ? mean_of(s, G) : 0.0;
        for (int j = 0; j < G; j++) adv[(size_t)p * G + j] = (float)(s[j] - mean);
    }
}

float rlc_overlong_penalty(int len, int max_len, int buf, float factor) {
    if (buf <= 0) return 0.0f;
    double x = -(double)(len - (max_len - buf)) / buf;
    return (float)((x < 0 ? x : 0.0) * factor);
}

// ---- per-token ----

void rlc_adv_broadcast(rlc_f *adv_tok, const float *adv_seq, const rlc_loss_batch *b) {
    for (int i = 0; i < b->B; i++)
        for (int t = b->cu_seqlens[i]; t < b->cu_seqlens[i + 1]; t++)
            adv_tok[t] = tok_on(b, t) ? (rlc_f)adv_seq[i] : (rlc_f)0;
}

void rlc_returns(rlc_f *ret, const rlc_f *rewards, const rlc_loss_batch *b, float gamma) {
    for (int i = 0; i < b->B; i++) {
        double G = 0.0;
        for (int t = b->cu_seqlens[i + 1] - 1; t >= b->cu_seqlens[i]; t--) {
            if (!tok_on(b, t)) {
                ret[t] = 0;
                continue;
            }
            G = rewards[t] + gamma * G;
            ret[t] = (rlc_f)G;
        }
    }
}

void rlc_adv_gae(rlc_f *adv, rlc_f *ret, const rlc_f *rewards, const rlc_f *values, const rlc_loss_batch *b,
                 float gamma, float lam) {
    for (int i = 0; i < b->B; i++) {
        double v_next = 0.0, gae = 0.0;
        for (int t = b->cu_seqlens[i + 1] - 1; t >= b->cu_seqlens[i]; t--) {
            if (!tok_on(b, t)) {
                adv[t] = 0, ret[t] = 0;
                continue;
            }
            double v = values[t], delta = rewards[t] + gamma * v_next - v;
            gae = delta + gamma * lam * gae;
            adv[t] = (rlc_f)gae;
            ret[t] = (rlc_f)(gae + v);
            v_next = v;
        }
    }
}

void rlc_moments_add(rlc_moments *m, const rlc_f *x, const rlc_loss_batch *b) {
    for (int t = 0; t < b->T; t++)
        if (tok_on(b, t)) m->n += 1, m->sum += x[t], m->sumsq += (double)x[t] * x[t];
}

void rlc_whiten_apply(rlc_f *x, const rlc_loss_batch *b, const rlc_moments *m) {
    double mean = m->n > 0 ? m->sum / m->n : 0.0;
    double var = m->n > 1 ? (m->sumsq - m->n * mean * mean) / (m->n - 1) : 0.0;
    if (var < 0) var = 0; // round-off of the one-pass formula
    double inv = 1.0 / sqrt(var + 1e-8);
    for (int t = 0; t < b->T; t++) x[t] = tok_on(b, t) ? (rlc_f)((x[t] - mean) * inv) : (rlc_f)0;
}

void rlc_whiten(rlc_f *x, const rlc_loss_batch *b) {
    rlc_moments m = {0};
    rlc_moments_add(&m, x, b);
    rlc_whiten_apply(x, b, &m);
}

void rlc_adv_reinforce_pp(rlc_f *adv, const rlc_f *rewards, const rlc_loss_batch *b, float gamma) {
    rlc_returns(adv, rewards, b, gamma);
    rlc_whiten(adv, b);
}

void rlc_adv_reinforce_pp_baseline(rlc_f *adv, const float *scores, int G, const rlc_loss_batch *b) {
    RLC_CHECK(G > 0 && b->B % G == 0, "rlc_adv_reinforce_pp_baseline: %d sequences is not a multiple of G = %d",
              b->B, G);
    float *a = rlc_malloc(sizeof(float) * (size_t)(b->B > 0 ? b->B : 1));
    rlc_adv_baseline(a, scores, b->B / G, G);
    rlc_adv_broadcast(adv, a, b);
    free(a);
    rlc_whiten(adv, b);
}

// ---- EMPG ----

void rlc_empg_stats_init(rlc_empg_stats *st) {
    memset(st, 0, sizeof(*st));
    st->h_min = INFINITY;
    st->h_max = -INFINITY;
}

double rlc_empg_step_entropy(const float *ent, const uint8_t *mask, int start, int end) {
    double s = 0.0;
    int n = 0;
    for (int t = start; t < end; t++)
        if (!mask || mask[t]) s += ent[t], n++;
    return n ? s / n : 0.0;
}

void rlc_empg_phase1(rlc_empg_stats *st, const float *H, int S) {
    for (int j = 0; j < S; j++) {
        if (H[j] < st->h_min) st->h_min = H[j];
        if (H[j] > st->h_max) st->h_max = H[j];
    }
}

static inline double empg_hn(const rlc_empg_stats *st, double h) {
    return (h - st->h_min) / (st->h_max - st->h_min + 1e-8);
}

void rlc_empg_phase2(rlc_empg_stats *st, const float *H, int S, float k) {
    for (int j = 0; j < S; j++) st->g_sum += exp(-k * empg_hn(st, H[j]));
    st->n += S;
}

void rlc_empg_phase3(rlc_empg_stats *st, float *a_mod, float *g_out, const float *H, const int *next,
                     const float *a_traj, int S, float k, float k2, float zeta) {
    double gmean = st->n > 0 ? st->g_sum / st->n : 1.0;
    for (int j = 0; j < S; j++) {
        double g = exp(-k * empg_hn(st, H[j])) / (gmean + 1e-8);
        double f = next[j] >= 0 ? exp(-k2 * empg_hn(st, H[next[j]])) : 0.0;
        double a = g * a_traj[j] + zeta * f;
        a_mod[j] = (float)a;
        if (g_out) g_out[j] = (float)g;
        st->amod_sum += a;
    }
}

void rlc_empg_finish(float *a, int S, const rlc_empg_stats *st) {
    double mean = st->n > 0 ? st->amod_sum / st->n : 0.0;
    for (int j = 0; j < S; j++) a[j] = (float)(a[j] - mean);
}

void rlc_adv_empg(float *a_final, float *g_out, const float *H, const int *next, const float *a_traj, int S,
                  float k, float k2, float zeta) {
    rlc_empg_stats st;
    rlc_empg_stats_init(&st);
    rlc_empg_phase1(&st, H, S);
    rlc_empg_phase2(&st, H, S, k);
    rlc_empg_phase3(&st, a_final, g_out, H, next, a_traj, S, k, k2, zeta);
    rlc_empg_finish(a_final, S, &st);
}
