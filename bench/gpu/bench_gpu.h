// bench/gpu/bench_gpu.h: what the GPU bench programs share. bench_time runs a callable `warmups` times, then
// `reps` times between two CUDA events on the default stream, and returns the best and the median of those reps
// in milliseconds (the callable enqueues work; the events time the device, not the host).
#pragma once
#include <algorithm>
#include <vector>

#include "rlc_cuda.h"

struct BenchTimes {
    float best, median; // ms
};

template <class F> static BenchTimes bench_time(int reps, int warmups, F fn) {
    cudaEvent_t a, b;
    RLC_CUDA_CHECK(cudaEventCreate(&a));
    RLC_CUDA_CHECK(cudaEventCreate(&b));
    for (int w = 0; w < warmups; w++) fn();
    RLC_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<float> t;
    for (int r = 0; r < (reps > 0 ? reps : 1); r++) {
        RLC_CUDA_CHECK(cudaEventRecord(a));
        fn();
        RLC_CUDA_CHECK(cudaEventRecord(b));
        RLC_CUDA_CHECK(cudaEventSynchronize(b));
        float ms = 0;
        RLC_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
        t.push_back(ms);
    }
    RLC_CUDA_CHECK(cudaEventDestroy(a));
    RLC_CUDA_CHECK(cudaEventDestroy(b));
    std::sort(t.begin(), t.end());
    return BenchTimes{t.front(), t[t.size() / 2]};
}
