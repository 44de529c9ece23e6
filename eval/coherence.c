// Sentence embeddings and prompt/response cosine for the coherence metric: WordPiece ids
// ([CLS] text [SEP], at most max_len), the BERT encoder, SimCSE's pooling choice, unit norm.
#include "eval/coherence.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "base/dist.h"
#include "engine/backend.h"
#include "engine/bert.h"
#include "tokenizer/wordpiece.h"

struct rc_coherence {
    rc_bert *bert;
    rc_wordpiece *wp;
    rc_encoder *enc;
    rc_pool_kind pool;
    int max_len;
};

int rc_coherence_load(rc_coherence **out, const char *dir, rc_pool_kind pool, int max_len) {
    return rc_coherence_open(out, dir, pool, max_len, RC_DEVICE_CPU);
}

int rc_coherence_open(rc_coherence **out, const char *dir, rc_pool_kind pool, int max_len,
                      rc_device dev) {
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
    // the GPU of this process's local rank under a launcher (eval spreads the pairs over ranks)
    if (rc_encoder_open(&c->enc, c->bert, dev, rc_dist()->local_rank, 0)) goto fail;
    *out = c;
    return 0;
fail:
    rc_fail_ctx("coherence model");
    rc_coherence_free(c);
    return -1;
}

void rc_coherence_free(rc_coherence *c) {
    if (!c) return;
    rc_encoder_close(c->enc);
    rc_bert_free(c->bert);
    rc_wordpiece_free(c->wp);
    free(c);
}

int rc_coherence_dim(const rc_coherence *c) { return rc_bert_cfg(c->bert)->d; }
rc_pool_kind rc_coherence_pool(const rc_coherence *c) { return c->pool; }
int rc_coherence_max_len(const rc_coherence *c) { return c->max_len; }
rc_device rc_coherence_device(const rc_coherence *c) { return c->enc->device; }

// Unit-length embeddings out (n, d) of n texts, encoded in one batch.
static int embed_many(const rc_coherence *c, int n, const char *const *texts, float *out,
                      int64_t *tokens) {
    int **ids = rc_calloc((size_t)n, sizeof *ids, "coherence ids");
    int *lens = rc_malloc((size_t)n * sizeof(int), "coherence lengths"), *all = NULL, rc = -1;
    const int d = rc_coherence_dim(c);
    if (!ids || !lens) goto done;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (rc_wordpiece_encode(c->wp, texts[i], strlen(texts[i]), c->max_len, &ids[i], &lens[i]))
            goto done;
        total += (size_t)lens[i];
    }
    if (tokens) *tokens = (int64_t)total;
    all = rc_malloc(total * sizeof(int), "coherence ids");
    if (!all) goto done;
    for (int i = 0, t = 0; i < n; t += lens[i], i++) memcpy(all + t, ids[i], (size_t)lens[i] * sizeof(int));
    if (rc_encoder_forward(c->enc, n, all, NULL, lens,
                           c->pool == RC_POOL_CLS ? RC_BERT_POOLER : RC_BERT_CLS, out))
        goto done;
    for (int i = 0; i < n; i++) {
        float *e = out + (size_t)i * d;
        double ss = 0;
        for (int j = 0; j < d; j++) ss += (double)e[j] * e[j];
        float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
        for (int j = 0; j < d; j++) e[j] *= inv;
    }
    rc = 0;
done:
    if (ids)
        for (int i = 0; i < n; i++) free(ids[i]);
    free(ids);
    free(lens);
    free(all);
    return rc;
}

int rc_coherence_embed(const rc_coherence *c, const char *text, float *out) {
    return embed_many(c, 1, &text, out, NULL);
}

int rc_coherence_pairs(const rc_coherence *c, int n, const char *const *a, const char *const *b,
                       double *cos, int64_t *tokens) {
    if (n <= 0) return 0;
    const int d = rc_coherence_dim(c);
    const char **texts = rc_malloc(2 * (size_t)n * sizeof *texts, "coherence texts");
    float *e = rc_malloc(2 * (size_t)n * d * sizeof(float), "coherence embeddings");
    int rc = -1;
    if (!texts || !e) goto done;
    for (int i = 0; i < n; i++) {
        texts[2 * i] = a[i];
        texts[2 * i + 1] = b[i];
    }
    if (embed_many(c, 2 * n, texts, e, tokens)) goto done;
    for (int i = 0; i < n; i++) {
        const float *x = e + (size_t)2 * i * d, *y = x + d;
        double dot = 0, na = 0, nb = 0;
        for (int j = 0; j < d; j++) {
            dot += (double)x[j] * y[j];
            na += (double)x[j] * x[j];
            nb += (double)y[j] * y[j];
        }
        // sklearn's cosine_similarity normalises again (a zero vector stays zero)
        cos[i] = (na > 0 && nb > 0) ? dot / (sqrt(na) * sqrt(nb)) : 0.0;
    }
    rc = 0;
done:
    free(texts);
    free(e);
    return rc;
}

int rc_coherence_pair(const rc_coherence *c, const char *a, const char *b, double *cos) {
    return rc_coherence_pairs(c, 1, &a, &b, cos, NULL);
}
