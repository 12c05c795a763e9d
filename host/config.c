// host/config.c: the run configuration (include/rlc/config.h). One table lists every key: its JSON path, its
// type, where it lives in rlc_config and its allowed range or values. Loading starts from the embedded default
// (configs/default.json, which must set every key), overlays the user's file, then `--set a.b=value`
// overrides, type-checking each value as it is applied; ranges and cross-key rules are checked once at the
// end, naming where the offending value came from. Unknown keys name the nearest valid key at their level.
#include "rlc/config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rlc/task.h"
#include "rlc/tokenizer.h"
#include "rlc/util.h"
#include "json_util.h"

typedef enum {
    K_OBJ,   // nested object
    K_INT,   // int, JSON integer
    K_U64,   // uint64_t, JSON integer below 2^53 or a decimal string
    K_FLOAT, // float, JSON number
    K_BOOL,  // int 0/1, JSON true/false
    K_STR,   // char[size]
    K_ENUM,  // char[size], one of `vals` ("a|b|c")
    K_TASK,  // char[size], a name rlc_task_find knows
    K_STOP,  // rollout.stop: array of up to 4 strings
} key_kind;

// range flags: which bounds apply (lo/hi), and whether each is strict
enum { R_GE = 1, R_GT = 2, R_LE = 4, R_LT = 8 };

typedef struct cfg_key {
    const char *path;
    key_kind kind;
    size_t off, size;
    const char *vals;  // K_ENUM values
    double lo, hi;
    int range;         // R_* flags
} cfg_key;

#define OFF(f) offsetof(rlc_config, f), sizeof(((rlc_config *)0)->f)
#define OBJ(p) {p, K_OBJ, 0, 0, NULL, 0, 0, 0}
#define INT(p, f, lo, hi, r) {p, K_INT, OFF(f), NULL, lo, hi, r}
#define U64(p, f) {p, K_U64, OFF(f), NULL, 0, 0, 0}
#define FLT(p, f, lo, hi, r) {p, K_FLOAT, OFF(f), NULL, lo, hi, r}
#define BOOL(p, f) {p, K_BOOL, OFF(f), NULL, 0, 0, 0}
#define STR(p, f) {p, K_STR, OFF(f), NULL, 0, 0, 0}
#define ENUM(p, f, v) {p, K_ENUM, OFF(f), v, 0, 0, 0}
#define OPTIM(pre, f)                                                                        \
    OBJ(pre), FLT(pre ".lr", f.lr, 0, 0, R_GT), FLT(pre ".min_lr", f.min_lr, 0, 0, R_GE),    \
        ENUM(pre ".schedule", f.schedule, "constant|cosine|linear"),                         \
        INT(pre ".warmup_steps", f.warmup_steps, 0, 0, R_GE),                                \
        FLT(pre ".beta1", f.beta1, 0, 1, R_GE | R_LT), FLT(pre ".beta2", f.beta2, 0, 1, R_GE | R_LT), \
        FLT(pre ".eps", f.eps, 0, 0, R_GT), FLT(pre ".weight_decay", f.weight_decay, 0, 0, R_GE),    \
        FLT(pre ".grad_clip", f.grad_clip, 0, 0, R_GE)

static const cfg_key keys[] = {
    STR("name", name),
    STR("out_dir", out_dir),
    ENUM("device", device, "auto|cpu|cuda"),
    ENUM("precision", precision, "auto|mixed|bf16-gemm|fp32"),
    U64("seed", seed),
    INT("threads", threads, 0, 1024, R_GE | R_LE),
    OBJ("model"),
    INT("model.vocab_size", model.vocab_size, RLC_TOK_VOCAB, 0, R_GE),
    INT("model.dim", model.dim, 1, 0, R_GE),
    INT("model.n_layers", model.n_layers, 1, 0, R_GE),
    INT("model.n_heads", model.n_heads, 1, 0, R_GE),
    INT("model.n_kv_heads", model.n_kv_heads, 1, 0, R_GE),
    INT("model.head_dim", model.head_dim, 2, 0, R_GE),
    INT("model.hidden_dim", model.hidden_dim, 1, 0, R_GE),
    INT("model.max_seq_len", model.max_seq_len, 2, 0, R_GE),
    FLT("model.rms_eps", model.rms_eps, 0, 0, R_GT),
    FLT("model.rope_theta", model.rope_theta, 1, 0, R_GT),
    BOOL("model.qkv_bias", model.qkv_bias),
    BOOL("model.tie_embeddings", model.tie_embeddings),
    BOOL("model.value_head", model.value_head),
    OBJ("task"),
    {"task.name", K_TASK, OFF(task.name), NULL, 0, 0, 0},
    INT("task.digits", task.digits, 1, 9, R_GE | R_LE),
    INT("task.min_digits", task.min_digits, 1, 9, R_GE | R_LE),
    INT("task.n_numbers", task.n_numbers, 2, 8, R_GE | R_LE),
    INT("task.max_number", task.max_number, 1, 1000000, R_GE | R_LE),
    INT("task.maze_size", task.maze_size, 3, 16, R_GE | R_LE), // grid[256] holds 16x16
    INT("task.maze_keys", task.maze_keys, 0, 4, R_GE | R_LE),
    INT("task.max_turns", task.max_turns, 1, 0, R_GE),
    INT("task.eval_size", task.eval_size, 1, 0, R_GE),
    U64("task.eval_seed", task.eval_seed),
    OBJ("sft"),
    INT("sft.steps", sft.steps, 0, 0, R_GE),
    INT("sft.batch_size", sft.batch_size, 1, 0, R_GE),
    INT("sft.micro_batch_tokens", sft.micro_batch_tokens, 1, 0, R_GE),
    FLT("sft.teacher_error", sft.teacher_error, 0, 1, R_GE | R_LE),
    OPTIM("sft.optim", sft.optim),
    OBJ("rollout"),
    INT("rollout.group_size", rollout.group_size, 1, 0, R_GE),
    INT("rollout.prompts_per_step", rollout.prompts_per_step, 1, 0, R_GE),
    INT("rollout.max_new_tokens", rollout.max_new_tokens, 1, 0, R_GE),
    FLT("rollout.temperature", rollout.temperature, 0, 0, R_GT),
    INT("rollout.top_k", rollout.top_k, 0, 0, R_GE),
    FLT("rollout.top_p", rollout.top_p, 0, 1, R_GT | R_LE),
    {"rollout.stop", K_STOP, OFF(rollout.stop), NULL, 0, 0, 0},
    BOOL("rollout.ignore_eos", rollout.ignore_eos),
    OBJ("rl"),
    ENUM("rl.method", rl.method, "grpo|dapo|drgrpo|rloo|reinforce++|reinforce++-baseline|ppo|dpo|ipo|none"),
    INT("rl.steps", rl.steps, 0, 0, R_GE),
    ENUM("rl.adv_scale", rl.adv_scale, "group|batch|none"),
    ENUM("rl.loss_agg", rl.loss_agg, "token-mean|seq-mean-token-sum|seq-mean-token-mean|seq-mean-token-sum-norm"),
    ENUM("rl.policy_loss", rl.policy_loss, "ppo|gspo|cispo"),
    FLT("rl.eps_low", rl.eps_low, 0, 1, R_GE | R_LT),
    FLT("rl.eps_high", rl.eps_high, 0, 0, R_GE),
    FLT("rl.dual_clip", rl.dual_clip, 0, 0, R_GE), // and 0 or > 1, checked below
    FLT("rl.cispo_eps_max", rl.cispo_eps_max, 0, 0, R_GT),
    INT("rl.epochs", rl.epochs, 1, 0, R_GE),
    INT("rl.mini_batches", rl.mini_batches, 1, 0, R_GE),
    INT("rl.micro_batch_tokens", rl.micro_batch_tokens, 1, 0, R_GE),
    BOOL("rl.recompute_old", rl.recompute_old),
    FLT("rl.kl_beta", rl.kl_beta, 0, 0, R_GE),
    ENUM("rl.kl_estimator", rl.kl_estimator, "k1|abs|k2|k3|k3+|k1+"),
    BOOL("rl.kl_in_reward", rl.kl_in_reward),
    FLT("rl.kl_target", rl.kl_target, 0, 0, R_GE),
    FLT("rl.kl_horizon", rl.kl_horizon, 0, 0, R_GT),
    FLT("rl.ent_coef", rl.ent_coef, 0, 0, 0),
    ENUM("rl.tis", rl.tis, "off|token|seq"),
    ENUM("rl.tis_mode", rl.tis_mode, "truncate|mask"),
    FLT("rl.tis_c", rl.tis_c, 0, 0, R_GT),
    FLT("rl.tis_c_min", rl.tis_c_min, 0, 0, R_GE),
    FLT("rl.tis_c_max", rl.tis_c_max, 0, 0, R_GT),
    FLT("rl.gamma", rl.gamma, 0, 1, R_GE | R_LE),
    FLT("rl.lam", rl.lam, 0, 1, R_GE | R_LE),
    FLT("rl.value_clip", rl.value_clip, 0, 0, R_GE),
    FLT("rl.vf_coef", rl.vf_coef, 0, 0, R_GE),
    BOOL("rl.dynamic_sampling", rl.dynamic_sampling),
    INT("rl.dyn_max_tries", rl.dyn_max_tries, 1, 0, R_GE),
    INT("rl.overlong_buffer", rl.overlong_buffer, 0, 0, R_GE),
    FLT("rl.overlong_factor", rl.overlong_factor, 0, 0, R_GE),
    BOOL("rl.overlong_filter", rl.overlong_filter),
    BOOL("rl.empg", rl.empg),
    FLT("rl.empg_k", rl.empg_k, 0, 0, R_GE),
    FLT("rl.empg_k2", rl.empg_k2, 0, 0, R_GE),
    FLT("rl.empg_zeta", rl.empg_zeta, 0, 0, R_GE),
    FLT("rl.dpo_beta", rl.dpo_beta, 0, 0, R_GT),
    BOOL("rl.zero1", rl.zero1),
    OPTIM("rl.optim", rl.optim),
    INT("eval_every", eval_every, 0, 0, R_GE),
    INT("ckpt_every", ckpt_every, 0, 0, R_GE),
    INT("log_every", log_every, 1, 0, R_GE),
};
#define N_KEYS ((int)(sizeof keys / sizeof keys[0]))

// Where each key's current value came from ("<default>", the file, or the --set text), for messages.
typedef struct cfg_origin {
    const char *from[N_KEYS];
} cfg_origin;

// ---- helpers ----

static int find_key(const char *path) {
    for (int i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].path, path) == 0) return i;
    return -1;
}

// Parent path length of a key path ("rl.optim.lr" -> 8, "seed" -> 0).
static size_t parent_len(const char *path) {
    const char *dot = strrchr(path, '.');
    return dot ? (size_t)(dot - path) : 0;
}

// Optimal-string-alignment distance (Levenshtein plus adjacent transpositions: "lwo" -> "low" is 1).
static int edit_distance(const char *a, const char *b) {
    int n = (int)strlen(a), m = (int)strlen(b);
    if (n > 63 || m > 63) return 99;
    int d[64][64];
    for (int i = 0; i <= n; i++) d[i][0] = i;
    for (int j = 0; j <= m; j++) d[0][j] = j;
    for (int i = 1; i <= n; i++)
        for (int j = 1; j <= m; j++) {
            int c = a[i - 1] != b[j - 1];
            int v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + c < v) v = d[i - 1][j - 1] + c;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[n][m];
}

// The key at level `parent` (a path prefix, "" = top) whose last component is nearest to `name`.
static const char *nearest_key(const char *parent, const char *name) {
    size_t pl = strlen(parent);
    const char *best = NULL;
    int bd = 1 << 30;
    for (int i = 0; i < N_KEYS; i++) {
        const char *p = keys[i].path;
        if (parent_len(p) != pl || strncmp(p, parent, pl) != 0) continue;
        int dd = edit_distance(name, pl ? p + pl + 1 : p);
        if (dd < bd) {
            bd = dd;
            best = p;
        }
    }
    return best;
}

// Nearest of a list separated by '|' or ", " (enum values, task names); writes it to out.
static void nearest_value(const char *list, const char *v, char *out, size_t cap) {
    int bd = 1 << 30;
    out[0] = 0;
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, "|,");
        char item[64];
        snprintf(item, sizeof item, "%.*s", (int)n, p);
        int dd = edit_distance(v, item);
        if (dd < bd) {
            bd = dd;
            snprintf(out, cap, "%s", item);
        }
        p += n;
        while (*p == '|' || *p == ',' || *p == ' ') p++;
    }
}

static int in_list(const char *list, const char *v) {
    size_t vn = strlen(v);
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, "|");
        if (n == vn && strncmp(p, v, n) == 0) return 1;
        p += n;
        if (*p) p++;
    }
    return 0;
}

// Short description of a JSON value for "found ..." (type and value).
static void describe(const cJSON *v, char *out, size_t cap) {
    if (cJSON_IsString(v)) snprintf(out, cap, "string \"%.60s\"", v->valuestring);
    else if (cJSON_IsNumber(v)) snprintf(out, cap, "number %.17g", v->valuedouble);
    else if (cJSON_IsBool(v)) snprintf(out, cap, "%s", cJSON_IsTrue(v) ? "true" : "false");
    else if (cJSON_IsNull(v)) snprintf(out, cap, "null");
    else if (cJSON_IsArray(v)) snprintf(out, cap, "an array");
    else if (cJSON_IsObject(v)) snprintf(out, cap, "an object");
    else snprintf(out, cap, "an invalid value");
}

static void line_col(const char *s, size_t pos, int *line, int *col) {
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < pos && s[i]; i++) {
        if (s[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static cJSON *parse_json(const char *text, const char *source, char *err, size_t errlen) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 1);
    if (!root) {
        size_t pos = end && end >= text ? (size_t)(end - text) : 0;
        int line, col;
        line_col(text, pos, &line, &col);
        char near[32];
        size_t k = 0;
        for (const char *p = text + pos; *p && k < 20; p++) near[k++] = (*p == '\n' || *p == '\r') ? ' ' : *p;
        near[k] = 0;
        rlc_errf(err, errlen, "%s: malformed JSON at line %d, column %d (byte %zu)%s%s%s", source, line, col, pos,
                 k ? ": near \"" : ": unexpected end of input", near, k ? "\"" : "");
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        char d[96];
        describe(root, d, sizeof d);
        rlc_errf(err, errlen, "%s: the config must be a JSON object, found %s", source, d);
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

// ---- applying values ----

static int apply_value(rlc_config *cfg, int ki, const cJSON *v, const char *label, char *err, size_t errlen) {
    const cfg_key *k = &keys[ki];
    char *base = (char *)cfg + k->off;
    char found[96];
    describe(v, found, sizeof found);
    switch (k->kind) {
    case K_INT: {
        if (!cJSON_IsNumber(v))
            return rlc_errf(err, errlen, "%s: %s: expected an integer, found %s", label, k->path, found);
        double d = v->valuedouble;
        if (floor(d) != d || d < INT_MIN || d > INT_MAX)
            return rlc_errf(err, errlen, "%s: %s: expected an integer, found %s", label, k->path, found);
        *(int *)base = (int)d;
        return 0;
    }
    case K_U64: {
        uint64_t u;
        if (cJSON_IsNumber(v)) {
            double d = v->valuedouble;
            // 2^53 and above: the double may already be another integer than the text (...993 reads as ...992)
            if (floor(d) != d || d < 0 || d >= 9007199254740992.0)
                return rlc_errf(err, errlen, "%s: %s: expected a non-negative integer (below 2^53, or a decimal "
                                "string), found %s", label, k->path, found);
            u = (uint64_t)d;
        } else if (cJSON_IsString(v)) {
            const char *s = v->valuestring;
            char *end;
            errno = 0;
            unsigned long long x = strtoull(s, &end, 10);
            if (!*s || *s == '-' || *end || errno)
                return rlc_errf(err, errlen, "%s: %s: expected a non-negative integer, found %s", label, k->path,
                                found);
            u = (uint64_t)x;
        } else {
            return rlc_errf(err, errlen, "%s: %s: expected a non-negative integer, found %s", label, k->path, found);
        }
        *(uint64_t *)base = u;
        return 0;
    }
    case K_FLOAT: {
        if (!cJSON_IsNumber(v))
            return rlc_errf(err, errlen, "%s: %s: expected a number, found %s", label, k->path, found);
        double d = v->valuedouble;
        if (!isfinite(d) || fabs(d) > 3.4e38)
            return rlc_errf(err, errlen, "%s: %s: expected a finite float, found %s", label, k->path, found);
        *(float *)base = (float)d;
        return 0;
    }
    case K_BOOL:
        if (!cJSON_IsBool(v))
            return rlc_errf(err, errlen, "%s: %s: expected a boolean (true or false), found %s", label, k->path,
                            found);
        *(int *)base = cJSON_IsTrue(v) ? 1 : 0;
        return 0;
    case K_STR:
    case K_ENUM:
    case K_TASK: {
        if (!cJSON_IsString(v))
            return rlc_errf(err, errlen, "%s: %s: expected a string, found %s", label, k->path, found);
        const char *s = v->valuestring;
        if (strlen(s) >= k->size)
            return rlc_errf(err, errlen, "%s: %s: string \"%.40s...\" is too long (at most %zu characters)", label,
                            k->path, s, k->size - 1);
        if (k->kind == K_ENUM && !in_list(k->vals, s)) {
            char near[64], list[256];
            nearest_value(k->vals, s, near, sizeof near);
            snprintf(list, sizeof list, "%s", k->vals);
            for (char *p = list; *p; p++)
                if (*p == '|') *p = '/';
            return rlc_errf(err, errlen, "%s: %s: unknown value \"%s\" (expected one of %s; did you mean \"%s\"?)",
                            label, k->path, s, list, near);
        }
        if (k->kind == K_TASK && !rlc_task_find(s)) {
            char near[64];
            nearest_value(rlc_task_names(), s, near, sizeof near);
            return rlc_errf(err, errlen, "%s: %s: unknown task \"%s\" (expected one of %s; did you mean \"%s\"?)",
                            label, k->path, s, rlc_task_names(), near);
        }
        memset(base, 0, k->size); // no stale bytes after the NUL: configs compare equal with memcmp
        memcpy(base, s, strlen(s));
        return 0;
    }
    case K_STOP: {
        rlc_rollout_config *rc = &cfg->rollout;
        int n = 0;
        char stop[4][16];
        memset(stop, 0, sizeof stop);
        if (cJSON_IsString(v)) { // a single stop string is accepted as a one-element list
            if (strlen(v->valuestring) == 0 || strlen(v->valuestring) >= sizeof stop[0])
                return rlc_errf(err, errlen, "%s: %s: stop strings must have 1 to %zu characters", label, k->path,
                                sizeof stop[0] - 1);
            snprintf(stop[n++], sizeof stop[0], "%s", v->valuestring);
        } else if (cJSON_IsArray(v)) {
            int i = 0;
            for (const cJSON *c = v->child; c; c = c->next, i++) {
                char d[96];
                describe(c, d, sizeof d);
                if (!cJSON_IsString(c))
                    return rlc_errf(err, errlen, "%s: %s[%d]: expected a string, found %s", label, k->path, i, d);
                if (i >= 4)
                    return rlc_errf(err, errlen, "%s: %s: at most 4 stop strings (found %d)", label, k->path,
                                    cJSON_GetArraySize(v));
                size_t len = strlen(c->valuestring);
                if (len == 0 || len >= sizeof stop[0])
                    return rlc_errf(err, errlen, "%s: %s[%d]: stop strings must have 1 to %zu characters (found %zu)",
                                    label, k->path, i, sizeof stop[0] - 1, len);
                snprintf(stop[n++], sizeof stop[0], "%s", c->valuestring);
            }
        } else {
            return rlc_errf(err, errlen, "%s: %s: expected an array of strings, found %s", label, k->path, found);
        }
        memset(rc->stop, 0, sizeof rc->stop);
        for (int i = 0; i < n; i++) memcpy(rc->stop[i], stop[i], sizeof stop[i]);
        rc->n_stop = n;
        return 0;
    }
    case K_OBJ:
        break;
    }
    return rlc_errf(err, errlen, "%s: %s: internal error: object key applied as a value", label, k->path);
}

// Overlay a JSON object at key level `prefix` ("" = top level).
static int overlay(rlc_config *cfg, cfg_origin *org, const cJSON *obj, const char *prefix, const char *label,
                   char *err, size_t errlen) {
    for (const cJSON *c = obj->child; c; c = c->next) {
        char path[160];
        snprintf(path, sizeof path, "%s%s%s", prefix, prefix[0] ? "." : "", c->string);
        for (const cJSON *d = obj->child; d != c; d = d->next)
            if (strcmp(d->string, c->string) == 0)
                return rlc_errf(err, errlen, "%s: duplicate key \"%s\"", label, path);
        int ki = find_key(path);
        if (ki < 0) {
            const char *near = nearest_key(prefix, c->string);
            return rlc_errf(err, errlen, "%s: unknown key \"%s\" (did you mean \"%s\"?)", label, path,
                            near ? near : "?");
        }
        if (keys[ki].kind == K_OBJ) {
            if (!cJSON_IsObject(c)) {
                char d[96];
                describe(c, d, sizeof d);
                return rlc_errf(err, errlen, "%s: %s: expected an object, found %s", label, path, d);
            }
            if (overlay(cfg, org, c, path, label, err, errlen) != 0) return -1;
            continue;
        }
        if (apply_value(cfg, ki, c, label, err, errlen) != 0) return -1;
        org->from[ki] = label;
    }
    return 0;
}

// One `--set a.b=value`: the value is JSON when it parses as JSON, else a plain string (for string keys a
// non-string JSON value is taken as text too, so `--set name=2024` works).
static int apply_override(rlc_config *cfg, cfg_origin *org, const char *ov, const char *label, char *err,
                          size_t errlen) {
    const char *eq = strchr(ov, '=');
    if (!eq || eq == ov) return rlc_errf(err, errlen, "%s: expected key=value (e.g. rl.eps_low=0.2)", label);
    char path[160];
    if ((size_t)(eq - ov) >= sizeof path) return rlc_errf(err, errlen, "%s: key too long", label);
    snprintf(path, sizeof path, "%.*s", (int)(eq - ov), ov);
    const char *val = eq + 1;
    int ki = find_key(path);
    if (ki < 0) {
        // find the first path component that does not exist, and suggest at that level
        char prefix[160] = "";
        const char *p = path;
        for (;;) {
            size_t n = strcspn(p, ".");
            char comp[160], full[160];
            snprintf(comp, sizeof comp, "%.*s", (int)n, p);
            snprintf(full, sizeof full, "%.*s", (int)(p - path + (ptrdiff_t)n), path);
            int fk = find_key(full);
            if (fk < 0 || keys[fk].kind != K_OBJ || !p[n]) {
                const char *near = nearest_key(prefix, comp);
                return rlc_errf(err, errlen, "%s: unknown key \"%s\" (did you mean \"%s\"?)", label, path,
                                near ? near : "?");
            }
            snprintf(prefix, sizeof prefix, "%s", full);
            p += n + 1;
        }
    }
    cJSON *v = cJSON_ParseWithOpts(val, NULL, 1);
    key_kind kk = keys[ki].kind;
    if (!v || ((kk == K_STR || kk == K_ENUM || kk == K_TASK) && !cJSON_IsString(v))) {
        cJSON_Delete(v);
        v = cJSON_CreateString(val);
    }
    int rc;
    if (kk == K_OBJ) {
        if (!cJSON_IsObject(v)) {
            char d[96];
            describe(v, d, sizeof d);
            rc = rlc_errf(err, errlen, "%s: %s: expected an object, found %s", label, path, d);
        } else {
            rc = overlay(cfg, org, v, path, label, err, errlen);
        }
    } else {
        rc = apply_value(cfg, ki, v, label, err, errlen);
        if (rc == 0) org->from[ki] = label;
    }
    cJSON_Delete(v);
    return rc;
}

// ---- validation ----

static double key_number(const rlc_config *cfg, const cfg_key *k) {
    const char *base = (const char *)cfg + k->off;
    return k->kind == K_INT ? (double)*(const int *)base : (double)*(const float *)base;
}

static int check_range(const rlc_config *cfg, const cfg_origin *org, int ki, char *err, size_t errlen) {
    const cfg_key *k = &keys[ki];
    if ((k->kind != K_INT && k->kind != K_FLOAT) || !k->range) return 0;
    double x = key_number(cfg, k);
    int ok = 1;
    if ((k->range & R_GE) && !(x >= k->lo)) ok = 0;
    if ((k->range & R_GT) && !(x > k->lo)) ok = 0;
    if ((k->range & R_LE) && !(x <= k->hi)) ok = 0;
    if ((k->range & R_LT) && !(x < k->hi)) ok = 0;
    if (ok) return 0;
    char want[96];
    int has_lo = k->range & (R_GE | R_GT), has_hi = k->range & (R_LE | R_LT);
    if (has_lo && has_hi)
        snprintf(want, sizeof want, "in %c%g, %g%c", (k->range & R_GE) ? '[' : '(', k->lo, k->hi,
                 (k->range & R_LE) ? ']' : ')');
    else if (has_lo) snprintf(want, sizeof want, "%s %g", (k->range & R_GE) ? ">=" : ">", k->lo);
    else snprintf(want, sizeof want, "%s %g", (k->range & R_LE) ? "<=" : "<", k->hi);
    return rlc_errf(err, errlen, "%s: %s must be %s (got %.9g)", org->from[ki], k->path, want, x);
}

static const char *from(const cfg_origin *org, const char *path) {
    int ki = find_key(path);
    return ki >= 0 && org->from[ki] ? org->from[ki] : "<config>";
}

// Origin for a rule over two keys: whichever was not left at the default (the first when both were set).
static const char *from2(const cfg_origin *org, const char *a, const char *b) {
    const char *fa = from(org, a), *fb = from(org, b);
    return strcmp(fa, "<default>") != 0 ? fa : fb;
}

// Origin for a rule over every key under `prefix` (e.g. "model."): the last --set that touched one, else the
// file, else the default.
static const char *from_prefix(const cfg_origin *org, const char *prefix) {
    const char *best = "<default>";
    size_t pl = strlen(prefix);
    for (int i = 0; i < N_KEYS; i++) {
        const char *f = org->from[i];
        if (!f || strncmp(keys[i].path, prefix, pl) != 0 || strcmp(f, "<default>") == 0) continue;
        if (strncmp(f, "--set", 5) == 0 || strncmp(best, "--set", 5) != 0) best = f;
    }
    return best;
}

static int valid_name(const char *s) {
    if (!s[0] || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '_' || *p == '.'))
            return 0;
    return 1;
}

static int validate(const rlc_config *c, const cfg_origin *org, char *err, size_t errlen) {
    for (int i = 0; i < N_KEYS; i++)
        if (check_range(c, org, i, err, errlen) != 0) return -1;
    if (!valid_name(c->name))
        return rlc_errf(err, errlen, "%s: name must be non-empty and use only letters, digits, '-', '_' and '.' "
                        "(got \"%s\"; it names the run directory)", from(org, "name"), c->name);
    if (!c->out_dir[0]) return rlc_errf(err, errlen, "%s: out_dir must not be empty", from(org, "out_dir"));
    char msg[256];
    if (rlc_model_config_check(&c->model, msg, sizeof msg) != 0)
        return rlc_errf(err, errlen, "%s: %s", from_prefix(org, "model."), msg);
    if (c->task.min_digits > c->task.digits)
        return rlc_errf(err, errlen, "%s: task.min_digits (%d) must be <= task.digits (%d)",
                        from2(org, "task.min_digits", "task.digits"), c->task.min_digits, c->task.digits);
    if (!strcmp(c->device, "cpu") && (!strcmp(c->precision, "mixed") || !strcmp(c->precision, "bf16-gemm")))
        return rlc_errf(err, errlen, "%s: precision \"%s\" is a mode of the cuda backend, but device is \"cpu\" (the "
                        "CPU backend computes in fp32); set precision to \"auto\" or \"fp32\", or device to \"cuda\"",
                        from2(org, "precision", "device"), c->precision);
    const rlc_task *task = rlc_task_find(c->task.name);
    // The default job's imperfect teacher is inherited silently by configs for tasks without one (it cannot
    // apply there); asked for explicitly, it is an error.
    if (c->sft.teacher_error > 0 && task && !task->flawed_solve && strcmp(from(org, "sft.teacher_error"), "<default>"))
        return rlc_errf(err, errlen, "%s: sft.teacher_error is %g but task \"%s\" has no imperfect teacher (only "
                        "addition and arithmetic define one); set it to 0", from2(org, "sft.teacher_error", "task.name"),
                        c->sft.teacher_error, c->task.name);
    const rlc_optim_config *opts[2] = {&c->sft.optim, &c->rl.optim};
    const char *names[2] = {"sft.optim", "rl.optim"};
    for (int i = 0; i < 2; i++)
        if (opts[i]->min_lr > opts[i]->lr) {
            char p[32];
            char q[32];
            snprintf(p, sizeof p, "%s.min_lr", names[i]);
            snprintf(q, sizeof q, "%s.lr", names[i]);
            return rlc_errf(err, errlen, "%s: %s.min_lr (%g) must be <= %s.lr (%g)", from2(org, p, q), names[i],
                            opts[i]->min_lr, names[i], opts[i]->lr);
        }
    const rlc_rl_config *r = &c->rl;
    if (r->dual_clip != 0.0f && !(r->dual_clip > 1.0f))
        return rlc_errf(err, errlen, "%s: rl.dual_clip must be 0 (off) or > 1 (got %g)", from(org, "rl.dual_clip"),
                        r->dual_clip);
    if (r->tis_c_min > r->tis_c_max)
        return rlc_errf(err, errlen, "%s: rl.tis_c_min (%g) must be <= rl.tis_c_max (%g)",
                        from2(org, "rl.tis_c_min", "rl.tis_c_max"), r->tis_c_min, r->tis_c_max);
    if (strcmp(r->method, "ppo") == 0 && !c->model.value_head)
        return rlc_errf(err, errlen, "%s: rl.method \"ppo\" needs a critic: set model.value_head to true",
                        from2(org, "rl.method", "model.value_head"));
    if (r->overlong_buffer > c->rollout.max_new_tokens)
        return rlc_errf(err, errlen, "%s: rl.overlong_buffer (%d) must be <= rollout.max_new_tokens (%d)",
                        from2(org, "rl.overlong_buffer", "rollout.max_new_tokens"), r->overlong_buffer, c->rollout.max_new_tokens);
    return 0;
}

// ---- public API ----

int rlc_config_parse(rlc_config *cfg, const char *json, const char *source, const char *const *overrides,
                     int n_over, char *err, size_t errlen) {
    return rlc_config_parse_labeled(cfg, json, source, overrides, NULL, n_over, err, errlen);
}

int rlc_config_parse_labeled(rlc_config *cfg, const char *json, const char *source, const char *const *overrides,
                             const char *const *labels_in, int n_over, char *err, size_t errlen) {
    cfg_origin org;
    memset(&org, 0, sizeof org);
    memset(cfg, 0, sizeof *cfg);
    const char *src = source ? source : (json ? "<string>" : "<default>");
    cJSON *def = parse_json(rlc_config_default_json(), "<default>", err, errlen);
    if (!def) return -1;
    int rc = overlay(cfg, &org, def, "", "<default>", err, errlen);
    cJSON_Delete(def);
    if (rc) return -1;
    for (int i = 0; i < N_KEYS; i++) // the default must be complete: it defines every key's value
        if (keys[i].kind != K_OBJ && !org.from[i])
            return rlc_errf(err, errlen, "<default>: the embedded default config lacks key \"%s\"", keys[i].path);
    if (json) {
        cJSON *user = parse_json(json, src, err, errlen);
        if (!user) return -1;
        rc = overlay(cfg, &org, user, "", src, err, errlen);
        cJSON_Delete(user);
        if (rc) return -1;
    }
    // labels ("--set a.b=v" unless the caller names where an override came from) for messages; they live until
    // validation is done
    char **labels = rlc_calloc((size_t)(n_over > 0 ? n_over : 1), sizeof(char *));
    for (int i = 0; i < n_over && rc == 0; i++) {
        const char *given = labels_in ? labels_in[i] : NULL;
        size_t n = (given ? strlen(given) : strlen(overrides[i]) + 6) + 1;
        labels[i] = rlc_malloc(n);
        if (given) snprintf(labels[i], n, "%s", given);
        else snprintf(labels[i], n, "--set %s", overrides[i]);
        rc = apply_override(cfg, &org, overrides[i], labels[i], err, errlen);
    }
    if (rc == 0) rc = validate(cfg, &org, err, errlen);
    if (rc == 0) {
        // The effective config says what runs. The default's teacher share, inherited by a task without an
        // imperfect teacher, never applies there: it is 0 here, so that the config written with a run loads back
        // (written out, the inherited 0.5 would be an explicit share for such a task, which is an error).
        const rlc_task *task = rlc_task_find(cfg->task.name);
        if (task && !task->flawed_solve) cfg->sft.teacher_error = 0.0f;
    }
    for (int i = 0; i < n_over; i++) free(labels[i]);
    free(labels);
    if (rc) return -1;
    snprintf(cfg->source, sizeof cfg->source, "%s", src);
    return 0;
}

int rlc_config_load(rlc_config *cfg, const char *path, const char *const *overrides, int n_over, char *err,
                    size_t errlen) {
    if (!path) return rlc_config_parse(cfg, NULL, "<default>", overrides, n_over, err, errlen);
    char *text = rlc_read_text(path, "config", err, errlen);
    if (!text) return -1;
    int rc = rlc_config_parse(cfg, text, path, overrides, n_over, err, errlen);
    free(text);
    return rc;
}

cJSON *rlc_json_float(float v) {
    char s[48];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(s, sizeof s, "%.*g", prec, (double)v);
        if (strtof(s, NULL) == v) break;
    }
    if (!strpbrk(s, ".eEn")) strcat(s, ".0");
    return cJSON_CreateRaw(s);
}

const cJSON *rlc_json_duplicate(const cJSON *o) {
    for (const cJSON *c = o ? o->child : NULL; c; c = c->next) {
        if (cJSON_IsObject(o) && c->string)
            for (const cJSON *d = o->child; d != c; d = d->next)
                if (d->string && strcmp(d->string, c->string) == 0) return c;
        const cJSON *in = rlc_json_duplicate(c);
        if (in) return in;
    }
    return NULL;
}

void rlc_json_exact_numbers(cJSON *o) {
    for (cJSON *c = o ? o->child : NULL, *next; c; c = next) {
        next = c->next;
        if (cJSON_IsObject(c) || cJSON_IsArray(c)) {
            rlc_json_exact_numbers(c);
        } else if (cJSON_IsNumber(c) && isfinite(c->valuedouble)) {
            char s[48];
            snprintf(s, sizeof s, "%1.15g", c->valuedouble);
            if (strtod(s, NULL) == c->valuedouble) continue;
            snprintf(s, sizeof s, "%.17g", c->valuedouble);
            cJSON *raw = cJSON_CreateRaw(s);
            if (c->string) { // ReplaceItemViaPointer keeps no member name: the raw item gets its own copy
                size_t n = strlen(c->string) + 1;
                raw->string = cJSON_malloc(n);
                memcpy(raw->string, c->string, n);
            }
            cJSON_ReplaceItemViaPointer(o, c, raw);
        }
    }
}

char *rlc_json_print_exact(const cJSON *item) {
    cJSON *w = cJSON_CreateArray(); // a parent, so that item itself is rewritten when it is a number
    cJSON_AddItemToArray(w, cJSON_Duplicate(item, 1));
    rlc_json_exact_numbers(w);
    char *s = cJSON_PrintUnformatted(w->child);
    cJSON_Delete(w);
    return s;
}

char *rlc_json_take_text(cJSON *o) {
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    RLC_CHECK(s, "cJSON_Print: out of memory");
    size_t n = strlen(s);
    char *out = rlc_malloc(n + 2);
    memcpy(out, s, n);
    out[n] = '\n';
    out[n + 1] = 0;
    cJSON_free(s);
    return out;
}

char *rlc_config_to_json(const rlc_config *cfg) {
    cJSON *root = cJSON_CreateObject();
    for (int i = 0; i < N_KEYS; i++) {
        const cfg_key *k = &keys[i];
        // parent object: walk/create the path components
        cJSON *parent = root;
        char buf[160];
        snprintf(buf, sizeof buf, "%s", k->path);
        char *name = buf;
        for (char *dot; (dot = strchr(name, '.'));) {
            *dot = 0;
            cJSON *o = cJSON_GetObjectItemCaseSensitive(parent, name);
            if (!o) o = cJSON_AddObjectToObject(parent, name);
            parent = o;
            name = dot + 1;
        }
        const char *base = (const char *)cfg + k->off;
        cJSON *v = NULL;
        switch (k->kind) {
        case K_OBJ:
            if (!cJSON_GetObjectItemCaseSensitive(parent, name)) cJSON_AddObjectToObject(parent, name);
            continue;
        case K_INT: v = cJSON_CreateNumber(*(const int *)base); break;
        case K_U64: {
            const uint64_t u = *(const uint64_t *)base;
            char s[32];
            snprintf(s, sizeof s, "%llu", (unsigned long long)u);
            // below 2^53 a JSON integer with all its digits (exact as a double), above a decimal string
            v = u < 9007199254740992ull ? cJSON_CreateRaw(s) : cJSON_CreateString(s);
            break;
        }
        case K_FLOAT: v = rlc_json_float(*(const float *)base); break;
        case K_BOOL: v = cJSON_CreateBool(*(const int *)base); break;
        case K_STR:
        case K_ENUM:
        case K_TASK: v = cJSON_CreateString(base); break;
        case K_STOP: {
            v = cJSON_CreateArray();
            for (int j = 0; j < cfg->rollout.n_stop && j < 4; j++)
                cJSON_AddItemToArray(v, cJSON_CreateString(cfg->rollout.stop[j]));
            break;
        }
        }
        cJSON_AddItemToObject(parent, name, v);
    }
    return rlc_json_take_text(root);
}
