// bench/gpu/bench_logprob_gpu.cu: the fused LM-head log-prob / entropy kernels (kernels/cuda/logprob.cu) on a
// GPU at Qwen2.5-0.5B-like (C 896, V 151936) and 7B-like (C 3584, V 152064) LM heads with 4k to 32k tokens.
// Per shape it prints forward and backward time (cudaEvents, best of --reps after a warm-up), TFLOP/s
// (forward 2TVC, backward 6TVC), the extra memory (the workspace: one chunk) next to the T x V fp32 logits an
// unfused op would hold, and the ratio to the LM-head GEMM alone (cuBLAS bf16 -> bf16 logits, the same
// T x V x C) timed in the same run. Target (issue 5): forward <= 1.5x that GEMM. The torch baseline
// (log_softmax + gather + entropy) is bench/gpu/logprob_baseline.py; the CPU version is bench/bench_logprob.c.
// Before timing, a small shape (T 100, C 136, V 3001, chunks 64 x 1024) is checked against the CPU twin with
// the tolerances of tests/emu/test_logprob.cpp (forward 1e-4 (1 + |ref|); gradients 2^-7 sum |dz x|, the
// effect of the bf16 dz): the emulator's comparison, on the GPU. Exit status 1 on a mismatch.
// The statistics / dz kernels have variants (logprob.h): --variant N times one (default: the library's default,
// variant 0 unless RLC_LP_VARIANT says otherwise), --variants times each in turn on every shape (rows tagged
// v0, v1, ...; the GEMM baseline is timed once per shape), and the correctness check runs for each. --tiny
// replaces the shapes by one tiny one (T 50, C 72, V 1003): the emulator's run of the whole program (ctest).
//   bench_logprob_gpu [--reps 3] [--max-tokens 32768] [--tchunk 0] [--vchunk 0] [--variant N | --variants] [--tiny]
#include "rlc_cuda.h"

#include "bench_gpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>

#include <vector>

#include "logprob.h"
#include "rlc_blas.h"

extern "C" {
#include "rlc/ops.h"
}

__global__ void fill_bf16_kernel(__nv_bfloat16 *x, size_t n, unsigned seed, float scale) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        unsigned h = (unsigned)i * 2654435761u ^ seed;
        h ^= h >> 16, h *= 0x7feb352du, h ^= h >> 15, h *= 0x846ca68bu, h ^= h >> 16;
        x[i] = __float2bfloat16(scale * ((float)(h >> 8) / 16777216.0f - 0.5f));
    }
}
__global__ void fill_f32_kernel(float *x, size_t n, unsigned seed, float scale) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        unsigned h = (unsigned)i * 2654435761u ^ seed;
        h ^= h >> 16, h *= 0x7feb352du, h ^= h >> 15, h *= 0x846ca68bu, h ^= h >> 16;
        x[i] = scale * ((float)(h >> 8) / 16777216.0f - 0.5f);
    }
}
__global__ void targets_kernel(int *t, int n, int V) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        t[i] = (int)(((unsigned)i * 7919u) % (unsigned)V);
}

// Milliseconds of the best of reps runs of fn after one warm-up run.
template <class F> static float time_best(int reps, F fn) { return bench_time(reps, 1, fn).best; }

// The small-shape comparison with the CPU twin (see the header). Returns the number of failures.
static int check_vs_cpu(rlc_blas *blas) {
    const int T = 100, C = 136, V = 3001, tc = 64, vc = 1024;
    const float tau = 0.8f;
    std::vector<float> hid((size_t)T * C), w((size_t)V * C), dlogp(T), dent(T);
    std::vector<__nv_bfloat16> hb(hid.size()), wb(w.size());
    std::vector<int> tgt(T);
    unsigned s = 99;
    auto rnd = [&] {
        s = s * 1664525u + 1013904223u;
        return (float)(s >> 8) / 16777216.0f - 0.5f;
    };
    for (size_t i = 0; i < hid.size(); i++) hb[i] = __float2bfloat16(4.0f * rnd()), hid[i] = __bfloat162float(hb[i]);
    for (size_t i = 0; i < w.size(); i++)
        wb[i] = __float2bfloat16(8.0f / sqrtf((float)C) * rnd()), w[i] = __bfloat162float(wb[i]);
    for (int t = 0; t < T; t++) {
        tgt[t] = t % 10 == 0 ? -1 : t % 7 == 0 ? V - 1 : (int)((rnd() + 0.5f) * (V - 1));
        dlogp[t] = 2.0f * rnd(), dent[t] = 0.2f * rnd();
    }
    std::vector<float> lp_c(T), en_c(T), lse_c(T), dh_c(hid.size(), 0.0f), dw_c(w.size(), 0.0f);
    const rlc_ops *cpu = rlc_ops_cpu();
    cpu->logprob_forward(lp_c.data(), en_c.data(), lse_c.data(), hid.data(), w.data(), tgt.data(), T, C, V, tau);
    cpu->logprob_backward(dh_c.data(), dw_c.data(), dlogp.data(), dent.data(), hid.data(), w.data(), tgt.data(),
                          lse_c.data(), en_c.data(), T, C, V, tau);
    // sums of absolute GEMM terms: the bound of rounding dz to bf16
    std::vector<double> bh(hid.size(), 0.0), bw(w.size(), 0.0);
    for (int t = 0; t < T; t++)
        for (int v = 0; v < V; v++) {
            double u = 0;
            for (int i = 0; i < C; i++) u += (double)hid[(size_t)t * C + i] * w[(size_t)v * C + i];
            const double l = u / tau - lse_c[t], p = exp(l), c = tgt[t] >= 0 ? dlogp[t] / tau : 0.0;
            const double dz = fabs(c * ((v == tgt[t]) - p) - dent[t] / tau * p * (l + en_c[t]));
            for (int i = 0; i < C; i++) {
                bh[(size_t)t * C + i] += dz * fabs(w[(size_t)v * C + i]);
                bw[(size_t)v * C + i] += dz * fabs(hid[(size_t)t * C + i]);
            }
        }
    __nv_bfloat16 *d_h, *d_w;
    int *d_t;
    float *d_lp, *d_en, *d_lse, *d_dlp, *d_den, *d_dh, *d_dw;
    void *ws;
    RLC_CUDA_CHECK(cudaMalloc(&d_h, hb.size() * 2));
    RLC_CUDA_CHECK(cudaMalloc(&d_w, wb.size() * 2));
    RLC_CUDA_CHECK(cudaMalloc(&d_t, T * 4));
    RLC_CUDA_CHECK(cudaMalloc(&d_lp, T * 4));
    RLC_CUDA_CHECK(cudaMalloc(&d_en, T * 4));
    RLC_CUDA_CHECK(cudaMalloc(&d_lse, T * 4));
    RLC_CUDA_CHECK(cudaMalloc(&d_dlp, T * 4));
    RLC_CUDA_CHECK(cudaMalloc(&d_den, T * 4));
    RLC_CUDA_CHECK(cudaMalloc(&d_dh, hid.size() * 4));
    RLC_CUDA_CHECK(cudaMalloc(&d_dw, w.size() * 4));
    RLC_CUDA_CHECK(cudaMalloc(&ws, rlc_cuda_logprob_workspace_bytes(T, V, tc, vc)));
    RLC_CUDA_CHECK(cudaMemcpy(d_h, hb.data(), hb.size() * 2, cudaMemcpyHostToDevice));
    RLC_CUDA_CHECK(cudaMemcpy(d_w, wb.data(), wb.size() * 2, cudaMemcpyHostToDevice));
    RLC_CUDA_CHECK(cudaMemcpy(d_t, tgt.data(), T * 4, cudaMemcpyHostToDevice));
    RLC_CUDA_CHECK(cudaMemcpy(d_dlp, dlogp.data(), T * 4, cudaMemcpyHostToDevice));
    RLC_CUDA_CHECK(cudaMemcpy(d_den, dent.data(), T * 4, cudaMemcpyHostToDevice));
    RLC_CUDA_CHECK(cudaMemset(d_dh, 0, hid.size() * 4));
    RLC_CUDA_CHECK(cudaMemset(d_dw, 0, w.size() * 4));
    int fails = 0;
    fails += rlc_cuda_logprob_forward(blas, d_lp, d_en, d_lse, d_h, d_w, d_t, T, C, V, tau, tc, vc, ws, NULL) != 0;
    fails += rlc_cuda_logprob_backward(blas, d_dh, d_dw, d_dlp, d_den, d_h, d_w, d_t, d_lse, d_en, T, C, V, tau, tc, vc,
                                       ws, NULL) != 0;
    std::vector<float> lp(T), en(T), lse(T), dh(hid.size()), dw(w.size());
    RLC_CUDA_CHECK(cudaMemcpy(lp.data(), d_lp, T * 4, cudaMemcpyDeviceToHost));
    RLC_CUDA_CHECK(cudaMemcpy(en.data(), d_en, T * 4, cudaMemcpyDeviceToHost));
    RLC_CUDA_CHECK(cudaMemcpy(lse.data(), d_lse, T * 4, cudaMemcpyDeviceToHost));
    RLC_CUDA_CHECK(cudaMemcpy(dh.data(), d_dh, dh.size() * 4, cudaMemcpyDeviceToHost));
    RLC_CUDA_CHECK(cudaMemcpy(dw.data(), d_dw, dw.size() * 4, cudaMemcpyDeviceToHost));
    double worst[5] = {0, 0, 0, 0, 0};
    auto cmp = [&](const std::vector<float> &g, const std::vector<float> &r, const std::vector<double> *b, int k,
                   const char *what) {
        int bad = 0;
        for (size_t i = 0; i < r.size(); i++) {
            const double lim = b ? (*b)[i] / 128.0 + 1e-5 * fabs((double)r[i]) + 1e-7 : 1e-4 * (1.0 + fabs((double)r[i]));
            const double e = fabs((double)g[i] - r[i]);
            if (!(e <= lim) && bad++ < 3)
                fprintf(stderr, "check vs CPU twin: %s[%zu] = %.8g, CPU %.8g (limit %.3g)\n", what, i, g[i], r[i], lim);
            worst[k] = fmax(worst[k], e / lim);
        }
        fails += bad;
    };
    cmp(lp, lp_c, NULL, 0, "logp");
    cmp(en, en_c, NULL, 1, "entropy");
    cmp(lse, lse_c, NULL, 2, "lse");
    cmp(dh, dh_c, &bh, 3, "dhidden");
    cmp(dw, dw_c, &bw, 4, "dw");
    printf("check vs CPU twin (T %d, C %d, V %d, chunks %dx%d, tau %.1f): %s; worst error / tolerance: logp %.3f "
           "entropy %.3f lse %.3f dhidden %.3f dw %.3f\n",
           T, C, V, tc, vc, tau, fails ? "FAILED" : "ok", worst[0], worst[1], worst[2], worst[3], worst[4]);
    for (void *p : {(void *)d_h, (void *)d_w, (void *)d_t, (void *)d_lp, (void *)d_en, (void *)d_lse, (void *)d_dlp,
                    (void *)d_den, (void *)d_dh, (void *)d_dw, ws})
        RLC_CUDA_CHECK(cudaFree(p));
    return fails;
}

int main(int argc, char **argv) {
    int reps = 3, max_tokens = 32768, tchunk = 0, vchunk = 0, variant = -1;
    bool all_variants = false, tiny_run = false;
    for (int i = 1; i < argc; i += 2) {
        if (!strcmp(argv[i], "--variants") || !strcmp(argv[i], "--tiny")) {
            (argv[i][2] == 'v' ? all_variants : tiny_run) = true;
            i--;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "bench_logprob_gpu: %s needs a value\n", argv[i]);
            return 2;
        }
        if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--variant")) variant = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--max-tokens")) max_tokens = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--tchunk")) tchunk = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--vchunk")) vchunk = atoi(argv[i + 1]);
        else {
            fprintf(stderr,
                    "bench_logprob_gpu: unknown option %s (expected --reps, --max-tokens, --tchunk, --vchunk, "
                    "--variant N, --variants, --tiny)\n",
                    argv[i]);
            return 2;
        }
    }
    if (variant >= 0 && rlc_cuda_logprob_set_variant(variant)) {
        fprintf(stderr, "bench_logprob_gpu: no variant %d (0..%d)\n", variant, rlc_cuda_logprob_variant_count() - 1);
        return 2;
    }
    std::vector<int> variants;
    if (all_variants)
        for (int v = 0; v < rlc_cuda_logprob_variant_count(); v++) variants.push_back(v);
    else
        variants.push_back(rlc_cuda_logprob_get_variant());
    if (reps < 1) reps = 1;
    cudaDeviceProp prop;
    RLC_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    rlc_blas *blas = rlc_blas_create();
    if (!blas) return 1;
    printf("bench_logprob_gpu on %s: fused log-prob + entropy vs the cuBLAS LM-head GEMM alone\n", prop.name);
    int rc = 0;
    for (int v : variants) {
        rlc_cuda_logprob_set_variant(v);
        printf("variant %s\n", rlc_cuda_logprob_variant_name(v));
        rc |= check_vs_cpu(blas) ? 1 : 0;
    }
    printf("%-16s %6s %5s %7s | %8s %7s | %8s %7s | %8s %7s | %9s %10s | %s\n", "shape", "T", "C", "V", "fwd ms",
           "TFLOP/s", "bwd ms", "TFLOP/s", "gemm ms", "TFLOP/s", "extra MiB", "logits MiB", "fwd/gemm");
    struct {
        const char *name;
        int C, V;
    } shapes[2] = {{"qwen2.5-0.5b", 896, 151936}, {"qwen2.5-7b", 3584, 152064}}, tiny = {"tiny", 72, 1003};
    const int Ts[3] = {4096, 16384, 32768};
    for (int si = 0; si < (tiny_run ? 1 : 2); si++) {
        if (tiny_run) shapes[si] = tiny;
        const int C = shapes[si].C, V = shapes[si].V;
        for (int ti = 0; ti < (tiny_run ? 1 : 3); ti++) {
            const int T = tiny_run ? 50 : Ts[ti];
            if (T > max_tokens) continue;
            __nv_bfloat16 *hid, *w, *logits;
            float *logp, *ent, *lse, *dlogp, *dent, *dh, *dw;
            int *tgt;
            void *ws;
            const size_t wsb = rlc_cuda_logprob_workspace_bytes(T, V, tchunk, vchunk);
            RLC_CUDA_CHECK(cudaMalloc(&hid, (size_t)T * C * 2));
            RLC_CUDA_CHECK(cudaMalloc(&w, (size_t)V * C * 2));
            RLC_CUDA_CHECK(cudaMalloc(&tgt, (size_t)T * 4));
            RLC_CUDA_CHECK(cudaMalloc(&logp, (size_t)T * 4));
            RLC_CUDA_CHECK(cudaMalloc(&ent, (size_t)T * 4));
            RLC_CUDA_CHECK(cudaMalloc(&lse, (size_t)T * 4));
            RLC_CUDA_CHECK(cudaMalloc(&dlogp, (size_t)T * 4));
            RLC_CUDA_CHECK(cudaMalloc(&dent, (size_t)T * 4));
            RLC_CUDA_CHECK(cudaMalloc(&dh, (size_t)T * C * 4));
            RLC_CUDA_CHECK(cudaMalloc(&dw, (size_t)V * C * 4));
            RLC_CUDA_CHECK(cudaMalloc(&ws, wsb));
            RLC_LAUNCH(fill_bf16_kernel, 1024, 256, 0, 0, hid, (size_t)T * C, 1u, 4.0f);
            RLC_LAUNCH(fill_bf16_kernel, 1024, 256, 0, 0, w, (size_t)V * C, 2u, 4.0f / sqrtf((float)C));
            RLC_LAUNCH(fill_f32_kernel, 256, 256, 0, 0, dlogp, (size_t)T, 3u, 2.0f);
            RLC_LAUNCH(fill_f32_kernel, 256, 256, 0, 0, dent, (size_t)T, 4u, 0.2f);
            RLC_LAUNCH(targets_kernel, 256, 256, 0, 0, tgt, T, V);
            RLC_CUDA_CHECK(cudaMemset(dh, 0, (size_t)T * C * 4));
            RLC_CUDA_CHECK(cudaMemset(dw, 0, (size_t)V * C * 4));
            RLC_CUDA_CHECK(cudaGetLastError());
            int err = 0;
            // baseline first (once per shape): the LM-head GEMM alone, bf16 logits (T, V)
            float g_ms = -1;
            if (cudaMalloc(&logits, (size_t)T * V * 2) == cudaSuccess) {
                g_ms = time_best(reps, [&] {
                    err |= rlc_blas_gemm_bf16(blas, 0, 1, T, V, C, 1.0f, hid, C, w, C, 0.0f, logits, V, 1);
                });
                RLC_CUDA_CHECK(cudaFree(logits));
            } else {
                (void)cudaGetLastError();
            }
            const double fl = 2.0 * T * (double)V * C;
            for (int v : variants) {
                rlc_cuda_logprob_set_variant(v);
                int verr = 0;
                const float f_ms = time_best(reps, [&] {
                    verr |= rlc_cuda_logprob_forward(blas, logp, ent, lse, hid, w, tgt, T, C, V, 1.0f, tchunk, vchunk,
                                                     ws, NULL);
                });
                const float b_ms = time_best(reps, [&] {
                    verr |= rlc_cuda_logprob_backward(blas, dh, dw, dlogp, dent, hid, w, tgt, lse, ent, T, C, V, 1.0f,
                                                      tchunk, vchunk, ws, NULL);
                });
                // sanity: log-probs are finite and <= 0, entropies finite and >= 0
                float h_lp[4], h_en[4];
                RLC_CUDA_CHECK(cudaMemcpy(h_lp, logp + T / 2, sizeof h_lp, cudaMemcpyDeviceToHost));
                RLC_CUDA_CHECK(cudaMemcpy(h_en, ent + T / 2, sizeof h_en, cudaMemcpyDeviceToHost));
                for (int k = 0; k < 4; k++)
                    if (!(h_lp[k] <= 1e-4f && h_en[k] >= -1e-4f && h_en[k] < 20.0f)) verr = 1;
                RLC_CUDA_CHECK(cudaDeviceSynchronize());
                char tag[32];
                snprintf(tag, sizeof tag, "%s v%d", shapes[si].name, v);
                printf("%-16s %6d %5d %7d | %8.2f %7.1f | %8.2f %7.1f | %8.2f %7.1f | %9.1f %10.1f | %.2fx%s\n", tag,
                       T, C, V, f_ms, fl / f_ms / 1e9, b_ms, 3 * fl / b_ms / 1e9, g_ms, g_ms > 0 ? fl / g_ms / 1e9 : 0.0,
                       wsb / 1048576.0, (double)T * V * 4 / 1048576.0, g_ms > 0 ? f_ms / g_ms : 0.0,
                       err | verr ? "  (ERROR or implausible output)" : "");
                fflush(stdout);
                err |= verr;
            }
            rc |= err;
            for (void *p : {(void *)hid, (void *)w, (void *)tgt, (void *)logp, (void *)ent, (void *)lse, (void *)dlogp,
                            (void *)dent, (void *)dh, (void *)dw, ws})
                RLC_CUDA_CHECK(cudaFree(p));
        }
    }
    rlc_blas_destroy(blas);
    return rc;
}
