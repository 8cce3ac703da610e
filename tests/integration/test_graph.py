"""The dependency graph: GET /api/graph (graph-and-api.md §6, open-questions.md A, B, C, D24, D25).

One server and one database for the module; every test makes its own teams, services and dependencies
with names of its own, and reads the team or service variant, or picks its own nodes out of the full
graph, so tests do not depend on each other or on their order.
"""

import gzip
import hashlib
import json
import re
import uuid

import pytest

from conftest import ApiClient, Response, add_user, api_env, insert_row, make_team, shared_server_guard, wait_for

ADMIN_EMAIL = "root@example.com"
PASSWORD = "graph-password-1"
EMPTY = {"nodes": [], "edges": []}
MALFORMED = ("not-a-uuid", "123", "'; DROP TABLE services; --", "00000000-0000-0000-0000-00000000000g", "x" * 300)


@pytest.fixture(scope="module")
def env(cluster, tmp_path_factory):
    # "outsider" belongs to no team: graph reads are open to any logged-in user (open-questions.md C)
    # rows are written with psql, without notifications: every request computes (the cache has its own test)
    yield from api_env(cluster, tmp_path_factory, "graph", ADMIN_EMAIL, PASSWORD, actors=(("outsider", None, None),),
                       env={"GRAPH_CACHE_TTL_MS": "0"})


@pytest.fixture(autouse=True)
def _check_server_log(env):
    yield from shared_server_guard(env.srv)


def tag():
    return uuid.uuid4().hex[:8]


def insert(env, table, **cols):
    return insert_row(env.db, table, **cols)


def service(env, team, name, **cols):
    cols.setdefault("health_endpoint", f"https://{name}.example.com/health")
    return insert(env, "services", team_id=team, name=name, **cols)


def dep(env, svc, name, **cols):
    return insert(env, "dependencies", service_id=svc, name=name, **cols)


def link(env, dep_id, svc, **cols):
    return insert(env, "dependency_associations", dependency_id=dep_id, linked_service_id=svc, **cols)


def team_name(env, team):
    return env.db.psql(f"SELECT name FROM teams WHERE id = '{team}'")


def graph(env, query="", client="admin", **kw):
    r = env.clients[client].get("/api/graph" + query, **kw)
    assert r.status == 200, r
    return r.json


def external_id(key):
    return "external-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def by_id(items):
    return {i["id"]: i for i in items}


def service_node(env, sid, team, name, endpoint=None, active=True, deps=0, healthy=0, unhealthy=0, skipped=0,
                 poll_ok=None, poll_error=None, **extra):
    data = {"name": name, "teamId": team, "teamName": team_name(env, team),
            "healthEndpoint": endpoint or f"https://{name}.example.com/health", "isActive": active,
            "dependencyCount": deps, "healthyCount": healthy, "unhealthyCount": unhealthy,
            "lastPollSuccess": poll_ok, "lastPollError": poll_error, "skippedCount": skipped}
    data.update(extra)
    return {"id": sid, "type": "service", "data": data}


def external_node(name, key=None, deps=1, healthy=0, unhealthy=0, skipped=0, service_type=None, **extra):
    data = {"name": name, "teamId": "external", "teamName": "External", "healthEndpoint": "", "isActive": True,
            "dependencyCount": deps, "healthyCount": healthy, "unhealthyCount": unhealthy, "lastPollSuccess": None,
            "lastPollError": None, "skippedCount": skipped, "serviceType": service_type, "isExternal": True}
    data.update(extra)
    return {"id": external_id(key if key is not None else name.lower().strip()), "type": "service", "data": data}


def edge(source, target, dep_id, name, dep_type, healthy=True, latency=None, avg=None, assoc_type=None, error_message=None,
         impact=None, contact=None, source_kind="manual", auto=False, assoc_id=None, canonical=None, **extra):
    data = {"relationship": "depends_on", "dependencyType": dep_type, "dependencyName": name, "canonicalName": canonical,
            "dependencyId": dep_id, "healthy": healthy, "latencyMs": latency, "avgLatencyMs24h": avg,
            "associationType": assoc_type, "errorMessage": error_message, "impact": impact, "effectiveContact": contact,
            "discoverySource": source_kind, "isAutoSuggested": auto}
    data.update(extra)
    if assoc_id is not None:
        data["associationId"] = assoc_id
    return {"id": f"{source}-{target}-{dep_type}", "source": source, "target": target, "data": data}


# --------------------------------------------------------------------------
# access


def test_anonymous_gets_401(env):
    for q in ("", "?team=" + str(uuid.uuid4()), "?service=x"):
        r = env.clients["anonymous"].get("/api/graph" + q)
        assert r.status == 401 and r.json == {"error": "Not authenticated"}, r


def test_any_logged_in_user_reads_every_team(env):
    t = make_team(env.db, "Open")
    a = service(env, t, "open-" + tag())
    dep(env, a, "db", healthy=True)
    mine = graph(env, f"?team={t}", client="outsider")
    assert mine == graph(env, f"?team={t}")
    assert [n["id"] for n in mine["nodes"]] == [a, external_id("db")]


def test_inactive_user_is_refused(env):
    uid = add_user(env.db.url, f"gone-{tag()}@example.com", password_of=ADMIN_EMAIL)
    c = ApiClient(env.srv.base)
    c.login(env.db.psql(f"SELECT email FROM users WHERE id = '{uid}'"), PASSWORD)
    assert c.get("/api/graph").status == 200
    env.db.psql(f"UPDATE users SET is_active = false WHERE id = '{uid}'")
    r = c.get("/api/graph")
    assert r.status == 401 and r.json == {"error": "User not found or inactive"}, r


# --------------------------------------------------------------------------
# the team variant, field by field


@pytest.fixture
def world(env):
    """Team T: active A, active external B, inactive C; team U: inactive X. A's dependencies cover every
    kind of row (associated with latency history, unassociated, auto-suggested, dismissed, skipped)."""
    w = type("World", (), {})()
    k = tag()
    w.k = k
    w.t, w.u = make_team(env.db, "T"), make_team(env.db, "U")
    w.a = service(env, w.t, f"a-{k}", last_poll_success=True)
    w.b = service(env, w.t, f"b-{k}", is_external=True)
    w.c = service(env, w.t, f"c-{k}", is_active=False)
    w.x = service(env, w.u, f"x-{k}", is_active=False, last_poll_success=False, last_poll_error="boom")
    w.d1 = dep(env, w.a, f"d1-{k}", type="database", healthy=True, latency_ms=12.5, check_details={"v": 1},
               contact={"team": "a", "email": "a@example.com"}, contact_override={"email": "override@example.com"},
               impact="high", discovery_source="otlp_trace")
    w.l1 = link(env, w.d1, w.x, association_type="database")
    for ago, ms in (("1 hour", 10), ("2 hours", 20), ("3 hours", 31), ("25 hours", 1000)):
        env.db.psql(f"INSERT INTO dependency_latency_history (dependency_id, latency_ms, recorded_at) "
                    f"VALUES ('{w.d1}', {ms}, now() - interval '{ago}')")
    w.d2 = dep(env, w.a, f"D2-{k}", type="cache", healthy=False, error={"code": 500}, error_message="down")
    w.d3 = dep(env, w.a, f"d3-{k}", type="rest")
    w.l3 = link(env, w.d3, w.b, association_type="api_call", is_auto_suggested=True)
    w.d4 = dep(env, w.a, f"d4-{k}", type="rest", healthy=True, latency_ms=3)
    link(env, w.d4, w.x, is_auto_suggested=True, is_dismissed=True)
    for ms in (2, 3):  # 2.5: half away from zero, as the original's ROUND (not half to even)
        env.db.psql(f"INSERT INTO dependency_latency_history (dependency_id, latency_ms) VALUES ('{w.d4}', {ms})")
    w.d5 = dep(env, w.a, f"d5-{k}", type="grpc", healthy=True, skipped=True)
    w.e1 = dep(env, w.b, f"e1-{k}", type="database", healthy=True)
    w.le = link(env, w.e1, w.x)
    w.f1 = dep(env, w.c, f"f1-{k}", type="cache", healthy=True)
    link(env, w.f1, w.a)
    return w


def test_team_graph_every_field(env, world):
    w, k = world, world.k
    g = graph(env, f"?team={w.t}")
    assert g["nodes"] == [
        service_node(env, w.a, w.t, f"a-{k}", deps=5, healthy=2, unhealthy=1, skipped=1, poll_ok=True,
                     discoveredDependencyCount=1),
        service_node(env, w.b, w.t, f"b-{k}", deps=1, healthy=1, serviceType="rest", isExternal=True),
        # added as a target: counted over the rows that target it (the dismissed one does not)
        service_node(env, w.x, w.u, f"x-{k}", active=False, deps=2, healthy=2, poll_ok=False, poll_error="boom",
                     serviceType="database", discoveredDependencyCount=1),
        external_node(f"D2-{k}", unhealthy=1, service_type="cache"),
        external_node(f"d4-{k}", healthy=1, service_type="rest"),
        external_node(f"d5-{k}", skipped=1, service_type="grpc"),
    ]
    assert g["edges"] == [  # rows by dependency name as bytes: "D2" before "d1"
        edge(external_id(f"d2-{k}"), w.a, w.d2, f"D2-{k}", "cache", healthy=False, error_message="down",
             error={"code": 500}),
        edge(w.x, w.a, w.d1, f"d1-{k}", "database", latency=12.5, avg=20, assoc_type="database", impact="high",
             contact={"team": "a", "email": "override@example.com"}, source_kind="otlp_trace", assoc_id=w.l1,
             checkDetails={"v": 1}),
        edge(w.b, w.a, w.d3, f"d3-{k}", "rest", healthy=None, assoc_type="api_call", auto=True, assoc_id=w.l3),
        # dismissed: no edge from X, and the dependency is one without association
        edge(external_id(f"d4-{k}"), w.a, w.d4, f"d4-{k}", "rest", latency=3, avg=3),
        edge(external_id(f"d5-{k}"), w.a, w.d5, f"d5-{k}", "grpc", skipped=True),
        edge(w.x, w.b, w.e1, f"e1-{k}", "database", assoc_type="other", assoc_id=w.le),
    ]


def test_full_graph(env, world):
    w, k = world, world.k
    g = graph(env)
    nodes, edges = by_id(g["nodes"]), by_id(g["edges"])
    assert w.c not in nodes  # inactive and targeted by nobody
    assert nodes[w.a]["data"]["dependencyCount"] == 5
    assert "serviceType" not in nodes[w.a]["data"]  # only an inactive service's dependency targets A
    # B is external: not a node of its own, added as the target of A's d3 and counted over that row
    assert nodes[w.b] == service_node(env, w.b, w.t, f"b-{k}", deps=1, serviceType="rest", isExternal=True)
    assert nodes[w.x]["data"]["dependencyCount"] == 2
    ids = [n["id"] for n in g["nodes"]]
    assert ids.index(w.a) < ids.index(w.b) and ids.index(w.a) < ids.index(w.x)
    # B is active: its own dependency's edge is there too
    assert f"{w.x}-{w.b}-database" in edges
    assert all(e["data"]["dependencyId"] != w.f1 for e in g["edges"])
    assert len(ids) == len(set(ids)) and len(edges) == len(g["edges"])
    real = {n["id"] for n in g["nodes"]}
    assert all(e["source"] in real for e in g["edges"])


def full_averages(env, deps, times=4):
    """avgLatencyMs24h of each dependency's edge in `times` full graphs (both workers, the raw rows and the
    snapshot of graph_avg.c both have their turn), checked equal to the raw average computed now."""
    ids = ",".join(f"'{d}'" for d in deps)
    raw = "SELECT d.id, round(avg(h.latency_ms)::numeric) FROM dependencies d LEFT JOIN dependency_latency_history h " \
          f"ON h.dependency_id = d.id AND h.recorded_at >= now() - interval '24 hours' WHERE d.id IN ({ids}) GROUP BY 1"
    seen = []
    for _ in range(times):
        edges = {e["data"]["dependencyId"]: e["data"]["avgLatencyMs24h"] for e in graph(env)["edges"]}
        want = {row.split("|")[0]: (int(row.split("|")[1]) if row.split("|")[1] else None)
                for row in env.db.psql(raw).splitlines()}
        got = {d: edges[d] for d in deps}
        assert got == want
        seen.append(got)
    assert all(s == seen[0] for s in seen)
    return [seen[0][d] for d in deps]


def test_full_graph_averages_follow_every_change_of_the_history(env):
    """The full graph's averages come from a per-worker snapshot of the window and the rows written since
    (graph_avg.h): current rows, back-dated rows, deletes and rows leaving the window all show at once."""
    k = tag()
    t = make_team(env.db, "Avg")
    a = service(env, t, f"avg-{k}")
    d1, d2, d3, d4 = (dep(env, a, f"avg{i}-{k}") for i in range(1, 5))
    hist = "INSERT INTO dependency_latency_history (dependency_id, latency_ms, recorded_at) VALUES "
    env.db.psql(hist + f"('{d1}', 10, now() - interval '3 hours'), ('{d1}', 21, now() - interval '1 hour'), "
                f"('{d2}', 1.1, now() - interval '2 hours'), ('{d2}', 3.9, now() - interval '20 hours'), "
                f"('{d3}', -2, now() - interval '5 hours'), ('{d3}', -3, now() - interval '6 hours'), "
                f"('{d3}', 500, now() - interval '25 hours')")
    # 15.5 and 2.5 round half away from zero, -2.5 too; d4 has no rows
    assert full_averages(env, [d1, d2, d3, d4]) == [16, 3, -3, None]
    # written with the current time, as the server's writers do: no change of epoch, read since B
    env.db.psql(f"INSERT INTO dependency_latency_history (dependency_id, latency_ms) VALUES ('{d4}', 7), ('{d1}', 30)")
    assert full_averages(env, [d1, d2, d3, d4]) == [20, 3, -3, 7]
    # back-dated into the snapshot's window, and deleted from it
    env.db.psql(hist + f"('{d2}', 0.5, now() - interval '4 hours')")
    env.db.psql(f"DELETE FROM dependency_latency_history WHERE dependency_id = '{d3}' AND latency_ms = -3")
    assert full_averages(env, [d1, d2, d3, d4]) == [20, 2, -2, 7]
    # a row about to leave the window, taken into a snapshot, then subtracted as it leaves
    env.db.psql(hist + f"('{d4}', 1000, now() - interval '24 hours' + interval '8 seconds')")
    assert full_averages(env, [d4]) == [504]
    wait_for(lambda: env.db.psql("SELECT count(*) FROM dependency_latency_history WHERE dependency_id = "
                                 f"'{d4}' AND recorded_at >= now() - interval '24 hours'") == "1", timeout=30)
    assert full_averages(env, [d4]) == [7]


def test_team_without_active_services_or_unknown_is_empty(env):
    t = make_team(env.db, "Idle")
    service(env, t, "idle-" + tag(), is_active=False)
    assert graph(env, f"?team={t}") == EMPTY
    assert graph(env, f"?team={uuid.uuid4()}") == EMPTY


# --------------------------------------------------------------------------
# canonical names, overrides, external nodes


def test_alias_applies_at_once_and_groups_external_nodes(env):
    """D24: an alias edit shows in the graph before the next poll; unassociated dependencies group by
    lower(trim(canonical name or name))."""
    k = tag()
    t = make_team(env.db, "Alias")
    s1, s2 = service(env, t, f"s1-{k}"), service(env, t, f"s2-{k}")
    d1 = dep(env, s1, f"pg-main-{k}", type="database", healthy=True)
    d2 = dep(env, s2, f"  PG-MAIN-{k} ", type="database", healthy=False)
    g = graph(env, f"?team={t}")  # one key: lower-cased and trimmed; named after its first row
    assert g["nodes"][2:] == [external_node(f"pg-main-{k}", deps=2, healthy=1, unhealthy=1, service_type="database")]
    env.db.psql(f"INSERT INTO dependency_aliases (alias, canonical_name) VALUES ('pg-main-{k}', 'Postgres {k}'), "
                f"('  PG-MAIN-{k} ', 'POSTGRES {k}  ')")
    g = graph(env, f"?team={t}")
    assert g["nodes"][2:] == [external_node(f"Postgres {k}", deps=2, healthy=1, unhealthy=1, service_type="database")]
    ext = external_id(f"postgres {k}")
    assert [(e["source"], e["target"], e["data"]["canonicalName"]) for e in g["edges"]] == [
        (ext, s1, f"Postgres {k}"), (ext, s2, f"POSTGRES {k}  ")]
    env.db.psql(f"DELETE FROM dependency_aliases WHERE alias IN ('pg-main-{k}', '  PG-MAIN-{k} ')")
    g = graph(env, f"?team={t}")
    assert [e["data"]["canonicalName"] for e in g["edges"]] == [None, None]
    assert {e["data"]["dependencyId"] for e in g["edges"]} == {d1, d2}


def test_canonical_overrides_team_scoped_before_global(env):
    """D25: the owning team's override of a canonical name, else the global one; the instance override
    wins over both; keys merge."""
    k = tag()
    t1, t2 = make_team(env.db, "Ov1"), make_team(env.db, "Ov2")
    env.db.psql(f"INSERT INTO dependency_aliases (alias, canonical_name) VALUES ('cache-{k}', 'redis-{k}')")
    s1, s2 = service(env, t1, f"o1-{k}"), service(env, t2, f"o2-{k}")
    dep(env, s1, f"cache-{k}", contact={"team": "polled", "slack": "#s1"})
    dep(env, s2, f"cache-{k}", contact={"team": "polled"}, contact_override={"pager": "instance"})
    env.db.psql(f"INSERT INTO dependency_canonical_overrides (canonical_name, team_id, contact_override) VALUES "
                f"('redis-{k}', NULL, '{{\"pager\": \"global\", \"team\": \"global-team\"}}'), "
                f"('redis-{k}', '{t1}', '{{\"pager\": \"team-one\"}}')")
    c1 = graph(env, f"?team={t1}")["edges"][0]["data"]["effectiveContact"]
    c2 = graph(env, f"?team={t2}")["edges"][0]["data"]["effectiveContact"]
    assert c1 == {"team": "polled", "slack": "#s1", "pager": "team-one"}
    assert c2 == {"team": "global-team", "pager": "instance"}
    # a contact that is not an object counts as none; with no object at all the contact is null
    s3 = service(env, t1, f"o3-{k}")
    dep(env, s3, f"other-{k}", contact=["not", "an", "object"])
    assert graph(env, f"?service={s3}")["edges"][0]["data"]["effectiveContact"] is None


def test_external_node_enrichment(env):
    k = tag()
    t = make_team(env.db, "Enr")
    s = service(env, t, f"e-{k}")
    dep(env, s, f"Stripe {k}", type="rest", healthy=True)
    dep(env, s, f"Mail {k}", type="smtp", healthy=True)
    env.db.psql(f"INSERT INTO external_node_enrichment (canonical_name, display_name, description, impact, contact, "
                f"service_type) VALUES ('  STRIPE {k}', 'Stripe payments', 'Card processing', 'No checkout', "
                f"'{{\"email\": \"pay@example.com\"}}', 'payment_gateway'), "
                f"('mail {k}', '', NULL, 'Mails queue', NULL, '')")
    nodes = graph(env, f"?team={t}")["nodes"]
    assert nodes[1:] == [
        external_node(f"Mail {k}", healthy=1, service_type="smtp", enrichedImpact="Mails queue"),
        external_node("Stripe payments", key=f"stripe {k}", healthy=1, service_type="payment_gateway",
                      enrichedDescription="Card processing", enrichedImpact="No checkout",
                      enrichedContact={"email": "pay@example.com"}),
    ]


def test_duplicate_edges_keep_the_first_row(env):
    k = tag()
    t = make_team(env.db, "Dup")
    p, q = service(env, t, f"p-{k}"), service(env, t, f"q-{k}")
    m2 = dep(env, p, f"m2-{k}", type="rest", healthy=False)
    m1 = dep(env, p, f"m1-{k}", type="rest", healthy=True)
    m3 = dep(env, p, f"m3-{k}", type="grpc")
    for d in (m1, m2, m3):
        link(env, d, q)
    g = graph(env, f"?team={t}")
    assert [(e["id"], e["data"]["dependencyId"]) for e in g["edges"]] == [(f"{q}-{p}-rest", m1), (f"{q}-{p}-grpc", m3)]
    assert by_id(g["nodes"])[p]["data"]["dependencyCount"] == 3


def test_service_type_most_frequent_first_met_on_ties(env):
    k = tag()
    t, u = make_team(env.db, "Ty"), make_team(env.db, "Ty2")
    p, target = service(env, t, f"p-{k}"), service(env, u, f"target-{k}")
    for name, typ in (("t1", "cache"), ("t2", "database"), ("t3", "database"), ("t4", "cache")):
        link(env, dep(env, p, f"{name}-{k}", type=typ), target)
    assert by_id(graph(env, f"?team={t}")["nodes"])[target]["data"]["serviceType"] == "cache"
    link(env, dep(env, p, f"t5-{k}", type="database"), target)
    assert by_id(graph(env, f"?team={t}")["nodes"])[target]["data"]["serviceType"] == "database"


# --------------------------------------------------------------------------
# service and dependency subgraphs


@pytest.fixture
def chain(env):
    """S1 -> S2 (inactive) -> S3 (external) -> S1, plus S3's dismissed suggestion to S4."""
    w = type("Chain", (), {})()
    k = w.k = tag()
    w.t = make_team(env.db, "Walk")
    w.s1, w.s2 = service(env, w.t, f"w1-{k}"), service(env, w.t, f"w2-{k}", is_active=False)
    w.s3, w.s4 = service(env, w.t, f"w3-{k}", is_external=True), service(env, w.t, f"w4-{k}")
    w.d1 = dep(env, w.s1, f"to-s2-{k}", type="rest", healthy=True)
    link(env, w.d1, w.s2)
    w.d2 = dep(env, w.s2, f"to-s3-{k}", type="rest", healthy=True)
    link(env, w.d2, w.s3)
    w.d2x = dep(env, w.s2, f"loose-{k}", type="cache", healthy=False)
    w.d3 = dep(env, w.s3, f"to-s1-{k}", type="grpc", healthy=True)
    link(env, w.d3, w.s1)
    w.d3x = dep(env, w.s3, f"to-s4-{k}", type="rest")
    link(env, w.d3x, w.s4, is_auto_suggested=True, is_dismissed=True)
    return w


def test_service_subgraph_walks_upstream_breadth_first(env, chain):
    w, k = chain, chain.k
    g = graph(env, f"?service={w.s1}")
    assert [n["id"] for n in g["nodes"]] == [w.s1, w.s2, w.s3, external_id(f"loose-{k}"), external_id(f"to-s4-{k}")]
    nodes = by_id(g["nodes"])
    assert nodes[w.s2] == service_node(env, w.s2, w.t, f"w2-{k}", active=False, deps=2, healthy=1, unhealthy=1,
                                       serviceType="rest")
    assert nodes[w.s3]["data"]["isExternal"] is True and nodes[w.s3]["data"]["dependencyCount"] == 2
    assert [e["id"] for e in g["edges"]] == [
        f"{w.s2}-{w.s1}-rest", f"{external_id(f'loose-{k}')}-{w.s2}-cache", f"{w.s3}-{w.s2}-rest",
        f"{w.s1}-{w.s3}-grpc", f"{external_id(f'to-s4-{k}')}-{w.s3}-rest"]
    assert w.s4 not in nodes  # a dismissed suggestion is not walked
    assert [n["id"] for n in graph(env, f"?service={w.s3}")["nodes"][:3]] == [w.s3, w.s1, w.s2]
    assert graph(env, f"?service={w.s4}") == {"nodes": [service_node(env, w.s4, w.t, f"w4-{k}")], "edges": []}


def test_dependency_subgraph_is_its_services(env, chain):
    w = chain
    assert graph(env, f"?dependency={w.d2}") == graph(env, f"?service={w.s2}")
    assert graph(env, f"?dependency={w.d2.upper()}") == graph(env, f"?service={w.s2.upper()}")
    assert [n["id"] for n in graph(env, f"?dependency={w.d2}")["nodes"][:3]] == [w.s2, w.s3, w.s1]


def test_first_present_parameter_wins(env, chain):
    w = chain
    other = make_team(env.db, "Other")
    service(env, other, "lonely-" + tag())
    assert graph(env, f"?team={other}&service={w.s2}&dependency={w.d1}") == graph(env, f"?dependency={w.d1}")
    assert graph(env, f"?team={other}&service={w.s2}") == graph(env, f"?service={w.s2}")
    assert graph(env, f"?dependency=&service=&team={other}") == graph(env, f"?team={other}")
    assert graph(env, f"?dependency={uuid.uuid4()}&service={w.s2}") == EMPTY


@pytest.mark.parametrize("param", ["dependency", "service", "team"])
def test_unknown_and_malformed_ids_are_an_empty_graph(env, param):
    for value in [str(uuid.uuid4())] + list(MALFORMED):
        r = env.clients["admin"].get(f"/api/graph?{param}=" + value.replace("'", "%27").replace(" ", "%20"))
        assert r.status == 200 and r.json == EMPTY, (value, r)


# --------------------------------------------------------------------------
# encoding


def test_gzip_when_accepted(env):
    t = make_team(env.db, "Gz")
    for i in range(20):
        dep(env, service(env, t, f"gz-{i}-{tag()}"), f"dependency-with-a-long-name-{i}", contact={"email": "x@example.com"})
    plain = env.clients["admin"].get(f"/api/graph?team={t}")
    packed = env.clients["admin"].get(f"/api/graph?team={t}", headers={"Accept-Encoding": "br, gzip;q=0.5"})
    assert plain.headers.get("Content-Encoding") is None and "Accept-Encoding" in plain.headers.get_all("Vary")
    assert packed.headers.get("Content-Encoding") == "gzip" and "Accept-Encoding" in packed.headers.get_all("Vary")
    assert len(packed.body) < len(plain.body) / 3
    assert int(packed.headers["Content-Length"]) == len(packed.body)
    assert json.loads(gzip.decompress(packed.body)) == plain.json
    refused = env.clients["admin"].get(f"/api/graph?team={t}", headers={"Accept-Encoding": "gzip;q=0, br"})
    assert refused.headers.get("Content-Encoding") is None and refused.body == plain.body
    small = env.clients["admin"].get(f"/api/graph?team={uuid.uuid4()}", headers={"Accept-Encoding": "gzip"})
    assert small.headers.get("Content-Encoding") is None and small.json == EMPTY


# --------------------------------------------------------------------------
# scale: a bounded number of statements


def statements(db, cluster, fn):
    """The statements the server ran on db while fn() ran (log_statement = all on that database; the
    cluster logs to one file, each line prefixed with user@database)."""
    log = f"{cluster.dir}/postgresql.log"
    begin, end = f"graph-mark-{uuid.uuid4().hex}", f"graph-mark-{uuid.uuid4().hex}"
    db.psql(f"SELECT '{begin}'")
    fn()
    db.psql(f"SELECT '{end}'")
    text = open(log, errors="replace").read()
    start = text.index(begin)
    text = text[start:text.rindex("\n", start, text.index(end))]  # up to the line of the end mark
    # not the request's: the limiters lease their share of a rate every 100 ms or so and read their
    # settings (D26), whatever the request
    return len(re.findall(rf"depsera@{db.name} LOG:  (?:execute (?!dps_window_lease)[^:]*|statement): "
                          rf"(?!SELECT 'graph-mark|SELECT key, value FROM settings WHERE key IN \('global_rate_limit')",
                          text))


def test_statements_per_request_do_not_grow_with_the_graph(cluster, migrated_db, server):
    d = migrated_db
    d.psql(f"ALTER DATABASE {d.name} SET log_statement = 'all'")
    srv = server(d.url, args=["--no-poller", "--no-pruner"], workers=1,
                 env={"LOCAL_AUTH": "true", "ADMIN_EMAIL": ADMIN_EMAIL, "ADMIN_PASSWORD": PASSWORD,
                      "GRAPH_CACHE_TTL_MS": "0"})
    c = ApiClient(srv.base)
    c.login(ADMIN_EMAIL, PASSWORD)  # the worker's connection is set up by now
    small, big = make_team(d, "Small"), make_team(d, "Big")
    d.psql(f"INSERT INTO services (name, team_id, health_endpoint) VALUES ('only', '{small}', 'https://e.example.com')")
    d.psql(f"INSERT INTO dependencies (service_id, name) SELECT id, 'dep-5' FROM services WHERE team_id = '{small}'")
    d.psql(f"INSERT INTO services (name, team_id, health_endpoint) SELECT 'svc-' || g, '{big}', 'https://e.example.com' "
           f"FROM generate_series(1, 300) g")
    d.psql(f"INSERT INTO dependencies (service_id, name, type, healthy, contact) SELECT s.id, 'dep-' || g, "
           f"(ARRAY['rest', 'database', 'cache'])[1 + g % 3], g % 4 <> 0, '{{\"a\": 1}}' FROM services s, "
           f"generate_series(1, 10) g WHERE s.team_id = '{big}'")
    d.psql("INSERT INTO dependency_associations (dependency_id, linked_service_id, is_auto_suggested) "
           "SELECT d.id, (SELECT id FROM services WHERE name = 'svc-' || (1 + abs(hashtext(d.id::text)) % 300)), "
           "d.name = 'dep-2' FROM dependencies d WHERE d.name IN ('dep-1', 'dep-2') ON CONFLICT DO NOTHING")
    d.psql("INSERT INTO dependency_latency_history (dependency_id, latency_ms, recorded_at) "
           "SELECT id, 5, now() - interval '1 hour' FROM dependencies")
    d.psql("INSERT INTO external_node_enrichment (canonical_name, description) VALUES ('dep-5', 'five')")
    results = {}

    def fetch(team):
        r = c.get(f"/api/graph?team={team}", timeout=30)
        assert r.status == 200, r
        results[team] = r.json

    counts = [statements(d, cluster, lambda: fetch(team)) for team in (small, big, small, big)]
    assert len(results[small]["nodes"]) == 2 and len(results[small]["edges"]) == 1
    assert len(results[big]["nodes"]) >= 300 and len(results[big]["edges"]) >= 3000
    # the session's, the rows, the service nodes, the enrichment of external nodes
    assert counts == [4, 4, 4, 4], counts
    assert statements(d, cluster, lambda: c.get("/api/graph?service=" + results[big]["nodes"][0]["id"])) <= 4
    assert statements(d, cluster, lambda: c.get("/api/graph?service=nope")) <= 1


def test_answers_are_reused_until_a_change_or_the_ttl(migrated_db, server):
    """GRAPH_CACHE_TTL_MS: a worker reuses its answer (plain or gzip) until a NOTIFY depsera_cache or the TTL."""
    import time
    d = migrated_db
    srv = server(d.url, args=["--no-poller", "--no-pruner"], workers=1,
                 env={"LOCAL_AUTH": "true", "ADMIN_EMAIL": ADMIN_EMAIL, "ADMIN_PASSWORD": PASSWORD,
                      "GRAPH_CACHE_TTL_MS": "3000"})
    c = ApiClient(srv.base)
    c.login(ADMIN_EMAIL, PASSWORD)
    team = make_team(d, "Cached")
    # over DPS_GZIP_MIN_BYTES: 20 services
    d.psql(f"INSERT INTO services (name, team_id, health_endpoint) SELECT 'one-' || g, '{team}', 'https://e.example.com' "
           f"FROM generate_series(1, 20) g")
    names = lambda r: {n["data"]["name"] for n in json.loads(r.body)["nodes"]} - {f"one-{g}" for g in range(1, 21)}
    first = c.get("/api/graph")
    assert first.status == 200 and names(first) == set(), first
    d.psql(f"INSERT INTO services (name, team_id, health_endpoint) VALUES ('two', '{team}', 'https://e.example.com')")
    assert names(c.get("/api/graph")) == set()  # reused: no notification yet
    zipped = c.get("/api/graph", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip" and names(Response(200, {}, gzip.decompress(zipped.body))) == set()
    d.psql("NOTIFY depsera_cache, 'service'")
    wait_for(lambda: names(c.get("/api/graph")) == {"two"}, 2, what="the graph after a notification")
    d.psql(f"INSERT INTO services (name, team_id, health_endpoint) VALUES ('three', '{team}', 'https://e.example.com')")
    t0 = time.monotonic()
    wait_for(lambda: names(c.get("/api/graph")) == {"two", "three"}, 5, what="the graph after the TTL")
    assert time.monotonic() - t0 <= 4
