// Tokenizer access for the pipeline stages, with an ids-only fallback for models without one.
#include "pipeline/codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "tokenizer/tokenizer.h"

int rc_codec_open(rc_codec *c, const char *model_path, const rc_model *m, int allow_ids) {
    memset(c, 0, sizeof *c);
    c->bos = m ? m->cfg.bos_token_id : -1;
    c->tok = rc_tokenizer_load(model_path);
    if (c->tok) return 0;
    if (!allow_ids)
        return rc_fail_ctx("%s: text prompts need the model's tokenizer (or use --format ids with "
                           "token-id prompts)",
                           model_path);
    return 0; // ids only
}

void rc_codec_close(rc_codec *c) {
    if (c->tok) rc_tokenizer_free(c->tok);
    memset(c, 0, sizeof *c);
}

int rc_codec_has_text(const rc_codec *c) { return c->tok != NULL; }

int rc_codec_encode(rc_codec *c, const char *text, int **ids, int *n) {
    *ids = NULL;
    *n = 0;
    if (!c->tok) return rc_fail("this model has no tokenizer: text cannot be encoded");
    return rc_tokenizer_encode(c->tok, text, strlen(text), 1, ids, n);
}

char *rc_ids_to_text(const int *ids, int n) {
    size_t cap = (size_t)n * 12 + 1;
    char *s = rc_malloc(cap, "ids text");
    if (!s) return NULL;
    size_t o = 0;
    s[0] = 0;
    for (int i = 0; i < n; i++) o += (size_t)snprintf(s + o, cap - o, i ? " %d" : "%d", ids[i]);
    return s;
}

char *rc_codec_decode(rc_codec *c, const int *ids, int n) {
    if (!c->tok) return rc_ids_to_text(ids, n);
    return rc_tokenizer_decode(c->tok, ids, n, 1);
}

char *rc_codec_decode_after(rc_codec *c, const int *prompt_ids, int n_prompt, const int *ids, int n) {
    if (!c->tok || n_prompt <= 0) return rc_codec_decode(c, ids, n);
    int *all = rc_malloc(sizeof(int) * (size_t)(n_prompt + n + 1), "decode ids");
    if (!all) return NULL;
    memcpy(all, prompt_ids, sizeof(int) * (size_t)n_prompt);
    if (n) memcpy(all + n_prompt, ids, sizeof(int) * (size_t)n);
    size_t lf = 0, lp = 0;
    char *full = rc_tokenizer_decode_n(c->tok, all, n_prompt + n, 1, &lf);
    char *pre = full ? rc_tokenizer_decode_n(c->tok, prompt_ids, n_prompt, 1, &lp) : NULL;
    free(all);
    char *out = NULL;
    if (full && pre) {
        size_t k = 0;
        while (k < lp && k < lf && full[k] == pre[k]) k++;
        if (k < lp) // the joint text rewrote the prompt's end: keep whole characters after it
            while (k > 0 && ((unsigned char)full[k] & 0xC0) == 0x80) k--;
        out = rc_malloc(lf - k + 1, "response text");
        if (out) {
            memcpy(out, full + k, lf - k);
            out[lf - k] = 0;
        }
    }
    free(full);
    free(pre);
    return out;
}

