// The CUDA engine (engine/forward_cuda.h). Per layer, for n tokens of a ragged batch:
//   rmsnorm(x) -> xb | xb @ Wqkv^T -> qkv (fp32) | RoPE(q,k), k/v scattered into the cache |
//   attention (prefill tiles, or split-KV decode when every token is alone in its sequence) |
//   x += att @ Wo^T (beta = 1 in the product) | rmsnorm(x) -> xb | xb @ Wgu^T -> gate|up |
//   SwiGLU -> hb | x += hb @ Wdown^T. For n == 1 with the GEMV (fuse_gemv), the RMSNorms and the
//   SwiGLU are computed inside the GEMVs that read their outputs: 7 launches per layer, not 10.
// Weights live in one device allocation (wbuf), everything else in one arena (abuf); nothing is
// allocated after init except the decode graph.
#include <stdlib.h>
#include <string.h>

#include "engine/forward_cuda.h"
#include "kernels/cpu/rope.h"
#include "kernels/cuda/argmax.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/convert.h"
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/rmsnorm.h"
#include "kernels/cuda/rope.h"
#include "kernels/cuda/swiglu.h"

#define ALIGN 256
#define WORKSPACE_BYTES ((size_t)32 << 20)
#define STAGE_FLOATS ((size_t)16 << 20) // 64 MiB device staging for the fp32 -> dt upload
#define MARGIN_BYTES ((size_t)512 << 20) // CUDA context, cuBLAS handle, graph, fragmentation

#define TRY(call)                                                                                \
    do {                                                                                         \
        if ((call) != 0) return -1;                                                              \
    } while (0)

extern "C" int rc_cuda_available(void) { return rc_cuda_device_count() > 0; }

// ---- layout: one pass computes sizes, a second assigns pointers --------------------------------

static size_t take(size_t *off, size_t bytes) {
    size_t at = (*off + ALIGN - 1) / ALIGN * ALIGN;
    *off = at + bytes;
    return at;
}

#define PLACE(base, off, ptr, type, bytes)                                                       \
    do {                                                                                         \
        size_t at_ = take(off, bytes);                                                           \
        if (base) ptr = (type)((char *)(base) + at_);                                            \
    } while (0)

// Sizes (and with e != NULL and bases set, pointers) of the weight buffer and the arena.
static void plan(const rc_config *c, rc_cuda_dtype dt, int S, int max_len, int M, int n_sms,
                 rc_cuda_engine *e, char *wbase, char *abase, size_t *wb, size_t *ab) {
    size_t es = rc_cuda_dtype_size(dt);
    size_t d = c->hidden_size, hd = c->head_dim, nh = c->num_attention_heads;
    size_t nkv = c->num_key_value_heads, F = c->intermediate_size, V = c->vocab_size;
    size_t L = c->num_hidden_layers, qd = nh * hd, kvd = nkv * hd, qkvd = qd + 2 * kvd;
    size_t off = 0;
    // weights
    PLACE(wbase, &off, e->embed, void *, V * d * es);
    for (size_t l = 0; l < L; l++) {
        rc_cuda_layer tmp, *ly = e ? &e->layers[l] : &tmp;
        PLACE(wbase, &off, ly->attn_norm, float *, d * 4);
        PLACE(wbase, &off, ly->mlp_norm, float *, d * 4);
        PLACE(wbase, &off, ly->wqkv, void *, qkvd * d * es);
        PLACE(wbase, &off, ly->wo, void *, d * qd * es);
        PLACE(wbase, &off, ly->wgu, void *, 2 * F * d * es);
        PLACE(wbase, &off, ly->wdown, void *, d * F * es);
    }
    PLACE(wbase, &off, e->norm, float *, d * 4);
    if (c->arch == RC_ARCH_CAUSAL_LM && !c->tie_word_embeddings)
        PLACE(wbase, &off, e->lm_head, void *, V * d * es);
    if (c->arch == RC_ARCH_REWARD) PLACE(wbase, &off, e->score, void *, (size_t)c->num_labels * d * es);
    *wb = off;
    // arena
    off = 0;
    size_t m = M;
    size_t kv_bytes = L * S * (size_t)max_len * kvd * es;
    PLACE(abase, &off, e->k_cache, void *, kv_bytes);
    PLACE(abase, &off, e->v_cache, void *, kv_bytes);
    PLACE(abase, &off, e->rope_cos, float *, (size_t)max_len * hd / 2 * 4);
    PLACE(abase, &off, e->rope_sin, float *, (size_t)max_len * hd / 2 * 4);
    PLACE(abase, &off, e->x, float *, m * d * 4);
    PLACE(abase, &off, e->xb, void *, m * d * es);
    PLACE(abase, &off, e->qkv, float *, m * qkvd * 4);
    PLACE(abase, &off, e->q, float *, m * qd * 4);
    PLACE(abase, &off, e->att, void *, m * qd * es);
    PLACE(abase, &off, e->gu, float *, m * 2 * F * 4);
    PLACE(abase, &off, e->hb, void *, m * F * es);
    PLACE(abase, &off, e->hidden, float *, m * d * 4);
    PLACE(abase, &off, e->hidden_t, void *, m * d * es);
    PLACE(abase, &off, e->logits, float *, m * V * 4);
    // n*heads*splits <= 4*SMs + n*heads (see rc_cuda_attention_decode_splits)
    PLACE(abase, &off, e->attn_part, float *, ((size_t)4 * n_sms + nh + m * nh) * (hd + 2) * 4);
    PLACE(abase, &off, e->d_ints, int *, 9 * m * 4);
    PLACE(abase, &off, e->hidden_tmp, float *, m * d * 4);
    PLACE(abase, &off, e->cap_dev[0], float *, m * d * 4);
    PLACE(abase, &off, e->cap_dev[1], float *, m * d * 4);
    PLACE(abase, &off, e->d_samp, float *, 4 * m * 4);
    PLACE(abase, &off, e->d_argmax, int *, m * 4);
    PLACE(abase, &off, e->dec_tokens, int *, (size_t)S * 4);
    PLACE(abase, &off, e->dec_slots, int *, (size_t)S * 4);
    PLACE(abase, &off, e->dec_pos, int *, (size_t)S * 4);
    PLACE(abase, &off, e->dec_step, int *, 4);
    PLACE(abase, &off, e->dec_hist, int *, (size_t)max_len * S * 4);
    PLACE(abase, &off, e->workspace, void *, WORKSPACE_BYTES);
    *ab = off;
}

extern "C" void rc_cuda_engine_bytes(const rc_config *cfg, rc_cuda_dtype dt, int n_slots,
                                     int max_len, int max_tokens, int n_sms, size_t *weight_bytes,
                                     size_t *arena_bytes) {
    rc_cuda_engine tmp;
    memset(&tmp, 0, sizeof tmp);
    rc_cuda_layer *ly = (rc_cuda_layer *)calloc((size_t)cfg->num_hidden_layers, sizeof *ly);
    tmp.layers = ly;
    plan(cfg, dt, n_slots, max_len, max_tokens, n_sms, ly ? &tmp : NULL, NULL, NULL, weight_bytes,
         arena_bytes);
    free(ly);
}

extern "C" void rc_cuda_engine_free(rc_cuda_engine *e) {
    if (!e) return;
    if (e->graph_exec) cudaGraphExecDestroy((cudaGraphExec_t)e->graph_exec);
    if (e->rows_graph) cudaGraphExecDestroy((cudaGraphExec_t)e->rows_graph);
    rc_cuda_blas_free(&e->blas);
    if (e->wbuf) cudaFree(e->wbuf);
    if (e->abuf) cudaFree(e->abuf);
    if (e->h_stage) cudaFreeHost(e->h_stage);
    for (int i = 0; i < 2; i++) {
        if (e->cap_host[i]) cudaFreeHost(e->cap_host[i]);
        if (e->ev_snap[i]) cudaEventDestroy((cudaEvent_t)e->ev_snap[i]);
        if (e->ev_copied[i]) cudaEventDestroy((cudaEvent_t)e->ev_copied[i]);
    }
    if (e->h_samp) cudaFreeHost(e->h_samp);
    if (e->h_tok) cudaFreeHost(e->h_tok);
    if (e->ev_stage) cudaEventDestroy((cudaEvent_t)e->ev_stage);
    if (e->copy_stream) cudaStreamDestroy(e->copy_stream);
    if (e->stream) cudaStreamDestroy(e->stream);
    free(e->layers);
    free(e->h_dec_pos);
    memset(e, 0, sizeof *e);
}

static double gib(size_t b) { return (double)b / (1024.0 * 1024.0 * 1024.0); }

// Everything init needs before weights are written: checks, allocation, tables, handles.
static int engine_setup(rc_cuda_engine *e, const rc_config *c, rc_cuda_dtype dt, int n_slots,
                        int max_len, int max_tokens) {
    memset(e, 0, sizeof *e);
    if (dt != RC_CUDA_F32 && dt != RC_CUDA_F16 && dt != RC_CUDA_BF16)
        return rc_fail("CUDA engine: unknown weight dtype %d", (int)dt);
    if (n_slots < 1 || max_len < 1 || max_tokens < 1)
        return rc_fail("CUDA engine: n_slots %d, max_len %d, max_tokens %d must all be >= 1",
                       n_slots, max_len, max_tokens);
    if (max_tokens > 65535)
        return rc_fail("CUDA engine: max_tokens %d is above 65535 (one launch's grid rows)",
                       max_tokens);
    int hd = c->head_dim;
    if (hd % 8 || hd > 256 || c->num_key_value_heads < 1 ||
        c->num_attention_heads % c->num_key_value_heads)
        return rc_fail("CUDA engine: head_dim %d (must be a multiple of 8, <= 256) or heads %d / "
                       "KV heads %d unsupported",
                       hd, c->num_attention_heads, c->num_key_value_heads);
    if (rc_cuda_device_count() < 1) return rc_fail("CUDA engine: no CUDA device is available");
    e->cfg = *c;
    e->dt = dt;
    e->n_slots = n_slots;
    e->max_len = max_len;
    e->max_tokens = max_tokens;
    CUDA_CHECK(cudaDeviceGetAttribute(&e->n_sms, cudaDevAttrMultiProcessorCount, 0));
    e->layers = (rc_cuda_layer *)rc_calloc((size_t)c->num_hidden_layers, sizeof(rc_cuda_layer),
                                           "CUDA layer table");
    e->h_dec_pos = (int *)rc_calloc((size_t)n_slots, sizeof(int), "decode positions");
    if (!e->layers || !e->h_dec_pos) return -1;
    size_t wb, ab;
    plan(c, dt, n_slots, max_len, max_tokens, e->n_sms, e, NULL, NULL, &wb, &ab);
    size_t free_b = 0, total_b = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    size_t kv = 2 * (size_t)c->num_hidden_layers * n_slots * (size_t)max_len *
                c->num_key_value_heads * hd * rc_cuda_dtype_size(dt);
    size_t need = wb + ab + STAGE_FLOATS * 4 + MARGIN_BYTES;
    if (need > free_b)
        return rc_fail("CUDA engine: does not fit: weights %.2f GiB (%s) + KV cache %.2f GiB (%d "
                       "slots x %d positions) + activations/scratch %.2f GiB + %.2f GiB reserve = "
                       "%.2f GiB, but the device has %.2f GiB free of %.2f GiB; lower the batch "
                       "(slots), the context length or the tokens per call",
                       gib(wb), rc_cuda_dtype_name(dt), gib(kv), n_slots, max_len,
                       gib(ab - kv), gib(STAGE_FLOATS * 4 + MARGIN_BYTES), gib(need), gib(free_b),
                       gib(total_b));
    CUDA_CHECK(cudaStreamCreateWithFlags(&e->stream, cudaStreamNonBlocking));
    CUDA_CHECK(cudaMalloc(&e->wbuf, wb));
    CUDA_CHECK(cudaMalloc(&e->abuf, ab));
    e->wbytes = wb;
    e->abytes = ab;
    plan(c, dt, n_slots, max_len, max_tokens, e->n_sms, e, (char *)e->wbuf, (char *)e->abuf, &wb,
         &ab);
    if (c->arch == RC_ARCH_CAUSAL_LM && c->tie_word_embeddings) e->lm_head = e->embed;
    CUDA_CHECK(cudaMallocHost((void **)&e->h_stage, (size_t)9 * max_tokens * sizeof(int)));
    CUDA_CHECK(cudaMallocHost((void **)&e->cap_host[0], (size_t)max_tokens * c->hidden_size * 4));
    CUDA_CHECK(cudaMallocHost((void **)&e->cap_host[1], (size_t)max_tokens * c->hidden_size * 4));
    CUDA_CHECK(cudaMallocHost((void **)&e->h_samp, (size_t)4 * max_tokens * 4));
    CUDA_CHECK(cudaMallocHost((void **)&e->h_tok, (size_t)max_tokens * sizeof(int)));
    CUDA_CHECK(cudaEventCreateWithFlags((cudaEvent_t *)&e->ev_stage, cudaEventDisableTiming));
    CUDA_CHECK(cudaStreamCreateWithFlags(&e->copy_stream, cudaStreamNonBlocking));
    for (int i = 0; i < 2; i++) {
        CUDA_CHECK(cudaEventCreateWithFlags((cudaEvent_t *)&e->ev_snap[i], cudaEventDisableTiming));
        CUDA_CHECK(cudaEventCreateWithFlags((cudaEvent_t *)&e->ev_copied[i], cudaEventDisableTiming));
    }
    TRY(rc_cuda_blas_init(&e->blas, e->workspace, WORKSPACE_BYTES));
    e->fuse_gemv = 1;
    const char *rg = getenv("RC_CUDA_ROWS_GRAPH");
    e->rows_graphs = !(rg && !strcmp(rg, "0"));
    // RoPE tables exactly as the CPU engine builds them
    size_t nt = (size_t)max_len * (hd / 2);
    float *inv = (float *)rc_malloc((size_t)hd / 2 * sizeof(float), "RoPE inv_freq");
    float *cs = (float *)rc_malloc(2 * nt * sizeof(float), "RoPE tables");
    if (!inv || !cs) {
        free(inv);
        free(cs);
        return -1;
    }
    rc_rope_inv_freq(c, inv);
    rc_cpu_rope_tables(cs, cs + nt, inv, hd, max_len);
    cudaError_t e1 = cudaMemcpy(e->rope_cos, cs, nt * 4, cudaMemcpyHostToDevice);
    cudaError_t e2 = cudaMemcpy(e->rope_sin, cs + nt, nt * 4, cudaMemcpyHostToDevice);
    free(inv);
    free(cs);
    CUDA_CHECK(e1);
    CUDA_CHECK(e2);
    CUDA_CHECK(cudaDeviceSynchronize()); // legacy-stream copies done before the engine's stream runs
    return 0;
}

// Host fp32 (n) -> device dst of type dt, through a device staging buffer.
static int upload(void *dst, rc_cuda_dtype dt, const float *src, size_t n, float *stage,
                  cudaStream_t s) {
    size_t es = rc_cuda_dtype_size(dt);
    for (size_t i = 0; i < n; i += STAGE_FLOATS) {
        size_t k = n - i < STAGE_FLOATS ? n - i : STAGE_FLOATS;
        if (dt == RC_CUDA_F32) {
            CUDA_CHECK(cudaMemcpyAsync((float *)dst + i, src + i, k * 4, cudaMemcpyHostToDevice, s));
            continue;
        }
        CUDA_CHECK(cudaMemcpyAsync(stage, src + i, k * 4, cudaMemcpyHostToDevice, s));
        TRY(rc_cuda_convert((char *)dst + i * es, dt, stage, RC_CUDA_F32, k, s));
        CUDA_CHECK(cudaStreamSynchronize(s)); // stage is reused by the next chunk
    }
    return 0;
}

// A weight matrix (stored type, e.g. GGUF blocks) -> device dst of type dt: rows are unpacked to
// fp32 on the host (rc_qmat_rows_f32, which also restores HF's Q/K row order) in chunks, then
// uploaded through the staging buffer.
static int upload_qmat(void *dst, rc_cuda_dtype dt, const rc_qmat *w, float *stage, cudaStream_t s) {
    size_t es = rc_cuda_dtype_size(dt), cols = (size_t)w->cols;
    size_t chunk = STAGE_FLOATS / cols > 0 ? STAGE_FLOATS / cols : 1;
    float *host = (float *)malloc(chunk * cols * sizeof(float));
    if (!host) return rc_fail("CUDA upload: out of host memory for %zu rows", chunk);
    for (size_t r = 0; r < (size_t)w->rows; r += chunk) {
        size_t k = (size_t)w->rows - r < chunk ? (size_t)w->rows - r : chunk;
        rc_qmat_rows_f32(w, (int)r, (int)k, host);
        if (upload((char *)dst + r * cols * es, dt, host, k * cols, stage, s)) {
            free(host);
            return -1;
        }
        cudaError_t err = cudaStreamSynchronize(s); // host is reused by the next chunk
        if (err != cudaSuccess) {
            free(host);
            return rc_fail("CUDA upload: %s", cudaGetErrorString(err));
        }
    }
    free(host);
    return 0;
}

static int upload_model(rc_cuda_engine *e, const rc_model *m, float *stage) {
    const rc_config *c = &m->cfg;
    size_t es = rc_cuda_dtype_size(e->dt);
    size_t d = c->hidden_size, hd = c->head_dim, qd = (size_t)c->num_attention_heads * hd;
    size_t kvd = (size_t)c->num_key_value_heads * hd, F = c->intermediate_size;
    cudaStream_t s = e->stream;
    TRY(upload_qmat(e->embed, e->dt, m->w.embed_tokens, stage, s));
    for (int l = 0; l < c->num_hidden_layers; l++) {
        const rc_layer_weights *w = &m->w.layers[l];
        rc_cuda_layer *ly = &e->layers[l];
        TRY(upload(ly->attn_norm, RC_CUDA_F32, w->attn_norm, d, stage, s));
        TRY(upload(ly->mlp_norm, RC_CUDA_F32, w->mlp_norm, d, stage, s));
        TRY(upload_qmat(ly->wqkv, e->dt, &w->wq, stage, s));
        TRY(upload_qmat((char *)ly->wqkv + qd * d * es, e->dt, &w->wk, stage, s));
        TRY(upload_qmat((char *)ly->wqkv + (qd + kvd) * d * es, e->dt, &w->wv, stage, s));
        TRY(upload_qmat(ly->wo, e->dt, &w->wo, stage, s));
        TRY(upload_qmat(ly->wgu, e->dt, &w->w_gate, stage, s));
        TRY(upload_qmat((char *)ly->wgu + F * d * es, e->dt, &w->w_up, stage, s));
        TRY(upload_qmat(ly->wdown, e->dt, &w->w_down, stage, s));
    }
    TRY(upload(e->norm, RC_CUDA_F32, m->w.norm, d, stage, s));
    if (e->lm_head && e->lm_head != e->embed)
        TRY(upload_qmat(e->lm_head, e->dt, m->w.lm_head, stage, s));
    if (e->score) TRY(upload_qmat(e->score, e->dt, m->w.score, stage, s));
    CUDA_CHECK(cudaStreamSynchronize(s));
    return 0;
}

extern "C" int rc_cuda_engine_init(rc_cuda_engine *e, const rc_model *m, rc_cuda_dtype dt,
                                   int n_slots, int max_len, int max_tokens) {
    if (!m || !m->w.layers || !m->w.embed_tokens) {
        memset(e, 0, sizeof *e);
        return rc_fail("CUDA engine: no model loaded");
    }
    if (engine_setup(e, &m->cfg, dt, n_slots, max_len, max_tokens)) {
        rc_fail_ctx("rc_cuda_engine_init");
        rc_cuda_engine_free(e);
        return -1;
    }
    float *stage = NULL;
    cudaError_t err = cudaMalloc((void **)&stage, STAGE_FLOATS * 4);
    int rc = err == cudaSuccess ? upload_model(e, m, stage)
                                : rc_fail("rc_cuda_engine_init: staging buffer: %s",
                                          cudaGetErrorString(err));
    if (stage) cudaFree(stage);
    if (rc) {
        rc_cuda_engine_free(e);
        return -1;
    }
    return 0;
}

extern "C" int rc_cuda_engine_init_random(rc_cuda_engine *e, const rc_config *cfg,
                                          rc_cuda_dtype dt, int n_slots, int max_len,
                                          int max_tokens, uint64_t seed) {
    if (cfg->arch != RC_ARCH_CAUSAL_LM) {
        memset(e, 0, sizeof *e);
        return rc_fail("rc_cuda_engine_init_random: only causal LMs");
    }
    if (engine_setup(e, cfg, dt, n_slots, max_len, max_tokens)) {
        rc_fail_ctx("rc_cuda_engine_init_random");
        rc_cuda_engine_free(e);
        return -1;
    }
    const rc_config *c = cfg;
    size_t d = c->hidden_size, hd = c->head_dim, qd = (size_t)c->num_attention_heads * hd;
    size_t kvd = (size_t)c->num_key_value_heads * hd, F = c->intermediate_size;
    const float a = 0.02f * 1.7320508f; // uniform with std 0.02
    uint64_t k = 0;
    cudaStream_t s = e->stream;
    int rc = rc_cuda_fill_uniform(e->embed, dt, (size_t)c->vocab_size * d, a, 0.f, seed + ++k * 0x9E3779B97F4A7C15ull, s);
    for (int l = 0; l < c->num_hidden_layers && !rc; l++) {
        rc_cuda_layer *ly = &e->layers[l];
        rc = rc_cuda_fill_uniform(ly->attn_norm, RC_CUDA_F32, d, 0.f, 1.f, 0, s) ||
             rc_cuda_fill_uniform(ly->mlp_norm, RC_CUDA_F32, d, 0.f, 1.f, 0, s) ||
             rc_cuda_fill_uniform(ly->wqkv, dt, (qd + 2 * kvd) * d, a, 0.f, seed + ++k * 0x9E3779B97F4A7C15ull, s) ||
             rc_cuda_fill_uniform(ly->wo, dt, d * qd, a, 0.f, seed + ++k * 0x9E3779B97F4A7C15ull, s) ||
             rc_cuda_fill_uniform(ly->wgu, dt, 2 * F * d, a, 0.f, seed + ++k * 0x9E3779B97F4A7C15ull, s) ||
             rc_cuda_fill_uniform(ly->wdown, dt, d * F, a, 0.f, seed + ++k * 0x9E3779B97F4A7C15ull, s);
    }
    if (!rc) rc = rc_cuda_fill_uniform(e->norm, RC_CUDA_F32, d, 0.f, 1.f, 0, s);
    if (!rc && e->lm_head != e->embed)
        rc = rc_cuda_fill_uniform(e->lm_head, dt, (size_t)c->vocab_size * d, a, 0.f, seed + ++k * 0x9E3779B97F4A7C15ull, s);
    if (!rc) {
        cudaError_t err = cudaStreamSynchronize(s);
        if (err != cudaSuccess) rc = rc_fail("rc_cuda_engine_init_random: %s", cudaGetErrorString(err));
    }
    if (rc) {
        rc_cuda_engine_free(e);
        return -1;
    }
    return 0;
}

// ---- the forward -------------------------------------------------------------------------------

// All layers for n tokens whose ids, slots and positions are on the device. splits > 0: every
// token is alone in its sequence, use split-KV decode attention; else the prefill tiles.
static int run_layers(rc_cuda_engine *e, int n, const int *tok, const int *slots, const int *pos,
                      const int *tiles, int n_tiles, int splits) {
    const rc_config *c = &e->cfg;
    const int d = c->hidden_size, hd = c->head_dim, nh = c->num_attention_heads;
    const int nkv = c->num_key_value_heads, F = c->intermediate_size;
    const int qd = nh * hd, kvd = nkv * hd, qkvd = qd + 2 * kvd;
    const float eps = c->rms_norm_eps;
    const size_t es = rc_cuda_dtype_size(e->dt);
    const size_t layer_kv = (size_t)e->n_slots * e->max_len * kvd * es;
    const rc_cuda_dtype dt = e->dt;
    cudaStream_t s = e->stream;
    rc_cuda_blas *b = &e->blas;
    const int fuse = n == 1 && b->gemv_batch1 && e->fuse_gemv; // batch-1: 7 launches per layer, not 10
    TRY(rc_cuda_embedding(e->embed, dt, tok, e->x, n, d, c->vocab_size, s));
    for (int l = 0; l < c->num_hidden_layers; l++) {
        const rc_cuda_layer *w = &e->layers[l];
        void *kc = (char *)e->k_cache + l * layer_kv, *vc = (char *)e->v_cache + l * layer_kv;
        if (fuse) {
            TRY(rc_cuda_gemv_rmsnorm(w->wqkv, e->x, w->attn_norm, eps, e->xb, dt, e->qkv, d, qkvd, 0.f, s));
        } else {
            TRY(rc_cuda_rmsnorm(e->x, w->attn_norm, e->xb, dt, n, d, eps, s));
            TRY(rc_cuda_matmul(b, w->wqkv, e->xb, dt, e->qkv, n, d, qkvd, 0.f, s));
        }
        TRY(rc_cuda_rope_qkv_store(e->qkv, slots, pos, e->rope_cos, e->rope_sin, e->q, kc, vc, dt,
                                   n, nh, nkv, hd, e->max_len, s));
        if (splits > 0)
            TRY(rc_cuda_attention_decode(e->q, kc, vc, dt, slots, pos, e->attn_part, splits,
                                         e->att, n, nh, nkv, hd, e->max_len, s));
        else
            TRY(rc_cuda_attention_prefill(e->q, kc, vc, dt, tiles, n_tiles, e->att, nh, nkv, hd,
                                          e->max_len, s));
        TRY(rc_cuda_matmul(b, w->wo, e->att, dt, e->x, n, qd, d, 1.f, s));
        if (fuse) {
            TRY(rc_cuda_gemv_rmsnorm(w->wgu, e->x, w->mlp_norm, eps, e->xb, dt, e->gu, d, 2 * F, 0.f, s));
            TRY(rc_cuda_gemv_swiglu(w->wdown, e->gu, e->gu + F, e->hb, dt, e->x, F, d, 1.f, s));
        } else {
            TRY(rc_cuda_rmsnorm(e->x, w->mlp_norm, e->xb, dt, n, d, eps, s));
            TRY(rc_cuda_matmul(b, w->wgu, e->xb, dt, e->gu, n, d, 2 * F, 0.f, s));
            TRY(rc_cuda_swiglu(e->gu, e->gu + F, 2 * F, e->hb, dt, n, F, s));
            TRY(rc_cuda_matmul(b, w->wdown, e->hb, dt, e->x, n, F, d, 1.f, s));
        }
    }
    return 0;
}

__global__ void gather_rows_kernel(float *dst, const float *src, const int *idx, int d) {
    const float *sr = src + (size_t)idx[blockIdx.x] * d;
    float *dr = dst + (size_t)blockIdx.x * d;
    for (int j = threadIdx.x; j < d; j += blockDim.x) dr[j] = sr[j];
}

// Final norm of the rows idx (n_out, device) of x into hidden / hidden_t rows [row0, row0+n_out).
static int final_norm(rc_cuda_engine *e, int n_out, const int *idx, int row0) {
    const int d = e->cfg.hidden_size;
    float *h = e->hidden + (size_t)row0 * d;
    void *ht = (char *)e->hidden_t + (size_t)row0 * d * rc_cuda_dtype_size(e->dt);
    const float *src = e->x;
    if (idx) {
        gather_rows_kernel<<<n_out, 256, 0, e->stream>>>(h, e->x, idx, d);
        CUDA_CHECK_LAUNCH();
        src = h;
    }
    TRY(rc_cuda_rmsnorm(src, e->norm, h, RC_CUDA_F32, n_out, d, e->cfg.rms_norm_eps, e->stream));
    TRY(rc_cuda_convert(ht, e->dt, h, RC_CUDA_F32, (size_t)n_out * d, e->stream));
    return 0;
}

// Stages a chunk's inputs in pinned memory and copies them to d_ints, then runs every layer:
// tokens | slots | positions | the indices of the output tokens (n_out) | prefill tiles | and,
// when dst_rows, the rows the outputs go to (at 8n). Returns n_out, or -1. With run == 0 the
// layers are left to the caller, given *tiles_out and *splits_out (splits > 0: every token is
// alone in its sequence, split-KV decode attention).
static int stage_and_run(rc_cuda_engine *e, int n, const int *tokens, const int *slots,
                         const int *pos, const int *out_rows, int dst_rows, int *tiles_out,
                         int *splits_out, int run) {
    // h_stage may still feed the previous call's copy: wait only if that copy has not run (in the
    // generation loop the host has already waited for the step's tokens, so it never blocks)
    cudaError_t q = cudaEventQuery((cudaEvent_t)e->ev_stage);
    if (q == cudaErrorNotReady) { // not an error; cleared so that no launch check reports it
        cudaGetLastError();
        q = cudaEventSynchronize((cudaEvent_t)e->ev_stage);
    }
    CUDA_CHECK(q);
    int *h = e->h_stage;
    memcpy(h, tokens, (size_t)n * sizeof(int));
    memcpy(h + n, slots, (size_t)n * sizeof(int));
    memcpy(h + 2 * n, pos, (size_t)n * sizeof(int));
    int n_out = 0;
    if (out_rows)
        for (int i = 0; i < n; i++)
            if (out_rows[i] >= 0) {
                h[3 * n + n_out] = i;
                if (dst_rows) h[8 * n + n_out] = out_rows[i];
                n_out++;
            }
    int n_tiles = rc_cuda_attn_build_tiles(n, slots, pos, h + 4 * n);
    int splits = n_tiles == n ? rc_cuda_attention_decode_splits(n, e->cfg.num_attention_heads,
                                                                 e->max_len, e->n_sms)
                              : 0;
    int *dv = e->d_ints;
    // one copy: with dst_rows the rows at 8n come along (with the unused ints between the tiles
    // and 8n when a prefill has fewer than n tiles)
    size_t n_ints = dst_rows && n_out ? (size_t)8 * n + n_out : (size_t)4 * n + 4 * n_tiles;
    CUDA_CHECK(cudaMemcpyAsync(dv, h, n_ints * sizeof(int), cudaMemcpyHostToDevice, e->stream));
    CUDA_CHECK(cudaEventRecord((cudaEvent_t)e->ev_stage, e->stream));
    if (tiles_out) *tiles_out = n_tiles;
    if (splits_out) *splits_out = splits;
    if (run) TRY(run_layers(e, n, dv, dv + n, dv + 2 * n, dv + 4 * n, n_tiles, splits));
    return n_out;
}

static int forward_chunk(rc_cuda_engine *e, int n, const int *tokens, const int *slots,
                         const int *pos, const int *out_rows, float *hidden_out) {
    const int d = e->cfg.hidden_size;
    int n_out = stage_and_run(e, n, tokens, slots, pos, out_rows, 0, NULL, NULL, 1);
    if (n_out < 0) return -1;
    int *dv = e->d_ints;
    if (n_out == 0) return 0;
    int row0 = 0;
    if (e->n_out >= 0 && e->n_out + n_out <= e->max_tokens) {
        row0 = e->n_out;
        e->n_out += n_out;
    } else {
        e->n_out = -1; // too many output rows to keep them all: only the host copy is complete
    }
    TRY(final_norm(e, n_out, dv + 3 * n, row0));
    if (!hidden_out) return 0;
    float *tmp = (float *)rc_malloc((size_t)n_out * d * sizeof(float), "hidden states copy");
    if (!tmp) return -1;
    cudaError_t err = cudaMemcpyAsync(tmp, e->hidden + (size_t)row0 * d,
                                      (size_t)n_out * d * sizeof(float), cudaMemcpyDeviceToHost,
                                      e->stream);
    if (err == cudaSuccess) err = cudaStreamSynchronize(e->stream);
    if (err != cudaSuccess) {
        free(tmp);
        CUDA_CHECK(err);
    }
    for (int k = 0, i = 0; i < n; i++)
        if (out_rows[i] >= 0)
            memcpy(hidden_out + (size_t)out_rows[i] * d, tmp + (size_t)k++ * d, (size_t)d * 4);
    free(tmp);
    return 0;
}

extern "C" int rc_cuda_forward(rc_cuda_engine *e, int n, const int *tokens, const int *slots,
                               const int *pos, const int *out_rows, float *hidden_out) {
    if (!e || !e->wbuf) return rc_fail("rc_cuda_forward: engine not initialised");
    if (n < 0) return rc_fail("rc_cuda_forward: negative token count %d", n);
    if (!tokens || !slots || !pos) return rc_fail("rc_cuda_forward: tokens, slots and pos are required");
    const rc_config *c = &e->cfg;
    for (int i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size)
            return rc_fail("rc_cuda_forward: token %d (batch index %d) is outside the vocabulary "
                           "[0, %d)", tokens[i], i, c->vocab_size);
        if (slots[i] < 0 || slots[i] >= e->n_slots)
            return rc_fail("rc_cuda_forward: slot %d (batch index %d) is outside the KV cache's "
                           "%d slots", slots[i], i, e->n_slots);
        if (pos[i] < 0 || pos[i] >= e->max_len)
            return rc_fail("rc_cuda_forward: position %d (batch index %d) is beyond the KV cache "
                           "length %d", pos[i], i, e->max_len);
    }
    e->n_out = 0;
    for (int s = 0; s < n; s += e->max_tokens) {
        int cn = n - s < e->max_tokens ? n - s : e->max_tokens;
        if (forward_chunk(e, cn, tokens + s, slots + s, pos + s, out_rows ? out_rows + s : NULL,
                          hidden_out))
            return rc_fail_ctx("rc_cuda_forward");
    }
    return 0;
}

// dst[dst_rows[k]] = src[k] for k < n (rows of d floats).
__global__ void scatter_rows_kernel(float *dst, const float *src, const int *dst_rows, int d) {
    const float *sr = src + (size_t)blockIdx.x * d;
    float *dr = dst + (size_t)dst_rows[blockIdx.x] * d;
    for (int j = threadIdx.x; j < d; j += blockDim.x) dr[j] = sr[j];
}

// The layers, the final norm of the n_out output tokens and their scatter to their rows, with the
// chunk's inputs already in d_ints.
static int rows_compute(rc_cuda_engine *e, int n, int n_out, int n_tiles, int splits) {
    const int d = e->cfg.hidden_size;
    int *dv = e->d_ints;
    TRY(run_layers(e, n, dv, dv + n, dv + 2 * n, dv + 4 * n, n_tiles, splits));
    if (n_out == 0) return 0;
    // final norm of the compact rows into hidden_tmp, then each to its row of hidden
    gather_rows_kernel<<<n_out, 256, 0, e->stream>>>(e->hidden_tmp, e->x, dv + 3 * n, d);
    CUDA_CHECK_LAUNCH();
    TRY(rc_cuda_rmsnorm(e->hidden_tmp, e->norm, e->hidden_tmp, RC_CUDA_F32, n_out, d,
                        e->cfg.rms_norm_eps, e->stream));
    scatter_rows_kernel<<<n_out, 256, 0, e->stream>>>(e->hidden, e->hidden_tmp, dv + 8 * n, d);
    CUDA_CHECK_LAUNCH();
    return 0;
}

// What body() enqueues on e->stream, captured as a graph and instantiated into *exec (a graph
// already there is destroyed first; *exec stays NULL on failure). what names it in the error.
template <typename F>
static int capture_graph(rc_cuda_engine *e, void **exec, const char *what, F body) {
    if (*exec) {
        CUDA_CHECK(cudaGraphExecDestroy((cudaGraphExec_t)*exec));
        *exec = NULL;
    }
    CUDA_CHECK(cudaStreamBeginCapture(e->stream, cudaStreamCaptureModeThreadLocal));
    int rc = body();
    cudaGraph_t g = NULL;
    cudaError_t err = cudaStreamEndCapture(e->stream, &g);
    if (rc) {
        if (g) cudaGraphDestroy(g);
        return rc_fail_ctx("capturing %s", what);
    }
    CUDA_CHECK(err);
    cudaGraphExec_t x;
    err = cudaGraphInstantiate(&x, g, 0);
    cudaGraphDestroy(g);
    CUDA_CHECK(err);
    *exec = x;
    return 0;
}

// Captures rows_compute for a decode chunk of n tokens (all of them output rows) as a graph.
static int rows_capture(rc_cuda_engine *e, int n, int splits) {
    if (capture_graph(e, &e->rows_graph, "the decode forward",
                      [&] { return rows_compute(e, n, n, n, splits); }))
        return -1;
    e->rows_graph_n = n;
    return 0;
}

static int forward_rows_chunk(rc_cuda_engine *e, int n, const int *tokens, const int *slots,
                              const int *pos, const int *out_rows) {
    int n_tiles = 0, splits = 0;
    int n_out = stage_and_run(e, n, tokens, slots, pos, out_rows, 1, &n_tiles, &splits, 0);
    if (n_out < 0) return -1;
    // A decode step of the generation loop: the same n every step while no sequence ends. Its
    // ~10 launches per layer are replayed from a graph once n has repeated (the inputs sit at
    // the same device addresses for a given n).
    if (splits > 0 && n_out == n && e->rows_graphs) {
        e->rows_repeat = n == e->rows_last_n ? e->rows_repeat + 1 : 1;
        e->rows_last_n = n;
        if (e->rows_graph && e->rows_graph_n == n) {
            CUDA_CHECK(cudaGraphLaunch((cudaGraphExec_t)e->rows_graph, e->stream));
            return 0;
        }
        if (e->rows_repeat >= 3) {
            TRY(rows_capture(e, n, splits));
            CUDA_CHECK(cudaGraphLaunch((cudaGraphExec_t)e->rows_graph, e->stream));
            return 0;
        }
    }
    return rows_compute(e, n, n_out, n_tiles, splits);
}

extern "C" int rc_cuda_forward_rows(rc_cuda_engine *e, int n, const int *tokens, const int *slots,
                                    const int *pos, const int *out_rows) {
    if (!e || !e->wbuf) return rc_fail("rc_cuda_forward_rows: engine not initialised");
    for (int i = 0; out_rows && i < n; i++)
        if (out_rows[i] >= e->max_tokens)
            return rc_fail("rc_cuda_forward_rows: output row %d beyond the %d rows kept", out_rows[i],
                           e->max_tokens);
    e->n_out = -1; // the compact-row calls (lm_head_last, greedy_last) do not apply
    for (int s = 0; s < n; s += e->max_tokens) {
        int cn = n - s < e->max_tokens ? n - s : e->max_tokens;
        if (forward_rows_chunk(e, cn, tokens + s, slots + s, pos + s, out_rows ? out_rows + s : NULL))
            return rc_fail_ctx("rc_cuda_forward_rows");
    }
    return 0;
}

extern "C" int rc_cuda_rows_lm_head(rc_cuda_engine *e, int n) {
    if (!e->lm_head) return rc_fail("the model has no LM head (a reward model)");
    TRY(rc_cuda_convert(e->hidden_t, e->dt, e->hidden, RC_CUDA_F32, (size_t)n * e->cfg.hidden_size,
                        e->stream));
    return rc_cuda_matmul(&e->blas, e->lm_head, e->hidden_t, e->dt, e->logits, n,
                          e->cfg.hidden_size, e->cfg.vocab_size, 0.f, e->stream);
}

extern "C" int rc_cuda_rows_reward(rc_cuda_engine *e, int n) {
    if (!e->score) return rc_fail("the model has no reward head");
    TRY(rc_cuda_convert(e->hidden_t, e->dt, e->hidden, RC_CUDA_F32, (size_t)n * e->cfg.hidden_size,
                        e->stream));
    return rc_cuda_matmul(&e->blas, e->score, e->hidden_t, e->dt, e->logits, n,
                          e->cfg.hidden_size, e->cfg.num_labels, 0.f, e->stream);
}

// The RE-Control edit of hidden rows [0, n), then their dt copy for the LM head.
static int control_rows(rc_cuda_engine *e, int n) {
    if (!e->control || e->control_steps <= 0 || n <= 0) return 0;
    const int d = e->cfg.hidden_size;
    if (e->control->dims[0] != d)
        return rc_fail("RE-Control: the value model takes %d inputs, the model's hidden size is %d",
                       e->control->dims[0], d);
    for (int r = 0; r < n; r += e->control->cap_n) {
        int k = n - r < e->control->cap_n ? n - r : e->control->cap_n;
        TRY(rc_cuda_control_apply(e->control, e->hidden + (size_t)r * d, k, e->control_alpha,
                                  e->control_steps, e->stream));
    }
    return rc_cuda_convert(e->hidden_t, e->dt, e->hidden, RC_CUDA_F32, (size_t)n * d, e->stream);
}

// logits rows [0, n) from hidden_t rows [0, n) (device).
static int lm_head_rows(rc_cuda_engine *e, int n) {
    if (!e->lm_head) return rc_fail("the model has no LM head (a reward model)");
    return rc_cuda_matmul(&e->blas, e->lm_head, e->hidden_t, e->dt, e->logits, n,
                          e->cfg.hidden_size, e->cfg.vocab_size, 0.f, e->stream);
}

extern "C" int rc_cuda_lm_head(rc_cuda_engine *e, int n, const float *hidden, float *logits) {
    const int d = e->cfg.hidden_size, V = e->cfg.vocab_size;
    e->n_out = -1; // hidden / hidden_t are reused below
    for (int s = 0; s < n; s += e->max_tokens) {
        int cn = n - s < e->max_tokens ? n - s : e->max_tokens;
        CUDA_CHECK(cudaMemcpyAsync(e->hidden, hidden + (size_t)s * d, (size_t)cn * d * 4,
                                   cudaMemcpyHostToDevice, e->stream));
        TRY(rc_cuda_convert(e->hidden_t, e->dt, e->hidden, RC_CUDA_F32, (size_t)cn * d, e->stream));
        if (lm_head_rows(e, cn)) return rc_fail_ctx("rc_cuda_lm_head");
        CUDA_CHECK(cudaMemcpyAsync(logits + (size_t)s * V, e->logits, (size_t)cn * V * 4,
                                   cudaMemcpyDeviceToHost, e->stream));
        CUDA_CHECK(cudaStreamSynchronize(e->stream));
    }
    return 0;
}

extern "C" int rc_cuda_lm_head_last(rc_cuda_engine *e, float *logits) {
    if (e->n_out < 0)
        return rc_fail("rc_cuda_lm_head_last: the last forward had more output rows than "
                       "max_tokens (%d); use rc_cuda_lm_head on the host copy", e->max_tokens);
    if (e->n_out == 0) return 0;
    if (control_rows(e, e->n_out) || lm_head_rows(e, e->n_out))
        return rc_fail_ctx("rc_cuda_lm_head_last");
    CUDA_CHECK(cudaMemcpyAsync(logits, e->logits, (size_t)e->n_out * e->cfg.vocab_size * 4,
                               cudaMemcpyDeviceToHost, e->stream));
    CUDA_CHECK(cudaStreamSynchronize(e->stream));
    return 0;
}

extern "C" int rc_cuda_greedy_last(rc_cuda_engine *e, int *tokens_out) {
    if (e->n_out < 0)
        return rc_fail("rc_cuda_greedy_last: the last forward had more output rows than "
                       "max_tokens (%d)", e->max_tokens);
    if (e->n_out == 0) return 0;
    if (control_rows(e, e->n_out) || lm_head_rows(e, e->n_out))
        return rc_fail_ctx("rc_cuda_greedy_last");
    TRY(rc_cuda_argmax(e->logits, e->d_argmax, e->n_out, e->cfg.vocab_size, e->stream));
    CUDA_CHECK(cudaMemcpyAsync(tokens_out, e->d_argmax, (size_t)e->n_out * sizeof(int),
                               cudaMemcpyDeviceToHost, e->stream));
    CUDA_CHECK(cudaStreamSynchronize(e->stream));
    return 0;
}

// ---- decode graph -------------------------------------------------------------------------------

// After the step's argmax: positions advance, the chosen tokens are appended to the history.
__global__ void decode_advance_kernel(const int *tokens, int *pos, int *step, int *hist, int n,
                                      int max_steps) {
    int st = *step;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        pos[i] += 1;
        if (st >= 0 && st < max_steps) hist[(size_t)st * n + i] = tokens[i];
    }
    __syncthreads(); // every thread read *step before it moves
    if (threadIdx.x == 0) *step = st + 1;
}

static int decode_step(rc_cuda_engine *e, int n) {
    int splits = rc_cuda_attention_decode_splits(n, e->cfg.num_attention_heads, e->max_len, e->n_sms);
    TRY(run_layers(e, n, e->dec_tokens, e->dec_slots, e->dec_pos, NULL, 0, splits));
    TRY(final_norm(e, n, NULL, 0));
    TRY(control_rows(e, n));
    TRY(lm_head_rows(e, n));
    TRY(rc_cuda_argmax(e->logits, e->dec_tokens, n, e->cfg.vocab_size, e->stream));
    decode_advance_kernel<<<1, 256, 0, e->stream>>>(e->dec_tokens, e->dec_pos, e->dec_step,
                                                    e->dec_hist, n, e->max_len);
    CUDA_CHECK_LAUNCH();
    return 0;
}

static int capture(rc_cuda_engine *e, int n) {
    e->graph_n = 0;
    if (capture_graph(e, &e->graph_exec, "the decode step", [&] { return decode_step(e, n); }))
        return -1;
    e->graph_n = n;
    e->graph_control = e->control;
    e->graph_alpha = e->control_alpha;
    e->graph_steps = e->control_steps;
    return 0;
}

extern "C" int rc_cuda_decode_begin(rc_cuda_engine *e, int n, const int *slots, const int *pos,
                                    const int *tokens) {
    if (!e || !e->wbuf) return rc_fail("rc_cuda_decode_begin: engine not initialised");
    if (!e->lm_head) return rc_fail("rc_cuda_decode_begin: the model has no LM head");
    if (n < 1 || n > e->n_slots)
        return rc_fail("rc_cuda_decode_begin: %d sequences for %d slots", n, e->n_slots);
    for (int i = 0; i < n; i++) {
        if (slots[i] < 0 || slots[i] >= e->n_slots || pos[i] < 0 || pos[i] >= e->max_len ||
            tokens[i] < 0 || tokens[i] >= e->cfg.vocab_size)
            return rc_fail("rc_cuda_decode_begin: sequence %d: slot %d / position %d / token %d "
                           "out of range (%d slots, %d positions, vocab %d)",
                           i, slots[i], pos[i], tokens[i], e->n_slots, e->max_len,
                           e->cfg.vocab_size);
        for (int j = 0; j < i; j++)
            if (slots[j] == slots[i])
                return rc_fail("rc_cuda_decode_begin: sequences %d and %d share slot %d", j, i,
                               slots[i]);
    }
    CUDA_CHECK(cudaStreamSynchronize(e->stream));
    // copies on the engine's (non-blocking) stream, so that the kernels after them are ordered
    CUDA_CHECK(cudaMemcpyAsync(e->dec_slots, slots, (size_t)n * sizeof(int), cudaMemcpyHostToDevice, e->stream));
    CUDA_CHECK(cudaMemcpyAsync(e->dec_pos, pos, (size_t)n * sizeof(int), cudaMemcpyHostToDevice, e->stream));
    CUDA_CHECK(cudaMemcpyAsync(e->dec_tokens, tokens, (size_t)n * sizeof(int), cudaMemcpyHostToDevice, e->stream));
    memcpy(e->h_dec_pos, pos, (size_t)n * sizeof(int));
    e->dec_n = n;
    int stale = e->graph_n != n || e->graph_control != e->control ||
                e->graph_alpha != e->control_alpha || e->graph_steps != e->control_steps;
    if (stale) {
        // One eager step first, so that module loading and cuBLAS's first-use work happen
        // outside the capture. It rewrites the same K/V at the same positions the first replay
        // will write; tokens and positions are uploaded again afterwards.
        CUDA_CHECK(cudaMemsetAsync(e->dec_step, 0, sizeof(int), e->stream));
        if (decode_step(e, n)) return rc_fail_ctx("rc_cuda_decode_begin: warm-up step");
        CUDA_CHECK(cudaMemcpyAsync(e->dec_pos, pos, (size_t)n * sizeof(int), cudaMemcpyHostToDevice, e->stream));
        CUDA_CHECK(cudaMemcpyAsync(e->dec_tokens, tokens, (size_t)n * sizeof(int), cudaMemcpyHostToDevice, e->stream));
        CUDA_CHECK(cudaStreamSynchronize(e->stream));
        if (capture(e, n)) return rc_fail_ctx("rc_cuda_decode_begin");
    }
    return 0;
}

extern "C" int rc_cuda_decode_run(rc_cuda_engine *e, int n_steps, int *out_tokens) {
    if (!e || e->dec_n < 1 || e->graph_n != e->dec_n)
        return rc_fail("rc_cuda_decode_run: call rc_cuda_decode_begin first");
    int n = e->dec_n;
    for (int i = 0; i < n; i++)
        if (e->h_dec_pos[i] + n_steps > e->max_len)
            return rc_fail("rc_cuda_decode_run: %d steps from position %d would pass the KV cache "
                           "length %d (sequence %d)", n_steps, e->h_dec_pos[i], e->max_len, i);
    CUDA_CHECK(cudaMemsetAsync(e->dec_step, 0, sizeof(int), e->stream));
    for (int k = 0; k < n_steps; k++)
        CUDA_CHECK(cudaGraphLaunch((cudaGraphExec_t)e->graph_exec, e->stream));
    if (out_tokens)
        CUDA_CHECK(cudaMemcpyAsync(out_tokens, e->dec_hist, (size_t)n_steps * n * sizeof(int),
                                   cudaMemcpyDeviceToHost, e->stream));
    CUDA_CHECK(cudaStreamSynchronize(e->stream));
    for (int i = 0; i < n; i++) e->h_dec_pos[i] += n_steps;
    e->n_out = -1; // hidden / hidden_t now hold the decode rows
    return 0;
}
