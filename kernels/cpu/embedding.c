// Row gather from the (vocab, d) embedding table.
#include "kernels/cpu/embedding.h"

#include <stddef.h>
#include <string.h>

void rc_cpu_embedding(float *out, const float *table, const int *ids, int n, int d) {
    for (int i = 0; i < n; i++)
        memcpy(out + (size_t)i * d, table + (size_t)ids[i] * d, sizeof(float) * (size_t)d);
}
