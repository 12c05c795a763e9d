// tests/emu/emu_defer.cpp: the emulator's deferred mode (kernels/cuda/emu/emu_runtime.h). Each asynchrony bug a GPU
// would show (a pinned staging buffer reused before its copy ran, an async device->host result read before the
// synchronisation, a kernel on one stream reading another stream's output without cudaStreamWaitEvent, a GEMM's
// output read before its stream ran) is run as a small program, with and without the bug: with the bug the
// deferred mode gives the wrong answer and the eager mode (RLC_EMU_DEFER=0) the right one, so the tests prove the
// mode exposes what eager execution hides; without the bug both modes agree. Also: pageable memory follows CUDA's
// rules (staged at the call, or a synchronous download), launch errors are reported at the call, kernel arguments
// are copied at the launch, the legacy NULL stream orders blocking streams but not non-blocking ones, queries poll
// to completion, events time their markers, cudaFree synchronises.
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
    cudaStream_t a, b;
    RLC_CUDA_CHECK(cudaStreamCreateWithFlags(&a, flags));
    RLC_CUDA_CHECK(cudaStreamCreateWithFlags(&b, flags));
    cudaEvent_t ev;
    RLC_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    int *x = dev_ints(0), *y = dev_ints(0);
    RLC_LAUNCH(fill_kernel, (N + 31) / 32, 32, 0, a, x, N, 7);
    RLC_CUDA_CHECK(cudaEventRecord(ev, a));
    if (wait) RLC_CUDA_CHECK(cudaStreamWaitEvent(b, ev, 0));
    RLC_LAUNCH(copy_kernel, (N + 31) / 32, 32, 0, b, y, x, N);
    RLC_CUDA_CHECK(cudaStreamSynchronize(b));
    std::vector<int> got(N);
    memcpy(got.data(), y, N * 4); // b is synchronised: y is final (emulated device memory is host memory)
    RLC_CUDA_CHECK(cudaDeviceSynchronize());
    RLC_CUDA_CHECK(cudaFree(x));
    RLC_CUDA_CHECK(cudaFree(y));
    RLC_CUDA_CHECK(cudaEventDestroy(ev));
    RLC_CUDA_CHECK(cudaStreamDestroy(a));
    RLC_CUDA_CHECK(cudaStreamDestroy(b));
    return all_eq(got, got[0]) ? got[0] : -1;
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

int main() {
    CHECK(emu::defer_enabled() == (getenv("RLC_EMU_DEFER") == nullptr || strcmp(getenv("RLC_EMU_DEFER"), "0") != 0),
          "deferred mode is the default and RLC_EMU_DEFER=0 turns it off");
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
        r = staging_reuse(false, true);
        CHECK(r == 1, "%s: staging buffer reused after the synchronisation: device got %d", mode, r);
        r = staging_reuse(true, false);
        CHECK(r == 1, "%s: pageable source reused after cudaMemcpyAsync (CUDA stages it at the call): %d", mode, r);
        r = early_download(false, true);
        CHECK(r == 5, "%s: async download read after the synchronisation: %d", mode, r);
        r = early_download(true, false);
        CHECK(r == 5, "%s: download to pageable memory (synchronous in CUDA): %d", mode, r);
        r = cross_stream(true, cudaStreamNonBlocking);
        CHECK(r == 7, "%s: stream b waited on stream a's event: %d", mode, r);
        r = cross_stream(true, 0);
        CHECK(r == 7, "%s: blocking stream b waited on stream a's event: %d", mode, r);
        r = null_stream_order(0);
        CHECK(r == 9, "%s: NULL stream after a blocking stream (implicit synchronisation): %d", mode, r);
        f = blas_early_read(false);
        CHECK(f == 1.0f, "%s: GEMM output read after the synchronisation: %g", mode, f);
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
    return test_finish("emu_defer");
}
