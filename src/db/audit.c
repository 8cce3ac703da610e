/* Audit rows (data-model.md §13): written in the caller's transaction, never failing it. */
#include "depsera/audit.h"
#include "depsera/db.h"
#include "depsera/log.h"

#include <stdlib.h>

static int exec_ok(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    return ok;
}

void dps_audit(dps_req_t *r, const char *action, const char *resource_type, const char *resource_id, json_t *details)
{
    PGconn *conn = dps_db_conn(dps_worker_db(r->worker));
    char *text = details != NULL ? json_dumps(details, JSON_COMPACT) : NULL;
    const char *params[6] = {r->user != NULL ? r->user->id : NULL, action, resource_type, resource_id, text,
                             r->client_ip[0] ? r->client_ip : NULL};
    PGresult *res;

    json_decref(details);
    if (conn == NULL || r->user == NULL || !exec_ok(conn, "SAVEPOINT dps_audit")) {
        DPS_LOG(DPS_LOG_ERROR, "audit row not written", DPS_F_STR("action", action));
        free(text);
        return;
    }
    res = PQexecParams(conn,
                       "INSERT INTO audit_log (user_id, action, resource_type, resource_id, details, ip_address) "
                       "VALUES ($1, $2, $3, $4, $5::jsonb, $6)",
                       6, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        DPS_LOG(DPS_LOG_ERROR, "audit row not written", DPS_F_STR("action", action), DPS_F_STR("error", PQresultErrorMessage(res)));
        exec_ok(conn, "ROLLBACK TO SAVEPOINT dps_audit");
    }
    exec_ok(conn, "RELEASE SAVEPOINT dps_audit");
    PQclear(res);
    free(text);
}
