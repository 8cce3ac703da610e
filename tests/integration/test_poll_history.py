"""GET /api/services/:id/poll-history (polling.md §7): newest first, at most 50 entries, the errors of
an exact 24 h window, the service's warnings; 404 for unknown and malformed ids."""
import pytest

from conftest import ApiClient

PASSWORD = "history-password-1"


@pytest.fixture
def env(migrated_db, server):
    # no poller: the rows are the test's own
    srv = server(migrated_db.url, args=["--no-poller"], workers=1, env={"LOCAL_AUTH": "true", "ADMIN_EMAIL": "h@example.com",
                                                 "ADMIN_PASSWORD": PASSWORD})
    c = ApiClient(srv.base)
    c.login("h@example.com", PASSWORD)
    team = migrated_db.psql("INSERT INTO teams (name, key) VALUES ('H', 'h') RETURNING id")
    svc = migrated_db.psql(f"INSERT INTO services (name, team_id, health_endpoint, poll_warnings) VALUES "
                           f"('s', '{team}', 'https://example.com/h', '[\"w1\", \"w2\"]') RETURNING id")
    return migrated_db, srv, c, svc, team


def test_entries_newest_first_capped_and_errors_of_24h(env):
    db, srv, c, svc, _ = env
    # 60 polls one per 30 minutes, every third one an error: the newest 50 are listed
    db.psql(f"INSERT INTO service_poll_history (service_id, error, recorded_at) "
            f"SELECT '{svc}', CASE WHEN k % 3 = 0 THEN 'HTTP 500: boom ' || k END, "
            f"now() - make_interval(mins => 30 * k) - interval '1 second' FROM generate_series(0, 59) k")
    r = c.get(f"/api/services/{svc}/poll-history")
    assert r.status == 200, r
    body = r.json
    assert set(body) == {"serviceId", "errorCount", "entries", "pollWarnings"}
    assert body["serviceId"] == svc
    # errors at k = 0, 3, ..., 45 lie within 24 h (k <= 47): 16 of them; k = 48 is 24 h + 1 s ago
    assert body["errorCount"] == 16
    entries = body["entries"]
    assert len(entries) == 50
    assert entries[0] == {"error": "HTTP 500: boom 0", "recordedAt": entries[0]["recordedAt"], "isRecovery": False}
    assert entries[1]["error"] is None and entries[1]["isRecovery"] is True
    times = [e["recordedAt"] for e in entries]
    assert times == sorted(times, reverse=True)
    assert all(t.endswith("Z") and len(t) == 24 for t in times)
    assert body["pollWarnings"] == ["w1", "w2"]


def test_empty_history_unknown_and_malformed_ids(env):
    db, srv, c, svc, team = env
    db.psql(f"UPDATE services SET poll_warnings = '{{\"not\": \"an array\"}}' WHERE id = '{svc}'")
    r = c.get(f"/api/services/{svc}/poll-history")
    assert r.status == 200 and r.json == {"serviceId": svc, "errorCount": 0, "entries": [], "pollWarnings": []}, r
    for bad in ("00000000-0000-4000-8000-000000000000", "not-a-uuid", "1"):
        r = c.get(f"/api/services/{bad}/poll-history")
        assert r.status == 404 and r.json == {"error": "Service not found"}, (bad, r)
    assert ApiClient(srv.base).get(f"/api/services/{svc}/poll-history").status == 401
