// y (n, out) = x (n, in) @ W (out, in)^T in fp32. Register tiles of 4 weight rows x 4 tokens;
// the k loop is an `omp simd` reduction so gcc/clang vectorize it (AVX2/AVX-512 with
// -march=native) without -ffast-math elsewhere. Threads split the weight rows (4-row blocks).
#include "kernels/cpu/matmul.h"

#include <stddef.h>

// 4 rows of W (w0..w3) x up to 4 tokens (x0..x3, nt of them) -> y[t*ldy + r].
static inline void tile_4x4(float *y, int ldy, const float *x, int in, int nt, const float *W) {
    const float *w0 = W, *w1 = W + in, *w2 = W + 2 * (size_t)in, *w3 = W + 3 * (size_t)in;
    if (nt == 4) {
        const float *x0 = x, *x1 = x + in, *x2 = x + 2 * (size_t)in, *x3 = x + 3 * (size_t)in;
        float s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
        float s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;
#pragma omp simd reduction(+ : s00, s01, s02, s03, s10, s11, s12, s13, s20, s21, s22, s23, s30, s31, s32, s33)
        for (int k = 0; k < in; k++) {
            float a0 = x0[k], a1 = x1[k], a2 = x2[k], a3 = x3[k];
            float b0 = w0[k], b1 = w1[k], b2 = w2[k], b3 = w3[k];
            s00 += a0 * b0; s01 += a0 * b1; s02 += a0 * b2; s03 += a0 * b3;
            s10 += a1 * b0; s11 += a1 * b1; s12 += a1 * b2; s13 += a1 * b3;
            s20 += a2 * b0; s21 += a2 * b1; s22 += a2 * b2; s23 += a2 * b3;
            s30 += a3 * b0; s31 += a3 * b1; s32 += a3 * b2; s33 += a3 * b3;
        }
        float *y0 = y, *y1 = y + ldy, *y2 = y + 2 * (size_t)ldy, *y3 = y + 3 * (size_t)ldy;
        y0[0] = s00; y0[1] = s01; y0[2] = s02; y0[3] = s03;
        y1[0] = s10; y1[1] = s11; y1[2] = s12; y1[3] = s13;
        y2[0] = s20; y2[1] = s21; y2[2] = s22; y2[3] = s23;
        y3[0] = s30; y3[1] = s31; y3[2] = s32; y3[3] = s33;
        return;
    }
    for (int t = 0; t < nt; t++) { // 1..3 leftover tokens: one token at a time, 4 rows
        const float *xt = x + (size_t)t * in;
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
        for (int k = 0; k < in; k++) {
            float a = xt[k];
            s0 += a * w0[k]; s1 += a * w1[k]; s2 += a * w2[k]; s3 += a * w3[k];
        }
        float *yt = y + (size_t)t * ldy;
        yt[0] = s0; yt[1] = s1; yt[2] = s2; yt[3] = s3;
    }
}

static inline float dot(const float *a, const float *b, int n) {
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int k = 0; k < n; k++) s += a[k] * b[k];
    return s;
}

void rc_cpu_gemm_nt(float *y, int ldy, const float *x, int n, const float *W, int rows, int in) {
    const int rows4 = rows / 4 * 4;
    for (int t = 0; t < n; t += 4) {
        const int nt = n - t < 4 ? n - t : 4;
        for (int r = 0; r < rows4; r += 4)
            tile_4x4(y + (size_t)t * ldy + r, ldy, x + (size_t)t * in, in, nt, W + (size_t)r * in);
        for (int r = rows4; r < rows; r++)
            for (int u = 0; u < nt; u++)
                y[(size_t)(t + u) * ldy + r] = dot(x + (size_t)(t + u) * in, W + (size_t)r * in, in);
    }
}

void rc_cpu_matmul(float *y, const float *x, const float *W, int n, int in, int out) {
    const int n_rb = out / 4; // full 4-row blocks; the out % 4 leftover rows are done after
    const double work = (double)n * in * out;
    // Token blocks of 64 keep the x block (64 * in floats) in L2 while a thread sweeps its rows.
    const int TB = 64;
    for (int t0 = 0; t0 < n; t0 += TB) {
        const int nt_blk = n - t0 < TB ? n - t0 : TB;
#pragma omp parallel for schedule(static) if (work > 65536)
        for (int rb = 0; rb < n_rb; rb++) {
            const float *Wb = W + (size_t)rb * 4 * in;
            for (int t = 0; t < nt_blk; t += 4) {
                int nt = nt_blk - t < 4 ? nt_blk - t : 4;
                tile_4x4(y + (size_t)(t0 + t) * out + rb * 4, out, x + (size_t)(t0 + t) * in, in, nt, Wb);
            }
        }
        for (int r = n_rb * 4; r < out; r++)
            for (int t = 0; t < nt_blk; t++)
                y[(size_t)(t0 + t) * out + r] = dot(x + (size_t)(t0 + t) * in, W + (size_t)r * in, in);
    }
}

void rc_cpu_matmul_multi(int k, float *const *y, const float *const *W, const int *out,
                         const float *x, int n, int in) {
    if (k < 1) return;
    if (k > 4) { // not a hot path: fall back to separate calls
        for (int j = 0; j < k; j++) rc_cpu_matmul(y[j], x, W[j], n, in, out[j]);
        return;
    }
    int first[5] = {0}; // first[j]: index of matrix j's first 4-row block in the joint range
    double work = 0;
    for (int j = 0; j < k; j++) {
        first[j + 1] = first[j] + out[j] / 4;
        work += (double)n * in * out[j];
    }
    const int n_rb = first[k];
    const int TB = 64;
    for (int t0 = 0; t0 < n; t0 += TB) {
        const int nt_blk = n - t0 < TB ? n - t0 : TB;
#pragma omp parallel for schedule(static) if (work > 65536)
        for (int g = 0; g < n_rb; g++) {
            int j = 0;
            while (g >= first[j + 1]) j++;
            const int rb = g - first[j], o = out[j];
            const float *Wb = W[j] + (size_t)rb * 4 * in;
            for (int t = 0; t < nt_blk; t += 4) {
                int nt = nt_blk - t < 4 ? nt_blk - t : 4;
                tile_4x4(y[j] + (size_t)(t0 + t) * o + rb * 4, o, x + (size_t)(t0 + t) * in, in, nt, Wb);
            }
        }
        for (int j = 0; j < k; j++)
            for (int r = out[j] / 4 * 4; r < out[j]; r++)
                for (int t = 0; t < nt_blk; t++)
                    y[j][(size_t)(t0 + t) * out[j] + r] =
                        dot(x + (size_t)(t0 + t) * in, W[j] + (size_t)r * in, in);
    }
}
