// CPU kernels against naive double-precision references on random inputs of several shapes
// (odd sizes that hit every tile remainder, GQA ratios, long and short attention spans).
// Tolerance: |got - ref| <= 1e-5 * (1 + |ref|) scaled by sqrt(reduction length) for sums:
// fp32 accumulation of k terms of size ~1 has an error of about k^0.5 * 6e-8.
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "kernels/cpu/add.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/swiglu.h"

static uint64_t g_state = 88172645463325252ull;
static float frand(void) { // uniform in [-1, 1)
    g_state ^= g_state << 13;
    g_state ^= g_state >> 7;
    g_state ^= g_state << 17;
    return (float)((g_state >> 40) * (2.0 / 16777216.0) - 1.0);
}
static float *rand_buf(size_t n) {
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = frand();
    return p;
}
static float *poison_buf(size_t n) { // outputs start as NaN so that unwritten entries fail
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = NAN;
    return p;
}

// Fails with the first bad element and the max error.
static void check_close(const char *what, const float *got, const double *ref, size_t n, double tol) {
    double max_err = 0;
    size_t bad = (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - ref[i]);
        if (!(err <= tol * (1 + fabs(ref[i])))) {
            if (bad == (size_t)-1) bad = i;
        }
        if (err > max_err || isnan(err)) max_err = isnan(err) ? INFINITY : err;
    }
    cr_assert(bad == (size_t)-1, "%s: element %zu got %.9g want %.9g (max abs err %.3g, tol %.3g)",
              what, bad, bad == (size_t)-1 ? 0.0 : got[bad], bad == (size_t)-1 ? 0.0 : ref[bad],
              max_err, tol);
}

Test(kernels_cpu, matmul_shapes) {
    const int shapes[][3] = {{1, 64, 64},   {1, 576, 1536}, {3, 65, 7},    {4, 128, 96},
                             {5, 33, 130},  {17, 256, 257}, {64, 100, 12}, {130, 64, 33},
                             {1, 4096, 1}, {9, 1, 5}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int n = shapes[s][0], in = shapes[s][1], out = shapes[s][2];
        float *x = rand_buf((size_t)n * in), *W = rand_buf((size_t)out * in);
        float *y = poison_buf((size_t)n * out);
        double *ref = malloc(sizeof(double) * (size_t)n * out);
        for (int i = 0; i < n; i++)
            for (int o = 0; o < out; o++) {
                double acc = 0;
                for (int k = 0; k < in; k++) acc += (double)x[(size_t)i * in + k] * W[(size_t)o * in + k];
                ref[(size_t)i * out + o] = acc;
            }
        rc_cpu_matmul(y, x, W, n, in, out);
        char what[64];
        snprintf(what, sizeof what, "matmul n=%d in=%d out=%d", n, in, out);
        check_close(what, y, ref, (size_t)n * out, 2e-6 * sqrt(in));
        free(x), free(W), free(y), free(ref);
    }
}

Test(kernels_cpu, rmsnorm) {
    const int shapes[][2] = {{1, 64}, {3, 576}, {7, 4096}, {2, 5}};
    for (size_t s = 0; s < 4; s++) {
        int n = shapes[s][0], d = shapes[s][1];
        float *x = rand_buf((size_t)n * d), *w = rand_buf(d), *y = poison_buf((size_t)n * d);
        for (int i = 0; i < n * d; i++) x[i] *= 3.0f;
        double *ref = malloc(sizeof(double) * (size_t)n * d);
        for (int i = 0; i < n; i++) {
            double ss = 0;
            for (int j = 0; j < d; j++) ss += (double)x[i * d + j] * x[i * d + j];
            double r = 1.0 / sqrt(ss / d + 1e-5);
            for (int j = 0; j < d; j++) ref[i * d + j] = x[i * d + j] * r * w[j];
        }
        rc_cpu_rmsnorm(y, x, w, n, d, 1e-5f);
        check_close("rmsnorm", y, ref, (size_t)n * d, 1e-6);
        rc_cpu_rmsnorm(x, x, w, n, d, 1e-5f); // in place
        check_close("rmsnorm in place", x, ref, (size_t)n * d, 1e-6);
        free(x), free(w), free(y), free(ref);
    }
}

Test(kernels_cpu, rope_rotate_half) {
    const int hds[] = {16, 32, 64, 128};
    for (int s = 0; s < 4; s++) {
        int hd = hds[s], nh = 3, n = 5, max_len = 300, h = hd / 2;
        float inv_freq[64];
        for (int i = 0; i < h; i++) inv_freq[i] = (float)(1.0 / pow(10000.0, 2.0 * i / hd));
        float *ct = malloc(sizeof(float) * max_len * h), *st = malloc(sizeof(float) * max_len * h);
        rc_cpu_rope_tables(ct, st, inv_freq, hd, max_len);
        int pos[5] = {0, 1, 17, 250, 299};
        float *x = rand_buf((size_t)n * nh * hd);
        double *ref = malloc(sizeof(double) * n * nh * hd);
        for (int t = 0; t < n; t++)
            for (int k = 0; k < nh; k++)
                for (int i = 0; i < hd; i++) {
                    // HF: q * cos + rotate_half(q) * sin, rotate_half(q) = cat(-q2, q1), and
                    // cos/sin of cat(freqs, freqs).
                    const float *v = x + (size_t)(t * nh + k) * hd;
                    double a = (double)(float)((float)pos[t] * inv_freq[i % h]);
                    double rot = i < h ? -v[i + h] : v[i - h];
                    ref[(t * nh + k) * hd + i] = v[i] * cos(a) + rot * sin(a);
                }
        rc_cpu_rope(x, n, nh, hd, pos, ct, st);
        check_close("rope", x, ref, (size_t)n * nh * hd, 1e-6);
        free(ct), free(st), free(x), free(ref);
    }
}

Test(kernels_cpu, swiglu_embedding_add) {
    size_t n = 1000;
    float *g = rand_buf(n), *u = rand_buf(n), *o = poison_buf(n);
    double *ref = malloc(sizeof(double) * n);
    for (size_t i = 0; i < n; i++) {
        g[i] *= 8;
        ref[i] = g[i] / (1 + exp(-(double)g[i])) * u[i];
    }
    // the ends of the exponential's range and the IEEE specials (vector and scalar tails)
    const float ends[] = {88.0f, -88.0f, 89.0f,  -89.0f, 103.0f, -104.0f, 1e30f,  -1e30f,
                          0.0f,  -0.0f,  1e-30f, -87.5f, 87.5f,  20.0f,   -20.0f, 1e-8f};
    for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
        g[100 + i] = ends[i];
        u[100 + i] = 0.5f;
        ref[100 + i] = (double)ends[i] / (1 + exp(-(double)ends[i])) * 0.5;
    }
    rc_cpu_swiglu(o, g, u, n);
    check_close("swiglu", o, ref, n, 1e-6);
    float gs[9] = {INFINITY, -INFINITY, NAN, 1, 1, 1, 1, 1, 1}, us[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1},
          os[9];
    for (int rep = 0; rep < 2; rep++) { // lanes of a vector, then the scalar tail
        rc_cpu_swiglu(os, gs, us, rep ? 3 : 9);
        cr_assert(os[0] == INFINITY && isnan(os[1]) && isnan(os[2]),
                  "swiglu specials (n %d): %g %g %g", rep ? 3 : 9, os[0], os[1], os[2]);
    }
    // embedding
    int V = 11, d = 7, ids[4] = {10, 0, 3, 10};
    float *tab = rand_buf((size_t)V * d), *e = poison_buf(4 * (size_t)d);
    rc_cpu_embedding(e, tab, ids, 4, d);
    for (int i = 0; i < 4; i++)
        cr_assert(!memcmp(e + i * d, tab + ids[i] * d, sizeof(float) * d), "embedding row %d", i);
    // add
    float *a = rand_buf(n), *b = rand_buf(n);
    for (size_t i = 0; i < n; i++) ref[i] = (double)a[i] + b[i];
    rc_cpu_add(a, b, n);
    check_close("add", a, ref, n, 1e-7);
    free(g), free(u), free(o), free(ref), free(tab), free(e), free(a), free(b);
}

// Naive attention: scores in double, max-subtracted softmax, for one (token, head).
static void naive_attention(double *out, const float *q, const float *kc, const float *vc, int slot,
                            int pos, int h, int nh, int nkv, int hd, int max_len) {
    int kv_dim = nkv * hd, kvh = h / (nh / nkv);
    double *s = malloc(sizeof(double) * (pos + 1)), m = -INFINITY, l = 0;
    for (int j = 0; j <= pos; j++) {
        const float *k = kc + ((size_t)slot * max_len + j) * kv_dim + kvh * hd;
        double acc = 0;
        for (int d = 0; d < hd; d++) acc += (double)q[d] * k[d];
        s[j] = acc / sqrt((double)hd);
        if (s[j] > m) m = s[j];
    }
    for (int j = 0; j <= pos; j++) l += (s[j] = exp(s[j] - m));
    for (int d = 0; d < hd; d++) {
        double acc = 0;
        for (int j = 0; j <= pos; j++)
            acc += s[j] * vc[((size_t)slot * max_len + j) * kv_dim + kvh * hd + d];
        out[d] = acc / l;
    }
    free(s);
}

// Random queries for n tokens against the naive reference; tol: of the fp32 sums over the span.
static void check_attention_tol(const char *label, const float *kc, const float *vc, int n,
                                const int *slots, const int *pos, int nh, int nkv, int hd,
                                int max_len, double tol) {
    float *q = rand_buf((size_t)n * nh * hd), *out = poison_buf((size_t)n * nh * hd);
    double *ref = malloc(sizeof(double) * n * nh * hd);
    for (int t = 0; t < n; t++)
        for (int h = 0; h < nh; h++)
            naive_attention(ref + (size_t)(t * nh + h) * hd, q + (size_t)(t * nh + h) * hd, kc, vc,
                            slots[t], pos[t], h, nh, nkv, hd, max_len);
    rc_cpu_attention(out, q, kc, vc, slots, pos, n, nh, nkv, hd, max_len, 1.0f / sqrtf((float)hd));
    char what[96];
    snprintf(what, sizeof what, "attention %s nh=%d nkv=%d hd=%d", label, nh, nkv, hd);
    check_close(what, out, ref, (size_t)n * nh * hd, tol);
    free(q), free(out), free(ref);
}
static void check_attention(const char *label, const float *kc, const float *vc, int n,
                            const int *slots, const int *pos, int nh, int nkv, int hd,
                            int max_len) {
    check_attention_tol(label, kc, vc, n, slots, pos, nh, nkv, hd, max_len, 2e-6); // <= 200 keys
}

Test(kernels_cpu, attention_gqa_ragged) {
    // (n_heads, n_kv_heads, head_dim): MHA, GQA 2:1, 3:1 (SmolLM2), MQA.
    const int cfgs[][3] = {{4, 4, 16}, {4, 2, 32}, {9, 3, 64}, {8, 1, 128}};
    for (int c = 0; c < 4; c++) {
        int nh = cfgs[c][0], nkv = cfgs[c][1], hd = cfgs[c][2];
        int n_slots = 3, max_len = 200, kv_dim = nkv * hd;
        size_t kvn = (size_t)n_slots * max_len * kv_dim;
        float *kc = rand_buf(kvn), *vc = rand_buf(kvn);
        for (size_t i = 0; i < kvn; i++) kc[i] *= 4; // sharper softmax
        // Ragged batch: decode tokens of different slots at different depths, plus a prompt.
        int n = 7;
        int slots[7] = {0, 2, 1, 1, 1, 1, 0};
        int pos[7] = {0, 199, 0, 1, 2, 130, 65};
        check_attention("ragged", kc, vc, n, slots, pos, nh, nkv, hd, max_len);
        free(kc), free(vc);
    }
}

Test(kernels_cpu, attention_prefill_runs) {
    // A 150-token prompt (runs of consecutive positions: the blocked path's units and key
    // blocks, the causal edge inside a block), a second prompt in another slot, a decode token.
    const int cfgs[][3] = {{9, 3, 64}, {4, 2, 24}, {2, 1, 36}};
    for (int c = 0; c < 3; c++) {
        int nh = cfgs[c][0], nkv = cfgs[c][1], hd = cfgs[c][2];
        int n_slots = 3, max_len = 160, kv_dim = nkv * hd, n = 150 + 13 + 1;
        size_t kvn = (size_t)n_slots * max_len * kv_dim;
        float *kc = rand_buf(kvn), *vc = rand_buf(kvn);
        for (size_t i = 0; i < kvn; i++) kc[i] *= 3;
        int *slots = malloc(sizeof(int) * n), *pos = malloc(sizeof(int) * n);
        for (int t = 0; t < 150; t++) slots[t] = 0, pos[t] = t;
        for (int t = 0; t < 13; t++) slots[150 + t] = 2, pos[150 + t] = 20 + t;
        slots[163] = 1, pos[163] = 97;
        check_attention("prefill", kc, vc, n, slots, pos, nh, nkv, hd, max_len);
        free(kc), free(vc), free(slots), free(pos);
    }
}

// Decode with few units (one token x 3 KV heads over 2+ threads): the keys are split into
// shares, each a unit, merged afterwards (kernels/cpu/attention.c). Long spans so that the split
// happens, thread counts that give 2..8 shares, a run of 3 tokens whose early queries see no key
// of the last share, and scores large enough that a naive merge would overflow.
Test(kernels_cpu, attention_decode_key_shares) {
    const int nh = 9, nkv = 3, hd = 64, max_len = 520, kv_dim = nkv * hd;
    float *kc = rand_buf((size_t)2 * max_len * kv_dim),
          *vc = rand_buf((size_t)2 * max_len * kv_dim);
    for (int scale = 0; scale < 2; scale++) { // keys x3, then x120: sharp softmax, huge scores
        for (size_t i = 0; i < (size_t)2 * max_len * kv_dim; i++)
            kc[i] *= scale ? 40.f : 3.f;
        const int threads[] = {1, 2, 3, 8};
        for (int k = 0; k < 4; k++) {
            omp_set_num_threads(threads[k]);
            int s1[1] = {1}, p1[1] = {517};
            // ~500 keys: fp32 sums of twice as many terms as the 2e-6 of the tests above; scores
            // in the hundreds: exp's argument carries their fp32 rounding (as the huge test below)
            const double tol = scale ? 1e-4 : 5e-6;
            check_attention_tol("decode shares", kc, vc, 1, s1, p1, nh, nkv, hd, max_len, tol);
            int s3[3] = {0, 0, 0}, p3[3] = {300, 301, 302}; // one unit of 3 tokens
            check_attention_tol("3-token run shares", kc, vc, 3, s3, p3, nh, nkv, hd, max_len, tol);
            int s2[2] = {0, 1}, p2[2] = {129, 260};
            check_attention_tol("two decodes", kc, vc, 2, s2, p2, nh, nkv, hd, max_len, tol);
        }
        omp_set_num_threads(2);
    }
    free(kc), free(vc);
}
Test(kernels_cpu, attention_stable_with_huge_scores) {
    // Scores around 1e4 would overflow a naive exp; the online softmax must stay finite.
    int nh = 2, nkv = 1, hd = 32, max_len = 100, pos = 99, slot = 0;
    float *kc = rand_buf((size_t)max_len * hd), *vc = rand_buf((size_t)max_len * hd);
    float *q = rand_buf((size_t)nh * hd), *out = poison_buf((size_t)nh * hd);
    for (int i = 0; i < max_len * hd; i++) kc[i] *= 300;
    for (int i = 0; i < nh * hd; i++) q[i] *= 300;
    double ref[64];
    for (int h = 0; h < nh; h++)
        naive_attention(ref + h * hd, q + h * hd, kc, vc, slot, pos, h, nh, nkv, hd, max_len);
    rc_cpu_attention(out, q, kc, vc, &slot, &pos, 1, nh, nkv, hd, max_len, 1.0f / sqrtf((float)hd));
    check_close("attention huge scores", out, ref, (size_t)nh * hd, 1e-3);
    free(kc), free(vc), free(q), free(out);
}

Test(kernels_cpu, matmul_multi_equals_separate) {
    // q/k/v-like and gate/up-like groups, with row counts that are not multiples of 4
    const int shapes[][5] = {{1, 64, 64, 32, 32}, {7, 65, 130, 6, 5}, {70, 96, 13, 64, 3}};
    for (int s = 0; s < 3; s++) {
        int n = shapes[s][0], in = shapes[s][1];
        const int out[3] = {shapes[s][2], shapes[s][3], shapes[s][4]};
        float *x = rand_buf((size_t)n * in), *W[3], *y[3], *ref[3];
        for (int j = 0; j < 3; j++) {
            W[j] = rand_buf((size_t)out[j] * in);
            y[j] = poison_buf((size_t)n * out[j]);
            ref[j] = poison_buf((size_t)n * out[j]);
            rc_cpu_matmul(ref[j], x, W[j], n, in, out[j]);
        }
        rc_cpu_matmul_multi(3, y, (const float *const *)W, out, x, n, in);
        for (int j = 0; j < 3; j++) {
            cr_assert(!memcmp(y[j], ref[j], sizeof(float) * (size_t)n * out[j]),
                      "shape %d matrix %d differs from rc_cpu_matmul", s, j);
            free(W[j]), free(y[j]), free(ref[j]);
        }
        free(x);
    }
}
