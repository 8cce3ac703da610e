#!/bin/bash
# Pruner benchmark (issue 8's bar): a retention run deleting BENCH_PRUNE_ROWS (5,000,000) expired
# latency-history rows and dropping 7 expired span partitions while OTLP trace ingest runs at about
# 10,000 spans/s (100-span batches, 11 connections each pausing 100 ms): the run's duration and
# counts, and the ingest's slowest request and errors over the whole window.
#   tests/bench/pruner.sh ./depsera
set -euo pipefail

BENCH_NAME=pruner
. "$(dirname "$0")/common.sh"
ROWS=${BENCH_PRUNE_ROWS:-5000000}
INGEST_SECONDS=${BENCH_PRUNE_INGEST_SECONDS:-180}
sql() { psql -X -At -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "$1"; }

key="dps_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
hash=$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)
log "seeding $ROWS expired latency rows (days 31-40), 500,000 kept, 7 expired span partitions"
psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" >/dev/null <<SQL
INSERT INTO teams (name, key) VALUES ('Bench', 'bench');
INSERT INTO team_api_keys (team_id, name, key_hash, key_prefix) SELECT id, 'bench', '$hash', '${key:0:8}' FROM teams;
INSERT INTO services (name, team_id, health_endpoint) SELECT 'old-' || s, (SELECT id FROM teams), '' FROM generate_series(1, 100) s;
INSERT INTO dependencies (service_id, name) SELECT s.id, 'dep-' || d FROM services s, generate_series(1, 10) d;
INSERT INTO dependency_latency_history (dependency_id, latency_ms, recorded_at)
SELECT d.id, 10, now() - interval '31 days' - (g % 864000) * interval '1 second'
FROM (SELECT id, row_number() OVER () AS n FROM dependencies) d, generate_series(1, $ROWS / 1000) g;
INSERT INTO dependency_latency_history (dependency_id, latency_ms, recorded_at)
SELECT d.id, 10, now() - (g % 864000) * interval '1 second'
FROM (SELECT id FROM dependencies) d, generate_series(1, 500) g;
SELECT depsera_ensure_span_partition((now() AT TIME ZONE 'UTC')::date - k) FROM generate_series(8, 14) k;
INSERT INTO span_resources (team_id, service_name, digest) SELECT id, 'old', sha256('old') FROM teams;
INSERT INTO spans (created_at, start_time, end_time, duration_ms, resource_id, trace_id, span_id, name)
SELECT (((now() AT TIME ZONE 'UTC')::date - k)::timestamp + interval '12 hours') AT TIME ZONE 'UTC', now(), now(), 1,
       (SELECT id FROM span_resources), '\\x00', '\\x00', 'old'
FROM generate_series(8, 14) k, generate_series(1, 20000) g;
INSERT INTO settings (key, value) VALUES ('data_retention_days', '30'), ('retention_cleanup_time', '00:00');
UPDATE app_settings SET value = '7' WHERE key = 'span_retention_days';
ANALYZE;
SQL
expired=$(sql "SELECT count(*) FROM dependency_latency_history WHERE recorded_at < now() - interval '30 days'")
"$PY" "$HERE/otlp_bodies.py" traces "$WORK" 10 100
traces=$(ls "$WORK"/traces-*.pb.gz | tr '\n' ' ')

start_serve
BENCH_DELAY_MS=100 BENCH_PATH=/v1/traces BENCH_BODIES="$traces" BENCH_KEY=$key wrk -t 2 -c 11 -d "${INGEST_SECONDS}s" \
    --timeout 30s -s "$HERE/otlp.lua" "http://127.0.0.1:$port" >"$WORK/wrk.out" 2>&1 &
WRK=$!
sleep 10
log "starting the pruner with $expired expired latency rows"
t0=$(date +%s.%N)
TZ=UTC LOG_LEVEL=info PRUNER_CHECK_INTERVAL_MS=1000 "$DEPSERA_BIN" pruner 2>"$WORK/pruner.log" &
PRUNER=$!
for _ in $(seq "$INGEST_SECONDS"); do grep -q '"retention run"' "$WORK/pruner.log" && break; sleep 1; done
t1=$(date +%s.%N)
kill -TERM "$PRUNER" 2>/dev/null; wait "$PRUNER" 2>/dev/null || true
wait "$WRK" || true
line=$(grep '^RESULT' "$WORK/wrk.out" || echo "RESULT rps=0 p50_us=0 p99_us=0 errors=1 requests=0 max_us=0")
run=$(grep '"retention run"' "$WORK/pruner.log" | tail -n 1 || true)
left=$(sql "SELECT count(*) FROM dependency_latency_history WHERE recorded_at < now() - interval '30 days'")
old_parts=$(sql "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'spans'::regclass
                 AND c.relname < 'spans_' || to_char((now() AT TIME ZONE 'UTC')::date - 7, 'YYYYMMDD')")

python3 - "$line" "$run" "$t0" "$t1" "$expired" "$left" "$old_parts" "$INGEST_SECONDS" <<'PY'
import json, sys
line, run, t0, t1, expired, left, old_parts, window = sys.argv[1:]
r = dict(kv.split("=", 1) for kv in line.split()[1:])
o = json.loads(run) if run else {}
spans_s = float(r["rps"]) * 100
print()
print("== Pruner during OTLP ingest: %s expired latency rows, 7 expired span partitions ==" % expired)
if o:
    print("retention run: %.1f s (log: %s ms), latency rows deleted %s, partitions dropped %s"
          % (float(t1) - float(t0), o.get("duration_ms"), o.get("dependency_latency_history"), o.get("partitions_dropped")))
else:
    print("retention run: did not finish within the %s s ingest window" % window)
print("expired rows left %s, expired partitions left %s" % (left, old_parts))
print("ingest over %s s: %.0f spans/s, p50 %.1f ms, p99 %.1f ms, slowest %.1f ms, errors %s"
      % (window, spans_s, int(r["p50_us"]) / 1000, int(r["p99_us"]) / 1000, int(r["max_us"]) / 1000, r["errors"]))
ok = bool(o) and int(left) == 0 and int(old_parts) == 0
print("BAR run complete (every expired row and partition gone): %s" % ("PASS" if ok else "FAIL"))
print("BAR no ingest request slower than 1 s: %s" % ("PASS" if int(r["max_us"]) <= 1000000 else "FAIL"))
print("BAR no ingest request failed: %s" % ("PASS" if int(r["errors"]) == 0 else "FAIL"))
PY
