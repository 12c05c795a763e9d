// kernels/cuda/rlc_comm.cu: implementations of rlc_comm.h. With NCCL (nvcc build, RLC_HAVE_NCCL defined by
// cmake/cuda.cmake when nccl.h and libnccl are found) the calls map one to one to NCCL; otherwise (the
// emulated build, or a GPU build without NCCL) a communicator has one rank and every collective is a
// device-to-device copy (or nothing when in place).
#include "rlc_comm.h"

#include <string.h>

#include "rlc_cuda.h"

#if defined(RLC_HAVE_NCCL) && !defined(RLC_EMU)
#include <nccl.h>

struct rlc_comm {
    ncclComm_t comm;
    int rank, nranks;
};

static int nccl_check(ncclResult_t r, const char *what) {
    if (r == ncclSuccess) return 0;
    fprintf(stderr, "rlc_comm: %s failed: %s\n", what, ncclGetErrorString(r));
    return -1;
}

extern "C" int rlc_comm_get_unique_id(unsigned char id[RLC_COMM_ID_BYTES]) {
    static_assert(sizeof(ncclUniqueId) == RLC_COMM_ID_BYTES, "NCCL unique id size");
    ncclUniqueId u;
    if (nccl_check(ncclGetUniqueId(&u), "ncclGetUniqueId")) return -1;
    memcpy(id, &u, sizeof u);
    return 0;
}
extern "C" rlc_comm *rlc_comm_create(int nranks, int rank, const unsigned char id[RLC_COMM_ID_BYTES]) {
    rlc_comm *c = new rlc_comm{nullptr, rank, nranks};
    ncclUniqueId u;
    memcpy(&u, id, sizeof u);
    if (nccl_check(ncclCommInitRank(&c->comm, nranks, u, rank), "ncclCommInitRank")) {
        delete c;
        return nullptr;
    }
    return c;
}
extern "C" void rlc_comm_destroy(rlc_comm *c) {
    if (!c) return;
    ncclCommDestroy(c->comm);
    delete c;
}
extern "C" int rlc_comm_allreduce_sum_f32(rlc_comm *c, const float *send, float *recv, size_t n, void *stream) {
    return nccl_check(ncclAllReduce(send, recv, n, ncclFloat32, ncclSum, c->comm, (cudaStream_t)stream), "ncclAllReduce");
}
extern "C" int rlc_comm_allreduce_sum_bf16(rlc_comm *c, const void *send, void *recv, size_t n, void *stream) {
    return nccl_check(ncclAllReduce(send, recv, n, ncclBfloat16, ncclSum, c->comm, (cudaStream_t)stream), "ncclAllReduce");
}
extern "C" int rlc_comm_broadcast(rlc_comm *c, void *buf, size_t bytes, int root, void *stream) {
    return nccl_check(ncclBroadcast(buf, buf, bytes, ncclUint8, root, c->comm, (cudaStream_t)stream), "ncclBroadcast");
}
extern "C" int rlc_comm_allgather(rlc_comm *c, const void *send, void *recv, size_t bytes, void *stream) {
    return nccl_check(ncclAllGather(send, recv, bytes, ncclUint8, c->comm, (cudaStream_t)stream), "ncclAllGather");
}
extern "C" int rlc_comm_reduce_scatter_sum_f32(rlc_comm *c, const float *send, float *recv, size_t n, void *stream) {
    return nccl_check(ncclReduceScatter(send, recv, n, ncclFloat32, ncclSum, c->comm, (cudaStream_t)stream),
                      "ncclReduceScatter");
}

#else // single rank

struct rlc_comm {
    int rank, nranks;
};

extern "C" int rlc_comm_get_unique_id(unsigned char id[RLC_COMM_ID_BYTES]) {
    memset(id, 0, RLC_COMM_ID_BYTES);
    return 0;
}
extern "C" rlc_comm *rlc_comm_create(int nranks, int rank, const unsigned char *) {
    if (nranks != 1 || rank != 0) {
        fprintf(stderr, "rlc_comm: %d ranks requested, but this build has no NCCL (single rank only)\n", nranks);
        return nullptr;
    }
    return new rlc_comm{0, 1};
}
extern "C" void rlc_comm_destroy(rlc_comm *c) { delete c; }

static int comm_copy(void *dst, const void *src, size_t bytes, void *stream) {
    if (dst == src || bytes == 0) return 0;
    cudaError_t e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, (cudaStream_t)stream);
    if (e == cudaSuccess) return 0;
    fprintf(stderr, "rlc_comm: cudaMemcpyAsync failed: %s\n", cudaGetErrorString(e));
    return -1;
}
extern "C" int rlc_comm_allreduce_sum_f32(rlc_comm *, const float *send, float *recv, size_t n, void *stream) {
    return comm_copy(recv, send, n * 4, stream);
}
extern "C" int rlc_comm_allreduce_sum_bf16(rlc_comm *, const void *send, void *recv, size_t n, void *stream) {
    return comm_copy(recv, send, n * 2, stream);
}
extern "C" int rlc_comm_broadcast(rlc_comm *, void *, size_t, int root, void *) {
    if (root == 0) return 0;
    fprintf(stderr, "rlc_comm_broadcast: root %d out of range (1 rank)\n", root);
    return -1;
}
extern "C" int rlc_comm_allgather(rlc_comm *, const void *send, void *recv, size_t bytes, void *stream) {
    return comm_copy(recv, send, bytes, stream);
}
extern "C" int rlc_comm_reduce_scatter_sum_f32(rlc_comm *, const float *send, float *recv, size_t n, void *stream) {
    return comm_copy(recv, send, n * 4, stream);
}
#endif

extern "C" int rlc_comm_rank(const rlc_comm *c) { return c->rank; }
extern "C" int rlc_comm_nranks(const rlc_comm *c) { return c->nranks; }
