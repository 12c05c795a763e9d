// tests/test_safetensors.c: safetensors round trip (all dtypes, metadata, alignment, atomic replace) and the
// validation of bad files: truncation at every cut point, header length beyond the file, offsets outside the
// data, overlaps, holes, trailing bytes, unknown dtypes, shape/offset mismatches, non-object headers, shape
// products that overflow. Each must be a clean error naming the file and the tensor.
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rlc/safetensors.h"
#include "rlc/util.h"
#include "test_util.h"

// A file built by hand: 8-byte little-endian header length, the header text, data_len bytes of data.
static unsigned char *make_file(const char *header, size_t data_len, size_t *size) {
    size_t h = strlen(header);
    *size = 8 + h + data_len;
    unsigned char *b = calloc(*size, 1);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(b + 8, header, h);
    for (size_t i = 0; i < data_len; i++) b[8 + h + i] = (unsigned char)i;
    return b;
}

// Parsing the buffer must fail with a message containing all substrings (NULL-terminated).
static void expect_bad_(int line, const unsigned char *buf, size_t size, const char *s1, const char *s2,
                        const char *s3) {
    rlc_st_file f;
    char err[512] = "";
    int rc = rlc_st_parse(&f, buf, size, "bad.safetensors", err, sizeof err);
    CHECK(rc == -1, "line %d: bad file accepted", line);
    const char *subs[3] = {s1, s2, s3};
    for (int i = 0; i < 3; i++)
        if (subs[i]) CHECK(strstr(err, subs[i]) != NULL, "line %d: message \"%s\" lacks \"%s\"", line, err, subs[i]);
    CHECK(strstr(err, "bad.safetensors") != NULL, "line %d: message \"%s\" lacks the file name", line, err);
    CHECK(f.buf == NULL && f.n_tensors == 0, "line %d: failed parse left state behind", line);
    rlc_st_close(&f);
}
#define EXPECT_BAD_HDR(hdr, data_len, s1, s2, s3)                                                                 \
    do {                                                                                                          \
        size_t sz_;                                                                                               \
        unsigned char *b_ = make_file(hdr, data_len, &sz_);                                                       \
        expect_bad_(__LINE__, b_, sz_, s1, s2, s3);                                                               \
        free(b_);                                                                                                 \
    } while (0)

static char dir[512];

static void test_roundtrip(void) {
    float a[6] = {1.0f, -2.5f, 3.25f, 0.0f, 1e-3f, -7.0f};
    // BF16 / F16 bit patterns of known values (computed by hand): 1.0, -2.0, 0.5, 3.140625
    uint16_t bf[4] = {0x3F80, 0xC000, 0x3F00, 0x4049};
    const float bf_want[4] = {1.0f, -2.0f, 0.5f, 3.140625f};
    // F16: 1.0, -2.0, 0.5, 65504 (max), 2^-24 (smallest subnormal)
    uint16_t hf[5] = {0x3C00, 0xC000, 0x3800, 0x7BFF, 0x0001};
    const double hf_want[5] = {1.0, -2.0, 0.5, 65504.0, 5.9604644775390625e-08};
    double d = 3.141592653589793;
    int32_t i32[5] = {1, -2, 3, 2147483647, -2147483647 - 1};
    int64_t i64[4] = {1, -1, INT64_MAX, INT64_MIN};
    rlc_st_entry es[7] = {
        {.name = "w", .dtype = RLC_ST_F32, .ndim = 2, .shape = {2, 3}, .data = a},
        {.name = "bf", .dtype = RLC_ST_BF16, .ndim = 1, .shape = {4}, .data = bf},
        {.name = "hf", .dtype = RLC_ST_F16, .ndim = 1, .shape = {5}, .data = hf},
        {.name = "scalar \"quoted\"", .dtype = RLC_ST_F64, .ndim = 0, .data = &d},
        {.name = "i32", .dtype = RLC_ST_I32, .ndim = 1, .shape = {5}, .data = i32},
        {.name = "i64", .dtype = RLC_ST_I64, .ndim = 2, .shape = {2, 2}, .data = i64},
        {.name = "empty", .dtype = RLC_ST_F32, .ndim = 2, .shape = {0, 3}, .data = NULL},
    };
    const char *meta[] = {"format", "pt", "step", "42", "weird \"key\"\n", "v\\al"};
    char path[600], err[512];
    snprintf(path, sizeof path, "%s/rt.safetensors", dir);
    CHECK(rlc_st_write(path, es, 7, meta, 3, err, sizeof err) == 0, "write: %s", err);
    rlc_st_file f;
    if (rlc_st_open(&f, path, err, sizeof err) != 0) {
        CHECK(0, "open: %s", err);
        return;
    }
    CHECK(f.n_tensors == 7, "n_tensors %d", f.n_tensors);
    CHECK(f.n_meta == 3, "n_meta %d", f.n_meta);
    CHECK(rlc_st_meta(&f, "step") && strcmp(rlc_st_meta(&f, "step"), "42") == 0, "meta step");
    CHECK(rlc_st_meta(&f, "weird \"key\"\n") && strcmp(rlc_st_meta(&f, "weird \"key\"\n"), "v\\al") == 0,
          "escaped metadata");
    CHECK(rlc_st_meta(&f, "nope") == NULL, "missing meta");
    // the data region starts 8-byte aligned
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f.buf[i];
    CHECK((8 + hlen) % 8 == 0, "header not padded to 8 bytes: %llu", (unsigned long long)hlen);
    for (int i = 0; i < 7; i++) {
        const rlc_st_tensor *t = rlc_st_find(&f, es[i].name);
        CHECK(t != NULL, "tensor %s missing", es[i].name);
        if (!t) continue;
        CHECK(t->dtype == es[i].dtype && t->ndim == es[i].ndim, "%s dtype/ndim", es[i].name);
        size_t numel = 1;
        for (int k = 0; k < es[i].ndim; k++) {
            CHECK(t->shape[k] == es[i].shape[k], "%s shape[%d]", es[i].name, k);
            numel *= (size_t)es[i].shape[k];
        }
        CHECK(t->numel == numel && t->nbytes == numel * rlc_st_dtype_size(es[i].dtype), "%s numel", es[i].name);
        if (numel) CHECK(memcmp(t->data, es[i].data, t->nbytes) == 0, "%s bytes differ", es[i].name);
    }
    rlc_f out[6];
    CHECK(rlc_st_to_float(&f, rlc_st_find(&f, "w"), out, err, sizeof err) == 0, "to_float F32");
    for (int i = 0; i < 6; i++) CHECK(out[i] == (rlc_f)a[i], "F32 value %d", i);
    CHECK(rlc_st_to_float(&f, rlc_st_find(&f, "bf"), out, err, sizeof err) == 0, "to_float BF16");
    for (int i = 0; i < 4; i++) CHECK(out[i] == (rlc_f)bf_want[i], "BF16 value %d: %g", i, (double)out[i]);
    CHECK(rlc_st_to_float(&f, rlc_st_find(&f, "hf"), out, err, sizeof err) == 0, "to_float F16");
    for (int i = 0; i < 5; i++) CHECK(out[i] == (rlc_f)hf_want[i], "F16 value %d: %g", i, (double)out[i]);
    CHECK(rlc_st_to_float(&f, rlc_st_find(&f, "scalar \"quoted\""), out, err, sizeof err) == 0, "to_float F64");
    CHECK(out[0] == (rlc_f)d, "F64 value");
    CHECK(rlc_st_to_float(&f, rlc_st_find(&f, "i32"), out, err, sizeof err) == -1 && strstr(err, "\"i32\""),
          "int tensor to float must fail naming it: %s", err);
    // an independent reading of the header: offsets tile the data region in write order
    char *hdr = calloc(hlen + 1, 1);
    memcpy(hdr, f.buf + 8, hlen);
    cJSON *j = cJSON_Parse(hdr);
    CHECK(j != NULL, "header does not parse with cJSON");
    size_t expect_off = 0;
    for (int i = 0; j && i < 7; i++) {
        cJSON *o = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, es[i].name), "data_offsets");
        CHECK(o && (size_t)cJSON_GetArrayItem(o, 0)->valuedouble == expect_off, "%s begin", es[i].name);
        expect_off += rlc_st_find(&f, es[i].name)->nbytes;
    }
    CHECK(expect_off + 8 + hlen == f.size, "file size %zu", f.size);
    cJSON_Delete(j);
    free(hdr);

    // every truncation of a valid file is a clean error
    int bad_ok = 0;
    for (size_t cut = 0; cut < f.size; cut++) {
        rlc_st_file g;
        char e2[512] = "";
        int rc = rlc_st_parse(&g, f.buf, cut, "cut.safetensors", e2, sizeof e2);
        if (rc == 0) rlc_st_close(&g);
        if (rc == -1 && strstr(e2, "cut.safetensors")) bad_ok++;
        else CHECK(0, "truncation at %zu accepted or unnamed: \"%s\"", cut, e2);
    }
    CHECK(bad_ok == (int)f.size, "truncations %d of %zu", bad_ok, f.size);
    // and so is flipping the header length to anything larger than the file
    unsigned char *copy = malloc(f.size);
    memcpy(copy, f.buf, f.size);
    for (int i = 0; i < 8; i++) copy[i] = 0xff;
    expect_bad_(__LINE__, copy, f.size, "header length", "exceeds the file size", NULL);
    free(copy);
    rlc_st_close(&f);

    // atomic replace: a second write replaces the content and leaves no temporary file behind
    float b[1] = {9.0f};
    rlc_st_entry e1 = {.name = "only", .dtype = RLC_ST_F32, .ndim = 1, .shape = {1}, .data = b};
    CHECK(rlc_st_write(path, &e1, 1, NULL, 0, err, sizeof err) == 0, "rewrite: %s", err);
    CHECK(rlc_st_open(&f, path, err, sizeof err) == 0 && f.n_tensors == 1 && rlc_st_find(&f, "only"),
          "rewritten file: %s", err);
    rlc_st_close(&f);
    DIR *dd = opendir(dir);
    int stray = 0;
    for (struct dirent *e; dd && (e = readdir(dd));)
        if (strstr(e->d_name, ".tmp.")) stray++;
    if (dd) closedir(dd);
    CHECK(stray == 0, "%d temporary files left", stray);
    // write into a missing directory: clean error naming the path
    char bad[700];
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.safetensors", dir);
    CHECK(rlc_st_write(bad, &e1, 1, NULL, 0, err, sizeof err) == -1 && strstr(err, "no/such/dir"), "missing dir: %s",
          err);
    CHECK(rlc_st_open(&f, bad, err, sizeof err) == -1 && strstr(err, "no/such/dir"), "open missing: %s", err);
    CHECK(rlc_st_open(&f, dir, err, sizeof err) == -1, "opening a directory must fail");
}

static void test_bad_headers(void) {
    const char *ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    size_t sz;
    unsigned char *b = make_file(ok, 8, &sz);
    rlc_st_file f;
    char err[512];
    CHECK(rlc_st_parse(&f, b, sz, "ok", err, sizeof err) == 0, "hand-made valid file: %s", err);
    rlc_st_close(&f);
    free(b);

    // shorter than the length field
    unsigned char tiny[5] = {1, 0, 0, 0, 0};
    expect_bad_(__LINE__, tiny, sizeof tiny, "too short", NULL, NULL);
    // offsets outside the data region
    EXPECT_BAD_HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[25],\"data_offsets\":[0,100]}}", 16, "\"a\"",
                   "outside the data region", NULL);
    // overlapping tensors
    EXPECT_BAD_HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                   12, "\"b\"", "overlap", "\"a\"");
    // a hole, and trailing bytes
    EXPECT_BAD_HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                   12, "\"b\"", "hole", NULL);
    EXPECT_BAD_HDR(ok, 12, "trailing", NULL, NULL);
    // unknown dtype
    EXPECT_BAD_HDR("{\"a\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "\"a\"",
                   "unknown dtype \"F33\"", NULL);
    EXPECT_BAD_HDR("{\"a\":{\"dtype\":7,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "\"a\"", "dtype", NULL);
    // shape / offsets mismatch
    EXPECT_BAD_HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "\"a\"", "need 12", NULL);
    EXPECT_BAD_HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "\"a\"", "end before begin",
                   NULL);
    EXPECT_BAD_HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, "\"a\"", "data_offsets",
                   NULL);
    // bad shapes
    EXPECT_BAD_HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "\"a\"", "shape[0]",
                   "non-negative");
    EXPECT_BAD_HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", 8, "\"a\"", "shape[0]", NULL);
    EXPECT_BAD_HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}",
                   8, "\"a\"", "overflow", NULL);
    EXPECT_BAD_HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[2147483648,2147483648],\"data_offsets\":[0,8]}}", 8, "\"a\"",
                   "overflow", NULL);
    EXPECT_BAD_HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,8]}}", 8, "\"a\"", "shape[0]",
                   NULL);
    EXPECT_BAD_HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "\"a\"",
                   "dimensions", NULL);
    // missing / unknown fields
    EXPECT_BAD_HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "\"a\"", "missing field \"data_offsets\"", NULL);
    EXPECT_BAD_HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", 8, "\"a\"",
                   "unknown field \"x\"", NULL);
    EXPECT_BAD_HDR("{\"a\":[1,2]}", 8, "\"a\"", "must be an object", NULL);
    // header not an object / not JSON / NUL inside / duplicate names / metadata not strings
    EXPECT_BAD_HDR("[1,2]", 0, "must be a JSON object", NULL, NULL);
    EXPECT_BAD_HDR("\"str\"", 0, "must be a JSON object", NULL, NULL);
    EXPECT_BAD_HDR("{\"a\":{\"dtype\":\"F32\",", 8, "not valid JSON", NULL, NULL);
    EXPECT_BAD_HDR("{} x", 0, "trailing bytes", NULL, NULL);
    EXPECT_BAD_HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                   "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                   8, "duplicate", "\"a\"", NULL);
    EXPECT_BAD_HDR("{\"__metadata__\":{\"k\":1}}", 0, "__metadata__", "\"k\"", NULL);
    EXPECT_BAD_HDR("{\"__metadata__\":[]}", 0, "__metadata__", NULL, NULL);
    {
        size_t s2;
        unsigned char *nb = make_file("{\"a\":1}", 0, &s2);
        nb[10] = 0;
        expect_bad_(__LINE__, nb, s2, "NUL", NULL, NULL);
        free(nb);
    }
    // a header length field larger than the file, with a valid header in it
    b = make_file(ok, 8, &sz);
    b[0] = (unsigned char)(b[0] + 9);
    expect_bad_(__LINE__, b, sz, "exceeds the file size", NULL, NULL);
    free(b);
    // header length too large to be a header at all (but inside a big file is impossible here: check the cap)
    b = make_file(ok, 8, &sz);
    b[7] = 0x7f;
    expect_bad_(__LINE__, b, sz, "header length", NULL, NULL);
    free(b);
    // an empty file (valid: zero tensors) parses
    b = make_file("{}", 0, &sz);
    CHECK(rlc_st_parse(&f, b, sz, "empty", err, sizeof err) == 0 && f.n_tensors == 0, "empty file: %s", err);
    rlc_st_close(&f);
    free(b);
}

int main(void) {
    snprintf(dir, sizeof dir, "%s/test_safetensors_tmp", RLC_BINARY_DIR);
    mkdir(dir, 0755);
    test_roundtrip();
    test_bad_headers();
    return test_finish("test_safetensors");
}
