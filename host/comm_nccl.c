// host/comm_nccl.c: the GPU path of the process group (see include/rlc/comm.h). Each rank picks its GPU by its
// node-local rank and joins an NCCL communicator whose unique id rank 0 broadcasts over MPI; on top of it, the
// device collectives of training (rlc_dist_dev): gradient rounds in fixed buckets on a side stream, overlapped
// with the backward; ZeRO-1's reduce-scatter and all-gather; errors and timeouts that end the job with the rank
// and the collective. The NCCL calls themselves are kernels/cuda/rlc_comm.h's.
//
// Compiled for real in the rlc_dist_nccl library (RLC_DIST_NCCL: CUDA and NCCL found) and in the emulator test
// tests/emu/test_grad_overlap.cpp (one rank: rlc_comm's copy fallback, the emulated CUDA runtime); in rlc_core
// (the host glob) it is empty.
//
// Streams. The collectives run on a side stream created non-blocking, so that it does not synchronise implicitly
// with the legacy default stream (the CUDA backend's compute stream unless rlc_ops_cuda_set_stream changed it).
// Before a bucket is launched the side stream waits on an event recorded on the compute stream (the work that
// finished those gradients); after a round the host polls a completion event of the side stream (rlc_comm_wait:
// NCCL errors, the timeout) and the compute stream waits on it, so the optimizer step reads the summed gradients.
#include "rlc/comm.h"

#ifdef RLC_DIST_NCCL
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops_cuda.h"
#include "rlc/util.h"
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

// ---- the device collectives ----

typedef struct nccl_dev {
    rlc_dist_dev pub;
    rlc_dist dist;          // a copy of the group (rank, size, MPI state) for rlc_dist_abort
    rlc_comm *comm;
    cudaStream_t side;      // the collectives' stream
    cudaEvent_t ready, done;
    size_t *starts;         // (size + 1) shard offsets of a buffer of starts_n elements (rlc_dist_shard)
    size_t starts_n;
    // the gradient round in flight
    int active;
    rlc_f *grads;           // (n) the flat gradients being reduced
    size_t n, n_buckets, launched; // buckets k = n_buckets - 1, n_buckets - 2, ... are launched in this order
    rlc_f *shard;           // ZeRO-1: (shard_cap) this rank's summed shard, device memory
    size_t shard_cap;
    rlc_dist_dev_stats st;
} nccl_dev;

static cudaStream_t compute_stream(void) { return (cudaStream_t)rlc_ops_cuda_stream(); }

static _Noreturn void dev_fail(nccl_dev *s, int rc, const char *what) {
    if (rc == RLC_COMM_TIMEOUT)
        rlc_dist_abort(&s->dist, 124,
                       "NCCL %s has not completed after %.0f s (RLC_COLLECTIVE_TIMEOUT): another rank failed, hung or "
                       "is far behind; aborting the job (%s)",
                       what, s->dist.timeout_s, rlc_comm_error(s->comm));
    rlc_dist_abort(&s->dist, 1, "NCCL %s: %s", what, rlc_comm_error(s->comm));
}

static void cuda_ok(nccl_dev *s, cudaError_t e, const char *what) {
    if (e != cudaSuccess) rlc_dist_abort(&s->dist, 1, "NCCL collectives: %s failed: %s", what, cudaGetErrorString(e));
}

// Shard offsets for a buffer of n elements, the same split as the scheduler's (rlc_dist_shard).
static void shards_for(nccl_dev *s, size_t n) {
    if (s->starts_n == n) return;
    for (int r = 0; r < s->dist.size; r++) {
        size_t lo, hi;
        rlc_dist_shard(n, s->dist.size, r, &lo, &hi);
        s->starts[r] = lo;
    }
    s->starts[s->dist.size] = n;
    s->starts_n = n;
}

static void round_begin(nccl_dev *s, rlc_f *grads, size_t n) {
    if (s->active) {
        if (grads != s->grads || n != s->n)
            rlc_dist_abort(&s->dist, 1, "NCCL gradient round: a round over another buffer (%zu elements) is still in "
                                        "flight (internal error)", s->n);
        return;
    }
    s->active = 1;
    s->grads = grads;
    s->n = n;
    s->n_buckets = (n + s->pub.bucket_elems - 1) / s->pub.bucket_elems;
    s->launched = 0;
    if (!s->pub.zero1) return;
    shards_for(s, n);
    size_t mine = s->starts[s->dist.rank + 1] - s->starts[s->dist.rank];
    if (mine > s->shard_cap) {
        if (s->shard) cuda_ok(s, cudaFree(s->shard), "cudaFree of the gradient shard");
        s->shard = NULL;
        s->shard_cap = 0;
        size_t bytes = mine * sizeof(rlc_f);
        if (cudaMalloc((void **)&s->shard, bytes) != cudaSuccess) {
            size_t free_b = 0, total_b = 0;
            (void)cudaGetLastError();
            cudaMemGetInfo(&free_b, &total_b);
            rlc_dist_abort(&s->dist, 1, "out of device memory: the ZeRO-1 gradient shard needs %zu bytes, %zu bytes "
                                        "free of %zu", bytes, free_b, total_b);
        }
        s->shard_cap = mine;
    }
}

// Launch, in order, every bucket not launched yet whose elements all lie in [first, n).
static void launch_from(nccl_dev *s, size_t first, int overlapped) {
    const size_t B = s->pub.bucket_elems, K = s->n_buckets;
    if (s->launched >= K || (K - 1 - s->launched) * B < first) return;
    // the compute stream's work so far (which finished these gradients) before the collectives
    cuda_ok(s, cudaEventRecord(s->ready, compute_stream()), "cudaEventRecord (gradients ready)");
    cuda_ok(s, cudaStreamWaitEvent(s->side, s->ready, 0), "cudaStreamWaitEvent (side stream)");
    while (s->launched < K) {
        const size_t k = K - 1 - s->launched, lo = k * B, hi = lo + B < s->n ? lo + B : s->n;
        if (lo < first) break;
        int rc = s->pub.zero1
                     ? rlc_comm_reduce_scatter_range_f32(s->comm, s->grads, s->shard, s->starts, lo, hi, s->side)
                     : rlc_comm_allreduce_sum_f32(s->comm, s->grads + lo, s->grads + lo, hi - lo, s->side);
        if (rc != 0) {
            char what[200];
            snprintf(what, sizeof what, "%s of the gradients (bucket %zu of %zu, elements [%zu, %zu))",
                     s->pub.zero1 ? "reduce-scatter" : "all-reduce", K - k, K, lo, hi);
            dev_fail(s, rc, what);
        }
        s->launched++;
        s->st.buckets++;
        if (overlapped) s->st.buckets_overlapped++;
    }
}

// Wait (host, with the timeout) for everything on the side stream; then order the compute stream after it.
static void side_wait(nccl_dev *s, const char *what) {
    double t0 = rlc_now();
    cuda_ok(s, cudaEventRecord(s->done, s->side), "cudaEventRecord (collectives done)");
    int rc = rlc_comm_wait(s->comm, s->done);
    s->st.wait_s += rlc_now() - t0;
    if (rc != 0) dev_fail(s, rc, what);
    cuda_ok(s, cudaStreamWaitEvent(compute_stream(), s->done, 0), "cudaStreamWaitEvent (compute stream)");
}

static void round_finish(nccl_dev *s, rlc_f *grads, size_t n) {
    round_begin(s, grads, n);
    launch_from(s, 0, 0);
    side_wait(s, s->pub.zero1 ? "reduce-scatter of the gradients" : "all-reduce of the gradients");
    s->active = 0;
    s->st.rounds++;
}

static void dev_grads_ready(void *ctx, rlc_f *grads, size_t n, size_t first) {
    nccl_dev *s = ctx;
    if (!s->pub.overlap) return;
    round_begin(s, grads, n);
    launch_from(s, first, 1);
}

static void dev_allreduce_grads(void *ctx, rlc_f *grads, size_t n) {
    nccl_dev *s = ctx;
    if (s->pub.zero1) rlc_dist_abort(&s->dist, 1, "NCCL: all-reduce of the gradients requested in a ZeRO-1 job "
                                                  "(internal error)");
    round_finish(s, grads, n);
}

static void dev_reduce_scatter_grads(void *ctx, const rlc_f *grads, rlc_f *out, size_t n) {
    nccl_dev *s = ctx;
    if (!s->pub.zero1) rlc_dist_abort(&s->dist, 1, "NCCL: reduce-scatter of the gradients requested in a job "
                                                   "without ZeRO-1 (internal error)");
    round_finish(s, (rlc_f *)grads, n); // grads is only read (the buckets reduce into the shard buffer)
    size_t mine = s->starts[s->dist.rank + 1] - s->starts[s->dist.rank];
    if (mine)
        cuda_ok(s, cudaMemcpyAsync(out, s->shard, mine * sizeof(rlc_f), cudaMemcpyDeviceToDevice, compute_stream()),
                "cudaMemcpyAsync of the gradient shard");
}

static void dev_discard_grads(void *ctx, rlc_f *grads, size_t n) { round_finish(ctx, grads, n); }

static void dev_allgather_shards(void *ctx, rlc_f *x, size_t n) {
    nccl_dev *s = ctx;
    if (s->active) rlc_dist_abort(&s->dist, 1, "NCCL: all-gather while a gradient round is in flight (internal error)");
    shards_for(s, n);
    cuda_ok(s, cudaEventRecord(s->ready, compute_stream()), "cudaEventRecord (shards ready)");
    cuda_ok(s, cudaStreamWaitEvent(s->side, s->ready, 0), "cudaStreamWaitEvent (side stream)");
    int rc = rlc_comm_allgather_shards_f32(s->comm, x, s->starts, s->side);
    if (rc != 0) dev_fail(s, rc, "all-gather of the ZeRO-1 shards");
    side_wait(s, "all-gather of the ZeRO-1 shards");
}

static void dev_stats(void *ctx, rlc_dist_dev_stats *st) { *st = ((nccl_dev *)ctx)->st; }

// Environment knobs: RLC_NCCL_BUCKET_MB (a positive number of MiB, fractions allowed), RLC_NCCL_OVERLAP (0 or 1).
static int read_env(size_t *bucket_elems, int *overlap, char *err, size_t errlen) {
    const char *b = getenv("RLC_NCCL_BUCKET_MB"), *o = getenv("RLC_NCCL_OVERLAP");
    double mb = 25.0;
    if (b && *b) {
        char *end;
        mb = strtod(b, &end);
        if (*end || !(mb > 0) || mb > 1e6)
            return rlc_errf(err, errlen, "RLC_NCCL_BUCKET_MB=\"%s\": expected a positive number of MiB", b);
    }
    double elems = mb * 1048576.0 / (double)sizeof(rlc_f);
    *bucket_elems = elems < 1 ? 1 : (size_t)elems;
    *overlap = 1;
    if (o && *o) {
        if (strcmp(o, "0") && strcmp(o, "1"))
            return rlc_errf(err, errlen, "RLC_NCCL_OVERLAP=\"%s\": expected 0 or 1", o);
        *overlap = o[0] == '1';
    }
    return 0;
}

int rlc_dist_nccl_attach(rlc_dist *d, int zero1, char *err, size_t errlen) {
    size_t bucket = 0;
    int overlap = 1;
    if (read_env(&bucket, &overlap, err, errlen) != 0) return -1;
    rlc_comm *c = rlc_dist_nccl_create(d, NULL);
    if (!c) return rlc_errf(err, errlen, "NCCL setup failed on rank %d (see the message above)", d->rank);
    nccl_dev *s = rlc_calloc(1, sizeof *s);
    s->dist = *d;
    s->dist.dev = NULL;
    s->comm = c;
    s->starts = rlc_calloc((size_t)d->size + 1, sizeof(size_t));
    s->starts_n = (size_t)-1;
    cudaError_t e = cudaStreamCreateWithFlags(&s->side, cudaStreamNonBlocking);
    if (e == cudaSuccess) e = cudaEventCreateWithFlags(&s->ready, cudaEventDisableTiming);
    if (e == cudaSuccess) e = cudaEventCreateWithFlags(&s->done, cudaEventDisableTiming);
    if (e != cudaSuccess) {
        rlc_comm_destroy(c);
        free(s->starts);
        free(s);
        return rlc_errf(err, errlen, "NCCL setup on rank %d: cannot create the collectives' stream and events: %s",
                        d->rank, cudaGetErrorString(e));
    }
    s->pub = (rlc_dist_dev){.ctx = s, .zero1 = zero1, .bucket_elems = bucket, .overlap = overlap,
                            .grads_ready = dev_grads_ready, .allreduce_grads = dev_allreduce_grads,
                            .reduce_scatter_grads = dev_reduce_scatter_grads, .allgather_shards = dev_allgather_shards,
                            .discard_grads = dev_discard_grads, .stats = dev_stats};
    d->dev = &s->pub;
    return 0;
}

void rlc_dist_nccl_detach(rlc_dist *d) {
    if (!d->dev) return;
    nccl_dev *s = d->dev->ctx;
    d->dev = NULL;
    // collectives still in flight (a round abandoned without discard_grads): wait for them, with the timeout
    if (s->active) side_wait(s, "gradient collectives in flight at the end of the job");
    cudaStreamDestroy(s->side);
    cudaEventDestroy(s->ready);
    cudaEventDestroy(s->done);
    if (s->shard) cudaFree(s->shard);
    rlc_comm_destroy(s->comm);
    free(s->starts);
    free(s);
}

#else
typedef int rlc_comm_nccl_not_built; // no CUDA/NCCL in this target: nothing to compile
#endif
