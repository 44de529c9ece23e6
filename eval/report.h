// Evaluation of a run directory (stage 5): average reward (rewards.jsonl), diversity (NLTK-style
// words, RE-Control's rep-n formula) and response length, each response cut at the next
// "Human:"/"User:" turn first; one run alone or two side by side with deltas, as JSON for
// machines and a Markdown table for people.
#pragma once
#include <stdint.h>
#include <stdio.h>

#include "eval/coherence.h"

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
    double coherence;     // mean cos(prompt, cut response) of the coherence model (NaN: not asked)
    int coh_device;       // rc_device its encoder ran on
    int cut;              // RC_CUT_* the responses were cut with
    double *reward;       // (n) per response, NaN where missing (owned)
    int64_t *item;        // (n) dataset item of each response (owned)
    char **prompt, **response; // (n) prompt and cut response (owned), for examples
    double *coh;          // (n) per-response cosine, or NULL (owned)
} rc_eval_stats;

// How a response is cut before diversity, length and coherence:
//   RC_CUT_TURN     at the first "Human:" or "User:", trailing whitespace dropped (this project's
//                   default: the next dialogue turn is not part of the answer)
//   RC_CUT_METRICS  as the reference's metrics.py: text before the first "###USER:", then before
//                   the first "\n\nUSER:", no trimming; an empty result becomes " "
enum { RC_CUT_TURN = 0, RC_CUT_METRICS = 1 };
const char *rc_cut_name(int cut); // "turn" / "metrics"
// Parses "turn" / "metrics". 0 / -1.
int rc_cut_parse(const char *s, int *cut);
// The cut response (malloc'd).
char *rc_cut_response(const char *response, int cut);

typedef struct {
    int cut;                 // RC_CUT_*
    const rc_coherence *coh; // coherence model, or NULL (no coherence)
    const char *judge;       // a `recontrol judge` summary (PREFIX.json) to report, or NULL
} rc_eval_opts;

// Reads DIR's responses and (when present) rewards.jsonl and computes the statistics. 0 / -1.
int rc_eval_run(const char *dir, rc_eval_stats *s);
// The same with options (o may be NULL: turn cut, no coherence). Coherence prints progress.
int rc_eval_run_opts(const char *dir, const rc_eval_opts *o, rc_eval_stats *s);
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
// The same with options (response cut, coherence model); o may be NULL.
int rc_eval_report_opts(const char *run, const char *against, const char *out, int example,
                        FILE *md_out, const rc_eval_opts *o);

#ifdef __cplusplus
}
#endif
