// tests/emu/kat_scan.cu: known answers for prefix scans: a warp-shuffle block scan (shfl_up + shared warp
// totals + barriers) and a double-buffered Hillis-Steele scan in shared memory (one barrier per step).
#include "kat.h"

// Inclusive scan of 4 items per thread, 256 threads = 1024 items per block.
__global__ void block_scan_kernel(const int *in, int *out, int n) {
    __shared__ int warp_tot[8];
    int base = (blockIdx.x * blockDim.x + threadIdx.x) * 4, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int v[4], s = 0;
    for (int k = 0; k < 4; k++) {
        v[k] = base + k < n ? in[base + k] : 0;
        s += v[k];
        v[k] = s;
    }
    int x = s; // inclusive warp scan of the per-thread totals
    for (int d = 1; d < 32; d <<= 1) {
        int y = __shfl_up_sync(0xffffffffu, x, d);
        if (lane >= d) x += y;
    }
    if (lane == 31) warp_tot[warp] = x;
    __syncthreads();
    if (warp == 0) {
        int t = lane < 8 ? warp_tot[lane] : 0;
        for (int d = 1; d < 8; d <<= 1) {
            int y = __shfl_up_sync(0xffffffffu, t, d);
            if (lane >= d) t += y;
        }
        if (lane < 8) warp_tot[lane] = t;
    }
    __syncthreads();
    int offset = x - s + (warp > 0 ? warp_tot[warp - 1] : 0);
    for (int k = 0; k < 4; k++)
        if (base + k < n) out[base + k] = v[k] + offset;
}

// Hillis-Steele over blockDim.x items with two shared buffers.
__global__ void hillis_steele_kernel(const float *in, float *out) {
    __shared__ float buf[2][512];
    int t = threadIdx.x, cur = 0;
    buf[0][t] = in[blockIdx.x * blockDim.x + t];
    __syncthreads();
    for (int d = 1; d < (int)blockDim.x; d <<= 1) {
        buf[cur ^ 1][t] = t >= d ? buf[cur][t] + buf[cur][t - d] : buf[cur][t];
        cur ^= 1;
        __syncthreads();
    }
    out[blockIdx.x * blockDim.x + t] = buf[cur][t];
}

KAT(block_scan) {
    const int n = 3000, blocks = (n + 1023) / 1024;
    std::vector<int> in(n);
    for (int i = 0; i < n; i++) in[i] = (int)(kat_hash((uint32_t)i) % 201u) - 100;
    int *d_in = kat_upload(in), *d_out = nullptr;
    RLC_CUDA_CHECK(cudaMalloc((void **)&d_out, n * 4));
    RLC_LAUNCH(block_scan_kernel, blocks, 256, 0, 0, d_in, d_out, n);
    KAT_SYNC();
    std::vector<int> o = kat_download(d_out, n);
    long s = 0;
    for (int i = 0; i < n; i++) {
        if (i % 1024 == 0) s = 0;
        s += in[i];
        kat_check(out, o[i] == s, "scan[%d] = %d expected %ld", i, o[i], s);
    }
    out.u32("block_scan", o);
    cudaFree(d_in);
    cudaFree(d_out);
}

KAT(hillis_steele) {
    const int threads = 512, blocks = 3, n = threads * blocks;
    std::vector<float> in(n);
    for (int i = 0; i < n; i++) in[i] = (float)((int)(kat_hash((uint32_t)i + 5u) % 64u) - 32) * 0.125f; // exact sums
    float *d_in = kat_upload(in), *d_out = nullptr;
    RLC_CUDA_CHECK(cudaMalloc((void **)&d_out, n * 4));
    RLC_LAUNCH(hillis_steele_kernel, blocks, threads, 0, 0, d_in, d_out);
    KAT_SYNC();
    std::vector<float> o = kat_download(d_out, n);
    double s = 0;
    for (int i = 0; i < n; i++) {
        if (i % threads == 0) s = 0;
        s += in[i];
        kat_check(out, o[i] == (float)s, "hillis_steele[%d] = %g expected %g", i, o[i], s);
    }
    out.f32("hillis_steele", o, 0.0);
    cudaFree(d_in);
    cudaFree(d_out);
}
