// A CPU emulation of the slice of the CUDA runtime, cuBLAS and device code that recontrol uses,
// for checking kernel logic on machines without a GPU (tests/gpu/emu/run_emulated.sh). Every CUDA
// thread runs as a fiber; __syncthreads, warp collectives and grid barriers are scheduling points.
// "Device" memory is host memory, so the runner is built with AddressSanitizer (a memcheck
// stand-in). Not a performance model.
//
// Supported API (anything else fails to compile, by design):
//  launches   kernel<<<grid, block, smem, stream>>>(...) (translate.py rewrites it): blocks run one
//             at a time, in a seeded shuffled order (RC_EMU_SEED, 0 = in order);
//             cudaLaunchCooperativeKernel(kernel, grid, block, args, smem, stream): every block of
//             the grid runs at once as fibers, so cooperative_groups::this_grid().sync() works; the
//             grid must fit cudaOccupancyMaxActiveBlocksPerMultiprocessor x SMs (else
//             cudaErrorCooperativeLaunchTooLarge); grid.sync() in a <<<>>> launch is an error.
//  device     cudaGetDeviceCount and cudaSetDevice (RC_EMU_DEVICES identical devices, default 1),
//             cudaGetDeviceProperties, cudaDeviceGetAttribute (SM count from RC_EMU_SMS, default 4;
//             cooperative launch 1; H200 limits otherwise), cudaMemGetInfo,
//             cudaOccupancyMaxActiveBlocksPerMultiprocessor (H200 per-SM limits, 64 registers a
//             thread assumed; RC_EMU_MAX_BLOCKS_PER_SM overrides), cudaFuncSetAttribute (smem),
//             the persisting-L2 calls (cudaDeviceSetLimit, cudaStreamSetAttribute with an access
//             policy window: arguments checked, no cache modelled).
//  memory     cudaMalloc/Free (0xff-poisoned), cudaMallocAsync/FreeAsync, cudaMallocHost/
//             cudaHostAlloc/FreeHost (pinned), cudaHostRegister/Unregister, cudaMemcpy,
//             cudaMemcpyAsync, cudaMemset(Async).
//  counters   RC_EMU_STATS=FILE ("%p": the pid) writes at exit, as JSON, how often each API was
//             called: launches (eager, per kernel; captured ones as graph nodes), graph launches and
//             nodes replayed, allocations, copies by direction (async ones to pageable memory
//             apart: they block), synchronizations, and host_waits, their sum of blocking calls.
//  streams    cudaStreamCreate(WithFlags), Destroy, Synchronize, Query, WaitEvent; cudaEventCreate
//             (WithFlags), Record (on any stream), Synchronize, Query, ElapsedTime, Destroy; stream
//             capture into graphs, cudaGraphInstantiate/Launch/Destroy. Work runs when issued, or
//             with RC_EMU_STREAMS=lazy only when waited for (stream/event synchronize, a synchronous
//             copy, cudaStreamWaitEvent, cudaFree), so a missing wait reads stale data.
//  device code __syncthreads, __shfl(_xor|_up|_down)_sync, __ballot/__all/__any_sync, __syncwarp
//             (every warp collective checks its mask: all named lanes must arrive, with the same
//             mask), __shared__ (per block), extern __shared__ (dynamic), atomics, __ldg, __ldcs,
//             __expf, rsqrtf, half/bfloat16 conversions, cooperative_groups::this_grid() and
//             this_thread_block() with sync().
//  cuBLAS     cublasCreate/Destroy/SetStream/SetWorkspace, cublasGemmEx (fp32 output; the
//             TF32 compute type runs in fp32).
#pragma once
#define RC_EMU 1
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDeviceFunction = 98,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorNotReady = 600,
    cudaErrorIllegalAddress = 700,
    cudaErrorMisalignedAddress = 716,
    cudaErrorLaunchFailure = 719,
    cudaErrorCooperativeLaunchTooLarge = 720,
    cudaErrorStreamCaptureUnsupported = 900,
} cudaError_t;
typedef enum {
    cudaMemcpyHostToHost = 0, cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3, cudaMemcpyDefault = 4
} cudaMemcpyKind;
typedef struct rc_emu_stream *cudaStream_t;
typedef struct rc_emu_graph *cudaGraph_t;
typedef struct rc_emu_graph *cudaGraphExec_t;
typedef struct rc_emu_event *cudaEvent_t;
#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01
#define cudaEventDefault 0x00
#define cudaEventBlockingSync 0x01
#define cudaEventDisableTiming 0x02
#define cudaHostAllocDefault 0x00
#define cudaHostAllocPortable 0x01
#define cudaHostAllocMapped 0x02
#define cudaHostAllocWriteCombined 0x04
#define cudaHostRegisterDefault 0x00
#define cudaHostRegisterPortable 0x01
typedef enum { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1, cudaStreamCaptureModeRelaxed = 2 } cudaStreamCaptureMode;
typedef enum {
    cudaDevAttrMaxThreadsPerBlock = 1,
    cudaDevAttrWarpSize = 10,
    cudaDevAttrMultiProcessorCount = 16,
    cudaDevAttrL2CacheSize = 38,
    cudaDevAttrMaxThreadsPerMultiProcessor = 39,
    cudaDevAttrComputeCapabilityMajor = 75,
    cudaDevAttrComputeCapabilityMinor = 76,
    cudaDevAttrMaxSharedMemoryPerMultiprocessor = 81,
    cudaDevAttrCooperativeLaunch = 95,
    cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
    cudaDevAttrMaxBlocksPerMultiprocessor = 106,
    cudaDevAttrMaxPersistingL2CacheSize = 108,
    cudaDevAttrMaxAccessPolicyWindowSize = 109,
} cudaDeviceAttr;
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem, sharedMemPerBlock, sharedMemPerMultiprocessor, sharedMemPerBlockOptin;
    int multiProcessorCount, major, minor, l2CacheSize, warpSize, maxThreadsPerBlock;
    int maxThreadsPerMultiProcessor, maxBlocksPerMultiProcessor, regsPerMultiprocessor;
    int cooperativeLaunch;
};

// L2 persistence (accepted and recorded; the emulation has no cache)
typedef enum { cudaLimitPersistingL2CacheSize = 0x06 } cudaLimit;
enum cudaAccessProperty { cudaAccessPropertyNormal = 0, cudaAccessPropertyStreaming = 1, cudaAccessPropertyPersisting = 2 };
struct cudaAccessPolicyWindow {
    void *base_ptr;
    size_t num_bytes;
    float hitRatio;
    enum cudaAccessProperty hitProp, missProp;
};
typedef union { char pad[64]; struct cudaAccessPolicyWindow accessPolicyWindow; } cudaStreamAttrValue;
typedef enum { cudaStreamAttributeAccessPolicyWindow = 1 } cudaStreamAttrID;
cudaError_t cudaDeviceSetLimit(cudaLimit l, size_t v);
cudaError_t cudaStreamSetAttribute(cudaStream_t s, cudaStreamAttrID id, const cudaStreamAttrValue *v);

const char *cudaGetErrorString(cudaError_t e);
const char *cudaGetErrorName(cudaError_t e);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaGetDevice(int *dev);
cudaError_t cudaSetDevice(int dev);
cudaError_t cudaDriverGetVersion(int *v);
cudaError_t cudaRuntimeGetVersion(int *v);
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int dev);
cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr a, int dev);
cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total_b);
cudaError_t cudaMalloc(void **p, size_t n);
cudaError_t cudaMallocAsync(void **p, size_t n, cudaStream_t s);
cudaError_t cudaFreeAsync(void *p, cudaStream_t s);
cudaError_t cudaMallocHost(void **p, size_t n);
cudaError_t cudaHostAlloc(void **p, size_t n, unsigned flags);
cudaError_t cudaHostRegister(void *p, size_t n, unsigned flags);
cudaError_t cudaHostUnregister(void *p);
cudaError_t cudaFree(void *p);
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind k);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind k, cudaStream_t s);
cudaError_t cudaMemset(void *p, int v, size_t n);
cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t s);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamQuery(cudaStream_t s);
cudaError_t cudaStreamCreate(cudaStream_t *s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags);
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode m);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *e, cudaGraph_t g, unsigned long long flags);
cudaError_t cudaGraphDestroy(cudaGraph_t g);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e);
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s);
cudaError_t rc_emu_func_set_smem(const void *fn, int bytes);
cudaError_t rc_emu_occupancy(int *blocks, const void *fn, int block_size, size_t dyn_smem);
cudaError_t cudaEventCreate(cudaEvent_t *e);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventQuery(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b);

// cuBLAS
typedef struct rc_emu_blas *cublasHandle_t;
typedef enum { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_NOT_SUPPORTED = 15 } cublasStatus_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 } cublasOperation_t;
typedef enum { CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14 } cudaDataType_t;
typedef enum { CUBLAS_COMPUTE_32F = 68, CUBLAS_COMPUTE_32F_FAST_TF32 = 77 } cublasComputeType_t;
typedef enum { CUBLAS_GEMM_DEFAULT = -1 } cublasGemmAlgo_t;
cublasStatus_t cublasCreate(cublasHandle_t *h);
cublasStatus_t cublasDestroy(cublasHandle_t h);
cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void *ws, size_t bytes);
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s);
cublasStatus_t cublasGetVersion(cublasHandle_t h, int *v);
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                            int n, int k, const void *alpha, const void *A, cudaDataType_t at,
                            int lda, const void *B, cudaDataType_t bt, int ldb, const void *beta,
                            void *C, cudaDataType_t ct, int ldc, cublasComputeType_t comp,
                            cublasGemmAlgo_t algo);
const char *cublasGetStatusName(cublasStatus_t s);
const char *cublasGetStatusString(cublasStatus_t s);

#ifdef __cplusplus
}

#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static // translate.py turns declarations in .cu files into per-block storage
#define __launch_bounds__(...)

struct uint3_ { unsigned x, y, z; };
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
    dim3(uint3_ u) : x(u.x), y(u.y), z(u.z) {}
};
// the device's alignment of the vector types: a misaligned access is a fault there
struct alignas(16) uint4 { unsigned x, y, z, w; };
struct alignas(8) uint2 { unsigned x, y; };
struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(16) int4 { int x, y, z, w; };
struct alignas(8) int2 { int x, y; };
static inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { return uint4{a, b, c, d}; }
static inline float2 make_float2(float a, float b) { return float2{a, b}; }
static inline float4 make_float4(float a, float b, float c, float d) { return float4{a, b, c, d}; }

extern "C" float rc_f16_to_f32(uint16_t h);
extern "C" uint16_t rc_f32_to_f16(float f);
extern "C" float rc_bf16_to_f32(uint16_t h);
extern "C" uint16_t rc_f32_to_bf16(float f);
struct __half { uint16_t x; };
struct __nv_bfloat16 { uint16_t x; };
struct alignas(4) __half2 { __half x, y; };
struct alignas(4) __nv_bfloat162 { __nv_bfloat16 x, y; };
static inline float __half2float(__half h) { return rc_f16_to_f32(h.x); }
static inline __half __float2half_rn(float f) { return __half{rc_f32_to_f16(f)}; }
static inline float __bfloat162float(__nv_bfloat16 h) { return rc_bf16_to_f32(h.x); }
static inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16{rc_f32_to_bf16(f)}; }
static inline float2 __half22float2(__half2 h) { return float2{__half2float(h.x), __half2float(h.y)}; }
static inline float2 __bfloat1622float2(__nv_bfloat162 h) {
    return float2{__bfloat162float(h.x), __bfloat162float(h.y)};
}

static inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
static inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
// Device arithmetic under --use_fast_math (the CUDA build's flag): fp32 denormals flush to zero
// (the runtime sets FTZ/DAZ while kernels run), expf becomes __expf, and the approximate
// functions are emulated at the error bounds the CUDA C Programming Guide documents for them (its
// tables of maximum ulp errors): the correctly rounded value moved by up to that many ulps, the
// amount and direction a hash of the input (deterministic; the full bound for half the inputs).
//   __expf(x), expf(x)  2 + floor(|1.173 x|) ulp     exp2f (ex2.approx)  2 ulp
//   __fdividef(x, y)    2 ulp for |y| in [2^-126, 2^126], 0 beyond (as the device returns)
//   rsqrtf(x)           2 ulp
// Not emulated (the compiler owns them): x / y (2 ulp with -prec-div=false), sqrtf, FMA contraction.
namespace rc_emu {
bool fast_math(); // RC_EMU_FAST_MATH=0: exact functions, no flush to zero (to tell effects apart)
static inline float ftz(float v) { return fast_math() && fabsf(v) < 1.17549435e-38f ? copysignf(0.f, v) : v; }
static inline float perturb(float exact, float in, unsigned max_ulp) {
    if (!fast_math()) return exact;
    if (!isfinite(exact) || exact == 0.f || max_ulp == 0) return ftz(exact);
    uint32_t h;
    memcpy(&h, &in, 4);
    h *= 2654435761u;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    int k = (h & 1) ? (int)max_ulp : (int)((h >> 1) % (2 * max_ulp + 1)) - (int)max_ulp;
    if (h & 2) k = -k;
    int32_t u;
    memcpy(&u, &exact, 4);
    int32_t mag = (u & 0x7fffffff) + k; // same sign: moving the bits moves the value by k ulps
    if (mag < 0) mag = 0;
    if (mag > 0x7f7fffff) mag = 0x7f7fffff;
    u = (u & (int32_t)0x80000000) | mag;
    float r;
    memcpy(&r, &u, 4);
    return ftz(r);
}
static inline float fast_expf(float x) {
    x = ftz(x);
    return perturb(expf(x), x, 2 + (unsigned)floorf(fabsf(1.173f * x)));
}
} // namespace rc_emu
#define __expf(x) rc_emu::fast_expf(x)
#define expf(x) rc_emu::fast_expf(x)
static inline float exp2f_fast_(float x) { return rc_emu::perturb(exp2f(rc_emu::ftz(x)), x, 2); }
#define exp2f(x) exp2f_fast_(x)
static inline float __fdividef(float x, float y) {
    float ay = fabsf(y);
    if (ay > 8.507059e37f && ay < INFINITY) return isinf(x) ? NAN : 0.f; // |y| > 2^126
    return rc_emu::perturb(x / y, x * 0.618034f + y, 2);
}
static inline float rsqrtf(float x) { return rc_emu::perturb(1.f / sqrtf(rc_emu::ftz(x)), x, 2); }
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
template <typename T> static inline T __ldg(const T *p) { return *p; }
template <typename T> static inline T __ldcs(const T *p) { return *p; }

namespace rc_emu {
struct fiber;
extern uint3_ g_grid_dim, g_block_dim;
uint3_ &thread_idx();
const uint3_ &block_idx();
void syncthreads();
void grid_sync();
bool grid_is_cooperative();
enum shfl_kind { SHFL_IDX, SHFL_XOR, SHFL_UP, SHFL_DOWN, VOTE_BALLOT, SYNC_WARP };
uint64_t shfl_bits(unsigned mask, uint64_t v, int arg, int width, int kind);
void *dyn_smem();
void *shared_alloc(const void *tag, size_t bytes, const char *name);
template <typename T> static inline T &shared_var(const void *tag, const char *name) {
    return *(T *)shared_alloc(tag, sizeof(T), name);
}
void atomic_enter();
void atomic_leave();
struct atomic_scope { // an atomic's read-modify-write is not a race
    atomic_scope() { atomic_enter(); }
    ~atomic_scope() { atomic_leave(); }
};
struct launch_cfg {
    dim3 grid, block;
    size_t smem;
    cudaStream_t stream;
};
template <typename G, typename B>
static inline launch_cfg cfg(G g, B b, size_t smem = 0, cudaStream_t s = nullptr) {
    return launch_cfg{dim3(g), dim3(b), smem, s};
}
cudaError_t submit(const launch_cfg &c, const void *fn, std::function<void()> body, bool coop);
template <typename... KA, typename... A>
void launch(const launch_cfg &c, void (*k)(KA...), A... args) {
    submit(c, (const void *)k, [=]() { k(args...); }, false);
}
// cudaLaunchCooperativeKernel: the argument values are copied from args at launch, as the runtime does
template <typename... KA, size_t... I>
cudaError_t launch_coop(void (*k)(KA...), dim3 g, dim3 b, void **args, size_t smem, cudaStream_t s,
                        std::index_sequence<I...>) {
    std::tuple<std::decay_t<KA>...> vals(*(std::decay_t<KA> *)args[I]...);
    return submit(launch_cfg{g, b, smem, s}, (const void *)k, [=]() { std::apply(k, vals); }, true);
}
} // namespace rc_emu

#define threadIdx (rc_emu::thread_idx())
#define blockIdx (rc_emu::block_idx())
#define blockDim (rc_emu::g_block_dim)
#define gridDim (rc_emu::g_grid_dim)
#define RC_EMU_INLINE inline __attribute__((always_inline))
static RC_EMU_INLINE void __syncthreads() { rc_emu::syncthreads(); }

template <typename T> static RC_EMU_INLINE T rc_emu_shfl(unsigned mask, T v, int arg, int width, int kind) {
    static_assert(sizeof(T) <= 8, "shuffle of a type wider than 8 bytes");
    uint64_t u = 0;
    memcpy(&u, &v, sizeof v);
    u = rc_emu::shfl_bits(mask, u, arg, width, kind);
    memcpy(&v, &u, sizeof v);
    return v;
}
template <typename T> static RC_EMU_INLINE T __shfl_sync(unsigned m, T v, int l, int w = 32) {
    return rc_emu_shfl(m, v, l, w, rc_emu::SHFL_IDX);
}
template <typename T> static RC_EMU_INLINE T __shfl_xor_sync(unsigned m, T v, int l, int w = 32) {
    return rc_emu_shfl(m, v, l, w, rc_emu::SHFL_XOR);
}
template <typename T> static RC_EMU_INLINE T __shfl_up_sync(unsigned m, T v, unsigned d, int w = 32) {
    return rc_emu_shfl(m, v, (int)d, w, rc_emu::SHFL_UP);
}
template <typename T> static RC_EMU_INLINE T __shfl_down_sync(unsigned m, T v, unsigned d, int w = 32) {
    return rc_emu_shfl(m, v, (int)d, w, rc_emu::SHFL_DOWN);
}

// votes and __syncwarp go through the same rendezvous as shuffles (kinds after the four shuffles)
static RC_EMU_INLINE unsigned __ballot_sync(unsigned m, int p) {
    return (unsigned)rc_emu::shfl_bits(m, p != 0, 0, 32, rc_emu::VOTE_BALLOT);
}
static RC_EMU_INLINE int __all_sync(unsigned m, int p) { return __ballot_sync(m, p) == m; }
static RC_EMU_INLINE int __any_sync(unsigned m, int p) { return __ballot_sync(m, p) != 0; }
static RC_EMU_INLINE void __syncwarp(unsigned m = 0xffffffffu) { rc_emu::shfl_bits(m, 0, 0, 32, rc_emu::SYNC_WARP); }
static inline void __threadfence() {}
static inline void __threadfence_block() {}

// Atomics: the fibers share one OS thread and switch only at barriers, so a plain
// read-modify-write is atomic here.
template <typename T> static inline T atomicAdd(T *p, T v) { rc_emu::atomic_scope s_; T o = *p; *p = o + v; return o; }
template <typename T> static inline T atomicSub(T *p, T v) { rc_emu::atomic_scope s_; T o = *p; *p = o - v; return o; }
template <typename T> static inline T atomicExch(T *p, T v) { rc_emu::atomic_scope s_; T o = *p; *p = v; return o; }
template <typename T> static inline T atomicMax(T *p, T v) { rc_emu::atomic_scope s_; T o = *p; if (v > o) *p = v; return o; }
template <typename T> static inline T atomicMin(T *p, T v) { rc_emu::atomic_scope s_; T o = *p; if (v < o) *p = v; return o; }
template <typename T> static inline T atomicOr(T *p, T v) { rc_emu::atomic_scope s_; T o = *p; *p = o | v; return o; }
template <typename T> static inline T atomicAnd(T *p, T v) { rc_emu::atomic_scope s_; T o = *p; *p = o & v; return o; }
template <typename T> static inline T atomicCAS(T *p, T cmp, T v) { rc_emu::atomic_scope s_; T o = *p; if (o == cmp) *p = v; return o; }
static inline unsigned atomicInc(unsigned *p, unsigned lim) { rc_emu::atomic_scope s_; unsigned o = *p; *p = o >= lim ? 0 : o + 1; return o; }

// the runtime's C++ conveniences
template <typename T> static inline cudaError_t cudaMalloc(T **p, size_t n) { return cudaMalloc((void **)p, n); }
template <typename T> static inline cudaError_t cudaMallocAsync(T **p, size_t n, cudaStream_t s) {
    return cudaMallocAsync((void **)p, n, s);
}
template <typename T> static inline cudaError_t cudaMallocHost(T **p, size_t n) { return cudaMallocHost((void **)p, n); }
template <typename T> static inline cudaError_t cudaHostAlloc(T **p, size_t n, unsigned f) {
    return cudaHostAlloc((void **)p, n, f);
}
template <typename F> static inline cudaError_t cudaFuncSetAttribute(F *fn, cudaFuncAttribute, int v) {
    return rc_emu_func_set_smem((const void *)fn, v);
}
template <typename... KA>
static inline cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int *n, void (*k)(KA...), int bs,
                                                                       size_t smem) {
    return rc_emu_occupancy(n, (const void *)k, bs, smem);
}
template <typename... KA>
static inline cudaError_t cudaLaunchCooperativeKernel(void (*k)(KA...), dim3 g, dim3 b, void **args,
                                                      size_t smem = 0, cudaStream_t s = nullptr) {
    return rc_emu::launch_coop(k, g, b, args, smem, s, std::index_sequence_for<KA...>{});
}
// A kernel passed as void * has lost its parameter types: the emulator cannot unpack args.
cudaError_t cudaLaunchCooperativeKernel(const void *k, dim3 g, dim3 b, void **args, size_t smem = 0,
                                        cudaStream_t s = nullptr);
#endif
