// host/rl.c: the RL step (see include/rlc/rl.h): rollouts with DAPO dynamic sampling, scores and overlong
// shaping, old/reference log-prob recomputation with the rollout mismatch always measured, advantages for every
// method, and K epochs of mini-batch updates with micro-batch accumulation. Also DPO/IPO steps. With several
// ranks (rl->dist) each rank generates its block of prompts, every rank receives the whole batch (all-gather),
// trains on its token-balanced share of each mini-batch (host/scheduler.c), and every global quantity (counts,
// moments, EMPG statistics, loss statistics, gradients) is all-reduced; with one rank nothing changes. rlc_rl_init
// checks the job's memory (model, optimizer, reference policy, one rollout group) before allocating any of it.
#include "rlc/rl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rlc/advantage.h"
#include "rlc/batch.h"
#include "rlc/checkpoint.h"
#include "rlc/rollout.h"
#include "rlc/scheduler.h"
#include "rlc/util.h"

static int method_is(const rlc_rl *rl, const char *m) { return strcmp(rl->cfg.rl.method, m) == 0; }
static int is_pref(const rlc_rl *rl) { return method_is(rl, "dpo") || method_is(rl, "ipo"); }
// RL problems come from a stream disjoint from the SFT phase's.
static uint64_t rl_seed(const rlc_rl *rl) { return rl->cfg.seed + 0x5EED0001ull; }

// The process group (a group of one when none was set).
static const rlc_dist *rl_dist(const rlc_rl *rl) {
    static const rlc_dist one = {.size = 1, .local_size = 1};
    return rl->dist ? rl->dist : &one;
}

// Sum the gradients over ranks, then AdamW (ZeRO-1 when configured).
static double rl_opt_step(rlc_rl *rl, const rlc_optim_config *oc, float lr) {
    return rlc_sched_adamw_step(rl_dist(rl), rl->cfg.rl.zero1, &rl->opt, &rl->model, oc, lr);
}

// The sequences of a plan, in plan order (shallow copies: the arrays stay owned by seqs).
static rlc_sequence *plan_view(const rlc_sequence *seqs, const rlc_sched_plan *p) {
    rlc_sequence *v = rlc_malloc((size_t)(p->n > 0 ? p->n : 1) * sizeof(rlc_sequence));
    for (int i = 0; i < p->n; i++) v[i] = seqs[p->idx[i]];
    return v;
}

// Response tokens of n sequences (the packed input length: len - 1 each).
static double seq_tokens(const rlc_sequence *seqs, int n) {
    double T = 0;
    for (int i = 0; i < n; i++) T += seqs[i].len - 1;
    return T;
}

// Whitening over the response tokens of every rank's batch: moments all-reduced between the two phases.
static void whiten_dist(const rlc_dist *d, rlc_f *x, const rlc_loss_batch *b) {
    rlc_moments m = {0};
    rlc_moments_add(&m, x, b);
    rlc_dist_allreduce_d(d, &m.n, 3, RLC_RED_SUM);
    rlc_whiten_apply(x, b, &m);
}

int rlc_rl_needs_ref(const rlc_rl *rl) { return rl->cfg.rl.kl_beta > 0 || is_pref(rl); }

int rlc_rl_init(rlc_rl *rl, const rlc_config *cfg, const rlc_ops *ops, const rlc_task *task, int max_tokens) {
    memset(rl, 0, sizeof *rl);
    rl->cfg = *cfg;
    rl->ops = ops;
    rl->task = task;
    rlc_model_config mc = cfg->model;
    if (method_is(rl, "ppo")) mc.value_head = 1;
    rl->cfg.model = mc;
    char err[512];
    if (rlc_loss_config_from_rl(&rl->loss, &cfg->rl, err, sizeof err) != 0) {
        fprintf(stderr, "rlc: %s: %s\n", cfg->source, err);
        return -1;
    }
    // Everything the job holds for its whole length, checked against the backend's free memory before any of
    // it is allocated: the model (parameters, gradients, activations), the AdamW moments and the reference policy.
    size_t pb, gb, ab, one = rlc_model_bytes(&mc, max_tokens, ops->act_bytes, &pb, &gb, &ab);
    // a backend with bf16 working weights (register_params) holds a bf16 copy of each model's parameters too
    const size_t wb = ops->register_params ? pb / sizeof(rlc_f) * 2 : 0;
    size_t need = one + wb + 2 * pb + (rlc_rl_needs_ref(rl) ? one + wb : 0);
    rlc_mem_info mi;
    ops->mem_info(&mi);
    if (need > mi.free) {
        fprintf(stderr,
                "rlc: model and optimizer: cannot allocate %zu bytes (%zu available): parameters %zu, bf16 working "
                "weights %zu, gradients %zu, activations for %d tokens %zu, AdamW moments %zu%s\n",
                need, mi.free, pb, wb, gb, max_tokens, ab, 2 * pb,
                rlc_rl_needs_ref(rl) ? ", reference policy (the same again)" : "");
        return -1;
    }
    if (rlc_model_init(&rl->model, &mc, ops, max_tokens) != 0) return -1;
    rlc_adamw_init(&rl->opt, &rl->model);
    rl->kl_beta = cfg->rl.kl_beta;
    if (rlc_rl_needs_ref(rl)) {
        if (rlc_model_init(&rl->ref, &mc, ops, max_tokens) != 0) {
            rlc_rl_free(rl);
            return -1;
        }
        rl->has_ref = 1;
    }
    // and the rollouts' least need, one group (generation takes as many groups per wave as then fit)
    int G = is_pref(rl) || cfg->rollout.group_size < 1 ? 1 : cfg->rollout.group_size;
    if (rlc_rollout_group_fits(&rl->model, G, err, sizeof err) != 0) {
        fprintf(stderr, "rlc: %s\n", err);
        rlc_rl_free(rl);
        return -1;
    }
    return 0;
}

void rlc_rl_set_dist(rlc_rl *rl, const rlc_dist *d) {
    rl->dist = d;
    // device collectives: the policy's backward reports final gradients (bucketed reduction during the backward)
    rl->model.grad_ready = d && d->dev ? d->dev->grads_ready : NULL;
    rl->model.grad_ready_ctx = d && d->dev ? d->dev->ctx : NULL;
    rlc_sched_adamw_init(rl_dist(rl), rl->cfg.rl.zero1, &rl->opt, &rl->model);
}

void rlc_rl_free(rlc_rl *rl) {
    rlc_adamw_free(&rl->opt, &rl->model);
    rlc_model_free(&rl->model);
    if (rl->has_ref) rlc_model_free(&rl->ref);
    memset(rl, 0, sizeof *rl);
}

void rlc_rl_begin(rlc_rl *rl) {
    rl->phase = 1;
    rl->step = 0;
    rl->data_pos = 0;
    rl->kl_beta = rl->cfg.rl.kl_beta;
    rlc_sched_adamw_init(rl_dist(rl), rl->cfg.rl.zero1, &rl->opt, &rl->model);
    if (rl->has_ref) rl->ops->copy(rl->ref.params, rl->model.params, rl->model.n_params * sizeof(rlc_f));
}

int rlc_rl_save_ref(rlc_rl *rl, const char *run_dir, char *err, size_t errlen) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/ref", run_dir);
    return rlc_checkpoint_save(&rl->ref, NULL, dir, NULL, NULL, NULL, err, errlen);
}

int rlc_rl_load_ref(rlc_rl *rl, const char *run_dir, char *err, size_t errlen) {
    char dir[600], res[700];
    snprintf(dir, sizeof dir, "%s/ref", run_dir);
    rlc_checkpoint_resolve(dir, res, sizeof res);
    return rlc_checkpoint_load_model(&rl->ref, res, err, errlen);
}

// ---- shared helpers ----

// Per-token arrays of the step's whole packed batch (index = packed target position).
typedef struct step_buf {
    rlc_packed full;
    uint8_t *mask;                   // (T)
    rlc_f *old, *ent, *ref, *roll;   // (T)
    rlc_f *val, *adv, *ret, *rew;    // (T)
    rlc_f *logp, *cur_ent, *dlogp, *dent, *dval, *cur_val; // (T) scratch for the update pass
} step_buf;

static void step_buf_init(step_buf *sb, const rlc_sequence *seqs, int N) {
    memset(sb, 0, sizeof *sb);
    rlc_pack(seqs, NULL, N, &sb->full);
    size_t T = (size_t)sb->full.T > 0 ? (size_t)sb->full.T : 1;
    sb->mask = rlc_calloc(T, 1);
    rlc_f **arrs[] = {&sb->old, &sb->ent, &sb->ref, &sb->roll, &sb->val, &sb->adv, &sb->ret, &sb->rew,
                      &sb->logp, &sb->cur_ent, &sb->dlogp, &sb->dent, &sb->dval, &sb->cur_val};
    for (size_t i = 0; i < sizeof arrs / sizeof arrs[0]; i++) *arrs[i] = rlc_calloc(T, sizeof(rlc_f));
    for (int i = 0; i < N; i++)
        for (int j = 0; j + 1 < seqs[i].len; j++) {
            int t = sb->full.cu_seqlens[i] + j;
            sb->mask[t] = seqs[i].mask[j + 1];
            sb->roll[t] = seqs[i].roll_logp[j + 1];
        }
}

static void step_buf_free(step_buf *sb) {
    rlc_packed_free(&sb->full);
    void *arrs[] = {sb->mask, sb->old, sb->ent, sb->ref, sb->roll, sb->val, sb->adv, sb->ret, sb->rew,
                    sb->logp, sb->cur_ent, sb->dlogp, sb->dent, sb->dval, sb->cur_val};
    for (size_t i = 0; i < sizeof arrs / sizeof arrs[0]; i++) free(arrs[i]);
}

// The loss-batch view of sequences [s0, s1) of the full packing (local cu_seqlens in cu (s1-s0+1)).
static rlc_loss_batch sub_batch(const step_buf *sb, int s0, int s1, int *cu) {
    int off = sb->full.cu_seqlens[s0];
    for (int i = s0; i <= s1; i++) cu[i - s0] = sb->full.cu_seqlens[i] - off;
    rlc_loss_batch b = {.T = sb->full.cu_seqlens[s1] - off, .B = s1 - s0, .cu_seqlens = cu, .mask = sb->mask + off};
    return b;
}

// Forward sequences [s0, s1) (a contiguous range of the full packing) through model m.
static void forward_range(rlc_model *m, const step_buf *sb, int s0, int s1, int *cu, float tau, rlc_f *logp,
                          rlc_f *ent, rlc_f *val) {
    int off = sb->full.cu_seqlens[s0];
    rlc_loss_batch b = sub_batch(sb, s0, s1, cu);
    rlc_model_forward(m, sb->full.tokens + off, cu, b.B, b.T);
    rlc_model_logprobs(m, sb->full.targets + off, tau, logp ? logp + off : NULL, ent ? ent + off : NULL);
    if (val && m->cfg.value_head) m->ops->download(val + off, m->values, (size_t)b.T * sizeof(rlc_f));
}

// Micro-batch boundaries over sequences [s0, s1) in units of `unit` sequences (2 keeps DPO pairs together).
static int micro_starts(const rlc_sequence *seqs, int s0, int s1, int budget, int unit, int *starts) {
    int nb = 0, used = 0;
    starts[0] = s0;
    for (int i = s0; i < s1; i += unit) {
        int len = 0;
        for (int u = 0; u < unit && i + u < s1; u++) len += seqs[i + u].len - 1;
        if (used > 0 && used + len > budget) {
            starts[++nb] = i;
            used = 0;
        }
        used += len;
    }
    if (s1 > s0) starts[++nb] = s1;
    return nb;
}

static void add_loss_metrics(rlc_metrics *mt, const rlc_loss_stats *st) {
    double tok = st->tok > 0 ? st->tok : 1;
    rlc_metrics_add(mt, "loss", st->loss);
    rlc_metrics_add(mt, "pg_loss", st->pg_loss);
    rlc_metrics_add(mt, "clip_frac", st->clip_sum / tok);
    rlc_metrics_add(mt, "clip_frac_lower", st->clip_low_sum / tok);
    rlc_metrics_add(mt, "ratio_mean", st->ratio_sum / tok);
    rlc_metrics_add(mt, "ratio_max", st->ratio_max);
}

// ---- DPO / IPO ----

static int pref_step(rlc_rl *rl, rlc_metrics *mt) {
    const rlc_config *c = &rl->cfg;
    const rlc_dist *d = rl_dist(rl);
    int P = c->rollout.prompts_per_step, N = 2 * P;
    double t0 = rlc_now();
    rlc_sequence *seqs = rlc_calloc((size_t)N, sizeof(rlc_sequence));
    rlc_problem prob;
    for (int i = 0; i < P; i++) {
        char chosen[RLC_TEXT_MAX], rejected[RLC_TEXT_MAX];
        uint64_t idx = rl->data_pos + (uint64_t)i;
        rl->task->generate(&c->task, rl_seed(rl), idx, &prob);
        rl->task->solve(&c->task, &prob, chosen, sizeof chosen);
        rl->task->perturb(&c->task, &prob, rl_seed(rl) ^ idx, rejected, sizeof rejected);
        RLC_CHECK(rlc_sequence_from_text(prob.prompt, chosen, c->model.max_seq_len, &seqs[2 * i]) == 0 &&
                      rlc_sequence_from_text(prob.prompt, rejected, c->model.max_seq_len, &seqs[2 * i + 1]) == 0,
                  "dpo: pair %llu does not fit model.max_seq_len %d", (unsigned long long)idx, c->model.max_seq_len);
    }
    rl->data_pos += (uint64_t)P;
    // every rank built all pairs (cheap); each trains on its token-balanced share of whole pairs
    int mb_units[2] = {0, P};
    rlc_sched_plan plan;
    rlc_sched_plan_build(&plan, seqs, 2, mb_units, 1, d->size, d->rank);
    rlc_sequence *ls = plan_view(seqs, &plan);
    int NL = plan.n;
    step_buf sb;
    step_buf_init(&sb, ls, NL);
    int *starts = rlc_malloc((size_t)(NL + 2) * sizeof(int)), *cu = rlc_malloc((size_t)(NL + 1) * sizeof(int));
    int nmb = micro_starts(ls, 0, NL, c->rl.micro_batch_tokens, 2, starts);
    for (int b = 0; b < nmb; b++) forward_range(&rl->ref, &sb, starts[b], starts[b + 1], cu, 1.0f, sb.ref, NULL, NULL);
    rlc_pref_kind kind = method_is(rl, "ipo") ? RLC_PREF_IPO : RLC_PREF_DPO;
    float lr = rlc_lr_at(&c->rl.optim, rl->step, c->rl.steps);
    rlc_loss_stats st = {0};
    rlc_model_zero_grad(&rl->model);
    for (int b = 0; b < nmb; b++) {
        int s0 = starts[b], s1 = starts[b + 1], off = sb.full.cu_seqlens[s0];
        forward_range(&rl->model, &sb, s0, s1, cu, 1.0f, sb.logp, NULL, NULL);
        rlc_loss_batch lb = sub_batch(&sb, s0, s1, cu);
        rlc_pref_loss(kind, c->rl.dpo_beta, sb.logp + off, sb.ref + off, &lb, (double)P, sb.dlogp + off, &st);
        if (b == nmb - 1) rlc_model_arm_grad_ready(&rl->model);
        rlc_model_backward(&rl->model, sb.dlogp + off, NULL, NULL);
    }
    rlc_sched_reduce_loss_stats(d, &st);
    double gn = rl_opt_step(rl, &c->rl.optim, lr);
    rl->step++;
    double pairs = st.pairs > 0 ? st.pairs : 1;
    rlc_metrics_add(mt, "step", rl->step);
    rlc_metrics_add(mt, "loss", st.loss);
    rlc_metrics_add(mt, "pref_margin", st.margin_sum / pairs);
    rlc_metrics_add(mt, "pref_acc", st.pref_acc_sum / pairs);
    rlc_metrics_add(mt, "reward_chosen", st.reward_chosen_sum / pairs);
    rlc_metrics_add(mt, "reward_rejected", st.reward_rejected_sum / pairs);
    rlc_metrics_add(mt, "grad_norm", gn);
    rlc_metrics_add(mt, "lr", lr);
    double dt = rlc_now() - t0;
    rlc_metrics_add(mt, "time_update", dt);
    double T_glob = seq_tokens(seqs, N);
    rlc_metrics_add(mt, "train_tokens", T_glob);
    rlc_metrics_add(mt, "tokens_per_s", T_glob / (dt > 0 ? dt : 1e-9));
    step_buf_free(&sb);
    rlc_sched_plan_free(&plan);
    free(ls);
    for (int i = 0; i < N; i++) rlc_sequence_free(&seqs[i]);
    free(seqs);
    free(starts);
    free(cu);
    if (isfinite(st.loss)) return 0; // st is global: every rank takes the same branch
    if (d->rank == 0) fprintf(stderr, "\nrlc: DPO loss is not finite at step %d\n", rl->step);
    return -1;
}

// ---- rollouts with dynamic sampling ----

// Fills seqs (P*G capacity) with kept groups; returns the number of groups; *dropped counts filtered groups.
// Each round's prompts are split across ranks in contiguous blocks; the kept groups are all-gathered, so every
// rank ends with the same seqs, in prompt order.
static int collect_rollouts(rlc_rl *rl, rlc_sequence *seqs, int *dropped, int *generated, int *waves) {
    const rlc_config *c = &rl->cfg;
    const rlc_dist *d = rl_dist(rl);
    int P = c->rollout.prompts_per_step, G = c->rollout.group_size, kept = 0, tries = 0;
    rlc_problem *probs = rlc_malloc((size_t)P * sizeof(rlc_problem));
    int *ids = rlc_malloc((size_t)P * sizeof(int));
    rlc_sequence *tmp = rlc_calloc((size_t)P * G, sizeof(rlc_sequence));
    float *sc = rlc_malloc((size_t)G * sizeof(float));
    rlc_sampling s = {.temperature = c->rollout.temperature, .top_k = c->rollout.top_k, .top_p = c->rollout.top_p};
    *dropped = 0;
    *generated = 0;
    while (kept < P) {
        int need = P - kept, lo, hi;
        rlc_sched_block(need, d->size, d->rank, &lo, &hi);
        int mine = hi - lo;
        for (int i = 0; i < mine; i++) {
            uint64_t pid = rl->data_pos + (uint64_t)(lo + i);
            rl->task->generate(&c->task, rl_seed(rl), pid, &probs[i]);
            ids[i] = (int)pid;
        }
        if (mine > 0)
            *waves += rlc_rollout_generate(&rl->model, &c->rollout, &s, rl->task, &c->task, probs, ids, mine, G,
                                           c->seed, rl->step, tmp);
        rl->data_pos += (uint64_t)need;
        *generated += need;
        tries++;
        int kl = 0; // kept groups of this rank, compacted to the front of tmp
        for (int g = 0; g < mine; g++) {
            for (int j = 0; j < G; j++) sc[j] = tmp[g * G + j].score;
            int drop = c->rl.dynamic_sampling && rlc_group_all_equal(sc, G);
            if (drop) {
                for (int j = 0; j < G; j++) rlc_sequence_free(&tmp[g * G + j]);
            } else {
                if (kl != g) memcpy(&tmp[kl * G], &tmp[g * G], (size_t)G * sizeof(rlc_sequence));
                kl++;
            }
        }
        int kg = kl;
        if (d->size > 1) {
            int n = rlc_sched_allgather_seqs(d, tmp, kl * G, &seqs[kept * G], (P - kept) * G);
            for (int i = 0; i < kl * G; i++) rlc_sequence_free(&tmp[i]);
            kg = n / G;
        } else {
            memcpy(&seqs[kept * G], tmp, (size_t)kl * G * sizeof(rlc_sequence));
        }
        *dropped += need - kg;
        kept += kg;
        if (!c->rl.dynamic_sampling || tries >= c->rl.dyn_max_tries) break;
    }
    free(probs);
    free(ids);
    free(tmp);
    free(sc);
    return kept;
}

// EMPG on top of per-sequence base advantages: per-step modulation written to the token advantages. Episodes
// are whole on a rank; the batch statistics are all-reduced after each phase.
static void apply_empg(const rlc_rl *rl, const rlc_sequence *seqs, int N, const float *adv_seq, step_buf *sb) {
    const rlc_dist *d = rl_dist(rl);
    int S = 0;
    for (int i = 0; i < N; i++) S += seqs[i].n_turns;
    if (d->size > 1) {
        int64_t s_all = S;
        rlc_dist_allreduce_i64(d, &s_all, 1, RLC_RED_SUM);
        if (s_all == 0) return; // every rank agrees
    } else if (S == 0) {
        return;
    }
    float *H = rlc_malloc((size_t)S * sizeof(float)), *a_traj = rlc_malloc((size_t)S * sizeof(float));
    float *a_fin = rlc_malloc((size_t)S * sizeof(float));
    int *next = rlc_malloc((size_t)S * sizeof(int));
    int k = 0;
    for (int i = 0; i < N; i++)
        for (int u = 0; u < seqs[i].n_turns; u++, k++) {
            H[k] = (float)rlc_empg_step_entropy(seqs[i].roll_ent, seqs[i].mask, seqs[i].turn_start[u],
                                                seqs[i].turn_end[u]);
            a_traj[k] = adv_seq[i];
            next[k] = u + 1 < seqs[i].n_turns ? k + 1 : -1;
        }
    const rlc_rl_config *r = &rl->cfg.rl;
    // = rlc_adv_empg(a_fin, NULL, H, next, a_traj, S, ...) over the union of the ranks' steps
    rlc_empg_stats es;
    rlc_empg_stats_init(&es);
    rlc_empg_phase1(&es, H, S);
    rlc_dist_allreduce_d(d, &es.h_min, 1, RLC_RED_MIN);
    rlc_dist_allreduce_d(d, &es.h_max, 1, RLC_RED_MAX);
    rlc_empg_phase2(&es, H, S, r->empg_k);
    double ng[2] = {es.n, es.g_sum};
    rlc_dist_allreduce_d(d, ng, 2, RLC_RED_SUM);
    es.n = ng[0], es.g_sum = ng[1];
    rlc_empg_phase3(&es, a_fin, NULL, H, next, a_traj, S, r->empg_k, r->empg_k2, r->empg_zeta);
    rlc_dist_allreduce_d(d, &es.amod_sum, 1, RLC_RED_SUM);
    rlc_empg_finish(a_fin, S, &es);
    k = 0;
    for (int i = 0; i < N; i++)
        for (int u = 0; u < seqs[i].n_turns; u++, k++)
            for (int j = seqs[i].turn_start[u]; j < seqs[i].turn_end[u]; j++) {
                int t = sb->full.cu_seqlens[i] + j - 1; // token j is the target of packed position j-1
                if (j >= 1 && sb->mask[t]) sb->adv[t] = a_fin[k];
            }
    free(H);
    free(a_traj);
    free(a_fin);
    free(next);
}

int rlc_rl_step(rlc_rl *rl, rlc_metrics *mt) {
    if (is_pref(rl)) return pref_step(rl, mt);
    const rlc_config *c = &rl->cfg;
    const rlc_rl_config *r = &c->rl;
    const rlc_dist *d = rl_dist(rl);
    int P = c->rollout.prompts_per_step, G = c->rollout.group_size;
    float tau = c->rollout.temperature;
    double t0 = rlc_now();

    rlc_sequence *seqs = rlc_calloc((size_t)P * G, sizeof(rlc_sequence));
    int dropped, generated, waves = 0;
    int n_groups = collect_rollouts(rl, seqs, &dropped, &generated, &waves);
    int N = n_groups * G;
    double t_roll = rlc_now() - t0;
    rlc_metrics_add(mt, "step", rl->step + 1);
    rlc_metrics_add(mt, "groups", n_groups);
    rlc_metrics_add(mt, "groups_dropped", dropped);

    // scores, success, lengths (every rank holds the whole batch: these are global)
    float *scores = rlc_malloc((size_t)(N > 0 ? N : 1) * sizeof(float));
    double ssum = 0, ssq = 0, succ = 0, len = 0, trunc = 0, gen_tok = 0;
    for (int i = 0; i < N; i++) {
        float s = seqs[i].score;
        succ += s >= 1.0f;
        ssum += s;
        ssq += (double)s * s;
        len += seqs[i].n_gen;
        trunc += seqs[i].truncated;
        gen_tok += seqs[i].n_gen;
        if (!rl->task->multi_turn)
            s += rlc_overlong_penalty(seqs[i].n_gen, c->rollout.max_new_tokens, r->overlong_buffer,
                                      r->overlong_factor);
        scores[i] = s;
    }
    double nn = N > 0 ? N : 1;
    rlc_metrics_add(mt, "score_mean", ssum / nn);
    rlc_metrics_add(mt, "score_std", N > 1 ? sqrt(fmax(0, (ssq - ssum * ssum / N) / (N - 1))) : 0);
    rlc_metrics_add(mt, "success_rate", succ / nn);
    rlc_metrics_add(mt, "response_length", len / nn);
    rlc_metrics_add(mt, "truncated_frac", trunc / nn);
    rlc_metrics_add(mt, "time_rollout", t_roll);
    rlc_metrics_add(mt, "rollout_tokens_per_s", gen_tok / (t_roll > 0 ? t_roll : 1e-9));
    rlc_metrics_add(mt, "rollout_tokens", gen_tok);
    rlc_metrics_add(mt, "rollout_waves", waves); // this rank's generation calls' waves (memory-bound: 1 when all fit)
    rlc_metrics_add(mt, "rollout_hash", rlc_sched_rollout_hash(seqs, N));
    float lr = rlc_lr_at(&r->optim, rl->step, r->steps);
    rlc_metrics_add(mt, "lr", lr);
    if (N == 0) { // every group was filtered out: nothing to learn from this step
        rl->step++;
        free(seqs);
        free(scores);
        return 0;
    }

    // this rank's share of every mini-batch (whole groups per mini-batch, as with one rank), balanced by tokens
    int M = r->mini_batches < n_groups ? r->mini_batches : n_groups;
    int *mb_units = rlc_malloc((size_t)(M + 1) * sizeof(int));
    for (int mi = 0; mi <= M; mi++) mb_units[mi] = (mi * n_groups / M) * G;
    rlc_sched_plan plan;
    rlc_sched_plan_build(&plan, seqs, 1, mb_units, M, d->size, d->rank);
    free(mb_units);
    rlc_sequence *ls = plan_view(seqs, &plan); // (NL) this rank's sequences
    int NL = plan.n;
    float *scores_l = rlc_malloc((size_t)(NL > 0 ? NL : 1) * sizeof(float));
    for (int i = 0; i < NL; i++) scores_l[i] = scores[plan.idx[i]];

    // old / reference log-probs (and values) with the training forward, in micro-batches
    double t1 = rlc_now();
    step_buf sb;
    step_buf_init(&sb, ls, NL);
    // DAPO's overlong filtering: a truncated response (no end within max_new_tokens) contributes no loss term and
    // no token to the aggregation counts; its score has already entered the group statistics above
    double filtered = 0;
    if (r->overlong_filter)
        for (int i = 0; i < NL; i++)
            if (ls[i].truncated) {
                memset(sb.mask + sb.full.cu_seqlens[i], 0, (size_t)(sb.full.cu_seqlens[i + 1] - sb.full.cu_seqlens[i]));
                filtered += 1;
            }
    if (d->size > 1) rlc_dist_allreduce_d(d, &filtered, 1, RLC_RED_SUM);
    rlc_metrics_add(mt, "overlong_filtered", filtered / (N > 0 ? N : 1));
    int *starts = rlc_malloc((size_t)(NL + 2) * sizeof(int)), *cu = rlc_malloc((size_t)(NL + 1) * sizeof(int));
    int nmb = micro_starts(ls, 0, NL, r->micro_batch_tokens, 1, starts);
    int need_ref = rl->has_ref && rl->kl_beta > 0;
    for (int b = 0; b < nmb; b++) {
        forward_range(&rl->model, &sb, starts[b], starts[b + 1], cu, tau, sb.old, sb.ent, sb.val);
        if (need_ref) forward_range(&rl->ref, &sb, starts[b], starts[b + 1], cu, tau, sb.ref, NULL, NULL);
    }
    int T = sb.full.T;
    double mm_sum = 0, mm_max = 0, ntok = 0, ent_sum = 0;
    for (int t = 0; t < T; t++)
        if (sb.mask[t]) {
            double dd = fabs((double)sb.old[t] - sb.roll[t]);
            mm_sum += dd;
            if (dd > mm_max) mm_max = dd;
            ntok += 1;
            ent_sum += sb.ent[t];
        }
    if (d->size > 1) {
        double sums[3] = {mm_sum, ntok, ent_sum};
        rlc_dist_allreduce_d(d, sums, 3, RLC_RED_SUM);
        rlc_dist_allreduce_d(d, &mm_max, 1, RLC_RED_MAX);
        mm_sum = sums[0], ntok = sums[1], ent_sum = sums[2];
    }
    rlc_metrics_add(mt, "logp_mismatch_mean", ntok > 0 ? mm_sum / ntok : 0);
    rlc_metrics_add(mt, "logp_mismatch_max", mm_max);
    rlc_metrics_add(mt, "entropy", ntok > 0 ? ent_sum / ntok : 0);
    rlc_f *old_used = r->recompute_old ? sb.old : sb.roll;
    double t_lp = rlc_now() - t1;
    rlc_metrics_add(mt, "time_logprob", t_lp);

    // advantages: outcome estimators from the global scores (every rank has them), token-level ones on this
    // rank's sequences with all-reduced whitening moments
    rlc_loss_batch full_b = {.T = T, .B = NL, .cu_seqlens = sb.full.cu_seqlens, .mask = sb.mask};
    float *adv_seq = rlc_calloc((size_t)N, sizeof(float));
    float *adv_l = rlc_calloc((size_t)(NL > 0 ? NL : 1), sizeof(float)); // (NL) adv_seq of this rank's sequences
    double kl_reward_sum = 0;
    int ppo = method_is(rl, "ppo");
    if (method_is(rl, "grpo") || method_is(rl, "dapo") || method_is(rl, "drgrpo")) {
        rlc_adv_scale sc = RLC_ADV_SCALE_GROUP;
        char err[256];
        if (method_is(rl, "drgrpo")) sc = RLC_ADV_SCALE_NONE;
        else if (rlc_adv_scale_parse(r->adv_scale, &sc, err, sizeof err) != 0) RLC_FATAL("%s", err);
        rlc_adv_grpo(adv_seq, scores, n_groups, G, sc);
        for (int i = 0; i < NL; i++) adv_l[i] = adv_seq[plan.idx[i]];
        rlc_adv_broadcast(sb.adv, adv_l, &full_b);
    } else if (method_is(rl, "rloo")) {
        rlc_adv_rloo(adv_seq, scores, n_groups, G);
        for (int i = 0; i < NL; i++) adv_l[i] = adv_seq[plan.idx[i]];
        rlc_adv_broadcast(sb.adv, adv_l, &full_b);
    } else if (method_is(rl, "reinforce++")) {
        kl_reward_sum = rlc_kl_reward(sb.rew, old_used, need_ref ? sb.ref : NULL, scores_l, &full_b,
                                      r->kl_in_reward ? (float)rl->kl_beta : 0.0f, rl->loss.kl_est);
        rlc_returns(sb.adv, sb.rew, &full_b, r->gamma);
        whiten_dist(d, sb.adv, &full_b);
    } else if (method_is(rl, "reinforce++-baseline")) {
        rlc_adv_baseline(adv_seq, scores, n_groups, G);
        for (int i = 0; i < NL; i++) adv_l[i] = adv_seq[plan.idx[i]];
        rlc_adv_broadcast(sb.adv, adv_l, &full_b);
        whiten_dist(d, sb.adv, &full_b);
    } else if (ppo) {
        kl_reward_sum = rlc_kl_reward(sb.rew, old_used, need_ref ? sb.ref : NULL, scores_l, &full_b,
                                      r->kl_in_reward ? (float)rl->kl_beta : 0.0f, rl->loss.kl_est);
        rlc_adv_gae(sb.adv, sb.ret, sb.rew, sb.val, &full_b, r->gamma, r->lam);
        whiten_dist(d, sb.adv, &full_b);
    } else {
        RLC_FATAL("rl.method \"%s\" has no advantage estimator", r->method);
    }
    rlc_dist_allreduce_d(d, &kl_reward_sum, 1, RLC_RED_SUM);
    if (r->empg) apply_empg(rl, ls, NL, adv_l, &sb);

    // K epochs over mini-batches of whole groups, one AdamW step per mini-batch
    double t2 = rlc_now();
    rlc_loss_config lc = rl->loss;
    lc.kl_beta = (r->kl_in_reward || !need_ref) ? 0.0f : (float)rl->kl_beta;
    rlc_loss_stats st = {0};
    double gn_sum = 0, n_upd = 0, vf_sum = 0;
    int failed = 0;
    for (int ep = 0; ep < r->epochs && !failed; ep++)
        for (int mi = 0; mi < M; mi++) {
            int s0 = plan.mb_start[mi], s1 = plan.mb_start[mi + 1];
            int nm = micro_starts(ls, s0, s1, r->micro_batch_tokens, 1, starts);
            rlc_loss_norm norm = {0};
            norm.l_const = rl->task->multi_turn ? c->model.max_seq_len : c->rollout.max_new_tokens;
            for (int b = 0; b < nm; b++) {
                rlc_loss_batch lb = sub_batch(&sb, starts[b], starts[b + 1], cu);
                rlc_loss_norm_add(&norm, &lb);
            }
            rlc_dist_allreduce_d(d, &norm.n_tok, 2, RLC_RED_SUM); // n_tok, n_seq of the whole mini-batch
            rlc_model_zero_grad(&rl->model);
            rlc_loss_stats est = {0};
            for (int b = 0; b < nm; b++) {
                int b0 = starts[b], b1 = starts[b + 1], off = sb.full.cu_seqlens[b0];
                forward_range(&rl->model, &sb, b0, b1, cu, tau, sb.logp, sb.cur_ent, sb.cur_val);
                rlc_loss_batch lb = sub_batch(&sb, b0, b1, cu);
                rlc_policy_inputs in = {.logp = sb.logp + off, .old = old_used + off,
                                        .ref = need_ref ? sb.ref + off : NULL, .roll = sb.roll + off,
                                        .adv = sb.adv + off, .entropy = sb.cur_ent + off};
                rlc_policy_loss(&lc, &norm, &lb, &in, sb.dlogp + off, sb.dent + off, &est);
                if (ppo)
                    rlc_value_loss(sb.cur_val + off, sb.val + off, sb.ret + off, &lb, lc.agg, &norm, r->value_clip,
                                   r->vf_coef, sb.dval + off, &est);
                if (b == nm - 1) rlc_model_arm_grad_ready(&rl->model); // last micro-batch of this update
                rlc_model_backward(&rl->model, sb.dlogp + off, sb.dent + off, ppo ? sb.dval + off : NULL);
            }
            rlc_sched_reduce_loss_stats(d, &est); // global: every rank takes the same branch below
            if (!isfinite(est.loss)) {
                rlc_sched_discard_grads(d, &rl->model); // the gradient collectives the backward started
                if (d->rank == 0)
                    fprintf(stderr, "\nrlc: RL loss is not finite at step %d (epoch %d, mini-batch %d)\n",
                            rl->step + 1, ep, mi);
                failed = 1;
                break;
            }
            gn_sum += rl_opt_step(rl, &r->optim, lr);
            n_upd += 1;
            vf_sum += est.vf_loss;
            if (ep == 0) rlc_loss_stats_merge(&st, &est); // report the first epoch (on-policy) statistics
        }
    double T_glob = seq_tokens(seqs, N);
    if (!failed) {
        double t_upd = rlc_now() - t2;
        add_loss_metrics(mt, &st);
        double kl_tok = st.tok > 0 ? st.tok : 1;
        double kl_now =
            need_ref ? (r->kl_in_reward ? kl_reward_sum / (ntok > 0 ? ntok : 1) : st.kl_sum / kl_tok) : 0;
        rlc_metrics_add(mt, "kl", kl_now);
        rlc_metrics_add(mt, "kl_beta", rl->kl_beta);
        if (ppo) rlc_metrics_add(mt, "vf_loss", vf_sum / (n_upd > 0 ? n_upd : 1));
        rlc_metrics_add(mt, "grad_norm", gn_sum / (n_upd > 0 ? n_upd : 1));
        rlc_metrics_add(mt, "time_update", t_upd);
        rlc_metrics_add(mt, "train_tokens", T_glob * r->epochs);
        rlc_metrics_add(mt, "train_tokens_per_s", T_glob * r->epochs / (t_upd > 0 ? t_upd : 1e-9));
        rlc_metrics_add(mt, "time_step", rlc_now() - t0);
        if (need_ref && r->kl_target > 0) {
            rlc_kl_ctl ctl = {.beta = rl->kl_beta, .target = r->kl_target, .horizon = r->kl_horizon};
            rlc_kl_ctl_update(&ctl, kl_now * c->rollout.max_new_tokens, N);
            rl->kl_beta = ctl.beta;
        }
        rl->step++;
    }
    step_buf_free(&sb);
    rlc_sched_plan_free(&plan);
    for (int i = 0; i < N; i++) rlc_sequence_free(&seqs[i]);
    free(seqs);
    free(ls);
    free(scores);
    free(scores_l);
    free(adv_seq);
    free(adv_l);
    free(starts);
    free(cu);
    return failed ? -1 : 0;
}
