// tests/test_fuzz_files.c: deterministic mutation fuzzing of every file rlc reads. Valid files are produced by
// the project itself (a checkpoint of a tiny model: model.safetensors, train_state.safetensors, config.json,
// rlc_config.json and `latest`; the paper repro configs; a metrics.jsonl), then mutated with a seeded
// generator of our own: byte flips, random bytes, insertions, deletions, truncations, duplicated spans,
// JSON-aware edits (numbers replaced by huge / negative / non-integer / non-finite spellings, strings by
// numbers, keys deleted or duplicated, deep nesting, type swaps) and safetensors-aware edits (header length,
// offsets, dtype strings, shapes whose product overflows size_t). Every mutated file goes through the real
// loader, which must either succeed with an internally consistent result (tensors inside the buffer, a config
// that round-trips, a failed load leaving the model untouched) or fail with rc -1 and a message that names the
// file. Both outcomes must occur for every format (a fuzzer whose mutations are all no-ops, or all fatal, fails).
// The regression cases of the bugs this fuzzer found are exact, minimised inputs checked deterministically.
//
// Local campaigns (not CI): RLC_FUZZ_SCALE=N multiplies the mutation counts, RLC_FUZZ_SEED=S changes the seed,
// RLC_FUZZ_DIR=D works in D/test_fuzz_files_tmp instead of the build directory. A failing input is written there
// as fail-<format>-<n>.bin.
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rlc/checkpoint.h"
#include "rlc/config.h"
#include "rlc/repro.h"
#include "rlc/safetensors.h"
#include "rlc/util.h"
#include "test_util.h"

static char base[512];

// ---- our own deterministic generator (splitmix64) ----

static uint64_t rng_state;
static uint64_t rnd(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static size_t rnd_below(size_t n) { return n ? (size_t)(rnd() % n) : 0; }

// ---- byte buffers ----

typedef struct bytes {
    unsigned char *p;
    size_t n, cap;
} bytes;

static void b_reserve(bytes *b, size_t n) {
    if (n + 1 <= b->cap) return;
    size_t c = b->cap ? b->cap : 64;
    while (c < n + 1) c *= 2;
    unsigned char *np = realloc(b->p, c);
    if (!np) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    b->p = np;
    b->cap = c;
}
static void b_set(bytes *b, const void *p, size_t n) {
    b_reserve(b, n);
    if (n) memcpy(b->p, p, n);
    b->n = n;
    b->p[n] = 0;
}
// Replace [at, at+del) with (p, n).
static void b_splice(bytes *b, size_t at, size_t del, const void *p, size_t n) {
    if (at > b->n) at = b->n;
    if (del > b->n - at) del = b->n - at;
    b_reserve(b, b->n - del + n);
    memmove(b->p + at + n, b->p + at + del, b->n - at - del);
    if (n) memcpy(b->p + at, p, n);
    b->n = b->n - del + n;
    b->p[b->n] = 0;
}
static void b_free(bytes *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

static int write_bytes(const char *path, const void *p, size_t n) {
    // a new file each time: ext4 (auto_da_alloc) flushes a file truncated and rewritten at close, which made the
    // run wait on the disk tens of seconds
    unlink(path);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = n ? fwrite(p, 1, n, f) : 0;
    return (fclose(f) != 0 || w != n) ? -1 : 0;
}
static int read_bytes(const char *path, bytes *b) {
    size_t n = 0;
    char *t = rlc_read_file(path, &n);
    if (!t) return -1;
    b_set(b, t, n);
    free(t);
    return 0;
}

// ---- generic byte mutations ----

static const char interesting_chars[] = "{}[]\":,\\0123456789-+.eE \n\t\x00\xff\x80truefalsnl";

static void mutate_bytes(bytes *b, size_t lo, size_t hi) {
    // lo..hi: the region mutations aim at (e.g. a safetensors header); insertions/deletions stay inside it
    if (hi > b->n) hi = b->n;
    if (lo > hi) lo = hi;
    size_t span = hi - lo;
    size_t at = lo + rnd_below(span ? span : 1);
    switch (rnd_below(8)) {
    case 0: // bit flip
        if (span) b->p[at] ^= (unsigned char)(1u << rnd_below(8));
        break;
    case 1: // random byte
        if (span) b->p[at] = (unsigned char)rnd();
        break;
    case 2: // syntactically interesting byte
        if (span) b->p[at] = (unsigned char)interesting_chars[rnd_below(sizeof interesting_chars - 1)];
        break;
    case 3: { // insert 1..8 random or interesting bytes
        unsigned char ins[8];
        size_t n = 1 + rnd_below(8);
        for (size_t i = 0; i < n; i++)
            ins[i] = rnd() & 1 ? (unsigned char)rnd()
                               : (unsigned char)interesting_chars[rnd_below(sizeof interesting_chars - 1)];
        b_splice(b, at, 0, ins, n);
        break;
    }
    case 4: // delete a span
        b_splice(b, at, 1 + rnd_below(rnd() & 1 ? 4 : 64), NULL, 0);
        break;
    case 5: // truncate anywhere in the file
        b->n = rnd_below(b->n + 1);
        b->p[b->n] = 0;
        break;
    case 6: { // duplicate a span somewhere else in the region
        if (!span) break;
        size_t len = 1 + rnd_below(span < 64 ? span : 64);
        size_t from = lo + rnd_below(span - (len < span ? len : span) + 1);
        unsigned char tmp[64];
        memcpy(tmp, b->p + from, len);
        b_splice(b, lo + rnd_below(span + 1), 0, tmp, len);
        break;
    }
    default: // swap two bytes
        if (span > 1) {
            size_t j = lo + rnd_below(span);
            unsigned char t = b->p[at];
            b->p[at] = b->p[j];
            b->p[j] = t;
        }
        break;
    }
}

// ---- a tiny JSON scanner for token-aware edits (works on any bytes, never reads past b->n) ----

enum { TOK_NUM, TOK_STR, TOK_KEY, TOK_OPEN, TOK_LIT };
typedef struct tok {
    size_t begin, end; // [begin, end); for TOK_OPEN end is the matching close + 1 (or the buffer end)
    int kind;
} tok;

static size_t skip_ws(const bytes *b, size_t i) {
    while (i < b->n && (b->p[i] == ' ' || b->p[i] == '\n' || b->p[i] == '\t' || b->p[i] == '\r')) i++;
    return i;
}
static size_t skip_string(const bytes *b, size_t i) { // i at the opening quote
    for (i++; i < b->n; i++) {
        if (b->p[i] == '\\') i++;
        else if (b->p[i] == '"') return i + 1;
    }
    return b->n;
}
static size_t skip_value(const bytes *b, size_t i) {
    i = skip_ws(b, i);
    if (i >= b->n) return b->n;
    unsigned char c = b->p[i];
    if (c == '"') return skip_string(b, i);
    if (c == '{' || c == '[') {
        int depth = 0;
        for (; i < b->n; i++) {
            if (b->p[i] == '"') {
                i = skip_string(b, i) - 1;
                continue;
            }
            if (b->p[i] == '{' || b->p[i] == '[') depth++;
            if (b->p[i] == '}' || b->p[i] == ']')
                if (--depth == 0) return i + 1;
        }
        return b->n;
    }
    while (i < b->n && !strchr(",}] \n\t\r", b->p[i]) && b->p[i]) i++;
    return i;
}

// All tokens of the text (strings classified as keys when a ':' follows). Returns the count (at most cap).
static int scan_tokens(const bytes *b, tok *t, int cap) {
    int n = 0;
    for (size_t i = 0; i < b->n && n < cap;) {
        unsigned char c = b->p[i];
        if (c == '"') {
            size_t e = skip_string(b, i);
            size_t after = skip_ws(b, e);
            t[n++] = (tok){i, e, after < b->n && b->p[after] == ':' ? TOK_KEY : TOK_STR};
            i = e;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t e = i + 1;
            while (e < b->n && strchr("0123456789+-.eE", b->p[e]) && b->p[e]) e++;
            t[n++] = (tok){i, e, TOK_NUM};
            i = e;
        } else if (c == '{' || c == '[') {
            t[n++] = (tok){i, skip_value(b, i), TOK_OPEN};
            i++;
        } else if (c == 't' || c == 'f' || c == 'n') {
            size_t e = i;
            while (e < b->n && b->p[e] >= 'a' && b->p[e] <= 'z') e++;
            t[n++] = (tok){i, e, TOK_LIT};
            i = e;
        } else {
            i++;
        }
    }
    return n;
}

static int pick_tok(const tok *t, int n, int kind) {
    int cnt = 0;
    for (int i = 0; i < n; i++) cnt += t[i].kind == kind;
    if (!cnt) return -1;
    int k = (int)rnd_below((size_t)cnt);
    for (int i = 0; i < n; i++)
        if (t[i].kind == kind && k-- == 0) return i;
    return -1;
}

// Spellings that stress number handling: huge, tiny, negative, non-integer, beyond int / 2^53 / 2^64, and
// things that are not JSON numbers at all.
static const char *const evil_numbers[] = {
    "0", "-1", "1", "2", "-0", "0.5", "1.5", "-2.5", "1e308", "-1e308", "1e999", "-1e999", "1e-320",
    "2147483647", "2147483648", "-2147483648", "-2147483649", "4294967295", "4294967296", "4294967297",
    "9007199254740991", "9007199254740992", "9007199254740993", "18446744073709551615", "18446744073709551616",
    "1e19", "1e20", "NaN", "nan", "Infinity", "-Infinity", "0x10", "01", "1.", ".5", "1e", "--1", "+1", "3.4e38",
    "3.5e38", "1e-45", "65536", "100000000", "1000000000",
};
#define N_EVIL ((int)(sizeof evil_numbers / sizeof evil_numbers[0]))

static const char *const evil_values[] = {
    "null", "true", "false", "\"\"", "\"7\"", "\"x\"", "[]", "{}", "[1,2]", "{\"a\":1}", "\"\\u0000\"",
    "\"\\ud800\"", "\"\\u00e9\xc3\"", "\"a\\\"b\"", "\"\xff\xfe\"", "0", "-1", "1e308",
};
#define N_EVIL_VALUES ((int)(sizeof evil_values / sizeof evil_values[0]))

static void replace_tok(bytes *b, const tok *t, const char *s) { b_splice(b, t->begin, t->end - t->begin, s, strlen(s)); }

// One JSON-aware edit of the text in b (whole buffer). Returns 0 when it found something to edit.
static int mutate_json(bytes *b) {
    enum { CAP = 8192 };
    static tok t[CAP];
    int n = scan_tokens(b, t, CAP);
    if (n == 0) return -1;
    char s[8192];
    switch (rnd_below(11)) {
    case 0:
    case 1: { // a number becomes an evil one
        int i = pick_tok(t, n, TOK_NUM);
        if (i < 0) return -1;
        replace_tok(b, &t[i], evil_numbers[rnd_below(N_EVIL)]);
        return 0;
    }
    case 2: { // a number nudged: +-1, *2, /2, negated
        int i = pick_tok(t, n, TOK_NUM);
        if (i < 0) return -1;
        char num[64];
        size_t len = t[i].end - t[i].begin < 63 ? t[i].end - t[i].begin : 63;
        memcpy(num, b->p + t[i].begin, len);
        num[len] = 0;
        double v = strtod(num, NULL);
        static const double d[] = {1, -1, 4, -4};
        switch (rnd_below(4)) {
        case 0: v += d[rnd_below(4)]; break;
        case 1: v *= 2; break;
        case 2: v = floor(v / 2); break;
        default: v = -v; break;
        }
        snprintf(s, sizeof s, "%.17g", v);
        replace_tok(b, &t[i], s);
        return 0;
    }
    case 3: { // a string value becomes a number or another type
        int i = pick_tok(t, n, TOK_STR);
        if (i < 0) return -1;
        replace_tok(b, &t[i], rnd() & 1 ? evil_numbers[rnd_below(N_EVIL)] : evil_values[rnd_below(N_EVIL_VALUES)]);
        return 0;
    }
    case 4: { // a string value becomes a long one, or gains odd characters
        int i = pick_tok(t, n, TOK_STR);
        if (i < 0) return -1;
        size_t len = 1 + rnd_below(rnd() & 1 ? 40 : 5000);
        s[0] = '"';
        for (size_t k = 1; k <= len; k++) s[k] = "aZ9_-./ +"[rnd_below(9)];
        s[len + 1] = '"';
        s[len + 2] = 0;
        replace_tok(b, &t[i], s);
        return 0;
    }
    case 5: { // delete a member: "key": value and one comma
        int i = pick_tok(t, n, TOK_KEY);
        if (i < 0) return -1;
        size_t colon = skip_ws(b, t[i].end);
        size_t e = skip_value(b, colon + 1);
        size_t after = skip_ws(b, e), begin = t[i].begin;
        if (after < b->n && b->p[after] == ',') e = after + 1;
        else {
            size_t k = begin;
            while (k > 0 && strchr(" \n\t\r", b->p[k - 1])) k--;
            if (k > 0 && b->p[k - 1] == ',') begin = k - 1;
        }
        b_splice(b, begin, e - begin, NULL, 0);
        return 0;
    }
    case 6: { // duplicate a member right after itself (duplicate keys)
        int i = pick_tok(t, n, TOK_KEY);
        if (i < 0) return -1;
        size_t colon = skip_ws(b, t[i].end);
        size_t e = skip_value(b, colon + 1);
        size_t len = e - t[i].begin;
        if (len + 2 > sizeof s) return -1;
        s[0] = ',';
        memcpy(s + 1, b->p + t[i].begin, len);
        b_splice(b, e, 0, s, len + 1);
        return 0;
    }
    case 7: { // deep nesting in place of a value
        static const int depths[] = {2, 64, 999, 1000, 1001, 3000};
        int depth = depths[rnd_below(6)], obj = (int)(rnd() & 1);
        size_t per = obj ? 5 : 1;
        size_t need = (size_t)depth * (per + 1) + 4;
        char *deep = malloc(need);
        size_t k = 0;
        for (int d = 0; d < depth; d++) {
            if (obj) memcpy(deep + k, "{\"a\":", 5);
            else deep[k] = '[';
            k += per;
        }
        deep[k++] = '1';
        for (int d = 0; d < depth; d++) deep[k++] = obj ? '}' : ']';
        deep[k] = 0;
        int i = (int)rnd_below((size_t)n);
        if (t[i].kind == TOK_KEY) {
            size_t colon = skip_ws(b, t[i].end);
            tok v = {colon + 1, skip_value(b, colon + 1), TOK_STR};
            replace_tok(b, &v, deep);
        } else {
            replace_tok(b, &t[i], deep);
        }
        free(deep);
        return 0;
    }
    case 8: { // any value (object, array, literal) swapped for another type
        int i = (int)rnd_below((size_t)n);
        if (t[i].kind == TOK_KEY) return -1;
        replace_tok(b, &t[i], evil_values[rnd_below(N_EVIL_VALUES)]);
        return 0;
    }
    case 9: { // a key renamed (typo, empty, very long, duplicate of another key)
        int i = pick_tok(t, n, TOK_KEY);
        if (i < 0) return -1;
        int j = pick_tok(t, n, TOK_KEY);
        switch (rnd_below(3)) {
        case 0: snprintf(s, sizeof s, "\"\""); break;
        case 1: {
            size_t len = 1 + rnd_below(300);
            s[0] = '"';
            for (size_t k = 1; k <= len; k++) s[k] = (char)('a' + rnd_below(26));
            s[len + 1] = '"';
            s[len + 2] = 0;
            break;
        }
        default: {
            size_t len = t[j].end - t[j].begin;
            if (len >= sizeof s) return -1;
            memcpy(s, b->p + t[j].begin, len);
            s[len] = 0;
        }
        }
        replace_tok(b, &t[i], s);
        return 0;
    }
    default: { // an array element or object copied (more elements than allowed)
        int i = pick_tok(t, n, TOK_OPEN);
        if (i < 0) return -1;
        size_t len = t[i].end - t[i].begin;
        if (len < 2 || len * 3 + 8 > sizeof s) return -1;
        // [x, ...] -> [x, ..., x, ...]: repeat the inner text
        size_t inner = len - 2;
        if (inner == 0 || b->p[t[i].begin] != '[') return -1;
        size_t k = 0;
        for (int r = 0; r < 3; r++) {
            if (r) s[k++] = ',';
            memcpy(s + k, b->p + t[i].begin + 1, inner);
            k += inner;
        }
        b_splice(b, t[i].begin + 1, inner, s, k);
        return 0;
    }
    }
}

// ---- duplicate keys: JSON leaves their meaning open, and taking one silently loses the other ----

static int json_has_duplicate(const cJSON *o) {
    for (const cJSON *c = o ? o->child : NULL; c; c = c->next) {
        if (cJSON_IsObject(o))
            for (const cJSON *d = o->child; d != c; d = d->next)
                if (c->string && d->string && strcmp(c->string, d->string) == 0) return 1;
        if (json_has_duplicate(c)) return 1;
    }
    return 0;
}

// 1 when text (n bytes) is one JSON value that cJSON parses and it holds a duplicate key somewhere.
static int text_has_duplicate(const unsigned char *text, size_t n) {
    char *t = malloc(n + 1);
    memcpy(t, text, n);
    t[n] = 0;
    cJSON *o = strlen(t) == n ? cJSON_ParseWithOpts(t, NULL, 1) : NULL;
    int dup = o && json_has_duplicate(o);
    cJSON_Delete(o);
    free(t);
    return dup;
}

// 1 when text (n bytes) is exactly one JSON value and whitespace: no NUL byte, nothing after it.
static int text_is_json(const unsigned char *text, size_t n) {
    char *t = malloc(n + 1);
    memcpy(t, text, n);
    t[n] = 0;
    cJSON *o = strlen(t) == n ? cJSON_ParseWithOpts(t, NULL, 1) : NULL;
    int ok = o != NULL;
    cJSON_Delete(o);
    free(t);
    return ok;
}

// ---- outcome accounting ----

typedef struct stats {
    const char *name;
    int n, ok, failed, bad;
} stats;

static int n_saved = 0;
static void save_failure(const char *fmt, const bytes *b) {
    if (n_saved >= 20) return;
    char p[900];
    snprintf(p, sizeof p, "%s/fail-%s-%d.bin", base, fmt, n_saved++);
    write_bytes(p, b->p, b->n);
    fprintf(stderr, "  (input saved to %s)\n", p);
}

// An accepted JSON file must be exactly one JSON value (no trailing bytes, no NUL byte) with no duplicate key.
static void expect_one_json_value(const stats *s, const bytes *b) {
    if (text_has_duplicate(b->p, b->n)) {
        CHECK(0, "%s: a duplicate key accepted", s->name);
        save_failure(s->name, b);
    }
    if (!text_is_json(b->p, b->n)) {
        CHECK(0, "%s: accepted a file that is not one JSON value (trailing bytes or a NUL byte)", s->name);
        save_failure(s->name, b);
    }
}

// A failed load: rc -1 and a message that names `name` (the file, or the --set text).
static void expect_named(stats *s, int rc, const char *err, const char *name, const bytes *input) {
    s->n++;
    if (rc == 0) {
        s->ok++;
        return;
    }
    s->failed++;
    int good = rc == -1 && err[0] && strstr(err, name);
    if (!good) {
        s->bad++;
        if (s->bad <= 5) {
            fprintf(stderr, "%s: rc %d, message does not name \"%s\": \"%s\"\n", s->name, rc, name, err);
            save_failure(s->name, input);
        }
    }
    CHECK(good, "%s: failed load must return -1 with a message naming %s (got rc %d: \"%s\")", s->name, name, rc,
          err);
}

static void report(const stats *s) {
    printf("  %-18s %6d mutations: %6d loaded, %6d rejected with a named error, %d bad\n", s->name, s->n, s->ok,
           s->failed, s->bad);
    CHECK(s->ok > 0, "%s: no mutated file loaded (mutations too destructive, or the loader rejects everything)",
          s->name);
    CHECK(s->failed > 0, "%s: no mutated file was rejected (mutations are no-ops?)", s->name);
    CHECK(s->bad == 0, "%s: %d failures without a named message", s->name, s->bad);
}

static int scale = 1;

// ---- the tiny model and its checkpoint ----

// The tiny model of every checkpoint here, on the CPU backend; 0, or -1 with a failed CHECK.
static int tiny_model(rlc_model *m) {
    rlc_model_config c = {.vocab_size = 98, .dim = 8, .n_layers = 1, .n_heads = 2, .n_kv_heads = 1, .head_dim = 4,
                          .hidden_dim = 8, .max_seq_len = 8, .rms_eps = 1e-5f, .rope_theta = 10000.0f,
                          .qkv_bias = 1, .tie_embeddings = 0, .value_head = 1};
    const int rc = rlc_model_init(m, &c, rlc_ops_cpu(), 4);
    CHECK(rc == 0, "model init");
    return rc;
}

// Structural invariants of an opened safetensors file: every tensor inside the data region, sizes consistent.
static int st_consistent(const rlc_st_file *f, char *why, size_t cap) {
    if (f->size < 8) return snprintf(why, cap, "size %zu < 8", f->size), 0;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f->buf[i];
    if (hlen > f->size - 8) return snprintf(why, cap, "header length beyond the file"), 0;
    const unsigned char *data = f->buf + 8 + hlen, *end = f->buf + f->size;
    for (int i = 0; i < f->n_tensors; i++) {
        const rlc_st_tensor *t = &f->tensors[i];
        if (!t->name) return snprintf(why, cap, "tensor %d has no name", i), 0;
        if (t->ndim < 0 || t->ndim > RLC_ST_MAX_DIMS) return snprintf(why, cap, "%s: ndim %d", t->name, t->ndim), 0;
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0) return snprintf(why, cap, "%s: negative dim", t->name), 0;
            numel *= (size_t)t->shape[d];
        }
        if (numel != t->numel) return snprintf(why, cap, "%s: numel %zu != product %zu", t->name, t->numel, numel), 0;
        if (t->nbytes != t->numel * rlc_st_dtype_size(t->dtype))
            return snprintf(why, cap, "%s: nbytes %zu inconsistent", t->name, t->nbytes), 0;
        if (t->data != data + t->begin || t->data < data || t->data > end || t->nbytes > (size_t)(end - t->data))
            return snprintf(why, cap, "%s: data [%zu, +%zu) outside the file", t->name, t->begin, t->nbytes), 0;
        if (t->dtype == RLC_ST_F32 || t->dtype == RLC_ST_F16 || t->dtype == RLC_ST_BF16 || t->dtype == RLC_ST_F64) {
            // reads every byte of the tensor: ASan reports any read outside the buffer
            rlc_f *out = rlc_malloc((t->numel ? t->numel : 1) * sizeof(rlc_f));
            char e[256];
            int rc = rlc_st_to_float(f, t, out, e, sizeof e);
            free(out);
            if (rc != 0) return snprintf(why, cap, "%.60s: to_float failed: %.150s", t->name, e), 0;
        }
    }
    for (int i = 0; i < f->n_meta; i++)
        if (!f->meta_keys[i] || !f->meta_vals[i]) return snprintf(why, cap, "metadata %d missing", i), 0;
    return 1;
}

// The next input of a fuzz loop: the seed, mutated, written to path.
static void next_input(bytes *b, const bytes *seed, void (*mutate)(bytes *), const char *path) {
    b_set(b, seed->p, seed->n);
    mutate(b);
    write_bytes(path, b->p, b->n);
}

static void fuzz_safetensors_one(stats *s, const bytes *input, const char *path) {
    rlc_st_file f;
    char err[2048] = "";
    int rc = rlc_st_open(&f, path, err, sizeof err);
    expect_named(s, rc, err, path, input);
    uint64_t hlen = 0;
    if (input->n >= 8)
        for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | input->p[i];
    if (rc == 0 && text_has_duplicate(input->p + 8, (size_t)hlen)) {
        CHECK(0, "%s: header with a duplicate key accepted", s->name);
        save_failure(s->name, input);
    }
    if (rc == 0) {
        char why[256];
        int ok = st_consistent(&f, why, sizeof why);
        CHECK(ok, "%s: file accepted but inconsistent: %s", s->name, why);
        if (!ok) save_failure(s->name, input);
        rlc_st_close(&f);
    }
}

// One safetensors-aware edit: header length, offsets, dtypes, shapes; header JSON edits keep the length right.
static void mutate_safetensors(bytes *b) {
    if (b->n < 8) {
        mutate_bytes(b, 0, b->n);
        return;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | b->p[i];
    if (hlen > b->n - 8) {
        mutate_bytes(b, 0, b->n);
        return;
    }
    bytes h = {0};
    b_set(&h, b->p + 8, (size_t)hlen);
    int fix_len = 1;
    switch (rnd_below(7)) {
    case 0: { // the length field itself
        uint64_t sz = b->n - 8, vals[] = {0, 1, 2, hlen - 1, hlen + 1, sz, sz + 1, hlen + 8, 1ull << 32,
                                          1ull << 63, UINT64_MAX, 100000001, rnd()};
        uint64_t v = vals[rnd_below(sizeof vals / sizeof vals[0])];
        for (int i = 0; i < 8; i++) b->p[i] = (unsigned char)(v >> (8 * i));
        b_free(&h);
        return;
    }
    case 1: { // a dtype string
        static const char *const dts[] = {"\"F32\"", "\"F16\"", "\"BF16\"", "\"F64\"", "\"I8\"", "\"U8\"",
                                          "\"I64\"", "\"BOOL\"", "\"f32\"", "\"F8_E4M3\"", "\"\"", "\"F32 \"", "32"};
        char *p = strstr((char *)h.p, "\"dtype\"");
        if (!p) break;
        size_t at = (size_t)(p - (char *)h.p) + 7;
        at = skip_ws(&h, at);
        if (at < h.n && h.p[at] == ':') {
            tok v = {skip_ws(&h, at + 1), skip_value(&h, at + 1), TOK_STR};
            // walk to a random later dtype
            for (int k = (int)rnd_below(8); k > 0; k--) {
                char *q = strstr((char *)h.p + v.end, "\"dtype\"");
                if (!q) break;
                at = skip_ws(&h, (size_t)(q - (char *)h.p) + 7);
                if (at >= h.n || h.p[at] != ':') break;
                v = (tok){skip_ws(&h, at + 1), skip_value(&h, at + 1), TOK_STR};
            }
            replace_tok(&h, &v, dts[rnd_below(sizeof dts / sizeof dts[0])]);
        }
        break;
    }
    case 2: { // a shape: overflowing products, too many dims, zero, empty, negative, fractional
        static const char *const shapes[] = {
            "[4294967296,4294967296]", "[4294967296,4294967297]", "[9007199254740992,4]",
            "[2147483648,2147483648,4]", "[0]", "[]", "[1,1,1,1,1,1,1,1,1]", "[1,1,1,1,1,1,1,1]", "[3.5]", "[-1]",
            "[1e300]", "[4611686018427387904]", "[2305843009213693952, 8]", "[0, 18446744073709551615]",
            "[65536,65536,65536,65536]", "[8]", "[2,4]"};
        char *p = strstr((char *)h.p, "\"shape\"");
        if (!p) break;
        for (int k = (int)rnd_below(8); k > 0; k--) {
            char *q = strstr(p + 1, "\"shape\"");
            if (!q) break;
            p = q;
        }
        size_t at = skip_ws(&h, (size_t)(p - (char *)h.p) + 7);
        if (at < h.n && h.p[at] == ':') {
            tok v = {skip_ws(&h, at + 1), skip_value(&h, at + 1), TOK_OPEN};
            replace_tok(&h, &v, shapes[rnd_below(sizeof shapes / sizeof shapes[0])]);
        }
        break;
    }
    case 3: { // data offsets nudged (overlaps, holes, beyond the end, huge)
        char *p = strstr((char *)h.p, "\"data_offsets\"");
        if (!p) break;
        for (int k = (int)rnd_below(8); k > 0; k--) {
            char *q = strstr(p + 1, "\"data_offsets\"");
            if (!q) break;
            p = q;
        }
        size_t at = skip_ws(&h, (size_t)(p - (char *)h.p) + 14);
        if (at >= h.n || h.p[at] != ':') break;
        at = skip_ws(&h, at + 1);
        if (at >= h.n || h.p[at] != '[') break;
        at = skip_ws(&h, at + 1);
        if (rnd() & 1) { // second number
            size_t e = skip_value(&h, at);
            at = skip_ws(&h, e);
            if (at < h.n && h.p[at] == ',') at = skip_ws(&h, at + 1);
        }
        tok v = {at, skip_value(&h, at), TOK_NUM};
        char num[64];
        size_t len = v.end - v.begin < 63 ? v.end - v.begin : 63;
        memcpy(num, h.p + v.begin, len);
        num[len] = 0;
        uint64_t x = strtoull(num, NULL, 10), data = b->n - 8 - hlen;
        uint64_t cand[] = {x + 1, x - 1, x + 4, x - 4, 0, data, data + 1, x * 2, 1ull << 53, UINT64_MAX};
        snprintf(num, sizeof num, "%llu", (unsigned long long)cand[rnd_below(sizeof cand / sizeof cand[0])]);
        replace_tok(&h, &v, num);
        break;
    }
    case 4:
    case 5: // any JSON edit inside the header
        mutate_json(&h);
        fix_len = rnd_below(10) != 0;
        break;
    default: // byte edits inside the header, length kept right (the parser sees them, not a length error)
        mutate_bytes(&h, 0, h.n);
        break;
    }
    size_t data_n = b->n - 8 - (size_t)hlen;
    bytes out = {0};
    b_reserve(&out, 8 + h.n + data_n);
    uint64_t nl = fix_len ? h.n : hlen;
    for (int i = 0; i < 8; i++) out.p[i] = (unsigned char)(nl >> (8 * i));
    memcpy(out.p + 8, h.p, h.n);
    memcpy(out.p + 8 + h.n, b->p + 8 + hlen, data_n);
    out.n = 8 + h.n + data_n;
    b_set(b, out.p, out.n);
    b_free(&out);
    b_free(&h);
}

static void mutate_st_file(bytes *b) {
    // header region is where parsing happens: aim most byte edits there
    uint64_t hlen = 0;
    if (b->n >= 8)
        for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | b->p[i];
    size_t hend = (b->n >= 8 && hlen <= b->n - 8) ? 8 + (size_t)hlen : b->n;
    int k = 1 + (int)rnd_below(3);
    for (int i = 0; i < k; i++) {
        size_t r = rnd_below(10);
        if (r < 5) mutate_safetensors(b);
        else if (r < 9) mutate_bytes(b, 0, hend);
        else mutate_bytes(b, 0, b->n);
    }
}

static int same_params(const rlc_model *a, const rlc_f *p) {
    return memcmp(a->params, p, a->n_params * sizeof(rlc_f)) == 0;
}

static void fuzz_model_file(const bytes *seed, int iters) {
    stats s = {"model.safetensors", 0, 0, 0, 0};
    char dir[700], path[800];
    snprintf(dir, sizeof dir, "%s/fz_model", base);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    rlc_model m;
    if (tiny_model(&m) != 0) return;
    rlc_model_init_weights(&m, 7);
    rlc_f *before = rlc_malloc(m.n_params * sizeof(rlc_f));
    bytes b = {0};
    stats load = {"model load", 0, 0, 0, 0};
    for (int it = 0; it < iters; it++) {
        next_input(&b, seed, mutate_st_file, path);
        fuzz_safetensors_one(&s, &b, path);
        // the checkpoint loader on the same file: a failed load leaves the parameters untouched
        memcpy(before, m.params, m.n_params * sizeof(rlc_f));
        char err[2048] = "";
        int rc = rlc_checkpoint_load_model(&m, path, err, sizeof err);
        expect_named(&load, rc, err, path, &b);
        if (rc != 0) CHECK(same_params(&m, before), "model load failed but changed the parameters: %s", err);
    }
    report(&s);
    report(&load);
    b_free(&b);
    free(before);
    rlc_model_free(&m);
}

static void fuzz_state_file(const bytes *seed, int iters) {
    stats s = {"train_state", 0, 0, 0, 0}, load = {"train_state load", 0, 0, 0, 0};
    char dir[700], path[800];
    snprintf(dir, sizeof dir, "%s/fz_state", base);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/train_state.safetensors", dir);
    rlc_model m;
    if (tiny_model(&m) != 0) return;
    rlc_f *am = rlc_calloc(m.n_params, sizeof(rlc_f)), *av = rlc_calloc(m.n_params, sizeof(rlc_f));
    rlc_f *am0 = rlc_malloc(m.n_params * sizeof(rlc_f));
    bytes b = {0};
    for (int it = 0; it < iters; it++) {
        next_input(&b, seed, mutate_st_file, path);
        fuzz_safetensors_one(&s, &b, path);
        for (size_t i = 0; i < m.n_params; i++) am[i] = (rlc_f)-7;
        memcpy(am0, am, m.n_params * sizeof(rlc_f));
        rlc_train_state st;
        memset(&st, 0xab, sizeof st);
        rlc_train_state st0 = st;
        char err[2048] = "";
        int rc = rlc_checkpoint_load_state(&m, dir, &st, am, av, err, sizeof err);
        expect_named(&load, rc, err, path, &b);
        if (rc != 0) {
            CHECK(memcmp(am, am0, m.n_params * sizeof(rlc_f)) == 0 && memcmp(&st, &st0, sizeof st) == 0,
                  "state load failed but changed the state or moments: %s", err);
        } else {
            CHECK(st.phase == 0 || st.phase == 1, "phase %d", st.phase);
            CHECK(st.n_extra >= 0 && st.n_extra <= RLC_STATE_MAX_EXTRA, "n_extra %d", st.n_extra);
            CHECK(st.step >= 0 && st.opt_t >= 0, "step %d opt_t %d", st.step, st.opt_t);
            // the config requires rl.kl_beta >= 0: a resumed run must not get a coefficient the config refuses
            CHECK(isfinite(st.kl_beta) && st.kl_beta >= 0, "train state accepted with kl_beta %g", st.kl_beta);
            if (!(isfinite(st.kl_beta) && st.kl_beta >= 0)) save_failure("kl_beta", &b);
        }
    }
    report(&s);
    report(&load);
    b_free(&b);
    free(am);
    free(av);
    free(am0);
    rlc_model_free(&m);
}

// ---- JSON formats ----

static void mutate_text(bytes *b) {
    int k = 1 + (int)rnd_below(3);
    for (int i = 0; i < k; i++)
        if (rnd_below(10) < 6) {
            if (mutate_json(b) != 0) mutate_bytes(b, 0, b->n);
        } else {
            mutate_bytes(b, 0, b->n);
        }
}

// A JSON file format: mutated seeds written to base/file, each read by load (0: accepted; else err names the file),
// accepted ones holding one JSON value and passing check (NULL: none).
typedef int (*json_load_fn)(const char *path, void *out, char *err, size_t cap);
typedef void (*json_check_fn)(void *loaded, const bytes *input, const char *what);

static void fuzz_json_file(const char *what, const char *file, json_load_fn load, json_check_fn check, void *out,
                           const bytes *seed, int iters) {
    stats s = {what, 0, 0, 0, 0};
    char path[800];
    snprintf(path, sizeof path, "%s/%s", base, file);
    bytes b = {0};
    for (int it = 0; it < iters; it++) {
        next_input(&b, seed, mutate_text, path);
        char err[2048] = "";
        int rc = load(path, out, err, sizeof err);
        expect_named(&s, rc, err, path, &b);
        if (rc == 0) expect_one_json_value(&s, &b);
        if (rc == 0 && check) check(out, &b, s.name);
    }
    report(&s);
    b_free(&b);
}

static int load_hf_config(const char *path, void *out, char *err, size_t cap) {
    return rlc_checkpoint_read_hf_config(path, (rlc_model_config *)out, err, cap);
}
static void check_hf_config(void *loaded, const bytes *input, const char *what) {
    (void)input;
    char e[256];
    CHECK(rlc_model_config_check((const rlc_model_config *)loaded, e, sizeof e) == 0,
          "%s: accepted HF config fails the model check: %s", what, e);
}

// A loaded training config must survive a round trip through its own JSON unchanged.
static void check_config_roundtrip(void *loaded, const bytes *input, const char *what) {
    const rlc_config *cfg = (const rlc_config *)loaded;
    char *js = rlc_config_to_json(cfg);
    rlc_config back;
    char err[2048] = "";
    int rc = rlc_config_parse(&back, js, cfg->source, NULL, 0, err, sizeof err);
    int same = rc == 0 && memcmp(&back, cfg, sizeof back) == 0;
    CHECK(same, "%s: accepted config does not round-trip through rlc_config_to_json (rc %d: %s)", what, rc, err);
    if (!same) save_failure("config-roundtrip", input);
    free(js);
}

static int load_train_config(const char *path, void *out, char *err, size_t cap) {
    return rlc_config_load((rlc_config *)out, path, NULL, 0, err, cap);
}

// --set overrides: each mutated one must apply or be refused naming "--set".
static void fuzz_overrides(int iters) {
    static const char *const valid[] = {
        "rl.eps_low=0.2", "rollout.stop=[\"\\n\",\"=\"]", "model={\"dim\":32,\"n_heads\":4}", "seed=\"12345\"",
        "name=run-1", "rl.method=dapo", "task.name=countdown", "rl.optim.lr=1e-5", "rollout.top_p=0.9",
        "model.qkv_bias=true", "sft.steps=0", "rollout.stop=\"\\n\"", "task={\"name\":\"maze\",\"maze_size\":5}",
    };
    int nv = (int)(sizeof valid / sizeof valid[0]);
    stats s = {"--set", 0, 0, 0, 0};
    bytes b = {0};
    for (int it = 0; it < iters; it++) {
        const char *v = valid[rnd_below((size_t)nv)];
        b_set(&b, v, strlen(v));
        int k = 1 + (int)rnd_below(2);
        for (int i = 0; i < k; i++) {
            const char *eq = strchr((char *)b.p, '=');
            size_t vstart = eq ? (size_t)(eq - (char *)b.p) + 1 : 0;
            if (rnd() & 1) {
                bytes val = {0};
                b_set(&val, b.p + vstart, b.n - vstart);
                if (mutate_json(&val) != 0) mutate_bytes(&val, 0, val.n);
                b_splice(&b, vstart, b.n - vstart, val.p, val.n);
                b_free(&val);
            } else {
                mutate_bytes(&b, 0, b.n);
            }
        }
        const char *ov[1] = {(const char *)b.p};
        rlc_config cfg;
        char err[2048] = "";
        int rc = rlc_config_parse(&cfg, NULL, NULL, ov, 1, err, sizeof err);
        expect_named(&s, rc, err, "--set", &b);
        if (rc == 0) check_config_roundtrip(&cfg, &b, s.name);
    }
    report(&s);
    b_free(&b);
}

static void fuzz_repro_config(const bytes *seeds, int n_seeds, int iters) {
    stats s = {"repro config", 0, 0, 0, 0}, cell = {"repro cell config", 0, 0, 0, 0};
    char path[800], res[800];
    snprintf(path, sizeof path, "%s/fz_repro.json", base);
    snprintf(res, sizeof res, "%s/fz_repro_results", base);
    bytes b = {0};
    rlc_repro_config *rc = rlc_calloc(1, sizeof *rc);
    for (int it = 0; it < iters; it++) {
        const bytes *sd = &seeds[rnd_below((size_t)n_seeds)];
        next_input(&b, sd, mutate_text, path);
        char err[2048] = "";
        int quick = (int)(rnd() & 1);
        int r = rlc_repro_config_load(rc, path, quick, err, sizeof err);
        expect_named(&s, r, err, path, &b);
        if (r != 0) continue;
        expect_one_json_value(&s, &b);
        CHECK(rc->n_rows >= 1 && rc->n_rows <= RLC_REPRO_MAX_ROWS, "n_rows %d", rc->n_rows);
        CHECK(rc->n_seeds >= 1 && rc->n_seeds <= RLC_REPRO_MAX_SEEDS, "n_seeds %d", rc->n_seeds);
        CHECK(rc->n_metrics >= 1 && rc->n_metrics <= RLC_REPRO_MAX_METRICS, "n_metrics %d", rc->n_metrics);
        CHECK(rc->n_curves >= 0 && rc->n_curves <= RLC_REPRO_MAX_CURVES, "n_curves %d", rc->n_curves); // []: no plots
        for (int k = 0; k < rc->n_claims; k++) {
            const rlc_repro_claim *c = &rc->claims[k];
            CHECK(c->metric >= 0 && c->metric < rc->n_metrics && c->better >= 0 && c->better < rc->n_rows &&
                      c->worse >= 0 && c->worse < rc->n_rows && c->better != c->worse,
                  "claim %d indices out of range", k);
        }
        for (int k = 0; k < rc->n_curves; k++) CHECK(rc->curves[k].smooth >= 1, "curve %d smooth", k);
        for (int k = 0; k < rc->n_metrics; k++)
            CHECK(rc->metrics[k].decimals >= -1 && rc->metrics[k].decimals <= 9, "metric %d decimals", k);
        // the cells' training configs: base + common set + row set (+ quick set); refused ones name the file
        int row = (int)rnd_below((size_t)rc->n_rows);
        rlc_config cfg;
        err[0] = 0;
        int cr = rlc_repro_cell_config(rc, row, 0, res, NULL, 0, &cfg, err, sizeof err);
        expect_named(&cell, cr, err, path, &b);
        if (cr == 0) check_config_roundtrip(&cfg, &b, cell.name);
        rlc_repro_config_free(rc);
    }
    report(&s);
    report(&cell);
    free(rc);
    b_free(&b);
}

// ---- metrics.jsonl (lenient by design: unreadable lines are skipped) and `latest` ----

static void fuzz_metrics(int iters) {
    stats s = {"metrics.jsonl", 0, 0, 0, 0};
    char path[800];
    snprintf(path, sizeof path, "%s/fz_metrics.jsonl", base);
    bytes seed = {0};
    for (int i = 0; i < 12; i++) {
        char line[256];
        int n = snprintf(line, sizeof line,
                         "{\"phase\": \"%s\", \"step\": %d, \"eval_success\": %.3f, \"loss\": %g}\n",
                         i % 3 == 2 ? "rl_eval" : i < 3 ? "sft" : "rl", i / 2, 0.1 * i, -0.5 * i);
        b_splice(&seed, seed.n, 0, line, (size_t)n);
    }
    bytes b = {0};
    for (int it = 0; it < iters; it++) {
        next_input(&b, &seed, mutate_text, path);
        rlc_repro_series ser;
        int rc = rlc_repro_read_series(path, "eval_success", &ser);
        s.n++;
        if (rc != 0) {
            s.failed++;
            CHECK(0, "metrics.jsonl unreadable");
            continue;
        }
        s.ok++;
        int lines = 1;
        for (size_t i = 0; i < b.n; i++) lines += b.p[i] == '\n';
        int sorted = ser.n <= lines;
        for (int i = 1; i < ser.n; i++) sorted &= ser.step[i - 1] < ser.step[i];
        CHECK(sorted, "series of %d records from %d lines not strictly increasing in step", ser.n, lines);
        rlc_repro_series_free(&ser);
    }
    printf("  %-18s %6d mutations: every one read (unreadable lines skipped by design)\n", s.name, s.n);
    b_free(&b);
    b_free(&seed);
}

static void mutate_latest(bytes *b) { // byte edits only: `latest` is one line naming a checkpoint
    int k = 1 + (int)rnd_below(2);
    for (int i = 0; i < k; i++) mutate_bytes(b, 0, b->n);
}

static void fuzz_latest(const char *root, const char *ckpt_name, int iters) {
    stats s = {"latest", 0, 0, 0, 0};
    char path[800];
    snprintf(path, sizeof path, "%s/latest", root);
    rlc_model m;
    if (tiny_model(&m) != 0) return;
    bytes seed = {0}, b = {0};
    b_set(&seed, ckpt_name, strlen(ckpt_name));
    b_splice(&seed, seed.n, 0, "\n", 1);
    for (int it = 0; it < iters; it++) {
        next_input(&b, &seed, mutate_latest, path);
        char err[2048] = "";
        int rc = rlc_checkpoint_load_model(&m, root, err, sizeof err);
        expect_named(&s, rc, err, root, &b);
    }
    write_bytes(path, seed.p, seed.n); // leave the checkpoint as it was
    report(&s);
    b_free(&b);
    b_free(&seed);
    rlc_model_free(&m);
}

// ---- regression cases: the exact minimised inputs of bugs the fuzzer found ----

static int write_text_file(const char *path, const char *text) { return write_bytes(path, text, strlen(text)); }

// A repro config's own overrides are not typed on a command line: a bad one must name the file and its section.
// Found: "--set rl.kl_in_rewd=false: unknown key ..." for a typo inside rows[].set (host/repro.c
// rlc_repro_cell_config labelled every override "--set").
static void regression_repro_set_labels(void) {
    static const struct {
        const char *json, *want;
    } cases[] = {
        {"{\"name\":\"x\",\"seeds\":[1],\"metrics\":[\"final:a\"],\"rows\":[{\"label\":\"a\",\"set\":"
         "{\"rl.kl_in_rewd\":false}}]}", "rows[0]"},
        {"{\"name\":\"x\",\"seeds\":[1],\"metrics\":[\"final:a\"],\"set\":{\"\":4},\"rows\":[{\"label\":\"a\"}]}",
         ": set: =4"},
        {"{\"name\":\"x\",\"seeds\":[1],\"metrics\":[\"final:a\"],\"quick\":{\"set\":{\"eval_every\":\"\"}},"
         "\"rows\":[{\"label\":\"a\"}]}", "quick.set: eval_every"},
    };
    char path[800];
    snprintf(path, sizeof path, "%s/regress_repro.json", base);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_text_file(path, cases[i].json);
        rlc_repro_config rc;
        char err[2048] = "";
        int ok = rlc_repro_config_load(&rc, path, 1, err, sizeof err) == 0;
        CHECK(ok, "repro set case %zu: %s", i, err);
        if (!ok) continue;
        rlc_config cfg;
        int r = rlc_repro_cell_config(&rc, 0, 0, "res", NULL, 0, &cfg, err, sizeof err);
        CHECK(r == -1 && strstr(err, path) && strstr(err, cases[i].want) && !strstr(err, "--set"),
              "repro set case %zu: the error must name the file and \"%s\", not --set: \"%s\"", i, cases[i].want,
              err);
        rlc_repro_config_free(&rc);
    }
    // the command line's own --set keeps its label
    write_text_file(path, "{\"name\":\"x\",\"seeds\":[1],\"metrics\":[\"final:a\"],\"rows\":[{\"label\":\"a\"}]}");
    rlc_repro_config rc;
    char err[2048] = "";
    if (rlc_repro_config_load(&rc, path, 0, err, sizeof err) == 0) {
        const char *extra[] = {"rl.metod=grpo"};
        rlc_config cfg;
        int r = rlc_repro_cell_config(&rc, 0, 0, "res", extra, 1, &cfg, err, sizeof err);
        CHECK(r == -1 && strstr(err, "--set rl.metod=grpo"), "command-line --set label: \"%s\"", err);
        rlc_repro_config_free(&rc);
    } else {
        CHECK(0, "repro config: %s", err);
    }
}

// Found: "smooth": 1e300 passed the integer check and was converted to int (undefined behaviour; INT_MIN on
// x86, a curve smoothed over a negative window); "decimals": 3.5 was taken as 3 under a message saying integer.
static void regression_repro_numbers(void) {
    static const char *const cases[] = {
        "{\"name\":\"x\",\"seeds\":[1],\"metrics\":[\"final:a\"],\"curves\":[{\"key\":\"a\",\"smooth\":1e300}],"
        "\"rows\":[{\"label\":\"a\"}]}",
        "{\"name\":\"x\",\"seeds\":[1],\"metrics\":[\"final:a\"],\"curves\":[{\"key\":\"a\",\"smooth\":2147483648}],"
        "\"rows\":[{\"label\":\"a\"}]}",
        "{\"name\":\"x\",\"seeds\":[1],\"metrics\":[{\"metric\":\"final:a\",\"decimals\":3.5}],"
        "\"rows\":[{\"label\":\"a\"}]}",
    };
    char path[800];
    snprintf(path, sizeof path, "%s/regress_repro_num.json", base);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_text_file(path, cases[i]);
        rlc_repro_config rc;
        char err[2048] = "";
        int r = rlc_repro_config_load(&rc, path, 0, err, sizeof err);
        CHECK(r == -1 && strstr(err, path) && (strstr(err, "smooth") || strstr(err, "decimals")),
              "repro number case %zu: expected a named error, got rc %d: \"%s\"", i, r, err);
        if (r == 0) rlc_repro_config_free(&rc);
    }
}

// Found: a config for a task without an imperfect teacher inherits sft.teacher_error 0.5 from the default and
// loads, but the config it writes (rlc_config.json, the run's config.json) sets 0.5 explicitly and was refused
// when loaded back.
static void regression_teacher_roundtrip(void) {
    rlc_config cfg, back;
    char err[2048] = "";
    int ok = rlc_config_parse(&cfg, "{\"task\": {\"name\": \"countdown\"}}", "t.json", NULL, 0, err, sizeof err) == 0;
    CHECK(ok, "countdown config: %s", err);
    if (!ok) return;
    CHECK(cfg.sft.teacher_error == 0.0f, "inherited teacher share for countdown is %g, expected 0",
          cfg.sft.teacher_error);
    char *js = rlc_config_to_json(&cfg);
    CHECK(rlc_config_parse(&back, js, "t.json", NULL, 0, err, sizeof err) == 0 && memcmp(&back, &cfg, sizeof cfg) == 0,
          "countdown config does not load back: %s", err);
    free(js);
    // still an error when asked for explicitly, and still inherited where a teacher exists
    CHECK(rlc_config_parse(&cfg, "{\"task\": {\"name\": \"countdown\"}, \"sft\": {\"teacher_error\": 0.5}}", "t.json",
                           NULL, 0, err, sizeof err) == -1 && strstr(err, "teacher_error"),
          "explicit teacher share for countdown accepted");
    CHECK(rlc_config_parse(&cfg, "{\"task\": {\"name\": \"addition\"}}", "t.json", NULL, 0, err, sizeof err) == 0 &&
              cfg.sft.teacher_error == 0.5f,
          "addition keeps the default teacher share: %s", err);
}

// Found: cJSON prints numbers with 15 digits when that reads back within a relative DBL_EPSILON, so
// rlc_config_to_json wrote seed 9007199254740991 as 9.00719925474099e+15 (...990); and a JSON number 2^53 + 1
// was read as 2^53 without a word.
static void regression_u64_digits(void) {
    rlc_config cfg, back;
    char err[2048] = "";
    const char *ov[] = {"seed=9007199254740991", "task.eval_seed=4503599627370497"};
    int ok = rlc_config_parse(&cfg, NULL, NULL, ov, 2, err, sizeof err) == 0;
    CHECK(ok, "large seeds: %s", err);
    if (ok) {
        char *js = rlc_config_to_json(&cfg);
        CHECK(rlc_config_parse(&back, js, cfg.source, NULL, 0, err, sizeof err) == 0 &&
                  back.seed == 9007199254740991ull && back.task.eval_seed == 4503599627370497ull,
              "large seeds do not round-trip: %s", js);
        free(js);
    }
    const char *big[] = {"seed=9007199254740993"};
    CHECK(rlc_config_parse(&cfg, NULL, NULL, big, 1, err, sizeof err) == -1 && strstr(err, "seed") &&
              strstr(err, "below 2^53"),
          "a JSON number above 2^53 must be refused (it is no longer the integer written): %s", err);
    const char *str[] = {"seed=\"9007199254740993\""};
    CHECK(rlc_config_parse(&cfg, NULL, NULL, str, 1, err, sizeof err) == 0 && cfg.seed == 9007199254740993ull,
          "a decimal string keeps every digit: %s", err);
    // the same through a repro config's overrides and inline base
    char path[800];
    snprintf(path, sizeof path, "%s/regress_repro_seed.json", base);
    write_text_file(path, "{\"name\":\"x\",\"seeds\":[1],\"metrics\":[\"final:a\"],\"base\":{\"task\":"
                          "{\"eval_seed\":9007199254740991}},\"set\":{\"task.eval_seed\":9007199254740989},"
                          "\"rows\":[{\"label\":\"a\"},{\"label\":\"b\",\"set\":{\"task\":{\"eval_seed\":9007199254740991}}}]}");
    rlc_repro_config rc;
    ok = rlc_repro_config_load(&rc, path, 0, err, sizeof err) == 0;
    CHECK(ok, "repro with large seeds: %s", err);
    if (ok) {
        CHECK(rlc_repro_cell_config(&rc, 0, 0, "res", NULL, 0, &cfg, err, sizeof err) == 0 &&
                  cfg.task.eval_seed == 9007199254740989ull,
              "repro set of a large seed: %s (got %llu)", err, (unsigned long long)cfg.task.eval_seed);
        CHECK(rlc_repro_cell_config(&rc, 1, 0, "res", NULL, 0, &cfg, err, sizeof err) == 0 &&
                  cfg.task.eval_seed == 9007199254740991ull,
              "repro row set of a large seed: %s (got %llu)", err, (unsigned long long)cfg.task.eval_seed);
        rlc_repro_config_free(&rc);
    }
}

// Found: an HF config.json integer out of int range ("hidden_size": 1e300) was converted to int before being
// checked (undefined behaviour; UBSan's float-cast-overflow, now on in RLC_ASAN builds, reports it).
// By review: n_heads * head_dim overflowing int passed the model check (the q/o projections' width).
static void regression_hf_ints(void) {
    char path[800], err[2048];
    snprintf(path, sizeof path, "%s/regress_config.json", base);
    static const char *const cases[] = {
        "{\"hidden_size\": 1e300, \"intermediate_size\": 8, \"num_attention_heads\": 2, \"num_hidden_layers\": 1, "
        "\"vocab_size\": 98}",
        "{\"hidden_size\": 8, \"intermediate_size\": -2147483649, \"num_attention_heads\": 2, \"num_hidden_layers\": 1, "
        "\"vocab_size\": 98}",
        "{\"hidden_size\": 8, \"intermediate_size\": 8, \"num_attention_heads\": 65536, \"num_key_value_heads\": 1, "
        "\"head_dim\": 65536, \"num_hidden_layers\": 1, \"vocab_size\": 98}",
    };
    static const char *const want[] = {"hidden_size", "intermediate_size", "n_heads * model.head_dim"};
    for (int i = 0; i < 3; i++) {
        write_text_file(path, cases[i]);
        rlc_model_config c;
        err[0] = 0;
        int r = rlc_checkpoint_read_hf_config(path, &c, err, sizeof err);
        CHECK(r == -1 && strstr(err, path) && strstr(err, want[i]), "HF config case %d: rc %d: \"%s\"", i, r, err);
    }
}

// Found: duplicate names inside a safetensors tensor entry or __metadata__, in an HF config.json and anywhere in
// a repro config were accepted, one of the two values silently used (the last "dtype", the first "step",
// "hidden_size" or "name"). The training config already refused them.
static void regression_duplicate_keys(void) {
    static const char *const headers[] = {
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"dtype\":\"I32\"}}",
        "{\"__metadata__\":{\"step\":\"1\",\"step\":\"2\"},\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
        "\"data_offsets\":[0,4]}}",
    };
    static const char *const want[] = {"duplicate header key \"dtype\"", "duplicate header key \"step\""};
    for (int i = 0; i < 2; i++) {
        size_t h = strlen(headers[i]);
        unsigned char buf[512];
        for (int k = 0; k < 8; k++) buf[k] = (unsigned char)((uint64_t)h >> (8 * k));
        memcpy(buf + 8, headers[i], h);
        memset(buf + 8 + h, 0, 4);
        rlc_st_file f;
        char err[1024] = "";
        int r = rlc_st_parse(&f, buf, 8 + h + 4, "dup.safetensors", err, sizeof err);
        CHECK(r == -1 && strstr(err, "dup.safetensors") && strstr(err, want[i]), "safetensors duplicate %d: \"%s\"",
              i, err);
        if (r == 0) rlc_st_close(&f);
    }
    char path[800], err[2048] = "";
    snprintf(path, sizeof path, "%s/regress_dup_config.json", base);
    write_text_file(path, "{\"hidden_size\": 8, \"intermediate_size\": 8, \"num_attention_heads\": 2, "
                          "\"num_hidden_layers\": 1, \"vocab_size\": 98, \"hidden_size\": 16}");
    rlc_model_config c;
    CHECK(rlc_checkpoint_read_hf_config(path, &c, err, sizeof err) == -1 && strstr(err, path) &&
              strstr(err, "duplicate key \"hidden_size\""),
          "HF config duplicate: \"%s\"", err);
    snprintf(path, sizeof path, "%s/regress_dup_repro.json", base);
    write_text_file(path, "{\"name\":\"x\",\"seeds\":[1],\"metrics\":[\"final:a\"],\"rows\":[{\"label\":\"a\",\"set\":"
                          "{\"rl.eps_low\":0.1,\"rl.eps_low\":0.3}}]}");
    rlc_repro_config rc;
    int r = rlc_repro_config_load(&rc, path, 0, err, sizeof err);
    CHECK(r == -1 && strstr(err, path) && strstr(err, "duplicate key \"rl.eps_low\""), "repro duplicate: \"%s\"", err);
    if (r == 0) rlc_repro_config_free(&rc);
}

// Found: an HF config.json was parsed without requiring the end of the text, so bytes after the object
// ("}r", a second object) were ignored, as was everything after a NUL byte; a repro config was cut at a NUL byte
// too (the training config already refused both).
static void regression_trailing_bytes(void) {
    static const char hf[] = "{\"hidden_size\": 8, \"intermediate_size\": 8, \"num_attention_heads\": 2, "
                             "\"num_hidden_layers\": 1, \"vocab_size\": 98}";
    char path[800], err[2048] = "";
    snprintf(path, sizeof path, "%s/regress_trailing.json", base);
    bytes b = {0};
    b_set(&b, hf, strlen(hf));
    rlc_model_config c;
    write_bytes(path, b.p, b.n);
    CHECK(rlc_checkpoint_read_hf_config(path, &c, err, sizeof err) == 0, "valid HF config: %s", err);
    b_splice(&b, b.n, 0, "r", 1);
    write_bytes(path, b.p, b.n);
    CHECK(rlc_checkpoint_read_hf_config(path, &c, err, sizeof err) == -1 && strstr(err, path) &&
              strstr(err, "trailing bytes"),
          "HF config with a trailing byte: \"%s\"", err);
    b.n--;
    b_splice(&b, b.n, 0, "\n\0{\"vocab_size\": 7}", 19);
    write_bytes(path, b.p, b.n);
    CHECK(rlc_checkpoint_read_hf_config(path, &c, err, sizeof err) == -1 && strstr(err, path) && strstr(err, "NUL"),
          "HF config with a NUL byte: \"%s\"", err);
    static const char repro[] = "{\"name\":\"x\",\"seeds\":[1],\"metrics\":[\"final:a\"],\"rows\":[{\"label\":\"a\"}]}";
    b_set(&b, repro, strlen(repro));
    b_splice(&b, b.n, 0, "\0, \"claims\": 3}", 16);
    snprintf(path, sizeof path, "%s/regress_trailing_repro.json", base);
    write_bytes(path, b.p, b.n);
    rlc_repro_config rc;
    int r = rlc_repro_config_load(&rc, path, 0, err, sizeof err);
    CHECK(r == -1 && strstr(err, path) && strstr(err, "NUL"), "repro config with a NUL byte: \"%s\"", err);
    if (r == 0) rlc_repro_config_free(&rc);
    b_free(&b);
}

// By review (the fuzzer's byte edits rarely spell a number): train_state metadata "kl_beta" = "nan" or "-1"
// was resumed from, a coefficient rl.kl_beta refuses (strtod reads "nan" and "inf").
static void regression_state_kl_beta(void) {
    static const char *const bad[] = {"nan", "-1", "inf"};
    char dir[800], path[900], err[2048] = "";
    snprintf(dir, sizeof dir, "%s/regress_state", base);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/train_state.safetensors", dir);
    rlc_model m;
    if (tiny_model(&m) != 0) return;
    for (int i = 0; i < 4; i++) {
        const char *kb = i < 3 ? bad[i] : "0.25";
        const char *meta[] = {"step", "1", "phase", "1", "rng_seed", "2", "data_pos", "3", "kl_beta", kb, "opt_t", "1"};
        CHECK(rlc_st_write(path, NULL, 0, meta, 6, err, sizeof err) == 0, "write: %s", err);
        rlc_train_state st;
        int r = rlc_checkpoint_load_state(&m, dir, &st, NULL, NULL, err, sizeof err);
        if (i < 3)
            CHECK(r == -1 && strstr(err, path) && strstr(err, "kl_beta"), "kl_beta \"%s\": rc %d \"%s\"", kb, r, err);
        else
            CHECK(r == 0 && st.kl_beta == 0.25, "kl_beta 0.25: %s", err);
    }
    rlc_model_free(&m);
}

static void regressions(void) {
    regression_repro_set_labels();
    regression_repro_numbers();
    regression_teacher_roundtrip();
    regression_u64_digits();
    regression_hf_ints();
    regression_duplicate_keys();
    regression_trailing_bytes();
    regression_state_kl_beta();
}

// ---- setup ----


int main(void) {
    const char *sc = getenv("RLC_FUZZ_SCALE"), *sd = getenv("RLC_FUZZ_SEED");
    if (sc && atoi(sc) > 0) scale = atoi(sc);
    uint64_t seed = sd ? strtoull(sd, NULL, 0) : 20261128;
    const char *fdir = getenv("RLC_FUZZ_DIR"); // campaigns side by side need their own directories
    snprintf(base, sizeof base, "%s/test_fuzz_files_tmp", fdir && fdir[0] ? fdir : RLC_BINARY_DIR);
    test_rm_tree(base);
    mkdir(base, 0755);

    regressions();

    // a checkpoint of a tiny model with a config, a train state and AdamW moments: the valid seeds
    rlc_model m;
    char err[2048], root[700], dir[800], p[900];
    if (tiny_model(&m) != 0) return test_finish("test_fuzz_files");
    rlc_model_init_weights(&m, 1);
    rlc_config cfg;
    CHECK(rlc_config_parse(&cfg, NULL, NULL, NULL, 0, err, sizeof err) == 0, "default config: %s", err);
    cfg.model = m.cfg;
    rlc_train_state st = {.step = 5, .phase = 1, .rng_seed = 123, .data_pos = 77, .kl_beta = 0.01, .opt_t = 5};
    rlc_train_state_set(&st, "best_eval", 0.25);
    rlc_f *am = rlc_malloc(m.n_params * sizeof(rlc_f)), *av = rlc_malloc(m.n_params * sizeof(rlc_f));
    for (size_t i = 0; i < m.n_params; i++) am[i] = (rlc_f)(0.001 * (double)(i % 17)), av[i] = (rlc_f)(1e-6 * (double)(i % 5));
    snprintf(root, sizeof root, "%s/ckpt", base);
    CHECK(rlc_checkpoint_save(&m, &cfg, root, &st, am, av, err, sizeof err) == 0, "save: %s", err);
    free(am);
    free(av);
    rlc_model_free(&m);
    rlc_checkpoint_resolve(root, dir, sizeof dir);
    const char *ckpt_name = strrchr(dir, '/') + 1;

    bytes model = {0}, state = {0}, hf = {0}, train = {0}, repro[8];
    memset(repro, 0, sizeof repro);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    CHECK(read_bytes(p, &model) == 0, "read %s", p);
    snprintf(p, sizeof p, "%s/train_state.safetensors", dir);
    CHECK(read_bytes(p, &state) == 0, "read %s", p);
    snprintf(p, sizeof p, "%s/config.json", dir);
    CHECK(read_bytes(p, &hf) == 0, "read %s", p);
    snprintf(p, sizeof p, "%s/rlc_config.json", dir);
    CHECK(read_bytes(p, &train) == 0, "read %s", p);
    static const char *const papers[] = {"dapo", "dpo_ipo", "empg", "kl_estimators", "ppo_grpo_rloo"};
    int n_repro = 0;
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s/configs/paper/%s.json", RLC_SOURCE_DIR, papers[i]);
        if (read_bytes(p, &repro[n_repro]) == 0) n_repro++;
    }
    CHECK(n_repro == 5, "paper configs found: %d", n_repro);
    if (test_failures) return test_finish("test_fuzz_files");

    // Counts sized for a few seconds in a Release build and under a minute with ASan+UBSan on a 2-core VM.
    rng_state = seed;
    printf("test_fuzz_files: seed %llu, scale %d\n", (unsigned long long)seed, scale);
    fuzz_model_file(&model, 4000 * scale);
    fuzz_state_file(&state, 3000 * scale);
    rlc_model_config fz_mc; // what each mutated file loads into
    rlc_config fz_cfg;
    fuzz_json_file("config.json (HF)", "fz_config.json", load_hf_config, check_hf_config, &fz_mc, &hf, 4000 * scale);
    fuzz_json_file("training config", "fz_train.json", load_train_config, check_config_roundtrip, &fz_cfg, &train,
                   4000 * scale);
    fuzz_overrides(3000 * scale);
    fuzz_repro_config(repro, n_repro, 3000 * scale);
    fuzz_metrics(1000 * scale);
    fuzz_latest(root, ckpt_name, 1000 * scale);

    b_free(&model);
    b_free(&state);
    b_free(&hf);
    b_free(&train);
    for (int i = 0; i < n_repro; i++) b_free(&repro[i]);
    if (!test_failures) test_rm_tree(base);
    return test_finish("test_fuzz_files");
}
