// base/args: every numeric option and recipe value goes through one parser; these are the values
// a hostile user tried (issue: wrap-around, inf/nan, negative thread counts, text) and the edges.
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "base/args.h"
#include "base/common.h"

#define REFUSED(call, needle)                                                                      \
    do {                                                                                           \
        cr_assert_eq((call), -1, "%s accepted", #call);                                            \
        cr_assert(strstr(rc_last_error(), needle), "expected '%s' in: %s", needle, rc_last_error()); \
    } while (0)

Test(args, integers_never_wrap) {
    int v = -7;
    REFUSED(rc_parse_i32("--max-new-tokens", "4294967297", 1, 1 << 20, &v), "--max-new-tokens");
    REFUSED(rc_parse_i32("--max-new-tokens", "2147483647", 1, 1 << 20, &v), "[1, 1048576]");
    REFUSED(rc_parse_i32("--n", "99999999999999999999999", 0, 10, &v), "too large");
    REFUSED(rc_parse_i32("--threads", "-5", 0, 4096, &v), "got '-5'");
    REFUSED(rc_parse_i32("--threads", "abc", 0, 4096, &v), "got 'abc'");
    REFUSED(rc_parse_i32("--threads", "", 0, 4096, &v), "got ''");
    REFUSED(rc_parse_i32("--threads", "4 ", 0, 4096, &v), "got '4 '");
    REFUSED(rc_parse_i32("--steps", "1e9", 0, 1000, &v), "got '1e9'");
    REFUSED(rc_parse_i32("--steps", "2.5", 0, 1000, &v), "integer");
    REFUSED(rc_parse_i32("--steps", NULL, 0, 1000, &v), "expects a value");
    cr_assert_eq(v, -7, "a refused value must not be stored");
    cr_assert(rc_parse_i32("--steps", "1000", 0, 1000, &v) == 0 && v == 1000);
    cr_assert(rc_parse_i32("--steps", "0", 0, 1000, &v) == 0 && v == 0);
    long l;
    cr_assert(rc_parse_int("--limit", "1099511627776", 0, 1L << 40, &l) == 0 && l == 1L << 40);
    uint64_t u;
    cr_assert(rc_parse_u64("--seed", "18446744073709551615", &u) == 0 && u == UINT64_MAX);
    REFUSED(rc_parse_u64("--seed", "18446744073709551616", &u), "--seed");
    REFUSED(rc_parse_u64("--seed", "-1", &u), "got '-1'");
    REFUSED(rc_parse_u64("--seed", " -1", &u), "got ' -1'");
    REFUSED(rc_parse_u64("--seed", "7x", &u), "got '7x'");
}

Test(args, reals_are_finite_and_in_range) {
    double d = 3;
    float f = 3;
    REFUSED(rc_parse_real("--step-size", "inf", 0, 1e6, RC_RANGE_OPEN_MIN, &d), "got 'inf'");
    REFUSED(rc_parse_real("--step-size", "nan", 0, 1e6, RC_RANGE_OPEN_MIN, &d), "finite number in (0, 1e+06]");
    REFUSED(rc_parse_real("--step-size", "-0.5", 0, 1e6, RC_RANGE_OPEN_MIN, &d), "got '-0.5'");
    REFUSED(rc_parse_real("--step-size", "0", 0, 1e6, RC_RANGE_OPEN_MIN, &d), "(0,");
    REFUSED(rc_parse_real("--step-size", "1e999", 0, 1e300, RC_RANGE_OPEN_MIN, &d), "1e999");
    REFUSED(rc_parse_real("--lr", "0.1x", 0, 1, 0, &d), "got '0.1x'");
    REFUSED(rc_parse_real("--val-frac", "1", 0, 1, RC_RANGE_OPEN_MAX, &d), "[0, 1)");
    REFUSED(rc_parse_realf("--temperature", "nan", 0, 100, 0, &f), "--temperature");
    REFUSED(rc_parse_realf("--temperature", "-inf", 0, 100, 0, &f), "got '-inf'");
    REFUSED(rc_parse_realf("--x", "1e300", 0, 1e301, 0, &f), "1e300"); // beyond float
    cr_assert(d == 3 && f == 3, "a refused value must not be stored");
    cr_assert(rc_parse_real("--val-frac", "0", 0, 1, RC_RANGE_OPEN_MAX, &d) == 0 && d == 0);
    cr_assert(rc_parse_realf("--temperature", "0.7", 0, 100, 0, &f) == 0 && f == 0.7f);
    cr_assert(rc_parse_real("--lr", "1e-4", 0, 1, RC_RANGE_OPEN_MIN, &d) == 0 && d == 1e-4);
}

Test(args, json_values) {
    cJSON *j = cJSON_Parse("{\"e\": -3, \"big\": 1e9, \"frac\": 2.5, \"s\": \"7\", \"ok\": 12,"
                           " \"r\": 0.5, \"neg\": -1e-3, \"b\": true}");
    cr_assert(j);
    long l = 0;
    double d = 0;
    REFUSED(rc_json_int("recipe.json: train.epochs", cJSON_GetObjectItem(j, "e"), 1, 100000, &l),
            "recipe.json: train.epochs expects an integer in [1, 100000], got -3");
    REFUSED(rc_json_int("steps", cJSON_GetObjectItem(j, "big"), 0, 1000, &l), "got 1000000000");
    REFUSED(rc_json_int("n", cJSON_GetObjectItem(j, "frac"), 0, 1000, &l), "got 2.5");
    REFUSED(rc_json_int("n", cJSON_GetObjectItem(j, "s"), 0, 1000, &l), "got a string");
    REFUSED(rc_json_int("n", cJSON_GetObjectItem(j, "missing"), 0, 1000, &l), "missing");
    REFUSED(rc_json_real("alpha", cJSON_GetObjectItem(j, "neg"), 0, 10, RC_RANGE_OPEN_MIN, &d),
            "alpha expects a finite number in (0, 10]");
    REFUSED(rc_json_real("alpha", cJSON_GetObjectItem(j, "b"), 0, 10, 0, &d), "a boolean");
    cr_assert(rc_json_int("n", cJSON_GetObjectItem(j, "ok"), 0, 1000, &l) == 0 && l == 12);
    cr_assert(rc_json_real("r", cJSON_GetObjectItem(j, "r"), 0, 1, 0, &d) == 0 && d == 0.5);
    cJSON_Delete(j);
}
