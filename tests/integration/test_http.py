"""HTTP plumbing: errors, request ids, security headers, body limit, access log."""

import json
import socket
import time

import pytest

from conftest import Server, _stderr_files, request, wait_for


@pytest.fixture(scope="module")
def srv(cluster, tmp_path_factory):
    d = cluster.create_db()
    from conftest import migrate
    r = migrate(d.url, "up")
    assert r.code == 0, r
    s = Server(d.url, args=["--no-poller", "--no-pruner"], workers=2,
               log_dir=str(tmp_path_factory.mktemp("http")))
    try:
        s.start()
        yield s
    finally:
        s.kill()
        d.drop()


@pytest.fixture(autouse=True)
def _check_server_log(srv):
    # The module's server is shared: have every test scan its log for sanitizer reports.
    _stderr_files.append(srv.log_path)


def assert_json_error(r):
    assert "application/json" in (r.headers.get("Content-Type") or ""), r
    body = r.json
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], r


def test_unknown_api_path_is_json_404(srv):
    r = request("GET", srv.url("/api/no-such-thing"))
    assert r.status == 404, r
    assert_json_error(r)
    assert r.json["error"] == "Not found", r


def test_wrong_method_is_json_405_with_allow(srv):
    r = request("POST", srv.url("/api/health/live"), body=b"{}",
                headers={"Content-Type": "application/json"})
    assert r.status == 405, r
    assert_json_error(r)
    allow = r.headers.get("Allow")
    assert allow and "GET" in allow.upper(), f"405 needs an Allow header listing GET: {r}"


def test_request_id_on_every_response_and_unique(srv):
    ids = []
    for method, path in [("GET", "/api/health/live"), ("GET", "/api/health"),
                         ("GET", "/api/nope"), ("POST", "/api/health/live")] * 5:
        r = request(method, srv.url(path))
        rid = r.headers.get("X-Request-Id")
        assert rid, f"{method} {path}: no X-Request-Id: {r}"
        ids.append(rid)
    assert len(set(ids)) == len(ids), f"request ids are not unique: {ids}"


@pytest.mark.parametrize("method,path,status", [
    ("GET", "/api/health/live", 200),
    ("GET", "/api/health", 200),
    ("GET", "/api/no-such-thing", 404),
    ("POST", "/api/health/live", 405),
])
def test_security_headers(srv, method, path, status):
    r = request(method, srv.url(path))
    assert r.status == status, r
    csp = r.headers.get("Content-Security-Policy") or ""
    assert "default-src 'self'" in csp, f"CSP: {csp!r}"
    assert "frame-ancestors 'none'" in csp, f"CSP: {csp!r}"
    assert (r.headers.get("X-Frame-Options") or "").upper() == "DENY", r
    assert (r.headers.get("X-Content-Type-Options") or "").lower() == "nosniff", r


def raw_post(srv, path, body, timeout=10):
    """POST with a raw socket; tolerate the server answering before the body is sent."""
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n").encode()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout)
    data = b""
    try:
        try:
            s.sendall(head + body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    return data


def dechunk(data):
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2:]
    return out


def test_oversized_body_rejected_with_json(srv):
    body = b'{"x":"' + b"a" * (200 * 1024) + b'"}'
    data = raw_post(srv, "/api/health/live", body)
    assert data, "no response at all to a 200 KB POST"
    head, _, payload = data.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode()
    status = int(status_line.split()[1])
    assert status in (405, 413), status_line
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.decode().partition(":")
        headers[k.strip().lower()] = v.strip()
    if "chunked" in headers.get("transfer-encoding", ""):
        payload = dechunk(payload)
    elif "content-length" in headers:
        payload = payload[:int(headers["content-length"])]
    body_json = json.loads(payload)
    print(f"200 KB POST: {status_line}, {body_json}")
    assert isinstance(body_json.get("error"), str), body_json
    assert headers.get("x-request-id"), f"no X-Request-Id on the {status}: {head!r}"
    if status == 413:
        assert body_json["error"] == "Request body too large", body_json


def test_access_log_line_per_request(srv):
    seen = {}
    for method, path, status in [("GET", "/api/health/live", 200), ("GET", "/api/nope", 404),
                                 ("POST", "/api/health/live", 405)]:
        r = request(method, srv.url(path))
        assert r.status == status
        seen[r.headers["X-Request-Id"]] = (method, path, status, len(r.body))

    def lines_for(rid):
        return [o for o in srv.log_lines() if o.get("msg") == "request" and o.get("req_id") == rid]

    for rid, (method, path, status, nbytes) in seen.items():
        found = wait_for(lambda: lines_for(rid), 3, what=f"access log line for {rid}",
                         detail=srv.tail)
        time.sleep(0.1)
        found = lines_for(rid)
        assert len(found) == 1, f"expected one access-log line for {rid}, got {found}"
        o = found[0]
        assert o.get("method") == method, o
        assert o.get("path") == path, o
        assert o.get("status") == status, o
        assert isinstance(o.get("bytes"), int) and o["bytes"] >= 0, o
        assert isinstance(o.get("duration_ms"), (int, float)) and o["duration_ms"] >= 0, o
        assert o.get("role") == "worker", o


def test_log_lines_are_json_objects_with_common_keys(srv):
    request("GET", srv.url("/api/health/live"))
    text = srv.log_text()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert lines, "the server logged nothing"
    for ln in lines:
        try:
            o = json.loads(ln)
        except ValueError:
            pytest.fail(f"log line is not JSON: {ln!r}")
        missing = {"ts", "level", "role", "pid", "msg"} - set(o)
        assert not missing, f"log line misses {missing}: {ln}"
        assert o["role"] in ("supervisor", "worker", "poller", "pruner"), ln
    listening = [o for o in srv.log_lines() if o.get("msg") == "listening"]
    assert listening and listening[0].get("port") == srv.port, \
        f"supervisor must log 'listening' with the port: {listening}"
