// Batched generation over the ragged-batch forward: prompts are prefilled, then decoded one
// token per live sequence per step. Hooks let the pipeline capture the post-norm hidden state
// of every step (activation extraction) and edit it before the LM head (RE-Control).
#pragma once
#include "engine/forward.h"
#include "engine/sampler.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { RC_FINISH_LENGTH = 0, RC_FINISH_EOS = 1 };

typedef struct {
    // Called once per decode step, before the LM head, with the post-norm states (n, d) of the
    // live sequences; seq[i] is the prompt index, step[i] its step number t (0 = the state at
    // the last prompt position). Returns 0, or -1 to abort generation.
    int (*capture)(void *ud, int n, const float *hidden, const int *seq, const int *step);
    void *capture_ud;
    // Called after capture; may change hidden in place (the RE-Control edit). 0 / -1.
    int (*edit)(void *ud, int n, float *hidden, const int *seq);
    void *edit_ud;
    // Called for every emitted token (streaming output). 0 / -1.
    int (*on_token)(void *ud, int seq, int token);
    void *token_ud;
} rc_gen_hooks;

typedef struct {
    int *tokens;  // new tokens (malloc'd, owned by the caller after rc_generate), EOS included
    int n_tokens; //
    int finish;   // RC_FINISH_LENGTH or RC_FINISH_EOS
} rc_gen_output;

typedef struct {
    int max_new_tokens;
    int stop_at_eos; // stop a sequence after it emits one of the model's EOS ids (default 1)
    rc_sample_params sample;
} rc_gen_params;

// Generates for n prompts, batching up to e->kv.n_slots sequences at a time. out has n entries.
// hooks may be NULL. 0 / -1 (on -1 the outputs written so far are still valid and owned).
int rc_generate(rc_engine *e, int n, const int *const *prompts, const int *prompt_lens,
                const rc_gen_params *gp, const rc_gen_hooks *hooks, rc_gen_output *out);
void rc_gen_output_free(rc_gen_output *o, int n);

#ifdef __cplusplus
}
#endif
