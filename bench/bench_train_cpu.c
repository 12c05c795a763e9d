// bench/bench_train_cpu.c: throughput of one full training step (forward, fused log-prob, backward, AdamW) of
// the CPU backend for a model shape from the command line, against the GFLOP/s of one large OpenBLAS sgemm
// measured in the same run. Prints tokens/s, achieved GFLOP/s and the ratio to sgemm.
//   bench_train_cpu [--layers 6] [--dim 512] [--heads 8] [--kv-heads 8] [--ffn 1536] [--vocab 256]
//                   [--tokens 8192] [--seq 1024] [--steps 3] [--gemm 2048]
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rlc/model.h"
#include "rlc/optim.h"
#include "rlc/util.h"

static double sgemm_gflops(int n, int reps) {
    float *a = rlc_malloc((size_t)n * n * sizeof(float)), *b = rlc_malloc((size_t)n * n * sizeof(float));
    float *c = rlc_calloc((size_t)n * n, sizeof(float));
    for (size_t i = 0; i < (size_t)n * n; i++) {
        a[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
        b[i] = (float)((i * 40503u) % 1000) / 1000.0f - 0.5f;
    }
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) { // first run warms up
        double t0 = rlc_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double dt = rlc_now() - t0;
        if (r > 0 && dt < best) best = dt;
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * n * (double)n * n / best / 1e9;
}

int main(int argc, char **argv) {
    int L = 6, C = 512, NH = 8, NKV = 8, F = 1536, V = 256, T = 8192, S = 1024, steps = 3, gn = 2048;
    for (int i = 1; i + 1 < argc; i += 2) {
        int v = atoi(argv[i + 1]);
        if (!strcmp(argv[i], "--layers")) L = v;
        else if (!strcmp(argv[i], "--dim")) C = v;
        else if (!strcmp(argv[i], "--heads")) NH = v;
        else if (!strcmp(argv[i], "--kv-heads")) NKV = v;
        else if (!strcmp(argv[i], "--ffn")) F = v;
        else if (!strcmp(argv[i], "--vocab")) V = v;
        else if (!strcmp(argv[i], "--tokens")) T = v;
        else if (!strcmp(argv[i], "--seq")) S = v;
        else if (!strcmp(argv[i], "--steps")) steps = v;
        else if (!strcmp(argv[i], "--gemm")) gn = v;
        else {
            fprintf(stderr, "bench_train_cpu: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (S > T) S = T;
    rlc_model_config cfg = {.vocab_size = V, .dim = C, .n_layers = L, .n_heads = NH, .n_kv_heads = NKV,
                            .head_dim = C / NH, .hidden_dim = F, .max_seq_len = S, .rms_eps = 1e-6f,
                            .rope_theta = 10000.0f, .qkv_bias = 0, .tie_embeddings = 0};
    rlc_model m;
    if (rlc_model_init(&m, &cfg, rlc_ops_cpu(), T) != 0) return 1;
    rlc_model_init_weights(&m, 1);
    rlc_adamw opt;
    rlc_adamw_init(&opt, &m);
    rlc_optim_config oc = {.lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f,
                           .grad_clip = 1.0f};
    snprintf(oc.schedule, sizeof oc.schedule, "constant");
    // packed batch: full sequences of length S, then the remainder
    int B = (T + S - 1) / S;
    int *cu = rlc_malloc((size_t)(B + 1) * sizeof(int)), *tok = rlc_malloc((size_t)T * sizeof(int));
    int *tgt = rlc_malloc((size_t)T * sizeof(int));
    cu[0] = 0;
    for (int b = 0; b < B; b++) cu[b + 1] = (b + 1) * S < T ? (b + 1) * S : T;
    for (int t = 0; t < T; t++) {
        tok[t] = (int)((t * 7919u) % (unsigned)V);
        tgt[t] = (int)((t * 104729u + 13) % (unsigned)V);
    }
    rlc_f *dl = rlc_malloc((size_t)T * sizeof(rlc_f));
    for (int t = 0; t < T; t++) dl[t] = -1.0f / T;

    // FLOPs: matmuls 2*T*in*out forward, twice that backward; attention causal per sequence
    int QD = NH * (C / NH), KD = NKV * (C / NH);
    double mm = 2.0 * T * ((double)C * QD + 2.0 * C * KD + (double)QD * C + 3.0 * C * F) * L + 2.0 * T * C * V;
    double att = 0;
    for (int b = 0; b < B; b++) {
        double n = cu[b + 1] - cu[b];
        att += 4.0 * NH * (C / NH) * n * (n + 1) / 2.0 * L; // QK^T and PV, causal half
    }
    double flops = 3.0 * (mm + att);

    double sg = sgemm_gflops(gn, 3);
    double best = 1e30, tf = 0, tb = 0, to = 0;
    for (int s = 0; s < steps + 1; s++) {
        double t0 = rlc_now();
        rlc_model_zero_grad(&m);
        rlc_model_forward(&m, tok, cu, B, T);
        rlc_model_logprobs(&m, tgt, 1.0f, NULL, NULL);
        double t1 = rlc_now();
        rlc_model_backward(&m, dl, NULL, NULL);
        double t2 = rlc_now();
        rlc_adamw_step(&opt, &m, &oc, oc.lr);
        double t3 = rlc_now();
        if (s > 0 && t3 - t0 < best) { // the first step warms up
            best = t3 - t0;
            tf = t1 - t0;
            tb = t2 - t1;
            to = t3 - t2;
        }
    }
    double gf = flops / best / 1e9;
    printf("bench_train_cpu: layers %d dim %d heads %d/%d ffn %d vocab %d tokens %d seq %d params %zu\n", L, C, NH,
           NKV, F, V, T, S, m.n_params);
    printf("step %.3f s (forward+logprob %.3f, backward %.3f, adamw %.3f)\n", best, tf, tb, to);
    printf("tokens/s %.0f   train GFLOP/s %.1f   sgemm(%d) GFLOP/s %.1f   ratio %.2f\n", T / best, gf, gn, sg,
           gf / sg);
    rlc_adamw_free(&opt, &m);
    rlc_model_free(&m);
    free(cu);
    free(tok);
    free(tgt);
    free(dl);
    return 0;
}
