// GGML tensor types: block geometry (elements and bytes per block) and dequantization of rows
// of F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K to fp32.
// A row of n elements is n / block_elems consecutive blocks; layouts follow ggml's block_* structs.
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    RC_GGML_F32 = 0, RC_GGML_F16 = 1, RC_GGML_Q4_0 = 2, RC_GGML_Q4_1 = 3, RC_GGML_Q5_0 = 6,
    RC_GGML_Q5_1 = 7, RC_GGML_Q8_0 = 8, RC_GGML_Q8_1 = 9, RC_GGML_Q2_K = 10, RC_GGML_Q3_K = 11,
    RC_GGML_Q4_K = 12, RC_GGML_Q5_K = 13, RC_GGML_Q6_K = 14, RC_GGML_Q8_K = 15, RC_GGML_BF16 = 30,
};

// Name of a ggml type id ("Q4_1"), or "unknown" for ids this build does not know.
const char *rc_ggml_type_name(uint32_t type);
// Elements and bytes per block of a type. 0 / -1 (error set) for unknown types.
int rc_ggml_type_geometry(uint32_t type, int *block_elems, int *block_bytes);
// 1 when rc_dequant_row can convert this type to fp32.
int rc_ggml_can_dequant(uint32_t type);
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
