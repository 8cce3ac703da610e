"""Team API keys: /api/teams/:id/api-keys (api-keys-and-rate-limits.md §1-§2), and the workers'
LISTEN on depsera_cache that makes every worker drop its cached lookups when a key changes.

One server (4 workers) and one database for the module: every test makes its own teams and keys.
Authentication of /v1 with these keys is in test_api_key_auth.py.
"""

import datetime
import hashlib
import json
import re
import time
import uuid

import pytest

from conftest import api_env, get, make_team, migrate, shared_server_guard, wait_for

ADMIN_EMAIL = "root@example.com"
PASSWORD = "admin-password-1"
WORKERS = 4
RAW_KEY = re.compile(r"^dps_[0-9a-f]{32}$")
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
KEY_FIELDS = {"id", "team_id", "name", "key_prefix", "last_used_at", "created_at", "created_by",
              "rate_limit_rpm", "rate_limit_admin_locked"}
UNKNOWN = str(uuid.uuid4())
MALFORMED = ("not-a-uuid", "123", "%27%3B--", "00000000-0000-0000-0000-00000000000g")
NAME_REQUIRED = ("Name is required", "name")


ACTORS = (("lead_a", "A", "lead"), ("member_a", "A", "member"), ("lead_b", "B", "lead"), ("loner", None, None))


@pytest.fixture(scope="module")
def env(cluster, tmp_path_factory):
    yield from api_env(cluster, tmp_path_factory, "api_keys", ADMIN_EMAIL, PASSWORD, teams=("A", "B"), actors=ACTORS,
                       workers=WORKERS)


@pytest.fixture(autouse=True)
def _check_server_log(env):
    yield from shared_server_guard(env.srv)


# --------------------------------------------------------------------------
# helpers


def keys_path(team, key=None):
    return f"/api/teams/{team}/api-keys" + (f"/{key}" if key else "")


def create(env, actor="admin", team=None, name=None):
    r = env.clients[actor].post(keys_path(team or env.team_a), {"name": name or f"key {uuid.uuid4().hex[:8]}"})
    assert r.status == 201, r
    return r.json


def stored(env, key_id):
    """The key's row as psql sees it (key_hash included), or None."""
    out = env.db.psql(f"SELECT row_to_json(k) FROM team_api_keys k WHERE id = '{key_id}'")
    return json.loads(out) if out else None


def audit_rows(env, action, resource_id):
    out = env.db.psql(f"SELECT user_id, resource_type, details::text, coalesce(ip_address, '') "
                      f"FROM audit_log WHERE action = '{action}' AND resource_id = '{resource_id}' ORDER BY created_at")
    rows = []
    for line in out.splitlines():
        user_id, rtype, details, ip = line.split("|", 3)
        rows.append({"user_id": user_id, "resource_type": rtype, "details": json.loads(details), "ip": ip})
    return rows


def assert_error(r, status, msg, field=None):
    assert r.status == status, r
    assert r.json is not None and r.json.get("error") == msg, r
    if field is not None:
        assert r.json.get("field") == field, r


def count_keys(env):
    return int(env.db.psql("SELECT count(*) FROM team_api_keys"))


# --------------------------------------------------------------------------
# who may


def test_anonymous_gets_401(env):
    k = create(env)
    anon = env.clients["anonymous"]
    for r in (anon.get(keys_path(env.team_a)), anon.post(keys_path(env.team_a), {"name": "x"}),
              anon.delete(keys_path(env.team_a, k["id"])), anon.get(keys_path(UNKNOWN))):
        assert_error(r, 401, "Not authenticated")
    assert stored(env, k["id"]) is not None


@pytest.mark.parametrize("actor", ["member_a", "lead_b", "loner"])
def test_non_leads_get_403(env, actor):
    k = create(env)
    c = env.clients[actor]
    before = count_keys(env)
    for team in [env.team_a, UNKNOWN] + list(MALFORMED):
        assert_error(c.get(keys_path(team)), 403, "Team lead access required")
        assert_error(c.post(keys_path(team), {"name": "mine"}), 403, "Team lead access required")
        # the role check comes before any validation
        assert_error(c.post(keys_path(team), {"name": ""}), 403, "Team lead access required")
        assert_error(c.delete(keys_path(team, k["id"])), 403, "Team lead access required")
        assert_error(c.delete(keys_path(team, UNKNOWN)), 403, "Team lead access required")
    assert count_keys(env) == before and stored(env, k["id"]) is not None


def test_a_lead_manages_only_their_team(env):
    lead = env.clients["lead_a"]
    k = create(env, "lead_a")
    assert k["created_by"] == env.ids["lead_a"] and k["team_id"] == env.team_a
    assert any(x["id"] == k["id"] for x in lead.get(keys_path(env.team_a)).json)
    assert_error(lead.get(keys_path(env.team_b)), 403, "Team lead access required")
    kb = create(env, "lead_b", env.team_b)
    assert_error(lead.delete(keys_path(env.team_b, kb["id"])), 403, "Team lead access required")
    # a key of team B named under team A's path is not found there
    assert_error(lead.delete(keys_path(env.team_a, kb["id"])), 404, "API key not found")
    assert stored(env, kb["id"]) is not None
    assert lead.delete(keys_path(env.team_a, k["id"])).status == 204


def test_admin_manages_any_team(env):
    team = make_team(env.db)  # the admin is no member of it
    k = create(env, "admin", team)
    assert k["team_id"] == team and k["created_by"] == env.admin_id
    assert [x["id"] for x in env.clients["admin"].get(keys_path(team)).json] == [k["id"]]
    assert env.clients["admin"].delete(keys_path(team, k["id"])).status == 204


def test_mutations_need_the_csrf_token(env):
    k = create(env)
    before = count_keys(env)
    for actor in ("admin", "lead_a"):
        c = env.clients[actor]
        assert_error(c.request("POST", keys_path(env.team_a), {"name": "x"}, headers={"X-CSRF-Token": "0" * 64}), 403,
                     "Invalid or missing CSRF token")
        assert_error(c.request("POST", keys_path(env.team_a), {"name": "x"}, csrf=False), 403,
                     "Invalid or missing CSRF token")
        assert_error(c.request("DELETE", keys_path(env.team_a, k["id"]), csrf=False), 403,
                     "Invalid or missing CSRF token")
    assert count_keys(env) == before and stored(env, k["id"]) is not None


# --------------------------------------------------------------------------
# create


@pytest.mark.parametrize("actor", ["lead_a", "admin"])
def test_create_answers_the_raw_key_once(env, actor):
    r = env.clients[actor].post(keys_path(env.team_a), {"name": "  Collector prod \t\n"})
    assert r.status == 201, r
    k = r.json
    assert set(k) == KEY_FIELDS | {"rawKey"}, k
    assert RAW_KEY.match(k["rawKey"]), k
    assert k["key_prefix"] == k["rawKey"][:8] and len(k["key_prefix"]) == 8
    assert k["name"] == "Collector prod"
    assert k["team_id"] == env.team_a and k["created_by"] == env.ids[actor]
    assert k["last_used_at"] is None and k["rate_limit_rpm"] is None and k["rate_limit_admin_locked"] == 0
    assert ISO_MS.match(k["created_at"]), k
    uuid.UUID(k["id"])
    row = stored(env, k["id"])
    assert row["key_hash"] == hashlib.sha256(k["rawKey"].encode()).hexdigest()
    assert row["key_prefix"] == k["key_prefix"] and row["name"] == "Collector prod"
    assert k["rawKey"] not in json.dumps(row)  # only its hash is stored
    listed = [x for x in env.clients[actor].get(keys_path(env.team_a)).json if x["id"] == k["id"]]
    assert listed and "rawKey" not in listed[0] and "key_hash" not in listed[0]


def test_keys_are_distinct(env):
    raws = {create(env)["rawKey"] for _ in range(20)}
    assert len(raws) == 20 and all(RAW_KEY.match(x) for x in raws)


BAD_NAMES = [{}, {"name": None}, {"name": ""}, {"name": "   "}, {"name": " \t\n\u00a0\u3000\ufeff "}, {"name": 5},
             {"name": 0}, {"name": True}, {"name": False}, {"name": ["x"]}, {"name": {"a": "b"}}, {"nom": "x"}]


def test_create_needs_a_name(env):
    before = count_keys(env)
    for actor in ("lead_a", "admin"):
        for body in BAD_NAMES:
            assert_error(env.clients[actor].post(keys_path(env.team_a), body), 400, *NAME_REQUIRED)
        for data in (b"[]", b'"text"', b"42", b"null", b'[{"name":"x"}]'):
            r = env.clients[actor].request("POST", keys_path(env.team_a), body=data,
                                           headers={"Content-Type": "application/json"})
            assert_error(r, 400, *NAME_REQUIRED)
        assert_error(env.clients[actor].post(keys_path(env.team_a)), 400, *NAME_REQUIRED)  # no body
        r = env.clients[actor].request("POST", keys_path(env.team_a), body=b'{"name":"x"}',
                                       headers={"Content-Type": "text/plain"})
        assert_error(r, 400, *NAME_REQUIRED)  # not JSON: no body
        r = env.clients[actor].request("POST", keys_path(env.team_a), body=b'{"name":',
                                       headers={"Content-Type": "application/json"})
        assert_error(r, 400, "Invalid JSON in request body")
    assert count_keys(env) == before


@pytest.mark.parametrize("name", [
    "'; DROP TABLE team_api_keys; --",
    "Robert'); DELETE FROM audit_log; --",
    "a\\b\"c", "100% _done_", "$1 $2::uuid", "{\"k\":1}", "ключ 🔑 鍵", "<script>alert(1)</script>",
    "inner  spaces\tand\ttabs",
])
def test_names_are_stored_verbatim(env, name):
    k = create(env, "lead_a", name=name)
    assert k["name"] == name
    assert stored(env, k["id"])["name"] == name
    assert [x["name"] for x in env.clients["lead_a"].get(keys_path(env.team_a)).json if x["id"] == k["id"]] == [name]
    assert audit_rows(env, "api_key.created", k["id"])[0]["details"]["key_name"] == name


def test_ten_kilobyte_name(env):
    name = ("x" * 5000) + "é" * 2600  # 10,200 bytes of UTF-8
    k = create(env, "lead_a", name=f"  {name}  ")
    assert k["name"] == name and stored(env, k["id"])["name"] == name


def test_create_for_an_unknown_team_is_404(env):
    before = count_keys(env)
    for team in [UNKNOWN] + list(MALFORMED):
        assert_error(env.clients["admin"].post(keys_path(team), {"name": "x"}), 404, "Team not found")
        # the name is checked first, as in the original
        assert_error(env.clients["admin"].post(keys_path(team), {"name": " "}), 400, *NAME_REQUIRED)
    assert count_keys(env) == before


# --------------------------------------------------------------------------
# list


def test_list_newest_first_without_hash(env):
    team = make_team(env.db)
    made = [create(env, "admin", team, name=f"k{i}") for i in range(4)]
    # equal creation times must not make the order random: spread them explicitly
    for i, k in enumerate(made):
        env.db.psql(f"UPDATE team_api_keys SET created_at = now() - interval '{10 - i} minutes' WHERE id = '{k['id']}'")
    r = env.clients["admin"].get(keys_path(team))
    assert r.status == 200, r
    assert [x["name"] for x in r.json] == ["k3", "k2", "k1", "k0"]
    for x in r.json:
        assert set(x) == KEY_FIELDS, x
        assert ISO_MS.match(x["created_at"]) and x["rate_limit_admin_locked"] == 0
    assert b"key_hash" not in r.body and b"rawKey" not in r.body
    for k in made:
        assert k["rawKey"].encode() not in r.body and stored(env, k["id"])["key_hash"].encode() not in r.body


def test_list_reports_limits_and_lock_as_stored(env):
    team = make_team(env.db)
    k = create(env, "admin", team)
    env.db.psql(f"UPDATE team_api_keys SET rate_limit_rpm = 1200, rate_limit_admin_locked = true, "
                f"last_used_at = '2026-01-02T03:04:05.678Z' WHERE id = '{k['id']}'")
    [x] = env.clients["admin"].get(keys_path(team)).json
    assert x["rate_limit_rpm"] == 1200 and x["rate_limit_admin_locked"] == 1
    assert x["last_used_at"] == "2026-01-02T03:04:05.678Z"


def test_list_of_a_team_without_keys_is_empty(env):
    assert env.clients["admin"].get(keys_path(make_team(env.db))).json == []
    lead = env.clients["lead_b"]
    r = lead.get(keys_path(env.team_b))
    assert r.status == 200 and all(x["team_id"] == env.team_b for x in r.json), r


def test_list_of_an_unknown_team_is_404(env):
    for team in [UNKNOWN] + list(MALFORMED):
        assert_error(env.clients["admin"].get(keys_path(team)), 404, "Team not found")


# --------------------------------------------------------------------------
# revoke


@pytest.mark.parametrize("actor", ["lead_a", "admin"])
def test_revoke_then_404(env, actor):
    k = create(env)
    c = env.clients[actor]
    r = c.delete(keys_path(env.team_a, k["id"]))
    assert r.status == 204 and r.body == b"", r
    assert stored(env, k["id"]) is None
    assert all(x["id"] != k["id"] for x in c.get(keys_path(env.team_a)).json)
    assert_error(c.delete(keys_path(env.team_a, k["id"])), 404, "API key not found")


def test_revoke_unknown_or_malformed_is_404(env):
    k = create(env)
    before = count_keys(env)
    for actor in ("lead_a", "admin"):
        for key in [UNKNOWN] + list(MALFORMED):
            assert_error(env.clients[actor].delete(keys_path(env.team_a, key)), 404, "API key not found")
    for team in [UNKNOWN] + list(MALFORMED):  # the key exists, not in that team
        assert_error(env.clients["admin"].delete(keys_path(team, k["id"])), 404, "API key not found")
    assert count_keys(env) == before and stored(env, k["id"]) is not None


def test_deleting_the_team_deletes_its_keys(env):
    team = make_team(env.db)
    k = create(env, "admin", team)
    assert env.clients["admin"].delete(f"/api/teams/{team}").status == 204
    assert stored(env, k["id"]) is None


# --------------------------------------------------------------------------
# audit and notifications


def test_audit_rows(env):
    k = create(env, "lead_a", name=" audited ")
    rows = audit_rows(env, "api_key.created", k["id"])
    assert rows == [{"user_id": env.ids["lead_a"], "resource_type": "team_api_key", "ip": "127.0.0.1",
                     "details": {"team_id": env.team_a, "key_name": "audited", "key_prefix": k["key_prefix"]}}], rows
    assert env.clients["admin"].delete(keys_path(env.team_a, k["id"])).status == 204
    rows = audit_rows(env, "api_key.revoked", k["id"])
    assert rows == [{"user_id": env.admin_id, "resource_type": "team_api_key", "ip": "127.0.0.1",
                     "details": {"team_id": env.team_a, "key_name": "audited", "key_prefix": k["key_prefix"]}}], rows


def test_refused_requests_leave_no_audit_row(env):
    before = env.db.psql("SELECT count(*) FROM audit_log WHERE action LIKE 'api_key.%'")
    env.clients["member_a"].post(keys_path(env.team_a), {"name": "x"})
    env.clients["admin"].post(keys_path(env.team_a), {"name": ""})
    env.clients["admin"].post(keys_path(UNKNOWN), {"name": "x"})
    env.clients["admin"].delete(keys_path(env.team_a, UNKNOWN))
    assert env.db.psql("SELECT count(*) FROM audit_log WHERE action LIKE 'api_key.%'") == before


def worker_pids_notified(env, payload):
    return {o.get("pid") for o in env.srv.log_lines()
            if o.get("msg") == "notification" and o.get("role") == "worker"
            and o.get("channel") == "depsera_cache" and o.get("payload") == payload}


def test_every_worker_listens(env):
    wait_for(lambda: env.db.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'depsera-worker' "
                                 "AND query = 'LISTEN depsera_cache'") == str(WORKERS), 10,
             what=f"{WORKERS} worker LISTEN connections", detail=env.srv.tail)


def log_time(o):
    return datetime.datetime.strptime(o["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()


def test_create_and_revoke_notify_every_worker(env):
    workers = set(env.srv.children("worker"))
    assert len(workers) == WORKERS
    k = create(env, "lead_a")
    payload = f"api_key:{k['id']}"
    wait_for(lambda: worker_pids_notified(env, payload) == workers, 5,
             what="every worker to receive the creation's NOTIFY", detail=env.srv.tail)
    before = len([o for o in env.srv.log_lines() if o.get("payload") == payload])
    t0 = time.time()
    assert env.clients["lead_a"].delete(keys_path(env.team_a, k["id"])).status == 204
    lines = wait_for(lambda: (lambda ls: ls if len(ls) == before + WORKERS else None)(
        [o for o in env.srv.log_lines() if o.get("payload") == payload]), 5,
        what="every worker to receive the revocation's NOTIFY", detail=env.srv.tail)
    late = [log_time(o) - t0 for o in lines[before:] if log_time(o) - t0 >= 1.0]
    assert not late, f"workers learnt of the revocation {late} s after it was sent"


def test_refused_mutations_notify_nobody(env):
    k = create(env)
    wait_for(lambda: len(worker_pids_notified(env, f"api_key:{k['id']}")) == WORKERS, 5,
             what="the creation's NOTIFY on every worker", detail=env.srv.tail)
    assert_error(env.clients["member_a"].delete(keys_path(env.team_a, k["id"])), 403, "Team lead access required")
    assert_error(env.clients["admin"].delete(keys_path(env.team_a, UNKNOWN)), 404, "API key not found")
    assert_error(env.clients["admin"].post(keys_path(UNKNOWN), {"name": "x"}), 404, "Team not found")
    time.sleep(0.5)
    assert not [o for o in env.srv.log_lines() if o.get("msg") == "notification"
                and o.get("payload") == f"api_key:{UNKNOWN}"]
    assert len([o for o in env.srv.log_lines() if o.get("msg") == "notification"
                and o.get("payload") == f"api_key:{k['id']}"]) == WORKERS  # only the creation's


# --------------------------------------------------------------------------
# the workers' LISTEN connection survives a database restart


def test_worker_listener_reconnects(own_cluster, own_db, server):
    migrate(own_db.url, "up")
    srv = server(own_db.url, args=["--no-poller", "--no-pruner"], workers=2)

    def listening():
        return [o for o in srv.log_lines() if o.get("msg") == "listening for cache invalidations"]

    def notified(payload):
        return {o.get("pid") for o in srv.log_lines() if o.get("msg") == "notification" and o.get("payload") == payload}

    wait_for(lambda: len(listening()) >= 2, 10, what="both workers listening", detail=srv.tail)
    own_db.psql("NOTIFY depsera_cache, 'before'")
    wait_for(lambda: len(notified("before")) == 2, 5, what="both workers notified", detail=srv.tail)

    own_cluster.stop()
    srv.wait_log(lambda o: o.get("msg") == "cache listener disconnected", 10, what="'cache listener disconnected'")
    time.sleep(1.0)
    assert srv.alive(), srv.tail()
    assert get(srv.url("/api/health/live"))[0] == 200  # the loop is not blocked by the reconnection attempts
    before = len(listening())
    own_cluster.start()
    wait_for(lambda: len(listening()) >= before + 2, 20, what="both workers listening again", detail=srv.tail)
    own_db.psql("NOTIFY depsera_cache, 'after'")
    wait_for(lambda: len(notified("after")) == 2, 5, what="both workers notified after the restart", detail=srv.tail)
    assert not [o for o in srv.log_lines() if o.get("level") in ("error", "fatal")], srv.tail()
