"""Supervisor: respawn, graceful drain, zero-downtime reload, parent death, roles."""

import json
import os
import signal
import socket
import threading
import time

from conftest import BackgroundTx, RequestLoop, pid_alive, request, wait_for

NO_AUX = ["--no-poller", "--no-pruner"]


def workers_now(srv, n, timeout=5):
    return wait_for(lambda: (lambda w: w if len(w) == n else None)(srv.children("worker")),
                    timeout, what=f"{n} workers", detail=srv.tail)


def wait_successes(loop, n, timeout=5):
    wait_for(lambda: loop.successes >= n, timeout, what=f"{n} successful requests",
             detail=loop.summary)


def test_killed_worker_is_replaced_quickly(migrated_db, server):
    srv = server(migrated_db.url, args=NO_AUX, workers=4)
    old = workers_now(srv, 4)
    loop = RequestLoop(srv.url("/api/health/live"), keepalive=False)
    loop.start()
    try:
        wait_successes(loop, 50)
        victim = old[0]
        os.kill(victim, signal.SIGKILL)
        t0 = time.monotonic()

        def replaced():
            w = srv.children("worker")
            return w if len(w) == 4 and victim not in w and set(w) - set(old) else None

        new = wait_for(replaced, 1.0, interval=0.01, what="a new worker within 1 s of kill -9",
                       detail=srv.tail)
        print(f"replacement after {time.monotonic() - t0:.3f}s: {old} -> {new}")
        time.sleep(0.5)
    finally:
        loop.stop()
    print(loop.summary())
    assert len(loop.failures) <= 1, f"too many failed requests around the kill: {loop.summary()}"
    assert loop.successes > 100, loop.summary()

    exited = srv.wait_log(lambda o: o.get("msg") == "child exited" and o.get("child_pid") == victim,
                          3, what=f"'child exited' for {victim}")
    assert exited.get("child_role") == "worker", exited
    assert exited.get("signal") == 9 or "signal 9" in str(exited.get("status")), \
        f"the exit status must say killed by signal 9: {exited}"
    newpid = (set(new) - set(old)).pop()
    srv.wait_log(lambda o: o.get("msg") == "child started" and o.get("child_pid") == newpid, 3,
                 what=f"'child started' for {newpid}")


def test_sigterm_drains_in_flight_requests(migrated_db, server):
    srv = server(migrated_db.url, args=NO_AUX, workers=6, env={"DRAIN_TIMEOUT_MS": 10000})
    workers_now(srv, 6)
    results = [None] * 6

    def call(i):
        try:
            r = request("GET", srv.url("/api/health"), timeout=20)
            results[i] = (r.status, r.json, time.monotonic())
        except Exception as e:  # noqa: BLE001
            results[i] = (None, f"{type(e).__name__}: {e}", time.monotonic())

    with BackgroundTx(migrated_db.url) as tx:
        tx.run("BEGIN; LOCK TABLE _migrations IN ACCESS EXCLUSIVE MODE;")
        threads = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(6)]
        for t in threads:
            # Staggered so that each request is picked up by an idle worker
            # (a worker blocked on the database does not accept).
            t.start()
            time.sleep(0.05)
        time.sleep(0.5)
        assert all(r is None for r in results), \
            f"requests finished while /api/health should block on the lock: {results}"

        srv.stop(signal.SIGTERM)
        t_term = time.monotonic()
        time.sleep(0.5)
        refused = None
        try:
            c = socket.create_connection(("127.0.0.1", srv.port), timeout=1)
            c.close()
            refused = False
        except ConnectionRefusedError:
            refused = True
        except OSError as e:
            refused = f"{type(e).__name__}: {e}"
        time.sleep(max(0.0, 1.0 - (time.monotonic() - t_term)))
        assert all(r is None for r in results), \
            f"requests finished before the lock was released: {results}\n{srv.tail()}"
        assert srv.alive(), f"supervisor exited before in-flight requests finished\n{srv.tail()}"
        tx.run("COMMIT;")

    for t in threads:
        t.join(20)
    bad = [r for r in results if r is None or r[0] != 200]
    assert not bad, f"in-flight requests did not all complete with 200: {results}\n{srv.tail()}"
    code = srv.wait(max(0.5, 10.0 + 1.0 - (time.monotonic() - t_term)))
    print(f"exit {code} {time.monotonic() - t_term:.2f}s after SIGTERM")
    assert code == 0, f"supervisor exit code after SIGTERM: {code}\n{srv.tail()}"
    assert refused is True, f"a new connection after SIGTERM was not refused ({refused})"


def test_sighup_replaces_workers_without_failures(migrated_db, server):
    srv = server(migrated_db.url, args=NO_AUX, workers=3)
    old = workers_now(srv, 3)
    loops = [RequestLoop(srv.url("/api/health/live"), keepalive=False),
             RequestLoop(srv.url("/api/health/live"), keepalive=True)]
    t_start = time.monotonic()
    for lp in loops:
        lp.start()
    try:
        for lp in loops:
            wait_successes(lp, 20)
        time.sleep(max(0.0, 1.0 - (time.monotonic() - t_start)))
        srv.stop(signal.SIGHUP)
        t0 = time.monotonic()

        def all_new():
            w = srv.children("worker")
            return w if len(w) == 3 and not set(w) & set(old) else None

        new = wait_for(all_new, 15, interval=0.05, what="every worker replaced after SIGHUP",
                       detail=srv.tail)
        print(f"all workers replaced after {time.monotonic() - t0:.2f}s: {old} -> {new}")
        time.sleep(max(0.5, 4.0 - (time.monotonic() - t_start)))
    finally:
        for lp in loops:
            lp.stop()
    for lp in loops:
        print(("keep-alive: " if lp.keepalive else "new-conn: ") + lp.summary())
    assert srv.alive(), srv.tail()
    for lp in loops:
        kind = "keep-alive" if lp.keepalive else "connection-per-request"
        assert not lp.failures, f"{kind} loop failed during SIGHUP: {lp.summary()}\n" \
                                f"{lp.failures[:5]}"
        assert lp.successes > 50, lp.summary()
    assert len(srv.children("worker")) == 3


def test_sighup_with_invalid_env_file_keeps_old_workers(migrated_db, server, tmp_path):
    env_file = tmp_path / "depsera.env"
    env_file.write_text("# test env file\nWORKERS=2\n")
    srv = server(migrated_db.url, args=NO_AUX + ["--env-file", str(env_file)], workers=2)
    old = workers_now(srv, 2)
    loop = RequestLoop(srv.url("/api/health/live"))
    loop.start()
    try:
        wait_successes(loop, 20)
        env_file.write_text("# test env file\nWORKERS=abc\n")
        srv.stop(signal.SIGHUP)
        err = srv.wait_log(lambda o: o.get("level") in ("error", "fatal")
                           and "WORKERS" in json.dumps(o), 3,
                           what="an error naming WORKERS after SIGHUP")
        print("logged:", err)
        time.sleep(1.0)
        assert srv.alive(), f"supervisor died on an invalid reload\n{srv.tail()}"
        assert srv.children("worker") == old, \
            f"workers changed on an invalid reload: {old} -> {srv.children('worker')}"
        assert not loop.failures, f"requests failed after an invalid reload: {loop.summary()}"

        # The configuration is fixed: the next SIGHUP applies it.
        env_file.write_text("WORKERS=3\n")
        srv.stop(signal.SIGHUP)
        wait_for(lambda: (lambda w: len(w) == 3 and not set(w) & set(old))(srv.children("worker")),
                 15, what="3 new workers after a valid reload", detail=srv.tail)
        time.sleep(0.3)
    finally:
        loop.stop()
    assert not loop.failures, f"requests failed during the valid reload that followed: {loop.summary()}"


def test_env_file_overrides_environment(migrated_db, server, tmp_path):
    env_file = tmp_path / "depsera.env"
    env_file.write_text("WORKERS=3\n")
    srv = server(migrated_db.url, args=NO_AUX + ["--env-file", str(env_file)], workers=1)
    workers_now(srv, 3)
    time.sleep(0.3)
    assert len(srv.children("worker")) == 3


def test_children_exit_when_supervisor_is_killed(migrated_db, server):
    srv = server(migrated_db.url, workers=2)
    wait_for(lambda: len(srv.children("worker")) == 2 and srv.children("poller")
             and srv.children("pruner"), 5, what="2 workers, a poller and a pruner",
             detail=srv.tail)
    kids = srv.children()
    srv.stop(signal.SIGKILL)
    srv.proc.wait(5)
    t0 = time.monotonic()
    wait_for(lambda: not [p for p in kids if pid_alive(p)], 3, interval=0.02,
             what=f"children {kids} to exit after the supervisor was SIGKILLed",
             detail=lambda: f"still alive: {[p for p in kids if pid_alive(p)]}")
    print(f"children gone after {time.monotonic() - t0:.3f}s")


def test_no_poller_no_pruner_flags(migrated_db, server):
    srv = server(migrated_db.url, args=NO_AUX, workers=2)
    workers_now(srv, 2)
    time.sleep(1.0)
    assert srv.children("poller") == [] and srv.children("pruner") == [], \
        f"children: {srv.children()}"
    assert sorted(srv.children()) == sorted(srv.children("worker")), \
        "only workers may run with --no-poller --no-pruner"


def test_poller_and_pruner_started_by_default(migrated_db, server):
    srv = server(migrated_db.url, workers=2)
    wait_for(lambda: srv.children("poller") and srv.children("pruner"), 5,
             what="a poller and a pruner", detail=srv.tail)
    time.sleep(0.5)
    assert len(srv.children("poller")) == 1, srv.children()
    assert len(srv.children("pruner")) == 1, srv.children()
    assert len(srv.children("worker")) == 2, srv.children()
