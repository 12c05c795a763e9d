// include/rlc/trainer.h: the training driver behind `rlc train` and `rlc sft`: an optional SFT warm start, then
// the RL phase (rollouts, rewards, advantages, K epochs of mini-batch updates), periodic greedy evaluation,
// metrics, checkpoints and bitwise resume on the CPU backend. Data-parallel over the ranks of opts->dist.
#pragma once
#include "rlc/comm.h"
#include "rlc/config.h"
#include "rlc/ops.h"

typedef struct rlc_train_opts {
    const char *resume;  // runs/<name> to resume from (NULL: fresh run)
    int sft_only;        // 1: stop after the SFT phase (`rlc sft`)
    int quiet;           // 1: no console progress line
    int max_steps;       // > 0: stop after this many optimizer steps in this invocation (tests of resume)
    const rlc_dist *dist; // process group of a multi-rank job (NULL: a single process); every rank calls
                          // rlc_train, rank 0 alone writes the run directory (metrics, checkpoints)
    const rlc_ops *ops;   // backend override (NULL: cfg->device through rlc_backend_select, include/rlc/backend.h);
                          // tests inject the emulated CUDA backend here
} rlc_train_opts;

// Runs the job; returns 0 on success, non-zero after printing a clear error.
int rlc_train(const rlc_config *cfg, const rlc_train_opts *opts);
