/* The audit log: one row per mutation, written in the mutation's own transaction. */
#ifndef DEPSERA_AUDIT_H
#define DEPSERA_AUDIT_H

#include "depsera/http.h"

/* Record `action` on (resource_type, resource_id) by the request's user, with the client IP, inside
 * the caller's open transaction. `details` (stolen; may be NULL) is stored as a JSON object. An audit
 * failure never fails the request: it is logged and rolled back to a savepoint, keeping the change. */
void dps_audit(dps_req_t *r, const char *action, const char *resource_type, const char *resource_id, json_t *details);

#endif
