// `recontrol judge` against the RE-Control reference's own gpt4_eval.py, run unchanged on the same
// two runs by tests/scripts/make_judge_protocol_fixtures.py (Python's random seeded, a recording
// stand-in for the OpenAI client): the system prompt word for word, every user prompt (the replay
// judge finds a reply only for the exact text), the 100 sampled pairs and their A/B sides, the
// parsed scores including unparsable and NaN replies, win / tie / lose; resume from the record;
// Python's random (seed, sample in both of its algorithms, randint, getrandbits) bit for bit.
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "eval/judge.h"
#include "eval/pyrandom.h"
#include "golden_jsonl.h"

#define JP RC_FIXTURES "/judge_protocol"

Test(judge_protocol, python_random_bit_for_bit) {
    cJSON *d = read_json(JP "/pyrandom.json");
    const cJSON *c;
    cJSON_ArrayForEach(c, d) {
        rc_pyrandom r;
        rc_pyrandom_seed(&r, (uint64_t)cJSON_GetObjectItem(c, "seed")->valuedouble);
        int64_t n = (int64_t)cJSON_GetObjectItem(c, "n")->valuedouble, k = (int64_t)cJSON_GetObjectItem(c, "k")->valuedouble;
        int64_t *s = malloc(sizeof(int64_t) * (size_t)k);
        cr_assert_eq(rc_pyrandom_sample(&r, n, k, s), 0);
        const cJSON *gs = cJSON_GetObjectItem(c, "sample");
        for (int64_t i = 0; i < k; i++)
            cr_assert_eq(s[i], (int64_t)cJSON_GetArrayItem(gs, (int)i)->valuedouble, "seed case n=%lld i=%lld",
                         (long long)n, (long long)i);
        const cJSON *ri = cJSON_GetObjectItem(c, "randint01");
        for (int i = 0; i < cJSON_GetArraySize(ri); i++)
            cr_assert_eq((int)rc_pyrandom_randbelow(&r, 2), cJSON_GetArrayItem(ri, i)->valueint);
        const cJSON *gb = cJSON_GetObjectItem(c, "getrandbits32");
        for (int i = 0; i < 3; i++)
            cr_assert_eq((double)rc_pyrandom_getrandbits(&r, 32), cJSON_GetArrayItem(gb, i)->valuedouble);
        free(s);
    }
    cJSON_Delete(d);
}

Test(judge_protocol, system_prompt_word_for_word) {
    size_t n;
    char *t = rc_read_file(JP "/system_prompt.txt", &n);
    cr_assert(t);
    cr_assert_str_eq(rc_judge_system_prompt(), t);
    free(t);
}

Test(judge_protocol, reply_parsing) {
    double a, b;
    cr_assert_eq(rc_judge_parse("7 8\nwhy", &a, &b), 1);
    cr_assert(a == 7 && b == 8);
    cr_assert_eq(rc_judge_parse("7.5 1e1\r\n", &a, &b), 1);
    cr_assert(a == 7.5 && b == 10);
    cr_assert_eq(rc_judge_parse("1_0 5", &a, &b), 1);
    cr_assert(a == 10 && b == 5);
    cr_assert_eq(rc_judge_parse(" 8 9", &a, &b), 0); // three fields for Python's split(" ")
    cr_assert(a == 0 && b == 0);
    cr_assert_eq(rc_judge_parse("8  9", &a, &b), 0);
    cr_assert_eq(rc_judge_parse("Score: 7", &a, &b), 0);
    cr_assert_eq(rc_judge_parse("0x1p3 4", &a, &b), 0);
    cr_assert_eq(rc_judge_parse("error", &a, &b), 0);
    cr_assert_eq(rc_judge_parse("nan 5", &a, &b), 1);
    cr_assert(isnan(a));
}

static void run_judge(const char *out, int expect_reused) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "%s judge --run %s/red --against %s/blue --replay %s/replay.jsonl --seed 14 --sample 100 "
             "--out %s > /dev/null 2> %s.err",
             RC_BINARY, JP, JP, JP, out, out);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    char path[4200];
    snprintf(path, sizeof path, "%s.json", out);
    cJSON *ours = read_json(path), *ref = read_json(JP "/reference_result.json");
    const char *keys[] = {"win", "tie", "lose"};
    for (int i = 0; i < 3; i++)
        cr_assert_eq(cJSON_GetObjectItem(ours, keys[i])->valueint, cJSON_GetObjectItem(ref, keys[i])->valueint,
                     "%s", keys[i]);
    cr_assert_eq(cJSON_GetObjectItem(ours, "reused_replies")->valueint, expect_reused);
    const cJSON *pairs = cJSON_GetObjectItem(ours, "pairs"), *ev = cJSON_GetObjectItem(ref, "evaluations");
    cr_assert_eq(cJSON_GetArraySize(pairs), 100);
    cr_assert_eq(cJSON_GetArraySize(ev), 100);
    int unparsed = 0;
    for (int i = 0; i < 100; i++) {
        const cJSON *p = cJSON_GetArrayItem(pairs, i), *e = cJSON_GetArrayItem(ev, i);
        const char *ks[2][2] = {{"red_score", "red_score"}, {"blue_score", "blue_score"}};
        for (int s = 0; s < 2; s++) {
            const cJSON *o = cJSON_GetObjectItem(p, ks[s][0]), *g = cJSON_GetObjectItem(e, ks[s][1]);
            if (cJSON_IsString(g)) cr_assert(cJSON_IsNull(o), "pair %d: NaN score", i);
            else cr_assert_eq(o->valuedouble, g->valuedouble, "pair %d %s", i, ks[s][0]);
        }
        cr_assert_str_eq(cJSON_GetObjectItem(p, "reply")->valuestring, cJSON_GetObjectItem(e, "result")->valuestring);
        unparsed += !cJSON_IsTrue(cJSON_GetObjectItem(p, "parsed"));
    }
    cr_assert_eq(cJSON_GetObjectItem(ours, "unparsed")->valueint, unparsed);
    cr_assert_gt(unparsed, 5, "the fixture exercises unparsable replies");
    fprintf(stderr, "judge: win %d tie %d lose %d (reference the same), %d unparsable\n",
            cJSON_GetObjectItem(ours, "win")->valueint, cJSON_GetObjectItem(ours, "tie")->valueint,
            cJSON_GetObjectItem(ours, "lose")->valueint, unparsed);
    cJSON_Delete(ours);
    cJSON_Delete(ref);
}

Test(judge_protocol, same_pairs_sides_scores_and_tally_as_gpt4_eval_py) {
    char dir[] = "/tmp/rc_judge_XXXXXX";
    cr_assert(mkdtemp(dir));
    char out[256], cmd[2048];
    snprintf(out, sizeof out, "%s/j", dir);
    run_judge(out, 0);
    run_judge(out, 100); // a rerun reuses every recorded reply
    snprintf(cmd, sizeof cmd, "sed -i '$d' %s.jsonl", out);
    cr_assert_eq(system(cmd), 0);
    run_judge(out, 99); // one reply lost: asked again
    // `recontrol eval --judge` puts the win rate next to the other numbers
    snprintf(cmd, sizeof cmd,
             "%s eval --run %s/red --against %s/blue --cut metrics --judge %s.json --out %s/e > %s/e.stdout 2>&1 && "
             "grep -q 'Judge win rate.*win 28 .*tie 41 .*lose 23' %s/e.md",
             RC_BINARY, JP, JP, out, dir, dir, dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    char ep[512];
    snprintf(ep, sizeof ep, "%s/e.json", dir);
    cJSON *e = read_json(ep);
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(e, "judge"), "win")->valueint, 28);
    cJSON_Delete(e);
    // another seed draws other pairs and sides: a pair recorded with another prompt is refused
    // (or the replay has no reply for the new prompt); nothing is mixed into the record
    snprintf(cmd, sizeof cmd,
             "%s judge --run %s/red --against %s/blue --replay %s/replay.jsonl --seed 15 --sample 100 --out %s "
             "> %s.err2 2>&1; test $? -ne 0 && grep -E -q 'judged with another prompt|no recorded reply' %s.err2",
             RC_BINARY, JP, JP, JP, out, out, out);
    cr_assert_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}
