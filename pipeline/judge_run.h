// `recontrol judge`: pairwise win rate of one run against another run (or the dataset's
// preferred answers) with the reference's gpt4_eval.py protocol (eval/judge.h), judged by an
// OpenAI-compatible chat-completions endpoint through libcurl (retries with exponential backoff,
// a request-rate limit, temperature 0, max_tokens 2048), by a local judge model run in this
// process through the engine's generation loop (the same system + user messages rendered with its
// chat template, greedy, batched), or by replaying recorded replies.
// Resumable: every judged pair is appended (fsynced) to OUT.jsonl with its raw reply; a rerun
// with the same settings reuses them and asks only for the missing ones.
#pragma once
#include <stdint.h>

#include "engine/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *run;       // "red": the run judged (its prompts are the questions)
    const char *against;   // "blue": another run directory, or NULL with against_reference
    int against_reference; // blue = the dataset's preferred answer of each item
    const char *url;       // base URL (".../v1") or the full ".../chat/completions" URL
    const char *model;     // the "model" field of the request
    const char *api_key;   // bearer token, or NULL
    const char *replay;    // JSONL {"user": ..., "reply": ...} instead of an endpoint (tests)
    const char *judge_model; // a local judge: HF directory or GGUF file, run by the engine
    const char *chat_format; // its chat format by name (default: from its chat template)
    rc_device device;      // where the local judge runs
    rc_wtype wtype;        // its CUDA weight type
    int batch;             // pairs the local judge answers at once (default 8)
    int n_threads;         // CPU threads (0: all)
    const char *out;       // OUT prefix: OUT.jsonl (pairs), OUT.json, OUT.md (summary)
    uint64_t seed;         // Python random.seed(seed) before the draws
    int64_t sample;        // pairs drawn with random.sample (the reference: 100); 0 = all, in order
    int retries;           // attempts after the first failure (default 5)
    double rpm;            // at most this many requests per minute (0 = no limit)
    double timeout_s;      // per request (default 300)
    int max_tokens;        // default 2048
} rc_judge_opts;

void rc_judge_opts_default(rc_judge_opts *o);
// Runs the comparison; fills the tally and writes OUT.json / OUT.md. 0 / -1.
int rc_judge_run(const rc_judge_opts *o);

#ifdef __cplusplus
}
#endif
