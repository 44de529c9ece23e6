// Pairwise judge win rate as the RE-Control reference's gpt4_eval.py runs it: its system prompt
// and user template word for word, both answers cut as it cuts them, the A/B side drawn per pair
// from Python's random (eval/pyrandom.h) after the sample of pairs, the reply's first line parsed
// as two scores split on one space ("unparsable" = score 0 and 0, which the reference counts as a
// tie), and win / tie / lose of the first ("red") run against the second ("blue").
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// The reference's SYSTEM_PROMPT.
const char *rc_judge_system_prompt(void);
// USER_PROMPT.format(question=q, answer1=a1, answer2=a2) (malloc'd, NULL + error on OOM).
char *rc_judge_user_prompt(const char *q, const char *a1, const char *a2);
// clean(clean(response, "###USER:"), "\n\nUSER:"), each clean giving " " for an empty result.
char *rc_judge_cut(const char *response);
// The first line split on " " into exactly two Python floats: 1 with *s1, *s2 set; 0 when the
// reply does not parse (*s1 = *s2 = 0, the reference's fallback).
int rc_judge_parse(const char *reply, double *s1, double *s2);
// Python float(s) for one field (surrounding whitespace, underscores between digits, inf/nan).
int rc_judge_py_float(const char *s, size_t n, double *out);

typedef struct {
    int64_t win, tie, lose; // red > blue, ==, < (NaN scores count in none, as in Python)
    int64_t unparsed;       // replies that did not parse (also counted as ties 0 == 0)
} rc_judge_tally;
void rc_judge_tally_add(rc_judge_tally *t, double red, double blue, int parsed);

#ifdef __cplusplus
}
#endif
