// Value MLP and Bellman loss against PyTorch autograd (fixtures: tests/scripts/make_value_fixtures.py):
// forward, input gradient, parameter gradients of both loss semantics, autocast-bf16 mode,
// save/load round trip and bad-file errors.
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

#include "train/bellman.h"
#include "engine/value_mlp.h"
#include "value_testutil.h"

// fp32 tolerances: both sides compute in fp32 with fan-in <= 40 and different summation orders,
// so each value carries a few ulp (~1e-7 relative) times sqrt(fan-in) of rounding; 1e-5 abs +
// 1e-4 rel leaves a 100x margin while a wrong index, missed ReLU or factor-2 error is O(1).
#define ATOL 1e-5
#define RTOL 1e-4

typedef struct {
    rc_value_mlp m;
    rc_safetensors st;
    float *x, *r;
    int64_t *off;
    int n_rows, n_seq, d;
} vcase;

static void load_case(vcase *c, const char *name) {
    char p[512];
    snprintf(p, sizeof p, VFIX "/%s.safetensors", name);
    cr_assert(rc_value_load(&c->m, p) == 0, "%s", rc_last_error());
    snprintf(p, sizeof p, VFIX "/%s_case.safetensors", name);
    cr_assert(rc_st_open(&c->st, p) == 0, "%s", rc_last_error());
    size_t nx, no;
    c->x = vt_f32(&c->st, "x", &nx);
    c->off = vt_i64(&c->st, "offsets", &no);
    c->r = vt_f32(&c->st, "reward", NULL);
    c->n_seq = (int)no - 1;
    c->n_rows = (int)c->off[c->n_seq];
    c->d = c->m.dims[0];
    cr_assert_eq(nx, (size_t)c->n_rows * c->d);
}

static void free_case(vcase *c) {
    free(c->x);
    free(c->off);
    free(c->r);
    rc_st_close(&c->st);
    rc_value_free(&c->m);
}

static void check_forward_and_grads(const char *name, int expect_layers) {
    vcase c;
    load_case(&c, name);
    cr_assert_eq(c.m.n_layers, expect_layers);
    rc_value_ws ws;
    cr_assert(rc_value_ws_alloc(&ws, &c.m, c.n_rows) == 0);
    float *v = malloc(c.n_rows * sizeof(float)), *dv = malloc(c.n_rows * sizeof(float));
    float *dx = malloc((size_t)c.n_rows * c.d * sizeof(float));
    float *grad = malloc(c.m.n_params * sizeof(float));
    for (int i = 0; i < c.n_rows; i++) v[i] = NAN; // poison
    cr_assert(rc_value_forward(&c.m, &ws, c.n_rows, c.x, v) == 0);
    float *ref = vt_f32(&c.st, "v", NULL);
    vt_close("forward V", v, ref, c.n_rows, ATOL, RTOL);
    free(ref);

    for (size_t i = 0; i < (size_t)c.n_rows * c.d; i++) dx[i] = NAN;
    cr_assert(rc_value_input_grad(&c.m, &ws, c.n_rows, c.x, NULL, dx) == 0);
    ref = vt_f32(&c.st, "dx", NULL);
    vt_close("grad_x V", dx, ref, (size_t)c.n_rows * c.d, ATOL, RTOL);
    free(ref);

    const char *tags[2] = {"gp", "gr"}, *lnames[2] = {"loss_paper", "loss_ref"};
    rc_bellman_mode modes[2] = {RC_BELLMAN_PAPER, RC_BELLMAN_REFERENCE};
    for (int k = 0; k < 2; k++) {
        cr_assert(rc_value_forward(&c.m, &ws, c.n_rows, c.x, v) == 0);
        float loss = (float)rc_bellman_loss(modes[k], c.n_seq, c.off, v, c.r, dv);
        float *lref = vt_f32(&c.st, lnames[k], NULL);
        vt_close(lnames[k], &loss, lref, 1, ATOL, RTOL);
        free(lref);
        memset(grad, 0, c.m.n_params * sizeof(float));
        cr_assert(rc_value_backward(&c.m, &ws, dv, grad, NULL) == 0);
        for (int l = 0; l < c.m.n_layers; l++) {
            char tn[64], what[80];
            snprintf(tn, sizeof tn, "%s.fc%d.weight", tags[k], l + 1);
            snprintf(what, sizeof what, "%s %s", name, tn);
            size_t n;
            ref = vt_f32(&c.st, tn, &n);
            cr_assert(vt_maxabs(ref, n) > 1e-3, "%s: reference gradient is ~0, test would be vacuous", tn);
            vt_close(what, grad + rc_value_w_offset(&c.m, l), ref, n, ATOL, RTOL);
            free(ref);
            snprintf(tn, sizeof tn, "%s.fc%d.bias", tags[k], l + 1);
            snprintf(what, sizeof what, "%s %s", name, tn);
            ref = vt_f32(&c.st, tn, &n);
            vt_close(what, grad + rc_value_b_offset(&c.m, l), ref, n, ATOL, RTOL);
            free(ref);
        }
    }
    free(v);
    free(dv);
    free(dx);
    free(grad);
    rc_value_ws_free(&ws);
    free_case(&c);
}

Test(value, mlp3_forward_and_gradients) { check_forward_and_grads("mlp3", 3); }
Test(value, mlp2_forward_and_gradients) { check_forward_and_grads("mlp2", 2); }

// The two semantics must actually differ on this data (otherwise the option is untested).
Test(value, bellman_semantics_differ) {
    vcase c;
    load_case(&c, "mlp3");
    float *gp = vt_f32(&c.st, "gp.fc1.weight", NULL), *gr = vt_f32(&c.st, "gr.fc1.weight", NULL);
    double diff = 0;
    for (int i = 0; i < c.m.dims[1] * c.d; i++) diff = fmax(diff, fabs(gp[i] - gr[i]));
    cr_assert(diff > 1e-2, "paper and reference gradients coincide (%g)", diff);
    // Reward anchor: a single-step sequence has the same loss in both semantics.
    int64_t off[2] = {0, 1};
    float v1 = 0.25f, r1 = -1.0f, d1, d2;
    double l1 = rc_bellman_loss(RC_BELLMAN_PAPER, 1, off, &v1, &r1, &d1);
    double l2 = rc_bellman_loss(RC_BELLMAN_REFERENCE, 1, off, &v1, &r1, &d2);
    cr_assert_float_eq(l1, 1.5625, 1e-12);
    cr_assert_float_eq(l2, 1.5625, 1e-12);
    cr_assert_float_eq(d1, 2.5f, 1e-6);
    cr_assert_float_eq(d2, 2.5f, 1e-6);
    free(gp);
    free(gr);
    free_case(&c);
}

// bf16 mode vs torch.autocast(cpu, bfloat16). Both round the same operands to bf16, but the fp32
// accumulation orders differ, so an output can land on the other side of a bf16 rounding boundary
// (1 bf16 ulp = 2^-8 relative) and that difference propagates; we allow 2% of the tensor's
// largest magnitude (a few bf16 ulps) and check that bf16 really differs from fp32.
Test(value, bf16_matches_autocast) {
    const char *names[2] = {"mlp3", "mlp2"};
    for (int k = 0; k < 2; k++) {
        vcase c;
        load_case(&c, names[k]);
        c.m.dtype = RC_VALUE_BF16;
        rc_value_ws ws;
        cr_assert(rc_value_ws_alloc(&ws, &c.m, c.n_rows) == 0);
        float *v = malloc(c.n_rows * sizeof(float)), *dv = malloc(c.n_rows * sizeof(float));
        float *grad = calloc(c.m.n_params, sizeof(float));
        cr_assert(rc_value_forward(&c.m, &ws, c.n_rows, c.x, v) == 0);
        float *ref = vt_f32(&c.st, "v_bf16", NULL), *v32 = vt_f32(&c.st, "v", NULL);
        vt_close("bf16 forward V", v, ref, c.n_rows, 2e-2 * vt_maxabs(ref, c.n_rows), 0);
        double d32 = 0;
        for (int i = 0; i < c.n_rows; i++) d32 = fmax(d32, fabs(v[i] - v32[i]));
        cr_assert(d32 > 1e-4, "bf16 forward equals fp32 (%g): no rounding happened", d32);
        for (int i = 0; i < c.n_rows; i++)
            cr_assert_eq(v[i], rc_bf16_to_f32(rc_f32_to_bf16(v[i])), "V is not a bf16 value");
        free(ref);
        free(v32);
        float loss = (float)rc_bellman_loss(RC_BELLMAN_PAPER, c.n_seq, c.off, v, c.r, dv);
        ref = vt_f32(&c.st, "loss_bf16", NULL);
        vt_close("bf16 loss", &loss, ref, 1, 0, 2e-2);
        free(ref);
        cr_assert(rc_value_backward(&c.m, &ws, dv, grad, NULL) == 0);
        for (int l = 0; l < c.m.n_layers; l++) {
            char tn[64];
            size_t n;
            snprintf(tn, sizeof tn, "gb.fc%d.weight", l + 1);
            ref = vt_f32(&c.st, tn, &n);
            vt_close(tn, grad + rc_value_w_offset(&c.m, l), ref, n, 2e-2 * vt_maxabs(ref, n), 0);
            free(ref);
            snprintf(tn, sizeof tn, "gb.fc%d.bias", l + 1);
            ref = vt_f32(&c.st, tn, &n);
            vt_close(tn, grad + rc_value_b_offset(&c.m, l), ref, n, 2e-2 * vt_maxabs(ref, n), 0);
            free(ref);
        }
        free(v);
        free(dv);
        free(grad);
        rc_value_ws_free(&ws);
        free_case(&c);
    }
}

// Results must not depend on how rows are batched (rows are independent).
Test(value, batching_invariance) {
    vcase c;
    load_case(&c, "mlp3");
    rc_value_ws ws;
    cr_assert(rc_value_ws_alloc(&ws, &c.m, c.n_rows) == 0);
    float *v = malloc(c.n_rows * sizeof(float)), v1;
    cr_assert(rc_value_forward(&c.m, &ws, c.n_rows, c.x, v) == 0);
    for (int i = 0; i < c.n_rows; i++) {
        cr_assert(rc_value_forward(&c.m, &ws, 1, c.x + (size_t)i * c.d, &v1) == 0);
        cr_assert_float_eq(v1, v[i], 1e-6 + 1e-6 * fabs(v[i]), "row %d alone %g vs batched %g", i, v1, v[i]);
    }
    cr_assert(rc_value_forward(&c.m, &ws, c.n_rows + 1, c.x, v) == -1, "capacity overflow not reported");
    free(v);
    rc_value_ws_free(&ws);
    free_case(&c);
}

Test(value, save_load_roundtrip_and_init) {
    int hidden[2] = {12, 8};
    rc_value_mlp m, m2;
    cr_assert(rc_value_alloc(&m, 10, 2, hidden) == 0);
    rc_value_init(&m, 42);
    // nn.Linear bounds: |w| <= 1/sqrt(fan_in), and the draws fill the range.
    for (int l = 0; l < m.n_layers; l++) {
        double bound = 1.0 / sqrt(m.dims[l]), mx = 0;
        for (int i = 0; i < m.dims[l + 1] * m.dims[l]; i++) {
            cr_assert(fabs(m.w[l][i]) <= bound);
            mx = fmax(mx, fabs(m.w[l][i]));
        }
        cr_assert(mx > 0.5 * bound);
    }
    char path[] = "/tmp/rc_value_rtXXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    cr_assert(rc_value_save(&m, path) == 0, "%s", rc_last_error());
    cr_assert(rc_value_load(&m2, path) == 0, "%s", rc_last_error());
    cr_assert_eq(m2.n_layers, 3);
    cr_assert_eq(m2.dims[0], 10);
    cr_assert_eq(m2.dims[1], 12);
    cr_assert_eq(m2.dims[2], 8);
    cr_assert_eq(memcmp(m.params, m2.params, m.n_params * sizeof(float)), 0);
    rc_value_mlp m3;
    cr_assert(rc_value_alloc(&m3, 10, 2, hidden) == 0);
    rc_value_init(&m3, 42);
    cr_assert_eq(memcmp(m.params, m3.params, m.n_params * sizeof(float)), 0, "init not deterministic");
    rc_value_init(&m3, 43);
    cr_assert_neq(memcmp(m.params, m3.params, m.n_params * sizeof(float)), 0);
    unlink(path);
    rc_value_free(&m);
    rc_value_free(&m2);
    rc_value_free(&m3);
}

Test(value, parse_hidden) {
    int h[8];
    cr_assert_eq(rc_value_parse_hidden("paper3", h), 2);
    cr_assert_eq(h[0], 4096);
    cr_assert_eq(h[1], 4096);
    cr_assert_eq(rc_value_parse_hidden("paper2", h), 1);
    cr_assert_eq(rc_value_parse_hidden("256,128,64", h), 3);
    cr_assert_eq(h[2], 64);
    cr_assert_eq(rc_value_parse_hidden("", h), 0);
    cr_assert_eq(rc_value_parse_hidden("12,x", h), -1);
    cr_assert(strstr(rc_last_error(), "12,x"));
    cr_assert_eq(rc_value_parse_hidden("-3", h), -1);
}

Test(value, load_errors) {
    rc_value_mlp m;
    // A safetensors file that is not a value model: a clear message, no crash.
    cr_assert_eq(rc_value_load(&m, VFIX "/run/acts-00000.safetensors"), -1);
    cr_assert(strstr(rc_last_error(), "fc1.weight"), "%s", rc_last_error());
    cr_assert_eq(rc_value_load(&m, VFIX "/does-not-exist.safetensors"), -1);
    // Mismatched chain: fc2 expects a different input width.
    float w1[6] = {0}, b1[2] = {0}, w2[3] = {0}, b2[1] = {0};
    rc_st_entry e[4] = {
        {.name = "fc1.weight", .dtype = RC_DT_F32, .ndim = 2, .shape = {2, 3}, .data = w1},
        {.name = "fc1.bias", .dtype = RC_DT_F32, .ndim = 1, .shape = {2}, .data = b1},
        {.name = "fc2.weight", .dtype = RC_DT_F32, .ndim = 2, .shape = {1, 3}, .data = w2},
        {.name = "fc2.bias", .dtype = RC_DT_F32, .ndim = 1, .shape = {1}, .data = b2},
    };
    char path[] = "/tmp/rc_value_badXXXXXX";
    int fd = mkstemp(path);
    close(fd);
    cr_assert(rc_st_write(path, e, 4, NULL) == 0, "%s", rc_last_error());
    cr_assert_eq(rc_value_load(&m, path), -1);
    cr_assert(strstr(rc_last_error(), "fc2.weight"), "%s", rc_last_error());
    unlink(path);
}
