#!/bin/bash
# Poller benchmark (issue 7's bars): one `depsera poller` keeps 10,000 services polled every 30 s, each
# service its own URL on a local target (tests/bench/poll_target.py) that answers after 50 ms on 50
# loopback addresses (127.0.0.1-127.0.0.50, 200 services each). Due times are spread over the first
# interval once the poller runs (a steady state, not the burst of a first start). After a warm-up, BENCH_RUNS windows of
# BENCH_POLL_WINDOW seconds measure: polls/s, scheduling lag (claim time minus due time, every claim,
# recorded by a trigger the bench adds to poll_schedule), failed polls (timeouts), the poller's CPU per
# poll (/proc) and RSS, PostgreSQL statements per poll (pg_stat_statements, BEGIN/COMMIT included) and
# transactions per poll, and the target's own load (requests, CPU, most requests waiting at once).
#   tests/bench/poller.sh ./depsera
set -euo pipefail

BENCH_NAME=poller
. "$(dirname "$0")/common.sh"
SERVICES=${BENCH_POLL_SERVICES:-10000}
HOSTS=${BENCH_POLL_HOSTS:-50}
INTERVAL_MS=${BENCH_POLL_INTERVAL_MS:-30000}
DELAY_MS=${BENCH_POLL_DELAY_MS:-50}
WARMUP=${BENCH_POLL_WARMUP:-45}
WINDOW=${BENCH_POLL_WINDOW:-60}
TPID=""
trap '[ -n "$TPID" ] && kill "$TPID" 2>/dev/null; cleanup' EXIT INT TERM
sql() { psql -X -At -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "$1"; }

log "PostgreSQL with pg_stat_statements"
sql "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" >/dev/null
"$REPO/scripts/pg-cluster.sh" stop "$WORK/pg" >/dev/null 2>>"$WORK/pg.log"
DATABASE_URL=$("$REPO/scripts/pg-cluster.sh" start "$WORK/pg" 2>>"$WORK/pg.log" | tail -n 1)
sql "CREATE EXTENSION pg_stat_statements" >/dev/null

tport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
addresses=$(seq -f "127.0.0.%g" 1 "$HOSTS" | tr '\n' ' ')
# shellcheck disable=SC2086 # one argument per address
"$PY" "$HERE/poll_target.py" "$tport" "$DELAY_MS" "$WORK/target.stats" $addresses >"$WORK/target.out" 2>&1 &
TPID=$!
for _ in $(seq 100); do grep -q ready "$WORK/target.out" 2>/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.$HOSTS:$tport/s/0" >/dev/null || { log "the target did not start"; cat "$WORK/target.out" >&2; exit 1; }

log "seeding $SERVICES services on $HOSTS hosts, every $INTERVAL_MS ms, due times spread over one interval"
psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" <<SQL
INSERT INTO teams (name, key) VALUES ('Bench', 'bench');
INSERT INTO services (name, team_id, health_endpoint, poll_interval_ms)
SELECT 'svc-' || s, (SELECT id FROM teams WHERE key = 'bench'),
       'http://127.0.0.' || (1 + s % $HOSTS) || ':$tport/s/' || s, $INTERVAL_MS
FROM generate_series(0, $SERVICES - 1) s;
-- nothing due until the poller runs (below)
UPDATE poll_schedule SET next_due_at = now() + interval '1 day';
-- every claim: its due time and the moment it was taken
CREATE UNLOGGED TABLE bench_claims (due timestamptz NOT NULL, claimed timestamptz NOT NULL);
CREATE FUNCTION bench_claim() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
    INSERT INTO bench_claims VALUES (OLD.next_due_at, clock_timestamp());
    RETURN NULL;
END
\$\$;
CREATE TRIGGER bench_claim AFTER UPDATE ON poll_schedule FOR EACH ROW
    WHEN (OLD.claim_token IS NULL AND NEW.claim_token IS NOT NULL) EXECUTE FUNCTION bench_claim();
ANALYZE;
SQL

env LOG_LEVEL=info SSRF_ALLOWLIST=127.0.0.0/24 ${BENCH_POLL_ENV:-} "$DEPSERA_BIN" poller 2>"$WORK/depsera.log" &
PID=$!
sleep 1
# a steady state from the start: due times spread evenly over one interval, none overdue
sql "UPDATE poll_schedule ps SET next_due_at = now() + interval '5 seconds'
     + (hashtext(ps.service_id::text)::bigint % $INTERVAL_MS + $INTERVAL_MS) % $INTERVAL_MS * interval '1 millisecond'" >/dev/null
log "poller $PID started; warm-up $WARMUP s"
sleep "$WARMUP"
kill -0 "$PID" || { log "the poller died"; tail "$WORK/depsera.log" >&2; exit 1; }

ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
postmaster=$(head -n 1 "$WORK/pg/data/postmaster.pid")
pg_ticks() { # every backend and helper of the cluster
    for p in $(pgrep -P "$postmaster"); do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null; done | awk '{s += $1} END {print s + 0}'
}
tstat() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" "$WORK/target.stats"; }
stmts() {
    sql "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
         AND query NOT LIKE '%bench_claims%' AND query NOT LIKE '%pg_stat%'"
}
xacts() { sql "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"; }
: >"$WORK/results"
for r in $(seq "$RUNS"); do
    sql "SELECT pg_stat_statements_reset()" >/dev/null
    kill -USR1 "$TPID"
    t0=$(sql "SELECT clock_timestamp()")
    c0=$(ticks) g0=$(pg_ticks) x0=$(xacts) q0=$(tstat requests) tc0=$(tstat cpu_s)
    sleep "$WINDOW"
    c1=$(ticks) g1=$(pg_ticks) t1=$(sql "SELECT clock_timestamp()")
    sleep 1.1 # the target's statistics of the window's last second
    s1=$(stmts) x1=$(xacts) q1=$(tstat requests) tc1=$(tstat cpu_s)
    line=$(sql "SELECT 'polls=' || count(*) || ' lag_p50_ms=' || coalesce(round((percentile_cont(0.5) WITHIN GROUP (ORDER BY l))::numeric, 1), 0)
                || ' lag_p99_ms=' || coalesce(round((percentile_cont(0.99) WITHIN GROUP (ORDER BY l))::numeric, 1), 0)
                || ' lag_max_ms=' || coalesce(round(max(l)::numeric, 1), 0)
                FROM (SELECT extract(epoch FROM claimed - due) * 1000 AS l FROM bench_claims
                      WHERE claimed >= '$t0' AND claimed < '$t1') c")
    failed=$(sql "SELECT count(*) FROM service_poll_history WHERE error IS NOT NULL")
    timeouts=$(sql "SELECT count(*) FROM service_poll_history WHERE error = 'Request timed out'")
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$PID/status") hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$PID/status")
    line="$line cpu_ticks=$((c1 - c0)) pg_ticks=$((g1 - g0)) stmts=$s1 xacts=$((x1 - x0)) target_requests=$(awk -v a="$q1" -v b="$q0" 'BEGIN {print a - b}')"
    line="$line target_cpu_s=$(awk -v a="$tc1" -v b="$tc0" 'BEGIN {print a - b}') target_max_open=$(tstat max_open)"
    line="$line failed_services=$failed timeouts=$timeouts rss_kb=$rss hwm_kb=$hwm"
    log "window $r/$RUNS ($WINDOW s): $line"
    echo "$line" >>"$WORK/results"
done
kill -0 "$PID" || { log "the poller died"; tail "$WORK/depsera.log" >&2; exit 1; }
log "statements of the last window by PostgreSQL time (calls, mean ms, share of the time)"
sql "SELECT calls || '  ' || round(mean_exec_time::numeric, 3) || ' ms  ' || round((100 * total_exec_time / sum(total_exec_time) OVER ())::numeric, 1)
            || ' %  ' || left(regexp_replace(query, '\s+', ' ', 'g'), 90)
     FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
     AND query NOT LIKE '%bench_claims%' AND query NOT LIKE '%pg_stat%' ORDER BY total_exec_time DESC LIMIT 8" >&2
grep -v '"level":"info"' "$WORK/depsera.log" | head -n 5 >&2 || true

python3 - "$WORK/results" "$WINDOW" "$SERVICES" "$INTERVAL_MS" "$DELAY_MS" "$HOSTS" "$(getconf CLK_TCK)" <<'PY'
import statistics, sys
rows = [dict(kv.split("=", 1) for kv in l.split()) for l in open(sys.argv[1]) if l.strip()]
window, services, interval, delay, hosts, hz = (float(a) for a in sys.argv[2:8])
med = lambda f: statistics.median(f(r) for r in rows)
rate = med(lambda r: int(r["polls"]) / window)
p50, p99, mx = med(lambda r: float(r["lag_p50_ms"])), med(lambda r: float(r["lag_p99_ms"])), max(float(r["lag_max_ms"]) for r in rows)
cpu = med(lambda r: int(r["cpu_ticks"]) * 1000 / hz / max(1, int(r["polls"])))
pg_cpu = med(lambda r: int(r["pg_ticks"]) * 1000 / hz / max(1, int(r["polls"])))
stmts = med(lambda r: int(r["stmts"]) / max(1, int(r["polls"])))
xacts = med(lambda r: int(r["xacts"]) / max(1, int(r["polls"])))
treq = med(lambda r: float(r["target_requests"]) / window)
tcpu = med(lambda r: float(r["target_cpu_s"]) / window * 100)
failed, timeouts = int(rows[-1]["failed_services"]), int(rows[-1]["timeouts"])
ceiling = services / (interval / 1000)
print()
print("== poller: %d services on %d hosts, every %d ms, target answers after %d ms; %d windows of %d s (medians) =="
      % (services, hosts, interval, delay, len(rows), window))
print("polls/s %.1f (windows: %s; the schedule's rate %.1f: each service due an interval after its last poll started)"
      % (rate, " ".join("%.1f" % (int(r["polls"]) / window) for r in rows), ceiling))
print("scheduling lag (claim - due) p50 %.1f ms   p99 %.1f ms   max %.1f ms" % (p50, p99, mx))
print("failed polls: %d services with an error in their poll history, %d of them timeouts" % (failed, timeouts))
print("poller CPU per poll %.3f ms   RSS %.1f MiB (peak %.1f MiB)"
      % (cpu, int(rows[-1]["rss_kb"]) / 1024, int(rows[-1]["hwm_kb"]) / 1024))
print("PostgreSQL per poll: %.2f statements (pg_stat_statements, BEGIN/COMMIT included), %.2f transactions, %.3f ms CPU"
      % (stmts, xacts, pg_cpu))
print("target: %.1f requests/s, %.1f %% of a CPU, at most %d requests waiting at once"
      % (treq, tcpu, max(int(r["target_max_open"]) for r in rows)))
print("BAR polls/s >= 333: %s" % ("PASS" if rate >= 333 else "FAIL"))
print("BAR scheduling lag p99 <= 1 s: %s" % ("PASS" if p99 <= 1000 else "FAIL"))
print("BAR no timeouts: %s" % ("PASS" if timeouts == 0 else "FAIL"))
print("BAR poller CPU per poll <= 0.5 ms: %s" % ("PASS" if cpu <= 0.5 else "FAIL"))
PY
