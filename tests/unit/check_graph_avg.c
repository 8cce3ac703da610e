/* Unit tests of the rounding of the graph's 24-hour averages: the text PostgreSQL gives for
 * round(x::numeric) of a float8 x (each expected text is PostgreSQL 15's). */
#include "depsera/graph_avg.h"

#include <check.h>
#include <math.h>

#include "unit.h"

#define ZEROS_10 "0000000000"
#define ZEROS_100 ZEROS_10 ZEROS_10 ZEROS_10 ZEROS_10 ZEROS_10 ZEROS_10 ZEROS_10 ZEROS_10 ZEROS_10 ZEROS_10
#define ZEROS_300 ZEROS_100 ZEROS_100 ZEROS_100

static const struct {
    double x;
    const char *pg;
} cases[] = {
    {2.5, "3"},
    {-2.5, "-3"},
    {15.5, "16"},
    {-99.5, "-100"},
    {0.5, "1"},
    {4.35, "4"},
    {12345.678, "12346"},
    {0.49999999999999994, "1"}, /* 15 significant digits first: 0.5 */
    {2.4999999999999996, "3"},
    {0.4999999999999, "0"},
    {-0.4, "0"},
    {-0.0, "0"},
    {0, "0"},
    {0.04, "0"},
    {1.5e-300, "0"},
    {9.5, "10"},
    {99.5, "100"},
    {999999999999999.5, "1000000000000000"},
    {1e15, "1000000000000000"},
    {1e20, "100000000000000000000"},
    {123456789012345678.0, "123456789012346000"},
    {1e300, "1" ZEROS_300},
    {-1.7976931348623157e308,
     "-179769313486232" ZEROS_100 ZEROS_100 ZEROS_10 ZEROS_10 ZEROS_10 ZEROS_10 ZEROS_10 ZEROS_10 ZEROS_10 ZEROS_10 ZEROS_10
     "0000"}, /* 309 digits */
    {NAN, "null"},
    {INFINITY, "null"},
    {-INFINITY, "null"},
};

START_TEST(rounds_as_postgresql)
{
    char out[DPS_GRAPH_AVG_TEXT_MAX];

    dps_graph_avg_round(cases[_i].x, out);
    ck_assert_str_eq(out, cases[_i].pg);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("graph_avg");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, rounds_as_postgresql, 0, sizeof(cases) / sizeof(cases[0]));
    suite_add_tcase(s, tc);
    return dps_check_run(s);
}
