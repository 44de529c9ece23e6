// The judge stage: pairs of answers (run vs run or vs the dataset's answer), the reference's
// draws (Python random after random.seed), chat-completions requests through libcurl, a local
// judge model through the engine (rc_generate, greedy) or recorded replies, an append-only
// resumable record of every reply, and the win / tie / lose summary.
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
#include "engine/generate.h"
#include "engine/model.h"
#include "eval/rundir.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

void rc_judge_opts_default(rc_judge_opts *o) {
    memset(o, 0, sizeof *o);
    o->retries = 5;
    o->timeout_s = 300;
    o->max_tokens = 2048;
    o->device = RC_DEVICE_CPU;
    o->wtype = RC_WT_F16;
    o->batch = 8;
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

// ---- the local judge (a model run by the engine) -------------------------------------------------

typedef struct {
    rc_model m;
    int have_model;
    rc_tokenizer *tok;
    rc_chat_spec spec;
    int eot;            // the chat format's end-of-turn id, or -1
    rc_backend *be;
} local_judge;

static void local_close(local_judge *l) {
    rc_backend_close(l->be);
    if (l->have_model) rc_model_free(&l->m);
    rc_tokenizer_free(l->tok);
    memset(l, 0, sizeof *l);
}

// Loads the model and its tokenizer and chooses the chat format, as `recontrol serve` does.
static int local_open(local_judge *l, const rc_judge_opts *o) {
    memset(l, 0, sizeof *l);
    l->eot = -1;
    if (rc_device_check(o->device)) return -1;
    if (!(l->tok = rc_tokenizer_load(o->judge_model)))
        return rc_fail_ctx("--judge-model %s: its tokenizer", o->judge_model);
    if (o->chat_format) {
        if (rc_chat_spec_from_name(o->chat_format, &l->spec)) return -1;
    } else {
        const char *tpl = rc_tokenizer_chat_template(l->tok);
        if (!tpl)
            return rc_fail("--judge-model %s has no chat template: name its format with "
                           "--chat-format (vicuna, chatml, llama3)", o->judge_model);
        if (rc_chat_spec_from_template(tpl, &l->spec))
            return rc_fail_ctx("--judge-model %s: choosing the chat format (--chat-format NAME "
                               "overrides)", o->judge_model);
    }
    const char *eot = rc_chat_end_of_turn(&l->spec);
    if (eot) l->eot = rc_tokenizer_token_id(l->tok, eot);
    if (rc_model_load(o->judge_model, &l->m)) return -1;
    l->have_model = 1;
    if (l->m.cfg.arch != RC_ARCH_CAUSAL_LM)
        return rc_fail("--judge-model %s is a reward model (no LM head); a judge must generate",
                       o->judge_model);
    return 0;
}

// Greedy replies of the judge to n user messages (after the reference's system prompt), up to
// o->max_tokens new tokens each, fewer when the model's context ends first; reply[i] malloc'd,
// decoded as the server decodes (special tokens dropped); *tokens += prompt and new tokens.
static int local_chat(local_judge *l, const rc_judge_opts *o, int n, char *const *user,
                      char **reply, int64_t *tokens) {
    int **ids = rc_calloc((size_t)n, sizeof *ids, "judge prompts");
    int *lens = rc_calloc((size_t)n, sizeof(int), "judge prompts");
    rc_gen_output *out = rc_calloc((size_t)n, sizeof *out, "judge replies");
    int rc = -1, longest = 0;
    if (!ids || !lens || !out) goto done;
    const int ctx = l->m.cfg.max_position_embeddings > 0 ? l->m.cfg.max_position_embeddings : 1 << 30;
    for (int i = 0; i < n; i++) {
        rc_chat_msg msgs[2] = {{"system", rc_judge_system_prompt()}, {"user", user[i]}};
        char *txt = rc_chat_render(&l->spec, msgs, 2, 1);
        if (!txt) goto done;
        int erc = rc_tokenizer_encode(l->tok, txt, strlen(txt), 0, &ids[i], &lens[i]);
        free(txt);
        if (erc) goto done;
        if (lens[i] < 1 || lens[i] >= ctx) {
            rc_fail("--judge-model: a judge prompt has %d tokens, the model's context is %d", lens[i],
                    ctx);
            goto done;
        }
        if (lens[i] > longest) longest = lens[i];
    }
    int max_new = o->max_tokens;
    if ((long)longest + max_new > ctx) max_new = ctx - longest;
    // the KV cache is sized for the first batch's longest prompt (+ 256), reopened for a longer one
    if (l->be && l->be->max_len < longest + max_new) {
        rc_backend_close(l->be);
        l->be = NULL;
    }
    if (!l->be) {
        int max_len = (long)longest + max_new + 256 < ctx ? longest + max_new + 256 : ctx;
        rc_backend_opts bo = {.device = o->device, .wtype = o->wtype, .n_slots = o->batch,
                              .max_len = max_len, .max_tokens = 256, .n_threads = o->n_threads,
                              .gpu = 0};
        if (rc_backend_open(&l->be, &l->m, &bo)) goto done;
    }
    rc_gen_params gp = {.max_new_tokens = max_new, .stop_at_eos = 1, .control = -1,
                        .stop_ids = l->eot >= 0 ? &l->eot : NULL, .n_stop_ids = l->eot >= 0};
    gp.sample.temperature = 0;
    gp.sample.top_p = 1;
    if (rc_generate(l->be, n, (const int *const *)ids, lens, &gp, NULL, out)) goto done;
    for (int i = 0; i < n; i++) *tokens += lens[i] + out[i].n_tokens;
    for (int i = 0; i < n; i++)
        if (!(reply[i] = rc_tokenizer_decode(l->tok, out[i].tokens, out[i].n_tokens, 1))) {
            for (int k = 0; k < i; k++) free(reply[k]), reply[k] = NULL;
            goto done;
        }
    rc = 0;
done:
    if (ids)
        for (int i = 0; i < n; i++) free(ids[i]);
    free(ids);
    free(lens);
    if (out) rc_gen_output_free(out, n);
    free(out);
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

// The recorded reply of item's pair, if any (*found NULL when none); -1 when the record judged
// that item with another prompt.
static int prev_reply(cJSON **prev, int n_prev, int64_t item, const char *user, const char *rec_path,
                      const char **found) {
    *found = NULL;
    for (int q = 0; q < n_prev && !*found; q++) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(prev[q], "item");
        const char *u = row_str(prev[q], "user");
        if (cJSON_IsNumber(it) && (int64_t)it->valuedouble == item && u) {
            if (strcmp(u, user ? user : ""))
                return rc_fail("%s: item %lld was judged with another prompt (other runs, seed or "
                               "sample); use another --out", rec_path, (long long)item);
            *found = row_str(prev[q], "reply");
        }
    }
    return 0;
}

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
    local_judge local = {0};
    int64_t *pr = NULL, *pb = NULL, *sel = NULL, k = 0;
    int *sides = NULL;
    char **users = NULL, **pre = NULL;
    rc_judge_tally t = {0};
    if ((o->url != NULL) + (o->replay != NULL) + (o->judge_model != NULL) != 1)
        return rc_fail("give exactly one judge: --url (with --model), --judge-model or --replay");
    if (o->judge_model && o->batch < 1) return rc_fail("--batch %d: must be >= 1", o->batch);
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
    k = o->sample > 0 ? o->sample : np;
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

    // every pair's A/B side (drawn in order) and judge prompt; NULL prompt: out of memory
    sides = rc_malloc(sizeof(int) * (size_t)k, "sides");
    users = rc_calloc((size_t)k, sizeof *users, "judge prompts");
    pre = rc_calloc((size_t)k, sizeof *pre, "judge replies");
    if (!sides || !users || !pre) goto done;
    for (int64_t s = 0; s < k; s++) {
        const rc_resp *a = &red.r[pr[sel[s]]];
        const char *bresp = pb[sel[s]] >= 0 ? blue.r[pb[sel[s]]].response : a->reference;
        sides[s] = (int)rc_pyrandom_randbelow(&rng, 2);
        char *ra = rc_judge_cut(a->response), *rb = rc_judge_cut(bresp);
        users[s] = ra && rb ? (sides[s] == 0 ? rc_judge_user_prompt(a->prompt, ra, rb)
                                             : rc_judge_user_prompt(a->prompt, rb, ra))
                            : NULL;
        free(ra);
        free(rb);
        if (!users[s]) goto done;
    }
    if (o->replay && read_jsonl_objs(o->replay, &replay, &n_replay)) goto done;
    if (o->url && http_open(&http, o)) goto done;
    if (o->judge_model && local_open(&local, o)) goto done;
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
        const int side = sides[s];
        const char *user = users[s];
        char *reply = NULL;
        const char *found = NULL;
        if (o->judge_model && s % o->batch == 0) {
            // the local judge answers the next batch's unrecorded pairs at once
            int64_t e = s + o->batch < k ? s + o->batch : k;
            char *bu[e - s];
            int64_t at[e - s];
            int nb = 0;
            for (int64_t q = s; q < e; q++) {
                const char *f;
                if (prev_reply(prev, n_prev, red.r[pr[sel[q]]].item, users[q], rec_path, &f))
                    goto pair_fail;
                if (!f) bu[nb] = users[q], at[nb++] = q;
            }
            char *br[nb > 0 ? nb : 1];
            if (nb > 0 && local_chat(&local, o, nb, bu, br, &pg.tokens)) goto pair_fail;
            for (int q = 0; q < nb; q++) pre[at[q]] = br[q];
        }
        if (prev_reply(prev, n_prev, a->item, user, rec_path, &found)) goto pair_fail;
        int fresh = 0;
        if (found) {
            reply = strdup(found);
            reused++;
        } else if (o->replay) {
            for (int q = 0; q < n_replay && !reply; q++) {
                const char *u = row_str(replay[q], "user");
                if (u && !strcmp(u, user)) reply = strdup(row_str(replay[q], "reply") ? row_str(replay[q], "reply") : "");
            }
            if (!reply) {
                rc_fail("%s: no recorded reply for item %lld's judge prompt", o->replay, (long long)a->item);
                goto pair_fail;
            }
            fresh = 1;
        } else if (o->judge_model) {
            reply = pre[s];
            pre[s] = NULL;
            fresh = 1;
        } else {
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
        free(reply);
        pg.done = s + 1;
        rc_progress_tick(&pg, s + 1 == k);
        continue;
    pair_fail:
        free(reply);
        cJSON_Delete(pairs_out);
        goto done;
    }
    // Summary.
    char judge_name[1200];
    if (o->judge_model)
        snprintf(judge_name, sizeof judge_name, "local model %s (%s, greedy)", o->judge_model,
                 rc_device_name(o->device));
    else
        snprintf(judge_name, sizeof judge_name, "%s", o->url ? o->url : o->replay);
    cJSON *sum = cJSON_CreateObject();
    cJSON_AddStringToObject(sum, "format", "recontrol-judge-v1");
    cJSON_AddStringToObject(sum, "red", o->run);
    cJSON_AddStringToObject(sum, "blue", o->against ? o->against : "dataset reference answers");
    cJSON_AddStringToObject(sum, "judge", judge_name);
    if (o->judge_model) {
        cJSON_AddStringToObject(sum, "judge_device", rc_device_name(o->device));
        cJSON_AddStringToObject(sum, "chat_format", rc_chat_format_name(local.spec.format));
    }
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
                      100.0 * t.lose / k, (long long)t.unparsed, judge_name,
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
    local_close(&local);
    for (int64_t s = 0; s < k && users; s++) free(users[s]);
    for (int64_t s = 0; s < k && pre; s++) free(pre[s]);
    free(users);
    free(pre);
    free(sides);
    free_rows(replay, n_replay);
    free_rows(prev, n_prev);
    free(pr);
    free(pb);
    free(sel);
    rc_resp_set_free(&red);
    if (have_blue) rc_resp_set_free(&blue);
    return rc;
}
