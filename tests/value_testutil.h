// Helpers shared by the value-network tests: fixture tensors as fp32 and tolerance checks that
// print the max abs / rel error and the first bad element.
#pragma once
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/common.h"
#include "base/safetensors.h"

#define VFIX RC_FIXTURES "/value"

static inline float *vt_f32(const rc_safetensors *st, const char *name, size_t *n_out) {
    const rc_st_tensor *t = rc_st_find(st, name);
    cr_assert(t, "fixture %s: tensor %s missing", st->path, name);
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
    float *p = malloc(n * sizeof(float) + 4);
    cr_assert(p);
    cr_assert(rc_st_to_f32(t, p, n) == 0, "%s", rc_last_error());
    if (n_out) *n_out = n;
    return p;
}

static inline int64_t *vt_i64(const rc_safetensors *st, const char *name, size_t *n_out) {
    const rc_st_tensor *t = rc_st_find(st, name);
    cr_assert(t && t->dtype == RC_DT_I64, "fixture %s: I64 tensor %s missing", st->path, name);
    size_t n = t->nbytes / 8;
    int64_t *p = malloc(n * 8 + 8);
    cr_assert(p);
    memcpy(p, t->data, n * 8);
    if (n_out) *n_out = n;
    return p;
}

// Asserts |got - ref| <= atol + rtol * |ref| elementwise; returns the max abs error.
static inline double vt_close(const char *what, const float *got, const float *ref, size_t n,
                              double atol, double rtol) {
    double max_abs = 0, max_rel = 0;
    size_t bad = (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - (double)ref[i]);
        if (!(e <= atol + rtol * fabs((double)ref[i])) && bad == (size_t)-1) bad = i;
        if (e > max_abs || isnan(e)) max_abs = isnan(e) ? INFINITY : e;
        double rel = e / (fabs((double)ref[i]) + 1e-30);
        if (rel > max_rel && fabs(ref[i]) > 1e-6) max_rel = rel;
    }
    fprintf(stderr, "  %-34s n=%-6zu max abs err %.3g, max rel err %.3g\n", what, n, max_abs, max_rel);
    cr_assert(bad == (size_t)-1, "%s: element %zu: got %.9g, expected %.9g (atol %g, rtol %g)", what, bad,
              bad == (size_t)-1 ? 0.0 : got[bad], bad == (size_t)-1 ? 0.0 : ref[bad], atol, rtol);
    return max_abs;
}

static inline double vt_maxabs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(x[i]) > m) m = fabs(x[i]);
    return m;
}
