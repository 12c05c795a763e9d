// include/rlc/safetensors.h: the safetensors file format (HF): an 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}, then the raw tensor bytes.
// Reading validates everything before any tensor is used (header length within the file, header a JSON
// object, known dtypes, non-negative shapes whose byte size fits, offsets inside the data region, no
// overlaps, no holes); every violation is an error naming the file, the tensor and what was wrong. The whole
// file is read into memory once, so nothing is ever read outside it.
// Writing is atomic: `<path>.tmp.<pid>` is written, flushed and fsync'd, renamed over `path`, and the
// directory is fsync'd. The same atomic writer is exposed for the other small files of a checkpoint.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rlc/ops.h"

typedef enum rlc_st_dtype {
    RLC_ST_INVALID = 0,
    RLC_ST_F32,
    RLC_ST_F16,
    RLC_ST_BF16,
    RLC_ST_F64,
    RLC_ST_I8,
    RLC_ST_U8,
    RLC_ST_I16,
    RLC_ST_I32,
    RLC_ST_I64,
    RLC_ST_BOOL,
} rlc_st_dtype;

#define RLC_ST_MAX_DIMS 8

// Bytes per element (0 for RLC_ST_INVALID); the dtype's name as safetensors spells it ("F32", "BF16", ...).
size_t rlc_st_dtype_size(rlc_st_dtype d);
const char *rlc_st_dtype_name(rlc_st_dtype d);
rlc_st_dtype rlc_st_dtype_from_name(const char *s); // RLC_ST_INVALID if unknown

// One tensor of an opened file. data points into the file buffer (not aligned: copy or convert it).
typedef struct rlc_st_tensor {
    char *name;
    rlc_st_dtype dtype;
    int ndim;
    int64_t shape[RLC_ST_MAX_DIMS];
    size_t numel;
    size_t nbytes;
    size_t begin;        // offset into the data region
    const unsigned char *data;
} rlc_st_tensor;

typedef struct rlc_st_file {
    char path[1024];           // for messages
    unsigned char *buf;        // the whole file
    size_t size;
    int n_tensors;
    rlc_st_tensor *tensors;    // (n_tensors) in header order
    int n_meta;
    char **meta_keys, **meta_vals; // (n_meta) the "__metadata__" string map
} rlc_st_file;

// Read and validate a file. On error returns -1 with a message; f is left empty (rlc_st_close is safe).
int rlc_st_open(rlc_st_file *f, const char *path, char *err, size_t errlen);
// Same on a buffer already in memory (copied; `label` names it in messages).
int rlc_st_parse(rlc_st_file *f, const void *buf, size_t size, const char *label, char *err, size_t errlen);
void rlc_st_close(rlc_st_file *f);
const rlc_st_tensor *rlc_st_find(const rlc_st_file *f, const char *name);
// Metadata value of `key`, or NULL.
const char *rlc_st_meta(const rlc_st_file *f, const char *key);
// Convert a floating tensor (F32, F16, BF16, F64) to rlc_f (numel values); -1 with a message for other dtypes.
int rlc_st_to_float(const rlc_st_file *f, const rlc_st_tensor *t, rlc_f *out, char *err, size_t errlen);

// ---- writing ----
typedef struct rlc_st_entry {
    const char *name;
    rlc_st_dtype dtype;
    int ndim;
    int64_t shape[RLC_ST_MAX_DIMS];
    const void *data;    // numel * dtype size bytes, host memory
} rlc_st_entry;

// Write n tensors (laid out in the given order) and n_meta key/value string pairs (meta_kv[2i], meta_kv[2i+1])
// atomically to path.
int rlc_st_write(const char *path, const rlc_st_entry *entries, int n, const char *const *meta_kv, int n_meta,
                 char *err, size_t errlen);

// ---- atomic file writer (used for every checkpoint file) ----
typedef struct rlc_atomic_file {
    FILE *f;
    char path[1024];
    char tmp[1100];
} rlc_atomic_file;
int rlc_atomic_open(rlc_atomic_file *a, const char *path, char *err, size_t errlen);
int rlc_atomic_write(rlc_atomic_file *a, const void *data, size_t n, char *err, size_t errlen);
// Flush, fsync, close, rename over the target, fsync the directory. On failure the tmp file is removed.
int rlc_atomic_commit(rlc_atomic_file *a, char *err, size_t errlen);
void rlc_atomic_abort(rlc_atomic_file *a);
// Whole-buffer convenience: rlc_atomic_open + write + commit.
int rlc_write_file_atomic(const char *path, const void *data, size_t n, char *err, size_t errlen);
// fsync the directory that contains `path` (or `path` itself when it is a directory).
int rlc_fsync_dir(const char *path, char *err, size_t errlen);
