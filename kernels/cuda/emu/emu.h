// kernels/cuda/emu/emu.h: the rlc CUDA emulator, header-only C++17. Runs the kernels of kernels/cuda/*.cu,
// compiled unchanged by g++ with -DRLC_EMU, on the CPU: one fiber per CUDA thread, blocks on a small pool of
// OS threads. Kernels include it through ../rlc_cuda.h, never directly. It is a test harness, not part of
// the shipped engine. Overview and rules: ../CONVENTIONS.md.
//
//   emu_fiber.h    context switch (x86-64 assembly), guard-paged stacks, sanitizer fiber annotations
//   emu_core.h     configuration, scheduler, barriers, warp-collective rendezvous, shared memory, launch
//   emu_device.h   __syncthreads*, shuffles/votes, ldmatrix/mma/cp.async, atomics, fences, math intrinsics
//   emu_runtime.h  cudaMalloc/Memcpy/..., stream queues (deferred mode), events, errors, launch checks
//
// Environment: RLC_EMU_SCHEDULE=forward|reverse|random[:seed] (order in which threads resume at each barrier
// and blocks are taken), RLC_EMU_WORKERS=n (OS threads running blocks, default 2), RLC_EMU_STACK_KB=n (stack
// per CUDA thread, default 64; 256 under ASan/TSan), RLC_EMU_DEFER=0 (eager mode: every stream operation runs at
// the call; default: deferred, queued on its stream until the program synchronises, emu_runtime.h),
// RLC_EMU_DEFER=shuffle with RLC_EMU_SHUFFLE_SEED=n (deferred, in a seeded order that also runs other streams'
// ready work early), RLC_EMU_STRAGGLER_MS=n[:b] (in every launch, the first block of worker 0 to reach its b-th
// barrier, default the first, stops there until the other workers are done or n ms have passed: emu_core.h). The same can be set with
// emu::set_schedule/set_workers/set_defer/set_shuffle/set_straggler.
#pragma once
#ifndef RLC_EMU
#define RLC_EMU 1
#endif
#if defined(__CUDACC__) || defined(__CUDA_ARCH__)
#error "kernels/cuda/emu/emu.h is for host compilers (g++ -DRLC_EMU), not nvcc"
#endif

// The toolkit's own headers compile on the host: types (dim3, float4, cudaError_t, ...), the runtime API's
// declarations, and __nv_bfloat16 / __half with their host conversion paths.
#include <cuda_runtime_api.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <vector_functions.h>

#include "emu_fiber.h"
#include "emu_core.h"
#include "emu_device.h"
#include "emu_runtime.h"

// CUDA keywords. __shared__ variables become thread_local in the section rlc_emu_smem (see emu_core.h):
// one copy per worker thread, i.e. per running block, refilled with NaN bytes before every block.
#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __constant__
#undef __managed__
#undef __launch_bounds__
#undef __grid_constant__
#define __global__
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __grid_constant__
#define __launch_bounds__(...)
#define __shared__ static thread_local __attribute__((section("rlc_emu_smem"), aligned(16)))

#define threadIdx (::emu::tl_fiber->idx)
#define blockIdx (::emu::tl_block_idx)
#define blockDim (::emu::tl_block_dim)
#define gridDim (::emu::tl_grid_dim)
static constexpr int warpSize = 32;
