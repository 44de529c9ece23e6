// The backend interface (engine/backend.h): opening a backend of either kind, the checked
// dispatch of its operations, and the CUDA module: librecontrol_cuda.so is loaded with dlopen the
// first time a CUDA backend is asked for ($RC_CUDA_MODULE, else beside the executable, else the
// build directory), unless the CUDA code is linked into this executable (the GPU test runner).
#define _GNU_SOURCE
#include "engine/backend.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/common.h"
#include "kernels/cpu/qmatmul.h"

#ifndef RC_CUDA_MODULE_DIR
#define RC_CUDA_MODULE_DIR "."
#endif
#define RC_CUDA_MODULE_NAME "librecontrol_cuda.so"

int rc_cpu_backend_create(rc_backend *b, const rc_model *m, const rc_backend_opts *o);

// Present when the CUDA backend is linked in statically (gpu_tests, bench_gpu).
int rc_cuda_backend_create(rc_backend *b, const rc_model *m, const rc_backend_opts *o)
    __attribute__((weak));
int rc_cuda_device_usable(char *why, size_t cap) __attribute__((weak));
int rc_cuda_backend_create_random(rc_backend *b, const rc_config *cfg, const rc_backend_opts *o,
                                  uint64_t seed) __attribute__((weak));
int rc_cuda_device_report(FILE *f) __attribute__((weak));
int rc_cuda_encoder_create(rc_encoder *e, int gpu) __attribute__((weak));
int rc_cpu_encoder_create(rc_encoder *e);

typedef int (*create_fn)(rc_backend *, const rc_model *, const rc_backend_opts *);
typedef int (*usable_fn)(char *, size_t);
typedef int (*random_fn)(rc_backend *, const rc_config *, const rc_backend_opts *, uint64_t);
typedef int (*report_fn)(FILE *);
typedef int (*encoder_fn)(rc_encoder *, int);

static void *g_module;
static char g_module_path[PATH_MAX + 64];
static char g_module_err[4 * PATH_MAX];
static int g_module_tried;

// Finds librecontrol_cuda.so; on failure g_module_err says where it looked and why.
static void *cuda_module(void) {
    if (g_module_tried) return g_module;
    g_module_tried = 1;
    char cand[3][PATH_MAX / 2];
    int nc = 0;
    const char *env = getenv("RC_CUDA_MODULE");
    if (env && *env && strlen(env) < sizeof cand[0]) memcpy(cand[nc++], env, strlen(env) + 1);
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k > 0) {
        exe[k] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            if (rc_path_join(cand[nc], sizeof cand[0], exe, RC_CUDA_MODULE_NAME) == 0) nc++;
        }
    }
    if (rc_path_join(cand[nc], sizeof cand[0], RC_CUDA_MODULE_DIR, RC_CUDA_MODULE_NAME) == 0) nc++;
    size_t off = 0;
    g_module_err[0] = 0;
    const size_t cap = sizeof g_module_err - 16;
    for (int i = 0; i < nc; i++) {
        if (!rc_file_exists(cand[i])) {
            if (off < cap)
                off += (size_t)snprintf(g_module_err + off, cap - off, "%s%s (absent)",
                                        off ? "; " : "", cand[i]);
            if (env && *env && i == 0) break; // an explicit path is the only one tried
            continue;
        }
        void *h = dlopen(cand[i], RTLD_NOW | RTLD_LOCAL);
        if (h) {
            g_module = h;
            memcpy(g_module_path, cand[i], strlen(cand[i]) + 1);
            return h;
        }
        if (off < cap)
            snprintf(g_module_err + off, cap - off, "%s%s (%.300s)", off ? "; " : "", cand[i],
                     dlerror());
        break; // found but unloadable: say why rather than trying an older copy elsewhere
    }
    return NULL;
}

static void *cuda_symbol(const char *name, void *linked) {
    if (linked) return linked;
    void *h = cuda_module();
    return h ? dlsym(h, name) : NULL;
}

void *rc_cuda_module_symbol(const char *name) { return cuda_symbol(name, NULL); }

static int cuda_unavailable(void) {
#ifndef RC_HAVE_CUDA
    if (!rc_cuda_backend_create && !getenv("RC_CUDA_MODULE"))
        return rc_fail("--device cuda: this binary was built without CUDA (rebuild with nvcc "
                       "available and -DRC_CUDA=ON, or use --device cpu)");
#endif
    return rc_fail("--device cuda: the CUDA backend module is missing or cannot be loaded: %s "
                   "(build the recontrol_cuda target, or use --device cpu)",
                   g_module_err[0] ? g_module_err : "not found");
}

int rc_device_check(rc_device d) {
    if (d == RC_DEVICE_CPU) return 0;
    if (d != RC_DEVICE_CUDA) return rc_fail("unknown device %d", (int)d);
    usable_fn usable = (usable_fn)cuda_symbol("rc_cuda_device_usable", (void *)rc_cuda_device_usable);
    if (!usable) return cuda_unavailable();
    char why[512];
    if (!usable(why, sizeof why))
        return rc_fail("--device cuda: no CUDA device: %s (use --device cpu)", why);
    return 0;
}

int rc_device_info(FILE *f) {
    fprintf(f, "CPU backend: %ld online cores, kernels %s\n", sysconf(_SC_NPROCESSORS_ONLN),
            rc_cpu_qmatmul_isa());
    report_fn report = (report_fn)cuda_symbol("rc_cuda_device_report", (void *)rc_cuda_device_report);
    if (!report) {
        fprintf(f, "CUDA backend: not available: %s\n",
#ifdef RC_HAVE_CUDA
                g_module_err[0] ? g_module_err : "module not found"
#else
                "this binary was built without CUDA"
#endif
        );
        return 0;
    }
    fprintf(f, "CUDA backend: %s\n", g_module_path[0] ? g_module_path : "linked in");
    return report(f);
}

int rc_device_parse(const char *s, rc_device *d) {
    if (!strcmp(s, "cpu")) *d = RC_DEVICE_CPU;
    else if (!strcmp(s, "cuda")) *d = RC_DEVICE_CUDA;
    else return rc_fail("--device: expected cpu or cuda, got \"%s\"", s);
    return 0;
}

int rc_wtype_parse(const char *s, rc_wtype *t) {
    if (!strcmp(s, "f16")) *t = RC_WT_F16;
    else if (!strcmp(s, "bf16")) *t = RC_WT_BF16;
    else if (!strcmp(s, "f32")) *t = RC_WT_F32;
    else return rc_fail("--dtype: expected f16, bf16 or f32, got \"%s\"", s);
    return 0;
}

const char *rc_device_name(rc_device d) { return d == RC_DEVICE_CUDA ? "cuda" : "cpu"; }
const char *rc_wtype_name(rc_wtype t) {
    return t == RC_WT_F32 ? "f32" : t == RC_WT_BF16 ? "bf16" : "f16";
}

static rc_backend *backend_new(const rc_config *cfg, const rc_backend_opts *o) {
    if (o->n_slots < 1 || o->max_len < 1 || o->max_tokens < 0) {
        rc_fail("rc_backend_open: n_slots %d and max_len %d must be >= 1", o->n_slots, o->max_len);
        return NULL;
    }
    rc_backend *b = rc_calloc(1, sizeof *b, "backend");
    if (!b) return NULL;
    b->cfg = *cfg;
    b->device = o->device;
    b->n_slots = o->n_slots;
    b->max_len = o->max_len;
    b->max_tokens = o->max_tokens > 0 ? o->max_tokens : 256;
    b->row_cap = b->max_tokens > b->n_slots ? b->max_tokens : b->n_slots;
    return b;
}

int rc_backend_open_random(rc_backend **out, const rc_config *cfg, const rc_backend_opts *o,
                           uint64_t seed) {
    *out = NULL;
    if (o->device != RC_DEVICE_CUDA)
        return rc_fail("random weights are drawn on the device: the CUDA backend only");
    random_fn create = (random_fn)cuda_symbol("rc_cuda_backend_create_random",
                                              (void *)rc_cuda_backend_create_random);
    if (!create) return cuda_unavailable();
    if (rc_device_check(RC_DEVICE_CUDA)) return -1;
    rc_backend *b = backend_new(cfg, o);
    if (!b) return -1;
    if (create(b, cfg, o, seed)) {
        free(b);
        return -1;
    }
    *out = b;
    return 0;
}

const char *rc_engine_name(rc_device d, rc_wtype t, char *buf, size_t cap) {
    if (d == RC_DEVICE_CPU) snprintf(buf, cap, "cpu");
    else snprintf(buf, cap, "%s-%s", rc_device_name(d), rc_wtype_name(t));
    return buf;
}

int rc_backend_open(rc_backend **out, const rc_model *m, const rc_backend_opts *o) {
    *out = NULL;
    if (!m || !o) return rc_fail("rc_backend_open: no model or options");
    rc_backend *b = backend_new(&m->cfg, o);
    if (!b) return -1;
    b->model = m;
    int rc;
    if (o->device == RC_DEVICE_CPU) {
        rc = rc_cpu_backend_create(b, m, o);
    } else if (o->device == RC_DEVICE_CUDA) {
        create_fn create =
            (create_fn)cuda_symbol("rc_cuda_backend_create", (void *)rc_cuda_backend_create);
        rc = create ? (rc_device_check(RC_DEVICE_CUDA) ? -1 : create(b, m, o)) : cuda_unavailable();
    } else {
        rc = rc_fail("rc_backend_open: unknown device %d", (int)o->device);
    }
    if (rc) {
        free(b);
        return -1;
    }
    *out = b;
    return 0;
}

void rc_backend_close(rc_backend *b) {
    if (!b) return;
    if (b->ops && b->ops->free) b->ops->free(b);
    free(b);
}

int rc_backend_forward(rc_backend *b, int n, const int *tokens, const int *slots, const int *pos,
                       const int *out_rows) {
    if (n < 0 || (n > 0 && (!tokens || !slots || !pos)))
        return rc_fail("rc_backend_forward: bad arguments");
    const rc_config *c = &b->cfg;
    for (int i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size)
            return rc_fail("forward: token %d (batch index %d) is outside the vocabulary [0, %d)",
                           tokens[i], i, c->vocab_size);
        if (slots[i] < 0 || slots[i] >= b->n_slots)
            return rc_fail("forward: slot %d (batch index %d) is outside the KV cache's %d slots",
                           slots[i], i, b->n_slots);
        if (pos[i] < 0 || pos[i] >= b->max_len)
            return rc_fail("forward: position %d (batch index %d) is beyond the KV cache length %d",
                           pos[i], i, b->max_len);
        if (out_rows && out_rows[i] >= b->row_cap)
            return rc_fail("forward: output row %d (batch index %d) is beyond the %d rows kept",
                           out_rows[i], i, b->row_cap);
    }
    return b->ops->forward(b, n, tokens, slots, pos, out_rows);
}

static int rows_ok(const rc_backend *b, int n, const char *what) {
    if (n < 0 || n > b->row_cap)
        return rc_fail("%s: %d rows, the backend keeps at most %d", what, n, b->row_cap);
    return 0;
}

int rc_backend_capture_begin(rc_backend *b, int n, int buf) {
    if (rows_ok(b, n, "capture")) return -1;
    if (buf != 0 && buf != 1) return rc_fail("capture: buffer %d (0 or 1)", buf);
    return b->ops->capture_begin(b, n, buf);
}

const float *rc_backend_capture_wait(rc_backend *b, int buf) {
    if (buf != 0 && buf != 1) {
        rc_fail("capture: buffer %d (0 or 1)", buf);
        return NULL;
    }
    return b->ops->capture_wait(b, buf);
}

int rc_backend_set_rows(rc_backend *b, int n, const float *host) {
    if (rows_ok(b, n, "set_rows")) return -1;
    return n ? b->ops->set_rows(b, n, host) : 0;
}

int rc_backend_control_add(rc_backend *b, const rc_value_mlp *v) {
    if (!v || v->n_layers < 1 || v->dims[v->n_layers] != 1)
        return rc_fail("RE-Control: not a value network (d -> ... -> 1)");
    if (v->dims[0] != b->cfg.hidden_size)
        return rc_fail("RE-Control: the value network takes %d-dim states but the model's hidden "
                       "size is %d (was it trained on another model's activations?)",
                       v->dims[0], b->cfg.hidden_size);
    int id = b->ops->control_add(b, v);
    if (id >= 0) b->n_controls = id + 1;
    return id;
}

int rc_backend_edit(rc_backend *b, int control, int row0, int n, float alpha, int steps) {
    if (row0 < 0 || rows_ok(b, row0 + n, "edit")) return -1;
    if (steps < 0) return rc_fail("RE-Control: %d steps (must be >= 0)", steps);
    if (!(alpha == alpha) || alpha < 0 || alpha > 1e30f)
        return rc_fail("RE-Control: step size %g (must be finite and >= 0)", (double)alpha);
    if (control < 0 || control >= b->n_controls)
        return rc_fail("RE-Control: unknown control id %d (%d value networks loaded)", control,
                       b->n_controls);
    if (n == 0 || steps == 0) return 0;
    return b->ops->edit(b, control, row0, n, alpha, steps);
}

int rc_backend_logits(rc_backend *b, int n, float *host) {
    if (rows_ok(b, n, "logits")) return -1;
    if (b->cfg.arch != RC_ARCH_CAUSAL_LM)
        return rc_fail("%s is a reward model (no LM head)", b->cfg.source[0] ? b->cfg.source : "the model");
    return n ? b->ops->logits(b, n, host) : 0;
}

int rc_backend_sample(rc_backend *b, int n, const rc_sample_params *sp, const float *u,
                      int *tokens) {
    if (rows_ok(b, n, "sample")) return -1;
    if (b->cfg.arch != RC_ARCH_CAUSAL_LM)
        return rc_fail("%s is a reward model (no LM head); it cannot generate",
                       b->cfg.source[0] ? b->cfg.source : "the model");
    for (int i = 0; i < n; i++)
        if (!(sp[i].temperature >= 0) || sp[i].top_k < 0 || !(sp[i].top_p > 0 && sp[i].top_p <= 1))
            return rc_fail("sample: row %d: temperature %g, top_k %d, top_p %g out of range", i,
                           (double)sp[i].temperature, sp[i].top_k, (double)sp[i].top_p);
    return n ? b->ops->sample(b, n, sp, u, tokens) : 0;
}

int rc_backend_reward(rc_backend *b, int n, float *host) {
    if (rows_ok(b, n, "reward")) return -1;
    if (b->cfg.arch != RC_ARCH_REWARD)
        return rc_fail("%s is not a reward model (no score / regression_head)",
                       b->cfg.source[0] ? b->cfg.source : "the model");
    return n ? b->ops->reward(b, n, host) : 0;
}

// ---- encoders ------------------------------------------------------------------------------------

int rc_encoder_open(rc_encoder **out, const rc_bert *m, rc_device d, int gpu, int max_tokens) {
    *out = NULL;
    if (!m) return rc_fail("rc_encoder_open: no model");
    if (max_tokens <= 0) max_tokens = 8192;
    if (max_tokens < m->c.max_pos) max_tokens = m->c.max_pos;
    rc_encoder *e = rc_calloc(1, sizeof *e, "encoder");
    if (!e) return -1;
    e->model = m;
    e->device = d;
    e->max_tokens = max_tokens;
    e->max_seqs = max_tokens;
    int rc;
    if (d == RC_DEVICE_CPU) {
        rc = rc_cpu_encoder_create(e);
    } else if (d == RC_DEVICE_CUDA) {
        encoder_fn create =
            (encoder_fn)cuda_symbol("rc_cuda_encoder_create", (void *)rc_cuda_encoder_create);
        rc = create ? (rc_device_check(RC_DEVICE_CUDA) ? -1 : create(e, gpu)) : cuda_unavailable();
    } else {
        rc = rc_fail("rc_encoder_open: unknown device %d", (int)d);
    }
    if (rc) {
        free(e);
        return -1;
    }
    *out = e;
    return 0;
}

void rc_encoder_close(rc_encoder *e) {
    if (!e) return;
    if (e->ops && e->ops->free) e->ops->free(e);
    free(e);
}

int rc_encoder_forward(rc_encoder *e, int n_seq, const int *ids, const int *types, const int *lens,
                       rc_bert_pool pool, float *out) {
    if (rc_bert_check_batch(e->model, n_seq, ids, types, lens, pool)) return -1;
    size_t total = 0;
    for (int s = 0; s < n_seq; s++) total += (size_t)lens[s];
    int *pos = rc_malloc(total * sizeof(int), "encoder positions");
    int *seq = rc_malloc(((size_t)n_seq + 1) * sizeof(int), "encoder offsets");
    int *zeros = types ? NULL : rc_calloc(total, sizeof(int), "encoder token types");
    int rc = -1;
    if (!pos || !seq || (!types && !zeros)) goto done;
    const int d = e->model->c.d;
    // device calls of whole sequences, at most max_tokens tokens and max_seqs sequences each
    size_t t0 = 0;
    for (int s0 = 0; s0 < n_seq;) {
        int ns = 0, nt = 0;
        seq[0] = 0;
        while (s0 + ns < n_seq && ns < e->max_seqs && nt + lens[s0 + ns] <= e->max_tokens) {
            for (int i = 0; i < lens[s0 + ns]; i++) pos[nt + i] = i;
            nt += lens[s0 + ns];
            seq[++ns] = nt;
        }
        if (e->ops->forward(e, ns, ids + t0, (types ? types : zeros) + t0, pos, seq, pool,
                            out + (size_t)s0 * d))
            goto done;
        s0 += ns;
        t0 += (size_t)nt;
    }
    rc = 0;
done:
    free(pos);
    free(seq);
    free(zeros);
    return rc;
}
