// Products against weights kept in their stored type (kernels/cpu/qmatmul.h) against the
// dequantize-then-multiply path: each row dequantized by the scalar reference of
// kernels/cpu/dequant.c, the product summed in double. Both the vector kernels and the portable C
// ones, every token count across the fused (<= 4) / panel boundary, row counts off the panel
// size, GGUF's Q/K row order. Tolerance: fp32 summation of K terms, |err| <= 4e-7 * sqrt(K) *
// sum_k |x_k w_k| (the order and fusing of the fp32 operations differ from the reference).
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "base/ggml_types.h"
#include "kernels/cpu/dequant.h"
#include "kernels/cpu/qmatmul.h"

static uint64_t g_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd32(void) {
    g_state ^= g_state << 13;
    g_state ^= g_state >> 7;
    g_state ^= g_state << 17;
    return (uint32_t)(g_state >> 32);
}
static float frand(void) { return (float)(rnd32() >> 8) * (2.0f / 16777216.0f) - 1.0f; }

static void put_f16(uint8_t *p, float v) {
    uint16_t h = rc_f32_to_f16(v);
    memcpy(p, &h, 2);
}

// Offsets of the fp16 scale fields in one block of each type (-1 ends the list).
static const int *scale_fields(uint32_t type) {
    static const int q4_0[] = {0, -1}, q4_1[] = {0, 2, -1}, q2k[] = {80, 82, -1},
                     q3k[] = {108, -1}, q4k[] = {0, 2, -1}, q6k[] = {208, -1};
    switch (type) {
    case RC_GGML_Q4_0: case RC_GGML_Q5_0: case RC_GGML_Q8_0: return q4_0;
    case RC_GGML_Q4_1: case RC_GGML_Q5_1: return q4_1;
    case RC_GGML_Q2_K: return q2k;
    case RC_GGML_Q3_K: return q3k;
    case RC_GGML_Q4_K: case RC_GGML_Q5_K: return q4k;
    case RC_GGML_Q6_K: return q6k;
    default: return NULL;
    }
}

// Random rows of a type: float types from uniform values, block types from random bytes with
// finite scales.
static uint8_t *make_weights(uint32_t type, int rows, int cols, size_t *row_bytes) {
    int be, bb;
    cr_assert_eq(rc_ggml_type_geometry(type, &be, &bb), 0);
    *row_bytes = (size_t)(cols / be) * bb;
    uint8_t *w = malloc(*row_bytes * rows);
    size_t n = (size_t)rows * cols;
    if (type == RC_GGML_F32) {
        for (size_t i = 0; i < n; i++) ((float *)w)[i] = frand();
    } else if (type == RC_GGML_F16 || type == RC_GGML_BF16) {
        for (size_t i = 0; i < n; i++) {
            uint16_t h = type == RC_GGML_F16 ? rc_f32_to_f16(frand()) : rc_f32_to_bf16(frand());
            memcpy(w + 2 * i, &h, 2);
        }
    } else {
        for (size_t i = 0; i < *row_bytes * rows; i++) w[i] = (uint8_t)rnd32();
        const int *f = scale_fields(type);
        cr_assert(f, "no scale table for %s", rc_ggml_type_name(type));
        for (size_t b = 0; b < n / be; b++)
            for (int k = 0; f[k] >= 0; k++) put_f16(w + b * bb + f[k], 0.02f * frand());
    }
    return w;
}

// perm_hd: stored row s holds logical row rc_qmat_logical_row(s). portable: the ISA cap
// (rc_cpu_qmatmul_limit_isa).
static void check_product_x(uint32_t type, int rows, int cols, int n, int perm_hd, int portable,
                            const float *x_in);
static void check_product(uint32_t type, int rows, int cols, int n, int perm_hd, int portable) {
    check_product_x(type, rows, cols, n, perm_hd, portable, NULL);
}
// x_in: the activations (n, cols), or NULL for uniform random ones.
static void check_product_x(uint32_t type, int rows, int cols, int n, int perm_hd, int portable,
                            const float *x_in) {
    size_t rb;
    uint8_t *wb = make_weights(type, rows, cols, &rb);
    rc_qmat w;
    cr_assert_eq(rc_qmat_init(&w, wb, type, rows, cols, perm_hd), 0, "%s", rc_last_error());
    float *wf = malloc((size_t)rows * cols * sizeof(float)); // logical rows, scalar dequant
    for (int s = 0; s < rows; s++)
        cr_assert_eq(rc_dequant_row(type, wb + s * rb, wf + (size_t)rc_qmat_logical_row(&w, s) * cols,
                                    cols),
                     0);
    float *x = malloc((size_t)n * cols * sizeof(float));
    for (size_t i = 0; i < (size_t)n * cols; i++)
        x[i] = x_in ? x_in[i] : frand();
    float *y = malloc((size_t)n * rows * sizeof(float));
    for (size_t i = 0; i < (size_t)n * rows; i++) y[i] = NAN;
    rc_cpu_qmatmul_limit_isa(portable);
    const char *isa = rc_cpu_qmatmul_isa();
    rc_cpu_qmatmul(y, x, &w, n);
    // rows read back as fp32 equal the scalar dequantization
    float *back = malloc((size_t)rows * cols * sizeof(float));
    rc_qmat_rows_f32(&w, 0, rows, back);
    rc_cpu_qmatmul_limit_isa(0);
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        cr_assert(fabsf(back[i] - wf[i]) <= 1e-6f * fabsf(wf[i]) + 1e-30f,
                  "%s rows_f32 [%zu]: %g vs %g", rc_ggml_type_name(type), i, back[i], wf[i]);
    for (int t = 0; t < n; t++)
        for (int r = 0; r < rows; r++) {
            double ref = 0, mag = 0;
            for (int k = 0; k < cols; k++) {
                double p = (double)x[(size_t)t * cols + k] * wf[(size_t)r * cols + k];
                ref += p;
                mag += fabs(p);
            }
            double got = y[(size_t)t * rows + r];
            double tol = 4e-7 * sqrt((double)cols) * mag + 1e-30;
            cr_assert(fabs(got - ref) <= tol,
                      "%s %s rows %d cols %d n %d perm %d: y[%d][%d] = %.9g, reference %.9g "
                      "(tolerance %.3g)",
                      rc_ggml_type_name(type), isa, rows,
                      cols, n, perm_hd, t, r, got, ref, tol);
        }
    free(wb), free(wf), free(x), free(y), free(back);
}

static const uint32_t all_types[] = {RC_GGML_F32,  RC_GGML_F16,  RC_GGML_BF16, RC_GGML_Q4_0,
                                     RC_GGML_Q4_1, RC_GGML_Q5_0, RC_GGML_Q5_1, RC_GGML_Q8_0,
                                     RC_GGML_Q2_K, RC_GGML_Q3_K, RC_GGML_Q4_K, RC_GGML_Q5_K,
                                     RC_GGML_Q6_K};
static const int token_counts[] = {1, 2, 3, 4, 5, 8, 33};

Test(qmatmul, every_type_matches_dequantized_product) {
    for (size_t i = 0; i < sizeof all_types / sizeof all_types[0]; i++) {
        const uint32_t t = all_types[i];
        int be, bb;
        rc_ggml_type_geometry(t, &be, &bb);
        // odd float rows hit the scalar tails; 3 blocks an odd block count (VNNI pairs blocks)
        for (int c = 0; c < 2; c++) {
            const int cols = be == 1 ? 77 - 20 * c : (2 + c) * be;
            for (size_t j = 0; j < sizeof token_counts / sizeof token_counts[0]; j++)
                for (int isa = 0; isa < 4; isa++) // best, AVX-512 fp32, AVX2, portable
                    check_product(t, 37, cols, token_counts[j], 0, isa);
        }
    }
}

Test(qmatmul, gguf_qk_row_order_is_undone) {
    const uint32_t types[] = {RC_GGML_Q4_1, RC_GGML_Q8_0, RC_GGML_F32};
    for (size_t i = 0; i < 3; i++)
        for (int n = 1; n <= 9; n += 4)
            for (int isa = 0; isa < 4; isa++)
                check_product(types[i], 48, 64, n, 16, isa);
}

Test(qmatmul, multi_equals_separate) {
    size_t rb1, rb2;
    const int cols = 96, n_max = 6;
    uint8_t *a = make_weights(RC_GGML_Q4_1, 40, cols, &rb1);
    uint8_t *b = make_weights(RC_GGML_Q8_0, 19, cols, &rb2);
    rc_qmat wa, wb;
    cr_assert_eq(rc_qmat_init(&wa, a, RC_GGML_Q4_1, 40, cols, 0), 0);
    cr_assert_eq(rc_qmat_init(&wb, b, RC_GGML_Q8_0, 19, cols, 0), 0);
    float x[6 * 96], y1[6 * 40], y2[6 * 19], z1[6 * 40], z2[6 * 19];
    for (int i = 0; i < n_max * cols; i++) x[i] = frand();
    for (int n = 1; n <= n_max; n++) {
        float *ys[2] = {y1, y2};
        const rc_qmat *ws[2] = {&wa, &wb};
        rc_cpu_qmatmul_multi(2, ys, ws, x, n);
        rc_cpu_qmatmul(z1, x, &wa, n);
        rc_cpu_qmatmul(z2, x, &wb, n);
        cr_assert(!memcmp(y1, z1, sizeof(float) * n * 40) && !memcmp(y2, z2, sizeof(float) * n * 19),
                  "n %d", n);
    }
    free(a), free(b);
}

// Activations as a model makes them: a few channels far larger than the rest in the same block
// (the VNNI kernels hold x relative to its block's largest |x|), blocks of zeros, tiny and
// subnormal values, a lone large value; the same tolerance (relative to sum |x w|, which an
// outlier dominates in fp32 arithmetic too).
Test(qmatmul, outlier_zero_and_tiny_activations) {
    // one pattern at a time in block 1 of 6 (the others uniform), so that no other block's
    // magnitude loosens the tolerance: 0 massive value, 1 two large values, 2 all zero, 3 tiny,
    // 4 a subnormal among normal values, 5 one value and zeros
    const int cols = 192, n_max = 4;
    float *x = malloc(sizeof(float) * cols * n_max);
    const uint32_t types[] = {RC_GGML_Q4_0, RC_GGML_Q4_1, RC_GGML_Q8_0, RC_GGML_F16};
    for (int pat = 0; pat < 6; pat++) {
        for (int t = 0; t < n_max; t++)
            for (int k = 0; k < cols; k++) {
                float v = frand();
                const int i = k % 32;
                if (k / 32 == 1) {
                    if (pat == 0 && i == 7) v *= 3e4f;
                    if (pat == 1 && (i == 3 || i == 20)) v = (i == 3 ? 3e4f : -2e4f);
                    if (pat == 2) v = 0.0f;
                    if (pat == 3) v *= 1e-30f;
                    if (pat == 4 && i == 31) v = 2e-39f;
                    if (pat == 5) v = i == 5 ? -7e3f : 0.f;
                }
                x[t * cols + k] = v * (float)(t + 1);
            }
        for (int ti = 0; ti < 4; ti++)
            for (int n = 1; n <= n_max; n++)
                for (int isa = 0; isa < 4; isa++)
                    check_product_x(types[ti], 29, cols, n, 0, isa, x);
    }
    free(x);
}

// A NaN or Inf in the activations reaches the outputs (IEEE), whatever kernel runs.
Test(qmatmul, nonfinite_activations_propagate) {
    const int cols = 64, rows = 9;
    size_t rb;
    for (int ti = 0; ti < 2; ti++) {
        const uint32_t type = ti ? RC_GGML_Q4_1 : RC_GGML_Q4_0;
        uint8_t *wb = make_weights(type, rows, cols, &rb);
        rc_qmat w;
        cr_assert_eq(rc_qmat_init(&w, wb, type, rows, cols, 0), 0);
        for (int isa = 0; isa < 4; isa++)
            for (int n = 1; n <= 2; n++) {
                float x[2 * 64], y[2 * 9];
                for (int k = 0; k < n * cols; k++)
                    x[k] = frand();
                x[(n - 1) * cols + 40] = (isa % 2) ? NAN : INFINITY;
                rc_cpu_qmatmul_limit_isa(isa);
                rc_cpu_qmatmul(y, x, &w, n);
                rc_cpu_qmatmul_limit_isa(0);
                for (int r = 0; r < rows; r++)
                    cr_assert(!isfinite(y[(n - 1) * rows + r]), "%s isa %d n %d row %d: %g",
                              rc_ggml_type_name(type), isa, n, r, y[(n - 1) * rows + r]);
                if (n == 2)
                    for (int r = 0; r < rows; r++)
                        cr_assert(isfinite(y[r]), "token 0 is finite: row %d %g", r, y[r]);
            }
        free(wb);
    }
}

Test(qmatmul, init_refuses_bad_shapes) {
    rc_qmat w;
    uint8_t buf[64] = {0};
    cr_assert_eq(rc_qmat_init(&w, buf, RC_GGML_Q4_0, 2, 33, 0), -1);
    cr_assert(strstr(rc_last_error(), "multiple of the block size 32"), "%s", rc_last_error());
    cr_assert_eq(rc_qmat_init(&w, buf, RC_GGML_Q8_1, 2, 32, 0), -1);
    cr_assert_eq(rc_qmat_init(&w, buf, RC_GGML_F32, 6, 4, 4), -1); // 6 rows are not 4-row heads
}
