-- 008_poller: the poll schedule (polling.md sections 0 and 3), shared by every
-- poller on every node.  One row per service that is polled (active, not
-- external, format default/schema/prometheus), kept so by a trigger on
-- services: a service that stops being polled loses its row (and with it its
-- backoff and breaker state), a change of anything a poll uses makes the
-- service due at once with a fresh backoff and breaker (open-questions D2).
--
-- A poller claims due rows with one UPDATE ... WHERE service_id IN (SELECT
-- ... FOR UPDATE SKIP LOCKED) that sets a lease (claimed_until) and a token;
-- it completes a poll only if its token is still there, in the transaction
-- that writes the poll's results.  A poller that dies leaves its leases to
-- expire; others then take the rows over.  Conventions: see 001_core.up.sql.

CREATE TABLE poll_schedule (
    service_id       uuid        NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    host             text        NOT NULL,   -- URL host of health_endpoint, lower case: the per-host cap's key
    next_due_at      timestamptz NOT NULL DEFAULT now(),
    generation       bigint      NOT NULL DEFAULT 1,   -- bumped by every change of what is polled
    claimed_until    timestamptz,            -- lease of the poll in flight; NULL: none
    claim_token      uuid,                   -- identifies that poll; its completion must present it
    failures         integer     NOT NULL DEFAULT 0,   -- consecutive failures (backoff, breaker)
    circuit          text        NOT NULL DEFAULT 'closed',
    last_failure_at  timestamptz,
    last_polled_at   timestamptz,            -- completion of the last poll
    PRIMARY KEY (service_id),
    CHECK (circuit IN ('closed', 'open', 'half_open')),
    CHECK (failures >= 0),
    CHECK ((claimed_until IS NULL) = (claim_token IS NULL))
);

-- the claim's scan, in due order
CREATE INDEX idx_poll_schedule_due ON poll_schedule (next_due_at);
-- polls in flight per host (the per-host cap): only claimed rows
CREATE INDEX idx_poll_schedule_claimed ON poll_schedule (host) WHERE claimed_until IS NOT NULL;
-- the last poll-history row of a service (section 5), read by every poll
CREATE INDEX idx_sph_service_time ON service_poll_history (service_id, recorded_at);

-- The host of an http(s) URL as the per-host cap counts it (lower case, IPv6
-- literals with their brackets); '' when there is none.
CREATE FUNCTION depsera_poll_host(url text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT lower(coalesce(substring(url FROM '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^/?#@]*@)?(\[[^]/?#]*\]|[^:/?#]*)'), ''))
$$;

CREATE FUNCTION depsera_poll_schedule_sync() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.is_active AND NOT NEW.is_external
       AND NEW.health_endpoint_format IN ('default', 'schema', 'prometheus') THEN
        INSERT INTO poll_schedule (service_id, host)
        VALUES (NEW.id, depsera_poll_host(NEW.health_endpoint))
        ON CONFLICT (service_id) DO UPDATE
            SET host = EXCLUDED.host, next_due_at = now(), generation = poll_schedule.generation + 1,
                failures = 0, circuit = 'closed', last_failure_at = NULL;
    ELSE
        DELETE FROM poll_schedule WHERE service_id = NEW.id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER services_poll_schedule_insert AFTER INSERT ON services
    FOR EACH ROW EXECUTE FUNCTION depsera_poll_schedule_sync();
CREATE TRIGGER services_poll_schedule_update AFTER UPDATE ON services
    FOR EACH ROW
    WHEN (OLD.health_endpoint IS DISTINCT FROM NEW.health_endpoint
          OR OLD.poll_interval_ms IS DISTINCT FROM NEW.poll_interval_ms
          OR OLD.health_endpoint_format IS DISTINCT FROM NEW.health_endpoint_format
          OR OLD.schema_config IS DISTINCT FROM NEW.schema_config
          OR OLD.is_active IS DISTINCT FROM NEW.is_active
          OR OLD.is_external IS DISTINCT FROM NEW.is_external)
    EXECUTE FUNCTION depsera_poll_schedule_sync();

INSERT INTO poll_schedule (service_id, host)
SELECT id, depsera_poll_host(health_endpoint) FROM services
 WHERE is_active AND NOT is_external AND health_endpoint_format IN ('default', 'schema', 'prometheus');
