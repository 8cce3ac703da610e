"""A dependency's history: timeline, errors, latency, latency buckets and aggregate buckets
(graph-and-api.md §5.1, §5.2; open-questions.md B: exact windows, ISO timestamps, JSON values; C: any
logged-in user).

One server and one database for the module; every test makes its own dependencies.
"""

import json
import re
import uuid

import pytest

from conftest import api_env, make_team, shared_server_guard, sql_str

ADMIN_EMAIL = "root@example.com"
PASSWORD = "history-password-1"
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
MALFORMED = ("not-a-uuid", "123", "00000000-0000-0000-0000-00000000000g")
BUCKET_RANGES = "Invalid range. Must be one of: 1h, 6h, 24h, 7d, 30d"


@pytest.fixture(scope="module")
def env(cluster, tmp_path_factory):
    yield from api_env(cluster, tmp_path_factory, "history", ADMIN_EMAIL, PASSWORD, actors=(("outsider", None, None),))


@pytest.fixture(autouse=True)
def _check_server_log(env):
    yield from shared_server_guard(env.srv)


def new_dep(env, **cols):
    t = make_team(env.db, "H")
    s = env.db.psql(f"INSERT INTO services (name, team_id, health_endpoint) VALUES ('s-{uuid.uuid4().hex[:8]}', '{t}', "
                    f"'https://e.example.com') RETURNING id").splitlines()[0]
    keys = ", ".join(["service_id", "name"] + list(cols))
    vals = ", ".join([sql_str(s), sql_str("d-" + uuid.uuid4().hex[:8])] +
                     [sql_str(json.dumps(v)) + "::jsonb" if isinstance(v, dict) else
                      ("NULL" if v is None else str(v).lower() if isinstance(v, bool) else sql_str(v))
                      for v in cols.values()])
    return env.db.psql(f"INSERT INTO dependencies ({keys}) VALUES ({vals}) RETURNING id").splitlines()[0]


def error_row(env, dep, ago, error=None, message=None):
    env.db.psql(f"INSERT INTO dependency_error_history (dependency_id, error, error_message, recorded_at) VALUES "
                f"('{dep}', {sql_str(json.dumps(error)) + '::jsonb' if error is not None else 'NULL'}, "
                f"{sql_str(message)}, now() - interval '{ago}')")


def latency_row(env, dep, at_sql, ms, p50=None, p95=None, p99=None):
    nul = lambda v: "NULL" if v is None else repr(v)  # noqa: E731
    env.db.psql(f"INSERT INTO dependency_latency_history (dependency_id, latency_ms, recorded_at, p50_ms, p95_ms, p99_ms) "
                f"VALUES ('{dep}', {ms}, {at_sql}, {nul(p50)}, {nul(p95)}, {nul(p99)})")


def iso(env, sql):
    """An expression's timestamptz as the API prints it."""
    return env.db.psql(f"SELECT to_char(({sql}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")


def get(env, path, client="admin"):
    return env.clients[client].get(path)


def assert_error(r, status, msg):
    assert r.status == status and r.json == {"error": msg}, r


def test_anonymous_gets_401(env):
    d = new_dep(env)
    for path in (f"/api/dependencies/{d}/timeline", f"/api/errors/{d}", f"/api/latency/{d}", f"/api/latency/{d}/buckets",
                 f"/api/latency/aggregate/buckets?dependencyIds={d}"):
        assert_error(get(env, path, "anonymous"), 401, "Not authenticated")
        assert get(env, path, "outsider").status == 200, path  # any logged-in user


@pytest.mark.parametrize("path", ["/api/dependencies/{}/timeline", "/api/errors/{}", "/api/latency/{}",
                                  "/api/latency/{}/buckets"])
def test_unknown_and_malformed_dependency_is_404(env, path):
    for value in [str(uuid.uuid4())] + list(MALFORMED):
        assert_error(get(env, path.format(value)), 404, "Dependency not found")


# --------------------------------------------------------------------------
# timeline


def test_timeline(env):
    d = new_dep(env, healthy=True)
    error_row(env, d, "2 hours", {"code": 503}, "down")
    error_row(env, d, "1 hour")  # recovery
    error_row(env, d, "3 days", None, "slow")
    error_row(env, d, "40 days", {"code": 500})
    day = get(env, f"/api/dependencies/{d}/timeline").json
    assert day == {"dependencyId": d, "range": "24h", "currentState": "healthy", "transitions": [
        {"timestamp": iso(env, f"(SELECT min(recorded_at) FROM dependency_error_history WHERE dependency_id = '{d}' "
                               f"AND recorded_at > now() - interval '1 day')"), "state": "unhealthy"},
        {"timestamp": day["transitions"][1]["timestamp"], "state": "healthy"}]}
    assert all(ISO_MS.match(t["timestamp"]) for t in day["transitions"])
    assert day["transitions"][0]["timestamp"] < day["transitions"][1]["timestamp"]
    week = get(env, f"/api/dependencies/{d}/timeline?range=7d").json
    assert [t["state"] for t in week["transitions"]] == ["unhealthy", "unhealthy", "healthy"] and week["range"] == "7d"
    assert len(get(env, f"/api/dependencies/{d}/timeline?range=30d").json["transitions"]) == 3
    assert get(env, f"/api/dependencies/{d}/timeline?range=").json["range"] == "24h"
    for bad in ("1h", "24H", "x"):
        assert_error(get(env, f"/api/dependencies/{d}/timeline?range={bad}"), 400,
                     "Invalid range. Must be one of: 24h, 7d, 30d")
    # the range is checked before the dependency
    assert_error(get(env, f"/api/dependencies/{uuid.uuid4()}/timeline?range=1y"), 400,
                 "Invalid range. Must be one of: 24h, 7d, 30d")
    assert get(env, f"/api/dependencies/{new_dep(env, healthy=False)}/timeline").json["currentState"] == "unhealthy"
    unknown = new_dep(env)
    assert get(env, f"/api/dependencies/{unknown}/timeline").json == {
        "dependencyId": unknown, "range": "24h", "currentState": "unknown", "transitions": []}


# --------------------------------------------------------------------------
# errors


def test_errors(env):
    d = new_dep(env)
    env.db.psql(f"INSERT INTO dependency_error_history (dependency_id, error, error_message, recorded_at) "
                f"SELECT '{d}', jsonb_build_object('n', g), 'failure ' || g, now() - g * interval '1 minute' "
                f"FROM generate_series(1, 60) g")
    error_row(env, d, "30 seconds")  # the newest: a recovery
    error_row(env, d, "2 minutes 30 seconds", None, "message only")
    error_row(env, d, "25 hours", {"old": True}, "old")
    body = get(env, f"/api/errors/{d}").json
    assert body["dependencyId"] == d and body["errorCount"] == 61
    errs = body["errors"]
    assert len(errs) == 50
    assert errs[0] == {"error": None, "errorMessage": None, "recordedAt": errs[0]["recordedAt"], "isRecovery": True}
    assert errs[1] == {"error": {"n": 1}, "errorMessage": "failure 1", "recordedAt": errs[1]["recordedAt"],
                       "isRecovery": False}
    assert errs[2] == {"error": {"n": 2}, "errorMessage": "failure 2", "recordedAt": errs[2]["recordedAt"],
                       "isRecovery": False}
    assert errs[3]["error"] is None and errs[3]["errorMessage"] == "message only" and errs[3]["isRecovery"] is False
    assert [e["recordedAt"] for e in errs] == sorted((e["recordedAt"] for e in errs), reverse=True)
    assert all(ISO_MS.match(e["recordedAt"]) for e in errs)
    assert get(env, f"/api/errors/{new_dep(env)}").json["errors"] == []


# --------------------------------------------------------------------------
# latency


def test_latency_stats(env):
    d = new_dep(env, latency_ms=12.5)
    for ago, ms in (("3 hours", 10), ("2 hours", 20), ("1 hour", 25.5), ("30 hours", 1000)):
        latency_row(env, d, f"now() - interval '{ago}'", ms)
    body = get(env, f"/api/latency/{d}").json
    points = body.pop("dataPoints")
    assert body == {"dependencyId": d, "currentLatencyMs": 12.5, "avgLatencyMs24h": 19, "minLatencyMs24h": 10,
                    "maxLatencyMs24h": 25.5, "dataPointCount": 3}
    assert [p["latency_ms"] for p in points] == [25.5, 20, 10, 1000]  # newest first, not bounded to 24 h
    assert all(set(p) == {"latency_ms", "recorded_at"} and ISO_MS.match(p["recorded_at"]) for p in points)
    half = new_dep(env)
    for ms in (10, 11):
        latency_row(env, half, "now() - interval '1 minute'", ms)
    assert get(env, f"/api/latency/{half}").json["avgLatencyMs24h"] == 11  # Math.round(10.5)
    many = new_dep(env)
    env.db.psql(f"INSERT INTO dependency_latency_history (dependency_id, latency_ms, recorded_at) "
                f"SELECT '{many}', g, now() - g * interval '1 second' FROM generate_series(1, 120) g")
    body = get(env, f"/api/latency/{many}").json
    assert [p["latency_ms"] for p in body["dataPoints"]] == list(range(1, 101)) and body["dataPointCount"] == 120
    empty = new_dep(env)
    assert get(env, f"/api/latency/{empty}").json == {
        "dependencyId": empty, "currentLatencyMs": None, "avgLatencyMs24h": None, "minLatencyMs24h": None,
        "maxLatencyMs24h": None, "dataPointCount": 0, "dataPoints": []}


def test_latency_buckets(env):
    d = new_dep(env)
    # two rows in one quarter hour two hours ago, one in the next; one a week ago; one outside 30 days
    q = "date_bin('15 minutes', now() - interval '2 hours', timestamptz '2000-01-01 00:00:00+00')"
    latency_row(env, d, f"{q} + interval '1 minute'", 10, p50=5, p95=9, p99=10)
    latency_row(env, d, f"{q} + interval '7 minutes'", 21, p50=6)
    latency_row(env, d, f"{q} + interval '16 minutes'", 30)
    latency_row(env, d, "now() - interval '6 days'", 40)
    latency_row(env, d, "now() - interval '31 days'", 50)
    body = get(env, f"/api/latency/{d}/buckets").json
    assert body == {"dependencyId": d, "range": "24h", "buckets": [
        {"timestamp": iso(env, q), "min": 10, "avg": 16, "max": 21, "count": 2, "avg_p50": 6, "avg_p95": 9, "avg_p99": 10},
        {"timestamp": iso(env, f"{q} + interval '15 minutes'"), "min": 30, "avg": 30, "max": 30, "count": 1,
         "avg_p50": None, "avg_p95": None, "avg_p99": None}]}
    assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:(00|15|30|45):00\.000Z$", b["timestamp"]) for b in body["buckets"])
    week = get(env, f"/api/latency/{d}/buckets?range=7d").json["buckets"]
    assert week[0]["count"] == 1 and week[0]["avg"] == 40 and sum(b["count"] for b in week) == 4
    assert all(b["timestamp"].endswith(":00:00.000Z") for b in week)
    month = get(env, f"/api/latency/{d}/buckets?range=30d").json["buckets"]
    assert sum(b["count"] for b in month) == 4
    assert all(re.search(r"T(00|06|12|18):00:00\.000Z$", b["timestamp"]) for b in month)
    assert get(env, f"/api/latency/{d}/buckets?range=1h").json["buckets"] == []
    six = get(env, f"/api/latency/{d}/buckets?range=6h").json["buckets"]
    assert [b["timestamp"] for b in six] == [iso(env, f"{q} + interval '{m} minutes'") for m in (1, 7, 16)]
    assert_error(get(env, f"/api/latency/{d}/buckets?range=2h"), 400, BUCKET_RANGES)
    assert_error(get(env, f"/api/latency/{uuid.uuid4()}/buckets?range=2h"), 400, BUCKET_RANGES)


def test_aggregate_buckets(env):
    a, b = new_dep(env), new_dep(env)
    q = "date_bin('1 hour', now() - interval '3 hours', timestamptz '2000-01-01 00:00:00+00')"
    latency_row(env, a, f"{q} + interval '5 minutes'", 10, p99=100)
    latency_row(env, b, f"{q} + interval '50 minutes'", 31, p99=201)
    path = "/api/latency/aggregate/buckets"
    ids = f"{a},,{b},{uuid.uuid4()},not-a-uuid,"
    body = get(env, f"{path}?dependencyIds={ids}&range=7d").json
    assert body == {"dependencyIds": [a, b, ids.split(",")[3], "not-a-uuid"], "range": "7d", "buckets": [
        {"timestamp": iso(env, q), "min": 10, "avg": 21, "max": 31, "count": 2, "avg_p50": None, "avg_p95": None,
         "avg_p99": 151}]}
    assert get(env, f"{path}?dependencyIds={a}").json["range"] == "24h"
    assert_error(get(env, path), 400, "dependencyIds query parameter is required")
    assert_error(get(env, f"{path}?dependencyIds="), 400, "dependencyIds query parameter is required")
    assert_error(get(env, f"{path}?dependencyIds=,,"), 400, "At least one dependency ID is required")
    assert_error(get(env, f"{path}?dependencyIds={a}&range=1y"), 400, BUCKET_RANGES)
    assert get(env, f"{path}?dependencyIds=nope").json == {"dependencyIds": ["nope"], "range": "24h", "buckets": []}
