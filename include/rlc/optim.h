// include/rlc/optim.h: AdamW over the model's flat parameter buffer (per-tensor weight-decay flags), global
// grad-norm clipping, and learning-rate schedules (constant, linear warm-up, cosine / linear decay).
#pragma once
#include "rlc/config.h"
#include "rlc/model.h"

typedef struct rlc_adamw {
    rlc_f *m, *v; // (n_params) first and second moments, backend memory
    size_t n;
    int t;        // optimizer steps taken
} rlc_adamw;

void rlc_adamw_init(rlc_adamw *opt, const rlc_model *model);
void rlc_adamw_free(rlc_adamw *opt, const rlc_model *model);
// Learning rate at `step` (0-based) of `total` steps.
float rlc_lr_at(const rlc_optim_config *cfg, int step, int total);
// Global L2 norm of the model's gradients.
double rlc_grad_norm(const rlc_model *model);
// One AdamW step on the accumulated gradients: clips to cfg->grad_clip (0 = off) by the global norm, applies
// weight decay except on no_decay tensors, increments opt->t. Returns the pre-clip gradient norm.
double rlc_adamw_step(rlc_adamw *opt, rlc_model *model, const rlc_optim_config *cfg, float lr);
