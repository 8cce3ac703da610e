-- 010_latency_rollup: per-dependency per-minute aggregates of
-- dependency_latency_history, so that the latency buckets of a long range
-- (graph-and-api.md section 5.2: 30 days in 6-hour buckets) read one row a
-- minute instead of every raw row.
--   * dependency_latency_minutes: one row per dependency and UTC minute
--     (date_bin of a minute) with the count, sum, min and max of latency_ms
--     and the count and sum of each non-NULL percentile, so that buckets of
--     whole minutes pool exactly (count = sum n, avg = sum / n).
--   * latency_rollup_state: one row; the minutes in [rolled_from,
--     rolled_until) are rolled up (both NULL until the first roll-up).  The
--     pruner recomputes the last minutes at each check and advances
--     rolled_until; the retention run moves rolled_from past its cutoff
--     before deleting the minutes older than it.  Readers use the rows of
--     the minutes in that range and the raw rows outside it.
--   * the primary key includes every aggregate: the buckets of a dependency
--     are an index-only scan of its minutes in the window (the minute index
--     alone is the retention run's, and the planner, which cannot estimate
--     the rolled-up range, would otherwise prefer it and read every
--     dependency's minutes);
--   * no foreign key per row, as for the history tables (005): the
--     statement-level cascade of dependencies deletes a dependency's minutes
--     with its history.
-- Conventions: see 001_core.up.sql.
CREATE TABLE dependency_latency_minutes (
    dependency_id  uuid             NOT NULL,
    minute         timestamptz      NOT NULL,   -- start of the UTC minute
    n              bigint           NOT NULL,   -- raw rows
    sum_ms         double precision NOT NULL,   -- of latency_ms
    min_ms         double precision NOT NULL,
    max_ms         double precision NOT NULL,
    n_p50          bigint           NOT NULL,   -- rows whose p50_ms is not NULL
    sum_p50        double precision,            -- NULL when n_p50 = 0
    n_p95          bigint           NOT NULL,
    sum_p95        double precision,
    n_p99          bigint           NOT NULL,
    sum_p99        double precision,
    -- covering: the buckets read a dependency's minutes with an index-only scan
    PRIMARY KEY (dependency_id, minute)
        INCLUDE (n, sum_ms, min_ms, max_ms, n_p50, sum_p50, n_p95, sum_p95, n_p99, sum_p99)
) WITH (autovacuum_vacuum_insert_scale_factor = 0.02);   -- keeps the visibility map current for them

-- the retention run's deletes of the minutes before its cutoff
CREATE INDEX idx_latency_minutes_minute ON dependency_latency_minutes (minute);

CREATE TABLE latency_rollup_state (
    id            boolean     NOT NULL DEFAULT true,
    rolled_from   timestamptz,
    rolled_until  timestamptz,
    PRIMARY KEY (id),
    CHECK (id),
    CHECK (rolled_until >= rolled_from)
);
INSERT INTO latency_rollup_state (id) VALUES (true);

CREATE OR REPLACE FUNCTION depsera_dependencies_cascade()
RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    DELETE FROM dependency_latency_history WHERE dependency_id IN (SELECT id FROM gone);
    DELETE FROM dependency_latency_minutes WHERE dependency_id IN (SELECT id FROM gone);
    DELETE FROM dependency_error_history WHERE dependency_id IN (SELECT id FROM gone);
    RETURN NULL;
END;
$$;
