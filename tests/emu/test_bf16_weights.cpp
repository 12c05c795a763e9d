// tests/emu/test_bf16_weights.cpp: the CUDA backend's bf16 working weights and multi-tensor optimizer
// (kernels/cuda/ops_cuda.cu register_params / params_written / adamw_multi, kernels/cuda/elementwise.cu) against
// the CPU twins, under the emulator (ctest label emu). Cases run in the three schedule orders with bitwise
// identical outputs, except the model / checkpoint case (host engine, default schedule).
//
// What is checked:
//   1. adamw_multi vs the CPU twin's per-tensor adamw_update: awkward tensor sizes (1 element, 255/256/257,
//      4095/4096/4097 around the chunk, empty tensors, also the last one), 300 tensors, gaps between tensors
//      (never touched), two steps (clip scale 0.37 then 1); with and without a registered buffer (same bits); the
//      bf16 copy equals round-to-nearest-even of the new fp32 master bit for bit.
//   2. the one-launch global sum of squares vs the CPU twin (0, 1, 16383..16385, several blocks).
//   3. matmul_forward / matmul_backward (RLC_CUDA_BF16_GEMM) and logprob_forward / _backward with the weight in
//      a registered buffer: bitwise equal to converting the same weight per call (an unregistered copy), and
//      within bf16 tolerance of the CPU fp32 matmul on the unrounded inputs; the weight is read from the copy
//      (a master changed behind the table's back leaves the result unchanged until params_written); fp32 mode
//      ignores the copy.
//   4. the copy follows every table write into the buffer (upload of a partial element, copy, zero, add, scale,
//      adamw_update on a sub-range); a write past the table is detected (planted: the check can fail) and
//      params_written repairs it; free unregisters and gives the bytes back; register_params out of memory
//      names the bytes.
//   5. a model on the CUDA backend: after init the copy matches the master; rlc_adamw_step (multi-tensor) vs the
//      CPU model's (per-tensor loop); a checkpoint loaded into a fresh model with other weights gives the same
//      master and the same copy bit for bit, and one more step on both stays bitwise equal (resume == continue).
//
// Tolerances:
//   AdamW master, moments: |gpu - cpu| <= 1e-6 |cpu| + 1e-6 lr (master) / 1e-12 (moments): a few ulps, room for
//     an FMA contraction of nvcc on a GPU; the emulator measures 0 (same operations in the same order).
//   sum of squares: 1e-12 relative (double partials; the order of the last additions differs from the twin).
//   bf16 matmul vs CPU fp32: |gpu - cpu| <= 2^-8 sum_k |a_k b_k| + 1e-6 (each operand rounded to bf16: relative
//     error <= 2^-9 per operand, fp32 accumulation).
#define _Noreturn [[noreturn]] // C11 spelling in the C headers below
extern "C" {
#include "rlc/checkpoint.h"
#include "rlc/config.h"
#include "rlc/model.h"
#include "rlc/optim.h"
}
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <string>
#include <vector>

#include "emu_test.h"
#include "ops_cuda.h"
#include "rlc_cuda.h"
#include "test_common.h"
#include "test_util.h"

static const rlc_ops *GPU, *CPU;

using rlc_test::bf16_rne; // round-to-nearest-even to bf16 bits (test_common.h): the reference the copy must equal

static std::vector<float> rnd(size_t n, uint32_t salt, float amp = 1.0f) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; i++) v[i] = amp * rlc_test::hash_uniform((uint32_t)i, salt);
    return v;
}

template <class T> static T *dev(const std::vector<T> &h) { return rlc_test::to_backend(GPU, h); }
static std::vector<float> host(const float *p, size_t n) { return rlc_test::from_backend(GPU, p, n); }

// The bf16 copy of [p, p + n) (it must exist).
static std::vector<uint16_t> copy_of(const float *p, size_t n) {
    std::vector<uint16_t> h(n);
    const void *b = rlc_ops_cuda_params_bf16(p, n);
    CHECK(b != NULL, "no bf16 copy of a registered range");
    if (b) GPU->download(h.data(), b, n * 2);
    return h;
}

// Elements of [p, p + n) whose bf16 copy is not round-to-nearest-even of the master.
static size_t copy_mismatches(const float *p, size_t n) {
    std::vector<float> m = host(p, n);
    std::vector<uint16_t> b = copy_of(p, n);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += b[i] != bf16_rne(m[i]);
    return bad;
}

static double g_worst_adamw = 0.0; // worst |gpu - cpu| / allowed of the AdamW masters

// ------------------------------------------------------------------------------------------------ 1. AdamW

static void test_adamw_multi(const char *name, const std::vector<size_t> &sizes, bool reg) {
    // layout: gaps of 3 untouched elements before every tensor and at the end
    std::vector<rlc_adamw_tensor> tab;
    size_t off = 3;
    for (size_t i = 0; i < sizes.size(); i++) {
        tab.push_back(rlc_adamw_tensor{off, sizes[i], i % 3 == 1 ? 0.0f : 0.1f});
        off += sizes[i] + 3;
    }
    const size_t N = off;
    std::vector<float> p0 = rnd(N, 1), g = rnd(N, 2, 3.0f), m0 = rnd(N, 3, 0.1f), v0 = rnd(N, 4, 0.01f);
    for (float &x : v0) x = fabsf(x);
    const float lr[2] = {1e-2f, 3e-3f}, gs[2] = {0.37f, 1.0f};
    std::vector<float> p_c = p0, m_c = m0, v_c = v0;
    for (int s = 0; s < 2; s++)
        for (const rlc_adamw_tensor &t : tab)
            CPU->adamw_update(p_c.data() + t.offset, g.data() + t.offset, m_c.data() + t.offset,
                              v_c.data() + t.offset, t.numel, lr[s], 0.9f, 0.95f, 1e-8f, t.wd, gs[s], s + 1);
    char full[160];
    snprintf(full, sizeof full, "adamw_multi %s (%zu tensors, %zu elements, %s)", name, sizes.size(), N,
             reg ? "registered" : "no copy");
    emu_test::run_all_schedules(full, [&](emu_test::Outputs &o) {
        float *dp = dev(p0), *dg = dev(g), *dm = dev(m0), *dv = dev(v0);
        if (reg) GPU->register_params(dp, N);
        for (int s = 0; s < 2; s++)
            GPU->adamw_multi(dp, dg, dm, dv, tab.data(), (int)tab.size(), lr[s], 0.9f, 0.95f, 1e-8f, gs[s], s + 1);
        std::vector<float> p_g = host(dp, N), m_g = host(dm, N), v_g = host(dv, N);
        double worst = 0.0;
        size_t bad = 0;
        for (size_t i = 0; i < N; i++) {
            const double ap = 1e-6 * fabs(p_c[i]) + 1e-6 * lr[0], e = fabs((double)p_g[i] - p_c[i]);
            if (e / ap > worst) worst = e / ap;
            bad += !(e <= ap) || !(fabs((double)m_g[i] - m_c[i]) <= 1e-6 * fabs(m_c[i]) + 1e-12) ||
                   !(fabs((double)v_g[i] - v_c[i]) <= 1e-6 * fabs(v_c[i]) + 1e-12);
        }
        CHECK(bad == 0, "%s: %zu elements of p, m or v outside the tolerance", full, bad);
        // the gaps are untouched (the CPU loop does not touch them either: p_c == p0 there)
        size_t gap_bad = 0;
        for (size_t i = 0; i < 3; i++) gap_bad += p_g[i] != p0[i] || m_g[i] != m0[i] || v_g[i] != v0[i];
        for (const rlc_adamw_tensor &t : tab)
            for (size_t i = t.offset + t.numel; i < t.offset + t.numel + 3; i++)
                gap_bad += p_g[i] != p0[i] || m_g[i] != m0[i] || v_g[i] != v0[i];
        CHECK(gap_bad == 0, "%s: %zu gap elements changed", full, gap_bad);
        if (worst > g_worst_adamw) g_worst_adamw = worst;
        if (reg) {
            const size_t mis = copy_mismatches(dp, N);
            CHECK(mis == 0, "%s: %zu bf16 weights differ from round-to-nearest-even of the master", full, mis);
            o.add("bf16", copy_of(dp, N));
        } else {
            CHECK(rlc_ops_cuda_params_bf16(dp, N) == NULL, "%s: a copy although nothing was registered", full);
        }
        o.add("p", p_g);
        o.add("m", m_g);
        o.add("v", v_g);
        for (float *x : {dp, dg, dm, dv}) GPU->free(x);
    });
}

// ------------------------------------------------------------------------------------------------ 2. grad norm

static void test_sumsq(size_t n) {
    std::vector<float> x = rnd(n, 11, 2.0f);
    const double ref = CPU->sumsq(x.data(), n);
    char name[64];
    snprintf(name, sizeof name, "sumsq one launch n=%zu", n);
    emu_test::run_all_schedules(name, [&](emu_test::Outputs &o) {
        float *dx = dev(x);
        const double s = GPU->sumsq(dx, n);
        CHECK(fabs(s - ref) <= 1e-12 * fabs(ref), "%s: %.17g vs CPU %.17g", name, s, ref);
        o.add("sumsq", std::vector<double>{s});
        GPU->free(dx);
    });
}

// ------------------------------------------------------------------------------------------------ 3. matmul

static void test_matmul_copy(int T, int C, int OC) {
    char name[96];
    snprintf(name, sizeof name, "matmul with bf16 weights T=%d C=%d OC=%d", T, C, OC);
    const size_t nw = (size_t)OC * C, lead = 7, N = lead + nw + 5; // the weight at an odd offset of the buffer
    std::vector<float> buf = rnd(N, 21, 0.5f), inp = rnd((size_t)T * C, 22), dout = rnd((size_t)T * OC, 23);
    std::vector<float> w(buf.begin() + lead, buf.begin() + lead + nw), w2 = rnd(nw, 24, 0.5f);
    std::vector<float> out_c((size_t)T * OC), dinp_c((size_t)T * C, 0.0f), dw_c(nw, 0.0f);
    CPU->matmul_forward(out_c.data(), inp.data(), w.data(), NULL, T, C, OC);
    CPU->matmul_backward(dinp_c.data(), dw_c.data(), NULL, dout.data(), inp.data(), w.data(), T, C, OC);
    // bf16 error bounds: 2^-8 sum_k |a_k b_k|
    std::vector<double> bo((size_t)T * OC, 0.0), bi((size_t)T * C, 0.0);
    for (int t = 0; t < T; t++)
        for (int o = 0; o < OC; o++)
            for (int c = 0; c < C; c++) {
                bo[(size_t)t * OC + o] += fabs((double)inp[(size_t)t * C + c] * w[(size_t)o * C + c]);
                bi[(size_t)t * C + c] += fabs((double)dout[(size_t)t * OC + o] * w[(size_t)o * C + c]);
            }
    emu_test::run_all_schedules(name, [&](emu_test::Outputs &o) {
        rlc_ops_cuda_set_precision(RLC_CUDA_BF16_GEMM);
        float *db = dev(buf), *dwc = dev(w), *di = dev(inp), *dd = dev(dout);
        GPU->register_params(db, N);
        float *dwr = db + lead; // the registered weight
        float *o1 = (float *)GPU->alloc((size_t)T * OC * 4), *o2 = (float *)GPU->alloc((size_t)T * OC * 4);
        float *gi1 = (float *)GPU->alloc((size_t)T * C * 4), *gi2 = (float *)GPU->alloc((size_t)T * C * 4);
        float *gw1 = (float *)GPU->alloc(nw * 4), *gw2 = (float *)GPU->alloc(nw * 4);
        GPU->matmul_forward(o1, di, dwr, NULL, T, C, OC);
        GPU->matmul_forward(o2, di, dwc, NULL, T, C, OC); // converts the unregistered copy per call
        GPU->matmul_backward(gi1, gw1, NULL, dd, di, dwr, T, C, OC);
        GPU->matmul_backward(gi2, gw2, NULL, dd, di, dwc, T, C, OC);
        std::vector<float> h1 = host(o1, (size_t)T * OC), h2 = host(o2, (size_t)T * OC);
        std::vector<float> i1 = host(gi1, (size_t)T * C), i2 = host(gi2, (size_t)T * C);
        std::vector<float> w1 = host(gw1, nw), w2h = host(gw2, nw);
        CHECK(h1 == h2 && i1 == i2 && w1 == w2h, "%s: the bf16 copy gives other bits than converting per call", name);
        size_t bad = 0;
        for (size_t i = 0; i < h1.size(); i++) bad += !(fabs((double)h1[i] - out_c[i]) <= 0x1p-8 * bo[i] + 1e-6);
        for (size_t i = 0; i < i1.size(); i++) bad += !(fabs((double)i1[i] - dinp_c[i]) <= 0x1p-8 * bi[i] + 1e-6);
        CHECK(bad == 0, "%s: %zu outputs beyond the bf16 bound of the CPU fp32 matmul", name, bad);
        // the weight is read from the copy: change the master past the table, the result must not move ...
        CHECK(cudaMemcpy(dwr, w2.data(), nw * 4, cudaMemcpyHostToDevice) == cudaSuccess, "cudaMemcpy");
        GPU->matmul_forward(o2, di, dwr, NULL, T, C, OC);
        CHECK(host(o2, (size_t)T * OC) == h1, "%s: the matmul did not read the bf16 copy", name);
        // ... until params_written refreshes it: then it is the new weight's matmul
        GPU->params_written(dwr, nw);
        float *dw2 = dev(w2);
        GPU->matmul_forward(o1, di, dwr, NULL, T, C, OC);
        GPU->matmul_forward(o2, di, dw2, NULL, T, C, OC);
        CHECK(host(o1, (size_t)T * OC) == host(o2, (size_t)T * OC), "%s: params_written did not refresh", name);
        // fp32 mode ignores the copy: sgemm on the master
        rlc_ops_cuda_set_precision(RLC_CUDA_FP32);
        GPU->matmul_forward(o1, di, dwr, NULL, T, C, OC);
        GPU->matmul_forward(o2, di, dw2, NULL, T, C, OC);
        CHECK(host(o1, (size_t)T * OC) == host(o2, (size_t)T * OC), "%s: fp32 mode", name);
        o.add("out", h1);
        o.add("dinp", i1);
        o.add("dw", w1);
        for (float *x : {db, dwc, di, dd, o1, o2, gi1, gi2, gw1, gw2, dw2}) GPU->free(x);
    });
}

static void test_logprob_copy(int T, int C, int V) {
    char name[96];
    snprintf(name, sizeof name, "logprob with bf16 LM head T=%d C=%d V=%d", T, C, V);
    const size_t nw = (size_t)V * C, lead = 3, N = lead + nw + 1;
    std::vector<float> buf = rnd(N, 31, 0.5f), hid = rnd((size_t)T * C, 32), dl = rnd(T, 33), de = rnd(T, 34, 0.1f);
    std::vector<float> w(buf.begin() + lead, buf.begin() + lead + nw);
    std::vector<int> tg(T);
    for (int t = 0; t < T; t++) tg[t] = t == 1 ? -1 : (t * 7) % V;
    emu_test::run_all_schedules(name, [&](emu_test::Outputs &o) {
        float *db = dev(buf), *dwc = dev(w), *dh = dev(hid), *ddl = dev(dl), *dde = dev(de);
        int *dt = dev(tg);
        GPU->register_params(db, N);
        std::vector<std::vector<float>> res[2];
        for (int k = 0; k < 2; k++) {
            const float *wk = k ? dwc : db + lead;
            float *lp = (float *)GPU->alloc(T * 4), *en = (float *)GPU->alloc(T * 4), *ls = (float *)GPU->alloc(T * 4);
            float *dhid = (float *)GPU->alloc((size_t)T * C * 4), *dw = (float *)GPU->alloc(nw * 4);
            GPU->logprob_forward(lp, en, ls, dh, wk, dt, T, C, V, 0.8f);
            GPU->logprob_backward(dhid, dw, ddl, dde, dh, wk, dt, ls, en, T, C, V, 0.8f);
            res[k] = {host(lp, T), host(en, T), host(ls, T), host(dhid, (size_t)T * C), host(dw, nw)};
            for (float *x : {lp, en, ls, dhid, dw}) GPU->free(x);
        }
        CHECK(res[0] == res[1], "%s: the bf16 copy gives other bits than converting per call", name);
        for (const auto &r : res[0]) o.add("logprob", r);
        for (float *x : {db, dwc, dh, ddl, dde}) GPU->free(x);
        GPU->free(dt);
    });
}

// ------------------------------------------------------------------------------------------------ 4. refresh

static void test_refresh() {
    const char *name = "bf16 copy follows table writes";
    emu_test::run_all_schedules(name, [&](emu_test::Outputs &o) {
        const size_t N = 1000;
        rlc_mem_info before, reg, after;
        GPU->mem_info(&before);
        float *p = dev(rnd(N, 41)), *src = dev(rnd(N, 42)), *g = dev(rnd(N, 43)), *m = dev(rnd(N, 44, 0.0f));
        float *v = dev(rnd(N, 45, 0.0f));
        GPU->mem_info(&reg);
        GPU->register_params(p, N);
        rlc_mem_info reg2;
        GPU->mem_info(&reg2);
        CHECK(reg2.in_use - reg.in_use == N * 2, "register_params holds %zu bytes (expected %zu)",
              reg2.in_use - reg.in_use, N * 2);
        CHECK(copy_mismatches(p, N) == 0, "after register_params");
        // upload of 5 bytes from byte 41: the tail of element 10 and the head of 11 (partial elements)
        const unsigned char junk[5] = {0x12, 0x34, 0x56, 0x78, 0x9a};
        GPU->upload((char *)p + 41, junk, 5);
        CHECK(copy_mismatches(p, N) == 0, "after a partial upload");
        GPU->upload(p + 997, rnd(3, 46).data(), 12); // the last elements
        CHECK(copy_mismatches(p, N) == 0, "after an upload at the end");
        GPU->copy(p + 100, src, 333 * 4);
        CHECK(copy_mismatches(p, N) == 0, "after copy");
        GPU->zero(p + 500, 17 * 4);
        CHECK(copy_mismatches(p, N) == 0, "after zero");
        GPU->add(p + 1, p + 1, src, 256);
        CHECK(copy_mismatches(p, N) == 0, "after add");
        GPU->scale(p + 600, 3.0f, 257);
        CHECK(copy_mismatches(p, N) == 0, "after scale");
        GPU->adamw_update(p + 20, g, m, v, 700, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, 1);
        CHECK(copy_mismatches(p, N) == 0, "after adamw_update on a sub-range");
        // planted: a write past the table leaves the copy stale, and the check sees it
        std::vector<float> big = rnd(10, 47, 100.0f);
        CHECK(cudaMemcpy(p + 200, big.data(), 40, cudaMemcpyHostToDevice) == cudaSuccess, "cudaMemcpy");
        CHECK(copy_mismatches(p, N) == 10, "a write past the table must leave 10 stale bf16 weights");
        GPU->params_written(p + 200, 10);
        CHECK(copy_mismatches(p, N) == 0, "after params_written");
        GPU->register_params(p, N); // again: a refresh, no second copy
        rlc_mem_info reg3;
        GPU->mem_info(&reg3);
        CHECK(reg3.in_use == reg2.in_use, "registering again allocated %zu bytes", reg3.in_use - reg2.in_use);
        o.add("master", host(p, N));
        o.add("bf16", copy_of(p, N));
        for (float *x : {p, src, g, m, v}) GPU->free(x);
        GPU->mem_info(&after);
        CHECK(after.in_use == before.in_use, "free left %zu bytes (the bf16 copy not released?)",
              after.in_use - before.in_use);
        CHECK(rlc_ops_cuda_params_bf16(p, 1) == NULL, "free did not unregister the buffer");
    });
}

// ------------------------------------------------------------------------------------------------ 5. model

static const char *const OVERRIDES[] = {"model.dim=32",        "model.n_layers=2",  "model.n_heads=2",
                                        "model.n_kv_heads=1",  "model.head_dim=16", "model.hidden_dim=48",
                                        "model.max_seq_len=16", "seed=3"};
#define CKPT RLC_BINARY_DIR "/test_bf16_weights_ckpt"

static void set_grads(rlc_model *m, uint32_t salt) {
    std::vector<float> g = rnd(m->n_params, salt, 0.05f);
    m->ops->upload(m->grads, g.data(), g.size() * 4);
}

static void test_model_checkpoint() {
    printf("model: init, multi-tensor steps vs CPU, checkpoint resume\n");
    rlc_config cfg;
    char err[1024];
    CHECK(rlc_config_load(&cfg, NULL, OVERRIDES, (int)(sizeof OVERRIDES / sizeof OVERRIDES[0]), err, sizeof err) == 0,
          "config: %s", err);
    rlc_optim_config oc = {};
    oc.lr = 1e-3f;
    oc.beta1 = 0.9f;
    oc.beta2 = 0.95f;
    oc.eps = 1e-8f;
    oc.weight_decay = 0.1f;
    oc.grad_clip = 1.0f; // the random gradients' norm is above 1: the clip scale is in play
    rlc_model a, c, b;
    CHECK(rlc_model_init(&a, &cfg.model, GPU, 16) == 0, "cuda model");
    CHECK(rlc_model_init(&c, &cfg.model, CPU, 16) == 0, "cpu model");
    rlc_model_init_weights(&a, 5);
    rlc_model_init_weights(&c, 5);
    const size_t n = a.n_params;
    CHECK(copy_mismatches(a.params, n) == 0, "bf16 copy after init_weights");
    rlc_adamw oa, ocpu, ob;
    rlc_adamw_init(&oa, &a);
    rlc_adamw_init(&ocpu, &c);
    double na = 0, nc = 0;
    for (int s = 0; s < 2; s++) {
        set_grads(&a, 50 + s);
        set_grads(&c, 50 + s);
        na = rlc_adamw_step(&oa, &a, &oc, oc.lr);
        nc = rlc_adamw_step(&ocpu, &c, &oc, oc.lr);
        CHECK(fabs(na - nc) <= 1e-12 * nc && nc > oc.grad_clip, "grad norm %.17g vs CPU %.17g", na, nc);
    }
    std::vector<float> pa = host(a.params, n), pc(n);
    CPU->download(pc.data(), c.params, n * 4);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += !(fabs((double)pa[i] - pc[i]) <= 1e-6 * fabs(pc[i]) + 1e-6 * oc.lr);
    CHECK(bad == 0, "model AdamW: %zu weights differ from the CPU model's beyond the tolerance", bad);
    CHECK(copy_mismatches(a.params, n) == 0, "bf16 copy after rlc_adamw_step");
    // checkpoint of a; a fresh model with other weights loads it
    CHECK(system("rm -rf " CKPT) == 0, "rm");
    CHECK(rlc_checkpoint_save(&a, &cfg, CKPT, NULL, oa.m, oa.v, err, sizeof err) == 0, "save: %s", err);
    CHECK(rlc_model_init(&b, &cfg.model, GPU, 16) == 0, "second cuda model");
    rlc_model_init_weights(&b, 99);
    rlc_adamw_init(&ob, &b);
    rlc_train_state st;
    memset(&st, 0, sizeof st);
    CHECK(rlc_checkpoint_load(&b, CKPT, &st, ob.m, ob.v, err, sizeof err) == 0, "load: %s", err);
    ob.t = oa.t;
    CHECK(host(b.params, n) == pa, "loaded master differs");
    CHECK(copy_of(b.params, n) == copy_of(a.params, n), "resumed model's bf16 weights differ from the saved model's");
    // one more step on both: resume == continue, bit for bit
    set_grads(&a, 60);
    set_grads(&b, 60);
    rlc_adamw_step(&oa, &a, &oc, oc.lr);
    rlc_adamw_step(&ob, &b, &oc, oc.lr);
    CHECK(host(b.params, n) == host(a.params, n), "a step after resume differs (master)");
    CHECK(copy_of(b.params, n) == copy_of(a.params, n), "a step after resume differs (bf16 weights)");
    CHECK(copy_mismatches(b.params, n) == 0, "bf16 copy after the resumed step");
    rlc_adamw_free(&oa, &a);
    rlc_adamw_free(&ob, &b);
    rlc_adamw_free(&ocpu, &c);
    rlc_model_free(&a);
    rlc_model_free(&b);
    rlc_model_free(&c);
}

int main() {
#if !defined(__SANITIZE_THREAD__)
    // before this process touches the device (a forked child must not inherit a CUDA context)
    rlc_test::expect_death(
        "register_params out of memory",
        [] {
            const rlc_ops *g = rlc_ops_cuda();
            g->set_mem_limit(5 << 20);
            float *p = (float *)g->alloc(4 << 20);
            g->register_params(p, 1 << 20);
        },
        "register_params: the bf16 copy of the weights of 2097152 bytes (2.0 MiB) failed; 1048576 bytes");
#endif
    GPU = rlc_ops_cuda();
    rlc_ops_cuda_set_precision(RLC_CUDA_FP32); // fp32 activations: the cases below hand the table fp32 tensors
    CPU = rlc_ops_cpu();
    CHECK(CPU->register_params == NULL && CPU->adamw_multi == NULL && CPU->params_written == NULL,
          "the CPU table has no bf16 entries (its optimizer path stays the per-tensor loop)");

    test_adamw_multi("awkward sizes", {1, 255, 256, 257, 4095, 4096, 4097, 1}, true);
    test_adamw_multi("awkward sizes", {1, 255, 256, 257, 4095, 4096, 4097, 1}, false);
    test_adamw_multi("empty tensors", {0, 5, 0, 9000, 0}, true);
    std::vector<size_t> many(300);
    for (size_t i = 0; i < many.size(); i++) many[i] = 1 + (i * 37) % 300;
    test_adamw_multi("many tensors", many, true);
    printf("AdamW master: worst |gpu - cpu| / tolerance %.3g (0 = bitwise equal)\n", g_worst_adamw);

    for (size_t n : {(size_t)0, (size_t)1, (size_t)16383, (size_t)16384, (size_t)16385, (size_t)100003})
        test_sumsq(n);

    test_matmul_copy(1, 5, 3);
    test_matmul_copy(37, 67, 19);
    test_logprob_copy(5, 33, 70);

    test_refresh();
    test_model_checkpoint();
    rlc_ops_cuda_release();
    return test_finish("test_bf16_weights");
}
