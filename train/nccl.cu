// NCCL communicator over the job's ranks and the in-place sum of device vectors (train/nccl.h).
// Every NCCL / CUDA call is checked and its failure named with the rank.
#include "train/nccl.h"

#include <cuda_runtime.h>
#include <nccl.h>
#include <stdlib.h>

#include "base/common.h"
#include "base/dist.h"

struct rc_nccl {
    ncclComm_t comm;
    int device, world;
    float *gather;     // (world, cap) for the ordered sum
    size_t gather_cap; // floats per rank
};

#define RC_CUDA_TRY(x)                                                                              \
    do {                                                                                           \
        cudaError_t e_ = (x);                                                                      \
        if (e_ != cudaSuccess)                                                                     \
            return rc_fail("rank %d: %s failed: %s", rc_dist_rank(), #x, cudaGetErrorString(e_));  \
    } while (0)
#define RC_NCCL_TRY(x)                                                                              \
    do {                                                                                           \
        ncclResult_t e_ = (x);                                                                     \
        if (e_ != ncclSuccess)                                                                     \
            return rc_fail("rank %d: %s failed: %s", rc_dist_rank(), #x, ncclGetErrorString(e_));  \
    } while (0)

static int open_comm(rc_nccl *c) {
    const rc_dist_info *d = rc_dist();
    int n_dev = 0;
    RC_CUDA_TRY(cudaGetDeviceCount(&n_dev));
    if (d->local_rank >= n_dev)
        return rc_fail("rank %d is local rank %d but this node shows %d GPU%s: start one rank per GPU "
                       "(and let every rank see all of its node's GPUs)",
                       d->rank, d->local_rank, n_dev, n_dev == 1 ? "" : "s");
    c->device = d->local_rank;
    RC_CUDA_TRY(cudaSetDevice(c->device));
    ncclUniqueId id;
    if (d->rank == 0) RC_NCCL_TRY(ncclGetUniqueId(&id));
    if (rc_dist_bcast(&id, sizeof id, 0)) return -1;
    RC_NCCL_TRY(ncclCommInitRank(&c->comm, d->size, id, d->rank));
    c->world = d->size;
    return 0;
}

extern "C" int rc_nccl_open(rc_nccl **out) {
    *out = NULL;
    rc_nccl *c = (rc_nccl *)calloc(1, sizeof *c);
    if (!c) return rc_fail("out of memory");
    if (open_comm(c)) {
        free(c);
        return -1;
    }
    *out = c;
    return 0;
}

extern "C" int rc_nccl_sum_f32(rc_nccl *c, float *dev, size_t n, void *stream) {
    cudaStream_t s = (cudaStream_t)stream;
    RC_NCCL_TRY(ncclAllReduce(dev, dev, n, ncclFloat, ncclSum, c->comm, s));
    RC_CUDA_TRY(cudaStreamSynchronize(s));
    return 0;
}

// x[i] = g[0 * n + i] + g[1 * n + i] + ... in rank order
__global__ void nccl_ordered_sum_kernel(float *x, const float *g, size_t n, int world) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float s = g[i];
        for (int r = 1; r < world; r++) s += g[(size_t)r * n + i];
        x[i] = s;
    }
}

extern "C" int rc_nccl_sum_f32_ordered(rc_nccl *c, float *dev, size_t n, void *stream) {
    cudaStream_t s = (cudaStream_t)stream;
    if (!n) return 0;
    if (n > c->gather_cap) {
        if (c->gather) RC_CUDA_TRY(cudaFree(c->gather));
        c->gather = NULL;
        c->gather_cap = 0;
        RC_CUDA_TRY(cudaMalloc((void **)&c->gather, n * (size_t)c->world * sizeof(float)));
        c->gather_cap = n;
    }
    RC_NCCL_TRY(ncclAllGather(dev, c->gather, n, ncclFloat, c->comm, s));
    size_t blocks = (n + 255) / 256;
    nccl_ordered_sum_kernel<<<(unsigned)(blocks > 4096 ? 4096 : blocks), 256, 0, s>>>(dev, c->gather, n, c->world);
    RC_CUDA_TRY(cudaGetLastError());
    RC_CUDA_TRY(cudaStreamSynchronize(s));
    return 0;
}

extern "C" void rc_nccl_close(rc_nccl *c) {
    if (!c) return;
    if (c->gather) cudaFree(c->gather);
    if (c->comm) ncclCommDestroy(c->comm);
    free(c);
}
