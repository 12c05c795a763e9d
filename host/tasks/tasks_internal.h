// host/tasks/tasks_internal.h: helpers shared by the built-in tasks (not a public interface): the
// train/eval split, strict response parsing helpers and the task objects the registry lists.
//
// Train/eval split: every problem belongs to exactly one split, decided by a hash of its prompt text
// (1 in RLC_EVAL_BUCKETS prompts are evaluation problems). generate() with seed == cfg->eval_seed draws
// (by rejection, from the same counter-based stream) until the prompt is in the evaluation split; any other
// seed draws until it is in the training split. So held-out problems never appear in training, whatever
// the seeds, even for small problem spaces where independent draws would collide.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "rlc/config.h"
#include "rlc/rng.h"
#include "rlc/task.h"

#define RLC_EVAL_BUCKETS 8
#define RLC_GEN_MAX_TRIES 4096 // rejection-sampling bound (never reached for the supported sizes)

static inline uint64_t tasks_fnv1a(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

// 1 if the prompt belongs to the evaluation split.
static inline int tasks_is_eval_prompt(const char *prompt) {
    return tasks_fnv1a(prompt) % RLC_EVAL_BUCKETS == 0;
}

// 1 if generate() for this seed must produce evaluation-split problems.
static inline int tasks_want_eval(const rlc_task_config *cfg, uint64_t seed) { return seed == cfg->eval_seed; }

static inline int tasks_is_space(char c) { return c == ' ' || c == '\n'; }

// Copy s without surrounding spaces/newlines into out (cap >= 1). Returns the length, or -1 if too long.
static inline int tasks_strip(const char *s, char *out, size_t cap) {
    while (*s && tasks_is_space(*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && tasks_is_space(s[n - 1])) n--;
    if (n + 1 > cap) return -1;
    memcpy(out, s, n);
    out[n] = 0;
    return (int)n;
}

static inline int tasks_clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

// Arithmetic helpers shared with the preference task (host/tasks/arithmetic.c).
void arith_generate_op(const rlc_task_config *cfg, uint64_t seed, uint64_t index, const char *ops,
                       rlc_problem *out);
float arith_score(const rlc_task_config *cfg, const rlc_problem *p, const char *response);
void arith_solve(const rlc_task_config *cfg, const rlc_problem *p, char *out, size_t cap);
void arith_perturb(const rlc_task_config *cfg, const rlc_problem *p, uint64_t seed, char *out, size_t cap);

extern const rlc_task rlc_task_addition;
extern const rlc_task rlc_task_multiplication;
extern const rlc_task rlc_task_arithmetic;
extern const rlc_task rlc_task_countdown;
extern const rlc_task rlc_task_maze;
extern const rlc_task rlc_task_preference;
