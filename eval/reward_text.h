// The text a reward model scores for one (prompt, response), in the three ways a run can follow:
//   RC_RTEXT_TURN       prompt + response cut at the next "Human:"/"User:" turn (this project's
//                       default, trailing whitespace before the cut dropped)
//   RC_RTEXT_REF_TRAIN  the reference's reward_label.py (labels for value training): the whole
//                       text prompt + response, uncut, with "USER:" -> "Human:" and "ASSISTANT:"
//                       -> "Assistant:"
//   RC_RTEXT_REF_EVAL   the reference's measure_reward.py (evaluation): HH cuts the response at
//                       the first "human:" (any case); SHP at the first split word (any case:
//                       "Human:" for Vicuna, "User:" for Llama-3) and then replaces "User:" ->
//                       "Human:" and "ASSISTANT:" -> "Assistant:" in prompt + response; no trim.
// Case-insensitive matching is ASCII (Python's re.IGNORECASE also folds a few non-ASCII letters).
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

enum { RC_RTEXT_TURN = 0, RC_RTEXT_REF_TRAIN = 1, RC_RTEXT_REF_EVAL = 2 };
const char *rc_rtext_name(int mode); // "turn" / "reference-train" / "reference-eval"
int rc_rtext_parse(const char *s, int *mode); // 0 / -1

// malloc'd text (NULL + error on OOM). hh: the dataset is HH-RLHF (else SHP); split: SHP's cut
// word for RC_RTEXT_REF_EVAL (NULL: "Human:").
char *rc_reward_text(const char *prompt, const char *response, int mode, int hh, const char *split);

#ifdef __cplusplus
}
#endif
