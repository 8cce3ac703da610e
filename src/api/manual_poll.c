/* POST /api/services/:id/poll (polling.md §6): a manual poll. The worker does not poll: it records the
 * request (poll_requests, migration 009), makes the service due at once and NOTIFYs depsera_poll in
 * one transaction; the poller that claims the service writes the outcome with the poll's results.
 * The worker checks back every DPS_WORKER_WAIT_MS without blocking (other connections go on) and
 * answers when the outcome is there, or 504 after WAIT_LIMIT_MS (no poller running, or PostgreSQL
 * too slow). */
#include "depsera/api_guards.h"
#include "depsera/api_services.h"
#include "depsera/http.h"
#include "depsera/log.h"
#include "depsera/session.h"
#include "depsera/util.h"

#include <stdlib.h>
#include <string.h>

/* A poll takes at most 10 s (its timeout, redirects included), plus its claim and its write. */
#define WAIT_LIMIT_MS 20000

static const char not_found[] = "Service not found";

typedef struct {
    dps_req_t r; /* the handler's request, kept for the answer */
    h2o_timeout_entry_t entry;
    char request_id[40];
    int64_t deadline;
} waiter_t;

#define SERVICE_SQL "SELECT s.is_active, s.is_external, s.health_endpoint_format, s.team_id FROM services s WHERE s.id = $1"

/* Locks the schedule row (a claim of it waits, or is skipped), and records the request unless a poll
 * is in flight. One row: in_flight, request id (NULL when in flight or the service is not scheduled). */
#define REQUEST_SQL                                                                                                                \
    "WITH ps AS (SELECT service_id, claimed_until > now() AS busy FROM poll_schedule WHERE service_id = $1 FOR UPDATE), "          \
    "req AS (INSERT INTO poll_requests (service_id, requested_by) SELECT service_id, $2 FROM ps WHERE NOT coalesce(busy, false) "  \
    "RETURNING id), "                                                                                                              \
    "due AS (UPDATE poll_schedule SET next_due_at = least(next_due_at, now()) WHERE service_id IN (SELECT service_id FROM ps "     \
    "WHERE NOT coalesce(busy, false)) RETURNING service_id) "                                                                      \
    "SELECT (SELECT coalesce(busy, false) FROM ps), (SELECT id FROM req), (SELECT count(*) FROM due), "                            \
    "pg_notify('depsera_poll', 'manual:' || $1)"

#define OUTCOME_SQL                                                                                                                \
    "SELECT success, dependencies_updated, status_changes, latency_ms, error FROM poll_requests "                                  \
    "WHERE id = $1 AND finished_at IS NOT NULL"

static void answer(dps_req_t *r, int success, long long deps, long long changes, double ms, const char *error)
{
    json_t *body = json_pack("{s:b,s:I,s:I,s:f}", "success", success, "dependencies_updated", (json_int_t)deps, "status_changes",
                             (json_int_t)changes, "latency_ms", ms);

    if (error != NULL)
        json_object_set_new(body, "error", json_string(error));
    dps_http_json(r, 200, body);
}

static void on_waiter_dispose(void *p)
{
    waiter_t *w = p;

    if (h2o_timeout_is_linked(&w->entry))
        h2o_timeout_unlink(&w->entry);
}

static void check_back(h2o_timeout_entry_t *entry)
{
    waiter_t *w = H2O_STRUCT_FROM_MEMBER(waiter_t, entry, entry);
    const char *id = w->request_id;
    PGresult *res;

    dps_log_set_request_id(w->r.req_id);
    if ((res = dps_req_sql(&w->r, NULL, OUTCOME_SQL, 1, &id)) == NULL) {
        /* answered 503 */
    } else if (PQntuples(res) == 1) {
        answer(&w->r, PQgetvalue(res, 0, 0)[0] == 't', strtoll(PQgetvalue(res, 0, 1), NULL, 10),
               strtoll(PQgetvalue(res, 0, 2), NULL, 10), strtod(PQgetvalue(res, 0, 3), NULL),
               PQgetisnull(res, 0, 4) ? NULL : PQgetvalue(res, 0, 4));
    } else if (dps_mono_ms() >= w->deadline) {
        DPS_LOG(DPS_LOG_WARN, "manual poll not completed in time: is a poller running?", DPS_F_STR("poll_request_id", id));
        dps_http_error(&w->r, 504, "The poll did not complete in time");
    } else {
        dps_worker_wait(w->r.worker, &w->entry);
    }
    dps_log_set_request_id(NULL);
}

/* 404 / 403 / 400 of §6 and open-questions D13; 0 to go on, -1 when answered. */
static int checks(dps_req_t *r, const char *id)
{
    PGresult *res;

    if ((res = dps_req_sql(r, NULL, SERVICE_SQL, 1, &id)) == NULL)
        return -1;
    if (PQntuples(res) == 0)
        return dps_http_error(r, 404, not_found), -1;
    if (dps_api_require_team_role(r, PQgetvalue(res, 0, 3), 0) != 0)
        return -1;
    if (PQgetvalue(res, 0, 0)[0] != 't')
        return dps_http_error(r, 400, "Service is not active"), -1;
    if (strcmp(PQgetvalue(res, 0, 2), "otlp") == 0)
        return dps_http_error(r, 400, "OTLP services are push-only and cannot be polled"), -1;
    if (PQgetvalue(res, 0, 1)[0] == 't')
        return dps_http_error(r, 400, "External services are not polled"), -1;
    return 0;
}

void dps_api_services_poll(dps_req_t *r)
{
    const char *id = dps_req_param(r, "id");
    const char *params[2];
    PGresult *res;
    waiter_t *w;

    if (dps_require_user(r) != 0)
        return;
    if (id == NULL || !dps_is_uuid(id)) {
        dps_http_error(r, 404, not_found);
        return;
    }
    if (checks(r, id) != 0 || dps_req_begin(r) != 0)
        return;
    params[0] = id, params[1] = r->user->id;
    if ((res = dps_req_sql(r, NULL, REQUEST_SQL, 2, params)) == NULL)
        return;
    if (PQgetvalue(res, 0, 0)[0] == 't') {
        answer(r, 0, 0, 0, 0, "Service is currently being polled");
        return; /* the transaction (nothing written) ends with the request */
    }
    if (PQgetisnull(res, 0, 1)) { /* active, polled format, not external: the schedule always has it */
        dps_http_error(r, 409, "Service is not scheduled for polling");
        return;
    }
    w = h2o_mem_alloc_shared(&r->h2o->pool, sizeof(*w), on_waiter_dispose);
    memset(w, 0, sizeof(*w));
    snprintf(w->request_id, sizeof(w->request_id), "%s", PQgetvalue(res, 0, 1));
    if (dps_req_commit(r) != 0)
        return;
    w->r = *r;
    w->r.body = NULL; /* freed by the caller when this returns */
    w->entry.cb = check_back;
    w->deadline = dps_mono_ms() + WAIT_LIMIT_MS;
    dps_worker_wait(r->worker, &w->entry);
}
