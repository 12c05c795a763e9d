// include/rlc/model.h: the decoder-only transformer (Llama / Qwen2 family) on token-packed batches.
// Owns the parameter table (HF tensor names and shapes), parameters, gradients, activations for one
// micro-batch, and the forward/backward passes written on the op table. The KV-cache decode path used by
// the rollout engine lives here too.
#pragma once
#include <stddef.h>
#include "rlc/ops.h"

typedef struct rlc_model_config {
    int vocab_size;     // V
    int dim;            // C (hidden_size)
    int n_layers;       // L
    int n_heads;        // NH
    int n_kv_heads;     // NKV, divides NH
    int head_dim;       // HD (usually C / NH)
    int hidden_dim;     // F (intermediate_size)
    int max_seq_len;    // longest sequence (prompt + response)
    float rms_eps;      // RMSNorm epsilon
    float rope_theta;   // RoPE base
    int qkv_bias;       // 1: q/k/v projections have biases (Qwen2)
    int tie_embeddings; // 1: LM head shares embed_tokens
    int value_head;     // 1: scalar value head on the final hidden state (PPO critic), "value_head.weight/bias"
} rlc_model_config;

// One parameter tensor: HF name, shape, and where it lives in the flat parameter buffer.
typedef struct rlc_tensor_info {
    char name[96];
    int ndim;
    int shape[2];
    size_t offset; // in elements, into params / grads
    size_t numel;
    int no_decay; // norms and biases: no weight decay by default
} rlc_tensor_info;

// Per-layer parameter pointers into the flat buffer (same layout for params and grads).
typedef struct rlc_layer_params {
    rlc_f *ln1;                   // (C)   input_layernorm.weight
    rlc_f *wq, *wk, *wv;          // (NH*HD, C), (NKV*HD, C), (NKV*HD, C)
    rlc_f *bq, *bk, *bv;          // (NH*HD), (NKV*HD), (NKV*HD) or NULL
    rlc_f *wo;                    // (C, NH*HD)
    rlc_f *ln2;                   // (C)   post_attention_layernorm.weight
    rlc_f *wgate, *wup;           // (F, C)
    rlc_f *wdown;                 // (C, F)
} rlc_layer_params;

typedef struct rlc_param_ptrs {
    rlc_f *embed;        // (V, C)
    rlc_layer_params *layers;
    rlc_f *norm;         // (C)
    rlc_f *lm_head;      // (V, C); == embed when tied
    rlc_f *value_w;      // (1, C) or NULL
    rlc_f *value_b;      // (1) or NULL
} rlc_param_ptrs;

// Activations saved by the forward for the backward, sized for max_tokens (T) per micro-batch. rlc_act buffers
// hold the backend's activation type (ops->act_bytes per element: fp32 on the CPU, bf16 in the CUDA backend's
// mixed precision); the residual stream (x_in, x_mid, x_final) and the statistics stay rlc_f.
typedef struct rlc_layer_acts {
    rlc_f *x_in;     // (T, C)   residual stream entering the layer
    rlc_act *ln1;    // (T, C)
    rlc_f *rstd1;    // (T)
    rlc_act *q;      // (T, NH, HD) after RoPE
    rlc_act *k;      // (T, NKV, HD) after RoPE
    rlc_act *v;      // (T, NKV, HD)
    rlc_act *att;    // (T, NH, HD)
    rlc_f *lse;      // (T, NH)
    rlc_f *x_mid;    // (T, C)   residual after attention
    rlc_act *ln2;    // (T, C)
    rlc_f *rstd2;    // (T)
    rlc_act *gate;   // (T, F)
    rlc_act *up;     // (T, F)
    rlc_act *act;    // (T, F)
} rlc_layer_acts;

// A decode step recorded through the ops table's graph entries (include/rlc/ops.h) and the shapes and buffers it
// was recorded with: it is replayed only for a step with the same ones.
typedef struct rlc_decode_graph {
    int used;                 // the entry holds a key
    void *graph;              // the backend's graph; NULL: this key could not be recorded (not tried again)
    int n, capacity, n_seqs;  // rows of the step, the cache's shape
    const void *k, *v, *logits; // the cache's buffers and the logits rows
    unsigned long long last;  // the step that last used it (the least recent entry is replaced)
} rlc_decode_graph;
#define RLC_DECODE_GRAPHS 8

// How rlc_model_decode's steps ran (backends with graphs).
typedef struct rlc_decode_graph_stats {
    long long replayed; // steps that launched a recorded graph
    long long recorded; // steps recorded, then launched
    long long direct;   // steps whose calls ran directly (no graphs, a shape not yet held, or refused)
    long long refused;  // recordings discarded because a call needed the host (their steps ran directly)
} rlc_decode_graph_stats;

typedef struct rlc_model {
    rlc_model_config cfg;
    const rlc_ops *ops;
    int n_tensors;
    rlc_tensor_info *tensors; // (n_tensors)
    size_t n_params;
    rlc_f *params;            // (n_params) flat
    rlc_f *grads;             // (n_params) flat, accumulated by backward
    rlc_param_ptrs p, g;      // pointers into params / grads
    // activations, sized for max_tokens
    int max_tokens;
    size_t act_bytes;         // ops->act_bytes when the buffers were allocated (checked by every forward)
    rlc_layer_acts *acts;     // (L)
    rlc_f *x_final;           // (T, C) residual stream after the last layer
    rlc_f *rstdf;             // (T)
    rlc_act *hidden;          // (T, C) after the final norm: input of the LM head and of the value head
    rlc_f *values;            // (T) value-head output (when enabled)
    rlc_f *lp_lse;            // (T) saved by rlc_model_logprobs for the backward
    rlc_f *lp_logp, *lp_ent;  // (T)
    int *lp_targets;          // (T)
    float lp_tau;
    int *tokens;              // (T) input tokens of the last forward
    int *pos;                 // (T) positions restart at 0 in each sequence
    int *cu_seqlens;          // (max_tokens + 1)
    int T, B;                 // shape of the last forward
    // scratch for the backward, sized for max_tokens
    rlc_f *dx;                                                   // (T, C) gradient of the residual stream
    rlc_act *dln, *dq, *dk, *dv, *datt, *dgate, *dup, *dact, *tmpC; // (T, C|NH*HD|NKV*HD|F)
    rlc_f *dlogp_buf, *dent_buf, *dval_buf;                      // (T)
    rlc_act *dval_act;                                           // (T) dval_buf in the activation type
    rlc_f *logits_buf;        // (logits_cap, V) inference logits (backend memory), returned by prefill / decode
    int logits_cap;
    int *slot_buf, *kvlen_buf; // (max_tokens) scratch for cached inference
    // Gradient-ready hook (NULL: none, as on CPU ranks; set from rlc_dist.dev by rlc_rl_set_dist). In a backward
    // armed by rlc_model_arm_grad_ready, grad_ready(grad_ready_ctx, grads, n_params, first) is called each time
    // grads[first, n_params) have become final: after the final norm (the flat layout ends with the final norm,
    // the LM head and the value head), after each layer (last to first) and after the embedding (first = 0).
    void (*grad_ready)(void *ctx, rlc_f *grads, size_t n, size_t first);
    void *grad_ready_ctx;
    int grad_armed;           // set by rlc_model_arm_grad_ready, cleared by the backward
    // Decode steps as graphs (backends with ops->graph_begin): a step whose key (rows, cache, logits buffer) is
    // that of the two steps before is recorded once and replayed from then on; other steps run directly, so a
    // batch that shrinks every step or two (sequences ending) costs no recordings.
    rlc_decode_graph graphs[RLC_DECODE_GRAPHS];
    rlc_decode_graph graph_prev; // the previous decode step's key
    int graph_streak;         // steps before this one in a row with graph_prev's key
    unsigned long long graph_clock;
    rlc_decode_graph_stats graph_stats;
    int graphs_off;           // 1: every step runs directly (rlc_model_set_decode_graphs)
} rlc_model;

// Check a config (dims divisible, positive sizes); returns 0 or -1 with a message in err.
int rlc_model_config_check(const rlc_model_config *cfg, char *err, size_t errlen);
// Allocate parameters, gradients and activations for up to max_tokens tokens per forward. Returns -1 after
// printing why (a bad config, or "rlc: model <what>: cannot allocate N bytes (M available)" when the backend
// has not the memory).
int rlc_model_init(rlc_model *m, const rlc_model_config *cfg, const rlc_ops *ops, int max_tokens);
// Backend memory rlc_model_init allocates for cfg and max_tokens with activations of act_bytes bytes
// (ops->act_bytes), in bytes: parameters, gradients, activations and scratch (each out-pointer may be NULL);
// returns their sum. Cached inference allocates its logits rows (rows x vocab x sizeof(rlc_f)) on first use, on
// top of this.
size_t rlc_model_bytes(const rlc_model_config *cfg, int max_tokens, size_t act_bytes, size_t *params,
                       size_t *grads, size_t *acts);
void rlc_model_free(rlc_model *m);
// Decode steps as graphs on (1, the default) or off (0: every step runs its calls directly); off frees the
// recorded graphs. Counts of how the steps ran since the model was made.
void rlc_model_set_decode_graphs(rlc_model *m, int on);
rlc_decode_graph_stats rlc_model_decode_graph_stats(const rlc_model *m);
// Deterministic init from a seed: normal(0, 0.02) for matrices (output projections scaled by
// 1/sqrt(2L)), ones for norms, zeros for biases.
void rlc_model_init_weights(rlc_model *m, uint64_t seed);
const rlc_tensor_info *rlc_model_find_tensor(const rlc_model *m, const char *name);
void rlc_model_zero_grad(rlc_model *m);

// Forward over a packed batch: tokens (T), cu_seqlens (B+1). Fills hidden (T,C) (and values when enabled).
void rlc_model_forward(rlc_model *m, const int *tokens, const int *cu_seqlens, int B, int T);
// After forward: per-token log-prob of targets (T) (target < 0: ignored) and entropy at temperature tau.
// logp, ent (T) are host arrays (may be NULL).
void rlc_model_logprobs(rlc_model *m, const int *targets, float tau, rlc_f *logp, rlc_f *ent);
// Backward from per-token coefficients dlogp = dL/dlogp (T), dent = dL/dH (T) (NULL = zeros) and, when the
// value head is enabled, dvalue = dL/dvalue (T) (NULL = zeros). Accumulates into grads.
void rlc_model_backward(rlc_model *m, const rlc_f *dlogp, const rlc_f *dent, const rlc_f *dvalue);
// The next rlc_model_backward is the last one of an optimizer step (its gradients are final when it returns):
// it reports them through grad_ready as they become final, so their reduction over ranks can start while the
// backward continues. Call it before the last micro-batch's backward only; no effect without a hook.
void rlc_model_arm_grad_ready(rlc_model *m);
// Full logits (T, V) of the last forward (for tests and small vocabularies only).
void rlc_model_logits(rlc_model *m, rlc_f *logits);

// ---- KV-cache inference for the rollout engine ----
typedef struct rlc_kv_cache {
    int n_seqs;       // slots
    int capacity;     // tokens per slot
    rlc_act *k, *v;   // (L, n_seqs, capacity, NKV, HD) in the activation type
    int *len;         // (n_seqs) tokens already in each slot
} rlc_kv_cache;
// Bytes of a cache of n_seqs slots of capacity tokens (K and V, every layer) with act_bytes per element
// (ops->act_bytes).
size_t rlc_kv_cache_bytes(const rlc_model_config *cfg, int n_seqs, int capacity, size_t act_bytes);
// 0, or -1 (nothing allocated, nothing printed) when the sizes are not positive or the backend has not the memory.
int rlc_kv_cache_init(rlc_kv_cache *kv, const rlc_model *m, int n_seqs, int capacity);
void rlc_kv_cache_free(rlc_kv_cache *kv, const rlc_model *m);
// Copy slot src's cache into slot dst (shared prompt prefill across a group's samples).
void rlc_kv_cache_copy_slot(rlc_kv_cache *kv, const rlc_model *m, int dst, int src);
// Prefill slot `slot` with n tokens (appends to the slot). Returns the last token's logits (V) in backend memory
// (m->logits_buf: valid until the next prefill/decode); logits_out (host) receives a copy when non-NULL.
const rlc_f *rlc_model_prefill(rlc_model *m, rlc_kv_cache *kv, int slot, const int *tokens, int n,
                               rlc_f *logits_out);
// One decode step for n sequences: token[i] is appended to slot[i]. Returns the logits (n, V) in backend memory
// (m->logits_buf, as above); logits_out (host) receives a copy when non-NULL. On a backend with graphs the
// step's device work is recorded the second time its shape repeats and replayed after that (m->graphs); the
// results are bitwise those of running it directly (host/model.c decode_device: the third step in a row with the
// same rows and cache is recorded).
const rlc_f *rlc_model_decode(rlc_model *m, rlc_kv_cache *kv, const int *slots, const int *tokens, int n,
                              rlc_f *logits_out);
