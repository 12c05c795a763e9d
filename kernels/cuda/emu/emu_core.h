// kernels/cuda/emu/emu_core.h: the CUDA emulator's execution model. Owns the configuration (schedule mode,
// worker threads, stack size), the per-block scheduler (one fiber per CUDA thread, cooperative switching at
// barriers and warp collectives), __syncthreads and its variants with barrier-divergence detection, the
// generic warp-collective rendezvous with mask checking, shared memory (static __shared__ variables live in
// a TLS section that is refilled with a NaN pattern before every block; dynamic shared memory is a per-worker
// buffer), and kernel launch (blocks spread over a small pool of OS threads).
//
// Semantics chosen on purpose:
// - A thread runs until it blocks (barrier, warp collective, exit); there is no lockstep within a warp.
//   Code that relies on implicit warp synchrony is wrong since Volta, and the emulator exposes it.
// - At every barrier (and at block start) the waiting threads resume in the configured order: forward,
//   reverse or seeded random. Blocks are also taken in that order. A kernel whose results depend on it
//   has a missing barrier or an inter-block dependency.
// - Optionally one block is a straggler (straggler_ms): the first block worker 0 runs in each launch stops when
//   its threads meet at their straggler_bar-th barrier (default the first; a later one can hold a claim the block
//   made before it) while the other workers go on, until they have run all their blocks, or have released no
//   barrier for straggler_quiet_ms (they are waiting for it, or emulating a long stretch), or straggler_ms have
//   passed. (A fixed sleep would not do: emulating one block can take longer than any sleep a test can afford, so
//   the others would rarely get past the straggler.) Kernels whose blocks wait for each other (an order of
//   atomics, a claim) must give the same bits with and without it; without a straggler such waits are rarely
//   exercised, because blocks started together also progress together.
// - Any misuse a GPU would turn into a hang or undefined behaviour is a fatal error with a message naming
//   the kernel, the launch site, the block, the thread and the source line.
#pragma once
#include <dlfcn.h>
#include <link.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdarg>
#include <cstring>
#include <functional>
#include <mutex>
#include <signal.h>
#include <thread>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "emu_fiber.h"

// Static shared memory: every `__shared__` variable is a thread_local in the section rlc_emu_smem, so each
// worker thread (which runs one block at a time) has its own copy, and the section can be found and filled.
extern "C" __attribute__((weak)) char __start_rlc_emu_smem[];
extern "C" __attribute__((weak)) char __stop_rlc_emu_smem[];
extern "C" void *__tls_get_addr(void *);

namespace emu {

enum class Schedule { forward = 0, reverse = 1, random = 2 };

inline const char *schedule_name(Schedule s) {
    return s == Schedule::forward ? "forward" : s == Schedule::reverse ? "reverse" : "random";
}

struct Config {
    Schedule schedule = Schedule::forward;
    uint64_t seed = 1;
    int workers = 2;          // OS threads that run blocks (>= 2 so TSan sees inter-block races)
    size_t stack_bytes = 0;   // per CUDA thread
    int straggler_ms = 0;     // the first block of worker 0 stops at a barrier for this long at most (0: none) ...
    int straggler_bar = 1;    // ... its straggler_bar-th
};

inline Config load_config() {
    Config c;
#if RLC_EMU_ASAN || RLC_EMU_TSAN
    c.stack_bytes = 256 * 1024; // instrumented frames are several times larger
#else
    c.stack_bytes = 64 * 1024;
#endif
    if (const char *s = getenv("RLC_EMU_SCHEDULE")) {
        if (!strncmp(s, "reverse", 7)) c.schedule = Schedule::reverse;
        else if (!strncmp(s, "random", 6)) {
            c.schedule = Schedule::random;
            if (s[6] == ':') c.seed = strtoull(s + 7, nullptr, 10);
        } else if (!strncmp(s, "forward", 7)) c.schedule = Schedule::forward;
        else {
            fprintf(stderr, "rlc-emu: RLC_EMU_SCHEDULE=%s: expected forward, reverse or random[:seed]\n", s);
            abort();
        }
    }
    if (const char *s = getenv("RLC_EMU_WORKERS")) c.workers = std::max(1, atoi(s));
    if (const char *s = getenv("RLC_EMU_STACK_KB")) c.stack_bytes = (size_t)std::max(16, atoi(s)) * 1024;
    if (const char *s = getenv("RLC_EMU_STRAGGLER_MS")) { // ms[:n]
        c.straggler_ms = std::max(0, atoi(s));
        if (const char *n = strchr(s, ':')) c.straggler_bar = std::max(1, atoi(n + 1));
    }
    return c;
}

inline Config &config() {
    static Config c = load_config();
    return c;
}
// API for tests: the harness switches modes between runs of the same body.
inline void set_schedule(Schedule s, uint64_t seed = 1) {
    config().schedule = s;
    config().seed = seed;
}
inline void set_workers(int n) { config().workers = std::max(1, n); }
// How long the other workers may release no barrier before the straggler takes them to be waiting for it.
constexpr int straggler_quiet_ms = 300;
inline void set_straggler(int ms, int at_barrier = 1) {
    config().straggler_ms = std::max(0, ms);
    config().straggler_bar = std::max(1, at_barrier);
}

// ---------------------------------------------------------------------------------------------------------
// Per-thread (fiber) and per-block (worker) state

enum class FState : uint8_t { ready, running, barrier, warp, done };

enum WarpOp {
    W_SHFL, W_SHFL_UP, W_SHFL_DOWN, W_SHFL_XOR, W_BALLOT, W_ANY, W_ALL, W_SYNCWARP, W_LDMATRIX, W_MMA,
    W_REDUCE_ADD, W_REDUCE_MIN, W_REDUCE_MAX, W_MATCH_ANY
};
inline const char *warp_op_name(int op) {
    static const char *names[] = {"__shfl_sync", "__shfl_up_sync", "__shfl_down_sync", "__shfl_xor_sync",
                                  "__ballot_sync", "__any_sync", "__all_sync", "__syncwarp", "ldmatrix",
                                  "mma.sync", "__reduce_add_sync", "__reduce_min_sync", "__reduce_max_sync",
                                  "__match_any_sync"};
    return names[op];
}

struct AsyncCopy {
    void *dst;
    const void *src;
    int bytes, src_bytes; // copy src_bytes, zero-fill up to bytes
};

struct Worker;

struct Fiber {
    Context ctx;
    Worker *w = nullptr;
    unsigned tid = 0; // linear thread index in the block
    uint3 idx{0, 0, 0};
    FState st = FState::done;
    // at a barrier
    const char *bfile = nullptr;
    int bline = 0, bkind = 0, bpred = 0, bres = 0;
    // at a warp collective
    int wop = 0, warg = 0, wwidth = 0, wsize = 0;
    unsigned wmask = 0;
    const void *win = nullptr;
    void *wout = nullptr;
    const char *wfile = nullptr;
    int wline = 0;
    // cp.async: copies issued since the last commit, and committed groups not yet waited for
    std::vector<AsyncCopy> cp_open;
    std::vector<std::vector<AsyncCopy>> cp_groups;
};

struct LaunchInfo {
    const char *name, *file;
    int line;
    dim3 grid, block;
    size_t smem;
    const std::function<void()> *body;
};

struct Worker {
    Context sched;
    std::vector<Fiber> fibers;
    std::vector<Stack> stacks;
    std::vector<int> ready; // ring buffer of thread indices
    size_t rhead = 0, rcount = 0;
    int n = 0, live = 0, at_bar = 0, first_exited = -1;
    std::vector<int> warp_waiting;
    std::vector<int> order; // scratch for wake-up order
    uint64_t rng = 0;
    unsigned char *dyn = nullptr;
    const LaunchInfo *L = nullptr;
    uint3 bidx{0, 0, 0};
    int straggle = 0; // > 0: the straggler; stops at the release of its straggle-th barrier
    std::atomic<unsigned> *others_busy = nullptr; // workers other than 0 still running blocks of the launch
    std::atomic<unsigned> *others_bars = nullptr; // barriers the workers other than 0 have released
    bool count_bars = false;                      // this worker is one of them
};

inline thread_local Worker *tl_worker = nullptr;
inline thread_local Fiber *tl_fiber = nullptr;
inline thread_local uint3 tl_block_idx{0, 0, 0};
inline thread_local dim3 tl_block_dim{1, 1, 1};
inline thread_local dim3 tl_grid_dim{1, 1, 1};

// ---------------------------------------------------------------------------------------------------------
// Errors

[[noreturn]] inline void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
inline void fail(const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    Worker *w = tl_worker;
    if (w && w->L) {
        fprintf(stderr, "rlc-emu error: %s\n  in kernel %s launched at %s:%d, grid (%u,%u,%u) block (%u,%u,%u), "
                        "in block (%u,%u,%u)",
                msg, w->L->name, w->L->file, w->L->line, w->L->grid.x, w->L->grid.y, w->L->grid.z,
                w->L->block.x, w->L->block.y, w->L->block.z, w->bidx.x, w->bidx.y, w->bidx.z);
        if (tl_fiber) fprintf(stderr, ", thread (%u,%u,%u)", tl_fiber->idx.x, tl_fiber->idx.y, tl_fiber->idx.z);
        fprintf(stderr, "\n");
    } else {
        fprintf(stderr, "rlc-emu error: %s\n", msg);
    }
    fflush(stderr);
    abort();
}

inline const char *thread_str(const Fiber &f, char *buf, size_t n) {
    snprintf(buf, n, "(%u,%u,%u)", f.idx.x, f.idx.y, f.idx.z);
    return buf;
}

// Stack overflow: the guard page faults; this handler (on an alternate stack) names the cause.
inline void segv_handler(int sig, siginfo_t *si, void *) {
    if (stack_pool().is_guard(si->si_addr)) {
        static const char m[] = "rlc-emu error: stack overflow in a CUDA thread (fiber stack exhausted; "
                                "set RLC_EMU_STACK_KB to a larger size if the kernel is correct)\n";
        ssize_t r = write(2, m, sizeof m - 1);
        (void)r;
    }
    signal(sig, SIG_DFL); // re-executing the faulting access now kills the process with SIGSEGV
}

inline void install_segv_handler() {
#if !(RLC_EMU_ASAN || RLC_EMU_TSAN) // the sanitizers report overflows themselves
    static thread_local std::vector<char> altstack;
    if (altstack.empty()) {
        altstack.resize(64 * 1024);
        stack_t ss{};
        ss.ss_sp = altstack.data();
        ss.ss_size = altstack.size();
        sigaltstack(&ss, nullptr);
    }
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction sa {};
        sa.sa_sigaction = segv_handler;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, nullptr);
    });
#endif
}

// ---------------------------------------------------------------------------------------------------------
// Shared memory

inline size_t static_smem_bytes() {
    if (!__start_rlc_emu_smem) return 0;
    return (size_t)(__stop_rlc_emu_smem - __start_rlc_emu_smem);
}

inline int tls_segment_cb(dl_phdr_info *info, size_t, void *out) {
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_TLS) {
            *(uintptr_t *)out = info->dlpi_addr + info->dlpi_phdr[i].p_vaddr;
            return 1;
        }
    return 1; // only the main program (listed first) can hold the section
}

// This thread's copy of the static shared-memory section: the executable is TLS module 1, and the section's
// offset inside its TLS image is its link-time address minus the start of the PT_TLS segment.
inline char *static_smem_ptr() {
    static const size_t off = [] {
        uintptr_t seg = 0;
        dl_iterate_phdr(tls_segment_cb, &seg);
        if (!seg) fail("static shared memory: no TLS segment in the executable");
        return (size_t)((uintptr_t)__start_rlc_emu_smem - seg);
    }();
    struct {
        unsigned long module, offset;
    } ti = {1, off};
    return (char *)__tls_get_addr(&ti);
}

// 0xFF bytes: NaN as bf16, fp16, float and double; -1 as an integer.
constexpr int smem_fill_byte = 0xFF;

inline void *dyn_smem() { return tl_worker->dyn; }

// ---------------------------------------------------------------------------------------------------------
// Scheduling

inline uint64_t splitmix(uint64_t &x) {
    uint64_t z = (x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Order `v` (ascending thread indices) by the schedule mode.
inline void schedule_order(std::vector<int> &v, uint64_t &rng) {
    switch (config().schedule) {
    case Schedule::forward: break;
    case Schedule::reverse: std::reverse(v.begin(), v.end()); break;
    case Schedule::random:
        for (size_t i = v.size(); i > 1; i--) std::swap(v[i - 1], v[splitmix(rng) % i]);
        break;
    }
}

inline void push_ready(Worker &w, int t) {
    w.ready[(w.rhead + w.rcount) % w.ready.size()] = t;
    w.rcount++;
    w.fibers[t].st = FState::ready;
}

inline int pop_ready(Worker &w) {
    if (!w.rcount) return -1;
    int t = w.ready[w.rhead];
    w.rhead = (w.rhead + 1) % w.ready.size();
    w.rcount--;
    return t;
}

inline void wake_in_order(Worker &w) {
    schedule_order(w.order, w.rng);
    for (int t : w.order) push_ready(w, t);
    w.order.clear();
}

// The current fiber gives up the processor (it blocked or finished): run the next ready fiber, or return
// to the scheduler when none is left. Returns when this fiber is resumed.
inline void yield_current(bool finished) {
    Worker &w = *tl_worker;
    Fiber *f = tl_fiber;
    int nx = pop_ready(w);
    if (nx == (int)f->tid) { // it woke itself (it completed a barrier or a collective) and is first in line
        f->st = FState::running;
        return;
    }
    if (nx < 0) {
        tl_fiber = nullptr;
        context_switch(f->ctx, w.sched, finished);
    } else {
        Fiber &g = w.fibers[nx];
        g.st = FState::running;
        tl_fiber = &g;
        context_switch(f->ctx, g.ctx, finished);
    }
    // resumed: whoever switched here set tl_fiber and our state
}

// ---------------------------------------------------------------------------------------------------------
// Barriers

enum { BAR_SYNC = 0, BAR_COUNT, BAR_AND, BAR_OR };

inline void barrier_check_exited(Worker &w, const Fiber &waiter) {
    if (w.live < w.n && w.at_bar > 0 && w.at_bar == w.live) {
        char a[48], b[48];
        fail("barrier divergence: __syncthreads at %s:%d is awaited by %d threads (e.g. thread %s) but %d "
             "threads of the block have exited (e.g. thread %s); every thread of the block must reach the "
             "same __syncthreads",
             waiter.bfile, waiter.bline, w.at_bar, thread_str(waiter, a, sizeof a), w.n - w.live,
             thread_str(w.fibers[w.first_exited], b, sizeof b));
    }
}

inline void barrier_release(Worker &w, Fiber &last) {
    barrier_check_exited(w, last);
    if (w.straggle > 0 && --w.straggle == 0) { // the straggler: the whole block is at the chosen barrier
        typedef std::chrono::steady_clock clk;
        const auto until = clk::now() + std::chrono::milliseconds(config().straggler_ms);
        auto moved = clk::now();
        unsigned bars = w.others_bars->load();
        while (w.others_busy->load() > 0 && clk::now() < until &&
               clk::now() - moved < std::chrono::milliseconds(straggler_quiet_ms)) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
            if (w.others_bars->load() != bars) bars = w.others_bars->load(), moved = clk::now();
        }
    } else if (w.count_bars) {
        (*w.others_bars)++;
    }
    int count = 0;
    for (Fiber &g : w.fibers) {
        if (g.st != FState::barrier) continue;
        if (g.bline != last.bline || strcmp(g.bfile, last.bfile) != 0 || g.bkind != last.bkind) {
            char a[48], b[48];
            fail("barrier divergence: thread %s waits at the barrier at %s:%d while thread %s waits at the "
                 "barrier at %s:%d; all threads of a block must reach the same __syncthreads",
                 thread_str(g, a, sizeof a), g.bfile, g.bline, thread_str(last, b, sizeof b), last.bfile,
                 last.bline);
        }
        count += g.bpred != 0;
    }
    for (Fiber &g : w.fibers) {
        if (g.st != FState::barrier) continue;
        g.bres = g.bkind == BAR_COUNT ? count
                 : g.bkind == BAR_AND ? (count == w.at_bar)
                 : g.bkind == BAR_OR  ? (count > 0)
                                      : 0;
        w.order.push_back((int)g.tid);
    }
    w.at_bar = 0;
    wake_in_order(w);
}

inline int barrier(int kind, int pred, const char *file, int line) {
    Fiber *f = tl_fiber;
    if (!f) fail("__syncthreads called outside a kernel");
    Worker &w = *f->w;
    f->st = FState::barrier;
    f->bkind = kind;
    f->bpred = pred;
    f->bfile = file;
    f->bline = line;
    w.at_bar++;
    if (w.at_bar == w.live) barrier_release(w, *f);
    yield_current(false);
    return f->bres;
}

// ---------------------------------------------------------------------------------------------------------
// Warp collectives: each lane records its operation, mask and operands and blocks; when every lane of a
// mask is waiting, the masks and operations are checked for agreement and the results are computed for all.

inline void warp_compute(Worker &w, int warp, unsigned mask, Fiber &leader); // defined in emu_device.h

inline void warp_try_complete(Worker &w, int warp, Fiber &leader) {
    unsigned mask = leader.wmask;
    if (w.warp_waiting[warp] < __builtin_popcount(mask)) return;
    for (int l = 0; l < 32; l++) {
        if (!(mask >> l & 1)) continue;
        int t = warp * 32 + l;
        if (w.fibers[t].st != FState::warp) return;
    }
    for (int l = 0; l < 32; l++) {
        if (!(mask >> l & 1)) continue;
        Fiber &g = w.fibers[warp * 32 + l];
        if (g.wmask != mask || g.wop != leader.wop || g.wsize != leader.wsize) {
            char a[48], b[48];
            fail("warp collective mismatch in warp %d: lane %d %s calls %s with mask 0x%08x at %s:%d, but lane "
                 "%d %s calls %s with mask 0x%08x at %s:%d; all lanes named in a mask must make the same "
                 "call with the same mask",
                 warp, (int)(leader.tid & 31), thread_str(leader, a, sizeof a), warp_op_name(leader.wop), mask,
                 leader.wfile, leader.wline, l, thread_str(g, b, sizeof b), warp_op_name(g.wop), g.wmask,
                 g.wfile, g.wline);
        }
    }
    warp_compute(w, warp, mask, leader);
    for (int l = 0; l < 32; l++)
        if (mask >> l & 1) w.order.push_back(warp * 32 + l);
    w.warp_waiting[warp] -= __builtin_popcount(mask);
    wake_in_order(w);
}

inline void warp_collective(int op, unsigned mask, const void *in, void *out, int arg, int width, int size,
                            const char *file, int line) {
    Fiber *f = tl_fiber;
    if (!f) fail("%s called outside a kernel", warp_op_name(op));
    Worker &w = *f->w;
    int lane = (int)(f->tid & 31), warp = (int)(f->tid >> 5);
    if (!(mask >> lane & 1))
        fail("%s at %s:%d: lane %d calls it with mask 0x%08x, which does not include the lane itself",
             warp_op_name(op), file, line, lane, mask);
    for (int l = 0; l < 32; l++) {
        if (!(mask >> l & 1)) continue;
        int t = warp * 32 + l;
        if (t >= w.n)
            fail("%s at %s:%d: mask 0x%08x names lane %d of warp %d, which does not exist (the block has %d "
                 "threads)",
                 warp_op_name(op), file, line, mask, l, warp, w.n);
        if (w.fibers[t].st == FState::done) {
            char a[48];
            fail("%s at %s:%d: mask 0x%08x names lane %d (thread %s), which has exited", warp_op_name(op), file,
                 line, mask, l, thread_str(w.fibers[t], a, sizeof a));
        }
    }
    f->st = FState::warp;
    f->wop = op;
    f->wmask = mask;
    f->win = in;
    f->wout = out;
    f->warg = arg;
    f->wwidth = width;
    f->wsize = size;
    f->wfile = file;
    f->wline = line;
    w.warp_waiting[warp]++;
    // This arrival may complete its own group, or the group of a lane that waits with a different mask
    // (which then reports the mismatch).
    warp_try_complete(w, warp, *f);
    if (f->st == FState::warp)
        for (int l = 0; l < 32; l++) {
            int t = warp * 32 + l;
            if (t >= w.n || l == lane) continue;
            Fiber &g = w.fibers[t];
            if (g.st == FState::warp && (g.wmask >> lane & 1)) {
                warp_try_complete(w, warp, g);
                if (f->st != FState::warp) break;
            }
        }
    yield_current(false);
}

// ---------------------------------------------------------------------------------------------------------
// Thread exit and deadlock diagnosis

inline void cp_async_flush(Fiber &f);

inline void thread_exit(Fiber &f) {
    Worker &w = *f.w;
    cp_async_flush(f);
    f.st = FState::done;
    w.live--;
    if (w.first_exited < 0) w.first_exited = (int)f.tid;
    int lane = (int)(f.tid & 31), warp = (int)(f.tid >> 5);
    for (int l = 0; l < 32; l++) {
        int t = warp * 32 + l;
        if (t >= w.n) break;
        Fiber &g = w.fibers[t];
        if (g.st == FState::warp && (g.wmask >> lane & 1)) {
            char a[48];
            fail("lane %d (thread %s) exited while lane %d waits for it in %s with mask 0x%08x at %s:%d", lane,
                 thread_str(f, a, sizeof a), l, warp_op_name(g.wop), g.wmask, g.wfile, g.wline);
        }
    }
    if (w.at_bar > 0 && w.at_bar == w.live) {
        for (Fiber &g : w.fibers)
            if (g.st == FState::barrier) barrier_check_exited(w, g);
    }
}

inline void diagnose_stuck(Worker &w) {
    const Fiber *bar = nullptr, *warp = nullptr;
    for (const Fiber &g : w.fibers) {
        if (g.st == FState::barrier && !bar) bar = &g;
        if (g.st == FState::warp && !warp) warp = &g;
    }
    char a[48], b[48];
    if (warp && bar)
        fail("deadlock: thread %s waits in %s (mask 0x%08x) at %s:%d while thread %s waits at the barrier at "
             "%s:%d",
             thread_str(*warp, a, sizeof a), warp_op_name(warp->wop), warp->wmask, warp->wfile, warp->wline,
             thread_str(*bar, b, sizeof b), bar->bfile, bar->bline);
    if (warp)
        fail("deadlock in a warp collective: thread %s waits in %s with mask 0x%08x at %s:%d, but not every lane "
             "of the mask reaches a matching call",
             thread_str(*warp, a, sizeof a), warp_op_name(warp->wop), warp->wmask, warp->wfile, warp->wline);
    if (bar)
        fail("deadlock: %d threads wait at the barrier at %s:%d but %d threads never arrive", w.at_bar,
             bar->bfile, bar->bline, w.live - w.at_bar);
    fail("internal error: block stopped with %d live threads", w.live);
}

inline void fiber_main(void *arg) {
    context_entered();
    Fiber *f = (Fiber *)arg;
    (*f->w->L->body)();
    thread_exit(*f);
    yield_current(true);
    fail("internal error: a finished fiber was resumed");
}

inline void run_block(Worker &w, unsigned b) {
    const LaunchInfo &L = *w.L;
    w.bidx = uint3{b % L.grid.x, (b / L.grid.x) % L.grid.y, b / (L.grid.x * L.grid.y)};
    tl_block_idx = w.bidx;
    if (size_t n = static_smem_bytes()) memset(static_smem_ptr(), smem_fill_byte, n);
    if (L.smem) memset(w.dyn, smem_fill_byte, L.smem);
    w.live = w.n;
    w.at_bar = 0;
    w.first_exited = -1;
    w.rhead = w.rcount = 0;
    std::fill(w.warp_waiting.begin(), w.warp_waiting.end(), 0);
    uint64_t s = config().seed ^ ((uint64_t)b * 0x9E3779B97F4A7C15ull);
    w.rng = splitmix(s);
    for (int i = 0; i < w.n; i++) {
        Fiber &f = w.fibers[i];
        context_init(f.ctx, w.stacks[i], fiber_main, &f);
        f.st = FState::ready;
        f.cp_open.clear();
        f.cp_groups.clear();
        w.order.push_back(i);
    }
    wake_in_order(w);
    int first = pop_ready(w);
    Fiber &f0 = w.fibers[first];
    f0.st = FState::running;
    tl_fiber = &f0;
    context_switch(w.sched, f0.ctx);
    tl_fiber = nullptr;
    if (w.live > 0) diagnose_stuck(w);
}

// Worker k of nw runs blocks k, k + nw, ... of the schedule's block order (a static split: with two or more
// blocks, at least two OS threads touch global memory, so TSan sees every inter-block race).
inline void worker_run(const LaunchInfo &L, unsigned k, unsigned nw, const std::vector<unsigned> &block_order,
                       std::atomic<unsigned> &others_busy, std::atomic<unsigned> &others_bars) {
    install_segv_handler();
    Worker w;
    w.L = &L;
    w.n = (int)(L.block.x * L.block.y * L.block.z);
    w.fibers.resize(w.n);
    w.ready.resize(w.n);
    w.warp_waiting.resize((w.n + 31) / 32);
    w.order.reserve(w.n);
    stack_pool().take(w.stacks, w.n, config().stack_bytes);
    for (int i = 0; i < w.n; i++) {
        Fiber &f = w.fibers[i];
        f.w = &w;
        f.tid = (unsigned)i;
        f.idx = uint3{i % L.block.x, (i / L.block.x) % L.block.y, i / (L.block.x * L.block.y)};
    }
    void *dyn = nullptr;
    if (L.smem) {
        if (posix_memalign(&dyn, 128, (L.smem + 127) / 128 * 128) != 0) fail("out of memory for shared memory");
        w.dyn = (unsigned char *)dyn;
    }
    context_init_native(w.sched);
    Worker *saved_w = tl_worker;
    dim3 saved_bd = tl_block_dim, saved_gd = tl_grid_dim;
    tl_worker = &w;
    tl_block_dim = L.block;
    tl_grid_dim = L.grid;
    w.straggle = k == 0 && nw > 1 && config().straggler_ms > 0 ? config().straggler_bar : 0;
    w.others_busy = &others_busy;
    w.others_bars = &others_bars;
    w.count_bars = k > 0;
    for (size_t i = k; i < block_order.size(); i += nw) run_block(w, block_order[i]);
    if (k > 0) others_busy--;
    tl_worker = saved_w;
    tl_block_dim = saved_bd;
    tl_grid_dim = saved_gd;
    for (Fiber &f : w.fibers) context_release(f.ctx);
    stack_pool().give(w.stacks);
    free(dyn);
}

// Runs a launch to completion, when its stream's queue reaches it (emu_runtime.h), or at the call in the eager
// mode.
inline void run_launch(const LaunchInfo &L) {
    unsigned nb = L.grid.x * L.grid.y * L.grid.z;
    std::vector<unsigned> order(nb);
    for (unsigned i = 0; i < nb; i++) order[i] = i;
    if (config().schedule == Schedule::reverse) std::reverse(order.begin(), order.end());
    if (config().schedule == Schedule::random) {
        uint64_t s = config().seed ^ 0xB10C5ull;
        for (size_t i = nb; i > 1; i--) std::swap(order[i - 1], order[splitmix(s) % i]);
    }
    unsigned nw = std::min<unsigned>((unsigned)config().workers, nb);
    if (tl_worker) fail("kernel %s launched from inside a kernel (dynamic parallelism is not emulated)", L.name);
    std::vector<std::thread> pool;
    std::atomic<unsigned> others_busy{nw - 1}, others_bars{0};
    for (unsigned k = 1; k < nw; k++)
        pool.emplace_back([&, k] { worker_run(L, k, nw, order, others_busy, others_bars); });
    worker_run(L, 0, nw, order, others_busy, others_bars);
    for (std::thread &t : pool) t.join();
}

} // namespace emu
