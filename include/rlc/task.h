// include/rlc/task.h: tasks with verifiable rewards. Each task has a seeded generator (problem i of seed s
// is a pure function of (s, i)), an exact verifier (the reward), an expert solver (SFT demonstrations), and
// held-out evaluation problems (drawn from cfg->eval_seed, a seed stream disjoint from training).
// Multi-turn tasks (the maze) run as an environment: the policy emits one move per turn, ended by '\n', and
// the environment answers with an observation that is appended to the same sequence (masked out of losses).
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "rlc/config.h"

#define RLC_TEXT_MAX 1024

typedef struct rlc_problem {
    uint64_t seed, index;
    char prompt[RLC_TEXT_MAX];  // what the policy sees first (for the maze: the initial observation)
    char answer[RLC_TEXT_MAX];  // the expert's response (single-turn: the full response text, no EOS)
    int data[64];               // task-specific facts for verification (numbers, target, ...)
    unsigned char grid[256];    // maze layout (size*size cells), unused otherwise
} rlc_problem;

typedef struct rlc_episode {
    rlc_problem prob;
    int turn;          // policy turns taken
    int done;          // 1 when the episode is over
    float reward;      // set when done
    int state[16];     // task-specific state (position, keys held, ...)
} rlc_episode;

typedef struct rlc_task {
    const char *name;
    int multi_turn; // 1: env_reset / env_step drive the episode
    // Problem `index` of stream `seed`.
    void (*generate)(const rlc_task_config *cfg, uint64_t seed, uint64_t index, rlc_problem *out);
    // Single-turn reward of a response (text after the prompt, no EOS): 1 correct, 0 otherwise (tasks may
    // document partial scores).
    float (*score)(const rlc_task_config *cfg, const rlc_problem *p, const char *response);
    // Expert response for SFT (single-turn: same as p->answer; multi-turn: the moves, one per line).
    void (*solve)(const rlc_task_config *cfg, const rlc_problem *p, char *out, size_t cap);
    // A wrong-but-plausible response (DPO rejected answers, verifier tests). Deterministic in seed.
    void (*perturb)(const rlc_task_config *cfg, const rlc_problem *p, uint64_t seed, char *out, size_t cap);
    // Multi-turn only (NULL otherwise). env_reset fills ep from p. env_step applies one move (the policy's
    // turn text without the '\n'), writes the observation text to obs, returns 1 when the episode is over
    // (goal reached or cfg->max_turns reached; ep->reward set), 0 otherwise.
    void (*env_reset)(const rlc_task_config *cfg, const rlc_problem *p, rlc_episode *ep);
    int (*env_step)(const rlc_task_config *cfg, rlc_episode *ep, const char *move, char *obs, size_t cap);
    // Single-turn, optional (NULL: none): the response of an imperfect teacher who makes the task's
    // characteristic, systematic mistake (arithmetic: drops the carry out of a sum's leading column). A share
    // sft.teacher_error of the SFT demonstrations come from it: the setting in which RL from a verifier has
    // something to correct that imitation alone cannot.
    void (*flawed_solve)(const rlc_task_config *cfg, const rlc_problem *p, char *out, size_t cap);
} rlc_task;

// Look up a task by name ("addition", "multiplication", "arithmetic", "countdown", "maze", "preference");
// NULL if unknown.
const rlc_task *rlc_task_find(const char *name);
// Comma-separated list of task names (for error messages).
const char *rlc_task_names(void);
