// The RE-Control step on the device: n_steps of gradient ascent x <- x + alpha * grad_x V(x) on a
// ReLU value MLP of 2 (d -> h -> 1) or 3 (d -> h1 -> h2 -> 1) linear layers, every row of x (n, d)
// independently. Weights in f16/bf16 (f32 for tests) in one device allocation, activations
// rounded to the weight type at each matmul input, fp32 accumulation, x itself kept in fp32.
// Default path: all n_steps in ONE cooperative launch of a persistent kernel (control.cu): each
// block owns a slice of the hidden units, computes their pre-activations, ReLU masks and backward
// contributions from the same weight rows while they are in registers, and the blocks meet at a
// grid-wide barrier between phases; the per-block partial sums are added in block order
// (deterministic for a given grid). Fallback (said once on stderr, reason in fused_off): a fixed
// handful of launches per step (cuBLAS products, element-wise epilogues). Both are launches only,
// so a caller can capture them in a CUDA graph.
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
    // The fused kernel's plan (rc_cuda_value_init): grid size per row-group width, scratch.
    int fused;              // 1 when rc_cuda_control_apply uses the fused kernel
    char fused_off[160];    // why not, when fused == 0
    int fused_grid[2];      // blocks of the 1-row and the multi-row instance
    int fused_nr;           // rows per group of the multi-row instance
    size_t fused_smem[2];   // dynamic shared memory of each instance
    float *part;            // (grid, nr, max(d, h1)) fp32 per-block partial sums
    float *f_pre1;          // (nr, h1) fp32 layer-1 pre-activations (3 layers)
    void *f_xt, *f_at, *f_g1t; // (nr, d), (nr, h1), (nr, h1) in dt
    void *fbuf;             // the allocation behind the fused scratch
    size_t l2_window_bytes; // W1 bytes under an L2 access-policy window (0: none, see l2_note)
    float l2_hit_ratio;     // the window's persisting fraction (persisting L2 limit / window)
    int l2_window;          // 1 once a launch ran with the window set on its stream
    char l2_note[120];      // why there is no window
} rc_cuda_value;

// Uploads an MLP given as host fp32 arrays in PyTorch layout (w[l] (dims[l+1], dims[l]),
// b[l] (dims[l+1])), dims[n_layers] must be 1. 0 / -1.
int rc_cuda_value_init(rc_cuda_value *v, int n_layers, const int *dims, const float *const *w,
                       const float *const *b, rc_cuda_dtype dt, int cap_n);
void rc_cuda_value_free(rc_cuda_value *v);

// x (n, d) fp32 on the device, edited in place; n <= cap_n. Launches only (graph-capturable).
int rc_cuda_control_apply(rc_cuda_value *v, float *x, int n, float alpha, int n_steps,
                          cudaStream_t s);
// The same through one path: fused = 1 the persistent kernel (fails when the plan has none),
// fused = 0 the cuBLAS + epilogue launches. For tests and benchmarks.
int rc_cuda_control_apply_path(rc_cuda_value *v, float *x, int n, float alpha, int n_steps,
                               int fused, cudaStream_t s);

#ifdef __cplusplus
}
#endif
