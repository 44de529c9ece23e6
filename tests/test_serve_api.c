// The server's request checking and stop-string logic (serve/api.c) without HTTP: what is
// accepted with which defaults, which field each refusal names, the chat rendering through the
// template, and the stop-string search / hold-back used while streaming.
#include <criterion/criterion.h>
#include <string.h>

#include "serve/api.h"

static const char *const k_names[] = {"helpful", "harmless"};

static rc_api_limits limits(const rc_chat_spec *chat) {
    rc_api_limits l = {.max_tokens_limit = 100, .max_prompt_chars = 1000, .chat = chat,
                       .value_names = k_names, .n_value = 2, .default_step_size = 0.5f,
                       .default_steps = 30, .max_steps = 200};
    return l;
}

static int parse(const char *body, int kind, const rc_chat_spec *chat, rc_api_req *r, rc_api_error *e) {
    rc_api_limits l = limits(chat);
    return rc_api_parse(body, strlen(body), kind, &l, r, e);
}

Test(serve_api, chat_defaults_template_and_control) {
    rc_chat_spec spec;
    cr_assert_eq(rc_chat_spec_from_name("chatml", &spec), 0);
    rc_api_req r;
    rc_api_error e;
    cr_assert_eq(parse("{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"S\"},"
                       "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
                       "{\"type\":\"text\",\"text\":\"b\"}]}],\"recontrol\":{\"value_model\":"
                       "\"harmless\",\"steps\":7},\"stop\":\"END\",\"seed\":-1}",
                       RC_API_CHAT, &spec, &r, &e),
                 0, "%s", e.message);
    cr_assert_str_eq(r.prompt, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nab<|im_end|>\n"
                               "<|im_start|>assistant\n");
    cr_assert_eq(r.add_special, 0, "chat prompts are encoded as apply_chat_template does");
    cr_assert_eq(r.max_tokens, 0);
    cr_assert_float_eq(r.temperature, 1.0f, 0, "OpenAI's default temperature");
    cr_assert_eq(r.control, 1);
    cr_assert_eq(r.steps, 7);
    cr_assert_float_eq(r.step_size, 0.5f, 0, "the server's default step size");
    cr_assert_eq(r.n_stop, 1);
    cr_assert_str_eq(r.stop[0], "END");
    cr_assert_eq(r.seed, UINT64_MAX, "seed -1 wraps as int64");
    rc_api_req_free(&r);
}

Test(serve_api, completion_prompt_forms) {
    rc_api_req r;
    rc_api_error e;
    cr_assert_eq(parse("{\"prompt\":[\"x y\"],\"max_tokens\":5}", RC_API_COMPLETION, NULL, &r, &e), 0);
    cr_assert_str_eq(r.prompt, "x y");
    cr_assert_eq(r.add_special, 1);
    rc_api_req_free(&r);
    cr_assert_eq(parse("{\"prompt\":[1,2,3]}", RC_API_COMPLETION, NULL, &r, &e), 0);
    cr_assert_eq(r.n_ids, 3);
    cr_assert_eq(r.ids[2], 3);
    cr_assert_null(r.prompt);
    rc_api_req_free(&r);
}

// Each bad body: status 400 and the field named.
Test(serve_api, refusals_name_the_field) {
    rc_chat_spec spec;
    rc_chat_spec_from_name("vicuna", &spec);
    static const struct {
        const char *body;
        int kind;
        const char *param;
    } cases[] = {
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":\"hot\"}", RC_API_CHAT, "temperature"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":2.5}", RC_API_CHAT, "temperature"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_p\":0}", RC_API_CHAT, "top_p"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":101}", RC_API_CHAT, "max_tokens"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":1.5}", RC_API_CHAT, "max_tokens"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":3}", RC_API_CHAT, "n"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":1}", RC_API_CHAT, "stream"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", RC_API_CHAT, "stop"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":true}", RC_API_CHAT, "logprobs"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"recontrol\":{\"value_model\":\"evil\"}}", RC_API_CHAT, "recontrol.value_model"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"recontrol\":{\"value_model\":\"helpful\",\"steps\":201}}", RC_API_CHAT, "recontrol.steps"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"recontrol\":{\"value_model\":\"helpful\",\"step_size\":-1}}", RC_API_CHAT, "recontrol.step_size"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"recontrol\":5}", RC_API_CHAT, "recontrol"},
        {"{\"messages\":[]}", RC_API_CHAT, "messages"},
        {"{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}", RC_API_CHAT, "messages[0]"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}", RC_API_CHAT, "messages[0]"},
        {"{\"prompt\":[1,-2]}", RC_API_COMPLETION, "prompt"},
        {"{\"prompt\":[\"a\",\"b\"]}", RC_API_COMPLETION, "prompt"},
        {"{\"prompt\":\"a\",\"echo\":true}", RC_API_COMPLETION, "echo"},
        {"{\"prompt\":\"a\",\"model\":7}", RC_API_COMPLETION, "model"},
        {"{}", RC_API_COMPLETION, "prompt"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rc_api_req r;
        rc_api_error e;
        cr_assert_eq(parse(cases[i].body, cases[i].kind, &spec, &r, &e), -1, "accepted: %s", cases[i].body);
        cr_assert_eq(e.status, 400, "%s", cases[i].body);
        cr_assert_str_eq(e.param, cases[i].param, "%s: %s", cases[i].body, e.message);
    }
    rc_api_req r;
    rc_api_error e;
    cr_assert_eq(parse("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", RC_API_CHAT, NULL, &r, &e), -1);
    cr_assert(strstr(e.message, "no chat template"), "%s", e.message);
    cr_assert_eq(parse("{\"messages\": [", RC_API_CHAT, &spec, &r, &e), -1);
    cr_assert(strstr(e.message, "not valid JSON"));
    char *j = rc_api_error_json(&e);
    cr_assert(strstr(j, "\"type\":\"invalid_request_error\"") && strstr(j, "\"param\":null"), "%s", j);
    free(j);
}

Test(serve_api, stop_strings) {
    char *stop[] = {"END", "xyz"};
    const char *t = "abcENDefxyz";
    cr_assert_eq(rc_api_stop_find(t, strlen(t), 0, stop, 2), 3);
    cr_assert_eq(rc_api_stop_find(t, strlen(t), 9, stop, 2), 8, "only matches ending after byte 9");
    cr_assert_eq(rc_api_stop_find(t, 5, 0, stop, 2), -1);
    // hold back the longest tail that could still become a stop string
    cr_assert_eq(rc_api_stop_holdback("abcEN", 5, stop, 2), 2);
    cr_assert_eq(rc_api_stop_holdback("abcxy", 5, stop, 2), 2);
    cr_assert_eq(rc_api_stop_holdback("abcE", 4, stop, 2), 1);
    cr_assert_eq(rc_api_stop_holdback("abc", 3, stop, 2), 0);
    cr_assert_eq(rc_api_stop_holdback("", 0, stop, 2), 0);
}
