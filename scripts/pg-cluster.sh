#!/bin/bash
# Throwaway PostgreSQL clusters for development and tests.
#
#   pg-cluster.sh start DIR [PORT]   create (initdb) if needed, start, create the
#                                    `depsera` database, print its URL on stdout
#   pg-cluster.sh stop DIR           fast shutdown
#   pg-cluster.sh status DIR         exit 0 if running (prints the URL), 3 if not
#   pg-cluster.sh destroy DIR        stop and remove DIR with its data
#
# The data lives in DIR/data, the log in DIR/postgresql.log, the port in
# DIR/port (so a second `start` reuses it) and the Unix socket in DIR/sock (or a
# short directory under /tmp when that path would pass the 107-byte limit of a
# socket address). The cluster listens on 127.0.0.1 only, with trust auth for
# the superuser `depsera`: never point this at anything but a test machine.
#
# initdb refuses to run as root, so as root the server runs as the `postgres`
# system user (or `depsera-pg`, created on demand). When that user cannot reach
# DIR (a project under /root, say), the data goes to /var/tmp/depsera-pg-<hash>
# and DIR/data is a symlink to it.
#
# Only the URL goes to stdout; every message goes to stderr.
set -euo pipefail

PROG=${0##*/}
DB_USER=depsera
DB_NAME=depsera

die() { echo "$PROG: $*" >&2; exit 1; }
note() { echo "$PROG: $*" >&2; }

usage() {
    cat >&2 <<EOF
usage: $PROG start DIR [PORT]
       $PROG stop DIR
       $PROG status DIR
       $PROG destroy DIR
EOF
    exit 2
}

# --- binaries ---------------------------------------------------------------

find_bindir() {
    local d
    if command -v pg_config >/dev/null 2>&1; then
        d=$(pg_config --bindir 2>/dev/null || true)
        if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            echo "$d"
            return
        fi
    fi
    # Highest major version first.
    for d in $(printf "%s\n" /usr/lib/postgresql/*/bin | sort -t/ -k5,5 -rn); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            echo "$d"
            return
        fi
    done
    die "no PostgreSQL server binaries found (install the postgresql package: scripts/install-deps.sh)"
}

# --- who runs the server ----------------------------------------------------

RUN_USER=""        # empty: the current user
as_run_user() {
    if [ -n "$RUN_USER" ]; then
        (cd / && runuser -u "$RUN_USER" -- "$@")
    else
        "$@"
    fi
}

pick_run_user() {
    [ "$(id -u)" -eq 0 ] || return 0
    if id -u postgres >/dev/null 2>&1; then
        RUN_USER=postgres
    else
        if ! id -u depsera-pg >/dev/null 2>&1; then
            note "creating system user depsera-pg to run PostgreSQL"
            useradd --system --user-group --no-create-home --home-dir /nonexistent \
                --shell /usr/sbin/nologin depsera-pg >&2
        fi
        RUN_USER=depsera-pg
    fi
}

# --- paths ------------------------------------------------------------------

abs_dir() {
    mkdir -p "$1"
    (cd "$1" && pwd -P)
}

dir_hash() { printf '%s' "$1" | sha256sum | cut -c1-16; }

# Sets DATA (DIR/data, maybe a symlink), BASE (where the real files live),
# RDATA and LOG (real paths, reachable by the user running the server).
resolve_layout() {
    DATA="$DIR/data"
    if [ -L "$DATA" ]; then
        BASE=$(dirname "$(readlink "$DATA")")
    else
        BASE="$DIR"
    fi
    RDATA="$BASE/data"
    LOG="$BASE/postgresql.log"
}

# Decide where the data goes for a new cluster (root case), and prepare it.
prepare_layout() {
    if [ -e "$DATA" ] || [ -L "$DATA" ]; then
        if [ -L "$DATA" ] && [ ! -d "$DATA" ]; then
            # The relocated data was removed (e.g. /var/tmp cleaned): start over.
            note "data directory $(readlink "$DATA") is gone; creating a new cluster"
            mkdir -p "$(readlink "$DATA")"
            chown "$RUN_USER": "$(readlink "$DATA")" "$BASE" 2>/dev/null || true
            chmod 700 "$(readlink "$DATA")"
        fi
        return
    fi
    [ -n "$RUN_USER" ] || return 0

    local owner
    owner=$(stat -c %u:%g "$DIR")
    chown "$RUN_USER": "$DIR"
    if as_run_user test -x "$DIR" && as_run_user test -w "$DIR"; then
        return
    fi
    chown "$owner" "$DIR"
    BASE="/var/tmp/depsera-pg-$(dir_hash "$DIR")"
    RDATA="$BASE/data"
    LOG="$BASE/postgresql.log"
    note "user $RUN_USER cannot reach $DIR; keeping the cluster in $BASE (DIR/data is a symlink)"
    mkdir -p "$BASE/data"
    chown "$RUN_USER": "$BASE" "$BASE/data"
    chmod 700 "$BASE" "$BASE/data"
    ln -sfn "$BASE/data" "$DATA"
    : >"$BASE/postgresql.log"
    chown "$RUN_USER": "$BASE/postgresql.log"
    ln -sfn "$LOG" "$DIR/postgresql.log"
}

# Socket directory: BASE/sock, or a short one under /tmp when too long.
socket_dir() {
    local port=$1 dir="$BASE/sock"
    if [ $(( ${#dir} + ${#port} + 10 )) -gt 107 ]; then   # "/.s.PGSQL." = 10
        dir="/tmp/depsera-pg-$(dir_hash "$DIR")"
    fi
    echo "$dir"
}

# --- ports ------------------------------------------------------------------

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_port() {
    local p
    if command -v python3 >/dev/null 2>&1; then
        p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || true)
        if [ -n "$p" ]; then echo "$p"; return; fi
    fi
    for _ in $(seq 100); do
        p=$(( 20000 + RANDOM % 30000 ))
        if ! port_in_use "$p"; then echo "$p"; return; fi
    done
    die "could not find a free port"
}

# --- commands ---------------------------------------------------------------

is_running() {
    [ -f "$DATA/PG_VERSION" ] || return 1
    as_run_user "$BINDIR/pg_ctl" -D "$RDATA" status >/dev/null 2>&1
}

url() { echo "postgresql://$DB_USER@127.0.0.1:$1/$DB_NAME"; }

psql_admin() {
    local port=$1; shift
    PGCONNECT_TIMEOUT=10 "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 \
        -h 127.0.0.1 -p "$port" -U "$DB_USER" -d postgres -At "$@"
}

write_conf() {
    local port=$1 sockdir=$2 conf="$DATA/depsera-test.conf"
    cat >"$conf" <<EOF
# Written by scripts/pg-cluster.sh on every start.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '${sockdir//\'/\'\'}'
max_connections = 200
shared_buffers = 64MB
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
log_min_messages = warning
log_connections = off
EOF
    [ -z "$RUN_USER" ] || chown "$RUN_USER": "$conf"
}

init_cluster() {
    note "initdb $DATA"
    if [ -z "$RUN_USER" ]; then mkdir -p "$DATA"; chmod 700 "$DATA"; fi
    if [ -n "$RUN_USER" ] && [ ! -d "$DATA" ]; then
        mkdir -p "$DATA"
        chown "$RUN_USER": "$DATA"
        chmod 700 "$DATA"
    fi
    as_run_user "$BINDIR/initdb" -D "$RDATA" -U "$DB_USER" --auth=trust \
        -E UTF8 --locale=C >&2
    echo "include_if_exists = 'depsera-test.conf'" >>"$DATA/postgresql.conf"
}

# Start on $1; returns 1 (without dying) if the server did not come up.
try_start() {
    local port=$1 sockdir
    sockdir=$(socket_dir "$port")
    mkdir -p "$sockdir"
    chmod 700 "$sockdir"
    [ -z "$RUN_USER" ] || chown "$RUN_USER": "$sockdir"
    echo "$sockdir" >"$DIR/sockdir"
    write_conf "$port" "$sockdir"
    as_run_user "$BINDIR/pg_ctl" -D "$RDATA" -l "$LOG" -w -t 60 start >&2
}

cmd_start() {
    local port=${1:-} auto=0
    pick_run_user
    resolve_layout
    prepare_layout

    if [ -z "$port" ] && [ -s "$DIR/port" ]; then port=$(cat "$DIR/port"); fi
    [ -z "$port" ] || [[ "$port" =~ ^[0-9]+$ ]] || die "invalid port: $port"

    [ -f "$DATA/PG_VERSION" ] || init_cluster
    if [ -n "$RUN_USER" ] && [ -e "$LOG" ]; then chown "$RUN_USER": "$LOG"; fi

    if is_running; then
        local cur
        cur=$(cat "$DIR/port" 2>/dev/null || true)
        if [ -n "$port" ] && [ "$port" != "$cur" ]; then
            die "already running on port $cur (asked for $port); stop it first"
        fi
        port=$cur
        note "already running on port $port"
    else
        if [ -z "$port" ]; then auto=1; port=$(free_port); fi
        local attempt=1
        until try_start "$port"; do
            if [ "$auto" -eq 1 ] && [ "$attempt" -lt 3 ]; then
                attempt=$((attempt + 1))
                port=$(free_port)
                note "start failed; retrying on port $port"
                continue
            fi
            tail -n 20 "$LOG" >&2 || true
            die "could not start PostgreSQL (log: $LOG)"
        done
        echo "$port" >"$DIR/port"
    fi

    if [ -z "$(psql_admin "$port" -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" ]; then
        psql_admin "$port" -c "CREATE DATABASE $DB_NAME" >&2
    fi
    url "$port"
}

cmd_stop() {
    pick_run_user
    resolve_layout
    if [ ! -f "$DATA/PG_VERSION" ]; then
        note "no cluster in $DIR"
        return 0
    fi
    if ! is_running; then
        note "not running"
        return 0
    fi
    as_run_user "$BINDIR/pg_ctl" -D "$RDATA" -m fast -w -t 60 stop >&2
}

cmd_status() {
    pick_run_user
    resolve_layout
    if is_running; then
        url "$(cat "$DIR/port")"
        return 0
    fi
    note "not running"
    return 3
}

cmd_destroy() {
    cmd_stop
    local sockdir
    sockdir=$(cat "$DIR/sockdir" 2>/dev/null || true)
    case "$sockdir" in
        /tmp/depsera-pg-*) rm -rf "$sockdir" ;;
    esac
    if [ -L "$DATA" ]; then
        case "$BASE" in
            /var/tmp/depsera-pg-*) rm -rf "$BASE" ;;
        esac
    fi
    rm -rf "$DIR"
}

[ $# -ge 2 ] || usage
CMD=$1
if [ "$CMD" = start ]; then
    DIR=$(abs_dir "$2")
elif [ -d "$2" ]; then
    DIR=$(cd "$2" && pwd -P)
else
    note "no cluster in $2"
    [ "$CMD" = status ] && exit 3
    exit 0
fi
shift 2
BINDIR=$(find_bindir)

case "$CMD" in
    start)   [ $# -le 1 ] || usage; cmd_start "$@" ;;
    stop)    [ $# -eq 0 ] || usage; cmd_stop ;;
    status)  [ $# -eq 0 ] || usage; cmd_status ;;
    destroy) [ $# -eq 0 ] || usage; cmd_destroy ;;
    *) usage ;;
esac
