// The CPU backend: engine/forward.h's engine behind the backend table. Rows are host memory, so
// capture is a copy into one of two staging buffers and the heads run on the rows in place; the
// RE-Control edit is engine/control.h's rc_control (one per value network).
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "engine/backend.h"
#include "engine/control.h"
#include "engine/forward.h"

#define MAX_CONTROLS 16

typedef struct {
    rc_engine e;
    float *rows;     // (row_cap, hidden_size) post-norm states of the last forward
    float *stage[2]; // (row_cap, hidden_size) capture copies
    float *logits;   // (logits_rows, vocab_size), grown on demand by sample
    int logits_rows;
    float *scratch;  // (vocab_size) sampler
    rc_control ctl[MAX_CONTROLS];
    int n_ctl;
} cpu_impl;

static cpu_impl *impl(rc_backend *b) { return (cpu_impl *)b->impl; }

static int cpu_forward(rc_backend *b, int n, const int *tokens, const int *slots, const int *pos,
                       const int *out_rows) {
    return rc_forward(&impl(b)->e, n, tokens, slots, pos, out_rows, impl(b)->rows);
}

static int cpu_capture_begin(rc_backend *b, int n, int buf) {
    memcpy(impl(b)->stage[buf], impl(b)->rows, sizeof(float) * (size_t)n * b->cfg.hidden_size);
    return 0;
}

static const float *cpu_capture_wait(rc_backend *b, int buf) { return impl(b)->stage[buf]; }

static int cpu_set_rows(rc_backend *b, int n, const float *host) {
    memcpy(impl(b)->rows, host, sizeof(float) * (size_t)n * b->cfg.hidden_size);
    return 0;
}

static int cpu_control_add(rc_backend *b, const rc_value_mlp *v) {
    cpu_impl *p = impl(b);
    if (p->n_ctl == MAX_CONTROLS) return rc_fail("RE-Control: at most %d value networks", MAX_CONTROLS);
    if (rc_control_init(&p->ctl[p->n_ctl], v, 0.f, 0, b->row_cap)) return -1;
    return p->n_ctl++;
}

static int cpu_edit(rc_backend *b, int control, int row0, int n, float alpha, int steps) {
    cpu_impl *p = impl(b);
    if (control < 0 || control >= p->n_ctl)
        return rc_fail("RE-Control: unknown control id %d (%d loaded)", control, p->n_ctl);
    rc_control *c = &p->ctl[control];
    c->alpha = alpha;
    c->n_steps = steps;
    return rc_control_apply(c, n, p->rows + (size_t)row0 * b->cfg.hidden_size);
}

static int cpu_logits(rc_backend *b, int n, float *host) {
    rc_lm_head(&impl(b)->e, n, impl(b)->rows, host);
    return 0;
}

static int cpu_sample(rc_backend *b, int n, const rc_sample_params *sp, const float *u, int *tokens) {
    cpu_impl *p = impl(b);
    const int V = b->cfg.vocab_size;
    if (n > p->logits_rows) {
        float *nl = realloc(p->logits, sizeof(float) * (size_t)n * V);
        if (!nl) return rc_fail("out of memory: logits for %d rows", n);
        p->logits = nl;
        p->logits_rows = n;
    }
    rc_lm_head(&p->e, n, p->rows, p->logits);
    for (int i = 0; i < n; i++)
        tokens[i] = rc_sample_u(p->logits + (size_t)i * V, V, &sp[i], u ? u[i] : 0.f, p->scratch);
    return 0;
}

static int cpu_reward(rc_backend *b, int n, float *host) {
    rc_reward_head(&impl(b)->e, n, impl(b)->rows, host);
    return 0;
}

static void cpu_free(rc_backend *b) {
    cpu_impl *p = impl(b);
    if (!p) return;
    for (int i = 0; i < p->n_ctl; i++) rc_control_free(&p->ctl[i]);
    rc_engine_free(&p->e);
    free(p->rows);
    free(p->stage[0]);
    free(p->stage[1]);
    free(p->logits);
    free(p->scratch);
    free(p);
    b->impl = NULL;
}

static const rc_backend_ops k_cpu_ops = {
    .name = "cpu",
    .forward = cpu_forward,
    .capture_begin = cpu_capture_begin,
    .capture_wait = cpu_capture_wait,
    .set_rows = cpu_set_rows,
    .control_add = cpu_control_add,
    .edit = cpu_edit,
    .logits = cpu_logits,
    .sample = cpu_sample,
    .reward = cpu_reward,
    .free = cpu_free,
};

int rc_cpu_backend_create(rc_backend *b, const rc_model *m, const rc_backend_opts *o) {
    cpu_impl *p = rc_calloc(1, sizeof *p, "CPU backend");
    if (!p) return -1;
    b->impl = p;
    b->ops = &k_cpu_ops;
    const size_t d = (size_t)m->cfg.hidden_size, R = (size_t)b->row_cap;
    const size_t V = m->cfg.arch == RC_ARCH_CAUSAL_LM ? (size_t)m->cfg.vocab_size : 1;
    if (rc_engine_init(&p->e, m, b->n_slots, b->max_len, b->max_tokens)) goto fail;
    p->e.n_threads = o->n_threads;
    p->rows = rc_malloc(sizeof(float) * R * d, "backend rows");
    p->stage[0] = rc_malloc(sizeof(float) * R * d, "capture staging");
    p->stage[1] = rc_malloc(sizeof(float) * R * d, "capture staging");
    p->scratch = rc_malloc(sizeof(float) * V, "sampler scratch");
    if (!p->rows || !p->stage[0] || !p->stage[1] || !p->scratch) goto fail;
    return 0;
fail:
    cpu_free(b);
    return -1;
}

// ---- the CPU encoder -----------------------------------------------------------------------------

static int cpu_encoder_forward(rc_encoder *e, int n_seq, const int *ids, const int *types,
                               const int *pos, const int *seq, rc_bert_pool pool, float *out) {
    return rc_bert_encode_cpu(e->model, n_seq, ids, types, pos, seq, pool, out);
}

static void cpu_encoder_free(rc_encoder *e) { (void)e; }

static const rc_encoder_ops k_cpu_encoder_ops = {cpu_encoder_forward, cpu_encoder_free};

int rc_cpu_encoder_create(rc_encoder *e) {
    e->ops = &k_cpu_encoder_ops;
    return 0;
}
