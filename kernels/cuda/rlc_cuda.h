// kernels/cuda/rlc_cuda.h: the one header every CUDA kernel source includes. Under nvcc it maps to real
// CUDA; under g++ with RLC_EMU defined it maps to the CPU emulator (emu/emu.h), so the same .cu file runs in
// CI without a GPU. Owns the kernel conventions (CONVENTIONS.md beside it):
//   RLC_LAUNCH(kernel, grid, block, smem, stream, args...)  instead of kernel<<<grid, block, smem, stream>>>
//   RLC_DYN_SMEM(type, name)                                 instead of extern __shared__ declarations
//   rlc_mma_m16n8k16_bf16, rlc_ldmatrix_x{1,2,4}[_trans], rlc_cp_async16[_zfill], rlc_cp_async_commit,
//   rlc_cp_async_wait<N>, rlc_red_add_f32x2                 the only places inline PTX may appear
//   RLC_ARCH                                                 __CUDA_ARCH__ on the device, 900 under the emulator
//   RLC_CUDA_CHECK(call)                                     abort with file:line and the error on failure
// Fragment layouts: ../../shared/spec/tensor_core_layouts.md.
#pragma once
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#if defined(RLC_EMU)
// ---------------------------------------------------------------------------------------------- emulator
#include "emu/emu.h"

#define RLC_ARCH 900

#define RLC_LAUNCH(kernel, grid, block, smem, stream, ...)                                                     \
    ::emu::launch(#kernel, __FILE__, __LINE__, kernel, dim3(grid), dim3(block), (size_t)(smem), stream,         \
                  ##__VA_ARGS__)
#define RLC_DYN_SMEM(type, name) type *name = reinterpret_cast<type *>(::emu::dyn_smem())

// D (16x8 f32) = A (16x16 bf16, row) * B (16x8 bf16, col) + C; a warp-collective of all 32 lanes.
inline void rlc_mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                  const float (&c)[4], RLC_EMU_SITE_ARGS) {
    ::emu::mma_m16n8k16_bf16(d, a, b, c, file_, line_);
}
inline void rlc_ldmatrix_x1(uint32_t (&r)[1], const void *smem_row, RLC_EMU_SITE_ARGS) {
    ::emu::ldmatrix(r, 1, false, smem_row, file_, line_);
}
inline void rlc_ldmatrix_x2(uint32_t (&r)[2], const void *smem_row, RLC_EMU_SITE_ARGS) {
    ::emu::ldmatrix(r, 2, false, smem_row, file_, line_);
}
inline void rlc_ldmatrix_x4(uint32_t (&r)[4], const void *smem_row, RLC_EMU_SITE_ARGS) {
    ::emu::ldmatrix(r, 4, false, smem_row, file_, line_);
}
inline void rlc_ldmatrix_x1_trans(uint32_t (&r)[1], const void *smem_row, RLC_EMU_SITE_ARGS) {
    ::emu::ldmatrix(r, 1, true, smem_row, file_, line_);
}
inline void rlc_ldmatrix_x2_trans(uint32_t (&r)[2], const void *smem_row, RLC_EMU_SITE_ARGS) {
    ::emu::ldmatrix(r, 2, true, smem_row, file_, line_);
}
inline void rlc_ldmatrix_x4_trans(uint32_t (&r)[4], const void *smem_row, RLC_EMU_SITE_ARGS) {
    ::emu::ldmatrix(r, 4, true, smem_row, file_, line_);
}
// 16-byte global -> shared copy; _zfill copies src_bytes (0..16) and zero-fills the rest (bounds handling).
inline void rlc_cp_async16(void *smem, const void *gmem, RLC_EMU_SITE_ARGS) {
    ::emu::cp_async(smem, gmem, 16, 16, file_, line_);
}
inline void rlc_cp_async16_zfill(void *smem, const void *gmem, int src_bytes, RLC_EMU_SITE_ARGS) {
    ::emu::cp_async(smem, gmem, 16, src_bytes, file_, line_);
}
inline void rlc_cp_async_commit() { ::emu::cp_async_commit(); }
template <int N> inline void rlc_cp_async_wait() { ::emu::cp_async_wait(N); }
// p[0] += a, p[1] += b in global memory (8-byte aligned), each element atomically, no result: one vector
// reduction (sm_90) on the GPU; here the two scalar atomics it is equivalent to.
inline void rlc_red_add_f32x2(float *p, float a, float b) {
    atomicAdd(p, a);
    atomicAdd(p + 1, b);
}

#else
// --------------------------------------------------------------------------------------------- real CUDA
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <utility>

#if defined(__CUDA_ARCH__)
#define RLC_ARCH __CUDA_ARCH__
#else
#define RLC_ARCH 0
#endif

template <class... P, class... A>
inline void rlc_launch_(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                        A &&...args) {
    static_assert(sizeof...(P) == sizeof...(A), "RLC_LAUNCH: wrong number of kernel arguments");
    kernel<<<grid, block, smem, stream>>>(std::forward<A>(args)...);
}
#define RLC_LAUNCH(kernel, grid, block, smem, stream, ...)                                                     \
    rlc_launch_(kernel, dim3(grid), dim3(block), (size_t)(smem), stream, ##__VA_ARGS__)
#define RLC_DYN_SMEM(type, name)                                                                               \
    extern __shared__ __align__(16) unsigned char rlc_dyn_smem_[];                                             \
    type *name = reinterpret_cast<type *>(rlc_dyn_smem_)

__device__ __forceinline__ unsigned rlc_smem_addr_(const void *p) {
    return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void rlc_mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4],
                                                      const uint32_t (&b)[2], const float (&c)[4]) {
#if RLC_ARCH >= 800
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};\n"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
                   "f"(c[2]), "f"(c[3]));
#else
    __trap();
#endif
}

#define RLC_LDMATRIX_(NAME, SHAPE, N, ...)                                                                     \
    __device__ __forceinline__ void NAME(uint32_t (&r)[N], const void *smem_row) {                             \
        asm volatile("ldmatrix.sync.aligned.m8n8." SHAPE ".shared.b16 " __VA_ARGS__                            \
                     : "r"(rlc_smem_addr_(smem_row)));                                                         \
    }
RLC_LDMATRIX_(rlc_ldmatrix_x1, "x1", 1, "{%0}, [%1];\n" : "=r"(r[0]))
RLC_LDMATRIX_(rlc_ldmatrix_x2, "x2", 2, "{%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]))
RLC_LDMATRIX_(rlc_ldmatrix_x4, "x4", 4, "{%0,%1,%2,%3}, [%4];\n" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]))
RLC_LDMATRIX_(rlc_ldmatrix_x1_trans, "x1.trans", 1, "{%0}, [%1];\n" : "=r"(r[0]))
RLC_LDMATRIX_(rlc_ldmatrix_x2_trans, "x2.trans", 2, "{%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]))
RLC_LDMATRIX_(rlc_ldmatrix_x4_trans, "x4.trans", 4,
              "{%0,%1,%2,%3}, [%4];\n" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]))
#undef RLC_LDMATRIX_

__device__ __forceinline__ void rlc_cp_async16(void *smem, const void *gmem) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(rlc_smem_addr_(smem)), "l"(gmem) : "memory");
}
__device__ __forceinline__ void rlc_cp_async16_zfill(void *smem, const void *gmem, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(rlc_smem_addr_(smem)), "l"(gmem),
                 "r"(src_bytes)
                 : "memory");
}
__device__ __forceinline__ void rlc_cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void rlc_cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
// sm_90: one vector reduction (atomicAdd(float2 *) compiles to atom, with a result, rather than red); the sm_80
// build of the library: two scalar atomics.
__device__ __forceinline__ void rlc_red_add_f32x2(float *p, float a, float b) {
#if RLC_ARCH >= 900
    asm volatile("red.relaxed.gpu.global.add.v2.f32 [%0], {%1, %2};\n" ::"l"(p), "f"(a), "f"(b) : "memory");
#else
    atomicAdd(p, a);
    atomicAdd(p + 1, b);
#endif
}
#endif

#define RLC_CUDA_CHECK(call)                                                                                   \
    do {                                                                                                       \
        cudaError_t rlc_err_ = (call);                                                                         \
        if (rlc_err_ != cudaSuccess) {                                                                         \
            fprintf(stderr, "%s:%d: %s failed: %s (%s)\n", __FILE__, __LINE__, #call,                          \
                    cudaGetErrorString(rlc_err_), cudaGetErrorName(rlc_err_));                                 \
            abort();                                                                                           \
        }                                                                                                      \
    } while (0)

// 2^x on the MUFU unit, denormal results flushed to zero. exp2f() in nvcc's default (non-ftz) mode wraps
// ex2.approx in a denormal fix-up (compare, two predicated multiplies: 4 instructions where 1 does), and expf()
// adds a range reduction on top; softmax-like sums never need denormal terms, so the flush-to-zero instruction is
// used through its NVVM builtin (not inline PTX). 2^-inf = +0; relative error about 2^-22. The emulator computes
// exp2f (accurate; the tests compare with tolerances).
__device__ __forceinline__ float rlc_exp2_ftz(float x) {
#if !defined(RLC_EMU) && RLC_ARCH > 0
    return __nvvm_ex2_approx_ftz_f(x);
#else
    return exp2f(x); // the emulator, and nvcc's host pass (which never runs it)
#endif
}
// Before a loop that nvcc must unroll fully (register arrays indexed by the loop variable must not go to local
// memory); g++ (the emulator) would warn about an unknown pragma.
#if defined(__CUDACC__)
#define RLC_UNROLL _Pragma("unroll")
#else
#define RLC_UNROLL
#endif

#define RLC_LOG2E 1.4426950408889634f // log2(e)
#define RLC_LN2 0.6931471805599453f   // ln(2)

// Activation elements (include/rlc/ops.h rlc_act): fp32, or bf16 in the backend's mixed precision. Kernels that
// read or write activations are templates on the element type A (float or __nv_bfloat16), load through rlc_ld,
// compute in fp32 and store through rlc_st (round to nearest even into bf16).
__device__ __forceinline__ float rlc_ld(const float *p) { return *p; }
__device__ __forceinline__ float rlc_ld(const __nv_bfloat16 *p) { return __bfloat162float(*p); }
__device__ __forceinline__ void rlc_st(float *p, float x) { *p = x; }
__device__ __forceinline__ void rlc_st(__nv_bfloat16 *p, float x) { *p = __float2bfloat16_rn(x); }
// Host side: runs `body` with A the activation type named by the flag (nonzero: bf16).
#define RLC_ACT_DISPATCH(bf16_flag, A, ...)                                                                    \
    do {                                                                                                       \
        if (bf16_flag) {                                                                                       \
            typedef __nv_bfloat16 A;                                                                           \
            __VA_ARGS__;                                                                                       \
        } else {                                                                                               \
            typedef float A;                                                                                   \
            __VA_ARGS__;                                                                                       \
        }                                                                                                      \
    } while (0)

#include <map>
#include <mutex>

// Allows `kernel` `bytes` of dynamic shared memory (above the 48 KiB default). The attribute call is a driver round
// trip that would otherwise sit in front of every launch, so it is made only when `bytes` exceeds what was allowed
// so far for (kernel, device). Returns 1, or 0 with a message naming `what` when the device refuses.
template <class K> static inline int rlc_smem_allow(K kernel, size_t bytes, const char *what) {
    if (bytes <= 48 * 1024) return 1;
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) dev = 0;
    static std::mutex mu;
    static std::map<std::pair<const void *, int>, size_t> allowed;
    const std::pair<const void *, int> key((const void *)kernel, dev);
    std::lock_guard<std::mutex> g(mu); // held across the call: a smaller request must not undo a larger one
    const auto it = allowed.find(key);
    if (it != allowed.end() && it->second >= bytes) return 1;
    const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
    if (e != cudaSuccess) {
        fprintf(stderr, "%s: cannot allow %zu bytes of dynamic shared memory: %s\n", what, bytes, cudaGetErrorString(e));
        return 0;
    }
    allowed[key] = bytes;
    return 1;
}
