// Chat formats against transformers' apply_chat_template, text and ids (fixtures: the SmolLM2
// GGUF template, a Llama-3 template and FastChat's Vicuna v1.1 as a template), template
// recognition from the fixture tokenizers, names, errors, HH-RLHF / SHP prompt preparation.
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

#define TOK RC_FIXTURES "/tok"

static cJSON *load_json(const char *path) {
    size_t n;
    char *s = rc_read_file(path, &n);
    cr_assert(s, "%s", rc_last_error());
    cJSON *j = cJSON_Parse(s);
    free(s);
    cr_assert(j, "%s: bad JSON", path);
    return j;
}

Test(chat, renders_as_transformers) {
    cJSON *tmpls = load_json(TOK "/templates.json");
    rc_tokenizer *toks[3] = {rc_tokenizer_load(TOK "/smol"), rc_tokenizer_load(TOK "/l3"),
                             rc_tokenizer_load(TOK "/spm")};
    cr_assert(toks[0] && toks[1] && toks[2], "%s", rc_last_error());
    size_t n;
    char *all = rc_read_file(TOK "/chat_golden.jsonl", &n);
    cr_assert(all);
    int rows = 0;
    for (char *line = strtok(all, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *r = cJSON_Parse(line);
        cr_assert(r);
        const char *fmt = cJSON_GetObjectItem(r, "format")->valuestring;
        rc_chat_spec spec;
        cr_assert_eq(rc_chat_spec_from_template(cJSON_GetObjectItem(tmpls, fmt)->valuestring, &spec),
                     0, "%s: %s", fmt, rc_last_error());
        cr_expect_str_eq(rc_chat_format_name(spec.format), fmt);
        const cJSON *ms = cJSON_GetObjectItem(r, "messages"), *m;
        rc_chat_msg msgs[8];
        int k = 0;
        cJSON_ArrayForEach(m, ms) {
            msgs[k].role = cJSON_GetObjectItem(m, "role")->valuestring;
            msgs[k].content = cJSON_GetObjectItem(m, "content")->valuestring;
            k++;
        }
        char *got = rc_chat_render(&spec, msgs, k, cJSON_IsTrue(cJSON_GetObjectItem(r, "gen")));
        cr_assert(got, "%s", rc_last_error());
        cr_expect_str_eq(got, cJSON_GetObjectItem(r, "text")->valuestring, "format %s row %d", fmt, rows);
        // apply_chat_template(tokenize=True) == encode(rendered text) without added specials
        rc_tokenizer *t = !strcmp(fmt, "chatml") ? toks[0] : !strcmp(fmt, "llama3") ? toks[1] : toks[2];
        int *ids, nid;
        cr_assert_eq(rc_tokenizer_encode(t, got, strlen(got), 0, &ids, &nid), 0);
        const cJSON *want = cJSON_GetObjectItem(r, "ids"), *it;
        cr_expect_eq(nid, cJSON_GetArraySize(want), "format %s row %d: %d ids, HF %d", fmt, rows,
                     nid, cJSON_GetArraySize(want));
        int k2 = 0;
        cJSON_ArrayForEach(it, want) {
            if (k2 < nid) cr_expect_eq(ids[k2], it->valueint, "format %s row %d id %d", fmt, rows, k2);
            k2++;
        }
        free(ids);
        free(got);
        cJSON_Delete(r);
        rows++;
    }
    cr_expect_eq(rows, 24);
    free(all);
    cJSON_Delete(tmpls);
    for (int i = 0; i < 3; i++) rc_tokenizer_free(toks[i]);
}

Test(chat, recognised_from_model_templates) {
    const char *dirs[] = {TOK "/smol", TOK "/l3", TOK "/spm"};
    rc_chat_format want[] = {RC_CHAT_CHATML, RC_CHAT_LLAMA3, RC_CHAT_VICUNA_V11};
    for (int i = 0; i < 3; i++) {
        rc_tokenizer *t = rc_tokenizer_load(dirs[i]);
        cr_assert(t, "%s", rc_last_error());
        rc_chat_spec spec;
        cr_assert_eq(rc_chat_spec_from_template(rc_tokenizer_chat_template(t), &spec), 0, "%s",
                     rc_last_error());
        cr_expect_eq(spec.format, want[i], "%s", dirs[i]);
        const char *eot = rc_chat_end_of_turn(&spec);
        cr_expect(eot && rc_tokenizer_token_id(t, eot) >= 0, "%s: end-of-turn token in vocab", dirs[i]);
        rc_tokenizer_free(t);
    }
    rc_chat_spec s;
    cr_expect_eq(rc_chat_spec_from_template("{{ messages[0]['content'] }}", &s), -1);
    cr_expect(strstr(rc_last_error(), "unrecognised chat template"));
    cr_expect_eq(rc_chat_spec_from_template(NULL, &s), -1);
    cr_expect_eq(rc_chat_spec_from_name("alpaca", &s), -1);
    cr_expect(strstr(rc_last_error(), "known: vicuna, chatml, llama3, hh, raw"));
    cr_assert_eq(rc_chat_spec_from_name("hh", &s), 0);
    rc_chat_msg m[] = {{"user", "Hi"}, {"assistant", "Hello"}, {"user", "Bye"}};
    char *p = rc_chat_render(&s, m, 3, 1);
    cr_expect_str_eq(p, "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Bye\n\nAssistant:");
    free(p);
    cr_assert_eq(rc_chat_spec_from_name("raw", &s), 0);
    p = rc_chat_render(&s, m, 1, 1);
    cr_expect_str_eq(p, "Hi");
    free(p);
    rc_chat_msg bad[] = {{"robot", "x"}};
    cr_expect_null(rc_chat_render(&s, bad, 1, 1));
    cr_expect(strstr(rc_last_error(), "robot"));
}

Test(chat, hh_and_shp_prompts) {
    size_t n;
    char *all = rc_read_file(TOK "/hhshp_golden.jsonl", &n);
    cr_assert(all);
    int rows = 0;
    for (char *line = strtok(all, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *r = cJSON_Parse(line);
        const char *kind = cJSON_GetObjectItem(r, "kind")->valuestring;
        const char *in = cJSON_GetObjectItem(r, "in")->valuestring;
        char *got = !strcmp(kind, "hh") ? rc_hh_prompt(in) : rc_shp_prompt(in);
        cr_assert(got, "%s", rc_last_error());
        cr_expect_str_eq(got, cJSON_GetObjectItem(r, "out")->valuestring);
        free(got);
        cJSON_Delete(r);
        rows++;
    }
    cr_expect_eq(rows, 7);
    free(all);
    cr_expect_null(rc_hh_prompt("\n\nHuman: no reply turn"));
    cr_expect(strstr(rc_last_error(), "Assistant:"));
}
