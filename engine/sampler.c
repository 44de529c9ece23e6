// Token sampling: argmax (lowest id wins ties), or temperature -> top-k -> top-p (the order HF
// transformers applies its logits warpers) then one draw from a seeded xorshift64* generator.
// Candidates are sorted by (probability desc, id asc), so a given seed always gives the same id.
#include "engine/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

void rc_rng_seed(rc_rng *r, uint64_t seed) {
    r->state = splitmix64(seed);
    if (r->state == 0) r->state = 0x9E3779B97F4A7C15ull; // xorshift must not start at 0
}

uint64_t rc_rng_next(rc_rng *r) {
    uint64_t x = r->state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

float rc_rng_uniform(rc_rng *r) { return (float)(rc_rng_next(r) >> 40) * (1.0f / 16777216.0f); }

int rc_argmax(const float *x, int n) {
    int best = 0;
    float bv = -INFINITY;
    int found = 0;
    for (int i = 0; i < n; i++) {
        if (isnan(x[i])) continue;
        if (!found || x[i] > bv) { // strict: the lowest id wins ties
            bv = x[i];
            best = i;
            found = 1;
        }
    }
    return best;
}

typedef struct {
    float p;
    int id;
} cand;

static int cand_cmp(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return x->id < y->id ? -1 : (x->id > y->id);
}

int rc_sample(const float *logits, int vocab, const rc_sample_params *p, rc_rng *r, float *scratch) {
    if (vocab <= 0) return 0;
    if (!(p->temperature > 0)) return rc_argmax(logits, vocab);
    // scratch holds 2*vocab floats = vocab (p, id) pairs.
    cand *c = (cand *)(void *)scratch;
    float m = -INFINITY;
    for (int i = 0; i < vocab; i++)
        if (logits[i] > m) m = logits[i];
    if (!isfinite(m)) return rc_argmax(logits, vocab); // all -inf / NaN: nothing to sample
    const float inv_t = 1.0f / p->temperature;
    int n = 0;
    for (int i = 0; i < vocab; i++) {
        if (!(logits[i] > -INFINITY)) continue; // masked (-inf) or NaN: never sampled
        float e = expf((logits[i] - m) * inv_t);
        if (e > 0) c[n++] = (cand){e, i};
    }
    if (n == 0) return rc_argmax(logits, vocab);
    int keep = n;
    if (p->top_k > 0 && p->top_k < n) keep = p->top_k;
    qsort(c, (size_t)n, sizeof *c, cand_cmp);
    if (p->top_p < 1.0f && p->top_p > 0.0f) {
        double tot = 0;
        for (int i = 0; i < keep; i++) tot += c[i].p;
        // HF TopP: keep a token while the mass of the tokens ranked above it is < top_p.
        double above = 0;
        int k = 0;
        while (k < keep && above < (double)p->top_p * tot) above += c[k++].p;
        keep = k > 0 ? k : 1;
    }
    double tot = 0;
    for (int i = 0; i < keep; i++) tot += c[i].p;
    double u = (double)rc_rng_uniform(r) * tot, acc = 0;
    for (int i = 0; i < keep; i++) {
        acc += c[i].p;
        if (u < acc) return c[i].id;
    }
    return c[keep - 1].id;
}
