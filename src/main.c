/* depsera: dispatch to a subcommand. */
#include "depsera/cli.h"
#include "depsera/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    /* every connection's session time zone is UTC: dates given without a zone (query filters) mean
     * UTC days whatever the database's default. libpq sends PGTZ in the startup packet, which
     * PgBouncer tracks, so this also holds through transaction pooling. */
    setenv("PGTZ", "UTC", 1);
    if (argc < 2) {
        dps_cli_usage(stderr);
        return DPS_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        dps_cli_usage(stdout);
        return DPS_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0)
        return dps_cmd_version(argc - 1, argv + 1);
    for (unsigned i = 0; i < dps_commands_count; i++) {
        const dps_command_t *cmd = &dps_commands[i];
        if (strcmp(argv[1], cmd->name) != 0)
            continue;
        for (int j = 2; j < argc; j++) {
            if (strcmp(argv[j], "--help") == 0 || strcmp(argv[j], "-h") == 0) {
                dps_cli_command_help(cmd, stdout);
                return DPS_EXIT_OK;
            }
        }
        return cmd->run(argc - 1, argv + 1);
    }
    fprintf(stderr, "depsera: unknown command \"%s\"\n\n", argv[1]);
    dps_cli_usage(stderr);
    return DPS_EXIT_USAGE;
}
