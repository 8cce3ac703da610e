/* The first admin of a local-auth installation, from ADMIN_EMAIL / ADMIN_PASSWORD. */
#ifndef DEPSERA_BOOTSTRAP_H
#define DEPSERA_BOOTSTRAP_H

#include <libpq-fe.h>
#include <stddef.h>

#include "depsera/config.h"

/* In local mode with an empty users table, create the admin (name = the part of the email before '@').
 * Safe when several processes race (advisory lock, re-check). Returns 0 when there is nothing to do or
 * the admin was created, 1 when it is needed but ADMIN_EMAIL/ADMIN_PASSWORD are missing or the
 * password is shorter than 8 characters, -1 on a database error; the reason is in err. */
int dps_bootstrap_admin(PGconn *conn, const dps_config_t *cfg, char *err, size_t cap) __attribute__((warn_unused_result));

#endif
