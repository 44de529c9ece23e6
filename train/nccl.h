// NCCL for the GPU collectives of a data-parallel job (one process per GPU, base/dist.h): the
// communicator is bootstrapped over MPI (rank 0's ncclUniqueId broadcast to all), each rank on
// the GPU of its local rank; in-place sums of device vectors (the value network's gradients when
// it trains on the GPU). Built only when the CUDA build finds NCCL (RC_HAVE_NCCL).
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rc_nccl rc_nccl;

// Collective: every rank of the job calls it (a world of 1 works alone). Selects the device of
// the local rank (a clear error when the node has fewer GPUs than ranks). 0 / -1.
int rc_nccl_open(rc_nccl **c);
// dev (n floats on this rank's GPU) becomes the sum over ranks, on `stream` (a cudaStream_t;
// NULL: the default stream), and is complete when this returns. 0 / -1.
int rc_nccl_sum_f32(rc_nccl *c, float *dev, size_t n, void *stream);
// The same sum added in rank order, ((x_0 + x_1) + x_2) + ..., as rc_dist_sum_f32 adds CPU
// ranks' vectors: every rank's vector is gathered (ncclAllGather into a scratch of world * n
// floats kept in c) and summed element by element in that order, so the bits depend only on the
// ranks' inputs, not on NCCL's ring or tree. 0 / -1.
int rc_nccl_sum_f32_ordered(rc_nccl *c, float *dev, size_t n, void *stream);
void rc_nccl_close(rc_nccl *c);

#ifdef __cplusplus
}
#endif
