// Evaluation report: statistics of hand-made run directories checked against values computed
// here from the definitions (diversity values from the nltk golden fixture), the cut at the
// next turn, two runs side by side, and the CLI's JSON/Markdown files.
#include "base/common.h"
#include "eval/report.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static char g_dir[256];

static void setup(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/rc_test_eval_XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir));
}

static void teardown(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(eval, .init = setup, .fini = teardown);

static void write_file(const char *dir, const char *name, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

// Two responses; the second continues with a new "Human:" turn that must be cut away.
static void make_run(const char *dir, double r0, double r1, const char *resp1) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    cr_assert_eq(system(cmd), 0);
    char lines[2048];
    snprintf(lines, sizeof lines,
             "{\"index\": 0, \"item\": 0, \"prompt\": \"Human: hi\\nAssistant:\", \"response\": \" Hello world. "
             "This is a test.\", \"n_tokens\": 9, \"finish\": \"eos\"}\n"
             "{\"index\": 1, \"item\": 2, \"prompt\": \"Human: q\\nAssistant:\", \"response\": \"%s\", "
             "\"n_tokens\": 20, \"finish\": \"length\"}\n",
             resp1);
    write_file(dir, "responses.jsonl", lines);
    snprintf(lines, sizeof lines, "{\"index\": 1, \"reward\": %.17g}\n{\"index\": 0, \"reward\": %.17g}\n", r1, r0);
    write_file(dir, "rewards.jsonl", lines);
}

Test(eval, statistics_from_definitions) {
    char a[300];
    snprintf(a, sizeof a, "%s/a", g_dir);
    make_run(a, 1.5, -0.5, " I can't believe it's not butter!\\n\\nHuman: and now? User: x");
    rc_eval_stats s;
    cr_assert_eq(rc_eval_run(a, &s), 0, "%s", rc_last_error());
    cr_assert_eq(s.n, 2);
    cr_assert_eq(s.n_rewarded, 2);
    cr_assert_float_eq(s.reward_mean, 0.5, 1e-12);
    cr_assert_float_eq(s.reward_std, 1.0, 1e-12);
    // nltk: "Hello world. This is a test." -> Hello world . This is a test . (8 words), all n-grams
    // unique: rep_n = 100*(1 - m/(m+1)); "I can't believe it's not butter!" -> 9 words (fixture).
    double d0 = 1, d1 = 1;
    for (int n = 2; n <= 4; n++) {
        double m0 = 8 - n + 1, m1 = 9 - n + 1;
        d0 *= m0 / (m0 + 1);
        d1 *= m1 / (m1 + 1);
    }
    cr_assert_float_eq(d1, 0.6666666666666665, 1e-12, "fixture value for the second text");
    cr_assert_float_eq(s.diversity, (d0 + d1) / 2, 1e-12, "%.15f", s.diversity);
    cr_assert_float_eq(s.len_words, (8 + 9) / 2.0, 1e-12);
    cr_assert_float_eq(s.len_tokens, (8 + 20) / 2.0, 1e-12, "EOS not counted");
    cr_assert_float_eq(s.eos_frac, 0.5, 1e-12);
    cr_assert_str_eq(s.response[1], " I can't believe it's not butter!");
    rc_eval_stats_free(&s);
}

Test(eval, two_runs_and_cli_files) {
    char a[300], b[300], cmd[4096];
    snprintf(a, sizeof a, "%s/a", g_dir);
    snprintf(b, sizeof b, "%s/b", g_dir);
    make_run(a, 1.0, 2.0, "same same same same");
    make_run(b, 3.0, 2.0, "all different words here");
    rc_eval_stats sa, sb;
    cr_assert_eq(rc_eval_run(a, &sa), 0);
    cr_assert_eq(rc_eval_run(b, &sb), 0);
    rc_eval_pair p;
    rc_eval_compare(&sa, &sb, &p);
    cr_assert_eq(p.n_paired, 2);
    cr_assert_float_eq(p.win, 0.5, 1e-12);
    cr_assert_float_eq(p.tie, 0.5, 1e-12);
    cr_assert_gt(sb.diversity, sa.diversity);
    rc_eval_stats_free(&sa);
    rc_eval_stats_free(&sb);

    snprintf(cmd, sizeof cmd, "%s eval --run %s --against %s --out %s/rep --example > %s/stdout 2>/dev/null",
             RC_BINARY, a, b, g_dir, g_dir);
    cr_assert_eq(system(cmd), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/rep.json", g_dir);
    size_t len;
    char *t = rc_read_file(path, &len);
    cr_assert_not_null(t, "%s", rc_last_error());
    cJSON *j = cJSON_Parse(t);
    free(t);
    cr_assert_not_null(j);
    cJSON *runs = cJSON_GetObjectItem(j, "runs");
    cr_assert_eq(cJSON_GetArraySize(runs), 2);
    cr_assert_float_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(runs, 0), "reward_mean")->valuedouble, 1.5, 1e-12);
    cr_assert_float_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "delta"), "reward_mean")->valuedouble, 1.0, 1e-12);
    cJSON_Delete(j);
    snprintf(path, sizeof path, "%s/rep.md", g_dir);
    t = rc_read_file(path, &len);
    cr_assert_not_null(t);
    cr_assert(strstr(t, "| average reward | 1.5000 | 2.5000 | +1.0000 |"), "%s", t);
    cr_assert(strstr(t, "### Example"), "%s", t);
    free(t);
}

Test(eval, bad_inputs) {
    char a[300], cmd[4096];
    snprintf(a, sizeof a, "%s/a", g_dir);
    make_run(a, 1, 2, "x");
    write_file(a, "rewards.jsonl", "{\"index\": 0, \"reward\": 1}\n{\"index\": 7, \"reward\": 1}\n");
    rc_eval_stats s;
    cr_assert_eq(rc_eval_run(a, &s), -1);
    cr_assert(strstr(rc_last_error(), "rewards.jsonl:2") && strstr(rc_last_error(), "index 7"), "%s", rc_last_error());
    write_file(a, "rewards.jsonl", "{\"index\": 0, \"reward\": 1}\nnot json\n");
    cr_assert_eq(rc_eval_run(a, &s), -1);
    cr_assert(strstr(rc_last_error(), "rewards.jsonl:2"), "%s", rc_last_error());
    write_file(a, "responses.jsonl", "{\"index\": 0, \"prompt\": \"p\", \"response\": \"r\"}\n{\"index\": 5, \"prompt\": \"p\", \"response\": \"r\"}\n");
    cr_assert_eq(rc_eval_run(a, &s), -1);
    cr_assert(strstr(rc_last_error(), "responses.jsonl:2"), "%s", rc_last_error());
    snprintf(cmd, sizeof cmd, "%s eval --run %s/missing 2>%s/err; grep -q 'no responses' %s/err", RC_BINARY, g_dir, g_dir, g_dir);
    cr_assert_eq(system(cmd), 0);
}
