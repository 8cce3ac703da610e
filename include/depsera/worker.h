/* An HTTP worker process: one h2o event loop accepting on the supervisor's shared socket. */
#ifndef DEPSERA_WORKER_H
#define DEPSERA_WORKER_H

#include "depsera/balance.h"
#include "depsera/config.h"

/* Runs a worker until SIGTERM has been handled (drain) or a fatal error. `listen_fd` is the shared
 * listening socket; when accepting, the worker writes its pid to `ready_fd` (then closes it; -1 = none).
 * `balance` (may be NULL) is shared with the other workers, where this one owns `slot`.
 * Returns the process exit code. */
int dps_worker_main(const dps_config_t *cfg, int listen_fd, int ready_fd, dps_balance_t *balance, int slot);

#endif
