// kernels/cuda/rlc_blas.cu: implementations of rlc_blas.h. Under nvcc: cuBLAS (row-major C = A B is
// column-major C^T = B^T A^T, so the operands are passed swapped). Under g++ -DRLC_EMU: OpenBLAS on the host
// (emulated device memory is host memory), bf16 operands widened exactly to float first.
#include "rlc_blas.h"

#include "rlc_cuda.h"

#if defined(RLC_EMU)
#include <cblas.h>

#include <vector>

struct rlc_blas {
    int unused;
};

extern "C" rlc_blas *rlc_blas_create(void) { return new rlc_blas{0}; }
extern "C" void rlc_blas_destroy(rlc_blas *h) { delete h; }
extern "C" void rlc_blas_set_stream(rlc_blas *, void *) {}

// Copies a row-major bf16 matrix (rows, cols, stride ld) to a dense float matrix.
static std::vector<float> widen(const void *p, int rows, int cols, int ld) {
    const __nv_bfloat16 *b = (const __nv_bfloat16 *)p;
    std::vector<float> f((size_t)rows * cols);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) f[(size_t)r * cols + c] = __bfloat162float(b[(size_t)r * ld + c]);
    return f;
}

extern "C" int rlc_blas_gemm_bf16(rlc_blas *, int trans_a, int trans_b, int M, int N, int K, float alpha,
                                  const void *A, int lda, const void *B, int ldb, float beta, void *C, int ldc,
                                  int c_bf16) {
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
    return 0;
}

extern "C" int rlc_blas_sgemm(rlc_blas *, int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                              int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K,
                alpha, A, lda, B, ldb, beta, C, ldc);
    return 0;
}

#else
#include <cublas_v2.h>

struct rlc_blas {
    cublasHandle_t handle;
};

static int blas_check(cublasStatus_t s, const char *what) {
    if (s == CUBLAS_STATUS_SUCCESS) return 0;
    fprintf(stderr, "rlc_blas: %s failed: %s\n", what, cublasGetStatusString(s));
    return -1;
}

extern "C" rlc_blas *rlc_blas_create(void) {
    rlc_blas *h = new rlc_blas;
    if (blas_check(cublasCreate(&h->handle), "cublasCreate")) {
        delete h;
        return nullptr;
    }
    return h;
}
extern "C" void rlc_blas_destroy(rlc_blas *h) {
    if (!h) return;
    cublasDestroy(h->handle);
    delete h;
}
extern "C" void rlc_blas_set_stream(rlc_blas *h, void *stream) { cublasSetStream(h->handle, (cudaStream_t)stream); }

// Row-major C (M,N) = op(A) op(B)  <=>  column-major C^T (N,M) = op(B)^T op(A)^T: cuBLAS gets B first.
extern "C" int rlc_blas_gemm_bf16(rlc_blas *h, int trans_a, int trans_b, int M, int N, int K, float alpha,
                                  const void *A, int lda, const void *B, int ldb, float beta, void *C, int ldc,
                                  int c_bf16) {
    return blas_check(cublasGemmEx(h->handle, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                   N, M, K, &alpha, B, CUDA_R_16BF, ldb, A, CUDA_R_16BF, lda, &beta, C,
                                   c_bf16 ? CUDA_R_16BF : CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                      "cublasGemmEx (bf16)");
}

extern "C" int rlc_blas_sgemm(rlc_blas *h, int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                              int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    return blas_check(cublasSgemm(h->handle, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N,
                                  M, K, &alpha, B, ldb, A, lda, &beta, C, ldc),
                      "cublasSgemm");
}
#endif
