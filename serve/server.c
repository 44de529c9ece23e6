// The OpenAI routes over libmicrohttpd: request bodies collected up to a limit, checked
// (serve/api.c), tokenized and handed to the engine thread as jobs; replies as one JSON object or
// as server-sent events from a content-reader callback that waits on the job. A client that
// closes its connection (seen by a failed write or by polling its socket while waiting) cancels
// its job.
#define _GNU_SOURCE
#include "serve/server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "base/common.h"

struct rc_server {
    rc_server_opts o;
    struct MHD_Daemon *d;
    int port;
    long started;
    atomic_ulong counter;
};

enum { R_NONE = 0, R_CHAT, R_COMPLETIONS, R_MODELS, R_HEALTH };

typedef struct {
    rc_server *s;
    int route;
    double t0;
    char *body;
    size_t len, cap;
    int too_big;
    int status; // for the log line
    // a generation
    rc_api_req req;
    int have_req;
    rc_job *job;
    int fd;
    char id[48];
    long created;
    double deadline;
    // streaming
    char *out;
    size_t out_len, out_off, out_cap;
    size_t sent;      // bytes of generated text sent so far
    int first_done;   // the opening chunk is out
    int done;         // [DONE] is queued
    double last_send; //
} conn;

// ---- responses -----------------------------------------------------------------------------

static enum MHD_Result send_json(struct MHD_Connection *c, conn *k, int status, char *json,
                                 const char *retry_after) {
    if (!json) {
        json = strdup("{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\"}}");
        status = 500;
        if (!json) return MHD_NO;
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(json), json, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(json);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (retry_after) MHD_add_response_header(r, "Retry-After", retry_after);
    if (status == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    if (k) k->status = status;
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, conn *k, const rc_api_error *e) {
    return send_json(c, k, e->status, rc_api_error_json(e), e->status == 429 ? "1" : NULL);
}

static enum MHD_Result send_fail(struct MHD_Connection *c, conn *k, int status, const char *type,
                                 const char *param, const char *msg) {
    rc_api_error e;
    rc_api_fail(&e, status, type, param, "%s", msg);
    return send_error(c, k, &e);
}

// The client closed its end (EOF or an error on the socket): nothing will read our reply.
static int client_gone(int fd) {
    if (fd < 0) return 0;
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return 0;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) return 1;
    char ch;
    return (p.revents & POLLIN) && recv(fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

static const char *finish_name(int finish) {
    return finish == RC_FINISH_LENGTH ? "length" : "stop";
}

// ---- streaming (server-sent events) -----------------------------------------------------------

static int out_add(conn *k, const char *s, size_t n) {
    if (k->out_off == k->out_len) k->out_off = k->out_len = 0;
    return rc_text_append(&k->out, &k->out_len, &k->out_cap, s, n);
}

// "data: <json>\n\n"; takes json.
static int out_event(conn *k, char *json) {
    if (!json) return -1;
    int rc = out_add(k, "data: ", 6) || out_add(k, json, strlen(json)) || out_add(k, "\n\n", 2);
    free(json);
    return rc ? -1 : 0;
}

static int out_chunk(conn *k, int first, const char *text, size_t n, const char *finish) {
    return out_event(k, rc_api_chunk_json(k->req.kind, k->id, k->created, k->s->o.model_name, first,
                                          text, n, finish, 0, 0, 0, 0));
}

static int out_end(conn *k, int finish) {
    int pt, ct, cached;
    rc_job_counts(k->s->o.worker, k->job, &pt, &ct, &cached);
    if (finish == RC_JOB_FAILED || finish == RC_FINISH_CANCELLED) {
        rc_api_error e;
        if (finish == RC_JOB_FAILED)
            rc_api_fail(&e, 500, "server_error", NULL, "%s", rc_job_error(k->job));
        else
            rc_api_fail(&e, 504, "timeout", NULL, "the request took longer than %d s",
                        k->s->o.timeout_s);
        if (out_event(k, rc_api_error_json(&e))) return -1;
    } else {
        if (out_chunk(k, 0, NULL, 0, finish_name(finish))) return -1;
        if (k->req.include_usage &&
            out_event(k, rc_api_chunk_json(k->req.kind, k->id, k->created, k->s->o.model_name, 0,
                                           NULL, 0, NULL, pt, ct, cached, 1)))
            return -1;
    }
    k->done = 1;
    return out_add(k, "data: [DONE]\n\n", 14);
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    conn *k = cls;
    rc_worker *w = k->s->o.worker;
    for (;;) {
        if (k->out_off < k->out_len) {
            size_t n = k->out_len - k->out_off < max ? k->out_len - k->out_off : max;
            memcpy(buf, k->out + k->out_off, n);
            k->out_off += n;
            k->last_send = rc_time_s();
            return (ssize_t)n;
        }
        if (k->done) return MHD_CONTENT_READER_END_OF_STREAM;
        if (!k->first_done && k->req.kind == RC_API_CHAT) {
            k->first_done = 1;
            if (out_chunk(k, 1, NULL, 0, NULL)) return MHD_CONTENT_READER_END_WITH_ERROR;
            continue;
        }
        char *text;
        size_t n;
        int finish;
        if (rc_job_poll(w, k->job, k->sent, 250, &text, &n, &finish))
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (text) {
            k->sent += n;
            int rc = out_chunk(k, 0, text, n, NULL);
            free(text);
            if (rc) return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (finish >= 0) {
            if (out_end(k, finish)) return MHD_CONTENT_READER_END_WITH_ERROR;
            continue;
        }
        if (text) continue;
        if (client_gone(k->fd)) {
            rc_job_cancel(w, k->job);
            k->status = 499;
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        double now = rc_time_s();
        if (now > k->deadline) rc_job_cancel(w, k->job); // ends as RC_FINISH_CANCELLED: 504 event
        else if (now - k->last_send > 10 && out_add(k, ": keep-alive\n\n", 14))
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
}

// ---- generation requests -----------------------------------------------------------------------

static enum MHD_Result generate(struct MHD_Connection *c, conn *k) {
    rc_server *s = k->s;
    const rc_server_opts *o = &s->o;
    rc_api_error e;
    if (rc_api_parse(k->body ? k->body : "", k->len, k->route == R_CHAT ? RC_API_CHAT : RC_API_COMPLETION,
                     &o->limits, &k->req, &e))
        return send_error(c, k, &e);
    k->have_req = 1;
    rc_api_req *q = &k->req;
    int *ids = NULL, n = 0;
    if (q->prompt) {
        if (rc_tokenizer_encode(o->tok, q->prompt, strlen(q->prompt), q->add_special, &ids, &n))
            return send_fail(c, k, 400, "invalid_request_error", "prompt", rc_last_error());
    } else {
        for (int i = 0; i < q->n_ids; i++)
            if (q->ids[i] >= o->vocab_size) {
                char msg[160];
                snprintf(msg, sizeof msg, "prompt[%d] = %d is not in the vocabulary (%d tokens)", i,
                         q->ids[i], o->vocab_size);
                return send_fail(c, k, 400, "invalid_request_error", "prompt", msg);
            }
        ids = q->ids;
        n = q->n_ids;
        q->ids = NULL;
    }
    enum MHD_Result ret;
    char msg[256];
    int max_new = q->max_tokens ? q->max_tokens
                  : q->kind == RC_API_COMPLETION ? 16 : o->limits.max_tokens_limit;
    if (!q->max_tokens && n + max_new > o->max_len) max_new = o->max_len - n; // chat default: to the end
    if (n < 1 || n > o->max_prompt_tokens || max_new < 1 || n + max_new > o->max_len) {
        if (n < 1) snprintf(msg, sizeof msg, "the prompt is empty (no tokens)");
        else
            snprintf(msg, sizeof msg,
                     "the prompt has %d tokens and %d new ones were asked for; this server takes "
                     "prompts of at most %d tokens and %d positions in all",
                     n, q->max_tokens ? q->max_tokens : 1, o->max_prompt_tokens, o->max_len);
        rc_api_fail(&e, 400, "invalid_request_error", q->kind == RC_API_CHAT ? "messages" : "prompt",
                    "%s", msg);
        if (n >= 1) snprintf(e.code, sizeof e.code, "context_length_exceeded");
        free(ids);
        return send_error(c, k, &e);
    }
    rc_request r;
    memset(&r, 0, sizeof r);
    r.max_new_tokens = max_new;
    r.stop_at_eos = !q->ignore_eos;
    int eot = o->end_of_turn;
    if (q->kind == RC_API_CHAT && eot >= 0 && !q->ignore_eos) r.stop_ids = &eot, r.n_stop_ids = 1;
    r.sample.temperature = q->temperature;
    r.sample.top_p = q->top_p;
    r.sample.top_k = q->top_k;
    r.sample.seed = q->has_seed ? q->seed
                                : ((uint64_t)time(NULL) << 20) ^ (uint64_t)atomic_fetch_add(&s->counter, 1);
    r.index = 0; // a request is generator index 0, as one prompt of `recontrol generate`
    r.control = q->control;
    r.alpha = q->step_size;
    r.steps = q->control >= 0 ? q->steps : 0;
    k->job = rc_job_new(ids, n, &r, q->stop, q->n_stop);
    free(ids);
    if (!k->job) return send_fail(c, k, 500, "server_error", NULL, rc_last_error());
    if (rc_worker_submit(o->worker, k->job)) {
        snprintf(msg, sizeof msg, "the server is busy (%d requests queued or running); retry later",
                 rc_worker_load(o->worker));
        return send_fail(c, k, 429, "rate_limit_error", NULL, msg);
    }
    unsigned long id = atomic_fetch_add(&s->counter, 1);
    snprintf(k->id, sizeof k->id, "%s-%lx%06lx", q->kind == RC_API_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long)s->started, id);
    k->created = (long)time(NULL);
    k->deadline = rc_time_s() + o->timeout_s;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    k->fd = ci ? ci->connect_fd : -1;
    if (q->stream) {
        k->last_send = rc_time_s();
        struct MHD_Response *resp =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_reader, k, NULL);
        if (!resp) return MHD_NO;
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        k->status = 200;
        ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    // Not streamed: wait here (this connection's own thread), watching the client.
    size_t total = 0;
    char *all = NULL;
    int finish = -1;
    for (;;) {
        char *text;
        size_t tn;
        if (rc_job_poll(o->worker, k->job, total, 200, &text, &tn, &finish)) break;
        if (text) {
            char *a = realloc(all, total + tn + 1);
            if (!a) {
                free(text);
                finish = RC_JOB_FAILED;
                break;
            }
            all = a;
            memcpy(all + total, text, tn + 1);
            total += tn;
            free(text);
        }
        if (finish >= 0) break;
        if (client_gone(k->fd)) {
            rc_job_cancel(o->worker, k->job);
            free(all);
            k->status = 499;
            return MHD_NO;
        }
        if (rc_time_s() > k->deadline) rc_job_cancel(o->worker, k->job);
    }
    if (finish == RC_JOB_FAILED || finish < 0) {
        free(all);
        return send_fail(c, k, 500, "server_error", NULL,
                         finish < 0 ? "out of memory" : rc_job_error(k->job));
    }
    if (finish == RC_FINISH_CANCELLED) {
        free(all);
        snprintf(msg, sizeof msg, "the request took longer than %d s", o->timeout_s);
        return send_fail(c, k, 504, "timeout", NULL, msg);
    }
    int pt, ct, cached;
    rc_job_counts(o->worker, k->job, &pt, &ct, &cached);
    char *json = rc_api_completion_json(q->kind, k->id, k->created, o->model_name, all ? all : "",
                                        total, finish_name(finish), pt, ct, cached);
    free(all);
    return send_json(c, k, 200, json, NULL);
}

// ---- routing -----------------------------------------------------------------------------------

static int authorized(const rc_server *s, struct MHD_Connection *c) {
    if (!s->o.api_key || !*s->o.api_key) return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7)) return 0;
    h += 7;
    size_t a = strlen(h), b = strlen(s->o.api_key);
    unsigned diff = a != b;
    for (size_t i = 0; i < a && i < b; i++) diff |= (unsigned char)(h[i] ^ s->o.api_key[i]);
    return diff == 0;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls) {
    rc_server *s = cls;
    conn *k = *con_cls;
    if (!k) {
        if (!(k = calloc(1, sizeof *k))) return MHD_NO;
        k->s = s;
        k->fd = -1;
        k->t0 = rc_time_s();
        *con_cls = k;
        int post = !strcmp(method, "POST"), get = !strcmp(method, "GET");
        if (!strcmp(url, "/v1/chat/completions") || !strcmp(url, "/chat/completions"))
            k->route = R_CHAT;
        else if (!strcmp(url, "/v1/completions") || !strcmp(url, "/completions"))
            k->route = R_COMPLETIONS;
        else if (!strcmp(url, "/v1/models") || !strcmp(url, "/models"))
            k->route = R_MODELS;
        else if (!strcmp(url, "/health"))
            k->route = R_HEALTH;
        if (k->route == R_NONE)
            return send_fail(c, k, 404, "invalid_request_error", NULL,
                             "no such route (this server has POST /v1/chat/completions, POST "
                             "/v1/completions, GET /v1/models, GET /health)");
        int want_post = k->route == R_CHAT || k->route == R_COMPLETIONS;
        if (want_post ? !post : !get)
            return send_fail(c, k, 405, "invalid_request_error", NULL,
                             want_post ? "use POST for this route" : "use GET for this route");
        if (k->route == R_HEALTH)
            return send_json(c, k, 200, strdup("{\"status\":\"ok\"}"), NULL);
        if (!authorized(s, c))
            return send_fail(c, k, 401, "authentication_error", NULL,
                             "a valid API key is required (header \"Authorization: Bearer KEY\")");
        if (k->route == R_MODELS)
            return send_json(c, k, 200,
                             rc_api_models_json(s->o.model_name, s->started, s->o.limits.value_names,
                                                s->o.limits.n_value),
                             NULL);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->o.max_body) {
            char msg[128];
            snprintf(msg, sizeof msg, "the request body is larger than %zu bytes", s->o.max_body);
            return send_fail(c, k, 413, "invalid_request_error", NULL, msg);
        }
        return MHD_YES; // the body follows
    }
    if (k->status) { // a response is already queued: ignore the rest
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!k->too_big && k->len + *upload_size > s->o.max_body) k->too_big = 1;
        if (!k->too_big && rc_text_append(&k->body, &k->len, &k->cap, upload, *upload_size))
            return MHD_NO;
        *upload_size = 0;
        return MHD_YES;
    }
    if (k->too_big) {
        char msg[128];
        snprintf(msg, sizeof msg, "the request body is larger than %zu bytes", s->o.max_body);
        return send_fail(c, k, 413, "invalid_request_error", NULL, msg);
    }
    return generate(c, k);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
    rc_server *s = cls;
    conn *k = *con_cls;
    if (!k) return;
    if (k->job) {
        if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && k->status == 200) k->status = 499;
        if (!s->o.quiet) {
            int pt, ct, cached;
            rc_job_counts(s->o.worker, k->job, &pt, &ct, &cached);
            fprintf(stderr, "recontrol serve: %s %d %s prompt %d (%d reused) + %d tokens, %.2f s%s\n",
                    k->route == R_CHAT ? "chat" : "completion", k->status,
                    k->req.stream ? "stream" : "json", pt, cached, ct, rc_time_s() - k->t0,
                    k->status == 499 ? " (client gone: cancelled)" : "");
        }
        rc_job_release(s->o.worker, k->job);
    } else if (!s->o.quiet && k->status >= 400) {
        fprintf(stderr, "recontrol serve: %d %s\n", k->status,
                k->route == R_CHAT ? "chat" : k->route == R_COMPLETIONS ? "completion" : "request");
    }
    if (k->have_req) rc_api_req_free(&k->req);
    free(k->body);
    free(k->out);
    free(k);
    *con_cls = NULL;
}

rc_server *rc_server_start(const rc_server_opts *o) {
    rc_server *s = rc_calloc(1, sizeof *s, "server");
    if (!s) return NULL;
    s->o = *o;
    s->started = (long)time(NULL);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)o->port);
    const char *host = o->host ? o->host : "127.0.0.1";
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        free(s);
        rc_fail("--host %s is not an IPv4 address (such as 127.0.0.1 or 0.0.0.0)", host);
        return NULL;
    }
    s->d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
            MHD_USE_ERROR_LOG,
        (uint16_t)o->port, NULL, NULL, handle, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&a,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)o->idle_timeout_s, MHD_OPTION_NOTIFY_COMPLETED, completed, s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_END);
    if (!s->d) {
        free(s);
        rc_fail("cannot listen on %s:%d (in use, or not allowed)", host, o->port);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : o->port;
    return s;
}

int rc_server_port(const rc_server *s) { return s->port; }

void rc_server_stop(rc_server *s) {
    if (!s) return;
    MHD_stop_daemon(s->d);
    free(s);
}
