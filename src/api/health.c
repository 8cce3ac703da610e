/* Health endpoints: /api/health asks PostgreSQL, /api/health/live only proves the worker answers. */
#include "depsera/db.h"
#include "depsera/http.h"
#include "depsera/routes.h"

void dps_api_health_live(dps_req_t *r)
{
    dps_http_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

/* The query reads the migrations table so that it proves the schema is reachable, not just the server. */
void dps_api_health(dps_req_t *r)
{
    dps_db_t *db = dps_worker_db(r->worker);

    /* a second attempt on a fresh connection when the first one turns out to be stale (server restarted) */
    for (int attempt = 0; attempt < 2; attempt++) {
        PGconn *conn = dps_db_conn(db);
        PGresult *res;
        int ok;

        if (conn == NULL)
            break;
        res = PQexec(conn, "SELECT count(*) FROM _migrations");
        ok = PQresultStatus(res) == PGRES_TUPLES_OK;
        PQclear(res);
        if (ok) {
            dps_http_json(r, 200, json_pack("{s:s}", "status", "ok"));
            return;
        }
        if (!dps_db_check(db))
            break; /* the connection is fine: the query itself failed */
    }
    dps_http_json(r, 503, json_pack("{s:s,s:s}", "status", "unavailable", "error", "Database unavailable"));
}
