// The BERT encoder on the device (the CUDA side of rc_encoder, engine/backend.h): the weights
// copied once to the device in fp32 (one allocation, laid out as the host's), activations for
// max_tokens tokens in one arena, and the forward of engine/bert.c step for step with the device
// twins of its ops (kernels/cuda/encoder.h) and cuBLAS fp32 products (no TF32). Entry point
// rc_cuda_encoder_create, looked up by engine/backend.c.
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/encoder.h"
#include "kernels/cuda/matmul.h"

#define WORKSPACE_BYTES ((size_t)32 << 20)

typedef struct {
    cudaStream_t stream;
    rc_cuda_blas blas;
    float *w;      // device copy of the model's weight allocation
    void *arena;   // activations, ints and the cuBLAS workspace
    float *x, *qkv, *ctx, *ff, *cls, *out; // (T, d) (T, 3d) (T, d) (T, d_ff) (S, d) (S, d)
    int *ids;      // (3 T + S + 1): ids | types | positions | sequence offsets of one call
    int *h_ints;   // host staging of ids | types | pos | seq
} cu_enc;

// The device address of a host weight pointer (same offset into the one allocation).
static const float *dw(const rc_encoder *e, const float *host) {
    const cu_enc *p = (const cu_enc *)e->impl;
    return host ? p->w + (host - e->model->mem) : NULL;
}

#define TRY(call)                                                                                \
    do {                                                                                         \
        if ((call) != 0) return -1;                                                              \
    } while (0)

static int cu_enc_forward(rc_encoder *e, int n_seq, const int *ids, const int *types,
                          const int *pos, const int *seq, rc_bert_pool pool, float *out) {
    cu_enc *p = (cu_enc *)e->impl;
    const rc_bert *m = e->model;
    const rc_bert_config *c = &m->c;
    const int n = seq[n_seq], d = c->d, f = c->d_ff, hd = d / c->n_heads;
    const cudaStream_t s = p->stream;
    int longest = 0;
    for (int i = 0; i < n_seq; i++)
        if (seq[i + 1] - seq[i] > longest) longest = seq[i + 1] - seq[i];
    // ids | types | pos | seq in one copy
    int *h = p->h_ints;
    memcpy(h, ids, (size_t)n * sizeof(int));
    memcpy(h + n, types, (size_t)n * sizeof(int));
    memcpy(h + 2 * n, pos, (size_t)n * sizeof(int));
    memcpy(h + 3 * n, seq, ((size_t)n_seq + 1) * sizeof(int));
    int *di = p->ids;
    CUDA_CHECK(cudaMemcpyAsync(di, h, ((size_t)3 * n + n_seq + 1) * sizeof(int),
                               cudaMemcpyHostToDevice, s));
    const int *d_ids = di, *d_types = di + n, *d_pos = di + 2 * n, *d_seq = di + 3 * n;
    TRY(rc_cuda_encoder_embed(p->x, dw(e, m->word), dw(e, m->pos), dw(e, m->type), dw(e, m->ln_w),
                              dw(e, m->ln_b), d_ids, d_types, d_pos, n, d, c->eps, s));
    const rc_act act = c->act == RC_BERT_GELU ? RC_ACT_GELU
                       : c->act == RC_BERT_GELU_TANH ? RC_ACT_GELU_TANH : RC_ACT_RELU;
    for (int l = 0; l < c->n_layers; l++) {
        const rc_bert_layer *y = &m->layer[l];
        TRY(rc_cuda_matmul(&p->blas, dw(e, y->wqkv), p->x, RC_CUDA_F32, p->qkv, n, d, 3 * d, 0.f, s));
        TRY(rc_cuda_bias_act(p->qkv, dw(e, y->bqkv), n, 3 * d, RC_ACT_NONE, s));
        TRY(rc_cuda_attention_bidir(p->ctx, p->qkv, d_seq, n_seq, n, c->n_heads, hd, longest, s));
        float *o = p->qkv; // free again: the attention output projection
        TRY(rc_cuda_matmul(&p->blas, dw(e, y->wo), p->ctx, RC_CUDA_F32, o, n, d, d, 0.f, s));
        TRY(rc_cuda_add_layernorm(p->x, o, dw(e, y->bo), dw(e, y->ln1_w), dw(e, y->ln1_b), n, d,
                                  c->eps, s));
        TRY(rc_cuda_matmul(&p->blas, dw(e, y->wi), p->x, RC_CUDA_F32, p->ff, n, d, f, 0.f, s));
        TRY(rc_cuda_bias_act(p->ff, dw(e, y->bi), n, f, act, s));
        TRY(rc_cuda_matmul(&p->blas, dw(e, y->wo2), p->ff, RC_CUDA_F32, o, n, f, d, 0.f, s));
        TRY(rc_cuda_add_layernorm(p->x, o, dw(e, y->bo2), dw(e, y->ln2_w), dw(e, y->ln2_b), n, d,
                                  c->eps, s));
    }
    // [CLS] rows: the first token of each sequence (the offsets are the row indices)
    TRY(rc_cuda_embedding(p->x, RC_CUDA_F32, d_seq, p->cls, n_seq, d, n, s));
    float *res = p->cls;
    if (pool == RC_BERT_POOLER) {
        TRY(rc_cuda_matmul(&p->blas, dw(e, m->pool_w), p->cls, RC_CUDA_F32, p->out, n_seq, d, d,
                           0.f, s));
        TRY(rc_cuda_bias_act(p->out, dw(e, m->pool_b), n_seq, d, RC_ACT_TANH, s));
        res = p->out;
    }
    CUDA_CHECK(cudaMemcpyAsync(out, res, (size_t)n_seq * d * sizeof(float), cudaMemcpyDeviceToHost, s));
    CUDA_CHECK(cudaStreamSynchronize(s));
    return 0;
}

static void cu_enc_free(rc_encoder *e) {
    cu_enc *p = (cu_enc *)e->impl;
    if (!p) return;
    rc_cuda_blas_free(&p->blas);
    cudaFree(p->w);
    cudaFree(p->arena);
    cudaFreeHost(p->h_ints);
    if (p->stream) cudaStreamDestroy(p->stream);
    free(p);
    e->impl = NULL;
}

static const rc_encoder_ops k_cuda_encoder_ops = {cu_enc_forward, cu_enc_free};

static size_t up256(size_t b) { return (b + 255) & ~(size_t)255; }

static int cu_enc_init(rc_encoder *e, cu_enc *p, int gpu) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count < 1) {
        cudaGetLastError();
        return rc_fail("--device cuda: no CUDA device");
    }
    if (gpu < 0 || gpu >= count) return rc_fail("--device cuda: GPU %d requested, %d present", gpu, count);
    CUDA_CHECK(cudaSetDevice(gpu));
    const rc_bert_config *c = &e->model->c;
    const size_t T = (size_t)e->max_tokens, S = (size_t)e->max_seqs, d = (size_t)c->d;
    const size_t fl[6] = {T * d, 3 * T * d, T * d, T * (size_t)c->d_ff, S * d, S * d};
    const size_t n_ints = 3 * T + S + 1;
    size_t bytes = 0;
    for (int i = 0; i < 6; i++) bytes += up256(fl[i] * sizeof(float));
    bytes += up256(n_ints * sizeof(int)) + WORKSPACE_BYTES;
    const size_t wbytes = e->model->n_mem * sizeof(float);
    size_t fr = 0, tot = 0;
    CUDA_CHECK(cudaMemGetInfo(&fr, &tot));
    if (wbytes + bytes > fr)
        return rc_fail("--device cuda: the encoder needs %.1f MiB (weights %.1f, activations for "
                       "%zu tokens %.1f), the device has %.1f MiB free",
                       (wbytes + bytes) / 1048576.0, wbytes / 1048576.0, T, bytes / 1048576.0,
                       fr / 1048576.0);
    CUDA_CHECK(cudaStreamCreateWithFlags(&p->stream, cudaStreamNonBlocking));
    CUDA_CHECK(cudaMalloc((void **)&p->w, wbytes));
    CUDA_CHECK(cudaMemcpy(p->w, e->model->mem, wbytes, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMalloc(&p->arena, bytes));
    char *a = (char *)p->arena;
    float **dst[6] = {&p->x, &p->qkv, &p->ctx, &p->ff, &p->cls, &p->out};
    for (int i = 0; i < 6; i++) {
        *dst[i] = (float *)a;
        a += up256(fl[i] * sizeof(float));
    }
    p->ids = (int *)a;
    a += up256(n_ints * sizeof(int));
    CUDA_CHECK(cudaMallocHost((void **)&p->h_ints, n_ints * sizeof(int)));
    TRY(rc_cuda_blas_init(&p->blas, a, WORKSPACE_BYTES));
    p->blas.gemv_batch1 = 0; // cuBLAS for every product, one summation order for every batch size
    return 0;
}

extern "C" int rc_cuda_encoder_create(rc_encoder *e, int gpu) {
    cu_enc *p = (cu_enc *)rc_calloc(1, sizeof *p, "CUDA encoder");
    if (!p) return -1;
    e->impl = p;
    e->ops = &k_cuda_encoder_ops;
    // sequences per call: bounded by the [CLS] / pooler rows kept (256 sequences is plenty)
    if (e->max_seqs > 256) e->max_seqs = 256;
    if (cu_enc_init(e, p, gpu)) {
        cu_enc_free(e);
        e->ops = NULL;
        return -1;
    }
    return 0;
}
