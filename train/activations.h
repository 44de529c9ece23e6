// Reader for the activation dataset of stage 1 (extract) + stage 2 (label), in one run dir:
//   DIR/acts-00000.safetensors, acts-00001..., consecutive from 00000: each holds
//     hidden  [n_steps, d]   F32 | F16 | BF16   post-norm states, sequences back to back
//     offsets [n_seq + 1]    I64                 offsets[0] = 0, strictly increasing (every
//                                                sequence has >= 1 valid step: 0..T), last = n_steps
//   Sequences are numbered globally in shard order (shard 0's first, ...).
//   DIR/rewards.jsonl: one JSON object per line {"index": i, "reward": r} (other fields ignored),
//     i the global sequence index; every index 0..n_seq-1 exactly once, any order.
// Shards stay memory-mapped; rows are converted to fp32 only when gathered into a batch.
#pragma once
#include <stdint.h>

#include "base/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int n_shards;
    rc_safetensors *shards;  // (n_shards)
    int d;                   // state width
    int64_t n_seq;           // sequences in all shards
    int64_t n_steps;         // rows in all shards
    int *seq_shard;          // (n_seq) shard of each sequence
    int64_t *seq_row;        // (n_seq) first row inside its shard
    int *seq_len;            // (n_seq) valid steps (T+1)
    float *reward;           // (n_seq)
    int max_len;             // longest sequence
} rc_acts;

// Opens DIR (shards + rewards.jsonl). Errors name the file, the tensor and what was expected.
int rc_acts_open(rc_acts *a, const char *dir);
// Opens shards only (no rewards: reward[] all 0), e.g. to inspect states.
int rc_acts_open_states(rc_acts *a, const char *dir);
void rc_acts_close(rc_acts *a);

// The reference's pad convention (get_activations_only.py): the new tokens equal to pad_id count
// as padding, and a sequence of L states keeps its first L - (that count) (the state that emits
// an EOS equal to pad_id, and nothing else, since extract stops at EOS). Falcon: pad = EOS = 11,
// Llama-3: pad = 128001 (<|end_of_text|>; an <|eot_id|> end stays valid), Vicuna: 0 (<unk>,
// never emitted: every step valid). Reads each sequence's "tokens" from DIR's
// responses-NNNNN.jsonl; sequences left with no state are dropped (renumbered: ids are positions
// in the arrays). *masked: states removed, *dropped: sequences removed. 0 / -1.
int rc_acts_mask_pad(rc_acts *a, const char *dir, int pad_id, int64_t *masked, int64_t *dropped);

// Gathers sequences ids[0..n-1] back to back: rows (sum len, d) fp32, off (n+1), r (n) (may be
// NULL). The caller sizes rows with rc_acts_rows(). 0 / -1.
int rc_acts_gather(const rc_acts *a, int n, const int64_t *ids, float *rows, int64_t *off, float *r);
int64_t rc_acts_rows(const rc_acts *a, int n, const int64_t *ids);
// As rc_acts_gather but the states as stored, when every sequence of the batch comes from a
// 16-bit tensor of one type (F16 or BF16, returned in *dtype as RC_DT_*): rows holds (sum len, d)
// 2-byte elements. Returns 1 (nothing written) when the batch mixes types or holds F32. 0 / 1 / -1.
int rc_acts_gather_raw(const rc_acts *a, int n, const int64_t *ids, void *rows, int64_t *off, float *r,
                       int *dtype);

// Deterministic split of 0..n_seq-1 by a seeded shuffle: the first n_val (round(val_frac*n_seq),
// at least 1 when val_frac > 0 and n_seq >= 2) go to val, the rest to train, each kept sorted.
// Arrays malloc'd. 0 / -1.
int rc_acts_split(int64_t n_seq, double val_frac, uint64_t seed, int64_t **train, int64_t *n_train,
                  int64_t **val, int64_t *n_val);

// Seeded Fisher-Yates shuffle (splitmix64 stream), used for the split and epoch orders.
void rc_shuffle_i64(int64_t *x, int64_t n, uint64_t *state);

#ifdef __cplusplus
}
#endif
