// The CPU emulation behind emu.h: fibers (ucontext) for CUDA threads, a scheduler that releases
// __syncthreads and warp-shuffle waits, launch checks (block size, grid limits, dynamic shared
// memory above 48 KiB only after cudaFuncSetAttribute), stream capture into replayable graphs,
// host-memory "device" allocations and a plain column-major cublasGemmEx.
#include <time.h>
#include <ucontext.h>

#include <map>
#include <stdio.h>
#include <stdlib.h>
#include <vector>

#include "emu.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define EMU_ASAN 1
#endif

namespace rc_emu {

enum { READY, WAIT_BLOCK, WAIT_WARP, DONE };
struct fiber {
    ucontext_t ctx;
    char *stack;
    int state, lane, warp, parity;
    uint3_ tid;
};

uint3_ g_block, g_grid_dim, g_block_dim;
static const size_t STACK = 256 << 10;
static std::vector<fiber> g_f;
static fiber *g_cur;
static ucontext_t g_sched;
static std::function<void()> *g_body;
static std::vector<char> g_dyn;
static uint32_t g_slot[32][2][32]; // [warp][parity][lane] shuffle values
static cudaError_t g_last = cudaSuccess;
static std::map<const void *, int> g_smem_limit;
static std::vector<std::function<void()>> *g_capture;
#ifdef EMU_ASAN
static void *g_fake_stack;
#endif

uint3_ &thread_idx() { return g_cur->tid; }
void *dyn_smem() { return g_dyn.data(); }

static void yield_to_sched() {
#ifdef EMU_ASAN
    void *fs = nullptr;
    __sanitizer_start_switch_fiber(&fs, nullptr, 0);
#endif
    swapcontext(&g_cur->ctx, &g_sched);
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(fs, nullptr, nullptr);
#endif
}

void syncthreads() {
    g_cur->state = WAIT_BLOCK;
    yield_to_sched();
}

static uint32_t shfl_bits(uint32_t v, int arg, bool is_xor) {
    fiber *f = g_cur;
    int p = f->parity;
    g_slot[f->warp][p][f->lane] = v;
    f->state = WAIT_WARP;
    yield_to_sched();
    int src = is_xor ? (f->lane ^ arg) : (arg & 31);
    f->parity ^= 1;
    return g_slot[f->warp][p][src];
}
float shfl(float v, int a, bool x) {
    uint32_t u;
    memcpy(&u, &v, 4);
    u = shfl_bits(u, a, x);
    memcpy(&v, &u, 4);
    return v;
}
int shfl_i(int v, int a, bool x) { return (int)shfl_bits((uint32_t)v, a, x); }

static void entry() {
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
    (*g_body)();
    g_cur->state = DONE;
#ifdef EMU_ASAN
    __sanitizer_start_switch_fiber(nullptr, nullptr, 0);
#endif
    // returning resumes g_sched through uc_link
}

static void fail(const char *what) {
    fprintf(stderr, "CUDA emulator: %s (block %u,%u,%u)\n", what, g_block.x, g_block.y, g_block.z);
    abort();
}

static void run_block(int nt, std::function<void()> &body) {
    if ((int)g_f.size() < nt) {
        size_t old = g_f.size();
        g_f.resize(nt);
        for (size_t i = old; i < (size_t)nt; i++) g_f[i].stack = (char *)malloc(STACK);
    }
    g_body = &body;
    for (int i = 0; i < nt; i++) {
        fiber &f = g_f[i];
        f.state = READY;
        f.lane = i & 31;
        f.warp = i >> 5;
        f.parity = 0;
        f.tid.x = i % g_block_dim.x;
        f.tid.y = (i / g_block_dim.x) % g_block_dim.y;
        f.tid.z = i / (g_block_dim.x * g_block_dim.y);
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = f.stack;
        f.ctx.uc_stack.ss_size = STACK;
        f.ctx.uc_link = &g_sched;
        makecontext(&f.ctx, entry, 0);
    }
    for (;;) {
        for (int i = 0; i < nt; i++) {
            if (g_f[i].state != READY) continue;
            g_cur = &g_f[i];
#ifdef EMU_ASAN
            void *fs = nullptr;
            __sanitizer_start_switch_fiber(&fs, g_cur->stack, STACK);
#endif
            swapcontext(&g_sched, &g_cur->ctx);
#ifdef EMU_ASAN
            __sanitizer_finish_switch_fiber(fs, nullptr, nullptr);
#endif
        }
        int done = 0, wb = 0;
        for (int i = 0; i < nt; i++) {
            done += g_f[i].state == DONE;
            wb += g_f[i].state == WAIT_BLOCK;
        }
        if (done == nt) return;
        // warp shuffles: released when every lane of the warp is there (full masks only); other
        // warps may meanwhile wait at __syncthreads, as on the device
        int released = 0;
        for (int w = 0; w * 32 < nt; w++) {
            int n_wait = 0, n_block = 0, n_lanes = 0;
            for (int i = w * 32; i < nt && i < w * 32 + 32; i++) {
                n_lanes++;
                n_wait += g_f[i].state == WAIT_WARP;
                n_block += g_f[i].state == WAIT_BLOCK;
            }
            if (n_wait == 0) continue;
            if (n_wait + n_block == n_lanes && n_block > 0)
                fail("lanes of one warp split between a warp shuffle and __syncthreads");
            if (n_wait != n_lanes || n_lanes != 32)
                fail("a warp shuffle with a full mask was reached by only part of the warp");
            for (int i = w * 32; i < w * 32 + 32; i++) g_f[i].state = READY;
            released++;
        }
        if (released) continue;
        if (wb + done == nt) {
            for (int i = 0; i < nt; i++)
                if (g_f[i].state == WAIT_BLOCK) g_f[i].state = READY;
            continue;
        }
        fail("deadlock: no thread can proceed");
    }
}

static void run_grid(const launch_cfg &c, std::function<void()> &body) {
    g_grid_dim = uint3_{c.grid.x, c.grid.y, c.grid.z};
    g_block_dim = uint3_{c.block.x, c.block.y, c.block.z};
    int nt = (int)(c.block.x * c.block.y * c.block.z);
    g_dyn.assign(c.smem + 16, (char)0xA5);
    for (unsigned z = 0; z < c.grid.z; z++)
        for (unsigned y = 0; y < c.grid.y; y++)
            for (unsigned x = 0; x < c.grid.x; x++) {
                g_block = uint3_{x, y, z};
                run_block(nt, body);
            }
}

void submit(const launch_cfg &c, const void *fn, std::function<void()> body) {
    unsigned nt = c.block.x * c.block.y * c.block.z;
    if (nt == 0 || nt > 1024 || c.grid.x == 0 || c.grid.y == 0 || c.grid.z == 0 ||
        c.grid.y > 65535 || c.grid.z > 65535) {
        g_last = cudaErrorInvalidConfiguration;
        return;
    }
    int limit = 48 << 10;
    auto it = g_smem_limit.find(fn);
    if (it != g_smem_limit.end() && it->second > limit) limit = it->second;
    if (c.smem > (size_t)limit) {
        fprintf(stderr, "CUDA emulator: launch with %zu bytes of dynamic shared memory above the "
                        "limit %d\n", c.smem, limit);
        g_last = cudaErrorInvalidValue;
        return;
    }
    launch_cfg cc = c;
    if (g_capture) {
        g_capture->push_back([cc, body]() mutable { run_grid(cc, body); });
        return;
    }
    run_grid(cc, body);
}

} // namespace rc_emu

using namespace rc_emu;

struct rc_emu_graph {
    std::vector<std::function<void()>> ops;
};

extern "C" {

const char *cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : "emulated CUDA error"; }
const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    default: return "cudaError?";
    }
}
cudaError_t cudaGetLastError(void) {
    cudaError_t e = g_last;
    g_last = cudaSuccess;
    return e;
}
cudaError_t cudaGetDeviceCount(int *n) { *n = getenv("RC_EMU_NO_DEVICE") ? 0 : 1; return cudaSuccess; }
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int) {
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "CPU emulation");
    p->totalGlobalMem = (size_t)8 << 30;
    p->multiProcessorCount = 4;
    p->major = 9;
    p->minor = 0;
    p->l2CacheSize = 1 << 20;
    return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr, int) { *v = 4; return cudaSuccess; }
cudaError_t cudaMemGetInfo(size_t *f, size_t *t) { *f = *t = (size_t)8 << 30; return cudaSuccess; }
cudaError_t cudaMalloc(void **p, size_t n) {
    *p = malloc(n ? n : 1);
    if (!*p) return cudaErrorMemoryAllocation;
    memset(*p, 0xff, n); // poison: NaN for every float type
    return cudaSuccess;
}
cudaError_t cudaMallocHost(void **p, size_t n) { return cudaMalloc(p, n); }
cudaError_t cudaFree(void *p) { free(p); return cudaSuccess; }
cudaError_t cudaFreeHost(void *p) { free(p); return cudaSuccess; }
cudaError_t cudaMemcpy(void *d, const void *s, size_t n, cudaMemcpyKind) {
    if (g_capture) return cudaErrorStreamCaptureUnsupported;
    memmove(d, s, n);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind, cudaStream_t) {
    if (g_capture) {
        g_capture->push_back([=]() { memmove(d, s, n); });
        return cudaSuccess;
    }
    memmove(d, s, n);
    return cudaSuccess;
}
cudaError_t cudaMemset(void *p, int v, size_t n) {
    if (g_capture) return cudaErrorStreamCaptureUnsupported;
    memset(p, v, n);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t) {
    if (g_capture) {
        g_capture->push_back([=]() { memset(p, v, n); });
        return cudaSuccess;
    }
    memset(p, v, n);
    return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void) { return g_capture ? cudaErrorStreamCaptureUnsupported : cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return g_capture ? cudaErrorStreamCaptureUnsupported : cudaSuccess; }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) { *s = (cudaStream_t)malloc(8); return cudaSuccess; }
cudaError_t cudaStreamDestroy(cudaStream_t s) { free(s); return cudaSuccess; }
cudaError_t cudaStreamBeginCapture(cudaStream_t, cudaStreamCaptureMode) {
    if (g_capture) return cudaErrorStreamCaptureUnsupported;
    g_capture = new std::vector<std::function<void()>>();
    return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t, cudaGraph_t *g) {
    if (!g_capture) return cudaErrorInvalidValue;
    rc_emu_graph *gr = new rc_emu_graph;
    gr->ops.swap(*g_capture);
    delete g_capture;
    g_capture = nullptr;
    *g = gr;
    return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *e, cudaGraph_t g, unsigned long long) {
    rc_emu_graph *x = new rc_emu_graph(*g);
    *e = x;
    return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t g) { delete g; return cudaSuccess; }
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) { delete e; return cudaSuccess; }
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t) {
    for (auto &op : e->ops) op();
    return cudaSuccess;
}
cudaError_t rc_emu_func_set_smem(const void *fn, int bytes) {
    if (bytes > 227 << 10) return cudaErrorInvalidValue;
    g_smem_limit[fn] = bytes;
    return cudaSuccess;
}

struct rc_emu_event { double t; };
static double now_s() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}
cudaError_t cudaEventCreate(cudaEvent_t *e) { *e = new rc_emu_event{0}; return cudaSuccess; }
cudaError_t cudaEventDestroy(cudaEvent_t e) { delete e; return cudaSuccess; }
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) { e->t = now_s(); return cudaSuccess; }
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
    *ms = (float)((b->t - a->t) * 1e3);
    return cudaSuccess;
}

struct rc_emu_blas { int dummy; };
cublasStatus_t cublasCreate(cublasHandle_t *h) { *h = new rc_emu_blas; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasDestroy(cublasHandle_t h) { delete h; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetWorkspace(cublasHandle_t, void *, size_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetStream(cublasHandle_t, cudaStream_t) { return CUBLAS_STATUS_SUCCESS; }
const char *cublasGetStatusName(cublasStatus_t s) { return s ? "CUBLAS_STATUS_NOT_SUPPORTED" : "CUBLAS_STATUS_SUCCESS"; }
const char *cublasGetStatusString(cublasStatus_t s) { return s ? "not supported" : "success"; }

static float elem(const void *p, cudaDataType_t t, size_t i) {
    if (t == CUDA_R_32F) return ((const float *)p)[i];
    uint16_t h = ((const uint16_t *)p)[i];
    return t == CUDA_R_16F ? rc_f16_to_f32(h) : rc_bf16_to_f32(h);
}

cublasStatus_t cublasGemmEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m,
                            int n, int k, const void *alpha, const void *A, cudaDataType_t at,
                            int lda, const void *B, cudaDataType_t bt, int ldb, const void *beta,
                            void *C, cudaDataType_t ct, int ldc, cublasComputeType_t,
                            cublasGemmAlgo_t) {
    if (ct != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    float al = *(const float *)alpha, be = *(const float *)beta;
    auto op = [=]() {
        float *c = (float *)C;
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                float acc = 0.f;
                for (int l = 0; l < k; l++) {
                    float a = ta == CUBLAS_OP_N ? elem(A, at, i + (size_t)l * lda) : elem(A, at, l + (size_t)i * lda);
                    float b = tb == CUBLAS_OP_N ? elem(B, bt, l + (size_t)j * ldb) : elem(B, bt, j + (size_t)l * ldb);
                    acc += a * b;
                }
                size_t o = i + (size_t)j * ldc;
                c[o] = be != 0.f ? al * acc + be * c[o] : al * acc;
            }
    };
    if (g_capture) g_capture->push_back(op);
    else op();
    return CUBLAS_STATUS_SUCCESS;
}

} // extern "C"
