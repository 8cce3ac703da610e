/* Unit tests of JavaScript-compatible lower-casing (expected values from node's toLowerCase). */
#include "depsera/unicase.h"

#include <check.h>

#include "unit.h"
#include <stdlib.h>
#include <string.h>

/* clang-format off */
static const struct {
    const char *in, *want;
} lowers[] = {
    {"", ""},
    {"ABC xyz 123-_.", "abc xyz 123-_."},
    {"Payments-API", "payments-api"},
    {"\xC3\x84\xC3\x96\xC3\x9C", "\xC3\xA4\xC3\xB6\xC3\xBC"},                   /* ÄÖÜ -> äöü */
    {"STRASSE \xE1\xBA\x9E", "strasse \xC3\x9F"},                                 /* ẞ (U+1E9E) -> ß */
    {"\xC3\x9F", "\xC3\x9F"},                                                     /* ß has no lower-case change */
    {"\xC4\xB0", "i\xCC\x87"},                                                    /* İ -> i + combining dot above */
    {"\xC4\xB0STANBUL", "i\xCC\x87stanbul"},
    {"I", "i"},                                                                   /* no Turkish dotless rule */
    {"\xE2\x84\xAA", "k"},                                                        /* Kelvin sign -> k */
    {"\xE2\x84\xA6", "\xCF\x89"},                                                 /* Ohm sign -> ω */
    {"\xC8\xBA", "\xE2\xB1\xA5"},                                                 /* Ⱥ (2 bytes) -> ⱥ (3 bytes) */
    {"\xCE\xA3", "\xCF\x83"},                                                     /* Σ alone -> σ */
    {"\xCE\x9F\xCE\x94\xCE\x9F\xCE\xA3", "\xCE\xBF\xCE\xB4\xCE\xBF\xCF\x82"},     /* ΟΔΟΣ -> οδος (final sigma) */
    {"\xCE\x9F\xCE\xA3 \xCE\x9F", "\xCE\xBF\xCF\x82 \xCE\xBF"},                   /* final before a space */
    {"\xCE\x9F\xCE\xA3\xCE\x9F", "\xCE\xBF\xCF\x83\xCE\xBF"},                     /* not final inside a word */
    {"\xCE\x9F\xCE\xA3'", "\xCE\xBF\xCF\x82'"},                                   /* an apostrophe is case-ignorable */
    {"\xCE\x9F\xCE\xA3'\xCE\x9F", "\xCE\xBF\xCF\x83'\xCE\xBF"},                   /* ... and skipped looking ahead */
    {"\xCE\x9F'\xCE\xA3", "\xCE\xBF'\xCF\x82"},                                   /* ... and looking back */
    {"1\xCE\xA3", "1\xCF\x83"},                                                   /* after a digit: not final */
    {"\xCE\xA3\xCE\xA3", "\xCF\x83\xCF\x82"},
    {"\xD0\x9C\xD0\x9E\xD0\xA1\xD0\x9A\xD0\x92\xD0\x90", "\xD0\xBC\xD0\xBE\xD1\x81\xD0\xBA\xD0\xB2\xD0\xB0"}, /* МОСКВА */
    {"\xF0\x90\x90\x80", "\xF0\x90\x90\xA8"},                                     /* Deseret 𐐀 -> 𐐨 (4 bytes) */
    {"\xEF\xBC\xA1", "\xEF\xBD\x81"},                                             /* fullwidth Ａ -> ａ */
    {"A\xFF" "B\xC3", "a\xFF" "b\xC3"},                                           /* invalid bytes kept */
    {"\xC0\x81\xED\xA0\x80", "\xC0\x81\xED\xA0\x80"},                             /* overlong, surrogate: kept */
};
/* clang-format on */

START_TEST(lower)
{
    char out[64];
    size_t n = dps_unicase_lower(lowers[_i].in, strlen(lowers[_i].in), out, sizeof(out));
    char *dup = dps_unicase_lower_dup(lowers[_i].in);

    ck_assert_uint_eq(n, strlen(lowers[_i].want));
    ck_assert_str_eq(out, lowers[_i].want);
    ck_assert_str_eq(dup, lowers[_i].want);
    free(dup);
}
END_TEST

START_TEST(truncation)
{
    char out[8];

    /* "İİİ" needs 9 bytes: only whole code points that fit are written, always NUL-terminated */
    ck_assert_uint_eq(dps_unicase_lower("\xC4\xB0\xC4\xB0\xC4\xB0", 6, out, sizeof(out)), 9);
    ck_assert_str_eq(out, "i\xCC\x87i\xCC\x87i");
    ck_assert_uint_eq(dps_unicase_lower("ABC", 3, out, 3), 3);
    ck_assert_str_eq(out, "ab");
    ck_assert_uint_eq(dps_unicase_lower("ABC", 3, out, 4), 3);
    ck_assert_str_eq(out, "abc");
    ck_assert_uint_eq(dps_unicase_lower("ABC", 3, NULL, 0), 3);
    ck_assert_uint_eq(dps_unicase_lower("ABCDEF", 3, out, sizeof(out)), 3); /* len bounds the input */
    ck_assert_str_eq(out, "abc");
}
END_TEST

/* clang-format off */
static const struct {
    const char *a, *b;
    int want;
} eqs[] = {
    {"orders-db", "Orders-DB", 1},
    {"", "", 1},
    {"a", "", 0},
    {"", "a", 0},
    {"abc", "abd", 0},
    {"\xC3\x84pfel", "\xC3\xA4PFEL", 1},
    {"\xC4\xB0", "i\xCC\x87", 1},              /* İ and i + dot */
    {"\xC4\xB0", "i", 0},
    {"\xC4\xB0x", "I\xCC\x87X", 1},
    {"\xE2\x84\xAA", "K", 1},                  /* Kelvin sign and K */
    {"STRASSE", "stra\xC3\x9F" "e", 0},        /* lower-casing, not case folding */
    {"\xCE\x9F\xCE\x94\xCE\x9F\xCE\xA3", "\xCE\xBF\xCE\xB4\xCE\xBF\xCF\x82", 1}, /* ΟΔΟΣ / οδος */
    {"\xCE\x9F\xCE\x94\xCE\x9F\xCE\xA3", "\xCE\xBF\xCE\xB4\xCE\xBF\xCF\x83", 0}, /* ... not οδοσ */
    {"\xFF", "\xFF", 1},
    {"\xFF", "\xFE", 0},
    {"\xC3", "\xC3\x84", 0},
};
/* clang-format on */

START_TEST(eq)
{
    ck_assert_msg(dps_unicase_eq(eqs[_i].a, eqs[_i].b) == eqs[_i].want, "\"%s\" vs \"%s\"", eqs[_i].a, eqs[_i].b);
    ck_assert_msg(dps_unicase_eq(eqs[_i].b, eqs[_i].a) == eqs[_i].want, "\"%s\" vs \"%s\" (swapped)", eqs[_i].b, eqs[_i].a);
}
END_TEST

START_TEST(eq_null)
{
    ck_assert_int_eq(dps_unicase_eq(NULL, NULL), 1);
    ck_assert_int_eq(dps_unicase_eq(NULL, ""), 0);
    ck_assert_int_eq(dps_unicase_eq("", NULL), 0);
}
END_TEST

/* Linear time on many sigmas followed by long runs of case-ignorable characters. */
START_TEST(sigma_runs)
{
    size_t n = 0, cap = 1 << 20;
    char *s = malloc(cap + 1), *out = malloc(cap * 2);

    while (n + 2 + 64 < cap) {
        memcpy(s + n, "\xCE\xA3", 2), n += 2;
        memset(s + n, '\'', 64), n += 64;
    }
    s[n] = '\0';
    ck_assert_uint_eq(dps_unicase_lower(s, n, out, cap * 2), n);
    ck_assert_int_eq(dps_unicase_eq(s, out), 1);
    free(s);
    free(out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("unicase");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, lower, 0, sizeof(lowers) / sizeof(lowers[0]));
    tcase_add_test(tc, truncation);
    tcase_add_loop_test(tc, eq, 0, sizeof(eqs) / sizeof(eqs[0]));
    tcase_add_test(tc, eq_null);
    tcase_add_test(tc, sigma_runs);
    suite_add_tcase(s, tc);
    return dps_check_run(s);
}
