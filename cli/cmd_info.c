// `recontrol info --model PATH [--json] [--load]`: a model's config, parameter count and a summary
// of its weight files. For an HF directory only config.json and the safetensors headers are read
// (cheap for any size); --load (implied for GGUF) loads every weight, checking all of them.
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "engine/backend.h"
#include "base/common.h"
#include "base/utf8.h"
#include "engine/model.h"
#include "base/safetensors.h"

static void info_usage(FILE *f) {
    fprintf(f, "usage: recontrol info --model PATH [--json] [--load]\n"
               "       recontrol info --device\n\n"
               "Prints a model's config (HF config.json names), its parameter count and a summary\n"
               "of its weight files (shards, stored dtypes, bytes).\n\n"
               "  -m, --model PATH  HF model directory (config.json + safetensors) or .gguf file\n"
               "  --json            print one JSON object instead of text\n"
               "  --load            load and convert every weight (validates all tensors; GGUF\n"
               "                    files are always loaded)\n"
               "  --device          instead: what this machine offers the backends (CPU cores; CUDA\n"
               "                    module, runtime and driver versions, cuBLAS, each GPU with its\n"
               "                    memory): the first step of every GPU run\n"
               "  -h, --help        this text\n");
}

typedef struct {
    int n_files;
    int n_tensors;
    size_t bytes;
    int dtype_count[RC_DT_OTHER + 1];
} st_summary;

// Sums the safetensors files of an HF directory (headers only).
static int summarize_hf(const char *dir, st_summary *s) {
    memset(s, 0, sizeof *s);
    char path[2048];
    const char *single[] = {"model.safetensors"};
    char **names = NULL;
    int n = 0;
    if (rc_path_join(path, sizeof path, dir, "model.safetensors.index.json")) return -1;
    if (rc_file_exists(path)) {
        char *text = rc_read_file(path, NULL);
        if (!text) return -1;
        cJSON *idx = cJSON_Parse(text);
        free(text);
        const cJSON *wm = idx ? cJSON_GetObjectItemCaseSensitive(idx, "weight_map") : NULL;
        if (!cJSON_IsObject(wm)) {
            cJSON_Delete(idx);
            return rc_fail("%s: no weight_map", path);
        }
        names = calloc((size_t)cJSON_GetArraySize(wm) + 1, sizeof *names);
        const cJSON *e;
        cJSON_ArrayForEach(e, wm) {
            if (!cJSON_IsString(e)) continue;
            int seen = 0;
            for (int i = 0; i < n && !seen; i++)
                seen = !strcmp(names[i], e->valuestring);
            if (!seen) names[n++] = strdup(e->valuestring);
        }
        cJSON_Delete(idx);
    } else {
        names = calloc(1, sizeof *names);
        names[n++] = strdup(single[0]);
    }
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        rc_safetensors st;
        if (rc_path_join(path, sizeof path, dir, names[i]) || rc_st_open(&st, path)) {
            rc = -1;
            break;
        }
        s->n_files++;
        s->n_tensors += st.n_tensors;
        for (int t = 0; t < st.n_tensors; t++) {
            s->bytes += st.tensors[t].nbytes;
            s->dtype_count[st.tensors[t].dtype]++;
        }
        rc_st_close(&st);
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

static const char *k_dt_names[] = {"F32", "F16", "BF16", "I64", "I32", "U8", "other"};

// Floats shown with 7 significant digits (1e-05, not 9.99999974737875e-06).
static double shown(float f) {
    char b[32];
    snprintf(b, sizeof b, "%.7g", (double)f);
    return strtod(b, NULL);
}

static cJSON *config_json(const rc_config *c, size_t params) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "source", c->source);
    cJSON_AddStringToObject(o, "arch", c->arch == RC_ARCH_REWARD ? "reward" : "causal_lm");
    if (c->arch == RC_ARCH_REWARD) {
        cJSON_AddStringToObject(o, "head", c->head_name);
        cJSON_AddNumberToObject(o, "num_labels", c->num_labels);
    }
    cJSON_AddNumberToObject(o, "hidden_size", c->hidden_size);
    cJSON_AddNumberToObject(o, "intermediate_size", c->intermediate_size);
    cJSON_AddNumberToObject(o, "num_hidden_layers", c->num_hidden_layers);
    cJSON_AddNumberToObject(o, "num_attention_heads", c->num_attention_heads);
    cJSON_AddNumberToObject(o, "num_key_value_heads", c->num_key_value_heads);
    cJSON_AddNumberToObject(o, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(o, "max_position_embeddings", c->max_position_embeddings);
    cJSON_AddNumberToObject(o, "rms_norm_eps", shown(c->rms_norm_eps));
    cJSON_AddNumberToObject(o, "rope_theta", shown(c->rope_theta));
    if (c->rope_llama3) {
        cJSON *r = cJSON_AddObjectToObject(o, "rope_scaling");
        cJSON_AddStringToObject(r, "rope_type", "llama3");
        cJSON_AddNumberToObject(r, "factor", shown(c->rope_factor));
        cJSON_AddNumberToObject(r, "low_freq_factor", shown(c->rope_low_freq_factor));
        cJSON_AddNumberToObject(r, "high_freq_factor", shown(c->rope_high_freq_factor));
        cJSON_AddNumberToObject(r, "original_max_position_embeddings",
                                c->rope_original_max_position_embeddings);
    } else {
        cJSON_AddNullToObject(o, "rope_scaling");
    }
    cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tie_word_embeddings);
    cJSON_AddNumberToObject(o, "bos_token_id", c->bos_token_id);
    cJSON *eos = cJSON_AddArrayToObject(o, "eos_token_ids");
    for (int i = 0; i < c->n_eos; i++)
        cJSON_AddItemToArray(eos, cJSON_CreateNumber(c->eos_token_ids[i]));
    cJSON_AddNumberToObject(o, "pad_token_id", c->pad_token_id);
    cJSON_AddNumberToObject(o, "parameters", (double)params);
    cJSON_AddNumberToObject(o, "fp32_bytes", (double)params * 4.0);
    return o;
}

static void print_text(const rc_config *c, size_t params) {
    printf("model:                   %s\n", c->source);
    if (c->arch == RC_ARCH_REWARD)
        printf("architecture:            reward model (head %s.weight, num_labels %d)\n",
               c->head_name, c->num_labels);
    else
        printf("architecture:            causal LM (%s LM head)\n",
               c->tie_word_embeddings ? "tied" : "separate");
    printf("hidden_size:             %d\n", c->hidden_size);
    printf("intermediate_size:       %d\n", c->intermediate_size);
    printf("num_hidden_layers:       %d\n", c->num_hidden_layers);
    printf("num_attention_heads:     %d\n", c->num_attention_heads);
    printf("num_key_value_heads:     %d\n", c->num_key_value_heads);
    printf("head_dim:                %d\n", c->head_dim);
    printf("vocab_size:              %d\n", c->vocab_size);
    printf("max_position_embeddings: %d\n", c->max_position_embeddings);
    printf("rms_norm_eps:            %g\n", c->rms_norm_eps);
    printf("rope_theta:              %g\n", c->rope_theta);
    if (c->rope_llama3)
        printf("rope_scaling:            llama3 (factor %g, low_freq_factor %g, high_freq_factor "
               "%g, original_max_position_embeddings %d)\n",
               c->rope_factor, c->rope_low_freq_factor, c->rope_high_freq_factor,
               c->rope_original_max_position_embeddings);
    else
        printf("rope_scaling:            none\n");
    printf("bos_token_id:            %d\n", c->bos_token_id);
    printf("eos_token_ids:          ");
    for (int i = 0; i < c->n_eos; i++)
        printf(" %d", c->eos_token_ids[i]);
    printf("%s\n", c->n_eos ? "" : " (none)");
    printf("pad_token_id:            %d\n", c->pad_token_id);
    if (params >= 1000000000)
        printf("parameters:              %zu (%.3f B)\n", params, (double)params / 1e9);
    else
        printf("parameters:              %zu (%.3f M)\n", params, (double)params / 1e6);
    printf("as fp32 (parameters x 4): %.3f MiB\n", (double)params * 4.0 / (1 << 20));
}

int cmd_info(int argc, char **argv) {
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"json", no_argument, 0, 'j'},
                                         {"load", no_argument, 0, 'l'},
                                         {"device", no_argument, 0, 'D'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *model = NULL;
    int json = 0, load = 0, device = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hm:", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            model = optarg;
            break;
        case 'j':
            json = 1;
            break;
        case 'l':
            load = 1;
            break;
        case 'D':
            device = 1;
            break;
        case 'h':
            info_usage(stdout);
            return 0;
        default:
            info_usage(stderr);
            return 2;
        }
    }
    if (device && optind == argc && !model) return rc_device_info(stdout) ? 1 : 0;
    if (optind != argc || !model) {
        if (!model) fprintf(stderr, "recontrol info: --model is required\n");
        info_usage(stderr);
        return 2;
    }

    rc_model m;
    memset(&m, 0, sizeof m);
    st_summary s;
    memset(&s, 0, sizeof s);
    int have_summary = 0, loaded = 0;
    if (rc_is_dir(model) && !load) {
        char path[2048];
        char *text = NULL;
        if (rc_path_join(path, sizeof path, model, "config.json") == 0 && !rc_file_exists(path))
            rc_fail("%s: config.json not found (expected an HF model directory)", model);
        else
            text = rc_read_file(path, NULL);
        if (!text || rc_config_parse_json(text, &m.cfg) != 0) {
            free(text);
            fprintf(stderr, "recontrol info: error: %s\n", rc_last_error());
            return 1;
        }
        free(text);
        snprintf(m.cfg.source, sizeof m.cfg.source, "%s", model);
        if (summarize_hf(model, &s) != 0) {
            fprintf(stderr, "recontrol info: error: %s\n", rc_last_error());
            return 1;
        }
        have_summary = 1;
    } else {
        if (rc_model_load(model, &m) != 0) {
            fprintf(stderr, "recontrol info: error: %s\n", rc_last_error());
            return 1;
        }
        loaded = 1;
        if (rc_is_dir(model) && summarize_hf(model, &s) == 0) have_summary = 1;
    }
    size_t params = rc_model_param_count(&m.cfg);
    if (json) {
        cJSON *o = config_json(&m.cfg, params);
        cJSON_AddStringToObject(o, "format", rc_is_dir(model) ? "hf" : "gguf");
        cJSON_AddBoolToObject(o, "weights_loaded", loaded);
        if (loaded) cJSON_AddNumberToObject(o, "weight_bytes_in_memory", (double)m.weight_bytes);
        if (have_summary) {
            cJSON *f = cJSON_AddObjectToObject(o, "files");
            cJSON_AddNumberToObject(f, "safetensors_files", s.n_files);
            cJSON_AddNumberToObject(f, "tensors", s.n_tensors);
            cJSON_AddNumberToObject(f, "bytes", (double)s.bytes);
            cJSON *d = cJSON_AddObjectToObject(f, "dtypes");
            for (int i = 0; i <= RC_DT_OTHER; i++)
                if (s.dtype_count[i]) cJSON_AddNumberToObject(d, k_dt_names[i], s.dtype_count[i]);
        }
        char *out = rc_json_print(o, 1);
        printf("%s\n", out);
        free(out);
        cJSON_Delete(o);
    } else {
        print_text(&m.cfg, params);
        printf("format:                  %s\n", rc_is_dir(model) ? "HF directory" : "GGUF");
        if (have_summary) {
            printf("weight files:            %d safetensors file%s, %d tensors, %.3f MB stored (",
                   s.n_files, s.n_files == 1 ? "" : "s", s.n_tensors, (double)s.bytes / 1e6);
            int first = 1;
            for (int i = 0; i <= RC_DT_OTHER; i++)
                if (s.dtype_count[i]) {
                    printf("%s%d %s", first ? "" : ", ", s.dtype_count[i], k_dt_names[i]);
                    first = 0;
                }
            printf(")\n");
        }
        printf("weights:                 %s\n",
               loaded ? "all loaded and checked" : "not loaded (use --load to check every tensor)");
        if (loaded)
            printf("weights in memory:       %.3f MiB (as stored: quantized GGUF blocks stay quantized)\n",
                   (double)m.weight_bytes / (1 << 20));
    }
    rc_model_free(&m);
    return 0;
}
