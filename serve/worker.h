// The server's engine thread: it alone owns the backend and the batcher (engine/generate.h) and
// drives it step by step. HTTP threads hand requests ("jobs") over through a bounded queue; a
// job joins the running batch at the next step, and its text comes back through the job
// (detokenized, stop strings cut, held back while it could still grow into one) to whichever
// thread waits on it. Cancelling a job (client gone, timeout) ends it at the next step.
#pragma once
#include <stddef.h>

#include "engine/generate.h"
#include "engine/model.h"
#include "engine/value_mlp.h"
#include "serve/api.h"
#include "tokenizer/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { RC_JOB_FAILED = 100 }; // besides RC_FINISH_*: the engine refused or failed the request

typedef struct rc_job rc_job;
typedef struct rc_worker rc_worker;

typedef struct {
    const rc_model *model;       // loaded, not owned
    rc_backend_opts backend;     // how to open the backend (in the engine thread)
    const rc_tokenizer *tok;     // not owned (thread-safe for decoding)
    const rc_value_mlp *values;  // value networks to upload (control id i = values[i]), not owned
    int n_values;                //
    int max_queue;               // jobs waiting or running at most (more: rc_worker_submit fails)
    int prefix_reuse;            // keep a slot's KV prefix for the next prompt that shares it
} rc_worker_opts;

// Starts the engine thread, which opens the backend and uploads the value networks; returns
// once that is done. NULL + error (the backend's) on failure.
rc_worker *rc_worker_start(const rc_worker_opts *o);
// Stops the thread (running jobs fail with "server shutting down") and frees the backend.
void rc_worker_stop(rc_worker *w);
// Jobs waiting or running now.
int rc_worker_load(rc_worker *w);

// A job for prompt ids (copied) with r's generation settings (its prompt fields are ignored) and
// up to RC_API_MAX_STOP stop strings (copied). NULL when out of memory.
rc_job *rc_job_new(const int *prompt, int prompt_len, const rc_request *r, char *const *stop,
                   int n_stop);
// Queues the job for the engine. 0; -1 when the queue is full (the job is not taken).
int rc_worker_submit(rc_worker *w, rc_job *j);
// Waits up to wait_ms for text beyond the first `sent` bytes or for the end. Returns the new
// bytes (malloc'd copy in *text, *len bytes; *text NULL when none) and the state in *finish
// (-1 while running, RC_FINISH_* or RC_JOB_FAILED). 0 / -1 (out of memory).
int rc_job_poll(rc_worker *w, rc_job *j, size_t sent, int wait_ms, char **text, size_t *len,
                int *finish);
// Token counts and the failure message (valid once finished); cached: prompt tokens whose KV was
// reused from an earlier request (may be NULL).
void rc_job_counts(rc_worker *w, rc_job *j, int *prompt_tokens, int *completion_tokens, int *cached);
const char *rc_job_error(const rc_job *j);
// Asks the engine to end the job at its next step (no-op once finished).
void rc_job_cancel(rc_worker *w, rc_job *j);
// The caller's reference is gone (cancels the job if it still runs); freed when the engine is
// done with it too.
void rc_job_release(rc_worker *w, rc_job *j);

#ifdef __cplusplus
}
#endif
