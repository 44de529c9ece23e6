// GGML tensor types (a format fact of GGUF files): type ids, names and block geometry
// (elements and bytes per block), with which types kernels/cpu/dequant.h can convert to fp32.
#pragma once
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
// 1 when rc_dequant_row (kernels/cpu/dequant.h) can convert this type to fp32.
int rc_ggml_can_dequant(uint32_t type);

#ifdef __cplusplus
}
#endif
