// `recontrol label --judge default` against HF transformers on the default model (SmolLM2-135M-
// Instruct Q4_1 GGUF): same chat-rendered judge prompt, tokens and Yes/No logit difference.
// Fixture: tests/scripts/make_judge_fixtures.py. Needs the default model in the cache
// (`recontrol setup`); without it (or with another file there) the test says so and skips.
#include "base/common.h"
#include "base/default_model.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Test(judge, rewards_equal_transformers_on_default_model) {
    size_t len;
    char *t = rc_read_file(RC_FIXTURES "/judge/golden.json", &len);
    cr_assert_not_null(t, "%s", rc_last_error());
    cJSON *g = cJSON_Parse(t);
    free(t);
    char model[4096], sha[65];
    if (rc_default_model_path(model, sizeof model) || !rc_file_exists(model)) {
        cJSON_Delete(g);
        cr_skip_test("skipped: the default model is not in the cache (run `recontrol setup`)");
    }
    if (rc_sha256_file(model, sha) || strcmp(sha, cJSON_GetObjectItem(g, "model_sha256")->valuestring)) {
        cJSON_Delete(g);
        cr_skip_test("skipped: %s is not the file the judge fixture was made from", model);
    }
    char dir[] = "/tmp/rc_test_judge_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[512];
    snprintf(path, sizeof path, "%s/responses.jsonl", dir);
    FILE *f = fopen(path, "w");
    const cJSON *pairs = cJSON_GetObjectItem(g, "pairs"), *p;
    int i = 0;
    cJSON_ArrayForEach(p, pairs) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "index", i++);
        cJSON_AddStringToObject(o, "prompt", cJSON_GetObjectItem(p, "prompt")->valuestring);
        cJSON_AddStringToObject(o, "response", cJSON_GetObjectItem(p, "response")->valuestring);
        char *s = cJSON_PrintUnformatted(o);
        fprintf(f, "%s\n", s);
        free(s);
        cJSON_Delete(o);
    }
    fclose(f);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s label --run %s --judge default --batch 4 2>%s/log", RC_BINARY, dir, dir);
    cr_assert_eq(system(cmd), 0, "label failed; see %s/log", dir);
    snprintf(path, sizeof path, "%s/rewards.jsonl", dir);
    t = rc_read_file(path, &len);
    cr_assert_not_null(t);
    int k = 0;
    for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n"), k++) {
        cJSON *j = cJSON_Parse(line);
        double got = cJSON_GetObjectItem(j, "reward")->valuedouble;
        double want = cJSON_GetObjectItem(cJSON_GetArrayItem(pairs, k), "reward")->valuedouble;
        // fp32 forward of the same dequantized weights: agreement to ~1e-5 seen; 1e-3 allowed
        cr_assert_float_eq(got, want, 1e-3, "pair %d: judge reward %g, transformers %g", k, got, want);
        cJSON_Delete(j);
    }
    cr_assert_eq(k, i);
    free(t);
    cJSON_Delete(g);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}
