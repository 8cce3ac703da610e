/* The loop of a background process: LISTEN on a channel, wake on a notification or a tick, stop on SIGTERM. */
#ifndef DEPSERA_BACKGROUND_H
#define DEPSERA_BACKGROUND_H

#include "depsera/config.h"

typedef struct {
    const char *app_name; /* application_name of its connection */
    const char *channel;  /* LISTEN channel */
    int tick_ms;          /* period of on_tick */
    /* Called every tick_ms (may be NULL). */
    void (*on_tick)(void *arg);
    /* Called for each notification after it is logged (may be NULL). */
    void (*on_notify)(const char *channel, const char *payload, void *arg);
    void *arg;
} dps_background_t;

/* Runs until SIGTERM/SIGINT; returns the exit code. The caller has set the log role. */
int dps_background_run(const dps_config_t *cfg, const dps_background_t *bg);

#endif
