// The RE-Control step against PyTorch autograd SGD ascent on the input (x.requires_grad, n times
// x = x + alpha * grad V(x)), the n = 0 identity, chunking, the generate hook signature, and that
// control raises V on held-out states for a value model trained here.
#include <criterion/criterion.h>
#include <string.h>

#include "engine/generate.h"
#include "engine/control.h"
#include "train/train.h"
#include "value_testutil.h"

// Tolerance: each step adds alpha*grad in fp32 (torch rounds alpha*g then adds; we may fuse into
// one fma) and grad itself carries fp32 summation-order noise (~1e-7 relative); over n <= 50
// steps the drift stays ~n * 1e-7 * |x|. 1e-4 abs + 1e-4 rel is ~10x above that. A wrong sign,
// alpha or step count moves x by O(alpha*|grad|), checked below to be > 20x ATOL.
#define ATOL 1e-4
#define RTOL 1e-4

static void check_case(const char *name) {
    char p[512];
    rc_value_mlp m;
    snprintf(p, sizeof p, VFIX "/%s.safetensors", name);
    cr_assert(rc_value_load(&m, p) == 0, "%s", rc_last_error());
    snprintf(p, sizeof p, VFIX "/%s_case.safetensors", name);
    rc_safetensors st;
    cr_assert(rc_st_open(&st, p) == 0, "%s", rc_last_error());
    size_t nx, np;
    float *x = vt_f32(&st, "x", &nx), *params = vt_f32(&st, "ctl_params", &np);
    int d = m.dims[0], n = (int)(nx / d);
    float *h = malloc(nx * sizeof(float));
    for (int k = 0; k < (int)np / 2; k++) {
        float alpha = params[2 * k];
        int steps = (int)params[2 * k + 1];
        for (int cap = 0; cap < 2; cap++) { // whole batch, then chunks of 4 rows
            rc_control c;
            cr_assert(rc_control_init(&c, &m, alpha, steps, cap ? 4 : n) == 0);
            memcpy(h, x, nx * sizeof(float));
            cr_assert(rc_control_apply(&c, n, h) == 0, "%s", rc_last_error());
            char tn[32], what[96];
            snprintf(tn, sizeof tn, "ctl_x_%d", k);
            float *ref = vt_f32(&st, tn, NULL);
            snprintf(what, sizeof what, "%s alpha %g n %d%s", name, alpha, steps, cap ? " (chunks)" : "");
            vt_close(what, h, ref, nx, ATOL, RTOL);
            double moved = 0;
            for (size_t i = 0; i < nx; i++) moved = fmax(moved, fabs(ref[i] - x[i]));
            cr_assert(moved > 20 * ATOL, "reference barely moves (%g): test would be vacuous", moved);
            cr_assert(c.last_vn > c.last_v0, "mean V did not rise: %g -> %g", c.last_v0, c.last_vn);
            free(ref);
            rc_control_free(&c);
        }
    }
    free(h);
    free(x);
    free(params);
    rc_st_close(&st);
    rc_value_free(&m);
}

Test(control, matches_torch_sgd_mlp3) { check_case("mlp3"); }
Test(control, matches_torch_sgd_mlp2) { check_case("mlp2"); }

Test(control, zero_steps_is_identity_and_chunking_moves_all_rows) {
    rc_value_mlp m;
    cr_assert(rc_value_load(&m, VFIX "/mlp3.safetensors") == 0);
    int d = m.dims[0], n = 5;
    float *h = malloc((size_t)n * d * sizeof(float)), *h0 = malloc((size_t)n * d * sizeof(float));
    for (int i = 0; i < n * d; i++) h[i] = h0[i] = sinf(0.37f * i) * 3.0f;
    h[7] = -0.0f;
    h0[7] = -0.0f;
    rc_control c;
    cr_assert(rc_control_init(&c, &m, 0.5f, 0, n) == 0);
    cr_assert(rc_control_apply(&c, n, h) == 0);
    cr_assert_eq(memcmp(h, h0, (size_t)n * d * sizeof(float)), 0, "n_steps = 0 changed the states");
    rc_control_free(&c);
    // n_steps > 0 with scratch for 2 rows: all 5 rows move (in chunks)
    cr_assert(rc_control_init(&c, &m, 0.5f, 3, 2) == 0);
    cr_assert(rc_control_apply(&c, n, h) == 0);
    for (int r = 0; r < n; r++)
        cr_assert_neq(memcmp(h + (size_t)r * d, h0 + (size_t)r * d, (size_t)d * sizeof(float)), 0,
                      "row %d did not move", r);
    rc_control_free(&c);
    cr_assert_eq(rc_control_init(&c, &m, 0.5f, -1, 2), -1);
    free(h);
    free(h0);
    rc_value_free(&m);
}

// Train a value model on the fixture run (rewards depend on the states), then control must raise
// V on the states of held-out sequences: on average, and for most rows.
Test(control, raises_value_on_held_out_states) {
    rc_acts a;
    cr_assert(rc_acts_open(&a, VFIX "/run") == 0, "%s", rc_last_error());
    int64_t *tr, *va, ntr, nva;
    cr_assert(rc_acts_split(a.n_seq, 0.25, 1, &tr, &ntr, &va, &nva) == 0);
    cr_assert(nva >= 4);
    rc_value_mlp m;
    int hidden[2] = {32, 32};
    cr_assert(rc_value_alloc(&m, a.d, 2, hidden) == 0);
    rc_value_init(&m, 5);
    rc_trainer t;
    cr_assert(rc_trainer_init(&t, &m, RC_BELLMAN_PAPER, 3e-3, (int)ntr, (int64_t)ntr * a.max_len, 0) == 0);
    double l0 = 0, l = 0;
    for (int it = 0; it < 300; it++) {
        cr_assert(rc_trainer_batch(&t, &a, (int)ntr, tr, 1, &l) == 0, "%s", rc_last_error());
        if (it == 0) l0 = l;
    }
    fprintf(stderr, "  training loss %.4f -> %.4f\n", l0, l);
    cr_assert(l < 0.5 * l0, "value training did not converge (%g -> %g)", l0, l);
    int64_t rows = rc_acts_rows(&a, (int)nva, va);
    float *h = malloc((size_t)rows * a.d * sizeof(float)), *v0 = malloc(rows * sizeof(float)),
          *v1 = malloc(rows * sizeof(float));
    int64_t *off = malloc((nva + 1) * sizeof(int64_t));
    cr_assert(rc_acts_gather(&a, (int)nva, va, h, off, NULL) == 0);
    rc_value_ws ws;
    cr_assert(rc_value_ws_alloc(&ws, &m, (int)rows) == 0);
    cr_assert(rc_value_forward(&m, &ws, (int)rows, h, v0) == 0);
    rc_control c;
    cr_assert(rc_control_init(&c, &m, 0.05f, 10, 16) == 0);
    cr_assert(rc_control_apply(&c, (int)rows, h) == 0);
    cr_assert(rc_value_forward(&m, &ws, (int)rows, h, v1) == 0);
    double m0 = 0, m1 = 0;
    int up = 0;
    for (int64_t i = 0; i < rows; i++) {
        m0 += v0[i];
        m1 += v1[i];
        up += v1[i] > v0[i];
    }
    m0 /= rows;
    m1 /= rows;
    fprintf(stderr, "  held-out mean V %.4f -> %.4f, %d/%lld rows raised\n", m0, m1, up, (long long)rows);
    cr_assert(m1 > m0 + 0.05, "control did not raise mean V on held-out states (%g -> %g)", m0, m1);
    cr_assert(up >= 0.9 * rows, "only %d of %lld held-out rows gained value", up, (long long)rows);
    rc_control_free(&c);
    rc_value_ws_free(&ws);
    rc_trainer_free(&t);
    rc_value_free(&m);
    free(h);
    free(v0);
    free(v1);
    free(off);
    free(tr);
    free(va);
    rc_acts_close(&a);
}

Test(control, open_checks_width) {
    rc_control c;
    cr_assert(rc_control_open(&c, VFIX "/mlp3.safetensors", 24, 0.5f, 2, 8) == 0, "%s", rc_last_error());
    cr_assert_eq(c.value->dims[0], 24);
    float h[2 * 24];
    for (int i = 0; i < 48; i++) h[i] = 0.1f * (i % 7) - 0.3f;
    cr_assert(rc_control_apply(&c, 2, h) == 0);
    rc_control_free(&c);
    cr_assert_eq(rc_control_open(&c, VFIX "/mlp3.safetensors", 576, 0.5f, 2, 8), -1);
    cr_assert(strstr(rc_last_error(), "576") && strstr(rc_last_error(), "24"), "%s", rc_last_error());
    cr_assert_eq(rc_control_open(&c, VFIX "/missing.safetensors", 24, 0.5f, 2, 8), -1);
}
