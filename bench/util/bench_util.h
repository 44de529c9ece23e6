// Helpers shared by the CPU benchmarks: this machine's measured memory bandwidth, CPU model and
// load average (recorded next to every figure, since a shared machine's numbers move with load).
#pragma once
#include <stddef.h>

// Streaming read bandwidth in GB/s: best of several passes of a threaded sum over `bytes`.
double rc_bench_read_bw(size_t bytes);
// memcpy bandwidth in GB/s, counted as read + write.
double rc_bench_copy_bw(size_t bytes);
// "model name" of /proc/cpuinfo ("unknown" when absent).
void rc_bench_cpu_model(char *out, size_t cap);
// 1-minute load average (-1 when unknown).
double rc_bench_loadavg1(void);
