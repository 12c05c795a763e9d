// tests/test_rollout.c: the rollout engine: sampling (greedy, top-k, top-p, temperature statistics), a
// sample's tokens independent of which other sequences share its batch, rollout log-probs equal to the
// training forward's, stop conditions, multi-turn sequences (observation tokens masked, turn boundaries), and
// generation in waves under a memory cap (the same tokens as one wave; a clear error when no group fits).
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rlc/batch.h"
#include "rlc/rng.h"
#include "rlc/rollout.h"
#include "rlc/tokenizer.h"
#include "test_util.h"

static rlc_task_config task_cfg(const char *name) {
    rlc_task_config tc;
    memset(&tc, 0, sizeof tc);
    snprintf(tc.name, sizeof tc.name, "%s", name);
    tc.digits = 2;
    tc.min_digits = 1;
    tc.n_numbers = 3;
    tc.max_number = 20;
    tc.maze_size = 5;
    tc.maze_keys = 1;
    tc.max_turns = 12;
    tc.eval_size = 8;
    tc.eval_seed = 777;
    return tc;
}

static void test_sampling(void) {
    rlc_f z[6] = {0.5f, 2.0f, -1.0f, 1.9f, 0.0f, -3.0f};
    rlc_sampling g = {.temperature = 1, .top_p = 1, .greedy = 1};
    float lp, en;
    CHECK(rlc_sample_token(z, 6, &g, 0.9f, &lp, &en) == 1, "greedy picks the argmax");
    // reference softmax at tau 0.7
    double tau = 0.7, mx = 2.0, s = 0, p[6];
    for (int j = 0; j < 6; j++) s += exp((z[j] - mx) / tau);
    double H = 0;
    for (int j = 0; j < 6; j++) {
        p[j] = exp((z[j] - mx) / tau) / s;
        H -= p[j] * log(p[j]);
    }
    rlc_sampling t = {.temperature = 0.7f, .top_p = 1};
    int counts[6] = {0};
    int n = 20000;
    for (int i = 0; i < n; i++) {
        float u = (i + 0.5f) / n;
        int tok = rlc_sample_token(z, 6, &t, u, &lp, &en);
        counts[tok]++;
        if (i == 0) {
            CHECK_CLOSE(lp, log(p[tok]), 1e-5, 1e-5, "sampled token log-prob");
            CHECK_CLOSE(en, H, 1e-5, 1e-5, "entropy of the temperature-scaled distribution");
        }
    }
    for (int j = 0; j < 6; j++)
        CHECK(fabs(counts[j] / (double)n - p[j]) < 2e-3, "token %d frequency %.4f vs p %.4f", j, counts[j] / (double)n,
              p[j]);
    rlc_sampling k1 = {.temperature = 1, .top_k = 1, .top_p = 1};
    rlc_sampling k2 = {.temperature = 1, .top_k = 2, .top_p = 1};
    rlc_sampling tp = {.temperature = 1, .top_p = 0.3f};
    for (int i = 0; i < 50; i++) {
        float u = i / 50.0f;
        CHECK(rlc_sample_token(z, 6, &k1, u, NULL, NULL) == 1, "top_k 1 is greedy");
        int tk = rlc_sample_token(z, 6, &k2, u, NULL, NULL);
        CHECK(tk == 1 || tk == 3, "top_k 2 keeps the two largest (got %d)", tk);
        CHECK(rlc_sample_token(z, 6, &tp, u, NULL, NULL) == 1, "top_p 0.3 keeps only the top token");
    }
}

// The specification read literally: every p in double, a comparison sort into (p descending, id ascending), then
// the walks of include/rlc/sample.h. rlc_sample_token gets the order from a radix sort; it must give the same
// token (same order, same sums) and the same log-prob and entropy bits.
typedef struct ref_pi {
    double p;
    int id;
} ref_pi;
static int ref_cmp(const void *a, const void *b) {
    const ref_pi *x = a, *y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return x->id - y->id;
}
static int ref_sample(const rlc_f *z, int V, const rlc_sampling *s, float u) {
    double tau = s->temperature, mx = -INFINITY, sum = 0;
    for (int j = 0; j < V; j++) mx = fmax(mx, (double)z[j]);
    for (int j = 0; j < V; j++) sum += exp(((double)z[j] - mx) / tau);
    double lse = log(sum);
    ref_pi *pi = malloc((size_t)V * sizeof *pi);
    for (int j = 0; j < V; j++) pi[j] = (ref_pi){exp(((double)z[j] - mx) / tau - lse), j};
    qsort(pi, (size_t)V, sizeof *pi, ref_cmp);
    int keep = s->top_k > 0 && s->top_k < V ? s->top_k : V;
    if (s->top_p < 1.0f) {
        double c = 0;
        for (int j = 0; j < keep; j++)
            if ((c += pi[j].p) >= s->top_p) {
                keep = j + 1;
                break;
            }
    }
    double total = 0, c = 0;
    for (int j = 0; j < keep; j++) total += pi[j].p;
    int tok = pi[keep - 1].id;
    for (int j = 0; j < keep; j++)
        if ((double)u * total < (c += pi[j].p)) {
            tok = pi[j].id;
            break;
        }
    free(pi);
    return tok;
}

// Many rows against ref_sample: a real vocabulary size, few distinct logits (ties everywhere), a temperature so
// low that most p underflow to 0 (one tie of thousands), -inf logits, and every truncation.
static void test_sampling_order(void) {
    const int Vs[] = {1, 2, 7, 300, 4099, 151936};
    const rlc_sampling modes[] = {{.temperature = 1, .top_p = 1},
                                  {.temperature = 0.6f, .top_p = 0.9f},
                                  {.temperature = 1.2f, .top_k = 50, .top_p = 1},
                                  {.temperature = 0.02f, .top_k = 1000, .top_p = 0.97f},
                                  {.temperature = 0.9f, .top_k = 3, .top_p = 0.5f}};
    uint64_t state = 12345;
    int checked = 0, distinct = 0;
    for (size_t vi = 0; vi < sizeof Vs / sizeof Vs[0]; vi++) {
        const int V = Vs[vi];
        rlc_f *z = malloc((size_t)V * sizeof *z);
        for (int kind = 0; kind < 3; kind++) {
            for (int j = 0; j < V; j++) {
                state = state * 6364136223846793005ull + 1442695040888963407ull;
                const double r = (double)(state >> 11) / 9007199254740992.0; // [0, 1)
                z[j] = kind == 0   ? (rlc_f)(8.0 * r - 4.0)                   // distinct values
                       : kind == 1 ? (rlc_f)floor(6.0 * r)                    // six values: ties everywhere
                                   : (r < 0.3 ? -INFINITY : (rlc_f)(30.0 * r)); // masked tokens, wide range
            }
            for (size_t mi = 0; mi < sizeof modes / sizeof modes[0]; mi++) {
                const int draws = V > 10000 ? 3 : 25;
                int prev = -1;
                for (int d = 0; d < draws; d++) {
                    const float u = d == 0 ? 0.0f : d == 1 ? 0.99999994f : (d + 0.37f) / (float)draws;
                    float lp, en;
                    const int tok = rlc_sample_token(z, V, &modes[mi], u, &lp, &en);
                    const int want = ref_sample(z, V, &modes[mi], u);
                    CHECK(tok == want, "V %d logits %d mode %zu u %.8f: token %d, reference %d", V, kind, mi,
                          (double)u, tok, want);
                    checked++;
                    distinct += tok != prev;
                    prev = tok;
                }
            }
        }
        free(z);
    }
    CHECK(distinct > checked / 4, "draws give varied tokens (%d changes in %d draws)", distinct, checked);
    printf("sampling order: %d draws match the comparison-sort reference\n", checked);
}

// Same tokens and mask; rollout log-probs equal up to float rounding (a batched GEMM may round differently).
static int seq_equal(const rlc_sequence *a, const rlc_sequence *b) {
    if (a->len != b->len) return 0;
    for (int i = 0; i < a->len; i++)
        if (a->tokens[i] != b->tokens[i] || a->mask[i] != b->mask[i] || fabsf(a->roll_logp[i] - b->roll_logp[i]) > 1e-4f)
            return 0;
    return 1;
}

static void test_batch_independence(rlc_model *m) {
    const rlc_task *task = rlc_task_find("addition");
    CHECK(task != NULL, "addition task");
    rlc_task_config tc = task_cfg("addition");
    rlc_rollout_config rc;
    memset(&rc, 0, sizeof rc);
    rc.max_new_tokens = 12;
    rc.temperature = 1.0f;
    rc.top_p = 1.0f;
    rlc_sampling s = {.temperature = 1.3f, .top_k = 0, .top_p = 0.95f};
    rlc_problem pr[3];
    for (int i = 0; i < 3; i++) task->generate(&tc, 5, (uint64_t)(10 + i), &pr[i]);
    int ids3[3] = {10, 11, 12}, ids1[1] = {11};
    rlc_sequence big[3 * 4], one[1 * 3];
    memset(big, 0, sizeof big);
    memset(one, 0, sizeof one);
    rlc_rollout_generate(m, &rc, &s, task, &tc, pr, ids3, 3, 4, 99, 7, big);
    rlc_rollout_generate(m, &rc, &s, task, &tc, &pr[1], ids1, 1, 3, 99, 7, one);
    for (int g = 0; g < 4; g++) printf("prompt 11 sample %d: \"%s\" (%d tokens)\n", g, big[4 + g].response, big[4 + g].n_gen);
    for (int g = 0; g < 3; g++)
        CHECK(seq_equal(&big[4 + g], &one[g]), "sample %d of prompt 11 depends on its batch", g);
    // different samples of a group differ (the random stream is keyed by sample id)
    int differ = 0;
    for (int g = 1; g < 4; g++) differ |= !seq_equal(&big[4], &big[4 + g]);
    CHECK(differ, "all samples of a group are identical");
    // a different step gives different samples
    rlc_sequence other[3];
    memset(other, 0, sizeof other);
    rlc_rollout_generate(m, &rc, &s, task, &tc, &pr[1], ids1, 1, 3, 99, 8, other);
    CHECK(!seq_equal(&other[0], &one[0]) || !seq_equal(&other[1], &one[1]), "step is not part of the key");

    // rollout log-probs vs the training forward at the same temperature; masks and stop conditions
    for (int i = 0; i < 12; i++) {
        rlc_sequence *q = &big[i];
        CHECK(q->n_gen >= 1 && q->n_gen <= rc.max_new_tokens, "generated %d tokens", q->n_gen);
        CHECK(q->tokens[q->len - 1] == RLC_TOK_EOS || q->truncated, "sequence ends with EOS or is truncated");
        CHECK(q->prompt_len + q->n_gen == q->len, "prompt %d + generated %d != len %d", q->prompt_len, q->n_gen,
              q->len);
        for (int t = 0; t < q->len; t++) CHECK(q->mask[t] == (t >= q->prompt_len), "mask at %d", t);
    }
    rlc_packed pk;
    rlc_pack(big, NULL, 12, &pk);
    rlc_f *lp = malloc(pk.T * sizeof(rlc_f));
    rlc_model_forward(m, pk.tokens, pk.cu_seqlens, pk.B, pk.T);
    rlc_model_logprobs(m, pk.targets, 1.3f, lp, NULL);
    double worst = 0;
    for (int i = 0; i < 12; i++)
        for (int j = 0; j + 1 < big[i].len; j++)
            if (big[i].mask[j + 1]) {
                double d = fabs(lp[pk.cu_seqlens[i] + j] - big[i].roll_logp[j + 1]);
                if (d > worst) worst = d;
            }
    CHECK(worst < 1e-4, "rollout vs training log-prob mismatch %.3g", worst);
    printf("rollout/train log-prob max mismatch %.3g\n", worst);
    free(lp);
    rlc_packed_free(&pk);
    for (int i = 0; i < 12; i++) rlc_sequence_free(&big[i]);
    for (int i = 0; i < 3; i++) {
        rlc_sequence_free(&one[i]);
        rlc_sequence_free(&other[i]);
    }
}

static void test_multi_turn(rlc_model *m) {
    const rlc_task *task = rlc_task_find("maze");
    CHECK(task != NULL && task->multi_turn, "maze task");
    rlc_task_config tc = task_cfg("maze");
    rlc_problem pr;
    task->generate(&tc, 3, 0, &pr);
    rlc_sequence ex;
    CHECK(rlc_sequence_from_expert(task, &tc, &pr, 4096, &ex) == 0, "expert maze sequence fits");
    CHECK(ex.score == 1.0f, "expert reaches the goal (reward %g)", ex.score);
    CHECK(ex.n_turns >= 1, "turns recorded");
    int masked_obs = 0;
    for (int u = 0; u < ex.n_turns; u++) {
        CHECK(ex.turn_end[u] > ex.turn_start[u], "turn %d non-empty", u);
        for (int t = ex.turn_start[u]; t < ex.turn_end[u]; t++) CHECK(ex.mask[t] == 1, "policy token masked in");
        if (u + 1 < ex.n_turns) { // observation between turns
            CHECK(ex.turn_start[u + 1] > ex.turn_end[u], "an observation follows turn %d", u);
            for (int t = ex.turn_end[u]; t < ex.turn_start[u + 1]; t++) masked_obs += ex.mask[t] == 0;
        }
    }
    CHECK(masked_obs > 0, "observation tokens are masked out");
    rlc_sequence_free(&ex);
    // sampled episodes: turns and observations interleave in one sequence
    rlc_rollout_config rc;
    memset(&rc, 0, sizeof rc);
    rc.max_new_tokens = 3;
    rlc_sampling s = {.temperature = 1.0f, .top_p = 1.0f};
    rlc_sequence ep[2];
    memset(ep, 0, sizeof ep);
    int id = 0;
    rlc_rollout_generate(m, &rc, &s, task, &tc, &pr, &id, 1, 2, 1, 0, ep);
    for (int g = 0; g < 2; g++) {
        CHECK(ep[g].n_turns >= 1, "episode has turns");
        CHECK(ep[g].score == 0.0f || ep[g].score == 1.0f, "sparse reward");
        int gen = 0;
        for (int t = 0; t < ep[g].len; t++) gen += ep[g].mask[t];
        CHECK(gen == ep[g].n_gen, "mask counts generated tokens (%d vs %d)", gen, ep[g].n_gen);
        CHECK(ep[g].n_turns <= tc.max_turns, "at most H turns");
        rlc_sequence_free(&ep[g]);
    }
}

// The same rollout: every token, mask, turn boundary, length, score and response bit-identical; the rollout
// log-probs and entropies within 1e-5 (*dlp: the largest difference). Those two are float by-products of the
// logits, and OpenBLAS's sgemm rounds a row differently depending on how many rows the call has (a wave decodes
// fewer rows at once), so they are not bitwise batch-invariant on the CPU backend; the tokens are, because the
// sampling is keyed by (seed, step, prompt, sample, position) and the logits differ only in the last bits.
static int seq_same_rollout(const rlc_sequence *a, const rlc_sequence *b, double *dlp) {
    if (a->len != b->len || a->prompt_len != b->prompt_len || a->n_gen != b->n_gen || a->n_turns != b->n_turns ||
        a->prompt_id != b->prompt_id || a->sample_id != b->sample_id || a->truncated != b->truncated ||
        memcmp(&a->score, &b->score, sizeof a->score) != 0 || strcmp(a->response, b->response) != 0)
        return 0;
    size_t n = (size_t)a->len;
    if (memcmp(a->tokens, b->tokens, n * sizeof(int)) || memcmp(a->mask, b->mask, n) ||
        memcmp(a->turn_start, b->turn_start, (size_t)a->n_turns * sizeof(int)) ||
        memcmp(a->turn_end, b->turn_end, (size_t)a->n_turns * sizeof(int)))
        return 0;
    for (size_t t = 0; t < n; t++) {
        double d = fmax(fabs((double)a->roll_logp[t] - b->roll_logp[t]), fabs((double)a->roll_ent[t] - b->roll_ent[t]));
        if (!(d <= 1e-5)) return 0;
        if (d > *dlp) *dlp = d;
    }
    return 1;
}

// Generation in waves under a memory cap (rlc_ops.set_mem_limit) that holds 3 groups of 3 sequences: 7 prompts
// take 3 waves (3, 3, 1 groups), and every sequence is the same rollout as when all 21 are generated at once
// (seq_same_rollout: tokens bit-identical, log-probs to float rounding). Then a cap
// that holds no group: a clear error (bytes requested and available), tested in a child process.
static void test_waves(rlc_model *m, const rlc_task *task, const rlc_task_config *tc, int multi_turn) {
    const rlc_ops *o = m->ops;
    enum { P = 7, G = 3 };
    rlc_rollout_config rc;
    memset(&rc, 0, sizeof rc);
    rc.max_new_tokens = multi_turn ? 3 : 24;
    rlc_sampling s = {.temperature = 1.1f, .top_k = 0, .top_p = 1.0f};
    rlc_problem pr[P];
    int ids[P];
    for (int i = 0; i < P; i++) {
        task->generate(tc, 17, (uint64_t)i, &pr[i]);
        ids[i] = 40 + i;
    }
    // the smallest free memory that gives 3 groups per wave, on top of what the model holds now
    size_t lo = 0, hi = (size_t)1 << 34;
    while (lo + 1 < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (rlc_rollout_wave_groups(m, G, P, mid) >= 3) hi = mid;
        else lo = mid;
    }
    CHECK(rlc_rollout_wave_groups(m, G, P, hi) == 3, "3 groups per wave at %zu bytes", hi);
    rlc_mem_info mi;
    o->mem_info(&mi);
    size_t base = mi.in_use;
    o->set_mem_limit(base + hi);
    rlc_sequence waved[P * G], once[P * G];
    memset(waved, 0, sizeof waved);
    memset(once, 0, sizeof once);
    // (every allocation of the waves must fit under the cap, or the process ends: the planner counts enough)
    int w = rlc_rollout_generate(m, &rc, &s, task, tc, pr, ids, P, G, 5, 3, waved);
    CHECK(w == 3, "%d waves under the cap (expected 3)", w);
    o->set_mem_limit(0);
    w = rlc_rollout_generate(m, &rc, &s, task, tc, pr, ids, P, G, 5, 3, once);
    CHECK(w == 1, "%d waves without a cap (expected 1)", w);
    int same = 0, gen = 0;
    double dlp = 0;
    for (int i = 0; i < P * G; i++) {
        same += seq_same_rollout(&waved[i], &once[i], &dlp);
        gen += once[i].n_gen;
    }
    CHECK(same == P * G, "%s: %d of %d sequences the same in 3 waves and in 1", task->name, same, P * G);
    CHECK(gen > P * G, "sequences were generated (%d tokens)", gen);
    // planted-bug sanity: the comparison sees one changed token, and a log-prob off by 1e-4
    once[5].tokens[once[5].len - 1] ^= 1;
    CHECK(!seq_same_rollout(&waved[5], &once[5], &dlp), "a changed token is noticed");
    once[5].tokens[once[5].len - 1] ^= 1;
    once[5].roll_logp[once[5].len - 1] += 1e-4f;
    CHECK(!seq_same_rollout(&waved[5], &once[5], &dlp), "a log-prob 1e-4 off is noticed");
    printf("waves (%s): 3 waves under a cap of %zu bytes, 1 without: %d/%d sequences with bit-identical tokens, "
           "%d tokens, rollout log-prob/entropy max difference %.3g\n",
           task->name, hi, same, P * G, gen, dlp);
    for (int i = 0; i < P * G; i++) {
        rlc_sequence_free(&waved[i]);
        rlc_sequence_free(&once[i]);
    }
    if (multi_turn) return;
    // no group fits: the process ends with the bytes requested and available
    int fd[2];
    CHECK(pipe(fd) == 0, "pipe");
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 2);
        close(fd[0]);
        o->set_mem_limit(base + rlc_kv_cache_bytes(&m->cfg, G, m->cfg.max_seq_len, m->act_bytes) / 2);
        rlc_sequence out[P * G];
        memset(out, 0, sizeof out);
        rlc_rollout_generate(m, &rc, &s, task, tc, pr, ids, P, G, 5, 3, out);
        _exit(0);
    }
    close(fd[1]);
    char buf[2048];
    size_t len = 0;
    ssize_t r;
    while (len + 1 < sizeof buf && (r = read(fd[0], buf + len, sizeof buf - 1 - len)) > 0) len += (size_t)r;
    buf[len] = 0;
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1, "no group fits: exit status 1 (status %d)", status);
    CHECK(strstr(buf, "rollout: one group of 3 sequences") && strstr(buf, "cannot allocate") &&
              strstr(buf, "available"),
          "no group fits: the message names the bytes requested and available: \"%s\"", buf);
    printf("no group fits: %s", buf);
}

int main(void) {
    test_sampling();
    test_sampling_order();
    rlc_model_config cfg = {.vocab_size = RLC_TOK_VOCAB, .dim = 32, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                            .head_dim = 8, .hidden_dim = 64, .max_seq_len = 512, .rms_eps = 1e-5f,
                            .rope_theta = 10000.0f, .qkv_bias = 1};
    rlc_model m;
    CHECK(rlc_model_init(&m, &cfg, rlc_ops_cpu(), 1024) == 0, "init");
    rlc_model_init_weights(&m, 11);
    for (size_t i = 0; i < m.n_params; i++) m.params[i] *= 4.0f; // a less uniform random policy
    test_batch_independence(&m);
    test_multi_turn(&m);
    rlc_model_free(&m);
    // waves, on a fresh model (it holds no logits rows yet: the planner must count them)
    CHECK(rlc_model_init(&m, &cfg, rlc_ops_cpu(), 1024) == 0, "init");
    rlc_model_init_weights(&m, 12);
    for (size_t i = 0; i < m.n_params; i++) m.params[i] *= 4.0f;
    rlc_task_config tca = task_cfg("addition"), tcm = task_cfg("maze");
    test_waves(&m, rlc_task_find("addition"), &tca, 0);
    test_waves(&m, rlc_task_find("maze"), &tcm, 1);
    rlc_model_free(&m);
    return test_finish("test_rollout");
}
