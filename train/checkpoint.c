// Training checkpoint file: tensors params / adam_m / adam_v (F32) and order (I64), the scalars
// and the loss history in the safetensors metadata (doubles as C99 hex floats, exact both ways).
#include "train/checkpoint.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "base/safetensors.h"

#define CKPT_FORMAT "recontrol-train-checkpoint-1"

int rc_train_ckpt_save(const char *path, const char *settings, const char *device, const rc_train_ckpt *c) {
    char s_step[32], s_epoch[16], s_in[4], s_pos[32], s_nb[16], s_sum[64], s_shuf[32], s_done[16];
    snprintf(s_step, sizeof s_step, "%ld", c->step);
    snprintf(s_epoch, sizeof s_epoch, "%d", c->epoch);
    snprintf(s_in, sizeof s_in, "%d", c->in_epoch ? 1 : 0);
    snprintf(s_pos, sizeof s_pos, "%" PRId64, c->pos);
    snprintf(s_nb, sizeof s_nb, "%d", c->nb);
    snprintf(s_sum, sizeof s_sum, "%a", c->loss_sum);
    snprintf(s_shuf, sizeof s_shuf, "%" PRIu64, c->shuffle);
    snprintf(s_done, sizeof s_done, "%d", c->done);
    size_t cap = 16 + (size_t)c->done * 3 * 32, n = 0;
    char *hist = rc_malloc(cap, "checkpoint history");
    if (!hist) return -1;
    hist[0] = 0;
    for (int e = 0; e < c->done; e++)
        n += (size_t)snprintf(hist + n, cap - n, "%s%a %a %a", e ? " " : "", c->h_tr[e], c->h_va[e], c->h_s[e]);
    const char *meta[] = {"format", CKPT_FORMAT, "settings", settings, "device", device, "step", s_step,
                          "epoch", s_epoch, "in_epoch", s_in, "pos", s_pos, "batches", s_nb, "loss_sum", s_sum,
                          "shuffle_state", s_shuf, "epochs_done", s_done, "history", hist, NULL};
    const int64_t np = (int64_t)c->n_params;
    rc_st_entry e[4] = {
        {.name = "params", .dtype = RC_DT_F32, .ndim = 1, .shape = {np}, .data = c->params},
        {.name = "adam_m", .dtype = RC_DT_F32, .ndim = 1, .shape = {np}, .data = c->m},
        {.name = "adam_v", .dtype = RC_DT_F32, .ndim = 1, .shape = {np}, .data = c->v},
        {.name = "order", .dtype = RC_DT_I64, .ndim = 1, .shape = {c->n_order}, .data = c->order},
    };
    int rc = rc_st_write(path, e, 4, meta);
    free(hist);
    return rc ? rc_fail_ctx("writing the training checkpoint") : 0;
}

// Metadata value of key as a long long / double / u64, checked. 0 / -1.
static int meta_str(const char *path, const char *key, char **out) {
    *out = rc_st_read_metadata(path, key);
    return *out ? 0 : -1;
}
static int meta_ll(const char *path, const char *key, long long lo, long long hi, long long *out) {
    char *s, *end;
    if (meta_str(path, key, &s)) return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    int bad = errno || end == s || *end || v < lo || v > hi;
    if (bad) rc_fail("%s: checkpoint field %s = \"%s\" (expected an integer in [%lld, %lld])", path, key, s, lo, hi);
    free(s);
    *out = v;
    return bad ? -1 : 0;
}

static int tensor_into(const rc_safetensors *st, const char *name, rc_dtype dt, int64_t n, void *dst) {
    const rc_st_tensor *t = rc_st_find(st, name);
    if (!t || t->dtype != dt || t->ndim != 1 || t->shape[0] != n)
        return rc_fail("%s: checkpoint tensor %s missing or not %s[%lld]%s", st->path, name,
                       dt == RC_DT_F32 ? "F32" : "I64", (long long)n,
                       t && t->ndim == 1 ? " (another size: written for another model or data?)" : "");
    memcpy(dst, t->data, t->nbytes);
    return 0;
}

int rc_train_ckpt_load(const char *path, const char *settings, rc_train_ckpt *c, int max_done) {
    char *fmt = NULL, *set = NULL, *s = NULL, *hist = NULL;
    rc_safetensors st;
    int opened = 0, rc = -1;
    long long v;
    if (meta_str(path, "format", &fmt)) goto done;
    if (strcmp(fmt, CKPT_FORMAT)) {
        rc_fail("%s is not a training checkpoint (format \"%s\", expected \"%s\")", path, fmt, CKPT_FORMAT);
        goto done;
    }
    if (meta_str(path, "settings", &set)) goto done;
    if (strcmp(set, settings)) {
        rc_fail("%s was written by a training with other settings; delete it to start over, or resume with "
                "the same ones.\n  checkpoint: %s\n  this run:   %s", path, set, settings);
        goto done;
    }
    if (meta_ll(path, "step", 0, LONG_MAX, &v)) goto done;
    c->step = (long)v;
    if (meta_ll(path, "epoch", 0, INT32_MAX, &v)) goto done;
    c->epoch = (int)v;
    if (meta_ll(path, "in_epoch", 0, 1, &v)) goto done;
    c->in_epoch = (int)v;
    if (meta_ll(path, "pos", 0, c->n_order, &v)) goto done;
    c->pos = v;
    if (meta_ll(path, "batches", 0, INT32_MAX, &v)) goto done;
    c->nb = (int)v;
    if (meta_ll(path, "epochs_done", 0, INT32_MAX, &v)) goto done;
    c->done = (int)v;
    if (c->done > max_done) {
        rc_fail("%s: the checkpoint has %d epochs done, more than the %d asked for (--epochs)", path, c->done, max_done);
        goto done;
    }
    if (c->done != c->epoch) {
        rc_fail("%s: checkpoint at epoch %d with %d epochs done", path, c->epoch + 1, c->done);
        goto done;
    }
    if (meta_str(path, "loss_sum", &s)) goto done;
    char *end;
    c->loss_sum = strtod(s, &end);
    if (end == s || *end) {
        rc_fail("%s: checkpoint field loss_sum = \"%s\" is not a number", path, s);
        goto done;
    }
    free(s);
    s = NULL;
    if (meta_str(path, "shuffle_state", &s)) goto done;
    errno = 0;
    c->shuffle = strtoull(s, &end, 10);
    if (errno || end == s || *end) {
        rc_fail("%s: checkpoint field shuffle_state = \"%s\" is not an unsigned integer", path, s);
        goto done;
    }
    if (meta_str(path, "history", &hist)) goto done;
    {
        const char *p = hist;
        for (int e = 0; e < c->done; e++) {
            double *dst[3] = {&c->h_tr[e], &c->h_va[e], &c->h_s[e]};
            for (int k = 0; k < 3; k++) {
                *dst[k] = strtod(p, &end);
                if (end == p) {
                    rc_fail("%s: checkpoint history holds fewer than %d epochs", path, c->done);
                    goto done;
                }
                p = end;
            }
        }
    }
    if (rc_st_open(&st, path)) goto done;
    opened = 1;
    if (tensor_into(&st, "params", RC_DT_F32, (int64_t)c->n_params, c->params) ||
        tensor_into(&st, "adam_m", RC_DT_F32, (int64_t)c->n_params, c->m) ||
        tensor_into(&st, "adam_v", RC_DT_F32, (int64_t)c->n_params, c->v) ||
        tensor_into(&st, "order", RC_DT_I64, c->n_order, c->order))
        goto done;
    for (size_t i = 0; i < c->n_params; i++)
        if (!isfinite(c->params[i]) || !isfinite(c->m[i]) || !isfinite(c->v[i])) {
            rc_fail("%s: checkpoint tensor element %zu is not finite", path, i);
            goto done;
        }
    rc = 0;
done:
    if (opened) rc_st_close(&st);
    free(fmt);
    free(set);
    free(s);
    free(hist);
    return rc;
}
