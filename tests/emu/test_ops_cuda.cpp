// tests/emu/test_ops_cuda.cpp: the CUDA op table (rlc_ops_cuda, kernels/cuda/ops_cuda.cu) against its CPU twin
// (rlc_ops_cpu), entry by entry, on the same host inputs. Under the emulator (ctest label emu) every case runs in
// the three schedule orders and its outputs must be bitwise identical across them; built for a GPU
// (tests/gpu/test_ops_cuda.cpp includes this file) every case runs twice and must repeat bit for bit, and a few
// larger shapes are added.
//
// What is checked: every table entry; accumulate vs overwrite (accumulating outputs start from non-zero values,
// overwritten ones from NaN on the device); NULL skips (bias, dinp, dw, dbias, logp, entropy); awkward shapes
// (T = 1, widths that are not multiples of a warp, a block or a vector, T > the 256-row reduction chunks,
// repeated tokens, odd head dims, head dims padded to the attention kernels' 64 / 128, empty sequences and
// cache rows, decode rows sharing a slot; KV appends of one scalar, of a decode step, of a prefill, of more rows
// than a block's threads); alloc's zero fill; the out-of-memory messages (device and cap); the memory accounting
// (in use, peak, free, the cap on alloc / try_alloc / the workspace); small uploads through the pinned staging ring
// wrapping round with no synchronisation between them; the bf16 GEMM probe; a restart after
// rlc_ops_cuda_release keeps the precision mode; act_bytes per mode, act_from_f / act_to_f.
// Every entry that takes or returns an activation (rlc_act) has one case function taking the precision mode
// (struct Act): it runs with fp32 activations, then again in mixed precision (RLC_CUDA_MIXED: bf16 activations;
// case names "mixed ...", entries "... (mixed)"), over the shape lists of test_act_entries (the attention's direct
// paths at head dims 64 and 128 and its padded paths in mixed precision, decode in place on the bf16 cache and
// through the gather path, the log-prob over two vocabulary chunks). Decode cache rows past kv_len hold NaN, so a
// read past kv_len shows. The matmuls run in fp32, bf16-GEMM and mixed mode, each again with the weight read from
// its bf16 working copy (register_params), bit for bit.
//
// Tolerances: a value passes when |gpu - cpu| <= rtol |cpu| + afrac max|cpu| (max over the tensor); the worst
// ratio error / allowed is printed per entry (<= 1 passes).
//   fp32 elementwise (scale, swiglu, adamw, rope, embedding forward, rmsnorm and add_rmsnorm out/rstd):
//                                                                                 rtol 1e-5, afrac 1e-6
//   fp32 reductions and GEMMs (matmul, logits, dbias, rmsnorm dinp/dweight):    rtol 1e-5, afrac 1e-5
//   sum of squares (double):                                                      rtol 1e-12
//   add (one fp32 addition on both sides), embedding backward, kv_append: bitwise equal (the same additions in
//   the same order as the twin; copies)
//   sample_tokens: tests/emu/test_sample.cpp
//   bf16 paths, inputs rounded to bf16 before both sides see them (as tests/emu/test_attention.cpp and
//   test_logprob.cpp do):
//     attention out, dq, dk, dv, decode out: max|gpu - cpu| <= 2e-2 max|cpu| (floor 1e-2); lse: 1e-3 absolute
//       (at padded head dims the adapter rounds s q into bf16: the twin gets that q, see att_q_twin)
//     logprob logp, entropy, lse: 1e-4 (1 + |cpu|); dhidden, dw: 2^-7 sum_k |dz_k x_k| + 1e-5 |cpu| + 1e-7
//     matmul with RLC_CUDA_BF16_GEMM (operands exactly bf16): the fp32 tolerance above
//   mixed precision (RLC_CUDA_MIXED: bf16 activations, the cases' mixed runs, after the fp32 ones): inputs are
//   drawn as bf16 values and the twin computes on the same values in fp32, so beyond the fp32 math order the one
//   difference is the single rounding of each bf16 output: half a bf16 ulp of the twin's value (8 significant bits:
//   2^-9 to 2^-8 of |x|) on top of the entry's fp32 tolerance (Act::tol). That bound is exact, not fitted: some
//   element of every tensor lands near a half ulp, so the measured worst is 0.99-0.997 of it, and a truncating
//   conversion (errors up to a whole ulp: measured 1.99 of it) fails; a safety factor would let that pass.
//   (Ratios below.)
//     swiglu, rope, rmsnorm and add_rmsnorm out (bf16):      TOL_EW + 1/2 ulp     (measured <= 0.997)
//     matmul out, dinp accumulated into bf16:                TOL_RED + 1/2 ulp    (measured <= 0.991)
//     logits_forward, matmul dw / dbias, rmsnorm rstd / dinp / dweight (fp32): the fp32 tolerances (<= 0.008)
//     rope forward then backward: two roundings, 2^-7 max|x| + 1/2 ulp (derived in test_rope; measured 0.40)
//     attention out, dq, dk, dv, decode out: ATT_TOL + 1/2 ulp (measured <= 0.27: 3.7x); lse 1e-3 absolute
//     logprob: logp, entropy, lse as above (measured 1e-3); dhidden (bf16): the bound above + 1/2 ulp (0.47)
//     add (fp32 residual + bf16 activation: one fp32 addition on both sides), kv_append: bitwise equal
//     act_to_f: exact on all 65536 bf16 patterns; act_from_f: bitwise round to nearest even (rlc_test::bf16_rne)
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "logprob.h"
#include "ops_cuda.h"
#include "rlc_cuda.h"
#include "test_common.h"
#include "test_harness.h"
#include "test_util.h"

static const rlc_ops *GPU, *CPU;
static const char *g_case = "";  // the case running (for messages)
static double g_case_worst = 0.0; // its worst error / tolerance

// ------------------------------------------------------------------------------------------------ harness

using rlc_test::Outputs;

static void run_case(const char *name, const std::function<void(Outputs &)> &body) {
    g_case = name;
    g_case_worst = 0.0;
    const int failed = test_failures;
    rlc_test::run_case(name, body);
    printf("  %-64s worst error/tol %.3g%s\n", name, g_case_worst, test_failures > failed ? "  FAILED" : "");
    g_case = "";
}

#if defined(__SANITIZE_ADDRESS__)
// The out-of-memory test asks for 4 PiB: ASan's allocator must fail it (NULL) rather than abort, so that the
// emulated cudaMalloc reports cudaErrorMemoryAllocation as a GPU would.
extern "C" const char *__asan_default_options() { return "allocator_may_return_null=1"; }
#endif

using rlc_test::expect_death;

static constexpr float (*uni)(uint32_t, uint32_t) = rlc_test::hash_uniform;
using rlc_test::bf16_round; // host round to nearest even (test_common.h)
static std::vector<float> rnd(size_t n, uint32_t salt, float amp = 1.0f, bool bf16 = false) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; i++) {
        v[i] = amp * uni((uint32_t)i, salt);
        if (bf16) v[i] = bf16_round(v[i]);
    }
    return v;
}

// Device copies through the table under test (so alloc / upload / download / free are exercised everywhere).
template <class T> static T *dev(const std::vector<T> &h) { return rlc_test::to_backend(GPU, h); }
template <class T> static std::vector<T> host(const T *d, size_t n) { return rlc_test::from_backend(GPU, d, n); }
static std::vector<float> nans(size_t n) { return std::vector<float>(n, NAN); }

// Host floats uploaded as bf16 device activations (round to nearest even on the host: exact for bf16 values).
static void *dev16(const std::vector<float> &h) {
    std::vector<uint16_t> b(h.size());
    for (size_t i = 0; i < h.size(); i++) b[i] = rlc_test::bf16_rne(h[i]);
    void *d = GPU->alloc(b.size() * 2);
    GPU->upload(d, b.data(), b.size() * 2);
    return d;
}
static std::vector<uint16_t> bits16(const void *d, size_t n) {
    std::vector<uint16_t> b(n);
    GPU->download(b.data(), d, n * 2);
    return b;
}
// bf16 device activations widened to fp32 (exact).
static std::vector<float> host16(const void *d, size_t n) {
    std::vector<uint16_t> b = bits16(d, n);
    std::vector<float> f(n);
    for (size_t i = 0; i < n; i++) f[i] = rlc_test::bf16_widen(b[i]);
    return f;
}
static void free_all(std::initializer_list<void *> ps) {
    for (void *p : ps) GPU->free(p);
}
static bool same_bits(const std::vector<float> &a, const std::vector<float> &b) {
    return a.size() == b.size() && (a.empty() || !memcmp(a.data(), b.data(), a.size() * sizeof(float)));
}

// Worst |got - want| / (rtol |want| + afrac max|want|) per entry name, printed at the end.
struct Worst {
    std::string name;
    double ratio;
};
static std::vector<Worst> g_worst;
static void note(const std::string &entry, double r) {
    g_case_worst = fmax(g_case_worst, r);
    for (auto &w : g_worst)
        if (w.name == entry) {
            w.ratio = fmax(w.ratio, r);
            return;
        }
    g_worst.push_back({entry, r});
}
// A check of an output that must equal the twin's bit for bit (copies, the same additions in the same order).
static void check_bitwise(const std::string &entry, const char *what, const std::vector<float> &got,
                          const std::vector<float> &want) {
    const bool same = same_bits(got, want);
    CHECK(same, "%s: %s %s differs from the CPU twin", g_case, entry.c_str(), what);
    note(entry, same ? 0.0 : INFINITY);
}

// Half a bf16 ulp at x: the most one round to nearest even into bf16 moves a value near x. bf16 keeps 8 significant
// bits, so for |x| in [2^(e-1), 2^e) it is 2^(e-9): between 2^-9 and 2^-8 of |x|.
static double bf16_half_ulp(double x) {
    x = fabs(x);
    if (!(x > 0) || !std::isfinite(x)) return 0.0;
    int e;
    frexp(x, &e);
    return ldexp(1.0, e - 9);
}

// half_ulps16: the output was rounded to bf16 once (mixed precision): that many half bf16 ulps of want are allowed
// on top of rtol and afrac.
static double cmp(const std::string &entry, const char *what, const std::vector<float> &got,
                  const std::vector<float> &want, double rtol, double afrac, double afloor = 0.0,
                  double half_ulps16 = 0.0) {
    double mx = 0.0;
    for (float w : want) mx = fmax(mx, fabs((double)w));
    const double atol = fmax(afrac * mx, afloor) + 1e-30;
    double worst = 0.0;
    int bad = 0;
    CHECK(got.size() == want.size(), "%s %s: %zu values, expected %zu", entry.c_str(), what, got.size(), want.size());
    for (size_t i = 0; i < got.size() && i < want.size(); i++) {
        const double e = fabs((double)got[i] - want[i]);
        const double lim = rtol * fabs((double)want[i]) + atol + half_ulps16 * bf16_half_ulp(want[i]);
        if (!(e <= lim)) {
            if (bad++ < 4)
                CHECK(0, "%s: %s %s[%zu]: got %.9g expected %.9g (allowed %.3g)", g_case, entry.c_str(), what, i,
                      got[i], want[i], lim);
        }
        if (std::isfinite(e)) worst = fmax(worst, e / lim);
        else worst = INFINITY;
    }
    CHECK(bad == 0, "%s: %s %s: %d of %zu values outside the tolerance", g_case, entry.c_str(), what, bad,
          want.size());
    note(entry, worst);
    return worst;
}
#define TOL_EW 1e-5, 1e-6
#define TOL_RED 1e-5, 1e-5
#define ATT_TOL 0.0, 2e-2, 2e-4 // attention (bf16 kernels): max-norm relative 2e-2, floor 1e-2 * 2e-2

// A tolerance as cmp takes it, so that a case can choose one per mode (the macros above are argument lists:
// Tol{TOL_EW}).
struct Tol {
    double rtol, afrac, afloor = 0.0, half_ulps16 = 0.0;
};
static double cmp(const std::string &entry, const char *what, const std::vector<float> &got,
                  const std::vector<float> &want, const Tol &t) {
    return cmp(entry, what, got, want, t.rtol, t.afrac, t.afloor, t.half_ulps16);
}

// The precision mode a case runs in, for what ops.h types as an activation (rlc_act): fp32 in device memory, or
// bf16 in mixed precision (RLC_CUDA_MIXED). Inputs are then drawn as bf16 values, uploaded as bf16 bits (dev16) and
// given to the CPU twin as the same values in fp32, so both sides compute on identical inputs; outputs come back
// widened to fp32 (host16) and are compared with one bf16 rounding allowed on top of the fp32 tolerance (tol).
// What ops.h keeps in rlc_f (the residual stream, weights, biases, rstd, lse, log-probs, weight gradients,
// logits_forward's output) is fp32 in both modes and uses the plain dev / host.
struct Act {
    bool mixed;
    const char *prefix() const { return mixed ? "mixed " : ""; }                          // of case names
    std::string entry(const char *e) const { return std::string(e) + (mixed ? " (mixed)" : ""); } // of g_worst
    std::vector<float> rnd(size_t n, uint32_t salt, float amp = 1.0f) const { return ::rnd(n, salt, amp, mixed); }
    void *dev(const std::vector<float> &h) const { return mixed ? dev16(h) : (void *)::dev(h); }
    std::vector<float> host(const void *d, size_t n) const {
        return mixed ? host16(d, n) : ::host((const float *)d, n);
    }
    Tol tol(Tol t) const { // of an activation output: rounded into bf16 once in mixed precision
        if (mixed) t.half_ulps16 += 1.0;
        return t;
    }
};

// ------------------------------------------------------------------------------------------------ memory

static void test_memory() {
    run_case("memory", [&](Outputs &o) {
        const size_t n = 1000;
        float *a = (float *)GPU->alloc(n * sizeof(float));
        std::vector<float> z = host(a, n);
        bool zero = true;
        for (float x : z) zero &= x == 0.0f;
        CHECK(zero, "alloc: memory is not zero-filled");
        std::vector<float> h = rnd(n, 1);
        GPU->upload(a, h.data(), n * sizeof(float));
        CHECK(host(a, n) == h, "upload/download round trip");
        float *b = (float *)GPU->alloc(n * sizeof(float));
        GPU->copy(b + 10, a + 100, 500 * sizeof(float)); // offsets, not multiples of 16 bytes
        GPU->zero(a + 3, 7 * sizeof(float));
        std::vector<float> hb = host(b, n), ha = host(a, n);
        bool ok = true;
        for (size_t i = 0; i < n; i++) ok &= hb[i] == (i >= 10 && i < 510 ? h[i + 90] : 0.0f);
        CHECK(ok, "copy with offsets");
        ok = true;
        for (size_t i = 0; i < n; i++) ok &= ha[i] == (i >= 3 && i < 10 ? 0.0f : h[i]);
        CHECK(ok, "zero of a sub-range");
        void *e = GPU->alloc(0);
        CHECK(e != NULL, "alloc(0) returns a pointer");
        GPU->free(e);
        GPU->free(NULL);
        GPU->zero(a, 0);
        GPU->copy(b, a, 0);
        CHECK(GPU->sumsq(a, 0) == 0.0, "sumsq of no elements");
        o.add("a", ha);
        o.add("b", hb);
        GPU->free(a);
        GPU->free(b);
    });
}

// Small uploads go through the pinned staging ring without synchronising (ops_cuda.cu, oc_upload_staged): 40 of
// them, more than the ring's 16 slots, from one host buffer rewritten before each, and no synchronisation until the
// downloads. A slot refilled before its copy ran (a GPU still behind the host) would deliver a later upload's bytes;
// under the emulator's deferred mode the copies run only at the first download, so that would show here.
static void test_staged_uploads() {
    run_case("staged uploads", [&](Outputs &o) {
        const int K = 40;
        const size_t n = 33;
        std::vector<float *> d(K);
        for (int k = 0; k < K; k++) d[k] = (float *)GPU->alloc(n * sizeof(float));
        std::vector<float> h(n);
        for (int k = 0; k < K; k++) {
            for (size_t i = 0; i < n; i++) h[i] = (float)(k * 1000 + (int)i);
            GPU->upload(d[k], h.data(), n * sizeof(float));
        }
        std::vector<float> all;
        for (int k = 0; k < K; k++) {
            std::vector<float> got = host(d[k], n);
            bool ok = true;
            for (size_t i = 0; i < n; i++) ok &= got[i] == (float)(k * 1000 + (int)i);
            CHECK(ok, "staged upload %d of %d: the device holds %g..., not %d...", k, K, got[0], k * 1000);
            all.insert(all.end(), got.begin(), got.end());
            GPU->free(d[k]);
        }
        o.add("uploads", all);
    });
}

// Accounting (in use, peak, free, total), the cap (set_mem_limit) on alloc, try_alloc and the workspace, and the
// bf16 GEMM probe. Plain checks outside run_case: the counts are process state, not kernel outputs.
static void test_memory_accounting() {
    rlc_mem_info a;
    GPU->mem_info(&a);
    CHECK(a.limit == 0, "no limit unless set (RLC_MEM_LIMIT_MB must not be set for this test): %zu", a.limit);
    CHECK(a.total > 0 && a.free <= a.total && a.peak >= a.in_use, "free %zu of %zu, in use %zu, peak %zu", a.free,
          a.total, a.in_use, a.peak);
    const size_t n = 3 << 20;
    void *p = GPU->try_alloc(n);
    CHECK(p != NULL, "try_alloc 3 MiB");
    std::vector<float> z = host((float *)p, 1000);
    bool zero = true;
    for (float x : z) zero &= x == 0.0f;
    CHECK(zero, "try_alloc zero-fills");
    rlc_mem_info b;
    GPU->mem_info(&b);
    CHECK(b.in_use == a.in_use + n && b.peak >= b.in_use, "in use %zu -> %zu after %zu bytes", a.in_use, b.in_use, n);
    CHECK(b.free <= a.free - n || a.free < n, "the device's free memory went down: %zu -> %zu", a.free, b.free);
    GPU->free(p);
    rlc_mem_info c;
    GPU->mem_info(&c);
    CHECK(c.in_use == a.in_use && c.peak == b.peak, "free gives it back (%zu vs %zu), the peak stays", c.in_use,
          a.in_use);
    // the cap
    const size_t lim = c.in_use + (1 << 20);
    GPU->set_mem_limit(lim);
    GPU->mem_info(&c);
    CHECK(c.limit == lim && c.total == lim && c.free == (size_t)1 << 20, "under the cap: limit %zu total %zu free %zu",
          c.limit, c.total, c.free);
    CHECK(GPU->try_alloc(2 << 20) == NULL, "2 MiB over a 1 MiB cap is refused");
    CHECK(GPU->try_alloc((size_t)-1) == NULL, "SIZE_MAX is refused without overflow");
    p = GPU->try_alloc(600 << 10);
    CHECK(p != NULL && GPU->try_alloc(600 << 10) == NULL, "600 KiB fits, a second 600 KiB does not");
    GPU->free(p);
    GPU->set_mem_limit(0);
    // the workspace counts: an op that grows it raises in_use by exactly the workspace's growth
    rlc_ops_cuda_release(); // an empty workspace
    GPU = rlc_ops_cuda();
    // the restart keeps the precision mode (buffers allocated under it stay valid): fp32, as main set it
    CHECK(rlc_ops_cuda_precision() == RLC_CUDA_FP32 && GPU->act_bytes == sizeof(float),
          "release and restart changed the precision mode to %s (act_bytes %zu)",
          rlc_ops_cuda_precision_name(rlc_ops_cuda_precision()), GPU->act_bytes);
    GPU->mem_info(&a);
    const size_t nx = 3000000;
    float *x = (float *)GPU->alloc(nx * sizeof(float));
    (void)GPU->sumsq(x, nx);
    GPU->mem_info(&b);
    CHECK(rlc_ops_cuda_workspace_bytes() > 0 && b.in_use == a.in_use + nx * sizeof(float) + rlc_ops_cuda_workspace_bytes(),
          "in use %zu -> %zu: the allocation %zu and the workspace %zu", a.in_use, b.in_use, nx * sizeof(float),
          rlc_ops_cuda_workspace_bytes());
    GPU->free(x);
    // the bf16 GEMM probe: a positive rate, nothing left allocated
    GPU->mem_info(&a);
    double tf = rlc_ops_cuda_gemm_bf16_tflops(64, 2);
    GPU->mem_info(&b);
    CHECK(isfinite(tf) && tf > 0, "bf16 GEMM probe: %g TFLOP/s", tf);
    CHECK(b.in_use == a.in_use && b.peak >= a.in_use + 8 * 64 * 64, "the probe frees its operands (%zu vs %zu)",
          b.in_use, a.in_use);
}

// The op profiler: with it on, the table's compute entries count their calls and device time (the pointer the
// backend returned sees the swap); off, they are the real entries again and count nothing.
static void test_profiler() {
    const size_t n = 5000;
    float *x = dev(rnd(n, 5, 1.0f, false)), *y = dev(rnd(n, 6, 1.0f, false)), *z = dev(nans(n));
    rlc_ops_cuda_profile_enable(0); // (RLC_CUDA_PROFILE may have turned it on)
    const auto real_add = GPU->add;
    rlc_ops_cuda_profile_enable(1);
    rlc_ops_cuda_profile_reset();
    CHECK(GPU->add != real_add, "profile on: the add entry is the timed wrapper");
    GPU->add(z, x, y, n);
    GPU->add(z, z, y, n);
    (void)GPU->sumsq(z, n);
    // a GEMM entry counts per weight shape: (10, 50) x (40, 50)^T
    float *w = dev(rnd(40 * 50, 7, 0.1f, false)), *mo = dev(nans(10 * 40));
    GPU->matmul_forward(mo, x, w, NULL, 10, 50, 40);
    long long calls_m = -1;
    CHECK(rlc_ops_cuda_profile_get("matmul_forward 50x40", &calls_m, NULL) == 0 && calls_m == 1,
          "matmul_forward 50x40: %lld calls", calls_m);
    long long calls = -1, calls_s = -1;
    double ms = -1.0, ms_s = -1.0;
    CHECK(rlc_ops_cuda_profile_get("add", &calls, &ms) == 0 && calls == 2 && ms >= 0.0, "add: %lld calls, %g ms",
          calls, ms);
    CHECK(rlc_ops_cuda_profile_get("sumsq", &calls_s, &ms_s) == 0 && calls_s == 1, "sumsq: %lld calls", calls_s);
    CHECK(rlc_ops_cuda_profile_get("no_such_entry", &calls, &ms) == -1, "an unknown entry");
    std::vector<float> zh = host(z, n), xh = host(x, n), yh = host(y, n);
    bool same = true;
    for (size_t i = 0; i < n; i++) same &= zh[i] == xh[i] + yh[i] + yh[i];
    CHECK(same, "the timed entries compute what the real ones do");
    FILE *f = tmpfile();
    rlc_ops_cuda_profile_report(f, "test");
    rewind(f);
    char buf[4096] = {0};
    const size_t got = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    CHECK(got > 0 && strstr(buf, "op-table device time, test") && strstr(buf, "  add ") && strstr(buf, "  sumsq "),
          "report:\n%s", buf);
    rlc_ops_cuda_profile_enable(0);
    CHECK(GPU->add == real_add, "profile off: the real add entry again");
    GPU->add(z, x, y, n);
    CHECK(rlc_ops_cuda_profile_get("add", &calls, &ms) == 0 && calls == 2, "off: no count (%lld)", calls);
    rlc_ops_cuda_profile_reset();
    CHECK(rlc_ops_cuda_profile_get("add", &calls, &ms) == 0 && calls == 0 && ms == 0.0, "reset");
    free_all({x, y, z, w, mo});
}

// ------------------------------------------------------------------------------------------------ elementwise

// add (out = a + b: a the fp32 residual stream, b an activation; one fp32 addition on both sides, so bitwise), out
// of place, in place on a (the residual stream added in place) and, where b is an fp32 tensor like out, on b;
// SwiGLU forward / backward (gate, up, dout and the outputs activations).
static void test_elementwise(size_t n, bool mixed) {
    const Act act{mixed};
    char name[64];
    snprintf(name, sizeof name, "%selementwise n=%zu", act.prefix(), n);
    std::vector<float> a = rnd(n, 11, 3.0f), b = act.rnd(n, 12, 2.0f);
    std::vector<float> gate = act.rnd(n, 13, 20.0f), up = act.rnd(n, 14), dout = act.rnd(n, 15);
    std::vector<float> add_c(n), sw_c(n), dg_c(n), du_c(n);
    CPU->add(add_c.data(), a.data(), b.data(), n);
    CPU->swiglu_forward(sw_c.data(), gate.data(), up.data(), n);
    CPU->swiglu_backward(dg_c.data(), du_c.data(), dout.data(), gate.data(), up.data(), n);
    const std::string add = act.entry("add");
    run_case(name, [&](Outputs &o) {
        float *da = dev(a), *dsum = dev(nans(n));
        void *db = act.dev(b);
        GPU->add(dsum, da, db, n);
        std::vector<float> add_g = host(dsum, n);
        check_bitwise(add, "out", add_g, add_c);
        GPU->add(da, da, db, n); // the residual stream added in place
        check_bitwise(add, "out aliasing a", host(da, n), add_c);
        if (!act.mixed) { // out is fp32: it can alias b only where b is fp32 too
            GPU->upload(da, a.data(), n * sizeof(float));
            GPU->add((float *)db, da, db, n);
            check_bitwise(add, "out aliasing b", host((float *)db, n), add_c);
        }

        void *dgate = act.dev(gate), *dup = act.dev(up), *ddo = act.dev(dout), *dsw = act.dev(nans(n));
        void *ddg = act.dev(nans(n)), *ddu = act.dev(nans(n));
        GPU->swiglu_forward(dsw, dgate, dup, n);
        GPU->swiglu_backward(ddg, ddu, ddo, dgate, dup, n);
        std::vector<float> sw_g = act.host(dsw, n), dg_g = act.host(ddg, n), du_g = act.host(ddu, n);
        const Tol tol = act.tol(Tol{TOL_EW});
        cmp(act.entry("swiglu_forward"), "out", sw_g, sw_c, tol);
        cmp(act.entry("swiglu_backward"), "dgate", dg_g, dg_c, tol);
        cmp(act.entry("swiglu_backward"), "dup", du_g, du_c, tol);
        o.add("add", add_g);
        o.add("swiglu", sw_g);
        o.add("dgate", dg_g);
        o.add("dup", du_g);
        free_all({da, dsum, db, dgate, dup, ddo, dsw, ddg, ddu});
    });
}

// The elementwise entries on fp32 tensors only (rlc_f: the same in every precision mode): scale, the sum of
// squares (double) and AdamW twice (t = 1 and 7) from non-zero moments.
static void test_scale_sumsq_adamw(size_t n) {
    char name[64];
    snprintf(name, sizeof name, "scale, sumsq, adamw_update n=%zu", n);
    std::vector<float> a = rnd(n, 11, 3.0f), sc_c = a;
    CPU->scale(sc_c.data(), 0.37f, n);
    const double ss_c = CPU->sumsq(a.data(), n);
    std::vector<float> p_c = rnd(n, 16), m_c = rnd(n, 17, 0.1f), v_c = rnd(n, 18, 0.01f), g = rnd(n, 19);
    for (auto &x : v_c) x = fabsf(x);
    const std::vector<float> p0 = p_c, m0 = m_c, v0 = v_c;
    CPU->adamw_update(p_c.data(), g.data(), m_c.data(), v_c.data(), n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, 1);
    CPU->adamw_update(p_c.data(), g.data(), m_c.data(), v_c.data(), n, 3e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, 7);

    run_case(name, [&](Outputs &o) {
        float *da = dev(a), *dsc = dev(a);
        GPU->scale(dsc, 0.37f, n);
        std::vector<float> sc_g = host(dsc, n);
        cmp("scale", "x", sc_g, sc_c, TOL_EW);
        const double ss_g = GPU->sumsq(da, n);
        CHECK(fabs(ss_g - ss_c) <= 1e-12 * fabs(ss_c), "sumsq: %.17g vs %.17g", ss_g, ss_c);
        note("sumsq", ss_c > 0 ? fabs(ss_g - ss_c) / (1e-12 * ss_c) : fabs(ss_g));

        float *dp = dev(p0), *dm = dev(m0), *dv = dev(v0), *dg = dev(g);
        GPU->adamw_update(dp, dg, dm, dv, n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, 1);
        GPU->adamw_update(dp, dg, dm, dv, n, 3e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, 7);
        std::vector<float> p_g = host(dp, n), m_g = host(dm, n), v_g = host(dv, n);
        cmp("adamw_update", "p", p_g, p_c, TOL_EW);
        cmp("adamw_update", "m", m_g, m_c, TOL_EW);
        cmp("adamw_update", "v", v_g, v_c, TOL_EW);
        o.add("scale", sc_g);
        o.add("sumsq", std::vector<double>{ss_g});
        o.add("p", p_g);
        free_all({da, dsc, dp, dm, dv, dg});
    });
}

// ------------------------------------------------------------------------------------------------ embedding

static void test_embedding(int T, int C, int V, int distinct) {
    char name[96];
    snprintf(name, sizeof name, "embedding T=%d C=%d V=%d", T, C, V);
    std::vector<int> tok(T);
    for (int t = 0; t < T; t++) // few distinct ids: many repeats, in no particular order
        tok[t] = (int)((uni((uint32_t)t, 21) * 0.5f + 0.5f) * distinct) * (V / distinct) % V;
    if (T > 2) tok[T - 1] = V - 1;
    std::vector<float> wte = rnd((size_t)V * C, 22), dout = rnd((size_t)T * C, 23), dwte0 = rnd((size_t)V * C, 24, 0.1f);
    std::vector<float> out_c((size_t)T * C), dwte_c = dwte0;
    CPU->embedding_forward(out_c.data(), tok.data(), wte.data(), T, C);
    CPU->embedding_backward(dwte_c.data(), dout.data(), tok.data(), T, C);
    run_case(name, [&](Outputs &o) {
        int *dt = dev(tok);
        float *dw = dev(wte), *dout_ = dev(nans((size_t)T * C)), *dd = dev(dout), *dg = dev(dwte0);
        GPU->embedding_forward(dout_, dt, dw, T, C);
        GPU->embedding_backward(dg, dd, dt, T, C);
        std::vector<float> out_g = host(dout_, (size_t)T * C), dwte_g = host(dg, (size_t)V * C);
        CHECK(out_g == out_c, "%s: forward differs from the twin", name);
        note("embedding_forward", out_g == out_c ? 0.0 : INFINITY);
        size_t diff = 0;
        for (size_t i = 0; i < dwte_g.size(); i++) diff += memcmp(&dwte_g[i], &dwte_c[i], sizeof(float)) != 0;
        CHECK(diff == 0, "%s: backward: %zu of %zu values not bitwise equal to the twin", name, diff, dwte_g.size());
        cmp("embedding_backward", "dwte", dwte_g, dwte_c, 0.0, 0.0, 1e-30);
        o.add("out", out_g);
        o.add("dwte", dwte_g);
        GPU->free(dt);
        for (float *p : {dw, dout_, dd, dg}) GPU->free(p);
    });
}

// ------------------------------------------------------------------------------------------------ matmul

// mode: RLC_CUDA_FP32, RLC_CUDA_BF16_GEMM (fp32 activations, bf16 GEMM operands: inp, w, dout hold bf16 values) or
// RLC_CUDA_MIXED (bf16 inp, dout, matmul_forward's output and dinp, accumulated into its bf16 values: one rounding
// of the fp32 sum; the weight holds bf16 values so that the adapter's conversion is exact). bias, dw, dbias and
// logits_forward's output are fp32 in every mode. which: bit 0 dinp, bit 1 dw, bit 2 dbias (the others NULL);
// bias: forward with a bias. The whole case runs again with the weight registered (register_params: the bf16 modes
// read it from its bf16 working copy), which must give the same bits, and a third time with weight and bias in one
// registered buffer, as a model holds them: in mixed precision the bias then comes from its bf16 copy through the
// GEMM's bias epilogue (rlc_blas_gemm_bf16_bias). The bias is drawn as bf16 values in the bf16 modes, so the
// epilogue's result equals the scratch path's bit for bit under the emulator (same fp32 products, same one
// rounding); on a GPU cuBLASLt's epilogue kernel may sum in another order, so there it is held to the tolerance.
static void test_matmul(int T, int C, int OC, bool bias, int which, int mode) {
    const Act act{mode == RLC_CUDA_MIXED};
    const bool b16 = mode != RLC_CUDA_FP32;
    char name[128];
    snprintf(name, sizeof name, "%smatmul%s T=%d C=%d OC=%d bias=%d grads=%s%s%s", act.prefix(),
             act.mixed ? "" : b16 ? " bf16" : " fp32", T, C, OC, (int)bias, which & 1 ? "dinp," : "",
             which & 2 ? "dw," : "", which & 4 ? "dbias" : "");
    std::vector<float> inp = rnd((size_t)T * C, 31, 1.0f, b16), w = rnd((size_t)OC * C, 32, 0.5f, b16);
    std::vector<float> bs = rnd(OC, 33, 1.0f, b16), dout = rnd((size_t)T * OC, 34, 1.0f, b16);
    std::vector<float> dinp0 = act.rnd((size_t)T * C, 35, 0.1f), dw0 = rnd((size_t)OC * C, 36, 0.1f);
    std::vector<float> db0 = rnd(OC, 37, 0.1f);
    std::vector<float> out_c((size_t)T * OC), lg_c((size_t)T * OC), dinp_c = dinp0, dw_c = dw0, db_c = db0;
    CPU->matmul_forward(out_c.data(), inp.data(), w.data(), bias ? bs.data() : NULL, T, C, OC);
    CPU->logits_forward(lg_c.data(), inp.data(), w.data(), bias ? bs.data() : NULL, T, C, OC);
    CPU->matmul_backward(which & 1 ? dinp_c.data() : NULL, which & 2 ? dw_c.data() : NULL,
                         which & 4 ? db_c.data() : NULL, dout.data(), inp.data(), w.data(), T, C, OC);
    run_case(name, [&](Outputs &o) {
        const int prev = rlc_ops_cuda_precision();
        rlc_ops_cuda_set_precision(mode);
        void *di = act.dev(inp), *dd = act.dev(dout);
        float *dwt = dev(w), *dbs = dev(bs);
        std::vector<float> wb(w); // weight then bias in one buffer, as in a model's parameters
        wb.insert(wb.end(), bs.begin(), bs.end());
        float *dwb = dev(wb);
        std::vector<float> res[3][5]; // out, logits, dinp, dw, dbias; unregistered, registered weight, w + bias
        for (int reg = 0; reg < 3; reg++) {
            if (reg == 1) GPU->register_params(dwt, w.size());
            if (reg == 2) GPU->register_params(dwb, wb.size());
            float *pw = reg == 2 ? dwb : dwt, *pb = reg == 2 ? dwb + w.size() : dbs;
            void *dout_ = act.dev(nans((size_t)T * OC)), *ddi = act.dev(dinp0);
            float *dlg = dev(nans((size_t)T * OC)), *ddw = dev(dw0), *ddb = dev(db0);
            GPU->matmul_forward(dout_, di, pw, bias ? pb : NULL, T, C, OC);
            GPU->logits_forward(dlg, di, pw, bias ? pb : NULL, T, C, OC);
            GPU->matmul_backward(which & 1 ? ddi : NULL, which & 2 ? ddw : NULL, which & 4 ? ddb : NULL, dd, di, pw,
                                 T, C, OC);
            res[reg][0] = act.host(dout_, out_c.size());
            res[reg][1] = host(dlg, lg_c.size());
            res[reg][2] = act.host(ddi, dinp0.size());
            res[reg][3] = host(ddw, dw0.size());
            res[reg][4] = host(ddb, db0.size());
            free_all({dout_, ddi, dlg, ddw, ddb});
        }
        CHECK(rlc_ops_cuda_params_bf16(dwt, w.size()) != NULL, "%s: the weight has no bf16 copy", name);
        const std::vector<float> *r = res[0];
        const Tol red = Tol{TOL_RED}, red_act = act.tol(red);
        cmp(act.entry("matmul_forward"), "out", r[0], out_c, red_act);
        cmp(act.entry("logits_forward"), "out", r[1], lg_c, red);
        cmp(act.entry("matmul_backward"), "dinp", r[2], dinp_c, red_act); // == dinp0 when NULL
        cmp(act.entry("matmul_backward"), "dw", r[3], dw_c, red);
        cmp(act.entry("matmul_backward"), "dbias", r[4], db_c, red);
        if (!(which & 1)) CHECK(same_bits(r[2], dinp0), "%s: dinp changed although NULL was passed", name);
        if (!(which & 2)) CHECK(same_bits(r[3], dw0), "%s: dw changed although NULL was passed", name);
        if (!(which & 4)) CHECK(same_bits(r[4], db0), "%s: dbias changed although NULL was passed", name);
        static const char *what[5] = {"out", "logits", "dinp", "dw", "dbias"};
        for (int i = 0; i < 5; i++) {
            CHECK(same_bits(res[1][i], r[i]), "%s: %s differs with the weight registered", name, what[i]);
#if defined(RLC_EMU)
            CHECK(same_bits(res[2][i], r[i]), "%s: %s differs with weight and bias registered together", name, what[i]);
#endif
            o.add(what[i], r[i]);
        }
#if !defined(RLC_EMU)
        cmp(act.entry("matmul_forward"), "out (bias epilogue)", res[2][0], out_c, red_act);
#endif
        free_all({di, dd, dwt, dbs, dwb}); // freeing dwt, dwb unregisters them
        rlc_ops_cuda_set_precision(prev);
    });
}

// ------------------------------------------------------------------------------------------------ RMSNorm, RoPE

// fp32 residual input, weight, rstd and dinp; out and dout activations.
static void test_rmsnorm(int T, int C, bool mixed) {
    const Act act{mixed};
    char name[64];
    snprintf(name, sizeof name, "%srmsnorm T=%d C=%d", act.prefix(), T, C);
    std::vector<float> x = rnd((size_t)T * C, 41, 2.0f), wt = rnd(C, 42), dout = act.rnd((size_t)T * C, 43);
    std::vector<float> dx0 = rnd((size_t)T * C, 44, 0.1f), dw0 = rnd(C, 45, 0.1f);
    std::vector<float> out_c((size_t)T * C), rstd_c(T), dx_c = dx0, dw_c = dw0;
    CPU->rmsnorm_forward(out_c.data(), rstd_c.data(), x.data(), wt.data(), 1e-6f, T, C);
    CPU->rmsnorm_backward(dx_c.data(), dw_c.data(), dout.data(), x.data(), wt.data(), rstd_c.data(), T, C);
    run_case(name, [&](Outputs &o) {
        float *dx = dev(x), *dwt = dev(wt), *drs = dev(nans(T)), *ddx = dev(dx0), *ddw = dev(dw0);
        void *dd = act.dev(dout), *dout_ = act.dev(nans((size_t)T * C));
        GPU->rmsnorm_forward(dout_, drs, dx, dwt, 1e-6f, T, C);
        GPU->rmsnorm_backward(ddx, ddw, dd, dx, dwt, drs, T, C);
        std::vector<float> out_g = act.host(dout_, out_c.size()), rs_g = host(drs, T);
        std::vector<float> dx_g = host(ddx, dx0.size()), dw_g = host(ddw, dw0.size());
        cmp(act.entry("rmsnorm_forward"), "out", out_g, out_c, act.tol(Tol{TOL_EW}));
        cmp(act.entry("rmsnorm_forward"), "rstd", rs_g, rstd_c, TOL_EW);
        cmp(act.entry("rmsnorm_backward"), "dinp", dx_g, dx_c, TOL_RED);
        cmp(act.entry("rmsnorm_backward"), "dweight", dw_g, dw_c, TOL_RED);
        o.add("out", out_g);
        o.add("rstd", rs_g);
        o.add("dinp", dx_g);
        o.add("dweight", dw_g);
        free_all({dx, dwt, drs, ddx, ddw, dd, dout_});
    });
}

// add_rmsnorm_forward: x = a + b, then the norm of x (b and out activations). Checked against the CPU twin (x
// bitwise: the same float additions), and bitwise against the GPU's own two-op path (add, then rmsnorm_forward),
// out of place and in place (x = a, as the model's cached forward calls it). One entry name in both modes.
static void test_add_rmsnorm(int T, int C, bool mixed) {
    const Act act{mixed};
    char name[80];
    snprintf(name, sizeof name, "%sadd_rmsnorm T=%d C=%d", act.prefix(), T, C);
    const size_t n = (size_t)T * C;
    std::vector<float> a = rnd(n, 51, 2.0f), b = act.rnd(n, 52), wt = rnd(C, 53);
    std::vector<float> x_c(n), out_c(n), rstd_c(T);
    CPU->add_rmsnorm_forward(x_c.data(), out_c.data(), rstd_c.data(), a.data(), b.data(), wt.data(), 1e-6f, T, C);
    run_case(name, [&](Outputs &o) {
        float *da = dev(a), *dwt = dev(wt), *dx = dev(nans(n)), *drs = dev(nans(T)), *dx2 = dev(nans(n));
        float *drs2 = dev(nans(T)), *dain = dev(a), *drs3 = dev(nans(T));
        void *db = act.dev(b), *dout = act.dev(nans(n)), *dout2 = act.dev(nans(n)), *dout3 = act.dev(nans(n));
        GPU->add_rmsnorm_forward(dx, dout, drs, da, db, dwt, 1e-6f, T, C);
        GPU->add(dx2, da, db, n); // the two-op path
        GPU->rmsnorm_forward(dout2, drs2, dx2, dwt, 1e-6f, T, C);
        GPU->add_rmsnorm_forward(dain, dout3, drs3, dain, db, dwt, 1e-6f, T, C); // in place
        std::vector<float> x_g = host(dx, n), out_g = act.host(dout, n), rs_g = host(drs, T);
        CHECK(same_bits(x_g, x_c), "%s: x differs from the CPU twin's a + b", name);
        cmp("add_rmsnorm_forward", "out", out_g, out_c, act.tol(Tol{TOL_EW}));
        cmp("add_rmsnorm_forward", "rstd", rs_g, rstd_c, TOL_EW);
        CHECK(same_bits(x_g, host(dx2, n)) && same_bits(out_g, act.host(dout2, n)) && same_bits(rs_g, host(drs2, T)),
              "%s: the fused op differs from add + rmsnorm_forward on the device", name);
        CHECK(same_bits(x_g, host(dain, n)) && same_bits(out_g, act.host(dout3, n)) && same_bits(rs_g, host(drs3, T)),
              "%s: in place (x = a) differs from out of place", name);
        o.add("x", x_g);
        o.add("out", out_g);
        o.add("rstd", rs_g);
        free_all({da, dwt, dx, drs, dx2, drs2, dain, drs3, db, dout, dout2, dout3});
    });
}

// x rotated in place (an activation). An odd head dim's last column is not rotated and keeps its bits. Forward then
// backward gives x back: in fp32 within the elementwise tolerance; in mixed precision up to two roundings: the
// forward's errors e (at most half an ulp, 2^-8 |y|, of each element of the pair) rotated back (|c e_i - s e_j| <=
// sqrt(2) 2^-8 |pair|, |pair| <= sqrt(2) max|x|: afrac 2^-7), then the backward's own rounding (half an ulp).
static void test_rope(int T, int H, int HD, float theta, bool mixed) {
    const Act act{mixed};
    char name[64];
    snprintf(name, sizeof name, "%srope T=%d H=%d HD=%d", act.prefix(), T, H, HD);
    std::vector<int> pos(T);
    for (int t = 0; t < T; t++) pos[t] = t % 3 == 2 ? 30000 + 17 * t : t; // also far positions
    const size_t n = (size_t)T * H * HD;
    std::vector<float> x = act.rnd(n, 51), dx = act.rnd(n, 52);
    std::vector<float> x_c = x, dx_c = dx;
    CPU->rope_forward(x_c.data(), pos.data(), T, H, HD, theta);
    CPU->rope_backward(dx_c.data(), pos.data(), T, H, HD, theta);
    const Tol tol = act.tol(Tol{TOL_EW}), round_trip = act.mixed ? Tol{1e-5, 1.0 / 128, 0.0, 1.0} : Tol{TOL_EW};
    run_case(name, [&](Outputs &o) {
        int *dp = dev(pos);
        void *d1 = act.dev(x), *d2 = act.dev(dx);
        GPU->rope_forward(d1, dp, T, H, HD, theta);
        GPU->rope_backward(d2, dp, T, H, HD, theta);
        std::vector<float> x_g = act.host(d1, n), dx_g = act.host(d2, n);
        cmp(act.entry("rope_forward"), "x", x_g, x_c, tol);
        cmp(act.entry("rope_backward"), "dx", dx_g, dx_c, tol);
        if (HD % 2) {
            size_t moved = 0;
            for (size_t r = 0; r < (size_t)T * H; r++) moved += x_g[r * HD + HD - 1] != x[r * HD + HD - 1];
            CHECK(moved == 0, "%s: %zu values of the last (unrotated) column changed", name, moved);
        }
        GPU->rope_backward(d1, dp, T, H, HD, theta);
        cmp(act.entry("rope_backward"), "forward then backward", act.host(d1, n), x, round_trip);
        o.add("x", x_g);
        o.add("dx", dx_g);
        free_all({dp, d1, d2});
    });
}

// ------------------------------------------------------------------------------------------------ attention

// The q the CPU twin gets. The attention kernels are bf16 (inputs drawn as bf16 values for both sides) and run at
// head dims 64 and 128: there the q handed to the table is the kernel's q. Other head dims are zero-padded to
// HDp = 64 or 128 and the adapter rounds s q into bf16 with s = sqrt(HDp / HD) (ops_cuda.h, in either mode), so
// the twin gets bf16(s q) / s, the value whose scores and gradients the kernel computes.
static std::vector<float> att_q_twin(const std::vector<float> &q, int HD) {
    std::vector<float> r = q;
    if (HD == 64 || HD == 128) return r;
    const int HDp = HD < 64 ? 64 : 128;
    const float s = (float)sqrt((double)HDp / (double)HD);
    for (auto &x : r) x = bf16_round(s * x) / s;
    return r;
}

static void test_attention(int NH, int NKV, int HD, std::vector<int> lens, bool mixed) {
    const Act act{mixed};
    const int B = (int)lens.size();
    std::vector<int> cu(B + 1, 0);
    for (int b = 0; b < B; b++) cu[b + 1] = cu[b] + lens[b];
    const int T = cu[B];
    char name[128];
    snprintf(name, sizeof name, "%sattention NH/NKV=%d/%d HD=%d B=%d T=%d%s", act.prefix(), NH, NKV, HD, B, T,
             !act.mixed ? "" : HD == 64 || HD == 128 ? " (direct)" : " (padded)");
    const size_t nq = (size_t)T * NH * HD, nk = (size_t)T * NKV * HD;
    std::vector<float> q = rnd(nq, 61 + HD, 2.0f, true), k = rnd(nk, 62 + HD, 1.5f, true);
    std::vector<float> v = rnd(nk, 63 + HD, 1.0f, true), dout = rnd(nq, 64 + HD, 1.0f, true);
    const std::vector<float> qc = att_q_twin(q, HD);
    std::vector<float> out_c(nq), lse_c((size_t)T * NH), dq_c(nq), dk_c(nk), dv_c(nk);
    CPU->attention_forward(out_c.data(), lse_c.data(), qc.data(), k.data(), v.data(), cu.data(), B, T, NH, NKV, HD);
    CPU->attention_backward(dq_c.data(), dk_c.data(), dv_c.data(), dout.data(), qc.data(), k.data(), v.data(),
                            out_c.data(), lse_c.data(), cu.data(), B, T, NH, NKV, HD);
    const Tol tol = act.tol(Tol{ATT_TOL});
    run_case(name, [&](Outputs &o) {
        int *dcu = dev(cu);
        void *dq = act.dev(q), *dk = act.dev(k), *dv = act.dev(v), *ddo = act.dev(dout), *dout_ = act.dev(nans(nq));
        void *gq = act.dev(nans(nq)), *gk = act.dev(nans(nk)), *gv = act.dev(nans(nk));
        float *dlse = dev(nans((size_t)T * NH));
        GPU->attention_forward(dout_, dlse, dq, dk, dv, dcu, B, T, NH, NKV, HD);
        GPU->attention_backward(gq, gk, gv, ddo, dq, dk, dv, dout_, dlse, dcu, B, T, NH, NKV, HD);
        std::vector<float> out_g = act.host(dout_, nq), lse_g = host(dlse, (size_t)T * NH);
        std::vector<float> dq_g = act.host(gq, nq), dk_g = act.host(gk, nk), dv_g = act.host(gv, nk);
        cmp(act.entry("attention_forward"), "out", out_g, out_c, tol);
        cmp(act.entry("attention_forward"), "lse", lse_g, lse_c, 0.0, 0.0, 1e-3);
        cmp(act.entry("attention_backward"), "dq", dq_g, dq_c, tol);
        cmp(act.entry("attention_backward"), "dk", dk_g, dk_c, tol);
        cmp(act.entry("attention_backward"), "dv", dv_g, dv_c, tol);
        o.add("out", out_g);
        o.add("lse", lse_g);
        o.add("dq", dq_g);
        o.add("dk", dk_g);
        o.add("dv", dv_g);
        free_all({dcu, dq, dk, dv, ddo, dout_, gq, gk, gv, dlse});
    });
}

// Decode: in mixed precision the bf16 cache is read in place through slot / kv_len at head dims 64 and 128 (the
// direct path) and gathered and padded otherwise; fp32 caches are always gathered. Cache rows that no query row
// reads (past the longest kv_len on their slot) hold NaN, so a read past kv_len shows.
static void test_decode(int NH, int NKV, int HD, int cap, int n_slots, std::vector<int> slot, std::vector<int> kv_len,
                        bool mixed) {
    const Act act{mixed};
    const int B = (int)slot.size();
    char name[128];
    snprintf(name, sizeof name, "%sattention_decode NH/NKV=%d/%d HD=%d B=%d cap=%d%s", act.prefix(), NH, NKV, HD, B,
             cap, !act.mixed ? "" : HD == 64 || HD == 128 ? " (direct)" : " (gather)");
    const size_t nq = (size_t)B * NH * HD, row = (size_t)NKV * HD, nc = (size_t)n_slots * cap * row;
    std::vector<float> q = rnd(nq, 71 + HD, 2.0f, true), kc = rnd(nc, 72 + HD, 1.5f, true), vc = rnd(nc, 73 + HD, 1.0f, true);
    std::vector<int> used(n_slots, 0);
    for (int b = 0; b < B; b++) used[slot[b]] = std::max(used[slot[b]], kv_len[b]);
    for (int s = 0; s < n_slots; s++)
        for (size_t i = ((size_t)s * cap + used[s]) * row; i < (size_t)(s + 1) * cap * row; i++) kc[i] = vc[i] = NAN;
    const std::vector<float> qc = att_q_twin(q, HD);
    std::vector<float> out_c(nq);
    CPU->attention_decode(out_c.data(), qc.data(), kc.data(), vc.data(), slot.data(), kv_len.data(), B, cap, NH, NKV, HD);
    run_case(name, [&](Outputs &o) {
        int *ds = dev(slot), *dl = dev(kv_len);
        void *dq = act.dev(q), *dk = act.dev(kc), *dv = act.dev(vc), *dout_ = act.dev(nans(nq));
        rlc_ops_cuda_workspace_request_max(1);
        GPU->attention_decode(dout_, dq, dk, dv, ds, dl, B, cap, NH, NKV, HD);
        // the rollout engine budgets decode with the backend's per-row scratch estimate: it must cover the call
        const size_t need = rlc_ops_cuda_workspace_request_max(0),
                     est = (size_t)B * GPU->attention_decode_scratch(cap, NH, NKV, HD);
        CHECK(need <= est, "%s: the call asked for %zu workspace bytes, over B x attention_decode_scratch = %zu",
              name, need, est);
        std::vector<float> out_g = act.host(dout_, nq);
        cmp(act.entry("attention_decode"), "out", out_g, out_c, act.tol(Tol{ATT_TOL}));
        o.add("out", out_g);
        free_all({ds, dl, dq, dk, dv, dout_});
    });
}

// KV-cache append: caches start random (rows not appended must keep their values), rows go to any (slot, pos);
// copies, so bitwise equal to the twin (in mixed precision the twin copies the same bf16 values in fp32).
static void test_kv_append(int NKV, int HD, int cap, int n_slots, std::vector<int> slot, std::vector<int> pos,
                           bool mixed) {
    const Act act{mixed};
    const int n = (int)slot.size();
    char name[128];
    snprintf(name, sizeof name, "%skv_append NKV=%d HD=%d cap=%d slots=%d n=%d", act.prefix(), NKV, HD, cap, n_slots,
             n);
    const size_t nc = (size_t)n_slots * cap * NKV * HD, nn = (size_t)n * NKV * HD;
    std::vector<float> kc = act.rnd(nc, 91 + HD), vc = act.rnd(nc, 92 + HD);
    std::vector<float> kn = act.rnd(nn, 93 + HD), vn = act.rnd(nn, 94 + HD);
    std::vector<float> kc_c = kc, vc_c = vc;
    CPU->kv_append(kc_c.data(), vc_c.data(), kn.data(), vn.data(), slot.data(), pos.data(), n, cap, NKV, HD);
    size_t changed = 0;
    for (size_t i = 0; i < nc; i++) changed += kc_c[i] != kc[i];
    CHECK(changed > 0 || n == 0, "%s: the twin changed nothing", name);
    run_case(name, [&](Outputs &o) {
        int *ds = dev(slot), *dp = dev(pos);
        void *dkc = act.dev(kc), *dvc = act.dev(vc), *dkn = act.dev(kn), *dvn = act.dev(vn);
        GPU->kv_append(dkc, dvc, dkn, dvn, ds, dp, n, cap, NKV, HD);
        std::vector<float> kg = act.host(dkc, nc), vg = act.host(dvc, nc);
        check_bitwise(act.entry("kv_append"), "k cache", kg, kc_c);
        check_bitwise(act.entry("kv_append"), "v cache", vg, vc_c);
        o.add("k", kg);
        o.add("v", vg);
        free_all({ds, dp, dkc, dvc, dkn, dvn});
    });
}

// ------------------------------------------------------------------------------------------------ log-prob

// Bounds of the bf16 rounding of dz (see tests/emu/test_logprob.cpp): bdh (T,C) = sum_v |dz_tv w_vc|,
// bdw (V,C) = sum_t |dz_tv h_tc|, from the CPU twin's lse and entropy.
static void logprob_dz_bounds(std::vector<double> &bdh, std::vector<double> &bdw, const std::vector<float> &hid,
                              const std::vector<float> &w, const std::vector<int> &tgt, const std::vector<float> &dlogp,
                              const std::vector<float> &dent, const std::vector<float> &lse_c,
                              const std::vector<float> &ent_c, int T, int C, int V, float tau) {
    bdh.assign((size_t)T * C, 0.0);
    bdw.assign((size_t)V * C, 0.0);
    for (int t = 0; t < T; t++) {
        const double c = tgt[t] >= 0 ? dlogp[t] / tau : 0.0, e = dent[t] / tau;
        for (int v = 0; v < V; v++) {
            double u = 0;
            for (int i = 0; i < C; i++) u += (double)hid[(size_t)t * C + i] * w[(size_t)v * C + i];
            const double lp = u / tau - lse_c[t], p = exp(lp);
            const double dz = fabs(c * ((v == tgt[t]) - p) - e * p * (lp + ent_c[t]));
            for (int i = 0; i < C; i++) {
                bdh[(size_t)t * C + i] += dz * fabs(w[(size_t)v * C + i]);
                bdw[(size_t)v * C + i] += dz * fabs(hid[(size_t)t * C + i]);
            }
        }
    }
}

// dhidden / dw against the twin: 2^-7 bound + 1e-5 |cpu| + 1e-7, plus half_ulps16 half bf16 ulps (a bf16 output).
static void logprob_check_bound(const char *name, const char *entry, const char *what, const std::vector<float> &got,
                                const std::vector<float> &want, const std::vector<double> &bound,
                                double half_ulps16 = 0.0) {
    double worst = 0;
    int bad = 0;
    for (size_t i = 0; i < want.size(); i++) {
        const double e = fabs((double)got[i] - want[i]);
        const double lim = bound[i] / 128.0 + 1e-5 * fabs((double)want[i]) + 1e-7 + half_ulps16 * bf16_half_ulp(want[i]);
        if (!(e <= lim) && bad++ < 4) CHECK(0, "%s %s[%zu]: got %.9g expected %.9g", name, what, i, got[i], want[i]);
        worst = fmax(worst, e / lim);
    }
    CHECK(bad == 0, "%s %s: %d values outside the tolerance", name, what, bad);
    note(entry, worst);
}

// logp, entropy, lse against the twin: 1e-4 (1 + |cpu|).
static void logprob_check_stat(const char *name, const char *entry, const char *what, const std::vector<float> &got,
                               const std::vector<float> &want) {
    double worst = 0;
    for (size_t i = 0; i < want.size(); i++) {
        const double lim = 1e-4 * (1.0 + fabs((double)want[i])), e = fabs((double)got[i] - want[i]);
        CHECK(e <= lim, "%s %s[%zu]: got %.9g expected %.9g", name, what, i, got[i], want[i]);
        worst = fmax(worst, e / lim);
    }
    note(entry, worst);
}

// with_logp / with_ent: pass logp / entropy to the forward (else NULL); with_dh / with_dw: the backward's outputs.
// hidden and dhidden (accumulated: the backend sums the vocabulary chunks in fp32 and rounds once) are
// activations; the LM head (bf16 values: the fused log-prob is bf16 in every mode), log-probs, entropies, lse and dw
// fp32.
static void test_logprob(int T, int C, int V, float tau, bool with_logp, bool with_ent, bool with_dh, bool with_dw,
                         bool mixed) {
    const Act act{mixed};
    char name[128];
    snprintf(name, sizeof name, "%slogprob T=%d C=%d V=%d tau=%.2f%s%s%s%s", act.prefix(), T, C, V, tau,
             with_logp ? "" : " logp=NULL", with_ent ? "" : " entropy=NULL", with_dh ? "" : " dhidden=NULL",
             with_dw ? "" : " dw=NULL");
    std::vector<float> hid = rnd((size_t)T * C, 81, 1.5f, true), w = rnd((size_t)V * C, 82, 3.0f / sqrtf((float)C), true);
    std::vector<int> tgt(T);
    for (int t = 0; t < T; t++) tgt[t] = t % 7 == 3 ? -1 : t % 5 == 1 ? V - 1 : (int)((uni(t, 83) * 0.5f + 0.5f) * V) % V;
    std::vector<float> dlogp = rnd(T, 84), dent = rnd(T, 85, 0.1f);
    std::vector<float> dh0 = act.rnd((size_t)T * C, 86, 0.01f), dw0 = rnd((size_t)V * C, 87, 0.01f);
    std::vector<float> logp_c(T), ent_c(T), lse_c(T), dh_c = dh0, dw_c = dw0;
    CPU->logprob_forward(logp_c.data(), ent_c.data(), lse_c.data(), hid.data(), w.data(), tgt.data(), T, C, V, tau);
    CPU->logprob_backward(dh_c.data(), dw_c.data(), dlogp.data(), dent.data(), hid.data(), w.data(), tgt.data(),
                          lse_c.data(), ent_c.data(), T, C, V, tau);
    std::vector<double> bdh, bdw;
    logprob_dz_bounds(bdh, bdw, hid, w, tgt, dlogp, dent, lse_c, ent_c, T, C, V, tau);
    const std::string fwd = act.entry("logprob_forward"), bwd = act.entry("logprob_backward");
    run_case(name, [&](Outputs &o) {
        int *dt = dev(tgt);
        void *dhid = act.dev(hid), *ddh = act.dev(dh0);
        float *dw = dev(w), *dlp = dev(nans(T)), *den = dev(nans(T)), *dls = dev(nans(T));
        float *ddl = dev(dlogp), *dde = dev(dent), *ddw = dev(dw0);
        GPU->logprob_forward(with_logp ? dlp : NULL, with_ent ? den : NULL, dls, dhid, dw, dt, T, C, V, tau);
        std::vector<float> lse_g = host(dls, T);
        logprob_check_stat(name, fwd.c_str(), "lse", lse_g, lse_c);
        o.add("lse", lse_g);
        if (with_logp) {
            std::vector<float> lp_g = host(dlp, T);
            logprob_check_stat(name, fwd.c_str(), "logp", lp_g, logp_c);
            for (int t = 0; t < T; t++) CHECK(tgt[t] >= 0 || lp_g[t] == 0.0f, "%s: ignored target %d has logp", name, t);
            o.add("logp", lp_g);
        } else {
            CHECK(std::isnan(host(dlp, T)[0]), "%s: logp written although NULL was passed", name);
        }
        if (!with_ent) GPU->upload(den, ent_c.data(), T * sizeof(float)); // the backward needs the forward's entropy
        std::vector<float> ent_g = host(den, T);
        if (with_ent) logprob_check_stat(name, fwd.c_str(), "entropy", ent_g, ent_c);
        GPU->logprob_backward(with_dh ? ddh : NULL, with_dw ? ddw : NULL, ddl, dde, dhid, dw, dt, dls, den, T, C, V,
                              tau);
        std::vector<float> dh_g = act.host(ddh, dh0.size()), dw_g = host(ddw, dw0.size());
        if (with_dh) logprob_check_bound(name, bwd.c_str(), "dhidden", dh_g, dh_c, bdh, act.mixed ? 1.0 : 0.0);
        else CHECK(same_bits(dh_g, dh0), "%s: dhidden changed although NULL was passed", name);
        if (with_dw) logprob_check_bound(name, bwd.c_str(), "dw", dw_g, dw_c, bdw);
        else CHECK(same_bits(dw_g, dw0), "%s: dw changed although NULL was passed", name);
        o.add("entropy", ent_g);
        o.add("dhidden", dh_g);
        o.add("dw", dw_g);
        free_all({dt, dhid, ddh, dw, dlp, den, dls, ddl, dde, ddw});
    });
}

// ------------------------------------------------------------------------------------------------ precision modes

// The element size follows the mode (include/rlc/ops.h act_bytes), and a restart keeps the mode.
static void test_mixed_mode() {
    rlc_ops_cuda_set_precision(RLC_CUDA_BF16_GEMM);
    CHECK(GPU->act_bytes == sizeof(float), "bf16-gemm mode: act_bytes %zu", GPU->act_bytes);
    rlc_ops_cuda_set_precision(RLC_CUDA_FP32);
    CHECK(GPU->act_bytes == sizeof(float), "fp32 mode: act_bytes %zu", GPU->act_bytes);
    rlc_ops_cuda_set_precision(RLC_CUDA_MIXED);
    CHECK(GPU->act_bytes == 2 && rlc_ops_cuda_precision() == RLC_CUDA_MIXED, "mixed mode: act_bytes %zu, mode %s",
          GPU->act_bytes, rlc_ops_cuda_precision_name(rlc_ops_cuda_precision()));
    CHECK(!strcmp(rlc_ops_cuda_precision_name(RLC_CUDA_MIXED), "mixed"), "mode name %s",
          rlc_ops_cuda_precision_name(RLC_CUDA_MIXED));
    rlc_ops_cuda_release();
    GPU = rlc_ops_cuda();
    CHECK(GPU->act_bytes == 2 && rlc_ops_cuda_precision() == RLC_CUDA_MIXED, "restart left mixed mode: act_bytes %zu",
          GPU->act_bytes);
}

// act_to_f of every bf16 bit pattern is its exact widening (NaN payloads too); act_from_f of those is the pattern
// again (a NaN stays a NaN); act_from_f rounds to nearest even, bit for bit as rlc_test::bf16_rne, on every upper
// half of an fp32 with the lower halves 0, 1, 0x7fff, 0x8000 (ties: to the even neighbour, up or down), 0x8001 and
// 0xffff (carries into the exponent, up to infinity; subnormals; -0). NaN inputs give a NaN (the converter's own
// payload). In fp32 mode both entries copy, bit for bit.
static void test_act_convert16() {
    const size_t nb = 65536;
    const uint16_t lows[] = {0x0000, 0x0001, 0x7fff, 0x8000, 0x8001, 0xffff};
    const size_t nl = sizeof lows / sizeof lows[0], nf = nb * nl;
    std::vector<uint16_t> all(nb);
    for (size_t i = 0; i < nb; i++) all[i] = (uint16_t)i;
    std::vector<float> f32(nf);
    for (size_t i = 0; i < nf; i++) {
        const uint32_t u = (uint32_t)(i / nl) << 16 | lows[i % nl];
        memcpy(&f32[i], &u, 4);
    }
    run_case("mixed act_from_f / act_to_f", [&](Outputs &o) {
        void *a = GPU->alloc(nb * 2), *back = dev16(nans(nb));
        GPU->upload(a, all.data(), nb * 2);
        float *wide = dev(nans(nb));
        GPU->act_to_f(wide, a, nb);
        std::vector<float> w = host(wide, nb);
        size_t bad = 0;
        for (size_t i = 0; i < nb; i++) {
            uint32_t u;
            memcpy(&u, &w[i], 4);
            if (u != (uint32_t)i << 16 && bad++ < 4) CHECK(0, "act_to_f(0x%04zx) = 0x%08x", i, u);
        }
        CHECK(bad == 0, "act_to_f: %zu of %zu bf16 patterns not widened exactly", bad, nb);
        note("act_to_f (mixed)", bad ? INFINITY : 0.0);
        GPU->act_from_f(back, wide, nb);
        std::vector<uint16_t> rt = bits16(back, nb);
        bad = 0;
        for (size_t i = 0; i < nb; i++) {
            const bool nan_in = std::isnan(rlc_test::bf16_widen((uint16_t)i));
            const bool ok = nan_in ? std::isnan(rlc_test::bf16_widen(rt[i])) : rt[i] == i;
            if (!ok && bad++ < 4) CHECK(0, "act_from_f(act_to_f(0x%04zx)) = 0x%04x", i, rt[i]);
        }
        CHECK(bad == 0, "act_from_f(act_to_f(x)) differs from x for %zu of %zu patterns", bad, nb);
        float *src = dev(f32);
        void *r = dev16(nans(nf));
        GPU->act_from_f(r, src, nf);
        std::vector<uint16_t> rb = bits16(r, nf);
        bad = 0;
        for (size_t i = 0; i < nf; i++) {
            const uint16_t want = rlc_test::bf16_rne(f32[i]);
            const bool ok = std::isnan(f32[i]) ? std::isnan(rlc_test::bf16_widen(rb[i])) : rb[i] == want;
            uint32_t u;
            memcpy(&u, &f32[i], 4);
            if (!ok && bad++ < 4)
                CHECK(0, "act_from_f(%a = 0x%08x) = 0x%04x, round to nearest even gives 0x%04x", f32[i], u, rb[i], want);
        }
        CHECK(bad == 0, "act_from_f: %zu of %zu values not rounded to nearest even", bad, nf);
        note("act_from_f (mixed)", bad ? INFINITY : 0.0);
        o.add("to_f", w);
        o.add("round trip", rt);
        o.add("from_f", rb);
        free_all({a, back, wide, src, r});
    });
    // fp32 mode: plain copies (the fp32 cases above hand fp32 tensors to every activation argument)
    rlc_ops_cuda_set_precision(RLC_CUDA_FP32);
    run_case("fp32 act_from_f / act_to_f", [&](Outputs &o) {
        float *src = dev(f32), *a = dev(nans(nf)), *b = dev(nans(nf));
        GPU->act_from_f(a, src, nf);
        GPU->act_to_f(b, a, nf);
        std::vector<float> ga = host(a, nf), gb = host(b, nf);
        CHECK(same_bits(ga, f32) && same_bits(gb, f32), "fp32 mode: act_from_f / act_to_f are not bitwise copies");
        note("act_from_f", same_bits(ga, f32) ? 0.0 : INFINITY);
        note("act_to_f", same_bits(gb, f32) ? 0.0 : INFINITY);
        o.add("b", gb);
        free_all({src, a, b});
    });
    rlc_ops_cuda_set_precision(RLC_CUDA_MIXED);
}

// ------------------------------------------------------------------------------------------------ the cases

// Every entry that takes or returns an activation, in one precision mode (the backend already set to it): fp32
// (the bf16-GEMM mode with the matmuls) or mixed. Shapes only one mode runs are marked so.
static void test_act_entries(bool mixed) {
    for (size_t n : {(size_t)1, (size_t)1000, (size_t)40007}) test_elementwise(n, mixed);

    const std::vector<int> mm_modes = mixed ? std::vector<int>{RLC_CUDA_MIXED}
                                            : std::vector<int>{RLC_CUDA_FP32, RLC_CUDA_BF16_GEMM};
    for (int mode : mm_modes) {
        test_matmul(1, 5, 3, true, 7, mode); // T = 1, C not a multiple of 8
        test_matmul(37, 67, 19, false, 7, mode);
        test_matmul(300, 33, 45, true, 7, mode); // dbias over two 256-row chunks
        test_matmul(20, 16, 24, true, 1, mode);  // dw, dbias NULL
        test_matmul(20, 16, 24, false, 6, mode); // dinp NULL
    }

    test_rmsnorm(1, 7, mixed);
    test_rmsnorm(5, 67, mixed);
    test_rmsnorm(300, 33, mixed);
    if (!mixed) test_rmsnorm(3, 1000, mixed); // fp32 only
    test_add_rmsnorm(1, 7, mixed);
    test_add_rmsnorm(5, 67, mixed);
    test_add_rmsnorm(300, 33, mixed);

    test_rope(1, 1, 2, 10000.0f, mixed);
    test_rope(7, 3, 32, 10000.0f, mixed);
    test_rope(20, 2, 66, 1000000.0f, mixed); // 33 frequencies
    test_rope(3, 2, 5, 10000.0f, mixed);     // odd head dim: the last column stays

    if (mixed) {
        test_attention(4, 2, 64, {1, 67, 3}, mixed); // direct paths; lengths 1 and > 64, no multiple of a tile
        test_attention(2, 1, 128, {70, 1}, mixed);
        test_attention(4, 2, 24, {1, 66, 5}, mixed); // padded to 64
        test_attention(2, 1, 80, {65, 1}, mixed);    // padded to 128

        // direct: rows sharing slots 2 and 0, kv_len = cap, kv_len 1, an empty row
        test_decode(4, 2, 64, 40, 3, {2, 0, 2, 1, 2, 0}, {1, 40, 25, 0, 7, 3}, mixed);
        test_decode(2, 1, 128, 9, 2, {1, 0}, {9, 4}, mixed);
        test_decode(4, 2, 32, 20, 2, {1, 1, 0}, {20, 1, 5}, mixed); // gather path (padded to 64)
    } else {
        test_attention(4, 2, 32, {1, 17, 40}, mixed); // default model's head dim: padded to 64
        test_attention(2, 2, 64, {33, 0, 5}, mixed);  // no padding, an empty sequence
        test_attention(2, 1, 48, {20}, mixed);        // padded, q scale sqrt(64/48)
        test_attention(2, 1, 96, {1, 9}, mixed);      // padded to 128

        test_decode(4, 2, 32, 50, 3, {2, 0, 2, 1}, {1, 50, 30, 0}, mixed); // an empty row, two rows on one slot
        test_decode(2, 2, 64, 20, 2, {1, 1, 1, 1}, {1, 4, 2, 3}, mixed); // prefill: rows share a slot, longest not last
        test_decode(2, 1, 96, 9, 4, {3, 1}, {9, 4}, mixed);
    }

    test_kv_append(1, 1, 1, 1, {0}, {0}, mixed);                       // one element
    test_kv_append(2, 32, 50, 4, {3, 0, 2, 1}, {49, 0, 17, 5}, mixed); // a decode step, the last position of a slot
    test_kv_append(3, 5, 9, 2, {1, 1, 1, 1, 1, 1, 1}, {2, 3, 4, 5, 6, 7, 8}, mixed); // a prefill; rows of 15 values
    test_kv_append(1, 7, 4, 300, [] { // more rows than a block has threads
        std::vector<int> s(300);
        for (int i = 0; i < 300; i++) s[i] = 299 - i;
        return s;
    }(), std::vector<int>(300, 3), mixed);

    test_logprob(1, 16, 50, 1.0f, true, true, true, true, mixed);
    test_logprob(37, 33, 300, 0.7f, true, true, true, true, mixed);
    test_logprob(20, 20, 130, 1.0f, false, false, true, false, mixed);
    test_logprob(20, 20, 130, 1.0f, true, true, false, true, mixed);
    if (mixed) // two vocabulary chunks, the last partial
        test_logprob(3, 16, RLC_LP_V_CHUNK + 45, 1.0f, true, true, true, true, mixed);

#ifndef RLC_EMU
    // Larger shapes on a real GPU: many blocks, grid-stride loops, the workspace growing.
    test_elementwise((size_t)5 << 20, mixed);
    for (int mode : mm_modes) test_matmul(1000, 512, 768, true, 7, mode);
    test_rmsnorm(4096, 896, mixed);
    test_rope(4096, 14, 64, 1000000.0f, mixed);
    test_attention(14, 2, 64, {700, 1, 1200, 150}, mixed);
    test_attention(8, 8, 128, {513, 511}, mixed);
    test_decode(14, 2, 64, 1024, 64, std::vector<int>(64, 5), [] {
        std::vector<int> l(64);
        for (int i = 0; i < 64; i++) l[i] = 1 + 16 * i;
        return l;
    }(), mixed);
    test_logprob(256, 128, 3000, 1.0f, true, true, true, true, mixed);
    if (!mixed) // a decode step of 512 sequences (Qwen2.5-0.5B's KV row)
        test_kv_append(2, 64, 1024, 512, [] {
            std::vector<int> s(512);
            for (int i = 0; i < 512; i++) s[i] = (i * 7) % 512;
            return s;
        }(), std::vector<int>(512, 1000), mixed);
#endif
}

// The mode switches, the conversions, then every activation entry again in mixed precision; fp32 afterwards.
static void test_mixed() {
    test_mixed_mode(); // leaves the backend in mixed precision
    test_act_convert16();
    test_act_entries(true);
    rlc_ops_cuda_set_precision(RLC_CUDA_FP32);
}

// ------------------------------------------------------------------------------------------------ main

int main() {
#if !defined(__SANITIZE_THREAD__)
    // First, before this process touches the device (a forked child must not inherit a CUDA context). Under
    // TSan a huge allocation is the sanitizer's own error, not a failed cudaMalloc.
    expect_death(
        "out-of-memory message",
        [] {
            const rlc_ops *g = rlc_ops_cuda();
            g->alloc((size_t)1 << 52);
        },
        "out of device memory: alloc of 4503599627370496 bytes");
    // over the cap: the bytes requested, the bytes available and the cap
    expect_death(
        "over the memory cap",
        [] {
            const rlc_ops *g = rlc_ops_cuda();
            g->set_mem_limit(1 << 20);
            g->alloc(2 << 20);
        },
        "alloc of 2097152 bytes (2.0 MiB) failed; 1048576 bytes (1.0 MiB) free of 1048576 (1.0 MiB) (limit 1048576");
#endif
    GPU = rlc_ops_cuda();
    rlc_ops_cuda_set_precision(RLC_CUDA_FP32); // fp32 activations: the cases below hand the table fp32 tensors
    CPU = rlc_ops_cpu();
    CHECK(!strcmp(GPU->name, "cuda"), "table name %s", GPU->name);

    const auto t0 = std::chrono::steady_clock::now();
    test_memory();
    test_staged_uploads();
    test_memory_accounting();
    test_profiler();
    // the entries on fp32 tensors only
    for (size_t n : {(size_t)1, (size_t)1000, (size_t)40007}) test_scale_sumsq_adamw(n);
    test_embedding(1, 37, 11, 5);
    test_embedding(300, 67, 13, 4);  // T > one 256-token tile, 4 distinct ids: long groups
    test_embedding(40, 300, 50, 50); // C > one 256-column block
#ifndef RLC_EMU
    test_scale_sumsq_adamw((size_t)5 << 20);
    test_embedding(20000, 512, 500, 400);
#endif
    test_act_entries(false);

    const double t_fp32 = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    test_mixed(); // bf16 activations, then fp32 again
    const double t_all = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    printf("worst error / tolerance per entry (<= 1 passes; 0 = bitwise equal):\n");
    for (const auto &w : g_worst) printf("  %-28s %.3g\n", w.name.c_str(), w.ratio);
    printf("wall time: fp32 cases %.1f s, mixed-precision cases %.1f s\n", t_fp32, t_all - t_fp32);
    printf("workspace after the run: %.2f MiB\n", rlc_ops_cuda_workspace_bytes() / 1048576.0);
    rlc_ops_cuda_release();
    return test_finish("test_ops_cuda");
}
