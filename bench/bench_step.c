// bench/bench_step.c: one GRPO step of the real trainer (rlc_rl_step, host/rl.c: rollouts with the KV-cache engine,
// old log-probs, GRPO advantages, PPO-clip loss, backward, AdamW) on a Qwen2.5-0.5B-like model with random
// weights, timed phase by phase, against the device's own limits measured in the same run.
//
//   bench_step [--small] [--device auto|cpu|cuda] [--prompts 64] [--samples 8] [--new-tokens 512] [--steps 1]
//              [--warmup 1] [--micro-batch-tokens 8192] [--precision mixed|bf16-gemm|fp32] [--gemm N] [--seed S]
//              [--profile] [--graphs 0|1]
//
// --graphs: decode steps recorded as CUDA graphs and replayed (rlc_model_set_decode_graphs; host/model.c), 1 (the
// default) or 0; CUDA only (the CPU backend has no graphs; there both give the same run). With graphs on, the
// decode probe below is also timed with them off in the same run (decode_direct_ms), so that one run compares
// them, and the step that records the graph is timed alone (decode_record_ms: recording, instantiation, first
// launch; what a shape that does not hold costs); --graphs 0 runs the whole step (the rollouts) without them, for
// the step-level comparison.
//
// --profile (CUDA): after the measurements, the decode probe and one more GRPO step run again with the backend's
// op profiler (rlc_ops_cuda_profile_*: device time per op-table entry), whose tables are printed before the
// results. The profiler's event records slow the host, so none of the reported figures comes from those runs.
//
// --precision: the CUDA backend's precision mode (kernels/cuda/ops_cuda.h): mixed (bf16 activations and KV cache,
// bf16 GEMMs), bf16-gemm (fp32 activations, bf16 GEMM operands) or fp32 (cuBLAS sgemm). Without it the backend's
// own mode: mixed, unless RLC_CUDA_PRECISION says otherwise. The CPU backend has one mode (fp32); naming another
// there is an error. The mode used is printed in the header line and the JSON ("precision").
//
// Model (default): vocab 151936, dim 896, 24 layers, 14 query / 2 KV heads of dim 64, MLP 4864, q/k/v biases,
// tied embeddings, RoPE theta 1e6 (Qwen2.5-0.5B's shapes, 494M parameters). --small: a tiny model and batch for a
// CI smoke run (seconds on one CPU core). Prompts are the addition task's (about 10 tokens); rollout.ignore_eos and
// no stop strings make every sequence run the full --new-tokens (random weights would otherwise hit EOS now and
// then), at temperature 1 with the engine's sampler (ops->sample_tokens over the whole vocabulary: on the device
// with CUDA). The weights are uniform
// with the standard deviations of rlc_model_init_weights (0.02, output projections 0.02 / sqrt(2 L); norms 1,
// biases 0) from a counter-based hash on all cores: Box-Muller on one core would take ~40 s for 0.5B parameters.
//
// Reported (a table, then one JSON line starting {"bench":"bench_step"):
// - time per phase of the timed steps (rl.c's metrics): rollout (generation), log-probs (old-policy forward),
//   update (forward + backward + AdamW); rollout tokens/s = generated tokens / rollout time; training tokens/s =
//   trained tokens (prompt + response, all sequences) / update time.
// - MFU of the update phase: FLOPs / time / peak. FLOPs = 6 P T + 3 A (forward 2 P T + A, backward twice that):
//     P = the parameters that multiply activations: every layer's q/k/v/o and gate/up/down projections and the
//         LM head (V C, counted once with tied embeddings; the embedding lookup, norms and biases do no matmul);
//     T = trained tokens (sum over sequences of len - 1: the packed input);
//     A = attention forward, causal: 4 L NH HD sum_seq n (n + 1) / 2, n = len - 1 (QK^T and PV, 2 FLOPs per
//         multiply-add, each query against the keys up to itself).
//   Peak: on CUDA the bf16 rate of a large cuBLAS GEMM (--gemm, default 8192^3, rlc_ops_cuda_gemm_bf16_tflops),
//   on the CPU the backend's own sgemm (matmul_forward, default 2048^3); both are measured in this run. The
//   backend's matmul_forward rate in the chosen mode (registered weights, as the model's: sgemm in fp32 mode,
//   bf16 GEMMs reading the bf16 weight copy otherwise) is reported too (mfu_vs_matmul).
// - Decode against the memory-bandwidth bound: a decode step of B rows at context c reads the weights (every
//   parameter once: 4 bytes each in fp32 mode and on the CPU, 2 in the bf16 modes, whose GEMMs read the bf16
//   copy) and each row's KV cache (2 L NKV HD c x act_bytes: 4, or 2 in mixed precision); bound = those bytes /
//   the device copy bandwidth (ops->copy of a large buffer, read + write bytes / time, this run).
//   decode_bw_frac = bound / measured time of rlc_model_decode (the engine's cached forward, logits left in backend
//   memory) at B = one wave's rows, c = the rollouts' mean context, after three untimed steps (with graphs: two
//   run directly, the third is recorded, the timed ones are replays); decode_enqueue_ms = the part of that
//   time until
//   the calls have returned (on a device: the host's cost of launching a step; when it nears the step time, the step
//   is bound by launches, not by memory; on the CPU it is the step); rollout_bw_frac = the same bound summed over
//   every decode step of the rollouts / the rollout time (which also holds prefill and sampling).
//   sample_ms = ops->sample_tokens on those B rows of logits with the run's sampler (temperature, top-k, top-p),
//   per step: on a device its passes over the (B, V) fp32 logits, which the bound above does not count.
// - peak backend memory (rlc_mem_info.peak) over the model, the steps and the rollouts.
// Exit status: 0, 1 on an error, 3 when a reported number is not finite (the smoke test's check).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rlc/backend.h"
#include "rlc/config.h"
#include "rlc/metrics.h"
#include "rlc/rl.h"
#include "rlc/rng.h"
#include "rlc/rollout.h"
#include "rlc/util.h"
#ifdef RLC_HAVE_CUDA
#include "ops_cuda.h"
#endif

typedef struct opts {
    int small, profile, graphs;
    char device[8];
    int prompts, samples, new_tokens, steps, warmup, micro, gemm;
    char precision[16]; // "" = the backend's mode
    unsigned long long seed;
} opts;

static void usage(void) {
    fprintf(stderr, "usage: bench_step [--small] [--device auto|cpu|cuda] [--prompts N] [--samples G] "
                    "[--new-tokens T] [--steps S] [--warmup W] [--micro-batch-tokens M] "
                    "[--precision mixed|bf16-gemm|fp32] [--gemm N] [--seed S] [--profile] [--graphs 0|1]\n");
}

static int parse(int argc, char **argv, opts *o) {
    memset(o, 0, sizeof *o);
    snprintf(o->device, sizeof o->device, "auto");
    o->prompts = 64, o->samples = 8, o->new_tokens = 512, o->steps = 1, o->warmup = 1, o->micro = 8192;
    o->seed = 1;
    o->graphs = 1;
    for (int i = 1; i < argc; i++) // --small first: explicit sizes override its defaults wherever they stand
        if (!strcmp(argv[i], "--small")) {
            o->small = 1;
            o->prompts = 4, o->samples = 4, o->new_tokens = 16, o->micro = 256;
        }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--small")) continue;
        if (!strcmp(a, "--profile")) {
            o->profile = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "bench_step: %s needs a value\n", a);
            return -1;
        }
        const char *v = argv[++i];
        char *end;
        long n = strtol(v, &end, 10);
        int num = *v && !*end;
        if (!strcmp(a, "--device")) {
            if (strcmp(v, "auto") && strcmp(v, "cpu") && strcmp(v, "cuda")) {
                fprintf(stderr, "bench_step: --device %s: expected auto, cpu or cuda\n", v);
                return -1;
            }
            snprintf(o->device, sizeof o->device, "%s", v);
        } else if (!strcmp(a, "--precision")) {
            if (strcmp(v, "mixed") && strcmp(v, "bf16-gemm") && strcmp(v, "fp32")) {
                fprintf(stderr, "bench_step: --precision %s: expected mixed, bf16-gemm or fp32\n", v);
                return -1;
            }
            snprintf(o->precision, sizeof o->precision, "%s", v);
        } else if (!strcmp(a, "--graphs")) {
            if (strcmp(v, "0") && strcmp(v, "1")) {
                fprintf(stderr, "bench_step: --graphs %s: expected 0 or 1\n", v);
                return -1;
            }
            o->graphs = v[0] == '1';
        } else if (!strcmp(a, "--seed") && num && n >= 0) {
            o->seed = (unsigned long long)n;
        } else if (num && n >= 1 && n <= 1000000) {
            if (!strcmp(a, "--prompts")) o->prompts = (int)n;
            else if (!strcmp(a, "--samples")) o->samples = (int)n;
            else if (!strcmp(a, "--new-tokens")) o->new_tokens = (int)n;
            else if (!strcmp(a, "--steps")) o->steps = (int)n;
            else if (!strcmp(a, "--micro-batch-tokens")) o->micro = (int)n;
            else if (!strcmp(a, "--gemm")) o->gemm = (int)n;
            else if (!strcmp(a, "--warmup")) o->warmup = (int)n;
            else {
                fprintf(stderr, "bench_step: unknown option %s\n", a);
                return -1;
            }
        } else if (!strcmp(a, "--warmup") && num && n == 0) {
            o->warmup = 0;
        } else {
            fprintf(stderr, "bench_step: %s %s: expected a positive integer (or a known option)\n", a, v);
            return -1;
        }
    }
    return 0;
}

// Seconds as milliseconds for the JSON line, null when not measured (NaN is not JSON).
static const char *json_ms(char *buf, double s) {
    if (isfinite(s)) snprintf(buf, 32, "%.6g", s * 1e3);
    else snprintf(buf, 32, "null");
    return buf;
}

// Decode steps of B rows (slots 0..B-1) at context ctx: three untimed steps (with graphs: two run directly, then
// one recorded), then reps timed ones. *third_s (unless NULL): the third untimed step until the device is done
// (with graphs: the recording, its instantiation and first launch). *step_s: seconds per step until the device is done (downloading one value of
// the last step's logits waits for it); *enq_s: until the calls had returned (on a device: launched, not
// necessarily run). The logits stay in backend memory, as in the rollouts (sampling reads them there).
static const rlc_f *decode_probe(rlc_model *m, rlc_kv_cache *kv, const int *slots, const int *toks, int B, int ctx,
                                 int reps, double *step_s, double *enq_s, double *third_s) {
    for (int i = 0; i < B; i++) kv->len[i] = ctx; // the cache rows are zeros: the same reads as real ones
    rlc_f probe;
    const rlc_f *lg = NULL;
    for (int w = 0; w < 2; w++) lg = rlc_model_decode(m, kv, slots, toks, B, NULL);
    m->ops->download(&probe, lg, sizeof probe);
    double t0 = rlc_now();
    lg = rlc_model_decode(m, kv, slots, toks, B, NULL);
    m->ops->download(&probe, lg, sizeof probe);
    if (third_s) *third_s = rlc_now() - t0;
    t0 = rlc_now();
    for (int r = 0; r < reps; r++) lg = rlc_model_decode(m, kv, slots, toks, B, NULL);
    double t_enq = rlc_now();
    m->ops->download(&probe, lg, sizeof probe);
    *step_s = (rlc_now() - t0) / reps;
    *enq_s = (t_enq - t0) / reps;
    return lg;
}

// Uniform weights with rlc_model_init_weights's standard deviations (see the header), from a counter hash:
// element j of tensor i depends only on (seed, i, j), so the threads may split the work any way.
static void init_weights_fast(rlc_model *m, uint64_t seed) {
    rlc_f *host = rlc_malloc(m->n_params * sizeof(rlc_f));
    double out_std = 0.02 / sqrt(2.0 * m->cfg.n_layers);
    for (int i = 0; i < m->n_tensors; i++) {
        const rlc_tensor_info *t = &m->tensors[i];
        rlc_f *p = host + t->offset;
        int is_norm = strstr(t->name, "norm.weight") != NULL, is_bias = strstr(t->name, ".bias") != NULL;
        int is_out = strstr(t->name, "o_proj") != NULL || strstr(t->name, "down_proj") != NULL;
        double a = sqrt(3.0) * (is_out ? out_std : 0.02); // uniform on [-a, a] has standard deviation a / sqrt(3)
        long long n = (long long)t->numel;
#pragma omp parallel for schedule(static)
        for (long long j = 0; j < n; j++) {
            double u = (double)(rlc_rng_u64(seed, (uint64_t)i, (uint64_t)j) >> 11) * (1.0 / 9007199254740992.0);
            p[j] = is_norm ? 1.0f : is_bias ? 0.0f : (rlc_f)((2.0 * u - 1.0) * a);
        }
    }
    m->ops->upload(m->params, host, m->n_params * sizeof(rlc_f));
    free(host);
}

// Wait for everything the backend has queued: a download returns when the copy is done, after the work before it.
static void sync_backend(const rlc_ops *o, const void *p) {
    char b[4];
    o->download(b, p, sizeof b);
}

// Device copy bandwidth in GB/s: ops->copy of `bytes`, counting the bytes read and written.
static double copy_gbps(const rlc_ops *o, size_t bytes, int reps) {
    void *a = o->try_alloc(bytes), *b = a ? o->try_alloc(bytes) : NULL;
    if (!b) {
        if (a) o->free(a);
        return bytes > ((size_t)1 << 24) ? copy_gbps(o, bytes / 4, reps) : NAN;
    }
    o->copy(b, a, bytes); // warm-up (first touch)
    sync_backend(o, b);
    double t0 = rlc_now();
    for (int r = 0; r < reps; r++) o->copy(r % 2 ? a : b, r % 2 ? b : a, bytes);
    sync_backend(o, a);
    double dt = rlc_now() - t0;
    o->free(a);
    o->free(b);
    return 2.0 * (double)bytes * reps / dt / 1e9;
}

// The backend's matmul_forward rate in TFLOP/s on (n, n) x (n, n)^T, best of reps after a warm-up: activations a, c
// in the backend's activation type, the weight b registered as the model registers its parameters (a backend with
// bf16 working weights reads their bf16 copy, as in training).
static double matmul_tflops(const rlc_ops *o, int n, int reps) {
    size_t nn = (size_t)n * n;
    rlc_act *a = o->try_alloc(nn * o->act_bytes), *c = o->try_alloc(nn * o->act_bytes);
    rlc_f *b = o->try_alloc(nn * sizeof(rlc_f));
    double best = NAN;
    if (a && b && c) {
        rlc_f *h = rlc_malloc(nn * sizeof(rlc_f));
        for (size_t i = 0; i < nn; i++) h[i] = (rlc_f)((double)((i * 2654435761u) % 1000) / 1000.0 - 0.5);
        o->upload(b, h, nn * sizeof(rlc_f));
        o->act_from_f(a, b, nn); // the same values, as activations
        if (o->register_params) o->register_params(b, nn);
        free(h);
        best = 1e30;
        for (int r = 0; r <= reps; r++) {
            double t0 = rlc_now();
            o->matmul_forward(c, a, b, NULL, n, n, n);
            sync_backend(o, c);
            double dt = rlc_now() - t0;
            if (r > 0 && dt < best) best = dt;
        }
        best = 2.0 * (double)n * n * n / best / 1e12;
    }
    if (a) o->free(a);
    if (b) o->free(b);
    if (c) o->free(c);
    return best;
}

// Matmul parameters P of the FLOP count (see the header).
static double matmul_params(const rlc_model_config *c) {
    double C = c->dim, QD = (double)c->n_heads * c->head_dim, KD = (double)c->n_kv_heads * c->head_dim;
    double per_layer = C * QD + 2.0 * C * KD + QD * C + 3.0 * C * c->hidden_dim;
    return per_layer * c->n_layers + (double)c->vocab_size * C;
}

static double gb(double bytes) { return bytes / 1e9; }

int main(int argc, char **argv) {
    opts o;
    if (parse(argc, argv, &o) != 0) {
        usage();
        return 1;
    }
    char err[1024];
    const rlc_ops *ops = rlc_backend_select(o.device, 0, err, sizeof err);
    if (!ops) {
        fprintf(stderr, "bench_step: %s\n", err);
        return 1;
    }
    int is_cuda = !strcmp(ops->name, "cuda");
    if (o.profile && !is_cuda) {
        fprintf(stderr, "bench_step: --profile times the CUDA backend's op table; the %s backend has no profiler "
                        "(ignored)\n", ops->name);
        o.profile = 0;
    }
    const char *prec = "fp32"; // the mode used: the CPU backend's only one
#ifdef RLC_HAVE_CUDA
    if (is_cuda) {
        for (int m = RLC_CUDA_FP32; m <= RLC_CUDA_MIXED; m++)
            if (!strcmp(o.precision, rlc_ops_cuda_precision_name(m))) rlc_ops_cuda_set_precision(m);
        prec = rlc_ops_cuda_precision_name(rlc_ops_cuda_precision()); // --precision, else the backend's own
    }
#endif
    if (!is_cuda && o.precision[0] && strcmp(o.precision, "fp32")) {
        fprintf(stderr, "bench_step: --precision %s: the %s backend runs in fp32 only\n", o.precision, ops->name);
        return 1;
    }
    // bytes a decode step reads per weight and per KV-cache element (see the header)
    const double w_elem = strcmp(prec, "fp32") ? 2.0 : (double)sizeof(rlc_f), kv_elem = (double)ops->act_bytes;
    if (!o.gemm) o.gemm = o.small ? 256 : is_cuda ? 8192 : 2048;

    // the job: GRPO, one epoch, one mini-batch, no KL (no reference policy), no SFT phase
    char ov[32][96];
    int nov = 0;
#define OV(...) snprintf(ov[nov++], sizeof ov[0], __VA_ARGS__)
    if (o.small) {
        OV("model.vocab_size=1024"), OV("model.dim=64"), OV("model.n_layers=2"), OV("model.n_heads=4");
        OV("model.n_kv_heads=2"), OV("model.head_dim=16"), OV("model.hidden_dim=160");
    } else {
        OV("model.vocab_size=151936"), OV("model.dim=896"), OV("model.n_layers=24"), OV("model.n_heads=14");
        OV("model.n_kv_heads=2"), OV("model.head_dim=64"), OV("model.hidden_dim=4864");
    }
    OV("model.max_seq_len=%d", o.new_tokens + 64); // addition prompts are about 10 tokens
    OV("model.rms_eps=1e-6"), OV("model.rope_theta=1000000"), OV("model.qkv_bias=true");
    OV("model.tie_embeddings=true"), OV("task.name=addition"), OV("sft.steps=0");
    OV("rollout.prompts_per_step=%d", o.prompts), OV("rollout.group_size=%d", o.samples);
    OV("rollout.max_new_tokens=%d", o.new_tokens), OV("rollout.temperature=1"), OV("rollout.ignore_eos=true");
    OV("rl.method=grpo"), OV("rl.epochs=1"), OV("rl.mini_batches=1"), OV("rl.micro_batch_tokens=%d", o.micro);
    OV("rl.kl_beta=0"), OV("rl.steps=%d", o.warmup + o.steps + o.profile), OV("device=%s", o.device);
    OV("seed=%llu", o.seed);
#undef OV
    const char *over[32];
    for (int i = 0; i < nov; i++) over[i] = ov[i];
    rlc_config cfg;
    if (rlc_config_parse(&cfg, NULL, "<bench_step>", over, nov, err, sizeof err) != 0) {
        fprintf(stderr, "bench_step: %s\n", err);
        return 1;
    }
    const rlc_model_config *mc = &cfg.model;
    int N = o.prompts * o.samples, max_tokens = o.micro;
    if (mc->max_seq_len > max_tokens) max_tokens = mc->max_seq_len;
    if (N > max_tokens) max_tokens = N;

    double t_setup = rlc_now();
    rlc_rl rl;
    if (rlc_rl_init(&rl, &cfg, ops, rlc_task_find(cfg.task.name), max_tokens) != 0) return 1;
    rlc_model_set_decode_graphs(&rl.model, o.graphs);
    rlc_rl_set_dist(&rl, NULL);
    init_weights_fast(&rl.model, o.seed);
    rlc_rl_begin(&rl);
    sync_backend(ops, rl.model.params);
    t_setup = rlc_now() - t_setup;

    // the steps: warm-up first (not timed), then the timed ones, summed
    rlc_metrics mt;
    rlc_metrics_open(&mt, NULL);
    mt.quiet = 1;
    double t_roll = 0, t_lp = 0, t_upd = 0, t_step = 0, roll_tok = 0, train_tok = 0, waves = 0, resp = 0, groups = 0;
    for (int s = 0; s < o.warmup + o.steps; s++) {
        rlc_metrics_begin(&mt);
        double t0 = rlc_now();
        if (rlc_rl_step(&rl, &mt) != 0) {
            fprintf(stderr, "bench_step: the GRPO step failed\n");
            return 1;
        }
        double dt = rlc_now() - t0;
        fprintf(stderr, "bench_step: %s step %d: %.2f s\n", s < o.warmup ? "warm-up" : "timed", s + 1, dt);
        if (s < o.warmup) continue;
        t_roll += rlc_metrics_get(&mt, "time_rollout", NAN);
        t_lp += rlc_metrics_get(&mt, "time_logprob", NAN);
        t_upd += rlc_metrics_get(&mt, "time_update", NAN);
        t_step += dt;
        roll_tok += rlc_metrics_get(&mt, "rollout_tokens", NAN);
        train_tok += rlc_metrics_get(&mt, "train_tokens", NAN);
        waves += rlc_metrics_get(&mt, "rollout_waves", NAN);
        resp += rlc_metrics_get(&mt, "response_length", NAN);
        groups += rlc_metrics_get(&mt, "groups", NAN);
    }
    rlc_metrics_close(&mt);
    rlc_mem_info mi;
    ops->mem_info(&mi);

    // shapes of the timed steps' sequences: every one ran new_tokens (ignore_eos), prompts of equal length
    double n_seq = groups * o.samples, len_in = train_tok / n_seq; // packed input length per sequence (len - 1)
    double resp_len = resp / o.steps, prompt_len = len_in + 1 - resp_len;
    int L = mc->n_layers, NH = mc->n_heads, NKV = mc->n_kv_heads, HD = mc->head_dim;
    double P = matmul_params(mc);
    double attn = 4.0 * L * NH * HD * n_seq * len_in * (len_in + 1) / 2.0;
    double train_flops = 6.0 * P * train_tok + 3.0 * attn;

    // decode alone (the engine's cached forward) at one wave's rows and the rollouts' mean context
    ops->mem_info(&mi);
    int wave_groups = rlc_rollout_wave_groups(&rl.model, o.samples, o.prompts, mi.free);
    int B = (wave_groups > 0 ? wave_groups : 1) * o.samples, ctx = (int)(prompt_len + resp_len / 2.0 + 0.5);
    if (ctx >= mc->max_seq_len - 8) ctx = mc->max_seq_len - 8;
    rlc_kv_cache kv;
    double dec_s = NAN, enq_s = NAN, smp_s = NAN, dec_direct_s = NAN, enq_direct_s = NAN, rec_s = NAN;
    const rlc_decode_graph_stats roll_graphs = rlc_model_decode_graph_stats(&rl.model); // the rollouts' steps so far
    if (rlc_kv_cache_init(&kv, &rl.model, B, mc->max_seq_len) == 0) {
        int *slots = rlc_malloc((size_t)B * sizeof(int)), *toks = rlc_malloc((size_t)B * sizeof(int));
        for (int i = 0; i < B; i++) {
            slots[i] = i;
            toks[i] = 3 + i % 90;
            kv.len[i] = ctx; // the cache rows are zeros: the same reads as real ones
        }
        int reps = o.small ? 3 : 5;
        const rlc_f *lg = decode_probe(&rl.model, &kv, slots, toks, B, ctx, reps, &dec_s, &enq_s, &rec_s);
        if (is_cuda && o.graphs) { // the same steps with graphs off, then on again for what follows
            rlc_model_set_decode_graphs(&rl.model, 0);
            lg = decode_probe(&rl.model, &kv, slots, toks, B, ctx, reps, &dec_direct_s, &enq_direct_s, NULL);
            rlc_model_set_decode_graphs(&rl.model, 1);
        }
        // sampling those B rows with the run's sampler (synchronous: only the B results come back)
        const rlc_rollout_config *rc = &cfg.rollout;
        rlc_sampling sm = {.temperature = rc->temperature, .top_k = rc->top_k, .top_p = rc->top_p};
        rlc_sample_key *keys = rlc_malloc((size_t)B * sizeof *keys);
        int *stok = rlc_malloc((size_t)B * sizeof(int));
        float *slp = rlc_malloc((size_t)B * sizeof(float)), *sent = rlc_malloc((size_t)B * sizeof(float));
        for (int i = 0; i < B; i++) keys[i] = (rlc_sample_key){i / o.samples, i % o.samples, ctx};
        ops->sample_tokens(stok, slp, sent, lg, (size_t)mc->vocab_size, B, mc->vocab_size, &sm, keys, o.seed, 0);
        double t0 = rlc_now();
        for (int r = 0; r < reps; r++)
            ops->sample_tokens(stok, slp, sent, lg, (size_t)mc->vocab_size, B, mc->vocab_size, &sm, keys, o.seed,
                               (uint64_t)r + 1);
        smp_s = (rlc_now() - t0) / reps;
#ifdef RLC_HAVE_CUDA
        if (o.profile && is_cuda) { // the same steps and draw again, with the op profiler
            rlc_ops_cuda_profile_enable(1);
            rlc_ops_cuda_profile_reset();
            for (int i = 0; i < B; i++) kv.len[i] = ctx;
            for (int r = 0; r < reps; r++) lg = rlc_model_decode(&rl.model, &kv, slots, toks, B, NULL);
            ops->sample_tokens(stok, slp, sent, lg, (size_t)mc->vocab_size, B, mc->vocab_size, &sm, keys, o.seed, 0);
            char title[160];
            snprintf(title, sizeof title, "%d decode steps of %d rows at context %d, then one draw", reps, B, ctx);
            rlc_ops_cuda_profile_report(stdout, title);
            rlc_ops_cuda_profile_enable(0);
        }
#endif
        free(keys);
        free(stok);
        free(slp);
        free(sent);
        free(slots);
        free(toks);
        rlc_kv_cache_free(&kv, &rl.model);
    }
#ifdef RLC_HAVE_CUDA
    if (o.profile && is_cuda) { // one more GRPO step with the op profiler
        rlc_ops_cuda_profile_enable(1);
        rlc_ops_cuda_profile_reset();
        rlc_metrics_open(&mt, NULL);
        mt.quiet = 1;
        rlc_metrics_begin(&mt);
        if (rlc_rl_step(&rl, &mt) != 0) {
            fprintf(stderr, "bench_step: the profiled GRPO step failed\n");
            return 1;
        }
        rlc_metrics_close(&mt);
        rlc_ops_cuda_profile_report(stdout, "one more GRPO step (rollouts, log-probs, update)");
        rlc_ops_cuda_profile_enable(0);
    }
#endif
    size_t n_params = rl.model.n_params;
    rlc_rl_free(&rl);

    // the device's limits, measured now (the model is gone: nothing else holds the memory)
    size_t cbytes = o.small ? (size_t)32 << 20 : is_cuda ? (size_t)1 << 30 : (size_t)256 << 20;
    double bw = copy_gbps(ops, cbytes, o.small ? 4 : 10);
    double mm_peak = matmul_tflops(ops, o.gemm, 3), bf16_peak = NAN;
#ifdef RLC_HAVE_CUDA
    if (is_cuda) bf16_peak = rlc_ops_cuda_gemm_bf16_tflops(o.gemm, 10);
#endif
    double peak = is_cuda ? bf16_peak : mm_peak;
    double w_bytes = (double)n_params * w_elem, kv_tok = 2.0 * L * NKV * HD * kv_elem;
    double dec_bound = (w_bytes + (double)B * (ctx + 1) * kv_tok) / (bw * 1e9);
    // one step's rollouts: each wave decodes new_tokens - 1 steps over its rows (the first token comes from the
    // prefill), the j-th of them reading prompt_len + j cache rows per sequence
    double wpst = waves / o.steps, steps_dec = wpst * (resp_len - 1);
    double kv_read = n_seq / o.steps * kv_tok * ((resp_len - 1) * prompt_len + (resp_len - 1) * resp_len / 2.0);
    double roll_bound = (steps_dec * w_bytes + kv_read) / (bw * 1e9);
    double train_tps = train_tok / t_upd, roll_tps = roll_tok / t_roll;
    double mfu = train_flops / t_upd / (peak * 1e12), mfu_mm = train_flops / t_upd / (mm_peak * 1e12);

    printf("bench_step: one GRPO step of rlc_rl_step on %s (precision %s), %s model: %.1fM parameters (vocab %d, dim %d, "
           "%d layers, %d/%d heads x %d, MLP %d, qkv bias, tied), %d prompts x %d samples, %d new tokens; %d timed "
           "step(s) after %d warm-up; setup %.1f s\n",
           ops->name, prec, o.small ? "small" : "Qwen2.5-0.5B-like", n_params / 1e6, mc->vocab_size, mc->dim, L,
           NH, NKV, HD, mc->hidden_dim, o.prompts, o.samples, o.new_tokens, o.steps, o.warmup, t_setup);
    printf("%-34s %10s %12s %12s\n", "phase (per timed step)", "seconds", "tokens", "tokens/s");
    printf("%-34s %10.3f %12.0f %12.0f\n", "rollout (generation)", t_roll / o.steps, roll_tok / o.steps, roll_tps);
    printf("%-34s %10.3f %12.0f %12.0f\n", "log-probs (old policy, forward)", t_lp / o.steps, train_tok / o.steps,
           train_tok / t_lp);
    printf("%-34s %10.3f %12.0f %12.0f\n", "update (forward+backward+AdamW)", t_upd / o.steps, train_tok / o.steps,
           train_tps);
    printf("%-34s %10.3f\n", "whole step", t_step / o.steps);
    printf("sequences: %.0f (%.1f waves per step), prompt %.1f + response %.1f tokens\n", n_seq / o.steps, wpst,
           prompt_len, resp_len);
    printf("training: %.3g TFLOP/s = MFU %.2f%% of %s %.3g TFLOP/s (%d^3, this run); %.2f%% of the backend's "
           "matmul_forward %.3g TFLOP/s\n",
           train_flops / t_upd / 1e12, 100 * mfu, is_cuda ? "the cuBLAS bf16 GEMM peak" : "the sgemm peak", peak,
           o.gemm, 100 * mfu_mm, mm_peak);
    printf("decode (rlc_model_decode, %d rows at context %d): %.3g ms/step, %.0f tokens/s; bound %.3g ms (weights "
           "%.3g GB + KV %.3g GB at %.0f GB/s copy) = %.1f%% of the bandwidth bound\n",
           B, ctx, dec_s * 1e3, B / dec_s, dec_bound * 1e3, gb(w_bytes), gb((double)B * (ctx + 1) * kv_tok), bw,
           100 * dec_bound / dec_s);
    printf("decode host time: %.3g ms/step to return from rlc_model_decode = %.0f%% of the step (%s)\n", enq_s * 1e3,
           100 * enq_s / dec_s,
           is_cuda ? "the launches' cost on the host; near 100% the step is bound by launching, not by the device"
                   : "the CPU backend runs synchronously");
    if (is_cuda)
        printf("decode graphs: %s; the rollouts' decode steps (warm-up included): %lld replayed, %lld recorded, %lld "
               "direct (%lld recordings refused: a call needed the host)\n",
               o.graphs ? "on (--graphs 1)" : "off (--graphs 0)", roll_graphs.replayed, roll_graphs.recorded,
               roll_graphs.direct, roll_graphs.refused);
    if (isfinite(dec_direct_s))
        printf("decode without graphs (the same steps, this run): %.3g ms/step, host %.3g ms/step; with graphs %.3g "
               "ms/step = %.2fx faster; the recording step (record, instantiate, run) took %.3g ms\n",
               dec_direct_s * 1e3, enq_direct_s * 1e3, dec_s * 1e3, dec_direct_s / dec_s, rec_s * 1e3);
    double logits_bytes = (double)B * mc->vocab_size * sizeof(rlc_f);
    printf("sampling (ops->sample_tokens, the same %d rows, temperature %g, top-k %d, top-p %g): %.3g ms/step = %.0f%% "
           "of the decode step (logits %.3g GB: %.3g ms at the copy bandwidth)\n",
           B, cfg.rollout.temperature, cfg.rollout.top_k, cfg.rollout.top_p, smp_s * 1e3, 100 * smp_s / dec_s,
           gb(logits_bytes), logits_bytes / (bw * 1e9) * 1e3);
    printf("rollout vs the bandwidth bound of its decode steps: %.3f s of %.3f s = %.2f%% (the rest: prefill and "
           "sampling)\n",
           roll_bound, t_roll / o.steps, 100 * roll_bound / (t_roll / o.steps));
    printf("peak backend memory: %.3g GB (of %.3g GB)\n", gb((double)mi.peak), gb((double)mi.total));

    double nums[] = {t_roll, t_lp, t_upd, t_step, roll_tps, train_tps, train_flops, mm_peak, mfu_mm, bw,
                     dec_s, enq_s, smp_s, dec_bound, roll_bound, is_cuda ? bf16_peak : mm_peak, mfu};
    char jd[32], je[32], jr[32];
    int finite = 1;
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) finite &= isfinite(nums[i]) && nums[i] > 0;
    printf("{\"bench\":\"bench_step\",\"device\":\"%s\",\"precision\":\"%s\",\"small\":%d,\"params\":%zu,"
           "\"prompts\":%d,\"samples\":%d,\"new_tokens\":%d,\"steps\":%d,\"warmup\":%d,\"waves_per_step\":%.3g,"
           "\"prompt_len\":%.4g,\"response_len\":%.4g,\"rollout_s\":%.6g,\"logprob_s\":%.6g,\"update_s\":%.6g,"
           "\"step_s\":%.6g,\"rollout_tokens_per_s\":%.6g,\"train_tokens_per_s\":%.6g,\"train_tflops\":%.6g,"
           "\"peak_tflops\":%.6g,\"peak_ref\":\"%s\",\"mfu\":%.6g,\"matmul_tflops\":%.6g,\"mfu_vs_matmul\":%.6g,"
           "\"copy_gbps\":%.6g,\"decode_rows\":%d,\"decode_ctx\":%d,\"decode_step_ms\":%.6g,"
           "\"decode_enqueue_ms\":%.6g,\"sample_ms\":%.6g,\"graphs\":%d,\"decode_direct_ms\":%s,"
           "\"decode_direct_enqueue_ms\":%s,\"decode_record_ms\":%s,\"rollout_decode_replayed\":%lld,\"rollout_decode_recorded\":%lld,"
           "\"rollout_decode_direct\":%lld,\"rollout_decode_refused\":%lld,"
           "\"decode_bound_ms\":%.6g,"
           "\"decode_bw_frac\":%.6g,\"rollout_bw_frac\":%.6g,\"peak_mem_bytes\":%zu,\"mem_total_bytes\":%zu}\n",
           ops->name, prec, o.small, n_params, o.prompts, o.samples, o.new_tokens, o.steps, o.warmup, wpst,
           prompt_len, resp_len, t_roll / o.steps, t_lp / o.steps, t_upd / o.steps, t_step / o.steps, roll_tps,
           train_tps, train_flops / t_upd / 1e12, peak, is_cuda ? "cublas_bf16_gemm" : "cpu_sgemm", mfu, mm_peak,
           mfu_mm, bw, B, ctx, dec_s * 1e3, enq_s * 1e3, smp_s * 1e3, is_cuda ? o.graphs : 0, json_ms(jd, dec_direct_s),
           json_ms(je, enq_direct_s), json_ms(jr, is_cuda && o.graphs ? rec_s : NAN), roll_graphs.replayed, roll_graphs.recorded, roll_graphs.direct, roll_graphs.refused,
           dec_bound * 1e3,
           dec_bound / dec_s,
           roll_bound / (t_roll / o.steps),
           mi.peak, mi.total);
    if (!finite) {
        fprintf(stderr, "bench_step: a reported number is not finite or not positive\n");
        return 3;
    }
    return 0;
}
