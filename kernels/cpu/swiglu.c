// silu(gate) * up elementwise in fp32. AVX2/FMA: 8 lanes with the vector e^x of
// kernels/cpu/vexp.h (about 2 ulp), the division in IEEE fp32; the tail and the
// portable build use expf. Both give 1 / (1 + e^-g) within a few ulp of the exact value, and
// the same IEEE results at the ends: g -> +inf: g; g -> -inf: -0 (NaN at -inf itself, as expf).
#include "kernels/cpu/swiglu.h"

#include <math.h>

#include "kernels/cpu/vexp.h"

static void swiglu_range(float *out, const float *gate, const float *up, size_t i0, size_t i1) {
    size_t i = i0;
#if defined(__AVX2__) && defined(__FMA__)
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    for (; i + 8 <= i1; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i);
        const __m256 e = rc_vexp8(_mm256_xor_ps(g, sign)); // e^-g
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)),
                                                _mm256_loadu_ps(up + i)));
    }
#endif
    for (; i < i1; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void rc_cpu_swiglu(float *out, const float *gate, const float *up, size_t n) {
    if (n <= 65536) {
        swiglu_range(out, gate, up, 0, n);
        return;
    }
    const size_t chunk = 4096;
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < (n + chunk - 1) / chunk; c++)
        swiglu_range(out, gate, up, c * chunk, (c + 1) * chunk < n ? (c + 1) * chunk : n);
}
