// tests/emu/test_grad_overlap.cpp: the NCCL gradient path of multi-GPU training on one rank: kernels/cuda/rlc_comm's
// shard collectives, host/comm_nccl.c's bucketed gradient rounds overlapped with the backward (rlc_model's
// grad_ready hook), and the optimizer steps of the scheduler, SFT and GRPO with these device collectives attached
// (the RLC_FORCE_NCCL path), on the CUDA backend. Under the emulator (ctest label emu) rlc_comm is the one-rank
// copy fallback, and the launches and copies are queued on their streams (the deferred mode; ctest runs the test
// again in its shuffle order, test_grad_overlap_shuffle1..3, other legal interleavings of the side stream with
// the compute stream); built for a GPU
// (tests/gpu/test_grad_overlap.cpp includes this file) it is one-rank NCCL on real streams.
//
// What one rank can show. The sum over one rank is the identity, so:
//   - all-reduce rounds leave the gradients bit for bit as the plain backward made them, and the optimizer steps
//     with the device collectives equal the plain ones bit for bit (weights, losses, gradient norms);
//   - reduce-scatter rounds copy each bucket into a separate shard buffer at the moment the bucket is launched
//     (the copy runs behind an event of the compute stream recorded at that moment): a bucket launched before
//     its gradients were final would hold stale values. Comparing the shard with the final gradients therefore
//     checks the readiness logic of the hook; the test plants such a premature launch and requires it to be
//     caught;
//   - the schedule: a non-final micro-batch reports nothing; the last backward reports at the final norm, at the
//     start of each layer from the last and at the start of the buffer, and after each report exactly the buckets
//     wholly inside the final part have been launched, for buckets of 1 element (7 on a GPU), of a size that
//     divides nothing, and of one bucket for the whole model.
// What needs several GPUs (tests/gpu/check.sh cannot do it on one): sums over ranks, the uneven ZeRO-1 shards
// over NCCL groups, NCCL errors and the collective timeout of a rank that hangs.
#define _Noreturn [[noreturn]] // C11 spelling in the C headers below
extern "C" {
#include "rlc/backend.h"
#include "rlc/comm.h"
#include "rlc/config.h"
#include "rlc/metrics.h"
#include "rlc/model.h"
#include "rlc/optim.h"
#include "rlc/rl.h"
#include "rlc/scheduler.h"
#include "rlc/sft.h"
#include "rlc/task.h"
#include "rlc/util.h"
}
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <string>
#include <vector>

#include "ops_cuda.h"
#include "rlc_comm.h"
#include "rlc_cuda.h"
#include "test_common.h"
#include "test_util.h"

static const rlc_ops *GPU;

static std::vector<float> dl(const rlc_f *p, size_t n) {
    std::vector<float> h(n);
    GPU->download(h.data(), p, n * sizeof(float));
    return h;
}

static float *up(const std::vector<float> &h) {
    float *d = (float *)GPU->alloc(h.size() * sizeof(float) + 4);
    GPU->upload(d, h.data(), h.size() * sizeof(float));
    return d;
}

// First differing element of two equally long vectors (n when bitwise identical).
static size_t first_diff(const std::vector<float> &a, const std::vector<float> &b) {
    size_t i = 0;
    while (i < a.size() && memcmp(&a[i], &b[i], sizeof(float)) == 0) i++;
    return i;
}

// ---- 1. rlc_comm's shard collectives and wait on one rank ----
static void test_comm() {
    printf("rlc_comm: shard collectives, one rank\n");
    unsigned char id[RLC_COMM_ID_BYTES];
    CHECK(rlc_comm_get_unique_id(id) == 0, "unique id");
    rlc_comm *c = rlc_comm_create(1, 0, id, 5.0);
    CHECK(c != nullptr, "one-rank communicator");
    if (!c) return;
    for (size_t n : {(size_t)1, (size_t)37, (size_t)1000}) {
        std::vector<float> x(n), nan(n, NAN);
        for (size_t i = 0; i < n; i++) x[i] = rlc_test::hash_uniform((uint32_t)i, (uint32_t)n);
        float *dx = up(x), *dout = up(nan);
        size_t starts[2] = {0, n};
        // a middle range only: the rest of out stays NaN (offsets are shard-local)
        size_t lo = n / 3, hi = n - n / 4;
        CHECK(rlc_comm_reduce_scatter_range_f32(c, dx, dout, starts, lo, hi, nullptr) == 0, "range %zu", n);
        std::vector<float> o = dl(dout, n);
        for (size_t i = 0; i < n; i++)
            CHECK(i >= lo && i < hi ? o[i] == x[i] : isnan(o[i]), "n=%zu range [%zu,%zu): out[%zu] = %g", n, lo, hi, i,
                  o[i]);
        // consecutive ranges from the end to the start cover the buffer
        for (size_t b = n; b > 0;) {
            size_t a = b >= 7 ? b - 7 : 0;
            CHECK(rlc_comm_reduce_scatter_range_f32(c, dx, dout, starts, a, b, nullptr) == 0, "range");
            b = a;
        }
        CHECK(first_diff(dl(dout, n), x) == n, "n=%zu: buckets of 7 reduce-scatter the whole buffer", n);
        CHECK(rlc_comm_allgather_shards_f32(c, dx, starts, nullptr) == 0 && first_diff(dl(dx, n), x) == n,
              "n=%zu: all-gather of one shard leaves x", n);
        GPU->free(dx);
        GPU->free(dout);
    }
    cudaEvent_t ev;
    CHECK(cudaEventCreate(&ev) == cudaSuccess && cudaEventRecord(ev, nullptr) == cudaSuccess, "event");
    CHECK(rlc_comm_wait(c, ev) == 0, "wait: %s", rlc_comm_error(c));
    cudaEventDestroy(ev);
    // (with NCCL the failed call also aborts the communicator, as an NCCL error does)
    CHECK(rlc_comm_broadcast(c, nullptr, 4, 1, nullptr) == -1 && rlc_comm_error(c)[0] != 0,
          "a failed call leaves its reason: \"%s\"", rlc_comm_error(c));
    printf("    root 1 of 1 rank: %s\n", rlc_comm_error(c));
    rlc_comm_destroy(c);
}

// ---- 2. the hook and the rounds on a model's backward ----

struct MicroBatch {
    std::vector<int> tokens, targets, cu;
    std::vector<float> dlogp, dent, dval;
    int B, T;
};

static std::vector<MicroBatch> make_batches(const rlc_model_config &mc) {
    std::vector<std::vector<int>> lens = {{5, 7}, {3, 9, 1}}; // awkward: a 1-token sequence
    std::vector<MicroBatch> v;
    uint32_t salt = 1;
    for (auto &L : lens) {
        MicroBatch b;
        b.B = (int)L.size();
        b.cu.push_back(0);
        for (int l : L) b.cu.push_back(b.cu.back() + l);
        b.T = b.cu.back();
        for (int t = 0; t < b.T; t++) {
            auto u = [&](uint32_t k) { return rlc_test::hash_uniform((uint32_t)t * 8 + k, salt); };
            b.tokens.push_back((int)((u(0) + 1) * 0.5f * (mc.vocab_size - 1)));
            b.targets.push_back((int)((u(1) + 1) * 0.5f * (mc.vocab_size - 1)));
            b.dlogp.push_back(u(2));
            b.dent.push_back(0.1f * u(3));
            b.dval.push_back(u(4));
        }
        v.push_back(b);
        salt++;
    }
    return v;
}

static void fwd_bwd(rlc_model *m, MicroBatch &b) {
    rlc_model_forward(m, b.tokens.data(), b.cu.data(), b.B, b.T);
    rlc_model_logprobs(m, b.targets.data(), 1.0f, NULL, NULL);
    rlc_model_backward(m, b.dlogp.data(), b.dent.data(), m->cfg.value_head ? b.dval.data() : NULL);
}

static size_t offset_of(const rlc_model *m, const char *name) {
    const rlc_tensor_info *t = rlc_model_find_tensor(m, name);
    CHECK(t != NULL, "tensor %s", name);
    return t ? t->offset : 0;
}

static rlc_dist_dev_stats stats(const rlc_dist_dev *dev) {
    rlc_dist_dev_stats st;
    dev->stats(dev->ctx, &st);
    return st;
}
static rlc_dist_dev_stats stats(const rlc_dist *d) { return stats(d->dev); }

// Between the model and the device collectives: records each report (first) and the buckets launched after it.
struct Spy {
    const rlc_dist_dev *dev;
    std::vector<size_t> firsts;
    std::vector<long> launched;
};
static void spy_ready(void *ctx, rlc_f *grads, size_t n, size_t first) {
    Spy *s = (Spy *)ctx;
    s->dev->grads_ready(s->dev->ctx, grads, n, first);
    s->firsts.push_back(first);
    s->launched.push_back(stats(s->dev).buckets);
}

// Attach the device collectives to a group of one with buckets of `elems` elements (env knobs, as a user sets them).
static int attach(rlc_dist *d, int zero1, size_t elems, int overlap) {
    char buf[64], err[512];
    snprintf(buf, sizeof buf, "%.17g", (double)elems * sizeof(float) / 1048576.0);
    setenv("RLC_NCCL_BUCKET_MB", buf, 1);
    setenv("RLC_NCCL_OVERLAP", overlap ? "1" : "0", 1);
    rlc_dist_single(d);
    int rc = rlc_dist_nccl_attach(d, zero1, err, sizeof err);
    CHECK(rc == 0 && d->dev, "attach: %s", err);
    if (rc == 0) CHECK(d->dev->bucket_elems == elems, "bucket of %zu elements (asked %zu)", d->dev->bucket_elems, elems);
    unsetenv("RLC_NCCL_BUCKET_MB");
    unsetenv("RLC_NCCL_OVERLAP");
    return rc;
}

static void test_rounds(int variant) {
    rlc_model_config mc = {};
    mc.vocab_size = 98, mc.dim = 32, mc.n_layers = 2, mc.n_heads = 2, mc.n_kv_heads = 1, mc.head_dim = 16;
    mc.hidden_dim = 64, mc.max_seq_len = 16, mc.rms_eps = 1e-5f, mc.rope_theta = 10000.0f;
    mc.qkv_bias = variant, mc.tie_embeddings = !variant, mc.value_head = variant;
    printf("gradient rounds on a backward (%s)\n",
           variant ? "untied LM head, value head, q/k/v biases" : "tied embeddings");
    std::vector<MicroBatch> mbs = make_batches(mc);
    rlc_model m;
    CHECK(rlc_model_init(&m, &mc, GPU, 32) == 0, "model");
    rlc_model_init_weights(&m, 11);
    const size_t n = m.n_params;
    // where the backward reports final gradients: the final norm (then the LM head and value head after it in the
    // flat layout), the start of each layer from the last, the start of the buffer
    std::vector<size_t> want_firsts = {offset_of(&m, "model.norm.weight"),
                                       offset_of(&m, "model.layers.1.input_layernorm.weight"),
                                       offset_of(&m, "model.layers.0.input_layernorm.weight"), 0};

    // the reference: the plain backward of both micro-batches, no hook
    rlc_model_zero_grad(&m);
    for (auto &b : mbs) fwd_bwd(&m, b);
    std::vector<float> ref = dl(m.grads, n);
    std::vector<float> nan(n, NAN);
    float *out = up(nan); // the ZeRO-1 shard of one rank: the whole buffer

#ifdef RLC_EMU
    const size_t tiny = 1; // one element per bucket: ~2e4 collectives per round, cheap as emulated copies
#else
    const size_t tiny = 7; // on a GPU each is an NCCL launch
#endif
    for (size_t B : {tiny, (size_t)997, n + 5}) {
        const size_t K = (n + B - 1) / B;
        for (int zero1 = 0; zero1 < 2; zero1++) {
            rlc_dist d;
            if (attach(&d, zero1, B, 1) != 0) continue;
            Spy spy = {d.dev, {}, {}};
            m.grad_ready = spy_ready;
            m.grad_ready_ctx = &spy;
            rlc_model_zero_grad(&m);
            fwd_bwd(&m, mbs[0]);
            CHECK(spy.firsts.empty() && stats(&d).buckets == 0,
                  "B=%zu zero1=%d: a non-final micro-batch reported %zu times, launched %ld buckets", B, zero1,
                  spy.firsts.size(), stats(&d).buckets);
            rlc_model_arm_grad_ready(&m);
            fwd_bwd(&m, mbs[1]);
            CHECK(m.grad_armed == 0, "the backward disarms the hook");
            CHECK(spy.firsts == want_firsts, "B=%zu zero1=%d: %zu reports, expected %zu at the layer boundaries", B,
                  zero1, spy.firsts.size(), want_firsts.size());
            // after each report, exactly the buckets wholly inside [first, n) have been launched
            for (size_t i = 0; i < spy.firsts.size(); i++) {
                long want = (long)(K - (spy.firsts[i] + B - 1) / B);
                CHECK(spy.launched[i] == want, "B=%zu zero1=%d: after report %zu (first %zu): %ld buckets launched, "
                      "expected %ld", B, zero1, i, spy.firsts[i], spy.launched[i], want);
            }
            rlc_dist_dev_stats s1 = stats(&d);
            CHECK(s1.buckets == (long)K && s1.buckets_overlapped == (long)K,
                  "B=%zu zero1=%d: %ld buckets launched during the last backward, expected all %zu", B, zero1,
                  s1.buckets, K);
            std::vector<float> got;
            if (zero1) {
                GPU->upload(out, nan.data(), n * sizeof(float));
                d.dev->reduce_scatter_grads(d.dev->ctx, m.grads, out, n);
                got = dl(out, n);
            } else {
                d.dev->allreduce_grads(d.dev->ctx, m.grads, n);
                got = dl(m.grads, n);
            }
            rlc_dist_dev_stats s2 = stats(&d);
            CHECK(s2.buckets == (long)K && s2.rounds == 1, "B=%zu zero1=%d: %ld buckets in %ld rounds, expected %zu in 1",
                  B, zero1, s2.buckets, s2.rounds, K);
            size_t at = first_diff(got, ref);
            CHECK(at == n, "B=%zu zero1=%d: reduced gradients differ from the backward's at %zu: %.9g vs %.9g", B,
                  zero1, at, at < n ? got[at] : 0.0f, at < n ? ref[at] : 0.0f);
            printf("    buckets of %5zu elements, %s: %5zu buckets, launched after the reports (first = %zu, %zu, "
                   "%zu, 0): %ld, %ld, %ld, %ld: %s\n", B, zero1 ? "reduce-scatter" : "all-reduce   ", K, want_firsts[0],
                   want_firsts[1], want_firsts[2], spy.launched.size() > 3 ? spy.launched[0] : -1,
                   spy.launched.size() > 3 ? spy.launched[1] : -1, spy.launched.size() > 3 ? spy.launched[2] : -1,
                   spy.launched.size() > 3 ? spy.launched[3] : -1, at == n ? "ok" : "WRONG");

            // planted bug: every bucket reported final after the first (non-final) micro-batch. A reduce-scatter
            // round must then deliver stale sums (the check above would catch a hook that reports too early).
            m.grad_ready = d.dev->grads_ready;
            m.grad_ready_ctx = d.dev->ctx;
            if (zero1) {
                rlc_model_zero_grad(&m);
                fwd_bwd(&m, mbs[0]);
                d.dev->grads_ready(d.dev->ctx, m.grads, n, 0); // premature
                rlc_model_arm_grad_ready(&m);
                fwd_bwd(&m, mbs[1]);
                GPU->upload(out, nan.data(), n * sizeof(float));
                d.dev->reduce_scatter_grads(d.dev->ctx, m.grads, out, n);
                size_t bad = first_diff(dl(out, n), ref);
                CHECK(bad < n, "B=%zu: a premature launch went unnoticed", B);
                printf("    planted premature launch: shard differs from the final gradients at element %zu: caught\n",
                       bad);
            }
            m.grad_ready = NULL;
            m.grad_ready_ctx = NULL;
            rlc_dist_nccl_detach(&d);
            CHECK(d.dev == NULL, "detach");
        }
    }
    // overlap off: nothing during the backward, every bucket at the optimizer step
    {
        rlc_dist d;
        if (attach(&d, 0, 997, 0) == 0) {
            m.grad_ready = d.dev->grads_ready;
            m.grad_ready_ctx = d.dev->ctx;
            rlc_model_zero_grad(&m);
            fwd_bwd(&m, mbs[0]);
            rlc_model_arm_grad_ready(&m);
            fwd_bwd(&m, mbs[1]);
            CHECK(stats(&d).buckets == 0, "RLC_NCCL_OVERLAP=0: %ld buckets during the backward", stats(&d).buckets);
            d.dev->allreduce_grads(d.dev->ctx, m.grads, n);
            CHECK(stats(&d).buckets == (long)((n + 996) / 997), "RLC_NCCL_OVERLAP=0: all buckets at the step");
            CHECK(first_diff(dl(m.grads, n), ref) == n, "RLC_NCCL_OVERLAP=0: gradients");
            m.grad_ready = NULL;
            rlc_dist_nccl_detach(&d);
        }
    }
    // an abandoned step (rlc_sched_discard_grads): a rank whose backward launched everything and a rank that had
    // no micro-batch both complete the round with every bucket launched, in the same order
    for (int ran = 0; ran < 2; ran++) {
        rlc_dist d;
        if (attach(&d, 0, 997, 1) != 0) continue;
        m.grad_ready = d.dev->grads_ready;
        m.grad_ready_ctx = d.dev->ctx;
        rlc_model_zero_grad(&m);
        if (ran) {
            rlc_model_arm_grad_ready(&m);
            fwd_bwd(&m, mbs[1]);
        }
        rlc_sched_discard_grads(&d, &m);
        rlc_dist_dev_stats st = stats(&d);
        CHECK(st.rounds == 1 && st.buckets == (long)((n + 996) / 997),
              "discard after %s: %ld rounds, %ld buckets", ran ? "a backward" : "no backward", st.rounds, st.buckets);
        m.grad_ready = NULL;
        rlc_dist_nccl_detach(&d);
    }
    GPU->free(out);
    rlc_model_free(&m);
}

// ---- 3. SFT and GRPO optimizer steps with the device collectives forced on one rank vs without ----

static const char *const OVERRIDES[] = {
    "model.dim=32", "model.n_layers=2", "model.n_heads=2", "model.n_kv_heads=1", "model.head_dim=16",
    "model.hidden_dim=64", "model.max_seq_len=16", "task.name=addition", "task.digits=1", "task.min_digits=1",
    "sft.batch_size=8", "sft.micro_batch_tokens=40", "rollout.prompts_per_step=2", "rollout.group_size=4",
    "rollout.max_new_tokens=4", "rl.micro_batch_tokens=24", "rl.kl_beta=0.02", "rl.ent_coef=0.01", "seed=7"};

static void test_steps() {
    printf("SFT and GRPO steps: device collectives forced on one rank vs none\n");
    rlc_config cfg;
    char err[1024];
    CHECK(rlc_config_load(&cfg, NULL, OVERRIDES, (int)(sizeof OVERRIDES / sizeof OVERRIDES[0]), err, sizeof err) == 0,
          "config: %s", err);
    const rlc_task *task = rlc_task_find(cfg.task.name);
    rlc_dist d;
    if (attach(&d, 0, 1000, 1) != 0) return;
    rlc_rl p, q; // plain, with the device collectives
    CHECK(rlc_rl_init(&p, &cfg, GPU, task, 64) == 0 && rlc_rl_init(&q, &cfg, GPU, task, 64) == 0, "init");
    rlc_rl_set_dist(&p, NULL);
    rlc_rl_set_dist(&q, &d);
    CHECK(q.model.grad_ready == d.dev->grads_ready && p.model.grad_ready == NULL, "rlc_rl_set_dist sets the hook");
    rlc_model_init_weights(&p.model, cfg.seed);
    rlc_model_init_weights(&q.model, cfg.seed);
    const size_t n = p.model.n_params;

    rlc_sft_stats sp, sq;
    for (int s = 0; s < 2; s++) {
        rlc_sched_sft_step(&d, 0, &q.model, &q.opt, &cfg, task, 100 + 8 * (uint64_t)s, 1e-3f, &sq);
        rlc_sft_step(&p.model, &p.opt, &cfg, task, 100 + 8 * (uint64_t)s, 1e-3f, &sp);
        CHECK(sp.loss == sq.loss && sp.grad_norm == sq.grad_norm, "SFT step %d: loss %.9g / %.9g, grad norm %.9g / %.9g",
              s, sp.loss, sq.loss, sp.grad_norm, sq.grad_norm);
    }
    rlc_dist_dev_stats st = stats(&d);
    CHECK(st.rounds == 2 && st.buckets_overlapped > 0, "SFT: %ld rounds, %ld buckets overlapped", st.rounds,
          st.buckets_overlapped);
    size_t at = first_diff(dl(q.model.params, n), dl(p.model.params, n));
    CHECK(at == n, "SFT: weights differ at %zu", at);
    printf("    2 SFT steps: loss %.6f, identical weights; %ld buckets of %ld launched during the backward\n", sq.loss,
           st.buckets_overlapped, st.buckets);

    rlc_rl_begin(&p);
    rlc_rl_begin(&q);
    rlc_metrics mp, mq;
    memset(&mp, 0, sizeof mp);
    memset(&mq, 0, sizeof mq);
    rlc_metrics_begin(&mp);
    rlc_metrics_begin(&mq);
    CHECK(rlc_rl_step(&p, &mp) == 0 && rlc_rl_step(&q, &mq) == 0, "GRPO steps");
    for (const char *k : {"rollout_hash", "score_mean", "loss", "kl", "entropy", "grad_norm"}) {
        double a = rlc_metrics_get(&mp, k, NAN), b = rlc_metrics_get(&mq, k, NAN);
        CHECK(a == b || (isnan(a) && isnan(b)), "GRPO %s: %.9g without, %.9g with the device collectives", k, a, b);
    }
    CHECK(rlc_metrics_get(&mp, "grad_norm", 0) > 0, "GRPO: zero gradient");
    st = stats(&d);
    CHECK(st.rounds == 3, "GRPO: %ld rounds in all", st.rounds);
    at = first_diff(dl(q.model.params, n), dl(p.model.params, n));
    CHECK(at == n, "GRPO: weights differ at %zu", at);
    printf("    GRPO step: loss %.6f, grad norm %.6f, identical weights\n", rlc_metrics_get(&mq, "loss", NAN),
           rlc_metrics_get(&mq, "grad_norm", NAN));
    rlc_rl_free(&p);
    rlc_rl_free(&q);
    rlc_dist_nccl_detach(&d);
}

// ---- 4. bad settings and internal misuse: clear messages, the job ends ----
static void test_errors() {
    printf("errors\n");
    rlc_dist d;
    rlc_dist_single(&d);
    char err[512] = "";
    setenv("RLC_NCCL_BUCKET_MB", "lots", 1);
    CHECK(rlc_dist_nccl_attach(&d, 0, err, sizeof err) != 0 && strstr(err, "RLC_NCCL_BUCKET_MB") && !d.dev,
          "bad RLC_NCCL_BUCKET_MB: \"%s\"", err);
    unsetenv("RLC_NCCL_BUCKET_MB");
    printf("    %s\n", err);
    setenv("RLC_NCCL_OVERLAP", "yes", 1);
    CHECK(rlc_dist_nccl_attach(&d, 0, err, sizeof err) != 0 && strstr(err, "RLC_NCCL_OVERLAP"), "bad RLC_NCCL_OVERLAP");
    unsetenv("RLC_NCCL_OVERLAP");
#ifdef RLC_EMU // a forked child cannot use the parent's CUDA context on a GPU
    rlc_test::expect_death("all-reduce in a ZeRO-1 job", [] {
        rlc_dist z;
        char e[256];
        rlc_dist_single(&z);
        if (rlc_dist_nccl_attach(&z, 1, e, sizeof e) != 0) return;
        float *g = (float *)GPU->alloc(64);
        z.dev->allreduce_grads(z.dev->ctx, g, 16);
    }, "internal error");
#endif
}

int main() {
    GPU = rlc_ops_cuda();
    rlc_ops_cuda_set_precision(RLC_CUDA_FP32);
    double t0 = rlc_now();
    test_comm();
    test_rounds(0);
    test_rounds(1);
    test_steps();
    test_errors();
    printf("%.1f s\n", rlc_now() - t0);
    return test_finish("test_grad_overlap");
}
