/* An HTTP worker process: one h2o event loop accepting on the supervisor's shared socket. */
#ifndef DEPSERA_WORKER_H
#define DEPSERA_WORKER_H

#include "depsera/balance.h"
#include "depsera/config.h"

#include <openssl/ssl.h>

/* What the supervisor opened for its workers before forking them; they share all of it. */
typedef struct {
    int fd;           /* PORT: plain HTTP, or HTTPS when ssl_ctx is set */
    int http_fd;      /* HTTP_PORT with ENABLE_HTTPS: /api/health and redirects to HTTPS; -1 = none */
    SSL_CTX *ssl_ctx; /* ENABLE_HTTPS: the certificate every worker presents; NULL = plain HTTP */
} dps_listeners_t;

/* Runs a worker until SIGTERM has been handled (drain) or a fatal error, accepting on the shared
 * listening sockets `ls`; when accepting, the worker writes its pid to `ready_fd` (then closes it;
 * -1 = none). `balance` (may be NULL) is shared with the other workers, where this one owns `slot`.
 * Returns the process exit code. */
int dps_worker_main(const dps_config_t *cfg, const dps_listeners_t *ls, int ready_fd, dps_balance_t *balance, int slot);

#endif
