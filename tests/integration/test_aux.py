"""`depsera poller` and `depsera pruner` alone: LISTEN, reconnect, clean exit."""

import signal
import time

import pytest

from conftest import migrate_up, wait_for

CHANNELS = {"poller": "depsera_poll", "pruner": "depsera_retention"}


def count(srv, msg):
    return len([o for o in srv.log_lines() if o.get("msg") == msg])


def notify_seen(srv, channel, payload, timeout):
    return srv.wait_log(lambda o: o.get("msg") == "notification" and o.get("channel") == channel
                        and o.get("payload") == payload, timeout,
                        what=f"notification {channel} {payload!r} in the log")


@pytest.mark.parametrize("role", ["poller", "pruner"])
def test_aux_listens_reconnects_and_exits_cleanly(role, own_cluster, own_db, server):
    migrate_up(own_db)
    channel = CHANNELS[role]
    srv = server(own_db.url, command=role, workers=None, wait=False)
    srv.wait_log(lambda o: o.get("msg") == "database connected", 10, what="'database connected'")
    time.sleep(0.3)  # "connected" may be logged just before LISTEN is issued
    assert srv.alive(), srv.tail()

    own_db.psql(f"NOTIFY {channel}, 'service:abc'")
    line = notify_seen(srv, channel, "service:abc", 2)
    assert line.get("role") == role, line

    own_cluster.stop()
    srv.wait_log(lambda o: o.get("msg") == "database connection lost", 5,
                 what="'database connection lost' after PostgreSQL stopped")
    time.sleep(1.0)
    assert srv.alive(), f"{role} exited while the database was down\n{srv.tail()}"

    connected_before = count(srv, "database connected")
    own_cluster.start()
    t0 = time.monotonic()
    wait_for(lambda: count(srv, "database connected") > connected_before, 15,
             what=f"{role} to log 'database connected' again", detail=srv.tail)
    print(f"reconnected {time.monotonic() - t0:.2f}s after PostgreSQL restarted")
    # A process may hold more than one connection: the LISTEN one may come back a little
    # later than the first "database connected". Notify until one arrives (10 s at most).
    deadline = time.monotonic() + 10
    for i in range(100):
        payload = f"after-reconnect-{i}"
        own_db.psql(f"NOTIFY {channel}, '{payload}'")
        try:
            wait_for(lambda: [o for o in srv.log_lines() if o.get("msg") == "notification"
                              and str(o.get("payload", "")).startswith("after-reconnect")],
                     1.0, what="notification after reconnect")
            break
        except pytest.fail.Exception:
            if time.monotonic() > deadline:
                pytest.fail(f"{role} receives no notification after reconnecting\n{srv.tail()}")

    srv.stop(signal.SIGTERM)
    code = srv.wait(10)
    assert code == 0, f"{role} exit code after SIGTERM: {code}\n{srv.tail()}"
