// CPU residual add: x += y over n elements, fp32.
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// x, y: (n). x is updated in place.
void rc_cpu_add(float *x, const float *y, size_t n);

#ifdef __cplusplus
}
#endif
