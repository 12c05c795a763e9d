// kernels/cuda/ops_cuda.h: the CUDA backend of the operation table (include/rlc/ops.h; implementation:
// ops_cuda.cu). Every entry runs on device memory with the table's fp32 interface and the semantics written in
// ops.h (accumulate vs overwrite, NULL skips). The CPU backend (rlc_ops_cpu) is its twin; tests/emu/
// test_ops_cuda.cpp compares every entry with it, under the emulator and on a GPU (tests/gpu/test_ops_cuda.cpp).
//
// The backend is one process-wide state, created by the first rlc_ops_cuda() call on the current device (select
// it first with cudaSetDevice): a cuBLAS handle (rlc_blas.h), a stream and a workspace that grows on demand
// (freed by rlc_ops_cuda_release). Use it from one host thread.
// - Ordering: every operation is enqueued on the backend's stream (the legacy default stream unless
//   rlc_ops_cuda_set_stream says otherwise). download returns when the copy is complete, upload when src may be
//   reused (small uploads are staged in pinned memory and complete in stream order; large ones synchronise); sumsq,
//   attention_decode (except on a bf16 cache with head dim 64 or 128) and sample_tokens synchronise too (they read
//   a result / the slot and kv_len arrays on the host / return the sampled tokens in host arrays). Other entries
//   return after enqueuing.
// - Errors: a CUDA error, an allocation failure (the message gives the bytes requested and the bytes free on the
//   device) or a shape the kernels do not take ends the process with "rlc: cuda backend: ..." and exit status 1.
//   try_alloc returns NULL instead.
// - Memory: mem_info counts every block the backend holds (alloc, try_alloc and its workspace) and their peak;
//   free is cudaMemGetInfo's, at most limit - in_use under a cap (set_mem_limit / RLC_MEM_LIMIT_MB), which
//   alloc, try_alloc and the workspace all respect. cuBLAS's own workspace and cuBLASLt's (32 MiB per handle,
//   rlc_blas.cu) are not counted.
// - Precision: three modes (rlc_ops_cuda_set_precision, or RLC_CUDA_PRECISION=mixed|bf16-gemm|fp32 in the
//   environment, read when the backend first starts; a restart after rlc_ops_cuda_release keeps the mode):
//   RLC_CUDA_MIXED (the default): mixed precision. Activations (include/rlc/ops.h rlc_act: norm outputs, q, k, v,
//     attention outputs, MLP gates, the KV cache, their gradients) are bf16 in memory (act_bytes 2); the matmuls
//     are bf16 GEMMs with fp32 accumulation reading them and the bf16 working weights directly, writing bf16
//     activations (rounded once; a registered bias through the GEMM's bias epilogue, else added to an fp32
//     scratch first) or fp32 (logits_forward, weight gradients); attention and the fused log-prob read
//     the bf16 activations without conversion when the head dim is 64 or 128. Elementwise kernels compute in fp32
//     and round their outputs once. The residual stream and its gradient, norm statistics, log-sum-exps,
//     log-probs, entropies, losses, gradients, master weights and optimizer moments stay fp32.
//   RLC_CUDA_BF16_GEMM: fp32 activations; the matmuls convert their activation operands to bf16 per call and run
//     bf16 GEMMs with fp32 outputs (a bridge for comparisons).
//   RLC_CUDA_FP32: fp32 activations and cuBLAS sgemm without TF32 (the reference mode, closest to the CPU twin).
//   In every mode attention runs the bf16 kernels of kernels/cuda/attention.cu (converting fp32 q, k, v, out,
//   dout, and zero-padding the head dim to 64 or 128 when needed) and the log-prob kernels/cuda/logprob.cu.
//   Change the mode only while no buffer with activations is allocated (the model checks act_bytes). The mode
//   is process state: rlc_ops_cuda_release does not reset it.
// - bf16 working weights: the model registers its flat fp32 parameter buffer (register_params); the backend keeps
//   a bf16 copy of it (2 bytes per parameter, device memory, counted), refreshed by every table write into it
//   and written by adamw_multi in the same pass as the fp32 master. Weight operands inside a registered buffer
//   (bf16 matmuls, the log-prob's LM head) are read from that copy instead of being converted on every call (fp32
//   activations, in the bf16-gemm mode, are converted per call). The results are bitwise those of converting the
//   weights.
//   sample_tokens (kernels/cuda/sample.cu) keeps double softmax statistics like the CPU and ranks by 64-bit
//   fixed-point masses: the same tokens as the CPU unless a draw falls within about V * 2^-(63 - ceil(log2 V)) of
//   the largest probability from a cumulative boundary.
#pragma once
#include <stdio.h>

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

#define RLC_CUDA_FP32 0      // fp32 activations, cuBLAS sgemm
#define RLC_CUDA_BF16_GEMM 1 // fp32 activations, GEMM operands rounded to bf16, fp32 accumulation and outputs
#define RLC_CUDA_MIXED 2     // bf16 activations and GEMMs, fp32 accumulation, statistics and master weights
void rlc_ops_cuda_set_precision(int mode);
int rlc_ops_cuda_precision(void);
// "fp32", "bf16-gemm", "mixed".
const char *rlc_ops_cuda_precision_name(int mode);

// Current workspace size in bytes (grows to the largest need seen; the attention and log-prob adapters' bf16
// copies live there).
size_t rlc_ops_cuda_workspace_bytes(void);
// Op profiler: the device time of each entry of the table. On at the backend's start when RLC_CUDA_PROFILE is set
// (not "0"; the whole run's table is then printed on stderr at exit), or from profile_enable(1), which swaps the compute entries of the table the backend returned (held
// pointers see it) for wrappers that bracket the real entry with two events on the backend's stream; the time
// between them (its kernels and copies, not the device's idle gaps) adds to the entry once the events have run.
// Costs two event records per call on the host, so a launch-bound step runs slower with it: measure the step
// without it, then profile. The GEMM entries are counted per weight shape, named "matmul_forward CxOC" (also
// logits_forward, matmul_backward), with their FLOPs. reset zeroes the counts (waiting for the events in flight);
// get gives one entry's calls and milliseconds (0, or -1 if it never ran timed); report prints every entry that
// ran, by time, with its share of the total and, for the GEMMs, TFLOP/s.
void rlc_ops_cuda_profile_enable(int on);
void rlc_ops_cuda_profile_reset(void);
int rlc_ops_cuda_profile_get(const char *entry, long long *calls, double *ms);
void rlc_ops_cuda_profile_report(FILE *f, const char *title);
// The largest workspace an entry has asked for since the last reset (reset != 0 starts again from 0): what an op
// needs, without the growth margin (tests of the ops' scratch estimates, attention_decode_scratch).
size_t rlc_ops_cuda_workspace_request_max(int reset);
// The device's bf16 GEMM rate in TFLOP/s, measured now: reps cuBLAS GEMMs (n,n) x (n,n) with bf16 operands and
// fp32 accumulation and output, after one warm-up call, timed with events on the backend's stream (the
// reference peak of bench/bench_step's MFU). Allocates and frees 8 n^2 bytes.
double rlc_ops_cuda_gemm_bf16_tflops(int n, int reps);

// The bf16 working copy of [p, p + n) (device memory, __nv_bfloat16) when the range lies inside a buffer given to
// register_params, else NULL. For tests.
const void *rlc_ops_cuda_params_bf16(const float *p, size_t n);

// CUDA graphs (the table's graph_* entries; the model records each decode step with them and replays it): on by
// default; RLC_CUDA_GRAPHS=0 in the environment, or set_graphs(0), makes graph_begin refuse, so every call runs
// directly. A recording is made on a stream of its own (non-blocking) with the compute stream swapped for it;
// an entry that needs the host while recording (upload, download, sumsq, sample_tokens, attention_decode's
// gather path, adamw_multi, a workspace that must grow) runs nothing and makes graph_end return NULL; an
// allocation or free while recording ends the process (allocate first). A graph stops being launchable
// (graph_launch returns -1) when the workspace moves, the precision mode or the stream changes, a registered
// parameter buffer is freed, the backend is released, or the profiler is on. An error of the graph API itself
// turns graphs off for the process with one line on stderr.
void rlc_ops_cuda_set_graphs(int on);
int rlc_ops_cuda_graphs(void);
// Nodes of a graph returned by graph_end (kernels, copies, memsets; for tests and the bench).
size_t rlc_ops_cuda_graph_nodes(const void *graph);

// Frees the workspace, adamw_multi's table and the cuBLAS handle (after synchronising). The next rlc_ops_cuda()
// starts afresh; memory from alloc (and the bf16 copies of registered buffers) stays valid, and so does the
// precision mode (act_bytes), which those buffers were allocated under.
void rlc_ops_cuda_release(void);

#ifdef __cplusplus
}
#endif
