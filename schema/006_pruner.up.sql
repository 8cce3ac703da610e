-- 006_pruner: the last retention run (retention.md section 0: "the last run is
-- recorded in the database, not in memory"), so that a pruner that starts, or
-- takes over from another node, knows whether today's run already happened.
-- One row at most (id is always true); each successful run replaces it.
-- Conventions: see 001_core.up.sql.
CREATE TABLE pruner_runs (
    id                   boolean     NOT NULL DEFAULT true,
    started_at           timestamptz NOT NULL,   -- the run's "at": its local date is the day it counts for
    finished_at          timestamptz NOT NULL,
    duration_ms          bigint      NOT NULL,
    data_retention_days  integer     NOT NULL,   -- D
    span_retention_days  integer     NOT NULL,   -- S
    cutoff               timestamptz NOT NULL,   -- Cutoff_D
    span_cutoff          timestamptz NOT NULL,   -- Cutoff_S
    counts               jsonb       NOT NULL,   -- {"<table>": rows deleted}
    partitions_created   jsonb       NOT NULL,   -- ["spans_YYYYMMDD", ...]
    partitions_dropped   jsonb       NOT NULL,
    node                 text        NOT NULL,   -- host name and pid of the pruner that ran it
    PRIMARY KEY (id),
    CHECK (id)
);
