// host/comm_nccl.c: launch plumbing of the GPU path (see include/rlc/comm.h): each rank picks its GPU by its
// node-local rank and joins an NCCL communicator whose unique id rank 0 broadcasts over MPI. The collectives
// themselves are kernels/cuda/rlc_comm.h's. Compiled for real only in the rlc_dist_nccl library
// (RLC_DIST_NCCL: CUDA, NCCL and MPI found); in rlc_core (the host glob) it is empty.
#include "rlc/comm.h"

#ifdef RLC_DIST_NCCL
#include <cuda_runtime.h>
#include <stdio.h>

#include "rlc_comm.h"

struct rlc_comm *rlc_dist_nccl_create(const rlc_dist *d, int *device_out) {
    int ndev = 0;
    cudaError_t e = cudaGetDeviceCount(&ndev);
    if (e != cudaSuccess || ndev == 0) {
        fprintf(stderr, "rlc: rank %d: no CUDA device is visible (%s)\n", d->rank,
                e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        return NULL;
    }
    // one GPU per local rank; CUDA_VISIBLE_DEVICES set per rank by a launcher (1 device each) also works
    int dev = d->local_rank % ndev;
    if (d->local_size > ndev && d->local_rank == 0)
        fprintf(stderr, "rlc: %d ranks on this node share %d GPUs\n", d->local_size, ndev);
    e = cudaSetDevice(dev);
    if (e != cudaSuccess) {
        fprintf(stderr, "rlc: rank %d: cudaSetDevice(%d): %s\n", d->rank, dev, cudaGetErrorString(e));
        return NULL;
    }
    if (device_out) *device_out = dev;
    unsigned char id[RLC_COMM_ID_BYTES] = {0};
    // rank 0 failing here must not leave the others waiting in the broadcast
    if (d->rank == 0 && rlc_comm_get_unique_id(id) != 0) rlc_dist_abort(d, 1, "ncclGetUniqueId failed");
    rlc_dist_bcast(d, id, sizeof id, 0);
    struct rlc_comm *c = rlc_comm_create(d->size, d->rank, id, d->timeout_s);
    if (!c) fprintf(stderr, "rlc: rank %d: cannot create the NCCL communicator (%d ranks)\n", d->rank, d->size);
    return c;
}

#else
typedef int rlc_comm_nccl_not_built; // no CUDA/NCCL in this target: nothing to compile
#endif
