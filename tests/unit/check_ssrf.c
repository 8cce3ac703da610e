/* Unit tests of the SSRF rules: URL hosts, blocked ranges in every IPv4/IPv6 form, allowlist syntax. */
#include "depsera/ssrf.h"

#include <arpa/inet.h>
#include <check.h>

#include "unit.h"
#include <netinet/in.h>
#include <string.h>

/* URL parsing: what host (canonical) and port each URL names; NULL host = not a valid http(s) URL. */
static const struct {
    const char *url;
    const char *host;
    int is_ip, port;
} urls[] = {
    {"http://example.com/health", "example.com", 0, 80},
    {"https://example.com", "example.com", 0, 443},
    {"HTTPS://EXAMPLE.COM:8443/x?y#z", "example.com", 0, 8443},
    {"http://example.com:/", "example.com", 0, 80},
    {"http://example.com:0080/", "example.com", 0, 80},
    {"  http://example.com/ \n", "example.com", 0, 80},
    {"http://user:pass@example.com/", "example.com", 0, 80},
    {"http://a@127.0.0.1/", "127.0.0.1", 1, 80},
    {"http://example.com@10.0.0.1:8080/", "10.0.0.1", 1, 8080},
    {"http://127.0.0.1#@example.com/", "127.0.0.1", 1, 80},
    {"http://example.com?@127.0.0.1/", "example.com", 0, 80},
    {"http://example.com/@127.0.0.1/", "example.com", 0, 80},
    {"http://[::1]/", "::1", 1, 80},
    {"http://[::1]:9090/health", "::1", 1, 9090},
    {"http://[0:0:0:0:0:0:0:1]/", "::1", 1, 80},
    {"http://[::FFFF:127.0.0.1]/", "::ffff:127.0.0.1", 1, 80},
    {"http://[2606:4700::1111]/", "2606:4700::1111", 1, 80},
    {"http://2130706433/", "127.0.0.1", 1, 80},
    {"http://0x7f.1/", "127.0.0.1", 1, 80},
    {"http://0177.0.0.1/", "127.0.0.1", 1, 80},
    {"http://127.1/", "127.0.0.1", 1, 80},
    {"http://10.1.2.3./", "10.1.2.3", 1, 80},
    {"http://0x0a010203/", "10.1.2.3", 1, 80},
    {"http://%31%32%37.0.0.1/", "127.0.0.1", 1, 80},
    {"http://LocalHost/", "localhost", 0, 80},
    {"http://foo.internal./", "foo.internal.", 0, 80},
    {"http://8.8.8.8/", "8.8.8.8", 1, 80},
    {"ftp://example.com/", NULL, 0, 0},
    {"file:///etc/passwd", NULL, 0, 0},
    {"gopher://127.0.0.1/", NULL, 0, 0},
    {"javascript:alert(1)", NULL, 0, 0},
    {"http:example.com", NULL, 0, 0},
    {"http:/example.com", NULL, 0, 0},
    {"http://", NULL, 0, 0},
    {"http:///x", NULL, 0, 0},
    {"http://:80/", NULL, 0, 0},
    {"http://user@/", NULL, 0, 0},
    {"http://a@b@127.0.0.1/", NULL, 0, 0},
    {"http://example.com\\@127.0.0.1/", NULL, 0, 0},
    {"http://exa mple.com/", NULL, 0, 0},
    {"http://exa\tmple.com/", NULL, 0, 0},
    {"http://example.com:65536/", NULL, 0, 0},
    {"http://example.com:80a/", NULL, 0, 0},
    {"http://[::1/", NULL, 0, 0},
    {"http://[::1]x/", NULL, 0, 0},
    {"http://[fe80::1%25eth0]/", NULL, 0, 0},
    {"http://[127.0.0.1]/", NULL, 0, 0},
    {"http://::1/", NULL, 0, 0},
    {"http://1.2.3.4.5/", NULL, 0, 0},
    {"http://256.0.0.1/", NULL, 0, 0},
    {"http://4294967296/", NULL, 0, 0},
    {"http://foo.1/", NULL, 0, 0},
    {"http://0x/", "0.0.0.0", 1, 80},
    {"http://%zz.com/", NULL, 0, 0},
    {"http://%00.com/", NULL, 0, 0},
    {"http://b\xc3\xbc"
     "cher.example/",
     NULL, 0, 0},
    {"http://\xef\xbd\x8c\xef\xbd\x8f\xef\xbd\x83\xef\xbd\x81\xef\xbd\x8c\xef\xbd\x88\xef\xbd\x8f\xef\xbd\x93\xef\xbd\x94/", NULL,
     0, 0},
    {"", NULL, 0, 0},
    {"not a url", NULL, 0, 0},
};

START_TEST(url_parse)
{
    dps_url_t u;
    int rc = dps_url_parse(urls[_i].url, &u);

    if (urls[_i].host == NULL) {
        ck_assert_msg(rc == -1, "\"%s\" should be invalid, got host %s", urls[_i].url, u.host);
        return;
    }
    ck_assert_msg(rc == 0, "\"%s\" should parse", urls[_i].url);
    ck_assert_str_eq(u.host, urls[_i].host);
    ck_assert_int_eq(u.is_ip, urls[_i].is_ip);
    ck_assert_int_eq(u.port, urls[_i].port);
}
END_TEST

START_TEST(url_long_host)
{
    char url[600];

    strcpy(url, "http://");
    memset(url + 7, 'a', 253);
    strcpy(url + 260, "/x");
    dps_url_t u;
    ck_assert_int_eq(dps_url_parse(url, &u), 0);
    memset(url + 7, 'a', 254);
    strcpy(url + 261, "/x");
    ck_assert_int_eq(dps_url_parse(url, &u), -1);
}
END_TEST

/* Addresses: blocked (1) or public (0), in their strict textual forms. */
static const struct {
    const char *ip;
    int blocked;
} ips[] = {
    {"0.0.0.0", 1},
    {"0.255.255.255", 1},
    {"1.0.0.0", 0},
    {"9.255.255.255", 0},
    {"10.0.0.0", 1},
    {"10.255.255.255", 1},
    {"11.0.0.0", 0},
    {"100.63.255.255", 0},
    {"100.64.0.0", 1},
    {"100.127.255.255", 1},
    {"100.128.0.0", 0},
    {"126.255.255.255", 0},
    {"127.0.0.1", 1},
    {"127.255.255.255", 1},
    {"128.0.0.0", 0},
    {"169.253.255.255", 0},
    {"169.254.0.0", 1},
    {"169.254.169.254", 1},
    {"169.255.0.0", 0},
    {"172.15.255.255", 0},
    {"172.16.0.0", 1},
    {"172.31.255.255", 1},
    {"172.32.0.0", 0},
    {"192.0.0.0", 1},
    {"192.0.0.255", 1},
    {"192.0.1.0", 0},
    {"192.0.2.0", 1},
    {"192.0.2.255", 1},
    {"192.0.3.0", 0},
    {"192.167.255.255", 0},
    {"192.168.0.0", 1},
    {"192.168.255.255", 1},
    {"192.169.0.0", 0},
    {"198.51.99.255", 0},
    {"198.51.100.0", 1},
    {"198.51.100.255", 1},
    {"198.51.101.0", 0},
    {"203.0.112.255", 0},
    {"203.0.113.0", 1},
    {"203.0.113.255", 1},
    {"203.0.114.0", 0},
    {"223.255.255.255", 0},
    {"224.0.0.0", 1},
    {"239.255.255.255", 1},
    {"240.0.0.0", 1},
    {"255.255.255.255", 1},
    {"8.8.8.8", 0},
    {"93.184.216.34", 0},
    {"::", 1},
    {"::1", 1},
    {"::2", 1},
    {"::127.0.0.1", 1},
    {"::8.8.8.8", 1},
    {"::ffff:127.0.0.1", 1},
    {"::ffff:10.1.2.3", 1},
    {"::ffff:7f00:1", 1},
    {"::ffff:8.8.8.8", 0},
    {"::ffff:0.0.0.0", 1},
    {"::1:0:0:1", 0},
    {"64:ff9b::127.0.0.1", 1},
    {"64:ff9b::8.8.8.8", 0},
    {"64:ff9b:1::1", 1},
    {"100::1", 1},
    {"100:0:0:1::1", 0},
    {"2001:db8::1", 1},
    {"2001:db9::1", 0},
    {"2002:7f00:1::", 1},
    {"2002:0a01:0203::1", 1},
    {"2002:808:808::1", 0},
    {"fc00::1", 1},
    {"fd12:3456::1", 1},
    {"fbff::1", 0},
    {"fe80::1", 1},
    {"fe9f::1", 1},
    {"fea0::1", 1},
    {"febf:ffff::1", 1},
    {"fec0::1", 1},
    {"feff::1", 1},
    {"ff02::1", 1},
    {"ff00::", 1},
    {"2606:4700::1111", 0},
    {"2a00:1450::200e", 0},
    {"FE80::ABCD", 1},
};

START_TEST(ip_blocked)
{
    dps_ip_t ip;

    ck_assert_msg(dps_ip_parse(ips[_i].ip, &ip) == 0, "%s should parse", ips[_i].ip);
    ck_assert_msg(dps_ip_is_blocked(&ip) == ips[_i].blocked, "%s: expected blocked=%d", ips[_i].ip, ips[_i].blocked);
}
END_TEST

START_TEST(ip_parse_strict)
{
    dps_ip_t ip;
    char buf[64];

    ck_assert_int_eq(dps_ip_parse("127.1", &ip), -1);
    ck_assert_int_eq(dps_ip_parse("010.0.0.1", &ip), -1);
    ck_assert_int_eq(dps_ip_parse("[::1]", &ip), -1);
    ck_assert_int_eq(dps_ip_parse("1.2.3.4.5", &ip), -1);
    ck_assert_int_eq(dps_ip_parse("", &ip), -1);
    ck_assert_int_eq(dps_ip_parse("::ffff:1.2.3.4", &ip), 0);
    dps_ip_format(&ip, buf, sizeof(buf));
    ck_assert_str_eq(buf, "::ffff:1.2.3.4");
    ip.family = 0; /* unknown family: blocked */
    ck_assert_int_eq(dps_ip_is_blocked(&ip), 1);
}
END_TEST

START_TEST(sockaddr)
{
    struct sockaddr_in in4 = {.sin_family = AF_INET};
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
    struct sockaddr other = {.sa_family = AF_UNIX};
    dps_ip_t ip;

    inet_pton(AF_INET, "10.0.0.7", &in4.sin_addr);
    ck_assert_int_eq(dps_ip_from_sockaddr((struct sockaddr *)&in4, &ip), 0);
    ck_assert_int_eq(ip.family, 4);
    ck_assert_int_eq(dps_ip_is_blocked(&ip), 1);
    inet_pton(AF_INET6, "2606:4700::1111", &in6.sin6_addr);
    ck_assert_int_eq(dps_ip_from_sockaddr((struct sockaddr *)&in6, &ip), 0);
    ck_assert_int_eq(ip.family, 6);
    ck_assert_int_eq(dps_ip_is_blocked(&ip), 0);
    ck_assert_int_eq(dps_ip_from_sockaddr(&other, &ip), -1);
}
END_TEST

static const struct {
    const char *host;
    int blocked;
} names[] = {
    {"localhost", 1},      {"LOCALHOST", 1},         {"localhost.", 1},   {"a.localhost", 1},        {"printer.local", 1},
    {"printer.local.", 1}, {"db.internal", 1},       {"A.B.INTERNAL", 1}, {"internal", 0},           {"local", 0},
    {"mylocalhost", 0},    {"localhost.example", 0}, {"example.com", 0},  {"x.internal.example", 0}, {"notlocal", 0},
};

START_TEST(hostname_blocked)
{
    ck_assert_msg(dps_ssrf_hostname_blocked(names[_i].host) == names[_i].blocked, "%s", names[_i].host);
}
END_TEST

/* Whole save-time checks: URL, allowlist text (NULL = none), verdict and reason. */
static const struct {
    const char *url, *allow;
    dps_ssrf_verdict_t want;
    const char *why;
} checks[] = {
    {"https://example.com/health", NULL, DPS_SSRF_ALLOWED, NULL},
    {"http://8.8.8.8/", NULL, DPS_SSRF_ALLOWED, NULL},
    {"http://[2606:4700::1111]/", NULL, DPS_SSRF_ALLOWED, NULL},
    {"http://127.0.0.1/", NULL, DPS_SSRF_BLOCKED, "Blocked private IP address: 127.0.0.1"},
    {"http://[::1]/", NULL, DPS_SSRF_BLOCKED, "Blocked private IP address: ::1"},
    {"http://[::ffff:192.168.1.1]/", NULL, DPS_SSRF_BLOCKED, "Blocked private IP address: ::ffff:192.168.1.1"},
    {"http://[fd00::5]:8080/", NULL, DPS_SSRF_BLOCKED, "Blocked private IP address: fd00::5"},
    {"http://10.1.2.3/", NULL, DPS_SSRF_BLOCKED, "Blocked private IP address: 10.1.2.3"},
    {"http://2130706433/", NULL, DPS_SSRF_BLOCKED, "Blocked private IP address: 127.0.0.1"},
    {"http://a@127.0.0.1/", NULL, DPS_SSRF_BLOCKED, "Blocked private IP address: 127.0.0.1"},
    {"http://localhost/", NULL, DPS_SSRF_BLOCKED, "Blocked hostname: localhost"},
    {"http://localhost.:8080/", NULL, DPS_SSRF_BLOCKED, "Blocked hostname: localhost."},
    {"http://foo.internal/", NULL, DPS_SSRF_BLOCKED, "Blocked hostname: foo.internal"},
    {"http://svc.LOCAL/", NULL, DPS_SSRF_BLOCKED, "Blocked hostname: svc.local"},
    {"ftp://example.com/", NULL, DPS_SSRF_BAD_URL, "Invalid URL"},
    {"http://a@b@127.0.0.1/", NULL, DPS_SSRF_BAD_URL, "Invalid URL"},
    /* allowlist: exact names (case-insensitive), wildcards, CIDRs, IP entries */
    {"http://localhost/", "localhost", DPS_SSRF_ALLOWED, NULL},
    {"http://LOCALHOST:3000/", " other , LocalHost ", DPS_SSRF_ALLOWED, NULL},
    {"http://foo.internal/", "*.internal", DPS_SSRF_ALLOWED, NULL},
    {"http://a.b.internal/", "*.internal", DPS_SSRF_ALLOWED, NULL},
    {"http://internal.corp.com/", "*.corp.com", DPS_SSRF_ALLOWED, NULL},
    {"http://corp.com.internal/", "*.corp.com", DPS_SSRF_BLOCKED, "Blocked hostname: corp.com.internal"},
    {"http://10.1.2.3/", "10.0.0.0/8", DPS_SSRF_ALLOWED, NULL},
    {"http://10.1.2.3/", "10.1.2.0/24", DPS_SSRF_ALLOWED, NULL},
    {"http://10.1.3.3/", "10.1.2.0/24", DPS_SSRF_BLOCKED, "Blocked private IP address: 10.1.3.3"},
    {"http://10.1.2.3/", "10.1.2.3/32", DPS_SSRF_ALLOWED, NULL},
    {"http://10.1.2.3/", "10.9.9.9/8", DPS_SSRF_ALLOWED, NULL},
    {"http://127.0.0.1/", "0.0.0.0/0", DPS_SSRF_ALLOWED, NULL},
    {"http://10.1.2.3/", "10.1.2.3", DPS_SSRF_ALLOWED, NULL},
    {"http://[::ffff:10.1.2.3]/", "10.0.0.0/8", DPS_SSRF_ALLOWED, NULL},
    {"http://[fd00::5]/", "fd00::/8", DPS_SSRF_ALLOWED, NULL},
    {"http://[fd00::5]/", "[fd00::5]", DPS_SSRF_ALLOWED, NULL},
    {"http://[::1]/", "::1", DPS_SSRF_ALLOWED, NULL},
    {"http://[0::1]/", "[::1]", DPS_SSRF_ALLOWED, NULL},
    {"http://[fe80::1]/", "fd00::/8", DPS_SSRF_BLOCKED, "Blocked private IP address: fe80::1"},
    {"http://localhost/", "*.localhost", DPS_SSRF_BLOCKED, "Blocked hostname: localhost"},
    {"http://localhost/", ",,, ,", DPS_SSRF_BLOCKED, "Blocked hostname: localhost"},
    /* an invalid CIDR entry fails every check, public URLs included */
    {"https://example.com/", "10.0.0.0/33", DPS_SSRF_BLOCKED, "Invalid CIDR: 10.0.0.0/33"},
    {"https://example.com/", "localhost, 10.0.0/8", DPS_SSRF_BLOCKED, "Invalid CIDR: 10.0.0/8"},
    {"https://example.com/", "10.0.0.0/", DPS_SSRF_BLOCKED, "Invalid CIDR: 10.0.0.0/"},
    {"https://example.com/", "10.0.0.0/8x", DPS_SSRF_BLOCKED, "Invalid CIDR: 10.0.0.0/8x"},
    {"https://example.com/", "host/8", DPS_SSRF_BLOCKED, "Invalid CIDR: host/8"},
    {"https://example.com/", "fd00::/129", DPS_SSRF_BLOCKED, "Invalid CIDR: fd00::/129"},
};

START_TEST(check_url)
{
    dps_ssrf_allowlist_t *al = checks[_i].allow != NULL ? dps_ssrf_allowlist_parse(checks[_i].allow) : NULL;
    char why[256] = "";
    dps_ssrf_verdict_t v = dps_ssrf_check_url(checks[_i].url, al, why, sizeof(why));

    ck_assert_msg(v == checks[_i].want, "%s with [%s]: verdict %d, want %d (%s)", checks[_i].url,
                  checks[_i].allow ? checks[_i].allow : "", v, checks[_i].want, why);
    if (checks[_i].why != NULL)
        ck_assert_str_eq(why, checks[_i].why);
    dps_ssrf_allowlist_free(al);
}
END_TEST

START_TEST(allowlist_parse)
{
    dps_ssrf_allowlist_t *al = dps_ssrf_allowlist_parse(NULL);

    ck_assert_ptr_nonnull(al);
    ck_assert_ptr_null(dps_ssrf_allowlist_error(al));
    ck_assert_int_eq(dps_ssrf_allowlist_host(al, "localhost"), 0);
    dps_ssrf_allowlist_free(al);
    ck_assert_int_eq(dps_ssrf_allowlist_host(NULL, "localhost"), 0);
    ck_assert_ptr_null(dps_ssrf_allowlist_error(NULL));
    dps_ssrf_allowlist_free(NULL);

    al = dps_ssrf_allowlist_parse("a.example , *.corp.com,10.0.0.0/8,bad/99, fd00::/8,");
    ck_assert_str_eq(dps_ssrf_allowlist_error(al), "Invalid CIDR: bad/99");
    ck_assert_int_eq(dps_ssrf_allowlist_host(al, "A.Example"), 1);
    ck_assert_int_eq(dps_ssrf_allowlist_host(al, "a.example."), 1);
    ck_assert_int_eq(dps_ssrf_allowlist_host(al, "b.example"), 0);
    ck_assert_int_eq(dps_ssrf_allowlist_host(al, "x.corp.com"), 1);
    ck_assert_int_eq(dps_ssrf_allowlist_host(al, "corp.com"), 0);
    ck_assert_int_eq(dps_ssrf_allowlist_host(al, "xcorp.com"), 0);
    dps_ssrf_allowlist_free(al);
}
END_TEST

/* Fetch-time: the address a host resolved to, and the address a redirect hop connects to. */
START_TEST(check_address)
{
    dps_ssrf_allowlist_t *al = dps_ssrf_allowlist_parse("*.corp.com, 192.168.5.0/24");
    dps_ip_t ip;
    char why[256];

    ck_assert_int_eq(dps_ip_parse("10.0.0.1", &ip), 0);
    ck_assert_int_eq(dps_ssrf_check_address("api.example.com", &ip, NULL, why, sizeof(why)), DPS_SSRF_BLOCKED);
    ck_assert_str_eq(why, "Hostname api.example.com resolved to blocked private IP: 10.0.0.1");
    ck_assert_int_eq(dps_ssrf_check_address("10.0.0.1", &ip, NULL, why, sizeof(why)), DPS_SSRF_BLOCKED);
    ck_assert_str_eq(why, "Blocked private IP: 10.0.0.1");
    ck_assert_int_eq(dps_ssrf_check_address("svc.corp.com", &ip, al, why, sizeof(why)), DPS_SSRF_ALLOWED);
    ck_assert_int_eq(dps_ssrf_check_address("localhost", &ip, NULL, why, sizeof(why)), DPS_SSRF_BLOCKED);
    ck_assert_str_eq(why, "Blocked hostname: localhost");
    ck_assert_int_eq(dps_ip_parse("192.168.5.20", &ip), 0);
    ck_assert_int_eq(dps_ssrf_check_address("printer.example", &ip, al, why, sizeof(why)), DPS_SSRF_ALLOWED);
    ck_assert_int_eq(dps_ip_parse("::ffff:192.168.5.20", &ip), 0);
    ck_assert_int_eq(dps_ssrf_check_address("printer.example", &ip, al, why, sizeof(why)), DPS_SSRF_ALLOWED);
    ck_assert_int_eq(dps_ip_parse("::ffff:192.168.6.20", &ip), 0);
    ck_assert_int_eq(dps_ssrf_check_address("printer.example", &ip, al, why, sizeof(why)), DPS_SSRF_BLOCKED);
    ck_assert_str_eq(why, "Hostname printer.example resolved to blocked private IP: ::ffff:192.168.6.20");
    ck_assert_int_eq(dps_ip_parse("93.184.216.34", &ip), 0);
    ck_assert_int_eq(dps_ssrf_check_address("example.com", &ip, NULL, NULL, 0), DPS_SSRF_ALLOWED);
    dps_ssrf_allowlist_free(al);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ssrf");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, url_parse, 0, sizeof(urls) / sizeof(urls[0]));
    tcase_add_test(tc, url_long_host);
    tcase_add_loop_test(tc, ip_blocked, 0, sizeof(ips) / sizeof(ips[0]));
    tcase_add_test(tc, ip_parse_strict);
    tcase_add_test(tc, sockaddr);
    tcase_add_loop_test(tc, hostname_blocked, 0, sizeof(names) / sizeof(names[0]));
    tcase_add_loop_test(tc, check_url, 0, sizeof(checks) / sizeof(checks[0]));
    tcase_add_test(tc, allowlist_parse);
    tcase_add_test(tc, check_address);
    suite_add_tcase(s, tc);
    return dps_check_run(s);
}
