// kernels/cuda/rlc_blas.cu: implementations of rlc_blas.h. Under nvcc: the bf16 GEMMs through cuBLASLt with
// cached plans (checked against cublasGemmEx when the handle is made; RLC_BLAS=gemmex, or a failed check, keeps
// them on cublasGemmEx), fp32 GEMMs through cublasSgemm (row-major C = A B is column-major C^T = B^T A^T, so the
// operands are passed swapped). Under g++ -DRLC_EMU: OpenBLAS on the host (emulated device memory is host
// memory), bf16 operands widened exactly to float first, each GEMM queued on the handle's stream like a kernel
// (emu::enqueue: it runs when the emulator's deferred mode runs that stream).
#include "rlc_blas.h"

#include "rlc_cuda.h"

#if defined(RLC_EMU)
#include <cblas.h>

#include <vector>

struct rlc_blas {
    cudaStream_t stream; // where the GEMMs are queued
};

extern "C" rlc_blas *rlc_blas_create(void) { return new rlc_blas{nullptr}; }
extern "C" void rlc_blas_destroy(rlc_blas *h) { delete h; }
extern "C" void rlc_blas_set_stream(rlc_blas *h, void *stream) { h->stream = (cudaStream_t)stream; }

// Copies a row-major bf16 matrix (rows, cols, stride ld) to a dense float matrix.
static std::vector<float> widen(const void *p, int rows, int cols, int ld) {
    const __nv_bfloat16 *b = (const __nv_bfloat16 *)p;
    std::vector<float> f((size_t)rows * cols);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) f[(size_t)r * cols + c] = __bfloat162float(b[(size_t)r * ld + c]);
    return f;
}

static void gemm_bf16(int trans_a, int trans_b, int M, int N, int K, float alpha, const void *A, int lda,
                      const void *B, int ldb, float beta, void *C, int ldc, int c_bf16) {
    std::vector<float> a = trans_a ? widen(A, K, M, lda) : widen(A, M, K, lda);
    std::vector<float> b = trans_b ? widen(B, N, K, ldb) : widen(B, K, N, ldb);
    std::vector<float> c((size_t)M * N);
    if (beta != 0.0f)
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
                c[(size_t)i * N + j] = c_bf16 ? __bfloat162float(((const __nv_bfloat16 *)C)[(size_t)i * ldc + j])
                                              : ((const float *)C)[(size_t)i * ldc + j];
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K,
                alpha, a.data(), trans_a ? M : K, b.data(), trans_b ? K : N, beta, c.data(), N);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            if (c_bf16) ((__nv_bfloat16 *)C)[(size_t)i * ldc + j] = __float2bfloat16(c[(size_t)i * N + j]);
            else ((float *)C)[(size_t)i * ldc + j] = c[(size_t)i * N + j];
        }
}

extern "C" int rlc_blas_gemm_bf16(rlc_blas *h, int trans_a, int trans_b, int M, int N, int K, float alpha,
                                  const void *A, int lda, const void *B, int ldb, float beta, void *C, int ldc,
                                  int c_bf16) {
    emu::enqueue(h->stream, [=] { gemm_bf16(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, c_bf16); });
    return 0;
}

static void gemm_bf16_bias(int trans_a, int trans_b, int M, int N, int K, float alpha, const void *A, int lda,
                           const void *B, int ldb, const void *bias, void *C, int ldc) {
    std::vector<float> a = trans_a ? widen(A, K, M, lda) : widen(A, M, K, lda);
    std::vector<float> b = trans_b ? widen(B, N, K, ldb) : widen(B, K, N, ldb);
    std::vector<float> bs = widen(bias, 1, N, N), c((size_t)M * N);
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K,
                alpha, a.data(), trans_a ? M : K, b.data(), trans_b ? K : N, 0.0f, c.data(), N);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++)
            ((__nv_bfloat16 *)C)[(size_t)i * ldc + j] = __float2bfloat16(c[(size_t)i * N + j] + bs[j]);
}

extern "C" int rlc_blas_gemm_bf16_bias(rlc_blas *h, int trans_a, int trans_b, int M, int N, int K, float alpha,
                                       const void *A, int lda, const void *B, int ldb, const void *bias, void *C,
                                       int ldc) {
    if ((uintptr_t)bias % RLC_BLAS_BIAS_ALIGN) return 1; // as on a GPU (rlc_blas.h)
    emu::enqueue(h->stream, [=] { gemm_bf16_bias(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, bias, C, ldc); });
    return 0;
}

extern "C" int rlc_blas_sgemm(rlc_blas *h, int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                              int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    emu::enqueue(h->stream, [=] {
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N,
                    K, alpha, A, lda, B, ldb, beta, C, ldc);
    });
    return 0;
}

#else
#include <cublasLt.h>
#include <cublas_v2.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <unordered_map>
#include <vector>

// cuBLASLt plans. A plan is the matmul descriptor, the three layouts and the algorithm the heuristic picked for one
// GEMM shape, with the operands' alignments (the heuristic only offers kernels that can work with them: a weight
// tensor inside the flat parameter buffer may be only 2-byte aligned). Plans are made on a shape's first call and
// reused, so a call costs one lookup and one cublasLtMatmul.
struct LtKey {
    int ta, tb, m, n, k, lda, ldb, ldc, c_bf16, bias; // bias: the bias epilogue (bf16 vector of N)
    unsigned al_a, al_b, al_c, al_bias;
    bool operator==(const LtKey &o) const { return !memcmp(this, &o, sizeof *this); }
};
struct LtKeyHash {
    size_t operator()(const LtKey &k) const {
        const unsigned char *p = (const unsigned char *)&k;
        size_t h = 1469598103934665603ull;
        for (size_t i = 0; i < sizeof k; i++) h = (h ^ p[i]) * 1099511628211ull;
        return h;
    }
};
struct LtPlan {
    int ok; // 0: the heuristic found no algorithm (this shape goes to cublasGemmEx)
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
};

#define RLC_LT_WORKSPACE ((size_t)32 << 20) // cuBLASLt's workspace (device), allocated once per handle
#define RLC_LT_MAX_PLANS 4096               // then the cache starts over (decode batch sizes vary step by step)

struct rlc_blas {
    cublasHandle_t handle;
    cublasLtHandle_t lt;
    cudaStream_t stream;
    void *lt_ws;
    int use_lt;   // 1: bf16 GEMMs through cuBLASLt (after the self-check at creation passed)
    int lt_bias;  // 1: its bias epilogue too (checked separately)
    std::unordered_map<LtKey, LtPlan, LtKeyHash> plans;
};

static int blas_check(cublasStatus_t s, const char *what) {
    if (s == CUBLAS_STATUS_SUCCESS) return 0;
    fprintf(stderr, "rlc_blas: %s failed: %s\n", what, cublasGetStatusString(s));
    return -1;
}

// The largest power of two (<= 256) that divides the address: the alignment the heuristic is told.
static unsigned lt_align(const void *p) {
    const uintptr_t a = (uintptr_t)p;
    unsigned al = 256;
    while (al > 1 && (a & (al - 1))) al >>= 1;
    return al;
}

static void lt_plan_free(LtPlan &pl) {
    if (!pl.ok) return;
    cublasLtMatrixLayoutDestroy(pl.a);
    cublasLtMatrixLayoutDestroy(pl.b);
    cublasLtMatrixLayoutDestroy(pl.c);
    cublasLtMatmulDescDestroy(pl.op);
}

static void lt_plans_clear(rlc_blas *h) {
    for (auto &kv : h->plans) lt_plan_free(kv.second);
    h->plans.clear();
}

// Row-major C (M,N) = op(A) op(B) is column-major C^T (N,M) = op(B)^T op(A)^T: cuBLASLt's "A" is our B (N x K,
// or K x N transposed, leading dimension ldb), its "B" is our A, its C / D our C^T with leading dimension ldc.
static LtPlan lt_plan_make(rlc_blas *h, const LtKey &k) {
    LtPlan pl;
    memset(&pl, 0, sizeof pl);
    const cublasOperation_t opa = k.tb ? CUBLAS_OP_T : CUBLAS_OP_N, opb = k.ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cudaDataType_t ct = k.c_bf16 ? CUDA_R_16BF : CUDA_R_32F;
    if (cublasLtMatmulDescCreate(&pl.op, CUBLAS_COMPUTE_32F, CUDA_R_32F) != CUBLAS_STATUS_SUCCESS) return pl;
    cublasLtMatmulDescSetAttribute(pl.op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa);
    cublasLtMatmulDescSetAttribute(pl.op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb);
    if (k.bias) { // per row of cuBLASLt's D = per column of our C; the pointer is set per call
        const cublasLtEpilogue_t ep = CUBLASLT_EPILOGUE_BIAS;
        const cudaDataType_t bt = CUDA_R_16BF;
        cublasLtMatmulDescSetAttribute(pl.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof ep);
        cublasLtMatmulDescSetAttribute(pl.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt);
    }
    const bool la = cublasLtMatrixLayoutCreate(&pl.a, CUDA_R_16BF, k.tb ? k.k : k.n, k.tb ? k.n : k.k, k.ldb) ==
                    CUBLAS_STATUS_SUCCESS;
    const bool lb = cublasLtMatrixLayoutCreate(&pl.b, CUDA_R_16BF, k.ta ? k.m : k.k, k.ta ? k.k : k.m, k.lda) ==
                    CUBLAS_STATUS_SUCCESS;
    const bool lc = cublasLtMatrixLayoutCreate(&pl.c, ct, k.n, k.m, k.ldc) == CUBLAS_STATUS_SUCCESS;
    cublasLtMatmulPreference_t pref = NULL;
    int found = 0;
    cublasLtMatmulHeuristicResult_t res;
    memset(&res, 0, sizeof res);
    if (la && lb && lc && cublasLtMatmulPreferenceCreate(&pref) == CUBLAS_STATUS_SUCCESS) {
        const size_t ws = RLC_LT_WORKSPACE;
        const uint32_t al[4] = {k.al_b, k.al_a, k.al_c, k.al_c}; // cuBLASLt's A, B, C, D
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al[0], sizeof al[0]);
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al[1], sizeof al[1]);
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al[2], sizeof al[2]);
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al[3], sizeof al[3]);
        if (cublasLtMatmulAlgoGetHeuristic(h->lt, pl.op, pl.a, pl.b, pl.c, pl.c, pref, 1, &res, &found) !=
                CUBLAS_STATUS_SUCCESS ||
            res.state != CUBLAS_STATUS_SUCCESS)
            found = 0;
        cublasLtMatmulPreferenceDestroy(pref);
    }
    if (found > 0) {
        pl.algo = res.algo;
        pl.ok = 1;
        return pl;
    }
    if (la) cublasLtMatrixLayoutDestroy(pl.a);
    if (lb) cublasLtMatrixLayoutDestroy(pl.b);
    if (lc) cublasLtMatrixLayoutDestroy(pl.c);
    cublasLtMatmulDescDestroy(pl.op);
    memset(&pl, 0, sizeof pl);
    return pl;
}

static int gemmex_bf16(rlc_blas *h, int trans_a, int trans_b, int M, int N, int K, float alpha, const void *A, int lda,
                       const void *B, int ldb, float beta, void *C, int ldc, int c_bf16) {
    return blas_check(cublasGemmEx(h->handle, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                   N, M, K, &alpha, B, CUDA_R_16BF, ldb, A, CUDA_R_16BF, lda, &beta, C,
                                   c_bf16 ? CUDA_R_16BF : CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                      "cublasGemmEx (bf16)");
}

// 1: done through cuBLASLt; 0: no plan for this shape (the caller uses another path); -1: an error. bias (NULL:
// none; then C must be bf16 and beta 0): the bias epilogue.
static int lt_gemm_bf16(rlc_blas *h, int trans_a, int trans_b, int M, int N, int K, float alpha, const void *A,
                        int lda, const void *B, int ldb, float beta, void *C, int ldc, int c_bf16,
                        const void *bias = NULL) {
    LtKey k;
    memset(&k, 0, sizeof k);
    k.ta = trans_a, k.tb = trans_b, k.m = M, k.n = N, k.k = K, k.lda = lda, k.ldb = ldb, k.ldc = ldc;
    k.c_bf16 = c_bf16, k.al_a = lt_align(A), k.al_b = lt_align(B), k.al_c = lt_align(C);
    k.bias = bias != NULL, k.al_bias = bias ? lt_align(bias) : 0;
    auto it = h->plans.find(k);
    if (it == h->plans.end()) {
        if (h->plans.size() >= RLC_LT_MAX_PLANS) lt_plans_clear(h);
        it = h->plans.emplace(k, lt_plan_make(h, k)).first;
    }
    const LtPlan &pl = it->second;
    if (!pl.ok) return 0;
    if (bias &&
        blas_check(cublasLtMatmulDescSetAttribute(pl.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias),
                   "cublasLtMatmulDescSetAttribute (bias pointer)"))
        return -1;
    return blas_check(cublasLtMatmul(h->lt, pl.op, &alpha, B, pl.a, A, pl.b, &beta, C, pl.c, C, pl.c, &pl.algo,
                                     h->lt_ws, RLC_LT_WORKSPACE, h->stream),
                      "cublasLtMatmul (bf16)")
               ? -1
               : 1;
}

extern "C" int rlc_blas_gemm_bf16(rlc_blas *h, int trans_a, int trans_b, int M, int N, int K, float alpha,
                                  const void *A, int lda, const void *B, int ldb, float beta, void *C, int ldc,
                                  int c_bf16) {
    if (h->use_lt && M > 0 && N > 0 && K > 0) {
        const int r = lt_gemm_bf16(h, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, c_bf16);
        if (r != 0) return r > 0 ? 0 : -1;
    }
    return gemmex_bf16(h, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, c_bf16);
}

extern "C" int rlc_blas_gemm_bf16_bias(rlc_blas *h, int trans_a, int trans_b, int M, int N, int K, float alpha,
                                       const void *A, int lda, const void *B, int ldb, const void *bias, void *C,
                                       int ldc) {
    if (!h->use_lt || !h->lt_bias || M <= 0 || N <= 0 || K <= 0 || (uintptr_t)bias % RLC_BLAS_BIAS_ALIGN) return 1;
    const int r = lt_gemm_bf16(h, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, 0.0f, C, ldc, 1, bias);
    return r > 0 ? 0 : r < 0 ? -1 : 1;
}

static float bf16_bits_to_float(uint16_t v) {
    const uint32_t b = (uint32_t)v << 16;
    float f;
    memcpy(&f, &b, 4);
    return f;
}

// n bf16 values in [-1, 1) from a linear congruential stream (the self-checks' operands).
static std::vector<uint16_t> lt_test_data(int n, uint32_t seed) {
    std::vector<uint16_t> v(n);
    for (auto &x : v) {
        seed = seed * 1664525u + 1013904223u;
        const float f = ((float)(seed >> 8) / 16777216.0f) * 2.0f - 1.0f;
        uint32_t b;
        memcpy(&b, &f, 4);
        x = (uint16_t)(b >> 16);
    }
    return v;
}

// Self-check of the cuBLASLt path against cublasGemmEx at creation, on awkward shapes (odd sizes, operands 2 bytes
// off alignment, transposes, accumulation, both output types): a wrong plan would corrupt every bf16 GEMM, so a
// disagreement (or any error) turns cuBLASLt off for this handle with a message, and the GEMMs keep working.
static const char *lt_self_check(rlc_blas *h) {
    const int M = 37, N = 53, K = 70, n_in = 2 * 80 * 80 + 8, n_out = 80 * 80 + 8;
    const std::vector<uint16_t> hin = lt_test_data(n_in, 12345u);
    std::vector<float> hc(n_out);
    for (int i = 0; i < n_out; i++) hc[i] = 0.25f * (float)((i * 7) % 13) - 1.5f;
    uint16_t *din = NULL;
    float *dc[2] = {NULL, NULL};
    const char *why = NULL;
    if (cudaMalloc(&din, n_in * 2) != cudaSuccess || cudaMalloc(&dc[0], n_out * 4) != cudaSuccess ||
        cudaMalloc(&dc[1], n_out * 4) != cudaSuccess) {
        why = "cudaMalloc failed";
    } else if (cudaMemcpy(din, hin.data(), n_in * 2, cudaMemcpyHostToDevice) != cudaSuccess) {
        why = "cudaMemcpy failed";
    }
    struct Case {
        int ta, tb, c_bf16, off;
        float beta;
    } cases[] = {{0, 1, 0, 1, 0.0f}, {0, 0, 1, 0, 1.0f}, {1, 0, 0, 1, 1.0f}, {0, 1, 1, 1, 0.5f}};
    std::vector<float> r[2];
    for (const Case &c : cases) {
        if (why) break;
        const uint16_t *A = din + c.off, *B = din + 80 * 80 + c.off;
        const int lda = c.ta ? M + 3 : K + 1, ldb = c.tb ? K + 5 : N + 2, ldc = N + 3;
        for (int path = 0; path < 2 && !why; path++) {
            void *C = c.c_bf16 ? (void *)((uint16_t *)dc[path] + c.off) : (void *)(dc[path] + c.off);
            if (cudaMemcpy(dc[path], hc.data(), n_out * 4, cudaMemcpyHostToDevice) != cudaSuccess) why = "cudaMemcpy";
            int rc = path ? lt_gemm_bf16(h, c.ta, c.tb, M, N, K, 0.75f, A, lda, B, ldb, c.beta, C, ldc, c.c_bf16)
                          : gemmex_bf16(h, c.ta, c.tb, M, N, K, 0.75f, A, lda, B, ldb, c.beta, C, ldc, c.c_bf16);
            if (!why && (path ? rc != 1 : rc != 0)) why = path ? "no cuBLASLt plan or a cuBLASLt error" : "cublasGemmEx";
            r[path].assign(n_out, 0.0f);
            if (!why && (cudaStreamSynchronize(h->stream) != cudaSuccess ||
                         cudaMemcpy(r[path].data(), dc[path], n_out * 4, cudaMemcpyDeviceToHost) != cudaSuccess))
                why = "a CUDA error";
        }
        if (why) break;
        // compare element by element (bf16 outputs: both 16-bit halves of every float word)
        for (int i = 0; i < n_out && !why; i++) {
            float a = r[0][i], b = r[1][i];
            if (c.c_bf16) {
                uint16_t ha[2], hb[2];
                memcpy(ha, &a, 4);
                memcpy(hb, &b, 4);
                for (int half = 0; half < 2 && !why; half++) {
                    const float fa = bf16_bits_to_float(ha[half]), fb = bf16_bits_to_float(hb[half]);
                    if (!(fabsf(fa - fb) <= 1.6e-2f * fabsf(fa) + 1e-3f)) why = "results differ (bf16 output)";
                }
            } else if (!(fabsf(a - b) <= 1e-4f * fabsf(a) + 1e-4f)) {
                why = "results differ (fp32 output)";
            }
        }
    }
    cudaFree(din);
    cudaFree(dc[0]);
    cudaFree(dc[1]);
    (void)cudaGetLastError();
    lt_plans_clear(h);
    return why;
}

// The bias epilogue against cublasGemmEx's fp32 product plus the bias on the host, rounded (an output 2 bytes off
// alignment; the bias at RLC_BLAS_BIAS_ALIGN, the only alignment rlc_blas_gemm_bf16_bias hands to the epilogue):
// NULL when they agree within one bf16 rounding.
static const char *lt_bias_check(rlc_blas *h) {
    const int M = 29, N = 45, K = 66, bias_at = (M * K + N * K + 7) / 8 * 8, n_in = bias_at + N + 8;
    const std::vector<uint16_t> hin = lt_test_data(n_in, 777u);
    uint16_t *din = NULL, *dout = NULL;
    float *dref = NULL;
    const char *why = NULL;
    if (cudaMalloc(&din, n_in * 2) != cudaSuccess || cudaMalloc(&dout, (M * N + 8) * 2) != cudaSuccess ||
        cudaMalloc(&dref, M * N * 4) != cudaSuccess ||
        cudaMemcpy(din, hin.data(), n_in * 2, cudaMemcpyHostToDevice) != cudaSuccess)
        why = "cudaMalloc / cudaMemcpy failed";
    const uint16_t *A = din, *B = din + M * K, *bias = din + bias_at; // A (M,K), B^T (N,K): trans_b
    std::vector<uint16_t> out((size_t)M * N);
    std::vector<float> ref((size_t)M * N);
    if (!why && gemmex_bf16(h, 0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, dref, N, 0)) why = "cublasGemmEx";
    if (!why && lt_gemm_bf16(h, 0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, dout + 1, N, 1, bias) != 1)
        why = "no cuBLASLt plan with a bias epilogue, or a cuBLASLt error";
    if (!why && (cudaStreamSynchronize(h->stream) != cudaSuccess ||
                 cudaMemcpy(out.data(), dout + 1, out.size() * 2, cudaMemcpyDeviceToHost) != cudaSuccess ||
                 cudaMemcpy(ref.data(), dref, ref.size() * 4, cudaMemcpyDeviceToHost) != cudaSuccess))
        why = "a CUDA error";
    for (int i = 0; i < M && !why; i++)
        for (int j = 0; j < N && !why; j++) {
            const float want = ref[(size_t)i * N + j] + bf16_bits_to_float(hin[bias_at + j]);
            const float got = bf16_bits_to_float(out[(size_t)i * N + j]);
            if (!(fabsf(got - want) <= 8e-3f * fabsf(want) + 1e-3f)) why = "results differ";
        }
    if (!why && rlc_blas_gemm_bf16_bias(h, 0, 1, M, N, K, 1.0f, A, K, B, K, bias + 1, dout + 1, N) != 1)
        why = "a bias vector off RLC_BLAS_BIAS_ALIGN was handed to the epilogue";
    cudaFree(din);
    cudaFree(dout);
    cudaFree(dref);
    (void)cudaGetLastError();
    lt_plans_clear(h);
    return why;
}

extern "C" rlc_blas *rlc_blas_create(void) {
    rlc_blas *h = new rlc_blas;
    h->stream = NULL;
    h->lt = NULL;
    h->lt_ws = NULL;
    h->use_lt = 0;
    h->lt_bias = 0;
    if (blas_check(cublasCreate(&h->handle), "cublasCreate")) {
        delete h;
        return nullptr;
    }
    // RLC_BLAS=gemmex keeps every bf16 GEMM on cublasGemmEx (for comparisons); the default is cuBLASLt
    const char *mode = getenv("RLC_BLAS");
    if (mode && *mode && strcmp(mode, "gemmex") && strcmp(mode, "lt"))
        fprintf(stderr, "rlc_blas: RLC_BLAS=%s is not a mode (lt or gemmex); using lt\n", mode);
    if (mode && !strcmp(mode, "gemmex")) return h;
    if (cublasLtCreate(&h->lt) != CUBLAS_STATUS_SUCCESS || cudaMalloc(&h->lt_ws, RLC_LT_WORKSPACE) != cudaSuccess) {
        (void)cudaGetLastError();
        fprintf(stderr, "rlc_blas: cuBLASLt unavailable (handle or workspace); bf16 GEMMs use cublasGemmEx\n");
        return h;
    }
    h->use_lt = 1;
    const char *why = lt_self_check(h);
    if (why) {
        h->use_lt = 0;
        fprintf(stderr, "rlc_blas: cuBLASLt self-check against cublasGemmEx failed (%s); bf16 GEMMs use "
                        "cublasGemmEx\n", why);
        return h;
    }
    h->lt_bias = 1;
    why = lt_bias_check(h);
    if (why) {
        h->lt_bias = 0;
        fprintf(stderr, "rlc_blas: cuBLASLt bias epilogue self-check failed (%s); biases are added by a kernel\n", why);
    }
    return h;
}
extern "C" void rlc_blas_destroy(rlc_blas *h) {
    if (!h) return;
    lt_plans_clear(h);
    if (h->lt_ws) cudaFree(h->lt_ws);
    if (h->lt) cublasLtDestroy(h->lt);
    cublasDestroy(h->handle);
    delete h;
}
extern "C" void rlc_blas_set_stream(rlc_blas *h, void *stream) {
    h->stream = (cudaStream_t)stream;
    cublasSetStream(h->handle, (cudaStream_t)stream);
}

extern "C" int rlc_blas_sgemm(rlc_blas *h, int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                              int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    return blas_check(cublasSgemm(h->handle, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N,
                                  M, K, &alpha, B, ldb, A, lda, &beta, C, ldc),
                      "cublasSgemm");
}
#endif
