// tests/emu/test_sample.cpp: device-side sampling (kernels/cuda/sample.cu through the CUDA op table's sample_tokens)
// against its CPU twin (rlc_ops_cpu()->sample_tokens = rlc_sample_token row by row; the device Philox itself:
// tests/emu/test_philox.cpp). Under the emulator (ctest label emu) every case runs in the three schedule orders and
// its outputs must be bitwise identical across them; built for a GPU (tests/gpu/test_sample.cpp includes this file)
// every case runs twice and must repeat bit for bit, larger shapes are added, and the time of one decode step's
// sampling (512 rows of V = 151936) is printed.
//
// Checks
//   Sampling: V = 1, 2, 97, 5000 (and 151936 for a few rows; many on the GPU); greedy; temperature 0.7 / 1 / 1.3
//     x top_k 0 / 1 / 50 x top_p 1 / 0.9 / 0.5; rows with normal logits of several spreads, quantized logits (many
//     ties, also at the top-k cut), -inf, +-0 and repeated maxima, flat rows (every logit equal: the draw lands
//     deep inside a run of equal logits), one dominant logit over a long tail; one row shared by all (ld = 0);
//     logp / ent NULL.
//   Tokens: identical, except where the CPU's draw lies within delta of a cumulative boundary: |u * total - c_j|
//     for the chosen token's two boundaries, or |c_j - top_p| at the nucleus cut, below delta = V 2^-(shift+1)
//     p_max + V 2^-52 (shift = 62 - ceil(log2 V): the kernel's fixed-point mass unit is 2^-shift p_max; the CPU's
//     double sums in sorted order are good to V 2^-53). Such boundary cases are counted and printed and may be at
//     most 1 in 1000 rows; any other difference fails. (Expected: none. A boundary's neighbourhood of width delta
//     has probability about delta per row.) Flat rows are the exception by construction: with every probability
//     1/V, a cut at top_p = 0.5 or 0.9 or a draw at u = m/8 can fall exactly on a boundary, where the kernel's
//     integer sums see the exact tie and the CPU's rounded double sum decides it either way; those are counted
//     apart ("exact ties") and printed.
//     The comparison can fail: the CPU twin under another seed must disagree with the device on most rows.
//   logp, ent (same token): |gpu - cpu| <= 1e-6 (1 + |cpu|). Both sides compute the same double formulas with the
//     sums in another order (relative differences ~1e-15 before the rounding to float), so they agree to the float
//     rounding: at most an ulp or two. A -inf logit makes the specification's entropy NaN (0 * -inf): NaN on both.
//   A bad temperature ends the process with a message naming the entry.
//   Both kernel variants (1: 1024-thread blocks, the row's first 40960 logits in shared memory, so V = 5000 is all
//     cached and V = 151936 partly) run every case, on other rows (under the emulator variant 1 on fewer of them);
//     on the same rows their tokens are equal bit for bit (the same masses and descent), logp and entropy within
//     the tolerance above.
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "ops_cuda.h"
#include "rlc_cuda.h"
#include "sample.h"
#include "test_common.h"
#include "test_util.h"
extern "C" {
#include "rlc/rng.h"
#include "rlc/sample.h"
}
#include "test_harness.h"

static const rlc_ops *GPU, *CPU;

using rlc_test::Outputs;
using rlc_test::run_case;

// splitmix64: reproducible test inputs
struct Mix {
    uint64_t s;
    explicit Mix(uint64_t seed) : s(seed) {}
    uint64_t next() {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    double uni() { return ((next() >> 11) + 0.5) / 9007199254740992.0; }
    double normal() { return sqrt(-2.0 * log(uni())) * cos(6.283185307179586 * uni()); }
};

// ------------------------------------------------------------------------------------------------ sampling

// Row kinds (row r uses kind (r + salt) % KINDS).
enum { K_NORMAL1, K_NORMAL4, K_QUANT, K_SPECIAL, K_FLAT, K_DOMINANT, K_NORMAL03, KINDS };
static const char *const KIND_NAMES[KINDS] = {"normal", "normal x4", "quantized", "special", "flat", "dominant",
                                              "normal x0.3"};

static void fill_row(float *z, int V, int kind, Mix &r) {
    for (int j = 0; j < V; j++) {
        const double g = r.normal();
        switch (kind) {
        case K_NORMAL1: z[j] = (float)g; break;
        case K_NORMAL4: z[j] = (float)(4.0 * g); break;
        case K_NORMAL03: z[j] = (float)(0.3 * g); break;
        case K_QUANT: z[j] = (float)(0.5 * floor(2.0 * g)); break; // steps of 0.5: long runs of equal logits
        case K_FLAT: z[j] = 1.25f; break;
        case K_DOMINANT: z[j] = (float)(g - 8.0); break;
        default: z[j] = (float)(0.25 * floor(4.0 * g)); break; // K_SPECIAL, edited below
        }
    }
    if (kind == K_DOMINANT) z[(int)(r.next() % V)] = 6.0f;
    if (kind == K_SPECIAL && V > 1) {
        for (int j = 0; j < V; j += 7) z[j] = -INFINITY;
        for (int j = 3; j < V; j += 11) z[j] = (j / 11) % 2 ? -0.0f : 0.0f;
        const float top = 3.5f; // the maximum, several times: argmax = the lowest id
        z[V - 1] = top;
        z[V / 2] = top;
        if (V > 4) z[V / 3 + 1] = top;
    }
}

// The CPU's decision, re-derived to measure how close it was to a boundary: the chosen token's cumulative
// interval [c_lo, c_hi) against target = u * total, and the nucleus cut against top_p. Returns the smaller margin.
static double cpu_margin(const float *z, int V, const rlc_sampling *s, float u) {
    const double tau = s->temperature;
    double mx = -INFINITY;
    for (int j = 0; j < V; j++) mx = fmax(mx, (double)z[j]);
    double sum = 0;
    for (int j = 0; j < V; j++) sum += exp(((double)z[j] - mx) / tau);
    const double lse = log(sum);
    std::vector<std::pair<double, int>> pi(V);
    for (int j = 0; j < V; j++) pi[j] = {exp(((double)z[j] - mx) / tau - lse), j};
    std::sort(pi.begin(), pi.end(), [](const std::pair<double, int> &a, const std::pair<double, int> &b) {
        return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    double margin = INFINITY;
    int keep = V;
    if (s->top_k > 0 && s->top_k < keep) keep = s->top_k;
    if (s->top_p < 1.0f) {
        double c = 0;
        for (int j = 0; j < keep; j++) {
            const double prev = c;
            c += pi[j].first;
            if (c >= s->top_p) {
                margin = fmin(fabs(c - s->top_p), j > 0 ? fabs(prev - s->top_p) : INFINITY);
                keep = j + 1;
                break;
            }
        }
    }
    double total = 0;
    for (int j = 0; j < keep; j++) total += pi[j].first;
    const double target = (double)u * total;
    double c = 0;
    for (int j = 0; j < keep; j++) {
        const double prev = c;
        c += pi[j].first;
        if (target < c) return fmin(margin, fmin(fabs(target - prev), fabs(c - target)));
    }
    return margin;
}

struct SampleTotals {
    long rows = 0, boundary = 0, ties = 0; // ties: boundary cases of flat rows (exact ties by construction)
    double worst_lp = 0, worst_ent = 0;
};
static SampleTotals g_tot;

static const char *cfg_name(const rlc_sampling &s, char *buf, size_t n) {
    if (s.greedy) snprintf(buf, n, "greedy");
    else snprintf(buf, n, "tau %.1f top_k %d top_p %.1f", s.temperature, s.top_k, s.top_p);
    return buf;
}

// n rows of V logits (shared = one row for all: ld = 0), every sampling configuration in cfgs.
static void test_sample(int V, int n, bool shared, const std::vector<rlc_sampling> &cfgs, uint32_t salt,
                        bool null_stats = false) {
    Mix r(0x5A3B1E + salt * 1000003ull + (uint64_t)V);
    const int rows_data = shared ? 1 : n;
    std::vector<float> logits((size_t)rows_data * V);
    std::vector<int> kinds(rows_data);
    for (int i = 0; i < rows_data; i++) {
        kinds[i] = (int)((i + salt) % KINDS);
        fill_row(&logits[(size_t)i * V], V, kinds[i], r);
    }
    std::vector<rlc_sample_key> keys(n);
    for (int i = 0; i < n; i++)
        keys[i] = {(int)(r.next() % 100000), (int)(r.next() % 64), (int)(r.next() % 4096)};
    const uint64_t seed = r.next(), step = r.next() % 1000;
    const size_t ld = shared ? 0 : (size_t)V;
    for (const rlc_sampling &s : cfgs) {
        char cname[96], name[192];
        snprintf(name, sizeof name, "sample V=%d n=%d%s%s %s", V, n, shared ? " ld=0" : "",
                 null_stats ? " logp,ent=NULL" : "", cfg_name(s, cname, sizeof cname));
        std::vector<int> tok_c(n);
        std::vector<float> lp_c(n), en_c(n);
        CPU->sample_tokens(tok_c.data(), lp_c.data(), en_c.data(), logits.data(), ld, n, V, &s, keys.data(), seed, step);
        int boundary = 0, ties = 0;
        std::vector<std::string> notes; // the boundary cases of the last run, printed once
        run_case(name, [&](Outputs &o) {
            float *dl = (float *)GPU->alloc(logits.size() * sizeof(float));
            GPU->upload(dl, logits.data(), logits.size() * sizeof(float));
            std::vector<int> tok(n, -7);
            std::vector<float> lp(n, NAN), en(n, NAN);
            GPU->sample_tokens(tok.data(), null_stats ? NULL : lp.data(), null_stats ? NULL : en.data(), dl, ld, n, V, &s,
                               keys.data(), seed, step);
            boundary = ties = 0;
            notes.clear();
            int bad = 0;
            for (int i = 0; i < n; i++) {
                const float *z = &logits[(size_t)(shared ? 0 : i) * V];
                CHECK(tok[i] >= 0 && tok[i] < V, "%s: row %d: token %d outside the vocabulary", name, i, tok[i]);
                if (tok[i] != tok_c[i]) {
                    const float u = s.greedy ? 0.0f
                                             : rlc_rng_uniform(seed, step, (uint64_t)keys[i].prompt_id,
                                                               (uint64_t)keys[i].sample_id, (uint64_t)keys[i].position, 0);
                    int clog = 0;
                    while ((1 << clog) < V) clog++;
                    double pmax = 0, sum = 0, mx = -INFINITY;
                    for (int j = 0; j < V; j++) mx = fmax(mx, (double)z[j]);
                    for (int j = 0; j < V; j++) sum += exp(((double)z[j] - mx) / s.temperature);
                    pmax = 1.0 / sum;
                    const double delta = V * ldexp(pmax, -(62 - clog) - 1) + V * ldexp(1.0, -52);
                    const double margin = s.greedy ? INFINITY : cpu_margin(z, V, &s, u);
                    if (margin < delta) {
                        const bool flat = kinds[shared ? 0 : i] == K_FLAT;
                        (flat ? ties : boundary)++;
                        char msg[320];
                        snprintf(msg, sizeof msg, "    %s: %s row %d (%s): gpu %d cpu %d, margin %.3g < delta %.3g",
                                 flat ? "exact tie" : "boundary case", name, i, KIND_NAMES[kinds[shared ? 0 : i]], tok[i],
                                 tok_c[i], margin, delta);
                        notes.push_back(msg);
                    } else if (bad++ < 5) {
                        CHECK(0, "%s: row %d (%s): gpu token %d, cpu %d (u %.8f, margin %.3g, delta %.3g)", name, i,
                              KIND_NAMES[kinds[shared ? 0 : i]], tok[i], tok_c[i], u, margin, delta);
                    }
                    continue;
                }
                if (null_stats) continue;
                // a -inf logit makes the specification's entropy NaN (0 * -inf in sum p*u): the same NaN on both
                const bool nan_ent = std::isnan(en_c[i]) && std::isnan(en[i]);
                const double elp = fabs((double)lp[i] - lp_c[i]) / (1e-6 * (1.0 + fabs((double)lp_c[i])));
                const double een = nan_ent ? 0.0 : fabs((double)en[i] - en_c[i]) / (1e-6 * (1.0 + fabs((double)en_c[i])));
                CHECK(elp <= 1.0, "%s: row %d: logp gpu %.9g cpu %.9g", name, i, lp[i], lp_c[i]);
                CHECK(een <= 1.0, "%s: row %d: entropy gpu %.9g cpu %.9g", name, i, en[i], en_c[i]);
                g_tot.worst_lp = fmax(g_tot.worst_lp, elp);
                g_tot.worst_ent = fmax(g_tot.worst_ent, een);
            }
            CHECK(bad == 0, "%s: %d of %d tokens differ away from any boundary", name, bad, n);
            o.add("tok", tok);
            o.add("logp", lp);
            o.add("ent", en);
            GPU->free(dl);
        });
        for (const std::string &m : notes) printf("%s\n", m.c_str());
        g_tot.rows += n;
        g_tot.boundary += boundary;
        g_tot.ties += ties;
    }
}

// Variants 0 and 1 on the same rows: the same tokens bit for bit; logp and entropy to the float rounding.
static void test_variants_agree(int V, int n, const std::vector<rlc_sampling> &cfgs, uint32_t salt) {
    Mix r(0x7A11 + salt * 1000003ull + (uint64_t)V);
    std::vector<float> logits((size_t)n * V);
    for (int i = 0; i < n; i++) fill_row(&logits[(size_t)i * V], V, (int)((i + salt) % KINDS), r);
    std::vector<rlc_sample_key> keys(n);
    for (int i = 0; i < n; i++) keys[i] = {(int)(r.next() % 1000), (int)(r.next() % 64), (int)(r.next() % 4096)};
    float *dl = (float *)GPU->alloc(logits.size() * sizeof(float));
    GPU->upload(dl, logits.data(), logits.size() * sizeof(float));
    for (const rlc_sampling &s : cfgs) {
        std::vector<int> tok[2];
        std::vector<float> lp[2], en[2];
        for (int v = 0; v < 2; v++) {
            tok[v].assign(n, -7), lp[v].assign(n, NAN), en[v].assign(n, NAN);
            CHECK(rlc_cuda_sample_set_variant(v) == 0, "variant %d", v);
            GPU->sample_tokens(tok[v].data(), lp[v].data(), en[v].data(), dl, V, n, V, &s, keys.data(), 99, 5);
        }
        rlc_cuda_sample_set_variant(0);
        char cname[96];
        cfg_name(s, cname, sizeof cname);
        int diff = 0;
        for (int i = 0; i < n; i++) {
            diff += tok[0][i] != tok[1][i];
            const bool nan_ent = std::isnan(en[0][i]) && std::isnan(en[1][i]);
            CHECK(fabs((double)lp[0][i] - lp[1][i]) <= 1e-6 * (1.0 + fabs((double)lp[0][i])) &&
                      (nan_ent || fabs((double)en[0][i] - en[1][i]) <= 1e-6 * (1.0 + fabs((double)en[0][i]))),
                  "variants V=%d %s row %d: logp %.9g / %.9g, entropy %.9g / %.9g", V, cname, i, lp[0][i], lp[1][i],
                  en[0][i], en[1][i]);
        }
        CHECK(diff == 0, "variants V=%d %s: %d of %d tokens differ", V, cname, diff, n);
    }
    GPU->free(dl);
}

static std::vector<rlc_sampling> all_configs() {
    std::vector<rlc_sampling> v;
    v.push_back({1.0f, 0, 1.0f, 1});
    for (float tau : {0.7f, 1.0f, 1.3f})
        for (int k : {0, 1, 50})
            for (float p : {1.0f, 0.9f, 0.5f}) v.push_back({tau, k, p, 0});
    return v;
}

// The comparison can fail: the CPU's tokens under another seed differ from the GPU's in most rows.
static void test_sensitivity() {
    const int V = 97, n = 64;
    Mix r(99);
    std::vector<float> logits((size_t)n * V);
    for (int i = 0; i < n; i++) fill_row(&logits[(size_t)i * V], V, K_NORMAL1, r);
    std::vector<rlc_sample_key> keys(n);
    for (int i = 0; i < n; i++) keys[i] = {i, 0, 5};
    rlc_sampling s = {1.0f, 0, 1.0f, 0};
    std::vector<int> a(n), b(n);
    float *dl = (float *)GPU->alloc(logits.size() * sizeof(float));
    GPU->upload(dl, logits.data(), logits.size() * sizeof(float));
    GPU->sample_tokens(a.data(), NULL, NULL, dl, V, n, V, &s, keys.data(), 1, 0);
    CPU->sample_tokens(b.data(), NULL, NULL, logits.data(), V, n, V, &s, keys.data(), 2, 0);
    int differ = 0;
    for (int i = 0; i < n; i++) differ += a[i] != b[i];
    printf("  planted bug (the CPU twin with another seed): %d of %d tokens differ\n", differ, n);
    CHECK(differ >= n / 2, "a wrong seed changes only %d of %d tokens: the comparison is too weak", differ, n);
    GPU->free(dl);
}

#ifndef RLC_EMU
// GPU only, printed and not asserted: the wall time of one sample_tokens call on n rows of V logits (key upload, the
// kernel and the results' download included), and the rate at which that would read the logits once.
static void time_sample(int V, int n, const rlc_sampling &s, const char *what, int reps = 20) {
    std::vector<float> logits((size_t)n * V);
    for (size_t i = 0; i < logits.size(); i++) logits[i] = 3.0f * rlc_test::hash_uniform((uint32_t)i, 4242);
    std::vector<rlc_sample_key> keys(n);
    for (int i = 0; i < n; i++) keys[i] = {i / 16, i % 16, 40};
    float *dl = (float *)GPU->alloc(logits.size() * sizeof(float));
    GPU->upload(dl, logits.data(), logits.size() * sizeof(float));
    std::vector<int> tok(n);
    std::vector<float> lp(n), en(n);
    GPU->sample_tokens(tok.data(), lp.data(), en.data(), dl, V, n, V, &s, keys.data(), 1, 0); // warm-up
    const auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; r++)
        GPU->sample_tokens(tok.data(), lp.data(), en.data(), dl, V, n, V, &s, keys.data(), 1, (uint64_t)r);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / reps;
    printf("  timing: sample_tokens n=%d V=%d %s: %.3f ms per call (the logits once: %.0f GB/s)\n", n, V, what, ms,
           (double)logits.size() * sizeof(float) / (ms * 1e6));
    GPU->free(dl);
}

// A decode step's sampling (512 rows of V = 151936) with each kernel variant: greedy, plain and top-k/top-p.
static void time_variants(int reps) {
    for (int v = 0; v < 2; v++) {
        rlc_cuda_sample_set_variant(v);
        printf("  kernel variant %d:\n", v);
        time_sample(151936, 512, {1.0f, 0, 1.0f, 1}, "greedy", reps);
        time_sample(151936, 512, {1.0f, 0, 1.0f, 0}, "temperature 1", reps);
        time_sample(151936, 512, {0.7f, 50, 0.9f, 0}, "tau 0.7 top_k 50 top_p 0.9", reps);
    }
    rlc_cuda_sample_set_variant(0);
}
#endif

int main() {
    // First, before this process touches the device (a forked child must not inherit a CUDA context).
    rlc_test::expect_death(
        "temperature 0",
        [] {
            const rlc_ops *g = rlc_ops_cuda();
            rlc_sampling s = {0.0f, 0, 1.0f, 0};
            rlc_sample_key k = {0, 0, 0};
            int t;
            float *d = (float *)g->alloc(16 * sizeof(float));
            g->sample_tokens(&t, NULL, NULL, d, 16, 1, 16, &s, &k, 1, 0);
        },
        "sample_tokens: temperature 0");
    GPU = rlc_ops_cuda();
    rlc_ops_cuda_set_precision(RLC_CUDA_FP32); // sampling reads fp32 logits in every mode; fp32 for the other entries used
    CPU = rlc_ops_cpu();
#ifndef RLC_EMU
    // RLC_SAMPLE_TIME_ONLY=R: only the timings, R repetitions each (tests/gpu/profile.sh runs Nsight Compute on
    // them with R = 1: per variant, a warm-up and one timed call of each configuration).
    if (const char *e = getenv("RLC_SAMPLE_TIME_ONLY")) {
        time_variants(atoi(e) > 0 ? atoi(e) : 1);
        rlc_ops_cuda_release();
        return test_finish("test_sample (timings only)");
    }
#endif

    test_sensitivity();

    const std::vector<rlc_sampling> all = all_configs();
    const std::vector<rlc_sampling> few = {{1.0f, 0, 1.0f, 1}, {1.0f, 0, 1.0f, 0}, {0.7f, 50, 0.9f, 0}};
    for (uint32_t v = 0; v < 2; v++) { // both kernel variants, the same cases (other rows: salt + 10 v)
        CHECK(rlc_cuda_sample_set_variant((int)v) == 0, "set_variant %u", v);
        test_sample(1, 3, false, all, 10 * v + 1);
        test_sample(2, 7, false, all, 10 * v + 2);
#ifdef RLC_EMU // variant 1 on fewer rows of V = 97 (still every row kind): 1024 fibers a block are the emulator's
        // slow case (with 21 and 9 rows, 38 s of the ASan build's 77 s)
        const int n97 = v ? 7 : 21, n97_shared = v ? 5 : 9;
#else
        const int n97 = 21, n97_shared = 9;
#endif
        test_sample(97, n97, false, all, 10 * v + 3);
        test_sample(97, n97_shared, true, all, 10 * v + 4); // one row for all keys
        test_sample(97, 5, false, few, 10 * v + 5, true);
        // variant 1: 80 KB of cache, then 160 KB below (the attribute must be raised for the bigger launch)
        test_sample(20000, 3, false, few, 10 * v + 10);
#ifdef RLC_EMU
        test_sample(5000, v ? 7 : 14, false, all, 10 * v + 6); // (1024 fibers a block: the emulator's slow case)
        test_sample(151936, 2, false, few, 10 * v + 7);
#else
        test_sample(5000, 140, false, all, 10 * v + 6);
        test_sample(151936, 14, false, all, 10 * v + 7);
        test_sample(151936, 512, false, {{1.0f, 0, 1.0f, 0}}, 10 * v + 8); // a decode step of 512 sequences
        test_sample(32000, 300, false, {{0.6f, 20, 0.95f, 0}, {1.0f, 0, 0.8f, 0}}, 10 * v + 9);
#endif
    }
    CHECK(rlc_cuda_sample_set_variant(2) == -1, "set_variant accepted 2");
    rlc_cuda_sample_set_variant(0);
#ifdef RLC_EMU
    test_variants_agree(5000, 8, few, 21);
    test_variants_agree(151936, 2, {{1.0f, 0, 1.0f, 0}}, 22);
#else
    test_variants_agree(5000, 64, all_configs(), 21);
    test_variants_agree(151936, 64, all_configs(), 22);
    time_variants(20);
#endif
    printf("sampling: %ld rows compared, %ld boundary cases (allowed %ld), %ld exact ties of flat rows; logp worst %.3g, "
           "entropy worst %.3g of the tolerance\n",
           g_tot.rows, g_tot.boundary, g_tot.rows / 1000, g_tot.ties, g_tot.worst_lp, g_tot.worst_ent);
    CHECK(g_tot.boundary <= g_tot.rows / 1000, "%ld boundary cases in %ld rows", g_tot.boundary, g_tot.rows);
    rlc_ops_cuda_release();
    return test_finish("test_sample");
}
