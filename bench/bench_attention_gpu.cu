// bench/bench_attention_gpu.cu: the CUDA attention kernels (kernels/cuda/attention.cu) on a real GPU. Built by
// cmake/cuda.cmake into <build>/gpu/ and run by tests/gpu/check.sh. Three parts:
//   1. correctness on hardware: small packed batches (lengths 1, 17, 64, 130, 300; head dims 64 and 128; GQA)
//      and decode (several cache pieces) against the CPU twins of include/rlc/ops.h on the same bf16 inputs,
//      with the tolerances of tests/emu/test_attention.cpp, plus a bitwise rerun (determinism);
//   2. forward / backward at Qwen2.5-0.5B-like (14 heads, 2 KV heads, head dim 64) and 7B-like (28/4, 128)
//      shapes, 4k to 32k tokens packed in equal sequences: time (cudaEvents, median), causal TFLOP/s, and the
//      ratio to torch's scaled_dot_product_attention (flash backend) timed by bench/gpu/attention_baseline.py
//      in the same run (sdpa_ms / ours: > 1 means faster than torch);
//   3. decode against long caches: GB/s of K/V read and the fraction of the device-to-device copy bandwidth
//      measured in the same run, for one call (as a caller that waits for each call sees it: the launch latency
//      is in it) and per call of 20 queued back to back (the GPU's own time, as in a decode loop).
// With --variants every kernel variant of attention.h (rlc_cuda_attention_set_variant; v0 = the default of each
// op, backward v1/v2 the candidates) is checked in part 1 and timed in parts 2 and 3, one row each, the default
// backward's parts (D, dK/dV, dQ kernels) are timed alone, and a summary gives each variant's time relative to
// v0 (geometric mean over the shapes); otherwise the defaults (or --fwd/--bwd/--dec N) run. --no-check skips
// part 1 and --only a model, for profilers. (Variants renumbered 2026-11-27: the fwd v1, bwd v6/v7/v8, dec v2 of
// bench/results/logs/h200_2026-11-27_attention_variants.log are now fwd v0, bwd v0/v1/v2, dec v0; the others
// are deleted.) Exit status non-zero if a correctness check fails.
//   bench_attention_gpu [--quick] [--no-baseline] [--check-only] [--variants] [--fwd N] [--bwd N] [--dec N]
//                       [--no-check] [--only 0.5b|7b]   (env RLC_ATTN_NO_BASELINE=1 skips torch)
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <string>
#include <vector>

#include "attention.h"
#include "rlc_cuda.h"

#include "gpu/bench_gpu.h"
extern "C" {
#include "rlc/ops.h"
}

#ifndef RLC_SOURCE_DIR
#define RLC_SOURCE_DIR "."
#endif

typedef __nv_bfloat16 bf16;

static int g_fail = 0;

static float uni(uint64_t i, uint32_t salt) {
    uint64_t x = i * 0x9e3779b97f4a7c15ull + salt * 0xbf58476d1ce4e5b9ull + 1;
    x ^= x >> 31;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 29;
    return (float)((double)(x >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}
static std::vector<bf16> rand_bf16(size_t n, uint32_t salt, float amp, std::vector<float> *f) {
    std::vector<bf16> v(n);
    if (f) f->resize(n);
    for (size_t i = 0; i < n; i++) {
        v[i] = __float2bfloat16(amp * uni(i, salt));
        if (f) (*f)[i] = __bfloat162float(v[i]);
    }
    return v;
}
template <class T> static T *up(const std::vector<T> &h) {
    T *d = nullptr;
    RLC_CUDA_CHECK(cudaMalloc((void **)&d, h.size() * sizeof(T) + 16));
    RLC_CUDA_CHECK(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
    return d;
}
template <class T> static std::vector<T> down(const T *d, size_t n) {
    std::vector<T> h(n);
    RLC_CUDA_CHECK(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
}
static std::vector<float> widen(const std::vector<bf16> &v) {
    std::vector<float> f(v.size());
    for (size_t i = 0; i < v.size(); i++) f[i] = __bfloat162float(v[i]);
    return f;
}
static void *dalloc(size_t bytes) {
    void *p = nullptr;
    RLC_CUDA_CHECK(cudaMalloc(&p, bytes ? bytes : 16));
    return p;
}

// Same metric and tolerances as tests/emu/test_attention.cpp.
static void check(const char *what, const std::vector<float> &a, const std::vector<float> &b, bool rel, double tol) {
    double err = 0, ref = 0;
    bool finite = true;
    for (size_t i = 0; i < a.size(); i++) {
        finite = finite && std::isfinite(a[i]);
        err = fmax(err, fabs((double)a[i] - b[i]));
        ref = fmax(ref, fabs((double)b[i]));
    }
    double m = rel ? err / fmax(ref, 1e-2) : err;
    bool ok = finite && m <= tol;
    if (!ok) g_fail = 1;
    printf("  %-44s %s error %.2e (tol %.0e)%s\n", what, ok ? "ok  " : "FAIL", m, tol, finite ? "" : " NON-FINITE");
}

// Variant pairs (forward, backward) that part 1 checks; decode variants likewise.
static std::vector<std::pair<int, int>> g_prefill_variants;
static std::vector<int> g_decode_variants;

static void correctness_prefill(int NH, int NKV, int HD) {
    std::vector<int> lens = {1, 17, 64, 130, 300}, cu(1, 0);
    for (int L : lens) cu.push_back(cu.back() + L);
    const int B = (int)lens.size(), T = cu.back();
    const size_t nq = (size_t)T * NH * HD, nk = (size_t)T * NKV * HD;
    std::vector<float> qf, kf, vf, dof;
    auto q = rand_bf16(nq, 1, 2.0f, &qf), k = rand_bf16(nk, 2, 1.5f, &kf), v = rand_bf16(nk, 3, 1.0f, &vf);
    auto dout = rand_bf16(nq, 4, 1.0f, &dof);
    std::vector<float> out_ref(nq), lse_ref((size_t)T * NH), dq_ref(nq), dk_ref(nk), dv_ref(nk);
    const rlc_ops *cpu = rlc_ops_cpu();
    cpu->attention_forward(out_ref.data(), lse_ref.data(), qf.data(), kf.data(), vf.data(), cu.data(), B, T, NH, NKV, HD);
    std::vector<bf16> out_b(nq);
    for (size_t i = 0; i < nq; i++) out_b[i] = __float2bfloat16(out_ref[i]);
    std::vector<float> out_bf = widen(out_b);
    cpu->attention_backward(dq_ref.data(), dk_ref.data(), dv_ref.data(), dof.data(), qf.data(), kf.data(), vf.data(),
                            out_bf.data(), lse_ref.data(), cu.data(), B, T, NH, NKV, HD);

    bf16 *d_q = up(q), *d_k = up(k), *d_v = up(v), *d_do = up(dout), *d_ob = up(out_b);
    int *d_cu = up(cu);
    float *d_lref = up(lse_ref);
    bf16 *d_out = (bf16 *)dalloc(nq * 2);
    float *d_lse = (float *)dalloc((size_t)T * NH * 4), *d_dq = (float *)dalloc(nq * 4);
    float *d_dk = (float *)dalloc(nk * 4), *d_dv = (float *)dalloc(nk * 4);
    size_t wsb = rlc_cuda_attention_backward_workspace_bytes(T, NH);
    void *ws = dalloc(wsb);
    for (const auto &fb : g_prefill_variants) {
    rlc_cuda_attention_set_variant(0, fb.first);
    rlc_cuda_attention_set_variant(1, fb.second);
    std::vector<float> first[5];
    for (int rep = 0; rep < 2; rep++) {
        if (rlc_cuda_attention_forward(d_out, d_lse, d_q, d_k, d_v, d_cu, B, T, NH, NKV, HD, nullptr) ||
            rlc_cuda_attention_backward(d_dq, d_dk, d_dv, d_do, d_q, d_k, d_v, d_ob, d_lref, d_cu, B, T, NH, NKV, HD, ws,
                                        wsb, nullptr)) {
            printf("  launch failed\n");
            g_fail = 1;
            return;
        }
        RLC_CUDA_CHECK(cudaDeviceSynchronize());
        std::vector<float> r[5] = {widen(down(d_out, nq)), down(d_lse, (size_t)T * NH), down(d_dq, nq), down(d_dk, nk),
                                   down(d_dv, nk)};
        if (rep == 0) {
            char w[128];
            const char *names[5] = {"out", "lse", "dq", "dk", "dv"};
            const std::vector<float> *refs[5] = {&out_ref, &lse_ref, &dq_ref, &dk_ref, &dv_ref};
            for (int i = 0; i < 5; i++) {
                snprintf(w, sizeof w, "f%d b%d prefill NH/NKV=%d/%d HD=%d T=%d %s", fb.first, fb.second, NH, NKV, HD,
                         T, names[i]);
                check(w, r[i], *refs[i], i != 1, i == 1 ? 1e-3 : 2e-2);
                first[i] = r[i];
            }
        } else {
            bool same = true;
            for (int i = 0; i < 5; i++) same = same && !memcmp(first[i].data(), r[i].data(), r[i].size() * 4);
            printf("  %-44s %s\n", "rerun bitwise identical", same ? "ok" : "FAIL");
            if (!same) g_fail = 1;
        }
    }
    }
    for (void *p : {(void *)d_q, (void *)d_k, (void *)d_v, (void *)d_do, (void *)d_ob, (void *)d_cu, (void *)d_lref,
                    (void *)d_out, (void *)d_lse, (void *)d_dq, (void *)d_dk, (void *)d_dv, ws})
        cudaFree(p);
}

static void correctness_decode(int NH, int NKV, int HD, int split_len) {
    const int cap = 1000, n_slots = 2;
    std::vector<int> slot = {1, 0, 1, 0}, kv_len = {1, 1000, 333, 0};
    const int B = (int)slot.size();
    const size_t nq = (size_t)B * NH * HD, nc = (size_t)n_slots * cap * NKV * HD;
    std::vector<float> qf, kf, vf, ref(nq);
    auto q = rand_bf16(nq, 5, 2.0f, &qf), kc = rand_bf16(nc, 6, 1.5f, &kf), vc = rand_bf16(nc, 7, 1.0f, &vf);
    rlc_ops_cpu()->attention_decode(ref.data(), qf.data(), kf.data(), vf.data(), slot.data(), kv_len.data(), B, cap, NH,
                                    NKV, HD);
    bf16 *d_q = up(q), *d_k = up(kc), *d_v = up(vc), *d_out = (bf16 *)dalloc(nq * 2);
    int *d_slot = up(slot), *d_len = up(kv_len);
    for (int dv : g_decode_variants) {
    rlc_cuda_attention_set_variant(2, dv);
    size_t wsb = rlc_cuda_attention_decode_workspace_bytes(B, cap, NH, NKV, HD, split_len);
    void *ws = dalloc(wsb);
    char w[128];
    snprintf(w, sizeof w, "d%d decode NH/NKV=%d/%d HD=%d split=%d out", dv, NH, NKV, HD, split_len);
    if (rlc_cuda_attention_decode(d_out, d_q, d_k, d_v, d_slot, d_len, B, cap, NH, NKV, HD, split_len, ws, wsb,
                                  nullptr)) {
        printf("  %s: launch failed\n", w);
        g_fail = 1;
    } else {
        RLC_CUDA_CHECK(cudaDeviceSynchronize());
        check(w, widen(down(d_out, nq)), ref, true, 2e-2);
    }
    cudaFree(ws);
    }
    for (void *p : {(void *)d_q, (void *)d_k, (void *)d_v, (void *)d_out, (void *)d_slot, (void *)d_len}) cudaFree(p);
}

// ------------------------------------------------------------------------------------------------ timing

struct Model {
    const char *name;
    int NH, NKV, HD;
};
struct Shape {
    int T, L;
};
struct Baseline {
    int NH, NKV, HD, T, L;
    double fwd_ms, bwd_ms;
};

// Median milliseconds of reps runs of f after two warm-up runs.
template <class F> static double time_ms(F f, int reps) { return bench_time(reps, 2, f).median; }

// Runs bench/gpu/attention_baseline.py for the shapes; parses its "sdpa NH NKV HD T L fwd_ms bwd_ms" lines.
static std::vector<Baseline> run_baseline(const std::vector<Model> &models, const std::vector<Shape> &shapes) {
    std::vector<Baseline> r;
    std::string cmd = "python3 " RLC_SOURCE_DIR "/bench/gpu/attention_baseline.py";
    for (const Model &m : models)
        for (const Shape &s : shapes)
            cmd += " " + std::to_string(m.NH) + "," + std::to_string(m.NKV) + "," + std::to_string(m.HD) + "," +
                   std::to_string(s.T) + "," + std::to_string(s.L);
    cmd += " 2>&1";
    FILE *p = popen(cmd.c_str(), "r");
    if (!p) return r;
    char line[512];
    while (fgets(line, sizeof line, p)) {
        Baseline b;
        if (sscanf(line, "sdpa %d %d %d %d %d %lf %lf", &b.NH, &b.NKV, &b.HD, &b.T, &b.L, &b.fwd_ms, &b.bwd_ms) == 7)
            r.push_back(b);
        else
            printf("  [baseline] %s", line);
    }
    pclose(p);
    return r;
}

// Geometric mean of time ratios (variant / v0, the default) per op and variant, for the summary.
struct Ratio {
    double log_sum = 0;
    int n = 0;
};

int main(int argc, char **argv) {
    bool quick = false, check_only = false, variants = false, baseline = getenv("RLC_ATTN_NO_BASELINE") == nullptr;
    bool no_check = false;
    const char *only = nullptr; // one model (for profilers)
    int pick[3] = {-1, -1, -1};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = true;
        else if (!strcmp(argv[i], "--no-baseline")) baseline = false;
        else if (!strcmp(argv[i], "--check-only")) check_only = true;
        else if (!strcmp(argv[i], "--variants")) variants = true;
        else if (!strcmp(argv[i], "--no-check")) no_check = true;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if ((!strcmp(argv[i], "--fwd") || !strcmp(argv[i], "--bwd") || !strcmp(argv[i], "--dec")) && i + 1 < argc) {
            const int op = argv[i][3] == 'f' ? 0 : argv[i][3] == 'b' ? 1 : 2, v = atoi(argv[++i]);
            if (rlc_cuda_attention_set_variant(op, v)) {
                fprintf(stderr, "bench_attention_gpu: no variant %d of %s (0..%d)\n", v, argv[i - 1],
                        rlc_cuda_attention_variant_count(op) - 1);
                return 2;
            }
            pick[op] = v;
        } else {
            fprintf(stderr, "bench_attention_gpu: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    cudaDeviceProp prop;
    RLC_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    printf("bench_attention_gpu on %s (%d SMs)\n", prop.name, prop.multiProcessorCount);
    // the variants each part runs: all, or the chosen / default one
    std::vector<int> vars[3];
    for (int op = 0; op < 3; op++) {
        if (variants)
            for (int v = 0; v < rlc_cuda_attention_variant_count(op); v++) vars[op].push_back(v);
        else
            vars[op].push_back(pick[op] >= 0 ? pick[op] : rlc_cuda_attention_get_variant(op));
        printf("  %s variants:\n", op == 0 ? "forward" : op == 1 ? "backward" : "decode");
        for (int v = 0; v < rlc_cuda_attention_variant_count(op); v++)
            printf("    %s%s\n", rlc_cuda_attention_variant_name(op, v),
                   v == rlc_cuda_attention_get_variant(op) ? "  [default]" : "");
    }
    const int def_f = rlc_cuda_attention_get_variant(0), def_b = rlc_cuda_attention_get_variant(1);
    const int def_d = rlc_cuda_attention_get_variant(2);
    for (size_t i = 0; i < std::max(vars[0].size(), vars[1].size()); i++)
        g_prefill_variants.push_back({vars[0][i % vars[0].size()], vars[1][i % vars[1].size()]});
    g_decode_variants = vars[2];

    if (!no_check) {
        printf("correctness vs the CPU twins (max|err|/max|ref| <= 2e-2; lse abs <= 1e-3):\n");
        correctness_prefill(4, 2, 64);
        correctness_prefill(4, 2, 128);
        correctness_prefill(14, 2, 64);
        correctness_prefill(6, 2, 128);
        correctness_decode(4, 2, 64, 128);
        correctness_decode(4, 2, 128, 0);
        correctness_decode(28, 4, 128, 256);
    }
    rlc_cuda_attention_set_variant(0, def_f);
    rlc_cuda_attention_set_variant(1, def_b);
    rlc_cuda_attention_set_variant(2, def_d);
    if (check_only) {
        printf("bench_attention_gpu: correctness %s\n", g_fail ? "FAILED" : "ok");
        return g_fail;
    }

    std::vector<Model> models = {{"0.5b-like", 14, 2, 64}, {"7b-like", 28, 4, 128}};
    if (only) {
        std::vector<Model> m;
        for (const Model &x : models)
            if (!strncmp(x.name, only, strlen(only))) m.push_back(x);
        models = m;
    }
    std::vector<Shape> shapes = {{4096, 2048}, {16384, 4096}, {32768, 8192}};
    if (quick) shapes = {{4096, 2048}};
    std::vector<Baseline> base;
    if (baseline) base = run_baseline(models, shapes);
    if (base.empty()) printf("  (no torch baseline: sdpa columns n/a)\n");

    std::vector<Ratio> ratio[3];
    for (int op = 0; op < 3; op++) ratio[op].resize(rlc_cuda_attention_variant_count(op));
    printf("\n%-7s %-10s %6s %6s %9s %8s %9s %8s\n", "op", "model", "T", "L", "ms", "TFLOP/s", "sdpa_ms", "vs_sdpa");
    for (const Model &m : models)
        for (const Shape &s : shapes) {
            const int T = s.T, B = T / s.L, NH = m.NH, NKV = m.NKV, HD = m.HD;
            std::vector<int> cu(B + 1);
            for (int b = 0; b <= B; b++) cu[b] = b * s.L;
            const size_t nq = (size_t)T * NH * HD, nk = (size_t)T * NKV * HD;
            bf16 *q = up(rand_bf16(nq, 11, 1.0f, nullptr)), *k = up(rand_bf16(nk, 12, 1.0f, nullptr));
            bf16 *v = up(rand_bf16(nk, 13, 1.0f, nullptr)), *dout = up(rand_bf16(nq, 14, 1.0f, nullptr));
            int *d_cu = up(cu);
            bf16 *out = (bf16 *)dalloc(nq * 2);
            float *lse = (float *)dalloc((size_t)T * NH * 4), *dq = (float *)dalloc(nq * 4);
            float *dk = (float *)dalloc(nk * 4), *dv = (float *)dalloc(nk * 4);
            size_t wsb = rlc_cuda_attention_backward_workspace_bytes(T, NH);
            void *ws = dalloc(wsb);
            const int reps = T >= 16384 ? 5 : 10;
            // causal FLOPs: QK^T and PV over the L(L+1)/2 visible pairs, 2 flops per multiply-add; backward 2.5x
            const double flops = 4.0 * HD * NH * B * ((double)s.L * (s.L + 1) / 2);
            const Baseline *bl = nullptr;
            for (const Baseline &x : base)
                if (x.NH == NH && x.NKV == NKV && x.HD == HD && x.T == T && x.L == s.L) bl = &x;
            for (int op = 0; op < 2; op++) {
                double ms0 = 0;
                for (int var : vars[op]) {
                    rlc_cuda_attention_set_variant(op, var);
                    double ms;
                    if (op == 0)
                        ms = time_ms([&] { rlc_cuda_attention_forward(out, lse, q, k, v, d_cu, B, T, NH, NKV, HD, nullptr); },
                                     reps);
                    else {
                        rlc_cuda_attention_forward(out, lse, q, k, v, d_cu, B, T, NH, NKV, HD, nullptr);
                        ms = time_ms([&] {
                            rlc_cuda_attention_backward(dq, dk, dv, dout, q, k, v, out, lse, d_cu, B, T, NH, NKV, HD, ws,
                                                        wsb, nullptr);
                        }, reps);
                    }
                    RLC_CUDA_CHECK(cudaGetLastError());
                    if (var == 0) ms0 = ms;
                    if (variants && ms0 > 0) ratio[op][var].log_sum += log(ms / ms0), ratio[op][var].n++;
                    const double f = op ? 2.5 * flops : flops, sd = bl ? (op ? bl->bwd_ms : bl->fwd_ms) : 0;
                    char sdms[32] = "n/a", rt[32] = "n/a", name[16];
                    if (bl) snprintf(sdms, sizeof sdms, "%.3f", sd), snprintf(rt, sizeof rt, "%.2fx", sd / ms);
                    snprintf(name, sizeof name, "%s v%d", op ? "bwd" : "fwd", var);
                    printf("%-7s %-10s %6d %6d %9.3f %8.1f %9s %8s\n", name, m.name, T, s.L, ms, f / (ms * 1e-3) / 1e12,
                           sdms, rt);
                }
                rlc_cuda_attention_set_variant(op, op ? def_b : def_f);
            }
            if (variants) { // the default backward's parts: D, dK/dV (+ the head-split reduce), dQ
                double part[3];
                for (int i = 0; i < 3; i++) {
                    rlc_cuda_attention_set_variant(3, 1 << i);
                    part[i] = time_ms([&] {
                        rlc_cuda_attention_backward(dq, dk, dv, dout, q, k, v, out, lse, d_cu, B, T, NH, NKV, HD, ws, wsb,
                                                    nullptr);
                    }, reps);
                }
                rlc_cuda_attention_set_variant(3, 7);
                printf("  bwd v%d parts: D %.3f ms, dK/dV %.3f ms (%.1f TFLOP/s of 4 units), dQ %.3f ms (%.1f of 3)\n",
                       def_b, part[0], part[1], 2.0 * flops / (part[1] * 1e-3) / 1e12, part[2],
                       1.5 * flops / (part[2] * 1e-3) / 1e12);
            }
            for (void *p : {(void *)q, (void *)k, (void *)v, (void *)dout, (void *)d_cu, (void *)out, (void *)lse,
                            (void *)dq, (void *)dk, (void *)dv, ws})
                cudaFree(p);
        }

    // Decode: copy bandwidth first (device-to-device, read + write counted), then each shape.
    const size_t cb = (size_t)1 << 30;
    void *ca = dalloc(cb), *cbuf = dalloc(cb);
    double copy_ms = time_ms([&] { RLC_CUDA_CHECK(cudaMemcpyAsync(cbuf, ca, cb, cudaMemcpyDeviceToDevice, 0)); }, 10);
    const double copy_gbs = 2.0 * cb / (copy_ms * 1e-3) / 1e9;
    cudaFree(ca);
    cudaFree(cbuf);
    printf("\ndevice-to-device copy: %.0f GB/s\n", copy_gbs);
    printf("%-7s %-10s %4s %6s %9s %8s %8s %9s %8s %8s\n", "op", "model", "B", "len", "ms", "GB/s", "vs_copy", "queued_ms",
           "GB/s", "vs_copy");
    const int dec_lens[] = {4096, 32768};
    const int nqueue = 20;
    for (const Model &m : models)
        for (int len : dec_lens) {
            if (quick && len > 4096) continue;
            const int B = 32, NH = m.NH, NKV = m.NKV, HD = m.HD, cap = len;
            const size_t nc = (size_t)B * cap * NKV * HD;
            std::vector<int> slot(B), kv(B, len);
            for (int b = 0; b < B; b++) slot[b] = b;
            bf16 *q = up(rand_bf16((size_t)B * NH * HD, 21, 1.0f, nullptr)), *out = (bf16 *)dalloc((size_t)B * NH * HD * 2);
            bf16 *kc = (bf16 *)dalloc(nc * 2), *vc = (bf16 *)dalloc(nc * 2);
            RLC_CUDA_CHECK(cudaMemset(kc, 0x3c, nc * 2)); // bf16 0x3c3c ~ 0.011: finite values
            RLC_CUDA_CHECK(cudaMemset(vc, 0x3c, nc * 2));
            int *d_slot = up(slot), *d_len = up(kv);
            double ms0 = 0;
            for (int var : vars[2]) {
                rlc_cuda_attention_set_variant(2, var);
                size_t wsb = rlc_cuda_attention_decode_workspace_bytes(B, cap, NH, NKV, HD, 0);
                void *ws = dalloc(wsb);
                auto call = [&] {
                    rlc_cuda_attention_decode(out, q, kc, vc, d_slot, d_len, B, cap, NH, NKV, HD, 0, ws, wsb, nullptr);
                };
                double ms = time_ms(call, 20);
                double msq = time_ms([&] { for (int r = 0; r < nqueue; r++) call(); }, 5) / nqueue;
                RLC_CUDA_CHECK(cudaGetLastError());
                if (var == 0) ms0 = msq;
                if (variants && ms0 > 0) ratio[2][var].log_sum += log(msq / ms0), ratio[2][var].n++;
                const double gbs = 2.0 * nc * 2 / (ms * 1e-3) / 1e9, gbq = 2.0 * nc * 2 / (msq * 1e-3) / 1e9;
                char name[16];
                snprintf(name, sizeof name, "dec v%d", var);
                printf("%-7s %-10s %4d %6d %9.3f %8.0f %7.0f%% %9.4f %8.0f %7.0f%%\n", name, m.name, B, len, ms, gbs,
                       100.0 * gbs / copy_gbs, msq, gbq, 100.0 * gbq / copy_gbs);
                cudaFree(ws);
            }
            rlc_cuda_attention_set_variant(2, def_d);
            for (void *p : {(void *)q, (void *)out, (void *)kc, (void *)vc, (void *)d_slot, (void *)d_len}) cudaFree(p);
        }
    if (variants) {
        printf("\nvariant summary: time relative to v0 (the default), geometric mean over the shapes (< 1 is faster; "
               "decode: queued)\n");
        for (int op = 0; op < 3; op++)
            for (int v = 0; v < (int)ratio[op].size(); v++)
                if (ratio[op][v].n)
                    printf("  %-8s %-64s %.3f\n", op == 0 ? "forward" : op == 1 ? "backward" : "decode",
                           rlc_cuda_attention_variant_name(op, v), exp(ratio[op][v].log_sum / ratio[op][v].n));
    }
    printf("\nbench_attention_gpu: correctness %s\n", g_fail ? "FAILED" : "ok");
    return g_fail;
}
