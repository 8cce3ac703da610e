"""The retention pruner (retention.md, issue 8): what one run keeps, span partitions, the advisory
lock between pruners, the run recorded in the database, re-planning on NOTIFY depsera_retention.

Rows are dated at half-day offsets (k + 0.5 days ago), so that a window of N days keeps exactly
the rows k < N whatever the few seconds between seeding and the run. The pruners run with TZ=UTC
unless a test needs another local time.
"""

import datetime
import json
import os
import signal
import time

import pytest

from conftest import wait_for

D = 20   # data_retention_days
S = 5    # span_retention_days
FAST = {"PRUNER_CHECK_INTERVAL_MS": "300", "TZ": "UTC"}
LOCK = "(1685086066, 4)"

HISTORY = ("dependency_latency_history", "dependency_error_history", "status_change_events",
           "service_poll_history", "audit_log")


def seed(db):
    """Rows over 40 days in every table of retention.md §2, sessions, spans partitions over 10 days."""
    team, svc, dep, user = ("10000000-0000-0000-0000-000000000001", "20000000-0000-0000-0000-000000000001",
                            "30000000-0000-0000-0000-000000000001", "40000000-0000-0000-0000-000000000001")
    live_key, gone_key = "50000000-0000-0000-0000-000000000001", "50000000-0000-0000-0000-0000000000ff"
    db.psql(f"""
    INSERT INTO users (id, email, name, role) VALUES ('{user}', 'a@x', 'a', 'admin');
    INSERT INTO teams (id, name) VALUES ('{team}', 't');
    INSERT INTO services (id, name, team_id, health_endpoint) VALUES ('{svc}', 's', '{team}', '');
    INSERT INTO dependencies (id, service_id, name) VALUES ('{dep}', '{svc}', 'db');
    INSERT INTO team_api_keys (id, team_id, name, key_hash, key_prefix)
        VALUES ('{live_key}', '{team}', 'k', repeat('a', 64), 'dps_aaaa');
    INSERT INTO dependency_latency_history (dependency_id, latency_ms, recorded_at)
        SELECT '{dep}', 1, now() - make_interval(days => k, hours => 12) FROM generate_series(0, 39) k;
    INSERT INTO dependency_error_history (dependency_id, recorded_at)
        SELECT '{dep}', now() - make_interval(days => k, hours => 12) FROM generate_series(0, 39) k;
    INSERT INTO status_change_events (service_id, service_name, dependency_name, current_healthy, recorded_at)
        SELECT '{svc}', 's', 'db', true, now() - make_interval(days => k, hours => 12) FROM generate_series(0, 39) k;
    INSERT INTO service_poll_history (service_id, recorded_at)
        SELECT '{svc}', now() - make_interval(days => k, hours => 12) FROM generate_series(0, 39) k;
    INSERT INTO audit_log (user_id, action, resource_type, created_at)
        SELECT '{user}', 'x', 'y', now() - make_interval(days => k, hours => 12) FROM generate_series(0, 39) k;
    -- one dependency per day, each with an association: even days dismissed (k + 0.5 days ago,
    -- created 45 days ago), odd days confirmed/suggested (kept whatever their age)
    INSERT INTO dependencies (service_id, name) SELECT '{svc}', 'd' || k FROM generate_series(0, 39) k;
    INSERT INTO dependency_associations (dependency_id, linked_service_id, created_at, is_auto_suggested,
                                         is_dismissed, dismissed_at)
        SELECT d.id, '{svc}', now() - interval '45 days', true, k % 2 = 0,
               CASE WHEN k % 2 = 0 THEN now() - make_interval(days => k, hours => 12) END
          FROM generate_series(0, 39) k JOIN dependencies d ON d.name = 'd' || k;
    -- usage buckets of a live key and of a deleted one
    INSERT INTO api_key_usage_buckets (api_key_id, bucket_start, granularity, push_count)
        SELECT key, date_trunc('minute', (now() AT TIME ZONE 'UTC') - make_interval(hours => h)), 'minute', 1
          FROM unnest(ARRAY['{live_key}', '{gone_key}']::uuid[]) key, unnest(ARRAY[1, 23, 25, 48]) h;
    INSERT INTO api_key_usage_buckets (api_key_id, bucket_start, granularity, push_count)
        SELECT key, date_trunc('hour', (now() AT TIME ZONE 'UTC') - make_interval(days => d)), 'hour', 1
          FROM unnest(ARRAY['{live_key}', '{gone_key}']::uuid[]) key, unnest(ARRAY[1, 6, 8, 29, 31, 40]) d;
    -- limiter state last touched 1 h, 47 h, 49 h and 10 days ago: the last two go
    INSERT INTO rate_limit_state (limiter, subject, tokens, at_ms)
        SELECT 'api', '10.0.0.' || h, 1, floor(extract(epoch FROM now() - make_interval(hours => h)) * 1000)
          FROM unnest(ARRAY[1, 47, 49, 240]) h;
    INSERT INTO sessions (sid, sess, expire)
        SELECT 'old' || h, '{{}}', now() - make_interval(hours => h) FROM generate_series(1, 10) h;
    INSERT INTO sessions (sid, sess, expire)
        SELECT 'new' || h, '{{}}', now() + make_interval(hours => h) FROM generate_series(1, 10) h;
    -- span partitions for the last 10 UTC days, one span in each
    SELECT depsera_ensure_span_partition((now() AT TIME ZONE 'UTC')::date - k) FROM generate_series(0, 9) k;
    INSERT INTO span_resources (team_id, service_name, digest) VALUES ('{team}', 's', sha256('r'));
    INSERT INTO spans (created_at, start_time, end_time, duration_ms, resource_id, trace_id, span_id, name)
        SELECT least(now(), (((now() AT TIME ZONE 'UTC')::date - k)::timestamp + interval '12 hours') AT TIME ZONE 'UTC'),
               now(), now(), 1, (SELECT id FROM span_resources), '\\x00', '\\x00', 'span' || k
          FROM generate_series(0, 9) k;
    INSERT INTO settings (key, value) VALUES ('data_retention_days', '{D}'), ('retention_cleanup_time', '00:00');
    UPDATE app_settings SET value = '{S}' WHERE key = 'span_retention_days';
    """)


def count(db, table, where="true"):
    return int(db.psql(f"SELECT count(*) FROM {table} WHERE {where}"))


def partitions(db):
    out = db.psql("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                  "WHERE i.inhparent = 'spans'::regclass ORDER BY 1")
    return [p for p in out.splitlines() if p]


def last_run(db):
    out = db.psql("SELECT row_to_json(r) FROM pruner_runs r")
    return json.loads(out) if out else None


def runs(srv):
    return [o for o in srv.log_lines() if o.get("msg") == "retention run"]


def lock_holders(db):
    out = db.psql("SELECT a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                  "WHERE l.locktype = 'advisory' AND l.classid = 1685086066 AND l.objid = 4 AND l.granted")
    return [p for p in out.splitlines() if p]


def pruner(server, db, env=None):
    return server(db.url, command="pruner", workers=None, wait=False, env=dict(FAST, **(env or {})))


def utc_day(offset=0):
    return datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=offset)


# --------------------------------------------------------------------------


def test_one_run_keeps_exactly_the_windows(migrated_db, server):
    db = migrated_db
    seed(db)
    before = partitions(db)
    srv = pruner(server, db)
    line = srv.wait_log(lambda o: o.get("msg") == "retention run", 20, what="a retention run")

    for t in HISTORY:
        col = "created_at" if t == "audit_log" else "recorded_at"
        assert count(db, t) == D, t
        assert count(db, t, f"{col} < now() - interval '{D} days'") == 0, t
        assert line[t] == 40 - D, (t, line)
    # dismissed: kept while dismissed less than S days ago (k = 0, 2, 4); confirmed ones all kept
    assert count(db, "dependency_associations", "is_dismissed") == 3
    assert count(db, "dependency_associations", "NOT is_dismissed") == 20
    assert line["dependency_associations"] == 17
    # live key: minute 1 h, 23 h; hour 1, 6, 8, 29 d. Deleted key: minute 1 h, 23 h; hour 1, 6 d.
    live = "api_key_id = '50000000-0000-0000-0000-000000000001'"
    assert count(db, "api_key_usage_buckets", live + " AND granularity = 'minute'") == 2
    assert count(db, "api_key_usage_buckets", live + " AND granularity = 'hour'") == 4
    assert count(db, "api_key_usage_buckets", "NOT " + live + " AND granularity = 'minute'") == 2
    assert count(db, "api_key_usage_buckets", "NOT " + live + " AND granularity = 'hour'") == 2
    assert line["api_key_usage_buckets"] == 20 - 10
    assert count(db, "sessions") == 10 and count(db, "sessions", "expire < now()") == 0
    assert line["sessions"] == 10
    assert sorted(db.psql("SELECT subject FROM rate_limit_state").split()) == ["10.0.0.1", "10.0.0.47"]
    assert line["rate_limit_state"] == 2

    # spans: whole partitions whose day ended before the span cutoff are dropped, the rest kept
    rec = last_run(db)
    span_cutoff = datetime.datetime.fromisoformat(rec["span_cutoff"])
    after = partitions(db)

    def upper(p):
        d = datetime.datetime.strptime(p[6:], "%Y%m%d").replace(tzinfo=datetime.timezone.utc)
        return d + datetime.timedelta(days=1)

    expired = [p for p in before if upper(p) <= span_cutoff]
    assert len(expired) >= S - 1, (before, span_cutoff)
    assert sorted(rec["partitions_dropped"]) == expired
    assert not set(expired) & set(after)
    assert line["partitions_dropped"] == ",".join(expired)
    kept = [p for p in before if p not in expired]
    assert count(db, "spans") == len([p for p in kept if upper(p) - datetime.timedelta(days=1)
                                      <= datetime.datetime.now(datetime.timezone.utc)])
    # created ahead: today .. today + 3 (the migration made up to today + 3 already; the run keeps
    # them whatever day it is)
    for k in range(0, 4):
        assert f"spans_{utc_day(k):%Y%m%d}" in after

    # the run is recorded, with what the log line says
    assert rec["data_retention_days"] == D and rec["span_retention_days"] == S
    assert rec["counts"]["audit_log"] == 20 and rec["counts"]["sessions"] == 10
    cutoff = datetime.datetime.fromisoformat(rec["cutoff"])
    started = datetime.datetime.fromisoformat(rec["started_at"])
    assert abs((started - datetime.timedelta(days=D) - cutoff).total_seconds()) < 1.5, rec
    # further checks (every 300 ms) do not run again the same day
    time.sleep(1.5)
    assert len(runs(srv)) == 1, srv.tail()
    assert last_run(db)["started_at"] == rec["started_at"]


def test_future_partitions_are_created(migrated_db, server):
    db = migrated_db
    db.psql(f"DROP TABLE spans_{utc_day(2):%Y%m%d}; DROP TABLE spans_{utc_day(3):%Y%m%d}")
    db.psql("INSERT INTO settings (key, value) VALUES ('retention_cleanup_time', '00:00')")
    srv = pruner(server, db)
    line = srv.wait_log(lambda o: o.get("msg") == "retention run", 20, what="a retention run")
    want = [f"spans_{utc_day(k):%Y%m%d}" for k in (2, 3)]
    assert all(p in partitions(db) for p in want)
    assert line["partitions_created"] == ",".join(want), line
    assert last_run(db)["partitions_created"] == want


def test_one_pruner_works_and_another_takes_over(migrated_db, server):
    db = migrated_db
    db.psql("INSERT INTO settings (key, value) VALUES ('retention_cleanup_time', '00:00')")
    a, b = pruner(server, db), pruner(server, db)
    acquired = lambda s: [o for o in s.log_lines() if o.get("msg") == "retention lock acquired"]
    waiting = lambda s: [o for o in s.log_lines()
                         if o.get("msg") == "retention lock held by another pruner; waiting"]
    wait_for(lambda: (acquired(a) or acquired(b)) and (waiting(a) or waiting(b)), 15,
             what="one pruner holding the lock and one waiting", detail=lambda: a.tail() + b.tail())
    holder, other = (a, b) if acquired(a) else (b, a)
    wait_for(lambda: runs(holder), 10, what="the holder's run", detail=holder.tail)
    time.sleep(1.0)  # a few more checks of both
    assert not acquired(other) and not runs(other), other.tail()
    assert len(runs(holder)) == 1
    assert len(lock_holders(db)) == 1

    # the holder dies without a word: its session ends, the other takes the lock within a check
    os.kill(holder.pid, signal.SIGKILL)
    holder.proc.wait(5)
    t0 = time.monotonic()
    wait_for(lambda: acquired(other), 10, what="the waiting pruner to take the lock", detail=other.tail)
    print(f"took over {time.monotonic() - t0:.2f}s after SIGKILL")
    # today's run is recorded in the database: the new holder does not run again ...
    time.sleep(1.0)
    assert not runs(other), other.tail()
    # ... until the record says it has not run today
    db.psql("UPDATE pruner_runs SET started_at = started_at - interval '1 day'")
    wait_for(lambda: runs(other), 10, what="the new holder's run", detail=other.tail)
    assert len(lock_holders(db)) == 1


def test_restart_same_day_does_not_run_again(migrated_db, server):
    db = migrated_db
    db.psql("INSERT INTO settings (key, value) VALUES ('retention_cleanup_time', '00:00')")
    first = pruner(server, db)
    first.wait_log(lambda o: o.get("msg") == "retention run", 20, what="a retention run")
    rec = last_run(db)
    first.stop(signal.SIGTERM)
    assert first.wait(10) == 0

    second = pruner(server, db)
    second.wait_log(lambda o: o.get("msg") == "retention lock acquired", 15, what="the lock")
    time.sleep(1.5)
    assert not runs(second), second.tail()
    assert last_run(db) == rec
    second.stop(signal.SIGTERM)
    assert second.wait(10) == 0

    # a missed day is caught up at start
    db.psql("UPDATE pruner_runs SET started_at = started_at - interval '1 day'")
    third = pruner(server, db)
    third.wait_log(lambda o: o.get("msg") == "retention run", 15, what="the catch-up run")
    assert last_run(db)["started_at"] > rec["started_at"]


def local_noon_tz():
    """A POSIX TZ in which the local time is now about 12:00, and its offset in hours."""
    offset = 12 - datetime.datetime.now(datetime.timezone.utc).hour  # local = UTC + offset
    if offset > 14:
        offset -= 24
    return f"XXX{-offset:+d}".replace("+", ""), offset


def test_notify_replans(migrated_db, server):
    """With the default one-minute check: a cleanup time already past, set by NOTIFY, runs at once."""
    db = migrated_db
    tz, _ = local_noon_tz()
    db.psql("INSERT INTO settings (key, value) VALUES ('retention_cleanup_time', '23:00')")
    srv = server(db.url, command="pruner", workers=None, wait=False, env={"TZ": tz})
    srv.wait_log(lambda o: o.get("msg") == "retention lock acquired", 15, what="the lock")
    time.sleep(1.0)
    assert not runs(srv), srv.tail()  # 23:00 local has not come yet
    db.psql("UPDATE settings SET value = '00:00' WHERE key = 'retention_cleanup_time'; "
            "NOTIFY depsera_retention, 'settings'")
    t0 = time.monotonic()
    srv.wait_log(lambda o: o.get("msg") == "retention run", 5, what="a run after NOTIFY")
    assert time.monotonic() - t0 < 5


def test_local_time_decides(migrated_db, server):
    """The cleanup time is local time (TZ of the process), not UTC."""
    db = migrated_db
    tz, offset = local_noon_tz()
    # 06:00 local has passed (it is about noon there); in UTC it may not have
    db.psql("INSERT INTO settings (key, value) VALUES ('retention_cleanup_time', '06:00')")
    srv = pruner(server, db, env={"TZ": tz})
    srv.wait_log(lambda o: o.get("msg") == "retention run", 15, what="a run at local time")
    db.psql("DELETE FROM pruner_runs; UPDATE settings SET value = '18:00' WHERE key = 'retention_cleanup_time'")
    time.sleep(1.5)
    assert len(runs(srv)) == 1, srv.tail()  # 18:00 local is still to come


def test_admin_settings_show_the_last_run(migrated_db, server):
    """serve starts a pruner; a PUT of retention_cleanup_time re-plans it (NOTIFY) and
    GET /api/admin/settings shows the run."""
    from test_admin import ADMIN_EMAIL, ADMIN_PASSWORD, Client, expect

    db = migrated_db
    tz, _ = local_noon_tz()
    srv = server(db.url, workers=1, env={"LOCAL_AUTH": "true", "ADMIN_EMAIL": ADMIN_EMAIL,
                                         "ADMIN_PASSWORD": ADMIN_PASSWORD, "TZ": tz,
                                         "RETENTION_CLEANUP_TIME": "23:00"})
    c = Client(srv.base)
    c.login(ADMIN_EMAIL, ADMIN_PASSWORD)
    body = expect(c.get("/api/admin/settings"), 200)
    assert set(body) == {"settings", "retention_last_run"}
    assert body["retention_last_run"] is None
    expect(c.put("/api/admin/settings", {"retention_cleanup_time": "00:00", "data_retention_days": 30}), 200)
    srv.wait_log(lambda o: o.get("msg") == "retention run", 10, what="a run after the PUT")
    last = wait_for(lambda: expect(c.get("/api/admin/settings"), 200)["retention_last_run"], 5,
                    what="retention_last_run")
    assert last["data_retention_days"] == 30 and last["span_retention_days"] == 7
    for k in ("at", "finished_at", "cutoff", "span_cutoff"):
        assert last[k].endswith("Z") and len(last[k]) == 24, last
    assert set(last["counts"]) == {"dependency_latency_history", "dependency_error_history", "audit_log",
                                   "status_change_events", "service_poll_history", "dependency_associations",
                                   "api_key_usage_buckets", "rate_limit_state", "poll_requests", "sessions",
                                   "dependency_latency_minutes"}
    assert isinstance(last["partitions_dropped"], list) and isinstance(last["duration_ms"], int)


def test_sigterm_during_a_long_run_is_prompt(migrated_db, server):
    db = migrated_db
    seed(db)
    db.psql("INSERT INTO dependency_latency_history (dependency_id, latency_ms, recorded_at) "
            "SELECT '30000000-0000-0000-0000-000000000001', 1, now() - interval '100 days' "
            "FROM generate_series(1, 300000)")
    srv = pruner(server, db)
    srv.wait_log(lambda o: o.get("msg") == "retention run starting", 15, what="the run to start")
    srv.stop(signal.SIGTERM)
    t0 = time.monotonic()
    code = srv.wait(10)
    assert code == 0 and time.monotonic() - t0 < 3, srv.tail()
    if not runs(srv):
        assert last_run(db) is None


def test_run_during_continuous_ingest_fails_no_request(migrated_db, server):
    """Partitions dropped and created, history deleted, while collectors push: every push is a 200."""
    import threading

    from test_otlp import Team, span, traces

    db = migrated_db
    seed(db)
    db.psql("INSERT INTO dependency_latency_history (dependency_id, latency_ms, recorded_at) "
            "SELECT '30000000-0000-0000-0000-000000000001', 1, now() - interval '100 days' "
            "FROM generate_series(1, 50000)")
    tz, _ = local_noon_tz()
    db.psql("UPDATE settings SET value = '23:00' WHERE key = 'retention_cleanup_time'")
    srv = server(db.url, args=["--no-poller"], workers=2, env={"TZ": tz, "PRUNER_CHECK_INTERVAL_MS": "300"})
    srv.wait_log(lambda o: o.get("msg") == "retention lock acquired", 15, what="the pruner's lock")
    time.sleep(0.5)  # a new holder creates the partitions ahead at once: let it, then remove one
    db.psql(f"DROP TABLE spans_{utc_day(3):%Y%m%d}")

    class E:
        pass

    e = E()
    e.db, e.srv = db, srv
    team = Team(e)
    results, stop = [], threading.Event()
    # built here: the protobuf modules are imported lazily, which is not thread-safe
    bodies = [traces(f"svc-{i % 3}", [span(name=f"op{i}", kind=3, attrs=[("peer.service", f"dep-{i % 5}")])
                                      for _ in range(20)]).SerializeToString() for i in range(15)]

    def push():
        i = 0
        while not stop.is_set():
            i += 1
            req = bodies[i % len(bodies)]
            t0 = time.monotonic()
            try:
                r = team.post("/v1/traces", req)
                results.append((r.status, time.monotonic() - t0))
            except OSError as ex:
                results.append((repr(ex), time.monotonic() - t0))

    threads = [threading.Thread(target=push, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(results) > 30, 20, what="pushes before the run")
        db.psql("UPDATE settings SET value = '00:00' WHERE key = 'retention_cleanup_time'; "
                "NOTIFY depsera_retention, 'settings'")
        line = srv.wait_log(lambda o: o.get("msg") == "retention run", 20, what="the run")
        n = len(results)
        wait_for(lambda: len(results) > n + 30, 20, what="pushes after the run")
    finally:
        stop.set()
        for t in threads:
            t.join(35)
    bad = [r for r in results if r[0] != 200]
    assert not bad, bad[:5]
    slowest = max(d for _, d in results)
    print(f"{len(results)} pushes, slowest {slowest * 1000:.0f} ms; run: {line}")
    assert line["dependency_latency_history"] >= 50000
    assert line["partitions_dropped"] and f"spans_{utc_day(3):%Y%m%d}" in line["partitions_created"]
    assert slowest < 3.0


def test_partition_work_waits_for_a_busy_spans_and_is_retried(migrated_db, server):
    """A drop that cannot get its lock within lock_timeout does not block the run (the deletes go
    on, the run is recorded) and is retried at the next checks until it succeeds."""
    from conftest import BackgroundTx

    db = migrated_db
    seed(db)
    with BackgroundTx(db.url) as tx:
        tx.run("BEGIN; LOCK TABLE spans IN ACCESS SHARE MODE;")
        srv = pruner(server, db)
        line = srv.wait_log(lambda o: o.get("msg") == "retention run", 20, what="the run")
        assert line["status"] == "partitions deferred" and line["partitions_dropped"] == "", line
        assert line["audit_log"] == 20
        assert last_run(db)["partitions_dropped"] == []
        time.sleep(1.0)
        assert not srv.find_logs(msg="retention partitions")
        tx.run("COMMIT;")
    retry = srv.wait_log(lambda o: o.get("msg") == "retention partitions", 10, what="the retried drops")
    assert len(retry["partitions_dropped"].split(",")) >= S - 1
    assert len(runs(srv)) == 1
