// Line reader for JSONL inputs, plain or gzip (zlib reads plain files transparently): exact byte
// lengths, so a NUL byte inside a line is seen (and reported by the caller) instead of cutting the
// line and merging the rest into the next one.
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rc_lines rc_lines;

// Opens path for reading; a directory or a missing file is refused naming it. NULL + error.
rc_lines *rc_lines_open(const char *path);
// The next line (without its '\n', NUL-terminated, *len bytes: may hold NUL bytes), valid until
// the next call. Returns 1 for a line, 0 at the end, -1 on a read error (truncated gzip...).
int rc_lines_next(rc_lines *r, const char **line, size_t *len);
void rc_lines_close(rc_lines *r);
// Position of the first NUL byte in s[0..len), or -1.
long rc_find_nul(const char *s, size_t len);
// Position of the first "\u0000" escape in JSON text s (not one whose backslash is itself
// escaped), or -1: cJSON would cut the string there.
long rc_json_find_nul_escape(const char *s, size_t len);

#ifdef __cplusplus
}
#endif
