// The CPU forward pass over a ragged batch (engine/forward.h): embedding, then per layer
// RMSNorm -> q/k/v -> RoPE -> K/V written to the cache -> causal GQA attention over the slot ->
// o_proj + residual -> RMSNorm -> SwiGLU MLP + residual; the final RMSNorm only for the rows the
// caller asks for. Weights in their stored type (kernels/cpu/qmatmul.h), activations and sums in
// fp32; every buffer is allocated once in rc_engine_init.
#define _GNU_SOURCE
#include "engine/forward.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/common.h"
#include "kernels/cpu/add.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/qmatmul.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/swiglu.h"

#define RC_MAX_HEAD_DIM_CPU 512 // the attention kernel's per-head stack accumulator

void rc_engine_free(rc_engine *e) {
    if (!e) return;
    free(e->kv.k);
    free(e->kv.v);
    free(e->x);
    free(e->xb);
    free(e->q);
    free(e->k);
    free(e->v);
    free(e->att_out);
    free(e->hb);
    free(e->hb2);
    free(e->att_scores);
    free(e->rope_cos);
    free(e->rope_sin);
    memset(e, 0, sizeof *e);
}

int rc_engine_init(rc_engine *e, const rc_model *m, int n_slots, int max_len, int max_tokens) {
    memset(e, 0, sizeof *e);
    if (!m || !m->w.layers || !m->w.embed_tokens) return rc_fail("rc_engine_init: no model loaded");
    const rc_config *c = &m->cfg;
    if (n_slots < 1 || max_len < 1 || max_tokens < 1)
        return rc_fail("rc_engine_init: n_slots (%d), max_len (%d) and max_tokens (%d) must be >= 1",
                       n_slots, max_len, max_tokens);
    if (c->head_dim > RC_MAX_HEAD_DIM_CPU || c->head_dim % 2)
        return rc_fail("rc_engine_init: head_dim %d unsupported by the CPU path (even, <= %d)",
                       c->head_dim, RC_MAX_HEAD_DIM_CPU);
    if (c->num_key_value_heads < 1 || c->num_attention_heads % c->num_key_value_heads)
        return rc_fail("rc_engine_init: num_attention_heads %d is not a multiple of "
                       "num_key_value_heads %d",
                       c->num_attention_heads, c->num_key_value_heads);
    const size_t d = (size_t)c->hidden_size, hd = (size_t)c->head_dim;
    const size_t q_dim = (size_t)c->num_attention_heads * hd;
    const size_t kv_dim = (size_t)c->num_key_value_heads * hd;
    const size_t inter = (size_t)c->intermediate_size;
    const size_t xb_dim = d > q_dim ? d : q_dim;
    // Sizes in double first so that absurd requests fail with a message instead of overflowing.
    double kv_floats = 2.0 * c->num_hidden_layers * n_slots * (double)max_len * (double)kv_dim;
    double scratch_floats = (double)max_tokens * (double)(d + xb_dim + q_dim + 2 * kv_dim + q_dim +
                                                          2 * inter) +
                            (double)max_len * (double)hd;
    double need = 4.0 * (kv_floats + scratch_floats);
    double avail = rc_memory_available_bytes();
    if (need > 1e15 || (avail > 0 && need > avail))
        return rc_fail("rc_engine_init: the KV cache (%d slots x %d positions x %d layers) and "
                       "scratch for %d tokens need %.2f GiB but only %.2f GiB of memory is "
                       "available; lower the batch size or the maximum length",
                       n_slots, max_len, c->num_hidden_layers, max_tokens, need / 1073741824.0,
                       avail / 1073741824.0);

    e->model = m;
    e->n_threads = 0;
    e->max_tokens = max_tokens;
    e->kv.n_slots = n_slots;
    e->kv.max_len = max_len;
    e->kv.n_layers = c->num_hidden_layers;
    e->kv.kv_dim = (int)kv_dim;
    const size_t kv_n = (size_t)c->num_hidden_layers * n_slots * (size_t)max_len * kv_dim;
    const size_t T = (size_t)max_tokens;
    if (!(e->kv.k = rc_malloc(kv_n * sizeof(float), "the KV cache (keys)")) ||
        !(e->kv.v = rc_malloc(kv_n * sizeof(float), "the KV cache (values)")) ||
        !(e->x = rc_malloc(T * d * sizeof(float), "forward scratch x")) ||
        !(e->xb = rc_malloc(T * xb_dim * sizeof(float), "forward scratch xb")) ||
        !(e->q = rc_malloc(T * q_dim * sizeof(float), "forward scratch q")) ||
        !(e->k = rc_malloc(T * kv_dim * sizeof(float), "forward scratch k")) ||
        !(e->v = rc_malloc(T * kv_dim * sizeof(float), "forward scratch v")) ||
        !(e->att_out = rc_malloc(T * q_dim * sizeof(float), "forward scratch att_out")) ||
        !(e->hb = rc_malloc(T * inter * sizeof(float), "forward scratch hb")) ||
        !(e->hb2 = rc_malloc(T * inter * sizeof(float), "forward scratch hb2")) ||
        !(e->rope_cos = rc_malloc((size_t)max_len * hd / 2 * sizeof(float), "RoPE cos table")) ||
        !(e->rope_sin = rc_malloc((size_t)max_len * hd / 2 * sizeof(float), "RoPE sin table"))) {
        rc_engine_free(e);
        return rc_fail_ctx("rc_engine_init");
    }
    e->att_scores = NULL; // the attention kernel uses an online softmax: no score buffer
    float inv_freq[RC_MAX_HEAD_DIM_CPU / 2];
    rc_rope_inv_freq(c, inv_freq);
    rc_cpu_rope_tables(e->rope_cos, e->rope_sin, inv_freq, c->head_dim, max_len);
    return 0;
}

// One chunk of at most max_tokens tokens (already validated).
static void forward_chunk(rc_engine *e, int n, const int *tokens, const int *slots, const int *pos,
                          const int *out_rows, float *hidden_out) {
    const rc_model *m = e->model;
    const rc_config *c = &m->cfg;
    const int d = c->hidden_size, hd = c->head_dim;
    const int nh = c->num_attention_heads, nkv = c->num_key_value_heads;
    const int kv_dim = nkv * hd, inter = c->intermediate_size;
    const int max_len = e->kv.max_len;
    const size_t layer_stride = (size_t)e->kv.n_slots * max_len * kv_dim;
    const float scale = 1.0f / sqrtf((float)hd);
    float *x = e->x, *xb = e->xb;

    for (int i = 0; i < n; i++) rc_qmat_rows_f32(m->w.embed_tokens, tokens[i], 1, x + (size_t)i * d);
    for (int l = 0; l < c->num_hidden_layers; l++) {
        const rc_layer_weights *w = &m->w.layers[l];
        float *kc = e->kv.k + l * layer_stride, *vc = e->kv.v + l * layer_stride;
        // attention block
        rc_cpu_rmsnorm(xb, x, w->attn_norm, n, d, c->rms_norm_eps);
        {
            float *const ys[3] = {e->q, e->k, e->v};
            const rc_qmat *const ws[3] = {&w->wq, &w->wk, &w->wv};
            rc_cpu_qmatmul_multi(3, ys, ws, xb, n);
        }
        rc_cpu_rope(e->q, n, nh, hd, pos, e->rope_cos, e->rope_sin);
        rc_cpu_rope(e->k, n, nkv, hd, pos, e->rope_cos, e->rope_sin);
        for (int i = 0; i < n; i++) {
            size_t off = ((size_t)slots[i] * max_len + (size_t)pos[i]) * kv_dim;
            memcpy(kc + off, e->k + (size_t)i * kv_dim, sizeof(float) * (size_t)kv_dim);
            memcpy(vc + off, e->v + (size_t)i * kv_dim, sizeof(float) * (size_t)kv_dim);
        }
        rc_cpu_attention(e->att_out, e->q, kc, vc, slots, pos, n, nh, nkv, hd, max_len, scale);
        rc_cpu_qmatmul(xb, e->att_out, &w->wo, n);
        rc_cpu_add(x, xb, (size_t)n * d);
        // MLP block
        rc_cpu_rmsnorm(xb, x, w->mlp_norm, n, d, c->rms_norm_eps);
        {
            float *const ys[2] = {e->hb, e->hb2};
            const rc_qmat *const ws[2] = {&w->w_gate, &w->w_up};
            rc_cpu_qmatmul_multi(2, ys, ws, xb, n);
        }
        rc_cpu_swiglu(e->hb, e->hb, e->hb2, (size_t)n * inter);
        rc_cpu_qmatmul(xb, e->hb, &w->w_down, n);
        rc_cpu_add(x, xb, (size_t)n * d);
    }
    if (!out_rows) return;
    for (int i = 0; i < n; i++)
        if (out_rows[i] >= 0)
            rc_cpu_rmsnorm(hidden_out + (size_t)out_rows[i] * d, x + (size_t)i * d, m->w.norm, 1, d,
                           c->rms_norm_eps);
}

int rc_forward(rc_engine *e, int n, const int *tokens, const int *slots, const int *pos,
               const int *out_rows, float *hidden_out) {
    if (!e || !e->model) return rc_fail("rc_forward: engine not initialised");
    if (n < 0) return rc_fail("rc_forward: negative token count %d", n);
    if (n == 0) return 0;
    if (!tokens || !slots || !pos) return rc_fail("rc_forward: tokens, slots and pos are required");
    if (out_rows && !hidden_out) return rc_fail("rc_forward: out_rows given without hidden_out");
    const rc_config *c = &e->model->cfg;
    for (int i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size)
            return rc_fail("rc_forward: token %d (batch index %d) is outside the vocabulary [0, %d)",
                           tokens[i], i, c->vocab_size);
        if (slots[i] < 0 || slots[i] >= e->kv.n_slots)
            return rc_fail("rc_forward: slot %d (batch index %d) is outside the KV cache's %d slots",
                           slots[i], i, e->kv.n_slots);
        if (pos[i] < 0 || pos[i] >= e->kv.max_len)
            return rc_fail("rc_forward: position %d (batch index %d) is beyond the KV cache length "
                           "%d",
                           pos[i], i, e->kv.max_len);
    }
    if (e->n_threads > 0) omp_set_num_threads(e->n_threads);
    // Longer batches run in chunks of max_tokens, in order: a token's earlier positions (same
    // slot, given earlier in the batch) are in the cache before it attends.
    for (int s = 0; s < n; s += e->max_tokens) {
        int cn = n - s < e->max_tokens ? n - s : e->max_tokens;
        forward_chunk(e, cn, tokens + s, slots + s, pos + s, out_rows ? out_rows + s : NULL,
                      hidden_out);
    }
    return 0;
}

void rc_lm_head(rc_engine *e, int n, const float *hidden, float *logits) {
    const rc_model *m = e->model;
    const int d = m->cfg.hidden_size, V = m->cfg.vocab_size;
    if (!m->w.lm_head) { // a reward model has no LM head: make misuse visible, not a crash
        for (size_t i = 0; i < (size_t)n * V; i++) logits[i] = NAN;
        return;
    }
    if (e->n_threads > 0) omp_set_num_threads(e->n_threads);
    (void)d;
    rc_cpu_qmatmul(logits, hidden, m->w.lm_head, n);
}

void rc_reward_head(rc_engine *e, int n, const float *hidden, float *reward) {
    const rc_model *m = e->model;
    const int d = m->cfg.hidden_size, L = m->cfg.num_labels > 0 ? m->cfg.num_labels : 1;
    if (!m->w.score) {
        for (size_t i = 0; i < (size_t)n * L; i++) reward[i] = NAN;
        return;
    }
    (void)d;
    rc_cpu_qmatmul(reward, hidden, m->w.score, n);
}
