// The RE-Control step on the device: n_steps of gradient ascent x <- x + alpha * grad_x V(x) on a
// ReLU value MLP of 2 (d -> h -> 1) or 3 (d -> h1 -> h2 -> 1) linear layers, every row of x (n, d)
// independently. Weights in f16/bf16 (f32 for tests) in one device allocation, activations
// rounded to the weight type at each matmul input, fp32 accumulation, x itself kept in fp32.
// Each step is a fixed handful of launches (2 cuBLAS products forward, 2 backward for 3 layers,
// element-wise epilogues), so a caller can capture all n_steps in one CUDA graph.
#pragma once
#include "kernels/cuda/cuda_common.h"
#include "kernels/cuda/matmul.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int n_layers;       // linear layers: 2 or 3
    int dims[4];        // d, h1 [, h2], 1
    rc_cuda_dtype dt;   // weight type
    void *w[3];         // fc(l+1).weight (dims[l+1], dims[l]) in dt
    float *b[3];        // fc(l+1).bias (dims[l+1]) fp32
    int cap_n;          // rows one call can take
    float *pre[2];      // (cap_n, dims[l+1]) hidden pre-activations (bias included)
    float *gbuf;        // (cap_n, max hidden) fp32 gradient
    void *in_t;         // (cap_n, max(d, hidden)) dt: the input of the next product
    void *g_t;          // (cap_n, max hidden) dt: a gradient as a product input
    void *buf;          // the one device allocation behind everything above
    rc_cuda_blas blas;
} rc_cuda_value;

// Uploads an MLP given as host fp32 arrays in PyTorch layout (w[l] (dims[l+1], dims[l]),
// b[l] (dims[l+1])), dims[n_layers] must be 1. 0 / -1.
int rc_cuda_value_init(rc_cuda_value *v, int n_layers, const int *dims, const float *const *w,
                       const float *const *b, rc_cuda_dtype dt, int cap_n);
void rc_cuda_value_free(rc_cuda_value *v);

// x (n, d) fp32 on the device, edited in place; n <= cap_n. Launches only (graph-capturable).
int rc_cuda_control_apply(rc_cuda_value *v, float *x, int n, float alpha, int n_steps,
                          cudaStream_t s);

#ifdef __cplusplus
}
#endif
