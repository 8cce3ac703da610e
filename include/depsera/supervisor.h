/* `depsera serve`: binds the socket, forks and supervises workers, poller and pruner. */
#ifndef DEPSERA_SUPERVISOR_H
#define DEPSERA_SUPERVISOR_H

#include "depsera/config.h"

typedef struct {
    int no_poller;        /* --no-poller */
    int no_pruner;        /* --no-pruner */
    const char *env_file; /* --env-file, re-read on SIGHUP; NULL = none */
} dps_serve_opts_t;

/* Runs the supervisor until SIGTERM/SIGINT. Takes ownership of *cfg (frees it).
 * Returns the process exit code (0 after a graceful stop, 1 on start-up failure). */
int dps_supervisor_main(dps_config_t *cfg, const dps_serve_opts_t *opts);

#endif
