// The engine thread of the server: one loop that admits queued jobs into the batcher, applies
// cancellations, runs one batcher step and hands every emitted token back to its job as text
// (streaming detokenizer, stop strings cut, a possible stop-string prefix held back).
#define _GNU_SOURCE
#include "serve/worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/common.h"

struct rc_job {
    // set before submit, read-only after
    int *prompt;
    int prompt_len;
    rc_request req;
    int *stop_ids;
    char *stop[RC_API_MAX_STOP];
    int n_stop;
    // shared, under the worker's mutex
    char *text;
    size_t len, cap, safe; // generated text; bytes that may be sent
    int n_tokens;
    int cached; // prompt tokens whose KV was reused
    int finish; // -1 running, RC_FINISH_*, RC_JOB_FAILED
    int cancel;
    int refs;
    char err[512];
    pthread_cond_t cv;
    rc_job *next; // pending list
    // engine thread only
    rc_detok *detok;
    int bid;
    int stop_hit;
};

struct rc_worker {
    rc_worker_opts o;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work; // engine: something to do
    pthread_cond_t ready_cv;
    int ready; // 0 starting, 1 running, -1 failed
    char ready_err[512];
    int stop;
    rc_job *pending, *pending_tail;
    int n_jobs; // pending + in the batcher
    // engine thread only
    rc_backend *b;
    rc_batcher *bt;
    int *controls;
    rc_job **by_id; // batcher id -> job
    int id_cap;
    int *finished; // ids that ended during the last step
    int n_finished, fin_cap;
};

static void job_free(rc_job *j) {
    free(j->prompt);
    free(j->stop_ids);
    for (int i = 0; i < j->n_stop; i++) free(j->stop[i]);
    free(j->text);
    pthread_cond_destroy(&j->cv);
    free(j);
}

// Drops one reference; the mutex is held.
static void job_unref(rc_job *j) {
    if (--j->refs == 0) job_free(j);
}

rc_job *rc_job_new(const int *prompt, int prompt_len, const rc_request *r, char *const *stop,
                   int n_stop) {
    rc_job *j = rc_calloc(1, sizeof *j, "server job");
    if (!j) return NULL;
    pthread_cond_init(&j->cv, NULL);
    j->finish = -1;
    j->bid = -1;
    j->refs = 1;
    j->req = *r;
    j->n_stop = 0;
    if (!(j->prompt = rc_malloc(sizeof(int) * (size_t)(prompt_len > 0 ? prompt_len : 1), "prompt")))
        goto fail;
    memcpy(j->prompt, prompt, sizeof(int) * (size_t)prompt_len);
    j->prompt_len = prompt_len;
    j->req.prompt = j->prompt;
    j->req.prompt_len = prompt_len;
    if (r->n_stop_ids > 0) {
        if (!(j->stop_ids = rc_malloc(sizeof(int) * (size_t)r->n_stop_ids, "stop ids"))) goto fail;
        memcpy(j->stop_ids, r->stop_ids, sizeof(int) * (size_t)r->n_stop_ids);
    }
    j->req.stop_ids = j->stop_ids;
    for (int i = 0; i < n_stop && i < RC_API_MAX_STOP; i++) {
        if (!(j->stop[i] = strdup(stop[i]))) goto fail;
        j->n_stop++;
    }
    return j;
fail:
    rc_fail("out of memory (server job)");
    job_free(j);
    return NULL;
}

const char *rc_job_error(const rc_job *j) { return j->err; }

// ---- hooks (engine thread, during rc_batcher_step; the mutex is not held) -------------------

static rc_job *job_of(rc_worker *w, int id) { return id >= 0 && id < w->id_cap ? w->by_id[id] : NULL; }

static int append(rc_job *j, const char *s, size_t n) {
    return rc_text_append(&j->text, &j->len, &j->cap, s, n);
}

static int on_token(void *ud, int req, int token) {
    rc_worker *w = ud;
    rc_job *j = job_of(w, req);
    if (!j || j->stop_hit) return 1;
    size_t n = 0;
    const char *piece = j->detok ? rc_detok_feed(j->detok, token, &n) : NULL;
    int rc = 0;
    pthread_mutex_lock(&w->mu);
    j->n_tokens++;
    size_t before = j->len;
    if (piece && n && append(j, piece, n)) {
        snprintf(j->err, sizeof j->err, "out of memory (response text)");
        rc = 1;
    } else if (j->n_stop) {
        long at = rc_api_stop_find(j->text, j->len, before, j->stop, j->n_stop);
        if (at >= 0) {
            j->len = (size_t)at;
            j->text[j->len] = 0;
            j->stop_hit = 1;
            rc = 1; // ends the request: RC_FINISH_STOP
        }
    }
    j->safe = j->len - (j->stop_hit ? 0 : rc_api_stop_holdback(j->text, j->len, j->stop, j->n_stop));
    if (j->cancel) rc = 1;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&w->mu);
    return rc;
}

static int on_finish(void *ud, int req, int finish) {
    rc_worker *w = ud;
    rc_job *j = job_of(w, req);
    if (!j) return 0;
    size_t n = 0;
    const char *tail = j->detok && !j->stop_hit ? rc_detok_flush(j->detok, &n) : NULL;
    pthread_mutex_lock(&w->mu);
    if (tail && n) append(j, tail, n);
    if (!j->stop_hit && j->n_stop) {
        long at = rc_api_stop_find(j->text, j->len, 0, j->stop, j->n_stop);
        if (at >= 0) j->len = (size_t)at, j->stop_hit = 1;
    }
    if (j->stop_hit) finish = RC_FINISH_STOP;
    else if (j->cancel) finish = RC_FINISH_CANCELLED; // on_token ended it for a cancel
    j->cached = rc_batcher_cached(w->bt, req);
    j->safe = j->len;
    j->finish = finish;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&w->mu);
    if (w->n_finished == w->fin_cap) {
        int cap = w->fin_cap ? w->fin_cap * 2 : 64;
        int *f = realloc(w->finished, sizeof(int) * (size_t)cap);
        if (!f) return rc_fail("out of memory (finished list)");
        w->finished = f;
        w->fin_cap = cap;
    }
    w->finished[w->n_finished++] = req;
    return 0;
}

// ---- the engine loop -------------------------------------------------------------------------

// Ends a job that never reached the batcher or whose batcher failed; the mutex is held.
static void fail_job(rc_job *j, const char *msg) {
    snprintf(j->err, sizeof j->err, "%s", msg);
    j->finish = RC_JOB_FAILED;
    j->safe = j->len;
    pthread_cond_broadcast(&j->cv);
}

static int map_put(rc_worker *w, int id, rc_job *j) {
    if (id >= w->id_cap) {
        int cap = w->id_cap ? w->id_cap : 64;
        while (cap <= id) cap *= 2;
        rc_job **m = realloc(w->by_id, sizeof *m * (size_t)cap);
        if (!m) return rc_fail("out of memory (job map)");
        memset(m + w->id_cap, 0, sizeof *m * (size_t)(cap - w->id_cap));
        w->by_id = m;
        w->id_cap = cap;
    }
    w->by_id[id] = j;
    return 0;
}

// Forgets a job that left the batcher (engine's reference); the mutex is held.
static void retire(rc_worker *w, int id) {
    rc_job *j = job_of(w, id);
    if (!j) return;
    if (w->bt) rc_batcher_release(w->bt, id);
    w->by_id[id] = NULL;
    rc_detok_free(j->detok);
    j->detok = NULL;
    w->n_jobs--;
    job_unref(j);
}

// The batcher failed: every job in it fails, and a fresh batcher takes over. Mutex held.
static void reset_batcher(rc_worker *w, const char *why) {
    char msg[512];
    snprintf(msg, sizeof msg, "engine error: %s", why);
    fprintf(stderr, "recontrol serve: %s (the requests in the batch failed; continuing)\n", msg);
    for (int id = 0; id < w->id_cap; id++) {
        rc_job *j = w->by_id[id];
        if (!j) continue;
        if (j->finish < 0) fail_job(j, msg);
        rc_detok_free(j->detok);
        j->detok = NULL;
        w->by_id[id] = NULL;
        w->n_jobs--;
        job_unref(j);
    }
    w->n_finished = 0;
    if (w->bt) rc_batcher_free(w->bt);
    rc_gen_hooks h = {.on_token = on_token, .on_finish = on_finish, .ud = w};
    w->bt = rc_batcher_new(w->b, &h);
    if (w->bt && rc_batcher_set_prefix_reuse(w->bt, w->o.prefix_reuse)) {
        rc_batcher_free(w->bt);
        w->bt = NULL;
    }
}

static void admit(rc_worker *w) {
    while (w->pending) {
        rc_job *j = w->pending;
        w->pending = j->next;
        if (!w->pending) w->pending_tail = NULL;
        j->next = NULL;
        if (j->cancel || !w->bt) {
            if (j->cancel) j->finish = RC_FINISH_CANCELLED, pthread_cond_broadcast(&j->cv);
            else fail_job(j, "the engine is not available");
            w->n_jobs--;
            job_unref(j);
            continue;
        }
        rc_request r = j->req;
        if (r.control >= 0) r.control = w->controls[r.control];
        int id = rc_batcher_submit(w->bt, &r);
        if (id < 0 || map_put(w, id, j)) {
            if (id >= 0) rc_batcher_cancel(w->bt, id);
            fail_job(j, rc_last_error());
            w->n_jobs--;
            job_unref(j);
            continue;
        }
        j->bid = id;
        j->detok = rc_detok_new(w->o.tok, 1);
    }
}

static void *engine_main(void *arg) {
    rc_worker *w = arg;
    int ok = rc_backend_open(&w->b, w->o.model, &w->o.backend) == 0;
    if (ok && w->o.n_values) {
        ok = (w->controls = rc_calloc((size_t)w->o.n_values, sizeof(int), "controls")) != NULL;
        for (int i = 0; ok && i < w->o.n_values; i++)
            ok = (w->controls[i] = rc_backend_control_add(w->b, &w->o.values[i])) >= 0;
    }
    rc_gen_hooks h = {.on_token = on_token, .on_finish = on_finish, .ud = w};
    if (ok) ok = (w->bt = rc_batcher_new(w->b, &h)) != NULL;
    if (ok) ok = rc_batcher_set_prefix_reuse(w->bt, w->o.prefix_reuse) == 0;
    pthread_mutex_lock(&w->mu);
    w->ready = ok ? 1 : -1;
    if (!ok) snprintf(w->ready_err, sizeof w->ready_err, "%s", rc_last_error());
    pthread_cond_broadcast(&w->ready_cv);
    if (!ok) {
        pthread_mutex_unlock(&w->mu);
        return NULL;
    }
    int *cancel_ids = NULL, cancel_cap = 0;
    for (;;) {
        while (!w->stop && !w->pending && w->n_jobs == 0) pthread_cond_wait(&w->work, &w->mu);
        if (w->stop) break;
        admit(w);
        int n_cancel = 0;
        for (int id = 0; id < w->id_cap; id++) {
            rc_job *j = w->by_id[id];
            if (!j || !j->cancel || j->finish >= 0) continue;
            if (n_cancel == cancel_cap) {
                int cap = cancel_cap ? cancel_cap * 2 : 64;
                int *c = realloc(cancel_ids, sizeof(int) * (size_t)cap);
                if (!c) break;
                cancel_ids = c;
                cancel_cap = cap;
            }
            cancel_ids[n_cancel++] = id;
        }
        int busy = w->n_jobs > 0;
        pthread_mutex_unlock(&w->mu);
        // hooks take the mutex themselves
        for (int i = 0; i < n_cancel; i++) rc_batcher_cancel(w->bt, cancel_ids[i]);
        int left = busy && w->bt ? rc_batcher_step(w->bt) : 0;
        pthread_mutex_lock(&w->mu);
        for (int i = 0; i < w->n_finished; i++) retire(w, w->finished[i]);
        w->n_finished = 0;
        if (left < 0) reset_batcher(w, rc_last_error());
    }
    free(cancel_ids);
    for (rc_job *j = w->pending; j;) {
        rc_job *next = j->next;
        fail_job(j, "the server is shutting down");
        job_unref(j);
        j = next;
    }
    w->pending = w->pending_tail = NULL;
    for (int id = 0; id < w->id_cap; id++) {
        rc_job *j = w->by_id[id];
        if (!j) continue;
        if (j->finish < 0) fail_job(j, "the server is shutting down");
        rc_detok_free(j->detok);
        w->by_id[id] = NULL;
        job_unref(j);
    }
    w->n_jobs = 0;
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

rc_worker *rc_worker_start(const rc_worker_opts *o) {
    rc_worker *w = rc_calloc(1, sizeof *w, "server worker");
    if (!w) return NULL;
    w->o = *o;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->work, NULL);
    pthread_cond_init(&w->ready_cv, NULL);
    if (pthread_create(&w->thread, NULL, engine_main, w)) {
        rc_fail("cannot start the engine thread");
        free(w);
        return NULL;
    }
    pthread_mutex_lock(&w->mu);
    while (!w->ready) pthread_cond_wait(&w->ready_cv, &w->mu);
    int ok = w->ready > 0;
    pthread_mutex_unlock(&w->mu);
    if (!ok) {
        pthread_join(w->thread, NULL);
        rc_fail("%s", w->ready_err);
        if (w->bt) rc_batcher_free(w->bt);
        if (w->b) rc_backend_close(w->b);
        free(w->controls);
        free(w);
        return NULL;
    }
    return w;
}

void rc_worker_stop(rc_worker *w) {
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_broadcast(&w->work);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    if (w->bt) rc_batcher_free(w->bt);
    if (w->b) rc_backend_close(w->b);
    free(w->controls);
    free(w->by_id);
    free(w->finished);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->work);
    pthread_cond_destroy(&w->ready_cv);
    free(w);
}

int rc_worker_load(rc_worker *w) {
    pthread_mutex_lock(&w->mu);
    int n = w->n_jobs;
    pthread_mutex_unlock(&w->mu);
    return n;
}

int rc_worker_submit(rc_worker *w, rc_job *j) {
    pthread_mutex_lock(&w->mu);
    if (w->stop || w->n_jobs >= w->o.max_queue) {
        pthread_mutex_unlock(&w->mu);
        return -1;
    }
    j->refs++; // the engine's
    w->n_jobs++;
    if (w->pending_tail) w->pending_tail->next = j;
    else w->pending = j;
    w->pending_tail = j;
    pthread_cond_signal(&w->work);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

int rc_job_poll(rc_worker *w, rc_job *j, size_t sent, int wait_ms, char **text, size_t *len,
                int *finish) {
    *text = NULL;
    *len = 0;
    pthread_mutex_lock(&w->mu);
    if (j->safe <= sent && j->finish < 0 && wait_ms > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += wait_ms / 1000;
        ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        while (j->safe <= sent && j->finish < 0)
            if (pthread_cond_timedwait(&j->cv, &w->mu, &ts) == ETIMEDOUT) break;
    }
    int rc = 0;
    if (j->safe > sent) {
        *len = j->safe - sent;
        if ((*text = malloc(*len + 1))) {
            memcpy(*text, j->text + sent, *len);
            (*text)[*len] = 0;
        } else {
            *len = 0;
            rc = -1;
        }
    }
    *finish = j->finish;
    pthread_mutex_unlock(&w->mu);
    return rc;
}

void rc_job_counts(rc_worker *w, rc_job *j, int *prompt_tokens, int *completion_tokens, int *cached) {
    pthread_mutex_lock(&w->mu);
    if (cached) *cached = j->cached;
    *prompt_tokens = j->prompt_len;
    *completion_tokens = j->n_tokens;
    pthread_mutex_unlock(&w->mu);
}

void rc_job_cancel(rc_worker *w, rc_job *j) {
    pthread_mutex_lock(&w->mu);
    if (j->finish < 0 && !j->cancel) {
        j->cancel = 1;
        pthread_cond_signal(&w->work);
    }
    pthread_mutex_unlock(&w->mu);
}

void rc_job_release(rc_worker *w, rc_job *j) {
    if (!j) return;
    pthread_mutex_lock(&w->mu);
    if (j->finish < 0 && !j->cancel) {
        j->cancel = 1;
        pthread_cond_signal(&w->work);
    }
    job_unref(j);
    pthread_mutex_unlock(&w->mu);
}
