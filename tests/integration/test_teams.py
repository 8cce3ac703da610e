"""Teams and team memberships: /api/teams (graph-and-api.md §3.3, open-questions.md B and C).

One server and one database for the module: every test names its own teams (a random suffix), so
tests do not depend on each other or on their order.
"""

import json
import re
import threading
import uuid

import pytest

from conftest import ApiClient, Server, add_user, migrate, shared_server_guard

ADMIN_EMAIL = "root@example.com"
ADMIN_PASSWORD = "admin-password-1"
USER_EMAIL = "plain@example.com"
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TEAM_KEYS = {"id", "name", "key", "description", "contact", "created_at", "updated_at"}
CREATE_PATTERN_MSG = ("key must match pattern ^[a-z0-9][a-z0-9_-]*$ "
                      "(lowercase alphanumeric, hyphens, underscores)")


# --------------------------------------------------------------------------
# requests


def call(client, method, path, body=None):
    """A request with a JSON body, or none when body is None."""
    if body is None:
        return client.request(method, path)
    return client.request(method, path, body)


def raw(client, method, path, data):
    """A request whose body is the given bytes, labelled as JSON."""
    return client.request(method, path, body=data, headers={"Content-Type": "application/json"})


# --------------------------------------------------------------------------
# fixtures


class Env:
    pass


@pytest.fixture(scope="module")
def env(cluster, tmp_path_factory):
    d = cluster.create_db()
    tmp = tmp_path_factory.mktemp("teams")
    s = None
    try:
        r = migrate(d.url, "up")
        assert r.code == 0, r
        s = Server(d.url, args=["--no-poller", "--no-pruner"], workers=2, log_dir=str(tmp),
                   env={"LOCAL_AUTH": "true", "ADMIN_EMAIL": ADMIN_EMAIL,
                        "ADMIN_PASSWORD": ADMIN_PASSWORD, "RATE_LIMIT_MAX": 1000000,
                        "AUTH_RATE_LIMIT_MAX": 100000})
        s.start()  # bootstraps the admin: the users table is still empty
        e = Env()
        e.db, e.srv = d, s
        e.user_id = add_user(d.url, USER_EMAIL, "Plain User", password_of=ADMIN_EMAIL)
        e.admin, e.user, e.anon = ApiClient(s.base), ApiClient(s.base), ApiClient(s.base)
        e.admin.login(ADMIN_EMAIL, ADMIN_PASSWORD)
        e.user.login(USER_EMAIL, ADMIN_PASSWORD)  # same password: the admin's hash was copied
        e.admin_id = d.psql(f"SELECT id FROM users WHERE email = '{ADMIN_EMAIL}'")
        yield e
    finally:
        if s is not None:
            s.kill()
        d.drop()


@pytest.fixture(autouse=True)
def _check_server_log(env):
    yield from shared_server_guard(env.srv)


def uniq(prefix="t"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def make_team(env, **extra):
    body = {"name": uniq("Team"), "key": uniq("k")}
    body.update(extra)
    r = env.admin.post("/api/teams", body)
    assert r.status == 201, r
    return r.json


def make_user(env, name, active=True):
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    return add_user(env.db.url, email, name, active=active), email


def make_service(env, team_id, name, external=False):
    return env.db.psql(f"INSERT INTO services (name, team_id, health_endpoint, is_external) VALUES "
                       f"('{name}', '{team_id}', 'http://x.invalid/h', {str(external).lower()}) "
                       f"RETURNING id")


def audit_rows(env, action, resource_id):
    out = env.db.psql(f"SELECT user_id, resource_type, details::text, coalesce(ip_address, '') "
                      f"FROM audit_log WHERE action = '{action}' AND resource_id = '{resource_id}' "
                      f"ORDER BY created_at")
    rows = []
    for line in out.splitlines():
        user_id, rtype, details, ip = line.split("|", 3)
        rows.append({"user_id": user_id, "resource_type": rtype, "details": json.loads(details),
                     "ip": ip})
    return rows


def assert_error(r, status, msg, field=None):
    assert r.status == status, r
    body = r.json
    assert body["error"] == msg, r
    if field is not None:
        assert body.get("field") == field, r


UNKNOWN = str(uuid.uuid4())
MALFORMED = ("not-a-uuid", "123", "%27%3B--", "00000000-0000-0000-0000-00000000000g")


# --------------------------------------------------------------------------
# authentication and roles


def test_anonymous_gets_401_everywhere(env):
    t = make_team(env)
    paths = [("GET", "/api/teams"), ("GET", f"/api/teams/{t['id']}"),
             ("POST", "/api/teams"), ("PUT", f"/api/teams/{t['id']}"),
             ("DELETE", f"/api/teams/{t['id']}"), ("POST", f"/api/teams/{t['id']}/members"),
             ("PUT", f"/api/teams/{t['id']}/members/{env.user_id}"),
             ("DELETE", f"/api/teams/{t['id']}/members/{env.user_id}")]
    for method, path in paths:
        r = call(env.anon, method, path, {"name": "x", "key": "x", "role": "lead"}
                 if method in ("POST", "PUT") else None)
        assert_error(r, 401, "Not authenticated")
    assert env.admin.get(f"/api/teams/{t['id']}").status == 200  # untouched


def test_non_admin_may_read_but_not_change(env):
    t = make_team(env)
    env.admin.post(f"/api/teams/{t['id']}/members", {"user_id": env.user_id, "role": "lead"})
    r = env.user.get("/api/teams")
    assert r.status == 200 and any(x["id"] == t["id"] for x in r.json), r
    r = env.user.get(f"/api/teams/{t['id']}")
    assert r.status == 200 and r.json["id"] == t["id"], r
    # even the team's own lead is no admin
    for method, path, body in [
            ("POST", "/api/teams", {"name": uniq(), "key": uniq()}),
            ("PUT", f"/api/teams/{t['id']}", {"name": uniq()}),
            ("DELETE", f"/api/teams/{t['id']}", None),
            ("POST", f"/api/teams/{t['id']}/members", {"user_id": env.admin_id}),
            ("PUT", f"/api/teams/{t['id']}/members/{env.user_id}", {"role": "member"}),
            ("DELETE", f"/api/teams/{t['id']}/members/{env.user_id}", None),
            # unknown ids too: the role check comes first
            ("DELETE", f"/api/teams/{UNKNOWN}", None)]:
        assert_error(call(env.user, method, path, body), 403, "Admin access required")
    r = env.admin.get(f"/api/teams/{t['id']}")
    assert r.json["name"] == t["name"] and r.json["members"][0]["role"] == "lead", r


def test_mutation_without_csrf_header_is_refused(env):
    r = env.admin.request("POST", "/api/teams", {"name": uniq(), "key": uniq()},
                          headers={"X-CSRF-Token": "0" * 64})
    assert_error(r, 403, "Invalid or missing CSRF token")


# --------------------------------------------------------------------------
# create


def test_create_returns_row_with_empty_members_and_counts(env):
    name, key = uniq("Payments"), uniq("pay")
    r = env.admin.post("/api/teams", {"name": f"  {name}\t\n", "key": key,
                                      "description": "Money", "contact": '{"slack":"#pay"}'})
    assert r.status == 201, r
    t = r.json
    assert set(t) == TEAM_KEYS | {"members", "services", "member_count", "service_count"}, t
    assert t["name"] == name and t["key"] == key and t["description"] == "Money"
    assert t["contact"] == {"slack": "#pay"}
    assert t["members"] == [] and t["services"] == []
    assert t["member_count"] == 0 and t["service_count"] == 0
    assert ISO_MS.match(t["created_at"]) and ISO_MS.match(t["updated_at"]), t
    uuid.UUID(t["id"])
    assert env.db.psql(f"SELECT jsonb_typeof(contact) FROM teams WHERE id = '{t['id']}'") == "object"
    audit = audit_rows(env, "team.created", t["id"])
    assert len(audit) == 1, audit
    assert audit[0]["details"] == {"name": name} and audit[0]["resource_type"] == "team"
    assert audit[0]["user_id"] == env.admin_id and audit[0]["ip"] == "127.0.0.1"
    assert env.admin.get(f"/api/teams/{t['id']}").json["name"] == name


def test_create_optional_fields(env):
    # contact given as a JSON object directly (open-questions.md B), description "" stored as NULL
    t = make_team(env, description="", contact={"email": "a@b.c", "n": [1, 2]})
    assert t["description"] is None and t["contact"] == {"email": "a@b.c", "n": [1, 2]}
    t = make_team(env, description=None, contact=None)
    assert t["description"] is None and t["contact"] is None
    t = make_team(env)
    assert t["description"] is None and t["contact"] is None
    # the longest key
    t = make_team(env, key="a" + uuid.uuid4().hex + "_-" * 40 + "z" * 15)
    assert len(t["key"]) == 128


CREATE_400 = [
    ({}, "name is required and must be a non-empty string", "name"),
    ({"name": ""}, "name is required and must be a non-empty string", "name"),
    ({"name": " \t\u00a0\u3000 "}, "name is required and must be a non-empty string", "name"),
    ({"name": 5}, "name is required and must be a non-empty string", "name"),
    ({"name": None}, "name is required and must be a non-empty string", "name"),
    ({"name": ["x"]}, "name is required and must be a non-empty string", "name"),
    ({"name": {"a": 1}}, "name is required and must be a non-empty string", "name"),
    ({"name": "ok"}, "key is required and must be a non-empty string", "key"),
    ({"name": "ok", "key": ""}, "key is required and must be a non-empty string", "key"),
    ({"name": "ok", "key": "   "}, "key is required and must be a non-empty string", "key"),
    ({"name": "ok", "key": 7}, "key is required and must be a non-empty string", "key"),
    ({"name": "ok", "key": True}, "key is required and must be a non-empty string", "key"),
    ({"name": "ok", "key": "a" * 129}, "key must be at most 128 characters", "key"),
    ({"name": "ok", "key": "A" * 129}, "key must be at most 128 characters", "key"),
    ({"name": "ok", "key": "Upper"}, CREATE_PATTERN_MSG, "key"),
    ({"name": "ok", "key": "-lead"}, CREATE_PATTERN_MSG, "key"),
    ({"name": "ok", "key": "_lead"}, CREATE_PATTERN_MSG, "key"),
    ({"name": "ok", "key": "has space"}, CREATE_PATTERN_MSG, "key"),
    ({"name": "ok", "key": " lead"}, CREATE_PATTERN_MSG, "key"),
    ({"name": "ok", "key": "lead\n"}, CREATE_PATTERN_MSG, "key"),
    ({"name": "ok", "key": "k'; DROP TABLE teams;--"}, CREATE_PATTERN_MSG, "key"),
    ({"name": "ok", "key": "caf\u00e9"}, CREATE_PATTERN_MSG, "key"),
    ({"name": "ok", "key": "ok", "description": 5}, "description must be a string", "description"),
    ({"name": "ok", "key": "ok", "description": False}, "description must be a string", "description"),
    ({"name": "ok", "key": "ok", "description": ["a"]}, "description must be a string", "description"),
    ({"name": "ok", "key": "ok", "contact": 5}, "contact must be a JSON string or null", "contact"),
    ({"name": "ok", "key": "ok", "contact": True}, "contact must be a JSON string or null", "contact"),
    ({"name": "ok", "key": "ok", "contact": ["a"]}, "contact must be a JSON string or null", "contact"),
    ({"name": "ok", "key": "ok", "contact": "not json"}, "contact must be a valid JSON object string", "contact"),
    ({"name": "ok", "key": "ok", "contact": ""}, "contact must be a valid JSON object string", "contact"),
    ({"name": "ok", "key": "ok", "contact": "[1,2]"}, "contact must be a valid JSON object string", "contact"),
    ({"name": "ok", "key": "ok", "contact": "null"}, "contact must be a valid JSON object string", "contact"),
    ({"name": "ok", "key": "ok", "contact": '"s"'}, "contact must be a valid JSON object string", "contact"),
    ({"name": "ok", "key": "ok", "contact": "42"}, "contact must be a valid JSON object string", "contact"),
    ({"name": "ok", "key": "ok", "contact": '{"a":1'}, "contact must be a valid JSON object string", "contact"),
    ({"name": "ok", "key": "ok", "contact": '{"a":"\\u0000"}'},
     "contact must be a valid JSON object string", "contact"),
]


def test_create_validation_messages(env):
    before = env.db.psql("SELECT count(*) FROM teams")
    for body, msg, field in CREATE_400:
        assert_error(env.admin.post("/api/teams", body), 400, msg, field)
    assert env.db.psql("SELECT count(*) FROM teams") == before


def test_create_non_object_bodies_are_400(env):
    for data in (b"[]", b'"text"', b"42", b"null", b"true", b'[{"name":"x","key":"y"}]'):
        assert_error(raw(env.admin, "POST", "/api/teams", data), 400,
                     "name is required and must be a non-empty string", "name")
    r = env.admin.post("/api/teams")  # no body at all
    assert_error(r, 400, "name is required and must be a non-empty string", "name")


def test_create_conflicts(env):
    t = make_team(env)
    before = env.db.psql("SELECT count(*) FROM audit_log")
    assert_error(env.admin.post("/api/teams", {"name": t["name"], "key": uniq()}), 409,
                 "A team with this name already exists")
    assert_error(env.admin.post("/api/teams", {"name": f" {t['name']} ", "key": uniq()}), 409,
                 "A team with this name already exists")
    assert_error(env.admin.post("/api/teams", {"name": uniq(), "key": t["key"]}), 409,
                 "A team with this key already exists")
    # both taken: the name is reported, as the original checks it first
    assert_error(env.admin.post("/api/teams", {"name": t["name"], "key": t["key"]}), 409,
                 "A team with this name already exists")
    assert env.db.psql("SELECT count(*) FROM audit_log") == before  # rolled back with the insert


def test_concurrent_creates_of_one_name_have_one_winner(env):
    name, statuses = uniq("Race"), []

    def go(i):
        c = ApiClient(env.srv.base)
        c.cookies.update(env.admin.cookies)
        statuses.append(c.post("/api/teams", {"name": name, "key": uniq()}).status)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(statuses) == [201] + [409] * 7, statuses
    assert env.db.psql(f"SELECT count(*) FROM teams WHERE name = '{name}'") == "1"


def test_text_is_stored_and_returned_verbatim(env):
    desc = ("Robert'); DROP TABLE teams;-- \\ % _ $1 \" \u00e9\u4e2d\U0001F600 " * 200)[:10240]
    name = uniq("O'Brien \"quoted\" $1 ;--")
    contact = {"k'; DROP TABLE users;--": "v\\\"", "nested": {"x": [None, True, 1.5]}}
    t = make_team(env, name=name, description=desc, contact=json.dumps(contact))
    assert t["name"] == name and t["description"] == desc and t["contact"] == contact
    g = env.admin.get(f"/api/teams/{t['id']}").json
    assert g["name"] == name and g["description"] == desc and g["contact"] == contact
    assert env.db.psql(f"SELECT length(description) FROM teams WHERE id = '{t['id']}'") == str(len(desc))
    assert env.db.psql("SELECT count(*) FROM users") != "0"  # nothing was dropped


# --------------------------------------------------------------------------
# list and get


def test_list_sorted_by_name_with_counts(env):
    suffix = uuid.uuid4().hex[:8]
    b = make_team(env, name=f"zz-b-{suffix}")
    a = make_team(env, name=f"zz-a-{suffix}")
    c = make_team(env, name=f"zz-C-{suffix}")
    u1, _ = make_user(env, "Member One")
    u2, _ = make_user(env, "Member Two")
    for uid in (u1, u2, env.user_id):
        assert env.admin.post(f"/api/teams/{a['id']}/members", {"user_id": uid}).status == 201
    make_service(env, a["id"], "svc-1")
    make_service(env, a["id"], "svc-ext", external=True)
    make_service(env, b["id"], "svc-2")
    r = env.user.get("/api/teams")
    assert r.status == 200, r
    rows = r.json
    names = [x["name"] for x in rows]
    assert names == sorted(names, key=lambda s: s.encode()), names
    mine = {x["id"]: x for x in rows if x["name"].endswith(suffix)}
    assert [x["name"] for x in rows if x["name"].endswith(suffix)] == [c["name"], a["name"], b["name"]]
    for x in mine.values():
        assert set(x) == TEAM_KEYS | {"member_count", "service_count"}, x
    assert (mine[a["id"]]["member_count"], mine[a["id"]]["service_count"]) == (3, 2)
    assert (mine[b["id"]]["member_count"], mine[b["id"]]["service_count"]) == (0, 1)
    assert (mine[c["id"]]["member_count"], mine[c["id"]]["service_count"]) == (0, 0)


def test_get_detail_members_and_services(env):
    t = make_team(env, contact='{"pager":"123"}')
    zed, zed_email = make_user(env, "Zed")
    bob, bob_email = make_user(env, "Bob")
    alice, alice_email = make_user(env, "alice")
    for uid, role in ((zed, "lead"), (bob, "member"), (alice, "member")):
        assert env.admin.post(f"/api/teams/{t['id']}/members", {"user_id": uid, "role": role}).status == 201
    s2 = make_service(env, t["id"], "web")
    s1 = make_service(env, t["id"], "api", external=True)
    r = env.user.get(f"/api/teams/{t['id']}")
    assert r.status == 200, r
    g = r.json
    assert set(g) == TEAM_KEYS | {"members", "services"}, g
    assert g["contact"] == {"pager": "123"}
    # by user name, byte order (SQLite BINARY in the original)
    assert [m["user"]["name"] for m in g["members"]] == ["Bob", "Zed", "alice"]
    m = g["members"][1]
    assert set(m) == {"team_id", "user_id", "role", "created_at", "user"}, m
    assert m["team_id"] == t["id"] and m["user_id"] == zed and m["role"] == "lead"
    assert m["user"] == {"id": zed, "email": zed_email, "name": "Zed"}
    assert ISO_MS.match(m["created_at"]), m
    assert [s["id"] for s in g["services"]] == [s1, s2]
    svc = g["services"][0]
    assert svc["name"] == "api" and svc["team_id"] == t["id"]
    assert svc["is_external"] is True and svc["is_active"] is True
    assert svc["last_poll_success"] is None and svc["poll_interval_ms"] == 30000
    assert ISO_MS.match(svc["created_at"]) and svc["health_endpoint_format"] == "default"
    assert "schema_config" in svc and "manifest_key" in svc


def test_get_unknown_or_malformed_is_404(env):
    for ident in [UNKNOWN] + list(MALFORMED):
        assert_error(env.user.get(f"/api/teams/{ident}"), 404, "Team not found")


# --------------------------------------------------------------------------
# update


def test_update_each_field(env):
    t = make_team(env, description="d", contact='{"a":1}')
    tid = t["id"]
    env.db.psql(f"UPDATE teams SET updated_at = now() - interval '1 hour' WHERE id = '{tid}'")
    old_updated = env.admin.get(f"/api/teams/{tid}").json["updated_at"]
    new_name = uniq("Renamed")
    r = env.admin.put(f"/api/teams/{tid}", {"name": f"\u00a0 {new_name} "})
    assert r.status == 200, r
    u = r.json
    assert set(u) == TEAM_KEYS | {"member_count", "service_count"}, u
    assert u["name"] == new_name and u["key"] == t["key"] and u["description"] == "d"
    assert u["contact"] == {"a": 1} and u["updated_at"] > old_updated
    assert u["created_at"] == t["created_at"]
    new_key = uniq("nk")
    assert env.admin.put(f"/api/teams/{tid}", {"key": new_key}).json["key"] == new_key
    assert env.admin.put(f"/api/teams/{tid}", {"description": ""}).json["description"] == ""
    assert env.admin.put(f"/api/teams/{tid}", {"description": None}).json["description"] is None
    assert env.admin.put(f"/api/teams/{tid}", {"contact": {"b": [2]}}).json["contact"] == {"b": [2]}
    assert env.admin.put(f"/api/teams/{tid}", {"contact": '{"c":3}'}).json["contact"] == {"c": 3}
    assert env.admin.put(f"/api/teams/{tid}", {"contact": None}).json["contact"] is None
    # its own name and key again are no conflict; unknown members are ignored
    r = env.admin.put(f"/api/teams/{tid}", {"name": new_name, "key": new_key, "bogus": 1})
    assert r.status == 200 and r.json["name"] == new_name, r
    audit = audit_rows(env, "team.updated", tid)
    assert len(audit) == 8 and audit[0]["details"] == {"name": new_name}, audit
    g = env.admin.get(f"/api/teams/{tid}").json
    assert (g["name"], g["key"], g["description"], g["contact"]) == (new_name, new_key, None, None)


def test_update_counts(env):
    t = make_team(env)
    make_service(env, t["id"], "one")
    env.admin.post(f"/api/teams/{t['id']}/members", {"user_id": env.user_id})
    u = env.admin.put(f"/api/teams/{t['id']}", {"description": "x"}).json
    assert (u["member_count"], u["service_count"]) == (1, 1)


UPDATE_400 = [
    ({}, "No valid fields to update", None),
    ({"bogus": 1, "members": []}, "No valid fields to update", None),
    ({"name": ""}, "name must be a non-empty string", "name"),
    ({"name": "  "}, "name must be a non-empty string", "name"),
    ({"name": None}, "name must be a non-empty string", "name"),
    ({"name": 3}, "name must be a non-empty string", "name"),
    ({"key": ""}, "key must be a non-empty string", "key"),
    ({"key": None}, "key must be a non-empty string", "key"),
    ({"key": 12}, "key must be a non-empty string", "key"),
    ({"key": "x" * 129}, "key must be at most 128 characters", "key"),
    ({"key": "Bad"}, "key must match pattern ^[a-z0-9][a-z0-9_-]*$", "key"),
    ({"key": "-x"}, "key must match pattern ^[a-z0-9][a-z0-9_-]*$", "key"),
    ({"description": 1}, "description must be a string", "description"),
    ({"description": {"a": 1}}, "description must be a string", "description"),
    ({"contact": 1}, "contact must be a JSON string or null", "contact"),
    ({"contact": [1]}, "contact must be a JSON string or null", "contact"),
    ({"contact": "{nope"}, "contact must be a valid JSON object string", "contact"),
    ({"contact": "[]"}, "contact must be a valid JSON object string", "contact"),
    ({"name": "fine", "contact": "1"}, "contact must be a valid JSON object string", "contact"),
]


def test_update_validation_messages(env):
    t = make_team(env)
    for body, msg, field in UPDATE_400:
        assert_error(env.admin.put(f"/api/teams/{t['id']}", body), 400, msg, field)
    for data in (b"[]", b'"x"', b"7"):
        assert_error(raw(env.admin, "PUT", f"/api/teams/{t['id']}", data), 400, "No valid fields to update")
    assert_error(env.admin.put(f"/api/teams/{t['id']}"), 400, "No valid fields to update")
    g = env.admin.get(f"/api/teams/{t['id']}").json
    assert g["name"] == t["name"] and g["key"] == t["key"]
    assert audit_rows(env, "team.updated", t["id"]) == []


def test_update_conflicts(env):
    a, b = make_team(env), make_team(env)
    assert_error(env.admin.put(f"/api/teams/{b['id']}", {"name": a["name"]}), 409,
                 "A team with this name already exists")
    assert_error(env.admin.put(f"/api/teams/{b['id']}", {"name": f" {a['name']}"}), 409,
                 "A team with this name already exists")
    assert_error(env.admin.put(f"/api/teams/{b['id']}", {"key": a["key"]}), 409,
                 "A team with this key already exists")
    assert env.admin.get(f"/api/teams/{b['id']}").json["name"] == b["name"]
    assert audit_rows(env, "team.updated", b["id"]) == []


def test_update_unknown_team_is_404_before_validation(env):
    for ident in [UNKNOWN] + list(MALFORMED):
        assert_error(env.admin.put(f"/api/teams/{ident}", {}), 404, "Team not found")
        assert_error(env.admin.put(f"/api/teams/{ident}", {"name": "x"}), 404, "Team not found")


# --------------------------------------------------------------------------
# delete


def test_delete_team_cascades_memberships(env):
    t = make_team(env)
    env.admin.post(f"/api/teams/{t['id']}/members", {"user_id": env.user_id, "role": "lead"})
    r = env.admin.delete(f"/api/teams/{t['id']}")
    assert r.status == 204 and r.body == b"", r
    assert_error(env.admin.get(f"/api/teams/{t['id']}"), 404, "Team not found")
    assert env.db.psql(f"SELECT count(*) FROM team_members WHERE team_id = '{t['id']}'") == "0"
    audit = audit_rows(env, "team.deleted", t["id"])
    assert len(audit) == 1 and audit[0]["details"] == {"name": t["name"]}, audit
    assert all(x["id"] != t["id"] for x in env.admin.get("/api/teams").json)
    assert_error(env.admin.delete(f"/api/teams/{t['id']}"), 404, "Team not found")
    # the user itself is untouched
    assert env.db.psql(f"SELECT is_active FROM users WHERE id = '{env.user_id}'") == "t"


def test_delete_team_with_services_is_409_with_count(env):
    t = make_team(env)
    make_service(env, t["id"], "a")
    make_service(env, t["id"], "b", external=True)
    r = env.admin.delete(f"/api/teams/{t['id']}")
    assert r.status == 409, r
    assert r.json == {"error": "Cannot delete team with existing services", "service_count": 2}
    assert env.admin.get(f"/api/teams/{t['id']}").status == 200
    assert audit_rows(env, "team.deleted", t["id"]) == []


def test_delete_unknown_or_malformed_is_404(env):
    for ident in [UNKNOWN] + list(MALFORMED):
        assert_error(env.admin.delete(f"/api/teams/{ident}"), 404, "Team not found")


# --------------------------------------------------------------------------
# members


def test_add_member_shape_and_audit(env):
    t = make_team(env)
    uid, email = make_user(env, "New Member")
    r = env.admin.post(f"/api/teams/{t['id']}/members", {"user_id": uid})
    assert r.status == 201, r
    m = r.json
    assert set(m) == {"team_id", "user_id", "role", "created_at", "user"}, m
    assert (m["team_id"], m["user_id"], m["role"]) == (t["id"], uid, "member")
    assert ISO_MS.match(m["created_at"]), m
    assert m["user"] == {"id": uid, "email": email, "name": "New Member", "role": "user",
                         "is_active": True}
    audit = audit_rows(env, "team.member_added", t["id"])
    assert len(audit) == 1, audit
    assert audit[0]["details"] == {"memberId": uid, "memberEmail": email, "memberRole": "member"}
    # a lead; the admin adds itself; an inactive user can be added (is_active false)
    r = env.admin.post(f"/api/teams/{t['id']}/members", {"user_id": env.admin_id, "role": "lead"})
    assert r.status == 201 and r.json["role"] == "lead" and r.json["user"]["role"] == "admin", r
    gone, _ = make_user(env, "Gone", active=False)
    r = env.admin.post(f"/api/teams/{t['id']}/members", {"user_id": gone, "role": ""})
    assert r.status == 201 and r.json["role"] == "member" and r.json["user"]["is_active"] is False, r
    g = env.admin.get(f"/api/teams/{t['id']}").json
    assert len(g["members"]) == 3


def test_add_member_errors(env):
    t = make_team(env)
    uid, _ = make_user(env, "Someone")
    path = f"/api/teams/{t['id']}/members"
    cases = [
        ({}, "user_id is required", "user_id"),
        ({"user_id": ""}, "user_id is required", "user_id"),
        ({"user_id": None}, "user_id is required", "user_id"),
        ({"user_id": 5}, "user_id is required", "user_id"),
        ({"user_id": [uid]}, "user_id is required", "user_id"),
        ({"user_id": uid, "role": "admin"}, "role must be one of: lead, member", "role"),
        ({"user_id": uid, "role": "LEAD"}, "role must be one of: lead, member", "role"),
        ({"user_id": uid, "role": 1}, "role must be one of: lead, member", "role"),
        ({"user_id": uid, "role": ["lead"]}, "role must be one of: lead, member", "role"),
        ({"user_id": "nope", "role": "admin"}, "role must be one of: lead, member", "role"),
        ({"user_id": UNKNOWN}, "User not found", "user_id"),
        ({"user_id": "not-a-uuid"}, "User not found", "user_id"),
        ({"user_id": "'; DELETE FROM users;--"}, "User not found", "user_id"),
    ]
    for body, msg, field in cases:
        assert_error(env.admin.post(path, body), 400, msg, field)
    assert_error(raw(env.admin, "POST", path, b"[1]"), 400, "user_id is required", "user_id")
    assert env.admin.post(path, {"user_id": uid, "role": "lead"}).status == 201
    assert_error(env.admin.post(path, {"user_id": uid}), 409, "User is already a member of this team")
    assert_error(env.admin.post(path, {"user_id": uid, "role": "bad"}), 400,
                 "role must be one of: lead, member", "role")
    assert len(audit_rows(env, "team.member_added", t["id"])) == 1
    for ident in [UNKNOWN] + list(MALFORMED):
        assert_error(env.admin.post(f"/api/teams/{ident}/members", {"user_id": uid}), 404, "Team not found")
        assert_error(env.admin.post(f"/api/teams/{ident}/members", {}), 404, "Team not found")


def test_change_member_role(env):
    t = make_team(env)
    uid, email = make_user(env, "Role Changer")
    env.admin.post(f"/api/teams/{t['id']}/members", {"user_id": uid})
    r = env.admin.put(f"/api/teams/{t['id']}/members/{uid}", {"role": "lead"})
    assert r.status == 200, r
    m = r.json
    assert (m["team_id"], m["user_id"], m["role"]) == (t["id"], uid, "lead")
    assert m["user"] == {"id": uid, "email": email, "name": "Role Changer", "role": "user",
                         "is_active": True}
    assert ISO_MS.match(m["created_at"])
    assert env.admin.get(f"/api/teams/{t['id']}").json["members"][0]["role"] == "lead"
    r = env.admin.put(f"/api/teams/{t['id']}/members/{uid}", {"role": "member"})
    assert r.status == 200 and r.json["role"] == "member" and r.json["created_at"] == m["created_at"]
    audit = audit_rows(env, "team.member_role_changed", t["id"])
    assert [a["details"] for a in audit] == [
        {"memberId": uid, "previousRole": "member", "newRole": "lead"},
        {"memberId": uid, "previousRole": "lead", "newRole": "member"}], audit


def test_change_member_role_errors(env):
    t = make_team(env)
    uid, _ = make_user(env, "Member")
    outsider, _ = make_user(env, "Outsider")
    env.admin.post(f"/api/teams/{t['id']}/members", {"user_id": uid})
    path = f"/api/teams/{t['id']}/members/{uid}"
    for body in ({}, {"role": ""}, {"role": None}, {"role": False}, {"role": 0}):
        assert_error(env.admin.put(path, body), 400, "role is required", "role")
    assert_error(env.admin.put(path), 400, "role is required", "role")
    for body in ({"role": "admin"}, {"role": True}, {"role": 2}, {"role": {"r": "lead"}}):
        assert_error(env.admin.put(path, body), 400, "role must be one of: lead, member", "role")
    # 404s come before body checks
    for ident in [UNKNOWN] + list(MALFORMED):
        assert_error(env.admin.put(f"/api/teams/{ident}/members/{uid}", {"role": "lead"}), 404, "Team not found")
        assert_error(env.admin.put(f"/api/teams/{t['id']}/members/{ident}", {}), 404, "Team member not found")
    assert_error(env.admin.put(f"/api/teams/{t['id']}/members/{outsider}", {"role": "lead"}), 404,
                 "Team member not found")
    assert audit_rows(env, "team.member_role_changed", t["id"]) == []


def test_remove_member(env):
    t = make_team(env)
    uid, _ = make_user(env, "Leaving")
    env.admin.post(f"/api/teams/{t['id']}/members", {"user_id": uid})
    r = env.admin.delete(f"/api/teams/{t['id']}/members/{uid}")
    assert r.status == 204 and r.body == b"", r
    assert env.admin.get(f"/api/teams/{t['id']}").json["members"] == []
    audit = audit_rows(env, "team.member_removed", t["id"])
    assert len(audit) == 1 and audit[0]["details"] == {"memberId": uid}, audit
    assert_error(env.admin.delete(f"/api/teams/{t['id']}/members/{uid}"), 404, "Team member not found")
    for ident in [UNKNOWN] + list(MALFORMED):
        assert_error(env.admin.delete(f"/api/teams/{ident}/members/{uid}"), 404, "Team not found")
        assert_error(env.admin.delete(f"/api/teams/{t['id']}/members/{ident}"), 404, "Team member not found")
    assert env.db.psql(f"SELECT count(*) FROM users WHERE id = '{uid}'") == "1"


# --------------------------------------------------------------------------
# never a 500


def test_odd_bodies_never_give_500(env):
    t = make_team(env)
    uid, _ = make_user(env, "Odd")
    env.admin.post(f"/api/teams/{t['id']}/members", {"user_id": uid})
    odd = [{"name": {"$ne": 1}, "key": [], "description": {}, "contact": {"x": {"y": [1, {}]}}},
           {"name": "x" * 5000, "key": "y" * 5000},
           {"name": "\u0001\u001f", "key": "k" + uuid.uuid4().hex},
           {"contact": "{" * 3000 + "}" * 3000},
           {"contact": '{"a":' * 500 + "1" + "}" * 500},
           {"user_id": {"id": uid}, "role": {"$gt": ""}},
           {"name": 1e308, "key": -0.0, "role": 1e308},
           [], "string", 0, None]
    paths = [("POST", "/api/teams"), ("PUT", f"/api/teams/{t['id']}"),
             ("POST", f"/api/teams/{t['id']}/members"),
             ("PUT", f"/api/teams/{t['id']}/members/{uid}")]
    for body in odd:
        for method, path in paths:
            r = env.admin.request(method, path, body)
            assert r.status < 500, (method, path, body, r)
            assert r.status in (200, 201, 400, 409), (method, path, r)
    for data in (b"{", b'{"name": }', b"\xff\xfe", b'{"name":"a\\u0000b","key":"k"}'):
        r = raw(env.admin, "POST", "/api/teams", data)
        assert r.status == 400, (data, r)
