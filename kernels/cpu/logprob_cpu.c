// kernels/cpu/logprob_cpu.c: fused LM-head log-prob + entropy at temperature tau (spec losses.md section 1)
// for the CPU backend. Logits u = hidden @ w^T / tau are produced one (token block x vocabulary chunk) tile at a
// time by gemm into a per-thread scratch and folded into an online max / sum of exponentials / sum of p*u, so
// extra memory is O(tile), never T x V. The backward recomputes the tiles:
//   dL/dz_j = (c (1[j==y] - p_j) - e p_j (log p_j + H)) / tau
// and runs in two passes with one writer per output element (bitwise independent of thread count): pass 1
// over token blocks for dhidden += dz @ w, pass 2 over vocabulary chunks for dw += dz^T @ hidden.
#include <stdlib.h>

#include "cpu_common.h"
#include "rlc/util.h"

// Tile sizes: a tile's gemm re-packs its slice of w for every token block, so token blocks are kept >= 128.
#define LP_TB 128    // tokens per block (forward, dhidden pass)
#define LP_VC 1024   // vocabulary columns per chunk (forward, dhidden pass)
#define LP_TB2 256   // tokens per block (dw pass)
#define LP_VC2 512   // vocabulary columns per chunk (dw pass; smaller for a small V, so there are >= 16)

static void lp_check_targets(const int *targets, int T, int V) {
    for (int t = 0; t < T; t++)
        RLC_CHECK(targets[t] < V, "logprob: target %d of token %d is outside the vocabulary (V=%d)", targets[t], t,
                  V);
}

void cpu_logprob_forward(rlc_f *logp, rlc_f *entropy, rlc_f *lse, const rlc_act *hidden_, const rlc_f *w,
                         const int *targets, int T, int C, int V, float tau) {
    const rlc_f *hidden = hidden_;
    lp_check_targets(targets, T, V);
    RLC_CHECK(tau > 0, "logprob: temperature must be > 0 (got %g)", tau);
    rlc_f inv_tau = (rlc_f)(1.0 / (double)tau);
    int nblk = (T + LP_TB - 1) / LP_TB;
    int blas_threads = cpu_blas_single_begin();
#pragma omp parallel if (cpu_par_gemm((double)T * V * C))
    {
        rlc_f *U = rlc_malloc((size_t)LP_TB * LP_VC * sizeof(rlc_f)); // (tb, vc) scaled logits
#pragma omp for schedule(dynamic, 1)
        for (int blk = 0; blk < nblk; blk++) {
            int t0 = blk * LP_TB, tb = T - t0 < LP_TB ? T - t0 : LP_TB;
            // per row: running max m, s = sum exp(u - m), a = sum exp(u - m) (u - m), target logit
            double m[LP_TB], s[LP_TB], a[LP_TB], uy[LP_TB];
            for (int r = 0; r < tb; r++) m[r] = -INFINITY, s[r] = 0, a[r] = 0, uy[r] = 0;
            for (int v0 = 0; v0 < V; v0 += LP_VC) {
                int vc = V - v0 < LP_VC ? V - v0 : LP_VC;
                cpu_gemm(0, 1, tb, vc, C, inv_tau, hidden + (size_t)t0 * C, C, w + (size_t)v0 * C, C, 0, U, vc);
                for (int r = 0; r < tb; r++) {
                    const rlc_f *row = U + (size_t)r * vc;
                    rlc_f cmx = cpu_row_max(row, vc);
                    if (cmx > m[r]) { // rescale to the new max: u - m' = (u - m) + (m - m')
                        if (s[r] > 0) {
                            double f = exp(m[r] - cmx);
                            a[r] = f * (a[r] + s[r] * (m[r] - cmx));
                            s[r] *= f;
                        }
                        m[r] = cmx;
                    }
                    rlc_f mr = (rlc_f)m[r];
                    double sr, ar;
                    cpu_exp_stats(row, vc, mr, &sr, &ar);
                    s[r] += sr;
                    a[r] += ar;
                    int y = targets[t0 + r];
                    if (y >= v0 && y < v0 + vc) uy[r] = row[y - v0];
                }
            }
            for (int r = 0; r < tb; r++) {
                int t = t0 + r;
                double l = m[r] + log(s[r]);
                lse[t] = (rlc_f)l;
                // H = lse - sum p u = log s - a / s: both terms >= 0, no cancellation
                if (entropy) entropy[t] = (rlc_f)(log(s[r]) - a[r] / s[r]);
                if (logp) logp[t] = targets[t] >= 0 ? (rlc_f)(uy[r] - l) : 0;
            }
        }
        free(U);
    }
    cpu_blas_single_end(blas_threads);
}

// Overwrites the (tb, vc) tile U of scaled logits u with dL/dz for tokens t0.. and vocabulary columns v0..
static void lp_dz_tile(rlc_f *U, int tb, int vc, int t0, int v0, const rlc_f *dlogp, const rlc_f *dent,
                       const int *targets, const rlc_f *lse, const rlc_f *entropy, rlc_f inv_tau) {
    for (int r = 0; r < tb; r++) {
        int t = t0 + r, y = targets[t];
        rlc_f c = (dlogp && y >= 0) ? dlogp[t] * inv_tau : 0;
        rlc_f e = dent ? dent[t] * inv_tau : 0;
        rlc_f l = lse[t], H = entropy[t];
        rlc_f *row = U + (size_t)r * vc;
        cpu_logprob_dz(row, vc, l, H, c, e);
        if (y >= v0 && y < v0 + vc) row[y - v0] += c;
    }
}

void cpu_logprob_backward(rlc_act *dhidden_, rlc_f *dw, const rlc_f *dlogp, const rlc_f *dent, const rlc_act *hidden_,
                          const rlc_f *w, const int *targets, const rlc_f *lse, const rlc_f *entropy, int T, int C,
                          int V, float tau) {
    rlc_f *dhidden = dhidden_;
    const rlc_f *hidden = hidden_;
    lp_check_targets(targets, T, V);
    RLC_CHECK(tau > 0, "logprob: temperature must be > 0 (got %g)", tau);
    rlc_f inv_tau = (rlc_f)(1.0 / (double)tau);
    int blas_threads = cpu_blas_single_begin();
    if (dhidden) { // pass 1: one writer per token block
        int nblk = (T + LP_TB - 1) / LP_TB;
#pragma omp parallel if (cpu_par_gemm((double)T * V * C))
        {
            rlc_f *U = rlc_malloc((size_t)LP_TB * LP_VC * sizeof(rlc_f));
#pragma omp for schedule(dynamic, 1)
            for (int blk = 0; blk < nblk; blk++) {
                int t0 = blk * LP_TB, tb = T - t0 < LP_TB ? T - t0 : LP_TB;
                for (int v0 = 0; v0 < V; v0 += LP_VC) {
                    int vc = V - v0 < LP_VC ? V - v0 : LP_VC;
                    cpu_gemm(0, 1, tb, vc, C, inv_tau, hidden + (size_t)t0 * C, C, w + (size_t)v0 * C, C, 0, U, vc);
                    lp_dz_tile(U, tb, vc, t0, v0, dlogp, dent, targets, lse, entropy, inv_tau);
                    cpu_gemm(0, 0, tb, C, vc, 1, U, vc, w + (size_t)v0 * C, C, 1, dhidden + (size_t)t0 * C, C);
                }
            }
            free(U);
        }
    }
    if (dw) { // pass 2: one writer per vocabulary chunk, token blocks in order
        int vc2 = LP_VC2;
        while (vc2 > 64 && (V + vc2 - 1) / vc2 < 16) vc2 /= 2;
        int nch = (V + vc2 - 1) / vc2;
#pragma omp parallel if (cpu_par_gemm((double)T * V * C))
        {
            rlc_f *U = rlc_malloc((size_t)LP_TB2 * vc2 * sizeof(rlc_f));
#pragma omp for schedule(dynamic, 1)
            for (int ch = 0; ch < nch; ch++) {
                int v0 = ch * vc2, vc = V - v0 < vc2 ? V - v0 : vc2;
                for (int t0 = 0; t0 < T; t0 += LP_TB2) {
                    int tb = T - t0 < LP_TB2 ? T - t0 : LP_TB2;
                    cpu_gemm(0, 1, tb, vc, C, inv_tau, hidden + (size_t)t0 * C, C, w + (size_t)v0 * C, C, 0, U, vc);
                    lp_dz_tile(U, tb, vc, t0, v0, dlogp, dent, targets, lse, entropy, inv_tau);
                    cpu_gemm(1, 0, vc, C, tb, 1, U, vc, hidden + (size_t)t0 * C, C, 1, dw + (size_t)v0 * C, C);
                }
            }
            free(U);
        }
    }
    cpu_blas_single_end(blas_threads);
}
