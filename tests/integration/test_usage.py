"""Rate limits of team API keys (api-keys-and-rate-limits.md §2.1, §8):

  PATCH /api/teams/:id/api-keys/:keyId/rate-limit    PATCH /api/admin/api-keys/:keyId/rate-limit

One server (2 workers) and one database for the module: every test makes its own keys and limiter rows
(inserted with psql). Decisions taken where the original has quirks (open-questions.md):
  - team PATCH: the §2.1 checks (lock, 0, bounds) hold for admins too; they have the admin route;
    numbers are integers as JavaScript's Number.isInteger sees them (100.0 is 100, 1e30 is too big);
  - admin PATCH (D16): admin_locked is true/false (or the 1/0 the key object shows), anything else is a
    400; a present rate_limit_rpm is applied whatever admin_locked says (null = default), an absent one
    keeps the stored value; no upper bound but the integer column's (2147483647);
"""

import re
import uuid

import pytest

from conftest import api_env, shared_server_guard, wait_for

ADMIN_EMAIL = "root@example.com"
PASSWORD = "admin-password-1"
WORKERS = 2
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
KEY_FIELDS = {"id", "team_id", "name", "key_prefix", "last_used_at", "created_at", "created_by",
              "rate_limit_rpm", "rate_limit_admin_locked"}
UNKNOWN = str(uuid.uuid4())
MALFORMED = ("not-a-uuid", "123", "%27%3B--", "00000000-0000-0000-0000-00000000000g")

LEAD_REQUIRED = "Team lead access required"
ADMIN_REQUIRED = "Admin access required"
NOT_FOUND = "API key not found"
LOCKED = "Rate limit locked by admin"
UNLIMITED = "Unlimited (0) can only be set by admins"
POSITIVE = "rate_limit_rpm must be a positive integer or null"
TOO_BIG = "rate_limit_rpm exceeds maximum of 1,500,000"
NON_NEGATIVE = "rate_limit_rpm must be a non-negative integer or null"
NOT_BOOLEAN = "admin_locked must be a boolean"


ACTORS = (("lead_a", "A", "lead"), ("member_a", "A", "member"), ("lead_b", "B", "lead"), ("loner", None, None))


@pytest.fixture(scope="module")
def env(cluster, tmp_path_factory):
    yield from api_env(cluster, tmp_path_factory, "usage", ADMIN_EMAIL, PASSWORD, teams=("A", "B"), actors=ACTORS,
                       workers=WORKERS)


@pytest.fixture(autouse=True)
def _check_server_log(env):
    yield from shared_server_guard(env.srv)


# --------------------------------------------------------------------------
# helpers


def make_key(env, team=None, name=None, rpm=None, locked=False, created="now()"):
    team = team or env.team_a
    tag = uuid.uuid4().hex
    return env.db.psql(
        f"INSERT INTO team_api_keys (team_id, name, key_hash, key_prefix, rate_limit_rpm, rate_limit_admin_locked, created_at) "
        f"VALUES ('{team}', '{name or 'k-' + tag[:8]}', '{tag}{tag}', 'dps_{tag[:4]}', "
        f"{'NULL' if rpm is None else rpm}, {'true' if locked else 'false'}, {created}) RETURNING id")


def stored(env, key_id):
    """(rate_limit_rpm, locked) as stored."""
    out = env.db.psql(f"SELECT coalesce(rate_limit_rpm::text, 'NULL'), rate_limit_admin_locked FROM team_api_keys "
                      f"WHERE id = '{key_id}'")
    rpm, locked = out.split("|")
    return (None if rpm == "NULL" else int(rpm)), locked == "t"


def assert_error(r, status, msg):
    assert r.status == status, r
    assert r.json == {"error": msg}, r


def team_limit_path(team, key):
    return f"/api/teams/{team}/api-keys/{key}/rate-limit"


def admin_limit_path(key):
    return f"/api/admin/api-keys/{key}/rate-limit"


def fill_bucket(env, key_id, tokens=3):
    """A shared token bucket row for the key, as a worker's lease leaves it."""
    env.db.psql(f"INSERT INTO rate_limit_state (limiter, subject, tokens, at_ms) VALUES ('key', '{key_id}', {tokens}, 0) "
                f"ON CONFLICT (limiter, subject) DO UPDATE SET tokens = EXCLUDED.tokens")


def has_bucket(env, key_id):
    return env.db.psql(f"SELECT count(*) FROM rate_limit_state WHERE limiter = 'key' AND subject = '{key_id}'") == "1"


def notified(env, key_id):
    payload = f"api_key:{key_id}"
    return {o.get("pid") for o in env.srv.log_lines()
            if o.get("msg") == "notification" and o.get("channel") == "depsera_cache" and o.get("payload") == payload}


# --------------------------------------------------------------------------
# PATCH /api/teams/:id/api-keys/:keyId/rate-limit (§2.1)


def test_team_patch_roles(env):
    k = make_key(env)
    for actor, status, msg in (("anonymous", 401, "Not authenticated"), ("member_a", 403, LEAD_REQUIRED),
                               ("lead_b", 403, LEAD_REQUIRED), ("loner", 403, LEAD_REQUIRED)):
        c = env.clients[actor]
        for team in (env.team_a, UNKNOWN, MALFORMED[0]):
            assert_error(c.patch(team_limit_path(team, k), {"rate_limit_rpm": 10}), status, msg)
            assert_error(c.patch(team_limit_path(team, k), {"rate_limit_rpm": "bad"}), status, msg)  # role first
    assert stored(env, k) == (None, False)
    for actor, rpm in (("lead_a", 11), ("admin", 12)):
        r = env.clients[actor].patch(team_limit_path(env.team_a, k), {"rate_limit_rpm": rpm})
        assert r.status == 200, r
        assert stored(env, k) == (rpm, False)


def test_team_patch_needs_csrf(env):
    k = make_key(env)
    r = env.clients["lead_a"].request("PATCH", team_limit_path(env.team_a, k), {"rate_limit_rpm": 5}, csrf=False)
    assert_error(r, 403, "Invalid or missing CSRF token")
    assert stored(env, k) == (None, False)


def test_team_patch_answers_the_key_object(env):
    k = make_key(env)
    r = env.clients["lead_a"].patch(team_limit_path(env.team_a, k), {"rate_limit_rpm": 250})
    assert r.status == 200, r
    assert set(r.json) == KEY_FIELDS, r.json
    assert r.json["id"] == k and r.json["team_id"] == env.team_a
    assert r.json["rate_limit_rpm"] == 250 and r.json["rate_limit_admin_locked"] == 0
    assert ISO_MS.match(r.json["created_at"]) and b"key_hash" not in r.body
    r = env.clients["lead_a"].patch(team_limit_path(env.team_a, k), {"rate_limit_rpm": None})
    assert r.status == 200 and r.json["rate_limit_rpm"] is None, r
    assert stored(env, k) == (None, False)


@pytest.mark.parametrize("rpm", [1, 2, 60, 150000, 1500000])
def test_team_patch_accepts_the_range(env, rpm):
    k = make_key(env)
    r = env.clients["lead_a"].patch(team_limit_path(env.team_a, k), {"rate_limit_rpm": rpm})
    assert r.status == 200 and r.json["rate_limit_rpm"] == rpm, r
    assert stored(env, k) == (rpm, False)


def test_team_patch_takes_integral_reals_as_javascript_does(env):
    """Number.isInteger(100.0) and (1e3) are true in the original: such numbers are integers."""
    k = make_key(env)
    r = env.clients["lead_a"].request("PATCH", team_limit_path(env.team_a, k), body=b'{"rate_limit_rpm": 100.0}',
                                      headers={"Content-Type": "application/json"})
    assert r.status == 200 and r.json["rate_limit_rpm"] == 100, r
    r = env.clients["lead_a"].request("PATCH", team_limit_path(env.team_a, k), body=b'{"rate_limit_rpm": 1e3}',
                                      headers={"Content-Type": "application/json"})
    assert r.status == 200 and r.json["rate_limit_rpm"] == 1000, r


TEAM_BAD = [
    ({"rate_limit_rpm": 0}, UNLIMITED),
    ({"rate_limit_rpm": 0.0}, UNLIMITED),
    ({"rate_limit_rpm": 1.5}, POSITIVE),
    ({"rate_limit_rpm": 0.5}, POSITIVE),
    ({"rate_limit_rpm": "100"}, POSITIVE),
    ({"rate_limit_rpm": ""}, POSITIVE),
    ({"rate_limit_rpm": True}, POSITIVE),
    ({"rate_limit_rpm": False}, POSITIVE),
    ({"rate_limit_rpm": -1}, POSITIVE),
    ({"rate_limit_rpm": -1500001}, POSITIVE),
    ({"rate_limit_rpm": [5]}, POSITIVE),
    ({"rate_limit_rpm": {"v": 5}}, POSITIVE),
    ({}, POSITIVE),  # missing member
    ({"rpm": 5}, POSITIVE),
    ({"rate_limit_rpm": 1500001}, TOO_BIG),
    ({"rate_limit_rpm": 2147483648}, TOO_BIG),
    ({"rate_limit_rpm": 10 ** 15}, TOO_BIG),
    ({"rate_limit_rpm": 1e30}, TOO_BIG),  # an integer to JavaScript
]


@pytest.mark.parametrize("actor", ["lead_a", "admin"])
def test_team_patch_refuses_bad_values(env, actor):
    k = make_key(env, rpm=77)
    fill_bucket(env, k)
    for body, msg in TEAM_BAD:
        assert_error(env.clients[actor].patch(team_limit_path(env.team_a, k), body), 400, msg)
    for raw in (b"[]", b'"x"', b"5", b"null"):  # not an object: the member is missing
        r = env.clients[actor].request("PATCH", team_limit_path(env.team_a, k), body=raw,
                                       headers={"Content-Type": "application/json"})
        assert_error(r, 400, POSITIVE)
    r = env.clients[actor].request("PATCH", team_limit_path(env.team_a, k), body=b'{"rate_limit_rpm": 1e400}',
                                   headers={"Content-Type": "application/json"})
    assert r.status == 400, r  # not a finite number: jansson refuses the document
    assert stored(env, k) == (77, False) and has_bucket(env, k)  # nothing changed, nothing evicted


def test_team_patch_unknown_key_is_404_before_the_body(env):
    kb = make_key(env, env.team_b, rpm=5)
    for actor in ("lead_a", "admin"):
        c = env.clients[actor]
        for key in [UNKNOWN, kb] + list(MALFORMED):
            assert_error(c.patch(team_limit_path(env.team_a, key), {"rate_limit_rpm": 10}), 404, NOT_FOUND)
            assert_error(c.patch(team_limit_path(env.team_a, key), {"rate_limit_rpm": 0}), 404, NOT_FOUND)
    for team in [UNKNOWN] + list(MALFORMED):  # the key exists, not in that team
        assert_error(env.clients["admin"].patch(team_limit_path(team, kb), {"rate_limit_rpm": 10}), 404, NOT_FOUND)
    assert stored(env, kb) == (5, False)


@pytest.mark.parametrize("actor", ["lead_a", "admin"])
def test_team_patch_of_a_locked_key_is_403_before_the_body(env, actor):
    """The team route refuses locked keys whoever calls it; admins change them on the admin route."""
    k = make_key(env, rpm=9, locked=True)
    for body in ({"rate_limit_rpm": 10}, {"rate_limit_rpm": None}, {"rate_limit_rpm": 0}, {"rate_limit_rpm": 1.5}, {}):
        assert_error(env.clients[actor].patch(team_limit_path(env.team_a, k), body), 403, LOCKED)
    assert stored(env, k) == (9, True)


def test_team_patch_evicts_the_bucket_and_notifies(env):
    k, other = make_key(env), make_key(env)
    fill_bucket(env, k)
    fill_bucket(env, other)
    r = env.clients["lead_a"].patch(team_limit_path(env.team_a, k), {"rate_limit_rpm": 600})
    assert r.status == 200, r
    assert not has_bucket(env, k) and has_bucket(env, other)
    wait_for(lambda: len(notified(env, k)) == WORKERS, 5, what="every worker notified", detail=env.srv.tail)
    assert not notified(env, other)
    fill_bucket(env, k)
    r = env.clients["lead_a"].patch(team_limit_path(env.team_a.upper(), k.upper()), {"rate_limit_rpm": 700})
    assert r.status == 200 and r.json["id"] == k, r
    assert not has_bucket(env, k) and has_bucket(env, other)


def test_team_patch_is_not_audited(env):
    k = make_key(env)
    assert env.clients["lead_a"].patch(team_limit_path(env.team_a, k), {"rate_limit_rpm": 3}).status == 200
    assert env.db.psql(f"SELECT count(*) FROM audit_log WHERE resource_id = '{k}'") == "0"


# --------------------------------------------------------------------------
# PATCH /api/admin/api-keys/:keyId/rate-limit (§8)


def test_admin_patch_roles(env):
    k = make_key(env, rpm=8)
    for actor, status, msg in (("anonymous", 401, "Not authenticated"), ("member_a", 403, ADMIN_REQUIRED),
                               ("lead_a", 403, ADMIN_REQUIRED), ("lead_b", 403, ADMIN_REQUIRED),
                               ("loner", 403, ADMIN_REQUIRED)):
        for key in (k, UNKNOWN, MALFORMED[0]):
            assert_error(env.clients[actor].patch(admin_limit_path(key), {"rate_limit_rpm": 1}), status, msg)
            assert_error(env.clients[actor].patch(admin_limit_path(key), {"rate_limit_rpm": -1}), status, msg)
    assert stored(env, k) == (8, False)


def test_admin_patch_unknown_key_is_404_before_the_body(env):
    for key in [UNKNOWN] + list(MALFORMED):
        for body in ({"rate_limit_rpm": 1}, {"rate_limit_rpm": -1}, {"admin_locked": "yes"}, {}):
            assert_error(env.clients["admin"].patch(admin_limit_path(key), body), 404, NOT_FOUND)


ADMIN_BAD_RPM = [-1, -0.5, 1.5, "100", "", True, False, [1], {"v": 1}, 2147483648, 1e30, 10 ** 15]
ADMIN_BAD_LOCK = ["false", "true", "", "0", None, 2, -1, 0.0, 1.0, 0.5, [], [True], {}]


def test_admin_patch_refuses_bad_values_in_order(env):
    k = make_key(env, rpm=33, locked=True)
    fill_bucket(env, k)
    c = env.clients["admin"]
    for rpm in ADMIN_BAD_RPM:
        assert_error(c.patch(admin_limit_path(k), {"rate_limit_rpm": rpm}), 400, NON_NEGATIVE)
        # rate_limit_rpm is checked before admin_locked
        assert_error(c.patch(admin_limit_path(k), {"rate_limit_rpm": rpm, "admin_locked": "false"}), 400, NON_NEGATIVE)
        assert_error(c.patch(admin_limit_path(k), {"rate_limit_rpm": rpm, "admin_locked": False}), 400, NON_NEGATIVE)
    for lock in ADMIN_BAD_LOCK:
        # D16: truthiness would lock on "false"; only booleans (and the 1/0 the key object shows) are taken
        assert_error(c.patch(admin_limit_path(k), {"admin_locked": lock}), 400, NOT_BOOLEAN)
        assert_error(c.patch(admin_limit_path(k), {"admin_locked": lock, "rate_limit_rpm": 5}), 400, NOT_BOOLEAN)
    assert stored(env, k) == (33, True) and has_bucket(env, k)


def test_admin_patch_semantics(env):
    k = make_key(env, rpm=40)
    c = env.clients["admin"]

    def patch(body, rpm, locked):
        r = c.patch(admin_limit_path(k), body)
        assert r.status == 200, (body, r)
        assert set(r.json) == KEY_FIELDS and r.json["id"] == k, r.json
        assert (r.json["rate_limit_rpm"], r.json["rate_limit_admin_locked"]) == (rpm, int(locked)), (body, r.json)
        assert stored(env, k) == (rpm, locked), body

    patch({"rate_limit_rpm": 0}, 0, False)  # unlimited: admins only
    patch({"rate_limit_rpm": 5000000}, 5000000, False)  # no upper bound but the column's
    patch({"rate_limit_rpm": 2147483647}, 2147483647, False)
    patch({"admin_locked": True}, 2147483647, True)  # absent rpm: kept
    patch({"rate_limit_rpm": 12}, 12, True)  # absent lock: kept; admins change locked keys
    patch({"rate_limit_rpm": None}, None, True)  # null: back to the default, lock kept
    patch({"admin_locked": False, "rate_limit_rpm": 77}, 77, False)
    patch({"admin_locked": True, "rate_limit_rpm": None}, None, True)  # D16: null resets even with admin_locked
    patch({"admin_locked": 0}, None, False)
    patch({"admin_locked": 1, "rate_limit_rpm": 9}, 9, True)
    patch({}, 9, True)  # nothing to change
    patch({"admin_locked": False, "other": "ignored"}, 9, False)
    r = c.request("PATCH", admin_limit_path(k), body=b'{"rate_limit_rpm": 60.0}', headers={"Content-Type": "application/json"})
    assert r.status == 200 and r.json["rate_limit_rpm"] == 60, r


def test_admin_lock_binds_team_leads(env):
    k = make_key(env)
    assert env.clients["admin"].patch(admin_limit_path(k), {"admin_locked": True, "rate_limit_rpm": 500}).status == 200
    assert_error(env.clients["lead_a"].patch(team_limit_path(env.team_a, k), {"rate_limit_rpm": 600}), 403, LOCKED)
    assert env.clients["admin"].patch(admin_limit_path(k), {"admin_locked": False}).status == 200
    r = env.clients["lead_a"].patch(team_limit_path(env.team_a, k), {"rate_limit_rpm": 600})
    assert r.status == 200 and r.json["rate_limit_rpm"] == 600, r


def test_admin_patch_evicts_the_bucket_and_notifies(env):
    k, other = make_key(env), make_key(env, env.team_b)
    fill_bucket(env, k)
    fill_bucket(env, other)
    assert env.clients["admin"].patch(admin_limit_path(k), {"admin_locked": True}).status == 200
    assert not has_bucket(env, k) and has_bucket(env, other)
    wait_for(lambda: len(notified(env, k)) == WORKERS, 5, what="every worker notified", detail=env.srv.tail)
    fill_bucket(env, k)
    assert env.clients["admin"].patch(admin_limit_path(k), {}).status == 200  # even a no-op change re-arms the limit
    assert not has_bucket(env, k) and has_bucket(env, other)
    fill_bucket(env, k)
    assert env.clients["admin"].patch(admin_limit_path(k.upper()), {"rate_limit_rpm": 5}).status == 200
    assert not has_bucket(env, k) and has_bucket(env, other)  # the bucket is the key's, however the URL spells it
    assert env.db.psql(f"SELECT count(*) FROM audit_log WHERE resource_id = '{k}'") == "0"
