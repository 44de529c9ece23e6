// Command-line and recipe value parsing with clear errors naming the option: integers without
// wrap-around, finite reals within per-option ranges, token-id lists.
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cJSON;

// Which ends of a real range are excluded: (min, max], [min, max), (min, max).
enum { RC_RANGE_CLOSED = 0, RC_RANGE_OPEN_MIN = 1, RC_RANGE_OPEN_MAX = 2 };

// A decimal integer in [min, max]; text after the digits, overflow (never wrapped or clamped)
// and values out of range are refused: "--batch expects an integer in [1, 4096], got 'x'".
int rc_parse_int(const char *opt, const char *s, long min, long max, long *out);
int rc_parse_i32(const char *opt, const char *s, int min, int max, int *out);
// Any value of a 64-bit seed, 0 .. 2^64-1 (a minus sign is refused, not wrapped).
int rc_parse_u64(const char *opt, const char *s, uint64_t *out);
// A finite real (inf, nan and overflowing values refused) in the range [min, max], ends excluded
// as `open` says (RC_RANGE_*).
int rc_parse_real(const char *opt, const char *s, double min, double max, int open, double *out);
int rc_parse_realf(const char *opt, const char *s, double min, double max, int open, float *out);

// The same checks for values of a JSON document (recipes, configs): `where` names the value
// ("recipe.json: train.epochs"). An absent item (NULL) is an error; callers apply defaults first.
int rc_json_int(const char *where, const struct cJSON *item, long min, long max, long *out);
int rc_json_real(const char *where, const struct cJSON *item, double min, double max, int open,
                 double *out);

// Token ids "1,2,3" (commas, spaces and [ ] accepted as separators) -> malloc'd ids, at least
// one; a clear error naming opt otherwise. 0 / -1.
int rc_parse_id_list(const char *opt, const char *s, int **ids, int *n);

#ifdef __cplusplus
}
#endif
