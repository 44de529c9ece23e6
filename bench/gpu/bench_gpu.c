// GPU benchmarks: the device-to-device copy bandwidth (the ceiling every memory-bound kernel is
// compared with), each CUDA kernel at Vicuna-7B shapes (time, bytes moved, GB/s, % of the copy
// bandwidth; TFLOP/s for the GEMMs), and end-to-end prefill / decode tok/s at batch 1, 16, 64,
// 256 on a Vicuna-7B-shaped model with random weights generated on the device, and the 30-step
// RE-Control loop (2- and 3-layer value MLP) at batch 1 and 16 through the fused kernel and the
// cuBLAS fallback, and one epoch of value training on the device (states/s). JSON to --out.
// Usage: bench_gpu [--out FILE] [--batches 1,16,64,256] [--prompt 256] [--new 128]
//                  [--dtype f16|bf16] [--no-kernels] [--no-control] [--no-train] [--no-e2e] [--tiny]
// --tiny: small shapes everywhere (a smoke test of the program itself; put it before --prompt,
// --new and --batches to override those).
#include <cjson/cJSON.h>
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/common.h"
#include "engine/backend.h"
#include "engine/forward_cuda.h"
#include "engine/generate.h"
#include "kernels/cuda/argmax.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/control.h"
#include "kernels/cuda/convert.h"
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/matmul.h"
#include "kernels/cuda/rmsnorm.h"
#include "kernels/cuda/rope.h"
#include "kernels/cuda/sample.h"
#include "kernels/cuda/swiglu.h"
#include "engine/value_mlp.h"
#include "base/safetensors.h"
#include "train/activations.h"
#include "train/train_cuda.h"

#define CK(call)                                                                                 \
    do {                                                                                         \
        cudaError_t e_ = (call);                                                                 \
        if (e_ != cudaSuccess) {                                                                 \
            fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
            exit(1);                                                                             \
        }                                                                                        \
    } while (0)
#define OK(call)                                                                                 \
    do {                                                                                         \
        if ((call) != 0) {                                                                       \
            fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #call, rc_last_error());       \
            exit(1);                                                                             \
        }                                                                                        \
    } while (0)

static double g_copy_gbps;
static int g_tiny; // --tiny: small shapes, a smoke test of this program (and the CPU emulation)
static cJSON *g_kernels;
static const char *g_out = "bench_gpu.json";
static cJSON *g_root;

static void save(void) {
    char *txt = cJSON_Print(g_root);
    if (rc_write_file_atomic(g_out, txt, strlen(txt)) != 0)
        fprintf(stderr, "cannot write %s: %s\n", g_out, rc_last_error());
    free(txt);
}

static int cmp_f(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

// Median milliseconds of one call of fn over reps timed groups of inner calls (events).
typedef void (*bench_fn)(void *ctx, int iter);
static double time_ms(bench_fn fn, void *ctx, int reps, int inner) {
    if (g_tiny) { // a smoke test: one timed call is enough
        reps = 3;
        inner = 1;
    }
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    for (int i = 0; i < 3; i++) fn(ctx, i);
    CK(cudaDeviceSynchronize());
    float *t = malloc(sizeof(float) * reps);
    int it = 0;
    for (int r = 0; r < reps; r++) {
        CK(cudaEventRecord(a, 0));
        for (int k = 0; k < inner; k++) fn(ctx, it++);
        CK(cudaEventRecord(b, 0));
        CK(cudaEventSynchronize(b));
        float ms;
        CK(cudaEventElapsedTime(&ms, a, b));
        t[r] = ms / inner;
    }
    qsort(t, reps, sizeof(float), cmp_f);
    double med = t[reps / 2];
    free(t);
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    return med;
}

static void report(const char *name, double ms, double bytes, double flops) {
    double gbps = bytes / (ms * 1e-3) / 1e9;
    printf("  %-58s %9.4f ms %9.1f GB/s %6.1f%% of copy", name, ms, gbps, 100 * gbps / g_copy_gbps);
    if (flops > 0) printf(" %8.1f TFLOP/s", flops / (ms * 1e-3) / 1e12);
    printf("\n");
    fflush(stdout);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddNumberToObject(o, "ms", ms);
    cJSON_AddNumberToObject(o, "bytes", bytes);
    cJSON_AddNumberToObject(o, "GBps", gbps);
    cJSON_AddNumberToObject(o, "pct_copy_bw", 100 * gbps / g_copy_gbps);
    if (flops > 0) cJSON_AddNumberToObject(o, "TFLOPps", flops / (ms * 1e-3) / 1e12);
    cJSON_AddItemToArray(g_kernels, o);
    save();
}

// ---- copy bandwidth -------------------------------------------------------------------------

typedef struct { void *a, *b; size_t n; } copy_ctx;
static void copy_fn(void *c, int it) {
    copy_ctx *x = c;
    CK(cudaMemcpyAsync(x->b, x->a, x->n, cudaMemcpyDeviceToDevice, 0));
}

static void measure_copy(void) {
    copy_ctx c = {NULL, NULL, g_tiny ? (size_t)4 << 20 : (size_t)2 << 30};
    CK(cudaMalloc(&c.a, c.n));
    CK(cudaMalloc(&c.b, c.n));
    CK(cudaMemset(c.a, 1, c.n));
    double ms = time_ms(copy_fn, &c, 10, 1);
    g_copy_gbps = 2.0 * c.n / (ms * 1e-3) / 1e9;
    printf("device-to-device copy: %.1f GB/s (read + write, %zu MiB buffers)\n", g_copy_gbps, c.n >> 20);
    cJSON_AddNumberToObject(g_root, "copy_bw_GBps", g_copy_gbps);
    cudaFree(c.a);
    cudaFree(c.b);
}

// ---- kernels ---------------------------------------------------------------------------------

// A weight pool larger than L2 several times over: each timed call reads the next slice.
typedef struct {
    rc_cuda_blas *blas;
    char *pool;
    size_t pool_bytes, wbytes;
    void *x;
    float *y;
    int n, in, out;
    rc_cuda_dtype dt;
} mm_ctx;
static void mm_fn(void *c, int it) {
    mm_ctx *m = c;
    size_t slots = m->pool_bytes / m->wbytes;
    const char *w = m->pool + (size_t)(it % (int)slots) * m->wbytes;
    OK(rc_cuda_matmul(m->blas, w, m->x, m->dt, m->y, m->n, m->in, m->out, 0.f, 0));
}

typedef struct { int kind; void *a, *b, *c, *d, *e, *f, *g; int n, p1, p2, p3, p4; rc_cuda_dtype dt; } k_ctx;
static void k_fn(void *c, int it) {
    k_ctx *k = c;
    switch (k->kind) {
    case 0: OK(rc_cuda_rmsnorm(k->a, k->b, k->c, k->dt, k->n, k->p1, 1e-5f, 0)); break;
    case 1: OK(rc_cuda_swiglu(k->a, (float *)k->a + k->p1, 2 * k->p1, k->c, k->dt, k->n, k->p1, 0)); break;
    case 2: OK(rc_cuda_argmax(k->a, k->b, k->n, k->p1, 0)); break;
    case 3: OK(rc_cuda_embedding(k->a, k->dt, k->b, k->c, k->n, k->p1, k->p2, 0)); break;
    case 4: // rope + kv store: a qkv, b slots, c pos, d cos, e sin, f q, g cache (k|v)
        OK(rc_cuda_rope_qkv_store(k->a, k->b, k->c, k->d, k->e, k->f, k->g,
                                  (char *)k->g + (size_t)k->p4 * 2, k->dt, k->n, k->p1, k->p1,
                                  k->p2, k->p3, 0));
        break;
    case 5: // decode attention: a q, b k cache, c v cache, d slots, e pos, f scratch, g out
        OK(rc_cuda_attention_decode(k->a, k->b, k->c, k->dt, k->d, k->e, k->f, k->p4, k->g, k->n,
                                    k->p1, k->p1, k->p2, k->p3, 0));
        break;
    case 6: // prefill attention: a q, b k cache, c v cache, d tiles, g out; p4 = n_tiles
        OK(rc_cuda_attention_prefill(k->a, k->b, k->c, k->dt, k->d, k->p4, k->g, k->p1, k->p1,
                                     k->p2, k->p3, 0));
        break;
    case 7: OK(rc_cuda_sample(k->a, k->b, k->c, k->n, k->p1, 0.8f, 40, 0.9f, 0)); break;
    }
}

static void *dmalloc(size_t n) {
    void *p;
    CK(cudaMalloc(&p, n));
    return p;
}
static void *drand(size_t n, rc_cuda_dtype dt, float scale, uint64_t seed) {
    void *p = dmalloc(n * rc_cuda_dtype_size(dt) + 64);
    OK(rc_cuda_fill_uniform(p, dt, n, scale, 0.f, seed, 0));
    return p;
}
static int *dints(const int *h, int n) {
    int *p = dmalloc((size_t)n * 4 + 16);
    CK(cudaMemcpy(p, h, (size_t)n * 4, cudaMemcpyHostToDevice));
    return p;
}

static void bench_kernels(rc_cuda_dtype dt) {
    const size_t es = rc_cuda_dtype_size(dt);
    printf("kernels (%s, Vicuna-7B shapes):\n", rc_cuda_dtype_name(dt));
    rc_cuda_blas blas;
    void *ws = dmalloc(32 << 20);
    OK(rc_cuda_blas_init(&blas, ws, 32 << 20));
    // matmuls: n = 1 through the GEMV and cuBLAS, then batches through cuBLAS
    static const int full[5][2] = {{12288, 4096}, {4096, 4096}, {22016, 4096}, {4096, 11008}, {32000, 4096}};
    static const int tiny[5][2] = {{384, 128}, {128, 128}, {704, 128}, {128, 352}, {1000, 128}};
    const int (*shapes)[2] = g_tiny ? tiny : full;
    const int NMAX = g_tiny ? 64 : 2048, INMAX = g_tiny ? 352 : 11008, OUTMAX = g_tiny ? 1000 : 32000;
    static const char *names[5] = {"qkv", "o_proj", "gate|up", "down", "lm_head"};
    size_t pool_bytes = g_tiny ? (size_t)8 << 20 : (size_t)1 << 30;
    char *pool = drand(pool_bytes / es, dt, 0.03f, 11);
    void *x = drand((size_t)NMAX * INMAX, dt, 1.f, 12);
    float *y = dmalloc((size_t)NMAX * OUTMAX * 4);
    for (int s = 0; s < 5; s++) {
        int out = shapes[s][0], in = shapes[s][1];
        mm_ctx m = {&blas, pool, pool_bytes, (size_t)out * in * es, x, y, 1, in, out, dt};
        char nm[128];
        for (int path = 1; path >= 0; path--) {
            blas.gemv_batch1 = path;
            snprintf(nm, sizeof nm, "matmul %s n=1 %s (%dx%d)", names[s], path ? "gemv" : "cublas", out, in);
            double ms = time_ms(mm_fn, &m, 30, 10);
            report(nm, ms, (double)out * in * es + in * es + out * 4.0, 2.0 * out * in);
        }
        blas.gemv_batch1 = 0;
        static const int ns_full[4] = {16, 64, 256, 2048}, ns_tiny[4] = {4, 16, 32, 64};
        const int *ns = g_tiny ? ns_tiny : ns_full;
        for (int b = 0; b < 4; b++) {
            m.n = ns[b];
            snprintf(nm, sizeof nm, "matmul %s n=%d cublas", names[s], ns[b]);
            double ms = time_ms(mm_fn, &m, 10, 3);
            report(nm, ms, (double)out * in * es + (double)ns[b] * in * es + (double)ns[b] * out * 4,
                   2.0 * ns[b] * out * in);
        }
    }
    cudaFree(pool);
    // element-wise and reductions
    const int d = g_tiny ? 128 : 4096, F = g_tiny ? 352 : 11008, V = g_tiny ? 1000 : 32000;
    const int hd = g_tiny ? 32 : 128, nh = d / hd, ML = g_tiny ? 64 : 512, NB = g_tiny ? 8 : 256;
    float *xf = drand((size_t)NMAX * F * 2, RC_CUDA_F32, 1.f, 13);
    void *yt = drand((size_t)NMAX * F, dt, 1.f, 14);
    float *w = drand(d, RC_CUDA_F32, 1.f, 15);
    for (int n = 1; n <= NB; n *= NB) {
        char nm[128];
        k_ctx k = {0, xf, w, yt, 0, 0, 0, 0, n, d, 0, 0, 0, dt};
        snprintf(nm, sizeof nm, "rmsnorm n=%d d=%d", n, d);
        report(nm, time_ms(k_fn, &k, 30, 20), (double)n * d * (4 + es) + d * 4, 0);
        k_ctx s = {1, xf, 0, yt, 0, 0, 0, 0, n, F, 0, 0, 0, dt};
        snprintf(nm, sizeof nm, "swiglu n=%d f=%d", n, F);
        report(nm, time_ms(k_fn, &s, 30, 20), (double)n * F * (8 + es), 0);
        int ids[256];
        for (int i = 0; i < 256; i++) ids[i] = (i * 7919) % V;
        int *did = dints(ids, 256);
        void *tab = drand((size_t)V * d, dt, 0.03f, 16);
        k_ctx em = {3, tab, did, xf, 0, 0, 0, 0, n, d, V, 0, 0, dt};
        snprintf(nm, sizeof nm, "embedding n=%d d=%d", n, d);
        report(nm, time_ms(k_fn, &em, 30, 20), (double)n * d * (4 + es), 0);
        cudaFree(tab);
        // rope + KV store: qkv (n, 3*4096) fp32; cache 1 slot-row per token
        int sl[256], ps[256];
        for (int i = 0; i < 256; i++) { sl[i] = i % NB; ps[i] = ML / 5; }
        int *dsl = dints(sl, 256), *dps = dints(ps, 256);
        float *cs = drand((size_t)ML * hd / 2, RC_CUDA_F32, 1.f, 17), *sn = drand((size_t)ML * hd / 2, RC_CUDA_F32, 1.f, 18);
        size_t cache_elems = (size_t)NB * ML * d;
        void *cache = dmalloc(2 * cache_elems * es);
        k_ctx rp = {4, xf, dsl, dps, cs, sn, yt, cache, n, nh, hd, ML, (int)0, dt};
        rp.p4 = 0; // v cache offset in elements below
        rp.g = cache;
        rp.p4 = (int)(cache_elems > 2147483647u ? 0 : cache_elems); // v half of the buffer
        snprintf(nm, sizeof nm, "rope+kv store n=%d (%d heads x %d)", n, nh, hd);
        report(nm, time_ms(k_fn, &rp, 30, 20), (double)n * 3 * d * 4 + (double)n * d * 4 + 2.0 * n * d * es, 0);
        // argmax
        float *lg = drand((size_t)256 * V, RC_CUDA_F32, 5.f, 19);
        k_ctx am = {2, lg, did, 0, 0, 0, 0, 0, n, V, 0, 0, 0, dt};
        snprintf(nm, sizeof nm, "argmax n=%d vocab=%d", n, V);
        report(nm, time_ms(k_fn, &am, 30, 20), (double)n * V * 4, 0);
        uint64_t st[256];
        for (int i = 0; i < 256; i++) st[i] = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1);
        uint64_t *dst = dmalloc(sizeof st);
        CK(cudaMemcpy(dst, st, sizeof st, cudaMemcpyHostToDevice));
        k_ctx sp = {7, lg, did, dst, 0, 0, 0, 0, n, V, 0, 0, 0, dt};
        snprintf(nm, sizeof nm, "sample top-k 40 top-p 0.9 n=%d vocab=%d", n, V);
        report(nm, time_ms(k_fn, &sp, 10, 5), (double)n * V * 4, 0);
        cudaFree(dst);
        cudaFree(lg);
        // decode attention: n queries, each its own slot with a context of ctx positions
        static const int ctxs_full[3] = {256, 1024, 4096}, ctxs_tiny[3] = {16, 40, 70};
        const int *ctxs = g_tiny ? ctxs_tiny : ctxs_full;
        for (int c = 0; c < 3; c++) {
            int ctx = ctxs[c], ml = ctx, nq = n > 64 ? 64 : n; // 64 x 4096 x 32 layers would not fit
            size_t ce = (size_t)nq * ml * d;
            void *kc = drand(ce, dt, 1.f, 20), *vc = drand(ce, dt, 1.f, 21);
            int s2[64], p2[64];
            for (int i = 0; i < nq; i++) { s2[i] = i; p2[i] = ctx - 1; }
            int *ds2 = dints(s2, nq), *dp2 = dints(p2, nq);
            int splits = rc_cuda_attention_decode_splits(nq, nh, ml, g_tiny ? 4 : 132);
            float *part = dmalloc(rc_cuda_attention_decode_scratch(nq, nh, hd, splits) * 4);
            k_ctx at = {5, xf, kc, vc, ds2, dp2, part, yt, nq, nh, hd, ml, splits, dt};
            snprintf(nm, sizeof nm, "attention decode n=%d ctx=%d (%d splits)", nq, ctx, splits);
            report(nm, time_ms(k_fn, &at, 20, 5), 2.0 * nq * ctx * d * es, 4.0 * nq * ctx * d);
            // prefill: one sequence of ctx tokens (ctx <= 1024)
            if (n == 1 && ctx <= 1024) {
                int *t = malloc(sizeof(int) * 4 * ctx), *ss = malloc(sizeof(int) * ctx), *pp = malloc(sizeof(int) * ctx);
                for (int i = 0; i < ctx; i++) { ss[i] = 0; pp[i] = i; }
                int nt = rc_cuda_attn_build_tiles(ctx, ss, pp, t);
                int *dt_ = dints(t, 4 * nt);
                float *qq = drand((size_t)ctx * d, RC_CUDA_F32, 1.f, 22);
                void *oo = dmalloc((size_t)ctx * d * es);
                k_ctx pf = {6, qq, kc, vc, dt_, 0, 0, oo, ctx, nh, hd, ml, nt, dt};
                snprintf(nm, sizeof nm, "attention prefill %d tokens, one sequence", ctx);
                report(nm, time_ms(k_fn, &pf, 10, 2), 2.0 * ctx * d * es + (double)ctx * d * (4 + es),
                       2.0 * ctx * ctx * d); // causal: half of 4 * ctx^2 * d
                cudaFree(dt_); cudaFree(qq); cudaFree(oo);
                free(t); free(ss); free(pp);
            }
            cudaFree(kc); cudaFree(vc); cudaFree(ds2); cudaFree(dp2); cudaFree(part);
        }
        cudaFree(dsl); cudaFree(dps); cudaFree(cs); cudaFree(sn); cudaFree(cache); cudaFree(did);
    }
    cudaFree(xf); cudaFree(yt); cudaFree(w); cudaFree(x); cudaFree(y);
    rc_cuda_blas_free(&blas);
    cudaFree(ws);
}

// ---- the RE-Control step -------------------------------------------------------------------------

typedef struct { cudaGraphExec_t g; cudaStream_t s; } graph_ctx;

// 30 steps of the control loop (value MLP d 4096 -> 4096 [-> 4096] -> 1 as in the paper), captured
// as one graph, at batch 1 and 16, through the fused persistent kernel (one cooperative launch)
// and the cuBLAS fallback (4 / 8 launches per step). "Weight bytes" = what each path must read
// per 30 steps: fused, 2 layers: W1 once per step and row group; 3 layers: W1 twice + W2 once;
// cuBLAS: every weight twice (forward, backward). Targets (issue 12, H200): 2 layers batch 1
// <= 0.2 ms, 3 layers batch 1 <= 0.6 ms; anchors 22.5 ms (autograd) and 0.83 ms (closed form,
// CUDA graph) for the 2-layer net at batch 1.
static void bench_control(rc_cuda_dtype dt) {
    printf("RE-Control step (%s, 30 steps, one graph):\n", rc_cuda_dtype_name(dt));
    cJSON *arr = cJSON_AddArrayToObject(g_root, "control");
    for (int L = 2; L <= 3; L++) {
        rc_value_mlp m;
        const int D = g_tiny ? 128 : 4096;
        int hidden[2] = {D, D};
        OK(rc_value_alloc(&m, D, L - 1, hidden));
        rc_value_init(&m, 3);
        rc_cuda_value v;
        const float *w[3] = {m.w[0], m.w[1], L == 3 ? m.w[2] : NULL};
        const float *b[3] = {m.b[0], m.b[1], L == 3 ? m.b[2] : NULL};
        OK(rc_cuda_value_init(&v, L, m.dims, w, b, dt, 16));
        double wb[3] = {0, 0, 0}, wbytes = 0;
        for (int l = 0; l < L; l++) wbytes += wb[l] = (double)m.dims[l + 1] * m.dims[l] * rc_cuda_dtype_size(dt);
        printf("  fused kernel: %s (grid %d / %d blocks, %d rows per group)\n", v.fused ? "yes" : v.fused_off,
               v.fused_grid[0], v.fused_grid[1], v.fused_nr);
        for (int B = 1; B <= 16; B *= 16)
            for (int path = 1; path >= 0; path--) {
                if (path && !v.fused) continue;
                float *x = drand((size_t)B * D, RC_CUDA_F32, 1.f, 30 + B);
                graph_ctx gc;
                CK(cudaStreamCreateWithFlags(&gc.s, cudaStreamNonBlocking));
                OK(rc_cuda_control_apply_path(&v, x, B, 0.5f, 30, path, gc.s)); // warm-up (cuBLAS heuristics)
                CK(cudaStreamSynchronize(gc.s));
                cudaGraph_t g;
                CK(cudaStreamBeginCapture(gc.s, cudaStreamCaptureModeThreadLocal));
                OK(rc_cuda_control_apply_path(&v, x, B, 0.5f, 30, path, gc.s));
                CK(cudaStreamEndCapture(gc.s, &g));
                CK(cudaGraphInstantiate(&gc.g, g, 0));
                cudaGraphDestroy(g);
                cudaEvent_t a, e2;
                CK(cudaEventCreate(&a));
                CK(cudaEventCreate(&e2));
                for (int i = 0; i < 3; i++) CK(cudaGraphLaunch(gc.g, gc.s));
                float t[20];
                for (int r = 0; r < 20; r++) {
                    CK(cudaEventRecord(a, gc.s));
                    CK(cudaGraphLaunch(gc.g, gc.s));
                    CK(cudaEventRecord(e2, gc.s));
                    CK(cudaEventSynchronize(e2));
                    CK(cudaEventElapsedTime(&t[r], a, e2));
                }
                qsort(t, 20, sizeof(float), cmp_f);
                int groups = path && B > 1 ? (B + v.fused_nr - 1) / v.fused_nr : 1;
                double per_step = path ? (L == 2 ? wb[0] : 2 * wb[0] + wb[1]) * groups : 2 * wbytes;
                double ms = t[10], bytes = 30 * per_step, gbps = bytes / (ms * 1e-3) / 1e9;
                double target = B == 1 ? (L == 2 ? 0.2 : 0.6) : 0;
                printf("  %d layers, batch %2d, %-6s: %.3f ms per 30 steps (%.0f GB/s of weight reads, %.1f%% of copy)%s\n",
                       L, B, path ? "fused" : "cuBLAS", ms, gbps, 100 * gbps / g_copy_gbps,
                       target > 0 ? (ms <= target ? "  [target met]" : "  [target missed]") : "");
                cJSON *o = cJSON_CreateObject();
                cJSON_AddNumberToObject(o, "layers", L);
                cJSON_AddNumberToObject(o, "batch", B);
                cJSON_AddNumberToObject(o, "steps", 30);
                cJSON_AddStringToObject(o, "path", path ? "fused" : "cublas");
                cJSON_AddNumberToObject(o, "ms", ms);
                cJSON_AddNumberToObject(o, "weight_bytes", bytes);
                cJSON_AddNumberToObject(o, "effective_GBps", gbps);
                if (target > 0) cJSON_AddNumberToObject(o, "target_ms", target);
                if (path) cJSON_AddNumberToObject(o, "grid", v.fused_grid[B > 1]);
                cJSON_AddItemToArray(arr, o);
                save();
                cudaGraphExecDestroy(gc.g);
                cudaEventDestroy(a);
                cudaEventDestroy(e2);
                cudaStreamDestroy(gc.s);
                cudaFree(x);
            }
        rc_cuda_value_free(&v);
        rc_value_free(&m);
    }
}

// ---- value training ------------------------------------------------------------------------------

// One epoch of value training on the device (the paper's 3-layer net d -> 4096 -> 4096 -> 1, bf16
// autocast-style and fp32, paper loss, batch 64 sequences, Adam) over a synthetic run directory
// written to TMPDIR: n_seq sequences of 16..80 states of width d (f16), as `extract` writes them.
// States per second over the epoch, host gather + upload included; the reference's PyTorch loop
// is timed by bench/gpu/value_reference.py on the same shapes (target: >= 5x its states/s).
static void bench_train(void) {
    const int d = g_tiny ? 64 : 4096, H = g_tiny ? 64 : 4096, n_seq = g_tiny ? 24 : 512, bs = g_tiny ? 8 : 64;
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/rc_bench_train_%d", tmp, (int)getpid());
    if (mkdir(dir, 0755) != 0) {
        fprintf(stderr, "bench_gpu: cannot create %s\n", dir);
        exit(1);
    }
    int64_t *off = malloc(sizeof(int64_t) * (n_seq + 1));
    uint64_t st = 12345;
    off[0] = 0;
    for (int i = 0; i < n_seq; i++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        off[i + 1] = off[i] + 16 + (int64_t)((st >> 33) % 65);
    }
    const int64_t rows = off[n_seq];
    uint16_t *hid = malloc((size_t)rows * d * 2);
    for (size_t i = 0; i < (size_t)rows * d; i++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        hid[i] = rc_f32_to_f16((float)((double)(st >> 40) / (double)(1 << 24) * 4.0 - 2.0));
    }
    rc_st_entry e[2] = {{.name = "hidden", .dtype = RC_DT_F16, .ndim = 2, .shape = {rows, d}, .data = hid},
                        {.name = "offsets", .dtype = RC_DT_I64, .ndim = 1, .shape = {n_seq + 1}, .data = off}};
    char nseq[32];
    snprintf(nseq, sizeof nseq, "%d", n_seq);
    const char *meta[] = {"first_seq", "0", "n_seq", nseq, NULL};
    snprintf(path, sizeof path, "%s/acts-00000.safetensors", dir);
    OK(rc_st_write(path, e, 2, meta));
    snprintf(path, sizeof path, "%s/rewards.jsonl", dir);
    FILE *f = fopen(path, "w");
    for (int i = 0; i < n_seq; i++) fprintf(f, "{\"index\": %d, \"reward\": %.3f}\n", i, (i % 7) / 7.0 - 0.4);
    fclose(f);
    free(hid);
    free(off);
    rc_acts a;
    OK(rc_acts_open(&a, dir));
    int64_t *ids = malloc(sizeof(int64_t) * n_seq);
    for (int i = 0; i < n_seq; i++) ids[i] = i;
    cJSON *arr = cJSON_AddArrayToObject(g_root, "train");
    printf("value training (d %d -> %d -> %d -> 1, %d sequences, %lld states, batch %d):\n", d, H, H, n_seq,
           (long long)rows, bs);
    for (int bf = 1; bf >= 0; bf--) {
        rc_value_mlp m;
        int hidden[2] = {H, H};
        OK(rc_value_alloc(&m, d, 2, hidden));
        rc_value_init(&m, 5);
        m.dtype = bf ? RC_VALUE_BF16 : RC_VALUE_FP32;
        rc_trainer_cuda *t;
        OK(rc_trainer_cuda_init(&t, &m, RC_BELLMAN_PAPER, 1e-4, bs, (int64_t)bs * a.max_len, 2048));
        double l, best = 1e30;
        for (int rep = 0; rep < (g_tiny ? 1 : 3); rep++) { // rep 0 warms up (cuBLAS heuristics, page cache)
            double t0 = rc_time_s();
            for (int i = 0; i < n_seq; i += bs) {
                int n = n_seq - i < bs ? n_seq - i : bs, nn = n_seq - i - n < bs ? n_seq - i - n : bs;
                OK(rc_trainer_cuda_batch(t, &a, n, ids + i, 1, &l, nn, nn > 0 ? ids + i + n : NULL));
            }
            double dt = rc_time_s() - t0;
            if (rep > 0 || g_tiny) best = dt < best ? dt : best;
        }
        printf("  %s: %.3f s per epoch, %.0f states/s (last loss %.4f)\n", bf ? "bf16" : "fp32", best, rows / best, l);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "dtype", bf ? "bf16" : "fp32");
        cJSON_AddNumberToObject(o, "d", d);
        cJSON_AddNumberToObject(o, "hidden", H);
        cJSON_AddNumberToObject(o, "states", (double)rows);
        cJSON_AddNumberToObject(o, "batch_seqs", bs);
        cJSON_AddNumberToObject(o, "epoch_s", best);
        cJSON_AddNumberToObject(o, "states_per_s", rows / best);
        cJSON_AddItemToArray(arr, o);
        save();
        rc_trainer_cuda_free(t);
        rc_value_free(&m);
    }
    free(ids);
    rc_acts_close(&a);
    snprintf(path, sizeof path, "%s/acts-00000.safetensors", dir);
    remove(path);
    snprintf(path, sizeof path, "%s/rewards.jsonl", dir);
    remove(path);
    rmdir(dir);
}

// ---- end to end --------------------------------------------------------------------------------

// The Vicuna-7B shape (or, with --tiny, a small one for smoke runs).
static rc_config bench_shape(void) {
    rc_config c;
    rc_config_preset("vicuna-7b", &c);
    snprintf(c.source, sizeof c.source, "random Vicuna-7B shape");
    if (g_tiny) {
        c.hidden_size = 128;
        c.intermediate_size = 352;
        c.num_hidden_layers = 2;
        c.num_attention_heads = c.num_key_value_heads = 4;
        c.head_dim = 32;
        c.vocab_size = 1000;
        snprintf(c.source, sizeof c.source, "random tiny shape");
    }
    return c;
}

static void bench_e2e(rc_cuda_dtype dt, const int *batches, int nb, int PL, int NEW) {
    rc_config c = bench_shape();
    cJSON *arr = cJSON_AddArrayToObject(g_root, "e2e");
    const size_t es = rc_cuda_dtype_size(dt);
    printf("end to end (%s, %s, random weights, prompt %d, %d new tokens, greedy):\n",
           rc_cuda_dtype_name(dt), c.source, PL, NEW);
    for (int bi = 0; bi < nb; bi++) {
        int B = batches[bi], ML = PL + NEW, MT = g_tiny ? 64 : 4096;
        rc_cuda_engine e;
        double t0 = rc_time_s();
        if (rc_cuda_engine_init_random(&e, &c, dt, B, ML, MT, 1234) != 0) {
            printf("  batch %d: %s\n", B, rc_last_error());
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "batch", B);
            cJSON_AddStringToObject(o, "error", rc_last_error());
            cJSON_AddItemToArray(arr, o);
            save();
            continue;
        }
        double t_init = rc_time_s() - t0;
        size_t n = (size_t)B * PL;
        int *tok = malloc(n * sizeof(int)), *sl = malloc(n * sizeof(int)), *ps = malloc(n * sizeof(int)),
            *orow = malloc(n * sizeof(int)), *first = malloc(B * sizeof(int)), *slots = malloc(B * sizeof(int)),
            *pos = malloc(B * sizeof(int)), *out = malloc((size_t)NEW * B * sizeof(int));
        uint64_t r = 88172645463325252ull;
        for (size_t i = 0; i < n; i++) {
            r ^= r << 13; r ^= r >> 7; r ^= r << 17;
            tok[i] = 3 + (int)(r % (uint64_t)(c.vocab_size - 3));
            sl[i] = (int)(i / PL);
            ps[i] = (int)(i % PL);
            orow[i] = ps[i] == PL - 1 ? sl[i] : -1;
        }
        for (int i = 0; i < B; i++) { slots[i] = i; pos[i] = PL; }
        // warm-up prefill (cuBLAS heuristics, module load), then the timed one
        OK(rc_cuda_forward(&e, (int)n, tok, sl, ps, orow, NULL));
        OK(rc_cuda_greedy_last(&e, first));
        CK(cudaDeviceSynchronize());
        t0 = rc_time_s();
        OK(rc_cuda_forward(&e, (int)n, tok, sl, ps, orow, NULL));
        OK(rc_cuda_greedy_last(&e, first));
        CK(cudaDeviceSynchronize());
        double t_prefill = rc_time_s() - t0;
        // decode: capture + warm-up, then NEW - 1 timed graph steps from position PL
        double t_dec[3] = {0, 0, 0};
        for (int path = 0; path < (B == 1 ? 3 : 1); path++) { // batch 1: fused GEMV, GEMV, cuBLAS
            e.blas.gemv_batch1 = path < 2;
            e.fuse_gemv = path == 0;
            e.graph_n = 0; // force a new capture with this matmul path
            OK(rc_cuda_decode_begin(&e, B, slots, pos, first));
            OK(rc_cuda_decode_run(&e, 4, NULL));
            OK(rc_cuda_decode_begin(&e, B, slots, pos, first));
            t0 = rc_time_s();
            OK(rc_cuda_decode_run(&e, NEW - 1, out));
            t_dec[path] = rc_time_s() - t0;
        }
        double best_dec = t_dec[0];
        for (int p = 1; p < 3; p++)
            if (t_dec[p] > 0 && t_dec[p] < best_dec) best_dec = t_dec[p];
        double step_ms = best_dec / (NEW - 1) * 1e3;
        double wbytes = (double)e.wbytes - (double)c.vocab_size * c.hidden_size * es; // embed: one row
        double kv_step = (double)B * (PL + NEW / 2.0) * c.num_hidden_layers * 2.0 * c.hidden_size * es;
        double gbps = (wbytes + kv_step) / (step_ms * 1e-3) / 1e9;
        double prefill_tps = n / t_prefill, decode_tps = B * (NEW - 1) / best_dec;
        double e2e_tps = (double)B * NEW / (t_prefill + best_dec * NEW / (NEW - 1));
        printf("  batch %3d: prefill %9.0f tok/s (%.3f s) | decode %8.1f tok/s, %.3f ms/step, %.0f GB/s = "
               "%.1f%% of copy | generate %.1f tok/s | init %.1f s%s\n",
               B, prefill_tps, t_prefill, decode_tps, step_ms, gbps, 100 * gbps / g_copy_gbps, e2e_tps,
               t_init, B == 1 ? "" : "");
        if (B == 1)
            printf("             batch-1 decode: fused GEMV %.3f ms/step, GEMV %.3f ms/step, cuBLAS %.3f ms/step\n",
                   t_dec[0] / (NEW - 1) * 1e3, t_dec[1] / (NEW - 1) * 1e3, t_dec[2] / (NEW - 1) * 1e3);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "batch", B);
        cJSON_AddNumberToObject(o, "prompt", PL);
        cJSON_AddNumberToObject(o, "new_tokens", NEW);
        cJSON_AddNumberToObject(o, "prefill_s", t_prefill);
        cJSON_AddNumberToObject(o, "prefill_tok_per_s", prefill_tps);
        cJSON_AddNumberToObject(o, "decode_ms_per_step", step_ms);
        cJSON_AddNumberToObject(o, "decode_tok_per_s", decode_tps);
        cJSON_AddNumberToObject(o, "decode_GBps", gbps);
        cJSON_AddNumberToObject(o, "decode_pct_copy_bw", 100 * gbps / g_copy_gbps);
        cJSON_AddNumberToObject(o, "generate_tok_per_s", e2e_tps);
        if (B == 1) {
            cJSON_AddNumberToObject(o, "decode_ms_per_step_gemv_fused", t_dec[0] / (NEW - 1) * 1e3);
            cJSON_AddNumberToObject(o, "decode_ms_per_step_gemv", t_dec[1] / (NEW - 1) * 1e3);
            cJSON_AddNumberToObject(o, "decode_ms_per_step_cublas", t_dec[2] / (NEW - 1) * 1e3);
        }
        cJSON_AddNumberToObject(o, "weight_bytes", (double)e.wbytes);
        cJSON_AddNumberToObject(o, "arena_bytes", (double)e.abytes);
        cJSON_AddItemToArray(arr, o);
        save();
        free(tok); free(sl); free(ps); free(orow); free(first); free(slots); free(pos); free(out);
        rc_cuda_engine_free(&e);
    }
}

// ---- extraction: the stage-1 workload through the backend and the generation loop -------------

typedef struct {
    int d;
    uint16_t *store; // bf16 copies of every captured state (what extract writes)
    size_t cap, used;
    long rows;
} ext_cap;

static int ext_capture(void *ud, int n, const float *hidden, const int *req, const int *step) {
    ext_cap *c = ud;
    size_t need = (size_t)n * c->d;
    if (c->used + need > c->cap) c->used = 0; // reuse: the bytes are converted, not kept
    for (size_t i = 0; i < need; i++) c->store[c->used + i] = rc_f32_to_bf16(hidden[i]);
    c->used += need;
    c->rows += n;
    return 0;
}

// New tokens per second of greedy rollouts with every step's post-norm state copied to the host
// and converted to bf16 (as `recontrol extract` does), batch B, prompts of PL random tokens, NEW
// new tokens each (no EOS), through rc_backend + rc_generate: the real stage-1 path.
static void bench_extract(rc_cuda_dtype dt, const int *batches, int nb, int PL, int NEW) {
    rc_config c = bench_shape();
    cJSON *arr = cJSON_AddArrayToObject(g_root, "extract");
    printf("extraction (%s, %s, prompt %d, %d new tokens, states captured to host as bf16):\n",
           rc_cuda_dtype_name(dt), c.source, PL, NEW);
    for (int bi = 0; bi < nb; bi++) {
        int B = batches[bi];
        rc_backend_opts o = {.device = RC_DEVICE_CUDA,
                             .wtype = dt == RC_CUDA_BF16 ? RC_WT_BF16 : RC_WT_F16,
                             .n_slots = B, .max_len = PL + NEW, .max_tokens = g_tiny ? 64 : 4096};
        rc_backend *be = NULL;
        cJSON *row = cJSON_CreateObject();
        cJSON_AddNumberToObject(row, "batch", B);
        cJSON_AddItemToArray(arr, row);
        if (rc_backend_open_random(&be, &c, &o, 4321) != 0) {
            printf("  batch %d: %s\n", B, rc_last_error());
            cJSON_AddStringToObject(row, "error", rc_last_error());
            save();
            continue;
        }
        int **ps = malloc(sizeof(int *) * B), *lens = malloc(sizeof(int) * B);
        uint64_t r = 0x2545F4914F6CDD1Dull;
        for (int i = 0; i < B; i++) {
            ps[i] = malloc(sizeof(int) * PL);
            lens[i] = PL;
            for (int j = 0; j < PL; j++) {
                r ^= r << 13; r ^= r >> 7; r ^= r << 17;
                ps[i][j] = 3 + (int)(r % (uint64_t)(c.vocab_size - 3));
            }
        }
        ext_cap cap = {.d = c.hidden_size};
        cap.cap = (size_t)B * c.hidden_size * 8;
        cap.store = malloc(cap.cap * sizeof(uint16_t));
        rc_gen_params gp = {.max_new_tokens = NEW, .stop_at_eos = 0, .control = -1,
                            .sample = {.temperature = 0, .top_p = 1}};
        rc_gen_hooks hk = {.capture = ext_capture, .ud = &cap};
        rc_gen_output *out = calloc(B, sizeof *out);
        double best = 0;
        for (int rep = 0; rep < 2; rep++) { // the first run warms up (cuBLAS, module load)
            cap.rows = 0;
            double t0 = rc_time_s();
            OK(rc_generate(be, B, (const int *const *)ps, lens, &gp, &hk, out));
            double t = rc_time_s() - t0;
            rc_gen_output_free(out, B);
            if (rep == 1 || g_tiny) best = t;
        }
        double tps = (double)B * NEW / best;
        printf("  batch %3d: %9.1f new tok/s with capture (%.2f s for %d x %d tokens, %ld states)\n", B,
               tps, best, B, NEW, cap.rows);
        cJSON_AddNumberToObject(row, "prompt", PL);
        cJSON_AddNumberToObject(row, "new_tokens", NEW);
        cJSON_AddNumberToObject(row, "seconds", best);
        cJSON_AddNumberToObject(row, "new_tok_per_s", tps);
        cJSON_AddNumberToObject(row, "states", (double)cap.rows);
        save();
        for (int i = 0; i < B; i++) free(ps[i]);
        free(ps), free(lens), free(out), free(cap.store);
        rc_backend_close(be);
    }
}

int main(int argc, char **argv) {
    int batches[8] = {1, 16, 64, 256}, nb = 4, PL = 256, NEW = 128, kernels = 1, e2e = 1, control = 1, train = 1;
    int xb[8] = {32, 64, 128, 256}, nxb = 4;
    rc_cuda_dtype dt = RC_CUDA_F16;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc) g_out = argv[++i];
        else if (!strcmp(argv[i], "--prompt") && i + 1 < argc) PL = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--new") && i + 1 < argc) NEW = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc) dt = !strcmp(argv[++i], "bf16") ? RC_CUDA_BF16 : RC_CUDA_F16;
        else if (!strcmp(argv[i], "--no-kernels")) kernels = 0;
        else if (!strcmp(argv[i], "--no-e2e")) e2e = 0;
        else if (!strcmp(argv[i], "--no-control")) control = 0;
        else if (!strcmp(argv[i], "--extract") && i + 1 < argc) {
            nxb = 0;
            for (char *s = strtok(argv[++i], ","); s && nxb < 8; s = strtok(NULL, ",")) xb[nxb++] = atoi(s);
        }
        else if (!strcmp(argv[i], "--no-train")) train = 0;
        else if (!strcmp(argv[i], "--tiny")) {
            g_tiny = 1;
            PL = 16;
            NEW = 8;
            nb = 2;
            batches[0] = 1;
            batches[1] = 4;
            nxb = 1;
            xb[0] = 4;
        }
        else if (!strcmp(argv[i], "--batches") && i + 1 < argc) {
            nb = 0;
            for (char *s = strtok(argv[++i], ","); s && nb < 8; s = strtok(NULL, ",")) batches[nb++] = atoi(s);
        } else {
            printf("usage: bench_gpu [--out FILE] [--batches 1,16,64,256] [--prompt 256] [--new 128]\n"
                   "                 [--dtype f16|bf16] [--no-kernels] [--no-control] [--no-train] [--no-e2e]\n"
                   "                 [--extract 32,64,128,256 | --extract 0] [--tiny]\n");
            return strcmp(argv[i], "--help") && strcmp(argv[i], "-h") ? 2 : 0;
        }
    }
    if (PL < 1 || NEW < 2) {
        fprintf(stderr, "bench_gpu: --prompt must be >= 1 and --new >= 2\n");
        return 2;
    }
    char why[256];
    if (!rc_cuda_device_usable(why, sizeof why)) { // (also links the backend into this program)
        printf("skipped: no CUDA device (%s)\n", why);
        return 0;
    }
    struct cudaDeviceProp p;
    CK(cudaGetDeviceProperties(&p, 0));
    g_root = cJSON_CreateObject();
    char when[64];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    cJSON_AddStringToObject(g_root, "gpu", p.name);
    cJSON_AddNumberToObject(g_root, "sms", p.multiProcessorCount);
    cJSON_AddNumberToObject(g_root, "mem_GiB", p.totalGlobalMem / 1073741824.0);
    cJSON_AddNumberToObject(g_root, "l2_MiB", p.l2CacheSize / 1048576.0);
    cJSON_AddStringToObject(g_root, "date", when);
    cJSON_AddStringToObject(g_root, "dtype", rc_cuda_dtype_name(dt));
    const char *commit = getenv("RC_COMMIT");
    cJSON_AddStringToObject(g_root, "commit", commit ? commit : "unknown");
    printf("%s, %d SMs, %.1f GiB, L2 %.0f MiB\n", p.name, p.multiProcessorCount,
           p.totalGlobalMem / 1073741824.0, p.l2CacheSize / 1048576.0);
    measure_copy();
    g_kernels = cJSON_AddArrayToObject(g_root, "kernels");
    save();
    if (kernels) bench_kernels(dt);
    if (control) bench_control(dt);
    if (train) bench_train();
    if (e2e) bench_e2e(dt, batches, nb, PL, NEW);
    if (nxb > 0 && xb[0] > 0) bench_extract(dt, xb, nxb, PL, NEW);
    save();
    cJSON_Delete(g_root);
    return 0;
}
