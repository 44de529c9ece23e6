// HF config.json -> rc_config for LLaMA-family checkpoints (causal LM and reward models), the
// RoPE inverse frequencies (plain and Llama-3.1 "llama3" scaling), and weight-size arithmetic.
// Both the older layout (rope_theta + rope_scaling) and transformers 5's rope_parameters parse.
#include "base/common.h"
#include "base/utf8.h"
#include "engine/model.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Limits that keep every size product far from overflow and catch nonsense configs early.
#define RC_MAX_HIDDEN   (1 << 17)
#define RC_MAX_INTER    (1 << 20)
#define RC_MAX_LAYERS   1024
#define RC_MAX_HEADS    1024
#define RC_MAX_HEAD_DIM 1024
#define RC_MAX_VOCAB    (1 << 23)
#define RC_MAX_LABELS   4096

// Reads an integer field. Absent or null -> *out = dflt and returns 0 (or fails when required).
static int get_int(const cJSON *o, const char *key, int dflt, int required, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) return rc_fail("config.json: required field \"%s\" is missing", key);
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsNumber(v)) return rc_fail("config.json: \"%s\" must be an integer", key);
    double d = v->valuedouble;
    if (d != floor(d) || d < -2147483648.0 || d > 2147483647.0)
        return rc_fail("config.json: \"%s\" must be an integer, found %g", key, d);
    *out = (int)d;
    return 0;
}

static int get_float(const cJSON *o, const char *key, float dflt, int required, float *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) return rc_fail("config.json: required field \"%s\" is missing", key);
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsNumber(v)) return rc_fail("config.json: \"%s\" must be a number", key);
    *out = (float)v->valuedouble;
    return 0;
}

static int get_bool(const cJSON *o, const char *key, int dflt, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) {
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsBool(v)) return rc_fail("config.json: \"%s\" must be true or false", key);
    *out = cJSON_IsTrue(v) ? 1 : 0;
    return 0;
}

static int check_range(const char *key, int v, int lo, int hi) {
    if (v < lo || v > hi)
        return rc_fail("config.json: \"%s\" = %d is out of the supported range [%d, %d]", key, v,
                       lo, hi);
    return 0;
}

// Parses a rope scaling object (rope_scaling, or rope_parameters in transformers >= 5).
static int parse_rope(const cJSON *rs, const char *field, rc_config *cfg) {
    if (!rs || cJSON_IsNull(rs)) return 0;
    if (!cJSON_IsObject(rs)) return rc_fail("config.json: \"%s\" must be an object or null", field);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!t) t = cJSON_GetObjectItemCaseSensitive(rs, "type");
    const char *type = cJSON_IsString(t) ? t->valuestring : NULL;
    if (t && !type) return rc_fail("config.json: %s.rope_type must be a string", field);
    if (!type || !strcmp(type, "default")) return 0;
    if (strcmp(type, "llama3") != 0)
        return rc_fail("config.json: %s type \"%s\" is not supported (only \"llama3\" rope scaling "
                       "of Llama-3.1, or none, is implemented)",
                       field, type);
    cfg->rope_llama3 = 1;
    if (get_float(rs, "factor", 0, 1, &cfg->rope_factor) ||
        get_float(rs, "low_freq_factor", 0, 1, &cfg->rope_low_freq_factor) ||
        get_float(rs, "high_freq_factor", 0, 1, &cfg->rope_high_freq_factor) ||
        get_int(rs, "original_max_position_embeddings", 0, 1,
                &cfg->rope_original_max_position_embeddings))
        return rc_fail_ctx("%s (llama3)", field);
    if (!(cfg->rope_factor > 0) || !(cfg->rope_low_freq_factor > 0) ||
        !(cfg->rope_high_freq_factor > cfg->rope_low_freq_factor) ||
        cfg->rope_original_max_position_embeddings <= 0)
        return rc_fail("config.json: %s (llama3) needs factor > 0, 0 < low_freq_factor < "
                       "high_freq_factor and original_max_position_embeddings > 0 (found factor=%g "
                       "low=%g high=%g original=%d)",
                       field, cfg->rope_factor, cfg->rope_low_freq_factor,
                       cfg->rope_high_freq_factor, cfg->rope_original_max_position_embeddings);
    return 0;
}

static int parse_obj(const cJSON *root, rc_config *cfg) {
    if (!cJSON_IsObject(root)) return rc_fail("config.json: top level is not a JSON object");

    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (!cJSON_IsString(mt))
        return rc_fail("config.json: \"model_type\" is missing (only \"llama\" is supported)");
    if (strcmp(mt->valuestring, "llama") != 0)
        return rc_fail("config.json: model_type \"%s\" is not supported (only \"llama\")",
                       mt->valuestring);

    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const cJSON *a0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
    if (!cJSON_IsString(a0))
        return rc_fail("config.json: \"architectures\" is missing or empty (expected "
                       "LlamaForCausalLM, LlamaForSequenceClassification or a Llama reward model)");
    const char *arch = a0->valuestring;
    size_t al = strlen(arch);
    if (!strcmp(arch, "LlamaForCausalLM")) {
        cfg->arch = RC_ARCH_CAUSAL_LM;
    } else if (!strcmp(arch, "LlamaForSequenceClassification")) {
        cfg->arch = RC_ARCH_REWARD;
        snprintf(cfg->head_name, sizeof cfg->head_name, "score");
    } else if (!strncmp(arch, "Llama", 5) && al >= 11 && !strcmp(arch + al - 11, "RewardModel")) {
        // UltraRM-style: LlamaModel backbone under "model." plus regression_head.weight.
        cfg->arch = RC_ARCH_REWARD;
        snprintf(cfg->head_name, sizeof cfg->head_name, "regression_head");
    } else {
        return rc_fail("config.json: architecture \"%s\" is not supported (expected "
                       "LlamaForCausalLM, LlamaForSequenceClassification or Llama*RewardModel)",
                       arch);
    }

    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (act && !cJSON_IsNull(act) && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu")))
        return rc_fail("config.json: hidden_act \"%s\" is not supported (only \"silu\")",
                       cJSON_IsString(act) ? act->valuestring : "?");
    int attn_bias = 0, mlp_bias = 0;
    if (get_bool(root, "attention_bias", 0, &attn_bias) || get_bool(root, "mlp_bias", 0, &mlp_bias))
        return -1;
    if (attn_bias) return rc_fail("config.json: attention_bias=true is not supported");
    if (mlp_bias) return rc_fail("config.json: mlp_bias=true is not supported");

    if (get_int(root, "hidden_size", 0, 1, &cfg->hidden_size) ||
        get_int(root, "intermediate_size", 0, 1, &cfg->intermediate_size) ||
        get_int(root, "num_hidden_layers", 0, 1, &cfg->num_hidden_layers) ||
        get_int(root, "num_attention_heads", 0, 1, &cfg->num_attention_heads) ||
        get_int(root, "vocab_size", 0, 1, &cfg->vocab_size) ||
        get_int(root, "max_position_embeddings", 2048, 0, &cfg->max_position_embeddings))
        return -1;
    if (check_range("hidden_size", cfg->hidden_size, 1, RC_MAX_HIDDEN) ||
        check_range("intermediate_size", cfg->intermediate_size, 1, RC_MAX_INTER) ||
        check_range("num_hidden_layers", cfg->num_hidden_layers, 1, RC_MAX_LAYERS) ||
        check_range("num_attention_heads", cfg->num_attention_heads, 1, RC_MAX_HEADS) ||
        check_range("vocab_size", cfg->vocab_size, 1, RC_MAX_VOCAB) ||
        check_range("max_position_embeddings", cfg->max_position_embeddings, 1, 1 << 24))
        return -1;
    if (get_int(root, "num_key_value_heads", cfg->num_attention_heads, 0,
                &cfg->num_key_value_heads) ||
        check_range("num_key_value_heads", cfg->num_key_value_heads, 1, cfg->num_attention_heads))
        return -1;
    if (cfg->num_attention_heads % cfg->num_key_value_heads != 0)
        return rc_fail("config.json: num_attention_heads (%d) is not a multiple of "
                       "num_key_value_heads (%d)",
                       cfg->num_attention_heads, cfg->num_key_value_heads);
    const cJSON *hd = cJSON_GetObjectItemCaseSensitive(root, "head_dim");
    if (hd && !cJSON_IsNull(hd)) {
        if (get_int(root, "head_dim", 0, 1, &cfg->head_dim)) return -1;
    } else {
        if (cfg->hidden_size % cfg->num_attention_heads != 0)
            return rc_fail("config.json: hidden_size (%d) is not a multiple of "
                           "num_attention_heads (%d) and no head_dim is given",
                           cfg->hidden_size, cfg->num_attention_heads);
        cfg->head_dim = cfg->hidden_size / cfg->num_attention_heads;
    }
    if (check_range("head_dim", cfg->head_dim, 2, RC_MAX_HEAD_DIM)) return -1;
    if (cfg->head_dim % 2) return rc_fail("config.json: head_dim (%d) must be even", cfg->head_dim);

    if (get_float(root, "rms_norm_eps", 1e-6f, 0, &cfg->rms_norm_eps)) return -1;
    if (!(cfg->rms_norm_eps > 0) || !(cfg->rms_norm_eps < 1))
        return rc_fail("config.json: rms_norm_eps = %g must be in (0, 1)", cfg->rms_norm_eps);

    // RoPE: rope_theta at top level (transformers < 5) or inside rope_parameters (>= 5).
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    if (rp && !cJSON_IsNull(rp) && !cJSON_IsObject(rp))
        return rc_fail("config.json: \"rope_parameters\" must be an object");
    float theta_top = 0;
    if (get_float(root, "rope_theta", 10000.0f, 0, &theta_top)) return -1;
    cfg->rope_theta = theta_top;
    if (cJSON_IsObject(rp) && cJSON_GetObjectItemCaseSensitive(rp, "rope_theta")) {
        if (get_float(rp, "rope_theta", 10000.0f, 0, &cfg->rope_theta))
            return rc_fail_ctx("rope_parameters");
    }
    if (!(cfg->rope_theta > 0) || !isfinite(cfg->rope_theta))
        return rc_fail("config.json: rope_theta = %g must be positive", cfg->rope_theta);
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (rs && !cJSON_IsNull(rs)) {
        if (parse_rope(rs, "rope_scaling", cfg)) return -1;
    } else if (cJSON_IsObject(rp)) {
        if (parse_rope(rp, "rope_parameters", cfg)) return -1;
    }

    if (get_bool(root, "tie_word_embeddings", 0, &cfg->tie_word_embeddings)) return -1;
    if (cfg->arch == RC_ARCH_REWARD) cfg->tie_word_embeddings = 0; // no LM head at all

    if (get_int(root, "bos_token_id", -1, 0, &cfg->bos_token_id) ||
        get_int(root, "pad_token_id", -1, 0, &cfg->pad_token_id))
        return -1;
    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(root, "eos_token_id");
    cfg->n_eos = 0;
    if (cJSON_IsArray(eos)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, eos) {
            if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) ||
                e->valuedouble < 0 || e->valuedouble > 2147483647.0)
                return rc_fail("config.json: eos_token_id list holds a non-integer");
            if (cfg->n_eos == RC_MAX_EOS)
                return rc_fail("config.json: more than %d eos_token_id values", RC_MAX_EOS);
            cfg->eos_token_ids[cfg->n_eos++] = (int)e->valuedouble;
        }
    } else if (eos && !cJSON_IsNull(eos)) {
        int id;
        if (get_int(root, "eos_token_id", -1, 1, &id)) return -1;
        cfg->eos_token_ids[cfg->n_eos++] = id;
    }
    for (int i = 0; i < cfg->n_eos; i++)
        if (cfg->eos_token_ids[i] < 0)
            return rc_fail("config.json: eos_token_id %d is negative", cfg->eos_token_ids[i]);

    // Reward head rows: num_labels, else the size of id2label, else 1.
    cfg->num_labels = 0;
    if (cfg->arch == RC_ARCH_REWARD) {
        const cJSON *id2label = cJSON_GetObjectItemCaseSensitive(root, "id2label");
        int dflt = cJSON_IsObject(id2label) ? cJSON_GetArraySize(id2label) : 1;
        if (dflt < 1) dflt = 1;
        if (get_int(root, "num_labels", dflt, 0, &cfg->num_labels) ||
            check_range("num_labels", cfg->num_labels, 1, RC_MAX_LABELS))
            return -1;
    }
    return 0;
}

int rc_config_parse_json(const char *json_text, rc_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->bos_token_id = -1;
    cfg->pad_token_id = -1;
    if (!json_text) return rc_fail("config.json: no text");
    cJSON *root = cJSON_Parse(json_text);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        return rc_fail("config.json: not valid JSON (near \"%.32s\")", at ? at : "?");
    }
    rc_json_keep_last_keys(root); // a repeated key means its last value, as for transformers
    int rc = parse_obj(root, cfg);
    cJSON_Delete(root);
    return rc;
}

// HF's _compute_default_rope_parameters and _compute_llama3_parameters, evaluated in double and
// rounded once (HF evaluates in fp32, so values agree to about 1 ulp).
void rc_rope_inv_freq(const rc_config *cfg, float *inv_freq) {
    int half = cfg->head_dim / 2;
    const double two_pi = 6.283185307179586476925286766559;
    for (int i = 0; i < half; i++) {
        double f = 1.0 / pow((double)cfg->rope_theta, (double)(2 * i) / (double)cfg->head_dim);
        if (cfg->rope_llama3) {
            double factor = cfg->rope_factor, lo = cfg->rope_low_freq_factor,
                   hi = cfg->rope_high_freq_factor;
            double old = (double)cfg->rope_original_max_position_embeddings;
            double low_freq_wavelen = old / lo, high_freq_wavelen = old / hi;
            double wavelen = two_pi / f;
            if (wavelen < high_freq_wavelen) {
                // high frequency: unchanged
            } else if (wavelen > low_freq_wavelen) {
                f = f / factor;
            } else {
                double smooth = (old / wavelen - lo) / (hi - lo);
                f = (1.0 - smooth) * f / factor + smooth * f;
            }
        }
        inv_freq[i] = (float)f;
    }
}

size_t rc_config_weight_floats(const rc_config *cfg) {
    size_t d = (size_t)cfg->hidden_size, hd = (size_t)cfg->head_dim;
    size_t q = (size_t)cfg->num_attention_heads * hd, kv = (size_t)cfg->num_key_value_heads * hd;
    size_t inter = (size_t)cfg->intermediate_size, v = (size_t)cfg->vocab_size;
    size_t per_layer = 2 * d + q * d + 2 * kv * d + d * q + 3 * inter * d;
    size_t n = v * d + (size_t)cfg->num_hidden_layers * per_layer + d;
    if (cfg->arch == RC_ARCH_CAUSAL_LM && !cfg->tie_word_embeddings) n += v * d;
    if (cfg->arch == RC_ARCH_REWARD) n += (size_t)cfg->num_labels * d;
    return n;
}

size_t rc_model_param_count(const rc_config *cfg) {
    return rc_config_weight_floats(cfg);
}

int rc_config_preset(const char *name, rc_config *c) {
    memset(c, 0, sizeof *c);
    if (strcmp(name, "vicuna-7b") != 0) return rc_fail("unknown model shape preset '%s' (known: vicuna-7b)", name);
    c->arch = RC_ARCH_CAUSAL_LM;
    c->hidden_size = 4096;
    c->intermediate_size = 11008;
    c->num_hidden_layers = 32;
    c->num_attention_heads = 32;
    c->num_key_value_heads = 32;
    c->head_dim = 128;
    c->vocab_size = 32000;
    c->max_position_embeddings = 4096;
    c->rms_norm_eps = 1e-5f;
    c->rope_theta = 10000.f;
    c->bos_token_id = 1;
    c->n_eos = 1;
    c->eos_token_ids[0] = 2;
    c->pad_token_id = -1;
    c->num_labels = 1;
    snprintf(c->source, sizeof c->source, "preset:%s", name);
    return 0;
}
