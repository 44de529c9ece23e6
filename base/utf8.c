// UTF-8 repair (base/utf8.h) and the two JSON entry points every writer and reader goes through:
// output that JSON readers accept even when a model emitted invalid bytes, and input whose
// duplicate keys mean what they mean in Python (the last one).
#include "base/utf8.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"

#define REPL "\xef\xbf\xbd"

size_t rc_utf8_scan(const uint8_t *s, size_t n, int *complete, int *truncated) {
    *complete = *truncated = 0;
    uint8_t c = s[0];
    if (c < 0x80) {
        *complete = 1;
        return 1;
    }
    int len;
    uint8_t lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else
        return 1; // not a lead byte
    size_t i = 1;
    for (; i < (size_t)len; i++) {
        if (i >= n) {
            *truncated = 1;
            return i;
        }
        uint8_t l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xbf;
        if (s[i] < l || s[i] > h) return i; // maximal subpart ends before s[i]
    }
    *complete = 1;
    return (size_t)len;
}

int rc_utf8_valid(const char *s, size_t len) {
    const uint8_t *p = (const uint8_t *)s;
    for (size_t i = 0; i < len;) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        int complete, truncated;
        size_t l = rc_utf8_scan(p + i, len - i, &complete, &truncated);
        if (!complete) return 0;
        i += l;
    }
    return 1;
}

char *rc_utf8_sanitize(const char *s, size_t len, size_t *out_len) {
    // each invalid byte becomes at most 3: bound the output before allocating once
    if (len > (SIZE_MAX - 1) / 3) {
        rc_fail("text of %zu bytes is too long to repair", len);
        return NULL;
    }
    char *out = rc_malloc(3 * len + 1, "UTF-8 repair");
    if (!out) return NULL;
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0, o = 0;
    while (i < len) {
        int complete, truncated;
        size_t l = rc_utf8_scan(p + i, len - i, &complete, &truncated);
        memcpy(out + o, complete ? (const char *)p + i : REPL, complete ? l : 3);
        o += complete ? l : 3;
        i += l;
    }
    out[o] = 0;
    if (out_len) *out_len = o;
    return out;
}

char *rc_json_print(const cJSON *j, int formatted) {
    char *s = formatted ? cJSON_Print(j) : cJSON_PrintUnformatted(j);
    if (!s) {
        rc_fail("out of memory printing JSON");
        return NULL;
    }
    // cJSON escapes quotes and control bytes but copies bytes >= 0x80 as they are
    size_t n = strlen(s);
    if (rc_utf8_valid(s, n)) return s;
    char *clean = rc_utf8_sanitize(s, n, NULL);
    free(s);
    return clean;
}

typedef struct {
    cJSON *item;
    size_t pos;
} keyed;

static int cmp_keyed(const void *a, const void *b) {
    const keyed *x = a, *y = b;
    int c = strcmp(x->item->string, y->item->string);
    return c ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

void rc_json_keep_last_keys(cJSON *o) {
    for (cJSON *c = o ? o->child : NULL; c; c = c->next) rc_json_keep_last_keys(c);
    if (!cJSON_IsObject(o)) return;
    size_t n = 0;
    for (cJSON *c = o->child; c; c = c->next) n += c->string != NULL;
    if (n < 2) return;
    keyed *k = malloc(n * sizeof *k); // sorted by (key, position): O(n log n) for big vocabularies
    if (!k) return;
    size_t i = 0;
    for (cJSON *c = o->child; c; c = c->next)
        if (c->string) k[i] = (keyed){c, i}, i++;
    qsort(k, n, sizeof *k, cmp_keyed);
    for (i = 0; i + 1 < n; i++)
        if (!strcmp(k[i].item->string, k[i + 1].item->string))
            cJSON_Delete(cJSON_DetachItemViaPointer(o, k[i].item));
    free(k);
}

cJSON *rc_json_parse(const char *text, const char *where) {
    cJSON *j = cJSON_Parse(text);
    if (!j) {
        const char *e = cJSON_GetErrorPtr();
        rc_fail("%s: invalid JSON near '%.40s'", where, e ? e : "");
        return NULL;
    }
    rc_json_keep_last_keys(j);
    return j;
}
