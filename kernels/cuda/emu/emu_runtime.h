// kernels/cuda/emu/emu_runtime.h: the host side of the CUDA emulator. Owns the CUDA runtime stubs (device
// memory is host memory from posix_memalign, filled with 0xFF on allocation so that reads of unwritten device
// memory show NaN; pinned host memory; streams and events; the per-thread last error), the stream queues of the
// deferred mode, and kernel launch with CUDA's launch checks: at most 1024 threads per block (x, y <= 1024,
// z <= 64), grid y, z <= 65535, dynamic shared memory above 48 KiB only after
// cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize), never above 227 KiB.
//
// Deferred mode (the default; RLC_EMU_DEFER=0 in the environment, or emu::set_defer(false), gives the eager mode
// where every stream operation runs at the call). A GPU runs stream work after the call that enqueues it returns;
// a program that reads or reuses a buffer before synchronising, or that orders two streams without an event, is
// wrong there, and the deferred mode makes it wrong here too, deterministically: every stream operation (kernel
// launch, cudaMemcpyAsync, cudaMemsetAsync, cudaEventRecord, cudaStreamWaitEvent, cudaFreeAsync, and the
// emulated cuBLAS of rlc_blas.cu through emu::enqueue) is queued on its stream, and runs only when the program
// must observe it, and then only what is needed:
//   cudaStreamSynchronize(s)   runs s's queue (each operation first runs what it depends on: the source stream
//                              of a cudaStreamWaitEvent up to the recorded event, the implicit ones below)
//   cudaEventSynchronize(e)    runs e's stream up to e's marker
//   cudaEventQuery(e), cudaStreamQuery(s)   with work pending, the first query of it answers cudaErrorNotReady
//                              (as a GPU may); the next runs the work and answers cudaSuccess, so a poll ends
//   cudaDeviceSynchronize, cudaFree, cudaFreeHost, cudaStreamDestroy (its own stream), switching modes   run
//                              everything (cudaFree and cudaFreeHost synchronise the device, as in CUDA)
// The launch checks still run, and set the last error, at the call; the kernel's parameters are moved into the
// queued operation. Events take their time when their marker runs (cudaEventElapsedTime answers
// cudaErrorNotReady before that). The NULL (legacy default) stream is modelled as CUDA does: an operation on it
// waits for all work issued before it on blocking streams (cudaStreamCreate, flags 0), and an operation on a
// blocking stream waits for the work issued before it on the NULL stream; streams created with
// cudaStreamNonBlocking have no implicit order. cudaMemcpy is a NULL-stream copy that returns when it is done;
// cudaMemset a NULL-stream operation (asynchronous, as CUDA's is for device memory); cudaMemcpyToSymbol /
// FromSymbol like cudaMemcpy. Host memory is pinned (cudaMallocHost, cudaHostAlloc) or pageable (anything
// else), as on a GPU: cudaMemcpyAsync reads a pinned source and writes a pinned destination when it runs; from a
// pageable source it takes a copy of the bytes at the call (CUDA stages them; the caller may reuse the buffer),
// and to a pageable destination it runs the stream up to the copy before returning (CUDA returns when it is done).
// No background threads: queued work runs on the thread that waits for it, in the order of the dependencies
// (seeded by issue order), one operation at a time, under one recursive mutex.
// Orders. The deferred mode has two orders in which it runs queued work, both legal for CUDA:
//   late (the default)  as above: only what the program must observe, as late as allowed, one fixed order
//                       (a synchronisation runs its stream's operations in stream order; cudaDeviceSynchronize
//                       the streams one after another, by creation). It misses a race that only another legal
//                       interleaving shows, e.g. a write-after-read across streams (b reads x, a then overwrites
//                       x without waiting on b; synchronising b first runs b's read first), or a missing event
//                       wait that cudaDeviceSynchronize happens to run in the right order.
//   shuffle             RLC_EMU_DEFER=shuffle (seed: RLC_EMU_SHUFFLE_SEED=N, default 1), or emu::set_shuffle(on,
//                       seed). (RLC_EMU_DEFER other than unset, empty, 0, 1 or shuffle is an error.) Whenever the late order runs an operation, before it the shuffle order may first
//                       run (probability 1/2, then 1/2 for each further one) the ready head operation of a
//                       stream chosen by a seeded generator, any stream; a ready head is the first queued
//                       operation of its stream whose dependencies (the cudaStreamWaitEvent marker, the NULL
//                       stream's implicit ones) have all run. cudaDeviceSynchronize, cudaFree and the other
//                       calls that run everything run it one random ready head at a time. And at every enqueue
//                       (the new operation included), cudaMalloc, cudaMallocHost (probability 1/4 each) and
//                       cudaStreamQuery / cudaEventQuery (1/2), ready work may run before the call returns: work
//                       that nothing waits for runs at any time, also right at its call, as on a GPU. Every
//                       operation still runs after what it depends on and at the latest when the late order
//                       would run it; the pinned/pageable rules hold (a pageable source is staged at the call, a
//                       pageable destination is written before the call returns); queries may answer cudaSuccess
//                       at once when the work has run. Deterministic: no threads, and the same seed with the same
//                       sequence of calls gives the same order (the generator is splitmix64, advanced only by the
//                       shuffle order's choices). Its limits: a random sample of the legal orders, not all of
//                       them (run several seeds; tests/emu/CMakeLists.txt runs the multi-stream tests under 3);
//                       one operation at a time, so two kernels never overlap (a race between the blocks of two
//                       concurrent kernels is not shown); the emulated NCCL over MPI completes a collective in
//                       rlc_comm_wait, so work queued behind it on its stream may run before its result is there
//                       (a false failure, several ranks only; see rlc_comm.cu).
// RLC_EMU_DEFER_STATS=1 prints at exit how much was deferred (operations queued, the most pending at once, and
// those never run because nothing waited for them; in the shuffle order also those it ran early, at calls that
// waited for nothing).
//
// Stream capture (cudaStreamBeginCapture .. cudaStreamEndCapture, cudaGraphInstantiate, cudaGraphLaunch,
// cudaGraphGetNodes, cudaStreamIsCapturing, cudaGraphDestroy, cudaGraphExecDestroy), as CUDA does, in the eager and
// the deferred modes alike. While stream s captures, every operation issued on s (kernel launches, cudaMemsetAsync,
// cudaMemcpyAsync between device and pinned memory, the emulated cuBLAS through emu::enqueue) is recorded, in issue
// order, into the capture instead of being queued or run: nothing recorded runs at capture time; launch checks still
// run and set the error at the call (a failed launch also invalidates the capture: the strict reading of CUDA's rule
// that an error during capture invalidates it). Work queued on s
// before the capture began is not part of it. cudaStreamEndCapture returns the recorded operations as a graph
// (CUgraph_st, its nodes in order), cudaGraphInstantiate copies them into an executable graph (the graph may then be
// destroyed), and cudaGraphLaunch(exec, t) issues copies of them, in order, as ordinary operations of any stream t:
// queued with the NULL stream's implicit dependencies in the deferred mode (so synchronisation, events and the
// shuffle order treat them as any stream work), run at the call in the eager mode, recorded when t itself captures.
// A replay uses the kernel parameters captured and reads memory when each operation runs (new contents written by
// the host between replays are seen). Prohibited during capture, each failing at the call with a line on stderr and
// invalidating the capture(s) it violates (the stream stays in capture mode, cudaStreamIsCapturing answers
// cudaStreamCaptureStatusInvalidated, further operations on it fail with cudaErrorStreamCaptureInvalidated, and
// cudaStreamEndCapture returns that error, no graph, and ends the capture):
//   cudaStreamSynchronize / cudaStreamQuery of the capturing stream, cudaDeviceSynchronize (any capture, any mode),
//   cudaMemcpyAsync on it from or to pageable host memory (accessed at the call; a graph cannot)
//                                         cudaErrorStreamCaptureUnsupported
//   any work on the legacy NULL stream (launch, cudaMemset*, cudaMemcpy, cudaStreamSynchronize(0), ...) while a
//   blocking stream captures             cudaErrorStreamCaptureImplicit (cudaStreamIsCapturing(0, ..) answers it
//                                         without invalidating, as CUDA documents)
//   the potentially unsafe calls cudaMalloc, cudaFree, cudaMallocHost, cudaFreeHost and the synchronous
//   cudaMemcpy / cudaMemcpyToSymbol / FromSymbol, from the capturing thread of a Global or ThreadLocal capture or
//   from any thread during a Global one (Relaxed captures allow them)   cudaErrorStreamCaptureUnsupported
//   not modelled, refused so that such code fails here rather than replays wrongly: cudaEventRecord and
//   cudaStreamWaitEvent on a capturing stream (cross-stream fork/join capture), cudaMallocAsync / cudaFreeAsync on
//   it (memory nodes)                     cudaErrorStreamCaptureUnsupported
// Begin on the NULL stream (also cudaStreamPerThread, which the emulator models as the NULL stream):
// cudaErrorStreamCaptureUnsupported; begin on a capturing stream, end on one that is not, cudaStreamDestroy of a
// capturing stream: cudaErrorIllegalState (CUDA's documentation names no code for these); end of a Global or
// ThreadLocal capture from another thread: cudaErrorStreamCaptureWrongThread (the capture goes on).
// cudaGraphInstantiate takes flags 0 only. The synchronous cudaMemcpy is treated as unsafe also while only a
// non-blocking stream captures, which may be stricter than CUDA (a program that obeys it is right on a GPU).
//
// The runtime functions are defined `weak` with C linkage, matching the declarations of the toolkit's
// cuda_runtime_api.h, so that every translation unit may include this header.
#pragma once
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "emu_core.h"

struct CUstream_st {
    int flags;
    uint64_t id; // its queue in emu::queues() (0: the NULL stream, which has no CUstream_st)
};
namespace emu {
struct EventState {
    double t_ms = 0;          // when the marker ran
    uint64_t stream = 0, seq = 0; // the last record: its stream and its marker's sequence number
    uint64_t gen = 0;         // records so far (a marker of an older record does not complete a newer one)
    bool recorded = false, done = false, queried = false;
};
} // namespace emu
struct CUevent_st {
    std::shared_ptr<emu::EventState> st; // shared with queued markers (an event may be destroyed before they run)
};
// Stream capture: an operation recorded into a capture (a graph node), the graph cudaStreamEndCapture returns (its
// nodes in issue order) and the executable graph cudaGraphInstantiate makes of it (copies of the operations: the
// graph may be destroyed first).
struct CUgraphNode_st {
    const char *what;         // the kernel's name, "cudaMemcpyAsync", ... (messages)
    std::function<void()> fn; // the operation as it would have been queued: runs with the arguments of the call
};
struct CUgraph_st {
    std::vector<std::unique_ptr<CUgraphNode_st>> nodes; // issue order (stable addresses: cudaGraphGetNodes)
};
struct CUgraphExec_st {
    std::vector<CUgraphNode_st> ops; // copies of the graph's nodes, in order
};

namespace emu {

constexpr size_t smem_default_limit = 48 * 1024;
constexpr size_t smem_optin_limit = 227 * 1024;

struct Runtime {
    std::mutex mu;
    std::map<uintptr_t, size_t> allocs;            // device allocations: start -> bytes
    std::map<uintptr_t, size_t> pinned;            // pinned host allocations: start -> bytes
    std::unordered_map<const void *, int> max_dyn; // per kernel: cudaFuncAttributeMaxDynamicSharedMemorySize
    int device = 0;
};
inline Runtime &runtime() {
    static Runtime r;
    return r;
}
inline thread_local cudaError_t tl_last_error = cudaSuccess;

inline cudaError_t set_error(cudaError_t e) {
    if (e != cudaSuccess) tl_last_error = e;
    return e;
}

inline double now_ms() {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Whether [p, p + n) lies inside one block of `blocks` (start -> bytes; an empty block holds its first byte).
inline bool in_block(const std::map<uintptr_t, size_t> &blocks, const void *p, size_t n) {
    std::lock_guard<std::mutex> lk(runtime().mu);
    auto it = blocks.upper_bound((uintptr_t)p);
    if (it == blocks.begin()) return false;
    --it;
    return (uintptr_t)p + n <= it->first + (it->second ? it->second : 1);
}
// Pinned host memory (cudaMallocHost / cudaHostAlloc), and device memory (cudaMalloc).
inline bool is_pinned(const void *p, size_t n) { return in_block(runtime().pinned, p, n); }
inline bool is_device(const void *p) { return in_block(runtime().allocs, p, 1); }

// ---------------------------------------------------------------------------------------------------------
// Stream queues (the deferred mode)

// RLC_EMU_DEFER: unset, empty or 1 (deferred, late order), 0 (eager), shuffle (deferred, shuffle order). A
// misspelt value fails rather than silently testing another mode.
inline const char *load_defer_env() {
    const char *s = getenv("RLC_EMU_DEFER");
    if (!s || !*s || !strcmp(s, "0") || !strcmp(s, "1") || !strcmp(s, "shuffle")) return s ? s : "";
    fail("RLC_EMU_DEFER=%s: expected 0 (eager), 1 (deferred, the default) or shuffle (deferred, seeded order)", s);
}
inline bool load_defer() { return strcmp(load_defer_env(), "0") != 0; }
// RLC_EMU_DEFER=shuffle: the deferred mode in the seeded shuffle order (RLC_EMU_SHUFFLE_SEED=N, default 1).
inline bool load_shuffle() { return strcmp(load_defer_env(), "shuffle") == 0; }
inline uint64_t load_shuffle_seed() {
    const char *s = getenv("RLC_EMU_SHUFFLE_SEED");
    if (!s || !*s) return 1;
    char *end = nullptr;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || s[0] == '-' || errno == ERANGE)
        fail("RLC_EMU_SHUFFLE_SEED=%s: expected a non-negative integer below 2^64", s);
    return (uint64_t)v;
}

struct Dep {
    uint64_t stream, seq; // run `stream` up to the operation numbered `seq` first
};
struct Op {
    uint64_t seq;
    std::vector<Dep> deps;
    std::function<void()> fn;
};
// A stream capture in progress (cudaStreamBeginCapture .. cudaStreamEndCapture).
struct Capture {
    cudaStreamCaptureMode mode;
    std::thread::id thread;  // the thread that began it (Global / ThreadLocal modes: who may call unsafe APIs)
    bool blocking;           // its stream synchronises with the legacy NULL stream
    bool invalidated = false; // by a prohibited call: cudaStreamEndCapture fails and returns no graph
    std::vector<std::unique_ptr<CUgraphNode_st>> nodes; // recorded operations, issue order
};
struct StreamQueue {
    bool blocking = true; // synchronises implicitly with the NULL stream
    std::deque<Op> q;
    uint64_t queried = 0; // the last operation a cudaStreamQuery answered cudaErrorNotReady for
};
struct Queues;
inline Queues &queues();
struct Queues {
    std::recursive_mutex mu;
    bool defer = load_defer();
    bool shuffle = load_shuffle();    // the seeded shuffle order (else: as late as allowed)
    uint64_t rng = load_shuffle_seed(); // its generator's state (splitmix64)
    uint64_t next_seq = 1, next_stream = 1;
    std::map<uint64_t, StreamQueue> streams; // 0: the NULL stream; std::map: references stay valid
    std::map<uint64_t, Capture> captures;    // by stream id: the streams capturing now
    // RLC_EMU_DEFER_STATS=1: at exit, how much was deferred (operations queued, the most pending at once)
    size_t pending = 0, max_pending = 0, queued = 0;
    size_t ran = 0;       // queued operations run so far
    size_t ran_early = 0; // of them, run by the shuffle order at a call that waited for nothing
    int waiting = 0;      // run_until / run_all calls in progress (a call is waiting for the device)
    Queues() {
        streams[0];
        if (const char *s = getenv("RLC_EMU_DEFER_STATS"))
            if (s[0] == '1') atexit([] {
                Queues &Q = queues();
                fprintf(stderr, "rlc-emu: deferred mode: %zu operations queued, at most %zu pending at once, %zu "
                                "never run", Q.queued, Q.max_pending, Q.pending);
                if (Q.shuffle) fprintf(stderr, ", %zu run early by the shuffle order", Q.ran_early);
                fprintf(stderr, "\n");
            });
    }
};
// Never destroyed: the stats at exit, and CUDA calls from other static destructors, may still use it.
inline Queues &queues() {
    static Queues &q = *new Queues;
    return q;
}

inline uint64_t stream_id(cudaStream_t s) {
    // cudaStreamLegacy and cudaStreamPerThread (handles 1, 2) are the NULL stream here (one host thread enqueues)
    return (uintptr_t)s <= 2 ? 0 : s->id;
}

// Whether everything `op` depends on has run: each dependency's stream is past it (or destroyed: its work ran).
inline bool op_ready(const Op &op) {
    Queues &Q = queues();
    for (const Dep &d : op.deps) {
        auto it = Q.streams.find(d.stream);
        if (it != Q.streams.end() && !it->second.q.empty() && it->second.q.front().seq <= d.seq) return false;
    }
    return true;
}

// Runs the head operation of sq (what it depends on has run).
inline void run_front(StreamQueue &sq) {
    Queues &Q = queues();
    Op op = std::move(sq.q.front());
    sq.q.pop_front();
    Q.pending--;
    Q.ran++;
    op.fn();
}

// The shuffle order's generator: splitmix64 on the seed; one_in(n) is true with probability 1/n.
inline uint64_t shuffle_next() {
    uint64_t z = (queues().rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
inline bool one_in(uint64_t n) { return shuffle_next() % n == 0; }

// Runs the head operation of a stream chosen at random among those whose head is ready (everything it depends on
// has run). False when nothing is pending.
inline bool run_random_ready() {
    Queues &Q = queues();
    std::vector<StreamQueue *> ready;
    for (auto &kv : Q.streams) // std::map: by stream id, the same candidates in the same order each run
        if (!kv.second.q.empty() && op_ready(kv.second.q.front())) ready.push_back(&kv.second);
    if (ready.empty()) return false;
    run_front(*ready[shuffle_next() % ready.size()]);
    return true;
}

// The shuffle order's extra work: with probability 1/start_one_in, runs a random ready head operation
// (run_random_ready), then another with probability 1/2, and so on. Legal at any moment: a GPU may run any
// operation once the host has issued it and its dependencies are complete. Nothing in the late order or the eager
// mode.
inline void shuffle_point(uint64_t start_one_in) {
    Queues &Q = queues();
    std::lock_guard<std::recursive_mutex> lk(Q.mu);
    if (!Q.defer || !Q.shuffle || !one_in(start_one_in)) return;
    do {
        if (!run_random_ready()) return;
        if (Q.waiting == 0) Q.ran_early++;
    } while (one_in(2));
}

// Marks the calls that wait for the device (ops_run counts what they run).
struct Waiting {
    Waiting() { queues().waiting++; }
    ~Waiting() { queues().waiting--; }
};

// Runs stream `sid` up to and including operation `seq` (each operation after what it depends on). The
// dependencies of an operation are older than it, so the recursion ends. The head operation keeps its
// dependencies while they run (a shuffle step in between must not take it for ready); a shuffle step may also run
// it, which the loop then sees.
inline void run_until(uint64_t sid, uint64_t seq) {
    Queues &Q = queues();
    std::lock_guard<std::recursive_mutex> lk(Q.mu);
    auto it = Q.streams.find(sid);
    if (it == Q.streams.end()) return; // destroyed: its work has run
    Waiting w;
    StreamQueue &sq = it->second;
    while (!sq.q.empty() && sq.q.front().seq <= seq) {
        const uint64_t head = sq.q.front().seq;
        const std::vector<Dep> deps = sq.q.front().deps;
        for (const Dep &d : deps) run_until(d.stream, d.seq);
        shuffle_point(2); // other streams' ready work may run first (shuffle order only)
        if (!sq.q.empty() && sq.q.front().seq == head) run_front(sq);
    }
}

inline void run_stream(cudaStream_t s) { run_until(stream_id(s), UINT64_MAX); }

// Runs every queued operation: stream by stream (late order), or one ready head operation at a time, its stream
// chosen at random (shuffle order). The oldest pending operation is always ready, so that loop ends.
inline void run_all() {
    Queues &Q = queues();
    std::lock_guard<std::recursive_mutex> lk(Q.mu);
    Waiting w;
    if (Q.defer && Q.shuffle)
        while (run_random_ready()) {
        }
    for (auto &kv : Q.streams) run_until(kv.first, UINT64_MAX);
}

// ---------------------------------------------------------------------------------------------------------
// Stream capture: the checks every call makes against the captures in progress (see the header comment). Each
// returns cudaSuccess when the call may go on, else sets and returns the error after invalidating the captures the
// call violates, with a line on stderr naming the call, the rule and the captures.

// Invalidates the captures of the streams in `victims` and reports `call` failing with e (its name from
// cudaGetErrorName, defined further down) because of `why`.
inline cudaError_t capture_violation(cudaError_t e, const char *call, const char *why,
                                     const std::vector<uint64_t> &victims) {
    Queues &Q = queues();
    std::lock_guard<std::recursive_mutex> lk(Q.mu);
    std::string ids;
    for (uint64_t sid : victims) {
        Q.captures.at(sid).invalidated = true;
        ids += (ids.empty() ? "" : ", ") + std::to_string(sid);
    }
    fprintf(stderr, "rlc-emu: %s fails with %s: %s; the capture of stream %s is invalidated (cudaStreamEndCapture "
                    "will return cudaErrorStreamCaptureInvalidated)\n", call, cudaGetErrorName(e), why, ids.c_str());
    return set_error(e);
}
// The streams capturing now that synchronise with the legacy NULL stream.
inline std::vector<uint64_t> blocking_captures() {
    std::vector<uint64_t> v;
    for (auto &kv : queues().captures)
        if (kv.second.blocking) v.push_back(kv.first);
    return v;
}
// An asynchronous operation `call` issued on stream s. *rec: the capture to record it into (s is capturing), or
// null (queue or run it as usual). Errors: s's capture was invalidated before (cudaErrorStreamCaptureInvalidated;
// nothing more is recorded), or s is the legacy NULL stream while a blocking stream captures (CUDA: the operation
// would depend implicitly on the capture; cudaErrorStreamCaptureImplicit, those captures invalidated).
inline cudaError_t capture_gate(cudaStream_t s, const char *call, Capture **rec) {
    Queues &Q = queues();
    std::lock_guard<std::recursive_mutex> lk(Q.mu);
    *rec = nullptr;
    const uint64_t sid = stream_id(s);
    auto it = Q.captures.find(sid);
    if (it != Q.captures.end()) {
        if (it->second.invalidated) {
            fprintf(stderr, "rlc-emu: %s fails with cudaErrorStreamCaptureInvalidated: its stream's capture was "
                            "invalidated by an earlier error (end it with cudaStreamEndCapture)\n", call);
            return set_error(cudaErrorStreamCaptureInvalidated);
        }
        *rec = &it->second;
        return cudaSuccess;
    }
    if (sid == 0) {
        const std::vector<uint64_t> v = blocking_captures();
        if (!v.empty())
            return capture_violation(cudaErrorStreamCaptureImplicit, call,
                                     "work on the legacy NULL stream while a blocking stream is capturing", v);
    }
    return cudaSuccess;
}
// A call that synchronises with or queries stream s (cudaStreamSynchronize, cudaStreamQuery, the synchronous
// copies): illegal on a capturing stream (its recorded work is not scheduled; cudaErrorStreamCaptureUnsupported)
// and on the NULL stream while a blocking stream captures (cudaErrorStreamCaptureImplicit).
inline cudaError_t capture_sync_gate(cudaStream_t s, const char *call) {
    Queues &Q = queues();
    std::lock_guard<std::recursive_mutex> lk(Q.mu);
    const uint64_t sid = stream_id(s);
    if (Q.captures.count(sid))
        return capture_violation(cudaErrorStreamCaptureUnsupported, call,
                                 "synchronising with or querying a capturing stream", {sid});
    Capture *rec;
    return capture_gate(s, call, &rec);
}
// A "potentially unsafe" call (cudaMalloc, cudaFree, cudaMallocHost, cudaFreeHost, the synchronous cudaMemcpy):
// prohibited, as in CUDA, while this thread has a capture begun in Global or ThreadLocal mode or any thread has
// one in Global mode (cudaErrorStreamCaptureUnsupported; those captures invalidated). Relaxed captures allow it.
inline cudaError_t capture_unsafe_gate(const char *call) {
    Queues &Q = queues();
    std::lock_guard<std::recursive_mutex> lk(Q.mu);
    const std::thread::id me = std::this_thread::get_id();
    std::vector<uint64_t> v;
    for (auto &kv : Q.captures) {
        const Capture &c = kv.second;
        if ((c.thread == me && c.mode != cudaStreamCaptureModeRelaxed) ||
            (c.thread != me && c.mode == cudaStreamCaptureModeGlobal))
            v.push_back(kv.first);
    }
    if (v.empty()) return cudaSuccess;
    return capture_violation(cudaErrorStreamCaptureUnsupported, call,
                             "a potentially unsafe call during a Global or ThreadLocal mode stream capture", v);
}
// A stream operation the emulator does not record (cudaEventRecord, cudaStreamWaitEvent, cudaMallocAsync,
// cudaFreeAsync on a capturing stream; CUDA would record cross-stream dependencies or memory nodes): refused with
// cudaErrorStreamCaptureUnsupported, the capture invalidated, so that such code fails here rather than replays
// wrongly. Otherwise as capture_gate.
inline cudaError_t capture_unmodelled_gate(cudaStream_t s, const char *call) {
    Queues &Q = queues();
    std::lock_guard<std::recursive_mutex> lk(Q.mu);
    const uint64_t sid = stream_id(s);
    if (Q.captures.count(sid) && !Q.captures.at(sid).invalidated)
        return capture_violation(cudaErrorStreamCaptureUnsupported, call,
                                 "the emulator does not model it on a capturing stream", {sid});
    Capture *rec;
    return capture_gate(s, call, &rec);
}
// Records fn into capture c (nothing runs now).
inline void capture_record(Capture &c, const char *what, std::function<void()> fn) {
    std::lock_guard<std::recursive_mutex> lk(queues().mu);
    c.nodes.push_back(std::unique_ptr<CUgraphNode_st>(new CUgraphNode_st{what, std::move(fn)}));
}

// Queues fn on stream s (eager mode: runs it now). Returns the operation's sequence number (0 when it ran in the
// eager mode; in the shuffle order it may have run already too, before enqueue returns, as on a GPU).
// Stream capture: on a capturing stream fn is recorded instead (returns 0); on an invalidated capture or the NULL
// stream while a blocking stream captures it is dropped with the error set (capture_gate; returns 0).
inline uint64_t enqueue(cudaStream_t s, std::function<void()> fn, std::vector<Dep> deps = {},
                        const char *what = "stream operation") {
    Queues &Q = queues();
    std::lock_guard<std::recursive_mutex> lk(Q.mu);
    Capture *rec = nullptr;
    if (capture_gate(s, what, &rec) != cudaSuccess) return 0;
    if (rec) {
        if (!deps.empty()) fail("%s: an operation with dependencies was issued on a capturing stream", what);
        capture_record(*rec, what, std::move(fn));
        return 0;
    }
    if (!Q.defer) {
        fn();
        return 0;
    }
    const uint64_t sid = stream_id(s);
    auto it = Q.streams.find(sid);
    if (it == Q.streams.end()) fail("an operation was enqueued on a destroyed stream");
    StreamQueue &sq = it->second;
    if (sid == 0) { // the legacy NULL stream waits for every blocking stream
        for (auto &kv : Q.streams)
            if (kv.first != 0 && kv.second.blocking && !kv.second.q.empty())
                deps.push_back(Dep{kv.first, kv.second.q.back().seq});
    } else if (sq.blocking) { // and blocking streams wait for it
        StreamQueue &nq = Q.streams[0];
        if (!nq.q.empty()) deps.push_back(Dep{0, nq.q.back().seq});
    }
    const uint64_t seq = Q.next_seq++;
    sq.q.push_back(Op{seq, std::move(deps), std::move(fn)});
    Q.queued++;
    if (++Q.pending > Q.max_pending) Q.max_pending = Q.pending;
    shuffle_point(4); // shuffle order: work nobody waits for may run now (this operation included)
    return seq;
}

// Runs fn as an operation of stream s and returns when it has run (a synchronous call in stream order). Under
// stream capture it synchronises with s: capture_sync_gate's errors.
inline cudaError_t enqueue_and_wait(cudaStream_t s, std::function<void()> fn, const char *call) {
    Queues &Q = queues();
    std::lock_guard<std::recursive_mutex> lk(Q.mu);
    if (cudaError_t e = capture_sync_gate(s, call)) return e;
    const uint64_t seq = enqueue(s, std::move(fn), {}, call);
    if (seq) run_until(stream_id(s), seq);
    return cudaSuccess;
}

inline bool defer_enabled() { return queues().defer; }
inline bool shuffle_enabled() { return queues().shuffle; }
// API for tests: queued operations run so far by calls that waited for the device (not those the shuffle order
// ran at a call that waited for nothing). Unchanged across a call in the deferred mode = the call never waited for
// the device (on a GPU the host would have run ahead of it).
inline size_t ops_run() {
    Queues &Q = queues();
    std::lock_guard<std::recursive_mutex> lk(Q.mu);
    return Q.ran - Q.ran_early;
}
// API for tests: operations queued and not run yet.
inline size_t ops_pending() {
    Queues &Q = queues();
    std::lock_guard<std::recursive_mutex> lk(Q.mu);
    return Q.pending;
}
// API for tests: operations queued so far. What a call queued and did not wait for: the change of ops_queued across
// it minus that of ops_run (in the shuffle order some of it may have run early).
inline size_t ops_queued() {
    Queues &Q = queues();
    std::lock_guard<std::recursive_mutex> lk(Q.mu);
    return Q.queued;
}
// API for tests: operations the shuffle order ran early, at calls that waited for nothing.
inline size_t ops_run_early() {
    Queues &Q = queues();
    std::lock_guard<std::recursive_mutex> lk(Q.mu);
    return Q.ran_early;
}
// API for tests: switch between the deferred and the eager mode (pending work runs first). The deferred mode's
// order (late or shuffle) is kept.
inline void set_defer(bool on) {
    Queues &Q = queues();
    std::lock_guard<std::recursive_mutex> lk(Q.mu);
    run_all();
    Q.defer = on;
}
// API for tests: the deferred mode's order: shuffle (on, seeded by seed: the generator restarts) or as late as
// allowed (off). Pending work runs first, in the order that was in force.
inline void set_shuffle(bool on, uint64_t seed = 1) {
    Queues &Q = queues();
    std::lock_guard<std::recursive_mutex> lk(Q.mu);
    run_all();
    Q.shuffle = on;
    Q.rng = seed;
}

// A launch that fails a check does not run; like CUDA it sets the last error. The emulator also says why on
// stderr, which CUDA does not.
inline bool launch_check(const LaunchInfo &L, const void *kernel) {
    const char *why = nullptr;
    char buf[256];
    cudaError_t err = cudaErrorInvalidConfiguration;
    unsigned long long nt = (unsigned long long)L.block.x * L.block.y * L.block.z;
    if (L.block.x == 0 || L.block.y == 0 || L.block.z == 0 || L.grid.x == 0 || L.grid.y == 0 || L.grid.z == 0) {
        why = "a grid or block dimension is 0";
    } else if (nt > 1024 || L.block.x > 1024 || L.block.y > 1024 || L.block.z > 64) {
        snprintf(buf, sizeof buf, "block (%u,%u,%u) has %llu threads; at most 1024 (x, y <= 1024, z <= 64)",
                 L.block.x, L.block.y, L.block.z, nt);
        why = buf;
    } else if (L.grid.x > 2147483647u || L.grid.y > 65535 || L.grid.z > 65535) {
        why = "grid dimension too large (x < 2^31, y and z <= 65535)";
    } else if (L.smem > smem_default_limit) {
        int lim = 0;
        {
            std::lock_guard<std::mutex> lk(runtime().mu);
            auto it = runtime().max_dyn.find(kernel);
            if (it != runtime().max_dyn.end()) lim = it->second;
        }
        if (L.smem > smem_optin_limit) {
            snprintf(buf, sizeof buf, "%zu bytes of dynamic shared memory exceed the 227 KiB limit", L.smem);
            why = buf;
            err = cudaErrorInvalidValue;
        } else if ((size_t)lim < L.smem) {
            snprintf(buf, sizeof buf,
                     "%zu bytes of dynamic shared memory need cudaFuncSetAttribute(kernel, "
                     "cudaFuncAttributeMaxDynamicSharedMemorySize, >= %zu) first (current limit %d)",
                     L.smem, L.smem, lim > 0 ? lim : (int)smem_default_limit);
            why = buf;
            err = cudaErrorInvalidValue;
        }
    }
    if (!why) return true;
    fprintf(stderr, "rlc-emu: launch of %s at %s:%d fails: %s\n", L.name, L.file, L.line, why);
    set_error(err);
    return false;
}

template <class... P, class... A>
inline void launch(const char *name, const char *file, int line, void (*kernel)(P...), dim3 grid, dim3 block,
                   size_t smem, cudaStream_t stream, A &&...args) {
    static_assert(sizeof...(P) == sizeof...(A), "RLC_LAUNCH: wrong number of kernel arguments");
    std::lock_guard<std::recursive_mutex> lk(queues().mu); // rec stays valid until recorded
    Capture *rec = nullptr;
    {
        char call[256];
        snprintf(call, sizeof call, "launch of %s at %s:%d", name, file, line);
        if (capture_gate(stream, call, &rec) != cudaSuccess) return;
        LaunchInfo L{name, file, line, grid, block, smem, nullptr};
        if (!launch_check(L, (const void *)kernel)) { // its error set, at the call
            if (rec) { // a failed launch also invalidates the capture it was issued into (strict: see the top)
                rec->invalidated = true;
                fprintf(stderr, "rlc-emu: the capture of stream %llu is invalidated by that failed launch\n",
                        (unsigned long long)stream_id(stream));
            }
            return;
        }
    }
    // Kernel parameters are copied once here, into the queued (or recorded) operation; each CUDA thread gets its
    // own copy when it calls the kernel. The closure is copyable (a graph replays copies of it).
    std::tuple<std::decay_t<P>...> params(std::forward<A>(args)...);
    auto op = [name, file, line, grid, block, smem, kernel, params = std::move(params)]() {
        std::function<void()> body = [&params, kernel]() { std::apply(kernel, params); };
        LaunchInfo L{name, file, line, grid, block, smem, &body};
        run_launch(L);
    };
    if (rec) capture_record(*rec, name, std::move(op));
    else enqueue(stream, std::move(op), {}, name);
}

} // namespace emu

template <class T> inline cudaError_t cudaMalloc(T **p, size_t n) { return cudaMalloc((void **)p, n); }
template <class T> inline cudaError_t cudaMallocHost(T **p, size_t n) { return cudaMallocHost((void **)p, n); }
template <class T>
inline cudaError_t cudaMemcpyToSymbol(const T &symbol, const void *src, size_t count, size_t offset = 0,
                                      cudaMemcpyKind = cudaMemcpyHostToDevice) {
    if (cudaError_t e = emu::capture_unsafe_gate("cudaMemcpyToSymbol")) return e;
    return emu::enqueue_and_wait(nullptr, [&] { memcpy((char *)&symbol + offset, src, count); }, "cudaMemcpyToSymbol");
}
template <class T>
inline cudaError_t cudaMemcpyFromSymbol(void *dst, const T &symbol, size_t count, size_t offset = 0,
                                        cudaMemcpyKind = cudaMemcpyDeviceToHost) {
    if (cudaError_t e = emu::capture_unsafe_gate("cudaMemcpyFromSymbol")) return e;
    return emu::enqueue_and_wait(nullptr, [&] { memcpy(dst, (const char *)&symbol + offset, count); },
                                 "cudaMemcpyFromSymbol");
}
template <class T> inline cudaError_t cudaFuncSetAttribute(T *kernel, cudaFuncAttribute attr, int value) {
    return cudaFuncSetAttribute((const void *)kernel, attr, value);
}

#define RLC_EMU_API extern "C" __attribute__((weak))

namespace emu {
inline cudaError_t malloc_device(void **p, size_t n) {
    emu::shuffle_point(4); // shuffle order: the device may have moved on since the last call
    void *q = nullptr;
    // 256-byte alignment as cudaMalloc guarantees; the exact size, so ASan flags any byte past the end.
    if (posix_memalign(&q, 256, n ? n : 1) != 0) {
        *p = nullptr;
        return emu::set_error(cudaErrorMemoryAllocation);
    }
    memset(q, 0xFF, n);
    {
        std::lock_guard<std::mutex> lk(emu::runtime().mu);
        emu::runtime().allocs[(uintptr_t)q] = n;
    }
    *p = q;
    return cudaSuccess;
}
} // namespace emu
RLC_EMU_API cudaError_t cudaMalloc(void **p, size_t n) {
    if (cudaError_t e = emu::capture_unsafe_gate("cudaMalloc")) {
        *p = nullptr;
        return e;
    }
    return emu::malloc_device(p, n);
}
namespace emu {
inline cudaError_t free_now(void *p) {
    {
        std::lock_guard<std::mutex> lk(runtime().mu);
        if (!runtime().allocs.erase((uintptr_t)p)) {
            fprintf(stderr, "rlc-emu: cudaFree(%p): not a pointer returned by cudaMalloc\n", p);
            return set_error(cudaErrorInvalidValue);
        }
    }
    free(p);
    return cudaSuccess;
}
} // namespace emu
RLC_EMU_API cudaError_t cudaFree(void *p) {
    if (cudaError_t e = emu::capture_unsafe_gate("cudaFree")) return e; // cudaFree(NULL) too, as in CUDA
    if (!p) return cudaSuccess;
    emu::run_all(); // cudaFree synchronises the device: queued work may still use p
    return emu::free_now(p);
}
RLC_EMU_API cudaError_t cudaMallocAsync(void **p, size_t n, cudaStream_t s) {
    if (cudaError_t e = emu::capture_unmodelled_gate(s, "cudaMallocAsync")) {
        *p = nullptr;
        return e;
    }
    return emu::malloc_device(p, n);
}
RLC_EMU_API cudaError_t cudaFreeAsync(void *p, cudaStream_t s) {
    if (cudaError_t e = emu::capture_unmodelled_gate(s, "cudaFreeAsync")) return e;
    if (!p) return cudaSuccess;
    {
        std::lock_guard<std::mutex> lk(emu::runtime().mu);
        if (!emu::runtime().allocs.count((uintptr_t)p)) {
            fprintf(stderr, "rlc-emu: cudaFreeAsync(%p): not a pointer returned by cudaMalloc\n", p);
            return emu::set_error(cudaErrorInvalidValue);
        }
    }
    emu::enqueue(s, [p] { emu::free_now(p); }, {}, "cudaFreeAsync"); // freed in stream order
    return cudaSuccess;
}
RLC_EMU_API cudaError_t cudaMallocHost(void **p, size_t n) {
    if (cudaError_t e = emu::capture_unsafe_gate("cudaMallocHost")) {
        *p = nullptr;
        return e;
    }
    emu::shuffle_point(4); // shuffle order: the device may have moved on since the last call
    *p = malloc(n ? n : 1);
    if (!*p) return emu::set_error(cudaErrorMemoryAllocation);
    std::lock_guard<std::mutex> lk(emu::runtime().mu);
    emu::runtime().pinned[(uintptr_t)*p] = n;
    return cudaSuccess;
}
RLC_EMU_API cudaError_t cudaHostAlloc(void **p, size_t n, unsigned) { return cudaMallocHost(p, n); }
RLC_EMU_API cudaError_t cudaFreeHost(void *p) {
    if (cudaError_t e = emu::capture_unsafe_gate("cudaFreeHost")) return e;
    if (!p) return cudaSuccess;
    emu::run_all(); // as cudaFree: queued copies may still read or write it
    {
        std::lock_guard<std::mutex> lk(emu::runtime().mu);
        if (!emu::runtime().pinned.erase((uintptr_t)p)) {
            fprintf(stderr, "rlc-emu: cudaFreeHost(%p): not a pointer returned by cudaMallocHost\n", p);
            return emu::set_error(cudaErrorInvalidValue);
        }
    }
    free(p);
    return cudaSuccess;
}
RLC_EMU_API cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind k, cudaStream_t s) {
    if (!n) return cudaSuccess;
    std::lock_guard<std::recursive_mutex> lk(emu::queues().mu); // rec stays valid until recorded
    emu::Capture *rec = nullptr;
    if (cudaError_t e = emu::capture_gate(s, "cudaMemcpyAsync", &rec)) return e;
    // Which sides are pageable host memory (accessed at the call); pinned host memory and device memory are
    // accessed when the copy runs. cudaMemcpyDefault: whatever cudaMalloc did not return is host memory.
    const bool src_host = k == cudaMemcpyDefault ? !emu::is_device(src) : k == cudaMemcpyHostToDevice ||
                                                                               k == cudaMemcpyHostToHost;
    const bool dst_host = k == cudaMemcpyDefault ? !emu::is_device(dst) : k == cudaMemcpyDeviceToHost ||
                                                                               k == cudaMemcpyHostToHost;
    const bool src_pageable = src_host && !emu::is_pinned(src, n), dst_pageable = dst_host && !emu::is_pinned(dst, n);
    if (rec) { // a graph copies between device and pinned memory only: a pageable side is accessed at the call
        if (src_pageable || dst_pageable)
            return emu::capture_violation(cudaErrorStreamCaptureUnsupported, "cudaMemcpyAsync",
                                          "a copy from or to pageable host memory on a capturing stream",
                                          {emu::stream_id(s)});
        emu::capture_record(*rec, "cudaMemcpyAsync", [dst, src, n] { memcpy(dst, src, n); });
        return cudaSuccess;
    }
    if (!emu::defer_enabled()) {
        memcpy(dst, src, n);
        return cudaSuccess;
    }
    if (src_pageable) { // staged at the call
        std::shared_ptr<std::vector<unsigned char>> st =
            std::make_shared<std::vector<unsigned char>>((const unsigned char *)src, (const unsigned char *)src + n);
        if (dst_pageable) return emu::enqueue_and_wait(s, [dst, st] { memcpy(dst, st->data(), st->size()); },
                                                       "cudaMemcpyAsync");
        emu::enqueue(s, [dst, st] { memcpy(dst, st->data(), st->size()); }, {}, "cudaMemcpyAsync");
    } else if (dst_pageable) {
        return emu::enqueue_and_wait(s, [dst, src, n] { memcpy(dst, src, n); }, "cudaMemcpyAsync");
    } else {
        emu::enqueue(s, [dst, src, n] { memcpy(dst, src, n); }, {}, "cudaMemcpyAsync");
    }
    return cudaSuccess;
}
// A NULL-stream copy, waited for. Under stream capture: cudaErrorStreamCaptureImplicit while a blocking stream
// captures (the legacy stream), else a potentially unsafe call (cudaErrorStreamCaptureUnsupported in Global /
// ThreadLocal mode; stricter than CUDA may be for a non-blocking capture, which costs nothing to obey).
RLC_EMU_API cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind) {
    if (cudaError_t e = emu::capture_sync_gate(nullptr, "cudaMemcpy")) return e;
    if (cudaError_t e = emu::capture_unsafe_gate("cudaMemcpy")) return e;
    if (n) return emu::enqueue_and_wait(nullptr, [dst, src, n] { memcpy(dst, src, n); }, "cudaMemcpy");
    return cudaSuccess;
}
namespace emu {
inline cudaError_t memset_on(void *p, int v, size_t n, cudaStream_t s, const char *call) {
    std::lock_guard<std::recursive_mutex> lk(queues().mu); // rec stays valid until recorded
    Capture *rec = nullptr;
    if (cudaError_t e = capture_gate(s, call, &rec)) return e;
    if (!n) return cudaSuccess;
    if (rec) capture_record(*rec, call, [p, v, n] { memset(p, v, n); });
    else enqueue(s, [p, v, n] { memset(p, v, n); }, {}, call);
    return cudaSuccess;
}
} // namespace emu
RLC_EMU_API cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t s) {
    return emu::memset_on(p, v, n, s, "cudaMemsetAsync");
}
RLC_EMU_API cudaError_t cudaMemset(void *p, int v, size_t n) { return emu::memset_on(p, v, n, nullptr, "cudaMemset"); }
// An 80 GiB device of which 64 GiB are free before the program's own allocations, which then count against it.
RLC_EMU_API cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total) {
    size_t used = 0;
    {
        std::lock_guard<std::mutex> lk(emu::runtime().mu);
        for (const auto &a : emu::runtime().allocs) used += a.second;
    }
    const size_t start = (size_t)64 << 30;
    *free_b = used < start ? start - used : 0;
    *total = (size_t)80 << 30;
    return cudaSuccess;
}

RLC_EMU_API cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags) {
    emu::Queues &Q = emu::queues();
    std::lock_guard<std::recursive_mutex> lk(Q.mu);
    const uint64_t id = Q.next_stream++;
    Q.streams[id].blocking = !(flags & cudaStreamNonBlocking);
    *s = new CUstream_st{(int)flags, id};
    return cudaSuccess;
}
RLC_EMU_API cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, 0); }
RLC_EMU_API cudaError_t cudaStreamCreateWithPriority(cudaStream_t *s, unsigned flags, int) {
    return cudaStreamCreateWithFlags(s, flags);
}
RLC_EMU_API cudaError_t cudaStreamDestroy(cudaStream_t s) {
    if ((uintptr_t)s <= 2) return emu::set_error(cudaErrorInvalidResourceHandle);
    emu::Queues &Q = emu::queues();
    {
        std::lock_guard<std::recursive_mutex> lk(Q.mu);
        if (Q.captures.count(s->id)) { // CUDA leaves this undefined; the emulator refuses it
            fprintf(stderr, "rlc-emu: cudaStreamDestroy of a capturing stream: end its capture first\n");
            return emu::set_error(cudaErrorIllegalState);
        }
        emu::run_stream(s); // CUDA completes a destroyed stream's work
        Q.streams.erase(s->id);
    }
    delete s;
    return cudaSuccess;
}
RLC_EMU_API cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    if (cudaError_t e = emu::capture_sync_gate(s, "cudaStreamSynchronize")) return e;
    emu::run_stream(s);
    return cudaSuccess;
}
RLC_EMU_API cudaError_t cudaStreamQuery(cudaStream_t s) {
    emu::Queues &Q = emu::queues();
    std::lock_guard<std::recursive_mutex> lk(Q.mu);
    if (cudaError_t e = emu::capture_sync_gate(s, "cudaStreamQuery")) return e;
    emu::shuffle_point(2); // shuffle order: the device may have moved on since the last call
    auto it = Q.streams.find(emu::stream_id(s));
    if (it == Q.streams.end() || it->second.q.empty()) return cudaSuccess;
    emu::StreamQueue &sq = it->second;
    if (sq.queried != sq.q.back().seq) { // not ready, once; a poll that asks again gets the work run
        sq.queried = sq.q.back().seq;
        return cudaErrorNotReady;
    }
    emu::run_stream(s);
    return cudaSuccess;
}
RLC_EMU_API cudaError_t cudaDeviceSynchronize(void) {
    {
        std::lock_guard<std::recursive_mutex> lk(emu::queues().mu);
        std::vector<uint64_t> v; // it would wait for every stream: illegal while any captures, in every mode
        for (auto &kv : emu::queues().captures) v.push_back(kv.first);
        if (!v.empty())
            return emu::capture_violation(cudaErrorStreamCaptureUnsupported, "cudaDeviceSynchronize",
                                          "synchronising the device while a stream is capturing", v);
    }
    emu::run_all();
    return cudaSuccess;
}
RLC_EMU_API cudaError_t cudaEventCreate(cudaEvent_t *e) {
    *e = new CUevent_st{std::make_shared<emu::EventState>()};
    return cudaSuccess;
}
RLC_EMU_API cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned) { return cudaEventCreate(e); }
RLC_EMU_API cudaError_t cudaEventDestroy(cudaEvent_t e) {
    delete e; // a queued marker keeps the state alive
    return cudaSuccess;
}
RLC_EMU_API cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
    emu::Queues &Q = emu::queues();
    std::lock_guard<std::recursive_mutex> lk(Q.mu);
    if (cudaError_t err = emu::capture_unmodelled_gate(s, "cudaEventRecord")) return err;
    std::shared_ptr<emu::EventState> st = e->st;
    const uint64_t gen = ++st->gen;
    st->recorded = true;
    st->done = false;
    st->queried = false;
    st->stream = emu::stream_id(s);
    st->seq = emu::enqueue(s, [st, gen] {
        if (st->gen != gen) return; // recorded again since: the newer marker completes it
        st->t_ms = emu::now_ms();
        st->done = true;
    });
    return cudaSuccess;
}
RLC_EMU_API cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned) {
    emu::Queues &Q = emu::queues();
    std::lock_guard<std::recursive_mutex> lk(Q.mu);
    if (cudaError_t err = emu::capture_unmodelled_gate(s, "cudaStreamWaitEvent")) return err;
    const emu::EventState &st = *e->st;
    // the record as it is now (a later record does not change what s waits for); nothing if never recorded
    if (Q.defer && st.recorded && !st.done) emu::enqueue(s, [] {}, {emu::Dep{st.stream, st.seq}});
    return cudaSuccess;
}
RLC_EMU_API cudaError_t cudaEventSynchronize(cudaEvent_t e) {
    std::lock_guard<std::recursive_mutex> lk(emu::queues().mu);
    const emu::EventState &st = *e->st;
    if (st.recorded && !st.done) emu::run_until(st.stream, st.seq);
    return cudaSuccess;
}
RLC_EMU_API cudaError_t cudaEventQuery(cudaEvent_t e) {
    emu::Queues &Q = emu::queues();
    std::lock_guard<std::recursive_mutex> lk(Q.mu);
    emu::shuffle_point(2); // shuffle order: the device may have moved on since the last call
    emu::EventState &st = *e->st;
    if (!st.recorded || st.done) return cudaSuccess;
    if (!st.queried) { // not ready, once; a poll that asks again gets the work run
        st.queried = true;
        return cudaErrorNotReady;
    }
    emu::run_until(st.stream, st.seq);
    return cudaSuccess;
}
RLC_EMU_API cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
    std::lock_guard<std::recursive_mutex> lk(emu::queues().mu);
    if (!a->st->done || !b->st->done) return cudaErrorNotReady; // CUDA: not recorded, or not yet completed
    *ms = (float)(b->st->t_ms - a->st->t_ms);
    return cudaSuccess;
}

// Stream capture and graphs (see the header comment).
RLC_EMU_API cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode) {
    emu::Queues &Q = emu::queues();
    std::lock_guard<std::recursive_mutex> lk(Q.mu);
    const uint64_t sid = emu::stream_id(s);
    if (sid == 0) {
        fprintf(stderr, "rlc-emu: cudaStreamBeginCapture on the legacy NULL stream%s: not supported (capture a created "
                        "stream)\n", (uintptr_t)s == 2 ? " (cudaStreamPerThread, modelled as the NULL stream)" : "");
        return emu::set_error(cudaErrorStreamCaptureUnsupported);
    }
    if (mode != cudaStreamCaptureModeGlobal && mode != cudaStreamCaptureModeThreadLocal &&
        mode != cudaStreamCaptureModeRelaxed) {
        fprintf(stderr, "rlc-emu: cudaStreamBeginCapture: unknown capture mode %d\n", (int)mode);
        return emu::set_error(cudaErrorInvalidValue);
    }
    if (Q.captures.count(sid)) {
        fprintf(stderr, "rlc-emu: cudaStreamBeginCapture on stream %llu, which is already capturing\n",
                (unsigned long long)sid);
        return emu::set_error(cudaErrorIllegalState);
    }
    emu::Capture &c = Q.captures[sid];
    c.mode = mode;
    c.thread = std::this_thread::get_id();
    c.blocking = Q.streams.at(sid).blocking;
    return cudaSuccess;
}
RLC_EMU_API cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *graph) {
    emu::Queues &Q = emu::queues();
    std::lock_guard<std::recursive_mutex> lk(Q.mu);
    if (!graph) return emu::set_error(cudaErrorInvalidValue);
    *graph = nullptr;
    const uint64_t sid = emu::stream_id(s);
    auto it = Q.captures.find(sid);
    if (it == Q.captures.end()) {
        fprintf(stderr, "rlc-emu: cudaStreamEndCapture on stream %llu, which is not capturing\n",
                (unsigned long long)sid);
        return emu::set_error(cudaErrorIllegalState);
    }
    emu::Capture &c = it->second;
    if (c.mode != cudaStreamCaptureModeRelaxed && c.thread != std::this_thread::get_id()) {
        fprintf(stderr, "rlc-emu: cudaStreamEndCapture from another thread than the one that began the capture "
                        "(Global and ThreadLocal modes)\n");
        return emu::set_error(cudaErrorStreamCaptureWrongThread);
    }
    const bool invalidated = c.invalidated;
    if (!invalidated) *graph = new CUgraph_st{std::move(c.nodes)};
    Q.captures.erase(it); // the stream leaves capture mode either way
    return invalidated ? emu::set_error(cudaErrorStreamCaptureInvalidated) : cudaSuccess;
}
RLC_EMU_API cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus *status) {
    emu::Queues &Q = emu::queues();
    std::lock_guard<std::recursive_mutex> lk(Q.mu);
    if (!status) return emu::set_error(cudaErrorInvalidValue);
    const uint64_t sid = emu::stream_id(s);
    // CUDA: asking about the legacy stream while a blocking stream captures is an error (the capture stays valid)
    if (sid == 0 && !emu::blocking_captures().empty()) return emu::set_error(cudaErrorStreamCaptureImplicit);
    auto it = Q.captures.find(sid);
    *status = it == Q.captures.end() ? cudaStreamCaptureStatusNone
              : it->second.invalidated ? cudaStreamCaptureStatusInvalidated
                                       : cudaStreamCaptureStatusActive;
    return cudaSuccess;
}
RLC_EMU_API cudaError_t cudaGraphGetNodes(cudaGraph_t g, cudaGraphNode_t *nodes, size_t *n) {
    if (!g || !n) return emu::set_error(cudaErrorInvalidValue);
    const size_t count = g->nodes.size();
    if (nodes) { // as CUDA: up to *n nodes; slots past the graph's nodes are set to NULL, *n to the count
        for (size_t i = 0; i < *n; i++) nodes[i] = i < count ? g->nodes[i].get() : nullptr;
        if (*n > count) *n = count;
    } else {
        *n = count;
    }
    return cudaSuccess;
}
RLC_EMU_API cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t g, unsigned long long flags) {
    if (!exec || !g) return emu::set_error(cudaErrorInvalidValue);
    if (flags) {
        fprintf(stderr, "rlc-emu: cudaGraphInstantiate: flags 0x%llx are not modelled (only 0)\n", flags);
        return emu::set_error(cudaErrorInvalidValue);
    }
    CUgraphExec_st *x = new CUgraphExec_st;
    x->ops.reserve(g->nodes.size());
    for (const auto &node : g->nodes) x->ops.push_back(*node); // copies: the graph may be destroyed first
    *exec = x;
    return cudaSuccess;
}
RLC_EMU_API cudaError_t cudaGraphInstantiateWithFlags(cudaGraphExec_t *exec, cudaGraph_t g, unsigned long long flags) {
    return cudaGraphInstantiate(exec, g, flags);
}
// The toolkit's cuda_runtime.h (which nvcc includes, the emulator does not) also has this older C++ overload.
static inline cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t g, cudaGraphNode_t *, char *,
                                               size_t) {
    return cudaGraphInstantiate(exec, g, 0ull);
}
// Nothing to upload: the operations are host closures (the first launch costs what later ones do).
RLC_EMU_API cudaError_t cudaGraphUpload(cudaGraphExec_t exec, cudaStream_t) {
    return exec ? cudaSuccess : emu::set_error(cudaErrorInvalidValue);
}
// The recorded operations, in order, as operations of stream s issued now (queued, with the NULL stream's implicit
// dependencies, or run at the call in the eager mode). A launch into a capturing stream records them there.
RLC_EMU_API cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s) {
    if (!exec) return emu::set_error(cudaErrorInvalidValue);
    emu::Queues &Q = emu::queues();
    std::lock_guard<std::recursive_mutex> lk(Q.mu);
    emu::Capture *rec = nullptr;
    if (cudaError_t e = emu::capture_gate(s, "cudaGraphLaunch", &rec)) return e;
    for (const CUgraphNode_st &op : exec->ops) {
        if (rec) emu::capture_record(*rec, op.what, op.fn);
        else emu::enqueue(s, op.fn, {}, op.what);
    }
    return cudaSuccess;
}
RLC_EMU_API cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
    if (!exec) return emu::set_error(cudaErrorInvalidValue);
    delete exec; // queued operations hold their own copies
    return cudaSuccess;
}
RLC_EMU_API cudaError_t cudaGraphDestroy(cudaGraph_t g) {
    if (!g) return emu::set_error(cudaErrorInvalidValue);
    delete g;
    return cudaSuccess;
}

RLC_EMU_API cudaError_t cudaGetLastError(void) {
    cudaError_t e = emu::tl_last_error;
    emu::tl_last_error = cudaSuccess;
    return e;
}
RLC_EMU_API cudaError_t cudaPeekAtLastError(void) { return emu::tl_last_error; }
RLC_EMU_API const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureImplicit: return "cudaErrorStreamCaptureImplicit";
    case cudaErrorStreamCaptureWrongThread: return "cudaErrorStreamCaptureWrongThread";
    default: return "cudaErrorUnknown";
    }
}
RLC_EMU_API const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorIllegalState: return "the operation cannot be performed in the present state";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureImplicit:
        return "operation would make the legacy stream depend on a capturing blocking stream";
    case cudaErrorStreamCaptureWrongThread: return "attempt to terminate a thread-local capture sequence from another "
                                                   "thread";
    default: return "unknown error";
    }
}
RLC_EMU_API cudaError_t cudaFuncSetAttribute(const void *kernel, cudaFuncAttribute attr, int value) {
    if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
        if (value < 0 || (size_t)value > emu::smem_optin_limit) {
            fprintf(stderr, "rlc-emu: cudaFuncSetAttribute: MaxDynamicSharedMemorySize %d exceeds 227 KiB\n", value);
            return emu::set_error(cudaErrorInvalidValue);
        }
        std::lock_guard<std::mutex> lk(emu::runtime().mu);
        emu::runtime().max_dyn[kernel] = value;
    }
    return cudaSuccess;
}
RLC_EMU_API cudaError_t cudaGetDeviceCount(int *n) {
    *n = 1;
    return cudaSuccess;
}
RLC_EMU_API cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : emu::set_error(cudaErrorInvalidDevice); }
RLC_EMU_API cudaError_t cudaGetDevice(int *d) {
    *d = 0;
    return cudaSuccess;
}
// An H100-like device (sm_90): the emulator follows the sm_90 code paths.
RLC_EMU_API cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d) {
    if (d != 0) return emu::set_error(cudaErrorInvalidDevice);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "rlc CUDA emulator (sm_90)");
    p->totalGlobalMem = (size_t)80 << 30;
    p->sharedMemPerBlock = emu::smem_default_limit;
    p->sharedMemPerBlockOptin = emu::smem_optin_limit;
    p->sharedMemPerMultiprocessor = 228 * 1024;
    p->regsPerBlock = 65536;
    p->warpSize = 32;
    p->maxThreadsPerBlock = 1024;
    p->maxThreadsDim[0] = 1024;
    p->maxThreadsDim[1] = 1024;
    p->maxThreadsDim[2] = 64;
    p->maxGridSize[0] = 2147483647;
    p->maxGridSize[1] = 65535;
    p->maxGridSize[2] = 65535;
    p->totalConstMem = 65536;
    p->major = 9;
    p->minor = 0;
    p->multiProcessorCount = 132;
    p->l2CacheSize = 50 * 1024 * 1024;
    p->memoryBusWidth = 5120;
    return cudaSuccess;
}
RLC_EMU_API cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr attr, int d) {
    if (d != 0) return emu::set_error(cudaErrorInvalidDevice);
    switch (attr) {
    case cudaDevAttrMultiProcessorCount: *v = 132; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = (int)emu::smem_optin_limit; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *v = (int)emu::smem_default_limit; break;
    case cudaDevAttrComputeCapabilityMajor: *v = 9; break;
    case cudaDevAttrComputeCapabilityMinor: *v = 0; break;
    case cudaDevAttrMaxThreadsPerBlock: *v = 1024; break;
    case cudaDevAttrWarpSize: *v = 32; break;
    case cudaDevAttrL2CacheSize: *v = 50 * 1024 * 1024; break;
    default: *v = 0; return emu::set_error(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}
#undef RLC_EMU_API
