-- 010_latency_rollup down: the minutes go with their tables (the raw history
-- keeps every row they summed); the cascade of dependencies is 005's again.
CREATE OR REPLACE FUNCTION depsera_dependencies_cascade()
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

DROP TABLE latency_rollup_state;
DROP TABLE dependency_latency_minutes;
