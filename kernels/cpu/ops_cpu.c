// kernels/cpu/ops_cpu.c: the CPU backend's op table (rlc_ops_cpu) and its simple kernels: memory (with its
// accounting and optional cap), elementwise, embedding, matmul (OpenBLAS gemm), RMSNorm, RoPE, SwiGLU and AdamW.
// Attention (and the KV-cache append), the fused log-prob and sampling live in attention_cpu.c, logprob_cpu.c and
// sample_cpu.c. Every reduction over tokens uses a partition fixed by the shapes (chunks of tokens whose partials
// are added in chunk order, or one owner per output row), so results are bitwise independent of the thread count.
#define _GNU_SOURCE // malloc_usable_size, sysconf(_SC_AVPHYS_PAGES)
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu_common.h"
#include "rlc/util.h"

// ---- memory ----
// Accounting of what the backend holds: each block counts malloc_usable_size bytes (so that free needs no
// record of the size), the peak of the sum, and the optional cap (set_mem_limit, or RLC_MEM_LIMIT_MB read at
// the first allocation). Atomics: host code may allocate from more than one thread.
static atomic_size_t cpu_in_use, cpu_peak;
static atomic_size_t cpu_limit;
static atomic_int cpu_limit_ready;

static double cpu_mib(size_t b) { return (double)b / (1024.0 * 1024.0); }

static size_t cpu_limit_now(void) {
    if (!atomic_load(&cpu_limit_ready)) {
        const char *e = getenv("RLC_MEM_LIMIT_MB");
        size_t lim = 0;
        if (e && *e) {
            char *end;
            double mb = strtod(e, &end);
            if (end == e || *end || !(mb > 0) || mb > 1e12)
                RLC_FATAL("RLC_MEM_LIMIT_MB=%s: expected a positive number of MiB (e.g. 512 or 0.5)", e);
            lim = (size_t)(mb * 1024.0 * 1024.0);
        }
        atomic_store(&cpu_limit, lim);
        atomic_store(&cpu_limit_ready, 1);
    }
    return atomic_load(&cpu_limit);
}

static void cpu_set_mem_limit(size_t bytes) {
    atomic_store(&cpu_limit, bytes);
    atomic_store(&cpu_limit_ready, 1);
}

// MemTotal and MemAvailable of /proc/meminfo (sysconf's page counts where it cannot be read).
static void cpu_host_memory(size_t *avail, size_t *total) {
    *avail = *total = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        unsigned long long kb;
        while (fgets(line, sizeof line, f)) {
            if (sscanf(line, "MemTotal: %llu kB", &kb) == 1) *total = (size_t)kb * 1024;
            else if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) *avail = (size_t)kb * 1024;
        }
        fclose(f);
    }
    long page = sysconf(_SC_PAGESIZE);
    if (!*total && page > 0 && sysconf(_SC_PHYS_PAGES) > 0) *total = (size_t)sysconf(_SC_PHYS_PAGES) * (size_t)page;
    if (!*avail && page > 0 && sysconf(_SC_AVPHYS_PAGES) > 0) *avail = (size_t)sysconf(_SC_AVPHYS_PAGES) * (size_t)page;
}

static void cpu_mem_info(rlc_mem_info *mi) {
    size_t avail, total;
    cpu_host_memory(&avail, &total);
    mi->in_use = atomic_load(&cpu_in_use);
    mi->peak = atomic_load(&cpu_peak);
    mi->limit = cpu_limit_now();
    mi->free = avail;
    mi->total = total;
    if (mi->limit) {
        size_t room = mi->limit > mi->in_use ? mi->limit - mi->in_use : 0;
        if (room < mi->free) mi->free = room;
        if (mi->limit < mi->total || !mi->total) mi->total = mi->limit;
    }
}

static void *cpu_try_alloc(size_t bytes) {
    size_t lim = cpu_limit_now();
    if (lim && (bytes > lim || atomic_load(&cpu_in_use) > lim - bytes)) return NULL;
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p) return NULL;
    size_t now = atomic_fetch_add(&cpu_in_use, malloc_usable_size(p)) + malloc_usable_size(p);
    size_t pk = atomic_load(&cpu_peak);
    while (now > pk && !atomic_compare_exchange_weak(&cpu_peak, &pk, now)) {
    }
    return p;
}

static void *cpu_alloc(size_t bytes) {
    void *p = cpu_try_alloc(bytes);
    if (!p) {
        rlc_mem_info mi;
        cpu_mem_info(&mi);
        char lim[96] = "";
        if (mi.limit)
            snprintf(lim, sizeof lim, " (limit %zu bytes, %zu in use)", mi.limit, mi.in_use);
        RLC_FATAL("cpu backend: out of memory: alloc of %zu bytes (%.1f MiB) failed; %zu bytes (%.1f MiB) "
                  "available%s",
                  bytes, cpu_mib(bytes), mi.free, cpu_mib(mi.free), lim);
    }
    return p;
}

static void cpu_free(void *p) {
    if (!p) return;
    atomic_fetch_sub(&cpu_in_use, malloc_usable_size(p));
    free(p);
}
static void cpu_memcpy(void *dst, const void *src, size_t bytes) {
    if (bytes) memcpy(dst, src, bytes);
}
static void cpu_zero(void *p, size_t bytes) {
    if (bytes) memset(p, 0, bytes);
}

// Activations are rlc_f here: the conversions are copies.
static void cpu_act_from_f(rlc_act *dst, const rlc_f *src, size_t n) { cpu_memcpy(dst, src, n * sizeof(rlc_f)); }
static void cpu_act_to_f(rlc_f *dst, const rlc_act *src, size_t n) { cpu_memcpy(dst, src, n * sizeof(rlc_f)); }

// ---- elementwise / small ----
static void cpu_add(rlc_f *out, const rlc_f *a, const rlc_act *b_, size_t n) {
    const rlc_f *b = b_;
#pragma omp parallel for simd schedule(static) if (cpu_par((double)n))
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

static void cpu_scale(rlc_f *x, rlc_f s, size_t n) {
#pragma omp parallel for simd schedule(static) if (cpu_par((double)n))
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

// Fixed blocks of SUMSQ_BLOCK elements summed in double, then the partials summed in order: the result does
// not depend on the number of threads.
#define SUMSQ_BLOCK 16384
static double cpu_sumsq(const rlc_f *x, size_t n) {
    size_t nb = (n + SUMSQ_BLOCK - 1) / SUMSQ_BLOCK;
    if (nb == 0) return 0.0;
    double *part = rlc_malloc(nb * sizeof(double));
#pragma omp parallel for schedule(static) if (cpu_par((double)n))
    for (size_t b = 0; b < nb; b++) {
        size_t i0 = b * SUMSQ_BLOCK, i1 = i0 + SUMSQ_BLOCK < n ? i0 + SUMSQ_BLOCK : n;
        double s = 0.0;
        for (size_t i = i0; i < i1; i++) s += (double)x[i] * (double)x[i];
        part[b] = s;
    }
    double s = 0.0;
    for (size_t b = 0; b < nb; b++) s += part[b];
    free(part);
    return s;
}

// ---- embedding ----
static void cpu_embedding_forward(rlc_f *out, const int *tokens, const rlc_f *wte, int T, int C) {
#pragma omp parallel for schedule(static) if (cpu_par((double)T * C))
    for (int t = 0; t < T; t++) memcpy(out + (size_t)t * C, wte + (size_t)tokens[t] * C, (size_t)C * sizeof(rlc_f));
}

// Tokens sorted by (id, position); each group of equal ids is one unit that adds its rows in position order:
// race-free, every dwte row is touched by one thread in full rows, and each element receives its contributions
// in token order whatever the thread count.
typedef struct emb_pair {
    int tok, t;
} emb_pair;
static int emb_cmp(const void *pa, const void *pb) {
    const emb_pair *a = pa, *b = pb;
    if (a->tok != b->tok) return a->tok < b->tok ? -1 : 1;
    return a->t < b->t ? -1 : a->t > b->t;
}

static void cpu_embedding_backward(rlc_f *dwte, const rlc_f *dout, const int *tokens, int T, int C) {
    if (T <= 0) return;
    emb_pair *pr = rlc_malloc((size_t)T * sizeof(emb_pair));
    int *start = rlc_malloc((size_t)(T + 1) * sizeof(int));
    for (int t = 0; t < T; t++) pr[t] = (emb_pair){tokens[t], t};
    qsort(pr, (size_t)T, sizeof(emb_pair), emb_cmp);
    int ng = 0;
    for (int i = 0; i < T; i++)
        if (i == 0 || pr[i].tok != pr[i - 1].tok) start[ng++] = i;
    start[ng] = T;
#pragma omp parallel for schedule(dynamic, 16) if (cpu_par((double)T * C))
    for (int gi = 0; gi < ng; gi++) {
        rlc_f *dst = dwte + (size_t)pr[start[gi]].tok * C;
        for (int i = start[gi]; i < start[gi + 1]; i++) {
            const rlc_f *src = dout + (size_t)pr[i].t * C;
#pragma omp simd
            for (int c = 0; c < C; c++) dst[c] += src[c];
        }
    }
    free(pr);
    free(start);
}

// ---- linear ----
// All parallelism of the backend is OpenMP's: a big product is cut into tiles of C whose sizes depend only on
// the shape (never on the thread count, so every element is computed by the same gemm calls whatever the
// threads: bitwise reproducible), and each tile is a one-thread OpenBLAS call. Driving OpenBLAS's own thread
// pool between OpenMP regions instead makes the two sets of threads spin against each other.
// Tiles go from 512 x 1024 down to 256 x 256 until there are >= 32 of them: each tile packs its slices of A and
// B once, which costs ~(1/rows + 1/cols) of its work, so smaller tiles lose more than they gain. Products with
// a small C and a long K (weight gradients: K = tokens) still have too few tiles; those are also cut along K
// into fixed chunks whose partial products are summed in chunk order.
#define GEMM_MIN_TILES 32
void cpu_gemm_par(int ta, int tb, int M, int N, int K, rlc_f alpha, const rlc_f *A, int lda, const rlc_f *B, int ldb,
                  rlc_f beta, rlc_f *C, int ldc, const rlc_f *bias) {
    if (M <= 0 || N <= 0) return;
    int mb = 512, nb = 1024;
    for (;;) {
        long tiles = (long)((M + mb - 1) / mb) * ((N + nb - 1) / nb);
        if (tiles >= GEMM_MIN_TILES) break;
        if (nb > 256 && nb >= 2 * mb) nb /= 2;
        else if (mb > 256) mb /= 2;
        else if (nb > 256) nb /= 2;
        else break;
    }
    int tm = (M + mb - 1) / mb, tn = (N + nb - 1) / nb, tiles = tm * tn;
    int ks = 1; // K chunks of >= 2048
    if (tiles < GEMM_MIN_TILES && K >= 4096) {
        ks = (GEMM_MIN_TILES + tiles - 1) / tiles;
        if (ks > K / 2048) ks = K / 2048;
    }
    int kc = (K + ks - 1) / ks;
    rlc_f *part = ks > 1 ? rlc_malloc((size_t)tiles * ks * mb * nb * sizeof(rlc_f)) : NULL;
    int blas_threads = cpu_blas_single_begin();
#pragma omp parallel for schedule(dynamic, 1) if (cpu_par_gemm((double)M * N * K))
    for (long item = 0; item < (long)tiles * ks; item++) {
        int tile = (int)(item / ks), kk = (int)(item % ks);
        int m0 = (tile / tn) * mb, n0 = (tile % tn) * nb;
        int mm = M - m0 < mb ? M - m0 : mb, nn = N - n0 < nb ? N - n0 : nb;
        int k0 = kk * kc, kl = K - k0 < kc ? K - k0 : kc;
        const rlc_f *a = ta ? A + (size_t)k0 * lda + m0 : A + (size_t)m0 * lda + k0; // op(A) (mm, kl)
        const rlc_f *b = tb ? B + (size_t)n0 * ldb + k0 : B + (size_t)k0 * ldb + n0; // op(B) (kl, nn)
        if (ks > 1) { // partial product into its own slot
            cpu_gemm(ta, tb, mm, nn, kl, alpha, a, lda, b, ldb, 0, part + (size_t)item * mb * nb, nn);
            continue;
        }
        rlc_f *c = C + (size_t)m0 * ldc + n0;
        rlc_f bt = beta;
        if (bias) {
            for (int i = 0; i < mm; i++) memcpy(c + (size_t)i * ldc, bias + n0, (size_t)nn * sizeof(rlc_f));
            bt = 1;
        }
        cpu_gemm(ta, tb, mm, nn, K, alpha, a, lda, b, ldb, bt, c, ldc);
    }
    if (ks > 1) { // C = beta C (or bias) + partials in chunk order, one writer per row of a tile
#pragma omp parallel for schedule(static) if (cpu_par((double)M * N * ks))
        for (long row = 0; row < (long)tiles * mb; row++) {
            int tile = (int)(row / mb), i = (int)(row % mb);
            int m0 = (tile / tn) * mb, n0 = (tile % tn) * nb;
            int mm = M - m0 < mb ? M - m0 : mb, nn = N - n0 < nb ? N - n0 : nb;
            if (i >= mm) continue;
            rlc_f *c = C + (size_t)(m0 + i) * ldc + n0;
            for (int j = 0; j < nn; j++) c[j] = bias ? bias[n0 + j] : (beta == 0 ? 0 : beta * c[j]);
            for (int kk = 0; kk < ks; kk++) {
                const rlc_f *p = part + ((size_t)tile * ks + kk) * mb * nb + (size_t)i * nn;
                for (int j = 0; j < nn; j++) c[j] += p[j];
            }
        }
        free(part);
    }
    cpu_blas_single_end(blas_threads);
}

static void cpu_matmul_forward(rlc_act *out_, const rlc_act *inp_, const rlc_f *w, const rlc_f *bias, int T, int C,
                               int OC) {
    rlc_f *out = out_;
    const rlc_f *inp = inp_;
    cpu_gemm_par(0, 1, T, OC, C, 1, inp, C, w, C, 0, out, OC, bias);
}

static void cpu_logits_forward(rlc_f *out, const rlc_act *inp, const rlc_f *w, const rlc_f *bias, int T, int C,
                               int OC) {
    cpu_matmul_forward(out, inp, w, bias, T, C, OC);
}

#define DBIAS_ROWS 256
static void cpu_matmul_backward(rlc_act *dinp_, rlc_f *dw, rlc_f *dbias, const rlc_act *dout_, const rlc_act *inp_,
                                const rlc_f *w, int T, int C, int OC) {
    rlc_f *dinp = dinp_;
    const rlc_f *dout = dout_;
    const rlc_f *inp = inp_;
    if (dinp) cpu_gemm_par(0, 0, T, C, OC, 1, dout, OC, w, C, 1, dinp, C, NULL); // (T,OC) @ (OC,C)
    if (dw) cpu_gemm_par(1, 0, OC, C, T, 1, dout, OC, inp, C, 1, dw, C, NULL);   // (OC,T) @ (T,C)
    if (dbias) { // fixed chunks of tokens summed in double, partials added in chunk order (deterministic)
        int nch = (T + DBIAS_ROWS - 1) / DBIAS_ROWS;
        double *part = rlc_calloc((size_t)(nch ? nch : 1) * OC, sizeof(double)); // (nch, OC)
#pragma omp parallel for schedule(static) if (cpu_par((double)T * OC))
        for (int ch = 0; ch < nch; ch++) {
            double *pb = part + (size_t)ch * OC;
            int t1 = (ch + 1) * DBIAS_ROWS < T ? (ch + 1) * DBIAS_ROWS : T;
            for (int t = ch * DBIAS_ROWS; t < t1; t++) {
                const rlc_f *row = dout + (size_t)t * OC;
#pragma omp simd
                for (int o = 0; o < OC; o++) pb[o] += row[o];
            }
        }
        for (int o = 0; o < OC; o++) {
            double sb = 0.0;
            for (int ch = 0; ch < nch; ch++) sb += part[(size_t)ch * OC + o];
            dbias[o] += (rlc_f)sb;
        }
        free(part);
    }
}

// ---- RMSNorm ----
static void cpu_rmsnorm_forward(rlc_act *out_, rlc_f *rstd, const rlc_f *inp, const rlc_f *weight, float eps, int T,
                                int C) {
    rlc_f *out = out_;
#pragma omp parallel for schedule(static) if (cpu_par(3.0 * T * C))
    for (int t = 0; t < T; t++) {
        const rlc_f *x = inp + (size_t)t * C;
        rlc_f *y = out + (size_t)t * C;
        double ss = 0.0;
#pragma omp simd reduction(+ : ss)
        for (int c = 0; c < C; c++) ss += (double)x[c] * (double)x[c];
        rlc_f r = (rlc_f)(1.0 / sqrt(ss / C + (double)eps));
        rstd[t] = r;
        for (int c = 0; c < C; c++) y[c] = x[c] * r * weight[c];
    }
}

// y_i = x_i r w_i with r = (mean x^2 + eps)^(-1/2):
// dx_i = r w_i dy_i - x_i r^3 / C * sum_j dy_j w_j x_j;  dw_i = sum_t dy_i x_i r.
// One pass over fixed chunks of RMS_ROWS rows: dx rows, and each chunk's partial dweight (in double); the
// partials are then summed in chunk order (deterministic whatever the thread count).
#define RMS_ROWS 256
static void cpu_rmsnorm_backward(rlc_f *dinp, rlc_f *dweight, const rlc_act *dout_, const rlc_f *inp,
                                 const rlc_f *weight, const rlc_f *rstd, int T, int C) {
    const rlc_f *dout = dout_;
    int nch = (T + RMS_ROWS - 1) / RMS_ROWS;
    double *part = rlc_calloc((size_t)(nch ? nch : 1) * C, sizeof(double)); // (nch, C)
#pragma omp parallel for schedule(static) if (cpu_par(5.0 * T * C))
    for (int ch = 0; ch < nch; ch++) {
        double *pw = part + (size_t)ch * C;
        int t1 = (ch + 1) * RMS_ROWS < T ? (ch + 1) * RMS_ROWS : T;
        for (int t = ch * RMS_ROWS; t < t1; t++) {
            const rlc_f *x = inp + (size_t)t * C, *dy = dout + (size_t)t * C;
            rlc_f *dx = dinp + (size_t)t * C;
            rlc_f r = rstd[t];
            double dot = 0.0;
#pragma omp simd reduction(+ : dot)
            for (int c = 0; c < C; c++) dot += (double)dy[c] * weight[c] * x[c];
            rlc_f k = (rlc_f)(dot * (double)r * r * r / C);
#pragma omp simd
            for (int c = 0; c < C; c++) {
                dx[c] += r * weight[c] * dy[c] - x[c] * k;
                pw[c] += (double)(dy[c] * x[c] * r);
            }
        }
    }
    for (int c = 0; c < C; c++) {
        double sw = 0.0;
        for (int ch = 0; ch < nch; ch++) sw += part[(size_t)ch * C + c];
        dweight[c] += (rlc_f)sw;
    }
    free(part);
}

// The specification is the composition: the same additions, then the same norm (bitwise the two ops).
static void cpu_add_rmsnorm_forward(rlc_f *x, rlc_act *out, rlc_f *rstd, const rlc_f *a, const rlc_act *b,
                                    const rlc_f *weight, float eps, int T, int C) {
    cpu_add(x, a, b, (size_t)T * C);
    cpu_rmsnorm_forward(out, rstd, x, weight, eps, T, C);
}

// ---- RoPE ----
// Rotates each (x_i, x_{i+HD/2}) pair by sign * pos * freq_i. Angles, cos and sin in double (positions reach
// tens of thousands, where a float angle loses most of its fractional part), computed once per token and
// shared by all heads.
static void rope_apply(rlc_f *x, const int *pos, int T, int H, int HD, float theta, double sign) {
    int half = HD / 2;
    double *freq = rlc_malloc((size_t)(half ? half : 1) * sizeof(double));
    for (int i = 0; i < half; i++) freq[i] = pow((double)theta, -2.0 * i / HD);
#pragma omp parallel if (cpu_par((double)T * (H * HD + 20 * half)))
    {
        double *cs = rlc_malloc((size_t)(half ? half : 1) * 2 * sizeof(double));
#pragma omp for schedule(static)
        for (int t = 0; t < T; t++) {
            for (int i = 0; i < half; i++) {
                double a = (double)pos[t] * freq[i];
                cs[2 * i] = cos(a);
                cs[2 * i + 1] = sign * sin(a);
            }
            for (int h = 0; h < H; h++) {
                rlc_f *xh = x + ((size_t)t * H + h) * HD;
                for (int i = 0; i < half; i++) {
                    double c = cs[2 * i], s = cs[2 * i + 1];
                    double x0 = xh[i], x1 = xh[i + half];
                    xh[i] = (rlc_f)(x0 * c - x1 * s);
                    xh[i + half] = (rlc_f)(x1 * c + x0 * s);
                }
            }
        }
        free(cs);
    }
    free(freq);
}

static void cpu_rope_forward(rlc_act *x_, const int *pos, int T, int H, int HD, float theta) {
    rlc_f *x = x_;
    rope_apply(x, pos, T, H, HD, theta, 1.0);
}
static void cpu_rope_backward(rlc_act *dx_, const int *pos, int T, int H, int HD, float theta) {
    rlc_f *dx = dx_;
    rope_apply(dx, pos, T, H, HD, theta, -1.0);
}

// ---- SwiGLU ----
// Chunks of SWIGLU_CHUNK elements through the vectorised row kernels of simd_cpu.c.
#define SWIGLU_CHUNK 4096
static void cpu_swiglu_forward(rlc_act *out_, const rlc_act *gate_, const rlc_act *up_, size_t n) {
    rlc_f *out = out_;
    const rlc_f *gate = gate_;
    const rlc_f *up = up_;
    size_t nc = (n + SWIGLU_CHUNK - 1) / SWIGLU_CHUNK;
#pragma omp parallel for schedule(static) if (cpu_par(10.0 * n))
    for (size_t c = 0; c < nc; c++) {
        size_t i0 = c * SWIGLU_CHUNK;
        int len = n - i0 < SWIGLU_CHUNK ? (int)(n - i0) : SWIGLU_CHUNK;
        cpu_swiglu_fwd(out + i0, gate + i0, up + i0, len);
    }
}

static void cpu_swiglu_backward(rlc_act *dgate_, rlc_act *dup_, const rlc_act *dout_, const rlc_act *gate_, const rlc_act *up_,
                                size_t n) {
    rlc_f *dgate = dgate_;
    rlc_f *dup = dup_;
    const rlc_f *dout = dout_;
    const rlc_f *gate = gate_;
    const rlc_f *up = up_;
    size_t nc = (n + SWIGLU_CHUNK - 1) / SWIGLU_CHUNK;
#pragma omp parallel for schedule(static) if (cpu_par(10.0 * n))
    for (size_t c = 0; c < nc; c++) {
        size_t i0 = c * SWIGLU_CHUNK;
        int len = n - i0 < SWIGLU_CHUNK ? (int)(n - i0) : SWIGLU_CHUNK;
        cpu_swiglu_bwd(dgate + i0, dup + i0, dout + i0, gate + i0, up + i0, len);
    }
}

// ---- AdamW ----
static void cpu_adamw_update(rlc_f *p, const rlc_f *g, rlc_f *m, rlc_f *v, size_t n, float lr, float b1, float b2,
                             float eps, float wd, float grad_scale, int t) {
    rlc_f bc1 = (rlc_f)(1.0 / (1.0 - pow((double)b1, t))), bc2 = (rlc_f)(1.0 / (1.0 - pow((double)b2, t)));
    rlc_f lr_ = lr, b1_ = b1, b2_ = b2, eps_ = eps, wd_ = wd, gs = grad_scale;
#pragma omp parallel for schedule(static) if (cpu_par(10.0 * n))
    for (size_t i = 0; i < n; i++) {
        rlc_f gi = g[i] * gs;
        rlc_f mi = b1_ * m[i] + (1 - b1_) * gi;
        rlc_f vi = b2_ * v[i] + (1 - b2_) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] -= lr_ * ((mi * bc1) / (CPU_SQRT(vi * bc2) + eps_) + wd_ * p[i]);
    }
}

static const rlc_ops cpu_ops = {
    .name = "cpu",
    .act_bytes = sizeof(rlc_f),
    .alloc = cpu_alloc,
    .try_alloc = cpu_try_alloc,
    .free = cpu_free,
    .mem_info = cpu_mem_info,
    .set_mem_limit = cpu_set_mem_limit,
    .upload = cpu_memcpy,
    .download = cpu_memcpy,
    .zero = cpu_zero,
    .copy = cpu_memcpy,
    .act_from_f = cpu_act_from_f,
    .act_to_f = cpu_act_to_f,
    .add = cpu_add,
    .scale = cpu_scale,
    .sumsq = cpu_sumsq,
    .embedding_forward = cpu_embedding_forward,
    .embedding_backward = cpu_embedding_backward,
    .matmul_forward = cpu_matmul_forward,
    .logits_forward = cpu_logits_forward,
    .matmul_backward = cpu_matmul_backward,
    .rmsnorm_forward = cpu_rmsnorm_forward,
    .rmsnorm_backward = cpu_rmsnorm_backward,
    .add_rmsnorm_forward = cpu_add_rmsnorm_forward,
    .rope_forward = cpu_rope_forward,
    .rope_backward = cpu_rope_backward,
    .attention_forward = cpu_attention_forward,
    .attention_backward = cpu_attention_backward,
    .attention_decode = cpu_attention_decode,
    .attention_decode_scratch = cpu_attention_decode_scratch,
    .kv_append = cpu_kv_append,
    .swiglu_forward = cpu_swiglu_forward,
    .swiglu_backward = cpu_swiglu_backward,
    .logprob_forward = cpu_logprob_forward,
    .logprob_backward = cpu_logprob_backward,
    .sample_tokens = cpu_sample_tokens,
    .adamw_update = cpu_adamw_update,
};

const rlc_ops *rlc_ops_cpu(void) { return &cpu_ops; }
