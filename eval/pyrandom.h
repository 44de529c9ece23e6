// Python's `random` module, bit for bit where the judge protocol needs it: random.seed(int)
// (MT19937 seeded by init_by_array over the integer's 32-bit words), getrandbits, randrange /
// randint through _randbelow (rejection sampling on bit_length bits), and random.sample's two
// algorithms (pool swap for small populations, rejection set otherwise), so that `--seed S`
// picks the same pairs and A/B sides as the reference's gpt4_eval.py after random.seed(S).
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint32_t mt[624];
    int mti;
} rc_pyrandom;

void rc_pyrandom_seed(rc_pyrandom *r, uint64_t seed); // random.seed(seed), seed >= 0
uint32_t rc_pyrandom_getrandbits(rc_pyrandom *r, int k); // 0 <= k <= 32
uint64_t rc_pyrandom_randbelow(rc_pyrandom *r, uint64_t n); // n >= 1
// random.sample(range(n), k) into out[k]. 0 / -1 (k > n, out of memory).
int rc_pyrandom_sample(rc_pyrandom *r, int64_t n, int64_t k, int64_t *out);

#ifdef __cplusplus
}
#endif
