/* The retention pruner process. This far it is its loop: connection, LISTEN depsera_retention, a
 * check every minute, stop; the retention work arrives with the pruner issue. */
#include "depsera/aux.h"
#include "depsera/background.h"
#include "depsera/log.h"

#define PRUNE_CHECK_MS 60000 /* retention.md §1 */

int dps_pruner_main(const dps_config_t *cfg, int standalone)
{
    dps_background_t bg = {"depsera-pruner", "depsera_retention", PRUNE_CHECK_MS, NULL, NULL, NULL};

    if (standalone)
        dps_log_set_role("pruner");
    return dps_background_run(cfg, &bg);
}
