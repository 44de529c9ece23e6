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
    int64_t *table;   // job progress: (ranks, 3) done, tokens of every rank (rank 0's view)
    double last_post; // job progress: last time this rank posted its counters
} rc_progress;

void rc_progress_init(rc_progress *p, const char *what, int64_t total);
// Prints "[what] done/total seqs, N tok, R tok/s, ETA hh:mm:ss" to stderr when interval has
// passed (force: always).
void rc_progress_tick(rc_progress *p, int force);

// The same for a stage spread over the ranks of a job (base/dist.h): job_total units in all;
// every rank counts its own done / tokens in p; rank 0 prints the job's sums, rate and ETA,
// the others post their counters to it now and then without waiting. In a world of 1 this is
// rc_progress_init. rc_progress_end is called by every rank once at the end of the stage
// (prints the final line on rank 0). 0 / -1.
int rc_progress_init_job(rc_progress *p, const char *what, int64_t job_total);
int rc_progress_end(rc_progress *p);

#ifdef __cplusplus
}
#endif
