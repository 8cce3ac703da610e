-- 005_ingest_path: the write path of OTLP ingestion, as measured by make bench
-- (tests/bench/otlp.sh).
--
--   * spans.resource_id loses its foreign key.  The key checked every span
--     row against span_resources and took a FOR KEY SHARE lock on its
--     resource: concurrent pushes of one service shared that lock through
--     multixacts, and the check cost as much as the row.  Deleting resources
--     (with their team) still removes their spans, through a statement
--     trigger.  The writer only uses ids it read or inserted.
--   * dependency_latency_history and dependency_error_history lose their
--     foreign keys to dependencies, for the same reason as spans: every push
--     writes a history row per dependency, and each row's key check was a
--     query of its own (a fifth of the upsert).  Deleting dependencies (with
--     their service) still deletes their history, through a statement
--     trigger; the upsert writes history only for the rows it just wrote.
--   * dependency_latency_history loses idx_latency_history_dependency: the
--     (dependency_id, recorded_at, latency_ms) index serves every lookup it
--     served, and each index costs one more write per history row.
--   * dependency_error_history's index on dependency_id becomes one on
--     (dependency_id, recorded_at): every push reads each dependency's latest
--     row, which is then the first entry of an index scan.
--   * dependencies keeps a fifth of each page free, so that the upsert of
--     every push can update rows in place (HOT) instead of in new pages with
--     new entries in all five of its indexes.

ALTER TABLE spans DROP CONSTRAINT spans_resource_id_fkey;

CREATE FUNCTION depsera_span_resources_cascade()
RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    DELETE FROM spans WHERE resource_id IN (SELECT id FROM gone);
    RETURN NULL;
END;
$$;

CREATE TRIGGER span_resources_cascade
    AFTER DELETE ON span_resources
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION depsera_span_resources_cascade();

ALTER TABLE dependency_latency_history DROP CONSTRAINT dependency_latency_history_dependency_id_fkey;
ALTER TABLE dependency_error_history DROP CONSTRAINT dependency_error_history_dependency_id_fkey;

CREATE FUNCTION depsera_dependencies_cascade()
RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    DELETE FROM dependency_latency_history WHERE dependency_id IN (SELECT id FROM gone);
    DELETE FROM dependency_error_history WHERE dependency_id IN (SELECT id FROM gone);
    RETURN NULL;
END;
$$;

CREATE TRIGGER dependencies_cascade
    AFTER DELETE ON dependencies
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION depsera_dependencies_cascade();

DROP INDEX idx_latency_history_dependency;

DROP INDEX idx_error_history_dependency;
CREATE INDEX idx_error_history_dependency_time ON dependency_error_history (dependency_id, recorded_at);

ALTER TABLE dependencies SET (fillfactor = 80);
