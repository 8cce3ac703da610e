/* The subcommands of the depsera binary. Each returns the process exit code:
 * 0 success, 1 runtime failure, 2 usage or configuration error. */
#ifndef DEPSERA_CLI_H
#define DEPSERA_CLI_H

#include <stdio.h>

#define DPS_EXIT_OK 0
#define DPS_EXIT_FAIL 1
#define DPS_EXIT_USAGE 2

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
    const char *synopsis;
    const char *help; /* printed by `depsera NAME --help` after the synopsis */
} dps_command_t;

extern const dps_command_t dps_commands[];
extern const unsigned dps_commands_count;

int dps_cmd_serve(int argc, char **argv);
int dps_cmd_poller(int argc, char **argv);
int dps_cmd_pruner(int argc, char **argv);
int dps_cmd_migrate(int argc, char **argv);
int dps_cmd_user(int argc, char **argv);
int dps_cmd_config(int argc, char **argv);
int dps_cmd_version(int argc, char **argv);

/* Takes "--env-file FILE" out of argv (compacting it) into *file (NULL when absent);
 * -1 with a message when the file name is missing. */
int dps_cli_take_env_file(int *argc, char **argv, const char **file);
/* Print the usage of all commands. */
void dps_cli_usage(FILE *out);
/* Print one command's help. */
void dps_cli_command_help(const dps_command_t *cmd, FILE *out);

#endif
