/* Unit tests of JSON text written from query results: escaping, typed columns, timestamps, growth. */
#include "depsera/jsonbuf.h"

#include <check.h>
#include <jansson.h>
#include <string.h>

#include "unit.h"

/* A one-row result with the given column names, type oids and values (NULL = SQL NULL), built without
 * a connection. */
static PGresult *result(int n, const char *const *names, const Oid *types, const char *const *values)
{
    PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    PGresAttDesc attrs[16];

    memset(attrs, 0, sizeof(attrs));
    for (int i = 0; i < n; i++) {
        attrs[i].name = (char *)names[i];
        attrs[i].typid = types[i];
        attrs[i].typlen = -1;
        attrs[i].atttypmod = -1;
    }
    ck_assert(PQsetResultAttrs(res, n, attrs));
    for (int i = 0; i < n; i++)
        ck_assert(PQsetvalue(res, 0, i, (char *)values[i], values[i] != NULL ? (int)strlen(values[i]) : -1));
    return res;
}

static char *text_of(dps_jsonbuf_t *b)
{
    dps_jsonbuf_raw(b, "", 1); /* NUL-terminate */
    ck_assert(!b->oom);
    return b->data;
}

static const struct {
    const char *in, *out;
} strings[] = {
    {"plain", "\"plain\""},
    {"", "\"\""},
    {"quote\" back\\slash", "\"quote\\\" back\\\\slash\""},
    {"nl\ncr\rtab\tbs\bff\f", "\"nl\\ncr\\rtab\\tbs\\bff\\f\""},
    {"\x01\x1f", "\"\\u0001\\u001f\""},
    {"é😀 / \xe2\x80\xa8", "\"é😀 / \xe2\x80\xa8\""},
    {"'; DROP TABLE x; --", "\"'; DROP TABLE x; --\""},
};

START_TEST(string_escaping)
{
    dps_jsonbuf_t b;
    json_t *parsed;

    dps_jsonbuf_init(&b, 0);
    dps_jsonbuf_string(&b, strings[_i].in, strlen(strings[_i].in));
    ck_assert_str_eq(text_of(&b), strings[_i].out);
    parsed = json_loads(b.data, JSON_DECODE_ANY, NULL);
    ck_assert_ptr_nonnull(parsed);
    ck_assert_str_eq(json_string_value(parsed), strings[_i].in);
    json_decref(parsed);
    dps_jsonbuf_free(&b);
    dps_jsonbuf_free(&b);
}
END_TEST

/* Every byte value at every offset of a 24-byte run of plain text, so that the 8-byte fast path and
 * the byte loop both meet it: the text must parse back to the same bytes (UTF-8 aside: bytes above
 * 0x7f are checked to pass through unchanged). */
START_TEST(escaping_every_byte_at_every_offset)
{
    for (int c = 1; c < 256; c++) {
        for (int at = 0; at < 24; at++) {
            char in[25];
            dps_jsonbuf_t b;
            json_t *parsed;

            memset(in, 'a', 24);
            in[24] = '\0';
            in[at] = (char)c;
            dps_jsonbuf_init(&b, 0);
            dps_jsonbuf_string(&b, in, 24);
            text_of(&b);
            if (c < 0x80) {
                parsed = json_loads(b.data, JSON_DECODE_ANY, NULL);
                ck_assert_msg(parsed != NULL, "byte %d at %d: %s", c, at, b.data);
                ck_assert_str_eq(json_string_value(parsed), in);
                json_decref(parsed);
            } else {
                ck_assert_uint_eq(b.len, 24 + 2 + 1);
                ck_assert(memcmp(b.data + 1, in, 24) == 0);
            }
            dps_jsonbuf_free(&b);
        }
    }
}
END_TEST

/* One column of each kind, as dps_row_json would type it. */
static const struct {
    Oid type;
    const char *value, *out;
} values[] = {
    {16, "t", "true"},
    {16, "f", "false"},
    {16, NULL, "null"},
    {23, "30000", "30000"},
    {20, "-9007199254740993", "-9007199254740993"},
    {701, "12.5", "12.5"},
    {701, "NaN", "null"},
    {701, "Infinity", "null"},
    {701, "-Infinity", "null"},
    {1700, "1e+20", "1e+20"},
    {3802, "{\"a\": [1, \"x\"]}", "{\"a\": [1, \"x\"]}"},
    {114, "\"str\"", "\"str\""},
    {1184, "2026-04-07 02:10:00.123456+00", "\"2026-04-07T02:10:00.123Z\""},
    {1184, "2026-04-07 02:10:00.9999+00", "\"2026-04-07T02:10:00.999Z\""},
    {1184, "2026-04-07 02:10:00.5+00", "\"2026-04-07T02:10:00.500Z\""},
    {1184, "2026-04-07 02:10:00+00", "\"2026-04-07T02:10:00.000Z\""},
    {1184, "2026-04-07 04:10:00.25+02", "\"2026-04-07T02:10:00.250Z\""},
    {1184, "2026-04-06 21:40:00-04:30", "\"2026-04-07T02:10:00.000Z\""},
    {1184, "infinity", "\"infinity\""},
    {2950, "6c1b0e36-5f8e-4f0a-9f33-2b3f1d0f7a11", "\"6c1b0e36-5f8e-4f0a-9f33-2b3f1d0f7a11\""},
    {25, "line\nbreak", "\"line\\nbreak\""},
};

START_TEST(typed_values)
{
    const char *names[] = {"col"};
    Oid types[] = {values[_i].type};
    const char *vals[] = {values[_i].value};
    PGresult *res = result(1, names, types, vals);
    dps_jsonbuf_t b;

    dps_jsonbuf_init(&b, 8);
    dps_jsonbuf_value(&b, res, 0, 0);
    ck_assert_str_eq(text_of(&b), values[_i].out);
    dps_jsonbuf_free(&b);
    PQclear(res);
}
END_TEST

START_TEST(members_and_json)
{
    const char *names[] = {"id", "name\"x", "on", "n"};
    Oid types[] = {2950, 25, 16, 23};
    const char *vals[] = {"6c1b0e36-5f8e-4f0a-9f33-2b3f1d0f7a11", "a", NULL, "7"};
    PGresult *res = result(4, names, types, vals);
    json_t *small = json_pack("{s:i,s:[b]}", "k", 1, "l", 1);
    dps_jsonbuf_t b;

    dps_jsonbuf_init(&b, 0);
    dps_jsonbuf_lit(&b, "{");
    dps_jsonbuf_members(&b, res, 0, 1, 4);
    dps_jsonbuf_lit(&b, ",\"j\":");
    dps_jsonbuf_json(&b, small);
    dps_jsonbuf_lit(&b, ",\"z\":");
    dps_jsonbuf_json(&b, NULL);
    dps_jsonbuf_lit(&b, "}");
    ck_assert_str_eq(text_of(&b), "{\"name\\\"x\":\"a\",\"on\":null,\"n\":7,\"j\":{\"k\":1,\"l\":[true]},\"z\":null}");
    dps_jsonbuf_free(&b);
    json_decref(small);
    PQclear(res);
}
END_TEST

START_TEST(growth)
{
    dps_jsonbuf_t b;
    char chunk[1000];

    memset(chunk, 'x', sizeof(chunk));
    dps_jsonbuf_init(&b, 0);
    for (int i = 0; i < 5000; i++)
        dps_jsonbuf_raw(&b, chunk, sizeof(chunk));
    ck_assert_uint_eq(b.len, 5000000);
    ck_assert(b.cap >= b.len && !b.oom);
    ck_assert(b.data[4999999] == 'x');
    dps_jsonbuf_free(&b);
    ck_assert_ptr_null(b.data);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("jsonbuf");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, string_escaping, 0, sizeof(strings) / sizeof(strings[0]));
    tcase_add_loop_test(tc, typed_values, 0, sizeof(values) / sizeof(values[0]));
    tcase_add_test(tc, escaping_every_byte_at_every_offset);
    tcase_add_test(tc, members_and_json);
    tcase_add_test(tc, growth);
    suite_add_tcase(s, tc);
    return dps_check_run(s);
}
