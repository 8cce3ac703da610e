/* `depsera migrate up | down [N] | status`: the operator's view of the schema. */
#include "depsera/cli.h"
#include "depsera/config.h"
#include "depsera/db.h"
#include "depsera/log.h"
#include "depsera/migrate.h"
#include "depsera/util.h"

#include <stdlib.h>
#include <string.h>

static int print_status(PGconn *conn)
{
    dps_mig_status_t *st;
    size_t n, counts[4] = {0};
    char err[512];

    if (dps_migrate_status(conn, &st, &n, err, sizeof(err)) != 0) {
        fprintf(stderr, "depsera migrate: %s\n", err);
        return DPS_EXIT_FAIL;
    }
    for (size_t i = 0; i < n; i++) {
        counts[st[i].state]++;
        printf("%s %-24s %-8s %s\n", st[i].id, st[i].name, dps_mig_state_name(st[i].state), st[i].applied_at);
    }
    free(st);
    printf("%zu applied, %zu pending, %zu modified, %zu unknown\n", counts[DPS_MIG_APPLIED], counts[DPS_MIG_PENDING],
           counts[DPS_MIG_MODIFIED], counts[DPS_MIG_UNKNOWN]);
    if (counts[DPS_MIG_MODIFIED] + counts[DPS_MIG_UNKNOWN] > 0) {
        fprintf(stderr, "depsera migrate: the database does not match this binary's migrations (modified or unknown)\n");
        return DPS_EXIT_FAIL;
    }
    if (counts[DPS_MIG_PENDING] > 0)
        fprintf(stderr, "depsera migrate: %zu pending: run `depsera migrate up`\n", counts[DPS_MIG_PENDING]);
    return DPS_EXIT_OK;
}

/* Parses the action and its optional count; -1 on a usage error. */
static int parse_args(int argc, char **argv, const char **action, long long *count)
{
    *count = 1;
    if (argc < 2) {
        fprintf(stderr, "depsera migrate: missing action: up, down [N] or status\n");
        return -1;
    }
    *action = argv[1];
    if (strcmp(*action, "up") != 0 && strcmp(*action, "down") != 0 && strcmp(*action, "status") != 0) {
        fprintf(stderr, "depsera migrate: unknown action \"%s\": up, down [N] or status\n", *action);
        return -1;
    }
    if (argc > 3 || (argc == 3 && strcmp(*action, "down") != 0)) {
        fprintf(stderr, "depsera migrate: unexpected argument \"%s\"\n", argv[argc - 1]);
        return -1;
    }
    if (argc == 3 && dps_parse_int(argv[2], 1, 100000, count) != 0) {
        fprintf(stderr, "depsera migrate: down N: N must be a positive integer, got \"%s\"\n", argv[2]);
        return -1;
    }
    return 0;
}

int dps_cmd_migrate(int argc, char **argv)
{
    const char *env_file = NULL, *action;
    char err[1024];
    long long count;
    dps_config_t cfg;
    PGconn *conn;
    int code = DPS_EXIT_OK;

    if (dps_cli_take_env_file(&argc, argv, &env_file) != 0)
        return DPS_EXIT_USAGE;
    if (parse_args(argc, argv, &action, &count) != 0)
        return DPS_EXIT_USAGE;
    if (dps_config_load_env(&cfg, env_file, err, sizeof(err)) != 0) {
        fprintf(stderr, "depsera: invalid configuration: %s\n", err);
        return DPS_EXIT_USAGE;
    }
    dps_log_set_role("migrate");
    dps_log_set_level((dps_log_level_t)cfg.log_level);
    conn = dps_db_connect_once(cfg.database_url, "depsera-migrate", err, sizeof(err));
    dps_config_free(&cfg);
    if (conn == NULL) {
        fprintf(stderr, "depsera migrate: cannot connect to the database: %s\n", err);
        return DPS_EXIT_FAIL;
    }
    if (strcmp(action, "status") == 0) {
        code = print_status(conn);
    } else if (strcmp(action, "up") == 0 ? dps_migrate_up(conn, stdout, err, sizeof(err)) != 0
                                          : dps_migrate_down(conn, (int)count, stdout, err, sizeof(err)) != 0) {
        fprintf(stderr, "depsera migrate %s: %s\n", action, err);
        code = DPS_EXIT_FAIL;
    }
    PQfinish(conn);
    return code;
}
