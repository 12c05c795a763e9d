// tests/emu/bugs.cu: kernels with planted bugs that the emulator (or its sanitizer builds) must catch.
// Driven by emu_bugs.cpp; never used outside the tests.
#include "rlc_cuda.h"

// Reads a neighbour's shared-memory slot without a barrier in between.
__global__ void bug_missing_sync(const float *x, float *y) {
    __shared__ float s[256];
    int t = threadIdx.x;
    s[t] = x[blockIdx.x * blockDim.x + t] * 2.0f;
    // __syncthreads();  <- missing
    y[blockIdx.x * blockDim.x + t] = s[(t + 1) % blockDim.x];
}

// The fixed version (control: must be identical in every schedule).
__global__ void bug_missing_sync_fixed(const float *x, float *y) {
    __shared__ float s[256];
    int t = threadIdx.x;
    s[t] = x[blockIdx.x * blockDim.x + t] * 2.0f;
    __syncthreads();
    y[blockIdx.x * blockDim.x + t] = s[(t + 1) % blockDim.x];
}

// A barrier inside a branch that only half the block takes.
__global__ void bug_divergent_barrier(float *y) {
    if (threadIdx.x < 16) {
        __syncthreads();
        y[threadIdx.x] = 1.0f;
    } else {
        y[threadIdx.x] = 2.0f;
        __syncthreads();
    }
}

// Early exit followed by a barrier.
__global__ void bug_exit_before_barrier(float *y, int n) {
    if ((int)threadIdx.x >= n) return;
    __syncthreads();
    y[threadIdx.x] = 1.0f;
}

// A shuffle whose mask leaves out half of the calling lanes.
__global__ void bug_wrong_mask(float *y) {
    float v = (float)threadIdx.x;
    v += __shfl_down_sync(0x0000ffffu, v, 1);
    y[threadIdx.x] = v;
}

// Lanes disagree about the mask of the same shuffle.
__global__ void bug_mask_mismatch(float *y) {
    float v = (float)threadIdx.x;
    unsigned mask = threadIdx.x == 5 ? 0x0000ffffu : 0xffffffffu;
    v += __shfl_xor_sync(mask, v, 1);
    y[threadIdx.x] = v;
}

// Writes one element past the end of the output.
__global__ void bug_oob_write(float *y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= n) y[i] = 1.0f; // should be i < n
}

// Every block increments the same counter without an atomic.
__global__ void bug_block_race(int *counter) {
    if (threadIdx.x == 0) counter[0] = counter[0] + 1;
}

#if defined(RLC_EMU) // emulator only: the recursion would only spill on a GPU
// Unbounded recursion on the fiber stack.
__device__ int deep(volatile int *p, int n) {
    volatile char pad[512];
    pad[0] = (char)n;
    return n <= 0 ? *p : deep(p, n - 1) + pad[0];
}
__global__ void bug_stack_overflow(int *y) { y[threadIdx.x] = deep(y, 1 << 20); }
#endif
