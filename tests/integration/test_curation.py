"""Curation of the graph (graph-and-api.md §5.1, §5.3-§5.6): dependency enrichment and instance overrides,
associations, aliases, canonical overrides, external node enrichment — with the decisions of
open-questions.md: A (a manual link replaces a dismissed suggestion; dismissal time recorded), B (row
rendering, malformed ids), C (external node mutations need a lead of a team depending on the node, or an
admin), D1 (PUTs keep omitted members; null clears), D24 (alias changes apply to dependencies at once).

One server and one database for the module; every test makes its own services, dependencies and names.
"""

import json
import re
import uuid

import pytest

from conftest import BackgroundTx, api_env, shared_server_guard, sql_str

ADMIN_EMAIL = "root@example.com"
PASSWORD = "admin-password-1"
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UNKNOWN = str(uuid.uuid4())
MALFORMED = ("not-a-uuid", "123", "%27%3B--", "00000000-0000-0000-0000-00000000000g")
ACTORS = (("lead_a", "A", "lead"), ("member_a", "A", "member"), ("lead_b", "B", "lead"), ("member_b", "B", "member"),
          ("loner", None, None))
ALL = ("anonymous", "loner", "member_b", "lead_b", "member_a", "lead_a", "admin")

DEP_KEYS = {"id", "service_id", "name", "canonical_name", "description", "impact", "type", "healthy",
            "health_state", "health_code", "latency_ms", "check_details", "error", "error_message",
            "last_checked", "last_status_change", "created_at", "updated_at", "contact",
            "contact_override", "impact_override", "skipped", "discovery_source",
            "user_display_name", "user_description", "user_impact"}
SERVICE_KEYS = {"id", "name", "team_id", "health_endpoint", "metrics_endpoint", "schema_config",
                "poll_interval_ms", "is_active", "is_external", "description", "last_poll_success",
                "last_poll_error", "health_endpoint_format", "poll_warnings", "manifest_managed",
                "manifest_key", "created_at", "updated_at"}
ASSOC_KEYS = {"id", "dependency_id", "linked_service_id", "association_type", "manifest_managed", "created_at",
              "is_auto_suggested", "is_dismissed"}
ALIAS_KEYS = {"id", "alias", "canonical_name", "created_at", "manifest_team_id"}
CO_KEYS = {"id", "canonical_name", "team_id", "contact_override", "impact_override", "manifest_managed",
           "created_at", "updated_at", "updated_by"}
NODE_KEYS = {"id", "canonical_name", "display_name", "description", "impact", "contact", "service_type",
             "created_at", "updated_at", "updated_by"}

TEAM_ACCESS = (403, "Team access required")
LEAD_ACCESS = (403, "Team lead access required")
NOT_AUTH = (401, "Not authenticated")
REPORTING_LEAD = (403, "Team lead access required for a team with a service reporting this dependency")
ALIAS_FORBIDDEN = (403, "Admin or team lead access required for a team with a service reporting this dependency")


@pytest.fixture(scope="module")
def env(cluster, tmp_path_factory):
    yield from api_env(cluster, tmp_path_factory, "curation", ADMIN_EMAIL, PASSWORD, teams=("A", "B"), actors=ACTORS,
                       env={"RATE_LIMIT_MAX": 1000000, "AUTH_RATE_LIMIT_MAX": 100000})


@pytest.fixture(autouse=True)
def _check_server_log(env):
    yield from shared_server_guard(env.srv)


# --------------------------------------------------------------------------
# helpers


def uniq(prefix="x"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def q(env, sql):
    return env.db.psql(sql)


def service(env, team=None, name=None):
    return q(env, f"INSERT INTO services (name, team_id, health_endpoint) VALUES "
                  f"({sql_str(name or uniq('svc'))}, '{team or env.team_a}', 'https://example.com/health') RETURNING id")


def dep(env, svc=None, name=None, canonical=None, **cols):
    """A dependency of `svc` (a new service of team A by default); returns its id."""
    svc = svc or service(env)
    extra = "".join(f", {k}" for k in cols)
    vals = "".join(f", {v}" for v in cols.values())
    return q(env, f"INSERT INTO dependencies (service_id, name, canonical_name{extra}) VALUES "
                  f"('{svc}', {sql_str(name or uniq('dep'))}, {sql_str(canonical)}{vals}) RETURNING id")


def dep_col(env, dep_id, col):
    return q(env, f"SELECT {col} FROM dependencies WHERE id = '{dep_id}'")


def c(env, actor):
    return env.clients[actor]


def expect(r, status, msg=None, field=None):
    assert r.status == status, r
    if msg is not None:
        assert r.json["error"] == msg, r
        if field is not None:
            assert r.json.get("field") == field, r
        else:
            assert "field" not in r.json, r
    return r


def expect_roles(env, call, expected):
    """call(client) -> response, for each actor; expected {actor: status or (status, msg)}."""
    failures = []
    for actor, want in expected.items():
        r = call(c(env, actor))
        status, msg = want if isinstance(want, tuple) else (want, None)
        if r.status != status or (msg is not None and r.json.get("error") != msg):
            failures.append(f"{actor}: {r.status} {r.body[:160]!r}, want {want}")
    assert not failures, "\n".join(failures)


def audit_rows(env, action, resource_id):
    out = q(env, f"SELECT user_id, resource_type, COALESCE(details::text, 'null') FROM audit_log "
                 f"WHERE action = '{action}' AND resource_id = {sql_str(resource_id)} ORDER BY created_at")
    return [{"user_id": u, "resource_type": t, "details": json.loads(d)}
            for u, t, d in (line.split("|", 2) for line in out.splitlines())]


def notifications(tx):
    lines = tx.run("SELECT 1;") + tx.run("SELECT 2;")
    return [ln for ln in lines if ln.startswith("Asynchronous notification")]


def cache_note(payload):
    return f'Asynchronous notification "depsera_cache" with payload "{payload}"'


def assert_rendered(row, keys):
    """open-questions.md B: the exact keys; timestamps ISO with ms and Z; booleans as JSON booleans."""
    assert set(row) == keys, row
    for k in ("created_at", "updated_at"):
        if k in row:
            assert ISO_MS.match(row[k]), row
    for k in ("is_active", "is_external", "skipped", "manifest_managed", "is_auto_suggested", "is_dismissed"):
        if k in row and row[k] is not None:
            assert isinstance(row[k], bool), (k, row)


def path_variants(tmpl, good):
    """The path with an unknown and with each malformed id."""
    return [tmpl.format(x) for x in (UNKNOWN,) + MALFORMED]


# --------------------------------------------------------------------------
# §5.1 enrichment


def test_enrich_roles(env):
    d = dep(env)
    expect_roles(env, lambda cl: cl.patch(f"/api/dependencies/{d}/enrich", {"displayName": "n"}), {
        "anonymous": NOT_AUTH, "loner": TEAM_ACCESS, "member_b": TEAM_ACCESS, "lead_b": TEAM_ACCESS,
        "member_a": 200, "lead_a": 200, "admin": 200})


def test_enrich_unknown_and_malformed_ids_before_the_body(env):
    for actor in ("member_a", "admin"):
        for p in path_variants("/api/dependencies/{}/enrich", None):
            expect(c(env, actor).patch(p, {}), 404, "Dependency not found")


def test_enrich_guard_comes_before_the_body(env):
    d = dep(env)
    expect(c(env, "loner").patch(f"/api/dependencies/{d}/enrich", {}), *TEAM_ACCESS)


@pytest.mark.parametrize("body", [{}, {"other": 1}, [], "x", None])
def test_enrich_needs_a_field(env, body):
    d = dep(env)
    kw = {} if body is None else {"json_body": body}
    expect(c(env, "member_a").request("PATCH", f"/api/dependencies/{d}/enrich", **kw), 400,
           "At least one enrichment field is required (displayName, description, impact)")


@pytest.mark.parametrize("member", ["displayName", "description", "impact"])
@pytest.mark.parametrize("value", [5, True, {"a": 1}, ["x"]])
def test_enrich_values_are_strings_or_null(env, member, value):
    d = dep(env)
    expect(c(env, "member_a").patch(f"/api/dependencies/{d}/enrich", {member: value}), 400,
           f"{member} must be a string or null", member)
    assert dep_col(env, d, "updated_at = created_at") == "t"


def test_enrich_writes_present_members_only(env):
    d = dep(env, user_display_name="'old name'", user_description="'old desc'", user_impact="'old impact'",
            contact="'{\"a\":1}'::jsonb", healthy="true")
    r = expect(c(env, "member_a").patch(f"/api/dependencies/{d}/enrich", {"displayName": "New", "impact": None}), 200)
    row = r.json
    assert_rendered(row, DEP_KEYS)
    assert (row["user_display_name"], row["user_description"], row["user_impact"]) == ("New", "old desc", None)
    assert row["contact"] == {"a": 1} and row["healthy"] is True and row["id"] == d
    assert dep_col(env, d, "user_display_name || '|' || user_description || '|' || (user_impact IS NULL)") == \
        "New|old desc|true"
    r = expect(c(env, "admin").patch(f"/api/dependencies/{d}/enrich", {"description": ""}), 200)
    assert r.json["user_description"] == "" and r.json["user_display_name"] == "New"
    assert q(env, f"SELECT count(*) FROM audit_log WHERE resource_id = '{d}'") == "0"


# --------------------------------------------------------------------------
# §5.1 instance overrides


OVERRIDE_VALIDATION = [
    ({}, "At least one of contact_override or impact_override must be provided"),
    ({"other": 1}, "At least one of contact_override or impact_override must be provided"),
    ({"contact_override": 5, "impact_override": 5}, "contact_override must be an object or null"),
    ({"contact_override": "x"}, "contact_override must be an object or null"),
    ({"contact_override": "[1]"}, "contact_override must be an object or null"),
    ({"contact_override": [1]}, "contact_override must be an object or null"),
    ({"contact_override": True}, "contact_override must be an object or null"),
    ({"contact_override": {}, "impact_override": 5}, "impact_override must be a string or null"),
    ({"impact_override": {"a": 1}}, "impact_override must be a string or null"),
]


@pytest.mark.parametrize("body,msg", OVERRIDE_VALIDATION)
def test_override_validation_comes_before_the_guard(env, body, msg):
    d = dep(env)
    for actor in ("loner", "member_a", "lead_a"):
        expect(c(env, actor).put(f"/api/dependencies/{d}/overrides", body), 400, msg)
    expect(c(env, "lead_a").put(f"/api/dependencies/{UNKNOWN}/overrides", body), 400, msg)
    expect(c(env, "anonymous").put(f"/api/dependencies/{d}/overrides", body), *NOT_AUTH)
    assert dep_col(env, d, "updated_at = created_at") == "t"


def test_override_roles(env):
    d = dep(env)
    expect_roles(env, lambda cl: cl.put(f"/api/dependencies/{d}/overrides", {"impact_override": "i"}), {
        "anonymous": NOT_AUTH, "loner": LEAD_ACCESS, "member_b": LEAD_ACCESS, "lead_b": LEAD_ACCESS,
        "member_a": LEAD_ACCESS, "lead_a": 200, "admin": 200})
    expect_roles(env, lambda cl: cl.delete(f"/api/dependencies/{d}/overrides"), {
        "anonymous": NOT_AUTH, "loner": LEAD_ACCESS, "member_b": LEAD_ACCESS, "lead_b": LEAD_ACCESS,
        "member_a": LEAD_ACCESS, "lead_a": 204, "admin": 204})


def test_override_unknown_and_malformed_ids(env):
    for actor in ("lead_a", "admin"):
        for p in path_variants("/api/dependencies/{}/overrides", None):
            expect(c(env, actor).put(p, {"impact_override": "x"}), 404, "Dependency not found")
            expect(c(env, actor).delete(p), 404, "Dependency not found")


def test_override_put_keeps_omitted_members_and_audits(env):
    d = dep(env)
    lead = c(env, "lead_a")
    r = expect(lead.put(f"/api/dependencies/{d}/overrides", {"contact_override": {"email": "a@x"}}), 200)
    assert_rendered(r.json, DEP_KEYS)
    assert r.json["contact_override"] == {"email": "a@x"} and r.json["impact_override"] is None
    # D1: an omitted member keeps its value; a string holding JSON is that JSON (B)
    r = expect(lead.put(f"/api/dependencies/{d}/overrides", {"impact_override": "high"}), 200)
    assert (r.json["contact_override"], r.json["impact_override"]) == ({"email": "a@x"}, "high")
    r = expect(lead.put(f"/api/dependencies/{d}/overrides", {"contact_override": '{"slack": "#x"}'}), 200)
    assert (r.json["contact_override"], r.json["impact_override"]) == ({"slack": "#x"}, "high")
    assert dep_col(env, d, "jsonb_typeof(contact_override)") == "object"
    r = expect(lead.put(f"/api/dependencies/{d}/overrides", {"contact_override": None}), 200)
    assert (r.json["contact_override"], r.json["impact_override"]) == (None, "high")
    rows = audit_rows(env, "dependency_override.updated", d)
    assert [x["details"] for x in rows] == [{"contact_override": {"email": "a@x"}}, {"impact_override": "high"},
                                            {"contact_override": {"slack": "#x"}}, {"contact_override": None}]
    assert {(x["user_id"], x["resource_type"]) for x in rows} == {(env.ids["lead_a"], "dependency")}
    expect(lead.delete(f"/api/dependencies/{d}/overrides"), 204)
    assert dep_col(env, d, "(contact_override IS NULL) AND (impact_override IS NULL)") == "t"
    assert audit_rows(env, "dependency_override.cleared", d) == [
        {"user_id": env.ids["lead_a"], "resource_type": "dependency", "details": None}]


def test_override_refusals_leave_no_audit_row(env):
    d = dep(env)
    c(env, "member_a").put(f"/api/dependencies/{d}/overrides", {"impact_override": "x"})
    c(env, "lead_a").put(f"/api/dependencies/{d}/overrides", {"impact_override": 1})
    c(env, "member_a").delete(f"/api/dependencies/{d}/overrides")
    assert q(env, f"SELECT count(*) FROM audit_log WHERE resource_id = '{d}'") == "0"


def test_override_changes_notify(env):
    d = dep(env)
    with BackgroundTx(env.db.url) as tx:
        tx.run("LISTEN depsera_cache;")
        expect(c(env, "lead_a").put(f"/api/dependencies/{d}/overrides", {"impact_override": "x"}), 200)
        got = notifications(tx)
        assert len(got) == 1 and got[0].startswith(cache_note(f"dependency:{d}")), got
        expect(c(env, "member_a").put(f"/api/dependencies/{d}/overrides", {"impact_override": "x"}), 403)
        expect(c(env, "member_a").patch(f"/api/dependencies/{d}/enrich", {"impact": "x"}), 200)
        assert notifications(tx) == []
        expect(c(env, "lead_a").delete(f"/api/dependencies/{d}/overrides"), 204)
        got = notifications(tx)
        assert len(got) == 1 and got[0].startswith(cache_note(f"dependency:{d}")), got


# --------------------------------------------------------------------------
# §5.3 associations


def assoc(env, d, svc, suggested=False, dismissed=False, type_="other"):
    return q(env, f"INSERT INTO dependency_associations (dependency_id, linked_service_id, association_type, "
                  f"is_auto_suggested, is_dismissed, dismissed_at) VALUES ('{d}', '{svc}', '{type_}', {suggested}, "
                  f"{dismissed}, {'now()' if dismissed else 'NULL'}) RETURNING id")


def assoc_row(env, a):
    out = q(env, f"SELECT row_to_json(a) FROM dependency_associations a WHERE id = '{a}'")
    return json.loads(out) if out else None


def test_association_list(env):
    d, s1, s2 = dep(env), service(env, env.team_b), service(env)
    a1 = assoc(env, d, s1, suggested=True, dismissed=True, type_="database")
    a2 = assoc(env, d, s2)
    assoc(env, dep(env), s1)  # another dependency's row is not listed
    expect(c(env, "anonymous").get(f"/api/dependencies/{d}/associations"), *NOT_AUTH)
    for actor in ("loner", "member_b", "admin"):  # any logged-in user (open-questions C: reads org-wide)
        r = expect(c(env, actor).get(f"/api/dependencies/{d}/associations"), 200)
        assert sorted(x["id"] for x in r.json) == sorted([a1, a2])
    rows = {x["id"]: x for x in r.json}
    for x in rows.values():
        assert_rendered({k: v for k, v in x.items() if k != "linked_service"}, ASSOC_KEYS)
        assert_rendered(x["linked_service"], SERVICE_KEYS)
    assert rows[a1]["is_dismissed"] is True and rows[a1]["is_auto_suggested"] is True
    assert rows[a1]["association_type"] == "database" and rows[a1]["linked_service"]["id"] == s1
    assert rows[a2]["is_dismissed"] is False and rows[a2]["linked_service"]["team_id"] == env.team_a
    assert expect(c(env, "loner").get(f"/api/dependencies/{dep(env)}/associations"), 200).json == []
    for p in path_variants("/api/dependencies/{}/associations", None):
        expect(c(env, "admin").get(p), 404, "Dependency not found")


ASSOC_VALIDATION = [
    ({}, "linked_service_id is required", "linked_service_id"),
    ({"linked_service_id": "", "association_type": "other"}, "linked_service_id is required", "linked_service_id"),
    ({"linked_service_id": None, "association_type": "bogus"}, "linked_service_id is required", "linked_service_id"),
    ({"linked_service_id": UNKNOWN}, "association_type must be one of: api_call, database, message_queue, cache, other",
     "association_type"),
    ({"linked_service_id": UNKNOWN, "association_type": "API_CALL"},
     "association_type must be one of: api_call, database, message_queue, cache, other", "association_type"),
    ({"linked_service_id": UNKNOWN, "association_type": 1},
     "association_type must be one of: api_call, database, message_queue, cache, other", "association_type"),
]


@pytest.mark.parametrize("body,msg,field", ASSOC_VALIDATION)
def test_association_create_validation_first(env, body, msg, field):
    d = dep(env)
    for actor in ("loner", "member_a"):
        expect(c(env, actor).post(f"/api/dependencies/{d}/associations", body), 400, msg, field)
    expect(c(env, "member_a").post(f"/api/dependencies/{UNKNOWN}/associations", body), 400, msg, field)


def test_association_create_checks_in_order(env):
    d = dep(env)
    own = dep_col(env, d, "service_id")
    other = service(env, env.team_b)
    body = {"linked_service_id": other, "association_type": "api_call"}
    for p in path_variants("/api/dependencies/{}/associations", None):
        expect(c(env, "member_a").post(p, body), 404, "Dependency not found")
    expect(c(env, "anonymous").post(f"/api/dependencies/{d}/associations", body), *NOT_AUTH)
    for actor in ("loner", "member_b", "lead_b"):
        expect(c(env, actor).post(f"/api/dependencies/{d}/associations", body), *TEAM_ACCESS)
    # the membership check comes before the linked service's
    expect(c(env, "loner").post(f"/api/dependencies/{d}/associations",
                                {"linked_service_id": UNKNOWN, "association_type": "other"}), *TEAM_ACCESS)
    for bad in (UNKNOWN, 5, True) + MALFORMED:
        expect(c(env, "member_a").post(f"/api/dependencies/{d}/associations",
                                       {"linked_service_id": bad, "association_type": "other"}), 400,
               "Linked service not found")
    expect(c(env, "member_a").post(f"/api/dependencies/{d}/associations",
                                   {"linked_service_id": own, "association_type": "other"}), 400,
           "Cannot link dependency to its own service")
    r = expect(c(env, "member_a").post(f"/api/dependencies/{d}/associations", body), 201)
    row = r.json
    assert_rendered({k: v for k, v in row.items() if k != "linked_service"}, ASSOC_KEYS)
    assert_rendered(row["linked_service"], SERVICE_KEYS)
    assert (row["dependency_id"], row["linked_service_id"], row["association_type"]) == (d, other, "api_call")
    assert row["is_auto_suggested"] is False and row["is_dismissed"] is False and row["linked_service"]["id"] == other
    expect(c(env, "admin").post(f"/api/dependencies/{d}/associations", body), 409, "Association already exists")
    # a suggestion that is not dismissed blocks too
    d2 = dep(env)
    assoc(env, d2, other, suggested=True)
    expect(c(env, "lead_a").post(f"/api/dependencies/{d2}/associations", body), 409, "Association already exists")
    assert q(env, f"SELECT count(*) FROM audit_log WHERE resource_id IN ('{d}', '{d2}')") == "0"


def test_manual_link_replaces_a_dismissed_suggestion(env):
    """open-questions.md A: a dismissed suggestion does not block a manual link; the link replaces it."""
    d, target = dep(env), service(env, env.team_b)
    old = assoc(env, d, target, suggested=True)
    expect(c(env, "member_a").put(f"/api/dependencies/{d}/associations/{old}/dismiss"), 200)
    assert assoc_row(env, old)["dismissed_at"] is not None
    r = expect(c(env, "member_a").post(f"/api/dependencies/{d}/associations",
                                       {"linked_service_id": target, "association_type": "cache"}), 201)
    assert r.json["id"] != old and r.json["is_dismissed"] is False and r.json["is_auto_suggested"] is False
    assert assoc_row(env, old) is None
    new = assoc_row(env, r.json["id"])
    assert (new["association_type"], new["is_dismissed"], new["dismissed_at"]) == ("cache", False, None)
    assert q(env, f"SELECT count(*) FROM dependency_associations WHERE dependency_id = '{d}'") == "1"


def test_association_delete(env):
    d, s1, s2 = dep(env), service(env), service(env, env.team_b)
    assoc(env, d, s1)
    a2 = assoc(env, d, s2, suggested=True, dismissed=True)
    for p in path_variants("/api/dependencies/{}/associations/" + s1, None):
        expect(c(env, "member_a").delete(p), 404, "Dependency not found")
    expect(c(env, "anonymous").delete(f"/api/dependencies/{d}/associations/{s1}"), *NOT_AUTH)
    for actor in ("loner", "lead_b"):
        expect(c(env, actor).delete(f"/api/dependencies/{d}/associations/{s1}"), *TEAM_ACCESS)
    expect(c(env, "loner").delete(f"/api/dependencies/{d}/associations/{UNKNOWN}"), *TEAM_ACCESS)
    for bad in (UNKNOWN, d, a2) + MALFORMED:  # the path names the linked service, not the association
        expect(c(env, "member_a").delete(f"/api/dependencies/{d}/associations/{bad}"), 404, "Association not found")
    expect(c(env, "member_a").delete(f"/api/dependencies/{d}/associations/{s1}"), 204)
    expect(c(env, "admin").delete(f"/api/dependencies/{d}/associations/{s2}"), 204)  # dismissed ones too
    assert q(env, f"SELECT count(*) FROM dependency_associations WHERE dependency_id = '{d}'") == "0"
    expect(c(env, "member_a").delete(f"/api/dependencies/{d}/associations/{s1}"), 404, "Association not found")


@pytest.mark.parametrize("action", ["confirm", "dismiss"])
def test_association_state_checks(env, action):
    d, s = dep(env), service(env, env.team_b)
    a = assoc(env, d, s, suggested=True)
    foreign = assoc(env, dep(env), s, suggested=True)
    for p in path_variants("/api/dependencies/{}/associations/" + a + "/" + action, None):
        expect(c(env, "member_a").put(p), 404, "Dependency not found")
    expect(c(env, "anonymous").put(f"/api/dependencies/{d}/associations/{a}/{action}"), *NOT_AUTH)
    for actor in ("loner", "member_b", "lead_b"):
        expect(c(env, actor).put(f"/api/dependencies/{d}/associations/{a}/{action}"), *TEAM_ACCESS)
    expect(c(env, "loner").put(f"/api/dependencies/{d}/associations/{UNKNOWN}/{action}"), *TEAM_ACCESS)
    for bad in (UNKNOWN, foreign) + MALFORMED:
        expect(c(env, "member_a").put(f"/api/dependencies/{d}/associations/{bad}/{action}"), 404,
               "Association not found")
    assert assoc_row(env, a)["is_auto_suggested"] is True and assoc_row(env, a)["is_dismissed"] is False
    r = expect(c(env, "member_a").put(f"/api/dependencies/{d}/associations/{a}/{action}"), 200)
    assert r.json == {"success": True}


def test_confirm_and_dismiss(env):
    d, s = dep(env), service(env, env.team_b)
    a = assoc(env, d, s, suggested=True)
    expect(c(env, "lead_a").put(f"/api/dependencies/{d}/associations/{a}/dismiss"), 200)
    row = assoc_row(env, a)
    assert row["is_dismissed"] is True and row["is_auto_suggested"] is True and row["dismissed_at"] is not None
    first = row["dismissed_at"]
    expect(c(env, "admin").put(f"/api/dependencies/{d}/associations/{a}/dismiss"), 200)
    assert assoc_row(env, a)["dismissed_at"] == first  # the pruner counts from the first dismissal
    # confirming makes it a link: no longer a suggestion, dismissed or not
    expect(c(env, "member_a").put(f"/api/dependencies/{d}/associations/{a}/confirm"), 200)
    row = assoc_row(env, a)
    assert (row["is_auto_suggested"], row["is_dismissed"], row["dismissed_at"]) == (False, False, None)
    # confirming a manual link changes nothing
    expect(c(env, "member_a").put(f"/api/dependencies/{d}/associations/{a}/confirm"), 200)
    assert assoc_row(env, a) == row


def test_association_changes_notify(env):
    d, s = dep(env), service(env, env.team_b)
    with BackgroundTx(env.db.url) as tx:
        tx.run("LISTEN depsera_cache;")
        r = expect(c(env, "member_a").post(f"/api/dependencies/{d}/associations",
                                           {"linked_service_id": s, "association_type": "other"}), 201)
        a = r.json["id"]
        for call in (lambda: c(env, "member_a").put(f"/api/dependencies/{d}/associations/{a}/dismiss"),
                     lambda: c(env, "member_a").put(f"/api/dependencies/{d}/associations/{a}/confirm")):
            expect(call(), 200)
        expect(c(env, "member_a").delete(f"/api/dependencies/{d}/associations/{s}"), 204)
        got = notifications(tx)
        assert len(got) == 4 and all(g.startswith(cache_note(f"dependency:{d}")) for g in got), got
        expect(c(env, "loner").post(f"/api/dependencies/{d}/associations",
                                    {"linked_service_id": s, "association_type": "other"}), 403)
        expect(c(env, "member_a").delete(f"/api/dependencies/{d}/associations/{s}"), 404)
        assert notifications(tx) == []


# --------------------------------------------------------------------------
# §5.4 aliases


def alias(env, name, canonical):
    return q(env, f"INSERT INTO dependency_aliases (alias, canonical_name) VALUES ({sql_str(name)}, "
                  f"{sql_str(canonical)}) RETURNING id")


def test_alias_lists(env):
    tag = uniq("ls")
    ids = [alias(env, f"{tag}-b1", f"{tag}-B"), alias(env, f"{tag}-a2", f"{tag}-A"), alias(env, f"{tag}-a1", f"{tag}-A")]
    expect(c(env, "anonymous").get("/api/aliases"), *NOT_AUTH)
    expect(c(env, "anonymous").get("/api/aliases/canonical-names"), *NOT_AUTH)
    r = expect(c(env, "loner").get("/api/aliases"), 200)
    mine = [x for x in r.json if x["alias"].startswith(tag)]
    assert [x["alias"] for x in mine] == [f"{tag}-a1", f"{tag}-a2", f"{tag}-b1"]
    assert [x["id"] for x in mine] == [ids[2], ids[1], ids[0]]
    for x in mine:
        assert_rendered(x, ALIAS_KEYS)
        assert x["manifest_team_id"] is None
    all_rows = [(x["canonical_name"], x["alias"]) for x in r.json]
    assert all_rows == sorted(all_rows, key=lambda t: (t[0].encode(), t[1].encode()))
    names = expect(c(env, "member_b").get("/api/aliases/canonical-names"), 200).json
    assert [n for n in names if n.startswith(tag)] == [f"{tag}-A", f"{tag}-B"]
    assert names == sorted(set(names), key=str.encode)


ALIAS_VALIDATION = [
    ({}, "alias is required and must be a string"),
    ({"alias": 5, "canonical_name": "c"}, "alias is required and must be a string"),
    ({"alias": "", "canonical_name": 5}, "alias is required and must be a string"),
    ({"alias": "  \t", "canonical_name": "c"}, "alias is required and must be a string"),
    ({"alias": "x"}, "canonical_name is required and must be a string"),
    ({"alias": "x", "canonical_name": ["c"]}, "canonical_name is required and must be a string"),
    ({"alias": "x", "canonical_name": " "}, "canonical_name is required and must be a string"),
]


@pytest.mark.parametrize("body,msg", ALIAS_VALIDATION)
def test_alias_create_validation_first(env, body, msg):
    for actor in ("loner", "admin"):
        expect(c(env, actor).post("/api/aliases", body), 400, msg)


def test_alias_create_roles(env):
    name = uniq("reported")
    dep(env, name=name)  # reported by a service of team A
    bodies = iter({"alias": n, "canonical_name": "canon"} for n in [name] * 10)
    expect_roles(env, lambda cl: cl.post("/api/aliases", next(bodies)), {
        "anonymous": NOT_AUTH, "loner": ALIAS_FORBIDDEN, "member_b": ALIAS_FORBIDDEN, "lead_b": ALIAS_FORBIDDEN,
        "member_a": ALIAS_FORBIDDEN, "lead_a": 201})
    expect(c(env, "admin").post("/api/aliases", {"alias": name, "canonical_name": "x"}), 409,
           f'Alias "{name}" already exists')
    # an admin may alias any name; a lead only names their teams report (exactly: case matters)
    expect(c(env, "admin").post("/api/aliases", {"alias": uniq("nobody"), "canonical_name": "x"}), 201)
    expect(c(env, "lead_a").post("/api/aliases", {"alias": name.upper(), "canonical_name": "x"}), *ALIAS_FORBIDDEN)


def test_alias_create_trims_and_applies_at_once(env):
    name = uniq("pg")
    d1, d2 = dep(env, name=name), dep(env, svc=service(env, env.team_b), name=name)
    other = dep(env, name=name.upper())
    r = expect(c(env, "lead_a").post("/api/aliases", {"alias": f"  {name}\n", "canonical_name": "\tPostgres "}), 201)
    assert_rendered(r.json, ALIAS_KEYS)
    assert (r.json["alias"], r.json["canonical_name"]) == (name, "Postgres")
    # D24: every dependency reporting the alias carries the canonical name now, not at its next upsert
    assert [dep_col(env, x, "canonical_name") for x in (d1, d2, other)] == ["Postgres", "Postgres", ""]
    expect(c(env, "lead_a").post("/api/aliases", {"alias": name, "canonical_name": "x"}), 409,
           f'Alias "{name}" already exists')
    assert q(env, f"SELECT count(*) FROM audit_log WHERE resource_id = '{r.json['id']}'") == "0"


def test_alias_update_and_delete(env):
    name = uniq("redis")
    d = dep(env, name=name, canonical="Old")
    a = alias(env, name, "Old")
    foreign = alias(env, uniq("unreported"), "X")
    # PUT: canonical_name first, then 404, then 403
    expect(c(env, "loner").put(f"/api/aliases/{UNKNOWN}", {"canonical_name": 5}), 400,
           "canonical_name is required and must be a string")
    expect(c(env, "loner").put(f"/api/aliases/{a}", {}), 400, "canonical_name is required and must be a string")
    for bad in (UNKNOWN,) + MALFORMED:
        expect(c(env, "loner").put(f"/api/aliases/{bad}", {"canonical_name": "c"}), 404, "Alias not found")
        expect(c(env, "loner").delete(f"/api/aliases/{bad}"), 404, "Alias not found")
    expect(c(env, "anonymous").put(f"/api/aliases/{a}", {"canonical_name": "c"}), *NOT_AUTH)
    for actor in ("loner", "member_a", "lead_b", "member_b"):
        expect(c(env, actor).put(f"/api/aliases/{a}", {"canonical_name": "c"}), *ALIAS_FORBIDDEN)
        expect(c(env, actor).delete(f"/api/aliases/{a}"), *ALIAS_FORBIDDEN)
    expect(c(env, "lead_a").put(f"/api/aliases/{foreign}", {"canonical_name": "c"}), *ALIAS_FORBIDDEN)
    r = expect(c(env, "lead_a").put(f"/api/aliases/{a}", {"canonical_name": " New "}), 200)
    assert_rendered(r.json, ALIAS_KEYS)
    assert (r.json["id"], r.json["alias"], r.json["canonical_name"]) == (a, name, "New")
    assert dep_col(env, d, "canonical_name") == "New"
    expect(c(env, "admin").put(f"/api/aliases/{foreign}", {"canonical_name": "Y"}), 200)
    expect(c(env, "lead_a").delete(f"/api/aliases/{a}"), 204)
    assert dep_col(env, d, "canonical_name IS NULL") == "t"  # as the next upsert would leave it
    expect(c(env, "lead_a").delete(f"/api/aliases/{a}"), 404, "Alias not found")
    expect(c(env, "admin").delete(f"/api/aliases/{foreign}"), 204)


def test_alias_changes_notify(env):
    name = uniq("n")
    dep(env, name=name)
    with BackgroundTx(env.db.url) as tx:
        tx.run("LISTEN depsera_cache;")
        a = expect(c(env, "lead_a").post("/api/aliases", {"alias": name, "canonical_name": "c"}), 201).json["id"]
        expect(c(env, "lead_a").put(f"/api/aliases/{a}", {"canonical_name": "d"}), 200)
        expect(c(env, "lead_a").delete(f"/api/aliases/{a}"), 204)
        got = notifications(tx)
        assert len(got) == 3 and all(g.startswith(cache_note(f"alias:{a}")) for g in got), got
        expect(c(env, "lead_b").post("/api/aliases", {"alias": name, "canonical_name": "c"}), 403)
        assert notifications(tx) == []


# --------------------------------------------------------------------------
# §5.5 canonical overrides


def override(env, name, team=None, contact=None, impact=None):
    return q(env, f"INSERT INTO dependency_canonical_overrides (canonical_name, team_id, contact_override, "
                  f"impact_override) VALUES ({sql_str(name)}, {sql_str(team)}, "
                  f"{sql_str(json.dumps(contact)) + '::jsonb' if contact is not None else 'NULL'}, {sql_str(impact)}) "
                  f"RETURNING id")


def co_path(name, team=None):
    return f"/api/canonical-overrides/{name}" + (f"?team_id={team}" if team else "")


def test_canonical_override_reads(env):
    name = uniq("Canon")
    g = override(env, name, contact={"a": 1}, impact="global")
    ta = override(env, name, team=env.team_a, impact="team a")
    tb = override(env, uniq("Other"), team=env.team_b)
    expect(c(env, "anonymous").get("/api/canonical-overrides"), *NOT_AUTH)
    expect(c(env, "anonymous").get(co_path(name)), *NOT_AUTH)
    every = expect(c(env, "loner").get("/api/canonical-overrides"), 200).json
    assert {g, ta, tb} <= {x["id"] for x in every}
    assert [x["canonical_name"] for x in every] == sorted((x["canonical_name"] for x in every), key=str.encode)
    mine = [x for x in every if x["canonical_name"] == name]
    assert [x["id"] for x in mine] == [g, ta]
    for x in every:
        assert_rendered(x, CO_KEYS)
    assert mine[0]["contact_override"] == {"a": 1} and mine[0]["manifest_managed"] is False
    team_rows = expect(c(env, "loner").get(f"/api/canonical-overrides?team_id={env.team_a}"), 200).json
    assert ta in [x["id"] for x in team_rows] and all(x["team_id"] == env.team_a for x in team_rows)
    for bad in (UNKNOWN,) + MALFORMED:
        assert expect(c(env, "admin").get(f"/api/canonical-overrides?team_id={bad}"), 200).json == []
    assert expect(c(env, "member_b").get(co_path(name)), 200).json["id"] == g
    assert expect(c(env, "member_b").get(co_path(name, env.team_a)), 200).json["id"] == ta
    for path in (co_path(name, env.team_b), co_path(uniq("none")), co_path(name, UNKNOWN)) + \
            tuple(co_path(name, bad) for bad in MALFORMED):
        expect(c(env, "loner").get(path), 404, "Canonical override not found")


@pytest.mark.parametrize("body,msg,field", [(b, m, None) for b, m in OVERRIDE_VALIDATION] + [
    ({"impact_override": "x", "team_id": 5}, "team_id must be a string", "team_id"),
    ({"impact_override": "x", "team_id": {"id": 1}}, "team_id must be a string", "team_id"),
    ({"impact_override": 5, "team_id": 5}, "impact_override must be a string or null", None),
])
def test_canonical_override_validation_first(env, body, msg, field):
    for actor in ("loner", "admin"):
        expect(c(env, actor).put(co_path(uniq("v")), body), 400, msg, field)


def test_global_canonical_override_roles(env):
    name = uniq("Reported")
    dep(env, canonical=name)  # team A reports it
    expect_roles(env, lambda cl: cl.put(co_path(name), {"impact_override": "i"}), {
        "anonymous": NOT_AUTH, "loner": REPORTING_LEAD, "member_b": REPORTING_LEAD, "lead_b": REPORTING_LEAD,
        "member_a": REPORTING_LEAD, "lead_a": 200, "admin": 200})
    expect(c(env, "admin").put(co_path(uniq("unreported")), {"impact_override": "i"}), 200)
    expect(c(env, "lead_a").put(co_path(name.lower()), {"impact_override": "i"}), *REPORTING_LEAD)
    for actor, want in (("lead_b", REPORTING_LEAD), ("member_a", REPORTING_LEAD), ("loner", REPORTING_LEAD),
                        ("anonymous", NOT_AUTH)):
        expect(c(env, actor).delete(co_path(name)), *want)
    expect(c(env, "lead_a").delete(co_path(name)), 204)
    expect(c(env, "lead_a").delete(co_path(name)), 404, "Canonical override not found")


def test_team_canonical_override_roles(env):
    name = uniq("Scoped")  # nobody reports it: a team's lead still manages the team's own row
    expect_roles(env, lambda cl: cl.put(co_path(name), {"impact_override": "i", "team_id": env.team_b}), {
        "anonymous": NOT_AUTH, "loner": LEAD_ACCESS, "member_b": LEAD_ACCESS, "lead_a": LEAD_ACCESS,
        "member_a": LEAD_ACCESS, "lead_b": 200, "admin": 200})
    for bad in (UNKNOWN,) + MALFORMED[:2]:
        expect(c(env, "admin").put(co_path(name), {"impact_override": "i", "team_id": bad}), 400, "Team not found",
               "team_id")
        expect(c(env, "lead_b").put(co_path(name), {"impact_override": "i", "team_id": bad}), *LEAD_ACCESS)
    # an empty or null team_id is the global row
    expect(c(env, "lead_b").put(co_path(name), {"impact_override": "i", "team_id": ""}), *REPORTING_LEAD)
    expect(c(env, "lead_b").put(co_path(name), {"impact_override": "i", "team_id": None}), *REPORTING_LEAD)
    for actor, want in (("lead_a", LEAD_ACCESS), ("member_b", LEAD_ACCESS), ("anonymous", NOT_AUTH)):
        expect(c(env, actor).delete(co_path(name, env.team_b)), *want)
    expect(c(env, "lead_b").delete(co_path(name)), *REPORTING_LEAD)  # without team_id: the global row's rule
    expect(c(env, "lead_b").delete(co_path(name, env.team_b)), 204)
    expect(c(env, "lead_b").delete(co_path(name, env.team_b)), 404, "Canonical override not found")
    expect(c(env, "admin").delete(co_path(name, "not-a-uuid")), 404, "Canonical override not found")
    expect(c(env, "lead_b").delete(co_path(name, "not-a-uuid")), *LEAD_ACCESS)


def test_canonical_override_upsert_keeps_omitted_members_and_audits(env):
    name = uniq("Kafka")
    dep(env, canonical=name)
    lead = c(env, "lead_a")
    r = expect(lead.put(co_path(name), {"contact_override": {"team": "x"}}), 200)
    row = r.json
    assert_rendered(row, CO_KEYS)
    assert (row["canonical_name"], row["team_id"], row["contact_override"], row["impact_override"], row["updated_by"]) == \
        (name, None, {"team": "x"}, None, env.ids["lead_a"])
    r = expect(c(env, "admin").put(co_path(name), {"impact_override": "critical"}), 200)
    assert (r.json["id"], r.json["contact_override"], r.json["impact_override"], r.json["updated_by"]) == \
        (row["id"], {"team": "x"}, "critical", env.admin_id)
    r = expect(lead.put(co_path(name), {"contact_override": '{"email": "k@x"}', "impact_override": None}), 200)
    assert (r.json["contact_override"], r.json["impact_override"]) == ({"email": "k@x"}, None)
    t = expect(lead.put(co_path(name), {"impact_override": "team", "team_id": env.team_a}), 200).json
    assert t["id"] != row["id"] and t["team_id"] == env.team_a and t["contact_override"] is None
    assert q(env, f"SELECT count(*) FROM dependency_canonical_overrides WHERE canonical_name = {sql_str(name)}") == "2"
    rows = audit_rows(env, "canonical_override.upserted", name)
    assert [(x["user_id"], x["resource_type"]) for x in rows] == [
        (env.ids["lead_a"], "canonical_override"), (env.admin_id, "canonical_override"),
        (env.ids["lead_a"], "canonical_override"), (env.ids["lead_a"], "canonical_override")]
    assert [x["details"] for x in rows] == [
        {"canonical_name": name, "contact_override": {"team": "x"}},
        {"canonical_name": name, "impact_override": "critical"},
        {"canonical_name": name, "contact_override": {"email": "k@x"}, "impact_override": None},
        {"canonical_name": name, "team_id": env.team_a, "impact_override": "team"}]
    expect(lead.delete(co_path(name, env.team_a)), 204)
    expect(lead.delete(co_path(name)), 204)
    assert [x["details"] for x in audit_rows(env, "canonical_override.deleted", name)] == [
        {"canonical_name": name, "team_id": env.team_a}, {"canonical_name": name, "team_id": None}]
    c(env, "lead_b").put(co_path(name), {"impact_override": "x"})
    c(env, "lead_a").delete(co_path(name))
    assert len(audit_rows(env, "canonical_override.upserted", name)) == 4
    assert len(audit_rows(env, "canonical_override.deleted", name)) == 2


def test_canonical_override_name_is_taken_verbatim(env):
    name = "Name with spaces/é"
    r = expect(c(env, "admin").put("/api/canonical-overrides/Name%20with%20spaces%2F%C3%A9", {"impact_override": "x"}),
               200)
    assert r.json["canonical_name"] == name
    expect(c(env, "admin").delete("/api/canonical-overrides/Name%20with%20spaces%2F%C3%A9"), 204)


def upsert_and_delete_notify(env, path, body, what):
    """An admin's PUT and DELETE of `path` each send NOTIFY depsera_cache '<what>:<row id>'; a refused PUT and
    a DELETE of nothing send none."""
    with BackgroundTx(env.db.url) as tx:
        tx.run("LISTEN depsera_cache;")
        rid = expect(c(env, "admin").put(path, body), 200).json["id"]
        expect(c(env, "admin").delete(path), 204)
        got = notifications(tx)
        assert len(got) == 2 and all(g.startswith(cache_note(f"{what}:{rid}")) for g in got), got
        expect(c(env, "lead_b").put(path, body), 403)
        expect(c(env, "admin").delete(path), 404)
        assert notifications(tx) == []


def test_canonical_override_changes_notify(env):
    upsert_and_delete_notify(env, co_path(uniq("N")), {"impact_override": "x"}, "canonical_override")


# --------------------------------------------------------------------------
# §5.6 external node enrichment


def node_path(name):
    return f"/api/external-nodes/{name}"


def test_external_node_roles(env):
    """open-questions.md C: a lead of a team depending on the node (its group key: lower(trim(canonical ?? name))),
    or an admin."""
    name = uniq("Stripe")
    dep(env, name=f" {name.upper()} ")  # team A reports it under another spelling, without a canonical name
    expect_roles(env, lambda cl: cl.put(node_path(name), {"displayName": "Stripe"}), {
        "anonymous": NOT_AUTH, "loner": REPORTING_LEAD, "member_b": REPORTING_LEAD, "lead_b": REPORTING_LEAD,
        "member_a": REPORTING_LEAD, "lead_a": 200, "admin": 200})
    canon = uniq("Canon")
    dep(env, name=uniq("raw"), canonical=canon)
    expect(c(env, "lead_a").put(node_path(canon), {}), 200)
    expect(c(env, "lead_b").put(node_path(uniq("nobody")), {}), *REPORTING_LEAD)
    expect(c(env, "admin").put(node_path(uniq("nobody")), {}), 200)
    for actor, want in (("anonymous", NOT_AUTH), ("loner", REPORTING_LEAD), ("lead_b", REPORTING_LEAD),
                        ("member_a", REPORTING_LEAD)):
        expect(c(env, actor).delete(node_path(name)), *want)
    expect(c(env, "lead_a").delete(node_path(name)), 204)
    expect(c(env, "lead_a").delete(node_path(name)), 404, "External node enrichment not found")
    expect(c(env, "admin").delete(node_path(uniq("never"))), 404, "External node enrichment not found")


@pytest.mark.parametrize("member", ["displayName", "description", "impact", "serviceType"])
def test_external_node_text_members(env, member):
    expect(c(env, "admin").put(node_path(uniq("n")), {member: 5}), 400, f"{member} must be a string or null", member)
    expect(c(env, "loner").put(node_path(uniq("n")), {member: ["x"]}), 400, f"{member} must be a string or null", member)


def test_external_node_upsert_keeps_omitted_members(env):
    name = uniq("Ext")
    admin = c(env, "admin")
    r = expect(admin.put(node_path(name), {"displayName": "D", "description": "desc", "impact": "i",
                                           "contact": {"email": "e@x"}, "serviceType": "api"}), 200)
    row = r.json
    assert_rendered(row, NODE_KEYS)
    assert (row["canonical_name"], row["display_name"], row["description"], row["impact"], row["contact"],
            row["service_type"], row["updated_by"]) == (name, "D", "desc", "i", {"email": "e@x"}, "api", env.admin_id)
    # D1: omitted members are kept, null clears
    r = expect(admin.put(node_path(name), {"description": None}), 200)
    assert (r.json["id"], r.json["display_name"], r.json["description"], r.json["contact"], r.json["service_type"]) == \
        (row["id"], "D", None, {"email": "e@x"}, "api")
    # contact: a string holding JSON is that JSON; another string is a JSON string; a falsy value clears
    for given, stored in (('{"slack": "#s"}', {"slack": "#s"}), ("call Bob", "call Bob"), ([1, 2], [1, 2]),
                          (7, 7), ("", None), (0, None), (False, None), (None, None)):
        assert expect(admin.put(node_path(name), {"contact": given}), 200).json["contact"] == stored, given
    listed = expect(c(env, "loner").get("/api/external-nodes"), 200).json
    mine = [x for x in listed if x["id"] == row["id"]]
    assert len(mine) == 1 and mine[0]["display_name"] == "D" and mine[0]["contact"] is None
    assert [x["canonical_name"] for x in listed] == sorted((x["canonical_name"] for x in listed), key=str.encode)
    expect(c(env, "anonymous").get("/api/external-nodes"), *NOT_AUTH)
    assert q(env, f"SELECT count(*) FROM audit_log WHERE resource_id = {sql_str(name)}") == "0"


def test_external_node_changes_notify(env):
    upsert_and_delete_notify(env, node_path(uniq("N")), {"impact": "x"}, "external_node")
