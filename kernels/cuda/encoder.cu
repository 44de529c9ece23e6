// BERT encoder kernels, fp32: one block per token row for the LayerNorms (sum, then the centred
// sum of squares, as the CPU twin's two passes), an elementwise bias + activation, and attention
// with one block per (token, head): scores of the token's query against its sequence's keys in
// shared memory, block max / sum, then the weighted values.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/encoder.h"

#define LN_THREADS 128

// Normalizes the row v (d, in row) in place with w, b: mean, then mean of (v - mean)^2.
static __device__ void ln_row(float *row, const float *w, const float *b, int d, float eps,
                              float *red) {
    float s = 0.f;
    for (int j = threadIdx.x; j < d; j += blockDim.x) s += row[j];
    const float mean = rc_block_sum(s, red) / (float)d;
    float ss = 0.f;
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        float c = row[j] - mean;
        ss += c * c;
    }
    const float inv = rsqrtf(rc_block_sum(ss, red) / (float)d + eps);
    for (int j = threadIdx.x; j < d; j += blockDim.x) row[j] = (row[j] - mean) * inv * w[j] + b[j];
}

__global__ void encoder_embed_kernel(float *out, const float *word, const float *pos,
                                     const float *type, const float *ln_w, const float *ln_b,
                                     const int *ids, const int *types, const int *positions, int d,
                                     float eps) {
    __shared__ float red[32];
    const int i = blockIdx.x;
    const float *we = word + (size_t)ids[i] * d, *pe = pos + (size_t)positions[i] * d,
                *te = type + (size_t)types[i] * d;
    float *o = out + (size_t)i * d;
    for (int j = threadIdx.x; j < d; j += blockDim.x) o[j] = we[j] + pe[j] + te[j];
    ln_row(o, ln_w, ln_b, d, eps, red);
}

__global__ void add_layernorm_kernel(float *x, const float *y, const float *bias, const float *w,
                                     const float *b, int d, float eps) {
    __shared__ float red[32];
    float *row = x + (size_t)blockIdx.x * d;
    const float *yr = y + (size_t)blockIdx.x * d;
    for (int j = threadIdx.x; j < d; j += blockDim.x) row[j] += yr[j] + (bias ? bias[j] : 0.f);
    ln_row(row, w, b, d, eps, red);
}

__global__ void bias_act_kernel(float *y, const float *b, size_t total, int cols, int act) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        float v = y[i] + (b ? b[i % cols] : 0.f);
        switch (act) {
        case RC_ACT_GELU: v = v * 0.5f * (1.0f + erff(v * 0.70710678118654752f)); break;
        case RC_ACT_GELU_TANH:
            v = 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
            break;
        case RC_ACT_RELU: v = v > 0.f ? v : 0.f; break;
        case RC_ACT_TANH: v = tanhf(v); break;
        default: break;
        }
        y[i] = v;
    }
}

__global__ void attention_bidir_kernel(float *out, const float *qkv, const int *seq, int n_seq,
                                       int n_heads, int hd, float scale) {
    extern __shared__ float att_smem[]; // query (hd) | scores (sequence length)
    __shared__ float red[32];
    const int t = blockIdx.x, h = blockIdx.y, d = n_heads * hd, ld = 3 * d;
    int lo = 0, hi = n_seq; // the sequence s with seq[s] <= t < seq[s + 1]
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (seq[mid] <= t) lo = mid;
        else hi = mid;
    }
    const int s0 = seq[lo], len = seq[lo + 1] - s0;
    float *q = att_smem, *sc = att_smem + hd;
    for (int c = threadIdx.x; c < hd; c += blockDim.x) q[c] = qkv[(size_t)t * ld + h * hd + c];
    __syncthreads();
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < len; j += blockDim.x) {
        const float *k = qkv + (size_t)(s0 + j) * ld + d + h * hd;
        float acc = 0.f;
        for (int c = 0; c < hd; c++) acc += q[c] * k[c];
        acc *= scale;
        sc[j] = acc;
        mx = fmaxf(mx, acc);
    }
    mx = rc_block_max(mx, red);
    float sum = 0.f;
    for (int j = threadIdx.x; j < len; j += blockDim.x) {
        float e = expf(sc[j] - mx);
        sc[j] = e;
        sum += e;
    }
    const float inv = 1.0f / rc_block_sum(sum, red); // its barrier publishes sc
    for (int c = threadIdx.x; c < hd; c += blockDim.x) {
        const float *v = qkv + (size_t)s0 * ld + 2 * d + h * hd + c;
        float acc = 0.f;
        for (int j = 0; j < len; j++) acc += sc[j] * inv * v[(size_t)j * ld];
        out[(size_t)t * d + h * hd + c] = acc;
    }
}

extern "C" int rc_cuda_encoder_embed(float *out, const float *word, const float *pos,
                                     const float *type, const float *ln_w, const float *ln_b,
                                     const int *ids, const int *types, const int *positions, int n,
                                     int d, float eps, cudaStream_t s) {
    if (n <= 0) return 0;
    RC_CUDA_REQUIRE(d > 0, "rc_cuda_encoder_embed: bad width %d", d);
    encoder_embed_kernel<<<n, LN_THREADS, 0, s>>>(out, word, pos, type, ln_w, ln_b, ids, types,
                                                  positions, d, eps);
    CUDA_CHECK_LAUNCH();
    return 0;
}

extern "C" int rc_cuda_bias_act(float *y, const float *b, int n, int cols, rc_act act,
                                cudaStream_t s) {
    if (n <= 0) return 0;
    RC_CUDA_REQUIRE(cols > 0, "rc_cuda_bias_act: bad width %d", cols);
    size_t total = (size_t)n * cols;
    unsigned blocks = rc_cdiv(total, 256);
    if (blocks > 65535u) blocks = 65535u;
    bias_act_kernel<<<blocks, 256, 0, s>>>(y, b, total, cols, (int)act);
    CUDA_CHECK_LAUNCH();
    return 0;
}

extern "C" int rc_cuda_add_layernorm(float *x, const float *y, const float *bias, const float *w,
                                     const float *b, int n, int d, float eps, cudaStream_t s) {
    if (n <= 0) return 0;
    RC_CUDA_REQUIRE(d > 0, "rc_cuda_add_layernorm: bad width %d", d);
    add_layernorm_kernel<<<n, LN_THREADS, 0, s>>>(x, y, bias, w, b, d, eps);
    CUDA_CHECK_LAUNCH();
    return 0;
}

extern "C" int rc_cuda_attention_bidir(float *out, const float *qkv, const int *seq, int n_seq,
                                       int n, int n_heads, int hd, int max_len, cudaStream_t s) {
    if (n <= 0) return 0;
    RC_CUDA_REQUIRE(n_seq > 0 && n_heads > 0 && hd > 0 && max_len > 0 && n_heads <= 65535,
                    "rc_cuda_attention_bidir: bad shape (%d sequences, %d heads of %d, max %d)",
                    n_seq, n_heads, hd, max_len);
    size_t smem = (size_t)(hd + max_len) * sizeof(float);
    RC_CUDA_REQUIRE(smem <= 48 * 1024, "rc_cuda_attention_bidir: head %d + sequence %d too long",
                    hd, max_len);
    attention_bidir_kernel<<<dim3((unsigned)n, (unsigned)n_heads), 128, smem, s>>>(
        out, qkv, seq, n_seq, n_heads, hd, 1.0f / sqrtf((float)hd));
    CUDA_CHECK_LAUNCH();
    return 0;
}
