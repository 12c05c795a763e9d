// tests/emu/emu_checks.cpp: checks of the emulator's runtime and semantics that are not known answers of a
// kernel: launch-configuration errors (cudaGetLastError), the 48 KiB / 227 KiB dynamic shared-memory rules,
// the NaN fill of static and dynamic shared memory before every block, cp.async groups (data lands only at
// the matching wait), templates with __shared__, grid/block indexing in 3-D, events, and the emulated backends
// of rlc_blas.h (vs a double-precision GEMM of the bf16-rounded inputs) and rlc_comm.h (single rank; several
// ranks over MPI are tests/emu/nccl_ranks.cpp's, under mpirun).
#include <cmath>
#include <cstring>

#include "emu_test.h"
#include "rlc_blas.h"
#include "rlc_comm.h"

__global__ void noop_kernel(int *p) {
    if (p) p[0] = 1;
}

__global__ void smem_probe_kernel(float *out) {
    __shared__ float s[64];
    RLC_DYN_SMEM(float, d);
    int t = threadIdx.x;
    // First read what the block finds (must be the NaN fill), then dirty it for the next block.
    out[blockIdx.x * 128 + t] = s[t];
    out[blockIdx.x * 128 + 64 + t] = d[t];
    __syncthreads();
    s[t] = 1.0f;
    d[t] = 2.0f;
}

__global__ void cp_async_kernel(const float *g, float *out) {
    __shared__ __align__(16) float s[2][4];
    if (threadIdx.x == 0) {
        rlc_cp_async16(s[0], g);
        rlc_cp_async_commit();
        rlc_cp_async16(s[1], g + 4);
        rlc_cp_async_commit();
        out[0] = s[0][0]; // before any wait: not landed yet
        rlc_cp_async_wait<1>();
        out[1] = s[0][0]; // first group landed
        out[2] = s[1][0]; // second still in flight
        rlc_cp_async_wait<0>();
        out[3] = s[1][0];
        rlc_cp_async16_zfill(s[0], g, 8); // two floats copied, two zero-filled
        rlc_cp_async_commit();
        rlc_cp_async_wait<0>();
        out[4] = s[0][1];
        out[5] = s[0][2];
    }
}

template <int N> __global__ void template_smem_kernel(int *out) {
    __shared__ int s[N];
    s[threadIdx.x] = (int)threadIdx.x * N;
    __syncthreads();
    out[threadIdx.x] = s[N - 1 - threadIdx.x];
}

__global__ void index3d_kernel(int *out) {
    int b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    int t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    int nt = blockDim.x * blockDim.y * blockDim.z;
    out[b * nt + t] = b * 1000 + t;
}

__global__ void bad_width_kernel(int *out) { out[threadIdx.x] = __shfl_sync(0xffffffffu, 1, 0, 12); }
__global__ void warp_deadlock_kernel(int *out) {
    if (threadIdx.x < 16) out[threadIdx.x] = __shfl_sync(0xffffffffu, 1, 0);
    else __syncthreads();
}

static float bf16_round(float x) { return __bfloat162float(__float2bfloat16(x)); }

int main() {
    // ---- launch checks ----
    {
        cudaGetLastError();
        RLC_LAUNCH(noop_kernel, 1, 1025, 0, 0, (int *)nullptr);
        CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration, "1025 threads per block must fail");
        CHECK(cudaGetLastError() == cudaSuccess, "cudaGetLastError must reset the error");
        RLC_LAUNCH(noop_kernel, 1, dim3(1, 1, 65), 0, 0, (int *)nullptr);
        CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration, "block z = 65 must fail");
        RLC_LAUNCH(noop_kernel, dim3(1, 65536), 1, 0, 0, (int *)nullptr);
        CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration, "grid y = 65536 must fail");
        RLC_LAUNCH(noop_kernel, 1, 1024, 0, 0, (int *)nullptr);
        CHECK(cudaGetLastError() == cudaSuccess, "1024 threads per block must run");
        int *flag;
        RLC_CUDA_CHECK(cudaMalloc((void **)&flag, 4));
        RLC_CUDA_CHECK(cudaMemset(flag, 0, 4));
        RLC_LAUNCH(noop_kernel, 1, 32, 64 * 1024, 0, flag);
        int h = -1;
        cudaMemcpy(&h, flag, 4, cudaMemcpyDeviceToHost);
        CHECK(cudaGetLastError() == cudaErrorInvalidValue && h == 0,
              "64 KiB of dynamic smem without cudaFuncSetAttribute must fail and not run (ran: %d)", h);
        CHECK(cudaFuncSetAttribute(noop_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 228 * 1024) ==
                  cudaErrorInvalidValue, "a 228 KiB limit must be refused");
        cudaGetLastError();
        RLC_CUDA_CHECK(cudaFuncSetAttribute(noop_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 100 * 1024));
        RLC_LAUNCH(noop_kernel, 1, 32, 64 * 1024, 0, flag);
        cudaMemcpy(&h, flag, 4, cudaMemcpyDeviceToHost);
        CHECK(cudaGetLastError() == cudaSuccess && h == 1, "64 KiB after raising the limit must run");
        RLC_LAUNCH(noop_kernel, 1, 32, 101 * 1024, 0, flag);
        CHECK(cudaGetLastError() == cudaErrorInvalidValue, "101 KiB above the raised 100 KiB limit must fail");
        CHECK(cudaFree(flag) == cudaSuccess, "cudaFree");
        int x;
        CHECK(cudaFree(&x) == cudaErrorInvalidValue, "cudaFree of a host pointer must fail");
        cudaGetLastError();
    }
    // ---- shared memory is NaN at the start of every block ----
    {
        const int blocks = 6;
        float *d_out;
        RLC_CUDA_CHECK(cudaMalloc((void **)&d_out, blocks * 128 * 4));
        for (int workers = 1; workers <= 2; workers++) {
            emu::set_workers(workers);
            RLC_LAUNCH(smem_probe_kernel, blocks, 64, 64 * 4, 0, d_out);
            std::vector<float> o = emu_test::from_device(d_out, blocks * 128);
            int nan = 0;
            for (float f : o) nan += std::isnan(f);
            CHECK(nan == blocks * 128, "%d workers: %d of %d shared-memory reads were not NaN", workers,
                  blocks * 128 - nan, blocks * 128);
        }
        emu::set_workers(2);
        cudaFree(d_out);
    }
    // ---- cp.async groups ----
    {
        std::vector<float> g = {1, 2, 3, 4, 5, 6, 7, 8};
        float *d_g = emu_test::to_device(g), *d_out;
        RLC_CUDA_CHECK(cudaMalloc((void **)&d_out, 6 * 4));
        RLC_LAUNCH(cp_async_kernel, 1, 32, 0, 0, d_g, d_out);
        std::vector<float> o = emu_test::from_device(d_out, 6);
        CHECK(std::isnan(o[0]), "cp.async data must not land before the wait (got %g)", o[0]);
        CHECK(o[1] == 1.0f && std::isnan(o[2]), "wait_group 1: first group landed (%g), second not (%g)", o[1], o[2]);
        CHECK(o[3] == 5.0f, "wait_group 0: second group landed (%g)", o[3]);
        CHECK(o[4] == 2.0f && o[5] == 0.0f, "zfill: copied %g, zero-filled %g", o[4], o[5]);
        cudaFree(d_g);
        cudaFree(d_out);
    }
    // ---- templates with __shared__, 3-D indexing ----
    {
        int *d_out;
        RLC_CUDA_CHECK(cudaMalloc((void **)&d_out, 4 * 2 * 3 * 60 * 4));
        RLC_LAUNCH(template_smem_kernel<32>, 1, 32, 0, 0, d_out);
        std::vector<int> o = emu_test::from_device(d_out, 32);
        for (int t = 0; t < 32; t++) CHECK(o[t] == (31 - t) * 32, "template<32> out[%d] = %d", t, o[t]);
        RLC_LAUNCH(template_smem_kernel<64>, 1, 64, 0, 0, d_out);
        o = emu_test::from_device(d_out, 64);
        for (int t = 0; t < 64; t++) CHECK(o[t] == (63 - t) * 64, "template<64> out[%d] = %d", t, o[t]);
        emu_test::run_all_schedules("index3d", [&](emu_test::Outputs &out) {
            RLC_LAUNCH(index3d_kernel, dim3(4, 2, 3), dim3(5, 4, 3), 0, 0, d_out);
            std::vector<int> v = emu_test::from_device(d_out, 4 * 2 * 3 * 60);
            out.add("v", v);
            for (int i = 0; i < (int)v.size(); i++) CHECK(v[i] == (i / 60) * 1000 + i % 60, "index3d[%d] = %d", i, v[i]);
        });
        cudaFree(d_out);
    }
    // ---- more clear errors ----
    emu_test::expect_death("bad_width", [] {
        int *p;
        cudaMalloc((void **)&p, 32 * 4);
        RLC_LAUNCH(bad_width_kernel, 1, 32, 0, 0, p);
    }, "not a power of two");
    emu_test::expect_death("warp_vs_barrier_deadlock", [] {
        int *p;
        cudaMalloc((void **)&p, 32 * 4);
        RLC_LAUNCH(warp_deadlock_kernel, 1, 32, 0, 0, p);
    }, "deadlock");
    // ---- events and streams ----
    {
        cudaStream_t s;
        cudaEvent_t a, b;
        RLC_CUDA_CHECK(cudaStreamCreate(&s));
        RLC_CUDA_CHECK(cudaEventCreate(&a));
        RLC_CUDA_CHECK(cudaEventCreate(&b));
        RLC_CUDA_CHECK(cudaEventRecord(a, s));
        RLC_LAUNCH(noop_kernel, 8, 256, 0, s, (int *)nullptr);
        RLC_CUDA_CHECK(cudaEventRecord(b, s));
        RLC_CUDA_CHECK(cudaEventSynchronize(b));
        float ms = -1;
        RLC_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
        CHECK(ms >= 0.0f && ms < 10000.0f, "event time %g ms", ms);
        cudaEventDestroy(a);
        cudaEventDestroy(b);
        cudaStreamDestroy(s);
    }
    // ---- emulated cuBLAS: row-major GEMMs against a double-precision reference ----
    {
        rlc_blas *h = rlc_blas_create();
        CHECK(h != nullptr, "rlc_blas_create");
        const int M = 13, N = 7, K = 21;
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int cb = 0; cb < 2; cb++) {
                    std::vector<__nv_bfloat16> A(M * K), B(K * N);
                    std::vector<float> Af(M * K), Bf(K * N), C0(M * N);
                    for (int i = 0; i < M * K; i++) Af[i] = bf16_round(sinf(0.37f * i + ta)), A[i] = __float2bfloat16(Af[i]);
                    for (int i = 0; i < K * N; i++) Bf[i] = bf16_round(cosf(0.53f * i + tb)), B[i] = __float2bfloat16(Bf[i]);
                    for (int i = 0; i < M * N; i++) C0[i] = bf16_round(0.1f * (float)(i % 9));
                    // element (m,k) of op(A): A stored (M,K) or (K,M)
                    auto a = [&](int m, int k) { return ta ? Af[k * M + m] : Af[m * K + k]; };
                    auto b = [&](int k, int n) { return tb ? Bf[n * K + k] : Bf[k * N + n]; };
                    __nv_bfloat16 *dA = emu_test::to_device(A), *dB = emu_test::to_device(B);
                    void *dC;
                    cudaMalloc(&dC, M * N * 4);
                    std::vector<__nv_bfloat16> Cb(M * N);
                    for (int i = 0; i < M * N; i++) Cb[i] = __float2bfloat16(C0[i]);
                    if (cb) cudaMemcpy(dC, Cb.data(), M * N * 2, cudaMemcpyHostToDevice);
                    else cudaMemcpy(dC, C0.data(), M * N * 4, cudaMemcpyHostToDevice);
                    int rc = rlc_blas_gemm_bf16(h, ta, tb, M, N, K, 0.5f, dA, ta ? M : K, dB, tb ? K : N, 2.0f, dC, N, cb);
                    CHECK(rc == 0, "gemm_bf16 rc");
                    cudaDeviceSynchronize(); // the GEMM is queued on the handle's stream; dC is read by the host below
                    for (int m = 0; m < M; m++)
                        for (int n = 0; n < N; n++) {
                            double s = 0;
                            for (int k = 0; k < K; k++) s += (double)a(m, k) * b(k, n);
                            double ref = 0.5 * s + 2.0 * C0[m * N + n];
                            double got = cb ? (double)__bfloat162float(((__nv_bfloat16 *)dC)[m * N + n]) : ((float *)dC)[m * N + n];
                            CHECK(fabs(got - ref) <= (cb ? 1e-2 : 1e-5) * (1 + fabs(ref)),
                                  "gemm_bf16 ta=%d tb=%d c_bf16=%d (%d,%d): %g vs %g", ta, tb, cb, m, n, got, ref);
                        }
                    // fp32 GEMM on the same (exactly representable) values
                    std::vector<float> Cf = C0;
                    float *dAf = emu_test::to_device(Af), *dBf = emu_test::to_device(Bf), *dCf = emu_test::to_device(Cf);
                    CHECK(rlc_blas_sgemm(h, ta, tb, M, N, K, 1.0f, dAf, ta ? M : K, dBf, tb ? K : N, 0.0f, dCf, N) == 0, "sgemm rc");
                    cudaDeviceSynchronize();
                    for (int m = 0; m < M; m++)
                        for (int n = 0; n < N; n++) {
                            double s = 0;
                            for (int k = 0; k < K; k++) s += (double)a(m, k) * b(k, n);
                            CHECK(fabs(dCf[m * N + n] - s) <= 1e-5 * (1 + fabs(s)), "sgemm ta=%d tb=%d (%d,%d)", ta, tb, m, n);
                        }
                    cudaFree(dA), cudaFree(dB), cudaFree(dC), cudaFree(dAf), cudaFree(dBf), cudaFree(dCf);
                }
        rlc_blas_destroy(h);
    }
    // ---- emulated NCCL: one rank ----
    {
        unsigned char id[RLC_COMM_ID_BYTES];
        CHECK(rlc_comm_get_unique_id(id) == 0, "unique id");
        // (a build with MPI emulates several ranks, but only in an MPI job: this process has not initialised MPI)
        CHECK(rlc_comm_create(2, 0, id, 0) == nullptr, "two ranks must be refused without NCCL and an MPI job");
        rlc_comm *c = rlc_comm_create(1, 0, id, 0);
        CHECK(c && rlc_comm_rank(c) == 0 && rlc_comm_nranks(c) == 1, "single-rank communicator");
        std::vector<float> v = {1, 2, 3, 4};
        float *d_v = emu_test::to_device(v), *d_r;
        cudaMalloc((void **)&d_r, 16);
        CHECK(rlc_comm_allreduce_sum_f32(c, d_v, d_r, 4, nullptr) == 0 && emu_test::from_device(d_r, 4) == v, "allreduce");
        CHECK(rlc_comm_allreduce_sum_f32(c, d_v, d_v, 4, nullptr) == 0 && emu_test::from_device(d_v, 4) == v, "in place");
        CHECK(rlc_comm_allgather(c, d_v, d_r, 16, nullptr) == 0 && emu_test::from_device(d_r, 4) == v, "allgather");
        CHECK(rlc_comm_broadcast(c, d_v, 16, 0, nullptr) == 0, "broadcast");
        CHECK(rlc_comm_reduce_scatter_sum_f32(c, d_v, d_r, 4, nullptr) == 0 && emu_test::from_device(d_r, 4) == v, "reduce_scatter");
        cudaFree(d_v), cudaFree(d_r);
        rlc_comm_destroy(c);
    }
    return test_finish("emu_checks");
}
