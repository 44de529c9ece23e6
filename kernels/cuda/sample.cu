// Sampling: one block of 1024 threads per row. The top-k cut is the k-th largest logit, found
// exactly by building its order-preserving 32-bit key bit by bit (32 block-wide counts); the
// top-p cut is the smallest kept probability whose mass still reaches top_p, found the same way
// on probability bits. The draw scans per-thread contiguous chunks in index order.
#include "kernels/cuda/argmax.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/sample.h"

#define SMP_THREADS 1024
#define TRY_ARGMAX(call)                                                                         \
    do {                                                                                         \
        if ((call) != 0) return -1;                                                              \
    } while (0)

static __device__ __forceinline__ uint32_t order_key(float f) {
    uint32_t u = __float_as_uint(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static __device__ __forceinline__ uint64_t xorshift64s(uint64_t *st) {
    uint64_t x = *st;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *st = x;
    return x * 0x2545F4914F6CDD1Dull;
}

// Per-row parameters (temp/topk/topp arrays, may be NULL: the scalars then) and the draw from the
// row's device generator (rng) or given uniforms (u). Greedy rows (temperature <= 0 or top_k 1)
// are left alone: the caller ran the argmax over every row first.
__global__ void __launch_bounds__(SMP_THREADS)
sample_kernel(const float *logits, int *out, uint64_t *rng, const float *u_in, const float *temp,
              const int *topk, const float *topp, int vocab, float inv_temp, int top_k,
              float top_p) {
    __shared__ float red[32];
    __shared__ float part[SMP_THREADS];
    __shared__ int owner;
    __shared__ float owner_rest;
    const float *row = logits + (size_t)blockIdx.x * vocab;
    int tid = threadIdx.x;
    if (temp) {
        float t = temp[blockIdx.x];
        if (!(t > 0.f)) return; // greedy row
        inv_temp = 1.f / t;
        top_k = topk[blockIdx.x];
        top_p = topp[blockIdx.x];
        if (top_k == 1) return;
        if (top_k >= vocab) top_k = 0;
    }
    float mx = -INFINITY;
    for (int j = tid; j < vocab; j += blockDim.x) mx = fmaxf(mx, row[j]);
    mx = rc_block_max(mx, red);
    // top-k: kth = the largest key with count(key_i >= kth) >= top_k
    uint32_t kth = 0;
    if (top_k > 0 && top_k < vocab) {
        for (int b = 31; b >= 0; b--) {
            uint32_t cand = kth | (1u << b);
            float c = 0.f;
            for (int j = tid; j < vocab; j += blockDim.x) c += order_key(row[j]) >= cand ? 1.f : 0.f;
            c = rc_block_sum(c, red);
            if (c >= (float)top_k) kth = cand;
        }
    }
    // unnormalized probabilities of the kept tokens: exp((z - max) / T)
    float tot = 0.f;
    for (int j = tid; j < vocab; j += blockDim.x)
        if (order_key(row[j]) >= kth) tot += __expf((row[j] - mx) * inv_temp);
    tot = rc_block_sum(tot, red);
    uint32_t pth = 0; // top-p cut on the bits of the (positive) probability
    if (top_p < 1.f) {
        float need = top_p * tot;
        for (int b = 30; b >= 0; b--) {
            uint32_t cand = pth | (1u << b);
            float c = 0.f;
            for (int j = tid; j < vocab; j += blockDim.x) {
                if (order_key(row[j]) < kth) continue;
                float w = __expf((row[j] - mx) * inv_temp);
                if (__float_as_uint(w) >= cand) c += w;
            }
            c = rc_block_sum(c, red);
            if (c >= need) pth = cand;
        }
    }
    // draw: per-thread contiguous chunks, a serial scan of the chunk sums by thread 0
    int chunk = (vocab + blockDim.x - 1) / blockDim.x;
    int j0 = tid * chunk, j1 = min(vocab, j0 + chunk);
    float mine = 0.f;
    for (int j = j0; j < j1; j++) {
        if (order_key(row[j]) < kth) continue;
        float w = __expf((row[j] - mx) * inv_temp);
        if (__float_as_uint(w) >= pth) mine += w;
    }
    part[tid] = mine;
    __syncthreads();
    if (tid == 0) {
        float total = 0.f;
        for (int t = 0; t < (int)blockDim.x; t++) total += part[t];
        float u01;
        if (u_in) {
            u01 = u_in[blockIdx.x];
        } else {
            uint64_t r = xorshift64s(rng + blockIdx.x);
            u01 = (float)(r >> 40) * (1.0f / 16777216.0f);
        }
        float u = u01 * total;
        int own = -1, lastnz = 0;
        float acc = 0.f, rest = 0.f;
        for (int t = 0; t < (int)blockDim.x; t++) {
            if (part[t] > 0.f) lastnz = t;
            if (own < 0 && part[t] > 0.f && acc + part[t] > u) {
                own = t;
                rest = u - acc;
            }
            acc += part[t];
        }
        if (own < 0) { // rounding pushed u past the total: take the last kept token
            own = lastnz;
            rest = part[lastnz];
        }
        owner = own;
        owner_rest = rest;
    }
    __syncthreads();
    if (tid == owner) {
        float acc = 0.f;
        int pick = -1;
        for (int j = j0; j < j1; j++) {
            if (order_key(row[j]) < kth) continue;
            float w = __expf((row[j] - mx) * inv_temp);
            if (__float_as_uint(w) < pth) continue;
            pick = j;
            acc += w;
            if (acc > owner_rest) break;
        }
        out[blockIdx.x] = pick < 0 ? j0 : pick;
    }
}

extern "C" int rc_cuda_sample(const float *logits, int *out, uint64_t *rng, int n, int vocab,
                              float temperature, int top_k, float top_p, cudaStream_t s) {
    if (n <= 0) return 0;
    if (temperature <= 0.f || top_k == 1) return rc_cuda_argmax(logits, out, n, vocab, s);
    RC_CUDA_REQUIRE(vocab > 0 && top_k >= 0 && top_p > 0.f,
                    "rc_cuda_sample: bad parameters (vocab %d, top_k %d, top_p %g)", vocab, top_k,
                    (double)top_p);
    sample_kernel<<<n, SMP_THREADS, 0, s>>>(logits, out, rng, nullptr, nullptr, nullptr, nullptr, vocab,
                                            1.f / temperature, top_k, top_p);
    CUDA_CHECK_LAUNCH();
    return 0;
}

extern "C" int rc_cuda_sample_rows(const float *logits, int *out, const float *u,
                                   const float *temperature, const int *top_k, const float *top_p,
                                   int n, int vocab, cudaStream_t s) {
    if (n <= 0) return 0;
    RC_CUDA_REQUIRE(vocab > 0 && u && temperature && top_k && top_p,
                    "rc_cuda_sample_rows: bad arguments (vocab %d)", vocab);
    TRY_ARGMAX(rc_cuda_argmax(logits, out, n, vocab, s));
    sample_kernel<<<n, SMP_THREADS, 0, s>>>(logits, out, nullptr, u, temperature, top_k, top_p, vocab,
                                            1.f, 0, 1.f);
    CUDA_CHECK_LAUNCH();
    return 0;
}
