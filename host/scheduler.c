// host/scheduler.c: work placement across ranks and the data-parallel training pieces (see
// include/rlc/scheduler.h): block and token-balanced partitions, sequence serialization and all-gather,
// reductions of loss statistics, the data-parallel / ZeRO-1 AdamW step, sharded evaluation and SFT.
#include "rlc/scheduler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rlc/backend.h"
#include "rlc/batch.h"
#include "rlc/util.h"

// ---- partitions ----

void rlc_sched_block(int n, int size, int r, int *lo, int *hi) {
    *lo = (int)((int64_t)n * r / size);
    *hi = (int)((int64_t)n * (r + 1) / size);
}

typedef struct {
    int64_t cost;
    int i;
} unit_cost;

static int cmp_cost_desc(const void *a, const void *b) {
    const unit_cost *x = a, *y = b;
    if (x->cost != y->cost) return x->cost > y->cost ? -1 : 1;
    return x->i - y->i;
}

void rlc_sched_partition(const int64_t *cost, int n, int size, int *owner) {
    unit_cost *u = rlc_malloc((size_t)(n > 0 ? n : 1) * sizeof(unit_cost));
    int64_t *load = rlc_calloc((size_t)size, sizeof(int64_t));
    for (int i = 0; i < n; i++) u[i] = (unit_cost){cost[i], i};
    qsort(u, (size_t)n, sizeof(unit_cost), cmp_cost_desc);
    for (int k = 0; k < n; k++) {
        int best = 0;
        for (int r = 1; r < size; r++)
            if (load[r] < load[best]) best = r;
        owner[u[k].i] = best;
        load[best] += u[k].cost;
    }
    free(u);
    free(load);
}

void rlc_sched_plan_build(rlc_sched_plan *p, const rlc_sequence *seqs, int unit, const int *mb_units, int n_mb,
                          int size, int rank) {
    memset(p, 0, sizeof *p);
    int n_units = n_mb > 0 ? mb_units[n_mb] : 0;
    p->idx = rlc_malloc((size_t)(n_units * unit > 0 ? n_units * unit : 1) * sizeof(int));
    p->mb_start = rlc_malloc((size_t)(n_mb + 1) * sizeof(int));
    p->n_mb = n_mb;
    int64_t *cost = rlc_malloc((size_t)(n_units > 0 ? n_units : 1) * sizeof(int64_t));
    int *owner = rlc_malloc((size_t)(n_units > 0 ? n_units : 1) * sizeof(int));
    for (int b = 0; b < n_mb; b++) {
        int u0 = mb_units[b], u1 = mb_units[b + 1];
        for (int u = u0; u < u1; u++) {
            cost[u - u0] = 0;
            for (int k = 0; k < unit; k++) cost[u - u0] += seqs[u * unit + k].len - 1;
        }
        if (size > 1) rlc_sched_partition(cost, u1 - u0, size, owner);
        else memset(owner, 0, (size_t)(u1 - u0) * sizeof(int));
        p->mb_start[b] = p->n;
        for (int u = u0; u < u1; u++)
            if (owner[u - u0] == rank)
                for (int k = 0; k < unit; k++) p->idx[p->n++] = u * unit + k;
    }
    p->mb_start[n_mb] = p->n;
    free(cost);
    free(owner);
}

void rlc_sched_plan_free(rlc_sched_plan *p) {
    free(p->idx);
    free(p->mb_start);
    memset(p, 0, sizeof *p);
}

// ---- sequences over the wire (host byte order: the ranks of a job share an architecture) ----

enum { SEQ_HDR_INTS = 8 }; // prompt_id, sample_id, len, prompt_len, n_turns, n_gen, truncated, response bytes

size_t rlc_seq_serialized_size(const rlc_sequence *s) {
    size_t L = (size_t)s->len, nt = (size_t)s->n_turns;
    return SEQ_HDR_INTS * 4 + 4 + L * (4 + 1 + 4 + 4) + nt * 8 + strlen(s->response);
}

static unsigned char *put(unsigned char *p, const void *src, size_t n) {
    if (n) memcpy(p, src, n);
    return p + n;
}

size_t rlc_seq_serialize(const rlc_sequence *s, unsigned char *buf) {
    int32_t hdr[SEQ_HDR_INTS] = {s->prompt_id, s->sample_id,  s->len,       s->prompt_len,
                                 s->n_turns,   s->n_gen,      s->truncated, (int32_t)strlen(s->response)};
    size_t L = (size_t)s->len, nt = (size_t)s->n_turns;
    unsigned char *p = buf;
    p = put(p, hdr, sizeof hdr);
    p = put(p, &s->score, 4);
    for (size_t i = 0; i < L; i++) {
        int32_t t = s->tokens[i];
        p = put(p, &t, 4);
    }
    p = put(p, s->mask, L);
    p = put(p, s->roll_logp, L * 4);
    p = put(p, s->roll_ent, L * 4);
    for (size_t i = 0; i < nt; i++) {
        int32_t a = s->turn_start[i], b = s->turn_end[i];
        p = put(p, &a, 4);
        p = put(p, &b, 4);
    }
    p = put(p, s->response, (size_t)hdr[7]);
    return (size_t)(p - buf);
}

size_t rlc_seq_deserialize(rlc_sequence *s, const unsigned char *buf, size_t avail) {
    memset(s, 0, sizeof *s);
    int32_t hdr[SEQ_HDR_INTS];
    if (avail < sizeof hdr + 4) return 0;
    memcpy(hdr, buf, sizeof hdr);
    int L = hdr[2], nt = hdr[4], nr = hdr[7];
    if (L < 0 || nt < 0 || nr < 0 || nr >= RLC_TEXT_MAX) return 0;
    size_t need = sizeof hdr + 4 + (size_t)L * 13 + (size_t)nt * 8 + (size_t)nr;
    if (avail < need) return 0;
    const unsigned char *p = buf + sizeof hdr;
    s->prompt_id = hdr[0], s->sample_id = hdr[1], s->len = L, s->prompt_len = hdr[3];
    s->n_turns = nt, s->n_gen = hdr[5], s->truncated = hdr[6];
    memcpy(&s->score, p, 4), p += 4;
    s->tokens = rlc_malloc((size_t)(L > 0 ? L : 1) * sizeof(int));
    s->mask = rlc_malloc((size_t)(L > 0 ? L : 1));
    s->roll_logp = rlc_malloc((size_t)(L > 0 ? L : 1) * sizeof(float));
    s->roll_ent = rlc_malloc((size_t)(L > 0 ? L : 1) * sizeof(float));
    s->turn_start = rlc_malloc((size_t)(nt > 0 ? nt : 1) * sizeof(int));
    s->turn_end = rlc_malloc((size_t)(nt > 0 ? nt : 1) * sizeof(int));
    for (int i = 0; i < L; i++, p += 4) {
        int32_t t;
        memcpy(&t, p, 4);
        s->tokens[i] = t;
    }
    memcpy(s->mask, p, (size_t)L), p += L;
    memcpy(s->roll_logp, p, (size_t)L * 4), p += (size_t)L * 4;
    memcpy(s->roll_ent, p, (size_t)L * 4), p += (size_t)L * 4;
    for (int i = 0; i < nt; i++) {
        int32_t a, b;
        memcpy(&a, p, 4), p += 4;
        memcpy(&b, p, 4), p += 4;
        s->turn_start[i] = a, s->turn_end[i] = b;
    }
    memcpy(s->response, p, (size_t)nr);
    s->response[nr] = 0;
    return need;
}

int rlc_sched_allgather_seqs(const rlc_dist *d, const rlc_sequence *local, int n_local, rlc_sequence *out, int cap) {
    size_t bytes = 4;
    for (int i = 0; i < n_local; i++) bytes += rlc_seq_serialized_size(&local[i]);
    unsigned char *send = rlc_malloc(bytes), *p = send;
    int32_t cnt = n_local;
    memcpy(p, &cnt, 4), p += 4;
    for (int i = 0; i < n_local; i++) p += rlc_seq_serialize(&local[i], p);
    size_t total;
    unsigned char *all = rlc_dist_allgatherv(d, send, bytes, NULL, &total);
    free(send);
    int n = 0;
    size_t pos = 0;
    while (pos < total) { // one chunk per rank: count, then the sequences
        RLC_CHECK(total - pos >= 4, "scheduler: truncated all-gather of sequences");
        memcpy(&cnt, all + pos, 4), pos += 4;
        for (int i = 0; i < cnt; i++) {
            RLC_CHECK(n < cap, "scheduler: all-gather of sequences: more than %d sequences", cap);
            size_t used = rlc_seq_deserialize(&out[n++], all + pos, total - pos);
            RLC_CHECK(used > 0, "scheduler: malformed sequence %d in the all-gather", n - 1);
            pos += used;
        }
    }
    free(all);
    return n;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

double rlc_sched_rollout_hash(const rlc_sequence *seqs, int n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < n; i++) {
        const rlc_sequence *s = &seqs[i];
        int32_t hdr[3] = {s->prompt_id, s->sample_id, s->len};
        h = fnv(h, hdr, sizeof hdr);
        for (int t = 0; t < s->len; t++) {
            int32_t tok = s->tokens[t];
            h = fnv(h, &tok, 4);
        }
        h = fnv(h, s->mask, (size_t)s->len);
    }
    return (double)((h ^ (h >> 29) ^ (h >> 58)) & ((1u << 29) - 1)); // 9 digits: exact in %.9g
}

// ---- reductions ----

void rlc_sched_reduce_loss_stats(const rlc_dist *d, rlc_loss_stats *st) {
    if (d->size <= 1) return;
    _Static_assert(sizeof(rlc_loss_stats) % sizeof(double) == 0, "rlc_loss_stats holds only doubles");
    double mx[2] = {st->ratio_max, st->mismatch_max};
    rlc_dist_allreduce_d(d, (double *)st, sizeof(rlc_loss_stats) / sizeof(double), RLC_RED_SUM);
    rlc_dist_allreduce_d(d, mx, 2, RLC_RED_MAX);
    st->ratio_max = mx[0];
    st->mismatch_max = mx[1];
}

// ---- collectives on backend memory ----
// The host collectives (host/comm.c) are MPI's on host memory. The CPU backend's tensors are host memory and go
// to MPI directly. A device backend's go to the group's device collectives when it has them (d->dev: NCCL on
// device memory, host/comm_nccl.c), else through a host staging copy: download, reduce, upload.

// The device collectives for buffers of backend o (NULL: host memory, or a group without them).
static const rlc_dist_dev *be_dev(const rlc_dist *d, const rlc_ops *o) {
    return d->dev && !rlc_backend_is_host(o) ? d->dev : NULL;
}

// x (n) summed over ranks, in place. Only for the flat gradients (a device backend's gradient round).
static void be_allreduce_sum(const rlc_dist *d, const rlc_ops *o, rlc_f *x, size_t n) {
    if (rlc_backend_is_host(o)) {
        rlc_dist_allreduce_sum_bucketed(d, x, n, 0);
        return;
    }
    if (be_dev(d, o)) {
        d->dev->allreduce_grads(d->dev->ctx, x, n);
        return;
    }
    rlc_f *h = rlc_malloc((n > 0 ? n : 1) * sizeof(rlc_f));
    o->download(h, x, n * sizeof(rlc_f));
    rlc_dist_allreduce_sum_bucketed(d, h, n, 0);
    o->upload(x, h, n * sizeof(rlc_f));
    free(h);
}

// Sum over ranks of x (n), this rank's shard [lo, hi) into out (hi - lo), both backend memory. Only for the flat
// gradients.
static void be_reduce_scatter_sum(const rlc_dist *d, const rlc_ops *o, const rlc_f *x, rlc_f *out, size_t n) {
    if (rlc_backend_is_host(o)) {
        rlc_dist_reduce_scatter_sum(d, x, out, n, 0);
        return;
    }
    if (be_dev(d, o)) {
        d->dev->reduce_scatter_grads(d->dev->ctx, x, out, n);
        return;
    }
    size_t lo, hi;
    rlc_dist_shard(n, d->size, d->rank, &lo, &hi);
    rlc_f *h = rlc_malloc((n > 0 ? n : 1) * sizeof(rlc_f)), *hs = rlc_malloc((hi > lo ? hi - lo : 1) * sizeof(rlc_f));
    o->download(h, x, n * sizeof(rlc_f));
    rlc_dist_reduce_scatter_sum(d, h, hs, n, 0);
    o->upload(out, hs, (hi - lo) * sizeof(rlc_f));
    free(h);
    free(hs);
}

// Every rank's shard of x (n) to every rank, in place (x[lo, hi) holds this rank's shard on entry).
static void be_allgather_shards(const rlc_dist *d, const rlc_ops *o, rlc_f *x, size_t n) {
    if (rlc_backend_is_host(o)) {
        rlc_dist_allgather_shards(d, x, n);
        return;
    }
    if (be_dev(d, o)) {
        d->dev->allgather_shards(d->dev->ctx, x, n);
        return;
    }
    size_t lo, hi;
    rlc_dist_shard(n, d->size, d->rank, &lo, &hi);
    rlc_f *h = rlc_malloc((n > 0 ? n : 1) * sizeof(rlc_f));
    o->download(h + lo, x + lo, (hi - lo) * sizeof(rlc_f));
    rlc_dist_allgather_shards(d, h, n);
    o->upload(x, h, n * sizeof(rlc_f));
    free(h);
}

// ---- optimizer ----

int rlc_sched_zero1_active(const rlc_dist *d, int zero1) { return zero1 && d->size > 1; }

void rlc_sched_adamw_init(const rlc_dist *d, int zero1, rlc_adamw *opt, const rlc_model *m) {
    rlc_adamw_free(opt, m);
    if (!rlc_sched_zero1_active(d, zero1)) {
        rlc_adamw_init(opt, m);
        return;
    }
    size_t lo, hi;
    rlc_dist_shard(m->n_params, d->size, d->rank, &lo, &hi);
    opt->n = hi - lo;
    opt->m = m->ops->alloc((opt->n > 0 ? opt->n : 1) * sizeof(rlc_f));
    opt->v = m->ops->alloc((opt->n > 0 ? opt->n : 1) * sizeof(rlc_f));
    opt->t = 0;
}

double rlc_sched_adamw_step(const rlc_dist *d, int zero1, rlc_adamw *opt, rlc_model *m, const rlc_optim_config *cfg,
                            float lr) {
    // one rank: nothing to sum, unless device collectives are attached (forced on one GPU to measure them)
    if (d->size <= 1 && !be_dev(d, m->ops)) return rlc_adamw_step(opt, m, cfg, lr);
    if (!rlc_sched_zero1_active(d, zero1)) {
        // the losses divide by global counts, so the full-batch gradient is the SUM of the ranks' gradients
        be_allreduce_sum(d, m->ops, m->grads, m->n_params);
        return rlc_adamw_step(opt, m, cfg, lr);
    }
    size_t lo, hi;
    rlc_dist_shard(m->n_params, d->size, d->rank, &lo, &hi);
    // (hi - lo) summed gradient shard, backend memory: sumsq and adamw_update read it
    rlc_f *g = m->ops->alloc((hi > lo ? hi - lo : 1) * sizeof(rlc_f));
    be_reduce_scatter_sum(d, m->ops, m->grads, g, m->n_params);
    double ss = hi > lo ? m->ops->sumsq(g, hi - lo) : 0.0;
    rlc_dist_allreduce_d(d, &ss, 1, RLC_RED_SUM);
    double norm = sqrt(ss);
    // the same clip rule as rlc_adamw_step, on the global norm
    float scale = 1.0f;
    if (cfg->grad_clip > 0 && norm > cfg->grad_clip) scale = (float)(cfg->grad_clip / (norm + 1e-6));
    if (!isfinite(norm)) scale = 0.0f;
    opt->t++;
    for (int i = 0; i < m->n_tensors; i++) {
        const rlc_tensor_info *ti = &m->tensors[i];
        size_t a = ti->offset > lo ? ti->offset : lo, b = ti->offset + ti->numel < hi ? ti->offset + ti->numel : hi;
        if (b <= a) continue;
        float wd = ti->no_decay ? 0.0f : cfg->weight_decay;
        m->ops->adamw_update(m->params + a, g + (a - lo), opt->m + (a - lo), opt->v + (a - lo), b - a, lr, cfg->beta1,
                             cfg->beta2, cfg->eps, wd, scale, opt->t);
    }
    be_allgather_shards(d, m->ops, m->params, m->n_params);
    // NCCL wrote the other ranks' shards past the table: refresh the bf16 working weights
    if (be_dev(d, m->ops) && m->ops->params_written) m->ops->params_written(m->params, m->n_params);
    m->ops->free(g);
    return norm;
}

void rlc_sched_discard_grads(const rlc_dist *d, rlc_model *m) {
    if (be_dev(d, m->ops)) d->dev->discard_grads(d->dev->ctx, m->grads, m->n_params);
}

void rlc_sched_adamw_gather(const rlc_dist *d, int zero1, const rlc_adamw *opt, const rlc_model *m, rlc_f *full_m,
                            rlc_f *full_v) {
    size_t n = m->n_params;
    const rlc_ops *o = m->ops;
    if (!rlc_sched_zero1_active(d, zero1)) {
        o->copy(full_m, opt->m, n * sizeof(rlc_f));
        o->copy(full_v, opt->v, n * sizeof(rlc_f));
        return;
    }
    size_t lo, hi;
    rlc_dist_shard(n, d->size, d->rank, &lo, &hi);
    o->copy(full_m + lo, opt->m, (hi - lo) * sizeof(rlc_f));
    o->copy(full_v + lo, opt->v, (hi - lo) * sizeof(rlc_f));
    be_allgather_shards(d, o, full_m, n);
    be_allgather_shards(d, o, full_v, n);
}

void rlc_sched_adamw_scatter(const rlc_dist *d, int zero1, rlc_adamw *opt, const rlc_model *m, const rlc_f *full_m,
                             const rlc_f *full_v) {
    size_t lo = 0, hi = m->n_params;
    if (rlc_sched_zero1_active(d, zero1)) rlc_dist_shard(m->n_params, d->size, d->rank, &lo, &hi);
    m->ops->copy(opt->m, full_m + lo, (hi - lo) * sizeof(rlc_f));
    m->ops->copy(opt->v, full_v + lo, (hi - lo) * sizeof(rlc_f));
}

// ---- phases ----

double rlc_sched_eval(const rlc_dist *d, rlc_model *m, const rlc_rollout_config *rc, const rlc_task *task,
                      const rlc_task_config *tc, int n, int batch) {
    if (d->size <= 1) return rlc_rollout_eval(m, rc, task, tc, n, batch);
    if (n <= 0) return 0;
    if (batch < 1) batch = 1;
    int lo, hi;
    rlc_sched_block(n, d->size, d->rank, &lo, &hi);
    // the same greedy rollouts as rlc_rollout_eval, on this rank's block of problem ids
    double total = rlc_rollout_eval_sum(m, rc, task, tc, lo, hi, batch);
    rlc_dist_allreduce_d(d, &total, 1, RLC_RED_SUM);
    return total / n;
}

void rlc_sched_sft_step(const rlc_dist *d, int zero1, rlc_model *m, rlc_adamw *opt, const rlc_config *cfg,
                        const rlc_task *task, uint64_t first, float lr, rlc_sft_stats *st) {
    if (d->size <= 1 && !be_dev(d, m->ops)) {
        rlc_sft_step(m, opt, cfg, task, first, lr, st);
        return;
    }
    // every rank builds the whole batch (cheap: text), then trains on its token-balanced part of it
    int n = cfg->sft.batch_size;
    rlc_sequence *seqs;
    int n_tok = rlc_sft_build(cfg, task, m->cfg.max_seq_len, first, &seqs);
    int mb_units[2] = {0, n};
    rlc_sched_plan plan;
    rlc_sched_plan_build(&plan, seqs, 1, mb_units, 1, d->size, d->rank);
    rlc_model_zero_grad(m);
    double loss = rlc_sft_accumulate(m, seqs, plan.idx, plan.n, n_tok, cfg->sft.micro_batch_tokens);
    rlc_dist_allreduce_d(d, &loss, 1, RLC_RED_SUM);
    st->grad_norm = rlc_sched_adamw_step(d, zero1, opt, m, &cfg->sft.optim, lr);
    st->loss = loss;
    st->tokens = n_tok;
    st->seqs = n;
    for (int i = 0; i < n; i++) rlc_sequence_free(&seqs[i]);
    free(seqs);
    rlc_sched_plan_free(&plan);
}
