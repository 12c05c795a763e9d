// tests/test_rng.c: Philox4x32 against the published Random123 known-answer vectors (kat_vectors, 7 and 10
// rounds), the documented key/counter layouts of the sampling and sequential streams, independence from call
// order, and rough uniformity.
#include <stdint.h>
#include <string.h>
#include "rlc/rng.h"
#include "test_util.h"

typedef struct {
    int rounds;
    uint32_t ctr[4], key[2], out[4];
} kat;

// Random123 kat_vectors, "philox4x32 R ctr[4] key[2] -> out[4]".
static const kat KATS[] = {
    {7, {0, 0, 0, 0}, {0, 0}, {0x5f6fb709, 0x0d893f64, 0x4f121f81, 0x4f730a48}},
    {7, {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
     {0x5207ddc2, 0x45165e59, 0x4d8ee751, 0x8c52f662}},
    {7, {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
     {0x4dfccaba, 0x190a87f0, 0xc47362ba, 0xb6b5242a}},
    {10, {0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
    {10, {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
     {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
    {10, {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
};

static void test_kats(void) {
    for (size_t i = 0; i < sizeof KATS / sizeof KATS[0]; i++) {
        uint32_t out[4];
        rlc_philox4x32_r(KATS[i].rounds, KATS[i].ctr, KATS[i].key, out);
        for (int w = 0; w < 4; w++)
            CHECK(out[w] == KATS[i].out[w], "KAT %zu (%d rounds) word %d: got %08x want %08x", i, KATS[i].rounds, w,
                  out[w], KATS[i].out[w]);
        if (KATS[i].rounds == 10) {
            rlc_philox4x32(KATS[i].ctr, KATS[i].key, out);
            CHECK(memcmp(out, KATS[i].out, sizeof out) == 0, "rlc_philox4x32 != 10-round KAT %zu", i);
        }
    }
}

// The layouts of rng.h, rebuilt here from the raw block function.
static void test_layout(void) {
    uint64_t seeds[3] = {0, 42, 0x0123456789abcdefull};
    for (int si = 0; si < 3; si++) {
        uint64_t seed = seeds[si];
        uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
        for (int k = 0; k < 12; k++) {
            uint32_t step = 7 + (uint32_t)k, prompt = 1000 + 3 * (uint32_t)k, sample = (uint32_t)k % 5,
                     pos = 17 * (uint32_t)k;
            uint32_t ctr[4] = {step, prompt, sample, ((uint32_t)(k >> 2) << 24) | pos}, out[4];
            rlc_philox4x32(ctr, key, out);
            float want = (float)((double)(out[k & 3] >> 8) / 16777216.0);
            float got = rlc_rng_uniform(seed, step, prompt, sample, pos, k);
            CHECK(got == want, "uniform layout seed %d k %d: got %.9g want %.9g", si, k, got, want);
        }
        for (uint64_t stream = 0; stream < 3; stream++)
            for (uint64_t idx = 0; idx < 3; idx++) {
                uint64_t st = stream * 0x100000001ull, ix = idx * 0x300000005ull;
                uint32_t ctr[4] = {(uint32_t)ix, (uint32_t)(ix >> 32), (uint32_t)st,
                                   0x80000000u | (uint32_t)(st >> 32)},
                         out[4];
                rlc_philox4x32(ctr, key, out);
                uint64_t want = (uint64_t)out[0] | ((uint64_t)out[1] << 32);
                CHECK(rlc_rng_u64(seed, st, ix) == want, "u64 layout seed %d stream %llu index %llu", si,
                      (unsigned long long)st, (unsigned long long)ix);
            }
    }
}

// Same (seed, step, prompt, sample, position, k) -> same number, whatever was computed before or in between.
static void test_order_independence(void) {
    enum { NS = 3, NP = 4, NG = 5, NT = 16 };
    static float fwd[NS][NP][NG][NT];
    for (int s = 0; s < NS; s++)
        for (int p = 0; p < NP; p++)
            for (int g = 0; g < NG; g++)
                for (int t = 0; t < NT; t++) fwd[s][p][g][t] = rlc_rng_uniform(99, (uint64_t)s, (uint64_t)p, (uint64_t)g, (uint64_t)t, 0);
    // revisit in a scrambled order (a batch made of different sequences), interleaved with other draws
    int bad = 0;
    uint64_t x = 12345;
    for (int n = 0; n < NS * NP * NG * NT * 2; n++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int s = (int)((x >> 33) % NS), p = (int)((x >> 40) % NP), g = (int)((x >> 45) % NG), t = (int)((x >> 50) % NT);
        (void)rlc_rng_uniform(99, 1000 + (uint64_t)n, 1, 2, 3, 1); // unrelated draw in between
        bad += rlc_rng_uniform(99, (uint64_t)s, (uint64_t)p, (uint64_t)g, (uint64_t)t, 0) != fwd[s][p][g][t];
    }
    CHECK(bad == 0, "%d draws changed with call order", bad);
    // every coordinate of the key/counter matters
    float base = rlc_rng_uniform(5, 1, 2, 3, 4, 0);
    CHECK(base != rlc_rng_uniform(6, 1, 2, 3, 4, 0), "seed ignored");
    CHECK(base != rlc_rng_uniform(5, 2, 2, 3, 4, 0), "step ignored");
    CHECK(base != rlc_rng_uniform(5, 1, 3, 3, 4, 0), "prompt ignored");
    CHECK(base != rlc_rng_uniform(5, 1, 2, 4, 4, 0), "sample ignored");
    CHECK(base != rlc_rng_uniform(5, 1, 2, 3, 5, 0), "position ignored");
    CHECK(base != rlc_rng_uniform(5, 1, 2, 3, 4, 1), "k ignored");
    CHECK(base != rlc_rng_uniform(5, 1, 2, 3, 4, 4), "k >> 2 ignored");
    // the sequential stream is a cursor over rlc_rng_u64
    rlc_rng_stream st = rlc_rng_stream_init(77, 3);
    for (uint64_t i = 0; i < 10; i++) CHECK(rlc_rng_next_u64(&st) == rlc_rng_u64(77, 3, i), "stream index %llu", (unsigned long long)i);
}

static void test_uniformity(void) {
    enum { N = 200000, B = 16 };
    double sum = 0, sum2 = 0;
    int bins[B] = {0}, out_of_range = 0;
    for (int i = 0; i < N; i++) {
        float u = rlc_rng_uniform(2024, (uint64_t)(i / 1000), (uint64_t)(i % 7), (uint64_t)(i % 13), (uint64_t)(i % 1000), i % 4);
        out_of_range += !(u >= 0.0f && u < 1.0f);
        sum += u;
        sum2 += (double)u * u;
        int b = (int)(u * B);
        if (b >= 0 && b < B) bins[b]++;
    }
    CHECK(out_of_range == 0, "%d draws outside [0,1)", out_of_range);
    double mean = sum / N, var = sum2 / N - mean * mean;
    CHECK_CLOSE(mean, 0.5, 0.005, 0, "uniform mean");
    CHECK_CLOSE(var, 1.0 / 12, 0.003, 0, "uniform variance");
    double chi2 = 0, e = (double)N / B;
    for (int b = 0; b < B; b++) chi2 += (bins[b] - e) * (bins[b] - e) / e;
    CHECK(chi2 < 37.7, "chi-square %.2f over %d bins (df 15, p = 0.001 threshold 37.7)", chi2, B);
    // bits of the sequential stream are balanced, and next_below stays in range and covers it
    int ones[64] = {0};
    rlc_rng_stream st = rlc_rng_stream_init(1, 0);
    for (int i = 0; i < 20000; i++) {
        uint64_t v = rlc_rng_next_u64(&st);
        for (int b = 0; b < 64; b++) ones[b] += (int)((v >> b) & 1);
    }
    for (int b = 0; b < 64; b++) CHECK(ones[b] > 9500 && ones[b] < 10500, "bit %d set %d of 20000 times", b, ones[b]);
    int seen[7] = {0};
    for (int i = 0; i < 7000; i++) {
        int64_t v = rlc_rng_next_range(&st, -3, 3);
        CHECK(v >= -3 && v <= 3, "next_range out of range: %lld", (long long)v);
        if (v >= -3 && v <= 3) seen[v + 3]++;
    }
    for (int i = 0; i < 7; i++) CHECK(seen[i] > 850 && seen[i] < 1150, "value %d drawn %d of 7000 times", i - 3, seen[i]);
    // the two streams never share blocks: same seed, aligned counters give different words
    uint32_t key[2] = {3, 0}, ctr[4] = {0, 0, 0, 0}, out[4];
    rlc_philox4x32(ctr, key, out);
    CHECK(rlc_rng_u64(3, 0, 0) != ((uint64_t)out[0] | ((uint64_t)out[1] << 32)), "stream domains collide");
}

int main(void) {
    test_kats();
    test_layout();
    test_order_independence();
    test_uniformity();
    return test_finish("test_rng");
}
