// Golden tokenizer tests: ids, decodes and round-trips of 2,495 strings against HF transformers /
// tokenizers (fixtures from tests/scripts/make_tokenizer_fixtures.py) for a LLaMA-style
// SentencePiece model (legacy and non-legacy; also against the sentencepiece package), the
// SmolLM2 byte-level BPE, a Llama-3-style byte-level BPE, and tokenizer-only GGUFs of the
// SentencePiece and Llama-3-style models; streaming decode equals whole decode.
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "base/common.h"
#include "tokenizer/tok_internal.h"
#include "tokenizer/tokenizer.h"
#include "golden_jsonl.h"

#define TOK RC_FIXTURES "/tok"

static void fmt_ids(char *buf, size_t cap, const int *ids, int n) {
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; i < n && o + 16 < cap; i++) o += (size_t)snprintf(buf + o, cap - o, "%d ", ids[i]);
}

// Checks every corpus string: ids == HF ids, decode == HF decode (with and without special
// tokens), streaming decode == whole decode, and decode(encode(x)) == x where HF round-trips.
static void check_golden(const char *model, const char *golden) {
    rc_tokenizer *t = rc_tokenizer_load(model);
    cr_assert(t, "load %s: %s", model, rc_last_error());
    int nc, ng;
    cJSON **corpus = read_jsonl(TOK "/corpus.jsonl", &nc);
    cJSON **gold = read_jsonl(golden, &ng);
    cr_assert_eq(nc, ng, "%s has %d lines, corpus %d", golden, ng, nc);
    cr_assert_geq(nc, 2000);
    int bad_ids = 0, bad_dec = 0, bad_rt = 0, n_rt = 0;
    for (int i = 0; i < nc; i++) {
        str_t x = corpus_item(corpus[i]);
        const cJSON *g = gold[i], *it;
        int *ids, n;
        cr_assert_eq(rc_tokenizer_encode(t, x.s, x.n, 1, &ids, &n), 0, "%s", rc_last_error());
        const cJSON *gids = cJSON_GetObjectItem(g, "ids");
        int ok = cJSON_GetArraySize(gids) == n, k = 0;
        cJSON_ArrayForEach(it, gids) {
            if (k < n && ids[k] != it->valueint) ok = 0;
            k++;
        }
        if (!ok) {
            char a[2048], b[2048];
            fmt_ids(a, sizeof a, ids, n);
            char *gs = cJSON_PrintUnformatted(gids);
            snprintf(b, sizeof b, "%s", gs);
            free(gs);
            if (bad_ids < 5)
                cr_log_error("%s: string %d '%.60s'\n  ours %s\n  HF   %s", golden, i, x.s, a, b);
            bad_ids++;
        }
        // decode HF's ids (so that a decode bug is seen even where encode differs)
        int *hid = malloc(sizeof(int) * (size_t)(cJSON_GetArraySize(gids) + 1)), hn = 0;
        cJSON_ArrayForEach(it, gids) hid[hn++] = it->valueint;
        for (int skip = 0; skip < 2; skip++) {
            char *d = rc_tokenizer_decode(t, hid, hn, skip);
            cr_assert(d, "%s", rc_last_error());
            const char *want = cJSON_GetStringValue(cJSON_GetObjectItem(g, skip ? "dec_skip" : "dec"));
            if (strcmp(d, want)) {
                if (bad_dec < 5) cr_log_error("%s: string %d decode(skip=%d) '%s' != HF '%s'", golden, i, skip, d, want);
                bad_dec++;
            }
            // streaming
            rc_detok *st = rc_detok_new(t, skip);
            tk_buf acc = {0};
            tk_buf_add(&acc, "", 0);
            size_t l;
            for (int j = 0; j < hn; j++) {
                const char *p = rc_detok_feed(st, hid[j], &l);
                cr_assert(p);
                tk_buf_add(&acc, p, l);
            }
            const char *p = rc_detok_flush(st, &l);
            tk_buf_add(&acc, p, l);
            cr_assert_str_eq(acc.p, d, "%s: string %d: streaming decode differs", golden, i);
            free(acc.p);
            rc_detok_free(st);
            free(d);
        }
        if (cJSON_IsTrue(cJSON_GetObjectItem(g, "rt"))) {
            n_rt++;
            int *ids2, n2;
            rc_tokenizer_encode(t, x.s, x.n, 0, &ids2, &n2);
            size_t dn, cn;
            char *d = rc_tokenizer_decode_n(t, ids2, n2, 0, &dn);
            char *clean = rc_utf8_sanitize(x.s, x.n, &cn); // HF's input is the replaced text
            if (dn != cn || memcmp(d, clean, cn)) {
                if (bad_rt < 5) cr_log_error("%s: string %d does not round-trip: '%s'", golden, i, d);
                bad_rt++;
            }
            free(d);
            free(clean);
            free(ids2);
        }
        free(hid);
        free(ids);
        free(x.s);
    }
    cr_log_info("%s: %d strings, %d id mismatches, %d decode mismatches, %d/%d round-trip failures",
                golden, nc, bad_ids, bad_dec, bad_rt, n_rt);
    cr_expect_eq(bad_ids, 0, "%s: %d of %d strings encode differently from HF", golden, bad_ids, nc);
    cr_expect_eq(bad_dec, 0, "%s: %d decodes differ from HF", golden, bad_dec);
    cr_expect_eq(bad_rt, 0, "%s: %d round-trip failures", golden, bad_rt);
    free_rows(corpus, nc);
    free_rows(gold, ng);
    rc_tokenizer_free(t);
}

Test(tokenizer, spm_golden) { check_golden(TOK "/spm", TOK "/spm_golden.jsonl.gz"); }
Test(tokenizer, spm_legacy_golden) { check_golden(TOK "/spm_legacy", TOK "/spm_legacy_golden.jsonl.gz"); }
Test(tokenizer, smol_json_golden) { check_golden(TOK "/smol", TOK "/smol_golden.jsonl.gz"); }
Test(tokenizer, llama3_style_golden) { check_golden(TOK "/l3", TOK "/l3_golden.jsonl.gz"); }
// Tokenizer-only GGUFs made from the fixtures above; goldens from transformers' GGUF conversion.
Test(tokenizer, gguf_spm_golden) { check_golden(TOK "/gguf/spm.gguf", TOK "/gguf_spm_golden.jsonl.gz"); }
Test(tokenizer, gguf_llama_bpe_golden) { check_golden(TOK "/gguf/l3.gguf", TOK "/gguf_l3_golden.jsonl.gz"); }

// Second oracle for the SentencePiece model: the sentencepiece package's own encode/decode, on
// the 2,235 strings where LlamaTokenizer's rule and SentencePiece's dummy prefix coincide.
Test(tokenizer, spm_matches_sentencepiece_package) {
    rc_tokenizer *t = rc_tokenizer_load(TOK "/spm");
    cr_assert(t, "%s", rc_last_error());
    int nc, ng, bad = 0, bad_dec = 0;
    cJSON **corpus = read_jsonl(TOK "/corpus.jsonl", &nc);
    cJSON **gold = read_jsonl(TOK "/spm_py_golden.jsonl.gz", &ng);
    cr_assert_geq(ng, 2000);
    for (int r = 0; r < ng; r++) {
        int i = cJSON_GetObjectItem(gold[r], "i")->valueint;
        str_t x = corpus_item(corpus[i]);
        int *ids, n, k = 0;
        cr_assert_eq(rc_tokenizer_encode(t, x.s, x.n, 0, &ids, &n), 0);
        const cJSON *g = cJSON_GetObjectItem(gold[r], "ids"), *it;
        int ok = n == cJSON_GetArraySize(g);
        cJSON_ArrayForEach(it, g) ok = ok && ids[k++] == it->valueint;
        if (!ok && bad++ < 5) cr_log_error("string %d '%.60s' differs from sentencepiece", i, x.s);
        char *d = rc_tokenizer_decode(t, ids, n, 1);
        if (strcmp(d, cJSON_GetObjectItem(gold[r], "dec")->valuestring) && bad_dec++ < 5)
            cr_log_error("string %d: decode '%s' differs from sentencepiece's", i, d);
        free(d);
        free(ids);
        free(x.s);
    }
    cr_expect_eq(bad, 0, "%d of %d strings encode differently from sentencepiece", bad, ng);
    cr_expect_eq(bad_dec, 0, "%d decodes differ from sentencepiece's", bad_dec);
    free_rows(corpus, nc);
    free_rows(gold, ng);
    rc_tokenizer_free(t);
}
