// CPU GELU activations in place over n elements, fp32: the exact one (erf; BERT's "gelu") and
// the tanh approximation ("gelu_new", "gelu_pytorch_tanh").
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

void rc_cpu_gelu_erf(float *x, size_t n);  // x * 0.5 * (1 + erf(x / sqrt(2)))
void rc_cpu_gelu_tanh(float *x, size_t n); // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))

#ifdef __cplusplus
}
#endif
