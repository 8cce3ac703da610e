"""Native HTTPS: ENABLE_HTTPS, SSL_CERT_PATH/SSL_KEY_PATH, HTTP_PORT (configuration.md §1 "Core / HTTP")."""

import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess

import pytest

from conftest import ApiClient, base_env, free_port, request, run_cli, wait_for

ADMIN_EMAIL, PASSWORD = "admin@example.com", "correct horse battery"
SERVE = ["--no-poller", "--no-pruner"]


def peer_cert(port, host="127.0.0.1"):
    """The DER certificate the server presents on a new TLS connection, and the ALPN protocol it chose."""
    ctx = ssl._create_unverified_context()
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection((host, port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.getpeercert(binary_form=True), tls.selected_alpn_protocol()


def cert_text(der, tmp_path):
    p = tmp_path / "peer.der"
    p.write_bytes(der)
    return subprocess.run(["openssl", "x509", "-inform", "DER", "-in", str(p), "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout


def make_pair(tmp_path, name, cn):
    """A self-signed RSA certificate and key made by openssl req: (cert path, key path)."""
    cert, key = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={cn}",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   capture_output=True, check=True)
    return str(cert), str(key)


def file_der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def https_env(**extra):
    return dict({"ENABLE_HTTPS": "true", "LOCAL_AUTH": "true", "ADMIN_EMAIL": ADMIN_EMAIL,
                 "ADMIN_PASSWORD": PASSWORD}, **extra)


def test_generated_certificate_serves_https_shared_by_workers(migrated_db, server, tmp_path):
    s = server(migrated_db.url, args=SERVE, env=https_env(), workers=2)
    assert s.base.startswith("https://")
    r = request("GET", s.url("/api/health"))
    assert r.status == 200, r
    # every worker presents the one certificate the supervisor made before forking
    ders = {peer_cert(s.port)[0] for _ in range(8)}
    assert len(ders) == 1, "workers present different certificates"
    text = cert_text(ders.pop(), tmp_path)
    assert "CN = localhost" in text, text
    assert "DNS:localhost" in text and "IP Address:127.0.0.1" in text, text
    assert any("self-signed" in o.get("msg", "") and o.get("level") == "warn" for o in s.log_lines()), s.tail()
    listening = s.find_logs(msg="listening")
    assert listening and listening[0].get("https") is True, listening


def test_http2_negotiated_and_post_over_tls(migrated_db, server):
    s = server(migrated_db.url, args=SERVE, env=https_env(), workers=1)
    assert peer_cert(s.port)[1] == "h2"
    if shutil.which("curl"):
        for flag, want in (("--http2", "2"), ("--http1.1", "1.1")):
            p = subprocess.run(["curl", "-k", "-s", flag, "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                                s.url("/api/health")], capture_output=True, text=True, timeout=10)
            assert p.stdout == f"200 {want}", (flag, p.stdout, p.stderr)
    c = ApiClient(s.base)
    r = c.login(ADMIN_EMAIL, PASSWORD)
    cookies = r.headers.get_all("Set-Cookie") or []
    assert cookies and all("; Secure" in v for v in cookies), cookies  # the connection is secure
    r = c.post("/api/teams", {"name": "tls-team", "key": "tls-team"})
    assert r.status == 201, r
    assert c.get("/api/teams").status == 200


def test_plain_http_on_the_https_port_gets_no_page(migrated_db, server):
    s = server(migrated_db.url, args=SERVE, env=https_env(), workers=1)
    try:
        r = request("GET", f"http://127.0.0.1:{s.port}/api/health", timeout=3)
    except (OSError, http.client.HTTPException):
        r = None  # the TLS handshake fails on plain text: the connection is dropped
    assert r is None, r
    assert request("GET", s.url("/api/health")).status == 200  # the worker survived it


def test_certificate_files_are_presented(migrated_db, server, tmp_path):
    cert, key = make_pair(tmp_path, "server", "depsera-test")
    s = server(migrated_db.url, args=SERVE, env=https_env(SSL_CERT_PATH=cert, SSL_KEY_PATH=key), workers=2)
    assert peer_cert(s.port)[0] == file_der(cert)
    # and a client that trusts exactly that certificate verifies the connection
    ctx = ssl.create_default_context(cafile=cert)
    r = request("GET", s.url("/api/health/live"), context=ctx)
    assert r.status == 200, r
    assert not any("self-signed" in o.get("msg", "") for o in s.log_lines())


@pytest.mark.parametrize("given", ["SSL_CERT_PATH", "SSL_KEY_PATH"])
def test_one_path_without_the_other_refuses_to_start(migrated_db, tmp_path, given):
    cert, key = make_pair(tmp_path, "one", "one")
    env = base_env(migrated_db.url, ENABLE_HTTPS="true", PORT=free_port(), WORKERS=1,
                   **{given: cert if given == "SSL_CERT_PATH" else key})
    r = run_cli(["serve"] + SERVE, env=env, timeout=30)
    other = "SSL_KEY_PATH" if given == "SSL_CERT_PATH" else "SSL_CERT_PATH"
    assert r.code == 2, r
    assert f"{given}: must be given together with {other}" in r.err, r


@pytest.mark.parametrize("case", ["missing", "mismatch"])
def test_unusable_certificate_files_refuse_to_start(migrated_db, tmp_path, case):
    cert, key = make_pair(tmp_path, "a", "a")
    _, other_key = make_pair(tmp_path, "b", "b")
    if case == "missing":
        cert = str(tmp_path / "nowhere.crt")
    else:
        key = other_key
    env = base_env(migrated_db.url, ENABLE_HTTPS="true", SSL_CERT_PATH=cert, SSL_KEY_PATH=key,
                   PORT=free_port(), WORKERS=1)
    r = run_cli(["serve"] + SERVE, env=env, timeout=30)
    assert r.code == 2, r
    want = "SSL_CERT_PATH: cannot load the certificate from " + cert if case == "missing" else "does not match"
    assert want in r.err, r
    assert any(o.get("msg") == "cannot set up HTTPS" and want in o.get("error", "") for o in r.log_lines()), r


def test_http_port_serves_health_and_redirects_the_rest(migrated_db, server):
    http_port = free_port()
    s = server(migrated_db.url, args=SERVE, env=https_env(HTTP_PORT=http_port), workers=2)
    plain = f"http://127.0.0.1:{http_port}"
    for path in ("/api/health", "/api/health/live"):
        r = request("GET", plain + path)
        assert r.status == 200, (path, r)
    r = request("GET", plain + "/api/services?team_id=7&x=1")
    assert r.status == 301, r
    want = f"https://127.0.0.1:{s.port}/api/services?team_id=7&x=1"
    assert r.headers["Location"] == want, r
    assert r.json == {"error": "HTTPS required", "location": want}, r
    r = request("POST", plain + "/v1/traces", body=b"{}", headers={"Content-Type": "application/json"})
    assert r.status == 301 and r.headers["Location"] == f"https://127.0.0.1:{s.port}/v1/traces", r
    for host, want_host in (("depsera.example.com:8080", "depsera.example.com"), ("[::1]:80", "[::1]"),
                            ("depsera.example.com", "depsera.example.com")):
        r = request("GET", plain + "/", headers={"Host": host})
        assert r.status == 301 and r.headers["Location"] == f"https://{want_host}:{s.port}/", (host, r)
    r = request("GET", plain + "/api/teams", headers={"Host": "evil.example/x"})
    assert r.status == 400, r
    # HTTP/1.0 without Host: to the address the client connected to
    with socket.create_connection(("127.0.0.1", http_port), timeout=5) as c:
        c.sendall(b"GET /api/teams HTTP/1.0\r\n\r\n")
        raw = b"".join(iter(lambda: c.recv(4096), b""))
    assert raw.startswith(b"HTTP/1.1 301 "), raw
    assert f"\r\nlocation: https://127.0.0.1:{s.port}/api/teams\r\n".encode() in raw.lower(), raw
    # the redirect target answers over TLS
    assert request("GET", want).status == 401


def test_http_port_without_https_is_ignored_with_a_warning(migrated_db, server):
    http_port = free_port()
    s = server(migrated_db.url, args=SERVE, env={"HTTP_PORT": http_port}, workers=1)
    assert request("GET", s.url("/api/health")).status == 200
    assert s.find_logs(msg="HTTP_PORT is ignored without ENABLE_HTTPS"), s.tail()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", http_port), timeout=2).close()


def test_require_https_does_not_redirect_tls_requests(migrated_db, server):
    http_port = free_port()
    s = server(migrated_db.url, args=SERVE, env=https_env(REQUIRE_HTTPS="true", HTTP_PORT=http_port), workers=1)
    r = request("GET", s.url("/api/auth/mode"))
    assert r.status == 200, r
    c = ApiClient(s.base)
    c.login(ADMIN_EMAIL, PASSWORD)
    assert c.get("/api/auth/me").status == 200
    # plain requests still go to PORT, not to the port they came in on
    r = request("GET", f"http://127.0.0.1:{http_port}/api/auth/mode")
    assert r.status == 301 and r.headers["Location"] == f"https://127.0.0.1:{s.port}/api/auth/mode", r


def test_sighup_reads_renewed_certificate_files(migrated_db, server, tmp_path):
    cert, key = make_pair(tmp_path, "live", "first")
    first = file_der(cert)
    s = server(migrated_db.url, args=SERVE, env=https_env(SSL_CERT_PATH=cert, SSL_KEY_PATH=key), workers=2)
    assert peer_cert(s.port)[0] == first
    new_cert, new_key = make_pair(tmp_path, "next", "second")
    os.replace(new_cert, cert)
    os.replace(new_key, key)
    s.stop(signal.SIGHUP)
    s.wait_log(lambda o: o.get("msg") == "reload complete", 20, "reload complete")
    second = file_der(cert)
    assert {peer_cert(s.port)[0] for _ in range(6)} == {second}
    # a broken renewal keeps the current certificate
    with open(key, "w") as f:
        f.write("not a key\n")
    s.stop(signal.SIGHUP)
    s.wait_log(lambda o: o.get("msg", "").startswith("reload failed: cannot set up HTTPS"), 10, "reload failure")
    assert peer_cert(s.port)[0] == second
    assert request("GET", s.url("/api/health")).status == 200
