// tests/test_memory.c: the CPU backend's memory accounting (in use, peak, free, total) and its cap
// (set_mem_limit), the model's byte count against what it really allocates and by activation size (the CUDA
// backend's side: tests/emu/test_mixed_model.cpp), and the startup checks of
// rlc_rl_init: a model/optimizer or a rollout group that does not fit under the cap is refused before any work
// with "cannot allocate N bytes (M available)", and leaves nothing allocated behind (model) or fails cleanly.
// The rollout's waves under a cap are tested in test_rollout.c.
#include <string.h>

#include "rlc/config.h"
#include "rlc/model.h"
#include "rlc/rl.h"
#include "rlc/rollout.h"
#include "rlc/task.h"
#include "test_util.h"

static rlc_mem_info info(const rlc_ops *o) {
    rlc_mem_info mi;
    memset(&mi, 0x5A, sizeof mi); // every field must be written
    o->mem_info(&mi);
    return mi;
}

static void test_accounting(const rlc_ops *o) {
    rlc_mem_info a = info(o);
    CHECK(a.limit == 0, "no limit unless set (RLC_MEM_LIMIT_MB must not be set for this test): %zu", a.limit);
    CHECK(a.total > 0 && a.free > 0 && a.free <= a.total, "host memory: free %zu of %zu", a.free, a.total);
    CHECK(a.peak >= a.in_use, "peak %zu >= in use %zu", a.peak, a.in_use);
    size_t n = 3 << 20;
    char *p = o->try_alloc(n);
    CHECK(p != NULL, "3 MiB");
    int zero = 1;
    for (size_t i = 0; i < n; i += 4093) zero &= p[i] == 0;
    CHECK(zero, "try_alloc zero-fills");
    rlc_mem_info b = info(o);
    CHECK(b.in_use >= a.in_use + n && b.in_use <= a.in_use + n + 8192, "in use %zu -> %zu after %zu bytes", a.in_use,
          b.in_use, n);
    CHECK(b.peak >= b.in_use, "peak follows");
    o->free(p);
    rlc_mem_info c = info(o);
    CHECK(c.in_use == a.in_use, "free gives it back: %zu vs %zu", c.in_use, a.in_use);
    CHECK(c.peak == b.peak, "the peak stays");
    void *z = o->try_alloc(0);
    CHECK(z != NULL, "a 0-byte allocation is a valid pointer");
    o->free(z);
    o->free(NULL);
    CHECK(info(o).in_use == a.in_use, "0 bytes and NULL leave the count alone");
}

static void test_limit(const rlc_ops *o) {
    size_t base = info(o).in_use, lim = base + (1 << 20);
    o->set_mem_limit(lim);
    rlc_mem_info a = info(o);
    CHECK(a.limit == lim, "limit %zu", a.limit);
    CHECK(a.free <= (size_t)1 << 20, "free %zu at most what the limit leaves", a.free);
    CHECK(a.total == lim, "total is the limit when smaller than the host's memory: %zu", a.total);
    CHECK(o->try_alloc(2 << 20) == NULL, "2 MiB over a 1 MiB limit is refused");
    CHECK(o->try_alloc((size_t)-1) == NULL, "SIZE_MAX is refused without overflow");
    void *p = o->try_alloc(600 << 10);
    CHECK(p != NULL, "600 KiB fits");
    CHECK(o->try_alloc(600 << 10) == NULL, "a second 600 KiB does not");
    rlc_mem_info b = info(o);
    CHECK(b.free <= lim - b.in_use && b.free < (500 << 10), "free %zu after 600 KiB", b.free);
    o->free(p);
    o->set_mem_limit(0);
    CHECK(info(o).limit == 0, "limit removed");
    p = o->try_alloc(2 << 20);
    CHECK(p != NULL, "2 MiB without a limit");
    o->free(p);
}

static rlc_model_config small_cfg(void) {
    rlc_model_config c = {.vocab_size = 98, .dim = 32, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .head_dim = 8,
                          .hidden_dim = 64, .max_seq_len = 64, .rms_eps = 1e-5f, .rope_theta = 10000.0f,
                          .qkv_bias = 1, .tie_embeddings = 1};
    return c;
}

static void test_model_bytes(const rlc_ops *o) {
    rlc_model_config c = small_cfg();
    size_t pb, gb, ab, all = rlc_model_bytes(&c, 300, o->act_bytes, &pb, &gb, &ab);
    CHECK(all == pb + gb + ab && pb == gb && ab > 0, "parts %zu + %zu + %zu = %zu", pb, gb, ab, all);
    size_t base = info(o).in_use;
    rlc_model m;
    CHECK(rlc_model_init(&m, &c, o, 300) == 0, "init");
    CHECK(pb == m.n_params * sizeof(rlc_f), "parameter bytes %zu for %zu parameters", pb, m.n_params);
    size_t got = info(o).in_use - base;
    // usable-size rounding: at most 16 bytes per block of the ~60 blocks, plus page rounding of the big ones
    CHECK(got >= all && got <= all + all / 50 + 8192, "the model holds %zu bytes, rlc_model_bytes says %zu", got, all);
    rlc_model_free(&m);
    CHECK(info(o).in_use == base, "rlc_model_free gives every byte back");
    // under a cap that leaves out the last activations: init fails cleanly and leaks nothing
    o->set_mem_limit(base + pb + gb + ab / 2);
    fprintf(stderr, "(an error message about the model's activations is expected next)\n");
    CHECK(rlc_model_init(&m, &c, o, 300) == -1, "init under a cap fails");
    CHECK(info(o).in_use == base, "a failed init frees what it had: %zu vs %zu", info(o).in_use, base);
    o->set_mem_limit(0);
    // a KV cache that does not fit: -1, nothing held
    rlc_kv_cache kv;
    CHECK(rlc_model_init(&m, &c, o, 300) == 0, "init");
    size_t held = info(o).in_use;
    CHECK(rlc_kv_cache_bytes(&c, 4, 64, o->act_bytes) == 2u * 2 * 4 * 64 * 2 * 8 * o->act_bytes, "KV bytes");
    o->set_mem_limit(held + rlc_kv_cache_bytes(&c, 4, 64, o->act_bytes) * 3 / 4);
    CHECK(rlc_kv_cache_init(&kv, &m, 4, 64) == -1, "a KV cache over the cap is refused");
    CHECK(info(o).in_use == held, "and leaves nothing allocated");
    o->set_mem_limit(0);
    CHECK(rlc_kv_cache_init(&kv, &m, 4, 64) == 0, "without the cap it fits");
    rlc_kv_cache_free(&kv, &m);
    // the rollout planner: more memory never means fewer groups per wave, and none fit in nothing
    int prev = 0;
    for (size_t avail = 0; avail < ((size_t)8 << 20); avail += 37 << 10) {
        int k = rlc_rollout_wave_groups(&m, 4, 100, avail);
        CHECK(k >= prev && k <= 100, "groups per wave %d at %zu bytes (was %d)", k, avail, prev);
        prev = k;
    }
    CHECK(rlc_rollout_wave_groups(&m, 4, 100, 0) == 0 && prev > 0, "none in 0 bytes, some in 8 MiB (%d)", prev);
    CHECK(rlc_rollout_wave_groups(&m, 4, 3, (size_t)1 << 40) == 3, "never more groups than prompts");
    rlc_model_free(&m);
}

// rlc_model_bytes / rlc_kv_cache_bytes by activation size (no backend needed): with 2-byte activations (the CUDA
// backend's mixed precision) parameters and gradients are unchanged, the KV cache is half as large, and the
// activations shrink by 2 bytes for each element of an activation-typed buffer (include/rlc/model.h), counted here
// from the shapes: per layer ln1, ln2 (T, C), q, att (T, NH*HD), k, v (T, NKV*HD), gate, up, act (T, F); the final
// norm's output (T, C); the backward scratch dln, tmpC (T, C), dq, datt, dk, dv, dgate, dup, dact; the value-head
// gradient (T). The residual stream, its gradient and the statistics stay rlc_f.
static void test_act_bytes(void) {
    rlc_model_config c = small_cfg();
    c.n_kv_heads = 1, c.hidden_dim = 70; // NKV*HD != NH*HD, F not a multiple of anything
    const int T = 37;
    size_t p4, g4, a4, p2, g2, a2;
    size_t all4 = rlc_model_bytes(&c, T, 4, &p4, &g4, &a4), all2 = rlc_model_bytes(&c, T, 2, &p2, &g2, &a2);
    size_t C = (size_t)c.dim, Q = (size_t)c.n_heads * c.head_dim, K = (size_t)c.n_kv_heads * c.head_dim;
    size_t F = (size_t)c.hidden_dim;
    size_t n_act = T * (c.n_layers * (2 * C + 2 * Q + 2 * K + 3 * F) + C + 2 * C + 2 * Q + 2 * K + 3 * F + 1);
    CHECK(p2 == p4 && g2 == g4, "parameters %zu/%zu, gradients %zu/%zu do not depend on act_bytes", p2, p4, g2, g4);
    CHECK(a4 - a2 == 2 * n_act, "activations %zu (4-byte) - %zu (2-byte) = %zu, expected 2 x %zu activation elements",
          a4, a2, a4 - a2, n_act);
    CHECK(all4 - all2 == a4 - a2, "totals differ by the activations only");
    CHECK(2 * rlc_kv_cache_bytes(&c, 5, 33, 2) == rlc_kv_cache_bytes(&c, 5, 33, 4) &&
              rlc_kv_cache_bytes(&c, 5, 33, 2) == 2u * 2 * 5 * 33 * 1 * 8 * 2,
          "KV cache bytes by act_bytes");
    // the CPU backend's activations are rlc_f
    CHECK(rlc_ops_cpu()->act_bytes == sizeof(rlc_f), "CPU act_bytes %zu", rlc_ops_cpu()->act_bytes);
}

// rlc_rl_init under a cap: the model and optimizer must fit, then one rollout group.
static void test_rl_init(const rlc_ops *o) {
    const char *over[] = {"model.dim=32",          "model.n_layers=2",         "model.n_heads=4",
                          "model.n_kv_heads=2",    "model.head_dim=8",         "model.hidden_dim=64",
                          "model.max_seq_len=256", "rollout.group_size=16",    "rl.micro_batch_tokens=512",
                          "sft.micro_batch_tokens=512"};
    rlc_config cfg;
    char err[512];
    CHECK(rlc_config_parse(&cfg, NULL, "<test>", over, (int)(sizeof over / sizeof over[0]), err, sizeof err) == 0,
          "config: %s", err);
    const rlc_task *task = rlc_task_find(cfg.task.name);
    int T = 512;
    size_t pb, one = rlc_model_bytes(&cfg.model, T, o->act_bytes, &pb, NULL, NULL);
    size_t need = one + 2 * pb; // model + AdamW moments (GRPO without KL: no reference policy)
    size_t base = info(o).in_use;
    rlc_rl rl;
    o->set_mem_limit(base + need / 2);
    fprintf(stderr, "(two error messages are expected next: model and optimizer, then the rollout group)\n");
    CHECK(rlc_rl_init(&rl, &cfg, o, task, T) == -1, "the model and optimizer do not fit");
    CHECK(info(o).in_use == base, "refused before allocating anything");
    // room for the model and optimizer but not for one group of 16 sequences (16 x 64 KiB of KV cache)
    size_t kv16 = rlc_kv_cache_bytes(&cfg.model, 16, cfg.model.max_seq_len, o->act_bytes);
    o->set_mem_limit(base + need + need / 50 + 16384 + kv16 / 2);
    CHECK(rlc_rl_init(&rl, &cfg, o, task, T) == -1, "one rollout group does not fit");
    CHECK(info(o).in_use == base, "a failed rlc_rl_init frees what it had: %zu vs %zu", info(o).in_use, base);
    o->set_mem_limit(0);
    CHECK(rlc_rl_init(&rl, &cfg, o, task, T) == 0, "everything fits without the cap");
    rlc_rl_free(&rl);
    CHECK(info(o).in_use == base, "rlc_rl_free gives every byte back");
}

int main(void) {
    const rlc_ops *o = rlc_ops_cpu();
    test_accounting(o);
    test_limit(o);
    test_model_bytes(o);
    test_act_bytes();
    test_rl_init(o);
    return test_finish("test_memory");
}
