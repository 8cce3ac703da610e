"""The poller against a real Prometheus target: Debian's prometheus-node-exporter (issue 7), started by
the test on a free loopback port with a few collectors that need no privileges, polled with
health_endpoint_format 'prometheus' and a MetricSchemaConfig mapping its own scrape metrics:

    node_scrape_collector_success{collector="X"}          -> healthy   (label collector -> name)
    node_scrape_collector_duration_seconds{collector="X"} -> latency   (latency_unit "s": round(v x 1000) ms)

Collectors: loadavg, uname (fast, healthy), textfile reading a generated 2,000-line file (a few ms,
so its latency is at least 1 ms after conversion) and supervisord pointed at a closed port (fails:
success 0, so the healthy mapping is checked both ways).
"""

import os
import shutil
import signal
import subprocess
import urllib.request

import pytest

from conftest import free_port, wait_for
from test_poller import add_service, deps, history, poll_lines, poller, rows, service, setup_team

EXPORTER = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")

SCHEMA = {"metrics": {"node_scrape_collector_success": "healthy",
                      "node_scrape_collector_duration_seconds": "latency"},
          "labels": {"collector": "name"},
          "latency_unit": "s"}


def scrape(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def collector_values(text, metric):
    """{collector: float} of one node_scrape_collector_* metric in an exposition text."""
    out = {}
    for line in text.splitlines():
        if line.startswith(metric + '{collector="'):
            name = line.split('"')[1]
            out[name] = float(line.rsplit(" ", 1)[1])
    return out


@pytest.fixture
def node_exporter(tmp_path):
    if EXPORTER is None:
        pytest.skip("prometheus-node-exporter is not installed (scripts/install-deps.sh installs it)")
    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    lines = ["# HELP depsera_test_filler rows that make the textfile collector take a few ms\n",
             "# TYPE depsera_test_filler gauge\n"]
    lines += [f'depsera_test_filler{{i="{i}"}} {i}\n' for i in range(2000)]
    (textfiles / "filler.prom").write_text("".join(lines))
    port, closed = free_port(), free_port()  # nothing listens on `closed`: supervisord fails
    log = open(tmp_path / "node-exporter.log", "wb")
    proc = subprocess.Popen(
        [EXPORTER, f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults",
         "--collector.loadavg", "--collector.uname",
         "--collector.textfile", f"--collector.textfile.directory={textfiles}",
         "--collector.supervisord", f"--collector.supervisord.url=http://127.0.0.1:{closed}/RPC2"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{port}/metrics"

    def tail():
        return (tmp_path / "node-exporter.log").read_text(errors="replace")[-3000:]

    def up():
        if proc.poll() is not None:
            pytest.fail(f"prometheus-node-exporter exited with {proc.returncode}:\n{tail()}")
        try:
            return "node_scrape_collector_success" in scrape(url)
        except OSError:
            return False
    try:
        wait_for(up, 15, what="prometheus-node-exporter to answer", detail=tail)
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def test_node_exporter_collectors_become_dependencies(migrated_db, server, node_exporter):
    db = migrated_db
    setup_team(db)
    sid = add_service(db, "node", node_exporter, "prometheus", SCHEMA, interval=1000)
    srv = poller(server, db)
    wait_for(lambda: len([o for o in poll_lines(srv, sid) if o.get("recorded")]) >= 3, 20,
             what="three recorded polls", detail=srv.tail)
    srv.stop(signal.SIGTERM)
    assert srv.wait(10) == 0
    polls = poll_lines(srv, sid)
    assert all(o["success"] and o["recorded"] for o in polls), polls

    # what node-exporter itself says about its collectors
    success = collector_values(scrape(node_exporter), "node_scrape_collector_success")
    assert success == {"loadavg": 1, "uname": 1, "textfile": 1, "supervisord": 0}, success

    got = deps(db, sid)
    assert set(got) == set(success), got
    for name, ok in success.items():
        d = got[name]
        assert d["healthy"] is (ok == 1), (name, d)
        assert d["type"] == "other" and d["discovery_source"] == "manual", (name, d)
        # seconds converted to whole milliseconds
        assert d["latency_ms"] is not None and d["latency_ms"] == round(d["latency_ms"]), (name, d)
        assert 0 <= d["latency_ms"] < 10000, (name, d)
    assert got["textfile"]["latency_ms"] >= 1, got["textfile"]

    # latency history: one row per poll for the textfile collector (never under 1 ms), every row a
    # whole number of milliseconds above 0, written by the poll
    lat = rows(db, "SELECT d.name, l.latency_ms, l.source FROM dependency_latency_history l "
                   f"JOIN dependencies d ON d.id = l.dependency_id WHERE d.service_id = '{sid}'")
    assert len([r for r in lat if r["name"] == "textfile"]) == len(polls), (lat, len(polls))
    assert all(r["source"] == "poll" and r["latency_ms"] > 0 and r["latency_ms"] == round(r["latency_ms"])
               for r in lat), lat
    assert len(lat) <= len(polls) * len(success)

    # a successful poll: nothing in the poll history, no parser warnings
    assert service(db, sid) == {"last_poll_success": True, "last_poll_error": None, "poll_warnings": None}
    assert history(db, sid) == []
