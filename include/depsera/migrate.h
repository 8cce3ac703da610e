/* Schema migrations compiled into the binary from schema/NNN_name.{up,down}.sql. */
#ifndef DEPSERA_MIGRATE_H
#define DEPSERA_MIGRATE_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdio.h>

typedef struct {
    const char *id;   /* "001" */
    const char *name; /* "core" */
    const char *up_sql;
    const char *down_sql;
} dps_migration_t;

/* Generated at build time (tools/embed.c), in apply order. */
extern const dps_migration_t dps_migrations[];
extern const size_t dps_migrations_count;

typedef enum {
    DPS_MIG_APPLIED,  /* recorded, checksum matches this binary */
    DPS_MIG_PENDING,  /* in this binary, not recorded */
    DPS_MIG_MODIFIED, /* recorded with a checksum that differs from this binary's file */
    DPS_MIG_UNKNOWN,  /* recorded but not in this binary (a newer binary applied it) */
} dps_mig_state_t;

/* One row recorded in _migrations. */
typedef struct {
    char id[16];
    char name[128];
    char checksum[65];
    char applied_at[40];
} dps_mig_row_t;

typedef struct {
    char id[16];
    char name[128];
    char applied_at[40]; /* empty unless recorded */
    dps_mig_state_t state;
} dps_mig_status_t;

/* Lower-case hex SHA-256 of the up SQL. */
void dps_migration_checksum(const dps_migration_t *m, char out[65]);

/* Pure classification: merges the binary's migrations with the recorded rows, sorted by id.
 * `out` must hold nknown + nrows entries; returns how many were written. */
size_t dps_migrate_classify(const dps_migration_t *known, size_t nknown, const dps_mig_row_t *rows, size_t nrows,
                            dps_mig_status_t *out);

/* Reads the state of the database. *out is malloc'ed (caller frees). 0, or -1 with err. */
int dps_migrate_status(PGconn *conn, dps_mig_status_t **out, size_t *n, char *err, size_t cap) __attribute__((warn_unused_result));
/* Applies every pending migration, each in its own transaction under an advisory lock; safe to run
 * concurrently. Progress lines go to `progress` (may be NULL). 0, or -1 with err. */
int dps_migrate_up(PGconn *conn, FILE *progress, char *err, size_t cap) __attribute__((warn_unused_result));
/* Reverts the last `n` applied migrations, newest first. 0, or -1 with err. */
int dps_migrate_down(PGconn *conn, int n, FILE *progress, char *err, size_t cap) __attribute__((warn_unused_result));
/* 0 if the schema is exactly this binary's (all applied, none modified or unknown); 1 if not, with a
 * description and the command to run in why; -1 if the state could not be read. With allow_unknown,
 * migrations newer than this binary are tolerated (a rolling upgrade migrated ahead of this node). */
int dps_migrate_verify(PGconn *conn, int allow_unknown, char *why, size_t cap) __attribute__((warn_unused_result));

const char *dps_mig_state_name(dps_mig_state_t s);

#endif
