/* Curation of the dependency graph (graph-and-api.md §5.1, §5.3-§5.6): user enrichment and overrides
 * of dependencies, associations, aliases, canonical overrides and external node enrichment. */
#ifndef DEPSERA_API_CURATION_H
#define DEPSERA_API_CURATION_H

#include <jansson.h>
#include <libpq-fe.h>

#include "depsera/router.h"

/* Route handlers. Each answers the request itself (JSON body, or 204 without one); all need a logged-in
 * user (401 first). Rows are rendered per open-questions.md B: JSON booleans, ISO-8601 UTC timestamps
 * with ms and Z, jsonb columns as JSON values. A malformed id in a path is an unknown one (its 404). Every
 * mutation the graph or the ingest caches depend on commits together with NOTIFY depsera_cache
 * ('<what>:<id>') and, where data-model.md §13 says so, its audit row. No database error text reaches a
 * client. PUTs keep the stored value of every member the body omits (open-questions.md D1: a member given
 * as null clears it). */

/* ---- dependencies (src/api/dependencies.c, §5.1) ---- */

/* PATCH /api/dependencies/:id/enrich {displayName?, description?, impact?}: member of the owning team;
 * 200 with the full dependency row. Not audited. */
void dps_api_dependency_enrich(dps_req_t *r);
/* PUT /api/dependencies/:id/overrides {contact_override?, impact_override?}: lead of the owning team;
 * 200 with the full dependency row. Audit dependency_override.updated. */
void dps_api_dependency_overrides_put(dps_req_t *r);
/* DELETE /api/dependencies/:id/overrides: lead; both overrides NULL; 204. Audit dependency_override.cleared. */
void dps_api_dependency_overrides_delete(dps_req_t *r);

/* ---- shared by the curation files (src/api/dependencies.c) ---- */

/* The dependency guard of graph-and-api.md §2 on path parameter `param`: the dependency's row (columns
 * id, service_id, team_id; cleared with the request) if the caller is a member (lead != 0: a lead) of
 * the owning team or an admin. NULL after answering 404 `Dependency not found` (malformed ids included),
 * 403, or 503/500. */
PGresult *dps_api_dependency_guard(dps_req_t *r, const char *param, int lead) __attribute__((warn_unused_result));

/* The instance/canonical override members of a body (§5.1), validated. `contact` / `impact` are the
 * texts to store (pool; NULL = SQL NULL) when has_* is set; `audit` is a new object with the members
 * as given (normalised), for the audit row (the caller steals it). */
typedef struct {
    int has_contact, has_impact;
    const char *contact, *impact;
    json_t *audit;
} dps_override_input_t;

/* Validate the override members of the request body in the order of §5.1: 0, or -1 after answering 400.
 * The contact is a JSON object or a string holding one (open-questions.md B), or null. */
int dps_api_override_input(dps_req_t *r, dps_override_input_t *in) __attribute__((warn_unused_result));

/* A body member given as a JSON value or as a string holding JSON (open-questions.md B): the value,
 * parsed when `v` is a string holding JSON. New reference (NULL for NULL). */
json_t *dps_api_json_input(json_t *v);
/* `v` as compact JSON text in the request pool (any value, scalars included). */
const char *dps_api_json_text(dps_req_t *r, json_t *v);

/* ---- associations (src/api/associations.c, §5.3; open-questions.md A) ---- */

/* GET /api/dependencies/:dependencyId/associations: every row of the dependency (dismissed included),
 * each with "linked_service" (the full service row). Any logged-in user. */
void dps_api_associations_list(dps_req_t *r);
/* POST /api/dependencies/:dependencyId/associations {linked_service_id, association_type}: member of the
 * dependency's team; a dismissed suggestion for the pair is replaced; 201 row + linked_service. */
void dps_api_associations_create(dps_req_t *r);
/* DELETE /api/dependencies/:dependencyId/associations/:serviceId (the linked service): member; 204. */
void dps_api_associations_delete(dps_req_t *r);
/* PUT /api/dependencies/:depId/associations/:assocId/confirm and /dismiss: member; 200 {"success":true}. */
void dps_api_associations_confirm(dps_req_t *r);
void dps_api_associations_dismiss(dps_req_t *r);
/* GET /api/services/:serviceId/discovered-dependencies: members of the service's team and admins (404
 * `Service not found` first); its dependencies discovered from traces (name order), each with
 * "auto_suggested_associations": its suggestions neither confirmed nor dismissed, oldest first. */
void dps_api_associations_discovered(dps_req_t *r);

/* ---- aliases (src/api/aliases.c, §5.4) ---- */

/* GET /api/aliases and GET /api/aliases/canonical-names: any logged-in user. */
void dps_api_aliases_list(dps_req_t *r);
void dps_api_aliases_canonical_names(dps_req_t *r);
/* POST /api/aliases {alias, canonical_name}, PUT /api/aliases/:id {canonical_name}, DELETE /api/aliases/:id:
 * admin, or lead of a team with a service reporting a dependency named like the alias. The change is
 * applied to those dependencies' canonical_name at once (open-questions.md D24). */
void dps_api_aliases_create(dps_req_t *r);
void dps_api_aliases_update(dps_req_t *r);
void dps_api_aliases_delete(dps_req_t *r);

/* ---- canonical overrides (src/api/canonical_overrides.c, §5.5) ---- */

/* GET /api/canonical-overrides?team_id= and GET /api/canonical-overrides/:canonicalName?team_id=. */
void dps_api_canonical_overrides_list(dps_req_t *r);
void dps_api_canonical_overrides_get(dps_req_t *r);
/* PUT /api/canonical-overrides/:canonicalName {contact_override?, impact_override?, team_id?} and
 * DELETE /api/canonical-overrides/:canonicalName?team_id=: with a team, its lead; global, an admin or a
 * lead of a team reporting the canonical name. Audited. */
void dps_api_canonical_overrides_put(dps_req_t *r);
void dps_api_canonical_overrides_delete(dps_req_t *r);

/* ---- external node enrichment (src/api/external_nodes.c, §5.6; open-questions.md C) ---- */

/* GET /api/external-nodes: any logged-in user. PUT and DELETE /api/external-nodes/:canonicalName: an admin
 * or a lead of a team with a dependency grouped into that node. */
void dps_api_external_nodes_list(dps_req_t *r);
void dps_api_external_nodes_put(dps_req_t *r);
void dps_api_external_nodes_delete(dps_req_t *r);

#endif
