"""Admin user management, /api/users (graph-and-api.md §3.2, data-model.md §1, §3, §13).

One local-auth server and database serve the whole module (bcrypt at cost 12 makes every
password operation cost about a quarter of a second); tests use their own users and say
which admins exist when the count matters.
"""

import json
import re
import secrets
import threading
import time
import uuid

import pytest

from conftest import BackgroundTx, Server, migrate, request, shared_server_guard, wait_for

ADMIN_EMAIL = "root.admin@example.com"
ADMIN_PASSWORD = "bootstrap-pass-1"
USER_KEYS = {"id", "email", "name", "oidc_subject", "role", "is_active", "created_at", "updated_at"}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ROLE_MSG = "role must be one of: admin, user"
BODY_MSG = "Request body must be a JSON object"


# --------------------------------------------------------------------------
# harness


class Client:
    """A browser-like client: keeps cookies, echoes the CSRF cookie on every request."""

    def __init__(self, srv, cookies=None):
        self.srv = srv
        self.cookies = dict(cookies or {})

    def call(self, method, path, body=None, raw=None, content_type="application/json"):
        headers = {}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if "csrf-token" in self.cookies:
            headers["X-CSRF-Token"] = self.cookies["csrf-token"]
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        if data is not None:
            headers["Content-Type"] = content_type
        r = request(method, self.srv.url(path), body=data, headers=headers, timeout=15)
        for v in r.headers.get_all("Set-Cookie") or []:
            name, _, rest = v.partition("=")
            value = rest.split(";")[0]
            if re.search(r"max-age=0(;|$)", rest.lower().replace(" ", "")):
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        # no response ever carries a password hash (open-questions.md C), nor a server error
        assert b"password_hash" not in r.body and b"$2b$" not in r.body, r
        assert r.status != 500, r
        return r

    def csrf(self):
        if "csrf-token" not in self.cookies:
            self.call("GET", "/api/auth/mode")
        return self

    def login(self, email, password, expect=200):
        r = self.csrf().call("POST", "/api/auth/login", {"email": email, "password": password})
        assert r.status == expect, r
        return r


def ok(r, status=200):
    assert r.status == status, r
    return r.json


def err(r, status, msg):
    assert r.status == status, r
    assert r.json == {"error": msg}, r
    assert "application/json" in (r.headers.get("Content-Type") or ""), r


def check_user(u, **expect):
    assert set(u) == USER_KEYS, u
    assert isinstance(u["is_active"], bool), u
    assert ISO.match(u["created_at"]) and ISO.match(u["updated_at"]), u
    uuid.UUID(u["id"])
    for k, v in expect.items():
        assert u[k] == v, (k, u)
    return u


@pytest.fixture(scope="module")
def srv(cluster, tmp_path_factory):
    d = cluster.create_db()
    r = migrate(d.url, "up")
    assert r.code == 0, r
    s = Server(d.url, args=["--no-poller", "--no-pruner"], workers=2,
               log_dir=str(tmp_path_factory.mktemp("users")),
               env={"LOCAL_AUTH": "true", "ADMIN_EMAIL": ADMIN_EMAIL, "ADMIN_PASSWORD": ADMIN_PASSWORD,
                    "NODE_ENV": "development"})  # development: no auth rate limiter for our many logins
    s.db = d
    try:
        s.start()
        yield s
    finally:
        s.kill()
        d.drop()


@pytest.fixture(autouse=True)
def _check_server_log(srv):
    yield from shared_server_guard(srv)


@pytest.fixture(scope="module")
def admin(srv):
    c = Client(srv)
    c.login(ADMIN_EMAIL, ADMIN_PASSWORD)
    c.id = srv.db.psql(f"SELECT id FROM users WHERE email = '{ADMIN_EMAIL}'")
    return c


def sql(srv, q):
    return srv.db.psql(q)


def sql_json(srv, q):
    out = srv.db.psql(q)
    return json.loads(out) if out else None


def unique_email(tag="u"):
    return f"{tag}.{secrets.token_hex(4)}@example.com"


def create(admin, email=None, name=None, password="password-123", role=None, status=201):
    body = {"email": email or unique_email(), "name": name or "User " + secrets.token_hex(3),
            "password": password}
    if role is not None:
        body["role"] = role
    r = admin.call("POST", "/api/users", body)
    return ok(r, status)


def audit_rows(srv, resource_id, action=None):
    where = f"resource_id = '{resource_id}'" + (f" AND action = '{action}'" if action else "")
    return sql_json(srv, "SELECT coalesce(json_agg(a ORDER BY created_at, id), '[]') FROM "
                         "(SELECT id, user_id, action, resource_type, resource_id, details, ip_address, created_at "
                         f"FROM audit_log WHERE {where}) a")


def check_audit(srv, admin, resource_id, action, details):
    rows = audit_rows(srv, resource_id, action)
    assert len(rows) == 1, rows
    a = rows[0]
    assert (a["user_id"], a["resource_type"], a["resource_id"], a["details"], a["ip_address"]) == \
        (admin.id, "user", resource_id, details, "127.0.0.1"), a


def only_bootstrap_admin(srv):
    """Leave the bootstrap admin as the only active admin (earlier tests may have made others)."""
    sql(srv, f"UPDATE users SET is_active = false WHERE role = 'admin' AND email <> '{ADMIN_EMAIL}'")
    assert sql(srv, "SELECT count(*) FROM users WHERE role = 'admin' AND is_active") == "1"


def make_team(srv, name):
    return sql(srv, f"INSERT INTO teams (name, description) VALUES ('{name}', 'about {name}') RETURNING id").splitlines()[0]


ENDPOINTS = [
    ("GET", "/api/users", None),
    ("GET", "/api/users/{id}", None),
    ("POST", "/api/users", {"email": "x@example.com", "name": "x", "password": "password-123"}),
    ("PUT", "/api/users/{id}/role", {"role": "admin"}),
    ("PUT", "/api/users/{id}/password", {"password": "password-123"}),
    ("POST", "/api/users/{id}/reactivate", None),
    ("DELETE", "/api/users/{id}", None),
]


# --------------------------------------------------------------------------
# reads


def test_list_is_every_user_by_name_without_hashes(srv, admin):
    for name in ("zz last", "AA first", "mm middle", "mm middle"):
        create(admin, name=name)
    users = ok(admin.call("GET", "/api/users"))
    assert isinstance(users, list) and len(users) >= 5
    for u in users:
        check_user(u)
    assert [u["name"] for u in users] == sorted(u["name"] for u in users)
    boot = [u for u in users if u["email"] == ADMIN_EMAIL]
    assert len(boot) == 1
    check_user(boot[0], name="root.admin", role="admin", is_active=True, oidc_subject=None)
    assert len(users) == int(sql(srv, "SELECT count(*) FROM users"))
    # HEAD answers like GET, without a body
    r = admin.call("HEAD", "/api/users")
    assert r.status == 200 and r.body == b""


def test_get_one_with_teams_ordered_by_team_name(srv, admin):
    u = create(admin)
    b, a = make_team(srv, "team-b-" + secrets.token_hex(3)), make_team(srv, "team-a-" + secrets.token_hex(3))
    sql(srv, f"INSERT INTO team_members (team_id, user_id, role) VALUES ('{b}', '{u['id']}', 'lead'), "
             f"('{a}', '{u['id']}', 'member')")
    got = ok(admin.call("GET", f"/api/users/{u['id']}"))
    teams = got.pop("teams")
    check_user(got, id=u["id"], email=u["email"], role="user", is_active=True)
    assert [t["team_id"] for t in teams] == [a, b]
    assert teams[0]["role"] == "member" and teams[1]["role"] == "lead"
    for t in teams:
        assert set(t) == {"team_id", "role", "team"}
        assert set(t["team"]) == {"id", "name", "description"} and t["team"]["id"] == t["team_id"]
        assert t["team"]["description"] == "about " + t["team"]["name"]
    # no memberships: an empty list; the id may be given in upper case
    v = create(admin)
    got = ok(admin.call("GET", f"/api/users/{v['id'].upper()}"))
    assert got["teams"] == [] and got["id"] == v["id"]


@pytest.mark.parametrize("path_id", ["5c0ffee0-1234-4abc-8def-0123456789ab", "not-a-uuid", "%27%3B--", "me-not", "0" * 36,
                                     "12345678-1234-1234-1234-1234567890123"])
def test_unknown_and_malformed_ids_are_404(srv, admin, path_id):
    for method, path, body in ENDPOINTS:
        if "{id}" not in path:
            continue
        r = admin.call(method, path.format(id=path_id), body)
        err(r, 404, "User not found")


def test_users_me_is_still_the_session_user(srv, admin):
    me = ok(admin.call("GET", "/api/users/me"))
    assert me["email"] == ADMIN_EMAIL and me["permissions"]["canManageUsers"] is True


# --------------------------------------------------------------------------
# guards


def test_anonymous_is_401_and_non_admin_is_403_everywhere(srv, admin):
    email = unique_email("plain")
    u = create(admin, email=email)
    anon = Client(srv).csrf()
    plain = Client(srv)
    plain.login(email, "password-123")
    for method, path, body in ENDPOINTS:
        for pid in (u["id"], "not-a-uuid"):
            p = path.format(id=pid)
            err(anon.call(method, p, body), 401, "Not authenticated")
            err(plain.call(method, p, body), 403, "Admin access required")
            # guards come before body validation
            err(plain.call(method, p, raw="[1]"), 403, "Admin access required")
    assert [a["action"] for a in audit_rows(srv, u["id"])] == ["user.created"]


def test_mutations_need_the_csrf_header(srv, admin):
    u = create(admin)
    sid = admin.cookies["deps-dashboard.sid"]
    r = request("DELETE", srv.url(f"/api/users/{u['id']}"), headers={"Cookie": f"deps-dashboard.sid={sid}"})
    assert r.status == 403 and json.loads(r.body) == {"error": "Invalid or missing CSRF token"}, r
    assert sql(srv, f"SELECT is_active FROM users WHERE id = '{u['id']}'") == "t"


# --------------------------------------------------------------------------
# POST /api/users


def test_create_trims_and_audits_and_the_user_can_log_in(srv, admin):
    email = unique_email("new")
    r = admin.call("POST", "/api/users", {"email": f"  {email}\t", "name": "\n Ada Lovelace  ",
                                          "password": "  spaced pass  ", "role": "admin"})
    u = check_user(ok(r, 201), email=email, name="Ada Lovelace", role="admin", is_active=True, oidc_subject=None)
    assert r.headers.get("Content-Type", "").startswith("application/json")
    row = sql(srv, f"SELECT email, name, role, is_active, password_hash FROM users WHERE id = '{u['id']}'").split("|")
    assert row[:4] == [email, "Ada Lovelace", "admin", "t"] and row[4].startswith("$2b$12$"), row
    check_audit(srv, admin, u["id"], "user.created", {"email": email, "role": "admin"})
    # the password is stored as given (not trimmed)
    Client(srv).login(email, "spaced pass", expect=401)
    c = Client(srv)
    c.login(email, "  spaced pass  ")
    assert ok(c.call("GET", "/api/auth/me"))["role"] == "admin"


def test_create_role_defaults_to_user(srv, admin):
    for extra in ({}, {"role": None}):
        body = {"email": unique_email(), "name": "n", "password": "password-123", **extra}
        u = ok(admin.call("POST", "/api/users", body), 201)
        check_user(u, role="user")
        check_audit(srv, admin, u["id"], "user.created", {"email": body["email"], "role": "user"})


def test_create_validation_in_spec_order(srv, admin):
    before = sql(srv, "SELECT count(*) FROM users") + "/" + sql(srv, "SELECT count(*) FROM audit_log")
    e, n, p = "valid@example.com", "Valid", "password-123"
    cases = [
        ({}, "email is required"),
        ({"email": "", "name": n, "password": p}, "email is required"),
        ({"email": " \t\u00a0\u3000\ufeff ", "name": n, "password": p}, "email is required"),
        ({"email": None, "name": n, "password": p}, "email is required"),
        ({"email": 5, "name": n, "password": p}, "email is required"),
        ({"email": ["a@b"], "name": n, "password": p}, "email is required"),
        ({"email": {"a": 1}, "name": n, "password": p}, "email is required"),
        ({"email": True, "name": "", "password": ""}, "email is required"),
        ({"email": e}, "name is required"),
        ({"email": e, "name": "   ", "password": p}, "name is required"),
        ({"email": e, "name": 12, "password": p}, "name is required"),
        ({"email": e, "name": False, "password": "x"}, "name is required"),
        ({"email": e, "name": n}, "password is required"),
        ({"email": e, "name": n, "password": ""}, "password is required"),
        ({"email": e, "name": n, "password": None}, "password is required"),
        ({"email": e, "name": n, "password": 123456789}, "password is required"),
        ({"email": e, "name": n, "password": ["password-123"]}, "password is required"),
        ({"email": e, "name": n, "password": "", "role": "bad"}, "password is required"),
        ({"email": e, "name": n, "password": "seven77"}, "password must be at least 8 characters"),
        # characters, not bytes: seven two-byte characters are too short
        ({"email": e, "name": n, "password": "\u00e9" * 7}, "password must be at least 8 characters"),
        ({"email": e, "name": n, "password": "short", "role": "bad"}, "password must be at least 8 characters"),
        ({"email": e, "name": n, "password": p, "role": "superuser"}, ROLE_MSG),
        ({"email": e, "name": n, "password": p, "role": "Admin"}, ROLE_MSG),
        ({"email": e, "name": n, "password": p, "role": ""}, ROLE_MSG),
        ({"email": e, "name": n, "password": p, "role": 1}, ROLE_MSG),
        ({"email": e, "name": n, "password": p, "role": ["admin"]}, ROLE_MSG),
        ({"email": e, "name": n, "password": p, "role": " admin"}, ROLE_MSG),
    ]
    for body, msg in cases:
        err(admin.call("POST", "/api/users", body), 400, msg)
    for raw in ("[]", '["a"]', '"text"', "5", "null", "true", "1.5"):
        err(admin.call("POST", "/api/users", raw=raw), 400, BODY_MSG)
    # no body, or a body that is not JSON, is an empty object (as the original's parser left it)
    err(admin.call("POST", "/api/users"), 400, "email is required")
    err(admin.call("POST", "/api/users", raw="email=a", content_type="text/plain"), 400, "email is required")
    # malformed JSON is refused by the /api pipeline
    assert admin.call("POST", "/api/users", raw='{"email": ').status == 400
    after = sql(srv, "SELECT count(*) FROM users") + "/" + sql(srv, "SELECT count(*) FROM audit_log")
    assert before == after


def test_create_duplicate_email_is_409_exact_match(srv, admin):
    email = unique_email("dup")
    u = create(admin, email=email)
    err(admin.call("POST", "/api/users", {"email": email, "name": "Other", "password": "password-123"}),
        409, "A user with this email already exists")
    # trimmed before the comparison
    err(admin.call("POST", "/api/users", {"email": f" {email} ", "name": "Other", "password": "password-123"}),
        409, "A user with this email already exists")
    # the comparison is exact: another case is another email
    v = create(admin, email=email.upper())
    assert v["email"] == email.upper() and v["id"] != u["id"]
    assert sql(srv, f"SELECT count(*) FROM audit_log WHERE action = 'user.created' AND details->>'email' = '{email}'") == "1"
    # the server is still healthy after the aborted transaction (same worker connections)
    for _ in range(4):
        ok(admin.call("GET", "/api/users"))


def test_create_stores_long_names_and_sql_metacharacters_verbatim(srv, admin):
    name = "Robert'); DROP TABLE users;-- \"q\" \\ %_ $1 \u00e9\u4e2d\U0001F600 " + "n" * 10240 + " end"
    email = f"o'brien+{secrets.token_hex(3)}\";--@example.com"
    u = check_user(create(admin, email=email, name=name), email=email, name=name)
    got = ok(admin.call("GET", f"/api/users/{u['id']}"))
    assert got["name"] == name and got["email"] == email
    assert sql(srv, f"SELECT length(name) FROM users WHERE id = '{u['id']}'") == str(len(name))
    assert sql(srv, "SELECT count(*) FROM pg_tables WHERE tablename = 'users'") == "1"
    # inner whitespace is kept; JavaScript's trim set (NBSP, ideographic space, BOM...) is removed at the ends
    v = create(admin, name="\u00a0\u3000\ufeff\u2003 Ann  Lee \u2028\u00a0")
    assert v["name"] == "Ann  Lee"


def test_create_email_too_long_for_the_index_is_400(srv, admin):
    # incompressible 10 KB: beyond what the unique btree index on email can hold
    email = secrets.token_hex(5000) + "@example.com"
    err(admin.call("POST", "/api/users", {"email": email, "name": "n", "password": "password-123"}),
        400, "email is too long")
    # long but storable
    email = secrets.token_hex(600) + "@example.com"
    check_user(create(admin, email=email), email=email)
    ok(admin.call("GET", "/api/users"))


# --------------------------------------------------------------------------
# PUT /api/users/:id/role


def test_role_change_updates_and_audits(srv, admin):
    u = create(admin)
    time.sleep(0.01)
    got = check_user(ok(admin.call("PUT", f"/api/users/{u['id']}/role", {"role": "admin"})), id=u["id"], role="admin")
    assert got["updated_at"] > u["updated_at"] and got["created_at"] == u["created_at"]
    check_audit(srv, admin, u["id"], "user.role_changed", {"previousRole": "user", "newRole": "admin"})
    got = ok(admin.call("PUT", f"/api/users/{u['id'].upper()}/role", {"role": "user"}))
    assert got["role"] == "user"
    details = [a["details"] for a in audit_rows(srv, u["id"], "user.role_changed")]
    assert details == [{"previousRole": "user", "newRole": "admin"}, {"previousRole": "admin", "newRole": "user"}]


def test_role_change_validation(srv, admin):
    u = create(admin)
    for body in ({}, {"role": None}, {"role": "lead"}, {"role": "ADMIN"}, {"role": 1}, {"role": ["user"]},
                 {"role": {"x": "admin"}}, {"role": True}):
        err(admin.call("PUT", f"/api/users/{u['id']}/role", body), 400, ROLE_MSG)
    err(admin.call("PUT", f"/api/users/{u['id']}/role"), 400, ROLE_MSG)
    for raw in ("[]", '"admin"', "null"):
        err(admin.call("PUT", f"/api/users/{u['id']}/role", raw=raw), 400, BODY_MSG)
    # the body is checked before the id
    err(admin.call("PUT", "/api/users/not-a-uuid/role", {"role": "x"}), 400, ROLE_MSG)
    err(admin.call("PUT", f"/api/users/{uuid.uuid4()}/role", {"role": "user"}), 404, "User not found")
    assert audit_rows(srv, u["id"], "user.role_changed") == []


def test_last_admin_cannot_be_demoted(srv, admin):
    only_bootstrap_admin(srv)
    err(admin.call("PUT", f"/api/users/{admin.id}/role", {"role": "user"}), 400, "Cannot demote the last admin user")
    assert sql(srv, f"SELECT role FROM users WHERE id = '{admin.id}'") == "admin"
    assert audit_rows(srv, admin.id, "user.role_changed") == []
    # with a second active admin, either may be demoted
    other = create(admin, role="admin")
    got = ok(admin.call("PUT", f"/api/users/{other['id']}/role", {"role": "user"}))
    assert got["role"] == "user"
    err(admin.call("PUT", f"/api/users/{admin.id}/role", {"role": "user"}), 400, "Cannot demote the last admin user")
    # §3.2 as written: an admin is not demoted while active admins <= 1, even an inactive one
    gone = create(admin, role="admin")
    ok(admin.call("DELETE", f"/api/users/{gone['id']}"), 204)
    err(admin.call("PUT", f"/api/users/{gone['id']}/role", {"role": "user"}), 400, "Cannot demote the last admin user")
    # keeping the role is no demotion
    assert ok(admin.call("PUT", f"/api/users/{admin.id}/role", {"role": "admin"}))["role"] == "admin"


# --------------------------------------------------------------------------
# PUT /api/users/:id/password


def test_password_reset_then_login(srv, admin):
    email = unique_email("pw")
    u = create(admin, email=email, password="old-password")
    old_hash = sql(srv, f"SELECT password_hash FROM users WHERE id = '{u['id']}'")
    time.sleep(0.01)
    r = admin.call("PUT", f"/api/users/{u['id']}/password", {"password": "brand-new-pw"})
    assert ok(r) == {"message": "Password updated successfully"}
    row = sql(srv, f"SELECT password_hash, updated_at > created_at FROM users WHERE id = '{u['id']}'").split("|")
    assert row[0] != old_hash and row[0].startswith("$2b$12$") and row[1] == "t"
    check_audit(srv, admin, u["id"], "user.password_reset", {"email": email})
    err(Client(srv).login(email, "old-password", expect=401), 401, "Invalid email or password")
    Client(srv).login(email, "brand-new-pw")


def test_password_reset_validation(srv, admin):
    u = create(admin)
    path = f"/api/users/{u['id']}/password"
    for body, msg in (({}, "password is required"), ({"password": ""}, "password is required"),
                      ({"password": None}, "password is required"), ({"password": 123456789}, "password is required"),
                      ({"password": ["longenough"]}, "password is required"),
                      ({"password": "1234567"}, "password must be at least 8 characters"),
                      ({"password": "\u4e2d" * 7}, "password must be at least 8 characters")):
        err(admin.call("PUT", path, body), 400, msg)
    err(admin.call("PUT", path), 400, "password is required")
    for raw in ("[]", '"long-enough-pw"', "42"):
        err(admin.call("PUT", path, raw=raw), 400, BODY_MSG)
    err(admin.call("PUT", "/api/users/not-a-uuid/password", {"password": "x"}), 400,
        "password must be at least 8 characters")
    err(admin.call("PUT", f"/api/users/{uuid.uuid4()}/password", {"password": "password-123"}), 404, "User not found")
    assert audit_rows(srv, u["id"], "user.password_reset") == []


# --------------------------------------------------------------------------
# DELETE /api/users/:id and POST /api/users/:id/reactivate


def test_deactivate_removes_memberships_and_logs_the_user_out(srv, admin):
    email = unique_email("leaver")
    u = create(admin, email=email)
    stay = create(admin)
    t1, t2 = make_team(srv, "dx-" + secrets.token_hex(3)), make_team(srv, "dy-" + secrets.token_hex(3))
    sql(srv, f"INSERT INTO team_members (team_id, user_id, role) VALUES ('{t1}', '{u['id']}', 'lead'), "
             f"('{t2}', '{u['id']}', 'member'), ('{t1}', '{stay['id']}', 'member')")
    phone, laptop = Client(srv), Client(srv)
    phone.login(email, "password-123")
    laptop.login(email, "password-123")
    assert ok(phone.call("GET", "/api/auth/me"))["email"] == email
    assert sql(srv, f"SELECT count(*) FROM sessions WHERE sess->>'userId' = '{u['id']}'") == "2"

    r = admin.call("DELETE", f"/api/users/{u['id']}")
    assert r.status == 204 and r.body == b"", r
    assert sql(srv, f"SELECT is_active, updated_at > created_at FROM users WHERE id = '{u['id']}'") == "f|t"
    assert sql(srv, f"SELECT count(*) FROM team_members WHERE user_id = '{u['id']}'") == "0"
    assert sql(srv, f"SELECT count(*) FROM team_members WHERE user_id = '{stay['id']}'") == "1"
    assert sql(srv, f"SELECT count(*) FROM sessions WHERE sess->>'userId' = '{u['id']}'") == "0"
    check_audit(srv, admin, u["id"], "user.deactivated", {"email": email})
    # logged out everywhere at once
    err(phone.call("GET", "/api/auth/me"), 401, "Not authenticated")
    err(laptop.call("GET", "/api/auth/me"), 401, "Not authenticated")
    err(Client(srv).login(email, "password-123", expect=401), 401, "Account is deactivated")
    got = ok(admin.call("GET", f"/api/users/{u['id']}"))
    assert got["is_active"] is False and got["teams"] == []
    # the admin's own session is untouched
    ok(admin.call("GET", "/api/auth/me"))


def test_reactivate(srv, admin):
    email = unique_email("back")
    u = create(admin, email=email)
    err(admin.call("POST", f"/api/users/{u['id']}/reactivate"), 400, "User is already active")
    ok(admin.call("DELETE", f"/api/users/{u['id']}"), 204)
    before = ok(admin.call("GET", f"/api/users/{u['id']}"))
    assert before["is_active"] is False
    time.sleep(0.01)
    got = check_user(ok(admin.call("POST", f"/api/users/{u['id']}/reactivate")), id=u["id"], is_active=True)
    assert got["updated_at"] > before["updated_at"]
    check_audit(srv, admin, u["id"], "user.reactivated", {"email": email})
    err(admin.call("POST", f"/api/users/{u['id']}/reactivate"), 400, "User is already active")
    assert len(audit_rows(srv, u["id"], "user.reactivated")) == 1
    Client(srv).login(email, "password-123")


def test_last_admin_cannot_be_deactivated(srv, admin):
    only_bootstrap_admin(srv)
    err(admin.call("DELETE", f"/api/users/{admin.id}"), 400, "Cannot deactivate the last admin user")
    assert sql(srv, f"SELECT is_active FROM users WHERE id = '{admin.id}'") == "t"
    assert audit_rows(srv, admin.id, "user.deactivated") == []
    ok(admin.call("GET", "/api/auth/me"))
    # an inactive admin is not "the last admin": it can be deactivated again
    gone = create(admin, role="admin")
    ok(admin.call("DELETE", f"/api/users/{gone['id']}"), 204)
    ok(admin.call("DELETE", f"/api/users/{gone['id']}"), 204)
    # with two active admins, an admin may deactivate itself and is logged out
    email = unique_email("selfish")
    other = create(admin, email=email, role="admin")
    c = Client(srv)
    c.login(email, "password-123")
    r = c.call("DELETE", f"/api/users/{other['id']}")
    assert r.status == 204, r
    err(c.call("GET", "/api/auth/me"), 401, "Not authenticated")
    err(admin.call("DELETE", f"/api/users/{admin.id}"), 400, "Cannot deactivate the last admin user")


def test_last_admin_check_is_race_safe(srv, admin):
    """Admins A (bootstrap) and B. Another transaction deactivates A but has not committed when the
    request to deactivate B arrives: the request must wait for it and then refuse, never leave zero
    active admins."""
    only_bootstrap_admin(srv)
    b = create(admin, role="admin")
    tx = BackgroundTx(srv.db.url)
    result = {}
    try:
        tx.run(f"BEGIN; UPDATE users SET is_active = false WHERE id = '{admin.id}';")
        t = threading.Thread(target=lambda: result.update(r=admin.call("DELETE", f"/api/users/{b['id']}")))
        t.start()
        # the request must queue behind the open transaction (a request that answers at once ignored it)
        wait_for(lambda: "r" in result or sql(srv, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                                                   "'Lock' AND query LIKE '%FOR UPDATE%'") == "1",
                 10, what="the request to wait for the lock")
        tx.run("COMMIT;")
        t.join(15)
        err(result["r"], 400, "Cannot deactivate the last admin user")
        assert sql(srv, f"SELECT is_active FROM users WHERE id = '{b['id']}'") == "t"
    finally:
        tx.close()
        sql(srv, f"UPDATE users SET is_active = true WHERE id = '{admin.id}'")
    ok(admin.call("GET", "/api/auth/me"))


# --------------------------------------------------------------------------
# OIDC mode and robustness


def test_local_only_endpoints_are_404_in_oidc_mode_after_the_admin_check(srv, admin, server):
    """A second server on the same database without LOCAL_AUTH. Sessions live in PostgreSQL and
    both servers sign with the same (default) secret, so the module admin's cookie works there."""
    oidc = server(srv.db.url, args=["--no-poller", "--no-pruner"], workers=1)
    email = unique_email("oidc")
    u = create(admin, email=email)
    plain = Client(srv)
    plain.login(email, "password-123")
    body = {"email": unique_email(), "name": "n", "password": "password-123"}
    pw = {"password": "password-123"}
    anon = Client(oidc).csrf()
    err(anon.call("POST", "/api/users", body), 401, "Not authenticated")
    err(anon.call("PUT", f"/api/users/{u['id']}/password", pw), 401, "Not authenticated")
    as_plain = Client(oidc, plain.cookies)
    err(as_plain.call("POST", "/api/users", body), 403, "Admin access required")
    err(as_plain.call("PUT", f"/api/users/{u['id']}/password", pw), 403, "Admin access required")
    as_admin = Client(oidc, admin.cookies)
    err(as_admin.call("POST", "/api/users", body), 404, "Not found")
    err(as_admin.call("POST", "/api/users", raw="[]"), 404, "Not found")
    err(as_admin.call("PUT", f"/api/users/{u['id']}/password", pw), 404, "Not found")
    # the other endpoints work in either mode
    assert ok(as_admin.call("GET", f"/api/users/{u['id']}"))["email"] == email
    assert sql(srv, f"SELECT count(*) FROM users WHERE email = '{body['email']}'") == "0"


def test_wrong_json_types_are_400_never_500(srv, admin):
    u = create(admin)
    values = [None, True, False, 0, -1, 1.5, "", " ", "admin", [], [1], {}, {"a": 1}, "x" * 300]
    for v in values:
        for field in ("email", "name", "password", "role"):
            body = {"email": unique_email(), "name": "n", "password": "password-123"}
            body[field] = v
            r = admin.call("POST", "/api/users", body)
            assert r.status in (201, 400), (field, v, r)
        assert admin.call("PUT", f"/api/users/{u['id']}/role", {"role": v}).status in (200, 400)
        assert admin.call("PUT", f"/api/users/{u['id']}/password", {"password": v}).status in (200, 400)
        for extra in ({"role": v, "password": v}, {"id": v}):
            assert admin.call("POST", f"/api/users/{u['id']}/reactivate", extra).status == 400
