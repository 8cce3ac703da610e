-- 009_poll_requests: manual polls (polling.md section 6).  The HTTP worker
-- records the request, makes the service due at once and NOTIFYs
-- depsera_poll; the poller that claims the service fills in the outcome in the
-- transaction that records the poll; the worker, waiting for it, answers.
-- Rows are kept a day (the pruner), so an abandoned request is harmless.
-- Conventions: see 001_core.up.sql.
CREATE TABLE poll_requests (
    id                    uuid             NOT NULL DEFAULT gen_random_uuid(),
    service_id            uuid             NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    requested_at          timestamptz      NOT NULL DEFAULT now(),
    requested_by          uuid                      REFERENCES users (id) ON DELETE SET NULL,
    finished_at           timestamptz,               -- NULL while pending
    success               boolean,
    dependencies_updated  integer,
    status_changes        integer,
    latency_ms            double precision,          -- the poll's request time
    error                 text,                      -- the sanitized failure, NULL on success
    PRIMARY KEY (id)
);

-- the poller's lookup of a service's pending requests
CREATE INDEX idx_poll_requests_pending ON poll_requests (service_id) WHERE finished_at IS NULL;
CREATE INDEX idx_poll_requests_time ON poll_requests (requested_at);
