// Chat prompt formats (see chat.h): template recognition by marker strings, rendering as the
// templates render under transformers' apply_chat_template, HH-RLHF / SHP prompt preparation.
#include "tokenizer/chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "tokenizer/tok_internal.h"

#define VICUNA_SYSTEM                                                                              \
    "A chat between a curious user and an artificial intelligence assistant. The assistant "      \
    "gives helpful, detailed, and polite answers to the user's questions."

const char *rc_chat_format_name(rc_chat_format f) {
    switch (f) {
    case RC_CHAT_VICUNA_V11: return "vicuna";
    case RC_CHAT_CHATML: return "chatml";
    case RC_CHAT_LLAMA3: return "llama3";
    case RC_CHAT_HH_RLHF: return "hh";
    case RC_CHAT_RAW: return "raw";
    }
    return "?";
}

int rc_chat_spec_from_name(const char *name, rc_chat_spec *out) {
    memset(out, 0, sizeof *out);
    if (!name) return rc_fail("no chat format name given");
    if (!strcmp(name, "vicuna") || !strcmp(name, "vicuna_v1.1")) {
        out->format = RC_CHAT_VICUNA_V11;
        snprintf(out->default_system, sizeof out->default_system, "%s", VICUNA_SYSTEM);
    } else if (!strcmp(name, "chatml"))
        out->format = RC_CHAT_CHATML;
    else if (!strcmp(name, "llama3")) {
        out->format = RC_CHAT_LLAMA3;
        snprintf(out->bos, sizeof out->bos, "<|begin_of_text|>");
    } else if (!strcmp(name, "hh") || !strcmp(name, "hh_rlhf"))
        out->format = RC_CHAT_HH_RLHF;
    else if (!strcmp(name, "raw"))
        out->format = RC_CHAT_RAW;
    else
        return rc_fail("unknown chat format '%s' (known: vicuna, chatml, llama3, hh, raw)", name);
    return 0;
}

// The literal default system text of a ChatML template: '<|im_start|>system\n' TEXT '<|im_end|>'
// inside one string literal (as SmolLM2's and Qwen2's templates have it).
static void chatml_default_system(const char *tmpl, char *out, size_t cap) {
    out[0] = 0;
    const char *p = strstr(tmpl, "<|im_start|>system");
    while (p) {
        const char *q = p + strlen("<|im_start|>system");
        if (*q == '\n') q++;
        else if (q[0] == '\\' && q[1] == 'n') q += 2;
        else {
            p = strstr(q, "<|im_start|>system");
            continue;
        }
        const char *e = strstr(q, "<|im_end|>");
        size_t n = e ? (size_t)(e - q) : 0;
        if (e && n < cap && !memchr(q, '\'', n) && !memchr(q, '"', n) && !memchr(q, '+', n) &&
            !memchr(q, '{', n)) {
            memcpy(out, q, n);
            out[n] = 0;
            return;
        }
        p = strstr(q, "<|im_start|>system");
    }
}

int rc_chat_spec_from_template(const char *tmpl, rc_chat_spec *out) {
    memset(out, 0, sizeof *out);
    if (!tmpl) return rc_fail("the model has no chat template; choose a format by name (vicuna, "
                              "chatml, llama3, hh, raw)");
    if (strstr(tmpl, "<|im_start|>")) {
        out->format = RC_CHAT_CHATML;
        chatml_default_system(tmpl, out->default_system, sizeof out->default_system);
        return 0;
    }
    if (strstr(tmpl, "<|start_header_id|>")) {
        if (strstr(tmpl, "Cutting Knowledge Date"))
            return rc_fail("this is a Llama-3.1-style template (it writes a dated system header), "
                           "which is not reproduced; choose the format by name (llama3 gives the "
                           "plain Llama-3 headers)");
        out->format = RC_CHAT_LLAMA3;
        if (strstr(tmpl, "bos_token")) snprintf(out->bos, sizeof out->bos, "<|begin_of_text|>");
        return 0;
    }
    if (strstr(tmpl, "USER:") && strstr(tmpl, "ASSISTANT:")) {
        out->format = RC_CHAT_VICUNA_V11;
        snprintf(out->default_system, sizeof out->default_system, "%s", VICUNA_SYSTEM);
        return 0;
    }
    if (strstr(tmpl, "Human:") && strstr(tmpl, "Assistant:")) {
        out->format = RC_CHAT_HH_RLHF;
        return 0;
    }
    return rc_fail("unrecognised chat template (starts '%.60s'); recognised are ChatML "
                   "(<|im_start|>), Llama-3 (<|start_header_id|>), Vicuna (USER:/ASSISTANT:) and "
                   "HH (Human:/Assistant:); choose one by name (vicuna, chatml, llama3, hh, raw)",
                   tmpl);
}

// Jinja's `trim` (Python str.strip): whitespace off both ends.
static void trimmed(const char *s, const char **b, size_t *n) {
    const uint8_t *p = (const uint8_t *)s, *e = p + strlen(s);
    uint32_t cp;
    int l;
    while (p < e && (l = tk_utf8_next(p, (size_t)(e - p), &cp)) &&
           (tk_is_space(cp) || (cp >= 0x1c && cp <= 0x1f)))
        p += l;
    while (e > p) {
        const uint8_t *q = e - 1;
        while (q > p && (*q & 0xc0) == 0x80) q--;
        if (!tk_utf8_next(q, (size_t)(e - q), &cp) || !(tk_is_space(cp) || (cp >= 0x1c && cp <= 0x1f)))
            break;
        e = q;
    }
    *b = (const char *)p;
    *n = (size_t)(e - p);
}

static int add(tk_buf *b, const char *s) { return tk_buf_add(b, s, strlen(s)); }

char *rc_chat_render(const rc_chat_spec *spec, const rc_chat_msg *msgs, int n,
                     int add_generation_prompt) {
    tk_buf b = {0};
    int rc = add(&b, "");
    for (int i = 0; i < n && !rc; i++)
        if (!msgs[i].role || !msgs[i].content ||
            (strcmp(msgs[i].role, "system") && strcmp(msgs[i].role, "user") &&
             strcmp(msgs[i].role, "assistant")))
            rc = rc_fail("chat message %d: role '%s' (system, user, assistant are known)", i,
                         msgs[i].role ? msgs[i].role : "(null)");
    int has_sys = n > 0 && !strcmp(msgs[0].role, "system");
    switch (rc ? -1 : (int)spec->format) {
    case RC_CHAT_CHATML:
        if (!has_sys && spec->default_system[0]) {
            rc = add(&b, "<|im_start|>system\n");
            rc = rc || add(&b, spec->default_system);
            rc = rc || add(&b, "<|im_end|>\n");
        }
        for (int i = 0; i < n && !rc; i++) {
            rc = add(&b, "<|im_start|>") || add(&b, msgs[i].role) || add(&b, "\n") ||
                 add(&b, msgs[i].content) || add(&b, "<|im_end|>\n");
        }
        if (!rc && add_generation_prompt) rc = add(&b, "<|im_start|>assistant\n");
        break;
    case RC_CHAT_LLAMA3:
        rc = add(&b, spec->bos);
        for (int i = 0; i < n && !rc; i++) {
            const char *c;
            size_t cn;
            trimmed(msgs[i].content, &c, &cn);
            rc = add(&b, "<|start_header_id|>") || add(&b, msgs[i].role) ||
                 add(&b, "<|end_header_id|>\n\n") || tk_buf_add(&b, c, cn) || add(&b, "<|eot_id|>");
        }
        if (!rc && add_generation_prompt) rc = add(&b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    case RC_CHAT_VICUNA_V11:
        rc = add(&b, has_sys ? msgs[0].content : spec->default_system) || add(&b, " ");
        for (int i = has_sys; i < n && !rc; i++) {
            if (!strcmp(msgs[i].role, "user"))
                rc = add(&b, "USER: ") || add(&b, msgs[i].content) || add(&b, " ");
            else if (!strcmp(msgs[i].role, "assistant"))
                rc = add(&b, "ASSISTANT: ") || add(&b, msgs[i].content) || add(&b, "</s>");
            else
                rc = rc_fail("vicuna: a system message may only come first");
        }
        if (!rc && add_generation_prompt) rc = add(&b, "ASSISTANT:");
        break;
    case RC_CHAT_HH_RLHF:
        for (int i = 0; i < n && !rc; i++) {
            if (!strcmp(msgs[i].role, "system")) rc = add(&b, msgs[i].content);
            else
                rc = add(&b, !strcmp(msgs[i].role, "user") ? "\n\nHuman: " : "\n\nAssistant: ") ||
                     add(&b, msgs[i].content);
        }
        if (!rc && add_generation_prompt) rc = add(&b, "\n\nAssistant:");
        break;
    case RC_CHAT_RAW:
        for (int i = 0; i < n && !rc; i++) rc = (i ? add(&b, "\n") : 0) || add(&b, msgs[i].content);
        break;
    default:
        if (!rc) rc = rc_fail("unknown chat format %d", (int)spec->format);
    }
    if (rc) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

const char *rc_chat_end_of_turn(const rc_chat_spec *spec) {
    switch (spec->format) {
    case RC_CHAT_CHATML: return "<|im_end|>";
    case RC_CHAT_LLAMA3: return "<|eot_id|>";
    case RC_CHAT_VICUNA_V11: return "</s>";
    default: return NULL;
    }
}

char *rc_hh_prompt(const char *chosen) { return rc_hh_prompt_turn(chosen, NULL); }
char *rc_shp_prompt(const char *history) { return rc_shp_prompt_turn(history, NULL); }

char *rc_hh_prompt_turn(const char *chosen, const char *turn) {
    if (!turn) turn = "Human: ";
    tk_buf b = {0};
    int rc = add(&b, "");
    for (const char *p = chosen; !rc && *p;) {
        const char *h = strstr(p, "Human:");
        if (!h) {
            rc = add(&b, p);
            break;
        }
        rc = tk_buf_add(&b, p, (size_t)(h - p)) || add(&b, turn);
        p = h + 6;
    }
    const char *last = NULL;
    for (const char *q = b.p; !rc && (q = strstr(q, "Assistant:")); q++) last = q;
    if (!rc && !last) rc = rc_fail("HH-RLHF text has no \"Assistant:\" turn: '%.60s'", chosen);
    if (rc) {
        free(b.p);
        return NULL;
    }
    b.p[(last - b.p) + 10] = 0;
    return b.p;
}

char *rc_shp_prompt_turn(const char *history, const char *turn) {
    if (!turn) turn = "Human: ";
    tk_buf b = {0};
    if (add(&b, turn) || add(&b, history) || add(&b, "\nAssistant:")) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
