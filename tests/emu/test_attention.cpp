// tests/emu/test_attention.cpp: the CUDA attention kernels (kernels/cuda/attention.cu) under the emulator,
// against their CPU twins (rlc_ops_cpu()->attention_forward / attention_backward / attention_decode) computed in
// fp32 on the same bf16-rounded inputs. Every case runs in the three schedule orders (emu_test.h) and its
// outputs must be bitwise identical across them.
//
// Tolerances (bf16 operands, fp32 accumulation; P and dS are rounded to bf16 before their products, as in every
// flash kernel, and the forward output is stored in bf16):
//   out, decode out:  max |gpu - cpu| / max |cpu| <= 2e-2
//   dq, dk, dv:       max |gpu - cpu| / max |cpu| <= 2e-2
//   lse:              max |gpu - cpu| <= 1e-3 (absolute, natural log)
// (max |cpu| floored at 1e-2: with one key per query, dq and dk are zero up to rounding.)
// The measured errors are printed for each case (about 3e-3 for the outputs and gradients, 1e-6 for lse).
//
// Shapes: head dims 64 and 128, GQA 4/2, 6/2, 8/2, 14/2 (the dK/dV kernel's head split) and MHA 2/2, packed
// batches mixing lengths that are not multiples of the 64- and 128-row tiles (1, 3, 17, 64, 100, 130, 257), an
// empty sequence, a batch of 40 short sequences (more than
// one 32-wide step of the tile scan and of the longest-first schedule), and decode with caches split into several
// pieces, an empty row, rows sharing a slot, and a group of 18 query heads (two chunks of 16).
// Variants (rlc_cuda_attention_set_variant; variant 0 of each op is the default): the default ones run every
// case; every other variant (today backward 1 to 4; the forward and the decode have one each) runs the awkward
// cases (all of them with RLC_ATTN_TEST_ALL_VARIANTS=1; the backward alone where its forward has run the case), so
// that whichever the GPU bench finds fastest is already tested here. One awkward case holds a block back in the random schedule's run (the emulator's straggler):
// backward 3 and 4's key tiles add to the same dQ in an enforced order, and the bits must not change when the
// blocks run out of step (without the wait for the count they do, in both variants: checked when it was written).
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include <vector>

#include "attention.h"
#include "emu_test.h"
extern "C" {
#include "rlc/ops.h"
}

static const double TOL_REL = 2e-2, TOL_LSE = 1e-3;
// Denominator floor of the relative errors: a sequence of length 1 has dq = dk = 0 up to rounding (~1e-8).
static const double REL_FLOOR = 1e-2;

static constexpr float (*uni)(uint32_t, uint32_t) = rlc_test::hash_uniform; // tests/emu/test_common.h

// n bf16 values amp * uni; f receives the same values widened to float (the CPU twin's inputs).
static std::vector<__nv_bfloat16> rand_bf16(size_t n, uint32_t salt, float amp, std::vector<float> &f) {
    std::vector<__nv_bfloat16> v(n);
    f.resize(n);
    for (size_t i = 0; i < n; i++) {
        v[i] = __float2bfloat16(amp * uni((uint32_t)i, salt));
        f[i] = __bfloat162float(v[i]);
    }
    return v;
}
static std::vector<float> widen(const std::vector<__nv_bfloat16> &v) {
    std::vector<float> f(v.size());
    for (size_t i = 0; i < v.size(); i++) f[i] = __bfloat162float(v[i]);
    return f;
}
static std::vector<__nv_bfloat16> narrow(const std::vector<float> &f) {
    std::vector<__nv_bfloat16> v(f.size());
    for (size_t i = 0; i < f.size(); i++) v[i] = __float2bfloat16(f[i]);
    return v;
}

// max |a - b| / max |b| (or the absolute error if rel is false); CHECKs finiteness and the tolerance.
static double compare(const char *what, const std::vector<float> &a, const std::vector<float> &b, bool rel, double tol) {
    double err = 0.0, ref = 0.0;
    size_t worst = 0, bad = a.size();
    for (size_t i = 0; i < a.size(); i++) {
        if (!std::isfinite(a[i]) && bad == a.size()) bad = i;
        double e = fabs((double)a[i] - b[i]);
        if (e > err) err = e, worst = i;
        ref = fmax(ref, fabs((double)b[i]));
    }
    double m = rel ? err / fmax(ref, REL_FLOOR) : err;
    CHECK(bad == a.size(), "%s: non-finite value at %zu", what, bad);
    CHECK(a.size() == b.size() && m <= tol, "%s: error %.3g > %.3g (worst at %zu: %.7g vs %.7g, max |ref| %.4g)", what, m,
          tol, worst, a.empty() ? 0.0 : a[worst], b.empty() ? 0.0 : b[worst], ref);
    return m;
}

struct PrefillCase {
    const char *name;
    int NH, NKV, HD;
    std::vector<int> lens;
    int straggler_ms = 0; // in the random schedule's run, the emulator's straggler (emu_core.h) sleeps this long
};

// fwd false: the backward only (the forward variant has run this case already; the backward reads the CPU twin's
// output and lse, not the forward's).
static void run_prefill(const PrefillCase &c, int fv, int bv, bool fwd = true) {
    CHECK(rlc_cuda_attention_set_variant(0, fv) == 0 && rlc_cuda_attention_set_variant(1, bv) == 0,
          "variants %d/%d", fv, bv);
    const int B = (int)c.lens.size(), NH = c.NH, NKV = c.NKV, HD = c.HD;
    std::vector<int> cu(B + 1, 0);
    for (int b = 0; b < B; b++) cu[b + 1] = cu[b] + c.lens[b];
    const int T = cu[B];
    const size_t nq = (size_t)T * NH * HD, nk = (size_t)T * NKV * HD;
    std::vector<float> qf, kf, vf, dof;
    // q has amplitude 2: scores of a few units, so that the softmax is peaked and the masks matter.
    auto q = rand_bf16(nq, 11 + HD, 2.0f, qf), k = rand_bf16(nk, 12 + HD, 1.5f, kf), v = rand_bf16(nk, 13 + HD, 1.0f, vf);
    auto dout = rand_bf16(nq, 14 + HD, 1.0f, dof);

    // CPU twin: forward, then the backward on the bf16-rounded forward output (what the GPU backward reads).
    const rlc_ops *cpu = rlc_ops_cpu();
    std::vector<float> out_ref(nq), lse_ref((size_t)T * NH);
    cpu->attention_forward(out_ref.data(), lse_ref.data(), qf.data(), kf.data(), vf.data(), cu.data(), B, T, NH, NKV, HD);
    std::vector<__nv_bfloat16> out_b = narrow(out_ref);
    std::vector<float> out_bf = widen(out_b), dq_ref(nq), dk_ref(nk), dv_ref(nk);
    cpu->attention_backward(dq_ref.data(), dk_ref.data(), dv_ref.data(), dof.data(), qf.data(), kf.data(), vf.data(),
                            out_bf.data(), lse_ref.data(), cu.data(), B, T, NH, NKV, HD);

    double e_out = 0, e_lse = 0, e_dq = 0, e_dk = 0, e_dv = 0;
    emu_test::run_all_schedules(c.name, [&](emu_test::Outputs &o) {
        emu::set_straggler(emu::config().schedule == emu::Schedule::random ? c.straggler_ms : 0);
        __nv_bfloat16 *d_q = emu_test::to_device(q), *d_k = emu_test::to_device(k), *d_v = emu_test::to_device(v);
        __nv_bfloat16 *d_do = emu_test::to_device(dout), *d_ob = emu_test::to_device(out_b);
        int *d_cu = emu_test::to_device(cu);
        float *d_lse_ref = emu_test::to_device(lse_ref);
        // outputs poisoned with NaN bytes: every element must be written
        std::vector<__nv_bfloat16> poison_b(nq, __float2bfloat16(NAN));
        std::vector<float> poison_q(nq, NAN), poison_k(nk, NAN), poison_l((size_t)T * NH, NAN);
        __nv_bfloat16 *d_out = emu_test::to_device(poison_b);
        float *d_lse = emu_test::to_device(poison_l), *d_dq = emu_test::to_device(poison_q);
        float *d_dk = emu_test::to_device(poison_k), *d_dv = emu_test::to_device(poison_k);
        size_t ws_bytes = rlc_cuda_attention_backward_workspace_bytes(T, NH);
        void *d_ws = nullptr;
        RLC_CUDA_CHECK(cudaMalloc(&d_ws, ws_bytes));

        if (fwd)
            CHECK(rlc_cuda_attention_forward(d_out, d_lse, d_q, d_k, d_v, d_cu, B, T, NH, NKV, HD, nullptr) == 0,
                  "%s: forward failed", c.name);
        // The backward reads the CPU twin's (bf16-rounded) output and lse, so it is checked on its own.
        CHECK(rlc_cuda_attention_backward(d_dq, d_dk, d_dv, d_do, d_q, d_k, d_v, d_ob, d_lse_ref, d_cu, B, T, NH, NKV,
                                          HD, d_ws, ws_bytes, nullptr) == 0,
              "%s: backward failed", c.name);
        RLC_CUDA_CHECK(cudaDeviceSynchronize());
        char what[160];
        if (fwd) {
            std::vector<__nv_bfloat16> out = emu_test::from_device(d_out, nq);
            std::vector<float> lse = emu_test::from_device(d_lse, (size_t)T * NH);
            o.add("out", out);
            o.add("lse", lse);
            snprintf(what, sizeof what, "%s out", c.name);
            e_out = compare(what, widen(out), out_ref, true, TOL_REL);
            snprintf(what, sizeof what, "%s lse", c.name);
            e_lse = compare(what, lse, lse_ref, false, TOL_LSE);
        }
        std::vector<float> dq = emu_test::from_device(d_dq, nq);
        std::vector<float> dk = emu_test::from_device(d_dk, nk), dv = emu_test::from_device(d_dv, nk);
        o.add("dq", dq);
        o.add("dk", dk);
        o.add("dv", dv);
        snprintf(what, sizeof what, "%s dq", c.name);
        e_dq = compare(what, dq, dq_ref, true, TOL_REL);
        snprintf(what, sizeof what, "%s dk", c.name);
        e_dk = compare(what, dk, dk_ref, true, TOL_REL);
        snprintf(what, sizeof what, "%s dv", c.name);
        e_dv = compare(what, dv, dv_ref, true, TOL_REL);
        for (void *p : {(void *)d_q, (void *)d_k, (void *)d_v, (void *)d_do, (void *)d_ob, (void *)d_cu,
                        (void *)d_lse_ref, (void *)d_out, (void *)d_lse, (void *)d_dq, (void *)d_dk, (void *)d_dv, d_ws})
            cudaFree(p);
        emu::set_straggler(0);
    });
    char fwd_err[64] = "(forward run before)";
    if (fwd) snprintf(fwd_err, sizeof fwd_err, "out %.2e  lse %.2e", e_out, e_lse);
    printf("  %-34s f%d b%d T=%-4d NH/NKV=%d/%d HD=%-3d  %-24s  dq %.2e  dk %.2e  dv %.2e\n", c.name, fv, bv, T, NH,
           NKV, HD, fwd_err, e_dq, e_dk, e_dv);
}

struct DecodeCase {
    const char *name;
    int NH, NKV, HD, cap, n_slots, split_len;
    std::vector<int> slot, kv_len;
};

static void run_decode(const DecodeCase &c, int dv) {
    CHECK(rlc_cuda_attention_set_variant(2, dv) == 0, "decode variant %d", dv);
    const int B = (int)c.slot.size(), NH = c.NH, NKV = c.NKV, HD = c.HD, cap = c.cap;
    const size_t nq = (size_t)B * NH * HD, nc = (size_t)c.n_slots * cap * NKV * HD;
    std::vector<float> qf, kf, vf;
    auto q = rand_bf16(nq, 21 + HD, 2.0f, qf), kc = rand_bf16(nc, 22 + HD, 1.5f, kf), vc = rand_bf16(nc, 23 + HD, 1.0f, vf);
    std::vector<float> ref(nq);
    rlc_ops_cpu()->attention_decode(ref.data(), qf.data(), kf.data(), vf.data(), c.slot.data(), c.kv_len.data(), B, cap,
                                    NH, NKV, HD);
    double e = 0;
    emu_test::run_all_schedules(c.name, [&](emu_test::Outputs &o) {
        __nv_bfloat16 *d_q = emu_test::to_device(q), *d_k = emu_test::to_device(kc), *d_v = emu_test::to_device(vc);
        int *d_slot = emu_test::to_device(c.slot), *d_len = emu_test::to_device(c.kv_len);
        __nv_bfloat16 *d_out = emu_test::to_device(std::vector<__nv_bfloat16>(nq, __float2bfloat16(NAN)));
        size_t ws_bytes = rlc_cuda_attention_decode_workspace_bytes(B, cap, NH, NKV, HD, c.split_len);
        void *d_ws = nullptr;
        RLC_CUDA_CHECK(cudaMalloc(&d_ws, ws_bytes));
        RLC_CUDA_CHECK(cudaMemset(d_ws, 0xFF, ws_bytes)); // NaN: pieces that are read must have been written
        CHECK(rlc_cuda_attention_decode(d_out, d_q, d_k, d_v, d_slot, d_len, B, cap, NH, NKV, HD, c.split_len, d_ws,
                                        ws_bytes, nullptr) == 0,
              "%s: decode failed", c.name);
        RLC_CUDA_CHECK(cudaDeviceSynchronize());
        std::vector<__nv_bfloat16> out = emu_test::from_device(d_out, nq);
        o.add("out", out);
        char what[160];
        snprintf(what, sizeof what, "%s out", c.name);
        e = compare(what, widen(out), ref, true, TOL_REL);
        for (void *p : {(void *)d_q, (void *)d_k, (void *)d_v, (void *)d_slot, (void *)d_len, (void *)d_out, d_ws})
            cudaFree(p);
    });
    printf("  %-34s d%d B=%-3d cap=%-4d NH/NKV=%d/%d HD=%-3d split=%-4d out %.2e\n", c.name, dv, B, cap, NH, NKV,
           HD, c.split_len, e);
}

// Bad arguments are refused with a message, not run.
static void check_errors() {
    CHECK(rlc_cuda_attention_forward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 1, 4, 4, 2, 96, nullptr) == -1,
          "head dim 96 must be refused");
    CHECK(rlc_cuda_attention_forward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 1, 4, 4, 3, 64, nullptr) == -1,
          "NH not a multiple of NKV must be refused");
    CHECK(rlc_cuda_attention_backward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                      nullptr, 1, 4, 4, 2, 64, nullptr, 0, nullptr) == -1,
          "a missing backward workspace must be refused");
    CHECK(rlc_cuda_attention_decode(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 2, 64, 4, 2, 64, 0, nullptr, 8,
                                    nullptr) == -1,
          "a small decode workspace must be refused");
}

int main() {
    check_errors();
    CHECK(rlc_cuda_attention_set_variant(0, rlc_cuda_attention_variant_count(0)) == -1, "out-of-range variant refused");
    const int f0 = rlc_cuda_attention_get_variant(0), b0 = rlc_cuda_attention_get_variant(1);
    const int d0 = rlc_cuda_attention_get_variant(2);
    const int nf = rlc_cuda_attention_variant_count(0), nb = rlc_cuda_attention_variant_count(1);
    const int nd = rlc_cuda_attention_variant_count(2);
    const bool all = getenv("RLC_ATTN_TEST_ALL_VARIANTS") != nullptr;
    std::vector<int> many;
    for (int i = 0; i < 40; i++) many.push_back((int)(uni((uint32_t)i, 99) * 3.0f + 3.0f)); // 0..5 tokens
    // awkward: the cases every variant runs
    const struct {
        PrefillCase c;
        bool awkward;
    } prefill[] = {
        {{"prefill hd64 gqa {1,17,64,130}", 4, 2, 64, {1, 17, 64, 130}}, false},
        {{"prefill hd128 gqa {130,1,17,64}", 4, 2, 128, {130, 1, 17, 64}}, true},
        {{"prefill hd64 mha {17,0,70}", 2, 2, 64, {17, 0, 70}}, false},
        {{"prefill hd128 mha {1}", 2, 2, 128, {1}}, false},
        {{"prefill hd64 40 short sequences", 2, 1, 64, many}, false},
        {{"prefill hd128 gqa3 {257,3,128}", 6, 2, 128, {257, 3, 128}}, false},
        // 7 query heads per kv head: the dK/dV blocks share out the heads (2, 2, 3) and sum partials
        {{"prefill hd64 gqa7 {130,3,64}", 14, 2, 64, {130, 3, 64}}, true},
        {{"prefill hd128 gqa4 {100,1}", 8, 2, 128, {100, 1}}, true},
        // 4 key tiles adding to the same dQ tiles (backward 3, 4) while one block is held back: their order must
        // hold (no head split here: a split waits for its sibling, which would keep the others from overtaking)
        {{"prefill hd64 straggler {400}", 2, 1, 64, {400}, 60000}, true},
    };
    for (const auto &p : prefill) run_prefill(p.c, f0, b0);
    // the other variants: forward i with backward i (wrapping), so that every one of each runs; a forward variant
    // runs its cases once (after that, or when it is the default, only the backward)
    for (int i = 0; i < (nf > nb ? nf : nb); i++) {
        const int fv = i % nf, bv = i % nb;
        if (fv == f0 && bv == b0) continue;
        for (const auto &p : prefill)
            if (all || p.awkward) run_prefill(p.c, fv, bv, fv != f0 && i < nf);
    }
    rlc_cuda_attention_set_variant(0, f0);
    rlc_cuda_attention_set_variant(1, b0);
    const DecodeCase decode[] = {
        {"decode hd64 gqa split 128", 4, 2, 64, 300, 3, 128, {2, 0, 2, 1}, {1, 300, 129, 0}},
        {"decode hd128 gqa auto split", 4, 2, 128, 200, 2, 0, {1, 0, 1}, {200, 5, 64}},
        {"decode hd128 mha split 128", 2, 2, 128, 260, 1, 128, {0, 0}, {260, 130}},
        {"decode hd64 18 heads per group", 18, 1, 64, 96, 1, 0, {0}, {77}},
    };
    for (int dv = 0; dv < nd; dv++)
        for (const auto &c : decode)
            if (dv == d0 || all || c.split_len == 128) run_decode(c, dv);
    rlc_cuda_attention_set_variant(2, d0);
    return test_finish("test_attention");
}
