"""POST /api/services/:id/poll (polling.md §6): the worker records the request and the poller polls; the
answer carries the poll's outcome. Checks and their messages; a poll already in flight."""
import threading
import time
import uuid

import pytest

from conftest import ApiClient, add_user, psql
from test_poller import DEFAULT_BODY, Target, hanging_route, json_route

PASSWORD = "manual-password-1"


@pytest.fixture
def env(migrated_db, server):
    db = migrated_db.url
    srv = server(db, workers=2, env={"LOCAL_AUTH": "true", "ADMIN_EMAIL": "admin@example.com",
                                     "ADMIN_PASSWORD": PASSWORD, "SSRF_ALLOWLIST": "127.0.0.1"})
    team = psql(db, "INSERT INTO teams (name, key) VALUES ('T', 't') RETURNING id").splitlines()[0]
    other = psql(db, "INSERT INTO teams (name, key) VALUES ('O', 'o') RETURNING id").splitlines()[0]
    for who, t in (("member", team), ("stranger", other)):
        uid = add_user(db, f"{who}@example.com", password_of="admin@example.com")
        psql(db, f"INSERT INTO team_members (team_id, user_id, role) VALUES ('{t}', '{uid}', 'member')")
    c = {}
    for who in ("admin", "member", "stranger"):
        c[who] = ApiClient(srv.base)
        c[who].login(f"{who}@example.com", PASSWORD)
    c["anonymous"] = ApiClient(srv.base)
    t = Target()
    yield migrated_db, srv, c, t, team
    t.close()


def add_service(db, team, url, fmt="default", active=True, external=False):
    """A service whose scheduled poll is an hour away: every poll in these tests is a manual one."""
    name = f"svc-{uuid.uuid4()}"
    # one transaction: the poller never sees the service due
    psql(db.url, f"BEGIN; INSERT INTO services (name, team_id, health_endpoint, health_endpoint_format, is_active, "
                 f"is_external, poll_interval_ms) VALUES ('{name}', '{team}', '{url}', '{fmt}', {active}, {external}, 3600000); "
                 f"UPDATE poll_schedule SET next_due_at = now() + interval '1 hour' "
                 f"WHERE service_id = (SELECT id FROM services WHERE name = '{name}'); COMMIT")
    return psql(db.url, f"SELECT id FROM services WHERE name = '{name}'").splitlines()[0]


def test_a_manual_poll_answers_its_outcome(env):
    db, srv, c, t, team = env
    t.routes["/h"] = json_route(DEFAULT_BODY)
    sid = add_service(db, team, t.url("/h"))
    r = c["member"].post(f"/api/services/{sid}/poll", timeout=30)
    assert r.status == 200, r
    body = r.json
    assert set(body) == {"success", "dependencies_updated", "status_changes", "latency_ms"}, body
    assert body["success"] is True and body["dependencies_updated"] == 2
    assert body["status_changes"] == 2  # new dependencies are status changes (open-questions D12)
    assert t.count("/h") == 1
    assert body["latency_ms"] >= 0
    before = t.count("/h")
    r = c["admin"].post(f"/api/services/{sid}/poll", timeout=30)
    assert r.status == 200 and r.json["success"] is True and r.json["status_changes"] == 0, r
    assert t.count("/h") == before + 1  # the manual poll is a real poll
    assert psql(db.url, f"SELECT count(*) FROM dependencies WHERE service_id = '{sid}'") == "2"
    assert psql(db.url, f"SELECT count(*) FROM poll_requests WHERE service_id = '{sid}' AND finished_at IS NULL") == "0"


def test_a_failed_poll_is_a_200_with_the_error(env):
    db, srv, c, t, team = env
    t.routes["/bad"] = json_route({"x": 1}, status=500)
    sid = add_service(db, team, t.url("/bad"))
    r = c["member"].post(f"/api/services/{sid}/poll", timeout=30)
    assert r.status == 200, r
    assert r.json["success"] is False and r.json["error"] == "HTTP 500" and r.json["dependencies_updated"] == 0, r


def test_checks(env):
    db, srv, c, t, team = env
    sid = add_service(db, team, t.url("/h"))
    assert c["anonymous"].post(f"/api/services/{sid}/poll").status == 401
    for bad in ("00000000-0000-4000-8000-000000000000", "nope"):
        r = c["member"].post(f"/api/services/{bad}/poll")
        assert r.status == 404 and r.json == {"error": "Service not found"}, r
    r = c["stranger"].post(f"/api/services/{sid}/poll")
    assert r.status == 403 and r.json == {"error": "Team access required"}, r
    cases = ((add_service(db, team, t.url("/h"), active=False), "Service is not active"),
             (add_service(db, team, "", fmt="otlp"), "OTLP services are push-only and cannot be polled"),
             (add_service(db, team, t.url("/h"), external=True), "External services are not polled"))
    for s, msg in cases:
        r = c["admin"].post(f"/api/services/{s}/poll")
        assert r.status == 400 and r.json == {"error": msg}, r


def test_a_poll_in_flight_is_not_doubled(env):
    db, srv, c, t, team = env
    gate = threading.Event()
    t.routes["/slow"] = hanging_route(gate)
    sid = add_service(db, team, t.url("/slow"))
    first = {}
    th = threading.Thread(target=lambda: first.update(r=c["member"].post(f"/api/services/{sid}/poll", timeout=30)))
    th.start()
    # wait until the poller holds the claim (the target saw the request)
    deadline = time.monotonic() + 10
    while t.count("/slow") == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    r = c["admin"].post(f"/api/services/{sid}/poll")
    assert r.status == 200 and r.json == {"success": False, "dependencies_updated": 0, "status_changes": 0,
                                          "latency_ms": 0, "error": "Service is currently being polled"}, r
    gate.set()
    th.join(30)
    assert first["r"].status == 200 and first["r"].json["success"] is True, first
