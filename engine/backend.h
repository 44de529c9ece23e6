// One interface over the two engines, the CPU one (engine/forward.h) and the CUDA one
// (engine/forward_cuda.h): a small table of operations, as calm and ggml do it. The generation
// loop (engine/generate.h), the stages, the server and the tests see only this.
//
// A backend owns the KV cache and the post-norm final hidden states of its last forward, kept
// as "rows" where they were computed, so the RE-Control edit, the LM head, the sampler and the
// reward head run on the same device with no copy to the host in between:
//   forward -> [capture_begin/wait: states to the host] -> [edit] -> sample | logits | reward
// The CUDA backend lives in the module librecontrol_cuda.so (built with the CUDA toolkit),
// loaded only when a CUDA backend is opened, so a CPU run never loads the CUDA libraries.
#pragma once
#include <stdint.h>
#include <stdio.h>

#include "engine/bert.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/value_mlp.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { RC_DEVICE_CPU = 0, RC_DEVICE_CUDA = 1 } rc_device;
// Weight type of a device copy of the model (the CUDA engine converts once at load; f32 runs
// the same kernels in full precision, to test against the CPU). The CPU backend ignores it.
typedef enum { RC_WT_F32 = 0, RC_WT_F16 = 1, RC_WT_BF16 = 2 } rc_wtype;

typedef struct {
    rc_device device; //
    rc_wtype wtype;   // CUDA weight type (default f16)
    int n_slots;      // sequences the KV cache holds
    int max_len;      // positions per sequence
    int max_tokens;   // tokens one forward call may take (0: 256); longer calls are chunked
    int n_threads;    // CPU threads (0: all)
    int gpu;          // CUDA device ordinal (0; the local rank under a launcher)
} rc_backend_opts;

typedef struct rc_backend rc_backend;

typedef struct {
    const char *name; // "cpu" / "cuda"
    // Ragged-batch forward (contract of engine/forward.h). Token i with out_rows[i] >= 0 leaves
    // its post-norm state in row out_rows[i]; rows run 0..n_out-1 with n_out <= row capacity.
    int (*forward)(rc_backend *b, int n, const int *tokens, const int *slots, const int *pos,
                   const int *out_rows);
    // Starts copying rows [0, n) (fp32) to host staging buffer `buf` (0 or 1) without waiting
    // (CUDA: a device snapshot, then an asynchronous copy on a second stream through pinned
    // memory); capture_wait returns the host rows once the copy is done, valid until the next
    // capture_begin on the same buffer. Later edits of the rows do not change the copy.
    int (*capture_begin)(rc_backend *b, int n, int buf);
    const float *(*capture_wait)(rc_backend *b, int buf);
    // Copies host states (n, hidden_size) into rows [0, n) (to run the heads on edited or given
    // states).
    int (*set_rows)(rc_backend *b, int n, const float *host);
    // Uploads a value network (not owned; must outlive the backend) and returns its control id.
    int (*control_add)(rc_backend *b, const rc_value_mlp *v);
    // RE-Control: rows [row0, row0 + n) move by `steps` steps of x += alpha * grad V(x).
    int (*edit)(rc_backend *b, int control, int row0, int n, float alpha, int steps);
    // logits (n, vocab_size) of rows [0, n) to the host.
    int (*logits)(rc_backend *b, int n, float *host);
    // Next token of each row [0, n): sp[i] its sampling parameters (temperature 0 = greedy),
    // u[i] one uniform draw in [0, 1) from that sequence's generator (unused when greedy).
    int (*sample)(rc_backend *b, int n, const rc_sample_params *sp, const float *u, int *tokens);
    // reward (n, num_labels) of rows [0, n) (reward models) to the host.
    int (*reward)(rc_backend *b, int n, float *host);
    void (*free)(rc_backend *b);
} rc_backend_ops;

struct rc_backend {
    const rc_backend_ops *ops;
    const rc_model *model; // not owned
    rc_config cfg;         // the model's config
    rc_device device;      //
    int n_slots, max_len, max_tokens;
    int row_cap;           // rows a forward may leave (max(max_tokens, n_slots))
    int n_controls;        // value networks added (control ids 0..n_controls-1)
    void *impl;            // the engine behind it
};

// Opens a backend for a loaded model. CUDA: a clear error when this build has no CUDA backend,
// the module is missing, there is no device, or the model does not fit. 0 / -1.
int rc_backend_open(rc_backend **b, const rc_model *m, const rc_backend_opts *o);
void rc_backend_close(rc_backend *b);
// A CUDA backend of cfg's shape with random weights drawn on the device (benchmarks of real
// model shapes without a download or a host copy of the weights). 0 / -1.
int rc_backend_open_random(rc_backend **b, const rc_config *cfg, const rc_backend_opts *o,
                           uint64_t seed);

// "cpu" / "cuda" -> device; "f32" / "f16" / "bf16" -> weight type. 0 / -1 naming the choices.
int rc_device_parse(const char *s, rc_device *d);
int rc_wtype_parse(const char *s, rc_wtype *t);
const char *rc_device_name(rc_device d);
const char *rc_wtype_name(rc_wtype t);
// "cpu" or "cuda-f16" / "cuda-bf16" / "cuda-f32": what computed a run's numbers (run manifests
// record it so that a resume does not mix engines). Returns buf.
const char *rc_engine_name(rc_device d, rc_wtype t, char *buf, size_t cap);

// A symbol of the CUDA code: the module's (loaded on first use), or NULL when there is none (no
// CUDA build, module missing). For CUDA entry points outside the backend table (value training).
void *rc_cuda_module_symbol(const char *name);

// 0 when a backend of this kind can run here; -1 with "built without CUDA", "the CUDA module
// ... is missing" or "no CUDA device: <reason>".
int rc_device_check(rc_device d);
// Prints what the device side has: driver and runtime versions, each device with its memory,
// SM count and compute capability, and the libraries found (CUDA module, cuBLAS). 0 / -1.
int rc_device_info(FILE *f);

// Checked dispatch (argument and capacity checks, then the backend's operation). 0 / -1.
int rc_backend_forward(rc_backend *b, int n, const int *tokens, const int *slots, const int *pos,
                       const int *out_rows);
int rc_backend_capture_begin(rc_backend *b, int n, int buf);
const float *rc_backend_capture_wait(rc_backend *b, int buf);
int rc_backend_set_rows(rc_backend *b, int n, const float *host);
int rc_backend_control_add(rc_backend *b, const rc_value_mlp *v);
int rc_backend_edit(rc_backend *b, int control, int row0, int n, float alpha, int steps);
int rc_backend_logits(rc_backend *b, int n, float *host);
int rc_backend_sample(rc_backend *b, int n, const rc_sample_params *sp, const float *u,
                      int *tokens);
int rc_backend_reward(rc_backend *b, int n, float *host);

// ---- BERT encoders (the coherence metric's sentence embeddings) on either device ----------------
// An encoder holds a loaded BERT (not owned; it must outlive the encoder) on its device: the CPU
// runs engine/bert.c's forward, CUDA a device copy of the weights in fp32 (kernels/cuda/encoder.h
// plus cuBLAS fp32 products, engine/bert_cuda.cu). Batches are ragged: no padding is computed.

typedef struct rc_encoder rc_encoder;

typedef struct {
    // A checked batch that fits: n_seq sequences, tokens [seq[s], seq[s + 1]) of ids / types at
    // positions pos; out (n_seq, d) host.
    int (*forward)(rc_encoder *e, int n_seq, const int *ids, const int *types, const int *pos,
                   const int *seq, rc_bert_pool pool, float *out);
    void (*free)(rc_encoder *e);
} rc_encoder_ops;

struct rc_encoder {
    const rc_encoder_ops *ops;
    const rc_bert *model; // not owned
    rc_device device;
    int max_tokens;       // tokens one device call takes (longer batches are split by sequence)
    int max_seqs;         // sequences one device call takes
    void *impl;
};

// Opens an encoder for m on device d (GPU ordinal gpu); max_tokens: tokens per device call (at
// least max_position_embeddings; 0: 8192). CUDA: the same clear errors as rc_backend_open. 0 / -1.
int rc_encoder_open(rc_encoder **e, const rc_bert *m, rc_device d, int gpu, int max_tokens);
void rc_encoder_close(rc_encoder *e);
// Embeddings out (n_seq, d) of n_seq sequences of lens[s] tokens given back to back in ids (and
// types, NULL: all 0): the pooler output or the last layer's [CLS] state, not normalized. The
// batch is checked (rc_bert_check_batch) and run in as many device calls as it needs. 0 / -1.
int rc_encoder_forward(rc_encoder *e, int n_seq, const int *ids, const int *types, const int *lens,
                       rc_bert_pool pool, float *out);

#ifdef __cplusplus
}
#endif
