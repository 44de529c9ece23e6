// CPU token embedding lookup: out (n, d) = table[ids[i]] rows, fp32.
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

// out: (n, d); table: (vocab, d); ids: (n), each in [0, vocab) (checked by the caller).
void rc_cpu_embedding(float *out, const float *table, const int *ids, int n, int d);

#ifdef __cplusplus
}
#endif
