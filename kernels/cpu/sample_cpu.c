// kernels/cpu/sample_cpu.c: next-token sampling on the CPU: rlc_sample_token (the specification, declared in
// include/rlc/sample.h) and the CPU backend's batched sample_tokens entry, which is rlc_sample_token row by row
// with the rollout's Philox uniforms. Rows are independent (each has its own key), so the OpenMP split over rows
// changes nothing in the results.
#include <math.h>
#include <stdlib.h>

#include "cpu_common.h"
#include "rlc/rng.h"
#include "rlc/sample.h"
#include "rlc/util.h"

typedef struct prob_id {
    double p;
    int id;
} prob_id;

static int cmp_prob_desc(const void *a, const void *b) {
    const prob_id *x = a, *y = b;
    if (x->p > y->p) return -1;
    if (x->p < y->p) return 1;
    return x->id - y->id; // deterministic tie-break
}

int rlc_sample_token(const rlc_f *logits, int V, const rlc_sampling *s, float u, float *logp, float *ent) {
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
        prob_id *pi = rlc_malloc((size_t)V * sizeof(prob_id));
        for (int j = 0; j < V; j++) {
            pi[j].p = exp(((double)logits[j] - mx) / tau - lse);
            pi[j].id = j;
        }
        qsort(pi, (size_t)V, sizeof(prob_id), cmp_prob_desc);
        int keep = V;
        if (s->top_k > 0 && s->top_k < keep) keep = s->top_k;
        if (s->top_p < 1.0f) {
            double c = 0;
            for (int j = 0; j < keep; j++) {
                c += pi[j].p;
                if (c >= s->top_p) {
                    keep = j + 1;
                    break;
                }
            }
        }
        double total = 0;
        for (int j = 0; j < keep; j++) total += pi[j].p;
        double target = (double)u * total, c = 0;
        tok = pi[keep - 1].id;
        for (int j = 0; j < keep; j++) {
            c += pi[j].p;
            if (target < c) {
                tok = pi[j].id;
                break;
            }
        }
        free(pi);
    }
    if (logp) *logp = (float)(((double)logits[tok] - mx) / tau - lse);
    if (ent) *ent = (float)(lse - sum_pu / sum);
    return tok;
}

void cpu_sample_tokens(int *tok, float *logp, float *ent, const rlc_f *logits, size_t ld, int n, int V,
                       const struct rlc_sampling *s, const struct rlc_sample_key *keys, uint64_t seed, uint64_t step) {
    if (n <= 0) return;
    RLC_CHECK(V >= 1, "sample_tokens: vocabulary of %d tokens", V);
    RLC_CHECK(s->greedy || s->temperature > 0, "sample_tokens: temperature %g (must be > 0 unless greedy)",
              (double)s->temperature);
#pragma omp parallel for schedule(dynamic, 1) if (n > 1 && (size_t)n * V > 100000)
    for (int i = 0; i < n; i++) {
        const rlc_sample_key *k = &keys[i];
        float u = s->greedy ? 0.0f
                            : rlc_rng_uniform(seed, step, (uint64_t)k->prompt_id, (uint64_t)k->sample_id,
                                              (uint64_t)k->position, 0);
        float lp, en;
        tok[i] = rlc_sample_token(logits + (size_t)i * ld, V, s, u, &lp, &en);
        if (logp) logp[i] = lp;
        if (ent) ent[i] = en;
    }
}
