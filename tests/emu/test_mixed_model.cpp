// tests/emu/test_mixed_model.cpp: the model's memory on the CUDA backend in each precision mode, and what keeps a
// model and the backend's precision mode consistent. Under the emulator (ctest label emu) the backend is the
// emulated rlc_cuda_emu; tests/gpu/test_mixed_model.cpp builds the same file for a GPU.
//   1. Death tests, each in a child forked before this process touches the device (a forked child must not
//      inherit a CUDA context): a model allocated in one mode refuses to run after rlc_ops_cuda_set_precision
//      changed the mode, in the training forward ("forward: the backend's activations are 4 bytes, the model's
//      2") and in the cached forward of the rollouts ("cached forward: ... 2 bytes, the model's 4"); a bad
//      RLC_CUDA_PRECISION is refused with the values it takes.
//   2. Memory, in every mode (fp32, bf16-gemm, mixed): what rlc_model_init takes from the backend (mem_info's
//      in_use before and after) is exactly rlc_model_bytes(cfg, T, GPU->act_bytes) plus the bf16 working copy of
//      the parameters (2 bytes each, register_params). The backend counts each cudaMalloc at its requested size
//      (at least 1 byte) and no model buffer is empty, so there is no allocator rounding to allow for; the model's
//      free gives all of it back. rlc_rl_init takes exactly the budget it checks before allocating (policy and
//      reference model with their bf16 copies, AdamW moments). A KV cache takes rlc_kv_cache_bytes = 2 L slots cap
//      NKV HD act_bytes. Across modes: parameters and gradients are the same, the KV cache is half as large in
//      mixed precision (2-byte activations) and the activations shrink by 2 bytes per activation-typed element
//      (the residual stream and the statistics stay fp32; tests/test_memory.c counts those elements from the
//      shapes).
//   3. rlc_ops_cuda_release keeps the precision mode: a model allocated in fp32 mode still runs its forward after
//      a release and a restart (the restart used to reset the mode to the default, mixed).
//   4. (emulator only) A decode step in mixed precision never waits for the device: rlc_model_decode returns with
//      all of its work still queued (the emulator's deferred mode runs no queued operation during the call), so on
//      a GPU the host enqueues the next step while the device runs this one. Its logits equal an eager run's.
// The model has head dim 64 (dim 128, 2 query heads, 1 KV head, MLP 200, q/k/v biases, untied LM head, a value
// head: every buffer of rlc_model_init), max_tokens 100, a KV cache of 3 slots of 40 tokens.
#define _Noreturn [[noreturn]] // C11 spelling in the C headers below
extern "C" {
#include "rlc/config.h"
#include "rlc/model.h"
#include "rlc/rl.h"
#include "rlc/task.h"
}
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

#include "ops_cuda.h"
#ifdef RLC_EMU
#include "rlc_cuda.h"
#endif
#include "test_common.h"
#include "test_util.h"

static const rlc_ops *GPU;
static const int T_MAX = 100, SLOTS = 3, CAP = 40;

static rlc_model_config model_cfg() {
    rlc_model_config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = 98, c.dim = 128, c.n_layers = 2, c.n_heads = 2, c.n_kv_heads = 1, c.head_dim = 64;
    c.hidden_dim = 200, c.max_seq_len = CAP, c.rms_eps = 1e-5f, c.rope_theta = 10000.0f;
    c.qkv_bias = 1, c.tie_embeddings = 0, c.value_head = 1;
    return c;
}

static size_t in_use() {
    rlc_mem_info mi;
    GPU->mem_info(&mi);
    return mi.in_use;
}

// A model of model_cfg() on the CUDA backend in `mode`, with initialised weights (for the death tests' children).
static void model_in_mode(rlc_model *m, int mode) {
    GPU = rlc_ops_cuda();
    rlc_ops_cuda_set_precision(mode);
    rlc_model_config c = model_cfg();
    if (rlc_model_init(m, &c, GPU, T_MAX) != 0) exit(3); // not the message the death tests look for
    rlc_model_init_weights(m, 1);
}

// ------------------------------------------------------------------------------------------------ 1. death tests

static void test_deaths() {
    using rlc_test::expect_death;
    expect_death(
        "forward after a precision change",
        [] {
            rlc_model m;
            model_in_mode(&m, RLC_CUDA_MIXED);
            rlc_ops_cuda_set_precision(RLC_CUDA_FP32);
            const int tok[5] = {1, 5, 9, 2, 7}, cu[2] = {0, 5};
            rlc_model_forward(&m, tok, cu, 1, 5);
        },
        "forward: the backend's activations are 4 bytes, the model's 2 (its precision mode changed after the model "
        "was allocated)");
    expect_death(
        "cached forward after a precision change",
        [] {
            rlc_model m;
            model_in_mode(&m, RLC_CUDA_BF16_GEMM);
            rlc_kv_cache kv;
            if (rlc_kv_cache_init(&kv, &m, SLOTS, CAP) != 0) exit(3);
            rlc_ops_cuda_set_precision(RLC_CUDA_MIXED);
            const int tok[3] = {1, 5, 9};
            rlc_model_prefill(&m, &kv, 0, tok, 3, NULL);
        },
        "cached forward: the backend's activations are 2 bytes, the model's 4");
    expect_death(
        "bad RLC_CUDA_PRECISION",
        [] {
            setenv("RLC_CUDA_PRECISION", "bf32", 1);
            rlc_ops_cuda();
        },
        "RLC_CUDA_PRECISION=bf32: expected mixed, bf16-gemm or fp32");
}

// ------------------------------------------------------------------------------------------------ 2. memory

struct ModeBytes {
    size_t params, grads, acts, kv;
};

static ModeBytes test_memory(int mode) {
    rlc_ops_cuda_set_precision(mode);
    const size_t ab = mode == RLC_CUDA_MIXED ? 2 : 4;
    printf("%s: act_bytes %zu\n", rlc_ops_cuda_precision_name(mode), GPU->act_bytes);
    CHECK(GPU->act_bytes == ab, "%s: act_bytes %zu, expected %zu", rlc_ops_cuda_precision_name(mode), GPU->act_bytes,
          ab);
    const rlc_model_config c = model_cfg();
    ModeBytes r;
    const size_t all = rlc_model_bytes(&c, T_MAX, GPU->act_bytes, &r.params, &r.grads, &r.acts);

    // the model: rlc_model_bytes plus the backend's bf16 working copy of the parameters
    const size_t base = in_use();
    rlc_model m;
    CHECK(rlc_model_init(&m, &c, GPU, T_MAX) == 0, "model init");
    const size_t got = in_use() - base, wb = m.n_params * 2;
    printf("    model: %zu bytes held; rlc_model_bytes %zu (parameters %zu, gradients %zu, activations %zu) + bf16 "
           "weights %zu\n", got, all, r.params, r.grads, r.acts, wb);
    CHECK(r.params == m.n_params * sizeof(float) && r.grads == r.params, "parameter bytes %zu for %zu parameters",
          r.params, m.n_params);
    CHECK(got == all + wb, "%s: rlc_model_init holds %zu bytes, rlc_model_bytes %zu + bf16 copy %zu = %zu",
          rlc_ops_cuda_precision_name(mode), got, all, wb, all + wb);

    // the model runs in this mode (the death tests' flows, unchanged mode): forward, then a prefill into a cache
    rlc_model_init_weights(&m, 1);
    const int tok[5] = {1, 5, 9, 2, 7}, cu[2] = {0, 5};
    rlc_model_forward(&m, tok, cu, 1, 5);

    // the KV cache: 2 L slots cap NKV HD act_bytes
    r.kv = rlc_kv_cache_bytes(&c, SLOTS, CAP, GPU->act_bytes);
    CHECK(r.kv == 2u * c.n_layers * SLOTS * CAP * c.n_kv_heads * c.head_dim * ab, "KV bytes %zu", r.kv);
    const size_t before_kv = in_use();
    rlc_kv_cache kv;
    CHECK(rlc_kv_cache_init(&kv, &m, SLOTS, CAP) == 0, "KV cache init");
    printf("    KV cache of %d x %d tokens: %zu bytes held; rlc_kv_cache_bytes %zu\n", SLOTS, CAP, in_use() - before_kv,
           r.kv);
    CHECK(in_use() - before_kv == r.kv, "the KV cache holds %zu bytes, rlc_kv_cache_bytes says %zu",
          in_use() - before_kv, r.kv);
    rlc_model_prefill(&m, &kv, 1, tok, 5, NULL);
    rlc_kv_cache_free(&kv, &m);
    rlc_model_free(&m);
    // the prefill allocated the logits row and may have grown the workspace: both are gone after the free and a
    // release, and so is everything the model held
    rlc_ops_cuda_release();
    GPU = rlc_ops_cuda();
    CHECK(in_use() == base, "%s: %zu bytes still held after freeing the model (%zu before)",
          rlc_ops_cuda_precision_name(mode), in_use(), base);

    // rlc_rl_init: policy, reference (kl_beta > 0) and AdamW moments, exactly the budget it checks beforehand
    const char *over[] = {"model.dim=128", "model.n_layers=2", "model.n_heads=2", "model.n_kv_heads=1",
                          "model.head_dim=64", "model.hidden_dim=200", "model.max_seq_len=40", "rl.kl_beta=0.02"};
    rlc_config cfg;
    char err[512];
    CHECK(rlc_config_load(&cfg, NULL, over, (int)(sizeof over / sizeof over[0]), err, sizeof err) == 0, "config: %s",
          err);
    size_t pb, one = rlc_model_bytes(&cfg.model, T_MAX, GPU->act_bytes, &pb, NULL, NULL);
    const size_t need = 2 * (one + pb / sizeof(float) * 2) + 2 * pb;
    rlc_rl rl;
    CHECK(rlc_rl_init(&rl, &cfg, GPU, rlc_task_find(cfg.task.name), T_MAX) == 0, "rlc_rl_init");
    CHECK(rlc_rl_needs_ref(&rl), "kl_beta > 0 keeps a reference policy");
    printf("    rlc_rl_init: %zu bytes held, %zu budgeted\n", in_use() - base, need);
    CHECK(in_use() - base == need, "%s: rlc_rl_init holds %zu bytes, its budget is %zu",
          rlc_ops_cuda_precision_name(mode), in_use() - base, need);
    rlc_rl_free(&rl);
    CHECK(in_use() == base, "rlc_rl_free gives every byte back (%zu vs %zu)", in_use(), base);
    return r;
}

// ------------------------------------------------------------------------------------------------ 3. release

static void test_release_keeps_mode() {
    rlc_ops_cuda_set_precision(RLC_CUDA_FP32);
    rlc_model m;
    rlc_model_config c = model_cfg();
    CHECK(rlc_model_init(&m, &c, GPU, T_MAX) == 0, "model init");
    rlc_model_init_weights(&m, 2);
    const int tok[4] = {3, 1, 4, 1}, cu[2] = {0, 4};
    rlc_model_forward(&m, tok, cu, 1, 4);
    std::vector<float> l0((size_t)4 * c.vocab_size), l1(l0.size());
    rlc_model_logits(&m, l0.data());
    rlc_ops_cuda_release();
    GPU = rlc_ops_cuda();
    printf("after release and restart: precision %s, act_bytes %zu\n",
           rlc_ops_cuda_precision_name(rlc_ops_cuda_precision()), GPU->act_bytes);
    CHECK(rlc_ops_cuda_precision() == RLC_CUDA_FP32 && GPU->act_bytes == 4,
          "the restart changed the mode to %s (act_bytes %zu)", rlc_ops_cuda_precision_name(rlc_ops_cuda_precision()),
          GPU->act_bytes);
    rlc_model_forward(&m, tok, cu, 1, 4); // dies if the mode changed under the model
    rlc_model_logits(&m, l1.data());
    CHECK(l0 == l1, "the same logits after the restart");
    rlc_model_free(&m);
}

#ifdef RLC_EMU
// ------------------------------------------------------------------------------------------------ 4. decode, no sync

// The logits of one decode step of SLOTS rows after a 5-token prefill per slot (a warm-up step first: the logits
// buffer and the workspace are allocated there, and a cudaFree synchronises). *ran_during: queued operations run
// while rlc_model_decode was running because it waited for the device; *queued_by: operations it queued and did
// not wait for (still pending, or in the emulator's shuffle order possibly run early, as on a GPU).
static std::vector<float> decode_logits(bool defer, size_t *ran_during, size_t *queued_by) {
    emu::set_defer(defer);
    rlc_model m;
    model_in_mode(&m, RLC_CUDA_MIXED);
    rlc_kv_cache kv;
    CHECK(rlc_kv_cache_init(&kv, &m, SLOTS, CAP) == 0, "KV cache init");
    const int tok[5] = {1, 5, 9, 2, 7};
    int slots[SLOTS], toks[SLOTS];
    for (int s = 0; s < SLOTS; s++) {
        rlc_model_prefill(&m, &kv, s, tok + s, 5 - s, NULL);
        slots[s] = s;
        toks[s] = 11 + s;
    }
    rlc_model_decode(&m, &kv, slots, toks, SLOTS, NULL); // warm-up
    RLC_CUDA_CHECK(cudaDeviceSynchronize());
    for (int s = 0; s < SLOTS; s++) toks[s] = 20 + 3 * s;
    const size_t ran0 = emu::ops_run(), queued0 = emu::ops_queued();
    const rlc_f *lg = rlc_model_decode(&m, &kv, slots, toks, SLOTS, NULL);
    *ran_during = emu::ops_run() - ran0;
    const size_t queued = emu::ops_queued() - queued0;
    *queued_by = queued > *ran_during ? queued - *ran_during : 0;
    std::vector<float> out((size_t)SLOTS * m.cfg.vocab_size);
    GPU->download(out.data(), lg, out.size() * sizeof(float));
    rlc_kv_cache_free(&kv, &m);
    rlc_model_free(&m);
    return out;
}

static void test_decode_no_sync() {
    size_t ran, queued, ran_e, queued_e;
    std::vector<float> eager = decode_logits(false, &ran_e, &queued_e);
    std::vector<float> deferred = decode_logits(true, &ran, &queued);
    printf("decode step (mixed, head dim 64, %d rows): %zu operations queued and not waited for, %zu run by a wait "
           "during the call\n", SLOTS, queued, ran);
    CHECK(ran == 0, "rlc_model_decode waited for the device: %zu queued operations ran during the call", ran);
    CHECK(queued >= (size_t)(10 * model_cfg().n_layers), "rlc_model_decode left only %zu operations queued", queued);
    CHECK(eager == deferred, "a decode step's logits differ between the eager and the deferred mode");
}
#endif

int main() {
    // first, before this process touches the device
    test_deaths();
    GPU = rlc_ops_cuda();
    ModeBytes b[3];
    const int modes[3] = {RLC_CUDA_FP32, RLC_CUDA_BF16_GEMM, RLC_CUDA_MIXED};
    for (int i = 0; i < 3; i++) b[i] = test_memory(modes[i]);
    // across modes: the same parameters and gradients; fp32 activations in both fp32 modes; the mixed mode's KV
    // cache half as large and its activations smaller
    CHECK(b[0].params == b[2].params && b[0].grads == b[2].grads && b[1].params == b[0].params, "parameter bytes");
    CHECK(b[0].acts == b[1].acts && b[0].kv == b[1].kv, "fp32 and bf16-gemm keep the same fp32 activations");
    CHECK(2 * b[2].kv == b[0].kv, "mixed KV cache %zu bytes, fp32 %zu", b[2].kv, b[0].kv);
    CHECK(b[2].acts < b[0].acts && (b[0].acts - b[2].acts) % 2 == 0, "activations: mixed %zu, fp32 %zu", b[2].acts,
          b[0].acts);
    printf("activations for %d tokens: %zu bytes in mixed precision, %zu in fp32 (%.1f%%); KV cache %zu vs %zu\n",
           T_MAX, b[2].acts, b[0].acts, 100.0 * (double)b[2].acts / (double)b[0].acts, b[2].kv, b[0].kv);
    test_release_keeps_mode();
#ifdef RLC_EMU
    test_decode_no_sync();
#endif
    rlc_ops_cuda_set_precision(RLC_CUDA_FP32);
    rlc_ops_cuda_release();
    return test_finish("test_mixed_model");
}
