// EXPECT_FAIL(expr, substr): expr must fail (non-zero) and rc_last_error() must mention substr.
#pragma once
#include <criterion/criterion.h>
#include <string.h>

#include "base/common.h"

#define EXPECT_FAIL(expr, substr)                                                                  \
    do {                                                                                           \
        cr_assert_neq((expr), 0, "expected failure: %s", #expr);                                   \
        cr_assert(strstr(rc_last_error(), (substr)) != NULL,                                       \
                  "error \"%s\" does not mention \"%s\"", rc_last_error(), (substr));              \
    } while (0)
