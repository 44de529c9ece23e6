// Prompt datasets: JSONL (plain or gzip) in the formats RE-Control uses, with prompts prepared
// as the reference code does. Bad lines (malformed JSON, missing fields, empty prompts) are
// reported as "file:line: reason" and skipped; the rest are kept in file order.
//   hh:    {"chosen": "\n\nHuman: ... \n\nAssistant: ...", "rejected": ...}  (HH-RLHF)
//   shp:   {"history": "...", "preferred": "..."?}                              (SHP)
//   plain: {"prompt": "..."}                                                   (used as is)
//   ids:   {"ids": [1, 2, 3]}                           (token ids, for models without a tokenizer)
#pragma once
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { RC_DS_HH = 0, RC_DS_SHP, RC_DS_PLAIN, RC_DS_IDS } rc_ds_format;

typedef struct {
    char *prompt;    // prepared prompt text (NULL for the ids format)
    char *reference; // the dataset's preferred answer when it has one (HH chosen reply, SHP
                     // "preferred"), else NULL
    int *ids;        // (n_ids) token ids, ids format only
    int n_ids;       //
    long line;       // 1-based line in the source file
} rc_ds_item;

typedef struct {
    rc_ds_item *items; // (n) in file order
    int n;             //
    long n_lines;      // non-blank lines read
    long n_bad;        // lines reported and skipped
} rc_dataset;

// "hh" | "shp" | "plain" | "ids" -> format. 0 / -1.
int rc_ds_format_parse(const char *s, rc_ds_format *fmt);
const char *rc_ds_format_name(rc_ds_format fmt);

// Reads path (gzip or plain, detected by content) and keeps at most limit items (limit <= 0:
// all). Every skipped line is reported to report (may be NULL) as "path:line: reason". Fails
// (-1) only when the file cannot be read or memory runs out; a file with no usable line
// returns 0 with ds->n == 0.
int rc_dataset_load(const char *path, rc_ds_format fmt, long limit, rc_dataset *ds, FILE *report);
// The same with the reference's turn prefix for HH/SHP prompts ("Human: " for Vicuna, "User: "
// for Llama-3 and Falcon; NULL = "Human: ").
int rc_dataset_load_turn(const char *path, rc_ds_format fmt, long limit, const char *turn,
                         rc_dataset *ds, FILE *report);
void rc_dataset_free(rc_dataset *ds);
// Drops the items whose token ids fall outside [0, vocab_size) (ids format), reporting each as
// "path:line: ..." and counting it in n_bad, so one bad record does not abort a run. Returns how
// many were dropped.
int rc_dataset_check_ids(rc_dataset *ds, const char *path, int vocab_size, FILE *report);

// Prompt preparation as in the reference (malloc'd results, NULL + error on failure), through
// tokenizer/chat.h's rc_hh_prompt / rc_shp_prompt:
// HH-RLHF: take `chosen`, replace every "Human:" by "Human: ", cut after the last "Assistant:"
// (NULL with an error when there is no "Assistant:"). If reply is not NULL it receives the text
// after the last "Assistant:" with surrounding whitespace trimmed (malloc'd).
char *rc_prep_hh(const char *chosen, char **reply);
char *rc_prep_hh_turn(const char *chosen, const char *turn, char **reply); // turn: see above
// SHP: "Human: " + history + "\nAssistant:".
char *rc_prep_shp(const char *history);

#ifdef __cplusplus
}
#endif
