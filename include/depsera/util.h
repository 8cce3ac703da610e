/* Small helpers shared by every module: clocks, time formatting, hex, strict number parsing. */
#ifndef DEPSERA_UTIL_H
#define DEPSERA_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define DPS_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Wall clock in milliseconds since the epoch. */
int64_t dps_now_ms(void);
/* Monotonic clock in milliseconds (for timeouts and durations). */
int64_t dps_mono_ms(void);
/* Monotonic clock in microseconds. */
int64_t dps_mono_us(void);
/* Format epoch milliseconds as ISO-8601 UTC with milliseconds and Z: 2026-04-07T02:10:00.123Z (needs 25 bytes). */
void dps_time_iso8601(int64_t epoch_ms, char *buf, size_t cap);

/* Lower-case hex of `len` bytes into out (2*len+1 bytes). */
void dps_hex_encode(const unsigned char *in, size_t len, char *out);

/* Parse a whole base-10 integer in [min, max]; 0 on success, -1 on any junk, overflow or range error. */
int dps_parse_int(const char *s, long long min, long long max, long long *out) __attribute__((warn_unused_result));
/* Parse a whole decimal number in [min, max]; 0 on success, -1 otherwise. */
int dps_parse_double(const char *s, double min, double max, double *out) __attribute__((warn_unused_result));

/* Fill buf with cryptographically random bytes; 0 on success, -1 on failure. */
int dps_random_bytes(void *buf, size_t len) __attribute__((warn_unused_result));

/* 1 if s is a UUID in the canonical 8-4-4-4-12 hex form (either case). Ids from URLs that are not
 * UUIDs behave as unknown ids (404), never as database errors. */
int dps_is_uuid(const char *s);

/* The bounds [*from, *to) of s (len bytes of valid UTF-8) without the leading and trailing white
 * space that JavaScript's String.prototype.trim removes (the API trims names as the original did). */
void dps_js_trim(const char *s, size_t len, size_t *from, size_t *to);
/* JavaScript's String(d) for a double into buf (at least 32 bytes): shortest round-trip digits,
 * plain notation for 1e-7 <= |d| < 1e21, exponent notation otherwise; NaN, Infinity, -Infinity. */
void dps_js_number(double d, char *buf);

/* Sleep for ms milliseconds, returning early (with -1) if interrupted by a signal. */
int dps_sleep_ms(int64_t ms);

#endif
