// The CUDA backend: engine/forward_cuda.h's engine behind the backend table (engine/backend.h).
// Built into librecontrol_cuda.so (and the static CUDA library of the GPU runner); the entry
// points rc_cuda_backend_create / rc_cuda_device_usable / rc_cuda_device_report are what
// engine/backend.c looks up. Rows live in e->hidden on the device; the capture snapshots them on
// the device and copies them to pinned host memory on a second stream, so the copy overlaps the
// edit, the LM head and the next step; the RE-Control edit is kernels/cuda/control.h per value
// network; sampling runs on the device with the loop's per-row parameters and draws.
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>

#include "engine/backend.h"
#include "engine/forward_cuda.h"
#include "kernels/cuda/argmax.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/control.h"
#include "kernels/cuda/sample.h"

#define MAX_CONTROLS 16

typedef struct {
    rc_cuda_engine e;
    rc_cuda_value ctl[MAX_CONTROLS];
    int n_ctl;
} cuda_impl;

static cuda_impl *impl(rc_backend *b) { return (cuda_impl *)b->impl; }

#define TRY(call)                                                                                \
    do {                                                                                         \
        if ((call) != 0) return -1;                                                              \
    } while (0)

static int cu_forward(rc_backend *b, int n, const int *tokens, const int *slots, const int *pos,
                      const int *out_rows) {
    return rc_cuda_forward_rows(&impl(b)->e, n, tokens, slots, pos, out_rows);
}

static int cu_capture_begin(rc_backend *b, int n, int buf) {
    rc_cuda_engine *e = &impl(b)->e;
    size_t bytes = (size_t)n * b->cfg.hidden_size * sizeof(float);
    cudaEvent_t snap = (cudaEvent_t)e->ev_snap[buf], copied = (cudaEvent_t)e->ev_copied[buf];
    // the snapshot buffer is free once its previous copy to the host is done
    CUDA_CHECK(cudaStreamWaitEvent(e->stream, copied, 0));
    CUDA_CHECK(cudaMemcpyAsync(e->cap_dev[buf], e->hidden, bytes, cudaMemcpyDeviceToDevice, e->stream));
    CUDA_CHECK(cudaEventRecord(snap, e->stream));
    CUDA_CHECK(cudaStreamWaitEvent(e->copy_stream, snap, 0));
    CUDA_CHECK(cudaMemcpyAsync(e->cap_host[buf], e->cap_dev[buf], bytes, cudaMemcpyDeviceToHost,
                               e->copy_stream));
    CUDA_CHECK(cudaEventRecord(copied, e->copy_stream));
    return 0;
}

static const float *cu_capture_wait(rc_backend *b, int buf) {
    rc_cuda_engine *e = &impl(b)->e;
    // handed over one step late: the copy is normally done, and the query does not block
    cudaError_t err = cudaEventQuery((cudaEvent_t)e->ev_copied[buf]);
    if (err == cudaErrorNotReady) { // not an error; cleared so that no later check reports it
        cudaGetLastError();
        err = cudaEventSynchronize((cudaEvent_t)e->ev_copied[buf]);
    }
    if (err != cudaSuccess) {
        rc_fail("capture: copying the states to the host: %s", cudaGetErrorString(err));
        return NULL;
    }
    return e->cap_host[buf];
}

static int cu_set_rows(rc_backend *b, int n, const float *host) {
    rc_cuda_engine *e = &impl(b)->e;
    CUDA_CHECK(cudaMemcpyAsync(e->hidden, host, (size_t)n * b->cfg.hidden_size * sizeof(float),
                               cudaMemcpyHostToDevice, e->stream));
    CUDA_CHECK(cudaStreamSynchronize(e->stream));
    return 0;
}

static int cu_control_add(rc_backend *b, const rc_value_mlp *v) {
    cuda_impl *p = impl(b);
    if (p->n_ctl == MAX_CONTROLS) return rc_fail("RE-Control: at most %d value networks", MAX_CONTROLS);
    if (v->n_layers < 2 || v->n_layers > 3)
        return rc_fail("RE-Control on the GPU takes value networks of 2 or 3 linear layers; this one "
                       "has %d (use --device cpu)", v->n_layers);
    const float *w[3] = {v->w[0], v->w[1], v->n_layers > 2 ? v->w[2] : NULL};
    const float *bias[3] = {v->b[0], v->b[1], v->n_layers > 2 ? v->b[2] : NULL};
    TRY(rc_cuda_value_init(&p->ctl[p->n_ctl], v->n_layers, v->dims, w, bias, p->e.dt, b->row_cap));
    return p->n_ctl++;
}

static int cu_edit(rc_backend *b, int control, int row0, int n, float alpha, int steps) {
    cuda_impl *p = impl(b);
    return rc_cuda_control_apply(&p->ctl[control], p->e.hidden + (size_t)row0 * b->cfg.hidden_size,
                                 n, alpha, steps, p->e.stream);
}

static int cu_logits(rc_backend *b, int n, float *host) {
    rc_cuda_engine *e = &impl(b)->e;
    TRY(rc_cuda_rows_lm_head(e, n));
    CUDA_CHECK(cudaMemcpyAsync(host, e->logits, (size_t)n * b->cfg.vocab_size * sizeof(float),
                               cudaMemcpyDeviceToHost, e->stream));
    CUDA_CHECK(cudaStreamSynchronize(e->stream));
    return 0;
}

static int cu_sample(rc_backend *b, int n, const rc_sample_params *sp, const float *u, int *tokens) {
    rc_cuda_engine *e = &impl(b)->e;
    const int V = b->cfg.vocab_size;
    TRY(rc_cuda_rows_lm_head(e, n));
    int any = 0;
    for (int i = 0; i < n; i++) any |= sp[i].temperature > 0 && sp[i].top_k != 1;
    if (!any) {
        TRY(rc_cuda_argmax(e->logits, e->d_argmax, n, V, e->stream));
    } else {
        // per-row draws and parameters: u | temperature | top_p | top_k
        float *h = e->h_samp;
        int *hk = (int *)(h + 3 * n);
        for (int i = 0; i < n; i++) {
            h[i] = u ? u[i] : 0.f;
            h[n + i] = sp[i].temperature;
            h[2 * n + i] = sp[i].top_p;
            hk[i] = sp[i].top_k;
        }
        CUDA_CHECK(cudaMemcpyAsync(e->d_samp, h, (size_t)4 * n * sizeof(float),
                                   cudaMemcpyHostToDevice, e->stream));
        TRY(rc_cuda_sample_rows(e->logits, e->d_argmax, e->d_samp, e->d_samp + n,
                                (const int *)(e->d_samp + 3 * n), e->d_samp + 2 * n, n, V, e->stream));
    }
    // through pinned memory: an async copy to pageable memory would block the host by itself,
    // then the synchronize would be a second wait (this is the step's one host wait)
    CUDA_CHECK(cudaMemcpyAsync(e->h_tok, e->d_argmax, (size_t)n * sizeof(int), cudaMemcpyDeviceToHost,
                               e->stream));
    CUDA_CHECK(cudaStreamSynchronize(e->stream));
    memcpy(tokens, e->h_tok, (size_t)n * sizeof(int));
    return 0;
}

static int cu_reward(rc_backend *b, int n, float *host) {
    rc_cuda_engine *e = &impl(b)->e;
    TRY(rc_cuda_rows_reward(e, n));
    CUDA_CHECK(cudaMemcpyAsync(host, e->logits, (size_t)n * b->cfg.num_labels * sizeof(float),
                               cudaMemcpyDeviceToHost, e->stream));
    CUDA_CHECK(cudaStreamSynchronize(e->stream));
    return 0;
}

static void cu_free(rc_backend *b) {
    cuda_impl *p = impl(b);
    if (!p) return;
    for (int i = 0; i < p->n_ctl; i++) rc_cuda_value_free(&p->ctl[i]);
    rc_cuda_engine_free(&p->e);
    free(p);
    b->impl = NULL;
}

static const rc_backend_ops k_cuda_ops = {
    "cuda",         cu_forward, cu_capture_begin, cu_capture_wait, cu_set_rows, cu_control_add,
    cu_edit,        cu_logits,  cu_sample,        cu_reward,       cu_free,
};

extern "C" int rc_cuda_device_usable(char *why, size_t cap) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        cudaGetLastError();
        snprintf(why, cap, "%s", cudaGetErrorString(err));
        return 0;
    }
    if (count < 1) {
        snprintf(why, cap, "none found");
        return 0;
    }
    return 1;
}

extern "C" int rc_cuda_device_report(FILE *f) {
    int drv = 0, rt = 0, count = 0;
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    fprintf(f, "  CUDA runtime %d.%d (linked statically), driver supports %d.%d\n", rt / 1000,
            (rt % 1000) / 10, drv / 1000, (drv % 1000) / 10);
    int cbv = 0;
    cublasHandle_t h;
    if (cublasCreate(&h) == CUBLAS_STATUS_SUCCESS) {
        cublasGetVersion(h, &cbv);
        cublasDestroy(h);
        fprintf(f, "  cuBLAS %d\n", cbv);
    } else {
        fprintf(f, "  cuBLAS: no handle (no device, or the library cannot start)\n");
    }
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        cudaGetLastError();
        fprintf(f, "  devices: none usable: %s\n", cudaGetErrorString(err));
        return 0;
    }
    for (int i = 0; i < count; i++) {
        cudaDeviceProp p;
        if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
        size_t fr = 0, tot = 0;
        if (cudaSetDevice(i) == cudaSuccess) cudaMemGetInfo(&fr, &tot);
        fprintf(f, "  device %d: %s, compute capability %d.%d, %d SMs, %.1f GiB (%.1f GiB free), "
                   "L2 %.0f MiB\n",
                i, p.name, p.major, p.minor, p.multiProcessorCount, tot / 1073741824.0,
                fr / 1073741824.0, p.l2CacheSize / 1048576.0);
    }
    return 0;
}

static int select_gpu(const rc_backend_opts *o) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count < 1) {
        cudaGetLastError();
        return rc_fail("--device cuda: no CUDA device");
    }
    if (o->gpu < 0 || o->gpu >= count)
        return rc_fail("--device cuda: GPU %d requested, %d present", o->gpu, count);
    CUDA_CHECK(cudaSetDevice(o->gpu));
    return 0;
}

static rc_cuda_dtype dtype_of(const rc_backend_opts *o) {
    return o->wtype == RC_WT_F32 ? RC_CUDA_F32 : o->wtype == RC_WT_BF16 ? RC_CUDA_BF16 : RC_CUDA_F16;
}

extern "C" int rc_cuda_backend_create_random(rc_backend *b, const rc_config *cfg,
                                             const rc_backend_opts *o, uint64_t seed) {
    TRY(select_gpu(o));
    cuda_impl *p = (cuda_impl *)rc_calloc(1, sizeof *p, "CUDA backend");
    if (!p) return -1;
    if (rc_cuda_engine_init_random(&p->e, cfg, dtype_of(o), b->n_slots, b->max_len, b->row_cap,
                                   seed)) {
        free(p);
        return -1;
    }
    b->impl = p;
    b->ops = &k_cuda_ops;
    return 0;
}

extern "C" int rc_cuda_backend_create(rc_backend *b, const rc_model *m, const rc_backend_opts *o) {
    TRY(select_gpu(o));
    cuda_impl *p = (cuda_impl *)rc_calloc(1, sizeof *p, "CUDA backend");
    if (!p) return -1;
    // the engine keeps max_tokens rows: enough for every row the backend promises
    if (rc_cuda_engine_init(&p->e, m, dtype_of(o), b->n_slots, b->max_len, b->row_cap)) {
        free(p);
        return -1;
    }
    b->impl = p;
    b->ops = &k_cuda_ops;
    return 0;
}
