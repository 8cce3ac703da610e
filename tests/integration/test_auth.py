"""Authentication (graph-and-api.md §1, §1.1, §1.2, §2, §3.1; open-questions.md B and C).

Auth mode, bootstrap admin, CSRF double-submit cookie, local login and its validation, sessions in
PostgreSQL (fresh id at login, shared by every worker, ended by logout / deactivation / expiry /
tampering), GET /api/auth/me and /api/users/me, login timing, CORS and preflight, HTTPS redirect
behind a trusted proxy.

Servers are module-scoped (one per configuration); every user a test needs is inserted with psql
and gets the bootstrap admin's password hash, so that only the logins themselves pay for bcrypt.
"""

import concurrent.futures
import re
import secrets
import statistics
import time
import uuid

import pytest

from conftest import (ApiClient, Server, _stderr_files, add_user, migrate_up, request, set_cookies,
                      sql_str, wait_for)

ADMIN_EMAIL = "admin@example.com"
PASSWORD = "correct-horse-battery"   # every user of the local server has it
SID = "deps-dashboard.sid"
CSRF = "csrf-token"
CSRF_ERROR = {"error": "Invalid or missing CSRF token"}
REQUIRED = "Email and password are required"
STRINGS = "Email and password must be strings"
INVALID = "Invalid email or password"
CUSTOM_ORIGIN = "http://ui.example.test:8080"

# variables that must not leak in from the caller's environment
CLEAN = {"REQUIRE_HTTPS": None, "TRUST_PROXY": None, "CORS_ORIGIN": None, "NODE_ENV": None,
         "SESSION_SECRET": None, "LOCAL_AUTH": None, "ADMIN_EMAIL": None, "ADMIN_PASSWORD": None}

_module_servers = []


def _start(cluster, tmp_path_factory, name, env, workers=2):
    d = cluster.create_db()
    s = None
    try:
        migrate_up(d)
        s = Server(d.url, args=["--no-poller", "--no-pruner"], env=dict(CLEAN, **env), workers=workers,
                   log_dir=str(tmp_path_factory.mktemp(name)))
        _module_servers.append(s)
        s.start(timeout=30)
    except BaseException:
        if s is not None:
            s.kill()
        d.drop()
        raise
    s.db = d
    return s


def _stop(s):
    s.kill()
    s.db.drop()


@pytest.fixture(scope="module")
def local(cluster, tmp_path_factory):
    """LOCAL_AUTH=true, bootstrap admin from ADMIN_EMAIL/ADMIN_PASSWORD, 4 workers, default CORS."""
    s = _start(cluster, tmp_path_factory, "local",
               {"LOCAL_AUTH": "true", "ADMIN_EMAIL": ADMIN_EMAIL, "ADMIN_PASSWORD": PASSWORD}, workers=4)
    yield s
    _stop(s)


@pytest.fixture(scope="module")
def oidc(cluster, tmp_path_factory):
    """LOCAL_AUTH unset (OIDC mode), a configured CORS origin."""
    s = _start(cluster, tmp_path_factory, "oidc", {"CORS_ORIGIN": CUSTOM_ORIGIN})
    yield s
    _stop(s)


@pytest.fixture(scope="module")
def https_srv(cluster, tmp_path_factory):
    """REQUIRE_HTTPS=true behind a trusted loopback proxy."""
    s = _start(cluster, tmp_path_factory, "https",
               {"LOCAL_AUTH": "true", "ADMIN_EMAIL": ADMIN_EMAIL, "ADMIN_PASSWORD": PASSWORD,
                "REQUIRE_HTTPS": "true", "TRUST_PROXY": "loopback"})
    yield s
    _stop(s)


@pytest.fixture(autouse=True)
def _scan_module_server_logs():
    # Module servers outlive a test: have every test's sanitizer check read their logs as well.
    yield
    for s in _module_servers:
        _stderr_files.append(s.log_path)


# --------------------------------------------------------------------------
# helpers


def unique(prefix):
    return f"{prefix}-{secrets.token_hex(4)}"


def new_user(srv, prefix, **kw):
    """A user of srv with password PASSWORD; returns (id, email)."""
    email = f"{unique(prefix)}@example.com"
    return add_user(srv.db.url, email, password_of=ADMIN_EMAIL, **kw), email


def logged_in(srv, email=ADMIN_EMAIL, headers=None):
    c = ApiClient(srv.base, headers=headers)
    c.login(email, PASSWORD)
    assert c.cookies.get(SID), "login answered 200 without a session cookie"
    return c


def sid_of(cookie_value):
    """The session id inside a signed cookie value <sid>.<signature>."""
    return cookie_value.rsplit(".", 1)[0]


def session_rows(srv, sid):
    return int(srv.db.psql(f"SELECT count(*) FROM sessions WHERE sid = {sql_str(sid)}"))


def raw(srv, method, path, cookies=None, headers=None, body=None):
    """A request with exactly these cookies and headers (no client logic)."""
    h = dict(headers or {})
    if cookies:
        h["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    return request(method, srv.url(path), body=body, headers=h, timeout=10)


def me(srv, sid_cookie):
    return raw(srv, "GET", "/api/auth/me", cookies={SID: sid_cookie})


def assert_error(r, status, message):
    assert r.status == status, r
    assert "application/json" in (r.headers.get("Content-Type") or ""), r
    assert r.json == {"error": message}, r


def sid_cookie(r):
    """(value, attrs) of the session cookie the response sets; fails if it sets none."""
    cookies = set_cookies(r)
    assert SID in cookies, f"no {SID} Set-Cookie in {r!r}"
    return cookies[SID]


def assert_session_cookie_attrs(attrs, secure=False):
    assert attrs.get("path") == "/", attrs
    assert attrs.get("max-age") == "86400", attrs
    assert str(attrs.get("samesite", "")).lower() == "lax", attrs
    assert attrs.get("httponly") is True, attrs
    assert ("secure" in attrs) == secure, attrs


def assert_json_booleans(body):
    """is_active and the permissions are JSON booleans, not 0/1 (which == True/False in Python)."""
    assert body["is_active"] is True, f"is_active is {body['is_active']!r}, want JSON true"
    for k, v in body["permissions"].items():
        assert isinstance(v, bool), f"permissions.{k} is {v!r}, want a JSON boolean"


def assert_cleared(r):
    value, attrs = sid_cookie(r)
    assert value == "" and attrs.get("max-age") == "0", f"session cookie not cleared: {r.headers.get_all('Set-Cookie')}"
    assert attrs.get("path") == "/", attrs


# --------------------------------------------------------------------------
# mode


def test_mode_local(local):
    r = raw(local, "GET", "/api/auth/mode")
    assert r.status == 200, r
    assert r.json == {"mode": "local"}, r


def test_mode_oidc(oidc):
    r = raw(oidc, "GET", "/api/auth/mode")
    assert r.status == 200, r
    assert r.json == {"mode": "oidc"}, r


# --------------------------------------------------------------------------
# bootstrap admin


def test_bootstrap_admin_created(local):
    rows = local.db.psql(f"SELECT email, name, role, is_active, password_hash FROM users "
                         f"WHERE role = 'admin' AND email = {sql_str(ADMIN_EMAIL)}").splitlines()
    assert len(rows) == 1, rows
    email, name, role, active, hash_ = rows[0].split("|")
    assert (email, name, role, active) == (ADMIN_EMAIL, "admin", "admin", "t"), rows
    assert hash_.startswith("$2b$12$") and len(hash_) == 60, f"not a bcrypt cost-12 hash: {hash_!r}"
    assert PASSWORD not in hash_
    r = ApiClient(local.base).login(ADMIN_EMAIL, PASSWORD)
    assert r.json["role"] == "admin" and r.json["name"] == "admin", r


@pytest.mark.parametrize("env,names", [
    ({"ADMIN_EMAIL": "boot@example.com", "ADMIN_PASSWORD": "7chars!"}, "ADMIN_PASSWORD"),
    ({"ADMIN_EMAIL": None, "ADMIN_PASSWORD": "long-enough-password"}, "ADMIN_EMAIL"),
    ({"ADMIN_EMAIL": "boot@example.com", "ADMIN_PASSWORD": None}, "ADMIN_PASSWORD"),
    ({"ADMIN_EMAIL": None, "ADMIN_PASSWORD": None}, "ADMIN_EMAIL"),
], ids=["short-password", "no-email", "no-password", "neither"])
def test_bootstrap_refused_without_valid_admin_vars(server, migrated_db, env, names):
    s = server(migrated_db.url, env=dict(CLEAN, LOCAL_AUTH="true", **env), wait=False)
    code = s.wait(30)
    assert code == 2, f"serve exited with {code}, want 2\n{s.tail()}"
    assert names in s.log_text(), f"the refusal does not name {names}:\n{s.tail()}"
    assert migrated_db.psql("SELECT count(*) FROM users") == "0"


def test_bootstrap_vars_not_needed_once_a_user_exists(server, migrated_db):
    add_user(migrated_db.url, "someone@example.com")
    s = server(migrated_db.url, env=dict(CLEAN, LOCAL_AUTH="true"))
    r = raw(s, "GET", "/api/auth/mode")
    assert r.json == {"mode": "local"}, r
    assert migrated_db.psql("SELECT count(*) FROM users") == "1"


# --------------------------------------------------------------------------
# CSRF (§1.2)


@pytest.mark.parametrize("path", ["/api/auth/mode", "/api/auth/me", "/api/health"])
def test_csrf_cookie_issued_on_api_get(local, path):
    tokens = []
    for _ in range(2):
        r = raw(local, "GET", path)
        cookies = set_cookies(r)
        assert CSRF in cookies, f"GET {path} without a csrf-token cookie set none: {r!r}"
        value, attrs = cookies[CSRF]
        assert re.fullmatch(r"[0-9a-f]{64}", value), f"csrf token is not 64 hex chars: {value!r}"
        assert attrs.get("path") == "/", attrs
        assert str(attrs.get("samesite", "")).lower() == "lax", attrs
        assert "httponly" not in attrs, f"the UI must be able to read the csrf cookie: {attrs}"
        assert "secure" not in attrs, f"plain HTTP request: {attrs}"
        tokens.append(value)
    assert tokens[0] != tokens[1], "two fresh csrf tokens are equal"
    # a request that carries the cookie gets no new one
    r = raw(local, "GET", path, cookies={CSRF: tokens[0]})
    assert CSRF not in set_cookies(r), r


TOKEN = "a" * 64


@pytest.mark.parametrize("variant", ["no-cookie", "cookie-no-header", "mismatch", "header-no-cookie", "empty"])
def test_csrf_rejects_login(local, variant):
    cookies, headers = {
        "no-cookie": ({}, {}),
        "cookie-no-header": ({CSRF: TOKEN}, {}),
        "mismatch": ({CSRF: TOKEN}, {"X-CSRF-Token": TOKEN[:-1] + "b"}),
        "header-no-cookie": ({}, {"X-CSRF-Token": TOKEN}),
        "empty": ({CSRF: ""}, {"X-CSRF-Token": ""}),
    }[variant]
    body = f'{{"email": "{ADMIN_EMAIL}", "password": "{PASSWORD}"}}'.encode()
    r = raw(local, "POST", "/api/auth/login", cookies=cookies,
            headers=dict(headers, **{"Content-Type": "application/json"}), body=body)
    assert r.status == 403, r
    assert r.json == CSRF_ERROR, r
    assert SID not in set_cookies(r), f"a session was started despite the CSRF failure: {r!r}"
    if variant in ("no-cookie", "header-no-cookie"):
        # the token is issued on this response, but the request itself still fails
        assert CSRF in set_cookies(r), r


@pytest.mark.parametrize("variant", ["no-cookie", "cookie-no-header", "mismatch"])
def test_csrf_rejects_logout(local, variant):
    c = logged_in(local)
    session = c.cookies[SID]
    cookies = {SID: session}
    headers = {}
    if variant != "no-cookie":
        cookies[CSRF] = TOKEN
    if variant == "mismatch":
        headers["X-CSRF-Token"] = TOKEN.upper()
    r = raw(local, "POST", "/api/auth/logout", cookies=cookies, headers=headers)
    assert r.status == 403, r
    assert r.json == CSRF_ERROR, r
    assert me(local, session).status == 200, "a logout refused for CSRF ended the session anyway"


def test_csrf_double_submit_proceeds(local):
    # any value works as long as the header echoes the cookie sent with the request
    cookies, headers = {CSRF: "my-own-token"}, {"X-CSRF-Token": "my-own-token", "Content-Type": "application/json"}
    r = raw(local, "POST", "/api/auth/login", cookies=cookies, headers=headers,
            body=b'{"email": "nobody@example.com", "password": "whatever-pw"}')
    assert_error(r, 401, INVALID)
    r = raw(local, "POST", "/api/auth/login", cookies=cookies, headers=headers,
            body=f'{{"email": "{ADMIN_EMAIL}", "password": "{PASSWORD}"}}'.encode())
    assert r.status == 200, r
    session = sid_cookie(r)[0]
    r = raw(local, "POST", "/api/auth/logout", cookies=dict(cookies, **{SID: session}), headers=headers)
    assert r.status == 200, r
    # logout passes CSRF, then needs a session
    r = raw(local, "POST", "/api/auth/logout", cookies=cookies, headers=headers)
    assert_error(r, 401, "Not authenticated")


# --------------------------------------------------------------------------
# login


LOGIN_CASES = [
    ("empty-object", {}, 400, REQUIRED),
    ("no-password", {"email": ADMIN_EMAIL}, 400, REQUIRED),
    ("no-email", {"password": PASSWORD}, 400, REQUIRED),
    ("empty-email", {"email": "", "password": PASSWORD}, 400, REQUIRED),
    ("empty-password", {"email": ADMIN_EMAIL, "password": ""}, 400, REQUIRED),
    ("null-email", {"email": None, "password": PASSWORD}, 400, REQUIRED),
    ("false-password", {"email": ADMIN_EMAIL, "password": False}, 400, REQUIRED),
    ("zero-email", {"email": 0, "password": PASSWORD}, 400, REQUIRED),
    ("array-body", [], 400, REQUIRED),
    ("number-email", {"email": 42, "password": PASSWORD}, 400, STRINGS),
    ("true-password", {"email": ADMIN_EMAIL, "password": True}, 400, STRINGS),
    ("array-password", {"email": ADMIN_EMAIL, "password": [PASSWORD]}, 400, STRINGS),
    ("object-email", {"email": {"address": ADMIN_EMAIL}, "password": PASSWORD}, 400, STRINGS),
    ("unknown-email", {"email": "nobody@example.com", "password": PASSWORD}, 401, INVALID),
    ("wrong-password", {"email": ADMIN_EMAIL, "password": PASSWORD + "x"}, 401, INVALID),
    ("password-prefix", {"email": ADMIN_EMAIL, "password": PASSWORD[:-1]}, 401, INVALID),
    ("email-other-case", {"email": ADMIN_EMAIL.upper(), "password": PASSWORD}, 401, INVALID),
]


@pytest.mark.parametrize("body,status,message", [c[1:] for c in LOGIN_CASES], ids=[c[0] for c in LOGIN_CASES])
def test_login_rejected(local, body, status, message):
    c = ApiClient(local.base)
    r = c.post("/api/auth/login", body)
    assert_error(r, status, message)
    assert SID not in set_cookies(r), f"a failed login set a session cookie: {r!r}"


def test_login_user_without_password(local):
    _, email = new_user(local, "nopw")
    local.db.psql(f"UPDATE users SET password_hash = NULL WHERE email = {sql_str(email)}")
    assert_error(ApiClient(local.base).login(email, PASSWORD, check=False), 401, INVALID)


def test_login_deactivated(local):
    _, email = new_user(local, "inactive", active=False)
    r = ApiClient(local.base).login(email, PASSWORD, check=False)
    assert_error(r, 401, "Account is deactivated")
    assert SID not in set_cookies(r), r


def test_login_success(local):
    uid, email = new_user(local, "alice", name="Alice Liddell")
    c = ApiClient(local.base)
    r = c.login(email, PASSWORD)
    assert "application/json" in (r.headers.get("Content-Type") or ""), r
    assert r.json == {"id": uid, "email": email, "name": "Alice Liddell", "role": "user"}, r
    assert b"password" not in r.body and b"$2b$" not in r.body, r
    value, attrs = sid_cookie(r)
    assert value, r
    assert_session_cookie_attrs(attrs)
    rows = local.db.psql(f"SELECT sess->>'userId', expire > now() + interval '23 hours' FROM sessions "
                         f"WHERE sid = {sql_str(sid_of(value))}")
    assert rows == f"{uid}|t", f"session row: {rows!r}"


def test_login_oidc_mode_is_404(oidc):
    r = ApiClient(oidc.base).login(ADMIN_EMAIL, PASSWORD, check=False)
    assert_error(r, 404, "Local auth is not enabled")


@pytest.mark.parametrize("body", [b'{"email": "a@b.c", "password": ', b"{", b"not json",
                                  b'{"email": "a@b.c",}', b"\xff\xfe{}"],
                         ids=["truncated", "brace", "text", "trailing-comma", "bad-utf8"])
def test_login_malformed_json_is_400(local, body):
    c = ApiClient(local.base)
    r = c.post("/api/auth/login", body=body, headers={"Content-Type": "application/json"})
    assert_error(r, 400, "Invalid JSON in request body")


def test_login_oversize_body_is_413(local):
    c = ApiClient(local.base)
    r = c.post("/api/auth/login", {"email": "x" * (200 * 1024), "password": PASSWORD})
    assert r.status == 413, r
    assert "application/json" in (r.headers.get("Content-Type") or ""), r
    assert isinstance(r.json, dict) and isinstance(r.json.get("error"), str) and r.json["error"], r
    # just under the 100 KB limit the body is read and the login fails normally
    r = c.post("/api/auth/login", {"email": "x" * (99 * 1024), "password": PASSWORD})
    assert_error(r, 401, INVALID)


def test_login_issues_fresh_session_id(local):
    c = logged_in(local)
    first = c.cookies[SID]
    r = c.login(ADMIN_EMAIL, PASSWORD)      # sends the first cookie along
    second = sid_cookie(r)[0]
    assert sid_of(second) != sid_of(first), "a second login kept the session id (fixation)"
    assert_error(me(local, first), 401, "Not authenticated")
    assert session_rows(local, sid_of(first)) == 0, "the pre-login session row survived"
    assert me(local, second).status == 200


def test_login_redirect_get(local):
    r = raw(local, "GET", "/api/auth/login")
    assert r.status == 302, r
    assert r.headers.get("Location") == "http://localhost:3000/login", r


# --------------------------------------------------------------------------
# /api/auth/me and /api/users/me


def test_me_requires_session(local):
    assert_error(raw(local, "GET", "/api/auth/me"), 401, "Not authenticated")
    assert_error(me(local, "garbage"), 401, "Not authenticated")
    assert_error(raw(local, "GET", "/api/users/me"), 401, "Not authenticated")


def test_me_admin(local):
    c = logged_in(local)
    uid = local.db.psql(f"SELECT id FROM users WHERE email = {sql_str(ADMIN_EMAIL)}")
    r = c.get("/api/auth/me")
    assert r.status == 200, r
    assert r.json == {"id": uid, "email": ADMIN_EMAIL, "name": "admin", "role": "admin", "is_active": True,
                      "teams": [],
                      "permissions": {"canManageUsers": True, "canManageTeams": True, "canManageServices": True}}, r
    assert_json_booleans(r.json)
    assert b"password" not in r.body, r
    # rolling session: every authenticated response re-issues the cookie for 24 h
    assert_session_cookie_attrs(sid_cookie(r)[1])


@pytest.fixture(scope="module")
def team_users(local):
    """Teams Alpha (no description), Mid, Zeta; a lead (lead of Zeta, member of Alpha) and a member
    (member of Zeta and Mid)."""
    tag = secrets.token_hex(3)
    teams = {}
    for name, desc in (("Zeta", "the last team"), ("Alpha", None), ("Mid", "middle")):
        full = f"{name} {tag}"
        teams[name] = (local.db.psql(f"INSERT INTO teams (name, description) VALUES ({sql_str(full)}, "
                                     f"{sql_str(desc)}) RETURNING id").splitlines()[0], full, desc)
    lead_id, lead_email = new_user(local, "lead", name="Lea Lead")
    member_id, member_email = new_user(local, "member", name="Max Member")
    for team, user, role in (("Zeta", lead_id, "lead"), ("Alpha", lead_id, "member"),
                             ("Zeta", member_id, "member"), ("Mid", member_id, "member")):
        local.db.psql(f"INSERT INTO team_members (team_id, user_id, role) VALUES "
                      f"('{teams[team][0]}', '{user}', '{role}')")
    return {"teams": teams, "lead": (lead_id, lead_email), "member": (member_id, member_email)}


def team_entry(teams, name, role):
    tid, full, desc = teams[name]
    return {"team_id": tid, "role": role, "team": {"id": tid, "name": full, "description": desc}}


def test_me_team_lead(local, team_users):
    uid, email = team_users["lead"]
    t = team_users["teams"]
    r = logged_in(local, email).get("/api/auth/me")
    assert r.status == 200, r
    assert r.json == {
        "id": uid, "email": email, "name": "Lea Lead", "role": "user", "is_active": True,
        "teams": [team_entry(t, "Alpha", "member"), team_entry(t, "Zeta", "lead")],
        "permissions": {"canManageUsers": False, "canManageTeams": False, "canManageServices": True},
    }, r
    assert_json_booleans(r.json)


def test_me_team_member(local, team_users):
    uid, email = team_users["member"]
    t = team_users["teams"]
    r = logged_in(local, email).get("/api/auth/me")
    assert r.status == 200, r
    assert r.json == {
        "id": uid, "email": email, "name": "Max Member", "role": "user", "is_active": True,
        "teams": [team_entry(t, "Mid", "member"), team_entry(t, "Zeta", "member")],
        "permissions": {"canManageUsers": False, "canManageTeams": False, "canManageServices": False},
    }, r
    assert_json_booleans(r.json)


@pytest.mark.parametrize("who", ["lead", "member", "admin"])
def test_users_me_is_the_session_user(local, team_users, who):
    email = ADMIN_EMAIL if who == "admin" else team_users[who][1]
    c = logged_in(local, email)
    a, b = c.get("/api/auth/me"), c.get("/api/users/me")
    assert a.status == 200 and b.status == 200, (a, b)
    assert b.json == a.json, f"/api/users/me {b.json} != /api/auth/me {a.json}"
    assert b.json["email"] == email
    # the original's X-User-Id header is ignored
    other = team_users["member"][0] if who != "member" else team_users["lead"][0]
    r = c.get("/api/users/me", headers={"X-User-Id": other})
    assert r.json == a.json, r


# --------------------------------------------------------------------------
# sessions across workers, and their end


def test_session_valid_on_every_worker(local):
    workers = set(local.children("worker"))
    assert len(workers) == 4, f"WORKERS=4 but worker pids are {workers}"
    c = logged_in(local)
    session = c.cookies[SID]
    run = uuid.uuid4().hex[:12]
    ids = [f"xw-{run}-{i}" for i in range(40)]

    def one(rid):
        r = raw(local, "GET", "/api/auth/me", cookies={SID: session}, headers={"X-Request-Id": rid})
        return rid, r.status, (r.json or {}).get("email")

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as ex:
        results = list(ex.map(one, ids))
    bad = [x for x in results if x[1] != 200 or x[2] != ADMIN_EMAIL]
    assert not bad, f"{len(bad)} of 40 /api/auth/me requests failed: {bad[:5]}"

    def pids():
        found = {o.get("req_id"): o.get("pid") for o in local.log_lines()
                 if o.get("msg") == "request" and o.get("req_id") in ids}
        return found if len(found) == len(ids) else None

    found = wait_for(pids, 10, what="access-log lines of the 40 requests", detail=local.tail)
    distinct = set(found.values())
    assert distinct <= workers, f"access-log pids {distinct} are not the workers {workers}"
    assert len(distinct) >= 2, f"all 40 connections were served by worker(s) {distinct}: cannot show sharing"


def test_deactivation_ends_session(local):
    uid, email = new_user(local, "leaver")
    c = logged_in(local, email)
    session = c.cookies[SID]
    assert c.get("/api/auth/me").status == 200
    local.db.psql(f"UPDATE users SET is_active = false WHERE id = '{uid}'")
    r = me(local, session)
    assert_error(r, 401, "User not found or inactive")
    assert_cleared(r)
    assert session_rows(local, sid_of(session)) == 0, "the session of a deactivated user was kept"
    # reactivation does not bring the session back
    local.db.psql(f"UPDATE users SET is_active = true WHERE id = '{uid}'")
    assert_error(me(local, session), 401, "Not authenticated")


def test_deleted_user_ends_session(local):
    uid, email = new_user(local, "deleted")
    session = logged_in(local, email).cookies[SID]
    local.db.psql(f"DELETE FROM users WHERE id = '{uid}'")
    assert_error(me(local, session), 401, "User not found or inactive")
    assert session_rows(local, sid_of(session)) == 0


def test_logout(local):
    c = logged_in(local)
    session = c.cookies[SID]
    r = c.post("/api/auth/logout")
    assert r.status == 200, r
    assert r.json == {"redirectUrl": "/login"}, r
    assert_cleared(r)
    assert session_rows(local, sid_of(session)) == 0, "logout left the session row"
    assert_error(me(local, session), 401, "Not authenticated")
    # the same cookie cannot log out twice
    r = raw(local, "POST", "/api/auth/logout", cookies={SID: session, CSRF: TOKEN}, headers={"X-CSRF-Token": TOKEN})
    assert_error(r, 401, "Not authenticated")


def test_tampered_cookie(local):
    session = logged_in(local).cookies[SID]
    sid, sig = session.rsplit(".", 1)
    i = len(sig) // 2
    bad_sig = sig[:i] + ("A" if sig[i] != "A" else "B") + sig[i + 1:]
    bad_sid = ("A" if sid[0] != "A" else "B") + sid[1:]
    for cookie in (f"{sid}.{bad_sig}", f"{bad_sid}.{sig}", sid, f"{sid}.", f"s:{session}"):
        assert_error(me(local, cookie), 401, "Not authenticated")
    assert me(local, session).status == 200, "a tampered cookie destroyed the real session"


def test_expired_session(local):
    session = logged_in(local).cookies[SID]
    local.db.psql(f"UPDATE sessions SET expire = now() - interval '1 second' WHERE sid = {sql_str(sid_of(session))}")
    assert_error(me(local, session), 401, "Not authenticated")


def test_rolling_expiry(local):
    session = logged_in(local).cookies[SID]
    sid = sql_str(sid_of(session))
    local.db.psql(f"UPDATE sessions SET expire = now() + interval '1 hour' WHERE sid = {sid}")
    r = me(local, session)
    assert r.status == 200, r
    assert_session_cookie_attrs(sid_cookie(r)[1])
    assert local.db.psql(f"SELECT expire > now() + interval '23 hours' FROM sessions WHERE sid = {sid}") == "t", \
        "an authenticated request did not extend the session"


# --------------------------------------------------------------------------
# timing: an unknown email costs the same bcrypt work as a wrong password


def test_login_timing_does_not_reveal_unknown_email(local):
    c = ApiClient(local.base)
    c.csrf_token()
    unknown, wrong = [], []
    for i in range(10):
        for email, times in (("nobody-%d@example.com" % i, unknown), (ADMIN_EMAIL, wrong)):
            t0 = time.monotonic()
            r = c.login(email, "definitely-wrong-%d" % i, check=False)
            times.append(time.monotonic() - t0)
            assert_error(r, 401, INVALID)
    mu, mw = statistics.median(unknown), statistics.median(wrong)
    assert min(mu, mw) > 0.05, f"medians {mu:.3f}s / {mw:.3f}s: is bcrypt (cost 12) running at all?"
    assert abs(mu - mw) / max(mu, mw) < 0.2, \
        f"median login time: unknown email {mu:.3f}s, wrong password {mw:.3f}s (differ by 20% or more)"


# --------------------------------------------------------------------------
# CORS


def test_cors_default_origin(local):
    r = raw(local, "GET", "/api/auth/mode", headers={"Origin": "http://localhost:3000"})
    assert r.status == 200, r
    assert r.headers.get("Access-Control-Allow-Origin") == "http://localhost:3000", r
    assert r.headers.get("Access-Control-Allow-Credentials") == "true", r


def test_cors_configured_origin(oidc):
    r = raw(oidc, "GET", "/api/auth/mode", headers={"Origin": CUSTOM_ORIGIN})
    assert r.status == 200, r
    assert r.headers.get("Access-Control-Allow-Origin") == CUSTOM_ORIGIN, r
    assert r.headers.get("Access-Control-Allow-Credentials") == "true", r


def test_cors_preflight(local):
    r = raw(local, "OPTIONS", "/api/auth/login",
            headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "content-type,x-csrf-token"})
    assert r.status == 204, r
    assert r.body == b"", r
    assert r.headers.get("Access-Control-Allow-Origin") == "http://localhost:3000", r
    assert r.headers.get("Access-Control-Allow-Credentials") == "true", r
    allowed = {h.strip().lower() for h in (r.headers.get("Access-Control-Allow-Headers") or "").split(",")}
    assert {"content-type", "x-csrf-token"} <= allowed, r
    methods = {m.strip().upper() for m in (r.headers.get("Access-Control-Allow-Methods") or "").split(",")}
    assert {"GET", "POST", "PUT", "PATCH", "DELETE"} <= methods, r


# --------------------------------------------------------------------------
# HTTPS


def test_https_redirect(https_srv):
    host = f"127.0.0.1:{https_srv.port}"
    for method, path in (("GET", "/api/auth/mode"), ("GET", "/api/auth/mode?a=1&b=two"), ("GET", "/api/auth/me"),
                         ("POST", "/api/auth/login")):
        r = raw(https_srv, method, path)
        assert r.status == 301, f"{method} {path}: {r!r}"
        assert r.headers.get("Location") == f"https://{host}{path}", f"{method} {path}: {r!r}"
    # a trusted proxy saying the original request was plain HTTP: redirect as well
    r = raw(https_srv, "GET", "/api/auth/mode", headers={"X-Forwarded-Proto": "http"})
    assert r.status == 301, r


def test_https_health_not_redirected(https_srv):
    for path in ("/api/health", "/api/health/live"):
        r = raw(https_srv, "GET", path)
        assert r.status in (200, 503) and "Location" not in r.headers, f"{path}: {r!r}"


def test_https_behind_trusted_proxy(https_srv):
    xfp = {"X-Forwarded-Proto": "https"}
    r = raw(https_srv, "GET", "/api/auth/mode", headers=xfp)
    assert r.status == 200 and r.json == {"mode": "local"}, r
    assert "secure" in set_cookies(r)[CSRF][1], f"csrf cookie over HTTPS lacks Secure: {r!r}"
    c = ApiClient(https_srv.base, headers=xfp)
    r = c.login(ADMIN_EMAIL, PASSWORD)
    assert_session_cookie_attrs(sid_cookie(r)[1], secure=True)
    assert c.get("/api/auth/me").status == 200


def test_forwarded_proto_from_untrusted_peer_ignored(local):
    # `local` trusts no proxy: X-Forwarded-Proto from 127.0.0.1 must not make cookies Secure
    c = ApiClient(local.base, headers={"X-Forwarded-Proto": "https"})
    r = c.get("/api/auth/mode")
    assert "secure" not in set_cookies(r)[CSRF][1], r
    r = c.login(ADMIN_EMAIL, PASSWORD)
    assert_session_cookie_attrs(sid_cookie(r)[1], secure=False)
