// `recontrol extract` and `recontrol label` end to end on the tiny fixture models:
//  - captured states equal HF transformers' output_hidden_states (last layer, post-norm) for the
//    same prompts and greedy tokens, with an extra EOS id so a sequence stops early (valid steps
//    up to and including EOS) — fixtures from tests/scripts/make_extract_fixtures.py;
//  - fp16/bf16 storage rounds the same states;
//  - a run stopped after one shard (test hook) resumes to byte-identical files;
//  - rewards of both reward-model layouts equal transformers' (tests/fixtures/tiny/rm_*);
//  - label resumes after an abort; bad inputs are reported with file:line.
#include "base/common.h"
#include "base/default_model.h"
#include "base/safetensors.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_dir[256];

static void setup(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/rc_test_extract_XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir));
}

static void teardown(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(extract, .init = setup, .fini = teardown);

// Runs a shell command; returns its exit status.
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int golden_extra_eos(const char *model) {
    char path[512];
    snprintf(path, sizeof path, RC_FIXTURES "/extract/%s/golden.json", model);
    size_t len;
    char *t = rc_read_file(path, &len);
    cr_assert_not_null(t, "%s", rc_last_error());
    cJSON *j = cJSON_Parse(t);
    int e = cJSON_GetObjectItem(j, "extra_eos")->valueint;
    cJSON_Delete(j);
    free(t);
    return e;
}

// Compares shard(s) of run dir with the expected states. tol_abs/rel per element.
static void compare_states(const char *run, const char *model, double tol_abs, double tol_rel) {
    char path[512];
    snprintf(path, sizeof path, RC_FIXTURES "/extract/%s/expected.safetensors", model);
    rc_safetensors ex;
    cr_assert_eq(rc_st_open(&ex, path), 0, "%s", rc_last_error());
    const rc_st_tensor *eh = rc_st_find(&ex, "hidden"), *eo = rc_st_find(&ex, "offsets"),
                       *et = rc_st_find(&ex, "tokens");
    int64_t n_steps = eh->shape[0], d = eh->shape[1], n_seq = eo->shape[0] - 1;
    const float *exp_h = eh->data;
    const int64_t *exp_o = eo->data, *exp_t = et->data;
    int64_t seq = 0, row = 0;
    double max_err = 0;
    for (int k = 0; seq < n_seq; k++) {
        snprintf(path, sizeof path, "%s/acts-%05d.safetensors", run, k);
        rc_safetensors st;
        cr_assert_eq(rc_st_open(&st, path), 0, "%s", rc_last_error());
        const rc_st_tensor *h = rc_st_find(&st, "hidden"), *o = rc_st_find(&st, "offsets");
        cr_assert_not_null(h);
        cr_assert_not_null(o);
        cr_assert_eq(h->shape[1], d);
        cr_assert_eq(o->dtype, RC_DT_I64);
        int64_t ns = o->shape[0] - 1;
        const int64_t *off = o->data;
        float *f = malloc(sizeof(float) * (size_t)(h->shape[0] * d));
        cr_assert_eq(rc_st_to_f32(h, f, (size_t)(h->shape[0] * d)), 0);
        for (int64_t s = 0; s < ns; s++, seq++) {
            int64_t len = off[s + 1] - off[s];
            cr_assert_eq(len, exp_o[seq + 1] - exp_o[seq], "sequence %lld: %lld states, HF has %lld",
                         (long long)seq, (long long)len, (long long)(exp_o[seq + 1] - exp_o[seq]));
            for (int64_t t = 0; t < len; t++)
                for (int64_t i = 0; i < d; i++) {
                    double a = f[(off[s] + t) * d + i], b = exp_h[(exp_o[seq] + t) * d + i];
                    double err = fabs(a - b);
                    if (err > max_err) max_err = err;
                    cr_assert_leq(err, tol_abs + tol_rel * fabs(b),
                                  "seq %lld step %lld dim %lld: %g vs HF %g", (long long)seq,
                                  (long long)t, (long long)i, a, b);
                }
        }
        row += h->shape[0];
        free(f);
        rc_st_close(&st);
    }
    cr_assert_eq(row, n_steps);
    // Tokens and finish reasons from the responses.
    snprintf(path, sizeof path, "%s/responses.jsonl", run);
    size_t len;
    char *txt = rc_read_file(path, &len);
    cr_assert_not_null(txt, "%s", rc_last_error());
    int64_t s = 0;
    for (char *line = strtok(txt, "\n"); line; line = strtok(NULL, "\n"), s++) {
        cJSON *j = cJSON_Parse(line);
        cr_assert_not_null(j);
        cr_assert_eq(cJSON_GetObjectItem(j, "index")->valueint, s);
        const cJSON *toks = cJSON_GetObjectItem(j, "tokens");
        int nt = cJSON_GetArraySize(toks);
        cr_assert_eq(nt, exp_o[s + 1] - exp_o[s]);
        cr_assert_eq(cJSON_GetObjectItem(j, "n_tokens")->valueint, nt);
        for (int t = 0; t < nt; t++)
            cr_assert_eq(cJSON_GetArrayItem(toks, t)->valueint, exp_t[exp_o[s] + t], "seq %lld token %d", (long long)s, t);
        cJSON_Delete(j);
    }
    cr_assert_eq(s, n_seq);
    free(txt);
    rc_st_close(&ex);
    fprintf(stderr, "%s: %lld sequences, %lld states, max |ours - HF| = %.3g\n", model, (long long)n_seq,
            (long long)n_steps, max_err);
}

static void run_golden(const char *model, const char *dtype, double tol_abs, double tol_rel) {
    int eos = golden_extra_eos(model);
    cr_assert_eq(sh("%s extract --model %s/tiny/%s --data %s/extract/%s/prompts.jsonl --format ids "
                    "--out %s/run_%s --max-new-tokens 12 --batch 3 --shard-size 3 --dtype %s "
                    "--eos-id %d 2>%s/log",
                    RC_BINARY, RC_FIXTURES, model, RC_FIXTURES, model, g_dir, dtype, dtype, eos, g_dir),
                 0, "extract failed; see the log");
    char run[300];
    snprintf(run, sizeof run, "%s/run_%s", g_dir, dtype);
    compare_states(run, model, tol_abs, tol_rel);
}

Test(extract, states_equal_hf_fp32_mha_tied) { run_golden("mha_hd32_tied", "fp32", 3e-5, 1e-5); }
Test(extract, states_equal_hf_fp32_gqa_bf16_weights) { run_golden("gqa_hd64_untied_bf16", "fp32", 3e-5, 1e-5); }
// Stored in half precision: one rounding of the state (relative 2^-8 for bf16, 2^-11 for fp16).
Test(extract, states_bf16_storage) { run_golden("gqa_hd64_untied_bf16", "bf16", 2e-4, 1.0 / 128); }
Test(extract, states_fp16_storage) { run_golden("mha_hd32_tied", "fp16", 2e-4, 1.0 / 1024); }

static void write_many_prompts(const char *path, int n) {
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    unsigned s = 12345;
    for (int i = 0; i < n; i++) {
        int len = 1 + (int)(i % 9);
        fprintf(f, "{\"ids\": [");
        for (int k = 0; k < len; k++) {
            s = s * 1103515245u + 12345u;
            fprintf(f, "%s%u", k ? ", " : "", 3 + (s >> 16) % 250);
        }
        fprintf(f, "]}\n");
        if (i == 5) fprintf(f, "{\"ids\": [1, 2,\n"); // a malformed line in the middle
    }
    fclose(f);
}

Test(extract, resume_after_abort_is_identical) {
    char data[300];
    snprintf(data, sizeof data, "%s/p.jsonl", g_dir);
    write_many_prompts(data, 23);
    const char *common = "extract --model " RC_FIXTURES "/tiny/mha_hd32_tied --format ids --max-new-tokens 10 "
                         "--batch 4 --shard-size 5 --dtype bf16 --eos-id 23";
    cr_assert_eq(sh("%s %s --data %s --out %s/clean 2>/dev/null", RC_BINARY, common, data, g_dir), 0);
    // Stops abruptly after 2 shards (exit 3), then a second abort after 1 more, then completes.
    cr_assert_eq(sh("RC_EXTRACT_ABORT_AFTER_SHARDS=2 %s %s --data %s --out %s/res 2>/dev/null", RC_BINARY, common, data, g_dir), 3);
    cr_assert_eq(sh("test -f %s/res/responses-00001.jsonl && ! test -f %s/res/responses-00002.jsonl", g_dir, g_dir), 0);
    cr_assert_eq(sh("grep -q '\"running\"' %s/res/extract.json", g_dir), 0);
    // A torn shard: an orphan acts file and a temp file as a crash would leave them.
    cr_assert_eq(sh("cp %s/res/acts-00001.safetensors %s/res/acts-00002.safetensors && echo junk > %s/res/acts-00003.safetensors.tmp.1",
                    g_dir, g_dir, g_dir), 0);
    cr_assert_eq(sh("RC_EXTRACT_ABORT_AFTER_SHARDS=1 %s %s --data %s --out %s/res 2>/dev/null", RC_BINARY, common, data, g_dir), 3);
    cr_assert_eq(sh("%s %s --data %s --out %s/res 2>%s/res.log", RC_BINARY, common, data, g_dir, g_dir), 0);
    cr_assert_eq(sh("grep -q 'resuming' %s/res.log", g_dir), 0);
    cr_assert_eq(sh("cd %s/clean && for f in acts-*.safetensors responses*.jsonl; do cmp -s $f ../res/$f || exit 1; done", g_dir), 0,
                 "resumed run differs from the clean run");
    cr_assert_eq(sh("test $(ls %s/clean/acts-*.safetensors | wc -l) = $(ls %s/res/acts-*.safetensors | wc -l)", g_dir, g_dir), 0);
    cr_assert_eq(sh("test $(wc -l < %s/res/responses.jsonl) = 23", g_dir), 0);
    // Changing a setting on resume is refused, naming it.
    cr_assert_neq(sh("%s %s --data %s --out %s/res --limit 3 2>%s/bad.log", RC_BINARY, common, data, g_dir, g_dir), 0);
    cr_assert_eq(sh("grep -q 'limit' %s/bad.log", g_dir), 0);
}

Test(extract, bad_inputs_reported_with_lines) {
    char data[300];
    snprintf(data, sizeof data, "%s/bad.jsonl", g_dir);
    FILE *f = fopen(data, "w");
    fprintf(f, "{\"ids\": [5, 6, 7]}\n{oops\n{\"ids\": []}\n{\"text\": [1]}\n{\"ids\": [1, 2, 3, 4, 5, 6, 7, 8, 9]}\n{\"ids\": [9, 999]}\n");
    fclose(f);
    int rc = sh("%s extract --model %s/tiny/mha_hd32_tied --data %s --format ids --out %s/b --max-new-tokens 3 "
                "--max-prompt-tokens 8 --dtype fp32 2>%s/b.log",
                RC_BINARY, RC_FIXTURES, data, g_dir, g_dir);
    // line 6 has an id outside the vocabulary (257): reported as file:line and skipped, as any bad
    // record is; the rest of the run goes on.
    cr_assert_eq(rc, 0);
    cr_assert_eq(sh("grep -q 'bad.jsonl:2: malformed JSON' %s/b.log", g_dir), 0);
    cr_assert_eq(sh("grep -q 'bad.jsonl:3: empty prompt' %s/b.log", g_dir), 0);
    cr_assert_eq(sh("grep -q 'bad.jsonl:4: missing field \"ids\"' %s/b.log", g_dir), 0);
    cr_assert_eq(sh("grep -q 'bad.jsonl:5: prompt has 9 tokens' %s/b.log", g_dir), 0);
    cr_assert_eq(sh("grep -q 'bad.jsonl:6: \"ids\"\\[1\\] = 999 is outside the model.s vocabulary' %s/b.log",
                    g_dir), 0);
    cr_assert_eq(sh("test $(wc -l < %s/b/responses.jsonl) = 1", g_dir), 0);
    // Without the bad id the rest is processed: 1 sequence, 1 skipped as too long.
    cr_assert_eq(sh("sed -i '$d' %s && %s extract --model %s/tiny/mha_hd32_tied --data %s --format ids --out %s/b2 "
                    "--max-new-tokens 3 --max-prompt-tokens 8 --dtype fp32 2>/dev/null",
                    data, RC_BINARY, RC_FIXTURES, data, g_dir), 0);
    cr_assert_eq(sh("test $(wc -l < %s/b2/responses.jsonl) = 1 && grep -q '\"n_skipped_long\":\\s*1' %s/b2/extract.json", g_dir, g_dir), 0);
    cr_assert_neq(sh("%s extract --data %s --format nope --out %s/b3 --model x 2>%s/b3.log", RC_BINARY, data, g_dir, g_dir), 0);
    cr_assert_eq(sh("grep -q \"unknown dataset format 'nope'\" %s/b3.log", g_dir), 0);
}

// A run dir whose responses are the reward fixture's sequences split into prompt + response.
static void make_rm_run(const char *model, char *run, size_t cap, double *want, int *n_want) {
    char path[512];
    snprintf(path, sizeof path, RC_FIXTURES "/tiny/%s/golden.json", model);
    size_t len;
    char *t = rc_read_file(path, &len);
    cr_assert_not_null(t);
    cJSON *g = cJSON_Parse(t);
    free(t);
    snprintf(run, cap, "%s/%s", g_dir, model);
    cr_assert_eq(sh("mkdir -p %s", run), 0);
    snprintf(path, sizeof path, "%s/responses.jsonl", run);
    FILE *f = fopen(path, "w");
    const cJSON *seqs = cJSON_GetObjectItem(g, "seqs"), *rw = cJSON_GetObjectItem(g, "rewards");
    int i = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, seqs) {
        int n = cJSON_GetArraySize(s), k = n / 2 > 0 ? n / 2 : 1;
        fprintf(f, "{\"index\": %d, \"prompt\": \"\", \"response\": \"\", \"prompt_ids\": [", i);
        for (int q = 0; q < k; q++) fprintf(f, "%s%d", q ? "," : "", cJSON_GetArrayItem(s, q)->valueint);
        fprintf(f, "], \"tokens\": [");
        for (int q = k; q < n; q++) fprintf(f, "%s%d", q > k ? "," : "", cJSON_GetArrayItem(s, q)->valueint);
        fprintf(f, "], \"n_tokens\": %d, \"finish\": \"length\"}\n", n - k);
        want[i] = cJSON_GetArrayItem(rw, i)->valuedouble;
        i++;
    }
    *n_want = i;
    fclose(f);
    cJSON_Delete(g);
}

static void check_rewards(const char *run, const double *want, int n) {
    char path[512];
    snprintf(path, sizeof path, "%s/rewards.jsonl", run);
    size_t len;
    char *t = rc_read_file(path, &len);
    cr_assert_not_null(t, "%s", rc_last_error());
    int i = 0;
    for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n"), i++) {
        cJSON *j = cJSON_Parse(line);
        cr_assert_eq(cJSON_GetObjectItem(j, "index")->valueint, i);
        double r = cJSON_GetObjectItem(j, "reward")->valuedouble;
        cr_assert_float_eq(r, want[i], 1e-4 + 1e-4 * fabs(want[i]), "reward %d: %g vs transformers %g", i, r, want[i]);
        cJSON_Delete(j);
    }
    cr_assert_eq(i, n);
    free(t);
}

Test(extract, rewards_equal_hf_score_layout) {
    char run[300];
    double want[64];
    int n;
    make_rm_run("rm_score", run, sizeof run, want, &n);
    cr_assert_eq(sh("%s label --run %s --reward-model %s/tiny/rm_score --batch 3 2>/dev/null", RC_BINARY, run, RC_FIXTURES), 0);
    check_rewards(run, want, n);
}

Test(extract, rewards_equal_hf_regression_head_layout_and_resume) {
    char run[300];
    double want[64];
    int n;
    make_rm_run("rm_regression_head_bf16", run, sizeof run, want, &n);
    cr_assert_eq(sh("RC_LABEL_ABORT_AFTER_BATCHES=1 %s label --run %s --reward-model %s/tiny/rm_regression_head_bf16 "
                    "--batch 2 2>/dev/null",
                    RC_BINARY, run, RC_FIXTURES), 3);
    cr_assert_eq(sh("test $(wc -l < %s/rewards.partial.jsonl) = 2 && ! test -f %s/rewards.jsonl", run, run), 0);
    cr_assert_eq(sh("printf '{\"index\": 3, \"rew' >> %s/rewards.partial.jsonl", run), 0); // torn line
    cr_assert_eq(sh("%s label --run %s --reward-model %s/tiny/rm_regression_head_bf16 --batch 2 2>%s/l.log", RC_BINARY,
                    run, RC_FIXTURES, g_dir), 0);
    cr_assert_eq(sh("grep -q 'resuming: 2 of 4' %s/l.log", g_dir), 0);
    check_rewards(run, want, n);
    // A run that grew after labelling (fewer rewards than responses): only the missing are scored.
    cr_assert_eq(sh("head -n 1 %s/rewards.jsonl > %s/r1 && mv %s/r1 %s/rewards.jsonl", run, run, run, run), 0);
    cr_assert_eq(sh("%s label --run %s --reward-model %s/tiny/rm_regression_head_bf16 2>%s/l3.log", RC_BINARY, run,
                    RC_FIXTURES, g_dir), 0);
    cr_assert_eq(sh("grep -q 'resuming: 1 of 4' %s/l3.log", g_dir), 0);
    check_rewards(run, want, n);
    // a causal LM is refused as a reward model
    cr_assert_neq(sh("%s label --run %s --reward-model %s/tiny/mha_hd32_tied --overwrite 2>%s/l2.log", RC_BINARY, run,
                     RC_FIXTURES, g_dir), 0);
    cr_assert_eq(sh("grep -q 'not a reward model' %s/l2.log", g_dir), 0);
}

// --value-model runs RE-Control decoding through the edit hook: 0 ascent steps leave every token
// as in plain decoding; a large step changes the rollouts. The value net is trained here on a
// labelled tiny run (also checks that `train` reads the shards and rewards extract/label wrote).
Test(extract, control_hook_wiring) {
    char data[300];
    snprintf(data, sizeof data, "%s/p.jsonl", g_dir);
    write_many_prompts(data, 12);
    const char *m = "--model " RC_FIXTURES "/tiny/mha_hd32_tied --format ids --max-new-tokens 8 --batch 4";
    cr_assert_eq(sh("%s extract %s --data %s --out %s/base 2>/dev/null && %s label --run %s/base --reward-model "
                    "%s/tiny/rm_score 2>/dev/null && %s train --data %s/base --out %s/v.safetensors --hidden 16 "
                    "--epochs 2 --batch-size 4 >/dev/null 2>&1",
                    RC_BINARY, m, data, g_dir, RC_BINARY, g_dir, RC_FIXTURES, RC_BINARY, g_dir, g_dir), 0);
    cr_assert_eq(sh("%s extract %s --data %s --out %s/c0 --no-acts --value-model %s/v.safetensors --steps 0 2>/dev/null",
                    RC_BINARY, m, data, g_dir, g_dir), 0);
    cr_assert_eq(sh("cmp -s %s/base/responses.jsonl %s/c0/responses.jsonl", g_dir, g_dir), 0,
                 "0 control steps must leave the rollouts unchanged");
    cr_assert_eq(sh("test ! -e %s/c0/acts-00000.safetensors", g_dir), 0, "--no-acts wrote states");
    cr_assert_eq(sh("%s extract %s --data %s --out %s/c1 --no-acts --value-model %s/v.safetensors --steps 20 "
                    "--step-size 50 2>/dev/null",
                    RC_BINARY, m, data, g_dir, g_dir), 0);
    cr_assert_neq(sh("cmp -s %s/base/responses.jsonl %s/c1/responses.jsonl", g_dir, g_dir), 0,
                  "a large control step changed no token");
}

// Text prompts through the default model's tokenizer (SmolLM2-135M-Instruct Q4_1 GGUF): states,
// tokens and decoded responses equal transformers' on the same GGUF. Skips without the model.
Test(extract, default_model_text_prompts_equal_hf) {
    size_t len;
    char *t = rc_read_file(RC_FIXTURES "/extract/default_model/golden.json", &len);
    cr_assert_not_null(t);
    cJSON *g = cJSON_Parse(t);
    free(t);
    char model[4096], sha[65];
    if (rc_default_model_path(model, sizeof model) || !rc_file_exists(model)) {
        cJSON_Delete(g);
        cr_skip_test("skipped: the default model is not in the cache (run `recontrol setup`)");
    }
    if (rc_sha256_file(model, sha) || strcmp(sha, cJSON_GetObjectItem(g, "model_sha256")->valuestring)) {
        cJSON_Delete(g);
        cr_skip_test("skipped: %s is not the file the fixture was made from", model);
    }
    cr_assert_eq(sh("%s extract --data %s/extract/default_model/prompts.jsonl --format plain --out %s/dm "
                    "--max-new-tokens 10 --batch 3 --dtype fp32 2>%s/dm.log",
                    RC_BINARY, RC_FIXTURES, g_dir, g_dir), 0);
    char run[300];
    snprintf(run, sizeof run, "%s/dm", g_dir);
    // fp32 forward of the same dequantized weights over 30 layers; summation order differs.
    compare_states(run, "default_model", 5e-4, 5e-4);
    char path[400];
    snprintf(path, sizeof path, "%s/dm/responses.jsonl", g_dir);
    t = rc_read_file(path, &len);
    cr_assert_not_null(t);
    const cJSON *resp = cJSON_GetObjectItem(g, "responses");
    int i = 0;
    for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n"), i++) {
        cJSON *j = cJSON_Parse(line);
        cr_assert_str_eq(cJSON_GetObjectItem(j, "response")->valuestring, cJSON_GetArrayItem(resp, i)->valuestring);
        cJSON_Delete(j);
    }
    cr_assert_eq(i, cJSON_GetArraySize(resp));
    free(t);
    cJSON_Delete(g);
}
