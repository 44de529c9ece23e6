// The NCCL path (train/nccl.h) with the ranks of the launcher, or alone as a world of 1: a device
// vector summed over the ranks must equal the sum computed on the host (exact: small integers
// times 0.5 in fp32); the ordered sum (rc_nccl_sum_f32_ordered) must give the bits of the host's
// rank-order fp32 sum of values whose sum depends on the order. Without a device it prints
// "skipped: no CUDA device".
//   nccl_tests            one rank (the GPU suite)      mpirun -np 8 nccl_tests   8 ranks
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/common.h"
#include "base/dist.h"
#include "train/nccl.h"

int main(void) {
    if (rc_dist_init()) {
        fprintf(stderr, "nccl_tests: %s\n", rc_last_error());
        return rc_dist_end(1);
    }
    int n_dev = 0;
    if (cudaGetDeviceCount(&n_dev) != cudaSuccess || n_dev == 0) {
        if (rc_dist_rank() == 0) printf("skipped: no CUDA device\n");
        return rc_dist_end(0);
    }
    const int W = rc_dist_size(), r = rc_dist_rank();
    const size_t n = (1u << 20) + 3; // not a multiple of anything NCCL likes
    float *h = malloc(n * sizeof *h), *dv = NULL;
    rc_nccl *c = NULL;
    int bad = 0;
    if (!h || rc_nccl_open(&c)) {
        fprintf(stderr, "FAIL nccl open: %s\n", rc_last_error());
        return rc_dist_end(1);
    }
    for (size_t i = 0; i < n; i++) h[i] = (float)((r + 1) * (int)(i % 97)) * 0.5f;
    if (cudaMalloc((void **)&dv, n * sizeof *dv) != cudaSuccess ||
        cudaMemcpy(dv, h, n * sizeof *h, cudaMemcpyHostToDevice) != cudaSuccess || rc_nccl_sum_f32(c, dv, n, NULL) ||
        cudaMemcpy(h, dv, n * sizeof *h, cudaMemcpyDeviceToHost) != cudaSuccess) {
        fprintf(stderr, "FAIL nccl sum: %s\n", rc_last_error());
        return rc_dist_end(1);
    }
    for (size_t i = 0; i < n; i++) {
        float want = (float)((W * (W + 1) / 2) * (int)(i % 97)) * 0.5f;
        if (h[i] != want && bad++ < 5) fprintf(stderr, "FAIL nccl sum: element %zu is %g, want %g\n", i, h[i], want);
    }
    // ordered: x_r[i] = (1 + i % 89) * 0.1 * 1.37^r in fp32, summed ((x_0 + x_1) + x_2) + ...
    int bad_o = 0;
    for (size_t i = 0; i < n; i++) h[i] = (float)((1 + i % 89) * 0.1 * pow(1.37, r));
    if (cudaMemcpy(dv, h, n * sizeof *h, cudaMemcpyHostToDevice) != cudaSuccess ||
        rc_nccl_sum_f32_ordered(c, dv, n, NULL) || cudaMemcpy(h, dv, n * sizeof *h, cudaMemcpyDeviceToHost) != cudaSuccess) {
        fprintf(stderr, "FAIL nccl ordered sum: %s\n", rc_last_error());
        return rc_dist_end(1);
    }
    for (size_t i = 0; i < n; i++) {
        float want = (float)((1 + i % 89) * 0.1);
        for (int q = 1; q < W; q++) want += (float)((1 + i % 89) * 0.1 * pow(1.37, q));
        if (h[i] != want && bad_o++ < 5)
            fprintf(stderr, "FAIL nccl ordered sum: element %zu is %.9g, want %.9g\n", i, h[i], want);
    }
    if (r == 0) printf("%s nccl ordered: %zu floats summed in rank order over %d rank%s\n", bad_o ? "FAIL" : "ok", n, W,
                       W > 1 ? "s" : "");
    bad += bad_o;
    cudaFree(dv);
    rc_nccl_close(c);
    free(h);
    if (r == 0) printf("%s nccl: %zu floats summed over %d rank%s\n", bad ? "FAIL" : "ok", n, W, W > 1 ? "s" : "");
    return rc_dist_end(bad ? 1 : 0);
}
