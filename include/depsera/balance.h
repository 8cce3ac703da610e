/* Even spread of connections over the workers of one supervisor. Workers share a listening socket
 * and each handles its connections one request at a time (it blocks on PostgreSQL), so a worker that
 * holds three keep-alive connections while another holds one serves its clients three times slower.
 * Each worker publishes its connection count in memory shared by the supervisor's children; a worker
 * holding more than the least loaded one lets a new connection go to another worker for a moment. */
#ifndef DEPSERA_BALANCE_H
#define DEPSERA_BALANCE_H
#include <stddef.h>
#include <sys/types.h>

typedef struct dps_balance dps_balance_t;

/* Shared memory for `nslots` worker slots, created before forking; NULL on failure (no balancing). */
dps_balance_t *dps_balance_create(size_t nslots);
/* Supervisor: `pid` now owns `slot` with no connection, or (pid 0) the slot is empty. */
void dps_balance_assign(dps_balance_t *b, int slot, pid_t pid);
/* Supervisor: the process that owned `slot` is gone (the slot may have a newer owner already). */
void dps_balance_release(dps_balance_t *b, int slot, pid_t pid);
/* Worker: its count of open connections changes by delta (ignored once the slot has a new owner). */
void dps_balance_add(dps_balance_t *b, int slot, int delta);
/* Worker: 1 when it holds more connections than the least loaded live worker. */
int dps_balance_crowded(const dps_balance_t *b, int slot);

#endif
