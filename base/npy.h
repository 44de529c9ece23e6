// NumPy .npy files (format 1.0), float32 C-order only: enough for logits and test fixtures.
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Writes data (shape[0] x ... x shape[ndim-1]) as '<f4' atomically.
int rc_npy_write_f32(const char *path, const float *data, int ndim, const int64_t *shape);
// Reads a '<f4' (or '<f8', converted) C-order array; *data malloc'd. shape must hold 8 dims.
int rc_npy_read_f32(const char *path, float **data, int *ndim, int64_t *shape);

#ifdef __cplusplus
}
#endif
