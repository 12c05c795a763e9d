// host/checkpoint.c: checkpoint directories (model.safetensors, HF config.json, rlc_config.json,
// train_state.safetensors), written atomically file by file and directory-wide, and loaded with every tensor
// validated against the model's table. The layout and the crash-safety argument are in
// include/rlc/checkpoint.h.
#define _POSIX_C_SOURCE 200809L
#include "rlc/checkpoint.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rlc/safetensors.h"
#include "rlc/util.h"
#include "json_util.h"

#define CK_PATH 1024

// out = a + sep + b (sep "/" or ""), cut to CK_PATH - 1 bytes (a cut path then fails to open, and the error
// names it). Written with memcpy so the compiler's truncation analysis stays quiet.
static void ck_join(char *out, const char *a, const char *sep, const char *b) {
    size_t na = strlen(a), ns = strlen(sep), nb = strlen(b), n = 0;
    char tmp[CK_PATH];
    const char *parts[3] = {a, sep, b};
    size_t lens[3] = {na, ns, nb};
    for (int i = 0; i < 3; i++) {
        size_t k = lens[i] < CK_PATH - 1 - n ? lens[i] : CK_PATH - 1 - n;
        memcpy(tmp + n, parts[i], k);
        n += k;
    }
    tmp[n] = 0;
    memcpy(out, tmp, n + 1);
}

// ---- train state extras ----

int rlc_train_state_set(rlc_train_state *st, const char *name, double value) {
    if (strlen(name) >= sizeof st->extra_name[0]) return -1;
    for (int i = 0; i < st->n_extra; i++)
        if (strcmp(st->extra_name[i], name) == 0) {
            st->extra[i] = value;
            return 0;
        }
    if (st->n_extra >= RLC_STATE_MAX_EXTRA) return -1;
    snprintf(st->extra_name[st->n_extra], sizeof st->extra_name[0], "%s", name);
    st->extra[st->n_extra++] = value;
    return 0;
}

int rlc_train_state_get(const rlc_train_state *st, const char *name, double *value) {
    for (int i = 0; i < st->n_extra; i++)
        if (strcmp(st->extra_name[i], name) == 0) {
            *value = st->extra[i];
            return 1;
        }
    return 0;
}

// ---- filesystem helpers ----

static int ck_is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}
static int ck_is_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

// mkdir -p
static int ck_mkdirs(const char *path, char *err, size_t errlen) {
    char p[CK_PATH];
    ck_join(p, path, "", "");
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            return rlc_errf(err, errlen, "%s: cannot create directory: %s", p, strerror(errno));
        *s = '/';
    }
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        return rlc_errf(err, errlen, "%s: cannot create directory: %s", p, strerror(errno));
    return 0;
}

// Remove a checkpoint directory. Checkpoint directories are flat (files only), so this never recurses.
static int ck_rmdir_flat(const char *path, char *err, size_t errlen) {
    DIR *d = opendir(path);
    if (!d) return errno == ENOENT ? 0 : rlc_errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    struct dirent *e;
    char p[CK_PATH];
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        ck_join(p, path, "/", e->d_name);
        if (remove(p) != 0) {
            int en = errno;
            closedir(d);
            return rlc_errf(err, errlen, "%s: cannot remove: %s", p, strerror(en));
        }
    }
    closedir(d);
    if (rmdir(path) != 0) return rlc_errf(err, errlen, "%s: cannot remove directory: %s", path, strerror(errno));
    return 0;
}

static void ck_strip_slash(char *p) {
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') p[--n] = 0;
}

static void ck_copy(char *out, size_t cap, const char *s) {
    if (!cap) return;
    size_t n = strlen(s);
    if (n >= cap) n = cap - 1;
    memcpy(out, s, n);
    out[n] = 0;
}

static int ck_has_model(const char *d) {
    char probe[CK_PATH];
    ck_join(probe, d, "/", "model.safetensors");
    return ck_is_file(probe);
}

// The name in <root>/latest (one line, a plain ckpt-* name); 0 on success.
static int ck_read_latest(const char *root, char *name, size_t cap) {
    char p[CK_PATH];
    ck_join(p, root, "/", "latest");
    size_t len = 0;
    char *text = rlc_read_file(p, &len);
    if (!text) return -1;
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' ')) text[--len] = 0;
    int ok = len > 0 && len < cap && !strchr(text, '/') && strcmp(text, "..") != 0 && strcmp(text, ".") != 0;
    if (ok) snprintf(name, cap, "%s", text);
    free(text);
    return ok ? 0 : -1;
}

void rlc_checkpoint_resolve(const char *dir, char *out, size_t cap) {
    char d[CK_PATH], name[256], c[CK_PATH], nm_old[300];
    ck_join(d, dir, "", "");
    ck_strip_slash(d);
    if (!ck_has_model(d) && ck_read_latest(d, name, sizeof name) == 0) {
        ck_join(c, d, "/", name);
        if (!ck_has_model(c)) {
            // a same-name save interrupted between moving the old copy aside and renaming the new one in
            ck_join(nm_old, name, "", ".old");
            ck_join(c, d, "/", nm_old);
            if (!ck_has_model(c)) ck_join(c, d, "/", name);
        }
        ck_copy(out, cap, c);
        return;
    }
    ck_copy(out, cap, d);
}

// ---- HF config ----

char *rlc_checkpoint_hf_config_json(const rlc_model_config *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON *arch = cJSON_AddArrayToObject(o, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString(c->qkv_bias ? "Qwen2ForCausalLM" : "LlamaForCausalLM"));
    cJSON_AddStringToObject(o, "model_type", c->qkv_bias ? "qwen2" : "llama");
    cJSON_AddNumberToObject(o, "hidden_size", c->dim);
    cJSON_AddNumberToObject(o, "intermediate_size", c->hidden_dim);
    cJSON_AddNumberToObject(o, "num_attention_heads", c->n_heads);
    cJSON_AddNumberToObject(o, "num_key_value_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(o, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(o, "num_hidden_layers", c->n_layers);
    cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
    cJSON_AddItemToObject(o, "rms_norm_eps", rlc_json_float(c->rms_eps));
    cJSON_AddItemToObject(o, "rope_theta", rlc_json_float(c->rope_theta));
    cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tie_embeddings);
    cJSON_AddNumberToObject(o, "max_position_embeddings", c->max_seq_len);
    if (!c->qkv_bias) {
        cJSON_AddBoolToObject(o, "attention_bias", 0);
        cJSON_AddBoolToObject(o, "mlp_bias", 0);
    }
    cJSON_AddStringToObject(o, "hidden_act", "silu");
    cJSON_AddNumberToObject(o, "bos_token_id", 1);
    cJSON_AddNumberToObject(o, "eos_token_id", 0);
    cJSON_AddStringToObject(o, "torch_dtype", "float32");
    // Not an HF key: the PPO value head ("value_head.weight/bias" in model.safetensors).
    if (c->value_head) cJSON_AddBoolToObject(o, "rlc_value_head", 1);
    return rlc_json_take_text(o);
}

static int hf_int(const char *fn, const cJSON *o, const char *key, int def, int required, int *out, char *err,
                  size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) return rlc_errf(err, errlen, "%s: missing key \"%s\"", fn, key);
        *out = def;
        return 0;
    }
    // range first: converting a double outside int's range (1e300) to int is undefined behaviour
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= INT_MIN && d <= INT_MAX) || floor(d) != d)
        return rlc_errf(err, errlen, "%s: \"%s\" must be an integer (of 32 bits)", fn, key);
    *out = (int)v->valuedouble;
    return 0;
}

static int hf_float(const char *fn, const cJSON *o, const char *key, float def, float *out, char *err,
                    size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v)) return rlc_errf(err, errlen, "%s: \"%s\" must be a number", fn, key);
    *out = (float)v->valuedouble;
    return 0;
}

static int hf_bool(const char *fn, const cJSON *o, const char *key, int def, int *out, char *err, size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsBool(v)) return rlc_errf(err, errlen, "%s: \"%s\" must be true or false", fn, key);
    *out = cJSON_IsTrue(v);
    return 0;
}

int rlc_checkpoint_read_hf_config(const char *path, rlc_model_config *out, char *err, size_t errlen) {
    char fn[CK_PATH], d[CK_PATH];
    if (ck_is_dir(path)) {
        rlc_checkpoint_resolve(path, d, sizeof d);
        ck_join(fn, d, "/", "config.json");
    } else {
        ck_join(fn, path, "", "");
    }
    char *text = rlc_read_text(fn, "the HF config", err, errlen);
    if (!text) return -1;
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithOpts(text, &end, 0);
    if (!o || !cJSON_IsObject(o)) {
        size_t pos = (o || !end) ? 0 : (size_t)(end - text);
        cJSON_Delete(o);
        free(text);
        return rlc_errf(err, errlen, "%s: not a JSON object (error near byte %zu)", fn, pos);
    }
    // whatever follows the object would be ignored: a file cut and pasted over, or two configs in one
    for (const char *p = end; *p; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            size_t pos = (size_t)(p - text);
            cJSON_Delete(o);
            free(text);
            return rlc_errf(err, errlen, "%s: trailing bytes after the JSON object (byte %zu)", fn, pos);
        }
    const cJSON *dup = rlc_json_duplicate(o);
    if (dup) {
        char name[64];
        snprintf(name, sizeof name, "%s", dup->string);
        cJSON_Delete(o);
        free(text);
        return rlc_errf(err, errlen, "%s: duplicate key \"%s\"", fn, name);
    }
    rlc_model_config c;
    memset(&c, 0, sizeof c);
    int rc = 0, attn_bias = 0;
    rc |= hf_int(fn, o, "hidden_size", 0, 1, &c.dim, err, errlen);
    if (!rc) rc |= hf_int(fn, o, "intermediate_size", 0, 1, &c.hidden_dim, err, errlen);
    if (!rc) rc |= hf_int(fn, o, "num_attention_heads", 0, 1, &c.n_heads, err, errlen);
    if (!rc) rc |= hf_int(fn, o, "num_hidden_layers", 0, 1, &c.n_layers, err, errlen);
    if (!rc) rc |= hf_int(fn, o, "vocab_size", 0, 1, &c.vocab_size, err, errlen);
    if (!rc) rc |= hf_int(fn, o, "num_key_value_heads", c.n_heads, 0, &c.n_kv_heads, err, errlen);
    if (!rc)
        rc |= hf_int(fn, o, "head_dim", c.n_heads > 0 ? c.dim / c.n_heads : 0, 0, &c.head_dim, err, errlen);
    if (!rc) rc |= hf_int(fn, o, "max_position_embeddings", 2048, 0, &c.max_seq_len, err, errlen);
    if (!rc) rc |= hf_float(fn, o, "rms_norm_eps", 1e-6f, &c.rms_eps, err, errlen);
    if (!rc) rc |= hf_float(fn, o, "rope_theta", 10000.0f, &c.rope_theta, err, errlen);
    if (!rc) rc |= hf_bool(fn, o, "tie_word_embeddings", 0, &c.tie_embeddings, err, errlen);
    if (!rc) rc |= hf_bool(fn, o, "attention_bias", 0, &attn_bias, err, errlen);
    if (!rc) rc |= hf_bool(fn, o, "rlc_value_head", 0, &c.value_head, err, errlen);
    if (!rc) {
        const cJSON *mt = cJSON_GetObjectItemCaseSensitive(o, "model_type");
        const char *type = cJSON_IsString(mt) ? mt->valuestring : "";
        if (strcmp(type, "qwen2") == 0) c.qkv_bias = 1;
        else if (strcmp(type, "llama") == 0 || strcmp(type, "mistral") == 0 || strcmp(type, "qwen3") == 0 ||
                 type[0] == 0)
            c.qkv_bias = 0;
        else rc = rlc_errf(err, errlen, "%s: model_type \"%s\" is not supported (expected llama or qwen2)", fn,
                           type);
        // Llama's attention_bias also adds an o_proj bias, which this model does not have.
        if (!rc && attn_bias && !c.qkv_bias)
            rc = rlc_errf(err, errlen, "%s: attention_bias true (q/k/v/o biases) is not supported for model_type "
                          "\"%s\"", fn, type);
    }
    cJSON_Delete(o);
    free(text);
    if (rc) return -1;
    char msg[256];
    if (rlc_model_config_check(&c, msg, sizeof msg) != 0) return rlc_errf(err, errlen, "%s: %s", fn, msg);
    *out = c;
    return 0;
}

// ---- save ----

// Parameters (or a moment buffer) from backend memory into a host float32 copy.
static float *ck_download_f32(const rlc_model *m, const rlc_f *src) {
    rlc_f *host = rlc_malloc(m->n_params * sizeof(rlc_f));
    m->ops->download(host, src, m->n_params * sizeof(rlc_f));
    if (sizeof(rlc_f) == sizeof(float)) return (float *)host;
    float *f = rlc_malloc(m->n_params * sizeof(float));
    for (size_t i = 0; i < m->n_params; i++) f[i] = (float)host[i];
    free(host);
    return f;
}

static void ck_entry(rlc_st_entry *e, const rlc_tensor_info *t, const char *name, const float *base) {
    memset(e, 0, sizeof *e);
    e->name = name;
    e->dtype = RLC_ST_F32;
    e->ndim = t->ndim;
    for (int d = 0; d < t->ndim; d++) e->shape[d] = t->shape[d];
    e->data = base + t->offset;
}

static int ck_write_model(const rlc_model *m, const char *path, char *err, size_t errlen) {
    float *host = ck_download_f32(m, m->params);
    rlc_st_entry *es = rlc_calloc((size_t)m->n_tensors, sizeof(rlc_st_entry));
    for (int i = 0; i < m->n_tensors; i++) ck_entry(&es[i], &m->tensors[i], m->tensors[i].name, host);
    const char *meta[] = {"format", "pt"};
    int rc = rlc_st_write(path, es, m->n_tensors, meta, 1, err, errlen);
    free(es);
    free(host);
    return rc;
}

static int ck_write_state(const rlc_model *m, const char *path, const rlc_train_state *st, const rlc_f *am,
                          const rlc_f *av, char *err, size_t errlen) {
    rlc_train_state zero;
    memset(&zero, 0, sizeof zero);
    if (!st) st = &zero;
    int has_moments = am && av;
    char vals[6 + RLC_STATE_MAX_EXTRA][40], keys[RLC_STATE_MAX_EXTRA][48];
    const char *meta[2 * (8 + RLC_STATE_MAX_EXTRA)];
    int nm = 0;
#define META(k, ...)                                                  \
    do {                                                              \
        snprintf(vals[nm], sizeof vals[nm], __VA_ARGS__);             \
        meta[2 * nm] = (k);                                           \
        meta[2 * nm + 1] = vals[nm];                                  \
        nm++;                                                         \
    } while (0)
    META("step", "%d", st->step);
    META("phase", "%d", st->phase);
    META("rng_seed", "%" PRIu64, st->rng_seed);
    META("data_pos", "%" PRIu64, st->data_pos);
    META("kl_beta", "%.17g", st->kl_beta);
    META("opt_t", "%d", st->opt_t);
    for (int i = 0; i < st->n_extra && i < RLC_STATE_MAX_EXTRA; i++) {
        snprintf(keys[i], sizeof keys[i], "extra.%s", st->extra_name[i]);
        META(keys[i], "%.17g", st->extra[i]);
    }
#undef META
    meta[2 * nm] = "has_moments";
    meta[2 * nm + 1] = has_moments ? "1" : "0";
    nm++;
    float *hm = NULL, *hv = NULL;
    rlc_st_entry *es = NULL;
    char(*names)[112] = NULL;
    int n = 0;
    if (has_moments) {
        hm = ck_download_f32(m, am);
        hv = ck_download_f32(m, av);
        es = rlc_calloc(2 * (size_t)m->n_tensors, sizeof(rlc_st_entry));
        names = rlc_calloc(2 * (size_t)m->n_tensors, sizeof *names);
        for (int i = 0; i < m->n_tensors; i++) {
            snprintf(names[n], sizeof names[n], "adam_m.%s", m->tensors[i].name);
            ck_entry(&es[n], &m->tensors[i], names[n], hm);
            n++;
            snprintf(names[n], sizeof names[n], "adam_v.%s", m->tensors[i].name);
            ck_entry(&es[n], &m->tensors[i], names[n], hv);
            n++;
        }
    }
    int rc = rlc_st_write(path, es, n, meta, nm, err, errlen);
    free(es);
    free(names);
    free(hm);
    free(hv);
    return rc;
}

// Parse "ckpt-<sft|rl>-<step>" (optionally followed by .tmp / .old); returns the order key or -1.
static long long ck_order(const char *name, int *is_plain) {
    int phase;
    const char *p;
    if (strncmp(name, "ckpt-sft-", 9) == 0) phase = 0, p = name + 9;
    else if (strncmp(name, "ckpt-rl-", 8) == 0) phase = 1, p = name + 8;
    else return -1;
    char *end;
    long long step = strtoll(p, &end, 10);
    if (end == p || step < 0) return -1;
    *is_plain = *end == 0;
    if (*end && strcmp(end, ".tmp") != 0 && strcmp(end, ".old") != 0) return -1;
    return (long long)phase * 1000000000LL + step;
}

// Remove stale .tmp / .old checkpoint directories and all but the newest RLC_CKPT_KEEP checkpoints (the one
// in `latest` is always kept).
static int ck_prune(const char *root, const char *latest, char *err, size_t errlen) {
    DIR *d = opendir(root);
    if (!d) return rlc_errf(err, errlen, "%s: cannot open: %s", root, strerror(errno));
    char names[256][64];
    long long keys[256];
    int n = 0, rc = 0;
    struct dirent *e;
    char p[CK_PATH];
    while ((e = readdir(d))) {
        int plain = 0;
        long long k = ck_order(e->d_name, &plain);
        if (k < 0 || strlen(e->d_name) >= sizeof names[0]) continue;
        ck_join(p, root, "/", e->d_name);
        if (!ck_is_dir(p)) continue;
        if (!plain) {
            if (rc == 0) rc = ck_rmdir_flat(p, err, errlen);
            continue;
        }
        if (n < 256) {
            memcpy(names[n], e->d_name, strlen(e->d_name) + 1); // length checked above
            keys[n++] = k;
        }
    }
    closedir(d);
    for (int i = 0; i < n && rc == 0; i++) {
        if (strcmp(names[i], latest) == 0) continue;
        int newer = 0;
        for (int j = 0; j < n; j++) newer += keys[j] > keys[i];
        if (newer >= RLC_CKPT_KEEP) {
            ck_join(p, root, "/", names[i]);
            rc = ck_rmdir_flat(p, err, errlen);
        }
    }
    return rc;
}

int rlc_checkpoint_save(const rlc_model *m, const rlc_config *cfg, const char *dir, const rlc_train_state *st,
                        const rlc_f *adam_m, const rlc_f *adam_v, char *err, size_t errlen) {
    char root[CK_PATH], name[64], d[CK_PATH], tmp[CK_PATH], old[CK_PATH], p[CK_PATH];
    if (strlen(dir) >= CK_PATH - 64) return rlc_errf(err, errlen, "%s: checkpoint path too long", dir);
    ck_join(root, dir, "", "");
    ck_strip_slash(root);
    snprintf(name, sizeof name, "ckpt-%s-%06d", st && st->phase == 1 ? "rl" : "sft", st ? st->step : 0);
    ck_join(d, root, "/", name);
    ck_join(tmp, d, "", ".tmp");
    ck_join(old, d, "", ".old");
    if (ck_mkdirs(root, err, errlen) != 0) return -1;
    // A crashed save may have left a partial <name>.tmp: it never holds the only copy of anything.
    if (ck_rmdir_flat(tmp, err, errlen) != 0) return -1;
    if (mkdir(tmp, 0755) != 0) return rlc_errf(err, errlen, "%s: cannot create directory: %s", tmp, strerror(errno));

    // 1. everything into <name>.tmp
    ck_join(p, tmp, "/", "model.safetensors");
    if (ck_write_model(m, p, err, errlen) != 0) return -1;
    char *hf = rlc_checkpoint_hf_config_json(&m->cfg);
    ck_join(p, tmp, "/", "config.json");
    int rc = rlc_write_file_atomic(p, hf, strlen(hf), err, errlen);
    free(hf);
    if (rc) return -1;
    if (cfg) {
        char *js = rlc_config_to_json(cfg);
        ck_join(p, tmp, "/", "rlc_config.json");
        rc = rlc_write_file_atomic(p, js, strlen(js), err, errlen);
        free(js);
        if (rc) return -1;
    }
    if (st || (adam_m && adam_v)) {
        ck_join(p, tmp, "/", "train_state.safetensors");
        if (ck_write_state(m, p, st, adam_m, adam_v, err, errlen) != 0) return -1;
    }
    if (rlc_fsync_dir(tmp, err, errlen) != 0) return -1;

    // 2. rename into place (moving a same-name checkpoint aside first)
    if (ck_is_dir(d)) {
        if (ck_rmdir_flat(old, err, errlen) != 0) return -1;
        if (rename(d, old) != 0) return rlc_errf(err, errlen, "%s: rename to %s failed: %s", d, old,
                                                 strerror(errno));
    }
    if (rename(tmp, d) != 0) return rlc_errf(err, errlen, "%s: rename to %s failed: %s", tmp, d, strerror(errno));
    if (rlc_fsync_dir(root, err, errlen) != 0) return -1;

    // 3. point `latest` at it
    char line[80];
    snprintf(line, sizeof line, "%s\n", name);
    ck_join(p, root, "/", "latest");
    if (rlc_write_file_atomic(p, line, strlen(line), err, errlen) != 0) return -1;

    // 4. prune
    return ck_prune(root, name, err, errlen);
}

// ---- load ----

static int ck_check_tensor(const char *fn, const rlc_st_tensor *t, const rlc_tensor_info *ti, char *err,
                           size_t errlen) {
    if (t->dtype != RLC_ST_F32 && t->dtype != RLC_ST_BF16 && t->dtype != RLC_ST_F16 && t->dtype != RLC_ST_F64)
        return rlc_errf(err, errlen, "%s: tensor \"%s\": dtype %s (expected F32, BF16, F16 or F64)", fn, t->name,
                        rlc_st_dtype_name(t->dtype));
    int ok = t->ndim == ti->ndim;
    for (int d = 0; ok && d < ti->ndim; d++) ok = t->shape[d] == ti->shape[d];
    if (!ok) {
        char got[128] = "", want[64] = "";
        size_t n = 0;
        for (int d = 0; d < t->ndim && n < sizeof got - 24; d++)
            n += (size_t)snprintf(got + n, sizeof got - n, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
        if (ti->ndim == 1) snprintf(want, sizeof want, "%d", ti->shape[0]);
        else snprintf(want, sizeof want, "%d, %d", ti->shape[0], ti->shape[1]);
        return rlc_errf(err, errlen, "%s: tensor \"%s\": shape [%s] but the model expects [%s] (check the model "
                        "config)", fn, t->name, got, want);
    }
    return 0;
}

static int ck_ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

int rlc_checkpoint_load_model(rlc_model *m, const char *dir_or_file, char *err, size_t errlen) {
    char fn[CK_PATH], d[CK_PATH];
    if (ck_is_dir(dir_or_file) || !ck_is_file(dir_or_file)) {
        rlc_checkpoint_resolve(dir_or_file, d, sizeof d);
        ck_join(fn, d, "/", "model.safetensors");
    } else {
        ck_join(fn, dir_or_file, "", "");
    }
    rlc_st_file f;
    if (rlc_st_open(&f, fn, err, errlen) != 0) return -1;
    // Validate everything before touching the model: a failed load leaves the parameters as they were.
    const rlc_st_tensor **src = rlc_calloc((size_t)m->n_tensors, sizeof *src);
    int rc = 0;
    for (int i = 0; i < f.n_tensors && rc == 0; i++) {
        const rlc_st_tensor *t = &f.tensors[i];
        int k = -1;
        for (int j = 0; j < m->n_tensors; j++)
            if (strcmp(m->tensors[j].name, t->name) == 0) {
                k = j;
                break;
            }
        if (k < 0) {
            if (m->cfg.tie_embeddings && strcmp(t->name, "lm_head.weight") == 0) continue;
            if (ck_ends_with(t->name, "rotary_emb.inv_freq")) continue;
            rc = rlc_errf(err, errlen, "%s: unexpected tensor \"%s\": the model has no such parameter (check "
                          "model.n_layers, qkv_bias, tie_embeddings, value_head)", fn, t->name);
            break;
        }
        rc = ck_check_tensor(fn, t, &m->tensors[k], err, errlen);
        src[k] = t;
    }
    for (int j = 0; j < m->n_tensors && rc == 0; j++)
        if (!src[j]) {
            const char *hint = strcmp(m->tensors[j].name, "lm_head.weight") == 0
                                   ? " (the file may come from a model with tie_embeddings true)"
                                   : "";
            rc = rlc_errf(err, errlen, "%s: missing tensor \"%s\"%s", fn, m->tensors[j].name, hint);
        }
    if (rc == 0) {
        rlc_f *host = rlc_malloc(m->n_params * sizeof(rlc_f));
        for (int j = 0; j < m->n_tensors && rc == 0; j++)
            rc = rlc_st_to_float(&f, src[j], host + m->tensors[j].offset, err, errlen);
        if (rc == 0) m->ops->upload(m->params, host, m->n_params * sizeof(rlc_f));
        free(host);
    }
    free(src);
    rlc_st_close(&f);
    return rc;
}

static int ck_meta_u64(const char *fn, const rlc_st_file *f, const char *key, uint64_t *out, char *err,
                       size_t errlen) {
    const char *s = rlc_st_meta(f, key);
    if (!s) return rlc_errf(err, errlen, "%s: metadata \"%s\" missing", fn, key);
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return rlc_errf(err, errlen, "%s: metadata \"%s\" = \"%s\" is not a non-negative integer", fn, key, s);
    *out = (uint64_t)v;
    return 0;
}

static int ck_meta_int(const char *fn, const rlc_st_file *f, const char *key, int *out, char *err, size_t errlen) {
    uint64_t v;
    if (ck_meta_u64(fn, f, key, &v, err, errlen) != 0) return -1;
    if (v > 0x7fffffff) return rlc_errf(err, errlen, "%s: metadata \"%s\" out of range", fn, key);
    *out = (int)v;
    return 0;
}

static int ck_parse_double(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno == ERANGE || end == s || *end) return -1;
    *out = v;
    return 0;
}

int rlc_checkpoint_load_state(const rlc_model *m, const char *dir, rlc_train_state *st, rlc_f *adam_m,
                              rlc_f *adam_v, char *err, size_t errlen) {
    char fn[CK_PATH], d[CK_PATH];
    rlc_checkpoint_resolve(dir, d, sizeof d);
    ck_join(fn, d, "/", "train_state.safetensors");
    rlc_st_file f;
    if (rlc_st_open(&f, fn, err, errlen) != 0) return -1;
    rlc_train_state s;
    memset(&s, 0, sizeof s);
    int rc = ck_meta_int(fn, &f, "step", &s.step, err, errlen);
    if (!rc) rc = ck_meta_int(fn, &f, "phase", &s.phase, err, errlen);
    if (!rc && s.phase > 1) rc = rlc_errf(err, errlen, "%s: metadata \"phase\" must be 0 or 1", fn);
    if (!rc) rc = ck_meta_u64(fn, &f, "rng_seed", &s.rng_seed, err, errlen);
    if (!rc) rc = ck_meta_u64(fn, &f, "data_pos", &s.data_pos, err, errlen);
    if (!rc) rc = ck_meta_int(fn, &f, "opt_t", &s.opt_t, err, errlen);
    if (!rc) {
        const char *kb = rlc_st_meta(&f, "kl_beta");
        if (!kb || ck_parse_double(kb, &s.kl_beta) != 0)
            rc = rlc_errf(err, errlen, "%s: metadata \"kl_beta\" missing or not a number", fn);
        // the coefficient the resumed run continues with: what rl.kl_beta allows (strtod also reads "nan")
        else if (!(isfinite(s.kl_beta) && s.kl_beta >= 0))
            rc = rlc_errf(err, errlen, "%s: metadata \"kl_beta\" = \"%s\" must be a finite number >= 0", fn, kb);
    }
    for (int i = 0; i < f.n_meta && rc == 0; i++) {
        if (strncmp(f.meta_keys[i], "extra.", 6) != 0) continue;
        double v;
        if (ck_parse_double(f.meta_vals[i], &v) != 0)
            rc = rlc_errf(err, errlen, "%s: metadata \"%s\" is not a number", fn, f.meta_keys[i]);
        else if (rlc_train_state_set(&s, f.meta_keys[i] + 6, v) != 0)
            rc = rlc_errf(err, errlen, "%s: metadata \"%s\": too many extras or name too long", fn, f.meta_keys[i]);
    }
    if (rc == 0 && adam_m && adam_v) {
        if (f.n_tensors == 0)
            rc = rlc_errf(err, errlen, "%s: holds no optimizer moments (saved weights-only)", fn);
        const rlc_st_tensor **src = rlc_calloc(2 * (size_t)m->n_tensors, sizeof *src);
        for (int i = 0; i < f.n_tensors && rc == 0; i++) {
            const rlc_st_tensor *t = &f.tensors[i];
            int which = strncmp(t->name, "adam_m.", 7) == 0 ? 0 : strncmp(t->name, "adam_v.", 7) == 0 ? 1 : -1;
            int k = -1;
            for (int j = 0; which >= 0 && j < m->n_tensors; j++)
                if (strcmp(m->tensors[j].name, t->name + 7) == 0) {
                    k = j;
                    break;
                }
            if (k < 0) {
                rc = rlc_errf(err, errlen, "%s: unexpected tensor \"%s\" (expected adam_m.<param> / adam_v.<param> "
                              "for this model's parameters)", fn, t->name);
                break;
            }
            rc = ck_check_tensor(fn, t, &m->tensors[k], err, errlen);
            src[2 * k + which] = t;
        }
        for (int j = 0; j < 2 * m->n_tensors && rc == 0; j++)
            if (!src[j])
                rc = rlc_errf(err, errlen, "%s: missing tensor \"%s%s\"", fn, j % 2 ? "adam_v." : "adam_m.",
                              m->tensors[j / 2].name);
        if (rc == 0) {
            rlc_f *hm = rlc_malloc(m->n_params * sizeof(rlc_f)), *hv = rlc_malloc(m->n_params * sizeof(rlc_f));
            for (int j = 0; j < m->n_tensors && rc == 0; j++) {
                rc = rlc_st_to_float(&f, src[2 * j], hm + m->tensors[j].offset, err, errlen);
                if (!rc) rc = rlc_st_to_float(&f, src[2 * j + 1], hv + m->tensors[j].offset, err, errlen);
            }
            if (rc == 0) {
                m->ops->upload(adam_m, hm, m->n_params * sizeof(rlc_f));
                m->ops->upload(adam_v, hv, m->n_params * sizeof(rlc_f));
            }
            free(hm);
            free(hv);
        }
        free(src);
    }
    if (rc == 0 && st) *st = s;
    rlc_st_close(&f);
    return rc;
}

int rlc_checkpoint_load(rlc_model *m, const char *dir, rlc_train_state *st, rlc_f *adam_m, rlc_f *adam_v,
                        char *err, size_t errlen) {
    char d[CK_PATH];
    rlc_checkpoint_resolve(dir, d, sizeof d);
    // state first: it validates without modifying anything until the end, as does the model load
    rlc_train_state s;
    if (rlc_checkpoint_load_state(m, d, &s, adam_m, adam_v, err, errlen) != 0) return -1;
    if (rlc_checkpoint_load_model(m, d, err, errlen) != 0) return -1;
    if (st) *st = s;
    return 0;
}
