-- check-constraints.sql — prove that the constraints of the depsera schema
-- behave as data-model.md says, on a database where every migration is
-- applied.  Every expectation is an ASSERT (or a raised exception): the first
-- failed one stops the script with an error.  Everything runs in one
-- transaction that is rolled back at the end, so the database is unchanged.
--
--   psql -X -v ON_ERROR_STOP=1 -d "$DATABASE_URL" -f schema/check-constraints.sql
--
-- Not a migration: the migration runner only picks up NNN_name.{up,down}.sql.

\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = warning;
BEGIN;

-- expect_error(statement, sqlstate): the statement must fail with that
-- SQLSTATE (its effects are undone by the exception block).
CREATE FUNCTION pg_temp.expect_error(stmt text, state text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        EXECUTE stmt;
    EXCEPTION WHEN OTHERS THEN
        IF SQLSTATE <> state THEN
            RAISE EXCEPTION 'expected SQLSTATE % but got % (%) from: %', state, SQLSTATE, SQLERRM, stmt;
        END IF;
        RETURN;
    END;
    RAISE EXCEPTION 'expected SQLSTATE % but the statement succeeded: %', state, stmt;
END;
$$;

-- expect_count(query, n): SELECT count(*) FROM (query) must be n.
CREATE FUNCTION pg_temp.expect_count(query text, n bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    got bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM (%s) q', query) INTO got;
    IF got IS DISTINCT FROM n THEN
        RAISE EXCEPTION 'expected % rows, got %: %', n, got, query;
    END IF;
END;
$$;

\echo '-- seed data'
INSERT INTO users (id, email, name, role) VALUES
    ('00000000-0000-4000-8000-0000000000a1', 'admin@example.com', 'Ada Admin', 'admin'),
    ('00000000-0000-4000-8000-0000000000a2', 'lead@example.com',  'Lee Lead',  'user'),
    ('00000000-0000-4000-8000-0000000000a3', 'bob@example.com',   'Bob',       DEFAULT);
INSERT INTO teams (id, name, key, contact) VALUES
    ('00000000-0000-4000-8000-0000000000b1', 'Payments', 'payments', '{"slack": "#payments"}'),
    ('00000000-0000-4000-8000-0000000000b2', 'Search',   'search',   NULL),
    ('00000000-0000-4000-8000-0000000000b3', 'Sandbox',  NULL,       NULL),
    ('00000000-0000-4000-8000-0000000000b4', 'Scratch',  NULL,       NULL);
INSERT INTO team_members (team_id, user_id, role) VALUES
    ('00000000-0000-4000-8000-0000000000b1', '00000000-0000-4000-8000-0000000000a2', 'lead'),
    ('00000000-0000-4000-8000-0000000000b1', '00000000-0000-4000-8000-0000000000a3', DEFAULT),
    ('00000000-0000-4000-8000-0000000000b3', '00000000-0000-4000-8000-0000000000a3', 'member');
INSERT INTO services (id, name, team_id, health_endpoint, poll_interval_ms, health_endpoint_format, schema_config) VALUES
    ('00000000-0000-4000-8000-0000000000c1', 'checkout-api', '00000000-0000-4000-8000-0000000000b1',
     'https://checkout.internal/health', 30000, 'default', NULL),
    ('00000000-0000-4000-8000-0000000000c2', 'ledger', '00000000-0000-4000-8000-0000000000b1',
     '', 0, 'otlp', '{"metrics": {"dep_up": "healthy"}, "labels": {"dep": "name"}}'),
    ('00000000-0000-4000-8000-0000000000c3', 'search-api', '00000000-0000-4000-8000-0000000000b2',
     'https://search.internal/health', 60000, 'schema', '{"root": "checks", "fields": {}}');
INSERT INTO dependencies (id, service_id, name, type, healthy, health_state, latency_ms, check_details, error, last_checked) VALUES
    ('00000000-0000-4000-8000-0000000000d1', '00000000-0000-4000-8000-0000000000c1', 'postgres-main', 'database', true, 0, 12.5,
     '{"pool": 10}', NULL, now()),
    ('00000000-0000-4000-8000-0000000000d2', '00000000-0000-4000-8000-0000000000c1', 'ledger', 'rest', false, 2, 250.25,
     NULL, '"connection refused"', now()),
    ('00000000-0000-4000-8000-0000000000d3', '00000000-0000-4000-8000-0000000000c3', 'checkout-api', 'rest', true, 0, 8,
     NULL, NULL, NULL);
INSERT INTO dependency_latency_history (dependency_id, latency_ms, p50_ms, p95_ms, p99_ms, request_count, source) VALUES
    ('00000000-0000-4000-8000-0000000000d1', 12.5, 10.1, 20.2, 30.3, 1200, 'otlp_histogram'),
    ('00000000-0000-4000-8000-0000000000d1', 11,   NULL, NULL, NULL, NULL, DEFAULT),
    ('00000000-0000-4000-8000-0000000000d3', 8,    NULL, NULL, NULL, NULL, DEFAULT);
INSERT INTO dependency_error_history (dependency_id, error, error_message) VALUES
    ('00000000-0000-4000-8000-0000000000d2', '"connection refused"', 'connect ECONNREFUSED'),
    ('00000000-0000-4000-8000-0000000000d2', NULL, NULL);
INSERT INTO dependency_associations (dependency_id, linked_service_id, association_type, is_auto_suggested) VALUES
    ('00000000-0000-4000-8000-0000000000d2', '00000000-0000-4000-8000-0000000000c2', 'api_call', true),
    ('00000000-0000-4000-8000-0000000000d3', '00000000-0000-4000-8000-0000000000c1', 'api_call', false);
INSERT INTO status_change_events (service_id, service_name, dependency_name, previous_healthy, current_healthy) VALUES
    ('00000000-0000-4000-8000-0000000000c1', 'checkout-api', 'ledger', NULL, true),
    ('00000000-0000-4000-8000-0000000000c1', 'checkout-api', 'ledger', true, false);
INSERT INTO service_poll_history (service_id, error) VALUES
    ('00000000-0000-4000-8000-0000000000c1', 'HTTP 503'),
    ('00000000-0000-4000-8000-0000000000c1', NULL);
INSERT INTO dependency_aliases (alias, canonical_name, manifest_team_id) VALUES
    ('pg-main', 'postgres-main', '00000000-0000-4000-8000-0000000000b4'),
    ('PG-MAIN', 'postgres-main', NULL);
INSERT INTO dependency_canonical_overrides (canonical_name, team_id, impact_override, updated_by) VALUES
    ('postgres-main', NULL,                                   'global impact', '00000000-0000-4000-8000-0000000000a1'),
    ('postgres-main', '00000000-0000-4000-8000-0000000000b1', 'payments impact', '00000000-0000-4000-8000-0000000000a2'),
    ('postgres-main', '00000000-0000-4000-8000-0000000000b4', 'scratch impact', NULL);
INSERT INTO external_node_enrichment (canonical_name, display_name, contact, updated_by) VALUES
    ('stripe', 'Stripe', '{"email": "ops@example.com"}', '00000000-0000-4000-8000-0000000000a1');
INSERT INTO audit_log (user_id, action, resource_type, resource_id, details, ip_address) VALUES
    ('00000000-0000-4000-8000-0000000000a1', 'team.created', 'team', '00000000-0000-4000-8000-0000000000b1',
     '{"name": "Payments"}', '10.0.0.1');
INSERT INTO settings (key, value, updated_by) VALUES
    ('data_retention_days', '90', '00000000-0000-4000-8000-0000000000a1');
INSERT INTO sessions (sid, sess, expire) VALUES
    ('sess-1', '{"cookie": {"maxAge": 86400000}, "userId": "00000000-0000-4000-8000-0000000000a2"}', now() + interval '24 hours');
INSERT INTO team_api_keys (id, team_id, name, key_hash, key_prefix, created_by) VALUES
    ('00000000-0000-4000-8000-0000000000e1', '00000000-0000-4000-8000-0000000000b1', 'collector',
     encode(sha256('dps_0123456789abcdef'), 'hex'), 'dps_0123', '00000000-0000-4000-8000-0000000000a2'),
    ('00000000-0000-4000-8000-0000000000e2', '00000000-0000-4000-8000-0000000000b4', 'scratch',
     encode(sha256('dps_fedcba9876543210'), 'hex'), 'dps_fedc', NULL);
INSERT INTO api_key_usage_buckets (api_key_id, bucket_start, granularity, push_count, rejected_count) VALUES
    ('00000000-0000-4000-8000-0000000000e2', '2025-01-01 10:07:00', 'minute', 3, 1),
    ('00000000-0000-4000-8000-0000000000e2', '2025-01-01 10:00:00', 'hour',   3, 1);
INSERT INTO span_resources (id, team_id, service_name, attributes, digest) OVERRIDING SYSTEM VALUE VALUES
    (1001, '00000000-0000-4000-8000-0000000000b1', 'checkout-api',
     '[{"key": "service.name", "value": {"stringValue": "checkout-api"}}]', sha256('r1')),
    (1002, '00000000-0000-4000-8000-0000000000b4', 'scratch-svc', NULL, sha256('r2'));
INSERT INTO spans (trace_id, span_id, parent_span_id, resource_id, name, kind, start_time, end_time, duration_ms, attributes) VALUES
    ('\x0af7651916cd43dd8448eb211c80319c', '\xb7ad6b7169203331', NULL,  1001, 'GET /pay', 2,
     now() - interval '2 s', now() - interval '1 s', 1000, '[{"key": "http.method", "value": {"stringValue": "GET"}}]'),
    ('\x0af7651916cd43dd8448eb211c80319c', '\x00f067aa0ba902b7', '\xb7ad6b7169203331', 1001, 'SELECT', 3,
     now() - interval '2 s', now() - interval '1 s', 1000, NULL),
    ('\x5b8efff798038103d269b633813fc60c', '\xeee19b7ec3c1b174', '',    1002, 'work', DEFAULT,
     now(), now(), 0, NULL);

\echo '-- defaults, seed row, CHECK constraints'
DO $$
BEGIN
    ASSERT (SELECT value FROM app_settings WHERE key = 'span_retention_days') = '7',
        'app_settings seed row span_retention_days=7';
    ASSERT (SELECT role = 'user' AND is_active IS TRUE FROM users WHERE email = 'bob@example.com'),
        'users defaults role=user, is_active=true';
    ASSERT (SELECT role FROM team_members WHERE user_id = '00000000-0000-4000-8000-0000000000a3'
              AND team_id = '00000000-0000-4000-8000-0000000000b1') = 'member', 'team_members default role';
    ASSERT (SELECT is_active AND NOT is_external AND last_poll_success IS NULL AND manifest_managed IS FALSE
              FROM services WHERE id = '00000000-0000-4000-8000-0000000000c1'), 'services defaults';
    ASSERT (SELECT skipped IS FALSE AND discovery_source = 'manual' AND type = 'database'
              FROM dependencies WHERE id = '00000000-0000-4000-8000-0000000000d1'), 'dependencies defaults';
    ASSERT (SELECT latency_ms FROM dependencies WHERE id = '00000000-0000-4000-8000-0000000000d2') = 250.25,
        'fractional latency kept';
    ASSERT (SELECT count(*) FROM dependency_latency_history WHERE id IS NOT NULL AND source = 'poll') = 2,
        'latency history id generated, source default poll';
    ASSERT (SELECT jsonb_typeof(error) FROM dependencies WHERE id = '00000000-0000-4000-8000-0000000000d2') = 'string',
        'dependencies.error holds any JSON value';
    ASSERT (SELECT NOT rate_limit_admin_locked AND rate_limit_rpm IS NULL FROM team_api_keys
             WHERE id = '00000000-0000-4000-8000-0000000000e1'), 'team_api_keys defaults';
    PERFORM pg_temp.expect_error($q$INSERT INTO users (email, name, role) VALUES ('x@example.com', 'X', 'root')$q$, '23514');
    PERFORM pg_temp.expect_error($q$INSERT INTO team_members (team_id, user_id, role)
        VALUES ('00000000-0000-4000-8000-0000000000b2', '00000000-0000-4000-8000-0000000000a1', 'owner')$q$, '23514');
    PERFORM pg_temp.expect_error($q$INSERT INTO api_key_usage_buckets (api_key_id, bucket_start, granularity)
        VALUES (gen_random_uuid(), '2025-01-01 10:00:00', 'day')$q$, '23514');
    PERFORM pg_temp.expect_error($q$INSERT INTO users (email, name) VALUES ('x@example.com', NULL)$q$, '23502');
    PERFORM pg_temp.expect_error($q$INSERT INTO app_settings (key, value) VALUES ('k', NULL)$q$, '23502');
END;
$$;

\echo '-- UNIQUE constraints and partial unique indexes'
DO $$
BEGIN
    PERFORM pg_temp.expect_error($q$INSERT INTO users (email, name) VALUES ('bob@example.com', 'Bob 2')$q$, '23505');
    PERFORM pg_temp.expect_error($q$INSERT INTO teams (name) VALUES ('Payments')$q$, '23505');
    -- idx_teams_key: unique only where not null
    PERFORM pg_temp.expect_error($q$INSERT INTO teams (name, key) VALUES ('Payments 2', 'payments')$q$, '23505');
    PERFORM pg_temp.expect_count($q$SELECT 1 FROM teams WHERE key IS NULL$q$, 2);
    -- idx_services_team_manifest_key: (team_id, manifest_key) where manifest_key is not null
    UPDATE services SET manifest_key = 'checkout' WHERE id = '00000000-0000-4000-8000-0000000000c1';
    PERFORM pg_temp.expect_error($q$UPDATE services SET manifest_key = 'checkout'
        WHERE id = '00000000-0000-4000-8000-0000000000c2'$q$, '23505');
    UPDATE services SET manifest_key = 'checkout' WHERE id = '00000000-0000-4000-8000-0000000000c3';  -- other team: fine
    -- dependencies UNIQUE (service_id, name) and the upsert conflict target
    PERFORM pg_temp.expect_error($q$INSERT INTO dependencies (service_id, name)
        VALUES ('00000000-0000-4000-8000-0000000000c1', 'ledger')$q$, '23505');
    INSERT INTO dependencies (service_id, name, healthy)
    VALUES ('00000000-0000-4000-8000-0000000000c1', 'ledger', true)
    ON CONFLICT (service_id, name) DO UPDATE SET healthy = EXCLUDED.healthy;
    ASSERT (SELECT healthy FROM dependencies WHERE id = '00000000-0000-4000-8000-0000000000d2'), 'upsert updated the row';
    INSERT INTO dependencies (service_id, name)                       -- same name, other service: fine
    VALUES ('00000000-0000-4000-8000-0000000000c3', 'ledger');
    -- dependency_associations UNIQUE (dependency_id, linked_service_id)
    PERFORM pg_temp.expect_error($q$INSERT INTO dependency_associations (dependency_id, linked_service_id)
        VALUES ('00000000-0000-4000-8000-0000000000d2', '00000000-0000-4000-8000-0000000000c2')$q$, '23505');
    INSERT INTO dependency_associations (dependency_id, linked_service_id)
    VALUES ('00000000-0000-4000-8000-0000000000d2', '00000000-0000-4000-8000-0000000000c2')
    ON CONFLICT (dependency_id, linked_service_id) DO NOTHING;
    PERFORM pg_temp.expect_count($q$SELECT 1 FROM dependency_associations
        WHERE dependency_id = '00000000-0000-4000-8000-0000000000d2'$q$, 1);
    -- dependency_aliases.alias is unique and case-sensitive
    PERFORM pg_temp.expect_error($q$INSERT INTO dependency_aliases (alias, canonical_name) VALUES ('pg-main', 'x')$q$, '23505');
    -- canonical overrides: one global row per name, one team-scoped row per (team, name)
    PERFORM pg_temp.expect_error($q$INSERT INTO dependency_canonical_overrides (canonical_name)
        VALUES ('postgres-main')$q$, '23505');
    PERFORM pg_temp.expect_error($q$INSERT INTO dependency_canonical_overrides (canonical_name, team_id)
        VALUES ('postgres-main', '00000000-0000-4000-8000-0000000000b1')$q$, '23505');
    INSERT INTO dependency_canonical_overrides (canonical_name, team_id, impact_override)
    VALUES ('postgres-main', NULL, 'replaced')
    ON CONFLICT (canonical_name) WHERE team_id IS NULL
    DO UPDATE SET impact_override = EXCLUDED.impact_override, updated_at = now();
    ASSERT (SELECT impact_override FROM dependency_canonical_overrides
             WHERE canonical_name = 'postgres-main' AND team_id IS NULL) = 'replaced', 'global override upsert';
    INSERT INTO dependency_canonical_overrides (canonical_name, team_id, impact_override)
    VALUES ('postgres-main', '00000000-0000-4000-8000-0000000000b1', 'replaced')
    ON CONFLICT (team_id, canonical_name) WHERE team_id IS NOT NULL
    DO UPDATE SET impact_override = EXCLUDED.impact_override;
    PERFORM pg_temp.expect_count($q$SELECT 1 FROM dependency_canonical_overrides
        WHERE canonical_name = 'postgres-main'$q$, 3);
    -- other uniques
    PERFORM pg_temp.expect_error($q$INSERT INTO external_node_enrichment (canonical_name) VALUES ('stripe')$q$, '23505');
    PERFORM pg_temp.expect_error($q$INSERT INTO team_api_keys (team_id, name, key_hash, key_prefix)
        VALUES ('00000000-0000-4000-8000-0000000000b2', 'dup', encode(sha256('dps_0123456789abcdef'), 'hex'), 'dps_0123')$q$, '23505');
    PERFORM pg_temp.expect_error($q$INSERT INTO api_key_usage_buckets (api_key_id, bucket_start, granularity)
        VALUES ('00000000-0000-4000-8000-0000000000e2', '2025-01-01 10:07:00', 'minute')$q$, '23505');
    -- additive usage upsert on the primary key
    INSERT INTO api_key_usage_buckets (api_key_id, bucket_start, granularity, push_count, rejected_count)
    VALUES ('00000000-0000-4000-8000-0000000000e2', '2025-01-01 10:07:00', 'minute', 2, 0)
    ON CONFLICT (api_key_id, bucket_start, granularity) DO UPDATE
    SET push_count     = api_key_usage_buckets.push_count + EXCLUDED.push_count,
        rejected_count = api_key_usage_buckets.rejected_count + EXCLUDED.rejected_count;
    ASSERT (SELECT push_count FROM api_key_usage_buckets
             WHERE api_key_id = '00000000-0000-4000-8000-0000000000e2' AND granularity = 'minute') = 5,
        'usage upsert is additive';
    PERFORM pg_temp.expect_error($q$INSERT INTO span_resources (team_id, service_name, digest)
        VALUES ('00000000-0000-4000-8000-0000000000b1', 'dup', sha256('r1'))$q$, '23505');
    PERFORM pg_temp.expect_error($q$INSERT INTO span_resources (team_id, service_name, digest)
        VALUES ('00000000-0000-4000-8000-0000000000b1', 'short', '\x00')$q$, '23514');
    PERFORM pg_temp.expect_error($q$INSERT INTO span_resources (id, team_id, service_name, digest)
        VALUES (5, '00000000-0000-4000-8000-0000000000b1', 'x', sha256('r9'))$q$, '428C9');  -- identity ALWAYS
END;
$$;

\echo '-- foreign keys: missing parents are refused'
DO $$
BEGIN
    PERFORM pg_temp.expect_error($q$INSERT INTO services (name, team_id, health_endpoint)
        VALUES ('x', gen_random_uuid(), '')$q$, '23503');
    PERFORM pg_temp.expect_error($q$INSERT INTO dependencies (service_id, name) VALUES (gen_random_uuid(), 'x')$q$, '23503');
    -- spans.resource_id has no FK since 005 (the ingest path); deleting resources still deletes
    -- their spans (below)
    -- services.manifest_config_id has no FK (team_manifest_config is out of scope)
    UPDATE services SET manifest_config_id = gen_random_uuid() WHERE id = '00000000-0000-4000-8000-0000000000c3';
    -- api_key_usage_buckets.api_key_id has no FK by design
    INSERT INTO api_key_usage_buckets (api_key_id, bucket_start, granularity)
    VALUES (gen_random_uuid(), '2025-01-01 11:00:00', 'hour');
END;
$$;

\echo '-- deleting a service cascades dependencies -> history, associations, events, poll history'
DO $$
BEGIN
    DELETE FROM services WHERE id = '00000000-0000-4000-8000-0000000000c1';
    PERFORM pg_temp.expect_count($q$SELECT 1 FROM dependencies WHERE service_id = '00000000-0000-4000-8000-0000000000c1'$q$, 0);
    PERFORM pg_temp.expect_count($q$SELECT 1 FROM dependency_latency_history
        WHERE dependency_id = '00000000-0000-4000-8000-0000000000d1'$q$, 0);
    PERFORM pg_temp.expect_count($q$SELECT 1 FROM dependency_error_history$q$, 0);
    -- d2's association (by dependency) and d3 -> c1 (by linked service) are both gone
    PERFORM pg_temp.expect_count($q$SELECT 1 FROM dependency_associations$q$, 0);
    PERFORM pg_temp.expect_count($q$SELECT 1 FROM status_change_events$q$, 0);
    PERFORM pg_temp.expect_count($q$SELECT 1 FROM service_poll_history$q$, 0);
    -- the other service's dependency and its history are untouched
    PERFORM pg_temp.expect_count($q$SELECT 1 FROM dependencies WHERE service_id = '00000000-0000-4000-8000-0000000000c3'$q$, 2);
    PERFORM pg_temp.expect_count($q$SELECT 1 FROM dependency_latency_history
        WHERE dependency_id = '00000000-0000-4000-8000-0000000000d3'$q$, 1);
END;
$$;

\echo '-- deleting a dependency cascades its history and associations'
DO $$
BEGIN
    INSERT INTO dependency_associations (dependency_id, linked_service_id)
    VALUES ('00000000-0000-4000-8000-0000000000d3', '00000000-0000-4000-8000-0000000000c2');
    INSERT INTO dependency_error_history (dependency_id, error_message)
    VALUES ('00000000-0000-4000-8000-0000000000d3', 'boom');
    DELETE FROM dependencies WHERE id = '00000000-0000-4000-8000-0000000000d3';
    PERFORM pg_temp.expect_count($q$SELECT 1 FROM dependency_latency_history$q$, 0);
    PERFORM pg_temp.expect_count($q$SELECT 1 FROM dependency_error_history$q$, 0);
    PERFORM pg_temp.expect_count($q$SELECT 1 FROM dependency_associations$q$, 0);
END;
$$;

\echo '-- deleting a team that owns a service is refused (RESTRICT)'
DO $$
BEGIN
    PERFORM pg_temp.expect_error($q$DELETE FROM teams WHERE id = '00000000-0000-4000-8000-0000000000b1'$q$, '23503');
    PERFORM pg_temp.expect_count($q$SELECT 1 FROM team_api_keys WHERE team_id = '00000000-0000-4000-8000-0000000000b1'$q$, 1);
    PERFORM pg_temp.expect_count($q$SELECT 1 FROM spans s JOIN span_resources r ON r.id = s.resource_id
        WHERE r.team_id = '00000000-0000-4000-8000-0000000000b1'$q$, 2);
END;
$$;

\echo '-- spans: placement in the UTC-day partition, partition function'
DO $$
DECLARE
    today     date := (now() AT TIME ZONE 'UTC')::date;
    expected  text := 'spans_' || to_char((now() AT TIME ZONE 'UTC')::date, 'YYYYMMDD');
    n         text;
    bound     text;
BEGIN
    -- the migration created yesterday .. today + 3
    FOR i IN -1..3 LOOP
        ASSERT to_regclass('spans_' || to_char(today + i, 'YYYYMMDD')) IS NOT NULL,
            format('partition for today%s exists', to_char(i, 'SG0'));
    END LOOP;
    -- every span inserted above (created_at default now()) is in today's partition
    PERFORM pg_temp.expect_count(format('SELECT 1 FROM spans WHERE tableoid = %L::regclass', expected), 3);
    PERFORM pg_temp.expect_count(format('SELECT 1 FROM ONLY %I', expected), 3);
    -- parent_span_id: NULL (absent) and empty (present but empty) are distinct
    PERFORM pg_temp.expect_count($q$SELECT 1 FROM spans WHERE parent_span_id IS NULL$q$, 1);
    PERFORM pg_temp.expect_count($q$SELECT 1 FROM spans WHERE parent_span_id = ''::bytea$q$, 1);
    ASSERT (SELECT kind = 0 AND status_code = 0 FROM spans WHERE name = 'work'), 'spans defaults kind/status_code 0';
    -- a receipt time with no partition is refused (no default partition)
    PERFORM pg_temp.expect_error($q$INSERT INTO spans (created_at, trace_id, span_id, resource_id, name, start_time, end_time, duration_ms)
        VALUES (now() + interval '400 days', '\x01', '\x02', 1001, 'x', now(), now(), 0)$q$, '23514');

    -- the function is idempotent and returns the name
    ASSERT depsera_ensure_span_partition(today) = expected, 'existing partition: name returned';
    ASSERT depsera_ensure_span_partition(today) = expected, 'second call: same name';

    -- bounds are UTC midnights whatever the session TimeZone
    SET LOCAL TimeZone = 'Pacific/Kiritimati';  -- UTC+14
    n := depsera_ensure_span_partition(date '2031-06-15');
    ASSERT n = 'spans_20310615', 'new partition name';
    SET LOCAL TimeZone = 'America/Los_Angeles';
    ASSERT depsera_ensure_span_partition(date '2031-06-15') = 'spans_20310615', 'idempotent under another TimeZone';
    SET LOCAL TimeZone = 'UTC';
    SELECT pg_get_expr(c.relpartbound, c.oid) INTO bound FROM pg_class c WHERE c.oid = 'spans_20310615'::regclass;
    ASSERT bound = $b$FOR VALUES FROM ('2031-06-15 00:00:00+00') TO ('2031-06-16 00:00:00+00')$b$,
        'UTC bounds, got: ' || bound;
    SELECT pg_get_expr(c.relpartbound, c.oid) INTO bound FROM pg_class c WHERE c.oid = expected::regclass;
    ASSERT bound = format('FOR VALUES FROM (%L) TO (%L)',
                          to_char(today, 'YYYY-MM-DD') || ' 00:00:00+00',
                          to_char(today + 1, 'YYYY-MM-DD') || ' 00:00:00+00'),
        'today''s partition has UTC bounds, got: ' || bound;
    -- 23:30 UTC lands in that UTC day's partition, even written from UTC+14
    SET LOCAL TimeZone = 'Pacific/Kiritimati';
    INSERT INTO spans (created_at, trace_id, span_id, resource_id, name, start_time, end_time, duration_ms)
    VALUES ('2031-06-15 23:30:00+00', '\x01', '\x02', 1001, 'late', now(), now(), 0);
    ASSERT (SELECT tableoid::regclass::text FROM spans WHERE name = 'late') = 'spans_20310615',
        '23:30 UTC is in the partition of its UTC day';
    SET LOCAL TimeZone = 'UTC';
    -- partitions inherit the parent's indexes
    PERFORM pg_temp.expect_count($q$SELECT 1 FROM pg_indexes WHERE tablename = 'spans_20310615'$q$, 2);
    -- a same-named table that is not a partition is reported
    PERFORM pg_temp.expect_error($q$SELECT depsera_ensure_span_partition(NULL)$q$, '22004');
    CREATE TABLE spans_20400101 (x int);
    PERFORM pg_temp.expect_error($q$SELECT depsera_ensure_span_partition('2040-01-01')$q$, '42P07');
    DROP TABLE spans_20400101;
END;
$$;

\echo '-- deleting a span resource cascades its spans'
DO $$
BEGIN
    DELETE FROM span_resources WHERE id = 1002;
    PERFORM pg_temp.expect_count($q$SELECT 1 FROM spans WHERE resource_id = 1002$q$, 0);
    PERFORM pg_temp.expect_count($q$SELECT 1 FROM spans$q$, 3);
END;
$$;

\echo '-- deleting a team without services cascades members, keys, span resources -> spans, scoped overrides'
DO $$
BEGIN
    INSERT INTO team_members (team_id, user_id) VALUES
        ('00000000-0000-4000-8000-0000000000b4', '00000000-0000-4000-8000-0000000000a3');
    INSERT INTO span_resources (id, team_id, service_name, digest) OVERRIDING SYSTEM VALUE
    VALUES (1003, '00000000-0000-4000-8000-0000000000b4', 'scratch-svc', sha256('r3'));
    INSERT INTO spans (trace_id, span_id, resource_id, name, start_time, end_time, duration_ms)
    VALUES ('\x5b8efff798038103d269b633813fc60d', '\x01', 1003, 'scratch', now(), now(), 0);
    DELETE FROM teams WHERE id = '00000000-0000-4000-8000-0000000000b4';
    PERFORM pg_temp.expect_count($q$SELECT 1 FROM team_members WHERE team_id = '00000000-0000-4000-8000-0000000000b4'$q$, 0);
    PERFORM pg_temp.expect_count($q$SELECT 1 FROM team_api_keys WHERE team_id = '00000000-0000-4000-8000-0000000000b4'$q$, 0);
    PERFORM pg_temp.expect_count($q$SELECT 1 FROM span_resources WHERE team_id = '00000000-0000-4000-8000-0000000000b4'$q$, 0);
    PERFORM pg_temp.expect_count($q$SELECT 1 FROM spans WHERE resource_id = 1003$q$, 0);
    PERFORM pg_temp.expect_count($q$SELECT 1 FROM dependency_canonical_overrides
        WHERE team_id = '00000000-0000-4000-8000-0000000000b4'$q$, 0);
    -- the global override survives; the alias loses its manifest team (SET NULL)
    PERFORM pg_temp.expect_count($q$SELECT 1 FROM dependency_canonical_overrides WHERE team_id IS NULL$q$, 1);
    ASSERT (SELECT manifest_team_id IS NULL FROM dependency_aliases WHERE alias = 'pg-main'), 'alias manifest_team_id set null';
    -- usage rows of the deleted key stay (no FK)
    PERFORM pg_temp.expect_count($q$SELECT 1 FROM api_key_usage_buckets
        WHERE api_key_id = '00000000-0000-4000-8000-0000000000e2'$q$, 2);
    -- other teams' spans are untouched
    PERFORM pg_temp.expect_count($q$SELECT 1 FROM spans$q$, 3);
END;
$$;

\echo '-- deleting the last service lets the team go, with its keys, spans and members'
DO $$
BEGIN
    DELETE FROM services WHERE team_id = '00000000-0000-4000-8000-0000000000b1';
    DELETE FROM teams WHERE id = '00000000-0000-4000-8000-0000000000b1';
    PERFORM pg_temp.expect_count($q$SELECT 1 FROM team_api_keys$q$, 0);
    PERFORM pg_temp.expect_count($q$SELECT 1 FROM span_resources$q$, 0);
    PERFORM pg_temp.expect_count($q$SELECT 1 FROM spans$q$, 0);
    PERFORM pg_temp.expect_count($q$SELECT 1 FROM team_members WHERE team_id = '00000000-0000-4000-8000-0000000000b1'$q$, 0);
END;
$$;

\echo '-- users: delete cascades memberships; referenced users (audit, settings, ...) are refused'
DO $$
BEGIN
    -- bob: member of Sandbox, referenced by nothing else
    DELETE FROM users WHERE id = '00000000-0000-4000-8000-0000000000a3';
    PERFORM pg_temp.expect_count($q$SELECT 1 FROM team_members WHERE user_id = '00000000-0000-4000-8000-0000000000a3'$q$, 0);
    -- the admin is referenced by audit_log, settings, overrides, enrichment (NO ACTION)
    PERFORM pg_temp.expect_error($q$DELETE FROM users WHERE id = '00000000-0000-4000-8000-0000000000a1'$q$, '23503');
    DELETE FROM audit_log;
    DELETE FROM settings;
    DELETE FROM dependency_canonical_overrides;
    PERFORM pg_temp.expect_error($q$DELETE FROM users WHERE id = '00000000-0000-4000-8000-0000000000a1'$q$, '23503');
    DELETE FROM external_node_enrichment;
    DELETE FROM users WHERE id = '00000000-0000-4000-8000-0000000000a1';
END;
$$;

ROLLBACK;
\echo 'PASS: check-constraints.sql: all assertions held (transaction rolled back)'
