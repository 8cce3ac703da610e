/* The background processes: the health poller and the retention pruner. */
#ifndef DEPSERA_AUX_H
#define DEPSERA_AUX_H

#include "depsera/config.h"

/* Each runs its loop until SIGTERM/SIGINT (or the death of its parent, which sends SIGTERM) and
 * returns the process exit code. `standalone` is 1 when started as its own command. */
int dps_poller_main(const dps_config_t *cfg, int standalone);
int dps_pruner_main(const dps_config_t *cfg, int standalone);

#endif
