// Token sampling from logits: greedy, temperature, top-k, top-p, with an explicit seeded RNG
// (xorshift64*), one RNG per sequence so results do not depend on how sequences are batched.
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// The largest --temperature a command accepts (beyond it sampling is uniform in all but name).
#define RC_MAX_TEMPERATURE 100.0

typedef struct {
    float temperature; // 0 = greedy (argmax, lowest id wins ties); at most RC_MAX_TEMPERATURE
    int top_k;         // 0 = off
    float top_p;       // 1 = off
    uint64_t seed;     //
} rc_sample_params;

typedef struct {
    uint64_t state;
} rc_rng;

void rc_rng_seed(rc_rng *r, uint64_t seed);
uint64_t rc_rng_next(rc_rng *r);
float rc_rng_uniform(rc_rng *r); // [0, 1)

int rc_argmax(const float *x, int n);
// Samples one id from logits (vocab) with the uniform draw u in [0, 1). scratch must hold vocab
// floats. logits are not modified. Greedy (temperature 0 or top_k 1) ignores u.
int rc_sample_u(const float *logits, int vocab, const rc_sample_params *p, float u, float *scratch);
// rc_sample_u with u drawn from r (only when the parameters sample: greedy draws nothing).
int rc_sample(const float *logits, int vocab, const rc_sample_params *p, rc_rng *r, float *scratch);

#ifdef __cplusplus
}
#endif
