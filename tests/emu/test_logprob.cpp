// tests/emu/test_logprob.cpp: the fused LM-head log-prob / entropy kernels (kernels/cuda/logprob.cu) under the
// emulator, against the CPU twin rlc_ops_cpu()->logprob_forward / logprob_backward, in all three schedule
// orders (bitwise-identical outputs required), for each kernel variant (rlc_cuda_logprob_set_variant).
// Shapes: T = 1; T not a multiple of the token chunk; V not a multiple of the vocabulary chunk; C not a
// multiple of 8 or 16; targets < 0 (ignored), on chunk edges and at V-1; a wide logit spread at a low
// temperature (the online rescaling across chunks).
// Inputs are rounded to bf16 and the CPU twin gets the same rounded values, so the logits agree up to fp32
// summation order. Tolerances (the observed worst error / tolerance is printed per case):
//   logp, lse, entropy: |gpu - cpu| <= 1e-4 (1 + |cpu|) (the bf16 bound is 2e-3 (1 + |cpu|); with
//     identically rounded inputs only the fp32 accumulation order differs, observed ~1e-6);
//   dhidden, dw: the kernel rounds dz to bf16 (the GEMM's input type; relative error <= 2^-8, its unit
//     roundoff), the twin does not, so an entry may differ by up to 2^-8 sum_k |dz_k x_k| over its GEMM's
//     terms (rows with a target can cancel to much less than that sum). Bound used, 2x for fp32 effects:
//     |gpu - cpu| <= 2^-7 sum_k |dz_k x_k| + 1e-5 |cpu| + 1e-7, the sums of absolute terms in fp64.
#include <cmath>
#include <cstring>
#include <vector>

#include "emu_test.h"
#include "logprob.h"

extern "C" {
#include "rlc/ops.h"
}

struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 7) {}
    double uni() {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        return ((s >> 11) + 0.5) / 9007199254740992.0;
    }
    double normal() { return sqrt(-2.0 * log(uni())) * cos(6.283185307179586 * uni()); }
};

struct Case {
    const char *name;
    int T, C, V, tc, vc;
    float tau, logit_scale;
};

// Rounds x to bf16 in place and returns the bf16 copy.
static std::vector<__nv_bfloat16> to_bf16(std::vector<float> &x) {
    std::vector<__nv_bfloat16> b(x.size());
    for (size_t i = 0; i < x.size(); i++) {
        b[i] = __float2bfloat16(x[i]);
        x[i] = __bfloat162float(b[i]);
    }
    return b;
}

// Max over i of |got - want| / (atol_scale + rtol |want|); <= 1 passes. Reports the first failures.
static double check_close(const std::vector<float> &got, const std::vector<float> &want, double atol, double rtol,
                          const char *what) {
    double worst = 0;
    int bad = 0;
    for (size_t i = 0; i < want.size(); i++) {
        const double e = fabs((double)got[i] - want[i]), lim = atol + rtol * fabs((double)want[i]);
        if (!std::isfinite(got[i]) || e > lim) {
            if (bad++ < 5) CHECK(0, "%s[%zu]: got %.9g expected %.9g (limit %.3g)", what, i, got[i], want[i], lim);
        }
        if (lim > 0) worst = fmax(worst, e / lim);
    }
    CHECK(bad == 0, "%s: %d of %zu entries outside the tolerance", what, bad, want.size());
    return worst;
}

// As check_close with the limit 2^-7 bound[i] + 1e-5 |want| + 1e-7.
static double check_bound(const std::vector<float> &got, const std::vector<float> &want,
                          const std::vector<double> &bound, const char *what) {
    double worst = 0;
    int bad = 0;
    for (size_t i = 0; i < want.size(); i++) {
        const double e = fabs((double)got[i] - want[i]), lim = bound[i] / 128.0 + 1e-5 * fabs((double)want[i]) + 1e-7;
        if (!std::isfinite(got[i]) || e > lim) {
            if (bad++ < 5) CHECK(0, "%s[%zu]: got %.9g expected %.9g (limit %.3g)", what, i, got[i], want[i], lim);
        }
        worst = fmax(worst, e / lim);
    }
    CHECK(bad == 0, "%s: %d of %zu entries outside the tolerance", what, bad, want.size());
    return worst;
}

static void run_case(const Case &k) {
    const rlc_ops *cpu = rlc_ops_cpu();
    Rng g((uint64_t)k.T * 131 + k.V);
    std::vector<float> hid((size_t)k.T * k.C), w((size_t)k.V * k.C);
    for (auto &x : hid) x = (float)g.normal();
    const double ws = k.logit_scale / sqrt((double)k.C);
    for (auto &x : w) x = (float)(g.normal() * ws);
    std::vector<__nv_bfloat16> hid_b = to_bf16(hid), w_b = to_bf16(w);
    std::vector<int> tgt(k.T);
    for (int t = 0; t < k.T; t++) {
        const double u = g.uni();
        if (u < 0.1) tgt[t] = -1;                                  // ignored
        else if (u < 0.2) tgt[t] = k.V - 1;                        // last column
        else if (u < 0.35 && k.vc < k.V) tgt[t] = k.vc * (1 + (t % (k.V / k.vc))) - (t & 1); // chunk edges
        else tgt[t] = (int)(g.uni() * k.V);
        if (tgt[t] >= k.V) tgt[t] = k.V - 1;
    }
    std::vector<float> dlogp(k.T), dent(k.T), dh0((size_t)k.T * k.C), dw0((size_t)k.V * k.C);
    for (auto &x : dlogp) x = (float)(2 * g.uni() - 1);
    for (auto &x : dent) x = (float)(0.2 * g.uni() - 0.1);
    for (auto &x : dh0) x = (float)(0.01 * g.normal()); // the op accumulates: start from non-zero gradients
    for (auto &x : dw0) x = (float)(0.01 * g.normal());

    // CPU twin on the bf16-rounded inputs
    std::vector<float> logp_c(k.T), ent_c(k.T), lse_c(k.T), dh_c = dh0, dw_c = dw0;
    cpu->logprob_forward(logp_c.data(), ent_c.data(), lse_c.data(), hid.data(), w.data(), tgt.data(), k.T, k.C, k.V,
                         k.tau);
    cpu->logprob_backward(dh_c.data(), dw_c.data(), dlogp.data(), dent.data(), hid.data(), w.data(), tgt.data(),
                          lse_c.data(), ent_c.data(), k.T, k.C, k.V, k.tau);

    // fp64 dz (T, V) from the twin's lse / entropy, and the sums of absolute GEMM terms that bound the effect
    // of rounding dz to bf16: bound_dh[t,c] = sum_v |dz_tv w_vc|, bound_dw[v,c] = sum_t |dz_tv h_tc|.
    std::vector<double> bound_dh(dh0.size(), 0.0), bound_dw(dw0.size(), 0.0);
    for (int t = 0; t < k.T; t++) {
        const double c = tgt[t] >= 0 ? dlogp[t] / k.tau : 0.0, e = dent[t] / k.tau;
        for (int v = 0; v < k.V; v++) {
            double u = 0;
            for (int i = 0; i < k.C; i++) u += (double)hid[(size_t)t * k.C + i] * w[(size_t)v * k.C + i];
            const double lp = u / k.tau - lse_c[t], p = exp(lp);
            const double dz = fabs(c * ((v == tgt[t]) - p) - e * p * (lp + ent_c[t]));
            for (int i = 0; i < k.C; i++) {
                bound_dh[(size_t)t * k.C + i] += dz * fabs(w[(size_t)v * k.C + i]);
                bound_dw[(size_t)v * k.C + i] += dz * fabs(hid[(size_t)t * k.C + i]);
            }
        }
    }

    double worst[5] = {0, 0, 0, 0, 0};
    emu_test::run_all_schedules(k.name, [&](emu_test::Outputs &out) {
        rlc_blas *blas = rlc_blas_create();
        __nv_bfloat16 *d_hid = emu_test::to_device(hid_b), *d_w = emu_test::to_device(w_b);
        int *d_tgt = emu_test::to_device(tgt);
        float *d_logp = emu_test::to_device(std::vector<float>(k.T, NAN));
        float *d_ent = emu_test::to_device(std::vector<float>(k.T, NAN));
        float *d_lse = emu_test::to_device(std::vector<float>(k.T, NAN));
        float *d_dlogp = emu_test::to_device(dlogp), *d_dent = emu_test::to_device(dent);
        float *d_dh = emu_test::to_device(dh0), *d_dw = emu_test::to_device(dw0);
        void *ws = nullptr;
        const size_t wsb = rlc_cuda_logprob_workspace_bytes(k.T, k.V, k.tc, k.vc);
        RLC_CUDA_CHECK(cudaMalloc(&ws, wsb));
        // extra memory: one chunk (+ 4 floats per token of the chunk, 256-byte aligned)
        const int tc = k.tc > 0 && k.tc < k.T ? k.tc : k.T, vc = k.vc > 0 && k.vc < k.V ? k.vc : k.V;
        CHECK(wsb <= (size_t)tc * ((vc + 7) / 8 * 8) * 4 + 4 * ((size_t)tc * 4 + 256) + 256,
              "%s: workspace %zu bytes is more than one chunk", k.name, wsb);
        CHECK(rlc_cuda_logprob_forward(blas, d_logp, d_ent, d_lse, d_hid, d_w, d_tgt, k.T, k.C, k.V, k.tau, k.tc,
                                       k.vc, ws, nullptr) == 0,
              "%s: forward", k.name);
        CHECK(rlc_cuda_logprob_backward(blas, d_dh, d_dw, d_dlogp, d_dent, d_hid, d_w, d_tgt, d_lse, d_ent, k.T, k.C,
                                        k.V, k.tau, k.tc, k.vc, ws, nullptr) == 0,
              "%s: backward", k.name);
        RLC_CUDA_CHECK(cudaDeviceSynchronize());
        std::vector<float> logp = emu_test::from_device(d_logp, k.T), ent = emu_test::from_device(d_ent, k.T),
                           lse = emu_test::from_device(d_lse, k.T), dh = emu_test::from_device(d_dh, dh0.size()),
                           dw = emu_test::from_device(d_dw, dw0.size());
        out.add("logp", logp);
        out.add("entropy", ent);
        out.add("lse", lse);
        out.add("dhidden", dh);
        out.add("dw", dw);
        char what[96];
        snprintf(what, sizeof what, "%s logp", k.name);
        worst[0] = fmax(worst[0], check_close(logp, logp_c, 1e-4, 1e-4, what));
        snprintf(what, sizeof what, "%s entropy", k.name);
        worst[1] = fmax(worst[1], check_close(ent, ent_c, 1e-4, 1e-4, what));
        snprintf(what, sizeof what, "%s lse", k.name);
        worst[2] = fmax(worst[2], check_close(lse, lse_c, 1e-4, 1e-4, what));
        for (int t = 0; t < k.T; t++) CHECK(tgt[t] >= 0 || logp[t] == 0.0f, "%s: ignored target %d has logp", k.name, t);
        snprintf(what, sizeof what, "%s dhidden", k.name);
        worst[3] = fmax(worst[3], check_bound(dh, dh_c, bound_dh, what));
        snprintf(what, sizeof what, "%s dw", k.name);
        worst[4] = fmax(worst[4], check_bound(dw, dw_c, bound_dw, what));
        for (void *p : {(void *)d_hid, (void *)d_w, (void *)d_tgt, (void *)d_logp, (void *)d_ent, (void *)d_lse,
                        (void *)d_dlogp, (void *)d_dent, (void *)d_dh, (void *)d_dw, ws})
            cudaFree(p);
        rlc_blas_destroy(blas);
    });
    printf("  %-28s T=%-4d C=%-4d V=%-5d chunk %dx%d tau %.2f: worst error / tolerance: logp %.3f entropy %.3f "
           "lse %.3f dhidden %.3f dw %.3f\n",
           k.name, k.T, k.C, k.V, k.tc, k.vc, k.tau, worst[0], worst[1], worst[2], worst[3], worst[4]);
}

int main() {
    const Case cases[] = {
        {"T=1 default chunks", 1, 64, 1000, 0, 0, 1.0f, 3.0f},
        {"ragged chunks, C=100", 37, 100, 1000, 16, 384, 0.7f, 3.0f},
        {"three chunks, C=136", 130, 136, 3001, 64, 1024, 1.0f, 2.0f},
        {"wide logits, tau 0.5", 45, 24, 777, 32, 200, 0.5f, 12.0f},
        // a vocabulary chunk longer than one batch of the batched kernels (8192 values per row): 10001 = 8192 +
        // 1809 (not a multiple of 4), then a one-batch chunk of 9999 - 8192
        {"rows over two batches", 5, 40, 20000, 0, 10001, 0.9f, 4.0f},
        {"V=3 in chunks of 2", 6, 16, 3, 4, 2, 1.0f, 3.0f}, // a float4 load covering 1 or 2 values
    };
    for (int v = 0; v < rlc_cuda_logprob_variant_count(); v++) {
        CHECK(rlc_cuda_logprob_set_variant(v) == 0, "set_variant(%d)", v);
        CHECK(rlc_cuda_logprob_get_variant() == v, "get_variant after set_variant(%d)", v);
        printf("variant %s\n", rlc_cuda_logprob_variant_name(v));
        for (const Case &k : cases) run_case(k);
    }
    CHECK(rlc_cuda_logprob_set_variant(rlc_cuda_logprob_variant_count()) == -1, "an out-of-range variant is refused");
    CHECK(rlc_cuda_logprob_variant_name(-1) == nullptr, "no name for variant -1");
    return test_finish("test_logprob");
}
