// JSONL prompt datasets (HH-RLHF, SHP, plain prompts, token ids), gzip or plain, read line by
// line with zlib (gzopen reads uncompressed files transparently). Lines are parsed with cJSON;
// every bad line is reported with file:line and skipped.
#include "pipeline/dataset.h"
#include "base/common.h"
#include "base/lines.h"
#include "base/utf8.h"
#include "tokenizer/chat.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int rc_ds_format_parse(const char *s, rc_ds_format *fmt) {
    if (!s) return rc_fail("missing dataset format (hh, shp, plain or ids)");
    if (!strcmp(s, "hh") || !strcmp(s, "hh-rlhf")) *fmt = RC_DS_HH;
    else if (!strcmp(s, "shp")) *fmt = RC_DS_SHP;
    else if (!strcmp(s, "plain")) *fmt = RC_DS_PLAIN;
    else if (!strcmp(s, "ids")) *fmt = RC_DS_IDS;
    else return rc_fail("unknown dataset format '%s' (expected hh, shp, plain or ids)", s);
    return 0;
}

const char *rc_ds_format_name(rc_ds_format fmt) {
    switch (fmt) {
    case RC_DS_HH: return "hh";
    case RC_DS_SHP: return "shp";
    case RC_DS_PLAIN: return "plain";
    case RC_DS_IDS: return "ids";
    }
    return "?";
}

static char *dup_str(const char *s, size_t n) {
    char *r = rc_malloc(n + 1, "string");
    if (!r) return NULL;
    memcpy(r, s, n);
    r[n] = 0;
    return r;
}

// The prompt texts come from tokenizer/chat.h (one definition of the reference's preparation);
// here only the dataset's own answer is extracted as the reference reply.
char *rc_prep_hh(const char *chosen, char **reply) { return rc_prep_hh_turn(chosen, NULL, reply); }

char *rc_prep_hh_turn(const char *chosen, const char *turn, char **reply) {
    if (reply) *reply = NULL;
    char *prompt = rc_hh_prompt_turn(chosen, turn);
    if (!prompt || !reply) return prompt;
    const char *tag = "Assistant:", *last = NULL;
    for (const char *p = strstr(chosen, tag); p; p = strstr(p + 1, tag)) last = p;
    const char *r = last ? last + strlen(tag) : "";
    while (*r && isspace((unsigned char)*r)) r++;
    size_t n = strlen(r);
    while (n && isspace((unsigned char)r[n - 1])) n--;
    *reply = dup_str(r, n);
    if (!*reply) {
        free(prompt);
        return NULL;
    }
    return prompt;
}

char *rc_prep_shp(const char *history) { return rc_shp_prompt(history); }

static int all_space(const char *s) {
    for (; *s; s++)
        if (!isspace((unsigned char)*s)) return 0;
    return 1;
}

// Fills it from one parsed line; returns 0, or 1 with why[] set when the line is skipped,
// -1 on out of memory.
static int item_from_json(const cJSON *j, rc_ds_format fmt, const char *turn, rc_ds_item *it,
                          char *why, size_t nwhy) {
    memset(it, 0, sizeof *it);
    if (!cJSON_IsObject(j)) {
        snprintf(why, nwhy, "not a JSON object");
        return 1;
    }
    if (fmt == RC_DS_IDS) {
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(j, "ids");
        if (!ids) {
            snprintf(why, nwhy, "missing field \"ids\"");
            return 1;
        }
        if (!cJSON_IsArray(ids)) {
            snprintf(why, nwhy, "field \"ids\" is not an array");
            return 1;
        }
        int n = cJSON_GetArraySize(ids);
        if (n == 0) {
            snprintf(why, nwhy, "empty prompt (\"ids\" is [])");
            return 1;
        }
        it->ids = rc_malloc(sizeof(int) * (size_t)n, "token ids");
        if (!it->ids) return -1;
        int k = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, ids) {
            if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 2147483647.0 ||
                v->valuedouble != (double)(int)v->valuedouble) {
                snprintf(why, nwhy, "\"ids\"[%d] is not a non-negative integer", k);
                free(it->ids);
                it->ids = NULL;
                return 1;
            }
            it->ids[k++] = (int)v->valuedouble;
        }
        it->n_ids = n;
        return 0;
    }
    const char *field = fmt == RC_DS_HH ? "chosen" : fmt == RC_DS_SHP ? "history" : "prompt";
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, field);
    if (!f) {
        snprintf(why, nwhy, "missing field \"%s\"", field);
        return 1;
    }
    if (!cJSON_IsString(f)) {
        snprintf(why, nwhy, "field \"%s\" is not a string", field);
        return 1;
    }
    const char *text = f->valuestring;
    if (all_space(text)) {
        snprintf(why, nwhy, "empty prompt (field \"%s\" is blank)", field);
        return 1;
    }
    if (fmt == RC_DS_HH) {
        it->prompt = rc_prep_hh_turn(text, turn, &it->reference);
        if (!it->prompt) {
            snprintf(why, nwhy, "field \"chosen\": %s", rc_last_error());
            return 1;
        }
    } else if (fmt == RC_DS_SHP) {
        it->prompt = rc_shp_prompt_turn(text, turn);
        if (!it->prompt) return -1;
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "preferred");
        if (cJSON_IsString(p)) {
            it->reference = dup_str(p->valuestring, strlen(p->valuestring));
            if (!it->reference) return -1;
        }
    } else {
        it->prompt = dup_str(text, strlen(text));
        if (!it->prompt) return -1;
    }
    return 0;
}

int rc_dataset_load(const char *path, rc_ds_format fmt, long limit, rc_dataset *ds, FILE *report) {
    return rc_dataset_load_turn(path, fmt, limit, NULL, ds, report);
}

int rc_dataset_load_turn(const char *path, rc_ds_format fmt, long limit, const char *turn,
                         rc_dataset *ds, FILE *report) {
    memset(ds, 0, sizeof *ds);
    rc_lines *in = rc_lines_open(path);
    if (!in) return rc_fail_ctx("dataset");
    const char *line;
    size_t len, items_cap = 0;
    long lineno = 0;
    int rc = 0, got;
    while ((got = rc_lines_next(in, &line, &len)) == 1) {
        lineno++;
        long nul = rc_find_nul(line, len);
        if (nul < 0 && all_space(line)) continue;
        if (limit > 0 && ds->n >= limit) break;
        ds->n_lines++;
        char why[256];
        int r;
        rc_ds_item it;
        const char *end = NULL;
        cJSON *j = NULL;
        long esc = nul < 0 ? rc_json_find_nul_escape(line, len) : -1;
        if (nul >= 0) { // JSON cannot hold a raw NUL; cJSON would stop reading there
            snprintf(why, sizeof why, "a NUL byte at byte %ld", nul + 1);
            r = 1;
        } else if (esc >= 0) { // a string cut at the NUL would be a different prompt
            snprintf(why, sizeof why, "a \\u0000 escape (NUL character) at byte %ld, which a "
                     "prompt cannot hold", esc + 1);
            r = 1;
        } else if (!(j = cJSON_ParseWithOpts(line, &end, 0))) {
            size_t at = 0;
            const char *ep = cJSON_GetErrorPtr();
            if (ep && ep >= line && ep <= line + len) at = (size_t)(ep - line);
            snprintf(why, sizeof why, "malformed JSON near byte %zu", at + 1);
            r = 1;
        } else {
            rc_json_keep_last_keys(j);
            while (end && *end && isspace((unsigned char)*end)) end++;
            if (end && *end) {
                snprintf(why, sizeof why, "trailing data after the JSON value at byte %zu",
                         (size_t)(end - line) + 1);
                r = 1;
            } else {
                r = item_from_json(j, fmt, turn, &it, why, sizeof why);
            }
            cJSON_Delete(j);
        }
        if (r < 0) {
            rc = -1;
            break;
        }
        if (r > 0) {
            ds->n_bad++;
            if (report) fprintf(report, "%s:%ld: %s; line skipped\n", path, lineno, why);
            continue;
        }
        it.line = lineno;
        if ((size_t)ds->n == items_cap) {
            size_t nc = items_cap ? items_cap * 2 : 1024;
            rc_ds_item *ni = realloc(ds->items, nc * sizeof *ni);
            if (!ni) {
                free(it.prompt);
                free(it.reference);
                free(it.ids);
                rc = rc_fail("out of memory reading %s", path);
                break;
            }
            ds->items = ni;
            items_cap = nc;
        }
        ds->items[ds->n++] = it;
    }
    if (got < 0 && rc == 0) rc = rc_fail_ctx("after line %ld", lineno);
    rc_lines_close(in);
    if (rc != 0) rc_dataset_free(ds);
    return rc;
}

int rc_dataset_check_ids(rc_dataset *ds, const char *path, int vocab_size, FILE *report) {
    int k = 0;
    for (int i = 0; i < ds->n; i++) {
        rc_ds_item *it = &ds->items[i];
        int bad = -1;
        for (int t = 0; t < it->n_ids && bad < 0; t++)
            if (it->ids[t] >= vocab_size) bad = t;
        if (bad < 0) {
            ds->items[k++] = *it;
            continue;
        }
        if (report)
            fprintf(report, "%s:%ld: \"ids\"[%d] = %d is outside the model's vocabulary (%d "
                            "tokens); line skipped\n",
                    path, it->line, bad, it->ids[bad], vocab_size);
        free(it->prompt);
        free(it->reference);
        free(it->ids);
        ds->n_bad++;
    }
    int dropped = ds->n - k;
    ds->n = k;
    return dropped;
}

void rc_dataset_free(rc_dataset *ds) {
    for (int i = 0; i < ds->n; i++) {
        free(ds->items[i].prompt);
        free(ds->items[i].reference);
        free(ds->items[i].ids);
    }
    free(ds->items);
    memset(ds, 0, sizeof *ds);
}
