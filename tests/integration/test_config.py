"""Configuration errors, --help, version, unknown subcommands."""

import os
import re

import pytest

from conftest import REPO, Server, base_env, migrate_up, run_cli


@pytest.fixture(scope="module")
def ready_db(cluster):
    d = cluster.create_db()
    migrate_up(d)
    yield d
    d.drop()


@pytest.mark.parametrize("var,value", [
    ("PORT", "abc"),
    ("PORT", "70000"),
    ("WORKERS", "0"),
    ("LOG_LEVEL", "loud"),
    ("DRAIN_TIMEOUT_MS", "-1"),
])
def test_invalid_value_exits_2_naming_the_variable(ready_db, tmp_path, var, value):
    s = Server(ready_db.url, args=["--no-poller", "--no-pruner"], workers=1,
               log_dir=str(tmp_path), env={var: value})
    s.start(wait=False)
    try:
        code = s.proc.wait(5)
    except Exception:  # noqa: BLE001
        code = None
    finally:
        s.kill()
    log = s.log_text()
    assert code == 2, f"{var}={value}: expected exit 2, got {code}\n{log[-2000:]}"
    assert var in log, f"{var}={value}: stderr must name the variable:\n{log[-2000:]}"


COMMANDS = ["serve", "poller", "pruner", "migrate", "user", "version"]


def test_top_level_help():
    r = run_cli(["--help"], env=base_env(), timeout=10)
    assert r.code == 0, r
    assert "usage" in r.out.lower(), f"--help must print usage on stdout: {r!r}"
    for cmd in COMMANDS:
        assert cmd in r.out, f"--help does not mention {cmd}: {r.out}"


@pytest.mark.parametrize("cmd", COMMANDS)
def test_subcommand_help(cmd):
    r = run_cli([cmd, "--help"], env=base_env(), timeout=10)
    assert r.code == 0, r
    assert "usage" in r.out.lower(), f"{cmd} --help must print usage on stdout: {r!r}"
    assert cmd in r.out, r


def configured_version():
    try:
        with open(os.path.join(REPO, "configure.ac")) as f:
            m = re.search(r"AC_INIT\(\s*\[?[^,\]]+\]?\s*,\s*\[?([^,\])]+)", f.read())
            return m.group(1).strip() if m else None
    except OSError:
        return None


def test_version():
    r = run_cli(["version"], env=base_env(), timeout=10)
    assert r.code == 0, r
    assert re.search(r"\d+\.\d+", r.out), f"version must print a version number: {r!r}"
    v = configured_version()
    if v:
        assert v in r.out, f"version output should contain {v} (configure.ac): {r.out!r}"


def test_unknown_subcommand_exits_2():
    r = run_cli(["no-such-command"], env=base_env(), timeout=10)
    assert r.code == 2, r
    assert r.err.strip(), "an unknown subcommand must be reported on stderr"
