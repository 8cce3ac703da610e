"""/api/health follows the database; the server survives PostgreSQL going away."""

import time

from conftest import get, migrate_up, wait_for


def health(srv, path="/api/health"):
    try:
        return get(srv.url(path), timeout=4)
    except OSError as e:
        return (None, None, repr(e))


def test_health_follows_database_without_restart(own_cluster, own_db, server):
    migrate_up(own_db)
    srv = server(own_db.url, args=["--no-poller", "--no-pruner"], workers=2)

    status, headers, body = get(srv.url("/api/health"))
    assert status == 200, body
    assert isinstance(body, dict) and body.get("status") == "ok", body
    assert "json" in (headers.get("Content-Type") or ""), headers
    workers = wait_for(lambda: len(srv.children("worker")) == 2 and srv.children("worker"), 5,
                       what="2 workers", detail=srv.tail)

    own_cluster.stop()
    t0 = time.monotonic()
    down = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(health(srv)), 5,
                    interval=0.1, what="/api/health to answer 503 after PostgreSQL stopped",
                    detail=srv.tail)
    _, headers, body = down
    assert isinstance(body, dict) and "error" in body, f"503 body must be JSON with 'error': {body}"
    assert body.get("status") == "unavailable", body
    status, _, body = get(srv.url("/api/health/live"))
    assert status == 200 and body == {"status": "ok"}, (status, body)
    print(f"503 after {time.monotonic() - t0:.2f}s")

    own_cluster.start()
    t0 = time.monotonic()
    wait_for(lambda: health(srv)[0] == 200, 10, interval=0.1,
             what="/api/health to answer 200 after PostgreSQL came back", detail=srv.tail)
    print(f"200 again after {time.monotonic() - t0:.2f}s")

    assert srv.alive(), srv.tail()
    assert srv.children("worker") == workers, \
        f"workers were restarted: {workers} -> {srv.children('worker')}\n{srv.tail()}"
