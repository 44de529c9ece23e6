// Progress lines with rate and ETA (base/progress.h).
#include "base/progress.h"

#include <stdio.h>
#include <string.h>

#include "base/common.h"

void rc_progress_init(rc_progress *p, const char *what, int64_t total) {
    memset(p, 0, sizeof *p);
    p->what = what;
    p->total = total;
    p->t0 = p->last = rc_time_s();
    p->interval = 5.0;
}

void rc_progress_tick(rc_progress *p, int force) {
    double now = rc_time_s();
    if (!force && now - p->last < p->interval) return;
    p->last = now;
    double el = now - p->t0;
    double rate = el > 0 ? (double)p->tokens / el : 0;
    double seq_rate = el > 0 ? (double)p->done / el : 0;
    char eta[32] = "?";
    if (seq_rate > 0 && p->total >= p->done) {
        long s = (long)((double)(p->total - p->done) / seq_rate + 0.5);
        snprintf(eta, sizeof eta, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
    }
    fprintf(stderr, "[%s] %lld/%lld seqs, %lld tok, %.1f tok/s, elapsed %.0fs, ETA %s\n", p->what,
            (long long)p->done, (long long)p->total, (long long)p->tokens, rate, el, eta);
}

