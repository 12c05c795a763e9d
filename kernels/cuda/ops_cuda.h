// kernels/cuda/ops_cuda.h: the CUDA backend of the operation table (include/rlc/ops.h; implementation:
// ops_cuda.cu). Every entry runs on device memory with the table's fp32 interface and the semantics written in
// ops.h (accumulate vs overwrite, NULL skips). The CPU backend (rlc_ops_cpu) is its twin; tests/emu/
// test_ops_cuda.cpp compares every entry with it, under the emulator and on a GPU (tests/gpu/test_ops_cuda.cpp).
//
// The backend is one process-wide state, created by the first rlc_ops_cuda() call on the current device (select
// it first with cudaSetDevice): a cuBLAS handle (rlc_blas.h), a stream and a workspace that grows on demand
// (freed by rlc_ops_cuda_release). Use it from one host thread.
// - Ordering: every operation is enqueued on the backend's stream (the legacy default stream unless
//   rlc_ops_cuda_set_stream says otherwise). upload and download return when the copy is complete; sumsq,
//   attention_decode and sample_tokens synchronise too (they read a result / the slot and kv_len arrays on the
//   host / return the sampled tokens in host arrays). Other entries return after enqueuing.
// - Errors: a CUDA error, an allocation failure (the message gives the bytes requested and the bytes free on the
//   device) or a shape the kernels do not take ends the process with "rlc: cuda backend: ..." and exit status 1.
//   try_alloc returns NULL instead.
// - Memory: mem_info counts every block the backend holds (alloc, try_alloc and its workspace) and their peak;
//   free is cudaMemGetInfo's, at most limit - in_use under a cap (set_mem_limit / RLC_MEM_LIMIT_MB), which
//   alloc, try_alloc and the workspace all respect. cuBLAS's own workspace is not counted (not ours to see).
// - Precision: activations, gradients, elementwise ops, norms, RoPE, embeddings, the optimizer (fp32 master
//   weights and moments), log-probs, entropies and losses are fp32; by default the matmuls too, through cuBLAS
//   sgemm without TF32. Attention converts q, k, v (and out, dout) to bf16 in the workspace, zero-padding the
//   head dim to 64 or 128 (head dims up to 128) and runs kernels/cuda/attention.cu; the fused log-prob runs
//   kernels/cuda/logprob.cu on bf16 hidden states and LM head. RLC_CUDA_MATMUL=bf16 in the environment (or
//   rlc_ops_cuda_set_matmul) makes the matmuls run bf16 GEMMs with fp32 accumulation and fp32 outputs.
// - bf16 working weights: the model registers its flat fp32 parameter buffer (register_params); the backend keeps
//   a bf16 copy of it (2 bytes per parameter, device memory, counted), refreshed by every table write into it
//   and written by adamw_multi in the same pass as the fp32 master. Weight operands inside a registered buffer
//   (bf16 matmuls, the log-prob's LM head) are read from that copy instead of being converted on every call; the
//   activations are still converted per call. The results are bitwise those of converting the weights.
//   sample_tokens (kernels/cuda/sample.cu) keeps double softmax statistics like the CPU and ranks by 64-bit
//   fixed-point masses: the same tokens as the CPU unless a draw falls within about V * 2^-(63 - ceil(log2 V)) of
//   the largest probability from a cumulative boundary.
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

#include "rlc/ops.h"

// The table; initialises the backend on first use (ends the process if there is no usable CUDA device).
const rlc_ops *rlc_ops_cuda(void);

// Later operations run on this stream (a cudaStream_t; NULL = the legacy default stream). Synchronises the
// previous stream first, so that the workspace is never shared between two streams in flight.
void rlc_ops_cuda_set_stream(void *stream);
void *rlc_ops_cuda_stream(void);
// Waits for everything enqueued on the backend's stream; ends the process on a CUDA error.
void rlc_ops_cuda_synchronize(void);

#define RLC_CUDA_MATMUL_FP32 0 // cuBLAS sgemm, fp32 operands (the default)
#define RLC_CUDA_MATMUL_BF16 1 // operands rounded to bf16, fp32 accumulation and outputs
void rlc_ops_cuda_set_matmul(int mode);
int rlc_ops_cuda_matmul(void);

// Current workspace size in bytes (grows to the largest need seen; the attention and log-prob adapters' bf16
// copies live there).
size_t rlc_ops_cuda_workspace_bytes(void);
// The device's bf16 GEMM rate in TFLOP/s, measured now: reps cuBLAS GEMMs (n,n) x (n,n) with bf16 operands and
// fp32 accumulation and output, after one warm-up call, timed with events on the backend's stream (the
// reference peak of bench/bench_step's MFU). Allocates and frees 8 n^2 bytes.
double rlc_ops_cuda_gemm_bf16_tflops(int n, int reps);

// The bf16 working copy of [p, p + n) (device memory, __nv_bfloat16) when the range lies inside a buffer given to
// register_params, else NULL. For tests.
const void *rlc_ops_cuda_params_bf16(const float *p, size_t n);

// Frees the workspace, adamw_multi's table and the cuBLAS handle (after synchronising). The next rlc_ops_cuda()
// starts afresh; memory from alloc (and the bf16 copies of registered buffers) stays valid.
void rlc_ops_cuda_release(void);

#ifdef __cplusplus
}
#endif
