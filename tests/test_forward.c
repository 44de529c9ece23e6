// Golden tests of the CPU forward against HF transformers (fixtures from
// tests/scripts/make_tiny_models.py): logits, 32-token greedy continuations and reward-model
// rewards of tiny random LLaMA models; batched (ragged prefill, batched decode, continuous
// batching) equals unbatched; hooks; error paths.
//
// Error measure for logits: rel = max_i |ours_i - hf_i| / max_i |hf_i| over the whole
// [len, vocab] array (relative to the largest logit, so near-zero logits do not blow it up).
// F32 storage: rel <= 1e-4. BF16 storage: the fixture's reference is the fp32 forward of the
// bf16 weights cast to fp32 (an exact conversion, as the engine's load is), so both sides
// compute the same function in fp32 and differ only by summation order: the same 1e-4 bound
// applies (a reference run with bf16 *compute* would differ by ~1e-2 relative, the bf16
// epsilon 2^-8 times sqrt(depth), and would not be a fair comparison).
// Rewards: |ours - hf| <= 1e-4 * max(1, |hf|).
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "engine/backend.h"
#include "engine/control.h"
#include "engine/forward.h"
#include "engine/generate.h"
#include "engine/sampler.h"
#include "engine/model.h"
#include "base/npy.h"

#define TOL_LOGITS 1e-4
#define TOL_REWARD 1e-4
#define TOL_BATCH 1e-5 // batched vs unbatched: same math, possibly different tiling

static const char *k_causal[] = {"mha_hd32_tied", "gqa_hd64_untied_bf16", "gqa_hd64_explicit_v1001",
                                 "gqa_llama3_rope"};
static const char *k_reward[] = {"rm_score", "rm_regression_head_bf16"};

static void model_dir(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/tiny/%s", RC_FIXTURES, name);
}

static void load(const char *name, rc_model *m) {
    char dir[1024];
    model_dir(dir, sizeof dir, name);
    cr_assert(rc_model_load(dir, m) == 0, "load %s: %s", name, rc_last_error());
}

static cJSON *golden(const char *name) {
    char path[1200];
    snprintf(path, sizeof path, "%s/tiny/%s/golden.json", RC_FIXTURES, name);
    char *txt = rc_read_file(path, NULL);
    cr_assert(txt, "%s", rc_last_error());
    cJSON *j = cJSON_Parse(txt);
    free(txt);
    cr_assert(j, "bad json %s", path);
    return j;
}

// JSON array of ints -> malloc'd int array.
static int *ints(const cJSON *a, int *n) {
    *n = cJSON_GetArraySize(a);
    int *v = malloc(sizeof(int) * (*n ? *n : 1));
    for (int i = 0; i < *n; i++) v[i] = cJSON_GetArrayItem(a, i)->valueint;
    return v;
}

static double rel_err(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (!(e <= num)) num = isnan(e) ? INFINITY : e;
        if (fabs(b[i]) > den) den = fabs(b[i]);
    }
    return num / (den > 0 ? den : 1);
}

// Forward of one sequence in slot `slot` from position 0; logits (len, vocab) out.
// A CPU backend over m (n_slots sequences of max_len positions, max_tokens per forward).
static rc_backend *open_cpu(const rc_model *m, int n_slots, int max_len, int max_tokens) {
    rc_backend *b = NULL;
    rc_backend_opts o = {.device = RC_DEVICE_CPU, .n_slots = n_slots, .max_len = max_len,
                         .max_tokens = max_tokens};
    cr_assert(rc_backend_open(&b, m, &o) == 0, "%s", rc_last_error());
    return b;
}

static void seq_logits(rc_engine *e, const int *ids, int len, int slot, float *logits) {
    int d = e->model->cfg.hidden_size;
    int *sl = malloc(sizeof(int) * len), *pos = malloc(sizeof(int) * len), *rows = malloc(sizeof(int) * len);
    float *h = malloc(sizeof(float) * (size_t)len * d);
    for (int i = 0; i < len; i++) sl[i] = slot, pos[i] = i, rows[i] = i;
    cr_assert(rc_forward(e, len, ids, sl, pos, rows, h) == 0, "%s", rc_last_error());
    rc_lm_head(e, len, h, logits);
    free(sl), free(pos), free(rows), free(h);
}

Test(forward, logits_match_transformers) {
    for (size_t mi = 0; mi < sizeof k_causal / sizeof *k_causal; mi++) {
        rc_model m;
        load(k_causal[mi], &m);
        cJSON *g = golden(k_causal[mi]);
        const cJSON *seqs = cJSON_GetObjectItem(g, "seqs");
        rc_engine e;
        // max_tokens 8 < the longest sequence (23): the forward chunks internally.
        cr_assert(rc_engine_init(&e, &m, 2, 64, 8) == 0, "%s", rc_last_error());
        double worst = 0;
        for (int k = 0; k < cJSON_GetArraySize(seqs); k++) {
            int len;
            int *ids = ints(cJSON_GetArrayItem(seqs, k), &len);
            char path[1200];
            snprintf(path, sizeof path, "%s/tiny/%s/logits_%d.npy", RC_FIXTURES, k_causal[mi], k);
            float *ref;
            int nd;
            int64_t shape[8];
            cr_assert(rc_npy_read_f32(path, &ref, &nd, shape) == 0, "%s", rc_last_error());
            cr_assert(nd == 2 && shape[0] == len && shape[1] == m.cfg.vocab_size);
            float *lg = malloc(sizeof(float) * (size_t)len * m.cfg.vocab_size);
            seq_logits(&e, ids, len, k % 2, lg);
            double r = rel_err(lg, ref, (size_t)len * m.cfg.vocab_size);
            if (r > worst) worst = r;
            cr_expect(r <= TOL_LOGITS, "%s seq %d: rel err %.3g > %.0e", k_causal[mi], k, r, TOL_LOGITS);
            free(lg), free(ref), free(ids);
        }
        fprintf(stderr, "[forward] %-26s logits max rel err %.3g (tol %.0e)\n", k_causal[mi], worst,
                TOL_LOGITS);
        rc_engine_free(&e);
        cJSON_Delete(g);
        rc_model_free(&m);
    }
}

// Greedy continuations through rc_generate with several engine shapes: unbatched (1 slot),
// all prompts batched, 2 slots (continuous batching refills), tiny max_tokens (chunked prefill
// mixed with decode tokens).
Test(forward, greedy_matches_transformers_batched_and_not) {
    const int shapes[][3] = {{1, 64, 64}, {3, 64, 64}, {2, 48, 5}, {3, 44, 3}}; // slots, len, max_tokens
    for (size_t mi = 0; mi < sizeof k_causal / sizeof *k_causal; mi++) {
        rc_model m;
        load(k_causal[mi], &m);
        cJSON *g = golden(k_causal[mi]);
        const cJSON *pr = cJSON_GetObjectItem(g, "prompts"), *gr = cJSON_GetObjectItem(g, "greedy");
        int np = cJSON_GetArraySize(pr);
        int *lens = malloc(sizeof(int) * np);
        int **ps = malloc(sizeof(int *) * np);
        for (int i = 0; i < np; i++) ps[i] = ints(cJSON_GetArrayItem(pr, i), &lens[i]);
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
            rc_backend *e = open_cpu(&m, shapes[s][0], shapes[s][1], shapes[s][2]);
            rc_gen_params gp = {.max_new_tokens = 32, .stop_at_eos = 0,
                                .sample = {.temperature = 0, .top_k = 0, .top_p = 1, .seed = 1}};
            rc_gen_output *out = calloc(np, sizeof *out);
            cr_assert(rc_generate(e, np, (const int *const *)ps, lens, &gp, NULL, out) == 0, "%s",
                      rc_last_error());
            for (int i = 0; i < np; i++) {
                int nw;
                int *want = ints(cJSON_GetArrayItem(gr, i), &nw);
                cr_assert_eq(out[i].n_tokens, nw, "%s prompt %d: %d tokens, want %d", k_causal[mi], i,
                             out[i].n_tokens, nw);
                for (int t = 0; t < nw; t++)
                    cr_assert_eq(out[i].tokens[t], want[t],
                                 "%s prompt %d (slots %d, max_tokens %d): token %d is %d, HF %d",
                                 k_causal[mi], i, shapes[s][0], shapes[s][2], t, out[i].tokens[t], want[t]);
                cr_assert_eq(out[i].finish, RC_FINISH_LENGTH);
                free(want);
            }
            rc_gen_output_free(out, np);
            free(out);
            rc_backend_close(e);
        }
        fprintf(stderr, "[forward] %-26s greedy 3 x 32 tokens identical to HF (4 batch shapes)\n",
                k_causal[mi]);
        for (int i = 0; i < np; i++) free(ps[i]);
        free(ps), free(lens);
        cJSON_Delete(g);
        rc_model_free(&m);
    }
}

// All logits sequences in ONE ragged prefill batch (different slots and lengths), then a batched
// decode step for all of them; compared with separate single-sequence runs.
Test(forward, ragged_batch_equals_unbatched) {
    for (size_t mi = 0; mi < sizeof k_causal / sizeof *k_causal; mi++) {
        rc_model m;
        load(k_causal[mi], &m);
        cJSON *g = golden(k_causal[mi]);
        const cJSON *seqs = cJSON_GetObjectItem(g, "seqs");
        int ns = cJSON_GetArraySize(seqs), V = m.cfg.vocab_size, d = m.cfg.hidden_size;
        int lens[8], *ids[8], total = 0;
        for (int k = 0; k < ns; k++) {
            ids[k] = ints(cJSON_GetArrayItem(seqs, k), &lens[k]);
            total += lens[k];
        }
        rc_engine e1, eb;
        cr_assert(rc_engine_init(&e1, &m, 1, 64, 64) == 0);
        cr_assert(rc_engine_init(&eb, &m, ns, 64, 64) == 0);
        // interleave the sequences' tokens to make the batch truly ragged
        int *bt = malloc(sizeof(int) * total), *bs = malloc(sizeof(int) * total),
            *bp = malloc(sizeof(int) * total), *br = malloc(sizeof(int) * total);
        int nb = 0, off[8] = {0};
        for (int k = 1; k < ns; k++) off[k] = off[k - 1] + lens[k - 1];
        for (int p = 0; p < 64; p++)
            for (int k = ns - 1; k >= 0; k--)
                if (p < lens[k]) bt[nb] = ids[k][p], bs[nb] = k, bp[nb] = p, br[nb] = off[k] + p, nb++;
        float *hb = malloc(sizeof(float) * (size_t)total * d), *lb = malloc(sizeof(float) * (size_t)total * V);
        cr_assert(rc_forward(&eb, nb, bt, bs, bp, br, hb) == 0, "%s", rc_last_error());
        rc_lm_head(&eb, total, hb, lb);
        double worst = 0;
        int next[8];
        for (int k = 0; k < ns; k++) {
            float *l1 = malloc(sizeof(float) * (size_t)lens[k] * V);
            seq_logits(&e1, ids[k], lens[k], 0, l1);
            double r = rel_err(lb + (size_t)off[k] * V, l1, (size_t)lens[k] * V);
            if (r > worst) worst = r;
            cr_expect(r <= TOL_BATCH, "%s seq %d: batched prefill rel err %.3g", k_causal[mi], k, r);
            next[k] = (7 * k + 3) % V;
            free(l1);
        }
        // one batched decode step (each slot at its own position) vs the same step alone
        int dsl[8], dpos[8], drow[8];
        for (int k = 0; k < ns; k++) dsl[k] = k, dpos[k] = lens[k], drow[k] = k;
        float *hd = malloc(sizeof(float) * ns * d), *ld = malloc(sizeof(float) * (size_t)ns * V);
        cr_assert(rc_forward(&eb, ns, next, dsl, dpos, drow, hd) == 0, "%s", rc_last_error());
        rc_lm_head(&eb, ns, hd, ld);
        for (int k = 0; k < ns; k++) {
            int *ext = malloc(sizeof(int) * (lens[k] + 1));
            memcpy(ext, ids[k], sizeof(int) * lens[k]);
            ext[lens[k]] = next[k];
            float *l1 = malloc(sizeof(float) * (size_t)(lens[k] + 1) * V);
            seq_logits(&e1, ext, lens[k] + 1, 0, l1);
            double r = rel_err(ld + (size_t)k * V, l1 + (size_t)lens[k] * V, V);
            if (r > worst) worst = r;
            cr_expect(r <= TOL_BATCH, "%s seq %d: batched decode rel err %.3g", k_causal[mi], k, r);
            free(ext), free(l1);
        }
        fprintf(stderr, "[forward] %-26s batched vs unbatched max rel err %.3g (tol %.0e)\n",
                k_causal[mi], worst, TOL_BATCH);
        for (int k = 0; k < ns; k++) free(ids[k]);
        free(bt), free(bs), free(bp), free(br), free(hb), free(lb), free(hd), free(ld);
        rc_engine_free(&e1);
        rc_engine_free(&eb);
        cJSON_Delete(g);
        rc_model_free(&m);
    }
}

Test(forward, rewards_match_transformers) {
    for (size_t mi = 0; mi < sizeof k_reward / sizeof *k_reward; mi++) {
        rc_model m;
        load(k_reward[mi], &m);
        cr_assert_eq(m.cfg.arch, RC_ARCH_REWARD);
        cJSON *g = golden(k_reward[mi]);
        const cJSON *seqs = cJSON_GetObjectItem(g, "seqs"), *rw = cJSON_GetObjectItem(g, "rewards");
        int ns = cJSON_GetArraySize(seqs), d = m.cfg.hidden_size;
        rc_engine e;
        cr_assert(rc_engine_init(&e, &m, ns, 64, 16) == 0, "%s", rc_last_error());
        // all sequences in one ragged batch; only each one's last token is an output row
        int tot = 0, lens[8], *ids[8];
        for (int k = 0; k < ns; k++) ids[k] = ints(cJSON_GetArrayItem(seqs, k), &lens[k]), tot += lens[k];
        int *bt = malloc(sizeof(int) * tot), *bs = malloc(sizeof(int) * tot), *bp = malloc(sizeof(int) * tot),
            *br = malloc(sizeof(int) * tot), nb = 0;
        for (int k = 0; k < ns; k++)
            for (int p = 0; p < lens[k]; p++)
                bt[nb] = ids[k][p], bs[nb] = k, bp[nb] = p, br[nb] = p == lens[k] - 1 ? k : -1, nb++;
        float *h = malloc(sizeof(float) * ns * d), r[8];
        cr_assert(rc_forward(&e, nb, bt, bs, bp, br, h) == 0, "%s", rc_last_error());
        rc_reward_head(&e, ns, h, r);
        double worst = 0;
        for (int k = 0; k < ns; k++) {
            double want = cJSON_GetArrayItem(rw, k)->valuedouble;
            double err = fabs(r[k] - want) / fmax(1.0, fabs(want));
            if (err > worst) worst = err;
            cr_expect(err <= TOL_REWARD, "%s seq %d: reward %.7g, HF %.7g", k_reward[mi], k, r[k], want);
        }
        fprintf(stderr, "[forward] %-26s rewards max err %.3g (tol %.0e)\n", k_reward[mi], worst,
                TOL_REWARD);
        for (int k = 0; k < ns; k++) free(ids[k]);
        free(bt), free(bs), free(bp), free(br), free(h);
        rc_engine_free(&e);
        cJSON_Delete(g);
        rc_model_free(&m);
    }
}

// ---- hooks ------------------------------------------------------------------------------
typedef struct {
    int calls, rows, bad_step;
    int steps_seen[4];
    float first_state[512]; // seq 0, step 0
} cap_state;

static int capture(void *ud, int n, const float *hidden, const int *seq, const int *step) {
    cap_state *c = ud;
    c->calls++;
    c->rows += n;
    for (int i = 0; i < n; i++) {
        if (step[i] != c->steps_seen[seq[i]]) c->bad_step = 1;
        c->steps_seen[seq[i]]++;
        if (seq[i] == 0 && step[i] == 0) memcpy(c->first_state, hidden + (size_t)i * 64, sizeof(float) * 64);
    }
    return 0;
}

static int abort_capture(void *ud, int n, const float *hidden, const int *seq, const int *step) {
    return rc_fail("stop requested");
}

// A hand-made RE-Control greedy loop for one prompt: forward, edit with rc_control_apply, LM head,
// argmax; the reference the generation loop's control must equal.
static void manual_control(const rc_model *m, const rc_value_mlp *v, float alpha, int steps,
                           const int *p, int len, int n_new, int *out) {
    rc_engine e;
    cr_assert(rc_engine_init(&e, m, 1, 64, 64) == 0);
    rc_control c;
    cr_assert(rc_control_init(&c, v, alpha, steps, 1) == 0);
    const int d = m->cfg.hidden_size, V = m->cfg.vocab_size;
    float *h = malloc(sizeof(float) * d), *lg = malloc(sizeof(float) * V);
    int sl[64] = {0}, pos[64], rows[64];
    for (int i = 0; i < len; i++) pos[i] = i, rows[i] = i == len - 1 ? 0 : -1;
    cr_assert(rc_forward(&e, len, p, sl, pos, rows, h) == 0);
    for (int t = 0; t < n_new; t++) {
        cr_assert(rc_control_apply(&c, 1, h) == 0);
        rc_lm_head(&e, 1, h, lg);
        out[t] = rc_argmax(lg, V);
        int ps = len + t, r0 = 0;
        cr_assert(rc_forward(&e, 1, &out[t], sl, &ps, &r0, h) == 0);
    }
    free(h), free(lg);
    rc_control_free(&c);
    rc_engine_free(&e);
}

Test(forward, hooks_capture_control_and_eos) {
    rc_model m;
    load("mha_hd32_tied", &m); // hidden 64
    cJSON *g = golden("mha_hd32_tied");
    const cJSON *pr = cJSON_GetObjectItem(g, "prompts"), *gr = cJSON_GetObjectItem(g, "greedy");
    int lens[3], *ps[3];
    for (int i = 0; i < 3; i++) ps[i] = ints(cJSON_GetArrayItem(pr, i), &lens[i]);
    rc_backend *e = open_cpu(&m, 2, 64, 6);
    rc_gen_params gp = {.max_new_tokens = 10, .stop_at_eos = 1, .control = -1,
                        .sample = {.temperature = 0, .top_p = 1}};
    rc_gen_output out[3];

    // capture: one state per emitted token, steps 0..9 in order; step 0 of prompt 0 equals the
    // post-norm state of its last prompt position from a plain forward.
    cap_state cs = {0};
    rc_gen_hooks hk = {.capture = capture, .ud = &cs};
    e->cfg.n_eos = 0; // no EOS for this part
    cr_assert(rc_generate(e, 3, (const int *const *)ps, lens, &gp, &hk, out) == 0, "%s", rc_last_error());
    cr_assert_eq(cs.rows, 30);
    cr_assert(!cs.bad_step, "capture steps out of order");
    float *h = malloc(sizeof(float) * 64 * lens[0]);
    {
        rc_engine pe;
        cr_assert(rc_engine_init(&pe, &m, 1, 64, 64) == 0);
        int sl[16] = {0}, pos[16], rows[16];
        for (int i = 0; i < lens[0]; i++) pos[i] = i, rows[i] = i;
        cr_assert(rc_forward(&pe, lens[0], ps[0], sl, pos, rows, h) == 0);
        rc_engine_free(&pe);
    }
    for (int j = 0; j < 64; j++)
        cr_assert_float_eq(cs.first_state[j], h[(lens[0] - 1) * 64 + j], 1e-5, "captured state %d", j);
    rc_gen_output_free(out, 3);

    // RE-Control inside the loop (a random value net 64 -> 16 -> 1, alpha 4, 6 steps) equals the
    // hand-made loop token for token, for every prompt of a batch of 3 in 2 slots; and it changes
    // the greedy output (else the check would prove nothing)
    rc_value_mlp v;
    int hid[1] = {16};
    cr_assert(rc_value_alloc(&v, 64, 1, hid) == 0);
    rc_value_init(&v, 7);
    int ctl = rc_backend_control_add(e, &v);
    cr_assert(ctl == 0, "%s", rc_last_error());
    rc_gen_params gc = gp;
    gc.control = ctl, gc.alpha = 4.f, gc.steps = 6;
    cr_assert(rc_generate(e, 3, (const int *const *)ps, lens, &gc, NULL, out) == 0, "%s", rc_last_error());
    int changed = 0;
    for (int i = 0; i < 3; i++) {
        int want[10], nw, *plain = ints(cJSON_GetArrayItem(gr, i), &nw);
        manual_control(&m, &v, 4.f, 6, ps[i], lens[i], 10, want);
        cr_assert_eq(out[i].n_tokens, 10);
        for (int t = 0; t < 10; t++) {
            cr_assert_eq(out[i].tokens[t], want[t], "prompt %d token %d: loop %d, hand-made %d", i, t,
                         out[i].tokens[t], want[t]);
            changed += want[t] != plain[t];
        }
        free(plain);
    }
    cr_assert(changed > 0, "the edit did not change any token");
    rc_gen_output_free(out, 3);
    // an unknown control id is refused before anything runs
    gc.control = 3;
    cr_assert(rc_generate(e, 3, (const int *const *)ps, lens, &gc, NULL, out) == -1);
    cr_assert(strstr(rc_last_error(), "unknown control"), "%s", rc_last_error());
    rc_gen_output_free(out, 3);

    // EOS: declare HF's 6th greedy token of prompt 1 an EOS id; generation stops right after it.
    int nw, *want = ints(cJSON_GetArrayItem(gr, 1), &nw);
    int eos = want[5], first = 0;
    while (want[first] != eos) first++;
    e->cfg.eos_token_ids[0] = eos;
    e->cfg.n_eos = 1;
    cr_assert(rc_generate(e, 3, (const int *const *)ps, lens, &gp, NULL, out) == 0);
    cr_assert_eq(out[1].n_tokens, first + 1);
    cr_assert_eq(out[1].finish, RC_FINISH_EOS);
    cr_assert_eq(out[1].tokens[first], eos);
    rc_gen_output_free(out, 3);
    // the same id as a request's stop id (EOS off) ends it the same way
    rc_gen_params gs = gp;
    gs.stop_at_eos = 0, gs.stop_ids = &eos, gs.n_stop_ids = 1;
    cr_assert(rc_generate(e, 3, (const int *const *)ps, lens, &gs, NULL, out) == 0);
    cr_assert_eq(out[1].n_tokens, first + 1);
    cr_assert_eq(out[1].finish, RC_FINISH_EOS);
    rc_gen_output_free(out, 3);

    // a failing hook aborts with its message
    rc_gen_hooks ha = {.capture = abort_capture};
    cr_assert(rc_generate(e, 3, (const int *const *)ps, lens, &gp, &ha, out) == -1);
    cr_assert(strstr(rc_last_error(), "stop requested"), "%s", rc_last_error());
    rc_gen_output_free(out, 3);
    free(want), free(h);
    for (int i = 0; i < 3; i++) free(ps[i]);
    rc_backend_close(e);
    rc_value_free(&v);
    cJSON_Delete(g);
    rc_model_free(&m);
}

Test(forward, errors_are_clear) {
    rc_model m;
    load("mha_hd32_tied", &m);
    rc_engine e;
    cr_assert(rc_engine_init(&e, &m, 2, 16, 4) == 0);
    float h[64 * 4];
    int tok = 257, sl = 0, pos = 0, row = 0;
    cr_assert(rc_forward(&e, 1, &tok, &sl, &pos, &row, h) == -1);
    cr_assert(strstr(rc_last_error(), "vocabulary"), "%s", rc_last_error());
    tok = 5, sl = 2;
    cr_assert(rc_forward(&e, 1, &tok, &sl, &pos, &row, h) == -1);
    cr_assert(strstr(rc_last_error(), "slot"), "%s", rc_last_error());
    sl = 0, pos = 16;
    cr_assert(rc_forward(&e, 1, &tok, &sl, &pos, &row, h) == -1);
    cr_assert(strstr(rc_last_error(), "beyond the KV cache"), "%s", rc_last_error());
    rc_engine_free(&e);
    // prompt longer than the cache
    rc_backend *be = open_cpu(&m, 2, 16, 4);
    int prompt[20] = {0}, len = 20;
    const int *pp = prompt;
    rc_gen_params gp = {.max_new_tokens = 4, .stop_at_eos = 1, .control = -1, .sample = {.top_p = 1}};
    rc_gen_output out;
    cr_assert(rc_generate(be, 1, &pp, &len, &gp, NULL, &out) == -1);
    cr_assert(strstr(rc_last_error(), "cache holds 16"), "%s", rc_last_error());
    len = 14; // fits, but 14 + 4 - 1 = 17 positions do not
    cr_assert(rc_generate(be, 1, &pp, &len, &gp, NULL, &out) == -1);
    len = 13;
    cr_assert(rc_generate(be, 1, &pp, &len, &gp, NULL, &out) == 0, "%s", rc_last_error());
    cr_assert_eq(out.n_tokens, 4);
    rc_gen_output_free(&out, 1);
    // an empty prompt and a NaN temperature are refused with the reason
    len = 0;
    cr_assert(rc_generate(be, 1, &pp, &len, &gp, NULL, &out) == -1);
    cr_assert(strstr(rc_last_error(), "empty"), "%s", rc_last_error());
    len = 3;
    gp.sample.temperature = NAN;
    cr_assert(rc_generate(be, 1, &pp, &len, &gp, NULL, &out) == -1);
    cr_assert(strstr(rc_last_error(), "temperature"), "%s", rc_last_error());
    rc_backend_close(be);
    // absurd cache: fails cleanly, no crash
    cr_assert(rc_engine_init(&e, &m, 1 << 20, 1 << 20, 4) == -1);
    cr_assert(strstr(rc_last_error(), "GiB"), "%s", rc_last_error());
    rc_model_free(&m);
    // a reward model cannot generate
    load("rm_score", &m);
    be = open_cpu(&m, 1, 16, 4);
    len = 3;
    gp.sample.temperature = 0;
    cr_assert(rc_generate(be, 1, &pp, &len, &gp, NULL, &out) == -1);
    cr_assert(strstr(rc_last_error(), "reward model"), "%s", rc_last_error());
    rc_backend_close(be);
    rc_model_free(&m);
}
