// The CUDA forward pass: the same ragged-batch contract as engine/forward.h (every token carries
// its KV slot and position; the output is the post-norm final hidden state; the LM head is a
// separate call), with weights converted once to f16 or bf16 in ONE device allocation and the
// KV cache + activations + scratch in ONE device arena. Batched greedy decode runs with token
// and position on the device, one step captured as a CUDA graph and replayed with no host
// synchronization per token. The CPU engine (engine/forward.h) is its oracle.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "engine/model.h"
#include "kernels/cuda/control.h"
#include "kernels/cuda/cuda_common.h"
#include "kernels/cuda/matmul.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    float *attn_norm; // (hidden_size) fp32
    float *mlp_norm;  // (hidden_size) fp32
    void *wqkv;       // (q_dim + 2*kv_dim, hidden_size): rows of wq, then wk, then wv
    void *wo;         // (hidden_size, q_dim)
    void *wgu;        // (2*intermediate_size, hidden_size): rows of w_gate, then w_up
    void *wdown;      // (hidden_size, intermediate_size)
} rc_cuda_layer;

typedef struct {
    rc_config cfg;
    rc_cuda_dtype dt;           // weights, KV cache and matmul operands: f16 or bf16 (f32 runs
                                // the same code in full precision, to test against the CPU)
    int n_slots, max_len, max_tokens;
    int n_sms;                  // multiprocessors of the device
    cudaStream_t stream;
    rc_cuda_blas blas;          // gemv_batch1 chooses the hand-written GEMV for n == 1
    int fuse_gemv;              // with the GEMV: RMSNorm and SwiGLU fused into it (default 1)

    // weights: one allocation
    void *wbuf;
    size_t wbytes;
    void *embed;                // (vocab_size, hidden_size)
    rc_cuda_layer *layers;      // host array (num_hidden_layers) of device pointers
    float *norm;                // (hidden_size) fp32
    void *lm_head;              // (vocab_size, hidden_size); == embed when tied; NULL for reward
    void *score;                // (num_labels, hidden_size) reward head; NULL for causal LMs

    // arena: KV cache, activations, scratch
    void *abuf;
    size_t abytes;
    void *k_cache, *v_cache;    // (num_hidden_layers, n_slots, max_len, kv_dim)
    float *rope_cos, *rope_sin; // (max_len, head_dim/2)
    float *x;                   // (max_tokens, hidden_size) residual stream, fp32
    void *xb;                   // (max_tokens, hidden_size) normed input of a projection
    float *qkv;                 // (max_tokens, q_dim + 2*kv_dim)
    float *q;                   // (max_tokens, q_dim) rotated queries
    void *att;                  // (max_tokens, q_dim) attention output
    float *gu;                  // (max_tokens, 2*intermediate_size) gate | up
    void *hb;                   // (max_tokens, intermediate_size) SwiGLU output
    float *hidden;              // (max_tokens, hidden_size) post-norm states of the output rows
    void *hidden_t;             // (max_tokens, hidden_size) the same in dt (LM head input)
    float *logits;              // (max_tokens, vocab_size)
    float *attn_part;           // split-KV decode partials
    int *d_ints;                // (9*max_tokens) per call: tokens, slots, positions, output
                                // row indices (n each), prefill attention tiles (4n), and the
                                // rows the outputs go to (rc_cuda_forward_rows)
    int *d_argmax;              // (max_tokens)
    int *dec_tokens, *dec_slots, *dec_pos; // (n_slots) decode state, on the device
    int *dec_step;              // (1) steps run since rc_cuda_decode_run started
    int *dec_hist;              // (max_len, n_slots) tokens chosen by each decode step
    void *workspace;            // cuBLAS workspace
    int *h_stage;               // pinned host staging for per-call ints (9*max_tokens)
    void *ev_stage;             // cudaEvent_t: recorded after h_stage's last copy (reuse waits
                                // only when that copy has not run yet)
    int *h_tok;                 // pinned host copy of the sampled tokens (max_tokens)
    // backend support (engine/backend_cuda.cu)
    float *hidden_tmp;          // (max_tokens, hidden_size) compact final states of one chunk
    float *cap_dev[2];          // (max_tokens, hidden_size) device snapshots for the capture
    float *cap_host[2];         // pinned host copies of them
    float *d_samp;              // (4*max_tokens): uniforms, temperatures, top_p, top_k (as int)
    float *h_samp;              // pinned host staging of d_samp
    cudaStream_t copy_stream;   // device -> host copies of captured states
    // the layers of a decode-only forward_rows chunk (every token alone in its sequence and an
    // output row) replayed as a graph once the same n has come 3 times in a row
    void *rows_graph;           // cudaGraphExec_t, or NULL
    int rows_graph_n;           // n it was captured for
    int rows_last_n, rows_repeat; // the last decode n and how often in a row it came
    int rows_graphs;            // RC_CUDA_ROWS_GRAPH=0 turns the graph off (for A/B timing)
    void *ev_snap[2], *ev_copied[2]; // cudaEvent_t: snapshot taken, copy done

    int n_out;                  // output rows of the last forward (rows of hidden / hidden_t);
                                // -1 when they did not all fit in max_tokens rows
    // decode graph
    void *graph_exec;           // cudaGraphExec_t of one decode step for dec_n sequences
    int graph_n;                // n it was captured for (0: none)
    int dec_n;                  // sequences set by rc_cuda_decode_begin
    int *h_dec_pos;             // (n_slots) host copy of the next positions

    // RE-Control: when control is set (not owned) and control_steps > 0, every post-norm state
    // that rc_cuda_lm_head_last, rc_cuda_greedy_last and the decode step send to the LM head is
    // first moved by control_steps steps of x += control_alpha * grad V(x), in place on the
    // device (so the decode graph holds the whole RE-Control step). Set before decode_begin.
    rc_cuda_value *control;
    float control_alpha;
    int control_steps;
    rc_cuda_value *graph_control; // the control settings the decode graph was captured with
    float graph_alpha;
    int graph_steps;
} rc_cuda_engine;

// 1 when a CUDA device is usable.
int rc_cuda_available(void);

// Converts m's fp32 weights to dt on the device and sizes the KV cache for n_slots sequences of
// max_len positions and scratch for max_tokens tokens per call. Fails with a clear message,
// before anything runs, when weights + KV cache + activations do not fit in free device memory.
int rc_cuda_engine_init(rc_cuda_engine *e, const rc_model *m, rc_cuda_dtype dt, int n_slots,
                        int max_len, int max_tokens);
// The same shape with random weights drawn on the device (uniform, std 0.02 like HF's init;
// norms 1): for benchmarks of real model shapes without a download. cfg must be a causal LM.
int rc_cuda_engine_init_random(rc_cuda_engine *e, const rc_config *cfg, rc_cuda_dtype dt,
                               int n_slots, int max_len, int max_tokens, uint64_t seed);
void rc_cuda_engine_free(rc_cuda_engine *e);

// Bytes rc_cuda_engine_init would allocate on the device (weights, arena).
void rc_cuda_engine_bytes(const rc_config *cfg, rc_cuda_dtype dt, int n_slots, int max_len,
                          int max_tokens, int n_sms, size_t *weight_bytes, size_t *arena_bytes);

// As rc_forward (engine/forward.h), host arrays in and out. The post-norm states of the rows with
// out_rows[i] >= 0 also stay on the device, in batch order, for rc_cuda_lm_head_last /
// rc_cuda_greedy_last. hidden_out may be NULL (nothing copied back). 0 / -1.
int rc_cuda_forward(rc_cuda_engine *e, int n, const int *tokens, const int *slots, const int *pos,
                    const int *out_rows, float *hidden_out);

// logits (n, vocab) host = hidden (n, hidden_size) host @ lm_head^T (e.g. after an edit). 0 / -1.
int rc_cuda_lm_head(rc_cuda_engine *e, int n, const float *hidden, float *logits);
// Logits (n_out, vocab) of the output rows of the last forward, copied to the host. 0 / -1.
int rc_cuda_lm_head_last(rc_cuda_engine *e, float *logits);
// Greedy next token (n_out) of the output rows of the last forward (device argmax). 0 / -1.
int rc_cuda_greedy_last(rc_cuda_engine *e, int *tokens_out);

// Batched greedy decode on the device. begin: n sequences, sequence i lives in slot slots[i],
// its next input token is tokens[i] at position pos[i]. Captures the decode step as a graph for
// this n (once per n). run: replays it n_steps times with no host synchronization in between,
// then copies the chosen tokens out (n_steps, n) when out_tokens is not NULL. Each step
// advances every position by one; run refuses to go past max_len. 0 / -1.
int rc_cuda_decode_begin(rc_cuda_engine *e, int n, const int *slots, const int *pos,
                         const int *tokens);
int rc_cuda_decode_run(rc_cuda_engine *e, int n_steps, int *out_tokens);

// ---- the CUDA backend's entry points (engine/backend_cuda.cu; looked up by engine/backend.c) ----
// 1 when a device can be used; else 0 with the reason in why.
int rc_cuda_device_usable(char *why, size_t cap);

// ---- what the backend (engine/backend_cuda.cu) adds over the calls above ----
// As rc_cuda_forward, but token i with out_rows[i] >= 0 leaves its post-norm state in row
// out_rows[i] of e->hidden (rows are not compacted; rows may span chunks), nothing to the host.
int rc_cuda_forward_rows(rc_cuda_engine *e, int n, const int *tokens, const int *slots,
                         const int *pos, const int *out_rows);
// e->logits rows [0, n) = LM head of e->hidden rows [0, n) (through hidden_t, in dt). 0 / -1.
int rc_cuda_rows_lm_head(rc_cuda_engine *e, int n);
// e->logits rows [0, n) (num_labels wide) = reward head of e->hidden rows [0, n). 0 / -1.
int rc_cuda_rows_reward(rc_cuda_engine *e, int n);

#ifdef __cplusplus
}
#endif
