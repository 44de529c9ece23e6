// The `logits` and `generate` subcommands end to end (the built binary, run via the shell):
// outputs against the transformers fixtures, exit codes and error messages on bad input.
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/common.h"
#include "base/npy.h"

static char g_tmp[256];

static void setup(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/rc_cli_forward_XXXXXX");
    cr_assert(mkdtemp(g_tmp));
}
static void teardown(void) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    (void)system(cmd);
}

// Runs `recontrol <args>` with stdout/stderr to files in g_tmp; returns the exit code.
static int run(const char *args) {
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "'%s' %s >'%s/out.txt' 2>'%s/err.txt'", RC_BINARY, args, g_tmp, g_tmp);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *name) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", g_tmp, name);
    char *s = rc_read_file(p, NULL);
    cr_assert(s, "%s", rc_last_error());
    return s;
}

static cJSON *golden(const char *model) {
    char p[1024];
    snprintf(p, sizeof p, "%s/tiny/%s/golden.json", RC_FIXTURES, model);
    char *s = rc_read_file(p, NULL);
    cr_assert(s);
    cJSON *j = cJSON_Parse(s);
    free(s);
    return j;
}

static void ids_arg(const cJSON *arr, char *out, size_t cap) {
    size_t k = 0;
    out[0] = 0;
    for (int i = 0; i < cJSON_GetArraySize(arr); i++)
        k += snprintf(out + k, cap - k, "%s%d", i ? "," : "", cJSON_GetArrayItem(arr, i)->valueint);
}

Test(cli_forward, logits_match_transformers, .init = setup, .fini = teardown) {
    cJSON *g = golden("gqa_hd64_explicit_v1001");
    char ids[1024], args[4096];
    ids_arg(cJSON_GetArrayItem(cJSON_GetObjectItem(g, "seqs"), 1), ids, sizeof ids);
    snprintf(args, sizeof args, "logits --model '%s/tiny/gqa_hd64_explicit_v1001' --ids %s --out '%s/l.npy'",
             RC_FIXTURES, ids, g_tmp);
    cr_assert_eq(run(args), 0, "%s", slurp("err.txt"));
    float *a, *b;
    int nd;
    int64_t sa[8], sb[8];
    char p[512];
    snprintf(p, sizeof p, "%s/l.npy", g_tmp);
    cr_assert(rc_npy_read_f32(p, &a, &nd, sa) == 0);
    snprintf(p, sizeof p, "%s/tiny/gqa_hd64_explicit_v1001/logits_1.npy", RC_FIXTURES);
    cr_assert(rc_npy_read_f32(p, &b, &nd, sb) == 0);
    cr_assert(sa[0] == sb[0] && sa[1] == sb[1], "shape [%lld, %lld]", (long long)sa[0], (long long)sa[1]);
    double num = 0, den = 0;
    for (int64_t i = 0; i < sa[0] * sa[1]; i++) {
        num = fmax(num, fabs(a[i] - b[i]));
        den = fmax(den, fabs(b[i]));
    }
    cr_assert(num / den <= 1e-4, "rel err %g", num / den);
    free(a), free(b);
    cJSON_Delete(g);
}

Test(cli_forward, reward_model_writes_rewards, .init = setup, .fini = teardown) {
    const char *models[2] = {"rm_score", "rm_regression_head_bf16"};
    for (int mi = 0; mi < 2; mi++) {
        cJSON *g = golden(models[mi]);
        char ids[1024], args[4096];
        ids_arg(cJSON_GetArrayItem(cJSON_GetObjectItem(g, "seqs"), 2), ids, sizeof ids);
        snprintf(args, sizeof args, "logits --model '%s/tiny/%s' --ids %s --out '%s/r.npy'", RC_FIXTURES,
                 models[mi], ids, g_tmp);
        cr_assert_eq(run(args), 0, "%s", slurp("err.txt"));
        float *r;
        int nd;
        int64_t sh[8];
        char p[512];
        snprintf(p, sizeof p, "%s/r.npy", g_tmp);
        cr_assert(rc_npy_read_f32(p, &r, &nd, sh) == 0);
        cr_assert(nd == 2 && sh[0] == 1 && sh[1] == 1);
        double want = cJSON_GetArrayItem(cJSON_GetObjectItem(g, "rewards"), 2)->valuedouble;
        cr_assert(fabs(r[0] - want) <= 1e-4 * fmax(1, fabs(want)), "%s: %g vs HF %g", models[mi], r[0], want);
        free(r);
        cJSON_Delete(g);
    }
}

Test(cli_forward, generate_greedy_json_matches_transformers, .init = setup, .fini = teardown) {
    cJSON *g = golden("gqa_llama3_rope");
    const cJSON *pr = cJSON_GetObjectItem(g, "prompts"), *gr = cJSON_GetObjectItem(g, "greedy");
    char args[8192];
    int k = snprintf(args, sizeof args, "generate --model '%s/tiny/gqa_llama3_rope' --max-new-tokens 32 "
                                        "--no-stop --batch 2 --json",
                     RC_FIXTURES);
    for (int i = 0; i < cJSON_GetArraySize(pr); i++) {
        char ids[1024];
        ids_arg(cJSON_GetArrayItem(pr, i), ids, sizeof ids);
        k += snprintf(args + k, sizeof args - k, " --ids %s", ids);
    }
    cr_assert_eq(run(args), 0, "%s", slurp("err.txt"));
    char *out = slurp("out.txt"), *save = NULL;
    int line = 0;
    for (char *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save), line++) {
        cJSON *j = cJSON_Parse(l);
        cr_assert(j, "line %d not JSON: %s", line, l);
        cr_assert_eq(cJSON_GetObjectItem(j, "index")->valueint, line);
        const cJSON *ids = cJSON_GetObjectItem(j, "ids"), *want = cJSON_GetArrayItem(gr, line);
        cr_assert_eq(cJSON_GetArraySize(ids), 32);
        for (int t = 0; t < 32; t++)
            cr_assert_eq(cJSON_GetArrayItem(ids, t)->valueint, cJSON_GetArrayItem(want, t)->valueint,
                         "prompt %d token %d", line, t);
        cr_assert_str_eq(cJSON_GetObjectItem(j, "finish")->valuestring, "length");
        cJSON_Delete(j);
    }
    cr_assert_eq(line, 3);
    free(out);
    cJSON_Delete(g);
}

Test(cli_forward, jsonl_sampling_is_seeded, .init = setup, .fini = teardown) {
    char p[512], args[2048];
    snprintf(p, sizeof p, "%s/prompts.jsonl", g_tmp);
    FILE *f = fopen(p, "w");
    fprintf(f, "{\"ids\": [1, 2, 3]}\n\n{\"ids\": [7]}\n");
    fclose(f);
    char *outs[3];
    const char *batch[3] = {"1", "2", "1"};
    const char *seed[3] = {"5", "5", "6"};
    for (int r = 0; r < 3; r++) {
        snprintf(args, sizeof args, "generate --model '%s/tiny/gqa_llama3_rope' --jsonl '%s' "
                                    "--temperature 1 --top-k 40 --top-p 0.9 --seed %s --batch %s "
                                    "--max-new-tokens 16 --no-stop",
                 RC_FIXTURES, p, seed[r], batch[r]);
        cr_assert_eq(run(args), 0, "%s", slurp("err.txt"));
        outs[r] = slurp("out.txt");
    }
    cr_assert_str_eq(outs[0], outs[1], "batch size changed sampled output");
    cr_assert_str_neq(outs[0], outs[2], "another seed gave the same output");
    for (int r = 0; r < 3; r++) free(outs[r]);
}

Test(cli_forward, bad_input_is_reported, .init = setup, .fini = teardown) {
    char args[2048];
    cr_assert_eq(run("logits --help"), 0);
    cr_assert_eq(run("generate --help"), 0);
    cr_assert_eq(run("logits --ids 1,2"), 2, "missing --model/--out is a usage error");
    snprintf(args, sizeof args, "logits --model '%s/tiny/mha_hd32_tied' --ids 1,a --out '%s/x.npy'", RC_FIXTURES, g_tmp);
    cr_assert_eq(run(args), 1);
    char *e = slurp("err.txt");
    cr_assert(strstr(e, "--ids"), "%s", e);
    free(e);
    snprintf(args, sizeof args, "logits --model '%s/tiny/mha_hd32_tied' --ids 1,257 --out '%s/x.npy'", RC_FIXTURES, g_tmp);
    cr_assert_eq(run(args), 1);
    e = slurp("err.txt");
    cr_assert(strstr(e, "outside the vocabulary"), "%s", e);
    free(e);
    snprintf(args, sizeof args, "generate --model '%s/tiny/nope' --ids 1", RC_FIXTURES);
    cr_assert_eq(run(args), 1);
    snprintf(args, sizeof args, "generate --model '%s/tiny/mha_hd32_tied' --ids 1 --top-p 0", RC_FIXTURES);
    cr_assert_eq(run(args), 2);
    snprintf(args, sizeof args, "%s/bad.jsonl", g_tmp);
    FILE *f = fopen(args, "w");
    fprintf(f, "{\"ids\": [1, 2]}\n{\"prompts\": \"hi\"}\n");
    fclose(f);
    char a2[4096];
    snprintf(a2, sizeof a2, "generate --model '%s/tiny/mha_hd32_tied' --jsonl '%s'", RC_FIXTURES, args);
    cr_assert_eq(run(a2), 1);
    e = slurp("err.txt");
    cr_assert(strstr(e, "bad.jsonl:2"), "%s", e);
    free(e);
    // a text prompt needs the model's tokenizer; the tiny fixtures have none
    snprintf(a2, sizeof a2, "generate --model '%s/tiny/mha_hd32_tied' --prompt hello", RC_FIXTURES);
    cr_assert_eq(run(a2), 1);
    e = slurp("err.txt");
    cr_assert(strstr(e, "tokenizer"), "%s", e);
    free(e);
}
