/* Unit tests of PostgreSQL array literals: quoting, NULLs, numbers, NUL bytes. */
#include "depsera/pgarray.h"

#include <check.h>
#include <math.h>
#include <string.h>

#include "unit.h"

START_TEST(elements_are_quoted_and_escaped)
{
    dps_pgarray_t a;

    dps_pgarray_init(&a);
    ck_assert_str_eq(dps_pgarray_text(&a), "{}");
    dps_pgarray_add_str(&a, "plain");
    dps_pgarray_add_str(&a, "NULL");
    dps_pgarray_add_null(&a);
    dps_pgarray_add_str(&a, "a \"q\" \\ {x,y}");
    dps_pgarray_add(&a, "n\0ul", 4);
    dps_pgarray_add_str(&a, "");
    ck_assert_str_eq(dps_pgarray_text(&a), "{\"plain\",\"NULL\",NULL,\"a \\\"q\\\" \\\\ {x,y}\",\"nul\",\"\"}");
    dps_pgarray_free(&a);
}
END_TEST

START_TEST(numbers_and_booleans)
{
    dps_pgarray_t a;

    dps_pgarray_init(&a);
    dps_pgarray_add_int(&a, -9223372036854775807LL - 1);
    dps_pgarray_add_double(&a, 0.1);
    dps_pgarray_add_double(&a, NAN);
    dps_pgarray_add_double(&a, -INFINITY);
    dps_pgarray_add_bool(&a, 1);
    dps_pgarray_add_bool(&a, 0);
    ck_assert_str_eq(dps_pgarray_text(&a), "{-9223372036854775808,0.10000000000000001,NULL,NULL,t,f}");
    dps_pgarray_add_int(&a, 7); /* the literal stays open for more elements */
    ck_assert_str_eq(dps_pgarray_text(&a), "{-9223372036854775808,0.10000000000000001,NULL,NULL,t,f,7}");
    dps_pgarray_free(&a);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pgarray");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, elements_are_quoted_and_escaped);
    tcase_add_test(tc, numbers_and_booleans);
    suite_add_tcase(s, tc);
    return dps_check_run(s);
}
