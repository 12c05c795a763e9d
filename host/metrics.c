// host/metrics.c: JSON-lines metrics and console progress (see include/rlc/metrics.h).
#define _POSIX_C_SOURCE 200809L // isatty, fileno
#include "rlc/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rlc/util.h"

int rlc_metrics_open(rlc_metrics *mt, const char *path) {
    memset(mt, 0, sizeof *mt);
    mt->t_start = rlc_now();
    const char *pm = getenv("RLC_PROGRESS");
    mt->lines = pm && strcmp(pm, "lines") == 0 ? 1 : pm && strcmp(pm, "tty") == 0 ? 0 : !isatty(fileno(stderr));
    if (!path) return 0;
    mt->f = fopen(path, "a");
    return mt->f ? 0 : -1;
}

void rlc_metrics_close(rlc_metrics *mt) {
    if (mt->f) fclose(mt->f);
    mt->f = NULL;
}

void rlc_metrics_begin(rlc_metrics *mt) { mt->n = 0; }

void rlc_metrics_add(rlc_metrics *mt, const char *key, double val) {
    for (int i = 0; i < mt->n; i++)
        if (strcmp(mt->keys[i], key) == 0) {
            mt->vals[i] = val;
            return;
        }
    RLC_CHECK(mt->n < RLC_METRICS_MAX, "metrics: more than %d keys in one record", RLC_METRICS_MAX);
    snprintf(mt->keys[mt->n], sizeof mt->keys[0], "%s", key);
    mt->vals[mt->n++] = val;
}

double rlc_metrics_get(const rlc_metrics *mt, const char *key, double dflt) {
    for (int i = 0; i < mt->n; i++)
        if (strcmp(mt->keys[i], key) == 0) return mt->vals[i];
    return dflt;
}

void rlc_metrics_write(rlc_metrics *mt, const char *phase) {
    if (!mt->f) return;
    fprintf(mt->f, "{\"phase\":\"%s\"", phase);
    for (int i = 0; i < mt->n; i++) {
        double v = mt->vals[i];
        if (isfinite(v)) fprintf(mt->f, ",\"%s\":%.9g", mt->keys[i], v);
        else fprintf(mt->f, ",\"%s\":null", mt->keys[i]); // JSON has no NaN
    }
    fprintf(mt->f, "}\n");
    fflush(mt->f);
}

void rlc_metrics_progress(rlc_metrics *mt, const char *phase, int step, int total, const char *const *keys, int nk) {
    if (mt->quiet) return;
    int every = total / 20 > 1 ? total / 20 : 1;
    if (mt->lines && step != 1 && step < total && step % every != 0) return;
    double el = rlc_now() - mt->t_start;
    double eta = step > 0 ? el / step * (total - step) : 0;
    fprintf(stderr, "%s[%s] step %d/%d", mt->lines ? "" : "\r", phase, step, total);
    for (int i = 0; i < nk; i++) {
        double v = rlc_metrics_get(mt, keys[i], NAN);
        if (!isnan(v)) fprintf(stderr, "  %s %.4g", keys[i], v);
    }
    fprintf(stderr, "  ETA %.0fs%s", eta, mt->lines ? "\n" : "   ");
    if (!mt->lines && step >= total) fprintf(stderr, "\n");
    fflush(stderr);
}
