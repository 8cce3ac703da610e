/* Every HTTP route depsera serves, in one table. */
#include "depsera/routes.h"
#include "depsera/api_curation.h"
#include "depsera/api_graph.h"
#include "depsera/api_history.h"
#include "depsera/api_keys.h"
#include "depsera/api_otlp_stats.h"
#include "depsera/api_rate_limits.h"
#include "depsera/api_teams.h"
#include "depsera/api_services.h"
#include "depsera/api_usage.h"
#include "depsera/api_users.h"
#include "depsera/otlp_ingest.h"
#include "depsera/util.h"

const dps_route_t dps_routes[] = {
    {"GET", "/api/health", dps_api_health, 0},
    /* OTLP/HTTP (otlp-ingestion.md): bodies up to OTLP_MAX_BODY_BYTES, which h2o enforces */
    {"POST", "/v1/traces", dps_otlp_traces, SIZE_MAX},
    {"POST", "/v1/traces/", dps_otlp_traces, SIZE_MAX},
    {"POST", "/v1/metrics", dps_otlp_metrics, SIZE_MAX},
    {"POST", "/v1/metrics/", dps_otlp_metrics, SIZE_MAX},
    {"GET", "/api/health/live", dps_api_health_live, 0},
    {"GET", "/api/auth/mode", dps_api_auth_mode, 0},
    {"POST", "/api/auth/login", dps_api_auth_login, 0},
    {"GET", "/api/auth/login", dps_api_auth_login_redirect, 0},
    {"POST", "/api/auth/logout", dps_api_auth_logout, 0},
    {"GET", "/api/auth/me", dps_api_auth_me, 0},
    {"GET", "/api/users/me", dps_api_auth_me, 0},
    {"GET", "/api/users", dps_api_users_list, 0},
    {"POST", "/api/users", dps_api_users_create, 0},
    {"GET", "/api/users/:id", dps_api_users_get, 0},
    {"DELETE", "/api/users/:id", dps_api_users_deactivate, 0},
    {"PUT", "/api/users/:id/role", dps_api_users_set_role, 0},
    {"PUT", "/api/users/:id/password", dps_api_users_set_password, 0},
    {"POST", "/api/users/:id/reactivate", dps_api_users_reactivate, 0},
    {"GET", "/api/teams", dps_api_teams_list, 0},
    {"POST", "/api/teams", dps_api_teams_create, 0},
    {"GET", "/api/teams/:id", dps_api_teams_get, 0},
    {"PUT", "/api/teams/:id", dps_api_teams_update, 0},
    {"DELETE", "/api/teams/:id", dps_api_teams_delete, 0},
    {"POST", "/api/teams/:id/members", dps_api_teams_member_add, 0},
    {"PUT", "/api/teams/:id/members/:userId", dps_api_teams_member_update, 0},
    {"DELETE", "/api/teams/:id/members/:userId", dps_api_teams_member_remove, 0},
    {"GET", "/api/teams/:id/api-keys", dps_api_keys_list, 0},
    {"POST", "/api/teams/:id/api-keys", dps_api_keys_create, 0},
    {"DELETE", "/api/teams/:id/api-keys/:keyId", dps_api_keys_revoke, 0},
    {"PATCH", "/api/teams/:id/api-keys/:keyId/rate-limit", dps_api_rate_limit_team, 0},
    {"GET", "/api/teams/:id/api-keys/:keyId/usage", dps_api_usage_team_key, 0},
    {"GET", "/api/teams/:id/otlp-stats", dps_api_otlp_stats_team, 0},
    {"GET", "/api/services", dps_api_services_list, 0},
    {"POST", "/api/services", dps_api_services_create, 0},
    {"POST", "/api/services/test-schema", dps_api_services_test_schema, 0},
    {"GET", "/api/services/:id", dps_api_services_get, 0},
    {"PUT", "/api/services/:id", dps_api_services_update, 0},
    {"DELETE", "/api/services/:id", dps_api_services_delete, 0},
    {"GET", "/api/services/:id/poll-history", dps_api_services_poll_history, 0},
    {"POST", "/api/services/:id/poll", dps_api_services_poll, 0},
    {"PATCH", "/api/dependencies/:id/enrich", dps_api_dependency_enrich, 0},
    {"PUT", "/api/dependencies/:id/overrides", dps_api_dependency_overrides_put, 0},
    {"DELETE", "/api/dependencies/:id/overrides", dps_api_dependency_overrides_delete, 0},
    {"GET", "/api/dependencies/:dependencyId/associations", dps_api_associations_list, 0},
    {"GET", "/api/services/:serviceId/discovered-dependencies", dps_api_associations_discovered, 0},
    {"POST", "/api/dependencies/:dependencyId/associations", dps_api_associations_create, 0},
    {"DELETE", "/api/dependencies/:dependencyId/associations/:serviceId", dps_api_associations_delete, 0},
    {"PUT", "/api/dependencies/:depId/associations/:assocId/confirm", dps_api_associations_confirm, 0},
    {"PUT", "/api/dependencies/:depId/associations/:assocId/dismiss", dps_api_associations_dismiss, 0},
    {"GET", "/api/aliases", dps_api_aliases_list, 0},
    {"GET", "/api/aliases/canonical-names", dps_api_aliases_canonical_names, 0},
    {"POST", "/api/aliases", dps_api_aliases_create, 0},
    {"PUT", "/api/aliases/:id", dps_api_aliases_update, 0},
    {"DELETE", "/api/aliases/:id", dps_api_aliases_delete, 0},
    {"GET", "/api/canonical-overrides", dps_api_canonical_overrides_list, 0},
    {"GET", "/api/canonical-overrides/:canonicalName", dps_api_canonical_overrides_get, 0},
    {"PUT", "/api/canonical-overrides/:canonicalName", dps_api_canonical_overrides_put, 0},
    {"DELETE", "/api/canonical-overrides/:canonicalName", dps_api_canonical_overrides_delete, 0},
    {"GET", "/api/external-nodes", dps_api_external_nodes_list, 0},
    {"PUT", "/api/external-nodes/:canonicalName", dps_api_external_nodes_put, 0},
    {"DELETE", "/api/external-nodes/:canonicalName", dps_api_external_nodes_delete, 0},
    {"GET", "/api/graph", dps_api_graph, 0},
    {"GET", "/api/dependencies/:id/timeline", dps_api_history_timeline, 0},
    {"GET", "/api/errors/:dependencyId", dps_api_history_errors, 0},
    /* before /api/latency/:dependencyId/buckets: the first matching pattern wins */
    {"GET", "/api/latency/aggregate/buckets", dps_api_history_aggregate_buckets, 0},
    {"GET", "/api/latency/:dependencyId/buckets", dps_api_history_buckets, 0},
    {"GET", "/api/latency/:dependencyId", dps_api_history_latency, 0},
    {"GET", "/api/admin/settings", dps_api_admin_settings_get, 0},
    {"PUT", "/api/admin/settings", dps_api_admin_settings_put, 0},
    {"GET", "/api/admin/settings/span-retention", dps_api_admin_span_retention_get, 0},
    {"PUT", "/api/admin/settings/span-retention", dps_api_admin_span_retention_put, 0},
    {"GET", "/api/admin/audit-log", dps_api_admin_audit_log, 0},
    {"PATCH", "/api/admin/api-keys/:keyId/rate-limit", dps_api_rate_limit_admin, 0},
    {"GET", "/api/admin/api-keys/:keyId/usage", dps_api_usage_admin_key, 0},
    {"GET", "/api/admin/otlp-usage", dps_api_usage_admin_all, 0},
    {"GET", "/api/admin/otlp-stats", dps_api_otlp_stats_admin, 0},
};
const size_t dps_routes_count = DPS_ARRAY_SIZE(dps_routes);
