/* Connection counts shared by the workers of one supervisor (see balance.h). Only a heuristic: a lost
 * update skews the spread, never a request, so plain atomics without locks are enough. */
#include "depsera/balance.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct {
    atomic_int pid; /* owner, 0 while empty */
    atomic_int conns;
} entry_t;

struct dps_balance {
    size_t n;
    entry_t e[];
};

dps_balance_t *dps_balance_create(size_t nslots)
{
    size_t size = sizeof(dps_balance_t) + nslots * sizeof(entry_t);
    dps_balance_t *b = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (b == MAP_FAILED)
        return NULL;
    b->n = nslots;
    for (size_t i = 0; i < nslots; i++) {
        atomic_init(&b->e[i].pid, 0);
        atomic_init(&b->e[i].conns, 0);
    }
    return b;
}

void dps_balance_assign(dps_balance_t *b, int slot, pid_t pid)
{
    if (b == NULL || slot < 0 || (size_t)slot >= b->n)
        return;
    atomic_store(&b->e[slot].pid, 0);
    atomic_store(&b->e[slot].conns, 0);
    atomic_store(&b->e[slot].pid, (int)pid);
}

void dps_balance_release(dps_balance_t *b, int slot, pid_t pid)
{
    int expected = (int)pid;

    if (b != NULL && slot >= 0 && (size_t)slot < b->n)
        atomic_compare_exchange_strong(&b->e[slot].pid, &expected, 0);
}

void dps_balance_add(dps_balance_t *b, int slot, int delta)
{
    if (b != NULL && slot >= 0 && (size_t)slot < b->n && atomic_load(&b->e[slot].pid) == (int)getpid())
        atomic_fetch_add(&b->e[slot].conns, delta);
}

int dps_balance_crowded(const dps_balance_t *b, int slot)
{
    int mine, least = -1;

    if (b == NULL || slot < 0 || (size_t)slot >= b->n || atomic_load(&b->e[slot].pid) != (int)getpid())
        return 0;
    mine = atomic_load(&b->e[slot].conns);
    for (size_t i = 0; i < b->n; i++) {
        int c = atomic_load(&b->e[i].conns);
        if (atomic_load(&b->e[i].pid) == 0)
            continue;
        c = c < 0 ? 0 : c;
        least = least < 0 || c < least ? c : least;
    }
    return least >= 0 && mine > least;
}
