/* Process plumbing shared by the supervisor and its children: signal flags, names, parent death. */
#ifndef DEPSERA_PROC_H
#define DEPSERA_PROC_H

#include <signal.h>
#include <sys/types.h>

/* Set by the signal handlers, cleared by whoever acts on them. Handlers do nothing else. */
extern volatile sig_atomic_t dps_sig_term; /* SIGTERM or SIGINT: shut down gracefully */
extern volatile sig_atomic_t dps_sig_hup;  /* SIGHUP: reload */
extern volatile sig_atomic_t dps_sig_chld; /* SIGCHLD: reap children */

/* Install the flag-setting handlers for SIGTERM, SIGINT, SIGHUP and SIGCHLD, ignore SIGPIPE,
 * and block those signals so that they are only taken inside ppoll()/sigsuspend() with the mask
 * returned in `wait_mask`. */
void dps_proc_install_signals(sigset_t *wait_mask);
/* In a freshly forked child: reset inherited flags, ask for SIGTERM when the parent dies, and exit
 * at once if it already has. `name` becomes /proc/PID/comm (at most 15 characters). */
void dps_proc_child_init(pid_t parent, const char *name);
/* Describe a waitpid() status ("exited with code 1", "killed by signal 9"). */
void dps_proc_describe_status(int status, char *buf, size_t cap);

#endif
