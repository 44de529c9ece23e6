// Bellman loss and its gradient w.r.t. V for ragged batches (see bellman.h for both semantics).
#include "train/bellman.h"

#include <stddef.h>

double rc_bellman_loss(rc_bellman_mode mode, int n_seq, const int64_t *off, const float *v,
                       const float *r, float *dv) {
    return rc_bellman_loss_part(mode, n_seq, n_seq, off, v, r, dv);
}

double rc_bellman_loss_part(rc_bellman_mode mode, int n_seq, int n_norm, const int64_t *off,
                            const float *v, const float *r, float *dv) {
    if (n_seq <= 0 || n_norm <= 0) return 0.0;
    double total = 0, inv_b = 1.0 / n_norm;
    if (dv)
        for (int64_t i = 0; i < off[n_seq]; i++) dv[i] = 0;
    for (int s = 0; s < n_seq; s++) {
        int64_t a = off[s], e = off[s + 1]; // rows a..e-1, T = e-1-a
        double seq = 0;
        for (int64_t t = a; t + 1 < e; t++) {
            double diff = (double)v[t] - (double)v[t + 1];
            seq += diff * diff;
            if (dv) {
                dv[t] += (float)(2.0 * diff * inv_b);
                if (mode == RC_BELLMAN_REFERENCE) dv[t + 1] -= (float)(2.0 * diff * inv_b);
            }
        }
        int64_t anchor = mode == RC_BELLMAN_REFERENCE ? a : e - 1;
        double diff = (double)v[anchor] - (double)r[s];
        seq += diff * diff;
        if (dv) dv[anchor] += (float)(2.0 * diff * inv_b);
        total += seq;
    }
    return total * inv_b;
}
