// CPU SwiGLU activation of the LLaMA MLP: out = silu(gate) * up, silu(g) = g / (1 + exp(-g)).
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// out, gate, up: (n) elements (typically n_tokens * intermediate_size). out may equal gate.
void rc_cpu_swiglu(float *out, const float *gate, const float *up, size_t n);

#ifdef __cplusplus
}
#endif
