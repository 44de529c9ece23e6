// The RE-Control value network V(o): a ReLU MLP d -> h1 [-> h2 ...] -> 1 in PyTorch nn.Linear
// layout (fcK.weight (out, in) row-major, fcK.bias (out)), with a batched forward, the backward
// w.r.t. the parameters (training) and w.r.t. the input (the control step). fp32 master weights.
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RC_VALUE_MAX_LAYERS 8 // linear layers (fc1..fc8)

// Compute precision of forward/backward. Parameters and optimizer state stay fp32 in both.
//  RC_VALUE_FP32: everything fp32.
//  RC_VALUE_BF16: emulates torch.autocast(dtype=torch.bfloat16) around the MLP with fp32
//    parameters: every linear layer rounds its input, weight and bias to bf16 (round to nearest
//    even), accumulates the products in fp32 and rounds its output to bf16 (ReLU is exact on
//    bf16). In the backward, the gradient arriving at each linear output is rounded to bf16, the
//    weight / bias / input gradients are accumulated in fp32 from the bf16 operands and rounded to
//    bf16 (the weight gradient then lands in the fp32 master gradient as a bf16 value, as
//    autocast's cast-backward does). The loss is computed in fp32 on the bf16 values of V.
//    (The reference code instead casts the whole module and Adam state to bf16; that loses
//    small updates and is not reproduced.)
typedef enum { RC_VALUE_FP32 = 0, RC_VALUE_BF16 = 1 } rc_value_dtype;

typedef struct {
    int n_layers;                       // number of linear layers L (>= 1)
    int dims[RC_VALUE_MAX_LAYERS + 1];  // dims[0] = input d, dims[l+1] = out of fc(l+1), dims[L] = 1
    float *w[RC_VALUE_MAX_LAYERS];      // (dims[l+1], dims[l]) points into params
    float *b[RC_VALUE_MAX_LAYERS];      // (dims[l+1])          points into params
    float *params;                      // all parameters, state-dict order fc1.weight, fc1.bias, ...
    size_t n_params;                    //
    rc_value_dtype dtype;               // compute precision (default fp32)
} rc_value_mlp;

// Offset of fc(l+1).weight / .bias inside a flat parameter (or gradient) vector.
size_t rc_value_w_offset(const rc_value_mlp *m, int l);
size_t rc_value_b_offset(const rc_value_mlp *m, int l);

// Allocates an MLP d -> hidden[0] -> ... -> hidden[n_hidden-1] -> 1 (n_hidden >= 0), zeroed.
int rc_value_alloc(rc_value_mlp *m, int d, int n_hidden, const int *hidden);
void rc_value_free(rc_value_mlp *m);
// Parses a preset ("paper3" = d->4096->4096->1, "paper2" = d->4096->1) or a comma list of
// hidden widths ("4096,4096", "" = linear) into hidden[] (cap RC_VALUE_MAX_LAYERS-1). Count or -1.
int rc_value_parse_hidden(const char *spec, int *hidden);

// nn.Linear's default init: weight ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform with a=sqrt(5)),
// bias ~ U(-1/sqrt(in), 1/sqrt(in)); drawn in state-dict order from a splitmix64-seeded
// xoshiro256** stream (deterministic for a seed; not torch's RNG stream).
void rc_value_init(rc_value_mlp *m, uint64_t seed);

// Workspace for a batch of up to cap_n rows (activations kept for the backward).
typedef struct {
    int cap_n;
    float *act[RC_VALUE_MAX_LAYERS + 1]; // act[l] (cap_n, dims[l]) for l >= 1: output of layer l
                                         // (after ReLU for l < L); act[L] = V (cap_n)
    float *gbuf[2];                      // (cap_n, max dim) ping-pong gradients w.r.t. activations
    float *xr;                           // (cap_n, dims[0]) bf16-rounded input (bf16 mode)
    float *pr;                           // (n_params) bf16-rounded parameters (bf16 mode)
    float *tbuf[2];                      // (max dim, cap_n) transposes (weight gradients only)
    const float *x;                      // input of the last forward (not owned)
    int n;                               // rows of the last forward
} rc_value_ws;

int rc_value_ws_alloc(rc_value_ws *ws, const rc_value_mlp *m, int cap_n);
void rc_value_ws_free(rc_value_ws *ws);

// V for n rows of x (n, d) -> v (n). Keeps the activations in ws for a following backward
// (x must stay valid until then). n <= ws->cap_n.
int rc_value_forward(const rc_value_mlp *m, rc_value_ws *ws, int n, const float *x, float *v);

// Backward of the last forward given dv (n) = dLoss/dV: ACCUMULATES into grad (n_params, same
// layout as m->params) when grad != NULL and writes dLoss/dx into dx (n, d) when dx != NULL.
int rc_value_backward(const rc_value_mlp *m, rc_value_ws *ws, const float *dv, float *grad,
                      float *dx);

// grad_x V(x) for each row independently: v (n) (may be NULL) and dx (n, d).
int rc_value_input_grad(const rc_value_mlp *m, rc_value_ws *ws, int n, const float *x, float *v,
                        float *dx);

// Save / load as safetensors with PyTorch state-dict names (fc1.weight, fc1.bias, ...), F32.
// Load accepts F32/F16/BF16 tensors and infers the depth and widths from the file.
int rc_value_save(const rc_value_mlp *m, const char *path);
int rc_value_load(rc_value_mlp *m, const char *path);

#ifdef __cplusplus
}
#endif
