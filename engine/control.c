// RE-Control edit: n_steps of plain gradient ascent x += alpha * dV/dx per row, batched over the
// rows of a decode step (rows are independent: V is applied row-wise, so the gradient of
// sum_i V(x_i) w.r.t. x_i is grad V(x_i)).
#include "engine/control.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"

int rc_control_init(rc_control *c, const rc_value_mlp *value, float alpha, int n_steps, int cap_n) {
    memset(c, 0, sizeof *c);
    if (n_steps < 0) return rc_fail("control: number of steps must be >= 0 (got %d)", n_steps);
    if (cap_n <= 0) cap_n = 1;
    c->value = value;
    c->alpha = alpha;
    c->n_steps = n_steps;
    if (rc_value_ws_alloc(&c->ws, value, cap_n) != 0) return -1;
    c->grad = rc_malloc((size_t)cap_n * (size_t)value->dims[0] * sizeof(float), "control gradient");
    if (!c->grad) {
        rc_value_ws_free(&c->ws);
        return -1;
    }
    return 0;
}

int rc_control_check_params(double step_size, long steps) {
    if (!isfinite(step_size) || step_size < 0 || step_size > RC_CONTROL_MAX_STEP_SIZE)
        return rc_fail("--step-size expects a finite number in [0, %g], got %g", RC_CONTROL_MAX_STEP_SIZE,
                       step_size);
    if (steps < 0 || steps > RC_CONTROL_MAX_STEPS)
        return rc_fail("--steps expects an integer in [0, %d], got %ld", RC_CONTROL_MAX_STEPS, steps);
    return 0;
}

int rc_control_open(rc_control *c, const char *value_path, int hidden_size, float alpha, int n_steps,
                    int cap_n) {
    rc_value_mlp m;
    memset(c, 0, sizeof *c);
    if (rc_value_load(&m, value_path) != 0) return -1;
    if (m.dims[0] != hidden_size) {
        int d = m.dims[0];
        rc_value_free(&m);
        return rc_fail("value model %s takes %d-dim states but the model's hidden size is %d (was it "
                       "trained on another model's activations?)", value_path, d, hidden_size);
    }
    if (rc_control_init(c, &m, alpha, n_steps, cap_n) != 0) {
        rc_value_free(&m);
        return -1;
    }
    c->owned = m;
    c->value = &c->owned;
    return 0;
}

void rc_control_free(rc_control *c) {
    rc_value_ws_free(&c->ws);
    free(c->grad);
    if (c->owned.params) rc_value_free(&c->owned);
    memset(c, 0, sizeof *c);
}

int rc_control_apply(rc_control *c, int n, float *hidden) {
    if (c->n_steps == 0 || n <= 0) return 0;
    const int d = c->value->dims[0];
    double s0 = 0, sn = 0;
    float *v = rc_malloc((size_t)c->ws.cap_n * sizeof(float), "control values");
    if (!v) return -1;
    for (int r0 = 0; r0 < n; r0 += c->ws.cap_n) {
        int m = n - r0 < c->ws.cap_n ? n - r0 : c->ws.cap_n;
        float *x = hidden + (size_t)r0 * (size_t)d;
        for (int k = 0; k < c->n_steps; k++) {
            if (rc_value_input_grad(c->value, &c->ws, m, x, v, c->grad) != 0) {
                free(v);
                return rc_fail_ctx("control step %d", k);
            }
            if (k == 0)
                for (int i = 0; i < m; i++) s0 += v[i];
            const size_t cnt = (size_t)m * (size_t)d;
            const float a = c->alpha;
            for (size_t i = 0; i < cnt; i++) x[i] += a * c->grad[i];
        }
        if (rc_value_forward(c->value, &c->ws, m, x, v) != 0) {
            free(v);
            return -1;
        }
        for (int i = 0; i < m; i++) sn += v[i];
    }
    free(v);
    c->last_v0 = s0 / n;
    c->last_vn = sn / n;
    return 0;
}
