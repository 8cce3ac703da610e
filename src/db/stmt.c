/* Prepared statements per connection (see stmt.h). */
#include "depsera/stmt.h"
#include "depsera/log.h"

#include <string.h>

/* Set after a pooler lost a prepared statement: unnamed statements from then on. */
static int unnamed_only;

PGresult *dps_stmt_exec(dps_db_t *db, dps_stmt_t *st, const char *const *params)
{
    PGconn *conn = dps_db_conn(db);
    unsigned long serial = dps_db_serial(db);
    PGresult *res;
    const char *state;

    if (conn == NULL)
        return NULL;
    if (unnamed_only)
        return PQexecParams(conn, st->sql, st->nparams, NULL, params, NULL, NULL, 0);
    if (st->prepared_on != serial) {
        res = PQprepare(conn, st->name, st->sql, st->nparams, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            return res; /* the statement's own error (or the connection's) */
        PQclear(res);
        st->prepared_on = serial;
    }
    res = PQexecPrepared(conn, st->name, st->nparams, params, NULL, NULL, 0);
    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (state != NULL && strcmp(state, "26000") == 0) {
        DPS_LOG(DPS_LOG_WARN, "prepared statement lost (a transaction pooler?): using unnamed statements from now on",
                DPS_F_STR("statement", st->name));
        unnamed_only = 1;
    }
    return res;
}
