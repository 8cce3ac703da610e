/* Signal flags, child set-up after fork, and exit status descriptions. */
#include "depsera/proc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

volatile sig_atomic_t dps_sig_term;
volatile sig_atomic_t dps_sig_hup;
volatile sig_atomic_t dps_sig_chld;

static void on_signal(int signo)
{
    switch (signo) {
    case SIGTERM:
    case SIGINT:
        dps_sig_term = 1;
        break;
    case SIGHUP:
        dps_sig_hup = 1;
        break;
    case SIGCHLD:
        dps_sig_chld = 1;
        break;
    }
}

void dps_proc_install_signals(sigset_t *wait_mask)
{
    struct sigaction sa;
    sigset_t block;
    const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD};

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigemptyset(&block);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        sigaction(sigs[i], &sa, NULL);
        sigaddset(&block, sigs[i]);
    }
    signal(SIGPIPE, SIG_IGN);
    sigprocmask(SIG_BLOCK, &block, wait_mask);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigdelset(wait_mask, sigs[i]);
}

void dps_proc_child_init(pid_t parent, const char *name)
{
    dps_sig_term = dps_sig_hup = dps_sig_chld = 0;
    prctl(PR_SET_NAME, name, 0, 0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
    /* the parent may have died between fork() and prctl() */
    if (getppid() != parent)
        exit(0);
}

void dps_proc_describe_status(int status, char *buf, size_t cap)
{
    if (WIFEXITED(status))
        snprintf(buf, cap, "exited with code %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, cap, "killed by signal %d (%s)%s", WTERMSIG(status), strsignal(WTERMSIG(status)),
                 WCOREDUMP(status) ? ", core dumped" : "");
    else
        snprintf(buf, cap, "status 0x%x", status);
}
