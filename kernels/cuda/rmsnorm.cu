// kernels/cuda/rmsnorm.cu: RMSNorm (interface: rmsnorm.h; CPU twin: kernels/cpu/ops_cpu.c). One warp per token
// row (4 rows per 128-thread block): each lane sums its strided columns, an xor-shuffle tree combines the lanes
// (every lane ends with the same total, in a fixed order), then the lanes write their columns. The weight
// gradient is a column sum over tokens: chunks of RLC_RMS_ROWS rows in double, then the chunk partials in
// order (elementwise.h rlc_cuda_partials_finish), as in the CPU twin.
#include "rmsnorm.h"

#include <math.h>

#include "elementwise.h"
#include "rlc_cuda.h"

#define RMS_WARPS 4

static int rms_launch_ok(const char *what) {
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) return 0;
    fprintf(stderr, "%s: kernel launch failed: %s\n", what, cudaGetErrorString(e));
    return -1;
}

__device__ __forceinline__ float rms_warp_sum(float x) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

// Rows past T still run the shuffles (all 32 lanes take part) and write nothing.
template <typename A>
__global__ void rms_forward_kernel(A *out, float *rstd, const float *inp, const float *weight, float eps, int T,
                                   int C) {
    const int lane = threadIdx.x & 31, t = blockIdx.x * RMS_WARPS + (threadIdx.x >> 5);
    const bool live = t < T;
    const float *x = inp + (size_t)(live ? t : 0) * C;
    float ss = 0.0f;
    if (live)
        for (int c = lane; c < C; c += 32) ss += x[c] * x[c];
    ss = rms_warp_sum(ss);
    if (!live) return;
    const float r = (float)(1.0 / sqrt((double)ss / C + (double)eps));
    if (lane == 0) rstd[t] = r;
    A *y = out + (size_t)t * C;
    for (int c = lane; c < C; c += 32) rlc_st(y + c, x[c] * r * weight[c]);
}

// The residual add fused in: x = a + b is stored and squared in the first loop, re-read (this lane's own stores)
// in the second. The sum runs in the same order as rms_forward_kernel's, so out and rstd equal the two-op result.
template <typename A>
__global__ void rms_add_forward_kernel(float *xo, A *out, float *rstd, const float *a, const A *b, const float *weight,
                                       float eps, int T, int C) {
    const int lane = threadIdx.x & 31, t = blockIdx.x * RMS_WARPS + (threadIdx.x >> 5);
    const bool live = t < T;
    const size_t off = (size_t)(live ? t : 0) * C;
    float ss = 0.0f;
    if (live)
        for (int c = lane; c < C; c += 32) {
            const float v = a[off + c] + rlc_ld(b + off + c);
            xo[off + c] = v;
            ss += v * v;
        }
    ss = rms_warp_sum(ss);
    if (!live) return;
    const float r = (float)(1.0 / sqrt((double)ss / C + (double)eps));
    if (lane == 0) rstd[t] = r;
    for (int c = lane; c < C; c += 32) rlc_st(out + off + c, xo[off + c] * r * weight[c]);
}

template <typename A>
__global__ void rms_backward_dinp_kernel(float *dinp, const A *dout, const float *inp, const float *weight,
                                         const float *rstd, int T, int C) {
    const int lane = threadIdx.x & 31, t = blockIdx.x * RMS_WARPS + (threadIdx.x >> 5);
    const bool live = t < T;
    const size_t off = (size_t)(live ? t : 0) * C;
    const float *x = inp + off;
    const A *dy = dout + off;
    float dot = 0.0f;
    if (live)
        for (int c = lane; c < C; c += 32) dot += rlc_ld(dy + c) * weight[c] * x[c];
    dot = rms_warp_sum(dot);
    if (!live) return;
    const float r = rstd[t];
    const float k = (float)((double)dot * r * r * r / C);
    float *dx = dinp + off;
    for (int c = lane; c < C; c += 32) dx[c] += r * weight[c] * rlc_ld(dy + c) - x[c] * k;
}

// grid (ceil(C / 256), chunks): thread = column, the chunk's rows in order.
template <typename A>
__global__ void rms_backward_dweight_part_kernel(double *part, const A *dout, const float *inp, const float *rstd,
                                                 int T, int C) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x, ch = blockIdx.y;
    if (c >= C) return;
    const int t0 = ch * RLC_RMS_ROWS, t1 = t0 + RLC_RMS_ROWS < T ? t0 + RLC_RMS_ROWS : T;
    double s = 0.0;
    for (int t = t0; t < t1; t++) {
        const size_t i = (size_t)t * C + c;
        s += (double)(rlc_ld(dout + i) * inp[i] * rstd[t]);
    }
    part[(size_t)ch * C + c] = s;
}

extern "C" int rlc_cuda_rmsnorm_forward(void *out, int out_bf16, float *rstd, const float *inp, const float *weight,
                                        float eps, int T, int C, void *stream) {
    if (T <= 0) return 0;
    RLC_ACT_DISPATCH(out_bf16, A,
                     RLC_LAUNCH(rms_forward_kernel<A>, (T + RMS_WARPS - 1) / RMS_WARPS, 32 * RMS_WARPS, 0,
                                (cudaStream_t)stream, (A *)out, rstd, inp, weight, eps, T, C));
    return rms_launch_ok("rlc_cuda_rmsnorm_forward");
}

extern "C" int rlc_cuda_add_rmsnorm_forward(float *x, void *out, int act_bf16, float *rstd, const float *a,
                                            const void *b, const float *weight, float eps, int T, int C,
                                            void *stream) {
    if (T <= 0) return 0;
    RLC_ACT_DISPATCH(act_bf16, A,
                     RLC_LAUNCH(rms_add_forward_kernel<A>, (T + RMS_WARPS - 1) / RMS_WARPS, 32 * RMS_WARPS, 0,
                                (cudaStream_t)stream, x, (A *)out, rstd, a, (const A *)b, weight, eps, T, C));
    return rms_launch_ok("rlc_cuda_add_rmsnorm_forward");
}

static int rms_chunks(int T) { return (T + RLC_RMS_ROWS - 1) / RLC_RMS_ROWS; }

extern "C" size_t rlc_cuda_rmsnorm_backward_workspace_bytes(int T, int C) {
    const int nch = rms_chunks(T);
    return (size_t)(nch > 0 ? nch : 1) * (C > 0 ? C : 1) * sizeof(double);
}

extern "C" int rlc_cuda_rmsnorm_backward(float *dinp, float *dweight, const void *dout, int dout_bf16,
                                         const float *inp, const float *weight, const float *rstd, int T, int C,
                                         void *workspace, void *stream) {
    if (T <= 0 || C <= 0) return 0;
    cudaStream_t st = (cudaStream_t)stream;
    RLC_ACT_DISPATCH(dout_bf16, A,
                     RLC_LAUNCH(rms_backward_dinp_kernel<A>, (T + RMS_WARPS - 1) / RMS_WARPS, 32 * RMS_WARPS, 0, st,
                                dinp, (const A *)dout, inp, weight, rstd, T, C));
    if (rms_launch_ok("rlc_cuda_rmsnorm_backward (dinp)")) return -1;
    const int nch = rms_chunks(T);
    if (nch > 65535) {
        fprintf(stderr, "rlc_cuda_rmsnorm_backward: %d rows is too many\n", T);
        return -1;
    }
    double *part = (double *)workspace;
    RLC_ACT_DISPATCH(dout_bf16, A,
                     RLC_LAUNCH(rms_backward_dweight_part_kernel<A>, dim3((C + 255) / 256, nch), 256, 0, st, part,
                                (const A *)dout, inp, rstd, T, C));
    if (rms_launch_ok("rlc_cuda_rmsnorm_backward (dweight)")) return -1;
    return rlc_cuda_partials_finish(dweight, part, nch, C, stream);
}
