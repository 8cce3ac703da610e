"""`depsera migrate up|down [N]|status` against a real database."""

import re
import subprocess
import time

import pytest

from conftest import (BIN, Server, _stderr_texts, base_env, migrate, parse_log, pg_bin,
                      schema_migrations)

LINE_RE = re.compile(r"^\s*(\S+)\s+(\S+)\s+(applied|pending|modified|unknown)\b(.*)$")
SUMMARY_RE = re.compile(r"(\d+) applied, (\d+) pending, (\d+) modified, (\d+) unknown")


class Status:
    def __init__(self, result):
        self.result = result
        self.rows = {}      # id -> (name, state, rest)
        self.order = []
        self.summary = None
        for line in result.out.splitlines():
            m = SUMMARY_RE.search(line)
            if m:
                self.summary = tuple(int(x) for x in m.groups())
                continue
            m = LINE_RE.match(line)
            if m:
                self.rows[m.group(1)] = (m.group(2), m.group(3), m.group(4).strip())
                self.order.append(m.group(1))
        assert self.summary is not None, f"no summary line in migrate status output: {result!r}"

    def ids(self, state):
        return [i for i in self.order if self.rows[i][1] == state]


def status(db_url):
    return Status(migrate(db_url, "status"))


def ok(result):
    assert result.code == 0, f"expected exit 0: {result!r}"
    return result


def serve_refuses(db_url, tmp_path):
    """Start serve; it must exit non-zero within 10 s without answering. Returns (code, stderr)."""
    s = Server(db_url, args=["--no-poller", "--no-pruner"], workers=1, log_dir=str(tmp_path))
    s.start(wait=False)
    try:
        code = s.proc.wait(10)
    except subprocess.TimeoutExpired:
        code = None
    finally:
        s.kill()
    return code, s.log_text()


def test_status_on_empty_database_lists_all_pending(db):
    st = status(db.url)
    assert st.result.code == 0, st.result
    assert st.order, f"no migration lines: {st.result!r}"
    assert st.ids("pending") == st.order
    assert st.summary == (0, len(st.order), 0, 0)
    expected = schema_migrations()
    if expected:
        assert [(i, st.rows[i][0]) for i in st.order] == expected, \
            "status must list exactly the migrations of schema/, in order"


def test_up_applies_all_then_is_a_noop(db):
    n = len(status(db.url).order)
    ok(migrate(db.url, "up"))
    st = status(db.url)
    assert st.result.code == 0, st.result
    assert st.ids("applied") == st.order and len(st.order) == n
    assert st.summary == (n, 0, 0, 0)
    for i in st.order:
        assert st.rows[i][2], f"applied migration {i} shows no timestamp: {st.result.out}"
    assert db.psql("SELECT count(*) FROM _migrations") == str(n)
    before = db.psql("SELECT string_agg(id || '@' || applied_at::text, ',' ORDER BY id) FROM _migrations")

    ok(migrate(db.url, "up"))
    after = db.psql("SELECT string_agg(id || '@' || applied_at::text, ',' ORDER BY id) FROM _migrations")
    assert after == before, "a second `migrate up` must not touch applied migrations"
    assert status(db.url).summary == (n, 0, 0, 0)


def test_down_one_reverts_only_the_last_and_up_reapplies(db):
    ok(migrate(db.url, "up"))
    st = status(db.url)
    last = st.order[-1]
    ok(migrate(db.url, "down", 1))
    st2 = status(db.url)
    assert st2.ids("pending") == [last], st2.result.out
    assert st2.ids("applied") == st.order[:-1]
    assert st2.summary == (len(st.order) - 1, 1, 0, 0)
    assert db.psql(f"SELECT count(*) FROM _migrations WHERE id = '{last}'") == "0"

    ok(migrate(db.url, "up"))
    assert status(db.url).summary == (len(st.order), 0, 0, 0)


def schema_dump(url):
    # _migrations is the tool's own bookkeeping table: it may outlive `down`.
    p = subprocess.run([pg_bin("pg_dump"), "-s", "--no-owner", "--no-privileges",
                        "--exclude-table=public._migrations", url],
                       capture_output=True, text=True, timeout=60, env=base_env())
    assert p.returncode == 0, p.stderr
    # Comments carry nothing but the dump's own metadata.
    # \restrict / \unrestrict carry a random key (pg_dump >= 15.14).
    return "\n".join(line for line in p.stdout.splitlines()
                     if not line.startswith(("--", "\\restrict", "\\unrestrict")))


def test_down_all_restores_an_empty_schema(db, cluster):
    fresh = cluster.create_db()
    try:
        empty = schema_dump(fresh.url)
    finally:
        fresh.drop()
    ok(migrate(db.url, "up"))
    n = len(status(db.url).order)
    assert schema_dump(db.url) != empty
    ok(migrate(db.url, "down", n))
    st = status(db.url)
    assert st.summary == (0, n, 0, 0), st.result.out
    assert schema_dump(db.url) == empty, "down of every migration must leave the schema as it was"


def test_checksum_mismatch_is_reported_and_blocks_serve(db, tmp_path):
    ok(migrate(db.url, "up"))
    first = db.psql("SELECT min(id) FROM _migrations")
    db.psql(f"UPDATE _migrations SET checksum = 'x' WHERE id = '{first}'")
    st = status(db.url)
    assert st.result.code == 1, f"status must exit 1 on a modified migration: {st.result!r}"
    assert st.rows[first][1] == "modified", st.result.out
    assert st.summary[2] == 1, st.result.out

    code, log = serve_refuses(db.url, tmp_path)
    assert code is not None, f"serve kept running on a modified migration\n{log[-2000:]}"
    assert code == 1, f"serve must exit 1 when refusing (got {code})\n{log[-2000:]}"


def test_unknown_migration_is_reported_and_blocks_serve(db, tmp_path):
    ok(migrate(db.url, "up"))
    db.psql("INSERT INTO _migrations (id, name, checksum, applied_at) "
            "VALUES ('999', 'future', 'x', now())")
    st = status(db.url)
    assert st.result.code == 1, f"status must exit 1 on an unknown migration: {st.result!r}"
    assert st.rows.get("999", (None, None))[:2] == ("future", "unknown"), st.result.out
    assert st.summary[3] == 1, st.result.out

    code, log = serve_refuses(db.url, tmp_path)
    assert code is not None, f"serve kept running with an unknown migration\n{log[-2000:]}"
    assert code == 1, f"serve must exit 1 when refusing (got {code})\n{log[-2000:]}"


def test_concurrent_up_applies_each_migration_once(db):
    n = len(status(db.url).order)
    env = base_env(db.url)
    procs = [subprocess.Popen([BIN, "migrate", "up"], env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = []
    deadline = time.monotonic() + 60
    for p in procs:
        try:
            out, err = p.communicate(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("concurrent migrate up did not finish within 60 s")
        results.append((p.returncode, out, err))
    for code, out, err in results:
        _stderr_texts.append(err)
        assert code == 0, f"concurrent migrate up failed: exit {code}\n{err}"
        bad = [o for o in parse_log(err) if o.get("level") in ("error", "fatal")]
        assert not bad, f"errors logged by a concurrent migrate up: {bad}"
    assert db.psql("SELECT count(*) FROM _migrations") == str(n)
    assert db.psql("SELECT count(DISTINCT id) FROM _migrations") == str(n)
    assert status(db.url).summary == (n, 0, 0, 0)
