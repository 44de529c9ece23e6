// Non-finite values (NaN, +-Inf) in loaded weights: a vectorized scan refused with the tensor's
// name, so a corrupt checkpoint fails at load instead of decoding all-zero tokens.
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Index of the first NaN or Inf in x[0..n), or -1 when all are finite.
int64_t rc_first_nonfinite(const float *x, size_t n);
// The same on the bits of IEEE half (F16) and bfloat16 (BF16) values, as the weights are kept.
int64_t rc_first_nonfinite_f16(const uint16_t *x, size_t n);
int64_t rc_first_nonfinite_bf16(const uint16_t *x, size_t n);
// Element kinds for rc_check_finite_typed.
enum { RC_FINITE_F32 = 0, RC_FINITE_F16 = 1, RC_FINITE_BF16 = 2 };
int rc_check_finite_typed(const char *what, const char *name, int kind, const void *x, size_t n);
// 0 when x[0..n) is all finite (or the scan is switched off); otherwise -1 with
// "<what>: tensor <name> holds nan at element i (of n)".
int rc_check_finite(const char *what, const char *name, const float *x, size_t n);
// The scan is on by default; `--skip-weight-scan` (cli/main.c) switches it off for the process.
void rc_set_weight_scan(int on);
int rc_weight_scan_enabled(void);

#ifdef __cplusplus
}
#endif
