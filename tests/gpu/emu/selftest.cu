// Self-test of the CUDA emulation (and valid CUDA, so the same file can run on a device): `ok`
// runs the features that must work (cooperative launch with grid barriers, occupancy, streams and
// events with pinned async copies, warp shuffles and votes with widths and partial masks, block
// order, race-free shared memory, fast-math error bounds and flush-to-zero); every other mode runs
// one deliberately broken kernel that the emulator must refuse.
// Usage: emu_selftest ok|MODE   (tests/gpu/emu/selftest.sh runs them all and checks the messages)
#include <cooperative_groups.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

namespace cg = cooperative_groups;

#define CHECK(stmt)                                                                               \
    do {                                                                                          \
        cudaError_t e_ = (stmt);                                                                  \
        if (e_ != cudaSuccess) {                                                                  \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #stmt, cudaGetErrorName(e_));  \
            exit(1);                                                                              \
        }                                                                                         \
    } while (0)
#define EXPECT(cond, ...)                                                                         \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                       \
            fprintf(stderr, __VA_ARGS__);                                                         \
            fprintf(stderr, "\n");                                                                \
            exit(1);                                                                              \
        }                                                                                         \
    } while (0)

// ---- kernels that must work -------------------------------------------------------------------

// A persistent kernel: `rounds` times, every block adds its grid-stride share of x into
// partial[block], the grid syncs, block 0 folds the partials into out[round] and scales x.
__global__ void coop_sum_kernel(float *x, int n, float *partial, float *out, int rounds) {
    cg::grid_group grid = cg::this_grid();
    __shared__ float red[32];
    for (int r = 0; r < rounds; r++) {
        float s = 0.f;
        for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) s += x[i];
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = s;
        __syncthreads();
        if (threadIdx.x == 0) {
            float t = 0.f;
            for (int w = 0; w < (int)(blockDim.x >> 5); w++) t += red[w];
            partial[blockIdx.x] = t;
        }
        grid.sync();
        if (blockIdx.x == 0 && threadIdx.x == 0) {
            float t = 0.f;
            for (int b = 0; b < (int)gridDim.x; b++) t += partial[b];
            out[r] = t;
        }
        grid.sync();
        for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) x[i] *= 2.f;
        grid.sync();
    }
}

__global__ void scale_kernel(float *y, const float *x, int n, float a) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i];
}

// out[lane] for each collective, width 16: idx (lane 3 of the segment), xor 5, up 2, down 3, ballot
__global__ void warp_ops_kernel(int *out) {
    int l = threadIdx.x;
    out[0 * 32 + l] = __shfl_sync(0xffffffffu, 100 + l, 3, 16);
    out[1 * 32 + l] = __shfl_xor_sync(0xffffffffu, 100 + l, 5, 16);
    out[2 * 32 + l] = __shfl_up_sync(0xffffffffu, 100 + l, 2, 16);
    out[3 * 32 + l] = __shfl_down_sync(0xffffffffu, 100 + l, 3, 16);
    out[4 * 32 + l] = (int)__ballot_sync(0xffffffffu, l % 3 == 0);
    out[5 * 32 + l] = __all_sync(0xffffffffu, l < 32) + 2 * __any_sync(0xffffffffu, l == 7);
    // a partial mask is legal when exactly its lanes take part
    if (l < 16) out[6 * 32 + l] = __shfl_xor_sync(0x0000ffffu, 100 + l, 1);
    else out[6 * 32 + l] = __shfl_xor_sync(0xffff0000u, 200 + l, 2);
    __syncwarp();
}

__global__ void order_kernel(int *order, int *counter) {
    if (threadIdx.x == 0) order[atomicAdd(counter, 1)] = blockIdx.x;
}

// Shared-memory traffic that is correctly ordered: barriers, atomics, warp-synchronous exchange.
__global__ void shared_ok_kernel(const float *x, float *y, int *count) {
    __shared__ float s[128];
    __shared__ int cnt;
    int t = threadIdx.x;
    if (t == 0) cnt = 0;
    s[t] = x[t];
    __syncthreads();
    atomicAdd(&cnt, 1); // atomics on one address are not a race
    float v = s[127 - t];
    __syncthreads();
    s[t] = 2.f * v; // overwrites what others read before the barrier
    __syncwarp();
    v += s[t ^ 1]; // the neighbour is in the same warp, ordered by __syncwarp
    __syncthreads();
    y[t] = v;
    if (t == 0) *count = cnt;
}

// Fast-math intrinsics over a range of inputs, and a result that must flush to zero.
__global__ void fast_math_kernel(const float *x, float *e, float *r, float *d, float *tiny) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    e[t] = __expf(x[t]);
    r[t] = rsqrtf(fabsf(x[t]) + 0.5f);
    d[t] = __fdividef(x[t], 3.f + t);
    if (t == 0) tiny[0] = x[0] * 0.f + 1e-38f * tiny[1]; // 1e-38 * 0.5: a denormal, flushed
}

// ---- deliberately broken kernels --------------------------------------------------------------

__global__ void grid_sync_plain_kernel(float *x) {
    x[threadIdx.x] = 1.f;
    cg::this_grid().sync(); // needs cudaLaunchCooperativeKernel
}

__global__ void grid_sync_exit_kernel(float *x) {
    if (blockIdx.x == 1) return; // block 1 never reaches the barrier
    cg::this_grid().sync();
    x[threadIdx.x] = 1.f;
}

__global__ void shfl_partial_warp_kernel(float *x) { // launched with 16 threads: half a warp
    x[threadIdx.x] = __shfl_xor_sync(0xffffffffu, x[threadIdx.x], 1);
}

__global__ void shfl_divergent_kernel(float *x) { // only half the warp reaches the full-mask shuffle
    float v = x[threadIdx.x];
    if (threadIdx.x < 16) v = __shfl_xor_sync(0xffffffffu, v, 1);
    x[threadIdx.x] = v;
}

__global__ void shfl_outside_mask_kernel(float *x) { // reads lane 16 with a mask of lanes 0..15
    float v = x[threadIdx.x];
    if (threadIdx.x < 16) v = __shfl_sync(0x0000ffffu, v, 16, 32);
    x[threadIdx.x] = v;
}

__global__ void race_raw_kernel(const float *x, float *y) { // reads a neighbour's write, no barrier
    __shared__ float s[64];
    s[threadIdx.x] = x[threadIdx.x];
    y[threadIdx.x] = s[(threadIdx.x + 32) % 64]; // missing __syncthreads
}

__global__ void race_war_kernel(float *y) { // overwrites what another warp reads, no barrier
    __shared__ float s[64];
    s[threadIdx.x] = 1.f;
    __syncthreads();
    float v = s[63 - threadIdx.x];
    s[threadIdx.x] = v + 1.f; // missing __syncthreads before it
    y[threadIdx.x] = v;
}

__global__ void race_dynamic_kernel(float *y) { // dynamic shared memory, one slot written by all
    extern __shared__ float dyn[];
    dyn[threadIdx.x % 8] = (float)threadIdx.x;
    __syncthreads();
    y[threadIdx.x] = dyn[threadIdx.x % 8];
}

__global__ void misaligned_load_kernel(const float *x, float *y) { // a float4 at x + 1: 4-byte aligned
    float4 v = *(const float4 *)(x + 1 + 4 * threadIdx.x);
    y[threadIdx.x] = v.x + v.y + v.z + v.w;
}

// ---- host checks ------------------------------------------------------------------------------

static int test_coop(void) {
    int sms = 0, coop = 0, occ = 0;
    CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    CHECK(cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, 0));
    EXPECT(coop == 1, "cooperative launch attribute %d", coop);
    const char *want_sms = getenv("RC_EMU_SMS");
    if (want_sms) EXPECT(sms == atoi(want_sms), "SM count %d, RC_EMU_SMS=%s", sms, want_sms);
    const int threads = 256;
    CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, coop_sum_kernel, threads, 0));
    EXPECT(occ >= 1 && occ <= 32, "occupancy %d", occ);
    int blocks = occ * sms;
    if (blocks > 64) blocks = 64; // the persistent grid: at most what is resident
    int n = 10007, rounds = 3;
    float *h = (float *)malloc(n * sizeof(float)), *x, *partial, *out, res[3];
    double want = 0;
    for (int i = 0; i < n; i++) h[i] = (float)(i % 17) - 8.f, want += h[i];
    CHECK(cudaMalloc(&x, n * sizeof(float)));
    CHECK(cudaMalloc(&partial, blocks * sizeof(float)));
    CHECK(cudaMalloc(&out, rounds * sizeof(float)));
    CHECK(cudaMemcpy(x, h, n * sizeof(float), cudaMemcpyHostToDevice));
    void *args[] = {&x, &n, &partial, &out, &rounds};
    CHECK(cudaLaunchCooperativeKernel((void *)coop_sum_kernel, dim3(blocks), dim3(threads), args, 0, 0));
    CHECK(cudaDeviceSynchronize());
    CHECK(cudaMemcpy(res, out, sizeof res, cudaMemcpyDeviceToHost));
    for (int r = 0; r < rounds; r++)
        EXPECT(res[r] == (float)(want * (1 << r)), "round %d: %g, want %g", r, res[r], want * (1 << r));
    // a grid larger than what fits at once is refused, as on the device
    int too_many = occ * sms + 1;
    cudaError_t e = cudaLaunchCooperativeKernel((void *)coop_sum_kernel, dim3(too_many), dim3(threads), args, 0, 0);
    EXPECT(e == cudaErrorCooperativeLaunchTooLarge, "grid of %d blocks: %s", too_many, cudaGetErrorName(e));
    cudaGetLastError();
    cudaFree(x), cudaFree(partial), cudaFree(out), free(h);
    printf("ok: cooperative launch, %d blocks x %d threads on %d SMs (occupancy %d), %d rounds of grid.sync\n",
           blocks, threads, sms, occ, rounds);
    return 0;
}

// Double-buffered upload on a copy stream, compute on another, ordered by events. broken 1 leaves
// out the wait for the upload, 2 the synchronize before the host reads the result.
static int test_streams(int broken) {
    const int n = 1000, chunks = 4;
    cudaStream_t copy, comp;
    cudaEvent_t up[2], used[2];
    CHECK(cudaStreamCreateWithFlags(&copy, cudaStreamNonBlocking));
    CHECK(cudaStreamCreateWithFlags(&comp, cudaStreamNonBlocking));
    for (int b = 0; b < 2; b++) {
        CHECK(cudaEventCreateWithFlags(&up[b], cudaEventDisableTiming));
        CHECK(cudaEventCreateWithFlags(&used[b], cudaEventDisableTiming));
    }
    float *hin, *hout, *dx[2], *dy;
    CHECK(cudaMallocHost((void **)&hin, chunks * n * sizeof(float)));
    CHECK(cudaHostAlloc((void **)&hout, chunks * n * sizeof(float), cudaHostAllocDefault));
    for (int i = 0; i < chunks * n; i++) hin[i] = (float)i;
    CHECK(cudaMalloc(&dx[0], n * sizeof(float)));
    CHECK(cudaMalloc(&dx[1], n * sizeof(float)));
    CHECK(cudaMalloc(&dy, chunks * n * sizeof(float)));
    for (int c = 0; c < chunks; c++) {
        int b = c & 1;
        if (c >= 2) CHECK(cudaStreamWaitEvent(copy, used[b], 0)); // buffer b free again
        CHECK(cudaMemcpyAsync(dx[b], hin + c * n, n * sizeof(float), cudaMemcpyHostToDevice, copy));
        CHECK(cudaEventRecord(up[b], copy));
        if (broken != 1) CHECK(cudaStreamWaitEvent(comp, up[b], 0));
        scale_kernel<<<(n + 255) / 256, 256, 0, comp>>>(dy + c * n, dx[b], n, 3.f);
        CHECK(cudaGetLastError());
        CHECK(cudaEventRecord(used[b], comp));
    }
    CHECK(cudaMemcpyAsync(hout, dy, chunks * n * sizeof(float), cudaMemcpyDeviceToHost, comp));
    if (broken != 2) CHECK(cudaStreamSynchronize(comp));
    for (int i = 0; i < chunks * n; i++)
        EXPECT(hout[i] == 3.f * i, "element %d: %g, want %g (stream ordering)", i, hout[i], 3.f * i);
    CHECK(cudaEventQuery(up[0]));
    CHECK(cudaStreamQuery(copy));
    cudaEvent_t t0, t1;
    float ms = -1;
    CHECK(cudaEventCreate(&t0));
    CHECK(cudaEventCreate(&t1));
    CHECK(cudaEventRecord(t0, comp));
    CHECK(cudaEventRecord(t1, comp));
    CHECK(cudaEventSynchronize(t1));
    CHECK(cudaEventElapsedTime(&ms, t0, t1));
    EXPECT(ms >= 0.f, "elapsed %g", ms);
    EXPECT(cudaEventElapsedTime(&ms, up[0], up[1]) != cudaSuccess, "timing a DisableTiming event");
    cudaGetLastError();
    for (int b = 0; b < 2; b++) cudaEventDestroy(up[b]), cudaEventDestroy(used[b]);
    cudaEventDestroy(t0), cudaEventDestroy(t1);
    cudaFree(dx[0]), cudaFree(dx[1]), cudaFree(dy), cudaFreeHost(hin), cudaFreeHost(hout);
    cudaStreamDestroy(copy), cudaStreamDestroy(comp);
    printf("ok: double-buffered pinned uploads on a second stream, cudaStreamWaitEvent ordering\n");
    return 0;
}

static int test_warp_ops(void) {
    int *d, h[7 * 32];
    CHECK(cudaMalloc(&d, sizeof h));
    warp_ops_kernel<<<1, 32>>>(d);
    CHECK(cudaGetLastError());
    CHECK(cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost));
    unsigned ballot = 0;
    for (int l = 0; l < 32; l += 3) ballot |= 1u << l;
    for (int l = 0; l < 32; l++) {
        int seg = l & ~15;
        EXPECT(h[l] == 100 + seg + 3, "shfl lane %d: %d", l, h[l]);
        EXPECT(h[32 + l] == 100 + (l ^ 5), "shfl_xor lane %d: %d", l, h[32 + l]);
        EXPECT(h[64 + l] == 100 + (l - 2 >= seg ? l - 2 : l), "shfl_up lane %d: %d", l, h[64 + l]);
        EXPECT(h[96 + l] == 100 + (l + 3 < seg + 16 ? l + 3 : l), "shfl_down lane %d: %d", l, h[96 + l]);
        EXPECT((unsigned)h[128 + l] == ballot, "ballot lane %d: %x", l, h[128 + l]);
        EXPECT(h[160 + l] == 3, "all/any lane %d: %d", l, h[160 + l]);
        int want = l < 16 ? 100 + (l ^ 1) : 200 + (l ^ 2);
        EXPECT(h[192 + l] == want, "partial-mask shuffle lane %d: %d, want %d", l, h[192 + l], want);
    }
    cudaFree(d);
    printf("ok: shuffles (idx/xor/up/down, width 16), votes, partial masks\n");
    return 0;
}

static int test_order(void) {
    const int nb = 64;
    int *d, h[nb + 1];
    CHECK(cudaMalloc(&d, sizeof h));
    CHECK(cudaMemset(d, 0, sizeof h));
    order_kernel<<<nb, 32>>>(d, d + nb);
    CHECK(cudaGetLastError());
    CHECK(cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost));
    int seen[nb] = {0}, in_order = 1;
    for (int i = 0; i < nb; i++) {
        EXPECT(h[i] >= 0 && h[i] < nb && !seen[h[i]], "block order is not a permutation at %d", i);
        seen[h[i]] = 1;
        in_order &= h[i] == i;
    }
#ifdef RC_EMU // the emulator's block order; a device's is its own
    const char *seed = getenv("RC_EMU_SEED");
    if (seed && atoi(seed) == 0) EXPECT(in_order, "RC_EMU_SEED=0 must run blocks in order");
    else EXPECT(!in_order, "blocks ran in order: the shuffle is off");
#endif
    cudaFree(d);
    printf("ok: %d blocks ran in %s order\n", nb, in_order ? "launch" : "a shuffled");
    return 0;
}

static int test_shared(void) {
    float hx[128], hy[128], *x, *y;
    int *cnt, hc = -1;
    for (int i = 0; i < 128; i++) hx[i] = (float)i;
    CHECK(cudaMalloc(&x, sizeof hx));
    CHECK(cudaMalloc(&y, sizeof hy));
    CHECK(cudaMalloc(&cnt, sizeof(int)));
    CHECK(cudaMemcpy(x, hx, sizeof hx, cudaMemcpyHostToDevice));
    shared_ok_kernel<<<3, 128>>>(x, y, cnt);
    CHECK(cudaGetLastError());
    CHECK(cudaMemcpy(hy, y, sizeof hy, cudaMemcpyDeviceToHost));
    CHECK(cudaMemcpy(&hc, cnt, sizeof hc, cudaMemcpyDeviceToHost));
    for (int t = 0; t < 128; t++) {
        float want = hx[127 - t] + 2.f * hx[127 - (t ^ 1)];
        EXPECT(hy[t] == want, "thread %d: %g, want %g", t, hy[t], want);
    }
    EXPECT(hc == 128, "atomic count %d", hc);
    cudaFree(x), cudaFree(y), cudaFree(cnt);
    printf("ok: shared memory with barriers, atomics and __syncwarp: no race reported\n");
    return 0;
}

// ulps between two floats of the same sign
static long ulps(float a, float b) {
    int32_t ia, ib;
    memcpy(&ia, &a, 4), memcpy(&ib, &b, 4);
    return labs((long)ia - (long)ib);
}

static int test_fast_math(void) {
    enum { N = 1024 };
    static float hx[N], he[N], hr[N], hd[N];
    float htiny[2] = {1.f, 0.5f}, *x, *e, *r, *d, *tiny;
    for (int i = 0; i < N; i++) hx[i] = -60.f + 120.f * i / N + 0.001f * (i % 7);
    CHECK(cudaMalloc(&x, sizeof hx));
    CHECK(cudaMalloc(&e, sizeof he));
    CHECK(cudaMalloc(&r, sizeof hr));
    CHECK(cudaMalloc(&d, sizeof hd));
    CHECK(cudaMalloc(&tiny, sizeof htiny));
    CHECK(cudaMemcpy(x, hx, sizeof hx, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(tiny, htiny, sizeof htiny, cudaMemcpyHostToDevice));
    fast_math_kernel<<<N / 256, 256>>>(x, e, r, d, tiny);
    CHECK(cudaGetLastError());
    CHECK(cudaMemcpy(he, e, sizeof he, cudaMemcpyDeviceToHost));
    CHECK(cudaMemcpy(hr, r, sizeof hr, cudaMemcpyDeviceToHost));
    CHECK(cudaMemcpy(hd, d, sizeof hd, cudaMemcpyDeviceToHost));
    CHECK(cudaMemcpy(htiny, tiny, sizeof htiny, cudaMemcpyDeviceToHost));
    long worst_e = 0, off = 0;
    for (int i = 0; i < N; i++) {
        // the documented bounds, plus 1 ulp for the rounding of the double reference
        float re = (float)exp((double)hx[i]);
        long be = 2 + (long)floor(fabs(1.173 * hx[i])) + 1, ue = ulps(he[i], re);
        EXPECT(ue <= be, "__expf(%g) = %.9g, %ld ulp from %.9g (bound %ld)", hx[i], he[i], ue, re, be);
        float rr = (float)(1.0 / sqrt(fabs((double)hx[i]) + 0.5));
        EXPECT(ulps(hr[i], rr) <= 3, "rsqrtf: %ld ulp", ulps(hr[i], rr));
        float rd = (float)((double)hx[i] / (3.0 + i));
        EXPECT(rd == 0.f || ulps(hd[i], rd) <= 3, "__fdividef: %ld ulp", ulps(hd[i], rd));
        if (ue > worst_e) worst_e = ue;
        off += he[i] != re;
    }
    EXPECT(htiny[0] == 0.f, "a denormal fp32 result is %g, the device flushes it to zero", htiny[0]);
#ifdef RC_EMU
    EXPECT(off > N / 2 && worst_e >= 10, "fast-math emulation inactive: %ld of %d differ, worst %ld ulp", off, N, worst_e);
#endif
    cudaFree(x), cudaFree(e), cudaFree(r), cudaFree(d), cudaFree(tiny);
    printf("ok: __expf/rsqrtf/__fdividef within their documented ulp bounds (__expf worst %ld ulp, "
           "%ld of %d off the rounded value), denormal results flushed\n", worst_e, off, N);
    return 0;
}

static int run_broken(const char *mode) {
    float *x, *y;
    CHECK(cudaMalloc(&x, 1024 * sizeof(float)));
    CHECK(cudaMalloc(&y, 1024 * sizeof(float)));
    CHECK(cudaMemset(x, 0, 1024 * sizeof(float)));
    if (!strcmp(mode, "grid_sync_plain")) {
        grid_sync_plain_kernel<<<2, 32>>>(x);
    } else if (!strcmp(mode, "grid_sync_exit")) {
        void *args[] = {&x};
        CHECK(cudaLaunchCooperativeKernel((void *)grid_sync_exit_kernel, dim3(2), dim3(32), args, 0, 0));
    } else if (!strcmp(mode, "shfl_partial_warp")) {
        shfl_partial_warp_kernel<<<1, 16>>>(x);
    } else if (!strcmp(mode, "shfl_divergent")) {
        shfl_divergent_kernel<<<1, 32>>>(x);
    } else if (!strcmp(mode, "shfl_outside_mask")) {
        shfl_outside_mask_kernel<<<1, 32>>>(x);
    } else if (!strcmp(mode, "stream_missing_wait")) {
        return test_streams(1);
    } else if (!strcmp(mode, "stream_missing_sync")) {
        return test_streams(2);
    } else if (!strcmp(mode, "race_raw")) {
        race_raw_kernel<<<2, 64>>>(x, y);
    } else if (!strcmp(mode, "race_war")) {
        race_war_kernel<<<1, 64>>>(y);
    } else if (!strcmp(mode, "race_dynamic")) {
        race_dynamic_kernel<<<1, 64, 8 * sizeof(float)>>>(y);
    } else if (!strcmp(mode, "misaligned_load")) {
        misaligned_load_kernel<<<1, 32>>>(x, y);
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    cudaError_t e = cudaDeviceSynchronize();
    if (e == cudaSuccess) e = cudaGetLastError();
    printf("%s: %s\n", mode, cudaGetErrorName(e));
    return e == cudaSuccess ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: emu_selftest ok|grid_sync_plain|grid_sync_exit|shfl_partial_warp|"
                        "shfl_divergent|shfl_outside_mask|race_raw|race_war|race_dynamic|misaligned_load|\n"
                        "stream_missing_wait|stream_missing_sync (the last two with RC_EMU_STREAMS=lazy)\n");
        return 2;
    }
    if (strcmp(argv[1], "ok")) return run_broken(argv[1]);
    if (test_coop() || test_streams(0) || test_warp_ops() || test_order() || test_shared() ||
        test_fast_math())
        return 1;
    printf("all emulator self-tests passed\n");
    return 0;
}
