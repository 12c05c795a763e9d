// tests/test_model.c: model behaviour in float: packing invariance (a sequence gives the same logits alone or
// packed with others: causal attention stays inside sequences, positions restart), and the KV-cache path
// (prefill + decode, slot copy) against the full forward.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rlc/model.h"
#include "test_util.h"

static double max_rel_diff(const float *a, const float *b, size_t n) {
    double md = 0, mx = 1e-6;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > md || isnan(d)) md = isnan(d) ? INFINITY : d;
        if (fabs(b[i]) > mx) mx = fabs(b[i]);
    }
    return md / mx;
}

int main(void) {
    rlc_model_config cfg = {.vocab_size = 40, .dim = 32, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                            .head_dim = 8, .hidden_dim = 48, .max_seq_len = 64, .rms_eps = 1e-5f,
                            .rope_theta = 10000.0f, .qkv_bias = 1, .tie_embeddings = 0, .value_head = 0};
    rlc_model m;
    CHECK(rlc_model_init(&m, &cfg, rlc_ops_cpu(), 128) == 0, "init");
    rlc_model_init_weights(&m, 3);
    for (size_t i = 0; i < m.n_params; i++) // break the symmetric init so every path matters
        m.params[i] += 0.05f * (float)sin((double)i * 1.7);
    int V = cfg.vocab_size;
    int seqA[23], seqB[17];
    for (int i = 0; i < 23; i++) seqA[i] = (i * 7 + 3) % V;
    for (int i = 0; i < 17; i++) seqB[i] = (i * 5 + 11) % V;

    // 1. packing invariance
    float *la = malloc(23 * V * sizeof(float)), *lab = malloc(40 * V * sizeof(float));
    int cuA[2] = {0, 23};
    rlc_model_forward(&m, seqA, cuA, 1, 23);
    rlc_model_logits(&m, la);
    int packed[40], cuBA[3] = {0, 17, 40};
    memcpy(packed, seqB, sizeof seqB);
    memcpy(packed + 17, seqA, sizeof seqA);
    rlc_model_forward(&m, packed, cuBA, 2, 40);
    rlc_model_logits(&m, lab);
    double d = max_rel_diff(lab + 17 * V, la, (size_t)23 * V);
    CHECK(d < 1e-5, "sequence A packed after B differs from A alone: %.3g", d);

    // 2. KV cache: prefill 10 tokens of A, decode the rest one by one; compare with the full forward logits
    rlc_kv_cache kv;
    CHECK(rlc_kv_cache_init(&kv, &m, 3, 64) == 0, "kv init");
    float *lg = malloc(2 * V * sizeof(float));
    rlc_model_prefill(&m, &kv, 1, seqA, 10, lg);
    d = max_rel_diff(lg, la + 9 * V, (size_t)V);
    CHECK(d < 1e-4, "prefill logits differ from full forward: %.3g", d);
    // share the prefix with slot 2 (the group's other samples), decode both slots together
    rlc_kv_cache_copy_slot(&kv, &m, 2, 1);
    CHECK(kv.len[2] == 10, "copied slot length %d", kv.len[2]);
    for (int t = 10; t < 23; t++) {
        int slots[2] = {1, 2}, toks[2] = {seqA[t], seqA[t]};
        rlc_model_decode(&m, &kv, slots, toks, 2, lg);
        d = max_rel_diff(lg, la + t * V, (size_t)V);
        CHECK(d < 1e-4, "decode logits at %d differ from full forward: %.3g", t, d);
        d = max_rel_diff(lg + V, la + t * V, (size_t)V);
        CHECK(d < 1e-4, "decode logits of copied slot at %d differ: %.3g", t, d);
    }
    // a slot with a different history decoded in the same batch must not leak into slot 1
    rlc_model_prefill(&m, &kv, 0, seqB, 17, lg);
    d = max_rel_diff(lg, lab + 16 * V, (size_t)V);
    CHECK(d < 1e-4, "prefill of B differs: %.3g", d);
    rlc_kv_cache_free(&kv, &m);
    free(la);
    free(lab);
    free(lg);
    rlc_model_free(&m);
    return test_finish("test_model");
}
