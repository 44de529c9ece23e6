// Dequantization of GGML block formats to fp32, one block at a time, following the byte layouts
// of ggml's block_q4_0 / block_q4_1 / ... / block_q6_K structs (little-endian, fp16 scales).
// Element order inside a block matches ggml's dequantize_row_* reference functions.
#include "kernels/cpu/dequant.h"

#include <string.h>

#include "base/common.h"

static inline float f16_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return rc_f16_to_f32(h);
}

void rc_dequant_q4_0(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += 18, dst += 32) {
        float d = f16_at(src);
        const uint8_t *qs = src + 2;
        for (int j = 0; j < 16; j++) {
            dst[j] = (float)((qs[j] & 0x0F) - 8) * d;
            dst[j + 16] = (float)((qs[j] >> 4) - 8) * d;
        }
    }
}

void rc_dequant_q4_1(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += 20, dst += 32) {
        float d = f16_at(src), m = f16_at(src + 2);
        const uint8_t *qs = src + 4;
        for (int j = 0; j < 16; j++) {
            dst[j] = (float)(qs[j] & 0x0F) * d + m;
            dst[j + 16] = (float)(qs[j] >> 4) * d + m;
        }
    }
}

void rc_dequant_q5_0(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += 22, dst += 32) {
        float d = f16_at(src);
        uint32_t qh;
        memcpy(&qh, src + 2, 4);
        const uint8_t *qs = src + 6;
        for (int j = 0; j < 16; j++) {
            int xh0 = (int)(((qh >> j) << 4) & 0x10);
            int xh1 = (int)((qh >> (j + 12)) & 0x10);
            dst[j] = (float)(((qs[j] & 0x0F) | xh0) - 16) * d;
            dst[j + 16] = (float)(((qs[j] >> 4) | xh1) - 16) * d;
        }
    }
}

void rc_dequant_q5_1(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += 24, dst += 32) {
        float d = f16_at(src), m = f16_at(src + 2);
        uint32_t qh;
        memcpy(&qh, src + 4, 4);
        const uint8_t *qs = src + 8;
        for (int j = 0; j < 16; j++) {
            int xh0 = (int)(((qh >> j) << 4) & 0x10);
            int xh1 = (int)((qh >> (j + 12)) & 0x10);
            dst[j] = (float)((qs[j] & 0x0F) | xh0) * d + m;
            dst[j + 16] = (float)((qs[j] >> 4) | xh1) * d + m;
        }
    }
}

void rc_dequant_q8_0(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += 34, dst += 32) {
        float d = f16_at(src);
        const int8_t *qs = (const int8_t *)(src + 2);
        for (int j = 0; j < 32; j++) dst[j] = (float)qs[j] * d;
    }
}

// block_q2_K: scales[16] (4-bit scale | 4-bit min), qs[64] (2-bit), d, dmin (fp16).
void rc_dequant_q2_k(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += 84) {
        const uint8_t *scales = src, *q = src + 16;
        float d = f16_at(src + 80), dmin = f16_at(src + 82);
        int is = 0;
        for (int n = 0; n < 256; n += 128) {
            int shift = 0;
            for (int j = 0; j < 4; j++) {
                uint8_t sc = scales[is++];
                float dl = d * (float)(sc & 0xF), ml = dmin * (float)(sc >> 4);
                for (int l = 0; l < 16; l++) *dst++ = dl * (float)((q[l] >> shift) & 3) - ml;
                sc = scales[is++];
                dl = d * (float)(sc & 0xF);
                ml = dmin * (float)(sc >> 4);
                for (int l = 0; l < 16; l++) *dst++ = dl * (float)((q[l + 16] >> shift) & 3) - ml;
                shift += 2;
            }
            q += 32;
        }
    }
}

// block_q3_K: hmask[32], qs[64], scales[12] (16 6-bit scales), d (fp16).
void rc_dequant_q3_k(const uint8_t *src, float *dst, int64_t nb) {
    const uint32_t kmask1 = 0x03030303, kmask2 = 0x0f0f0f0f;
    for (int64_t b = 0; b < nb; b++, src += 110) {
        const uint8_t *hm = src, *q = src + 32;
        float d_all = f16_at(src + 108);
        uint32_t aux[4];
        memcpy(aux, src + 96, 12);
        uint32_t tmp = aux[2];
        aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
        aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
        aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
        aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
        int8_t scales[16];
        memcpy(scales, aux, 16);
        int is = 0;
        uint8_t m = 1;
        for (int n = 0; n < 256; n += 128) {
            int shift = 0;
            for (int j = 0; j < 4; j++) {
                float dl = d_all * (float)(scales[is++] - 32);
                for (int l = 0; l < 16; l++)
                    *dst++ = dl * (float)(((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
                dl = d_all * (float)(scales[is++] - 32);
                for (int l = 0; l < 16; l++)
                    *dst++ = dl * (float)(((q[l + 16] >> shift) & 3) - ((hm[l + 16] & m) ? 0 : 4));
                shift += 2;
                m = (uint8_t)(m << 1);
            }
            q += 32;
        }
    }
}

static inline void scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
    }
}

// block_q4_K: d, dmin (fp16), scales[12] (8 6-bit scale/min pairs), qs[128].
void rc_dequant_q4_k(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += 144) {
        float d = f16_at(src), dmin = f16_at(src + 2);
        const uint8_t *scales = src + 4, *q = src + 16;
        int is = 0;
        for (int j = 0; j < 256; j += 64) {
            uint8_t sc, m;
            scale_min_k4(is, scales, &sc, &m);
            float d1 = d * sc, m1 = dmin * m;
            scale_min_k4(is + 1, scales, &sc, &m);
            float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++) *dst++ = d1 * (float)(q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++) *dst++ = d2 * (float)(q[l] >> 4) - m2;
            q += 32;
            is += 2;
        }
    }
}

// block_q5_K: d, dmin (fp16), scales[12], qh[32], qs[128].
void rc_dequant_q5_k(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += 176) {
        float d = f16_at(src), dmin = f16_at(src + 2);
        const uint8_t *scales = src + 4, *qh = src + 16, *ql = src + 48;
        int is = 0;
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0; j < 256; j += 64) {
            uint8_t sc, m;
            scale_min_k4(is, scales, &sc, &m);
            float d1 = d * sc, m1 = dmin * m;
            scale_min_k4(is + 1, scales, &sc, &m);
            float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++)
                *dst++ = d1 * (float)((ql[l] & 0xF) + ((qh[l] & u1) ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++)
                *dst++ = d2 * (float)((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
            ql += 32;
            is += 2;
            u1 = (uint8_t)(u1 << 2);
            u2 = (uint8_t)(u2 << 2);
        }
    }
}

// block_q6_K: ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] (int8), d (fp16).
void rc_dequant_q6_k(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += 210) {
        const uint8_t *ql = src, *qh = src + 128;
        const int8_t *sc = (const int8_t *)(src + 192);
        float d = f16_at(src + 208);
        for (int n = 0; n < 256; n += 128) {
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = (int)((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                int q2 = (int)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = (int)((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = (int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                dst[l + 0] = d * (float)sc[is + 0] * (float)q1;
                dst[l + 32] = d * (float)sc[is + 2] * (float)q2;
                dst[l + 64] = d * (float)sc[is + 4] * (float)q3;
                dst[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
            dst += 128;
            ql += 64;
            qh += 32;
            sc += 8;
        }
    }
}

int rc_dequant_row(uint32_t type, const void *src, float *dst, int64_t n) {
    int elems, bytes;
    if (rc_ggml_type_geometry(type, &elems, &bytes)) return -1;
    if (!rc_ggml_can_dequant(type))
        return rc_fail("ggml tensor type %s (id %u) is not supported; supported: F32, F16, BF16, "
                       "Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K",
                       rc_ggml_type_name(type), type);
    if (n < 0 || n % elems != 0)
        return rc_fail("%s row of %lld elements is not a multiple of the block size %d",
                       rc_ggml_type_name(type), (long long)n, elems);
    const uint8_t *s = src;
    int64_t nb = n / elems;
    switch (type) {
    case RC_GGML_F32: memcpy(dst, s, (size_t)n * 4); break;
    case RC_GGML_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = f16_at(s + 2 * i);
        break;
    case RC_GGML_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = rc_bf16_to_f32(h);
        }
        break;
    case RC_GGML_Q4_0: rc_dequant_q4_0(s, dst, nb); break;
    case RC_GGML_Q4_1: rc_dequant_q4_1(s, dst, nb); break;
    case RC_GGML_Q5_0: rc_dequant_q5_0(s, dst, nb); break;
    case RC_GGML_Q5_1: rc_dequant_q5_1(s, dst, nb); break;
    case RC_GGML_Q8_0: rc_dequant_q8_0(s, dst, nb); break;
    case RC_GGML_Q2_K: rc_dequant_q2_k(s, dst, nb); break;
    case RC_GGML_Q3_K: rc_dequant_q3_k(s, dst, nb); break;
    case RC_GGML_Q4_K: rc_dequant_q4_k(s, dst, nb); break;
    case RC_GGML_Q5_K: rc_dequant_q5_k(s, dst, nb); break;
    case RC_GGML_Q6_K: rc_dequant_q6_k(s, dst, nb); break;
    default: return rc_fail("internal: no kernel for ggml type %s", rc_ggml_type_name(type));
    }
    return 0;
}
