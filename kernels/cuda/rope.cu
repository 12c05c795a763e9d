// kernels/cuda/rope.cu: rotary position embedding (interface: rope.h; CPU twin: kernels/cpu/ops_cpu.c). One
// thread per (token, frequency i < HD/2) computes the angle, its cosine and sine once in double (positions reach
// tens of thousands, where a float angle loses most of its fractional part) and rotates that pair in every head
// of the token. Adjacent threads take adjacent i, so the loads of a head row are contiguous.
#include "rope.h"

#include <math.h>

#include "rlc_cuda.h"

#define ROPE_THREADS 256

// sin and cos of a double angle without the library's large-argument path (which keeps a table in local
// memory): a = q pi/2 + y with |y| <= pi/4 (Cody-Waite with a two-part pi/2, fused; the error grows like
// |q| 1e-33, far below double rounding for any position), then Taylor series to degree 17/16 (terms below
// 1e-19 at pi/4), then the quadrant's swap and signs.
__device__ __forceinline__ void rope_sincos(double a, double *s_out, double *c_out) {
    const double pio2_hi = 1.5707963267948966, pio2_lo = 6.123233995736766e-17, two_over_pi = 0.6366197723675814;
    const double q = rint(a * two_over_pi);
    const double y = fma(-q, pio2_lo, fma(-q, pio2_hi, a)), y2 = y * y;
    double s = 1.0 / 355687428096000.0; // 1/17!
    s = s * y2 - 1.0 / 1307674368000.0;
    s = s * y2 + 1.0 / 6227020800.0;
    s = s * y2 - 1.0 / 39916800.0;
    s = s * y2 + 1.0 / 362880.0;
    s = s * y2 - 1.0 / 5040.0;
    s = s * y2 + 1.0 / 120.0;
    s = s * y2 - 1.0 / 6.0;
    s = y + y * y2 * s;
    double c = 1.0 / 20922789888000.0; // 1/16!
    c = c * y2 - 1.0 / 87178291200.0;
    c = c * y2 + 1.0 / 479001600.0;
    c = c * y2 - 1.0 / 3628800.0;
    c = c * y2 + 1.0 / 40320.0;
    c = c * y2 - 1.0 / 720.0;
    c = c * y2 + 1.0 / 24.0;
    c = c * y2 - 0.5;
    c = 1.0 + y2 * c;
    const int quad = (int)((long long)q & 3);
    *s_out = quad == 0 ? s : quad == 1 ? c : quad == 2 ? -s : -c;
    *c_out = quad == 0 ? c : quad == 1 ? -s : quad == 2 ? -c : s;
}

template <typename A> __global__ void rope_kernel(A *x, const int *pos, int T, int H, int HD, double theta, double sign) {
    const int half = HD / 2;
    const size_t n = (size_t)T * half;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < n; idx += (size_t)gridDim.x * blockDim.x) {
        const size_t t = idx / half;
        const int i = (int)(idx - t * half);
        const double freq = pow(theta, -2.0 * i / HD);
        double s, c;
        rope_sincos((double)pos[t] * freq, &s, &c);
        s *= sign;
        A *xt = x + t * H * HD;
        for (int h = 0; h < H; h++) {
            A *xh = xt + (size_t)h * HD;
            const double x0 = rlc_ld(xh + i), x1 = rlc_ld(xh + i + half);
            rlc_st(xh + i, (float)(x0 * c - x1 * s));
            rlc_st(xh + i + half, (float)(x1 * c + x0 * s));
        }
    }
}

extern "C" int rlc_cuda_rope(void *x, int x_bf16, const int *pos, int T, int H, int HD, float theta, int sign,
                             void *stream) {
    const size_t n = (size_t)(T > 0 ? T : 0) * (HD > 1 ? HD / 2 : 0);
    if (n == 0 || H <= 0) return 0;
    size_t blocks = (n + ROPE_THREADS - 1) / ROPE_THREADS;
    if (blocks > 8192) blocks = 8192;
    RLC_ACT_DISPATCH(x_bf16, A,
                     RLC_LAUNCH(rope_kernel<A>, (unsigned)blocks, ROPE_THREADS, 0, (cudaStream_t)stream, (A *)x, pos, T,
                                H, HD, (double)theta, sign < 0 ? -1.0 : 1.0));
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) return 0;
    fprintf(stderr, "rlc_cuda_rope: kernel launch failed: %s\n", cudaGetErrorString(e));
    return -1;
}
