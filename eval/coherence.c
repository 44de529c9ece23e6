// Sentence embeddings and prompt/response cosine for the coherence metric: WordPiece ids
// ([CLS] text [SEP], at most max_len), the BERT encoder, SimCSE's pooling choice, unit norm.
#include "eval/coherence.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "engine/bert.h"
#include "tokenizer/wordpiece.h"

struct rc_coherence {
    rc_bert *bert;
    rc_wordpiece *wp;
    rc_pool_kind pool;
    int max_len;
};

int rc_coherence_load(rc_coherence **out, const char *dir, rc_pool_kind pool, int max_len) {
    *out = NULL;
    rc_coherence *c = rc_calloc(1, sizeof *c, "coherence");
    if (!c) return -1;
    if (rc_bert_load(&c->bert, dir) || rc_wordpiece_load(&c->wp, dir)) goto fail;
    if (pool == RC_POOL_AUTO) {
        // SimCSE: "cls_before_pooler" when the model's name contains "unsup", else "cls".
        pool = strstr(dir, "unsup") ? RC_POOL_CLS_BEFORE_POOLER : RC_POOL_CLS;
    }
    c->pool = pool;
    if (pool == RC_POOL_CLS && !rc_bert_has_pooler(c->bert)) {
        rc_fail("%s: the checkpoint has no pooler (pooler.dense.*); pool with cls_before_pooler",
                dir);
        goto fail;
    }
    const rc_bert_config *cfg = rc_bert_cfg(c->bert);
    c->max_len = max_len > 0 ? max_len : 128;
    if (c->max_len > cfg->max_pos) {
        rc_fail("%s: truncation length %d exceeds max_position_embeddings %d", dir, c->max_len,
                cfg->max_pos);
        goto fail;
    }
    if (rc_wordpiece_vocab_size(c->wp) > cfg->vocab) {
        rc_fail("%s: the tokenizer has %d tokens, the model's vocabulary %d", dir,
                rc_wordpiece_vocab_size(c->wp), cfg->vocab);
        goto fail;
    }
    *out = c;
    return 0;
fail:
    rc_fail_ctx("coherence model");
    rc_coherence_free(c);
    return -1;
}

void rc_coherence_free(rc_coherence *c) {
    if (!c) return;
    rc_bert_free(c->bert);
    rc_wordpiece_free(c->wp);
    free(c);
}

int rc_coherence_dim(const rc_coherence *c) { return rc_bert_cfg(c->bert)->d; }
rc_pool_kind rc_coherence_pool(const rc_coherence *c) { return c->pool; }
int rc_coherence_max_len(const rc_coherence *c) { return c->max_len; }

int rc_coherence_embed(const rc_coherence *c, const char *text, float *out) {
    int *ids = NULL, n = 0, d = rc_coherence_dim(c), rc = -1;
    float *hidden = NULL;
    if (rc_wordpiece_encode(c->wp, text, strlen(text), c->max_len, &ids, &n)) return -1;
    if (c->pool == RC_POOL_CLS) {
        rc = rc_bert_forward(c->bert, ids, n, NULL, out);
    } else {
        hidden = rc_malloc((size_t)n * d * sizeof(float), "coherence hidden");
        if (hidden && !rc_bert_forward(c->bert, ids, n, hidden, NULL)) {
            memcpy(out, hidden, (size_t)d * sizeof(float));
            rc = 0;
        }
    }
    if (!rc) {
        double ss = 0;
        for (int j = 0; j < d; j++) ss += (double)out[j] * out[j];
        float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
        for (int j = 0; j < d; j++) out[j] *= inv;
    }
    free(ids);
    free(hidden);
    return rc;
}

int rc_coherence_pair(const rc_coherence *c, const char *a, const char *b, double *cos) {
    int d = rc_coherence_dim(c);
    float *e = rc_malloc(2 * (size_t)d * sizeof(float), "coherence embeddings");
    if (!e) return -1;
    int rc = -1;
    if (!rc_coherence_embed(c, a, e) && !rc_coherence_embed(c, b, e + d)) {
        double dot = 0, na = 0, nb = 0;
        for (int j = 0; j < d; j++) {
            dot += (double)e[j] * e[d + j];
            na += (double)e[j] * e[j];
            nb += (double)e[d + j] * e[d + j];
        }
        // sklearn's cosine_similarity normalises again (a zero vector stays zero)
        *cos = (na > 0 && nb > 0) ? dot / (sqrt(na) * sqrt(nb)) : 0.0;
        rc = 0;
    }
    free(e);
    return rc;
}
