// JSON written by recontrol is valid UTF-8 whatever bytes a model emitted (invalid bytes become
// U+FFFD, one per maximal invalid subpart as Python's errors="replace"), and JSON read by it
// resolves duplicate keys as Python's json module does (the last one wins).
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "base/utf8.h"

Test(json_utf8, invalid_bytes_become_replacement_characters) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "response", "ok \xff\xfe caf\xc3\xa9 \xe2\x82 end \xf0\x9f\x98\x80 \xc0\xaf");
    cJSON_AddStringToObject(o, "k\x80y", "v");
    for (int formatted = 0; formatted < 2; formatted++) {
        char *s = rc_json_print(o, formatted);
        cr_assert(s);
        cr_assert(rc_utf8_valid(s, strlen(s)), "%s", s);
        cr_assert(strstr(s, "ok \xef\xbf\xbd\xef\xbf\xbd caf\xc3\xa9 \xef\xbf\xbd end \xf0\x9f\x98\x80 "
                            "\xef\xbf\xbd\xef\xbf\xbd"), "got: %s", s);
        cr_assert(strstr(s, "k\xef\xbf\xbdy"), "keys too: %s", s);
        cJSON *back = cJSON_Parse(s);
        cr_assert(back, "the output parses");
        cJSON_Delete(back);
        free(s);
    }
    cJSON_Delete(o);
    // valid text passes through unchanged (same bytes)
    cJSON *v = cJSON_CreateString("plain \xe4\xb8\xad\xe6\x96\x87 \\ \" \n");
    char *a = rc_json_print(v, 0), *b = cJSON_PrintUnformatted(v);
    cr_assert_str_eq(a, b);
    free(a);
    free(b);
    cJSON_Delete(v);
}

Test(json_utf8, duplicate_keys_keep_the_last) {
    cJSON *j = rc_json_parse("{\"a\": 1, \"b\": {\"x\": 1, \"x\": 2, \"y\": 0}, \"a\": 3, \"a\": 4}", "t.json");
    cr_assert(j, "%s", rc_last_error());
    cr_assert_eq(cJSON_GetArraySize(j), 2);
    cr_assert_eq(cJSON_GetObjectItem(j, "a")->valueint, 4);
    cJSON *b = cJSON_GetObjectItem(j, "b");
    cr_assert_eq(cJSON_GetArraySize(b), 2);
    cr_assert_eq(cJSON_GetObjectItem(b, "x")->valueint, 2);
    cJSON_Delete(j);
    // a big object (sorted path) keeps order and the last duplicates
    size_t cap = 1 << 20, n = 0;
    char *t = malloc(cap);
    n += (size_t)snprintf(t + n, cap - n, "{");
    for (int i = 0; i < 5000; i++) n += (size_t)snprintf(t + n, cap - n, "\"k%d\": %d, ", i % 2500, i);
    n += (size_t)snprintf(t + n, cap - n, "\"end\": 0}");
    j = rc_json_parse(t, "big.json");
    cr_assert(j);
    cr_assert_eq(cJSON_GetArraySize(j), 2501);
    cr_assert_eq(cJSON_GetObjectItem(j, "k7")->valueint, 2507);
    cJSON_Delete(j);
    free(t);
    cr_assert_null(rc_json_parse("{\"a\": ", "bad.json"));
    cr_assert(strstr(rc_last_error(), "bad.json: invalid JSON"), "%s", rc_last_error());
}

#include "engine/generate.h"
#include "eval/rundir.h"

Test(json_utf8, response_lines_are_valid_utf8) {
    // a model that emits a lone byte token: the responses.jsonl line must still be JSON readers'
    rc_resp r = {.index = 3, .prompt = "p \xe2\x82", .response = "a \xff b \xed\xa0\x80 c",
                 .n_tokens = 0, .finish = RC_FINISH_EOS};
    char *s = rc_resp_to_json(&r);
    cr_assert(s);
    cr_assert(rc_utf8_valid(s, strlen(s)), "%s", s);
    rc_resp back;
    cr_assert_eq(rc_resp_parse(s, &back), 0, "%s", rc_last_error());
    cr_assert_str_eq(back.response, "a \xef\xbf\xbd b \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd c");
    cr_assert_str_eq(back.prompt, "p \xef\xbf\xbd");
    rc_resp_free(&back);
    free(s);
}
