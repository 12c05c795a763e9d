// tests/emu/emu_defer.cpp: the emulator's deferred mode (kernels/cuda/emu/emu_runtime.h). Each asynchrony bug a GPU
// would show (a pinned staging buffer reused before its copy ran, an async device->host result read before the
// synchronisation, a kernel on one stream reading another stream's output without cudaStreamWaitEvent, a GEMM's
// output read before its stream ran) is run as a small program, with and without the bug: with the bug the
// deferred mode gives the wrong answer and the eager mode (RLC_EMU_DEFER=0) the right one, so the tests prove the
// mode exposes what eager execution hides; without the bug both modes agree. Also: pageable memory follows CUDA's
// rules (staged at the call, or a synchronous download), launch errors are reported at the call, kernel arguments
// are copied at the launch, the legacy NULL stream orders blocking streams but not non-blocking ones, queries poll
// to completion, events time their markers, cudaFree synchronises.
// The shuffle order (RLC_EMU_DEFER=shuffle, emu::set_shuffle): two bugs that both the eager mode and the late
// order hide (a write-after-read across streams; a missing event wait that cudaDeviceSynchronize happens to run in
// the right order) give a wrong answer for some seed of a fixed set, and their fixed programs are right under every
// seed, as are the correct programs above; a program on the NULL stream and three others, with events and
// synchronisations, logs the order its operations ran in: every seed's order keeps CUDA's dependency rules (a
// checker, itself shown to reject a wrong order), the same seed gives the same order, different seeds differ;
// launches nobody waits for run at their call for some seeds, and ops_run still counts only what waits ran; a
// misspelt RLC_EMU_DEFER or RLC_EMU_SHUFFLE_SEED fails with a message naming it.
#include <cstring>

#include "emu_test.h"
#include "rlc_blas.h"

__global__ void fill_kernel(int *p, int n, int v) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) p[i] = v;
}
__global__ void copy_kernel(int *dst, const int *src, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = src[i];
}
// Appends tag to log: log[0] counts the entries, log[1..] hold them (one thread; operations run one at a time).
__global__ void log_kernel(int *log, int tag) {
    if (threadIdx.x == 0 && blockIdx.x == 0) log[1 + log[0]++] = tag;
}
struct Arg {
    int v[4];
};
__global__ void arg_kernel(int *p, Arg a) {
    if (threadIdx.x < 4) p[threadIdx.x] = a.v[threadIdx.x];
}

static const int N = 100; // not a multiple of the block size

// Device buffer of N ints set to v by a NULL-stream kernel, synchronised (the NULL stream only).
static int *dev_ints(int v) {
    int *d = nullptr;
    RLC_CUDA_CHECK(cudaMalloc((void **)&d, N * 4));
    RLC_LAUNCH(fill_kernel, (N + 31) / 32, 32, 0, 0, d, N, v);
    RLC_CUDA_CHECK(cudaStreamSynchronize(0));
    return d;
}
static int first(const int *d) { // the synchronous way to read device memory
    int h = 0;
    RLC_CUDA_CHECK(cudaMemcpy(&h, d, 4, cudaMemcpyDeviceToHost));
    return h;
}
static bool all_eq(const std::vector<int> &v, int x) {
    for (int a : v)
        if (a != x) return false;
    return true;
}

// Two streams a and b (flags), an event and device arrays x and y of N ints, for the cross-stream programs;
// freed at the end of the scope, after a device synchronisation. result(): y's common value, -1 if mixed.
struct TwoStreams {
    cudaStream_t a, b;
    cudaEvent_t ev;
    int *x, *y;
    TwoStreams(unsigned flags, int x0, int y0) : x(dev_ints(x0)), y(dev_ints(y0)) {
        RLC_CUDA_CHECK(cudaStreamCreateWithFlags(&a, flags));
        RLC_CUDA_CHECK(cudaStreamCreateWithFlags(&b, flags));
        RLC_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    }
    void b_waits_for_a() { // b's later work runs after a's work so far
        RLC_CUDA_CHECK(cudaEventRecord(ev, a));
        RLC_CUDA_CHECK(cudaStreamWaitEvent(b, ev, 0));
    }
    void a_waits_for_b() {
        RLC_CUDA_CHECK(cudaEventRecord(ev, b));
        RLC_CUDA_CHECK(cudaStreamWaitEvent(a, ev, 0));
    }
    int result() const { // y as it is now (emulated device memory is host memory)
        std::vector<int> got(y, y + N);
        return all_eq(got, got[0]) ? got[0] : -1;
    }
    ~TwoStreams() {
        RLC_CUDA_CHECK(cudaDeviceSynchronize());
        RLC_CUDA_CHECK(cudaFree(x));
        RLC_CUDA_CHECK(cudaFree(y));
        RLC_CUDA_CHECK(cudaEventDestroy(ev));
        RLC_CUDA_CHECK(cudaStreamDestroy(a));
        RLC_CUDA_CHECK(cudaStreamDestroy(b));
    }
};

// Host overwrites a pinned staging buffer after cudaMemcpyAsync, before the copy is known to be done (bug), or
// after cudaStreamSynchronize (fixed). Returns what arrived on the device.
static int staging_reuse(bool bug, bool pinned) {
    cudaStream_t s;
    RLC_CUDA_CHECK(cudaStreamCreate(&s));
    int *d = dev_ints(0);
    std::vector<int> pageable(N);
    int *h = pageable.data();
    if (pinned) RLC_CUDA_CHECK(cudaMallocHost((void **)&h, N * 4));
    for (int i = 0; i < N; i++) h[i] = 1;
    RLC_CUDA_CHECK(cudaMemcpyAsync(d, h, N * 4, cudaMemcpyHostToDevice, s));
    if (!bug) RLC_CUDA_CHECK(cudaStreamSynchronize(s));
    for (int i = 0; i < N; i++) h[i] = 2; // the next upload's data
    RLC_CUDA_CHECK(cudaStreamSynchronize(s));
    std::vector<int> got = emu_test::from_device(d, N);
    if (pinned) RLC_CUDA_CHECK(cudaFreeHost(h));
    RLC_CUDA_CHECK(cudaFree(d));
    RLC_CUDA_CHECK(cudaStreamDestroy(s));
    return all_eq(got, got[0]) ? got[0] : -1;
}

// Reads the result of an async device->host copy before (bug) or after synchronising. Returns what the host saw.
static int early_download(bool bug, bool pinned) {
    cudaStream_t s;
    RLC_CUDA_CHECK(cudaStreamCreate(&s));
    int *d = dev_ints(0);
    RLC_LAUNCH(fill_kernel, (N + 31) / 32, 32, 0, s, d, N, 5);
    std::vector<int> pageable(N, -1);
    int *h = pageable.data();
    if (pinned) {
        RLC_CUDA_CHECK(cudaMallocHost((void **)&h, N * 4));
        for (int i = 0; i < N; i++) h[i] = -1;
    }
    RLC_CUDA_CHECK(cudaMemcpyAsync(h, d, N * 4, cudaMemcpyDeviceToHost, s));
    if (!bug) RLC_CUDA_CHECK(cudaStreamSynchronize(s));
    const int seen = h[N - 1];
    RLC_CUDA_CHECK(cudaStreamSynchronize(s));
    if (pinned) RLC_CUDA_CHECK(cudaFreeHost(h));
    RLC_CUDA_CHECK(cudaFree(d));
    RLC_CUDA_CHECK(cudaStreamDestroy(s));
    return seen;
}

// Stream a produces x; stream b copies it to y, with or without waiting on an event recorded after the producer.
static int cross_stream(bool wait, unsigned flags) {
    TwoStreams t(flags, 0, 0);
    RLC_LAUNCH(fill_kernel, (N + 31) / 32, 32, 0, t.a, t.x, N, 7);
    if (wait) t.b_waits_for_a();
    RLC_LAUNCH(copy_kernel, (N + 31) / 32, 32, 0, t.b, t.y, t.x, N);
    RLC_CUDA_CHECK(cudaStreamSynchronize(t.b));
    return t.result(); // b is synchronised: y is final
}

// A kernel on stream s writes x; then a NULL-stream kernel copies x to y: ordered when s is blocking (the legacy
// default stream's implicit synchronisation), not when s is non-blocking.
static int null_stream_order(unsigned flags) {
    cudaStream_t s;
    RLC_CUDA_CHECK(cudaStreamCreateWithFlags(&s, flags));
    int *x = dev_ints(0), *y = dev_ints(0);
    RLC_LAUNCH(fill_kernel, (N + 31) / 32, 32, 0, s, x, N, 9);
    RLC_LAUNCH(copy_kernel, (N + 31) / 32, 32, 0, 0, y, x, N);
    const int r = first(y); // a NULL-stream copy: after the NULL stream's kernel
    RLC_CUDA_CHECK(cudaDeviceSynchronize());
    RLC_CUDA_CHECK(cudaFree(x));
    RLC_CUDA_CHECK(cudaFree(y));
    RLC_CUDA_CHECK(cudaStreamDestroy(s));
    return r;
}

// A GEMM through rlc_blas on stream s, C read by the host before (bug) or after synchronising s. C = A B with
// A = B = I (2x2, bf16), C starting at 0: returns C[0][0] as seen (1 when the GEMM has run).
static float blas_early_read(bool bug) {
    cudaStream_t s;
    RLC_CUDA_CHECK(cudaStreamCreate(&s));
    rlc_blas *h = rlc_blas_create();
    rlc_blas_set_stream(h, s);
    std::vector<__nv_bfloat16> I = {__float2bfloat16(1.f), __float2bfloat16(0.f), __float2bfloat16(0.f),
                                    __float2bfloat16(1.f)};
    __nv_bfloat16 *dA = emu_test::to_device(I), *dB = emu_test::to_device(I);
    float *dC = emu_test::to_device(std::vector<float>(4, 0.f));
    CHECK(rlc_blas_gemm_bf16(h, 0, 0, 2, 2, 2, 1.0f, dA, 2, dB, 2, 0.0f, dC, 2, 0) == 0, "gemm rc");
    if (!bug) RLC_CUDA_CHECK(cudaStreamSynchronize(s));
    const float seen = dC[0];
    RLC_CUDA_CHECK(cudaStreamSynchronize(s));
    CHECK(dC[0] == 1.0f && dC[1] == 0.0f, "the GEMM ran at the synchronisation: C[0] %g", dC[0]);
    rlc_blas_destroy(h);
    RLC_CUDA_CHECK(cudaFree(dA));
    RLC_CUDA_CHECK(cudaFree(dB));
    RLC_CUDA_CHECK(cudaFree(dC));
    RLC_CUDA_CHECK(cudaStreamDestroy(s));
    return seen;
}

// Write-after-read across streams: stream b copies x (this iteration's data, 1) to y; stream a then overwrites x
// with the next iteration's data (2), without (bug) or with waiting on an event recorded on b after the read. b
// is synchronised first. Returns y as b saw x. The late order runs b's read at its synchronisation, before a's
// write, and the eager mode in issue order: both hide the bug; a GPU may run a's write first.
static int war_across_streams(bool wait, unsigned flags) {
    TwoStreams t(flags, 1, 0);
    RLC_LAUNCH(copy_kernel, (N + 31) / 32, 32, 0, t.b, t.y, t.x, N);
    if (wait) t.a_waits_for_b();
    RLC_LAUNCH(fill_kernel, (N + 31) / 32, 32, 0, t.a, t.x, N, 2);
    RLC_CUDA_CHECK(cudaStreamSynchronize(t.b));
    const int r = t.result(); // b is synchronised: y is final
    RLC_CUDA_CHECK(cudaStreamSynchronize(t.a));
    CHECK(t.x[0] == 2, "a's write ran");
    return r;
}

// Stream a (created first) produces x = 7; stream b copies x to y, without (bug) or with an event wait; then
// cudaDeviceSynchronize. Returns y. The late order runs the streams in creation order at the device
// synchronisation and the eager mode in issue order: both run a first and hide the missing wait.
static int device_sync_missing_wait(bool wait) {
    TwoStreams t(cudaStreamNonBlocking, 0, 0);
    RLC_LAUNCH(fill_kernel, (N + 31) / 32, 32, 0, t.a, t.x, N, 7);
    if (wait) t.b_waits_for_a();
    RLC_LAUNCH(copy_kernel, (N + 31) / 32, 32, 0, t.b, t.y, t.x, N);
    RLC_CUDA_CHECK(cudaDeviceSynchronize());
    return t.result();
}

// ---- the order operations ran in, and CUDA's rules for it ----
// before[j]: the operations that must run before operation j (its direct predecessors; the rest follows).
struct OrderSpec {
    std::vector<std::vector<int>> before;
};
// Whether log (the tags in the order they ran) runs every operation of spec once, each after its predecessors.
static bool order_legal(const OrderSpec &spec, const std::vector<int> &log) {
    const int n = (int)spec.before.size();
    if ((int)log.size() != n) return false;
    std::vector<int> pos(n, -1);
    for (int i = 0; i < n; i++) {
        if (log[i] < 0 || log[i] >= n || pos[log[i]] >= 0) return false;
        pos[log[i]] = i;
    }
    for (int j = 0; j < n; j++)
        for (int i : spec.before[j])
            if (pos[i] > pos[j]) return false;
    return true;
}

// A program on the NULL stream, two blocking streams and one non-blocking stream: 40 logging kernels in a fixed
// pattern, with event records and waits between streams, NULL-stream kernels (ordered with the blocking streams),
// a stream synchronisation, a query and a synchronous copy in the middle. Returns the log; spec gets CUDA's
// ordering rules for it (stream order, event waits, the legacy NULL stream's implicit synchronisation; the host's
// synchronisations add no rule an order could break: what they waited for ran before later work was issued).
static std::vector<int> logged_program(OrderSpec &spec) {
    const int n_ops = 40;
    cudaStream_t st[4] = {0, 0, 0, 0}; // 0: the NULL stream; 1, 2 blocking; 3 non-blocking
    RLC_CUDA_CHECK(cudaStreamCreate(&st[1]));
    RLC_CUDA_CHECK(cudaStreamCreate(&st[2]));
    RLC_CUDA_CHECK(cudaStreamCreateWithFlags(&st[3], cudaStreamNonBlocking));
    cudaEvent_t ev[4];
    for (cudaEvent_t &e : ev) RLC_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    int *log = nullptr;
    RLC_CUDA_CHECK(cudaMalloc((void **)&log, (n_ops + 1) * 4));
    RLC_CUDA_CHECK(cudaMemset(log, 0, 4));
    RLC_CUDA_CHECK(cudaDeviceSynchronize());
    spec.before.assign(n_ops, {});
    int last[4] = {-1, -1, -1, -1};    // the last operation issued on each stream
    int ev_at[4] = {-1, -1, -1, -1};   // the last operation before each event's record
    std::vector<int> waits[4];         // predecessors from event waits, for the next operation of each stream
    int pattern[n_ops];
    for (int j = 0; j < n_ops; j++) pattern[j] = (j * 7 + j / 5) % 4;
    for (int j = 0; j < n_ops; j++) {
        const int s = pattern[j];
        std::vector<int> &b = spec.before[j];
        if (last[s] >= 0) b.push_back(last[s]);
        b.insert(b.end(), waits[s].begin(), waits[s].end());
        waits[s].clear();
        if (s == 0) { // the NULL stream waits for the blocking streams
            for (int t = 1; t <= 2; t++)
                if (last[t] >= 0) b.push_back(last[t]);
        } else if (s <= 2 && last[0] >= 0) { // a blocking stream waits for the NULL stream
            b.push_back(last[0]);
        }
        RLC_LAUNCH(log_kernel, 1, 32, 0, st[s], log, j);
        last[s] = j;
        if (j % 3 == 1) { // an event on this stream; the stream two ahead waits on it
            const int e = j % 4, t = (s + 2) % 4;
            RLC_CUDA_CHECK(cudaEventRecord(ev[e], st[s]));
            ev_at[e] = j;
            RLC_CUDA_CHECK(cudaStreamWaitEvent(st[t], ev[e], 0));
            waits[t].push_back(ev_at[e]);
        }
        if (j == 17) RLC_CUDA_CHECK(cudaStreamSynchronize(st[2]));
        if (j == 23) (void)cudaStreamQuery(st[3]);
        if (j == 29) { // a synchronous copy: a NULL-stream operation (implicit order, no log entry)
            int h = 0;
            RLC_CUDA_CHECK(cudaMemcpy(&h, log, 4, cudaMemcpyDeviceToHost));
        }
    }
    RLC_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<int> out(log + 1, log + 1 + log[0]);
    RLC_CUDA_CHECK(cudaFree(log));
    for (cudaEvent_t e : ev) RLC_CUDA_CHECK(cudaEventDestroy(e));
    for (int s = 1; s < 4; s++) RLC_CUDA_CHECK(cudaStreamDestroy(st[s]));
    return out;
}

// The fixed (correct) versions of the bug programs: right in every mode and order. `label` names the mode.
static void check_fixed_programs(const char *label) {
    int r = staging_reuse(false, true);
    CHECK(r == 1, "%s: staging buffer reused after the synchronisation: device got %d", label, r);
    r = staging_reuse(true, false);
    CHECK(r == 1, "%s: pageable source reused after cudaMemcpyAsync (CUDA stages it at the call): %d", label, r);
    r = early_download(false, true);
    CHECK(r == 5, "%s: async download read after the synchronisation: %d", label, r);
    r = early_download(true, false);
    CHECK(r == 5, "%s: download to pageable memory (synchronous in CUDA): %d", label, r);
    r = cross_stream(true, cudaStreamNonBlocking);
    CHECK(r == 7, "%s: stream b waited on stream a's event: %d", label, r);
    r = cross_stream(true, 0);
    CHECK(r == 7, "%s: blocking stream b waited on stream a's event: %d", label, r);
    r = null_stream_order(0);
    CHECK(r == 9, "%s: NULL stream after a blocking stream (implicit synchronisation): %d", label, r);
    const float f = blas_early_read(false);
    CHECK(f == 1.0f, "%s: GEMM output read after the synchronisation: %g", label, f);
}

static void shuffle_order_tests() {
    // 16 seeds for the bug programs (each shows its bug under a few of them), the first 8 for the longer checks
    // of the orders themselves (the TSan build runs every launch several hundred times slower)
    const uint64_t seeds[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    const int n_seeds = (int)(sizeof seeds / sizeof seeds[0]), n_order_seeds = 8;
    // ---- the bugs: hidden by the eager mode and the late order ----
    for (int deferred = 0; deferred <= 1; deferred++) {
        emu::set_defer(deferred != 0);
        emu::set_shuffle(false);
        const char *mode = deferred ? "late order" : "eager";
        int r = war_across_streams(false, cudaStreamNonBlocking);
        CHECK(r == 1, "%s: write-after-read across streams, b synchronised first: b saw %d", mode, r);
        r = war_across_streams(false, 0);
        CHECK(r == 1, "%s: write-after-read across blocking streams: b saw %d", mode, r);
        r = device_sync_missing_wait(false);
        CHECK(r == 7, "%s: missing wait before cudaDeviceSynchronize: %d", mode, r);
    }
    emu::set_defer(true);
    // ---- ... shown by the shuffle order for some seed; the fixed programs right under every seed ----
    int war_wrong = 0, war_blocking_wrong = 0, wait_wrong = 0;
    for (uint64_t seed : seeds) {
        const unsigned long long sd = seed;
        emu::set_shuffle(true, seed);
        CHECK(emu::shuffle_enabled() && emu::defer_enabled(), "set_shuffle selects the deferred shuffle order");
        war_wrong += war_across_streams(false, cudaStreamNonBlocking) != 1;
        war_blocking_wrong += war_across_streams(false, 0) != 1;
        wait_wrong += device_sync_missing_wait(false) != 7;
        int r = war_across_streams(true, cudaStreamNonBlocking);
        CHECK(r == 1, "shuffle seed %llu: write-after-read ordered by an event: b saw %d", sd, r);
        r = war_across_streams(true, 0);
        CHECK(r == 1, "shuffle seed %llu: blocking streams, ordered by an event: b saw %d", sd, r);
        r = device_sync_missing_wait(true);
        CHECK(r == 7, "shuffle seed %llu: event wait before cudaDeviceSynchronize: %d", sd, r);
        // the correct programs of the deferred-mode tests stay correct
        char label[40];
        snprintf(label, sizeof label, "shuffle seed %llu", sd);
        check_fixed_programs(label);
    }
    printf("shuffle order, %d seeds: write-after-read wrong under %d (blocking streams %d), missing wait under %d\n",
           n_seeds, war_wrong, war_blocking_wrong, wait_wrong);
    CHECK(war_wrong > 0 && war_blocking_wrong > 0, "the shuffle order shows the write-after-read across streams for "
          "some seed (%d, %d of %d)", war_wrong, war_blocking_wrong, n_seeds);
    CHECK(wait_wrong > 0, "the shuffle order shows the missing wait before cudaDeviceSynchronize for some seed "
          "(%d of %d)", wait_wrong, n_seeds);

    // ---- work nobody waits for may run at the call; ops_run still counts only what calls that waited ran ----
    size_t early = 0;
    for (int k = 0; k < n_order_seeds; k++) {
        const uint64_t seed = seeds[k];
        const unsigned long long sd = seed;
        emu::set_shuffle(true, seed);
        cudaStream_t s;
        RLC_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
        int *x = dev_ints(0);
        const size_t run0 = emu::ops_run(), early0 = emu::ops_run_early();
        for (int i = 1; i <= 20; i++) RLC_LAUNCH(fill_kernel, (N + 31) / 32, 32, 0, s, x, N, i);
        CHECK(emu::ops_run() == run0, "shuffle seed %llu: launches without a wait count as waiting for nothing", sd);
        early += emu::ops_run_early() - early0;
        RLC_CUDA_CHECK(cudaStreamSynchronize(s));
        CHECK(x[0] == 20, "shuffle seed %llu: the launches ran in stream order: x = %d", sd, x[0]);
        RLC_CUDA_CHECK(cudaFree(x));
        RLC_CUDA_CHECK(cudaStreamDestroy(s));
    }
    printf("shuffle order, %d seeds: %zu of %d launches nobody waited for ran at their call\n", n_order_seeds, early,
           20 * n_order_seeds);
    CHECK(early > 0, "the shuffle order runs work nobody waits for early");

    // ---- legal, deterministic, seeded orders ----
    OrderSpec spec;
    emu::set_shuffle(false);
    std::vector<int> late = logged_program(spec);
    CHECK(order_legal(spec, late), "the late order keeps CUDA's ordering rules");
    { // the checker rejects a wrong order: the first two operations of stream 1 swapped
        std::vector<int> bad = late;
        int i1 = -1, i2 = -1;
        for (int i = 0; i < (int)bad.size(); i++) {
            const int j = bad[i];
            if ((j * 7 + j / 5) % 4 == 1) {
                if (i1 < 0) i1 = i;
                else if (i2 < 0) i2 = i;
            }
        }
        CHECK(i2 >= 0, "stream 1 has two operations");
        if (i2 >= 0) std::swap(bad[i1], bad[i2]);
        CHECK(!order_legal(spec, bad), "the checker rejects an order that breaks stream order");
        bad = late;
        bad.pop_back();
        CHECK(!order_legal(spec, bad), "the checker rejects an order that misses an operation");
    }
    std::vector<std::vector<int>> orders;
    for (int k = 0; k < n_order_seeds; k++) {
        const uint64_t seed = seeds[k];
        emu::set_shuffle(true, seed);
        std::vector<int> o = logged_program(spec);
        CHECK(order_legal(spec, o), "shuffle seed %llu: the order keeps CUDA's ordering rules",
              (unsigned long long)seed);
        emu::set_shuffle(true, seed);
        CHECK(logged_program(spec) == o, "shuffle seed %llu: the same seed gives the same order",
              (unsigned long long)seed);
        bool is_new = true;
        for (const auto &p : orders) is_new = is_new && p != o;
        if (is_new) orders.push_back(o);
    }
    int differ_from_late = 0;
    for (const auto &o : orders) differ_from_late += o != late;
    printf("shuffle order, %d seeds: %zu distinct orders of the logged program, %d differ from the late order\n",
           n_order_seeds, orders.size(), differ_from_late);
    CHECK(orders.size() >= 4 && differ_from_late >= 4, "seeds give different orders (%zu distinct)", orders.size());
    emu::set_shuffle(false);
    // ---- a misspelt mode or seed in the environment fails with the variable and what it expects ----
    emu_test::expect_death("bad_defer_env", [] {
        setenv("RLC_EMU_DEFER", "shufle", 1);
        (void)emu::load_defer();
    }, "RLC_EMU_DEFER=shufle: expected 0 (eager), 1 (deferred, the default) or shuffle");
    emu_test::expect_death("bad_seed_env", [] {
        setenv("RLC_EMU_SHUFFLE_SEED", "7x", 1);
        (void)emu::load_shuffle_seed();
    }, "RLC_EMU_SHUFFLE_SEED=7x: expected a non-negative integer");
}

// `emu_defer env`: only how the environment selects the mode (ctest emu_defer_shuffle_env).
int main(int argc, char **argv) {
    CHECK(emu::defer_enabled() == (getenv("RLC_EMU_DEFER") == nullptr || strcmp(getenv("RLC_EMU_DEFER"), "0") != 0),
          "deferred mode is the default and RLC_EMU_DEFER=0 turns it off");
    CHECK(emu::shuffle_enabled() == (getenv("RLC_EMU_DEFER") && strcmp(getenv("RLC_EMU_DEFER"), "shuffle") == 0),
          "the late order is the default and RLC_EMU_DEFER=shuffle selects the shuffle order");
    if (argc > 1 && strcmp(argv[1], "env") == 0) {
        CHECK(emu::shuffle_enabled(), "run with RLC_EMU_DEFER=shuffle: the shuffle order is selected");
        return test_finish("emu_defer env");
    }
    emu::set_shuffle(false); // the tests below expect the late order, whatever the environment says
    for (int deferred = 1; deferred >= 0; deferred--) {
        emu::set_defer(deferred != 0);
        const char *mode = deferred ? "deferred" : "eager";
        // ---- the bugs: wrong in the deferred mode, hidden by the eager one ----
        int r = staging_reuse(true, true);
        CHECK(r == (deferred ? 2 : 1), "%s: pinned staging buffer reused before its copy ran: device got %d", mode, r);
        r = early_download(true, true);
        CHECK(r == (deferred ? -1 : 5), "%s: async download read before the synchronisation: host saw %d", mode, r);
        r = cross_stream(false, cudaStreamNonBlocking);
        CHECK(r == (deferred ? 0 : 7), "%s: stream b read stream a's output without a wait: %d", mode, r);
        r = cross_stream(false, 0); // blocking streams do not order each other either (only the NULL stream)
        CHECK(r == (deferred ? 0 : 7), "%s: blocking stream b read stream a's output without a wait: %d", mode, r);
        r = null_stream_order(cudaStreamNonBlocking);
        CHECK(r == (deferred ? 0 : 9), "%s: NULL stream after a non-blocking stream, no wait: %d", mode, r);
        float f = blas_early_read(true);
        CHECK(f == (deferred ? 0.0f : 1.0f), "%s: GEMM output read before its stream ran: %g", mode, f);
        // ---- the fixed programs: right in both modes ----
        check_fixed_programs(mode);
    }
    emu::set_defer(true);

    // ---- launch errors are reported at the call, and nothing is queued ----
    {
        cudaStream_t s;
        RLC_CUDA_CHECK(cudaStreamCreate(&s));
        cudaGetLastError();
        RLC_LAUNCH(fill_kernel, 1, 2048, 0, s, (int *)nullptr, 0, 0);
        CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration, "a bad launch fails at the call");
        CHECK(cudaStreamQuery(s) == cudaSuccess, "a failed launch queues nothing");
        RLC_CUDA_CHECK(cudaStreamDestroy(s));
    }
    // ---- kernel arguments are copied at the launch (the caller's variable may change or die) ----
    {
        cudaStream_t s;
        RLC_CUDA_CHECK(cudaStreamCreate(&s));
        int *d = dev_ints(0);
        {
            Arg a{{1, 2, 3, 4}};
            RLC_LAUNCH(arg_kernel, 1, 32, 0, s, d, a);
            a.v[0] = 99;
        }
        std::vector<int> big(4096, 0x5A); // reuse the stack area the argument lived in
        (void)big;
        RLC_CUDA_CHECK(cudaStreamSynchronize(s));
        std::vector<int> got = emu_test::from_device(d, 4);
        CHECK(got == std::vector<int>({1, 2, 3, 4}), "kernel saw %d %d %d %d", got[0], got[1], got[2], got[3]);
        RLC_CUDA_CHECK(cudaFree(d));
        RLC_CUDA_CHECK(cudaStreamDestroy(s));
    }
    // ---- only what is needed runs; queries poll to completion; events time their markers ----
    {
        cudaStream_t s, t;
        RLC_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
        RLC_CUDA_CHECK(cudaStreamCreateWithFlags(&t, cudaStreamNonBlocking));
        cudaEvent_t e0, e1;
        RLC_CUDA_CHECK(cudaEventCreate(&e0));
        RLC_CUDA_CHECK(cudaEventCreate(&e1));
        int *x = dev_ints(0), *y = dev_ints(0);
        RLC_CUDA_CHECK(cudaEventRecord(e0, s));
        RLC_LAUNCH(fill_kernel, (N + 31) / 32, 32, 0, s, x, N, 3);
        RLC_CUDA_CHECK(cudaEventRecord(e1, s));
        RLC_LAUNCH(fill_kernel, (N + 31) / 32, 32, 0, t, y, N, 4);
        float ms = -1;
        CHECK(cudaEventElapsedTime(&ms, e0, e1) == cudaErrorNotReady, "elapsed time before the markers ran");
        CHECK(cudaEventQuery(e1) == cudaErrorNotReady, "an event with pending work is not ready at first");
        CHECK(x[0] == 0, "a query that answered not ready ran nothing");
        CHECK(cudaEventQuery(e1) == cudaSuccess && x[0] == 3, "polling again completes the event");
        CHECK(y[0] == 0, "stream t's work has not run (nothing needed it)");
        CHECK(cudaEventElapsedTime(&ms, e0, e1) == cudaSuccess && ms >= 0, "elapsed time %g ms", ms);
        CHECK(cudaStreamQuery(t) == cudaErrorNotReady && cudaStreamQuery(t) == cudaSuccess && y[0] == 4,
              "cudaStreamQuery polls to completion");
        // cudaFree synchronises the device
        RLC_LAUNCH(fill_kernel, (N + 31) / 32, 32, 0, t, y, N, 6);
        int *z = dev_ints(0); // (dev_ints synchronises the NULL stream only; t is non-blocking)
        CHECK(y[0] == 4, "t's second launch is still queued");
        RLC_CUDA_CHECK(cudaFree(z));
        CHECK(y[0] == 6, "cudaFree ran the queued work first");
        // cudaMemset is a NULL-stream operation: queued; a blocking stream's later work sees it
        cudaStream_t b;
        RLC_CUDA_CHECK(cudaStreamCreate(&b));
        RLC_CUDA_CHECK(cudaMemset(x, 0, N * 4));
        CHECK(x[0] == 3, "cudaMemset is queued on the NULL stream");
        RLC_LAUNCH(copy_kernel, (N + 31) / 32, 32, 0, b, y, x, N);
        RLC_CUDA_CHECK(cudaStreamSynchronize(b));
        CHECK(x[0] == 0 && y[0] == 0, "a blocking stream's kernel runs after the NULL stream's memset");
        RLC_CUDA_CHECK(cudaFree(x));
        RLC_CUDA_CHECK(cudaFree(y));
        RLC_CUDA_CHECK(cudaEventDestroy(e0));
        RLC_CUDA_CHECK(cudaEventDestroy(e1));
        RLC_CUDA_CHECK(cudaStreamDestroy(s));
        RLC_CUDA_CHECK(cudaStreamDestroy(t));
        RLC_CUDA_CHECK(cudaStreamDestroy(b));
    }
    // ---- a kernel error in queued work surfaces when the work runs ----
    emu_test::expect_death("queued_oob", [] {
        cudaStream_t s;
        cudaStreamCreate(&s);
        RLC_LAUNCH(fill_kernel, 1, 32, 0, s, (int *)nullptr, 32, 1); // a NULL write, queued
        fprintf(stderr, "launched\n");
        cudaStreamSynchronize(s);
    }, "launched");
    shuffle_order_tests();
    return test_finish("emu_defer");
}
