// Training loop for the value network: gather a batch of whole sequences, forward in row chunks,
// Bellman loss and its dV, backward into one fp32 gradient, Adam; epochs over a seeded shuffle.
#include "train/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "base/dist.h"
#include "base/rundir_lock.h"
#include "engine/backend.h"
#include "train/checkpoint.h"
#include "train/train_cuda.h"

int rc_trainer_init(rc_trainer *t, rc_value_mlp *m, rc_bellman_mode mode, double lr, int cap_seq,
                    int64_t cap_rows, int chunk_rows) {
    memset(t, 0, sizeof *t);
    if (cap_seq <= 0 || cap_rows <= 0) return rc_fail("trainer: empty batch capacity");
    if (chunk_rows <= 0) chunk_rows = 2048;
    if (chunk_rows > cap_rows) chunk_rows = (int)cap_rows;
    t->m = m;
    t->mode = mode;
    t->chunk_rows = chunk_rows;
    t->cap_seq = cap_seq;
    t->cap_rows = cap_rows;
    if (rc_adam_init(&t->adam, m->n_params, lr) != 0) return -1;
    if (rc_value_ws_alloc(&t->ws, m, chunk_rows) != 0) goto fail;
    t->grad = rc_malloc(m->n_params * sizeof(float), "value gradient");
    t->rows = rc_malloc((size_t)cap_rows * (size_t)m->dims[0] * sizeof(float), "batch states");
    t->v = rc_malloc((size_t)cap_rows * sizeof(float), "batch values");
    t->dv = rc_malloc((size_t)cap_rows * sizeof(float), "batch value gradients");
    t->off = rc_malloc((size_t)(cap_seq + 1) * sizeof(int64_t), "batch offsets");
    t->r = rc_malloc((size_t)cap_seq * sizeof(float), "batch rewards");
    if (!t->grad || !t->rows || !t->v || !t->dv || !t->off || !t->r) goto fail;
    t->dist = rc_dist_size() > 1;
    return 0;
fail:
    rc_trainer_free(t);
    return -1;
}

void rc_trainer_free(rc_trainer *t) {
    rc_adam_free(&t->adam);
    rc_value_ws_free(&t->ws);
    free(t->grad);
    free(t->rows);
    free(t->v);
    free(t->dv);
    free(t->off);
    free(t->r);
    memset(t, 0, sizeof *t);
}

int rc_trainer_batch(rc_trainer *t, const rc_acts *a, int n, const int64_t *ids, int update,
                     double *loss) {
    if (n <= 0 || n > t->cap_seq) return rc_fail("trainer: batch of %d sequences (capacity %d)", n, t->cap_seq);
    if (a->d != t->m->dims[0])
        return rc_fail("states have width %d but the value model expects %d", a->d, t->m->dims[0]);
    const int n_norm = n; // the loss is the whole batch's mean
    if (t->dist) {        // this rank's part (may be empty)
        int64_t lo = (int64_t)n * rc_dist_rank() / rc_dist_size();
        int64_t hi = (int64_t)n * (rc_dist_rank() + 1) / rc_dist_size();
        ids += lo;
        n = (int)(hi - lo);
    }
    int64_t rows = n ? rc_acts_rows(a, n, ids) : 0;
    if (rows > t->cap_rows) return rc_fail("trainer: batch of %lld rows (capacity %lld)", (long long)rows, (long long)t->cap_rows);
    t->off[0] = 0;
    if (n && rc_acts_gather(a, n, ids, t->rows, t->off, t->r) != 0) return -1;
    const size_t d = (size_t)a->d;
    const int cr = t->chunk_rows;
    int single = rows <= cr; // activations of the whole batch fit: no recompute
    for (int64_t r0 = 0; r0 < rows; r0 += cr) {
        int m = (int)(rows - r0 < cr ? rows - r0 : cr);
        if (rc_value_forward(t->m, &t->ws, m, t->rows + (size_t)r0 * d, t->v + r0) != 0) return -1;
    }
    double l = rc_bellman_loss_part(t->mode, n, n_norm, t->off, t->v, t->r, update ? t->dv : NULL);
    if (t->dist && !update && rc_dist_sum_f64(&l, 1) != 0) return -1;
    if (!isfinite(l)) return rc_fail("the Bellman loss is not finite (%g): lower the learning rate", l);
    if (loss && !(t->dist && update)) *loss = l;
    if (!update) return 0;
    memset(t->grad, 0, t->m->n_params * sizeof(float));
    for (int64_t r0 = 0; r0 < rows; r0 += cr) {
        int m = (int)(rows - r0 < cr ? rows - r0 : cr);
        if (!single && rc_value_forward(t->m, &t->ws, m, t->rows + (size_t)r0 * d, NULL) != 0) return -1;
        if (rc_value_backward(t->m, &t->ws, t->dv + r0, t->grad, NULL) != 0) return -1;
    }
    // Data parallel: the parts' gradients and losses add up to the batch's, summed in rank order
    // (the same bits on every rank, so the weights stay identical everywhere).
    if (t->dist && (rc_dist_sum_f32(t->grad, t->m->n_params) != 0 || rc_dist_sum_f64(&l, 1) != 0)) return -1;
    if (t->dist && loss) *loss = l;
    rc_adam_step(&t->adam, t->m->params, t->grad);
    return 0;
}

void rc_train_opts_default(rc_train_opts *o) {
    memset(o, 0, sizeof *o);
    o->n_hidden = 2;
    o->hidden[0] = o->hidden[1] = 4096;
    o->epochs = 100;
    o->batch_size = 512;
    o->lr = 1e-4;
    o->val_frac = 0.1;
    o->chunk_rows = 2048;
    o->pad_id = -1;
}

static void fmt_dur(char *buf, size_t cap, double s) {
    if (s < 90) snprintf(buf, cap, "%.0fs", s);
    else if (s < 5400) snprintf(buf, cap, "%.1fm", s / 60);
    else snprintf(buf, cap, "%.1fh", s / 3600);
}

// Present when the CUDA code is linked in (GPU test runner, benchmarks); else the module has it.
const rc_trainer_cuda_ops *rc_trainer_cuda_ops_get(void) __attribute__((weak));

const rc_trainer_cuda_ops *rc_trainer_cuda_find(void) {
    if (rc_device_check(RC_DEVICE_CUDA) != 0) return NULL; // built without CUDA, no module, no device
    typedef const rc_trainer_cuda_ops *(*get_fn)(void);
    get_fn get = rc_trainer_cuda_ops_get ? rc_trainer_cuda_ops_get
                                         : (get_fn)rc_cuda_module_symbol("rc_trainer_cuda_ops_get");
    if (!get) {
        rc_fail("--device cuda: the CUDA module has no value trainer (rebuild the recontrol_cuda target)");
        return NULL;
    }
    return get();
}

// One batch on the CPU trainer t or, when ct != NULL, on the CUDA one (which also starts loading
// the batch after it, ids[nb..nb+next_n-1], when next_n > 0).
static const rc_trainer_cuda_ops *g_cu; // set while a CUDA trainer runs

static int run_batch(rc_trainer *t, rc_trainer_cuda *ct, const rc_acts *a, int nb, const int64_t *ids,
                     int update, double *l, int next_n) {
    if (ct) return g_cu->batch(ct, a, nb, ids, update, l, next_n, next_n > 0 ? ids + nb : NULL);
    return rc_trainer_batch(t, a, nb, ids, update, l);
}

// Validation loss: sum over sequences of their loss / number of sequences.
static int eval_loss(rc_trainer *t, rc_trainer_cuda *ct, const rc_acts *a, const int64_t *ids, int64_t n, int bs,
                     double *out) {
    double total = 0;
    for (int64_t i = 0; i < n; i += bs) {
        int nb = (int)(n - i < bs ? n - i : bs);
        int64_t rest = n - i - nb;
        double l;
        if (run_batch(t, ct, a, nb, ids + i, 0, &l, (int)(rest < bs ? rest : bs)) != 0) return -1;
        total += l * nb;
    }
    *out = n > 0 ? total / (double)n : NAN;
    return 0;
}

static int write_log(const rc_train_opts *o, const char *path, const rc_value_mlp *m, const rc_acts *a,
                     int64_t n_train, int64_t n_val, int done, const double *tr, const double *va,
                     const double *secs) {
    size_t cap = 4096 + (size_t)done * 128;
    char *buf = rc_malloc(cap, "training log");
    if (!buf) return -1;
    size_t n = 0;
#define W(...) n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, __VA_ARGS__)
    W("{\n  \"data\": \"%s\",\n  \"d\": %d,\n  \"hidden\": [", o->data_dir, a->d);
    for (int l = 1; l < m->n_layers; l++) W("%s%d", l > 1 ? ", " : "", m->dims[l]);
    W("],\n  \"n_train\": %lld,\n  \"n_val\": %lld,\n  \"epochs\": %d,\n  \"batch_size\": %d,\n", (long long)n_train,
      (long long)n_val, o->epochs, o->batch_size);
    W("  \"lr\": %g,\n  \"seed\": %llu,\n  \"val_frac\": %g,\n  \"loss\": \"%s\",\n  \"dtype\": \"%s\",\n", o->lr,
      (unsigned long long)o->seed, o->val_frac, o->mode == RC_BELLMAN_REFERENCE ? "reference" : "paper",
      o->dtype == RC_VALUE_BF16 ? "bf16" : "fp32");
    W("  \"device\": \"%s\",\n", o->device == 1 ? "cuda" : "cpu");
    W("  \"pad_id\": %d,\n  \"n_steps\": %lld,\n", o->pad_id, (long long)a->n_steps);
    W("  \"epochs_done\": %d,\n  \"history\": [", done);
    for (int e = 0; e < done; e++) {
        W("%s\n    {\"epoch\": %d, \"train_loss\": %.9g, ", e ? "," : "", e + 1, tr[e]);
        if (isnan(va[e])) W("\"val_loss\": null, ");
        else W("\"val_loss\": %.9g, ", va[e]);
        W("\"seconds\": %.3f}", secs[e]);
    }
    W("\n  ]\n}\n");
#undef W
    int rc = n >= cap ? rc_fail("training log overflow")
             : rc_dist_rank() == 0 ? rc_write_file_atomic(path, buf, n) : 0; // rank 0's file
    free(buf);
    return rc;
}

// The settings that fix the sequence of steps: what data-parallel ranks must agree on (with the
// data path and the number of epochs) and what a checkpoint must match to be resumed (without
// them: the run directory may move, and more epochs extend a finished training).
static void settings_text(const rc_train_opts *o, const rc_acts *a, int with_run, char *txt, size_t cap) {
    int k = snprintf(txt, cap, "data %s%s%lld sequences, %lld states, d %d%s, hidden", with_run ? o->data_dir : "",
                     with_run ? " (" : "", (long long)a->n_seq, (long long)a->n_steps, a->d, with_run ? ")" : "");
    for (int i = 0; i < o->n_hidden && k < (int)cap - 300; i++) k += snprintf(txt + k, cap - (size_t)k, " %d", o->hidden[i]);
    if (with_run) k += snprintf(txt + k, cap - (size_t)k, ", epochs %d", o->epochs);
    snprintf(txt + k, cap - (size_t)k, ", batch %d, lr %.17g, seed %llu, val %.17g, loss %d, dtype %d, init %s, pad %d",
             o->batch_size, o->lr, (unsigned long long)o->seed, o->val_frac, (int)o->mode, (int)o->dtype,
             o->init_path ? o->init_path : "-", o->pad_id);
}

// Data parallel: every rank must train the same model on the same data; one message otherwise.
static int agree_settings(const rc_train_opts *o, const rc_acts *a) {
    char txt[1024];
    settings_text(o, a, 1, txt, sizeof txt);
    return rc_dist_agree("training settings", txt);
}

// The checkpoint's optimizer state lives in the CPU trainer (t) or on the device (ct, through
// the host buffers of c). Rank 0 writes; every rank holds the same state.
static int ckpt_save(const char *path, const char *settings, rc_train_ckpt *c, rc_trainer *t, rc_trainer_cuda *ct) {
    if (rc_dist_rank() != 0) return 0;
    if (ct) {
        if (g_cu->state(ct, c->params, c->m, c->v, &c->step, 0) != 0) return -1;
    } else {
        c->params = t->m->params, c->m = t->adam.m, c->v = t->adam.v, c->step = t->adam.step;
    }
    return rc_train_ckpt_save(path, settings, ct ? "cuda" : "cpu", c);
}

static int cmp_i64(const void *x, const void *y) {
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

// Reads the checkpoint into c (its order into c->order, the training ids, in split order before)
// and the trainer; every rank reads the same file and must find the same position. 0 / -1.
static int ckpt_resume(const char *path, const char *settings, rc_train_ckpt *c, rc_trainer *t, rc_trainer_cuda *ct,
                       int max_done) {
    const size_t bytes = (size_t)(c->n_order ? c->n_order : 1) * sizeof(int64_t);
    int64_t *split = rc_malloc(bytes, "checkpoint order");
    int ok = split != NULL;
    if (ok) memcpy(split, c->order, bytes); // sorted (rc_acts_split)
    ok = ok && rc_train_ckpt_load(path, settings, c, max_done) == 0;
    if (ok) { // the same training split, in another order
        int64_t *sorted = rc_malloc(bytes, "checkpoint order");
        ok = sorted != NULL;
        if (ok) {
            memcpy(sorted, c->order, bytes);
            qsort(sorted, (size_t)c->n_order, sizeof(int64_t), cmp_i64);
            for (int64_t i = 0; i < c->n_order && ok; i++) ok = sorted[i] == split[i];
            if (!ok) rc_fail("%s: the checkpoint's training sequences are not this run's split", path);
            free(sorted);
        }
    }
    free(split);
    if (ok && c->in_epoch && c->epoch >= max_done) {
        rc_fail("%s: checkpoint inside epoch %d, beyond --epochs %d", path, c->epoch + 1, max_done);
        ok = 0;
    }
    if (ok && ct) ok = g_cu->state(ct, c->params, c->m, c->v, &c->step, 1) == 0;
    if (ok && !ct) {
        memcpy(t->m->params, c->params, c->n_params * sizeof(float));
        memcpy(t->adam.m, c->m, c->n_params * sizeof(float));
        memcpy(t->adam.v, c->v, c->n_params * sizeof(float));
        t->adam.step = c->step;
    }
    if (rc_dist_all_ok(ok, "reading the training checkpoint")) return -1;
    char pos[1400];
    snprintf(pos, sizeof pos, "%.1200s at step %ld, epoch %d, position %lld", path, c->step, c->epoch + 1, (long long)c->pos);
    return rc_dist_agree("training checkpoint", pos);
}

int rc_train_run(const rc_train_opts *o) {
    FILE *out = o->out ? o->out : stderr, *quiet = NULL;
    if (!o->data_dir || !o->out_path) return rc_fail("training needs a run directory and an output path");
    if (o->epochs < 0 || o->epochs > RC_TRAIN_MAX_EPOCHS)
        return rc_fail("--epochs expects an integer in [0, %d], got %d", RC_TRAIN_MAX_EPOCHS, o->epochs);
    if (o->batch_size < 1) return rc_fail("--batch-size expects a positive integer, got %d", o->batch_size);
    if (!isfinite(o->lr) || !(o->lr > 0) || o->lr > RC_TRAIN_MAX_LR)
        return rc_fail("--lr expects a finite number in (0, %g], got %g", RC_TRAIN_MAX_LR, o->lr);
    if (!isfinite(o->val_frac) || o->val_frac < 0 || o->val_frac >= 1)
        return rc_fail("--val-frac expects a finite number in [0, 1), got %g", o->val_frac);
    if (o->chunk_rows < 1) return rc_fail("--chunk-rows expects a positive integer, got %d", o->chunk_rows);
    if (o->n_hidden < 0 || o->n_hidden > RC_VALUE_MAX_LAYERS - 1)
        return rc_fail("at most %d hidden layers", RC_VALUE_MAX_LAYERS - 1);
    char log_path[1200], ckpt_path[1200];
    size_t stem = strlen(o->out_path); // OUT without .safetensors names the log and the checkpoint
    const char *ext = ".safetensors";
    if (stem > strlen(ext) && !strcmp(o->out_path + stem - strlen(ext), ext)) stem -= strlen(ext);
    if (o->log_path) snprintf(log_path, sizeof log_path, "%s", o->log_path);
    else snprintf(log_path, sizeof log_path, "%.*s.train.json", (int)stem, o->out_path);
    if (o->checkpoint_path) snprintf(ckpt_path, sizeof ckpt_path, "%s", o->checkpoint_path);
    else snprintf(ckpt_path, sizeof ckpt_path, "%.*s.ckpt", (int)stem, o->out_path);
    if (o->checkpoint_every < 0) return rc_fail("--checkpoint-every expects an integer >= 0, got %d", o->checkpoint_every);
    if (o->max_steps < 0) return rc_fail("--max-steps expects an integer >= 0, got %ld", o->max_steps);
    const int ckpt = !o->no_checkpoint;
    if (o->resume && !ckpt) return rc_fail("--resume needs checkpoints (drop --no-checkpoint)");
    // Where the results go is checked before the epochs run, not after them.
    if (rc_check_output_file("value model", o->out_path) || rc_check_output_file("training log", log_path) ||
        (ckpt && rc_check_output_file("training checkpoint", ckpt_path)))
        return -1;
    if (!rc_is_dir(o->data_dir)) {
        if (rc_check_regular_file(o->data_dir, "a run directory") == 0)
            return rc_fail("%s is a file; --data takes the run directory written by extract and label",
                           o->data_dir);
        return rc_fail_ctx("--data");
    }
    if (o->init_path && rc_check_regular_file(o->init_path, "a value model (.safetensors)"))
        return rc_fail_ctx("--init");
    if (rc_dist_rank() != 0 && (quiet = fopen("/dev/null", "w"))) out = quiet; // rank 0 reports

    rc_acts a;
    if (rc_acts_open(&a, o->data_dir) != 0) return -1;
    int rc = -1;
    if (o->pad_id >= 0) {
        int64_t masked, dropped;
        if (rc_acts_mask_pad(&a, o->data_dir, o->pad_id, &masked, &dropped) != 0) {
            rc_acts_close(&a);
            return rc_fail_ctx("--pad-id %d", o->pad_id);
        }
        fprintf(out, "train: pad id %d (the reference's convention): %lld states masked, %lld sequences "
                     "left without a state dropped\n", o->pad_id, (long long)masked, (long long)dropped);
    }
    rc_value_mlp m = {0};
    rc_trainer t = {0};
    rc_trainer_cuda *ct = NULL;
    int64_t *tr_ids = NULL, *va_ids = NULL, n_tr = 0, n_va = 0;
    double *hist = NULL;
    float *ck_buf = NULL;
    rc_train_ckpt ck;
    memset(&ck, 0, sizeof ck);
    if (rc_acts_split(a.n_seq, o->val_frac, o->seed, &tr_ids, &n_tr, &va_ids, &n_va) != 0) goto done;
    if (agree_settings(o, &a) != 0) goto done;
    if (o->init_path) {
        if (rc_value_load(&m, o->init_path) != 0) goto done;
        if (m.dims[0] != a.d) {
            rc_fail("%s has input width %d but the states in %s have %d", o->init_path, m.dims[0], o->data_dir, a.d);
            goto done;
        }
    } else {
        if (rc_value_alloc(&m, a.d, o->n_hidden, o->hidden) != 0) goto done;
        rc_value_init(&m, o->seed);
    }
    m.dtype = o->dtype;
    int bs = o->batch_size;
    if (o->device == 1) { // data parallel over GPUs: each rank on its local GPU, gradients over NCCL
        if (!(g_cu = rc_trainer_cuda_find()) ||
            g_cu->init(&ct, &m, o->mode, o->lr, bs, (int64_t)bs * a.max_len, o->chunk_rows) != 0)
            goto done;
    } else if (rc_trainer_init(&t, &m, o->mode, o->lr, bs, (int64_t)bs * a.max_len, o->chunk_rows) != 0) {
        goto done;
    }
    hist = rc_calloc((size_t)(3 * (o->epochs + 1)), sizeof(double), "loss history");
    if (!hist) goto done;
    double *h_tr = hist, *h_va = hist + o->epochs + 1, *h_s = hist + 2 * (o->epochs + 1);

    fprintf(out, "train: %lld sequences (%lld states, d %d, longest %d) from %s: %lld train / %lld validation\n",
            (long long)a.n_seq, (long long)a.n_steps, a.d, a.max_len, o->data_dir, (long long)n_tr, (long long)n_va);
    fprintf(out, "train: value MLP %d", m.dims[0]);
    for (int l = 1; l <= m.n_layers; l++) fprintf(out, "->%d", m.dims[l]);
    fprintf(out, " (%zu parameters, %s%s) on the %s, %s loss, Adam lr %g, batch %d, %d epochs, seed %llu\n",
            m.n_params, o->dtype == RC_VALUE_BF16 ? "bf16" : "fp32", o->init_path ? ", from --init" : "",
            ct ? "CUDA device" : "CPU",
            o->mode == RC_BELLMAN_REFERENCE ? "reference-code" : "paper", o->lr, bs, o->epochs,
            (unsigned long long)o->seed);

    uint64_t shuf = o->seed * 0x9e3779b97f4a7c15ull + 1;
    char ck_settings[1024];
    settings_text(o, &a, 0, ck_settings, sizeof ck_settings);
    ck.n_params = m.n_params;
    ck.n_order = n_tr;
    ck.order = tr_ids;
    ck.h_tr = h_tr, ck.h_va = h_va, ck.h_s = h_s;
    if (ckpt && (ct || o->resume)) { // host copies of the device state / what the file holds
        ck_buf = rc_malloc(3 * m.n_params * sizeof(float) + 16, "training checkpoint");
        if (!ck_buf) goto done;
        ck.params = ck_buf, ck.m = ck_buf + m.n_params, ck.v = ck_buf + 2 * m.n_params;
    }
    int e0 = 0, resumed_in = 0; // the epoch to start with; 1: go on inside it
    long step = 0;
    int have_ck = ckpt && o->resume && rc_file_exists(ckpt_path);
    if (o->resume && rc_dist_bcast(&have_ck, sizeof have_ck, 0) != 0) goto done; // rank 0's view
    if (have_ck) {
        if (ckpt_resume(ckpt_path, ck_settings, &ck, &t, ct, o->epochs) != 0) goto done; // into tr_ids
        e0 = ck.epoch, resumed_in = ck.in_epoch, step = ck.step, shuf = ck.shuffle;
        if (resumed_in) fprintf(out, "train: resumed from %s: step %ld, epoch %d at sequence %lld of %lld\n", ckpt_path, step,
                                e0 + 1, (long long)ck.pos, (long long)n_tr);
        else fprintf(out, "train: resumed from %s: step %ld, %d epoch%s done\n", ckpt_path, step, e0, e0 == 1 ? "" : "s");
    } else if (ckpt && o->resume) {
        fprintf(out, "train: no checkpoint %s: starting from the beginning\n", ckpt_path);
    } else if (ckpt && rc_file_exists(ckpt_path)) {
        fprintf(out, "train: starting over; %s will be replaced (--resume goes on from it)\n", ckpt_path);
    }
    double t_start = rc_time_s();
    int64_t rows_train = 0;
    for (int64_t i = 0; i < n_tr; i++) rows_train += a.seq_len[tr_ids[i]];
    for (int e = e0; e < o->epochs; e++) {
        double t0 = rc_time_s(), sum = 0, last_print = t0;
        int nb = 0;
        int64_t i0 = 0;
        if (e == e0 && resumed_in) sum = ck.loss_sum, nb = ck.nb, i0 = ck.pos; // order already drawn
        else rc_shuffle_i64(tr_ids, n_tr, &shuf);
        for (int64_t i = i0; i < n_tr; i += bs) {
            int n = (int)(n_tr - i < bs ? n_tr - i : bs);
            double l;
            int64_t rest = n_tr - i - n;
            if (run_batch(&t, ct, &a, n, tr_ids + i, 1, &l, (int)(rest < bs ? rest : bs)) != 0) {
                rc_fail_ctx("epoch %d, batch %d", e + 1, nb + 1);
                goto done;
            }
            sum += l;
            nb++;
            step++;
            const int stop = o->max_steps > 0 && step >= o->max_steps;
            if (ckpt && (stop || (o->checkpoint_every > 0 && step % o->checkpoint_every == 0 && i + n < n_tr))) {
                ck.epoch = e, ck.in_epoch = 1, ck.pos = i + n, ck.nb = nb, ck.loss_sum = sum, ck.shuffle = shuf;
                ck.done = e;
                if (ckpt_save(ckpt_path, ck_settings, &ck, &t, ct) != 0) goto done;
            }
            if (stop) {
                if (rc_dist_barrier() != 0) goto done;
                fprintf(out, "train: stopped after %ld steps (--max-steps), epoch %d, batch %d%s%s\n", step, e + 1, nb,
                        ckpt ? "; go on with --resume from " : "", ckpt ? ckpt_path : "");
                rc = 0;
                goto done;
            }
            double now = rc_time_s();
            if (!o->quiet && now - last_print > 10) {
                fprintf(out, "  epoch %d: batch %d/%lld, loss %.4f, %.1f s\n", e + 1, nb,
                        (long long)((n_tr + bs - 1) / bs), l, now - t0);
                last_print = now;
            }
        }
        h_tr[e] = nb ? sum / nb : NAN;
        if (eval_loss(&t, ct, &a, va_ids, n_va, bs, &h_va[e]) != 0) goto done;
        double now = rc_time_s();
        h_s[e] = now - t0;
        double per = (now - t_start) / (e + 1 - e0);
        char eta[32], el[32];
        fmt_dur(eta, sizeof eta, per * (o->epochs - e - 1));
        fmt_dur(el, sizeof el, now - t_start);
        if (!o->quiet || e + 1 == o->epochs) {
            fprintf(out, "epoch %3d/%d  train %.6f  val ", e + 1, o->epochs, h_tr[e]);
            if (isnan(h_va[e])) fprintf(out, "-");
            else fprintf(out, "%.6f", h_va[e]);
            fprintf(out, "  %.2fs (%.0f states/s)  elapsed %s  ETA %s\n", h_s[e],
                    h_s[e] > 0 ? (double)rows_train / h_s[e] : 0.0, el, eta);
        }
        if (write_log(o, log_path, &m, &a, n_tr, n_va, e + 1, h_tr, h_va, h_s) != 0) goto done;
        if (ckpt) {
            ck.epoch = e + 1, ck.in_epoch = 0, ck.pos = 0, ck.nb = 0, ck.loss_sum = 0, ck.shuffle = shuf;
            ck.done = e + 1;
            if (ckpt_save(ckpt_path, ck_settings, &ck, &t, ct) != 0) goto done;
        }
    }
    if (ct && g_cu->download(ct, &m) != 0) goto done;
    if (rc_dist_rank() == 0 && rc_value_save(&m, o->out_path) != 0) goto done;
    if ((o->epochs == 0 || e0 == o->epochs) && write_log(o, log_path, &m, &a, n_tr, n_va, e0, h_tr, h_va, h_s) != 0)
        goto done;
    if (rc_dist_barrier() != 0) goto done; // the model is on disk before any rank goes on
    fprintf(out, "train: wrote %s and %s (%.1f s)%s\n", o->out_path, log_path, rc_time_s() - t_start,
            rc_dist_size() > 1 ? " (data parallel)" : "");
    rc = 0;
done:
    free(ck_buf);
    free(hist);
    free(tr_ids);
    free(va_ids);
    rc_trainer_free(&t);
    if (ct) g_cu->free(ct);
    rc_value_free(&m);
    rc_acts_close(&a);
    if (quiet) fclose(quiet);
    return rc;
}
