// C-visible declarations shared by the CUDA launchers: the element types a device buffer can
// hold and a device query. Every launcher returns 0, or -1 with rc_last_error() set
// ("file:line function: statement: CUDA error").
#pragma once
#include <cuda_runtime_api.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { RC_CUDA_F32 = 0, RC_CUDA_F16 = 1, RC_CUDA_BF16 = 2 } rc_cuda_dtype;

// Bytes per element of dt.
size_t rc_cuda_dtype_size(rc_cuda_dtype dt);
const char *rc_cuda_dtype_name(rc_cuda_dtype dt);

// Number of usable CUDA devices (0 when there is no driver, no device, or an error).
int rc_cuda_device_count(void);

#ifdef __cplusplus
}
#endif
