"""OTLP/HTTP ingestion: POST /v1/traces and /v1/metrics (otlp-ingestion.md, open-questions.md).

Requests are built with the official protobuf runtime from the vendored .proto files (otlp_pb.py),
sent as a collector sends them (protobuf, gzip) and as OTLP JSON, and what they leave in PostgreSQL
is checked table by table. One server and database for the module; every test uses its own team, key
and service names.
"""

import json
import os
import uuid
import zlib

import pytest

import otlp_pb
from conftest import Server, migrate, request, shared_server_guard, sql_str, wait_for


class Env:
    pass


@pytest.fixture(scope="module")
def env(cluster, tmp_path_factory):
    d = cluster.create_db()
    tmp = tmp_path_factory.mktemp("otlp")
    s = None
    try:
        assert migrate(d.url, "up").code == 0
        s = Server(d.url, args=["--no-poller", "--no-pruner"], workers=2, log_dir=str(tmp),
                   env={"RATE_LIMIT_MAX": 1000000})
        s.start()
        e = Env()
        e.db, e.srv = d, s
        yield e
    finally:
        if s is not None:
            s.kill()
        d.drop()


@pytest.fixture(autouse=True)
def _check_server_log(env):
    yield from shared_server_guard(env.srv)


def uniq(prefix="x"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Team:
    """A team with an API key."""

    def __init__(self, env):
        self.env = env
        self.id = env.db.psql(f"INSERT INTO teams (name, key) VALUES ('{uniq('T')}', '{uniq('k')}') RETURNING id")
        self.key, digest = otlp_pb.new_key()
        self.key_id = env.db.psql(
            "INSERT INTO team_api_keys (team_id, name, key_hash, key_prefix) VALUES "
            f"('{self.id}', 'k', '{digest}', '{self.key[:8]}') RETURNING id")

    def post(self, path, body, content_type="application/x-protobuf", gzip=True, headers=None):
        if not isinstance(body, (bytes, str)):
            body = body.SerializeToString()
        if isinstance(body, str):
            body = body.encode()
        h = {"Content-Type": content_type, "Authorization": f"Bearer {self.key}"}
        if gzip:
            body = otlp_pb.gz(body)
            h["Content-Encoding"] = "gzip"
        h.update(headers or {})
        return request("POST", self.env.srv.url(path), body=body, headers=h, timeout=30)

    def sql(self, q):
        return self.env.db.psql(q)

    def service(self, name):
        return self.sql(f"SELECT id FROM services WHERE team_id = '{self.id}' AND name = {sql_str(name)}")


@pytest.fixture
def team(env):
    return Team(env)


def traces(service, spans, resource_attrs=()):
    ts = otlp_pb.trace_service()
    req = ts.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    if service is not None:
        rs.resource.attributes.append(otlp_pb.attr("service.name", service))
    for k, v in resource_attrs:
        rs.resource.attributes.append(otlp_pb.attr(k, v))
    ss = rs.scope_spans.add()
    for sp in spans:
        ss.spans.append(sp)
    return req


def span(name="op", kind=3, attrs=(), error=False, start=1_700_000_000_000_000_000, dur_ms=12,
         trace_id=None, span_id=None, parent=b""):
    tr = otlp_pb.module("opentelemetry.proto.trace.v1.trace_pb2")
    s = tr.Span(name=name, kind=kind, trace_id=trace_id or uuid.uuid4().bytes,
                span_id=span_id or uuid.uuid4().bytes[:8], parent_span_id=parent,
                start_time_unix_nano=start, end_time_unix_nano=start + dur_ms * 1_000_000)
    for k, v in attrs:
        s.attributes.append(otlp_pb.attr(k, v))
    if error:
        s.status.code = 2
        s.status.message = "boom"
    return s


def decode_trace_response(r):
    msg = otlp_pb.trace_service().ExportTraceServiceResponse()
    msg.ParseFromString(r.body)
    return msg


# --------------------------------------------------------------------------
# traces


def test_protobuf_gzip_batch_is_stored_and_answered_in_protobuf(team):
    svc = uniq("checkout")
    spans = [span(name=f"op{i}", kind=1 if i % 2 else 3, attrs=[("peer.service", "payments"), ("n", i)])
             for i in range(50)]
    r = team.post("/v1/traces", traces(svc, spans, [("host.name", "h1")]))
    assert r.status == 200, r
    assert r.headers["Content-Type"].startswith("application/x-protobuf")
    resp = decode_trace_response(r)
    assert resp.partial_success.rejected_spans == 0 and resp.partial_success.error_message == ""
    sid = team.service(svc)
    assert team.sql(f"SELECT health_endpoint_format || ' ' || poll_interval_ms || ' ' || is_active FROM services "
                    f"WHERE id = '{sid}'") == "otlp 0 true"
    assert team.sql(f"SELECT count(*) FROM spans s JOIN span_resources r ON r.id = s.resource_id "
                    f"WHERE r.team_id = '{team.id}' AND r.service_name = {sql_str(svc)}") == "50"
    row = json.loads(team.sql(
        "SELECT json_build_object('trace', encode(trace_id, 'hex'), 'span', encode(span_id, 'hex'), "
        "'parent', parent_span_id, 'kind', kind, 'dur', duration_ms, 'attrs', s.attributes, "
        "'start', to_char(start_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS')) "
        f"FROM spans s JOIN span_resources r ON r.id = s.resource_id WHERE r.service_name = {sql_str(svc)} "
        "AND s.name = 'op4'"))
    assert row["trace"] == spans[4].trace_id.hex() and row["span"] == spans[4].span_id.hex()
    assert row["parent"] is None and row["kind"] == 3 and row["dur"] == 12
    assert row["start"] == "2023-11-14 22:13:20.000"
    assert row["attrs"] == [{"key": "peer.service", "value": {"stringValue": "payments"}},
                            {"key": "n", "value": {"intValue": "4"}}]
    res = json.loads(team.sql(f"SELECT json_agg(attributes) FROM span_resources WHERE team_id = '{team.id}'"))
    assert res == [[{"key": "service.name", "value": {"stringValue": svc}},
                    {"key": "host.name", "value": {"stringValue": "h1"}}]]


def test_json_request_stores_the_same_rows_as_protobuf(team):
    svc = uniq("api")
    s = span(name="GET /x", kind=3, attrs=[("http.request.method", "GET"), ("server.address", "inventory"),
                                            ("url.path", "/x"), ("ok", True), ("ratio", 0.5)],
             parent=uuid.uuid4().bytes[:8])
    body = json.dumps(otlp_pb.to_json(traces(svc, [s])))
    r = team.post("/v1/traces", body, content_type="application/json", gzip=False)
    assert r.status == 200, r
    assert r.json == {"partialSuccess": {"rejectedSpans": 0, "errorMessage": ""}}
    got = json.loads(team.sql(
        "SELECT json_build_object('trace', encode(trace_id, 'hex'), 'parent', encode(parent_span_id, 'hex'), "
        "'attrs', s.attributes) FROM spans s JOIN span_resources r ON r.id = s.resource_id "
        f"WHERE r.service_name = {sql_str(svc)}"))
    assert got["trace"] == s.trace_id.hex() and got["parent"] == s.parent_span_id.hex()
    assert got["attrs"][3] == {"key": "ok", "value": {"boolValue": True}}
    assert got["attrs"][4] == {"key": "ratio", "value": {"doubleValue": 0.5}}
    dep = json.loads(team.sql(
        "SELECT row_to_json(d) FROM dependencies d JOIN services s ON s.id = d.service_id "
        f"WHERE s.name = {sql_str(svc)}"))
    assert dep["name"] == "inventory" and dep["type"] == "rest" and dep["description"] == "GET inventory/x"
    assert dep["discovery_source"] == "otlp_trace" and dep["healthy"] is True and dep["latency_ms"] == 12


def test_client_spans_become_dependencies_with_history(team):
    svc = uniq("orders")
    spans = [span(kind=3, attrs=[("db.system", "postgresql"), ("db.name", "orders"), ("db.sql.table", "items"),
                                 ("db.operation", "SELECT")], dur_ms=10),
             span(kind=3, attrs=[("db.system", "postgresql")], dur_ms=21),
             span(kind=4, attrs=[("messaging.system", "kafka")], error=True),
             span(kind=3, attrs=[("db.system", "Redis")]),
             span(kind=2, attrs=[("db.system", "ignored-server-span")])]
    r = team.post("/v1/traces", traces(svc, spans))
    assert r.status == 200, r
    deps = {row[0]: row[1:] for row in (ln.split("|") for ln in team.sql(
        "SELECT d.name, d.type, d.healthy, d.health_state, d.health_code, d.latency_ms, d.description "
        f"FROM dependencies d JOIN services s ON s.id = d.service_id WHERE s.name = {sql_str(svc)}").splitlines())}
    assert deps["postgresql"] == ["database", "t", "0", "200", "16", "SELECT orders.items"]
    assert deps["kafka"] == ["message_queue", "f", "2", "500", "12", "kafka"]
    assert deps["Redis"][0] == "cache"
    assert "ignored-server-span" not in deps
    assert team.sql("SELECT count(*) FROM dependency_latency_history h JOIN dependencies d ON d.id = h.dependency_id "
                    f"JOIN services s ON s.id = d.service_id WHERE s.name = {sql_str(svc)} AND h.source = 'poll'") == "3"
    assert team.sql("SELECT h.error::text || '|' || h.error_message FROM dependency_error_history h JOIN dependencies d "
                    f"ON d.id = h.dependency_id WHERE d.name = 'kafka' AND d.service_id = '{team.service(svc)}'") \
        == '{"unhealthy": true}|Unhealthy'
    # the same error again writes no second row; a recovery writes one, and a status change event
    team.post("/v1/traces", traces(svc, [span(kind=4, attrs=[("messaging.system", "kafka")], error=True)]))
    team.post("/v1/traces", traces(svc, [span(kind=4, attrs=[("messaging.system", "kafka")])]))
    sid = team.service(svc)
    assert team.sql("SELECT count(*), count(h.error) FROM dependency_error_history h JOIN dependencies d "
                    f"ON d.id = h.dependency_id WHERE d.name = 'kafka' AND d.service_id = '{sid}'") == "2|1"
    assert team.sql("SELECT previous_healthy || '|' || current_healthy || '|' || dependency_name FROM "
                    f"status_change_events WHERE service_id = '{sid}' AND previous_healthy IS NOT NULL") == "false|true|kafka"
    # a new dependency's appearance is an event too, from nothing (open-questions D12)
    assert team.sql("SELECT count(*) FROM status_change_events WHERE previous_healthy IS NULL "
                    f"AND service_id = '{sid}' AND dependency_name = 'kafka'") == "1"


def test_unresolvable_target_warns_and_entry_without_service_name_is_rejected(team):
    req = traces(uniq("svc"), [span(name="mystery", kind=3, span_id=bytes.fromhex("00112233445566ff"))])
    rs = req.resource_spans.add()  # no service.name: skipped, its spans rejected
    rs.scope_spans.add().spans.extend([span(), span()])
    r = team.post("/v1/traces", req)
    assert r.status == 200, r
    resp = decode_trace_response(r)
    assert resp.partial_success.rejected_spans == 2
    assert resp.partial_success.error_message == (
        'Span "mystery" (00112233445566ff) has no resolvable target name \u2014 skipped for dependency discovery; '
        "Skipping resourceSpans entry: missing service.name resource attribute")


def test_warnings_are_capped(team):
    spans = [span(name=f"m{i}", kind=3, span_id=bytes([i]) * 8) for i in range(60)]
    r = team.post("/v1/traces", traces(uniq("many"), spans))
    assert r.status == 200, r
    msg = decode_trace_response(r).partial_success.error_message
    assert msg.count("has no resolvable target name") == 50
    assert msg.endswith("; ... and 10 more")


def test_bad_entry_is_rejected_alone(team):
    good, bad = uniq("good"), uniq("bad")
    req = traces(good, [span()])
    rs = req.resource_spans.add()
    rs.resource.attributes.append(otlp_pb.attr("service.name", bad))
    s = span()
    s.trace_id = b""
    rs.scope_spans.add().spans.extend([s, span()])
    r = team.post("/v1/traces", req)
    assert r.status == 200, r
    resp = decode_trace_response(r)
    assert resp.partial_success.rejected_spans == 2
    assert "traceId" in resp.partial_success.error_message
    assert team.service(good) != "" and team.service(bad) == ""  # the bad entry's service rolled back too
    assert team.sql(f"SELECT count(*) FROM span_resources WHERE service_name = {sql_str(good)}") == "1"


def test_two_entries_of_one_service_make_no_false_status_change(team):
    svc = uniq("dup")
    req = traces(svc, [span(attrs=[("db.system", "postgresql")])], [("host.name", "h1")])
    rs = req.resource_spans.add()
    rs.resource.attributes.extend([otlp_pb.attr("service.name", svc), otlp_pb.attr("host.name", "h2")])
    rs.scope_spans.add().spans.extend([span(attrs=[("db.system", "postgresql")])])
    assert team.post("/v1/traces", req).status == 200
    events = f"SELECT count(*) FROM status_change_events WHERE service_id = '{team.service(svc)}'"
    assert team.sql(events + " AND previous_healthy IS NOT NULL") == "0"
    assert team.sql(events + " AND previous_healthy IS NULL") == "1"  # its creation, once (D12)
    assert team.sql(f"SELECT count(*) FROM span_resources WHERE service_name = {sql_str(svc)}") == "2"


def test_database_error_text_is_not_sent_to_the_client(team):
    svc = uniq("leak")
    name = os.urandom(6400).hex()  # 12,800 random bytes: too long for the name index, compressed or not
    req = gauge_request(svc, [("dependency.health.status", "gauge", [([("dependency.name", name)], 0, 0)], {})])
    r = team.post("/v1/metrics", req)
    assert r.status == 200, r
    msg = otlp_pb.metrics_service().ExportMetricsServiceResponse.FromString(r.body).partial_success.error_message
    assert msg.startswith("Entry could not be stored (database error "), msg
    assert "index" not in msg


def test_concurrent_unhealthy_pushes_write_one_error_row(team):
    import threading
    import time
    from conftest import BackgroundTx
    svc = uniq("conc")
    assert team.post("/v1/traces", traces(svc, [span(kind=4, attrs=[("peer.service", "q")])])).status == 200
    sid = team.service(svc)
    tx = BackgroundTx(team.env.db.url)
    try:
        tx.run(f"BEGIN; SELECT 1 FROM dependencies WHERE service_id = '{sid}' FOR UPDATE;")
        out = []
        pushers = [threading.Thread(target=lambda: out.append(team.post("/v1/traces", traces(
            svc, [span(kind=4, attrs=[("peer.service", "q")], error=True)])).status)) for _ in range(2)]
        for th in pushers:
            th.start()
        time.sleep(1.0)  # both wait on the row lock
        tx.run("COMMIT;")
        for th in pushers:
            th.join(20)
    finally:
        tx.close()
    assert out == [200, 200]
    assert team.sql(f"SELECT count(*) FROM dependency_error_history h JOIN dependencies d ON d.id = h.dependency_id "
                    f"WHERE d.service_id = '{sid}'") == "1"
    assert team.sql(f"SELECT count(*) FROM status_change_events WHERE service_id = '{sid}' "
                    "AND previous_healthy IS NOT NULL") == "1"


def test_existing_service_with_another_format_warns(team):
    name = uniq("polled")
    team.sql(f"INSERT INTO services (name, team_id, health_endpoint) VALUES ({sql_str(name)}, '{team.id}', "
             "'https://example.com/h')")
    body = json.dumps(otlp_pb.to_json(traces(name, [span(attrs=[("peer.service", "x")])])))
    r = team.post("/v1/traces", body, content_type="application/json")
    assert r.status == 200, r
    msg = f'Service "{name}" exists with format "default" \u2014 receiving OTLP data but not overwriting format'
    assert r.json["partialSuccess"]["errorMessage"] == msg
    assert json.loads(team.sql(f"SELECT poll_warnings FROM services WHERE name = {sql_str(name)}")) == [msg]
    assert team.sql(f"SELECT health_endpoint_format FROM services WHERE name = {sql_str(name)}") == "default"


def test_auto_association_suggests_links_within_the_team(team):
    src, target = uniq("web"), uniq("Payments")
    tid = team.sql(f"INSERT INTO services (name, team_id, health_endpoint) VALUES ({sql_str(target)}, '{team.id}', "
                   "'https://example.com/h') RETURNING id")
    r = team.post("/v1/traces", traces(src, [span(attrs=[("peer.service", target.lower()),
                                                            ("http.request.method", "POST")])]))
    assert r.status == 200, r
    assert team.sql("SELECT a.association_type || '|' || a.is_auto_suggested || '|' || a.linked_service_id "
                    "FROM dependency_associations a JOIN dependencies d ON d.id = a.dependency_id "
                    f"WHERE d.service_id = '{team.service(src)}'") == f"api_call|true|{tid}"
    # dismissed suggestions are not re-created
    team.sql("UPDATE dependency_associations SET is_dismissed = true")
    team.post("/v1/traces", traces(src, [span(attrs=[("peer.service", target.lower())])]))
    assert team.sql(f"SELECT count(*) FROM dependency_associations WHERE linked_service_id = '{tid}'") == "1"


def test_large_default_collector_batch(team):
    svc = uniq("big")
    spans = [span(name=f"s{i}", kind=3 if i % 10 == 0 else 1,
                  attrs=[("http.request.method", "GET"), ("server.address", f"host{i % 7}"), ("url.path", "/p"),
                         ("http.response.status_code", 200), ("net.peer.port", 443), ("thread.id", i),
                         ("code.function", "handler"), ("k8s.pod.name", "pod-1"), ("x", "y" * 40)])
             for i in range(8192)]
    r = team.post("/v1/traces", traces(svc, spans))
    assert r.status == 200, r
    assert team.sql(f"SELECT count(*) FROM spans s JOIN span_resources r ON r.id = s.resource_id "
                    f"WHERE r.service_name = {sql_str(svc)}") == "8192"
    assert team.sql(f"SELECT count(*) FROM dependencies WHERE service_id = '{team.service(svc)}'") == "7"


def test_missing_partition_is_created_on_demand(team):
    part = team.sql("SELECT 'spans_' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD')")
    team.sql(f"DROP TABLE {part}")
    r = team.post("/v1/traces", traces(uniq("p"), [span()]))
    assert r.status == 200, r
    assert decode_trace_response(r).partial_success.rejected_spans == 0
    assert team.sql(f"SELECT count(*) FROM {part}") == "1"


def test_database_outage_is_503_then_the_retry_is_accepted(own_cluster, own_db, server):
    migrate(own_db.url, "up")
    e = Env()
    e.db, e.srv = own_db, server(own_db.url, args=["--no-poller", "--no-pruner"], workers=2)
    t = Team(e)
    svc = uniq("outage")
    body = traces(svc, [span(attrs=[("db.system", "postgresql")]) for _ in range(20)])
    assert t.post("/v1/traces", body).status == 200
    own_cluster.stop()
    r = t.post("/v1/traces", body)
    assert r.status == 503, r
    assert r.headers["Retry-After"] == "5"
    own_cluster.start()
    wait_for(lambda: t.post("/v1/traces", body).status == 200, 15, what="a push accepted after the restart")
    # every 200 stored its 20 spans whole; the 503 stored nothing
    n = int(t.sql(f"SELECT count(*) FROM spans s JOIN span_resources r ON r.id = s.resource_id "
                  f"WHERE r.service_name = {sql_str(svc)}"))
    assert n == 40, n


def test_nothing_is_cached_from_a_transaction_that_did_not_commit(cluster, server):
    d = cluster.create_db()
    try:
        migrate(d.url, "up")
        e = Env()
        e.db, e.srv = d, server(d.url, args=["--no-poller", "--no-pruner"], workers=1)
        t = Team(e)
        svc = uniq("rolled-back")
        # COMMIT fails (a deferred trigger): the request is answered 503 and its rows are gone
        t.sql("CREATE FUNCTION pg_temp_fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no'; END $$")
        t.sql("CREATE CONSTRAINT TRIGGER fail_at_commit AFTER INSERT ON span_resources DEFERRABLE INITIALLY DEFERRED "
              "FOR EACH ROW EXECUTE FUNCTION pg_temp_fail()")
        assert t.post("/v1/traces", traces(svc, [span(attrs=[("peer.service", "db")])])).status == 503
        t.sql("DROP TRIGGER fail_at_commit ON span_resources")
        # the worker did not keep the rolled-back service or resource: the next push writes them anew
        r = t.post("/v1/traces", traces(svc, [span(attrs=[("peer.service", "db")])]))
        assert r.status == 200, r
        assert t.sql("SELECT count(*) FROM spans s WHERE NOT EXISTS "
                     "(SELECT 1 FROM span_resources r WHERE r.id = s.resource_id)") == "0"
        assert t.sql(f"SELECT count(*) FROM services WHERE name = {sql_str(svc)}") == "1"
        # a push with warnings is not hidden by the one-second memo of a clean one
        clean, warned = traces(svc, [span(attrs=[("peer.service", "x")])]), traces(svc, [span(name="mystery")])
        for body in (clean, warned, clean):
            assert t.post("/v1/traces", body).status == 200
        assert t.sql(f"SELECT coalesce(poll_warnings::text, 'NULL') FROM services WHERE name = {sql_str(svc)}") == "NULL"
    finally:
        d.drop()


def test_worker_killed_mid_batch_loses_nothing_answered_200(cluster, server):
    import os
    import signal
    import threading
    d = cluster.create_db()
    try:
        migrate(d.url, "up")
        e = Env()
        e.db, e.srv = d, server(d.url, args=["--no-poller", "--no-pruner"], workers=4)
        t = Team(e)
        svc = uniq("killed")
        body = otlp_pb.gz(traces(svc, [span(attrs=[("peer.service", "x")]) for _ in range(50)]).SerializeToString())
        statuses, stop = [], threading.Event()

        def push():
            while not stop.is_set():
                try:
                    statuses.append(request("POST", e.srv.url("/v1/traces"), body=body, timeout=10, headers={
                        "Content-Type": "application/x-protobuf", "Content-Encoding": "gzip",
                        "Authorization": f"Bearer {t.key}"}).status)
                except OSError:
                    statuses.append(None)  # the connection died with its worker
        threads = [threading.Thread(target=push) for _ in range(8)]
        for th in threads:
            th.start()
        wait_for(lambda: len(statuses) >= 20, 20, what="pushes under way")
        victim = e.srv.children("worker")[0]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(statuses) >= 80, 30, what="pushes after the kill")
        stop.set()
        for th in threads:
            th.join(15)
        ok, other = statuses.count(200), len(statuses) - statuses.count(200)
        stored = int(d.psql(f"SELECT count(*) FROM spans s JOIN span_resources r ON r.id = s.resource_id "
                            f"WHERE r.service_name = {sql_str(svc)}"))
        assert stored % 50 == 0, stored               # no batch half-written
        assert ok * 50 <= stored <= (ok + other) * 50, (ok, other, stored)
    finally:
        d.drop()


# --------------------------------------------------------------------------
# request errors


def test_authentication_is_required(team, env):
    body = otlp_pb.gz(traces("x", [span()]).SerializeToString())
    r = request("POST", env.srv.url("/v1/traces"), body=body,
                headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"})
    assert r.status == 401 and r.json == {"error": "Missing Authorization header"}
    r = team.post("/v1/traces", traces("x", [span()]), headers={"Authorization": "Bearer dps_" + "0" * 32})
    assert r.status == 401 and r.json == {"error": "Invalid API key"}


@pytest.mark.parametrize("ctype,encoding,status", [
    ("text/plain", None, 415),
    ("application/x-protobuf", "br", 415),
    ("application/x-protobuf", "deflate", 415),
])
def test_unsupported_types_and_encodings(team, ctype, encoding, status):
    h = {"Content-Encoding": encoding} if encoding else {}
    r = team.post("/v1/traces", b"{}", content_type=ctype, gzip=False, headers=h)
    assert r.status == status, r


def test_undecodable_bodies_are_400(team):
    r = team.post("/v1/traces", b"\xff\xff\xff\xff", gzip=False)
    assert r.status == 400, r
    assert r.headers["Content-Type"].startswith("application/x-protobuf")
    r = team.post("/v1/metrics", '{"resourceMetrics": 5}', content_type="application/json", gzip=False)
    assert r.status == 400 and r.json == {"partialSuccess": {
        "rejectedDataPoints": -1, "errorMessage": "Invalid OTLP payload: expected object with resourceMetrics array"}}
    r = team.post("/v1/traces", b"not gzip", gzip=False, headers={"Content-Encoding": "gzip"})
    assert r.status == 400, r


def worker_peak_rss_kib(srv):
    peaks = []
    for pid in srv.children("worker"):
        with open(f"/proc/{pid}/status") as f:
            peaks += [int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:")]
    return max(peaks)


def test_decompression_bomb_is_413_and_memory_stays_bounded(team, env):
    # 1 GiB of zeros, about 1 MiB once compressed
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"\0" * (1 << 20)
    bomb = b"".join(z.compress(chunk) for _ in range(1024)) + z.flush()
    assert len(bomb) < 2 << 20
    r = team.post("/v1/traces", bomb, gzip=False, headers={"Content-Encoding": "gzip"})
    assert r.status == 413, r
    # the inflated body stopped at OTLP_MAX_BODY_BYTES (20 MiB): no worker came near the gigabyte
    assert worker_peak_rss_kib(env.srv) < 200 * 1024


@pytest.mark.parametrize("encoding", ["protobuf", "protobuf+gzip", "json", "json+gzip"])
def test_every_encoding_stores_the_same_rows(team, encoding):
    svc = f"enc-{encoding.replace('+', '-')}-{uuid.uuid4().hex[:6]}"
    spans = [span(name=f"s{i}", kind=3, start=1_700_000_000_000_000_000 + i, trace_id=bytes([i]) * 16,
                  span_id=bytes([i + 1]) * 8, attrs=[("db.system", "postgresql"), ("db.name", "orders"), ("i", i),
                                                     ("f", 0.25), ("b", True), ("s", "x\u00e9\"q")])
             for i in range(5)]
    req = traces(svc, spans, [("host.name", "h")])
    body = req.SerializeToString() if encoding.startswith("protobuf") else json.dumps(otlp_pb.to_json(req))
    ctype = "application/x-protobuf" if encoding.startswith("protobuf") else "application/json"
    r = team.post("/v1/traces", body, content_type=ctype, gzip=encoding.endswith("gzip"))
    assert r.status == 200, r
    rows = team.sql("SELECT encode(trace_id, 'hex') || encode(span_id, 'hex') || s.name || kind || status_code || "
                    "start_time || end_time || duration_ms || s.attributes::text FROM spans s JOIN span_resources r "
                    f"ON r.id = s.resource_id WHERE r.service_name = {sql_str(svc)} ORDER BY s.name")
    deps = team.sql("SELECT name || type || healthy || latency_ms || description || discovery_source FROM dependencies "
                    f"WHERE service_id = '{team.service(svc)}'")
    # the first encoding's rows are the reference for the others
    seen = test_every_encoding_stores_the_same_rows.__dict__.setdefault("seen", (rows, deps))
    assert (rows, deps) == seen
    assert len(rows.splitlines()) == 5
    assert deps == "postgresqldatabasetrue12ordersotlp_trace"


# --------------------------------------------------------------------------
# metrics


def gauge_request(service, metrics):
    ms = otlp_pb.metrics_service()
    req = ms.ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.append(otlp_pb.attr("service.name", service))
    sm = rm.scope_metrics.add()
    for name, kind, points, extra in metrics:
        m = sm.metrics.add(name=name, unit=extra.get("unit", ""))
        for attrs, value, t in points:
            if kind == "gauge":
                p = m.gauge.data_points.add()
            elif kind == "sum":
                m.sum.is_monotonic = extra.get("monotonic", True)
                p = m.sum.data_points.add()
            else:
                p = m.histogram.data_points.add()
                p.explicit_bounds.extend(value["bounds"])
                p.bucket_counts.extend(value["counts"])
                if "sum" in value:
                    p.sum = value["sum"]
            for k, v in attrs:
                p.attributes.append(otlp_pb.attr(k, v))
            if kind != "histogram":
                if isinstance(value, int):
                    p.as_int = value
                else:
                    p.as_double = value
            if t:
                p.time_unix_nano = t
    return req


def dep_row(team, service, name):
    return json.loads(team.sql("SELECT row_to_json(d) FROM dependencies d JOIN services s ON s.id = d.service_id "
                               f"WHERE s.name = {sql_str(service)} AND d.name = {sql_str(name)}"))


def test_gauges_set_dependency_fields(team):
    svc = uniq("m")
    labels = [("dependency.name", "db"), ("dependency.type", "database"), ("dependency.impact", "high"),
              ("dependency.description", "main db"), ("dependency.error_message", "slow")]
    req = gauge_request(svc, [("dependency.health.status", "gauge", [(labels, 1, 1_700_000_000_123_456_789)], {}),
                              ("dependency.health.healthy", "gauge", [([("dependency.name", "db")], 1, 0)], {}),
                              ("dependency.health.latency", "gauge", [([("dependency.name", "db")], 12.5, 0)], {}),
                              ("dependency.health.code", "gauge", [([("dependency.name", "db")], 503, 0)], {}),
                              ("dependency.health.check_skipped", "gauge", [([("dependency.name", "db")], 1, 0)], {})])
    r = team.post("/v1/metrics", req)
    assert r.status == 200, r
    d = dep_row(team, svc, "db")
    assert (d["type"], d["impact"], d["description"], d["error_message"]) == ("database", "high", "main db", "slow")
    assert (d["health_state"], d["healthy"], d["latency_ms"], d["health_code"], d["skipped"]) == (1, True, 12.5, 503, True)
    assert d["discovery_source"] == "otlp_metric"
    assert d["last_checked"].startswith("2023-11-14T22:13:20.123")


def test_histogram_percentiles_and_request_count(team):
    svc = uniq("h")
    req = gauge_request(svc, [
        ("http.client.duration", "histogram",
         [([("dependency.name", "api")], {"bounds": [0.005, 0.01, 0.025], "counts": [10, 60, 25, 5]}, 0)], {}),
        ("calls", "sum", [([("dependency.name", "api")], 42, 0)], {"monotonic": True})])
    r = team.post("/v1/metrics", req)
    assert r.status == 200, r
    row = team.sql("SELECT h.latency_ms || '|' || p50_ms || '|' || p95_ms || '|' || p99_ms || '|' || request_count || '|' "
                   "|| h.source FROM dependency_latency_history h JOIN dependencies d ON d.id = h.dependency_id "
                   f"WHERE d.service_id = '{team.service(svc)}'")
    assert row == "8|8.33|25|25|42|otlp_histogram"


def test_point_without_name_rejects_the_entry(team):
    svc = uniq("noname")
    req = gauge_request(svc, [("dependency.health.status", "gauge", [([("other", "x")], 0, 0), ([], 1, 0)], {})])
    r = team.post("/v1/metrics", json.dumps(otlp_pb.to_json(req)), content_type="application/json", gzip=False)
    assert r.status == 200, r
    assert r.json == {"partialSuccess": {"rejectedDataPoints": 2, "errorMessage":
                      'OTLP data point for metric "dependency.health.status" missing required attribute: dependency.name'}}
    assert team.service(svc) == ""


def test_custom_mapping_of_the_service(team):
    svc = uniq("custom")
    team.sql(f"INSERT INTO services (name, team_id, health_endpoint, health_endpoint_format, schema_config) VALUES "
             f"({sql_str(svc)}, '{team.id}', '', 'otlp', "
             """'{"metrics": {"my_latency": "latency"}, "labels": {"target": "name"}, "latency_unit": "s"}')""")
    req = gauge_request(svc, [("my_latency", "gauge", [([("target", "cache")], 0.25, 0)], {}),
                              ("dependency.health.latency", "gauge", [([("target", "cache")], 99, 0)], {})])
    r = team.post("/v1/metrics", req)
    assert r.status == 200, r
    assert dep_row(team, svc, "cache")["latency_ms"] == 250
