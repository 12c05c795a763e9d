// include/rlc/repro.h: `rlc repro CONFIG`: reproduce a paper's method comparison from a repro config.
//
// A repro config (JSON) names a base training config (a file or an inline object), common overrides, a grid of
// rows (a label plus overrides of method and hyper-parameters, optionally the paper's published numbers), the
// seeds, the metrics to report (aggregations of metrics.jsonl keys) and the learning curves to plot, plus the
// claims of the paper to check (row A beats row B on a metric). `rlc repro` runs every cell (row, seed) as a
// normal training run under <out>/<name>/runs/<row>-s<seed>/, skips cells already finished and resumes
// interrupted ones from their checkpoints, shares the SFT warm start between the rows of one seed when it is the
// same (it only depends on seed, model, task and sft settings), spreads the cells over the ranks of an mpirun
// job, and writes <out>/<name>/table.md, table.csv and one SVG plot per curve. Format: README, "Reproducing
// paper tables"; the configs are in configs/paper/.
#pragma once
#include <stddef.h>

#include "rlc/comm.h"
#include "rlc/config.h"

#define RLC_REPRO_MAX_ROWS 32
#define RLC_REPRO_MAX_SEEDS 32
#define RLC_REPRO_MAX_METRICS 16
#define RLC_REPRO_MAX_CURVES 8
#define RLC_REPRO_MAX_CLAIMS 16
#define RLC_REPRO_MAX_SET 64

// How a metric column reduces one cell's series of a metrics.jsonl key (RL-phase records, by step).
typedef enum {
    RLC_AGG_FINAL,    // value at the last step that has the key
    RLC_AGG_BEST,     // maximum
    RLC_AGG_MIN,      // minimum
    RLC_AGG_MEAN,     // mean over all records
    RLC_AGG_TAIL,     // mean over the last `tail` fraction of the records (at least one)
    RLC_AGG_STEPS_TO, // first step whose value is >= threshold (NaN: never reached)
} rlc_repro_agg;

typedef struct rlc_repro_metric {
    char name[80];    // "agg:key" as written in the config
    char label[80];   // column title (default: name)
    char key[48];     // metrics.jsonl key
    rlc_repro_agg agg;
    int better;       // +1 higher is better, -1 lower is better, 0 no best entry marked
    double threshold; // RLC_AGG_STEPS_TO
    double tail;      // RLC_AGG_TAIL: fraction in (0, 1]
    int decimals;     // -1: automatic (by magnitude)
} rlc_repro_metric;

typedef struct rlc_repro_curve {
    char key[48];   // metrics.jsonl key, plotted against the RL step
    char label[80]; // y axis label
    int smooth;     // trailing moving average over this many records of each seed (1: none)
    double ymin, ymax; // fixed y range (NaN: automatic)
} rlc_repro_curve;

typedef struct rlc_repro_row {
    char label[80];  // row title
    char id[80];     // directory-safe id (runs/<id>-s<seed>)
    char *set[RLC_REPRO_MAX_SET]; // "key=json" overrides of this row
    int n_set;
    double paper[RLC_REPRO_MAX_METRICS]; // the paper's number for each metric column (NaN: none)
} rlc_repro_row;

// "The paper reports row `better` ahead of row `worse` on `metric`" (in the metric's direction).
typedef struct rlc_repro_claim {
    int metric, better, worse; // indices into metrics / rows
    int direction;             // +1: "better" has the higher value, -1 the lower (default: the metric's, else +1)
    int matches;               // "kind": "matches": the paper reports `better` as good as `worse` (agrees unless
                               // ours is worse by 2 Welch standard errors or more); default "beats"
    char text[400];            // what the paper reports, in words
} rlc_repro_claim;

typedef struct rlc_repro_config {
    char source[512];       // the repro config file
    char name[128];         // results/<name>/ (quick: <name>-quick)
    char comment[4096], paper[512], table[512], scaled_down[2048], paper_note[1024];
    char *base_json;        // the base training config (JSON text; NULL: the embedded default)
    char base_label[600];   // where it came from
    char *set[RLC_REPRO_MAX_SET]; // common overrides (after the base)
    int n_set;
    int quick;              // 1: the "quick" section was applied
    char *quick_set[RLC_REPRO_MAX_SET]; // quick overrides (after the rows')
    int n_quick_set;
    int seeds[RLC_REPRO_MAX_SEEDS];
    int n_seeds;
    int share_sft;          // 1 (default): one SFT warm start per seed, shared by the rows that agree on it
    rlc_repro_metric metrics[RLC_REPRO_MAX_METRICS];
    int n_metrics;
    rlc_repro_curve curves[RLC_REPRO_MAX_CURVES];
    int n_curves;
    rlc_repro_row rows[RLC_REPRO_MAX_ROWS];
    int n_rows;
    rlc_repro_claim claims[RLC_REPRO_MAX_CLAIMS];
    int n_claims;
} rlc_repro_config;

// Parse a repro config from JSON text. base_dir: where a relative "base" path is looked for after the current
// directory (the config's directory and its parents). quick: apply the "quick" section. Every key is checked;
// errors name the source and the key. Returns 0, or -1 with a message.
int rlc_repro_config_parse(rlc_repro_config *rc, const char *json, const char *source, const char *base_dir,
                           int quick, char *err, size_t errlen);
int rlc_repro_config_load(rlc_repro_config *rc, const char *path, int quick, char *err, size_t errlen);
void rlc_repro_config_free(rlc_repro_config *rc);
// The results directory of a config: <out_root>/<name> (quick: <name>-quick).
void rlc_repro_result_dir(const rlc_repro_config *rc, const char *out_root, char *out, size_t cap);
// The validated training config of cell (row, seed index): base, common set, row set, quick set, extra (the
// command line's --set), then seed, name <id>-s<seed> and out_dir <res_dir>/runs.
int rlc_repro_cell_config(const rlc_repro_config *rc, int row, int seed_idx, const char *res_dir,
                          const char *const *extra, int n_extra, rlc_config *cfg, char *err, size_t errlen);

// ---- reading runs and the table math (exposed for the tests) ----

// Mean and sample standard deviation (n-1; 0 for one value) of the finite values among x (n); n_ok = how many.
typedef struct rlc_repro_stat {
    double mean, std;
    int n_ok;
} rlc_repro_stat;
rlc_repro_stat rlc_repro_stats(const double *x, int n);

// One key of a run's metrics.jsonl over the RL phase ("rl" and "rl_eval" records): sorted by step; when a step
// appears more than once (records written again after a resume) the last record wins.
typedef struct rlc_repro_series {
    int n;
    double *step, *val; // (n)
} rlc_repro_series;
int rlc_repro_read_series(const char *metrics_path, const char *key, rlc_repro_series *s);
void rlc_repro_series_free(rlc_repro_series *s);
// The metric's value for one cell's series (NaN when it has none, or steps_to never reached).
double rlc_repro_metric_value(const rlc_repro_metric *m, const rlc_repro_series *s);

// Provenance printed under the table (any field may be NULL).
typedef struct rlc_repro_meta {
    const char *command, *commit, *machine, *date;
    int ranks;
    double wall_s;    // this invocation
    double compute_s; // sum of the cells' (and SFT runs') step and eval times
    int cells_done, cells_total;
} rlc_repro_meta;

// vals: (n_rows, n_metrics, n_seeds) cell values, NaN = missing. The best row of metric column m by mean (its
// direction), or -1 (no direction, or no values).
int rlc_repro_best_row(const rlc_repro_config *rc, const double *vals, int m);
// The best row of the paper's numbers of column m, or -1.
int rlc_repro_best_paper_row(const rlc_repro_config *rc, int m);
// table.md and table.csv (malloc'd). svg_files: the plot file names (n_curves), for links from table.md.
char *rlc_repro_table_md(const rlc_repro_config *rc, const double *vals, const rlc_repro_meta *meta,
                         const char *const *svg_files);
char *rlc_repro_table_csv(const rlc_repro_config *rc, const double *vals);
// Text of one table cell: "0.512 ± 0.031", "0.512" (one seed), "120 ± 10 (2/3 reached)", "not reached", "n/a".
void rlc_repro_format_cell(const rlc_repro_metric *m, const double *x, int n, char *out, size_t cap);
// Verdict of claim c: 1 agrees with the paper's direction, -1 disagrees, 0 undetermined; text (may be NULL)
// receives a one-line explanation.
int rlc_repro_claim_verdict(const rlc_repro_config *rc, const double *vals, int c, char *text, size_t cap);

// ---- running ----

typedef struct rlc_repro_opts {
    const char *out_root;  // parent of results/<name> (NULL: "results")
    int quick;             // the config's quick settings (smoke test)
    int fresh;             // delete the results directory first
    int report_only;       // run nothing: tables and plots from the cells finished so far
    int quiet;             // no trainer progress line
    int max_steps;         // > 0: every run stops after this many optimizer steps in this invocation (tests)
    const char *const *overrides; // --set for every cell (after the config's own)
    int n_over;
    const char *command;   // the command line, for table.md
    const rlc_dist *dist;  // ranks of an mpirun job (NULL: one process): cells go round-robin over the ranks,
                           // each run on one rank; rank 0 writes the tables
} rlc_repro_opts;

typedef struct rlc_repro_counts {
    int cells;       // in the grid
    int skipped;     // finished before this invocation
    int resumed;     // continued from a checkpoint
    int ran;         // trained (fresh or resumed) by this process and finished
    int failed;      // failed (any rank, as seen by rank 0)
    int sft_ran;     // shared SFT warm starts trained by this process
} rlc_repro_counts;

// Run (or report) a repro config. Returns 0 when every cell finished and the outputs were written.
int rlc_repro_run(const char *config_path, const rlc_repro_opts *o, rlc_repro_counts *counts);
// `rlc repro ...` (argv[1] == "repro"): parses the options, joins an MPI job when launched by one, runs.
int rlc_repro_main(int argc, char **argv);
