// tests/test_ranks.c: the checks behind the multi-rank tests of tests/cli_tests.cmake, and their self-test.
//   test_ranks                                   self-test of the comparisons below (ctest runs it like this)
//   test_ranks ckpt RUN_A RUN_B TOL              the latest checkpoints of two runs hold the same tensors
//                                                (weights and AdamW moments) within TOL relative (per tensor,
//                                                ||a - b|| / ||a||), and the same train state
//   test_ranks metrics A.jsonl B.jsonl TOL       same records; rollout_hash equal; every other number within TOL
//                                                relative (1e-6 absolute floor), time_* and *_per_s skipped
//   test_ranks fail SECONDS TEXT... -- CMD ARGS...
//                                                CMD exits non-zero within SECONDS (then it is killed: a hang),
//                                                and its output contains every TEXT
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rlc/checkpoint.h"
#include "rlc/safetensors.h"
#include "rlc/util.h"
#include "test_util.h"

// ---- checkpoints ----

// Compare one safetensors file of two checkpoint directories; returns the number of mismatches.
static int compare_st(const char *dir_a, const char *dir_b, const char *file, double tol, int verbose) {
    char pa[1200], pb[1200], err[512];
    snprintf(pa, sizeof pa, "%s/%s", dir_a, file);
    snprintf(pb, sizeof pb, "%s/%s", dir_b, file);
    rlc_st_file a, b;
    if (rlc_st_open(&a, pa, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (rlc_st_open(&b, pb, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        rlc_st_close(&a);
        return 1;
    }
    int bad = 0;
    if (a.n_tensors != b.n_tensors) {
        fprintf(stderr, "%s: %d tensors, %s: %d\n", pa, a.n_tensors, pb, b.n_tensors);
        bad++;
    }
    double worst = 0;
    for (int i = 0; i < a.n_tensors; i++) {
        const rlc_st_tensor *ta = &a.tensors[i], *tb = rlc_st_find(&b, ta->name);
        if (!tb || tb->numel != ta->numel) {
            fprintf(stderr, "%s: tensor %s missing or of another size in %s\n", pa, ta->name, pb);
            bad++;
            continue;
        }
        rlc_f *xa = rlc_malloc(ta->numel * sizeof(rlc_f)), *xb = rlc_malloc(tb->numel * sizeof(rlc_f));
        if (rlc_st_to_float(&a, ta, xa, err, sizeof err) != 0 || rlc_st_to_float(&b, tb, xb, err, sizeof err) != 0) {
            fprintf(stderr, "%s\n", err);
            bad++;
        } else {
            double dd = 0, na = 0;
            for (size_t k = 0; k < ta->numel; k++) {
                double x = xa[k], y = xb[k];
                dd += (x - y) * (x - y);
                na += x * x;
            }
            double rel = sqrt(dd) / (sqrt(na) > 1e-30 ? sqrt(na) : 1e-30);
            if (!(dd == 0 || rel <= tol)) {
                fprintf(stderr, "%s: tensor %s differs: relative %.3g > %.3g\n", file, ta->name, rel, tol);
                bad++;
            }
            if (rel > worst && dd > 0) worst = rel;
        }
        free(xa);
        free(xb);
    }
    for (int i = 0; i < a.n_meta; i++) {
        const char *vb = rlc_st_meta(&b, a.meta_keys[i]);
        if (!vb || strcmp(vb, a.meta_vals[i]) != 0) {
            fprintf(stderr, "%s: metadata %s = %s, but %s in %s\n", pa, a.meta_keys[i], a.meta_vals[i],
                    vb ? vb : "(missing)", pb);
            bad++;
        }
    }
    if (verbose) printf("%s: %d tensors, largest relative difference %.3g\n", file, a.n_tensors, worst);
    rlc_st_close(&a);
    rlc_st_close(&b);
    return bad;
}

static int compare_ckpt(const char *run_a, const char *run_b, double tol, int verbose) {
    char da[700], db[700], ra[800], rb[800];
    snprintf(da, sizeof da, "%s/ckpt", run_a);
    snprintf(db, sizeof db, "%s/ckpt", run_b);
    rlc_checkpoint_resolve(da, ra, sizeof ra);
    rlc_checkpoint_resolve(db, rb, sizeof rb);
    return compare_st(ra, rb, "model.safetensors", tol, verbose) +
           compare_st(ra, rb, "train_state.safetensors", tol, verbose);
}

// ---- metrics ----

// Timings, and rollout_waves (how many waves this rank's free memory took: not part of the result).
static int skip_key(const char *k) {
    size_t n = strlen(k);
    return strncmp(k, "time_", 5) == 0 || (n >= 6 && strcmp(k + n - 6, "_per_s") == 0) ||
           strcmp(k, "rollout_waves") == 0;
}

static int compare_metrics(const char *pa, const char *pb, double tol, int verbose) {
    char *ta = rlc_read_file(pa, NULL), *tb = rlc_read_file(pb, NULL);
    if (!ta || !tb) {
        fprintf(stderr, "cannot read %s or %s\n", pa, pb);
        free(ta);
        free(tb);
        return 1;
    }
    int bad = 0, line = 0, hashes = 0;
    double worst = 0;
    char *sa = NULL, *sb = NULL;
    char *la = strtok_r(ta, "\n", &sa), *lb = strtok_r(tb, "\n", &sb);
    for (; la || lb; la = strtok_r(NULL, "\n", &sa), lb = strtok_r(NULL, "\n", &sb)) {
        line++;
        if (!la || !lb) {
            fprintf(stderr, "%s and %s have different numbers of records (line %d)\n", pa, pb, line);
            bad++;
            break;
        }
        cJSON *ja = cJSON_Parse(la), *jb = cJSON_Parse(lb);
        if (!ja || !jb) {
            fprintf(stderr, "line %d: not JSON\n", line);
            bad++;
        } else {
            for (cJSON *x = ja->child; x; x = x->next) {
                cJSON *y = cJSON_GetObjectItemCaseSensitive(jb, x->string);
                if (!y) {
                    fprintf(stderr, "line %d: %s missing in %s\n", line, x->string, pb);
                    bad++;
                } else if (cJSON_IsString(x)) {
                    if (!cJSON_IsString(y) || strcmp(x->valuestring, y->valuestring) != 0) {
                        fprintf(stderr, "line %d: %s differs\n", line, x->string);
                        bad++;
                    }
                } else if (cJSON_IsNumber(x) && !skip_key(x->string)) {
                    double a = x->valuedouble, b = cJSON_IsNumber(y) ? y->valuedouble : NAN;
                    int exact = strcmp(x->string, "rollout_hash") == 0 || strcmp(x->string, "step") == 0;
                    hashes += strcmp(x->string, "rollout_hash") == 0;
                    double diff = fabs(a - b), lim = exact ? 0 : tol * fmax(fabs(a), fabs(b)) + 1e-6;
                    if (!(diff <= lim)) {
                        fprintf(stderr, "line %d: %s: %.9g vs %.9g\n", line, x->string, a, b);
                        bad++;
                    } else if (!exact && diff > 0) {
                        double rel = diff / fmax(fmax(fabs(a), fabs(b)), 1e-30);
                        if (rel > worst && fmax(fabs(a), fabs(b)) > 1e-3) worst = rel;
                    }
                }
            }
        }
        cJSON_Delete(ja);
        cJSON_Delete(jb);
    }
    if (verbose)
        printf("metrics: %d records, %d rollout hashes equal, largest relative difference %.3g (values > 1e-3)\n",
               line, hashes, worst);
    free(ta);
    free(tb);
    return bad;
}

// ---- a command that must fail, and fail fast ----

static int expect_fail(double seconds, char *const *texts, int n_texts, char **argv) {
    int fd[2];
    if (pipe(fd) != 0) return 1;
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        dup2(fd[1], 1);
        dup2(fd[1], 2);
        close(fd[0]);
        close(fd[1]);
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fd[1]);
    size_t cap = 1 << 16, len = 0;
    char *out = rlc_malloc(cap);
    double t0 = rlc_now();
    int hung = 0;
    for (;;) { // read until every process holding the pipe is gone (EOF), or the deadline
        double left = seconds - (rlc_now() - t0);
        if (left <= 0) {
            hung = 1;
            break;
        }
        struct pollfd p = {fd[0], POLLIN, 0};
        if (poll(&p, 1, (int)(left * 1000) + 1) <= 0) continue;
        if (len + 4096 >= cap) out = realloc(out, cap *= 2);
        ssize_t n = read(fd[0], out + len, 4096);
        if (n <= 0) break;
        len += (size_t)n;
    }
    out[len] = 0;
    int status = 0;
    if (hung) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
    }
    waitpid(pid, &status, 0);
    close(fd[0]);
    double dt = rlc_now() - t0;
    printf("---- output (%.1f s) ----\n%s---- end ----\n", dt, out);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    CHECK(!hung, "the command did not end within %.0f s (a hang)", seconds);
    CHECK(code != 0, "the command exited with 0; expected a failure");
    for (int i = 0; i < n_texts; i++)
        CHECK(strstr(out, texts[i]) != NULL, "the output does not contain \"%s\"", texts[i]);
    free(out);
    return 0;
}

// ---- self-test: the comparisons must pass on equal data and fail on different data ----

static void write_st(const char *dir, const char *file, const float *x, int n, const char *step) {
    mkdir(dir, 0755);
    char path[600], err[256];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    rlc_st_entry e = {.name = "w", .dtype = RLC_ST_F32, .ndim = 1, .shape = {n}, .data = x};
    const char *meta[] = {"step", step};
    CHECK(rlc_st_write(path, &e, 1, meta, 1, err, sizeof err) == 0, "write %s: %s", path, err);
}

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(s, f);
        fclose(f);
    }
}

static void self_test(void) {
    char root[] = "/tmp/rlc_test_ranks_XXXXXX";
    if (!mkdtemp(root)) {
        CHECK(0, "mkdtemp");
        return;
    }
    float w[64], w2[64], w3[64];
    for (int i = 0; i < 64; i++) {
        w[i] = sinf((float)i) + 0.1f;
        w2[i] = w[i] * (1.0f + 1e-7f); // well inside 1e-5
        w3[i] = w[i];
    }
    w3[5] += 1e-2f; // far outside
    const char *runs[] = {"a", "b", "c", "d"};
    const float *data[] = {w, w2, w3, w};
    const char *steps[] = {"3", "3", "3", "4"};
    for (int r = 0; r < 4; r++) {
        char dir[300];
        snprintf(dir, sizeof dir, "%s/%s", root, runs[r]);
        mkdir(dir, 0755);
        snprintf(dir, sizeof dir, "%s/%s/ckpt", root, runs[r]);
        write_st(dir, "model.safetensors", data[r], 64, steps[r]);
        write_st(dir, "train_state.safetensors", data[r], 64, steps[r]);
    }
    char a[300], b[300], c[300], dd[300];
    snprintf(a, sizeof a, "%s/a", root);
    snprintf(b, sizeof b, "%s/b", root);
    snprintf(c, sizeof c, "%s/c", root);
    snprintf(dd, sizeof dd, "%s/d", root);
    CHECK(compare_ckpt(a, a, 0, 0) == 0, "a checkpoint equals itself exactly");
    CHECK(compare_ckpt(a, b, 1e-5, 0) == 0, "1e-7 relative differences pass at 1e-5");
    fprintf(stderr, "(the mismatches printed from here on are expected)\n");
    CHECK(compare_ckpt(a, b, 0, 0) > 0, "1e-7 relative differences fail at 0");
    CHECK(compare_ckpt(a, c, 1e-5, 0) > 0, "a 1e-2 change of one weight is found");
    CHECK(compare_ckpt(a, dd, 1e-5, 0) > 0, "a different train state is found");

    char ma[300], mb[300], mc[300], md[300];
    snprintf(ma, sizeof ma, "%s/a.jsonl", root);
    snprintf(mb, sizeof mb, "%s/b.jsonl", root);
    snprintf(mc, sizeof mc, "%s/c.jsonl", root);
    snprintf(md, sizeof md, "%s/d.jsonl", root);
    write_text(ma, "{\"phase\":\"rl\",\"step\":1,\"loss\":0.5,\"rollout_hash\":77,\"time_step\":1}\n");
    write_text(mb, "{\"phase\":\"rl\",\"step\":1,\"loss\":0.500000001,\"rollout_hash\":77,\"time_step\":9}\n");
    write_text(mc, "{\"phase\":\"rl\",\"step\":1,\"loss\":0.5,\"rollout_hash\":78,\"time_step\":1}\n");
    write_text(md, "{\"phase\":\"rl\",\"step\":1,\"loss\":0.51,\"rollout_hash\":77,\"time_step\":1}\n"
                   "{\"phase\":\"rl\",\"step\":2}\n");
    CHECK(compare_metrics(ma, mb, 1e-5, 0) == 0, "close metrics and different timings pass");
    CHECK(compare_metrics(ma, mc, 1e-5, 0) > 0, "a different rollout hash is found");
    CHECK(compare_metrics(ma, md, 1e-5, 0) > 0, "a different loss and record count are found");

    char *ok_cmd[] = {"sh", "-c", "echo rlc: rank 1: boom; echo why: a reason; exit 3", NULL};
    char *ok_texts[] = {"rank 1: boom", "why: a reason"};
    expect_fail(10, ok_texts, 2, ok_cmd);
    int before = test_failures;
    char *zero_cmd[] = {"sh", "-c", "echo fine", NULL};
    expect_fail(10, ok_texts + 1, 1, zero_cmd); // exits 0: must be reported
    CHECK(test_failures == before + 1, "a command that succeeds is reported");
    char *missing[] = {"rank 1: boom", "another reason"};
    expect_fail(10, missing, 2, ok_cmd); // the second text is not there: must be reported
    CHECK(test_failures == before + 2, "a missing second text is reported");
    test_failures = before;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
}

int main(int argc, char **argv) {
    if (argc == 1) {
        self_test();
        return test_finish("test_ranks");
    }
    if (argc == 5 && strcmp(argv[1], "ckpt") == 0) {
        int bad = compare_ckpt(argv[2], argv[3], atof(argv[4]), 1);
        CHECK(bad == 0, "%d mismatches between the checkpoints of %s and %s", bad, argv[2], argv[3]);
        return test_finish("test_ranks ckpt");
    }
    if (argc == 5 && strcmp(argv[1], "metrics") == 0) {
        int bad = compare_metrics(argv[2], argv[3], atof(argv[4]), 1);
        CHECK(bad == 0, "%d mismatches between %s and %s", bad, argv[2], argv[3]);
        return test_finish("test_ranks metrics");
    }
    if (argc >= 6 && strcmp(argv[1], "fail") == 0) {
        int dash = 3; // the texts are argv[3 .. dash - 1]
        while (dash < argc && strcmp(argv[dash], "--") != 0) dash++;
        if (dash > 3 && dash + 1 < argc) {
            expect_fail(atof(argv[2]), argv + 3, dash - 3, argv + dash + 1);
            return test_finish("test_ranks fail");
        }
    }
    fprintf(stderr, "usage: test_ranks | ckpt RUN_A RUN_B TOL | metrics A B TOL | fail SECONDS TEXT... -- CMD...\n");
    return 2;
}
