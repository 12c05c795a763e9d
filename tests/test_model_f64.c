// tests/test_model_f64.c: finite-difference gradient check of the whole model (double-precision build):
// every parameter of a tiny GQA model with q/k/v bias and a value head, on a packed batch of sequences of
// different lengths (one of length 1), for a loss that mixes log-probs, entropies and values. Tied and untied
// LM heads. Relative error <= 1e-6.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rlc/model.h"
#include "test_util.h"

static uint64_t rng_state = 12345;
static double urand(void) { // uniform in [-1, 1)
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) / 4503599627370496.0 - 1.0;
}

enum { NSEQ = 4 };
static const int lens[NSEQ] = {5, 1, 9, 3};

typedef struct {
    int T, B;
    int tokens[64], targets[64], cu[NSEQ + 1];
    double a[64], b[64], c[64];
} batch;

static double loss_of(rlc_model *m, const batch *bt, double tau) {
    double lp[64], en[64];
    rlc_model_forward(m, bt->tokens, bt->cu, bt->B, bt->T);
    rlc_model_logprobs(m, bt->targets, (float)tau, lp, en);
    double L = 0;
    for (int t = 0; t < bt->T; t++) {
        L += bt->a[t] * (bt->targets[t] >= 0 ? lp[t] : 0) + bt->b[t] * en[t];
        if (m->cfg.value_head) L += bt->c[t] * m->values[t];
    }
    return L;
}

static void check_model(int tied, int bias, int value_head) {
    rlc_model_config cfg = {.vocab_size = 13, .dim = 8, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                            .head_dim = 4, .hidden_dim = 12, .max_seq_len = 16, .rms_eps = 1e-5f,
                            .rope_theta = 100.0f, .qkv_bias = bias, .tie_embeddings = tied,
                            .value_head = value_head};
    rlc_model m;
    CHECK(rlc_model_init(&m, &cfg, rlc_ops_cpu(), 64) == 0, "model init");
    rlc_model_init_weights(&m, 7);
    // larger random weights than the init so every path carries signal (biases, norms included)
    for (size_t i = 0; i < m.n_params; i++) m.params[i] = 0.3 * urand() + (m.params[i] == 1.0 ? 1.0 : 0.0);
    batch bt = {0};
    bt.B = NSEQ;
    for (int s = 0; s < NSEQ; s++) bt.cu[s + 1] = bt.cu[s] + lens[s];
    bt.T = bt.cu[NSEQ];
    for (int t = 0; t < bt.T; t++) {
        bt.tokens[t] = (int)((urand() + 1) * 6.5) % 13;
        bt.targets[t] = (t % 4 == 3) ? -1 : (int)((urand() + 1) * 6.5) % 13;
        bt.a[t] = urand();
        bt.b[t] = urand();
        bt.c[t] = urand();
    }
    double tau = 0.8;
    // analytic gradient
    loss_of(&m, &bt, tau);
    rlc_model_zero_grad(&m);
    double dl[64], de[64], dv[64];
    for (int t = 0; t < bt.T; t++) {
        dl[t] = bt.targets[t] >= 0 ? bt.a[t] : 0;
        de[t] = bt.b[t];
        dv[t] = bt.c[t];
    }
    rlc_model_backward(&m, dl, de, value_head ? dv : NULL);
    double *ana = malloc(m.n_params * sizeof(double));
    memcpy(ana, m.grads, m.n_params * sizeof(double));
    // numeric gradient, tensor by tensor
    const double h = 1e-5;
    double worst = 0;
    for (int ti = 0; ti < m.n_tensors; ti++) {
        const rlc_tensor_info *t = &m.tensors[ti];
        double num2 = 0, diff2 = 0, ana2 = 0;
        for (size_t j = 0; j < t->numel; j++) {
            double *p = &m.params[t->offset + j];
            double save = *p;
            *p = save + h;
            double lp = loss_of(&m, &bt, tau);
            *p = save - h;
            double lm = loss_of(&m, &bt, tau);
            *p = save;
            double num = (lp - lm) / (2 * h), an = ana[t->offset + j];
            num2 += num * num;
            ana2 += an * an;
            diff2 += (num - an) * (num - an);
        }
        double rel = sqrt(diff2) / (sqrt(num2) + 1e-30);
        if (rel > worst) worst = rel;
        CHECK(sqrt(ana2) > 1e-8, "tensor %s has an all-zero gradient", t->name);
        CHECK(rel <= 1e-6, "tensor %s: relative gradient error %.3g (tied=%d bias=%d value=%d)", t->name, rel, tied,
              bias, value_head);
    }
    printf("model gradcheck tied=%d bias=%d value=%d: %d tensors, %zu params, worst rel err %.3g\n", tied, bias,
           value_head, m.n_tensors, m.n_params, worst);
    free(ana);
    rlc_model_free(&m);
}

int main(void) {
    check_model(0, 1, 1);
    check_model(1, 0, 0);
    return test_finish("test_model_f64");
}
