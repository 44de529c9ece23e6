// A run directory of the RE-Control pipeline (written by `extract`, `label`, read by `train`
// and `eval`). Layout (crash-safe: every file is written whole to a temp file, then renamed):
//   extract.json              the extraction settings (checked again on resume)
//   acts-NNNNN.safetensors    hidden [n_steps, d] (F32|F16|BF16), offsets [n_seq+1] (I64);
//                             __metadata__: first_seq, n_seq, item_begin, item_end (dataset
//                             items [begin, end) the shard covers, skipped ones included)
//   responses-NNNNN.jsonl     one line per sequence of shard NNNNN, in order:
//                             {"index", "item", "line", "prompt", "response", "prompt_ids",
//                              "tokens", "n_tokens", "finish": "eos"|"length"}
//   responses.jsonl           all shards' lines concatenated, written when extraction completes
//   rewards.jsonl             {"index": i, "reward": r} (from `label`)
// A shard counts as written only when its responses file exists: the acts file is renamed into
// place first, then the responses file (the commit point), so a crash between the two leaves an
// orphan acts file that resume overwrites. Shards are numbered consecutively from 00000.
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int64_t index;  // global sequence index (shard order), the key of rewards.jsonl
    int64_t item;   // dataset item index
    long line;      // line in the dataset file
    char *prompt;   // prompt text as fed to the model (or ids as text)
    char *response; // decoded response (or ids as text when the model has no tokenizer)
    int *prompt_ids;
    int n_prompt_ids;
    int *tokens; // generated ids, EOS included
    int n_tokens;
    int finish; // RC_FINISH_LENGTH / RC_FINISH_EOS
    char *reference; // dataset's preferred answer, or NULL
} rc_resp;

typedef struct {
    rc_resp *r; // (n) in index order
    int64_t n;
} rc_resp_set;

// Path of shard k's acts / responses file.
void rc_run_acts_path(char *out, size_t cap, const char *dir, int k);
void rc_run_resp_path(char *out, size_t cap, const char *dir, int k);
// Number of committed shards (responses-00000.. consecutive).
int rc_run_count_shards(const char *dir);

// Reads the responses of all complete shards (or responses.jsonl when there are no shard
// files). Checks that indices run 0..n-1. 0 / -1 with file:line in the error.
int rc_run_read_responses(const char *dir, rc_resp_set *s);
void rc_resp_set_free(rc_resp_set *s);
// Parses one responses line into r (malloc'd fields). 0 / -1.
int rc_resp_parse(const char *line, rc_resp *r);
// Serialises r as one JSON line (malloc'd, no newline).
char *rc_resp_to_json(const rc_resp *r);
void rc_resp_free(rc_resp *r);

// Deletes the partial reward logs of `label`: rewards.partial.jsonl and the ranks'
// rewards.partial-R.jsonl.
void rc_run_remove_partial_rewards(const char *dir);

// Reads DIR/rewards.jsonl (or another file) into reward[n] (NaN where missing); *n_found
// counts the indices present. Lines with an index outside [0, n) or malformed are errors.
int rc_run_read_rewards(const char *path, int64_t n, double *reward, int64_t *n_found);

// Length of the response once cut at the next dialogue turn (evaluation, reward labels): the
// first occurrence of "Human:" or "User:" ends it; trailing whitespace before the cut is
// dropped. Returns the byte length to keep.
size_t rc_response_cut_len(const char *response);

#ifdef __cplusplus
}
#endif
