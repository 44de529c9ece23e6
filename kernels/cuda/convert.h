// Element-type conversion of device buffers (fp32 <-> fp16/bf16, round to nearest even), and a
// counter-based device RNG fill used to make random weights on the device without a download.
#pragma once
#include <stdint.h>

#include "kernels/cuda/cuda_common.h"

#ifdef __cplusplus
extern "C" {
#endif

// dst (n) of type dst_dt = src (n) of type src_dt. Any pair of RC_CUDA_* types.
int rc_cuda_convert(void *dst, rc_cuda_dtype dst_dt, const void *src, rc_cuda_dtype src_dt,
                    size_t n, cudaStream_t s);

// dst (n) of type dt = uniform in [-scale, scale) + offset, from a hash of (seed, index): the same
// seed gives the same values whatever the launch shape.
int rc_cuda_fill_uniform(void *dst, rc_cuda_dtype dt, size_t n, float scale, float offset,
                         uint64_t seed, cudaStream_t s);

#ifdef __cplusplus
}
#endif
