// host/safetensors.c: reading (fully validated) and atomic writing of safetensors files, plus the atomic file
// writer the checkpoints use for every file. See include/rlc/safetensors.h for the format and the rules.
#define _POSIX_C_SOURCE 200809L
#include "rlc/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rlc/util.h"
#include "json_util.h"

// The reference implementation caps the header at 100 MB; a larger value is a corrupt length field.
#define ST_MAX_HEADER (100u * 1000u * 1000u)
// Largest integer a JSON number (a double) represents exactly.
#define ST_MAX_EXACT 9007199254740992.0

static const struct {
    const char *name;
    size_t size;
} st_dtypes[] = {
    [RLC_ST_INVALID] = {"?", 0}, [RLC_ST_F32] = {"F32", 4}, [RLC_ST_F16] = {"F16", 2},
    [RLC_ST_BF16] = {"BF16", 2}, [RLC_ST_F64] = {"F64", 8}, [RLC_ST_I8] = {"I8", 1},
    [RLC_ST_U8] = {"U8", 1},     [RLC_ST_I16] = {"I16", 2}, [RLC_ST_I32] = {"I32", 4},
    [RLC_ST_I64] = {"I64", 8},   [RLC_ST_BOOL] = {"BOOL", 1},
};
#define ST_N_DTYPES ((int)(sizeof st_dtypes / sizeof st_dtypes[0]))

size_t rlc_st_dtype_size(rlc_st_dtype d) { return (d > 0 && (int)d < ST_N_DTYPES) ? st_dtypes[d].size : 0; }
const char *rlc_st_dtype_name(rlc_st_dtype d) {
    return (d > 0 && (int)d < ST_N_DTYPES) ? st_dtypes[d].name : "INVALID";
}
rlc_st_dtype rlc_st_dtype_from_name(const char *s) {
    for (int i = 1; i < ST_N_DTYPES; i++)
        if (strcmp(st_dtypes[i].name, s) == 0) return (rlc_st_dtype)i;
    return RLC_ST_INVALID;
}

// ---- reading ----

static char *st_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = rlc_malloc(n);
    memcpy(d, s, n);
    return d;
}

void rlc_st_close(rlc_st_file *f) {
    for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->tensors);
    free(f->meta_keys);
    free(f->meta_vals);
    free(f->buf);
    memset(f, 0, sizeof *f);
}

// A JSON number that must be a non-negative integer exactly representable; -1 if not.
static int st_json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0.0) || d > ST_MAX_EXACT || floor(d) != d) return -1;
    *out = (uint64_t)d;
    return 0;
}

// Line/column of byte offset pos in s (for malformed-header messages).
static void st_line_col(const char *s, size_t pos, int *line, int *col) {
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

static int st_parse_entry(const char *fn, const cJSON *e, rlc_st_tensor *t, size_t data_size, char *err,
                          size_t errlen) {
    const char *nm = e->string;
    if (!cJSON_IsObject(e))
        return rlc_errf(err, errlen, "%s: tensor \"%s\": header entry must be an object with dtype, shape, "
                        "data_offsets", fn, nm);
    const cJSON *dt = NULL, *sh = NULL, *off = NULL;
    for (const cJSON *c = e->child; c; c = c->next) {
        if (strcmp(c->string, "dtype") == 0) dt = c;
        else if (strcmp(c->string, "shape") == 0) sh = c;
        else if (strcmp(c->string, "data_offsets") == 0) off = c;
        else return rlc_errf(err, errlen, "%s: tensor \"%s\": unknown field \"%s\" (expected dtype, shape, "
                             "data_offsets)", fn, nm, c->string);
    }
    if (!dt || !sh || !off)
        return rlc_errf(err, errlen, "%s: tensor \"%s\": missing field \"%s\"", fn, nm,
                        !dt ? "dtype" : !sh ? "shape" : "data_offsets");
    if (!cJSON_IsString(dt))
        return rlc_errf(err, errlen, "%s: tensor \"%s\": dtype must be a string", fn, nm);
    t->dtype = rlc_st_dtype_from_name(dt->valuestring);
    if (t->dtype == RLC_ST_INVALID)
        return rlc_errf(err, errlen, "%s: tensor \"%s\": unknown dtype \"%s\" (expected one of F32, F16, BF16, "
                        "F64, I8, U8, I16, I32, I64, BOOL)", fn, nm, dt->valuestring);
    if (!cJSON_IsArray(sh))
        return rlc_errf(err, errlen, "%s: tensor \"%s\": shape must be an array of integers", fn, nm);
    int nd = cJSON_GetArraySize(sh);
    if (nd > RLC_ST_MAX_DIMS)
        return rlc_errf(err, errlen, "%s: tensor \"%s\": %d dimensions (at most %d supported)", fn, nm, nd,
                        RLC_ST_MAX_DIMS);
    t->ndim = nd;
    size_t numel = 1;
    int i = 0, overflow = 0;
    for (const cJSON *c = sh->child; c; c = c->next, i++) {
        uint64_t d;
        if (st_json_uint(c, &d) != 0)
            return rlc_errf(err, errlen, "%s: tensor \"%s\": shape[%d] must be a non-negative integer", fn, nm, i);
        t->shape[i] = (int64_t)d;
        if (__builtin_mul_overflow(numel, (size_t)d, &numel)) overflow = 1;
    }
    size_t nbytes = 0;
    if (overflow || __builtin_mul_overflow(numel, rlc_st_dtype_size(t->dtype), &nbytes))
        return rlc_errf(err, errlen, "%s: tensor \"%s\": shape product overflows (corrupt shape)", fn, nm);
    t->numel = numel;
    t->nbytes = nbytes;
    uint64_t b, en;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 || st_json_uint(off->child, &b) != 0 ||
        st_json_uint(off->child->next, &en) != 0)
        return rlc_errf(err, errlen, "%s: tensor \"%s\": data_offsets must be [begin, end] with non-negative "
                        "integers", fn, nm);
    if (en < b)
        return rlc_errf(err, errlen, "%s: tensor \"%s\": data_offsets [%llu, %llu] end before begin", fn, nm,
                        (unsigned long long)b, (unsigned long long)en);
    if (en > data_size)
        return rlc_errf(err, errlen, "%s: tensor \"%s\": data_offsets [%llu, %llu] outside the data region "
                        "(%zu bytes)", fn, nm, (unsigned long long)b, (unsigned long long)en, data_size);
    if (en - b != nbytes)
        return rlc_errf(err, errlen, "%s: tensor \"%s\": data_offsets span %llu bytes but shape and dtype %s "
                        "need %zu", fn, nm, (unsigned long long)(en - b), rlc_st_dtype_name(t->dtype), nbytes);
    t->begin = (size_t)b;
    return 0;
}

typedef struct st_span {
    size_t begin, nbytes;
    int idx;
} st_span;
static int st_cmp_span(const void *a, const void *b) {
    const st_span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return x->idx - y->idx;
}

// Sorted by begin, the tensors must tile the data region exactly: no overlap, no hole, nothing trailing.
static int st_check_layout(const char *fn, const rlc_st_tensor *ts, int n, size_t data_size, char *err,
                           size_t errlen) {
    st_span *sp = rlc_malloc((size_t)(n > 0 ? n : 1) * sizeof(st_span));
    for (int i = 0; i < n; i++) sp[i] = (st_span){ts[i].begin, ts[i].nbytes, i};
    qsort(sp, (size_t)n, sizeof(st_span), st_cmp_span);
    size_t cursor = 0;
    int prev = -1, rc = 0;
    for (int k = 0; k < n && rc == 0; k++) {
        const rlc_st_tensor *t = &ts[sp[k].idx];
        if (t->begin < cursor)
            rc = rlc_errf(err, errlen, "%s: tensor \"%s\": data_offsets [%zu, %zu] overlap tensor \"%s\" "
                          "[%zu, %zu]", fn, t->name, t->begin, t->begin + t->nbytes, ts[prev].name,
                          ts[prev].begin, ts[prev].begin + ts[prev].nbytes);
        else if (t->begin > cursor)
            rc = rlc_errf(err, errlen, "%s: tensor \"%s\": data_offsets begin at %zu leaving a hole after byte %zu "
                          "of the data region", fn, t->name, t->begin, cursor);
        cursor = t->begin + t->nbytes;
        prev = sp[k].idx;
    }
    if (rc == 0 && cursor != data_size)
        rc = rlc_errf(err, errlen, "%s: data region has %zu bytes but the tensors cover %zu (trailing bytes)", fn,
                      data_size, cursor);
    free(sp);
    return rc;
}

static int st_parse_owned(rlc_st_file *f, char *err, size_t errlen) {
    const char *fn = f->path;
    if (f->size < 8)
        return rlc_errf(err, errlen, "%s: file is %zu bytes, too short for the 8-byte header length", fn, f->size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f->buf[i];
    if (hlen > f->size - 8)
        return rlc_errf(err, errlen, "%s: header length %llu exceeds the file size (%zu bytes; truncated or not a "
                        "safetensors file)", fn, (unsigned long long)hlen, f->size);
    if (hlen > ST_MAX_HEADER)
        return rlc_errf(err, errlen, "%s: header length %llu exceeds the 100 MB limit", fn,
                        (unsigned long long)hlen);
    if (hlen < 2) return rlc_errf(err, errlen, "%s: header length %llu is too short for a JSON object", fn,
                                  (unsigned long long)hlen);
    size_t data_start = 8 + (size_t)hlen, data_size = f->size - data_start;
    if (memchr(f->buf + 8, 0, (size_t)hlen))
        return rlc_errf(err, errlen, "%s: header contains a NUL byte (corrupt header)", fn);
    char *hdr = rlc_malloc((size_t)hlen + 1);
    memcpy(hdr, f->buf + 8, (size_t)hlen);
    hdr[hlen] = 0;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(hdr, &end, 0);
    int rc = 0;
    if (!root) {
        size_t pos = end ? (size_t)(end - hdr) : 0;
        int line, col;
        st_line_col(hdr, pos, &line, &col);
        rc = rlc_errf(err, errlen, "%s: header is not valid JSON (error near byte %zu, line %d column %d)", fn,
                      pos, line, col);
        goto done;
    }
    for (const char *p = end; *p; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            rc = rlc_errf(err, errlen, "%s: header has trailing bytes after the JSON object (byte %zu)", fn,
                          (size_t)(p - hdr));
            goto done;
        }
    if (!cJSON_IsObject(root)) {
        rc = rlc_errf(err, errlen, "%s: header must be a JSON object", fn);
        goto done;
    }
    // inside a tensor entry or __metadata__ too: a second "dtype" or "step" would silently win or lose
    const cJSON *dup = rlc_json_duplicate(root);
    if (dup) {
        rc = rlc_errf(err, errlen, "%s: duplicate header key \"%s\"", fn, dup->string);
        goto done;
    }
    int n = 0;
    for (const cJSON *c = root->child; c; c = c->next)
        if (strcmp(c->string, "__metadata__") != 0) n++;
    f->tensors = rlc_calloc((size_t)(n > 0 ? n : 1), sizeof(rlc_st_tensor));
    for (const cJSON *c = root->child; c && rc == 0; c = c->next) { // no duplicate names (checked above)
        if (strcmp(c->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(c)) {
                rc = rlc_errf(err, errlen, "%s: __metadata__ must be an object of strings", fn);
                break;
            }
            int nm = cJSON_GetArraySize(c);
            f->meta_keys = rlc_calloc((size_t)(nm > 0 ? nm : 1), sizeof(char *));
            f->meta_vals = rlc_calloc((size_t)(nm > 0 ? nm : 1), sizeof(char *));
            for (const cJSON *m = c->child; m; m = m->next) {
                if (!cJSON_IsString(m)) {
                    rc = rlc_errf(err, errlen, "%s: __metadata__ value of \"%s\" must be a string", fn, m->string);
                    break;
                }
                f->meta_keys[f->n_meta] = st_strdup(m->string);
                f->meta_vals[f->n_meta] = st_strdup(m->valuestring);
                f->n_meta++;
            }
            continue;
        }
        rlc_st_tensor *t = &f->tensors[f->n_tensors];
        t->name = st_strdup(c->string);
        f->n_tensors++;
        rc = st_parse_entry(fn, c, t, data_size, err, errlen);
        if (rc == 0) t->data = f->buf + data_start + t->begin;
    }
    if (rc == 0) rc = st_check_layout(fn, f->tensors, f->n_tensors, data_size, err, errlen);
done:
    cJSON_Delete(root);
    free(hdr);
    return rc;
}

int rlc_st_parse(rlc_st_file *f, const void *buf, size_t size, const char *label, char *err, size_t errlen) {
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", label ? label : "<memory>");
    f->buf = rlc_malloc(size);
    if (size) memcpy(f->buf, buf, size);
    f->size = size;
    if (st_parse_owned(f, err, errlen) != 0) {
        rlc_st_close(f);
        return -1;
    }
    return 0;
}

int rlc_st_open(rlc_st_file *f, const char *path, char *err, size_t errlen) {
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "rb");
    if (!fp) return rlc_errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(fp);
        return rlc_errf(err, errlen, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    unsigned char *buf = rlc_malloc(size);
    size_t got = size ? fread(buf, 1, size, fp) : 0;
    fclose(fp);
    if (got != size) {
        free(buf);
        return rlc_errf(err, errlen, "%s: read %zu of %zu bytes", path, got, size);
    }
    snprintf(f->path, sizeof f->path, "%s", path);
    f->buf = buf;
    f->size = size;
    if (st_parse_owned(f, err, errlen) != 0) {
        rlc_st_close(f);
        return -1;
    }
    return 0;
}

const rlc_st_tensor *rlc_st_find(const rlc_st_file *f, const char *name) {
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *rlc_st_meta(const rlc_st_file *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_vals[i];
    return NULL;
}

static float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    float v;
    if (e == 0) v = ldexpf((float)m, -24); // subnormal (or zero)
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexpf((float)(m | 0x400), (int)e - 25);
    return sign ? -v : v;
}

int rlc_st_to_float(const rlc_st_file *f, const rlc_st_tensor *t, rlc_f *out, char *err, size_t errlen) {
    const unsigned char *p = t->data;
    switch (t->dtype) {
    case RLC_ST_F32:
        for (size_t i = 0; i < t->numel; i++) {
            float v;
            memcpy(&v, p + 4 * i, 4);
            out[i] = (rlc_f)v;
        }
        return 0;
    case RLC_ST_F64:
        for (size_t i = 0; i < t->numel; i++) {
            double v;
            memcpy(&v, p + 8 * i, 8);
            out[i] = (rlc_f)v;
        }
        return 0;
    case RLC_ST_BF16:
        for (size_t i = 0; i < t->numel; i++) {
            uint32_t bits = ((uint32_t)p[2 * i] | ((uint32_t)p[2 * i + 1] << 8)) << 16;
            float v;
            memcpy(&v, &bits, 4);
            out[i] = (rlc_f)v;
        }
        return 0;
    case RLC_ST_F16:
        for (size_t i = 0; i < t->numel; i++)
            out[i] = (rlc_f)st_f16_to_f32((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
        return 0;
    default:
        return rlc_errf(err, errlen, "%s: tensor \"%s\": dtype %s is not a floating type (expected F32, BF16, F16 "
                        "or F64)", f->path, t->name, rlc_st_dtype_name(t->dtype));
    }
}

// ---- atomic writer ----

int rlc_fsync_dir(const char *path, char *err, size_t errlen) {
    char dir[1024];
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(dir, sizeof dir, "%s", path);
    } else {
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (!slash) snprintf(dir, sizeof dir, ".");
        else if (slash == dir) dir[1] = 0;
        else *slash = 0;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return rlc_errf(err, errlen, "%s: cannot open directory: %s", dir, strerror(errno));
    // Some filesystems refuse fsync on directories (EINVAL); the rename is still done, so that is not fatal.
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0 && e != EINVAL && e != EROFS)
        return rlc_errf(err, errlen, "%s: fsync of directory failed: %s", dir, strerror(e));
    return 0;
}

int rlc_atomic_open(rlc_atomic_file *a, const char *path, char *err, size_t errlen) {
    memset(a, 0, sizeof *a);
    if (strlen(path) >= sizeof a->path) return rlc_errf(err, errlen, "%s: path too long", path);
    snprintf(a->path, sizeof a->path, "%s", path);
    snprintf(a->tmp, sizeof a->tmp, "%s.tmp.%ld", path, (long)getpid());
    a->f = fopen(a->tmp, "wb");
    if (!a->f) return rlc_errf(err, errlen, "%s: cannot create: %s", a->tmp, strerror(errno));
    return 0;
}

int rlc_atomic_write(rlc_atomic_file *a, const void *data, size_t n, char *err, size_t errlen) {
    if (n && fwrite(data, 1, n, a->f) != n)
        return rlc_errf(err, errlen, "%s: write failed: %s", a->tmp, strerror(errno));
    return 0;
}

void rlc_atomic_abort(rlc_atomic_file *a) {
    if (a->f) fclose(a->f);
    a->f = NULL;
    if (a->tmp[0]) remove(a->tmp);
}

int rlc_atomic_commit(rlc_atomic_file *a, char *err, size_t errlen) {
    if (fflush(a->f) != 0 || fsync(fileno(a->f)) != 0) {
        int e = errno;
        rlc_atomic_abort(a);
        return rlc_errf(err, errlen, "%s: flush failed: %s", a->tmp, strerror(e));
    }
    int rc = fclose(a->f);
    a->f = NULL;
    if (rc != 0) {
        int e = errno;
        remove(a->tmp);
        return rlc_errf(err, errlen, "%s: close failed: %s", a->tmp, strerror(e));
    }
    if (rename(a->tmp, a->path) != 0) {
        int e = errno;
        remove(a->tmp);
        return rlc_errf(err, errlen, "%s: rename to %s failed: %s", a->tmp, a->path, strerror(e));
    }
    return rlc_fsync_dir(a->path, err, errlen);
}

int rlc_write_file_atomic(const char *path, const void *data, size_t n, char *err, size_t errlen) {
    rlc_atomic_file a;
    if (rlc_atomic_open(&a, path, err, errlen) != 0) return -1;
    if (rlc_atomic_write(&a, data, n, err, errlen) != 0) {
        rlc_atomic_abort(&a);
        return -1;
    }
    return rlc_atomic_commit(&a, err, errlen);
}

// ---- writing safetensors ----

// Growable string for the header.
typedef struct st_buf {
    char *s;
    size_t n, cap;
} st_buf;

static void sb_putn(st_buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->n + n + 1 > cap) cap *= 2;
        char *ns = realloc(b->s, cap);
        if (!ns) RLC_FATAL("out of memory growing a safetensors header to %zu bytes", cap);
        b->s = ns;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}
static void sb_puts(st_buf *b, const char *s) { sb_putn(b, s, strlen(s)); }
static void sb_putq(st_buf *b, const char *s) { // JSON string literal
    sb_puts(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            sb_putn(b, esc, 2);
        } else if (*p < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            sb_puts(b, esc);
        } else {
            sb_putn(b, (const char *)p, 1);
        }
    }
    sb_puts(b, "\"");
}

int rlc_st_write(const char *path, const rlc_st_entry *entries, int n, const char *const *meta_kv, int n_meta,
                 char *err, size_t errlen) {
    st_buf h = {0};
    char num[64];
    size_t off = 0;
    sb_puts(&h, "{");
    if (n_meta > 0) {
        sb_puts(&h, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) sb_puts(&h, ",");
            sb_putq(&h, meta_kv[2 * i]);
            sb_puts(&h, ":");
            sb_putq(&h, meta_kv[2 * i + 1]);
        }
        sb_puts(&h, "}");
    }
    size_t *nbytes = rlc_malloc((size_t)(n > 0 ? n : 1) * sizeof(size_t));
    for (int i = 0; i < n; i++) {
        const rlc_st_entry *e = &entries[i];
        size_t ds = rlc_st_dtype_size(e->dtype), numel = 1;
        if (ds == 0 || e->ndim < 0 || e->ndim > RLC_ST_MAX_DIMS || strcmp(e->name, "__metadata__") == 0) {
            free(h.s);
            free(nbytes);
            return rlc_errf(err, errlen, "%s: tensor \"%s\": invalid dtype, ndim or name for writing", path,
                            e->name);
        }
        int neg = 0;
        for (int d = 0; d < e->ndim; d++) {
            neg |= e->shape[d] < 0;
            numel *= (size_t)e->shape[d];
        }
        if (neg) {
            free(h.s);
            free(nbytes);
            return rlc_errf(err, errlen, "%s: tensor \"%s\": negative dimension", path, e->name);
        }
        nbytes[i] = numel * ds;
        sb_puts(&h, (i || n_meta > 0) ? "," : "");
        sb_putq(&h, e->name);
        sb_puts(&h, ":{\"dtype\":\"");
        sb_puts(&h, rlc_st_dtype_name(e->dtype));
        sb_puts(&h, "\",\"shape\":[");
        for (int d = 0; d < e->ndim; d++) {
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)e->shape[d]);
            sb_puts(&h, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%zu,%zu]}", off, off + nbytes[i]);
        sb_puts(&h, num);
        off += nbytes[i];
    }
    sb_puts(&h, "}");
    // Pad with spaces so the data region starts 8-byte aligned (as the reference writer does).
    while ((8 + h.n) % 8) sb_puts(&h, " ");
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h.n >> (8 * i));
    rlc_atomic_file a;
    int rc = rlc_atomic_open(&a, path, err, errlen);
    if (rc == 0) rc = rlc_atomic_write(&a, len8, 8, err, errlen);
    if (rc == 0) rc = rlc_atomic_write(&a, h.s, h.n, err, errlen);
    for (int i = 0; i < n && rc == 0; i++) rc = rlc_atomic_write(&a, entries[i].data, nbytes[i], err, errlen);
    if (rc == 0) rc = rlc_atomic_commit(&a, err, errlen);
    else if (a.f) rlc_atomic_abort(&a);
    free(h.s);
    free(nbytes);
    return rc;
}
