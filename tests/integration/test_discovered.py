"""A service's trace-discovered dependencies: GET /api/services/:serviceId/discovered-dependencies
(graph-and-api.md §4.2; open-questions.md A, B, and Q-DISC fixed: trace discoveries are otlp_trace).

One server and one database for the module; every test makes its own services and dependencies.
"""

import re
import time
import uuid

import pytest

from conftest import api_env, insert_row, shared_server_guard

ADMIN_EMAIL = "root@example.com"
PASSWORD = "assoc-password-1"
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
MALFORMED = ("not-a-uuid", "123", "00000000-0000-0000-0000-00000000000g")
ASSOCIATION_KEYS = ["id", "dependency_id", "linked_service_id", "association_type", "manifest_managed", "created_at",
                    "is_auto_suggested", "is_dismissed"]
DEPENDENCY_KEYS = ["id", "service_id", "name", "canonical_name", "description", "impact", "type", "healthy",
                   "health_state", "health_code", "latency_ms", "check_details", "error", "error_message", "last_checked",
                   "last_status_change", "created_at", "updated_at", "contact", "contact_override", "impact_override",
                   "skipped", "discovery_source", "user_display_name", "user_description", "user_impact"]


@pytest.fixture(scope="module")
def env(cluster, tmp_path_factory):
    yield from api_env(cluster, tmp_path_factory, "discovered", ADMIN_EMAIL, PASSWORD, teams=("A", "B"),
                       actors=(("member", "A", "member"), ("lead_b", "B", "lead"), ("outsider", None, None)))


@pytest.fixture(autouse=True)
def _check_server_log(env):
    yield from shared_server_guard(env.srv)


def service(env, team, **cols):
    cols.setdefault("name", "svc-" + uuid.uuid4().hex[:8])
    cols.setdefault("health_endpoint", "https://e.example.com/health")
    return insert_row(env.db, "services", team_id=team, **cols)


def dep(env, svc, name=None, **cols):
    return insert_row(env.db, "dependencies", service_id=svc, name=name or "dep-" + uuid.uuid4().hex[:8], **cols)


def link(env, d, svc, **cols):
    aid = insert_row(env.db, "dependency_associations", dependency_id=d, linked_service_id=svc, **cols)
    time.sleep(0.002)  # created_at orders them
    return aid


def assert_error(r, status, msg):
    assert r.status == status and r.json == {"error": msg}, r


def test_anonymous_gets_401(env):
    s = service(env, env.team_a)
    assert_error(env.clients["anonymous"].get(f"/api/services/{s}/discovered-dependencies"), 401, "Not authenticated")


def test_discovered_dependencies_with_open_suggestions(env):
    s, x, y, z = (service(env, env.team_a) for _ in range(4))
    b = dep(env, s, "b-dep", discovery_source="otlp_trace", type="rest", healthy=True, contact={"team": "x"})
    upper = dep(env, s, "B-dep", discovery_source="otlp_trace")  # bytes order: before "a-dep"
    a = dep(env, s, "a-dep", discovery_source="otlp_trace")
    dep(env, s, "c-dep")  # manual
    dep(env, s, "d-dep", discovery_source="otlp_metric")
    open1 = link(env, b, x, is_auto_suggested=True, association_type="api_call")
    link(env, b, y, is_auto_suggested=True, is_dismissed=True)
    link(env, b, z)  # confirmed
    open2 = link(env, a, z, is_auto_suggested=True)
    r = env.clients["member"].get(f"/api/services/{s}/discovered-dependencies")
    assert r.status == 200, r
    rows = r.json
    assert [d["id"] for d in rows] == [upper, a, b]
    assert all(list(d) == DEPENDENCY_KEYS + ["auto_suggested_associations"] for d in rows)
    assert rows[0]["auto_suggested_associations"] == []
    assert [x_["id"] for x_ in rows[1]["auto_suggested_associations"]] == [open2]
    (only,) = rows[2]["auto_suggested_associations"]
    assert list(only) == ASSOCIATION_KEYS and only["id"] == open1 and only["linked_service_id"] == x
    assert (only["is_auto_suggested"], only["is_dismissed"], only["association_type"]) == (True, False, "api_call")
    assert (rows[2]["healthy"], rows[2]["contact"], rows[2]["skipped"], rows[2]["discovery_source"]) == (
        True, {"team": "x"}, False, "otlp_trace")
    assert env.clients["admin"].get(f"/api/services/{s}/discovered-dependencies").json == rows
    assert env.clients["admin"].get(f"/api/services/{x}/discovered-dependencies").json == []


def test_discovered_dependencies_access(env):
    s = service(env, env.team_a)
    path = f"/api/services/{s}/discovered-dependencies"
    assert_error(env.clients["outsider"].get(path), 403, "Team access required")
    assert_error(env.clients["lead_b"].get(path), 403, "Team access required")
    assert env.clients["member"].get(path).status == 200
    for client in ("member", "admin"):
        for value in [str(uuid.uuid4())] + list(MALFORMED):
            assert_error(env.clients[client].get(f"/api/services/{value}/discovered-dependencies"), 404, "Service not found")
