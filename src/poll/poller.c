/* The health poller process. This far it is its loop: connection, LISTEN depsera_poll, tick, stop;
 * scheduling and fetching arrive with the poller issue. */
#include "depsera/aux.h"
#include "depsera/background.h"
#include "depsera/log.h"

#define POLL_TICK_MS 5000 /* polling.md §3 */

int dps_poller_main(const dps_config_t *cfg, int standalone)
{
    dps_background_t bg = {"depsera-poller", "depsera_poll", POLL_TICK_MS, NULL, NULL, NULL};

    if (standalone)
        dps_log_set_role("poller");
    return dps_background_run(cfg, &bg);
}
