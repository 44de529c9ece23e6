// Shared pipeline helpers: tokenizer access (ids-only fallback), progress lines, safetensors
// metadata reading, option parsing.
#include "cli/pipe_util.h"
#include "engine/common.h"
#include "tokenizer/tokenizer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

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

void rc_progress_init(rc_progress *p, const char *what, int64_t total) {
    memset(p, 0, sizeof *p);
    p->what = what;
    p->total = total;
    p->t0 = p->last = rc_time_s();
    p->interval = 5.0;
}

void rc_progress_tick(rc_progress *p, int force) {
    double now = rc_time_s();
    if (!force && now - p->last < p->interval) return;
    p->last = now;
    double el = now - p->t0;
    double rate = el > 0 ? (double)p->tokens / el : 0;
    double seq_rate = el > 0 ? (double)p->done / el : 0;
    char eta[32] = "?";
    if (seq_rate > 0 && p->total >= p->done) {
        long s = (long)((double)(p->total - p->done) / seq_rate + 0.5);
        snprintf(eta, sizeof eta, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
    }
    fprintf(stderr, "[%s] %lld/%lld seqs, %lld tok, %.1f tok/s, elapsed %.0fs, ETA %s\n", p->what,
            (long long)p->done, (long long)p->total, (long long)p->tokens, rate, el, eta);
}

char *rc_st_read_metadata(const char *path, const char *key) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        rc_fail("cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    unsigned char lenb[8];
    char *hdr = NULL, *out = NULL;
    cJSON *j = NULL;
    if (fread(lenb, 1, 8, f) != 8) {
        rc_fail("%s: too short for a safetensors file", path);
        goto done;
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | lenb[i];
    if (n == 0 || n > (100u << 20)) {
        rc_fail("%s: bad safetensors header length %llu", path, (unsigned long long)n);
        goto done;
    }
    hdr = rc_malloc(n + 1, "safetensors header");
    if (!hdr) goto done;
    if (fread(hdr, 1, n, f) != n) {
        rc_fail("%s: truncated safetensors header", path);
        goto done;
    }
    hdr[n] = 0;
    j = cJSON_Parse(hdr);
    const cJSON *md = j ? cJSON_GetObjectItemCaseSensitive(j, "__metadata__") : NULL;
    const cJSON *v = md ? cJSON_GetObjectItemCaseSensitive(md, key) : NULL;
    if (!cJSON_IsString(v)) {
        rc_fail("%s: no \"%s\" in the header's __metadata__", path, key);
        goto done;
    }
    size_t l = strlen(v->valuestring);
    out = rc_malloc(l + 1, "metadata value");
    if (out) memcpy(out, v->valuestring, l + 1);
done:
    cJSON_Delete(j);
    free(hdr);
    fclose(f);
    return out;
}

int rc_parse_int(const char *opt, const char *s, long min, long max, long *out) {
    if (!s) return rc_fail("%s expects a value", opt);
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return rc_fail("%s expects an integer in [%ld, %ld], got '%s'", opt, min, max, s);
    *out = v;
    return 0;
}

int rc_parse_id_list(const char *opt, const char *s, int **ids, int *n) {
    int cap = 16, k = 0;
    int *v = rc_malloc(sizeof(int) * (size_t)cap, "token ids");
    if (!v) return -1;
    for (const char *p = s;;) {
        while (*p == ',' || *p == ' ' || *p == '\t' || *p == '\n' || *p == '[' || *p == ']') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < 0 || x > INT_MAX) {
            free(v);
            return rc_fail("%s: '%.20s' is not a token id (give non-negative ids like 1,2,3)", opt, p);
        }
        if (k == cap) {
            int *nv = realloc(v, sizeof(int) * (size_t)(cap *= 2));
            if (!nv) return free(v), rc_fail("out of memory parsing %s", opt);
            v = nv;
        }
        v[k++] = (int)x;
        p = end;
    }
    if (k == 0) return free(v), rc_fail("%s: no token ids given", opt);
    *ids = v;
    *n = k;
    return 0;
}
