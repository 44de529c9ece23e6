// Progress lines for long work: done/total, tokens, rate and ETA, printed to stderr at most every
// few seconds.
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

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

#ifdef __cplusplus
}
#endif
