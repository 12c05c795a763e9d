// kernels/cuda/emu/emu_fiber.h: user-space fibers for the CUDA emulator. Owns the x86-64 context switch
// (hand-written assembly: six callee-saved registers and the stack pointer, no system call, unlike
// ucontext's swapcontext which saves the signal mask), the guard-paged fiber stacks (mmap + a PROT_NONE page
// below each stack, so an overflow faults instead of corrupting a neighbour), a pool that reuses stacks
// across blocks and launches, and the sanitizer annotations that let ASan and TSan follow stack switches.
//
// Header-only: the assembly lives in a COMDAT section, so every translation unit may include this file and
// the linker keeps one copy.
#pragma once
#if !defined(__x86_64__)
#error "the rlc CUDA emulator's context switch is written for x86-64"
#endif

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define RLC_EMU_ASAN 1
extern "C" void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
extern "C" void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old, size_t *size_old);
#endif
#if defined(__SANITIZE_THREAD__)
#define RLC_EMU_TSAN 1
extern "C" void *__tsan_get_current_fiber(void);
extern "C" void *__tsan_create_fiber(unsigned flags);
extern "C" void __tsan_destroy_fiber(void *fiber);
extern "C" void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif

// rlc_emu_switch(save, load): push rbp, rbx, r12-r15 on the current stack, store rsp into *save, load rsp
// from `load`, pop the six registers of the target and return into it. Everything else is caller-saved
// under the System V ABI, so the C++ caller has already spilled it. MXCSR and the x87 control word are
// not switched: kernels never change rounding modes.
// rlc_emu_fiber_entry: first "return" target of a fresh fiber: calls r13(r12) and never comes back.
// .cfi_undefined rip marks it as the outermost frame for unwinders (sanitizer stack traces stop here).
asm(R"(
    .pushsection .text.rlc_emu_switch,"axG",@progbits,rlc_emu_switch,comdat
    .globl rlc_emu_switch
    .hidden rlc_emu_switch
    .type rlc_emu_switch,@function
rlc_emu_switch:
    .cfi_startproc
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .cfi_endproc
    .size rlc_emu_switch, .-rlc_emu_switch
    .popsection
    .pushsection .text.rlc_emu_fiber_entry,"axG",@progbits,rlc_emu_fiber_entry,comdat
    .globl rlc_emu_fiber_entry
    .hidden rlc_emu_fiber_entry
    .type rlc_emu_fiber_entry,@function
rlc_emu_fiber_entry:
    .cfi_startproc
    .cfi_undefined rip
    movq %r12, %rdi
    callq *%r13
    ud2
    .cfi_endproc
    .size rlc_emu_fiber_entry, .-rlc_emu_fiber_entry
    .popsection
)");
extern "C" void rlc_emu_switch(void **save_sp, void *load_sp) __attribute__((visibility("hidden")));
extern "C" void rlc_emu_fiber_entry(void) __attribute__((visibility("hidden")));

namespace emu {

[[noreturn]] inline void die_errno(const char *what) {
    std::perror(what);
    std::abort();
}

// One guard-paged stack: [base, base+guard) is PROT_NONE, [lo, hi) is usable, the stack grows down from hi.
struct Stack {
    char *base = nullptr;
    size_t total = 0;
    char *lo = nullptr, *hi = nullptr;
};

inline size_t page_size() {
    static const size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    return ps;
}

inline Stack stack_alloc(size_t bytes) {
    size_t ps = page_size();
    bytes = (bytes + ps - 1) / ps * ps;
    Stack s;
    s.total = bytes + ps;
    void *p = mmap(nullptr, s.total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) die_errno("rlc-emu: mmap of a fiber stack");
    s.base = (char *)p;
    if (mprotect(s.base, ps, PROT_NONE) != 0) die_errno("rlc-emu: mprotect of a stack guard page");
    s.lo = s.base + ps;
    s.hi = s.base + s.total;
    return s;
}

// Stacks are kept for reuse: a launch of 64 blocks x 256 threads maps 256 stacks per worker once, not
// 16384 times. The pool is process-wide and guarded by a mutex (workers take and return whole sets).
struct StackPool {
    std::mutex mu;
    std::vector<Stack> free_stacks;
    std::vector<Stack> all; // for the guard-page lookup of the SIGSEGV handler
    size_t stack_bytes = 0;

    void take(std::vector<Stack> &out, size_t n, size_t bytes) {
        std::lock_guard<std::mutex> lk(mu);
        if (bytes != stack_bytes) { // the stack size changed (a test may set it): unmap the cached ones
            for (Stack &s : free_stacks) {
                for (size_t i = 0; i < all.size(); i++)
                    if (all[i].base == s.base) {
                        all[i] = all.back();
                        all.pop_back();
                        break;
                    }
                munmap(s.base, s.total);
            }
            free_stacks.clear();
            stack_bytes = bytes;
        }
        while (out.size() < n) {
            if (!free_stacks.empty()) {
                out.push_back(free_stacks.back());
                free_stacks.pop_back();
            } else {
                out.push_back(stack_alloc(bytes));
                all.push_back(out.back());
            }
        }
    }
    void give(std::vector<Stack> &in) {
        std::lock_guard<std::mutex> lk(mu);
        for (Stack &s : in) free_stacks.push_back(s);
        in.clear();
    }
    // True if addr lies in the guard page of a known stack (called from a signal handler: no locking,
    // best effort).
    bool is_guard(const void *addr) {
        const char *a = (const char *)addr;
        for (const Stack &s : all)
            if (a >= s.base && a < s.lo) return true;
        return false;
    }
};

inline StackPool &stack_pool() {
    static StackPool p;
    return p;
}

// An execution context: a fiber, or the worker's own stack (the scheduler).
struct Context {
    void *sp = nullptr;
    const void *stack_lo = nullptr; // for ASan
    size_t stack_size = 0;
#if RLC_EMU_ASAN
    void *fake_stack = nullptr;
#endif
#if RLC_EMU_TSAN
    void *tsan_fiber = nullptr;
    bool tsan_owned = false;
#endif
};

// Lay out a fresh stack so that the first switch into it "returns" into rlc_emu_fiber_entry, which calls
// fn(arg) with a correctly aligned stack (rsp % 16 == 8 at the callee's entry).
inline void context_init(Context &c, const Stack &s, void (*fn)(void *), void *arg) {
    uintptr_t top = (uintptr_t)s.hi & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)top;
    *--sp = (uint64_t)(uintptr_t)&rlc_emu_fiber_entry; // return address of the first switch
    *--sp = 0;                                         // rbp
    *--sp = 0;                                         // rbx
    *--sp = (uint64_t)(uintptr_t)arg;                  // r12
    *--sp = (uint64_t)(uintptr_t)fn;                   // r13
    *--sp = 0;                                         // r14
    *--sp = 0;                                         // r15
    c.sp = sp;
    c.stack_lo = s.lo;
    c.stack_size = (size_t)(s.hi - s.lo);
#if RLC_EMU_TSAN
    if (!c.tsan_fiber) {
        c.tsan_fiber = __tsan_create_fiber(0);
        c.tsan_owned = true;
    }
#endif
}

inline void context_release(Context &c) {
#if RLC_EMU_TSAN
    if (c.tsan_owned && c.tsan_fiber) __tsan_destroy_fiber(c.tsan_fiber);
    c.tsan_fiber = nullptr;
    c.tsan_owned = false;
#else
    (void)c;
#endif
}

// Switch from `from` to `to`. `from_finished`: the fiber will never run again (ASan frees its fake stack).
inline void context_switch(Context &from, Context &to, bool from_finished = false) {
#if RLC_EMU_ASAN
    __sanitizer_start_switch_fiber(from_finished ? nullptr : &from.fake_stack, to.stack_lo, to.stack_size);
#else
    (void)from_finished;
#endif
#if RLC_EMU_TSAN
    __tsan_switch_to_fiber(to.tsan_fiber, 0); // synchronizing: a block's fibers are totally ordered
#endif
    rlc_emu_switch(&from.sp, to.sp);
#if RLC_EMU_ASAN
    __sanitizer_finish_switch_fiber(from.fake_stack, nullptr, nullptr);
#endif
}

// First thing a fresh fiber does (ASan must learn that the switch completed).
inline void context_entered() {
#if RLC_EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
}

// The worker thread's own context, filled in before its first switch into a fiber.
inline void context_init_native(Context &c) {
#if RLC_EMU_ASAN || RLC_EMU_TSAN
    pthread_attr_t attr;
    void *addr = nullptr;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &addr, &size);
        pthread_attr_destroy(&attr);
    }
    c.stack_lo = addr;
    c.stack_size = size;
#endif
#if RLC_EMU_TSAN
    c.tsan_fiber = __tsan_get_current_fiber();
    c.tsan_owned = false;
#else
    (void)c;
#endif
}

} // namespace emu
