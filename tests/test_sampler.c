// Sampler: argmax tie rule, top-k / top-p support, seeded determinism, empirical distribution
// against the softmax (fixed seed, 5-sigma bounds), and seeded sampling through rc_generate
// independent of batching.
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "engine/sampler.h"

Test(sampler, argmax_lowest_id_wins_ties_and_skips_nan) {
    float x[6] = {1, 3, NAN, 3, -INFINITY, 2};
    cr_assert_eq(rc_argmax(x, 6), 1);
    float y[3] = {NAN, -5, -5};
    cr_assert_eq(rc_argmax(y, 3), 1);
    rc_sample_params p = {.temperature = 0, .top_k = 0, .top_p = 1, .seed = 0};
    rc_rng r;
    rc_rng_seed(&r, 1);
    float scratch[12];
    cr_assert_eq(rc_sample(x, 6, &p, &r, scratch), 1, "temperature 0 is greedy");
}

Test(sampler, rng_uniform_range_and_seeding) {
    rc_rng a, b, c;
    rc_rng_seed(&a, 42);
    rc_rng_seed(&b, 42);
    rc_rng_seed(&c, 43);
    int diff = 0;
    double mean = 0;
    for (int i = 0; i < 100000; i++) {
        float u = rc_rng_uniform(&a);
        cr_assert(u >= 0 && u < 1);
        mean += u;
        uint64_t x = rc_rng_next(&b), y = rc_rng_next(&c);
        (void)x;
        diff += x != y;
        rc_rng_next(&a); // keep a and b in step
        (void)rc_rng_uniform(&b);
    }
    cr_assert(fabs(mean / 100000 - 0.5) < 0.005, "mean %f", mean / 100000);
    cr_assert(diff > 99990, "different seeds give different streams");
    rc_rng z;
    rc_rng_seed(&z, 0); // seed 0 must not give the all-zero xorshift state
    cr_assert(rc_rng_next(&z) != 0);
}

// Draws n samples and returns counts per id.
static void draw(const float *logits, int V, rc_sample_params p, int n, int *counts) {
    rc_rng r;
    rc_rng_seed(&r, p.seed);
    float *scratch = malloc(sizeof(float) * 2 * V);
    memset(counts, 0, sizeof(int) * V);
    for (int i = 0; i < n; i++) {
        int t = rc_sample(logits, V, &p, &r, scratch);
        cr_assert(t >= 0 && t < V);
        counts[t]++;
    }
    free(scratch);
}

Test(sampler, top_k_restricts_support) {
    float lg[8] = {0.1f, 2.0f, -1.0f, 1.5f, 1.9f, 0.0f, -3.0f, 1.0f}; // top-3: ids 1, 4, 3
    int counts[8];
    draw(lg, 8, (rc_sample_params){.temperature = 1.5f, .top_k = 3, .top_p = 1, .seed = 7}, 20000, counts);
    for (int i = 0; i < 8; i++) {
        int in_top = i == 1 || i == 4 || i == 3;
        if (in_top) cr_assert(counts[i] > 1000, "id %d drawn %d times", i, counts[i]);
        else cr_assert_eq(counts[i], 0, "id %d outside top-k drawn %d times", i, counts[i]);
    }
    draw(lg, 8, (rc_sample_params){.temperature = 1, .top_k = 1, .top_p = 1, .seed = 7}, 100, counts);
    cr_assert_eq(counts[1], 100, "top_k 1 is greedy");
}

Test(sampler, top_p_restricts_support) {
    // probabilities 0.5, 0.3, 0.15, 0.05 (ids 2, 0, 3, 1)
    float lg[4] = {logf(0.3f), logf(0.05f), logf(0.5f), logf(0.15f)};
    int counts[4];
    // top_p 0.7: 0.5 alone is < 0.7, so ids 2 and 0 are kept (mass 0.8), nothing else.
    draw(lg, 4, (rc_sample_params){.temperature = 1, .top_k = 0, .top_p = 0.7f, .seed = 3}, 20000, counts);
    cr_assert(counts[1] == 0 && counts[3] == 0, "counts %d %d %d %d", counts[0], counts[1], counts[2], counts[3]);
    cr_assert(fabs(counts[2] / 20000.0 - 0.625) < 0.02, "renormalised 0.5/0.8: %d", counts[2]);
    // top_p 0.9: ids 2, 0, 3 (0.95 >= 0.9); id 1 never.
    draw(lg, 4, (rc_sample_params){.temperature = 1, .top_k = 0, .top_p = 0.9f, .seed = 3}, 20000, counts);
    cr_assert(counts[1] == 0 && counts[3] > 2000, "counts %d %d %d %d", counts[0], counts[1], counts[2], counts[3]);
    // top_p tiny: only the most likely token
    draw(lg, 4, (rc_sample_params){.temperature = 1, .top_k = 0, .top_p = 0.01f, .seed = 3}, 1000, counts);
    cr_assert_eq(counts[2], 1000);
    // top_k then top_p: top_k 3 keeps 2, 0, 3 (renormalised 0.526, 0.316, 0.158); top_p 0.8 then
    // keeps 2 and 0.
    draw(lg, 4, (rc_sample_params){.temperature = 1, .top_k = 3, .top_p = 0.8f, .seed = 3}, 20000, counts);
    cr_assert(counts[3] == 0 && counts[1] == 0 && counts[0] > 5000);
    // -inf logits are never sampled
    float m[3] = {-INFINITY, 0.0f, -INFINITY};
    draw(m, 3, (rc_sample_params){.temperature = 1, .top_k = 0, .top_p = 1, .seed = 3}, 100, counts);
    cr_assert_eq(counts[1], 100);
}

Test(sampler, same_seed_same_tokens) {
    float lg[50];
    for (int i = 0; i < 50; i++) lg[i] = sinf(i * 1.7f) * 2;
    rc_sample_params p = {.temperature = 0.9f, .top_k = 20, .top_p = 0.95f, .seed = 1234};
    int a[200], b[200], c[200];
    float scratch[100];
    rc_rng r;
    rc_rng_seed(&r, p.seed);
    for (int i = 0; i < 200; i++) a[i] = rc_sample(lg, 50, &p, &r, scratch);
    rc_rng_seed(&r, p.seed);
    for (int i = 0; i < 200; i++) b[i] = rc_sample(lg, 50, &p, &r, scratch);
    rc_rng_seed(&r, p.seed + 1);
    for (int i = 0; i < 200; i++) c[i] = rc_sample(lg, 50, &p, &r, scratch);
    cr_assert(!memcmp(a, b, sizeof a), "same seed, same draws");
    cr_assert(memcmp(a, c, sizeof a), "another seed, other draws");
}

Test(sampler, distribution_matches_softmax) {
    // p = softmax(logits / T); with 100k draws each frequency is within 5 sigma of p.
    const float probs[5] = {0.05f, 0.1f, 0.2f, 0.25f, 0.4f};
    float lg[5];
    for (int i = 0; i < 5; i++) lg[i] = logf(probs[i]);
    const float temps[2] = {1.0f, 2.0f};
    for (int ti = 0; ti < 2; ti++) {
        double want[5], z = 0;
        for (int i = 0; i < 5; i++) z += (want[i] = pow(probs[i], 1.0 / temps[ti]));
        int counts[5], n = 100000;
        draw(lg, 5, (rc_sample_params){.temperature = temps[ti], .top_k = 0, .top_p = 1, .seed = 99}, n, counts);
        for (int i = 0; i < 5; i++) {
            double p = want[i] / z, f = counts[i] / (double)n, sigma = sqrt(p * (1 - p) / n);
            cr_assert(fabs(f - p) < 5 * sigma, "T %.1f id %d: frequency %.4f, softmax %.4f", temps[ti], i, f, p);
        }
    }
}

// Sampled generation through rc_generate: each sequence's RNG depends only on the seed and its
// prompt index, so 1 slot, 3 slots and chunked prefill all give the same tokens.
Test(sampler, seeded_generation_independent_of_batching) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tiny/gqa_llama3_rope", RC_FIXTURES);
    rc_model m;
    cr_assert(rc_model_load(dir, &m) == 0, "%s", rc_last_error());
    m.cfg.n_eos = 0;
    int p0[3] = {1, 50, 7}, p1[1] = {299}, p2[5] = {3, 4, 5, 6, 7};
    const int *ps[3] = {p0, p1, p2};
    int lens[3] = {3, 1, 5};
    rc_gen_params gp = {.max_new_tokens = 20, .stop_at_eos = 0,
                        .sample = {.temperature = 1.0f, .top_k = 50, .top_p = 0.95f, .seed = 2024}};
    const int shapes[3][2] = {{1, 64}, {3, 64}, {2, 2}};
    rc_gen_output ref[3];
    for (int s = 0; s < 3; s++) {
        rc_backend *e = NULL;
        rc_backend_opts o = {.n_slots = shapes[s][0], .max_len = 32, .max_tokens = shapes[s][1]};
        cr_assert(rc_backend_open(&e, &m, &o) == 0, "%s", rc_last_error());
        rc_gen_output out[3];
        cr_assert(rc_generate(e, 3, ps, lens, &gp, NULL, out) == 0, "%s", rc_last_error());
        for (int i = 0; i < 3; i++) {
            cr_assert_eq(out[i].n_tokens, 20);
            if (s == 0) {
                ref[i] = out[i];
            } else {
                cr_assert(!memcmp(out[i].tokens, ref[i].tokens, sizeof(int) * 20),
                          "prompt %d differs with %d slots", i, shapes[s][0]);
            }
        }
        if (s > 0) rc_gen_output_free(out, 3);
        rc_backend_close(e);
    }
    // the draws are not all greedy (the sampler really sampled)
    rc_backend *e = NULL;
    rc_backend_opts o = {.n_slots = 3, .max_len = 32, .max_tokens = 64};
    cr_assert(rc_backend_open(&e, &m, &o) == 0);
    rc_gen_params greedy = gp;
    greedy.sample.temperature = 0;
    rc_gen_output g[3];
    cr_assert(rc_generate(e, 3, ps, lens, &greedy, NULL, g) == 0);
    int differ = 0;
    for (int i = 0; i < 3; i++) differ += memcmp(g[i].tokens, ref[i].tokens, sizeof(int) * 20) != 0;
    cr_assert(differ > 0);
    rc_gen_output_free(g, 3);
    rc_gen_output_free(ref, 3);
    rc_backend_close(e);
    rc_model_free(&m);
}
