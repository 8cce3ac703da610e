/* Dependencies discovered from CLIENT and PRODUCER spans (otlp-ingestion.md §8.2–§8.6): target names,
 * types, descriptions, per-target aggregation and the bridge to statuses. Pure: no I/O, no database; the
 * inputs are plain C values, so this module knows nothing about the OTLP decoders. */
#ifndef DEPSERA_OTLP_DISCOVER_H
#define DEPSERA_OTLP_DISCOVER_H

#include <stddef.h>
#include <stdint.h>

/* The primitive kinds an OTLP AnyValue unwraps to (§4.1); arrays and kvlists are dropped by the caller. */
typedef enum {
    DPS_OTLP_STRING, /* s (NULL counts as "") */
    DPS_OTLP_INT,    /* i */
    DPS_OTLP_DOUBLE, /* d */
    DPS_OTLP_BOOL,   /* b (0 or not) */
} dps_otlp_kind_t;

/* One span attribute. A span's attributes are an array of these in wire order: when a key repeats, the
 * later one wins (§8.2). Everything is borrowed. */
typedef struct {
    const char *key;
    dps_otlp_kind_t kind;
    union {
        const char *s;
        int64_t i;
        double d;
        int b;
    };
} dps_otlp_attr_t;

#define DPS_SPAN_KIND_CLIENT 3
#define DPS_SPAN_KIND_PRODUCER 4
#define DPS_SPAN_STATUS_ERROR 2

/* "Truthy" (§8.2): a non-empty string, a number other than 0 and NaN, or true. NULL (absent) is falsy. */
int dps_discover_truthy(const dps_otlp_attr_t *a);

/* The host name of an absolute URL as WHATWG's `new URL(url).hostname` gives it, for rules 6 and 8 of
 * target resolution: scheme://[userinfo@]host[:port]..., ASCII lower-cased (also for non-special schemes,
 * where WHATWG would keep the case), percent-decoded, IPv4 numbers in dotted-decimal form (0x7f.1 →
 * 127.0.0.1), IPv6 in brackets and in WHATWG's compressed form, no port. Refused (-1): no scheme, no host,
 * an empty host (file:///x, http://user@/), a bad port or IP literal, forbidden host characters, and hosts
 * that are not ASCII after percent-decoding (WHATWG would apply IDNA; we do not guess). Labels written as
 * "xn--..." are kept as written. Tab and newline characters anywhere are ignored, leading and trailing
 * controls and spaces trimmed, as WHATWG does. `url` is len arbitrary bytes (NUL allowed).
 * Writes the NUL-terminated host into out and returns its length (> 0), or -1 (none, or it did not fit:
 * cap >= len + 42 always suffices). */
int dps_discover_url_host(const char *url, size_t len, char *out, size_t cap);

/* Target name (§8.3 rules 1–6, then the older names net.peer.name and http.url; net.peer.ip never):
 * 1 and *out = the name (malloc'd, caller frees), 0 when no rule yields one, -1 when out of memory.
 * Non-string values are converted as JavaScript's String() would (5 → "5", 1e21 → "1e+21", true → "true"). */
int dps_discover_target_name(const dps_otlp_attr_t *attrs, size_t n, char **out) __attribute__((warn_unused_result));
/* Type inference of §8.4 (static string): cache, database, message_queue, grpc, rest or other. */
const char *dps_discover_type(const dps_otlp_attr_t *attrs, size_t n);
/* Description of §8.4 (`a ?? b`: a if the attribute is present, whatever its value): 0 and *out (malloc'd,
 * possibly "") or -1 when out of memory. span_name NULL counts as "". */
int dps_discover_description(const dps_otlp_attr_t *attrs, size_t n, const char *span_name, char **out)
    __attribute__((warn_unused_result));
/* Span latency (§8.1): (end − start) ns / 10^6 truncated toward zero; negative when end < start. Exact for
 * all inputs (|result| < 1.9e13). */
int64_t dps_discover_latency_ms(uint64_t start_ns, uint64_t end_ns);
/* §8.6e: association_type for a dependency type: database, cache, message_queue as themselves, rest and
 * grpc → api_call, anything else (NULL included) → other. Static string. */
const char *dps_discover_association_type(const char *dependency_type);

/* One span offered to the aggregator. Everything is borrowed for the duration of the call. */
typedef struct {
    const char *name;    /* span name; NULL counts as "" */
    const char *span_id; /* lower-case hex, only for the warning; NULL counts as "" */
    int kind;            /* span kind enum; only CLIENT (3) and PRODUCER (4) are used */
    uint64_t start_ns, end_ns;
    int times_valid; /* 0 when either time was unparsable: latency 0 */
    int status_code; /* status.code; 2 is an error */
    const dps_otlp_attr_t *attrs;
    size_t n_attrs;
} dps_discover_span_t;

/* One discovered target, with its bridge values (§8.5). Strings are owned by the aggregator. */
typedef struct {
    const char *name;        /* target name (the dependency name) */
    const char *type;        /* of the first span (static) */
    const char *description; /* of the first span; NULL when empty (absent in the status) */
    int kind;                /* of the first span */
    uint64_t span_count;
    int error;          /* some span had status code 2 */
    int64_t latency_ms; /* round(Σ latency / span_count), half up */
    int healthy;        /* !error */
    int state;          /* 2 if error, else 0 */
    int code;           /* 500 if error, else 200 */
} dps_discover_target_t;

/* Aggregates the spans of one resource entry (warnings are scoped to it, per Q-TRACEWARN). Memory grows
 * with the number of distinct targets and kept warnings only; target lookup is a hash table with a
 * random key, so no input makes it quadratic. */
typedef struct dps_discover dps_discover_t;

/* A new aggregator keeping at most max_warnings warnings (more are counted, not kept). NULL when out of
 * memory. Release with dps_discover_destroy. */
dps_discover_t *dps_discover_create(size_t max_warnings);
void dps_discover_destroy(dps_discover_t *d);
/* Offer one span (any kind: others than CLIENT/PRODUCER are ignored). A span without a target name adds
 * the warning `Span "<name>" (<spanId>) has no resolvable target name — skipped for dependency discovery`.
 * 0, or -1 when out of memory (the aggregator stays usable and unchanged by the span). */
int dps_discover_add(dps_discover_t *d, const dps_discover_span_t *span) __attribute__((warn_unused_result));
/* Targets in order of first appearance; i < dps_discover_count(d). Valid until the next add or destroy. */
size_t dps_discover_count(const dps_discover_t *d);
const dps_discover_target_t *dps_discover_get(const dps_discover_t *d, size_t i);
/* Kept warnings in order (i < dps_discover_warning_count), and how many more were not kept. */
size_t dps_discover_warning_count(const dps_discover_t *d);
const char *dps_discover_warning(const dps_discover_t *d, size_t i);
size_t dps_discover_warnings_dropped(const dps_discover_t *d);

#endif
