// tests/test_checkpoint.c: checkpoints on the model's tensor table: bitwise save/load round trips (untied with
// qkv biases and a value head; tied, where lm_head is not written), HF config.json written and read back,
// train state and AdamW moments, validation (wrong shape, missing, unexpected, wrong dtype tensors; a failed
// load leaves the model untouched), BF16 files converted, and crash safety: interrupted saves (partial .tmp
// dirs, a same-name save stopped between its renames) leave the previous checkpoint loadable; pruning.
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rlc/checkpoint.h"
#include "rlc/safetensors.h"
#include "rlc/util.h"
#include "test_util.h"

static char base[512];

static rlc_model_config small_cfg(int tied, int bias, int value_head) {
    rlc_model_config c = {.vocab_size = 98, .dim = 16, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                          .head_dim = 4, .hidden_dim = 24, .max_seq_len = 32, .rms_eps = 1e-5f,
                          .rope_theta = 10000.0f, .qkv_bias = bias, .tie_embeddings = tied,
                          .value_head = value_head};
    return c;
}

static int model_new(rlc_model *m, rlc_model_config c, uint64_t seed) {
    if (rlc_model_init(m, &c, rlc_ops_cpu(), 8) != 0) return -1;
    rlc_model_init_weights(m, seed);
    return 0;
}

static int same_params(const rlc_model *a, const rlc_model *b) {
    return a->n_params == b->n_params && memcmp(a->params, b->params, a->n_params * sizeof(rlc_f)) == 0;
}


static int exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

static void root_path(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", base, name); }

static void test_roundtrip(int tied, int bias, int vh) {
    char root[600], p[900], err[1024];
    root_path(root, sizeof root, tied ? "rt_tied" : "rt_untied");
    test_rm_tree(root);
    rlc_model a, b;
    if (model_new(&a, small_cfg(tied, bias, vh), 1) || model_new(&b, small_cfg(tied, bias, vh), 2)) {
        CHECK(0, "model init");
        return;
    }
    CHECK(!same_params(&a, &b), "different seeds give different weights");
    rlc_config cfg;
    CHECK(rlc_config_parse(&cfg, NULL, NULL, NULL, 0, err, sizeof err) == 0, "default config: %s", err);
    cfg.model = a.cfg;
    rlc_train_state st = {.step = 5, .phase = 1};
    CHECK(rlc_checkpoint_save(&a, &cfg, root, &st, NULL, NULL, err, sizeof err) == 0, "save: %s", err);
    // layout
    const char *files[] = {"latest", "ckpt-rl-000005/model.safetensors", "ckpt-rl-000005/config.json",
                           "ckpt-rl-000005/rlc_config.json", "ckpt-rl-000005/train_state.safetensors"};
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s/%s", root, files[i]);
        CHECK(exists(p), "%s missing", p);
    }
    CHECK(rlc_checkpoint_load_model(&b, root, err, sizeof err) == 0, "load: %s", err);
    CHECK(same_params(&a, &b), "round trip not bitwise (tied %d)", tied);

    // model.safetensors: HF names, no lm_head when tied, every tensor of the table otherwise
    snprintf(p, sizeof p, "%s/ckpt-rl-000005/model.safetensors", root);
    rlc_st_file f;
    if (rlc_st_open(&f, p, err, sizeof err) == 0) {
        CHECK(f.n_tensors == a.n_tensors, "tensor count %d vs %d", f.n_tensors, a.n_tensors);
        CHECK((rlc_st_find(&f, "lm_head.weight") != NULL) == !tied, "lm_head present iff untied");
        CHECK(rlc_st_find(&f, "model.layers.1.mlp.down_proj.weight") != NULL, "HF names");
        CHECK((rlc_st_find(&f, "model.layers.0.self_attn.q_proj.bias") != NULL) == bias, "q bias iff qkv_bias");
        const rlc_st_tensor *t = rlc_st_find(&f, "model.embed_tokens.weight");
        CHECK(t && t->dtype == RLC_ST_F32 && t->ndim == 2 && t->shape[0] == 98 && t->shape[1] == 16, "embed shape");
        rlc_st_close(&f);
    } else {
        CHECK(0, "open: %s", err);
    }
    // loading the checkpoint directory or the file directly works too
    rlc_model_init_weights(&b, 3);
    snprintf(p, sizeof p, "%s/ckpt-rl-000005", root);
    CHECK(rlc_checkpoint_load_model(&b, p, err, sizeof err) == 0 && same_params(&a, &b), "load dir: %s", err);
    rlc_model_init_weights(&b, 3);
    snprintf(p, sizeof p, "%s/ckpt-rl-000005/model.safetensors", root);
    CHECK(rlc_checkpoint_load_model(&b, p, err, sizeof err) == 0 && same_params(&a, &b), "load file: %s", err);

    // HF config.json
    snprintf(p, sizeof p, "%s/ckpt-rl-000005/config.json", root);
    size_t len;
    char *text = rlc_read_file(p, &len);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    CHECK(j != NULL, "config.json parses");
    if (j) {
        const cJSON *arch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "architectures"), 0);
        CHECK(arch && strcmp(arch->valuestring, bias ? "Qwen2ForCausalLM" : "LlamaForCausalLM") == 0, "architectures");
        CHECK(cJSON_GetObjectItemCaseSensitive(j, "hidden_size")->valueint == 16, "hidden_size");
        CHECK(cJSON_GetObjectItemCaseSensitive(j, "num_key_value_heads")->valueint == 2, "kv heads");
        CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "tie_word_embeddings")) == tied, "tie");
        CHECK(strcmp(cJSON_GetObjectItemCaseSensitive(j, "torch_dtype")->valuestring, "float32") == 0, "dtype");
        CHECK(cJSON_GetObjectItemCaseSensitive(j, "rms_norm_eps")->valuedouble == (double)1e-5, "eps printed as 1e-05");
    }
    cJSON_Delete(j);
    free(text);
    rlc_model_config rc;
    CHECK(rlc_checkpoint_read_hf_config(root, &rc, err, sizeof err) == 0, "read hf config: %s", err);
    CHECK(memcmp(&rc, &a.cfg, sizeof rc) == 0, "HF config round trip differs");
    // rlc_config.json is the full config
    rlc_config back;
    snprintf(p, sizeof p, "%s/ckpt-rl-000005/rlc_config.json", root);
    CHECK(rlc_config_load(&back, p, NULL, 0, err, sizeof err) == 0, "rlc_config.json: %s", err);
    CHECK(strcmp(back.source, p) == 0, "source %s", back.source);
    memset(back.source, 0, sizeof back.source);
    memset(cfg.source, 0, sizeof cfg.source);
    CHECK(memcmp(&back, &cfg, sizeof cfg) == 0, "rlc_config.json round trip differs");
    rlc_model_free(&a);
    rlc_model_free(&b);
}

// Write a model.safetensors with the model's tensors, optionally dropping one, adding one, converting to BF16,
// or giving one a wrong dtype.
typedef struct file_opts {
    const char *drop, *extra, *bad_dtype;
    int bf16;
} file_opts;

static uint16_t to_bf16(float x) { // round to nearest even on the upper 16 bits
    uint32_t u;
    memcpy(&u, &x, 4);
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

static int write_custom(const rlc_model *m, const char *path, file_opts o, char *err, size_t errlen) {
    rlc_st_entry *es = calloc((size_t)m->n_tensors + 1, sizeof *es);
    uint16_t *bf = malloc(m->n_params * sizeof(uint16_t));
    for (size_t i = 0; i < m->n_params; i++) bf[i] = to_bf16((float)m->params[i]);
    int n = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const rlc_tensor_info *t = &m->tensors[i];
        if (o.drop && strcmp(o.drop, t->name) == 0) continue;
        rlc_st_entry *e = &es[n++];
        e->name = t->name;
        e->ndim = t->ndim;
        for (int d = 0; d < t->ndim; d++) e->shape[d] = t->shape[d];
        int bad = o.bad_dtype && strcmp(o.bad_dtype, t->name) == 0;
        e->dtype = bad ? RLC_ST_I32 : o.bf16 ? RLC_ST_BF16 : RLC_ST_F32;
        e->data = o.bf16 ? (const void *)(bf + t->offset) : (const void *)(m->params + t->offset);
    }
    if (o.extra) {
        es[n] = es[0];
        es[n].name = o.extra;
        n++;
    }
    int rc = rlc_st_write(path, es, n, NULL, 0, err, errlen);
    free(es);
    free(bf);
    return rc;
}

static void expect_load_fail(rlc_model *m, const char *path, const char *s1, const char *s2, int line) {
    char err[1024] = "";
    rlc_f *before = malloc(m->n_params * sizeof(rlc_f));
    memcpy(before, m->params, m->n_params * sizeof(rlc_f));
    int rc = rlc_checkpoint_load_model(m, path, err, sizeof err);
    CHECK(rc == -1, "line %d: bad checkpoint accepted", line);
    CHECK(strstr(err, path) != NULL || strstr(err, "model.safetensors") != NULL, "line %d: \"%s\" lacks the file",
          line, err);
    if (s1) CHECK(strstr(err, s1) != NULL, "line %d: \"%s\" lacks \"%s\"", line, err, s1);
    if (s2) CHECK(strstr(err, s2) != NULL, "line %d: \"%s\" lacks \"%s\"", line, err, s2);
    CHECK(memcmp(before, m->params, m->n_params * sizeof(rlc_f)) == 0, "line %d: failed load changed params", line);
    free(before);
}

static void test_validation(void) {
    char dir[600], p[700], err[1024];
    root_path(dir, sizeof dir, "val");
    test_rm_tree(dir);
    mkdir(dir, 0755);
    rlc_model a, b, wide;
    rlc_model_config wc = small_cfg(0, 1, 0);
    wc.hidden_dim = 32;
    if (model_new(&a, small_cfg(0, 1, 0), 1) || model_new(&b, small_cfg(0, 1, 0), 2) || model_new(&wide, wc, 4)) {
        CHECK(0, "model init");
        return;
    }
    snprintf(p, sizeof p, "%s/m.safetensors", dir);
    // missing tensor
    CHECK(write_custom(&a, p, (file_opts){.drop = "model.layers.1.input_layernorm.weight"}, err, sizeof err) == 0,
          "%s", err);
    expect_load_fail(&b, p, "missing tensor", "model.layers.1.input_layernorm.weight", __LINE__);
    CHECK(write_custom(&a, p, (file_opts){.drop = "lm_head.weight"}, err, sizeof err) == 0, "%s", err);
    expect_load_fail(&b, p, "\"lm_head.weight\"", "tie_embeddings", __LINE__);
    // unexpected tensor
    CHECK(write_custom(&a, p, (file_opts){.extra = "model.layers.7.mlp.up_proj.weight"}, err, sizeof err) == 0,
          "%s", err);
    expect_load_fail(&b, p, "unexpected tensor", "model.layers.7.mlp.up_proj.weight", __LINE__);
    // wrong dtype
    CHECK(write_custom(&a, p, (file_opts){.bad_dtype = "model.norm.weight"}, err, sizeof err) == 0, "%s", err);
    expect_load_fail(&b, p, "model.norm.weight", "dtype I32", __LINE__);
    // wrong shape: the file of a model with hidden_dim 32
    CHECK(write_custom(&wide, p, (file_opts){0}, err, sizeof err) == 0, "%s", err);
    expect_load_fail(&b, p, "shape [32, 16]", "[24, 16]", __LINE__);
    // a value head in the file but not in the model, and the other way round
    rlc_model v;
    if (model_new(&v, small_cfg(0, 1, 1), 5) == 0) {
        CHECK(write_custom(&v, p, (file_opts){0}, err, sizeof err) == 0, "%s", err);
        expect_load_fail(&b, p, "unexpected tensor", "value_head", __LINE__);
        CHECK(write_custom(&b, p, (file_opts){0}, err, sizeof err) == 0, "%s", err);
        expect_load_fail(&v, p, "missing tensor", "value_head", __LINE__);
        rlc_model_free(&v);
    }
    // truncated file and a missing checkpoint
    CHECK(write_custom(&a, p, (file_opts){0}, err, sizeof err) == 0, "%s", err);
    CHECK(truncate(p, 100) == 0, "truncate");
    expect_load_fail(&b, p, NULL, NULL, __LINE__);
    snprintf(p, sizeof p, "%s/nothing-here", dir);
    expect_load_fail(&b, p, "nothing-here", NULL, __LINE__);

    // BF16 accepted and converted: values equal the bf16-rounded parameters
    snprintf(p, sizeof p, "%s/bf16.safetensors", dir);
    CHECK(write_custom(&a, p, (file_opts){.bf16 = 1}, err, sizeof err) == 0, "%s", err);
    CHECK(rlc_checkpoint_load_model(&b, p, err, sizeof err) == 0, "bf16 load: %s", err);
    size_t bad = 0;
    double maxrel = 0;
    for (size_t i = 0; i < a.n_params; i++) {
        uint32_t u = (uint32_t)to_bf16((float)a.params[i]) << 16;
        float want;
        memcpy(&want, &u, 4);
        if ((float)b.params[i] != want) bad++;
        double rel = fabs((double)b.params[i] - (double)a.params[i]) / (fabs((double)a.params[i]) + 1e-30);
        if (rel > maxrel) maxrel = rel;
    }
    CHECK(bad == 0, "%zu bf16 values differ", bad);
    CHECK(maxrel <= 1.0 / 256, "bf16 relative error %g", maxrel);

    // a tied model ignores an lm_head.weight stored alongside the embeddings (some HF checkpoints do this)
    rlc_model t;
    if (model_new(&t, small_cfg(1, 1, 0), 6) == 0) {
        snprintf(p, sizeof p, "%s/tied_extra.safetensors", dir);
        CHECK(write_custom(&t, p, (file_opts){.extra = "lm_head.weight"}, err, sizeof err) == 0, "%s", err);
        rlc_model t2;
        if (model_new(&t2, small_cfg(1, 1, 0), 7) == 0) {
            CHECK(rlc_checkpoint_load_model(&t2, p, err, sizeof err) == 0 && same_params(&t, &t2),
                  "tied + lm_head: %s", err);
            rlc_model_free(&t2);
        }
        rlc_model_free(&t);
    }

    // an HF Llama config without the optional keys
    snprintf(p, sizeof p, "%s/config.json", dir);
    FILE *f = fopen(p, "w");
    fputs("{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"hidden_size\":64,"
          "\"intermediate_size\":172,\"num_attention_heads\":8,\"num_hidden_layers\":3,\"vocab_size\":320,"
          "\"rms_norm_eps\":1e-06,\"max_position_embeddings\":256}",
          f);
    fclose(f);
    rlc_model_config hc;
    CHECK(rlc_checkpoint_read_hf_config(dir, &hc, err, sizeof err) == 0, "hf config: %s", err);
    CHECK(hc.dim == 64 && hc.n_kv_heads == 8 && hc.head_dim == 8 && hc.n_layers == 3 && hc.hidden_dim == 172 &&
              hc.vocab_size == 320 && hc.max_seq_len == 256 && hc.rope_theta == 10000.0f && !hc.qkv_bias &&
              !hc.tie_embeddings && hc.rms_eps == 1e-6f,
          "hf config defaults");
    f = fopen(p, "w");
    fputs("{\"model_type\":\"gpt2\",\"hidden_size\":64,\"intermediate_size\":172,\"num_attention_heads\":8,"
          "\"num_hidden_layers\":3,\"vocab_size\":320}",
          f);
    fclose(f);
    CHECK(rlc_checkpoint_read_hf_config(p, &hc, err, sizeof err) == -1 && strstr(err, "gpt2") && strstr(err, p),
          "unsupported model_type: %s", err);
    f = fopen(p, "w");
    fputs("{\"model_type\":\"llama\",\"hidden_size\":64}", f);
    fclose(f);
    CHECK(rlc_checkpoint_read_hf_config(p, &hc, err, sizeof err) == -1 && strstr(err, "intermediate_size"),
          "missing key: %s", err);
    rlc_model_free(&a);
    rlc_model_free(&b);
    rlc_model_free(&wide);
}

static void fill(rlc_f *x, size_t n, uint64_t seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (rlc_f)((double)(seed >> 11) / 9007199254740992.0 - 0.5);
    }
}

static void test_state(void) {
    char root[600], err[1024];
    root_path(root, sizeof root, "state");
    test_rm_tree(root);
    rlc_model a, b;
    if (model_new(&a, small_cfg(1, 0, 1), 1) || model_new(&b, small_cfg(1, 0, 1), 2)) {
        CHECK(0, "model init");
        return;
    }
    size_t n = a.n_params;
    rlc_f *m = malloc(n * sizeof(rlc_f)), *v = malloc(n * sizeof(rlc_f));
    rlc_f *m2 = calloc(n, sizeof(rlc_f)), *v2 = calloc(n, sizeof(rlc_f));
    fill(m, n, 11);
    fill(v, n, 12);
    for (size_t i = 0; i < n; i++) v[i] = v[i] * v[i];
    rlc_train_state st = {.step = 123, .phase = 0, .rng_seed = UINT64_MAX - 3, .data_pos = 12345678901234ull,
                          .kl_beta = 0.012345678901234567, .opt_t = 77};
    CHECK(rlc_train_state_set(&st, "best_eval", 0.75) == 0, "set extra");
    CHECK(rlc_train_state_set(&st, "tiny", -1e-300) == 0, "set extra");
    CHECK(rlc_train_state_set(&st, "best_eval", 0.8) == 0 && st.n_extra == 2, "overwrite extra");
    CHECK(rlc_train_state_set(&st, "a_name_that_is_much_too_long_for_the_table", 1) == -1, "long name rejected");
    CHECK(rlc_checkpoint_save(&a, NULL, root, &st, m, v, err, sizeof err) == 0, "save: %s", err);
    rlc_train_state got;
    memset(&got, 0x55, sizeof got);
    CHECK(rlc_checkpoint_load(&b, root, &got, m2, v2, err, sizeof err) == 0, "load: %s", err);
    CHECK(same_params(&a, &b), "params");
    CHECK(memcmp(m, m2, n * sizeof(rlc_f)) == 0 && memcmp(v, v2, n * sizeof(rlc_f)) == 0, "moments not bitwise");
    CHECK(got.step == 123 && got.phase == 0 && got.rng_seed == UINT64_MAX - 3 &&
              got.data_pos == 12345678901234ull && got.kl_beta == st.kl_beta && got.opt_t == 77,
          "state fields");
    double x;
    CHECK(rlc_train_state_get(&got, "best_eval", &x) == 1 && x == 0.8, "extra best_eval");
    CHECK(rlc_train_state_get(&got, "tiny", &x) == 1 && x == -1e-300, "extra tiny");
    CHECK(rlc_train_state_get(&got, "nope", &x) == 0, "missing extra");
    // moments of another model's shape are rejected, naming the tensor
    rlc_model w;
    rlc_model_config wc = small_cfg(1, 0, 1);
    wc.hidden_dim = 32;
    if (model_new(&w, wc, 1) == 0) {
        rlc_f *wm = calloc(w.n_params, sizeof(rlc_f)), *wv = calloc(w.n_params, sizeof(rlc_f));
        CHECK(rlc_checkpoint_load_state(&w, root, &got, wm, wv, err, sizeof err) == -1 &&
                  strstr(err, "adam_m.model.layers.0.mlp.gate_proj.weight") && strstr(err, "train_state.safetensors"),
              "moment shape: %s", err);
        free(wm);
        free(wv);
        rlc_model_free(&w);
    }
    // a weights-only save has a state but no moments
    char r2[600];
    root_path(r2, sizeof r2, "state_wo");
    test_rm_tree(r2);
    CHECK(rlc_checkpoint_save(&a, NULL, r2, &st, NULL, NULL, err, sizeof err) == 0, "save: %s", err);
    CHECK(rlc_checkpoint_load_state(&a, r2, &got, NULL, NULL, err, sizeof err) == 0 && got.step == 123,
          "state only: %s", err);
    CHECK(rlc_checkpoint_load_state(&a, r2, &got, m2, v2, err, sizeof err) == -1 && strstr(err, "no optimizer"),
          "moments requested: %s", err);
    free(m);
    free(v);
    free(m2);
    free(v2);
    rlc_model_free(&a);
    rlc_model_free(&b);
}

static int count_ckpt_dirs(const char *root) {
    DIR *d = opendir(root);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (strncmp(e->d_name, "ckpt-", 5) == 0) n++;
    if (d) closedir(d);
    return n;
}

static void test_atomicity(void) {
    char root[600], p[900], q[900], err[1024];
    root_path(root, sizeof root, "atomic");
    test_rm_tree(root);
    rlc_model a, b, c;
    if (model_new(&a, small_cfg(0, 1, 0), 1) || model_new(&b, small_cfg(0, 1, 0), 2) ||
        model_new(&c, small_cfg(0, 1, 0), 3)) {
        CHECK(0, "model init");
        return;
    }
    rlc_train_state st = {.step = 5, .phase = 1};
    CHECK(rlc_checkpoint_save(&a, NULL, root, &st, NULL, NULL, err, sizeof err) == 0, "save 5: %s", err);

    // 1. a save of step 10 interrupted while writing: a partial ckpt-rl-000010.tmp with a truncated
    //    model.safetensors, a stray tmp file of `latest`. The previous checkpoint still loads.
    snprintf(p, sizeof p, "%s/ckpt-rl-000010.tmp", root);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/ckpt-rl-000010.tmp/model.safetensors", root);
    FILE *f = fopen(p, "wb");
    fputs("\x40\x00\x00\x00\x00\x00\x00\x00{\"model.embed", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/latest.tmp.99999", root);
    f = fopen(p, "w");
    fputs("ckpt-rl-0000", f);
    fclose(f);
    rlc_train_state got;
    CHECK(rlc_checkpoint_load(&c, root, &got, NULL, NULL, err, sizeof err) == 0, "load after crash: %s", err);
    CHECK(same_params(&a, &c) && got.step == 5, "previous checkpoint after an interrupted save");

    // 2. a same-name save interrupted between its renames: ckpt-rl-000005 moved to .old, the new one still .tmp
    snprintf(p, sizeof p, "%s/ckpt-rl-000005", root);
    snprintf(q, sizeof q, "%s/ckpt-rl-000005.old", root);
    CHECK(rename(p, q) == 0, "simulate the first rename");
    rlc_model_init_weights(&c, 9);
    CHECK(rlc_checkpoint_load(&c, root, &got, NULL, NULL, err, sizeof err) == 0, "load from .old: %s", err);
    CHECK(same_params(&a, &c) && got.step == 5, ".old fallback");
    char res[1200];
    rlc_checkpoint_resolve(root, res, sizeof res);
    CHECK(strstr(res, "ckpt-rl-000005.old") != NULL, "resolve -> %s", res);

    // 3. the next save succeeds, points latest at itself, and cleans the leftovers
    st.step = 10;
    CHECK(rlc_checkpoint_save(&b, NULL, root, &st, NULL, NULL, err, sizeof err) == 0, "save 10: %s", err);
    CHECK(rlc_checkpoint_load(&c, root, &got, NULL, NULL, err, sizeof err) == 0, "load 10: %s", err);
    CHECK(same_params(&b, &c) && got.step == 10, "new checkpoint after recovery");
    snprintf(p, sizeof p, "%s/ckpt-rl-000010.tmp", root);
    snprintf(q, sizeof q, "%s/ckpt-rl-000005.old", root);
    CHECK(!exists(p) && !exists(q), "stale .tmp / .old removed");

    // 4. re-saving the same step replaces it; pruning keeps the newest RLC_CKPT_KEEP
    st.step = 10;
    CHECK(rlc_checkpoint_save(&a, NULL, root, &st, NULL, NULL, err, sizeof err) == 0, "resave 10: %s", err);
    CHECK(rlc_checkpoint_load(&c, root, &got, NULL, NULL, err, sizeof err) == 0 && same_params(&a, &c),
          "resave: %s", err);
    for (int s = 15; s <= 30; s += 5) {
        st.step = s;
        CHECK(rlc_checkpoint_save(s % 10 ? &b : &a, NULL, root, &st, NULL, NULL, err, sizeof err) == 0, "save %d: %s",
              s, err);
    }
    CHECK(count_ckpt_dirs(root) == RLC_CKPT_KEEP, "%d checkpoint dirs kept", count_ckpt_dirs(root));
    snprintf(p, sizeof p, "%s/ckpt-rl-000025", root);
    CHECK(exists(p), "second newest kept");
    CHECK(rlc_checkpoint_load(&c, root, &got, NULL, NULL, err, sizeof err) == 0 && got.step == 30 &&
              same_params(&a, &c),
          "latest after pruning: %s", err);
    // SFT checkpoints order before RL ones
    rlc_train_state sst = {.step = 999, .phase = 0};
    CHECK(rlc_checkpoint_save(&b, NULL, root, &sst, NULL, NULL, err, sizeof err) == 0, "save sft: %s", err);
    snprintf(p, sizeof p, "%s/ckpt-sft-000999", root);
    CHECK(exists(p), "latest is kept even when it sorts before others");
    snprintf(p, sizeof p, "%s/latest", root);
    char *lt = rlc_read_file(p, NULL);
    CHECK(lt && strcmp(lt, "ckpt-sft-000999\n") == 0, "latest = %s", lt ? lt : "(null)");
    free(lt);
    // a corrupted latest checkpoint is a clean error naming the file
    snprintf(p, sizeof p, "%s/ckpt-sft-000999/model.safetensors", root);
    CHECK(truncate(p, 50) == 0, "truncate");
    CHECK(rlc_checkpoint_load_model(&c, root, err, sizeof err) == -1 && strstr(err, "ckpt-sft-000999"),
          "corrupt: %s", err);
    // nothing there at all
    snprintf(p, sizeof p, "%s/empty_root", base);
    test_rm_tree(p);
    mkdir(p, 0755);
    CHECK(rlc_checkpoint_load(&c, p, &got, NULL, NULL, err, sizeof err) == -1 && strstr(err, "empty_root"),
          "empty root: %s", err);
    rlc_model_free(&a);
    rlc_model_free(&b);
    rlc_model_free(&c);
}

int main(void) {
    snprintf(base, sizeof base, "%s/test_checkpoint_tmp", RLC_BINARY_DIR);
    test_rm_tree(base);
    mkdir(base, 0755);
    test_roundtrip(0, 1, 1);
    test_roundtrip(1, 0, 0);
    test_validation();
    test_state();
    test_atomicity();
    return test_finish("test_checkpoint");
}
