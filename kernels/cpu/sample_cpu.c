// kernels/cpu/sample_cpu.c: next-token sampling on the CPU: rlc_sample_token (the specification, declared in
// include/rlc/sample.h) and the CPU backend's batched sample_tokens entry, which is rlc_sample_token row by row
// with the rollout's Philox uniforms. Rows are independent (each has its own key), so the OpenMP split over rows
// changes nothing in the results.
//
// The order the specification walks (p descending, id ascending) comes from a stable LSD radix sort on the bits
// of p rather than a comparison sort (qsort): at V = 151936 a row took 25 ms with qsort and takes 4 ms now (one
// thread of the 2-core dev VM, 2026-11-28), most of it the exp calls. The order, and so every sum taken along it,
// is the same one, so the tokens do not change.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_common.h"
#include "rlc/rng.h"
#include "rlc/sample.h"
#include "rlc/util.h"

#define SMP_DIGIT_BITS 11
#define SMP_BUCKETS (1 << SMP_DIGIT_BITS)
#define SMP_PASSES 6 // 6 x 11 bits cover the 64-bit key

// Scratch of one row: two (key, id) buffers of V entries for the radix passes, and the passes' histograms.
typedef struct sample_scratch {
    uint64_t *key[2];                      // (V)
    int *id[2];                            // (V)
    size_t (*hist)[SMP_BUCKETS];           // (SMP_PASSES, SMP_BUCKETS)
} sample_scratch;

static void sample_scratch_init(sample_scratch *w, int V) {
    for (int b = 0; b < 2; b++) {
        w->key[b] = rlc_malloc((size_t)V * sizeof(uint64_t));
        w->id[b] = rlc_malloc((size_t)V * sizeof(int));
    }
    w->hist = rlc_malloc(SMP_PASSES * sizeof *w->hist);
}

static void sample_scratch_free(sample_scratch *w) {
    for (int b = 0; b < 2; b++) {
        free(w->key[b]);
        free(w->id[b]);
    }
    free(w->hist);
}

// p >= 0, so its bits read as an unsigned integer order like p; the complement orders like p descending.
static uint64_t sample_key(double p) {
    uint64_t b;
    memcpy(&b, &p, sizeof b);
    return ~b;
}

static double sample_key_p(uint64_t k) {
    const uint64_t b = ~k;
    double p;
    memcpy(&p, &b, sizeof p);
    return p;
}

// Sorts w->key[0] / w->id[0] (ids ascending on entry) by key ascending; stable, so equal keys keep ids ascending.
// Returns the buffer index holding the result. Passes whose digit is the same for every entry are skipped (the
// high bits of p's exponent usually are).
static int sample_radix_sort(sample_scratch *w, int n) {
    _Static_assert(SMP_PASSES * SMP_DIGIT_BITS >= 64, "digits cover the key");
    size_t(*hist)[SMP_BUCKETS] = w->hist;
    memset(hist, 0, SMP_PASSES * sizeof *hist);
    for (int j = 0; j < n; j++) {
        const uint64_t k = w->key[0][j];
        for (int d = 0; d < SMP_PASSES; d++) hist[d][(k >> (d * SMP_DIGIT_BITS)) & (SMP_BUCKETS - 1)]++;
    }
    int cur = 0;
    for (int d = 0; d < SMP_PASSES; d++) {
        const int shift = d * SMP_DIGIT_BITS;
        if (hist[d][(w->key[cur][0] >> shift) & (SMP_BUCKETS - 1)] == (size_t)n) continue; // one digit for all
        size_t off = 0;
        for (int b = 0; b < SMP_BUCKETS; b++) {
            const size_t c = hist[d][b];
            hist[d][b] = off;
            off += c;
        }
        const uint64_t *ks = w->key[cur];
        const int *is = w->id[cur];
        uint64_t *kd = w->key[cur ^ 1];
        int *id = w->id[cur ^ 1];
        for (int j = 0; j < n; j++) {
            const size_t o = hist[d][(ks[j] >> shift) & (SMP_BUCKETS - 1)]++;
            kd[o] = ks[j];
            id[o] = is[j];
        }
        cur ^= 1;
    }
    return cur;
}

static int sample_row(const rlc_f *logits, int V, const rlc_sampling *s, float u, float *logp, float *ent,
                      sample_scratch *w) {
    double tau = s->greedy ? 1.0 : (double)s->temperature;
    double mx = -INFINITY;
    int arg = 0;
    for (int j = 0; j < V; j++)
        if ((double)logits[j] > mx) {
            mx = logits[j];
            arg = j;
        }
    // softmax(z/tau) statistics in double
    double sum = 0, sum_pu = 0;
    for (int j = 0; j < V; j++) {
        double uj = ((double)logits[j] - mx) / tau;
        double e = exp(uj);
        sum += e;
        sum_pu += e * uj;
    }
    double lse = log(sum); // of (z - mx)/tau
    int tok = arg;
    if (!s->greedy) {
        for (int j = 0; j < V; j++) {
            w->key[0][j] = sample_key(exp(((double)logits[j] - mx) / tau - lse));
            w->id[0][j] = j;
        }
        const int b = sample_radix_sort(w, V);
        const uint64_t *key = w->key[b]; // p descending
        const int *id = w->id[b];        // id ascending among equal p
        int keep = V;
        if (s->top_k > 0 && s->top_k < keep) keep = s->top_k;
        if (s->top_p < 1.0f) {
            double c = 0;
            for (int j = 0; j < keep; j++) {
                c += sample_key_p(key[j]);
                if (c >= s->top_p) {
                    keep = j + 1;
                    break;
                }
            }
        }
        double total = 0;
        for (int j = 0; j < keep; j++) total += sample_key_p(key[j]);
        double target = (double)u * total, c = 0;
        tok = id[keep - 1];
        for (int j = 0; j < keep; j++) {
            c += sample_key_p(key[j]);
            if (target < c) {
                tok = id[j];
                break;
            }
        }
    }
    if (logp) *logp = (float)(((double)logits[tok] - mx) / tau - lse);
    if (ent) *ent = (float)(lse - sum_pu / sum);
    return tok;
}

int rlc_sample_token(const rlc_f *logits, int V, const rlc_sampling *s, float u, float *logp, float *ent) {
    sample_scratch w = {{NULL, NULL}, {NULL, NULL}, NULL};
    if (!s->greedy) sample_scratch_init(&w, V);
    const int tok = sample_row(logits, V, s, u, logp, ent, &w);
    if (!s->greedy) sample_scratch_free(&w);
    return tok;
}

void cpu_sample_tokens(int *tok, float *logp, float *ent, const rlc_f *logits, size_t ld, int n, int V,
                       const struct rlc_sampling *s, const struct rlc_sample_key *keys, uint64_t seed, uint64_t step) {
    if (n <= 0) return;
    RLC_CHECK(V >= 1, "sample_tokens: vocabulary of %d tokens", V);
    RLC_CHECK(s->greedy || s->temperature > 0, "sample_tokens: temperature %g (must be > 0 unless greedy)",
              (double)s->temperature);
#pragma omp parallel if (n > 1 && (size_t)n * V > 100000)
    {
        // one scratch per thread, reused by its rows
        sample_scratch w = {{NULL, NULL}, {NULL, NULL}, NULL};
        if (!s->greedy) sample_scratch_init(&w, V);
#pragma omp for schedule(dynamic, 1)
        for (int i = 0; i < n; i++) {
            const rlc_sample_key *k = &keys[i];
            float u = s->greedy ? 0.0f
                                : rlc_rng_uniform(seed, step, (uint64_t)k->prompt_id, (uint64_t)k->sample_id,
                                                  (uint64_t)k->position, 0);
            float lp, en;
            tok[i] = sample_row(logits + (size_t)i * ld, V, s, u, &lp, &en, &w);
            if (logp) logp[i] = lp;
            if (ent) ent[i] = en;
        }
        if (!s->greedy) sample_scratch_free(&w);
    }
}
