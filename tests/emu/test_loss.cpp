// tests/emu/test_loss.cpp: the CUDA policy-loss, value-loss and advantage kernels (kernels/cuda/loss.cu) under
// the emulator, against their CPU twins (host/loss.c, host/advantage.c), in all three schedule orders.
// Data: a packed batch mixing sequences of 1 to ~1500 tokens with prompt prefixes, masked observation tokens
// inside responses and one fully masked sequence; masked tokens carry NaN / inf in every input (they must not
// leak). Ratios are kept at least 0.1% away from every clip / mask / clamp boundary of the configs used, so the
// fp32 kernels and the fp64 twin take the same branches; a few tokens sit at r == 1 exactly and beyond the
// +-20 log-ratio clamp. Paths of the kernels' layout covered on purpose: misaligned inputs (plain loads; same
// bits as aligned), a grid capped at 1 and 3 blocks (many steps per warp, window reloads), dense sequences of
// 0 to 3 tokens (the per-token search), 8k-32k tokens (one-block pre-pass), a 40000-token sequence (pre-pass
// fix-up by a whole warp), T = 0.
// Tolerances: the kernels use fp32 per-token math and fp64 sums, the twin fp64 throughout:
//   per-token gradients |gpu - cpu| <= 1e-5 |cpu| + 1e-6 max|cpu| (a token's policy and KL terms may cancel);
//   losses and sums 1e-5 relative (+1e-9 abs);
//   counters (tokens, clips) exact; advantages (fp64 in both) 1e-6 relative.
#include <cmath>
#include <cstring>
#include <vector>

#include "emu_test.h"
#include "loss.h"

// ---------------------------------------------------------------------------------------------- data

struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
    uint32_t u32() {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        return (uint32_t)(s >> 33);
    }
    double uni() { return (u32() + 0.5) / 2147483648.0; }     // (0, 1)
    double sym(double a) { return (2.0 * uni() - 1.0) * a; } // (-a, a)
};

struct Batch {
    int T = 0, B = 0;
    std::vector<int> cu;
    std::vector<uint8_t> mask;
    std::vector<float> logp, old, ref, roll, adv, ent;
};

// Boundaries of the configs below that a ratio / weight must not sit on.
static bool near_any(double x, const std::vector<double> &bounds) {
    for (double b : bounds)
        if (fabs(x - b) <= 1e-3 * fabs(b)) return true;
    return false;
}
static const std::vector<double> kRatioBounds = {0.8, 1.2, 1.28, 3.0, 1.5, 0.9, 1.1};    // 1-eps, 1+eps, dual c, eps_max
static const std::vector<double> kTisBounds = {2.0, 0.5, 1.5, 0.9, 1.1};                // tis_c, c_min, c_max
static bool k3_boundary(double q) { return fabs(q - 2.5264) < 0.01 || fabs(q + 11.0) < 0.01; } // k3 == 10

static Batch make_batch(const std::vector<int> &lens, uint64_t seed) {
    Rng g(seed);
    Batch b;
    b.B = (int)lens.size();
    b.cu.push_back(0);
    for (int L : lens) b.cu.push_back(b.cu.back() + L);
    b.T = b.cu.back();
    b.mask.assign(b.T, 0);
    b.logp.assign(b.T, 0), b.old = b.ref = b.roll = b.adv = b.ent = b.logp;
    const float nan = NAN, inf = INFINITY;
    for (int i = 0; i < b.B; i++) {
        const int t0 = b.cu[i], L = lens[i];
        const int prompt = L > 4 ? (int)(g.uni() * L / 3) : 0;
        const double A = (i % 7 == 3) ? 0.0 : g.sym(2.0);
        for (int t = t0; t < t0 + L; t++) {
            bool on = t >= t0 + prompt && !(L > 8 && g.uni() < 0.1); // observation tokens inside responses
            if (i == 2) on = false;                                  // one fully masked sequence
            b.mask[t] = on;
            if (!on) { // garbage that must never reach a sum or an output
                b.logp[t] = (t & 1) ? nan : -inf;
                b.old[t] = (t & 2) ? inf : nan;
                b.ref[t] = nan, b.roll[t] = -inf, b.adv[t] = (t & 1) ? inf : nan, b.ent[t] = nan;
                continue;
            }
            b.adv[t] = (float)A;
            b.ent[t] = (float)(3.0 * g.uni());
            for (int tries = 0;; tries++) {
                const double lp = -6.0 * g.uni();
                double d = g.sym(0.45);
                const double u = g.uni();
                if (u < 0.04) d = 0.0;                             // r == 1 exactly
                else if (u < 0.07) d = (g.uni() < 0.5 ? -1 : 1) * (20.5 + 5 * g.uni()); // beyond the clamp
                else if (u < 0.3) d = g.sym(2.0);                  // far outside the clip range, past dual clip
                const float flp = (float)lp, fold = (float)(lp - d);
                double q = g.uni() < 0.1 ? g.sym(26.0) : g.sym(0.6);  // ref - logp
                double orr = g.uni() < 0.15 ? g.sym(3.0) : g.sym(0.5); // old - roll
                const float fref = (float)(lp + q), froll = (float)((double)fold - orr);
                const double r = exp(fmin(fmax((double)flp - fold, -20.0), 20.0));
                const double w = exp(fmin(fmax((double)fold - froll, -20.0), 20.0));
                if (tries < 100 && (near_any(r, kRatioBounds) || near_any(w, kTisBounds) ||
                                    k3_boundary((double)fref - flp)))
                    continue;
                b.logp[t] = flp, b.old[t] = fold, b.ref[t] = fref, b.roll[t] = froll;
                break;
            }
        }
        // Sequence-level quantities (GSPO ratio, sequence TIS weight) must avoid the boundaries too: shift
        // one response token's old (and roll) until they do.
        for (int tries = 0; tries < 200; tries++) {
            double sd = 0, so = 0;
            int n = 0, last = -1;
            for (int t = t0; t < t0 + L; t++)
                if (b.mask[t]) sd += (double)b.logp[t] - b.old[t], so += (double)b.old[t] - b.roll[t], n++, last = t;
            if (!n) break;
            const double s = exp(fmin(fmax(sd / n, -20.0), 20.0)), w = exp(fmin(fmax(so, -20.0), 20.0));
            if (!near_any(s, kRatioBounds) && !near_any(w, kTisBounds)) break;
            b.roll[last] += 0.01f;
            b.old[last] -= 0.003f;
        }
    }
    return b;
}

// ------------------------------------------------------------------------------------------ comparisons

static void check_vec(const std::vector<float> &got, const std::vector<float> &want, const char *what) {
    double mx = 0;
    for (float w : want) mx = fmax(mx, fabs((double)w));
    int bad = 0;
    for (size_t t = 0; t < want.size(); t++) {
        double e = fabs((double)got[t] - want[t]);
        if (!(std::isfinite(got[t]) && e <= 1e-5 * fabs((double)want[t]) + 1e-6 * mx)) {
            if (bad++ < 5) CHECK(0, "%s[%zu]: got %.9g expected %.9g", what, t, got[t], want[t]);
        }
    }
    CHECK(bad == 0, "%s: %d of %zu entries outside the tolerance", what, bad, want.size());
}

static void check_stats(const rlc_loss_stats &g, const rlc_loss_stats &w, const char *what) {
    // rlc_loss_stats is a struct of doubles
    const double *a = (const double *)&g, *b = (const double *)&w;
    for (size_t k = 0; k < sizeof(rlc_loss_stats) / sizeof(double); k++) {
        char name[160];
        snprintf(name, sizeof name, "%s: stats field %zu", what, k);
        CHECK_CLOSE(a[k], b[k], 1e-9, 1e-5, name);
    }
}

template <class T> static T *dev(const std::vector<T> &h) { return emu_test::to_device(h); }

// ------------------------------------------------------------------------------------------- policy loss

struct PolicyCase {
    const char *name;
    rlc_loss_config cfg;
    bool use_ref, use_roll, use_ent;
};

static rlc_loss_config base_cfg() {
    rlc_loss_config c;
    memset(&c, 0, sizeof c);
    c.policy = RLC_PL_PPO;
    c.eps_low = 0.2f, c.eps_high = 0.2f;
    c.cispo_eps_max = 1.5f;
    c.agg = RLC_AGG_TOKEN_MEAN;
    c.kl_est = RLC_KL_K3;
    c.tis_c = 2.0f, c.tis_c_min = 0.5f, c.tis_c_max = 1.5f;
    return c;
}

static std::vector<PolicyCase> policy_cases() {
    std::vector<PolicyCase> v;
    const rlc_policy_kind kinds[3] = {RLC_PL_PPO, RLC_PL_GSPO, RLC_PL_CISPO};
    const char *kind_names[3] = {"ppo", "gspo", "cispo"};
    int n = 0;
    for (int k = 0; k < 3; k++)
        for (int agg = 0; agg < 4; agg++) {
            rlc_loss_config c = base_cfg();
            c.policy = kinds[k];
            c.agg = (rlc_agg)agg;
            c.eps_high = (agg & 1) ? 0.28f : 0.2f;
            c.dual_clip = (agg & 2) ? 3.0f : 0.0f;
            c.kl_beta = (n % 3) ? 0.05f : 0.0f;
            c.kl_est = (rlc_kl_est)(n % 6);
            c.ent_coef = (n % 2) ? 0.01f : 0.0f;
            c.tis = (rlc_tis_level)(n % 3);
            c.tis_mode = (rlc_tis_mode)((n / 3) % 2);
            static char names[64][64];
            snprintf(names[n], sizeof names[n], "%s agg=%d kl=%d tis=%d/%d", kind_names[k], agg, (int)c.kl_est,
                     (int)c.tis, (int)c.tis_mode);
            v.push_back({names[n], c, c.kl_beta != 0 || n % 4 == 1, c.tis != RLC_TIS_OFF || n % 4 == 2,
                         c.ent_coef != 0 || n % 4 == 3});
            n++;
        }
    // every KL estimator with a KL term; both TIS modes at both levels
    for (int e = 0; e < 6; e++) {
        rlc_loss_config c = base_cfg();
        c.kl_beta = 0.1f, c.kl_est = (rlc_kl_est)e;
        c.tis = (rlc_tis_level)(1 + e % 2), c.tis_mode = (rlc_tis_mode)((e / 2) % 2);
        static char names[6][64];
        snprintf(names[e], sizeof names[e], "ppo kl_est=%d tis=%d/%d", e, (int)c.tis, (int)c.tis_mode);
        v.push_back({names[e], c, true, true, true});
    }
    return v;
}

// off: the device inputs (and the mask) start `off` elements into their buffers, so off % 16 != 0 takes the
// kernels' plain-load path. keep: the last schedule's dlogp and stats, for bit comparisons between runs.
struct PolicyOut {
    std::vector<float> dlogp, dent;
    rlc_loss_stats st;
};
static void run_policy(const Batch &b, const PolicyCase &pc, double l_const, int off = 0, PolicyOut *keep = nullptr) {
    rlc_loss_batch hb = {b.T, b.B, b.cu.data(), b.mask.data()};
    rlc_loss_norm norm = {0, 0, l_const};
    rlc_loss_norm_add(&norm, &hb);
    // Global counts bigger than this micro-batch's, as in gradient accumulation.
    norm.n_tok += 37, norm.n_seq += 3;

    rlc_policy_inputs hin = {b.logp.data(), b.old.data(), pc.use_ref ? b.ref.data() : nullptr,
                             pc.use_roll ? b.roll.data() : nullptr, b.adv.data(), pc.use_ent ? b.ent.data() : nullptr};
    std::vector<float> dlogp_cpu(b.T + 1), dent_cpu(b.T + 1); // + 1: non-NULL outputs also when T = 0
    rlc_loss_stats st_cpu;
    memset(&st_cpu, 0, sizeof st_cpu);
    st_cpu.ratio_max = 0.5; // accumulation starts from existing values
    st_cpu.loss = 1.0;
    rlc_loss_stats st0 = st_cpu;
    const double loss_cpu = rlc_policy_loss(&pc.cfg, &norm, &hb, &hin, dlogp_cpu.data(), dent_cpu.data(), &st_cpu);
    dlogp_cpu.resize(b.T), dent_cpu.resize(b.T);

    auto shifted = [&](const std::vector<float> &h) { // off garbage elements, then the data
        std::vector<float> v(off, NAN);
        v.insert(v.end(), h.begin(), h.end());
        return v;
    };
    std::vector<uint8_t> mask_off(off, 1);
    mask_off.insert(mask_off.end(), b.mask.begin(), b.mask.end());
    emu_test::run_all_schedules(pc.name, [&](emu_test::Outputs &out) {
        int *d_cu = dev(b.cu);
        uint8_t *d_mask0 = dev(mask_off), *d_mask = d_mask0 + off;
        float *d_x[6];
        const std::vector<float> *hx[6] = {&b.logp, &b.old, &b.ref, &b.roll, &b.adv, &b.ent};
        for (int k = 0; k < 6; k++) d_x[k] = dev(shifted(*hx[k]));
        float *d_logp = d_x[0] + off, *d_old = d_x[1] + off, *d_ref = d_x[2] + off, *d_roll = d_x[3] + off,
              *d_adv = d_x[4] + off, *d_ent = d_x[5] + off;
        float *d_dlogp = dev(std::vector<float>(b.T, NAN)), *d_dent = dev(std::vector<float>(b.T, NAN));
        rlc_loss_stats *d_st = dev(std::vector<rlc_loss_stats>(1, st0));
        double *d_loss = dev(std::vector<double>(1, NAN));
        void *ws = nullptr;
        RLC_CUDA_CHECK(cudaMalloc(&ws, rlc_cuda_policy_loss_workspace_bytes(b.T, b.B)));
        rlc_loss_batch db = {b.T, b.B, d_cu, d_mask};
        rlc_policy_inputs din = {d_logp, d_old, pc.use_ref ? d_ref : nullptr, pc.use_roll ? d_roll : nullptr, d_adv,
                                 pc.use_ent ? d_ent : nullptr};
        CHECK(rlc_cuda_policy_loss(&pc.cfg, &norm, &db, &din, d_dlogp, d_dent, d_st, d_loss, ws, nullptr) == 0,
              "%s: launch", pc.name);
        RLC_CUDA_CHECK(cudaDeviceSynchronize());
        std::vector<float> dlogp = emu_test::from_device(d_dlogp, b.T), dent = emu_test::from_device(d_dent, b.T);
        std::vector<rlc_loss_stats> st = emu_test::from_device(d_st, 1);
        std::vector<double> loss = emu_test::from_device(d_loss, 1);
        out.add("dlogp", dlogp);
        out.add("dent", dent);
        out.add("stats", st);
        out.add("loss", loss);
        char what[128];
        snprintf(what, sizeof what, "%s dlogp", pc.name);
        check_vec(dlogp, dlogp_cpu, what);
        snprintf(what, sizeof what, "%s dent", pc.name);
        check_vec(dent, dent_cpu, what);
        snprintf(what, sizeof what, "%s stats", pc.name);
        check_stats(st[0], st_cpu, what);
        snprintf(what, sizeof what, "%s loss", pc.name);
        CHECK_CLOSE(loss[0], loss_cpu, 1e-9, 1e-5, what);
        if (keep) *keep = PolicyOut{dlogp, dent, st[0]};
        for (int k = 0; k < 6; k++) cudaFree(d_x[k]);
        for (void *p : {(void *)d_cu, (void *)d_mask0, (void *)d_dlogp, (void *)d_dent, (void *)d_st, (void *)d_loss, ws})
            cudaFree(p);
    });
}

// The same call with aligned and with misaligned inputs must give the same bits (same token-to-thread
// assignment on the cp.async and the plain-load paths).
// Bitwise equality of two runs' outputs (memcmp only on non-empty arrays: T = 0 leaves them without storage).
static bool same_bits(const PolicyOut &x, const PolicyOut &y) {
    const auto eq = [](const std::vector<float> &u, const std::vector<float> &v) {
        return u.size() == v.size() && (u.empty() || !memcmp(u.data(), v.data(), u.size() * sizeof(float)));
    };
    return eq(x.dlogp, y.dlogp) && eq(x.dent, y.dent) && !memcmp(&x.st, &y.st, sizeof x.st);
}

static void run_policy_aligned_vs_offset(const Batch &b, const PolicyCase &pc, double l_const) {
    PolicyOut a, o;
    run_policy(b, pc, l_const, 0, &a);
    run_policy(b, pc, l_const, 1, &o);
    CHECK(same_bits(a, o), "%s: aligned and offset inputs give different bits", pc.name);
}

// The configurations with a per-sequence quantity (the pre-pass; the fused kernel when it is on).
static bool needs_seq(const rlc_loss_config &c) {
    return c.policy == RLC_PL_GSPO || c.agg == RLC_AGG_SEQ_MEAN_TOKEN_MEAN || c.tis == RLC_TIS_SEQ;
}

// The fused kernel (pre-pass inside the token kernel) and the separate pre-pass kernels must give the same bits
// (same per-range sums, fix-up order and token pass), each also matching the CPU twin (run_policy). With
// straggler_ms > 0 the fused kernel runs twice more with the emulator's straggler (emu_core.h: one block held
// back), at its first barrier (before its first claim: the others claim its chunk) and at its fourth (in
// ls_chunk_ensure, its claim made and its chunk not yet published: the others wait for it), and must give the
// same bits each time.
static void run_policy_fused_vs_separate(const Batch &b, const PolicyCase &pc, double l_const, int straggler_ms = 0) {
    PolicyOut f, sep;
    run_policy(b, pc, l_const, 0, &f);
    rlc_cuda_loss_set_fused(0);
    run_policy(b, pc, l_const, 0, &sep);
    rlc_cuda_loss_set_fused(1);
    CHECK(same_bits(f, sep), "%s: fused and separate pre-pass give different bits", pc.name);
    for (int bar = 1; straggler_ms > 0 && bar <= 4; bar += 3) {
        PolicyOut st;
        emu::set_straggler(straggler_ms, bar);
        run_policy(b, pc, l_const, 0, &st);
        emu::set_straggler(0);
        CHECK(same_bits(f, st), "%s: a block held back at its barrier %d changes the fused kernel's bits", pc.name,
              bar);
    }
}

// --------------------------------------------------------------------------------------------- value loss

static void run_value(const Batch &b, rlc_agg agg, float cv) {
    Rng g(99 + agg);
    std::vector<float> v(b.T), vo(b.T), R(b.T);
    for (int t = 0; t < b.T; t++) {
        if (!b.mask[t]) {
            v[t] = NAN, vo[t] = INFINITY, R[t] = -INFINITY;
            continue;
        }
        v[t] = (float)g.sym(2), R[t] = (float)g.sym(2);
        do vo[t] = (float)(v[t] + g.sym(1.5)); // |v - v_old| not at cv: same clip branch in fp32 and fp64
        while (fabs(fabs(vo[t] - v[t]) - cv) < 1e-3);
    }
    rlc_loss_batch hb = {b.T, b.B, b.cu.data(), b.mask.data()};
    rlc_loss_norm norm = {0, 0, 512};
    rlc_loss_norm_add(&norm, &hb);
    std::vector<float> dv_cpu(b.T);
    rlc_loss_stats st_cpu;
    memset(&st_cpu, 0, sizeof st_cpu);
    const double loss_cpu = rlc_value_loss(v.data(), vo.data(), R.data(), &hb, agg, &norm, cv, 0.5f, dv_cpu.data(), &st_cpu);
    char name[64];
    snprintf(name, sizeof name, "value agg=%d cv=%g", (int)agg, cv);
    emu_test::run_all_schedules(name, [&](emu_test::Outputs &out) {
        int *d_cu = dev(b.cu);
        uint8_t *d_mask = dev(b.mask);
        float *d_v = dev(v), *d_vo = dev(vo), *d_R = dev(R), *d_dv = dev(std::vector<float>(b.T, NAN));
        rlc_loss_stats zero;
        memset(&zero, 0, sizeof zero);
        rlc_loss_stats *d_st = dev(std::vector<rlc_loss_stats>(1, zero));
        double *d_loss = dev(std::vector<double>(1, NAN));
        void *ws = nullptr;
        RLC_CUDA_CHECK(cudaMalloc(&ws, rlc_cuda_value_loss_workspace_bytes(b.T, b.B)));
        rlc_loss_batch db = {b.T, b.B, d_cu, d_mask};
        CHECK(rlc_cuda_value_loss(d_v, d_vo, d_R, &db, agg, &norm, cv, 0.5f, d_dv, d_st, d_loss, ws, nullptr) == 0,
              "%s: launch", name);
        std::vector<float> dv = emu_test::from_device(d_dv, b.T);
        std::vector<rlc_loss_stats> st = emu_test::from_device(d_st, 1);
        std::vector<double> loss = emu_test::from_device(d_loss, 1);
        out.add("dv", dv);
        out.add("stats", st);
        out.add("loss", loss);
        check_vec(dv, dv_cpu, name);
        check_stats(st[0], st_cpu, name);
        CHECK_CLOSE(loss[0], loss_cpu, 1e-9, 1e-5, name);
        for (void *p : {(void *)d_cu, (void *)d_mask, (void *)d_v, (void *)d_vo, (void *)d_R, (void *)d_dv,
                        (void *)d_st, (void *)d_loss, ws})
            cudaFree(p);
    });
}

// ------------------------------------------------------------------------------------------- advantages

static void check_adv(const std::vector<float> &got, const std::vector<float> &want, const char *what) {
    int bad = 0;
    for (size_t j = 0; j < want.size(); j++)
        if (!(fabs((double)got[j] - want[j]) <= 1e-6 * fabs((double)want[j]) + 1e-7) && bad++ < 5)
            CHECK(0, "%s[%zu]: got %.9g expected %.9g", what, j, got[j], want[j]);
    CHECK(bad == 0, "%s: %d entries differ", what, bad);
}

static void run_group_adv(int n_groups, int G, uint64_t seed) {
    Rng g(seed);
    std::vector<float> s((size_t)n_groups * G);
    for (int p = 0; p < n_groups; p++)
        for (int j = 0; j < G; j++)
            s[(size_t)p * G + j] = p % 4 == 1 ? 1.0f : (float)(g.uni() < 0.5 ? 0.0 : g.sym(3)); // some all-equal
    for (int mode = 0; mode < 4; mode++) {
        std::vector<float> want(s.size());
        if (mode < 3) rlc_adv_grpo(want.data(), s.data(), n_groups, G, (rlc_adv_scale)mode);
        else rlc_adv_rloo(want.data(), s.data(), n_groups, G);
        char name[64];
        snprintf(name, sizeof name, "%s groups=%d G=%d", mode < 3 ? "grpo" : "rloo", n_groups, G);
        if (mode < 3) snprintf(name + strlen(name), sizeof name - strlen(name), " scale=%d", mode);
        emu_test::run_all_schedules(name, [&](emu_test::Outputs &out) {
            float *d_s = dev(s), *d_a = dev(std::vector<float>(s.size(), NAN));
            void *ws = nullptr;
            RLC_CUDA_CHECK(cudaMalloc(&ws, rlc_cuda_adv_grpo_workspace_bytes()));
            int rc = mode < 3 ? rlc_cuda_adv_grpo(d_a, d_s, n_groups, G, (rlc_adv_scale)mode, ws, nullptr)
                              : rlc_cuda_adv_rloo(d_a, d_s, n_groups, G, nullptr);
            CHECK(rc == 0, "%s: launch", name);
            std::vector<float> a = emu_test::from_device(d_a, s.size());
            out.add("adv", a);
            check_adv(a, want, name);
            // all-equal groups give exactly 0 (GRPO)
            if (mode < 3 && G > 1)
                for (int p = 1; p < n_groups; p += 4) CHECK(a[(size_t)p * G] == 0.0f, "%s: all-equal group %d", name, p);
            cudaFree(d_s), cudaFree(d_a), cudaFree(ws);
        });
    }
}

static void run_broadcast(const Batch &b) {
    Rng g(5);
    std::vector<float> seq(b.B);
    for (auto &x : seq) x = (float)g.sym(2);
    rlc_loss_batch hb = {b.T, b.B, b.cu.data(), b.mask.data()};
    std::vector<float> want(b.T);
    rlc_adv_broadcast(want.data(), seq.data(), &hb);
    emu_test::run_all_schedules("broadcast", [&](emu_test::Outputs &out) {
        int *d_cu = dev(b.cu);
        uint8_t *d_mask = dev(b.mask);
        float *d_seq = dev(seq), *d_tok = dev(std::vector<float>(b.T, NAN));
        rlc_loss_batch db = {b.T, b.B, d_cu, d_mask};
        CHECK(rlc_cuda_adv_broadcast(d_tok, d_seq, &db, nullptr) == 0, "broadcast launch");
        std::vector<float> got = emu_test::from_device(d_tok, b.T);
        out.add("adv_tok", got);
        CHECK(memcmp(got.data(), want.data(), want.size() * 4) == 0, "broadcast differs from the CPU twin");
        cudaFree(d_cu), cudaFree(d_mask), cudaFree(d_seq), cudaFree(d_tok);
    });
}

static void run_empg(const Batch &b) {
    // Steps: each sequence split into up to 3 turns; episodes = pairs of consecutive sequences.
    std::vector<int> st, en, next;
    std::vector<float> ent(b.T);
    Rng g(17);
    for (int t = 0; t < b.T; t++) ent[t] = b.mask[t] ? (float)(3 * g.uni()) : NAN;
    for (int i = 0; i < b.B; i++) {
        int t0 = b.cu[i], t1 = b.cu[i + 1], L = t1 - t0, parts = L >= 3 ? 3 : 1;
        for (int k = 0; k < parts; k++) {
            st.push_back(t0 + L * k / parts);
            en.push_back(t0 + L * (k + 1) / parts);
            next.push_back((k + 1 < parts || i % 2 == 0) && !(i == b.B - 1 && k + 1 == parts) ? (int)st.size() : -1);
        }
    }
    const int S = (int)st.size();
    std::vector<float> H_cpu(S), a_traj(S), a_cpu(S), g_cpu(S);
    for (int j = 0; j < S; j++) {
        H_cpu[j] = (float)rlc_empg_step_entropy(ent.data(), b.mask.data(), st[j], en[j]);
        a_traj[j] = (float)g.sym(1.5);
    }
    rlc_adv_empg(a_cpu.data(), g_cpu.data(), H_cpu.data(), next.data(), a_traj.data(), S, 1.0f, 1.0f, 0.05f);
    emu_test::run_all_schedules("empg", [&](emu_test::Outputs &out) {
        int *d_st = dev(st), *d_en = dev(en), *d_next = dev(next);
        uint8_t *d_mask = dev(b.mask);
        float *d_ent = dev(ent), *d_H = dev(std::vector<float>(S, NAN)), *d_traj = dev(a_traj);
        float *d_a = dev(std::vector<float>(S, NAN)), *d_g = dev(std::vector<float>(S, NAN));
        rlc_empg_stats *d_stats = nullptr;
        RLC_CUDA_CHECK(cudaMalloc(&d_stats, sizeof(rlc_empg_stats)));
        CHECK(rlc_cuda_empg_step_entropy(d_H, d_ent, d_mask, d_st, d_en, S, nullptr) == 0, "step entropy launch");
        CHECK(rlc_cuda_adv_empg(d_a, d_g, d_H, d_next, d_traj, S, 1.0f, 1.0f, 0.05f, d_stats, nullptr) == 0,
              "empg launch");
        std::vector<float> H = emu_test::from_device(d_H, S), a = emu_test::from_device(d_a, S),
                           gg = emu_test::from_device(d_g, S);
        out.add("H", H);
        out.add("a", a);
        out.add("g", gg);
        check_vec(H, H_cpu, "empg step entropy");
        check_adv(a, a_cpu, "empg a_final");
        check_adv(gg, g_cpu, "empg g");
        for (void *p : {(void *)d_st, (void *)d_en, (void *)d_next, (void *)d_mask, (void *)d_ent, (void *)d_H,
                        (void *)d_traj, (void *)d_a, (void *)d_g, (void *)d_stats})
            cudaFree(p);
    });
}

int main() {
    // Packed batch: very short and long sequences, one fully masked (index 2), T not a multiple of 256.
    const std::vector<int> lens = {1, 2, 40, 1500, 3, 1, 700, 17, 1, 257, 96, 5, 1, 630, 33, 9, 1, 2, 300, 64};
    const Batch b = make_batch(lens, 2024);
    int n_seq_cases = 0;
    for (const PolicyCase &pc : policy_cases()) {
        if (needs_seq(pc.cfg)) run_policy_fused_vs_separate(b, pc, 1024.0), n_seq_cases++;
        else run_policy(b, pc, 1024.0);
    }
    CHECK(n_seq_cases >= 8, "only %d cases with a per-sequence quantity", n_seq_cases);
    // A single one-token sequence (T = 1).
    const Batch one = make_batch({1}, 7);
    for (int k = 0; k < 3; k++) {
        PolicyCase pc = {k == 0 ? "T=1 ppo" : k == 1 ? "T=1 gspo" : "T=1 cispo", base_cfg(), true, true, true};
        pc.cfg.policy = (rlc_policy_kind)k;
        pc.cfg.kl_beta = 0.1f, pc.cfg.ent_coef = 0.01f, pc.cfg.tis = RLC_TIS_TOKEN;
        if (needs_seq(pc.cfg)) run_policy_fused_vs_separate(one, pc, 8.0);
        else run_policy(one, pc, 8.0);
    }
    // A bigger batch (several hundred blocks), token TIS, dual clip.
    {
        std::vector<int> big_lens;
        for (int i = 0; i < 70; i++) big_lens.push_back(i % 5 == 0 ? 1 : 4000 + 37 * i);
        const Batch big = make_batch(big_lens, 99);
        PolicyCase pc = {"big T > 262144", base_cfg(), true, true, true};
        pc.cfg.dual_clip = 3.0f, pc.cfg.kl_beta = 0.1f, pc.cfg.ent_coef = 0.01f, pc.cfg.tis = RLC_TIS_TOKEN;
        CHECK(big.T > 1024 * 256, "big batch has %d tokens", big.T);
        run_policy(big, pc, 4096.0);
    }
    // Aligned (cp.async) vs misaligned (plain loads) inputs: same bits.
    {
        const std::vector<PolicyCase> cs = policy_cases();
        for (size_t k : {(size_t)1, (size_t)5, (size_t)14, (size_t)17}) run_policy_aligned_vs_offset(b, cs[k], 1024.0);
    }
    // Grid capped at one block (many steps per warp: the copy pipeline wraps its stages, the sequence window
    // is reloaded, the sequence count crosses steps) and at three (warps and blocks that end inside a step or
    // have no tokens). Several groups of the in-kernel final reduction: the long and big batches below.
    for (int cap : {1, 3}) {
        rlc_cuda_loss_set_max_blocks(cap);
        const std::vector<PolicyCase> cs = policy_cases();
        for (size_t k = cap == 1 ? 0 : 1; k < cs.size(); k += 3) {
            PolicyCase pc = cs[k];
            static char names[2][64][96];
            snprintf(names[cap > 1][k], sizeof names[cap > 1][k], "%s [%d blocks]", pc.name, cap);
            pc.name = names[cap > 1][k];
            if (needs_seq(pc.cfg)) run_policy_fused_vs_separate(b, pc, 1024.0);
            else run_policy(b, pc, 1024.0);
            if (cap == 1 && k % 2 == 0) run_policy(b, pc, 1024.0, 3); // plain-load path, many steps per warp
        }
        rlc_cuda_loss_set_max_blocks(0);
    }
    // Dense short sequences (more than 32 sequence starts in a 128-token step: the per-token search), empty
    // sequences everywhere, with a few longer ones; GSPO with sequence TIS and seq-mean-token-mean.
    {
        std::vector<int> lens;
        for (int i = 0; i < 900; i++) lens.push_back(i % 97 == 50 ? 300 : i % 5 == 4 ? 0 : 1 + i % 3);
        const Batch dense = make_batch(lens, 31);
        for (int k = 0; k < 3; k++) {
            PolicyCase pc = {k == 0 ? "dense gspo tis=seq" : k == 1 ? "dense ppo smtm" : "dense ppo [1 block]",
                             base_cfg(), true, true, true};
            pc.cfg.policy = k == 0 ? RLC_PL_GSPO : RLC_PL_PPO;
            pc.cfg.agg = k == 1 ? RLC_AGG_SEQ_MEAN_TOKEN_MEAN : RLC_AGG_SEQ_MEAN_TOKEN_SUM;
            pc.cfg.kl_beta = 0.1f, pc.cfg.ent_coef = 0.01f;
            pc.cfg.tis = k == 0 ? RLC_TIS_SEQ : RLC_TIS_TOKEN, pc.cfg.tis_mode = RLC_TIS_MASK;
            if (k == 2) rlc_cuda_loss_set_max_blocks(1);
            if (needs_seq(pc.cfg)) run_policy_fused_vs_separate(dense, pc, 64.0);
            else run_policy(dense, pc, 64.0);
            rlc_cuda_loss_set_max_blocks(0);
        }
        run_value(dense, RLC_AGG_SEQ_MEAN_TOKEN_MEAN, 0.5f);
    }
    // 8k to 32k tokens: the one-block pre-pass with more ranges (of 1024 tokens) than warps, sequences across
    // ranges.
    {
        std::vector<int> lens;
        for (int i = 0; i < 64; i++) lens.push_back(i % 9 == 4 ? 1 + i : 250 + 7 * i);
        const Batch mid = make_batch(lens, 55);
        CHECK(mid.T > 8 * 1024 && mid.T <= 32768, "mid batch has %d tokens", mid.T);
        for (int k = 0; k < 2; k++) {
            PolicyCase pc = {k == 0 ? "mid gspo tis=seq" : "mid ppo smtm", base_cfg(), true, true, true};
            pc.cfg.policy = k == 0 ? RLC_PL_GSPO : RLC_PL_PPO;
            pc.cfg.agg = RLC_AGG_SEQ_MEAN_TOKEN_MEAN;
            pc.cfg.kl_beta = 0.1f, pc.cfg.tis = k == 0 ? RLC_TIS_SEQ : RLC_TIS_TOKEN;
            run_policy_fused_vs_separate(mid, pc, 4096.0);
        }
    }
    // Many chunks of one pre-pass range each (steps = 1), sequences over up to 5 of them, so that blocks claim
    // their neighbours' pre-pass or wait for it, under every block order of the schedules.
    {
        std::vector<int> lens;
        for (int i = 0; i < 60; i++) lens.push_back(i % 4 == 0 ? 1 + i : i % 4 == 1 ? 4500 - 13 * i : 700 + 31 * i);
        const Batch many = make_batch(lens, 81);
        CHECK(many.T > 64 * 1024 && many.T < 128 * 1024, "many-chunk batch has %d tokens", many.T);
        for (int k = 0; k < 2; k++) {
            PolicyCase pc = {k == 0 ? "many chunks gspo tis=seq" : "many chunks ppo smtm", base_cfg(), true, true,
                             true};
            pc.cfg.policy = k == 0 ? RLC_PL_GSPO : RLC_PL_PPO;
            pc.cfg.agg = k == 0 ? RLC_AGG_SEQ_MEAN_TOKEN_SUM : RLC_AGG_SEQ_MEAN_TOKEN_MEAN;
            pc.cfg.kl_beta = 0.1f, pc.cfg.ent_coef = 0.01f;
            pc.cfg.tis = k == 0 ? RLC_TIS_SEQ : RLC_TIS_TOKEN;
            run_policy_fused_vs_separate(many, pc, 4096.0);
        }
    }
    // Sequence starts exactly on range and chunk edges (multiples of 1024), empty sequences there, a sequence that
    // ends one token before an edge and one that ends one after; chunks of one range, then of three (3 blocks).
    {
        const Batch edges = make_batch({1024, 0, 1024, 2048, 1, 1023, 1025, 0, 0, 3071, 1, 1024}, 91);
        for (int cap : {0, 3}) {
            rlc_cuda_loss_set_max_blocks(cap);
            PolicyCase pc = {cap ? "edges gspo tis=seq [3 blocks]" : "edges gspo tis=seq", base_cfg(), true, true,
                             true};
            pc.cfg.policy = RLC_PL_GSPO, pc.cfg.tis = RLC_TIS_SEQ, pc.cfg.kl_beta = 0.1f, pc.cfg.ent_coef = 0.01f;
            run_policy_fused_vs_separate(edges, pc, 4096.0);
        }
        rlc_cuda_loss_set_max_blocks(0);
    }
    // One sequence longer than LS_FIX_LONG pre-pass ranges of 1024 tokens (its partials are added by a whole
    // warp) between short ones; GSPO and seq-mean-token-mean need its n_i and sums.
    {
        const Batch longb = make_batch({5, 40000, 3, 1, 2100}, 77);
        for (int k = 0; k < 2; k++) {
            PolicyCase pc = {k == 0 ? "long gspo tis=seq" : "long cispo smtm", base_cfg(), true, true, true};
            pc.cfg.policy = k == 0 ? RLC_PL_GSPO : RLC_PL_CISPO;
            pc.cfg.agg = RLC_AGG_SEQ_MEAN_TOKEN_MEAN;
            pc.cfg.kl_beta = 0.1f, pc.cfg.tis = k == 0 ? RLC_TIS_SEQ : RLC_TIS_OFF;
            run_policy_fused_vs_separate(longb, pc, 4096.0);
        }
        // chunks of 10 ranges (4 blocks): the long sequence spans every chunk
        rlc_cuda_loss_set_max_blocks(4);
        PolicyCase pc = {"long gspo [4 blocks]", base_cfg(), true, true, true};
        pc.cfg.policy = RLC_PL_GSPO, pc.cfg.tis = RLC_TIS_SEQ, pc.cfg.tis_mode = RLC_TIS_MASK, pc.cfg.kl_beta = 0.1f;
        run_policy_fused_vs_separate(longb, pc, 4096.0, 50);
        rlc_cuda_loss_set_max_blocks(0);
        run_value(longb, RLC_AGG_SEQ_MEAN_TOKEN_MEAN, 0.5f);
    }
    // No tokens at all (T = 0, two empty sequences): zero counts, the loss of nothing.
    {
        Batch none = make_batch({0, 0}, 3);
        for (auto *v : {&none.logp, &none.old, &none.ref, &none.roll, &none.adv, &none.ent})
            v->reserve(1); // non-NULL data() for the CPU twin's argument checks
        PolicyCase pc = {"T=0 gspo", base_cfg(), true, true, true};
        pc.cfg.policy = RLC_PL_GSPO, pc.cfg.kl_beta = 0.1f;
        run_policy_fused_vs_separate(none, pc, 8.0);
    }
    for (int agg = 0; agg < 4; agg++) {
        run_value(b, (rlc_agg)agg, 0.5f);
        if (agg == 0) run_value(b, (rlc_agg)agg, 0.0f);
    }
    run_group_adv(9, 1, 1);
    run_group_adv(9, 2, 2);
    run_group_adv(13, 8, 3);
    run_group_adv(5, 40, 4);
    run_group_adv(3, 64, 5);
    run_broadcast(b);
    run_empg(b);
    return test_finish("test_loss");
}
