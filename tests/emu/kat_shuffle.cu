// tests/emu/kat_shuffle.cu: known answers for warp shuffles (CUDA's width rules), votes and a block
// reduction built from shuffles. The CPU references restate the rules of the PTX ISA's shfl.sync (segment
// start = lane & ~(width-1); idx reads srcLane mod width inside the segment; up/down keep the caller's
// value when the source leaves the segment; xor may reach earlier segments but not later ones).
#include "kat.h"

__global__ void shuffle_kernel(const uint32_t *in, uint32_t *out, int n) {
    int t = threadIdx.x, lane = t & 31;
    uint32_t v = in[t];
    const unsigned full = 0xffffffffu;
    uint32_t *o = out + t;
    o[0 * n] = __shfl_sync(full, v, lane * 7 + 3);          // srcLane beyond 31: taken modulo 32
    o[1 * n] = __shfl_sync(full, v, lane + 5, 8);           // width 8: modulo inside the 8-lane segment
    o[2 * n] = __shfl_up_sync(full, v, 3, 16);
    o[3 * n] = __shfl_down_sync(full, v, 5, 8);
    o[4 * n] = __shfl_xor_sync(full, v, 9, 16);
    o[5 * n] = __shfl_xor_sync(full, v, 20, 16);            // later segment: own value; earlier: allowed
    o[6 * n] = __ballot_sync(full, v & 1);
    o[7 * n] = (uint32_t)__any_sync(full, (v % 61u) == 0) | ((uint32_t)__all_sync(full, v != 7u) << 1) |
               ((uint32_t)__all_sync(full, (v & 3u) != 0) << 2);
    // Two independent half-warp collectives with their own masks.
    unsigned half = lane < 16 ? 0x0000ffffu : 0xffff0000u;
    o[8 * n] = __shfl_down_sync(half, v, 2, 16);
    o[9 * n] = __ballot_sync(half, (v >> 3) & 1);
    float f = (float)(v % 1000u) * 0.25f;
    float g = __shfl_xor_sync(full, f, 1);
    o[10 * n] = __float_as_uint(g);
    double d = (double)(v % 777u) * 0.5;
    double e = __shfl_down_sync(full, d, 1);
    o[11 * n] = (uint32_t)(int)e;
    __syncwarp();
}

__global__ void block_reduce_kernel(const float *x, float *out, int n) {
    __shared__ float warp_sums[32];
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    float v = i < n ? x[i] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x < 32) {
        int nw = blockDim.x >> 5;
        v = (int)threadIdx.x < nw ? warp_sums[threadIdx.x] : 0.0f;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
        if (threadIdx.x == 0) out[blockIdx.x] = v;
    }
}

static uint32_t ref_src(int kind, int lane, int arg, int width) {
    int seg = lane & ~(width - 1);
    switch (kind) {
    case 0: return (uint32_t)(seg + (arg & (width - 1)));
    case 1: return (uint32_t)(lane - seg >= arg ? lane - arg : lane);
    case 2: return (uint32_t)(lane - seg + arg < width ? lane + arg : lane);
    default: {
        int j = lane ^ arg;
        return (uint32_t)(j > (seg | (width - 1)) ? lane : j);
    }
    }
}

KAT(shuffle) {
    const int n = 64; // two warps
    std::vector<uint32_t> in(n);
    for (int i = 0; i < n; i++) in[i] = kat_hash((uint32_t)i + 17u);
    uint32_t *d_in = kat_upload(in);
    uint32_t *d_out = nullptr;
    RLC_CUDA_CHECK(cudaMalloc((void **)&d_out, 12 * n * 4));
    RLC_LAUNCH(shuffle_kernel, 1, n, 0, 0, d_in, d_out, n);
    KAT_SYNC();
    std::vector<uint32_t> o = kat_download(d_out, 12 * n);
    for (int t = 0; t < n; t++) {
        int lane = t & 31, w = t - lane;
        auto at = [&](uint32_t l) { return in[(size_t)w + l]; };
        uint32_t ball = 0, ball_half = 0;
        bool any = false, all1 = true, all2 = true;
        for (int l = 0; l < 32; l++) {
            uint32_t u = in[(size_t)w + l];
            ball |= (u & 1u) << l;
            any |= (u % 61u) == 0;
            all1 &= u != 7u;
            all2 &= (u & 3u) != 0;
            if ((l < 16) == (lane < 16)) ball_half |= ((u >> 3) & 1u) << l;
        }
        uint32_t exp[12] = {at(ref_src(0, lane, lane * 7 + 3, 32)),
                            at(ref_src(0, lane, lane + 5, 8)),
                            at(ref_src(1, lane, 3, 16)),
                            at(ref_src(2, lane, 5, 8)),
                            at(ref_src(3, lane, 9, 16)),
                            at(ref_src(3, lane, 20, 16)),
                            ball,
                            (uint32_t)any | ((uint32_t)all1 << 1) | ((uint32_t)all2 << 2),
                            at((lane & 15) + 2 < 16 ? (uint32_t)lane + 2 : (uint32_t)lane),
                            ball_half,
                            0,
                            0};
        float g = (float)(at((uint32_t)(lane ^ 1)) % 1000u) * 0.25f;
        memcpy(&exp[10], &g, 4);
        exp[11] = (uint32_t)(int)((double)(at(lane < 31 ? (uint32_t)lane + 1 : (uint32_t)lane) % 777u) * 0.5);
        for (int k = 0; k < 12; k++)
            kat_check(out, o[(size_t)k * n + t] == exp[k], "shuffle case %d thread %d: got 0x%08x expected 0x%08x", k,
                      t, o[(size_t)k * n + t], exp[k]);
    }
    out.u32("shuffle", o);
    cudaFree(d_in);
    cudaFree(d_out);
}

KAT(block_reduce) {
    const int n = 5000, threads = 256, blocks = (n + threads - 1) / threads;
    std::vector<float> x(n);
    for (int i = 0; i < n; i++) x[i] = kat_uniform((uint32_t)i, 1);
    float *d_x = kat_upload(x), *d_out = nullptr;
    RLC_CUDA_CHECK(cudaMalloc((void **)&d_out, blocks * 4));
    RLC_LAUNCH(block_reduce_kernel, blocks, threads, 0, 0, d_x, d_out, n);
    KAT_SYNC();
    std::vector<float> o = kat_download(d_out, blocks);
    for (int b = 0; b < blocks; b++) {
        double s = 0, sa = 0;
        for (int i = b * threads; i < std::min(n, (b + 1) * threads); i++) s += x[i], sa += fabs(x[i]);
        kat_check(out, fabs(o[b] - s) <= 1e-6 * sa + 1e-7, "block %d sum %.9g expected %.9g", b, o[b], s);
    }
    out.f32("block_sums", o, 1e-6);
    cudaFree(d_x);
    cudaFree(d_out);
}
