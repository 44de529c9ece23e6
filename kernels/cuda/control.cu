// RE-Control gradient ascent on the device. Per step, with W1 (h1, d), ...:
//   2 layers: pre = x W1^T; g = w2 * [pre + b1 > 0]; x += alpha * g W1
//   3 layers: pre1 = x W1^T + b1; a = relu(pre1); pre2 = a W2^T; g2 = w3 * [pre2 + b2 > 0];
//             g1 = (g2 W2) * [pre1 > 0]; x += alpha * g1 W1
// Products through rc_cuda_matmul / rc_cuda_matmul_wt (cuBLAS); the epilogues below are
// element-wise over (n, h).
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/control.h"
#include "kernels/cuda/convert.h"

enum { EPI_RELU = 0, EPI_LAST_MASK = 1, EPI_BACK_MASK = 2 };

// RELU:      pre += bias (kept); out = T(relu(pre))
// LAST_MASK: out = T(wl[j] * [pre + bias > 0])
// BACK_MASK: out = T(g * [pre > 0])
template <typename T, int MODE>
__global__ void control_epilogue_kernel(float *pre, const float *bias, const T *wl, const float *g,
                                        T *out, int h, size_t total) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        int j = (int)(i % h);
        float p = pre[i], o;
        if (MODE == EPI_RELU) {
            p += bias[j];
            pre[i] = p;
            o = p > 0.f ? p : 0.f;
        } else if (MODE == EPI_LAST_MASK) {
            o = p + bias[j] > 0.f ? rc_to_f32(wl[j]) : 0.f;
        } else {
            o = p > 0.f ? g[i] : 0.f;
        }
        out[i] = rc_from_f32<T>(o);
    }
}

template <typename T>
static int epilogue_t(int mode, float *pre, const float *bias, const void *wl, const float *g,
                      void *out, int n, int h, cudaStream_t s) {
    size_t total = (size_t)n * h;
    unsigned grid = rc_cdiv(total, 256);
    if (grid > 4096) grid = 4096;
    switch (mode) {
    case EPI_RELU:
        control_epilogue_kernel<T, EPI_RELU><<<grid, 256, 0, s>>>(pre, bias, (const T *)wl, g, (T *)out, h, total);
        break;
    case EPI_LAST_MASK:
        control_epilogue_kernel<T, EPI_LAST_MASK><<<grid, 256, 0, s>>>(pre, bias, (const T *)wl, g, (T *)out, h, total);
        break;
    default:
        control_epilogue_kernel<T, EPI_BACK_MASK><<<grid, 256, 0, s>>>(pre, bias, (const T *)wl, g, (T *)out, h, total);
        break;
    }
    CUDA_CHECK_LAUNCH();
    return 0;
}

static int epilogue(rc_cuda_dtype dt, int mode, float *pre, const float *bias, const void *wl,
                    const float *g, void *out, int n, int h, cudaStream_t s) {
    if (dt == RC_CUDA_F16) return epilogue_t<__half>(mode, pre, bias, wl, g, out, n, h, s);
    if (dt == RC_CUDA_BF16) return epilogue_t<__nv_bfloat16>(mode, pre, bias, wl, g, out, n, h, s);
    return epilogue_t<float>(mode, pre, bias, wl, g, out, n, h, s);
}

#define VALUE_WS_BYTES ((size_t)8 << 20)

static size_t align256(size_t x) { return (x + 255) / 256 * 256; }

extern "C" void rc_cuda_value_free(rc_cuda_value *v) {
    if (!v) return;
    rc_cuda_blas_free(&v->blas);
    if (v->buf) cudaFree(v->buf);
    memset(v, 0, sizeof *v);
}

extern "C" int rc_cuda_value_init(rc_cuda_value *v, int n_layers, const int *dims,
                                  const float *const *w, const float *const *b, rc_cuda_dtype dt,
                                  int cap_n) {
    memset(v, 0, sizeof *v);
    if (n_layers != 2 && n_layers != 3)
        return rc_fail("rc_cuda_value_init: the control kernel takes 2 or 3 linear layers, got %d",
                       n_layers);
    if (dims[n_layers] != 1)
        return rc_fail("rc_cuda_value_init: the last layer must have 1 output, got %d", dims[n_layers]);
    if (cap_n < 1) return rc_fail("rc_cuda_value_init: cap_n %d must be >= 1", cap_n);
    for (int l = 0; l < n_layers; l++)
        if (dims[l] < 1) return rc_fail("rc_cuda_value_init: layer width %d", dims[l]);
    v->n_layers = n_layers;
    memcpy(v->dims, dims, sizeof(int) * (size_t)(n_layers + 1));
    v->dt = dt;
    v->cap_n = cap_n;
    size_t es = rc_cuda_dtype_size(dt), hmax = 0, wmax = (size_t)dims[0];
    for (int l = 1; l < n_layers; l++) {
        if ((size_t)dims[l] > hmax) hmax = (size_t)dims[l];
        if ((size_t)dims[l] > wmax) wmax = (size_t)dims[l];
    }
    size_t off[12], total = 0, k = 0;
    for (int l = 0; l < n_layers; l++) {
        off[k++] = total, total = align256(total + (size_t)dims[l + 1] * dims[l] * es);
        off[k++] = total, total = align256(total + (size_t)dims[l + 1] * 4);
    }
    size_t o_pre0 = total; total = align256(total + (size_t)cap_n * dims[1] * 4);
    size_t o_pre1 = total; total = align256(total + (size_t)cap_n * (n_layers == 3 ? dims[2] : 1) * 4);
    size_t o_g = total; total = align256(total + (size_t)cap_n * hmax * 4);
    size_t o_in = total; total = align256(total + (size_t)cap_n * wmax * es);
    size_t o_gt = total; total = align256(total + (size_t)cap_n * hmax * es);
    size_t o_ws = total; total += VALUE_WS_BYTES;
    CUDA_CHECK(cudaMalloc(&v->buf, total));
    char *base = (char *)v->buf;
    float *stage = NULL;
    size_t max_w = 0;
    for (int l = 0; l < n_layers; l++)
        if ((size_t)dims[l + 1] * dims[l] > max_w) max_w = (size_t)dims[l + 1] * dims[l];
    int rc = 0;
    cudaError_t err = cudaMalloc((void **)&stage, max_w * 4);
    if (err != cudaSuccess) rc = rc_fail("rc_cuda_value_init: staging: %s", cudaGetErrorString(err));
    for (int l = 0; l < n_layers && !rc; l++) {
        v->w[l] = base + off[2 * l];
        v->b[l] = (float *)(base + off[2 * l + 1]);
        size_t nw = (size_t)dims[l + 1] * dims[l];
        err = cudaMemcpy(stage, w[l], nw * 4, cudaMemcpyHostToDevice);
        if (err == cudaSuccess) err = cudaMemcpy(v->b[l], b[l], (size_t)dims[l + 1] * 4, cudaMemcpyHostToDevice);
        if (err != cudaSuccess) rc = rc_fail("rc_cuda_value_init: upload: %s", cudaGetErrorString(err));
        else rc = rc_cuda_convert(v->w[l], dt, stage, RC_CUDA_F32, nw, 0);
        if (!rc && (err = cudaDeviceSynchronize()) != cudaSuccess)
            rc = rc_fail("rc_cuda_value_init: %s", cudaGetErrorString(err));
    }
    if (stage) cudaFree(stage);
    if (!rc) {
        v->pre[0] = (float *)(base + o_pre0);
        v->pre[1] = (float *)(base + o_pre1);
        v->gbuf = (float *)(base + o_g);
        v->in_t = base + o_in;
        v->g_t = base + o_gt;
        rc = rc_cuda_blas_init(&v->blas, base + o_ws, VALUE_WS_BYTES);
        v->blas.gemv_batch1 = 0;
    }
    if (rc) {
        rc_cuda_value_free(v);
        return -1;
    }
    return 0;
}

extern "C" int rc_cuda_control_apply(rc_cuda_value *v, float *x, int n, float alpha, int n_steps,
                                     cudaStream_t s) {
    if (n <= 0 || n_steps <= 0) return 0;
    RC_CUDA_REQUIRE(n <= v->cap_n, "rc_cuda_control_apply: %d rows for a capacity of %d", n, v->cap_n);
    const rc_cuda_dtype dt = v->dt;
    const int d = v->dims[0], h1 = v->dims[1];
    rc_cuda_blas *bl = &v->blas;
    for (int k = 0; k < n_steps; k++) {
        if (rc_cuda_convert(v->in_t, dt, x, RC_CUDA_F32, (size_t)n * d, s) ||
            rc_cuda_matmul(bl, v->w[0], v->in_t, dt, v->pre[0], n, d, h1, 0.f, s))
            return -1;
        void *g_first; // the gradient at layer 1's output, as a product input
        if (v->n_layers == 2) {
            if (epilogue(dt, EPI_LAST_MASK, v->pre[0], v->b[0], v->w[1], NULL, v->g_t, n, h1, s))
                return -1;
            g_first = v->g_t;
        } else {
            const int h2 = v->dims[2];
            if (epilogue(dt, EPI_RELU, v->pre[0], v->b[0], NULL, NULL, v->in_t, n, h1, s) ||
                rc_cuda_matmul(bl, v->w[1], v->in_t, dt, v->pre[1], n, h1, h2, 0.f, s) ||
                epilogue(dt, EPI_LAST_MASK, v->pre[1], v->b[1], v->w[2], NULL, v->g_t, n, h2, s) ||
                rc_cuda_matmul_wt(bl, v->w[1], v->g_t, dt, v->gbuf, n, h2, h1, 1.f, 0.f, s) ||
                epilogue(dt, EPI_BACK_MASK, v->pre[0], NULL, NULL, v->gbuf, v->in_t, n, h1, s))
                return -1;
            g_first = v->in_t;
        }
        if (rc_cuda_matmul_wt(bl, v->w[0], g_first, dt, x, n, h1, d, alpha, 1.f, s)) return -1;
    }
    return 0;
}
