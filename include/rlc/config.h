// include/rlc/config.h: the run configuration. JSON (cJSON) with every key validated (type, range) before
// any work starts; unknown keys are errors naming the file, the key path and the nearest valid key;
// `--set a.b=value` overrides; the default config is embedded in the binary (configs/default.json).
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "rlc/model.h"

#define RLC_STR 128

typedef struct rlc_optim_config {
    float lr;            // peak learning rate
    float min_lr;        // floor of the cosine schedule
    char schedule[16];   // "constant" | "cosine" | "linear"
    int warmup_steps;    // linear warm-up steps
    float beta1, beta2, eps;
    float weight_decay;
    float grad_clip;     // global-norm clip; 0 = off
} rlc_optim_config;

typedef struct rlc_task_config {
    char name[32];       // "addition" | "multiplication" | "arithmetic" | "countdown" | "maze" | "preference"
    int digits;          // arithmetic: operand digits (difficulty knob)
    int min_digits;      // arithmetic: smallest operand digits
    int n_numbers;       // countdown: how many numbers
    int max_number;      // countdown: largest given number
    int maze_size;       // maze: grid side
    int maze_keys;       // maze: number of key/door pairs
    int max_turns;       // maze: horizon H (turns)
    int eval_size;       // held-out problems for evaluation
    uint64_t eval_seed;  // seed of the held-out set (disjoint from training seeds)
} rlc_task_config;

typedef struct rlc_sft_config {
    int steps;           // optimizer steps (0 = no SFT phase)
    int batch_size;      // sequences per optimizer step
    int micro_batch_tokens; // token budget per micro-batch
    float teacher_error; // share of demonstrations from the task's imperfect teacher (rlc_task.flawed_solve);
                         // no effect for tasks without one (setting it > 0 for such a task is an error)
    rlc_optim_config optim;
} rlc_sft_config;

typedef struct rlc_rollout_config {
    int group_size;      // G samples per prompt
    int prompts_per_step;
    int max_new_tokens;
    float temperature;
    int top_k;           // 0 = off
    float top_p;         // 1 = off
    char stop[4][16];    // stop strings ("" = unused)
    int n_stop;
    int ignore_eos;      // 1: an EOS token does not end a single-turn response (benchmarks: every sequence runs
                         // to max_new_tokens); the other stop conditions still apply
} rlc_rollout_config;

typedef struct rlc_rl_config {
    char method[24];      // "grpo" | "dapo" | "drgrpo" | "rloo" | "reinforce++" | "reinforce++-baseline" | "ppo"
                          // | "dpo" | "ipo" | "none"
    int steps;            // RL optimizer steps
    char adv_scale[8];    // grpo: "group" | "batch" | "none"
    char loss_agg[32];    // "token-mean" | "seq-mean-token-sum" | "seq-mean-token-mean" | "seq-mean-token-sum-norm"
    char policy_loss[8];  // "ppo" | "gspo" | "cispo"
    float eps_low, eps_high;
    float dual_clip;      // c > 1; 0 = off
    float cispo_eps_max;
    int epochs;           // K passes over the step's data
    int mini_batches;     // optimizer steps per epoch
    int micro_batch_tokens;
    int recompute_old;    // 1: old log-probs from the training forward; 0: reuse the rollout's
    // KL to the reference policy
    float kl_beta;        // 0 = off
    char kl_estimator[8]; // "k1" | "abs" | "k2" | "k3" | "k3+" | "k1+"
    int kl_in_reward;     // 1: PPO-style per-token reward; 0: in the loss
    float kl_target;      // adaptive beta target (0 = fixed beta)
    float kl_horizon;
    float ent_coef;       // entropy bonus
    // TIS rollout correction
    char tis[8];          // "off" | "token" | "seq"
    char tis_mode[12];    // "truncate" | "mask"
    float tis_c, tis_c_min, tis_c_max;
    // PPO / GAE / value head
    float gamma, lam;
    float value_clip;
    float vf_coef;
    // DAPO
    int dynamic_sampling;
    int dyn_max_tries;
    int overlong_buffer;  // tokens; 0 = off
    float overlong_factor;
    int overlong_filter;  // 1: truncated responses get no loss (DAPO's overlong filtering); their scores still count
    // EMPG
    int empg;
    float empg_k, empg_k2, empg_zeta;
    // DPO / IPO
    float dpo_beta;
    // data parallelism
    int zero1;            // 1: ZeRO-1 (optimizer state sharded over ranks; no effect with one rank)
    rlc_optim_config optim;
} rlc_rl_config;

typedef struct rlc_config {
    char source[256];     // file the config came from ("<default>" when embedded)
    char name[RLC_STR];   // run name: runs/<name>/
    char out_dir[RLC_STR];// parent of runs (default "runs")
    char device[8];       // "auto" | "cpu" | "cuda"
    char precision[12];   // "auto" | "mixed" | "bf16-gemm" | "fp32": the CUDA backend's mode (include/rlc/backend.h)
    uint64_t seed;
    int threads;          // OpenMP threads (0 = default)
    rlc_model_config model;
    rlc_task_config task;
    rlc_sft_config sft;
    rlc_rollout_config rollout;
    rlc_rl_config rl;
    int eval_every;       // steps between greedy evaluations (0 = only at the end)
    int ckpt_every;       // steps between checkpoints (0 = only at the end)
    int log_every;
} rlc_config;

// The embedded default config (JSON text).
const char *rlc_config_default_json(void);
// Parse: start from the embedded default, overlay the JSON text of `path` (NULL = default only), then
// apply overrides ("a.b=value", n_over of them). Validates everything; on error returns -1 with a message
// that names the file, the key path and what was expected (and the nearest valid key for unknown keys).
int rlc_config_load(rlc_config *cfg, const char *path, const char *const *overrides, int n_over, char *err,
                    size_t errlen);
// Same from a JSON string (source = label used in messages).
int rlc_config_parse(rlc_config *cfg, const char *json, const char *source, const char *const *overrides,
                     int n_over, char *err, size_t errlen);
// Same, naming where each override came from in messages: labels[i] (e.g. "x.json: rows[2].set: rl.eps_low=9")
// instead of "--set <override>"; labels NULL or labels[i] NULL keeps "--set". (Overrides that a file holds are
// not typed on a command line: their errors must name the file.)
int rlc_config_parse_labeled(rlc_config *cfg, const char *json, const char *source, const char *const *overrides,
                             const char *const *labels, int n_over, char *err, size_t errlen);
// Serialize the full effective config as JSON (malloc'd string).
char *rlc_config_to_json(const rlc_config *cfg);
