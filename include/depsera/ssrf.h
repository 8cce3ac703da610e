/* SSRF rules (polling.md §4): which URLs and addresses a health poll may reach. Pure functions, no DNS. */
#ifndef DEPSERA_SSRF_H
#define DEPSERA_SSRF_H

#include <stddef.h>
#include <sys/socket.h>

#define DPS_SSRF_HOST_MAX 253 /* longest DNS name (without the trailing dot) */

/* An IPv4 or IPv6 address. IPv4 uses b[0..3]; both are in network byte order. */
typedef struct {
    int family; /* 4 or 6 */
    unsigned char b[16];
} dps_ip_t;

/* What an http(s) URL names, as the WHATWG URL parser (the original's `new URL`) and libcurl both see
 * it: URLs on which they could disagree (several '@', '\' before the path, non-ASCII hosts) are
 * refused rather than guessed. */
typedef struct {
    int https;                        /* scheme https (else http) */
    char host[DPS_SSRF_HOST_MAX + 2]; /* lower case, percent-decoded; IP literals in canonical form, no brackets */
    int is_ip;                        /* the host is an IP literal (bracketed IPv6, or any WHATWG IPv4 form) */
    dps_ip_t ip;                      /* when is_ip */
    int port;                         /* explicit port, else 80 / 443 */
} dps_url_t;

/* Parse an absolute http:// or https:// URL. 0, or -1 if it is not one (other schemes included). */
int dps_url_parse(const char *url, dps_url_t *out) __attribute__((warn_unused_result));

/* Parse an IP address in strict form: dotted-quad IPv4, or IPv6 without brackets (inet_pton forms).
 * 0, or -1 if it is neither. */
int dps_ip_parse(const char *s, dps_ip_t *out) __attribute__((warn_unused_result));
/* Canonical text of an address (inet_ntop) into buf (46 bytes suffice). */
void dps_ip_format(const dps_ip_t *ip, char *buf, size_t cap);
/* The address of a socket address (AF_INET / AF_INET6); 0, or -1 for other families. For the fetch-time
 * check on the address a connection is about to use. */
int dps_ip_from_sockaddr(const struct sockaddr *sa, dps_ip_t *out) __attribute__((warn_unused_result));

/* 1 if the address is private, loopback, link-local, reserved, documentation, multicast or otherwise
 * not a public unicast target: the IPv4 ranges of polling.md §4, and for IPv6 ::/96 (unspecified,
 * loopback, IPv4-compatible), fe80::/10, fec0::/10, fc00::/7, ff00::/8, 100::/64, 2001:db8::/32,
 * 64:ff9b:1::/48, and the IPv4 address embedded in ::ffff:0:0/96, 64:ff9b::/96 and 2002::/16. */
int dps_ip_is_blocked(const dps_ip_t *ip);
/* 1 for localhost and names ending in .local, .internal or .localhost (case-insensitive; one trailing
 * dot ignored). */
int dps_ssrf_hostname_blocked(const char *host);

/* A parsed allowlist (polling.md §4.1): comma-separated entries, trimmed, empty ones dropped.
 *   a.b.c.d/p (0-32) or IPv6/p (0-128)  CIDR; an IPv4 CIDR also matches IPv4-mapped IPv6 addresses
 *   *.suffix                            any host ending in .suffix (not suffix itself)
 *   anything else                       an exact host, case-insensitive; an IP literal (brackets
 *                                       allowed) matches that address in any spelling
 * An entry with '/' that is not a valid CIDR makes the list invalid: every check then fails (closed). */
typedef struct dps_ssrf_allowlist dps_ssrf_allowlist_t;

/* Parse `text` (NULL or "" = empty list). The result is owned by the caller (dps_ssrf_allowlist_free);
 * NULL only when out of memory. */
dps_ssrf_allowlist_t *dps_ssrf_allowlist_parse(const char *text);
void dps_ssrf_allowlist_free(dps_ssrf_allowlist_t *al);
/* The first invalid entry ("Invalid CIDR: <entry>"), or NULL if the list is valid. */
const char *dps_ssrf_allowlist_error(const dps_ssrf_allowlist_t *al);
/* 1 if the host name matches an exact or wildcard entry (or an IP entry equal to the IP-literal host). */
int dps_ssrf_allowlist_host(const dps_ssrf_allowlist_t *al, const char *host);
/* 1 if the address is inside a CIDR entry (or equal to an IP entry). */
int dps_ssrf_allowlist_ip(const dps_ssrf_allowlist_t *al, const dps_ip_t *ip);

typedef enum {
    DPS_SSRF_ALLOWED, /* the URL or address may be used */
    DPS_SSRF_BAD_URL, /* not an absolute http(s) URL: "<field> must be a valid HTTP or HTTPS URL" */
    DPS_SSRF_BLOCKED, /* targets a private or internal address, or the allowlist is invalid */
} dps_ssrf_verdict_t;

/* Save-time check of a URL (no DNS): allowlisted host or IP first, then blocked names and IP literals.
 * `al` may be NULL (empty list). On BAD_URL / BLOCKED a reason ("Blocked hostname: localhost",
 * "Blocked private IP address: 10.0.0.1", ...) is written to why (may be NULL) for logs. */
dps_ssrf_verdict_t dps_ssrf_check_url(const char *url, const dps_ssrf_allowlist_t *al, char *why, size_t cap);

/* Fetch-time check of one address that `host` (a dps_url_t host) resolved to, or of the address a
 * connection or redirect hop is about to use. Reasons: "Blocked private IP: <ip>" for IP-literal hosts,
 * "Hostname <h> resolved to blocked private IP: <ip>" otherwise. */
dps_ssrf_verdict_t dps_ssrf_check_address(const char *host, const dps_ip_t *addr, const dps_ssrf_allowlist_t *al, char *why,
                                          size_t cap);

#endif
