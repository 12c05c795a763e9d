// kernels/cuda/rlc_comm.h: the CUDA backend's only door to NCCL. Collectives over device buffers, one
// communicator per process (one GPU per rank). The real build uses NCCL (when the build found it); builds
// without NCCL support a single rank, where every collective is a copy, except the emulated build with MPI (CI:
// tests/emu), where several ranks, one MPI process each, run the collectives over MPI (rlc_comm.cu says what
// that emulates: results, ordering, errors and timeouts, not streams).
// Plain C interface (void * for device pointers, streams and events).
//
// Errors and timeouts. The NCCL communicator is non-blocking (ncclConfig_t.blocking = 0), so no call can block
// the host forever: creation and every enqueue that reports ncclInProgress are polled with
// ncclCommGetAsyncError, and rlc_comm_wait polls a completion event. When timeout_s (given at creation; <= 0:
// none) passes first, or NCCL reports an asynchronous error, the communicator is aborted (ncclCommAbort, so no
// kernel of it keeps spinning) and the call fails. A failing call returns -1 (RLC_COMM_TIMEOUT for a timeout)
// and leaves "<call> failed: <NCCL's reason>" in rlc_comm_error(); the caller adds its rank and what the
// collective was for, and ends the job. After an abort every call fails at once.
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RLC_COMM_ID_BYTES 128 // = NCCL_UNIQUE_ID_BYTES
#define RLC_COMM_TIMEOUT (-2) // return value of a call that timed out

typedef struct rlc_comm rlc_comm;

// Rank 0 creates the id and sends it to the other ranks out of band (e.g. MPI_Bcast). Returns 0 or -1.
int rlc_comm_get_unique_id(unsigned char id[RLC_COMM_ID_BYTES]);
// Collective over the nranks processes. NULL on failure, with a message on stderr (e.g. nranks > 1 without
// NCCL, or the other ranks not joining within timeout_s seconds).
rlc_comm *rlc_comm_create(int nranks, int rank, const unsigned char id[RLC_COMM_ID_BYTES], double timeout_s);
// Frees the communicator (ncclCommDestroy, or nothing more after an abort). Wait for its work first.
void rlc_comm_destroy(rlc_comm *c);
int rlc_comm_rank(const rlc_comm *c);
int rlc_comm_nranks(const rlc_comm *c);
// The message of the last failed call ("" if none).
const char *rlc_comm_error(const rlc_comm *c);

// All return 0, or -1 with a message. send == recv is allowed where NCCL allows it (all-reduce, broadcast).
// recv (n) = sum over ranks of send (n), fp32.
int rlc_comm_allreduce_sum_f32(rlc_comm *c, const float *send, float *recv, size_t n, void *stream);
// recv (n) = sum over ranks of send (n), bf16 data (__nv_bfloat16).
int rlc_comm_allreduce_sum_bf16(rlc_comm *c, const void *send, void *recv, size_t n, void *stream);
// buf (bytes) of rank root is copied to every rank.
int rlc_comm_broadcast(rlc_comm *c, void *buf, size_t bytes, int root, void *stream);
// recv (nranks * bytes) = concatenation of every rank's send (bytes), in rank order.
int rlc_comm_allgather(rlc_comm *c, const void *send, void *recv, size_t bytes, void *stream);
// recv (n) = this rank's slice of the sum over ranks of send (nranks * n), fp32.
int rlc_comm_reduce_scatter_sum_f32(rlc_comm *c, const float *send, float *recv, size_t n, void *stream);

// ---- a flat buffer x split into contiguous shards: rank r owns [starts[r], starts[r+1]) (starts: nranks + 1
// offsets in elements, non-decreasing, starts[0] = 0; shards may be empty and of different sizes) ----
// Reduce-scatter of the range [lo, hi) of x (fp32): the sum over ranks of x[lo, hi), each rank receiving the part
// inside its own shard at shard-local offsets, out[i - starts[rank]] for i in [lo, hi) within the shard. Called
// for consecutive ranges (buckets) it reduce-scatters the whole buffer; x is not modified. One NCCL group of
// ncclReduce calls, one per shard the range meets (a copy with one rank).
int rlc_comm_reduce_scatter_range_f32(rlc_comm *c, const float *x, float *out, const size_t *starts, size_t lo,
                                      size_t hi, void *stream);
// All-gather in place (fp32): on entry x holds this rank's shard; on return every rank's shard. ncclAllGather
// when the shards are equal, else one NCCL group of ncclBroadcast calls (nothing with one rank).
int rlc_comm_allgather_shards_f32(rlc_comm *c, float *x, const size_t *starts, void *stream);

// Wait on the host until `event` (a cudaEvent_t recorded after this communicator's work on some stream) has
// completed, polling NCCL's asynchronous error state; fails on a CUDA or NCCL error, and with RLC_COMM_TIMEOUT
// after the communicator's timeout (both abort the communicator).
int rlc_comm_wait(rlc_comm *c, void *event);

#ifdef __cplusplus
}
#endif
