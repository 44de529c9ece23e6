// The CUDA paths of the commands behind `--device cuda` (see cli/device_cuda.h): option parsing,
// the device check, logits [n_out, vocab] fp32 on the host, and greedy generation in groups of
// `batch` prompts (one ragged prefill, then the decode graph replayed in chunks of steps).
#include "cli/device_cuda.h"

#include <stdlib.h>
#include <string.h>

#include "base/common.h"

#ifdef RC_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "engine/forward_cuda.h"
#include "engine/control.h"
#endif

int rc_device_parse(const char *s, int *dev) {
    if (!strcmp(s, "cpu")) *dev = RC_DEVICE_CPU;
    else if (!strcmp(s, "cuda")) *dev = RC_DEVICE_CUDA;
    else return rc_fail("--device: expected cpu or cuda, got \"%s\"", s);
    return 0;
}

int rc_device_dtype_parse(const char *s, int *dt) {
    if (!strcmp(s, "f16")) *dt = RC_DEV_F16;
    else if (!strcmp(s, "bf16")) *dt = RC_DEV_BF16;
    else if (!strcmp(s, "f32")) *dt = RC_DEV_F32;
    else return rc_fail("--dtype: expected f16, bf16 or f32, got \"%s\"", s);
    return 0;
}

#ifndef RC_HAVE_CUDA

int rc_device_cuda_check(void) {
    return rc_fail("--device cuda: this binary was built without CUDA (rebuild with nvcc "
                   "available and -DRC_CUDA=ON, or use --device cpu)");
}

int rc_device_cuda_logits(const rc_model *m, int dt, int n, const int *ids, int last_only,
                          float *out) {
    return rc_device_cuda_check();
}

int rc_device_cuda_generate(const rc_model *m, int dt, int n, const int *const *prompts,
                            const int *prompt_lens, const rc_gen_params *gp, int batch,
                            const char *value_path, float alpha, int steps, rc_gen_output *out) {
    return rc_device_cuda_check();
}

#else

int rc_device_cuda_check(void) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        cudaGetLastError();
        return rc_fail("--device cuda: no CUDA device: %s (use --device cpu)",
                       cudaGetErrorString(err));
    }
    if (count < 1) return rc_fail("--device cuda: no CUDA device: none found (use --device cpu)");
    return 0;
}

int rc_device_cuda_logits(const rc_model *m, int dt, int n, const int *ids, int last_only,
                          float *out) {
    if (rc_device_cuda_check()) return -1;
    if (m->cfg.arch == RC_ARCH_REWARD)
        return rc_fail("--device cuda: reward models are not wired to the CUDA engine; use "
                       "--device cpu");
    rc_cuda_engine e;
    memset(&e, 0, sizeof e);
    int rc = -1;
    int *slots = rc_calloc((size_t)n, sizeof(int), "slots");
    int *pos = rc_malloc(sizeof(int) * (size_t)n, "positions");
    int *rows = rc_malloc(sizeof(int) * (size_t)n, "rows");
    if (!slots || !pos || !rows) goto done;
    for (int i = 0; i < n; i++) {
        pos[i] = i;
        rows[i] = last_only ? (i == n - 1 ? 0 : -1) : i;
    }
    if (rc_cuda_engine_init(&e, m, (rc_cuda_dtype)dt, 1, n, n)) goto done;
    if (rc_cuda_forward(&e, n, ids, slots, pos, rows, NULL) || rc_cuda_lm_head_last(&e, out))
        goto done;
    rc = 0;
done:
    free(slots), free(pos), free(rows);
    rc_cuda_engine_free(&e);
    return rc;
}

static int is_eos(const rc_config *c, int tok) {
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_token_ids[i] == tok) return 1;
    return 0;
}

// Appends tok to out unless it has finished; marks EOS / length. 1 when it has finished now.
static int emit(const rc_config *c, const rc_gen_params *gp, rc_gen_output *o, int tok) {
    if (o->finish == RC_FINISH_EOS || o->n_tokens >= gp->max_new_tokens) return 1;
    o->tokens[o->n_tokens++] = tok;
    if (gp->stop_at_eos && is_eos(c, tok)) o->finish = RC_FINISH_EOS;
    return o->finish == RC_FINISH_EOS || o->n_tokens >= gp->max_new_tokens;
}

#define DECODE_CHUNK 32 // steps replayed between host checks for EOS

int rc_device_cuda_generate(const rc_model *m, int dt, int n, const int *const *prompts,
                            const int *prompt_lens, const rc_gen_params *gp, int batch,
                            const char *value_path, float alpha, int steps, rc_gen_output *out) {
    if (rc_device_cuda_check()) return -1;
    if (gp->sample.temperature > 0)
        return rc_fail("--device cuda: only greedy decoding (--temperature 0) runs on the CUDA "
                       "engine; use --device cpu to sample");
    if (m->cfg.arch == RC_ARCH_REWARD)
        return rc_fail("--device cuda: a reward model cannot generate");
    const rc_config *c = &m->cfg;
    int max_prompt = 0;
    for (int i = 0; i < n; i++) {
        if (prompt_lens[i] > max_prompt) max_prompt = prompt_lens[i];
        out[i].finish = RC_FINISH_LENGTH;
        if (!(out[i].tokens = rc_malloc(sizeof(int) * (size_t)gp->max_new_tokens, "output")))
            return -1;
    }
    int g = batch < n ? batch : n;
    rc_cuda_engine e;
    memset(&e, 0, sizeof e);
    rc_control ctl;
    rc_cuda_value cv;
    memset(&cv, 0, sizeof cv);
    int ctl_ok = 0, cv_ok = 0, rc = -1;
    int cap = g * max_prompt;
    int *pt = rc_malloc(sizeof(int) * (size_t)cap * 4, "prefill batch");
    int *hist = rc_malloc(sizeof(int) * (size_t)DECODE_CHUNK * g, "decode tokens");
    int *first = rc_malloc(sizeof(int) * (size_t)g * 3, "decode state");
    if (!pt || !hist || !first) goto done;
    int *psl = pt + cap, *pp = pt + 2 * cap, *po = pt + 3 * cap;
    int *dsl = first + g, *dps = first + 2 * g;
    if (rc_cuda_engine_init(&e, m, (rc_cuda_dtype)dt, g, max_prompt + gp->max_new_tokens,
                            g > 256 ? g : 256))
        goto done;
    if (value_path) {
        if (rc_control_open(&ctl, value_path, c->hidden_size, alpha, steps, 1)) goto done;
        ctl_ok = 1;
        const rc_value_mlp *v = ctl.value;
        if (v->n_layers < 2 || v->n_layers > 3) {
            rc_fail("--device cuda: the CUDA control step takes value networks of 2 or 3 linear "
                    "layers; %s has %d (use --device cpu)", value_path, v->n_layers);
            goto done;
        }
        const float *w[3] = {v->w[0], v->w[1], v->n_layers > 2 ? v->w[2] : NULL};
        const float *b[3] = {v->b[0], v->b[1], v->n_layers > 2 ? v->b[2] : NULL};
        if (rc_cuda_value_init(&cv, v->n_layers, v->dims, w, b, (rc_cuda_dtype)dt, g)) goto done;
        cv_ok = 1;
        e.control = &cv;
        e.control_alpha = alpha;
        e.control_steps = steps;
    }
    for (int s0 = 0; s0 < n; s0 += g) {
        int k = n - s0 < g ? n - s0 : g, np = 0;
        for (int s = 0; s < k; s++) {
            const int L = prompt_lens[s0 + s];
            for (int p = 0; p < L; p++, np++) {
                pt[np] = prompts[s0 + s][p];
                psl[np] = s;
                pp[np] = p;
                po[np] = p == L - 1 ? s : -1;
            }
            dsl[s] = s;
            dps[s] = L;
        }
        if (rc_cuda_forward(&e, np, pt, psl, pp, po, NULL) || rc_cuda_greedy_last(&e, first))
            goto done;
        int live = 0;
        for (int s = 0; s < k; s++) live += !emit(c, gp, &out[s0 + s], first[s]);
        if (!live) continue;
        if (rc_cuda_decode_begin(&e, k, dsl, dps, first)) goto done;
        for (int done_steps = 1; live && done_steps < gp->max_new_tokens;) {
            int run = gp->max_new_tokens - done_steps;
            if (run > DECODE_CHUNK) run = DECODE_CHUNK;
            if (rc_cuda_decode_run(&e, run, hist)) goto done;
            done_steps += run;
            live = 0;
            for (int s = 0; s < k; s++) {
                int fin = 0;
                for (int t = 0; t < run && !fin; t++) fin = emit(c, gp, &out[s0 + s], hist[t * k + s]);
                live += !fin;
            }
        }
    }
    rc = 0;
done:
    free(pt), free(hist), free(first);
    if (cv_ok) rc_cuda_value_free(&cv);
    if (ctl_ok) rc_control_free(&ctl);
    rc_cuda_engine_free(&e);
    return rc;
}

#endif
