/* GET /api/services/:id/poll-history (polling.md §7): the last 50 polls of a service, the errors of
 * the last 24 h (an exact window, §8) and its current warnings. Any logged-in user (open-questions C:
 * history reads are org-wide). */
#include "depsera/api_services.h"
#include "depsera/http.h"
#include "depsera/session.h"
#include "depsera/util.h"

#include <stdlib.h>

#define POLL_HISTORY_SQL                                                                                                           \
    "SELECT s.id, "                                                                                                                \
    "(SELECT count(*) FROM service_poll_history h WHERE h.service_id = s.id AND h.error IS NOT NULL "                              \
    "   AND h.recorded_at >= now() - interval '24 hours') AS error_count, "                                                        \
    "coalesce((SELECT json_agg(json_build_object('error', e.error, 'recordedAt', "                                                 \
    "   to_char(e.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), 'isRecovery', e.error IS NULL) "           \
    "   ORDER BY e.recorded_at DESC, e.id DESC) FROM (SELECT * FROM service_poll_history h WHERE h.service_id = s.id "             \
    "   ORDER BY h.recorded_at DESC, h.id DESC LIMIT 50) e), '[]'::json) AS entries, "                                             \
    "CASE WHEN jsonb_typeof(s.poll_warnings) = 'array' THEN s.poll_warnings ELSE '[]'::jsonb END AS warnings "                     \
    "FROM services s WHERE s.id = $1"

void dps_api_services_poll_history(dps_req_t *r)
{
    const char *id = dps_req_param(r, "id");
    PGresult *res;
    json_t *entries, *warnings;

    if (dps_require_user(r) != 0)
        return;
    if (id == NULL || !dps_is_uuid(id)) {
        dps_http_error(r, 404, "Service not found");
        return;
    }
    if ((res = dps_req_sql(r, NULL, POLL_HISTORY_SQL, 1, &id)) == NULL)
        return;
    if (PQntuples(res) == 0) {
        dps_http_error(r, 404, "Service not found");
        return;
    }
    entries = json_loads(PQgetvalue(res, 0, 2), 0, NULL);
    warnings = json_loads(PQgetvalue(res, 0, 3), 0, NULL);
    dps_http_json(r, 200,
                  json_pack("{s:s,s:I,s:o,s:o}", "serviceId", PQgetvalue(res, 0, 0), "errorCount",
                            (json_int_t)strtoll(PQgetvalue(res, 0, 1), NULL, 10), "entries", entries ? entries : json_array(),
                            "pollWarnings", warnings ? warnings : json_array()));
}
