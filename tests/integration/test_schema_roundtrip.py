"""Each down migration restores the schema exactly as it was before its up (schema/check-roundtrip.sh:
pg_dump -s compared after up+down of every migration, and after all ups and all downs)."""
import glob
import os
import subprocess

from conftest import REPO


def test_every_down_restores_the_previous_schema(cluster):
    # the cluster URL names the `depsera` database; the script makes its own scratch databases
    # pg_dump of the server's own version (the newest installed), as scripts/pg-cluster.sh picks it
    bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
    env = dict(os.environ, PATH=":".join(bindirs[-1:] + [os.environ.get("PATH", "")]))
    p = subprocess.run([os.path.join(REPO, "schema", "check-roundtrip.sh"), cluster.url], env=env,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "PASS: all checks" in p.stdout + p.stderr


def test_constraints_behave_as_the_data_model_says(migrated_db):
    """schema/check-constraints.sql on a database with every migration applied (it rolls back)."""
    p = subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-d", migrated_db.url, "-f",
                        os.path.join(REPO, "schema", "check-constraints.sql")],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
