"""Integration harness: a real PostgreSQL cluster and the real depsera binary.

Fixtures
  cluster       session-wide throwaway cluster (scripts/pg-cluster.sh)
  own_cluster   a private cluster for tests that stop PostgreSQL
  db            a fresh database on `cluster`, dropped after the test
  own_db        a fresh database on `own_cluster`
  migrated_db   `db` with `depsera migrate up` applied
  server        factory: server(db_url, args=..., env=...) -> started Server

Helpers (importable: `from conftest import ...`)
  BIN, run_cli, migrate, Server, get/request, RequestLoop, psql, BackgroundTx,
  wait_for, free_port, pg_bin

Every process started here is killed at teardown, and a test fails when a
sanitizer report shows up in the stderr of any depsera process it ran.
"""

import glob
import http.client
import json
import os
import queue
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("DEPSERA_BIN") or os.path.join(REPO, "depsera")
PG_CLUSTER = os.path.join(REPO, "scripts", "pg-cluster.sh")

# Variables the binary reads; never inherited from the caller's environment.
DEPSERA_VARS = (
    "DATABASE_URL", "HOST", "PORT", "WORKERS", "DRAIN_TIMEOUT_MS", "LOG_LEVEL",
    "NODE_ENV", "LOCAL_AUTH", "ADMIN_EMAIL", "ADMIN_PASSWORD", "SESSION_SECRET",
    "RATE_LIMIT_MAX", "RATE_LIMIT_WINDOW_MS", "AUTH_RATE_LIMIT_MAX", "AUTH_RATE_LIMIT_WINDOW_MS",
    "REQUIRE_HTTPS", "TRUST_PROXY", "CORS_ORIGIN", "ENABLE_HTTPS", "SSL_CERT_PATH", "SSL_KEY_PATH", "HTTP_PORT",
)

SANITIZER_PATTERNS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


# --------------------------------------------------------------------------
# small utilities


def wait_for(pred, timeout, interval=0.05, what="condition", detail=None):
    """Poll pred() until it returns a truthy value (returned) or fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            extra = ""
            if detail is not None:
                extra = "\n" + (detail() if callable(detail) else str(detail))
            pytest.fail(f"timed out after {timeout}s waiting for {what}{extra}")
        time.sleep(interval)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin(name):
    """Path of a PostgreSQL client/server program (pg_config bindir, else highest version)."""
    dirs = []
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
        dirs.append(out.stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        pass

    def version(d):
        try:
            return int(d.split("/")[-2])
        except ValueError:
            return 0

    dirs += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    for d in dirs:
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    found = shutil.which(name)
    if found:
        return found
    raise RuntimeError(f"{name} not found")


def base_env(db_url=None, **overrides):
    """The caller's environment without depsera's variables, plus overrides (None removes)."""
    env = {k: v for k, v in os.environ.items() if k not in DEPSERA_VARS}
    env["PGCONNECT_TIMEOUT"] = "5"
    # a sanitizer build run straight from pytest (not through make) needs the same suppressions
    env.setdefault("LSAN_OPTIONS", "suppressions=%s:print_suppressions=0" % os.path.join(REPO, "tests", "lsan.supp"))
    if db_url is not None:
        env["DATABASE_URL"] = db_url
    for k, v in overrides.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


# --------------------------------------------------------------------------
# sanitizer reports: every stderr a test produced is checked at its end

_stderr_files = []   # paths of server logs started during the current test
_stderr_texts = []   # captured stderr of CLI runs during the current test


def sanitizer_reports(text):
    return [line for line in text.splitlines() if any(p in line for p in SANITIZER_PATTERNS)]


@pytest.fixture(autouse=True)
def _sanitizer_check(request):
    del _stderr_files[:]
    del _stderr_texts[:]
    yield
    problems = []
    for path in list(_stderr_files):
        try:
            with open(path, errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        if sanitizer_reports(text):
            problems.append(f"--- {path}:\n" + _report_excerpt(text))
    for text in list(_stderr_texts):
        if sanitizer_reports(text):
            problems.append("--- CLI stderr:\n" + _report_excerpt(text))
    if problems:
        pytest.fail("sanitizer report(s) in depsera stderr:\n" + "\n".join(problems), pytrace=False)


def _report_excerpt(text, lines=60):
    all_lines = text.splitlines()
    for i, line in enumerate(all_lines):
        if any(p in line for p in SANITIZER_PATTERNS):
            return "\n".join(all_lines[max(0, i - 2):i + lines])
    return ""


# --------------------------------------------------------------------------
# CLI runs


class Result:
    def __init__(self, args, code, out, err, elapsed):
        self.args, self.code, self.out, self.err, self.elapsed = args, code, out, err, elapsed

    def __repr__(self):
        return (f"<depsera {' '.join(self.args)}: exit {self.code} after {self.elapsed:.2f}s\n"
                f"stdout:\n{self.out}\nstderr:\n{self.err}>")

    def log_lines(self):
        return parse_log(self.err)


def run_cli(args, env=None, timeout=60, db_url=None):
    """Run `depsera ARGS` to completion; returns Result(code, out, err)."""
    if env is None:
        env = base_env(db_url)
    t0 = time.monotonic()
    try:
        p = subprocess.run([BIN] + list(args), env=env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        _stderr_texts.append(err)
        pytest.fail(f"depsera {' '.join(args)} did not finish within {timeout}s; stderr:\n{err[-3000:]}")
    _stderr_texts.append(p.stderr)
    return Result(list(args), p.returncode, p.stdout, p.stderr, time.monotonic() - t0)


def migrate(db_url, *args, env=None, timeout=60):
    """`depsera migrate ARGS` against db_url."""
    return run_cli(["migrate"] + [str(a) for a in args], env=env or base_env(db_url), timeout=timeout)


def parse_log(text):
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


# --------------------------------------------------------------------------
# PostgreSQL


def psql(url, sql, timeout=30):
    """Run SQL with psql -At; returns stdout stripped; fails the test on error."""
    p = subprocess.run([pg_bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-At", "-c", sql],
                       capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                       env=base_env())
    if p.returncode != 0:
        pytest.fail(f"psql failed ({p.returncode}) for {sql!r}:\n{p.stderr}")
    return p.stdout.strip()


class BackgroundTx:
    """A psql session fed over stdin, to hold locks or transactions open.

    tx = BackgroundTx(url); tx.run("BEGIN; LOCK TABLE _migrations IN ACCESS EXCLUSIVE MODE;")
    ... tx.run("COMMIT;"); tx.close()
    run() returns once the statements have completed (it waits for a marker row).
    """

    def __init__(self, url):
        self.proc = subprocess.Popen(
            [pg_bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", url],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1, env=base_env())
        self.lines = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._n = 0

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def run(self, sql, timeout=15):
        self._n += 1
        marker = f"bgtx-done-{self._n}"
        self.proc.stdin.write(f"{sql}\nSELECT '{marker}';\n")
        self.proc.stdin.flush()
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"background psql: {sql!r} did not complete in {timeout}s; output: {seen}")
            if line is None:
                pytest.fail(f"background psql exited during {sql!r}; output: {seen}")
            if line == marker:
                return seen
            seen.append(line)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Cluster:
    def __init__(self, directory):
        self.dir = directory
        self.url = None
        self.port = None

    def start(self):
        p = subprocess.run([PG_CLUSTER, "start", self.dir], capture_output=True, text=True,
                           timeout=120, stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            raise RuntimeError(f"pg-cluster.sh start failed ({p.returncode}):\n{p.stderr}")
        self.url = p.stdout.strip()
        self.port = urllib.parse.urlsplit(self.url).port
        return self

    def stop(self):
        p = subprocess.run([PG_CLUSTER, "stop", self.dir], capture_output=True, text=True,
                           timeout=120, stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            raise RuntimeError(f"pg-cluster.sh stop failed ({p.returncode}):\n{p.stderr}")

    def destroy(self):
        subprocess.run([PG_CLUSTER, "destroy", self.dir], capture_output=True, text=True,
                       timeout=120, stdin=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)

    def db_url(self, name):
        return f"postgresql://depsera@127.0.0.1:{self.port}/{name}"

    @property
    def admin_url(self):
        return self.db_url("postgres")

    def create_db(self):
        name = "t_" + secrets.token_hex(6)
        psql(self.admin_url, f"CREATE DATABASE {name}")
        return Database(self, name)


class Database:
    def __init__(self, cluster, name):
        self.cluster, self.name = cluster, name
        self.url = cluster.db_url(name)

    def psql(self, sql, timeout=30):
        return psql(self.url, sql, timeout)

    def drop(self):
        try:
            psql(self.cluster.admin_url,
                 f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 f"WHERE datname = '{self.name}' AND pid <> pg_backend_pid()")
            psql(self.cluster.admin_url, f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
        except BaseException:  # cluster stopped by the test, or already gone
            pass


def _new_cluster():
    d = tempfile.mkdtemp(prefix="depsera-itest-pg-")
    c = Cluster(d)
    try:
        c.start()
    except BaseException:
        c.destroy()
        raise
    return c


@pytest.fixture(scope="session")
def cluster():
    c = _new_cluster()
    try:
        yield c
    finally:
        c.destroy()


@pytest.fixture
def own_cluster():
    """A private cluster, for tests that stop and restart PostgreSQL."""
    c = _new_cluster()
    try:
        yield c
    finally:
        c.destroy()


@pytest.fixture
def db(cluster):
    d = cluster.create_db()
    try:
        yield d
    finally:
        d.drop()


@pytest.fixture
def own_db(own_cluster):
    return own_cluster.create_db()


def migrate_up(db_):
    r = migrate(db_.url, "up")
    if r.code != 0:
        pytest.fail(f"migrate up failed: {r!r}")
    return db_


@pytest.fixture
def migrated_db(db):
    return migrate_up(db)


@pytest.fixture(scope="session")
def binary():
    if not os.access(BIN, os.X_OK):
        pytest.fail(f"depsera binary not found at {BIN} (build it, or set DEPSERA_BIN)", pytrace=False)
    return BIN


@pytest.fixture(autouse=True)
def _need_binary(binary):
    pass


# --------------------------------------------------------------------------
# processes


def proc_stat(pid):
    """(comm, state, ppid) of a pid, or None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    lp, rp = data.index("("), data.rindex(")")
    comm = data[lp + 1:rp]
    rest = data[rp + 2:].split()
    return comm, rest[0], int(rest[1])


def pid_alive(pid):
    """True if pid exists and is not a zombie."""
    st = proc_stat(pid)
    return st is not None and st[1] not in ("Z", "X")


def children_of(ppid):
    """{pid: comm} of the live (non-zombie) children of ppid."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = proc_stat(int(entry))
        if st and st[2] == ppid and st[1] not in ("Z", "X"):
            try:
                with open(f"/proc/{entry}/comm") as f:
                    comm = f.read().strip()
            except OSError:
                continue
            out[int(entry)] = comm
    return out


def descendants_of(pid):
    result, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        for c in children_of(p):
            if c not in result:
                result.append(c)
                frontier.append(c)
    return result


class Server:
    """`depsera serve` (or any long-running subcommand) on a free port."""

    def __init__(self, db_url, args=(), env=None, workers=2, log_dir=None, command="serve",
                 log_level="debug"):
        self.port = free_port()
        self.host = "127.0.0.1"
        https = str((env or {}).get("ENABLE_HTTPS", "")).lower() in ("true", "1")
        self.base = f"{'https' if https else 'http'}://{self.host}:{self.port}"
        self.command = command
        self.args = [command] + list(args)
        # the per-IP limiters would throttle a test suite that logs in from 127.0.0.1 all the time;
        # tests of the limiters set their own values
        overrides = {"HOST": self.host, "PORT": self.port, "LOG_LEVEL": log_level,
                     "RATE_LIMIT_MAX": 1000000, "AUTH_RATE_LIMIT_MAX": 100000}
        if workers is not None:
            overrides["WORKERS"] = workers
        overrides.update(env or {})
        self.env = base_env(db_url, **overrides)
        self.log_dir = log_dir or tempfile.mkdtemp(prefix="depsera-itest-log-")
        self.log_path = os.path.join(self.log_dir, f"{command}-{self.port}.stderr.log")
        self.out_path = os.path.join(self.log_dir, f"{command}-{self.port}.stdout.log")
        self.proc = None
        self.known_pids = set()

    # lifecycle ------------------------------------------------------------

    def start(self, wait=True, timeout=15):
        self._err = open(self.log_path, "wb")
        self._out = open(self.out_path, "wb")
        _stderr_files.append(self.log_path)
        self.proc = subprocess.Popen([BIN] + self.args, env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=self._err, start_new_session=True)
        self.t_start = time.monotonic()
        if wait:
            self.wait_ready(timeout)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def wait_ready(self, timeout=15):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"depsera {' '.join(self.args)} exited with {self.proc.returncode} "
                            f"before answering /api/health/live\n{self.tail()}")
            try:
                r = request("GET", self.url("/api/health/live"), timeout=1)
                if r.status == 200:
                    self.known_pids.update(descendants_of(self.pid))
                    return
                last = f"status {r.status}"
            except OSError as e:
                last = repr(e)
            time.sleep(0.05)
        pytest.fail(f"depsera did not answer GET /api/health/live within {timeout}s "
                    f"(last: {last})\n{self.tail()}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM):
        os.kill(self.pid, sig)

    def wait(self, timeout):
        """Wait for the supervisor to exit; returns its exit code (negative: signal)."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"depsera did not exit within {timeout}s\n{self.tail()}")

    def kill(self):
        """Teardown: SIGTERM (briefly), then SIGKILL everything it started."""
        if self.proc is None:
            return
        pids = set(self.known_pids)
        if self.proc.poll() is None:
            pids.update(descendants_of(self.pid))
            try:
                os.kill(self.pid, signal.SIGTERM)
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            pids.update(descendants_of(self.pid))
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except OSError:
                pass
            self.proc.kill()
            self.proc.wait()
        for p in pids:
            st = proc_stat(p)
            if st and st[0].startswith("depsera") and st[1] != "Z":
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except OSError:
            pass
        self._err.close()
        self._out.close()

    # introspection --------------------------------------------------------

    def url(self, path):
        return self.base + path

    def children(self, role=None):
        """Sorted pids of live children whose comm is depsera-<role> (all children if None)."""
        kids = children_of(self.pid)
        if role is not None:
            kids = {p: c for p, c in kids.items() if c == f"depsera-{role}"}
        self.known_pids.update(kids)
        return sorted(kids)

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_lines(self):
        return parse_log(self.log_text())

    def find_logs(self, **fields):
        """Log objects whose fields equal the given values (msg=..., child_pid=...)."""
        return [o for o in self.log_lines() if all(o.get(k) == v for k, v in fields.items())]

    def wait_log(self, pred, timeout, what="log line"):
        """Wait for a log object satisfying pred; returns it."""
        def find():
            for o in self.log_lines():
                if pred(o):
                    return o
            return None
        return wait_for(find, timeout, what=what, detail=self.tail)

    def tail(self, n=40):
        """The end of the log, access-log lines left out (they would drown the rest)."""
        lines = [ln for ln in self.log_text().splitlines()
                 if '"msg":"request"' not in ln.replace(" ", "")]
        return (f"--- last {min(n, len(lines))} non-access lines of {self.log_path}:\n"
                + "\n".join(lines[-n:]))


@pytest.fixture
def server(tmp_path):
    """Factory: server(db_url, args=(), env={}, workers=2, wait=True) -> started Server."""
    started = []

    def make(db_url, args=(), env=None, workers=2, wait=True, command="serve", timeout=15):
        s = Server(db_url, args=args, env=env, workers=workers, log_dir=str(tmp_path), command=command)
        started.append(s)
        return s.start(wait=wait, timeout=timeout)

    yield make
    for s in started:
        s.kill()


# --------------------------------------------------------------------------
# HTTP


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    @property
    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def __repr__(self):
        return f"<{self.status} {dict(self.headers)} {self.body[:300]!r}>"


def request(method, url, body=None, headers=None, timeout=5, context=None):
    """One request on a new connection. https:// URLs are not verified unless `context` says how."""
    u = urllib.parse.urlsplit(url)
    if u.scheme == "https":
        conn = http.client.HTTPSConnection(u.hostname, u.port, timeout=timeout,
                                           context=context or ssl._create_unverified_context())
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        path = u.path + ("?" + u.query if u.query else "")
        conn.request(method, path, body=body, headers=dict(headers or {}, Connection="close"))
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, r.headers, data)
    finally:
        conn.close()


def get(url, timeout=5):
    """GET url -> (status, headers, parsed JSON body or None)."""
    r = request("GET", url, timeout=timeout)
    return r.status, r.headers, r.json


_RETRYABLE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
              ConnectionAbortedError)


class RequestLoop(threading.Thread):
    """Issue GET requests back to back and count successes (200) and failures.

    keepalive=False: a new connection per request.
    keepalive=True: one persistent connection; a request that fails on a *reused*
    connection before any response byte arrives is retried once on a new one
    (RFC 9112 §9.3.1), as every standard HTTP client does.
    Bounded: stops by itself after max_seconds.
    """

    def __init__(self, url, keepalive=False, timeout=5.0, max_seconds=60.0):
        super().__init__(daemon=True)
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port
        self.path = u.path + ("?" + u.query if u.query else "")
        self.keepalive, self.timeout, self.max_seconds = keepalive, timeout, max_seconds
        self.successes = 0
        self.failures = []   # (wall-clock time, error text): compare with the log's "ts"
        self.retries = 0
        self.connections = 0
        self._stop_evt = threading.Event()
        self._conn = None

    def _new_conn(self):
        self.connections += 1
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def _once_new(self):
        conn = self._new_conn()
        try:
            conn.request("GET", self.path, headers={"Connection": "close"})
            r = conn.getresponse()
            r.read()
            return r.status
        finally:
            conn.close()

    def _once_keepalive(self):
        for attempt in (0, 1):
            reused = self._conn is not None
            if self._conn is None:
                self._conn = self._new_conn()
            try:
                self._conn.request("GET", self.path)
                r = self._conn.getresponse()
            except _RETRYABLE as e:
                self._conn.close()
                self._conn = None
                if reused and attempt == 0:
                    self.retries += 1
                    continue
                where = "retry on a new connection" if attempt else "new connection"
                raise type(e)(f"{e} [{where}]") from e
            except BaseException:
                self._conn.close()
                self._conn = None
                raise
            try:
                r.read()
            except BaseException:
                self._conn.close()
                self._conn = None
                raise
            if r.will_close:
                self._conn.close()
                self._conn = None
            return r.status

    def run(self):
        t_end = time.monotonic() + self.max_seconds
        while not self._stop_evt.is_set() and time.monotonic() < t_end:
            try:
                status = self._once_keepalive() if self.keepalive else self._once_new()
                if status == 200:
                    self.successes += 1
                else:
                    self.failures.append((time.time(), f"HTTP status {status}"))
            except Exception as e:  # noqa: BLE001 - every error is a failure to count
                self.failures.append((time.time(), f"{type(e).__name__}: {e}"))
        if self._conn is not None:
            self._conn.close()

    def stop(self):
        self._stop_evt.set()
        self.join(self.timeout + 5)

    def summary(self):
        kinds = {}
        for _, text in self.failures:
            kinds[text] = kinds.get(text, 0) + 1
        when = [time.strftime("%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"
                for t, _ in self.failures[:5]]
        return (f"{self.successes} ok, {len(self.failures)} failed, {self.retries} retried, "
                f"{self.connections} connections; failures: {kinds} at {when}")


def schema_migrations():
    """[(id, name)] from schema/NNN_name.up.sql in the source tree."""
    out = []
    for path in sorted(glob.glob(os.path.join(REPO, "schema", "*.up.sql"))):
        m = re.match(r"(\d+)_(.+)\.up\.sql$", os.path.basename(path))
        if m:
            out.append((m.group(1), m.group(2)))
    return out


# --------------------------------------------------------------------------
# API clients: cookies, CSRF, users (added with test_auth.py)


def set_cookies(resp):
    """{name: (value, {attribute lower-cased: value, or True for a flag})} of a response's Set-Cookie headers."""
    out = {}
    for line in resp.headers.get_all("Set-Cookie") or []:
        parts = [p.strip() for p in line.split(";")]
        name, _, value = parts[0].partition("=")
        attrs = {}
        for p in parts[1:]:
            if p:
                k, eq, v = p.partition("=")
                attrs[k.strip().lower()] = v.strip() if eq else True
        out[name.strip()] = (value, attrs)
    return out


_NO_JSON = object()


class ApiClient:
    """A browser-like client of one server: keeps cookies, echoes the CSRF cookie in X-CSRF-Token.

    c = ApiClient(srv.base); c.login(email, password); c.get("/api/auth/me").json
    Every request goes on a new connection (see request()). `headers` are sent with every request.
    """

    SAFE = ("GET", "HEAD", "OPTIONS")

    def __init__(self, base, headers=None):
        self.base = base.rstrip("/")
        self.cookies = {}
        self.headers = dict(headers or {})

    def absorb(self, resp):
        """Apply a response's Set-Cookie headers (an empty value or Max-Age=0 removes the cookie)."""
        for name, (value, attrs) in set_cookies(resp).items():
            if value == "" or attrs.get("max-age") == "0":
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return resp

    def csrf_token(self):
        """The csrf-token cookie, fetched with a GET first if the client has none yet."""
        if "csrf-token" not in self.cookies:
            self.request("GET", "/api/auth/mode")
        return self.cookies.get("csrf-token")

    def request(self, method, path, json_body=_NO_JSON, body=None, headers=None, csrf=True, timeout=10):
        h = dict(self.headers)
        if json_body is not _NO_JSON:
            body = json.dumps(json_body).encode()
            h["Content-Type"] = "application/json"
        if csrf and method.upper() not in self.SAFE:
            token = self.csrf_token()
            if token:
                h["X-CSRF-Token"] = token
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        h.update(headers or {})
        return self.absorb(request(method, self.base + path, body=body, headers=h, timeout=timeout))

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, json_body=_NO_JSON, **kw):
        return self.request("POST", path, json_body, **kw)

    def put(self, path, json_body=_NO_JSON, **kw):
        return self.request("PUT", path, json_body, **kw)

    def patch(self, path, json_body=_NO_JSON, **kw):
        return self.request("PATCH", path, json_body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def login(self, email, password, check=True):
        """POST /api/auth/login; fails the test unless it answers 200 (check=False: any answer)."""
        r = self.post("/api/auth/login", {"email": email, "password": password})
        if check and r.status != 200:
            pytest.fail(f"login as {email} failed: {r!r}")
        return r


def sql_str(s):
    """A SQL string literal (or NULL)."""
    return "NULL" if s is None else "'" + str(s).replace("'", "''") + "'"


class J:
    """A JSON value for a jsonb column that is not an object or array (a string, a number)."""

    def __init__(self, v):
        self.v = v


def sql_lit(v):
    """A SQL literal for psql inserts: NULL, booleans, numbers, jsonb for dicts, lists and J, else text."""
    if isinstance(v, J):
        return sql_str(json.dumps(v.v)) + "::jsonb"
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (dict, list)):
        return sql_str(json.dumps(v)) + "::jsonb"
    return sql_str(v)


def insert_row(db, table, **cols):
    """INSERT one row with psql (values as sql_lit makes them); returns its id."""
    keys = ", ".join(cols)
    vals = ", ".join(sql_lit(v) for v in cols.values())
    return db.psql(f"INSERT INTO {table} ({keys}) VALUES ({vals}) RETURNING id").splitlines()[0]


def add_user(db_url, email, name=None, role="user", active=True, password_of=None):
    """Insert a user with psql; returns its id. password_of: copy the bcrypt hash of that user's email
    (so the new user has the same password without paying for another hash); None: no password."""
    pw = f"(SELECT password_hash FROM users WHERE email = {sql_str(password_of)})" if password_of else "NULL"
    return psql(db_url, f"INSERT INTO users (email, name, role, is_active, password_hash) VALUES "
                        f"({sql_str(email)}, {sql_str(name or email.split('@')[0])}, {sql_str(role)}, "
                        f"{'true' if active else 'false'}, {pw}) RETURNING id").splitlines()[0]


def make_team(db, label="T"):
    """A team named '<label> <tag>' with key '<label>-<tag>' (tag random); returns its id."""
    tag = secrets.token_hex(5)
    return db.psql(f"INSERT INTO teams (name, key) VALUES ('{label} {tag}', '{label.lower()}-{tag}') RETURNING id")


class ApiEnv:
    """What api_env yields: db, srv, admin_id, team_<label lower-cased> (ids), ids {actor: user id},
    clients {actor: logged-in ApiClient, plus "anonymous"}."""


def api_env(cluster, tmp_path_factory, name, admin_email, password, teams=(), actors=(), workers=2, env=None):
    """Body of a module-scoped fixture (`yield from api_env(...)`): a migrated database of its own and one
    server (local login, no poller or pruner) with its admin logged in; `teams` are labels of teams to make
    (make_team), `actors` (name, team label or None, role) users with the admin's password, members of that
    team, logged in. The server is killed and the database dropped afterwards."""
    d = cluster.create_db()
    s = None
    try:
        r = migrate(d.url, "up")
        assert r.code == 0, r
        s = Server(d.url, args=["--no-poller", "--no-pruner"], workers=workers, log_dir=str(tmp_path_factory.mktemp(name)),
                   env=dict({"LOCAL_AUTH": "true", "ADMIN_EMAIL": admin_email, "ADMIN_PASSWORD": password}, **(env or {})))
        s.start()
        e = ApiEnv()
        e.db, e.srv = d, s
        e.admin_id = d.psql(f"SELECT id FROM users WHERE email = {sql_str(admin_email)}")
        team_ids = {label: make_team(d, label) for label in teams}
        for label, team in team_ids.items():
            setattr(e, "team_" + label.lower(), team)
        e.ids, e.clients = {"admin": e.admin_id}, {"anonymous": ApiClient(s.base), "admin": ApiClient(s.base)}
        e.clients["admin"].login(admin_email, password)
        for actor, label, role in actors:
            e.ids[actor] = add_user(d.url, f"{actor}@example.com", password_of=admin_email)
            if label is not None:
                d.psql(f"INSERT INTO team_members (team_id, user_id, role) VALUES ('{team_ids[label]}', '{e.ids[actor]}', '{role}')")
            e.clients[actor] = ApiClient(s.base)
            e.clients[actor].login(f"{actor}@example.com", password)
        yield e
    finally:
        if s is not None:
            s.kill()
        d.drop()


def shared_server_guard(srv, strict=True):
    """For a module-scoped server, used as `yield from shared_server_guard(srv)` in an autouse fixture:
    every test scans its log for sanitizer reports and, when strict, fails if a statement failed
    unexpectedly or a request was answered 500 (what a client must never see)."""
    _stderr_files.append(srv.log_path)
    yield
    if strict:
        assert srv.find_logs(msg="query failed") == []
        assert srv.find_logs(msg="audit row not written") == []
        assert not [o for o in srv.log_lines() if o.get("msg") == "request" and o.get("status") == 500]
