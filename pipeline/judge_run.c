// The judge stage: pairs of answers (run vs run or vs the dataset's answer), the reference's
// draws (Python random after random.seed), chat-completions requests through libcurl or recorded
// replies, an append-only resumable record of every reply, and the win / tie / lose summary.
#include "pipeline/judge_run.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/common.h"
#include "base/progress.h"
#include "eval/judge.h"
#include "eval/pyrandom.h"
#include "eval/rundir.h"

void rc_judge_opts_default(rc_judge_opts *o) {
    memset(o, 0, sizeof *o);
    o->retries = 5;
    o->timeout_s = 300;
    o->max_tokens = 2048;
}

// ---- the chat-completions client ----------------------------------------------------------------

typedef struct {
    char *p;
    size_t n;
} membuf;

static size_t on_body(char *ptr, size_t sz, size_t nm, void *ud) {
    membuf *b = ud;
    size_t k = sz * nm;
    if (b->n + k > (64u << 20)) return 0; // a reply over 64 MiB is not a judge reply
    char *np = realloc(b->p, b->n + k + 1);
    if (!np) return 0;
    memcpy(np + b->n, ptr, k);
    b->p = np;
    b->n += k;
    b->p[b->n] = 0;
    return k;
}

static void sleep_s(double s) {
    if (s <= 0) return;
    struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    nanosleep(&ts, NULL);
}

typedef struct {
    CURL *curl;
    char url[2048];
    double last_request;
} http_judge;

static int http_open(http_judge *h, const rc_judge_opts *o) {
    memset(h, 0, sizeof *h);
    if (curl_global_init(CURL_GLOBAL_DEFAULT)) return rc_fail("libcurl could not be initialised");
    h->curl = curl_easy_init();
    if (!h->curl) return rc_fail("libcurl could not create a handle");
    size_t l = strlen(o->url);
    const char *suffix = "/chat/completions";
    int full = l >= strlen(suffix) && !strcmp(o->url + l - strlen(suffix), suffix);
    int n = snprintf(h->url, sizeof h->url, "%.*s%s", (int)(l && o->url[l - 1] == '/' ? l - 1 : l), o->url,
                     full ? "" : suffix);
    if (n >= (int)sizeof h->url) return rc_fail("judge URL too long");
    return 0;
}

static void http_close(http_judge *h) {
    if (h->curl) curl_easy_cleanup(h->curl);
    h->curl = NULL;
}

// One chat completion; retries network errors, 429 and 5xx with exponential backoff.
static int http_chat(http_judge *h, const rc_judge_opts *o, const char *user, char **reply) {
    *reply = NULL;
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "model", o->model ? o->model : "");
    cJSON *msgs = cJSON_AddArrayToObject(req, "messages");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "system");
    cJSON_AddStringToObject(m, "content", rc_judge_system_prompt());
    cJSON_AddItemToArray(msgs, m);
    m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "user");
    cJSON_AddStringToObject(m, "content", user);
    cJSON_AddItemToArray(msgs, m);
    cJSON_AddNumberToObject(req, "temperature", 0);
    cJSON_AddNumberToObject(req, "max_tokens", o->max_tokens);
    char *body = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    if (!body) return rc_fail("out of memory building the judge request");
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    char auth[1024];
    if (o->api_key && *o->api_key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", o->api_key);
        hdr = curl_slist_append(hdr, auth);
    }
    int rc = -1;
    char why[2800] = "";
    for (int attempt = 0; attempt <= o->retries; attempt++) {
        if (attempt) {
            double wait = fmin(60.0, 1.0 * pow(2.0, attempt - 1));
            fprintf(stderr, "[judge] %s; retry %d/%d in %.0f s\n", why, attempt, o->retries, wait);
            sleep_s(wait);
        }
        if (o->rpm > 0) { // rate limit: at most rpm requests per minute
            double gap = 60.0 / o->rpm - (rc_time_s() - h->last_request);
            if (h->last_request > 0) sleep_s(gap);
        }
        h->last_request = rc_time_s();
        membuf b = {0};
        CURL *c = h->curl;
        curl_easy_reset(c);
        curl_easy_setopt(c, CURLOPT_URL, h->url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(o->timeout_s * 1000));
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        CURLcode cr = curl_easy_perform(c);
        long code = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        if (cr != CURLE_OK) {
            snprintf(why, sizeof why, "%s: %s", h->url, curl_easy_strerror(cr));
            free(b.p);
            continue;
        }
        if (code == 429 || code >= 500) {
            snprintf(why, sizeof why, "%s answered HTTP %ld: %.200s", h->url, code, b.p ? b.p : "");
            free(b.p);
            continue;
        }
        if (code != 200) {
            rc_fail("%s answered HTTP %ld: %.300s", h->url, code, b.p ? b.p : "");
            free(b.p);
            goto out;
        }
        cJSON *j = b.p ? cJSON_Parse(b.p) : NULL;
        const cJSON *ch = j ? cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0) : NULL;
        const cJSON *msg = ch ? cJSON_GetObjectItemCaseSensitive(ch, "message") : NULL;
        const cJSON *content = msg ? cJSON_GetObjectItemCaseSensitive(msg, "content") : NULL;
        if (cJSON_IsString(content)) {
            *reply = strdup(content->valuestring);
            rc = *reply ? 0 : rc_fail("out of memory");
        } else {
            rc_fail("%s: the reply has no choices[0].message.content: %.300s", h->url, b.p ? b.p : "");
        }
        cJSON_Delete(j);
        free(b.p);
        goto out;
    }
    rc_fail("%s (after %d retries)", why, o->retries);
out:
    curl_slist_free_all(hdr);
    free(body);
    return rc;
}

// ---- recorded replies (the replay judge) ---------------------------------------------------------

typedef struct {
    char **user, **reply;
    int n;
} replay_set;

static int read_jsonl_objs(const char *path, cJSON ***rows, int *n) {
    *rows = NULL;
    *n = 0;
    size_t len;
    char *t = rc_read_file(path, &len);
    if (!t) return -1;
    int cap = 0, line = 0;
    for (char *p = t; *p;) {
        char *e = strchr(p, '\n');
        if (e) *e = 0;
        line++;
        if (*p) {
            cJSON *j = cJSON_Parse(p);
            if (!j) {
                free(t);
                return rc_fail("%s:%d: not a JSON object (a partial last line? delete it to resume)", path, line);
            }
            if (*n == cap) {
                cap = cap ? cap * 2 : 64;
                cJSON **nr = realloc(*rows, sizeof *nr * (size_t)cap);
                if (!nr) {
                    cJSON_Delete(j);
                    free(t);
                    return rc_fail("out of memory reading %s", path);
                }
                *rows = nr;
            }
            (*rows)[(*n)++] = j;
        }
        if (!e) break;
        p = e + 1;
    }
    free(t);
    return 0;
}

static void free_rows(cJSON **rows, int n) {
    for (int i = 0; i < n; i++) cJSON_Delete(rows[i]);
    free(rows);
}

static const char *row_str(const cJSON *r, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

// ---- the run -------------------------------------------------------------------------------------

static int append_line(int fd, const char *s) {
    size_t n = strlen(s);
    char *l = rc_malloc(n + 2, "judge record");
    if (!l) return -1;
    memcpy(l, s, n);
    l[n] = '\n';
    l[n + 1] = 0;
    ssize_t w = write(fd, l, n + 1);
    free(l);
    if (w != (ssize_t)(n + 1) || fsync(fd)) return rc_fail("cannot append to the judge record");
    return 0;
}

int rc_judge_run(const rc_judge_opts *o) {
    rc_resp_set red = {0}, blue = {0};
    cJSON **replay = NULL, **prev = NULL;
    int n_replay = 0, n_prev = 0, fd = -1, rc = -1, have_blue = 0;
    http_judge http = {0};
    int64_t *pr = NULL, *pb = NULL, *sel = NULL;
    rc_judge_tally t = {0};
    if (!o->url == !o->replay) return rc_fail("give exactly one judge: --url (with --model) or --replay");
    if (!o->against == !o->against_reference)
        return rc_fail("give exactly one of --against DIR2 or --against-reference");
    if (rc_run_read_responses(o->run, &red)) goto done;
    if (o->against) {
        if (rc_run_read_responses(o->against, &blue)) goto done;
        have_blue = 1;
    }
    // Pairs by dataset item, in the red run's order.
    pr = rc_malloc(sizeof(int64_t) * (size_t)(red.n + 1), "pairs");
    pb = rc_malloc(sizeof(int64_t) * (size_t)(red.n + 1), "pairs");
    if (!pr || !pb) goto done;
    int64_t np = 0;
    for (int64_t i = 0, j = 0; i < red.n; i++) {
        if (o->against_reference) {
            if (red.r[i].reference) pr[np] = i, pb[np++] = -1;
            continue;
        }
        while (j < blue.n && blue.r[j].item < red.r[i].item) j++;
        if (j < blue.n && blue.r[j].item == red.r[i].item) pr[np] = i, pb[np++] = j;
    }
    if (np == 0) {
        rc_fail("%s and %s have no dataset item in common%s", o->run,
                o->against ? o->against : "the dataset's answers",
                o->against_reference ? " (the run's responses carry no \"reference\" answer)" : "");
        goto done;
    }
    int64_t k = o->sample > 0 ? o->sample : np;
    if (k > np) {
        rc_fail("--sample %lld is more than the %lld pairs there are", (long long)k, (long long)np);
        goto done;
    }
    rc_pyrandom rng;
    rc_pyrandom_seed(&rng, o->seed);
    sel = rc_malloc(sizeof(int64_t) * (size_t)k, "sample");
    if (!sel) goto done;
    if (o->sample > 0) {
        if (rc_pyrandom_sample(&rng, np, k, sel)) goto done;
    } else
        for (int64_t i = 0; i < k; i++) sel[i] = i;

    if (o->replay && read_jsonl_objs(o->replay, &replay, &n_replay)) goto done;
    if (o->url && http_open(&http, o)) goto done;
    char rec_path[4200], path[4200];
    snprintf(rec_path, sizeof rec_path, "%s.jsonl", o->out);
    if (rc_file_exists(rec_path) && read_jsonl_objs(rec_path, &prev, &n_prev)) goto done;
    fd = open(rec_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) {
        rc_fail("cannot open %s for appending", rec_path);
        goto done;
    }
    cJSON *pairs_out = cJSON_CreateArray();
    rc_progress pg;
    rc_progress_init(&pg, "judge", k);
    int64_t reused = 0;
    for (int64_t s = 0; s < k; s++) {
        const rc_resp *a = &red.r[pr[sel[s]]];
        const char *bresp = pb[sel[s]] >= 0 ? blue.r[pb[sel[s]]].response : a->reference;
        int side = (int)rc_pyrandom_randbelow(&rng, 2);
        char *ra = rc_judge_cut(a->response), *rb = rc_judge_cut(bresp);
        char *user = ra && rb ? (side == 0 ? rc_judge_user_prompt(a->prompt, ra, rb)
                                           : rc_judge_user_prompt(a->prompt, rb, ra))
                              : NULL;
        char *reply = NULL;
        const char *found = NULL;
        for (int q = 0; q < n_prev && !found; q++) {
            const cJSON *it = cJSON_GetObjectItemCaseSensitive(prev[q], "item");
            const char *u = row_str(prev[q], "user");
            if (cJSON_IsNumber(it) && (int64_t)it->valuedouble == a->item && u) {
                if (strcmp(u, user ? user : "")) {
                    rc_fail("%s: item %lld was judged with another prompt (other runs, seed or sample); "
                            "use another --out", rec_path, (long long)a->item);
                    goto pair_fail;
                }
                found = row_str(prev[q], "reply");
            }
        }
        int fresh = 0;
        if (found) {
            reply = strdup(found);
            reused++;
        } else if (user && o->replay) {
            for (int q = 0; q < n_replay && !reply; q++) {
                const char *u = row_str(replay[q], "user");
                if (u && !strcmp(u, user)) reply = strdup(row_str(replay[q], "reply") ? row_str(replay[q], "reply") : "");
            }
            if (!reply) {
                rc_fail("%s: no recorded reply for item %lld's judge prompt", o->replay, (long long)a->item);
                goto pair_fail;
            }
            fresh = 1;
        } else if (user) {
            if (http_chat(&http, o, user, &reply)) goto pair_fail;
            fresh = 1;
        }
        if (!reply) goto pair_fail;
        double s1, s2;
        int parsed = rc_judge_parse(reply, &s1, &s2);
        double red_s = side == 0 ? s1 : s2, blue_s = side == 0 ? s2 : s1;
        rc_judge_tally_add(&t, red_s, blue_s, parsed);
        cJSON *row = cJSON_CreateObject();
        cJSON_AddNumberToObject(row, "item", (double)a->item);
        cJSON_AddNumberToObject(row, "side", side);
        cJSON_AddStringToObject(row, "user", user);
        cJSON_AddStringToObject(row, "reply", reply);
        cJSON_AddBoolToObject(row, "parsed", parsed);
        if (isfinite(red_s)) cJSON_AddNumberToObject(row, "red_score", red_s);
        else cJSON_AddNullToObject(row, "red_score");
        if (isfinite(blue_s)) cJSON_AddNumberToObject(row, "blue_score", blue_s);
        else cJSON_AddNullToObject(row, "blue_score");
        if (fresh) {
            char *line = cJSON_PrintUnformatted(row);
            int w = line ? append_line(fd, line) : -1;
            free(line);
            if (w) {
                cJSON_Delete(row);
                goto pair_fail;
            }
        }
        cJSON_AddItemToArray(pairs_out, row);
        free(ra);
        free(rb);
        free(user);
        free(reply);
        pg.done = s + 1;
        rc_progress_tick(&pg, s + 1 == k);
        continue;
    pair_fail:
        free(ra);
        free(rb);
        free(user);
        free(reply);
        cJSON_Delete(pairs_out);
        goto done;
    }
    // Summary.
    cJSON *sum = cJSON_CreateObject();
    cJSON_AddStringToObject(sum, "format", "recontrol-judge-v1");
    cJSON_AddStringToObject(sum, "red", o->run);
    cJSON_AddStringToObject(sum, "blue", o->against ? o->against : "dataset reference answers");
    cJSON_AddStringToObject(sum, "judge", o->url ? o->url : o->replay);
    if (o->model) cJSON_AddStringToObject(sum, "model", o->model);
    cJSON_AddNumberToObject(sum, "seed", (double)o->seed);
    cJSON_AddNumberToObject(sum, "sample", (double)o->sample);
    cJSON_AddNumberToObject(sum, "n", (double)k);
    cJSON_AddNumberToObject(sum, "win", (double)t.win);
    cJSON_AddNumberToObject(sum, "tie", (double)t.tie);
    cJSON_AddNumberToObject(sum, "lose", (double)t.lose);
    cJSON_AddNumberToObject(sum, "unparsed", (double)t.unparsed);
    cJSON_AddNumberToObject(sum, "win_rate", (double)t.win / (double)k);
    cJSON_AddNumberToObject(sum, "reused_replies", (double)reused);
    cJSON_AddStringToObject(sum, "rule",
                            "gpt4_eval.py: system prompt and template verbatim, answers cut at \"###USER:\" "
                            "and \"\\n\\nUSER:\", A/B side = random.randint(0, 1) after random.seed(seed) "
                            "(and random.sample when sample > 0), temperature 0, first reply line = two "
                            "scores split on one space; an unparsable reply scores 0 and 0 (a tie)");
    cJSON_AddItemToObject(sum, "pairs", pairs_out);
    char *js = cJSON_Print(sum);
    cJSON_Delete(sum);
    snprintf(path, sizeof path, "%s.json", o->out);
    if (!js || rc_write_file_atomic(path, js, strlen(js))) {
        free(js);
        goto done;
    }
    free(js);
    char md[2048];
    int ml = snprintf(md, sizeof md,
                      "| judge | %s |\n|---|---:|\n| pairs | %lld |\n| %s wins | %lld (%.1f%%) |\n| ties | %lld "
                      "(%.1f%%) |\n| %s wins | %lld (%.1f%%) |\n| unparsable replies (counted as ties) | %lld |\n\n"
                      "Judge: %s%s%s; seed %llu%s.\n",
                      o->run, (long long)k, o->run, (long long)t.win, 100.0 * t.win / k, (long long)t.tie,
                      100.0 * t.tie / k, o->against ? o->against : "reference", (long long)t.lose,
                      100.0 * t.lose / k, (long long)t.unparsed, o->url ? o->url : o->replay,
                      o->model ? " model " : "", o->model ? o->model : "", (unsigned long long)o->seed,
                      o->sample > 0 ? ", pairs drawn with random.sample" : "");
    snprintf(path, sizeof path, "%s.md", o->out);
    if (rc_write_file_atomic(path, md, (size_t)ml)) goto done;
    fputs(md, stdout);
    fprintf(stderr, "[judge] wrote %s.json, %s.md and %s\n", o->out, o->out, rec_path);
    rc = 0;
done:
    if (fd >= 0) close(fd);
    http_close(&http);
    free_rows(replay, n_replay);
    free_rows(prev, n_prev);
    free(pr);
    free(pb);
    free(sel);
    rc_resp_set_free(&red);
    if (have_blue) rc_resp_set_free(&blue);
    return rc;
}
