/* The error text a failed poll stores (polling.md §5.1): known network failures as fixed phrases,
 * anything else with URLs, a private IPv4 address and file paths redacted, at most 200 characters. */
#ifndef DEPSERA_POLL_SANITIZE_H
#define DEPSERA_POLL_SANITIZE_H

#define DPS_POLL_ERROR_MAX 200 /* characters kept before "..." */

/* A new string (the caller frees it), or NULL when out of memory. msg NULL or "" gives
 * "Unknown poll error". */
char *dps_poll_sanitize_error(const char *msg);

#endif
