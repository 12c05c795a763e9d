// tests/test_torch_ref.c: agreement with an independent PyTorch implementation (tools/torch_reference.py).
// The fixture tests/fixtures/torch_ref/ holds a small random Qwen2-style model (HF config.json +
// model.safetensors) and expected.safetensors: a packed batch of 3 sequences (tokens, targets with some
// ignored, cu_seqlens) with the logits, the SFT token-mean loss and the gradient of every parameter, all
// computed by torch in float64. The model is loaded through the HF config and checkpoint readers, run forward
// and backward on the CPU ops in float, and every quantity is compared. A wrong RoPE convention, GQA mapping,
// mask, norm or a misnamed tensor moves these far outside the tolerances.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rlc/checkpoint.h"
#include "rlc/model.h"
#include "rlc/safetensors.h"
#include "test_util.h"

#define FIXTURE RLC_SOURCE_DIR "/tests/fixtures/torch_ref/"

// Errors of got against want (n values): max |d| / max |want| and ||d|| / ||want||.
typedef struct { double max_rel, norm_rel, max_abs, ref_max; } err_stats;

static err_stats compare(const rlc_f *got, const rlc_f *want, size_t n) {
    double md = 0, mw = 0, sd = 0, sw = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (!(d == d)) d = INFINITY; // NaN counts as a failure
        if (d > md) md = d;
        if (fabs((double)want[i]) > mw) mw = fabs((double)want[i]);
        sd += d * d;
        sw += (double)want[i] * want[i];
    }
    err_stats e = {md / (mw > 0 ? mw : 1e-30), sqrt(sd) / (sw > 0 ? sqrt(sw) : 1e-30), md, mw};
    return e;
}

// A tensor of the expected file as rlc_f (n_expect values); NULL (and a failed check) if missing or mis-sized.
static rlc_f *load_float(const rlc_st_file *f, const char *name, size_t n_expect) {
    const rlc_st_tensor *t = rlc_st_find(f, name);
    CHECK(t != NULL, "%s: missing tensor %s", f->path, name);
    if (!t) return NULL;
    CHECK(t->numel == n_expect, "%s: %s has %zu values, expected %zu", f->path, name, t->numel, n_expect);
    if (t->numel != n_expect) return NULL;
    rlc_f *out = malloc(n_expect * sizeof(rlc_f));
    char err[256];
    int rc = rlc_st_to_float(f, t, out, err, sizeof err);
    CHECK(rc == 0, "%s", err);
    if (rc) {
        free(out);
        return NULL;
    }
    return out;
}

// An I32 tensor of the expected file (malloc'd), its length in *n.
static int *load_i32(const rlc_st_file *f, const char *name, int *n) {
    const rlc_st_tensor *t = rlc_st_find(f, name);
    CHECK(t != NULL && t->dtype == RLC_ST_I32, "%s: missing I32 tensor %s", f->path, name);
    if (!t || t->dtype != RLC_ST_I32) return NULL;
    int *out = malloc(t->numel * sizeof(int) + 1);
    memcpy(out, t->data, t->numel * sizeof(int)); // data is unaligned: copy; little-endian host assumed
    *n = (int)t->numel;
    return out;
}

int main(void) {
    char err[512];
    rlc_model_config cfg;
    int rc = rlc_checkpoint_read_hf_config(FIXTURE "config.json", &cfg, err, sizeof err);
    CHECK(rc == 0, "read config: %s", err);
    if (rc) return test_finish("test_torch_ref");
    CHECK(cfg.qkv_bias == 1 && cfg.tie_embeddings == 0 && cfg.n_kv_heads < cfg.n_heads,
          "fixture config should exercise q/k/v biases, an untied head and GQA");

    rlc_st_file ex;
    rc = rlc_st_open(&ex, FIXTURE "expected.safetensors", err, sizeof err);
    CHECK(rc == 0, "%s", err);
    if (rc) return test_finish("test_torch_ref");
    int T = 0, nt = 0, ncu = 0;
    int *tokens = load_i32(&ex, "tokens", &T), *targets = load_i32(&ex, "targets", &nt);
    int *cu = load_i32(&ex, "cu_seqlens", &ncu);
    if (!tokens || !targets || !cu || nt != T || ncu < 2 || cu[ncu - 1] != T) {
        CHECK(0, "expected.safetensors: inconsistent tokens/targets/cu_seqlens");
        return test_finish("test_torch_ref");
    }
    int B = ncu - 1, V = cfg.vocab_size;

    rlc_model m;
    CHECK(rlc_model_init(&m, &cfg, rlc_ops_cpu(), T) == 0, "model init");
    // Poison the parameters first so that a tensor the loader skipped could not pass by accident.
    for (size_t i = 0; i < m.n_params; i++) m.params[i] = (rlc_f)NAN;
    rc = rlc_checkpoint_load_model(&m, FIXTURE "model.safetensors", err, sizeof err);
    CHECK(rc == 0, "load model: %s", err);
    if (rc) return test_finish("test_torch_ref");

    // forward, logits, per-token log-probs (tau 1)
    rlc_model_forward(&m, tokens, cu, B, T);
    rlc_f *logits = malloc((size_t)T * V * sizeof(rlc_f)), *logp = malloc((size_t)T * sizeof(rlc_f));
    rlc_model_logits(&m, logits);
    rlc_model_logprobs(&m, targets, 1.0f, logp, NULL);

    rlc_f *want_logits = load_float(&ex, "logits", (size_t)T * V);
    rlc_f *want_loss = load_float(&ex, "loss", 1);
    if (want_logits) {
        err_stats e = compare(logits, want_logits, (size_t)T * V);
        printf("logits: max |d| %.3g (max |logit| %.3g), max rel %.3g, norm rel %.3g\n", e.max_abs, e.ref_max,
               e.max_rel, e.norm_rel);
        CHECK(e.max_rel <= 1e-4, "logits max rel error %.3g > 1e-4", e.max_rel);
        int bad = 0;
        for (size_t i = 0; i < (size_t)T * V; i++)
            if (!(fabs((double)logits[i] - want_logits[i]) <= 1e-5 + 1e-4 * fabs((double)want_logits[i]))) bad++;
        CHECK(bad == 0, "%d logits outside 1e-5 + 1e-4 |want|", bad);
    }
    // loss = -sum over valid targets of logp / n_valid; dL/dlogp = -1/n_valid there
    int n_valid = 0;
    for (int t = 0; t < T; t++) n_valid += targets[t] >= 0;
    CHECK(n_valid > 0 && n_valid < T, "fixture should have both valid and ignored targets (%d of %d)", n_valid, T);
    double loss = 0;
    for (int t = 0; t < T; t++)
        if (targets[t] >= 0) loss -= (double)logp[t];
    loss /= n_valid;
    if (want_loss) {
        double rel = fabs(loss - want_loss[0]) / fabs((double)want_loss[0]);
        printf("loss: %.9g, torch %.9g, rel %.3g\n", loss, (double)want_loss[0], rel);
        CHECK(rel <= 1e-4, "loss rel error %.3g > 1e-4", rel);
    }

    // backward of the SFT token mean
    rlc_f *dlogp = malloc((size_t)T * sizeof(rlc_f));
    for (int t = 0; t < T; t++) dlogp[t] = targets[t] >= 0 ? (rlc_f)(-1.0 / n_valid) : 0;
    rlc_model_zero_grad(&m);
    rlc_model_backward(&m, dlogp, NULL, NULL);
    rlc_f *grads = malloc(m.n_params * sizeof(rlc_f));
    m.ops->download(grads, m.grads, m.n_params * sizeof(rlc_f));

    // every parameter of the model has a torch gradient, and nothing else is in the file
    int n_grads = 0;
    double worst_max = 0, worst_norm = 0;
    const char *worst_name = "";
    for (int i = 0; i < m.n_tensors; i++) {
        const rlc_tensor_info *ti = &m.tensors[i];
        if (cfg.tie_embeddings && strcmp(ti->name, "lm_head.weight") == 0) continue;
        char name[128];
        snprintf(name, sizeof name, "grad.%s", ti->name);
        rlc_f *want = load_float(&ex, name, ti->numel);
        if (!want) continue;
        n_grads++;
        err_stats e = compare(grads + ti->offset, want, ti->numel);
        printf("  %-48s max|g| %.3g  max rel %.3g  norm rel %.3g\n", name, e.ref_max, e.max_rel, e.norm_rel);
        CHECK(e.ref_max > 0, "%s: torch gradient is zero, the fixture does not exercise it", name);
        CHECK(e.max_rel <= 1e-3, "%s: max rel error %.3g > 1e-3", name, e.max_rel);
        CHECK(e.norm_rel <= 1e-3, "%s: norm rel error %.3g > 1e-3", name, e.norm_rel);
        if (e.max_rel > worst_max) {
            worst_max = e.max_rel;
            worst_name = ti->name;
        }
        if (e.norm_rel > worst_norm) worst_norm = e.norm_rel;
        free(want);
    }
    int n_file_grads = 0;
    for (int i = 0; i < ex.n_tensors; i++) n_file_grads += strncmp(ex.tensors[i].name, "grad.", 5) == 0;
    CHECK(n_grads == n_file_grads, "compared %d gradients, the fixture has %d", n_grads, n_file_grads);
    printf("gradients: %d tensors, worst max rel %.3g (%s), worst norm rel %.3g\n", n_grads, worst_max,
           worst_name, worst_norm);

    free(grads);
    free(dlogp);
    free(logits);
    free(logp);
    free(want_logits);
    free(want_loss);
    free(tokens);
    free(targets);
    free(cu);
    rlc_st_close(&ex);
    rlc_model_free(&m);
    return test_finish("test_torch_ref");
}
