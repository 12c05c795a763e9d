// tests/test_config.c: the run configuration: the embedded default equals configs/default.json and parses,
// to_json round-trips, file overlays and --set overrides of every type, and every kind of bad input gives one
// message naming the source, the key path, what was expected and (for typos) the nearest valid key/value.
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rlc/config.h"
#include "rlc/tokenizer.h"
#include "rlc/util.h"
#include "test_util.h"

// Parse must fail and the message must contain every given substring (NULL-terminated list).
static void expect_err_(int line, const char *json, const char *const *over, int n_over, ...) {
    rlc_config c;
    char err[1024] = "";
    int rc = rlc_config_parse(&c, json, "cfg/x.json", over, n_over, err, sizeof err);
    CHECK(rc == -1, "line %d: expected failure for %s", line, json ? json : "(default)");
    va_list ap;
    va_start(ap, n_over);
    for (const char *sub; (sub = va_arg(ap, const char *));)
        CHECK(strstr(err, sub) != NULL, "line %d: message \"%s\" lacks \"%s\"", line, err, sub);
    va_end(ap);
}
#define EXPECT_ERR(json, over, n, ...) expect_err_(__LINE__, json, over, n, __VA_ARGS__, (const char *)NULL)

static int parse_ok(rlc_config *c, const char *json, const char *const *over, int n) {
    char err[1024] = "";
    int rc = rlc_config_parse(c, json, "cfg/ok.json", over, n, err, sizeof err);
    CHECK(rc == 0, "unexpected error: %s", err);
    return rc;
}

static const cJSON *jget(const cJSON *o, const char *path) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    char *save = buf;
    for (char *dot; (dot = strchr(save, '.'));) {
        *dot = 0;
        o = cJSON_GetObjectItemCaseSensitive(o, save);
        save = dot + 1;
    }
    return cJSON_GetObjectItemCaseSensitive(o, save);
}

static void test_default(void) {
    // the embedded text is exactly the file in the source tree
    char path[512];
    snprintf(path, sizeof path, "%s/configs/default.json", RLC_SOURCE_DIR);
    size_t len = 0;
    char *file = rlc_read_file(path, &len);
    CHECK(file != NULL, "cannot read %s", path);
    if (!file) return;
    CHECK(strcmp(file, rlc_config_default_json()) == 0, "embedded default differs from configs/default.json");

    rlc_config c;
    if (parse_ok(&c, NULL, NULL, 0)) return;
    CHECK(strcmp(c.source, "cfg/ok.json") == 0 || strcmp(c.source, "<default>") == 0, "source %s", c.source);
    // values against an independent parse of the file
    cJSON *j = cJSON_Parse(file);
    CHECK(j != NULL, "default.json does not parse");
    CHECK(c.model.dim == jget(j, "model.dim")->valueint, "model.dim");
    CHECK(c.model.n_layers == jget(j, "model.n_layers")->valueint, "model.n_layers");
    CHECK(c.model.n_kv_heads == jget(j, "model.n_kv_heads")->valueint, "model.n_kv_heads");
    CHECK(c.model.vocab_size >= RLC_TOK_VOCAB, "vocab %d", c.model.vocab_size);
    CHECK(c.model.tie_embeddings == cJSON_IsTrue(jget(j, "model.tie_embeddings")), "tie");
    CHECK(c.rollout.group_size == jget(j, "rollout.group_size")->valueint, "group_size");
    CHECK_CLOSE(c.rl.eps_low, jget(j, "rl.eps_low")->valuedouble, 0, 1e-7, "rl.eps_low");
    CHECK_CLOSE(c.sft.optim.lr, jget(j, "sft.optim.lr")->valuedouble, 0, 1e-7, "sft.optim.lr");
    CHECK_CLOSE(c.model.rms_eps, jget(j, "model.rms_eps")->valuedouble, 0, 1e-7, "model.rms_eps");
    CHECK(strcmp(c.rl.method, jget(j, "rl.method")->valuestring) == 0, "rl.method %s", c.rl.method);
    CHECK(strcmp(c.task.name, jget(j, "task.name")->valuestring) == 0, "task.name %s", c.task.name);
    CHECK(c.seed == (uint64_t)jget(j, "seed")->valuedouble, "seed");
    CHECK(c.rollout.n_stop == cJSON_GetArraySize(jget(j, "rollout.stop")), "n_stop");
    cJSON_Delete(j);
    free(file);

    // load(NULL) is the default too
    rlc_config d;
    char err[512];
    CHECK(rlc_config_load(&d, NULL, NULL, 0, err, sizeof err) == 0, "load(NULL): %s", err);
    CHECK(strcmp(d.source, "<default>") == 0, "load(NULL) source %s", d.source);
    CHECK(d.model.dim == c.model.dim && d.rl.steps == c.rl.steps, "load(NULL) differs from parse(NULL)");
}

static void test_roundtrip(void) {
    const char *over[] = {"seed=\"18446744073709551615\"", "rollout.stop=[\"\\n\",\"=\"]", "rl.eps_high=0.28",
                          "model.qkv_bias=true", "name=rt"};
    rlc_config a, b;
    if (parse_ok(&a, NULL, over, 5)) return;
    CHECK(a.seed == UINT64_MAX, "big seed %llu", (unsigned long long)a.seed);
    CHECK(a.rollout.n_stop == 2 && strcmp(a.rollout.stop[0], "\n") == 0 && strcmp(a.rollout.stop[1], "=") == 0,
          "stop strings");
    char *js = rlc_config_to_json(&a);
    char err[1024];
    int rc = rlc_config_parse(&b, js, "rt.json", NULL, 0, err, sizeof err);
    CHECK(rc == 0, "to_json output does not parse: %s", err);
    memset(a.source, 0, sizeof a.source);
    memset(b.source, 0, sizeof b.source);
    CHECK(memcmp(&a, &b, sizeof a) == 0, "round trip through to_json changed the config");
    // every float comes back bit-exact, e.g. 0.28f and 1e-5f
    CHECK(b.rl.eps_high == a.rl.eps_high && b.model.rms_eps == a.model.rms_eps, "float round trip");
    // the JSON names every key of the struct's sections
    cJSON *j = cJSON_Parse(js);
    CHECK(jget(j, "rl.optim.grad_clip") && jget(j, "task.eval_seed") && jget(j, "rollout.stop") &&
              jget(j, "model.value_head") && jget(j, "log_every"),
          "to_json misses keys");
    cJSON_Delete(j);
    free(js);
}

static void test_overrides(void) {
    rlc_config c;
    // int, float, bool, string (bare and JSON-quoted), nested, enum, object
    const char *over[] = {"model.dim=64",         "rl.eps_low=0.1",      "model.value_head=true",
                          "name=my-run",          "out_dir=\"/tmp/r\"",  "rl.optim.lr=3e-4",
                          "rl.method=ppo",        "task={\"digits\":3}", "sft.optim.schedule=linear",
                          "rl.kl_estimator=k3+", "name=2024"};
    if (parse_ok(&c, NULL, over, 11)) return;
    CHECK(c.model.dim == 64, "dim %d", c.model.dim);
    CHECK(c.rl.eps_low == 0.1f, "eps_low %g", c.rl.eps_low);
    CHECK(c.model.value_head == 1, "value_head");
    CHECK(strcmp(c.name, "2024") == 0, "name %s (later --set wins, bare number as string)", c.name);
    CHECK(strcmp(c.out_dir, "/tmp/r") == 0, "out_dir %s", c.out_dir);
    CHECK(c.rl.optim.lr == 3e-4f, "rl lr %g", c.rl.optim.lr);
    CHECK(c.sft.optim.lr != 3e-4f, "sft lr untouched");
    CHECK(strcmp(c.rl.method, "ppo") == 0, "method");
    CHECK(c.task.digits == 3, "task.digits via object override");
    CHECK(strcmp(c.sft.optim.schedule, "linear") == 0, "schedule");
    CHECK(strcmp(c.rl.kl_estimator, "k3+") == 0, "kl_estimator");

    // a user file overlays the default; --set wins over the file; load() names the file as source
    char path[512];
    snprintf(path, sizeof path, "%s/test_config_user.json", RLC_BINARY_DIR);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL, "cannot write %s", path);
    if (!f) return;
    fputs("{\n  \"rl\": {\"eps_high\": 0.28, \"steps\": 7},\n  \"rollout\": {\"stop\": \"\\n\"}\n}\n", f);
    fclose(f);
    const char *o2[] = {"rl.steps=9"};
    char err[1024];
    rlc_config d;
    CHECK(rlc_config_load(&d, path, o2, 1, err, sizeof err) == 0, "load: %s", err);
    CHECK(strcmp(d.source, path) == 0, "source %s", d.source);
    CHECK(d.rl.eps_high == 0.28f && d.rl.steps == 9, "file + override: %g %d", d.rl.eps_high, d.rl.steps);
    CHECK(d.rollout.n_stop == 1 && strcmp(d.rollout.stop[0], "\n") == 0, "single stop string");
    CHECK(d.model.dim == c.model.dim * 2, "untouched keys keep the default");
    // a missing file names the file
    CHECK(rlc_config_load(&d, "/nonexistent/x.json", NULL, 0, err, sizeof err) == -1 &&
              strstr(err, "/nonexistent/x.json"),
          "missing file: %s", err);
    remove(path);
}

static void test_errors(void) {
    // unknown keys, with the nearest valid key at that level
    EXPECT_ERR("{\"rl\": {\"eps_lwo\": 0.3}}", NULL, 0, "cfg/x.json", "unknown key \"rl.eps_lwo\"",
               "did you mean \"rl.eps_low\"");
    EXPECT_ERR("{\"seeed\": 1}", NULL, 0, "cfg/x.json", "\"seeed\"", "did you mean \"seed\"");
    EXPECT_ERR("{\"model\": {\"n_kv_head\": 1}}", NULL, 0, "did you mean \"model.n_kv_heads\"");
    EXPECT_ERR("{\"rl\": {\"optim\": {\"lrr\": 1}}}", NULL, 0, "did you mean \"rl.optim.lr\"");
    const char *o1[] = {"rl.eps_lwo=0.3"};
    EXPECT_ERR(NULL, o1, 1, "--set rl.eps_lwo=0.3", "did you mean \"rl.eps_low\"");
    const char *o1b[] = {"rll.eps_low=0.3"};
    EXPECT_ERR(NULL, o1b, 1, "unknown key \"rll.eps_low\"", "did you mean \"rl\"");
    const char *o1c[] = {"rl.eps_low"};
    EXPECT_ERR(NULL, o1c, 1, "--set rl.eps_low", "key=value");

    // wrong types
    EXPECT_ERR("{\"model\": {\"dim\": \"big\"}}", NULL, 0, "cfg/x.json", "model.dim", "expected an integer",
               "string \"big\"");
    EXPECT_ERR("{\"model\": {\"dim\": 2.5}}", NULL, 0, "model.dim", "expected an integer", "2.5");
    EXPECT_ERR("{\"model\": {\"qkv_bias\": 1}}", NULL, 0, "model.qkv_bias", "expected a boolean");
    EXPECT_ERR("{\"rl\": {\"eps_low\": \"0.2\"}}", NULL, 0, "rl.eps_low", "expected a number");
    EXPECT_ERR("{\"rl\": {\"method\": 3}}", NULL, 0, "rl.method", "expected a string");
    EXPECT_ERR("{\"rl\": 3}", NULL, 0, "cfg/x.json: rl: expected an object", "number 3");
    EXPECT_ERR("{\"seed\": -1}", NULL, 0, "seed", "non-negative integer");
    EXPECT_ERR("{\"rollout\": {\"stop\": [\"a\", 1]}}", NULL, 0, "rollout.stop[1]", "expected a string");
    EXPECT_ERR("{\"rollout\": {\"stop\": [\"a\",\"b\",\"c\",\"d\",\"e\"]}}", NULL, 0, "rollout.stop", "at most 4");
    EXPECT_ERR("{\"rollout\": {\"stop\": [\"\"]}}", NULL, 0, "rollout.stop[0]", "1 to 15 characters");
    const char *o2[] = {"model.n_layers=two"};
    EXPECT_ERR(NULL, o2, 1, "--set model.n_layers=two", "model.n_layers", "expected an integer");
    const char *o3[] = {"model.tie_embeddings=1"};
    EXPECT_ERR(NULL, o3, 1, "model.tie_embeddings", "expected a boolean");

    // out of range
    EXPECT_ERR("{\"rl\": {\"eps_low\": 1.0}}", NULL, 0, "cfg/x.json", "rl.eps_low must be in [0, 1)", "got 1");
    EXPECT_ERR("{\"rollout\": {\"group_size\": 0}}", NULL, 0, "rollout.group_size must be >= 1");
    EXPECT_ERR("{\"rl\": {\"optim\": {\"lr\": 0}}}", NULL, 0, "rl.optim.lr must be > 0");
    EXPECT_ERR("{\"rollout\": {\"temperature\": 0}}", NULL, 0, "rollout.temperature must be > 0");
    EXPECT_ERR("{\"rollout\": {\"top_p\": 1.5}}", NULL, 0, "rollout.top_p must be in (0, 1]");
    EXPECT_ERR("{\"rollout\": {\"top_p\": 0}}", NULL, 0, "rollout.top_p must be in (0, 1]");
    EXPECT_ERR("{\"model\": {\"n_kv_heads\": 3}}", NULL, 0, "cfg/x.json", "n_kv_heads");
    EXPECT_ERR("{\"model\": {\"vocab_size\": 50}}", NULL, 0, "model.vocab_size must be >= 98");
    EXPECT_ERR("{\"rl\": {\"dual_clip\": 0.5}}", NULL, 0, "rl.dual_clip must be 0 (off) or > 1");
    EXPECT_ERR("{\"rl\": {\"tis_c_min\": 3}}", NULL, 0, "rl.tis_c_min (3) must be <= rl.tis_c_max");
    EXPECT_ERR("{\"sft\": {\"optim\": {\"min_lr\": 1}}}", NULL, 0, "sft.optim.min_lr (1) must be <= sft.optim.lr");
    EXPECT_ERR("{\"rl\": {\"method\": \"ppo\"}}", NULL, 0, "cfg/x.json", "model.value_head");
    EXPECT_ERR("{\"task\": {\"min_digits\": 3, \"digits\": 2}}", NULL, 0, "task.min_digits (3) must be <= task.digits");
    EXPECT_ERR("{\"name\": \"a/b\"}", NULL, 0, "name must be non-empty");
    const char *o4[] = {"rl.eps_low=1.5"};
    EXPECT_ERR(NULL, o4, 1, "--set rl.eps_low=1.5", "rl.eps_low must be in [0, 1)");

    // enum typos and unknown tasks
    EXPECT_ERR("{\"rl\": {\"loss_agg\": \"token_mean\"}}", NULL, 0, "rl.loss_agg", "unknown value \"token_mean\"",
               "did you mean \"token-mean\"");
    EXPECT_ERR("{\"rl\": {\"method\": \"grpoo\"}}", NULL, 0, "did you mean \"grpo\"");
    EXPECT_ERR("{\"device\": \"gpu\"}", NULL, 0, "device", "auto/cpu/cuda");
    EXPECT_ERR("{\"task\": {\"name\": \"additon\"}}", NULL, 0, "cfg/x.json", "task.name", "unknown task \"additon\"",
               "did you mean \"addition\"");

    // malformed JSON: file name and position
    EXPECT_ERR("{\n  \"rl\": {\n    \"eps_low\": 0.2,,\n  }\n}", NULL, 0, "cfg/x.json", "malformed JSON", "line 3");
    EXPECT_ERR("{\"rl\": ", NULL, 0, "cfg/x.json", "malformed JSON");
    EXPECT_ERR("", NULL, 0, "cfg/x.json", "malformed JSON");
    EXPECT_ERR("{} trailing", NULL, 0, "cfg/x.json", "malformed JSON");
    EXPECT_ERR("[1, 2]", NULL, 0, "cfg/x.json", "must be a JSON object");
    EXPECT_ERR("{\"seed\": 1, \"seed\": 2}", NULL, 0, "duplicate key \"seed\"");
}

// rl.zero1 (data parallelism): off by default, settable, and kept by to_json.
static void test_zero1(void) {
    rlc_config a, b;
    if (parse_ok(&a, NULL, NULL, 0)) return;
    CHECK(a.rl.zero1 == 0, "rl.zero1 defaults to false");
    const char *over[] = {"rl.zero1=true"};
    if (parse_ok(&b, NULL, over, 1)) return;
    CHECK(b.rl.zero1 == 1, "rl.zero1=true");
    char *js = rlc_config_to_json(&b);
    cJSON *j = cJSON_Parse(js);
    CHECK(jget(j, "rl.zero1") && cJSON_IsTrue(jget(j, "rl.zero1")), "to_json writes rl.zero1");
    cJSON_Delete(j);
    free(js);
    char err[512];
    const char *bad[] = {"rl.zero1=2"};
    CHECK(rlc_config_parse(&b, NULL, "<default>", bad, 1, err, sizeof err) != 0, "rl.zero1=2 must be rejected");
}

// sft.teacher_error: a share in [0, 1], and only for tasks that define an imperfect teacher.
static void test_teacher_error(void) {
    rlc_config c;
    const char *ok[] = {"sft.teacher_error=0.5"};
    if (parse_ok(&c, NULL, ok, 1)) return;
    CHECK(c.sft.teacher_error == 0.5f, "sft.teacher_error=0.5 read as %g", c.sft.teacher_error);
    const char *hi[] = {"sft.teacher_error=1.5"};
    EXPECT_ERR(NULL, hi, 1, "--set sft.teacher_error=1.5", "sft.teacher_error");
    const char *neg[] = {"sft.teacher_error=-0.1"};
    EXPECT_ERR(NULL, neg, 1, "sft.teacher_error");
    const char *cd[] = {"task.name=countdown", "sft.teacher_error=0.3"};
    EXPECT_ERR(NULL, cd, 2, "sft.teacher_error", "\"countdown\" has no imperfect teacher");
    const char *mul[] = {"task.name=multiplication", "sft.teacher_error=0.3"};
    EXPECT_ERR(NULL, mul, 2, "\"multiplication\" has no imperfect teacher");
    // the default job's value, inherited by a config for a task without a teacher, is no error (it cannot apply)
    const char *maze[] = {"task.name=maze"};
    if (parse_ok(&c, NULL, maze, 1)) return;
    EXPECT_ERR("{\"task\": {\"name\": \"maze\"}, \"sft\": {\"teacher_error\": 0.2}}", NULL, 0, "cfg/x.json",
               "sft.teacher_error", "\"maze\" has no imperfect teacher");
}

// precision: the CUDA backend's mode; the bf16 modes with device "cpu" are a contradiction, named as such.
static void test_precision(void) {
    rlc_config c;
    CHECK(parse_ok(&c, NULL, NULL, 0) == 0 && !strcmp(c.precision, "auto"), "default precision \"%s\"", c.precision);
    const char *modes[] = {"precision=mixed", "precision=bf16-gemm", "precision=fp32", "precision=auto"};
    for (int i = 0; i < 4; i++) {
        if (parse_ok(&c, NULL, modes + i, 1)) return;
        CHECK(!strcmp(c.precision, modes[i] + 10), "%s read as \"%s\"", modes[i], c.precision);
    }
    const char *cpu_fp32[] = {"device=cpu", "precision=fp32"};
    if (parse_ok(&c, NULL, cpu_fp32, 2)) return;
    const char *bogus[] = {"precision=bf16"};
    EXPECT_ERR(NULL, bogus, 1, "precision", "auto/mixed/bf16-gemm/fp32");
    const char *cpu_mixed[] = {"device=cpu", "precision=mixed"};
    EXPECT_ERR(NULL, cpu_mixed, 2, "precision \"mixed\" is a mode of the cuda backend", "device is \"cpu\"");
    EXPECT_ERR("{\"device\": \"cpu\", \"precision\": \"bf16-gemm\"}", NULL, 0, "cfg/x.json", "precision \"bf16-gemm\"");
}

int main(void) {
    test_default();
    test_teacher_error();
    test_precision();
    test_zero1();
    test_roundtrip();
    test_overrides();
    test_errors();
    return test_finish("test_config");
}
