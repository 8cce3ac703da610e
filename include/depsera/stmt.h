/* Statements prepared once per connection (PQprepare, then PQexecPrepared): the hot statements of
 * ingestion are planned once instead of on every request. Behind a pooler that cannot keep prepared
 * statements (PgBouncer in transaction mode before 1.21), the first "prepared statement does not
 * exist" error switches the process to unnamed statements for good. */
#ifndef DEPSERA_STMT_H
#define DEPSERA_STMT_H
#include <libpq-fe.h>

#include "depsera/db.h"

typedef struct {
    const char *name; /* unique in the process */
    const char *sql;
    int nparams;
    unsigned long prepared_on; /* dps_db_serial of the connection it was prepared on, 0 = none */
} dps_stmt_t;

#define DPS_STMT(name, sql, nparams)                                                                                               \
    {                                                                                                                              \
        (name), (sql), (nparams), 0                                                                                                \
    }

/* Executes st with text parameters on db's current connection (which the caller got from
 * dps_db_conn). The result, whatever its status (the caller checks and clears it). */
PGresult *dps_stmt_exec(dps_db_t *db, dps_stmt_t *st, const char *const *params);

#endif
