"""The latency roll-up (migration 010, issue 8): the pruner's per-minute aggregates and the latency
buckets that read them (graph-and-api.md §5.2) give exactly the buckets of the raw rows, for every
range and for the aggregate buckets, also after rows committed late into a rolled-up minute and after
a retention run that deletes rows (its cutoff falls inside a minute).

The expected buckets are computed here from the raw rows. The window's start (now() − range at the
request) is known only between the times before and after the request: the rows in that interval
are few (one every 7 s), and the answer must equal the buckets for one of the cutoffs among them.
Latencies and percentiles are multiples of 0.25, so every sum is exact whatever its order.
"""

import datetime
import time
from decimal import Decimal, ROUND_HALF_UP

import pytest

from conftest import api_env, make_team, shared_server_guard, wait_for

ADMIN_EMAIL = "root@example.com"
PASSWORD = "rollup-password-1"
FAST = {"PRUNER_CHECK_INTERVAL_MS": "300", "TZ": "UTC"}
RANGES = {"1h": (3600, 60), "6h": (21600, 60), "24h": (86400, 900), "7d": (604800, 3600), "30d": (2592000, 21600)}
ORIGIN = 946684800  # 2000-01-01T00:00:00Z


@pytest.fixture(scope="module")
def env(cluster, tmp_path_factory):
    yield from api_env(cluster, tmp_path_factory, "rollup", ADMIN_EMAIL, PASSWORD)


@pytest.fixture(autouse=True)
def _check_server_log(env):
    yield from shared_server_guard(env.srv)


def new_dep(env, name):
    t = make_team(env.db, "R" + name)
    s = env.db.psql(f"INSERT INTO services (name, team_id, health_endpoint) VALUES ('s-{name}', '{t}', 'https://e.example.com') "
                    "RETURNING id").splitlines()[0]
    return env.db.psql(f"INSERT INTO dependencies (service_id, name) VALUES ('{s}', 'd-{name}') RETURNING id").splitlines()[0]


def seed(env, dep, step, offset, p99=True):
    """A row every `step` seconds over the last 3 days (the newest `offset` s ago); some NULL percentiles."""
    env.db.psql(f"""
    INSERT INTO dependency_latency_history (dependency_id, latency_ms, recorded_at, p50_ms, p95_ms, p99_ms)
        SELECT '{dep}', 1 + (k % 97) * 0.25, now() - make_interval(secs => {offset} + k * {step} + (k % 3) * 0.001),
               CASE WHEN k % 5 = 0 THEN NULL ELSE (k % 13) * 0.5 END,
               CASE WHEN k % 7 = 0 THEN NULL ELSE (k % 17) * 0.75 END,
               {"CASE WHEN k % 4 < 2 THEN NULL ELSE (k % 23) * 1.25 END" if p99 else "NULL"}
          FROM generate_series(0, (3 * 86400 - {offset}) / {step}) k""")


def raw_rows(env, deps):
    ids = ",".join(f"'{d}'" for d in deps)
    out = env.db.psql("SELECT extract(epoch FROM recorded_at), latency_ms, p50_ms, p95_ms, p99_ms "
                      f"FROM dependency_latency_history WHERE dependency_id IN ({ids})")
    rows = []
    for line in out.splitlines():
        t, ms, *p = line.split("|")
        rows.append((Decimal(t), float(ms), *[float(v) if v != "" else None for v in p]))
    return rows


def pg_round(x):
    """round(float8::numeric): 15 significant digits, then half away from zero."""
    return int(Decimal("%.15g" % x).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def iso(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def buckets(rows, cutoff, width):
    """The buckets of §5.2 over the rows at or after `cutoff`."""
    acc = {}
    for t, ms, *p in rows:
        if t < cutoff:
            continue
        b = ORIGIN + (int(t) - ORIGIN) // width * width
        a = acc.setdefault(b, [0, 0.0, ms, ms, [0, 0, 0], [0.0, 0.0, 0.0]])
        a[0] += 1
        a[1] += ms
        a[2], a[3] = min(a[2], ms), max(a[3], ms)
        for i, v in enumerate(p):
            if v is not None:
                a[4][i] += 1
                a[5][i] += v
    out = []
    for b in sorted(acc):
        n, s, lo, hi, pn, ps = acc[b]
        d = {"timestamp": iso(b), "min": lo, "avg": pg_round(s / n), "max": hi, "count": n}
        for i, k in enumerate(("avg_p50", "avg_p95", "avg_p99")):
            d[k] = pg_round(ps[i] / pn[i]) if pn[i] else None
        out.append(d)
    return out


def assert_exact(env, deps, path):
    rows = raw_rows(env, deps)
    for name, (seconds, width) in RANGES.items():
        before = Decimal(repr(time.time()))
        r = env.clients["admin"].get(f"{path}{'&' if '?' in path else '?'}range={name}")
        after = Decimal(repr(time.time()))
        assert r.status == 200, r
        got = r.json["buckets"]
        lo, hi = before - seconds - 1, after - seconds + 1
        cutoffs = sorted({t for t, *_ in rows if lo <= t <= hi} | {hi})
        want = [buckets(rows, c, width) for c in cutoffs]
        assert got in want, (name, len(got), [len(w) for w in want],
                             [(g, w) for g, w in zip(got, want[0]) if g != w][:3])


def state(env):
    return env.db.psql("SELECT extract(epoch FROM rolled_from), extract(epoch FROM rolled_until) FROM latency_rollup_state")


def minutes_match_raw(env):
    """The minute rows of [rolled_from, rolled_until) are exactly the raw rows' aggregates."""
    return env.db.psql("""
    WITH s AS (SELECT * FROM latency_rollup_state),
    raw AS (SELECT dependency_id, date_bin('1 minute', recorded_at, timestamptz '2000-01-01 00:00:00+00') AS minute,
                   count(*) AS n, sum(latency_ms) AS sum_ms, min(latency_ms) AS min_ms, max(latency_ms) AS max_ms,
                   count(p50_ms) AS n_p50, sum(p50_ms) AS sum_p50, count(p95_ms) AS n_p95, sum(p95_ms) AS sum_p95,
                   count(p99_ms) AS n_p99, sum(p99_ms) AS sum_p99
              FROM dependency_latency_history, s WHERE recorded_at >= s.rolled_from AND recorded_at < s.rolled_until GROUP BY 1, 2),
    m AS (SELECT dependency_id, minute, n, sum_ms, min_ms, max_ms, n_p50, sum_p50, n_p95, sum_p95, n_p99, sum_p99
            FROM dependency_latency_minutes, s WHERE minute >= s.rolled_from AND minute < s.rolled_until)
    SELECT (SELECT count(*) FROM (SELECT * FROM raw EXCEPT ALL SELECT * FROM m) a) +
           (SELECT count(*) FROM (SELECT * FROM m EXCEPT ALL SELECT * FROM raw) b)""") == "0"


def test_rollup_buckets_are_exact(env, server):
    db = env.db
    a, b, gone = new_dep(env, "a"), new_dep(env, "b"), new_dep(env, "gone")
    seed(env, a, 7, 1)
    seed(env, b, 11, 3, p99=False)
    seed(env, gone, 300, 5)
    # before any roll-up: every row is read raw
    assert state(env) == "|"
    assert_exact(env, [a], f"/api/latency/{a}/buckets")

    db.psql("INSERT INTO settings (key, value) VALUES ('data_retention_days', '30'), ('retention_cleanup_time', '00:00')")
    srv = server(db.url, command="pruner", workers=None, wait=False, env=FAST)
    srv.wait_log(lambda o: o.get("msg") == "retention run", 30, what="a retention run")
    wait_for(lambda: state(env) != "|" and
             float(state(env).split("|")[1]) >= time.time() - 150, 30, what="the roll-up")
    rolled_from, rolled_until = (Decimal(v) for v in state(env).split("|"))
    oldest = Decimal(db.psql("SELECT extract(epoch FROM min(recorded_at)) FROM dependency_latency_history"))
    assert rolled_from == ORIGIN + (int(oldest) - ORIGIN) // 60 * 60
    assert rolled_until % 60 == 0
    assert int(db.psql("SELECT count(*) FROM dependency_latency_minutes")) > 3 * 1440
    assert minutes_match_raw(env)
    assert_exact(env, [a], f"/api/latency/{a}/buckets")
    assert_exact(env, [b], f"/api/latency/{b}/buckets")
    assert_exact(env, [a, b], f"/api/latency/aggregate/buckets?dependencyIds={a},{b}")
    # the answers do come from the minutes: one changed (an hour ago, not re-rolled) shows in its bucket
    where = (f"dependency_id = '{a}' AND minute = date_bin('1 minute', now() - interval '1 hour', "
             "timestamptz '2000-01-01 00:00:00+00')")
    db.psql(f"UPDATE dependency_latency_minutes SET max_ms = max_ms + 10000 WHERE {where}")
    assert max(x["max"] for x in env.clients["admin"].get(f"/api/latency/{a}/buckets?range=24h").json["buckets"]) > 10000
    db.psql(f"UPDATE dependency_latency_minutes SET max_ms = max_ms - 10000 WHERE {where}")

    # rows committed late into a minute already rolled up (within the 10 minutes re-rolled)
    minute = db.psql("SELECT extract(epoch FROM rolled_until - interval '4 minutes') FROM latency_rollup_state")
    db.psql(f"""INSERT INTO dependency_latency_history (dependency_id, latency_ms, recorded_at, p50_ms, p95_ms, p99_ms)
        SELECT '{a}', 500 + k * 0.25, to_timestamp({minute}) + make_interval(secs => 3 + k), k * 0.5, NULL, NULL
          FROM generate_series(1, 9) k""")
    wait_for(lambda: minutes_match_raw(env), 10, what="the late rows rolled up")
    assert_exact(env, [a], f"/api/latency/{a}/buckets")
    assert_exact(env, [a, b], f"/api/latency/aggregate/buckets?dependencyIds={a},{b}")

    # a retention run keeping 2 days: the minutes before its cutoff go, the raw rows of the minute
    # it falls in are read raw
    db.psql("UPDATE settings SET value = '2' WHERE key = 'data_retention_days'; DELETE FROM pruner_runs; "
            "NOTIFY depsera_retention, 'settings'")
    line = srv.wait_log(lambda o: o.get("msg") == "retention run" and o.get("data_retention_days") == 2, 30,
                        what="the second retention run")
    assert line["dependency_latency_history"] > 0 and line["dependency_latency_minutes"] > 0, line
    cutoff = Decimal(db.psql("SELECT extract(epoch FROM cutoff) FROM pruner_runs"))
    rolled_from = Decimal(state(env).split("|")[0])
    assert rolled_from == -(-(int(cutoff) - ORIGIN) // 60) * 60 + ORIGIN
    assert db.psql("SELECT count(*) FROM dependency_latency_minutes WHERE minute < to_timestamp("
                   f"{cutoff})") == "0"
    assert minutes_match_raw(env)
    assert_exact(env, [a], f"/api/latency/{a}/buckets")
    assert_exact(env, [a, b], f"/api/latency/aggregate/buckets?dependencyIds={a},{b}")

    # a dependency's minutes go with it
    db.psql(f"DELETE FROM dependencies WHERE id = '{gone}'")
    assert db.psql(f"SELECT count(*) FROM dependency_latency_minutes WHERE dependency_id = '{gone}'") == "0"
    assert srv.find_logs(level="error") == [], srv.tail()
