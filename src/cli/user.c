/* `depsera user create`: an operator creates a local user without the web UI. */
#include "depsera/cli.h"
#include "depsera/config.h"
#include "depsera/db.h"
#include "depsera/log.h"
#include "depsera/password.h"

#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

typedef struct {
    const char *email, *name, *role, *password_file, *env_file;
} user_opts_t;

static int parse_opts(int argc, char **argv, user_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    if (argc < 2 || strcmp(argv[1], "create") != 0) {
        fprintf(stderr, "depsera user: expected `create` (see `depsera user --help`)\n");
        return -1;
    }
    for (int i = 2; i < argc; i++) {
        const char **dst = strcmp(argv[i], "--email") == 0           ? &o->email
                           : strcmp(argv[i], "--name") == 0          ? &o->name
                           : strcmp(argv[i], "--role") == 0          ? &o->role
                           : strcmp(argv[i], "--password-file") == 0 ? &o->password_file
                           : strcmp(argv[i], "--env-file") == 0      ? &o->env_file
                                                                     : NULL;
        if (dst == NULL || i + 1 >= argc) {
            fprintf(stderr, "depsera user create: %s \"%s\"\n", dst == NULL ? "unknown option" : "missing value for", argv[i]);
            return -1;
        }
        *dst = argv[++i];
    }
    if (o->email == NULL || strchr(o->email, '@') == NULL || o->name == NULL || *o->name == '\0') {
        fprintf(stderr, "depsera user create: --email (an address) and --name are required\n");
        return -1;
    }
    if (o->role == NULL)
        o->role = "user";
    if (strcmp(o->role, "admin") != 0 && strcmp(o->role, "user") != 0) {
        fprintf(stderr, "depsera user create: --role must be one of: admin, user\n");
        return -1;
    }
    return 0;
}

/* First line of the file, or of standard input (without echo on a terminal). */
static int read_password(const char *file, char *buf, size_t cap)
{
    FILE *f = file != NULL ? fopen(file, "r") : stdin;
    struct termios old, quiet;
    int tty = file == NULL && isatty(STDIN_FILENO), ok;

    if (f == NULL) {
        perror(file);
        return -1;
    }
    if (tty && tcgetattr(STDIN_FILENO, &old) == 0) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
        fputs("Password: ", stderr);
    }
    ok = fgets(buf, (int)cap, f) != NULL;
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    if (file != NULL)
        fclose(f);
    if (!ok)
        return -1;
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

static int insert_user(PGconn *conn, const user_opts_t *o, const char *hash)
{
    const char *params[] = {o->email, o->name, hash, o->role};
    PGresult *res = PQexecParams(conn,
                                 "INSERT INTO users (email, name, password_hash, role) VALUES ($1, $2, $3, $4) RETURNING id",
                                 4, NULL, params, NULL, NULL, 0);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    int code = DPS_EXIT_OK;

    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        printf("created user %s (%s, role %s)\n", PQgetvalue(res, 0, 0), o->email, o->role);
    } else if (state != NULL && strcmp(state, "23505") == 0) {
        fprintf(stderr, "depsera user create: a user with this email already exists\n");
        code = DPS_EXIT_FAIL;
    } else {
        fprintf(stderr, "depsera user create: %s", PQresultErrorMessage(res));
        code = DPS_EXIT_FAIL;
    }
    PQclear(res);
    return code;
}

int dps_cmd_user(int argc, char **argv)
{
    char password[1024], hash[DPS_PASSWORD_HASH_MAX], err[512];
    user_opts_t o;
    dps_config_t cfg;
    PGconn *conn;
    int code;

    if (parse_opts(argc, argv, &o) != 0)
        return DPS_EXIT_USAGE;
    if (dps_config_load_env(&cfg, o.env_file, err, sizeof(err)) != 0) {
        fprintf(stderr, "depsera: invalid configuration: %s\n", err);
        return DPS_EXIT_USAGE;
    }
    if (read_password(o.password_file, password, sizeof(password)) != 0 || strlen(password) < 8) {
        fprintf(stderr, "depsera user create: the password must have at least 8 characters\n");
        dps_config_free(&cfg);
        return DPS_EXIT_USAGE;
    }
    code = dps_password_hash(password, DPS_PASSWORD_COST, hash, sizeof(hash));
    explicit_bzero(password, sizeof(password));
    if (code != 0) {
        fprintf(stderr, "depsera user create: password hashing failed\n");
        dps_config_free(&cfg);
        return DPS_EXIT_FAIL;
    }
    conn = dps_db_connect_once(cfg.database_url, "depsera-cli", err, sizeof(err));
    dps_config_free(&cfg);
    if (conn == NULL) {
        fprintf(stderr, "depsera user create: cannot connect to the database: %s\n", err);
        return DPS_EXIT_FAIL;
    }
    code = insert_user(conn, &o, hash);
    PQfinish(conn);
    return code;
}
