-- 002_dependencies down: drop everything 002_dependencies.up.sql created,
-- dependents first.

DROP TABLE external_node_enrichment;
DROP TABLE service_poll_history;
DROP TABLE status_change_events;
DROP TABLE dependency_error_history;
DROP TABLE dependency_latency_history;
DROP TABLE dependency_canonical_overrides;
DROP TABLE dependency_aliases;
DROP TABLE dependency_associations;
DROP TABLE dependencies;
