// Host helpers behind cuda_common.h: element sizes and names, device count.
#include "kernels/cuda/common.cuh"

extern "C" size_t rc_cuda_dtype_size(rc_cuda_dtype dt) { return dt == RC_CUDA_F32 ? 4 : 2; }

extern "C" const char *rc_cuda_dtype_name(rc_cuda_dtype dt) {
    switch (dt) {
    case RC_CUDA_F32: return "f32";
    case RC_CUDA_F16: return "f16";
    case RC_CUDA_BF16: return "bf16";
    }
    return "?";
}

extern "C" int rc_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); // clear the non-sticky error so later calls start clean
        return 0;
    }
    return n;
}
