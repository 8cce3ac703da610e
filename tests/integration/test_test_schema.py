"""POST /api/services/test-schema (graph-and-api.md §4.5): the checks in their order, the fetch with the
poller's client and SSRF rules (a refusal is a 400, open-questions C14), the parse and its warnings;
nothing stored. Targets are the poller tests' small HTTP server."""
import json
import socket
import threading

import pytest

from conftest import ApiClient, add_user, psql
from test_poller import DEFAULT_BODY, PROM_BODY, SCHEMA, SCHEMA_BODY, Target, hanging_route, json_route, \
    redirect_route, text_route

PASSWORD = "schema-password-1"
PATH = "/api/services/test-schema"


@pytest.fixture
def env(migrated_db, server):
    db = migrated_db.url
    srv = server(db, workers=1, env={"LOCAL_AUTH": "true", "ADMIN_EMAIL": "admin@example.com",
                                     "ADMIN_PASSWORD": PASSWORD, "SSRF_ALLOWLIST": "127.0.0.1"})
    team = psql(db, "INSERT INTO teams (name, key) VALUES ('T', 't') RETURNING id").splitlines()[0]
    clients = {}
    for who, role in (("lead", "lead"), ("member", "member")):
        uid = add_user(db, f"{who}@example.com", password_of="admin@example.com")
        psql(db, f"INSERT INTO team_members (team_id, user_id, role) VALUES ('{team}', '{uid}', '{role}')")
    for who in ("admin", "lead", "member"):
        clients[who] = ApiClient(srv.base)
        clients[who].login(f"{who}@example.com", PASSWORD)
    clients["anonymous"] = ApiClient(srv.base)
    t = Target()
    yield migrated_db, srv, clients, t
    t.close()


def bad(r, msg, field):
    assert r.status == 400 and r.json == {"error": msg, "field": field}, r


def test_roles(env):
    db, srv, c, t = env
    t.routes["/h"] = json_route(DEFAULT_BODY)
    body = {"url": t.url("/h"), "format": "default"}
    assert c["anonymous"].post(PATH, body).status == 401
    r = c["member"].post(PATH, body)
    assert r.status == 403 and r.json == {"error": "Requires team lead or admin role"}, r
    assert c["lead"].post(PATH, body).status == 200
    assert c["admin"].post(PATH, body).status == 200


def test_checks_in_order(env):
    db, srv, c, t = env
    a = c["admin"]
    bad(a.post(PATH, {"format": "otlp"}), "OTLP services receive pushed metrics and cannot be tested via URL", "format")
    bad(a.post(PATH, {"format": "xml", "url": "http://x"}), "format must be one of: default, schema, prometheus, otlp", "format")
    bad(a.post(PATH, {}), "url is required and must be a string", "url")
    bad(a.post(PATH, {"url": 5}), "url is required and must be a string", "url")
    bad(a.post(PATH, {"url": "not a url", "format": "default"}), "url must be a valid URL", "url")
    bad(a.post(PATH, {"url": "ftp://example.com/h", "format": "default"}), "url must be a valid URL", "url")
    bad(a.post(PATH, {"url": "http://example.com/h"}), "schema_config is required", "schema_config")
    r = a.post(PATH, {"url": "http://example.com/h", "schema_config": {"root": "x"}})
    assert r.status == 400 and r.json["field"] == "schema_config", r
    bad(a.post(PATH, {"url": "http://10.1.2.3/h", "format": "default"}),
        "url must not target private or internal addresses", "url")
    t.routes["/p"] = text_route(PROM_BODY)
    r = a.post(PATH, {"url": t.url("/p"), "format": "prometheus", "schema_config": {"metrics": 5}})
    assert r.status == 400 and r.json["field"] == "schema_config", r


def test_each_format_parses_and_nothing_is_stored(env):
    db, srv, c, t = env
    a = c["admin"]
    t.routes["/d"] = json_route(DEFAULT_BODY)
    t.routes["/s"] = json_route(SCHEMA_BODY)
    t.routes["/p"] = text_route(PROM_BODY)
    r = a.post(PATH, {"url": t.url("/d"), "format": "default"})
    assert r.status == 200 and r.json["success"] is True, r
    pg = r.json["dependencies"][0]
    assert pg == {"name": "PostgreSQL", "healthy": True, "latency_ms": 12.5, "impact": None, "description": None,
                  "check_details": None, "contact": None, "type": "database", "skipped": False}
    assert t.headers("/d")[0]["Accept"] == "application/json"
    assert t.headers("/d")[0]["User-Agent"] == "Dependencies-Dashboard/1.0"

    r = a.post(PATH, {"url": t.url("/s"), "schema_config": SCHEMA})
    assert r.status == 200 and r.json["success"] is True, r
    assert [d["name"] for d in r.json["dependencies"]] == ["redis", "mq"]
    assert r.json["dependencies"][0]["healthy"] is True and r.json["dependencies"][1]["healthy"] is False
    for field, words in (("impact", "impact"), ("description", "description"), ("checkDetails", "check details"),
                         ("contact", "contact")):
        assert f"No {field} field mapping configured \u2014 {words} data will not be captured" in r.json["warnings"]
    assert not any("latency field resolved to 0" in w for w in r.json["warnings"])

    r = a.post(PATH, {"url": t.url("/p"), "format": "prometheus"})
    assert r.status == 200 and {d["name"] for d in r.json["dependencies"]} == {"pg", "cache"}, r
    assert t.headers("/p")[0]["Accept"] == "text/plain; version=0.0.4"
    assert psql(db.url, "SELECT (SELECT count(*) FROM services) + (SELECT count(*) FROM dependencies)") == "0"


def test_latency_zero_and_nothing_parsed_warnings(env):
    db, srv, c, t = env
    t.routes["/z"] = json_route({"checks": [{"name": "a", "status": "UP", "responseTime": 0}]})
    t.routes["/e"] = json_route({"checks": []})
    r = c["admin"].post(PATH, {"url": t.url("/z"), "schema_config": SCHEMA})
    assert 'Dependency "a": latency field resolved to 0 or was not found' in r.json["warnings"], r
    r = c["admin"].post(PATH, {"url": t.url("/e"), "schema_config": SCHEMA})
    assert r.json["success"] is True and r.json["dependencies"] == [], r
    assert "No dependencies were parsed from the response" in r.json["warnings"]


def test_fetch_failures(env):
    db, srv, c, t = env
    a = c["admin"]
    t.routes["/500"] = json_route({"x": 1}, status=500)
    t.routes["/bad"] = text_route("not json", ctype="application/json")
    gate = threading.Event()
    t.routes["/slow"] = hanging_route(gate)
    t.routes["/away"] = redirect_route("http://127.0.0.2:9/h")
    bad(a.post(PATH, {"url": t.url("/500"), "format": "default"}), "Health endpoint returned HTTP 500", "url")
    r = a.post(PATH, {"url": t.url("/slow"), "format": "default"}, timeout=20)
    gate.set()
    bad(r, "Health endpoint request timed out (5s)", "url")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    closed = s.getsockname()[1]
    s.close()
    bad(a.post(PATH, {"url": f"http://127.0.0.1:{closed}/h", "format": "default"}),
        "Failed to fetch health endpoint: Connection refused", "url")
    r = a.post(PATH, {"url": t.url("/away"), "format": "default"})
    assert r.status == 400 and r.json["error"].startswith("Failed to fetch health endpoint: Blocked"), r
    # a parse failure is a 200 with the parser's message
    r = a.post(PATH, {"url": t.url("/bad"), "format": "default"})
    assert r.status == 200 and r.json["success"] is False and r.json["dependencies"] == [], r
    assert r.json["warnings"][0].startswith("Invalid JSON response"), r
