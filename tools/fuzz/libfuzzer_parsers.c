// tools/fuzz/libfuzzer_parsers.c: coverage-guided fuzzing (clang's libFuzzer) of rlc's parsers, for local bug
// hunting only: CI has no libFuzzer step (its deterministic fuzzer is tests/test_fuzz_files.c). One binary per
// target, chosen at build time with -DFUZZ_TARGET=1..4 (tools/fuzz/build.sh):
//   1 safetensors  rlc_st_parse on the input bytes; accepted files must keep every tensor inside the buffer
//   2 config       rlc_config_parse of the input as a training config; accepted configs must round-trip
//   3 repro        rlc_repro_config_parse of the input, then every row's cell config
//   4 hf_config    rlc_checkpoint_read_hf_config on the input written to a file
// A violated property aborts (libFuzzer saves the input); sanitizers report the rest.
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rlc/checkpoint.h"
#include "rlc/config.h"
#include "rlc/repro.h"
#include "rlc/safetensors.h"

#ifndef FUZZ_TARGET
#define FUZZ_TARGET 1
#endif

static void must(int cond, const char *what, const char *err) {
    if (cond) return;
    fprintf(stderr, "property violated: %s (%s)\n", what, err ? err : "");
    abort();
}

// A failed parse: -1 and a message that names the label.
static void named(int rc, const char *err, const char *label) {
    if (rc == 0) return;
    must(rc == -1 && err[0] && strstr(err, label), "error without the file's name", err);
}

static char *as_text(const uint8_t *d, size_t n) {
    char *t = malloc(n + 1);
    memcpy(t, d, n);
    t[n] = 0;
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[2048] = "";
#if FUZZ_TARGET == 1
    rlc_st_file f;
    int rc = rlc_st_parse(&f, data, size, "fuzz.safetensors", err, sizeof err);
    named(rc, err, "fuzz.safetensors");
    if (rc == 0) {
        for (int i = 0; i < f.n_tensors; i++) {
            const rlc_st_tensor *t = &f.tensors[i];
            must(t->data >= f.buf && t->nbytes <= f.size && t->data + t->nbytes <= f.buf + f.size,
                 "tensor outside the buffer", t->name);
            must(t->nbytes == t->numel * rlc_st_dtype_size(t->dtype), "nbytes", t->name);
        }
        rlc_st_close(&f);
    }
#elif FUZZ_TARGET == 2
    if (size > 1 << 16) return 0;
    char *t = as_text(data, size);
    rlc_config a, b;
    int rc = rlc_config_parse(&a, t, "fuzz.json", NULL, 0, err, sizeof err);
    named(rc, err, "fuzz.json");
    if (rc == 0) {
        char *js = rlc_config_to_json(&a);
        must(rlc_config_parse(&b, js, "fuzz.json", NULL, 0, err, sizeof err) == 0 && memcmp(&a, &b, sizeof a) == 0,
             "accepted config does not round-trip", err);
        free(js);
    }
    free(t);
#elif FUZZ_TARGET == 3
    if (size > 1 << 16) return 0;
    char *t = as_text(data, size);
    static rlc_repro_config rc;
    int r = rlc_repro_config_parse(&rc, t, "fuzz.json", NULL, 1, err, sizeof err);
    named(r, err, "fuzz.json");
    if (r == 0) {
        for (int row = 0; row < rc.n_rows; row++) {
            rlc_config cfg;
            int cr = rlc_repro_cell_config(&rc, row, 0, "res", NULL, 0, &cfg, err, sizeof err);
            named(cr, err, "fuzz.json");
        }
        rlc_repro_config_free(&rc);
    }
    free(t);
#else
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/rlc_fuzz_hf_%ld.json", (long)getpid());
    FILE *fp = fopen(path, "wb");
    if (!fp) return 0;
    fwrite(data, 1, size, fp);
    fclose(fp);
    rlc_model_config c;
    int rc = rlc_checkpoint_read_hf_config(path, &c, err, sizeof err);
    named(rc, err, path);
    if (rc == 0) must(rlc_model_config_check(&c, err, sizeof err) == 0, "accepted config fails the model check", err);
#endif
    return 0;
}
