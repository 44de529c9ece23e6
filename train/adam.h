// Adam exactly as torch.optim.Adam's single-tensor path (no weight decay, no amsgrad): fp32
// moments, bias corrections computed in double like Python floats.
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    double lr, beta1, beta2, eps;
    long step;  // number of steps taken
    size_t n;   // parameters
    float *m;   // (n) first moment (exp_avg)
    float *v;   // (n) second moment (exp_avg_sq)
} rc_adam;

// lr and defaults betas (0.9, 0.999), eps 1e-8; moments zeroed.
int rc_adam_init(rc_adam *a, size_t n, double lr);
void rc_adam_free(rc_adam *a);
// One update of p (n) with gradient g (n).
void rc_adam_step(rc_adam *a, float *p, const float *g);

#ifdef __cplusplus
}
#endif
