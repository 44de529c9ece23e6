// A CPU emulation of the slice of the CUDA runtime, cuBLAS and device code that recontrol uses,
// for checking kernel logic on machines without a GPU (tests/gpu/emu/run_emulated.sh). Every CUDA
// thread runs as a fiber; __syncthreads and warp shuffles are scheduling points; blocks run one
// after another, so __shared__ becomes a static local. "Device" memory is host memory, so the
// runner can be built with AddressSanitizer to catch out-of-bounds accesses (a memcheck stand-in).
// Not a performance model, and it cannot find races: it only runs the code as written.
#pragma once
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
    cudaErrorStreamCaptureUnsupported = 900,
    cudaErrorNoDevice = 100,
} cudaError_t;
typedef enum {
    cudaMemcpyHostToHost = 0, cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3, cudaMemcpyDefault = 4
} cudaMemcpyKind;
typedef struct rc_emu_stream *cudaStream_t;
typedef struct rc_emu_graph *cudaGraph_t;
typedef struct rc_emu_graph *cudaGraphExec_t;
typedef struct rc_emu_event *cudaEvent_t;
enum { cudaStreamNonBlocking = 1 };
typedef enum { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1, cudaStreamCaptureModeRelaxed = 2 } cudaStreamCaptureMode;
typedef enum { cudaDevAttrMultiProcessorCount = 16 } cudaDeviceAttr;
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    int multiProcessorCount, major, minor, l2CacheSize;
};

const char *cudaGetErrorString(cudaError_t e);
const char *cudaGetErrorName(cudaError_t e);
cudaError_t cudaGetLastError(void);
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int dev);
cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr a, int dev);
cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total_b);
cudaError_t cudaMalloc(void **p, size_t n);
cudaError_t cudaMallocHost(void **p, size_t n);
cudaError_t cudaFree(void *p);
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind k);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind k, cudaStream_t s);
cudaError_t cudaMemset(void *p, int v, size_t n);
cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t s);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode m);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *e, cudaGraph_t g, unsigned long long flags);
cudaError_t cudaGraphDestroy(cudaGraph_t g);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e);
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s);
cudaError_t rc_emu_func_set_smem(const void *fn, int bytes);
cudaError_t cudaEventCreate(cudaEvent_t *e);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b);

// cuBLAS
typedef struct rc_emu_blas *cublasHandle_t;
typedef enum { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_NOT_SUPPORTED = 15 } cublasStatus_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 } cublasOperation_t;
typedef enum { CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14 } cudaDataType_t;
typedef enum { CUBLAS_COMPUTE_32F = 68 } cublasComputeType_t;
typedef enum { CUBLAS_GEMM_DEFAULT = -1 } cublasGemmAlgo_t;
cublasStatus_t cublasCreate(cublasHandle_t *h);
cublasStatus_t cublasDestroy(cublasHandle_t h);
cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void *ws, size_t bytes);
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s);
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

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)

struct uint3_ { unsigned x, y, z; };
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct uint4 { unsigned x, y, z, w; };
struct float2 { float x, y; };
struct float4 { float x, y, z, w; };
struct int4 { int x, y, z, w; };
static inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { return uint4{a, b, c, d}; }

extern "C" float rc_f16_to_f32(uint16_t h);
extern "C" uint16_t rc_f32_to_f16(float f);
extern "C" float rc_bf16_to_f32(uint16_t h);
extern "C" uint16_t rc_f32_to_bf16(float f);
struct __half { uint16_t x; };
struct __nv_bfloat16 { uint16_t x; };
struct __half2 { __half x, y; };
struct __nv_bfloat162 { __nv_bfloat16 x, y; };
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
#define __expf(x) expf(x)
static inline float rsqrtf(float x) { return 1.f / sqrtf(x); }
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
template <typename T> static inline T __ldg(const T *p) { return *p; }
template <typename T> static inline T __ldcs(const T *p) { return *p; }

namespace rc_emu {
struct fiber;
extern uint3_ g_block, g_grid_dim, g_block_dim;
uint3_ &thread_idx();
void syncthreads();
float shfl(float v, int src_lane_or_xor, bool is_xor);
int shfl_i(int v, int src_lane_or_xor, bool is_xor);
void *dyn_smem();
struct launch_cfg {
    dim3 grid, block;
    size_t smem;
    cudaStream_t stream;
};
template <typename G, typename B>
static inline launch_cfg cfg(G g, B b, size_t smem = 0, cudaStream_t s = nullptr) {
    return launch_cfg{dim3(g), dim3(b), smem, s};
}
void submit(const launch_cfg &c, const void *fn, std::function<void()> body);
template <typename... KA, typename... A>
void launch(const launch_cfg &c, void (*k)(KA...), A... args) {
    submit(c, (const void *)k, [=]() { k(args...); });
}
} // namespace rc_emu

#define threadIdx (rc_emu::thread_idx())
#define blockIdx (rc_emu::g_block)
#define blockDim (rc_emu::g_block_dim)
#define gridDim (rc_emu::g_grid_dim)
static inline void __syncthreads() { rc_emu::syncthreads(); }
static inline float __shfl_xor_sync(unsigned, float v, int o) { return rc_emu::shfl(v, o, true); }
static inline int __shfl_xor_sync(unsigned, int v, int o) { return rc_emu::shfl_i(v, o, true); }
static inline float __shfl_sync(unsigned, float v, int l) { return rc_emu::shfl(v, l, false); }

template <typename F> static inline cudaError_t cudaFuncSetAttribute(F *fn, cudaFuncAttribute, int v) {
    return rc_emu_func_set_smem((const void *)fn, v);
}
#endif
