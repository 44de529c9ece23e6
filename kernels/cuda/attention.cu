// Attention kernels. Prefill: grid (tiles, heads), 4 warps x 8 query rows; each K/V tile of 32
// keys is staged in shared memory once for the 32 rows; lane j scores key j, then the warp
// accumulates p_j * V[j] with lane owning dims lane + 32*v. Decode: grid (splits, heads, queries),
// LPK lanes read one key with 16-byte loads (8 elements per lane), partial (acc, max, sum) per
// split, merged by attn_combine_kernel.
#include "kernels/cuda/attention.h"
#include "kernels/cuda/common.cuh"

#define PF_ROWS_PER_WARP 8
#define PF_WARPS 4
#define PF_KEYS 32

extern "C" int rc_cuda_attn_build_tiles(int n, const int *slots, const int *pos, int *tiles) {
    int nt = 0;
    for (int i = 0; i < n;) {
        int c = 1;
        while (i + c < n && c < RC_ATTN_TILE && slots[i + c] == slots[i] && pos[i + c] == pos[i] + c)
            c++;
        tiles[4 * nt + 0] = i;
        tiles[4 * nt + 1] = c;
        tiles[4 * nt + 2] = slots[i];
        tiles[4 * nt + 3] = pos[i];
        nt++;
        i += c;
    }
    return nt;
}

template <typename T, int NV>
__global__ void __launch_bounds__(PF_WARPS * 32)
attn_prefill_kernel(const float *q, const T *kc, const T *vc, const int *tiles, T *out, int nh,
                    int nkv, int hd, int max_len, float scale) {
    extern __shared__ float4 smem_raw[];
    float *sq = (float *)smem_raw;                        // (RC_ATTN_TILE, hd) scaled queries
    T *sk = (T *)(sq + RC_ATTN_TILE * hd);                // (PF_KEYS, hd + 2) keys, padded rows
    T *sv = sk + PF_KEYS * (hd + 2);                      // (PF_KEYS, hd) values
    const int *tile = tiles + 4 * blockIdx.x;
    int first = tile[0], count = tile[1], slot = tile[2], pos0 = tile[3];
    int h = blockIdx.y, kvh = h / (nh / nkv), kvd = nkv * hd;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int t = threadIdx.x; t < count * hd; t += blockDim.x) {
        int r = t / hd, d = t - r * hd;
        sq[t] = q[(size_t)(first + r) * nh * hd + h * hd + d] * scale;
    }
    const T *kbase = kc + (size_t)slot * max_len * kvd + kvh * hd;
    const T *vbase = vc + (size_t)slot * max_len * kvd + kvh * hd;
    int last = pos0 + count - 1;
    float m[PF_ROWS_PER_WARP], l[PF_ROWS_PER_WARP], acc[PF_ROWS_PER_WARP][NV];
#pragma unroll
    for (int rr = 0; rr < PF_ROWS_PER_WARP; rr++) {
        m[rr] = -INFINITY;
        l[rr] = 0.f;
#pragma unroll
        for (int v = 0; v < NV; v++) acc[rr][v] = 0.f;
    }
    int hw = hd / 2;
    for (int k0 = 0; k0 <= last; k0 += PF_KEYS) {
        __syncthreads(); // previous tile fully consumed (and the queries are staged)
        for (int t = threadIdx.x; t < PF_KEYS * hw; t += blockDim.x) {
            int jj = t / hw, w = t - jj * hw, key = k0 + jj;
            typedef typename rc_pair_type<T>::type pair;
            pair kw, vw;
            memset(&kw, 0, sizeof kw);
            memset(&vw, 0, sizeof vw);
            if (key <= last) {
                kw = *(const pair *)(kbase + (size_t)key * kvd + 2 * w);
                vw = *(const pair *)(vbase + (size_t)key * kvd + 2 * w);
            }
            *(pair *)(sk + jj * (hd + 2) + 2 * w) = kw; // zeros for keys past the end
            *(pair *)(sv + jj * hd + 2 * w) = vw;
        }
        __syncthreads();
#pragma unroll
        for (int rr = 0; rr < PF_ROWS_PER_WARP; rr++) {
            int r = warp * PF_ROWS_PER_WARP + rr;
            int kmax = pos0 + r - k0; // last key of this tile row r may see (uniform per warp)
            if (r < count && kmax >= 0) {
                bool valid = lane <= kmax;
                float sc = -INFINITY;
                if (valid) {
                    const float2 *qr = (const float2 *)(sq + r * hd);
                    typedef typename rc_pair_type<T>::type pair;
                    const pair *kr = (const pair *)(sk + lane * (hd + 2));
                    float dot = 0.f;
                    for (int w = 0; w < hw; w++) {
                        float2 kf = rc_pair_to_f32(kr[w], (const T *)0), qf = qr[w];
                        dot += qf.x * kf.x + qf.y * kf.y;
                    }
                    sc = dot;
                }
                float mt = rc_warp_max(sc);
                float mn = fmaxf(m[rr], mt);
                float corr = __expf(m[rr] - mn);
                float p = valid ? __expf(sc - mn) : 0.f;
                l[rr] = l[rr] * corr + rc_warp_sum(p);
#pragma unroll
                for (int v = 0; v < NV; v++) acc[rr][v] *= corr;
                int nj = kmax + 1 < PF_KEYS ? kmax + 1 : PF_KEYS;
                for (int j = 0; j < nj; j++) {
                    float pj = __shfl_sync(0xffffffffu, p, j);
#pragma unroll
                    for (int v = 0; v < NV; v++) {
                        int d = lane + 32 * v;
                        if (d < hd) acc[rr][v] += pj * rc_to_f32(sv[j * hd + d]);
                    }
                }
                m[rr] = mn;
            }
        }
    }
#pragma unroll
    for (int rr = 0; rr < PF_ROWS_PER_WARP; rr++) {
        int r = warp * PF_ROWS_PER_WARP + rr;
        if (r < count) {
            float inv = 1.f / l[rr];
            T *o = out + (size_t)(first + r) * nh * hd + h * hd;
#pragma unroll
            for (int v = 0; v < NV; v++) {
                int d = lane + 32 * v;
                if (d < hd) o[d] = rc_from_f32<T>(acc[rr][v] * inv);
            }
        }
    }
}

template <typename T, int NV>
static int prefill_launch(const float *q, const void *kc, const void *vc, const int *tiles,
                          int n_tiles, void *out, int nh, int nkv, int hd, int max_len,
                          cudaStream_t s) {
    size_t smem = (size_t)RC_ATTN_TILE * hd * 4 + (size_t)PF_KEYS * (hd + 2) * sizeof(T) +
                  (size_t)PF_KEYS * hd * sizeof(T);
    static size_t smem_set = 0; // the largest dynamic size this instantiation was opened up to
    if (smem > 48 * 1024 && smem > smem_set) {
        CUDA_CHECK(cudaFuncSetAttribute(attn_prefill_kernel<T, NV>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        smem_set = smem;
    }
    dim3 grid(n_tiles, nh);
    attn_prefill_kernel<T, NV><<<grid, PF_WARPS * 32, smem, s>>>(
        q, (const T *)kc, (const T *)vc, tiles, (T *)out, nh, nkv, hd, max_len,
        1.f / sqrtf((float)hd));
    CUDA_CHECK_LAUNCH();
    return 0;
}

template <typename T>
static int prefill_dispatch(const float *q, const void *kc, const void *vc, const int *tiles,
                            int n_tiles, void *out, int nh, int nkv, int hd, int max_len,
                            cudaStream_t s) {
    if (hd <= 32) return prefill_launch<T, 1>(q, kc, vc, tiles, n_tiles, out, nh, nkv, hd, max_len, s);
    if (hd <= 64) return prefill_launch<T, 2>(q, kc, vc, tiles, n_tiles, out, nh, nkv, hd, max_len, s);
    if (hd <= 128) return prefill_launch<T, 4>(q, kc, vc, tiles, n_tiles, out, nh, nkv, hd, max_len, s);
    return prefill_launch<T, 8>(q, kc, vc, tiles, n_tiles, out, nh, nkv, hd, max_len, s);
}

static int check_shape(const char *who, rc_cuda_dtype dt, int nh, int nkv, int hd) {
    if (dt != RC_CUDA_F32 && dt != RC_CUDA_F16 && dt != RC_CUDA_BF16)
        return rc_fail("%s: unknown KV cache dtype %d", who, (int)dt);
    if (nkv <= 0 || nh % nkv != 0)
        return rc_fail("%s: %d heads is not a multiple of %d KV heads", who, nh, nkv);
    if (hd % 8 != 0 || hd > 256)
        return rc_fail("%s: head_dim %d unsupported (multiple of 8, at most 256)", who, hd);
    return 0;
}

extern "C" int rc_cuda_attention_prefill(const float *q, const void *k_cache, const void *v_cache,
                                         rc_cuda_dtype dt, const int *tiles, int n_tiles,
                                         void *out, int n_heads, int n_kv_heads, int head_dim,
                                         int max_len, cudaStream_t s) {
    if (n_tiles <= 0) return 0;
    if (check_shape("rc_cuda_attention_prefill", dt, n_heads, n_kv_heads, head_dim)) return -1;
    if (dt == RC_CUDA_F32)
        return prefill_dispatch<float>(q, k_cache, v_cache, tiles, n_tiles, out, n_heads,
                                       n_kv_heads, head_dim, max_len, s);
    if (dt == RC_CUDA_F16)
        return prefill_dispatch<__half>(q, k_cache, v_cache, tiles, n_tiles, out, n_heads,
                                        n_kv_heads, head_dim, max_len, s);
    return prefill_dispatch<__nv_bfloat16>(q, k_cache, v_cache, tiles, n_tiles, out, n_heads,
                                           n_kv_heads, head_dim, max_len, s);
}

// ---- decode ----------------------------------------------------------------------------------

#define DC_WARPS 4

template <typename T, int LPK>
__global__ void __launch_bounds__(DC_WARPS * 32)
attn_decode_kernel(const float *q, const T *kc, const T *vc, const int *slots, const int *pos,
                   float *part, int nh, int nkv, int hd, int max_len, float scale, int S) {
    constexpr int KPW = 32 / LPK; // keys a warp reads at once
    constexpr int P = DC_WARPS * KPW;
    __shared__ float sm_m[P], sm_l[P];
    __shared__ float sm_acc[P * 8 * LPK];
    int s = blockIdx.x, h = blockIdx.y, i = blockIdx.z;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int sub = lane / LPK, l8 = (lane % LPK) * 8;
    bool dv = l8 < hd;
    int len = pos[i] + 1;
    int chunk = (len + S - 1) / S;
    int begin = s * chunk, end = min(len, begin + chunk);
    int kvh = h / (nh / nkv), kvd = nkv * hd;
    const T *kbase = kc + (size_t)slots[i] * max_len * kvd + kvh * hd + l8;
    const T *vbase = vc + (size_t)slots[i] * max_len * kvd + kvh * hd + l8;
    float qv[8];
#pragma unroll
    for (int t = 0; t < 8; t++) qv[t] = 0.f;
    if (dv) {
        const float4 *qp = (const float4 *)(q + (size_t)i * nh * hd + h * hd + l8);
        float4 a = qp[0], b = qp[1];
        qv[0] = a.x * scale; qv[1] = a.y * scale; qv[2] = a.z * scale; qv[3] = a.w * scale;
        qv[4] = b.x * scale; qv[5] = b.y * scale; qv[6] = b.z * scale; qv[7] = b.w * scale;
    }
    float m = -INFINITY, lsum = 0.f, acc[8];
#pragma unroll
    for (int t = 0; t < 8; t++) acc[t] = 0.f;
    // Two keys per lane group per iteration so that four 16-byte loads are in flight.
    for (int base = begin + warp * KPW; base < end; base += 2 * DC_WARPS * KPW) {
        int j0 = base + sub, j1 = base + sub + DC_WARPS * KPW;
        bool v0 = j0 < end, v1 = j1 < end;
        rc_vec8<T> k0u = rc_zero8<T>(), k1u = k0u, v0u = k0u, v1u = k0u;
        if (dv && v0) {
            k0u = rc_ld8(kbase + (size_t)j0 * kvd);
            v0u = rc_ld8(vbase + (size_t)j0 * kvd);
        }
        if (dv && v1) {
            k1u = rc_ld8(kbase + (size_t)j1 * kvd);
            v1u = rc_ld8(vbase + (size_t)j1 * kvd);
        }
        float kf[8], s0 = 0.f, s1 = 0.f;
        rc_unpack8<T>(k0u, kf);
#pragma unroll
        for (int t = 0; t < 8; t++) s0 += qv[t] * kf[t];
        rc_unpack8<T>(k1u, kf);
#pragma unroll
        for (int t = 0; t < 8; t++) s1 += qv[t] * kf[t];
#pragma unroll
        for (int o = LPK / 2; o > 0; o >>= 1) {
            s0 += __shfl_xor_sync(0xffffffffu, s0, o);
            s1 += __shfl_xor_sync(0xffffffffu, s1, o);
        }
        if (!v0) continue; // j1 > j0, so nothing valid is left for this lane group
        float mn = fmaxf(m, v1 ? fmaxf(s0, s1) : s0);
        float corr = __expf(m - mn), p0 = __expf(s0 - mn), p1 = v1 ? __expf(s1 - mn) : 0.f;
        lsum = lsum * corr + p0 + p1;
        float vf0[8], vf1[8];
        rc_unpack8<T>(v0u, vf0);
        rc_unpack8<T>(v1u, vf1);
#pragma unroll
        for (int t = 0; t < 8; t++) acc[t] = acc[t] * corr + p0 * vf0[t] + p1 * vf1[t];
        m = mn;
    }
    int pidx = warp * KPW + sub;
    if (lane % LPK == 0) {
        sm_m[pidx] = m;
        sm_l[pidx] = lsum;
    }
    if (dv) {
#pragma unroll
        for (int t = 0; t < 8; t++) sm_acc[pidx * 8 * LPK + l8 + t] = acc[t];
    }
    __syncthreads();
    float M = -INFINITY;
    for (int p = 0; p < P; p++) M = fmaxf(M, sm_m[p]);
    float *dst = part + (((size_t)i * nh + h) * S + s) * (hd + 2);
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float a = 0.f;
        if (M != -INFINITY)
            for (int p = 0; p < P; p++)
                if (sm_m[p] != -INFINITY) a += sm_acc[p * 8 * LPK + d] * __expf(sm_m[p] - M);
        dst[d] = a;
    }
    if (threadIdx.x == 0) {
        float L = 0.f;
        if (M != -INFINITY)
            for (int p = 0; p < P; p++)
                if (sm_m[p] != -INFINITY) L += sm_l[p] * __expf(sm_m[p] - M);
        dst[hd] = M;
        dst[hd + 1] = L;
    }
}

template <typename T>
__global__ void attn_combine_kernel(const float *part, T *out, int nh, int hd, int S) {
    int h = blockIdx.x, i = blockIdx.y;
    const float *src = part + ((size_t)i * nh + h) * S * (hd + 2);
    float M = -INFINITY;
    for (int s = 0; s < S; s++) M = fmaxf(M, src[s * (hd + 2) + hd]);
    float L = 0.f;
    for (int s = 0; s < S; s++) {
        float ms = src[s * (hd + 2) + hd];
        if (ms != -INFINITY) L += src[s * (hd + 2) + hd + 1] * __expf(ms - M);
    }
    float inv = L > 0.f ? 1.f / L : 0.f;
    T *o = out + (size_t)i * nh * hd + h * hd;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float a = 0.f;
        for (int s = 0; s < S; s++) {
            float ms = src[s * (hd + 2) + hd];
            if (ms != -INFINITY) a += src[s * (hd + 2) + d] * __expf(ms - M);
        }
        o[d] = rc_from_f32<T>(a * inv);
    }
}

extern "C" int rc_cuda_attention_decode_splits(int n, int n_heads, int max_len, int n_sms) {
    long blocks = (long)n * n_heads;
    long want = blocks > 0 ? (4L * n_sms + blocks - 1) / blocks : 1;
    long cap = (max_len + 63) / 64; // a split below 64 keys costs more in merging than it saves
    if (want > cap) want = cap;
    if (want > 32) want = 32;
    return want < 1 ? 1 : (int)want;
}

extern "C" size_t rc_cuda_attention_decode_scratch(int n, int n_heads, int head_dim,
                                                   int n_splits) {
    return (size_t)n * n_heads * n_splits * (head_dim + 2);
}

template <typename T, int LPK>
static int decode_launch(const float *q, const void *kc, const void *vc, const int *slots,
                         const int *pos, float *part, int S, int n, int nh, int nkv, int hd,
                         int max_len, cudaStream_t s) {
    dim3 grid(S, nh, n);
    attn_decode_kernel<T, LPK><<<grid, DC_WARPS * 32, 0, s>>>(
        q, (const T *)kc, (const T *)vc, slots, pos, part, nh, nkv, hd, max_len,
        1.f / sqrtf((float)hd), S);
    CUDA_CHECK_LAUNCH();
    return 0;
}

template <typename T>
static int decode_dispatch(const float *q, const void *kc, const void *vc, const int *slots,
                           const int *pos, float *part, int S, void *out, int n, int nh, int nkv,
                           int hd, int max_len, cudaStream_t s) {
    int lpk = 1;
    while (lpk * 8 < hd) lpk *= 2;
    int rc;
    switch (lpk) {
    case 1: rc = decode_launch<T, 1>(q, kc, vc, slots, pos, part, S, n, nh, nkv, hd, max_len, s); break;
    case 2: rc = decode_launch<T, 2>(q, kc, vc, slots, pos, part, S, n, nh, nkv, hd, max_len, s); break;
    case 4: rc = decode_launch<T, 4>(q, kc, vc, slots, pos, part, S, n, nh, nkv, hd, max_len, s); break;
    case 8: rc = decode_launch<T, 8>(q, kc, vc, slots, pos, part, S, n, nh, nkv, hd, max_len, s); break;
    case 16: rc = decode_launch<T, 16>(q, kc, vc, slots, pos, part, S, n, nh, nkv, hd, max_len, s); break;
    default: rc = decode_launch<T, 32>(q, kc, vc, slots, pos, part, S, n, nh, nkv, hd, max_len, s); break;
    }
    if (rc) return rc;
    dim3 grid(nh, n);
    attn_combine_kernel<T><<<grid, hd < 128 ? 64 : 128, 0, s>>>(part, (T *)out, nh, hd, S);
    CUDA_CHECK_LAUNCH();
    return 0;
}

extern "C" int rc_cuda_attention_decode(const float *q, const void *k_cache, const void *v_cache,
                                        rc_cuda_dtype dt, const int *slots, const int *pos,
                                        float *scratch, int n_splits, void *out, int n,
                                        int n_heads, int n_kv_heads, int head_dim, int max_len,
                                        cudaStream_t s) {
    if (n <= 0) return 0;
    if (check_shape("rc_cuda_attention_decode", dt, n_heads, n_kv_heads, head_dim)) return -1;
    RC_CUDA_REQUIRE(n_splits >= 1 && n <= 65535 && n_heads <= 65535,
                    "rc_cuda_attention_decode: bad launch shape (n %d, heads %d, splits %d)", n,
                    n_heads, n_splits);
    if (dt == RC_CUDA_F32)
        return decode_dispatch<float>(q, k_cache, v_cache, slots, pos, scratch, n_splits, out, n,
                                      n_heads, n_kv_heads, head_dim, max_len, s);
    if (dt == RC_CUDA_F16)
        return decode_dispatch<__half>(q, k_cache, v_cache, slots, pos, scratch, n_splits, out, n,
                                       n_heads, n_kv_heads, head_dim, max_len, s);
    return decode_dispatch<__nv_bfloat16>(q, k_cache, v_cache, slots, pos, scratch, n_splits, out,
                                          n, n_heads, n_kv_heads, head_dim, max_len, s);
}
