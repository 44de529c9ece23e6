// The generation loop over a backend (engine/generate.h): continuous batching of requests. Each
// step admits queued requests into free KV slots, runs one forward of the decode token of every
// decoding request plus as much prompt prefill as fits in max_tokens, then, on the rows that
// pick a token: capture (asynchronous, handed to the hook one step later), the RE-Control edit
// per request group, sampling with each request's own generator, and emission.
#include "engine/generate.h"

#include <stdlib.h>
#include <string.h>

#include "base/common.h"

enum { RQ_FREE = 0, RQ_QUEUED, RQ_RUNNING, RQ_DONE };

typedef struct {
    int state;
    int *prompt, prompt_len, cursor; // cursor: next prompt position to prefill
    int cached;                      // prompt positions whose KV was kept from the slot's last use
    int *out, n_out;                 // (max_new) new tokens
    int finish;
    int slot;
    int *stop, n_stop;
    rc_request r; // settings (pointers in it are not used after submit)
    rc_rng rng;
} req_state;

typedef struct {
    int req, bi; // request id, index in the batch
} row_ent;

struct rc_batcher {
    rc_backend *b;
    rc_gen_hooks h;
    req_state *rq; // (cap_rq) indexed by id
    int cap_rq;
    int *queue, q_head, q_len, q_cap; // ring of queued ids
    int *slot_req;                    // (n_slots) id or -1
    int n_running;
    // prefix reuse: the tokens whose KV each slot holds at positions 0..hist_len-1
    int prefix_reuse;
    int *slot_hist, *slot_hist_len; // (n_slots * max_len), (n_slots); NULL until enabled
    // step buffers
    int *b_tok, *b_slot, *b_pos, *b_row;     // (max_tokens)
    row_ent *rows;                           // (row_cap)
    int *row_req, *row_step, *tok;           // (row_cap)
    float *u;                                // (row_cap)
    rc_sample_params *sp;                    // (row_cap)
    // the capture waiting to be handed to the hook
    int cap_n, cap_buf;
    int *cap_req[2], *cap_step[2]; // (row_cap) each
};

static uint64_t seq_seed(uint64_t seed, uint64_t idx) {
    return seed ^ (0xD1B54A32D192ED03ull * (idx + 1));
}

void rc_batcher_free(rc_batcher *bt) {
    if (!bt) return;
    for (int i = 0; i < bt->cap_rq; i++) {
        free(bt->rq[i].prompt);
        free(bt->rq[i].out);
        free(bt->rq[i].stop);
    }
    free(bt->rq);
    free(bt->queue);
    free(bt->slot_req);
    free(bt->slot_hist);
    free(bt->slot_hist_len);
    free(bt->b_tok);
    free(bt->rows);
    free(bt->row_req);
    free(bt->u);
    free(bt->sp);
    free(bt->cap_req[0]);
    free(bt->cap_req[1]);
    free(bt);
}

rc_batcher *rc_batcher_new(rc_backend *b, const rc_gen_hooks *hooks) {
    if (!b) {
        rc_fail("rc_batcher_new: no backend");
        return NULL;
    }
    rc_batcher *bt = rc_calloc(1, sizeof *bt, "batcher");
    if (!bt) return NULL;
    bt->b = b;
    if (hooks) bt->h = *hooks;
    bt->cap_n = 0;
    const size_t T = (size_t)b->max_tokens, R = (size_t)b->row_cap;
    bt->slot_req = rc_malloc(sizeof(int) * (size_t)b->n_slots, "batcher slots");
    bt->b_tok = rc_malloc(sizeof(int) * T * 4, "batcher batch");
    bt->rows = rc_malloc(sizeof(row_ent) * R, "batcher rows");
    bt->row_req = rc_malloc(sizeof(int) * R * 3, "batcher rows");
    bt->u = rc_malloc(sizeof(float) * R, "batcher draws");
    bt->sp = rc_malloc(sizeof(rc_sample_params) * R, "batcher sampling");
    bt->cap_req[0] = rc_malloc(sizeof(int) * R * 2, "capture rows");
    bt->cap_req[1] = rc_malloc(sizeof(int) * R * 2, "capture rows");
    if (!bt->slot_req || !bt->b_tok || !bt->rows || !bt->row_req || !bt->u || !bt->sp ||
        !bt->cap_req[0] || !bt->cap_req[1]) {
        rc_batcher_free(bt);
        return NULL;
    }
    bt->b_slot = bt->b_tok + T;
    bt->b_pos = bt->b_tok + 2 * T;
    bt->b_row = bt->b_tok + 3 * T;
    bt->row_step = bt->row_req + R;
    bt->tok = bt->row_req + 2 * R;
    bt->cap_step[0] = bt->cap_req[0] + R;
    bt->cap_step[1] = bt->cap_req[1] + R;
    for (int s = 0; s < b->n_slots; s++) bt->slot_req[s] = -1;
    return bt;
}

static int is_stop(const rc_batcher *bt, const req_state *q, int tok) {
    if (q->r.stop_at_eos)
        for (int i = 0; i < bt->b->cfg.n_eos; i++)
            if (bt->b->cfg.eos_token_ids[i] == tok) return 1;
    for (int i = 0; i < q->n_stop; i++)
        if (q->stop[i] == tok) return 1;
    return 0;
}

int rc_batcher_submit(rc_batcher *bt, const rc_request *r) {
    const rc_backend *b = bt->b;
    const rc_config *c = &b->cfg;
    if (c->arch != RC_ARCH_CAUSAL_LM)
        return rc_fail("%s is a reward model (no LM head); it cannot generate",
                       c->source[0] ? c->source : "the model");
    if (!r->prompt || r->prompt_len < 1)
        return rc_fail("the prompt is empty (at least one token, e.g. BOS, is needed)");
    if (r->max_new_tokens < 1)
        return rc_fail("max_new_tokens %d (must be >= 1)", r->max_new_tokens);
    // The last emitted token is never fed back, so len + max_new - 1 positions are used.
    long need = (long)r->prompt_len + r->max_new_tokens - 1;
    if (need > b->max_len)
        return rc_fail("the prompt has %d tokens; with max_new_tokens %d it needs %ld KV "
                       "positions but the cache holds %d per sequence",
                       r->prompt_len, r->max_new_tokens, need, b->max_len);
    for (int j = 0; j < r->prompt_len; j++)
        if (r->prompt[j] < 0 || r->prompt[j] >= c->vocab_size)
            return rc_fail("prompt token %d is id %d, outside the vocabulary [0, %d)", j,
                           r->prompt[j], c->vocab_size);
    const rc_sample_params *sp = &r->sample;
    if (!(sp->temperature >= 0 && sp->temperature < 1e30f) || sp->top_k < 0 ||
        !(sp->top_p > 0 && sp->top_p <= 1))
        return rc_fail("sampling: temperature %g (>= 0, finite), top_k %d (>= 0), top_p %g (in "
                       "(0, 1])", (double)sp->temperature, sp->top_k, (double)sp->top_p);
    if (r->control >= 0 && (r->steps < 0 || !(r->alpha >= 0 && r->alpha < 1e30f)))
        return rc_fail("RE-Control: steps %d (>= 0) and step size %g (>= 0, finite)", r->steps,
                       (double)r->alpha);
    if (r->control >= 0 && r->steps > 0 && r->control >= b->n_controls)
        return rc_fail("RE-Control: unknown control id %d (%d value networks loaded)", r->control,
                       b->n_controls);
    if (r->n_stop_ids < 0 || (r->n_stop_ids > 0 && !r->stop_ids))
        return rc_fail("bad stop ids");
    int id = -1;
    for (int i = 0; i < bt->cap_rq; i++)
        if (bt->rq[i].state == RQ_FREE) {
            id = i;
            break;
        }
    if (id < 0) {
        int nc = bt->cap_rq ? bt->cap_rq * 2 : 16;
        req_state *nr = realloc(bt->rq, sizeof *nr * (size_t)nc);
        if (!nr) return rc_fail("out of memory (requests)");
        memset(nr + bt->cap_rq, 0, sizeof *nr * (size_t)(nc - bt->cap_rq));
        bt->rq = nr;
        id = bt->cap_rq;
        bt->cap_rq = nc;
    }
    if (bt->q_len == bt->q_cap) {
        int nc = bt->q_cap ? bt->q_cap * 2 : 16;
        int *nq = rc_malloc(sizeof(int) * (size_t)nc, "request queue");
        if (!nq) return -1;
        for (int i = 0; i < bt->q_len; i++) nq[i] = bt->queue[(bt->q_head + i) % bt->q_cap];
        free(bt->queue);
        bt->queue = nq;
        bt->q_head = 0;
        bt->q_cap = nc;
    }
    req_state *q = &bt->rq[id];
    free(q->prompt);
    free(q->out);
    free(q->stop);
    memset(q, 0, sizeof *q);
    q->prompt = rc_malloc(sizeof(int) * (size_t)r->prompt_len, "request prompt");
    q->out = rc_malloc(sizeof(int) * (size_t)r->max_new_tokens, "request tokens");
    q->stop = r->n_stop_ids ? rc_malloc(sizeof(int) * (size_t)r->n_stop_ids, "stop ids") : NULL;
    if (!q->prompt || !q->out || (r->n_stop_ids && !q->stop)) {
        free(q->prompt), free(q->out), free(q->stop);
        memset(q, 0, sizeof *q);
        return -1;
    }
    memcpy(q->prompt, r->prompt, sizeof(int) * (size_t)r->prompt_len);
    if (r->n_stop_ids) memcpy(q->stop, r->stop_ids, sizeof(int) * (size_t)r->n_stop_ids);
    q->n_stop = r->n_stop_ids;
    q->prompt_len = r->prompt_len;
    q->r = *r;
    q->r.prompt = NULL;
    q->r.stop_ids = NULL;
    if (q->r.control < 0 || q->r.steps == 0) q->r.control = -1;
    q->finish = -1;
    q->slot = -1;
    q->state = RQ_QUEUED;
    rc_rng_seed(&q->rng, seq_seed(r->sample.seed, r->index));
    bt->queue[(bt->q_head + bt->q_len++) % bt->q_cap] = id;
    return id;
}

// Marks a request finished, frees its slot and tells the hook. 0 / -1 (hook abort).
static int finish_req(rc_batcher *bt, int id, int finish) {
    req_state *q = &bt->rq[id];
    if (q->state == RQ_RUNNING) {
        bt->slot_req[q->slot] = -1;
        bt->n_running--;
    }
    q->state = RQ_DONE;
    q->finish = finish;
    q->slot = -1;
    if (bt->h.on_finish && bt->h.on_finish(bt->h.ud, id, finish))
        return rc_fail("generation: the finish hook stopped the run");
    return 0;
}

int rc_batcher_cancel(rc_batcher *bt, int id) {
    if (id < 0 || id >= bt->cap_rq || bt->rq[id].state == RQ_FREE)
        return rc_fail("cancel: unknown request %d", id);
    req_state *q = &bt->rq[id];
    if (q->state == RQ_DONE) return 0;
    if (q->state == RQ_QUEUED) {
        int k = 0;
        for (int i = 0; i < bt->q_len; i++) {
            int x = bt->queue[(bt->q_head + i) % bt->q_cap];
            if (x != id) bt->queue[(bt->q_head + k++) % bt->q_cap] = x;
        }
        bt->q_len = k;
    }
    return finish_req(bt, id, RC_FINISH_CANCELLED);
}

int rc_batcher_result(const rc_batcher *bt, int id, const int **tokens, int *n, int *finish) {
    if (id < 0 || id >= bt->cap_rq || bt->rq[id].state == RQ_FREE)
        return rc_fail("unknown request %d", id);
    const req_state *q = &bt->rq[id];
    if (tokens) *tokens = q->out;
    if (n) *n = q->n_out;
    if (finish) *finish = q->state == RQ_DONE ? q->finish : -1;
    return 0;
}

void rc_batcher_release(rc_batcher *bt, int id) {
    if (id < 0 || id >= bt->cap_rq || bt->rq[id].state != RQ_DONE) return;
    req_state *q = &bt->rq[id];
    free(q->prompt), free(q->out), free(q->stop);
    memset(q, 0, sizeof *q);
}

// Hands the pending capture to the hook. 0 / -1.
static int flush_capture(rc_batcher *bt) {
    if (bt->cap_n == 0) return 0;
    int n = bt->cap_n, buf = bt->cap_buf;
    bt->cap_n = 0;
    const float *h = rc_backend_capture_wait(bt->b, buf);
    if (!h) return rc_fail_ctx("generation: capture");
    if (bt->h.capture(bt->h.ud, n, h, bt->cap_req[buf], bt->cap_step[buf]))
        return rc_fail_ctx("generation: capture hook");
    return 0;
}

// Rows that share a control setting sit together so that each group is one edit.
static int row_cmp_ctx_free(const req_state *a, const req_state *b) {
    if (a->r.control != b->r.control) return a->r.control < b->r.control ? -1 : 1;
    if (a->r.steps != b->r.steps) return a->r.steps < b->r.steps ? -1 : 1;
    if (a->r.alpha != b->r.alpha) return a->r.alpha < b->r.alpha ? -1 : 1;
    return 0;
}

static void sort_rows(rc_batcher *bt, row_ent *r, int n) { // insertion sort: stable, n small
    for (int i = 1; i < n; i++) {
        row_ent x = r[i];
        int j = i - 1;
        while (j >= 0 && row_cmp_ctx_free(&bt->rq[r[j].req], &bt->rq[x.req]) > 0) {
            r[j + 1] = r[j];
            j--;
        }
        r[j + 1] = x;
    }
}

// The token whose KV this step writes at (slot, pos); what was beyond pos is no longer followed.
static void hist_put(rc_batcher *bt, int slot, int pos, int tok) {
    bt->slot_hist[(size_t)slot * bt->b->max_len + pos] = tok;
    bt->slot_hist_len[slot] = pos + 1;
}

// The free slot for q (one exists): the lowest-index one, or with prefix reuse the one whose KV
// shares the longest prefix with q's prompt (lowest index on ties); *keep: that prefix's length,
// at most prompt_len - 1, as the last prompt position always runs (it picks the first new token).
static int pick_slot(const rc_batcher *bt, const req_state *q, int *keep) {
    int slot = -1;
    *keep = 0;
    for (int s = 0; s < bt->b->n_slots; s++) {
        if (bt->slot_req[s] >= 0) continue;
        if (slot < 0) slot = s;
        if (!bt->prefix_reuse) break;
        const int *h = bt->slot_hist + (size_t)s * bt->b->max_len;
        int lim = bt->slot_hist_len[s] < q->prompt_len - 1 ? bt->slot_hist_len[s] : q->prompt_len - 1;
        int c = 0;
        while (c < lim && h[c] == q->prompt[c]) c++;
        if (c > *keep) *keep = c, slot = s;
    }
    return slot;
}

int rc_batcher_set_prefix_reuse(rc_batcher *bt, int on) {
    if (on && !bt->slot_hist) {
        const size_t S = (size_t)bt->b->n_slots;
        bt->slot_hist = rc_malloc(sizeof(int) * S * (size_t)bt->b->max_len, "prefix reuse");
        bt->slot_hist_len = rc_calloc(S, sizeof(int), "prefix reuse");
        if (!bt->slot_hist || !bt->slot_hist_len) {
            free(bt->slot_hist);
            free(bt->slot_hist_len);
            bt->slot_hist = bt->slot_hist_len = NULL;
            return -1;
        }
    }
    bt->prefix_reuse = on != 0;
    return 0;
}

int rc_batcher_cached(const rc_batcher *bt, int id) {
    if (id < 0 || id >= bt->cap_rq || bt->rq[id].state == RQ_FREE) return 0;
    return bt->rq[id].cached;
}

int rc_batcher_step(rc_batcher *bt) {
    rc_backend *b = bt->b;
    const int S = b->n_slots, T = b->max_tokens, d = b->cfg.hidden_size;
    (void)d;
    // admit queued requests into free slots, in submission order
    while (bt->q_len > 0 && bt->n_running < S) {
        int id = bt->queue[bt->q_head];
        bt->q_head = (bt->q_head + 1) % bt->q_cap;
        bt->q_len--;
        req_state *q = &bt->rq[id];
        int keep, slot = pick_slot(bt, q, &keep);
        q->state = RQ_RUNNING;
        q->slot = slot;
        q->cursor = keep;
        q->cached = keep;
        bt->slot_req[slot] = id;
        bt->n_running++;
    }
    if (bt->n_running == 0) {
        if (flush_capture(bt)) return -1;
        return bt->q_len;
    }
    // decode tokens first (one per decoding request), then prompt chunks with what is left
    int nb = 0, nrows = 0;
    for (int s = 0; s < S && nb < T; s++) {
        int id = bt->slot_req[s];
        if (id < 0) continue;
        req_state *q = &bt->rq[id];
        if (q->cursor < q->prompt_len) continue;
        bt->b_tok[nb] = q->out[q->n_out - 1];
        bt->b_slot[nb] = s;
        bt->b_pos[nb] = q->prompt_len + q->n_out - 1;
        if (bt->prefix_reuse) hist_put(bt, s, bt->b_pos[nb], bt->b_tok[nb]);
        bt->rows[nrows++] = (row_ent){id, nb};
        nb++;
    }
    for (int s = 0; s < S && nb < T; s++) {
        int id = bt->slot_req[s];
        if (id < 0) continue;
        req_state *q = &bt->rq[id];
        while (nb < T && q->cursor < q->prompt_len) {
            int p = q->cursor++;
            bt->b_tok[nb] = q->prompt[p];
            bt->b_slot[nb] = s;
            bt->b_pos[nb] = p;
            if (bt->prefix_reuse) hist_put(bt, s, p, q->prompt[p]);
            bt->b_row[nb] = -1;
            if (p == q->prompt_len - 1) bt->rows[nrows++] = (row_ent){id, nb};
            nb++;
        }
    }
    sort_rows(bt, bt->rows, nrows);
    for (int i = 0; i < nb; i++) bt->b_row[i] = -1;
    for (int r = 0; r < nrows; r++) {
        bt->b_row[bt->rows[r].bi] = r;
        bt->row_req[r] = bt->rows[r].req;
        bt->row_step[r] = bt->rq[bt->rows[r].req].n_out;
    }
    if (rc_backend_forward(b, nb, bt->b_tok, bt->b_slot, bt->b_pos, bt->b_row))
        return rc_fail_ctx("generation");
    if (nrows == 0) return bt->n_running + bt->q_len; // only prompt chunks this round
    // capture the unedited states (the copy overlaps what follows)
    int cur = -1;
    if (bt->h.capture) {
        cur = bt->cap_n > 0 ? 1 - bt->cap_buf : 0;
        if (rc_backend_capture_begin(b, nrows, cur)) return rc_fail_ctx("generation: capture");
        memcpy(bt->cap_req[cur], bt->row_req, sizeof(int) * (size_t)nrows);
        memcpy(bt->cap_step[cur], bt->row_step, sizeof(int) * (size_t)nrows);
    }
    // RE-Control, one edit per group of rows with the same setting
    for (int r0 = 0; r0 < nrows;) {
        const req_state *q = &bt->rq[bt->row_req[r0]];
        int r1 = r0 + 1;
        while (r1 < nrows && row_cmp_ctx_free(&bt->rq[bt->row_req[r1]], q) == 0) r1++;
        if (q->r.control >= 0 &&
            rc_backend_edit(b, q->r.control, r0, r1 - r0, q->r.alpha, q->r.steps))
            return rc_fail_ctx("generation: RE-Control edit");
        r0 = r1;
    }
    // the previous step's states, while this step runs
    if (flush_capture(bt)) return -1;
    if (cur >= 0) {
        bt->cap_n = nrows;
        bt->cap_buf = cur;
    }
    for (int r = 0; r < nrows; r++) {
        req_state *q = &bt->rq[bt->row_req[r]];
        bt->sp[r] = q->r.sample;
        int greedy = !(q->r.sample.temperature > 0) || q->r.sample.top_k == 1;
        bt->u[r] = greedy ? 0.f : rc_rng_uniform(&q->rng);
    }
    if (rc_backend_sample(b, nrows, bt->sp, bt->u, bt->tok)) return rc_fail_ctx("generation");
    for (int r = 0; r < nrows; r++) {
        int id = bt->row_req[r], tok = bt->tok[r];
        req_state *q = &bt->rq[id];
        if (q->state != RQ_RUNNING) continue; // cancelled by a hook during this step
        q->out[q->n_out++] = tok;
        int fin = -1;
        if (bt->h.on_token) {
            int hr = bt->h.on_token(bt->h.ud, id, tok);
            if (hr < 0) return rc_fail("generation: the token hook stopped the run");
            if (hr == 1) fin = RC_FINISH_STOP;
        }
        if (fin < 0 && is_stop(bt, q, tok)) fin = RC_FINISH_EOS;
        else if (fin < 0 && q->n_out >= q->r.max_new_tokens) fin = RC_FINISH_LENGTH;
        if (fin >= 0 && finish_req(bt, id, fin)) return -1;
    }
    if (bt->n_running == 0 && bt->q_len == 0 && flush_capture(bt)) return -1;
    return bt->n_running + bt->q_len;
}

void rc_gen_output_free(rc_gen_output *o, int n) {
    if (!o) return;
    for (int i = 0; i < n; i++) {
        free(o[i].tokens);
        o[i].tokens = NULL;
        o[i].n_tokens = 0;
    }
}

int rc_generate(rc_backend *b, int n, const int *const *prompts, const int *prompt_lens,
                const rc_gen_params *gp, const rc_gen_hooks *hooks, rc_gen_output *out) {
    if (!b) return rc_fail("rc_generate: no backend");
    if (n < 0 || (n > 0 && (!prompts || !prompt_lens || !out || !gp)))
        return rc_fail("rc_generate: bad arguments");
    for (int i = 0; i < n; i++) {
        out[i].tokens = NULL;
        out[i].n_tokens = 0;
        out[i].finish = RC_FINISH_LENGTH;
    }
    if (n == 0) return 0;
    rc_batcher *bt = rc_batcher_new(b, hooks);
    if (!bt) return -1;
    int rc = -1;
    for (int i = 0; i < n; i++) {
        rc_request r = {.prompt = prompts[i], .prompt_len = prompt_lens[i],
                        .max_new_tokens = gp->max_new_tokens, .stop_at_eos = gp->stop_at_eos,
                        .stop_ids = gp->stop_ids, .n_stop_ids = gp->n_stop_ids,
                        .sample = gp->sample, .index = gp->index0 + (uint64_t)i,
                        .control = gp->control, .alpha = gp->alpha, .steps = gp->steps};
        if (rc_batcher_submit(bt, &r) != i) {
            rc_fail_ctx("rc_generate: prompt %d", i);
            goto done;
        }
    }
    int live;
    while ((live = rc_batcher_step(bt)) > 0) {
    }
    if (live == 0) rc = 0;
done:
    // hand over what was generated, also after an error
    for (int i = 0; i < n && i < bt->cap_rq; i++) {
        req_state *q = &bt->rq[i];
        if (q->state == RQ_FREE) continue;
        out[i].tokens = q->out;
        out[i].n_tokens = q->n_out;
        out[i].finish = q->finish == RC_FINISH_EOS ? RC_FINISH_EOS
                        : q->finish >= 0           ? q->finish
                                                   : RC_FINISH_LENGTH;
        q->out = NULL;
    }
    rc_batcher_free(bt);
    return rc;
}
