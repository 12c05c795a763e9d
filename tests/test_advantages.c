// tests/test_advantages.c: advantage vectors of spec losses.md section 8 (GRPO group / none / batch scaling,
// RLOO, GAE raw advantages and returns, EMPG g / A_mod / A_final and its degenerate cases), plus whitening,
// REINFORCE++ (and -baseline) returns, DAPO overlong shaping and the dynamic-sampling predicate, and the
// multi-rank (phase-split) EMPG and whitening statistics against one pass.
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "rlc/advantage.h"
#include "test_util.h"

static void test_grpo_rloo(void) {
    const float s[4] = {1, 0, 0, 1};
    float a[4];
    rlc_adv_grpo(a, s, 1, 4, RLC_ADV_SCALE_GROUP);
    for (int j = 0; j < 4; j++) CHECK_CLOSE(a[j], s[j] ? 0.8660239 : -0.8660239, 1e-6, 0, "GRPO group");
    rlc_adv_grpo(a, s, 1, 4, RLC_ADV_SCALE_NONE);
    for (int j = 0; j < 4; j++) CHECK_CLOSE(a[j], s[j] ? 0.5 : -0.5, 1e-7, 0, "GRPO none");
    rlc_adv_grpo(a, s, 1, 4, RLC_ADV_SCALE_BATCH); // one group: batch std = group std
    for (int j = 0; j < 4; j++) CHECK_CLOSE(a[j], s[j] ? 0.8660239 : -0.8660239, 1e-6, 0, "GRPO batch, 1 group");
    rlc_adv_rloo(a, s, 1, 4);
    for (int j = 0; j < 4; j++) CHECK_CLOSE(a[j], s[j] ? 0.6666667 : -0.6666667, 1e-6, 0, "RLOO");

    // all-equal group -> 0 (no NaN), next to a normal group; group mode
    const float s2[6] = {0.3f, 0.3f, 0.3f, 2, 0, 1};
    float a2[6];
    rlc_adv_grpo(a2, s2, 2, 3, RLC_ADV_SCALE_GROUP);
    CHECK(a2[0] == 0 && a2[1] == 0 && a2[2] == 0, "all-equal group gives exactly 0: %g %g %g", a2[0], a2[1], a2[2]);
    CHECK_CLOSE(a2[3], 1.0 / (1.0 + 1e-6), 1e-6, 0, "GRPO group [2,0,1]: mean 1 std 1");
    CHECK_CLOSE(a2[4], -1.0 / (1.0 + 1e-6), 1e-6, 0, "GRPO group [2,0,1]");
    // batch scale: std over all 6 scores, mean per group
    double m = 0, v = 0;
    for (int j = 0; j < 6; j++) m += s2[j] / 6.0;
    for (int j = 0; j < 6; j++) v += (s2[j] - m) * (s2[j] - m) / 5.0;
    rlc_adv_grpo(a2, s2, 2, 3, RLC_ADV_SCALE_BATCH);
    CHECK(a2[0] == 0, "all-equal group 0 under batch scaling");
    CHECK_CLOSE(a2[3], 1.0 / (sqrt(v) + 1e-6), 1e-6, 0, "GRPO batch scale");
    // group of one
    const float one[2] = {0.7f, -2.0f};
    float a1[2];
    rlc_adv_grpo(a1, one, 2, 1, RLC_ADV_SCALE_GROUP);
    CHECK_CLOSE(a1[0], 0.7 / (1 + 1e-6), 1e-7, 0, "group of one");
    CHECK_CLOSE(a1[1], -2.0 / (1 + 1e-6), 1e-7, 0, "group of one");
    rlc_adv_rloo(a1, one, 2, 1);
    CHECK(a1[0] == 0.7f && a1[1] == -2.0f, "RLOO group of one");

    // RLOO identity: G/(G-1) * (s - mean)
    const float s3[5] = {0.1f, 0.9f, 0.4f, 0.4f, 1.0f};
    float a3[5];
    rlc_adv_rloo(a3, s3, 1, 5);
    double mean3 = (0.1 + 0.9 + 0.4 + 0.4 + 1.0) / 5;
    for (int j = 0; j < 5; j++) CHECK_CLOSE(a3[j], 5.0 / 4 * (s3[j] - mean3), 1e-6, 0, "RLOO = G/(G-1)(s-mean)");

    // dynamic sampling predicate
    CHECK(rlc_group_all_equal(s2, 3) == 1, "all-equal group detected");
    CHECK(rlc_group_all_equal(s2 + 3, 3) == 0, "mixed group kept");
    CHECK(rlc_group_all_equal(one, 1) == 1, "group of one carries no signal");
}

static void test_overlong(void) {
    CHECK_CLOSE(rlc_overlong_penalty(10, 20, 4, 1.0f), 0, 0, 0, "short: no penalty");
    CHECK_CLOSE(rlc_overlong_penalty(16, 20, 4, 1.0f), 0, 1e-7, 0, "at Lmax - buf: 0");
    CHECK_CLOSE(rlc_overlong_penalty(18, 20, 4, 1.0f), -0.5, 1e-7, 0, "halfway into the buffer");
    CHECK_CLOSE(rlc_overlong_penalty(20, 20, 4, 0.5f), -0.5, 1e-7, 0, "at Lmax, factor 0.5");
    CHECK(rlc_overlong_penalty(50, 20, 0, 1.0f) == 0, "buffer 0 = off");
}

static void test_gae(void) {
    // spec vector, with a masked observation token inserted (garbage values must pass through) and a prompt token
    int cu[2] = {0, 5};
    uint8_t m[5] = {0, 1, 1, 0, 1};
    rlc_f r[5] = {NAN, 0, 0, NAN, 1}, V[5] = {NAN, 0.5f, 0.6f, INFINITY, 0.7f}, adv[5], ret[5];
    rlc_loss_batch b = {5, 1, cu, m};
    rlc_adv_gae(adv, ret, r, V, &b, 1.0f, 0.95f);
    const double wa[3] = {0.46575, 0.385, 0.3}, wr[3] = {0.96575, 0.985, 1.0};
    const int pos[3] = {1, 2, 4};
    for (int k = 0; k < 3; k++) {
        CHECK_CLOSE(adv[pos[k]], wa[k], 1e-6, 0, "GAE advantage");
        CHECK_CLOSE(ret[pos[k]], wr[k], 1e-6, 0, "GAE return");
    }
    CHECK(adv[0] == 0 && adv[3] == 0 && ret[3] == 0, "masked GAE outputs 0");

    // gamma < 1 against a direct evaluation: adv_t = sum_l (gamma lam)^l delta_{t+l}
    int cu2[3] = {0, 3, 7};
    rlc_f r2[7] = {0.1f, -0.2f, 0.5f, 0, 0.3f, 0, 1}, V2[7] = {0.2f, 0.1f, 0.4f, 0.3f, 0.5f, -0.1f, 0.6f};
    rlc_f a2[7], R2[7];
    rlc_loss_batch b2 = {7, 2, cu2, NULL};
    const float g = 0.9f, l = 0.8f;
    rlc_adv_gae(a2, R2, r2, V2, &b2, g, l);
    for (int i = 0; i < 2; i++)
        for (int t = cu2[i]; t < cu2[i + 1]; t++) {
            double want = 0, pw = 1;
            for (int u = t; u < cu2[i + 1]; u++) {
                double vn = u + 1 < cu2[i + 1] ? V2[u + 1] : 0.0;
                want += pw * (r2[u] + g * vn - V2[u]);
                pw *= (double)g * l;
            }
            CHECK_CLOSE(a2[t], want, 1e-6, 0, "GAE vs direct sum");
            CHECK_CLOSE(R2[t], want + V2[t], 1e-6, 0, "GAE returns");
        }
}

static void test_whiten_reinforce(void) {
    int cu[3] = {0, 4, 6};
    uint8_t m[6] = {0, 1, 1, 1, 1, 1};
    rlc_f x[6] = {NAN, 1, 2, 3, 4, 10};
    rlc_loss_batch b = {6, 2, cu, m};
    rlc_whiten(x, &b);
    double mean = 0, var = 0;
    for (int t = 1; t < 6; t++) mean += x[t] / 5.0;
    for (int t = 1; t < 6; t++) var += (x[t] - mean) * (x[t] - mean) / 4.0;
    CHECK_CLOSE(mean, 0, 1e-6, 0, "whitened mean");
    CHECK_CLOSE(var, 1, 1e-5, 0, "whitened var (n-1)");
    CHECK(x[0] == 0, "masked token 0 after whitening");
    // value from the definition: (1 - 4) / sqrt(var(1,2,3,4,10) + 1e-8)
    double v0 = (9 + 4 + 1 + 0 + 36) / 4.0;
    CHECK_CLOSE(x[1], -3 / sqrt(v0 + 1e-8), 1e-6, 0, "whitened value");

    // two "ranks": moments summed then applied equals one pass
    rlc_f y[6] = {NAN, 1, 2, 3, 4, 10};
    int cuA[2] = {0, 4}, cuB[2] = {0, 2};
    rlc_loss_batch A = {4, 1, cuA, m}, B = {2, 1, cuB, m + 4};
    rlc_moments mo = {0};
    rlc_moments_add(&mo, y, &A);
    rlc_moments_add(&mo, y + 4, &B);
    rlc_whiten_apply(y, &A, &mo);
    rlc_whiten_apply(y + 4, &B, &mo);
    for (int t = 0; t < 6; t++) CHECK_CLOSE(y[t], x[t], 1e-6, 0, "two-phase whitening");

    // REINFORCE++ returns: rewards [0, 0, 1], gamma 0.9 -> [0.81, 0.9, 1], with a masked token skipped
    int cu2[2] = {0, 4};
    uint8_t m2[4] = {1, 0, 1, 1};
    rlc_f rw[4] = {0, NAN, 0, 1}, ret[4];
    rlc_loss_batch b2 = {4, 1, cu2, m2};
    rlc_returns(ret, rw, &b2, 0.9f);
    CHECK_CLOSE(ret[0], 0.81, 1e-6, 0, "return t0");
    CHECK_CLOSE(ret[2], 0.9, 1e-6, 0, "return t2");
    CHECK_CLOSE(ret[3], 1.0, 1e-6, 0, "return t3");
    CHECK(ret[1] == 0, "masked return 0");
    rlc_f adv[4];
    rlc_adv_reinforce_pp(adv, rw, &b2, 0.9f);
    double mu = (0.81 + 0.9 + 1.0) / 3, vv = 0;
    const double rr[3] = {0.81, 0.9, 1.0};
    for (int k = 0; k < 3; k++) vv += (rr[k] - mu) * (rr[k] - mu) / 2;
    CHECK_CLOSE(adv[0], (0.81 - mu) / sqrt(vv + 1e-8), 1e-5, 0, "REINFORCE++ whitened");

    // REINFORCE++-baseline: scores [1,0,0,1], 2 response tokens each -> +-0.5 whitened over 8 tokens
    int cu3[5] = {0, 3, 6, 9, 12};
    uint8_t m3[12] = {0, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1};
    float sc[4] = {1, 0, 0, 1};
    rlc_f a3[12];
    rlc_loss_batch b3 = {12, 4, cu3, m3};
    rlc_adv_reinforce_pp_baseline(a3, sc, 4, &b3);
    double want = 0.5 / sqrt(8 * 0.25 / 7 + 1e-8);
    CHECK_CLOSE(a3[1], want, 1e-6, 0, "REINFORCE++-baseline chosen");
    CHECK_CLOSE(a3[4], -want, 1e-6, 0, "REINFORCE++-baseline rejected");
    CHECK(a3[0] == 0 && a3[3] == 0, "prompt tokens 0");
}

static void test_empg(void) {
    const float H[4] = {0.5f, 1.0f, 2.0f, 1.5f}, At[4] = {1, 1, -1, -1};
    const int next[4] = {1, -1, 3, -1};
    float a[4], g[4];
    rlc_adv_empg(a, g, H, next, At, 4, 1.0f, 1.0f, 0.1f);
    const double wg[4] = {1.5397479, 1.1032776, 0.5664416, 0.7905329};
    const double wf[4] = {1.2591396, 0.7510161, -0.8673613, -1.1427944};
    double gm = 0;
    for (int j = 0; j < 4; j++) {
        CHECK_CLOSE(g[j], wg[j], 1e-6, 0, "EMPG g");
        CHECK_CLOSE(a[j], wf[j], 1e-6, 0, "EMPG A_final");
        gm += g[j] / 4;
    }
    CHECK_CLOSE(gm, 1.0, 1e-6, 0, "mean g = 1");
    // A_mod before the mean subtraction, phase by phase, and Hn through step 2's definition
    rlc_empg_stats st;
    rlc_empg_stats_init(&st);
    rlc_empg_phase1(&st, H, 4);
    rlc_empg_phase2(&st, H, 4, 1.0f);
    float am[4];
    rlc_empg_phase3(&st, am, NULL, H, next, At, 4, 1.0f, 1.0f, 0.1f);
    const double wm[4] = {1.6114010, 1.1032776, -0.5150999, -0.7905329};
    for (int j = 0; j < 4; j++) CHECK_CLOSE(am[j], wm[j], 1e-6, 0, "EMPG A_mod");
    const double wh[4] = {0, 0.3333333, 1, 0.6666667};
    for (int j = 0; j < 4; j++)
        CHECK_CLOSE((H[j] - st.h_min) / (st.h_max - st.h_min + 1e-8), wh[j], 1e-6, 0, "EMPG Hn");

    // two ranks, one episode each: statistics merged between the phases give the same result
    rlc_empg_stats s0, s1;
    rlc_empg_stats_init(&s0), rlc_empg_stats_init(&s1);
    const int nx[2] = {1, -1};
    rlc_empg_phase1(&s0, H, 2), rlc_empg_phase1(&s1, H + 2, 2);
    double mn = fmin(s0.h_min, s1.h_min), mx = fmax(s0.h_max, s1.h_max);
    s0.h_min = s1.h_min = mn, s0.h_max = s1.h_max = mx;
    rlc_empg_phase2(&s0, H, 2, 1.0f), rlc_empg_phase2(&s1, H + 2, 2, 1.0f);
    double n = s0.n + s1.n, gs = s0.g_sum + s1.g_sum;
    s0.n = s1.n = n, s0.g_sum = s1.g_sum = gs;
    float b[4];
    rlc_empg_phase3(&s0, b, NULL, H, nx, At, 2, 1.0f, 1.0f, 0.1f);
    rlc_empg_phase3(&s1, b + 2, NULL, H + 2, nx, At + 2, 2, 1.0f, 1.0f, 0.1f);
    double as = s0.amod_sum + s1.amod_sum;
    s0.amod_sum = s1.amod_sum = as;
    rlc_empg_finish(b, 2, &s0), rlc_empg_finish(b + 2, 2, &s1);
    for (int j = 0; j < 4; j++) CHECK_CLOSE(b[j], wf[j], 1e-6, 0, "EMPG across two ranks");

    // constant H -> g = 1 (and Hn = 0, so f_next = 1 for non-final steps)
    const float Hc[4] = {0.7f, 0.7f, 0.7f, 0.7f};
    rlc_adv_empg(a, g, Hc, next, At, 4, 1.0f, 1.0f, 0.1f);
    for (int j = 0; j < 4; j++) CHECK_CLOSE(g[j], 1.0, 1e-6, 0, "constant H: g = 1");
    // k = 0, zeta = 0 -> base advantage minus its mean
    const float Ab[4] = {0.5f, 0.5f, -2.0f, -2.0f};
    rlc_adv_empg(a, g, H, next, Ab, 4, 0.0f, 1.0f, 0.0f);
    for (int j = 0; j < 4; j++) CHECK_CLOSE(a[j], Ab[j] + 0.75, 1e-6, 0, "k = zeta = 0: A - mean(A)");

    // step entropy: mean over the step's response tokens
    const float ent[5] = {9, 1, 2, 9, 3};
    const uint8_t mk[5] = {0, 1, 1, 0, 1};
    CHECK_CLOSE(rlc_empg_step_entropy(ent, mk, 0, 5), 2.0, 1e-12, 0, "step entropy");
    CHECK_CLOSE(rlc_empg_step_entropy(ent, mk, 3, 4), 0.0, 0, 0, "empty step entropy");
}

static void test_broadcast_parse(void) {
    int cu[3] = {0, 2, 5};
    uint8_t m[5] = {0, 1, 0, 1, 1};
    float as[2] = {0.5f, -1.5f};
    rlc_f at[5];
    rlc_loss_batch b = {5, 2, cu, m};
    rlc_adv_broadcast(at, as, &b);
    CHECK(at[0] == 0 && at[1] == 0.5f && at[2] == 0 && at[3] == -1.5f && at[4] == -1.5f, "broadcast");
    rlc_adv_scale sc;
    char err[128] = "";
    CHECK(rlc_adv_scale_parse("batch", &sc, err, sizeof err) == 0 && sc == RLC_ADV_SCALE_BATCH, "parse batch");
    CHECK(rlc_adv_scale_parse("grp", &sc, err, sizeof err) != 0 && strstr(err, "adv_scale"), "bad scale: %s", err);
}

int main(void) {
    test_grpo_rloo();
    test_overlong();
    test_gae();
    test_whiten_reinforce();
    test_empg();
    test_broadcast_parse();
    return test_finish("test_advantages");
}
