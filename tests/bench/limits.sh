#!/bin/bash
# Limiter benchmark (issue 6's bars). In one run, alternately:
#   - OTLP trace ingest (protobuf+gzip, BENCH_SPANS-span batches, c=32) with a key at the default
#     limit (rate_limit_rpm NULL: OTLP_PER_KEY_RATE_LIMIT_RPM, 150,000/min) and with an unlimited
#     key (rate_limit_rpm 0): the limiter's cost is the ratio of the medians;
#   - the round trips for limiting: calls of the lease functions (pg_stat_user_functions, with
#     track_functions = pl) per accepted request, during the ingest runs and in a run saturating
#     the key (empty batches, more requests than its limit allows: accepted ~2,500/s).
#   tests/bench/limits.sh ./depsera
set -euo pipefail

BENCH_NAME=limits
BENCH_RUNS=${BENCH_RUNS:-5}
. "$(dirname "$0")/common.sh"
SPANS=${BENCH_SPANS:-100}
sql() { psql -X -At -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "$1"; }
sql "ALTER DATABASE $(sql 'SELECT current_database()') SET track_functions = 'pl'" >/dev/null
sql "INSERT INTO teams (name, key) VALUES ('Bench', 'bench')" >/dev/null
new_key() { # new_key RPM_SQL -> raw key
    local key hash
    key="dps_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    hash=$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)
    sql "INSERT INTO team_api_keys (team_id, name, key_hash, key_prefix, rate_limit_rpm)
         SELECT id, 'bench $1', '$hash', '${key:0:8}', $1 FROM teams WHERE key = 'bench'" >/dev/null
    echo "$key"
}
key_default=$(new_key NULL)
key_unlimited=$(new_key 0)
key_saturated=$(new_key NULL)
"$PY" "$HERE/otlp_bodies.py" traces "$WORK" 10 "$SPANS"
"$PY" -c "import gzip, sys; open(sys.argv[1], 'wb').write(gzip.compress(b''))" "$WORK/empty.pb.gz"

start_serve

lease_calls() {
    sql "SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions WHERE funcname IN ('depsera_bucket_lease', 'depsera_window_lease')"
}
# wrk_run KEY BODIES SECONDS -> RESULT line + lease_calls=N (statistics reach the view within ~1 s)
wrk_run() {
    local before line
    sleep 1
    before=$(lease_calls)
    line=$(BENCH_PATH=/v1/traces BENCH_BODIES="$2" BENCH_KEY=$1 wrk -t 2 -c 32 -d "$3" --timeout 30s -s "$HERE/otlp.lua" \
        "http://127.0.0.1:$port" 2>&1 | grep '^RESULT' || echo "RESULT rps=0 p50_us=0 p99_us=0 errors=1 requests=0")
    sleep 1.5
    echo "$line lease_calls=$(($(lease_calls) - before))"
}
traces=$(ls "$WORK"/traces-*.pb.gz | tr '\n' ' ')

wrk_run "$key_default" "$traces" 2 >/dev/null # warm-up: services, partitions, caches
wrk_run "$key_unlimited" "$traces" 2 >/dev/null
: >"$WORK/results"
for r in $(seq "$RUNS"); do
    order="default unlimited"
    [ $((r % 2)) -eq 0 ] && order="unlimited default" # neither key always runs first
    for kind in $order; do
        k=$key_default
        [ "$kind" = unlimited ] && k=$key_unlimited
        line=$(wrk_run "$k" "$traces" "$DURATION")
        log "$kind run $r/$RUNS: $line"
        echo "$kind $line" >>"$WORK/results"
    done
done
line=$(wrk_run "$key_saturated" "$WORK/empty.pb.gz" "$DURATION")
log "saturating the default limit with empty batches: $line"
echo "saturated $line" >>"$WORK/results"

python3 - "$WORK/results" "$SPANS" "$DURATION" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    kind, rest = line.split(None, 1)
    rows.setdefault(kind, []).append(dict(kv.split("=", 1) for kv in rest.split()[1:]))
spans, duration = int(sys.argv[2]), float(sys.argv[3])
med = lambda k: statistics.median(float(r["rps"]) * spans for r in rows[k])
limited, unlimited = med("default"), med("unlimited")
accepted = sum(int(r["requests"]) - int(r["errors"]) for r in rows["default"])
calls = sum(int(r["lease_calls"]) for r in rows["default"])
sat = rows["saturated"][0]
sat_ok = int(sat["requests"]) - int(sat["errors"])
sat_calls = int(sat["lease_calls"])
ratios = [float(a["rps"]) / float(b["rps"]) for a, b in zip(rows["default"], rows["unlimited"]) if float(b["rps"]) > 0]
print()
print("== Limiter cost: OTLP traces, protobuf+gzip, %d-span batches, c=32, %d interleaved runs each ==" % (spans, len(rows["default"])))
print("default limit (150000/min)  %8.0f spans/s (median)" % limited)
print("unlimited key (0)           %8.0f spans/s (median)" % unlimited)
print("ratio of medians %.3f   per-pair ratios %s" % (limited / unlimited, " ".join("%.3f" % r for r in ratios)))
print("round trips for limiting while ingesting: %d lease calls for %d accepted requests (1 per %.0f)"
      % (calls, accepted, accepted / max(1, calls)))
print("saturated (empty batches, c=32): %d requests, %d accepted (%.0f/s), %d refused, %d lease calls (1 per %.0f accepted)"
      % (int(sat["requests"]), sat_ok, sat_ok / duration, int(sat["errors"]), sat_calls, sat_ok / max(1, sat_calls)))
print("BAR limiter costs <= 5%% of ingest throughput: %s" % ("PASS" if limited >= 0.95 * unlimited else "FAIL"))
print("BAR <= 1 round trip per 50 accepted requests: %s"
      % ("PASS" if calls * 50 <= accepted and sat_calls * 50 <= sat_ok else "FAIL"))
PY
