/* One logging path: one line per event, JSON when stderr is not a TTY. */
#ifndef DEPSERA_LOG_H
#define DEPSERA_LOG_H

#include <stdarg.h>
#include <stddef.h>

typedef enum {
    DPS_LOG_TRACE,  /* very verbose internals */
    DPS_LOG_DEBUG,  /* diagnostics an operator may turn on */
    DPS_LOG_INFO,   /* normal lifecycle events and access lines */
    DPS_LOG_WARN,   /* something degraded but handled (e.g. database down) */
    DPS_LOG_ERROR,  /* an operation failed */
    DPS_LOG_FATAL,  /* the process is about to exit */
    DPS_LOG_SILENT, /* threshold only: log nothing */
} dps_log_level_t;

typedef enum { DPS_LF_END, DPS_LF_STR, DPS_LF_INT, DPS_LF_DBL, DPS_LF_BOOL } dps_log_ftype_t;

/* One structured field of a log line; build them with the DPS_F_* macros. */
typedef struct {
    const char *key;
    dps_log_ftype_t type;
    const char *s;
    long long i;
    double d;
} dps_log_field_t;

#define DPS_F_STR(k, v) ((dps_log_field_t){(k), DPS_LF_STR, (v), 0, 0})
#define DPS_F_INT(k, v) ((dps_log_field_t){(k), DPS_LF_INT, NULL, (long long)(v), 0})
#define DPS_F_DBL(k, v) ((dps_log_field_t){(k), DPS_LF_DBL, NULL, 0, (double)(v)})
#define DPS_F_BOOL(k, v) ((dps_log_field_t){(k), DPS_LF_BOOL, NULL, (v) ? 1 : 0, 0})

/* Log `msg` with structured fields: DPS_LOG(DPS_LOG_INFO, "child exited", DPS_F_INT("child_pid", pid)). */
#define DPS_LOG(level, msg, ...) dps_log_fields((level), (msg), (const dps_log_field_t[]){__VA_ARGS__ __VA_OPT__(, ) {NULL, DPS_LF_END, NULL, 0, 0}})

/* Set the process role ("supervisor", "worker", ...) stamped on every line; `role` must outlive the process. */
void dps_log_set_role(const char *role);
void dps_log_set_level(dps_log_level_t level);
dps_log_level_t dps_log_get_level(void);
/* Force JSON (1) or human (0) output; by default JSON unless stderr is a TTY. */
void dps_log_set_json(int json);
/* Request id stamped on lines logged while handling a request; NULL clears. Not copied: must outlive its use. */
void dps_log_set_request_id(const char *req_id);
int dps_log_enabled(dps_log_level_t level);
/* Batch info/debug lines in memory until dps_log_flush() (an event loop calls it once per turn);
 * warnings and worse are written at once. Turning buffering off flushes. */
void dps_log_set_buffered(int buffered);
void dps_log_flush(void);

void dps_log_fields(dps_log_level_t level, const char *msg, const dps_log_field_t *fields);
void dps_logf(dps_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parse a level name (fatal, error, warn, info, debug, trace, silent); -1 if unknown. */
int dps_log_level_parse(const char *name);
const char *dps_log_level_name(dps_log_level_t level);

/* Format one line into buf (without writing it); returns its length. Exposed for tests. */
size_t dps_log_format(char *buf, size_t cap, int json, dps_log_level_t level, const char *msg, const dps_log_field_t *fields);

#endif
