// Batched generation with continuous batching over the ragged-batch forward: each KV slot holds
// one live sequence; a step runs the decode token of every decoding slot plus as much prompt
// prefill as fits in max_tokens; a finished sequence frees its slot for the next prompt. Each
// sequence has its own RNG (seeded from the seed and its prompt index), so its tokens do not
// depend on the batch it ran in.
#include "engine/generate.h"

#include <stdlib.h>
#include <string.h>

#include "base/common.h"

typedef struct {
    int seq;    // prompt index, -1 when the slot is free
    int cursor; // next prompt position to prefill (== prompt_len once prefilled)
    int last;   // last emitted token (the next decode input)
    rc_rng rng;
} slot_state;

static uint64_t seq_seed(uint64_t seed, int idx) {
    return seed ^ (0xD1B54A32D192ED03ull * (uint64_t)(idx + 1));
}

static int is_eos(const rc_config *c, int tok) {
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_token_ids[i] == tok) return 1;
    return 0;
}

void rc_gen_output_free(rc_gen_output *o, int n) {
    if (!o) return;
    for (int i = 0; i < n; i++) {
        free(o[i].tokens);
        o[i].tokens = NULL;
        o[i].n_tokens = 0;
    }
}

int rc_generate(rc_engine *e, int n, const int *const *prompts, const int *prompt_lens,
                const rc_gen_params *gp, const rc_gen_hooks *hooks, rc_gen_output *out) {
    if (!e || !e->model) return rc_fail("rc_generate: engine not initialised");
    if (n < 0 || (n > 0 && (!prompts || !prompt_lens || !out || !gp)))
        return rc_fail("rc_generate: bad arguments");
    const rc_config *c = &e->model->cfg;
    if (c->arch != RC_ARCH_CAUSAL_LM || !e->model->w.lm_head)
        return rc_fail("rc_generate: %s is a reward model (no LM head); it cannot generate",
                       c->source[0] ? c->source : "the model");
    const int max_new = gp->max_new_tokens;
    if (max_new < 0) return rc_fail("rc_generate: max_new_tokens %d is negative", max_new);
    for (int i = 0; i < n; i++) {
        out[i].tokens = NULL;
        out[i].n_tokens = 0;
        out[i].finish = RC_FINISH_LENGTH;
    }
    for (int i = 0; i < n; i++) {
        if (prompt_lens[i] < 1 || !prompts[i])
            return rc_fail("rc_generate: prompt %d is empty (at least one token, e.g. BOS, is "
                           "needed)",
                           i);
        // The last emitted token is never fed back, so len + max_new - 1 positions are used.
        long need = (long)prompt_lens[i] + (max_new > 0 ? max_new - 1 : 0);
        if (need > e->kv.max_len)
            return rc_fail("rc_generate: prompt %d has %d tokens; with max_new_tokens %d it needs "
                           "%ld KV positions but the cache holds %d per sequence",
                           i, prompt_lens[i], max_new, need, e->kv.max_len);
        for (int j = 0; j < prompt_lens[i]; j++)
            if (prompts[i][j] < 0 || prompts[i][j] >= c->vocab_size)
                return rc_fail("rc_generate: prompt %d token %d is id %d, outside the vocabulary "
                               "[0, %d)",
                               i, j, prompts[i][j], c->vocab_size);
    }
    if (n == 0 || max_new == 0) return 0;
    for (int i = 0; i < n; i++)
        if (!(out[i].tokens = rc_malloc(sizeof(int) * (size_t)max_new, "generated tokens")))
            return -1;

    const int S = e->kv.n_slots, T = e->max_tokens, d = c->hidden_size, V = c->vocab_size;
    int rc = -1;
    slot_state *ss = rc_calloc((size_t)S, sizeof *ss, "generation slots");
    int *b_tok = rc_malloc(sizeof(int) * (size_t)T * 4, "generation batch");
    float *hidden = rc_malloc(sizeof(float) * (size_t)S * d, "generation hidden states");
    float *logits = rc_malloc(sizeof(float) * (size_t)S * V, "generation logits");
    float *scratch = rc_malloc(sizeof(float) * 2 * (size_t)V, "sampler scratch");
    int *row_slot = rc_malloc(sizeof(int) * (size_t)S * 3, "generation rows");
    if (!ss || !b_tok || !hidden || !logits || !scratch || !row_slot) goto done;
    int *b_slot = b_tok + T, *b_pos = b_tok + 2 * T, *b_row = b_tok + 3 * T;
    int *row_seq = row_slot + S, *row_step = row_slot + 2 * S;
    for (int s = 0; s < S; s++) ss[s].seq = -1;

    int next_prompt = 0, live = 0;
    for (;;) {
        for (int s = 0; s < S && next_prompt < n; s++)
            if (ss[s].seq < 0) {
                ss[s].seq = next_prompt;
                ss[s].cursor = 0;
                rc_rng_seed(&ss[s].rng, seq_seed(gp->sample.seed, next_prompt));
                next_prompt++;
                live++;
            }
        if (live == 0) break;
        // Decode tokens first (one per decoding slot), then prompt chunks with what is left.
        int nb = 0, nrows = 0;
        for (int s = 0; s < S && nb < T; s++) {
            int q = ss[s].seq;
            if (q < 0 || ss[s].cursor < prompt_lens[q]) continue;
            b_tok[nb] = ss[s].last;
            b_slot[nb] = s;
            b_pos[nb] = prompt_lens[q] + out[q].n_tokens - 1;
            b_row[nb] = nrows;
            row_slot[nrows] = s;
            row_seq[nrows] = q;
            row_step[nrows] = out[q].n_tokens;
            nrows++;
            nb++;
        }
        for (int s = 0; s < S && nb < T; s++) {
            int q = ss[s].seq;
            if (q < 0 || ss[s].cursor >= prompt_lens[q]) continue;
            while (nb < T && ss[s].cursor < prompt_lens[q]) {
                int p = ss[s].cursor++;
                b_tok[nb] = prompts[q][p];
                b_slot[nb] = s;
                b_pos[nb] = p;
                b_row[nb] = -1;
                if (p == prompt_lens[q] - 1) { // the last prompt position picks token 0
                    b_row[nb] = nrows;
                    row_slot[nrows] = s;
                    row_seq[nrows] = q;
                    row_step[nrows] = 0;
                    nrows++;
                }
                nb++;
            }
        }
        if (rc_forward(e, nb, b_tok, b_slot, b_pos, b_row, hidden)) {
            rc_fail_ctx("rc_generate");
            goto done;
        }
        if (nrows == 0) continue; // only prompt chunks this round
        if (hooks && hooks->capture &&
            hooks->capture(hooks->capture_ud, nrows, hidden, row_seq, row_step)) {
            rc_fail_ctx("rc_generate: capture hook");
            goto done;
        }
        if (hooks && hooks->edit && hooks->edit(hooks->edit_ud, nrows, hidden, row_seq)) {
            rc_fail_ctx("rc_generate: edit hook");
            goto done;
        }
        rc_lm_head(e, nrows, hidden, logits);
        for (int r = 0; r < nrows; r++) {
            int s = row_slot[r], q = row_seq[r];
            int tok = rc_sample(logits + (size_t)r * V, V, &gp->sample, &ss[s].rng, scratch);
            out[q].tokens[out[q].n_tokens++] = tok;
            ss[s].last = tok;
            if (hooks && hooks->on_token && hooks->on_token(hooks->token_ud, q, tok)) {
                rc_fail_ctx("rc_generate: token hook");
                goto done;
            }
            int stop = 0;
            if (gp->stop_at_eos && is_eos(c, tok)) {
                out[q].finish = RC_FINISH_EOS;
                stop = 1;
            } else if (out[q].n_tokens >= max_new) {
                out[q].finish = RC_FINISH_LENGTH;
                stop = 1;
            }
            if (stop) {
                ss[s].seq = -1;
                live--;
            }
        }
    }
    rc = 0;
done:
    free(ss);
    free(b_tok);
    free(hidden);
    free(logits);
    free(scratch);
    free(row_slot);
    return rc;
}
