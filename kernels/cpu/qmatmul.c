// y (n, rows) = x (n, cols) @ W^T for weights in a GGML type, fp32 activations and sums.
// Up to 4 tokens: fused kernels unpack each block in registers (AVX-512 or AVX2/FMA/F16C) and
// multiply it into every token's sums; more tokens: a panel of 24 rows is unpacked to fp32 once
// (vectorized) and multiplied by a 6-row x 16-token register tile over tokens packed k-major.
// Portable C: dequantize a row, then dot / the 4x4 fp32 tile of kernels/cpu/matmul.c.
// Q4_0 / Q4_1 with AVX-512 VNNI (up to 4 tokens): the activations are held as block integers
// (per 32 values x ~= s X, X of 23 bits + sign relative to the block's largest |x|, as three
// signed base-256 digits) and the 4-bit weights multiplied in exact integer dot products
// (vpdpbusd), then scaled in fp32: the rounding of x to 23 bits of its block's maximum is of the
// order of fp32's own (x is read at 24), so the result stays within the fp32 tolerance.
#include "kernels/cpu/qmatmul.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "kernels/cpu/dequant.h"
#include "kernels/cpu/matmul.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define RC_QM_AVX2 1
#else
#define RC_QM_AVX2 0
#endif
#if RC_QM_AVX2 && defined(__AVX512F__) && defined(__AVX512BW__)
#define RC_QM_AVX512 1
#else
#define RC_QM_AVX512 0
#endif

#if RC_QM_AVX512 && defined(__AVX512VNNI__) && defined(__AVX512VL__)
#define RC_QM_VNNI 1
#else
#define RC_QM_VNNI 0
#endif

#define RC_QM_PANEL 24 // rows per unit of work (one thread's panel): 4 tiles of 6 rows
#define RC_QM_TR 6     // rows of the fp32 tile
#define RC_QM_TT 16    // tokens of the fp32 tile (two 8-float vectors)
#define RC_QM_FUSED_MAX 4

// 0 the best compiled in, 1 no VNNI (fp32 AVX-512), 2 AVX2 (no AVX-512), 3 portable C
static int isa_limit;
#define force_portable (isa_limit >= 3)
#define use_avx512     (isa_limit <= 1)
#define use_vnni       (RC_QM_VNNI && isa_limit == 0)

void rc_cpu_qmatmul_limit_isa(int level) {
    isa_limit = level < 0 ? 0 : level > 3 ? 3 : level;
}

const char *rc_cpu_qmatmul_isa(void) {
    if (RC_QM_VNNI && isa_limit == 0) return "avx512-vnni";
    if (RC_QM_AVX512 && isa_limit <= 1) return "avx512";
    return RC_QM_AVX2 && isa_limit <= 2 ? "avx2" : "portable";
}

int rc_qmat_type_ok(uint32_t type) { return rc_ggml_can_dequant(type); }

int rc_qmat_init(rc_qmat *w, const void *data, uint32_t type, int rows, int cols, int perm_hd) {
    memset(w, 0, sizeof *w);
    int be, bb;
    if (!rc_qmat_type_ok(type))
        return rc_fail("weight type %s (id %u) cannot be multiplied by the CPU kernels",
                       rc_ggml_type_name(type), type);
    if (rc_ggml_type_geometry(type, &be, &bb)) return -1;
    if (rows < 1 || cols < 1 || cols % be)
        return rc_fail("a %s weight of %d x %d: the row length must be a positive multiple of "
                       "the block size %d",
                       rc_ggml_type_name(type), rows, cols, be);
    if (perm_hd > 0 && (perm_hd % 2 || rows % perm_hd))
        return rc_fail("a weight of %d rows cannot be %d-row heads", rows, perm_hd);
    w->data = data;
    w->type = type;
    w->rows = rows;
    w->cols = cols;
    w->row_bytes = (size_t)(cols / be) * (size_t)bb;
    w->perm_hd = perm_hd > 0 ? perm_hd : 0;
    return 0;
}

size_t rc_qmat_bytes(const rc_qmat *w) { return (size_t)w->rows * w->row_bytes; }

// Per-thread scratch, grown on demand and kept for the thread's life (a per-call malloc of a
// large buffer would map and fault fresh pages on every product).
static __thread float *tl_buf;
static __thread size_t tl_cap;

static float *grow(float **buf, size_t *cap, size_t floats) {
    if (floats > *cap) {
        free(*buf);
        *buf = malloc(floats * sizeof(float));
        *cap = *buf ? floats : 0;
    }
    return *buf;
}

static float *thread_buf(size_t floats) { return grow(&tl_buf, &tl_cap, floats); }

// The caller's packed tokens (pack_tokens), kept apart from its panel scratch.
static __thread float *tl_pack;
static __thread size_t tl_pack_cap;

// ---- unpacking rows to fp32 ---------------------------------------------------------------

#if RC_QM_AVX2
static inline float f16s(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}
// 16 4-bit values (low nibbles of q, high nibbles of q) as four 8-float vectors.
static inline void unpack_nibbles(__m128i q, __m128i off, __m256 v[4]) {
    const __m128i m4 = _mm_set1_epi8(0x0F);
    __m128i lo = _mm_sub_epi8(_mm_and_si128(q, m4), off);
    __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(q, 4), m4), off);
    v[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo));
    v[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(lo, lo)));
    v[2] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi));
    v[3] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(hi, hi)));
}
static inline void unpack_q8(const uint8_t *q, __m256 v[4]) {
    for (int i = 0; i < 4; i++)
        v[i] = _mm256_cvtepi32_ps(
            _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(q + 8 * i))));
}
static inline __m256 load_bf16(const uint8_t *p) {
    __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
}
static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// 1 when the row was unpacked by a vector kernel.
static int deq_row_avx2(uint32_t type, const uint8_t *src, float *dst, int cols) {
    __m256 v[4];
    int nb = cols / 32, i = 0;
    switch (type) {
    case RC_GGML_Q4_0:
        for (int b = 0; b < nb; b++, src += 18, dst += 32) {
            __m256 d = _mm256_set1_ps(f16s(src));
            unpack_nibbles(_mm_loadu_si128((const __m128i *)(src + 2)), _mm_set1_epi8(8), v);
            for (int j = 0; j < 4; j++) _mm256_storeu_ps(dst + 8 * j, _mm256_mul_ps(v[j], d));
        }
        return 1;
    case RC_GGML_Q4_1:
        for (int b = 0; b < nb; b++, src += 20, dst += 32) {
            __m256 d = _mm256_set1_ps(f16s(src)), m = _mm256_set1_ps(f16s(src + 2));
            unpack_nibbles(_mm_loadu_si128((const __m128i *)(src + 4)), _mm_setzero_si128(), v);
            for (int j = 0; j < 4; j++) _mm256_storeu_ps(dst + 8 * j, _mm256_fmadd_ps(v[j], d, m));
        }
        return 1;
    case RC_GGML_Q8_0:
        for (int b = 0; b < nb; b++, src += 34, dst += 32) {
            __m256 d = _mm256_set1_ps(f16s(src));
            unpack_q8(src + 2, v);
            for (int j = 0; j < 4; j++) _mm256_storeu_ps(dst + 8 * j, _mm256_mul_ps(v[j], d));
        }
        return 1;
    case RC_GGML_F16:
        for (; i + 8 <= cols; i += 8)
            _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + 2 * i))));
        for (; i < cols; i++) dst[i] = f16s(src + 2 * i);
        return 1;
    case RC_GGML_BF16:
        for (; i + 8 <= cols; i += 8) _mm256_storeu_ps(dst + i, load_bf16(src + 2 * i));
        for (; i < cols; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = rc_bf16_to_f32(h);
        }
        return 1;
    default: return 0;
    }
}
#endif

// Stored row to fp32 (types validated by rc_qmat_init).
static void deq_row(uint32_t type, const uint8_t *src, float *dst, int cols) {
#if RC_QM_AVX2
    if (!force_portable && deq_row_avx2(type, src, dst, cols)) return;
#endif
    if (type == RC_GGML_F32) {
        memcpy(dst, src, (size_t)cols * sizeof(float));
        return;
    }
    (void)rc_dequant_row(type, src, dst, cols); // cannot fail: type and cols checked at init
}

void rc_qmat_rows_f32(const rc_qmat *w, int row0, int n, float *dst) {
    for (int i = 0; i < n; i++) {
        int r = row0 + i, s = r;
        if (w->perm_hd > 0) { // logical -> stored: inverse of rc_qmat_logical_row
            const int hd = w->perm_hd, half = hd / 2, k = r % hd;
            s = r - k + 2 * (k % half) + k / half;
        }
        deq_row(w->type, (const uint8_t *)w->data + (size_t)s * w->row_bytes,
                dst + (size_t)i * w->cols, w->cols);
    }
}

// ---- fused kernels: one stored row against nt <= 4 tokens ---------------------------------

#if RC_QM_AVX2
#define RC_AI static inline __attribute__((always_inline))

// Blocks of 32: kind 0 Q4_0, 1 Q4_1, 2 Q8_0. sx: per token, the sums of x over each block
// (Q4_1's min term: x . (q d + m) = d (x . q) + m sum(x)).
RC_AI void dots_blocks(const uint8_t *row, int kind, const float *x, int ldx, const float *sx,
                       int ldsx, int nb, int NT, float *out) {
    __m256 acc[RC_QM_FUSED_MAX], v[4];
    float macc[RC_QM_FUSED_MAX];
    for (int t = 0; t < NT; t++) acc[t] = _mm256_setzero_ps(), macc[t] = 0;
    const int bsz = kind == 0 ? 18 : kind == 1 ? 20 : 34;
    const __m128i off = kind == 1 ? _mm_setzero_si128() : _mm_set1_epi8(8);
    for (int b = 0; b < nb; b++, row += bsz) {
        const __m256 d = _mm256_set1_ps(f16s(row));
        if (kind == 2) unpack_q8(row + 2, v);
        else unpack_nibbles(_mm_loadu_si128((const __m128i *)(row + (kind == 1 ? 4 : 2))), off, v);
        const float m = kind == 1 ? f16s(row + 2) : 0.f;
        for (int t = 0; t < NT; t++) {
            const float *xb = x + (size_t)t * ldx + 32 * b;
            __m256 s = _mm256_mul_ps(v[0], _mm256_loadu_ps(xb));
            s = _mm256_fmadd_ps(v[1], _mm256_loadu_ps(xb + 8), s);
            s = _mm256_fmadd_ps(v[2], _mm256_loadu_ps(xb + 16), s);
            s = _mm256_fmadd_ps(v[3], _mm256_loadu_ps(xb + 24), s);
            acc[t] = _mm256_fmadd_ps(d, s, acc[t]);
            if (kind == 1) macc[t] += m * sx[(size_t)t * ldsx + b];
        }
    }
    for (int t = 0; t < NT; t++) out[t] = hsum(acc[t]) + macc[t];
}

#if RC_QM_AVX512
// dots_blocks with 16-float vectors: one conversion and one FMA per 16 weights.
// One block of 32 as two 16-float vectors.
RC_AI void unpack512(const uint8_t *row, int kind, __m512 *w0, __m512 *w1) {
    if (kind == 2) {
        *w0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(row + 2))));
        *w1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(row + 18))));
        return;
    }
    const __m128i m4 = _mm_set1_epi8(0x0F);
    const __m128i q = _mm_loadu_si128((const __m128i *)(row + (kind == 1 ? 4 : 2)));
    __m128i lo = _mm_and_si128(q, m4), hi = _mm_and_si128(_mm_srli_epi16(q, 4), m4);
    if (kind == 0) lo = _mm_sub_epi8(lo, _mm_set1_epi8(8)), hi = _mm_sub_epi8(hi, _mm_set1_epi8(8));
    *w0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo));
    *w1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi));
}

RC_AI void dots_blocks512(const uint8_t *row, int kind, const float *x, int ldx, const float *sx,
                          int ldsx, int nb, int NT, float *out) {
    // blocks in pairs with two accumulators per token: half the loop-carried FMA chain
    __m512 acc0[RC_QM_FUSED_MAX], acc1[RC_QM_FUSED_MAX];
    float macc[RC_QM_FUSED_MAX];
    for (int t = 0; t < NT; t++) acc0[t] = acc1[t] = _mm512_setzero_ps(), macc[t] = 0;
    const int bsz = kind == 0 ? 18 : kind == 1 ? 20 : 34;
    int b = 0;
    for (; b + 2 <= nb; b += 2, row += 2 * bsz) {
        __m512 a0, a1, b0, b1;
        unpack512(row, kind, &a0, &a1);
        unpack512(row + bsz, kind, &b0, &b1);
        const __m512 da = _mm512_set1_ps(f16s(row)), db = _mm512_set1_ps(f16s(row + bsz));
        const float ma = kind == 1 ? f16s(row + 2) : 0.f, mb = kind == 1 ? f16s(row + bsz + 2) : 0.f;
        for (int t = 0; t < NT; t++) {
            const float *xb = x + (size_t)t * ldx + 32 * b;
            __m512 s = _mm512_mul_ps(a0, _mm512_loadu_ps(xb));
            __m512 u = _mm512_mul_ps(b0, _mm512_loadu_ps(xb + 32));
            s = _mm512_fmadd_ps(a1, _mm512_loadu_ps(xb + 16), s);
            u = _mm512_fmadd_ps(b1, _mm512_loadu_ps(xb + 48), u);
            acc0[t] = _mm512_fmadd_ps(da, s, acc0[t]);
            acc1[t] = _mm512_fmadd_ps(db, u, acc1[t]);
            if (kind == 1) macc[t] += ma * sx[(size_t)t * ldsx + b] + mb * sx[(size_t)t * ldsx + b + 1];
        }
    }
    for (; b < nb; b++, row += bsz) {
        __m512 a0, a1;
        unpack512(row, kind, &a0, &a1);
        const __m512 da = _mm512_set1_ps(f16s(row));
        const float ma = kind == 1 ? f16s(row + 2) : 0.f;
        for (int t = 0; t < NT; t++) {
            const float *xb = x + (size_t)t * ldx + 32 * b;
            __m512 s = _mm512_mul_ps(a0, _mm512_loadu_ps(xb));
            s = _mm512_fmadd_ps(a1, _mm512_loadu_ps(xb + 16), s);
            acc0[t] = _mm512_fmadd_ps(da, s, acc0[t]);
            if (kind == 1) macc[t] += ma * sx[(size_t)t * ldsx + b];
        }
    }
    for (int t = 0; t < NT; t++) out[t] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[t], acc1[t])) + macc[t];
}
#endif

// F32 / F16 / BF16 rows: 8 elements at a time, scalar tail.
RC_AI void dots_float(uint32_t type, const uint8_t *row, const float *x, int ldx, int cols, int NT,
                      float *out) {
    __m256 acc[RC_QM_FUSED_MAX];
    for (int t = 0; t < NT; t++) acc[t] = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= cols; i += 8) {
        __m256 w = type == RC_GGML_F32   ? _mm256_loadu_ps((const float *)row + i)
                   : type == RC_GGML_F16 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 2 * i)))
                                         : load_bf16(row + 2 * i);
        for (int t = 0; t < NT; t++)
            acc[t] = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + (size_t)t * ldx + i), acc[t]);
    }
    for (int t = 0; t < NT; t++) out[t] = hsum(acc[t]);
    for (; i < cols; i++) {
        float w;
        if (type == RC_GGML_F32) memcpy(&w, row + 4 * i, 4);
        else if (type == RC_GGML_F16) w = f16s(row + 2 * i);
        else {
            uint16_t h;
            memcpy(&h, row + 2 * i, 2);
            w = rc_bf16_to_f32(h);
        }
        for (int t = 0; t < NT; t++) out[t] += w * x[(size_t)t * ldx + i];
    }
}

#if RC_QM_VNNI
// The activations of up to 4 tokens as block integers: per token and block of 32, x ~= s X with
// |X| <= 127 * 65793 (23 bits + sign, relative to the block's largest |x|), X = D0 + 256 D1 +
// 65536 D2 in signed digits. Stored per pair of blocks (A, B) in the order the kernel unpacks a
// pair's nibbles: lo = (A's weights 0-15, B's 0-15), hi = (A's 16-31, B's 16-31); an odd last
// block pairs with zeros. xs per pair: (s_A, c_A, s_B, c_B) with c = sum x (Q4_1) or -8 sum x
// (Q4_0: x . (d (q - 8)) = d s (q . X) - 8 d sum x).
// Rounding x to 23 bits of its block's largest |x| costs precision where one value dwarfs the
// rest (LLMs' "massive activations": a few channels thousands of times larger): the small
// values keep fewer bits, and when the weight on the large channel is small the error is no
// longer of fp32's order. So a pair holding a block with max |x| > 3/4 sum |x| (24 x its mean
// |x|; random data sits near 2) is multiplied in fp32 instead. Below that the rounding error, at
// most 24 mean |x| / XMAX per value, stays inside the fp32 tolerance tests/test_qmatmul.c holds
// every kernel to (4e-7 sqrt(K) sum |x w|) even when all the roundings add up, for K >= 64; the
// test's massive-activation case fails without this. The default model's activations flag ~0.25%
// of pairs (16 x the mean would flag 2.6% and cost ~5% of the decode rate). A wide pair's digits
// and scales are zeroed (the integer loop adds exactly 0 for it) and it is listed for an fp32
// pass after the loop.
typedef struct {
    int8_t lo[3][32], hi[3][32];
} xpair;
#define RC_QM_XMAX 8355711.0 // 127 * 65793: the largest |X| three signed digits hold

typedef struct {
    const xpair *d;    // (n, np) digit pairs
    const float *s1;   // (n, np, 4): Q4_1's (s, sum x) per block of the pair
    const float *s0;   // the same with -8 sum x (Q4_0)
    const float *sum;  // (n, np, 2): sum x per block (kept for the wide pairs)
    const int *wide;   // (n, np): per token, the indices of the pairs to do in fp32
    const int *n_wide; // (n): how many
} xint;

static __thread xpair *tl_xd;
static __thread size_t tl_xd_cap;
static __thread float *tl_xs;
static __thread size_t tl_xs_cap;
static __thread int *tl_wide;
static __thread size_t tl_wide_cap;
static __thread int tl_n_wide[RC_QM_FUSED_MAX];
static __thread xint tl_xint;

// NULL when some x is not finite (the fp32 kernels then carry the NaN/Inf as IEEE says).
static const xint *prep_digits(const float *x, int n, int cols) {
    const int nb = cols / 32, np = (nb + 1) / 2;
    const size_t npt = (size_t)n * np;
    if (npt > tl_xd_cap) {
        free(tl_xd);
        tl_xd = aligned_alloc(32, npt * sizeof(xpair));
        tl_xd_cap = tl_xd ? npt : 0;
    }
    if (npt > tl_wide_cap) {
        free(tl_wide);
        tl_wide = malloc(npt * sizeof(int));
        tl_wide_cap = tl_wide ? npt : 0;
    }
    float *xs = grow(&tl_xs, &tl_xs_cap, 10 * npt);
    if (!tl_xd || !xs || !tl_wide || n > RC_QM_FUSED_MAX) abort(); // out of memory
    for (int t = 0; t < n; t++)
        tl_n_wide[t] = 0;
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
    for (int t = 0; t < n; t++)
        for (int b = 0; b < 2 * np; b++) {
            xpair *xp = &tl_xd[(size_t)t * np + b / 2];
            const int half = 16 * (b % 2); // A in bytes 0-15 of lo/hi, B in 16-31
            float *s1 = xs + 4 * ((size_t)t * np + b / 2) + 2 * (b % 2), *s0 = s1 + 4 * npt;
            if (b == nb) { // the odd last block's partner: zeros
                for (int k = 0; k < 3; k++)
                    memset(xp->lo[k] + half, 0, 16), memset(xp->hi[k] + half, 0, 16);
                s1[0] = s1[1] = s0[0] = s0[1] = 0;
                continue;
            }
            const float *xb = x + (size_t)t * cols + 32 * b;
            const __m512 x0 = _mm512_loadu_ps(xb), x1 = _mm512_loadu_ps(xb + 16);
            const float mx = _mm512_reduce_max_ps(
                _mm512_max_ps(_mm512_and_ps(x0, absmask), _mm512_and_ps(x1, absmask)));
            if (!(mx <= 3.4e38f)) return NULL; // NaN or Inf
            const float sabs = _mm512_reduce_add_ps(
                _mm512_add_ps(_mm512_and_ps(x0, absmask), _mm512_and_ps(x1, absmask)));
            if (4.0f * mx > 3.0f * sabs && mx > 0) {
                int *nw = &tl_n_wide[t];
                if (!*nw || tl_wide[(size_t)t * np + *nw - 1] != b / 2)
                    tl_wide[(size_t)t * np + (*nw)++] = b / 2;
            }
            // X = round(x * XMAX / mx) in fp32 (|X - x / s| <= 1 with s = mx / XMAX)
            const __m512 inv = _mm512_set1_ps(mx > 0 ? (float)(RC_QM_XMAX / mx) : 0.f);
            for (int h = 0; h < 2; h++) {
                __m512i X =
                    _mm512_cvtps_epi32(_mm512_mul_ps(h ? x1 : x0, inv)); // nearest, ties even
                X = _mm512_min_epi32(_mm512_max_epi32(X, _mm512_set1_epi32(-8355711)),
                                     _mm512_set1_epi32(8355711));
                const __m512i d0 = _mm512_srai_epi32(_mm512_slli_epi32(X, 24), 24);
                const __m512i X1 = _mm512_srai_epi32(_mm512_sub_epi32(X, d0), 8);
                const __m512i d1 = _mm512_srai_epi32(_mm512_slli_epi32(X1, 24), 24);
                const __m512i d2 = _mm512_srai_epi32(_mm512_sub_epi32(X1, d1), 8);
                int8_t(*dst)[32] = h ? xp->hi : xp->lo;
                _mm_storeu_si128((__m128i *)(dst[0] + half), _mm512_cvtepi32_epi8(d0));
                _mm_storeu_si128((__m128i *)(dst[1] + half), _mm512_cvtepi32_epi8(d1));
                _mm_storeu_si128((__m128i *)(dst[2] + half), _mm512_cvtepi32_epi8(d2));
            }
            const float sum = _mm512_reduce_add_ps(_mm512_add_ps(x0, x1)); // fp32, pairwise
            const float sc = (float)(mx / RC_QM_XMAX);
            s1[0] = sc, s1[1] = sum; // Q4_1
            xs[8 * npt + 2 * ((size_t)t * np + b / 2) + b % 2] = sum;
            s0[0] = sc, s0[1] = -8.0f * sum; // Q4_0
        }
    for (int t = 0; t < n; t++) // wide pairs: nothing from the integer loop
        for (int k = 0; k < tl_n_wide[t]; k++) {
            const size_t i = (size_t)t * np + tl_wide[(size_t)t * np + k];
            memset(&tl_xd[i], 0, sizeof(xpair));
            for (int j = 0; j < 4; j++)
                xs[4 * i + j] = xs[4 * npt + 4 * i + j] = 0;
        }
    tl_xint.d = tl_xd;
    tl_xint.s1 = xs;
    tl_xint.s0 = xs + 4 * npt;
    tl_xint.sum = xs + 8 * npt;
    tl_xint.wide = tl_wide;
    tl_xint.n_wide = tl_n_wide;
    return &tl_xint;
}

// Block scales as an fp16 pair: Q4_1 (d, m), Q4_0 (d, d).
RC_AI uint32_t scale_pair(const uint8_t *p, int q41) {
    uint32_t u;
    if (q41)
        memcpy(&u, p, 4);
    else {
        uint16_t h;
        memcpy(&h, p, 2);
        u = (uint32_t)h * 0x10001u;
    }
    return u;
}

#define RC_QM_LD(a) _mm256_load_si256((const __m256i *)(a))
// One stored Q4_0 (q41 0) / Q4_1 (q41 1) row against NT tokens; xi from prep_digits. Per
// pair of blocks: both blocks' 16 bytes of nibbles in one vector, lo = v & 15 and hi = v >> 4,
// then q . X in 8 int32 lanes (lanes 0-3 block A, 4-7 block B; each the sum of 8 products,
// |lane| <= 8 * 15 * 127 * 65793 < 2^31), Horner over the three digits, one conversion and one
// FMA with the blocks' d s.
// x (NT, ldx): the activations themselves, for the pairs flagged wide.
RC_AI void vnni_blocks(const uint8_t *row, int q41, const xint *xi, const float *x, int ldx, int nb,
                       int NT, float *out) {
    const xpair *xd = xi->d;
    const float *xs = q41 ? xi->s1 : xi->s0;
    __m256 acc[RC_QM_FUSED_MAX];
    __m128 mt[RC_QM_FUSED_MAX]; // lanes 1 and 3: the blocks' min (Q4_1) / offset (Q4_0) terms
    for (int t = 0; t < NT; t++)
        acc[t] = _mm256_setzero_ps(), mt[t] = _mm_setzero_ps();
    const uint8_t *row0 = row;
    const int bsz = q41 ? 20 : 18, qo = q41 ? 4 : 2, np = (nb + 1) / 2;
    const __m256i m0F = _mm256_set1_epi8(0x0F), sel = _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2);
    for (int p = 0; p < np; p++, row += 2 * bsz) {
        const int has_b = 2 * p + 1 < nb; // else B's lanes read A again against zero digits
        const uint8_t *rb = has_b ? row + bsz : row;
        const __m256i v =
            _mm256_loadu2_m128i((const __m128i *)(rb + qo), (const __m128i *)(row + qo));
        const __m256i lo = _mm256_and_si256(v, m0F),
                      hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m0F);
        const __m128 h =
            _mm_cvtph_ps(_mm_unpacklo_epi32(_mm_cvtsi32_si128((int)scale_pair(row, q41)),
                                            _mm_cvtsi32_si128((int)scale_pair(rb, q41))));
        for (int t = 0; t < NT; t++) {
            const xpair *X = xd + (size_t)t * np + p;
            __m256i a = _mm256_dpbusd_epi32(
                _mm256_dpbusd_epi32(_mm256_setzero_si256(), lo, RC_QM_LD(X->lo[2])), hi,
                RC_QM_LD(X->hi[2]));
            a = _mm256_slli_epi32(a, 8);
            a = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(a, lo, RC_QM_LD(X->lo[1])), hi,
                                    RC_QM_LD(X->hi[1]));
            a = _mm256_slli_epi32(a, 8);
            a = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(a, lo, RC_QM_LD(X->lo[0])), hi,
                                    RC_QM_LD(X->hi[0]));
            const __m128 f =
                _mm_mul_ps(h, _mm_loadu_ps(xs + 4 * ((size_t)t * np + p))); // (d s, c) x 2
            mt[t] = _mm_add_ps(mt[t], f);
            acc[t] =
                _mm256_fmadd_ps(_mm256_cvtepi32_ps(a),
                                _mm256_permutevar8x32_ps(_mm256_castps128_ps256(f), sel), acc[t]);
        }
    }
    for (int t = 0; t < NT; t++) { // the wide pairs, as dots_blocks512: weights to fp32, x in fp32
        __m512 aw = _mm512_setzero_ps();
        float mw = 0;
        for (int k = 0; k < xi->n_wide[t]; k++) {
            const int p = xi->wide[(size_t)t * np + k];
            for (int b = 2 * p; b < 2 * p + 2 && b < nb; b++) {
                const uint8_t *rw = row0 + (size_t)b * bsz;
                const float *xt = x + (size_t)t * ldx + 32 * b;
                __m512 w0, w1;
                unpack512(rw, q41, &w0, &w1);
                aw = _mm512_fmadd_ps(_mm512_set1_ps(f16s(rw)),
                                     _mm512_fmadd_ps(w1, _mm512_loadu_ps(xt + 16),
                                                     _mm512_mul_ps(w0, _mm512_loadu_ps(xt))),
                                     aw);
                if (q41) mw += f16s(rw + 2) * xi->sum[2 * ((size_t)t * np + p) + b - 2 * p];
            }
        }
        const __m128 m = _mm_add_ps(mt[t], _mm_movehl_ps(mt[t], mt[t])); // lane 1: both min sums
        out[t] = hsum(acc[t]) + _mm_cvtss_f32(_mm_movehdup_ps(m)) + _mm512_reduce_add_ps(aw) + mw;
    }
}
#undef RC_QM_LD
#endif

// Stored rows [r0, r1) of w against nt <= 4 tokens into y (n, w->rows) at their logical rows;
// 1 when a fused kernel handled the type. xi: the activations as block integers (prep_digits)
// or NULL. The type and token count are dispatched once per panel, not per row.
static int dots_avx2(const rc_qmat *w, int r0, int r1, const float *x, const float *sx,
                     const void *xi, int nt, float *y) {
    const int cols = w->cols, nb = cols / 32, ldsx = cols / 32, hd = w->perm_hd;
    const uint8_t *base = (const uint8_t *)w->data;
    const uint32_t type = w->type;
#define RC_QM_ROWS(kcall)                                                                          \
    do {                                                                                           \
        int k = hd > 0 ? r0 % hd : 0; /* row within its head (GGUF's Q/K order) */                 \
        for (int r = r0; r < r1; r++) {                                                            \
            const uint8_t *row = base + (size_t)r * w->row_bytes;                                  \
            float out[RC_QM_FUSED_MAX];                                                            \
            kcall;                                                                                 \
            int lr = r;                                                                            \
            if (hd > 0) {                                                                          \
                lr = rc_qmat_head_row(r, k, hd);                                                   \
                if (++k == hd) k = 0;                                                              \
            }                                                                                      \
            for (int t = 0; t < NT; t++)                                                           \
                y[(size_t)t * w->rows + lr] = out[t];                                              \
        }                                                                                          \
    } while (0)
#define RC_QM_NT(call)                                                                             \
    switch (nt) {                                                                                  \
    case 1: {                                                                                      \
        const int NT = 1;                                                                          \
        RC_QM_ROWS(call);                                                                          \
    } break;                                                                                       \
    case 2: {                                                                                      \
        const int NT = 2;                                                                          \
        RC_QM_ROWS(call);                                                                          \
    } break;                                                                                       \
    case 3: {                                                                                      \
        const int NT = 3;                                                                          \
        RC_QM_ROWS(call);                                                                          \
    } break;                                                                                       \
    default: {                                                                                     \
        const int NT = 4;                                                                          \
        RC_QM_ROWS(call);                                                                          \
    } break;                                                                                       \
    }
#if RC_QM_VNNI
    if (xi && (type == RC_GGML_Q4_1 || type == RC_GGML_Q4_0)) {
        if (type == RC_GGML_Q4_1) {
            RC_QM_NT(vnni_blocks(row, 1, (const xint *)xi, x, cols, nb, NT, out));
        } else {
            RC_QM_NT(vnni_blocks(row, 0, (const xint *)xi, x, cols, nb, NT, out));
        }
        return 1;
    }
#else
    (void)xi;
#endif
#if RC_QM_AVX512
    if (use_avx512) switch (type) {
        case RC_GGML_Q4_0: RC_QM_NT(dots_blocks512(row, 0, x, cols, sx, ldsx, nb, NT, out)); return 1;
        case RC_GGML_Q4_1: RC_QM_NT(dots_blocks512(row, 1, x, cols, sx, ldsx, nb, NT, out)); return 1;
        case RC_GGML_Q8_0: RC_QM_NT(dots_blocks512(row, 2, x, cols, sx, ldsx, nb, NT, out)); return 1;
        default: break;
        }
#endif
    switch (type) {
    case RC_GGML_Q4_0: RC_QM_NT(dots_blocks(row, 0, x, cols, sx, ldsx, nb, NT, out)); return 1;
    case RC_GGML_Q4_1: RC_QM_NT(dots_blocks(row, 1, x, cols, sx, ldsx, nb, NT, out)); return 1;
    case RC_GGML_Q8_0: RC_QM_NT(dots_blocks(row, 2, x, cols, sx, ldsx, nb, NT, out)); return 1;
    case RC_GGML_F32:
    case RC_GGML_F16:
    case RC_GGML_BF16: RC_QM_NT(dots_float(type, row, x, cols, cols, NT, out)); return 1;
    default: return 0;
    }
#undef RC_QM_NT
#undef RC_QM_ROWS
}
#endif

#if RC_QM_AVX2
// The fp32 tile of the panel path: out[r * 16 + j] = W[r] . token j for 6 rows and 16 tokens.
// W: 6 rows of K floats; xp: the token block packed k-major (K, 16). 12 accumulators; per k two
// vector loads of x and six broadcasts of W, so the FMA units, not the loads, set the pace.
static void tile_6x16(const float *W, int K, const float *xp, float *out) {
    __m256 c[RC_QM_TR][2];
    for (int r = 0; r < RC_QM_TR; r++) c[r][0] = c[r][1] = _mm256_setzero_ps();
    for (int k = 0; k < K; k++) {
        const __m256 x0 = _mm256_loadu_ps(xp + 16 * (size_t)k), x1 = _mm256_loadu_ps(xp + 16 * (size_t)k + 8);
        for (int r = 0; r < RC_QM_TR; r++) {
            const __m256 b = _mm256_broadcast_ss(W + (size_t)r * K + k);
            c[r][0] = _mm256_fmadd_ps(b, x0, c[r][0]);
            c[r][1] = _mm256_fmadd_ps(b, x1, c[r][1]);
        }
    }
    for (int r = 0; r < RC_QM_TR; r++) {
        _mm256_storeu_ps(out + 16 * r, c[r][0]);
        _mm256_storeu_ps(out + 16 * r + 8, c[r][1]);
    }
}
#endif

static inline float dot_f32(const float *a, const float *b, int n) {
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int k = 0; k < n; k++) s += a[k] * b[k];
    return s;
}

// ---- the products ---------------------------------------------------------------------------

// One panel [r0, r1) of stored rows of w for all n tokens; results to y (n, w->rows).
static void panel(float *y, const rc_qmat *w, const float *x, int n, const float *sx,
                  const void *xi, const float *xp, int r0, int r1) {
    const int cols = w->cols, np = r1 - r0;
    const uint8_t *base = (const uint8_t *)w->data;
    if (n <= RC_QM_FUSED_MAX) {
#if RC_QM_AVX2
        if (!force_portable && dots_avx2(w, r0, r1, x, sx, xi, n, y)) return;
#endif
        (void)xi;
        float out[RC_QM_FUSED_MAX];
        float *tmp = thread_buf((size_t)cols);
        if (!tmp) abort(); // out of memory
        for (int r = r0; r < r1; r++) {
            deq_row(w->type, base + (size_t)r * w->row_bytes, tmp, cols);
            for (int t = 0; t < n; t++)
                out[t] = dot_f32(tmp, x + (size_t)t * cols, cols);
            const int lr = rc_qmat_logical_row(w, r);
            for (int t = 0; t < n; t++) y[(size_t)t * w->rows + lr] = out[t];
        }
        return;
    }
#if RC_QM_AVX2
    if (!force_portable && xp) {
        // Unpack the panel once (padded with zero rows to whole tiles), then 6 x 16 tiles over
        // every block of 16 tokens (xp: packed tokens, see pack_tokens).
        const int np_pad = (np + RC_QM_TR - 1) / RC_QM_TR * RC_QM_TR;
        float *buf = thread_buf((size_t)np_pad * cols);
        if (!buf) abort(); // out of memory for a few hundred KiB of scratch
        for (int i = 0; i < np; i++)
            deq_row(w->type, base + (size_t)(r0 + i) * w->row_bytes, buf + (size_t)i * cols, cols);
        memset(buf + (size_t)np * cols, 0, sizeof(float) * (size_t)(np_pad - np) * cols);
        float out[RC_QM_TR * RC_QM_TT];
        for (int t0 = 0; t0 < n; t0 += RC_QM_TT) {
            const int nt = n - t0 < RC_QM_TT ? n - t0 : RC_QM_TT;
            const float *xb = xp + (size_t)(t0 / RC_QM_TT) * cols * RC_QM_TT;
            for (int i0 = 0; i0 < np; i0 += RC_QM_TR) {
                tile_6x16(buf + (size_t)i0 * cols, cols, xb, out);
                const int nr = np - i0 < RC_QM_TR ? np - i0 : RC_QM_TR;
                for (int i = 0; i < nr; i++) {
                    const int lr = rc_qmat_logical_row(w, r0 + i0 + i);
                    for (int t = 0; t < nt; t++) y[(size_t)(t0 + t) * w->rows + lr] = out[i * RC_QM_TT + t];
                }
            }
        }
        return;
    }
#endif
    (void)xp;
    // Portable: unpack the panel once, then the fp32 tiles over every token into yp (n, np).
    float *buf = thread_buf((size_t)np * cols + (size_t)n * np);
    if (!buf) abort(); // out of memory for a few hundred KiB of scratch
    float *yp = buf + (size_t)np * cols;
    for (int i = 0; i < np; i++)
        deq_row(w->type, base + (size_t)(r0 + i) * w->row_bytes, buf + (size_t)i * cols, cols);
    rc_cpu_gemm_nt(yp, np, x, n, buf, np, cols);
    for (int i = 0; i < np; i++) {
        const int lr = rc_qmat_logical_row(w, r0 + i);
        for (int t = 0; t < n; t++) y[(size_t)t * w->rows + lr] = yp[(size_t)t * np + i];
    }
}

// x (n, cols) -> blocks of 16 tokens, each k-major (cols, 16), zero-padded past n, in the
// calling thread's buffer (kept: a fresh large malloc would fault in new pages every call).
static float *pack_tokens(const float *x, int n, int cols) {
    const int nblk = (n + RC_QM_TT - 1) / RC_QM_TT;
    float *xp = grow(&tl_pack, &tl_pack_cap, (size_t)nblk * cols * RC_QM_TT);
    if (!xp) abort(); // out of memory for a copy of the activations
    for (int b = 0; b < nblk; b++) {
        float *dst = xp + (size_t)b * cols * RC_QM_TT;
        for (int j = 0; j < RC_QM_TT; j++) {
            const int t = b * RC_QM_TT + j;
            if (t < n) {
                const float *src = x + (size_t)t * cols;
                for (int k = 0; k < cols; k++) dst[(size_t)k * RC_QM_TT + j] = src[k];
            } else {
                for (int k = 0; k < cols; k++) dst[(size_t)k * RC_QM_TT + j] = 0.f;
            }
        }
    }
    return xp;
}

void rc_cpu_qmatmul_multi(int k, float *const *y, const rc_qmat *const *w, const float *x, int n) {
    if (k < 1 || n < 1) return;
    if (k > 4) {
        for (int j = 0; j < k; j++) rc_cpu_qmatmul_multi(1, y + j, w + j, x, n);
        return;
    }
    const int cols = w[0]->cols;
    // panels of rows: 24 for the tiles; 8 for the fused kernels (finer shares between threads).
    // Guided schedule: each thread takes contiguous runs of panels (sequential weight streams,
    // which the prefetchers need: dynamic panels cost a quarter of the decode rate), the runs
    // shrinking towards the end so that the threads finish together.
    const int prow = n <= RC_QM_FUSED_MAX ? 8 : RC_QM_PANEL;
    int first[5] = {0}; // first[j]: matrix j's first panel in the joint range
    double work = 0;
    int need_sx = 0, want_digits = 0;
    for (int j = 0; j < k; j++) {
        first[j + 1] = first[j] + (w[j]->rows + prow - 1) / prow;
        work += (double)n * cols * w[j]->rows;
        need_sx |= w[j]->type == RC_GGML_Q4_1;
        want_digits |= w[j]->type == RC_GGML_Q4_1 || w[j]->type == RC_GGML_Q4_0;
    }
    const void *xi = NULL;
#if RC_QM_VNNI
    if (use_vnni && want_digits && n <= RC_QM_FUSED_MAX) xi = prep_digits(x, n, cols);
#endif
    (void)want_digits;
    // Block sums of x for Q4_1's min term in the fused kernels.
    float *sx = NULL;
    if (RC_QM_AVX2 && !force_portable && need_sx && n <= RC_QM_FUSED_MAX && !xi) {
        const int nb = cols / 32;
        sx = malloc((size_t)n * nb * sizeof(float));
        if (!sx) abort();
        for (int t = 0; t < n; t++)
            for (int b = 0; b < nb; b++) {
                float s = 0;
                for (int i = 0; i < 32; i++) s += x[(size_t)t * cols + 32 * b + i];
                sx[(size_t)t * nb + b] = s;
            }
    }
    float *xp = RC_QM_AVX2 && !force_portable && n > RC_QM_FUSED_MAX ? pack_tokens(x, n, cols) : NULL;
    const int n_panels = first[k];
#pragma omp parallel for schedule(guided) if (work > 65536)
    for (int g = 0; g < n_panels; g++) {
        int j = 0;
        while (g >= first[j + 1]) j++;
        const int r0 = (g - first[j]) * prow;
        const int r1 = r0 + prow < w[j]->rows ? r0 + prow : w[j]->rows;
        panel(y[j], w[j], x, n, sx, xi, xp, r0, r1);
    }
    free(sx);
}

void rc_cpu_qmatmul(float *y, const float *x, const rc_qmat *w, int n) {
    float *ys[1] = {y};
    const rc_qmat *ws[1] = {w};
    rc_cpu_qmatmul_multi(1, ys, ws, x, n);
}
