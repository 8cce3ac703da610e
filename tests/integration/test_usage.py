"""Rate limits, usage and OTLP stats of team API keys (api-keys-and-rate-limits.md §2.1, §7, §8, §9):

  PATCH /api/teams/:id/api-keys/:keyId/rate-limit    PATCH /api/admin/api-keys/:keyId/rate-limit
  GET   /api/teams/:id/api-keys/:keyId/usage         GET   /api/admin/api-keys/:keyId/usage
  GET   /api/admin/otlp-usage
  GET   /api/teams/:id/otlp-stats                    GET   /api/admin/otlp-stats

One server (2 workers) and one database for the module: every test makes its own teams, keys and rows
(usage rows are inserted with psql). Decisions taken where the original has quirks (open-questions.md):
  - team PATCH: the §2.1 checks (lock, 0, bounds) hold for admins too; they have the admin route;
    numbers are integers as JavaScript's Number.isInteger sees them (100.0 is 100, 1e30 is too big);
  - admin PATCH (D16): admin_locked is true/false (or the 1/0 the key object shows), anything else is a
    400; a present rate_limit_rpm is applied whatever admin_locked says (null = default), an absent one
    keeps the stored value; no upper bound but the integer column's (2147483647);
  - usage reads compare from/to with bucket_start as instants, and refuse what is not ISO-8601;
  - otlp-stats (Q-USAGE): 1 h / 24 h from minute rows only, 7 d from hour rows only; team members only.
"""

import datetime
import re
import time
import uuid

import pytest

from conftest import api_env, make_team, shared_server_guard, wait_for

ADMIN_EMAIL = "root@example.com"
PASSWORD = "admin-password-1"
WORKERS = 2
DEFAULT_RPM = 4321  # OTLP_PER_KEY_RATE_LIMIT_RPM of the server
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
NOT_OF_TEAM = "API key does not belong to this team"
BAD_GRANULARITY = 'granularity must be "minute" or "hour"'


ACTORS = (("lead_a", "A", "lead"), ("member_a", "A", "member"), ("lead_b", "B", "lead"), ("loner", None, None))


@pytest.fixture(scope="module")
def env(cluster, tmp_path_factory):
    yield from api_env(cluster, tmp_path_factory, "usage", ADMIN_EMAIL, PASSWORD, teams=("A", "B"), actors=ACTORS,
                       workers=WORKERS, env={"OTLP_PER_KEY_RATE_LIMIT_RPM": DEFAULT_RPM})


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


# --------------------------------------------------------------------------
# usage reads (§7)

NOW = "(now() AT TIME ZONE 'UTC')"  # what bucket_start is relative to


def add_buckets(env, key_id, rows):
    """rows: (bucket_start SQL expression, granularity, push_count, rejected_count)."""
    values = ", ".join(f"('{key_id}', {start}, '{g}', {push}, {rej})" for start, g, push, rej in rows)
    env.db.psql(f"INSERT INTO api_key_usage_buckets (api_key_id, bucket_start, granularity, push_count, rejected_count) "
                f"VALUES {values}")


def ts(text):
    return f"'{text}'::timestamp"


def usage_path(team, key, query=""):
    return f"/api/teams/{team}/api-keys/{key}/usage" + (f"?{query}" if query else "")


def admin_usage_path(key, query=""):
    return f"/api/admin/api-keys/{key}/usage" + (f"?{query}" if query else "")


def starts(r):
    return [b["bucket_start"] for b in r.json["buckets"]]


def test_team_usage_roles(env):
    k = make_key(env)
    for actor, status, msg in (("anonymous", 401, "Not authenticated"), ("member_a", 403, LEAD_REQUIRED),
                               ("lead_b", 403, LEAD_REQUIRED), ("loner", 403, LEAD_REQUIRED)):
        for team in (env.team_a, UNKNOWN, MALFORMED[0]):
            assert_error(env.clients[actor].get(usage_path(team, k)), status, msg)
            assert_error(env.clients[actor].get(usage_path(team, k, "granularity=day")), status, msg)
    for actor in ("lead_a", "admin"):
        r = env.clients[actor].get(usage_path(env.team_a, k))
        assert r.status == 200 and r.json["buckets"] == [], r


def test_team_usage_of_a_key_not_of_the_team_is_403(env):
    kb = make_key(env, env.team_b)
    for actor in ("lead_a", "admin"):
        for key in [UNKNOWN, kb] + list(MALFORMED):
            assert_error(env.clients[actor].get(usage_path(env.team_a, key)), 403, NOT_OF_TEAM)
            assert_error(env.clients[actor].get(usage_path(env.team_a, key, "granularity=day")), 403, NOT_OF_TEAM)
    for team in [UNKNOWN] + list(MALFORMED):
        assert_error(env.clients["admin"].get(usage_path(team, kb)), 403, NOT_OF_TEAM)


def test_admin_usage_roles_and_404(env):
    k = make_key(env)
    for actor, status in (("anonymous", 401), ("member_a", 403), ("lead_a", 403), ("loner", 403)):
        r = env.clients[actor].get(admin_usage_path(k))
        assert_error(r, status, "Not authenticated" if status == 401 else ADMIN_REQUIRED)
    for key in [UNKNOWN] + list(MALFORMED):
        assert_error(env.clients["admin"].get(admin_usage_path(key)), 404, NOT_FOUND)
        assert_error(env.clients["admin"].get(admin_usage_path(key, "granularity=day")), 404, NOT_FOUND)
    assert env.clients["admin"].get(admin_usage_path(k)).status == 200


def fixed_rows(env, k):
    add_buckets(env, k, [
        (ts("2025-03-01 10:02:00"), "minute", 3, 0),
        (ts("2025-03-01 10:00:00"), "minute", 1, 0),
        (ts("2025-03-01 10:01:00"), "minute", 2, 1),
        (ts("2025-03-01 09:59:00"), "minute", 9, 9),
        (ts("2025-03-01 10:00:00"), "hour", 6, 1),
        (ts("2025-03-01 11:00:00"), "hour", 7, 2),
    ])


@pytest.mark.parametrize("who", ["lead", "admin"])
def test_usage_reads_with_a_window(env, who):
    k = make_key(env)
    other = make_key(env)
    fixed_rows(env, k)
    fixed_rows(env, other)

    def get(query):
        if who == "lead":
            return env.clients["lead_a"].get(usage_path(env.team_a, k, query))
        return env.clients["admin"].get(admin_usage_path(k, query))

    r = get("granularity=minute&from=2025-03-01T10:00:00.000Z&to=2025-03-01T10:02:00.000Z")
    assert r.status == 200, r
    assert r.json == {
        "api_key_id": k, "granularity": "minute",
        "from": "2025-03-01T10:00:00.000Z", "to": "2025-03-01T10:02:00.000Z",
        "buckets": [
            {"api_key_id": k, "bucket_start": "2025-03-01T10:00:00", "granularity": "minute", "push_count": 1, "rejected_count": 0},
            {"api_key_id": k, "bucket_start": "2025-03-01T10:01:00", "granularity": "minute", "push_count": 2, "rejected_count": 1},
            {"api_key_id": k, "bucket_start": "2025-03-01T10:02:00", "granularity": "minute", "push_count": 3, "rejected_count": 0},
        ]}, r.json
    # instants, not strings: a from with milliseconds still takes the bucket starting at it, an offset is honoured
    assert starts(get("from=2025-03-01T12:00:00.000%2B02:00&to=2025-03-01T10:01:00Z")) == \
        ["2025-03-01T10:00:00", "2025-03-01T10:01:00"]
    assert starts(get("from=2025-03-01T10:00:00.001Z&to=2025-03-01T10:02:59.999Z")) == \
        ["2025-03-01T10:01:00", "2025-03-01T10:02:00"]
    assert starts(get("from=2025-03-01T09:00:00-01:00&to=2025-03-01%2010:00")) == ["2025-03-01T10:00:00"]
    assert starts(get("from=2025-03-01&to=2025-03-02")) == \
        ["2025-03-01T09:59:00", "2025-03-01T10:00:00", "2025-03-01T10:01:00", "2025-03-01T10:02:00"]
    # verbatim in the answer
    r = get("from=2025-03-01&to=2025-03-01T23:00:00%2B00:00")
    assert (r.json["from"], r.json["to"]) == ("2025-03-01", "2025-03-01T23:00:00+00:00"), r.json
    r = get("granularity=hour&from=2025-03-01T10:00:00Z&to=2025-03-01T11:00:00Z")
    assert r.json["granularity"] == "hour" and [(b["bucket_start"], b["push_count"], b["granularity"]) for b in r.json["buckets"]] == \
        [("2025-03-01T10:00:00", 6, "hour"), ("2025-03-01T11:00:00", 7, "hour")], r.json
    assert starts(get("granularity=hour&from=2025-03-01T10:00:00.001Z&to=2025-03-02")) == ["2025-03-01T11:00:00"]
    assert get("from=2025-03-01T10:03:00Z&to=2025-03-01T10:00:00Z").json["buckets"] == []  # from after to


@pytest.mark.parametrize("query, msg", [
    ("granularity=day", BAD_GRANULARITY),
    ("granularity=MINUTE", BAD_GRANULARITY),
    ("granularity=minutes", BAD_GRANULARITY),
    ("from=yesterday", "from must be an ISO-8601 timestamp"),
    ("from=now", "from must be an ISO-8601 timestamp"),
    ("from=infinity", "from must be an ISO-8601 timestamp"),
    ("from=1700000000000", "from must be an ISO-8601 timestamp"),
    ("from=2025-13-01", "from must be an ISO-8601 timestamp"),
    ("from=2025-02-30T00:00:00Z", "from must be an ISO-8601 timestamp"),
    ("from=2025-03-01T25:00:00Z", "from must be an ISO-8601 timestamp"),
    ("from=2025-03-01T10:00:00Zjunk", "from must be an ISO-8601 timestamp"),
    ("from=%27%3B--", "from must be an ISO-8601 timestamp"),
    ("to=tomorrow", "to must be an ISO-8601 timestamp"),
    ("from=2025-03-01&to=2025-03-01T10:00:00+02:00", "to must be an ISO-8601 timestamp"),  # '+' is a space in a query
    ("granularity=day&from=junk", BAD_GRANULARITY),
])
def test_usage_bad_query_is_400(env, query, msg):
    k = make_key(env)
    assert_error(env.clients["lead_a"].get(usage_path(env.team_a, k, query)), 400, msg)
    assert_error(env.clients["admin"].get(admin_usage_path(k, query)), 400, msg)


def test_usage_default_windows(env):
    k = make_key(env)
    add_buckets(env, k, [
        (f"date_trunc('minute', {NOW} - interval '1 hour')", "minute", 1, 0),
        (f"date_trunc('minute', {NOW} - interval '23 hours')", "minute", 2, 0),
        (f"date_trunc('minute', {NOW} - interval '25 hours')", "minute", 4, 0),
        (f"date_trunc('hour', {NOW} - interval '29 days')", "hour", 8, 0),
        (f"date_trunc('hour', {NOW} - interval '31 days')", "hour", 16, 0),
    ])
    for path in (usage_path(env.team_a, k), admin_usage_path(k), usage_path(env.team_a, k, "granularity=&from=&to=")):
        r = env.clients["admin"].get(path)
        assert r.status == 200 and r.json["granularity"] == "minute", r
        assert [b["push_count"] for b in r.json["buckets"]] == [2, 1], r.json
        assert ISO_MS.match(r.json["from"]) and ISO_MS.match(r.json["to"]), r.json
        span = parse_iso(r.json["to"]) - parse_iso(r.json["from"])
        assert span == 24 * 3600, r.json
        assert abs(parse_iso(r.json["to"]) - time.time()) < 60
    r = env.clients["admin"].get(admin_usage_path(k, "granularity=hour"))
    assert [b["push_count"] for b in r.json["buckets"]] == [8], r.json
    assert parse_iso(r.json["to"]) - parse_iso(r.json["from"]) == 30 * 86400
    r = env.clients["admin"].get(admin_usage_path(k, "to=2099-01-01T00:00:00Z"))  # from stays the default
    assert [b["push_count"] for b in r.json["buckets"]] == [2, 1] and r.json["to"] == "2099-01-01T00:00:00Z", r.json


def parse_iso(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()


# --------------------------------------------------------------------------
# GET /api/admin/otlp-usage (§7)


def test_otlp_usage_roles(env):
    for actor, status in (("anonymous", 401), ("member_a", 403), ("lead_a", 403), ("lead_b", 403), ("loner", 403)):
        assert env.clients[actor].get("/api/admin/otlp-usage").status == status
    assert_error(env.clients["admin"].get("/api/admin/otlp-usage?from=soon"), 400, "from must be an ISO-8601 timestamp")


def test_otlp_usage_lists_hour_buckets_of_existing_keys(env):
    ka, kb, gone = make_key(env, name="usage-a"), make_key(env, env.team_b, name="usage-b"), make_key(env)
    for k, n in ((ka, 1), (kb, 2), (gone, 3)):
        add_buckets(env, k, [(ts("2024-06-01 12:00:00"), "hour", n, 0), (ts("2024-06-01 10:00:00"), "hour", 10 * n, n),
                             (ts("2024-06-01 11:00:00"), "minute", 100 * n, 0), (ts("2024-06-01 15:00:00"), "hour", 7, 0)])
    env.db.psql(f"DELETE FROM team_api_keys WHERE id = '{gone}'")
    r = env.clients["admin"].get("/api/admin/otlp-usage?from=2024-06-01T10:00:00.000Z&to=2024-06-01T12:00:00.000Z")
    assert r.status == 200, r
    assert set(r.json) == {"from", "to", "buckets"}
    assert (r.json["from"], r.json["to"]) == ("2024-06-01T10:00:00.000Z", "2024-06-01T12:00:00.000Z")
    assert r.json["buckets"] == [
        {"api_key_id": k, "bucket_start": start, "granularity": "hour", "push_count": push, "rejected_count": rej,
         "team_id": team, "key_name": name}
        for start, k, push, rej, team, name in sorted([
            ("2024-06-01T10:00:00", ka, 10, 1, env.team_a, "usage-a"), ("2024-06-01T10:00:00", kb, 20, 2, env.team_b, "usage-b"),
            ("2024-06-01T12:00:00", ka, 1, 0, env.team_a, "usage-a"), ("2024-06-01T12:00:00", kb, 2, 0, env.team_b, "usage-b"),
        ])
    ], r.json


def test_otlp_usage_default_window_is_seven_days(env):
    k = make_key(env)
    add_buckets(env, k, [(f"date_trunc('hour', {NOW} - interval '6 days')", "hour", 5, 0),
                         (f"date_trunc('hour', {NOW} - interval '8 days')", "hour", 6, 0)])
    r = env.clients["admin"].get("/api/admin/otlp-usage")
    assert r.status == 200, r
    assert [b["push_count"] for b in r.json["buckets"] if b["api_key_id"] == k] == [5]
    assert parse_iso(r.json["to"]) - parse_iso(r.json["from"]) == 7 * 86400
    starts_all = [b["bucket_start"] for b in r.json["buckets"]]
    assert starts_all == sorted(starts_all)


# --------------------------------------------------------------------------
# otlp-stats (§9)


def make_service(env, team, name, fmt="otlp", active=True, success="NULL", error=None, warnings="NULL"):
    return env.db.psql(
        f"INSERT INTO services (name, team_id, health_endpoint, health_endpoint_format, is_active, last_poll_success, "
        f"last_poll_error, poll_warnings) VALUES ('{name}', '{team}', '', '{fmt}', {'true' if active else 'false'}, {success}, "
        f"{'NULL' if error is None else repr(error)}, {warnings}) RETURNING id")


def stats_path(team):
    return f"/api/teams/{team}/otlp-stats"


def test_team_stats_roles(env):
    for actor, status in (("anonymous", 401), ("lead_b", 403), ("loner", 403)):
        for team in (env.team_a, UNKNOWN, MALFORMED[0]):
            r = env.clients[actor].get(stats_path(team))
            assert_error(r, status, "Not authenticated" if status == 401 else "Team access required")
    for actor in ("member_a", "lead_a", "admin"):
        r = env.clients[actor].get(stats_path(env.team_a))
        assert r.status == 200 and set(r.json) == {"services", "apiKeys", "summary"}, r
    assert_error(env.clients["member_a"].get(stats_path(env.team_b)), 403, "Team access required")
    for team in [UNKNOWN] + list(MALFORMED):  # an admin sees nothing of an unknown team
        r = env.clients["admin"].get(stats_path(team))
        assert r.status == 200, r
        assert r.json == {"services": [], "apiKeys": [], "summary": {"total_otlp_services": 0, "active_services": 0,
                                                                     "services_with_errors": 0, "services_never_pushed": 0}}


def test_team_stats_usage_sums_count_each_request_once(env):
    team = make_team(env.db)
    k = make_key(env, team, name="summed")
    other = make_key(env, team, name="other", created="now() - interval '1 day'")
    add_buckets(env, k, [
        # minute rows: 1 h and 24 h windows
        (f"date_trunc('minute', {NOW} - interval '10 minutes')", "minute", 5, 1),
        (f"date_trunc('minute', {NOW} - interval '2 hours')", "minute", 7, 2),
        (f"date_trunc('minute', {NOW} - interval '23 hours 58 minutes')", "minute", 11, 3),
        (f"date_trunc('minute', {NOW} - interval '24 hours 2 minutes')", "minute", 13, 4),  # outside 24 h
        (f"date_trunc('minute', {NOW} + interval '3 minutes')", "minute", 17, 5),  # after now
        # hour rows: the 7 d window (they also cover the requests above: never added to the 1 h/24 h figures)
        (f"date_trunc('hour', {NOW}) - interval '1 hour'", "hour", 100, 10),
        (f"date_trunc('hour', {NOW}) - interval '3 days'", "hour", 200, 20),
        (f"{NOW} - interval '6 days 23 hours 58 minutes'", "hour", 300, 30),
        (f"{NOW} - interval '7 days 2 minutes'", "hour", 400, 40),  # outside 7 d
        (f"date_trunc('hour', {NOW}) + interval '2 hours'", "hour", 800, 80),  # after now
    ])
    add_buckets(env, other, [(f"date_trunc('minute', {NOW} - interval '5 minutes')", "minute", 1000, 0)])
    r = env.clients["admin"].get(stats_path(team))
    assert r.status == 200, r
    keys = r.json["apiKeys"]
    assert [x["name"] for x in keys] == ["summed", "other"]  # newest first
    x = keys[0]
    assert {f: x[f] for f in ("usage_1h", "usage_24h", "usage_7d", "rejected_24h", "rejected_7d")} == \
        {"usage_1h": 5, "usage_24h": 23, "usage_7d": 600, "rejected_24h": 6, "rejected_7d": 60}, x
    assert {f: keys[1][f] for f in ("usage_1h", "usage_24h", "usage_7d", "rejected_24h", "rejected_7d")} == \
        {"usage_1h": 1000, "usage_24h": 1000, "usage_7d": 0, "rejected_24h": 0, "rejected_7d": 0}


def test_team_stats_key_fields(env):
    team = make_team(env.db)
    plain = make_key(env, team, name="plain", created="now() - interval '2 minutes'")
    custom = make_key(env, team, name="custom", rpm=900, locked=True, created="now() - interval '1 minute'")
    unlimited = make_key(env, team, name="unlimited", rpm=0)
    env.db.psql(f"UPDATE team_api_keys SET last_used_at = '2026-01-02T03:04:05.678Z' WHERE id = '{plain}'")
    r = env.clients["admin"].get(stats_path(team))
    keys = r.json["apiKeys"]
    assert [x["id"] for x in keys] == [unlimited, custom, plain]
    assert set(keys[0]) == {"id", "name", "key_prefix", "last_used_at", "created_at", "rate_limit_rpm", "rate_limit_is_custom",
                            "rate_limit_admin_locked", "usage_1h", "usage_24h", "usage_7d", "rejected_24h", "rejected_7d"}
    by = {x["name"]: x for x in keys}
    assert (by["plain"]["rate_limit_rpm"], by["plain"]["rate_limit_is_custom"], by["plain"]["rate_limit_admin_locked"]) == \
        (DEFAULT_RPM, False, False)
    assert (by["custom"]["rate_limit_rpm"], by["custom"]["rate_limit_is_custom"], by["custom"]["rate_limit_admin_locked"]) == \
        (900, True, True)
    assert (by["unlimited"]["rate_limit_rpm"], by["unlimited"]["rate_limit_is_custom"]) == (0, True)
    assert by["plain"]["last_used_at"] == "2026-01-02T03:04:05.678Z" and by["custom"]["last_used_at"] is None
    assert all(ISO_MS.match(x["created_at"]) and x["key_prefix"].startswith("dps_") for x in keys)
    assert b"key_hash" not in r.body


def test_team_stats_services_and_summary(env):
    team = make_team(env.db)
    tag = uuid.uuid4().hex[:6]
    ok = make_service(env, team, f"b-ok-{tag}", success="true", warnings="""'["w1", "w2"]'::jsonb""")
    failed = make_service(env, team, f"a-failed-{tag}", success="false", error="boom", warnings="""'"text"'::jsonb""")
    never = make_service(env, team, f"c-never-{tag}", active=False)
    make_service(env, team, f"d-polled-{tag}", fmt="default", success="false")  # not an OTLP service
    make_service(env, env.team_b, f"e-other-team-{tag}")
    env.db.psql(f"UPDATE services SET schema_config = '{{\"k\": 1}}'::jsonb, updated_at = '2026-02-03T04:05:06.789Z' "
                f"WHERE id = '{ok}'")
    env.db.psql(f"INSERT INTO dependencies (service_id, name) VALUES ('{ok}', 'db'), ('{ok}', 'cache'), ('{failed}', 'db')")
    env.db.psql(f"INSERT INTO service_poll_history (service_id, error, recorded_at) VALUES "
                f"('{failed}', 'e1', now() - interval '1 hour'), ('{failed}', 'e2', now() - interval '23 hours 59 minutes'), "
                f"('{failed}', NULL, now() - interval '2 hours'), ('{failed}', 'old', now() - interval '24 hours 1 minute'), "
                f"('{ok}', 'e3', now() - interval '5 minutes')")
    r = env.clients["admin"].get(stats_path(team))
    assert r.status == 200, r
    services = r.json["services"]
    assert [s["id"] for s in services] == [failed, ok, never]  # by name
    assert set(services[0]) == {"id", "name", "is_active", "last_push_success", "last_push_error", "last_push_warnings",
                                "last_push_at", "dependency_count", "errors_24h", "schema_config"}
    s_failed, s_ok, s_never = services
    assert (s_failed["last_push_success"], s_failed["last_push_error"], s_failed["last_push_warnings"]) == (False, "boom", None)
    assert (s_failed["dependency_count"], s_failed["errors_24h"]) == (1, 2)
    assert (s_ok["is_active"], s_ok["last_push_success"], s_ok["last_push_warnings"]) == (True, True, ["w1", "w2"])
    assert (s_ok["dependency_count"], s_ok["errors_24h"], s_ok["schema_config"]) == (2, 1, {"k": 1})
    assert s_ok["last_push_at"] == "2026-02-03T04:05:06.789Z" and s_ok["name"] == f"b-ok-{tag}"
    assert (s_never["is_active"], s_never["last_push_success"], s_never["dependency_count"]) == (False, None, 0)
    assert ISO_MS.match(s_never["last_push_at"])
    assert r.json["summary"] == {"total_otlp_services": 3, "active_services": 2, "services_with_errors": 1,
                                 "services_never_pushed": 1}


def test_team_stats_of_a_members_team(env):
    tag = uuid.uuid4().hex[:6]
    sid = make_service(env, env.team_a, f"member-view-{tag}", success="true")
    k = make_key(env, env.team_a)
    r = env.clients["member_a"].get(stats_path(env.team_a))
    assert r.status == 200, r
    assert sid in [s["id"] for s in r.json["services"]] and k in [x["id"] for x in r.json["apiKeys"]]
    assert all(x["id"] != k for x in env.clients["lead_b"].get(stats_path(env.team_b)).json["apiKeys"])


def test_admin_stats(env):
    c = env.clients["admin"]
    for actor, status in (("anonymous", 401), ("member_a", 403), ("lead_a", 403), ("lead_b", 403), ("loner", 403)):
        assert_error(env.clients[actor].get("/api/admin/otlp-stats"), status,
                     "Not authenticated" if status == 401 else ADMIN_REQUIRED)
    before = c.get("/api/admin/otlp-stats").json
    tag = uuid.uuid4().hex[:6]
    x, y, z = make_team(env.db, "X"), make_team(env.db, "Y"), make_team(env.db, "Z")
    make_service(env, x, f"qqq-{tag}", success="false")
    make_service(env, x, f"bbb-{tag}", success="true")
    make_service(env, y, f"ccc-{tag}", active=False)
    make_service(env, z, f"aaa-{tag}", fmt="default")  # Z has keys but no OTLP service: omitted
    kx1 = make_key(env, x, created="now() - interval '1 hour'")
    kx2 = make_key(env, x)
    make_key(env, z)
    add_buckets(env, kx2, [(f"date_trunc('minute', {NOW} - interval '1 minute')", "minute", 4, 1)])
    r = c.get("/api/admin/otlp-stats")
    assert r.status == 200, r
    assert set(r.json) == {"teams", "summary"}
    teams = r.json["teams"]
    ids = [t["team_id"] for t in teams]
    assert z not in ids and ids.index(x) < ids.index(y)
    assert len(ids) == len(set(ids))
    tx, ty = teams[ids.index(x)], teams[ids.index(y)]
    assert set(tx) == {"team_id", "team_name", "services", "apiKeys"}
    assert tx["team_name"].startswith("X ") and ty["team_name"].startswith("Y ")
    assert [s["name"] for s in tx["services"]] == [f"bbb-{tag}", f"qqq-{tag}"]
    assert [k["id"] for k in tx["apiKeys"]] == [kx2, kx1] and ty["apiKeys"] == []
    assert (tx["apiKeys"][0]["usage_1h"], tx["apiKeys"][0]["rejected_24h"], tx["apiKeys"][0]["rate_limit_rpm"]) == (4, 1, DEFAULT_RPM)
    # every team's services, in the order of each team's first service by name
    firsts = [min(s["name"].encode() for s in t["services"]) for t in teams]
    assert firsts == sorted(firsts) and all(t["services"] for t in teams)
    listed = [s for t in teams for s in t["services"]]
    s = r.json["summary"]
    assert s == {"total_otlp_services": len(listed), "active_services": sum(1 for v in listed if v["is_active"]),
                 "services_with_errors": sum(1 for v in listed if v["last_push_success"] is False),
                 "services_never_pushed": sum(1 for v in listed if v["last_push_success"] is None),
                 "total_teams": len(teams)}, s
    b = before["summary"]
    assert (s["total_otlp_services"] - b["total_otlp_services"], s["active_services"] - b["active_services"],
            s["services_with_errors"] - b["services_with_errors"], s["services_never_pushed"] - b["services_never_pushed"],
            s["total_teams"] - b["total_teams"]) == (3, 2, 1, 1, 2)
