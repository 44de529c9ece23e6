// Progress lines with rate and ETA (base/progress.h); for a stage spread over ranks, rank 0
// prints the whole job's counters, which the other ranks post to it (base/dist.h).
#include "base/progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "base/dist.h"

void rc_progress_init(rc_progress *p, const char *what, int64_t total) {
    memset(p, 0, sizeof *p);
    p->what = what;
    p->total = total;
    p->t0 = p->last = rc_time_s();
    p->interval = 5.0;
}

int rc_progress_init_job(rc_progress *p, const char *what, int64_t job_total) {
    rc_progress_init(p, what, job_total);
    if (rc_dist_size() == 1) return 0;
    p->table = rc_calloc((size_t)rc_dist_size() * 3, sizeof(int64_t), "progress table");
    return p->table ? 0 : -1;
}

// Counters of the whole job as rank 0 knows them (its own are current).
static void job_counts(const rc_progress *p, int64_t *done, int64_t *tokens) {
    *done = p->done;
    *tokens = p->tokens;
    if (!p->table) return;
    for (int r = 1; r < rc_dist_size(); r++) {
        *done += p->table[r * 3];
        *tokens += p->table[r * 3 + 1];
    }
}

static void print_line(rc_progress *p, double now) {
    int64_t done, tokens;
    job_counts(p, &done, &tokens);
    double el = now - p->t0;
    double rate = el > 0 ? (double)tokens / el : 0;
    double seq_rate = el > 0 ? (double)done / el : 0;
    char eta[32] = "?", ranks[32] = "";
    if (seq_rate > 0 && p->total >= done) {
        long s = (long)((double)(p->total - done) / seq_rate + 0.5);
        snprintf(eta, sizeof eta, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
    }
    if (p->table) snprintf(ranks, sizeof ranks, " (%d ranks)", rc_dist_size());
    fprintf(stderr, "[%s] %lld/%lld seqs, %lld tok, %.1f tok/s, elapsed %.0fs, ETA %s%s\n", p->what,
            (long long)done, (long long)p->total, (long long)tokens, rate, el, eta, ranks);
}

void rc_progress_tick(rc_progress *p, int force) {
    double now = rc_time_s();
    if (p->table && rc_dist_rank() != 0) {
        if (now - p->last_post >= 1.0) {
            int64_t v[3] = {p->done, p->tokens, 0};
            rc_dist_post(v, 3);
            p->last_post = now;
        }
        return;
    }
    if (p->table) rc_dist_collect(p->table, 3);
    if (!force && now - p->last < p->interval) return;
    p->last = now;
    print_line(p, now);
}

int rc_progress_end(rc_progress *p) {
    int rc = 0;
    if (p->table) {
        int64_t v[3] = {p->done, p->tokens, 0};
        rc = rc_dist_rank() == 0 ? rc_dist_collect_final(p->table, 3) : rc_dist_post_final(v, 3);
    }
    if (rc == 0 && rc_dist_rank() == 0) print_line(p, rc_time_s());
    free(p->table);
    p->table = NULL;
    return rc;
}
