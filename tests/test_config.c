// config.json parsing: fields, defaults, validation messages, reward architectures, and RoPE
// inverse frequencies (plain and Llama-3.1 "llama3") against values transformers computed
// (fixtures/loader/rope_inv_freq.json from tests/scripts/make_rope_fixture.py).
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "engine/model.h"

#include "tests/expect_fail.h"

// A minimal valid causal config with `extra` spliced in last (a repeated key keeps its last value,
// as Python's json does, so extra overrides the defaults here).
static char *cfg_text(const char *extra) {
    static char buf[4096];
    snprintf(buf, sizeof buf,
             "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", "
             "\"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 2, "
             "\"num_attention_heads\": 4, \"vocab_size\": 100, \"max_position_embeddings\": 256, "
             "\"rms_norm_eps\": 1e-5%s%s}",
             extra && *extra ? ", " : "", extra ? extra : "");
    return buf;
}

Test(config, defaults) {
    rc_config c;
    cr_assert_eq(rc_config_parse_json(cfg_text(""), &c), 0, "%s", rc_last_error());
    cr_assert_eq(c.arch, RC_ARCH_CAUSAL_LM);
    cr_assert_eq(c.hidden_size, 64);
    cr_assert_eq(c.intermediate_size, 128);
    cr_assert_eq(c.num_hidden_layers, 2);
    cr_assert_eq(c.num_attention_heads, 4);
    cr_assert_eq(c.num_key_value_heads, 4);
    cr_assert_eq(c.head_dim, 16);
    cr_assert_eq(c.vocab_size, 100);
    cr_assert_eq(c.max_position_embeddings, 256);
    cr_assert_float_eq(c.rms_norm_eps, 1e-5f, 1e-12);
    cr_assert_float_eq(c.rope_theta, 10000.0f, 1e-3);
    cr_assert_eq(c.rope_llama3, 0);
    cr_assert_eq(c.tie_word_embeddings, 0);
    cr_assert_eq(c.bos_token_id, -1);
    cr_assert_eq(c.pad_token_id, -1);
    cr_assert_eq(c.n_eos, 0);
}

Test(config, explicit_fields) {
    rc_config c;
    const char *x = "\"num_key_value_heads\": 2, \"head_dim\": 32, \"rope_theta\": 500000.0, "
                    "\"tie_word_embeddings\": true, \"bos_token_id\": 128000, "
                    "\"eos_token_id\": [128001, 128008, 128009], \"pad_token_id\": 7";
    cr_assert_eq(rc_config_parse_json(cfg_text(x), &c), 0, "%s", rc_last_error());
    cr_assert_eq(c.num_key_value_heads, 2);
    cr_assert_eq(c.head_dim, 32);
    cr_assert_float_eq(c.rope_theta, 500000.0f, 1e-1);
    cr_assert_eq(c.tie_word_embeddings, 1);
    cr_assert_eq(c.bos_token_id, 128000);
    cr_assert_eq(c.n_eos, 3);
    cr_assert_eq(c.eos_token_ids[0], 128001);
    cr_assert_eq(c.eos_token_ids[2], 128009);
    cr_assert_eq(c.pad_token_id, 7);
    cr_assert_eq(rc_config_parse_json(cfg_text("\"eos_token_id\": 2, \"bos_token_id\": null"), &c),
                 0);
    cr_assert_eq(c.n_eos, 1);
    cr_assert_eq(c.eos_token_ids[0], 2);
    cr_assert_eq(c.bos_token_id, -1);
}

Test(config, reward_architectures) {
    rc_config c;
    char buf[4096];
    const char *body =
        "\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 128, "
        "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 100, "
        "\"tie_word_embeddings\": true";
    snprintf(buf, sizeof buf,
             "{\"architectures\": [\"LlamaForSequenceClassification\"], \"id2label\": {\"0\": "
             "\"LABEL_0\"}, %s}",
             body);
    cr_assert_eq(rc_config_parse_json(buf, &c), 0, "%s", rc_last_error());
    cr_assert_eq(c.arch, RC_ARCH_REWARD);
    cr_assert_str_eq(c.head_name, "score");
    cr_assert_eq(c.num_labels, 1);
    cr_assert_eq(c.tie_word_embeddings, 0, "a reward model has no LM head to tie");
    snprintf(buf, sizeof buf, "{\"architectures\": [\"LlamaRewardModel\"], %s}", body);
    cr_assert_eq(rc_config_parse_json(buf, &c), 0, "%s", rc_last_error());
    cr_assert_eq(c.arch, RC_ARCH_REWARD);
    cr_assert_str_eq(c.head_name, "regression_head");
    cr_assert_eq(c.num_labels, 1);
    snprintf(buf, sizeof buf,
             "{\"architectures\": [\"LlamaForSequenceClassification\"], \"num_labels\": 3, %s}",
             body);
    cr_assert_eq(rc_config_parse_json(buf, &c), 0, "%s", rc_last_error());
    cr_assert_eq(c.num_labels, 3);
    // the weight count includes the head and no LM head
    size_t d = 64, per_layer = 2 * d + 4 * d * d + 3 * 128 * d;
    cr_assert_eq(rc_config_weight_floats(&c), 100 * d + 2 * per_layer + d + 3 * d);
}

Test(config, duplicate_keys_keep_the_last_value) {
    // json.loads('{"a": 1, "a": 2}') == {"a": 2}: transformers reads the last value
    rc_config c;
    cr_assert_eq(rc_config_parse_json(cfg_text("\"hidden_size\": 32, \"vocab_size\": 77, "
                                               "\"vocab_size\": 90"), &c), 0, "%s", rc_last_error());
    cr_assert_eq(c.hidden_size, 32);
    cr_assert_eq(c.vocab_size, 90);
    cr_assert_eq(rc_config_parse_json(cfg_text("\"rope_scaling\": {\"rope_type\": \"x\", "
                                               "\"rope_type\": \"llama3\", \"factor\": 8.0, "
                                               "\"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
                                               "\"original_max_position_embeddings\": 64}"), &c),
                 0, "nested keys too: %s", rc_last_error());
    cr_assert_eq(c.rope_llama3, 1);
}

Test(config, unsupported_architecture_and_type) {
    rc_config c;
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", cfg_text(""));
    char *a = strstr(buf, "LlamaForCausalLM");
    memcpy(a, "MistralForCausal", 16);
    EXPECT_FAIL(rc_config_parse_json(buf, &c), "architecture \"MistralForCausal\"");
    snprintf(buf, sizeof buf, "%s", cfg_text(""));
    a = strstr(buf, "\"llama\"");
    memcpy(a, "\"gemma\"", 7);
    EXPECT_FAIL(rc_config_parse_json(buf, &c), "model_type \"gemma\"");
    EXPECT_FAIL(rc_config_parse_json("{\"model_type\": \"llama\", \"hidden_size\": 4}", &c),
                "architectures");
    EXPECT_FAIL(rc_config_parse_json(cfg_text("\"hidden_act\": \"gelu\""), &c), "gelu");
    EXPECT_FAIL(rc_config_parse_json(cfg_text("\"attention_bias\": true"), &c), "attention_bias");
    EXPECT_FAIL(rc_config_parse_json(cfg_text("\"mlp_bias\": true"), &c), "mlp_bias");
}

Test(config, missing_and_invalid_fields) {
    rc_config c;
    const char *fields[] = {"hidden_size", "intermediate_size", "num_hidden_layers",
                            "num_attention_heads", "vocab_size"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        char buf[4096], key[64];
        snprintf(buf, sizeof buf, "%s", cfg_text(""));
        snprintf(key, sizeof key, "\"%s\"", fields[i]);
        char *p = strstr(buf, key);
        cr_assert(p);
        p[1] = 'X'; // rename the key so that it is missing
        EXPECT_FAIL(rc_config_parse_json(buf, &c), fields[i] + 1);
    }
    EXPECT_FAIL(rc_config_parse_json("{not json", &c), "not valid JSON");
    EXPECT_FAIL(rc_config_parse_json("[1, 2]", &c), "not a JSON object");
    EXPECT_FAIL(rc_config_parse_json(cfg_text("\"hidden_size\": -64"), &c), "hidden_size");
    EXPECT_FAIL(rc_config_parse_json(cfg_text("\"hidden_size\": 64.5"), &c), "integer");
    EXPECT_FAIL(rc_config_parse_json(cfg_text("\"hidden_size\": \"64\""), &c), "hidden_size");
    EXPECT_FAIL(rc_config_parse_json(cfg_text("\"num_key_value_heads\": 3"), &c),
                "not a multiple of num_key_value_heads");
    EXPECT_FAIL(rc_config_parse_json(cfg_text("\"num_key_value_heads\": 8"), &c),
                "num_key_value_heads");
    EXPECT_FAIL(rc_config_parse_json(cfg_text("\"num_attention_heads\": 6"), &c),
                "not a multiple of num_attention_heads");
    cr_assert_eq(rc_config_parse_json(cfg_text("\"num_attention_heads\": 6, \"head_dim\": 8"), &c),
                 0, "an explicit head_dim lifts the divisibility requirement: %s", rc_last_error());
    cr_assert_eq(c.head_dim, 8);
    EXPECT_FAIL(rc_config_parse_json(cfg_text("\"head_dim\": 7"), &c), "even");
    EXPECT_FAIL(rc_config_parse_json(cfg_text("\"rms_norm_eps\": 0"), &c), "rms_norm_eps");
    EXPECT_FAIL(rc_config_parse_json(cfg_text("\"rope_theta\": -1"), &c), "rope_theta");
    EXPECT_FAIL(rc_config_parse_json(cfg_text("\"tie_word_embeddings\": 1"), &c),
                "tie_word_embeddings");
    EXPECT_FAIL(rc_config_parse_json(cfg_text("\"eos_token_id\": [1, \"x\"]"), &c), "eos_token_id");
    EXPECT_FAIL(rc_config_parse_json(cfg_text("\"eos_token_id\": [1,2,3,4,5,6,7,8,9]"), &c),
                "eos_token_id");
}

Test(config, rope_scaling_variants) {
    rc_config a, b;
    const char *old = "\"rope_theta\": 500000.0, \"rope_scaling\": {\"type\": \"llama3\", "
                      "\"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
                      "\"original_max_position_embeddings\": 8192}";
    const char *new = "\"rope_parameters\": {\"rope_type\": \"llama3\", \"rope_theta\": 500000.0, "
                      "\"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
                      "\"original_max_position_embeddings\": 8192}";
    cr_assert_eq(rc_config_parse_json(cfg_text(old), &a), 0, "%s", rc_last_error());
    cr_assert_eq(rc_config_parse_json(cfg_text(new), &b), 0, "%s", rc_last_error());
    cr_assert_eq(a.rope_llama3, 1);
    cr_assert_eq(b.rope_llama3, 1);
    cr_assert_float_eq(a.rope_theta, 500000.0f, 0.1);
    cr_assert_float_eq(b.rope_theta, 500000.0f, 0.1);
    cr_assert_float_eq(a.rope_factor, 8.0f, 0);
    cr_assert_float_eq(a.rope_low_freq_factor, 1.0f, 0);
    cr_assert_float_eq(a.rope_high_freq_factor, 4.0f, 0);
    cr_assert_eq(a.rope_original_max_position_embeddings, 8192);
    float fa[8], fb[8];
    rc_rope_inv_freq(&a, fa);
    rc_rope_inv_freq(&b, fb);
    cr_assert_arr_eq(fa, fb, sizeof fa);

    cr_assert_eq(rc_config_parse_json(cfg_text("\"rope_scaling\": null"), &a), 0);
    cr_assert_eq(a.rope_llama3, 0);
    cr_assert_eq(
        rc_config_parse_json(
            cfg_text("\"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 1e6}"), &a),
        0, "%s", rc_last_error());
    cr_assert_eq(a.rope_llama3, 0);
    cr_assert_float_eq(a.rope_theta, 1e6f, 1);
    EXPECT_FAIL(rc_config_parse_json(
                    cfg_text("\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0}"), &a),
                "\"yarn\" is not supported");
    EXPECT_FAIL(rc_config_parse_json(
                    cfg_text("\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}"), &a),
                "\"linear\"");
    EXPECT_FAIL(rc_config_parse_json(
                    cfg_text("\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0}"), &a),
                "low_freq_factor");
    EXPECT_FAIL(rc_config_parse_json(cfg_text("\"rope_scaling\": 3"), &a), "rope_scaling");
}

// Every case of the transformers-made fixture: parse the config text transformers wrote, compute
// inv_freq, compare. HF computes in fp32 and we in double rounded once: allow a few ulp.
Test(config, rope_inv_freq_matches_transformers) {
    char *text = rc_read_file(RC_FIXTURES "/loader/rope_inv_freq.json", NULL);
    cr_assert(text, "%s", rc_last_error());
    cJSON *doc = cJSON_Parse(text);
    cr_assert(doc);
    const cJSON *cases = cJSON_GetObjectItem(doc, "cases"), *cs;
    int n_cases = 0, n_llama3 = 0;
    cJSON_ArrayForEach(cs, cases) {
        const char *name = cJSON_GetObjectItem(cs, "name")->valuestring;
        rc_config c;
        cr_assert_eq(rc_config_parse_json(cJSON_GetObjectItem(cs, "config")->valuestring, &c), 0,
                     "%s: %s", name, rc_last_error());
        const cJSON *ref = cJSON_GetObjectItem(cs, "inv_freq");
        int half = cJSON_GetArraySize(ref);
        cr_assert_eq(half, c.head_dim / 2, "%s", name);
        float got[1024];
        rc_rope_inv_freq(&c, got);
        double max_rel = 0;
        for (int i = 0; i < half; i++) {
            double r = cJSON_GetArrayItem(ref, i)->valuedouble;
            double rel = fabs(got[i] - r) / fabs(r);
            if (rel > max_rel) max_rel = rel;
            cr_assert(rel <= 1e-6, "%s: inv_freq[%d] = %.9g, transformers %.9g", name, i, got[i],
                      r);
        }
        n_llama3 += c.rope_llama3;
        n_cases++;
    }
    cr_assert_geq(n_cases, 5);
    cr_assert_geq(n_llama3, 3);
    cJSON_Delete(doc);
    free(text);
}

// Llama-3.2-1B: 1,235,814,400 parameters (tied embeddings).
Test(config, param_count_llama32_1b) {
    rc_config c;
    const char *t =
        "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", "
        "\"hidden_size\": 2048, \"intermediate_size\": 8192, \"num_hidden_layers\": 16, "
        "\"num_attention_heads\": 32, \"num_key_value_heads\": 8, \"head_dim\": 64, "
        "\"vocab_size\": 128256, \"tie_word_embeddings\": true, "
        "\"max_position_embeddings\": 131072, \"rope_theta\": 500000.0, "
        "\"rope_scaling\": {\"factor\": 32.0, \"high_freq_factor\": 4.0, "
        "\"low_freq_factor\": 1.0, \"original_max_position_embeddings\": 8192, "
        "\"rope_type\": \"llama3\"}, \"eos_token_id\": 128001, \"bos_token_id\": 128000}";
    cr_assert_eq(rc_config_parse_json(t, &c), 0, "%s", rc_last_error());
    cr_assert_eq(rc_model_param_count(&c), (size_t)1235814400);
    c.tie_word_embeddings = 0;
    cr_assert_eq(rc_model_param_count(&c), (size_t)1235814400 + (size_t)128256 * 2048);
}

// The preset used by the GPU benchmarks: LLaMA-2-7B / Vicuna-7B, whose HF checkpoint reports
// 6,738,415,616 parameters (embedding + 32 layers + norm + untied LM head).
Test(config, preset_vicuna_7b) {
    rc_config c;
    cr_assert_eq(rc_config_preset("vicuna-7b", &c), 0, "%s", rc_last_error());
    cr_assert_eq(rc_model_param_count(&c), (size_t)6738415616ull);
    cr_assert_eq(c.tie_word_embeddings, 0);
    cr_assert_neq(rc_config_preset("gpt-5", &c), 0);
    cr_assert(strstr(rc_last_error(), "gpt-5") != NULL, "%s", rc_last_error());
}
