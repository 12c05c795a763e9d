// tests/emu/nccl_ranks.cpp: the NCCL gradient path of multi-GPU training with several ranks, without a GPU. Run
// under `mpirun -np 2` (tests/emu/CMakeLists.txt; any -np >= 2 works), each rank one process with the emulated
// CUDA backend: kernels/cuda/rlc_comm is the emulated NCCL over MPI, host/comm_nccl.c makes the bucketed gradient
// rounds (overlapped with the backward, or at the optimizer step), ZeRO-1's reduce-scatter and the all-gather of
// the weights, attached by host/backend.c's rlc_backend_attach_dist as `rlc train` attaches it.
//
//   nccl_ranks fp32   1. rlc_comm's collectives against values every rank computes itself, bit for bit: all-reduce
//                        (fp32, bf16; in place), broadcast from the last rank, all-gather, reduce-scatter, the
//                        shard reduce-scatter in ranges of 3 and the shard all-gather (even shards, and a layout where
//                        rank 0 owns nothing), at 1, 37, 1000 (1, 10, 1001) elements; results only at the wait; a
//                        collective that reads what the one before it wrote; a failed call aborts the communicator;
//                        creation with different ids, or with ranks that are not MPI's, fails on every rank.
//                     2. the job below in fp32, then
//   nccl_ranks mixed  the job in mixed precision.
//   The job: a policy warmed up on the CPU (WARM_STEPS SFT steps, every rank alone), then on the CUDA backend 2 SFT
//   steps and 3 GRPO steps of 2 mini-batches x 2 epochs (14 optimizer steps, each a gradient round), on all ranks
//   with the NCCL path in several settings (ZeRO-1 off / on, overlap on / off, 1 to 42 buckets per round), each
//   against the same job on one rank without collectives (every rank runs that reference itself): identical
//   rollouts (rollout_hash and scores of every step), every other metric of every step within TOL relative (1e-6
//   absolute floor, as tests/test_ranks.c), the final weights and AdamW moments (all-gathered over NCCL under
//   ZeRO-1) within TOL relative per tensor (L2); ZeRO-1 against no ZeRO-1 within TOL; weights and moments the same
//   bytes on every rank; the expected number of rounds and buckets, all launched during the backward with overlap
//   and none without. In fp32 the ranks also run the job without the NCCL path (gradients staged through host
//   memory to MPI, the path the CPU rank tests cover): with 2 ranks every NCCL setting must give its weights and
//   moments bit for bit. A planted bug must be caught: in fp32 a premature launch (every bucket reported final at
//   the first report of a backward), in mixed precision a ZeRO-1 job whose bf16 working weights are not refreshed
//   after the all-gather (no params_written).
//   nccl_ranks fp32|mixed paths  the same with fewer settings: each path once, no planted bug (the ASan build's run)
//   nccl_ranks job    the job once with the NCCL path, overlap off, nothing compared: the failure tests run it
//                     with RLC_EMU_COMM_FAIL or RLC_EMU_COMM_HANG (kernels/cuda/rlc_comm.cu) and expect every rank to
//                     end with the failing or the waiting rank's message.
//
// Tolerances: 1e-5 relative in both precision modes, as the CPU path's rank tests (tests/cli_tests.cmake). The
// ranks' gradients are the same per-sequence terms summed in another order (a sequence's log-probs do not depend
// on the other sequences of its micro-batch: one rank with other micro-batch sizes gave the same log-probs and
// losses bit for bit, the gradient norm within 3e-12), so the jobs differ by fp32 round-off, which the bf16
// roundings pass on only where a value lies within it of a rounding boundary. Measured with 2 ranks: fp32 worst
// tensor 3.4e-6 (an AdamW first moment), metrics at 0.58 of the bound (logp_mismatch_max, a difference of log-probs
// at bf16-noise level, within the absolute floor); mixed worst tensor 1.6e-7, metrics 4.7e-6 relative. The fp32
// mode is not fp32 throughout: attention and the fused log-prob run in bf16 in every mode (ops_cuda.h). Hence the
// warm start: on an untrained policy every GRPO group scores alike, the policy gradient is zero, and what is left
// (the KL and ratio terms) is made of differences of log-probs at bf16-noise level (~1e-3), where those flips are
// no longer small against the signal: 2 ranks and 1 then differed by 1e-4 to 1e-3 after one GRPO step (with and
// without the NCCL path alike). The job keeps AdamW eps 1e-6 and an entropy bonus for the same reason as the CPU
// rank tests.
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

static const double TOL = 1e-5; // both precision modes (see above)

static rlc_dist WORLD;
static const rlc_ops *GPU;

static const char *const OVERRIDES[] = {
    "model.dim=32", "model.n_layers=2", "model.n_heads=2", "model.n_kv_heads=1", "model.head_dim=16",
    "model.hidden_dim=64", "model.max_seq_len=16", "task.name=addition", "task.digits=1", "task.min_digits=1",
    "sft.batch_size=16", "sft.micro_batch_tokens=48", "sft.teacher_error=0", "rollout.prompts_per_step=4",
    "rollout.group_size=4", "rollout.max_new_tokens=4", "rl.micro_batch_tokens=24", "rl.mini_batches=2",
    "rl.epochs=2", "rl.kl_beta=0.02", "rl.ent_coef=0.01", "rl.optim.lr=1e-3", "sft.optim.lr=1e-3",
    "rl.optim.eps=1e-6", "sft.optim.eps=1e-6", "seed=7"};
static const int WARM_STEPS = 200, SFT_STEPS = 2, RL_STEPS = 3;

// One setting of the NCCL path.
struct Setting {
    int zero1, overlap;
    const char *bucket_mb; // RLC_NCCL_BUCKET_MB
    enum Bug { NONE, PREMATURE, NO_REFRESH } bug;
    bool path = false; // in the `paths` run: each path of the NCCL gradient code once
};

// What a job leaves: every step's metrics, the final weights and moments (whole model), per-tensor extents.
struct Result {
    std::vector<std::vector<std::pair<std::string, double>>> steps; // SFT steps, then RL steps
    std::vector<float> w, m, v;
    std::vector<std::pair<std::string, std::pair<size_t, size_t>>> tensors; // name, (offset, numel)
    rlc_dist_dev_stats st;
    double seconds;
};

static int skip_key(const std::string &k) {
    return k.compare(0, 5, "time_") == 0 || (k.size() >= 6 && k.compare(k.size() - 6, 6, "_per_s") == 0) ||
           k == "rollout_waves";
}

static std::vector<std::pair<std::string, double>> record(const rlc_metrics &mt) {
    std::vector<std::pair<std::string, double>> r;
    for (int i = 0; i < mt.n; i++)
        if (!skip_key(mt.keys[i])) r.push_back({mt.keys[i], mt.vals[i]});
    return r;
}

static std::vector<float> dl(const rlc_f *p, size_t n) {
    std::vector<float> h(n);
    GPU->download(h.data(), p, n * sizeof(float));
    return h;
}

// The planted premature launch (rlc_model.grad_ready with the device collectives as ctx): every report of a
// backward says that every gradient is final, so its first report launches all the buckets.
static void premature_ready(void *ctx, rlc_f *grads, size_t n, size_t first) {
    const rlc_dist_dev *dev = (const rlc_dist_dev *)ctx;
    (void)first;
    dev->grads_ready(dev->ctx, grads, n, 0);
}

static rlc_config load_config(int zero1) {
    std::vector<const char *> ov(OVERRIDES, OVERRIDES + sizeof OVERRIDES / sizeof OVERRIDES[0]);
    if (zero1) ov.push_back("rl.zero1=true");
    rlc_config cfg;
    char err[1024];
    if (rlc_config_load(&cfg, NULL, ov.data(), (int)ov.size(), err, sizeof err) != 0) {
        fprintf(stderr, "config: %s\n", err);
        exit(1);
    }
    return cfg;
}

// The starting weights: SFT on the CPU backend (every rank the same, alone), a policy that answers some
// problems, so that GRPO groups have a spread of scores and the gradients a real signal.
static std::vector<float> warm_start() {
    rlc_config cfg = load_config(0);
    rlc_rl c;
    if (rlc_rl_init(&c, &cfg, rlc_ops_cpu(), rlc_task_find(cfg.task.name), 64) != 0) exit(1);
    rlc_rl_set_dist(&c, NULL);
    rlc_model_init_weights(&c.model, cfg.seed);
    rlc_sft_stats st = {};
    for (int s = 0; s < WARM_STEPS; s++)
        rlc_sft_step(&c.model, &c.opt, &cfg, c.task, 100000 + (uint64_t)s * cfg.sft.batch_size, 1e-2f, &st);
    std::vector<float> w(c.model.params, c.model.params + c.model.n_params);
    rlc_rl_free(&c);
    return w;
}
static std::vector<float> WARM;

// The job: SFT steps, then GRPO steps, from WARM, on group d (its NCCL path attached or not), backend ops.
static Result run_job(const rlc_dist *d, const rlc_ops *ops, int zero1, Setting::Bug bug) {
    Result res;
    double t0 = rlc_now();
    rlc_config cfg = load_config(zero1);
    const rlc_task *task = rlc_task_find(cfg.task.name);
    rlc_rl rl;
    if (rlc_rl_init(&rl, &cfg, ops, task, 64) != 0) {
        CHECK(0, "rlc_rl_init");
        return res;
    }
    rlc_rl_set_dist(&rl, d);
    if (bug == Setting::PREMATURE && d->dev) {
        rl.model.grad_ready = premature_ready;
        rl.model.grad_ready_ctx = (void *)d->dev;
    }
    CHECK(rl.model.n_params == WARM.size(), "model size");
    ops->upload(rl.model.params, WARM.data(), WARM.size() * sizeof(float));
    rlc_metrics mt;
    memset(&mt, 0, sizeof mt);
    for (int s = 0; s < SFT_STEPS; s++) {
        rlc_sft_stats st;
        float lr = rlc_lr_at(&cfg.sft.optim, s, SFT_STEPS);
        rlc_sched_sft_step(d, cfg.rl.zero1, &rl.model, &rl.opt, &cfg, task, (uint64_t)s * cfg.sft.batch_size, lr, &st);
        rlc_metrics_begin(&mt);
        rlc_metrics_add(&mt, "sft_loss", st.loss);
        rlc_metrics_add(&mt, "sft_grad_norm", st.grad_norm);
        res.steps.push_back(record(mt));
    }
    rlc_rl_begin(&rl);
    for (int s = 0; s < RL_STEPS; s++) {
        rlc_metrics_begin(&mt);
        CHECK(rlc_rl_step(&rl, &mt) == 0, "GRPO step %d", s + 1);
        res.steps.push_back(record(mt));
    }
    const size_t n = rl.model.n_params;
    res.w = dl(rl.model.params, n);
    rlc_f *fm = (rlc_f *)ops->alloc(n * sizeof(rlc_f)), *fv = (rlc_f *)ops->alloc(n * sizeof(rlc_f));
    rlc_sched_adamw_gather(d, cfg.rl.zero1, &rl.opt, &rl.model, fm, fv);
    res.m = dl(fm, n);
    res.v = dl(fv, n);
    ops->free(fm);
    ops->free(fv);
    for (int i = 0; i < rl.model.n_tensors; i++) {
        const rlc_tensor_info *t = &rl.model.tensors[i];
        res.tensors.push_back({t->name, {t->offset, t->numel}});
    }
    memset(&res.st, 0, sizeof res.st);
    if (d->dev) d->dev->stats(d->dev->ctx, &res.st);
    rlc_rl_free(&rl);
    res.seconds = rlc_now() - t0;
    return res;
}

// Worst relative differences of b against a: metrics (|a - b| / max(|a|, |b|), over values above 1e-3) and
// tensors (||a - b|| / ||a|| per tensor of w, m, v); bad counts what exceeds tol (metrics: tol max(|a|, |b|) + 1e-6;
// rollout_hash and score_mean: exactly).
struct Diff {
    int bad = 0;
    double metric = 0, tensor = 0, used = 0; // used: the largest fraction of the allowed difference
    std::string where, twhere; // the metric and the tensor of the largest differences
};

static Diff compare(const Result &a, const Result &b, double tol, int verbose) {
    Diff d;
    if (a.steps.size() != b.steps.size() || a.w.size() != b.w.size() || a.w.empty()) {
        d.bad++;
        d.where = "different numbers of steps or parameters";
        return d;
    }
    for (size_t s = 0; s < a.steps.size(); s++) {
        if (a.steps[s].size() != b.steps[s].size()) {
            d.bad++;
            continue;
        }
        for (size_t k = 0; k < a.steps[s].size(); k++) {
            const std::string &key = a.steps[s][k].first;
            double x = a.steps[s][k].second, y = b.steps[s][k].second;
            bool exact = key == "rollout_hash" || key == "score_mean" || key == "step";
            double diff = fabs(x - y), big = fmax(fabs(x), fabs(y)), lim = exact ? 0 : tol * big + 1e-6;
            if (!exact && diff / lim > d.used) d.used = diff / lim;
            if (b.steps[s][k].first != key || !(diff <= lim)) {
                if (verbose && d.bad < 8) printf("      step %zu %s: %.9g vs %.9g\n", s + 1, key.c_str(), x, y);
                d.bad++;
            }
            if (!exact && big > 1e-3 && diff / big > d.metric) {
                d.metric = diff / big;
                d.where = "step " + std::to_string(s + 1) + " " + key;
            }
        }
    }
    const std::vector<float> *va[3] = {&a.w, &a.m, &a.v}, *vb[3] = {&b.w, &b.m, &b.v};
    const char *what[3] = {"weight", "adam m", "adam v"};
    for (int j = 0; j < 3; j++)
        for (const auto &t : a.tensors) {
            double dd = 0, na = 0;
            for (size_t i = t.second.first; i < t.second.first + t.second.second; i++) {
                double x = (*va[j])[i], y = (*vb[j])[i];
                dd += (x - y) * (x - y);
                na += x * x;
            }
            double rel = dd == 0 ? 0 : sqrt(dd) / fmax(sqrt(na), 1e-30);
            if (!(rel <= tol)) {
                if (verbose && d.bad < 8)
                    printf("      %s %s: relative difference %.3g\n", what[j], t.first.c_str(), rel);
                d.bad++;
            }
            if (rel / tol > d.used) d.used = rel / tol;
            if (rel > d.tensor) {
                d.tensor = rel;
                d.twhere = std::string(what[j]) + " " + t.first;
            }
        }
    return d;
}

// Every rank holds the same bytes (hash min == max over the group).
static bool same_on_all_ranks(const std::vector<float> &x) {
    uint64_t h = 1469598103934665603ull;
    const unsigned char *p = (const unsigned char *)x.data();
    for (size_t i = 0; i < x.size() * sizeof(float); i++) h = (h ^ p[i]) * 1099511628211ull;
    int64_t lo = (int64_t)(h >> 1), hi = lo;
    rlc_dist_allreduce_i64(&WORLD, &lo, 1, RLC_RED_MIN);
    rlc_dist_allreduce_i64(&WORLD, &hi, 1, RLC_RED_MAX);
    return lo == hi;
}

// The job with the NCCL path attached to the whole group in setting s.
static Result run_nccl(const Setting &s, const rlc_ops *ops) {
    setenv("RLC_NCCL_BUCKET_MB", s.bucket_mb, 1);
    setenv("RLC_NCCL_OVERLAP", s.overlap ? "1" : "0", 1);
    rlc_dist d = WORLD;
    char err[512] = "";
    Result r;
    int rc = rlc_backend_attach_dist(ops, &d, rlc_sched_zero1_active(&d, s.zero1), 0, err, sizeof err);
    CHECK(rc == 0 && d.dev, "attach the NCCL path: %s", err);
    if (rc == 0 && d.dev) {
        CHECK(d.dev->zero1 == s.zero1 && d.dev->overlap == s.overlap, "attached setting");
        r = run_job(&d, ops, s.zero1, s.bug);
        rlc_backend_detach_dist(&d);
        CHECK(d.dev == NULL, "detach");
    }
    unsetenv("RLC_NCCL_BUCKET_MB");
    unsetenv("RLC_NCCL_OVERLAP");
    return r;
}

// ---- 1. rlc_comm's collectives over the ranks, against values every rank computes itself ----

static rlc_comm *comm_create(int nranks, int rank, const unsigned char *id_in) {
    unsigned char id[RLC_COMM_ID_BYTES];
    if (WORLD.rank == 0) rlc_comm_get_unique_id(id);
    rlc_dist_bcast(&WORLD, id, sizeof id, 0);
    return rlc_comm_create(nranks, rank, id_in ? id_in : id, 30.0);
}

template <class T> static T *dev(const std::vector<T> &h) { return rlc_test::to_backend(GPU, h); }
template <class T> static std::vector<T> host(const T *d, size_t n) { return rlc_test::from_backend(GPU, d, n); }

static int wait_all(rlc_comm *c) {
    cudaEvent_t ev;
    cudaEventCreate(&ev);
    cudaEventRecord(ev, nullptr);
    int rc = rlc_comm_wait(c, ev);
    cudaEventDestroy(ev);
    return rc;
}

// Rank q's value i (a different hash per rank) and the sum over ranks in rank order, in fp32 (rlc_comm.cu's order).
static float val(int q, size_t i) { return rlc_test::hash_uniform((uint32_t)i, 1000u + (uint32_t)q); }
static float sum_val(size_t i) {
    float s = val(0, i);
    for (int q = 1; q < WORLD.size; q++) s += val(q, i);
    return s;
}

static void test_collectives() {
    const int R = WORLD.size, me = WORLD.rank;
    if (me == 0) printf("rlc_comm over MPI: %d ranks\n", R);
    rlc_comm *c = comm_create(R, me, NULL);
    CHECK(c && rlc_comm_rank(c) == me && rlc_comm_nranks(c) == R, "communicator of %d ranks", R);
    if (!c) return;
    for (size_t n : {(size_t)1, (size_t)37, (size_t)1000}) {
        std::vector<float> x(n), want(n), nan(n, NAN);
        for (size_t i = 0; i < n; i++) x[i] = val(me, i), want[i] = sum_val(i);
        float *dx = dev(x), *dy = dev(nan);
        // all-reduce, out of place then in place; nothing is written before the wait
        CHECK(rlc_comm_allreduce_sum_f32(c, dx, dy, n, nullptr) == 0, "all-reduce: %s", rlc_comm_error(c));
        CHECK(isnan(host(dy, 1)[0]), "n=%zu: the result arrives at the wait, not at the enqueue", n);
        CHECK(rlc_comm_allreduce_sum_f32(c, dx, dx, n, nullptr) == 0, "all-reduce in place");
        CHECK(wait_all(c) == 0, "wait: %s", rlc_comm_error(c));
        CHECK(host(dy, n) == want && host(dx, n) == want, "n=%zu: all-reduce = the sum in rank order, bit for bit", n);
        // bf16: summed in fp32 in rank order, rounded once
        std::vector<__nv_bfloat16> xb(n), wb(n);
        for (size_t i = 0; i < n; i++) {
            xb[i] = __float2bfloat16_rn(val(me, i));
            float sb = __bfloat162float(__float2bfloat16_rn(val(0, i)));
            for (int q = 1; q < R; q++) sb += __bfloat162float(__float2bfloat16_rn(val(q, i)));
            wb[i] = __float2bfloat16_rn(sb);
        }
        __nv_bfloat16 *dxb = dev(xb);
        CHECK(rlc_comm_allreduce_sum_bf16(c, dxb, dxb, n, nullptr) == 0 && wait_all(c) == 0, "bf16 all-reduce");
        std::vector<__nv_bfloat16> gb = host(dxb, n);
        CHECK(memcmp(gb.data(), wb.data(), n * 2) == 0, "n=%zu: bf16 all-reduce = fp32 sum rounded once", n);
        // broadcast from the last rank; all-gather in rank order
        std::vector<float> b(n);
        for (size_t i = 0; i < n; i++) b[i] = me == R - 1 ? val(me, i) : NAN;
        float *db = dev(b), *dg = (float *)GPU->alloc(n * R * sizeof(float));
        CHECK(rlc_comm_broadcast(c, db, n * sizeof(float), R - 1, nullptr) == 0, "broadcast");
        CHECK(rlc_comm_allgather(c, dx, dg, n * sizeof(float), nullptr) == 0, "all-gather"); // dx holds the sums
        CHECK(wait_all(c) == 0, "wait");
        std::vector<float> hb = host(db, n), hg = host(dg, n * R);
        bool ok_b = true, ok_g = true;
        for (size_t i = 0; i < n; i++) {
            ok_b = ok_b && hb[i] == val(R - 1, i);
            for (int q = 0; q < R; q++) ok_g = ok_g && hg[q * n + i] == want[i];
        }
        CHECK(ok_b, "n=%zu: broadcast from rank %d", n, R - 1);
        CHECK(ok_g, "n=%zu: all-gather", n);
        // reduce-scatter of (R n): rank q gets the sum of every rank's block q
        std::vector<float> big(n * R);
        for (size_t i = 0; i < n * R; i++) big[i] = val(me, i);
        float *dbig = dev(big);
        CHECK(rlc_comm_reduce_scatter_sum_f32(c, dbig, dy, n, nullptr) == 0 && wait_all(c) == 0, "reduce-scatter");
        std::vector<float> hy = host(dy, n);
        bool ok_rs = true;
        for (size_t i = 0; i < n; i++) ok_rs = ok_rs && hy[i] == sum_val((size_t)me * n + i);
        CHECK(ok_rs, "n=%zu: reduce-scatter", n);
        // the order of one stream: an all-reduce in place, then a broadcast of the same buffer before any wait
        // must broadcast the sums
        GPU->upload(dx, x.data(), n * sizeof(float));
        CHECK(rlc_comm_allreduce_sum_f32(c, dx, dx, n, nullptr) == 0 &&
                  rlc_comm_broadcast(c, dx, n * sizeof(float), 0, nullptr) == 0 && wait_all(c) == 0,
              "all-reduce then broadcast");
        CHECK(host(dx, n) == want, "n=%zu: a collective reads what the one before it on the stream wrote", n);
        for (float *p : {dx, dy, db, dg, dbig}) GPU->free(p);
        GPU->free(dxb);
    }
    // shards of different sizes, one of them empty: reduce-scatter in ranges of 3 from the end, all-gather
    for (size_t n : {(size_t)1, (size_t)10, (size_t)1001}) {
        for (int layout = 0; layout < 2; layout++) {
            std::vector<size_t> starts((size_t)R + 1, 0);
            for (int q = 0; q < R; q++) { // layout 0: rlc_dist_shard's split; 1: rank 0 owns nothing
                size_t a, b;
                rlc_dist_shard(n, R, q, &a, &b);
                starts[(size_t)q + 1] = layout == 0 ? b : n * (size_t)q / (size_t)(R - 1);
            }
            const size_t lo = starts[(size_t)me], hi = starts[(size_t)me + 1];
            std::vector<float> x(n), nan(n + 1, NAN);
            for (size_t i = 0; i < n; i++) x[i] = val(me, i);
            float *dx = dev(x), *dout = dev(nan);
            for (size_t b = n; b > 0;) {
                size_t a = b >= 3 ? b - 3 : 0;
                CHECK(rlc_comm_reduce_scatter_range_f32(c, dx, dout, starts.data(), a, b, nullptr) == 0, "range");
                b = a;
            }
            CHECK(wait_all(c) == 0, "wait");
            std::vector<float> o = host(dout, n + 1);
            bool ok = true;
            for (size_t i = 0; i < hi - lo; i++) ok = ok && o[i] == sum_val(lo + i);
            CHECK(ok && isnan(o[hi - lo]), "n=%zu layout %d: rank %d's shard [%zu, %zu) of the sum, nothing past it", n,
                  layout, me, lo, hi);
            CHECK(host(dx, n) == x, "reduce-scatter leaves x");
            // all-gather: x holds this rank's shard (its sums) on entry
            std::vector<float> y(n, NAN), wy(n);
            for (size_t i = 0; i < n; i++) wy[i] = sum_val(i);
            for (size_t i = lo; i < hi; i++) y[i] = wy[i];
            GPU->upload(dx, y.data(), n * sizeof(float));
            CHECK(rlc_comm_allgather_shards_f32(c, dx, starts.data(), nullptr) == 0 && wait_all(c) == 0, "all-gather");
            CHECK(host(dx, n) == wy, "n=%zu layout %d: all-gather of the shards", n, layout);
            GPU->free(dx);
            GPU->free(dout);
        }
    }
    // a failed call leaves its reason and aborts the communicator (as an NCCL error does)
    CHECK(rlc_comm_broadcast(c, nullptr, 4, R, nullptr) == -1 && strstr(rlc_comm_error(c), "out of range"),
          "root %d of %d ranks: \"%s\"", R, R, rlc_comm_error(c));
    if (me == 0) printf("    root %d of %d ranks: %s\n", R, R, rlc_comm_error(c));
    CHECK(rlc_comm_allreduce_sum_f32(c, nullptr, nullptr, 0, nullptr) == -1 && strstr(rlc_comm_error(c), "aborted"),
          "after an error every call fails: \"%s\"", rlc_comm_error(c));
    if (me == 0) printf("    then: %s\n", rlc_comm_error(c));
    rlc_comm_destroy(c);
    // creation must agree on every rank: another id on rank 1, or a rank that is not MPI's, fails everywhere
    unsigned char other[RLC_COMM_ID_BYTES];
    rlc_comm_get_unique_id(other);
    other[20] ^= 1;
    if (me == 0)
        printf("    creation with different ids, then with ranks not MPI's (their errors on stderr are expected)\n");
    fflush(stdout);
    rlc_comm *bad = comm_create(R, me, me == 1 ? other : NULL);
    CHECK(bad == nullptr, "ranks with different ids");
    rlc_comm_destroy(bad);
    bad = comm_create(R, (me + 1) % R, NULL);
    CHECK(bad == nullptr, "ranks that are not MPI's");
    rlc_comm_destroy(bad);
}

// ---- 2. the training job ----

static void test_mode(int mode, bool paths_only) {
    const char *name = rlc_ops_cuda_precision_name(mode);
    const double tol = TOL;
    rlc_ops_cuda_set_precision(mode);
    const bool r0 = WORLD.rank == 0;
    if (r0) printf("precision %s, %d ranks against 1, tolerance %.0e\n", name, WORLD.size, tol);

    rlc_dist one;
    rlc_dist_single(&one);
    Result ref = run_job(&one, GPU, 0, Setting::NONE);
    CHECK(same_on_all_ranks(ref.w), "the 1-rank reference is deterministic (the same on every rank)");
    const size_t n = ref.w.size();
    double last_loss = NAN;
    for (const auto &kv : ref.steps.back())
        if (kv.first == "loss") last_loss = kv.second;
    if (r0)
        printf("    1 rank, no collectives: %zu parameters, %zu steps, last GRPO loss %.6f, %.1f s\n", n,
               ref.steps.size(), last_loss, ref.seconds);
    // the ranks without the NCCL path: the gradients staged through host memory to MPI (the path CPU-tested by
    // tests/cli_tests.cmake's rank tests); with 2 ranks every sum is x_0 + x_1 on both paths: the same bits
    Result staged;
    if (mode == RLC_CUDA_FP32) {
        staged = run_job(&WORLD, GPU, 0, Setting::NONE);
        Diff d = compare(ref, staged, tol, 1);
        CHECK(d.bad == 0, "%s: %d ranks without NCCL: %d values differ from the 1-rank job beyond %.0e", name,
              WORLD.size, d.bad, tol);
        if (r0)
            printf("    %d ranks, staged to MPI: vs 1 rank: %.2g of the bound; largest relative differences %.2g (%s), "
                   "%.2g (%s); %.1f s\n", WORLD.size, d.used, d.metric, d.where.c_str(), d.tensor, d.twhere.c_str(),
                   staged.seconds);
    }

    std::vector<Setting> settings;
    // path: the `paths` run's settings (the ASan build's), each path of the NCCL gradient code once (plain and
    // ZeRO-1, overlap on and off in fp32; the mixed precision's bf16 refresh after ZeRO-1's all-gather), no
    // planted bug (the build without sanitizers runs every setting and the planted bugs)
    if (mode == RLC_CUDA_FP32)
        settings = {{0, 1, "0.01", Setting::NONE, true},  {0, 0, "0.002", Setting::NONE, true},
                    {0, 1, "25", Setting::NONE},          {1, 1, "0.003", Setting::NONE, true},
                    {1, 0, "25", Setting::NONE, true},    {0, 1, "0.01", Setting::PREMATURE}};
    else
        settings = {{0, 1, "0.01", Setting::NONE, true}, {1, 1, "0.003", Setting::NONE, true},
                    {1, 0, "25", Setting::NONE}, {1, 1, "0.003", Setting::NO_REFRESH}};
    const Result *plain = nullptr, *zero1 = nullptr;
    std::vector<Result> kept;
    kept.reserve(settings.size());
    for (const Setting &s : settings) {
        if (paths_only && !s.path) continue;
        rlc_ops no_refresh = *GPU; // the planted bug: NCCL's writes into the weights leave the bf16 copy stale
        no_refresh.params_written = NULL;
        kept.push_back(run_nccl(s, s.bug == Setting::NO_REFRESH ? &no_refresh : GPU));
        const Result &r = kept.back();
        Diff d = compare(ref, r, tol, s.bug == Setting::NONE);
        const long rounds = r.st.rounds;
        if (r0)
            printf("    %-7s overlap %-3s buckets of %-5s MiB: %4.1f buckets per round, %5.1f%% overlapped; vs 1 rank: "
                   "%.2g of the bound; largest relative differences %.2g (%s), %.2g (%s); %.1f s%s\n",
                   s.zero1 ? "ZeRO-1" : "plain", s.overlap ? "on" : "off", s.bucket_mb,
                   rounds ? (double)r.st.buckets / rounds : 0.0,
                   r.st.buckets ? 100.0 * r.st.buckets_overlapped / r.st.buckets : 0.0, d.used, d.metric,
                   d.where.c_str(), d.tensor, d.twhere.c_str(), r.seconds,
                   s.bug == Setting::PREMATURE    ? "  [planted: premature launch]"
                   : s.bug == Setting::NO_REFRESH ? "  [planted: no bf16 refresh]"
                                                  : "");
        if (s.bug != Setting::NONE) {
            CHECK(d.bad > 0, "%s: the planted bug went unnoticed (largest differences %.3g, %.3g)", name, d.metric,
                  d.tensor);
            if (r0) printf("      planted bug caught: %d values out of tolerance\n", d.bad);
            continue;
        }
        CHECK(d.bad == 0, "%s, %s, overlap %d, buckets of %s MiB: %d values differ from the 1-rank job beyond %.0e",
              name, s.zero1 ? "ZeRO-1" : "plain", s.overlap, s.bucket_mb, d.bad, tol);
        // the gradient rounds: one per optimizer step (SFT_STEPS + RL_STEPS x 2 mini-batches x 2 epochs)
        const long want_rounds = SFT_STEPS + RL_STEPS * 4;
        const double b_elems = atof(s.bucket_mb) * 1048576.0 / 4;
        const long per_round = (long)ceil((double)n / (b_elems < 1 ? 1 : (double)(size_t)b_elems));
        CHECK(rounds == want_rounds && r.st.buckets == want_rounds * per_round,
              "%ld rounds of %ld buckets, expected %ld of %ld", rounds, r.st.buckets, want_rounds, per_round);
        // (every rank has micro-batches in every step of this job: with overlap, its backward launches them all)
        CHECK(r.st.buckets_overlapped == (s.overlap ? r.st.buckets : 0),
              "overlap %d: %ld of %ld buckets launched during a backward", s.overlap, r.st.buckets_overlapped,
              r.st.buckets);
        // against the ranks staged to MPI (no ZeRO-1): the same weights and moments; the same metrics too without
        // ZeRO-1 (with it the gradient norm is the root of a sum of the shards' sums of squares: another rounding)
        if (!staged.w.empty() && WORLD.size == 2)
            CHECK(staged.w == r.w && staged.m == r.m && staged.v == r.v && (s.zero1 || staged.steps == r.steps),
                  "%s, overlap %d, buckets of %s MiB: 2 ranks over the NCCL path and staged to MPI differ",
                  s.zero1 ? "ZeRO-1" : "plain", s.overlap, s.bucket_mb);
        CHECK(same_on_all_ranks(r.w) && same_on_all_ranks(r.m) && same_on_all_ranks(r.v),
              "%s: every rank holds the same weights and moments", s.zero1 ? "ZeRO-1" : "plain");
        if (!s.zero1 && !plain) plain = &r;
        if (s.zero1 && !zero1) zero1 = &r;
    }
    if (plain && zero1) {
        Diff d = compare(*plain, *zero1, tol, 1);
        CHECK(d.bad == 0, "%s: ZeRO-1 against no ZeRO-1: %d values differ beyond %.0e", name, d.bad, tol);
        if (r0)
            printf("    ZeRO-1 against plain, %d ranks each: largest relative differences %.2g, %.2g%s\n", WORLD.size,
                   d.metric, d.tensor,
                   staged.w.empty() || WORLD.size != 2
                       ? ""
                       : "; every setting's weights and moments = those staged to MPI, bit for bit");
    }
}

int main(int argc, char **argv) {
    char err[512];
    if (rlc_dist_init(&WORLD, &argc, &argv, err, sizeof err) != 0) {
        fprintf(stderr, "nccl_ranks: %s\n", err);
        return 1;
    }
    const char *mode = argc > 1 ? argv[1] : "";
    const bool paths_only = argc > 2 && !strcmp(argv[2], "paths");
    if (WORLD.size < 2 || (strcmp(mode, "fp32") && strcmp(mode, "mixed") && strcmp(mode, "job")) ||
        (argc > 2 && !paths_only) || argc > 3) {
        fprintf(stderr, "usage: mpirun -np 2 nccl_ranks fp32|mixed|job [paths] (%d rank%s here)\n", WORLD.size,
                WORLD.size > 1 ? "s" : "");
        rlc_dist_finalize(&WORLD);
        return 1;
    }
    GPU = rlc_ops_cuda();
    double t0 = rlc_now();
    WARM = warm_start();
    CHECK(same_on_all_ranks(WARM), "the warm start is the same on every rank");
    if (WORLD.rank == 0) printf("warm start: %d SFT steps on the CPU, %.1f s\n", WARM_STEPS, rlc_now() - t0);
    if (!strcmp(mode, "job")) {
        rlc_ops_cuda_set_precision(RLC_CUDA_FP32);
        run_nccl({0, 0, "0.01", Setting::NONE}, GPU);
    } else {
        if (!strcmp(mode, "fp32")) test_collectives();
        test_mode(!strcmp(mode, "fp32") ? RLC_CUDA_FP32 : RLC_CUDA_MIXED, paths_only);
    }
    if (WORLD.rank == 0) printf("%.1f s\n", rlc_now() - t0);
    // every rank's verdict: a failed CHECK on any rank fails the test
    int64_t failed = test_failures;
    rlc_dist_allreduce_i64(&WORLD, &failed, 1, RLC_RED_SUM);
    rlc_dist_finalize(&WORLD);
    const int rc = test_finish("nccl_ranks");
    return failed ? 1 : rc;
}
