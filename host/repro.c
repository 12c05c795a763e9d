// host/repro.c: `rlc repro` (see include/rlc/repro.h): repro configs, the cell grid and its execution (resume,
// shared SFT warm starts, ranks of an mpirun job), reading the runs' metrics, and the outputs: table.md,
// table.csv and SVG learning curves (host/svg.c).
//
// On disk, under <out>/<name>/ (quick: <name>-quick/):
//   runs/<row>-s<seed>/         a normal run directory (config.json, metrics.jsonl, ckpt/) plus done.json once the
//                               cell finished, or `failed` (the invocation id and the error) when it failed
//   sft/<hash>-s<seed>/         a shared SFT warm start (an `rlc sft` run) with its done.json; a cell copies its
//                               final checkpoint into runs/<row>-s<seed>/ckpt/ and resumes from there, which on
//                               the CPU backend is bitwise the run it would have done with its own SFT phase
//   table.md, table.csv, <curve>.svg, repro.json (the repro config used, command, commit, machine)
// A cell is finished when done.json exists; a cell with a checkpoint is resumed; otherwise it starts afresh. A
// cell whose config.json differs from the config it would run now (out_dir aside) is an error: the config changed
// since it ran (use --fresh, or delete that run directory).
//
// Ranks: cell i is run by rank i % size, SFT job j by rank j % size, every run on one rank (rlc_train with no
// process group). A cell whose SFT job belongs to another rank waits for its done.json (SFT jobs never wait, so
// this cannot deadlock). Rank 0 then waits, by polling the files, for every cell to be finished or failed: no
// MPI collective is held open for the length of a training run (the collective watchdog would end the job).
#define _XOPEN_SOURCE 700
#include "rlc/repro.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "rlc/safetensors.h"
#include "rlc/strbuf.h"
#include "rlc/svg.h"
#include "rlc/trainer.h"
#include "rlc/util.h"
#include "json_util.h"

// Paths here are built from the results directory (checked to be short, see rlc_repro_run) and names of at most
// 127 characters into buffers of 1 KiB and more; GCC cannot see those bounds.
#pragma GCC diagnostic ignored "-Wformat-truncation"

// ---------------------------------------------------------------------------------------------------------------
// small file helpers

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static int mkdir_p(const char *path) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
    return 0;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p) != 0 && errno != ENOENT ? -1 : 0;
}

// rm -rf path (no error when it does not exist).
static int rm_rf(const char *path) {
    if (!file_exists(path)) return 0;
    return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int write_text(const char *path, const char *text, char *err, size_t errlen) {
    return rlc_write_file_atomic(path, text, strlen(text), err, errlen);
}

static int copy_file(const char *from, const char *to) {
    size_t n = 0;
    char *data = rlc_read_file(from, &n);
    if (!data) return -1;
    FILE *f = fopen(to, "wb");
    int rc = f && fwrite(data, 1, n, f) == n ? 0 : -1;
    if (f && fclose(f) != 0) rc = -1;
    free(data);
    return rc;
}

// Copy the regular files of directory `from` into `to` (created).
static int copy_dir_files(const char *from, const char *to) {
    if (mkdir_p(to) != 0) return -1;
    DIR *d = opendir(from);
    if (!d) return -1;
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char a[1400], b[1400];
        snprintf(a, sizeof a, "%s/%s", from, e->d_name);
        snprintf(b, sizeof b, "%s/%s", to, e->d_name);
        struct stat st;
        if (stat(a, &st) == 0 && S_ISREG(st.st_mode)) rc = copy_file(a, b);
    }
    closedir(d);
    return rc;
}

// First line of a small text file (trailing newline removed) into out; -1 when unreadable.
static int read_line(const char *path, char *out, size_t cap) {
    char *t = rlc_read_file(path, NULL);
    if (!t) return -1;
    size_t n = strcspn(t, "\r\n");
    snprintf(out, cap, "%.*s", (int)n, t);
    free(t);
    return 0;
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

// ---------------------------------------------------------------------------------------------------------------
// the repro config

static void free_strs(char **v, int *n) {
    for (int i = 0; i < *n; i++) free(v[i]);
    *n = 0;
}

void rlc_repro_config_free(rlc_repro_config *rc) {
    free(rc->base_json);
    rc->base_json = NULL;
    free_strs(rc->set, &rc->n_set);
    free_strs(rc->quick_set, &rc->n_quick_set);
    for (int r = 0; r < rc->n_rows; r++) free_strs(rc->rows[r].set, &rc->rows[r].n_set);
}

static int key_in(const char *k, const char *const *list) {
    for (int i = 0; list[i]; i++)
        if (strcmp(k, list[i]) == 0) return 1;
    return 0;
}

// Every key of object o must be in `allowed` (NULL-terminated).
static int check_keys(const cJSON *o, const char *const *allowed, const char *src, const char *where, char *err,
                      size_t errlen) {
    for (const cJSON *c = o->child; c; c = c->next)
        if (!key_in(c->string, allowed)) {
            rlc_sb b = {0};
            for (int i = 0; allowed[i]; i++) rlc_sb_printf(&b, "%s\"%s\"", i ? ", " : "", allowed[i]);
            char *list = rlc_sb_take(&b);
            rlc_errf(err, errlen, "%s: %s: unknown key \"%s\" (expected one of %s)", src, where, c->string, list);
            free(list);
            return -1;
        }
    return 0;
}

static int get_str(const cJSON *o, const char *key, char *out, size_t cap, int required, const char *src,
                   const char *where, char *err, size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) {
        if (required) return rlc_errf(err, errlen, "%s: %s: missing \"%s\"", src, where, key);
        return 0;
    }
    if (!cJSON_IsString(v)) return rlc_errf(err, errlen, "%s: %s: \"%s\" must be a string", src, where, key);
    if (strlen(v->valuestring) >= cap)
        return rlc_errf(err, errlen, "%s: %s: \"%s\" is too long (at most %zu characters)", src, where, key, cap - 1);
    snprintf(out, cap, "%s", v->valuestring);
    return 0;
}

// An object of overrides {"rl.method": "dapo", "rl": {...}} as "key=json" strings appended to v.
static int parse_set(const cJSON *o, char **v, int *n, const char *src, const char *where, char *err,
                     size_t errlen) {
    if (!cJSON_IsObject(o))
        return rlc_errf(err, errlen, "%s: %s: \"set\" must be an object of config keys and values", src, where);
    for (const cJSON *c = o->child; c; c = c->next) {
        if (*n >= RLC_REPRO_MAX_SET)
            return rlc_errf(err, errlen, "%s: %s: more than %d overrides", src, where, RLC_REPRO_MAX_SET);
        char *js = rlc_json_print_exact(c); // cJSON alone prints 9007199254740991 as ...990
        size_t len = strlen(c->string) + strlen(js) + 2;
        v[*n] = rlc_malloc(len);
        snprintf(v[*n], len, "%s=%s", c->string, js);
        (*n)++;
        cJSON_free(js);
    }
    return 0;
}

static int valid_id(const char *s) {
    if (!s[0] || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '_' || *p == '.'))
            return 0;
    return 1;
}

// A directory-safe id from a label: letters, digits, '.', '_' kept, '+' spelled "plus", any other run of
// characters one '-' ("GRPO+EMPG" -> "GRPO-plus-EMPG", "k3+ (reward)" -> "k3-plus-reward").
static void slugify(const char *label, char *out, size_t cap) {
    size_t n = 0;
    int dash = 0;
    for (const char *p = label; *p && n + 6 < cap; p++) {
        char c = *p;
        int keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_';
        if (keep) {
            if (dash && n > 0) out[n++] = '-';
            dash = 0;
            out[n++] = c;
        } else if (c == '+') {
            if (n > 0) out[n++] = '-';
            memcpy(out + n, "plus", 4);
            n += 4;
            dash = 1;
        } else {
            dash = 1;
        }
    }
    out[n] = 0;
    if (!n) snprintf(out, cap, "row");
}

static int parse_metric(rlc_repro_metric *m, const cJSON *v, double threshold, const char *src, int i, char *err,
                        size_t errlen) {
    char where[64];
    snprintf(where, sizeof where, "metrics[%d]", i);
    memset(m, 0, sizeof *m);
    m->tail = 0.1;
    m->threshold = threshold;
    m->decimals = -1;
    const char *better = NULL;
    if (cJSON_IsString(v)) {
        if (strlen(v->valuestring) >= sizeof m->name)
            return rlc_errf(err, errlen, "%s: %s: name too long", src, where);
        snprintf(m->name, sizeof m->name, "%s", v->valuestring);
    } else if (cJSON_IsObject(v)) {
        static const char *const allowed[] = {"metric", "label", "better", "threshold", "tail", "decimals", NULL};
        if (check_keys(v, allowed, src, where, err, errlen)) return -1;
        if (get_str(v, "metric", m->name, sizeof m->name, 1, src, where, err, errlen)) return -1;
        if (get_str(v, "label", m->label, sizeof m->label, 0, src, where, err, errlen)) return -1;
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(v, "better");
        if (b) {
            if (!cJSON_IsString(b)) return rlc_errf(err, errlen, "%s: %s: \"better\" must be a string", src, where);
            better = b->valuestring;
        }
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(v, "threshold");
        if (t) {
            if (!cJSON_IsNumber(t)) return rlc_errf(err, errlen, "%s: %s: \"threshold\" must be a number", src, where);
            m->threshold = t->valuedouble;
        }
        const cJSON *tl = cJSON_GetObjectItemCaseSensitive(v, "tail");
        if (tl) {
            if (!cJSON_IsNumber(tl) || !(tl->valuedouble > 0 && tl->valuedouble <= 1))
                return rlc_errf(err, errlen, "%s: %s: \"tail\" must be a fraction in (0, 1]", src, where);
            m->tail = tl->valuedouble;
        }
        const cJSON *dc = cJSON_GetObjectItemCaseSensitive(v, "decimals");
        if (dc) {
            if (!cJSON_IsNumber(dc) || !(dc->valuedouble >= 0 && dc->valuedouble <= 9) ||
                dc->valuedouble != floor(dc->valuedouble))
                return rlc_errf(err, errlen, "%s: %s: \"decimals\" must be an integer in 0..9", src, where);
            m->decimals = (int)dc->valuedouble;
        }
    } else {
        return rlc_errf(err, errlen, "%s: %s: expected \"agg:key\" or an object {\"metric\": \"agg:key\", ...}", src,
                        where);
    }
    const char *colon = strchr(m->name, ':');
    if (!colon || colon == m->name || !colon[1] || strlen(colon + 1) >= sizeof m->key)
        return rlc_errf(err, errlen, "%s: %s: \"%s\" is not \"agg:key\" (e.g. \"final:eval_success\")", src, where,
                        m->name);
    snprintf(m->key, sizeof m->key, "%s", colon + 1);
    static const char *const aggs[] = {"final", "best", "min", "mean", "tail", "steps_to"};
    int a = -1;
    for (int k = 0; k < 6; k++)
        if ((size_t)(colon - m->name) == strlen(aggs[k]) && strncmp(m->name, aggs[k], strlen(aggs[k])) == 0) a = k;
    if (a < 0)
        return rlc_errf(err, errlen, "%s: %s: unknown aggregation in \"%s\" (expected final, best, min, mean, tail or "
                        "steps_to)", src, where, m->name);
    m->agg = (rlc_repro_agg)a;
    m->better = (m->agg == RLC_AGG_STEPS_TO || m->agg == RLC_AGG_MIN) ? -1 : 1;
    if (better) {
        if (strcmp(better, "higher") == 0) m->better = 1;
        else if (strcmp(better, "lower") == 0) m->better = -1;
        else if (strcmp(better, "none") == 0) m->better = 0;
        else return rlc_errf(err, errlen, "%s: %s: \"better\" must be \"higher\", \"lower\" or \"none\"", src, where);
    }
    if (m->agg == RLC_AGG_STEPS_TO && !isfinite(m->threshold))
        return rlc_errf(err, errlen, "%s: %s: steps_to needs a \"threshold\" (here or at the top level)", src, where);
    if (!m->label[0]) strcpy(m->label, m->name); // same size
    return 0;
}

static int parse_curve(rlc_repro_curve *cv, const cJSON *v, const char *src, int i, char *err, size_t errlen) {
    char where[64];
    snprintf(where, sizeof where, "curves[%d]", i);
    memset(cv, 0, sizeof *cv);
    cv->smooth = 1;
    cv->ymin = cv->ymax = NAN;
    if (cJSON_IsString(v)) {
        if (strlen(v->valuestring) >= sizeof cv->key) return rlc_errf(err, errlen, "%s: %s: key too long", src, where);
        snprintf(cv->key, sizeof cv->key, "%s", v->valuestring);
    } else if (cJSON_IsObject(v)) {
        static const char *const allowed[] = {"key", "label", "smooth", "ymin", "ymax", NULL};
        if (check_keys(v, allowed, src, where, err, errlen)) return -1;
        if (get_str(v, "key", cv->key, sizeof cv->key, 1, src, where, err, errlen)) return -1;
        if (get_str(v, "label", cv->label, sizeof cv->label, 0, src, where, err, errlen)) return -1;
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(v, "smooth");
        if (s) {
            // bounded before the conversion to int: a larger double (1e300) has no int value
            if (!cJSON_IsNumber(s) || !(s->valuedouble >= 1 && s->valuedouble <= 1000000) ||
                s->valuedouble != floor(s->valuedouble))
                return rlc_errf(err, errlen, "%s: %s: \"smooth\" must be an integer in 1..1000000", src, where);
            cv->smooth = (int)s->valuedouble;
        }
        const cJSON *lo = cJSON_GetObjectItemCaseSensitive(v, "ymin");
        const cJSON *hi = cJSON_GetObjectItemCaseSensitive(v, "ymax");
        if ((lo && !cJSON_IsNumber(lo)) || (hi && !cJSON_IsNumber(hi)))
            return rlc_errf(err, errlen, "%s: %s: \"ymin\"/\"ymax\" must be numbers", src, where);
        if (lo) cv->ymin = lo->valuedouble;
        if (hi) cv->ymax = hi->valuedouble;
    } else {
        return rlc_errf(err, errlen, "%s: %s: expected a metrics key or an object {\"key\": ..., \"smooth\": N}", src,
                        where);
    }
    if (!cv->key[0]) return rlc_errf(err, errlen, "%s: %s: empty key", src, where);
    if (!cv->label[0]) strcpy(cv->label, cv->key); // key is shorter
    return 0;
}

static int metric_index(const rlc_repro_config *rc, const char *s) {
    for (int m = 0; m < rc->n_metrics; m++)
        if (strcmp(rc->metrics[m].name, s) == 0 || strcmp(rc->metrics[m].label, s) == 0) return m;
    return -1;
}

static int row_index(const rlc_repro_config *rc, const char *s) {
    for (int r = 0; r < rc->n_rows; r++)
        if (strcmp(rc->rows[r].label, s) == 0 || strcmp(rc->rows[r].id, s) == 0) return r;
    return -1;
}

static int parse_seeds(const cJSON *v, int *seeds, int *n, const char *src, const char *where, char *err,
                       size_t errlen) {
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) < 1)
        return rlc_errf(err, errlen, "%s: %s: expected a non-empty array of seeds", src, where);
    *n = 0;
    for (const cJSON *c = v->child; c; c = c->next) {
        if (!cJSON_IsNumber(c) || c->valuedouble < 0 || c->valuedouble > 2147483647.0 ||
            c->valuedouble != floor(c->valuedouble))
            return rlc_errf(err, errlen, "%s: %s: seeds must be non-negative integers", src, where);
        if (*n >= RLC_REPRO_MAX_SEEDS)
            return rlc_errf(err, errlen, "%s: %s: at most %d seeds", src, where, RLC_REPRO_MAX_SEEDS);
        for (int i = 0; i < *n; i++)
            if (seeds[i] == (int)c->valuedouble)
                return rlc_errf(err, errlen, "%s: %s: seed %d appears twice", src, where, seeds[i]);
        seeds[(*n)++] = (int)c->valuedouble;
    }
    return 0;
}

// A relative base path: as given (from the current directory), else from base_dir and each of its parents.
static char *read_base(const char *path, const char *base_dir, char *found, size_t cap) {
    char *t = rlc_read_file(path, NULL);
    if (t || path[0] == '/' || !base_dir) {
        snprintf(found, cap, "%s", path);
        return t;
    }
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", base_dir);
    for (int up = 0; up < 4; up++) {
        snprintf(found, cap, "%s/%s", dir, path);
        if ((t = rlc_read_file(found, NULL))) return t;
        char *slash = strrchr(dir, '/');
        if (!slash) {
            if (strcmp(dir, ".") == 0) break;
            snprintf(dir, sizeof dir, ".");
        } else if (slash == dir) {
            break;
        } else {
            *slash = 0;
        }
    }
    snprintf(found, cap, "%s", path);
    return NULL;
}

int rlc_repro_config_parse(rlc_repro_config *rc, const char *json, const char *source, const char *base_dir,
                           int quick, char *err, size_t errlen) {
    memset(rc, 0, sizeof *rc);
    const char *src = source ? source : "<repro config>";
    snprintf(rc->source, sizeof rc->source, "%s", src);
    rc->share_sft = 1;
    rc->quick = quick;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(json, &end, 1);
    if (!root) {
        size_t pos = end && end >= json ? (size_t)(end - json) : 0;
        int line = 1;
        for (size_t i = 0; i < pos && json[i]; i++) line += json[i] == '\n';
        return rlc_errf(err, errlen, "%s: malformed JSON near line %d", src, line);
    }
    int rc_ = -1;
    static const char *const top[] = {"comment", "name", "paper", "table", "scaled_down", "paper_note", "base",
                                      "set", "seeds", "quick", "metrics", "threshold", "curves", "rows", "claims",
                                      "share_sft", NULL};
    if (!cJSON_IsObject(root)) {
        rlc_errf(err, errlen, "%s: a repro config must be a JSON object", src);
        goto done;
    }
    const cJSON *dup = rlc_json_duplicate(root);
    if (dup) {
        rlc_errf(err, errlen, "%s: duplicate key \"%s\" (the lookups would take the first silently)", src,
                 dup->string);
        goto done;
    }
    if (check_keys(root, top, src, "top level", err, errlen)) goto done;
    if (get_str(root, "name", rc->name, sizeof rc->name, 1, src, "top level", err, errlen) ||
        get_str(root, "comment", rc->comment, sizeof rc->comment, 0, src, "top level", err, errlen) ||
        get_str(root, "paper", rc->paper, sizeof rc->paper, 0, src, "top level", err, errlen) ||
        get_str(root, "table", rc->table, sizeof rc->table, 0, src, "top level", err, errlen) ||
        get_str(root, "scaled_down", rc->scaled_down, sizeof rc->scaled_down, 0, src, "top level", err, errlen) ||
        get_str(root, "paper_note", rc->paper_note, sizeof rc->paper_note, 0, src, "top level", err, errlen))
        goto done;
    if (!valid_id(rc->name)) {
        rlc_errf(err, errlen, "%s: name \"%s\" must use only letters, digits, '-', '_' and '.'", src, rc->name);
        goto done;
    }
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(root, "share_sft");
    if (sh) {
        if (!cJSON_IsBool(sh)) {
            rlc_errf(err, errlen, "%s: share_sft must be true or false", src);
            goto done;
        }
        rc->share_sft = cJSON_IsTrue(sh);
    }
    // base: a training config file or an inline object
    const cJSON *base = cJSON_GetObjectItemCaseSensitive(root, "base");
    if (cJSON_IsString(base)) {
        char found[600];
        rc->base_json = read_base(base->valuestring, base_dir, found, sizeof found);
        if (!rc->base_json) {
            rlc_errf(err, errlen, "%s: base \"%s\": cannot read it (looked in the current directory and from %s up)",
                     src, base->valuestring, base_dir ? base_dir : ".");
            goto done;
        }
        snprintf(rc->base_label, sizeof rc->base_label, "%s", found);
    } else if (cJSON_IsObject(base)) {
        rc->base_json = rlc_json_print_exact(base); // every digit of large integers (seeds) kept
        char *copy = rlc_malloc(strlen(rc->base_json) + 1); // ours to free() like a file's text
        strcpy(copy, rc->base_json);
        cJSON_free(rc->base_json);
        rc->base_json = copy;
        snprintf(rc->base_label, sizeof rc->base_label, "%s: inline \"base\"", src);
    } else if (base) {
        rlc_errf(err, errlen, "%s: base must be a config file path or an inline config object", src);
        goto done;
    } else {
        snprintf(rc->base_label, sizeof rc->base_label, "<default>");
    }
    const cJSON *set = cJSON_GetObjectItemCaseSensitive(root, "set");
    if (set && parse_set(set, rc->set, &rc->n_set, src, "top level", err, errlen)) goto done;
    if (parse_seeds(cJSON_GetObjectItemCaseSensitive(root, "seeds"), rc->seeds, &rc->n_seeds, src, "seeds", err,
                    errlen))
        goto done;
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "quick");
    if (q) {
        static const char *const qk[] = {"seeds", "set", NULL};
        if (!cJSON_IsObject(q)) {
            rlc_errf(err, errlen, "%s: quick must be an object {\"seeds\": [...], \"set\": {...}}", src);
            goto done;
        }
        if (check_keys(q, qk, src, "quick", err, errlen)) goto done;
        if (quick) {
            const cJSON *qs = cJSON_GetObjectItemCaseSensitive(q, "seeds");
            if (qs && parse_seeds(qs, rc->seeds, &rc->n_seeds, src, "quick.seeds", err, errlen)) goto done;
            const cJSON *qset = cJSON_GetObjectItemCaseSensitive(q, "set");
            if (qset && parse_set(qset, rc->quick_set, &rc->n_quick_set, src, "quick", err, errlen)) goto done;
        }
    }
    double threshold = NAN;
    const cJSON *th = cJSON_GetObjectItemCaseSensitive(root, "threshold");
    if (th) {
        if (!cJSON_IsNumber(th)) {
            rlc_errf(err, errlen, "%s: threshold must be a number", src);
            goto done;
        }
        threshold = th->valuedouble;
    }
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(root, "metrics");
    if (!cJSON_IsArray(ms) || cJSON_GetArraySize(ms) < 1) {
        rlc_errf(err, errlen, "%s: metrics must be a non-empty array (e.g. [\"final:eval_success\"])", src);
        goto done;
    }
    for (const cJSON *c = ms->child; c; c = c->next) {
        if (rc->n_metrics >= RLC_REPRO_MAX_METRICS) {
            rlc_errf(err, errlen, "%s: at most %d metrics", src, RLC_REPRO_MAX_METRICS);
            goto done;
        }
        if (parse_metric(&rc->metrics[rc->n_metrics], c, threshold, src, rc->n_metrics, err, errlen)) goto done;
        for (int m = 0; m < rc->n_metrics; m++)
            if (strcmp(rc->metrics[m].label, rc->metrics[rc->n_metrics].label) == 0) {
                rlc_errf(err, errlen, "%s: two metrics share the label \"%s\"", src, rc->metrics[m].label);
                goto done;
            }
        rc->n_metrics++;
    }
    const cJSON *cs = cJSON_GetObjectItemCaseSensitive(root, "curves");
    if (cs) {
        if (!cJSON_IsArray(cs)) {
            rlc_errf(err, errlen, "%s: curves must be an array", src);
            goto done;
        }
        for (const cJSON *c = cs->child; c; c = c->next) {
            if (rc->n_curves >= RLC_REPRO_MAX_CURVES) {
                rlc_errf(err, errlen, "%s: at most %d curves", src, RLC_REPRO_MAX_CURVES);
                goto done;
            }
            if (parse_curve(&rc->curves[rc->n_curves], c, src, rc->n_curves, err, errlen)) goto done;
            rc->n_curves++;
        }
    } else {
        rlc_repro_curve *cv = &rc->curves[rc->n_curves++];
        memset(cv, 0, sizeof *cv);
        snprintf(cv->key, sizeof cv->key, "eval_success");
        snprintf(cv->label, sizeof cv->label, "eval success");
        cv->smooth = 1;
        cv->ymin = cv->ymax = NAN;
    }
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(root, "rows");
    if (!cJSON_IsArray(rows) || cJSON_GetArraySize(rows) < 1) {
        rlc_errf(err, errlen, "%s: rows must be a non-empty array of {\"label\", \"set\", \"paper\"}", src);
        goto done;
    }
    for (const cJSON *c = rows->child; c; c = c->next) {
        char where[64];
        snprintf(where, sizeof where, "rows[%d]", rc->n_rows);
        if (rc->n_rows >= RLC_REPRO_MAX_ROWS) {
            rlc_errf(err, errlen, "%s: at most %d rows", src, RLC_REPRO_MAX_ROWS);
            goto done;
        }
        static const char *const rk[] = {"label", "id", "set", "paper", "comment", NULL};
        if (!cJSON_IsObject(c)) {
            rlc_errf(err, errlen, "%s: %s: expected an object {\"label\", \"set\", \"paper\"}", src, where);
            goto done;
        }
        if (check_keys(c, rk, src, where, err, errlen)) goto done;
        rlc_repro_row *r = &rc->rows[rc->n_rows];
        memset(r, 0, sizeof *r);
        for (int m = 0; m < RLC_REPRO_MAX_METRICS; m++) r->paper[m] = NAN;
        rc->n_rows++; // counted now so that free() sees its overrides
        if (get_str(c, "label", r->label, sizeof r->label, 1, src, where, err, errlen) ||
            get_str(c, "id", r->id, sizeof r->id, 0, src, where, err, errlen))
            goto done;
        if (!r->id[0]) slugify(r->label, r->id, sizeof r->id);
        if (!valid_id(r->id)) {
            rlc_errf(err, errlen, "%s: %s: id \"%s\" must use only letters, digits, '-', '_' and '.'", src, where,
                     r->id);
            goto done;
        }
        for (int k = 0; k < rc->n_rows - 1; k++)
            if (strcmp(rc->rows[k].id, r->id) == 0 || strcmp(rc->rows[k].label, r->label) == 0) {
                rlc_errf(err, errlen, "%s: %s: label \"%s\" (id \"%s\") is not unique: give the rows distinct labels "
                         "or ids", src, where, r->label, r->id);
                goto done;
            }
        const cJSON *rs = cJSON_GetObjectItemCaseSensitive(c, "set");
        if (rs && parse_set(rs, r->set, &r->n_set, src, where, err, errlen)) goto done;
        const cJSON *pp = cJSON_GetObjectItemCaseSensitive(c, "paper");
        if (pp) {
            if (!cJSON_IsObject(pp)) {
                rlc_errf(err, errlen, "%s: %s: paper must be an object {\"<metric>\": number}", src, where);
                goto done;
            }
            for (const cJSON *p = pp->child; p; p = p->next) {
                int m = metric_index(rc, p->string);
                if (m < 0) {
                    rlc_errf(err, errlen, "%s: %s: paper: \"%s\" is not one of the metrics (name or label)", src, where,
                             p->string);
                    goto done;
                }
                if (!cJSON_IsNumber(p)) {
                    rlc_errf(err, errlen, "%s: %s: paper: \"%s\" must be a number", src, where, p->string);
                    goto done;
                }
                r->paper[m] = p->valuedouble;
            }
        }
    }
    const cJSON *cl = cJSON_GetObjectItemCaseSensitive(root, "claims");
    if (cl) {
        if (!cJSON_IsArray(cl)) {
            rlc_errf(err, errlen, "%s: claims must be an array", src);
            goto done;
        }
        for (const cJSON *c = cl->child; c; c = c->next) {
            char where[64];
            snprintf(where, sizeof where, "claims[%d]", rc->n_claims);
            static const char *const ck[] = {"metric", "better", "worse", "text", "direction", "kind", NULL};
            if (rc->n_claims >= RLC_REPRO_MAX_CLAIMS) {
                rlc_errf(err, errlen, "%s: at most %d claims", src, RLC_REPRO_MAX_CLAIMS);
                goto done;
            }
            if (!cJSON_IsObject(c)) {
                rlc_errf(err, errlen, "%s: %s: expected {\"metric\", \"better\", \"worse\", \"text\"}", src, where);
                goto done;
            }
            if (check_keys(c, ck, src, where, err, errlen)) goto done;
            char metric[80], better[80], worse[80];
            rlc_repro_claim *k = &rc->claims[rc->n_claims];
            if (get_str(c, "metric", metric, sizeof metric, 1, src, where, err, errlen) ||
                get_str(c, "better", better, sizeof better, 1, src, where, err, errlen) ||
                get_str(c, "worse", worse, sizeof worse, 1, src, where, err, errlen) ||
                get_str(c, "text", k->text, sizeof k->text, 1, src, where, err, errlen))
                goto done;
            k->metric = metric_index(rc, metric);
            k->better = row_index(rc, better);
            k->worse = row_index(rc, worse);
            if (k->metric < 0 || k->better < 0 || k->worse < 0 || k->better == k->worse) {
                rlc_errf(err, errlen, "%s: %s: metric \"%s\" or rows \"%s\" / \"%s\" not found (or the same row)", src,
                         where, metric, better, worse);
                goto done;
            }
            k->direction = rc->metrics[k->metric].better ? rc->metrics[k->metric].better : 1;
            char dir[16] = "";
            if (get_str(c, "direction", dir, sizeof dir, 0, src, where, err, errlen)) goto done;
            if (dir[0]) {
                if (strcmp(dir, "higher") == 0) k->direction = 1;
                else if (strcmp(dir, "lower") == 0) k->direction = -1;
                else {
                    rlc_errf(err, errlen, "%s: %s: direction must be \"higher\" or \"lower\"", src, where);
                    goto done;
                }
            }
            char kind[16] = "";
            if (get_str(c, "kind", kind, sizeof kind, 0, src, where, err, errlen)) goto done;
            if (kind[0] && strcmp(kind, "beats") != 0 && strcmp(kind, "matches") != 0) {
                rlc_errf(err, errlen, "%s: %s: kind must be \"beats\" or \"matches\" (got \"%s\")", src, where, kind);
                goto done;
            }
            k->matches = strcmp(kind, "matches") == 0;
            rc->n_claims++;
        }
    }
    rc_ = 0;
done:
    cJSON_Delete(root);
    if (rc_) rlc_repro_config_free(rc);
    return rc_;
}

int rlc_repro_config_load(rlc_repro_config *rc, const char *path, int quick, char *err, size_t errlen) {
    char *text = rlc_read_text(path, "the repro config", err, errlen);
    if (!text) {
        memset(rc, 0, sizeof *rc);
        return -1;
    }
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    int r = rlc_repro_config_parse(rc, text, path, dir, quick, err, errlen);
    free(text);
    return r;
}

void rlc_repro_result_dir(const rlc_repro_config *rc, const char *out_root, char *out, size_t cap) {
    snprintf(out, cap, "%s/%s%s", out_root ? out_root : "results", rc->name, rc->quick ? "-quick" : "");
}

int rlc_repro_cell_config(const rlc_repro_config *rc, int row, int seed_idx, const char *res_dir,
                          const char *const *extra, int n_extra, rlc_config *cfg, char *err, size_t errlen) {
    const rlc_repro_row *r = &rc->rows[row];
    int n = rc->n_set + r->n_set + rc->n_quick_set + n_extra + 3;
    const char **ov = rlc_calloc((size_t)n, sizeof(char *));
    // The overrides of the repro config are not typed on a command line: their messages name the file and the
    // section they came from (the command line's --set keeps its "--set" label: NULL).
    char **labels = rlc_calloc((size_t)n, sizeof(char *));
    char seed[48], name[160], out[1200];
    int k = 0;
#define REPRO_OV(s, ...)                                                  \
    do {                                                                  \
        ov[k] = (s);                                                      \
        rlc_sb b_ = {0};                                                  \
        rlc_sb_printf(&b_, __VA_ARGS__);                                  \
        labels[k++] = rlc_sb_take(&b_);                                   \
    } while (0)
    for (int i = 0; i < rc->n_set; i++) REPRO_OV(rc->set[i], "%s: set: %s", rc->source, rc->set[i]);
    for (int i = 0; i < r->n_set; i++)
        REPRO_OV(r->set[i], "%s: rows[%d] (\"%s\") set: %s", rc->source, row, r->label, r->set[i]);
    for (int i = 0; i < rc->n_quick_set; i++) REPRO_OV(rc->quick_set[i], "%s: quick.set: %s", rc->source, rc->quick_set[i]);
    for (int i = 0; i < n_extra; i++) ov[k++] = extra[i];
    snprintf(seed, sizeof seed, "seed=%d", rc->seeds[seed_idx]);
    snprintf(name, sizeof name, "name=%s-s%d", r->id, rc->seeds[seed_idx]);
    snprintf(out, sizeof out, "out_dir=%s/runs", res_dir);
    REPRO_OV(seed, "%s: seeds[%d]: %s", rc->source, seed_idx, seed);
    REPRO_OV(name, "%s: rows[%d] (\"%s\"): run %s", rc->source, row, r->label, name);
    REPRO_OV(out, "%s: results directory: %s", rc->source, out);
#undef REPRO_OV
    char src[700];
    snprintf(src, sizeof src, "%s (base of %s, row \"%s\")", rc->base_label, rc->source, r->label);
    int ret = rlc_config_parse_labeled(cfg, rc->base_json, src, ov, (const char *const *)labels, k, err, errlen);
    for (int i = 0; i < k; i++) free(labels[i]);
    free(labels);
    free(ov);
    return ret;
}

// ---------------------------------------------------------------------------------------------------------------
// metrics and the table math

void rlc_repro_series_free(rlc_repro_series *s) {
    free(s->step);
    free(s->val);
    memset(s, 0, sizeof *s);
}

typedef struct rec { double step, val; int order; } rec;

static int rec_cmp(const void *a, const void *b) {
    const rec *x = a, *y = b;
    if (x->step != y->step) return x->step < y->step ? -1 : 1;
    return x->order - y->order;
}

int rlc_repro_read_series(const char *metrics_path, const char *key, rlc_repro_series *s) {
    memset(s, 0, sizeof *s);
    char *txt = rlc_read_file(metrics_path, NULL);
    if (!txt) return -1;
    int cap = 256, n = 0, order = 0;
    rec *r = rlc_malloc((size_t)cap * sizeof(rec));
    for (char *line = txt, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        cJSON *o = cJSON_Parse(line);
        if (!o) continue; // a line cut by a crash
        const cJSON *ph = cJSON_GetObjectItemCaseSensitive(o, "phase");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "step");
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
        if (cJSON_IsString(ph) && (strcmp(ph->valuestring, "rl") == 0 || strcmp(ph->valuestring, "rl_eval") == 0) &&
            cJSON_IsNumber(st) && cJSON_IsNumber(v)) {
            if (n == cap) {
                cap *= 2;
                rec *nr = realloc(r, (size_t)cap * sizeof(rec));
                if (!nr) RLC_FATAL("out of memory reading %s", metrics_path);
                r = nr;
            }
            r[n].step = st->valuedouble;
            r[n].val = v->valuedouble;
            r[n].order = order++;
            n++;
        }
        cJSON_Delete(o);
    }
    free(txt);
    qsort(r, (size_t)n, sizeof(rec), rec_cmp);
    s->step = rlc_malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    s->val = rlc_malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    for (int i = 0; i < n; i++) {
        if (i + 1 < n && r[i + 1].step == r[i].step) continue; // a later record of the same step wins
        s->step[s->n] = r[i].step;
        s->val[s->n] = r[i].val;
        s->n++;
    }
    free(r);
    return 0;
}

rlc_repro_stat rlc_repro_stats(const double *x, int n) {
    rlc_repro_stat st = {NAN, NAN, 0};
    double sum = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i])) sum += x[i], st.n_ok++;
    if (!st.n_ok) return st;
    st.mean = sum / st.n_ok;
    double ss = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i])) ss += (x[i] - st.mean) * (x[i] - st.mean);
    st.std = st.n_ok > 1 ? sqrt(ss / (st.n_ok - 1)) : 0;
    return st;
}

double rlc_repro_metric_value(const rlc_repro_metric *m, const rlc_repro_series *s) {
    if (s->n == 0) return NAN;
    switch (m->agg) {
    case RLC_AGG_FINAL: return s->val[s->n - 1];
    case RLC_AGG_BEST:
    case RLC_AGG_MIN: {
        double v = s->val[0];
        for (int i = 1; i < s->n; i++) v = m->agg == RLC_AGG_BEST ? fmax(v, s->val[i]) : fmin(v, s->val[i]);
        return v;
    }
    case RLC_AGG_MEAN:
    case RLC_AGG_TAIL: {
        int k = m->agg == RLC_AGG_MEAN ? s->n : (int)ceil(m->tail * s->n - 1e-9);
        if (k < 1) k = 1;
        if (k > s->n) k = s->n;
        double t = 0;
        for (int i = s->n - k; i < s->n; i++) t += s->val[i];
        return t / k;
    }
    case RLC_AGG_STEPS_TO:
        for (int i = 0; i < s->n; i++)
            if (s->val[i] >= m->threshold) return s->step[i];
        return NAN;
    }
    return NAN;
}

static const double *cell_vals(const rlc_repro_config *rc, const double *vals, int r, int m) {
    return vals + ((size_t)r * rc->n_metrics + m) * rc->n_seeds;
}

static int better_than(int dir, double a, double b) { return dir > 0 ? a > b : a < b; }

int rlc_repro_best_row(const rlc_repro_config *rc, const double *vals, int m) {
    int dir = rc->metrics[m].better, best = -1;
    if (!dir) return -1;
    double bv = NAN;
    for (int r = 0; r < rc->n_rows; r++) {
        rlc_repro_stat st = rlc_repro_stats(cell_vals(rc, vals, r, m), rc->n_seeds);
        if (!st.n_ok) continue;
        // steps_to: a row that reached the threshold with fewer seeds is not "best" over one that always did
        if (rc->metrics[m].agg == RLC_AGG_STEPS_TO && best >= 0) {
            int nb = rlc_repro_stats(cell_vals(rc, vals, best, m), rc->n_seeds).n_ok;
            if (st.n_ok != nb) {
                if (st.n_ok > nb) best = r, bv = st.mean;
                continue;
            }
        }
        if (best < 0 || better_than(dir, st.mean, bv)) best = r, bv = st.mean;
    }
    return best;
}

int rlc_repro_best_paper_row(const rlc_repro_config *rc, int m) {
    int dir = rc->metrics[m].better, best = -1;
    if (!dir) return -1;
    for (int r = 0; r < rc->n_rows; r++)
        if (isfinite(rc->rows[r].paper[m]) &&
            (best < 0 || better_than(dir, rc->rows[r].paper[m], rc->rows[best].paper[m])))
            best = r;
    return best;
}

// Row r ties with the best row of column m (same mean; for steps_to also as many seeds reaching the threshold).
static int ties_best(const rlc_repro_config *rc, const double *vals, int m, int best, int r) {
    if (best < 0) return 0;
    if (r == best) return 1;
    rlc_repro_stat a = rlc_repro_stats(cell_vals(rc, vals, r, m), rc->n_seeds);
    rlc_repro_stat b = rlc_repro_stats(cell_vals(rc, vals, best, m), rc->n_seeds);
    return a.n_ok && a.mean == b.mean && a.n_ok == b.n_ok;
}

static int auto_decimals(const rlc_repro_metric *m, double v) {
    if (m->decimals >= 0) return m->decimals;
    if (m->agg == RLC_AGG_STEPS_TO) return 0;
    double a = fabs(v);
    return a >= 100 ? 0 : a >= 10 ? 1 : 3;
}

void rlc_repro_format_cell(const rlc_repro_metric *m, const double *x, int n, char *out, size_t cap) {
    rlc_repro_stat st = rlc_repro_stats(x, n);
    if (!st.n_ok) {
        snprintf(out, cap, "%s", m->agg == RLC_AGG_STEPS_TO && n > 0 ? "not reached" : "n/a");
        return;
    }
    int d = auto_decimals(m, st.mean);
    if (st.n_ok > 1) snprintf(out, cap, "%.*f ± %.*f", d, st.mean, d, st.std);
    else snprintf(out, cap, "%.*f", d, st.mean);
    if (m->agg == RLC_AGG_STEPS_TO && st.n_ok < n) {
        size_t l = strlen(out);
        snprintf(out + l, cap - l, " (%d/%d reached)", st.n_ok, n);
    }
}

int rlc_repro_claim_verdict(const rlc_repro_config *rc, const double *vals, int c, char *text, size_t cap) {
    const rlc_repro_claim *k = &rc->claims[c];
    const rlc_repro_metric *m = &rc->metrics[k->metric];
    rlc_repro_stat a = rlc_repro_stats(cell_vals(rc, vals, k->better, k->metric), rc->n_seeds);
    rlc_repro_stat b = rlc_repro_stats(cell_vals(rc, vals, k->worse, k->metric), rc->n_seeds);
    char ca[96], cb[96];
    rlc_repro_format_cell(m, cell_vals(rc, vals, k->better, k->metric), rc->n_seeds, ca, sizeof ca);
    rlc_repro_format_cell(m, cell_vals(rc, vals, k->worse, k->metric), rc->n_seeds, cb, sizeof cb);
    int dir = k->direction;
    int verdict;
    char why[200];
    if (m->agg == RLC_AGG_STEPS_TO && (a.n_ok == 0 || b.n_ok == 0) && (a.n_ok || b.n_ok)) {
        verdict = (a.n_ok ? 1 : -1) * (dir < 0 ? 1 : -1); // only one reached it: the first to get there
        snprintf(why, sizeof why, "only %s reached the threshold",
                 a.n_ok ? rc->rows[k->better].label : rc->rows[k->worse].label);
    } else if (!a.n_ok || !b.n_ok) {
        verdict = 0;
        snprintf(why, sizeof why, "no values to compare");
    } else {
        double diff = (a.mean - b.mean) * dir; // > 0: in the paper's direction
        verdict = diff > 0 ? 1 : diff < 0 ? -1 : 0;
        double se = a.n_ok > 1 && b.n_ok > 1 ? sqrt(a.std * a.std / a.n_ok + b.std * b.std / b.n_ok) : NAN;
        int d = auto_decimals(m, fabs(a.mean - b.mean)) + 1;
        // "matches": as good as, i.e. not worse beyond seed noise (|t| < 2 counts as a match)
        if (k->matches) verdict = diff >= 0 || !(isfinite(se) && se > 0) || diff / se > -2 ? 1 : -1;
        if (k->matches && !(isfinite(se) && se > 0) && diff < 0) verdict = 0; // no spread: cannot tell
        if (isfinite(se) && se > 0) {
            double t = diff / se;
            snprintf(why, sizeof why, "difference %+.*f in the paper's direction, Welch t = %.1f%s", d, diff, t,
                     k->matches ? (verdict > 0 ? (diff < 0 ? ", a match within seed noise" : ", a match")
                                               : ", worse beyond seed noise")
                     : verdict && fabs(t) < 2 ? ", within seed noise" : "");
        } else if (a.n_ok > 1 && b.n_ok > 1) {
            snprintf(why, sizeof why, "difference %+.*f in the paper's direction, no spread over seeds", d, diff);
        } else {
            snprintf(why, sizeof why, "difference %+.*f in the paper's direction, single seed: no spread", d, diff);
        }
    }
    if (text)
        snprintf(text, cap, "%s: %s (ours: %s %s vs %s %s; %s)",
                 verdict > 0 ? "**agrees**" : verdict < 0 ? "**disagrees**" : "**undetermined**", k->text,
                 rc->rows[k->better].label, ca, rc->rows[k->worse].label, cb, why);
    return verdict;
}

// Markdown table cells must not contain '|'.
static void md_text(rlc_sb *b, const char *s) {
    for (; *s; s++) rlc_sb_printf(b, *s == '|' ? "\\|" : "%c", *s);
}

char *rlc_repro_table_md(const rlc_repro_config *rc, const double *vals, const rlc_repro_meta *meta,
                         const char *const *svg_files) {
    rlc_sb b = {0};
    rlc_sb_printf(&b, "# %s%s\n\n", rc->name, rc->quick ? " (quick smoke run)" : "");
    if (rc->quick)
        rlc_sb_printf(&b, "**Quick smoke run (`--quick`: %d seed(s), few steps): it checks the pipeline; it reproduces "
                          "nothing.**\n\n", rc->n_seeds);
    if (rc->comment[0]) rlc_sb_printf(&b, "%s\n\n", rc->comment);
    if (rc->paper[0]) rlc_sb_printf(&b, "- **Paper:** %s\n", rc->paper);
    if (rc->table[0]) rlc_sb_printf(&b, "- **Table:** %s\n", rc->table);
    if (rc->scaled_down[0]) rlc_sb_printf(&b, "- **Scaled down:** %s\n", rc->scaled_down);
    if (rc->n_claims) {
        int agree = 0, dis = 0;
        for (int c = 0; c < rc->n_claims; c++) {
            int v = rlc_repro_claim_verdict(rc, vals, c, NULL, 0);
            agree += v > 0, dis += v < 0;
        }
        rlc_sb_printf(&b, "- **Agreement with the paper's direction:** %s: %d of %d claims agree, %d disagree, %d "
                          "undetermined (details below)\n",
                      agree == rc->n_claims ? "agrees"
                      : agree == 0 && dis == 0 ? "undetermined"
                      : agree == 0 ? "does not agree"
                                   : "partly agrees",
                      agree, rc->n_claims, dis, rc->n_claims - agree - dis);
    }
    rlc_sb_printf(&b, "\n## Results\n\nMean ± std over %d seed(s) (", rc->n_seeds);
    for (int s = 0; s < rc->n_seeds; s++) rlc_sb_printf(&b, "%s%d", s ? ", " : "seeds ", rc->seeds[s]);
    rlc_sb_printf(&b, "); the best entry of each column in **bold**");
    int any_paper = 0;
    for (int r = 0; r < rc->n_rows; r++)
        for (int m = 0; m < rc->n_metrics; m++) any_paper |= isfinite(rc->rows[r].paper[m]);
    if (any_paper) rlc_sb_printf(&b, "; \"paper\" columns: the published numbers (their scale, not ours)");
    rlc_sb_printf(&b, ".\n\n| method |");
    int has_paper[RLC_REPRO_MAX_METRICS];
    for (int m = 0; m < rc->n_metrics; m++) {
        has_paper[m] = 0;
        for (int r = 0; r < rc->n_rows; r++) has_paper[m] |= isfinite(rc->rows[r].paper[m]);
        rlc_sb_printf(&b, " ");
        md_text(&b, rc->metrics[m].label);
        rlc_sb_printf(&b, " |");
        if (has_paper[m]) {
            rlc_sb_printf(&b, " ");
            md_text(&b, rc->metrics[m].label);
            rlc_sb_printf(&b, " (paper) |");
        }
    }
    rlc_sb_printf(&b, "\n|---|");
    for (int m = 0; m < rc->n_metrics; m++) rlc_sb_printf(&b, has_paper[m] ? "---:|---:|" : "---:|");
    rlc_sb_printf(&b, "\n");
    int best[RLC_REPRO_MAX_METRICS], pbest[RLC_REPRO_MAX_METRICS];
    rlc_repro_metric col[RLC_REPRO_MAX_METRICS]; // with the decimals of the column's largest value
    for (int m = 0; m < rc->n_metrics; m++) {
        best[m] = rlc_repro_best_row(rc, vals, m);
        pbest[m] = rlc_repro_best_paper_row(rc, m);
        col[m] = rc->metrics[m];
        double big = 0;
        for (int r = 0; r < rc->n_rows; r++) {
            rlc_repro_stat st = rlc_repro_stats(cell_vals(rc, vals, r, m), rc->n_seeds);
            if (st.n_ok && fabs(st.mean) > big) big = fabs(st.mean);
        }
        col[m].decimals = auto_decimals(&rc->metrics[m], big);
    }
    for (int r = 0; r < rc->n_rows; r++) {
        rlc_sb_printf(&b, "| ");
        md_text(&b, rc->rows[r].label);
        rlc_sb_printf(&b, " |");
        for (int m = 0; m < rc->n_metrics; m++) {
            char cell[160];
            rlc_repro_format_cell(&col[m], cell_vals(rc, vals, r, m), rc->n_seeds, cell, sizeof cell);
            rlc_sb_printf(&b, ties_best(rc, vals, m, best[m], r) ? " **%s** |" : " %s |", cell);
            if (has_paper[m]) {
                double p = rc->rows[r].paper[m];
                int pb = pbest[m] >= 0 && p == rc->rows[pbest[m]].paper[m];
                if (isfinite(p)) rlc_sb_printf(&b, pb ? " **%g** |" : " %g |", p);
                else rlc_sb_printf(&b, " – |");
            }
        }
        rlc_sb_printf(&b, "\n");
    }
    rlc_sb_printf(&b, "\nColumns: ");
    for (int m = 0; m < rc->n_metrics; m++) {
        const rlc_repro_metric *mm = &rc->metrics[m];
        static const char *const what[] = {"value at the last step", "maximum over the run", "minimum over the run",
                                           "mean over the run", "mean over the last part of the run",
                                           "first RL step reaching the threshold"};
        rlc_sb_printf(&b, "%s`%s` = %s of `%s`", m ? "; " : "", mm->label, what[mm->agg], mm->key);
        if (mm->agg == RLC_AGG_TAIL) rlc_sb_printf(&b, " (last %.0f%% of the records)", mm->tail * 100);
        if (mm->agg == RLC_AGG_STEPS_TO) rlc_sb_printf(&b, " %g", mm->threshold);
        rlc_sb_printf(&b, "%s", mm->better > 0   ? " (higher is better)"
                                : mm->better < 0 ? " (lower is better)"
                                                 : " (no best marked)");
    }
    rlc_sb_printf(&b, ".%s%s\n", rc->paper_note[0] ? " " : "", rc->paper_note);
    if (rc->n_claims) {
        rlc_sb_printf(&b, "\n## Direction vs the paper\n\n");
        for (int c = 0; c < rc->n_claims; c++) {
            char t[1200];
            rlc_repro_claim_verdict(rc, vals, c, t, sizeof t);
            rlc_sb_printf(&b, "- %s\n", t);
        }
        rlc_sb_printf(&b, "\n\"Agrees\" means our mean moves in the direction the paper reports; |t| < 2 (Welch) "
                          "means the gap is within the spread over seeds and the agreement is weak.\n");
    }
    if (rc->n_curves && svg_files) {
        rlc_sb_printf(&b, "\n## Learning curves\n\nMean over seeds (line) and ± one std (band), against the RL "
                          "step.\n\n");
        for (int c = 0; c < rc->n_curves; c++) rlc_sb_printf(&b, "![%s](%s)\n\n", rc->curves[c].label, svg_files[c]);
    }
    rlc_sb_printf(&b, "\n## Setup\n\n");
    rlc_sb_printf(&b, "- Base training config: `%s`%s\n", rc->base_label, rc->n_set ? ", with" : "");
    for (int i = 0; i < rc->n_set; i++) rlc_sb_printf(&b, "%s`%s`", i ? ", " : "  ", rc->set[i]);
    if (rc->n_set) rlc_sb_printf(&b, "\n");
    if (rc->n_quick_set) {
        rlc_sb_printf(&b, "- Quick overrides:");
        for (int i = 0; i < rc->n_quick_set; i++) rlc_sb_printf(&b, " `%s`", rc->quick_set[i]);
        rlc_sb_printf(&b, "\n");
    }
    rlc_sb_printf(&b, "- Rows (overrides of the base):\n");
    for (int r = 0; r < rc->n_rows; r++) {
        rlc_sb_printf(&b, "  - %s (`runs/%s-s*`):", rc->rows[r].label, rc->rows[r].id);
        for (int i = 0; i < rc->rows[r].n_set; i++) rlc_sb_printf(&b, " `%s`", rc->rows[r].set[i]);
        if (!rc->rows[r].n_set) rlc_sb_printf(&b, " (none)");
        rlc_sb_printf(&b, "\n");
    }
    rlc_sb_printf(&b, "- Every run's effective config: `runs/<row>-s<seed>/config.json`; per-step metrics: "
                      "`metrics.jsonl` beside it.%s\n",
                  rc->share_sft ? " Rows that agree on the SFT warm start (seed, model, task, sft) share it "
                                  "(`sft/`), so they differ only in the RL phase." : "");
    if (meta) {
        if (meta->command) rlc_sb_printf(&b, "- Command: `%s`\n", meta->command);
        if (meta->commit) rlc_sb_printf(&b, "- Commit: `%s`\n", meta->commit);
        if (meta->machine) rlc_sb_printf(&b, "- Machine: %s\n", meta->machine);
        if (meta->date) rlc_sb_printf(&b, "- Date: %s\n", meta->date);
        if (meta->ranks > 0) rlc_sb_printf(&b, "- Ranks: %d\n", meta->ranks);
        rlc_sb_printf(&b, "- Cells finished: %d of %d; compute (sum of step and eval times over all runs): %.1f min; "
                          "wall time of the invocation that wrote this table: %.1f min\n",
                      meta->cells_done, meta->cells_total, meta->compute_s / 60, meta->wall_s / 60);
    }
    return rlc_sb_take(&b);
}

// CSV field, quoted when needed.
static void csv_field(rlc_sb *b, const char *s) {
    if (!strpbrk(s, ",\"\n")) {
        rlc_sb_printf(b, "%s", s);
        return;
    }
    rlc_sb_printf(b, "\"");
    for (; *s; s++) rlc_sb_printf(b, *s == '"' ? "\"\"" : "%c", *s);
    rlc_sb_printf(b, "\"");
}

static void csv_num(rlc_sb *b, double v) {
    if (isfinite(v)) rlc_sb_printf(b, "%.9g", v);
}

char *rlc_repro_table_csv(const rlc_repro_config *rc, const double *vals) {
    rlc_sb b = {0};
    rlc_sb_printf(&b, "row,id,metric,label,mean,std,n_values,n_seeds,best,paper,values\n");
    for (int r = 0; r < rc->n_rows; r++)
        for (int m = 0; m < rc->n_metrics; m++) {
            const double *x = cell_vals(rc, vals, r, m);
            rlc_repro_stat st = rlc_repro_stats(x, rc->n_seeds);
            csv_field(&b, rc->rows[r].label);
            rlc_sb_printf(&b, ",%s,", rc->rows[r].id);
            csv_field(&b, rc->metrics[m].name);
            rlc_sb_printf(&b, ",");
            csv_field(&b, rc->metrics[m].label);
            rlc_sb_printf(&b, ",");
            csv_num(&b, st.mean);
            rlc_sb_printf(&b, ",");
            csv_num(&b, st.n_ok ? st.std : NAN);
            int best = ties_best(rc, vals, m, rlc_repro_best_row(rc, vals, m), r);
            rlc_sb_printf(&b, ",%d,%d,%d,", st.n_ok, rc->n_seeds, best);
            csv_num(&b, rc->rows[r].paper[m]);
            rlc_sb_printf(&b, ",");
            for (int s = 0; s < rc->n_seeds; s++) {
                if (s) rlc_sb_printf(&b, ";");
                if (isfinite(x[s])) rlc_sb_printf(&b, "%.9g", x[s]);
                else rlc_sb_printf(&b, "nan");
            }
            rlc_sb_printf(&b, "\n");
        }
    return rlc_sb_take(&b);
}

// ---------------------------------------------------------------------------------------------------------------
// cells, SFT jobs and their state on disk

typedef struct cell {
    int row, seed_idx;
    char dir[1024];     // runs/<id>-s<seed>
    int sft;            // index of its shared SFT job, or -1 (no SFT phase, or sharing off)
    rlc_config cfg;
} cell;

typedef struct sft_job {
    char dir[1024];     // sft/<hash>-s<seed>
    rlc_config cfg;     // the first cell's config, renamed (only seed, model, task and sft matter)
} sft_job;

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

// What the SFT phase's weights depend on: seed, model (with the value head PPO adds), task, sft.
static uint64_t sft_key(const rlc_config *cfg) {
    rlc_config c = *cfg;
    if (strcmp(c.rl.method, "ppo") == 0) c.model.value_head = 1;
    char *js = rlc_config_to_json(&c);
    cJSON *o = cJSON_Parse(js), *k = cJSON_CreateObject();
    free(js);
    const char *keep[] = {"seed", "model", "task", "sft", "device", "precision"};
    // precision joined the key after jobs were recorded: at "auto" it is left out, so their keys stay the same
    const int n_keep = strcmp(c.precision, "auto") ? 6 : 5;
    for (int i = 0; i < n_keep; i++)
        cJSON_AddItemToObject(k, keep[i], cJSON_Duplicate(cJSON_GetObjectItem(o, keep[i]), 1));
    rlc_json_exact_numbers(k); // seeds that differ in their 16th digit are different jobs
    char *s = cJSON_PrintUnformatted(k);
    uint64_t h = fnv1a(s);
    cJSON_free(s);
    cJSON_Delete(k);
    cJSON_Delete(o);
    return h;
}

// The first key path where two config objects differ ("" when they agree).
static void first_diff(const cJSON *a, const cJSON *b, const char *prefix, char *out, size_t cap) {
    for (const cJSON *c = a->child; c && !out[0]; c = c->next) {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(b, c->string);
        char path[256];
        snprintf(path, sizeof path, "%s%s%s", prefix, prefix[0] ? "." : "", c->string);
        if (d && cJSON_IsObject(c) && cJSON_IsObject(d)) first_diff(c, d, path, out, cap);
        else if (!d || !cJSON_Compare(c, d, 1)) snprintf(out, cap, "%s", path);
    }
    for (const cJSON *d = b->child; d && !out[0]; d = d->next)
        if (!cJSON_GetObjectItemCaseSensitive(a, d->string))
            snprintf(out, cap, "%s%s%s", prefix, prefix[0] ? "." : "", d->string);
}

// Drops from `want` the keys `have` lacks whose value is the embedded default's (dflt): keys added to rlc after
// the run was recorded, at their default, change nothing the run did.
static void drop_added_defaults(const cJSON *have, cJSON *want, const cJSON *dflt) {
    cJSON *w = want->child;
    while (w) {
        cJSON *next = w->next;
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(have, w->string);
        const cJSON *d = dflt ? cJSON_GetObjectItemCaseSensitive(dflt, w->string) : NULL;
        if (!h && d && cJSON_Compare(w, d, 1)) cJSON_DeleteItemFromObjectCaseSensitive(want, w->string);
        else if (h && cJSON_IsObject(h) && cJSON_IsObject(w)) drop_added_defaults(h, w, d);
        w = next;
    }
}

// The run's config.json agrees with cfg (out_dir aside: the results may have moved; keys added since, at their
// default, aside); else diff names the first key that differs.
static int config_matches(const char *dir, const rlc_config *cfg, char *diff, size_t cap) {
    char p[1100];
    diff[0] = 0;
    snprintf(p, sizeof p, "%s/config.json", dir);
    char *have = rlc_read_file(p, NULL);
    if (!have) return 1; // nothing recorded yet
    char *want = rlc_config_to_json(cfg);
    cJSON *a = cJSON_Parse(have), *b = cJSON_Parse(want);
    free(have);
    free(want);
    if (!a || !b) snprintf(diff, cap, "(unreadable config.json)");
    else {
        cJSON_DeleteItemFromObject(a, "out_dir");
        cJSON_DeleteItemFromObject(b, "out_dir");
        rlc_config dc;
        char e2[256];
        cJSON *dj = NULL;
        if (rlc_config_parse(&dc, NULL, "<default>", NULL, 0, e2, sizeof e2) == 0) {
            char *djs = rlc_config_to_json(&dc);
            dj = cJSON_Parse(djs);
            free(djs);
        }
        drop_added_defaults(a, b, dj);
        cJSON_Delete(dj);
        first_diff(a, b, "", diff, cap);
    }
    cJSON_Delete(a);
    cJSON_Delete(b);
    return diff[0] == 0;
}

static int is_done(const char *dir) {
    char p[1100];
    snprintf(p, sizeof p, "%s/done.json", dir);
    return file_exists(p);
}

// A marker written by this invocation: `failed` (the run failed) or `stopped` (stopped by --max-steps); its first
// line is the invocation id, so that markers of an earlier invocation mean nothing.
static int is_marked(const char *dir, const char *name, uint64_t run_id) {
    char p[1100], line[128];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (read_line(p, line, sizeof line) != 0) return 0;
    return strtoull(line, NULL, 16) == run_id;
}

static void mark(const char *dir, const char *name, uint64_t run_id, const char *msg) {
    char p[1100], text[1400], err[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    snprintf(text, sizeof text, "%016llx\n%s\n", (unsigned long long)run_id, msg);
    mkdir_p(dir);
    if (write_text(p, text, err, sizeof err) != 0) fprintf(stderr, "rlc repro: %s\n", err);
}

static void mark_failed(const char *dir, uint64_t run_id, const char *msg) { mark(dir, "failed", run_id, msg); }

static int has_ckpt(const char *dir) {
    char p[1100];
    snprintf(p, sizeof p, "%s/ckpt/latest", dir);
    return file_exists(p);
}

// Step and eval seconds of a run, from its metrics (robust to resumes: the last record of each step counts).
static double run_compute_s(const char *dir) {
    char p[1100];
    snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
    char *txt = rlc_read_file(p, NULL);
    if (!txt) return 0;
    // (phase, step) -> seconds; later records replace earlier ones
    int cap = 1024, n = 0;
    struct { int phase, step; double t; } *r = rlc_malloc((size_t)cap * sizeof(*r));
    for (char *line = txt, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        cJSON *o = cJSON_Parse(line);
        if (!o) continue;
        const cJSON *ph = cJSON_GetObjectItem(o, "phase"), *st = cJSON_GetObjectItem(o, "step");
        double t = 0;
        const char *tk[] = {"time_step", "time_update", "time_eval"};
        for (int i = 0; i < 3; i++) {
            const cJSON *v = cJSON_GetObjectItem(o, tk[i]);
            if (cJSON_IsNumber(v) && !(i == 1 && cJSON_GetObjectItem(o, "time_step"))) t += v->valuedouble;
        }
        if (cJSON_IsString(ph) && cJSON_IsNumber(st)) {
            int phase = strncmp(ph->valuestring, "rl", 2) == 0 ? 2 : 0;
            phase += strstr(ph->valuestring, "_eval") != NULL;
            int k = 0;
            while (k < n && !(r[k].phase == phase && r[k].step == st->valueint)) k++;
            if (k == n) {
                if (n == cap) {
                    cap *= 2;
                    void *nr = realloc(r, (size_t)cap * sizeof(*r));
                    if (!nr) RLC_FATAL("out of memory");
                    r = nr;
                }
                n++;
            }
            r[k].phase = phase, r[k].step = st->valueint, r[k].t = t;
        }
        cJSON_Delete(o);
    }
    double sum = 0;
    for (int i = 0; i < n; i++) sum += r[i].t;
    free(r);
    free(txt);
    return sum;
}

static int write_done(const char *dir, const rlc_config *cfg, double wall, char *err, size_t errlen) {
    char p[1100], text[256];
    snprintf(p, sizeof p, "%s/done.json", dir);
    snprintf(text, sizeof text,
             "{\"rl_steps\": %d, \"sft_steps\": %d, \"compute_s\": %.3f, \"last_invocation_s\": %.3f}\n",
             cfg->rl.steps, cfg->sft.steps, run_compute_s(dir), wall);
    return write_text(p, text, err, errlen);
}

// A fresh start: no stale metrics (the trainer appends) or partial checkpoints.
static void clear_run(const char *dir) {
    char p[1100];
    const char *names[] = {"metrics.jsonl", "ckpt", "ckpt.tmp", "ref", "failed", "stopped", "config.json"};
    for (int i = 0; i < 7; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        rm_rf(p);
    }
}

// Copy the final SFT checkpoint of sft_dir into dir/ckpt (atomically: ckpt.tmp, then rename).
static int seed_from_sft(const char *dir, const char *sft_dir, char *err, size_t errlen) {
    char latest[256], from[1400], tmp[1100], to[1400], p[1400], fin[1100];
    snprintf(p, sizeof p, "%s/ckpt/latest", sft_dir);
    if (read_line(p, latest, sizeof latest) != 0 || !latest[0])
        return rlc_errf(err, errlen, "%s: no checkpoint to start from", sft_dir);
    snprintf(tmp, sizeof tmp, "%s/ckpt.tmp", dir);
    rm_rf(tmp);
    snprintf(from, sizeof from, "%s/ckpt/%s", sft_dir, latest);
    snprintf(to, sizeof to, "%s/%s", tmp, latest);
    if (copy_dir_files(from, to) != 0) return rlc_errf(err, errlen, "copying %s to %s failed", from, to);
    snprintf(p, sizeof p, "%s/latest", tmp);
    char line[300];
    snprintf(line, sizeof line, "%s\n", latest);
    if (write_text(p, line, err, errlen) != 0) return -1;
    snprintf(fin, sizeof fin, "%s/ckpt", dir);
    if (rename(tmp, fin) != 0) return rlc_errf(err, errlen, "rename %s -> %s: %s", tmp, fin, strerror(errno));
    return 0;
}

// ---------------------------------------------------------------------------------------------------------------
// provenance

static void run_cmd(const char *cmd, char *out, size_t cap) {
    out[0] = 0;
    FILE *f = popen(cmd, "r");
    if (!f) return;
    if (!fgets(out, (int)cap, f)) out[0] = 0;
    pclose(f);
    out[strcspn(out, "\r\n")] = 0;
}

static void commit_of(const char *config_path, char *out, size_t cap) {
    char dir[1024], cmd[1400], h[64], dirty[64];
    snprintf(dir, sizeof dir, "%s", config_path);
    char *s = strrchr(dir, '/');
    if (s) *s = 0;
    else snprintf(dir, sizeof dir, ".");
    snprintf(cmd, sizeof cmd, "git -C '%s' rev-parse --short=12 HEAD 2>/dev/null", dir);
    run_cmd(cmd, h, sizeof h);
    snprintf(cmd, sizeof cmd, "git -C '%s' status --porcelain --untracked-files=no 2>/dev/null | head -1", dir);
    run_cmd(cmd, dirty, sizeof dirty);
    if (!h[0]) snprintf(out, cap, "unknown (not a git checkout)");
    else snprintf(out, cap, "%s%s", h, dirty[0] ? " (with uncommitted changes)" : "");
}

static void machine_of(char *out, size_t cap) {
    char cpu[256] = "unknown CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "model name", 10) == 0) {
                char *c = strchr(line, ':');
                if (c) {
                    c++;
                    while (*c == ' ') c++;
                    snprintf(cpu, sizeof cpu, "%.*s", (int)strcspn(c, "\n"), c);
                }
                break;
            }
        fclose(f);
    }
    struct utsname u;
    char os[200] = "";
    if (uname(&u) == 0) snprintf(os, sizeof os, "%s %s %s", u.sysname, u.release, u.machine);
    const char *omp = getenv("OMP_NUM_THREADS");
    snprintf(out, cap, "%s, %ld cores, %s, OMP_NUM_THREADS=%s", cpu, sysconf(_SC_NPROCESSORS_ONLN), os,
             omp && *omp ? omp : "(unset)");
}

// ---------------------------------------------------------------------------------------------------------------
// outputs

static void curve_file(const rlc_repro_config *rc, int c, char *out, size_t cap) {
    char key[64];
    slugify(rc->curves[c].key, key, sizeof key);
    int dup = 0;
    for (int k = 0; k < c; k++) dup |= strcmp(rc->curves[k].key, rc->curves[c].key) == 0;
    if (dup) snprintf(out, cap, "%s_%d.svg", key, c);
    else snprintf(out, cap, "%s.svg", key);
}

// Mean and std over seeds per step (union of the seeds' steps), of each seed's series smoothed with a trailing
// moving average over `smooth` records.
static int curve_rows(const rlc_repro_config *rc, const rlc_repro_curve *cv, const cell *cells, int r, double **x,
                      double **mean, double **lo, double **hi) {
    rlc_repro_series ss[RLC_REPRO_MAX_SEEDS];
    int total = 0;
    for (int s = 0; s < rc->n_seeds; s++) {
        const cell *c = &cells[r * rc->n_seeds + s];
        char p[1100];
        snprintf(p, sizeof p, "%s/metrics.jsonl", c->dir);
        if (!is_done(c->dir) || rlc_repro_read_series(p, cv->key, &ss[s]) != 0) memset(&ss[s], 0, sizeof ss[s]);
        // smoothing, in place (from the end so that earlier raw values are still there)
        for (int i = ss[s].n - 1; i >= 0 && cv->smooth > 1; i--) {
            int k0 = i - cv->smooth + 1 < 0 ? 0 : i - cv->smooth + 1;
            double t = 0;
            for (int k = k0; k <= i; k++) t += ss[s].val[k];
            ss[s].val[i] = t / (i - k0 + 1);
        }
        total += ss[s].n;
    }
    *x = rlc_malloc((size_t)(total > 0 ? total : 1) * sizeof(double));
    int n = 0;
    for (int s = 0; s < rc->n_seeds; s++)
        for (int i = 0; i < ss[s].n; i++) {
            int k = 0;
            while (k < n && (*x)[k] != ss[s].step[i]) k++;
            if (k == n) (*x)[n++] = ss[s].step[i];
        }
    for (int i = 1; i < n; i++) // insertion sort: the steps are nearly sorted already
        for (int k = i; k > 0 && (*x)[k - 1] > (*x)[k]; k--) {
            double t = (*x)[k];
            (*x)[k] = (*x)[k - 1];
            (*x)[k - 1] = t;
        }
    *mean = rlc_malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    *lo = rlc_malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    *hi = rlc_malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    int pos[RLC_REPRO_MAX_SEEDS] = {0};
    for (int i = 0; i < n; i++) {
        double v[RLC_REPRO_MAX_SEEDS];
        for (int s = 0; s < rc->n_seeds; s++) {
            while (pos[s] < ss[s].n && ss[s].step[pos[s]] < (*x)[i]) pos[s]++;
            v[s] = pos[s] < ss[s].n && ss[s].step[pos[s]] == (*x)[i] ? ss[s].val[pos[s]] : NAN;
        }
        rlc_repro_stat st = rlc_repro_stats(v, rc->n_seeds);
        (*mean)[i] = st.mean;
        (*lo)[i] = st.n_ok > 1 ? st.mean - st.std : NAN;
        (*hi)[i] = st.n_ok > 1 ? st.mean + st.std : NAN;
    }
    for (int s = 0; s < rc->n_seeds; s++) rlc_repro_series_free(&ss[s]);
    return n;
}

static int write_outputs(const rlc_repro_config *rc, const cell *cells, const char *res_dir,
                         const rlc_repro_meta *meta_in, char *err, size_t errlen) {
    int R = rc->n_rows, M = rc->n_metrics, S = rc->n_seeds;
    double *vals = rlc_malloc((size_t)R * M * S * sizeof(double));
    rlc_repro_meta meta = *meta_in;
    meta.cells_done = 0;
    meta.cells_total = R * S;
    for (int r = 0; r < R; r++)
        for (int s = 0; s < S; s++) {
            const cell *c = &cells[r * S + s];
            int done = is_done(c->dir);
            meta.cells_done += done;
            char p[1100];
            snprintf(p, sizeof p, "%s/metrics.jsonl", c->dir);
            for (int m = 0; m < M; m++) {
                rlc_repro_series ser;
                double v = NAN;
                if (done && rlc_repro_read_series(p, rc->metrics[m].key, &ser) == 0) {
                    v = rlc_repro_metric_value(&rc->metrics[m], &ser);
                    rlc_repro_series_free(&ser);
                }
                vals[((size_t)r * M + m) * S + s] = v;
            }
        }
    // plots
    char files[RLC_REPRO_MAX_CURVES][128];
    const char *fptr[RLC_REPRO_MAX_CURVES];
    int rc_ = 0;
    for (int c = 0; c < rc->n_curves && rc_ == 0; c++) {
        const rlc_repro_curve *cv = &rc->curves[c];
        curve_file(rc, c, files[c], sizeof files[c]);
        fptr[c] = files[c];
        rlc_svg_series ser[RLC_REPRO_MAX_ROWS];
        double *bufs[RLC_REPRO_MAX_ROWS][4];
        for (int r = 0; r < R; r++) {
            int n = curve_rows(rc, cv, cells, r, &bufs[r][0], &bufs[r][1], &bufs[r][2], &bufs[r][3]);
            ser[r] = (rlc_svg_series){rc->rows[r].label, n, bufs[r][0], bufs[r][1], bufs[r][2], bufs[r][3]};
        }
        char title[300], ylabel[200];
        snprintf(title, sizeof title, "%s: %s%s (mean ± std over %d seed%s)", rc->name, cv->label,
                 cv->smooth > 1 ? ", smoothed" : "", S, S > 1 ? "s" : "");
        if (cv->smooth > 1) snprintf(ylabel, sizeof ylabel, "%s (moving average of %d)", cv->label, cv->smooth);
        else snprintf(ylabel, sizeof ylabel, "%s", cv->label);
        rlc_svg_plot pl = {.title = title, .xlabel = "RL step", .ylabel = ylabel, .ymin = cv->ymin, .ymax = cv->ymax};
        char *svg = rlc_svg_line_plot(&pl, ser, R);
        char p[1200];
        snprintf(p, sizeof p, "%s/%s", res_dir, files[c]);
        rc_ = write_text(p, svg, err, errlen);
        free(svg);
        for (int r = 0; r < R; r++)
            for (int k = 0; k < 4; k++) free(bufs[r][k]);
    }
    if (rc_ == 0) {
        char *md = rlc_repro_table_md(rc, vals, &meta, fptr), p[1200];
        snprintf(p, sizeof p, "%s/table.md", res_dir);
        rc_ = write_text(p, md, err, errlen);
        free(md);
    }
    if (rc_ == 0) {
        char *csv = rlc_repro_table_csv(rc, vals), p[1200];
        snprintf(p, sizeof p, "%s/table.csv", res_dir);
        rc_ = write_text(p, csv, err, errlen);
        free(csv);
    }
    free(vals);
    return rc_;
}

// ---------------------------------------------------------------------------------------------------------------
// running

// Wait until another rank finished dir (1), or it failed (0) or was stopped by --max-steps (2) in this invocation.
static int wait_for(const char *dir, uint64_t run_id) {
    for (;;) {
        if (is_done(dir)) return 1;
        if (is_marked(dir, "failed", run_id)) return 0;
        if (is_marked(dir, "stopped", run_id)) return 2;
        sleep_s(1.0);
    }
}

// Markers of an earlier invocation are stale once this one takes the run over.
static void clear_markers(const char *dir) {
    char p[1100];
    snprintf(p, sizeof p, "%s/failed", dir);
    remove(p);
    snprintf(p, sizeof p, "%s/stopped", dir);
    remove(p);
}

static int run_sft_job(sft_job *j, const rlc_repro_opts *o, uint64_t run_id, rlc_repro_counts *cnt) {
    if (is_done(j->dir)) return 0;
    char err[512];
    int resume = has_ckpt(j->dir);
    if (!resume) clear_run(j->dir);
    else clear_markers(j->dir);
    if (mkdir_p(j->dir) != 0) {
        mark_failed(j->dir, run_id, "cannot create the directory");
        return -1;
    }
    fprintf(stderr, "rlc repro: SFT warm start %s (seed %llu)%s\n", j->dir, (unsigned long long)j->cfg.seed,
            resume ? ", resumed" : "");
    rlc_train_opts to = {.resume = resume ? j->dir : NULL, .sft_only = 1, .quiet = o->quiet, .max_steps = o->max_steps};
    double t0 = rlc_now();
    int rc = rlc_train(&j->cfg, &to);
    if (rc == 0 && o->max_steps > 0) { // interrupted on purpose (tests): finished only if every step ran
        char p[1100];
        snprintf(p, sizeof p, "%s/ckpt/latest", j->dir);
        char latest[256] = "";
        read_line(p, latest, sizeof latest);
        char want[64];
        snprintf(want, sizeof want, "ckpt-sft-%06d", j->cfg.sft.steps);
        if (strcmp(latest, want) != 0) {
            mark(j->dir, "stopped", run_id, "stopped by --max-steps");
            return 1;
        }
    }
    if (rc != 0) {
        mark_failed(j->dir, run_id, "SFT warm start failed (see the log)");
        return -1;
    }
    if (write_done(j->dir, &j->cfg, rlc_now() - t0, err, sizeof err) != 0) {
        fprintf(stderr, "rlc repro: %s\n", err);
        mark_failed(j->dir, run_id, err);
        return -1;
    }
    cnt->sft_ran++;
    return 0;
}

// Did the run reach its last RL step (a --max-steps budget may stop it earlier)?
static int run_complete(const char *dir, const rlc_config *cfg) {
    if (cfg->rl.steps == 0) return 1;
    char p[1100];
    snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
    rlc_repro_series s;
    const char *key = "eval_success"; // every run evaluates at its last step
    if (rlc_repro_read_series(p, key, &s) != 0) return 0;
    int ok = s.n > 0 && s.step[s.n - 1] >= cfg->rl.steps;
    rlc_repro_series_free(&s);
    return ok;
}

static int run_cell(cell *c, sft_job *jobs, const rlc_repro_opts *o, uint64_t run_id, int idx, int total,
                    rlc_repro_counts *cnt, const rlc_repro_config *rc) {
    const char *label = rc->rows[c->row].label;
    int seed = rc->seeds[c->seed_idx];
    if (is_done(c->dir)) return 0;
    char err[1024];
    if (c->sft >= 0 && !has_ckpt(c->dir) && !is_done(jobs[c->sft].dir)) {
        // the shared warm start: run by this rank already, or wait for the rank that runs it
        int w = wait_for(jobs[c->sft].dir, run_id);
        if (w == 0) {
            mark_failed(c->dir, run_id, "its SFT warm start failed");
            return -1;
        }
        if (w == 2) { // not there yet (--max-steps): this cell waits for the next invocation too
            mark(c->dir, "stopped", run_id, "its SFT warm start was stopped by --max-steps");
            return 1;
        }
    }
    int resume = has_ckpt(c->dir);
    if (!resume) clear_run(c->dir);
    else clear_markers(c->dir);
    if (mkdir_p(c->dir) != 0) {
        mark_failed(c->dir, run_id, "cannot create the run directory");
        return -1;
    }
    if (!resume && c->sft >= 0) { // start from the shared SFT checkpoint, as a resumed run
        char p[1100];
        char *js = rlc_config_to_json(&c->cfg);
        snprintf(p, sizeof p, "%s/config.json", c->dir);
        int bad = write_text(p, js, err, sizeof err) != 0 ||
                  seed_from_sft(c->dir, jobs[c->sft].dir, err, sizeof err) != 0;
        free(js);
        if (bad) {
            fprintf(stderr, "rlc repro: %s\n", err);
            mark_failed(c->dir, run_id, err);
            return -1;
        }
    } else if (resume) {
        cnt->resumed++;
    }
    fprintf(stderr, "rlc repro: [%d/%d] %s, seed %d%s\n", idx + 1, total, label, seed, resume ? " (resumed)" : "");
    rlc_train_opts to = {.resume = (resume || c->sft >= 0) ? c->dir : NULL, .quiet = o->quiet,
                         .max_steps = o->max_steps};
    double t0 = rlc_now();
    int rc_ = rlc_train(&c->cfg, &to);
    double dt = rlc_now() - t0;
    if (rc_ != 0) {
        fprintf(stderr, "rlc repro: %s, seed %d failed\n", label, seed);
        mark_failed(c->dir, run_id, "training failed (see the log)");
        return -1;
    }
    if (!run_complete(c->dir, &c->cfg)) { // stopped by --max-steps: resumes next time
        mark(c->dir, "stopped", run_id, "stopped by --max-steps");
        return 1;
    }
    if (write_done(c->dir, &c->cfg, dt, err, sizeof err) != 0) {
        fprintf(stderr, "rlc repro: %s\n", err);
        mark_failed(c->dir, run_id, err);
        return -1;
    }
    cnt->ran++;
    fprintf(stderr, "rlc repro: [%d/%d] %s, seed %d done in %.1f s\n", idx + 1, total, label, seed, dt);
    return 0;
}

int rlc_repro_run(const char *config_path, const rlc_repro_opts *o, rlc_repro_counts *counts) {
    double t_start = rlc_now();
    rlc_repro_counts cnt = {0};
    rlc_dist one;
    rlc_dist_single(&one);
    const rlc_dist *d = o->dist ? o->dist : &one;
    char err[2048];
    rlc_repro_config rc;
    if (rlc_repro_config_load(&rc, config_path, o->quick, err, sizeof err) != 0) {
        fprintf(stderr, "rlc repro: %s\n", err);
        return 1;
    }
    char res_dir[1024];
    rlc_repro_result_dir(&rc, o->out_root, res_dir, sizeof res_dir);
    if (strlen(res_dir) > 100) { // runs/ and sft/ below it must fit a config's out_dir (127 characters)
        fprintf(stderr, "rlc repro: the results directory \"%s\" is too long (at most 100 characters)\n", res_dir);
        rlc_repro_config_free(&rc);
        return 1;
    }
    int R = rc.n_rows, S = rc.n_seeds, N = R * S;
    cell *cells = rlc_calloc((size_t)N, sizeof(cell));
    sft_job *jobs = rlc_calloc((size_t)N, sizeof(sft_job));
    uint64_t *job_key = rlc_calloc((size_t)N, sizeof(uint64_t));
    int n_jobs = 0, status = 0;
    // every cell's config, validated before anything runs (identical on every rank)
    for (int r = 0; r < R && !status; r++)
        for (int s = 0; s < S && !status; s++) {
            cell *c = &cells[r * S + s];
            c->row = r, c->seed_idx = s, c->sft = -1;
            if (rlc_repro_cell_config(&rc, r, s, res_dir, o->overrides, o->n_over, &c->cfg, err, sizeof err) != 0) {
                fprintf(stderr, "rlc repro: %s\n", err);
                status = 1;
                break;
            }
            snprintf(c->dir, sizeof c->dir, "%s/%s", c->cfg.out_dir, c->cfg.name);
            if (rc.share_sft && c->cfg.sft.steps > 0) {
                uint64_t k = sft_key(&c->cfg);
                int j = 0;
                while (j < n_jobs && job_key[j] != k) j++;
                if (j == n_jobs) {
                    job_key[n_jobs] = k;
                    sft_job *sj = &jobs[n_jobs++];
                    sj->cfg = c->cfg;
                    snprintf(sj->cfg.name, sizeof sj->cfg.name, "%08llx-s%d", (unsigned long long)(k >> 32),
                             rc.seeds[s]);
                    snprintf(sj->cfg.out_dir, sizeof sj->cfg.out_dir, "%s/sft", res_dir);
                    snprintf(sj->dir, sizeof sj->dir, "%s/%s", sj->cfg.out_dir, sj->cfg.name);
                }
                c->sft = j;
            }
        }
    // rank 0 prepares the directory (or wipes it with --fresh) and checks that no finished cell is stale; the
    // other ranks wait for its verdict and the invocation id (a short collective: everyone is here)
    uint64_t hdr[2] = {0, 0}; // status, run id
    if (d->rank == 0 && !status) {
        if (o->fresh && !o->report_only && rm_rf(res_dir) != 0) {
            fprintf(stderr, "rlc repro: cannot delete %s: %s\n", res_dir, strerror(errno));
            status = 1;
        }
        if (!status && mkdir_p(res_dir) != 0) {
            fprintf(stderr, "rlc repro: cannot create %s: %s\n", res_dir, strerror(errno));
            status = 1;
        }
        for (int i = 0; i < N && !status; i++) {
            char diff[256];
            if (!config_matches(cells[i].dir, &cells[i].cfg, diff, sizeof diff)) {
                fprintf(stderr, "rlc repro: %s was run with another config than %s now gives (%s, seed %d; first "
                                "difference: %s): run with --fresh to start over, or delete that directory\n",
                        cells[i].dir, config_path, rc.rows[cells[i].row].label, rc.seeds[cells[i].seed_idx], diff);
                status = 1;
            }
        }
        if (!status) {
            char p[1100], e2[256];
            snprintf(p, sizeof p, "%s/.gitignore", res_dir); // the tables, plots and metrics are worth keeping
            static const char ignore[] = "# written by rlc repro: checkpoints and markers are not results\n"
                                         "ckpt/\nref/\nckpt.tmp/\nfailed\nstopped\n";
            status = write_text(p, ignore, e2, sizeof e2) != 0;
            // the repro config as run, next to its results
            char *text = rlc_read_file(config_path, NULL);
            snprintf(p, sizeof p, "%s/repro.json", res_dir);
            if (!status && text) status = write_text(p, text, e2, sizeof e2) != 0;
            free(text);
            if (status) fprintf(stderr, "rlc repro: %s\n", e2);
        }
        hdr[1] = ((uint64_t)time(NULL) << 20) ^ ((uint64_t)getpid() << 1) ^ (uint64_t)(rlc_now() * 1e6);
    }
    if (d->rank == 0) hdr[0] = (uint64_t)status;
    if (d->size > 1) rlc_dist_bcast(d, hdr, sizeof hdr, 0);
    status = status || hdr[0] != 0;
    uint64_t run_id = hdr[1];
    cnt.cells = N;
    for (int i = 0; i < N; i++) cnt.skipped += is_done(cells[i].dir);
    int failures = 0;
    if (!status && !o->report_only) {
        if (d->size > 1 && d->local_size > 1 && !getenv("OMP_NUM_THREADS") && cells[0].cfg.threads == 0) {
            int t = omp_get_num_procs() / d->local_size; // the ranks of a node share its cores
            omp_set_num_threads(t > 0 ? t : 1);
        }
        rlc_repro_opts oo = *o;
        if (d->size > 1) oo.quiet = 1; // one progress line per rank would interleave
        for (int j = d->rank; j < n_jobs; j += d->size)
            if (run_sft_job(&jobs[j], &oo, run_id, &cnt) < 0) failures++;
        int interrupted = 0;
        for (int i = d->rank; i < N; i += d->size) {
            int r = run_cell(&cells[i], jobs, &oo, run_id, i, N, &cnt, &rc);
            failures += r < 0;
            interrupted += r > 0;
        }
        if (d->rank == 0) { // the other ranks' cells: finished or failed in this invocation
            for (int i = 0; i < N; i++)
                if (i % d->size != 0) {
                    int w = wait_for(cells[i].dir, run_id);
                    failures += w == 0;
                    interrupted += w == 2;
                }
        }
        if (interrupted && d->rank == 0)
            fprintf(stderr, "rlc repro: %d cell(s) stopped by --max-steps; run again to continue them\n", interrupted);
    }
    cnt.failed = failures;
    if (!status && d->rank == 0) {
        double compute = 0;
        for (int i = 0; i < N; i++) compute += run_compute_s(cells[i].dir);
        for (int j = 0; j < n_jobs; j++) compute += run_compute_s(jobs[j].dir);
        char commit[128], machine[512], date[64];
        commit_of(config_path, commit, sizeof commit);
        machine_of(machine, sizeof machine);
        time_t now = time(NULL);
        strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
        rlc_repro_meta meta = {.command = o->command, .commit = commit, .machine = machine, .date = date,
                               .ranks = d->size, .wall_s = rlc_now() - t_start, .compute_s = compute};
        if (write_outputs(&rc, cells, res_dir, &meta, err, sizeof err) != 0) {
            fprintf(stderr, "rlc repro: %s\n", err);
            status = 1;
        } else {
            int done = 0;
            for (int i = 0; i < N; i++) done += is_done(cells[i].dir);
            fprintf(stderr, "rlc repro: %d of %d cells finished (%d skipped as already done, %d failed); wrote "
                            "%s/table.md, table.csv and %d plot(s)\n", done, N, cnt.skipped, failures, res_dir,
                    rc.n_curves);
            if (done < N && !o->report_only && !failures && o->max_steps <= 0) status = 1;
        }
    }
    if (counts) *counts = cnt;
    free(cells);
    free(jobs);
    free(job_key);
    rlc_repro_config_free(&rc);
    return status || failures ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------------------------
// command line

static void repro_usage(FILE *f) {
    fprintf(f,
            "usage: rlc repro CONFIG.json [options]\n"
            "  runs every cell (row x seed) of a repro config (configs/paper/*.json) and writes\n"
            "  results/<name>/table.md, table.csv and SVG learning curves; finished cells are skipped and\n"
            "  interrupted ones resumed, so rerunning the same command continues where it stopped\n"
            "options:\n"
            "  --quick                the config's quick settings (one seed, few steps): a smoke test, written to\n"
            "                         results/<name>-quick/\n"
            "  --out DIR              results root (default: results)\n"
            "  --set key.path=value   override a training key in every cell (repeatable)\n"
            "  --report               run nothing: tables and plots from the cells finished so far\n"
            "  --fresh                delete the results directory first\n"
            "  --max-steps N          stop every run after N optimizer steps in this invocation\n"
            "  --quiet                no trainer progress line\n"
            "multi-rank: OMP_NUM_THREADS=1 mpirun -np N rlc repro CONFIG.json (cells spread over the ranks)\n");
}

int rlc_repro_main(int argc, char **argv) {
    const char *path = NULL;
    rlc_repro_opts o = {.out_root = "results"};
    const char **over = rlc_calloc((size_t)argc, sizeof(char *));
    int n_over = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--quick") == 0) o.quick = 1;
        else if (strcmp(a, "--fresh") == 0) o.fresh = 1;
        else if (strcmp(a, "--report") == 0) o.report_only = 1;
        else if (strcmp(a, "--quiet") == 0) o.quiet = 1;
        else if (strcmp(a, "--out") == 0 && i + 1 < argc) o.out_root = argv[++i];
        else if (strcmp(a, "--set") == 0 && i + 1 < argc) over[n_over++] = argv[++i];
        else if (strncmp(a, "--set=", 6) == 0) over[n_over++] = a + 6;
        else if (strcmp(a, "--max-steps") == 0 && i + 1 < argc) o.max_steps = atoi(argv[++i]);
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            repro_usage(stdout);
            free(over);
            return 0;
        } else if (a[0] == '-') {
            fprintf(stderr, "rlc repro: unknown option \"%s\"\n", a);
            repro_usage(stderr);
            free(over);
            return 2;
        } else if (!path) path = a;
        else {
            fprintf(stderr, "rlc repro: more than one config given (\"%s\" and \"%s\")\n", path, a);
            free(over);
            return 2;
        }
    }
    if (!path) {
        repro_usage(stderr);
        free(over);
        return 2;
    }
    o.overrides = over;
    o.n_over = n_over;
    rlc_sb cmd = {0};
    rlc_sb_printf(&cmd, "rlc");
    for (int i = 1; i < argc; i++) rlc_sb_printf(&cmd, strpbrk(argv[i], " \"'") ? " '%s'" : " %s", argv[i]);
    char *command = rlc_sb_take(&cmd);
    rlc_dist dist;
    char derr[512];
    if (rlc_dist_init(&dist, &argc, &argv, derr, sizeof derr) != 0) {
        fprintf(stderr, "rlc: %s\n", derr);
        free(over);
        free(command);
        return 1;
    }
    if (dist.size > 1) {
        char *c2 = rlc_malloc(strlen(command) + 64);
        sprintf(c2, "mpirun -np %d %s", dist.size, command);
        free(command);
        command = c2;
    }
    o.command = command;
    o.dist = &dist;
    int rc = rlc_repro_run(path, &o, NULL);
    rlc_dist_finalize(&dist);
    free(over);
    free(command);
    return rc;
}
