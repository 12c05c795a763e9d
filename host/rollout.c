// host/rollout.c: the rollout engine (see include/rlc/rollout.h): batched KV-cache generation with a shared
// prompt prefill per group, in waves of whole groups sized from the backend's free memory, sampling through
// ops->sample_tokens, stop conditions, multi-turn environments, expert sequences, greedy eval.
#include "rlc/rollout.h"

#include <stdlib.h>
#include <string.h>

#include "rlc/backend.h"
#include "rlc/tokenizer.h"
#include "rlc/util.h"

// ---- sequences ----

static void seq_alloc(rlc_sequence *s, int cap) {
    memset(s, 0, sizeof *s);
    s->tokens = rlc_calloc((size_t)cap, sizeof(int));
    s->mask = rlc_calloc((size_t)cap, 1);
    s->roll_logp = rlc_calloc((size_t)cap, sizeof(float));
    s->roll_ent = rlc_calloc((size_t)cap, sizeof(float));
    s->turn_start = rlc_calloc((size_t)cap, sizeof(int));
    s->turn_end = rlc_calloc((size_t)cap, sizeof(int));
}

void rlc_sequence_free(rlc_sequence *s) {
    free(s->tokens);
    free(s->mask);
    free(s->roll_logp);
    free(s->roll_ent);
    free(s->turn_start);
    free(s->turn_end);
    memset(s, 0, sizeof *s);
}

// Append text (encoded) with the given mask value; returns -1 if it does not fit.
static int seq_append_text(rlc_sequence *s, const char *text, int mask, int cap) {
    int room = cap - s->len;
    if (room < 0) return -1;
    int n = rlc_tok_encode(text, s->tokens + s->len, room);
    if (n < 0) return -1;
    for (int i = 0; i < n; i++) s->mask[s->len + i] = (uint8_t)mask;
    s->len += n;
    return n;
}

static int seq_append_token(rlc_sequence *s, int tok, int mask, int cap) {
    if (s->len >= cap) return -1;
    s->tokens[s->len] = tok;
    s->mask[s->len] = (uint8_t)mask;
    s->len++;
    return 1;
}

static int seq_start(rlc_sequence *s, const char *prompt, int cap) {
    seq_alloc(s, cap);
    if (seq_append_token(s, RLC_TOK_BOS, 0, cap) < 0 || seq_append_text(s, prompt, 0, cap) < 0) return -1;
    s->prompt_len = s->len;
    return 0;
}

int rlc_sequence_from_text(const char *prompt, const char *response, int max_len, rlc_sequence *out) {
    if (seq_start(out, prompt, max_len) < 0) return -1;
    int st = out->len;
    if (seq_append_text(out, response, 1, max_len) < 0 || seq_append_token(out, RLC_TOK_EOS, 1, max_len) < 0)
        return -1;
    out->n_turns = 1;
    out->turn_start[0] = st;
    out->turn_end[0] = out->len;
    out->n_gen = out->len - st;
    snprintf(out->response, sizeof out->response, "%s", response);
    return 0;
}

int rlc_sequence_from_expert(const rlc_task *task, const rlc_task_config *tc, const rlc_problem *p, int max_len,
                             rlc_sequence *out) {
    char sol[RLC_TEXT_MAX];
    task->solve(tc, p, sol, sizeof sol);
    if (!task->multi_turn) return rlc_sequence_from_text(p->prompt, sol, max_len, out);
    if (seq_start(out, p->prompt, max_len) < 0) return -1;
    rlc_episode ep;
    task->env_reset(tc, p, &ep);
    char *save = NULL, obs[RLC_TEXT_MAX];
    for (char *mv = strtok_r(sol, "\n", &save); mv; mv = strtok_r(NULL, "\n", &save)) {
        int st = out->len;
        if (seq_append_text(out, mv, 1, max_len) < 0 || seq_append_text(out, "\n", 1, max_len) < 0) return -1;
        out->turn_start[out->n_turns] = st;
        out->turn_end[out->n_turns] = out->len;
        out->n_turns++;
        out->n_gen += out->len - st;
        int done = task->env_step(tc, &ep, mv, obs, sizeof obs);
        if (done) break;
        if (seq_append_text(out, obs, 0, max_len) < 0) return -1;
    }
    snprintf(out->response, sizeof out->response, "%s", sol);
    out->score = ep.reward;
    return 0;
}

// ---- generation ----

typedef struct {
    int active;
    int turn_tokens;  // tokens in the current policy turn
    int turn_start;
    char turn_text[64];
    rlc_episode ep;
    int next_tok;     // the token drawn from the last forward's logits (for position len), its log-prob, entropy
    float next_lp, next_ent;
} gen_state;

// Draws the next token of sequences seq[0..n) from the logits rows (n, V) (row stride ld; 0: one row for all) in
// backend memory; the draw's key is the sequence's next position, so it does not matter when it is made.
static void draw_next(rlc_model *m, const rlc_f *logits, size_t ld, const int *seq, int n, const rlc_sampling *s,
                      uint64_t seed, int step, const rlc_sequence *out, gen_state *st, rlc_sample_key *keys,
                      int *tok, float *lp, float *ent) {
    for (int r = 0; r < n; r++) {
        const rlc_sequence *sq = &out[seq[r]];
        keys[r] = (rlc_sample_key){sq->prompt_id, sq->sample_id, sq->len};
    }
    m->ops->sample_tokens(tok, lp, ent, logits, ld, n, m->cfg.vocab_size, s, keys, seed, (uint64_t)step);
    for (int r = 0; r < n; r++) {
        gen_state *g = &st[seq[r]];
        g->next_tok = tok[r];
        g->next_lp = lp[r];
        g->next_ent = ent[r];
    }
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return k > 0 && n >= k && memcmp(s + n - k, suffix, k) == 0;
}

// ---- memory: waves of whole groups ----

size_t rlc_rollout_seq_bytes(const rlc_model *m) {
    const rlc_model_config *c = &m->cfg;
    size_t b = rlc_kv_cache_bytes(c, 1, c->max_seq_len, m->act_bytes);
    if (rlc_backend_is_host(m->ops)) {
        b += 2 * (size_t)c->vocab_size * sizeof(float); // per-sequence host scratch, bounded by two logits rows
    } else {
        // the device backend's decode scratch per row (staging copies, split partials): its own figure
        b += m->ops->attention_decode_scratch(c->max_seq_len, c->n_heads, c->n_kv_heads, c->head_dim);
    }
    return b;
}

size_t rlc_rollout_margin(const rlc_model *m, size_t avail) {
    return avail / 16 + (rlc_backend_is_host(m->ops) ? 0 : (size_t)RLC_ROLLOUT_DEVICE_RESERVE_MB << 20);
}

// Bytes a wave of n sequences needs: their own memory and the logits rows the model does not hold yet.
static size_t wave_bytes(const rlc_model *m, int n) {
    size_t rows = n > m->logits_cap ? (size_t)(n - m->logits_cap) : 0;
    return (size_t)n * rlc_rollout_seq_bytes(m) + rows * (size_t)m->cfg.vocab_size * sizeof(rlc_f);
}

int rlc_rollout_wave_groups(const rlc_model *m, int G, int n_prompts, size_t avail) {
    size_t margin = rlc_rollout_margin(m, avail);
    if (avail <= margin || G < 1) return 0;
    size_t room = avail - margin;
    int k = 0;
    while (k < n_prompts && wave_bytes(m, (k + 1) * G) <= room) k++;
    return k;
}

int rlc_rollout_group_fits(const rlc_model *m, int G, char *err, size_t errlen) {
    rlc_mem_info mi;
    m->ops->mem_info(&mi);
    if (rlc_rollout_wave_groups(m, G, 1, mi.free) >= 1) return 0;
    size_t need = wave_bytes(m, G), margin = rlc_rollout_margin(m, mi.free);
    return rlc_errf(err, errlen,
                    "rollout: one group of %d sequences (KV cache of %d tokens each, logits, staging): cannot "
                    "allocate %zu bytes (%zu available, less a safety margin of %zu)",
                    G, m->cfg.max_seq_len, need, mi.free, margin);
}

// One wave: every sequence of n_prompts groups at once, in one KV cache.
static void generate_wave(rlc_model *m, const rlc_rollout_config *rc, const rlc_sampling *s, const rlc_task *task,
                          const rlc_task_config *tc, const rlc_problem *probs, const int *prompt_ids, int n_prompts,
                          int G, uint64_t seed, int step, rlc_sequence *out) {
    int V = m->cfg.vocab_size, cap = m->cfg.max_seq_len, N = n_prompts * G;
    rlc_kv_cache kv;
    if (rlc_kv_cache_init(&kv, m, N, cap) != 0) {
        rlc_mem_info mi;
        m->ops->mem_info(&mi);
        RLC_FATAL("rollout: KV cache for %d sequences of %d tokens: cannot allocate %zu bytes (%zu available)", N,
                  cap, rlc_kv_cache_bytes(&m->cfg, N, cap, m->act_bytes), mi.free);
    }
    gen_state *st = rlc_calloc((size_t)N, sizeof(gen_state));
    int *slots = rlc_malloc((size_t)N * sizeof(int)), *toks = rlc_malloc((size_t)N * sizeof(int));
    // draw_next's scratch: keys and results of up to N rows
    rlc_sample_key *keys = rlc_malloc((size_t)N * sizeof(rlc_sample_key));
    int *drawn_tok = rlc_malloc((size_t)N * sizeof(int));
    float *drawn_lp = rlc_malloc((size_t)N * sizeof(float)), *drawn_ent = rlc_malloc((size_t)N * sizeof(float));

    for (int p = 0; p < n_prompts; p++) {
        int base = p * G;
        for (int g = 0; g < G; g++) {
            rlc_sequence *sq = &out[base + g];
            RLC_CHECK(seq_start(sq, probs[p].prompt, cap) == 0, "rollout: prompt %d does not fit max_seq_len %d",
                      prompt_ids[p], cap);
            sq->prompt_id = prompt_ids[p];
            sq->sample_id = g;
            st[base + g].active = 1;
            st[base + g].turn_start = sq->len;
            if (task->multi_turn) task->env_reset(tc, &probs[p], &st[base + g].ep);
        }
        // prefill the prompt once, share its KV with the group's other samples, and draw the G first tokens from
        // its logits
        const rlc_f *lg = rlc_model_prefill(m, &kv, base, out[base].tokens, out[base].len, NULL);
        for (int g = 1; g < G; g++) rlc_kv_cache_copy_slot(&kv, m, base + g, base);
        for (int g = 0; g < G; g++) slots[g] = base + g;
        draw_next(m, lg, 0, slots, G, s, seed, step, out, st, keys, drawn_tok, drawn_lp, drawn_ent);
    }

    for (;;) {
        int n_dec = 0;
        for (int i = 0; i < N; i++) {
            gen_state *g = &st[i];
            if (!g->active) continue;
            rlc_sequence *sq = &out[i];
            int tok = g->next_tok;
            float lp = g->next_lp, en = g->next_ent;
            int pos = sq->len;
            seq_append_token(sq, tok, 1, cap);
            sq->roll_logp[pos] = lp;
            sq->roll_ent[pos] = en;
            sq->n_gen++;
            g->turn_tokens++;
            int c = rlc_tok_char(tok);
            if (c >= 0 && (int)strlen(g->turn_text) + 1 < (int)sizeof g->turn_text) {
                size_t L = strlen(g->turn_text);
                g->turn_text[L] = (char)c;
                g->turn_text[L + 1] = 0;
            }
            if (!task->multi_turn) {
                // single turn: stop on EOS (unless ignored), stop strings, max new tokens, or a full sequence
                int stop = tok == RLC_TOK_EOS && !rc->ignore_eos;
                for (int k = 0; k < rc->n_stop && !stop; k++) stop = ends_with(g->turn_text, rc->stop[k]);
                if (!stop && (g->turn_tokens >= rc->max_new_tokens || sq->len >= cap)) {
                    stop = 1;
                    sq->truncated = 1;
                }
                if (stop) {
                    g->active = 0;
                    sq->n_turns = 1;
                    sq->turn_start[0] = g->turn_start;
                    sq->turn_end[0] = sq->len;
                    snprintf(sq->response, sizeof sq->response, "%s", g->turn_text);
                    continue;
                }
            } else {
                // multi-turn: a turn ends with '\n' (or is cut at max_new_tokens); the environment answers
                int end_turn = c == '\n' || tok == RLC_TOK_EOS || g->turn_tokens >= rc->max_new_tokens;
                if (end_turn) {
                    char move[64];
                    snprintf(move, sizeof move, "%s", g->turn_text);
                    size_t L = strlen(move);
                    if (L && move[L - 1] == '\n') move[L - 1] = 0;
                    sq->turn_start[sq->n_turns] = g->turn_start;
                    sq->turn_end[sq->n_turns] = sq->len;
                    sq->n_turns++;
                    size_t rl = strlen(sq->response);
                    snprintf(sq->response + rl, sizeof sq->response - rl, "%s\n", move);
                    char obs[RLC_TEXT_MAX];
                    int done = task->env_step(tc, &g->ep, move, obs, sizeof obs);
                    g->turn_tokens = 0;
                    g->turn_text[0] = 0;
                    if (done) {
                        g->active = 0;
                        sq->score = g->ep.reward;
                        continue;
                    }
                    // feed the sampled token plus the observation as one prefill; keep the last logits
                    int *feed = rlc_malloc((size_t)(RLC_TEXT_MAX + 2) * sizeof(int));
                    feed[0] = tok;
                    int no = rlc_tok_encode(obs, feed + 1, RLC_TEXT_MAX);
                    RLC_CHECK(no >= 0, "rollout: observation of task %s is not encodable", task->name);
                    if (sq->len + no >= cap) { // no room for the observation and another move
                        g->active = 0;
                        sq->truncated = 1;
                        sq->score = 0;
                        free(feed);
                        continue;
                    }
                    for (int k = 0; k < no; k++) seq_append_token(sq, feed[1 + k], 0, cap);
                    const rlc_f *lg = rlc_model_prefill(m, &kv, i, feed, no + 1, NULL);
                    draw_next(m, lg, 0, &i, 1, s, seed, step, out, st, keys, drawn_tok, drawn_lp, drawn_ent);
                    g->turn_start = sq->len;
                    free(feed);
                    continue;
                }
                if (sq->len >= cap) {
                    g->active = 0;
                    sq->truncated = 1;
                    sq->score = 0;
                    continue;
                }
            }
            slots[n_dec] = i;
            toks[n_dec] = tok;
            n_dec++;
        }
        if (n_dec == 0) {
            int any = 0;
            for (int i = 0; i < N; i++) any |= st[i].active;
            if (!any) break;
            continue; // only environment turns happened this round
        }
        const rlc_f *lg = rlc_model_decode(m, &kv, slots, toks, n_dec, NULL);
        draw_next(m, lg, (size_t)V, slots, n_dec, s, seed, step, out, st, keys, drawn_tok, drawn_lp, drawn_ent);
    }
    if (!task->multi_turn)
        for (int i = 0; i < N; i++) out[i].score = task->score(tc, &probs[i / G], out[i].response);
    free(st);
    free(slots);
    free(toks);
    free(keys);
    free(drawn_tok);
    free(drawn_lp);
    free(drawn_ent);
    rlc_kv_cache_free(&kv, m);
}

int rlc_rollout_generate(rlc_model *m, const rlc_rollout_config *rc, const rlc_sampling *s, const rlc_task *task,
                         const rlc_task_config *tc, const rlc_problem *probs, const int *prompt_ids, int n_prompts,
                         int G, uint64_t seed, int step, rlc_sequence *out) {
    if (n_prompts <= 0) return 0;
    rlc_mem_info mi;
    m->ops->mem_info(&mi);
    int per_wave = rlc_rollout_wave_groups(m, G, n_prompts, mi.free);
    if (per_wave < 1) {
        char err[512];
        rlc_rollout_group_fits(m, G, err, sizeof err);
        RLC_FATAL("%s", err);
    }
    int waves = 0;
    for (int p0 = 0; p0 < n_prompts; p0 += per_wave, waves++) {
        int np = n_prompts - p0 < per_wave ? n_prompts - p0 : per_wave;
        generate_wave(m, rc, s, task, tc, probs + p0, prompt_ids + p0, np, G, seed, step, out + (size_t)p0 * G);
    }
    return waves;
}

double rlc_rollout_eval_sum(rlc_model *m, const rlc_rollout_config *rc, const rlc_task *task,
                            const rlc_task_config *tc, int lo, int hi, int batch) {
    if (batch < 1) batch = 1;
    rlc_sampling greedy = {.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .greedy = 1};
    double total = 0;
    rlc_problem *probs = rlc_malloc((size_t)batch * sizeof(rlc_problem));
    int *ids = rlc_malloc((size_t)batch * sizeof(int));
    rlc_sequence *seqs = rlc_calloc((size_t)batch, sizeof(rlc_sequence));
    for (int start = lo; start < hi; start += batch) {
        int nb = hi - start < batch ? hi - start : batch;
        for (int i = 0; i < nb; i++) {
            task->generate(tc, tc->eval_seed, (uint64_t)(start + i), &probs[i]);
            ids[i] = start + i;
        }
        rlc_rollout_generate(m, rc, &greedy, task, tc, probs, ids, nb, 1, tc->eval_seed, 0, seqs);
        for (int i = 0; i < nb; i++) {
            total += seqs[i].score;
            rlc_sequence_free(&seqs[i]);
        }
    }
    free(probs);
    free(ids);
    free(seqs);
    return total;
}

double rlc_rollout_eval(rlc_model *m, const rlc_rollout_config *rc, const rlc_task *task, const rlc_task_config *tc,
                        int n, int batch) {
    return n > 0 ? rlc_rollout_eval_sum(m, rc, task, tc, 0, n, batch) / n : 0.0;
}
