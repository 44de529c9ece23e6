// Command-line value parsing with clear errors naming the option.
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

// Option value parsing with clear errors ("--batch expects a positive integer, got 'x'").
int rc_parse_int(const char *opt, const char *s, long min, long max, long *out);
// Token ids "1,2,3" (commas, spaces and [ ] accepted as separators) -> malloc'd ids, at least
// one; a clear error naming opt otherwise. 0 / -1.
int rc_parse_id_list(const char *opt, const char *s, int **ids, int *n);

#ifdef __cplusplus
}
#endif
