// kernels/cuda/loss.h: CUDA policy-loss, value-loss and advantage kernels (implementation: loss.cu). The
// CPU twins and the exact semantics are host/loss.c and host/advantage.c (include/rlc/loss.h,
// include/rlc/advantage.h; formulas: ../shared/spec/losses.md sections 2-5); each function here computes the
// same thing on device arrays with fp32 per-token math and fp64 sums.
//
// Conventions
// - Every pointer argument is DEVICE memory unless said otherwise: the rlc_loss_batch's cu_seqlens (B+1) and
//   mask (T, NULL = all tokens are response tokens), the rlc_policy_inputs arrays (T), outputs, stats.
//   Config structs (rlc_loss_config, rlc_loss_norm) are host structs passed by value to the kernels.
// - `stream` is a cudaStream_t (NULL = default stream). Nothing synchronises; nothing allocates: the caller
//   passes a device workspace of at least the *_workspace_bytes size.
// - Stats (rlc_loss_stats, rlc_empg_stats) live in device memory and are ACCUMULATED like the CPU twins'
//   (zero them with cudaMemset once per step). The loss of the call is also written to *loss_out (device
//   double, may be NULL), since the host cannot get a return value without synchronising.
// - Deterministic: every reduction is per-block partial sums in a fixed tree order, then the partials added in
//   index order (for the policy loss by a block per 32 of them, then by whichever block finishes last, in the
//   same order); no float atomics. Results depend on T and B only, not on the GPU.
// - Masked tokens never enter a sum and their outputs are 0: their inputs may be NaN or inf.
// - cu_seqlens is a proper packing: cu[0] = 0, non-decreasing, cu[B] = T (empty sequences are fine).
// - The policy loss copies its inputs 16 bytes at a time (cp.async) when logp, old, adv, ref, roll and entropy
//   are 16-byte aligned and the mask too (cudaMalloc'd buffers are; offsets that are multiples of 16 tokens
//   keep it); other alignments take a plain-load path with the same token-to-thread assignment, hence the same
//   bits. The value loss reads 4 tokens at a time under the same condition (4-byte mask).
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" { // the CPU twins' headers are plain C without guards: C linkage for their declarations too
#endif
#include "rlc/advantage.h"
#include "rlc/loss.h"

// ---- policy loss (rlc_policy_loss's twin) ----
// Bytes of workspace for a micro-batch of T tokens and B sequences.
size_t rlc_cuda_policy_loss_workspace_bytes(int T, int B);
// Writes dlogp (T) and dent (T, may be NULL when ent_coef == 0); accumulates *stats (device); writes
// *loss_out (device, may be NULL). in's pointers are device arrays (ref / roll / entropy may be NULL as in
// the CPU twin). Requires in->logp/old/adv and dlogp; returns -1 with a message on stderr on bad arguments.
int rlc_cuda_policy_loss(const rlc_loss_config *cfg, const rlc_loss_norm *norm, const rlc_loss_batch *b,
                         const rlc_policy_inputs *in, float *dlogp, float *dent, rlc_loss_stats *stats,
                         double *loss_out, void *workspace, void *stream);

// Benchmarks and tests only: caps the token kernels' grid at n blocks (0: the default, 1024). It changes the
// reduction tree (so the low bits of the sums) and the workspace size: set it before *_workspace_bytes.
void rlc_cuda_loss_set_max_blocks(int n);
// Benchmarks and tests only: 1 (the default) runs a policy loss that needs a per-sequence quantity (GSPO,
// seq-mean-token-mean, sequence TIS) as one fused kernel that reads each input once from DRAM (when the inputs
// take the cp.async path; others always run the separate kernels); 0 runs the separate pre-pass kernels first.
// Both give the same bits.
void rlc_cuda_loss_set_fused(int on);

// ---- clipped value loss (rlc_value_loss's twin) ----
size_t rlc_cuda_value_loss_workspace_bytes(int T, int B);
// v, v_old, ret (T); writes dv (T); accumulates stats->vf_loss / loss / vf_tok / vf_clip_sum / vf_err_sum.
int rlc_cuda_value_loss(const float *v, const float *v_old, const float *ret, const rlc_loss_batch *b, rlc_agg agg,
                        const rlc_loss_norm *norm, float cv, float coef, float *dv, rlc_loss_stats *stats,
                        double *loss_out, void *workspace, void *stream);

// ---- outcome advantages: one warp per group ----
// Bytes of workspace rlc_cuda_adv_grpo needs (the batch standard deviation for RLC_ADV_SCALE_BATCH).
size_t rlc_cuda_adv_grpo_workspace_bytes(void);
// adv, scores (n_groups * G), group p at p*G. Same rules as rlc_adv_grpo (all-equal group -> 0, group of one).
int rlc_cuda_adv_grpo(float *adv, const float *scores, int n_groups, int G, rlc_adv_scale scale, void *workspace,
                      void *stream);
// RLOO: A_i = s_i - mean_{j != i} s_j (group of one: s_i).
int rlc_cuda_adv_rloo(float *adv, const float *scores, int n_groups, int G, void *stream);
// adv_tok (T) = adv_seq[i] on the response tokens of sequence i, 0 elsewhere (rlc_adv_broadcast's twin).
int rlc_cuda_adv_broadcast(float *adv_tok, const float *adv_seq, const rlc_loss_batch *b, void *stream);

// ---- EMPG (phases as in include/rlc/advantage.h; st is a device rlc_empg_stats) ----
// H (S) = mean of ent over the mask-1 tokens of [step_start[j], step_end[j]) (0 for an empty step).
int rlc_cuda_empg_step_entropy(float *H, const float *ent, const uint8_t *mask, const int *step_start,
                               const int *step_end, int S, void *stream);
int rlc_cuda_empg_stats_init(rlc_empg_stats *st, void *stream); // h_min = +inf, h_max = -inf, sums 0
int rlc_cuda_empg_phase1(rlc_empg_stats *st, const float *H, int S, void *stream);
int rlc_cuda_empg_phase2(rlc_empg_stats *st, const float *H, int S, float k, void *stream);
// a_mod (S) = g * a_traj + zeta * f_next; g_out (S) may be NULL; next (S) int, -1 = last step of an episode.
int rlc_cuda_empg_phase3(rlc_empg_stats *st, float *a_mod, float *g_out, const float *H, const int *next,
                         const float *a_traj, int S, float k, float k2, float zeta, void *stream);
int rlc_cuda_empg_finish(float *a, int S, const rlc_empg_stats *st, void *stream); // a -= mean(a_mod)
// All phases, one process: st is device scratch (sizeof(rlc_empg_stats) bytes), overwritten.
int rlc_cuda_adv_empg(float *a_final, float *g_out, const float *H, const int *next, const float *a_traj, int S,
                      float k, float k2, float zeta, rlc_empg_stats *st, void *stream);

#ifdef __cplusplus
}
#endif
