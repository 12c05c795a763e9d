// include/rlc/rollout.h: the rollout engine. Batched autoregressive generation with a per-sequence KV cache,
// written on the op table through the model's cached forward. A group's prompt is prefilled once and its KV
// copied to the G samples' slots. Sampling (temperature, top-k, top-p, greedy) draws its uniform numbers from
// Philox keyed by (seed, step, prompt id, sample id, position), so a sample's tokens do not depend on which
// other sequences share its batch. Tokens are drawn where the logits are (ops->sample_tokens: on a device
// backend only the tokens, log-probs and entropies come back to the host). Finished sequences leave the batch.
// Multi-turn tasks interleave policy turns (ended by '\n') with environment observations appended to the same
// sequence (masked out of losses).
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "rlc/config.h"
#include "rlc/model.h"
#include "rlc/sample.h" // rlc_sampling, rlc_sample_token
#include "rlc/task.h"

// One generated sequence. Token t of tokens[] is predicted from tokens[0..t-1]; arrays indexed by token.
typedef struct rlc_sequence {
    int prompt_id, sample_id;
    int len;            // tokens in the sequence (BOS + prompt + response/observations)
    int prompt_len;     // BOS + prompt tokens
    int *tokens;        // (len)
    uint8_t *mask;      // (len) 1 for tokens the policy generated (loss targets), 0 for prompt/observations
    float *roll_logp;   // (len) log-prob of the token under the rollout's temperature-scaled distribution
    float *roll_ent;    // (len) entropy of that distribution at the position that produced the token
    int n_turns;        // policy turns (1 for single-turn tasks)
    int *turn_start, *turn_end; // (n_turns) token ranges [start, end) of each policy turn (EMPG steps)
    int n_gen;          // generated (policy) tokens
    float score;        // task reward
    int truncated;      // hit max_new_tokens / max_seq_len without finishing
    char response[RLC_TEXT_MAX]; // decoded policy text (single-turn: the answer; multi-turn: the moves)
} rlc_sequence;

// Generate G samples for each of n_prompts problems. prompt_ids are the global ids used in the RNG key.
// out has n_prompts*G entries, (prompt p, sample g) at p*G + g; free with rlc_sequence_free. The sequences are
// generated in waves of whole groups, as many as the backend's free memory holds (rlc_rollout_wave_groups; the
// rollouts are bit-identical whatever the waves); returns the number of waves. Ends the process with the bytes
// requested and available when not even one group fits.
int rlc_rollout_generate(rlc_model *m, const rlc_rollout_config *rc, const rlc_sampling *s, const rlc_task *task,
                         const rlc_task_config *tc, const rlc_problem *probs, const int *prompt_ids, int n_prompts,
                         int G, uint64_t seed, int step, rlc_sequence *out);

// ---- memory ----
// Generation holds, per sequence: a KV-cache slot of max_seq_len tokens (rlc_kv_cache_bytes), a row of LM-head
// logits in backend memory (the model keeps the largest count it has needed), and on the CPU backend two host
// rows of logits staging (the same RAM), on a device backend its attention_decode_scratch per row (the CUDA
// backend: split partials, and in fp32 mode or at padded head dims the bf16 staging of one layer's cache rows).
// A wave takes the most whole groups whose bytes fit in the backend's free memory (rlc_mem_info.free) less the
// safety margin: 1/16 of the free memory, plus RLC_ROLLOUT_DEVICE_RESERVE_MB on a device backend for what the
// backend does not count (cuBLAS's workspace, the CUDA runtime, its workspace's growth margin).
#define RLC_ROLLOUT_DEVICE_RESERVE_MB 64
// Bytes of one sequence's KV slot and staging (not the logits row).
size_t rlc_rollout_seq_bytes(const rlc_model *m);
// The safety margin kept free out of avail bytes.
size_t rlc_rollout_margin(const rlc_model *m, size_t avail);
// Whole groups of G sequences (at most n_prompts) one wave may take when avail bytes are free; 0 if none fits.
int rlc_rollout_wave_groups(const rlc_model *m, int G, int n_prompts, size_t avail);
// 0 when one group of G sequences fits in the backend's free memory now; else -1 with "rollout: one group of ...:
// cannot allocate N bytes (M available, ...)" in err. rlc_rl_init checks it before any work.
int rlc_rollout_group_fits(const rlc_model *m, int G, char *err, size_t errlen);
void rlc_sequence_free(rlc_sequence *s);

// Build the expert (SFT) sequence of a problem: BOS + prompt + answer + EOS (single-turn) or the expert's
// moves interleaved with the environment's observations (multi-turn). Returns -1 if it does not fit max_len.
int rlc_sequence_from_expert(const rlc_task *task, const rlc_task_config *tc, const rlc_problem *p, int max_len,
                             rlc_sequence *out);
// Build a sequence from a prompt and a fixed response text (DPO pairs): BOS + prompt + response + EOS.
int rlc_sequence_from_text(const char *prompt, const char *response, int max_len, rlc_sequence *out);

// Sum of greedy scores over held-out problem ids [lo, hi), in batches of `batch` problems.
double rlc_rollout_eval_sum(rlc_model *m, const rlc_rollout_config *rc, const rlc_task *task,
                            const rlc_task_config *tc, int lo, int hi, int batch);
// Greedy evaluation on n held-out problems; returns the mean score.
double rlc_rollout_eval(rlc_model *m, const rlc_rollout_config *rc, const rlc_task *task, const rlc_task_config *tc,
                        int n, int batch);
