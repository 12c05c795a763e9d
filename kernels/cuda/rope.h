// kernels/cuda/rope.h: rotary position embedding (rotate-half convention of HF Llama/Qwen2) on the GPU
// (implementation: rope.cu; CPU twin: rope_forward / rope_backward of include/rlc/ops.h, kernels/cpu/ops_cpu.c).
// x (T,H,HD) device memory (fp32, or bf16 when x_bf16: rotated in fp32, rounded once) rotated in place by position pos[t] (device ints): for i < HD/2,
// angle = pos * theta^(-2i/HD), (x_i, x_{i+HD/2}) <- (x_i cos - x_{i+HD/2} sin, x_{i+HD/2} cos + x_i sin);
// sign -1 rotates by -angle (the backward). `stream` a cudaStream_t. Returns 0, or -1 with a message on stderr.
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

int rlc_cuda_rope(void *x, int x_bf16, const int *pos, int T, int H, int HD, float theta, int sign, void *stream);

#ifdef __cplusplus
}
#endif
