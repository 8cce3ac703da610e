/* The command table and the commands that start processes, migrate, and describe the configuration. */
#include "depsera/aux.h"
#include "depsera/cli.h"
#include "depsera/config.h"
#include "depsera/db.h"
#include "depsera/log.h"
#include "depsera/migrate.h"
#include "depsera/supervisor.h"
#include "depsera/util.h"

#include <stdlib.h>
#include <string.h>

const dps_command_t dps_commands[] = {
    {"serve", dps_cmd_serve, "serve [--no-poller] [--no-pruner] [--env-file FILE]",
     "Bind HOST:PORT, fork WORKERS HTTP workers plus one poller and one pruner, and supervise them.\n"
     "  --no-poller       do not start the poller (run `depsera poller` elsewhere)\n"
     "  --no-pruner       do not start the pruner (run `depsera pruner` elsewhere)\n"
     "  --env-file FILE   read NAME=value lines that override the environment; re-read on SIGHUP\n"
     "Signals: SIGTERM/SIGINT drain and exit 0; SIGHUP reloads the configuration and replaces the\n"
     "workers one at a time. Refuses to start when migrations are pending, modified or unknown.\n"},
    {"poller", dps_cmd_poller, "poller [--env-file FILE]", "Run the health poller alone (split deployments).\n"},
    {"pruner", dps_cmd_pruner, "pruner [--env-file FILE]", "Run the retention pruner alone (split deployments).\n"},
    {"migrate", dps_cmd_migrate, "migrate up | down [N] | status [--env-file FILE]",
     "  up        apply every pending migration (safe to run concurrently)\n"
     "  down [N]  revert the last N applied migrations (default 1)\n"
     "  status    list applied, pending, modified and unknown migrations; exit 1 if any is modified or unknown\n"},
    {"user", dps_cmd_user, "user create --email EMAIL --name NAME [--role admin|user] [--password-file FILE] [--env-file FILE]",
     "Create a local user (role defaults to user). The password is read from FILE, or from standard\n"
     "input (first line), never from the command line. It must have at least 8 characters.\n"},
    {"config", dps_cmd_config, "config [--roff] [--env-file FILE]",
     "Print the effective configuration (secrets masked), or with --roff the ENVIRONMENT section of\n"
     "the man page. Exits 2 if the configuration is invalid.\n"},
    {"version", dps_cmd_version, "version", "Print the version.\n"},
};
const unsigned dps_commands_count = DPS_ARRAY_SIZE(dps_commands);

void dps_cli_usage(FILE *out)
{
    fputs("usage: depsera <command> [options]\n\ncommands:\n", out);
    for (unsigned i = 0; i < dps_commands_count; i++)
        fprintf(out, "  depsera %s\n", dps_commands[i].synopsis);
    fputs("\n`depsera <command> --help` describes one command. Exit status: 0 success, 1 failure,\n"
          "2 usage or configuration error.\n\n",
          out);
    dps_config_print_help(out);
}

void dps_cli_command_help(const dps_command_t *cmd, FILE *out)
{
    fprintf(out, "usage: depsera %s\n\n%s\n", cmd->synopsis, cmd->help);
    dps_config_print_help(out);
}

int dps_cli_take_env_file(int *argc, char **argv, const char **file)
{
    *file = NULL;
    for (int i = 1; i < *argc; i++) {
        if (strcmp(argv[i], "--env-file") != 0)
            continue;
        if (i + 1 >= *argc) {
            fprintf(stderr, "depsera: --env-file needs a file name\n");
            return -1;
        }
        *file = argv[i + 1];
        memmove(&argv[i], &argv[i + 2], (size_t)(*argc - i - 2) * sizeof(char *));
        *argc -= 2;
        i--;
    }
    return 0;
}

/* Loads the configuration or explains why not. */
static int load_config(dps_config_t *cfg, const char *env_file)
{
    char err[512];

    if (dps_config_load_env(cfg, env_file, err, sizeof(err)) != 0) {
        fprintf(stderr, "depsera: invalid configuration: %s\n", err);
        return -1;
    }
    dps_log_set_level((dps_log_level_t)cfg->log_level);
    return 0;
}

static int bad_usage(const char *cmd, const char *arg)
{
    fprintf(stderr, "depsera %s: unexpected argument \"%s\" (see `depsera %s --help`)\n", cmd, arg, cmd);
    return DPS_EXIT_USAGE;
}

int dps_cmd_serve(int argc, char **argv)
{
    dps_serve_opts_t opts = {0, 0, NULL};
    dps_config_t cfg;

    if (dps_cli_take_env_file(&argc, argv, &opts.env_file) != 0)
        return DPS_EXIT_USAGE;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no-poller") == 0)
            opts.no_poller = 1;
        else if (strcmp(argv[i], "--no-pruner") == 0)
            opts.no_pruner = 1;
        else
            return bad_usage("serve", argv[i]);
    }
    if (load_config(&cfg, opts.env_file) != 0)
        return DPS_EXIT_USAGE;
    dps_log_set_role("supervisor");
    return dps_supervisor_main(&cfg, &opts);
}

static int run_background(int argc, char **argv, int (*main_fn)(const dps_config_t *, int))
{
    const char *env_file;
    dps_config_t cfg;
    int code;

    if (dps_cli_take_env_file(&argc, argv, &env_file) != 0)
        return DPS_EXIT_USAGE;
    if (argc > 1)
        return bad_usage(argv[0], argv[1]);
    if (load_config(&cfg, env_file) != 0)
        return DPS_EXIT_USAGE;
    code = main_fn(&cfg, 1);
    dps_config_free(&cfg);
    return code;
}

int dps_cmd_poller(int argc, char **argv)
{
    return run_background(argc, argv, dps_poller_main);
}

int dps_cmd_pruner(int argc, char **argv)
{
    return run_background(argc, argv, dps_pruner_main);
}

int dps_cmd_version(int argc, char **argv)
{
    printf("depsera %s\n", DPS_VERSION);
    return DPS_EXIT_OK;
}

int dps_cmd_config(int argc, char **argv)
{
    const char *env_file;
    dps_config_t cfg;
    int roff = 0;

    if (dps_cli_take_env_file(&argc, argv, &env_file) != 0)
        return DPS_EXIT_USAGE;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--roff") == 0)
            roff = 1;
        else
            return bad_usage("config", argv[i]);
    }
    if (roff) {
        dps_config_print_roff(stdout);
        return DPS_EXIT_OK;
    }
    if (load_config(&cfg, env_file) != 0)
        return DPS_EXIT_USAGE;
    dps_config_print_values(stdout, &cfg);
    dps_config_free(&cfg);
    return DPS_EXIT_OK;
}
