// host/optim.c: AdamW with decoupled weight decay, global-norm clipping and LR schedules (see optim.h).
#include "rlc/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rlc/util.h"

void rlc_adamw_init(rlc_adamw *opt, const rlc_model *model) {
    opt->n = model->n_params;
    opt->m = model->ops->alloc(opt->n * sizeof(rlc_f));
    opt->v = model->ops->alloc(opt->n * sizeof(rlc_f));
    opt->t = 0;
}

void rlc_adamw_free(rlc_adamw *opt, const rlc_model *model) {
    if (opt->m) model->ops->free(opt->m);
    if (opt->v) model->ops->free(opt->v);
    memset(opt, 0, sizeof *opt);
}

float rlc_lr_at(const rlc_optim_config *cfg, int step, int total) {
    if (cfg->warmup_steps > 0 && step < cfg->warmup_steps)
        return cfg->lr * (float)(step + 1) / (float)cfg->warmup_steps;
    if (strcmp(cfg->schedule, "constant") == 0) return cfg->lr;
    int decay = total - cfg->warmup_steps;
    if (decay <= 1) return cfg->lr;
    float frac = (float)(step - cfg->warmup_steps) / (float)(decay - 1);
    if (frac > 1) frac = 1;
    if (strcmp(cfg->schedule, "linear") == 0) return cfg->lr + (cfg->min_lr - cfg->lr) * frac;
    // cosine
    return cfg->min_lr + 0.5f * (cfg->lr - cfg->min_lr) * (1.0f + cosf(3.14159265358979f * frac));
}

double rlc_grad_norm(const rlc_model *model) {
    return sqrt(model->ops->sumsq(model->grads, model->n_params));
}

double rlc_adamw_step(rlc_adamw *opt, rlc_model *model, const rlc_optim_config *cfg, float lr) {
    double norm = rlc_grad_norm(model);
    float scale = 1.0f;
    if (cfg->grad_clip > 0 && norm > cfg->grad_clip) scale = (float)(cfg->grad_clip / (norm + 1e-6));
    if (!isfinite(norm)) scale = 0.0f; // a NaN/inf gradient must not poison the weights; caller decides
    opt->t++;
    if (model->ops->adamw_multi) { // one launch for every tensor (it also refreshes bf16 working weights)
        rlc_adamw_tensor *tab = rlc_malloc((size_t)model->n_tensors * sizeof *tab);
        for (int i = 0; i < model->n_tensors; i++) {
            const rlc_tensor_info *ti = &model->tensors[i];
            tab[i] = (rlc_adamw_tensor){ti->offset, ti->numel, ti->no_decay ? 0.0f : cfg->weight_decay};
        }
        model->ops->adamw_multi(model->params, model->grads, opt->m, opt->v, tab, model->n_tensors, lr, cfg->beta1,
                                cfg->beta2, cfg->eps, scale, opt->t);
        free(tab);
        return norm;
    }
    for (int i = 0; i < model->n_tensors; i++) {
        const rlc_tensor_info *ti = &model->tensors[i];
        float wd = ti->no_decay ? 0.0f : cfg->weight_decay;
        model->ops->adamw_update(model->params + ti->offset, model->grads + ti->offset, opt->m + ti->offset,
                                 opt->v + ti->offset, ti->numel, lr, cfg->beta1, cfg->beta2, cfg->eps, wd, scale,
                                 opt->t);
    }
    return norm;
}
