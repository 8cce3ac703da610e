-- 005_ingest_path down: the foreign key, the index and the fill factor of
-- 004 again.  Spans whose resource is gone could not satisfy the key: they
-- are deleted first.

ALTER TABLE dependencies RESET (fillfactor);

CREATE INDEX idx_latency_history_dependency ON dependency_latency_history (dependency_id);

DROP INDEX idx_error_history_dependency_time;
CREATE INDEX idx_error_history_dependency ON dependency_error_history (dependency_id);

DROP TRIGGER span_resources_cascade ON span_resources;
DROP FUNCTION depsera_span_resources_cascade();

DELETE FROM spans s WHERE NOT EXISTS (SELECT 1 FROM span_resources r WHERE r.id = s.resource_id);
ALTER TABLE spans ADD CONSTRAINT spans_resource_id_fkey
    FOREIGN KEY (resource_id) REFERENCES span_resources (id) ON DELETE CASCADE;
