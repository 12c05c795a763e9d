// kernels/cuda/rlc_comm.h: the CUDA backend's only door to NCCL. Collectives over device buffers, one
// communicator per process (one GPU per rank). The real build uses NCCL (when the build found it); the
// emulated build and builds without NCCL support a single rank, where every collective is a copy.
// Plain C interface (void * for device pointers and streams).
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RLC_COMM_ID_BYTES 128 // = NCCL_UNIQUE_ID_BYTES

typedef struct rlc_comm rlc_comm;

// Rank 0 creates the id and sends it to the other ranks out of band (e.g. MPI_Bcast). Returns 0 or -1.
int rlc_comm_get_unique_id(unsigned char id[RLC_COMM_ID_BYTES]);
// NULL on failure, with a message on stderr (e.g. nranks > 1 without NCCL).
rlc_comm *rlc_comm_create(int nranks, int rank, const unsigned char id[RLC_COMM_ID_BYTES]);
void rlc_comm_destroy(rlc_comm *c);
int rlc_comm_rank(const rlc_comm *c);
int rlc_comm_nranks(const rlc_comm *c);

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

#ifdef __cplusplus
}
#endif
