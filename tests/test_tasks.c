// tests/test_tasks.c: the built-in tasks. For every task and >= 200 (seed, index) pairs: generation is
// deterministic and encodable, the verifier accepts the solver's answer and rejects perturbed and malformed
// responses, and held-out problems never appear in training. Hand-built countdown expressions check the
// parser and its integer semantics; a hand-built maze checks walls, doors, keys, invalid moves, the horizon
// and the observation text; generated mazes are solved through env_step, need their doors, and mostly
// defeat random walks. Prints the longest prompt+answer per task (to size max_seq_len).
#include <stdio.h>
#include <string.h>
#include "rlc/rng.h"
#include "rlc/task.h"
#include "rlc/tokenizer.h"
#include "test_util.h"

#define NSEEDS 300

static rlc_task_config default_cfg(const char *name) {
    rlc_task_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "%s", name);
    c.digits = 3;
    c.min_digits = 1;
    c.n_numbers = 4;
    c.max_number = 25;
    c.maze_size = 6;
    c.maze_keys = 1;
    c.max_turns = 20;
    c.eval_size = 64;
    c.eval_seed = 987654321; // configs/default.json
    return c;
}

static int encodable(const char *s) {
    static int ids[4 * RLC_TEXT_MAX];
    return rlc_tok_encode(s, ids, 4 * RLC_TEXT_MAX) >= 0;
}

static int same_problem(const rlc_problem *a, const rlc_problem *b) {
    return a->seed == b->seed && a->index == b->index && strcmp(a->prompt, b->prompt) == 0 &&
           strcmp(a->answer, b->answer) == 0 && memcmp(a->data, b->data, sizeof a->data) == 0 &&
           memcmp(a->grid, b->grid, sizeof a->grid) == 0;
}

// Expert sequence length in characters: prompt + moves + observations (multi-turn) or prompt + answer.
static int expert_chars(const rlc_task *t, const rlc_task_config *cfg, const rlc_problem *p) {
    char sol[RLC_TEXT_MAX], obs[RLC_TEXT_MAX];
    t->solve(cfg, p, sol, sizeof sol);
    int n = (int)strlen(p->prompt) + (int)strlen(sol);
    if (!t->multi_turn) return n;
    rlc_episode ep;
    t->env_reset(cfg, p, &ep);
    for (char *s = sol; *s;) {
        char *e = strchr(s, '\n');
        char mv[8] = {0};
        memcpy(mv, s, e ? (size_t)(e - s) < 7 ? (size_t)(e - s) : 7 : 1);
        if (t->env_step(cfg, &ep, mv, obs, sizeof obs)) break;
        n += (int)strlen(obs);
        s = e ? e + 1 : s + strlen(s);
    }
    return n;
}

// Checks common to every task.
static void check_task(const char *name, rlc_task_config cfg) {
    const rlc_task *t = rlc_task_find(name);
    CHECK(t != NULL, "task %s not found", name);
    if (!t) return;
    CHECK(strcmp(t->name, name) == 0, "name %s", t->name);
    CHECK((t->env_reset != NULL) == t->multi_turn && (t->env_step != NULL) == t->multi_turn, "%s env hooks", name);
    int fails = 0, max_chars = 0, max_prompt = 0;
    for (int s = 0; s < NSEEDS; s++) {
        uint64_t seed = 1 + (uint64_t)s * 7919, index = (uint64_t)s * 31;
        rlc_problem p, q;
        t->generate(&cfg, seed, index, &p);
        t->generate(&cfg, seed, index, &q);
        if (!same_problem(&p, &q)) {
            fails++;
            CHECK(0, "%s: generate not deterministic (seed %llu)", name, (unsigned long long)seed);
        }
        CHECK(encodable(p.prompt) && encodable(p.answer), "%s: unencodable problem \"%s\"", name, p.prompt);
        CHECK(strlen(p.prompt) > 0 && strlen(p.answer) > 0, "%s: empty prompt/answer", name);
        char sol[RLC_TEXT_MAX], bad[RLC_TEXT_MAX], bad2[RLC_TEXT_MAX], tmp[2 * RLC_TEXT_MAX + 8];
        t->solve(&cfg, &p, sol, sizeof sol);
        CHECK(strcmp(sol, p.answer) == 0, "%s: solve \"%s\" != answer \"%s\"", name, sol, p.answer);
        if (t->score(&cfg, &p, sol) != 1.0f) {
            fails++;
            CHECK(0, "%s: solver scored 0 on \"%s\" -> \"%s\"", name, p.prompt, sol);
        }
        t->perturb(&cfg, &p, 5 + (uint64_t)s, bad, sizeof bad);
        t->perturb(&cfg, &p, 5 + (uint64_t)s, bad2, sizeof bad2);
        CHECK(strcmp(bad, bad2) == 0, "%s: perturb not deterministic", name);
        CHECK(encodable(bad), "%s: perturb unencodable", name);
        if (t->score(&cfg, &p, bad) != 0.0f) {
            fails++;
            CHECK(0, "%s: perturbed \"%s\" scored 1 on \"%s\"", name, bad, p.prompt);
        }
        // malformed responses
        static const char *garbage[] = {"", " ", "\n", "abc", "?", "=", "~~~~~~~~~~~~~~~~"};
        for (size_t g = 0; g < sizeof garbage / sizeof garbage[0]; g++)
            CHECK(t->score(&cfg, &p, garbage[g]) == 0.0f, "%s: garbage \"%s\" scored", name, garbage[g]);
        if (!t->multi_turn) {
            snprintf(tmp, sizeof tmp, "%sx", sol);
            CHECK(t->score(&cfg, &p, tmp) == 0.0f, "%s: trailing junk \"%s\" scored", name, tmp);
            snprintf(tmp, sizeof tmp, "x%s", sol);
            CHECK(t->score(&cfg, &p, tmp) == 0.0f, "%s: leading junk \"%s\" scored", name, tmp);
            snprintf(tmp, sizeof tmp, "%s %s", sol, sol);
            CHECK(t->score(&cfg, &p, tmp) == 0.0f, "%s: repeated answer \"%s\" scored", name, tmp);
            snprintf(tmp, sizeof tmp, "%s%s", sol, sol);
            CHECK(t->score(&cfg, &p, tmp) == 0.0f, "%s: doubled answer \"%s\" scored", name, tmp);
            snprintf(tmp, sizeof tmp, "%s=%s", sol, sol);
            CHECK(t->score(&cfg, &p, tmp) == 0.0f, "%s: \"%s\" scored", name, tmp);
            snprintf(tmp, sizeof tmp, " %s\n", sol); // surrounding whitespace is allowed (documented)
            CHECK(t->score(&cfg, &p, tmp) == 1.0f, "%s: surrounding whitespace rejected", name);
        } else {
            snprintf(tmp, sizeof tmp, "%s", sol); // moves with a trailing space are invalid moves
            for (char *c = tmp; *c; c++)
                if (*c == '\n') *c = ' ';
            CHECK(t->score(&cfg, &p, tmp) == 0.0f, "%s: moves without newlines scored", name);
        }
        int c = expert_chars(t, &cfg, &p);
        if (c > max_chars) max_chars = c;
        if ((int)strlen(p.prompt) > max_prompt) max_prompt = (int)strlen(p.prompt);
    }
    // held-out problems: deterministic, and disjoint from training problems of other seeds
    enum { NE = 400, NT = 4000 };
    static char eval_prompts[NE][RLC_TEXT_MAX];
    for (int i = 0; i < NE; i++) {
        rlc_problem p;
        t->generate(&cfg, cfg.eval_seed, (uint64_t)i, &p);
        memcpy(eval_prompts[i], p.prompt, RLC_TEXT_MAX);
        char sol[RLC_TEXT_MAX];
        t->solve(&cfg, &p, sol, sizeof sol);
        CHECK(t->score(&cfg, &p, sol) == 1.0f, "%s: eval problem %d unsolved", name, i);
    }
    int overlap = 0, distinct_train = 0;
    char first[RLC_TEXT_MAX] = "";
    for (int i = 0; i < NT; i++) {
        rlc_problem p;
        uint64_t seed = (uint64_t)(i % 4); // seeds 0..3: whatever the trainer uses, it is not eval_seed
        t->generate(&cfg, seed, (uint64_t)i, &p);
        if (i == 0) snprintf(first, sizeof first, "%s", p.prompt);
        else distinct_train += strcmp(first, p.prompt) != 0;
        for (int j = 0; j < NE; j++) overlap += strcmp(eval_prompts[j], p.prompt) == 0;
    }
    CHECK(overlap == 0, "%s: %d training problems are held-out problems", name, overlap);
    CHECK(distinct_train > NT / 2, "%s: training problems barely vary", name);
    printf("%-15s max prompt %3d chars, max expert sequence (prompt+answer%s) %3d chars%s\n", name, max_prompt,
           t->multi_turn ? "+observations" : "", max_chars, fails ? "  [FAILURES]" : "");
}

// ---- arithmetic details ----
static void check_arithmetic(void) {
    rlc_task_config cfg = default_cfg("addition");
    const rlc_task *add = rlc_task_find("addition"), *mul = rlc_task_find("multiplication"),
                   *mix = rlc_task_find("arithmetic");
    rlc_problem p;
    int seen_digits[10] = {0}, ops[3] = {0};
    for (int i = 0; i < 500; i++) {
        add->generate(&cfg, 7, (uint64_t)i, &p);
        long a, b;
        char op, eq;
        CHECK(sscanf(p.prompt, "%ld%c%ld%c", &a, &op, &b, &eq) == 4 && op == '+' && eq == '=', "addition prompt \"%s\"", p.prompt);
        char want[32];
        snprintf(want, sizeof want, "%ld", a + b);
        CHECK(strcmp(p.answer, want) == 0, "addition answer %s want %s", p.answer, want);
        char as[32];
        snprintf(as, sizeof as, "%ld", a);
        seen_digits[strlen(as)]++;
        mul->generate(&cfg, 7, (uint64_t)i, &p);
        CHECK(sscanf(p.prompt, "%ld%c%ld", &a, &op, &b) == 3 && op == '*', "mul prompt \"%s\"", p.prompt);
        snprintf(want, sizeof want, "%ld", a * b);
        CHECK(strcmp(p.answer, want) == 0, "mul answer %s want %s", p.answer, want);
        mix->generate(&cfg, 7, (uint64_t)i, &p);
        CHECK(sscanf(p.prompt, "%ld%c%ld", &a, &op, &b) == 3, "mixed prompt \"%s\"", p.prompt);
        ops[op == '+' ? 0 : op == '-' ? 1 : 2]++;
        long v = op == '+' ? a + b : op == '-' ? a - b : a * b;
        CHECK(v >= 0, "mixed result negative: %s", p.prompt);
    }
    CHECK(seen_digits[1] > 0 && seen_digits[2] > 0 && seen_digits[3] > 0 && seen_digits[4] == 0,
          "operand digits 1..3: %d %d %d %d", seen_digits[1], seen_digits[2], seen_digits[3], seen_digits[4]);
    CHECK(ops[0] > 100 && ops[1] > 100 && ops[2] > 100, "mixed ops %d %d %d", ops[0], ops[1], ops[2]);
    // strict parsing on a known problem
    add->generate(&cfg, 3, 0, &p);
    p.data[1] = 12;
    p.data[2] = 345;
    CHECK(add->score(&cfg, &p, "357") == 1.0f, "357");
    CHECK(add->score(&cfg, &p, "0357") == 0.0f, "leading zero");
    CHECK(add->score(&cfg, &p, "+357") == 0.0f, "plus sign");
    CHECK(add->score(&cfg, &p, "-357") == 0.0f, "wrong sign");
    CHECK(add->score(&cfg, &p, "35 7") == 0.0f, "inner space");
    CHECK(add->score(&cfg, &p, "357.0") == 0.0f, "decimal point");
    CHECK(add->score(&cfg, &p, "356") == 0.0f, "off by one");
    CHECK(add->score(&cfg, &p, "357\n") == 1.0f, "trailing newline");
    CHECK(add->score(&cfg, &p, "99999999999999999999999") == 0.0f, "overlong number");
    p.data[1] = 0;
    p.data[2] = 0;
    CHECK(add->score(&cfg, &p, "0") == 1.0f && add->score(&cfg, &p, "-0") == 0.0f && add->score(&cfg, &p, "00") == 0.0f, "zero");
    // the difficulty knob: digits = min_digits = 5 gives exactly 5-digit operands
    cfg.digits = cfg.min_digits = 5;
    for (int i = 0; i < 50; i++) {
        add->generate(&cfg, 9, (uint64_t)i, &p);
        long a, b;
        char op;
        CHECK(sscanf(p.prompt, "%ld%c%ld", &a, &op, &b) == 3 && a >= 10000 && a <= 99999 && b >= 10000 && b <= 99999,
              "5-digit operands: %s", p.prompt);
    }
    // the preference task: same verifier, solver answer preferred, perturbation rejected
    const rlc_task *pref = rlc_task_find("preference");
    cfg = default_cfg("preference");
    int diff_len = 0;
    for (int i = 0; i < 300; i++) {
        pref->generate(&cfg, 11, (uint64_t)i, &p);
        char good[64], bad[64];
        pref->solve(&cfg, &p, good, sizeof good);
        pref->perturb(&cfg, &p, (uint64_t)i, bad, sizeof bad);
        CHECK(pref->score(&cfg, &p, good) == 1.0f && pref->score(&cfg, &p, bad) == 0.0f, "pair %s %s", good, bad);
        CHECK(bad[0] >= '0' && bad[0] <= '9' && (bad[0] != '0' || !bad[1]), "rejected answer well-formed: %s", bad);
        diff_len += strlen(good) != strlen(bad);
    }
    CHECK(diff_len < 200, "perturbations mostly keep the length (%d of 300 differ)", diff_len);
}

// ---- countdown details ----
static rlc_problem cd_problem(int target, int n, const int *nums) {
    rlc_problem p;
    memset(&p, 0, sizeof p);
    p.data[0] = n;
    p.data[1] = target;
    for (int i = 0; i < n; i++) p.data[2 + i] = nums[i];
    return p;
}

static void check_countdown(void) {
    rlc_task_config cfg = default_cfg("countdown");
    const rlc_task *t = rlc_task_find("countdown");
    int n4[4] = {3, 7, 25, 50};
    rlc_problem p = cd_problem(175, 4, n4);
    CHECK(t->score(&cfg, &p, "7*25") == 1.0f, "7*25");
    CHECK(t->score(&cfg, &p, "25*7") == 1.0f, "25*7");
    CHECK(t->score(&cfg, &p, "3*50+25") == 1.0f, "3*50+25");
    CHECK(t->score(&cfg, &p, "(3*50)+25") == 1.0f, "(3*50)+25");
    CHECK(t->score(&cfg, &p, "((7))*(25)") == 1.0f, "redundant parentheses");
    CHECK(t->score(&cfg, &p, "(50+25)*7/3") == 1.0f, "525/3 = 175 exact");
    CHECK(t->score(&cfg, &p, "7 * 25") == 0.0f, "inner spaces");
    CHECK(t->score(&cfg, &p, "7*25=175") == 0.0f, "trailing '='");
    CHECK(t->score(&cfg, &p, "(25-3)*7+21") == 0.0f, "21 is not given");
    CHECK(t->score(&cfg, &p, "7*25*1") == 0.0f, "1 is not given");
    CHECK(t->score(&cfg, &p, "7*25+3-3") == 0.0f, "3 used twice");
    CHECK(t->score(&cfg, &p, "07*25") == 0.0f, "leading zero");
    CHECK(t->score(&cfg, &p, "(7*25") == 0.0f, "unbalanced (");
    CHECK(t->score(&cfg, &p, "7*25)") == 0.0f, "unbalanced )");
    CHECK(t->score(&cfg, &p, "7**25") == 0.0f, "double operator");
    CHECK(t->score(&cfg, &p, "-7*-25") == 0.0f, "unary minus");
    CHECK(t->score(&cfg, &p, "()") == 0.0f, "empty parentheses");
    CHECK(t->score(&cfg, &p, "7*25+") == 0.0f, "dangling operator");
    CHECK(t->score(&cfg, &p, "50*3") == 0.0f, "wrong value");
    // integer semantics: divisions must be exact even where rational arithmetic would reach the target
    int n3[3] = {6, 4, 3};
    p = cd_problem(8, 3, n3);
    CHECK(t->score(&cfg, &p, "6*4/3") == 1.0f, "(6*4)/3 = 8");
    CHECK(t->score(&cfg, &p, "6/3*4") == 1.0f, "(6/3)*4 = 8");
    CHECK(t->score(&cfg, &p, "4/3*6") == 0.0f, "4/3 is not exact");
    CHECK(t->score(&cfg, &p, "6/(4-4)") == 0.0f, "4 used twice and division by zero");
    int nt[2] = {7, 2};
    p = cd_problem(3, 2, nt);
    CHECK(t->score(&cfg, &p, "7/2") == 0.0f, "7/2 must not truncate to 3");
    CHECK(t->score(&cfg, &p, "7-2") == 0.0f, "5 != 3");
    int nz[3] = {5, 5, 2};
    p = cd_problem(2, 3, nz);
    CHECK(t->score(&cfg, &p, "2/(5-5)") == 0.0f, "division by zero");
    CHECK(t->score(&cfg, &p, "5-5+2") == 1.0f, "a repeated number may be used as often as it is given");
    CHECK(t->score(&cfg, &p, "(2-5)*(2-5)") == 0.0f, "2 used twice");
    // negative intermediates are allowed
    int nn[3] = {3, 10, 4};
    p = cd_problem(2, 3, nn);
    CHECK(t->score(&cfg, &p, "(3-10)+(4+4)") == 0.0f, "4 twice");
    CHECK(t->score(&cfg, &p, "3-10+4") == 0.0f, "-3 != 2");
    int nm[3] = {3, 10, 5};
    p = cd_problem(2, 3, nm);
    CHECK(t->score(&cfg, &p, "(3-5)*(3-10)") == 0.0f, "3 twice");
    CHECK(t->score(&cfg, &p, "(3-5)/(5-10)") == 0.0f, "5 twice");
    CHECK(t->score(&cfg, &p, "10/(3-5)+5") == 0.0f, "-5+5 = 0 != 2");
    int nq[4] = {3, 10, 5, 2};
    p = cd_problem(7, 4, nq);
    CHECK(t->score(&cfg, &p, "10/(3-5)*2+5*3") == 0.0f, "3 twice");
    CHECK(t->score(&cfg, &p, "(3-5)*5+10+2") == 0.0f, "-10+12 = 2 != 7");
    CHECK(t->score(&cfg, &p, "(3-10)*(2-5)/3") == 0.0f, "3 twice");
    CHECK(t->score(&cfg, &p, "(3-10)*(2-5)-10") == 0.0f, "10 twice");
    CHECK(t->score(&cfg, &p, "(2-10)*(3-5)-10") == 0.0f, "10 twice");
    CHECK(t->score(&cfg, &p, "2*(3-10)+5") == 0.0f, "-9");
    CHECK(t->score(&cfg, &p, "(2-3)*5+10+2") == 0.0f, "2 twice");
    CHECK(t->score(&cfg, &p, "(2-3)*(5-10)+2") == 0.0f, "2 twice");
    CHECK(t->score(&cfg, &p, "10-(2-5)*(3-3)") == 0.0f, "3 twice");
    CHECK(t->score(&cfg, &p, "(2-5)*(3-10)/3") == 0.0f, "3 twice");
    CHECK(t->score(&cfg, &p, "10+(2-5)") == 1.0f, "10+(2-5) = 7 with a negative intermediate");
    // generated problems: numbers in range, target reachable and in 1..999, solver succeeds (also for 5 and 6
    // numbers), and the solver's expression uses only given numbers (checked by the verifier)
    for (int nn_ = 3; nn_ <= 6; nn_++) {
        cfg.n_numbers = nn_;
        cfg.max_number = nn_ <= 4 ? 25 : 50;
        int ok = 0;
        for (int i = 0; i < (nn_ <= 4 ? 300 : 60); i++) {
            t->generate(&cfg, 21, (uint64_t)i, &p);
            int good = p.data[0] == nn_ && p.data[1] >= 1 && p.data[1] <= 999;
            for (int k = 0; k < nn_; k++) good &= p.data[2 + k] >= 1 && p.data[2 + k] <= cfg.max_number && p.data[2 + k] != p.data[1];
            char sol[RLC_TEXT_MAX];
            t->solve(&cfg, &p, sol, sizeof sol);
            good &= t->score(&cfg, &p, sol) == 1.0f;
            ok += good;
            if (!good) CHECK(0, "countdown n=%d problem \"%s\" solution \"%s\"", nn_, p.prompt, sol);
        }
        (void)ok;
    }
}

// ---- maze details ----
static rlc_problem maze_problem(const char *rows, int S, int keys, int max_turns_unused) {
    (void)max_turns_unused;
    rlc_problem p;
    memset(&p, 0, sizeof p);
    size_t n = 0;
    for (int r = 0; r < S; r++) {
        for (int c = 0; c < S; c++) {
            char x = rows[r * S + c];
            p.grid[r * S + c] = (unsigned char)x;
            p.prompt[n++] = x;
            if (x == '@') {
                p.data[2] = r;
                p.data[3] = c;
            }
        }
        p.prompt[n++] = '\n';
    }
    p.data[0] = S;
    p.data[1] = keys;
    return p;
}

static void check_maze(void) {
    rlc_task_config cfg = default_cfg("maze");
    const rlc_task *t = rlc_task_find("maze");
    CHECK(t->multi_turn == 1, "maze is multi-turn");
    // hand-built 4x4: the goal is only reachable through door A, whose key lies in the bottom-left corner
    const char *rows = "@.#G"
                       "#.A."
                       "a..#"
                       "####";
    rlc_problem p = maze_problem(rows, 4, 1, 0);
    char sol[RLC_TEXT_MAX], obs[RLC_TEXT_MAX];
    t->solve(&cfg, &p, sol, sizeof sol);
    CHECK(strlen(sol) == 18, "shortest path has 9 moves (hand-counted): \"%s\"", sol);
    CHECK(t->score(&cfg, &p, sol) == 1.0f, "hand maze solved");
    rlc_episode ep;
    t->env_reset(&cfg, &p, &ep);
    struct {
        const char *move, *obs;
        int done;
    } script[] = {
        {"U", "### #@. ##. -\n", 0},  // edge: no move
        {"L", "### #@. ##. -\n", 0},  // edge
        {"D", "### #@. ##. -\n", 0},  // wall
        {"X", "### #@. ##. -\n", 0},  // invalid move: wasted turn
        {"RR", "### #@. ##. -\n", 0}, // invalid move
        {"r", "### #@. ##. -\n", 0},  // invalid move (lower case)
        {"R", "### .@# #.A -\n", 0},
        {"R", "### .@# #.A -\n", 0},  // wall
        {"D", "..# #@A a.. -\n", 0},
        {"R", "..# #@A a.. -\n", 0},  // door without the key
        {"D", "#.A a@. ### -\n", 0},
        {"L", "##. #@. ### a\n", 0},  // key picked up
        {"R", "#.A .@. ### a\n", 0},  // the key cell is now floor
        {"U", "..# #@A ... a\n", 0},
        {"R", ".#G .@. ..# a\n", 0},  // door opens
        {"L", "..# #@. ... a\n", 0},  // and stays open
        {"R", ".#G .@. ..# a\n", 0},
        {"R", "#G# .@# .## a\n", 0},
        {"U", "", 1},                 // goal
    };
    int n = (int)(sizeof script / sizeof script[0]);
    for (int i = 0; i < n; i++) {
        int done = t->env_step(&cfg, &ep, script[i].move, obs, sizeof obs);
        CHECK(done == script[i].done, "step %d (%s): done %d", i, script[i].move, done);
        if (!script[i].done) CHECK(strcmp(obs, script[i].obs) == 0, "step %d (%s): obs \"%s\" want \"%s\"", i, script[i].move, obs, script[i].obs);
    }
    CHECK(ep.done && ep.reward == 1.0f && ep.turn == n, "goal reached at turn %d reward %g", ep.turn, ep.reward);
    // the horizon: the same script with max_turns = 18 ends one move short, reward 0
    cfg.max_turns = n - 1;
    t->env_reset(&cfg, &p, &ep);
    int done = 0, i = 0;
    for (; i < n && !done; i++) done = t->env_step(&cfg, &ep, script[i].move, obs, sizeof obs);
    CHECK(done && i == n - 1 && ep.reward == 0.0f, "horizon: done %d after %d turns, reward %g", done, i, ep.reward);
    CHECK(t->score(&cfg, &p, sol) == 1.0f, "9 moves still fit in %d turns", cfg.max_turns);
    cfg.max_turns = 8;
    CHECK(t->score(&cfg, &p, sol) == 0.0f, "9 moves do not fit in 8 turns");
    cfg.max_turns = 20;
    // without the key the door never opens
    const char *nokey = "@.#G"
                        "#.A."
                        "...#"
                        "####";
    rlc_problem q = maze_problem(nokey, 4, 1, 0);
    t->solve(&cfg, &q, sol, sizeof sol);
    CHECK(sol[0] == 0, "unsolvable maze gives an empty move list");
    CHECK(t->score(&cfg, &q, "R\nD\nR\nR\nU\n") == 0.0f, "locked door blocks");

    // generated mazes: size, counts, start, expert through env_step, door necessity, random walks
    int rw_success = 0, rw_total = 0, lens_sum = 0;
    for (int keys = 0; keys <= 2; keys++) {
        cfg.maze_keys = keys;
        cfg.maze_size = keys == 2 ? 7 : 6;
        cfg.max_turns = keys == 2 ? 30 : 20;
        for (int s = 0; s < 200; s++) {
            rlc_problem m;
            t->generate(&cfg, 100 + (uint64_t)s, (uint64_t)s, &m);
            int S = cfg.maze_size, cnt[128] = {0};
            for (int k = 0; k < S * S; k++) cnt[m.grid[k]]++;
            CHECK(cnt['@'] == 1 && cnt['G'] == 1, "one agent and one goal");
            CHECK(cnt['a'] == (keys >= 1) && cnt['A'] == (keys >= 1) && cnt['b'] == (keys >= 2) && cnt['B'] == (keys >= 2),
                  "keys/doors for %d pairs", keys);
            CHECK(cnt['#'] + cnt['.'] + cnt['@'] + cnt['G'] + cnt['a'] + cnt['b'] + cnt['A'] + cnt['B'] == S * S,
                  "only grid characters");
            CHECK((int)strlen(m.prompt) == S * (S + 1), "prompt is the grid");
            // expert through the environment
            t->solve(&cfg, &m, sol, sizeof sol);
            int L = (int)strlen(sol) / 2;
            lens_sum += L;
            CHECK(L >= 2 && L <= cfg.max_turns, "solution length %d", L);
            t->env_reset(&cfg, &m, &ep);
            int d = 0, turns = 0;
            for (int k = 0; k < L && !d; k++) {
                char mv[2] = {sol[2 * k], 0};
                d = t->env_step(&cfg, &ep, mv, obs, sizeof obs);
                turns++;
                if (!d) {
                    size_t ol = strlen(obs); // "xxx xxx xxx K\n" with K = held keys or "-"
                    const char *kf = ol >= 14 ? obs + 12 : "";
                    int kf_ok = !strcmp(kf, "-\n") || !strcmp(kf, "a\n") || !strcmp(kf, "b\n") || !strcmp(kf, "ab\n");
                    CHECK(kf_ok && obs[5] == '@' && obs[3] == ' ' && obs[7] == ' ' && obs[11] == ' ',
                          "observation \"%s\"", obs);
                }
            }
            CHECK(d && ep.reward == 1.0f && turns == L, "expert reaches the goal (keys %d seed %d)", keys, s);
            // every door is necessary: walling it up makes the maze unsolvable
            for (int k = 0; k < keys; k++) {
                rlc_problem w = m;
                for (int c = 0; c < S * S; c++)
                    if (w.grid[c] == 'A' + k) w.grid[c] = '#';
                t->solve(&cfg, &w, sol, sizeof sol);
                CHECK(sol[0] == 0, "door %c is not necessary in maze %d", 'A' + k, s);
            }
            // a uniform random walk (through env_step) for max_turns turns
            rlc_rng_stream rs = rlc_rng_stream_init(777, (uint64_t)(s + 1000 * keys));
            t->env_reset(&cfg, &m, &ep);
            d = 0;
            int steps = 0;
            while (!d) {
                char mv[2] = {"UDLR"[rlc_rng_next_below(&rs, 4)], 0};
                d = t->env_step(&cfg, &ep, mv, obs, sizeof obs);
                steps++;
            }
            CHECK(steps <= cfg.max_turns, "episode longer than max_turns");
            CHECK(ep.reward == 1.0f || steps == cfg.max_turns, "a failed episode runs to the horizon");
            rw_success += ep.reward == 1.0f;
            rw_total++;
        }
    }
    double rate = (double)rw_success / rw_total;
    printf("maze: random-walk success %.3f over %d episodes, mean expert length %.1f\n", rate, rw_total,
           (double)lens_sum / rw_total);
    CHECK(rate < 0.25, "random walks succeed too often: %.3f", rate);
}

// The imperfect teacher of the arithmetic tasks drops the carry out of a sum's leading column and nothing else:
// its answer equals the expert's exactly when there is no such carry, and the verifier rejects it otherwise.
static void check_flawed_teacher(void) {
    rlc_task_config cfg = default_cfg("addition");
    cfg.digits = 3;
    cfg.min_digits = 1;
    const rlc_task *add = rlc_task_find("addition"), *mix = rlc_task_find("arithmetic");
    CHECK(add->flawed_solve && mix->flawed_solve, "addition and arithmetic define an imperfect teacher");
    CHECK(!rlc_task_find("multiplication")->flawed_solve && !rlc_task_find("countdown")->flawed_solve &&
              !rlc_task_find("maze")->flawed_solve,
          "multiplication, countdown and maze define none");
    rlc_problem p;
    char bad[64], good[64];
    int n_carry = 0, n_same = 0;
    for (int i = 0; i < 2000; i++) {
        const rlc_task *t = i % 2 ? mix : add;
        t->generate(&cfg, 11, (uint64_t)i, &p);
        t->flawed_solve(&cfg, &p, bad, sizeof bad);
        t->solve(&cfg, &p, good, sizeof good);
        long a = p.data[1], b = p.data[2], w = 10;
        while (w <= a || w <= b) w *= 10;
        int carry_out = p.data[0] == '+' && a + b >= w;
        if (carry_out) {
            char want[64];
            snprintf(want, sizeof want, "%ld", (a + b) % w);
            CHECK(strcmp(bad, want) == 0, "%s: flawed %s, want %s", p.prompt, bad, want);
            CHECK(t->score(&cfg, &p, bad) == 0.0f, "%s: the flawed answer %s must score 0", p.prompt, bad);
            n_carry++;
        } else {
            CHECK(strcmp(bad, good) == 0, "%s: without a carry out the teacher is right (%s vs %s)", p.prompt, bad,
                  good);
            n_same++;
        }
    }
    CHECK(n_carry > 200 && n_same > 200, "both cases exercised (%d carry-outs, %d others)", n_carry, n_same);
    cfg.digits = 2;
    cfg.min_digits = 2;
    rlc_problem q = {.prompt = "57+68=", .data = {'+', 57, 68}};
    add->flawed_solve(&cfg, &q, bad, sizeof bad);
    CHECK(strcmp(bad, "25") == 0, "57+68 -> %s, want 25", bad);
}

int main(void) {
    check_flawed_teacher();
    CHECK(rlc_task_find("nope") == NULL && rlc_task_find(NULL) == NULL, "unknown task");
    CHECK(strstr(rlc_task_names(), "countdown") != NULL, "names list");
    const char *names[] = {"addition", "multiplication", "arithmetic", "countdown", "maze", "preference"};
    for (int i = 0; i < 6; i++) check_task(names[i], default_cfg(names[i]));
    check_arithmetic();
    check_countdown();
    check_maze();
    // sizes for max_seq_len at a few settings (printed for the lead)
    rlc_task_config c = default_cfg("addition");
    c.digits = 5;
    check_task("addition", c);
    c.digits = 4;
    check_task("multiplication", c);
    c = default_cfg("countdown");
    c.n_numbers = 5;
    c.max_number = 50;
    check_task("countdown", c);
    c = default_cfg("maze");
    c.maze_size = 5;
    c.max_turns = 16;
    check_task("maze", c);
    c.maze_size = 8;
    c.maze_keys = 2;
    c.max_turns = 40;
    check_task("maze", c);
    return test_finish("test_tasks");
}
