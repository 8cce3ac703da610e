/* The shared loop of the poller and the pruner (PostgreSQL's auxiliary-process pattern: flags set by
 * handlers, one wait on socket + timeout, parent death delivered as SIGTERM). */
#include "depsera/background.h"
#include "depsera/db.h"
#include "depsera/log.h"
#include "depsera/proc.h"
#include "depsera/util.h"

static void on_notify(const char *channel, const char *payload, void *arg)
{
    const dps_background_t *bg = arg;

    DPS_LOG(DPS_LOG_INFO, "notification", DPS_F_STR("channel", channel), DPS_F_STR("payload", payload));
    if (bg->on_notify != NULL)
        bg->on_notify(channel, payload, bg->arg);
}

int dps_background_run(const dps_config_t *cfg, const dps_background_t *bg)
{
    const char *channels[] = {bg->channel};
    dps_listener_t *l;
    sigset_t wait_mask;
    int64_t next_tick;

    dps_proc_install_signals(&wait_mask);
    const char *url = *cfg->database_listen_url ? cfg->database_listen_url : cfg->database_url;

    if ((l = dps_listener_create(url, bg->app_name, channels, 1)) == NULL) {
        DPS_LOG(DPS_LOG_FATAL, "out of memory");
        return 1;
    }
    DPS_LOG(DPS_LOG_INFO, "started", DPS_F_STR("channel", bg->channel), DPS_F_INT("tick_ms", bg->tick_ms));
    next_tick = dps_mono_ms() + bg->tick_ms;
    while (!dps_sig_term) {
        int64_t wait = next_tick - dps_mono_ms();

        dps_listener_wait(l, (int)(wait > 0 ? wait : 0), &wait_mask, on_notify, (void *)bg);
        if (dps_sig_hup) {
            dps_sig_hup = 0;
            DPS_LOG(DPS_LOG_INFO, "SIGHUP ignored: restart this process to change its configuration");
        }
        dps_sig_chld = 0;
        if (dps_mono_ms() >= next_tick) {
            next_tick = dps_mono_ms() + bg->tick_ms;
            if (bg->on_tick != NULL)
                bg->on_tick(bg->arg);
        }
    }
    DPS_LOG(DPS_LOG_INFO, "stopping");
    dps_listener_destroy(l);
    return 0;
}
