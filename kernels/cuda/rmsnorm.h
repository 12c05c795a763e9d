// kernels/cuda/rmsnorm.h: RMSNorm forward and backward on the GPU (implementation: rmsnorm.cu; CPU twin:
// rmsnorm_forward / rmsnorm_backward of include/rlc/ops.h, kernels/cpu/ops_cpu.c).
// Device pointers, fp32 except the activation (out, dout: fp32, or bf16 when the flag says so; math in fp32);
// `stream` a cudaStream_t (NULL = default). Nothing allocates or synchronises.
// Deterministic (fixed-order sums, no atomics). Functions return 0, or -1 with a message on stderr.
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// out (T,C) = inp * rstd * weight (C); rstd (T) = 1 / sqrt(mean(inp^2) + eps), overwritten.
int rlc_cuda_rmsnorm_forward(void *out, int out_bf16, float *rstd, const float *inp, const float *weight, float eps,
                             int T, int C, void *stream);

// x (T,C) = a + b (b fp32, or bf16 with out when act_bf16; x may be a), then the forward above on x into out, rstd.
int rlc_cuda_add_rmsnorm_forward(float *x, void *out, int act_bf16, float *rstd, const float *a, const void *b,
                                 const float *weight, float eps, int T, int C, void *stream);

// dinp (T,C) += r w dy - x r^3 / C * sum(dy w x);  dweight (C) += sum_t dy x r (accumulate both). dweight is
// summed over chunks of RLC_RMS_ROWS rows in double, chunk partials in order (the CPU twin's partition).
#define RLC_RMS_ROWS 256
size_t rlc_cuda_rmsnorm_backward_workspace_bytes(int T, int C);
int rlc_cuda_rmsnorm_backward(float *dinp, float *dweight, const void *dout, int dout_bf16, const float *inp,
                              const float *weight, const float *rstd, int T, int C, void *workspace, void *stream);

#ifdef __cplusplus
}
#endif
