// tests/test_metrics.c: host/metrics.c. The JSON-lines record (keys in insertion order, a repeated key updated in
// place, non-finite values as null) and the console progress in its two forms: redrawn in place on a terminal,
// whole lines at the first step, every 5% and the last when stderr is a file (a batch job's log), and the
// RLC_PROGRESS override. stderr is captured into a tmpfile() around each progress run.
#define _POSIX_C_SOURCE 200809L // dup, dup2, fileno, setenv
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rlc/metrics.h"
#include "test_util.h"

// Runs progress for steps 1..total with mode `lines` and returns what it wrote to stderr (malloc'd).
static char *capture_progress(int lines, int quiet, int total) {
    FILE *f = tmpfile();
    if (!f) return NULL;
    fflush(stderr);
    int saved = dup(fileno(stderr));
    dup2(fileno(f), fileno(stderr));
    rlc_metrics mt;
    rlc_metrics_open(&mt, NULL);
    mt.lines = lines;
    mt.quiet = quiet;
    static const char *keys[] = {"score_mean", "absent"};
    for (int s = 1; s <= total; s++) {
        rlc_metrics_begin(&mt);
        rlc_metrics_add(&mt, "score_mean", 0.5 + s);
        rlc_metrics_progress(&mt, "rl", s, total, keys, 2);
    }
    fflush(stderr);
    dup2(saved, fileno(stderr));
    close(saved);
    rewind(f);
    char *buf = calloc(1 << 16, 1);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static int count_char(const char *s, char c) {
    int n = 0;
    for (; *s; s++) n += *s == c;
    return n;
}

int main(void) {
    // ---- the JSON-lines record (into a temporary file: the struct's f)
    rlc_metrics mt;
    CHECK(rlc_metrics_open(&mt, NULL) == 0, "open without a file");
    mt.f = tmpfile();
    CHECK(mt.f != NULL, "tmpfile");
    rlc_metrics_begin(&mt);
    rlc_metrics_add(&mt, "step", 3);
    rlc_metrics_add(&mt, "loss", 0.25);
    rlc_metrics_add(&mt, "kl", NAN);
    rlc_metrics_add(&mt, "step", 4); // updated in place, keeps its position
    CHECK(rlc_metrics_get(&mt, "loss", -1) == 0.25 && rlc_metrics_get(&mt, "nope", -7) == -7, "get");
    rlc_metrics_write(&mt, "rl");
    char line[256] = {0};
    if (mt.f) {
        rewind(mt.f);
        CHECK(fgets(line, sizeof line, mt.f) != NULL, "read the record back");
    }
    rlc_metrics_close(&mt);
    CHECK(strcmp(line, "{\"phase\":\"rl\",\"step\":4,\"loss\":0.25,\"kl\":null}\n") == 0, "record: %s", line);

    // ---- progress written to a file: whole lines at steps 1, 5, 10, ..., 100
    char *out = capture_progress(1, 0, 100);
    CHECK(out != NULL, "capture");
    if (out) {
        CHECK(count_char(out, '\r') == 0, "no carriage returns in a log");
        CHECK(count_char(out, '\n') == 21, "21 lines (step 1, every 5 steps, the last), got %d:\n%s",
              count_char(out, '\n'), out);
        CHECK(strncmp(out, "[rl] step 1/100  score_mean 1.5  ETA", 36) == 0, "first line: %.60s", out);
        CHECK(strstr(out, "\n[rl] step 5/100  score_mean 5.5  ETA") != NULL, "step 5's line");
        CHECK(strstr(out, "\n[rl] step 100/100  score_mean 100.5  ETA") != NULL, "the last step's line");
        CHECK(strstr(out, "absent") == NULL, "a key missing from the record is left out");
        free(out);
    }
    // few steps: every step gets its line
    out = capture_progress(1, 0, 7);
    CHECK(out && count_char(out, '\n') == 7, "7 steps, 7 lines");
    free(out);
    // ---- on a terminal: one line redrawn every step, ended at the last step
    out = capture_progress(0, 0, 10);
    CHECK(out && count_char(out, '\r') == 10 && count_char(out, '\n') == 1 && out[strlen(out) - 1] == '\n',
          "terminal form: 10 redraws and one newline");
    free(out);
    // ---- quiet: nothing
    out = capture_progress(1, 1, 10);
    CHECK(out && out[0] == 0, "quiet writes nothing");
    free(out);

    // ---- the environment override
    setenv("RLC_PROGRESS", "lines", 1);
    rlc_metrics_open(&mt, NULL);
    CHECK(mt.lines == 1, "RLC_PROGRESS=lines");
    setenv("RLC_PROGRESS", "tty", 1);
    rlc_metrics_open(&mt, NULL);
    CHECK(mt.lines == 0, "RLC_PROGRESS=tty");
    unsetenv("RLC_PROGRESS");
    return test_finish("test_metrics");
}
