// Helpers shared by the pipeline subcommands extract / label / eval: text <-> token ids for a
// model (its tokenizer, or plain ids when it has none), progress lines with rate and ETA,
// safetensors header metadata, and small option parsing.
#pragma once
#include <stdint.h>
#include <stdio.h>

#include "engine/model.h"

#ifdef __cplusplus
extern "C" {
#endif

struct rc_tokenizer;
typedef struct {
    struct rc_tokenizer *tok; // NULL when the model has none (ids only)
    int bos;                  // BOS id or -1
} rc_codec;

// Opens the tokenizer that belongs to model_path (HF directory or GGUF). When there is none
// and allow_ids is set, the codec works on ids only (encode fails; decode writes "12 7 9").
int rc_codec_open(rc_codec *c, const char *model_path, const rc_model *m, int allow_ids);
void rc_codec_close(rc_codec *c);
int rc_codec_has_text(const rc_codec *c);
// text -> ids (malloc'd), special tokens (BOS) added as the model's tokenizer config says. 0 / -1.
int rc_codec_encode(rc_codec *c, const char *text, int **ids, int *n);
// ids -> text (malloc'd; special tokens skipped). NULL on error.
char *rc_codec_decode(rc_codec *c, const int *ids, int n);
// "1 2 3" (malloc'd).
char *rc_ids_to_text(const int *ids, int n);

typedef struct {
    const char *what; // "extract", "label"
    double t0, last;  // start time, last print
    int64_t total;    // units (sequences) to do in this run
    int64_t done;     // units done
    int64_t tokens;   // tokens processed
    double interval;  // seconds between lines
} rc_progress;

void rc_progress_init(rc_progress *p, const char *what, int64_t total);
// Prints "[what] done/total seqs, N tok, R tok/s, ETA hh:mm:ss" to stderr when interval has
// passed (force: always).
void rc_progress_tick(rc_progress *p, int force);

// Reads the "__metadata__" object of a safetensors file's header: value of key (malloc'd), or
// NULL with an error when absent.
char *rc_st_read_metadata(const char *path, const char *key);

// Option value parsing with clear errors ("--batch expects a positive integer, got 'x'").
int rc_parse_int(const char *opt, const char *s, long min, long max, long *out);
// Token ids "1,2,3" (commas, spaces and [ ] accepted as separators) -> malloc'd ids, at least
// one; a clear error naming opt otherwise. 0 / -1.
int rc_parse_id_list(const char *opt, const char *s, int **ids, int *n);

#ifdef __cplusplus
}
#endif
