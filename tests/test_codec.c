// Response text as the reference sees it: decode(prompt ids + response ids) minus the prompt's
// decode. A SentencePiece (LLaMA-style) response decoded alone loses its first space, as HF's
// LlamaTokenizer.decode does ("I am fine"); after the prompt it keeps it (" I am fine"), so
// prompt + response = the joint decode, which is what the reward model must read.
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "pipeline/codec.h"
#include "tokenizer/tokenizer.h"

static void check(const char *model, const char *prompt, const char *response, const char *want_alone) {
    rc_codec c;
    cr_assert_eq(rc_codec_open(&c, model, NULL, 0), 0, "%s", rc_last_error());
    size_t lp = strlen(prompt), lr = strlen(response);
    char *both = malloc(lp + lr + 1);
    memcpy(both, prompt, lp);
    memcpy(both + lp, response, lr + 1);
    int *pi, np, *ai, na;
    cr_assert_eq(rc_codec_encode(&c, prompt, &pi, &np), 0);
    cr_assert_eq(rc_codec_encode(&c, both, &ai, &na), 0);
    cr_assert_gt(na, np);
    for (int k = 0; k < np; k++) cr_assert_eq(ai[k], pi[k], "prompt ids are a prefix of the joint ids");
    char *alone = rc_codec_decode(&c, ai + np, na - np);
    char *after = rc_codec_decode_after(&c, pi, np, ai + np, na - np);
    char *whole = rc_codec_decode(&c, ai, na);
    cr_assert_str_eq(alone, want_alone);
    cr_assert_str_eq(after, response, "the response keeps its first space");
    size_t lw = strlen(whole), la = strlen(after);
    cr_assert(lw >= la && !strcmp(whole + lw - la, after), "prompt text + response = joint decode");
    free(alone);
    free(after);
    free(whole);
    free(pi);
    free(ai);
    free(both);
    rc_codec_close(&c);
}

Test(codec, sentencepiece_response_keeps_first_space) {
    check(RC_FIXTURES "/tok/spm", "Human: How are you?\nAssistant:", " I am fine, thanks.",
          "I am fine, thanks.");
}

Test(codec, byte_level_bpe_unchanged) {
    check(RC_FIXTURES "/tok/l3", "User: How are you?\nAssistant:", " I am fine, thanks.",
          " I am fine, thanks.");
}
