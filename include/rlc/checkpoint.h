// include/rlc/checkpoint.h: checkpoints on top of the model's tensor table.
//
// A checkpoint root (e.g. runs/<name>/) holds checkpoint directories and a `latest` file:
//   <root>/latest                        one line: the name of the newest complete checkpoint directory
//   <root>/ckpt-<sft|rl>-<step:06>/      one checkpoint:
//       model.safetensors        parameters under their HF Llama/Qwen2 names (a tied lm_head is not written,
//                                as HF does)
//       config.json              HF config (LlamaForCausalLM / Qwen2ForCausalLM), so HF tools load the model
//       rlc_config.json          the full effective rlc config (when a config is given)
//       train_state.safetensors  AdamW moments ("adam_m.<name>", "adam_v.<name>", F32) and the rlc_train_state
//                                as __metadata__ strings (when a state or moments are given)
// The root may hold other files (metrics, the run's config); a save touches only ckpt-* entries and `latest`.
//
// Crash safety. Every file is written atomically (tmp + fsync + rename + fsync of the directory). A save:
//   1. writes the checkpoint into `<root>/<name>.tmp/` (a partial one left by a crash is removed first);
//   2. renames it to `<root>/<name>/` (an existing `<name>` is first moved aside to `<name>.old`, which only
//      happens when the same step is saved twice, e.g. after a resume);
//   3. rewrites `<root>/latest` atomically to `<name>`;
//   4. prunes older checkpoints (keeping the newest RLC_CKPT_KEEP) and stale .tmp / .old directories.
// A crash before step 3 leaves `latest` naming the previous complete checkpoint, which is never modified; a
// crash inside step 2 of a same-name save leaves `<name>.old`, which rlc_checkpoint_resolve falls back to.
// A checkpoint directory (or an HF model directory) can also be loaded directly: any directory that holds
// model.safetensors is used as is.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "rlc/config.h"
#include "rlc/model.h"

#define RLC_STATE_MAX_EXTRA 8
#define RLC_CKPT_KEEP 2 // checkpoint directories kept per root

// Training progress needed to resume exactly.
typedef struct rlc_train_state {
    int step;           // optimizer steps done in the current phase
    int phase;          // 0 = SFT, 1 = RL
    uint64_t rng_seed;  // sampling RNG state / seed stream position
    uint64_t data_pos;  // next problem index of the training stream
    double kl_beta;     // current (adaptive) KL coefficient
    int opt_t;          // AdamW bias-correction step count (rlc_adamw.t)
    int n_extra;        // named doubles for anything else (best eval score, ...)
    char extra_name[RLC_STATE_MAX_EXTRA][32];
    double extra[RLC_STATE_MAX_EXTRA];
} rlc_train_state;

// Set (or add) a named extra value; -1 if the table is full or the name too long.
int rlc_train_state_set(rlc_train_state *st, const char *name, double value);
// Get a named extra value; returns 1 and writes *value when present, 0 otherwise.
int rlc_train_state_get(const rlc_train_state *st, const char *name, double *value);

// Save a checkpoint under root `dir` (see above) as ckpt-<phase>-<step> of st (ckpt-sft-000000 when st is
// NULL). adam_m / adam_v: (n_params) moment buffers in the model's backend memory (as rlc_adamw.m / .v), or
// NULL for a weights-only save. cfg may be NULL (then rlc_config.json is not written). Returns 0, or -1 with a
// message naming the file.
int rlc_checkpoint_save(const rlc_model *m, const rlc_config *cfg, const char *dir, const rlc_train_state *st,
                        const rlc_f *adam_m, const rlc_f *adam_v, char *err, size_t errlen);

// The checkpoint directory to read for `dir`: dir itself when it holds model.safetensors; else the directory
// named by dir/latest (or its `.old` twin when a same-name save was interrupted); else dir (the loader then
// reports the missing file). out has cap bytes.
void rlc_checkpoint_resolve(const char *dir, char *out, size_t cap);

// Load parameters from a checkpoint directory or a .safetensors file. Every tensor is validated against the
// model's table: missing, unexpected, wrong shape or non-float dtype is an error naming the file and tensor.
// F32, BF16, F16 and F64 are converted. A tied model ignores an lm_head.weight in the file (some HF
// checkpoints store it), and "*.rotary_emb.inv_freq" buffers of older HF Llama files are ignored.
int rlc_checkpoint_load_model(rlc_model *m, const char *dir_or_file, char *err, size_t errlen);

// Load the train state and (when adam_m / adam_v are non-NULL) the AdamW moments (backend memory), validated
// against the model's table, from train_state.safetensors of the resolved checkpoint directory.
int rlc_checkpoint_load_state(const rlc_model *m, const char *dir, rlc_train_state *st, rlc_f *adam_m,
                              rlc_f *adam_v, char *err, size_t errlen);
// Both of the above from the same resolved checkpoint (resume).
int rlc_checkpoint_load(rlc_model *m, const char *dir, rlc_train_state *st, rlc_f *adam_m, rlc_f *adam_v,
                        char *err, size_t errlen);

// Read an HF config.json (a file, or a directory holding one) into a model config: hidden_size,
// intermediate_size, num_attention_heads, num_key_value_heads (default: heads), head_dim (default:
// hidden/heads), num_hidden_layers, vocab_size, rms_norm_eps, rope_theta (default 10000),
// tie_word_embeddings (default false), max_position_embeddings; qkv_bias from model_type "qwen2" or
// attention_bias; value_head from the rlc-specific "rlc_value_head". Validated with rlc_model_config_check.
int rlc_checkpoint_read_hf_config(const char *path, rlc_model_config *out, char *err, size_t errlen);
// The HF config.json text for a model config (malloc'd).
char *rlc_checkpoint_hf_config_json(const rlc_model_config *c);
