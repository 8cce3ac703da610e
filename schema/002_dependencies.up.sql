-- 002_dependencies: reported dependencies, their links, enrichment and
-- history tables.  Conventions: see 001_core.up.sql.

CREATE TABLE dependencies (
    id                  uuid             NOT NULL DEFAULT gen_random_uuid(),
    service_id          uuid             NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    name                text             NOT NULL,          -- as reported, case preserved
    canonical_name      text,
    description         text,
    impact              text,
    type                text                      DEFAULT 'other',
    healthy             boolean,
    health_state        integer,                            -- 0 OK, 1 WARNING, 2 CRITICAL
    health_code         integer,
    latency_ms          double precision,
    check_details       jsonb,                              -- JSON object
    error               jsonb,                              -- arbitrary JSON value
    error_message       text,
    last_checked        timestamptz,                        -- unparsable input: app writes now()
    last_status_change  timestamptz,
    created_at          timestamptz      NOT NULL DEFAULT now(),
    updated_at          timestamptz      NOT NULL DEFAULT now(),
    contact             jsonb,                              -- JSON object, from the poll
    contact_override    jsonb,                              -- JSON object, user-managed
    impact_override     text,
    skipped             boolean          NOT NULL DEFAULT false,
    discovery_source    text             NOT NULL DEFAULT 'manual',
    user_display_name   text,
    user_description    text,
    user_impact         text,
    PRIMARY KEY (id),
    UNIQUE (service_id, name)                                -- upsert conflict target
);

CREATE INDEX idx_dependencies_service_id ON dependencies (service_id);
CREATE INDEX idx_dependencies_healthy ON dependencies (healthy);
CREATE INDEX idx_dependencies_canonical_name ON dependencies (canonical_name);

-- UNIQUE (dependency_id, linked_service_id) is an addition (open-questions.md
-- Q-UNIQUE / section E): the application treats a conflict as a no-op.
-- dismissed_at is an addition too: open-questions.md section A (binding) says
-- dismissed suggestions are pruned by dismissal time, which the original
-- schema cannot record.  The application sets it together with
-- is_dismissed = true (NULL otherwise).
CREATE TABLE dependency_associations (
    id                 uuid        NOT NULL DEFAULT gen_random_uuid(),
    dependency_id      uuid        NOT NULL REFERENCES dependencies (id) ON DELETE CASCADE,
    linked_service_id  uuid        NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    association_type   text        NOT NULL DEFAULT 'other',
    manifest_managed   boolean     NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL DEFAULT now(),
    is_auto_suggested  boolean     NOT NULL DEFAULT false,
    is_dismissed       boolean     NOT NULL DEFAULT false,
    dismissed_at       timestamptz,
    PRIMARY KEY (id),
    UNIQUE (dependency_id, linked_service_id)
);

CREATE INDEX idx_dep_associations_dependency_id ON dependency_associations (dependency_id);
CREATE INDEX idx_dep_associations_linked_service_id ON dependency_associations (linked_service_id);
CREATE INDEX idx_dep_assoc_auto_suggested ON dependency_associations (is_auto_suggested, is_dismissed);

CREATE TABLE dependency_aliases (
    id                uuid        NOT NULL DEFAULT gen_random_uuid(),
    alias             text        NOT NULL,                 -- exact, case-sensitive
    canonical_name    text        NOT NULL,                 -- no FK
    created_at        timestamptz NOT NULL DEFAULT now(),
    manifest_team_id  uuid                 REFERENCES teams (id) ON DELETE SET NULL,
    PRIMARY KEY (id),
    UNIQUE (alias)
);

CREATE TABLE dependency_canonical_overrides (
    id                uuid        NOT NULL DEFAULT gen_random_uuid(),
    canonical_name    text        NOT NULL,
    team_id           uuid                 REFERENCES teams (id) ON DELETE CASCADE,  -- NULL = global
    contact_override  jsonb,                                -- JSON object
    impact_override   text,
    manifest_managed  boolean              DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    updated_by        uuid                 REFERENCES users (id),
    PRIMARY KEY (id)
);

CREATE UNIQUE INDEX idx_canonical_overrides_team_scoped
    ON dependency_canonical_overrides (team_id, canonical_name) WHERE team_id IS NOT NULL;
CREATE UNIQUE INDEX idx_canonical_overrides_global
    ON dependency_canonical_overrides (canonical_name) WHERE team_id IS NULL;

CREATE TABLE dependency_latency_history (
    id             uuid             NOT NULL DEFAULT gen_random_uuid(),
    dependency_id  uuid             NOT NULL REFERENCES dependencies (id) ON DELETE CASCADE,
    latency_ms     double precision NOT NULL,
    recorded_at    timestamptz      NOT NULL DEFAULT now(),
    p50_ms         double precision,
    p95_ms         double precision,
    p99_ms         double precision,
    min_ms         double precision,
    max_ms         double precision,
    request_count  bigint,
    source         text             NOT NULL DEFAULT 'poll',
    PRIMARY KEY (id)
);

CREATE INDEX idx_latency_history_dependency ON dependency_latency_history (dependency_id);
CREATE INDEX idx_latency_history_time ON dependency_latency_history (recorded_at);
CREATE INDEX idx_latency_history_dep_time_latency
    ON dependency_latency_history (dependency_id, recorded_at, latency_ms);

CREATE TABLE dependency_error_history (
    id             uuid        NOT NULL DEFAULT gen_random_uuid(),
    dependency_id  uuid        NOT NULL REFERENCES dependencies (id) ON DELETE CASCADE,
    error          jsonb,                                   -- NULL with error_message NULL = recovery
    error_message  text,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id)
);

CREATE INDEX idx_error_history_dependency ON dependency_error_history (dependency_id);
CREATE INDEX idx_error_history_time ON dependency_error_history (recorded_at);

CREATE TABLE status_change_events (
    id                uuid        NOT NULL DEFAULT gen_random_uuid(),
    service_id        uuid        NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    service_name      text        NOT NULL,                 -- denormalized at event time
    dependency_name   text        NOT NULL,
    previous_healthy  boolean,                              -- NULL for a new dependency
    current_healthy   boolean     NOT NULL,
    recorded_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id)
);

CREATE INDEX idx_status_change_events_time ON status_change_events (recorded_at);
CREATE INDEX idx_status_change_events_service ON status_change_events (service_id);

CREATE TABLE service_poll_history (
    id           uuid        NOT NULL DEFAULT gen_random_uuid(),
    service_id   uuid        NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    error        text,                                      -- NULL = recovery
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id)
);

CREATE INDEX idx_sph_service ON service_poll_history (service_id);
CREATE INDEX idx_sph_time ON service_poll_history (recorded_at);

CREATE TABLE external_node_enrichment (
    id              uuid        NOT NULL DEFAULT gen_random_uuid(),
    canonical_name  text        NOT NULL,                   -- exactly as given in the URL
    display_name    text,
    description     text,
    impact          text,
    contact         jsonb,
    service_type    text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    updated_by      uuid                 REFERENCES users (id),
    PRIMARY KEY (id),
    UNIQUE (canonical_name)
);
