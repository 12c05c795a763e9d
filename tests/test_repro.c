// tests/test_repro.c: `rlc repro` (host/repro.c, host/svg.c).
//   unit tests (no arguments): mean/std, series reading (a later record of a step wins), every aggregation,
//   best-entry marking (higher / lower / none, ties, the paper's columns), cell texts, claims' verdicts, CSV,
//   SVG well-formedness (a small XML checker, itself tested on bad documents), nice ticks, config errors, and a
//   tiny end-to-end grid: outputs written, a second invocation skips every finished cell, an interrupted grid
//   (--max-steps) resumed to the end gives the same table as the uninterrupted one, a changed config is refused.
//   `test_repro check CONFIG RESULTS_DIR`: the smoke check of `rlc repro --quick` (tests/repro_tests.cmake):
//   table.md has every row with every cell filled, table.csv every (row, metric), and every plot is well-formed
//   SVG with a line and a legend entry per row.
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "rlc/repro.h"
#include "rlc/svg.h"
#include "rlc/util.h"
#include "test_util.h"

// ---------------------------------------------------------------------------------------------------------------
// a minimal XML well-formedness checker: one root element, nested tags closed in order, quoted attributes
// without '<', known entities only, comments and processing instructions skipped

typedef struct xml_ctx {
    const char *p;
    char why[160];
} xml_ctx;

static int xml_fail(xml_ctx *x, const char *why) {
    snprintf(x->why, sizeof x->why, "%s near \"%.20s\"", why, x->p);
    return 0;
}

static int name_ch(int c) { return isalnum(c) || c == '_' || c == '-' || c == ':' || c == '.'; }

static int xml_entity(xml_ctx *x) { // at '&'
    const char *p = x->p + 1;
    static const char *const ents[] = {"amp;", "lt;", "gt;", "quot;", "apos;"};
    for (int i = 0; i < 5; i++)
        if (strncmp(p, ents[i], strlen(ents[i])) == 0) {
            x->p = p + strlen(ents[i]);
            return 1;
        }
    if (*p == '#') {
        p++;
        int hex = *p == 'x';
        if (hex) p++;
        const char *q = p;
        while (hex ? isxdigit((unsigned char)*p) : isdigit((unsigned char)*p)) p++;
        if (p > q && *p == ';') {
            x->p = p + 1;
            return 1;
        }
    }
    return xml_fail(x, "unknown entity");
}

static int xml_skip_ws(xml_ctx *x) {
    while (*x->p && isspace((unsigned char)*x->p)) x->p++;
    return 1;
}

static int xml_name(xml_ctx *x, char *out, size_t cap) {
    size_t n = 0;
    if (!isalpha((unsigned char)*x->p) && *x->p != '_') return xml_fail(x, "expected a name");
    while (name_ch((unsigned char)*x->p)) {
        if (n + 1 < cap) out[n++] = *x->p;
        x->p++;
    }
    out[n] = 0;
    return 1;
}

static int xml_check(const char *doc, char *why, size_t cap) {
    xml_ctx x = {.p = doc};
    char stack[64][64];
    int depth = 0, roots = 0;
    while (*x.p) {
        if (strncmp(x.p, "<?", 2) == 0) {
            const char *e = strstr(x.p, "?>");
            if (!e) return snprintf(why, cap, "unterminated <?"), 0;
            x.p = e + 2;
        } else if (strncmp(x.p, "<!--", 4) == 0) {
            const char *e = strstr(x.p + 4, "-->");
            if (!e) return snprintf(why, cap, "unterminated comment"), 0;
            x.p = e + 3;
        } else if (strncmp(x.p, "</", 2) == 0) {
            x.p += 2;
            char nm[64];
            if (!xml_name(&x, nm, sizeof nm)) break;
            xml_skip_ws(&x);
            if (*x.p != '>') {
                xml_fail(&x, "expected '>'");
                break;
            }
            x.p++;
            if (depth == 0 || strcmp(stack[depth - 1], nm) != 0) {
                xml_fail(&x, "mismatched closing tag");
                break;
            }
            depth--;
        } else if (*x.p == '<') {
            x.p++;
            char nm[64];
            if (!xml_name(&x, nm, sizeof nm)) break;
            if (depth == 0 && roots++ > 0) {
                xml_fail(&x, "a second root element");
                break;
            }
            int bad = 0, closed = 0;
            char seen[32][64];
            int n_seen = 0;
            for (;;) {
                int ws = isspace((unsigned char)*x.p);
                xml_skip_ws(&x);
                if (*x.p == '>') {
                    x.p++;
                    break;
                }
                if (strncmp(x.p, "/>", 2) == 0) {
                    x.p += 2;
                    closed = 1;
                    break;
                }
                char an[64];
                if (!ws || !xml_name(&x, an, sizeof an)) {
                    if (!ws) xml_fail(&x, "expected whitespace before an attribute");
                    bad = 1;
                    break;
                }
                for (int i = 0; i < n_seen; i++)
                    if (strcmp(seen[i], an) == 0) bad = 1;
                if (bad) {
                    xml_fail(&x, "duplicate attribute");
                    break;
                }
                if (n_seen < 32) snprintf(seen[n_seen++], 64, "%s", an);
                xml_skip_ws(&x);
                if (*x.p != '=') {
                    xml_fail(&x, "expected '='");
                    bad = 1;
                    break;
                }
                x.p++;
                xml_skip_ws(&x);
                char q = *x.p;
                if (q != '"' && q != '\'') {
                    xml_fail(&x, "unquoted attribute value");
                    bad = 1;
                    break;
                }
                x.p++;
                while (*x.p && *x.p != q) {
                    if (*x.p == '<') {
                        xml_fail(&x, "'<' in an attribute value");
                        bad = 1;
                        break;
                    }
                    if (*x.p == '&') {
                        if (!xml_entity(&x)) {
                            bad = 1;
                            break;
                        }
                    } else {
                        x.p++;
                    }
                }
                if (bad) break;
                if (*x.p != q) {
                    xml_fail(&x, "unterminated attribute value");
                    bad = 1;
                    break;
                }
                x.p++;
            }
            if (bad) break;
            if (!closed) {
                if (depth >= 64) {
                    xml_fail(&x, "nesting too deep");
                    break;
                }
                snprintf(stack[depth++], 64, "%s", nm);
            }
        } else if (*x.p == '&') {
            if (!xml_entity(&x)) break;
        } else if (*x.p == '>') {
            xml_fail(&x, "stray '>'");
            break;
        } else {
            if (depth == 0 && !isspace((unsigned char)*x.p)) {
                xml_fail(&x, "text outside the root element");
                break;
            }
            x.p++;
        }
    }
    if (x.why[0]) return snprintf(why, cap, "%s", x.why), 0;
    if (depth) return snprintf(why, cap, "unclosed <%s>", stack[depth - 1]), 0;
    if (roots != 1) return snprintf(why, cap, "no root element"), 0;
    return 1;
}

static int count(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

// ---------------------------------------------------------------------------------------------------------------
// unit tests

static void test_xml_checker(void) {
    char why[200];
    CHECK(xml_check("<?xml version=\"1.0\"?>\n<a x=\"1\" y='2'><b/>t &amp; &#38; &#x26;<!-- c --></a>\n", why,
                    sizeof why),
          "valid document rejected: %s", why);
    const char *bad[] = {"<a><b></a>", "<a x=1/>", "<a>&bogus;</a>", "<a></a><b/>", "<a x=\"<\"/>", "<a",
                         "<a x=\"1\" x=\"2\"/>", "<a>", "text", "<a/>>", "<a x=\"1\"y=\"2\"/>"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(!xml_check(bad[i], why, sizeof why), "malformed document accepted: %s", bad[i]);
}

static void test_stats(void) {
    double a[] = {1, 2, 3, 4};
    rlc_repro_stat s = rlc_repro_stats(a, 4);
    CHECK_CLOSE(s.mean, 2.5, 1e-12, 0, "mean");
    CHECK_CLOSE(s.std, 1.2909944487358056, 1e-12, 0, "sample std");
    CHECK(s.n_ok == 4, "n_ok %d", s.n_ok);
    double b[] = {NAN, 2};
    s = rlc_repro_stats(b, 2);
    CHECK(s.n_ok == 1 && s.mean == 2 && s.std == 0, "one finite value: mean %g std %g n %d", s.mean, s.std, s.n_ok);
    double c[] = {NAN, NAN};
    s = rlc_repro_stats(c, 2);
    CHECK(s.n_ok == 0 && isnan(s.mean), "no finite value: n %d", s.n_ok);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL, "cannot write %s", path);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static void test_series_and_metrics(void) {
    mkdir("test_repro_tmp", 0755);
    const char *path = "test_repro_tmp/metrics.jsonl";
    write_file(path,
               "{\"phase\":\"sft_eval\",\"step\":0,\"eval_success\":0.9}\n"
               "{\"phase\":\"sft\",\"step\":5,\"eval_success\":0.95,\"loss\":1}\n"
               "{\"phase\":\"rl_eval\",\"step\":0,\"eval_success\":0.1}\n"
               "{\"phase\":\"rl\",\"step\":1,\"success_rate\":0.2}\n"
               "{\"phase\":\"rl\",\"step\":2,\"success_rate\":0.3,\"eval_success\":0.4}\n"
               "{\"phase\":\"rl\",\"step\":3,\"success_rate\":0.1}\n"
               "{\"phase\":\"rl\",\"step\":4,\"success_rate\":0.9,\"eval_success\":0.8}\n"
               "{\"phase\":\"rl\",\"step\":3,\"success_rate\":0.5}\n" // written again after a resume
               "{\"phase\":\"rl\",\"step\":4,\"success_rate\":0.6,\"eval_success\":0.3}\n"
               "{\"phase\":\"rl\",\"step\":5,\"success_rate\":0.7,\"eval_success\":0.5}\n"
               "{\"phase\":\"rl\",\"step\":6,\"success_rate\":null}\n"
               "{\"phase\":\"rl\",\"step\":7,\"succ");                  // cut by a crash
    rlc_repro_series s;
    CHECK(rlc_repro_read_series(path, "eval_success", &s) == 0, "read");
    double want_step[] = {0, 2, 4, 5}, want_val[] = {0.1, 0.4, 0.3, 0.5};
    CHECK(s.n == 4, "eval_success: %d records (sft ones must be ignored, step 4 once)", s.n);
    for (int i = 0; i < s.n && i < 4; i++)
        CHECK(s.step[i] == want_step[i] && s.val[i] == want_val[i], "record %d: step %g value %g", i, s.step[i],
              s.val[i]);
    rlc_repro_metric m = {.threshold = 0.35, .tail = 0.5};
    struct { rlc_repro_agg a; double want; } cases[] = {
        {RLC_AGG_FINAL, 0.5}, {RLC_AGG_BEST, 0.5}, {RLC_AGG_MIN, 0.1}, {RLC_AGG_MEAN, 0.325},
        {RLC_AGG_TAIL, 0.4}, {RLC_AGG_STEPS_TO, 2}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        m.agg = cases[i].a;
        CHECK_CLOSE(rlc_repro_metric_value(&m, &s), cases[i].want, 1e-12, 0, "aggregation");
    }
    m.agg = RLC_AGG_STEPS_TO;
    m.threshold = 0.9;
    CHECK(isnan(rlc_repro_metric_value(&m, &s)), "steps_to never reached must be NaN");
    rlc_repro_series_free(&s);
    CHECK(rlc_repro_read_series(path, "success_rate", &s) == 0 && s.n == 5, "success_rate: %d records", s.n);
    if (s.n == 5) CHECK(s.val[2] == 0.5 && s.val[3] == 0.6, "later records win: %g %g", s.val[2], s.val[3]);
    rlc_repro_series_free(&s);
    CHECK(rlc_repro_read_series("test_repro_tmp/none.jsonl", "x", &s) != 0, "missing file must fail");
}

static const char *TABLE_CFG =
    "{\"name\": \"t\", \"comment\": \"a test\", \"paper\": \"P\", \"table\": \"Table 1\", \"scaled_down\": \"tiny\","
    " \"seeds\": [1, 2], \"threshold\": 0.5,"
    " \"metrics\": [{\"metric\": \"final:eval_success\", \"label\": \"final\"}, \"steps_to:eval_success\","
    "               {\"metric\": \"mean:response_length\", \"better\": \"none\", \"label\": \"len, tokens\"}],"
    " \"rows\": [{\"label\": \"A|x\", \"paper\": {\"final\": 40}}, {\"label\": \"B+C\", \"paper\": {\"final\": 55}},"
    "          {\"label\": \"D\"}],"
    " \"claims\": [{\"metric\": \"final\", \"better\": \"B+C\", \"worse\": \"A|x\", \"text\": \"B+C beats A\"},"
    "            {\"metric\": \"steps_to:eval_success\", \"better\": \"D\", \"worse\": \"B+C\", \"text\": \"D is faster\"},"
    "            {\"metric\": \"final\", \"better\": \"D\", \"worse\": \"A|x\", \"text\": \"D beats A\"}]}";

static void test_table(void) {
    rlc_repro_config rc;
    char err[512];
    int ok = rlc_repro_config_parse(&rc, TABLE_CFG, "t.json", NULL, 0, err, sizeof err) == 0;
    CHECK(ok, "parse: %s", err);
    if (!ok) return;
    CHECK(strcmp(rc.rows[1].id, "B-plus-C") == 0 && strcmp(rc.rows[0].id, "A-x") == 0, "ids %s %s", rc.rows[0].id,
          rc.rows[1].id);
    CHECK(rc.metrics[1].better == -1 && rc.metrics[0].better == 1 && rc.metrics[2].better == 0, "directions");
    CHECK(rc.n_curves == 1 && strcmp(rc.curves[0].key, "eval_success") == 0, "default curve");
    // (rows, metrics, seeds)
    double v[3][3][2] = {
        {{0.5, 0.7}, {40, 60}, {10, 12}},
        {{0.6, 0.8}, {NAN, 30}, {9, 9}},
        {{0.55, 0.55}, {NAN, NAN}, {8, 8}},
    };
    const double *vals = &v[0][0][0];
    CHECK(rlc_repro_best_row(&rc, vals, 0) == 1, "best final: row %d", rlc_repro_best_row(&rc, vals, 0));
    // steps_to: A reached with both seeds (mean 50), B with one (30): both seeds count more than a lower mean
    CHECK(rlc_repro_best_row(&rc, vals, 1) == 0, "best steps_to: row %d", rlc_repro_best_row(&rc, vals, 1));
    CHECK(rlc_repro_best_row(&rc, vals, 2) == -1, "no best for better=none");
    CHECK(rlc_repro_best_paper_row(&rc, 0) == 1, "best paper row");
    char cell[128];
    rlc_repro_format_cell(&rc.metrics[0], v[0][0], 2, cell, sizeof cell);
    CHECK(strcmp(cell, "0.600 ± 0.141") == 0, "cell \"%s\"", cell);
    rlc_repro_format_cell(&rc.metrics[1], v[1][1], 2, cell, sizeof cell);
    CHECK(strcmp(cell, "30 (1/2 reached)") == 0, "cell \"%s\"", cell);
    rlc_repro_format_cell(&rc.metrics[1], v[2][1], 2, cell, sizeof cell);
    CHECK(strcmp(cell, "not reached") == 0, "cell \"%s\"", cell);
    rlc_repro_format_cell(&rc.metrics[0], v[0][0], 1, cell, sizeof cell);
    CHECK(strcmp(cell, "0.500") == 0, "one seed: \"%s\"", cell);
    // claims: B+C (0.7) > A (0.6) agrees; D vs B+C on steps_to: only B+C reached -> disagrees; D (0.55) vs A (0.6)
    CHECK(rlc_repro_claim_verdict(&rc, vals, 0, NULL, 0) == 1, "claim 0");
    CHECK(rlc_repro_claim_verdict(&rc, vals, 1, NULL, 0) == -1, "claim 1");
    CHECK(rlc_repro_claim_verdict(&rc, vals, 2, NULL, 0) == -1, "claim 2");
    char *md = rlc_repro_table_md(&rc, vals, NULL, NULL);
    CHECK(strstr(md, "| B+C | **0.700 ± 0.141** | **55** | 30 (1/2 reached) | 9.0 ± 0.0 |") != NULL,
          "row B+C in table.md:\n%s", md);
    CHECK(strstr(md, "| A\\|x | 0.600 ± 0.141 | 40 | **50 ± 14** | 11.0 ± 1.4 |") != NULL, "row A|x:\n%s", md);
    CHECK(strstr(md, "| D | 0.550 ± 0.000 | – | not reached | 8.0 ± 0.0 |") != NULL, "row D:\n%s", md);
    CHECK(strstr(md, "| method | final | final (paper) | steps_to:eval_success | len, tokens |") != NULL, "header");
    CHECK(strstr(md, "partly agrees: 1 of 3 claims agree, 2 disagree") != NULL, "agreement summary");
    CHECK(strstr(md, "**agrees**: B+C beats A") != NULL && strstr(md, "**disagrees**: D is faster") != NULL,
          "claim lines");
    free(md);
    // kind "matches": D (0.55 +- 0) vs A (0.6 +- 0.141) is within seed noise (t = -0.5): a match; far below, not
    rc.claims[2].matches = 1;
    CHECK(rlc_repro_claim_verdict(&rc, vals, 2, NULL, 0) == 1, "claim 2 as a match");
    v[2][0][0] = v[2][0][1] = 0.1; // t = -5
    CHECK(rlc_repro_claim_verdict(&rc, vals, 2, NULL, 0) == -1, "claim 2: worse beyond noise is no match");
    v[2][0][0] = v[2][0][1] = 0.55;
    rc.claims[2].matches = 0;
    // ties are all marked
    double w[3][3][2] = {{{0.5, 0.5}, {1, 1}, {1, 1}}, {{0.5, 0.5}, {1, 1}, {1, 1}}, {{0.1, 0.1}, {2, 2}, {1, 1}}};
    md = rlc_repro_table_md(&rc, &w[0][0][0], NULL, NULL);
    CHECK(count(md, "**0.500 ± 0.000**") == 2, "both tied rows marked:\n%s", md);
    free(md);
    // CSV: header + rows x metrics lines, 11 fields each (quoted fields may hold commas)
    char *csv = rlc_repro_table_csv(&rc, vals);
    int lines = 0, bad_fields = 0;
    for (char *line = csv, *nl; line && *line; line = nl) {
        nl = strchr(line, '\n');
        if (nl) *nl++ = 0;
        int fields = 1, q = 0;
        for (char *p = line; *p; p++) {
            if (*p == '"') q = !q;
            else if (*p == ',' && !q) fields++;
        }
        bad_fields += fields != 11;
        lines++;
    }
    free(csv);
    CHECK(lines == 1 + 3 * 3, "csv lines %d", lines);
    CHECK(bad_fields == 0, "csv lines with a field count other than 11: %d", bad_fields);
    csv = rlc_repro_table_csv(&rc, vals);
    CHECK(strstr(csv, "B+C,B-plus-C,final:eval_success,final,0.7,0.141421356,2,2,1,55,0.6;0.8\n") != NULL,
          "csv row:\n%s", csv);
    CHECK(strstr(csv, "D,D,steps_to:eval_success,steps_to:eval_success,,,0,2,0,,nan;nan\n") != NULL, "csv row D");
    CHECK(strstr(csv, "\"len, tokens\"") != NULL, "a label with a comma is quoted");
    free(csv);
    rlc_repro_config_free(&rc);
}

static void test_config_errors(void) {
    struct { const char *json, *want; } cases[] = {
        {"{\"name\": \"x\", \"seeds\": [1], \"metrics\": [\"final:a\"], \"rows\": [{\"label\": \"a\"}], \"rowz\": 1}",
         "unknown key \"rowz\""},
        {"{\"name\": \"x\", \"seeds\": [1], \"metrics\": [\"final:a\"], \"rows\": [{\"set\": {}}]}", "missing \"label\""},
        {"{\"name\": \"x\", \"seeds\": [1], \"metrics\": [\"final:a\"], \"rows\": [{\"label\": \"a\"}, {\"label\": \"a\"}]}",
         "not unique"},
        {"{\"name\": \"x\", \"seeds\": [1], \"metrics\": [\"final:a\"], \"rows\": [{\"label\": \"a\", \"paper\": {\"b\": 1}}]}",
         "not one of the metrics"},
        {"{\"name\": \"x\", \"seeds\": [1], \"metrics\": [\"steps_to:a\"], \"rows\": [{\"label\": \"a\"}]}",
         "needs a \"threshold\""},
        {"{\"name\": \"x\", \"seeds\": [1], \"metrics\": [\"last:a\"], \"rows\": [{\"label\": \"a\"}]}",
         "unknown aggregation"},
        {"{\"name\": \"x\", \"seeds\": [], \"metrics\": [\"final:a\"], \"rows\": [{\"label\": \"a\"}]}", "seeds"},
        {"{\"name\": \"x y\", \"seeds\": [1], \"metrics\": [\"final:a\"], \"rows\": [{\"label\": \"a\"}]}", "name"},
        {"{\"name\": \"x\", \"seeds\": [1], \"metrics\": [\"final:a\"], \"rows\": [{\"label\": \"a\"}],"
         " \"claims\": [{\"metric\": \"final:a\", \"better\": \"a\", \"worse\": \"z\", \"text\": \"t\"}]}",
         "not found"},
        {"{\"name\": \"x\", \"seeds\": [1], \"metrics\": [\"final:a\"], \"rows\": [{\"label\": \"a\"}, {\"label\": \"b\"}],"
         " \"claims\": [{\"metric\": \"final:a\", \"better\": \"a\", \"worse\": \"b\", \"text\": \"t\", \"kind\": \"ties\"}]}",
         "kind must be"},
        {"{\"name\": \"x\", \"seeds\": [1], \"metrics\": [\"final:a\"], \"rows\": [{\"label\": \"a\"}], \"base\": 3}",
         "base must be"},
        {"{\"name\": \"x\", \"seeds\": [1], \"metrics\": [\"final:a\"], \"rows\": [{\"label\": \"a\"}], "
         "\"base\": \"no/such/file.json\"}", "cannot read"},
        {"{\"name\": \"x\", \"seeds\": [1], \"metrics\": [\"final:a\"], \"rows\": [{\"label\": \"a\"}], \"quick\": {\"steps\": 1}}",
         "unknown key \"steps\""},
        {"{\"name\": \"x\", \"seeds\": [1], ", "malformed JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rlc_repro_config rc;
        char err[512] = "";
        int r = rlc_repro_config_parse(&rc, cases[i].json, "bad.json", NULL, 0, err, sizeof err);
        CHECK(r != 0, "case %zu accepted", i);
        CHECK(strstr(err, cases[i].want) != NULL && strstr(err, "bad.json") != NULL, "case %zu: \"%s\" lacks \"%s\"",
              i, err, cases[i].want);
    }
    // a training key that does not exist is caught when the cell's config is built, naming the key
    rlc_repro_config rc;
    char err[1024];
    int ok = rlc_repro_config_parse(&rc, "{\"name\": \"x\", \"seeds\": [1], \"metrics\": [\"final:a\"], "
                                         "\"rows\": [{\"label\": \"a\", \"set\": {\"rl.metod\": \"grpo\"}}]}",
                                    "k.json", NULL, 0, err, sizeof err) == 0;
    CHECK(ok, "parse: %s", err);
    if (ok) {
        rlc_config cfg;
        CHECK(rlc_repro_cell_config(&rc, 0, 0, "res/x", NULL, 0, &cfg, err, sizeof err) != 0 &&
                  strstr(err, "rl.metod") && strstr(err, "rl.method"),
              "bad training key: %s", err);
        rlc_repro_config_free(&rc);
    }
}

static void test_svg(void) {
    double ticks[16], lo = 0, hi = 1;
    int n = rlc_svg_nice_ticks(&lo, &hi, 7, ticks);
    CHECK(n == 6 && ticks[0] == 0 && fabs(ticks[5] - 1) < 1e-12, "ticks of [0,1]: %d", n);
    lo = 3, hi = 97;
    n = rlc_svg_nice_ticks(&lo, &hi, 8, ticks);
    CHECK(n == 6 && lo == 0 && hi == 100 && ticks[1] == 20, "ticks of [3,97]: %d (%g..%g)", n, lo, hi);
    lo = 0.42, hi = 0.42;
    n = rlc_svg_nice_ticks(&lo, &hi, 7, ticks);
    CHECK(n >= 2 && lo < 0.42 && hi > 0.42, "a flat range opens: %g..%g", lo, hi);

    double x[] = {0, 10, 20, 30, 40}, y1[] = {0.1, 0.2, NAN, 0.4, 0.5}, l1[] = {0.0, 0.1, NAN, 0.3, 0.4},
           h1[] = {0.2, 0.3, NAN, 0.5, 0.6}, y2[] = {0.3, 0.3, 0.35, 0.5, 0.45};
    rlc_svg_series s[2] = {{"GRPO <&> \"x\"", 5, x, y1, l1, h1}, {"PPO", 5, x, y2, NULL, NULL}};
    rlc_svg_plot p = {.title = "a & b < c", .xlabel = "RL step", .ylabel = "eval success", .ymin = NAN, .ymax = NAN};
    char *svg = rlc_svg_line_plot(&p, s, 2);
    char why[200];
    CHECK(xml_check(svg, why, sizeof why), "plot is not well-formed XML: %s", why);
    CHECK(strstr(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\"") != NULL, "svg root");
    CHECK(count(svg, "<polyline") == 3, "a NaN splits the first line: %d polylines", count(svg, "<polyline"));
    CHECK(count(svg, "<polygon") == 2, "bands: %d polygons", count(svg, "<polygon"));
    CHECK(strstr(svg, "GRPO &lt;&amp;&gt; &quot;x&quot;") != NULL, "legend text escaped");
    free(svg);
    // an empty series and a single point still make a valid document
    double one_x[] = {5}, one_y[] = {0.5};
    rlc_svg_series e[2] = {{"empty", 0, x, y1, NULL, NULL}, {"dot", 1, one_x, one_y, NULL, NULL}};
    svg = rlc_svg_line_plot(&p, e, 2);
    CHECK(xml_check(svg, why, sizeof why), "degenerate plot: %s", why);
    CHECK(count(svg, "<circle") == 1, "a single point is a dot");
    free(svg);
}

// ---------------------------------------------------------------------------------------------------------------
// the smoke check of a results directory (also used by the end-to-end test)

static int check_results(const rlc_repro_config *rc, const char *dir) {
    int before = test_failures;
    char p[1200];
    snprintf(p, sizeof p, "%s/table.md", dir);
    char *md = rlc_read_file(p, NULL);
    CHECK(md != NULL, "%s missing", p);
    if (md) {
        // the results table: the line after the header separator, one line per row
        char *t = strstr(md, "\n| method |");
        CHECK(t != NULL, "%s: no results table", p);
        int rows = 0;
        if (t) {
            char *line = strchr(t + 1, '\n'); // separator
            line = line ? strchr(line + 1, '\n') : NULL;
            while (line && line[1] == '|') {
                line++;
                char *nl = strchr(line, '\n');
                size_t len = nl ? (size_t)(nl - line) : strlen(line);
                char buf[4096];
                snprintf(buf, sizeof buf, "%.*s", (int)len, line);
                // cells: between unescaped '|'
                int cells = 0, empty = 0;
                char *c = buf + 1;
                for (char *q = c; *q; q++)
                    if (*q == '|' && q[-1] != '\\') {
                        char cellt[512];
                        snprintf(cellt, sizeof cellt, "%.*s", (int)(q - c), c);
                        char *s = cellt;
                        while (*s == ' ') s++;
                        size_t l = strlen(s);
                        while (l && s[l - 1] == ' ') s[--l] = 0;
                        empty += l == 0 || strcmp(s, "n/a") == 0;
                        cells++;
                        c = q + 1;
                    }
                int want = 1 + rc->n_metrics;
                for (int m = 0; m < rc->n_metrics; m++) {
                    int paper = 0;
                    for (int r = 0; r < rc->n_rows; r++) paper |= isfinite(rc->rows[r].paper[m]);
                    want += paper;
                }
                CHECK(cells == want, "%s: row \"%s\" has %d cells, expected %d", p, buf, cells, want);
                CHECK(empty == 0, "%s: row \"%s\" has %d empty or n/a cells", p, buf, empty);
                rows++;
                line = nl;
            }
        }
        CHECK(rows == rc->n_rows, "%s: %d table rows, expected %d", p, rows, rc->n_rows);
        CHECK(strstr(md, "Cells finished: ") && !strstr(md, "n/a"), "%s: cells unfinished or n/a", p);
        free(md);
    }
    snprintf(p, sizeof p, "%s/table.csv", dir);
    char *csv = rlc_read_file(p, NULL);
    CHECK(csv != NULL, "%s missing", p);
    if (csv) {
        int lines = count(csv, "\n");
        CHECK(lines == 1 + rc->n_rows * rc->n_metrics, "%s: %d lines, expected %d", p, lines,
              1 + rc->n_rows * rc->n_metrics);
        free(csv);
    }
    for (int c = 0; c < rc->n_curves; c++) {
        // the plots are named after their keys (see curve_file in host/repro.c)
        char key[64];
        snprintf(key, sizeof key, "%s", rc->curves[c].key);
        snprintf(p, sizeof p, "%s/%s.svg", dir, key);
        char *svg = rlc_read_file(p, NULL);
        if (!svg) {
            snprintf(p, sizeof p, "%s/%s_%d.svg", dir, key, c);
            svg = rlc_read_file(p, NULL);
        }
        CHECK(svg != NULL, "%s missing", p);
        if (!svg) continue;
        char why[200];
        CHECK(xml_check(svg, why, sizeof why), "%s: not well-formed: %s", p, why);
        CHECK(strstr(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\"") != NULL, "%s: no svg root", p);
        int lines = count(svg, "<polyline") + count(svg, "<circle");
        CHECK(lines >= rc->n_rows, "%s: %d lines/dots for %d rows", p, lines, rc->n_rows);
        for (int r = 0; r < rc->n_rows; r++) {
            char leg[200];
            snprintf(leg, sizeof leg, ">%s</text>", rc->rows[r].label);
            if (!strpbrk(rc->rows[r].label, "<>&\"'")) CHECK(strstr(svg, leg) != NULL, "%s: no legend for %s", p, leg);
        }
        free(svg);
    }
    return test_failures == before;
}

static const char *TINY_CFG =
    "{\"comment\": \"tiny end-to-end grid\", \"name\": \"tiny\",\n"
    " \"base\": {\"model\": {\"dim\": 32, \"n_layers\": 1, \"n_heads\": 2, \"n_kv_heads\": 1, \"head_dim\": 16, "
    "\"hidden_dim\": 64},\n"
    "          \"task\": {\"name\": \"addition\", \"digits\": 1, \"min_digits\": 1, \"eval_size\": 8},\n"
    "          \"sft\": {\"steps\": 6, \"batch_size\": 8, \"optim\": {\"lr\": 3e-3}},\n"
    "          \"rollout\": {\"prompts_per_step\": 4, \"group_size\": 4, \"max_new_tokens\": 4},\n"
    "          \"rl\": {\"steps\": 6, \"optim\": {\"lr\": 1e-3}, \"ent_coef\": 0.01}, \"eval_every\": 2, \"ckpt_every\": 2,"
    " \"threads\": 1},\n"
    " \"seeds\": [3, 4], \"quick\": {\"seeds\": [3], \"set\": {\"rl.steps\": 2}}, \"threshold\": 0.1,\n"
    " \"metrics\": [\"final:eval_success\", \"best:success_rate\", {\"metric\": \"mean:response_length\", "
    "\"better\": \"none\"}],\n"
    " \"curves\": [\"eval_success\", {\"key\": \"success_rate\", \"smooth\": 2}],\n"
    " \"rows\": [{\"label\": \"GRPO\", \"set\": {\"rl.method\": \"grpo\"}, \"paper\": {\"final:eval_success\": 0.3}},\n"
    "          {\"label\": \"RLOO+\", \"set\": {\"rl.method\": \"rloo\"}},\n"
    "          {\"label\": \"PPO\", \"set\": {\"rl.method\": \"ppo\", \"model.value_head\": true}}],\n"
    " \"claims\": [{\"metric\": \"final:eval_success\", \"better\": \"PPO\", \"worse\": \"GRPO\", \"text\": \"t\"}]}\n";

static long file_size(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static void test_end_to_end(void) {
    mkdir("test_repro_tmp", 0755);
    const char *cfg = "test_repro_tmp/tiny.json";
    write_file(cfg, TINY_CFG);
    if (system("rm -rf test_repro_tmp/a test_repro_tmp/b") != 0) CHECK(0, "rm failed");
    rlc_repro_opts o = {.out_root = "test_repro_tmp/a", .quiet = 1, .command = "test"};
    rlc_repro_counts c;
    double t0 = rlc_now();
    CHECK(rlc_repro_run(cfg, &o, &c) == 0, "first run failed");
    printf("test_repro: tiny grid (3 rows x 2 seeds) in %.1f s\n", rlc_now() - t0);
    CHECK(c.cells == 6 && c.ran == 6 && c.skipped == 0 && c.failed == 0, "first run: cells %d ran %d skipped %d",
          c.cells, c.ran, c.skipped);
    CHECK(c.sft_ran == 4, "shared SFT runs: %d (2 seeds x {with, without value head})", c.sft_ran);
    rlc_repro_config rc;
    char err[512];
    CHECK(rlc_repro_config_load(&rc, cfg, 0, err, sizeof err) == 0, "load: %s", err);
    CHECK(check_results(&rc, "test_repro_tmp/a/tiny"), "results of the first run");
    const char *m = "test_repro_tmp/a/tiny/runs/RLOO-plus-s4/metrics.jsonl";
    long size = file_size(m);
    CHECK(size > 0, "%s missing", m);
    char *first_csv = rlc_read_file("test_repro_tmp/a/tiny/table.csv", NULL);

    // again: every cell is finished, nothing runs
    CHECK(rlc_repro_run(cfg, &o, &c) == 0, "second run failed");
    CHECK(c.ran == 0 && c.skipped == 6 && c.sft_ran == 0, "second run: ran %d skipped %d", c.ran, c.skipped);
    CHECK(file_size(m) == size, "a finished cell was run again (%ld -> %ld bytes)", size, file_size(m));

    // interrupted: 4 optimizer steps per invocation (SFT has 6, RL 6): three invocations finish the grid
    rlc_repro_opts oi = o;
    oi.out_root = "test_repro_tmp/b";
    oi.max_steps = 4;
    int rounds = 0, done = 0;
    while (rounds < 6 && !done) {
        CHECK(rlc_repro_run(cfg, &oi, &c) == 0, "interrupted run %d failed", rounds);
        rounds++;
        done = c.skipped + c.ran == 6;
        if (rounds == 1) CHECK(c.ran == 0, "nothing can finish in the first 4 steps");
    }
    CHECK(done && rounds == 3, "the interrupted grid finished after %d invocations (expected 3)", rounds);
    char *second_csv = rlc_read_file("test_repro_tmp/b/tiny/table.csv", NULL);
    CHECK(first_csv && second_csv && strcmp(first_csv, second_csv) == 0,
          "resumed grid differs from the uninterrupted one:\n%s\nvs\n%s", first_csv ? first_csv : "",
          second_csv ? second_csv : "");
    free(first_csv);
    free(second_csv);

    // a changed config is refused for finished cells
    rlc_repro_opts os = o;
    const char *set[] = {"rl.optim.lr=2e-3"};
    os.overrides = set;
    os.n_over = 1;
    CHECK(rlc_repro_run(cfg, &os, &c) != 0, "a changed config must be refused");
    // a cell recorded before a key existed (here rollout.ignore_eos) agrees while the key has its default value
    const char *cj = "test_repro_tmp/a/tiny/runs/RLOO-plus-s4/config.json";
    char *text = rlc_read_file(cj, NULL);
    cJSON *js = text ? cJSON_Parse(text) : NULL;
    cJSON *ro = js ? cJSON_GetObjectItem(js, "rollout") : NULL;
    CHECK(ro && cJSON_GetObjectItem(ro, "ignore_eos"), "%s records rollout.ignore_eos", cj);
    if (ro) cJSON_DeleteItemFromObject(ro, "ignore_eos");
    char *older = js ? cJSON_Print(js) : NULL;
    if (older) write_file(cj, older);
    free(text);
    free(older);
    cJSON_Delete(js);
    CHECK(rlc_repro_run(cfg, &o, &c) == 0 && c.ran == 0 && c.skipped == 6, "a key added since, at its default");
    const char *set2[] = {"rollout.ignore_eos=true"};
    os.overrides = set2;
    CHECK(rlc_repro_run(cfg, &os, &c) != 0, "a key added since, not at its default, must be refused");
    // --report only reads; --quick writes its own directory
    rlc_repro_opts orp = o;
    orp.report_only = 1;
    CHECK(rlc_repro_run(cfg, &orp, &c) == 0 && c.ran == 0, "report");
    rlc_repro_opts oq = o;
    oq.quick = 1;
    CHECK(rlc_repro_run(cfg, &oq, &c) == 0 && c.cells == 3 && c.ran == 3, "quick: cells %d ran %d", c.cells, c.ran);
    rlc_repro_config rq;
    CHECK(rlc_repro_config_load(&rq, cfg, 1, err, sizeof err) == 0, "load quick: %s", err);
    CHECK(check_results(&rq, "test_repro_tmp/a/tiny-quick"), "quick results");
    char *qmd = rlc_read_file("test_repro_tmp/a/tiny-quick/table.md", NULL);
    CHECK(qmd && strstr(qmd, "Quick smoke run"), "the quick table says what it is");
    free(qmd);
    rlc_repro_config_free(&rq);
    rlc_repro_config_free(&rc);
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "check") == 0) {
        rlc_repro_config rc;
        char err[1024];
        if (rlc_repro_config_load(&rc, argv[2], 1, err, sizeof err) != 0) {
            fprintf(stderr, "test_repro: %s\n", err);
            return 1;
        }
        CHECK(rc.comment[0] && rc.paper[0] && rc.table[0] && rc.scaled_down[0],
              "%s: a paper config must name the paper, its table and how it is scaled down", argv[2]);
        CHECK(rc.n_claims > 0, "%s: a paper config states the paper's direction (claims)", argv[2]);
        char dir[1200];
        rlc_repro_result_dir(&rc, argv[3], dir, sizeof dir);
        check_results(&rc, dir);
        rlc_repro_config_free(&rc);
        return test_finish("test_repro check");
    }
    test_xml_checker();
    test_stats();
    test_series_and_metrics();
    test_table();
    test_config_errors();
    test_svg();
    test_end_to_end();
    return test_finish("test_repro");
}
