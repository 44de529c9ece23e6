// The non-finite scan (base/finite.h): a branch-free max over the magnitude bits that the
// compiler vectorizes (NaN and Inf are exactly the floats whose |bits| >= 0x7f800000), threads
// for large tensors; the exact index is only looked for once a block is known to hold one.
#include "base/finite.h"

#include <math.h>
#include <string.h>

#include "base/common.h"

static int g_scan = 1;

void rc_set_weight_scan(int on) { g_scan = on; }
int rc_weight_scan_enabled(void) { return g_scan; }

// Max of the magnitude bits of n elements: NaN and Inf are exactly those at or above the
// exponent-all-ones pattern (0x7f800000 for F32, 0x7c00 for F16, 0x7f80 for BF16).
static uint32_t max_bits32(const void *p, size_t n) {
    const uint32_t *u = p;
    uint32_t m = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t b = u[i] & 0x7fffffffu;
        m = b > m ? b : m;
    }
    return m;
}

static uint32_t max_bits16(const void *p, size_t n) {
    const uint16_t *u = p;
    uint16_t m = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t b = (uint16_t)(u[i] & 0x7fffu);
        m = b > m ? b : m;
    }
    return m;
}

static int64_t first_bad(const void *x, size_t n, size_t esz, uint32_t limit) {
    const size_t block = (size_t)1 << 16;
    size_t nblocks = (n + block - 1) / block;
    int64_t first = -1;
    const char *base = x;
    // each block is scanned independently; the lowest bad block then gives the exact index
#pragma omp parallel for schedule(static) if (n >= ((size_t)1 << 22))
    for (size_t bi = 0; bi < nblocks; bi++) {
        size_t b0 = bi * block, len = n - b0 < block ? n - b0 : block;
        uint32_t m = esz == 4 ? max_bits32(base + b0 * 4, len) : max_bits16(base + b0 * 2, len);
        if (m < limit) continue;
#pragma omp critical(rc_nonfinite)
        if (first < 0 || (int64_t)b0 < first) first = (int64_t)b0;
    }
    if (first < 0) return -1;
    size_t end = (size_t)first + block < n ? (size_t)first + block : n;
    for (size_t i = (size_t)first; i < end; i++) {
        uint32_t b = esz == 4 ? ((const uint32_t *)x)[i] & 0x7fffffffu : ((const uint16_t *)x)[i] & 0x7fffu;
        if (b >= limit) return (int64_t)i;
    }
    return -1; // not reached
}

int64_t rc_first_nonfinite(const float *x, size_t n) { return first_bad(x, n, 4, 0x7f800000u); }
int64_t rc_first_nonfinite_f16(const uint16_t *x, size_t n) { return first_bad(x, n, 2, 0x7c00u); }
int64_t rc_first_nonfinite_bf16(const uint16_t *x, size_t n) { return first_bad(x, n, 2, 0x7f80u); }

int rc_check_finite_typed(const char *what, const char *name, int kind, const void *x, size_t n) {
    if (!g_scan) return 0;
    int64_t i = kind == RC_FINITE_F16 ? rc_first_nonfinite_f16(x, n)
                : kind == RC_FINITE_BF16 ? rc_first_nonfinite_bf16(x, n)
                                         : rc_first_nonfinite(x, n);
    if (i < 0) return 0;
    float v = kind == RC_FINITE_F16 ? rc_f16_to_f32(((const uint16_t *)x)[i])
              : kind == RC_FINITE_BF16 ? rc_bf16_to_f32(((const uint16_t *)x)[i])
                                       : ((const float *)x)[i];
    return rc_fail("%s: tensor %s holds %s at element %lld (of %zu): the weights are corrupt "
                   "(--skip-weight-scan loads them anyway)",
                   what, name, isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf", (long long)i, n);
}

int rc_check_finite(const char *what, const char *name, const float *x, size_t n) {
    return rc_check_finite_typed(what, name, RC_FINITE_F32, x, n);
}
