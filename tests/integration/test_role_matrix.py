"""The role matrix: every mutating /api endpoint × every kind of caller, from one table.

A new mutating endpoint must get a row here (test_every_mutating_route_has_a_row checks the route
table of the binary's source against ROWS). Each call gets fresh targets from its row's setup, so the
order of callers does not matter and a success does not disturb the next call.
"""
import itertools
import os
import re

import pytest

from conftest import REPO, ApiClient, add_user, psql

PASSWORD = "matrix-password-1"
ACTORS = ("anonymous", "member_a", "lead_a", "member_b", "lead_b", "admin")
uniq = itertools.count()


def _team(db, name):
    return psql(db, f"INSERT INTO teams (name, key) VALUES ('{name}', '{name.lower()}') RETURNING id").splitlines()[0]


def _member(db, team, user, role):
    psql(db, f"INSERT INTO team_members (team_id, user_id, role) VALUES ('{team}', '{user}', '{role}')")


def _fresh_user(ctx, active=True):
    return add_user(ctx["db"], f"victim{next(uniq)}@example.com", active=active, password_of="admin@example.com")


def _fresh_team(ctx):
    return _team(ctx["db"], f"T{next(uniq)}")


def _fresh_member(ctx):
    team, user = _fresh_team(ctx), _fresh_user(ctx)
    _member(ctx["db"], team, user, "member")
    return team, user


ADMIN_ONLY = {"anonymous": 401, "member_a": 403, "lead_a": 403, "member_b": 403, "lead_b": 403}
ANY_USER = {"anonymous": 401, "member_a": 200, "lead_a": 200, "member_b": 200, "lead_b": 200, "admin": 200}


def admin_only(ok):
    return dict(ADMIN_ONLY, admin=ok)


def _fresh_service(ctx):
    return psql(ctx["db"], f"INSERT INTO services (name, team_id, health_endpoint) VALUES "
                           f"('svc{next(uniq)}', '{ctx['team_a']}', 'https://example.com/health') RETURNING id").splitlines()[0]


def _fresh_polled_service(ctx):
    """A service whose poll fails at once: its URL is refused by the SSRF rules at connect time."""
    return psql(ctx["db"], f"INSERT INTO services (name, team_id, health_endpoint) VALUES "
                           f"('svc{next(uniq)}', '{ctx['team_a']}', 'http://127.0.0.1:1/health') RETURNING id").splitlines()[0]


def _fresh_key(ctx):
    n = next(uniq)
    return psql(ctx["db"], f"INSERT INTO team_api_keys (team_id, name, key_hash, key_prefix) VALUES "
                           f"('{ctx['team_a']}', 'k{n}', md5('{n}') || md5('{n}x'), 'dps_0000') RETURNING id").splitlines()[0]


def _fresh_dep(ctx, name=None, canonical=None):
    """A dependency of a new service of team A; its id."""
    name = name or f"dep{next(uniq)}"
    canon = "NULL" if canonical is None else f"'{canonical}'"
    return psql(ctx["db"], f"INSERT INTO dependencies (service_id, name, canonical_name) VALUES "
                           f"('{_fresh_service(ctx)}', '{name}', {canon}) RETURNING id").splitlines()[0]


def _reported_name(ctx, canonical=False):
    """A name that only team A reports: as a dependency's name, or (canonical) as its canonical_name."""
    name = f"reported{next(uniq)}"
    _fresh_dep(ctx, canonical=name) if canonical else _fresh_dep(ctx, name=name)
    return name


def _fresh_association(ctx, suggested=False):
    """(dependency of team A, service of team B linked from it, association id)."""
    dep, svc = _fresh_dep(ctx), psql(ctx["db"], f"INSERT INTO services (name, team_id, health_endpoint) VALUES "
                                                f"('svc{next(uniq)}', '{ctx['team_b']}', 'https://example.com/h') "
                                                f"RETURNING id").splitlines()[0]
    aid = psql(ctx["db"], f"INSERT INTO dependency_associations (dependency_id, linked_service_id, is_auto_suggested) "
                          f"VALUES ('{dep}', '{svc}', {str(suggested).lower()}) RETURNING id").splitlines()[0]
    return dep, svc, aid


def _fresh_alias(ctx):
    return psql(ctx["db"], f"INSERT INTO dependency_aliases (alias, canonical_name) VALUES "
                           f"('{_reported_name(ctx)}', 'canon') RETURNING id").splitlines()[0]


def _fresh_canonical_override(ctx):
    name = _reported_name(ctx, canonical=True)
    psql(ctx["db"], f"INSERT INTO dependency_canonical_overrides (canonical_name, impact_override) VALUES ('{name}', 'x')")
    return name


def _fresh_node(ctx):
    name = _reported_name(ctx)
    psql(ctx["db"], f"INSERT INTO external_node_enrichment (canonical_name) VALUES ('{name}')")
    return name


def members_a(ok):
    """Members and leads of team A (the dependency's team) and admins."""
    return dict(lead_a_only(ok), member_a=ok)


def lead_a_only(ok):
    """Leads of team A (the service's team) and admins."""
    return {"anonymous": 401, "member_a": 403, "lead_a": ok, "member_b": 403, "lead_b": 403, "admin": ok}


# (name, method, path builder(ctx) -> path, body builder(ctx) -> json, expected status per actor)
ROWS = [
    ("create user", "POST", lambda c: "/api/users",
     lambda c: {"email": f"new{next(uniq)}@example.com", "name": "n", "password": PASSWORD}, admin_only(201)),
    ("change role", "PUT", lambda c: f"/api/users/{_fresh_user(c)}/role", lambda c: {"role": "admin"}, admin_only(200)),
    ("reset password", "PUT", lambda c: f"/api/users/{_fresh_user(c)}/password", lambda c: {"password": PASSWORD},
     admin_only(200)),
    ("reactivate user", "POST", lambda c: f"/api/users/{_fresh_user(c, active=False)}/reactivate", lambda c: None,
     admin_only(200)),
    ("deactivate user", "DELETE", lambda c: f"/api/users/{_fresh_user(c)}", lambda c: None, admin_only(204)),
    ("create team", "POST", lambda c: "/api/teams",
     lambda c: {"name": f"Team {next(uniq)}", "key": f"team-{next(uniq)}"}, admin_only(201)),
    ("update team", "PUT", lambda c: f"/api/teams/{_fresh_team(c)}", lambda c: {"description": "d"}, admin_only(200)),
    ("delete team", "DELETE", lambda c: f"/api/teams/{_fresh_team(c)}", lambda c: None, admin_only(204)),
    ("add member", "POST", lambda c: f"/api/teams/{_fresh_team(c)}/members",
     lambda c: {"user_id": _fresh_user(c), "role": "member"}, admin_only(201)),
    ("change member role", "PUT", lambda c: "/api/teams/{}/members/{}".format(*_fresh_member(c)),
     lambda c: {"role": "lead"}, admin_only(200)),
    ("remove member", "DELETE", lambda c: "/api/teams/{}/members/{}".format(*_fresh_member(c)), lambda c: None,
     admin_only(204)),
    ("update settings", "PUT", lambda c: "/api/admin/settings", lambda c: {"alert_cooldown_minutes": 7},
     admin_only(200)),
    ("update span retention", "PUT", lambda c: "/api/admin/settings/span-retention", lambda c: {"days": 9},
     admin_only(200)),
    ("create service", "POST", lambda c: "/api/services",
     lambda c: {"name": f"svc{next(uniq)}", "team_id": c["team_a"], "health_endpoint": "https://example.com/health"},
     lead_a_only(201)),
    ("update service", "PUT", lambda c: f"/api/services/{_fresh_service(c)}", lambda c: {"name": "renamed"},
     lead_a_only(200)),
    ("move service", "PUT", lambda c: f"/api/services/{_fresh_service(c)}", lambda c: {"team_id": c["team_b"]},
     dict(lead_a_only(403), admin=200)),
    ("delete service", "DELETE", lambda c: f"/api/services/{_fresh_service(c)}", lambda c: None, lead_a_only(204)),
    ("create api key", "POST", lambda c: f"/api/teams/{c['team_a']}/api-keys", lambda c: {"name": f"k{next(uniq)}"},
     lead_a_only(201)),
    ("revoke api key", "DELETE", lambda c: f"/api/teams/{c['team_a']}/api-keys/{_fresh_key(c)}", lambda c: None,
     lead_a_only(204)),
    ("team key rate limit", "PATCH", lambda c: f"/api/teams/{c['team_a']}/api-keys/{_fresh_key(c)}/rate-limit",
     lambda c: {"rate_limit_rpm": 100}, lead_a_only(200)),
    ("admin key rate limit", "PATCH", lambda c: f"/api/admin/api-keys/{_fresh_key(c)}/rate-limit",
     lambda c: {"rate_limit_rpm": 0, "admin_locked": True}, admin_only(200)),
    # reads of usage and OTLP stats: scoped like the mutations of the same resources
    ("team key usage", "GET", lambda c: f"/api/teams/{c['team_a']}/api-keys/{_fresh_key(c)}/usage", lambda c: None,
     lead_a_only(200)),
    ("admin key usage", "GET", lambda c: f"/api/admin/api-keys/{_fresh_key(c)}/usage", lambda c: None, admin_only(200)),
    ("admin otlp usage", "GET", lambda c: "/api/admin/otlp-usage", lambda c: None, admin_only(200)),
    ("team otlp stats", "GET", lambda c: f"/api/teams/{c['team_a']}/otlp-stats", lambda c: None,
     dict(lead_a_only(200), member_a=200)),
    ("admin otlp stats", "GET", lambda c: "/api/admin/otlp-stats", lambda c: None, admin_only(200)),
    # leads of any team and admins; the body fails the first check after the guard (nothing fetched)
    ("test schema", "POST", lambda c: "/api/services/test-schema", lambda c: {"format": "otlp"},
     {"anonymous": 401, "member_a": 403, "lead_a": 400, "member_b": 403, "lead_b": 400, "admin": 400}),
    # members of the service's team and admins; answered with the poll's outcome
    ("manual poll", "POST", lambda c: f"/api/services/{_fresh_polled_service(c)}/poll", lambda c: None,
     {"anonymous": 401, "member_a": 200, "lead_a": 200, "member_b": 403, "lead_b": 403, "admin": 200}),
    # history reads are org-wide (open-questions C): any session
    ("poll history", "GET", lambda c: f"/api/services/{_fresh_service(c)}/poll-history", lambda c: None,
     {"anonymous": 401, "member_a": 200, "lead_a": 200, "member_b": 200, "lead_b": 200, "admin": 200}),
    # curation (graph-and-api.md §5; open-questions C for external nodes)
    ("enrich dependency", "PATCH", lambda c: f"/api/dependencies/{_fresh_dep(c)}/enrich", lambda c: {"displayName": "d"},
     members_a(200)),
    ("set dependency overrides", "PUT", lambda c: f"/api/dependencies/{_fresh_dep(c)}/overrides",
     lambda c: {"impact_override": "i"}, lead_a_only(200)),
    ("clear dependency overrides", "DELETE", lambda c: f"/api/dependencies/{_fresh_dep(c)}/overrides", lambda c: None,
     lead_a_only(204)),
    ("create association", "POST", lambda c: f"/api/dependencies/{_fresh_dep(c)}/associations",
     lambda c: {"linked_service_id": _fresh_service(c), "association_type": "api_call"}, members_a(201)),
    ("delete association", "DELETE", lambda c: "/api/dependencies/{}/associations/{}".format(*_fresh_association(c)[:2]),
     lambda c: None, members_a(204)),
    ("confirm association", "PUT",
     lambda c: "/api/dependencies/{0}/associations/{2}/confirm".format(*_fresh_association(c, suggested=True)),
     lambda c: None, members_a(200)),
    ("dismiss association", "PUT",
     lambda c: "/api/dependencies/{0}/associations/{2}/dismiss".format(*_fresh_association(c, suggested=True)),
     lambda c: None, members_a(200)),
    ("create alias", "POST", lambda c: "/api/aliases", lambda c: {"alias": _reported_name(c), "canonical_name": "c"},
     lead_a_only(201)),
    ("update alias", "PUT", lambda c: f"/api/aliases/{_fresh_alias(c)}", lambda c: {"canonical_name": "c2"},
     lead_a_only(200)),
    ("delete alias", "DELETE", lambda c: f"/api/aliases/{_fresh_alias(c)}", lambda c: None, lead_a_only(204)),
    ("upsert canonical override", "PUT", lambda c: f"/api/canonical-overrides/{_reported_name(c, canonical=True)}",
     lambda c: {"impact_override": "i"}, lead_a_only(200)),
    ("upsert team canonical override", "PUT", lambda c: f"/api/canonical-overrides/name{next(uniq)}",
     lambda c: {"impact_override": "i", "team_id": c["team_a"]}, lead_a_only(200)),
    ("delete canonical override", "DELETE", lambda c: f"/api/canonical-overrides/{_fresh_canonical_override(c)}",
     lambda c: None, lead_a_only(204)),
    ("upsert external node", "PUT", lambda c: f"/api/external-nodes/{_reported_name(c)}", lambda c: {"impact": "i"},
     lead_a_only(200)),
    ("delete external node", "DELETE", lambda c: f"/api/external-nodes/{_fresh_node(c)}", lambda c: None,
     lead_a_only(204)),
    # the graph is open to every logged-in user (open-questions.md C), whatever team it shows
    ("graph", "GET", lambda c: f"/api/graph?team={c['team_a']}", lambda c: None, dict(ANY_USER)),
    # and so is a dependency's history
    ("timeline", "GET", lambda c: f"/api/dependencies/{_fresh_dep(c)}/timeline", lambda c: None, dict(ANY_USER)),
    ("errors", "GET", lambda c: f"/api/errors/{_fresh_dep(c)}", lambda c: None, dict(ANY_USER)),
    ("latency", "GET", lambda c: f"/api/latency/{_fresh_dep(c)}", lambda c: None, dict(ANY_USER)),
    ("latency buckets", "GET", lambda c: f"/api/latency/{_fresh_dep(c)}/buckets", lambda c: None, dict(ANY_USER)),
    ("aggregate buckets", "GET", lambda c: f"/api/latency/aggregate/buckets?dependencyIds={_fresh_dep(c)}",
     lambda c: None, dict(ANY_USER)),
    # a service's discovered dependencies: its team's members (and admins)
    ("discovered dependencies", "GET", lambda c: f"/api/services/{_fresh_service(c)}/discovered-dependencies",
     lambda c: None, dict(lead_a_only(200), member_a=200)),
]

# Mutating routes that need no role (public or any session user), with their own tests.
# Login and logout are for anyone; OTLP pushes authenticate with a team API key, not a session or role
# (test_otlp.py covers them).
NOT_ROLE_SCOPED = {("POST", "/api/auth/login"), ("POST", "/api/auth/logout"), ("POST", "/v1/traces"),
                   ("POST", "/v1/traces/"), ("POST", "/v1/metrics"), ("POST", "/v1/metrics/")}


@pytest.fixture
def ctx(migrated_db, server):
    """One server and the six callers: members and leads of teams A and B, an admin, anonymous."""
    db = migrated_db.url
    srv = server(db, workers=2, env={"LOCAL_AUTH": "true", "ADMIN_EMAIL": "admin@example.com",
                                     "ADMIN_PASSWORD": PASSWORD})
    team_a, team_b = _team(db, "A"), _team(db, "B")
    clients = {"anonymous": ApiClient(srv.base)}
    for actor, team, role in (("member_a", team_a, "member"), ("lead_a", team_a, "lead"),
                              ("member_b", team_b, "member"), ("lead_b", team_b, "lead")):
        uid = add_user(db, f"{actor}@example.com", password_of="admin@example.com")
        _member(db, team, uid, role)
    for actor in ACTORS[1:]:
        clients[actor] = ApiClient(srv.base)
        clients[actor].login(f"{actor}@example.com", PASSWORD)
    return {"db": db, "server": srv, "clients": clients, "team_a": team_a, "team_b": team_b}


def test_role_matrix(ctx):
    failures = []
    for name, method, path_of, body_of, expected in ROWS:
        for actor in ACTORS:
            path, body = path_of(ctx), body_of(ctx)
            kw = {} if body is None else {"json_body": body}
            r = ctx["clients"][actor].request(method, path, **kw)
            if r.status != expected[actor]:
                failures.append(f"{name}: {method} {path} as {actor}: {r.status}, want {expected[actor]} ({r.body[:120]!r})")
    assert not failures, "\n".join(failures)


def test_logout_needs_a_session(ctx):
    assert ctx["clients"]["anonymous"].post("/api/auth/logout").status == 401
    for actor in ACTORS[1:]:
        assert ctx["clients"][actor].post("/api/auth/logout").status == 200, actor
        assert ctx["clients"][actor].get("/api/auth/me").status == 401, actor


def test_every_mutating_route_has_a_row():
    """Reads the route table of src/api/routes.c: a mutating route without a row fails here."""
    table = open(os.path.join(REPO, "src", "api", "routes.c")).read()
    routes = set(re.findall(r'\{"(POST|PUT|PATCH|DELETE)", "([^"]+)"', table))
    covered = set(NOT_ROLE_SCOPED) | {(method, PATTERNS[name]) for name, method, _, _, _ in ROWS}
    missing = sorted(routes - covered)
    assert not missing, f"mutating routes without a role-matrix row: {missing}"


# The route pattern each row exercises (kept next to ROWS' names so that a renamed route shows up).
PATTERNS = {
    "create user": "/api/users", "change role": "/api/users/:id/role", "reset password": "/api/users/:id/password",
    "reactivate user": "/api/users/:id/reactivate", "deactivate user": "/api/users/:id",
    "create team": "/api/teams", "update team": "/api/teams/:id", "delete team": "/api/teams/:id",
    "add member": "/api/teams/:id/members", "change member role": "/api/teams/:id/members/:userId",
    "remove member": "/api/teams/:id/members/:userId", "update settings": "/api/admin/settings",
    "update span retention": "/api/admin/settings/span-retention",
    "create service": "/api/services", "update service": "/api/services/:id", "move service": "/api/services/:id",
    "delete service": "/api/services/:id",
    "create api key": "/api/teams/:id/api-keys", "revoke api key": "/api/teams/:id/api-keys/:keyId",
    "team key rate limit": "/api/teams/:id/api-keys/:keyId/rate-limit",
    "admin key rate limit": "/api/admin/api-keys/:keyId/rate-limit",
    "team key usage": "/api/teams/:id/api-keys/:keyId/usage", "admin key usage": "/api/admin/api-keys/:keyId/usage",
    "admin otlp usage": "/api/admin/otlp-usage", "team otlp stats": "/api/teams/:id/otlp-stats",
    "admin otlp stats": "/api/admin/otlp-stats", "poll history": "/api/services/:id/poll-history",
    "test schema": "/api/services/test-schema", "manual poll": "/api/services/:id/poll",
    "enrich dependency": "/api/dependencies/:id/enrich", "set dependency overrides": "/api/dependencies/:id/overrides",
    "clear dependency overrides": "/api/dependencies/:id/overrides",
    "create association": "/api/dependencies/:dependencyId/associations",
    "delete association": "/api/dependencies/:dependencyId/associations/:serviceId",
    "confirm association": "/api/dependencies/:depId/associations/:assocId/confirm",
    "dismiss association": "/api/dependencies/:depId/associations/:assocId/dismiss",
    "create alias": "/api/aliases", "update alias": "/api/aliases/:id", "delete alias": "/api/aliases/:id",
    "upsert canonical override": "/api/canonical-overrides/:canonicalName",
    "upsert team canonical override": "/api/canonical-overrides/:canonicalName",
    "delete canonical override": "/api/canonical-overrides/:canonicalName",
    "upsert external node": "/api/external-nodes/:canonicalName",
    "delete external node": "/api/external-nodes/:canonicalName", "graph": "/api/graph",
    "timeline": "/api/dependencies/:id/timeline", "errors": "/api/errors/:dependencyId",
    "latency": "/api/latency/:dependencyId", "latency buckets": "/api/latency/:dependencyId/buckets",
    "aggregate buckets": "/api/latency/aggregate/buckets",
    "discovered dependencies": "/api/services/:serviceId/discovered-dependencies",
}
