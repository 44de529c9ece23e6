// Dequantization of GGML tensor types (base/ggml_types.h) to fp32: rows of F32, F16, BF16,
// Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K.
// A row of n elements is n / block_elems consecutive blocks; layouts follow ggml's block_* structs.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "base/ggml_types.h"

#ifdef __cplusplus
extern "C" {
#endif

// Converts n elements (a multiple of the type's block size) stored at src to fp32 in dst.
// 0 / -1 with a clear error for unsupported types or a bad n.
int rc_dequant_row(uint32_t type, const void *src, float *dst, int64_t n);

// The per-type kernels (nb = number of blocks).
void rc_dequant_q4_0(const uint8_t *src, float *dst, int64_t nb);
void rc_dequant_q4_1(const uint8_t *src, float *dst, int64_t nb);
void rc_dequant_q5_0(const uint8_t *src, float *dst, int64_t nb);
void rc_dequant_q5_1(const uint8_t *src, float *dst, int64_t nb);
void rc_dequant_q8_0(const uint8_t *src, float *dst, int64_t nb);
void rc_dequant_q2_k(const uint8_t *src, float *dst, int64_t nb);
void rc_dequant_q3_k(const uint8_t *src, float *dst, int64_t nb);
void rc_dequant_q4_k(const uint8_t *src, float *dst, int64_t nb);
void rc_dequant_q5_k(const uint8_t *src, float *dst, int64_t nb);
void rc_dequant_q6_k(const uint8_t *src, float *dst, int64_t nb);

#ifdef __cplusplus
}
#endif
