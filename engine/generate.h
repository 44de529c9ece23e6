// The one generation loop, over any backend (engine/backend.h): continuous batching of requests
// (each KV slot holds one live sequence; a step runs the decode token of every decoding slot plus
// as much prompt prefill as fits, so a long prompt does not stall the others; a finished or
// cancelled request frees its slot for the next one), with the RE-Control edit of each request's
// rows inside the loop and an optional capture of every step's post-norm states.
// Each request samples from its own generator, seeded from its seed and index, so its tokens do
// not depend on the batch it ran in or on the device.
//
// rc_batcher is the step-wise form (the server drives it); rc_generate runs a list of prompts to
// the end through it.
#pragma once
#include <stdint.h>

#include "engine/backend.h"
#include "engine/sampler.h"

#ifdef __cplusplus
extern "C" {
#endif

// The most new tokens (or prompt tokens) a command accepts per sequence.
#define RC_MAX_NEW_TOKENS (1 << 20)

enum { RC_FINISH_LENGTH = 0, RC_FINISH_EOS = 1, RC_FINISH_STOP = 2, RC_FINISH_CANCELLED = 3 };

typedef struct {
    const int *prompt;        // (prompt_len) ids, copied at submit; at least one
    int prompt_len;           //
    int max_new_tokens;       // >= 1
    int stop_at_eos;          // end after one of the model's EOS ids (emitted, kept in the output)
    const int *stop_ids;      // (n_stop_ids) more ids that end it the same way (a chat template's
    int n_stop_ids;           //  turn end); copied
    rc_sample_params sample;  // temperature 0 = greedy
    uint64_t index;           // the generator is seeded from (sample.seed, index)
    int control;              // RE-Control: a control id of the backend, or -1
    float alpha;              // its step size
    int steps;                // its number of ascent steps (0: no edit)
    void *user;               // the caller's, handed back in hooks
} rc_request;

typedef struct {
    // Once per step that chose tokens, with the post-norm states (n, d) of those rows BEFORE any
    // edit; req[i] is the request id, step[i] its step t (0 = the state at the last prompt
    // position, which picks the first new token). Called in step order per request, possibly one
    // step late (the copy overlaps the next step). 0, or -1 to abort the loop.
    int (*capture)(void *ud, int n, const float *hidden, const int *req, const int *step);
    // Every emitted token. 0; 1 ends this request now (RC_FINISH_STOP); -1 aborts the loop.
    int (*on_token)(void *ud, int req, int token);
    // Once per request when it ends (finish: RC_FINISH_*). 0 / -1 aborts the loop.
    int (*on_finish)(void *ud, int req, int finish);
    void *ud;
} rc_gen_hooks;

typedef struct rc_batcher rc_batcher;

// A batcher over b (not owned) with hooks (copied; may be NULL). NULL + error on failure.
rc_batcher *rc_batcher_new(rc_backend *b, const rc_gen_hooks *hooks);
void rc_batcher_free(rc_batcher *bt);
// Queues a request (checked: ids in the vocabulary, prompt + new tokens within the KV length,
// control id known). Returns its id (>= 0) or -1 with the reason.
int rc_batcher_submit(rc_batcher *bt, const rc_request *r);
// One step: admits queued requests into free slots, runs one forward (decode rows first, then
// prefill chunks), captures, edits, samples and emits. Returns the number of requests still
// queued or running (0: idle), or -1 on error (then the batcher should be freed).
int rc_batcher_step(rc_batcher *bt);
// Prefix reuse (off by default): a queued request goes to the free slot whose KV cache already
// holds the longest prefix of its prompt (from that slot's previous request: its prompt and the
// tokens fed back), and prefill starts after that prefix (the last prompt position always runs).
// Valid because a slot's KV at a position depends only on the tokens up to it; it assumes nothing
// but this batcher writes the backend's KV while it lives. The kept values were computed in
// another batch, so a token's numbers may differ in rounding from a full prefill (as between
// batch sizes). 0 / -1 (out of memory).
int rc_batcher_set_prefix_reuse(rc_batcher *bt, int on);
// Prompt positions of request id whose KV was kept rather than computed (0 without reuse).
int rc_batcher_cached(const rc_batcher *bt, int id);
// Ends a queued or running request now (RC_FINISH_CANCELLED; on_finish is called). 0 / -1.
int rc_batcher_cancel(rc_batcher *bt, int id);
// The tokens of a request so far (EOS / stop id included) and, once it ended, its finish
// (RC_FINISH_*; -1 while running). Valid until rc_batcher_release. 0 / -1 for an unknown id.
int rc_batcher_result(const rc_batcher *bt, int id, const int **tokens, int *n, int *finish);
// Forgets a finished request (its id may be reused).
void rc_batcher_release(rc_batcher *bt, int id);

typedef struct {
    int *tokens;  // new tokens (malloc'd, owned by the caller after rc_generate), EOS included
    int n_tokens; //
    int finish;   // RC_FINISH_*
} rc_gen_output;

typedef struct {
    int max_new_tokens;
    int stop_at_eos;  // default 1
    rc_sample_params sample;
    int control;      // RE-Control for every prompt: a control id of the backend, or -1
    float alpha;
    int steps;
    const int *stop_ids; // extra ids ending a sequence (may be NULL)
    int n_stop_ids;
    uint64_t index0;     // generator index of the first prompt (a rank's part of a longer list)
} rc_gen_params;

// Generates for n prompts (prompt i gets generator index index0 + i), up to b->n_slots at a time. out has
// n entries. hooks may be NULL (req ids in hooks are the prompt indices). 0 / -1 (on -1 the
// outputs written so far are still valid and owned).
int rc_generate(rc_backend *b, int n, const int *const *prompts, const int *prompt_lens,
                const rc_gen_params *gp, const rc_gen_hooks *hooks, rc_gen_output *out);
void rc_gen_output_free(rc_gen_output *o, int n);

#ifdef __cplusplus
}
#endif
