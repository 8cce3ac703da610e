"""A real client: the official OpenTelemetry JavaScript SDK against `depsera serve` (issue 5).

tests/otel-js/client.mjs uses @opentelemetry/sdk-trace-base, sdk-metrics and the OTLP/HTTP protobuf
exporters (gzip, `Authorization: Bearer`), pinned by tests/otel-js/package-lock.json. It sends one
trace (a SERVER root span, CLIENT spans for an HTTP call and a PostgreSQL query, a PRODUCER span for a
Kafka publish) and a histogram + counter for one dependency, then prints on stdout what the SDK
exported (span ids, the histogram point) and every HTTP exchange it had with the server.

The packages are installed with `npm ci` into a cache directory keyed by the sha256 of package.json
and package-lock.json ($DEPSERA_OTEL_JS_CACHE, else $XDG_CACHE_HOME or ~/.cache, /depsera/otel-js/),
so a machine installs them once. The test is skipped only when the npm registry cannot be reached;
a missing node or npm, any other npm failure, or any failure of the client fails it.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
import uuid

import pytest

import otlp_pb
from conftest import REPO, Server, base_env, migrate, shared_server_guard, sql_str

OTEL_JS = os.path.join(REPO, "tests", "otel-js")
LOCK_FILES = ("package.json", "package-lock.json")

# npm's error codes for "the registry could not be reached" (DNS, refused, unreachable, timeouts)
NETWORK_CODES = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "ESOCKETTIMEDOUT",
                 "ENETUNREACH", "EHOSTUNREACH", "ENETDOWN", "ERR_SOCKET_TIMEOUT", "ERR_SOCKET_CONNECTION_TIMEOUT",
                 "UND_ERR_CONNECT_TIMEOUT")
NETWORK_RE = re.compile(r"^npm (?:ERR!|error) (?:code|errno) (%s)\b" % "|".join(NETWORK_CODES), re.M)


def _cache_root():
    root = os.environ.get("DEPSERA_OTEL_JS_CACHE")
    if root:
        return root
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "depsera", "otel-js")


def _npm_env():
    env = base_env(NO_UPDATE_NOTIFIER=1)
    # TLS to the registry may go through a proxy whose authority only the system bundle holds
    if "npm_config_cafile" not in env and os.path.exists("/etc/ssl/certs/ca-certificates.crt"):
        env["npm_config_cafile"] = "/etc/ssl/certs/ca-certificates.crt"
    return env


@pytest.fixture(scope="module")
def otel_js():
    """The directory holding node_modules for tests/otel-js (installed on first use), and node's path."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.fail("node and npm are needed for the OpenTelemetry JS SDK test "
                    "(scripts/install-deps.sh installs Debian's nodejs and npm)", pytrace=False)
    digest = hashlib.sha256()
    for name in LOCK_FILES:
        with open(os.path.join(OTEL_JS, name), "rb") as f:
            digest.update(name.encode() + b"\0" + f.read() + b"\0")
    target = os.path.join(_cache_root(), digest.hexdigest()[:24])
    if not os.path.isdir(os.path.join(target, "node_modules")):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        work = f"{target}.tmp-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        for name in LOCK_FILES:
            shutil.copy(os.path.join(OTEL_JS, name), work)
        cmd = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error", "--prefer-offline",
               "--fetch-retries=2", "--fetch-retry-mintimeout=2000", "--fetch-retry-maxtimeout=10000"]
        t0 = time.monotonic()
        try:
            p = subprocess.run(cmd, cwd=work, env=_npm_env(), stdin=subprocess.DEVNULL, capture_output=True,
                               text=True, errors="replace", timeout=600)
        except subprocess.TimeoutExpired:
            shutil.rmtree(work, ignore_errors=True)
            pytest.fail("npm ci did not finish within 600 s", pytrace=False)
        out = (p.stdout + p.stderr).strip()
        if p.returncode != 0:
            shutil.rmtree(work, ignore_errors=True)
            m = NETWORK_RE.search(out)
            if m:
                why = re.search(r"request to \S+ failed, reason: .*", out)
                pytest.skip(f"the npm registry cannot be reached (npm ci failed with {m.group(1)}"
                            f"{': ' + why.group(0) if why else ''})")
            pytest.fail(f"npm ci failed with exit {p.returncode} (not a network error):\n{out[-4000:]}",
                        pytrace=False)
        try:
            os.rename(work, target)
        except OSError:  # another run installed it meanwhile
            shutil.rmtree(work, ignore_errors=True)
        print(f"npm ci: {time.monotonic() - t0:.1f} s into {target}")
    return target, node


class Env:
    pass


@pytest.fixture(scope="module")
def env(cluster, tmp_path_factory):
    d = cluster.create_db()
    tmp = tmp_path_factory.mktemp("otel-sdk")
    s = None
    try:
        assert migrate(d.url, "up").code == 0
        s = Server(d.url, args=["--no-poller", "--no-pruner"], workers=2, log_dir=str(tmp))
        s.start()
        e = Env()
        e.db, e.srv, e.tmp = d, s, tmp
        yield e
    finally:
        if s is not None:
            s.kill()
        d.drop()


@pytest.fixture(autouse=True)
def _check_server_log(env):
    yield from shared_server_guard(env.srv)


def rows(db, sql):
    """psql -At rows as lists of columns."""
    out = db.psql(sql)
    return [line.split("|") for line in out.splitlines()] if out else []


def test_opentelemetry_js_sdk_spans_and_histogram(env, otel_js):
    modules_dir, node = otel_js
    db = env.db
    team_id = db.psql(f"INSERT INTO teams (name, key) VALUES ('T-{uuid.uuid4().hex[:10]}', "
                      f"'k-{uuid.uuid4().hex[:10]}') RETURNING id")
    key, key_hash = otlp_pb.new_key()
    db.psql("INSERT INTO team_api_keys (team_id, name, key_hash, key_prefix) VALUES "
            f"('{team_id}', 'otel-js', '{key_hash}', '{key[:8]}')")
    service = f"checkout-{uuid.uuid4().hex[:8]}"

    # the client runs from a directory under the cache one, so that its imports find node_modules there
    run_dir = os.path.join(modules_dir, f"run-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    os.makedirs(run_dir)
    try:
        shutil.copy(os.path.join(OTEL_JS, "client.mjs"), run_dir)
        node_env = {k: v for k, v in base_env().items() if not k.startswith("OTEL_")}
        node_env.update(DEPSERA_OTLP_ENDPOINT=env.srv.base, DEPSERA_API_KEY=key, DEPSERA_SERVICE_NAME=service,
                        DEPSERA_METRIC_DEPENDENCY="payments-api")
        p = subprocess.run([node, os.path.join(run_dir, "client.mjs")], env=node_env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, errors="replace", timeout=120)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    assert p.returncode == 0, (f"the OpenTelemetry JS client failed (exit {p.returncode})\nstderr:\n{p.stderr[-4000:]}"
                               f"\nstdout:\n{p.stdout[-4000:]}\n{env.srv.tail()}")
    out = json.loads(p.stdout)
    print(f"node {out['node']}: {[(e['path'], e['status'], e['sent_bytes']) for e in out['exchanges']]}")
    assert out["problems"] == [] and out["diag"] == [], out

    # --- the HTTP exchanges: one protobuf+gzip POST per signal, answered 200 in protobuf, no partial success
    by_path = {}
    for ex in out["exchanges"]:
        by_path.setdefault(ex["path"], []).append(ex)
    assert sorted(by_path) == ["/v1/metrics", "/v1/traces"], out["exchanges"]
    for path, exs in by_path.items():
        assert len(exs) == 1, exs
        ex = exs[0]
        assert ex["method"] == "POST" and ex["status"] == 200, ex
        assert ex["request_headers"]["content-type"] == "application/x-protobuf", ex
        assert ex["request_headers"]["content-encoding"] == "gzip", ex
        assert ex["request_headers"]["authorization"] == "Bearer <key>", ex
        assert (ex["response_content_type"] or "").startswith("application/x-protobuf"), ex
        svc = otlp_pb.trace_service() if path == "/v1/traces" else otlp_pb.metrics_service()
        resp = (svc.ExportTraceServiceResponse if path == "/v1/traces" else svc.ExportMetricsServiceResponse)()
        resp.ParseFromString(bytes.fromhex(ex["response_body_hex"]))
        ps = resp.partial_success
        rejected = ps.rejected_spans if path == "/v1/traces" else ps.rejected_data_points
        assert rejected == 0 and ps.error_message == "", (path, resp)

    # --- stored spans: exactly the four the SDK exported, ids and parents as the SDK reported them
    sdk = {s["span_id"]: s for s in out["spans"]}
    assert len(sdk) == 4 and {s["trace_id"] for s in out["spans"]} == {out["trace_id"]}
    stored = rows(db, "SELECT encode(s.span_id, 'hex'), encode(s.trace_id, 'hex'), "
                      "coalesce(encode(s.parent_span_id, 'hex'), 'NULL'), s.name, s.kind, s.duration_ms, s.status_code "
                      "FROM spans s JOIN span_resources r ON r.id = s.resource_id "
                      f"WHERE r.team_id = '{team_id}' AND r.service_name = {sql_str(service)} ORDER BY s.start_time")
    assert len(stored) == 4, stored
    assert {r[0] for r in stored} == set(sdk), (stored, out["spans"])
    root_id = next(s["span_id"] for s in out["spans"] if s["name"] == "POST /checkout")
    otlp_kind = {"POST /checkout": "2", "GET": "3", "SELECT orders.items": "3", "send orders": "4"}
    duration = {"POST /checkout": 100, "GET": 40, "SELECT orders.items": 12, "send orders": 5}
    for span_id, trace_id, parent, name, kind, dur, status in stored:
        s = sdk[span_id]
        assert trace_id == out["trace_id"] and name == s["name"], (span_id, name, s)
        assert parent == ("NULL" if span_id == root_id else root_id) == (s["parent_span_id"] or "NULL"), (name, parent)
        assert kind == otlp_kind[name] and float(dur) == duration[name] and status == "0", (name, kind, dur, status)
    res = json.loads(db.psql(f"SELECT attributes FROM span_resources WHERE team_id = '{team_id}'"))
    res = {a["key"]: a["value"] for a in res}
    assert res["service.name"] == {"stringValue": service}
    assert res["telemetry.sdk.name"] == {"stringValue": "opentelemetry"}
    attrs = json.loads(db.psql("SELECT s.attributes FROM spans s JOIN span_resources r ON r.id = s.resource_id "
                               f"WHERE r.team_id = '{team_id}' AND s.name = 'GET'"))
    assert {"key": "server.port", "value": {"intValue": "8080"}} in attrs, attrs

    # --- discovered dependencies: three from the spans, one from the metrics
    deps = {r[0]: r[1:] for r in rows(db, (
        "SELECT d.name, d.type, d.discovery_source, d.description, d.healthy, d.health_state, d.health_code, "
        "d.latency_ms FROM dependencies d JOIN services s ON s.id = d.service_id "
        f"WHERE s.team_id = '{team_id}' AND s.name = {sql_str(service)}"))}
    assert deps == {
        "inventory.internal": ["rest", "otlp_trace", "GET inventory.internal/items/42", "t", "0", "200", "40"],
        "postgresql": ["database", "otlp_trace", "SELECT orders.items", "t", "0", "200", "12"],
        "kafka": ["message_queue", "otlp_trace", "send orders", "t", "0", "200", "5"],
        "payments-api": ["rest", "otlp_metric", "", "t", "0", "200", "25"],
    }, deps
    assert rows(db, "SELECT health_endpoint_format, poll_interval_ms, is_active, coalesce(poll_warnings::text, 'NULL') "
                    f"FROM services WHERE team_id = '{team_id}'") == [["otlp", "0", "t", "NULL"]]

    # --- latency history: a 'poll' row per span dependency, percentiles of the SDK's histogram
    hist = out["histogram"]
    assert hist["unit"] == "s" and hist["count"] == 100 and hist["points"] == 1, hist
    assert hist["counts"] == [10, 60, 25, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0], hist
    history = {r[0]: r[1:] for r in rows(db, (
        "SELECT d.name, h.source, h.latency_ms, coalesce(h.p50_ms::text, 'NULL'), coalesce(h.p95_ms::text, 'NULL'), "
        "coalesce(h.p99_ms::text, 'NULL'), coalesce(h.min_ms::text, 'NULL'), coalesce(h.max_ms::text, 'NULL'), "
        "coalesce(h.request_count::text, 'NULL') FROM dependency_latency_history h "
        "JOIN dependencies d ON d.id = h.dependency_id JOIN services s ON s.id = d.service_id "
        f"WHERE s.team_id = '{team_id}'"))}
    # bounds in s (u = 1000): p50 rank 50 in (0.005, 0.01] at 40/60 -> 8.33 ms; p95 rank 95 at the top
    # of (0.01, 0.025] -> 25 ms; p99 rank 99 in (0.25, 0.5] at 4/5 -> 450 ms; min/max 3/300 ms from the
    # point's min/max; latency = round(sum / count * 1000) = round(25.1) = 25; requests from the counter
    assert history == {
        "payments-api": ["otlp_histogram", "25", "8.33", "25", "450", "3", "300", "100"],
        "inventory.internal": ["poll", "40", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL"],
        "postgresql": ["poll", "12", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL"],
        "kafka": ["poll", "5", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL"],
    }, history
