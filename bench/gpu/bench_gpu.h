// bench/gpu/bench_gpu.h: what the GPU bench programs share. bench_time runs a callable `warmups` times, then
// `reps` times between two CUDA events on the default stream, and returns the best and the median of those reps
// in milliseconds (the callable enqueues work; the events time the device, not the host).
//
// How a rep starts (BenchStart):
//   BENCH_QUEUED (the default): a cudaMemsetAsync of twice the L2 size goes on the stream before the start
//     event. The timed work then starts with a cold L2 (its inputs come from memory, as inside a training step),
//     and the host enqueues the callable's launches while the device is still busy with the memset, so the
//     events time the device's work and the gaps between its kernels, not the host's launch latency. This is
//     what triton.testing.do_bench does, and what the torch baselines (attention_baseline.py,
//     logprob_baseline.py) do too.
//   BENCH_IDLE: the device is idle at the start event, as every GPU figure recorded up to 2026-11-27 was timed:
//     the host's time to enqueue the launches counts. That dominates at a few microseconds of device work (the
//     small loss cases) and is negligible for work of a millisecond.
#pragma once
#include <algorithm>
#include <vector>

#include "rlc_cuda.h"

enum BenchStart { BENCH_QUEUED, BENCH_IDLE };

struct BenchTimes {
    float best, median; // ms
};

template <class F> static BenchTimes bench_time(int reps, int warmups, F fn, BenchStart start = BENCH_QUEUED) {
    cudaEvent_t a, b;
    RLC_CUDA_CHECK(cudaEventCreate(&a));
    RLC_CUDA_CHECK(cudaEventCreate(&b));
    void *flush = NULL;
    size_t flush_bytes = 0;
    if (start == BENCH_QUEUED) {
        int dev = 0, l2 = 0;
        RLC_CUDA_CHECK(cudaGetDevice(&dev));
        RLC_CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
        flush_bytes = 2 * (size_t)(l2 > 0 ? l2 : 64 << 20);
        RLC_CUDA_CHECK(cudaMalloc(&flush, flush_bytes));
    }
    for (int w = 0; w < warmups; w++) fn();
    RLC_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<float> t;
    for (int r = 0; r < (reps > 0 ? reps : 1); r++) {
        if (flush) RLC_CUDA_CHECK(cudaMemsetAsync(flush, r & 0xff, flush_bytes, 0));
        RLC_CUDA_CHECK(cudaEventRecord(a));
        fn();
        RLC_CUDA_CHECK(cudaEventRecord(b));
        RLC_CUDA_CHECK(cudaEventSynchronize(b));
        float ms = 0;
        RLC_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
        t.push_back(ms);
    }
    if (flush) RLC_CUDA_CHECK(cudaFree(flush));
    RLC_CUDA_CHECK(cudaEventDestroy(a));
    RLC_CUDA_CHECK(cudaEventDestroy(b));
    std::sort(t.begin(), t.end());
    return BenchTimes{t.front(), t[t.size() / 2]};
}
