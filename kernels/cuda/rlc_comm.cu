// kernels/cuda/rlc_comm.cu: implementations of rlc_comm.h. With NCCL (nvcc build, RLC_HAVE_NCCL defined by
// cmake/cuda.cmake when nccl.h and libnccl are found) the calls map to NCCL on a non-blocking communicator
// (NCCL >= 2.14; older NCCLs get a blocking one, where only rlc_comm_wait's timeout applies); otherwise (the
// emulated build, or a GPU build without NCCL) a communicator of one rank makes every collective a
// device-to-device copy (or nothing when in place), and the emulated build with MPI (RLC_MPI: tests/emu's
// rlc_cuda_emu when CMake found MPI) also emulates NCCL with several ranks, one MPI process each, over MPI's
// non-blocking collectives: what that does and does not emulate is written above its code (RLC_COMM_MPI).
#include "rlc_comm.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>

// Leaves the message in c->err (each implementation's struct rlc_comm has one) and returns -1. (Unused in the
// one-rank build without NCCL and MPI.)
__attribute__((format(printf, 2, 3), unused)) static int comm_fail(rlc_comm *c, const char *fmt, ...);

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

#else // one rank (a GPU build without NCCL, the emulated build), or several over MPI (the emulated build with MPI)

#if defined(RLC_EMU) && defined(RLC_MPI)
#define RLC_COMM_MPI 1
#endif

#ifdef RLC_COMM_MPI
#define OMPI_SKIP_MPICXX 1 // MPI's C interface only (this file is C++ under the emulator)
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <limits.h>
#include <unistd.h>

#include <memory>
#include <vector>

// A collective enqueued on an emulated communicator of several ranks: MPI's non-blocking collective on staging
// buffers, and what rlc_comm_wait does with its result. The input is copied at the enqueue (after the stream's
// queued work has run: what the stream would have done before the collective read it) and the output written to its
// destination at completion, in enqueue order. MPI keeps pointers into the buffers and count arrays until
// completion; each collective is heap-allocated once so that they never move.
struct EmuCollective {
    enum Finish { COPY, SUM_F32, SUM_BF16 } finish;
    MPI_Request req;
    std::vector<unsigned char> send, recv; // this rank's input as enqueued; MPI's output
    std::vector<int> counts;               // Ialltoallv / Iallgatherv count and offset arrays (bytes)
    void *dst;                             // where the result goes at completion
    size_t n;                              // COPY: bytes; SUM_*: elements (recv holds nranks blocks of n)
    size_t dst_bytes;                      // the destination's extent (dependency check of later enqueues)
    const char *what;                      // the collective, for messages
    long call;                             // its number on the communicator (1, 2, ...)
};
#endif

struct rlc_comm {
    int rank, nranks;
    char err[512];
#ifdef RLC_COMM_MPI
    MPI_Comm mpi;          // a duplicate of MPI_COMM_WORLD (several ranks only)
    double timeout_s;
    int aborted;
    long calls;            // collectives enqueued so far (the fault injection counts them)
    long fail_at, hang_at; // RLC_EMU_COMM_FAIL / RLC_EMU_COMM_HANG for this rank (0: none)
    std::vector<std::unique_ptr<EmuCollective>> pending; // enqueued, not completed yet, in order
#endif
};

#ifdef RLC_COMM_MPI
// ---- the emulated build with MPI: several ranks, one process each (device memory is host memory) ----
//
// Emulated: the communicator's ranks are MPI_COMM_WORLD's (MPI_Comm_idup: every process of the job creates it;
// when a caller's rank or size differs from MPI's, or the ranks pass different ids, creation fails on every
// rank); every collective is enqueued without blocking (MPI's non-blocking collective) and completed by
// rlc_comm_wait, as NCCL's kernels complete behind the stream's event, so ranks may interleave collectives with
// host MPI calls exactly as they may with NCCL; errors (MPI_ERRORS_RETURN on the communicator) and the timeout
// (creation and rlc_comm_wait poll with timeout_s; a collective whose peers do not join within it fails with
// RLC_COMM_TIMEOUT) abort the communicator: every later call fails at once.
// Reductions are deterministic and the same on every rank: each rank receives every rank's contribution
// (all-gather, or all-to-all for reduce-scatter) and sums them in rank order, s = ((x_0 + x_1) + x_2) + ..., in
// fp32; bf16 data is summed in fp32 and rounded to bf16 (nearest even) once. NCCL's ring/tree orders differ, so
// results match a GPU run within rounding, not bit for bit.
// Streams: a collective is a synchronisation point of its own stream: the stream's queued work (the emulator's
// deferred mode, with what that work waits for) runs at the enqueue, before the input is read. Not emulated: the
// collective's place in its stream's order after that (rlc_comm_wait completes every collective of the
// communicator, whatever the event, and then waits for the event; work queued on the stream behind a collective
// and run before rlc_comm_wait would not see its result), a true abort (MPI cannot cancel a pending collective: it is
// left pending, and the caller is expected to end the job, as host/comm_nccl.c does with MPI_Abort), NCCL's
// in-place and alignment rules, and enqueue-time timeouts (an enqueue never blocks, except that a collective
// whose input overlaps the output of one still pending first completes that one, so that collectives on the same
// stream see each other's results in order).
// Fault injection for tests: RLC_EMU_COMM_FAIL=R:K makes rank R's K-th collective (counted from 1 over every
// enqueue of the communicator) fail with an error; RLC_EMU_COMM_HANG=R:K makes rank R stop in it forever (its
// peers then time out).

static double emu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}


// MPI's message for an error code.
static const char *emu_mpi_error(int rc, char *buf, int len) {
    int got = 0;
    if (MPI_Error_string(rc, buf, &got) != MPI_SUCCESS) snprintf(buf, (size_t)len, "MPI error %d", rc);
    return buf;
}

// Poll one request until it completes (0), MPI reports an error (-1), or the communicator's timeout counted from
// t0 passes (RLC_COMM_TIMEOUT); either failure aborts the communicator. Spins for the first millisecond, then
// naps 50 us between tests (MPI moves this rank's part of the data forward inside MPI_Test).
static int emu_poll(rlc_comm *c, MPI_Request *req, double t0, const char *what) {
    for (;;) {
        int done = 0;
        int rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) {
            char buf[MPI_MAX_ERROR_STRING];
            c->aborted = 1;
            return comm_fail(c, "%s failed: %s", what, emu_mpi_error(rc, buf, sizeof buf));
        }
        if (done) return 0;
        const double w = emu_now() - t0;
        if (c->timeout_s > 0 && w > c->timeout_s) {
            c->aborted = 1;
            comm_fail(c, "%s not complete after %.0f s (timeout); communicator aborted", what, c->timeout_s);
            return RLC_COMM_TIMEOUT;
        }
        if (w >= 1e-3) {
            struct timespec nap = {0, 50 * 1000};
            nanosleep(&nap, NULL);
        }
    }
}

// The result of a completed collective to its destination.
static void emu_finish(rlc_comm *c, EmuCollective &op) {
    const size_t R = (size_t)c->nranks, n = op.n;
    if (op.finish == EmuCollective::COPY) {
        if (n) memcpy(op.dst, op.recv.data(), n);
    } else if (op.finish == EmuCollective::SUM_F32) {
        const float *x = (const float *)op.recv.data(); // (R, n): rank q's contribution in row q
        float *d = (float *)op.dst;
        for (size_t i = 0; i < n; i++) {
            float s = x[i];
            for (size_t q = 1; q < R; q++) s += x[q * n + i];
            d[i] = s;
        }
    } else {
        const __nv_bfloat16 *x = (const __nv_bfloat16 *)op.recv.data(); // (R, n)
        __nv_bfloat16 *d = (__nv_bfloat16 *)op.dst;
        for (size_t i = 0; i < n; i++) {
            float s = __bfloat162float(x[i]);
            for (size_t q = 1; q < R; q++) s += __bfloat162float(x[q * n + i]);
            d[i] = __float2bfloat16_rn(s);
        }
    }
}

// Complete every pending collective, in order (the timeout counts from here).
static int emu_complete(rlc_comm *c) {
    const double t0 = emu_now();
    size_t done = 0;
    int rc = 0;
    for (; done < c->pending.size(); done++) {
        EmuCollective &op = *c->pending[done];
        char what[96];
        snprintf(what, sizeof what, "%s (collective %ld)", op.what, op.call);
        if ((rc = emu_poll(c, &op.req, t0, what)) != 0) break; // aborted: the rest stays pending (the job ends)
        emu_finish(c, op);
    }
    c->pending.erase(c->pending.begin(), c->pending.begin() + (long)done);
    return rc;
}

// RLC_EMU_COMM_FAIL / _HANG = "R:K": *at = K for rank R, 0 for the other ranks. -1 with a message if malformed.
static int emu_fault_env(const char *name, int rank, long *at) {
    *at = 0;
    const char *v = getenv(name);
    if (!v || !*v) return 0;
    int r = -1;
    long k = 0;
    char tail = 0;
    if (sscanf(v, "%d:%ld%c", &r, &k, &tail) != 2 || r < 0 || k < 1) {
        fprintf(stderr, "rlc_comm: %s=\"%s\": expected RANK:CALL (CALL >= 1: the collective's number on the "
                        "communicator)\n", name, v);
        return -1;
    }
    if (r == rank) *at = k;
    return 0;
}

// FNV-1a of the id: the ranks compare it to check that they were given the same one.
static unsigned long long emu_id_hash(const unsigned char *id) {
    unsigned long long h = 1469598103934665603ull;
    for (int i = 0; i < RLC_COMM_ID_BYTES; i++) h = (h ^ id[i]) * 1099511628211ull;
    return h;
}

static rlc_comm *emu_create(int nranks, int rank, const unsigned char *id, double timeout_s) {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (!init || fin) {
        fprintf(stderr, "rlc_comm: %d ranks requested; this build emulates NCCL over MPI, but MPI is %s (start the "
                        "job with mpirun: rlc_dist_init initialises MPI)\n",
                nranks, fin ? "finalized" : "not initialised");
        return nullptr;
    }
    rlc_comm *c = new rlc_comm();
    c->rank = rank;
    c->nranks = nranks;
    c->timeout_s = timeout_s;
    c->mpi = MPI_COMM_NULL;
    if (emu_fault_env("RLC_EMU_COMM_FAIL", rank, &c->fail_at) != 0 ||
        emu_fault_env("RLC_EMU_COMM_HANG", rank, &c->hang_at) != 0) {
        delete c;
        return nullptr;
    }
    MPI_Request req;
    int rc = MPI_Comm_idup(MPI_COMM_WORLD, &c->mpi, &req);
    if (rc == MPI_SUCCESS) rc = emu_poll(c, &req, emu_now(), "MPI_Comm_idup (the other ranks must join)");
    else comm_fail(c, "MPI_Comm_idup failed");
    if (rc != 0) {
        fprintf(stderr, "rlc_comm: rank %d: %s\n", rank, c->err);
        delete c; // the duplicate, if any, is left to MPI_Abort
        return nullptr;
    }
    MPI_Comm_set_errhandler(c->mpi, MPI_ERRORS_RETURN);
    // every rank must agree: its rank and size are MPI's, and its id is rank 0's (max of h and of ~h: min and max)
    int wr = 0, ws = 0;
    MPI_Comm_rank(c->mpi, &wr);
    MPI_Comm_size(c->mpi, &ws);
    const unsigned long long h = emu_id_hash(id);
    unsigned long long mine[3] = {wr != rank || ws != nranks ? 1ull : 0ull, h, ~h}, all[3] = {0, 0, 0};
    rc = MPI_Iallreduce(mine, all, 3, MPI_UNSIGNED_LONG_LONG, MPI_MAX, c->mpi, &req);
    if (rc == MPI_SUCCESS) rc = emu_poll(c, &req, emu_now(), "the ranks' agreement on the communicator");
    else comm_fail(c, "MPI_Iallreduce failed");
    if (rc == 0 && mine[0])
        rc = comm_fail(c, "rank %d of %d requested where MPI has rank %d of %d (the emulated NCCL's ranks are "
                         "MPI_COMM_WORLD's)", rank, nranks, wr, ws);
    else if (rc == 0 && all[0])
        rc = comm_fail(c, "another rank asked for a rank or size that is not its MPI rank or size");
    if (rc == 0 && (all[1] != h || ~all[2] != h))
        rc = comm_fail(c, "the ranks were given different ids (rank 0 creates it and sends it to the others)");
    if (rc != 0) {
        fprintf(stderr, "rlc_comm: rank %d: %s\n", rank, c->err);
        if (!c->aborted) MPI_Comm_free(&c->mpi);
        delete c;
        return nullptr;
    }
    return c;
}

// The common start of an enqueue: the stream's queued work (the emulator's deferred mode), with what it waits
// for, runs first, since the collective reads its input at the call; then a usable communicator, the fault
// injection, and the order of collectives on the stream: an input that overlaps a pending collective's output
// waits for it.
static int emu_begin(rlc_comm *c, const char *what, const void *in, size_t in_bytes, void *stream) {
    emu::run_stream((cudaStream_t)stream);
    if (c->aborted) return comm_fail(c, "%s: the communicator was aborted after an earlier error", what);
    c->calls++;
    if (c->calls == c->fail_at) {
        c->aborted = 1;
        return comm_fail(c, "%s failed: injected failure of collective %ld (RLC_EMU_COMM_FAIL=%d:%ld)", what, c->calls,
                        c->rank, c->fail_at);
    }
    if (c->calls == c->hang_at) {
        fprintf(stderr, "rlc_comm: rank %d: hanging in %s, collective %ld (RLC_EMU_COMM_HANG)\n", c->rank, what,
                c->calls);
        fflush(stderr);
        for (;;) {
            struct timespec nap = {1, 0};
            nanosleep(&nap, NULL);
        }
    }
    const char *a = (const char *)in;
    for (const auto &p : c->pending) {
        const char *b = (const char *)p->dst;
        if (in_bytes && p->dst_bytes && a < b + p->dst_bytes && b < a + in_bytes) return emu_complete(c);
    }
    return 0;
}

// Byte counts and offsets for MPI (int).
static int emu_int(rlc_comm *c, size_t v, int *out, const char *what) {
    if (v > (size_t)INT_MAX)
        return comm_fail(c, "%s: %zu bytes exceed MPI's int count (the emulated NCCL's limit)", what, v);
    *out = (int)v;
    return 0;
}

// A collective started by MPI (rc) joins the pending ones, or fails the call.
static int emu_started(rlc_comm *c, std::unique_ptr<EmuCollective> op, int rc, const char *mpi_call,
                       const char *what) {
    if (rc != MPI_SUCCESS) {
        char buf[MPI_MAX_ERROR_STRING];
        c->aborted = 1;
        return comm_fail(c, "%s (%s) failed: %s", mpi_call, what, emu_mpi_error(rc, buf, sizeof buf));
    }
    op->what = what;
    op->call = c->calls;
    c->pending.push_back(std::move(op));
    return 0;
}

// recv (n) = sum over ranks of send (n); esize 4 (fp32) or 2 (bf16).
static int emu_allreduce(rlc_comm *c, const void *send, void *recv, size_t n, size_t esize, const char *what,
                         void *stream) {
    int cnt = 0, total = 0; // total: the receive buffer must be addressable with int offsets too
    if (emu_begin(c, what, send, n * esize, stream) != 0 || emu_int(c, n * esize, &cnt, what) != 0 ||
        emu_int(c, n * esize * (size_t)c->nranks, &total, what) != 0)
        return -1;
    std::unique_ptr<EmuCollective> op(new EmuCollective());
    op->finish = esize == 4 ? EmuCollective::SUM_F32 : EmuCollective::SUM_BF16;
    op->send.assign((const unsigned char *)send, (const unsigned char *)send + n * esize);
    op->recv.resize(n * esize * (size_t)c->nranks);
    op->dst = recv;
    op->n = n;
    op->dst_bytes = n * esize;
    int rc = MPI_Iallgather(op->send.data(), cnt, MPI_BYTE, op->recv.data(), cnt, MPI_BYTE, c->mpi, &op->req);
    return emu_started(c, std::move(op), rc, "MPI_Iallgather", what);
}

static int emu_broadcast(rlc_comm *c, void *buf, size_t bytes, int root, void *stream) {
    const char *what = "broadcast";
    int cnt = 0;
    if (emu_begin(c, what, buf, bytes, stream) != 0 || emu_int(c, bytes, &cnt, what) != 0) return -1;
    if (root < 0 || root >= c->nranks) {
        c->aborted = 1;
        return comm_fail(c, "broadcast: root %d out of range (%d ranks)", root, c->nranks);
    }
    std::unique_ptr<EmuCollective> op(new EmuCollective());
    op->finish = EmuCollective::COPY;
    op->recv.resize(bytes);
    if (c->rank == root && bytes) memcpy(op->recv.data(), buf, bytes);
    op->dst = buf;
    op->n = op->dst_bytes = bytes;
    int rc = MPI_Ibcast(op->recv.data(), cnt, MPI_BYTE, root, c->mpi, &op->req);
    return emu_started(c, std::move(op), rc, "MPI_Ibcast", what);
}

static int emu_allgather(rlc_comm *c, const void *send, void *recv, size_t bytes, void *stream) {
    const char *what = "all-gather";
    int cnt = 0, total = 0;
    if (emu_begin(c, what, send, bytes, stream) != 0 || emu_int(c, bytes, &cnt, what) != 0 ||
        emu_int(c, bytes * (size_t)c->nranks, &total, what) != 0)
        return -1;
    std::unique_ptr<EmuCollective> op(new EmuCollective());
    op->finish = EmuCollective::COPY;
    op->send.assign((const unsigned char *)send, (const unsigned char *)send + bytes);
    op->recv.resize((size_t)total);
    op->dst = recv;
    op->n = op->dst_bytes = (size_t)total;
    int rc = MPI_Iallgather(op->send.data(), cnt, MPI_BYTE, op->recv.data(), cnt, MPI_BYTE, c->mpi, &op->req);
    return emu_started(c, std::move(op), rc, "MPI_Iallgather", what);
}

// Reduce-scatter by all-to-all: rank q's part of send (send_n) is send[part_lo[q], part_lo[q] + part_n[q]) on
// every rank; each rank receives its part from every rank, and sums them in rank order into out (part_n[rank]).
static int emu_reduce_scatter(rlc_comm *c, const float *send, size_t send_n, const size_t *part_lo,
                              const size_t *part_n, float *out, const char *what, void *stream) {
    const int R = c->nranks;
    const size_t mine = part_n[c->rank];
    if (emu_begin(c, what, send, send_n * 4, stream) != 0) return -1;
    std::unique_ptr<EmuCollective> op(new EmuCollective());
    op->finish = EmuCollective::SUM_F32;
    op->send.assign((const unsigned char *)send, (const unsigned char *)(send + send_n));
    op->recv.resize(mine * 4 * (size_t)R);
    op->counts.resize(4 * (size_t)R); // send counts, send offsets, receive counts, receive offsets
    int *scnt = op->counts.data(), *soff = scnt + R, *rcnt = soff + R, *roff = rcnt + R;
    for (int q = 0; q < R; q++)
        if (emu_int(c, part_n[q] * 4, &scnt[q], what) != 0 || emu_int(c, part_lo[q] * 4, &soff[q], what) != 0 ||
            emu_int(c, mine * 4, &rcnt[q], what) != 0 || emu_int(c, mine * 4 * (size_t)q, &roff[q], what) != 0)
            return -1;
    op->dst = out;
    op->n = mine;
    op->dst_bytes = mine * 4;
    int rc = MPI_Ialltoallv(op->send.data(), scnt, soff, MPI_BYTE, op->recv.data(), rcnt, roff, MPI_BYTE, c->mpi,
                            &op->req);
    return emu_started(c, std::move(op), rc, "MPI_Ialltoallv", what);
}

static int emu_allgather_shards(rlc_comm *c, float *x, const size_t *starts, void *stream) {
    const char *what = "all-gather of shards";
    const int R = c->nranks;
    const size_t lo = starts[c->rank], hi = starts[c->rank + 1], n = starts[R];
    if (emu_begin(c, what, x + lo, (hi - lo) * 4, stream) != 0) return -1;
    std::unique_ptr<EmuCollective> op(new EmuCollective());
    op->finish = EmuCollective::COPY;
    op->send.assign((const unsigned char *)(x + lo), (const unsigned char *)(x + hi));
    op->recv.resize(n * 4);
    op->counts.resize(2 * (size_t)R);
    int *cnt = op->counts.data(), *off = cnt + R, total = 0;
    for (int q = 0; q < R; q++)
        if (emu_int(c, (starts[q + 1] - starts[q]) * 4, &cnt[q], what) != 0 ||
            emu_int(c, starts[q] * 4, &off[q], what) != 0)
            return -1;
    if (emu_int(c, n * 4, &total, what) != 0) return -1;
    op->dst = x;
    op->n = op->dst_bytes = n * 4;
    int rc = MPI_Iallgatherv(op->send.data(), cnt[c->rank], MPI_BYTE, op->recv.data(), cnt, off, MPI_BYTE, c->mpi,
                             &op->req);
    return emu_started(c, std::move(op), rc, "MPI_Iallgatherv", what);
}
#endif // RLC_COMM_MPI

extern "C" int rlc_comm_get_unique_id(unsigned char id[RLC_COMM_ID_BYTES]) {
    memset(id, 0, RLC_COMM_ID_BYTES);
#ifdef RLC_COMM_MPI
    // unique enough to tell two communicators (or a rank that was not sent the id) apart
    static unsigned long long serial = 0;
    unsigned long long v[3] = {(unsigned long long)getpid(), (unsigned long long)(emu_now() * 1e9), ++serial};
    memcpy(id, "rlc-emu-mpi", 11);
    memcpy(id + 16, v, sizeof v);
#endif
    return 0;
}
extern "C" rlc_comm *rlc_comm_create(int nranks, int rank, const unsigned char *id, double timeout_s) {
#ifdef RLC_COMM_MPI
    if (nranks > 1) return emu_create(nranks, rank, id, timeout_s);
#else
    (void)id, (void)timeout_s;
#endif
    if (nranks != 1 || rank != 0) {
        fprintf(stderr, "rlc_comm: %d ranks requested, but this build has no NCCL (single rank only)\n", nranks);
        return nullptr;
    }
    rlc_comm *c = new rlc_comm();
    c->nranks = 1;
    return c;
}
extern "C" void rlc_comm_destroy(rlc_comm *c) {
    if (!c) return;
#ifdef RLC_COMM_MPI
    int fin = 0;
    if (c->nranks > 1 && !c->aborted && MPI_Finalized(&fin) == MPI_SUCCESS && !fin) {
        // collectives still pending complete first (with the timeout), as ncclCommFinalize flushes them
        if (emu_complete(c) != 0) fprintf(stderr, "rlc_comm: rank %d: %s\n", c->rank, c->err);
        if (!c->aborted) MPI_Comm_free(&c->mpi);
    }
#endif
    delete c;
}
extern "C" const char *rlc_comm_error(const rlc_comm *c) { return c->err; }

static int comm_copy(rlc_comm *c, void *dst, const void *src, size_t bytes, void *stream) {
    if (dst == src || bytes == 0) return 0;
    cudaError_t e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, (cudaStream_t)stream);
    if (e == cudaSuccess) return 0;
    snprintf(c->err, sizeof c->err, "cudaMemcpyAsync failed: %s", cudaGetErrorString(e));
    return -1;
}

#ifdef RLC_COMM_MPI
#define EMU_MPI(c, call) \
    if ((c)->nranks > 1) return call
#else
#define EMU_MPI(c, call)
#endif

extern "C" int rlc_comm_allreduce_sum_f32(rlc_comm *c, const float *send, float *recv, size_t n, void *stream) {
    EMU_MPI(c, emu_allreduce(c, send, recv, n, 4, "all-reduce", stream));
    return comm_copy(c, recv, send, n * 4, stream);
}
extern "C" int rlc_comm_allreduce_sum_bf16(rlc_comm *c, const void *send, void *recv, size_t n, void *stream) {
    EMU_MPI(c, emu_allreduce(c, send, recv, n, 2, "all-reduce (bf16)", stream));
    return comm_copy(c, recv, send, n * 2, stream);
}
extern "C" int rlc_comm_broadcast(rlc_comm *c, void *buf, size_t bytes, int root, void *stream) {
    EMU_MPI(c, emu_broadcast(c, buf, bytes, root, stream));
    (void)buf, (void)bytes, (void)stream;
    if (root == 0) return 0;
    snprintf(c->err, sizeof c->err, "broadcast: root %d out of range (1 rank)", root);
    return -1;
}
extern "C" int rlc_comm_allgather(rlc_comm *c, const void *send, void *recv, size_t bytes, void *stream) {
    EMU_MPI(c, emu_allgather(c, send, recv, bytes, stream));
    return comm_copy(c, recv, send, bytes, stream);
}
extern "C" int rlc_comm_reduce_scatter_sum_f32(rlc_comm *c, const float *send, float *recv, size_t n, void *stream) {
#ifdef RLC_COMM_MPI
    if (c->nranks > 1) { // rank q's slice is send[q n, (q + 1) n)
        std::vector<size_t> lo((size_t)c->nranks), cnt((size_t)c->nranks, n);
        for (int q = 0; q < c->nranks; q++) lo[(size_t)q] = (size_t)q * n;
        return emu_reduce_scatter(c, send, n * (size_t)c->nranks, lo.data(), cnt.data(), recv, "reduce-scatter", stream);
    }
#endif
    return comm_copy(c, recv, send, n * 4, stream);
}
extern "C" int rlc_comm_reduce_scatter_range_f32(rlc_comm *c, const float *x, float *out, const size_t *starts,
                                                 size_t lo, size_t hi, void *stream) {
#ifdef RLC_COMM_MPI
    if (c->nranks > 1) { // each rank's part of [lo, hi): [a_q, b_q), read from x + lo at offset a_q - lo
        std::vector<size_t> off((size_t)c->nranks), cnt((size_t)c->nranks);
        for (int q = 0; q < c->nranks; q++) {
            const size_t a = lo > starts[q] ? lo : starts[q], b = hi < starts[q + 1] ? hi : starts[q + 1];
            off[(size_t)q] = b > a ? a - lo : 0;
            cnt[(size_t)q] = b > a ? b - a : 0;
        }
        const size_t a = lo > starts[c->rank] ? lo : starts[c->rank];
        return emu_reduce_scatter(c, x + lo, hi > lo ? hi - lo : 0, off.data(), cnt.data(),
                                  out + (cnt[(size_t)c->rank] ? a - starts[c->rank] : 0),
                                  "reduce-scatter (range)", stream);
    }
#endif
    // one rank owns [starts[0], starts[1]): the part of [lo, hi) inside it, at shard-local offsets
    const size_t a = lo > starts[0] ? lo : starts[0], b = hi < starts[1] ? hi : starts[1];
    return b > a ? comm_copy(c, out + (a - starts[0]), x + a, (b - a) * 4, stream) : 0;
}
extern "C" int rlc_comm_allgather_shards_f32(rlc_comm *c, float *x, const size_t *starts, void *stream) {
    EMU_MPI(c, emu_allgather_shards(c, x, starts, stream));
    (void)c, (void)x, (void)starts, (void)stream; // one rank: every shard is already in place
    return 0;
}
extern "C" int rlc_comm_wait(rlc_comm *c, void *event) {
#ifdef RLC_COMM_MPI // every collective of the communicator (see above: the event orders nothing on MPI's side)
    if (c->nranks > 1) {
        const int rc = emu_complete(c);
        if (rc != 0) return rc; // -1, or RLC_COMM_TIMEOUT
    }
#endif
    cudaError_t e = cudaEventSynchronize((cudaEvent_t)event); // the GPU's (the emulator's queued) work up to it
    if (e == cudaSuccess) return 0;
    snprintf(c->err, sizeof c->err, "cudaEventSynchronize: %s", cudaGetErrorString(e));
    return -1;
}
#endif

extern "C" int rlc_comm_rank(const rlc_comm *c) { return c->rank; }
extern "C" int rlc_comm_nranks(const rlc_comm *c) { return c->nranks; }

__attribute__((format(printf, 2, 3))) static int comm_fail(rlc_comm *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    return -1;
}
