// host/tasks/maze.c: the multi-turn "maze" task (sparse, delayed reward; EMPG's setting).
//
// The prompt is the whole grid, cfg->maze_size lines of cfg->maze_size characters, each line ended by '\n':
//   '#' wall, '.' floor, '@' agent, 'G' goal, 'a'/'b' keys, 'A'/'B' the doors they open.
// The grid's edge is an implicit wall (no border is drawn). Each policy turn is one move, exactly one of
// "U" "D" "L" "R" (up = row - 1), followed by '\n' (env_step receives the text without the '\n'). Anything
// else is an invalid move: the turn is used up and nothing moves. Walking into a wall, the edge or a door
// whose key is not held is no move. Stepping on a key picks it up (the key stays held; the cell becomes
// floor); stepping into a door while holding its key opens it (it becomes floor). The episode ends when the
// agent steps on 'G' (reward 1) or after cfg->max_turns turns (reward 0). After every turn that does not end
// the episode, the environment answers with a 14-character observation: the 3x3 neighbourhood as three
// rows separated by spaces (outside the grid shown as '#', the agent as '@'), a space, the keys held ("-"
// if none), '\n'. Example: "#.# .@a ##. -\n".
// Generation: cfg->maze_keys (0..2) key/door pairs. With k pairs the grid is cut by k full walls, each with
// one door; the agent and key 'a' start in the first region, key 'b' (if any) lies in the first or second
// region, the goal in the last region, so every door is necessary. Random interior walls are then added,
// one of the 8 grid symmetries applied, and the maze kept only if BFS over (position, keys held) reaches
// the goal in 2..cfg->max_turns moves. score() replays a response (moves one per line) through the
// environment; solve() returns a BFS shortest move list, one move per line.
// data[] layout: data[0] = size, data[1] = keys, data[2] = start row, data[3] = start col,
// data[4] = shortest solution length. grid[] holds size*size cells, row-major.
// Episode state: state[0] = row, state[1] = col, state[2] = bitmask of keys held; ep->prob.grid is the
// episode's own copy, updated as keys are taken and doors opened.
#include <stdio.h>
#include "rlc/util.h"
#include "tasks_internal.h"

#define MAZE_MIN 3
#define MAZE_MAX 16
#define MAZE_MAX_KEYS 2

static const int DR[4] = {-1, 1, 0, 0}, DC[4] = {0, 0, -1, 1};
static const char MOVE_CH[4] = {'U', 'D', 'L', 'R'};

static int maze_dir(const char *move) {
    if (!move || !move[0] || move[1]) return -1;
    for (int d = 0; d < 4; d++)
        if (move[0] == MOVE_CH[d]) return d;
    return -1;
}

// Where a move from (r, c) with keys `mask` leads on grid g. Returns 0 for no move, 1 for a move (r, c, mask
// updated), 2 for a move onto the goal.
static int maze_try(const unsigned char *g, int S, int *r, int *c, int *mask, int d) {
    int nr = *r + DR[d], nc = *c + DC[d];
    if (nr < 0 || nr >= S || nc < 0 || nc >= S) return 0;
    unsigned char x = g[nr * S + nc];
    if (x == '#') return 0;
    if (x >= 'A' && x < 'A' + MAZE_MAX_KEYS && !(*mask & (1 << (x - 'A')))) return 0;
    if (x >= 'a' && x < 'a' + MAZE_MAX_KEYS) *mask |= 1 << (x - 'a');
    *r = nr;
    *c = nc;
    return x == 'G' ? 2 : 1;
}

// BFS over (cell, keys). Writes the move letters of a shortest path (no separators) to moves (room for
// S*S*4 + 1) and returns its length, or -1 if the goal is unreachable.
static int maze_bfs(const unsigned char *g, int S, int sr, int sc, char *moves) {
    enum { NS = MAZE_MAX * MAZE_MAX * 4 };
    int prev[NS], pdir[NS], queue[NS], head = 0, tail = 0;
    for (int i = 0; i < S * S * 4; i++) prev[i] = -2;
    int s0 = (sr * S + sc) * 4;
    prev[s0] = -1;
    queue[tail++] = s0;
    while (head < tail) {
        int s = queue[head++], cell = s / 4;
        for (int d = 0; d < 4; d++) {
            int r = cell / S, c = cell % S, mask = s % 4;
            int res = maze_try(g, S, &r, &c, &mask, d);
            if (res == 0) continue;
            int t = (r * S + c) * 4 + mask;
            if (prev[t] != -2) continue;
            prev[t] = s;
            pdir[t] = d;
            if (res == 2) { // reconstruct
                int len = 0;
                for (int u = t; prev[u] != -1; u = prev[u]) len++;
                moves[len] = 0;
                int k = len;
                for (int u = t; prev[u] != -1; u = prev[u]) moves[--k] = MOVE_CH[pdir[u]];
                return len;
            }
            queue[tail++] = t;
        }
    }
    return -1;
}

static void maze_render(const unsigned char *g, int S, char *out, size_t cap) {
    size_t n = 0;
    for (int r = 0; r < S && n + (size_t)S + 2 <= cap; r++) {
        memcpy(out + n, g + r * S, (size_t)S);
        n += (size_t)S;
        out[n++] = '\n';
    }
    out[n] = 0;
}

// A random cell of columns [c0, c1] (all rows) that is floor, or -1.
static int maze_pick_floor(rlc_rng_stream *rs, const unsigned char *g, int S, int c0, int c1) {
    for (int t = 0; t < 1000; t++) {
        int r = (int)rlc_rng_next_below(rs, (uint64_t)S), c = (int)rlc_rng_next_range(rs, c0, c1);
        if (g[r * S + c] == '.') return r * S + c;
    }
    return -1;
}

static void maze_generate(const rlc_task_config *cfg, uint64_t seed, uint64_t index, rlc_problem *out) {
    int S = tasks_clampi(cfg->maze_size, MAZE_MIN, MAZE_MAX);
    int K = tasks_clampi(cfg->maze_keys, 0, MAZE_MAX_KEYS);
    int H = cfg->max_turns;
    RLC_CHECK(S >= 2 * K + 1, "maze: maze_size %d is too small for %d key/door pairs (need >= %d)", S, K,
              2 * K + 1);
    RLC_CHECK(H >= 2, "maze: max_turns %d must be >= 2", H);
    int want_eval = tasks_want_eval(cfg, seed);
    rlc_rng_stream rs = rlc_rng_stream_init(seed, index);
    memset(out, 0, sizeof *out);
    out->seed = seed;
    out->index = index;
    unsigned char g[MAZE_MAX * MAZE_MAX], h[MAZE_MAX * MAZE_MAX];
    char moves[MAZE_MAX * MAZE_MAX * 4 + 1];
    for (int tries = 0; tries < RLC_GEN_MAX_TRIES; tries++) {
        memset(g, '.', sizeof g);
        // cut columns c[0] < c[1] in [1, S-2], at least 2 apart, each a full wall with one door
        int cut[MAZE_MAX_KEYS + 1], ok = 0;
        for (int t = 0; t < 100 && !ok; t++) {
            ok = 1;
            for (int i = 0; i < K; i++) {
                cut[i] = (int)rlc_rng_next_range(&rs, 1, S - 2);
                if (i > 0 && cut[i] < cut[i - 1] + 2) ok = 0;
            }
        }
        if (!ok) continue;
        for (int i = 0; i < K; i++) {
            for (int r = 0; r < S; r++) g[r * S + cut[i]] = '#';
            g[(int)rlc_rng_next_below(&rs, (uint64_t)S) * S + cut[i]] = (unsigned char)('A' + i);
        }
        // region i spans columns [lo(i), hi(i)]
        int reg_lo[MAZE_MAX_KEYS + 1], reg_hi[MAZE_MAX_KEYS + 1];
        for (int i = 0; i <= K; i++) {
            reg_lo[i] = i == 0 ? 0 : cut[i - 1] + 1;
            reg_hi[i] = i == K ? S - 1 : cut[i] - 1;
        }
        int agent = maze_pick_floor(&rs, g, S, reg_lo[0], reg_hi[0]);
        if (agent < 0) continue;
        g[agent] = '@';
        for (int i = 0; i < K && ok; i++) {
            int reg = i == 0 ? 0 : (int)rlc_rng_next_below(&rs, (uint64_t)(i + 1)); // key i before door i
            int cell = maze_pick_floor(&rs, g, S, reg_lo[reg], reg_hi[reg]);
            if (cell < 0) ok = 0;
            else g[cell] = (unsigned char)('a' + i);
        }
        int goal = ok ? maze_pick_floor(&rs, g, S, reg_lo[K], reg_hi[K]) : -1;
        if (goal < 0) continue;
        g[goal] = 'G';
        // random interior walls; density varies per maze, and late tries drop them to guarantee progress
        double p = tries < RLC_GEN_MAX_TRIES / 2 ? 0.1 + 0.25 * rlc_rng_next_double(&rs) : 0.0;
        for (int i = 0; i < S * S; i++)
            if (g[i] == '.' && rlc_rng_next_double(&rs) < p) g[i] = '#';
        // one of the 8 symmetries: bit 0 transpose, bit 1 mirror columns, bit 2 mirror rows
        int sym = (int)rlc_rng_next_below(&rs, 8), sr = 0, sc = 0;
        for (int r = 0; r < S; r++)
            for (int c = 0; c < S; c++) {
                int rr = r, cc = c;
                if (sym & 1) {
                    rr = c;
                    cc = r;
                }
                if (sym & 2) cc = S - 1 - cc;
                if (sym & 4) rr = S - 1 - rr;
                h[rr * S + cc] = g[r * S + c];
                if (g[r * S + c] == '@') {
                    sr = rr;
                    sc = cc;
                }
            }
        int len = maze_bfs(h, S, sr, sc, moves);
        if (len < 2 || len > H) continue;
        maze_render(h, S, out->prompt, sizeof out->prompt);
        if (tasks_is_eval_prompt(out->prompt) != want_eval) continue;
        memcpy(out->grid, h, (size_t)(S * S));
        out->data[0] = S;
        out->data[1] = K;
        out->data[2] = sr;
        out->data[3] = sc;
        out->data[4] = len;
        size_t n = 0;
        for (int i = 0; i < len; i++) {
            out->answer[n++] = moves[i];
            out->answer[n++] = '\n';
        }
        out->answer[n] = 0;
        return;
    }
    RLC_FATAL("maze: no solvable %dx%d maze with %d key/door pairs within max_turns=%d; raise task.max_turns", S,
              S, K, H);
}

static void maze_reset(const rlc_task_config *cfg, const rlc_problem *p, rlc_episode *ep) {
    (void)cfg;
    memset(ep, 0, sizeof *ep);
    ep->prob = *p;
    int S = p->data[0];
    ep->state[0] = p->data[2];
    ep->state[1] = p->data[3];
    ep->state[2] = 0;
    ep->prob.grid[ep->state[0] * S + ep->state[1]] = '.'; // the agent is tracked in state, not in the grid
}

static void maze_observe(const rlc_episode *ep, char *obs, size_t cap) {
    int S = ep->prob.data[0], r0 = ep->state[0], c0 = ep->state[1], mask = ep->state[2];
    char t[32];
    int n = 0;
    for (int dr = -1; dr <= 1; dr++) {
        for (int dc = -1; dc <= 1; dc++) {
            int r = r0 + dr, c = c0 + dc;
            char x = (r < 0 || r >= S || c < 0 || c >= S) ? '#' : (char)ep->prob.grid[r * S + c];
            t[n++] = (dr == 0 && dc == 0) ? '@' : x;
        }
        t[n++] = ' ';
    }
    int any = 0;
    for (int k = 0; k < MAZE_MAX_KEYS; k++)
        if (mask & (1 << k)) {
            t[n++] = (char)('a' + k);
            any = 1;
        }
    if (!any) t[n++] = '-';
    t[n++] = '\n';
    t[n] = 0;
    snprintf(obs, cap, "%s", t);
}

static int maze_step(const rlc_task_config *cfg, rlc_episode *ep, const char *move, char *obs, size_t cap) {
    if (cap) obs[0] = 0;
    if (ep->done) return 1;
    int S = ep->prob.data[0];
    ep->turn++;
    int d = maze_dir(move);
    if (d >= 0) {
        int r = ep->state[0], c = ep->state[1], mask = ep->state[2];
        int res = maze_try(ep->prob.grid, S, &r, &c, &mask, d);
        if (res) {
            unsigned char *x = &ep->prob.grid[r * S + c];
            if (*x != 'G') *x = '.'; // a key is taken, a door stays open
            ep->state[0] = r;
            ep->state[1] = c;
            ep->state[2] = mask;
        }
        if (res == 2) {
            ep->done = 1;
            ep->reward = 1.0f;
            return 1;
        }
    }
    if (ep->turn >= cfg->max_turns) {
        ep->done = 1;
        ep->reward = 0.0f;
        return 1;
    }
    maze_observe(ep, obs, cap);
    return 0;
}

// Replay moves (one per line; a last line without '\n' counts too) through the environment.
static float maze_score(const rlc_task_config *cfg, const rlc_problem *p, const char *response) {
    rlc_episode ep;
    maze_reset(cfg, p, &ep);
    char move[RLC_TEXT_MAX], obs[64];
    const char *s = response;
    while (*s && !ep.done) {
        const char *e = strchr(s, '\n');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n >= sizeof move) n = sizeof move - 1;
        memcpy(move, s, n);
        move[n] = 0;
        maze_step(cfg, &ep, move, obs, sizeof obs);
        s = e ? e + 1 : s + strlen(s);
    }
    return ep.done ? ep.reward : 0.0f;
}

static void maze_solve(const rlc_task_config *cfg, const rlc_problem *p, char *out, size_t cap) {
    (void)cfg;
    int S = p->data[0];
    char moves[MAZE_MAX * MAZE_MAX * 4 + 1];
    int len = maze_bfs(p->grid, S, p->data[2], p->data[3], moves);
    size_t n = 0;
    for (int i = 0; i < len && n + 3 <= cap; i++) {
        out[n++] = moves[i];
        out[n++] = '\n';
    }
    if (cap) out[n < cap ? n : cap - 1] = 0;
}

// Wrong but plausible: the expert's moves cut short, with one move changed, or with two adjacent moves
// swapped; each candidate is checked to fail (fallback: the expert's moves without the last one, which never
// reach the goal because a shortest path visits the goal only at its end).
static void maze_perturb(const rlc_task_config *cfg, const rlc_problem *p, uint64_t seed, char *out, size_t cap) {
    char sol[RLC_TEXT_MAX], cand[RLC_TEXT_MAX];
    maze_solve(cfg, p, sol, sizeof sol);
    int L = (int)strlen(sol) / 2; // "X\n" per move
    rlc_rng_stream rs = rlc_rng_stream_init(seed ^ tasks_fnv1a(p->prompt), p->index);
    for (int tries = 0; tries < 32 && L > 0; tries++) {
        memcpy(cand, sol, (size_t)(2 * L) + 1);
        int kind = (int)rlc_rng_next_below(&rs, 3), i = (int)rlc_rng_next_below(&rs, (uint64_t)L);
        if (kind == 0) {
            cand[2 * i] = 0; // keep moves [0, i)
        } else if (kind == 1) {
            char m = MOVE_CH[rlc_rng_next_below(&rs, 4)];
            if (m == cand[2 * i]) continue;
            cand[2 * i] = m;
        } else {
            if (i + 1 >= L || cand[2 * i] == cand[2 * i + 2]) continue;
            char m = cand[2 * i];
            cand[2 * i] = cand[2 * i + 2];
            cand[2 * i + 2] = m;
        }
        if (maze_score(cfg, p, cand) == 0.0f) {
            snprintf(out, cap, "%s", cand);
            return;
        }
    }
    if (L > 0) sol[2 * (L - 1)] = 0;
    snprintf(out, cap, "%s", sol);
}

const rlc_task rlc_task_maze = {"maze", 1, maze_generate, maze_score, maze_solve, maze_perturb, maze_reset,
                                maze_step, NULL};
