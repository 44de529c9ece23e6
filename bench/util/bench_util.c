// Helpers shared by the CPU benchmarks (see bench_util.h).
#include "bench/util/bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"

double rc_bench_read_bw(size_t bytes) {
    size_t n = bytes / sizeof(float);
    float *a = malloc(bytes);
    if (!a) return 0;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) a[i] = (float)(i & 1023);
    double best = 0, sink = 0;
    for (int rep = 0; rep < 6; rep++) {
        double t0 = rc_time_s(), s = 0;
#pragma omp parallel for simd schedule(static) reduction(+ : s)
        for (size_t i = 0; i < n; i++) s += a[i];
        double dt = rc_time_s() - t0;
        sink += s;
        if (bytes / dt / 1e9 > best) best = bytes / dt / 1e9;
    }
    free(a);
    if (sink == 42) fprintf(stderr, " "); // keep the sums alive
    return best;
}

double rc_bench_copy_bw(size_t bytes) {
    char *a = malloc(bytes), *b = malloc(bytes);
    if (!a || !b) return free(a), free(b), 0;
    memset(a, 1, bytes);
    memset(b, 2, bytes);
    double best = 0;
    for (int rep = 0; rep < 4; rep++) {
        double t0 = rc_time_s();
        memcpy(b, a, bytes);
        double dt = rc_time_s() - t0;
        if (2.0 * bytes / dt / 1e9 > best) best = 2.0 * bytes / dt / 1e9;
    }
    free(a), free(b);
    return best;
}

void rc_bench_cpu_model(char *out, size_t cap) {
    snprintf(out, cap, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10)) {
            char *p = strchr(line, ':');
            if (p) {
                p++;
                while (*p == ' ') p++;
                p[strcspn(p, "\n")] = 0;
                snprintf(out, cap, "%s", p);
            }
            break;
        }
    fclose(f);
}

double rc_bench_loadavg1(void) {
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) l = -1;
        fclose(f);
    }
    return l;
}
