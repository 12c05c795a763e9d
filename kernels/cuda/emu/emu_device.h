// kernels/cuda/emu/emu_device.h: the device-side API of the CUDA emulator, as kernels see it. Owns
// __syncthreads and its variants, warp shuffles and votes (with CUDA's width rules), the tensor-core and
// async-copy operations behind the rlc_* PTX wrappers (ldmatrix, mma.sync m16n8k16, cp.async), atomics,
// fences, and the math intrinsics that are device-only in the toolkit's headers.
//
// Lane layouts of ldmatrix and mma follow ../../shared/spec/tensor_core_layouts.md (restated PTX ISA).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "emu_core.h"

#define RLC_EMU_SITE_ARGS const char *file_ = __builtin_FILE(), int line_ = __builtin_LINE()

// ---------------------------------------------------------------------------------------------------------
// Barriers

inline void __syncthreads(RLC_EMU_SITE_ARGS) { emu::barrier(emu::BAR_SYNC, 0, file_, line_); }
inline int __syncthreads_count(int pred, RLC_EMU_SITE_ARGS) {
    return emu::barrier(emu::BAR_COUNT, pred, file_, line_);
}
inline int __syncthreads_and(int pred, RLC_EMU_SITE_ARGS) { return emu::barrier(emu::BAR_AND, pred, file_, line_); }
inline int __syncthreads_or(int pred, RLC_EMU_SITE_ARGS) { return emu::barrier(emu::BAR_OR, pred, file_, line_); }

// ---------------------------------------------------------------------------------------------------------
// Warp collectives

namespace emu {

inline void check_width(int width, const char *op, const char *file, int line) {
    if (width < 1 || width > 32 || (width & (width - 1)))
        fail("%s at %s:%d: width %d is not a power of two in [1, 32]", op, file, line, width);
}

// Source lane of a shuffle for `lane`, by CUDA's rules; returns lane itself where CUDA returns the caller's
// own value.
inline int shfl_source(int op, int lane, int arg, int width) {
    int seg = lane & ~(width - 1);
    switch (op) {
    case W_SHFL: return seg + (arg & (width - 1)); // srcLane modulo width, inside the lane's segment
    case W_SHFL_UP: return (lane - seg) >= arg ? lane - arg : lane;
    case W_SHFL_DOWN: return (lane - seg) + arg < width ? lane + arg : lane;
    case W_SHFL_XOR: {
        int src = lane ^ arg; // later segments are out of reach; earlier ones are allowed
        return src >= seg + width || src > 31 ? lane : src;
    }
    }
    return lane;
}

struct MmaOperands {
    const uint32_t *a; // 4 registers
    const uint32_t *b; // 2 registers
    const float *c;    // 4 floats
};

inline float bf16_bits_to_float(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

inline void warp_compute(Worker &w, int warp, unsigned mask, Fiber &leader) {
    Fiber *lanes[32] = {};
    for (int l = 0; l < 32; l++)
        if (mask >> l & 1) lanes[l] = &w.fibers[warp * 32 + l];
    int op = leader.wop;
    switch (op) {
    case W_SHFL:
    case W_SHFL_UP:
    case W_SHFL_DOWN:
    case W_SHFL_XOR:
        for (int l = 0; l < 32; l++) {
            Fiber *g = lanes[l];
            if (!g) continue;
            int src = shfl_source(op, l, g->warg, g->wwidth);
            if (!lanes[src])
                fail("%s at %s:%d: lane %d reads lane %d, which is not in the mask 0x%08x", warp_op_name(op),
                     g->wfile, g->wline, l, src, mask);
            memcpy(g->wout, lanes[src]->win, (size_t)g->wsize);
        }
        break;
    case W_BALLOT:
    case W_ANY:
    case W_ALL: {
        unsigned bits = 0;
        for (int l = 0; l < 32; l++)
            if (lanes[l] && *(const int *)lanes[l]->win) bits |= 1u << l;
        unsigned r = op == W_BALLOT ? bits : op == W_ANY ? (bits != 0) : (bits == mask);
        for (int l = 0; l < 32; l++)
            if (lanes[l]) *(unsigned *)lanes[l]->wout = r;
        break;
    }
    case W_REDUCE_ADD:
    case W_REDUCE_MIN:
    case W_REDUCE_MAX: {
        // warg: 1 = signed operands
        uint64_t acc = 0;
        bool first = true, sgn = leader.warg != 0;
        for (int l = 0; l < 32; l++) {
            if (!lanes[l]) continue;
            uint32_t v = *(const uint32_t *)lanes[l]->win;
            if (first) acc = v, first = false;
            else if (op == W_REDUCE_ADD) acc += v;
            else if (sgn) {
                int32_t a = (int32_t)acc, b = (int32_t)v;
                acc = (uint32_t)(op == W_REDUCE_MIN ? std::min(a, b) : std::max(a, b));
            } else acc = op == W_REDUCE_MIN ? std::min<uint32_t>((uint32_t)acc, v) : std::max<uint32_t>((uint32_t)acc, v);
        }
        for (int l = 0; l < 32; l++)
            if (lanes[l]) *(uint32_t *)lanes[l]->wout = (uint32_t)acc;
        break;
    }
    case W_MATCH_ANY:
        for (int l = 0; l < 32; l++) {
            if (!lanes[l]) continue;
            unsigned r = 0;
            for (int m = 0; m < 32; m++)
                if (lanes[m] && !memcmp(lanes[m]->win, lanes[l]->win, (size_t)lanes[l]->wsize)) r |= 1u << m;
            *(unsigned *)lanes[l]->wout = r;
        }
        break;
    case W_SYNCWARP: break;
    case W_LDMATRIX: {
        // warg = number of 8x8 tiles (1, 2, 4); wwidth = 1 for .trans. win = the lane's row address.
        int ntile = leader.warg;
        bool trans = leader.wwidth != 0;
        for (int l = 0; l < 32; l++) {
            Fiber *g = lanes[l];
            if (g->warg != ntile || g->wwidth != leader.wwidth)
                fail("ldmatrix at %s:%d: lanes disagree on the shape (x%d%s vs x%d%s)", g->wfile, g->wline,
                     g->warg, g->wwidth ? ".trans" : "", ntile, trans ? ".trans" : "");
        }
        for (int j = 0; j < ntile; j++)
            for (int r = 0; r < 8; r++) {
                uintptr_t a = (uintptr_t)lanes[8 * j + r]->win;
                if (a & 15)
                    fail("ldmatrix at %s:%d: lane %d supplies row address %p, which is not 16-byte aligned",
                         leader.wfile, leader.wline, 8 * j + r, (const void *)a);
            }
        for (int l = 0; l < 32; l++) {
            uint32_t *out = (uint32_t *)lanes[l]->wout;
            for (int j = 0; j < ntile; j++) {
                uint16_t lo, hi;
                if (!trans) { // row l>>2, elements 2*(l&3), +1
                    const uint16_t *row = (const uint16_t *)lanes[8 * j + (l >> 2)]->win;
                    lo = row[2 * (l & 3)];
                    hi = row[2 * (l & 3) + 1];
                } else { // M[2*(l&3)][l>>2], M[2*(l&3)+1][l>>2]
                    lo = ((const uint16_t *)lanes[8 * j + 2 * (l & 3)]->win)[l >> 2];
                    hi = ((const uint16_t *)lanes[8 * j + 2 * (l & 3) + 1]->win)[l >> 2];
                }
                out[j] = (uint32_t)lo | ((uint32_t)hi << 16);
            }
        }
        break;
    }
    case W_MMA: {
        // Gather A (16x16), B (16x8, k x n), C (16x8) from the fragments, then D = A B + C. The products of
        // bf16 values are exact in fp32; the sum is formed in double and rounded once (hardware's order is
        // unspecified, so tests compare with a tolerance).
        float A[16][16], B[16][8], C[16][8];
        for (int l = 0; l < 32; l++) {
            const MmaOperands &o = *(const MmaOperands *)lanes[l]->win;
            int g = l >> 2, t = l & 3;
            const int ar[4] = {g, g + 8, g, g + 8}, ac[4] = {2 * t, 2 * t, 2 * t + 8, 2 * t + 8};
            for (int r = 0; r < 4; r++) {
                A[ar[r]][ac[r]] = bf16_bits_to_float((uint16_t)(o.a[r] & 0xFFFF));
                A[ar[r]][ac[r] + 1] = bf16_bits_to_float((uint16_t)(o.a[r] >> 16));
            }
            for (int r = 0; r < 2; r++) {
                B[2 * t + 8 * r][g] = bf16_bits_to_float((uint16_t)(o.b[r] & 0xFFFF));
                B[2 * t + 8 * r + 1][g] = bf16_bits_to_float((uint16_t)(o.b[r] >> 16));
            }
            C[g][2 * t] = o.c[0];
            C[g][2 * t + 1] = o.c[1];
            C[g + 8][2 * t] = o.c[2];
            C[g + 8][2 * t + 1] = o.c[3];
        }
        for (int l = 0; l < 32; l++) {
            int g = l >> 2, t = l & 3;
            float *d = (float *)lanes[l]->wout;
            const int dr[4] = {g, g, g + 8, g + 8}, dc[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
            for (int r = 0; r < 4; r++) {
                double s = C[dr[r]][dc[r]];
                for (int k = 0; k < 16; k++) s += (double)A[dr[r]][k] * (double)B[k][dc[r]];
                d[r] = (float)s;
            }
        }
        break;
    }
    }
}

template <class T> inline T shfl_op(int op, unsigned mask, T v, int arg, int width, const char *file, int line) {
    static_assert(sizeof(T) <= 16, "shuffle of an unsupported type"); // bf16x2 is not trivially copyable in C++ terms
    check_width(width, warp_op_name(op), file, line);
    T out;
    warp_collective(op, mask, &v, &out, arg, width, (int)sizeof(T), file, line);
    return out;
}

// cp.async: copies are queued at issue and performed when their group is waited for, so a kernel that
// reads shared memory before cp_async_wait sees the NaN fill, as it may see stale data on hardware.
inline void cp_async_do(const AsyncCopy &c) {
    memcpy(c.dst, c.src, (size_t)c.src_bytes);
    if (c.bytes > c.src_bytes) memset((char *)c.dst + c.src_bytes, 0, (size_t)(c.bytes - c.src_bytes));
}
inline void cp_async_flush(Fiber &f) {
    for (auto &g : f.cp_groups)
        for (auto &c : g) cp_async_do(c);
    for (auto &c : f.cp_open) cp_async_do(c);
    f.cp_groups.clear();
    f.cp_open.clear();
}

} // namespace emu

template <class T> inline T __shfl_sync(unsigned mask, T v, int src, int width = 32, RLC_EMU_SITE_ARGS) {
    return emu::shfl_op(emu::W_SHFL, mask, v, src, width, file_, line_);
}
template <class T> inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32, RLC_EMU_SITE_ARGS) {
    return emu::shfl_op(emu::W_SHFL_UP, mask, v, (int)delta, width, file_, line_);
}
template <class T> inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32, RLC_EMU_SITE_ARGS) {
    return emu::shfl_op(emu::W_SHFL_DOWN, mask, v, (int)delta, width, file_, line_);
}
template <class T> inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32, RLC_EMU_SITE_ARGS) {
    return emu::shfl_op(emu::W_SHFL_XOR, mask, v, lane_mask, width, file_, line_);
}
inline unsigned __ballot_sync(unsigned mask, int pred, RLC_EMU_SITE_ARGS) {
    unsigned r;
    emu::warp_collective(emu::W_BALLOT, mask, &pred, &r, 0, 32, 4, file_, line_);
    return r;
}
inline int __any_sync(unsigned mask, int pred, RLC_EMU_SITE_ARGS) {
    unsigned r;
    emu::warp_collective(emu::W_ANY, mask, &pred, &r, 0, 32, 4, file_, line_);
    return (int)r;
}
inline int __all_sync(unsigned mask, int pred, RLC_EMU_SITE_ARGS) {
    unsigned r;
    emu::warp_collective(emu::W_ALL, mask, &pred, &r, 0, 32, 4, file_, line_);
    return (int)r;
}
inline void __syncwarp(unsigned mask = 0xffffffffu, RLC_EMU_SITE_ARGS) {
    emu::warp_collective(emu::W_SYNCWARP, mask, nullptr, nullptr, 0, 32, 0, file_, line_);
}
inline unsigned __reduce_add_sync(unsigned mask, unsigned v, RLC_EMU_SITE_ARGS) {
    unsigned r;
    emu::warp_collective(emu::W_REDUCE_ADD, mask, &v, &r, 0, 32, 4, file_, line_);
    return r;
}
inline unsigned __reduce_min_sync(unsigned mask, unsigned v, RLC_EMU_SITE_ARGS) {
    unsigned r;
    emu::warp_collective(emu::W_REDUCE_MIN, mask, &v, &r, 0, 32, 4, file_, line_);
    return r;
}
inline unsigned __reduce_max_sync(unsigned mask, unsigned v, RLC_EMU_SITE_ARGS) {
    unsigned r;
    emu::warp_collective(emu::W_REDUCE_MAX, mask, &v, &r, 0, 32, 4, file_, line_);
    return r;
}
inline int __reduce_min_sync(unsigned mask, int v, RLC_EMU_SITE_ARGS) {
    int r;
    emu::warp_collective(emu::W_REDUCE_MIN, mask, &v, &r, 1, 32, 4, file_, line_);
    return r;
}
inline int __reduce_max_sync(unsigned mask, int v, RLC_EMU_SITE_ARGS) {
    int r;
    emu::warp_collective(emu::W_REDUCE_MAX, mask, &v, &r, 1, 32, 4, file_, line_);
    return r;
}
template <class T> inline unsigned __match_any_sync(unsigned mask, T v, RLC_EMU_SITE_ARGS) {
    unsigned r;
    emu::warp_collective(emu::W_MATCH_ANY, mask, &v, &r, 0, 32, (int)sizeof(T), file_, line_);
    return r;
}
// No convergence tracking: every lane of the warp that has not exited counts as active.
inline unsigned __activemask() {
    emu::Worker &w = *emu::tl_worker;
    int warp = (int)(emu::tl_fiber->tid >> 5);
    unsigned m = 0;
    for (int l = 0; l < 32 && warp * 32 + l < w.n; l++)
        if (w.fibers[warp * 32 + l].st != emu::FState::done) m |= 1u << l;
    return m;
}

// ---------------------------------------------------------------------------------------------------------
// Tensor-core and async-copy operations (called by the rlc_* wrappers of rlc_cuda.h)

namespace emu {

inline void ldmatrix(uint32_t *out, int ntile, bool trans, const void *row, const char *file, int line) {
    warp_collective(W_LDMATRIX, 0xffffffffu, row, out, ntile, trans ? 1 : 0, 4, file, line);
}

inline void mma_m16n8k16_bf16(float *d, const uint32_t *a, const uint32_t *b, const float *c, const char *file,
                              int line) {
    MmaOperands o{a, b, c};
    float out[4];
    warp_collective(W_MMA, 0xffffffffu, &o, out, 0, 32, (int)sizeof o, file, line);
    memcpy(d, out, sizeof out);
}

inline void cp_async(void *dst, const void *src, int bytes, int src_bytes, const char *file, int line) {
    if (((uintptr_t)dst | (uintptr_t)src) & (uintptr_t)(bytes - 1))
        fail("cp.async at %s:%d: addresses %p <- %p are not %d-byte aligned", file, line, dst, src, bytes);
    if (src_bytes < 0 || src_bytes > bytes) fail("cp.async at %s:%d: src size %d outside [0, %d]", file, line, src_bytes, bytes);
    tl_fiber->cp_open.push_back(AsyncCopy{dst, src, bytes, src_bytes});
}
inline void cp_async_commit() {
    Fiber &f = *tl_fiber;
    f.cp_groups.push_back(std::move(f.cp_open));
    f.cp_open.clear();
}
// Wait until at most n committed groups are pending (the most recent ones stay in flight).
inline void cp_async_wait(int n) {
    Fiber &f = *tl_fiber;
    while ((int)f.cp_groups.size() > n) {
        for (auto &c : f.cp_groups.front()) cp_async_do(c);
        f.cp_groups.erase(f.cp_groups.begin());
    }
}

} // namespace emu

// ---------------------------------------------------------------------------------------------------------
// Atomics (real atomics: blocks run on several OS threads) and fences

namespace emu {
template <class T, class F> inline T atomic_cas_loop(T *p, F f) {
    static_assert(sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8, "atomic of an unsupported size");
    using U = std::conditional_t<sizeof(T) == 2, uint16_t, std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>;
    U *q = reinterpret_cast<U *>(p);
    U old = __atomic_load_n(q, __ATOMIC_RELAXED);
    for (;;) {
        T ov;
        memcpy((void *)&ov, &old, sizeof(T));
        T nv = f(ov);
        U nu;
        memcpy(&nu, (const void *)&nv, sizeof(T));
        if (__atomic_compare_exchange_n(q, &old, nu, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) return ov;
    }
}
} // namespace emu

#define RLC_EMU_ATOMIC_INT(T)                                                                                   \
    inline T atomicAdd(T *p, T v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }                       \
    inline T atomicSub(T *p, T v) { return __atomic_fetch_sub(p, v, __ATOMIC_SEQ_CST); }                       \
    inline T atomicExch(T *p, T v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }                     \
    inline T atomicAnd(T *p, T v) { return __atomic_fetch_and(p, v, __ATOMIC_SEQ_CST); }                       \
    inline T atomicOr(T *p, T v) { return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST); }                         \
    inline T atomicXor(T *p, T v) { return __atomic_fetch_xor(p, v, __ATOMIC_SEQ_CST); }                       \
    inline T atomicMin(T *p, T v) {                                                                             \
        return emu::atomic_cas_loop(p, [v](T o) { return o < v ? o : v; });                                    \
    }                                                                                                           \
    inline T atomicMax(T *p, T v) {                                                                             \
        return emu::atomic_cas_loop(p, [v](T o) { return o > v ? o : v; });                                    \
    }                                                                                                           \
    inline T atomicCAS(T *p, T cmp, T v) {                                                                      \
        __atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                     \
        return cmp;                                                                                             \
    }
RLC_EMU_ATOMIC_INT(int)
RLC_EMU_ATOMIC_INT(unsigned int)
RLC_EMU_ATOMIC_INT(unsigned long long)
RLC_EMU_ATOMIC_INT(long long)
#undef RLC_EMU_ATOMIC_INT
inline unsigned short atomicCAS(unsigned short *p, unsigned short cmp, unsigned short v) {
    __atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return cmp;
}
inline unsigned atomicInc(unsigned *p, unsigned lim) {
    return emu::atomic_cas_loop(p, [lim](unsigned o) { return o >= lim ? 0u : o + 1; });
}
inline unsigned atomicDec(unsigned *p, unsigned lim) {
    return emu::atomic_cas_loop(p, [lim](unsigned o) { return (o == 0 || o > lim) ? lim : o - 1; });
}
inline float atomicAdd(float *p, float v) { return emu::atomic_cas_loop(p, [v](float o) { return o + v; }); }
inline double atomicAdd(double *p, double v) { return emu::atomic_cas_loop(p, [v](double o) { return o + v; }); }
inline float atomicExch(float *p, float v) { return emu::atomic_cas_loop(p, [v](float) { return v; }); }
inline __nv_bfloat16 atomicAdd(__nv_bfloat16 *p, __nv_bfloat16 v) {
    return emu::atomic_cas_loop(p, [v](__nv_bfloat16 o) { return __float2bfloat16(__bfloat162float(o) + __bfloat162float(v)); });
}
inline __nv_bfloat162 atomicAdd(__nv_bfloat162 *p, __nv_bfloat162 v) {
    return emu::atomic_cas_loop(p, [v](__nv_bfloat162 o) {
        return __floats2bfloat162_rn(__low2float(o) + __low2float(v), __high2float(o) + __high2float(v));
    });
}
inline __half atomicAdd(__half *p, __half v) {
    return emu::atomic_cas_loop(p, [v](__half o) { return __float2half(__half2float(o) + __half2float(v)); });
}
// A fence is a sequentially consistent read-modify-write of one shared word: as strong as a seq_cst fence
// on x86-64, and (unlike atomic_thread_fence) understood by ThreadSanitizer.
namespace emu {
inline int fence_word = 0;
inline void fence() { __atomic_fetch_add(&fence_word, 0, __ATOMIC_SEQ_CST); }
} // namespace emu
inline void __threadfence() { emu::fence(); }
inline void __threadfence_block() { emu::fence(); }
inline void __threadfence_system() { emu::fence(); }

// ---------------------------------------------------------------------------------------------------------
// Math intrinsics that the toolkit declares for the device only. The fast-math versions (__expf, ...) are
// approximations on hardware (about 2 ulp); here they are the accurate functions, so emulated and GPU
// results differ within those bounds.

inline float __expf(float x) { return expf(x); }
inline float __exp10f(float x) { return exp10f(x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __log10f(float x) { return log10f(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline void __sincosf(float x, float *s, float *c) { sincosf(x, s, c); }
inline float __tanf(float x) { return tanf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __fdiv_rn(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __frsqrt_rn(float x) { return 1.0f / sqrtf(x); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
inline float __saturatef(float x) { return x != x ? 0.0f : x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }
inline int __float_as_int(float x) { int i; memcpy(&i, &x, 4); return i; }
inline unsigned __float_as_uint(float x) { unsigned i; memcpy(&i, &x, 4); return i; }
inline float __int_as_float(int i) { float x; memcpy(&x, &i, 4); return x; }
inline float __uint_as_float(unsigned i) { float x; memcpy(&x, &i, 4); return x; }
inline long long __double_as_longlong(double x) { long long i; memcpy(&i, &x, 8); return i; }
inline double __longlong_as_double(long long i) { double x; memcpy(&x, &i, 8); return x; }
inline int __float2int_rn(float x) { return (int)nearbyintf(x); }
inline int __float2int_rz(float x) { return (int)x; }
inline int __float2int_rd(float x) { return (int)floorf(x); }
inline int __float2int_ru(float x) { return (int)ceilf(x); }
inline float __int2float_rn(int x) { return (float)x; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
inline int __clzll(long long x) { return x ? __builtin_clzll((unsigned long long)x) : 64; }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
    x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
    x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
    x = ((x >> 4) & 0x0F0F0F0Fu) | ((x & 0x0F0F0F0Fu) << 4);
    x = ((x >> 8) & 0x00FF00FFu) | ((x & 0x00FF00FFu) << 8);
    return (x >> 16) | (x << 16);
}
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
inline int __mulhi(int a, int b) { return (int)(((long long)a * b) >> 32); }
inline int __mul24(int a, int b) { return a * b; }
inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {
    unsigned long long v = ((unsigned long long)y << 32) | x;
    unsigned r = 0;
    for (int i = 0; i < 4; i++) r |= (unsigned)((v >> (8 * ((s >> (4 * i)) & 7))) & 0xFF) << (8 * i);
    return r;
}
template <class T> inline T __ldg(const T *p) { return *p; }
template <class T> inline T __ldcs(const T *p) { return *p; }
template <class T> inline T __ldcg(const T *p) { return *p; }
template <class T> inline void __stcs(T *p, T v) { *p = v; }
template <class T> inline void __stcg(T *p, T v) { *p = v; }
// CUDA's overloaded device min/max for integers and floats.
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
inline long long clock64() {
    unsigned lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (long long)(((unsigned long long)hi << 32) | lo);
}
[[noreturn]] inline void __trap() { emu::fail("__trap() called"); }
