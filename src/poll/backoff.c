/* Backoff delays and circuit-breaker transitions of a service's polls (pure, see poll_backoff.h). */
#include "depsera/poll_backoff.h"

#include <string.h>

int64_t dps_poll_backoff_ms(int n)
{
    int64_t d = DPS_POLL_BACKOFF_BASE_MS;

    for (int i = 0; i < n && d < DPS_POLL_BACKOFF_MAX_MS; i++)
        d *= 2;
    return d < DPS_POLL_BACKOFF_MAX_MS ? d : DPS_POLL_BACKOFF_MAX_MS;
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

dps_poll_state_t dps_poll_after(dps_poll_state_t st, int success, int64_t interval_ms, int64_t *next_in_ms)
{
    dps_poll_state_t out;

    if (success) {
        *next_in_ms = interval_ms;
        return (dps_poll_state_t){0, DPS_CIRCUIT_CLOSED};
    }
    *next_in_ms = max64(interval_ms, dps_poll_backoff_ms(st.failures));
    out.failures = st.failures < 1000000 ? st.failures + 1 : st.failures;
    /* a failed probe re-opens whatever the count (§3.3: it is still at the threshold anyway) */
    if (out.failures >= DPS_POLL_BREAKER_THRESHOLD || st.circuit == DPS_CIRCUIT_HALF_OPEN) {
        out.circuit = DPS_CIRCUIT_OPEN;
        *next_in_ms = max64(*next_in_ms, DPS_POLL_BREAKER_COOLDOWN_MS);
    } else {
        out.circuit = DPS_CIRCUIT_CLOSED;
    }
    return out;
}

static const char *const names[] = {"closed", "open", "half_open"};

const char *dps_circuit_name(dps_circuit_t c)
{
    return (unsigned)c < 3 ? names[c] : names[0];
}

dps_circuit_t dps_circuit_parse(const char *s)
{
    for (int i = 0; i < 3; i++)
        if (s != NULL && strcmp(s, names[i]) == 0)
            return (dps_circuit_t)i;
    return DPS_CIRCUIT_CLOSED;
}
