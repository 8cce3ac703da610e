-- 007_rate_limits: the shared state of every request limiter
-- (api-keys-and-rate-limits.md section 0: limits hold across all workers and
-- all nodes).  Workers lease tokens (bucket) or hits (fixed window) in batches
-- with one call of a function below and spend them locally; see
-- src/limit/limits.c for the lease sizing.
--
-- UNLOGGED: a limiter's state is a few hot rows updated thousands of times a
-- minute; after a PostgreSQL crash it starts again empty (every bucket full,
-- every window new), as the original's in-memory limiters do after a restart.
-- Times are epoch milliseconds of the database clock, so that nodes whose
-- clocks differ still share one timeline.
-- Conventions: see 001_core.up.sql.
CREATE UNLOGGED TABLE rate_limit_state (
    limiter  text             NOT NULL,  -- 'key' (token bucket per API key id), 'api', 'auth',
                                         -- 'otlp_traces', 'otlp_metrics' (fixed windows per client IP)
    subject  text             NOT NULL,  -- API key id, or client address
    tokens   double precision NOT NULL,  -- bucket: tokens at at_ms; window: hits counted in the window
    at_ms    bigint           NOT NULL,  -- bucket: last refill; window: start of the window
    PRIMARY KEY (limiter, subject)
);

-- Token bucket lease: refill to now (continuous, rpm/60000 per ms, at most
-- p_capacity), add back p_give unspent tokens, then grant up to p_want whole
-- tokens.  Returns what was granted, the tokens left and the database time.
-- A missing row is a full bucket (creation, or eviction by a rate-limit change);
-- a row deleted between the insert and the lock (an eviction, the pruner) is
-- inserted again.  Elapsed time is multiplied in double precision: a huge rpm
-- times a long idle time must not overflow bigint.
CREATE FUNCTION depsera_bucket_lease(p_subject text, p_rpm bigint, p_capacity bigint, p_want bigint, p_give double precision,
                                     OUT granted bigint, OUT tokens double precision, OUT now_ms bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_at bigint;
BEGIN
    now_ms := floor(extract(epoch FROM clock_timestamp()) * 1000);
    LOOP
        INSERT INTO rate_limit_state AS s (limiter, subject, tokens, at_ms)
        VALUES ('key', p_subject, p_capacity, now_ms)
        ON CONFLICT (limiter, subject) DO NOTHING;
        SELECT s.tokens, s.at_ms INTO tokens, v_at FROM rate_limit_state s
         WHERE s.limiter = 'key' AND s.subject = p_subject FOR UPDATE;
        EXIT WHEN FOUND;
    END LOOP;
    tokens := least(p_capacity::double precision,
                    greatest(tokens, 0) + greatest(now_ms - v_at, 0)::double precision * p_rpm / 60000.0
                    + greatest(p_give, 0));
    granted := least(greatest(p_want, 0), floor(tokens)::bigint);
    tokens := tokens - granted;
    UPDATE rate_limit_state s SET tokens = depsera_bucket_lease.tokens, at_ms = greatest(v_at, now_ms)
     WHERE s.limiter = 'key' AND s.subject = p_subject;
END
$$;

-- Fixed window lease: a window starts at a client's first hit and lasts
-- p_window_ms; grant up to p_want of the p_max hits it allows (p_give unspent
-- hits of the same window are first given back).  Returns what was granted,
-- the hits used, the window start and the database time.
CREATE FUNCTION depsera_window_lease(p_limiter text, p_subject text, p_max bigint, p_window_ms bigint, p_want bigint,
                                     p_give bigint, p_give_start bigint,
                                     OUT granted bigint, OUT used bigint, OUT start_ms bigint, OUT now_ms bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_used double precision;
BEGIN
    now_ms := floor(extract(epoch FROM clock_timestamp()) * 1000);
    LOOP
        INSERT INTO rate_limit_state AS s (limiter, subject, tokens, at_ms)
        VALUES (p_limiter, p_subject, 0, now_ms)
        ON CONFLICT (limiter, subject) DO NOTHING;
        SELECT s.tokens, s.at_ms INTO v_used, start_ms FROM rate_limit_state s
         WHERE s.limiter = p_limiter AND s.subject = p_subject FOR UPDATE;
        EXIT WHEN FOUND;
    END LOOP;
    IF now_ms >= start_ms + p_window_ms THEN
        start_ms := now_ms;
        v_used := 0;
    ELSIF p_give > 0 AND p_give_start = start_ms THEN
        v_used := greatest(v_used - p_give, 0);
    END IF;
    granted := least(greatest(p_want, 0), greatest(p_max - v_used::bigint, 0));
    used := v_used::bigint + granted;
    UPDATE rate_limit_state s SET tokens = depsera_window_lease.used, at_ms = depsera_window_lease.start_ms
     WHERE s.limiter = p_limiter AND s.subject = p_subject;
END
$$;
