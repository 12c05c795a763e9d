// host/tasks/preference.c: the preference-pair task for DPO/IPO. Problems are those of the mixed
// "arithmetic" task (same prompt format, same strict verifier); the preferred response is the solver's
// answer (solve), the dispreferred one a plausible wrong answer (perturb: one digit changed, off by a small
// amount, a digit dropped/duplicated/swapped), deterministic in the perturbation seed.
#include "tasks_internal.h"

static void pref_generate(const rlc_task_config *cfg, uint64_t seed, uint64_t index, rlc_problem *out) {
    arith_generate_op(cfg, seed, index, "+-*", out);
}

const rlc_task rlc_task_preference = {"preference", 0, pref_generate, arith_score, arith_solve, arith_perturb,
                                      NULL, NULL, NULL};
