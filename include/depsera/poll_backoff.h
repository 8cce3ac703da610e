/* Backoff and circuit breaker of one service's polls (polling.md §3.1-§3.3, open-questions D4): pure
 * arithmetic on the state the poll schedule stores in PostgreSQL. */
#ifndef DEPSERA_POLL_BACKOFF_H
#define DEPSERA_POLL_BACKOFF_H

#include <stdint.h>

#define DPS_POLL_BACKOFF_BASE_MS 1000       /* delay(0) */
#define DPS_POLL_BACKOFF_MAX_MS 300000      /* delays are capped here */
#define DPS_POLL_BREAKER_THRESHOLD 10       /* consecutive failures that open the circuit */
#define DPS_POLL_BREAKER_COOLDOWN_MS 300000 /* open circuit: the probe comes this long after the failure */

typedef enum {
    DPS_CIRCUIT_CLOSED,    /* polls run on their interval (or backoff) */
    DPS_CIRCUIT_OPEN,      /* no poll before the cooldown has passed since the failure that opened it */
    DPS_CIRCUIT_HALF_OPEN, /* a probe is running: success closes, failure re-opens */
} dps_circuit_t;

/* What the schedule keeps per service. */
typedef struct {
    int failures; /* consecutive failures */
    dps_circuit_t circuit;
} dps_poll_state_t;

/* §3.2: min(1000 x 2^n, 300000) ms after n consecutive failures before this one (n < 0 counts as 0). */
int64_t dps_poll_backoff_ms(int n);

/* The state after one poll of a service whose interval is interval_ms, and the delay until its next
 * poll: success closes the circuit and resets the count (next poll after the interval); a failure
 * counts, waits max(interval, backoff) and opens the circuit at the threshold, in which case (and
 * after a failed probe) the next poll is the probe, DPS_POLL_BREAKER_COOLDOWN_MS later at the earliest
 * (D4: the probe comes 5 minutes after opening, not 10). */
dps_poll_state_t dps_poll_after(dps_poll_state_t st, int success, int64_t interval_ms, int64_t *next_in_ms);

/* Names as stored in poll_schedule.circuit ("closed", "open", "half_open"), and back (unknown: closed). */
const char *dps_circuit_name(dps_circuit_t c);
dps_circuit_t dps_circuit_parse(const char *s);

#endif
