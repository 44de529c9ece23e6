// torch.optim.Adam (foreach=False, fused=False) step, element by element:
//   m = lerp(m, g, 1-b1); v = v*b2 + (1-b2)*g*g; denom = sqrt(v)/sqrt(1-b2^t) + eps;
//   p = p - (lr/(1-b1^t)) * m/denom.
#include "train/adam.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"

int rc_adam_init(rc_adam *a, size_t n, double lr) {
    memset(a, 0, sizeof *a);
    a->lr = lr;
    a->beta1 = 0.9;
    a->beta2 = 0.999;
    a->eps = 1e-8;
    a->n = n;
    a->m = rc_calloc(n, sizeof(float), "Adam first moment");
    a->v = rc_calloc(n, sizeof(float), "Adam second moment");
    if (!a->m || !a->v) {
        rc_adam_free(a);
        return -1;
    }
    return 0;
}

void rc_adam_free(rc_adam *a) {
    free(a->m);
    free(a->v);
    memset(a, 0, sizeof *a);
}

void rc_adam_step(rc_adam *a, float *p, const float *g) {
    a->step++;
    double bc1 = 1.0 - pow(a->beta1, (double)a->step);
    double bc2 = 1.0 - pow(a->beta2, (double)a->step);
    const float w1 = (float)(1.0 - a->beta1), b2 = (float)a->beta2, w2 = (float)(1.0 - a->beta2);
    const float step_size = (float)(a->lr / bc1), bc2_sqrt = (float)sqrt(bc2), eps = (float)a->eps;
    float *m = a->m, *v = a->v;
    size_t n = a->n;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        m[i] = m[i] + w1 * (gi - m[i]); // torch lerp with weight < 0.5
        v[i] = v[i] * b2 + w2 * (gi * gi);
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        p[i] = p[i] - step_size * (m[i] / denom);
    }
}
