/* Unit tests of the schema health format (polling.md §2.2): body shape, root resolution, every field
 * mapping and transform, warnings (exact texts, de-duplicated), dot paths, malformed bodies. */
#include "depsera/poll_parse.h"

#include <check.h>

#include "poll_render.h"
#include "unit.h"
#include <stdlib.h>
#include <string.h>

/* A config with root "c" and the given field mappings besides name ("n") and healthy ("h"). */
#define CFG(extra) "{\"root\":\"c\",\"fields\":{\"name\":\"n\",\"healthy\":\"h\"" extra "}}"
#define BASE CFG("")
#define OKDEP "x type=other h=1 st=0 code=200 lat=0 skip=0"
#define BADDEP "x type=other h=0 st=2 code=500 lat=0 skip=0"

/* clang-format off */
static const struct {
    const char *what, *config, *body;
    const char *error;    /* NULL: success; else the failure message (prefix) */
    const char *want;     /* rendered statuses */
    const char *warnings; /* rendered warnings */
} cases[] = {
    /* 1. body shape */
    {"number body", BASE, "5", "Invalid response: expected object", NULL, NULL},
    {"string body", BASE, "\"c\"", "Invalid response: expected object", NULL, NULL},
    {"null body", BASE, "null", "Invalid response: expected object", NULL, NULL},
    {"boolean body", BASE, "true", "Invalid response: expected object", NULL, NULL},
    {"not JSON", BASE, "<html>", "Invalid JSON response: ", NULL, NULL},
    {"empty body", BASE, "", "Invalid JSON response: ", NULL, NULL},
    {"config without root", "{\"fields\":{\"name\":\"n\",\"healthy\":\"h\"}}", "{}", "Schema mapping error: invalid schema_config", NULL, NULL},
    {"config without fields", "{\"root\":\"c\"}", "{}", "Schema mapping error: invalid schema_config", NULL, NULL},
    {"config without name", "{\"root\":\"c\",\"fields\":{\"healthy\":\"h\"}}", "{}", "Schema mapping error: invalid schema_config", NULL, NULL},
    /* 2. root */
    {"root absent", BASE, "{\"d\":[]}", "Schema mapping error: root path \"c\" did not resolve to an array or object", NULL, NULL},
    {"root a string", BASE, "{\"c\":\"x\"}", "Schema mapping error: root path \"c\" did not resolve to an array or object", NULL, NULL},
    {"root null", BASE, "{\"c\":null}", "Schema mapping error: root path \"c\" did not resolve to an array or object", NULL, NULL},
    {"root through a non-object", "{\"root\":\"a.b\",\"fields\":{\"name\":\"n\",\"healthy\":\"h\"}}", "{\"a\":\"s\"}",
     "Schema mapping error: root path \"a.b\" did not resolve to an array or object", NULL, NULL},
    {"root on an array body", BASE, "[{\"n\":\"x\",\"h\":true}]", "Schema mapping error: root path \"c\" did not resolve to an array or object", NULL, NULL},
    {"root nested", "{\"root\":\"data.checks\",\"fields\":{\"name\":\"n\",\"healthy\":\"h\"}}",
     "{\"data\":{\"checks\":[{\"n\":\"x\",\"h\":true}]}}", NULL, OKDEP, ""},
    {"root through an array index", "{\"root\":\"data.1\",\"fields\":{\"name\":\"n\",\"healthy\":\"h\"}}",
     "{\"data\":[[],[{\"n\":\"x\",\"h\":true}]]}", NULL, OKDEP, ""},
    {"root index with a leading zero", "{\"root\":\"data.01\",\"fields\":{\"name\":\"n\",\"healthy\":\"h\"}}",
     "{\"data\":[[],[{\"n\":\"x\",\"h\":true}]]}", "Schema mapping error: root path \"data.01\" did not resolve to an array or object", NULL, NULL},
    {"empty root array", BASE, "{\"c\":[]}", NULL, "", ""},
    {"empty root object", BASE, "{\"c\":{}}", NULL, "", ""},
    /* 3. non-object items */
    {"array: non-object items", BASE, "{\"c\":[1,{\"n\":\"x\",\"h\":true},null,[],\"s\"]}", NULL, OKDEP,
     "Item at index 0: non-object item in response array | Item at index 2: non-object item in response array | "
     "Item at index 3: non-object item in response array | Item at index 4: non-object item in response array"},
    {"object-keyed: non-object value", CFG(""), "{\"c\":{\"db\":true,\"x\":{\"n\":\"x\",\"h\":true}}}", NULL, OKDEP,
     "Dependency \"db\": non-object value"},
    /* 4. names */
    {"$key on an object root", "{\"root\":\"c\",\"fields\":{\"name\":\"$key\",\"healthy\":\"h\"}}",
     "{\"c\":{\"x\":{\"h\":true},\"y\":{\"h\":\"down\"}}}", NULL, OKDEP "; y type=other h=0 st=2 code=500 lat=0 skip=0", ""},
    {"$key on an array root is a member name", "{\"root\":\"c\",\"fields\":{\"name\":\"$key\",\"healthy\":\"h\"}}",
     "{\"c\":[{\"$key\":\"x\",\"h\":true},{\"h\":true}]}", NULL, OKDEP, "Item index 1: \"name\" field is missing or not a string"},
    {"$key name trimmed", "{\"root\":\"c\",\"fields\":{\"name\":\"$key\",\"healthy\":\"h\"}}", "{\"c\":{\" x \":{\"h\":true}}}", NULL, OKDEP, ""},
    {"$key blank", "{\"root\":\"c\",\"fields\":{\"name\":\"$key\",\"healthy\":\"h\"}}", "{\"c\":{\" \":{\"h\":true}}}", NULL, "",
     "Item \" \": \"name\" field is missing or not a string"},
    {"name missing (array)", BASE, "{\"c\":[{\"h\":true}]}", NULL, "", "Item index 0: \"name\" field is missing or not a string"},
    {"name number (array)", BASE, "{\"c\":[{\"n\":5,\"h\":true}]}", NULL, "", "Item index 0: \"name\" field is missing or not a string"},
    {"name blank (array)", BASE, "{\"c\":[{\"n\":\" \\t\",\"h\":true}]}", NULL, "", "Item index 0: \"name\" field is missing or not a string"},
    {"name missing (object-keyed)", BASE, "{\"c\":{\"k\":{\"h\":true}}}", NULL, "", "Item \"k\": \"name\" field is missing or not a string"},
    {"name trimmed", BASE, "{\"c\":[{\"n\":\"\\u00a0 x\\n\",\"h\":true}]}", NULL, OKDEP, ""},
    {"name nested path", "{\"root\":\"c\",\"fields\":{\"name\":\"meta.id\",\"healthy\":\"h\"}}",
     "{\"c\":[{\"meta\":{\"id\":\"x\"},\"h\":true}]}", NULL, OKDEP, ""},
    {"name as a comparison is a boolean", "{\"root\":\"c\",\"fields\":{\"name\":{\"field\":\"n\",\"equals\":\"x\"},\"healthy\":\"h\"}}",
     "{\"c\":[{\"n\":\"x\",\"h\":true}]}", NULL, "", "Item index 0: \"name\" field is missing or not a string"},
    /* 5-6. skipped and healthy (string mapping) */
    {"healthy true", BASE, "{\"c\":[{\"n\":\"x\",\"h\":true}]}", NULL, OKDEP, ""},
    {"healthy false", BASE, "{\"c\":[{\"n\":\"x\",\"h\":false}]}", NULL, BADDEP, ""},
    {"healthy strings: true ok healthy up", BASE,
     "{\"c\":[{\"n\":\"a\",\"h\":\"TRUE\"},{\"n\":\"b\",\"h\":\"Ok\"},{\"n\":\"c\",\"h\":\"healthy\"},{\"n\":\"d\",\"h\":\"UP\"}]}", NULL,
     "a type=other h=1 st=0 code=200 lat=0 skip=0; b type=other h=1 st=0 code=200 lat=0 skip=0; "
     "c type=other h=1 st=0 code=200 lat=0 skip=0; d type=other h=1 st=0 code=200 lat=0 skip=0", ""},
    {"healthy strings: false error unhealthy down critical", BASE,
     "{\"c\":[{\"n\":\"a\",\"h\":\"False\"},{\"n\":\"b\",\"h\":\"ERROR\"},{\"n\":\"c\",\"h\":\"unhealthy\"},{\"n\":\"d\",\"h\":\"Down\"},"
     "{\"n\":\"e\",\"h\":\"CRITICAL\"}]}", NULL,
     "a type=other h=0 st=2 code=500 lat=0 skip=0; b type=other h=0 st=2 code=500 lat=0 skip=0; "
     "c type=other h=0 st=2 code=500 lat=0 skip=0; d type=other h=0 st=2 code=500 lat=0 skip=0; "
     "e type=other h=0 st=2 code=500 lat=0 skip=0", ""},
    {"healthy Unicode lower-casing (KELVIN SIGN)", BASE, "{\"c\":[{\"n\":\"x\",\"h\":\"O\\u212a\"}]}", NULL, OKDEP, ""},
    {"healthy other string", BASE, "{\"c\":[{\"n\":\"x\",\"h\":\"degraded\"}]}", NULL, "",
     "Dependency \"x\": \"healthy\" field could not be resolved"},
    {"healthy padded string", BASE, "{\"c\":[{\"n\":\"x\",\"h\":\" up\"}]}", NULL, "", "Dependency \"x\": \"healthy\" field could not be resolved"},
    {"healthy number", BASE, "{\"c\":[{\"n\":\"x\",\"h\":1}]}", NULL, "", "Dependency \"x\": \"healthy\" field could not be resolved"},
    {"healthy absent", BASE, "{\"c\":[{\"n\":\" x \"}]}", NULL, "", "Dependency \"x\": \"healthy\" field could not be resolved"},
    {"healthy null", BASE, "{\"c\":[{\"n\":\"x\",\"h\":null}]}", NULL, "", "Dependency \"x\": \"healthy\" field could not be resolved"},
    {"skipped true", CFG(",\"skipped\":\"s\""), "{\"c\":[{\"n\":\"x\",\"s\":true}]}", NULL, "x type=other h=1 st=0 code=200 lat=0 skip=1", ""},
    {"skipped overrides healthy", CFG(",\"skipped\":\"s\""), "{\"c\":[{\"n\":\"x\",\"h\":false,\"s\":\"UP\"}]}", NULL,
     "x type=other h=1 st=0 code=200 lat=0 skip=1", ""},
    {"skipped false", CFG(",\"skipped\":\"s\""), "{\"c\":[{\"n\":\"x\",\"h\":false,\"s\":\"no\"}]}", NULL, BADDEP, ""},
    {"skipped comparison", CFG(",\"skipped\":{\"field\":\"st\",\"equals\":\"SKIPPED\"}"),
     "{\"c\":[{\"n\":\"x\",\"st\":\"skipped\"},{\"n\":\"y\",\"h\":true,\"st\":\"ran\"}]}", NULL,
     "x type=other h=1 st=0 code=200 lat=0 skip=1; y type=other h=1 st=0 code=200 lat=0 skip=0", ""},
    /* 6. healthy (comparison mapping) */
    {"comparison equal", "{\"root\":\"c\",\"fields\":{\"name\":\"n\",\"healthy\":{\"field\":\"status\",\"equals\":\"UP\"}}}",
     "{\"c\":[{\"n\":\"x\",\"status\":\"up\"},{\"n\":\"y\",\"status\":\"DOWN\"}]}", NULL,
     OKDEP "; y type=other h=0 st=2 code=500 lat=0 skip=0", ""},
    {"comparison of a number", "{\"root\":\"c\",\"fields\":{\"name\":\"n\",\"healthy\":{\"field\":\"code\",\"equals\":\"200\"}}}",
     "{\"c\":[{\"n\":\"x\",\"code\":200},{\"n\":\"y\",\"code\":200.5},{\"n\":\"z\",\"code\":2e2}]}", NULL,
     OKDEP "; y type=other h=0 st=2 code=500 lat=0 skip=0; z type=other h=1 st=0 code=200 lat=0 skip=0", ""},
    {"comparison of JS number spellings", "{\"root\":\"c\",\"fields\":{\"name\":\"n\",\"healthy\":{\"field\":\"v\",\"equals\":\"1E+21\"}}}",
     "{\"c\":[{\"n\":\"x\",\"v\":1e21},{\"n\":\"y\",\"v\":1000000000000000000000}]}", NULL,
     OKDEP "; y type=other h=1 st=0 code=200 lat=0 skip=0", ""},
    {"comparison of 0.1 and 1e-7", "{\"root\":\"c\",\"fields\":{\"name\":\"n\",\"healthy\":{\"field\":\"v\",\"equals\":\"0.1\"}}}",
     "{\"c\":[{\"n\":\"x\",\"v\":0.1},{\"n\":\"y\",\"v\":1e-7},{\"n\":\"z\",\"v\":-0}]}", NULL,
     OKDEP "; y type=other h=0 st=2 code=500 lat=0 skip=0; z type=other h=0 st=2 code=500 lat=0 skip=0", ""},
    {"JS number 1e-7", "{\"root\":\"c\",\"fields\":{\"name\":\"n\",\"healthy\":{\"field\":\"v\",\"equals\":\"1e-7\"}}}",
     "{\"c\":[{\"n\":\"x\",\"v\":1e-7}]}", NULL, OKDEP, ""},
    {"JS number 0.000001", "{\"root\":\"c\",\"fields\":{\"name\":\"n\",\"healthy\":{\"field\":\"v\",\"equals\":\"0.000001\"}}}",
     "{\"c\":[{\"n\":\"x\",\"v\":0.000001}]}", NULL, OKDEP, ""},
    {"JS number 123456789012345680000", "{\"root\":\"c\",\"fields\":{\"name\":\"n\",\"healthy\":{\"field\":\"v\",\"equals\":\"123456789012345680000\"}}}",
     "{\"c\":[{\"n\":\"x\",\"v\":1.2345678901234568e20}]}", NULL, OKDEP, ""},
    {"JS number -1.5", "{\"root\":\"c\",\"fields\":{\"name\":\"n\",\"healthy\":{\"field\":\"v\",\"equals\":\"-1.5\"}}}",
     "{\"c\":[{\"n\":\"x\",\"v\":-1.5}]}", NULL, OKDEP, ""},
    {"JS number 100", "{\"root\":\"c\",\"fields\":{\"name\":\"n\",\"healthy\":{\"field\":\"v\",\"equals\":\"100\"}}}",
     "{\"c\":[{\"n\":\"x\",\"v\":1e2}]}", NULL, OKDEP, ""},
    {"JS number 1.5e-10", "{\"root\":\"c\",\"fields\":{\"name\":\"n\",\"healthy\":{\"field\":\"v\",\"equals\":\"1.5e-10\"}}}",
     "{\"c\":[{\"n\":\"x\",\"v\":1.5e-10}]}", NULL, OKDEP, ""},
    {"JS number -2.5e+300", "{\"root\":\"c\",\"fields\":{\"name\":\"n\",\"healthy\":{\"field\":\"v\",\"equals\":\"-2.5e+300\"}}}",
     "{\"c\":[{\"n\":\"x\",\"v\":-2.5e+300}]}", NULL, OKDEP, ""},
    {"JS number 123.456", "{\"root\":\"c\",\"fields\":{\"name\":\"n\",\"healthy\":{\"field\":\"v\",\"equals\":\"123.456\"}}}",
     "{\"c\":[{\"n\":\"x\",\"v\":123.456}]}", NULL, OKDEP, ""},
    {"JS number 5e-324", "{\"root\":\"c\",\"fields\":{\"name\":\"n\",\"healthy\":{\"field\":\"v\",\"equals\":\"5e-324\"}}}",
     "{\"c\":[{\"n\":\"x\",\"v\":5e-324}]}", NULL, OKDEP, ""},
    {"JS number 1.7976931348623157e+308", "{\"root\":\"c\",\"fields\":{\"name\":\"n\",\"healthy\":{\"field\":\"v\",\"equals\":\"1.7976931348623157e+308\"}}}",
     "{\"c\":[{\"n\":\"x\",\"v\":1.7976931348623157e308}]}", NULL, OKDEP, ""},
    {"comparison of a boolean", "{\"root\":\"c\",\"fields\":{\"name\":\"n\",\"healthy\":{\"field\":\"ok\",\"equals\":\"TRUE\"}}}",
     "{\"c\":[{\"n\":\"x\",\"ok\":true},{\"n\":\"y\",\"ok\":false}]}", NULL, OKDEP "; y type=other h=0 st=2 code=500 lat=0 skip=0", ""},
    {"comparison of an array and an object", "{\"root\":\"c\",\"fields\":{\"name\":\"n\",\"healthy\":{\"field\":\"v\",\"equals\":\"1,,a,2\"}}}",
     "{\"c\":[{\"n\":\"x\",\"v\":[1,null,\"a\",[2]]},{\"n\":\"y\",\"v\":{}}]}", NULL, OKDEP "; y type=other h=0 st=2 code=500 lat=0 skip=0", ""},
    {"comparison with [object Object]", "{\"root\":\"c\",\"fields\":{\"name\":\"n\",\"healthy\":{\"field\":\"v\",\"equals\":\"[object object]\"}}}",
     "{\"c\":[{\"n\":\"x\",\"v\":{\"a\":1}}]}", NULL, OKDEP, ""},
    {"comparison absent or null", "{\"root\":\"c\",\"fields\":{\"name\":\"n\",\"healthy\":{\"field\":\"v\",\"equals\":\"null\"}}}",
     "{\"c\":[{\"n\":\"x\"},{\"n\":\"y\",\"v\":null}]}", NULL, "",
     "Dependency \"x\": \"healthy\" field could not be resolved | Dependency \"y\": \"healthy\" field could not be resolved"},
    {"comparison long value", "{\"root\":\"c\",\"fields\":{\"name\":\"n\",\"healthy\":{\"field\":\"v\",\"equals\":\"a\"}}}",
     "{\"c\":[{\"n\":\"x\",\"v\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}]}", NULL, BADDEP, ""},
    /* 7. the other fields */
    {"latency number", CFG(",\"latency\":\"t.ms\""), "{\"c\":[{\"n\":\"x\",\"h\":true,\"t\":{\"ms\":12.5}}]}", NULL,
     "x type=other h=1 st=0 code=200 lat=12.5 skip=0", ""},
    {"latency string", CFG(",\"latency\":\"t\""), "{\"c\":[{\"n\":\"x\",\"h\":true,\"t\":\"12\"}]}", NULL, OKDEP, ""},
    {"latency comparison", CFG(",\"latency\":{\"field\":\"t\",\"equals\":\"12\"}"), "{\"c\":[{\"n\":\"x\",\"h\":true,\"t\":12}]}", NULL, OKDEP, ""},
    {"texts", CFG(",\"impact\":\"i\",\"description\":\"d\",\"errorMessage\":\"m\",\"type\":\"t\""),
     "{\"c\":[{\"n\":\"x\",\"h\":true,\"i\":\"I\",\"d\":\"D\",\"m\":\"M\",\"t\":\" db \"}]}", NULL,
     "x type= db  h=1 st=0 code=200 lat=0 skip=0 desc=D impact=I msg=M", ""},
    {"texts not strings", CFG(",\"impact\":\"i\",\"description\":\"d\",\"errorMessage\":\"m\",\"type\":\"t\""),
     "{\"c\":[{\"n\":\"x\",\"h\":true,\"i\":1,\"d\":null,\"m\":{},\"t\":[\"db\"]}]}", NULL, OKDEP, ""},
    {"type blank", CFG(",\"type\":\"t\""), "{\"c\":[{\"n\":\"x\",\"h\":true,\"t\":\" \"}]}", NULL, OKDEP, ""},
    {"comparisons on texts are ignored",
     CFG(",\"impact\":{\"field\":\"i\",\"equals\":\"I\"},\"description\":{\"field\":\"d\",\"equals\":\"D\"},\"type\":{\"field\":\"t\",\"equals\":\"T\"}"),
     "{\"c\":[{\"n\":\"x\",\"h\":true,\"i\":\"I\",\"d\":\"D\",\"t\":\"T\"}]}", NULL, OKDEP, ""},
    {"checkDetails and contact objects", CFG(",\"checkDetails\":\"det\",\"contact\":\"own.er\""),
     "{\"c\":[{\"n\":\"x\",\"h\":true,\"det\":{\"a\":[1]},\"own\":{\"er\":{\"team\":\"t\"}}}]}", NULL,
     "x type=other h=1 st=0 code=200 lat=0 skip=0 contact={\"team\":\"t\"} details={\"a\":[1]}", ""},
    {"checkDetails and contact arrays are not objects", CFG(",\"checkDetails\":\"det\",\"contact\":\"own\""),
     "{\"c\":[{\"n\":\"x\",\"h\":true,\"det\":[1],\"own\":\"me\"}]}", NULL, OKDEP, ""},
    {"error any present value", CFG(",\"error\":\"e\""),
     "{\"c\":[{\"n\":\"a\",\"h\":false,\"e\":null},{\"n\":\"b\",\"h\":false,\"e\":\"boom\"},{\"n\":\"c\",\"h\":false},{\"n\":\"d\",\"h\":false,\"e\":[0]}]}",
     NULL, "a type=other h=0 st=2 code=500 lat=0 skip=0 error=null; b type=other h=0 st=2 code=500 lat=0 skip=0 error=\"boom\"; "
     "c type=other h=0 st=2 code=500 lat=0 skip=0; d type=other h=0 st=2 code=500 lat=0 skip=0 error=[0]", ""},
    /* dot paths */
    {"path through a non-object is absent", CFG(",\"latency\":\"t.ms\""), "{\"c\":[{\"n\":\"x\",\"h\":true,\"t\":5}]}", NULL, OKDEP, ""},
    {"path through null is absent", CFG(",\"latency\":\"t.ms\""), "{\"c\":[{\"n\":\"x\",\"h\":true,\"t\":null}]}", NULL, OKDEP, ""},
    {"path through an array index", CFG(",\"latency\":\"t.1\""), "{\"c\":[{\"n\":\"x\",\"h\":true,\"t\":[1,2]}]}", NULL,
     "x type=other h=1 st=0 code=200 lat=2 skip=0", ""},
    {"path index out of range", CFG(",\"latency\":\"t.2\""), "{\"c\":[{\"n\":\"x\",\"h\":true,\"t\":[1,2]}]}", NULL, OKDEP, ""},
    {"path with an empty segment", CFG(",\"latency\":\"t..v\""), "{\"c\":[{\"n\":\"x\",\"h\":true,\"t\":{\"\":{\"v\":3}}}]}", NULL,
     "x type=other h=1 st=0 code=200 lat=3 skip=0", ""},
    {"member names with dots cannot be reached", CFG(",\"latency\":\"a.b\""), "{\"c\":[{\"n\":\"x\",\"h\":true,\"a.b\":3}]}", NULL, OKDEP, ""},
    /* warnings de-duplicated, first-seen order; repeated names */
    {"warnings de-duplicated", BASE, "{\"c\":[{\"n\":\"x\"},{\"n\":\"y\",\"h\":true},{\"n\":\"x\"},5]}", NULL,
     "y type=other h=1 st=0 code=200 lat=0 skip=0",
     "Dependency \"x\": \"healthy\" field could not be resolved | Item at index 3: non-object item in response array"},
    {"a repeated name: last wins, first place", BASE, "{\"c\":[{\"n\":\"x\",\"h\":true},{\"n\":\"y\",\"h\":true},{\"n\":\" x\",\"h\":false}]}",
     NULL, BADDEP "; y type=other h=1 st=0 code=200 lat=0 skip=0", ""},
    {"integer beyond int64", CFG(",\"latency\":\"t\""), "{\"c\":[{\"n\":\"x\",\"h\":true,\"t\":99999999999999999999}]}", NULL,
     "x type=other h=1 st=0 code=200 lat=1e+20 skip=0", ""},
};
/* clang-format on */

START_TEST(schema_table)
{
    dps_poll_result_t r;
    char got[4096];
    int rc = dps_poll_parse_schema(cases[_i].body, strlen(cases[_i].body), cases[_i].config, &r);

    if (cases[_i].error != NULL) {
        ck_assert_msg(rc == -1, "%s: expected failure", cases[_i].what);
        ck_assert_msg(strncmp(r.error, cases[_i].error, strlen(cases[_i].error)) == 0, "%s: error %s", cases[_i].what, r.error);
        ck_assert_uint_eq(r.n_deps, 0);
        ck_assert_uint_eq(r.n_warnings, 0);
    } else {
        ck_assert_msg(rc == 0, "%s: failed: %s", cases[_i].what, r.error);
        poll_render(&r, got, sizeof(got));
        ck_assert_msg(strcmp(got, cases[_i].want) == 0, "%s:\n got  %s\n want %s", cases[_i].what, got, cases[_i].want);
        poll_render_warnings(&r, got, sizeof(got));
        ck_assert_msg(strcmp(got, cases[_i].warnings) == 0, "%s: warnings\n got  %s\n want %s", cases[_i].what, got,
                      cases[_i].warnings);
    }
    dps_poll_result_free(&r);
}
END_TEST

/* No config at all is a failure of the schema parser itself (the dispatch never calls it so). */
START_TEST(schema_null_config)
{
    dps_poll_result_t r;

    ck_assert_int_eq(dps_poll_parse_schema("{}", 2, NULL, &r), -1);
    ck_assert_str_eq(r.error, "Schema mapping error: invalid schema_config");
    dps_poll_result_free(&r);
}
END_TEST

/* Many items, many identical warnings: linear, one warning per distinct text. */
START_TEST(schema_many)
{
    size_t n = 0, cap = 64 * 40000;
    char *body = malloc(cap);
    dps_poll_result_t r;

    n += (size_t)snprintf(body, cap, "{\"c\":[");
    for (int i = 0; i < 40000; i++)
        n += (size_t)snprintf(body + n, cap - n, "%s{\"n\":\"d%d\",\"h\":%s}", i ? "," : "", i % 20000,
                              i % 3 ? "\"up\"" : "\"meh\"");
    n += (size_t)snprintf(body + n, cap - n, "]}");
    ck_assert_int_eq(dps_poll_parse_schema(body, n, CFG(""), &r), 0);
    /* each name dK comes twice (i = K, K + 20000) and one of the two is always resolved */
    ck_assert_uint_eq(r.n_deps, 20000);
    /* distinct unresolved names: i % 3 == 0 below 20000 (6667), K + 20000 with K % 3 == 1 (6667) */
    ck_assert_uint_eq(r.n_warnings, 13334);
    dps_poll_result_free(&r);
    free(body);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("poll_schema");
    TCase *tc = tcase_create("schema");

    tcase_add_loop_test(tc, schema_table, 0, (int)(sizeof(cases) / sizeof(cases[0])));
    tcase_add_test(tc, schema_null_config);
    tcase_add_test(tc, schema_many);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return dps_check_run(suite());
}
