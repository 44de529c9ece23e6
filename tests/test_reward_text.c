// Reward-model input text per mode. Expected strings are what the reference's Python gives on
// these inputs: reward_label.py's data_collactor (text.replace("USER:", "Human:").replace(
// "ASSISTANT:", "Assistant:") on the whole prompt + response) and measure_reward.py's extract_out
// (re.split("human:", response, flags=re.IGNORECASE)[0] for HH; for SHP the model's word, then
// .replace("User:", "Human:").replace("ASSISTANT:", "Assistant:") on prompt + response).
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "eval/reward_text.h"

static void expect(const char *p, const char *r, int mode, int hh, const char *split, const char *want) {
    char *t = rc_reward_text(p, r, mode, hh, split);
    cr_assert_not_null(t);
    cr_assert_str_eq(t, want, "mode %s", rc_rtext_name(mode));
    free(t);
}

Test(reward_text, reference_train_uncut_substituted) {
    expect("USER: hi ASSISTANT:", " hello\n\nUSER: more\nHuman: x", RC_RTEXT_REF_TRAIN, 1, NULL,
           "Human: hi Assistant: hello\n\nHuman: more\nHuman: x");
}

Test(reward_text, reference_eval_hh_any_case_no_trim) {
    expect("\n\nHuman:  q\n\nAssistant:", " answer  \n\nHUMAN: next", RC_RTEXT_REF_EVAL, 1, NULL,
           "\n\nHuman:  q\n\nAssistant: answer  \n\n");
    // no "human:": whole response; "User:" is not a cut for HH
    expect("P:", " a User: b", RC_RTEXT_REF_EVAL, 1, NULL, "P: a User: b");
}

Test(reward_text, reference_eval_shp_per_model) {
    // Llama-3: cut at "user:" (any case), then User: -> Human:
    expect("User: q\nAssistant:", " fine\nuser: again", RC_RTEXT_REF_EVAL, 0, "User:",
           "Human: q\nAssistant: fine\n");
    // Vicuna: cut at "Human:"
    expect("Human: q\nAssistant:", " ok ASSISTANT: x\nhuman: y", RC_RTEXT_REF_EVAL, 0, "Human:",
           "Human: q\nAssistant: ok Assistant: x\n");
}

Test(reward_text, turn_default) {
    expect("Human: q\nAssistant:", " ok.\n\nHuman: y", RC_RTEXT_TURN, 1, NULL, "Human: q\nAssistant: ok.");
    int m;
    cr_assert_eq(rc_rtext_parse("nope", &m), -1);
    cr_assert_eq(rc_rtext_parse("reference-eval", &m), 0);
    cr_assert_eq(m, RC_RTEXT_REF_EVAL);
}
