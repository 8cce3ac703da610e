/* Unit tests of the effective OTLP metric and label maps (otlp-ingestion.md §4.2–§4.3). */
#include "depsera/otlp_mapping.h"

#include <check.h>

#include "unit.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONE (-1)
#define ST DPS_METRIC_STATE
#define HE DPS_METRIC_HEALTHY
#define LA DPS_METRIC_LATENCY
#define CO DPS_METRIC_CODE
#define SK DPS_METRIC_SKIPPED
#define NA DPS_LABEL_NAME
#define TY DPS_LABEL_TYPE
#define IM DPS_LABEL_IMPACT
#define DE DPS_LABEL_DESCRIPTION
#define EM DPS_LABEL_ERROR_MESSAGE

/* The five default keys of each map, then up to four extra keys of the case, with their expected targets. */
#define DM                                                                                                                         \
    "dependency.health.status", "dependency.health.healthy", "dependency.health.latency", "dependency.health.code",                \
        "dependency.health.check_skipped"
#define DL "dependency.name", "dependency.type", "dependency.impact", "dependency.description", "dependency.error_message"

/* clang-format off */
static const struct {
    const char *what;
    const char *config;
    const char *metric_keys[9];
    int metric_want[9];
    const char *label_keys[9];
    int label_want[9];
    const char *name_key;
    int custom, latency_seconds;
    double healthy_value;
} cases[] = {
    {"absent", NULL, {DM}, {ST, HE, LA, CO, SK}, {DL}, {NA, TY, IM, DE, EM}, "dependency.name", 0, 0, 1},
    {"empty text", "", {DM}, {ST, HE, LA, CO, SK}, {DL}, {NA, TY, IM, DE, EM}, "dependency.name", 0, 0, 1},
    {"not JSON", "{metrics:", {DM}, {ST, HE, LA, CO, SK}, {DL}, {NA, TY, IM, DE, EM}, "dependency.name", 0, 0, 1},
    {"an array", "[{\"metrics\":{\"x\":\"state\"}}]", {DM, "x"}, {ST, HE, LA, CO, SK, NONE}, {DL}, {NA, TY, IM, DE, EM},
     "dependency.name", 0, 0, 1},
    {"no metrics or labels: latency_unit ignored", "{\"latency_unit\":\"s\",\"healthy_value\":0}", {DM},
     {ST, HE, LA, CO, SK}, {DL}, {NA, TY, IM, DE, EM}, "dependency.name", 0, 0, 1},
    {"a SchemaMapping", "{\"root\":\"data\",\"fields\":{\"name\":\"n\",\"healthy\":\"h\"}}", {DM}, {ST, HE, LA, CO, SK}, {DL},
     {NA, TY, IM, DE, EM}, "dependency.name", 0, 0, 1},
    {"the §4.3 example", "{\"metrics\":{\"my_latency\":\"latency\"}}", {DM, "my_latency"}, {ST, HE, NONE, CO, SK, LA}, {DL},
     {NA, TY, IM, DE, EM}, "dependency.name", 1, 0, 1},
    {"a user key equal to a default key replaces its target", "{\"metrics\":{\"dependency.health.status\":\"latency\"}}", {DM},
     {LA, HE, NONE, CO, SK}, {DL}, {NA, TY, IM, DE, EM}, "dependency.name", 1, 0, 1},
    {"swapped defaults", "{\"metrics\":{\"dependency.health.code\":\"state\",\"dependency.health.status\":\"code\"}}", {DM},
     {CO, HE, LA, ST, SK}, {DL}, {NA, TY, IM, DE, EM}, "dependency.name", 1, 0, 1},
    {"every metric renamed",
     "{\"metrics\":{\"a\":\"state\",\"b\":\"healthy\",\"c\":\"latency\",\"d\":\"code\",\"e\":\"skipped\"}}", {DM, "a", "b", "c", "e"},
     {NONE, NONE, NONE, NONE, NONE, ST, HE, LA, SK}, {DL}, {NA, TY, IM, DE, EM}, "dependency.name", 1, 0, 1},
    {"name label renamed", "{\"labels\":{\"svc\":\"name\"}}", {DM}, {ST, HE, LA, CO, SK}, {DL, "svc"},
     {NONE, TY, IM, DE, EM, NA}, "svc", 1, 0, 1},
    {"a default key given the name target", "{\"labels\":{\"dependency.type\":\"name\"}}", {DM}, {ST, HE, LA, CO, SK}, {DL},
     {NONE, NA, IM, DE, EM}, "dependency.type", 1, 0, 1},
    {"name moved, the freed default key reused", "{\"labels\":{\"dependency.name\":\"type\",\"svc\":\"name\"}}", {DM},
     {ST, HE, LA, CO, SK}, {DL, "svc"}, {TY, NONE, IM, DE, EM, NA}, "svc", 1, 0, 1},
    {"duplicate targets: both keys work, the first is the name key", "{\"labels\":{\"zz\":\"name\",\"aa\":\"name\"}}", {DM},
     {ST, HE, LA, CO, SK}, {DL, "zz", "aa"}, {NONE, TY, IM, DE, EM, NA, NA}, "zz", 1, 0, 1},
    {"duplicate JSON keys: the last value wins", "{\"labels\":{\"x\":\"type\",\"x\":\"name\"}}", {DM}, {ST, HE, LA, CO, SK},
     {DL, "x"}, {NONE, TY, IM, DE, EM, NA}, "x", 1, 0, 1},
    {"unknown targets are ignored but shadow a default key",
     "{\"metrics\":{\"dependency.health.status\":\"bogus\",\"m2\":5,\"m3\":null}}", {DM, "m2", "m3"},
     {NONE, HE, LA, CO, SK, NONE, NONE}, {DL}, {NA, TY, IM, DE, EM}, "dependency.name", 1, 0, 1},
    {"empty user maps keep the defaults", "{\"metrics\":{},\"labels\":{}}", {DM}, {ST, HE, LA, CO, SK}, {DL},
     {NA, TY, IM, DE, EM}, "dependency.name", 1, 0, 1},
    {"metrics not an object counts as empty",
     "{\"metrics\":[\"state\"],\"labels\":{\"n\":\"name\"},\"latency_unit\":\"s\",\"healthy_value\":0}", {DM, "0"},
     {ST, HE, LA, CO, SK, NONE}, {DL, "n"}, {NONE, TY, IM, DE, EM, NA}, "n", 1, 1, 0},
    {"metrics null and no labels: not a MetricSchemaConfig", "{\"metrics\":null,\"latency_unit\":\"s\"}", {DM},
     {ST, HE, LA, CO, SK}, {DL}, {NA, TY, IM, DE, EM}, "dependency.name", 0, 0, 1},
    {"latency_unit s, healthy_value 2.5", "{\"metrics\":{},\"latency_unit\":\"s\",\"healthy_value\":2.5}", {DM},
     {ST, HE, LA, CO, SK}, {DL}, {NA, TY, IM, DE, EM}, "dependency.name", 1, 1, 2.5},
    {"latency_unit ms", "{\"labels\":{},\"latency_unit\":\"ms\",\"healthy_value\":-1}", {DM}, {ST, HE, LA, CO, SK}, {DL},
     {NA, TY, IM, DE, EM}, "dependency.name", 1, 0, -1},
    {"latency_unit is case-sensitive; healthy_value must be a number",
     "{\"labels\":{},\"latency_unit\":\"S\",\"healthy_value\":\"0\"}", {DM}, {ST, HE, LA, CO, SK}, {DL}, {NA, TY, IM, DE, EM},
     "dependency.name", 1, 0, 1},
    {"keys are case-sensitive", "{\"metrics\":{\"Dependency.Health.Status\":\"state\"}}", {DM, "Dependency.Health.Status"},
     {NONE, HE, LA, CO, SK, ST}, {DL}, {NA, TY, IM, DE, EM}, "dependency.name", 1, 0, 1},
    {"empty key", "{\"labels\":{\"\":\"name\"}}", {DM}, {ST, HE, LA, CO, SK}, {DL, ""}, {NONE, TY, IM, DE, EM, NA}, "", 1, 0, 1},
};
/* clang-format on */

START_TEST(effective_maps)
{
    dps_mapping_t m;

    ck_assert_int_eq(dps_mapping_load(cases[_i].config, &m), 0);
    for (size_t k = 0; k < 9 && cases[_i].metric_keys[k] != NULL; k++)
        ck_assert_msg((int)dps_mapping_metric(&m, cases[_i].metric_keys[k]) == cases[_i].metric_want[k], "%s: metric %s -> %d",
                      cases[_i].what, cases[_i].metric_keys[k], dps_mapping_metric(&m, cases[_i].metric_keys[k]));
    for (size_t k = 0; k < 9 && cases[_i].label_keys[k] != NULL; k++)
        ck_assert_msg((int)dps_mapping_label(&m, cases[_i].label_keys[k]) == cases[_i].label_want[k], "%s: label %s -> %d",
                      cases[_i].what, cases[_i].label_keys[k], dps_mapping_label(&m, cases[_i].label_keys[k]));
    ck_assert_str_eq(dps_mapping_name_key(&m), cases[_i].name_key);
    ck_assert_int_eq(m.custom, cases[_i].custom);
    ck_assert_int_eq(m.latency_seconds, cases[_i].latency_seconds);
    ck_assert_double_eq(m.healthy_value, cases[_i].healthy_value);
    /* unmapped names and NULL */
    ck_assert_int_eq(dps_mapping_metric(&m, "dependency.health"), DPS_METRIC_NONE);
    ck_assert_int_eq(dps_mapping_label(&m, "dependency.names"), DPS_LABEL_NONE);
    ck_assert_int_eq(dps_mapping_label(&m, NULL), DPS_LABEL_NONE);
    dps_mapping_free(&m);
    dps_mapping_free(&m); /* harmless twice: the struct was zeroed */
}
END_TEST

/* Entries are kept in effective-map order: surviving defaults first, then the user's in document order. */
START_TEST(entry_order)
{
    dps_mapping_t m;

    ck_assert_int_eq(dps_mapping_load("{\"labels\":{\"z\":\"type\",\"dependency.impact\":\"description\",\"a\":\"name\"}}", &m), 0);
    ck_assert_uint_eq(m.n_labels, 4); /* name, type, description defaults dropped; impact's key reused */
    ck_assert_str_eq(m.labels[0].key, "dependency.impact");
    ck_assert_int_eq(m.labels[0].target, DPS_LABEL_DESCRIPTION);
    ck_assert_str_eq(m.labels[1].key, "dependency.error_message");
    ck_assert_str_eq(m.labels[2].key, "z");
    ck_assert_str_eq(m.labels[3].key, "a");
    ck_assert_str_eq(dps_mapping_name_key(&m), "a");
    for (size_t i = 0; i < m.n_labels; i++)
        ck_assert_int_ne(m.labels[i].target, DPS_LABEL_IMPACT); /* nothing feeds impact any more */
    dps_mapping_free(&m);
}
END_TEST

/* A large user map: lookups by binary search stay right for every key. */
START_TEST(large_map)
{
    static const char *const targets[] = {"state", "healthy", "latency", "code", "skipped"};
    size_t cap = 64 * 1024, len = 0;
    char *json = malloc(cap), key[32];
    dps_mapping_t m;

    len += (size_t)snprintf(json + len, cap - len, "{\"metrics\":{");
    for (int i = 0; i < 2000; i++)
        len += (size_t)snprintf(json + len, cap - len, "%s\"k%04d\":\"%s\"", i ? "," : "", 1999 - i, targets[i % 5]);
    snprintf(json + len, cap - len, "}}");
    ck_assert_int_eq(dps_mapping_load(json, &m), 0);
    ck_assert_uint_eq(m.n_metrics, 2000);
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof(key), "k%04d", 1999 - i);
        ck_assert_int_eq(dps_mapping_metric(&m, key), i % 5);
    }
    ck_assert_int_eq(dps_mapping_metric(&m, "dependency.health.status"), DPS_METRIC_NONE);
    ck_assert_int_eq(dps_mapping_metric(&m, "k2000"), DPS_METRIC_NONE);
    dps_mapping_free(&m);
    free(json);
}
END_TEST

START_TEST(target_names)
{
    ck_assert_str_eq(dps_mapping_metric_target_name(DPS_METRIC_STATE), "state");
    ck_assert_str_eq(dps_mapping_metric_target_name(DPS_METRIC_SKIPPED), "skipped");
    ck_assert_ptr_null(dps_mapping_metric_target_name(DPS_METRIC_NONE));
    ck_assert_ptr_null(dps_mapping_metric_target_name(5));
    ck_assert_str_eq(dps_mapping_label_target_name(DPS_LABEL_ERROR_MESSAGE), "errorMessage");
    ck_assert_str_eq(dps_mapping_label_target_name(DPS_LABEL_NAME), "name");
    ck_assert_ptr_null(dps_mapping_label_target_name(-1));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("otlp_mapping");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, effective_maps, 0, sizeof(cases) / sizeof(cases[0]));
    tcase_add_test(tc, entry_order);
    tcase_add_test(tc, large_map);
    tcase_add_test(tc, target_names);
    suite_add_tcase(s, tc);
    return dps_check_run(s);
}
