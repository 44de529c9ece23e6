// OpenAI request bodies checked field by field into rc_api_req (types, ranges, unsupported
// options), chat messages rendered with the model's chat template, and the response / stream
// chunk / error / model-list JSON built with cJSON.
#define _GNU_SOURCE
#include "serve/api.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int rc_api_fail(rc_api_error *e, int status, const char *type, const char *param,
                const char *fmt, ...) {
    e->status = status;
    snprintf(e->type, sizeof e->type, "%s", type);
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    e->code[0] = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

#define BAD(param, ...) rc_api_fail(e, 400, "invalid_request_error", param, __VA_ARGS__)

void rc_api_req_free(rc_api_req *r) {
    free(r->prompt);
    free(r->ids);
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    memset(r, 0, sizeof *r);
}

// A field that is absent or JSON null reads as absent.
static const cJSON *field(const cJSON *o, const char *name) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    return f && !cJSON_IsNull(f) ? f : NULL;
}

static int is_int(const cJSON *f) {
    return cJSON_IsNumber(f) && isfinite(f->valuedouble) && f->valuedouble == floor(f->valuedouble) &&
           fabs(f->valuedouble) <= 9007199254740992.0; // 2^53: exact in a double
}

// Integer field in [lo, hi]: 1 when present (value in *v), 0 when absent, -1 on a bad value.
static int get_int(const cJSON *o, const char *name, long lo, long hi, long *v, rc_api_error *e) {
    const cJSON *f = field(o, name);
    if (!f) return 0;
    if (!is_int(f)) return BAD(name, "'%s' must be an integer", name);
    if (f->valuedouble < (double)lo || f->valuedouble > (double)hi)
        return BAD(name, "'%s' is %.0f; it must be between %ld and %ld", name, f->valuedouble, lo, hi);
    *v = (long)f->valuedouble;
    return 1;
}

// Number field in [lo, hi] (open at lo when lo_open): 1 / 0 / -1 as get_int.
static int get_num(const cJSON *o, const char *name, double lo, int lo_open, double hi, double *v,
                   rc_api_error *e) {
    const cJSON *f = field(o, name);
    if (!f) return 0;
    if (!cJSON_IsNumber(f) || !isfinite(f->valuedouble)) return BAD(name, "'%s' must be a number", name);
    double x = f->valuedouble;
    if (x < lo || (lo_open && x == lo) || x > hi)
        return BAD(name, "'%s' is %g; it must be %s %g and <= %g", name, x, lo_open ? ">" : ">=", lo,
                   hi);
    *v = x;
    return 1;
}

static int get_bool(const cJSON *o, const char *name, int *v, rc_api_error *e) {
    const cJSON *f = field(o, name);
    if (!f) return 0;
    if (!cJSON_IsBool(f)) return BAD(name, "'%s' must be a boolean", name);
    *v = cJSON_IsTrue(f);
    return 1;
}

// Options we do not implement: accepted only at their neutral value.
static int check_unsupported(const cJSON *o, int kind, rc_api_error *e) {
    long n = 1;
    if (get_int(o, "n", 1, 1000000, &n, e) < 0) return -1;
    if (n != 1) return BAD("n", "only n = 1 is supported (got %ld)", n);
    static const char *const zero_nums[] = {"presence_penalty", "frequency_penalty"};
    for (int i = 0; i < 2; i++) {
        double x = 0;
        if (get_num(o, zero_nums[i], -2, 0, 2, &x, e) < 0) return -1;
        if (x != 0) return BAD(zero_nums[i], "'%s' is not supported (only 0)", zero_nums[i]);
    }
    const cJSON *f;
    if ((f = field(o, "logprobs")) && !cJSON_IsFalse(f) && !(cJSON_IsNumber(f) && f->valuedouble == 0))
        return BAD("logprobs", "'logprobs' is not supported");
    if ((f = field(o, "logit_bias")) && !(cJSON_IsObject(f) && !f->child))
        return BAD("logit_bias", "'logit_bias' is not supported");
    if ((f = field(o, "tools")) && !(cJSON_IsArray(f) && !f->child))
        return BAD("tools", "tools / function calling is not supported");
    if ((f = field(o, "response_format"))) {
        const cJSON *t = cJSON_IsObject(f) ? field(f, "type") : NULL;
        if (!cJSON_IsString(t) || strcmp(t->valuestring, "text"))
            return BAD("response_format", "only response_format {\"type\": \"text\"} is supported");
    }
    if (kind == RC_API_COMPLETION) {
        int echo = 0;
        if (get_bool(o, "echo", &echo, e) < 0) return -1;
        if (echo) return BAD("echo", "'echo' is not supported");
        long best = 1;
        if (get_int(o, "best_of", 1, 1000000, &best, e) < 0) return -1;
        if (best != 1) return BAD("best_of", "only best_of = 1 is supported");
        if (field(o, "suffix")) return BAD("suffix", "'suffix' is not supported");
    }
    return 0;
}

static int parse_stop(const cJSON *o, rc_api_req *r, rc_api_error *e) {
    const cJSON *f = field(o, "stop");
    if (!f) return 0;
    const cJSON *items[RC_API_MAX_STOP];
    int n = 0;
    if (cJSON_IsString(f)) {
        items[n++] = f;
    } else if (cJSON_IsArray(f)) {
        if (cJSON_GetArraySize(f) > RC_API_MAX_STOP)
            return BAD("stop", "at most %d stop sequences", RC_API_MAX_STOP);
        for (const cJSON *s = f->child; s; s = s->next) {
            if (!cJSON_IsString(s)) return BAD("stop", "'stop' must be a string or a list of strings");
            items[n++] = s;
        }
    } else {
        return BAD("stop", "'stop' must be a string or a list of strings");
    }
    for (int i = 0; i < n; i++) {
        size_t len = strlen(items[i]->valuestring);
        if (len == 0 || len > 256) return BAD("stop", "stop sequences must be 1 to 256 bytes long");
        if (!(r->stop[r->n_stop] = strdup(items[i]->valuestring)))
            return rc_api_fail(e, 500, "server_error", NULL, "out of memory");
        r->n_stop++;
    }
    return 0;
}

static int parse_control(const cJSON *o, const rc_api_limits *lim, rc_api_req *r, rc_api_error *e) {
    r->control = -1;
    const cJSON *f = field(o, "recontrol");
    if (!f) return 0;
    if (!cJSON_IsObject(f))
        return BAD("recontrol", "'recontrol' must be an object {\"value_model\": NAME, "
                                "\"step_size\": A, \"steps\": N}");
    const cJSON *name = field(f, "value_model");
    if (!cJSON_IsString(name)) return BAD("recontrol.value_model", "'recontrol.value_model' must be a string");
    for (int i = 0; i < lim->n_value; i++)
        if (!strcmp(lim->value_names[i], name->valuestring)) r->control = i;
    if (r->control < 0) {
        char known[256] = "";
        for (int i = 0; i < lim->n_value; i++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                     lim->value_names[i]);
        return BAD("recontrol.value_model", "unknown value model '%.100s' (this server has: %s)",
                   name->valuestring, lim->n_value ? known : "none; start it with --value-model NAME=FILE");
    }
    double a = lim->default_step_size;
    long steps = lim->default_steps;
    if (get_num(f, "step_size", 0, 0, 1e4, &a, e) < 0 ||
        get_int(f, "steps", 0, lim->max_steps, &steps, e) < 0) {
        // get_* name only the inner field; say where it is
        char p[64];
        snprintf(p, sizeof p, "recontrol.%.30s", e->param);
        snprintf(e->param, sizeof e->param, "%.47s", p);
        return -1;
    }
    r->step_size = (float)a;
    r->steps = (int)steps;
    return 0;
}

static int parse_messages(const cJSON *o, const rc_api_limits *lim, rc_api_req *r, rc_api_error *e) {
    const cJSON *msgs = field(o, "messages");
    if (!msgs) return BAD("messages", "'messages' is required");
    if (!cJSON_IsArray(msgs) || !msgs->child)
        return BAD("messages", "'messages' must be a non-empty list of {\"role\", \"content\"}");
    if (!lim->chat)
        return BAD(NULL, "this model has no chat template: use /v1/completions, or start the "
                         "server with --chat-format NAME");
    int n = cJSON_GetArraySize(msgs), rc = -1;
    rc_chat_msg *m = calloc((size_t)n, sizeof *m);
    char **parts = calloc((size_t)n, sizeof *parts); // joined content arrays
    if (!m || !parts) {
        rc_api_fail(e, 500, "server_error", NULL, "out of memory");
        goto done;
    }
    int i = 0;
    for (const cJSON *x = msgs->child; x; x = x->next, i++) {
        char param[48];
        snprintf(param, sizeof param, "messages[%d]", i);
        const cJSON *role = cJSON_IsObject(x) ? field(x, "role") : NULL;
        const cJSON *content = cJSON_IsObject(x) ? field(x, "content") : NULL;
        if (!cJSON_IsString(role)) {
            BAD(param, "%s must be an object with a string 'role'", param);
            goto done;
        }
        const char *rs = role->valuestring;
        if (!strcmp(rs, "developer")) rs = "system"; // OpenAI's newer name for the system role
        if (strcmp(rs, "system") && strcmp(rs, "user") && strcmp(rs, "assistant")) {
            BAD(param, "%s.role is '%.40s'; expected system, user or assistant", param, rs);
            goto done;
        }
        m[i].role = rs;
        if (cJSON_IsString(content)) {
            m[i].content = content->valuestring;
        } else if (cJSON_IsArray(content)) {
            // [{"type": "text", "text": "..."}, ...]: the texts, joined
            size_t total = 1;
            for (const cJSON *p = content->child; p; p = p->next) {
                const cJSON *t = cJSON_IsObject(p) ? field(p, "type") : NULL;
                const cJSON *s = cJSON_IsObject(p) ? field(p, "text") : NULL;
                if (!cJSON_IsString(t) || strcmp(t->valuestring, "text") || !cJSON_IsString(s)) {
                    BAD(param, "%s.content: only text parts {\"type\": \"text\", \"text\": ...} are "
                               "supported", param);
                    goto done;
                }
                total += strlen(s->valuestring);
            }
            if (!(parts[i] = malloc(total))) {
                rc_api_fail(e, 500, "server_error", NULL, "out of memory");
                goto done;
            }
            parts[i][0] = 0;
            for (const cJSON *p = content->child; p; p = p->next)
                strcat(parts[i], field(p, "text")->valuestring);
            m[i].content = parts[i];
        } else if (!content && !strcmp(rs, "assistant")) {
            m[i].content = "";
        } else {
            BAD(param, "%s.content must be a string or a list of text parts", param);
            goto done;
        }
    }
    if (!(r->prompt = rc_chat_render(lim->chat, m, n, 1))) {
        BAD("messages", "the conversation cannot be rendered with the chat template");
        goto done;
    }
    rc = 0;
done:
    for (int k = 0; parts && k < n; k++) free(parts[k]);
    free(parts);
    free(m);
    return rc;
}

static int parse_prompt(const cJSON *o, rc_api_req *r, rc_api_error *e) {
    const cJSON *p = field(o, "prompt");
    if (!p) return BAD("prompt", "'prompt' is required");
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 && !cJSON_IsNumber(p->child))
        p = p->child; // ["text"] or [[1, 2, 3]]: one prompt
    if (cJSON_IsString(p)) {
        if (!(r->prompt = strdup(p->valuestring)))
            return rc_api_fail(e, 500, "server_error", NULL, "out of memory");
        return 0;
    }
    if (cJSON_IsArray(p) && p->child && cJSON_IsNumber(p->child)) {
        int n = cJSON_GetArraySize(p), i = 0;
        if (!(r->ids = malloc(sizeof(int) * (size_t)n)))
            return rc_api_fail(e, 500, "server_error", NULL, "out of memory");
        for (const cJSON *x = p->child; x; x = x->next, i++) {
            if (!is_int(x) || x->valuedouble < 0 || x->valuedouble > 2147483647.0)
                return BAD("prompt", "prompt[%d] is not a token id (a non-negative integer)", i);
            r->ids[i] = (int)x->valuedouble;
        }
        r->n_ids = n;
        return 0;
    }
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) > 1)
        return BAD("prompt", "only one prompt per request is supported");
    return BAD("prompt", "'prompt' must be a string, a list of one string, or a list of token ids");
}

int rc_api_parse(const char *body, size_t len, int kind, const rc_api_limits *lim, rc_api_req *r,
                 rc_api_error *e) {
    memset(r, 0, sizeof *r);
    memset(e, 0, sizeof *e);
    r->kind = kind;
    r->temperature = 1.0f;
    r->top_p = 1.0f;
    r->control = -1;
    cJSON *o = cJSON_ParseWithLength(body, len);
    if (!o) return BAD(NULL, "the request body is not valid JSON");
    int rc = -1;
    if (!cJSON_IsObject(o)) {
        BAD(NULL, "the request body must be a JSON object");
        goto done;
    }
    const cJSON *model = field(o, "model");
    if (model && !cJSON_IsString(model)) {
        BAD("model", "'model' must be a string");
        goto done;
    }
    if (model) snprintf(r->model, sizeof r->model, "%s", model->valuestring);
    long mt = 0, topk = 0;
    double temp = 1, topp = 1;
    int got;
    if ((got = get_int(o, "max_tokens", 1, lim->max_tokens_limit, &mt, e)) < 0) goto done;
    if (!got && kind == RC_API_CHAT &&
        get_int(o, "max_completion_tokens", 1, lim->max_tokens_limit, &mt, e) < 0)
        goto done;
    if (get_num(o, "temperature", 0, 0, 2, &temp, e) < 0) goto done;
    if (get_num(o, "top_p", 0, 1, 1, &topp, e) < 0) goto done;
    if ((got = get_int(o, "top_k", -1, 1000000, &topk, e)) < 0) goto done;
    r->max_tokens = (int)mt;
    r->temperature = (float)temp;
    r->top_p = (float)topp;
    r->top_k = topk > 0 ? (int)topk : 0;
    const cJSON *seed = field(o, "seed");
    if (seed) {
        if (!is_int(seed)) {
            BAD("seed", "'seed' must be an integer");
            goto done;
        }
        r->seed = (uint64_t)(int64_t)seed->valuedouble;
        r->has_seed = 1;
    }
    if (get_bool(o, "stream", &r->stream, e) < 0 || get_bool(o, "ignore_eos", &r->ignore_eos, e) < 0)
        goto done;
    const cJSON *so = field(o, "stream_options");
    if (so) {
        if (!cJSON_IsObject(so)) {
            BAD("stream_options", "'stream_options' must be an object");
            goto done;
        }
        if (get_bool(so, "include_usage", &r->include_usage, e) < 0) goto done;
    }
    if (check_unsupported(o, kind, e) || parse_stop(o, r, e) || parse_control(o, lim, r, e))
        goto done;
    if (kind == RC_API_CHAT ? parse_messages(o, lim, r, e) : parse_prompt(o, r, e)) goto done;
    r->add_special = kind == RC_API_COMPLETION;
    if (r->prompt && (long)strlen(r->prompt) > lim->max_prompt_chars) {
        rc_api_fail(e, 400, "invalid_request_error", kind == RC_API_CHAT ? "messages" : "prompt",
                    "the prompt is %zu bytes; this server takes at most %d", strlen(r->prompt),
                    lim->max_prompt_chars);
        snprintf(e->code, sizeof e->code, "context_length_exceeded");
        goto done;
    }
    rc = 0;
done:
    cJSON_Delete(o);
    if (rc) rc_api_req_free(r);
    return rc;
}

// ---- responses ---------------------------------------------------------------------------

static char *print_and_free(cJSON *o) {
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

// cJSON strings are NUL-terminated: text with NUL bytes is cut there (NUL never comes from a
// text tokenizer's decode in practice).
static cJSON *str_n(const char *s, size_t n) {
    char *c = malloc(n + 1);
    if (!c) return NULL;
    memcpy(c, s, n);
    c[n] = 0;
    cJSON *j = cJSON_CreateString(c);
    free(c);
    return j;
}

char *rc_api_error_json(const rc_api_error *e) {
    cJSON *o = cJSON_CreateObject(), *err = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(err, "message", e->message);
    cJSON_AddStringToObject(err, "type", e->type[0] ? e->type : "invalid_request_error");
    if (e->param[0]) cJSON_AddStringToObject(err, "param", e->param);
    else cJSON_AddNullToObject(err, "param");
    if (e->code[0]) cJSON_AddStringToObject(err, "code", e->code);
    else cJSON_AddNullToObject(err, "code");
    return print_and_free(o);
}

static cJSON *usage_obj(int prompt_tokens, int completion_tokens, int cached_tokens) {
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", prompt_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", completion_tokens);
    cJSON_AddNumberToObject(u, "total_tokens", prompt_tokens + completion_tokens);
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(d, "cached_tokens", cached_tokens);
    return u;
}

static cJSON *head(const char *object, const char *id, long created, const char *model) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", (double)created);
    cJSON_AddStringToObject(o, "model", model);
    return o;
}

char *rc_api_completion_json(int kind, const char *id, long created, const char *model,
                             const char *text, size_t text_len, const char *finish,
                             int prompt_tokens, int completion_tokens, int cached_tokens) {
    cJSON *o = head(kind == RC_API_CHAT ? "chat.completion" : "text_completion", id, created, model);
    cJSON *choices = cJSON_AddArrayToObject(o, "choices"), *c = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, c);
    cJSON_AddNumberToObject(c, "index", 0);
    if (kind == RC_API_CHAT) {
        cJSON *m = cJSON_AddObjectToObject(c, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        cJSON_AddItemToObject(m, "content", str_n(text, text_len));
    } else {
        cJSON_AddItemToObject(c, "text", str_n(text, text_len));
    }
    cJSON_AddNullToObject(c, "logprobs");
    cJSON_AddStringToObject(c, "finish_reason", finish);
    cJSON_AddItemToObject(o, "usage", usage_obj(prompt_tokens, completion_tokens, cached_tokens));
    return print_and_free(o);
}

char *rc_api_chunk_json(int kind, const char *id, long created, const char *model, int first,
                        const char *text, size_t text_len, const char *finish, int prompt_tokens,
                        int completion_tokens, int cached_tokens, int usage) {
    int chat = kind == RC_API_CHAT;
    cJSON *o = head(chat ? "chat.completion.chunk" : "text_completion", id, created, model);
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    if (usage) {
        cJSON_AddItemToObject(o, "usage", usage_obj(prompt_tokens, completion_tokens, cached_tokens));
        return print_and_free(o);
    }
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, c);
    cJSON_AddNumberToObject(c, "index", 0);
    if (chat) {
        cJSON *d = cJSON_AddObjectToObject(c, "delta");
        if (first) cJSON_AddStringToObject(d, "role", "assistant");
        if (text || first) cJSON_AddItemToObject(d, "content", str_n(text ? text : "", text ? text_len : 0));
    } else {
        cJSON_AddItemToObject(c, "text", str_n(text ? text : "", text ? text_len : 0));
    }
    cJSON_AddNullToObject(c, "logprobs");
    if (finish) cJSON_AddStringToObject(c, "finish_reason", finish);
    else cJSON_AddNullToObject(c, "finish_reason");
    return print_and_free(o);
}

char *rc_api_models_json(const char *model, long created, const char *const *value_names,
                         int n_value) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(o, "data"), *m = cJSON_CreateObject();
    cJSON_AddItemToArray(data, m);
    cJSON_AddStringToObject(m, "id", model);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)created);
    cJSON_AddStringToObject(m, "owned_by", "recontrol");
    cJSON *v = cJSON_AddArrayToObject(m, "value_models");
    for (int i = 0; i < n_value; i++) cJSON_AddItemToArray(v, cJSON_CreateString(value_names[i]));
    return print_and_free(o);
}

size_t rc_api_stop_holdback(const char *text, size_t len, char *const *stop, int n_stop) {
    size_t best = 0;
    for (int i = 0; i < n_stop; i++) {
        size_t sl = strlen(stop[i]);
        for (size_t k = sl - 1 < len ? sl - 1 : len; k > best; k--)
            if (!memcmp(text + len - k, stop[i], k)) {
                best = k;
                break;
            }
    }
    return best;
}

long rc_api_stop_find(const char *text, size_t len, size_t from, char *const *stop, int n_stop) {
    long best = -1;
    for (int i = 0; i < n_stop; i++) {
        size_t sl = strlen(stop[i]);
        // a match ending at or after `from` starts at or after from - sl + 1
        size_t start = from + 1 > sl ? from + 1 - sl : 0;
        for (size_t p = start; p + sl <= len; p++)
            if (!memcmp(text + p, stop[i], sl)) {
                if (best < 0 || (long)p < best) best = (long)p;
                break;
            }
    }
    return best;
}

int rc_text_append(char **buf, size_t *len, size_t *cap, const char *s, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap * 2 : 256;
        while (c < *len + n + 1) c *= 2;
        char *b = realloc(*buf, c);
        if (!b) return -1;
        *buf = b;
        *cap = c;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = 0;
    return 0;
}
