// host/comm.c: the process group and its host collectives (see include/rlc/comm.h). With RLC_MPI (CMake found
// MPI) and an MPI launcher, collectives are MPI's on a duplicate of MPI_COMM_WORLD, each one watched by a
// watchdog thread; otherwise the group has one rank and every collective returns at once.
#define _POSIX_C_SOURCE 200809L
#include "rlc/comm.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rlc/util.h"

#ifdef RLC_MPI
#include <mpi.h>
#include <pthread.h>
#endif

#define DEFAULT_BUCKET_BYTES ((size_t)4 << 20)
#define DEFAULT_TIMEOUT_S 600.0

int rlc_dist_have_mpi(void) {
#ifdef RLC_MPI
    return 1;
#else
    return 0;
#endif
}

// Size announced by a launcher's environment (OpenMPI, MPICH/Hydra and Slurm PMI, PMIx, MVAPICH); 0 if none.
static int launcher_size(void) {
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && atoi(v) > 0) return atoi(v);
    }
    if (getenv("PMIX_RANK")) return 1; // PMIx without a size variable: launched, size from MPI
    return 0;
}

int rlc_dist_launched(void) { return launcher_size() > 0; }

void rlc_dist_single(rlc_dist *d) {
    memset(d, 0, sizeof *d);
    d->size = 1;
    d->local_size = 1;
}

static double timeout_from_env(void) {
    const char *v = getenv("RLC_COLLECTIVE_TIMEOUT");
    if (!v || !*v) return DEFAULT_TIMEOUT_S;
    char *end;
    double t = strtod(v, &end);
    if (*end || t != t) {
        fprintf(stderr, "rlc: RLC_COLLECTIVE_TIMEOUT=\"%s\" is not a number of seconds; using %.0f\n", v,
                DEFAULT_TIMEOUT_S);
        return DEFAULT_TIMEOUT_S;
    }
    return t;
}

#ifdef RLC_MPI

typedef struct dist_impl {
    MPI_Comm comm;
    int we_initialised;     // MPI_Init was ours (finalize it)
    pthread_t thread;
    int thread_on;
    pthread_mutex_t mu;
    int stop;
    const char *op;         // collective in progress (NULL: none)
    double since;           // when it started
    int rank;
    double timeout_s;
} dist_impl;

static MPI_Datatype rlc_f_type(void) { return sizeof(rlc_f) == sizeof(float) ? MPI_FLOAT : MPI_DOUBLE; }

static MPI_Op mpi_op(rlc_reduce_op op) { return op == RLC_RED_MAX ? MPI_MAX : op == RLC_RED_MIN ? MPI_MIN : MPI_SUM; }

// The watchdog polls the collective in progress; a collective older than the timeout ends the job. It needs no
// MPI call except the final MPI_Abort (which implementations accept from any thread in practice).
static void *watchdog_main(void *arg) {
    dist_impl *im = arg;
    struct timespec nap = {0, 100 * 1000 * 1000};
    for (;;) {
        nanosleep(&nap, NULL);
        pthread_mutex_lock(&im->mu);
        int stop = im->stop;
        const char *op = im->op;
        double since = im->since;
        pthread_mutex_unlock(&im->mu);
        if (stop) return NULL;
        if (op && rlc_now() - since > im->timeout_s) {
            fprintf(stderr,
                    "\nrlc: rank %d: collective %s has not completed after %.0f s (RLC_COLLECTIVE_TIMEOUT): another "
                    "rank failed, hung or is far behind; aborting the job\n",
                    im->rank, op, im->timeout_s);
            fflush(stderr);
            MPI_Abort(MPI_COMM_WORLD, 124);
            _Exit(124);
        }
    }
}

static void wd_enter(const rlc_dist *d, const char *op) {
    dist_impl *im = d->impl;
    if (!im->thread_on) return;
    pthread_mutex_lock(&im->mu);
    im->op = op;
    im->since = rlc_now();
    pthread_mutex_unlock(&im->mu);
}

static void wd_leave(const rlc_dist *d) {
    dist_impl *im = d->impl;
    if (!im->thread_on) return;
    pthread_mutex_lock(&im->mu);
    im->op = NULL;
    pthread_mutex_unlock(&im->mu);
}

static int to_int_count(const rlc_dist *d, size_t n, const char *what) {
    if (n > (size_t)INT_MAX)
        rlc_dist_abort(d, 1, "%s of %zu elements exceeds MPI's int count (split the data)", what, n);
    return (int)n;
}

// A rank that leaves through exit() without rlc_dist_finalize (RLC_FATAL, RLC_CHECK deep in the library) must
// not leave the others blocked in a collective: this exit handler aborts the job. The process-wide rank is the
// only global state here, as exit handlers take no argument.
static int exit_rank = -1;

static void abort_on_exit(void) {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (!init || fin || exit_rank < 0) return;
    fprintf(stderr, "rlc: rank %d: exited on the error above; aborting the job\n", exit_rank);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

int rlc_dist_init(rlc_dist *d, int *argc, char ***argv, char *err, size_t errlen) {
    rlc_dist_single(d);
    if (!rlc_dist_launched()) return 0;
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        int provided = 0;
        // OpenMP threads never call MPI; the watchdog only calls MPI_Abort.
        if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            return rlc_errf(err, errlen, "MPI_Init_thread failed");
    }
    dist_impl *im = rlc_calloc(1, sizeof *im);
    im->we_initialised = !inited;
    MPI_Comm_dup(MPI_COMM_WORLD, &im->comm);
    MPI_Comm_rank(im->comm, &d->rank);
    MPI_Comm_size(im->comm, &d->size);
    MPI_Comm node;
    MPI_Comm_split_type(im->comm, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &d->local_rank);
    MPI_Comm_size(node, &d->local_size);
    MPI_Comm_free(&node);
    d->mpi = 1;
    d->impl = im;
    d->timeout_s = timeout_from_env();
    im->rank = d->rank;
    im->timeout_s = d->timeout_s;
    pthread_mutex_init(&im->mu, NULL);
    if (d->size > 1) {
        if (exit_rank < 0) atexit(abort_on_exit);
        exit_rank = d->rank;
    }
    if (d->size > 1 && d->timeout_s > 0) {
        if (pthread_create(&im->thread, NULL, watchdog_main, im) == 0) im->thread_on = 1;
        else fprintf(stderr, "rlc: rank %d: cannot start the collective watchdog; collectives have no timeout\n",
                     d->rank);
    }
    return 0;
}

void rlc_dist_finalize(rlc_dist *d) {
    dist_impl *im = d->impl;
    if (im) {
        if (im->thread_on) {
            pthread_mutex_lock(&im->mu);
            im->stop = 1;
            pthread_mutex_unlock(&im->mu);
            pthread_join(im->thread, NULL);
        }
        pthread_mutex_destroy(&im->mu);
        MPI_Comm_free(&im->comm);
        exit_rank = -1;
        if (im->we_initialised) MPI_Finalize();
        free(im);
    }
    rlc_dist_single(d);
}

_Noreturn void rlc_dist_abort(const rlc_dist *d, int code, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (d && d->mpi && d->size > 1) fprintf(stderr, "\nrlc: rank %d: %s\n", d->rank, msg);
    else fprintf(stderr, "rlc: %s\n", msg);
    fflush(stderr);
    if (d && d->mpi) MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
    exit(code ? code : 1);
}

void rlc_dist_barrier(const rlc_dist *d) {
    if (d->size <= 1) return;
    wd_enter(d, "barrier");
    MPI_Barrier(((dist_impl *)d->impl)->comm);
    wd_leave(d);
}

static void allreduce(const rlc_dist *d, void *x, size_t n, MPI_Datatype t, rlc_reduce_op op, const char *name) {
    if (d->size <= 1 || n == 0) return;
    wd_enter(d, name);
    MPI_Allreduce(MPI_IN_PLACE, x, to_int_count(d, n, name), t, mpi_op(op), ((dist_impl *)d->impl)->comm);
    wd_leave(d);
}

void rlc_dist_allreduce_d(const rlc_dist *d, double *x, size_t n, rlc_reduce_op op) {
    allreduce(d, x, n, MPI_DOUBLE, op, "all-reduce (double)");
}
void rlc_dist_allreduce_f(const rlc_dist *d, float *x, size_t n, rlc_reduce_op op) {
    allreduce(d, x, n, MPI_FLOAT, op, "all-reduce (float)");
}
void rlc_dist_allreduce_i64(const rlc_dist *d, int64_t *x, size_t n, rlc_reduce_op op) {
    allreduce(d, x, n, MPI_INT64_T, op, "all-reduce (int64)");
}

void rlc_dist_allreduce_sum_bucketed(const rlc_dist *d, rlc_f *x, size_t n, size_t bucket_bytes) {
    if (d->size <= 1) return;
    size_t bucket = (bucket_bytes ? bucket_bytes : DEFAULT_BUCKET_BYTES) / sizeof(rlc_f);
    if (bucket == 0) bucket = 1;
    for (size_t b0 = 0; b0 < n; b0 += bucket) {
        size_t cnt = n - b0 < bucket ? n - b0 : bucket;
        allreduce(d, x + b0, cnt, rlc_f_type(), RLC_RED_SUM, "all-reduce of the gradients");
    }
}

void rlc_dist_bcast(const rlc_dist *d, void *buf, size_t nbytes, int root) {
    if (d->size <= 1 || nbytes == 0) return;
    wd_enter(d, "broadcast");
    MPI_Bcast(buf, to_int_count(d, nbytes, "broadcast"), MPI_BYTE, root, ((dist_impl *)d->impl)->comm);
    wd_leave(d);
}

void *rlc_dist_allgatherv(const rlc_dist *d, const void *send, size_t nbytes, size_t *counts, size_t *total) {
    if (d->size <= 1) {
        void *out = rlc_malloc(nbytes ? nbytes : 1);
        if (nbytes) memcpy(out, send, nbytes);
        if (counts) counts[0] = nbytes;
        *total = nbytes;
        return out;
    }
    dist_impl *im = d->impl;
    int64_t mine = (int64_t)nbytes, *all = rlc_malloc((size_t)d->size * sizeof(int64_t));
    wd_enter(d, "all-gather (sizes)");
    MPI_Allgather(&mine, 1, MPI_INT64_T, all, 1, MPI_INT64_T, im->comm);
    wd_leave(d);
    int *cnt = rlc_malloc((size_t)d->size * sizeof(int)), *disp = rlc_malloc((size_t)d->size * sizeof(int));
    size_t tot = 0;
    for (int r = 0; r < d->size; r++) {
        disp[r] = to_int_count(d, tot, "all-gather");
        cnt[r] = to_int_count(d, (size_t)all[r], "all-gather");
        tot += (size_t)all[r];
        if (counts) counts[r] = (size_t)all[r];
    }
    to_int_count(d, tot, "all-gather");
    char *out = rlc_malloc(tot ? tot : 1);
    wd_enter(d, "all-gather");
    MPI_Allgatherv(send, cnt[d->rank], MPI_BYTE, out, cnt, disp, MPI_BYTE, im->comm);
    wd_leave(d);
    free(all);
    free(cnt);
    free(disp);
    *total = tot;
    return out;
}

void rlc_dist_reduce_scatter_sum(const rlc_dist *d, const rlc_f *x, rlc_f *out, size_t n, size_t bucket_bytes) {
    size_t lo, hi;
    rlc_dist_shard(n, d->size, d->rank, &lo, &hi);
    if (d->size <= 1) {
        if (out != x + lo && hi > lo) memcpy(out, x + lo, (hi - lo) * sizeof(rlc_f));
        return;
    }
    size_t bucket = (bucket_bytes ? bucket_bytes : DEFAULT_BUCKET_BYTES) / sizeof(rlc_f);
    if (bucket == 0) bucket = 1;
    int *cnt = rlc_malloc((size_t)d->size * sizeof(int));
    for (size_t b0 = 0; b0 < n; b0 += bucket) {
        size_t b1 = n - b0 < bucket ? n : b0 + bucket;
        for (int r = 0; r < d->size; r++) { // this bucket's part of each rank's shard
            size_t rl, rh;
            rlc_dist_shard(n, d->size, r, &rl, &rh);
            size_t a = rl > b0 ? rl : b0, b = rh < b1 ? rh : b1;
            cnt[r] = b > a ? (int)(b - a) : 0;
        }
        size_t a = lo > b0 ? lo : b0;
        wd_enter(d, "reduce-scatter of the gradients");
        MPI_Reduce_scatter(x + b0, out + (a > lo ? a - lo : 0), cnt, rlc_f_type(), MPI_SUM,
                           ((dist_impl *)d->impl)->comm);
        wd_leave(d);
    }
    free(cnt);
}

void rlc_dist_allgather_shards(const rlc_dist *d, rlc_f *x, size_t n) {
    if (d->size <= 1) return;
    int *cnt = rlc_malloc((size_t)d->size * sizeof(int)), *disp = rlc_malloc((size_t)d->size * sizeof(int));
    for (int r = 0; r < d->size; r++) {
        size_t lo, hi;
        rlc_dist_shard(n, d->size, r, &lo, &hi);
        disp[r] = to_int_count(d, lo, "all-gather of the weights");
        cnt[r] = to_int_count(d, hi - lo, "all-gather of the weights");
    }
    wd_enter(d, "all-gather of the weights");
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x, cnt, disp, rlc_f_type(), ((dist_impl *)d->impl)->comm);
    wd_leave(d);
    free(cnt);
    free(disp);
}

#else // no MPI in this build: a group of one

int rlc_dist_init(rlc_dist *d, int *argc, char ***argv, char *err, size_t errlen) {
    (void)argc;
    (void)argv;
    rlc_dist_single(d);
    d->timeout_s = timeout_from_env();
    if (launcher_size() > 1)
        return rlc_errf(err, errlen, "started by an MPI launcher with %d ranks, but this rlc was built without MPI "
                                     "(install OpenMPI, e.g. libopenmpi-dev, and rebuild)", launcher_size());
    return 0;
}

void rlc_dist_finalize(rlc_dist *d) { rlc_dist_single(d); }

_Noreturn void rlc_dist_abort(const rlc_dist *d, int code, const char *fmt, ...) {
    (void)d;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "rlc: %s\n", msg);
    exit(code ? code : 1);
}

void rlc_dist_barrier(const rlc_dist *d) { (void)d; }
void rlc_dist_allreduce_d(const rlc_dist *d, double *x, size_t n, rlc_reduce_op op) { (void)d, (void)x, (void)n, (void)op; }
void rlc_dist_allreduce_f(const rlc_dist *d, float *x, size_t n, rlc_reduce_op op) { (void)d, (void)x, (void)n, (void)op; }
void rlc_dist_allreduce_i64(const rlc_dist *d, int64_t *x, size_t n, rlc_reduce_op op) { (void)d, (void)x, (void)n, (void)op; }
void rlc_dist_allreduce_sum_bucketed(const rlc_dist *d, rlc_f *x, size_t n, size_t bucket_bytes) {
    (void)d, (void)x, (void)n, (void)bucket_bytes;
}
void rlc_dist_bcast(const rlc_dist *d, void *buf, size_t nbytes, int root) { (void)d, (void)buf, (void)nbytes, (void)root; }

void *rlc_dist_allgatherv(const rlc_dist *d, const void *send, size_t nbytes, size_t *counts, size_t *total) {
    (void)d;
    void *out = rlc_malloc(nbytes ? nbytes : 1);
    if (nbytes) memcpy(out, send, nbytes);
    if (counts) counts[0] = nbytes;
    *total = nbytes;
    return out;
}

void rlc_dist_reduce_scatter_sum(const rlc_dist *d, const rlc_f *x, rlc_f *out, size_t n, size_t bucket_bytes) {
    (void)d, (void)bucket_bytes;
    if (out != x && n) memcpy(out, x, n * sizeof(rlc_f));
}

void rlc_dist_allgather_shards(const rlc_dist *d, rlc_f *x, size_t n) { (void)d, (void)x, (void)n; }

#endif

void rlc_dist_shard(size_t n, int size, int r, size_t *lo, size_t *hi) {
    // 128-bit products: n * r cannot overflow
    *lo = (size_t)((unsigned __int128)n * (unsigned)r / (unsigned)size);
    *hi = (size_t)((unsigned __int128)n * (unsigned)(r + 1) / (unsigned)size);
}
