// UTF-8 validation and repair as Python's bytes.decode(errors="replace") and Rust's
// String::from_utf8_lossy do (one U+FFFD per maximal invalid subpart), and JSON text that is
// always valid UTF-8 whatever bytes its strings held.
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cJSON;

// Length of the maximal prefix of s[0..n) (n >= 1) that could start a valid sequence (>= 1);
// *complete when it is a whole character, *truncated when it is valid so far but cut by the end.
size_t rc_utf8_scan(const uint8_t *s, size_t n, int *complete, int *truncated);
int rc_utf8_valid(const char *s, size_t len);
// A malloc'd NUL-terminated copy with invalid bytes replaced (*out_len bytes), or NULL + error.
char *rc_utf8_sanitize(const char *s, size_t len, size_t *out_len);
// cJSON_Print / cJSON_PrintUnformatted whose output is valid UTF-8 (invalid bytes inside strings
// become U+FFFD); malloc'd, NULL + error on failure.
char *rc_json_print(const struct cJSON *j, int formatted);
// cJSON_Parse, then duplicate keys resolved as Python's json module does (the last one wins) at
// every depth. NULL + "<where>: invalid JSON near '...'" on failure.
struct cJSON *rc_json_parse(const char *text, const char *where);
// The same resolution for a document parsed otherwise (cJSON keeps the first duplicate).
void rc_json_keep_last_keys(struct cJSON *j);

#ifdef __cplusplus
}
#endif
