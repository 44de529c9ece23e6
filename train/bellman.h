// The Bellman (temporal-difference) loss of RE-Control's value training, for a batch of ragged
// sequences laid out back to back: rows off[s]..off[s+1]-1 are the valid steps 0..T of sequence s.
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    // Paper (default): per sequence, sum_{t<T} (V_t - sg[V_{t+1}])^2 + (V_T - r)^2; the gradient
    // does not flow through the bootstrap target V_{t+1}; the reward anchors the LAST valid step.
    RC_BELLMAN_PAPER = 0,
    // Reference code (train_value_model.py, train_epoch): the same pairwise term but with the
    // gradient flowing through both V_t and V_{t+1} (no .detach() in training), and the reward
    // term (V_{t*} - r)^2 taken at t* = mask.argmax(dim=1), i.e. the FIRST index where the mask
    // is 1. The reference mask is `arange(len) < n_valid` (valid steps start at 0 and are
    // contiguous), so t* = 0: the reward anchors V_0, the state at the last prompt position.
    // Loss value: sum_{t<T} (V_t - V_{t+1})^2 + (V_0 - r)^2 per sequence, same normalization.
    RC_BELLMAN_REFERENCE = 1,
} rc_bellman_mode;

// v (n_rows): V of every row; off (n_seq+1): row offsets, off[0] = 0, every sequence >= 1 row;
// r (n_seq): rewards. Returns the loss (sum over sequences / n_seq) and, when dv != NULL, writes
// dLoss/dV (n_rows) (overwritten, not accumulated). Sums are accumulated in double.
double rc_bellman_loss(rc_bellman_mode mode, int n_seq, const int64_t *off, const float *v,
                       const float *r, float *dv);
// The same, divided by n_norm instead of n_seq: one rank's part of a batch of n_norm sequences
// (data parallel), whose parts then add up to the whole batch's loss and dLoss/dV.
double rc_bellman_loss_part(rc_bellman_mode mode, int n_seq, int n_norm, const int64_t *off,
                            const float *v, const float *r, float *dv);

#ifdef __cplusplus
}
#endif
