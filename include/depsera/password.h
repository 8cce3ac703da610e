/* Password hashing: bcrypt ($2b$, cost 12) through libxcrypt. */
#ifndef DEPSERA_PASSWORD_H
#define DEPSERA_PASSWORD_H

#include <stddef.h>

#define DPS_PASSWORD_COST 12
#define DPS_PASSWORD_HASH_MAX 128

/* Hash `password` into out (at least DPS_PASSWORD_HASH_MAX bytes) with a fresh random salt.
 * 0, or -1 if libxcrypt fails. `cost` is the bcrypt cost (DPS_PASSWORD_COST in production). */
int dps_password_hash(const char *password, int cost, char *out, size_t cap) __attribute__((warn_unused_result));
/* 1 if `password` matches `hash` (compared in constant time), 0 otherwise (including a malformed hash). */
int dps_password_verify(const char *password, const char *hash);

#endif
