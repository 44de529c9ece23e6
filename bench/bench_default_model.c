// The default model (SmolLM2-135M-Instruct.Q4_1.gguf) on this CPU: GGUF load time, prefill tok/s
// for a few prompt lengths, single-sequence decode tok/s, batch-32 decode tok/s, and the bytes
// one decode step reads (weights as held in memory + fp32 KV prefix) as GB/s next to the
// machine's measured streaming read bandwidth. Prints a Markdown table; --json FILE writes them.
// usage: bench_default_model [--model PATH] [--json FILE] [--threads N] [--decode N] [--commit H]
//        [--isa LEVEL]   (caps the CPU kernels: 0 best built in, 1 no VNNI, 2 AVX2, 3 portable C;
//                         the kernels used are printed and written as "kernel_isa")
// On a shared machine run it with OMP_WAIT_POLICY=passive: spinning OpenMP threads that wait at
// barriers while other processes hold the cores slow everything down (recorded in the output).
// Exits 0 with "skipped: ..." when the model is not in the cache.
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/util/bench_util.h"
#include "base/common.h"
#include "base/default_model.h"
#include "engine/forward.h"
#include "base/gguf.h"
#include "engine/sampler.h"
#include "kernels/cpu/qmatmul.h"

int main(int argc, char **argv) {
    const char *model_arg = NULL, *json = NULL, *commit = "";
    int threads = 0, n_decode = 64, isa = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) model_arg = argv[++i];
        else if (!strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--decode") && i + 1 < argc) n_decode = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--commit") && i + 1 < argc) commit = argv[++i];
        else if (!strcmp(argv[i], "--isa") && i + 1 < argc) isa = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_default_model [--model PATH] [--json FILE] [--threads N] "
                            "[--decode N] [--commit HASH] [--isa 0-3]\n"
                            "  --isa: cap the CPU kernels (0 best built in, 1 no VNNI, 2 AVX2, "
                            "3 portable C)\n");
            return strcmp(argv[i], "--help") && strcmp(argv[i], "-h") ? 2 : 0;
        }
    }
    char path[4096];
    if (model_arg) snprintf(path, sizeof path, "%s", model_arg);
    else if (rc_default_model_require(path, sizeof path)) {
        printf("skipped: %s\n", rc_last_error());
        return 0;
    }
    if (threads > 0) omp_set_num_threads(threads);
    if (isa < 0 || isa > 3) {
        fprintf(stderr, "bench_default_model: --isa takes 0-3\n");
        return 2;
    }
    rc_cpu_qmatmul_limit_isa(isa);
    int nt = omp_get_max_threads();
    double load0 = rc_bench_loadavg1();
    double bw = rc_bench_read_bw((size_t)1 << 30);

    rc_model m;
    double t0 = rc_time_s();
    if (rc_model_load(path, &m)) {
        fprintf(stderr, "bench_default_model: %s\n", rc_last_error());
        return 1;
    }
    double load_s = rc_time_s() - t0;
    size_t file_bytes = m.gguf ? ((rc_gguf *)m.gguf)->map_len : 0;
    const rc_config *c = &m.cfg;
    const int V = c->vocab_size, d = c->hidden_size;
    const int prompts[3] = {32, 128, 512};
    double prefill[3];
    const int max_len = 512 + n_decode + 1;
    rc_engine e;
    if (rc_engine_init(&e, &m, 1, max_len, 512)) {
        fprintf(stderr, "bench_default_model: %s\n", rc_last_error());
        return 1;
    }
    e.n_threads = threads;
    int *tok = malloc(sizeof(int) * 512), *sl = calloc(512, sizeof(int)),
        *pos = malloc(sizeof(int) * 512), *row = malloc(sizeof(int) * 512);
    float *h = malloc(sizeof(float) * d), *lg = malloc(sizeof(float) * V);
    rc_rng r;
    rc_rng_seed(&r, 11);
    for (int k = 0; k < 3; k++) {
        int P = prompts[k];
        double best = 1e30;
        for (int rep = 0; rep < (P >= 512 ? 2 : 3); rep++) {
            for (int i = 0; i < P; i++)
                tok[i] = 100 + (int)(rc_rng_next(&r) % 40000), pos[i] = i, row[i] = i == P - 1 ? 0 : -1;
            double ts = rc_time_s();
            if (rc_forward(&e, P, tok, sl, pos, row, h)) {
                fprintf(stderr, "bench_default_model: %s\n", rc_last_error());
                return 1;
            }
            rc_lm_head(&e, 1, h, lg);
            double dt = rc_time_s() - ts;
            if (dt < best) best = dt;
        }
        prefill[k] = P / best;
    }
    // decode after a 32-token prompt (the slot was last written with the 512-token prefill;
    // re-prefill 32 so that positions continue from there)
    const int P0 = 32;
    for (int i = 0; i < P0; i++) tok[i] = 100 + i * 37, pos[i] = i, row[i] = i == P0 - 1 ? 0 : -1;
    if (rc_forward(&e, P0, tok, sl, pos, row, h)) return 1;
    rc_lm_head(&e, 1, h, lg);
    int cur = rc_argmax(lg, V);
    t0 = rc_time_s();
    for (int t = 0; t < n_decode; t++) {
        int p = P0 + t, s0 = 0, r0 = 0;
        if (rc_forward(&e, 1, &cur, &s0, &p, &r0, h)) return 1;
        rc_lm_head(&e, 1, h, lg);
        cur = rc_argmax(lg, V);
    }
    double dec = (rc_time_s() - t0) / n_decode;
    rc_engine_free(&e);
    // batched decode: B sequences of P0-token prompts (one ragged prefill), then n_decode steps
    // of B tokens each (one forward + LM head + argmax per step)
    const int B = 32;
    double bdec = 0;
    if (rc_engine_init(&e, &m, B, P0 + n_decode + 1, 512)) {
        fprintf(stderr, "bench_default_model: %s\n", rc_last_error());
        return 1;
    }
    e.n_threads = threads;
    {
        int *bt = malloc(sizeof(int) * B * P0), *bs = malloc(sizeof(int) * B * P0),
            *bp = malloc(sizeof(int) * B * P0), *br = malloc(sizeof(int) * B * P0);
        float *bh = malloc(sizeof(float) * (size_t)B * d), *bl = malloc(sizeof(float) * (size_t)B * V);
        for (int b = 0; b < B; b++)
            for (int i = 0; i < P0; i++) {
                int k = b * P0 + i;
                bt[k] = 100 + (int)(rc_rng_next(&r) % 40000), bs[k] = b, bp[k] = i;
                br[k] = i == P0 - 1 ? b : -1;
            }
        if (rc_forward(&e, B * P0, bt, bs, bp, br, bh)) return 1;
        rc_lm_head(&e, B, bh, bl);
        for (int b = 0; b < B; b++) bt[b] = rc_argmax(bl + (size_t)b * V, V), bs[b] = b, br[b] = b;
        double tb = rc_time_s();
        for (int t = 0; t < n_decode; t++) {
            for (int b = 0; b < B; b++) bp[b] = P0 + t;
            if (rc_forward(&e, B, bt, bs, bp, br, bh)) return 1;
            rc_lm_head(&e, B, bh, bl);
            for (int b = 0; b < B; b++) bt[b] = rc_argmax(bl + (size_t)b * V, V);
        }
        bdec = B * n_decode / (rc_time_s() - tb);
        free(bt), free(bs), free(bp), free(br), free(bh), free(bl);
    }
    // bytes per decode step: every weight as held in memory (the embedding read once as the
    // tied LM head; the embedding lookup itself is one row), plus K and V of the mean prefix
    double params = (double)rc_model_param_count(c);
    double kv = 2.0 * c->num_hidden_layers * (P0 + n_decode / 2.0) *
                (double)(c->num_key_value_heads * c->head_dim);
    double bytes = (double)m.weight_bytes + 4.0 * kv;
    double gbs = bytes / dec / 1e9;
    double load1 = rc_bench_loadavg1();
    char cpu[256];
    rc_bench_cpu_model(cpu, sizeof cpu);

    const char *wait = getenv("OMP_WAIT_POLICY") ? getenv("OMP_WAIT_POLICY") : "default (active)";
    printf("%s, %d threads, kernels %s, OMP_WAIT_POLICY %s, load average %.2f -> %.2f\n", cpu, nt,
           rc_cpu_qmatmul_isa(), wait, load0, load1);
    printf("model %s (%.1fM params, %.1f MB file, weights in memory %.1f MB), load %.2f s\n",
           path, params / 1e6, file_bytes / 1e6, m.weight_bytes / 1e6, load_s);
    printf("| prefill 32 tok/s | prefill 128 tok/s | prefill 512 tok/s | decode tok/s | decode ms "
           "| decode GB/s | read BW GB/s | %% of BW | batch-%d decode tok/s |\n"
           "|---|---|---|---|---|---|---|---|---|\n", B);
    printf("| %.1f | %.1f | %.1f | %.2f | %.1f | %.2f | %.2f | %.0f%% | %.1f |\n", prefill[0],
           prefill[1], prefill[2], 1.0 / dec, dec * 1e3, gbs, bw, 100.0 * gbs / bw, bdec);
    if (json) {
        FILE *f = fopen(json, "w");
        if (!f) {
            fprintf(stderr, "bench_default_model: cannot write %s\n", json);
            return 1;
        }
        fprintf(f,
                "{\n  \"model\": \"SmolLM2-135M-Instruct.Q4_1.gguf\",\n  \"cpu\": \"%s\",\n"
                "  \"commit\": \"%s\",\n  \"threads\": %d,\n  \"kernel_isa\": \"%s\",\n"
                "  \"omp_wait_policy\": \"%s\",\n"
                "  \"loadavg_before\": %.2f,\n"
                "  \"loadavg_after\": %.2f,\n  \"params_m\": %.2f,\n  \"file_mb\": %.1f,\n"
                "  \"load_dequant_s\": %.3f,\n  \"prefill_tok_s\": {\"32\": %.2f, \"128\": %.2f, "
                "\"512\": %.2f},\n  \"decode_prompt\": %d,\n  \"decode_steps\": %d,\n"
                "  \"decode_tok_s\": %.3f,\n  \"decode_ms\": %.3f,\n"
                "  \"decode_bytes_per_step\": %.0f,\n  \"decode_gb_s\": %.3f,\n"
                "  \"read_bw_gb_s\": %.3f,\n  \"decode_pct_of_bw\": %.1f,\n"
                "  \"batch\": %d,\n  \"batch_decode_tok_s\": %.2f,\n  \"weight_bytes\": %zu\n}\n",
                cpu, commit, nt, rc_cpu_qmatmul_isa(), wait, load0, load1, params / 1e6,
                file_bytes / 1e6, load_s,
                prefill[0], prefill[1], prefill[2], P0, n_decode, 1.0 / dec, dec * 1e3, bytes, gbs,
                bw, 100.0 * gbs / bw, B, bdec, m.weight_bytes);
        fclose(f);
    }
    free(tok), free(sl), free(pos), free(row), free(h), free(lg);
    rc_engine_free(&e);
    rc_model_free(&m);
    return 0;
}
