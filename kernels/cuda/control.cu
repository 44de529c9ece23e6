// RE-Control gradient ascent on the device. Per step, with W1 (h1, d), ...:
//   2 layers: pre = x W1^T; g = w2 * [pre + b1 > 0]; x += alpha * g W1
//   3 layers: pre1 = x W1^T + b1; a = relu(pre1); pre2 = a W2^T; g2 = w3 * [pre2 + b2 > 0];
//             g1 = (g2 W2) * [pre1 > 0]; x += alpha * g1 W1
// Two implementations of the same arithmetic (product inputs rounded to the weight type, fp32
// accumulation): the fused persistent kernel (all steps in one cooperative launch) and the
// fallback of cuBLAS products + element-wise epilogues.
#include <cooperative_groups.h>
#include <stdio.h>
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

// ---- the fused persistent kernel ------------------------------------------------------------------
// One cooperative launch runs every step for every row. A block owns a contiguous range of
// "chunks" of R weight rows (hidden units). For each chunk its threads load the R rows into
// registers (thread t holds columns 8(t + 256 v) .. +7 of each row), take the dot products with
// the nr input rows staged in shared memory, reduce them over the block (warp shuffles, then the
// warps in order), turn each pre-activation into a coefficient (the ReLU mask times the next
// layer's weight, or an incoming gradient), and add coefficient x row into per-thread fp32
// accumulators: the backward contribution comes from the same registers the forward used. Each
// block then writes its partial sum (nr, K) to global memory; after a grid barrier every element
// is the sum of the blocks' partials in block order (deterministic). Per step:
//   2 layers: fused pass on W1 | sync | x += alpha * sum, x_t = T(x) | sync            (2 barriers)
//   3 layers: forward pass on W1 (pre1, a_t = T(relu)) | sync | fused pass on W2 with input a_t
//             | sync | g1_t = T(sum * [pre1 > 0]) | sync | backward pass on W1 with g1_t | sync
//             | x update | sync                                                          (5 barriers)
namespace cg = cooperative_groups;

#define CTL_BT 256
#define CTL_NW (CTL_BT / 32)
#define CTL_VCMAX 4 // K up to 8 * 256 * 4 = 8192 columns

enum { PASS_FUSED = 0, PASS_FWD = 1, PASS_BWD = 2 };

struct ctl_args {
    int n_layers, d, h1, h2, kmax;
    const void *w0, *w1, *w2; // W1 (h1, d), W2 (h2 | 1, h1), W3 (1, h2)
    const float *b0, *b1;
    float *x;                  // (n, d) fp32, edited
    void *xt, *at, *g1t;       // (nr, d), (nr, h1), (nr, h1) in T
    float *pre1;               // (nr, h1)
    float *part;               // (grid, nr_max, kmax)
    int n, n_steps;
    float alpha;
};

// Column chunk v of the R rows in registers, as floats.
template <typename T, int VC, int R>
__device__ __forceinline__ void ctl_unpack_rows(const rc_vec8<T> (&w)[R][VC], int v, float (&wf)[R][8]) {
#pragma unroll
    for (int r = 0; r < R; r++) rc_unpack8(w[r][v], wf[r]);
}

// Calls f(v, k, wf) for each of this thread's column chunks v of the R rows held in registers: k,
// the chunk's first column (those at or past K are skipped); wf, the rows' 8 values there as floats.
template <typename T, int VC, int R, typename F>
__device__ __forceinline__ void ctl_for_cols(const rc_vec8<T> (&w)[R][VC], int K, int tid, F &&f) {
#pragma unroll
    for (int v = 0; v < VC; v++) {
        const int k = 8 * (tid + CTL_BT * v);
        if (k >= K) continue;
        float wf[R][8];
        ctl_unpack_rows<T, VC, R>(w, v, wf);
        f(v, k, wf);
    }
}

// Warp sum of NV (a power of two <= 32) values at once: each butterfly level sends half of the
// values still held to the partner lane and keeps the other half, so NV values cost NV - 1 +
// (5 - log2 NV) shuffles instead of 5 NV. Every lane returns the full sum of value *idx; the lanes
// with the low 5 - log2 NV bits zero hold distinct idx. A fixed pattern: deterministic.
template <int NV>
__device__ __forceinline__ float ctl_warp_reduce_scatter(float *s, int lane, int *idx) {
    constexpr int LOG = NV <= 1 ? 0 : NV <= 2 ? 1 : NV <= 4 ? 2 : NV <= 8 ? 3 : NV <= 16 ? 4 : 5;
    static_assert((1 << LOG) == NV, "NV must be a power of two <= 32");
    int id = 0;
#pragma unroll
    for (int L = 0; L < 5; L++) {
        const int o = 16 >> L;
        if (L < LOG) {
            const int half = NV >> (L + 1);
            const bool up = (lane & o) != 0;
#pragma unroll
            for (int q = 0; q < half; q++) {
                const float keep = up ? s[q + half] : s[q], send = up ? s[q] : s[q + half];
                s[q] = keep + __shfl_xor_sync(0xffffffffu, send, o);
            }
            id = 2 * id + (up ? 1 : 0);
        } else {
            s[0] += __shfl_xor_sync(0xffffffffu, s[0], o);
        }
    }
    *idx = id;
    return s[0];
}

// Rows j0 .. j0+R-1 of W (M, K), this thread's columns 8(tid + 256 v) .. +7 (zeros outside).
template <typename T, int VC, int R>
__device__ __forceinline__ void ctl_load_rows(rc_vec8<T> (&w)[R][VC], const T *W, int M, int K, int j0, int tid) {
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int v = 0; v < VC; v++) {
            const int k = 8 * (tid + CTL_BT * v);
            w[r][v] = (j0 + r < M && k < K) ? rc_ld8(W + (size_t)(j0 + r) * K + k) : rc_zero8<T>();
        }
}

// One pass over the rows of W (M, K) owned by this block. PASS_FWD: pre_out = X W^T + bias,
// act_out = T(relu(pre_out)). PASS_FUSED: coefficient wl[j] * [X W_j + bias_j > 0], partial +=
// coefficient * W_j. PASS_BWD: coefficient cin (nr, M), partial += coefficient * W_j.
template <typename T, int VC, int NR, int R>
__device__ void ctl_row_pass(int mode, const T *W, int M, int K, const float *bias, const T *wl,
                             const T *X, const T *cin, float *pre_out, T *act_out, int nr, T *xs,
                             float *red, float *coef, float *part) {
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int G = gridDim.x, b = blockIdx.x;
    __syncthreads(); // the previous pass may still read xs / coef
    if (mode != PASS_BWD) {
        const size_t nv = (size_t)nr * K * sizeof(T) / 16;
        const uint4 *src = (const uint4 *)X;
        uint4 *dst = (uint4 *)xs;
        for (size_t q = tid; q < nv; q += CTL_BT) dst[q] = src[q];
    }
    float acc[NR][VC * 8];
#pragma unroll
    for (int i = 0; i < NR; i++)
#pragma unroll
        for (int e = 0; e < VC * 8; e++) acc[i][e] = 0.f;
    const int nchunk = (M + R - 1) / R;
    const int c0 = (int)((long long)nchunk * b / G), c1 = (int)((long long)nchunk * (b + 1) / G);
    // the rows of the next chunk are loaded while this one is reduced (two register sets)
    rc_vec8<T> w[R][VC], wn[R][VC];
    ctl_load_rows<T, VC, R>(wn, W, M, K, c0 * R, tid);
    for (int c = c0; c < c1; c++) {
        const int j0 = c * R;
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int v = 0; v < VC; v++) w[r][v] = wn[r][v];
        if (c + 1 < c1) ctl_load_rows<T, VC, R>(wn, W, M, K, j0 + R, tid);
        __syncthreads(); // xs staged; coef of the previous chunk consumed
        if (mode != PASS_BWD) {
            float s[NR][R];
#pragma unroll
            for (int i = 0; i < NR; i++)
#pragma unroll
                for (int r = 0; r < R; r++) s[i][r] = 0.f;
            ctl_for_cols<T, VC, R>(w, K, tid, [&](int, int k, const float (&wf)[R][8]) { // dot products
#pragma unroll
                for (int i = 0; i < NR; i++) {
                    if (i >= nr) continue;
                    float xf[8];
                    rc_unpack8(rc_ld8(xs + (size_t)i * K + k), xf);
#pragma unroll
                    for (int r = 0; r < R; r++)
#pragma unroll
                        for (int e = 0; e < 8; e++) s[i][r] += xf[e] * wf[r][e];
                }
            });
            {
                int idx;
                const float t = ctl_warp_reduce_scatter<NR * R>(&s[0][0], lane, &idx);
                if ((lane & ((32 / (NR * R)) - 1)) == 0) red[warp * NR * R + idx] = t;
            }
            __syncthreads();
            if (tid < nr * R) {
                const int i = tid / R, j = j0 + tid % R;
                float cf = 0.f;
                if (j < M) {
                    float dot = 0.f;
                    for (int q = 0; q < CTL_NW; q++) dot += red[q * NR * R + tid];
                    const float pre = dot + bias[j];
                    if (mode == PASS_FWD) {
                        pre_out[(size_t)i * M + j] = pre;
                        act_out[(size_t)i * M + j] = rc_from_f32<T>(pre > 0.f ? pre : 0.f);
                    } else {
                        cf = pre > 0.f ? rc_to_f32(wl[j]) : 0.f;
                    }
                }
                coef[tid] = cf;
            }
        } else if (tid < nr * R) {
            const int i = tid / R, j = j0 + tid % R;
            coef[tid] = j < M ? rc_to_f32(cin[(size_t)i * M + j]) : 0.f;
        }
        __syncthreads();
        if (mode == PASS_FWD) continue;
        ctl_for_cols<T, VC, R>(w, K, tid, [&](int v, int, const float (&wf)[R][8]) { // coefficient x row
#pragma unroll
            for (int i = 0; i < NR; i++) {
                if (i >= nr) continue;
#pragma unroll
                for (int r = 0; r < R; r++) {
                    const float cf = coef[i * R + r];
#pragma unroll
                    for (int e = 0; e < 8; e++) acc[i][v * 8 + e] += cf * wf[r][e];
                }
            }
        });
    }
    if (mode == PASS_FWD) return;
#pragma unroll
    for (int v = 0; v < VC; v++) {
        const int k = 8 * (tid + CTL_BT * v);
        if (k >= K) continue;
#pragma unroll
        for (int i = 0; i < NR; i++) {
            if (i >= nr) continue;
            float4 *o = (float4 *)(part + (size_t)i * K + k);
            o[0] = make_float4(acc[i][v * 8 + 0], acc[i][v * 8 + 1], acc[i][v * 8 + 2], acc[i][v * 8 + 3]);
            o[1] = make_float4(acc[i][v * 8 + 4], acc[i][v * 8 + 5], acc[i][v * 8 + 6], acc[i][v * 8 + 7]);
        }
    }
}

// The sum of element e over the blocks' partial regions, in block order.
static __device__ __forceinline__ float ctl_sum_parts(const float *part, int G, size_t stride, size_t e) {
    float s = 0.f;
    for (int b = 0; b < G; b++) s += part[(size_t)b * stride + e];
    return s;
}

template <typename T> static __host__ __device__ constexpr size_t ctl_xs_bytes(int nr, int kmax) {
    return ((size_t)nr * kmax * sizeof(T) + 15) / 16 * 16;
}

template <typename T, int VC, int NR, int R>
__global__ void __launch_bounds__(CTL_BT, 1) control_fused_kernel(ctl_args a) {
    extern __shared__ uint4 ctl_smem[];
    cg::grid_group grid = cg::this_grid();
    T *xs = (T *)ctl_smem;
    float *red = (float *)((char *)ctl_smem + ctl_xs_bytes<T>(NR, a.kmax));
    float *coef = red + CTL_NW * NR * R;
    const int G = gridDim.x;
    const size_t pstride = (size_t)NR * a.kmax;
    float *mypart = a.part + (size_t)blockIdx.x * pstride;
    const size_t gt = (size_t)blockIdx.x * CTL_BT + threadIdx.x, gn = (size_t)G * CTL_BT;
    const T *W0 = (const T *)a.w0, *W1 = (const T *)a.w1, *W2 = (const T *)a.w2;
    T *xt = (T *)a.xt, *at = (T *)a.at, *g1t = (T *)a.g1t;
    for (int row0 = 0; row0 < a.n; row0 += NR) {
        const int nr = a.n - row0 < NR ? a.n - row0 : NR;
        float *x = a.x + (size_t)row0 * a.d;
        const size_t nx = (size_t)nr * a.d;
        for (size_t e = gt; e < nx; e += gn) xt[e] = rc_from_f32<T>(x[e]);
        grid.sync();
        for (int step = 0; step < a.n_steps; step++) {
            if (a.n_layers == 2) {
                ctl_row_pass<T, VC, NR, R>(PASS_FUSED, W0, a.h1, a.d, a.b0, W1, xt, NULL, NULL, NULL, nr,
                                           xs, red, coef, mypart);
            } else {
                ctl_row_pass<T, VC, NR, R>(PASS_FWD, W0, a.h1, a.d, a.b0, NULL, xt, NULL, a.pre1, at, nr,
                                           xs, red, coef, mypart);
                grid.sync();
                ctl_row_pass<T, VC, NR, R>(PASS_FUSED, W1, a.h2, a.h1, a.b1, W2, at, NULL, NULL, NULL, nr,
                                           xs, red, coef, mypart);
                grid.sync();
                const size_t nh = (size_t)nr * a.h1;
                for (size_t e = gt; e < nh; e += gn) {
                    float g = ctl_sum_parts(a.part, G, pstride, e);
                    g1t[e] = rc_from_f32<T>(a.pre1[e] > 0.f ? g : 0.f);
                }
                grid.sync();
                ctl_row_pass<T, VC, NR, R>(PASS_BWD, W0, a.h1, a.d, NULL, NULL, NULL, g1t, NULL, NULL, nr,
                                           xs, red, coef, mypart);
            }
            grid.sync();
            for (size_t e = gt; e < nx; e += gn) {
                float xi = x[e] + a.alpha * ctl_sum_parts(a.part, G, pstride, e);
                x[e] = xi;
                xt[e] = rc_from_f32<T>(xi);
            }
            grid.sync();
        }
    }
}

typedef void (*ctl_kernel_fn)(ctl_args);

// The instance for (weight type, VC, multi-row?) and its rows per group, chunk rows.
// Rows per chunk: fewer where the accumulators are widest (fp32 weights, 8192 columns), so the
// two register sets of weight rows stay in registers (ptxas -v: no spills for 16-bit weights).
template <typename T, int VC> static ctl_kernel_fn ctl_pick_t(int multi, int *nr, int *r) {
    constexpr int R1 = (VC >= 4 || sizeof(T) == 4) ? 4 : 8;
    constexpr int NRM = VC >= 4 ? 2 : 4;
    constexpr int RM = (sizeof(T) == 4 && VC >= 2) ? 2 : 4;
    if (!multi) {
        *nr = 1, *r = R1;
        return control_fused_kernel<T, VC, 1, R1>;
    }
    *nr = NRM, *r = RM;
    return control_fused_kernel<T, VC, NRM, RM>;
}
template <typename T> static ctl_kernel_fn ctl_pick_vc(int vc, int multi, int *nr, int *r) {
    if (vc == 1) return ctl_pick_t<T, 1>(multi, nr, r);
    if (vc == 2) return ctl_pick_t<T, 2>(multi, nr, r);
    return ctl_pick_t<T, 4>(multi, nr, r);
}
static ctl_kernel_fn ctl_pick(rc_cuda_dtype dt, int vc, int multi, int *nr, int *r) {
    if (dt == RC_CUDA_F16) return ctl_pick_vc<__half>(vc, multi, nr, r);
    if (dt == RC_CUDA_BF16) return ctl_pick_vc<__nv_bfloat16>(vc, multi, nr, r);
    return ctl_pick_vc<float>(vc, multi, nr, r);
}

static int ctl_vc(const rc_cuda_value *v) {
    int kmax = v->dims[0] > v->dims[1] ? v->dims[0] : v->dims[1];
    int vc = (kmax + 8 * CTL_BT - 1) / (8 * CTL_BT);
    return vc <= 1 ? 1 : vc <= 2 ? 2 : 4;
}

// Decides whether the fused kernel can run for this net on this device and sizes its grid
// (one block per SM, when the occupancy calculator says a block fits) and scratch. 0 with
// v->fused = 0 and v->fused_off set when it cannot; -1 on a CUDA error.
static int fused_plan(rc_cuda_value *v) {
    const int d = v->dims[0], h1 = v->dims[1], h2 = v->n_layers == 3 ? v->dims[2] : 1;
    const int kmax = d > h1 ? d : h1;
    const size_t es = rc_cuda_dtype_size(v->dt);
    int dev = 0, coop = 0, sms = 0, optin = 0;
    v->fused = 0;
    if (d % 8 || h1 % 8) {
        snprintf(v->fused_off, sizeof v->fused_off, "d %d and hidden %d must be multiples of 8", d, h1);
        return 0;
    }
    if (kmax > 8 * CTL_BT * CTL_VCMAX) {
        snprintf(v->fused_off, sizeof v->fused_off, "width %d above the kernel's %d", kmax, 8 * CTL_BT * CTL_VCMAX);
        return 0;
    }
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    if (!coop) {
        snprintf(v->fused_off, sizeof v->fused_off, "the device has no cooperative launch");
        return 0;
    }
    const int vc = ctl_vc(v);
    int nr_max = 1;
    for (int multi = 0; multi < 2; multi++) {
        int nr, r;
        ctl_kernel_fn fn = ctl_pick(v->dt, vc, multi, &nr, &r);
        size_t smem = ((size_t)nr * kmax * es + 15) / 16 * 16 + (size_t)(CTL_NW * nr * r + nr * r) * 4;
        if (smem > (size_t)optin) {
            snprintf(v->fused_off, sizeof v->fused_off, "%zu bytes of shared memory above the device's %d", smem, optin);
            return 0;
        }
        if (smem > (48 << 10)) CUDA_CHECK(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        int occ = 0;
        CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, fn, CTL_BT, smem));
        if (occ < 1) {
            snprintf(v->fused_off, sizeof v->fused_off, "a %d-thread block with %zu bytes of shared memory does not fit an SM",
                     CTL_BT, smem);
            return 0;
        }
        int chunks = (h1 + r - 1) / r, c2 = (h2 + r - 1) / r;
        if (v->n_layers == 3 && c2 > chunks) chunks = c2;
        v->fused_grid[multi] = sms < chunks ? sms : chunks;
        v->fused_smem[multi] = smem;
        if (multi) v->fused_nr = nr;
        if (nr > nr_max) nr_max = nr;
    }
    // W1 is read once (2 layers) or twice (3 layers) per step: keep it in L2 across steps and
    // calls with a persisting access-policy window, where the device has one and W1 fits.
    int persist_max = 0, window_max = 0;
    size_t w1_bytes = (size_t)h1 * d * es;
    if (cudaDeviceGetAttribute(&persist_max, cudaDevAttrMaxPersistingL2CacheSize, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&window_max, cudaDevAttrMaxAccessPolicyWindowSize, dev) != cudaSuccess) {
        cudaGetLastError();
        persist_max = window_max = 0;
    }
    if (persist_max > 0 && window_max > 0) {
        size_t limit = w1_bytes < (size_t)persist_max ? w1_bytes : (size_t)persist_max;
        if (cudaDeviceSetLimit(cudaLimitPersistingL2CacheSize, limit) == cudaSuccess) {
            v->l2_window_bytes = w1_bytes < (size_t)window_max ? w1_bytes : (size_t)window_max;
            v->l2_hit_ratio = (float)((double)limit / (double)v->l2_window_bytes);
            if (v->l2_hit_ratio > 1.f) v->l2_hit_ratio = 1.f;
        } else {
            cudaGetLastError();
            snprintf(v->l2_note, sizeof v->l2_note, "cudaDeviceSetLimit(persisting L2 %zu bytes) refused", limit);
        }
    } else {
        snprintf(v->l2_note, sizeof v->l2_note, "the device has no persisting L2 (max %d bytes, window %d)",
                 persist_max, window_max);
    }
    int gmax = v->fused_grid[0] > v->fused_grid[1] ? v->fused_grid[0] : v->fused_grid[1];
    size_t o_part = 0, total = align256((size_t)gmax * nr_max * kmax * 4);
    size_t o_pre = total; total = align256(total + (size_t)nr_max * h1 * 4);
    size_t o_xt = total; total = align256(total + (size_t)nr_max * d * es);
    size_t o_at = total; total = align256(total + (size_t)nr_max * h1 * es);
    size_t o_g1 = total; total = align256(total + (size_t)nr_max * h1 * es);
    CUDA_CHECK(cudaMalloc(&v->fbuf, total));
    char *base = (char *)v->fbuf;
    v->part = (float *)(base + o_part);
    v->f_pre1 = (float *)(base + o_pre);
    v->f_xt = base + o_xt;
    v->f_at = base + o_at;
    v->f_g1t = base + o_g1;
    v->fused = 1;
    v->fused_off[0] = 0;
    return 0;
}

static int control_apply_cublas(rc_cuda_value *v, float *x, int n, float alpha, int n_steps,
                                cudaStream_t s);

static int control_apply_fused(rc_cuda_value *v, float *x, int n, float alpha, int n_steps,
                               cudaStream_t s) {
    const int multi = n > 1;
    int nr, r;
    ctl_kernel_fn fn = ctl_pick(v->dt, ctl_vc(v), multi, &nr, &r);
    ctl_args a;
    memset(&a, 0, sizeof a);
    a.n_layers = v->n_layers;
    a.d = v->dims[0];
    a.h1 = v->dims[1];
    a.h2 = v->n_layers == 3 ? v->dims[2] : 1;
    a.kmax = a.d > a.h1 ? a.d : a.h1;
    a.w0 = v->w[0];
    a.w1 = v->w[1];
    a.w2 = v->n_layers == 3 ? v->w[2] : NULL;
    a.b0 = v->b[0];
    a.b1 = v->b[1];
    a.x = x;
    a.xt = v->f_xt;
    a.at = v->f_at;
    a.g1t = v->f_g1t;
    a.pre1 = v->f_pre1;
    a.part = v->part;
    a.n = n;
    a.n_steps = n_steps;
    a.alpha = alpha;
    // a stream attribute: kernels captured from s keep it in their node. Set when the stream's
    // window is not this net's yet (one window per stream: another net may have replaced it), not
    // at every call: the decode loop calls this once per token
    static thread_local const void *win_stream = NULL, *win_net = NULL;
    if (v->l2_window_bytes && (win_stream != (const void *)s || win_net != (const void *)v || !v->l2_window)) {
        cudaStreamAttrValue at;
        memset(&at, 0, sizeof at);
        at.accessPolicyWindow.base_ptr = (void *)v->w[0];
        at.accessPolicyWindow.num_bytes = v->l2_window_bytes;
        at.accessPolicyWindow.hitRatio = v->l2_hit_ratio;
        at.accessPolicyWindow.hitProp = cudaAccessPropertyPersisting;
        at.accessPolicyWindow.missProp = cudaAccessPropertyStreaming;
        if (cudaStreamSetAttribute(s, cudaStreamAttributeAccessPolicyWindow, &at) == cudaSuccess) {
            v->l2_window = 1;
            win_stream = (const void *)s;
            win_net = (const void *)v;
        } else { // not fatal: the kernel runs without it
            cudaGetLastError();
            v->l2_window_bytes = 0;
            snprintf(v->l2_note, sizeof v->l2_note, "cudaStreamSetAttribute(access policy window) refused");
        }
    }
    void *args[] = {&a};
    cudaError_t err = cudaLaunchCooperativeKernel(fn, dim3(v->fused_grid[multi]), dim3(CTL_BT), args,
                                                  v->fused_smem[multi], s);
    if (err == cudaErrorCooperativeLaunchTooLarge) { // fewer SMs than planned (MPS, another context)
        cudaGetLastError();
        v->fused = 0;
        snprintf(v->fused_off, sizeof v->fused_off, "the device could not hold the %d-block grid at launch",
                 v->fused_grid[multi]);
        fprintf(stderr, "recontrol: control step: %s; using the cuBLAS launches from now on\n", v->fused_off);
        return control_apply_cublas(v, x, n, alpha, n_steps, s);
    }
    CUDA_CHECK(err);
    return 0;
}

extern "C" void rc_cuda_value_free(rc_cuda_value *v) {
    if (!v) return;
    rc_cuda_blas_free(&v->blas);
    if (v->buf) cudaFree(v->buf);
    if (v->fbuf) cudaFree(v->fbuf);
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
    if (!rc) rc = fused_plan(v);
    if (!rc && !v->fused)
        fprintf(stderr, "recontrol: control step: the fused kernel cannot run (%s); using the cuBLAS "
                        "launches (%d per step)\n", v->fused_off, n_layers == 2 ? 4 : 8);
    if (rc) {
        rc_cuda_value_free(v);
        return -1;
    }
    return 0;
}

static int control_apply_cublas(rc_cuda_value *v, float *x, int n, float alpha, int n_steps,
                                cudaStream_t s) {
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

extern "C" int rc_cuda_control_apply_path(rc_cuda_value *v, float *x, int n, float alpha, int n_steps,
                                          int fused, cudaStream_t s) {
    if (n <= 0 || n_steps <= 0) return 0;
    RC_CUDA_REQUIRE(n <= v->cap_n, "rc_cuda_control_apply: %d rows for a capacity of %d", n, v->cap_n);
    if (!fused) return control_apply_cublas(v, x, n, alpha, n_steps, s);
    RC_CUDA_REQUIRE(v->fused, "rc_cuda_control_apply: no fused kernel for this net: %s", v->fused_off);
    return control_apply_fused(v, x, n, alpha, n_steps, s);
}

extern "C" int rc_cuda_control_apply(rc_cuda_value *v, float *x, int n, float alpha, int n_steps,
                                     cudaStream_t s) {
    return rc_cuda_control_apply_path(v, x, n, alpha, n_steps, v->fused, s);
}
