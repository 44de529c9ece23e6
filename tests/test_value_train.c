// Value training against PyTorch: 30 Adam steps (lr 1e-2) on a ragged two-shard dataset (F32 + BF16) with a
// fixed init, batch order and both loss semantics must reproduce torch.optim.Adam's loss curve and
// final parameters. Also: the run-dir reader and its errors, and the `recontrol train` CLI.
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "train/train.h"
#include "value_testutil.h"

// Tolerance: fp32 on both sides with different summation orders (~1e-7 relative per gradient);
// Adam divides by sqrt(v) so early updates are ~lr*sign(g) and an ulp-level gradient difference
// changes an update only where g ~ 0; over 30 steps of lr 1e-2 parameters then differ by far less
// than 1e-5. Loss values: 1e-4 relative. A wrong bias correction, beta or eps, a dropped
// stop-gradient or a wrong anchor step changes the curve at the 1e-3..1e-1 level.
static void run_golden(rc_bellman_mode mode, int chunk_rows) {
    rc_acts a;
    cr_assert(rc_acts_open(&a, VFIX "/run") == 0, "%s", rc_last_error());
    rc_value_mlp m;
    cr_assert(rc_value_load(&m, VFIX "/train_init.safetensors") == 0, "%s", rc_last_error());
    rc_value_mlp init;
    cr_assert(rc_value_load(&init, VFIX "/train_init.safetensors") == 0);
    rc_safetensors g;
    cr_assert(rc_st_open(&g, VFIX "/train_golden.safetensors") == 0);
    size_t no, nl;
    int64_t *order = vt_i64(&g, "order", &no);
    const char *tag = mode == RC_BELLMAN_PAPER ? "paper" : "ref";
    char tn[64];
    snprintf(tn, sizeof tn, "loss_%s", tag);
    float *lref = vt_f32(&g, tn, &nl);
    int bs = (int)(no / nl);
    rc_trainer t;
    const rc_st_tensor *lrt = rc_st_find(&g, "lr");
    cr_assert(lrt && lrt->nbytes == 8);
    double lr;
    memcpy(&lr, lrt->data, 8);
    cr_assert(rc_trainer_init(&t, &m, mode, lr, bs, (int64_t)bs * a.max_len, chunk_rows) == 0);
    float *loss = malloc(nl * sizeof(float));
    for (size_t s = 0; s < nl; s++) {
        int n = 0;
        while (n < bs && order[s * bs + n] >= 0) n++;
        double l;
        cr_assert(rc_trainer_batch(&t, &a, n, order + s * bs, 1, &l) == 0, "%s", rc_last_error());
        loss[s] = (float)l;
    }
    char what[96];
    snprintf(what, sizeof what, "%s loss curve (chunk %d)", tag, chunk_rows);
    vt_close(what, loss, lref, nl, 1e-6, 1e-4);
    double head = 0, tail = 0; // batches differ, so compare the first and last five
    for (int i = 0; i < 5; i++) head += lref[i], tail += lref[nl - 1 - i];
    cr_assert(tail < 0.9 * head, "golden curve does not descend (%g -> %g): test would be weak", head / 5, tail / 5);
    for (int l = 0; l < m.n_layers; l++) {
        size_t n;
        snprintf(tn, sizeof tn, "final_%s.fc%d.weight", tag, l + 1);
        float *ref = vt_f32(&g, tn, &n);
        snprintf(what, sizeof what, "%s (chunk %d)", tn, chunk_rows);
        vt_close(what, m.w[l], ref, n, 1e-5, 1e-4);
        double moved = 0; // the run must move the weights far beyond the tolerance
        for (size_t i = 0; i < n; i++) moved = fmax(moved, fabs(ref[i] - init.w[l][i]));
        cr_assert(moved > 1e-2, "%s: weights barely moved (%g)", tn, moved);
        free(ref);
        snprintf(tn, sizeof tn, "final_%s.fc%d.bias", tag, l + 1);
        ref = vt_f32(&g, tn, &n);
        vt_close(tn, m.b[l], ref, n, 1e-5, 1e-4);
        free(ref);
    }
    free(loss);
    free(lref);
    free(order);
    rc_trainer_free(&t);
    rc_st_close(&g);
    rc_value_free(&m);
    rc_value_free(&init);
    rc_acts_close(&a);
}

Test(value_train, adam_run_paper) { run_golden(RC_BELLMAN_PAPER, 2048); }
Test(value_train, adam_run_reference) { run_golden(RC_BELLMAN_REFERENCE, 2048); }
// Batches larger than the chunk take the two-pass (recompute) path: same results.
Test(value_train, adam_run_paper_chunked) { run_golden(RC_BELLMAN_PAPER, 5); }

Test(value_train, reader_schema) {
    rc_acts a;
    cr_assert(rc_acts_open(&a, VFIX "/run") == 0, "%s", rc_last_error());
    cr_assert_eq(a.n_shards, 2);
    cr_assert_eq(a.n_seq, 22);
    cr_assert_eq(a.d, 16);
    // rewards.jsonl is written in reverse order; its first line is index 21.
    cr_assert_float_eq(a.reward[21], 0.42751169204711914f, 1e-7);
    cr_assert_float_eq(a.reward[20], -2.8148999214172363f, 1e-7);
    // Sequence 12 is the first of the BF16 shard: its values are bf16-representable.
    int64_t id = 12;
    int64_t rows = rc_acts_rows(&a, 1, &id), off[2];
    float *h = malloc((size_t)rows * a.d * sizeof(float));
    cr_assert(rc_acts_gather(&a, 1, &id, h, off, NULL) == 0);
    cr_assert_eq(off[1], rows);
    for (int64_t i = 0; i < rows * a.d; i++) cr_assert_eq(h[i], rc_bf16_to_f32(rc_f32_to_bf16(h[i])));
    free(h);
    // Split: deterministic, disjoint, complete.
    int64_t *tr, *va, ntr, nva, *tr2, *va2, ntr2, nva2;
    cr_assert(rc_acts_split(a.n_seq, 0.1, 3, &tr, &ntr, &va, &nva) == 0);
    cr_assert(rc_acts_split(a.n_seq, 0.1, 3, &tr2, &ntr2, &va2, &nva2) == 0);
    cr_assert_eq(nva, 2);
    cr_assert_eq(ntr + nva, 22);
    cr_assert_eq(memcmp(va, va2, nva * 8), 0);
    int seen[22] = {0};
    for (int i = 0; i < ntr; i++) seen[tr[i]]++;
    for (int i = 0; i < nva; i++) seen[va[i]]++;
    for (int i = 0; i < 22; i++) cr_assert_eq(seen[i], 1);
    free(tr), free(va), free(tr2), free(va2);
    rc_acts_close(&a);
}

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(s, f);
    fclose(f);
}

static void expect_open_error(const char *dir, const char *needle) {
    rc_acts a;
    cr_assert_eq(rc_acts_open(&a, dir), -1, "bad run dir accepted (expected error with '%s')", needle);
    cr_assert(strstr(rc_last_error(), needle), "error '%s' does not mention '%s'", rc_last_error(), needle);
}

Test(value_train, reader_errors) {
    char dir[] = "/tmp/rc_value_runXXXXXX";
    cr_assert(mkdtemp(dir));
    char p[256], q[256];
    expect_open_error(dir, "acts-00000.safetensors");
    expect_open_error("/nonexistent/run", "does not exist");
    float hidden[6] = {1, 2, 3, 4, 5, 6};
    int64_t off_ok[3] = {0, 1, 3}, off_bad[3] = {0, 2, 2};
    rc_st_entry e[2] = {{.name = "hidden", .dtype = RC_DT_F32, .ndim = 2, .shape = {3, 2}, .data = hidden},
                        {.name = "offsets", .dtype = RC_DT_I64, .ndim = 1, .shape = {3}, .data = off_bad}};
    snprintf(p, sizeof p, "%s/acts-00000.safetensors", dir);
    cr_assert(rc_st_write(p, e, 2, NULL) == 0);
    expect_open_error(dir, "offsets[2]");
    e[1].data = off_ok;
    cr_assert(rc_st_write(p, e, 2, NULL) == 0);
    expect_open_error(dir, "rewards.jsonl");
    snprintf(q, sizeof q, "%s/rewards.jsonl", dir);
    write_text(q, "{\"index\": 0, \"reward\": 1.5}\n");
    expect_open_error(dir, "first missing index 1");
    write_text(q, "{\"index\": 0, \"reward\": 1.5}\n{\"index\": 0, \"reward\": 2}\n");
    expect_open_error(dir, "twice");
    write_text(q, "{\"index\": 0, \"reward\": 1.5}\n{\"index\": 7, \"reward\": 2}\n");
    expect_open_error(dir, "out of range");
    write_text(q, "{\"index\": 0, \"reward\": 1.5}\nnot json\n");
    expect_open_error(dir, "rewards.jsonl:2");
    write_text(q, "{\"index\": 1, \"reward\": -1}\n\n{\"index\": 0, \"reward\": 1.5, \"prompt\": \"x\"}\n");
    rc_acts a;
    cr_assert(rc_acts_open(&a, dir) == 0, "%s", rc_last_error());
    cr_assert_eq(a.n_seq, 2);
    cr_assert_eq(a.reward[0], 1.5f);
    cr_assert_eq(a.reward[1], -1.0f);
    rc_acts_close(&a);
    // A second shard with another width.
    float h2[3] = {1, 2, 3};
    int64_t o2[2] = {0, 1};
    rc_st_entry e2[2] = {{.name = "hidden", .dtype = RC_DT_F32, .ndim = 2, .shape = {1, 3}, .data = h2},
                         {.name = "offsets", .dtype = RC_DT_I64, .ndim = 1, .shape = {2}, .data = o2}};
    char p2[256];
    snprintf(p2, sizeof p2, "%s/acts-00001.safetensors", dir);
    cr_assert(rc_st_write(p2, e2, 2, NULL) == 0);
    expect_open_error(dir, "width 3");
    unlink(p2);
    unlink(p);
    unlink(q);
    rmdir(dir);
}

static int run_cmd(const char *cmd) {
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static char *slurp(const char *path) {
    size_t n;
    char *s = rc_read_file(path, &n);
    cr_assert(s, "%s", rc_last_error());
    return s;
}

Test(value_train, cli) {
    char dir[] = "/tmp/rc_value_cliXXXXXX";
    cr_assert(mkdtemp(dir));
    char cmd[2048], out1[256], out2[256], logp[256];
    snprintf(out1, sizeof out1, "%s/v1.safetensors", dir);
    snprintf(out2, sizeof out2, "%s/v2.safetensors", dir);
    snprintf(logp, sizeof logp, "%s/v1.train.json", dir);
    cr_assert_eq(run_cmd(RC_BINARY " train --help > /dev/null"), 0);
    cr_assert_eq(run_cmd(RC_BINARY " train --out x 2> /dev/null"), 2, "missing --data accepted");
    cr_assert_eq(run_cmd(RC_BINARY " train --data x --out y --dtype fp8 2> /dev/null"), 2);
    cr_assert_eq(run_cmd(RC_BINARY " train --data x --out y --preset paper9 2> /dev/null"), 2);
    cr_assert_eq(run_cmd(RC_BINARY " train --data x --out y --device tpu 2> /dev/null"), 2);
    // --device cuda trains where there is a GPU; elsewhere (CI) it must fail clearly, naming CUDA
    snprintf(cmd, sizeof cmd, RC_BINARY " train --data " VFIX "/run --out %s/v3.safetensors --hidden 8 --epochs 1"
             " --batch-size 5 --device cuda --quiet 2> %s/err3.txt", dir, dir);
    int rc_cuda = run_cmd(cmd);
    if (rc_cuda != 0) {
        snprintf(cmd, sizeof cmd, "%s/err3.txt", dir);
        char *e3 = slurp(cmd);
        cr_assert(rc_cuda == 1 && strstr(e3, "CUDA"), "--device cuda without a GPU: exit %d, %s", rc_cuda, e3);
        free(e3);
    }
    snprintf(cmd, sizeof cmd, RC_BINARY " train --data %s/nope --out %s 2> %s/err.txt", dir, out1, dir);
    cr_assert_eq(run_cmd(cmd), 1);
    snprintf(cmd, sizeof cmd, "%s/err.txt", dir);
    char *err = slurp(cmd);
    cr_assert(strstr(err, "nope"), "error does not name the directory: %s", err);
    free(err);
    // Train twice with one and two threads: identical bytes (deterministic order and reductions).
    const char *args = "--hidden 24,12 --epochs 5 --batch-size 5 --lr 3e-3 --seed 4 --val-frac 0.2 --quiet";
    snprintf(cmd, sizeof cmd, RC_BINARY " train --data " VFIX "/run --out %s %s --threads 1 2> /dev/null", out1, args);
    cr_assert_eq(run_cmd(cmd), 0);
    snprintf(cmd, sizeof cmd, RC_BINARY " train --data " VFIX "/run --out %s %s --threads 2 --log %s/v2.json 2> /dev/null",
             out2, args, dir);
    cr_assert_eq(run_cmd(cmd), 0);
    size_t n1, n2;
    char *b1 = rc_read_file(out1, &n1), *b2 = rc_read_file(out2, &n2);
    cr_assert(b1 && b2);
    cr_assert(n1 == n2 && !memcmp(b1, b2, n1), "training is not deterministic across thread counts");
    free(b1);
    free(b2);
    rc_value_mlp m;
    cr_assert(rc_value_load(&m, out1) == 0, "%s", rc_last_error());
    cr_assert_eq(m.n_layers, 3);
    cr_assert_eq(m.dims[1], 24);
    cr_assert_eq(m.dims[2], 12);
    rc_value_free(&m);
    char *log = slurp(logp);
    cr_assert(strstr(log, "\"epoch\": 5"), "log lacks epoch 5: %s", log);
    cr_assert(strstr(log, "\"val_loss\": "), "%s", log);
    cr_assert(strstr(log, "\"n_val\": 4"), "%s", log);
    free(log);
    // The loss falls over epochs on this data (rewards depend on the states).
    snprintf(cmd, sizeof cmd,
             RC_BINARY " train --data " VFIX "/run --out %s --hidden 32 --epochs 60 --batch-size 6 --lr 3e-3"
                       " --val-frac 0 --reference-loss --dtype bf16 --quiet 2> /dev/null",
             out2);
    cr_assert_eq(run_cmd(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s/v2.train.json", dir);
    log = slurp(cmd);
    cr_assert(strstr(log, "\"loss\": \"reference\"") && strstr(log, "\"dtype\": \"bf16\"") &&
              strstr(log, "\"val_loss\": null"), "%s", log);
    double first = 0, last = 0;
    const char *p = strstr(log, "\"train_loss\": ");
    cr_assert(p);
    first = atof(p + 14);
    for (const char *q = p; (q = strstr(q + 1, "\"train_loss\": "));) p = q;
    last = atof(p + 14);
    fprintf(stderr, "  CLI bf16 reference-loss training: %.4f -> %.4f\n", first, last);
    cr_assert(last < 0.5 * first, "training loss did not fall: %g -> %g", first, last);
    free(log);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(run_cmd(cmd), 0);
}

// The reference's pad convention (--pad-id, rc_acts_mask_pad) against get_activations_only.py's
// rule: valid steps = L - (number of new tokens equal to the pad id). On a copy of the fixture run
// with responses whose tokens put the pad id (7) at the end of sequences 0 (1 state: dropped), 3
// and 20, and once in sequence 5's prompt (not counted): those lose their last state, sequence 0
// goes, every other state and reward stays where it was; the trainer then trains on other steps
// (other weights), and a pad id that occurs nowhere changes nothing (the same bytes).
Test(value_train, pad_convention) {
    char dir[] = "/tmp/rc_value_padXXXXXX";
    cr_assert(mkdtemp(dir));
    char cmd[2048], path[256];
    snprintf(cmd, sizeof cmd, "cp " VFIX "/run/* %s/", dir);
    cr_assert_eq(run_cmd(cmd), 0);
    rc_acts a, m;
    cr_assert(rc_acts_open(&a, dir) == 0, "%s", rc_last_error());
    for (int sh = 0; sh < 2; sh++) {
        snprintf(path, sizeof path, "%s/responses-%05d.jsonl", dir, sh);
        FILE *f = fopen(path, "w");
        cr_assert(f);
        for (int64_t i = sh ? 12 : 0; i < (sh ? 22 : 12); i++) {
            fprintf(f, "{\"index\": %lld, \"prompt_ids\": [1, %d], \"tokens\": [", (long long)i, i == 5 ? 7 : 9);
            for (int t = 0; t < a.seq_len[i]; t++) {
                int last = t == a.seq_len[i] - 1, tok = (last && (i == 0 || i == 3 || i == 20)) ? 7 : 100 + t;
                fprintf(f, "%s%d", t ? ", " : "", tok);
            }
            fprintf(f, "]}\n");
        }
        fclose(f);
    }
    cr_assert(rc_acts_open(&m, dir) == 0, "%s", rc_last_error());
    int64_t masked, dropped;
    cr_assert(rc_acts_mask_pad(&m, dir, 7, &masked, &dropped) == 0, "%s", rc_last_error());
    cr_assert_eq(masked, 3);
    cr_assert_eq(dropped, 1);
    cr_assert_eq(m.n_seq, a.n_seq - 1);
    cr_assert_eq(m.n_steps, a.n_steps - 3);
    for (int64_t i = 1; i < a.n_seq; i++) { // new index i - 1
        int want = a.seq_len[i] - (i == 3 || i == 20);
        cr_assert_eq(m.seq_len[i - 1], want, "sequence %lld: %d states, expected %d", (long long)i,
                     m.seq_len[i - 1], want);
        cr_assert_eq(m.reward[i - 1], a.reward[i]);
        // the states kept are the sequence's first ones
        int64_t id = i, nid = i - 1, off[2], noff[2];
        float *full = malloc((size_t)a.seq_len[i] * a.d * 4), *kept = malloc((size_t)a.seq_len[i] * a.d * 4);
        cr_assert(rc_acts_gather(&a, 1, &id, full, off, NULL) == 0);
        cr_assert(rc_acts_gather(&m, 1, &nid, kept, noff, NULL) == 0);
        cr_assert_eq(memcmp(full, kept, (size_t)want * a.d * 4), 0, "sequence %lld: other states", (long long)i);
        free(full);
        free(kept);
    }
    rc_acts_close(&m);
    rc_acts_close(&a);
    // the trainer: pad 7 trains on other steps than the default; pad 8 (nowhere) on the same ones
    const char *args = "--hidden 8 --epochs 3 --batch-size 5 --lr 3e-3 --val-frac 0 --quiet";
    const char *runs[3] = {"", "--pad-id 7", "--pad-id 8"};
    char *bytes[3];
    size_t nb[3];
    for (int r = 0; r < 3; r++) {
        snprintf(cmd, sizeof cmd, RC_BINARY " train --data %s --out %s/v%d.safetensors %s %s 2> %s/err%d.txt", dir,
                 dir, r, args, runs[r], dir, r);
        cr_assert_eq(run_cmd(cmd), 0, "train %s failed", runs[r]);
        snprintf(path, sizeof path, "%s/v%d.safetensors", dir, r);
        bytes[r] = rc_read_file(path, &nb[r]);
        cr_assert(bytes[r]);
    }
    cr_assert(nb[0] != nb[1] || memcmp(bytes[0], bytes[1], nb[0]), "--pad-id 7 trained on the same steps");
    cr_assert(nb[0] == nb[2] && !memcmp(bytes[0], bytes[2], nb[0]), "--pad-id 8 (no such token) changed the training");
    for (int r = 0; r < 3; r++) free(bytes[r]);
    snprintf(path, sizeof path, "%s/v1.train.json", dir);
    char *log = slurp(path);
    cr_assert(strstr(log, "\"pad_id\": 7") && strstr(log, "\"n_steps\": 112") && strstr(log, "\"n_train\": 21"), "%s", log);
    free(log);
    snprintf(path, sizeof path, "%s/err1.txt", dir);
    log = slurp(path);
    cr_assert(strstr(log, "3 states masked, 1 sequences"), "%s", log);
    free(log);
    // a run without the tokens: a clear error naming the file
    snprintf(cmd, sizeof cmd, "rm %s/responses-00001.jsonl && " RC_BINARY " train --data %s --out %s/v9.safetensors %s"
             " --pad-id 7 2> %s/err9.txt", dir, dir, dir, args, dir);
    cr_assert_eq(run_cmd(cmd), 1);
    snprintf(path, sizeof path, "%s/err9.txt", dir);
    log = slurp(path);
    cr_assert(strstr(log, "responses-00001.jsonl"), "%s", log);
    free(log);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    run_cmd(cmd);
}
