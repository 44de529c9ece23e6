// Word tokens and diversity against nltk (fixtures from tests/scripts/make_nltk_fixtures.py):
// the Treebank word rules must match nltk.word_tokenize(preserve_line=True) exactly on every
// text; with the sentence split, the Punkt approximation must agree on nearly every text, and
// diversity must agree to 1e-12 wherever the tokens agree.
#include "base/common.h"
#include "eval/diversity.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int same_tokens(const rc_words *w, const cJSON *arr) {
    if (cJSON_GetArraySize(arr) != w->n) return 0;
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, arr) {
        if (strcmp(v->valuestring, w->tok[i]) != 0) return 0;
        i++;
    }
    return 1;
}

static void print_diff(const char *what, const char *text, const rc_words *w, const cJSON *arr) {
    char *exp = cJSON_PrintUnformatted(arr);
    fprintf(stderr, "%s mismatch for %s\n  nltk: %s\n  ours: [", what, text, exp);
    for (int i = 0; i < w->n; i++) fprintf(stderr, "%s\"%s\"", i ? ", " : "", w->tok[i]);
    fprintf(stderr, "]\n");
    free(exp);
}

// Compares every text of a fixture file; returns the counts.
static void check_file(const char *path, int *n_out, int *bad_line_out, int *bad_sent_out, int *bad_div_out) {
    size_t len;
    char *buf = rc_read_file(path, &len);
    cr_assert_not_null(buf, "%s", rc_last_error());
    int n = 0, bad_line = 0, bad_sent = 0, bad_div = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        cr_assert_not_null(j);
        const char *text = cJSON_GetObjectItem(j, "text")->valuestring;
        const cJSON *tok = cJSON_GetObjectItem(j, "tokens");
        const cJSON *tok_line = cJSON_GetObjectItem(j, "tokens_line");
        double div = cJSON_GetObjectItem(j, "diversity")->valuedouble;

        rc_words w = {0};
        cr_assert_eq(rc_word_tokenize_sentence(text, strlen(text), &w), 0, "%s", rc_last_error());
        if (!same_tokens(&w, tok_line)) {
            bad_line++;
            print_diff("word rules", text, &w, tok_line);
        }
        rc_words_free(&w);

        cr_assert_eq(rc_word_tokenize(text, &w), 0, "%s", rc_last_error());
        if (!same_tokens(&w, tok)) {
            bad_sent++;
            print_diff("sentence split", text, &w, tok);
        } else if (fabs(rc_diversity_tokens(&w) - div) > 1e-12) {
            bad_div++;
            fprintf(stderr, "diversity %.15f vs nltk %.15f for %s\n", rc_diversity_tokens(&w), div, text);
        }
        rc_words_free(&w);
        cJSON_Delete(j);
        n++;
    }
    free(buf);
    fprintf(stderr, "%s: %d texts; word-rule mismatches %d; with sentence split %d; "
                    "diversity mismatches %d\n", path, n, bad_line, bad_sent, bad_div);
    *n_out = n;
    *bad_line_out = bad_line;
    *bad_sent_out = bad_sent;
    *bad_div_out = bad_div;
}

Test(diversity, nltk_golden_tokens) {
    int n, bad_line, bad_sent, bad_div;
    check_file(RC_FIXTURES "/nltk/word_tokens.jsonl", &n, &bad_line, &bad_sent, &bad_div);
    cr_assert_geq(n, 300);
    cr_expect_eq(bad_line, 0, "word rules must match nltk exactly");
    cr_expect_eq(bad_div, 0);
    // Punkt's trained tables are not shipped; the approximation must agree on >= 97% of texts.
    cr_expect_leq(bad_sent * 100, n * 3, "%d of %d texts differ after the sentence split", bad_sent, n);
    // Extra (uncommitted) golden files in the same format, e.g. made from real model outputs:
    // RC_NLTK_EXTRA=path reports their agreement too.
    const char *extra = getenv("RC_NLTK_EXTRA");
    if (extra && *extra) check_file(extra, &n, &bad_line, &bad_sent, &bad_div);
}

Test(diversity, formula) {
    // "a b a b": bigrams ab ba ab -> unique 2 of 3 -> rep2 = 100*(1-2/4) = 50
    rc_words w = {0};
    cr_assert_eq(rc_word_tokenize_sentence("a b a b", 7, &w), 0);
    cr_assert_eq(w.n, 4);
    cr_assert_float_eq(rc_rep_n(&w, 2), 50.0, 1e-12);
    cr_assert_float_eq(rc_rep_n(&w, 3), 100.0 * (1 - 2.0 / 3.0), 1e-12);
    cr_assert_float_eq(rc_rep_n(&w, 4), 100.0 * (1 - 1.0 / 2.0), 1e-12);
    cr_assert_float_eq(rc_diversity_tokens(&w), 0.5 * (2.0 / 3.0) * 0.5, 1e-12);
    rc_words_free(&w);
    // fewer than 2 tokens: no bigram -> rep = 100 -> diversity 0 (as the reference formula)
    cr_assert_float_eq(rc_diversity("one"), 0.0, 1e-12);
    cr_assert_float_eq(rc_diversity(""), 0.0, 1e-12);
}

Test(diversity, invalid_utf8_does_not_fail) {
    const char bad[] = "caf\xc3 ok. \xff\xfe end";
    rc_words w = {0};
    cr_assert_eq(rc_word_tokenize(bad, &w), 0, "%s", rc_last_error());
    cr_assert_gt(w.n, 2);
    rc_words_free(&w);
}
