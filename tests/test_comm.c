// tests/test_comm.c: the process group and the scheduler (include/rlc/comm.h, include/rlc/scheduler.h).
// Run alone it checks the single-process group and everything that needs no peers (partitions, plans,
// serialization, shards); run under `mpirun -np 2` (tests/cli_tests.cmake) it also checks every collective
// against values computed independently on each rank, the ZeRO-1 and plain data-parallel AdamW steps against a
// single-process step on the summed gradients, and the sharded evaluation and SFT step against one process.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rlc/comm.h"
#include "rlc/config.h"
#include "rlc/rollout.h"
#include "rlc/scheduler.h"
#include "rlc/task.h"
#include "test_util.h"

static rlc_dist D;

// ---- no peers needed ----

static void test_shards(void) {
    size_t ns[] = {0, 1, 7, 64, 1001};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++)
        for (int size = 1; size <= 5; size++) {
            size_t next = 0;
            for (int r = 0; r < size; r++) {
                size_t lo, hi;
                rlc_dist_shard(ns[k], size, r, &lo, &hi);
                CHECK(lo == next && hi >= lo, "shard %d/%d of %zu: [%zu, %zu) after %zu", r, size, ns[k], lo, hi, next);
                CHECK(hi - lo <= ns[k] / size + 1, "shard sizes differ by at most one");
                next = hi;
            }
            CHECK(next == ns[k], "shards of %zu over %d ranks cover it", ns[k], size);
        }
}

static int64_t max_load(const int64_t *cost, const int *owner, int n, int size) {
    int64_t load[8] = {0}, mx = 0;
    for (int i = 0; i < n; i++) load[owner[i]] += cost[i];
    for (int r = 0; r < size; r++) mx = load[r] > mx ? load[r] : mx;
    return mx;
}

static void test_partition(void) {
    // hand-computed LPT: costs 5,4,3,3,3 over 2 ranks -> 5:r0, 4:r1, 3:r1 (4<5), 3:r0 (5<7), 3:r1 (7<8)
    int64_t c1[] = {5, 4, 3, 3, 3};
    int o1[5], want[] = {0, 1, 1, 0, 1};
    rlc_sched_partition(c1, 5, 2, o1);
    for (int i = 0; i < 5; i++) CHECK(o1[i] == want[i], "LPT owner of unit %d: %d, expected %d", i, o1[i], want[i]);
    // random small cases: valid, deterministic, and within Graham's 4/3 bound of the brute-force optimum
    srand(7);
    for (int trial = 0; trial < 200; trial++) {
        int n = 1 + rand() % 8, size = 1 + rand() % 3;
        int64_t cost[8];
        int own[8], own2[8];
        for (int i = 0; i < n; i++) cost[i] = rand() % 20;
        rlc_sched_partition(cost, n, size, own);
        rlc_sched_partition(cost, n, size, own2);
        int valid = 1;
        for (int i = 0; i < n; i++) valid &= own[i] >= 0 && own[i] < size && own[i] == own2[i];
        CHECK(valid, "trial %d: owners valid and deterministic", trial);
        int64_t best = -1;
        int pick[8] = {0};
        long combos = 1;
        for (int i = 0; i < n; i++) combos *= size;
        for (long cmb = 0; cmb < combos; cmb++) {
            long x = cmb;
            for (int i = 0; i < n; i++) pick[i] = (int)(x % size), x /= size;
            int64_t m = max_load(cost, pick, n, size);
            if (best < 0 || m < best) best = m;
        }
        int64_t got = max_load(cost, own, n, size);
        CHECK(3 * got <= 4 * best, "trial %d: LPT load %lld vs optimum %lld", trial, (long long)got, (long long)best);
    }
}

static void make_seq(rlc_sequence *s, int id, int sample, int len, int turns) {
    memset(s, 0, sizeof *s);
    s->prompt_id = id, s->sample_id = sample, s->len = len, s->prompt_len = 2, s->n_turns = turns;
    s->n_gen = len - 2, s->truncated = id & 1, s->score = 0.25f * (float)id - 1.0f;
    s->tokens = malloc((size_t)len * sizeof(int));
    s->mask = malloc((size_t)len);
    s->roll_logp = malloc((size_t)len * sizeof(float));
    s->roll_ent = malloc((size_t)len * sizeof(float));
    s->turn_start = malloc((size_t)(turns > 0 ? turns : 1) * sizeof(int));
    s->turn_end = malloc((size_t)(turns > 0 ? turns : 1) * sizeof(int));
    for (int t = 0; t < len; t++) {
        s->tokens[t] = (id * 31 + sample * 7 + t) % 97;
        s->mask[t] = t >= 2;
        s->roll_logp[t] = -0.01f * (float)(t + id);
        s->roll_ent[t] = 0.5f + 0.001f * (float)t;
    }
    for (int u = 0; u < turns; u++) s->turn_start[u] = 2 + u, s->turn_end[u] = 3 + u;
    snprintf(s->response, sizeof s->response, "resp %d/%d", id, sample);
}

static int seq_equal(const rlc_sequence *a, const rlc_sequence *b) {
    if (a->prompt_id != b->prompt_id || a->sample_id != b->sample_id || a->len != b->len ||
        a->prompt_len != b->prompt_len || a->n_turns != b->n_turns || a->n_gen != b->n_gen ||
        a->truncated != b->truncated || memcmp(&a->score, &b->score, 4) != 0 || strcmp(a->response, b->response))
        return 0;
    size_t L = (size_t)a->len;
    return memcmp(a->tokens, b->tokens, L * sizeof(int)) == 0 && memcmp(a->mask, b->mask, L) == 0 &&
           memcmp(a->roll_logp, b->roll_logp, L * 4) == 0 && memcmp(a->roll_ent, b->roll_ent, L * 4) == 0 &&
           memcmp(a->turn_start, b->turn_start, (size_t)a->n_turns * sizeof(int)) == 0 &&
           memcmp(a->turn_end, b->turn_end, (size_t)a->n_turns * sizeof(int)) == 0;
}

static void test_serialize(void) {
    rlc_sequence s, t;
    make_seq(&s, 5, 3, 11, 3);
    size_t n = rlc_seq_serialized_size(&s);
    unsigned char *buf = malloc(n);
    CHECK(rlc_seq_serialize(&s, buf) == n, "serialize writes its size");
    CHECK(rlc_seq_deserialize(&t, buf, n) == n, "deserialize reads it back");
    CHECK(seq_equal(&s, &t), "round trip keeps every field");
    double h1 = rlc_sched_rollout_hash(&s, 1), h2 = rlc_sched_rollout_hash(&t, 1);
    CHECK(h1 == h2 && h1 >= 0 && h1 < (1 << 29), "hash of a copy is equal (%g vs %g)", h1, h2);
    t.tokens[4] ^= 1;
    CHECK(rlc_sched_rollout_hash(&t, 1) != h1, "hash sees a changed token");
    rlc_sequence_free(&t);
    rlc_sequence u;
    CHECK(rlc_seq_deserialize(&u, buf, n - 1) == 0, "a truncated record is rejected");
    free(buf);
    rlc_sequence_free(&s);
}

static void test_plan(void) {
    // 12 sequences, 3 mini-batches of units; units of 2 (pairs)
    rlc_sequence s[12];
    for (int i = 0; i < 12; i++) make_seq(&s[i], i / 2, i % 2, 3 + (i * 5) % 9, 1);
    int mb[] = {0, 2, 3, 6};
    for (int size = 1; size <= 4; size++) {
        int seen[12] = {0}, pairs_ok = 1, order_ok = 1, mb_ok = 1;
        for (int r = 0; r < size; r++) {
            rlc_sched_plan p;
            rlc_sched_plan_build(&p, s, 2, mb, 3, size, r);
            for (int b = 0; b < 3; b++)
                for (int k = p.mb_start[b]; k < p.mb_start[b + 1]; k++) {
                    int g = p.idx[k];
                    seen[g]++;
                    mb_ok &= g >= 2 * mb[b] && g < 2 * mb[b + 1];
                    if (k > p.mb_start[b]) order_ok &= p.idx[k - 1] < g;
                    if (g % 2 == 0) pairs_ok &= k + 1 < p.mb_start[b + 1] && p.idx[k + 1] == g + 1;
                }
            rlc_sched_plan_free(&p);
        }
        int once = 1;
        for (int i = 0; i < 12; i++) once &= seen[i] == 1;
        CHECK(once && pairs_ok && order_ok && mb_ok, "%d ranks: every sequence once (%d), pairs together (%d), "
              "ascending (%d), in its mini-batch (%d)", size, once, pairs_ok, order_ok, mb_ok);
    }
    for (int i = 0; i < 12; i++) rlc_sequence_free(&s[i]);
}

// ---- collectives (a group of one: identities; two or more ranks: against independent values) ----

static void test_collectives(void) {
    int R = D.size, me = D.rank;
    double xd[5];
    float xf[5];
    int64_t xi[5];
    for (int i = 0; i < 5; i++) xd[i] = me * 10 + i + 0.5, xf[i] = (float)(me * 3 - i), xi[i] = (int64_t)me << 40 | i;
    double ed[5] = {0}, emx[5], emn[5];
    float ef[5] = {0};
    int64_t ei[5] = {0};
    for (int i = 0; i < 5; i++) {
        emx[i] = -1e300, emn[i] = 1e300;
        for (int r = 0; r < R; r++) {
            ed[i] += r * 10 + i + 0.5;
            ef[i] += (float)(r * 3 - i);
            ei[i] += (int64_t)r << 40 | i;
            double v = r * 10 + i + 0.5;
            emx[i] = v > emx[i] ? v : emx[i];
            emn[i] = v < emn[i] ? v : emn[i];
        }
    }
    double a[5], b[5];
    memcpy(a, xd, sizeof a);
    memcpy(b, xd, sizeof b);
    rlc_dist_allreduce_d(&D, xd, 5, RLC_RED_SUM);
    rlc_dist_allreduce_d(&D, a, 5, RLC_RED_MAX);
    rlc_dist_allreduce_d(&D, b, 5, RLC_RED_MIN);
    rlc_dist_allreduce_f(&D, xf, 5, RLC_RED_SUM);
    rlc_dist_allreduce_i64(&D, xi, 5, RLC_RED_SUM);
    for (int i = 0; i < 5; i++) {
        CHECK(xd[i] == ed[i] && a[i] == emx[i] && b[i] == emn[i], "double sum/max/min %d", i);
        CHECK(xf[i] == ef[i] && xi[i] == ei[i], "float / int64 sum %d", i);
    }
    // bucketed sum: 3 elements per bucket over 10 elements
    rlc_f g[10];
    for (int i = 0; i < 10; i++) g[i] = (rlc_f)((me + 1) * (i + 1));
    rlc_dist_allreduce_sum_bucketed(&D, g, 10, 3 * sizeof(rlc_f));
    int ok = 1;
    for (int i = 0; i < 10; i++) ok &= g[i] == (rlc_f)(R * (R + 1) / 2 * (i + 1));
    CHECK(ok, "bucketed all-reduce");
    // broadcast from the last rank
    char msg[24];
    snprintf(msg, sizeof msg, "from %d", me);
    rlc_dist_bcast(&D, msg, sizeof msg, R - 1);
    char want[24];
    snprintf(want, sizeof want, "from %d", R - 1);
    CHECK(strcmp(msg, want) == 0, "broadcast: %s", msg);
    // all-gather of rank-sized messages
    char send[8];
    memset(send, 'a' + me, sizeof send);
    size_t counts[8], total;
    char *all = rlc_dist_allgatherv(&D, send, (size_t)me + 1, counts, &total);
    size_t pos = 0;
    ok = total == (size_t)(R * (R + 1) / 2);
    for (int r = 0; r < R && ok; r++) {
        ok &= counts[r] == (size_t)r + 1;
        for (int k = 0; k <= r; k++) ok &= all[pos++] == 'a' + r;
    }
    CHECK(ok, "all-gather(v) of bytes");
    free(all);
    // reduce-scatter (small buckets cut through the shards) and all-gather of shards
    size_t n = 23, lo, hi;
    rlc_dist_shard(n, R, me, &lo, &hi);
    rlc_f *x = malloc(n * sizeof(rlc_f)), *shard = malloc((hi - lo + 1) * sizeof(rlc_f));
    for (size_t i = 0; i < n; i++) x[i] = (rlc_f)((me + 1) * (double)i);
    rlc_dist_reduce_scatter_sum(&D, x, shard, n, 4 * sizeof(rlc_f));
    ok = 1;
    for (size_t i = lo; i < hi; i++) ok &= shard[i - lo] == (rlc_f)(R * (R + 1) / 2 * (double)i);
    CHECK(ok, "reduce-scatter: shard [%zu, %zu)", lo, hi);
    for (size_t i = 0; i < n; i++) x[i] = i >= lo && i < hi ? (rlc_f)(1000 + i) : (rlc_f)-1;
    rlc_dist_allgather_shards(&D, x, n);
    ok = 1;
    for (size_t i = 0; i < n; i++) ok &= x[i] == (rlc_f)(1000 + i);
    CHECK(ok, "all-gather of shards");
    free(x);
    free(shard);
    // sequences: rank r contributes r + 1
    rlc_sequence loc[8], out[64];
    for (int i = 0; i <= me; i++) make_seq(&loc[i], me, i, 4 + i, 1 + i % 2);
    int got = rlc_sched_allgather_seqs(&D, loc, me + 1, out, 64);
    CHECK(got == R * (R + 1) / 2, "all-gathered %d sequences", got);
    int k = 0;
    ok = 1;
    for (int r = 0; r < R; r++)
        for (int i = 0; i <= r && k < got; i++, k++) {
            rlc_sequence e;
            make_seq(&e, r, i, 4 + i, 1 + i % 2);
            ok &= seq_equal(&e, &out[k]);
            rlc_sequence_free(&e);
        }
    CHECK(ok, "all-gathered sequences in rank order, bit for bit");
    for (int i = 0; i < got; i++) rlc_sequence_free(&out[i]);
    for (int i = 0; i <= me; i++) rlc_sequence_free(&loc[i]);
    // loss stats: sums, and max for the *_max fields
    rlc_loss_stats st = {0};
    st.loss = me + 1, st.tok = 10, st.ratio_max = 1 + me, st.mismatch_max = 5 - me;
    rlc_sched_reduce_loss_stats(&D, &st);
    CHECK(st.loss == R * (R + 1) / 2 && st.tok == 10 * R && st.ratio_max == R && st.mismatch_max == 5,
          "loss stats: loss %g tok %g ratio_max %g mismatch_max %g", st.loss, st.tok, st.ratio_max,
          st.mismatch_max);
}

// ---- training pieces against one process ----

static rlc_config small_config(void) {
    const char *over[] = {"model.dim=32",        "model.n_layers=2",    "model.n_heads=2",      "model.n_kv_heads=1",
                          "model.head_dim=16",   "model.hidden_dim=48", "model.max_seq_len=32", "sft.batch_size=10",
                          "sft.micro_batch_tokens=40", "sft.optim.grad_clip=0.5"};
    rlc_config c;
    char err[512];
    if (rlc_config_parse(&c, NULL, "<test>", over, 10, err, sizeof err) != 0) {
        fprintf(stderr, "config: %s\n", err);
        exit(1);
    }
    return c;
}

// Deterministic per-rank gradients: a function of (rank, i) that every rank can evaluate for any rank.
static rlc_f fake_grad(int r, size_t i) { return (rlc_f)(0.01 * sin(0.37 * (double)i + r) * (r + 1)); }

static double rel_diff(const rlc_f *a, const rlc_f *b, size_t n) {
    double dd = 0, na = 0;
    for (size_t i = 0; i < n; i++) dd += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), na += (double)a[i] * a[i];
    return sqrt(dd) / (sqrt(na) + 1e-30);
}

static void test_adamw(void) {
    rlc_config c = small_config();
    rlc_optim_config oc = c.rl.optim;
    oc.grad_clip = 0.05f; // clipping active: the global norm must be the same on every path
    oc.weight_decay = 0.1f;
    rlc_model ref, dp, z1;
    rlc_adamw oref = {0}, odp = {0}, oz1 = {0};
    rlc_model_init(&ref, &c.model, rlc_ops_cpu(), 16);
    rlc_model_init(&dp, &c.model, rlc_ops_cpu(), 16);
    rlc_model_init(&z1, &c.model, rlc_ops_cpu(), 16);
    rlc_model_init_weights(&ref, 3);
    rlc_model_init_weights(&dp, 3);
    rlc_model_init_weights(&z1, 3);
    rlc_dist one;
    rlc_dist_single(&one);
    rlc_sched_adamw_init(&one, 0, &oref, &ref);
    rlc_sched_adamw_init(&D, 0, &odp, &dp);
    rlc_sched_adamw_init(&D, 1, &oz1, &z1);
    size_t n = ref.n_params, lo, hi;
    rlc_dist_shard(n, D.size, D.rank, &lo, &hi);
    CHECK(oz1.n == (D.size > 1 ? hi - lo : n), "ZeRO-1 moments hold this rank's shard (%zu)", oz1.n);
    for (int step = 0; step < 3; step++) {
        for (size_t i = 0; i < n; i++) {
            double s = 0;
            for (int r = 0; r < D.size; r++) s += fake_grad(r + step, i);
            ref.grads[i] = (rlc_f)s; // the summed gradient, in one process
            dp.grads[i] = z1.grads[i] = fake_grad(D.rank + step, i);
        }
        double g0 = rlc_sched_adamw_step(&one, 0, &oref, &ref, &oc, 1e-2f);
        double g1 = rlc_sched_adamw_step(&D, 0, &odp, &dp, &oc, 1e-2f);
        double g2 = rlc_sched_adamw_step(&D, 1, &oz1, &z1, &oc, 1e-2f);
        CHECK_CLOSE(g1, g0, 0, 1e-6, "data-parallel grad norm");
        CHECK_CLOSE(g2, g0, 0, 1e-6, "ZeRO-1 grad norm");
    }
    double r1 = rel_diff(ref.params, dp.params, n), r2 = rel_diff(ref.params, z1.params, n);
    CHECK(r1 <= 1e-6 && r2 <= 1e-6, "weights after 3 steps: data-parallel %.3g, ZeRO-1 %.3g (relative)", r1, r2);
    // moments gathered from the shards equal the full ones; scatter gives the shard back
    rlc_f *fm = malloc(n * sizeof(rlc_f)), *fv = malloc(n * sizeof(rlc_f));
    rlc_sched_adamw_gather(&D, 1, &oz1, &z1, fm, fv);
    CHECK(rel_diff(oref.m, fm, n) <= 1e-6 && rel_diff(oref.v, fv, n) <= 1e-6, "gathered ZeRO-1 moments");
    memset(oz1.m, 0, oz1.n * sizeof(rlc_f));
    rlc_sched_adamw_scatter(&D, 1, &oz1, &z1, fm, fv);
    CHECK(memcmp(oz1.m, fm + (D.size > 1 ? lo : 0), oz1.n * sizeof(rlc_f)) == 0, "scatter restores the shard");
    free(fm);
    free(fv);
    rlc_adamw_free(&oref, &ref);
    rlc_adamw_free(&odp, &dp);
    rlc_adamw_free(&oz1, &z1);
    rlc_model_free(&ref);
    rlc_model_free(&dp);
    rlc_model_free(&z1);
}

static void test_eval_and_sft(void) {
    rlc_config c = small_config();
    const rlc_task *task = rlc_task_find(c.task.name);
    rlc_model a, b;
    rlc_adamw oa = {0}, ob = {0};
    rlc_model_init(&a, &c.model, rlc_ops_cpu(), 64);
    rlc_model_init(&b, &c.model, rlc_ops_cpu(), 64);
    rlc_model_init_weights(&a, 11);
    rlc_model_init_weights(&b, 11);
    rlc_dist one;
    rlc_dist_single(&one);
    rlc_sched_adamw_init(&one, 0, &oa, &a);
    rlc_sched_adamw_init(&D, 1, &ob, &b);
    // a few SFT steps: sharded (ZeRO-1 when several ranks) against one process
    for (int s = 0; s < 3; s++) {
        rlc_sft_stats sa, sb;
        rlc_sched_sft_step(&one, 0, &a, &oa, &c, task, (uint64_t)s * 10, 3e-3f, &sa);
        rlc_sched_sft_step(&D, 1, &b, &ob, &c, task, (uint64_t)s * 10, 3e-3f, &sb);
        CHECK_CLOSE(sb.loss, sa.loss, 0, 1e-5, "sharded SFT loss");
        CHECK_CLOSE(sb.grad_norm, sa.grad_norm, 0, 1e-5, "sharded SFT grad norm");
        CHECK(sa.tokens == sb.tokens && sa.seqs == sb.seqs, "SFT counts");
    }
    double r = rel_diff(a.params, b.params, a.n_params);
    CHECK(r <= 1e-5, "weights after sharded SFT: %.3g relative", r);
    // greedy evaluation split over ranks = one process (same weights)
    memcpy(b.params, a.params, a.n_params * sizeof(rlc_f));
    double e1 = rlc_rollout_eval(&a, &c.rollout, task, &c.task, 37, 8);
    double e2 = rlc_sched_eval(&D, &b, &c.rollout, task, &c.task, 37, 8);
    CHECK(fabs(e1 - e2) <= 1e-12, "sharded eval %.6f vs %.6f", e2, e1);
    rlc_adamw_free(&oa, &a);
    rlc_adamw_free(&ob, &b);
    rlc_model_free(&a);
    rlc_model_free(&b);
}

int main(int argc, char **argv) {
    char err[512];
    if (rlc_dist_init(&D, &argc, &argv, err, sizeof err) != 0) {
        fprintf(stderr, "test_comm: %s\n", err);
        return 1;
    }
    if (!rlc_dist_launched()) CHECK(D.size == 1 && D.rank == 0 && D.local_rank == 0, "no launcher: a group of one");
    CHECK(D.rank >= 0 && D.rank < D.size && D.local_rank < D.local_size, "rank %d of %d, local %d of %d", D.rank,
          D.size, D.local_rank, D.local_size);
    test_shards();
    test_partition();
    test_serialize();
    test_plan();
    test_collectives();
    test_adamw();
    test_eval_and_sft();
    char name[64];
    snprintf(name, sizeof name, "test_comm (rank %d of %d)", D.rank, D.size);
    int rc = test_finish(name);
    rlc_dist_barrier(&D);
    rlc_dist_finalize(&D);
    return rc;
}
