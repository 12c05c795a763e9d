// kernels/cuda/embedding.h: token embedding lookup and its deterministic backward on the GPU (implementation:
// embedding.cu; CPU twin: embedding_forward / embedding_backward of include/rlc/ops.h, kernels/cpu/ops_cpu.c).
// Device pointers; tokens (T) are device ints in 0..V-1; `stream` a cudaStream_t (NULL = default). Nothing
// allocates or synchronises. Functions return 0, or -1 with a message on stderr (a failed launch).
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// out (T,C) = wte (V,C) [tokens (T)]
int rlc_cuda_embedding_forward(float *out, const int *tokens, const float *wte, int T, int C, void *stream);

// dwte (V,C) += dout (T,C) scattered by tokens, deterministic: the positions are ordered by (token, position)
// (a rank sort in the workspace), then each distinct token's row of dwte is owned by one block column that
// adds its positions' rows in position order: the same float additions in the same order as the CPU twin, no
// atomics. The rank sort compares every pair of tokens, O(T^2) integer work (T = 64k: ~4e9 compares, about a
// millisecond on an H100). Negative tokens are skipped.
size_t rlc_cuda_embedding_backward_workspace_bytes(int T);
int rlc_cuda_embedding_backward(float *dwte, const float *dout, const int *tokens, int T, int C, void *workspace,
                                void *stream);

#ifdef __cplusplus
}
#endif
