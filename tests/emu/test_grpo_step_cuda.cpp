// tests/emu/test_grpo_step_cuda.cpp: the training engine (host/) on the CUDA backend against the CPU backend, from
// identical weights, on a tiny model (dim 32, 2 layers, 2 query heads / 1 KV head of head dim 16, which the
// backend pads to 64 for the attention kernels; vocab 98; addition). Under the emulator (ctest label emu) the
// CUDA side is the emulated rlc_cuda_emu; built for a GPU (tests/gpu/test_grpo_step_cuda.cpp includes this file)
// it is the real backend. The emulator runs its default (forward) schedule only: the kernels' schedule
// independence is test_ops_cuda's business; this test is about the host engine on a device backend. Steps:
//   0. a short SFT warm start on the CPU (200 steps, 1-digit addition: a policy that gets some answers right, so
//      that GRPO groups have a spread of scores, and whose argmax margins are far above the bf16 rounding),
//      weights copied to the CUDA model;
//   1. greedy rollouts on both backends: identical tokens, rollout log-probs close; then the first GRPO step's
//      rollouts with temperature sampling (1, the config's, and 0.7 with top_k 5, top_p 0.9): identical tokens
//      (sampled on the device on the CUDA side); and on the CUDA side in waves of one group under a memory cap:
//      the same tokens as in one wave;
//   2. one SFT step (forward, fused log-prob, backward, AdamW) on both: loss, gradient norm, gradients, weights;
//   3. one whole GRPO step (rlc_rl_step: rollouts with temperature sampling, old/reference log-probs,
//      advantages, PPO-clip loss with a KL and an entropy term, two micro-batches, backward, AdamW) on both:
//      identical rollouts (rollout hash, scores), loss statistics, gradients, updated weights;
//   4. the trainer (rlc_train) with the CUDA backend injected (rlc_train_opts.ops): SFT, RL, greedy evaluation,
//      checkpoints; its SFT losses against a CPU run.
// All of it runs twice: with the CUDA matmuls in fp32 and in bf16 (RLC_CUDA_BF16_GEMM: the GEMMs read the bf16
// working weights kept by the backend; the optimizer is the multi-tensor AdamW writing fp32 master + bf16 copy).
//
// Tolerances (attention and the fused log-prob run in bf16 on the CUDA side, everything else in fp32; bf16's unit
// roundoff is 2^-9, and the errors of q, k, v, hidden and the LM head compound through two layers):
//   log-probs, entropies, losses: |cuda - cpu| <= 2e-2 (1 + |cpu|) (measured <= 1e-3)
//   gradients: relative L2 error over the whole model <= 3e-2 (measured ~3e-3..1e-2), 6e-2 with bf16 matmuls
//     (measured 3.8e-2 in the SFT step, 3.9e-3 in the GRPO step: every GEMM operand, activations and output
//     gradients included, is rounded to bf16, not only the weights); per tensor
//     ||g_cuda - g_cpu|| <= 8e-2 ||g_cpu|| + 1e-2 rms(g_cpu over the model) sqrt(numel) (small tensors such as
//     the norms' weights sum many cancelling terms: their relative error can be several times the model's)
//   gradient norms: |cuda - cpu| <= 5e-2 (1 + |cpu|)
//   weights after one AdamW step from fresh moments: the update is lr * g s / (|g s| + eps) (s the clip scale),
//     about +-lr wherever |g| >> eps, so |w_cuda - w_cpu| <= 2 lr (1 + 1e-3) everywhere (a gradient sign can
//     flip where |g| is below the bf16 error), and <= 1e-2 lr where the sign is certain (|g_cpu| >= 4 |g_cuda -
//     g_cpu|) and |g_cpu| >= 1e-5 (eps / |g s| <= 3e-3) (measured <= 1e-3 lr)
//   tokens (greedy and sampled), scores, rollout hashes: equal. The rollout uniforms are the same Philox numbers
//     on both sides, so a sampled token could only differ where a uniform falls within the (bf16-sized, ~1e-3)
//     shift of a CDF boundary; this test's seeds are not near one (a failure prints the token, both log-probs and
//     the uniform).
#define _Noreturn [[noreturn]] // C11 spelling in the C headers below
extern "C" {
#include "rlc/config.h"
#include "rlc/metrics.h"
#include "rlc/model.h"
#include "rlc/optim.h"
#include "rlc/rng.h"
#include "rlc/rl.h"
#include "rlc/rollout.h"
#include "rlc/sft.h"
#include "rlc/task.h"
#include "rlc/trainer.h"
#include "rlc/util.h"
}
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <string>
#include <vector>

#include "ops_cuda.h"
#include "test_util.h"

static const rlc_ops *GPU, *CPU;
static double g_grad_rel_tol = 3e-2; // the model's relative L2 gradient error allowed (fp32 / bf16 matmuls)
#define RUNS RLC_BINARY_DIR "/test_grpo_step_cuda_runs" // the trainer runs' directories

static const char *const OVERRIDES[] = {
    "model.dim=32", "model.n_layers=2", "model.n_heads=2", "model.n_kv_heads=1", "model.head_dim=16",
    "model.hidden_dim=64", "model.max_seq_len=16", "task.name=addition", "task.digits=1", "task.min_digits=1",
    "task.eval_size=4", "sft.batch_size=16", "sft.micro_batch_tokens=96", "sft.teacher_error=0", "rollout.prompts_per_step=2",
    "rollout.group_size=4", "rollout.max_new_tokens=4", "rl.micro_batch_tokens=48", "rl.kl_beta=0.02",
    "rl.ent_coef=0.01", "rl.optim.lr=1e-3", "seed=7"};

static std::vector<float> dl(const rlc_ops *o, const rlc_f *p, size_t n) {
    std::vector<float> h(n);
    o->download(h.data(), p, n * sizeof(float));
    return h;
}

static void close_scalar(const char *what, double cuda, double cpu, double rtol) {
    double tol = rtol * (1.0 + fabs(cpu));
    printf("    %-28s cpu %12.6g  cuda %12.6g  |diff| %.3g (tol %.3g)\n", what, cpu, cuda, fabs(cuda - cpu), tol);
    CHECK(isfinite(cuda) && fabs(cuda - cpu) <= tol, "%s: cuda %.9g vs cpu %.9g", what, cuda, cpu);
}

// Gradients (relative L2 error per tensor and over the model) and, when w0 (the common weights before the step)
// is given, the AdamW update bounds described at the top.
static void compare_model(const char *what, const rlc_model *mg, const rlc_model *mc, const std::vector<float> *w0,
                          float lr) {
    size_t n = mc->n_params;
    std::vector<float> gg = dl(GPU, mg->grads, n), gc = dl(CPU, mc->grads, n);
    std::vector<float> wg = dl(GPU, mg->params, n), wc = dl(CPU, mc->params, n);
    double all_d2 = 0, all_c2 = 0;
    for (size_t j = 0; j < n; j++) {
        all_d2 += (double)(gg[j] - gc[j]) * (gg[j] - gc[j]);
        all_c2 += (double)gc[j] * gc[j];
    }
    double rms = sqrt(all_c2 / (double)n); // the model's gradient RMS: the error floor of small tensors
    double worst_g = 0, worst_w = 0, worst_w_sure = 0;
    size_t n_sure = 0, n_flip = 0;
    const char *worst_name = "";
    for (int i = 0; i < mc->n_tensors; i++) {
        const rlc_tensor_info *t = &mc->tensors[i];
        double d2 = 0, c2 = 0;
        for (size_t j = t->offset; j < t->offset + t->numel; j++) {
            d2 += (double)(gg[j] - gc[j]) * (gg[j] - gc[j]);
            c2 += (double)gc[j] * gc[j];
        }
        double tol = 8e-2 * sqrt(c2) + 1e-2 * rms * sqrt((double)t->numel) + 1e-7;
        CHECK(sqrt(d2) <= tol, "%s: gradient of %s: L2 error %.3g > %.3g (norm %.3g)", what, t->name, sqrt(d2), tol,
              sqrt(c2));
        if (sqrt(d2) / tol > worst_g) worst_g = sqrt(d2) / tol, worst_name = t->name;
        if (!w0) continue;
        for (size_t j = t->offset; j < t->offset + t->numel; j++) {
            double dw = fabs((double)wg[j] - wc[j]), eg = fabs((double)gg[j] - gc[j]);
            worst_w = fmax(worst_w, dw / lr);
            CHECK(dw <= 2.0 * lr * (1 + 1e-3) + 1e-7, "%s: weight %s[%zu]: cuda %.9g cpu %.9g (before %.9g)", what,
                  t->name, j - t->offset, wg[j], wc[j], (*w0)[j]);
            n_flip += (gg[j] > 0) != (gc[j] > 0);
            // the gradient's sign is certain and |g| >> AdamW's eps (1e-8) even after clipping
            if (fabs(gc[j]) >= 4 * eg && fabs(gc[j]) >= 1e-5) {
                n_sure++;
                worst_w_sure = fmax(worst_w_sure, dw / lr);
                CHECK(dw <= 1e-2 * lr + 1e-7, "%s: weight %s[%zu] (g cpu %.3g cuda %.3g): cuda %.9g cpu %.9g", what,
                      t->name, j - t->offset, gc[j], gg[j], wg[j], wc[j]);
            }
        }
    }
    double rel = sqrt(all_d2) / (sqrt(all_c2) + 1e-30);
    printf("    gradients: relative L2 error %.3g over the model (tol %.0e); worst tensor at %.3g of its tolerance "
           "(%s)\n", rel, g_grad_rel_tol, worst_g, worst_name);
    CHECK(rel <= g_grad_rel_tol, "%s: gradient relative L2 error %.3g over the model", what, rel);
    if (w0)
        printf("    weights: max |cuda - cpu| / lr %.3g overall (%zu gradient signs differ), %.3g where the sign is "
               "certain (%zu of %zu)\n", worst_w, n_flip, worst_w_sure, n_sure, n);
}

static void copy_weights(rlc_model *dst, const rlc_model *src) {
    std::vector<float> w = dl(src->ops, src->params, src->n_params);
    dst->ops->upload(dst->params, w.data(), w.size() * sizeof(float));
}

static int max_tokens(const rlc_config *c) {
    int n = c->sft.micro_batch_tokens > c->rl.micro_batch_tokens ? c->sft.micro_batch_tokens : c->rl.micro_batch_tokens;
    int N = c->rollout.prompts_per_step * c->rollout.group_size;
    n = n > N ? n : N;
    n = n > c->model.max_seq_len ? n : c->model.max_seq_len;
    return n > 64 ? n : 64;
}

// 1. greedy rollouts
static void test_greedy(rlc_model *mg, rlc_model *mc, const rlc_config *c, const rlc_task *task) {
    printf("greedy rollouts\n");
    const int n = 6;
    rlc_problem probs[n];
    int ids[n];
    for (int i = 0; i < n; i++) {
        task->generate(&c->task, c->task.eval_seed, (uint64_t)i, &probs[i]);
        ids[i] = i;
    }
    rlc_sampling greedy = {1.0f, 0, 1.0f, 1};
    rlc_sequence sg[n], sc[n];
    double t0 = rlc_now();
    rlc_rollout_generate(mc, &c->rollout, &greedy, task, &c->task, probs, ids, n, 1, 1, 0, sc);
    double t1 = rlc_now();
    rlc_rollout_generate(mg, &c->rollout, &greedy, task, &c->task, probs, ids, n, 1, 1, 0, sg);
    printf("    cpu %.2f s, cuda %.2f s\n", t1 - t0, rlc_now() - t1);
    double worst = 0;
    for (int i = 0; i < n; i++) {
        CHECK(sg[i].len == sc[i].len, "greedy %d: length cuda %d cpu %d", i, sg[i].len, sc[i].len);
        for (int t = 0; t < sc[i].len && t < sg[i].len; t++) {
            CHECK(sg[i].tokens[t] == sc[i].tokens[t], "greedy %d: token %d: cuda %d cpu %d", i, t, sg[i].tokens[t],
                  sc[i].tokens[t]);
            if (sc[i].mask[t]) {
                double d = fabs(sg[i].roll_logp[t] - sc[i].roll_logp[t]);
                worst = fmax(worst, d / (1 + fabs(sc[i].roll_logp[t])));
                CHECK(d <= 2e-2 * (1 + fabs(sc[i].roll_logp[t])), "greedy %d: logp %d: cuda %g cpu %g", i, t,
                      sg[i].roll_logp[t], sc[i].roll_logp[t]);
            }
        }
        CHECK(sg[i].score == sc[i].score, "greedy %d: score cuda %g cpu %g", i, sg[i].score, sc[i].score);
        printf("    %-10s -> \"%s\" (score %g)\n", probs[i].prompt, sc[i].response, sc[i].score);
        rlc_sequence_free(&sg[i]);
        rlc_sequence_free(&sc[i]);
    }
    printf("    identical tokens; rollout log-prob worst |diff|/(1+|cpu|) %.3g\n", worst);
}

// 1b. sampled rollouts (the configured temperature 1, then top-k / top-p at another temperature) of the first GRPO
// step's prompts (rl.c's problem stream and RNG key), so that a difference in the step's rollouts shows here token
// by token. The tokens are drawn on each backend (ops->sample_tokens: the CUDA side samples on the device).
static void test_sampled(rlc_model *mg, rlc_model *mc, const rlc_config *c, const rlc_task *task,
                         const rlc_sampling &smp) {
    printf("sampled rollouts (temperature %g, top_k %d, top_p %g)\n", smp.temperature, smp.top_k, smp.top_p);
    const int P = c->rollout.prompts_per_step, G = c->rollout.group_size;
    std::vector<rlc_problem> probs(P);
    std::vector<int> ids(P);
    for (int i = 0; i < P; i++) {
        task->generate(&c->task, c->seed + 0x5EED0001ull, (uint64_t)i, &probs[i]); // rl.c's rl_seed
        ids[i] = i;
    }
    std::vector<rlc_sequence> sg(P * G), sc(P * G);
    rlc_rollout_generate(mc, &c->rollout, &smp, task, &c->task, probs.data(), ids.data(), P, G, c->seed, 0, sc.data());
    rlc_rollout_generate(mg, &c->rollout, &smp, task, &c->task, probs.data(), ids.data(), P, G, c->seed, 0, sg.data());
    int differ = 0;
    for (int i = 0; i < P * G; i++) {
        int t = 0;
        while (t < sc[i].len && t < sg[i].len && sc[i].tokens[t] == sg[i].tokens[t]) t++;
        if (t < sc[i].len || t < sg[i].len) {
            differ++;
            float u = rlc_rng_uniform(c->seed, 0, (uint64_t)sc[i].prompt_id, (uint64_t)sc[i].sample_id, (uint64_t)t, 0);
            CHECK(0, "sample %d: token %d: cpu %d (logp %.5f) cuda %d (logp %.5f), uniform %.6f", i, t,
                  t < sc[i].len ? sc[i].tokens[t] : -1, t < sc[i].len ? sc[i].roll_logp[t] : 0.0f,
                  t < sg[i].len ? sg[i].tokens[t] : -1, t < sg[i].len ? sg[i].roll_logp[t] : 0.0f, u);
        }
        rlc_sequence_free(&sc[i]);
    }
    printf("    %d of %d samples differ\n", differ, P * G);
    // the CUDA side again under a memory cap (the backend's set_mem_limit) that holds one group per wave: as many
    // waves as prompts, and the same tokens as in one wave
    size_t lo = 0, hi = (size_t)1 << 36;
    while (lo + 1 < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (rlc_rollout_wave_groups(mg, G, P, mid) >= 1) hi = mid;
        else lo = mid;
    }
    rlc_mem_info mi;
    GPU->mem_info(&mi);
    GPU->set_mem_limit(mi.in_use + hi);
    std::vector<rlc_sequence> sw(P * G);
    int waves = rlc_rollout_generate(mg, &c->rollout, &smp, task, &c->task, probs.data(), ids.data(), P, G, c->seed, 0,
                                     sw.data());
    GPU->set_mem_limit(0);
    CHECK(waves == P, "%d waves under a cap of one group per wave (expected %d)", waves, P);
    int same = 0;
    for (int i = 0; i < P * G; i++) {
        same += sw[i].len == sg[i].len && !memcmp(sw[i].tokens, sg[i].tokens, (size_t)sg[i].len * sizeof(int));
        rlc_sequence_free(&sw[i]);
        rlc_sequence_free(&sg[i]);
    }
    CHECK(same == P * G, "waves on the CUDA backend: %d of %d samples with the same tokens as one wave", same, P * G);
    printf("    CUDA backend in %d waves under a cap: %d of %d samples the same as in one wave\n", waves, same, P * G);
}

// 2. one SFT step
static void test_sft_step(rlc_rl *g, rlc_rl *c, const rlc_task *task) {
    printf("SFT step\n");
    std::vector<float> w0 = dl(CPU, c->model.params, c->model.n_params);
    rlc_sft_stats sg, sc;
    float lr = 1e-3f;
    rlc_sft_step(&c->model, &c->opt, &c->cfg, task, 5000, lr, &sc);
    rlc_sft_step(&g->model, &g->opt, &g->cfg, task, 5000, lr, &sg);
    close_scalar("loss", sg.loss, sc.loss, 2e-2);
    close_scalar("grad_norm", sg.grad_norm, sc.grad_norm, 5e-2);
    compare_model("sft", &g->model, &c->model, &w0, lr);
}

// 3. one GRPO step
static void test_grpo_step(rlc_rl *g, rlc_rl *c) {
    printf("GRPO step\n");
    copy_weights(&g->model, &c->model);
    rlc_rl_begin(c);
    rlc_rl_begin(g);
    std::vector<float> w0 = dl(CPU, c->model.params, c->model.n_params);
    rlc_metrics mc, mg;
    memset(&mc, 0, sizeof mc);
    memset(&mg, 0, sizeof mg);
    rlc_metrics_begin(&mc);
    rlc_metrics_begin(&mg);
    double t0 = rlc_now();
    CHECK(rlc_rl_step(c, &mc) == 0, "cpu GRPO step");
    double t1 = rlc_now();
    CHECK(rlc_rl_step(g, &mg) == 0, "cuda GRPO step");
    printf("    cpu %.2f s, cuda %.2f s\n", t1 - t0, rlc_now() - t1);
    for (const char *k : {"rollout_hash", "groups", "score_mean", "success_rate", "response_length"}) {
        double a = rlc_metrics_get(&mg, k, NAN), b = rlc_metrics_get(&mc, k, NAN);
        printf("    %-28s cpu %12.6g  cuda %12.6g\n", k, b, a);
        CHECK(a == b, "GRPO %s: cuda %.9g cpu %.9g (different rollouts)", k, a, b);
    }
    double sstd = rlc_metrics_get(&mc, "score_std", 0);
    CHECK(sstd > 0, "GRPO: every sample scored the same (score_std %g): the step would have no advantage", sstd);
    for (const char *k : {"entropy", "loss", "pg_loss", "kl", "ratio_mean"})
        close_scalar(k, rlc_metrics_get(&mg, k, NAN), rlc_metrics_get(&mc, k, NAN), 2e-2);
    // rollout (decode path, fp32 logits) vs training forward (bf16 attention and log-prob): on the CPU the same
    // arithmetic in another order, on CUDA the bf16 rounding
    double mm_c = rlc_metrics_get(&mc, "logp_mismatch_mean", NAN), mm_g = rlc_metrics_get(&mg, "logp_mismatch_mean", NAN);
    printf("    %-28s cpu %12.6g  cuda %12.6g  (bound 5e-2)\n", "logp_mismatch_mean", mm_c, mm_g);
    CHECK(mm_c <= 1e-4 && mm_g <= 5e-2, "rollout/training log-prob mismatch: cpu %g cuda %g", mm_c, mm_g);
    close_scalar("grad_norm", rlc_metrics_get(&mg, "grad_norm", NAN), rlc_metrics_get(&mc, "grad_norm", NAN), 5e-2);
    CHECK(rlc_metrics_get(&mc, "grad_norm", 0) > 0, "GRPO: zero gradient");
    compare_model("grpo", &g->model, &c->model, &w0, c->cfg.rl.optim.lr);
}

// Values of `key` in the records of `phase` of a metrics.jsonl (a crude scan: the writer's format is fixed).
static std::vector<double> read_metric(const std::string &path, const char *phase, const char *key) {
    std::vector<double> v;
    char *txt = rlc_read_file(path.c_str(), NULL);
    if (!txt) return v;
    std::string ph = std::string("\"phase\":\"") + phase + "\"", k = std::string("\"") + key + "\":";
    for (char *line = strtok(txt, "\n"); line; line = strtok(NULL, "\n")) {
        std::string s(line);
        size_t p = s.find(k);
        if (s.find(ph) != std::string::npos && p != std::string::npos) v.push_back(atof(s.c_str() + p + k.size()));
    }
    free(txt);
    return v;
}

// 4. the trainer with the backend injected
static void test_trainer() {
    printf("trainer (rlc_train with rlc_train_opts.ops)\n");
    const char *extra[] = {"sft.steps=2", "rl.steps=1", "eval_every=0", "ckpt_every=0", "sft.batch_size=8",
                           "out_dir=" RUNS};
    std::string base;
    for (const rlc_ops *o : {CPU, GPU}) {
        std::vector<const char *> over(OVERRIDES, OVERRIDES + sizeof OVERRIDES / sizeof OVERRIDES[0]);
        for (const char *e : extra) over.push_back(e);
        std::string nm = std::string("name=") + o->name;
        over.push_back(nm.c_str());
        over.push_back(o == CPU ? "device=cpu" : "device=cuda"); // the injected ops win over the key
        rlc_config cfg;
        char err[1024];
        CHECK(rlc_config_load(&cfg, NULL, over.data(), (int)over.size(), err, sizeof err) == 0, "config: %s", err);
        std::string dir = std::string(RUNS "/") + o->name;
        std::string cmd = "rm -rf " + dir;
        CHECK(system(cmd.c_str()) == 0, "%s", cmd.c_str());
        rlc_train_opts opts;
        memset(&opts, 0, sizeof opts);
        opts.quiet = 1;
        opts.ops = o;
        double t0 = rlc_now();
        CHECK(rlc_train(&cfg, &opts) == 0, "rlc_train on %s", o->name);
        printf("    %s: %.2f s\n", o->name, rlc_now() - t0);
        std::string latest = dir + "/ckpt/latest";
        char *l = rlc_read_file(latest.c_str(), NULL);
        CHECK(l && strncmp(l, "ckpt-rl-000001", 14) == 0, "%s: %s says %s", o->name, latest.c_str(), l ? l : "(none)");
        free(l);
    }
    std::string mc = RUNS "/cpu/metrics.jsonl", mg = RUNS "/cuda/metrics.jsonl";
    std::vector<double> lc = read_metric(mc, "sft", "loss"), lg = read_metric(mg, "sft", "loss");
    CHECK(lc.size() == 2 && lg.size() == 2, "SFT losses: %zu on the CPU, %zu on CUDA", lc.size(), lg.size());
    for (size_t i = 0; i < lc.size() && i < lg.size(); i++) {
        char what[48];
        snprintf(what, sizeof what, "trainer sft loss %zu", i + 1);
        close_scalar(what, lg[i], lc[i], 2e-2);
    }
    std::vector<double> rc = read_metric(mc, "rl", "score_mean"), rg = read_metric(mg, "rl", "score_mean");
    CHECK(rc.size() == 1 && rg.size() == 1, "RL records: %zu on the CPU, %zu on CUDA", rc.size(), rg.size());
    std::vector<double> ec = read_metric(mc, "rl", "eval_success"), eg = read_metric(mg, "rl", "eval_success");
    CHECK(ec.size() == 1 && eg.size() == 1, "final eval: %zu on the CPU, %zu on CUDA", ec.size(), eg.size());
}

// Steps 0-4 with the CUDA side's matmuls in `mode`.
static void run(int mode) {
    printf("==== CUDA precision %s\n", rlc_ops_cuda_precision_name(mode));
    g_grad_rel_tol = mode == RLC_CUDA_FP32 ? 3e-2 : 6e-2;
    rlc_ops_cuda_set_precision(mode);
    rlc_config cfg;
    char err[1024];
    if (rlc_config_load(&cfg, NULL, OVERRIDES, (int)(sizeof OVERRIDES / sizeof OVERRIDES[0]), err, sizeof err) != 0) {
        fprintf(stderr, "config: %s\n", err);
        CHECK(0, "config");
        return;
    }
    const rlc_task *task = rlc_task_find(cfg.task.name);
    rlc_rl c, g;
    CHECK(rlc_rl_init(&c, &cfg, CPU, task, max_tokens(&cfg)) == 0, "cpu init");
    CHECK(rlc_rl_init(&g, &cfg, GPU, task, max_tokens(&cfg)) == 0, "cuda init");
    rlc_rl_set_dist(&c, NULL);
    rlc_rl_set_dist(&g, NULL);
    rlc_model_init_weights(&c.model, cfg.seed);

    // 0. warm start on the CPU
    double t0 = rlc_now();
    rlc_sft_stats st = {};
    const int warm = 200;
    for (int s = 0; s < warm; s++) rlc_sft_step(&c.model, &c.opt, &cfg, task, (uint64_t)s * 16, 1e-2f, &st);
    printf("warm start: %d SFT steps on the CPU in %.2f s, loss %.3f\n", warm, rlc_now() - t0, st.loss);
    copy_weights(&g.model, &c.model);

    test_greedy(&g.model, &c.model, &cfg, task);
    test_sampled(&g.model, &c.model, &cfg, task, {cfg.rollout.temperature, cfg.rollout.top_k, cfg.rollout.top_p, 0});
    test_sampled(&g.model, &c.model, &cfg, task, {0.7f, 5, 0.9f, 0});
    rlc_adamw_free(&c.opt, &c.model); // fresh moments on the CPU side too (the CUDA side's are unused)
    rlc_adamw_init(&c.opt, &c.model);
    test_sft_step(&g, &c, task);
    test_grpo_step(&g, &c);
    rlc_rl_free(&c);
    rlc_rl_free(&g);
    test_trainer();
}

int main() {
    GPU = rlc_ops_cuda();
    CPU = rlc_ops_cpu();
    run(RLC_CUDA_FP32);
    run(RLC_CUDA_BF16_GEMM);
    run(RLC_CUDA_MIXED);
    rlc_ops_cuda_set_precision(RLC_CUDA_FP32);
    return test_finish("test_grpo_step_cuda");
}
