# Shared set-up of the server benchmarks (services.sh, otlp.sh, limits.sh, graph.sh), sourced after
# `BENCH_NAME=<name>`: the binary from $1, a scratch directory, a throwaway PostgreSQL with the
# schema migrated (DATABASE_URL), clean-up on any exit, and `serve` on a free port.
DEPSERA_BIN=$(realpath "${1:?usage: $0 path/to/depsera}")
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
RUNS=${BENCH_RUNS:-3}
DURATION=${BENCH_DURATION:-10}
WORKERS=${BENCH_WORKERS:-4}
PY=${PYTHON:-/usr/bin/python3} # Debian's, with python3-protobuf
WORK=$(mktemp -d "/tmp/depsera-bench-$BENCH_NAME.XXXXXX")
chmod 755 "$WORK"
PID=""

cleanup() {
    set +e
    [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    "$REPO/scripts/pg-cluster.sh" destroy "$WORK/pg" >/dev/null 2>&1
    [ -n "${BENCH_KEEP_TMP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
log() { printf '[%s-bench] %s\n' "$BENCH_NAME" "$*" >&2; }

export DATABASE_URL
DATABASE_URL=$("$REPO/scripts/pg-cluster.sh" start "$WORK/pg" 2>"$WORK/pg.log" | tail -n 1)
LOG_LEVEL=warn "$DEPSERA_BIN" migrate up >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# start_serve [VAR=value...]: `serve --no-poller --no-pruner` with the limiters out of the way
# (tests of the limiters set their own), waits for /api/health/live.
start_serve() {
    env HOST=127.0.0.1 PORT="$port" WORKERS="$WORKERS" LOG_LEVEL=warn RATE_LIMIT_MAX=100000000 \
        OTLP_RATE_LIMIT_MAX=1000000000 "$@" "$DEPSERA_BIN" serve --no-poller --no-pruner 2>"$WORK/depsera.log" &
    PID=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/api/health/live" >/dev/null && break; sleep 0.2; done
}

# admin_cookie: logs in as admin@example.com / bench-password (start_serve with LOCAL_AUTH=true and
# those ADMIN_* values) and prints the Cookie header of that session.
admin_cookie() {
    local jar=$WORK/cookies csrf sid
    curl -sf -c "$jar" "http://127.0.0.1:$port/api/auth/mode" >/dev/null
    csrf=$(awk '$6 == "csrf-token" {print $7}' "$jar")
    curl -sf -b "$jar" -c "$jar" -H "X-CSRF-Token: $csrf" -H 'Content-Type: application/json' \
        -d '{"email":"admin@example.com","password":"bench-password"}' "http://127.0.0.1:$port/api/auth/login" >/dev/null
    sid=$(awk '$6 == "deps-dashboard.sid" {print $7}' "$jar")
    echo "Cookie: deps-dashboard.sid=$sid; csrf-token=$csrf"
}

# statements_per_request URL HEADER: SQL statements per GET of URL, over 20 requests. Every statement
# outside an explicit transaction commits one transaction; the two psql reads commit one each.
statements_per_request() {
    local before after
    xacts() { psql -X -At "$DATABASE_URL" -c "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"; }
    before=$(xacts)
    for _ in $(seq 20); do curl -sf -H "$2" "$1" -o /dev/null; done
    # an idle backend flushes its statistics a second after its last flush, or 10 s later when another
    # backend held the lock then (PGSTAT_MIN_INTERVAL, PGSTAT_IDLE_INTERVAL)
    sleep 11
    after=$(xacts)
    awk -v a="$after" -v b="$before" 'BEGIN { printf "%.1f", (a - b - 2) / 20 }'
}

# cpu_ticks: CPU time (ticks) of the server's processes and the cluster's backends so far, a figure
# that depends less on what else the machine runs than req/s does (after start_serve).
cpu_ticks() {
    local postmaster
    postmaster=$(head -n 1 "$WORK/pg/data/postmaster.pid")
    for p in $(pgrep -P "$postmaster") $(pgrep -P "$PID"); do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null; done |
        awk '{s += $1} END {print s + 0}'
}
