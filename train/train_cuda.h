// Value training on a CUDA device (`recontrol train --device cuda`): the same batches, loss and
// Adam steps as rc_trainer (train/train.h), with the parameters, gradients, Adam moments and one
// batch of states on the device. Batches are gathered from the memory-mapped shards into pinned
// host buffers and copied while the previous batch computes (two buffers), so only one batch of
// states is ever on the device: a dataset larger than device memory trains.
// The implementation (train/train_cuda.cu) is part of the CUDA code: linked into the GPU test
// runner and benchmarks, and in the module librecontrol_cuda.so for `recontrol`, which reaches it
// through rc_trainer_cuda_find().
#pragma once
#include <stdint.h>

#include "engine/value_mlp.h"
#include "train/activations.h"
#include "train/bellman.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rc_trainer_cuda rc_trainer_cuda;

// Uploads m (its dtype selects fp32 or bf16 autocast-style compute); capacities as rc_trainer_init.
// Fails clearly without a device. 0 / -1.
int rc_trainer_cuda_init(rc_trainer_cuda **t, const rc_value_mlp *m, rc_bellman_mode mode, double lr,
                         int cap_seq, int64_t cap_rows, int chunk_rows);
// As rc_trainer_batch. next_ids (next_n sequences) may name the batch of the following call:
// its states are gathered and copied while this batch computes. 0 / -1.
int rc_trainer_cuda_batch(rc_trainer_cuda *t, const rc_acts *a, int n, const int64_t *ids, int update,
                          double *loss, int next_n, const int64_t *next_ids);
// Copies the device parameters into m->params. 0 / -1.
int rc_trainer_cuda_download(rc_trainer_cuda *t, rc_value_mlp *m);
// The optimizer state for a checkpoint (train/checkpoint.h): parameters, Adam moments (n_params
// each) and step count copied out of the device (upload 0) or into it (upload 1). 0 / -1.
int rc_trainer_cuda_state(rc_trainer_cuda *t, float *params, float *m, float *v, long *step, int upload);
void rc_trainer_cuda_free(rc_trainer_cuda *t);

typedef struct {
    int (*init)(rc_trainer_cuda **t, const rc_value_mlp *m, rc_bellman_mode mode, double lr, int cap_seq,
                int64_t cap_rows, int chunk_rows);
    int (*batch)(rc_trainer_cuda *t, const rc_acts *a, int n, const int64_t *ids, int update, double *loss,
                 int next_n, const int64_t *next_ids);
    int (*download)(rc_trainer_cuda *t, rc_value_mlp *m);
    void (*free)(rc_trainer_cuda *t);
    int (*state)(rc_trainer_cuda *t, float *params, float *m, float *v, long *step, int upload);
} rc_trainer_cuda_ops;

// The functions above as a table (defined with them, in the CUDA code).
const rc_trainer_cuda_ops *rc_trainer_cuda_ops_get(void);
// The table wherever the CUDA code is (linked in, else the CUDA module); NULL with a clear error
// when this build has no CUDA, the module is missing or there is no device (train/train.c).
const rc_trainer_cuda_ops *rc_trainer_cuda_find(void);

#ifdef __cplusplus
}
#endif
