#!/bin/bash
# Benchmark of the latency buckets of 30 days (issue 8: "Latency buckets for 30 d over 1 million
# latency-history rows: p50 <= 100 ms"): 1,000,000 latency rows of one dependency over 30 days and
# BENCH_HISTORY_OTHER_ROWS (900,000) of 9 other dependencies, GET /api/latency/:id/buckets?range=30d
# at c=1 read raw (before any roll-up), then the pruner's first roll-up timed, then BENCH_RUNS runs
# of BENCH_DURATION seconds reading the per-minute roll-up (migration 010). Prints p50 and p99
# (medians over runs), the bar, and the plan of the statement (EXPLAIN ANALYZE of BUCKETS_SQL as the
# binary holds it).
#   tests/bench/history.sh ./depsera
set -euo pipefail

BENCH_NAME=history
. "$(dirname "$0")/common.sh"
ROWS=${BENCH_HISTORY_ROWS:-1000000}
OTHER=${BENCH_HISTORY_OTHER_ROWS:-900000}

log "seeding $ROWS latency rows of one dependency over 30 days and $OTHER of 9 others"
psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" <<SQL
INSERT INTO teams (name, key) VALUES ('Team', 'team');
INSERT INTO services (name, team_id, health_endpoint) SELECT 'service', id, 'https://svc.example.com/health' FROM teams;
INSERT INTO dependencies (service_id, name) SELECT s.id, 'dep-' || d FROM services s, generate_series(0, 9) d;
-- the rows of a push every 2.6 s (1,000,000 in 30 days), percentiles on most of them
INSERT INTO dependency_latency_history (dependency_id, latency_ms, recorded_at, p50_ms, p95_ms, p99_ms, source)
SELECT (SELECT id FROM dependencies WHERE name = 'dep-0'), 5 + k % 40 + (k % 7) * 0.1,
       now() - make_interval(secs => 1 + k * (30 * 86400 - 120.0) / $ROWS),
       CASE WHEN k % 10 <> 0 THEN 4 + k % 30 END, CASE WHEN k % 10 <> 0 THEN 9 + k % 50 END,
       CASE WHEN k % 10 <> 0 THEN 12 + k % 70 END, 'otlp'
FROM generate_series(0, $ROWS - 1) k;
INSERT INTO dependency_latency_history (dependency_id, latency_ms, recorded_at, source)
SELECT d.id, 10 + k % 20, now() - make_interval(secs => 1 + k * (30 * 86400 - 120.0) / ($OTHER / 9)), 'poll'
FROM dependencies d, generate_series(0, $OTHER / 9 - 1) k WHERE d.name <> 'dep-0';
-- nothing is old enough for the retention run of the pruner below
INSERT INTO settings (key, value) VALUES ('data_retention_days', '365');
VACUUM ANALYZE;
SQL
dep=$(psql -X -At "$DATABASE_URL" -c "SELECT id FROM dependencies WHERE name = 'dep-0'")

start_serve LOCAL_AUTH=true ADMIN_EMAIL=admin@example.com ADMIN_PASSWORD=bench-password
cookie=$(admin_cookie)
url="http://127.0.0.1:$port/api/latency/$dep/buckets?range=30d"

# the statement as the binary runs it, for EXPLAIN
sql=$(strings -n 200 "$DEPSERA_BIN" | awk '!f && /^WITH s AS \(SELECT CASE WHEN rolled_from/ {print; f = 1}')
explain() {
    psql -X -At -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "PREPARE q AS $sql" \
        -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE q('{$dep}', '6 hours', '30 days')"
}

# timed: `n` sequential requests with curl, prints the times in ms, one a line
curl_times() {
    for _ in $(seq "$1"); do curl -sf -H "$cookie" -o /dev/null -w '%{time_total}\n' "$url"; done |
        awk '{printf "%.1f\n", $1 * 1000}'
}
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

curl -sf -H "$cookie" "$url" -o "$WORK/raw.json"
raw_p50=$(curl_times 9 | median)
log "before the roll-up (every raw row of the window): p50 $raw_p50 ms over 9 requests"
explain >"$WORK/explain-raw.txt"

log "first roll-up by the pruner (a day of rows per statement)"
t0=$(date +%s.%N)
env PRUNER_CHECK_INTERVAL_MS=600000 LOG_LEVEL=info TZ=UTC "$DEPSERA_BIN" pruner 2>"$WORK/pruner.log" &
PRUNER=$!
trap 'kill -TERM "$PRUNER" 2>/dev/null || true; cleanup' EXIT INT TERM
for _ in $(seq 600); do
    grep -q '"latency rolled up"' "$WORK/pruner.log" && break
    sleep 0.2
done
roll_s=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }')
kill -TERM "$PRUNER" && wait "$PRUNER" || true
trap cleanup EXIT INT TERM
grep -q '"latency rolled up"' "$WORK/pruner.log" || { log "no roll-up"; tail "$WORK/pruner.log" >&2; exit 1; }
psql -X -q "$DATABASE_URL" -c "VACUUM ANALYZE dependency_latency_minutes"
minutes=$(psql -X -At "$DATABASE_URL" -c "SELECT count(*) FROM dependency_latency_minutes WHERE dependency_id = '$dep'")
log "rolled up in ${roll_s} s (pruner start included): $minutes minute rows of the dependency"

# the same answer as the raw rows gave, whatever the seconds between them (the first bucket moves)
curl -sf -H "$cookie" "$url" -o "$WORK/rollup.json"
same=$(python3 -c "
import json
a, b = (json.load(open('$WORK/' + f))['buckets'] for f in ('raw.json', 'rollup.json'))
print('yes' if a[1:-1] == b[1:-1] and len(a) == len(b) else 'NO')")

results=()
for r in $(seq "$RUNS"); do
    wrk -t 1 -c 1 -d 1 -H "$cookie" -s "$HERE/latency.lua" "$url" >/dev/null 2>&1 || true
    line=$(wrk -t 1 -c 1 -d "$DURATION" --timeout 30s -H "$cookie" -s "$HERE/latency.lua" "$url" 2>&1 | grep '^RESULT')
    log "run $r/$RUNS: $line"
    results+=("$line")
done

echo
echo "== plan with the roll-up (EXPLAIN ANALYZE of BUCKETS_SQL, 30d) =="
explain
echo
echo "== plan before the roll-up (every row raw) =="
cat "$WORK/explain-raw.txt"
printf '%s\n' "${results[@]}" | python3 -c '
import sys, statistics
rows = [dict(kv.split("=", 1) for kv in l.split()[1:]) for l in sys.stdin if l.strip()]
med = lambda k: statistics.median(float(r[k]) for r in rows)
p50, p99, rps = med("p50_us") / 1000, med("p99_us") / 1000, med("rps")
errors = sum(int(r["errors"]) for r in rows)
print()
print("== GET /api/latency/:id/buckets?range=30d, %s rows of the dependency (+%s others), c=1, median of %d runs ==" % (sys.argv[1], sys.argv[2], len(rows)))
print("before the roll-up: p50 %s ms   first roll-up: %s s, %s minute rows   same buckets: %s" % tuple(sys.argv[3:7]))
print("with the roll-up:   p50 %.1f ms   p99 %.1f ms   req/s %.1f   errors %d" % (p50, p99, rps, errors))
print("per run p50/p99 ms: " + "  ".join("%.1f/%.1f" % (int(r["p50_us"]) / 1000, int(r["p99_us"]) / 1000) for r in rows))
print("BAR p50 <= 100 ms: %s" % ("PASS" if p50 <= 100 else "FAIL"))
sys.exit(1 if errors or sys.argv[6] != "yes" else 0)
' "$ROWS" "$OTHER" "$raw_p50" "$roll_s" "$minutes" "$same"
