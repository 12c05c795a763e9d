// host/model.c: the decoder-only transformer (Llama / Qwen2 family) on the op table: parameter table with HF
// names, forward and backward on token-packed batches, and KV-cache inference for the rollout engine.
// Everything numerical goes through m->ops; this file only orchestrates buffers and shapes.
#include "rlc/model.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rlc/util.h"

int rlc_model_config_check(const rlc_model_config *c, char *err, size_t errlen) {
    if (c->vocab_size < 2) return rlc_errf(err, errlen, "model.vocab_size must be >= 2 (got %d)", c->vocab_size);
    if (c->dim < 1) return rlc_errf(err, errlen, "model.dim must be >= 1 (got %d)", c->dim);
    if (c->n_layers < 1) return rlc_errf(err, errlen, "model.n_layers must be >= 1 (got %d)", c->n_layers);
    if (c->n_heads < 1) return rlc_errf(err, errlen, "model.n_heads must be >= 1 (got %d)", c->n_heads);
    if (c->n_kv_heads < 1 || c->n_heads % c->n_kv_heads != 0)
        return rlc_errf(err, errlen, "model.n_kv_heads must divide model.n_heads (got %d and %d)", c->n_kv_heads,
                        c->n_heads);
    if (c->head_dim < 2 || c->head_dim % 2 != 0)
        return rlc_errf(err, errlen, "model.head_dim must be even and >= 2 for RoPE (got %d)", c->head_dim);
    // the attention width n_heads * head_dim is an int dimension of the q/o projections
    if ((long long)c->n_heads * c->head_dim > INT_MAX)
        return rlc_errf(err, errlen, "model.n_heads * model.head_dim (%d * %d) exceeds %d", c->n_heads, c->head_dim,
                        INT_MAX);
    if (c->hidden_dim < 1) return rlc_errf(err, errlen, "model.hidden_dim must be >= 1 (got %d)", c->hidden_dim);
    if (c->max_seq_len < 2) return rlc_errf(err, errlen, "model.max_seq_len must be >= 2 (got %d)", c->max_seq_len);
    if (!(c->rms_eps > 0.0f)) return rlc_errf(err, errlen, "model.rms_eps must be > 0 (got %g)", c->rms_eps);
    if (!(c->rope_theta > 1.0f))
        return rlc_errf(err, errlen, "model.rope_theta must be > 1 (got %g)", c->rope_theta);
    return 0;
}

// ---- parameter table ----

static int add_tensor(rlc_tensor_info *t, int n, size_t *off, const char *name, int d0, int d1, int no_decay) {
    rlc_tensor_info *ti = &t[n];
    memset(ti, 0, sizeof *ti);
    snprintf(ti->name, sizeof ti->name, "%s", name);
    ti->ndim = d1 > 0 ? 2 : 1;
    ti->shape[0] = d0;
    ti->shape[1] = d1 > 0 ? d1 : 0;
    ti->numel = (size_t)d0 * (size_t)(d1 > 0 ? d1 : 1);
    ti->offset = *off;
    ti->no_decay = no_decay;
    *off += ti->numel;
    return n + 1;
}

// Builds the table in HF order; returns the count. t may be NULL to count only.
static int build_table(const rlc_model_config *c, rlc_tensor_info *t, size_t *total) {
    rlc_tensor_info dummy[1];
    int n = 0;
    size_t off = 0;
    char name[96];
    int C = c->dim, QD = c->n_heads * c->head_dim, KD = c->n_kv_heads * c->head_dim, F = c->hidden_dim;
#define ADD(nm, d0, d1, nd)                                             \
    do {                                                                \
        if (t) n = add_tensor(t, n, &off, nm, d0, d1, nd);              \
        else { add_tensor(dummy, 0, &off, nm, d0, d1, nd); n++; }       \
    } while (0)
    ADD("model.embed_tokens.weight", c->vocab_size, C, 0);
    for (int l = 0; l < c->n_layers; l++) {
#define LNAME(suffix) (snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix), name)
        ADD(LNAME("input_layernorm.weight"), C, 0, 1);
        ADD(LNAME("self_attn.q_proj.weight"), QD, C, 0);
        if (c->qkv_bias) ADD(LNAME("self_attn.q_proj.bias"), QD, 0, 1);
        ADD(LNAME("self_attn.k_proj.weight"), KD, C, 0);
        if (c->qkv_bias) ADD(LNAME("self_attn.k_proj.bias"), KD, 0, 1);
        ADD(LNAME("self_attn.v_proj.weight"), KD, C, 0);
        if (c->qkv_bias) ADD(LNAME("self_attn.v_proj.bias"), KD, 0, 1);
        ADD(LNAME("self_attn.o_proj.weight"), C, QD, 0);
        ADD(LNAME("post_attention_layernorm.weight"), C, 0, 1);
        ADD(LNAME("mlp.gate_proj.weight"), F, C, 0);
        ADD(LNAME("mlp.up_proj.weight"), F, C, 0);
        ADD(LNAME("mlp.down_proj.weight"), C, F, 0);
#undef LNAME
    }
    ADD("model.norm.weight", C, 0, 1);
    if (!c->tie_embeddings) ADD("lm_head.weight", c->vocab_size, C, 0);
    if (c->value_head) {
        ADD("value_head.weight", 1, C, 0);
        ADD("value_head.bias", 1, 0, 1);
    }
#undef ADD
    if (total) *total = off;
    return n;
}

const rlc_tensor_info *rlc_model_find_tensor(const rlc_model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

static rlc_f *tensor_ptr(const rlc_model *m, rlc_f *base, const char *name) {
    const rlc_tensor_info *t = rlc_model_find_tensor(m, name);
    return t ? base + t->offset : NULL;
}

static void bind_ptrs(rlc_model *m, rlc_f *base, rlc_param_ptrs *p) {
    char name[96];
    p->embed = tensor_ptr(m, base, "model.embed_tokens.weight");
    p->layers = rlc_calloc((size_t)m->cfg.n_layers, sizeof(rlc_layer_params));
    for (int l = 0; l < m->cfg.n_layers; l++) {
        rlc_layer_params *lp = &p->layers[l];
#define P(suffix) (snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix), tensor_ptr(m, base, name))
        lp->ln1 = P("input_layernorm.weight");
        lp->wq = P("self_attn.q_proj.weight");
        lp->bq = P("self_attn.q_proj.bias");
        lp->wk = P("self_attn.k_proj.weight");
        lp->bk = P("self_attn.k_proj.bias");
        lp->wv = P("self_attn.v_proj.weight");
        lp->bv = P("self_attn.v_proj.bias");
        lp->wo = P("self_attn.o_proj.weight");
        lp->ln2 = P("post_attention_layernorm.weight");
        lp->wgate = P("mlp.gate_proj.weight");
        lp->wup = P("mlp.up_proj.weight");
        lp->wdown = P("mlp.down_proj.weight");
#undef P
    }
    p->norm = tensor_ptr(m, base, "model.norm.weight");
    p->lm_head = m->cfg.tie_embeddings ? p->embed : tensor_ptr(m, base, "lm_head.weight");
    p->value_w = tensor_ptr(m, base, "value_head.weight");
    p->value_b = tensor_ptr(m, base, "value_head.bias");
}

// ---- init / free ----

static rlc_f *alloc_f(const rlc_ops *ops, size_t n) { return ops->alloc(n * sizeof(rlc_f)); }

// The model's backend memory, allocated (ops set) or only counted (ops NULL: rlc_model_bytes), by kind. An
// allocation the backend refuses prints "rlc: model <what>: cannot allocate N bytes (M available)" and leaves
// NULL; the later ones are skipped (and counted), and rlc_model_init frees what it had and fails.
enum { MEM_PARAMS, MEM_GRADS, MEM_ACTS };
typedef struct model_mem {
    const rlc_ops *ops;
    int max_tokens;
    size_t act_bytes; // bytes of an activation element
    size_t bytes[3]; // by kind
    int failed;
} model_mem;

static void *mm_take(model_mem *mm, int kind, size_t bytes) {
    mm->bytes[kind] += bytes;
    if (!mm->ops || mm->failed) return NULL;
    void *p = mm->ops->try_alloc(bytes);
    if (!p) {
        rlc_mem_info mi;
        mm->ops->mem_info(&mi);
        char what[64];
        if (kind == MEM_ACTS) snprintf(what, sizeof what, "activations for %d tokens", mm->max_tokens);
        else snprintf(what, sizeof what, "%s", kind == MEM_PARAMS ? "parameters" : "gradients");
        fprintf(stderr, "rlc: model %s: cannot allocate %zu bytes (%zu available)\n", what, bytes, mi.free);
        mm->failed = 1;
    }
    return p;
}
static rlc_f *mm_f(model_mem *mm, int kind, size_t n) { return mm_take(mm, kind, n * sizeof(rlc_f)); }
static rlc_act *mm_a(model_mem *mm, size_t n) { return mm_take(mm, MEM_ACTS, n * mm->act_bytes); }
static int *mm_i(model_mem *mm, size_t n) { return mm_take(mm, MEM_ACTS, n * sizeof(int)); }

// Every backend buffer of the model (m->cfg, m->n_params and m->max_tokens set); pointers stay NULL when counting.
static void model_buffers(rlc_model *m, model_mem *mm) {
    const rlc_model_config *cfg = &m->cfg;
    m->params = mm_f(mm, MEM_PARAMS, m->n_params);
    m->grads = mm_f(mm, MEM_GRADS, m->n_params);
    size_t T = (size_t)m->max_tokens, C = cfg->dim, F = cfg->hidden_dim;
    size_t QD = (size_t)cfg->n_heads * cfg->head_dim, KD = (size_t)cfg->n_kv_heads * cfg->head_dim;
    for (int l = 0; l < cfg->n_layers; l++) {
        rlc_layer_acts *a = &m->acts[l];
        a->x_in = mm_f(mm, MEM_ACTS, T * C);
        a->ln1 = mm_a(mm, T * C);
        a->rstd1 = mm_f(mm, MEM_ACTS, T);
        a->q = mm_a(mm, T * QD);
        a->k = mm_a(mm, T * KD);
        a->v = mm_a(mm, T * KD);
        a->att = mm_a(mm, T * QD);
        a->lse = mm_f(mm, MEM_ACTS, T * cfg->n_heads);
        a->x_mid = mm_f(mm, MEM_ACTS, T * C);
        a->ln2 = mm_a(mm, T * C);
        a->rstd2 = mm_f(mm, MEM_ACTS, T);
        a->gate = mm_a(mm, T * F);
        a->up = mm_a(mm, T * F);
        a->act = mm_a(mm, T * F);
    }
    m->x_final = mm_f(mm, MEM_ACTS, T * C);
    m->rstdf = mm_f(mm, MEM_ACTS, T);
    m->hidden = mm_a(mm, T * C);
    m->values = mm_f(mm, MEM_ACTS, T);
    m->lp_lse = mm_f(mm, MEM_ACTS, T);
    m->lp_logp = mm_f(mm, MEM_ACTS, T);
    m->lp_ent = mm_f(mm, MEM_ACTS, T);
    m->lp_targets = mm_i(mm, T);
    m->tokens = mm_i(mm, T);
    m->pos = mm_i(mm, T);
    m->cu_seqlens = mm_i(mm, T + 1);
    m->dx = mm_f(mm, MEM_ACTS, T * C);
    m->dln = mm_a(mm, T * C);
    m->tmpC = mm_a(mm, T * C);
    m->dq = mm_a(mm, T * QD);
    m->datt = mm_a(mm, T * QD);
    m->dk = mm_a(mm, T * KD);
    m->dv = mm_a(mm, T * KD);
    m->dgate = mm_a(mm, T * F);
    m->dup = mm_a(mm, T * F);
    m->dact = mm_a(mm, T * F);
    m->dlogp_buf = mm_f(mm, MEM_ACTS, T);
    m->dent_buf = mm_f(mm, MEM_ACTS, T);
    m->dval_buf = mm_f(mm, MEM_ACTS, T);
    m->dval_act = mm_a(mm, T);
    m->slot_buf = mm_i(mm, T);
    m->kvlen_buf = mm_i(mm, T);
}

size_t rlc_model_bytes(const rlc_model_config *cfg, int max_tokens, size_t act_bytes, size_t *params,
                       size_t *grads, size_t *acts) {
    rlc_model m;
    memset(&m, 0, sizeof m);
    m.cfg = *cfg;
    m.max_tokens = max_tokens > 0 ? max_tokens : 1;
    build_table(cfg, NULL, &m.n_params);
    m.acts = rlc_calloc((size_t)(cfg->n_layers > 0 ? cfg->n_layers : 1), sizeof(rlc_layer_acts));
    model_mem mm = {.ops = NULL, .max_tokens = m.max_tokens, .act_bytes = act_bytes};
    model_buffers(&m, &mm);
    free(m.acts);
    if (params) *params = mm.bytes[MEM_PARAMS];
    if (grads) *grads = mm.bytes[MEM_GRADS];
    if (acts) *acts = mm.bytes[MEM_ACTS];
    return mm.bytes[MEM_PARAMS] + mm.bytes[MEM_GRADS] + mm.bytes[MEM_ACTS];
}

int rlc_model_init(rlc_model *m, const rlc_model_config *cfg, const rlc_ops *ops, int max_tokens) {
    char err[256];
    memset(m, 0, sizeof *m);
    if (rlc_model_config_check(cfg, err, sizeof err) != 0) {
        fprintf(stderr, "rlc: %s\n", err);
        return -1;
    }
    if (max_tokens < 1) {
        fprintf(stderr, "rlc: model max_tokens must be >= 1 (got %d)\n", max_tokens);
        return -1;
    }
    m->cfg = *cfg;
    m->ops = ops;
    m->max_tokens = max_tokens;
    m->act_bytes = ops->act_bytes;
    m->n_tensors = build_table(cfg, NULL, NULL);
    m->tensors = rlc_calloc((size_t)m->n_tensors, sizeof(rlc_tensor_info));
    build_table(cfg, m->tensors, &m->n_params);
    m->acts = rlc_calloc((size_t)cfg->n_layers, sizeof(rlc_layer_acts));
    model_mem mm = {.ops = ops, .max_tokens = max_tokens, .act_bytes = ops->act_bytes};
    model_buffers(m, &mm);
    if (mm.failed) {
        rlc_model_free(m);
        return -1;
    }
    bind_ptrs(m, m->params, &m->p);
    bind_ptrs(m, m->grads, &m->g);
    // the fp32 master weights; a backend with bf16 working weights keeps their bf16 copy from now on (every later
    // write through the table refreshes it: init, checkpoint loads, optimizer steps; free drops it)
    if (ops->register_params) ops->register_params(m->params, m->n_params);
    return 0;
}

static void decode_graphs_free(rlc_model *m) {
    for (int i = 0; i < RLC_DECODE_GRAPHS; i++) {
        if (m->graphs[i].graph) m->ops->graph_free(m->graphs[i].graph);
        memset(&m->graphs[i], 0, sizeof m->graphs[i]);
    }
    memset(&m->graph_prev, 0, sizeof m->graph_prev);
    m->graph_streak = 0;
}

void rlc_model_set_decode_graphs(rlc_model *m, int on) {
    m->graphs_off = !on;
    if (!on) decode_graphs_free(m);
}

rlc_decode_graph_stats rlc_model_decode_graph_stats(const rlc_model *m) { return m->graph_stats; }

void rlc_model_free(rlc_model *m) {
    const rlc_ops *ops = m->ops;
    if (!ops) return;
    decode_graphs_free(m);
    for (int l = 0; m->acts && l < m->cfg.n_layers; l++) {
        rlc_layer_acts *a = &m->acts[l];
        void *bufs[] = {a->x_in, a->ln1, a->rstd1, a->q, a->k, a->v, a->att, a->lse, a->x_mid, a->ln2, a->rstd2,
                         a->gate, a->up, a->act};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) ops->free(bufs[i]);
    }
    void *bufs[] = {m->params, m->grads, m->x_final, m->rstdf, m->hidden, m->values, m->lp_lse, m->lp_logp,
                    m->lp_ent, m->lp_targets, m->tokens, m->pos, m->cu_seqlens, m->dx, m->dln, m->tmpC, m->dq,
                    m->datt, m->dk, m->dv, m->dgate, m->dup, m->dact, m->dlogp_buf, m->dent_buf, m->dval_buf,
                    m->dval_act, m->slot_buf, m->kvlen_buf, m->logits_buf};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) ops->free(bufs[i]);
    free(m->acts);
    free(m->p.layers);
    free(m->g.layers);
    free(m->tensors);
    memset(m, 0, sizeof *m);
}

// splitmix64 + Box-Muller: a self-contained deterministic normal stream for weight init.
static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double normal01(uint64_t *s) {
    double u1 = ((double)(splitmix64(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    double u2 = (double)(splitmix64(s) >> 11) * (1.0 / 9007199254740992.0);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void rlc_model_init_weights(rlc_model *m, uint64_t seed) {
    rlc_f *host = rlc_malloc(m->n_params * sizeof(rlc_f));
    double out_std = 0.02 / sqrt(2.0 * m->cfg.n_layers);
    for (int i = 0; i < m->n_tensors; i++) {
        const rlc_tensor_info *t = &m->tensors[i];
        // each tensor gets its own stream so adding a tensor does not shift the others
        uint64_t s = seed * 0x100000001B3ull + (uint64_t)i * 0x9E3779B97F4A7C15ull;
        rlc_f *p = host + t->offset;
        int is_norm = strstr(t->name, "norm.weight") != NULL;
        int is_bias = strstr(t->name, ".bias") != NULL;
        int is_out = strstr(t->name, "o_proj") != NULL || strstr(t->name, "down_proj") != NULL;
        for (size_t j = 0; j < t->numel; j++) {
            if (is_norm) p[j] = 1;
            else if (is_bias) p[j] = 0;
            else p[j] = (rlc_f)(normal01(&s) * (is_out ? out_std : 0.02));
        }
    }
    m->ops->upload(m->params, host, m->n_params * sizeof(rlc_f));
    free(host);
}

void rlc_model_zero_grad(rlc_model *m) { m->ops->zero(m->grads, m->n_params * sizeof(rlc_f)); }

// ---- forward / backward ----

void rlc_model_forward(rlc_model *m, const int *tokens, const int *cu_seqlens, int B, int T) {
    const rlc_ops *o = m->ops;
    const rlc_model_config *c = &m->cfg;
    RLC_CHECK(T >= 1 && T <= m->max_tokens, "forward: %d tokens, model sized for 1..%d", T, m->max_tokens);
    RLC_CHECK(B >= 1 && cu_seqlens[0] == 0 && cu_seqlens[B] == T, "forward: bad cu_seqlens (B=%d, T=%d)", B, T);
    RLC_CHECK(o->act_bytes == m->act_bytes, "forward: the backend's activations are %zu bytes, the model's %zu "
              "(its precision mode changed after the model was allocated)", o->act_bytes, m->act_bytes);
    int *pos = rlc_malloc((size_t)T * sizeof(int));
    for (int b = 0; b < B; b++) {
        RLC_CHECK(cu_seqlens[b + 1] > cu_seqlens[b], "forward: sequence %d is empty", b);
        RLC_CHECK(cu_seqlens[b + 1] - cu_seqlens[b] <= c->max_seq_len, "forward: sequence %d has %d tokens > %d",
                  b, cu_seqlens[b + 1] - cu_seqlens[b], c->max_seq_len);
        for (int t = cu_seqlens[b]; t < cu_seqlens[b + 1]; t++) pos[t] = t - cu_seqlens[b];
    }
    for (int t = 0; t < T; t++)
        RLC_CHECK(tokens[t] >= 0 && tokens[t] < c->vocab_size, "forward: token %d at %d outside vocab %d",
                  tokens[t], t, c->vocab_size);
    o->upload(m->tokens, tokens, (size_t)T * sizeof(int));
    o->upload(m->pos, pos, (size_t)T * sizeof(int));
    o->upload(m->cu_seqlens, cu_seqlens, (size_t)(B + 1) * sizeof(int));
    free(pos);
    m->T = T;
    m->B = B;

    int C = c->dim, F = c->hidden_dim, NH = c->n_heads, NKV = c->n_kv_heads, HD = c->head_dim;
    int QD = NH * HD, KD = NKV * HD;
    // Each residual add is fused with the norm that follows it (add_rmsnorm_forward): the attention branch's with
    // the MLP's input norm, the MLP branch's with the next layer's input norm or the final norm.
    o->embedding_forward(m->acts[0].x_in, m->tokens, m->p.embed, T, C);
    o->rmsnorm_forward(m->acts[0].ln1, m->acts[0].rstd1, m->acts[0].x_in, m->p.layers[0].ln1, c->rms_eps, T, C);
    for (int l = 0; l < c->n_layers; l++) {
        rlc_layer_acts *a = &m->acts[l];
        rlc_layer_params *w = &m->p.layers[l];
        int last = l + 1 == c->n_layers;
        rlc_f *x_out = last ? m->x_final : m->acts[l + 1].x_in; // (T, C)
        o->matmul_forward(a->q, a->ln1, w->wq, w->bq, T, C, QD);
        o->matmul_forward(a->k, a->ln1, w->wk, w->bk, T, C, KD);
        o->matmul_forward(a->v, a->ln1, w->wv, w->bv, T, C, KD);
        o->rope_forward(a->q, m->pos, T, NH, HD, c->rope_theta);
        o->rope_forward(a->k, m->pos, T, NKV, HD, c->rope_theta);
        o->attention_forward(a->att, a->lse, a->q, a->k, a->v, m->cu_seqlens, B, T, NH, NKV, HD);
        o->matmul_forward(m->tmpC, a->att, w->wo, NULL, T, QD, C);
        o->add_rmsnorm_forward(a->x_mid, a->ln2, a->rstd2, a->x_in, m->tmpC, w->ln2, c->rms_eps, T, C);
        o->matmul_forward(a->gate, a->ln2, w->wgate, NULL, T, C, F);
        o->matmul_forward(a->up, a->ln2, w->wup, NULL, T, C, F);
        o->swiglu_forward(a->act, a->gate, a->up, (size_t)T * F);
        o->matmul_forward(m->tmpC, a->act, w->wdown, NULL, T, F, C);
        if (last)
            o->add_rmsnorm_forward(x_out, m->hidden, m->rstdf, a->x_mid, m->tmpC, m->p.norm, c->rms_eps, T, C);
        else
            o->add_rmsnorm_forward(x_out, m->acts[l + 1].ln1, m->acts[l + 1].rstd1, a->x_mid, m->tmpC,
                                   m->p.layers[l + 1].ln1, c->rms_eps, T, C);
    }
    if (c->value_head) o->logits_forward(m->values, m->hidden, m->p.value_w, m->p.value_b, T, C, 1);
}

void rlc_model_logprobs(rlc_model *m, const int *targets, float tau, rlc_f *logp, rlc_f *ent) {
    const rlc_ops *o = m->ops;
    int T = m->T, V = m->cfg.vocab_size;
    for (int t = 0; t < T; t++)
        RLC_CHECK(targets[t] < V, "logprobs: target %d at %d outside vocab %d", targets[t], t, V);
    o->upload(m->lp_targets, targets, (size_t)T * sizeof(int));
    m->lp_tau = tau;
    o->logprob_forward(m->lp_logp, m->lp_ent, m->lp_lse, m->hidden, m->p.lm_head, m->lp_targets, T, m->cfg.dim, V,
                       tau);
    if (logp) o->download(logp, m->lp_logp, (size_t)T * sizeof(rlc_f));
    if (ent) o->download(ent, m->lp_ent, (size_t)T * sizeof(rlc_f));
}

void rlc_model_logits(rlc_model *m, rlc_f *logits) {
    int T = m->T, V = m->cfg.vocab_size;
    rlc_f *buf = alloc_f(m->ops, (size_t)T * V);
    m->ops->logits_forward(buf, m->hidden, m->p.lm_head, NULL, T, m->cfg.dim, V);
    m->ops->download(logits, buf, (size_t)T * V * sizeof(rlc_f));
    m->ops->free(buf);
}

void rlc_model_arm_grad_ready(rlc_model *m) { m->grad_armed = 1; }

// In an armed backward: grads[first - grads, n_params) are final (see rlc_model.grad_ready).
static void grads_final(rlc_model *m, const rlc_f *first) {
    if (m->grad_armed && m->grad_ready)
        m->grad_ready(m->grad_ready_ctx, m->grads, m->n_params, (size_t)(first - m->grads));
}

// The residual stream's gradient dx (T, C) as the activation-typed dout of a projection's backward: dx itself when
// activations are rlc_f, else rounded into scratch (T, C).
static const rlc_act *residual_grad_act(rlc_model *m, rlc_act *scratch, size_t TC) {
    if (m->act_bytes == sizeof(rlc_f)) return m->dx;
    m->ops->act_from_f(scratch, m->dx, TC);
    return scratch;
}

static void upload_or_zero(const rlc_ops *o, rlc_f *dst, const rlc_f *src, int T) {
    if (src) o->upload(dst, src, (size_t)T * sizeof(rlc_f));
    else o->zero(dst, (size_t)T * sizeof(rlc_f));
}

void rlc_model_backward(rlc_model *m, const rlc_f *dlogp, const rlc_f *dent, const rlc_f *dvalue) {
    const rlc_ops *o = m->ops;
    const rlc_model_config *c = &m->cfg;
    int T = m->T, B = m->B, C = c->dim, F = c->hidden_dim, NH = c->n_heads, NKV = c->n_kv_heads, HD = c->head_dim;
    int QD = NH * HD, KD = NKV * HD, V = c->vocab_size;
    size_t TC = (size_t)T * C, TF = (size_t)T * F, TQ = (size_t)T * QD, ab = m->act_bytes;

    // d hidden (T, C): from the log-prob/entropy coefficients through the LM head, and from the value head
    o->zero(m->dln, TC * ab);
    if (dlogp || dent) {
        upload_or_zero(o, m->dlogp_buf, dlogp, T);
        upload_or_zero(o, m->dent_buf, dent, T);
        o->logprob_backward(m->dln, m->g.lm_head, m->dlogp_buf, m->dent_buf, m->hidden, m->p.lm_head,
                            m->lp_targets, m->lp_lse, m->lp_ent, T, C, V, m->lp_tau);
    }
    if (c->value_head && dvalue) {
        o->upload(m->dval_buf, dvalue, (size_t)T * sizeof(rlc_f));
        o->act_from_f(m->dval_act, m->dval_buf, (size_t)T);
        o->matmul_backward(m->dln, m->g.value_w, m->g.value_b, m->dval_act, m->hidden, m->p.value_w, T, C, 1);
    }
    // d x_final (T, C)
    o->zero(m->dx, TC * sizeof(rlc_f));
    o->rmsnorm_backward(m->dx, m->g.norm, m->dln, m->x_final, m->p.norm, m->rstdf, T, C);
    grads_final(m, m->g.norm); // final norm, untied LM head, value head: the end of the flat buffer

    for (int l = c->n_layers - 1; l >= 0; l--) {
        rlc_layer_acts *a = &m->acts[l];
        rlc_layer_params *w = &m->p.layers[l];
        rlc_layer_params *gw = &m->g.layers[l];
        // MLP branch: x_out = x_mid + down(swiglu(gate(ln2), up(ln2))); dx holds d x_out (the residual path)
        o->zero(m->dact, TF * ab);
        o->matmul_backward(m->dact, gw->wdown, NULL, residual_grad_act(m, m->tmpC, TC), a->act, w->wdown, T, F, C);
        o->swiglu_backward(m->dgate, m->dup, m->dact, a->gate, a->up, TF);
        o->zero(m->dln, TC * ab);
        o->matmul_backward(m->dln, gw->wgate, NULL, m->dgate, a->ln2, w->wgate, T, C, F);
        o->matmul_backward(m->dln, gw->wup, NULL, m->dup, a->ln2, w->wup, T, C, F);
        o->rmsnorm_backward(m->dx, gw->ln2, m->dln, a->x_mid, w->ln2, a->rstd2, T, C); // dx = d x_mid
        // attention branch: x_mid = x_in + o_proj(attn(rope(q), rope(k), v))
        o->zero(m->datt, TQ * ab);
        o->matmul_backward(m->datt, gw->wo, NULL, residual_grad_act(m, m->tmpC, TC), a->att, w->wo, T, QD, C);
        o->attention_backward(m->dq, m->dk, m->dv, m->datt, a->q, a->k, a->v, a->att, a->lse, m->cu_seqlens, B, T,
                              NH, NKV, HD);
        o->rope_backward(m->dq, m->pos, T, NH, HD, c->rope_theta);
        o->rope_backward(m->dk, m->pos, T, NKV, HD, c->rope_theta);
        o->zero(m->dln, TC * ab);
        o->matmul_backward(m->dln, gw->wq, gw->bq, m->dq, a->ln1, w->wq, T, C, QD);
        o->matmul_backward(m->dln, gw->wk, gw->bk, m->dk, a->ln1, w->wk, T, C, KD);
        o->matmul_backward(m->dln, gw->wv, gw->bv, m->dv, a->ln1, w->wv, T, C, KD);
        o->rmsnorm_backward(m->dx, gw->ln1, m->dln, a->x_in, w->ln1, a->rstd1, T, C); // dx = d x_in
        grads_final(m, gw->ln1); // layer l's tensors start with input_layernorm
    }
    o->embedding_backward(m->g.embed, m->dx, m->tokens, T, C); // a tied LM head's gradient is final only now
    grads_final(m, m->grads);
    m->grad_armed = 0;
}

// ---- KV-cache inference ----

size_t rlc_kv_cache_bytes(const rlc_model_config *cfg, int n_seqs, int capacity, size_t act_bytes) {
    return 2 * (size_t)cfg->n_layers * (size_t)n_seqs * (size_t)capacity * (size_t)cfg->n_kv_heads *
           (size_t)cfg->head_dim * act_bytes;
}

int rlc_kv_cache_init(rlc_kv_cache *kv, const rlc_model *m, int n_seqs, int capacity) {
    memset(kv, 0, sizeof *kv);
    if (n_seqs < 1 || capacity < 1) return -1;
    kv->n_seqs = n_seqs;
    kv->capacity = capacity;
    size_t bytes = rlc_kv_cache_bytes(&m->cfg, n_seqs, capacity, m->act_bytes) / 2;
    kv->k = m->ops->try_alloc(bytes);
    kv->v = kv->k ? m->ops->try_alloc(bytes) : NULL;
    if (!kv->v) {
        if (kv->k) m->ops->free(kv->k);
        memset(kv, 0, sizeof *kv);
        return -1;
    }
    kv->len = rlc_calloc((size_t)n_seqs, sizeof(int));
    return 0;
}

void rlc_kv_cache_free(rlc_kv_cache *kv, const rlc_model *m) {
    if (kv->k) m->ops->free(kv->k);
    if (kv->v) m->ops->free(kv->v);
    free(kv->len);
    memset(kv, 0, sizeof *kv);
}

// Elements of one layer's cache block, and of one slot within it.
static size_t kv_slot_elems(const rlc_kv_cache *kv, const rlc_model *m) {
    return (size_t)kv->capacity * m->cfg.n_kv_heads * m->cfg.head_dim;
}

void rlc_kv_cache_copy_slot(rlc_kv_cache *kv, const rlc_model *m, int dst, int src) {
    size_t se = kv_slot_elems(kv, m), layer = se * kv->n_seqs;
    size_t used = (size_t)kv->len[src] * m->cfg.n_kv_heads * m->cfg.head_dim;
    const rlc_ops *o = m->ops;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        o->copy(rlc_act_at(o, kv->k, l * layer + dst * se), rlc_act_at(o, kv->k, l * layer + src * se),
                used * m->act_bytes);
        o->copy(rlc_act_at(o, kv->v, l * layer + dst * se), rlc_act_at(o, kv->v, l * layer + src * se),
                used * m->act_bytes);
    }
    kv->len[dst] = kv->len[src];
}

// The device work of a cached forward over n rows whose tokens, positions, slots and cache lengths are already in
// m->tokens, m->pos, m->slot_buf and m->kvlen_buf: every layer (appending the rows' K/V to the cache), then the
// final norm and the LM head of the rows listed in out_rows (n_out of them) into m->logits_buf (which holds
// n_out rows). Only table calls whose host side depends on nothing but the arguments: a graph can record it.
static void forward_cached_device(rlc_model *m, rlc_kv_cache *kv, int n, const int *out_rows, int n_out) {
    const rlc_ops *o = m->ops;
    const rlc_model_config *c = &m->cfg;
    int C = c->dim, F = c->hidden_dim, NH = c->n_heads, NKV = c->n_kv_heads, HD = c->head_dim, V = c->vocab_size;
    int QD = NH * HD, KD = NKV * HD;
    size_t se = kv_slot_elems(kv, m), layer_elems = se * kv->n_seqs;
    rlc_f *x = m->x_final; // (n, C) residual stream, updated in place
    rlc_layer_acts *a = &m->acts[0]; // scratch buffers
    // residual adds fused with the following norm as in rlc_model_forward, except the last layer's: the final norm
    // runs on the requested rows only
    o->embedding_forward(x, m->tokens, m->p.embed, n, C);
    o->rmsnorm_forward(a->ln1, a->rstd1, x, m->p.layers[0].ln1, c->rms_eps, n, C);
    for (int l = 0; l < c->n_layers; l++) {
        rlc_layer_params *w = &m->p.layers[l];
        rlc_act *kc = rlc_act_at(o, kv->k, l * layer_elems), *vc = rlc_act_at(o, kv->v, l * layer_elems);
        o->matmul_forward(a->q, a->ln1, w->wq, w->bq, n, C, QD);
        o->matmul_forward(a->k, a->ln1, w->wk, w->bk, n, C, KD);
        o->matmul_forward(a->v, a->ln1, w->wv, w->bv, n, C, KD);
        o->rope_forward(a->q, m->pos, n, NH, HD, c->rope_theta);
        o->rope_forward(a->k, m->pos, n, NKV, HD, c->rope_theta);
        // append the n K/V rows to their (slot, position): one kv_append per layer, whatever n
        o->kv_append(kc, vc, a->k, a->v, m->slot_buf, m->pos, n, kv->capacity, NKV, HD);
        o->attention_decode(a->att, a->q, kc, vc, m->slot_buf, m->kvlen_buf, n, kv->capacity, NH, NKV, HD);
        o->matmul_forward(m->tmpC, a->att, w->wo, NULL, n, QD, C);
        o->add_rmsnorm_forward(x, a->ln2, a->rstd2, x, m->tmpC, w->ln2, c->rms_eps, n, C);
        o->matmul_forward(a->gate, a->ln2, w->wgate, NULL, n, C, F);
        o->matmul_forward(a->up, a->ln2, w->wup, NULL, n, C, F);
        o->swiglu_forward(a->act, a->gate, a->up, (size_t)n * F);
        o->matmul_forward(m->tmpC, a->act, w->wdown, NULL, n, F, C);
        if (l + 1 < c->n_layers)
            o->add_rmsnorm_forward(x, a->ln1, a->rstd1, x, m->tmpC, m->p.layers[l + 1].ln1, c->rms_eps, n, C);
        else
            o->add(x, x, m->tmpC, (size_t)n * C);
    }
    if (n_out <= 0) return;
    // gather the requested rows (one ops->copy per run of consecutive rows: one for a decode step), final norm, LM
    // head; the logits stay in backend memory (the rollout engine samples there, ops->sample_tokens)
    for (int r = 0, q; r < n_out; r = q) {
        for (q = r + 1; q < n_out && out_rows[q] == out_rows[q - 1] + 1; q++) {
        }
        o->copy(m->dx + (size_t)r * C, x + (size_t)out_rows[r] * C, (size_t)(q - r) * C * sizeof(rlc_f));
    }
    o->rmsnorm_forward(m->dln, m->rstdf, m->dx, m->p.norm, c->rms_eps, n_out, C);
    o->logits_forward(m->logits_buf, m->dln, m->p.lm_head, NULL, n_out, C, V);
}

// The decode step's graph key (n rows, all of them out_rows in order).
static rlc_decode_graph decode_graph_key(const rlc_model *m, const rlc_kv_cache *kv, int n) {
    rlc_decode_graph k;
    memset(&k, 0, sizeof k);
    k.used = 1;
    k.n = n, k.capacity = kv->capacity, k.n_seqs = kv->n_seqs;
    k.k = kv->k, k.v = kv->v, k.logits = m->logits_buf;
    return k;
}

static int decode_graph_same(const rlc_decode_graph *a, const rlc_decode_graph *b) {
    return a->used && b->used && a->n == b->n && a->capacity == b->capacity && a->n_seqs == b->n_seqs &&
           a->k == b->k && a->v == b->v && a->logits == b->logits;
}

// The decode step's device work, through a graph when the backend has them: replays the graph recorded for this
// key; records one when the two steps before had the same key (a batch size that holds: a recording costs about
// as much host time as a few direct steps, so a key that changes every step or two, as a batch shrinks at the
// end of a rollout, is not worth one); else runs directly.
static void decode_device(rlc_model *m, rlc_kv_cache *kv, int n, const int *rows) {
    const rlc_ops *o = m->ops;
    if (!o->graph_begin || m->graphs_off) {
        forward_cached_device(m, kv, n, rows, n);
        m->graph_stats.direct++;
        return;
    }
    const rlc_decode_graph key = decode_graph_key(m, kv, n);
    m->graph_streak = decode_graph_same(&key, &m->graph_prev) ? m->graph_streak + 1 : 0;
    const int repeat = m->graph_streak >= 2;
    m->graph_prev = key;
    m->graph_clock++;
    rlc_decode_graph *hit = NULL;
    for (int i = 0; i < RLC_DECODE_GRAPHS && !hit; i++)
        if (decode_graph_same(&m->graphs[i], &key)) hit = &m->graphs[i];
    if (hit && hit->graph) {
        if (o->graph_launch(hit->graph) == 0) {
            hit->last = m->graph_clock;
            m->graph_stats.replayed++;
            return;
        }
        o->graph_free(hit->graph); // it can no longer run as recorded: forget the key, record it again later
        memset(hit, 0, sizeof *hit);
        hit = NULL;
    }
    if (!hit && repeat && o->graph_begin() == 0) {
        forward_cached_device(m, kv, n, rows, n);
        void *g = o->graph_end();
        rlc_decode_graph *e = &m->graphs[0]; // a free entry, else the least recently used one
        for (int i = 0; i < RLC_DECODE_GRAPHS; i++) {
            if (!m->graphs[i].used) {
                e = &m->graphs[i];
                break;
            }
            if (m->graphs[i].last < e->last) e = &m->graphs[i];
        }
        if (e->graph) o->graph_free(e->graph);
        *e = key;
        e->graph = g; // NULL: a call needed the host; this key runs directly from now on
        e->last = m->graph_clock;
        if (!g) m->graph_stats.refused++;
        if (g && o->graph_launch(g) == 0) {
            m->graph_stats.recorded++;
            return;
        }
    }
    forward_cached_device(m, kv, n, rows, n);
    m->graph_stats.direct++;
}

// n tokens, token i goes to slot slots[i] at position kv->len[slot] (+ earlier tokens of the same slot in
// this call). Computes the logits of the rows listed in `out_rows` (n_out of them) into m->logits_buf (n_out, V)
// (backend memory) and returns it; logits_out (host) receives a copy when non-NULL. decode: out_rows is
// 0..n-1 (a decode step: graphs may run it).
static const rlc_f *forward_cached(rlc_model *m, rlc_kv_cache *kv, const int *slots, const int *tokens, int n,
                                   const int *out_rows, int n_out, rlc_f *logits_out, int decode) {
    const rlc_ops *o = m->ops;
    const rlc_model_config *c = &m->cfg;
    int V = c->vocab_size;
    RLC_CHECK(n >= 1 && n <= m->max_tokens, "cached forward: %d tokens, model sized for %d", n, m->max_tokens);
    RLC_CHECK(o->act_bytes == m->act_bytes, "cached forward: the backend's activations are %zu bytes, the model's "
              "%zu (its precision mode changed after the model was allocated)", o->act_bytes, m->act_bytes);
    int *pos = rlc_malloc((size_t)n * sizeof(int)), *kvlen = rlc_malloc((size_t)n * sizeof(int));
    int *next = rlc_malloc((size_t)kv->n_seqs * sizeof(int));
    memcpy(next, kv->len, (size_t)kv->n_seqs * sizeof(int));
    for (int i = 0; i < n; i++) {
        int s = slots[i];
        RLC_CHECK(s >= 0 && s < kv->n_seqs, "cached forward: slot %d outside 0..%d", s, kv->n_seqs - 1);
        RLC_CHECK(next[s] < kv->capacity && next[s] < c->max_seq_len,
                  "cached forward: slot %d full (%d tokens, capacity %d, max_seq_len %d)", s, next[s],
                  kv->capacity, c->max_seq_len);
        RLC_CHECK(tokens[i] >= 0 && tokens[i] < V, "cached forward: token %d outside vocab %d", tokens[i], V);
        pos[i] = next[s]++;
        kvlen[i] = pos[i] + 1;
    }
    o->upload(m->tokens, tokens, (size_t)n * sizeof(int));
    o->upload(m->pos, pos, (size_t)n * sizeof(int));
    o->upload(m->slot_buf, slots, (size_t)n * sizeof(int));
    o->upload(m->kvlen_buf, kvlen, (size_t)n * sizeof(int));
    if (n_out > 0 && m->logits_cap < n_out) { // before the device work: a graph records the buffer's address
        if (m->logits_buf) o->free(m->logits_buf);
        m->logits_buf = alloc_f(o, (size_t)n_out * V);
        m->logits_cap = n_out;
    }
    if (decode) decode_device(m, kv, n, out_rows);
    else forward_cached_device(m, kv, n, out_rows, n_out);
    memcpy(kv->len, next, (size_t)kv->n_seqs * sizeof(int));
    if (n_out > 0 && logits_out) o->download(logits_out, m->logits_buf, (size_t)n_out * V * sizeof(rlc_f));
    free(pos);
    free(kvlen);
    free(next);
    return m->logits_buf;
}

const rlc_f *rlc_model_prefill(rlc_model *m, rlc_kv_cache *kv, int slot, const int *tokens, int n,
                               rlc_f *logits_out) {
    int *slots = rlc_malloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) slots[i] = slot;
    int last = n - 1;
    const rlc_f *logits = forward_cached(m, kv, slots, tokens, n, &last, 1, logits_out, 0);
    free(slots);
    return logits;
}

const rlc_f *rlc_model_decode(rlc_model *m, rlc_kv_cache *kv, const int *slots, const int *tokens, int n,
                              rlc_f *logits_out) {
    int *rows = rlc_malloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) rows[i] = i;
    const rlc_f *logits = forward_cached(m, kv, slots, tokens, n, rows, n, logits_out, 1);
    free(rows);
    return logits;
}
