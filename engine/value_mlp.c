// ReLU MLP value network: batched forward, parameter and input backward, nn.Linear init,
// safetensors save/load. Matrices are row-major; fc(l+1).weight is (dims[l+1], dims[l]).
// Every output element is reduced in a fixed order, so results do not depend on the thread count.
#include "engine/value_mlp.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "base/finite.h"
#include "base/safetensors.h"

// ---- layout -----------------------------------------------------------------------------------

size_t rc_value_w_offset(const rc_value_mlp *m, int l) {
    size_t off = 0;
    for (int i = 0; i < l; i++) off += (size_t)m->dims[i + 1] * (size_t)m->dims[i] + (size_t)m->dims[i + 1];
    return off;
}

size_t rc_value_b_offset(const rc_value_mlp *m, int l) {
    return rc_value_w_offset(m, l) + (size_t)m->dims[l + 1] * (size_t)m->dims[l];
}

static int max_dim(const rc_value_mlp *m) {
    int mx = 1;
    for (int l = 0; l <= m->n_layers; l++)
        if (m->dims[l] > mx) mx = m->dims[l];
    return mx;
}

int rc_value_alloc(rc_value_mlp *m, int d, int n_hidden, const int *hidden) {
    memset(m, 0, sizeof *m);
    if (d <= 0) return rc_fail("value MLP: input dimension must be > 0 (got %d)", d);
    if (n_hidden < 0 || n_hidden + 1 > RC_VALUE_MAX_LAYERS)
        return rc_fail("value MLP: %d hidden layers requested, at most %d supported", n_hidden,
                       RC_VALUE_MAX_LAYERS - 1);
    m->n_layers = n_hidden + 1;
    m->dims[0] = d;
    for (int i = 0; i < n_hidden; i++) {
        if (hidden[i] <= 0) return rc_fail("value MLP: hidden width %d must be > 0", hidden[i]);
        m->dims[i + 1] = hidden[i];
    }
    m->dims[m->n_layers] = 1;
    m->n_params = rc_value_w_offset(m, m->n_layers);
    m->params = rc_calloc(m->n_params, sizeof(float), "value MLP parameters");
    if (!m->params) return -1;
    for (int l = 0; l < m->n_layers; l++) {
        m->w[l] = m->params + rc_value_w_offset(m, l);
        m->b[l] = m->params + rc_value_b_offset(m, l);
    }
    return 0;
}

void rc_value_free(rc_value_mlp *m) {
    free(m->params);
    memset(m, 0, sizeof *m);
}

int rc_value_parse_hidden(const char *spec, int *hidden) {
    if (!strcmp(spec, "paper3")) {
        hidden[0] = hidden[1] = 4096;
        return 2;
    }
    if (!strcmp(spec, "paper2")) {
        hidden[0] = 4096;
        return 1;
    }
    int n = 0;
    const char *p = spec;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v <= 0 || v > (1 << 20))
            return rc_fail("bad hidden widths '%s': expected paper2, paper3 or a comma list like 4096,4096",
                           spec);
        if (n >= RC_VALUE_MAX_LAYERS - 1)
            return rc_fail("bad hidden widths '%s': at most %d hidden layers", spec, RC_VALUE_MAX_LAYERS - 1);
        hidden[n++] = (int)v;
        p = end;
        if (*p == ',') p++;
        else if (*p) return rc_fail("bad hidden widths '%s': unexpected '%c'", spec, *p);
    }
    return n;
}

// ---- init -------------------------------------------------------------------------------------

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro(uint64_t s[4]) {
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

void rc_value_init(rc_value_mlp *m, uint64_t seed) {
    uint64_t sm = seed, s[4];
    for (int i = 0; i < 4; i++) s[i] = splitmix64(&sm);
    for (int l = 0; l < m->n_layers; l++) {
        double bound = 1.0 / sqrt((double)m->dims[l]);
        size_t nw = (size_t)m->dims[l + 1] * (size_t)m->dims[l];
        for (size_t i = 0; i < nw; i++) {
            double u = (double)(xoshiro(s) >> 11) * (1.0 / 9007199254740992.0); // [0, 1)
            m->w[l][i] = (float)((2.0 * u - 1.0) * bound);
        }
        for (int i = 0; i < m->dims[l + 1]; i++) {
            double u = (double)(xoshiro(s) >> 11) * (1.0 / 9007199254740992.0);
            m->b[l][i] = (float)((2.0 * u - 1.0) * bound);
        }
    }
}

// ---- workspace --------------------------------------------------------------------------------

int rc_value_ws_alloc(rc_value_ws *ws, const rc_value_mlp *m, int cap_n) {
    memset(ws, 0, sizeof *ws);
    if (cap_n <= 0) return rc_fail("value MLP workspace: row capacity must be > 0 (got %d)", cap_n);
    ws->cap_n = cap_n;
    size_t md = (size_t)max_dim(m);
    for (int l = 1; l <= m->n_layers; l++) {
        ws->act[l] = rc_malloc((size_t)cap_n * (size_t)m->dims[l] * sizeof(float), "value MLP activations");
        if (!ws->act[l]) goto fail;
    }
    for (int i = 0; i < 2; i++) {
        ws->gbuf[i] = rc_malloc((size_t)cap_n * md * sizeof(float), "value MLP gradients");
        if (!ws->gbuf[i]) goto fail;
    }
    if (m->dtype == RC_VALUE_BF16) {
        ws->xr = rc_malloc((size_t)cap_n * (size_t)m->dims[0] * sizeof(float), "value MLP bf16 input");
        ws->pr = rc_malloc(m->n_params * sizeof(float), "value MLP bf16 parameters");
        if (!ws->xr || !ws->pr) goto fail;
    }
    return 0;
fail:
    rc_value_ws_free(ws);
    return -1;
}

void rc_value_ws_free(rc_value_ws *ws) {
    for (int l = 0; l <= RC_VALUE_MAX_LAYERS; l++) free(ws->act[l]);
    free(ws->gbuf[0]);
    free(ws->gbuf[1]);
    free(ws->xr);
    free(ws->pr);
    free(ws->tbuf[0]);
    free(ws->tbuf[1]);
    memset(ws, 0, sizeof *ws);
}

// ---- kernels ----------------------------------------------------------------------------------

static inline float bf16_round(float x) { return rc_bf16_to_f32(rc_f32_to_bf16(x)); }

static void round_bf16(float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) x[i] = bf16_round(x[i]);
}

enum { ST_STORE = 0, ST_ADD = 1, ST_ADD_BF16 = 2 };

// c (M, N) {=, +=, += bf16(.)} a (M, K) . b (N, K)^T: dot products of rows, 4 rows of a at a time
// so every row of b is read once per block. Each element is one dot in a fixed order.
static void gemm_nt(int M, int N, int K, const float *a, const float *b, float *c, int store) {
    int mb = (M + 3) / 4;
#pragma omp parallel for collapse(2) schedule(static) if ((long)M * N * K > 200000)
    for (int ib = 0; ib < mb; ib++) {
        for (int o = 0; o < N; o++) {
            int i0 = ib * 4, cnt = M - i0 < 4 ? M - i0 : 4;
            const float *br = b + (size_t)o * K;
            const float *a0 = a + (size_t)i0 * K;
            const float *a1 = cnt > 1 ? a0 + K : a0, *a2 = cnt > 2 ? a0 + 2 * (size_t)K : a0,
                        *a3 = cnt > 3 ? a0 + 3 * (size_t)K : a0;
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
            for (int k = 0; k < K; k++) {
                float bk = br[k];
                s0 += a0[k] * bk;
                s1 += a1[k] * bk;
                s2 += a2[k] * bk;
                s3 += a3[k] * bk;
            }
            float s[4] = {s0, s1, s2, s3};
            for (int j = 0; j < cnt; j++) {
                float *cp = c + (size_t)(i0 + j) * N + o;
                if (store == ST_STORE) *cp = s[j];
                else if (store == ST_ADD) *cp += s[j];
                else *cp += bf16_round(s[j]);
            }
        }
    }
}

// y (n, out) = x (n, in) . w (out, in)^T + b (out); optional ReLU; optional bf16 rounding.
static void linear_fwd(int n, int in, int out, const float *x, const float *w, const float *b,
                       float *y, int relu, int bf16) {
    gemm_nt(n, out, in, x, w, y, ST_STORE);
    size_t cnt = (size_t)n * out;
#pragma omp parallel for schedule(static) if (cnt > 65536)
    for (size_t i = 0; i < cnt; i++) {
        float v = y[i] + b[i % (size_t)out];
        if (bf16) v = bf16_round(v);
        if (relu && v < 0) v = 0;
        y[i] = v;
    }
}

// t (cols, rows) = s (rows, cols)^T, in 32x32 tiles.
static void transpose(int rows, int cols, const float *s, float *t) {
    int rb = (rows + 31) / 32, cb = (cols + 31) / 32;
#pragma omp parallel for collapse(2) schedule(static) if ((long)rows * cols > 65536)
    for (int bi = 0; bi < rb; bi++)
        for (int bj = 0; bj < cb; bj++) {
            int i1 = bi * 32 + 32 < rows ? bi * 32 + 32 : rows, j1 = bj * 32 + 32 < cols ? bj * 32 + 32 : cols;
            for (int i = bi * 32; i < i1; i++)
                for (int j = bj * 32; j < j1; j++) t[(size_t)j * rows + i] = s[(size_t)i * cols + j];
        }
}

// dx (n, in) = dy (n, out) . w (out, in); optional bf16 rounding of the result. Rows go in blocks
// of 4 and columns in chunks of 256 so each weight band is read once per row block.
static void linear_bwd_input(int n, int in, int out, const float *dy, const float *w, float *dx,
                             int bf16) {
    const int kc = 256;
    int nk = (in + kc - 1) / kc, nb = (n + 3) / 4;
#pragma omp parallel for collapse(2) schedule(static) if ((long)n * out * in > 200000)
    for (int ib = 0; ib < nb; ib++) {
        for (int c = 0; c < nk; c++) {
            int i0 = ib * 4, cnt = n - i0 < 4 ? n - i0 : 4;
            int k0 = c * kc, k1 = k0 + kc < in ? k0 + kc : in;
            float *x0 = dx + (size_t)i0 * in, *x1 = cnt > 1 ? x0 + in : NULL,
                  *x2 = cnt > 2 ? x0 + 2 * (size_t)in : NULL, *x3 = cnt > 3 ? x0 + 3 * (size_t)in : NULL;
            for (int j = 0; j < cnt; j++)
                for (int k = k0; k < k1; k++) x0[(size_t)j * in + k] = 0;
            const float *d0 = dy + (size_t)i0 * out;
            for (int o = 0; o < out; o++) {
                const float *wr = w + (size_t)o * in;
                float a0 = d0[o], a1 = cnt > 1 ? d0[out + o] : 0, a2 = cnt > 2 ? d0[2 * out + o] : 0,
                      a3 = cnt > 3 ? d0[3 * out + o] : 0;
                if (a0 == 0 && a1 == 0 && a2 == 0 && a3 == 0) continue; // ReLU zeros
                if (cnt == 4) {
#pragma omp simd
                    for (int k = k0; k < k1; k++) {
                        float wk = wr[k];
                        x0[k] += a0 * wk;
                        x1[k] += a1 * wk;
                        x2[k] += a2 * wk;
                        x3[k] += a3 * wk;
                    }
                } else {
                    float as[4] = {a0, a1, a2, a3};
                    for (int j = 0; j < cnt; j++) {
                        float *xr = x0 + (size_t)j * in, aj = as[j];
#pragma omp simd
                        for (int k = k0; k < k1; k++) xr[k] += aj * wr[k];
                    }
                }
            }
            if (bf16)
                for (int j = 0; j < cnt; j++)
                    for (int k = k0; k < k1; k++) x0[(size_t)j * in + k] = bf16_round(x0[(size_t)j * in + k]);
        }
    }
}

// gw (out, in) += dy^T (out, n) . x (n, in); gb (out) += sum_i dy (i, :), as dot products over
// the rows of the transposes dyT (out, n) and xT (in, n). In bf16 mode every fresh gradient
// element is rounded to bf16 before it is added.
static void linear_bwd_params(int n, int in, int out, const float *dy, const float *x, float *gw,
                              float *gb, int bf16, float *dyt, float *xt) {
    transpose(n, out, dy, dyt);
    transpose(n, in, x, xt);
    gemm_nt(out, in, n, dyt, xt, gw, bf16 ? ST_ADD_BF16 : ST_ADD);
    for (int o = 0; o < out; o++) {
        const float *r = dyt + (size_t)o * n;
        float sb = 0;
        for (int i = 0; i < n; i++) sb += r[i];
        gb[o] += bf16 ? bf16_round(sb) : sb;
    }
}

// ---- forward / backward -----------------------------------------------------------------------

int rc_value_forward(const rc_value_mlp *m, rc_value_ws *ws, int n, const float *x, float *v) {
    if (n < 0 || n > ws->cap_n)
        return rc_fail("value forward: %d rows exceed the workspace capacity %d", n, ws->cap_n);
    int bf16 = m->dtype == RC_VALUE_BF16;
    if (bf16 && (!ws->xr || !ws->pr))
        return rc_fail("value forward: bf16 model but the workspace was allocated for fp32");
    const float *in = x;
    const float *params = m->params;
    if (bf16) {
        memcpy(ws->xr, x, (size_t)n * (size_t)m->dims[0] * sizeof(float));
        round_bf16(ws->xr, (size_t)n * (size_t)m->dims[0]);
        memcpy(ws->pr, m->params, m->n_params * sizeof(float));
        round_bf16(ws->pr, m->n_params);
        in = ws->xr;
        params = ws->pr;
    }
    for (int l = 0; l < m->n_layers; l++) {
        const float *w = params + rc_value_w_offset(m, l), *b = params + rc_value_b_offset(m, l);
        linear_fwd(n, m->dims[l], m->dims[l + 1], in, w, b, ws->act[l + 1], l + 1 < m->n_layers, bf16);
        in = ws->act[l + 1];
    }
    ws->x = x;
    ws->n = n;
    if (v) memcpy(v, ws->act[m->n_layers], (size_t)n * sizeof(float));
    return 0;
}

int rc_value_backward(const rc_value_mlp *m, rc_value_ws *ws, const float *dv, float *grad,
                      float *dx) {
    int n = ws->n, L = m->n_layers, bf16 = m->dtype == RC_VALUE_BF16;
    if (grad && !ws->tbuf[0]) { // transposes for the weight gradient, allocated on first use
        for (int i = 0; i < 2; i++) {
            ws->tbuf[i] = rc_malloc((size_t)ws->cap_n * (size_t)max_dim(m) * sizeof(float),
                                    "value MLP transposes");
            if (!ws->tbuf[i]) return -1;
        }
    }
    const float *params = bf16 ? ws->pr : m->params;
    float *dy = ws->gbuf[0];
    for (int i = 0; i < n; i++) dy[i] = bf16 ? bf16_round(dv[i]) : dv[i];
    for (int l = L - 1; l >= 0; l--) {
        int in = m->dims[l], out = m->dims[l + 1];
        const float *xin = l > 0 ? ws->act[l] : (bf16 ? ws->xr : ws->x);
        if (grad)
            linear_bwd_params(n, in, out, dy, xin, grad + rc_value_w_offset(m, l),
                              grad + rc_value_b_offset(m, l), bf16, ws->tbuf[0], ws->tbuf[1]);
        if (l == 0 && !dx) break;
        float *dxl = l > 0 ? (dy == ws->gbuf[0] ? ws->gbuf[1] : ws->gbuf[0]) : dx;
        linear_bwd_input(n, in, out, dy, params + rc_value_w_offset(m, l), dxl, bf16);
        if (l > 0) {
            const float *h = ws->act[l];
            size_t cnt = (size_t)n * (size_t)in;
            for (size_t i = 0; i < cnt; i++)
                if (h[i] <= 0) dxl[i] = 0; // ReLU'(0) = 0 as in torch
        }
        dy = dxl;
    }
    return 0;
}

int rc_value_input_grad(const rc_value_mlp *m, rc_value_ws *ws, int n, const float *x, float *v,
                        float *dx) {
    if (rc_value_forward(m, ws, n, x, v) != 0) return -1;
    float *ones = rc_malloc((size_t)(n ? n : 1) * sizeof(float), "value input grad");
    if (!ones) return -1;
    for (int i = 0; i < n; i++) ones[i] = 1.0f;
    int rc = rc_value_backward(m, ws, ones, NULL, dx);
    free(ones);
    return rc;
}

// ---- save / load ------------------------------------------------------------------------------

int rc_value_save(const rc_value_mlp *m, const char *path) {
    rc_st_entry e[2 * RC_VALUE_MAX_LAYERS];
    char names[2 * RC_VALUE_MAX_LAYERS][32];
    for (int l = 0; l < m->n_layers; l++) {
        snprintf(names[2 * l], sizeof names[0], "fc%d.weight", l + 1);
        snprintf(names[2 * l + 1], sizeof names[0], "fc%d.bias", l + 1);
        e[2 * l] = (rc_st_entry){.name = names[2 * l], .dtype = RC_DT_F32, .ndim = 2,
                                 .shape = {m->dims[l + 1], m->dims[l]}, .data = m->w[l]};
        e[2 * l + 1] = (rc_st_entry){.name = names[2 * l + 1], .dtype = RC_DT_F32, .ndim = 1,
                                     .shape = {m->dims[l + 1]}, .data = m->b[l]};
    }
    char layers[16];
    snprintf(layers, sizeof layers, "%d", m->n_layers);
    const char *meta[] = {"format", "pt", "recontrol", "value_mlp", "n_layers", layers, NULL};
    if (rc_st_write(path, e, 2 * m->n_layers, meta) != 0) return rc_fail_ctx("saving value model %s", path);
    return 0;
}

int rc_value_load(rc_value_mlp *m, const char *path) {
    memset(m, 0, sizeof *m);
    rc_safetensors st;
    if (rc_st_open(&st, path) != 0) return rc_fail_ctx("loading value model");
    int L = 0, d = 0, hidden[RC_VALUE_MAX_LAYERS];
    const rc_st_tensor *wt[RC_VALUE_MAX_LAYERS], *bt[RC_VALUE_MAX_LAYERS];
    for (;;) {
        char wn[32], bn[32];
        snprintf(wn, sizeof wn, "fc%d.weight", L + 1);
        snprintf(bn, sizeof bn, "fc%d.bias", L + 1);
        const rc_st_tensor *w = rc_st_find(&st, wn), *b = rc_st_find(&st, bn);
        if (!w) break;
        if (L >= RC_VALUE_MAX_LAYERS) {
            rc_st_close(&st);
            return rc_fail("%s: more than %d linear layers", path, RC_VALUE_MAX_LAYERS);
        }
        if (!b) {
            rc_st_close(&st);
            return rc_fail("%s: %s present but %s missing (value MLPs have biases)", path, wn, bn);
        }
        // each message names the width that was expected and where that expectation comes from
        int bad = 1;
        if (w->ndim != 2 || w->shape[0] <= 0 || w->shape[1] <= 0 || w->shape[0] > INT32_MAX ||
            w->shape[1] > INT32_MAX)
            rc_fail("%s: %s must be a 2-D [out, in] matrix; it has %d dimension(s)%s", path, wn,
                    w->ndim, w->ndim == 2 ? " with an empty or huge side" : "");
        else if (L > 0 && w->shape[1] != hidden[L - 1])
            rc_fail("%s: %s has shape [%lld, %lld]; expected [out, %d]: its input is the %d outputs of "
                    "fc%d", path, wn, (long long)w->shape[0], (long long)w->shape[1], hidden[L - 1],
                    hidden[L - 1], L);
        else if (b->ndim != 1 || b->shape[0] != w->shape[0])
            rc_fail("%s: %s must have shape [%lld] (the outputs of %s); it has %d dimension(s), first "
                    "%lld", path, bn, (long long)w->shape[0], wn, b->ndim,
                    b->ndim > 0 ? (long long)b->shape[0] : 0LL);
        else
            bad = 0;
        if (bad) {
            rc_st_close(&st); // after formatting: the tensors live in the mapping
            return -1;
        }
        if (L == 0) d = (int)w->shape[1];
        hidden[L] = (int)w->shape[0];
        wt[L] = w;
        bt[L] = b;
        L++;
    }
    if (L == 0) {
        rc_st_close(&st);
        return rc_fail("%s: no fc1.weight tensor: not a value model (expected fc1.weight, fc1.bias, ...)",
                       path);
    }
    if (hidden[L - 1] != 1) {
        rc_st_close(&st);
        return rc_fail("%s: last layer fc%d has %d outputs; a value model has 1", path, L, hidden[L - 1]);
    }
    if (rc_value_alloc(m, d, L - 1, hidden) != 0) {
        rc_st_close(&st);
        return -1;
    }
    for (int l = 0; l < L; l++) {
        if (rc_st_to_f32(wt[l], m->w[l], (size_t)m->dims[l + 1] * (size_t)m->dims[l]) != 0 ||
            rc_st_to_f32(bt[l], m->b[l], (size_t)m->dims[l + 1]) != 0) {
            rc_st_close(&st);
            rc_value_free(m);
            return rc_fail_ctx("%s: fc%d", path, l + 1);
        }
        char wn[32], bn[32];
        snprintf(wn, sizeof wn, "fc%d.weight", l + 1);
        snprintf(bn, sizeof bn, "fc%d.bias", l + 1);
        if (rc_check_finite(path, wn, m->w[l], (size_t)m->dims[l + 1] * (size_t)m->dims[l]) ||
            rc_check_finite(path, bn, m->b[l], (size_t)m->dims[l + 1])) {
            rc_st_close(&st);
            rc_value_free(m);
            return -1;
        }
    }
    rc_st_close(&st);
    return 0;
}
