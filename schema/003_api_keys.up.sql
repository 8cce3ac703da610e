-- 003_api_keys: team API keys for OTLP ingestion and their usage counters.
-- Conventions: see 001_core.up.sql.

CREATE TABLE team_api_keys (
    id                       uuid        NOT NULL DEFAULT gen_random_uuid(),
    team_id                  uuid        NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    name                     text        NOT NULL,
    key_hash                 text        NOT NULL,          -- lower-case hex SHA-256 of the raw key
    key_prefix               text        NOT NULL,          -- first 8 chars of the raw key
    last_used_at             timestamptz,
    created_at               timestamptz NOT NULL DEFAULT now(),
    created_by               uuid                 REFERENCES users (id),
    rate_limit_rpm           integer,                       -- NULL = default, 0 = unlimited
    rate_limit_admin_locked  boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (id)
);

CREATE UNIQUE INDEX idx_team_api_keys_key_hash ON team_api_keys (key_hash);
CREATE INDEX idx_team_api_keys_team_id ON team_api_keys (team_id);

-- api_key_id has no foreign key by design: usage rows outlive deleted keys
-- and are pruned after 7 days (retention.md section 2).  bucket_start is UTC
-- wall-clock time without a zone (rendered as YYYY-MM-DDTHH:MM:00).
CREATE TABLE api_key_usage_buckets (
    api_key_id      uuid      NOT NULL,
    bucket_start    timestamp NOT NULL,
    granularity     text      NOT NULL,
    push_count      bigint    NOT NULL DEFAULT 0,
    rejected_count  bigint    NOT NULL DEFAULT 0,
    PRIMARY KEY (api_key_id, bucket_start, granularity),
    CHECK (granularity IN ('minute', 'hour'))
);

CREATE INDEX idx_usage_buckets_key_start ON api_key_usage_buckets (api_key_id, bucket_start);
CREATE INDEX idx_usage_buckets_start ON api_key_usage_buckets (bucket_start);
