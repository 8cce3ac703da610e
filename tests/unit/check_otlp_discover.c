/* Unit tests of span-based discovery (otlp-ingestion.md §8.2–§8.6): truthiness, target names, URL hosts,
 * types, descriptions, latency, aggregation and the bridge values. */
#include "depsera/otlp_discover.h"

#include <check.h>

#include "unit.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S(k, v)                                                                                                                    \
    {                                                                                                                              \
        .key = (k), .kind = DPS_OTLP_STRING, .s = (v)                                                                              \
    }
#define I(k, v)                                                                                                                    \
    {                                                                                                                              \
        .key = (k), .kind = DPS_OTLP_INT, .i = (v)                                                                                 \
    }
#define D(k, v)                                                                                                                    \
    {                                                                                                                              \
        .key = (k), .kind = DPS_OTLP_DOUBLE, .d = (v)                                                                              \
    }
#define B(k, v)                                                                                                                    \
    {                                                                                                                              \
        .key = (k), .kind = DPS_OTLP_BOOL, .b = (v)                                                                                \
    }
#define MAXA 8

static size_t count_attrs(const dps_otlp_attr_t *a)
{
    size_t n = 0;

    while (n < MAXA && a[n].key != NULL)
        n++;
    return n;
}

/* ---- truthy ---------------------------------------------------------------------------------------- */

/* clang-format off */
static const struct {
    dps_otlp_attr_t a;
    int want;
} truthies[] = {
    {S("k", "x"), 1},   {S("k", ""), 0},      {S("k", NULL), 0},     {S("k", "0"), 1},        {S("k", "false"), 1},
    {I("k", 1), 1},     {I("k", -1), 1},      {I("k", 0), 0},        {D("k", 0.5), 1},        {D("k", 0.0), 0},
    {D("k", -0.0), 0},  {D("k", NAN), 0},     {D("k", INFINITY), 1}, {B("k", 1), 1},          {B("k", 0), 0},
};
/* clang-format on */

START_TEST(truthy)
{
    ck_assert_int_eq(dps_discover_truthy(&truthies[_i].a), truthies[_i].want);
    ck_assert_int_eq(dps_discover_truthy(NULL), 0);
}
END_TEST

/* ---- target names (§8.3 rules 1-6, then net.peer.name and http.url) -------------------------------- */

/* clang-format off */
static const struct {
    const char *what;
    dps_otlp_attr_t attrs[MAXA];
    const char *want; /* NULL: no resolvable name */
} names[] = {
    {"1: peer.service", {S("peer.service", "payments")}, "payments"},
    {"1 wins over every later rule",
     {S("server.address", "h"), S("db.system", "pg"), S("peer.service", "payments"), S("messaging.system", "kafka"),
      S("url.full", "http://u/")},
     "payments"},
    {"1: empty string is falsy", {S("peer.service", ""), S("db.system", "postgresql")}, "postgresql"},
    {"1: false is falsy", {B("peer.service", 0), S("db.system", "postgresql")}, "postgresql"},
    {"1: 0 is falsy", {I("peer.service", 0), S("server.address", "h")}, "h"},
    {"1: NaN is falsy", {D("peer.service", NAN), S("server.address", "h")}, "h"},
    {"1: an integer as a string", {I("peer.service", 42)}, "42"},
    {"1: a negative integer", {I("peer.service", -7)}, "-7"},
    {"1: int64 kept exactly", {I("peer.service", 9007199254740993LL)}, "9007199254740993"},
    {"1: a double as JavaScript writes it", {D("peer.service", 1.5)}, "1.5"},
    {"1: a whole double", {D("peer.service", 5.0)}, "5"},
    {"1: a large double", {D("peer.service", 1e21)}, "1e+21"},
    {"1: a double below 1e21", {D("peer.service", 123456789012345680000.0)}, "123456789012345680000"},
    {"1: a small double", {D("peer.service", 1.5e-7)}, "1.5e-7"},
    {"1: a double at 1e-6", {D("peer.service", 0.000001)}, "0.000001"},
    {"1: a shortest round-trip double", {D("peer.service", 0.1)}, "0.1"},
    {"1: Infinity", {D("peer.service", INFINITY)}, "Infinity"},
    {"1: true", {B("peer.service", 1)}, "true"},
    {"2: db.system", {S("db.system", "postgresql"), S("server.address", "db.host")}, "postgresql"},
    {"2: db.system.name when db.system is absent", {S("db.system.name", "mysql"), S("server.address", "db.host")}, "mysql"},
    {"2: db.system wins over db.system.name", {S("db.system.name", "mysql"), S("db.system", "pg")}, "pg"},
    {"2: db.system present but empty does not fall to db.system.name", {S("db.system", ""), S("db.system.name", "mysql")}, NULL},
    {"2: db.system present but empty, a later rule applies",
     {S("db.system", ""), S("db.system.name", "mysql"), S("messaging.system", "kafka")},
     "kafka"},
    {"2: db.system 0 does not fall to db.system.name", {I("db.system", 0), S("db.system.name", "x"), S("server.address", "h")},
     "h"},
    {"2: db.system false does not fall to db.system.name", {B("db.system", 0), S("db.system.name", "x")}, NULL},
    {"2: db.system.name empty", {S("db.system.name", ""), S("server.address", "h")}, "h"},
    {"3: messaging.system", {S("messaging.system", "kafka"), S("rpc.system", "grpc"), S("server.address", "h")}, "kafka"},
    {"3: messaging.system empty", {S("messaging.system", ""), S("rpc.system", "grpc")}, "grpc"},
    {"4: rpc.system", {S("rpc.system", "grpc"), S("server.address", "h")}, "grpc"},
    {"4: rpc.system.name when rpc.system is absent", {S("rpc.system.name", "dubbo"), S("server.address", "h")}, "dubbo"},
    {"4: rpc.system wins over rpc.system.name", {S("rpc.system.name", "dubbo"), S("rpc.system", "grpc")}, "grpc"},
    {"4: rpc.system present but empty does not fall to rpc.system.name",
     {S("rpc.system", ""), S("rpc.system.name", "grpc"), S("server.address", "svc")},
     "svc"},
    {"4: rpc.system present but empty, nothing else", {S("rpc.system", ""), S("rpc.system.name", "grpc")}, NULL},
    {"5: server.address", {S("server.address", "API.example.com"), S("url.full", "http://other/")}, "API.example.com"},
    {"5: server.address empty falls to url.full", {S("server.address", ""), S("url.full", "http://h/")}, "h"},
    {"6: url.full host, lower-cased, no port", {S("url.full", "https://API.Example.com:8443/v1?x=1")}, "api.example.com"},
    {"6: url.full IPv6", {S("url.full", "http://[::1]:8080/")}, "[::1]"},
    {"6: url.full unparsable falls to net.peer.name", {S("url.full", "not a url"), S("net.peer.name", "legacy")}, "legacy"},
    {"6: url.full with an empty host", {S("url.full", "file:///x")}, NULL},
    {"6: url.full empty", {S("url.full", "")}, NULL},
    {"6: url.full not a string", {I("url.full", 5)}, NULL},
    {"6: url.full wins over the older names", {S("url.full", "http://new/"), S("net.peer.name", "old"), S("http.url", "http://older/")},
     "new"},
    {"7: net.peer.name", {S("net.peer.name", "legacy-db"), S("http.url", "http://h/")}, "legacy-db"},
    {"7: net.peer.name empty falls to http.url", {S("net.peer.name", ""), S("http.url", "http://H:1/")}, "h"},
    {"8: http.url host", {S("http.url", "https://Old.Example:8443/x")}, "old.example"},
    {"8: http.url unparsable", {S("http.url", "/relative")}, NULL},
    {"net.peer.ip is never a name", {S("net.peer.ip", "10.0.0.1")}, NULL},
    {"net.peer.ip is skipped", {S("net.peer.ip", "10.0.0.1"), S("http.url", "http://10.0.0.2/")}, "10.0.0.2"},
    {"later duplicates overwrite: now empty", {S("peer.service", "a"), S("peer.service", ""), S("db.system", "pg")}, "pg"},
    {"later duplicates overwrite: now set", {S("peer.service", ""), S("peer.service", "b")}, "b"},
    {"a later duplicate of the primary key", {S("db.system.name", "mysql"), S("db.system", "x"), S("db.system", "")}, NULL},
    {"no attributes", {{0}}, NULL},
    {"only unrelated attributes", {S("http.method", "GET"), S("url.path", "/x"), S("peer.services", "typo")}, NULL},
};
/* clang-format on */

START_TEST(target_name)
{
    char *got = (char *)"unset";
    int r = dps_discover_target_name(names[_i].attrs, count_attrs(names[_i].attrs), &got);

    ck_assert_int_ge(r, 0);
    if (names[_i].want == NULL) {
        ck_assert_msg(r == 0 && got == NULL, "%s: got %s", names[_i].what, got);
    } else {
        ck_assert_msg(r == 1, "%s: no name", names[_i].what);
        ck_assert_msg(strcmp(got, names[_i].want) == 0, "%s: got \"%s\"", names[_i].what, got);
    }
    free(got);
}
END_TEST

/* ---- URL hosts (expected values from node's `new URL(u).hostname`, deviations marked) ---------------- */

/* clang-format off */
static const struct {
    const char *url;
    const char *host; /* NULL: none */
} urls[] = {
    {"http://example.com/", "example.com"},
    {"https://API.Example.COM:8443/v1/users?id=1#top", "api.example.com"},
    {"HTTP://EXAMPLE.COM", "example.com"},
    {"HtTpS://Mixed.Case.Host/", "mixed.case.host"},
    {"http://h:80/", "h"},
    {"http://h:0/", "h"},
    {"http://h:65535/", "h"},
    {"http://h:65536/", NULL},
    {"http://h:/", "h"},
    {"http://h:8x/", NULL},
    {"http://h:-1/", NULL},
    {"http://h: 80/", NULL},
    {"http://h:0000000000080/", "h"},
    {"http://h:1:2/", NULL},
    {"http://user:pass@Host.com/", "host.com"},
    {"http://user@host/", "host"},
    {"http://a@b@c.com/", "c.com"},
    {"http://u@/", NULL},
    {"http://@host/", "host"},
    {"http://u:p@[::1]:9/", "[::1]"},
    {"http://[::1]@host/", "host"},
    {"http://user:p%40ss@host/", "host"},
    {"http://[::1]/", "[::1]"},
    {"http://[0:0:0:0:0:0:0:1]:8080/", "[::1]"},
    {"http://[2001:DB8::1]/", "[2001:db8::1]"},
    {"http://[2001:db8:0:0:1:0:0:1]/", "[2001:db8::1:0:0:1]"},
    {"http://[1:0:0:2:0:0:0:3]/", "[1:0:0:2::3]"},
    {"http://[::]/", "[::]"},
    {"http://[::ffff:192.168.0.1]/", "[::ffff:c0a8:1]"},
    {"http://[::1.2.3.4]/", "[::102:304]"},
    {"http://[::1.2.3.04]/", NULL},
    {"http://[::1.2.3]/", NULL},
    {"http://[1:2:3:4:5:6:7:8:9]/", NULL},
    {"http://[12345::]/", NULL},
    {"http://[::1/", NULL},
    {"http://[::1]x/", NULL},
    {"http://[v1.x]/", NULL},
    {"http://[::1%25eth0]/", NULL},
    {"http://[:1]/", NULL},
    {"http://[1:]/", NULL},
    {"http://[]/", NULL},
    {"http://192.168.0.1/", "192.168.0.1"},
    {"http://0x7f.1/", "127.0.0.1"},
    {"http://0300.0250.0.1/", "192.168.0.1"},
    {"http://3232235521/", "192.168.0.1"},
    {"http://4294967295/", "255.255.255.255"},
    {"http://4294967296/", NULL},
    {"http://1.2.3/", "1.2.0.3"},
    {"http://1.256/", "1.0.1.0"},
    {"http://256.1.1.1/", NULL},
    {"http://1.2.3.4.5/", NULL},
    {"http://09/", NULL},
    {"http://0x/", "0.0.0.0"},
    {"http://1./", "0.0.0.1"},
    {"http://1.2.3.4./", "1.2.3.4"},
    {"http://1../", "1.."},
    {"http://a.1/", NULL},
    {"http://1.a/", "1.a"},
    {"http://%31%32%37.0.0.1/", "127.0.0.1"},
    {"http://00000000000000000000001/", "0.0.0.1"},
    {"http://999999999999999999999/", NULL},
    {"http://%41%42.com/", "ab.com"},
    {"http://ex%2Ecom/", "ex.com"},
    {"http://ex%00.com/", NULL},
    {"http://ex%zz.com/", NULL},
    {"http://ex%/", NULL},
    {"http://a%20b/", NULL},
    {"http://a b/", NULL},
    {"http://a<b/", NULL},
    {"http://a^b/", NULL},
    {"http://a|b/", NULL},
    {"http://a_b-c.d/", "a_b-c.d"},
    {"http://*.x/", "*.x"},
    {"http://%C3%BC.de/", NULL}, /* WHATWG: xn--tda.de (IDNA); we refuse non-ASCII hosts */
    {"http://\xc3\xbc""ber.de/", NULL}, /* WHATWG: xn--ber-goa.de */
    {"http://xn--zz/", "xn--zz"}, /* WHATWG refuses the bad Punycode; we keep A-labels as written */
    {"http:example.com/p", "example.com"},
    {"http:/example.com", "example.com"},
    {"http:///example.com/", "example.com"},
    {"http:\x5c\x5c""example.com\x5cp", "example.com"},
    {"http://example.com\x5cp", "example.com"},
    {"https://h?q", "h"},
    {"https://h#f", "h"},
    {"http://", NULL},
    {"http:///", NULL},
    {"http://:80/", NULL},
    {"  http://trim.me/  ", "trim.me"},
    {"\x01http://c0.trim/\x1f", "c0.trim"},
    {"ht\x09tp://tab.in.scheme/", "tab.in.scheme"},
    {"http://ne\x0aw.line/", "new.line"},
    {"http://h:8\x09""0/", "h"},
    {"http://h\x01/", NULL},
    {"https://s/", "s"},
    {"ws://W.s:1/", "w.s"},
    {"wss://w/", "w"},
    {"ftp://F.example/", "f.example"},
    {"file:///etc/passwd", NULL},
    {"file://host.example/x", "host.example"},
    {"file://LOCALHOST/x", NULL},
    {"file://h:1/", NULL},
    {"file:/x", NULL},
    {"file:\x5c\x5c\x5c\x5ch/", NULL},
    {"postgres://u:p@DB.Internal:5432/app", "db.internal"}, /* WHATWG keeps the case of opaque hosts */
    {"redis://[::1]:6379/0", "[::1]"},
    {"kafka://Broker1:9092", "broker1"},
    {"foo://a%41/", "a%41"},
    {"foo://a b/", NULL},
    {"foo:bar", NULL},
    {"mailto:a@b.com", NULL},
    {"urn:isbn:123", NULL},
    {"foo:/x", NULL},
    {"foo:///x", NULL},
    {"foo://\xc3\xbc""ber/", NULL}, /* WHATWG percent-encodes: %C3%BCber */
    {"foo://h\x5cx/", NULL},
    {"", NULL},
    {"example.com", NULL},
    {"example.com:80", NULL},
    {"//example.com/", NULL},
    {"/path", NULL},
    {"1http://x/", NULL},
    {"-x://y/", NULL},
    {"h+s-.x://Y/", "y"},
    {"http//x", NULL},
    {"\xc3\xa9://x/", NULL},
};
/* clang-format on */

START_TEST(url_host)
{
    const char *u = urls[_i].url;
    size_t len = strlen(u), cap = len + 42;
    char *out = malloc(cap);
    int r = dps_discover_url_host(u, len, out, cap);

    if (urls[_i].host == NULL) {
        ck_assert_msg(r == -1, "%s: got \"%s\"", u, out);
    } else {
        ck_assert_msg(r >= 0 && strcmp(out, urls[_i].host) == 0, "%s: got %d \"%s\"", u, r, r >= 0 ? out : "");
        ck_assert_int_eq(r, (int)strlen(urls[_i].host));
    }
    free(out);
}
END_TEST

START_TEST(url_host_bytes)
{
    char out[64];

    /* a NUL inside the input is a character like any other: in the path it is fine, in the host it is not */
    ck_assert_int_eq(dps_discover_url_host("http://h/\0x", 11, out, sizeof(out)), 1);
    ck_assert_str_eq(out, "h");
    ck_assert_int_eq(dps_discover_url_host("http://h\0x/", 11, out, sizeof(out)), -1);
    /* the length bounds the input: no reading past it */
    ck_assert_int_eq(dps_discover_url_host("http://host.example/", 11, out, sizeof(out)), 4);
    ck_assert_str_eq(out, "host");
    /* too small an output buffer is "none", never an overflow */
    ck_assert_int_eq(dps_discover_url_host("http://host.example/", 20, out, 12), -1);
    ck_assert_int_eq(dps_discover_url_host("http://host.example/", 20, out, 13), 12);
    ck_assert_int_eq(dps_discover_url_host("http://0/", 9, out, 7), -1); /* "0.0.0.0" needs 8 */
    ck_assert_int_eq(dps_discover_url_host("http://0/", 9, out, 8), 7);
    ck_assert_int_eq(dps_discover_url_host("http://h/", 9, out, 0), -1);
    ck_assert_int_eq(dps_discover_url_host(NULL, 0, out, sizeof(out)), -1);
    /* invalid UTF-8 and high bytes */
    ck_assert_int_eq(dps_discover_url_host("http://\xff\xfe/", 11, out, sizeof(out)), -1);
    ck_assert_int_eq(dps_discover_url_host("http://a/\xff", 10, out, sizeof(out)), 1);
}
END_TEST

/* ---- type (§8.4) ----------------------------------------------------------------------------------- */

/* clang-format off */
static const struct {
    const char *what;
    dps_otlp_attr_t attrs[MAXA];
    const char *want;
} types[] = {
    {"redis", {S("db.system", "redis")}, "cache"},
    {"REDIS, lower-cased", {S("db.system", "REDIS")}, "cache"},
    {"Memcached", {S("db.system", "Memcached")}, "cache"},
    {"valkey", {S("db.system", "valkey")}, "cache"},
    {"valkey with a Kelvin sign lower-cases as JavaScript does", {S("db.system", "val\xE2\x84\xAA" "ey")}, "cache"},
    {"redis from db.system.name", {S("db.system.name", "redis")}, "cache"},
    {"db.system empty: db.system.name not consulted", {S("db.system", ""), S("db.system.name", "redis")}, "other"},
    {"postgresql", {S("db.system", "postgresql")}, "database"},
    {"db.system.name mysql", {S("db.system.name", "mysql")}, "database"},
    {"redis-cluster is not a cache name", {S("db.system", "redis-cluster")}, "database"},
    {"a numeric db system", {I("db.system", 1)}, "database"},
    {"db wins over messaging", {S("messaging.system", "kafka"), S("db.system", "pg")}, "database"},
    {"messaging", {S("messaging.system", "kafka"), S("rpc.system", "grpc"), S("http.method", "GET")}, "message_queue"},
    {"messaging empty", {S("messaging.system", ""), S("rpc.system", "grpc")}, "grpc"},
    {"grpc", {S("rpc.system", "grpc"), S("http.request.method", "POST")}, "grpc"},
    {"GRPC", {S("rpc.system", "GRPC")}, "grpc"},
    {"grpc from rpc.system.name", {S("rpc.system.name", "grpc")}, "grpc"},
    {"rpc.system empty: rpc.system.name not consulted", {S("rpc.system", ""), S("rpc.system.name", "grpc")}, "other"},
    {"another rpc system", {S("rpc.system", "apache_dubbo")}, "other"},
    {"another rpc system over http", {S("rpc.system", "jsonrpc"), S("http.method", "POST")}, "rest"},
    {"http.request.method", {S("http.request.method", "GET")}, "rest"},
    {"http.method", {S("http.method", "GET")}, "rest"},
    {"type uses ||: empty http.request.method, http.method set", {S("http.request.method", ""), S("http.method", "GET")}, "rest"},
    {"both methods empty", {S("http.request.method", ""), S("http.method", "")}, "other"},
    {"nothing", {S("peer.service", "x")}, "other"},
    {"no attributes", {{0}}, "other"},
};
/* clang-format on */

START_TEST(type)
{
    ck_assert_msg(strcmp(dps_discover_type(types[_i].attrs, count_attrs(types[_i].attrs)), types[_i].want) == 0, "%s: %s",
                  types[_i].what, dps_discover_type(types[_i].attrs, count_attrs(types[_i].attrs)));
}
END_TEST

/* ---- description (§8.4) ---------------------------------------------------------------------------- */

/* clang-format off */
static const struct {
    const char *what;
    dps_otlp_attr_t attrs[MAXA];
    const char *span_name;
    const char *want;
} descs[] = {
    {"method host path", {S("http.request.method", "GET"), S("server.address", "api.x"), S("url.path", "/v1")}, "span",
     "GET api.x/v1"},
    {"older names", {S("http.method", "POST"), S("net.peer.name", "legacy"), S("http.target", "/t")}, "span", "POST legacy/t"},
    {"method only", {S("http.request.method", "GET")}, "span", "GET"},
    {"method and path", {S("http.request.method", "GET"), S("url.path", "/v1")}, "span", "GET /v1"},
    {"method and host", {S("http.request.method", "GET"), S("server.address", "api.x")}, "span", "GET api.x"},
    {"http.request.method ?? http.method", {S("http.method", "POST"), S("http.request.method", "GET")}, "span", "GET"},
    {"present but empty method: not the http row",
     {S("http.request.method", ""), S("http.method", "GET"), S("server.address", "h")}, "span", "span"},
    {"present but empty server.address hides net.peer.name",
     {S("http.request.method", "GET"), S("server.address", ""), S("net.peer.name", "n")}, "span", "GET"},
    {"present but empty url.path hides http.target",
     {S("http.request.method", "GET"), S("server.address", "h"), S("url.path", ""), S("http.target", "/t")}, "span", "GET h"},
    {"a boolean method", {B("http.request.method", 1), S("url.path", "/p")}, "span", "true /p"},
    {"http row first", {S("db.system", "pg"), S("http.request.method", "GET")}, "span", "GET"},
    {"db op namespace collection",
     {S("db.system", "postgresql"), S("db.operation", "SELECT"), S("db.namespace", "shop"), S("db.collection.name", "orders")},
     "span", "SELECT shop.orders"},
    {"db newer and older alternates",
     {S("db.system.name", "postgresql"), S("db.operation.name", "SELECT"), S("db.name", "shop"), S("db.sql.table", "orders")},
     "span", "SELECT shop.orders"},
    {"db only", {S("db.system", "postgresql")}, "span", "postgresql"},
    {"db op only", {S("db.system", "pg"), S("db.operation", "SELECT")}, "span", "SELECT"},
    {"db namespace only", {S("db.system", "pg"), S("db.namespace", "shop")}, "span", "shop"},
    {"db collection only", {S("db.system", "pg"), S("db.sql.table", "orders")}, "span", "orders"},
    {"db op and collection", {S("db.system", "pg"), S("db.operation", "GET"), S("db.collection.name", "k")}, "span", "GET k"},
    {"db present but empty op hides the alternate",
     {S("db.system", "pg"), S("db.operation", ""), S("db.operation.name", "INSERT"), S("db.namespace", "shop")}, "span", "shop"},
    {"db present but empty namespace hides db.name",
     {S("db.system", "pg"), S("db.namespace", ""), S("db.name", "x"), S("db.collection.name", "c")}, "span", "c"},
    {"db present but empty collection hides db.sql.table",
     {S("db.system", "pg"), S("db.collection.name", ""), S("db.sql.table", "t")}, "span", "pg"},
    {"db numeric system", {I("db.system", 7)}, "span", "7"},
    {"db system empty: not the db row", {S("db.system", ""), S("db.system.name", "pg"), S("db.operation", "X")}, "span", "span"},
    {"db row before messaging", {S("messaging.system", "kafka"), S("db.system", "pg")}, "span", "pg"},
    {"messaging op destination",
     {S("messaging.system", "kafka"), S("messaging.operation", "publish"), S("messaging.destination.name", "orders")}, "span",
     "publish orders"},
    {"messaging alternates",
     {S("messaging.system", "kafka"), S("messaging.operation.name", "send"), S("messaging.destination", "q")}, "span", "send q"},
    {"messaging only", {S("messaging.system", "kafka")}, "span", "kafka"},
    {"messaging op only", {S("messaging.system", "kafka"), S("messaging.operation", "publish")}, "span", "publish"},
    {"messaging destination only", {S("messaging.system", "kafka"), S("messaging.destination.name", "orders")}, "span", "orders"},
    {"messaging present but empty destination.name hides destination",
     {S("messaging.system", "kafka"), S("messaging.destination.name", ""), S("messaging.destination", "q")}, "span", "kafka"},
    {"messaging before rpc", {S("messaging.system", "kafka"), S("rpc.method", "Get")}, "span", "kafka"},
    {"rpc service and method", {S("rpc.method", "Get"), S("rpc.service", "pkg.Users")}, "span", "pkg.Users/Get"},
    {"rpc method only", {S("rpc.method", "Get")}, "span", "Get"},
    {"rpc empty service", {S("rpc.method", "Get"), S("rpc.service", "")}, "span", "Get"},
    {"rpc empty method", {S("rpc.method", ""), S("rpc.service", "svc")}, "span", "span"},
    {"otherwise the span name", {S("server.address", "h")}, "GET /users", "GET /users"},
    {"no span name", {{0}}, NULL, ""},
};
/* clang-format on */

START_TEST(description)
{
    char *got = NULL;

    ck_assert_int_eq(dps_discover_description(descs[_i].attrs, count_attrs(descs[_i].attrs), descs[_i].span_name, &got), 0);
    ck_assert_msg(strcmp(got, descs[_i].want) == 0, "%s: \"%s\"", descs[_i].what, got);
    free(got);
}
END_TEST

/* ---- latency, association type --------------------------------------------------------------------- */

/* clang-format off */
static const struct {
    uint64_t start, end;
    int64_t want;
} latencies[] = {
    {0, 0, 0},
    {0, 1999999, 1},
    {1, 1000000, 0},
    {1000000, 1, 0},
    {2000000, 0, -2},
    {1700000000000000000ULL, 1700000000123456789ULL, 123},
    {1700000000123456789ULL, 1700000000000000000ULL, -123},
    {0, UINT64_MAX, 18446744073709LL},
    {UINT64_MAX, 0, -18446744073709LL},
    {UINT64_MAX, UINT64_MAX, 0},
};
/* clang-format on */

START_TEST(latency)
{
    ck_assert_int_eq(dps_discover_latency_ms(latencies[_i].start, latencies[_i].end), latencies[_i].want);
}
END_TEST

/* clang-format off */
static const struct {
    const char *type, *want;
} assocs[] = {
    {"database", "database"}, {"cache", "cache"}, {"message_queue", "message_queue"}, {"rest", "api_call"}, {"grpc", "api_call"},
    {"other", "other"},       {"Database", "other"}, {"http", "other"},          {"", "other"},       {NULL, "other"},
};
/* clang-format on */

START_TEST(association_type)
{
    ck_assert_str_eq(dps_discover_association_type(assocs[_i].type), assocs[_i].want);
}
END_TEST

/* ---- aggregation and bridge (§8.4-§8.5) ------------------------------------------------------------- */

static dps_discover_span_t span(const char *name, int kind, uint64_t start_ms, uint64_t end_ms, int status,
                                const dps_otlp_attr_t *attrs, size_t n)
{
    return (dps_discover_span_t){.name = name,
                                 .span_id = "00f067aa0ba902b7",
                                 .kind = kind,
                                 .start_ns = start_ms * 1000000,
                                 .end_ns = end_ms * 1000000,
                                 .times_valid = 1,
                                 .status_code = status,
                                 .attrs = attrs,
                                 .n_attrs = n};
}

START_TEST(aggregate)
{
    const dps_otlp_attr_t pg[] = {S("peer.service", "db1"), S("db.system", "postgresql"), S("db.operation", "SELECT")};
    const dps_otlp_attr_t redis[] = {S("peer.service", "db1"), S("db.system", "redis")};
    const dps_otlp_attr_t kafka[] = {S("messaging.system", "kafka"), S("messaging.destination.name", "orders")};
    const dps_otlp_attr_t srv[] = {S("peer.service", "not-a-client")};
    dps_discover_t *d = dps_discover_create(100);
    dps_discover_span_t sp;
    const dps_discover_target_t *t;

    ck_assert_ptr_nonnull(d);
    sp = span("query", DPS_SPAN_KIND_CLIENT, 100, 110, 0, pg, 3);
    ck_assert_int_eq(dps_discover_add(d, &sp), 0);
    sp = span("publish", DPS_SPAN_KIND_PRODUCER, 100, 103, 1, kafka, 2);
    ck_assert_int_eq(dps_discover_add(d, &sp), 0);
    sp = span("get", DPS_SPAN_KIND_CLIENT, 200, 221, 2, redis, 2); /* same target: first span's type stays */
    ck_assert_int_eq(dps_discover_add(d, &sp), 0);
    sp = span("handler", 2, 0, 5, 2, srv, 1); /* SERVER: not used, no warning */
    ck_assert_int_eq(dps_discover_add(d, &sp), 0);
    sp = span("internal", 1, 0, 5, 0, NULL, 0); /* INTERNAL without attributes: no warning either */
    ck_assert_int_eq(dps_discover_add(d, &sp), 0);
    sp = span("GET /", DPS_SPAN_KIND_CLIENT, 0, 5, 0, NULL, 0);
    sp.span_id = "abc123";
    ck_assert_int_eq(dps_discover_add(d, &sp), 0);

    ck_assert_uint_eq(dps_discover_count(d), 2);
    t = dps_discover_get(d, 0);
    ck_assert_str_eq(t->name, "db1");
    ck_assert_str_eq(t->type, "database");
    ck_assert_str_eq(t->description, "SELECT");
    ck_assert_int_eq(t->kind, DPS_SPAN_KIND_CLIENT);
    ck_assert_uint_eq(t->span_count, 2);
    ck_assert_int_eq(t->latency_ms, 16); /* (10 + 21) / 2 = 15.5, half up */
    ck_assert_int_eq(t->error, 1);
    ck_assert_int_eq(t->healthy, 0);
    ck_assert_int_eq(t->state, 2);
    ck_assert_int_eq(t->code, 500);
    t = dps_discover_get(d, 1);
    ck_assert_str_eq(t->name, "kafka");
    ck_assert_str_eq(t->type, "message_queue");
    ck_assert_str_eq(t->description, "orders");
    ck_assert_int_eq(t->kind, DPS_SPAN_KIND_PRODUCER);
    ck_assert_int_eq(t->latency_ms, 3);
    ck_assert_int_eq(t->error, 0); /* status 1 (OK) is not an error */
    ck_assert_int_eq(t->healthy, 1);
    ck_assert_int_eq(t->state, 0);
    ck_assert_int_eq(t->code, 200);
    ck_assert_ptr_null(dps_discover_get(d, 2));

    ck_assert_uint_eq(dps_discover_warning_count(d), 1);
    ck_assert_str_eq(dps_discover_warning(d, 0),
                     "Span \"GET /\" (abc123) has no resolvable target name \xE2\x80\x94 skipped for dependency discovery");
    ck_assert_ptr_null(dps_discover_warning(d, 1));
    ck_assert_uint_eq(dps_discover_warnings_dropped(d), 0);
    dps_discover_destroy(d);
}
END_TEST

/* Rounded means: round(sum / count), halves up (towards +Infinity, as Math.round). */
/* clang-format off */
static const struct {
    int64_t lat[4];
    size_t n;
    int64_t want;
} means[] = {
    {{1, 2}, 2, 2},     {{-1, -2}, 2, -1}, {{1, 2, 2}, 3, 2}, {{-1, 0}, 2, 0},   {{0, 0, 1}, 3, 0},
    {{5}, 1, 5},        {{-5}, 1, -5},     {{-2, -3, -3}, 3, -3}, {{2, 3}, 2, 3}, {{1, 1, 1, 2}, 4, 1},
};
/* clang-format on */

START_TEST(mean)
{
    const dps_otlp_attr_t a[] = {S("server.address", "h")};
    dps_discover_t *d = dps_discover_create(0);

    for (size_t k = 0; k < means[_i].n; k++) {
        int64_t l = means[_i].lat[k];
        dps_discover_span_t sp = span("s", DPS_SPAN_KIND_CLIENT, 0, 0, 0, a, 1);

        sp.start_ns = l < 0 ? (uint64_t)(-l) * 1000000 : 0;
        sp.end_ns = l < 0 ? 0 : (uint64_t)l * 1000000;
        ck_assert_int_eq(dps_discover_add(d, &sp), 0);
    }
    ck_assert_int_eq(dps_discover_get(d, 0)->latency_ms, means[_i].want);
    dps_discover_destroy(d);
}
END_TEST

START_TEST(aggregate_edges)
{
    const dps_otlp_attr_t five_int[] = {I("peer.service", 5)}, five_str[] = {S("peer.service", "5")};
    const dps_otlp_attr_t upper[] = {S("peer.service", "DB")}, lower[] = {S("peer.service", "db")};
    const dps_otlp_attr_t bare[] = {S("server.address", "h")};
    dps_discover_t *d = dps_discover_create(2);
    dps_discover_span_t sp;

    sp = span("a", DPS_SPAN_KIND_CLIENT, 0, 4, 0, five_int, 1);
    ck_assert_int_eq(dps_discover_add(d, &sp), 0);
    sp = span("b", DPS_SPAN_KIND_PRODUCER, 0, 4, 0, five_str, 1); /* same key "5"; kind of the first stays */
    sp.times_valid = 0;                                           /* unparsable times: latency 0, still counted */
    ck_assert_int_eq(dps_discover_add(d, &sp), 0);
    sp = span("c", DPS_SPAN_KIND_CLIENT, 0, 1, 0, upper, 1);
    ck_assert_int_eq(dps_discover_add(d, &sp), 0);
    sp = span("d", DPS_SPAN_KIND_CLIENT, 0, 1, 0, lower, 1); /* exact keys: "DB" and "db" differ */
    ck_assert_int_eq(dps_discover_add(d, &sp), 0);
    sp = span("", DPS_SPAN_KIND_CLIENT, 0, 1, 0, bare, 1); /* description = span name "" -> absent */
    ck_assert_int_eq(dps_discover_add(d, &sp), 0);
    for (int k = 0; k < 5; k++) { /* only two warnings kept */
        sp = span(NULL, DPS_SPAN_KIND_CLIENT, 0, 1, 0, NULL, 0);
        sp.span_id = NULL;
        ck_assert_int_eq(dps_discover_add(d, &sp), 0);
    }
    ck_assert_uint_eq(dps_discover_count(d), 4);
    ck_assert_str_eq(dps_discover_get(d, 0)->name, "5");
    ck_assert_uint_eq(dps_discover_get(d, 0)->span_count, 2);
    ck_assert_int_eq(dps_discover_get(d, 0)->latency_ms, 2);
    ck_assert_int_eq(dps_discover_get(d, 0)->kind, DPS_SPAN_KIND_CLIENT);
    ck_assert_str_eq(dps_discover_get(d, 0)->description, "a");
    ck_assert_str_eq(dps_discover_get(d, 1)->name, "DB");
    ck_assert_str_eq(dps_discover_get(d, 2)->name, "db");
    ck_assert_str_eq(dps_discover_get(d, 3)->name, "h");
    ck_assert_str_eq(dps_discover_get(d, 3)->type, "other");
    ck_assert_ptr_null(dps_discover_get(d, 3)->description);
    ck_assert_uint_eq(dps_discover_warning_count(d), 2);
    ck_assert_uint_eq(dps_discover_warnings_dropped(d), 3);
    ck_assert_str_eq(dps_discover_warning(d, 0),
                     "Span \"\" () has no resolvable target name \xE2\x80\x94 skipped for dependency discovery");
    dps_discover_destroy(d);
    dps_discover_destroy(NULL);
}
END_TEST

/* A default collector batch: 8192 spans over a few targets, in well under a second. */
START_TEST(batch_8192)
{
    static const char *const hosts[] = {"orders-db", "cache", "payments", "kafka"};
    dps_discover_t *d = dps_discover_create(SIZE_MAX);
    clock_t t0 = clock();

    for (int k = 0; k < 8192; k++) {
        const dps_otlp_attr_t a[] = {S("http.request.method", "GET"), S("url.path", "/x"), S("server.address", hosts[k % 4]),
                                     S("http.response.status_code", "200")};
        dps_discover_span_t sp = span("GET", DPS_SPAN_KIND_CLIENT, 1000, 1000 + (uint64_t)(k % 7), k % 100 == 0 ? 2 : 0, a, 4);

        ck_assert_int_eq(dps_discover_add(d, &sp), 0);
    }
    ck_assert_uint_eq(dps_discover_count(d), 4);
    ck_assert_uint_eq(dps_discover_get(d, 0)->span_count, 2048);
    ck_assert_int_eq(dps_discover_get(d, 0)->error, 1);
    ck_assert_int_eq(dps_discover_get(d, 1)->error, 0); /* k % 100 == 0 only hits k % 4 == 0 */
    ck_assert_str_eq(dps_discover_get(d, 2)->description, "GET payments/x");
    ck_assert_msg((double)(clock() - t0) / CLOCKS_PER_SEC < 1.0, "took %.3f s", (double)(clock() - t0) / CLOCKS_PER_SEC);
    dps_discover_destroy(d);
}
END_TEST

/* Many distinct targets: the table grows and every name is found again. */
START_TEST(many_targets)
{
    enum { N_TARGETS = 50000 };
    dps_discover_t *d = dps_discover_create(0);
    char name[32];

    for (int pass = 0; pass < 2; pass++) {
        for (int k = 0; k < N_TARGETS; k++) {
            const dps_otlp_attr_t a[] = {S("peer.service", name)};
            dps_discover_span_t sp = span("s", DPS_SPAN_KIND_CLIENT, 0, (uint64_t)pass, 0, a, 1);

            snprintf(name, sizeof(name), "svc-%d", k);
            ck_assert_int_eq(dps_discover_add(d, &sp), 0);
        }
    }
    ck_assert_uint_eq(dps_discover_count(d), N_TARGETS);
    for (int k = 0; k < N_TARGETS; k += 997) {
        snprintf(name, sizeof(name), "svc-%d", k);
        ck_assert_str_eq(dps_discover_get(d, (size_t)k)->name, name);
        ck_assert_uint_eq(dps_discover_get(d, (size_t)k)->span_count, 2);
        ck_assert_int_eq(dps_discover_get(d, (size_t)k)->latency_ms, 1); /* (0 + 1) / 2 half up */
    }
    dps_discover_destroy(d);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("otlp_discover");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, truthy, 0, sizeof(truthies) / sizeof(truthies[0]));
    tcase_add_loop_test(tc, target_name, 0, sizeof(names) / sizeof(names[0]));
    tcase_add_loop_test(tc, url_host, 0, sizeof(urls) / sizeof(urls[0]));
    tcase_add_test(tc, url_host_bytes);
    tcase_add_loop_test(tc, type, 0, sizeof(types) / sizeof(types[0]));
    tcase_add_loop_test(tc, description, 0, sizeof(descs) / sizeof(descs[0]));
    tcase_add_loop_test(tc, latency, 0, sizeof(latencies) / sizeof(latencies[0]));
    tcase_add_loop_test(tc, association_type, 0, sizeof(assocs) / sizeof(assocs[0]));
    tcase_add_test(tc, aggregate);
    tcase_add_loop_test(tc, mean, 0, sizeof(means) / sizeof(means[0]));
    tcase_add_test(tc, aggregate_edges);
    tcase_add_test(tc, batch_8192);
    tcase_add_test(tc, many_targets);
    suite_add_tcase(s, tc);
    return dps_check_run(s);
}
