// tests/emu/emu_graph.cpp: stream capture and CUDA graphs in the emulator (kernels/cuda/emu/emu_runtime.h), in the
// eager mode, the deferred mode's late order and its shuffle order (seeds 1 to 3):
//   - a program of kernel launches, cudaMemsetAsync, device-to-device and pinned-host cudaMemcpyAsync captured on a
//     stream: its node count, nothing run at capture (every buffer unchanged after cudaStreamEndCapture), replays
//     equal to the same program issued directly, bit for bit; replays after the host changed the inputs (a pinned
//     buffer, a device buffer) see the new contents; a replay on another stream (blocking, non-blocking); the graph
//     destroyed before its exec is launched; in the deferred mode a launch is queued (runs at the synchronisation,
//     behind a NULL-stream kernel it implicitly depends on), and events recorded around it order a second stream;
//   - every call CUDA prohibits during capture: its error code at the call, the capture invalidated
//     (cudaStreamIsCapturing), cudaStreamEndCapture's cudaErrorStreamCaptureInvalidated with no graph, nothing of
//     the capture run, and the stream working normally afterwards; the unsafe calls allowed in Relaxed mode and
//     from another thread under ThreadLocal mode; the NULL stream free to use while only a non-blocking stream
//     captures; begin/end misuse (NULL stream, twice, not capturing, another thread);
//   - the emulated cuBLAS (rlc_blas_gemm_bf16, rlc_blas_sgemm) captured and replayed: the same bits as the direct call.
#include <cstring>
#include <thread>

#include "emu_test.h"
#include "rlc_blas.h"

__global__ void axpb_kernel(float *y, const float *x, float a, float b, int n) { // y = a x + b
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i] + b;
}
__global__ void add_kernel(float *z, const float *x, const float *y, int n) { // z = x + y
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) z[i] = x[i] + y[i];
}
__global__ void shift_kernel(float *y, const float *delta, int n) { // y += delta[0] (a device-side parameter)
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] += delta[0];
}
__global__ void set_kernel(float *p, float v, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) p[i] = v;
}

static const int N = 100; // not a multiple of the block size
static const int BS = 32;
static const int GRID = (N + BS - 1) / BS;
static const size_t NODES = 8; // operations issue_program issues

// The buffers of the program: pinned host input / output, device x, y, z, w and a one-float device parameter.
struct Bufs {
    float *hin, *hout;    // pinned (N)
    float *x, *y, *z, *w; // device (N)
    float *delta;         // device (1)
    Bufs() {
        RLC_CUDA_CHECK(cudaMallocHost((void **)&hin, N * 4));
        RLC_CUDA_CHECK(cudaMallocHost((void **)&hout, N * 4));
        for (float **p : {&x, &y, &z, &w}) RLC_CUDA_CHECK(cudaMalloc((void **)p, N * 4));
        RLC_CUDA_CHECK(cudaMalloc((void **)&delta, 4));
    }
    ~Bufs() {
        cudaDeviceSynchronize();
        cudaFreeHost(hin);
        cudaFreeHost(hout);
        for (float *p : {x, y, z, w, delta}) cudaFree(p);
    }
    // Inputs: hin[i] from a hash of (i, salt), delta = d (cudaMemcpy: the NULL stream, waited for).
    void set_inputs(uint32_t salt, float d) {
        for (int i = 0; i < N; i++) hin[i] = rlc_test::hash_uniform(i, salt);
        RLC_CUDA_CHECK(cudaMemcpy(delta, &d, 4, cudaMemcpyHostToDevice));
    }
    // Outputs and intermediates to a sentinel (0x7F bytes), synchronously.
    void poison() {
        for (float *p : {x, y, z, w}) RLC_CUDA_CHECK(cudaMemset(p, 0x7F, N * 4));
        memset(hout, 0x7F, N * 4);
        RLC_CUDA_CHECK(cudaDeviceSynchronize());
    }
    // Every buffer's bytes (device ones through cudaMemcpy: call only outside capture).
    std::vector<float> snapshot() {
        std::vector<float> v(hin, hin + N);
        v.insert(v.end(), hout, hout + N);
        for (float *p : {x, y, z, w}) {
            std::vector<float> d = emu_test::from_device(p, N);
            v.insert(v.end(), d.begin(), d.end());
        }
        v.push_back(emu_test::from_device(delta, 1)[0]);
        return v;
    }
    // The results: hout (w) and device y, z.
    std::vector<float> results() {
        std::vector<float> v(hout, hout + N);
        for (float *p : {y, z}) {
            std::vector<float> d = emu_test::from_device(p, N);
            v.insert(v.end(), d.begin(), d.end());
        }
        return v;
    }
};

// The program (NODES operations on s): x <- hin; y = 2x + 1; w = 0; z <- y; w = z + x; y = -w + 0.5; y += delta;
// hout <- w.
static void issue_program(Bufs &b, cudaStream_t s) {
    RLC_CUDA_CHECK(cudaMemcpyAsync(b.x, b.hin, N * 4, cudaMemcpyHostToDevice, s));
    RLC_LAUNCH(axpb_kernel, GRID, BS, 0, s, b.y, (const float *)b.x, 2.0f, 1.0f, N);
    RLC_CUDA_CHECK(cudaMemsetAsync(b.w, 0, N * 4, s));
    RLC_CUDA_CHECK(cudaMemcpyAsync(b.z, b.y, N * 4, cudaMemcpyDeviceToDevice, s));
    RLC_LAUNCH(add_kernel, GRID, BS, 0, s, b.w, (const float *)b.z, (const float *)b.x, N);
    RLC_LAUNCH(axpb_kernel, GRID, BS, 0, s, b.y, (const float *)b.w, -1.0f, 0.5f, N);
    RLC_LAUNCH(shift_kernel, GRID, BS, 0, s, b.y, (const float *)b.delta, N);
    RLC_CUDA_CHECK(cudaMemcpyAsync(b.hout, b.w, N * 4, cudaMemcpyDeviceToHost, s));
}
// The program's results on the CPU (w, y, z as results() orders them).
static std::vector<float> cpu_program(const float *hin, float delta) {
    std::vector<float> w(N), y(N), z(N);
    for (int i = 0; i < N; i++) {
        const float x = hin[i];
        z[i] = 2.0f * x + 1.0f;
        w[i] = z[i] + x;
        y[i] = -1.0f * w[i] + 0.5f + delta;
    }
    std::vector<float> v(w);
    v.insert(v.end(), y.begin(), y.end());
    v.insert(v.end(), z.begin(), z.end());
    return v;
}
static bool same_bits(const std::vector<float> &a, const std::vector<float> &b) {
    return a.size() == b.size() && memcmp(a.data(), b.data(), a.size() * 4) == 0;
}
static cudaStreamCaptureStatus capture_status(cudaStream_t s) {
    cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
    RLC_CUDA_CHECK(cudaStreamIsCapturing(s, &st));
    return st;
}

// Capture, count, instantiate, replay (see the header comment). `mode` names the emulator mode for messages.
static void check_capture_replay(const char *mode) {
    Bufs b;
    cudaStream_t s, s2, s3;
    RLC_CUDA_CHECK(cudaStreamCreate(&s));
    RLC_CUDA_CHECK(cudaStreamCreate(&s2));
    RLC_CUDA_CHECK(cudaStreamCreateWithFlags(&s3, cudaStreamNonBlocking));
    const bool late = emu::defer_enabled() && !emu::shuffle_enabled();

    // The program issued directly, for two sets of inputs: the reference results.
    b.poison();
    b.set_inputs(1, 0.25f);
    issue_program(b, s);
    RLC_CUDA_CHECK(cudaStreamSynchronize(s));
    const std::vector<float> ref_a = b.results();
    b.poison();
    b.set_inputs(2, -3.0f);
    issue_program(b, s);
    RLC_CUDA_CHECK(cudaStreamSynchronize(s));
    const std::vector<float> ref_b = b.results();
    {
        std::vector<float> hin_b(b.hin, b.hin + N);
        b.set_inputs(1, 0.25f);
        const std::vector<float> cpu_a = cpu_program(b.hin, 0.25f), cpu_b = cpu_program(hin_b.data(), -3.0f);
        CHECK(same_bits(ref_a, cpu_a) && same_bits(ref_b, cpu_b), "%s: the directly issued program matches the CPU",
              mode);
        CHECK(!same_bits(ref_a, ref_b), "%s: the two input sets give different results", mode);
    }

    // Capture: nothing runs, nothing is queued.
    b.poison();
    b.set_inputs(1, 0.25f);
    const std::vector<float> before = b.snapshot();
    const size_t queued0 = emu::ops_queued();
    CHECK(capture_status(s) == cudaStreamCaptureStatusNone, "%s: not capturing before", mode);
    RLC_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
    CHECK(capture_status(s) == cudaStreamCaptureStatusActive, "%s: capturing", mode);
    CHECK(capture_status(s2) == cudaStreamCaptureStatusNone, "%s: only s captures", mode);
    issue_program(b, s);
    cudaGraph_t g = nullptr;
    RLC_CUDA_CHECK(cudaStreamEndCapture(s, &g));
    CHECK(g != nullptr, "%s: EndCapture gives a graph", mode);
    CHECK(capture_status(s) == cudaStreamCaptureStatusNone, "%s: not capturing after EndCapture", mode);
    CHECK(emu::ops_queued() == queued0, "%s: capture queued nothing (%zu operations)", mode,
          emu::ops_queued() - queued0);
    CHECK(same_bits(b.snapshot(), before), "%s: nothing ran at capture (every buffer unchanged)", mode);

    // Nodes: the count, the handles, a longer array's tail set to NULL.
    size_t n = 0;
    RLC_CUDA_CHECK(cudaGraphGetNodes(g, nullptr, &n));
    CHECK(n == NODES, "%s: %zu nodes, expected %zu", mode, n, NODES);
    std::vector<cudaGraphNode_t> nodes(NODES + 2, (cudaGraphNode_t)&n);
    n = NODES + 2;
    RLC_CUDA_CHECK(cudaGraphGetNodes(g, nodes.data(), &n));
    bool handles_ok = n == NODES && nodes[NODES] == nullptr && nodes[NODES + 1] == nullptr;
    for (size_t i = 0; i < NODES; i++)
        for (size_t j = 0; j < i; j++) handles_ok = handles_ok && nodes[i] && nodes[i] != nodes[j];
    CHECK(handles_ok, "%s: GetNodes gives %zu distinct handles and NULL past them", mode, NODES);
    n = 3;
    RLC_CUDA_CHECK(cudaGraphGetNodes(g, nodes.data(), &n));
    CHECK(n == 3, "%s: GetNodes with a short array fills it", mode);

    // Instantiate, then destroy the graph before the exec is used.
    cudaGraphExec_t exec = nullptr;
    RLC_CUDA_CHECK(cudaGraphInstantiate(&exec, g, 0));
    RLC_CUDA_CHECK(cudaGraphDestroy(g));

    // Replay with the inputs of ref_a. In the late order it is queued and runs at the synchronisation.
    const size_t run0 = emu::ops_run(), queued1 = emu::ops_queued();
    RLC_CUDA_CHECK(cudaGraphLaunch(exec, s));
    if (late) {
        CHECK(emu::ops_run() == run0 && emu::ops_queued() == queued1 + NODES,
              "%s: the launch queued its %zu operations and ran none (ran %zu, queued %zu)", mode, NODES,
              emu::ops_run() - run0, emu::ops_queued() - queued1);
        std::vector<float> h(b.hout, b.hout + N);
        CHECK(!same_bits(h, std::vector<float>(ref_a.begin(), ref_a.begin() + N)),
              "%s: before the synchronisation the pinned output is not written yet", mode);
    }
    if (!emu::defer_enabled()) // eager: run at the call
        CHECK(same_bits(b.results(), ref_a), "%s: the eager launch ran at the call", mode);
    RLC_CUDA_CHECK(cudaStreamSynchronize(s));
    CHECK(same_bits(b.results(), ref_a), "%s: replay 1 equals the directly issued program", mode);

    // The host changes the inputs: the pinned buffer and (cudaMemcpy) the device parameter. Replay twice.
    b.poison();
    b.set_inputs(2, -3.0f);
    for (int r = 0; r < 2; r++) {
        RLC_CUDA_CHECK(cudaGraphLaunch(exec, s));
        RLC_CUDA_CHECK(cudaStreamSynchronize(s));
        CHECK(same_bits(b.results(), ref_b), "%s: replay %d after new inputs sees them", mode, 2 + r);
    }

    // On other streams: blocking s2, non-blocking s3.
    b.poison();
    b.set_inputs(1, 0.25f);
    RLC_CUDA_CHECK(cudaGraphLaunch(exec, s2));
    RLC_CUDA_CHECK(cudaStreamSynchronize(s2));
    CHECK(same_bits(b.results(), ref_a), "%s: replay on a second (blocking) stream", mode);
    b.poison();
    b.set_inputs(2, -3.0f);
    RLC_CUDA_CHECK(cudaGraphLaunch(exec, s3));
    RLC_CUDA_CHECK(cudaStreamSynchronize(s3));
    CHECK(same_bits(b.results(), ref_b), "%s: replay on a non-blocking stream", mode);

    // The NULL stream's implicit order: the parameter written by a NULL-stream kernel, not synchronised, then a
    // replay on blocking s must see it (in every order the shuffle takes).
    b.poison();
    b.set_inputs(1, 0.0f);
    RLC_LAUNCH(set_kernel, 1, 1, 0, 0, b.delta, 0.25f, 1);
    RLC_CUDA_CHECK(cudaGraphLaunch(exec, s));
    RLC_CUDA_CHECK(cudaStreamSynchronize(s));
    CHECK(same_bits(b.results(), ref_a), "%s: a replay on a blocking stream waits for the NULL stream", mode);

    // Events around a replay order another stream: s2 copies w after the replay, synchronising only s2.
    {
        cudaEvent_t e0, e1;
        RLC_CUDA_CHECK(cudaEventCreate(&e0));
        RLC_CUDA_CHECK(cudaEventCreate(&e1));
        float *wcopy = nullptr;
        RLC_CUDA_CHECK(cudaMalloc((void **)&wcopy, N * 4));
        b.poison();
        b.set_inputs(2, -3.0f);
        RLC_CUDA_CHECK(cudaEventRecord(e0, s));
        RLC_CUDA_CHECK(cudaGraphLaunch(exec, s));
        RLC_CUDA_CHECK(cudaEventRecord(e1, s));
        RLC_CUDA_CHECK(cudaStreamWaitEvent(s2, e1, 0));
        RLC_CUDA_CHECK(cudaMemcpyAsync(wcopy, b.w, N * 4, cudaMemcpyDeviceToDevice, s2));
        RLC_CUDA_CHECK(cudaStreamSynchronize(s2));
        std::vector<float> wc = emu_test::from_device(wcopy, N);
        CHECK(same_bits(wc, std::vector<float>(ref_b.begin(), ref_b.begin() + N)),
              "%s: a stream waiting on an event recorded after the replay sees its output", mode);
        RLC_CUDA_CHECK(cudaEventSynchronize(e1));
        float ms = -1;
        RLC_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
        CHECK(ms >= 0, "%s: events around the replay time it (%g ms)", mode, ms);
        RLC_CUDA_CHECK(cudaFree(wcopy));
        RLC_CUDA_CHECK(cudaEventDestroy(e0));
        RLC_CUDA_CHECK(cudaEventDestroy(e1));
    }

    RLC_CUDA_CHECK(cudaGraphExecDestroy(exec));
    for (cudaStream_t t : {s, s2, s3}) RLC_CUDA_CHECK(cudaStreamDestroy(t));
}

// A prohibited call during a capture on s. `violate` makes the call and returns its error code; the capture must
// then be invalidated, EndCapture fail with no graph, nothing of the capture run, and s work normally afterwards.
static void check_prohibited(const char *mode, const char *what, unsigned stream_flags, cudaStreamCaptureMode cmode,
                             cudaError_t expected, const std::function<cudaError_t(cudaStream_t)> &violate) {
    cudaStream_t s;
    RLC_CUDA_CHECK(cudaStreamCreateWithFlags(&s, stream_flags));
    float *p = nullptr;
    RLC_CUDA_CHECK(cudaMalloc((void **)&p, N * 4));
    RLC_LAUNCH(set_kernel, GRID, BS, 0, s, p, 1.0f, N);
    RLC_CUDA_CHECK(cudaStreamSynchronize(s));
    cudaGetLastError();

    RLC_CUDA_CHECK(cudaStreamBeginCapture(s, cmode));
    RLC_LAUNCH(set_kernel, GRID, BS, 0, s, p, 2.0f, N); // recorded, must never run
    const cudaError_t e = violate(s);
    CHECK(e == expected, "%s: %s returns %s (%d), expected %s", mode, what, cudaGetErrorName(e), (int)e,
          cudaGetErrorName(expected));
    CHECK(capture_status(s) == cudaStreamCaptureStatusInvalidated, "%s: %s invalidates the capture", mode, what);
    cudaGetLastError();
    RLC_LAUNCH(set_kernel, GRID, BS, 0, s, p, 3.0f, N); // on an invalidated capture: refused at the call
    CHECK(cudaGetLastError() == cudaErrorStreamCaptureInvalidated,
          "%s: after %s a launch on the stream reports the invalidated capture", mode, what);
    cudaGraph_t g = (cudaGraph_t)&s;
    const cudaError_t ee = cudaStreamEndCapture(s, &g);
    CHECK(ee == cudaErrorStreamCaptureInvalidated && g == nullptr,
          "%s: after %s EndCapture returns %s and %s graph", mode, what, cudaGetErrorName(ee), g ? "a" : "no");
    CHECK(capture_status(s) == cudaStreamCaptureStatusNone, "%s: after %s the stream left capture mode", mode, what);
    std::vector<float> h = emu_test::from_device(p, N);
    CHECK(h[0] == 1.0f && h[N - 1] == 1.0f, "%s: %s: nothing of the invalidated capture ran (%g)", mode, what, h[0]);
    // The stream works normally again.
    cudaGetLastError();
    RLC_LAUNCH(set_kernel, GRID, BS, 0, s, p, 4.0f, N);
    CHECK(cudaGetLastError() == cudaSuccess, "%s: after %s a launch succeeds", mode, what);
    RLC_CUDA_CHECK(cudaStreamSynchronize(s));
    h = emu_test::from_device(p, N);
    CHECK(h[0] == 4.0f && h[N - 1] == 4.0f, "%s: after %s the stream runs its work (%g)", mode, what, h[0]);
    RLC_CUDA_CHECK(cudaFree(p));
    RLC_CUDA_CHECK(cudaStreamDestroy(s));
}

// A call that is allowed during a capture: it succeeds, the capture stays active and gives a graph.
static void check_allowed(const char *mode, const char *what, unsigned stream_flags, cudaStreamCaptureMode cmode,
                          const std::function<cudaError_t(cudaStream_t)> &call) {
    cudaStream_t s;
    RLC_CUDA_CHECK(cudaStreamCreateWithFlags(&s, stream_flags));
    float *p = nullptr;
    RLC_CUDA_CHECK(cudaMalloc((void **)&p, N * 4));
    RLC_CUDA_CHECK(cudaStreamBeginCapture(s, cmode));
    RLC_LAUNCH(set_kernel, GRID, BS, 0, s, p, 2.0f, N);
    const cudaError_t e = call(s);
    CHECK(e == cudaSuccess, "%s: %s is allowed (%s)", mode, what, cudaGetErrorName(e));
    CHECK(capture_status(s) == cudaStreamCaptureStatusActive, "%s: %s leaves the capture active", mode, what);
    cudaGraph_t g = nullptr;
    CHECK(cudaStreamEndCapture(s, &g) == cudaSuccess && g, "%s: after %s EndCapture gives a graph", mode, what);
    size_t n = 0;
    if (g) RLC_CUDA_CHECK(cudaGraphGetNodes(g, nullptr, &n));
    CHECK(n == 1, "%s: after %s the graph has its 1 node (%zu)", mode, what, n);
    if (g) RLC_CUDA_CHECK(cudaGraphDestroy(g));
    RLC_CUDA_CHECK(cudaFree(p));
    RLC_CUDA_CHECK(cudaStreamDestroy(s));
}

static void check_rules(const char *mode) {
    const cudaStreamCaptureMode G = cudaStreamCaptureModeGlobal, TL = cudaStreamCaptureModeThreadLocal,
                                R = cudaStreamCaptureModeRelaxed;
    const unsigned BLK = cudaStreamDefault, NB = cudaStreamNonBlocking;
    const cudaError_t UNS = cudaErrorStreamCaptureUnsupported, IMP = cudaErrorStreamCaptureImplicit;
    float *d = nullptr, *pin = nullptr;
    RLC_CUDA_CHECK(cudaMalloc((void **)&d, N * 4));
    RLC_CUDA_CHECK(cudaMallocHost((void **)&pin, N * 4));
    std::vector<float> pageable(N, 1.0f);
    for (cudaStreamCaptureMode m : {G, TL, R}) {
        check_prohibited(mode, "cudaStreamSynchronize", BLK, m, UNS, [](cudaStream_t s) {
            return cudaStreamSynchronize(s);
        });
        check_prohibited(mode, "cudaStreamQuery", NB, m, UNS, [](cudaStream_t s) { return cudaStreamQuery(s); });
        check_prohibited(mode, "cudaDeviceSynchronize", NB, m, UNS, [](cudaStream_t) {
            return cudaDeviceSynchronize();
        });
        check_prohibited(mode, "cudaMemcpyAsync from pageable memory", NB, m, UNS, [&](cudaStream_t s) {
            return cudaMemcpyAsync(d, pageable.data(), N * 4, cudaMemcpyHostToDevice, s);
        });
        check_prohibited(mode, "cudaMemcpyAsync to pageable memory", NB, m, UNS, [&](cudaStream_t s) {
            return cudaMemcpyAsync(pageable.data(), d, N * 4, cudaMemcpyDeviceToHost, s);
        });
        check_prohibited(mode, "cudaMemcpy (blocking stream capturing)", BLK, m, IMP, [&](cudaStream_t) {
            return cudaMemcpy(pageable.data(), d, N * 4, cudaMemcpyDeviceToHost);
        });
        check_prohibited(mode, "a NULL-stream kernel (blocking stream capturing)", BLK, m, IMP, [&](cudaStream_t) {
            RLC_LAUNCH(set_kernel, GRID, BS, 0, 0, d, 5.0f, N);
            return cudaGetLastError();
        });
        check_prohibited(mode, "cudaMemsetAsync on the NULL stream (blocking stream capturing)", BLK, m, IMP,
                         [&](cudaStream_t) { return cudaMemsetAsync(d, 0, N * 4, 0); });
        check_prohibited(mode, "cudaStreamSynchronize(NULL) (blocking stream capturing)", BLK, m, IMP,
                         [&](cudaStream_t) { return cudaStreamSynchronize(0); });
        check_prohibited(mode, "cudaEventRecord", NB, m, UNS, [&](cudaStream_t s) {
            cudaEvent_t e;
            RLC_CUDA_CHECK(cudaEventCreate(&e));
            cudaError_t r = cudaEventRecord(e, s);
            RLC_CUDA_CHECK(cudaEventDestroy(e));
            return r;
        });
        check_prohibited(mode, "cudaStreamWaitEvent", NB, m, UNS, [&](cudaStream_t s) {
            cudaEvent_t e;
            RLC_CUDA_CHECK(cudaEventCreate(&e));
            cudaError_t r = cudaStreamWaitEvent(s, e, 0);
            RLC_CUDA_CHECK(cudaEventDestroy(e));
            return r;
        });
        check_prohibited(mode, "a launch failing its checks", NB, m, cudaErrorInvalidConfiguration,
                         [&](cudaStream_t s) {
                             RLC_LAUNCH(set_kernel, 1, 2048, 0, s, d, 5.0f, N);
                             return cudaGetLastError();
                         });
        // The NULL stream is free to use while only non-blocking streams capture (a kernel, a synchronisation).
        check_allowed(mode, "a NULL-stream kernel (non-blocking stream capturing)", NB, m, [&](cudaStream_t) {
            RLC_LAUNCH(set_kernel, GRID, BS, 0, 0, d, 5.0f, N);
            cudaError_t r = cudaGetLastError();
            return r ? r : cudaStreamSynchronize(0);
        });
    }
    // The potentially unsafe calls: prohibited in Global and ThreadLocal mode, allowed in Relaxed mode.
    struct Unsafe {
        const char *what;
        std::function<cudaError_t(cudaStream_t)> call;
    };
    const Unsafe unsafe[] = {
        {"cudaMalloc", [](cudaStream_t) {
             void *q = nullptr;
             cudaError_t r = cudaMalloc(&q, 64);
             if (q) RLC_CUDA_CHECK(cudaFree(q)); // Relaxed only (q is NULL on failure)
             return r;
         }},
        {"cudaFree", [&](cudaStream_t) { return cudaFree(nullptr); }},
        {"cudaMallocHost", [](cudaStream_t) {
             void *q = nullptr;
             cudaError_t r = cudaMallocHost(&q, 64);
             if (q) RLC_CUDA_CHECK(cudaFreeHost(q));
             return r;
         }},
        {"cudaFreeHost", [&](cudaStream_t) { return cudaFreeHost(nullptr); }},
        {"cudaMemcpy (non-blocking stream capturing)",
         [&](cudaStream_t) { return cudaMemcpy(pin, d, N * 4, cudaMemcpyDeviceToHost); }},
    };
    for (const Unsafe &u : unsafe) {
        check_prohibited(mode, u.what, NB, G, UNS, u.call);
        check_prohibited(mode, u.what, NB, TL, UNS, u.call);
        check_allowed(mode, u.what, NB, R, u.call);
    }
    // From another thread: a Global capture prohibits unsafe calls there too, a ThreadLocal one does not.
    auto malloc_elsewhere = [](cudaStream_t) {
        cudaError_t r = cudaSuccess;
        std::thread t([&r] {
            void *q = nullptr;
            r = cudaMalloc(&q, 64);
            if (q) cudaFree(q);
        });
        t.join();
        return r;
    };
    check_prohibited(mode, "cudaMalloc in another thread (Global)", NB, G, UNS, malloc_elsewhere);
    check_allowed(mode, "cudaMalloc in another thread (ThreadLocal)", NB, TL, malloc_elsewhere);

    // Begin / end misuse.
    {
        cudaStream_t s;
        RLC_CUDA_CHECK(cudaStreamCreate(&s));
        cudaGraph_t g = nullptr;
        CHECK(cudaStreamBeginCapture(0, G) == UNS, "%s: capture on the legacy NULL stream is refused", mode);
        CHECK(cudaStreamEndCapture(s, &g) == cudaErrorIllegalState && !g,
              "%s: EndCapture on a stream that is not capturing", mode);
        RLC_CUDA_CHECK(cudaStreamBeginCapture(s, G));
        CHECK(cudaStreamBeginCapture(s, G) == cudaErrorIllegalState, "%s: BeginCapture twice is refused", mode);
        cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
        CHECK(cudaStreamIsCapturing(0, &st) == IMP, "%s: asking about the NULL stream while a blocking one captures",
              mode);
        CHECK(capture_status(s) == cudaStreamCaptureStatusActive, "%s: ...which leaves the capture valid", mode);
        CHECK(cudaStreamDestroy(s) == cudaErrorIllegalState, "%s: a capturing stream cannot be destroyed", mode);
        cudaError_t other = cudaSuccess;
        std::thread([&] { other = cudaStreamEndCapture(s, &g); }).join();
        CHECK(other == cudaErrorStreamCaptureWrongThread, "%s: a Global capture ends on its own thread only", mode);
        CHECK(cudaStreamEndCapture(s, &g) == cudaSuccess && g, "%s: ...where it then ends", mode);
        size_t n = 1;
        RLC_CUDA_CHECK(cudaGraphGetNodes(g, nullptr, &n));
        CHECK(n == 0, "%s: an empty capture gives an empty graph (%zu nodes)", mode, n);
        cudaGraphExec_t x = nullptr;
        RLC_CUDA_CHECK(cudaGraphInstantiate(&x, g, 0));
        RLC_CUDA_CHECK(cudaGraphLaunch(x, s)); // nothing to run
        RLC_CUDA_CHECK(cudaStreamSynchronize(s));
        RLC_CUDA_CHECK(cudaGraphExecDestroy(x));
        RLC_CUDA_CHECK(cudaGraphDestroy(g));
        // A Relaxed capture may end on another thread.
        RLC_CUDA_CHECK(cudaStreamBeginCapture(s, R));
        std::thread([&] { other = cudaStreamEndCapture(s, &g); }).join();
        CHECK(other == cudaSuccess && g, "%s: a Relaxed capture may end on another thread", mode);
        if (g) RLC_CUDA_CHECK(cudaGraphDestroy(g));
        RLC_CUDA_CHECK(cudaStreamDestroy(s));
    }
    RLC_CUDA_CHECK(cudaFree(d));
    RLC_CUDA_CHECK(cudaFreeHost(pin));
    cudaGetLastError();
}

// The emulated cuBLAS under capture: a bf16 GEMM (bf16 output) and an fp32 one, captured on s and replayed, give
// the bits of the direct calls; nothing runs at capture.
static void check_blas(const char *mode) {
    const int M = 5, Nn = 7, K = 9; // odd sizes
    std::vector<__nv_bfloat16> a(M * K), bm(K * Nn);
    std::vector<float> af(M * K), bf(K * Nn);
    for (int i = 0; i < M * K; i++) af[i] = rlc_test::hash_uniform(i, 11), a[i] = __float2bfloat16(af[i]);
    for (int i = 0; i < K * Nn; i++) bf[i] = rlc_test::hash_uniform(i, 12), bm[i] = __float2bfloat16(bf[i]);
    __nv_bfloat16 *dA = emu_test::to_device(a), *dB = emu_test::to_device(bm), *dC = nullptr;
    float *dAf = emu_test::to_device(af), *dBf = emu_test::to_device(bf), *dCf = nullptr;
    RLC_CUDA_CHECK(cudaMalloc((void **)&dC, M * Nn * 2));
    RLC_CUDA_CHECK(cudaMalloc((void **)&dCf, M * Nn * 4));
    cudaStream_t s;
    RLC_CUDA_CHECK(cudaStreamCreate(&s));
    rlc_blas *h = rlc_blas_create();
    CHECK(h != nullptr, "rlc_blas_create");
    rlc_blas_set_stream(h, s);
    auto issue = [&] {
        CHECK(rlc_blas_gemm_bf16(h, 0, 1, M, Nn, K, 1.0f, dA, K, dB, K, 0.0f, dC, Nn, 1) == 0, "bf16 gemm rc");
        CHECK(rlc_blas_sgemm(h, 1, 0, M, Nn, K, 0.5f, dAf, M, dBf, Nn, 0.0f, dCf, Nn) == 0, "sgemm rc");
    };
    issue();
    RLC_CUDA_CHECK(cudaStreamSynchronize(s));
    const std::vector<__nv_bfloat16> c_direct = emu_test::from_device(dC, M * Nn);
    const std::vector<float> cf_direct = emu_test::from_device(dCf, M * Nn);
    RLC_CUDA_CHECK(cudaMemset(dC, 0xFF, M * Nn * 2));
    RLC_CUDA_CHECK(cudaMemset(dCf, 0xFF, M * Nn * 4));
    RLC_CUDA_CHECK(cudaDeviceSynchronize());
    RLC_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
    issue();
    cudaGraph_t g = nullptr;
    RLC_CUDA_CHECK(cudaStreamEndCapture(s, &g));
    size_t n = 0;
    RLC_CUDA_CHECK(cudaGraphGetNodes(g, nullptr, &n));
    CHECK(n == 2, "%s: the two GEMMs are the graph's 2 nodes (%zu)", mode, n);
    std::vector<float> cf = emu_test::from_device(dCf, M * Nn);
    uint32_t bits;
    memcpy(&bits, cf.data(), 4);
    CHECK(bits == 0xFFFFFFFFu, "%s: the captured GEMM did not run at capture", mode);
    cudaGraphExec_t x = nullptr;
    cudaGraphExec_t x2 = nullptr, x3 = nullptr; // the other ways to instantiate give the same exec
    RLC_CUDA_CHECK(cudaGraphInstantiate(&x, g, 0));
    RLC_CUDA_CHECK(cudaGraphInstantiateWithFlags(&x2, g, 0));
    RLC_CUDA_CHECK(cudaGraphInstantiate(&x3, g, nullptr, nullptr, 0));
    RLC_CUDA_CHECK(cudaGraphDestroy(g));
    RLC_CUDA_CHECK(cudaGraphUpload(x, s));
    for (int r = 0; r < 4; r++) {
        RLC_CUDA_CHECK(cudaMemset(dC, 0xFF, M * Nn * 2));
        RLC_CUDA_CHECK(cudaMemset(dCf, 0xFF, M * Nn * 4));
        RLC_CUDA_CHECK(cudaGraphLaunch(r < 2 ? x : r == 2 ? x2 : x3, s));
        RLC_CUDA_CHECK(cudaStreamSynchronize(s));
        const std::vector<__nv_bfloat16> c = emu_test::from_device(dC, M * Nn);
        cf = emu_test::from_device(dCf, M * Nn);
        CHECK(memcmp(c.data(), c_direct.data(), c.size() * 2) == 0,
              "%s: replayed bf16 GEMM = direct call, bits (replay %d)", mode, r);
        CHECK(same_bits(cf, cf_direct), "%s: replayed fp32 GEMM = direct call, bits (replay %d)", mode, r);
    }
    for (cudaGraphExec_t e : {x, x2, x3}) RLC_CUDA_CHECK(cudaGraphExecDestroy(e));
    rlc_blas_destroy(h);
    RLC_CUDA_CHECK(cudaStreamDestroy(s));
    for (void *p : {(void *)dA, (void *)dB, (void *)dC, (void *)dAf, (void *)dBf, (void *)dCf})
        RLC_CUDA_CHECK(cudaFree(p));
}

int main() {
    struct Mode {
        const char *name;
        bool defer, shuffle;
        uint64_t seed;
    };
    const Mode modes[] = {{"eager", false, false, 0},
                          {"deferred", true, false, 0},
                          {"shuffle seed 1", true, true, 1},
                          {"shuffle seed 2", true, true, 2},
                          {"shuffle seed 3", true, true, 3}};
    for (const Mode &m : modes) {
        emu::set_defer(m.defer);
        emu::set_shuffle(m.shuffle, m.seed);
        check_capture_replay(m.name);
        check_rules(m.name);
        check_blas(m.name);
    }
    return test_finish("emu_graph");
}
