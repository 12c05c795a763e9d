// include/rlc/comm.h: the process group of a multi-rank job (rlc_dist): rank, size and node-local rank, and the
// host-side collectives the trainer needs (all-reduce of double/float/rlc_f arrays, broadcast, all-gather(v) of
// bytes, reduce-scatter / all-gather of a flat parameter-sized buffer, barrier), built on MPI. A build without
// MPI, or a process started without an MPI launcher, is a group of one in which every collective is a no-op.
//
// Naming: `rlc_comm` is the CUDA backend's NCCL communicator over device buffers (kernels/cuda/rlc_comm.h);
// this module is the host process group that launches and coordinates it (see host/comm_nccl.c), and whose
// rlc_dist.dev carries a device backend's gradient and weight collectives over it (rlc_dist_dev, below).
//
// Failures. rlc_dist_abort prints "rlc: rank R: <message>" and ends every rank (MPI_Abort). Every collective
// runs under a watchdog: if it has not completed after timeout seconds (env RLC_COLLECTIVE_TIMEOUT, default
// 600), the rank prints which collective it was waiting in and aborts the job, so that a rank that died or hung
// never leaves the others blocked forever. MPI errors are fatal (MPI's default handler).
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "rlc/ops.h"

typedef enum { RLC_RED_SUM = 0, RLC_RED_MAX, RLC_RED_MIN } rlc_reduce_op;

struct rlc_dist_dev;

typedef struct rlc_dist {
    int rank, size;             // global rank and number of ranks (0 / 1 for a single process)
    int local_rank, local_size; // rank among the processes of this node (selects the GPU) and their number
    int mpi;                    // 1: collectives go through MPI (MPI initialised by rlc_dist_init)
    double timeout_s;           // collective watchdog (seconds; <= 0: no watchdog)
    void *impl;                 // MPI communicator and watchdog state (host/comm.c)
    // The large collectives on device memory (NCCL; rlc_dist_nccl_attach), NULL on CPU ranks and when the job
    // has none: then a device backend's buffers are staged through host memory to MPI (host/scheduler.c).
    const struct rlc_dist_dev *dev;
} rlc_dist;

// 1 when this build has MPI support (RLC_MPI).
int rlc_dist_have_mpi(void);
// 1 when the process was started by an MPI launcher (mpirun/mpiexec, srun with PMI/PMIx): the environment
// names a rank. Without a launcher rlc never initialises MPI, so `rlc train` behaves as a plain program.
int rlc_dist_launched(void);
// A group of one (no MPI).
void rlc_dist_single(rlc_dist *d);
// Under a launcher (and with MPI in the build): MPI_Init_thread, rank/size, local rank via
// MPI_Comm_split_type(MPI_COMM_TYPE_SHARED), the watchdog. Otherwise a group of one. Returns 0, or -1 with a
// message in err (e.g. launched by mpirun but built without MPI, with more than one rank).
int rlc_dist_init(rlc_dist *d, int *argc, char ***argv, char *err, size_t errlen);
// MPI_Finalize (when initialised here) and the watchdog's end. Safe on a group of one.
void rlc_dist_finalize(rlc_dist *d);

// Print "rlc: rank R: <message>" (just "rlc: <message>" for a group of one) and end the whole job with
// exit code `code` (MPI_Abort, or exit() for a group of one).
_Noreturn void rlc_dist_abort(const rlc_dist *d, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

// ---- collectives (every rank of the group must call them in the same order) ----
void rlc_dist_barrier(const rlc_dist *d);
// x (n) = op over ranks of x (n), in place.
void rlc_dist_allreduce_d(const rlc_dist *d, double *x, size_t n, rlc_reduce_op op);
void rlc_dist_allreduce_f(const rlc_dist *d, float *x, size_t n, rlc_reduce_op op);
void rlc_dist_allreduce_i64(const rlc_dist *d, int64_t *x, size_t n, rlc_reduce_op op);
// Sum of a large rlc_f buffer (e.g. the flat gradients) in buckets of bucket_bytes (0: 4 MiB), in place.
void rlc_dist_allreduce_sum_bucketed(const rlc_dist *d, rlc_f *x, size_t n, size_t bucket_bytes);
// buf (nbytes) of rank root to every rank.
void rlc_dist_bcast(const rlc_dist *d, void *buf, size_t nbytes, int root);
// Concatenation in rank order of every rank's send (nbytes, may differ per rank); returns a malloc'd buffer
// (free it) of *total bytes; counts (size entries, may be NULL) receives each rank's byte count.
void *rlc_dist_allgatherv(const rlc_dist *d, const void *send, size_t nbytes, size_t *counts, size_t *total);

// ---- a flat buffer of n elements split into contiguous shards, rank r owning [lo_r, hi_r) ----
// lo = r * n / size, hi = (r + 1) * n / size.
void rlc_dist_shard(size_t n, int size, int r, size_t *lo, size_t *hi);
// Sum over ranks of x (n), this rank receiving its shard in out (hi - lo); x is left unchanged. Bucketed like
// rlc_dist_allreduce_sum_bucketed.
void rlc_dist_reduce_scatter_sum(const rlc_dist *d, const rlc_f *x, rlc_f *out, size_t n, size_t bucket_bytes);
// Every rank's shard of x (n) to every rank, in place: on entry x[lo, hi) holds this rank's shard.
void rlc_dist_allgather_shards(const rlc_dist *d, rlc_f *x, size_t n);

// ---- GPU ranks: NCCL (host/comm_nccl.c, library rlc_dist_nccl, built when CUDA and NCCL are found; MPI is
// needed for more than one rank) ----
struct rlc_comm; // the NCCL communicator of kernels/cuda/rlc_comm.h
// Select this rank's GPU (local_rank modulo the visible devices; *device_out receives it), then create the NCCL
// communicator of the whole group: rank 0 makes the unique id, rlc_dist_bcast sends it to every rank. Collective.
// Returns NULL with a message on stderr on failure.
struct rlc_comm *rlc_dist_nccl_create(const rlc_dist *d, int *device_out);

// The gradient and weight collectives of a job on a device backend, on device memory (rlc_dist.dev). Every
// rank issues the same NCCL calls in the same order; an NCCL error or a collective that outlives
// rlc_dist.timeout_s ends the job through rlc_dist_abort with the rank, the collective and NCCL's reason.
//
// Gradients are reduced in rounds, one per optimizer step, in fixed buckets of the flat buffer issued from its
// end to its start (the order in which the backward finishes them) on a side stream: rlc_model's grad_ready hook
// (set to grads_ready) reports, during the last backward of a step, that grads[first, n) are final; every
// bucket wholly inside is launched at once behind an event on the compute stream, so the reduction overlaps the
// rest of the backward. allreduce_grads / reduce_scatter_grads launch the buckets not launched yet, wait for all
// of them (with the timeout) and order the compute stream after them.
typedef struct rlc_dist_dev_stats {
    long rounds;              // gradient rounds completed
    long buckets;             // buckets launched
    long buckets_overlapped;  // of which during a backward (through grads_ready)
    double wait_s;            // host time spent waiting for the collectives to complete
} rlc_dist_dev_stats;

typedef struct rlc_dist_dev {
    void *ctx;
    int zero1;             // gradient rounds reduce-scatter to the ZeRO-1 shards (rlc_dist_shard) instead of all-reducing
    size_t bucket_elems;   // elements per bucket
    int overlap;           // 1: grads_ready launches buckets during the backward; 0: it does nothing
    // grads (n) [first, n) are final on the compute stream (rlc_model.grad_ready)
    void (*grads_ready)(void *ctx, rlc_f *grads, size_t n, size_t first);
    // grads (n) summed over ranks, in place (all-reduce rounds; zero1 == 0)
    void (*allreduce_grads)(void *ctx, rlc_f *grads, size_t n);
    // this rank's shard [lo, hi) of the sum over ranks of grads (n) into out (hi - lo) (zero1 == 1)
    void (*reduce_scatter_grads)(void *ctx, const rlc_f *grads, rlc_f *out, size_t n);
    // in place: x[lo, hi) holds this rank's shard on entry, every rank's on return
    void (*allgather_shards)(void *ctx, rlc_f *x, size_t n);
    // complete this step's gradient round without using it (a step abandoned before its optimizer step, on every
    // rank alike): a rank whose backward launched nothing must still join the buckets the others launched
    void (*discard_grads)(void *ctx, rlc_f *grads, size_t n);
    void (*stats)(void *ctx, rlc_dist_dev_stats *st);
} rlc_dist_dev;

// Create the NCCL communicator (rlc_dist_nccl_create) and set d->dev. zero1: the gradient rounds reduce-scatter
// (rlc_sched_zero1_active). Bucket size: env RLC_NCCL_BUCKET_MB (default 25); env RLC_NCCL_OVERLAP=0 launches
// every bucket at the optimizer step instead of during the backward. Collective; 0, or -1 with a message in err.
int rlc_dist_nccl_attach(rlc_dist *d, int zero1, char *err, size_t errlen);
// Wait for collectives in flight, destroy the communicator, d->dev = NULL.
void rlc_dist_nccl_detach(rlc_dist *d);
