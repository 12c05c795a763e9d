// kernels/cuda/rlc_comm.cu: implementations of rlc_comm.h. With NCCL (nvcc build, RLC_HAVE_NCCL defined by
// cmake/cuda.cmake when nccl.h and libnccl are found) the calls map to NCCL on a non-blocking communicator
// (NCCL >= 2.14; older NCCLs get a blocking one, where only rlc_comm_wait's timeout applies); otherwise (the
// emulated build, or a GPU build without NCCL) a communicator has one rank and every collective is a
// device-to-device copy (or nothing when in place).
#include "rlc_comm.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "rlc_cuda.h"

#if defined(RLC_HAVE_NCCL) && !defined(RLC_EMU)
#include <nccl.h>

#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 14, 0)
#define RLC_NCCL_NONBLOCKING 1
#endif

static double comm_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// Polling pause: spin for the first millisecond, then 50 us naps, so that a short collective is seen at
// once and a long one does not take a core.
static void comm_pause(double waited_s) {
    if (waited_s < 1e-3) return;
    struct timespec nap = {0, 50 * 1000};
    nanosleep(&nap, NULL);
}


struct rlc_comm {
    ncclComm_t comm;
    int rank, nranks;
    double timeout_s;
    int aborted;
    char err[512];
};

__attribute__((format(printf, 2, 3))) static int comm_fail(rlc_comm *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    return -1;
}

static void comm_abort(rlc_comm *c) {
    if (c->aborted) return;
    c->aborted = 1;
    ncclCommAbort(c->comm);
}

// The result of an NCCL call: on a non-blocking communicator ncclInProgress means "still being enqueued":
// poll the communicator until it settles (or the timeout passes).
static int comm_settle(rlc_comm *c, ncclResult_t r, const char *what) {
    const double t0 = comm_now();
    while (r == ncclInProgress) {
        const double w = comm_now() - t0;
        if (c->timeout_s > 0 && w > c->timeout_s) {
            comm_abort(c);
            comm_fail(c, "%s did not complete its launch within %.0f s (timeout); communicator aborted", what,
                      c->timeout_s);
            return RLC_COMM_TIMEOUT;
        }
        comm_pause(w);
        if (ncclCommGetAsyncError(c->comm, &r) != ncclSuccess) r = ncclInternalError;
    }
    if (r == ncclSuccess) return 0;
    const char *last = ncclGetLastError(c->comm);
    comm_fail(c, "%s failed: %s%s%s%s", what, ncclGetErrorString(r), last && *last ? " (" : "", last ? last : "",
              last && *last ? ")" : "");
    comm_abort(c);
    return -1;
}

static int comm_usable(rlc_comm *c, const char *what) {
    return c->aborted ? comm_fail(c, "%s: the communicator was aborted after an earlier error", what) : 0;
}

extern "C" int rlc_comm_get_unique_id(unsigned char id[RLC_COMM_ID_BYTES]) {
    static_assert(sizeof(ncclUniqueId) == RLC_COMM_ID_BYTES, "NCCL unique id size");
    ncclUniqueId u;
    ncclResult_t r = ncclGetUniqueId(&u);
    if (r != ncclSuccess) {
        fprintf(stderr, "rlc_comm: ncclGetUniqueId failed: %s\n", ncclGetErrorString(r));
        return -1;
    }
    memcpy(id, &u, sizeof u);
    return 0;
}

extern "C" rlc_comm *rlc_comm_create(int nranks, int rank, const unsigned char id[RLC_COMM_ID_BYTES],
                                     double timeout_s) {
    rlc_comm *c = new rlc_comm();
    c->rank = rank;
    c->nranks = nranks;
    c->timeout_s = timeout_s;
    ncclUniqueId u;
    memcpy(&u, id, sizeof u);
#ifdef RLC_NCCL_NONBLOCKING
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0;
    ncclResult_t r = ncclCommInitRankConfig(&c->comm, nranks, u, rank, &cfg);
    if (r != ncclSuccess && r != ncclInProgress) { // no communicator object to poll
        fprintf(stderr, "rlc_comm: rank %d: ncclCommInitRankConfig (%d ranks) failed: %s\n", rank, nranks,
                ncclGetErrorString(r));
        delete c;
        return nullptr;
    }
    if (comm_settle(c, r, "ncclCommInitRankConfig (the other ranks must join)") != 0) {
        fprintf(stderr, "rlc_comm: rank %d: %s\n", rank, c->err);
        delete c; // aborted by comm_settle
        return nullptr;
    }
#else
    ncclResult_t r = ncclCommInitRank(&c->comm, nranks, u, rank);
    if (r != ncclSuccess) {
        fprintf(stderr, "rlc_comm: rank %d: ncclCommInitRank (%d ranks) failed: %s\n", rank, nranks,
                ncclGetErrorString(r));
        delete c;
        return nullptr;
    }
#endif
    return c;
}

extern "C" void rlc_comm_destroy(rlc_comm *c) {
    if (!c) return;
#ifdef RLC_NCCL_NONBLOCKING
    // a non-blocking communicator is finalized first (it flushes its work; ncclInProgress until done)
    if (!c->aborted && comm_settle(c, ncclCommFinalize(c->comm), "ncclCommFinalize") != 0)
        fprintf(stderr, "rlc_comm: rank %d: %s\n", c->rank, c->err); // aborted by comm_settle
#endif
    if (!c->aborted) ncclCommDestroy(c->comm);
    delete c;
}

extern "C" const char *rlc_comm_error(const rlc_comm *c) { return c->err; }

#define COMM_CALL(c, what, call) (comm_usable(c, what) ? -1 : comm_settle(c, call, what))

extern "C" int rlc_comm_allreduce_sum_f32(rlc_comm *c, const float *send, float *recv, size_t n, void *stream) {
    return COMM_CALL(c, "ncclAllReduce",
                     ncclAllReduce(send, recv, n, ncclFloat32, ncclSum, c->comm, (cudaStream_t)stream));
}
extern "C" int rlc_comm_allreduce_sum_bf16(rlc_comm *c, const void *send, void *recv, size_t n, void *stream) {
    return COMM_CALL(c, "ncclAllReduce (bf16)",
                     ncclAllReduce(send, recv, n, ncclBfloat16, ncclSum, c->comm, (cudaStream_t)stream));
}
extern "C" int rlc_comm_broadcast(rlc_comm *c, void *buf, size_t bytes, int root, void *stream) {
    return COMM_CALL(c, "ncclBroadcast",
                     ncclBroadcast(buf, buf, bytes, ncclUint8, root, c->comm, (cudaStream_t)stream));
}
extern "C" int rlc_comm_allgather(rlc_comm *c, const void *send, void *recv, size_t bytes, void *stream) {
    return COMM_CALL(c, "ncclAllGather", ncclAllGather(send, recv, bytes, ncclUint8, c->comm, (cudaStream_t)stream));
}
extern "C" int rlc_comm_reduce_scatter_sum_f32(rlc_comm *c, const float *send, float *recv, size_t n, void *stream) {
    return COMM_CALL(c, "ncclReduceScatter",
                     ncclReduceScatter(send, recv, n, ncclFloat32, ncclSum, c->comm, (cudaStream_t)stream));
}

// One NCCL group: ncclGroupStart, the calls, ncclGroupEnd (which reports ncclInProgress on a non-blocking
// communicator while it launches). A failed call inside the group still ends it, then fails.
extern "C" int rlc_comm_reduce_scatter_range_f32(rlc_comm *c, const float *x, float *out, const size_t *starts,
                                                 size_t lo, size_t hi, void *stream) {
    if (comm_usable(c, "ncclReduce (reduce-scatter)")) return -1;
    const size_t mine = starts[c->rank];
    ncclResult_t r = ncclGroupStart(), first_bad = ncclSuccess;
    if (r != ncclSuccess) return comm_settle(c, r, "ncclGroupStart");
    for (int q = 0; q < c->nranks; q++) {
        const size_t a = lo > starts[q] ? lo : starts[q], b = hi < starts[q + 1] ? hi : starts[q + 1];
        if (b <= a) continue;
        // recvbuff is only used on the root; elsewhere NCCL ignores it (x + a is a valid address anyway)
        float *recv = q == c->rank ? out + (a - mine) : (float *)(x + a);
        r = ncclReduce(x + a, recv, b - a, ncclFloat32, ncclSum, q, c->comm, (cudaStream_t)stream);
        if (r != ncclSuccess && r != ncclInProgress && first_bad == ncclSuccess) first_bad = r;
    }
    r = ncclGroupEnd();
    return comm_settle(c, first_bad != ncclSuccess ? first_bad : r, "ncclReduce group (reduce-scatter)");
}

extern "C" int rlc_comm_allgather_shards_f32(rlc_comm *c, float *x, const size_t *starts, void *stream) {
    if (comm_usable(c, "all-gather of shards")) return -1;
    const int R = c->nranks;
    const size_t cnt0 = starts[1] - starts[0];
    bool equal = true;
    for (int q = 0; q < R; q++) equal = equal && starts[q + 1] - starts[q] == cnt0;
    if (equal) { // in place: sendbuff = recvbuff + rank * count
        if (cnt0 == 0) return 0;
        return comm_settle(c,
                           ncclAllGather(x + starts[c->rank], x, cnt0, ncclFloat32, c->comm, (cudaStream_t)stream),
                           "ncclAllGather");
    }
    ncclResult_t r = ncclGroupStart(), first_bad = ncclSuccess;
    if (r != ncclSuccess) return comm_settle(c, r, "ncclGroupStart");
    for (int q = 0; q < R; q++) {
        const size_t a = starts[q], b = starts[q + 1];
        if (b <= a) continue;
        r = ncclBroadcast(x + a, x + a, b - a, ncclFloat32, q, c->comm, (cudaStream_t)stream);
        if (r != ncclSuccess && r != ncclInProgress && first_bad == ncclSuccess) first_bad = r;
    }
    r = ncclGroupEnd();
    return comm_settle(c, first_bad != ncclSuccess ? first_bad : r, "ncclBroadcast group (all-gather)");
}

extern "C" int rlc_comm_wait(rlc_comm *c, void *event) {
    if (comm_usable(c, "wait")) return -1;
    const double t0 = comm_now();
    for (;;) {
        cudaError_t q = cudaEventQuery((cudaEvent_t)event);
        if (q == cudaSuccess) return 0;
        if (q != cudaErrorNotReady) {
            comm_abort(c);
            return comm_fail(c, "cudaEventQuery on the collectives' stream: %s", cudaGetErrorString(q));
        }
        ncclResult_t a = ncclSuccess;
        if (ncclCommGetAsyncError(c->comm, &a) != ncclSuccess) a = ncclInternalError;
        if (a != ncclSuccess && a != ncclInProgress) {
            const char *last = ncclGetLastError(c->comm);
            comm_abort(c);
            return comm_fail(c, "NCCL reported an asynchronous error: %s%s%s%s", ncclGetErrorString(a),
                             last && *last ? " (" : "", last ? last : "", last && *last ? ")" : "");
        }
        const double w = comm_now() - t0;
        if (c->timeout_s > 0 && w > c->timeout_s) {
            comm_abort(c);
            comm_fail(c, "not complete after %.0f s (timeout); communicator aborted", c->timeout_s);
            return RLC_COMM_TIMEOUT;
        }
        comm_pause(w);
    }
}

#else // single rank

struct rlc_comm {
    int rank, nranks;
    char err[512];
};

extern "C" int rlc_comm_get_unique_id(unsigned char id[RLC_COMM_ID_BYTES]) {
    memset(id, 0, RLC_COMM_ID_BYTES);
    return 0;
}
extern "C" rlc_comm *rlc_comm_create(int nranks, int rank, const unsigned char *, double) {
    if (nranks != 1 || rank != 0) {
        fprintf(stderr, "rlc_comm: %d ranks requested, but this build has no NCCL (single rank only)\n", nranks);
        return nullptr;
    }
    rlc_comm *c = new rlc_comm();
    c->nranks = 1;
    return c;
}
extern "C" void rlc_comm_destroy(rlc_comm *c) { delete c; }
extern "C" const char *rlc_comm_error(const rlc_comm *c) { return c->err; }

static int comm_copy(rlc_comm *c, void *dst, const void *src, size_t bytes, void *stream) {
    if (dst == src || bytes == 0) return 0;
    cudaError_t e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, (cudaStream_t)stream);
    if (e == cudaSuccess) return 0;
    snprintf(c->err, sizeof c->err, "cudaMemcpyAsync failed: %s", cudaGetErrorString(e));
    return -1;
}
extern "C" int rlc_comm_allreduce_sum_f32(rlc_comm *c, const float *send, float *recv, size_t n, void *stream) {
    return comm_copy(c, recv, send, n * 4, stream);
}
extern "C" int rlc_comm_allreduce_sum_bf16(rlc_comm *c, const void *send, void *recv, size_t n, void *stream) {
    return comm_copy(c, recv, send, n * 2, stream);
}
extern "C" int rlc_comm_broadcast(rlc_comm *c, void *, size_t, int root, void *) {
    if (root == 0) return 0;
    snprintf(c->err, sizeof c->err, "broadcast: root %d out of range (1 rank)", root);
    return -1;
}
extern "C" int rlc_comm_allgather(rlc_comm *c, const void *send, void *recv, size_t bytes, void *stream) {
    return comm_copy(c, recv, send, bytes, stream);
}
extern "C" int rlc_comm_reduce_scatter_sum_f32(rlc_comm *c, const float *send, float *recv, size_t n, void *stream) {
    return comm_copy(c, recv, send, n * 4, stream);
}
extern "C" int rlc_comm_reduce_scatter_range_f32(rlc_comm *c, const float *x, float *out, const size_t *starts,
                                                 size_t lo, size_t hi, void *stream) {
    // one rank owns [starts[0], starts[1]): the part of [lo, hi) inside it, at shard-local offsets
    const size_t a = lo > starts[0] ? lo : starts[0], b = hi < starts[1] ? hi : starts[1];
    return b > a ? comm_copy(c, out + (a - starts[0]), x + a, (b - a) * 4, stream) : 0;
}
extern "C" int rlc_comm_allgather_shards_f32(rlc_comm *, float *, const size_t *, void *) { return 0; }
extern "C" int rlc_comm_wait(rlc_comm *c, void *event) {
    cudaError_t e = cudaEventSynchronize((cudaEvent_t)event); // one rank: nothing to wait for but the GPU
    if (e == cudaSuccess) return 0;
    snprintf(c->err, sizeof c->err, "cudaEventSynchronize: %s", cudaGetErrorString(e));
    return -1;
}
#endif

extern "C" int rlc_comm_rank(const rlc_comm *c) { return c->rank; }
extern "C" int rlc_comm_nranks(const rlc_comm *c) { return c->nranks; }
