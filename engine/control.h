// The RE-Control step: gradient ascent on the value network in representation space, applied to
// the post-norm hidden state (fp32) before the LM head, each row independently:
//   x_0 = o;  x_{k+1} = x_k + alpha * grad_x V(x_k)  for k < n_steps;  return x_{n_steps}.
#pragma once
#include "engine/value_mlp.h"

#ifdef __cplusplus
extern "C" {
#endif

// One range for the RE-Control settings of every command and recipe: a finite step size in
// [0, RC_CONTROL_MAX_STEP_SIZE] and at most RC_CONTROL_MAX_STEPS ascent steps per token (the
// paper's settings use 30-200; a step count of 10^9 would run for ever without progress).
#define RC_CONTROL_MAX_STEPS 1000
#define RC_CONTROL_MAX_STEP_SIZE 1000.0
// 0, or -1 with "--step-size expects ..." / "--steps expects ..." (library callers: recipes).
int rc_control_check_params(double step_size, long steps);

typedef struct {
    const rc_value_mlp *value; // not owned; its input width must equal the model's hidden size
    float alpha;               // step size
    int n_steps;               // number of ascent steps (0: no edit)
    rc_value_ws ws;            // scratch for up to cap_n rows
    float *grad;               // (cap_n, d)
    // Optional diagnostics, updated by every call: mean V before and after the edit over the
    // rows of the last call.
    double last_v0, last_vn;
    rc_value_mlp owned;        // the model when opened with rc_control_open (do not copy the struct)
} rc_control;

// Loads a value model (safetensors fc1.weight, ...) and checks that its input width equals the
// LLM's hidden size (clear error naming both otherwise); c owns the model. Free with
// rc_control_free. 0 / -1.
int rc_control_open(rc_control *c, const char *value_path, int hidden_size, float alpha, int n_steps,
                    int cap_n);

// Scratch for batches of up to cap_n rows. 0 / -1.
int rc_control_init(rc_control *c, const rc_value_mlp *value, float alpha, int n_steps, int cap_n);
void rc_control_free(rc_control *c);

// Edits hidden (n, d) in place. n_steps = 0 leaves it untouched bit for bit. Rows beyond the
// scratch capacity are processed in chunks. 0 / -1.
int rc_control_apply(rc_control *c, int n, float *hidden);


#ifdef __cplusplus
}
#endif
