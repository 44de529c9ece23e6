// Run-directory files of the pipeline: shard naming, responses JSONL (one sequence a line) and
// rewards JSONL reading and writing. See rundir.h for the layout and the crash-safety rule.
#include "eval/rundir.h"

#include "base/common.h"
#include "base/utf8.h"
#include "engine/generate.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <glob.h>
#include <unistd.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rc_run_acts_path(char *out, size_t cap, const char *dir, int k) {
    snprintf(out, cap, "%s/acts-%05d.safetensors", dir, k);
}

void rc_run_resp_path(char *out, size_t cap, const char *dir, int k) {
    snprintf(out, cap, "%s/responses-%05d.jsonl", dir, k);
}

void rc_run_remove_partial_rewards(const char *dir) {
    char pat[4200];
    snprintf(pat, sizeof pat, "%s/rewards.partial*.jsonl", dir);
    glob_t g;
    if (glob(pat, 0, NULL, &g) != 0) return;
    for (size_t i = 0; i < g.gl_pathc; i++) unlink(g.gl_pathv[i]);
    globfree(&g);
}

int rc_run_count_shards(const char *dir) {
    char r[4096];
    int k = 0;
    for (;; k++) {
        rc_run_resp_path(r, sizeof r, dir, k);
        if (!rc_file_exists(r)) break;
    }
    return k;
}

void rc_resp_free(rc_resp *r) {
    free(r->prompt);
    free(r->response);
    free(r->prompt_ids);
    free(r->tokens);
    free(r->reference);
    memset(r, 0, sizeof *r);
}

void rc_resp_set_free(rc_resp_set *s) {
    for (int64_t i = 0; i < s->n; i++) rc_resp_free(&s->r[i]);
    free(s->r);
    memset(s, 0, sizeof *s);
}

static char *dup_json_str(const cJSON *j, const char *name, int required) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    if (!v || cJSON_IsNull(v)) {
        if (required) rc_fail("missing field \"%s\"", name);
        return NULL;
    }
    if (!cJSON_IsString(v)) {
        rc_fail("field \"%s\" is not a string", name);
        return NULL;
    }
    size_t n = strlen(v->valuestring);
    char *s = rc_malloc(n + 1, name);
    if (s) memcpy(s, v->valuestring, n + 1);
    return s;
}

static int json_ids(const cJSON *j, const char *name, int **ids, int *n) {
    *ids = NULL;
    *n = 0;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, name);
    if (!a) return 0;
    if (!cJSON_IsArray(a)) return rc_fail("field \"%s\" is not an array", name);
    int m = cJSON_GetArraySize(a);
    *ids = rc_malloc(sizeof(int) * (size_t)(m ? m : 1), name);
    if (!*ids) return -1;
    const cJSON *v;
    cJSON_ArrayForEach(v, a) {
        if (!cJSON_IsNumber(v)) return rc_fail("field \"%s\" holds a non-number", name);
        (*ids)[(*n)++] = (int)v->valuedouble;
    }
    return 0;
}

int rc_resp_parse(const char *line, rc_resp *r) {
    memset(r, 0, sizeof *r);
    cJSON *j = cJSON_Parse(line);
    if (!j) return rc_fail("malformed JSON");
    int rc = -1;
    const cJSON *idx = cJSON_GetObjectItemCaseSensitive(j, "index");
    if (!cJSON_IsNumber(idx)) {
        rc_fail("missing numeric field \"index\"");
        goto done;
    }
    r->index = (int64_t)idx->valuedouble;
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(j, "item");
    r->item = cJSON_IsNumber(it) ? (int64_t)it->valuedouble : r->index;
    const cJSON *ln = cJSON_GetObjectItemCaseSensitive(j, "line");
    r->line = cJSON_IsNumber(ln) ? (long)ln->valuedouble : 0;
    if (!(r->prompt = dup_json_str(j, "prompt", 1))) goto done;
    if (!(r->response = dup_json_str(j, "response", 1))) goto done;
    r->reference = dup_json_str(j, "reference", 0);
    if (json_ids(j, "prompt_ids", &r->prompt_ids, &r->n_prompt_ids)) goto done;
    if (json_ids(j, "tokens", &r->tokens, &r->n_tokens)) goto done;
    const cJSON *nt = cJSON_GetObjectItemCaseSensitive(j, "n_tokens");
    if (cJSON_IsNumber(nt) && !r->tokens) r->n_tokens = (int)nt->valuedouble;
    const cJSON *fin = cJSON_GetObjectItemCaseSensitive(j, "finish");
    r->finish = cJSON_IsString(fin) && !strcmp(fin->valuestring, "eos") ? RC_FINISH_EOS : RC_FINISH_LENGTH;
    rc = 0;
done:
    cJSON_Delete(j);
    if (rc) rc_resp_free(r);
    return rc;
}

static cJSON *ids_array(const int *ids, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
    return a;
}

char *rc_resp_to_json(const rc_resp *r) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    cJSON_AddNumberToObject(j, "index", (double)r->index);
    cJSON_AddNumberToObject(j, "item", (double)r->item);
    cJSON_AddNumberToObject(j, "line", (double)r->line);
    cJSON_AddStringToObject(j, "prompt", r->prompt ? r->prompt : "");
    cJSON_AddStringToObject(j, "response", r->response ? r->response : "");
    cJSON_AddNumberToObject(j, "n_tokens", r->n_tokens);
    cJSON_AddStringToObject(j, "finish", r->finish == RC_FINISH_EOS ? "eos" : "length");
    if (r->reference) cJSON_AddStringToObject(j, "reference", r->reference);
    cJSON_AddItemToObject(j, "prompt_ids", ids_array(r->prompt_ids, r->n_prompt_ids));
    cJSON_AddItemToObject(j, "tokens", ids_array(r->tokens, r->n_tokens));
    char *s = rc_json_print(j, 0);
    cJSON_Delete(j);
    if (!s) rc_fail("out of memory serialising a response");
    return s;
}

// Appends the lines of one JSONL file to s (growing s->r). 0 / -1.
static int read_resp_file(const char *path, rc_resp_set *s, int64_t *cap) {
    size_t len;
    char *buf = rc_read_file(path, &len);
    if (!buf) return -1;
    long lineno = 0;
    char *p = buf;
    int rc = 0;
    while (*p) {
        char *e = strchr(p, '\n');
        if (e) *e = 0;
        lineno++;
        if (*p) {
            if (s->n == *cap) {
                int64_t nc = *cap ? *cap * 2 : 1024;
                rc_resp *nr = realloc(s->r, sizeof *nr * (size_t)nc);
                if (!nr) {
                    rc = rc_fail("out of memory reading %s", path);
                    break;
                }
                s->r = nr;
                *cap = nc;
            }
            if (rc_resp_parse(p, &s->r[s->n])) {
                rc = rc_fail_ctx("%s:%ld", path, lineno);
                break;
            }
            if (s->r[s->n].index != s->n) {
                rc = rc_fail("%s:%ld: index %lld, expected %lld (responses must be in index order "
                             "with none missing)",
                             path, lineno, (long long)s->r[s->n].index, (long long)s->n);
                rc_resp_free(&s->r[s->n]);
                break;
            }
            s->n++;
        }
        if (!e) break;
        p = e + 1;
    }
    free(buf);
    return rc;
}

int rc_run_read_responses(const char *dir, rc_resp_set *s) {
    memset(s, 0, sizeof *s);
    int64_t cap = 0;
    int k = rc_run_count_shards(dir);
    char path[4096];
    if (k == 0) {
        if (rc_path_join(path, sizeof path, dir, "responses.jsonl")) return rc_fail("path too long");
        if (!rc_file_exists(path))
            return rc_fail("%s holds no responses (no responses-00000.jsonl and no responses.jsonl)"
                           ": run `recontrol extract --out %s` first",
                           dir, dir);
        if (read_resp_file(path, s, &cap)) {
            rc_resp_set_free(s);
            return -1;
        }
        return 0;
    }
    for (int i = 0; i < k; i++) {
        rc_run_resp_path(path, sizeof path, dir, i);
        if (read_resp_file(path, s, &cap)) {
            rc_resp_set_free(s);
            return -1;
        }
    }
    return 0;
}

int rc_run_read_rewards(const char *path, int64_t n, double *reward, int64_t *n_found) {
    for (int64_t i = 0; i < n; i++) reward[i] = NAN;
    *n_found = 0;
    size_t len;
    char *buf = rc_read_file(path, &len);
    if (!buf) return -1;
    long lineno = 0;
    char *p = buf;
    int rc = 0;
    while (*p) {
        char *e = strchr(p, '\n');
        if (e) *e = 0;
        lineno++;
        if (*p) {
            cJSON *j = cJSON_Parse(p);
            const cJSON *ix = j ? cJSON_GetObjectItemCaseSensitive(j, "index") : NULL;
            const cJSON *rw = j ? cJSON_GetObjectItemCaseSensitive(j, "reward") : NULL;
            if (!j || !cJSON_IsNumber(ix) || !cJSON_IsNumber(rw)) {
                cJSON_Delete(j);
                rc = rc_fail("%s:%ld: expected {\"index\": i, \"reward\": r}", path, lineno);
                break;
            }
            int64_t i = (int64_t)ix->valuedouble;
            double r = rw->valuedouble;
            cJSON_Delete(j);
            if (i < 0 || i >= n) {
                rc = rc_fail("%s:%ld: index %lld outside the run's %lld responses", path, lineno,
                             (long long)i, (long long)n);
                break;
            }
            if (isnan(reward[i])) (*n_found)++;
            reward[i] = r;
        }
        if (!e) break;
        p = e + 1;
    }
    free(buf);
    return rc;
}

size_t rc_response_cut_len(const char *response) {
    const char *h = strstr(response, "Human:"), *u = strstr(response, "User:");
    const char *cut = h;
    if (u && (!cut || u < cut)) cut = u;
    size_t n = cut ? (size_t)(cut - response) : strlen(response);
    if (cut)
        while (n && isspace((unsigned char)response[n - 1])) n--;
    return n;
}
