// kernels/cuda/emu/emu_runtime.h: the host side of the CUDA emulator. Owns the CUDA runtime stubs (device
// memory is host memory from posix_memalign, filled with 0xFF on allocation so that reads of unwritten device
// memory show NaN; streams and events; the per-thread last error) and kernel launch with CUDA's launch checks:
// at most 1024 threads per block (x, y <= 1024, z <= 64), grid y, z <= 65535, dynamic shared memory above
// 48 KiB only after cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize), never above 227 KiB.
//
// The runtime functions are defined `weak` with C linkage, matching the declarations of the toolkit's
// cuda_runtime_api.h, so that every translation unit may include this header.
#pragma once
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "emu_core.h"

struct CUstream_st {
    int flags;
};
struct CUevent_st {
    double t_ms;
};

namespace emu {

constexpr size_t smem_default_limit = 48 * 1024;
constexpr size_t smem_optin_limit = 227 * 1024;

struct Runtime {
    std::mutex mu;
    std::unordered_map<void *, size_t> allocs;       // device allocations
    std::unordered_map<const void *, int> max_dyn;   // per kernel: cudaFuncAttributeMaxDynamicSharedMemorySize
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
    (void)stream; // launches run synchronously, in issue order: a valid schedule for any stream use
    // Kernel parameters are copied once here; each CUDA thread gets its own copy when it calls the kernel.
    std::tuple<std::decay_t<P>...> params(std::forward<A>(args)...);
    std::function<void()> body = [&params, kernel]() { std::apply(kernel, params); };
    LaunchInfo L{name, file, line, grid, block, smem, &body};
    if (!launch_check(L, (const void *)kernel)) return;
    run_launch(L);
}

} // namespace emu

template <class T> inline cudaError_t cudaMalloc(T **p, size_t n) { return cudaMalloc((void **)p, n); }
template <class T> inline cudaError_t cudaMallocHost(T **p, size_t n) { return cudaMallocHost((void **)p, n); }
template <class T>
inline cudaError_t cudaMemcpyToSymbol(const T &symbol, const void *src, size_t count, size_t offset = 0,
                                      cudaMemcpyKind = cudaMemcpyHostToDevice) {
    memcpy((char *)&symbol + offset, src, count);
    return cudaSuccess;
}
template <class T>
inline cudaError_t cudaMemcpyFromSymbol(void *dst, const T &symbol, size_t count, size_t offset = 0,
                                        cudaMemcpyKind = cudaMemcpyDeviceToHost) {
    memcpy(dst, (const char *)&symbol + offset, count);
    return cudaSuccess;
}
template <class T> inline cudaError_t cudaFuncSetAttribute(T *kernel, cudaFuncAttribute attr, int value) {
    return cudaFuncSetAttribute((const void *)kernel, attr, value);
}

#define RLC_EMU_API extern "C" __attribute__((weak))

RLC_EMU_API cudaError_t cudaMalloc(void **p, size_t n) {
    void *q = nullptr;
    // 256-byte alignment as cudaMalloc guarantees; the exact size, so ASan flags any byte past the end.
    if (posix_memalign(&q, 256, n ? n : 1) != 0) {
        *p = nullptr;
        return emu::set_error(cudaErrorMemoryAllocation);
    }
    memset(q, 0xFF, n);
    {
        std::lock_guard<std::mutex> lk(emu::runtime().mu);
        emu::runtime().allocs[q] = n;
    }
    *p = q;
    return cudaSuccess;
}
RLC_EMU_API cudaError_t cudaFree(void *p) {
    if (!p) return cudaSuccess;
    {
        std::lock_guard<std::mutex> lk(emu::runtime().mu);
        if (!emu::runtime().allocs.erase(p)) {
            fprintf(stderr, "rlc-emu: cudaFree(%p): not a pointer returned by cudaMalloc\n", p);
            return emu::set_error(cudaErrorInvalidValue);
        }
    }
    free(p);
    return cudaSuccess;
}
RLC_EMU_API cudaError_t cudaMallocAsync(void **p, size_t n, cudaStream_t) { return cudaMalloc(p, n); }
RLC_EMU_API cudaError_t cudaFreeAsync(void *p, cudaStream_t) { return cudaFree(p); }
RLC_EMU_API cudaError_t cudaMallocHost(void **p, size_t n) {
    *p = malloc(n ? n : 1);
    return *p ? cudaSuccess : emu::set_error(cudaErrorMemoryAllocation);
}
RLC_EMU_API cudaError_t cudaHostAlloc(void **p, size_t n, unsigned) { return cudaMallocHost(p, n); }
RLC_EMU_API cudaError_t cudaFreeHost(void *p) {
    free(p);
    return cudaSuccess;
}
RLC_EMU_API cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind) {
    if (n) memcpy(dst, src, n);
    return cudaSuccess;
}
RLC_EMU_API cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind k, cudaStream_t) {
    return cudaMemcpy(dst, src, n, k);
}
RLC_EMU_API cudaError_t cudaMemset(void *p, int v, size_t n) {
    if (n) memset(p, v, n);
    return cudaSuccess;
}
RLC_EMU_API cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t) { return cudaMemset(p, v, n); }
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

RLC_EMU_API cudaError_t cudaStreamCreate(cudaStream_t *s) {
    *s = new CUstream_st{0};
    return cudaSuccess;
}
RLC_EMU_API cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags) {
    *s = new CUstream_st{(int)flags};
    return cudaSuccess;
}
RLC_EMU_API cudaError_t cudaStreamCreateWithPriority(cudaStream_t *s, unsigned flags, int) {
    return cudaStreamCreateWithFlags(s, flags);
}
RLC_EMU_API cudaError_t cudaStreamDestroy(cudaStream_t s) {
    delete s;
    return cudaSuccess;
}
RLC_EMU_API cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
RLC_EMU_API cudaError_t cudaStreamQuery(cudaStream_t) { return cudaSuccess; }
RLC_EMU_API cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned) { return cudaSuccess; }
RLC_EMU_API cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
RLC_EMU_API cudaError_t cudaEventCreate(cudaEvent_t *e) {
    *e = new CUevent_st{0.0};
    return cudaSuccess;
}
RLC_EMU_API cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned) { return cudaEventCreate(e); }
RLC_EMU_API cudaError_t cudaEventDestroy(cudaEvent_t e) {
    delete e;
    return cudaSuccess;
}
RLC_EMU_API cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
    e->t_ms = emu::now_ms();
    return cudaSuccess;
}
RLC_EMU_API cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
RLC_EMU_API cudaError_t cudaEventQuery(cudaEvent_t) { return cudaSuccess; }
RLC_EMU_API cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
    *ms = (float)(b->t_ms - a->t_ms);
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
