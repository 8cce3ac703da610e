#!/bin/bash
# OTLP ingestion benchmark (issue 5's bars): protobuf+gzip trace batches of BENCH_SPANS spans from 10
# services at concurrency 32 (spans/s committed), the same rows through a plain COPY into the same
# table (rows/s, the ceiling), metrics batches of 20 dependencies (gauge + histogram points), a run
# at concurrency 256 (errors), and the workers' peak RSS. Medians of BENCH_RUNS runs.
#   tests/bench/otlp.sh ./depsera
set -euo pipefail

BENCH_NAME=otlp
. "$(dirname "$0")/common.sh"
SPANS=${BENCH_SPANS:-100}
key="dps_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
hash=$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)
psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" <<SQL
INSERT INTO teams (name, key) VALUES ('Bench', 'bench');
INSERT INTO team_api_keys (team_id, name, key_hash, key_prefix)
SELECT id, 'bench', '$hash', '${key:0:8}' FROM teams WHERE key = 'bench';
SQL
"$PY" "$HERE/otlp_bodies.py" traces "$WORK" 10 "$SPANS"
"$PY" "$HERE/otlp_bodies.py" metrics "$WORK" 10 20
mkdir -p "$WORK/big" && "$PY" "$HERE/otlp_bodies.py" traces "$WORK/big" 3 2500 # about 1 MiB each, inflated

start_serve

# wrk_run PATH BODIES CONCURRENCY SECONDS [DELAY_MS] -> RESULT line (+ cpu_ticks)
wrk_run() {
    local before line
    before=$(cpu_ticks)
    line=$(BENCH_DELAY_MS=${5:-0} BENCH_PATH=$1 BENCH_BODIES="$2" BENCH_KEY=$key wrk -t 2 -c "$3" -d "$4" --timeout 30s -s "$HERE/otlp.lua" \
        "http://127.0.0.1:$port" 2>&1 | grep '^RESULT' || echo "RESULT rps=0 p50_us=0 p99_us=0 errors=1 requests=0")
    echo "$line cpu_ticks=$(($(cpu_ticks) - before))"
}
traces=$(ls "$WORK"/traces-*.pb.gz | tr '\n' ' ')
metrics=$(ls "$WORK"/metrics-*.pb.gz | tr '\n' ' ')

wrk_run /v1/traces "$traces" 32 2 >/dev/null # warm-up: services, partitions, caches
: >"$WORK/results"
for r in $(seq "$RUNS"); do
    line=$(wrk_run /v1/traces "$traces" 32 "$DURATION")
    log "traces c=32 run $r/$RUNS: $line"
    echo "traces $line" >>"$WORK/results"
    line=$(wrk_run /v1/metrics "$metrics" 32 "$DURATION")
    log "metrics c=32 run $r/$RUNS: $line"
    echo "metrics $line" >>"$WORK/results"
done
# half the measured throughput: 8 connections, each pausing between requests
half_delay=$("$PY" -c "import statistics, sys
r = [float(l.split('rps=')[1].split()[0]) for l in open(sys.argv[1]) if l.startswith('traces ')]
print(max(1, int(8 * 1000 / (statistics.median(r) / 2) - 10)))" "$WORK/results")
line=$(wrk_run /v1/traces "$traces" 8 "$DURATION" "$half_delay")
log "traces c=8, ${half_delay} ms between requests: $line"
echo "light $line" >>"$WORK/results"
line=$(wrk_run /v1/traces "$traces" 256 "$DURATION")
log "traces c=256: $line"
echo "c256 $line" >>"$WORK/results"
big=$(ls "$WORK"/big/traces-*.pb.gz | tr '\n' ' ')
line=$(wrk_run /v1/traces "$big" 8 "$DURATION")
log "traces of 2500 spans (~1 MiB), c=8: $line"
echo "big $line" >>"$WORK/results"
rss=$(for p in $(pgrep -P "$PID" -f depsera-worker || pgrep -P "$PID"); do awk '/VmHWM/ {print $2}' "/proc/$p/status"; done |
    sort -n | tail -n 1)
stored=$(psql -X -At "$DATABASE_URL" -c "SELECT count(*) FROM spans")

# the ceiling: the same rows through one plain COPY (binary) into the same table
psql -X -q "$DATABASE_URL" -c "\\copy (SELECT start_time, end_time, duration_ms, resource_id, kind, status_code, trace_id, span_id, parent_span_id, name, status_message, attributes FROM spans LIMIT 200000) TO '$WORK/rows.bin' WITH (FORMAT binary)"
copy_rows=$(psql -X -At "$DATABASE_URL" -c "SELECT least(count(*), 200000) FROM spans")
: >"$WORK/copy"
for r in $(seq "$RUNS"); do
    t0=$(date +%s.%N)
    psql -X -q "$DATABASE_URL" -c "\\copy spans (start_time, end_time, duration_ms, resource_id, kind, status_code, trace_id, span_id, parent_span_id, name, status_message, attributes) FROM '$WORK/rows.bin' WITH (FORMAT binary)"
    t1=$(date +%s.%N)
    echo "$copy_rows $t0 $t1" >>"$WORK/copy"
done

python3 - "$WORK/results" "$WORK/copy" "$SPANS" "$(getconf CLK_TCK)" "${rss:-0}" "$stored" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    kind, rest = line.split(None, 1)
    rows.setdefault(kind, []).append(dict(kv.split("=", 1) for kv in rest.split()[1:]))
copy = [int(n) / (float(b) - float(a)) for n, a, b in (l.split() for l in open(sys.argv[2]))]
spans, hz, rss, stored = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
med = lambda k, f: statistics.median(f(r) for r in rows[k])
sps = med("traces", lambda r: float(r["rps"]) * spans)
dps = med("metrics", lambda r: float(r["rps"]) * 40)
cpu = med("traces", lambda r: int(r["cpu_ticks"]) / hz * 1000 / max(1, int(r["requests"]) * spans) * 1000)
ceiling = statistics.median(copy)
light = rows["light"][0]
c256 = rows["c256"][0]
errors = sum(int(r["errors"]) for k in rows for r in rows[k])
print()
print("== OTLP ingestion, protobuf+gzip, %d-span batches from 10 services, c=32, median of %d runs ==" % (spans, len(rows["traces"])))
print("traces   %8.0f spans/s committed   p50 %.1f ms   p99 %.1f ms   CPU %.0f ms per 1000 spans"
      % (sps, med("traces", lambda r: int(r["p50_us"])) / 1000, med("traces", lambda r: int(r["p99_us"])) / 1000, cpu))
print("COPY     %8.0f rows/s (plain binary COPY of the same rows into the same table)   ratio %.2f" % (ceiling, sps / ceiling))
print("metrics  %8.0f data points/s (20 dependencies x gauge + histogram per batch)" % dps)
print("half     %8.0f spans/s (c=8, paced)   p50 %.1f ms   p99 %.1f ms"
      % (float(light["rps"]) * spans, int(light["p50_us"]) / 1000, int(light["p99_us"]) / 1000))
big = rows["big"][0]
print("1 MiB    %8.0f spans/s (2500-span batches, c=8)   p99 %.1f ms" % (float(big["rps"]) * 2500, int(big["p99_us"]) / 1000))
print("c=256    %8.0f spans/s   errors %s" % (float(c256["rps"]) * spans, c256["errors"]))
print("worker peak RSS %.1f MiB (after every run, 1 MiB batches included)   spans stored %s   errors (all runs) %d" % (rss / 1024, stored, errors))
print("BAR traces >= 25000 spans/s: %s" % ("PASS" if sps >= 25000 else "FAIL"))
print("BAR traces >= 60%% of COPY: %s" % ("PASS" if sps >= 0.6 * ceiling else "FAIL"))
print("BAR metrics >= 30000 data points/s: %s" % ("PASS" if dps >= 30000 else "FAIL"))
print("BAR p99 <= 50 ms at half the throughput: %s" % ("PASS" if int(light["p99_us"]) <= 50000 else "FAIL"))
print("BAR c=256 without errors: %s" % ("PASS" if int(c256["errors"]) == 0 else "FAIL"))
print("BAR worker RSS <= 64 MiB: %s" % ("PASS" if rss <= 64 * 1024 else "FAIL"))
sys.exit(1 if errors else 0)
PY
