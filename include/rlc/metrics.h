// include/rlc/metrics.h: per-step metrics as JSON lines (runs/<name>/metrics.jsonl) and the one-line console
// progress display (step, key metrics, ETA).
#pragma once
#include <stdio.h>

#define RLC_METRICS_MAX 64

typedef struct rlc_metrics {
    FILE *f;               // NULL: console only
    int n;
    char keys[RLC_METRICS_MAX][40];
    double vals[RLC_METRICS_MAX];
    double t_start;        // for the ETA
    int quiet;             // 1: no console progress
    int lines;             // 1: progress as whole lines every 5% of the steps (stderr is a file or a pipe)
} rlc_metrics;

// Open (append) the JSON-lines file; path NULL = no file. Returns -1 with errno on failure.
int rlc_metrics_open(rlc_metrics *mt, const char *path);
void rlc_metrics_close(rlc_metrics *mt);
// Collect one record: begin, add key/values, then write (one JSON object per line, keys in insertion order).
void rlc_metrics_begin(rlc_metrics *mt);
void rlc_metrics_add(rlc_metrics *mt, const char *key, double val);
double rlc_metrics_get(const rlc_metrics *mt, const char *key, double dflt);
void rlc_metrics_write(rlc_metrics *mt, const char *phase);
// Console progress: "[phase] step s/n  k1 v1  k2 v2 ...  ETA"; keys picked from the current record. On a terminal
// one line redrawn in place (\r) every step; when stderr is a file or a pipe (a batch job's log; rlc_metrics_open
// sets `lines` from isatty, RLC_PROGRESS=lines or =tty overrides) a whole line at the first step, every 5% of the
// steps and the last, so that the log stays readable instead of one line of every step.
void rlc_metrics_progress(rlc_metrics *mt, const char *phase, int step, int total, const char *const *keys, int nk);
