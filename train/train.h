// Value-network training (stage 3): Bellman loss over ragged sequences of captured states, Adam,
// shuffled mini-batches of whole sequences, train / validation split by sequence.
#pragma once
#include <stdint.h>
#include <stdio.h>

#include "train/activations.h"
#include "train/adam.h"
#include "train/bellman.h"
#include "engine/value_mlp.h"

#ifdef __cplusplus
extern "C" {
#endif

// One optimizer over one model; batch buffers sized for cap_seq sequences / cap_rows rows.
typedef struct {
    rc_value_mlp *m;      // not owned
    rc_bellman_mode mode; //
    rc_adam adam;         //
    rc_value_ws ws;       // activations for chunk_rows rows
    int chunk_rows;       // rows per forward/backward chunk (bounds activation memory)
    float *grad;          // (n_params)
    int cap_seq;          //
    int64_t cap_rows;     //
    float *rows;          // (cap_rows, d) gathered states
    float *v, *dv;        // (cap_rows)
    int64_t *off;         // (cap_seq + 1)
    float *r;             // (cap_seq)
    int dist;             // data parallel over the job's ranks (base/dist.h; set by init when the
                          // world is > 1): each rank takes its part of every batch, the gradient
                          // and loss are summed over ranks before the Adam step
} rc_trainer;

int rc_trainer_init(rc_trainer *t, rc_value_mlp *m, rc_bellman_mode mode, double lr, int cap_seq,
                    int64_t cap_rows, int chunk_rows);
void rc_trainer_free(rc_trainer *t);

// Bellman loss of sequences ids[0..n-1] of a (n <= cap_seq); with update != 0 also one Adam step
// on its gradient. Data parallel (t->dist), every rank passes the whole batch and works on its
// part, ids[n*rank/world .. n*(rank+1)/world), and all get the whole batch's loss and step. When the batch has more rows than chunk_rows, V is first computed chunk by
// chunk, then each chunk is recomputed for its backward (same result, bounded memory).
int rc_trainer_batch(rc_trainer *t, const rc_acts *a, int n, const int64_t *ids, int update,
                     double *loss);

// Ranges of the training settings, shared by `recontrol train` and the recipes.
#define RC_TRAIN_MAX_EPOCHS 1000000
#define RC_TRAIN_MAX_LR 10.0

typedef struct {
    const char *data_dir;     // run dir with acts-*.safetensors + rewards.jsonl
    const char *out_path;     // value model (.safetensors), written atomically at the end
    const char *log_path;     // JSON log of the losses (NULL: <out minus .safetensors>.train.json)
    const char *init_path;    // start from this value model instead of a fresh init (NULL)
    int n_hidden;             //
    int hidden[RC_VALUE_MAX_LAYERS];
    int epochs, batch_size;   //
    double lr, val_frac;      //
    uint64_t seed;            // init, split and shuffle orders
    rc_bellman_mode mode;     //
    rc_value_dtype dtype;     //
    int chunk_rows;           //
    int quiet;                // only the final line
    int device;               // 0: CPU (OpenMP); 1: CUDA (train/train_cuda.h), same batches and steps
    int pad_id;               // -1 (default): every stored step is trained on, the one that emits
                              // EOS included; >= 0: the reference's pad convention with this pad
                              // id (rc_acts_mask_pad: Falcon 11, Llama-3 128001, Vicuna 0)
    FILE *out;                // progress stream (stderr when NULL)
    // Checkpoints (train/checkpoint.h), written by rank 0 at the end of every epoch and, with
    // checkpoint_every > 0, every that many Adam steps: checkpoint_path (NULL: <out minus
    // .safetensors>.ckpt); no_checkpoint: none. resume: go on from the checkpoint when there is one
    // (the same final weights as an uninterrupted run; with more epochs it extends a finished one).
    const char *checkpoint_path;
    int checkpoint_every;     //
    int no_checkpoint;        //
    int resume;               //
    long max_steps;           // > 0: stop after this many Adam steps in all (checkpoint, no model)
} rc_train_opts;

void rc_train_opts_default(rc_train_opts *o);
// The whole stage: open data, split, init, epochs (train loss = mean of batch losses, as the
// reference prints it; validation loss = sum of per-sequence losses / number of sequences), save.
int rc_train_run(const rc_train_opts *o);

#ifdef __cplusplus
}
#endif
