/* JavaScript's String.prototype.toLowerCase on UTF-8 text, for the case-insensitive name comparisons of
 * auto-association (otlp-ingestion.md §8.6: "Unicode lower-casing of both sides, JS semantics").
 *
 * Self-contained: the mapping is a table generated from V8/ICU (tools/gen_unicase.js; the Unicode version
 * is in src/otlp/unicase_table.inc), so results do not depend on the installed C locales or setlocale().
 * Full JS semantics: every single-code-point mapping, U+0130 → "i̇" (two code points) and the Final_Sigma
 * rule (Σ → ς at the end of a word). Bytes that are not valid UTF-8 are kept as they are, each compared
 * as itself (JavaScript would have seen U+FFFD there). Pure, thread-safe, no allocation unless named _dup. */
#ifndef DEPSERA_UNICASE_H
#define DEPSERA_UNICASE_H

#include <stddef.h>

/* Lower-case len bytes of s into out (cap bytes, always NUL-terminated when cap > 0; only whole code points
 * are written). Returns the length the full result needs (without the NUL), like snprintf: the result was
 * complete iff the return value < cap. The result is at most 3/2 × len bytes. */
size_t dps_unicase_lower(const char *s, size_t len, char *out, size_t cap);
/* Lower-cased copy of a NUL-terminated string, owned by the caller (free); NULL when out of memory. */
char *dps_unicase_lower_dup(const char *s);
/* 1 if a.toLowerCase() === b.toLowerCase() in JavaScript, else 0. NUL-terminated; NULL equals only NULL.
 * No allocation, linear time. */
int dps_unicase_eq(const char *a, const char *b);

#endif
