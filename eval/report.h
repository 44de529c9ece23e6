// Evaluation of a run directory (stage 5): average reward (rewards.jsonl), diversity (NLTK-style
// words, RE-Control's rep-n formula) and response length, each response cut at the next
// "Human:"/"User:" turn first; one run alone or two side by side with deltas, as JSON for
// machines and a Markdown table for people.
#pragma once
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    char dir[1024];
    int64_t n;            // responses
    int64_t n_rewarded;   // responses with a reward
    double reward_mean;   // over rewarded responses (NaN when none)
    double reward_std;    // population std
    double diversity;     // mean over responses of prod_{n=2..4} (1 - rep_n/100)
    double len_tokens;    // mean generated tokens (EOS not counted)
    double len_words;     // mean NLTK-style words of the cut response
    double eos_frac;      // share of responses that ended with EOS
    double *reward;       // (n) per response, NaN where missing (owned)
    int64_t *item;        // (n) dataset item of each response (owned)
    char **prompt, **response; // (n) prompt and cut response (owned), for examples
} rc_eval_stats;

// Reads DIR's responses and (when present) rewards.jsonl and computes the statistics. 0 / -1.
int rc_eval_run(const char *dir, rc_eval_stats *s);
void rc_eval_stats_free(rc_eval_stats *s);

// Comparison of b against a on the prompts both answered (paired by dataset item).
typedef struct {
    int64_t n_paired;   // items present in both with rewards
    double win, tie, loss; // shares of paired items where b's reward is >, ==, < a's
} rc_eval_pair;
void rc_eval_compare(const rc_eval_stats *a, const rc_eval_stats *b, rc_eval_pair *p);

// JSON report (malloc'd): {"runs": [stats...], "delta": {...}, "paired": {...}} (b may be NULL).
char *rc_eval_json(const rc_eval_stats *a, const rc_eval_stats *b);
// Markdown table (malloc'd): one column per run, a delta column with two runs; with example set,
// the first prompt and its response(s) follow the table.
char *rc_eval_markdown(const rc_eval_stats *a, const rc_eval_stats *b, int example);

// The stage: statistics of run (and against, may be NULL) written to PREFIX.json and PREFIX.md
// atomically (PREFIX = out, or RUN/eval), the Markdown also to md_out (may be NULL). 0 / -1.
int rc_eval_report(const char *run, const char *against, const char *out, int example, FILE *md_out);

#ifdef __cplusplus
}
#endif
