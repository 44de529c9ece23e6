// CPU end-to-end throughput: prefill and decode tok/s of random-weight LLaMA models built in
// memory (a tiny one and SmolLM2-135M's shape), with the bytes a decode step must read (fp32
// weights + the KV prefix) turned into GB/s and compared to this machine's memory read
// bandwidth, measured here with a multi-threaded streaming sum over a 1 GiB buffer.
// usage: bench_cpu [--json FILE] [--threads N] [--quick] [--commit HASH]
// The load average before and after is recorded: on a shared machine other processes distort
// the figures (OpenMP barriers wait for descheduled threads).
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/util/bench_util.h"
#include "base/common.h"
#include "engine/forward.h"
#include "engine/sampler.h"

typedef struct {
    const char *name;
    int d, inter, layers, heads, kv_heads, vocab, tied;
} shape;

typedef struct {
    const char *name;
    double params_m, prefill_tok_s, decode_tok_s, decode_ms, decode_gb_s, decode_pct_bw,
        batch_decode_tok_s;
    int prompt, n_decode, batch;
} result;

static void fill_random(rc_model *m, uint64_t seed) {
    rc_rng r;
    rc_rng_seed(&r, seed);
    float *a = m->arena; // rc_model_alloc: every weight in fp32
    for (size_t i = 0; i < m->arena_bytes / sizeof(float); i++) a[i] = (rc_rng_uniform(&r) - 0.5f) * 0.1f;
    const rc_config *c = &m->cfg;
    for (int l = 0; l < c->num_hidden_layers; l++)
        for (int j = 0; j < c->hidden_size; j++)
            m->w.layers[l].attn_norm[j] = m->w.layers[l].mlp_norm[j] = 1.0f;
    for (int j = 0; j < c->hidden_size; j++) m->w.norm[j] = 1.0f;
}

static int bench_model(const shape *s, int prompt, int n_decode, int batch, int threads, int reps,
                       result *res) {
    rc_model m;
    memset(&m, 0, sizeof m);
    rc_config *c = &m.cfg;
    c->arch = RC_ARCH_CAUSAL_LM;
    c->hidden_size = s->d;
    c->intermediate_size = s->inter;
    c->num_hidden_layers = s->layers;
    c->num_attention_heads = s->heads;
    c->num_key_value_heads = s->kv_heads;
    c->head_dim = s->d / s->heads;
    c->vocab_size = s->vocab;
    c->max_position_embeddings = 8192;
    c->rms_norm_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    c->tie_word_embeddings = s->tied;
    c->bos_token_id = 1;
    c->pad_token_id = -1;
    snprintf(c->source, sizeof c->source, "random:%s", s->name);
    if (rc_model_alloc(&m)) return -1;
    fill_random(&m, 1234);
    const int max_len = prompt + n_decode + 1;
    rc_engine e;
    if (rc_engine_init(&e, &m, batch, max_len, prompt * batch > 512 ? 512 : prompt * batch)) {
        rc_model_free(&m);
        return -1;
    }
    e.n_threads = threads;
    const int d = s->d, V = s->vocab, T = prompt * batch;
    int *tok = malloc(sizeof(int) * T), *sl = malloc(sizeof(int) * T), *pos = malloc(sizeof(int) * T),
        *row = malloc(sizeof(int) * T);
    float *h = malloc(sizeof(float) * (size_t)batch * d), *lg = malloc(sizeof(float) * (size_t)batch * V);
    rc_rng r;
    rc_rng_seed(&r, 7);
    // Prefill: one sequence of `prompt` tokens (logits of the last position only), best of 3.
    double best_pf = 1e30;
    for (int rep = 0; rep < reps; rep++) {
        for (int i = 0; i < prompt; i++)
            tok[i] = (int)(rc_rng_next(&r) % (uint64_t)V), sl[i] = 0, pos[i] = i, row[i] = i == prompt - 1 ? 0 : -1;
        double t0 = rc_time_s();
        if (rc_forward(&e, prompt, tok, sl, pos, row, h)) return -1;
        rc_lm_head(&e, 1, h, lg);
        double dt = rc_time_s() - t0;
        if (dt < best_pf) best_pf = dt;
    }
    // Decode: n_decode greedy steps of slot 0 after the prompt; best of `reps` runs (the same
    // positions are rewritten), so that a burst of load from other processes is not reported.
    double dec = 1e30, t0;
    for (int rep = 0; rep < reps; rep++) {
        int cur = rc_argmax(lg, V);
        t0 = rc_time_s();
        for (int t = 0; t < n_decode; t++) {
            int p = prompt + t, s0 = 0, r0 = 0;
            if (rc_forward(&e, 1, &cur, &s0, &p, &r0, h)) return -1;
            rc_lm_head(&e, 1, h, lg);
            cur = rc_argmax(lg, V);
        }
        double dt = (rc_time_s() - t0) / n_decode;
        if (dt < dec) dec = dt;
    }
    // Batched decode: `batch` slots prefilled with the same prompt, then n_decode steps each.
    for (int b = 0; b < batch; b++)
        for (int i = 0; i < prompt; i++) {
            int k = b * prompt + i;
            tok[k] = tok[i], sl[k] = b, pos[k] = i, row[k] = -1;
        }
    if (rc_forward(&e, T, tok, sl, pos, row, h)) return -1;
    int bt[64], bs[64], bp[64], br[64];
    for (int b = 0; b < batch; b++) bt[b] = (b * 31) % V, bs[b] = b, br[b] = b;
    double bdec = 1e30;
    for (int rep = 0; rep < reps; rep++) {
        t0 = rc_time_s();
        for (int t = 0; t < n_decode; t++) {
            for (int b = 0; b < batch; b++) bp[b] = prompt + t;
            if (rc_forward(&e, batch, bt, bs, bp, br, h)) return -1;
            rc_lm_head(&e, batch, h, lg);
            for (int b = 0; b < batch; b++) bt[b] = rc_argmax(lg + (size_t)b * V, V);
        }
        double dt = rc_time_s() - t0;
        if (dt < bdec) bdec = dt;
    }
    // Bytes one single-sequence decode step reads: every weight but the embedding table (one
    // row), the LM head (the embedding table again when tied), and the K/V prefix (mean length).
    double wfloats = (double)m.weight_bytes / 4.0 - (s->tied ? 0 : (double)V * d);
    double kv = 2.0 * s->layers * (prompt + n_decode / 2.0) * (double)(s->kv_heads * c->head_dim);
    double bytes = 4.0 * (wfloats + kv);
    res->name = s->name;
    res->params_m = (double)rc_model_param_count(c) / 1e6;
    res->prefill_tok_s = prompt / best_pf;
    res->decode_tok_s = 1.0 / dec;
    res->decode_ms = dec * 1e3;
    res->decode_gb_s = bytes / dec / 1e9;
    res->batch_decode_tok_s = batch * n_decode / bdec;
    res->prompt = prompt;
    res->n_decode = n_decode;
    res->batch = batch;
    free(tok), free(sl), free(pos), free(row), free(h), free(lg);
    rc_engine_free(&e);
    rc_model_free(&m);
    return 0;
}

int main(int argc, char **argv) {
    const char *json = NULL, *commit = "";
    int threads = 0, quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--commit") && i + 1 < argc) commit = argv[++i];
        else {
            fprintf(stderr, "usage: bench_cpu [--json FILE] [--threads N] [--quick] [--commit HASH]\n");
            return 2;
        }
    }
    if (threads > 0) omp_set_num_threads(threads);
    int nt = omp_get_max_threads();
    char cpu[256];
    rc_bench_cpu_model(cpu, sizeof cpu);
    double load0 = rc_bench_loadavg1();
    double read_bw = rc_bench_read_bw(quick ? (256u << 20) : (1u << 30));
    double copy_bw = rc_bench_copy_bw(quick ? (128u << 20) : (512u << 20));
    const shape shapes[] = {
        {"tiny (d64 L2 V257, fixture mha_hd32_tied shape)", 64, 128, 2, 2, 2, 257, 1},
        {"smollm2-135m shape (d576 L30 9/3 heads V49152, tied)", 576, 1536, 30, 9, 3, 49152, 1},
    };
    result res[2];
    int n_res = 0;
    for (int i = 0; i < 2; i++) {
        int prompt = i == 0 ? 128 : (quick ? 32 : 128), n_dec = i == 0 ? 128 : (quick ? 8 : 32);
        if (bench_model(&shapes[i], prompt, n_dec, 8, threads, quick ? 1 : 3, &res[n_res])) {
            fprintf(stderr, "bench_cpu: %s: %s\n", shapes[i].name, rc_last_error());
            return 1;
        }
        res[n_res].decode_pct_bw = 100.0 * res[n_res].decode_gb_s / read_bw;
        n_res++;
    }
    double load1 = rc_bench_loadavg1();
    printf("%s, threads %d, load average %.2f -> %.2f\n", cpu, nt, load0, load1);
    printf("memory read bandwidth %.1f GB/s (streaming sum), memcpy %.1f GB/s\n", read_bw, copy_bw);
    printf("%-56s %8s %10s %10s %9s %9s %7s %12s\n", "model", "params M", "prefill/s", "decode/s",
           "ms/tok", "GB/s", "%bw", "b8 decode/s");
    for (int i = 0; i < n_res; i++)
        printf("%-56s %8.2f %10.1f %10.1f %9.2f %9.2f %6.1f%% %12.1f\n", res[i].name, res[i].params_m,
               res[i].prefill_tok_s, res[i].decode_tok_s, res[i].decode_ms, res[i].decode_gb_s,
               res[i].decode_pct_bw, res[i].batch_decode_tok_s);
    if (json) {
        FILE *f = fopen(json, "w");
        if (!f) {
            fprintf(stderr, "bench_cpu: cannot write %s\n", json);
            return 1;
        }
        fprintf(f,
                "{\n  \"cpu\": \"%s\",\n  \"commit\": \"%s\",\n  \"threads\": %d,\n"
                "  \"loadavg_before\": %.2f,\n  \"loadavg_after\": %.2f,\n"
                "  \"read_bw_gb_s\": %.2f,\n  \"memcpy_bw_gb_s\": %.2f,\n  \"models\": [\n",
                cpu, commit, nt, load0, load1, read_bw, copy_bw);
        for (int i = 0; i < n_res; i++)
            fprintf(f,
                    "    {\"name\": \"%s\", \"params_m\": %.3f, \"prompt_tokens\": %d, "
                    "\"prefill_tok_s\": %.2f, \"decode_steps\": %d, \"decode_tok_s\": %.2f, "
                    "\"decode_ms_per_tok\": %.3f, \"decode_gb_s\": %.3f, \"decode_pct_of_read_bw\": "
                    "%.1f, \"batch\": %d, \"batch_decode_tok_s\": %.2f}%s\n",
                    res[i].name, res[i].params_m, res[i].prompt, res[i].prefill_tok_s, res[i].n_decode,
                    res[i].decode_tok_s, res[i].decode_ms, res[i].decode_gb_s, res[i].decode_pct_bw,
                    res[i].batch, res[i].batch_decode_tok_s, i + 1 < n_res ? "," : "");
        fprintf(f, "  ]\n}\n");
        fclose(f);
    }
    return 0;
}
