// The CUDA value trainer (train_cuda.h), part of the CUDA module: host orchestration of the
// kernels in kernels/cuda/value_train.h, step for step the algorithm of rc_trainer_batch (train/train.c):
// forward in row chunks, Bellman loss and dV, per-chunk backward (recomputing the forward when the
// batch has more rows than one chunk) into one gradient, Adam. Two pinned host buffers and two
// device buffers hold consecutive batches; a copy stream uploads the next batch while the compute
// stream works on the current one. 16-bit shards go up as stored and are converted on the device.
#include "train/train_cuda.h"

#include <cuda_runtime_api.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "base/dist.h"
#include "kernels/cuda/convert.h"
#include "kernels/cuda/value_train.h"
#ifdef RC_HAVE_NCCL
#include "train/nccl.h"
#endif

struct rc_trainer_cuda {
    int L, dims[RC_VALUE_MAX_LAYERS + 1], bf16, reference, chunk_rows, cap_seq;
    int64_t cap_rows;
    size_t n_params;
    double lr, beta1, beta2, eps;
    long step;
    cudaStream_t s, cs;          // compute, copy
    cudaEvent_t copied[2];       // the upload of a slot finished
    rc_cuda_blas bl;
    float *p, *pr, *g, *am, *av; // (n_params) parameters, bf16-rounded parameters, gradient, moments
    float *tmp;                  // (largest out * in) fresh weight gradient (bf16)
    float *act[RC_VALUE_MAX_LAYERS + 1], *gbuf[2];
    float *rows[2], *r[2];       // device batch slots
    int64_t *off[2];
    void *raw[2];                // (cap_rows, d) 16-bit states as stored, converted on the device
    int slot_dt[2];              // RC_CUDA_F16 / RC_CUDA_BF16 when the slot came up raw, else -1
    float *v, *dv;               // (cap_rows)
    double *seq, *loss;          // (cap_seq), (1)
    float *hrows[2], *hr[2];     // pinned host slots
    int64_t *hoff[2];
    double *hloss;
    int pend, pend_slot, pend_n; // a prefetched batch
    const int64_t *pend_ids;
    int rank, world;             // data parallel (world > 1): this rank's part of every batch,
    float *hgrad;                // gradients summed in rank order over NCCL (else through this
#ifdef RC_HAVE_NCCL              // host copy over MPI), losses over MPI
    rc_nccl *nccl;
#endif
};

#define CK(call)                                                                                  \
    do {                                                                                          \
        cudaError_t e_ = (call);                                                                  \
        if (e_ != cudaSuccess)                                                                    \
            return rc_fail("CUDA trainer: %s: %s (%s:%d)", #call, cudaGetErrorString(e_), __FILE__, __LINE__); \
    } while (0)

static int dalloc(void *p, size_t bytes) {
    CK(cudaMalloc((void **)p, bytes ? bytes : 16));
    return 0;
}

extern "C" void rc_trainer_cuda_free(rc_trainer_cuda *t) {
    if (!t) return;
    if (t->s) cudaStreamSynchronize(t->s);
    if (t->cs) cudaStreamSynchronize(t->cs);
    void *dev[] = {(void *)t->p, t->pr, t->g, t->am, t->av, t->tmp, t->gbuf[0], t->gbuf[1], t->rows[0], t->rows[1],
                   t->r[0], t->r[1], t->off[0], t->off[1], t->v, t->dv, t->seq, t->loss, t->raw[0], t->raw[1]};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        if (dev[i]) cudaFree(dev[i]);
    for (int l = 0; l <= RC_VALUE_MAX_LAYERS; l++)
        if (t->act[l]) cudaFree(t->act[l]);
    void *host[] = {t->hrows[0], t->hrows[1], t->hr[0], t->hr[1], t->hoff[0], t->hoff[1], t->hloss};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++)
        if (host[i]) cudaFreeHost(host[i]);
    for (int k = 0; k < 2; k++)
        if (t->copied[k]) cudaEventDestroy(t->copied[k]);
    rc_cuda_blas_free(&t->bl);
    if (t->s) cudaStreamDestroy(t->s);
    if (t->cs) cudaStreamDestroy(t->cs);
#ifdef RC_HAVE_NCCL
    rc_nccl_close(t->nccl);
#endif
    free(t->hgrad);
    free(t);
}

static int init_buffers(rc_trainer_cuda *t, const rc_value_mlp *m) {
    const size_t np = t->n_params, d = (size_t)t->dims[0], cr = (size_t)t->chunk_rows;
    size_t md = 1, mw = 1;
    for (int l = 0; l <= t->L; l++)
        if ((size_t)t->dims[l] > md) md = (size_t)t->dims[l];
    for (int l = 0; l < t->L; l++)
        if ((size_t)t->dims[l] * t->dims[l + 1] > mw) mw = (size_t)t->dims[l] * t->dims[l + 1];
    CK(cudaStreamCreateWithFlags(&t->s, cudaStreamNonBlocking));
    CK(cudaStreamCreateWithFlags(&t->cs, cudaStreamNonBlocking));
    for (int k = 0; k < 2; k++) CK(cudaEventCreateWithFlags(&t->copied[k], cudaEventDisableTiming));
    if (rc_cuda_blas_init(&t->bl, NULL, 0)) return -1;
    if (dalloc(&t->p, np * 4) || dalloc(&t->g, np * 4) || dalloc(&t->am, np * 4) || dalloc(&t->av, np * 4) ||
        dalloc(&t->v, (size_t)t->cap_rows * 4) || dalloc(&t->dv, (size_t)t->cap_rows * 4) ||
        dalloc(&t->seq, (size_t)t->cap_seq * 8) || dalloc(&t->loss, 8) || dalloc(&t->gbuf[0], cr * md * 4) ||
        dalloc(&t->gbuf[1], cr * md * 4))
        return -1;
    if (t->bf16 && (dalloc(&t->pr, np * 4) || dalloc(&t->tmp, mw * 4))) return -1;
    for (int l = 1; l <= t->L; l++)
        if (dalloc(&t->act[l], cr * (size_t)t->dims[l] * 4)) return -1;
    for (int k = 0; k < 2; k++) {
        if (dalloc(&t->rows[k], (size_t)t->cap_rows * d * 4) || dalloc(&t->r[k], (size_t)t->cap_seq * 4) ||
            dalloc(&t->off[k], (size_t)(t->cap_seq + 1) * 8) || dalloc(&t->raw[k], (size_t)t->cap_rows * d * 2))
            return -1;
        CK(cudaMallocHost((void **)&t->hrows[k], (size_t)t->cap_rows * d * 4));
        CK(cudaMallocHost((void **)&t->hr[k], (size_t)t->cap_seq * 4));
        CK(cudaMallocHost((void **)&t->hoff[k], (size_t)(t->cap_seq + 1) * 8));
    }
    CK(cudaMallocHost((void **)&t->hloss, 8));
    CK(cudaMemcpy(t->p, m->params, np * 4, cudaMemcpyHostToDevice));
    CK(cudaMemset(t->am, 0, np * 4));
    CK(cudaMemset(t->av, 0, np * 4));
    return 0;
}

extern "C" int rc_trainer_cuda_init(rc_trainer_cuda **out, const rc_value_mlp *m, rc_bellman_mode mode, double lr,
                         int cap_seq, int64_t cap_rows, int chunk_rows) {
    *out = NULL;
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev < 1) {
        cudaGetLastError();
        return rc_fail("--device cuda: no CUDA device found (use --device cpu)");
    }
    if (cap_seq <= 0 || cap_rows <= 0) return rc_fail("CUDA trainer: empty batch capacity");
    if (chunk_rows <= 0) chunk_rows = 2048;
    if (chunk_rows > cap_rows) chunk_rows = (int)cap_rows;
    rc_trainer_cuda *t = (rc_trainer_cuda *)rc_calloc(1, sizeof *t, "CUDA trainer");
    if (!t) return -1;
    t->L = m->n_layers;
    memcpy(t->dims, m->dims, sizeof t->dims);
    t->bf16 = m->dtype == RC_VALUE_BF16;
    t->reference = mode == RC_BELLMAN_REFERENCE;
    t->chunk_rows = chunk_rows;
    t->cap_seq = cap_seq;
    t->cap_rows = cap_rows;
    t->n_params = m->n_params;
    t->lr = lr;
    t->beta1 = 0.9;
    t->beta2 = 0.999;
    t->eps = 1e-8;
    t->rank = rc_dist_rank();
    t->world = rc_dist_size();
    int bad = 0;
    if (t->world > 1) { // before any allocation: the communicator selects the local rank's GPU
#ifdef RC_HAVE_NCCL
        bad = rc_nccl_open(&t->nccl);
#else
        const rc_dist_info *di = rc_dist();
        int n_dev = 0;
        if (cudaGetDeviceCount(&n_dev) != cudaSuccess || di->local_rank >= n_dev)
            bad = rc_fail("rank %d is local rank %d but this node shows %d GPU%s: start one rank per GPU", di->rank,
                          di->local_rank, n_dev, n_dev == 1 ? "" : "s");
        else if (cudaSetDevice(di->local_rank) != cudaSuccess)
            bad = rc_fail("rank %d: cudaSetDevice(%d) failed", di->rank, di->local_rank);
        else if (!(t->hgrad = (float *)rc_malloc(t->n_params * sizeof(float), "gradient host copy")))
            bad = -1;
#endif
    }
    if (bad || init_buffers(t, m)) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", rc_last_error());
        rc_trainer_cuda_free(t);
        return rc_fail("%s", msg);
    }
    *out = t;
    return 0;
}

// Gathers batch (n, ids) into host slot k and starts its upload on the copy stream.
static int load(rc_trainer_cuda *t, const rc_acts *a, int k, int n, const int64_t *ids) {
    if (n <= 0 || n > t->cap_seq) return rc_fail("CUDA trainer: batch of %d sequences (capacity %d)", n, t->cap_seq);
    if (a->d != t->dims[0])
        return rc_fail("states have width %d but the value model expects %d", a->d, t->dims[0]);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= a->n_seq)
            return rc_fail("sequence id %lld out of range [0, %lld)", (long long)ids[i], (long long)a->n_seq);
    const int64_t rows = rc_acts_rows(a, n, ids);
    if (rows > t->cap_rows)
        return rc_fail("CUDA trainer: batch of %lld rows (capacity %lld)", (long long)rows, (long long)t->cap_rows);
    CK(cudaEventSynchronize(t->copied[k])); // the previous upload from this pinned slot is done
    const size_t d = (size_t)a->d;
    // 16-bit shards go up as stored (half the bytes of fp32 through the host and the bus)
    int sdt = -1, raw = rc_acts_gather_raw(a, n, ids, t->hrows[k], t->hoff[k], t->hr[k], &sdt);
    if (raw < 0) return -1;
    if (raw == 0) {
        t->slot_dt[k] = sdt == RC_DT_F16 ? RC_CUDA_F16 : RC_CUDA_BF16;
        CK(cudaMemcpyAsync(t->raw[k], t->hrows[k], (size_t)rows * d * 2, cudaMemcpyHostToDevice, t->cs));
    } else {
        t->slot_dt[k] = -1;
        if (rc_acts_gather(a, n, ids, t->hrows[k], t->hoff[k], t->hr[k]) != 0) return -1;
        CK(cudaMemcpyAsync(t->rows[k], t->hrows[k], (size_t)rows * d * 4, cudaMemcpyHostToDevice, t->cs));
    }
    CK(cudaMemcpyAsync(t->off[k], t->hoff[k], (size_t)(n + 1) * 8, cudaMemcpyHostToDevice, t->cs));
    CK(cudaMemcpyAsync(t->r[k], t->hr[k], (size_t)n * 4, cudaMemcpyHostToDevice, t->cs));
    CK(cudaEventRecord(t->copied[k], t->cs));
    return 0;
}

static const float *wp(const rc_trainer_cuda *t, const float *params, int l, int bias) {
    size_t off = 0;
    for (int i = 0; i < l; i++) off += (size_t)t->dims[i + 1] * t->dims[i] + t->dims[i + 1];
    return params + off + (bias ? (size_t)t->dims[l + 1] * t->dims[l] : 0);
}

static int forward(rc_trainer_cuda *t, int m, const float *x) {
    const float *params = t->bf16 ? t->pr : t->p, *in = x;
    for (int l = 0; l < t->L; l++) {
        if (rc_cuda_vt_linear_fwd(&t->bl, m, t->dims[l], t->dims[l + 1], in, wp(t, params, l, 0), wp(t, params, l, 1),
                                  t->act[l + 1], l + 1 < t->L, t->bf16, t->s))
            return -1;
        in = t->act[l + 1];
    }
    return 0;
}

static int backward(rc_trainer_cuda *t, int m, const float *x, const float *dv) {
    const float *params = t->bf16 ? t->pr : t->p;
    float *dy = t->gbuf[0];
    if (rc_cuda_vt_round(dy, dv, (size_t)m, t->bf16, t->s)) return -1;
    for (int l = t->L - 1; l >= 0; l--) {
        const int in = t->dims[l], out = t->dims[l + 1];
        const float *xin = l > 0 ? t->act[l] : x;
        if (rc_cuda_vt_linear_bwd_params(&t->bl, m, in, out, dy, xin, (float *)wp(t, t->g, l, 0),
                                         (float *)wp(t, t->g, l, 1), t->tmp, t->bf16, t->s))
            return -1;
        if (l == 0) break;
        float *dx = dy == t->gbuf[0] ? t->gbuf[1] : t->gbuf[0];
        if (rc_cuda_vt_linear_bwd_input(&t->bl, m, in, out, dy, wp(t, params, l, 0), t->act[l], dx, t->bf16, t->s))
            return -1;
        dy = dx;
    }
    return 0;
}

// Data parallel: the sums over ranks of the gradient (device, rank order) and of the loss. 0 / -1.
static int dist_sum(rc_trainer_cuda *t, int grad, double *l) {
    if (t->world <= 1) return 0;
#ifdef RC_HAVE_NCCL
    if (grad && rc_nccl_sum_f32_ordered(t->nccl, t->g, t->n_params, t->s)) return -1;
#else // built without NCCL: through the host (a device-host round trip per step; same bits)
    if (grad) {
        CK(cudaMemcpyAsync(t->hgrad, t->g, t->n_params * 4, cudaMemcpyDeviceToHost, t->s));
        CK(cudaStreamSynchronize(t->s));
        if (rc_dist_sum_f32(t->hgrad, t->n_params)) return -1;
        CK(cudaMemcpyAsync(t->g, t->hgrad, t->n_params * 4, cudaMemcpyHostToDevice, t->s));
    }
#endif
    return rc_dist_sum_f64(l, 1);
}

// One Adam step on the gradient t->g (bias corrections in double, as train/adam.c). 0 / -1.
static int adam_step(rc_trainer_cuda *t) {
    t->step++;
    double bc1 = 1.0 - pow(t->beta1, (double)t->step), bc2 = 1.0 - pow(t->beta2, (double)t->step);
    return rc_cuda_vt_adam(t->p, t->g, t->am, t->av, t->n_params, (float)(1.0 - t->beta1), (float)t->beta2,
                           (float)(1.0 - t->beta2), (float)t->eps, (float)(t->lr / bc1), (float)sqrt(bc2), t->s);
}

// This rank's part [lo, hi) of a batch of n sequences (all of it in a world of 1).
static void rank_part(const rc_trainer_cuda *t, int n, int *lo, int *hi) {
    *lo = (int)((int64_t)n * t->rank / t->world);
    *hi = (int)((int64_t)n * (t->rank + 1) / t->world);
}

// A rank whose part of the batch is empty: no rows, zero gradient and loss, same collectives.
static int batch_empty(rc_trainer_cuda *t, int update, double *loss) {
    double l = 0;
    if (update) {
        CK(cudaMemsetAsync(t->g, 0, t->n_params * 4, t->s));
        if (dist_sum(t, 1, &l)) return -1;
        if (adam_step(t)) return -1;
        CK(cudaStreamSynchronize(t->s));
    } else if (dist_sum(t, 0, &l)) {
        return -1;
    }
    if (loss) *loss = l;
    return 0;
}

extern "C" int rc_trainer_cuda_batch(rc_trainer_cuda *t, const rc_acts *a, int n_batch, const int64_t *ids_batch,
                                     int update, double *loss, int next_n_batch, const int64_t *next_ids_batch) {
    int lo, hi, nlo = 0, nhi = 0;
    rank_part(t, n_batch, &lo, &hi);
    const int n = hi - lo, n_norm = n_batch;
    const int64_t *ids = ids_batch + lo, *next_ids = NULL;
    int next_n = 0;
    if (next_ids_batch && next_n_batch > 0) {
        rank_part(t, next_n_batch, &nlo, &nhi);
        next_ids = next_ids_batch + nlo;
        next_n = nhi - nlo;
    }
    if (n <= 0) return batch_empty(t, update, loss);
    int slot;
    if (t->pend && t->pend_ids == ids && t->pend_n == n) {
        slot = t->pend_slot;
    } else {
        slot = t->pend ? t->pend_slot ^ 1 : 0;
        if (load(t, a, slot, n, ids)) return -1;
    }
    t->pend = 0;
    CK(cudaStreamWaitEvent(t->s, t->copied[slot], 0));
    // the host slot still holds this batch's offsets (a new gather goes to the other slot)
    const int64_t rows = t->hoff[slot][n];
    const size_t d = (size_t)t->dims[0];
    const int cr = t->chunk_rows, single = rows <= cr, L = t->L;
    float *x = t->rows[slot];
    if (t->slot_dt[slot] >= 0 &&
        rc_cuda_convert(x, RC_CUDA_F32, t->raw[slot], (rc_cuda_dtype)t->slot_dt[slot], (size_t)rows * d, t->s))
        return -1;
    if (t->bf16) {
        if (rc_cuda_vt_round(x, x, (size_t)rows * d, 1, t->s) ||
            rc_cuda_vt_round(t->pr, t->p, t->n_params, 1, t->s))
            return -1;
    }
    for (int64_t r0 = 0; r0 < rows; r0 += cr) {
        int m = (int)(rows - r0 < cr ? rows - r0 : cr);
        if (forward(t, m, x + (size_t)r0 * d)) return -1;
        CK(cudaMemcpyAsync(t->v + r0, t->act[L], (size_t)m * 4, cudaMemcpyDeviceToDevice, t->s));
    }
    if (rc_cuda_vt_bellman(t->reference, n, n_norm, t->off[slot], t->v, t->r[slot], update ? t->dv : NULL, t->seq,
                           t->loss, t->s))
        return -1;
    CK(cudaMemcpyAsync(t->hloss, t->loss, 8, cudaMemcpyDeviceToHost, t->s));
    if (update) {
        CK(cudaMemsetAsync(t->g, 0, t->n_params * 4, t->s));
        for (int64_t r0 = 0; r0 < rows; r0 += cr) {
            int m = (int)(rows - r0 < cr ? rows - r0 : cr);
            if (!single && forward(t, m, x + (size_t)r0 * d)) return -1;
            if (backward(t, m, x + (size_t)r0 * d, t->dv + r0)) return -1;
        }
        if (t->world > 1) { // the whole batch's gradient and loss on every rank, then one Adam step
            CK(cudaStreamSynchronize(t->s));
            double lp = *t->hloss;
            if (dist_sum(t, 1, &lp)) return -1;
            *t->hloss = lp;
        }
        if (adam_step(t)) return -1;
    }
    if (next_ids && next_n > 0) { // gather the next batch on the host while this one computes
        if (load(t, a, slot ^ 1, next_n, next_ids)) return -1;
        t->pend = 1;
        t->pend_slot = slot ^ 1;
        t->pend_n = next_n;
        t->pend_ids = next_ids;
    }
    CK(cudaStreamSynchronize(t->s));
    double l = *t->hloss;
    if (!update && dist_sum(t, 0, &l)) return -1;
    if (!isfinite(l)) return rc_fail("the Bellman loss is not finite (%g): lower the learning rate", l);
    if (loss) *loss = l;
    return 0;
}

extern "C" int rc_trainer_cuda_download(rc_trainer_cuda *t, rc_value_mlp *m) {
    if (m->n_params != t->n_params) return rc_fail("CUDA trainer: parameter count mismatch");
    CK(cudaStreamSynchronize(t->s));
    CK(cudaMemcpy(m->params, t->p, t->n_params * 4, cudaMemcpyDeviceToHost));
    return 0;
}

extern "C" int rc_trainer_cuda_state(rc_trainer_cuda *t, float *params, float *m, float *v, long *step, int upload) {
    const size_t bytes = t->n_params * 4;
    CK(cudaStreamSynchronize(t->s));
    if (upload) {
        CK(cudaMemcpy(t->p, params, bytes, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(t->am, m, bytes, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(t->av, v, bytes, cudaMemcpyHostToDevice));
        t->step = *step;
    } else {
        CK(cudaMemcpy(params, t->p, bytes, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(m, t->am, bytes, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(v, t->av, bytes, cudaMemcpyDeviceToHost));
        *step = t->step;
    }
    return 0;
}

static const rc_trainer_cuda_ops g_ops = {rc_trainer_cuda_init, rc_trainer_cuda_batch, rc_trainer_cuda_download,
                                          rc_trainer_cuda_free, rc_trainer_cuda_state};

extern "C" const rc_trainer_cuda_ops *rc_trainer_cuda_ops_get(void) { return &g_ops; }
