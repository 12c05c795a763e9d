// host/tasks/countdown.c: the "countdown" task: reach a target from given numbers with + - * / and
// parentheses.
//
// Prompt "nums 3 7 25 50 target 175:" (cfg->n_numbers numbers, each in 1..cfg->max_number); the answer is an
// expression such as "(25-3)*7+21". Reachability is by construction: the generator combines all the numbers
// in a random binary tree (only positive intermediate values, exact divisions), and the target (1..999, not
// itself one of the numbers) is that tree's value.
// Verifier (strict): after removing surrounding spaces/newlines, the response must be an expression over
// integer literals (decimal, no leading zeros, no sign), the binary operators + - * /, and parentheses,
// with no spaces or other characters. Usual precedence, left-associative. Every literal must be one of the
// given numbers, each given number used at most once (a repeated number may be used as often as it is
// given). Semantics are integer: every intermediate value is an integer, a division must be exact (nonzero
// divisor, zero remainder) or the response scores 0; negative intermediates are allowed; |values| must
// stay below 10^15. Score 1 iff the value equals the target.
// Solver: iterative-deepening exhaustive search (fewest numbers first) over pairs of the multiset combined
// by + * larger-smaller larger/smaller; complete for the positive-intermediate expressions the generator
// builds, so it always succeeds on generated problems. Output uses minimal parentheses.
// data[] layout: data[0] = n, data[1] = target, data[2..2+n) = the numbers (prompt order).
#include <stdio.h>
#include <stdlib.h>
#include "rlc/util.h"
#include "tasks_internal.h"

#define CD_MAX_N 8
#define CD_TARGET_MAX 999
#define CD_EXPR 256
#define CD_VALUE_LIMIT 1000000000000000LL // 10^15

// An expression under construction: value, text, precedence (1: + -, 2: * /, 3: literal or parenthesized).
typedef struct {
    int64_t v;
    int prec;
    char s[CD_EXPR];
} cd_item;

static int cd_combine(const cd_item *a, const cd_item *b, char op, cd_item *out) {
    int64_t v;
    switch (op) {
    case '+': v = a->v + b->v; break;
    case '-': v = a->v - b->v; break;
    case '*': v = a->v * b->v; break;
    default:
        if (b->v == 0 || a->v % b->v != 0) return -1;
        v = a->v / b->v;
    }
    int prec = (op == '+' || op == '-') ? 1 : 2;
    // the left operand needs parentheses if it binds looser; the right one also when equal precedence and
    // the operator is not associative in that position (a-(b+c), a/(b*c)); a+(b+c) and a*(b*c) print flat.
    int lp = a->prec < prec, rp = b->prec < prec || (b->prec == prec && (op == '-' || op == '/'));
    int n = snprintf(out->s, sizeof out->s, "%s%s%s%c%s%s%s", lp ? "(" : "", a->s, lp ? ")" : "", op,
                     rp ? "(" : "", b->s, rp ? ")" : "");
    if (n < 0 || n >= (int)sizeof out->s) return -1;
    out->v = v;
    out->prec = prec;
    return 0;
}

static void cd_leaf(int64_t v, cd_item *out) {
    out->v = v;
    out->prec = 3;
    snprintf(out->s, sizeof out->s, "%lld", (long long)v);
}

// Depth-limited search: combine two items of the multiset (n items) at most `depth` times; success when an
// item's value equals the target after exactly a combination (a bare literal is checked by the caller).
static int cd_search(cd_item *items, int n, int depth, int64_t target, char *out, size_t cap) {
    if (depth == 0 || n < 2) return 0;
    cd_item saved_i, saved_j, c;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            // order the pair so that '-' and '/' have the larger operand on the left
            const cd_item *hi = items[i].v >= items[j].v ? &items[i] : &items[j];
            const cd_item *lo = hi == &items[i] ? &items[j] : &items[i];
            static const char ops[4] = {'+', '*', '-', '/'};
            for (int k = 0; k < 4; k++) {
                char op = ops[k];
                if (op == '-' && hi->v == lo->v) continue; // zero is never useful with positive numbers
                if (op == '/' && (lo->v == 1 || hi->v % lo->v != 0)) continue;
                if (op == '*' && (lo->v == 1)) continue;   // x*1 == x: nothing new
                if (cd_combine(hi, lo, op, &c) != 0 || c.v > CD_VALUE_LIMIT) continue;
                if (c.v == target) {
                    snprintf(out, cap, "%s", c.s);
                    return 1;
                }
                if (depth == 1) continue;
                // replace i by c and j by the last item, recurse, restore
                saved_i = items[i];
                saved_j = items[j];
                items[i] = c;
                items[j] = items[n - 1];
                int ok = cd_search(items, n - 1, depth - 1, target, out, cap);
                items[n - 1] = items[j];
                items[j] = saved_j;
                items[i] = saved_i;
                if (ok) return 1;
            }
        }
    return 0;
}

// Find an expression for target from nums; returns 0 on success (out filled), -1 if none exists.
static int cd_find(const int *nums, int n, int64_t target, char *out, size_t cap) {
    cd_item items[CD_MAX_N];
    for (int i = 0; i < n; i++) {
        if (nums[i] == target) {
            snprintf(out, cap, "%d", nums[i]);
            return 0;
        }
        cd_leaf(nums[i], &items[i]);
    }
    for (int depth = 1; depth < n; depth++)
        if (cd_search(items, n, depth, target, out, cap)) return 0;
    return -1;
}

static void cd_generate(const rlc_task_config *cfg, uint64_t seed, uint64_t index, rlc_problem *out) {
    int n = tasks_clampi(cfg->n_numbers, 2, CD_MAX_N);
    int maxn = tasks_clampi(cfg->max_number, 2, 10000);
    int want_eval = tasks_want_eval(cfg, seed);
    rlc_rng_stream rs = rlc_rng_stream_init(seed, index);
    memset(out, 0, sizeof *out);
    out->seed = seed;
    out->index = index;
    for (int tries = 0; tries < RLC_GEN_MAX_TRIES; tries++) {
        int nums[CD_MAX_N];
        cd_item items[CD_MAX_N], c;
        for (int i = 0; i < n; i++) {
            nums[i] = (int)rlc_rng_next_range(&rs, 1, maxn);
            cd_leaf(nums[i], &items[i]);
        }
        // random binary tree over all the numbers, positive intermediates only
        int m = n, ok = 1;
        while (m > 1 && ok) {
            int i = (int)rlc_rng_next_below(&rs, (uint64_t)m), j = (int)rlc_rng_next_below(&rs, (uint64_t)(m - 1));
            if (j >= i) j++;
            const cd_item *hi = items[i].v >= items[j].v ? &items[i] : &items[j];
            const cd_item *lo = hi == &items[i] ? &items[j] : &items[i];
            char cand[4];
            int nc = 0;
            cand[nc++] = '+';
            if (hi->v * lo->v <= 10 * CD_TARGET_MAX) cand[nc++] = '*';
            if (hi->v > lo->v) cand[nc++] = '-';
            if (lo->v > 1 && hi->v % lo->v == 0) cand[nc++] = '/';
            char op = cand[rlc_rng_next_below(&rs, (uint64_t)nc)];
            ok = cd_combine(hi, lo, op, &c) == 0;
            items[i] = c;
            items[j] = items[m - 1];
            m--;
        }
        int64_t target = items[0].v;
        if (!ok || target < 1 || target > CD_TARGET_MAX) continue;
        int trivial = 0;
        for (int i = 0; i < n; i++) trivial |= nums[i] == target;
        if (trivial) continue;
        int len = snprintf(out->prompt, sizeof out->prompt, "nums");
        for (int i = 0; i < n; i++) len += snprintf(out->prompt + len, sizeof out->prompt - (size_t)len, " %d", nums[i]);
        snprintf(out->prompt + len, sizeof out->prompt - (size_t)len, " target %lld:", (long long)target);
        out->data[0] = n;
        out->data[1] = (int)target;
        for (int i = 0; i < n; i++) out->data[2 + i] = nums[i];
        if (tasks_is_eval_prompt(out->prompt) != want_eval) continue;
        RLC_CHECK(cd_find(nums, n, target, out->answer, sizeof out->answer) == 0,
                  "countdown: solver found no expression for \"%s\" (generator bug)", out->prompt);
        return;
    }
    RLC_FATAL("countdown: could not generate a problem with n_numbers=%d max_number=%d", n, maxn);
}

// ---- verifier: recursive-descent parser with integer semantics ----

typedef struct {
    const char *s;
    int pos;
    int n;
    int nums[CD_MAX_N];
    int used[CD_MAX_N];
    int err;
    int depth;
} cd_parser;

static int64_t cd_expr(cd_parser *P);

static int64_t cd_factor(cd_parser *P) {
    if (P->err) return 0;
    char c = P->s[P->pos];
    if (c == '(') {
        if (++P->depth > 64) {
            P->err = 1;
            return 0;
        }
        P->pos++;
        int64_t v = cd_expr(P);
        if (P->s[P->pos] != ')') P->err = 1;
        P->pos++;
        P->depth--;
        return v;
    }
    if (c < '0' || c > '9') {
        P->err = 1;
        return 0;
    }
    if (c == '0') { // no literal zero and no leading zeros: 0 is never a given number
        P->err = 1;
        return 0;
    }
    int64_t v = 0;
    int digits = 0;
    while (P->s[P->pos] >= '0' && P->s[P->pos] <= '9') {
        if (++digits > 9) {
            P->err = 1;
            return 0;
        }
        v = v * 10 + (P->s[P->pos++] - '0');
    }
    for (int i = 0; i < P->n; i++)
        if (!P->used[i] && P->nums[i] == v) {
            P->used[i] = 1;
            return v;
        }
    P->err = 1; // not a given number, or already used
    return 0;
}

static int64_t cd_check(cd_parser *P, int64_t v) {
    if (v >= CD_VALUE_LIMIT || v <= -CD_VALUE_LIMIT) P->err = 1;
    return v;
}

static int64_t cd_term(cd_parser *P) {
    int64_t v = cd_factor(P);
    while (!P->err && (P->s[P->pos] == '*' || P->s[P->pos] == '/')) {
        char op = P->s[P->pos++];
        int64_t r = cd_factor(P);
        if (P->err) return 0;
        if (op == '*') {
            v = cd_check(P, v * r);
        } else {
            if (r == 0 || v % r != 0) {
                P->err = 1;
                return 0;
            }
            v /= r;
        }
    }
    return v;
}

static int64_t cd_expr(cd_parser *P) {
    int64_t v = cd_term(P);
    while (!P->err && (P->s[P->pos] == '+' || P->s[P->pos] == '-')) {
        char op = P->s[P->pos++];
        int64_t r = cd_term(P);
        if (P->err) return 0;
        v = cd_check(P, op == '+' ? v + r : v - r);
    }
    return v;
}

static float cd_score(const rlc_task_config *cfg, const rlc_problem *p, const char *response) {
    (void)cfg;
    char buf[RLC_TEXT_MAX];
    if (tasks_strip(response, buf, sizeof buf) <= 0) return 0.0f;
    cd_parser P;
    memset(&P, 0, sizeof P);
    P.s = buf;
    P.n = tasks_clampi(p->data[0], 0, CD_MAX_N);
    for (int i = 0; i < P.n; i++) P.nums[i] = p->data[2 + i];
    int64_t v = cd_expr(&P);
    if (P.err || buf[P.pos] != 0) return 0.0f;
    return v == p->data[1] ? 1.0f : 0.0f;
}

static void cd_solve(const rlc_task_config *cfg, const rlc_problem *p, char *out, size_t cap) {
    (void)cfg;
    int n = tasks_clampi(p->data[0], 0, CD_MAX_N);
    if (cd_find(p->data + 2, n, p->data[1], out, cap) != 0) snprintf(out, cap, "%s", "");
}

// Wrong but plausible: the solution with one operator replaced or one literal changed by +-1;
// each candidate is checked to score 0 (fallback: "0", never a valid expression).
static void cd_perturb(const rlc_task_config *cfg, const rlc_problem *p, uint64_t seed, char *out, size_t cap) {
    char sol[RLC_TEXT_MAX], cand[RLC_TEXT_MAX];
    cd_solve(cfg, p, sol, sizeof sol);
    int L = (int)strlen(sol);
    rlc_rng_stream rs = rlc_rng_stream_init(seed ^ tasks_fnv1a(p->prompt), p->index);
    static const char ops[4] = {'+', '-', '*', '/'};
    for (int tries = 0; tries < 64 && L > 0; tries++) {
        memcpy(cand, sol, (size_t)L + 1);
        int i = (int)rlc_rng_next_below(&rs, (uint64_t)L);
        char c = cand[i];
        if (c == '+' || c == '-' || c == '*' || c == '/') {
            char o = ops[rlc_rng_next_below(&rs, 4)];
            if (o == c) continue;
            cand[i] = o;
        } else if (c >= '0' && c <= '9') {
            int st = i, en = i; // the literal containing position i
            while (st > 0 && cand[st - 1] >= '0' && cand[st - 1] <= '9') st--;
            while (cand[en + 1] >= '0' && cand[en + 1] <= '9') en++;
            long v = strtol(cand + st, NULL, 10) + (rlc_rng_next_below(&rs, 2) ? 1 : -1);
            if (v < 1) continue;
            char num[16];
            int nl = snprintf(num, sizeof num, "%ld", v);
            if (L - (en - st + 1) + nl + 1 > (int)sizeof cand) continue;
            memmove(cand + st + nl, sol + en + 1, (size_t)(L - en));
            memcpy(cand + st, num, (size_t)nl);
        } else {
            continue;
        }
        if (cd_score(cfg, p, cand) == 0.0f) {
            snprintf(out, cap, "%s", cand);
            return;
        }
    }
    snprintf(out, cap, "0");
}

const rlc_task rlc_task_countdown = {"countdown", 0, cd_generate, cd_score, cd_solve, cd_perturb, NULL, NULL, NULL};
