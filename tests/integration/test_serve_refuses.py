"""`serve` refuses a database whose schema is not up to date, and says what to run."""

import subprocess

import pytest

from conftest import Server, migrate


def refused(db_url, tmp_path):
    s = Server(db_url, args=["--no-poller", "--no-pruner"], workers=1, log_dir=str(tmp_path))
    s.start(wait=False)
    try:
        code = s.proc.wait(10)
    except subprocess.TimeoutExpired:
        code = None
    finally:
        s.kill()
    return code, s.log_text()


def test_serve_refuses_unmigrated_database(db, tmp_path):
    code, log = refused(db.url, tmp_path)
    assert code is not None, f"serve kept running on an un-migrated database\n{log[-2000:]}"
    assert code != 0, log
    assert "depsera migrate up" in log, f"stderr must say which command to run:\n{log[-2000:]}"


def test_serve_refuses_with_one_pending_migration(db, tmp_path):
    assert migrate(db.url, "up").code == 0
    r = migrate(db.url, "down", 1)
    assert r.code == 0, r
    code, log = refused(db.url, tmp_path)
    assert code is not None, f"serve kept running with a pending migration\n{log[-2000:]}"
    assert code != 0, log
    assert "depsera migrate up" in log, f"stderr must say which command to run:\n{log[-2000:]}"


@pytest.mark.parametrize("sub", ["up", "status"])
def test_migrate_fails_when_database_unreachable(sub, tmp_path):
    from conftest import free_port
    url = f"postgresql://depsera@127.0.0.1:{free_port()}/depsera"
    r = migrate(url, sub)
    assert r.code == 1, f"migrate {sub} against an unreachable database must exit 1: {r!r}"
    assert r.err.strip(), "an error must be printed on stderr"
