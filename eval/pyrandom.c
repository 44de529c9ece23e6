// MT19937 and the parts of CPython's random.py the judge protocol uses (seed, getrandbits,
// _randbelow, sample), so that seeded choices equal Python's.
#include "eval/pyrandom.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"

static void init_genrand(rc_pyrandom *r, uint32_t s) {
    r->mt[0] = s;
    for (int i = 1; i < 624; i++)
        r->mt[i] = 1812433253u * (r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) + (uint32_t)i;
    r->mti = 624;
}

static void init_by_array(rc_pyrandom *r, const uint32_t *key, int n) {
    init_genrand(r, 19650218u);
    int i = 1, j = 0;
    for (int k = 624 > n ? 624 : n; k; k--) {
        r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1664525u)) + key[j] + (uint32_t)j;
        i++, j++;
        if (i >= 624) {
            r->mt[0] = r->mt[623];
            i = 1;
        }
        if (j >= n) j = 0;
    }
    for (int k = 623; k; k--) {
        r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1566083941u)) - (uint32_t)i;
        i++;
        if (i >= 624) {
            r->mt[0] = r->mt[623];
            i = 1;
        }
    }
    r->mt[0] = 0x80000000u;
}

void rc_pyrandom_seed(rc_pyrandom *r, uint64_t seed) {
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    init_by_array(r, key, key[1] ? 2 : 1);
}

static uint32_t genrand(rc_pyrandom *r) {
    if (r->mti >= 624) {
        for (int k = 0; k < 624; k++) {
            uint32_t y = (r->mt[k] & 0x80000000u) | (r->mt[(k + 1) % 624] & 0x7fffffffu);
            r->mt[k] = r->mt[(k + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
        }
        r->mti = 0;
    }
    uint32_t y = r->mt[r->mti++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

uint32_t rc_pyrandom_getrandbits(rc_pyrandom *r, int k) {
    if (k <= 0) return 0;
    return genrand(r) >> (32 - k);
}

static uint64_t getrandbits64(rc_pyrandom *r, int k) {
    if (k <= 32) return rc_pyrandom_getrandbits(r, k);
    uint64_t lo = genrand(r); // CPython fills 32-bit words from the least significant up
    uint64_t hi = genrand(r) >> (64 - k);
    return lo | (hi << 32);
}

uint64_t rc_pyrandom_randbelow(rc_pyrandom *r, uint64_t n) {
    int k = 0;
    while (k < 64 && (n >> k)) k++; // n.bit_length()
    uint64_t v = getrandbits64(r, k);
    while (v >= n) v = getrandbits64(r, k);
    return v;
}

int rc_pyrandom_sample(rc_pyrandom *r, int64_t n, int64_t k, int64_t *out) {
    if (k < 0 || k > n) return rc_fail("sample of %lld from %lld items", (long long)k, (long long)n);
    double setsize = 21;
    if (k > 5) setsize += pow(4.0, ceil(log((double)(k * 3)) / log(4.0)));
    if ((double)n <= setsize) {
        int64_t *pool = rc_malloc(sizeof(int64_t) * (size_t)(n ? n : 1), "sample pool");
        if (!pool) return -1;
        for (int64_t i = 0; i < n; i++) pool[i] = i;
        for (int64_t i = 0; i < k; i++) {
            int64_t j = (int64_t)rc_pyrandom_randbelow(r, (uint64_t)(n - i));
            out[i] = pool[j];
            pool[j] = pool[n - i - 1];
        }
        free(pool);
    } else {
        uint8_t *sel = rc_calloc((size_t)n, 1, "sample set");
        if (!sel) return -1;
        for (int64_t i = 0; i < k; i++) {
            int64_t j = (int64_t)rc_pyrandom_randbelow(r, (uint64_t)n);
            while (sel[j]) j = (int64_t)rc_pyrandom_randbelow(r, (uint64_t)n);
            sel[j] = 1;
            out[i] = j;
        }
        free(sel);
    }
    return 0;
}
