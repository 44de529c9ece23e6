// Shared helpers: error reporting (one thread-local message, functions return 0 / -1),
// checked allocation, timing, small file utilities.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

// Records a printf-style message as the current error; always returns -1 so that
// `return rc_fail("...")` reads naturally.
int rc_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// The message of the last rc_fail on this thread ("" when none).
const char *rc_last_error(void);
// Prefixes the current error message with more context: "ctx: old message".
int rc_fail_ctx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// Allocation that fails with a clear error (returns NULL and sets the error) instead of crashing.
void *rc_malloc(size_t n, const char *what);
void *rc_calloc(size_t n, size_t size, const char *what);

double rc_time_s(void); // monotonic seconds
// Bytes this process can still get: MemAvailable, lowered by a cgroup v2 limit less its current
// usage; 0 when unknown. (Total memory would let a too-large request pass and the process be
// killed later, with overcommit.)
double rc_memory_available_bytes(void);

// Reads a whole file into a NUL-terminated buffer (*len excludes the NUL). NULL + error on failure.
char *rc_read_file(const char *path, size_t *len);
// Writes data to path atomically (temp file in the same directory, fsync, rename).
int rc_write_file_atomic(const char *path, const void *data, size_t len);
int rc_file_exists(const char *path);
// 0 when path is a regular file; otherwise -1 with "<path>: No such file or directory (expected
// <expected>)" or "<path> is a FIFO, not <expected>" (a FIFO or /dev/zero is never "missing").
int rc_check_regular_file(const char *path, const char *expected);
int rc_is_dir(const char *path);
// Joins dir and name into out (size cap); returns -1 if it does not fit.
int rc_path_join(char *out, size_t cap, const char *dir, const char *name);

// fp16 / bf16 <-> fp32 conversions (IEEE round-to-nearest-even on the way down).
float rc_f16_to_f32(uint16_t h);
uint16_t rc_f32_to_f16(float f);
float rc_bf16_to_f32(uint16_t h);
uint16_t rc_f32_to_bf16(float f);

#ifdef __cplusplus
}
#endif
