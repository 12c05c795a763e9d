// kernels/cuda/rlc_blas.h: the CUDA backend's only door to cuBLAS. Thin, row-major GEMMs on device
// pointers. The real build (nvcc) implements the bf16 GEMMs with cuBLASLt (a plan per shape and operand alignment,
// cached; checked against cublasGemmEx when the handle is created, which it falls back to with a message if the
// check fails; RLC_BLAS=gemmex forces the fallback) and the fp32 ones with cublasSgemm; the emulated build
// (g++ -DRLC_EMU) with OpenBLAS on the host, the bf16 inputs widened exactly to float, so that the emulated backend sees the same
// bf16 rounding of the operands as the GPU (only the order of the fp32 accumulation differs).
// Plain C interface (void * for device pointers and streams) so that C and C++ code may include it.
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rlc_blas rlc_blas; // a cuBLAS handle plus its stream (emulated: only the stream)

// NULL on failure, with a message on stderr.
rlc_blas *rlc_blas_create(void);
void rlc_blas_destroy(rlc_blas *h);
// Later calls run on this stream (a cudaStream_t; NULL = the default stream).
void rlc_blas_set_stream(rlc_blas *h, void *stream);

// Row-major C (M,N) = alpha * op(A) @ op(B) + beta * C, with op(A) (M,K) and op(B) (K,N):
// A is (M,K) with row stride lda, or (K,M) if trans_a; B is (K,N) with row stride ldb, or (N,K) if trans_b.
// bf16 A and B (__nv_bfloat16), fp32 accumulation; C is fp32 if c_bf16 == 0, else bf16 (rounded once).
// Returns 0, or -1 with a message on stderr.
int rlc_blas_gemm_bf16(rlc_blas *h, int trans_a, int trans_b, int M, int N, int K, float alpha, const void *A,
                       int lda, const void *B, int ldb, float beta, void *C, int ldc, int c_bf16);
// C (M,N) bf16 = round(alpha * op(A) @ op(B) + bias) with bias (N) bf16 added to every row before the one
// rounding (fp32 accumulation; beta = 0): a GEMM with its bias in the epilogue. Returns 0, -1 with a message on
// stderr, or 1 when this build cannot (cuBLASLt off, its bias epilogue failed the self-check, or bias is not
// RLC_BLAS_BIAS_ALIGN-byte aligned): the caller computes the product and the bias another way.
// The alignment rule holds in the emulated build too, so that CI takes the same paths as a GPU: cuBLASLt is told the
// alignment of A, B and C (its heuristic then offers only kernels that can read them) but has no such preference
// for the bias vector, and other projects report misaligned-address faults from the bias epilogue with bias
// pointers under 16 bytes of alignment (a fault would end the CUDA context, not just this call).
#define RLC_BLAS_BIAS_ALIGN 16
int rlc_blas_gemm_bf16_bias(rlc_blas *h, int trans_a, int trans_b, int M, int N, int K, float alpha, const void *A,
                            int lda, const void *B, int ldb, const void *bias, void *C, int ldc);
// The same in fp32 throughout (cuBLAS default math: no TF32).
int rlc_blas_sgemm(rlc_blas *h, int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                   int lda, const float *B, int ldb, float beta, float *C, int ldc);

#ifdef __cplusplus
}
#endif
