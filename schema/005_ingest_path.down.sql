-- 005_ingest_path down: the foreign keys, the indexes and the fill factor of
-- 004 again.  Rows whose parent is gone could not satisfy a key: they are
-- deleted first.

ALTER TABLE dependencies RESET (fillfactor);

CREATE INDEX idx_latency_history_dependency ON dependency_latency_history (dependency_id);

DROP INDEX idx_error_history_dependency_time;
CREATE INDEX idx_error_history_dependency ON dependency_error_history (dependency_id);

DROP TRIGGER dependencies_cascade ON dependencies;
DROP FUNCTION depsera_dependencies_cascade();
DELETE FROM dependency_latency_history h WHERE NOT EXISTS (SELECT 1 FROM dependencies d WHERE d.id = h.dependency_id);
DELETE FROM dependency_error_history h WHERE NOT EXISTS (SELECT 1 FROM dependencies d WHERE d.id = h.dependency_id);
ALTER TABLE dependency_latency_history ADD CONSTRAINT dependency_latency_history_dependency_id_fkey
    FOREIGN KEY (dependency_id) REFERENCES dependencies (id) ON DELETE CASCADE;
ALTER TABLE dependency_error_history ADD CONSTRAINT dependency_error_history_dependency_id_fkey
    FOREIGN KEY (dependency_id) REFERENCES dependencies (id) ON DELETE CASCADE;

DROP TRIGGER span_resources_cascade ON span_resources;
DROP FUNCTION depsera_span_resources_cascade();

DELETE FROM spans s WHERE NOT EXISTS (SELECT 1 FROM span_resources r WHERE r.id = s.resource_id);
ALTER TABLE spans ADD CONSTRAINT spans_resource_id_fkey
    FOREIGN KEY (resource_id) REFERENCES span_resources (id) ON DELETE CASCADE;
