// host/tasks/arithmetic.c: the arithmetic tasks "addition", "multiplication" and "arithmetic" (mixed + - *).
//
// Prompt "A+B=" (or "A*B=", "A-B="), answer the exact decimal result, e.g. "12+345=" -> "357".
// Operands: each has d digits, d uniform in [cfg->min_digits, cfg->digits] (clamped to 1..9 so products fit
// in 64 bits); a d-digit operand is uniform in [10^(d-1), 10^d - 1] (0..9 for d = 1). In the mixed task the
// operator is uniform over + - *, and for '-' the larger operand comes first, so results are never negative.
// Verifier (strict): the response, with surrounding spaces/newlines removed, must be the canonical decimal
// of the result: digits only, an optional leading '-' only for a negative result, no leading zeros ("0"
// itself is fine, "-0" is not), no other characters. 1 if equal, else 0.
// data[] layout: data[0] = operator char, data[1] = A, data[2] = B.
#include <stdio.h>
#include <stdlib.h>
#include "tasks_internal.h"

#define ARITH_MAX_DIGITS 9

static int64_t pow10i(int d) {
    int64_t v = 1;
    while (d-- > 0) v *= 10;
    return v;
}

static int64_t draw_operand(rlc_rng_stream *rs, int lo_d, int hi_d) {
    int d = (int)rlc_rng_next_range(rs, lo_d, hi_d);
    if (d == 1) return rlc_rng_next_range(rs, 0, 9);
    return rlc_rng_next_range(rs, pow10i(d - 1), pow10i(d) - 1);
}

static int64_t arith_value(const rlc_problem *p) {
    int64_t a = p->data[1], b = p->data[2];
    switch (p->data[0]) {
    case '+': return a + b;
    case '-': return a - b;
    default: return a * b;
    }
}

void arith_generate_op(const rlc_task_config *cfg, uint64_t seed, uint64_t index, const char *ops,
                       rlc_problem *out) {
    int hi_d = tasks_clampi(cfg->digits, 1, ARITH_MAX_DIGITS);
    int lo_d = tasks_clampi(cfg->min_digits, 1, hi_d);
    int want_eval = tasks_want_eval(cfg, seed);
    int nops = (int)strlen(ops);
    rlc_rng_stream rs = rlc_rng_stream_init(seed, index);
    memset(out, 0, sizeof *out);
    out->seed = seed;
    out->index = index;
    for (int tries = 0; tries < RLC_GEN_MAX_TRIES; tries++) {
        char op = ops[rlc_rng_next_below(&rs, (uint64_t)nops)];
        int64_t a = draw_operand(&rs, lo_d, hi_d), b = draw_operand(&rs, lo_d, hi_d);
        if (op == '-' && a < b) {
            int64_t t = a;
            a = b;
            b = t;
        }
        snprintf(out->prompt, sizeof out->prompt, "%lld%c%lld=", (long long)a, op, (long long)b);
        out->data[0] = op;
        out->data[1] = (int)a;
        out->data[2] = (int)b;
        if (tasks_is_eval_prompt(out->prompt) == want_eval) break;
    }
    snprintf(out->answer, sizeof out->answer, "%lld", (long long)arith_value(out));
}

// Parse a canonical decimal integer (see the header comment). Returns 0 on success.
static int parse_canonical_int(const char *s, int64_t *v) {
    int neg = 0;
    if (*s == '-') {
        neg = 1;
        s++;
    }
    size_t n = strlen(s);
    if (n == 0 || n > 18) return -1;
    if (s[0] == '0' && (n > 1 || neg)) return -1; // leading zero or "-0"
    int64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        x = x * 10 + (s[i] - '0');
    }
    *v = neg ? -x : x;
    return 0;
}

float arith_score(const rlc_task_config *cfg, const rlc_problem *p, const char *response) {
    (void)cfg;
    char buf[64];
    int64_t v;
    if (tasks_strip(response, buf, sizeof buf) < 0) return 0.0f;
    if (parse_canonical_int(buf, &v) != 0) return 0.0f;
    return v == arith_value(p) ? 1.0f : 0.0f;
}

void arith_solve(const rlc_task_config *cfg, const rlc_problem *p, char *out, size_t cap) {
    (void)cfg;
    snprintf(out, cap, "%lld", (long long)arith_value(p));
}

// The imperfect teacher's mistake (sft.teacher_error): it drops the carry out of the leading column of a sum,
// keeping only as many digits as the longer operand ("57+68=" -> "25"). A systematic, learnable rule rather than
// noise, which is why greedy decoding copies it and a verifier-driven RL phase can unlearn it. Differences and
// products are answered exactly.
static void arith_flawed_solve(const rlc_task_config *cfg, const rlc_problem *p, char *out, size_t cap) {
    (void)cfg;
    int64_t v = arith_value(p);
    if (p->data[0] == '+') {
        int64_t a = p->data[1], b = p->data[2], w = 10;
        while (w <= a || w <= b) w *= 10;
        v %= w;
    }
    snprintf(out, cap, "%lld", (long long)v);
}

// Wrong but plausible: one digit changed, off by a small amount, a digit dropped or duplicated, or two
// adjacent digits swapped. Always well-formed and always different from the correct value.
void arith_perturb(const rlc_task_config *cfg, const rlc_problem *p, uint64_t seed, char *out, size_t cap) {
    int64_t right = arith_value(p);
    rlc_rng_stream rs = rlc_rng_stream_init(seed ^ tasks_fnv1a(p->prompt), p->index);
    char s[40], t[40];
    for (int tries = 0; tries < 64; tries++) {
        snprintf(s, sizeof s, "%lld", (long long)(right < 0 ? -right : right));
        int n = (int)strlen(s), kind = (int)rlc_rng_next_below(&rs, 5);
        int64_t cand;
        if (kind == 0) { // change one digit
            int i = (int)rlc_rng_next_below(&rs, (uint64_t)n);
            s[i] = (char)('0' + rlc_rng_next_below(&rs, 10));
            if (n > 1 && s[0] == '0') continue;
            cand = strtoll(s, NULL, 10);
        } else if (kind == 1) { // off by 1..10
            int64_t d = rlc_rng_next_range(&rs, 1, 10);
            cand = (right < 0 ? -right : right) + (rlc_rng_next_below(&rs, 2) ? d : -d);
            if (cand < 0) cand = -cand;
        } else if (kind == 2 && n > 1) { // drop a digit
            int i = (int)rlc_rng_next_below(&rs, (uint64_t)n);
            memmove(s + i, s + i + 1, (size_t)(n - i));
            if (s[0] == '0' && s[1]) continue;
            cand = strtoll(s, NULL, 10);
        } else if (kind == 3 && n < 18) { // duplicate a digit
            int i = (int)rlc_rng_next_below(&rs, (uint64_t)n);
            memcpy(t, s, (size_t)i + 1);
            memcpy(t + i + 1, s + i, (size_t)(n - i) + 1);
            if (t[0] == '0') continue;
            cand = strtoll(t, NULL, 10);
        } else if (kind == 4 && n > 1) { // swap two adjacent digits
            int i = (int)rlc_rng_next_below(&rs, (uint64_t)(n - 1));
            char c = s[i];
            s[i] = s[i + 1];
            s[i + 1] = c;
            if (s[0] == '0') continue;
            cand = strtoll(s, NULL, 10);
        } else {
            continue;
        }
        if (right < 0) cand = -cand;
        if (cand == right) continue;
        snprintf(out, cap, "%lld", (long long)cand);
        return;
    }
    snprintf(out, cap, "%lld", (long long)(right + 1)); // only reached by astronomically unlucky draws
    (void)cfg;
}

static void gen_add(const rlc_task_config *c, uint64_t s, uint64_t i, rlc_problem *o) { arith_generate_op(c, s, i, "+", o); }
static void gen_mul(const rlc_task_config *c, uint64_t s, uint64_t i, rlc_problem *o) { arith_generate_op(c, s, i, "*", o); }
static void gen_mix(const rlc_task_config *c, uint64_t s, uint64_t i, rlc_problem *o) { arith_generate_op(c, s, i, "+-*", o); }

const rlc_task rlc_task_addition = {"addition", 0, gen_add, arith_score, arith_solve, arith_perturb, NULL, NULL,
                                    arith_flawed_solve};
const rlc_task rlc_task_multiplication = {"multiplication", 0, gen_mul, arith_score, arith_solve, arith_perturb,
                                          NULL, NULL, NULL};
const rlc_task rlc_task_arithmetic = {"arithmetic", 0, gen_mix, arith_score, arith_solve, arith_perturb, NULL, NULL,
                                      arith_flawed_solve};
