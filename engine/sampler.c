// Token sampling: argmax (lowest id wins ties), or temperature -> top-k -> top-p (the order HF
// transformers applies its logits warpers) then one draw from a seeded xorshift64* generator.
// The CPU twin of kernels/cuda/sample.cu: the same cuts (found by bisection on the bits of the
// k-th largest logit and of the smallest kept probability; tokens tied at a cut are all kept) and
// the same draw (one uniform, the kept tokens scanned in id order), so one uniform gives the same
// token on either device up to float rounding.
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

// The same keys as the device sampler: a float's bits made to order like the float.
static uint32_t order_key(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

int rc_sample_u(const float *logits, int vocab, const rc_sample_params *p, float u, float *scratch) {
    if (vocab <= 0) return 0;
    if (!(p->temperature > 0) || p->top_k == 1) return rc_argmax(logits, vocab);
    float m = -INFINITY;
    for (int i = 0; i < vocab; i++)
        if (logits[i] > m) m = logits[i];
    if (!isfinite(m)) return rc_argmax(logits, vocab); // all -inf / NaN: nothing to sample
    // top-k: keep every logit >= the k-th largest (ties at the cut are all kept)
    uint32_t kth = 0;
    if (p->top_k > 0 && p->top_k < vocab) {
        uint32_t *keys = (uint32_t *)(void *)scratch;
        for (int i = 0; i < vocab; i++) keys[i] = isnan(logits[i]) ? 0 : order_key(logits[i]);
        // k-th largest key by bisection on its bits, as the device does (32 counting passes)
        for (int b = 31; b >= 0; b--) {
            uint32_t cand = kth | (1u << b);
            int c = 0;
            for (int i = 0; i < vocab; i++) c += keys[i] >= cand;
            if (c >= p->top_k) kth = cand;
        }
    }
    const float inv_t = 1.0f / p->temperature;
    float *w = scratch; // unnormalized probabilities of the kept tokens, 0 for the others
    double tot = 0;
    for (int i = 0; i < vocab; i++) {
        float x = logits[i];
        w[i] = (x > -INFINITY && order_key(x) >= kth) ? expf((x - m) * inv_t) : 0.f;
        tot += w[i];
    }
    // top-p: the largest probability threshold whose kept mass still reaches top_p (HF's set:
    // the most likely tokens until their mass reaches top_p, ties at the cut all kept)
    uint32_t pth = 0;
    if (p->top_p < 1.0f && p->top_p > 0.0f) {
        double need = (double)p->top_p * tot;
        for (int b = 30; b >= 0; b--) {
            uint32_t cand = pth | (1u << b);
            double c = 0;
            for (int i = 0; i < vocab; i++)
                if (w[i] > 0 && f32_bits(w[i]) >= cand) c += w[i];
            if (c >= need) pth = cand;
        }
    }
    double kept = 0;
    int last = -1;
    for (int i = 0; i < vocab; i++)
        if (w[i] > 0 && f32_bits(w[i]) >= pth) kept += w[i], last = i;
    if (last < 0) return rc_argmax(logits, vocab);
    // one draw, scanning the kept tokens in id order
    double target = (double)u * kept, acc = 0;
    for (int i = 0; i < vocab; i++) {
        if (!(w[i] > 0 && f32_bits(w[i]) >= pth)) continue;
        acc += w[i];
        if (target < acc) return i;
    }
    return last;
}

int rc_sample(const float *logits, int vocab, const rc_sample_params *p, rc_rng *r, float *scratch) {
    if (!(p->temperature > 0) || p->top_k == 1) return rc_argmax(logits, vocab);
    return rc_sample_u(logits, vocab, p, rc_rng_uniform(r), scratch);
}
