// tests/emu/test_decode_graphs.cpp: decode steps recorded as CUDA graphs and replayed (host/model.c
// decode_device, the CUDA backend's graph_* entries in kernels/cuda/ops_cuda.cu). Under the emulator (ctest label
// emu) the backend is rlc_cuda_emu, whose stream capture records the calls instead of running them;
// tests/gpu/test_decode_graphs.cpp builds the same file for a GPU.
//   1. A bad RLC_CUDA_GRAPHS is refused with the values it takes (a death test, before the device is touched).
//   2. The same decode schedule (prefills, then steps of 4, 3, 2 and again 4 rows, the batch shrinking and growing
//      as in a rollout) with graphs off and on, each from a fresh model and cache: every step's logits and the
//      whole KV cache afterwards are bitwise equal, and the steps ran as the policy says: the first two steps of
//      a key in a row run directly, the third is recorded, later steps of a recorded key are replayed (also after
//      other keys came between). Each recorded graph holds at least the step's ~15 launches per layer.
//   3. A graph the backend can no longer run as recorded (its workspace grew and moved between two steps) is not
//      launched: that step records the key again (the steps before had the key), and the results stay equal.
//   4. With the profiler on, steps run directly (the profiler times each call; the graph recorded before is
//      dropped); off again, the key is recorded again and replayed.
//   5. In fp32 mode attention_decode reads the slots on the host, which a recording cannot do: the recording is
//      discarded (nothing of it ran), the step runs directly, the key is not tried again, and the results equal
//      those with graphs off.
// The model has head dim 64 (dim 128, 2 query heads, 1 KV head, MLP 200, q/k/v biases, 2 layers), a KV cache of
// 4 slots of 48 tokens.
#define _Noreturn [[noreturn]] // C11 spelling in the C headers below
extern "C" {
#include "rlc/model.h"
}
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

#include "ops_cuda.h"
#include "test_common.h"
#include "test_util.h"

static const rlc_ops *GPU;
static const int SLOTS = 4, CAP = 48, T_MAX = 64;

static rlc_model_config model_cfg() {
    rlc_model_config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = 98, c.dim = 128, c.n_layers = 2, c.n_heads = 2, c.n_kv_heads = 1, c.head_dim = 64;
    c.hidden_dim = 200, c.max_seq_len = CAP, c.rms_eps = 1e-5f, c.rope_theta = 10000.0f;
    c.qkv_bias = 1;
    return c;
}

// What a schedule run gives: every step's logits, the caches afterwards, how the steps ran, graph sizes.
struct Run {
    std::vector<std::vector<float>> logits;
    std::vector<unsigned char> k, v;
    rlc_decode_graph_stats st;
    size_t min_nodes;
    bool ws_grew;
};

enum Extra { NONE, GROW_WORKSPACE, PROFILE };

// Rows per decode step: slots 0..n-1. extra happens before step `at`: GROW_WORKSPACE a matmul with an unregistered
// K x K weight (its bf16 copy goes through the workspace, K chosen so that it must grow and move), PROFILE the
// profiler on for steps at and at + 1.
static Run run_schedule(int mode, bool graphs, const std::vector<int> &sched, Extra extra, int at) {
    rlc_ops_cuda_set_precision(mode);
    rlc_model m;
    rlc_model_config c = model_cfg();
    CHECK(rlc_model_init(&m, &c, GPU, T_MAX) == 0, "model init");
    rlc_model_init_weights(&m, 3);
    rlc_model_set_decode_graphs(&m, graphs);
    rlc_kv_cache kv;
    CHECK(rlc_kv_cache_init(&kv, &m, SLOTS, CAP) == 0, "KV cache init");
    const int prompt[6] = {4, 8, 15, 16, 23, 42};
    for (int s = 0; s < SLOTS; s++) rlc_model_prefill(&m, &kv, s, prompt, 3 + s % 3, NULL);
    int K = 256; // the bf16 copy (2 K^2 bytes) above twice the workspace as it is
    while ((size_t)2 * K * K <= 2 * rlc_ops_cuda_workspace_bytes() + ((size_t)1 << 20)) K += 256;
    float *wbig = NULL, *xin = NULL, *xout = NULL;
    if (extra == GROW_WORKSPACE) {
        wbig = (float *)GPU->alloc((size_t)K * K * sizeof(float));
        xin = (float *)GPU->alloc((size_t)8 * K * GPU->act_bytes);
        xout = (float *)GPU->alloc((size_t)8 * K * GPU->act_bytes);
        GPU->zero(wbig, (size_t)K * K * sizeof(float));
        GPU->zero(xin, (size_t)8 * K * GPU->act_bytes);
    }
    Run r;
    r.ws_grew = false;
    for (size_t i = 0; i < sched.size(); i++) {
        const int n = sched[i];
        if (extra == GROW_WORKSPACE && (int)i == at) {
            const size_t ws0 = rlc_ops_cuda_workspace_bytes();
            GPU->matmul_forward(xout, xin, wbig, NULL, 8, K, K);
            r.ws_grew = rlc_ops_cuda_workspace_bytes() > ws0;
        }
        if (extra == PROFILE && (int)i == at) rlc_ops_cuda_profile_enable(1);
        if (extra == PROFILE && (int)i == at + 2) rlc_ops_cuda_profile_enable(0);
        int slots[SLOTS], toks[SLOTS];
        for (int s = 0; s < n; s++) slots[s] = s, toks[s] = (int)((7 * i + 13 * s + 5) % (size_t)c.vocab_size);
        const rlc_f *lg = rlc_model_decode(&m, &kv, slots, toks, n, NULL);
        std::vector<float> h((size_t)n * c.vocab_size);
        GPU->download(h.data(), lg, h.size() * sizeof(float));
        r.logits.push_back(h);
    }
    const size_t kvb = rlc_kv_cache_bytes(&c, SLOTS, CAP, GPU->act_bytes) / 2;
    r.k.resize(kvb);
    r.v.resize(kvb);
    GPU->download(r.k.data(), kv.k, kvb);
    GPU->download(r.v.data(), kv.v, kvb);
    r.st = rlc_model_decode_graph_stats(&m);
    r.min_nodes = (size_t)-1;
    for (int i = 0; i < RLC_DECODE_GRAPHS; i++)
        if (m.graphs[i].graph) {
            const size_t nn = rlc_ops_cuda_graph_nodes(m.graphs[i].graph);
            if (nn < r.min_nodes) r.min_nodes = nn;
        }
    if (wbig) {
        GPU->free(wbig);
        GPU->free(xin);
        GPU->free(xout);
    }
    rlc_kv_cache_free(&kv, &m);
    rlc_model_free(&m);
    return r;
}

static void check_same(const Run &a, const Run &b, const char *what) {
    CHECK(a.logits.size() == b.logits.size(), "%s: step counts", what);
    int bad = 0;
    for (size_t i = 0; i < a.logits.size() && i < b.logits.size(); i++)
        if (a.logits[i] != b.logits[i] && bad++ < 3) CHECK(0, "%s: step %zu's logits differ", what, i);
    CHECK(a.k == b.k && a.v == b.v, "%s: the KV caches differ", what);
}

static void check_stats(const rlc_decode_graph_stats &s, long long direct, long long recorded, long long replayed,
                        const char *what, long long refused = 0) {
    printf("%s: %lld direct, %lld recorded, %lld replayed, %lld recordings refused\n", what, s.direct, s.recorded,
           s.replayed, s.refused);
    CHECK(s.direct == direct && s.recorded == recorded && s.replayed == replayed && s.refused == refused,
          "%s: expected %lld direct, %lld recorded, %lld replayed, %lld refused", what, direct, recorded, replayed,
          refused);
}

int main() {
    rlc_test::expect_death(
        "bad RLC_CUDA_GRAPHS",
        [] {
            setenv("RLC_CUDA_GRAPHS", "yes", 1);
            rlc_ops_cuda_graphs();
        },
        "RLC_CUDA_GRAPHS=yes: expected 0 (decode steps run their launches directly) or 1");
    GPU = rlc_ops_cuda();
    CHECK(rlc_ops_cuda_graphs() == 1 || getenv("RLC_CUDA_GRAPHS"), "graphs are on by default");
    rlc_ops_cuda_set_graphs(1);

    // 2. keys 4 (direct x2, record, replay), 3 (direct x2, record), 2 (direct), 4 again (replay x2)
    const std::vector<int> sched = {4, 4, 4, 4, 3, 3, 3, 2, 4, 4};
    const Run off = run_schedule(RLC_CUDA_MIXED, false, sched, NONE, 0);
    const Run on = run_schedule(RLC_CUDA_MIXED, true, sched, NONE, 0);
    check_stats(off.st, 10, 0, 0, "mixed, graphs off");
    check_stats(on.st, 5, 2, 3, "mixed, graphs on");
    check_same(off, on, "mixed: graphs on vs off");
    const size_t want_nodes = (size_t)12 * model_cfg().n_layers;
    printf("smallest recorded graph: %zu nodes (2 layers)\n", on.min_nodes);
    CHECK(on.min_nodes != (size_t)-1 && on.min_nodes >= want_nodes, "a graph of %zu nodes (at least %zu expected)",
          on.min_nodes, want_nodes);

    // 3. the workspace moves before step 3 (a replay of key 4): direct, then recorded again, then replayed
    const std::vector<int> s4 = {4, 4, 4, 4, 4, 4};
    const Run goff = run_schedule(RLC_CUDA_MIXED, false, s4, GROW_WORKSPACE, 3);
    const Run gon = run_schedule(RLC_CUDA_MIXED, true, s4, GROW_WORKSPACE, 3);
    check_stats(gon.st, 2, 2, 2, "mixed, workspace moved before step 3");
    CHECK(gon.ws_grew, "the workspace did not grow: the case is not tested");
    check_same(goff, gon, "mixed, workspace moved: graphs on vs off");

    // 4. profiler on for steps 3 and 4: step 3 drops the graph recorded at step 2 and runs directly, as does step
    // 4; step 5 records again, step 6 replays
    const std::vector<int> s7 = {4, 4, 4, 4, 4, 4, 4};
    const Run pon = run_schedule(RLC_CUDA_MIXED, true, s7, PROFILE, 3);
    check_stats(pon.st, 4, 2, 1, "mixed, profiler on for steps 3-4");
    const Run poff = run_schedule(RLC_CUDA_MIXED, false, s7, NONE, 0);
    check_same(poff, pon, "mixed, profiler: graphs on vs off");

    // 5. fp32: attention_decode's gather path needs the host, so recordings are discarded
    const Run foff = run_schedule(RLC_CUDA_FP32, false, sched, NONE, 0);
    const Run fon = run_schedule(RLC_CUDA_FP32, true, sched, NONE, 0);
    check_stats(fon.st, 10, 0, 0, "fp32, graphs on (recordings refused)", 2); // keys 4 and 3, once each
    check_same(foff, fon, "fp32: graphs on vs off");

    rlc_ops_cuda_set_precision(RLC_CUDA_MIXED);
    rlc_ops_cuda_release();
    return test_finish("test_decode_graphs");
}
