"""Per-IP limiters of the /api pipeline: global (step 5) and /api/auth/* (step 9)."""
import http.client


def _get(server, path, headers=None):
    c = http.client.HTTPConnection(server.host, server.port, timeout=10)
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


def test_auth_limiter_429_with_retry_after(migrated_db, server):
    s = server(migrated_db.url, workers=1, env={"LOCAL_AUTH": "true", "AUTH_RATE_LIMIT_MAX": 3,
                                           "ADMIN_EMAIL": "a@example.com", "ADMIN_PASSWORD": "password1"})
    statuses = [_get(s, "/api/auth/mode")[0] for _ in range(3)]
    assert statuses == [200, 200, 200]
    status, headers, body = _get(s, "/api/auth/mode")
    assert status == 429
    assert b"Too many authentication attempts, please try again later" in body
    assert int(headers["retry-after"]) > 0
    assert headers["ratelimit-limit"] == "3"
    assert headers["ratelimit-remaining"] == "0"
    # other /api paths are not limited by the auth limiter
    assert _get(s, "/api/health/live")[0] == 200


def test_global_limiter_spares_health_checks(migrated_db, server):
    s = server(migrated_db.url, workers=1, env={"RATE_LIMIT_MAX": 2})
    assert [_get(s, "/api/auth/mode")[0] for _ in range(2)] == [200, 200]
    status, headers, body = _get(s, "/api/auth/mode")
    assert status == 429
    assert b"Too many requests, please try again later" in body
    assert "retry-after" in headers
    # load-balancer probes are never throttled
    assert all(_get(s, "/api/health/live")[0] == 200 for _ in range(5))


def test_development_disables_limiters(migrated_db, server):
    s = server(migrated_db.url, workers=1, env={"NODE_ENV": "development", "RATE_LIMIT_MAX": 1,
                                           "AUTH_RATE_LIMIT_MAX": 1})
    assert all(_get(s, "/api/auth/mode")[0] == 200 for _ in range(5))


def test_csrf_cookie_issued_on_every_api_response(migrated_db, server):
    """graph-and-api.md §1.2: any /api request without the cookie gets one, unknown paths included."""
    s = server(migrated_db.url, workers=1)
    for path in ("/api/nope", "/api/health/live"):
        status, headers, _ = _get(s, path)
        assert status in (200, 404)
        assert headers.get("set-cookie", "").startswith("csrf-token="), (path, headers)
    status, headers, _ = _get(s, "/api/nope", {"Cookie": "csrf-token=abc"})
    assert "set-cookie" not in headers
