// Mid-training checkpoints of `recontrol train`: everything a killed training needs to go on and
// end with the same weights as an uninterrupted run (parameters, Adam moments and step count, the
// epoch order, the shuffle stream's state, the position in the epoch, the partial epoch loss and
// the finished epochs' losses), one safetensors file written atomically (tmp + rename).
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    long step;         // Adam steps taken
    int epoch;         // the epoch to go on with (0-based)
    int in_epoch;      // 1: that epoch's order is drawn (order holds it) and pos batches' worth done
    int64_t pos;       // first position in order of the next batch (in_epoch)
    int nb;            // batches of that epoch done, and the sum of their losses
    double loss_sum;   //
    uint64_t shuffle;  // state of the shuffle stream after the last draw
    int done;          // finished epochs: their train / validation losses and seconds in h_*
    size_t n_params;   //
    int64_t n_order;   // training sequences
    float *params, *m, *v;   // (n_params) each, caller's buffers
    int64_t *order;          // (n_order)
    double *h_tr, *h_va, *h_s; // (done) at least
} rc_train_ckpt;

// Writes c to path (atomically). settings: the text a resume must match (model, data, options).
int rc_train_ckpt_save(const char *path, const char *settings, const char *device, const rc_train_ckpt *c);
// Reads path into c, whose n_params / n_order and buffers are set by the caller (h_* hold
// max_done values); fails naming the file and what differs when the file is not a checkpoint of
// this training (other settings, model size, data) or is damaged. 0 / -1.
int rc_train_ckpt_load(const char *path, const char *settings, rc_train_ckpt *c, int max_done);

#ifdef __cplusplus
}
#endif
