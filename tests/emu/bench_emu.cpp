// tests/emu/bench_emu.cpp: speed of the CUDA emulator. Prints the raw context-switch cost (two contexts
// ping-ponging through rlc_emu_switch), the cost per thread resumption at a barrier (switch + scheduler
// bookkeeping), and the time of a 64-block x 256-thread kernel with 10 barriers on one worker thread (one
// core) and on the default pool. As a ctest it fails only if that kernel takes a second or more.
#include <chrono>
#include <cstdio>

#include "rlc_cuda.h"

static double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

static emu::Context ping_main, ping_fiber;
static long ping_n;
static void ping_body(void *) {
    emu::context_entered();
    for (;;) emu::context_switch(ping_fiber, ping_main);
}

__global__ void barriers_kernel(float *out, int nbar) {
    __shared__ float s[256];
    float v = (float)threadIdx.x;
    for (int i = 0; i < nbar; i++) {
        s[threadIdx.x] = v;
        __syncthreads();
        v += s[(threadIdx.x + 1) & 255] * 0.5f;
    }
    out[blockIdx.x * blockDim.x + threadIdx.x] = v;
}

int main() {
    // Raw switch: main -> fiber -> main is two switches.
    std::vector<emu::Stack> st;
    emu::stack_pool().take(st, 1, 64 * 1024);
    emu::context_init(ping_fiber, st[0], ping_body, nullptr);
    emu::context_init_native(ping_main);
    ping_n = 2000000;
    double t0 = now_s();
    for (long i = 0; i < ping_n; i++) emu::context_switch(ping_main, ping_fiber);
    double raw_ns = (now_s() - t0) / (2.0 * ping_n) * 1e9;
    printf("emu bench: raw context switch          %6.1f ns\n", raw_ns);

    float *d_out;
    RLC_CUDA_CHECK(cudaMalloc((void **)&d_out, 64 * 256 * 4));
    // Resumption cost at barriers: 1 block x 256 threads x 2000 barriers.
    emu::set_workers(1);
    RLC_LAUNCH(barriers_kernel, 1, 256, 0, 0, d_out, 10); // warm-up (stacks mapped)
    t0 = now_s();
    RLC_LAUNCH(barriers_kernel, 1, 256, 0, 0, d_out, 2000);
    double bar_ns = (now_s() - t0) / (256.0 * 2001) * 1e9;
    printf("emu bench: thread resumption at a barrier %6.1f ns (switch + scheduling)\n", bar_ns);

    int failed = 0;
    for (int workers = 1; workers <= 2; workers++) {
        emu::set_workers(workers);
        RLC_LAUNCH(barriers_kernel, 64, 256, 0, 0, d_out, 10); // warm-up
        double best = 1e9;
        for (int rep = 0; rep < 5; rep++) {
            t0 = now_s();
            RLC_LAUNCH(barriers_kernel, 64, 256, 0, 0, d_out, 10);
            best = std::min(best, now_s() - t0);
        }
        printf("emu bench: 64 blocks x 256 threads x 10 barriers, %d worker%s: %.2f ms\n", workers,
               workers > 1 ? "s" : " ", best * 1e3);
        if (best >= 1.0) failed = 1;
    }
    RLC_CUDA_CHECK(cudaGetLastError());
    cudaFree(d_out);
    emu::stack_pool().give(st);
    if (failed) fprintf(stderr, "emu bench: the 64x256x10-barrier kernel took a second or more\n");
    return failed;
}
