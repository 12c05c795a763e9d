// kernels/cpu/cpu_common.h: shared helpers of the CPU backend: precision-generic math and BLAS wrappers
// (rlc_f is float, or double with -DRLC_F64), OpenBLAS thread control, and the functions shared between the
// backend's files (ops_cpu.c: the table and simple ops; attention_cpu.c; logprob_cpu.c; sample_cpu.c; simd_cpu.c:
// the vectorised exp-heavy row loops).
#pragma once
#include <cblas.h>
#include <math.h>
#include <stddef.h>

#include "rlc/ops.h"

#ifdef RLC_F64
#define CPU_EXP exp
#define CPU_LOG log
#define CPU_SQRT sqrt
#define CPU_GEMM cblas_dgemm
#else
#define CPU_EXP expf
#define CPU_LOG logf
#define CPU_SQRT sqrtf
#define CPU_GEMM cblas_sgemm
#endif

// Row-major C (M,N) = alpha * op(A) (M,K) @ op(B) (K,N) + beta * C. ta/tb: 1 = transposed operand.
static inline void cpu_gemm(int ta, int tb, int M, int N, int K, rlc_f alpha, const rlc_f *A, int lda,
                            const rlc_f *B, int ldb, rlc_f beta, rlc_f *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { // BLAS would leave C untouched for beta == 1 but not scale it otherwise; do it ourselves
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0 ? 0 : beta * C[(size_t)i * ldc + j];
        return;
    }
    CPU_GEMM(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A,
             lda, B, ldb, beta, C, ldc);
}

// A parallel region costs a fork and a join: a few microseconds while the cores are ours, but up to a scheduler
// time slice when other processes share them (OpenMP threads spin at the join for a partner that is not running:
// before these thresholds, next to two busy processes, a tiny model's training took 117 s with 2 threads and 38 s
// with 1; alone, 21 s). Loops with less work than CPU_PAR_MIN_WORK scalar operations run on the calling thread
// instead. A one-thread sgemm does about CPU_GEMM_MACS_PER_OP multiply-adds in the time of one such operation.
// Every loop of the backend splits its work the same way whatever the thread count, so this changes no result.
#define CPU_PAR_MIN_WORK 32768.0
#define CPU_GEMM_MACS_PER_OP 16.0
static inline int cpu_par(double ops) { return ops >= CPU_PAR_MIN_WORK; }
static inline int cpu_par_gemm(double macs) { return macs >= CPU_PAR_MIN_WORK * CPU_GEMM_MACS_PER_OP; }

// The backend's parallelism is OpenMP's only: every gemm runs inside an OpenMP region on one OpenBLAS thread
// (OpenBLAS's own pthread pool driven from several OpenMP threads would oversubscribe the cores, and its
// threads would spin against OpenMP's between regions). Bracket such regions with these; the previous
// OpenBLAS thread count is restored for any other user.
static inline int cpu_blas_single_begin(void) {
    int n = openblas_get_num_threads();
    if (n != 1) openblas_set_num_threads(1);
    return n;
}
static inline void cpu_blas_single_end(int n) {
    if (n != 1) openblas_set_num_threads(n);
}

// ops_cpu.c: a big product split into fixed tiles of C computed by OpenMP threads, each a one-thread gemm
// (see the comment there). bias (N, may be NULL): C = bias broadcast over rows + op(A) op(B), beta ignored.
void cpu_gemm_par(int ta, int tb, int M, int N, int K, rlc_f alpha, const rlc_f *A, int lda, const rlc_f *B, int ldb,
                  rlc_f beta, rlc_f *C, int ldc, const rlc_f *bias);

// simd_cpu.c: vectorised row loops (exp is a fast polynomial in the float build, libm's in the double build)
rlc_f cpu_row_max(const rlc_f *x, int n);                      // max of x (n >= 1)
rlc_f cpu_exp_sum(rlc_f *x, int n, rlc_f shift);               // x = exp(x - shift); returns the sum
void cpu_exp_stats(const rlc_f *x, int n, rlc_f shift, double *sum, double *sum_ed); // sum e, sum e*d; d = x - shift
void cpu_softmax_grad(rlc_f *p, rlc_f *dp, int n, rlc_f lse, rlc_f D);             // dp = exp(p - lse) (dp - D)
void cpu_softmax_grad_cols(rlc_f *p, rlc_f *dp, int n, const rlc_f *lse, const rlc_f *D); // per-column lse, D; p = exp
void cpu_logprob_dz(rlc_f *u, int n, rlc_f lse, rlc_f H, rlc_f c, rlc_f e); // u = -p (c + e (log p + H))
void cpu_swiglu_fwd(rlc_f *out, const rlc_f *gate, const rlc_f *up, int n);
void cpu_swiglu_bwd(rlc_f *dgate, rlc_f *dup, const rlc_f *dout, const rlc_f *gate, const rlc_f *up, int n);

// attention_cpu.c
void cpu_attention_forward(rlc_act *out, rlc_f *lse, const rlc_act *q, const rlc_act *k, const rlc_act *v,
                           const int *cu_seqlens, int B, int T, int NH, int NKV, int HD);
void cpu_attention_backward(rlc_act *dq, rlc_act *dk, rlc_act *dv, const rlc_act *dout, const rlc_act *q, const rlc_act *k,
                            const rlc_act *v, const rlc_act *out, const rlc_f *lse, const int *cu_seqlens, int B, int T,
                            int NH, int NKV, int HD);
void cpu_attention_decode(rlc_act *out, const rlc_act *q, const rlc_act *k_cache, const rlc_act *v_cache, const int *slot,
                          const int *kv_len, int B, int cap, int NH, int NKV, int HD);
size_t cpu_attention_decode_scratch(int cap, int NH, int NKV, int HD);

void cpu_kv_append(rlc_act *k_cache, rlc_act *v_cache, const rlc_act *k_new, const rlc_act *v_new, const int *slot,
                   const int *pos, int n, int cap, int NKV, int HD);

// sample_cpu.c (rlc_sample_token, the specification, is declared in include/rlc/sample.h)
void cpu_sample_tokens(int *tok, float *logp, float *ent, const rlc_f *logits, size_t ld, int n, int V,
                       const struct rlc_sampling *s, const struct rlc_sample_key *keys, uint64_t seed, uint64_t step);

// logprob_cpu.c
void cpu_logprob_forward(rlc_f *logp, rlc_f *entropy, rlc_f *lse, const rlc_act *hidden, const rlc_f *w,
                         const int *targets, int T, int C, int V, float tau);
void cpu_logprob_backward(rlc_act *dhidden, rlc_f *dw, const rlc_f *dlogp, const rlc_f *dent, const rlc_act *hidden,
                          const rlc_f *w, const int *targets, const rlc_f *lse, const rlc_f *entropy, int T, int C,
                          int V, float tau);
