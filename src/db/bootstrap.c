/* Creating the bootstrap admin of a fresh local-auth installation (graph-and-api.md §3.1). */
#include "depsera/bootstrap.h"
#include "depsera/db.h"
#include "depsera/log.h"
#include "depsera/password.h"

#include <string.h>

static int users_exist(PGconn *conn, char *err, size_t cap)
{
    PGresult *res = PQexec(conn, "SELECT EXISTS (SELECT 1 FROM users)");
    int r = -1;

    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        r = PQgetvalue(res, 0, 0)[0] == 't';
    else
        snprintf(err, cap, "%s", PQresultErrorMessage(res));
    PQclear(res);
    return r;
}

int dps_bootstrap_admin(PGconn *conn, const dps_config_t *cfg, char *err, size_t cap)
{
    char hash[DPS_PASSWORD_HASH_MAX], name[256];
    const char *params[3];
    const char *at;
    PGresult *res;
    int exists;

    if (!cfg->local_auth || (exists = users_exist(conn, err, cap)) == 1)
        return 0;
    if (exists < 0)
        return -1;
    if (*cfg->admin_email == '\0' || (at = strchr(cfg->admin_email, '@')) == NULL || *cfg->admin_password == '\0') {
        snprintf(err, cap, "ADMIN_EMAIL and ADMIN_PASSWORD are required to create the first admin (LOCAL_AUTH=true, no user yet)");
        return 1;
    }
    if (strlen(cfg->admin_password) < 8) {
        snprintf(err, cap, "ADMIN_PASSWORD: must have at least 8 characters");
        return 1;
    }
    if (dps_password_hash(cfg->admin_password, DPS_PASSWORD_COST, hash, sizeof(hash)) != 0) {
        snprintf(err, cap, "password hashing failed");
        return -1;
    }
    snprintf(name, sizeof(name), "%.*s", (int)(at - cfg->admin_email), cfg->admin_email);
    params[0] = cfg->admin_email, params[1] = name, params[2] = hash;
    /* one statement: the advisory lock serialises racing processes, the NOT EXISTS re-checks */
    res = PQexecParams(conn,
                       "WITH lock AS (SELECT pg_advisory_xact_lock(1685086066, 3)) "
                       "INSERT INTO users (email, name, password_hash, role) SELECT $1, $2, $3, 'admin' FROM lock "
                       "WHERE NOT EXISTS (SELECT 1 FROM users)",
                       3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        snprintf(err, cap, "%s", PQresultErrorMessage(res));
        PQclear(res);
        return -1;
    }
    if (strcmp(PQcmdTuples(res), "1") == 0)
        DPS_LOG(DPS_LOG_INFO, "bootstrap admin created", DPS_F_STR("email", cfg->admin_email));
    PQclear(res);
    return 0;
}
