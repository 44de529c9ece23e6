// Attention with an online (streaming) softmax over blocks of 64 keys: per (token, head) a
// running max m, running sum l and an unnormalised output accumulator; each block's scores are
// computed, the accumulator rescaled by exp(m_old - m_new), then p = exp(s - m_new) added in.
// AVX2 path (head_dim a multiple of 8): a unit of work is up to 8 consecutive tokens of one
// sequence x one KV head, so every key/value block is read once for all 8 x group queries while
// it sits in L1; scores 8 keys at a time (no per-key horizontal sum), vector exp. When there are
// fewer units than twice the threads (decode: one token x a few KV heads) and enough keys, each
// unit's keys are split into shares run as units of their own and merged (max, sum, output),
// so that every thread reads its own part of the cache. Portable C
// otherwise: one (token, head) pair at a time. No scratch beyond the stack.
#include "kernels/cpu/attention.h"
#include "kernels/cpu/vexp.h"

#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <stdlib.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define RC_ATT_AVX2 1
#else
#define RC_ATT_AVX2 0
#endif

#define RC_ATT_BLOCK 64
#define RC_ATT_MAX_HD 512

static void attention_portable(float *out, const float *q, const float *k_cache, const float *v_cache,
                      const int *slots, const int *pos, int n, int n_heads, int n_kv_heads,
                      int head_dim, int max_len, float scale) {
    const int group = n_heads / n_kv_heads;
    const int kv_dim = n_kv_heads * head_dim;
    const long work = (long)n * n_heads * head_dim * (pos ? (long)pos[n - 1] + 1 : 1);
#pragma omp parallel for collapse(2) schedule(dynamic, 1) if (work > 65536)
    for (int t = 0; t < n; t++) {
        for (int h = 0; h < n_heads; h++) {
            const float *qh = q + ((size_t)t * n_heads + h) * head_dim;
            const size_t base = (size_t)slots[t] * max_len * kv_dim + (size_t)(h / group) * head_dim;
            const float *kb = k_cache + base, *vb = v_cache + base;
            float acc[RC_ATT_MAX_HD];
            float s[RC_ATT_BLOCK];
            for (int d = 0; d < head_dim; d++) acc[d] = 0;
            float m = -INFINITY, l = 0;
            const int len = pos[t] + 1;
            for (int j0 = 0; j0 < len; j0 += RC_ATT_BLOCK) {
                const int nb = len - j0 < RC_ATT_BLOCK ? len - j0 : RC_ATT_BLOCK;
                float bm = -INFINITY;
                for (int j = 0; j < nb; j++) {
                    const float *kj = kb + (size_t)(j0 + j) * kv_dim;
                    float d0 = 0;
#pragma omp simd reduction(+ : d0)
                    for (int d = 0; d < head_dim; d++) d0 += qh[d] * kj[d];
                    s[j] = d0 * scale;
                    if (s[j] > bm) bm = s[j];
                }
                const float m_new = bm > m ? bm : m;
                const float corr = expf(m - m_new); // 0 on the first block (m = -inf)
                l *= corr;
                for (int d = 0; d < head_dim; d++) acc[d] *= corr;
                for (int j = 0; j < nb; j++) {
                    const float p = expf(s[j] - m_new);
                    l += p;
                    const float *vj = vb + (size_t)(j0 + j) * kv_dim;
#pragma omp simd
                    for (int d = 0; d < head_dim; d++) acc[d] += p * vj[d];
                }
                m = m_new;
            }
            float *oh = out + ((size_t)t * n_heads + h) * head_dim;
            const float inv = 1.0f / l;
            for (int d = 0; d < head_dim; d++) oh[d] = acc[d] * inv;
        }
    }
}

#if RC_ATT_AVX2
#define RC_ATT_QB 8     // tokens per unit of work
#define RC_ATT_MAX_Q 64 // queries per unit (tokens x group heads)


// Sums of 8 vectors' lanes: lane j of the result = sum of a[j]'s lanes.
static inline __m256 hsum8(__m256 a[8]) {
    __m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
    __m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
    __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
    // u0 = [a0l a1l a2l a3l | a0h a1h a2h a3h] (l/h: the two 128-bit halves' sums), same for u1
    __m256 lo = _mm256_permute2f128_ps(u0, u1, 0x20), hi = _mm256_permute2f128_ps(u0, u1, 0x31);
    return _mm256_add_ps(lo, hi);
}

// Tokens [t0, t0 + nt) (same slot, consecutive positions) x KV head kvh (its group of query
// heads), keys [jb, je); part: NULL to write the normalised outputs, else the share's state.
// NV: head_dim / 8, a constant in the specialised copies (64 and 128: loops fully unrolled).
static inline __attribute__((always_inline)) void
attention_unit_nv(float *out, const float *q, const float *k_cache, const float *v_cache,
                  const int *slots, const int *pos, int t0, int nt, int kvh,
                  int n_heads, int group, int kv_dim, int max_len, float scale, int jb, int je,
                  float *part, const int NV) {
    const int nq = nt * group, hd = 8 * NV, nv = NV;
    const size_t base = (size_t)slots[t0] * max_len * kv_dim + (size_t)kvh * hd;
    const float *kb = k_cache + base, *vb = v_cache + base;
    float acc[RC_ATT_MAX_Q][RC_ATT_MAX_HD] __attribute__((aligned(32)));
    float m[RC_ATT_MAX_Q], l[RC_ATT_MAX_Q];
    const float *qs[RC_ATT_MAX_Q];
    int len[RC_ATT_MAX_Q];
    for (int i = 0; i < nq; i++) {
        const int t = t0 + i / group, h = kvh * group + i % group;
        qs[i] = q + ((size_t)t * n_heads + h) * hd;
        len[i] = pos[t] + 1;
        m[i] = -INFINITY;
        l[i] = 0;
        for (int d = 0; d < hd; d++) acc[i][d] = 0;
    }
    const int len_max = je < pos[t0 + nt - 1] + 1 ? je : pos[t0 + nt - 1] + 1;
    float s[RC_ATT_BLOCK] __attribute__((aligned(32)));
    for (int j0 = jb; j0 < len_max; j0 += RC_ATT_BLOCK) {
        const int nb_all = len_max - j0 < RC_ATT_BLOCK ? len_max - j0 : RC_ATT_BLOCK;
        for (int i = 0; i < nq; i++) {
            const int nb = len[i] - j0 < nb_all ? len[i] - j0 : nb_all; // causal: keys <= pos
            if (nb <= 0) continue;
            const float *qi = qs[i];
            // scores, 8 keys at a time
            for (int j = 0; j < nb; j += 8) {
                __m256 a[8];
                for (int u = 0; u < 8; u++) a[u] = _mm256_setzero_ps();
                const int nk = nb - j < 8 ? nb - j : 8;
                for (int dv = 0; dv < nv; dv++) {
                    const __m256 qv = _mm256_loadu_ps(qi + 8 * dv);
                    for (int u = 0; u < nk; u++)
                        a[u] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(kb + (size_t)(j0 + j + u) * kv_dim + 8 * dv), a[u]);
                }
                _mm256_storeu_ps(s + j, _mm256_mul_ps(hsum8(a), _mm256_set1_ps(scale)));
            }
            for (int j = nb; j < (nb + 7) / 8 * 8; j++) s[j] = -INFINITY;
            float bm = -INFINITY;
            for (int j = 0; j < nb; j++) bm = s[j] > bm ? s[j] : bm;
            const float m_new = bm > m[i] ? bm : m[i];
            const float corr = expf(m[i] - m_new); // 0 on the first block (m = -inf)
            const __m256 vm = _mm256_set1_ps(m_new);
            __m256 lsum = _mm256_setzero_ps();
            for (int j = 0; j < nb; j += 8) {
                const __m256 p = rc_vexp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));
                _mm256_storeu_ps(s + j, p);
                lsum = _mm256_add_ps(lsum, p);
            }
            __m128 ls = _mm_add_ps(_mm256_castps256_ps128(lsum), _mm256_extractf128_ps(lsum, 1));
            ls = _mm_add_ps(ls, _mm_movehl_ps(ls, ls));
            ls = _mm_add_ss(ls, _mm_movehdup_ps(ls));
            l[i] = l[i] * corr + _mm_cvtss_f32(ls);
            m[i] = m_new;
            // acc = acc * corr + P V, the accumulator in registers (hd <= 128) or in L1
            float *ai = acc[i];
            const __m256 vc = _mm256_set1_ps(corr);
            if (nv <= 16) {
                __m256 o[16];
                for (int dv = 0; dv < nv; dv++) o[dv] = _mm256_mul_ps(_mm256_load_ps(ai + 8 * dv), vc);
                for (int j = 0; j < nb; j++) {
                    const __m256 p = _mm256_set1_ps(s[j]);
                    const float *vj = vb + (size_t)(j0 + j) * kv_dim;
                    for (int dv = 0; dv < nv; dv++) o[dv] = _mm256_fmadd_ps(p, _mm256_loadu_ps(vj + 8 * dv), o[dv]);
                }
                for (int dv = 0; dv < nv; dv++) _mm256_store_ps(ai + 8 * dv, o[dv]);
            } else {
                for (int dv = 0; dv < nv; dv++) _mm256_store_ps(ai + 8 * dv, _mm256_mul_ps(_mm256_load_ps(ai + 8 * dv), vc));
                for (int j = 0; j < nb; j++) {
                    const __m256 p = _mm256_set1_ps(s[j]);
                    const float *vj = vb + (size_t)(j0 + j) * kv_dim;
                    for (int dv = 0; dv < nv; dv++)
                        _mm256_store_ps(ai + 8 * dv, _mm256_fmadd_ps(p, _mm256_loadu_ps(vj + 8 * dv), _mm256_load_ps(ai + 8 * dv)));
                }
            }
        }
    }
    if (part) { // a share of the keys: the running max, sum and unnormalised output per query
        for (int i = 0; i < nq; i++) {
            float *pi = part + (size_t)i * (hd + 2);
            pi[0] = m[i], pi[1] = l[i];
            for (int d = 0; d < hd; d++)
                pi[2 + d] = acc[i][d];
        }
        return;
    }
    for (int i = 0; i < nq; i++) {
        const int t = t0 + i / group, h = kvh * group + i % group;
        float *oh = out + ((size_t)t * n_heads + h) * hd;
        const float inv = 1.0f / l[i];
        for (int d = 0; d < hd; d++) oh[d] = acc[i][d] * inv;
    }
}

static void attention_unit(float *out, const float *q, const float *k_cache, const float *v_cache,
                           const int *slots, const int *pos, int t0, int nt, int kvh,
                           int n_heads, int group, int head_dim, int kv_dim, int max_len,
                           float scale, int jb, int je, float *part) {
    if (head_dim == 64)
        attention_unit_nv(out, q, k_cache, v_cache, slots, pos, t0, nt, kvh, n_heads, group,
                          kv_dim, max_len, scale, jb, je, part, 8);
    else if (head_dim == 128)
        attention_unit_nv(out, q, k_cache, v_cache, slots, pos, t0, nt, kvh, n_heads, group,
                          kv_dim, max_len, scale, jb, je, part, 16);
    else
        attention_unit_nv(out, q, k_cache, v_cache, slots, pos, t0, nt, kvh, n_heads, group,
                          kv_dim, max_len, scale, jb, je, part, head_dim / 8);
}
#endif

void rc_cpu_attention(float *out, const float *q, const float *k_cache, const float *v_cache,
                      const int *slots, const int *pos, int n, int n_heads, int n_kv_heads,
                      int head_dim, int max_len, float scale) {
#if RC_ATT_AVX2
    const int group = n_heads / n_kv_heads;
    if (head_dim % 8 == 0 && head_dim <= RC_ATT_MAX_HD && group <= RC_ATT_MAX_Q) {
        // Units: runs of up to QB consecutive tokens of one slot (fewer when QB * group queries
        // would not fit), times KV heads.
        const int qb = RC_ATT_MAX_Q / group < RC_ATT_QB ? RC_ATT_MAX_Q / group : RC_ATT_QB;
        int starts[n + 1], n_units = 0;
        for (int t = 0; t < n;) {
            int e = t + 1;
            while (e < n && e - t < qb && slots[e] == slots[t] && pos[e] == pos[e - 1] + 1) e++;
            starts[n_units++] = t;
            t = e;
        }
        starts[n_units] = n;
        const int kv_dim = n_kv_heads * head_dim;
        const long work = (long)n * n_heads * head_dim * ((long)pos[n - 1] + 1);
        // Few units (decode: one per KV head, e.g. 3 over 2 threads): the keys are split into
        // S shares (multiples of 8 keys), each share a unit of its own returning its running max,
        // sum and unnormalised output, merged afterwards; every thread reads a disjoint part of
        // the cache (splitting by query head instead would read each KV head twice).
        const int nthr = omp_get_max_threads();
        int S = 1;
        if (n_units * n_kv_heads < 2 * nthr && work > 16384) { // decode: from 64 keys on
            S = (2 * nthr + n_units * n_kv_heads - 1) / (n_units * n_kv_heads);
            const int max_s = (pos[n - 1] + 1) / 32; // shares of at least 32 keys
            S = S < max_s ? S : max_s;
            if (S > 64) S = 64;
            if (S < 1) S = 1;
        }
        if (S == 1) {
#pragma omp parallel for collapse(2) schedule(dynamic, 1) if (work > 65536)
            for (int u = 0; u < n_units; u++)
                for (int kvh = 0; kvh < n_kv_heads; kvh++)
                    attention_unit(out, q, k_cache, v_cache, slots, pos, starts[u],
                                   starts[u + 1] - starts[u], kvh, n_heads, group,
                                   head_dim, kv_dim, max_len, scale, 0, INT_MAX, NULL);
            return;
        }
        // per (unit, kvh, share): up to qb * group queries of (max, sum, head_dim outputs)
        const size_t per = (size_t)qb * group * (head_dim + 2);
        // (a few KiB to a few hundred: malloc'd per call, not kept in thread-local storage, since
        // a thread that exits, e.g. a server's engine thread, would leave it behind)
        float *part = malloc(sizeof(float) * (size_t)n_units * n_kv_heads * S * per);
        if (!part) abort(); // out of memory for a few KiB
#pragma omp parallel for collapse(3) schedule(static)
        for (int u = 0; u < n_units; u++)
            for (int kvh = 0; kvh < n_kv_heads; kvh++)
                for (int c = 0; c < S; c++) {
                    const int len = pos[starts[u + 1] - 1] + 1;
                    const int jb = (int)((long)len * c / S) / 8 * 8,
                              je = c + 1 == S ? len : (int)((long)len * (c + 1) / S) / 8 * 8;
                    attention_unit(out, q, k_cache, v_cache, slots, pos, starts[u],
                                   starts[u + 1] - starts[u], kvh, n_heads, group,
                                   head_dim, kv_dim, max_len, scale, jb, je,
                                   part + (((size_t)u * n_kv_heads + kvh) * S + c) * per);
                }
        // merge the shares: m = max m_c, l = sum l_c e^(m_c - m), out = sum acc_c e^(m_c - m) / l
        for (int u = 0; u < n_units; u++)
            for (int kvh = 0; kvh < n_kv_heads; kvh++) {
                const int nq = (starts[u + 1] - starts[u]) * group;
                for (int i = 0; i < nq; i++) {
                    const float *p0 = part + ((size_t)u * n_kv_heads + kvh) * S * per +
                                      (size_t)i * (head_dim + 2);
                    float mx = -INFINITY;
                    for (int c = 0; c < S; c++)
                        mx = p0[c * per] > mx ? p0[c * per] : mx;
                    float w[64], l = 0; // S <= 2 * threads / units: a few shares
                    for (int c = 0; c < S; c++) {
                        w[c] = p0[c * per] == -INFINITY ? 0.f : expf(p0[c * per] - mx);
                        l += p0[c * per + 1] * w[c];
                    }
                    const int t = starts[u] + i / group, h = kvh * group + i % group;
                    float *oh = out + ((size_t)t * n_heads + h) * head_dim;
                    const float inv = 1.0f / l;
                    for (int d = 0; d < head_dim; d++) {
                        float a = 0;
                        for (int c = 0; c < S; c++)
                            a += p0[c * per + 2 + d] * w[c];
                        oh[d] = a * inv;
                    }
                }
            }
        free(part);
        return;
    }
#endif
    attention_portable(out, q, k_cache, v_cache, slots, pos, n, n_heads, n_kv_heads, head_dim,
                       max_len, scale);
}
