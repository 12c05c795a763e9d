// tests/emu/emu_bugs.cpp: planted bugs that MUST be caught. Passes only if each is reported:
//   missing __syncthreads         -> outputs differ across schedules or contain NaN (and the fixed kernel
//                                    gives identical outputs)
//   barrier divergence, early exit before a barrier, wrong shuffle mask, mismatched masks, stack overflow
//                                 -> the emulator aborts with a clear message (checked in a forked child)
//   out-of-bounds global write    -> AddressSanitizer report (only in the ASan build; see sanitize.sh)
//   race between blocks           -> ThreadSanitizer report (only in the TSan build)
#include <cmath>
#include <cstring>

#include "emu_test.h"

__global__ void bug_missing_sync(const float *x, float *y);
__global__ void bug_missing_sync_fixed(const float *x, float *y);
__global__ void bug_divergent_barrier(float *y);
__global__ void bug_exit_before_barrier(float *y, int n);
__global__ void bug_wrong_mask(float *y);
__global__ void bug_mask_mismatch(float *y);
__global__ void bug_oob_write(float *y, int n);
__global__ void bug_block_race(int *counter);
__global__ void bug_stack_overflow(int *y);

static std::vector<float> run_sync_kernel(bool fixed, emu::Schedule s) {
    emu::set_schedule(s, 99);
    const int blocks = 4, n = blocks * 256;
    std::vector<float> x(n);
    for (int i = 0; i < n; i++) x[i] = (float)i;
    float *d_x = emu_test::to_device(x), *d_y = nullptr;
    RLC_CUDA_CHECK(cudaMalloc((void **)&d_y, n * 4));
    if (fixed) RLC_LAUNCH(bug_missing_sync_fixed, blocks, 256, 0, 0, d_x, d_y);
    else RLC_LAUNCH(bug_missing_sync, blocks, 256, 0, 0, d_x, d_y);
    std::vector<float> y = emu_test::from_device(d_y, n);
    cudaFree(d_x);
    cudaFree(d_y);
    emu::set_schedule(emu::Schedule::forward);
    return y;
}

static bool has_nan(const std::vector<float> &v) {
    for (float f : v)
        if (std::isnan(f)) return true;
    return false;
}

int main(int argc, char **argv) {
    const char *only = argc > 1 ? argv[1] : nullptr;
    auto want = [&](const char *name) { return !only || !strcmp(only, name); };

    if (want("missing_sync")) {
        std::vector<float> f = run_sync_kernel(false, emu::Schedule::forward);
        std::vector<float> r = run_sync_kernel(false, emu::Schedule::reverse);
        std::vector<float> q = run_sync_kernel(false, emu::Schedule::random);
        bool caught = f != r || f != q || has_nan(f) || has_nan(r) || has_nan(q);
        printf("  [missing_sync] forward has NaN: %d, reverse has NaN: %d, forward != reverse: %d\n", has_nan(f),
               has_nan(r), f != r);
        CHECK(caught, "missing __syncthreads was not exposed by the schedules or the NaN fill");
        // Control: with the barrier, all schedules agree and the values are right.
        emu_test::run_all_schedules("missing_sync_fixed", [](emu_test::Outputs &o) {
            std::vector<float> y = run_sync_kernel(true, emu::config().schedule);
            o.add("y", y);
            for (int i = 0; i < (int)y.size(); i++) {
                int b = i / 256, t = i % 256;
                CHECK(y[i] == 2.0f * (float)(b * 256 + (t + 1) % 256), "fixed kernel y[%d] = %g", i, y[i]);
            }
        });
    }
    if (want("divergence")) {
        emu_test::expect_death("divergent_barrier", [] {
            float *y;
            cudaMalloc((void **)&y, 64 * 4);
            RLC_LAUNCH(bug_divergent_barrier, 1, 64, 0, 0, y);
        }, "barrier divergence");
        emu_test::expect_death("exit_before_barrier", [] {
            float *y;
            cudaMalloc((void **)&y, 64 * 4);
            RLC_LAUNCH(bug_exit_before_barrier, 1, 64, 0, 0, y, 40);
        }, "have exited");
    }
    if (want("wrong_mask")) {
        emu_test::expect_death("wrong_mask", [] {
            float *y;
            cudaMalloc((void **)&y, 32 * 4);
            RLC_LAUNCH(bug_wrong_mask, 1, 32, 0, 0, y);
        }, "mask 0x0000ffff"); // lane 15 reads lane 16 outside the mask, or lane 16 is not in its own mask
        emu_test::expect_death("mask_mismatch", [] {
            float *y;
            cudaMalloc((void **)&y, 32 * 4);
            RLC_LAUNCH(bug_mask_mismatch, 1, 32, 0, 0, y);
        }, "warp collective mismatch");
    }
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    if (want("stack_overflow")) {
        emu_test::expect_death("stack_overflow", [] {
            int *y;
            cudaMalloc((void **)&y, 32 * 4);
            cudaMemset(y, 0, 32 * 4);
            RLC_LAUNCH(bug_stack_overflow, 1, 32, 0, 0, y);
        }, "stack overflow");
    }
#endif
#if defined(__SANITIZE_ADDRESS__)
    if (want("oob_write")) {
        emu_test::expect_death("oob_write", [] {
            float *y;
            cudaMalloc((void **)&y, 100 * 4);
            RLC_LAUNCH(bug_oob_write, 4, 32, 0, 0, y, 100);
        }, "heap-buffer-overflow");
    }
#else
    if (want("oob_write")) printf("  [oob_write] skipped: needs the AddressSanitizer build (tests/emu/sanitize.sh)\n");
#endif
#if defined(__SANITIZE_THREAD__)
    if (want("block_race")) {
        emu_test::expect_death("block_race", [] {
            emu::set_workers(2);
            int *c;
            cudaMalloc((void **)&c, 4);
            cudaMemset(c, 0, 4);
            RLC_LAUNCH(bug_block_race, 8, 32, 0, 0, c);
        }, "data race");
    }
#else
    if (want("block_race")) printf("  [block_race] skipped: needs the ThreadSanitizer build (tests/emu/sanitize.sh)\n");
#endif
    return test_finish("emu_bugs");
}
