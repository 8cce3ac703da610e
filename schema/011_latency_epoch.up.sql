-- 011_latency_epoch: a counter that moves whenever dependency_latency_history
-- changes other than by rows written with their current time, so that a
-- reader can keep the aggregates of a past 24-hour window and read only
-- the rows written since (GET /api/graph, src/api/graph_avg.c).
--   * every writer of the server records latency rows at statement_timestamp();
--     a row recorded more than a minute before its statement (back-dated: by
--     hand, a restore, a test) moves the epoch, as does any DELETE, UPDATE or
--     TRUNCATE (retention, the cascade of dependencies);
--   * the insert trigger is per row with a WHEN condition: evaluated in the
--     executor without a function call, the hot insert of every push pays
--     one comparison a row; the others are per statement.  The epoch moves
--     once per transaction (a transaction-local setting remembers it), not
--     once per back-dated row.
-- Conventions: see 001_core.up.sql.
CREATE TABLE latency_history_epoch (
    id     boolean NOT NULL DEFAULT true,
    epoch  bigint  NOT NULL DEFAULT 0,
    PRIMARY KEY (id),
    CHECK (id)
);
INSERT INTO latency_history_epoch (id) VALUES (true);

CREATE FUNCTION depsera_latency_history_epoch()
RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    IF current_setting('depsera.latency_epoch_moved', true) IS DISTINCT FROM 'yes' THEN
        UPDATE latency_history_epoch SET epoch = epoch + 1;
        PERFORM set_config('depsera.latency_epoch_moved', 'yes', true);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER latency_history_backdated
    AFTER INSERT ON dependency_latency_history
    FOR EACH ROW WHEN (NEW.recorded_at < statement_timestamp() - interval '1 minute')
    EXECUTE FUNCTION depsera_latency_history_epoch();

CREATE TRIGGER latency_history_changed
    AFTER DELETE OR UPDATE OR TRUNCATE ON dependency_latency_history
    FOR EACH STATEMENT
    EXECUTE FUNCTION depsera_latency_history_epoch();
