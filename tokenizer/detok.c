// Decoding, streaming-safe. Byte-level BPE: the tokens' bytes are concatenated and turned into
// text as Rust's String::from_utf8_lossy does (HF's ByteLevel decoder): one U+FFFD per maximal
// invalid subpart; an incomplete character at the end of what has been fed is held back.
// SentencePiece (HF's Replace("▁"," "), ByteFallback, Fuse, Strip(left=1)): a run of <0xXX>
// tokens is held until it ends and becomes its UTF-8 text, or one U+FFFD per byte when the run is
// not valid UTF-8; the first space of the whole output is dropped.
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "base/utf8.h"
#include "tokenizer/tok_internal.h"
#include "tokenizer/tokenizer.h"

#define REPL "\xef\xbf\xbd"

struct rc_detok {
    const rc_tokenizer *t;
    int skip_special;
    int at_start; // nothing emitted yet (SentencePiece leading-space strip)
    tk_buf pend;  // BPE: bytes of an incomplete character; SPM: the current <0xXX> run
    tk_buf out;   // text returned by the last call
};

rc_detok *rc_detok_new(const rc_tokenizer *t, int skip_special) {
    rc_detok *d = rc_calloc(1, sizeof *d, "stream decoder");
    if (!d) return NULL;
    d->t = t;
    d->skip_special = skip_special;
    d->at_start = 1;
    return d;
}

void rc_detok_free(rc_detok *d) {
    if (!d) return;
    free(d->pend.p);
    free(d->out.p);
    free(d);
}

// BPE: moves the complete (or definitely invalid) part of pend to out; at_end: flush all.
static int bpe_drain(rc_detok *d, int at_end) {
    const uint8_t *p = (const uint8_t *)d->pend.p;
    size_t n = d->pend.n, i = 0;
    while (i < n) {
        int complete, truncated;
        size_t l = rc_utf8_scan(p + i, n - i, &complete, &truncated);
        if (truncated && !at_end) break;
        if (tk_buf_add(&d->out, complete ? (const char *)p + i : REPL, complete ? l : 3)) return -1;
        i += l;
    }
    if (i && n > i) memmove(d->pend.p, d->pend.p + i, n - i);
    d->pend.n = n - i;
    return 0;
}

static int utf8_all_valid(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n;) {
        int complete, truncated;
        size_t l = rc_utf8_scan(p + i, n - i, &complete, &truncated);
        if (!complete) return 0;
        i += l;
    }
    return 1;
}

// SPM: ends the current byte run (ByteFallback: its text, or U+FFFD per byte if invalid).
static int spm_end_run(rc_detok *d) {
    if (!d->pend.n) return 0;
    int rc = 0;
    if (utf8_all_valid((const uint8_t *)d->pend.p, d->pend.n))
        rc = tk_buf_add(&d->out, d->pend.p, d->pend.n);
    else
        for (size_t i = 0; i < d->pend.n && !rc; i++) rc = tk_buf_add(&d->out, REPL, 3);
    d->pend.n = 0;
    return rc;
}

static int spm_append(rc_detok *d, const char *s, size_t n) {
    if (d->at_start && n) {
        d->at_start = 0;
        if (d->t->strip_lead && s[0] == ' ') s++, n--;
    }
    return tk_buf_add(&d->out, s, n);
}

// Appends id's text to d->out (out is not reset here).
static int feed(rc_detok *d, int id) {
    const rc_tokenizer *t = d->t;
    if (id < 0 || id >= t->n_vocab)
        return rc_fail("token id %d is out of range (vocabulary %d)", id, t->n_vocab);
    if (d->skip_special && (t->attr[id] & TK_ATTR_SPECIAL)) return 0;
    if (t->kind == TK_BPE) {
        if (!d->pend.n && (t->attr[id] & TK_ATTR_UTF8)) // nothing held: the token is whole text
            return tk_buf_add(&d->out, t->tb[id], t->tb_len[id]);
        if (tk_buf_add(&d->pend, t->tb[id], t->tb_len[id])) return -1;
        return bpe_drain(d, 0);
    }
    if (t->byteval[id] >= 0) {
        char c = (char)t->byteval[id];
        return tk_buf_add(&d->pend, &c, 1);
    }
    size_t before = d->out.n;
    if (spm_end_run(d)) return -1;
    if (d->out.n > before && d->at_start) { // the run was the first output: strip applies to it
        d->at_start = 0;
        if (t->strip_lead && d->out.p[before] == ' ') {
            memmove(d->out.p + before, d->out.p + before + 1, d->out.n - before - 1);
            d->out.n--;
            d->out.p[d->out.n] = 0;
        }
    }
    return spm_append(d, t->tb[id], t->tb_len[id]);
}

static int finish(rc_detok *d) {
    if (d->t->kind == TK_BPE) return bpe_drain(d, 1);
    size_t before = d->out.n;
    if (spm_end_run(d)) return -1;
    if (d->out.n > before && d->at_start && d->t->strip_lead && d->out.p[before] == ' ') {
        memmove(d->out.p + before, d->out.p + before + 1, d->out.n - before - 1);
        d->out.n--;
        d->out.p[d->out.n] = 0;
    }
    return 0;
}

const char *rc_detok_feed(rc_detok *d, int id, size_t *len) {
    d->out.n = 0;
    if (tk_buf_add(&d->out, "", 0) || feed(d, id)) return NULL;
    *len = d->out.n;
    return d->out.p;
}

const char *rc_detok_flush(rc_detok *d, size_t *len) {
    d->out.n = 0;
    if (tk_buf_add(&d->out, "", 0) || finish(d)) return NULL;
    d->pend.n = 0;
    d->at_start = 1;
    *len = d->out.n;
    return d->out.p;
}

char *rc_tokenizer_decode(const rc_tokenizer *t, const int *ids, int n, int skip_special) {
    size_t len;
    return rc_tokenizer_decode_n(t, ids, n, skip_special, &len);
}

char *rc_tokenizer_decode_n(const rc_tokenizer *t, const int *ids, int n, int skip_special,
                            size_t *len) {
    rc_detok *d = rc_detok_new(t, skip_special);
    if (!d) return NULL;
    int rc = tk_buf_add(&d->out, "", 0);
    for (int i = 0; i < n && !rc; i++) rc = feed(d, ids[i]);
    if (!rc) rc = finish(d);
    char *s = rc ? NULL : d->out.p;
    *len = rc ? 0 : d->out.n;
    if (!rc) d->out.p = NULL;
    rc_detok_free(d);
    return s;
}
