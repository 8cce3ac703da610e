-- 001_core: accounts, teams, services, settings, audit log, sessions.
--
-- Conventions for every depsera migration (see spec/data-model.md and
-- spec/open-questions.md section B):
--   * ids are uuid DEFAULT gen_random_uuid() (built into PostgreSQL >= 13);
--   * timestamps are timestamptz;
--   * the original's 0/1 INTEGER flags are boolean;
--   * columns holding JSON documents are jsonb;
--   * foreign keys without an ON DELETE clause are NO ACTION on purpose
--     (data-model.md section 21: users are deactivated, never deleted).
-- The migration runner wraps this file in a transaction and records it in
-- _migrations; this file must not do either.

CREATE TABLE users (
    id             uuid        NOT NULL DEFAULT gen_random_uuid(),
    email          text        NOT NULL,
    name           text        NOT NULL,
    oidc_subject   text,
    password_hash  text,                                  -- bcrypt, local auth only
    role           text        NOT NULL DEFAULT 'user',
    is_active      boolean     NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id),
    UNIQUE (email),
    UNIQUE (oidc_subject),
    CHECK (role IN ('admin', 'user'))
);

CREATE TABLE teams (
    id           uuid        NOT NULL DEFAULT gen_random_uuid(),
    name         text        NOT NULL,
    key          text,
    description  text,
    contact      jsonb,                                   -- JSON object
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id),
    UNIQUE (name)
);

CREATE UNIQUE INDEX idx_teams_key ON teams (key) WHERE key IS NOT NULL;

CREATE TABLE team_members (
    team_id     uuid        NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        text        NOT NULL DEFAULT 'member',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, user_id),
    CHECK (role IN ('lead', 'member'))
);

CREATE INDEX idx_team_members_user_id ON team_members (user_id);

-- manifest_config_id would reference team_manifest_config(id) ON DELETE SET
-- NULL in the original; the manifest feature (and that table) is out of scope,
-- so the column is kept as a plain uuid without a foreign key.  A later
-- migration that creates team_manifest_config must add the constraint.
CREATE TABLE services (
    id                           uuid        NOT NULL DEFAULT gen_random_uuid(),
    name                         text        NOT NULL,
    team_id                      uuid        NOT NULL REFERENCES teams (id) ON DELETE RESTRICT,
    health_endpoint              text        NOT NULL,        -- '' for OTLP services
    metrics_endpoint             text,
    poll_interval_ms             integer     NOT NULL DEFAULT 30000,
    is_active                    boolean     NOT NULL DEFAULT true,
    last_poll_success            boolean,                     -- NULL = never polled/pushed
    last_poll_error              text,
    created_at                   timestamptz NOT NULL DEFAULT now(),
    updated_at                   timestamptz NOT NULL DEFAULT now(),
    schema_config                jsonb,
    is_external                  boolean     NOT NULL DEFAULT false,
    description                  text,
    poll_warnings                jsonb,                       -- array of strings, NULL when none
    manifest_key                 text,
    manifest_managed             boolean              DEFAULT false,
    manifest_last_synced_values  jsonb,
    manifest_config_id           uuid,                        -- no FK, see above
    health_endpoint_format       text        NOT NULL DEFAULT 'default',
    PRIMARY KEY (id)
);

CREATE INDEX idx_services_team_id ON services (team_id);
CREATE INDEX idx_services_config_id ON services (manifest_config_id);
CREATE UNIQUE INDEX idx_services_team_manifest_key
    ON services (team_id, manifest_key) WHERE manifest_key IS NOT NULL;

CREATE TABLE settings (
    key         text        NOT NULL,
    value       text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  uuid                 REFERENCES users (id),
    PRIMARY KEY (key)
);

CREATE TABLE app_settings (
    key         text        NOT NULL,
    value       text        NOT NULL,
    updated_at  timestamptz          DEFAULT now(),
    updated_by  uuid                 REFERENCES users (id),
    PRIMARY KEY (key)
);

INSERT INTO app_settings (key, value)
VALUES ('span_retention_days', '7')
ON CONFLICT (key) DO NOTHING;

CREATE TABLE audit_log (
    id             uuid        NOT NULL DEFAULT gen_random_uuid(),
    user_id        uuid        NOT NULL REFERENCES users (id),
    action         text        NOT NULL,
    resource_type  text        NOT NULL,
    resource_id    text,                                  -- id, or canonical name
    details        jsonb,                                 -- JSON object
    ip_address     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id)
);

CREATE INDEX idx_audit_log_user_id ON audit_log (user_id);
CREATE INDEX idx_audit_log_created_at ON audit_log (created_at);
CREATE INDEX idx_audit_log_resource ON audit_log (resource_type, resource_id);

-- Created by the session-store library in the original; here it is ours.
CREATE TABLE sessions (
    sid     text        NOT NULL,
    sess    jsonb       NOT NULL,
    expire  timestamptz NOT NULL,
    PRIMARY KEY (sid)
);

CREATE INDEX idx_sessions_expire ON sessions (expire);
