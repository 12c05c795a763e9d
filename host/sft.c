// host/sft.c: supervised fine-tuning step (see include/rlc/sft.h).
#include "rlc/sft.h"

#include <stdlib.h>

#include "rlc/batch.h"
#include "rlc/rng.h"
#include "rlc/rollout.h"
#include "rlc/util.h"

// Whether demonstration `idx` comes from the imperfect teacher: a Philox draw of its own stream, so the choice
// depends only on (seed, idx), never on batch size or rank count.
static int sft_flawed(const rlc_config *cfg, uint64_t idx) {
    rlc_rng_stream rs = rlc_rng_stream_init(cfg->seed ^ 0x7465616368657273ULL, idx); // "teachers"
    return rlc_rng_next_double(&rs) < (double)cfg->sft.teacher_error;
}

int rlc_sft_build(const rlc_config *cfg, const rlc_task *task, int max_seq_len, uint64_t first,
                  rlc_sequence **seqs_out) {
    int n = cfg->sft.batch_size, n_tok = 0;
    rlc_sequence *seqs = rlc_calloc((size_t)n, sizeof(rlc_sequence));
    rlc_problem prob;
    for (int i = 0; i < n; i++) {
        uint64_t idx = first + (uint64_t)i;
        task->generate(&cfg->task, cfg->seed, idx, &prob);
        int ok;
        if (cfg->sft.teacher_error > 0 && task->flawed_solve && sft_flawed(cfg, idx)) {
            char ans[RLC_TEXT_MAX];
            task->flawed_solve(&cfg->task, &prob, ans, sizeof ans);
            ok = rlc_sequence_from_text(prob.prompt, ans, max_seq_len, &seqs[i]) == 0;
        } else {
            ok = rlc_sequence_from_expert(task, &cfg->task, &prob, max_seq_len, &seqs[i]) == 0;
        }
        RLC_CHECK(ok, "sft: demonstration of problem %llu does not fit model.max_seq_len %d", (unsigned long long)idx,
                  max_seq_len);
        for (int t = 1; t < seqs[i].len; t++) n_tok += seqs[i].mask[t];
    }
    *seqs_out = seqs;
    return n_tok;
}

double rlc_sft_accumulate(rlc_model *m, const rlc_sequence *seqs, const int *idx, int n, int n_tok, int budget) {
    int *starts = rlc_malloc((size_t)(n + 1) * sizeof(int));
    int nmb = rlc_micro_batches(seqs, idx, n, budget, starts);
    double loss = 0;
    for (int b = 0; b < nmb; b++) {
        rlc_packed pk;
        int cnt = starts[b + 1] - starts[b];
        int *sub = rlc_malloc((size_t)cnt * sizeof(int));
        for (int i = 0; i < cnt; i++) sub[i] = idx ? idx[starts[b] + i] : starts[b] + i;
        rlc_pack(seqs, sub, cnt, &pk);
        rlc_f *logp = rlc_malloc((size_t)pk.T * sizeof(rlc_f)), *dlogp = rlc_malloc((size_t)pk.T * sizeof(rlc_f));
        rlc_model_forward(m, pk.tokens, pk.cu_seqlens, pk.B, pk.T);
        rlc_model_logprobs(m, pk.targets, 1.0f, logp, NULL);
        // token-mean over the WHOLE step: each micro-batch divides by the global count
        for (int t = 0; t < pk.T; t++) {
            int on = pk.targets[t] >= 0;
            loss += on ? -(double)logp[t] / n_tok : 0.0;
            dlogp[t] = on ? (rlc_f)(-1.0 / n_tok) : 0;
        }
        if (b == nmb - 1) rlc_model_arm_grad_ready(m); // the step's gradients are final after this one
        rlc_model_backward(m, dlogp, NULL, NULL);
        free(logp);
        free(dlogp);
        free(sub);
        rlc_packed_free(&pk);
    }
    free(starts);
    return loss;
}

void rlc_sft_step(rlc_model *m, rlc_adamw *opt, const rlc_config *cfg, const rlc_task *task, uint64_t first,
                  float lr, rlc_sft_stats *st) {
    rlc_sequence *seqs;
    int n = cfg->sft.batch_size;
    int n_tok = rlc_sft_build(cfg, task, m->cfg.max_seq_len, first, &seqs);
    rlc_model_zero_grad(m);
    st->loss = rlc_sft_accumulate(m, seqs, NULL, n, n_tok, cfg->sft.micro_batch_tokens);
    st->grad_norm = rlc_adamw_step(opt, m, &cfg->sft.optim, lr);
    st->tokens = n_tok;
    st->seqs = n;
    for (int i = 0; i < n; i++) rlc_sequence_free(&seqs[i]);
    free(seqs);
}
