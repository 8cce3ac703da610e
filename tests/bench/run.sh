#!/usr/bin/env bash
# depsera benchmark harness.
#
#   tests/bench/run.sh ./depsera          (what `make bench` runs)
#
# Starts a throwaway PostgreSQL (scripts/pg-cluster.sh), migrates it, starts
# `depsera serve --no-poller --no-pruner`, starts Debian's h2o serving a small
# static JSON file as the ceiling to compare with, records the idle memory of
# the depsera workers, then drives both targets with wrk at several
# concurrencies, BENCH_RUNS times, and prints a table of medians plus the
# depsera/h2o throughput ratio. See tests/bench/README.md.
#
# Environment (all optional):
#   BENCH_WORKERS=4          depsera WORKERS and h2o num-threads
#   BENCH_DURATION=5         seconds per measured wrk run ("5" or "5s")
#   BENCH_WARMUP=1           seconds of discarded wrk warm-up before each run
#   BENCH_RUNS=3             how many times the whole series is repeated
#   BENCH_CONCURRENCY="1 32 256"
#   BENCH_STRICT=1           count every non-2xx as an error (0: only >= 400)
#   BENCH_WRK_TIMEOUT=2s     wrk --timeout (slower responses count as errors)
#   BENCH_START_TIMEOUT=20   seconds to wait for a target's first 200
#   BENCH_IDLE_WAIT=2        seconds depsera idles before memory is read
#   BENCH_PG_CLUSTER=path    alternative to <repo>/scripts/pg-cluster.sh
#   BENCH_KEEP_TMP=1         keep the scratch dir (logs, wrk output)
#   BENCH_FAKE_DEPSERA=1     harness self-test only: a second h2o instance
#                            stands in for depsera (no binary, no migrate)
#
# Exit status: 0 when every target started and every measured run had zero
# errors; 1 otherwise; 2 on bad usage. The BAR lines are reported, never fatal.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$BENCH_DIR/../.." && pwd)
LUA_SCRIPT=$BENCH_DIR/latency.lua

BENCH_WORKERS=${BENCH_WORKERS:-4}
BENCH_DURATION=${BENCH_DURATION:-5}
BENCH_WARMUP=${BENCH_WARMUP:-1}
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_CONCURRENCY=${BENCH_CONCURRENCY:-"1 32 256"}
BENCH_STRICT=${BENCH_STRICT:-1}
BENCH_WRK_TIMEOUT=${BENCH_WRK_TIMEOUT:-2s}
BENCH_START_TIMEOUT=${BENCH_START_TIMEOUT:-20}
BENCH_IDLE_WAIT=${BENCH_IDLE_WAIT:-2}
BENCH_PG_CLUSTER=${BENCH_PG_CLUSTER:-$REPO_ROOT/scripts/pg-cluster.sh}
BENCH_KEEP_TMP=${BENCH_KEEP_TMP:-0}
BENCH_FAKE_DEPSERA=${BENCH_FAKE_DEPSERA:-0}

H2O_BIN=${H2O_BIN:-/usr/bin/h2o}
WORKER_COMM=depsera-worker
RSS_BAR_KIB=10240          # worker RSS <= 10 MiB
RATIO_BAR=0.50             # depsera/h2o at c=32
RATIO_BAR_CONC=32

# ---------------------------------------------------------------- state ----
WORK=""                    # scratch dir, removed on exit
RESULTS=""                 # TSV: run target conc rps p50_us p99_us errors
CURRENT_RUN=0
PG_DIR=""
PG_STARTED=0
DATABASE_URL=""
DEPSERA_PID=""
DEPSERA_PORT=""
DEPSERA_URL=""
DEPSERA_BASE=""            # http://127.0.0.1:PORT, for bench_target URLs
H2O_PID=""
H2O_PORT=""
H2O_URL=""
DEPSERA_LOG=""
DEPSERA_WORKER_PIDS=()
WRK_PID=""
H2O_PIDS=()
USED_PORTS=" "
FAILURES=0                 # measured runs with errors or a failed wrk

log()  { printf '[bench] %s\n' "$*" >&2; }
die()  { log "ERROR: $*"; exit 1; }
usage() {
    echo "usage: $0 DEPSERA_BINARY   (e.g. tests/bench/run.sh ./depsera)" >&2
    exit 2
}

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# Print the last lines of a log file to stderr, indented.
show_log() {
    local file=$1 n=${2:-30}
    [ -s "$file" ] || { log "($file is empty)"; return 0; }
    log "--- last $n lines of $file ---"
    tail -n "$n" "$file" | sed 's/^/    /' >&2
}

# Send SIGTERM, wait up to $2 seconds, then SIGKILL. Sets STOP_STATUS to the
# process's exit status (when it was our child) and STOP_SIGNALLED to 1 when it
# was still running, i.e. the status is its answer to SIGTERM.
STOP_STATUS=""
STOP_SIGNALLED=0
stop_pid() {
    local pid=$1 grace=${2:-10} i
    STOP_STATUS=""
    STOP_SIGNALLED=0
    alive "$pid" || { wait "$pid" 2>/dev/null && STOP_STATUS=0 || STOP_STATUS=$?; return 0; }
    STOP_SIGNALLED=1
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        alive "$pid" || break
        # a zombie child still answers kill -0; reap it via wait below
        [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
        sleep 0.1
    done
    if alive "$pid" && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; then
        log "pid $pid did not exit ${grace}s after SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null && STOP_STATUS=0 || STOP_STATUS=$?
}

cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    set +e
    if alive "$WRK_PID"; then
        kill -TERM "$WRK_PID" 2>/dev/null
        wait "$WRK_PID" 2>/dev/null
    fi
    if [ -n "$DEPSERA_PID" ]; then
        stop_pid "$DEPSERA_PID" 10
        if [ "$BENCH_FAKE_DEPSERA" != 1 ] && [ "$STOP_SIGNALLED" = 1 ] && [ "$STOP_STATUS" != 0 ]; then
            log "WARNING: depsera exited with status $STOP_STATUS after SIGTERM (expected 0)"
            [ -n "$DEPSERA_LOG" ] && show_log "$DEPSERA_LOG" 20
        fi
        # workers orphaned by a supervisor that died or was killed
        for pid in "${DEPSERA_WORKER_PIDS[@]}"; do
            if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$WORKER_COMM" ]; then
                log "killing leftover worker $pid"
                kill -KILL "$pid" 2>/dev/null
            fi
        done
    fi
    for pid in "${H2O_PIDS[@]}"; do
        stop_pid "$pid" 5
    done
    if [ "$PG_STARTED" = 1 ]; then
        run_pg_cluster stop "$PG_DIR" >>"$WORK/pg-cluster.log" 2>&1 \
            || { log "WARNING: pg-cluster.sh stop failed"; show_log "$WORK/pg-cluster.log" 10; }
        # The project's script also has `destroy`, which removes what it may
        # have put outside DIR (relocated data, a short socket dir under /tmp).
        # A helper without it just fails here, harmlessly.
        if [ "$BENCH_KEEP_TMP" != 1 ]; then
            run_pg_cluster destroy "$PG_DIR" >>"$WORK/pg-cluster.log" 2>&1 || true
        fi
    fi
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if [ "$BENCH_KEEP_TMP" = 1 ]; then
            log "scratch dir kept: $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    exit "$rc"
}

# ------------------------------------------------------------- helpers ----
port_in_use() {
    local p=$1
    if command -v ss >/dev/null 2>&1; then
        [ -n "$(ss -Htan "( sport = :$p )" 2>/dev/null)" ]
    else
        (: <"/dev/tcp/127.0.0.1/$p") 2>/dev/null
    fi
}

# free_port VAR: store an unused TCP port in VAR. Ports come from 20000-31999,
# below Linux's ephemeral range, so wrk's own client sockets cannot take them.
free_port() {
    local p i
    for ((i = 0; i < 500; i++)); do
        p=$((20000 + RANDOM % 12000))
        case $USED_PORTS in *" $p "*) continue ;; esac
        port_in_use "$p" && continue
        USED_PORTS+="$p "
        printf -v "$1" '%s' "$p"
        return 0
    done
    die "could not find a free TCP port"
}

# wait_http NAME URL PID LOGFILE: poll until URL answers 200.
wait_http() {
    local name=$1 url=$2 pid=$3 logfile=$4 code=000 deadline
    deadline=$((SECONDS + BENCH_START_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! alive "$pid"; then
            show_log "$logfile"
            die "$name exited during startup (waiting for 200 from $url)"
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" 2>/dev/null) || true
        [ "$code" = 200 ] && return 0
        sleep 0.1
    done
    show_log "$logfile"
    die "$name did not answer 200 on $url within ${BENCH_START_TIMEOUT}s (last status: $code)"
}

run_pg_cluster() {
    if [ -x "$BENCH_PG_CLUSTER" ]; then
        "$BENCH_PG_CLUSTER" "$@"
    else
        bash "$BENCH_PG_CLUSTER" "$@"
    fi
}

# -------------------------------------------------------------- targets ----
start_postgres() {
    local out port
    [ -f "$BENCH_PG_CLUSTER" ] || die "PostgreSQL helper not found: $BENCH_PG_CLUSTER"
    free_port port
    PG_DIR=$WORK/pg
    PG_STARTED=1                          # so cleanup stops a half-started one
    log "starting PostgreSQL on 127.0.0.1:$port ($BENCH_PG_CLUSTER)"
    if ! out=$(run_pg_cluster start "$PG_DIR" "$port" 2>>"$WORK/pg-cluster.log"); then
        show_log "$WORK/pg-cluster.log"
        die "pg-cluster.sh start failed"
    fi
    # Last postgres:// URL on stdout; tolerate "DATABASE_URL=..." / quotes.
    DATABASE_URL=$(printf '%s\n' "$out" | grep -Eo 'postgres(ql)?://[^"'\'' ]+' | tail -n 1) || true
    if [ -z "$DATABASE_URL" ]; then
        printf '%s\n' "$out" | sed 's/^/    /' >&2
        die "pg-cluster.sh start printed no postgres:// URL on stdout"
    fi
}

start_depsera() {
    local port
    log "depsera migrate up"
    if ! DATABASE_URL=$DATABASE_URL LOG_LEVEL=warn "$DEPSERA_BIN" migrate up \
        >"$WORK/migrate.log" 2>&1; then
        show_log "$WORK/migrate.log"
        die "depsera migrate up failed"
    fi
    free_port port
    DEPSERA_PORT=$port
    DEPSERA_LOG=$WORK/depsera.log
    log "starting depsera on 127.0.0.1:$port with WORKERS=$BENCH_WORKERS"
    DATABASE_URL=$DATABASE_URL HOST=127.0.0.1 PORT=$port WORKERS=$BENCH_WORKERS \
        LOG_LEVEL=warn "$DEPSERA_BIN" serve --no-poller --no-pruner \
        >"$WORK/depsera.stdout" 2>"$DEPSERA_LOG" &
    DEPSERA_PID=$!
    DEPSERA_BASE="http://127.0.0.1:$port"
    DEPSERA_URL="$DEPSERA_BASE/api/health/live"
    wait_http depsera "$DEPSERA_URL" "$DEPSERA_PID" "$DEPSERA_LOG"
}

# start_h2o NAME PORTVAR PIDVAR: Debian h2o with num-threads=BENCH_WORKERS
# serving /health.json (and /api/health/live, used by BENCH_FAKE_DEPSERA).
start_h2o() {
    local name=$1 port dir
    dir=$WORK/h2o-$name
    mkdir -p "$dir/www/api/health"
    printf '{"status":"ok"}\n' >"$dir/www/health.json"
    printf '{"status":"ok"}\n' >"$dir/www/api/health/live"
    chmod -R a+rX "$dir/www"
    free_port port
    {
        # h2o refuses to run as root without `user:`; as non-root it must
        # not be given (setuid would fail). The pid file is left out because
        # h2o opens it after dropping privileges; we track $! instead.
        if [ "$(id -u)" = 0 ]; then
            echo "user: nobody"
        fi
        echo "num-threads: $BENCH_WORKERS"
        echo "error-log: $dir/error.log"
        echo "listen:"
        echo "  host: 127.0.0.1"
        echo "  port: $port"
        echo "hosts:"
        echo "  default:"
        echo "    paths:"
        echo "      /:"
        echo "        file.dir: $dir/www"
        # no access-log key: h2o writes no access log at all
    } >"$dir/h2o.yaml"
    [ -x "$H2O_BIN" ] || die "h2o not found at $H2O_BIN (apt-get install h2o)"
    log "starting h2o ($name) on 127.0.0.1:$port with num-threads=$BENCH_WORKERS"
    "$H2O_BIN" -c "$dir/h2o.yaml" >"$dir/stdout.log" 2>&1 &
    local pid=$!
    H2O_PIDS+=("$pid")
    wait_http "h2o ($name)" "http://127.0.0.1:$port/health.json" "$pid" "$dir/stdout.log"
    printf -v "$2" '%s' "$port"
    printf -v "$3" '%s' "$pid"
}

# --------------------------------------------------------------- memory ----
# report_memory LABEL BAR(1|0): RSS/PSS of the supervisor's depsera-worker
# children, from /proc/PID/smaps_rollup.
report_memory() {
    local label=$1 with_bar=$2 pid comm rss pss n=0 max=0 sup_rss sup_pss
    local -a pids=()
    echo
    echo "== depsera memory ($label) =="
    if [ "$BENCH_FAKE_DEPSERA" = 1 ]; then
        echo "(BENCH_FAKE_DEPSERA=1: no depsera processes; skipped)"
        if [ "$with_bar" = 1 ]; then echo "worker RSS <= 10 MiB: SKIP"; fi
        return 0
    fi
    sup_rss=$(awk '/^Rss:/ {print $2}' "/proc/$DEPSERA_PID/smaps_rollup" 2>/dev/null || echo "?")
    sup_pss=$(awk '/^Pss:/ {print $2}' "/proc/$DEPSERA_PID/smaps_rollup" 2>/dev/null || echo "?")
    printf '%-16s %8s %10s %10s\n' process pid "RSS KiB" "PSS KiB"
    printf '%-16s %8s %10s %10s\n' "supervisor" "$DEPSERA_PID" "$sup_rss" "$sup_pss"
    for pid in $(ps --ppid "$DEPSERA_PID" -o pid= 2>/dev/null); do
        comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
        [ "$comm" = "$WORKER_COMM" ] || continue
        rss=$(awk '/^Rss:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null) || continue
        pss=$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null) || continue
        [ -n "$rss" ] || continue
        printf '%-16s %8s %10s %10s\n' "$WORKER_COMM" "$pid" "$rss" "$pss"
        pids+=("$pid")
        n=$((n + 1))
        if ((rss > max)); then max=$rss; fi
    done
    if [ "$with_bar" = 1 ]; then DEPSERA_WORKER_PIDS=("${pids[@]}"); fi
    if ((n != BENCH_WORKERS)); then
        echo "note: found $n $WORKER_COMM process(es), expected WORKERS=$BENCH_WORKERS"
    fi
    [ "$with_bar" = 1 ] || return 0
    if [ "$BENCH_WORKERS" != 4 ]; then
        echo "note: measured with WORKERS=$BENCH_WORKERS (the bar assumes 4)"
    fi
    if ((n == 0)); then
        echo "worker RSS <= 10 MiB: FAIL (no $WORKER_COMM children of pid $DEPSERA_PID)"
    elif ((max <= RSS_BAR_KIB)); then
        echo "worker RSS <= 10 MiB: PASS (max $max KiB)"
    else
        echo "worker RSS <= 10 MiB: FAIL (max $max KiB)"
    fi
}

# ------------------------------------------------------------ benchmark ----
# bench_target NAME URL [METHOD BODYFILE HEADERS]
#   Runs wrk against URL at each BENCH_CONCURRENCY level (1 s warm-up, then
#   BENCH_DURATION measured) and appends one row per level to $RESULTS,
#   tagged with $CURRENT_RUN. HEADERS is newline-separated "Name: value"
#   lines. Rows with errors (or a wrk that failed) bump FAILURES.
bench_target() {
    local name=$1 url=$2 method=${3:-GET} bodyfile=${4:-} headers=${5:-}
    local c t out rc line rps p50 p99 errors raw
    local -a hargs=()
    [[ $name =~ ^[A-Za-z0-9._-]+$ ]] || die "bench_target: bad name '$name' (letters, digits, . _ -)"
    if [ -n "$headers" ]; then
        while IFS= read -r line; do
            [ -n "$line" ] && hargs+=(-H "$line")
        done <<<"$headers"
    fi
    if [ -n "$bodyfile" ] && [ ! -r "$bodyfile" ]; then
        die "bench_target $name: body file not readable: $bodyfile"
    fi
    for c in $BENCH_CONCURRENCY; do
        t=$((c < 2 ? c : 2))
        raw=$WORK/wrk-$name-c$c-run$CURRENT_RUN.txt
        # warm-up, discarded
        run_wrk "$t" "$c" "$BENCH_WARMUP" "$url" "$method" "$bodyfile" "$raw.warmup" "${hargs[@]}" || true
        rc=0
        run_wrk "$t" "$c" "$BENCH_DURATION" "$url" "$method" "$bodyfile" "$raw" "${hargs[@]}" || rc=$?
        out=$(cat "$raw")
        line=$(printf '%s\n' "$out" | grep '^RESULT ' | tail -n 1) || true
        if [ "$rc" != 0 ] || [ -z "$line" ]; then
            log "run $CURRENT_RUN $name c=$c: wrk failed (exit $rc)"
            printf '%s\n' "$out" | tail -n 5 | sed 's/^/    /' >&2
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$CURRENT_RUN" "$name" "$c" 0 0 0 -1 >>"$RESULTS"
            FAILURES=$((FAILURES + 1))
            continue
        fi
        rps=$(kv "$line" rps)
        p50=$(kv "$line" p50_us)
        p99=$(kv "$line" p99_us)
        errors=$(kv "$line" errors)
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$CURRENT_RUN" "$name" "$c" "$rps" "$p50" "$p99" "$errors" >>"$RESULTS"
        log "$(printf 'run %d/%d %-10s c=%-4s %10s req/s  p50 %6s us  p99 %7s us  errors %s' \
            "$CURRENT_RUN" "$BENCH_RUNS" "$name" "$c" "$rps" "$p50" "$p99" "$errors")"
        if [ "$errors" != 0 ]; then
            FAILURES=$((FAILURES + 1))
            log "    $(printf '%s' "$line" | cut -d' ' -f6-)"
        fi
    done
}

# run_wrk THREADS CONNS SECONDS URL METHOD BODYFILE OUTFILE [-H header]...
# wrk runs in the background and we `wait` for it: a trapped SIGINT/SIGTERM
# then interrupts the wait at once (a foreground wrk would swallow Ctrl-C
# and let the series go on); cleanup() kills the wrk left running.
run_wrk() {
    local t=$1 c=$2 d=$3 url=$4 method=$5 bodyfile=$6 outfile=$7 rc=0
    shift 7
    BENCH_METHOD=$method BENCH_BODYFILE=$bodyfile BENCH_STRICT=$BENCH_STRICT \
        wrk -t "$t" -c "$c" -d "$d" --timeout "$BENCH_WRK_TIMEOUT" \
        -s "$LUA_SCRIPT" "$@" "$url" >"$outfile" 2>&1 </dev/null &
    WRK_PID=$!
    wait "$WRK_PID" || rc=$?
    WRK_PID=""
    return "$rc"
}

# register_bench NAME URL [METHOD BODYFILE HEADERS]: add to the series.
B_NAME=() B_URL=() B_METHOD=() B_BODY=() B_HEADERS=()
register_bench() {
    B_NAME+=("$1") B_URL+=("$2") B_METHOD+=("${3:-GET}") B_BODY+=("${4:-}") B_HEADERS+=("${5:-}")
}

# run_series: every registered benchmark once, in alternating order.
run_series() {
    local i n=${#B_NAME[@]}
    for ((i = 0; i < n; i++)); do
        local j=$i
        if ((CURRENT_RUN % 2 == 0)); then j=$((n - 1 - i)); fi
        bench_target "${B_NAME[j]}" "${B_URL[j]}" "${B_METHOD[j]}" "${B_BODY[j]}" "${B_HEADERS[j]}"
    done
}

# kv LINE KEY: value of KEY=value in a RESULT line.
kv() { printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }

# print_table: one row per (target, concurrency), in first-seen order, with
# medians over runs; errors are summed (-1 = a wrk run failed).
print_table() {
    echo
    echo "== results: median of $BENCH_RUNS run(s), ${BENCH_DURATION}s each, ${BENCH_WORKERS} workers/threads =="
    awk -F'\t' '
        function median(list,   a, n, i, j, v) {
            n = split(list, a, " ")
            for (i = 2; i <= n; i++) {          # insertion sort (mawk has no asort)
                v = a[i] + 0
                for (j = i - 1; j >= 1 && a[j] + 0 > v; j--) a[j + 1] = a[j]
                a[j + 1] = v
            }
            if (n == 0) return 0
            if (n % 2) return a[(n + 1) / 2]
            return (a[n / 2] + a[n / 2 + 1]) / 2
        }
        {
            k = $2 SUBSEP $3
            if (!(k in seen)) { seen[k] = 1; order[++nk] = k; tname[k] = $2; conc[k] = $3 }
            rps[k] = rps[k] " " $4; p50[k] = p50[k] " " $5; p99[k] = p99[k] " " $6
            runs[k]++
            if ($7 < 0) failed[k]++; else err[k] += $7
        }
        END {
            printf "%-16s %6s %5s %12s %10s %10s %8s\n", "target", "conc", "runs", "rps", "p50 ms", "p99 ms", "errors"
            for (i = 1; i <= nk; i++) {
                k = order[i]
                e = err[k] + 0
                if (failed[k]) e = e "+" failed[k] "fail"
                printf "%-16s %6s %5d %12.0f %10.3f %10.3f %8s\n", tname[k], conc[k], runs[k],
                    median(rps[k]), median(p50[k]) / 1000, median(p99[k]) / 1000, e
            }
        }' "$RESULTS"
}

# print_ratio NUM DEN: for each concurrency, the median over runs of
# rps(NUM)/rps(DEN) measured in the same run.
print_ratio() {
    local num=$1 den=$2 c r
    echo
    for c in $BENCH_CONCURRENCY; do
        r=$(ratio_for "$num" "$den" "$c")
        echo "ratio $num/$den c=$c: $r (median of $BENCH_RUNS)"
    done
}

ratio_for() {
    awk -F'\t' -v num="$1" -v den="$2" -v c="$3" '
        $3 == c && $2 == num { n[$1] = $4 }
        $3 == c && $2 == den { d[$1] = $4 }
        END {
            m = 0
            for (r in n) if ((r in d) && d[r] > 0) v[++m] = n[r] / d[r]
            for (i = 2; i <= m; i++) { x = v[i]; for (j = i - 1; j >= 1 && v[j] > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
            if (m == 0) { print "n/a"; exit }
            med = (m % 2) ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
            printf "%.2f\n", med
        }' "$RESULTS"
}

# ------------------------------------------------------------------ main ----
[ $# -ge 1 ] || [ "$BENCH_FAKE_DEPSERA" = 1 ] || usage
DEPSERA_BIN=${1:-}
if [ -n "$DEPSERA_BIN" ]; then
    case $DEPSERA_BIN in
    */*) DEPSERA_BIN=$(cd "$(dirname "$DEPSERA_BIN")" 2>/dev/null && pwd)/$(basename "$DEPSERA_BIN") || true ;;
    *) DEPSERA_BIN=$(command -v "$DEPSERA_BIN" || echo "$DEPSERA_BIN") ;;
    esac
fi

for v in BENCH_WORKERS BENCH_RUNS BENCH_START_TIMEOUT BENCH_IDLE_WAIT; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "$v must be a positive integer (got '${!v}')" >&2; exit 2; }
done
for v in BENCH_DURATION BENCH_WARMUP; do
    [[ ${!v} =~ ^[1-9][0-9]*s?$ ]] || { echo "$v must be whole seconds, e.g. 5 or 5s (got '${!v}')" >&2; exit 2; }
done
BENCH_DURATION=${BENCH_DURATION%s}
BENCH_WARMUP=${BENCH_WARMUP%s}
for c in $BENCH_CONCURRENCY; do
    [[ $c =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_CONCURRENCY: bad level '$c'" >&2; exit 2; }
done
if [ "$BENCH_FAKE_DEPSERA" != 1 ] && [ ! -x "$DEPSERA_BIN" ]; then
    echo "depsera binary not found or not executable: $DEPSERA_BIN (build it: make depsera)" >&2
    exit 1
fi
[ -r "$LUA_SCRIPT" ] || { echo "missing $LUA_SCRIPT" >&2; exit 1; }
for tool in wrk curl ps; do
    command -v "$tool" >/dev/null 2>&1 || { echo "missing tool: $tool" >&2; exit 1; }
done

trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

WORK=$(mktemp -d "${TMPDIR:-/tmp}/depsera-bench.XXXXXX")
chmod 755 "$WORK"                  # the postgres / nobody users must traverse it
RESULTS=$WORK/results.tsv
: >"$RESULTS"
ulimit -n 65536 2>/dev/null || ulimit -n 4096 2>/dev/null || true

log "$(nproc) CPU(s); load generator (wrk) and servers share them"

start_postgres
if [ "$BENCH_FAKE_DEPSERA" = 1 ]; then
    log "BENCH_FAKE_DEPSERA=1: h2o stands in for depsera (harness self-test)"
    start_h2o fake-depsera DEPSERA_PORT DEPSERA_PID
    DEPSERA_BASE="http://127.0.0.1:$DEPSERA_PORT"
    DEPSERA_URL="$DEPSERA_BASE/api/health/live"
else
    start_depsera
fi
start_h2o static H2O_PORT H2O_PID
H2O_URL="http://127.0.0.1:$H2O_PORT/health.json"

sleep "$BENCH_IDLE_WAIT"
alive "$DEPSERA_PID" || { show_log "${DEPSERA_LOG:-/dev/null}"; die "depsera died while idle"; }
report_memory "idle ${BENCH_IDLE_WAIT}s after start" 1

# ------------------------------------------------------- the benchmarks ----
# Add new benchmarks here, one register_bench line each (same arguments as
# bench_target; see README.md). Every registered benchmark is run at every
# concurrency in every run; odd runs go through the list in this order, even
# runs in reverse, so no target always goes first.
register_bench depsera "$DEPSERA_URL"
register_bench h2o "$H2O_URL"

echo
echo "== targets =="
for ((i = 0; i < ${#B_NAME[@]}; i++)); do
    printf '%-16s %s %s%s\n' "${B_NAME[i]}" "${B_METHOD[i]}" "${B_URL[i]}" \
        "${B_BODY[i]:+  (body: ${B_BODY[i]})}"
done
echo "h2o is Debian h2o $("$H2O_BIN" --version 2>/dev/null | head -n1 | awk '{print $3}') serving a static 16-byte JSON file"
echo "wrk: threads=min(2,c), ${BENCH_WARMUP}s warm-up + ${BENCH_DURATION}s per point, timeout $BENCH_WRK_TIMEOUT, $(nproc) CPUs shared by wrk and the servers"

for ((CURRENT_RUN = 1; CURRENT_RUN <= BENCH_RUNS; CURRENT_RUN++)); do
    log "run $CURRENT_RUN/$BENCH_RUNS"
    run_series
    alive "$DEPSERA_PID" || { show_log "${DEPSERA_LOG:-/dev/null}"; die "depsera died during run $CURRENT_RUN"; }
    alive "$H2O_PID" || die "h2o died during run $CURRENT_RUN"
done

print_table
print_ratio depsera h2o
bar_ratio=$(ratio_for depsera h2o "$RATIO_BAR_CONC")
if [ "$bar_ratio" = n/a ]; then
    echo "BAR c=$RATIO_BAR_CONC ratio >= $RATIO_BAR: n/a (c=$RATIO_BAR_CONC not measured for both targets)"
elif awk -v r="$bar_ratio" -v b="$RATIO_BAR" 'BEGIN { exit !(r + 0 >= b + 0) }'; then
    echo "BAR c=$RATIO_BAR_CONC ratio >= $RATIO_BAR: PASS ($bar_ratio)"
else
    echo "BAR c=$RATIO_BAR_CONC ratio >= $RATIO_BAR: FAIL ($bar_ratio)"
fi

sleep "$BENCH_IDLE_WAIT"
report_memory "idle ${BENCH_IDLE_WAIT}s after the load, informational" 0

echo
if ((FAILURES > 0)); then
    echo "bench: FAIL ($FAILURES measured run(s) had errors or wrk failures; BENCH_KEEP_TMP=1 keeps the raw wrk output)"
    exit 1
fi
echo "bench: OK (no errors)"
