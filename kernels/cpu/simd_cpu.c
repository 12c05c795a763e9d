// kernels/cpu/simd_cpu.c: the exponential-heavy row loops of attention and the fused log-prob. There is one exp
// per 2*HD (attention) or 2*C (log-prob) gemm flops, so libm's scalar expf would cost more than the products.
// The float build runs them on 16-lane GCC vector-extension values with a polynomial exp (branch-free, so the
// compiler keeps it in vector registers), and on x86-64 each loop is compiled for AVX-512, AVX2 and the
// baseline and picked at load time (target_clones), since the project builds for the baseline ISA.
// Reductions keep 16 lane partials summed in a fixed order: deterministic on a given machine. The double build
// (gradient checks) uses plain loops with libm's exp.
#include <string.h>

#include "cpu_common.h"

#ifdef RLC_F64

rlc_f cpu_row_max(const rlc_f *x, int n) {
    rlc_f m = x[0];
    for (int j = 1; j < n; j++) m = x[j] > m ? x[j] : m;
    return m;
}
rlc_f cpu_exp_sum(rlc_f *x, int n, rlc_f shift) {
    rlc_f s = 0;
    for (int j = 0; j < n; j++) s += (x[j] = exp(x[j] - shift));
    return s;
}
void cpu_exp_stats(const rlc_f *x, int n, rlc_f shift, double *sum, double *sum_ed) {
    double s = 0, a = 0;
    for (int j = 0; j < n; j++) {
        double d = x[j] - shift, e = exp(d);
        s += e;
        a += e * d;
    }
    *sum = s;
    *sum_ed = a;
}
void cpu_softmax_grad(rlc_f *p, rlc_f *dp, int n, rlc_f lse, rlc_f D) {
    for (int j = 0; j < n; j++) dp[j] = exp(p[j] - lse) * (dp[j] - D);
}
void cpu_softmax_grad_cols(rlc_f *p, rlc_f *dp, int n, const rlc_f *lse, const rlc_f *D) {
    for (int j = 0; j < n; j++) {
        p[j] = exp(p[j] - lse[j]);
        dp[j] = p[j] * (dp[j] - D[j]);
    }
}
void cpu_logprob_dz(rlc_f *u, int n, rlc_f lse, rlc_f H, rlc_f c, rlc_f e) {
    for (int j = 0; j < n; j++) {
        rlc_f lp = u[j] - lse, p = exp(lp);
        u[j] = -p * (c + e * (lp + H));
    }
}

void cpu_swiglu_fwd(rlc_f *out, const rlc_f *gate, const rlc_f *up, int n) {
    for (int i = 0; i < n; i++) out[i] = gate[i] / (1 + exp(-gate[i])) * up[i];
}
void cpu_swiglu_bwd(rlc_f *dgate, rlc_f *dup, const rlc_f *dout, const rlc_f *gate, const rlc_f *up, int n) {
    for (int i = 0; i < n; i++) {
        rlc_f g = gate[i], sg = 1 / (1 + exp(-g)), d = dout[i];
        dgate[i] = d * up[i] * sg * (1 + g * (1 - sg));
        dup[i] = d * g * sg;
    }
}

#else // float

#if defined(__x86_64__) && defined(__GNUC__)
// feature clones: "arch=" clones would dispatch on the CPU model (an AMD part never matches skylake-avx512)
#define CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CPU_CLONES
#endif

// The helpers below pass 64-byte vectors by value; they are static and always inlined, so the psabi note (the
// calling convention for such arguments differs with and without AVX-512) concerns no real call.
#pragma GCC diagnostic ignored "-Wpsabi"
#define VINLINE static inline __attribute__((always_inline))

typedef float vf __attribute__((vector_size(64)));
typedef int vi __attribute__((vector_size(64)));
#define VL 16

VINLINE vf vload(const float *p) {
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}
#define vstore(p, v)                       \
    do {                                   \
        vf t_ = (v);                       \
        memcpy((p), &t_, sizeof t_);       \
    } while (0)
VINLINE vf vset(float a) { return (vf){a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a}; }
#define vselect(mask, a, b) ((vf)(((mask) & (vi)(a)) | (~(mask) & (vi)(b)))) // mask ? a : b (lane masks)
VINLINE float vsum(const vf *v) { // fixed order
    float s = 0;
    for (int l = 0; l < VL; l++) s += (*v)[l];
    return s;
}

// exp(x), ~2 ulp: clamp to [-87, 88] (below, the result is < 1.7e-38 and only feeds softmax sums),
// x = n ln2 + r with a Cody-Waite split of ln2, Cephes' degree-5 polynomial for exp(r), 2^n from the exponent
// bits. NaN stays NaN.
VINLINE vf vexp_p(const vf *xp) {
    vf x = *xp;
    vf xc = vselect(x < vset(-87.0f), vset(-87.0f), x);
    xc = vselect(xc > vset(88.0f), vset(88.0f), xc);
    vf n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f; // round to nearest integer
    vf r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    vf p = vset(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    vi e = (__builtin_convertvector(n, vi) + 127) << 23;
    vf y = p * (vf)e;
    return vselect(x != x, x, y);
}

// Tails (n % 16 elements) go through one padded vector; pad values are chosen so they add nothing.
VINLINE vf vload_tail(const float *p, int m, float pad) {
    vf v = vset(pad);
    for (int l = 0; l < m; l++) v[l] = p[l];
    return v;
}
#define vstore_tail(p, v, m)                                  \
    do {                                                      \
        vf v_ = (v);                                          \
        for (int l_ = 0; l_ < (m); l_++) (p)[l_] = v_[l_];    \
    } while (0)
#define vexp(x) ({ vf x_ = (x); vexp_p(&x_); }) // GNU statement expression

CPU_CLONES float cpu_row_max(const float *x, int n) {
    vf m = vset(x[0]);
    int j = 0;
    for (; j + VL <= n; j += VL) {
        vf v = vload(x + j);
        m = vselect(v > m, v, m);
    }
    if (j < n) {
        vf v = vload_tail(x + j, n - j, x[0]);
        m = vselect(v > m, v, m);
    }
    float r = m[0];
    for (int l = 1; l < VL; l++) r = m[l] > r ? m[l] : r;
    return r;
}

CPU_CLONES float cpu_exp_sum(float *x, int n, float shift) {
    vf s = vset(0), sh = vset(shift);
    int j = 0;
    for (; j + VL <= n; j += VL) {
        vf e = vexp(vload(x + j) - sh);
        vstore(x + j, e);
        s += e;
    }
    if (j < n) {
        vf e = vexp(vload_tail(x + j, n - j, -INFINITY) - sh); // exp(-inf) -> clamped to ~1e-38: below float
        vstore_tail(x + j, e, n - j);                           // resolution of any sum containing exp(0) = 1
        for (int l = n - j; l < VL; l++) e[l] = 0;
        s += e;
    }
    return vsum(&s);
}

CPU_CLONES void cpu_exp_stats(const float *x, int n, float shift, double *sum, double *sum_ed) {
    vf s = vset(0), a = vset(0), sh = vset(shift);
    int j = 0;
    for (; j + VL <= n; j += VL) {
        vf d = vload(x + j) - sh, e = vexp(d);
        s += e;
        a += e * d;
    }
    if (j < n) {
        vf d = vload_tail(x + j, n - j, shift) - sh, e = vexp(d); // pad d = 0: e = 1, zeroed below
        for (int l = n - j; l < VL; l++) e[l] = 0;
        s += e;
        a += e * d;
    }
    *sum = vsum(&s);
    *sum_ed = vsum(&a);
}

CPU_CLONES void cpu_softmax_grad(float *p, float *dp, int n, float lse, float D) {
    vf l = vset(lse), d = vset(D);
    int j = 0;
    for (; j + VL <= n; j += VL) vstore(dp + j, vexp(vload(p + j) - l) * (vload(dp + j) - d));
    if (j < n) vstore_tail(dp + j, vexp(vload_tail(p + j, n - j, 0) - l) * (vload_tail(dp + j, n - j, 0) - d), n - j);
}

CPU_CLONES void cpu_softmax_grad_cols(float *p, float *dp, int n, const float *lse, const float *D) {
    int j = 0;
    for (; j + VL <= n; j += VL) {
        vf e = vexp(vload(p + j) - vload(lse + j));
        vstore(p + j, e);
        vstore(dp + j, e * (vload(dp + j) - vload(D + j)));
    }
    if (j < n) {
        int m = n - j;
        vf e = vexp(vload_tail(p + j, m, 0) - vload_tail(lse + j, m, 0));
        vstore_tail(p + j, e, m);
        vstore_tail(dp + j, e * (vload_tail(dp + j, m, 0) - vload_tail(D + j, m, 0)), m);
    }
}

CPU_CLONES void cpu_logprob_dz(float *u, int n, float lse, float H, float c, float e) {
    vf l = vset(lse), h = vset(H), cv = vset(c), ev = vset(e);
    int j = 0;
    for (; j + VL <= n; j += VL) {
        vf lp = vload(u + j) - l;
        vstore(u + j, -vexp(lp) * (cv + ev * (lp + h)));
    }
    if (j < n) {
        vf lp = vload_tail(u + j, n - j, 0) - l;
        vstore_tail(u + j, -vexp(lp) * (cv + ev * (lp + h)), n - j);
    }
}

// silu(g) = g s with s = sigmoid(g) = 1 / (1 + exp(-g)); silu'(g) = s (1 + g (1 - s)).
CPU_CLONES void cpu_swiglu_fwd(float *out, const float *gate, const float *up, int n) {
    int j = 0;
    for (; j + VL <= n; j += VL) {
        vf g = vload(gate + j);
        vstore(out + j, g / (1.0f + vexp(-g)) * vload(up + j));
    }
    if (j < n) {
        vf g = vload_tail(gate + j, n - j, 0);
        vstore_tail(out + j, g / (1.0f + vexp(-g)) * vload_tail(up + j, n - j, 0), n - j);
    }
}

CPU_CLONES void cpu_swiglu_bwd(float *dgate, float *dup, const float *dout, const float *gate, const float *up, int n) {
    int j = 0;
    for (; j + VL <= n; j += VL) {
        vf g = vload(gate + j), d = vload(dout + j), sg = 1.0f / (1.0f + vexp(-g));
        vstore(dgate + j, d * vload(up + j) * sg * (1.0f + g * (1.0f - sg)));
        vstore(dup + j, d * g * sg);
    }
    if (j < n) {
        int m = n - j;
        vf g = vload_tail(gate + j, m, 0), d = vload_tail(dout + j, m, 0), sg = 1.0f / (1.0f + vexp(-g));
        vstore_tail(dgate + j, d * vload_tail(up + j, m, 0) * sg * (1.0f + g * (1.0f - sg)), m);
        vstore_tail(dup + j, d * g * sg, m);
    }
}

#endif
