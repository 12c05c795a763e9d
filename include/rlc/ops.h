// include/rlc/ops.h: the operation table. Every numerical operation the model, the optimizer and the losses
// need, with shapes. Backends (kernels/cpu, kernels/cuda) fill one rlc_ops each; host code calls only
// through the table, never a backend function directly.
//
// Conventions
// - T = tokens in a packed batch (sequences concatenated, no padding), B = sequences, cu_seqlens (B+1) with
//   cu_seqlens[0] = 0 and cu_seqlens[B] = T. C = model width, NH / NKV = query / key-value heads, HD = head
//   dim, F = MLP hidden width, V = vocabulary.
// - Row-major everywhere. Weights are stored (out_features, in_features) as in PyTorch/HF.
// - "accumulate" means the op adds into its output (gradients accumulate over micro-batches).
// - rlc_f is float in the engine; the gradient-check build compiles the CPU kernels once more with
//   -DRLC_F64 where rlc_f is double.
// - Pointers are backend memory (host memory for the CPU backend, device memory for CUDA); int arrays
//   (tokens, positions, cu_seqlens) too.
// - Activations (rlc_act) are stored in the backend's activation type, ops->act_bytes bytes an element: rlc_f on
//   the CPU backend, bf16 in the CUDA backend's mixed-precision mode (fp32 in its fp32 mode). What is an rlc_act:
//   the outputs and inputs of the projections (norm outputs, q, k, v, attention outputs, MLP gates and
//   activations), the KV cache, and their gradients. What stays rlc_f whatever the backend: the residual stream
//   and its gradient (precision where every layer adds into it), norm statistics, log-sum-exps, log-probs,
//   entropies, losses, logits that are sampled or read on the host, parameters, gradients, optimizer state.
//   Offsets into an activation buffer go through rlc_act_at (element size known only at run time).

#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef RLC_F64
typedef double rlc_f;
#else
typedef float rlc_f;
#endif

// An activation buffer: elements of ops->act_bytes bytes (see the conventions above). void, so that pointer
// arithmetic on it does not compile (-Wpointer-arith -Werror): use rlc_act_at.
typedef void rlc_act;

// Memory of a backend as its allocator sees it (rlc_ops.mem_info). Every figure is in bytes.
typedef struct rlc_mem_info {
    size_t free;   // what a new allocation can still get now: the device's (CUDA: cudaMemGetInfo) or the host's
                   // (CPU: MemAvailable of /proc/meminfo) free memory, and at most limit - in_use under a limit
    size_t total;  // the device's or the host's memory (the limit, when one is set and smaller)
    size_t in_use; // held now through alloc / try_alloc (CUDA: plus the backend's own workspace)
    size_t peak;   // the largest in_use since the process started
    size_t limit;  // the cap (set_mem_limit or RLC_MEM_LIMIT_MB), 0 = none
} rlc_mem_info;
struct rlc_sampling;   // include/rlc/sample.h
struct rlc_sample_key; // include/rlc/sample.h

// One tensor of adamw_multi's table.
typedef struct rlc_adamw_tensor {
    size_t offset, numel; // elements, into the flat buffers
    float wd;             // weight decay (0: none)
} rlc_adamw_tensor;

typedef struct rlc_ops {
    const char *name; // "cpu", "cuda"
    // Bytes of one rlc_act element: sizeof(rlc_f) (CPU; CUDA fp32 mode) or 2 (bf16, CUDA mixed precision). A
    // buffer allocated under one value must not be used after the backend's mode changed it.
    size_t act_bytes;

    // ---- memory ----
    // Zero-filled. Ends the process with a message (bytes requested and available) when the memory is not there.
    void *(*alloc)(size_t bytes);
    // The same, but NULL (and nothing printed) when the memory is not there: over the limit, or refused by the
    // device / host allocator. For callers that report what the memory was for (model, KV cache).
    void *(*try_alloc)(size_t bytes);
    void (*free)(void *p);
    void (*mem_info)(rlc_mem_info *info);
    // Cap the bytes the backend holds at once (alloc / try_alloc refuse beyond it; 0 = no cap), so that running
    // out of memory can be tested on any machine. The environment variable RLC_MEM_LIMIT_MB (MiB, a positive
    // number) sets the initial cap of every backend. Process-wide, like the backend.
    void (*set_mem_limit)(size_t bytes);
    void (*upload)(void *dst, const void *src_host, size_t bytes);   // host -> backend
    void (*download)(void *dst_host, const void *src, size_t bytes); // backend -> host
    void (*zero)(void *p, size_t bytes);
    void (*copy)(void *dst, const void *src, size_t bytes); // backend -> backend

    // Conversions between rlc_f and the activation type (round to nearest even into bf16). (N)
    void (*act_from_f)(rlc_act *dst, const rlc_f *src, size_t n);
    void (*act_to_f)(rlc_f *dst, const rlc_act *src, size_t n);

    // ---- elementwise / small ----
    // out = a + b (N): a projection's output b added to the residual stream a (out may be a).
    void (*add)(rlc_f *out, const rlc_f *a, const rlc_act *b, size_t n);
    // x *= s. (N)
    void (*scale)(rlc_f *x, rlc_f s, size_t n);
    // sum of squares of x (N), returned in double.
    double (*sumsq)(const rlc_f *x, size_t n);

    // ---- embedding ----
    // out (T,C) = wte (V,C) [tokens (T)]
    void (*embedding_forward)(rlc_f *out, const int *tokens, const rlc_f *wte, int T, int C);
    // dwte (V,C) += scatter of dout (T,C) by tokens (accumulate; deterministic order)
    void (*embedding_backward)(rlc_f *dwte, const rlc_f *dout, const int *tokens, int T, int C);

    // ---- linear ----
    // out (T,OC) = inp (T,C) @ w (OC,C)^T + bias (OC, may be NULL)
    void (*matmul_forward)(rlc_act *out, const rlc_act *inp, const rlc_f *w, const rlc_f *bias, int T, int C,
                           int OC);
    // The same product with an rlc_f output: the LM head's logits for sampling or the host, the value head.
    void (*logits_forward)(rlc_f *out, const rlc_act *inp, const rlc_f *w, const rlc_f *bias, int T, int C,
                           int OC);
    // dinp (T,C) += dout @ w (NULL: skip); dw (OC,C) += dout^T @ inp (NULL: skip); dbias (OC) += sum_t dout
    // (NULL: skip).
    void (*matmul_backward)(rlc_act *dinp, rlc_f *dw, rlc_f *dbias, const rlc_act *dout, const rlc_act *inp,
                            const rlc_f *w, int T, int C, int OC);

    // ---- RMSNorm ----
    // out (T,C) = inp * rstd * weight (C), rstd (T) = 1/sqrt(mean(inp^2) + eps) saved for the backward.
    // inp is the residual stream (rlc_f), out an activation.
    void (*rmsnorm_forward)(rlc_act *out, rlc_f *rstd, const rlc_f *inp, const rlc_f *weight, float eps, int T,
                            int C);
    // dinp (T,C) += ..., dweight (C) += ... (accumulate both); dinp is the residual stream's gradient (rlc_f).
    void (*rmsnorm_backward)(rlc_f *dinp, rlc_f *dweight, const rlc_act *dout, const rlc_f *inp,
                             const rlc_f *weight, const rlc_f *rstd, int T, int C);
    // The residual add fused with the next norm: x (T,C) = a + b (add's semantics; x may be a), then
    // rmsnorm_forward(out, rstd, x, weight). One pass over the rows instead of two ops (the backward's residual add
    // is rmsnorm_backward's accumulation into dinp).
    void (*add_rmsnorm_forward)(rlc_f *x, rlc_act *out, rlc_f *rstd, const rlc_f *a, const rlc_act *b,
                                const rlc_f *weight, float eps, int T, int C);

    // ---- RoPE (rotate-half convention of HF Llama/Qwen2) ----
    // x (T,H,HD) rotated in place by position pos[t]: for i < HD/2, freq_i = theta^(-2i/HD), angle = pos*freq_i,
    // (x_i, x_{i+HD/2}) <- (x_i cos - x_{i+HD/2} sin, x_{i+HD/2} cos + x_i sin).
    void (*rope_forward)(rlc_act *x, const int *pos, int T, int H, int HD, float theta);
    // dx (T,H,HD) in place: the transpose (rotation by -angle).
    void (*rope_backward)(rlc_act *dx, const int *pos, int T, int H, int HD, float theta);

    // ---- attention: causal inside each packed sequence, GQA (query head h reads kv head h / (NH/NKV)) ----
    // out (T,NH,HD), lse (T,NH) = log-sum-exp of each row of scaled scores (saved for the backward);
    // q (T,NH,HD), k (T,NKV,HD), v (T,NKV,HD); scale = 1/sqrt(HD). Never materialises T x T.
    void (*attention_forward)(rlc_act *out, rlc_f *lse, const rlc_act *q, const rlc_act *k, const rlc_act *v,
                              const int *cu_seqlens, int B, int T, int NH, int NKV, int HD);
    // dq (T,NH,HD), dk, dv (T,NKV,HD): overwritten (not accumulated). Recomputes probabilities from lse.
    void (*attention_backward)(rlc_act *dq, rlc_act *dk, rlc_act *dv, const rlc_act *dout, const rlc_act *q,
                               const rlc_act *k, const rlc_act *v, const rlc_act *out, const rlc_f *lse,
                               const int *cu_seqlens, int B, int T, int NH, int NKV, int HD);
    // Decode: one query per row against a KV cache. k_cache, v_cache (n_slots, cap, NKV, HD) for one layer;
    // query row b (of B) reads rows 0..kv_len[b]-1 of slot slot[b] (its own K/V already appended; the query
    // sits at position kv_len[b]-1). q (B,NH,HD), out (B,NH,HD). Several rows may read the same slot with
    // different kv_len (prefill of a prompt). slot and kv_len are backend int arrays.
    void (*attention_decode)(rlc_act *out, const rlc_act *q, const rlc_act *k_cache, const rlc_act *v_cache,
                             const int *slot, const int *kv_len, int B, int cap, int NH, int NKV, int HD);
    // Bytes of backend memory attention_decode may take per query row, beyond the cache, when rows read up to
    // cap positions (a call with B rows takes at most B times this): staging copies and split partials. The
    // rollout engine sizes its waves with it (host/rollout.c, rlc_rollout_seq_bytes).
    size_t (*attention_decode_scratch)(int cap, int NH, int NKV, int HD);
    // KV-cache append for one layer: row i of k_new, v_new (n, NKV, HD) goes to position pos[i] of slot slot[i] of
    // k_cache, v_cache (n_slots, cap, NKV, HD), 0 <= pos[i] < cap (the caller checks). slot and pos are backend int
    // arrays (n); no two rows name the same (slot, pos). One launch for a whole decode step or prefill.
    void (*kv_append)(rlc_act *k_cache, rlc_act *v_cache, const rlc_act *k_new, const rlc_act *v_new,
                      const int *slot, const int *pos, int n, int cap, int NKV, int HD);

    // ---- SwiGLU MLP activation ----
    // out (N) = silu(gate) * up, N = T*F
    void (*swiglu_forward)(rlc_act *out, const rlc_act *gate, const rlc_act *up, size_t n);
    // dgate, dup (N) overwritten from dout (N)
    void (*swiglu_backward)(rlc_act *dgate, rlc_act *dup, const rlc_act *dout, const rlc_act *gate,
                            const rlc_act *up, size_t n);

    // ---- fused log-prob / entropy over the LM head (spec: ../shared/spec/losses.md section 1) ----
    // With u = (hidden (T,C) @ w (V,C)^T) / tau: logp (T) = u[target] - lse, entropy (T) = lse - sum p*u,
    // lse (T) saved for the backward. Walks tokens and vocabulary in chunks with an online max / sum of
    // exponentials / sum of p*u: extra memory O(chunk), never T x V. targets < 0: logp = 0 (entropy still
    // computed).
    void (*logprob_forward)(rlc_f *logp, rlc_f *entropy, rlc_f *lse, const rlc_act *hidden, const rlc_f *w,
                            const int *targets, int T, int C, int V, float tau);
    // Backward with per-token coefficients dlogp = dL/dlogp (T) and dent = dL/dH (T):
    // dL/dz_j = (dlogp * (1[j==y] - p_j) - dent * p_j * (log p_j + H)) / tau, recomputing each chunk's logits.
    // dhidden (T,C) += dz @ w; dw (V,C) += dz^T @ hidden (NULL: skip).
    void (*logprob_backward)(rlc_act *dhidden, rlc_f *dw, const rlc_f *dlogp, const rlc_f *dent,
                             const rlc_act *hidden, const rlc_f *w, const int *targets, const rlc_f *lse,
                             const rlc_f *entropy, int T, int C, int V, float tau);

    // ---- sampling (the rollout engine's next token; spec: rlc_sample_token in include/rlc/sample.h) ----
    // Row i (i < n) of logits (row stride ld elements; ld = 0: all n rows read the same V logits) gives tok[i],
    // logp[i], ent[i] as rlc_sample_token(logits + i*ld, V, s, u_i) with u_i = 0 when greedy, else
    // rlc_rng_uniform(seed, step, keys[i].prompt_id, keys[i].sample_id, keys[i].position, 0). logits are backend
    // memory; keys (n) and the outputs tok, logp, ent (n; logp and ent may be NULL) are HOST arrays, so only the
    // n results cross to the host. The CPU backend is rlc_sample_token itself; a device backend may pick another
    // token only where u * total lies within rounding distance of a cumulative boundary (see the backend).
    void (*sample_tokens)(int *tok, float *logp, float *ent, const rlc_f *logits, size_t ld, int n, int V,
                          const struct rlc_sampling *s, const struct rlc_sample_key *keys, uint64_t seed,
                          uint64_t step);

    // ---- optimizer ----
    // AdamW on one tensor (N): m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; bias-corrected with step t (>= 1);
    // p -= lr * (mhat / (sqrt(vhat) + eps) + wd * p) (decoupled weight decay). grad_scale multiplies g first
    // (global-norm clipping).
    void (*adamw_update)(rlc_f *p, const rlc_f *g, rlc_f *m, rlc_f *v, size_t n, float lr, float b1, float b2,
                         float eps, float wd, float grad_scale, int t);

    // ---- bf16 working weights and the multi-tensor optimizer (NULL in the CPU table) ----
    // The model registers its flat fp32 parameter buffer (n elements; the fp32 master copy) once after allocating
    // it. A backend with bf16 working weights (CUDA) then keeps a bf16 copy of the whole buffer that is refreshed
    // by every write into the range through this table (upload, copy, zero, add, scale, adamw_update,
    // adamw_multi) and reads the weight operand of matmul_* / logprob_* from it when that operand lies inside the
    // buffer (no per-call conversion of weights). free of the buffer unregisters it. Registering the same buffer
    // again refreshes the whole copy.
    void (*register_params)(const rlc_f *params, size_t n);
    // [p, p + n) of a registered buffer was written without this table (a device collective wrote into it):
    // refresh the bf16 copy of that range. No-op outside registered buffers.
    void (*params_written)(const rlc_f *p, size_t n);
    // AdamW on every tensor of one flat buffer in one launch: tensor i is [offset, offset + numel) of p, g, m and
    // v with weight decay wd (a host array; the backend keeps a device copy and uploads it again only when it
    // changes). The math of adamw_update per tensor (grad_scale: the global-norm clip scale); when p is a
    // registered buffer the bf16 copy of the updated weights is written in the same pass. NULL: the caller runs
    // adamw_update per tensor.
    void (*adamw_multi)(rlc_f *p, const rlc_f *g, rlc_f *m, rlc_f *v, const rlc_adamw_tensor *tensors,
                        int n_tensors, float lr, float b1, float b2, float eps, float grad_scale, int t);

    // ---- graphs: record a fixed sequence of calls once, replay it (NULL in the CPU table) ----
    // A decode step is ~15 small launches per layer; on a GPU the host's time to issue them can exceed the
    // device's time to run them. Between graph_begin() == 0 and graph_end(), the entries called on this thread
    // are recorded, not run (their arguments, pointers included, are fixed at recording; the memory they read
    // is read when the graph runs). graph_begin returns -1 when the backend cannot record now (disabled,
    // profiling): the caller runs the calls directly. graph_end returns the graph, or NULL when some call in
    // between needed the host (a download, a synchronisation, a workspace that had to grow): nothing ran, and
    // the caller runs the calls directly. graph_launch runs a graph in stream order after the work before it and
    // returns 0, or -1 when the graph can no longer run as recorded (the backend moved a buffer it uses, e.g.
    // its workspace grew, or profiling started): the caller frees it and runs the calls directly. Host-side
    // effects of the entries (argument checks, plans) happen at recording only, so a caller records only calls
    // whose host side is the same every time, with the same arguments.
    int (*graph_begin)(void);
    void *(*graph_end)(void);
    int (*graph_launch)(void *graph);
    void (*graph_free)(void *graph);
} rlc_ops;


// Element i of an activation buffer of backend o.
static inline rlc_act *rlc_act_at(const rlc_ops *o, const rlc_act *p, size_t i) {
    return (rlc_act *)((const char *)p + i * o->act_bytes);
}

// The CPU backend (kernels/cpu). Always available.
const rlc_ops *rlc_ops_cpu(void);
