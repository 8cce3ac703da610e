-- 004_spans: OTLP span storage (storage only: no endpoint reads spans yet).
--
-- Layout (data-model.md "Deviations", otlp-ingestion.md section 0): every
-- piece of information of the original spans table is kept, but
--   * trace/span ids are raw bytea instead of hex text;
--   * service_name, team_id and the resource attributes are stored once per
--     distinct resource in span_resources and referenced by resource_id;
--   * spans is range-partitioned by receipt day (created_at, the column
--     retention uses), so expiry is a DROP of whole partitions;
--   * only the indexes a real query needs: trace lookup, service + time.
-- Conventions: see 001_core.up.sql.

-- One row per distinct (team_id, service_name, resource attributes).
CREATE TABLE span_resources (
    id            bigint      GENERATED ALWAYS AS IDENTITY,
    team_id       uuid        NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    service_name  text        NOT NULL,                     -- resource service.name
    attributes    jsonb,                                    -- raw OTLP resource KeyValue array
    digest        bytea       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id),
    UNIQUE (digest),
    CHECK (octet_length(digest) = 32)
);

-- Serves "spans of a service" lookups and the cascade of a team delete.
CREATE INDEX idx_span_resources_team_service ON span_resources (team_id, service_name);

COMMENT ON COLUMN span_resources.digest IS
    'SHA-256 (32 bytes) computed by the application over team_id, service_name '
    'and the canonical form of attributes; the dedup key of this table. Every '
    'writer must use the same canonical form, or resources get duplicated.';

-- Columns are ordered for alignment (8-byte, then 2-byte, then variable
-- length) to avoid padding; writers should name the columns in COPY.
-- No id and no primary key: nothing references a span, and a key would only
-- cost an index on the hottest insert path.  Deleting a team cascades to its
-- span_resources and from there to its spans.
CREATE TABLE spans (
    created_at      timestamptz      NOT NULL DEFAULT now(),  -- receipt time; partition key, retention
    start_time      timestamptz      NOT NULL,
    end_time        timestamptz      NOT NULL,
    duration_ms     double precision NOT NULL,
    resource_id     bigint           NOT NULL REFERENCES span_resources (id) ON DELETE CASCADE,
    kind            smallint         NOT NULL DEFAULT 0,
    status_code     smallint                  DEFAULT 0,
    trace_id        bytea            NOT NULL,                -- 16 bytes
    span_id         bytea            NOT NULL,                -- 8 bytes
    parent_span_id  bytea,                                    -- NULL = absent, '' = present but empty
    name            text             NOT NULL,
    status_message  text,
    attributes      jsonb                                     -- raw OTLP KeyValue array
) PARTITION BY RANGE (created_at);

-- Created on the parent: every partition gets its own copy automatically.
CREATE INDEX idx_spans_trace_id ON spans (trace_id);
CREATE INDEX idx_spans_resource_start ON spans (resource_id, start_time);

-- depsera_ensure_span_partition(day): creates the partition spans_YYYYMMDD
-- for one UTC day if it does not exist yet, and returns its name.
--   * Bounds are written with an explicit +00 offset: [day 00:00 UTC,
--     day+1 00:00 UTC), whatever the session TimeZone.
--   * Safe under concurrent calls: CREATE ... PARTITION OF locks spans, so
--     concurrent creators queue; each one after the first fails with
--     duplicate_table once it gets the lock, which is caught (the failed
--     subtransaction releases the lock at once).
--   * Creating a partition takes an ACCESS EXCLUSIVE lock on spans until
--     commit, so call it in its own short transaction (the pruner does, for
--     the coming days), never in one that already read or wrote spans: two
--     such callers can deadlock (one is aborted with 40P01).  A pending
--     creation waits for running span writers and blocks new ones, so the
--     caller may want SET LOCAL lock_timeout and a retry later.
CREATE FUNCTION depsera_ensure_span_partition(day date)
RETURNS text
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    part_name  text := 'spans_' || to_char(day, 'YYYYMMDD');
    parent     regclass := to_regclass('spans');
    qualified  text;
    part       regclass;
BEGIN
    IF day IS NULL THEN
        RAISE EXCEPTION 'depsera_ensure_span_partition: day must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF parent IS NULL THEN
        RAISE EXCEPTION 'depsera_ensure_span_partition: table spans does not exist'
            USING ERRCODE = 'undefined_table';
    END IF;
    -- The partition lives in the schema of its parent.
    SELECT format('%I.%I', n.nspname, part_name) INTO qualified
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = parent;

    part := to_regclass(qualified);
    IF part IS NULL THEN
        BEGIN
            EXECUTE format('CREATE TABLE %s PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                           qualified, parent,
                           to_char(day,     'YYYY-MM-DD') || ' 00:00:00+00',
                           to_char(day + 1, 'YYYY-MM-DD') || ' 00:00:00+00');
            RETURN part_name;
        EXCEPTION WHEN duplicate_table OR unique_violation THEN
            -- A concurrent caller committed it while we waited for the lock
            -- (waiting refreshed our catalog caches, so we can see it now).
            part := to_regclass(qualified);
        END;
    END IF;

    IF part IS NULL OR parent NOT IN (SELECT pg_partition_ancestors(part)) THEN
        RAISE EXCEPTION 'depsera_ensure_span_partition: % exists but is not a partition of spans',
                        qualified
            USING ERRCODE = 'duplicate_table';
    END IF;
    RETURN part_name;
END;
$$;

-- Partitions for yesterday .. today + 3 (UTC days); the pruner keeps
-- creating the following ones.
DO $$
DECLARE
    today  date := (now() AT TIME ZONE 'UTC')::date;
BEGIN
    FOR offs IN -1..3 LOOP
        PERFORM depsera_ensure_span_partition(today + offs);
    END LOOP;
END;
$$;
