// tests/emu/kat_transpose.cu: known answer for the shared-memory tiled transpose (32x33 padded tile,
// 32x8 threads, ragged edges), and for dynamic shared memory above 48 KiB after cudaFuncSetAttribute.
#include "kat.h"

// out (C, R) = in (R, C)^T
__global__ void transpose_kernel(const float *in, float *out, int R, int C) {
    __shared__ float tile[32][33];
    int c = blockIdx.x * 32 + threadIdx.x, r0 = blockIdx.y * 32;
    for (int j = threadIdx.y; j < 32; j += 8)
        if (r0 + j < R && c < C) tile[j][threadIdx.x] = in[(size_t)(r0 + j) * C + c];
    __syncthreads();
    int r = r0 + threadIdx.x, c0 = blockIdx.x * 32;
    for (int j = threadIdx.y; j < 32; j += 8)
        if (c0 + j < C && r < R) out[(size_t)(c0 + j) * R + r] = tile[threadIdx.x][j];
}

// Reverses a 64 KiB block of floats through dynamic shared memory.
__global__ void big_smem_reverse_kernel(const float *in, float *out, int n) {
    RLC_DYN_SMEM(float, buf);
    for (int i = threadIdx.x; i < n; i += blockDim.x) buf[i] = in[i];
    __syncthreads();
    for (int i = threadIdx.x; i < n; i += blockDim.x) out[i] = buf[n - 1 - i];
}

KAT(transpose) {
    const int R = 200, C = 136;
    std::vector<float> in((size_t)R * C);
    for (size_t i = 0; i < in.size(); i++) in[i] = kat_uniform((uint32_t)i, 3);
    float *d_in = kat_upload(in), *d_out = nullptr;
    RLC_CUDA_CHECK(cudaMalloc((void **)&d_out, in.size() * 4));
    RLC_LAUNCH(transpose_kernel, dim3((C + 31) / 32, (R + 31) / 32), dim3(32, 8), 0, 0, d_in, d_out, R, C);
    KAT_SYNC();
    std::vector<float> o = kat_download(d_out, in.size());
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++)
            kat_check(out, o[(size_t)c * R + r] == in[(size_t)r * C + c], "transpose (%d,%d)", r, c);
    out.f32("transpose", o, 0.0);
    cudaFree(d_in);
    cudaFree(d_out);
}

KAT(big_dynamic_smem) {
    const int n = 16384; // 64 KiB
    std::vector<float> in(n);
    for (int i = 0; i < n; i++) in[i] = (float)i;
    float *d_in = kat_upload(in), *d_out = nullptr;
    RLC_CUDA_CHECK(cudaMalloc((void **)&d_out, n * 4));
    RLC_CUDA_CHECK(cudaFuncSetAttribute(big_smem_reverse_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, n * 4));
    RLC_LAUNCH(big_smem_reverse_kernel, 1, 256, n * 4, 0, d_in, d_out, n);
    KAT_SYNC();
    std::vector<float> o = kat_download(d_out, n);
    for (int i = 0; i < n; i++) kat_check(out, o[i] == in[n - 1 - i], "reverse[%d] = %g", i, o[i]);
    out.f32("big_smem_reverse", o, 0.0);
    cudaFree(d_in);
    cudaFree(d_out);
}
