#!/usr/bin/env bash
# check-roundtrip.sh — verify that every depsera migration's down restores the
# schema exactly as it was before its up.
#
# Usage: schema/check-roundtrip.sh [DATABASE_URL]
#
# DATABASE_URL (argument, or the environment variable of that name) is a
# libpq connection URI or keyword/value string for a maintenance connection,
# e.g. postgresql://depsera@127.0.0.1:55432/postgres.  The role needs CREATEDB:
# the script works only in two scratch databases it creates
# (depsera_rt_<pid> and depsera_rt_<pid>_fresh) and drops at exit, so it never
# touches existing data.  psql and pg_dump are taken from PATH.
#
# Steps, each printing PASS or FAIL:
#   0. lint: no BEGIN/COMMIT/ROLLBACK/CONCURRENTLY in the migration files, and
#      every NNN_name.up.sql has its NNN_name.down.sql;
#   k. for each migration k = 1..N: dump (pg_dump -s) after 1..k-1, apply k up,
#      apply k down, dump again: the two dumps must be identical;
#   then apply every up in order and every down in reverse: the dump must be
#      identical to that of a freshly created database;
#   then the same, sending each file as ONE simple-query message (the way a
#      runner that embeds the SQL and calls PQexec does), not split by psql.
# Files are applied with psql -v ON_ERROR_STOP=1 --single-transaction -f.
# Exit status: 0 if every step passed, 1 if any failed, 2 on usage errors.

set -u
set -o pipefail

DATABASE_URL=${1:-${DATABASE_URL:-}}
if [ -z "$DATABASE_URL" ]; then
    echo "usage: $0 DATABASE_URL   (or set DATABASE_URL)" >&2
    exit 2
fi
for tool in psql pg_dump; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "FAIL: $tool not found in PATH" >&2
        exit 2
    fi
done

SCHEMA_DIR=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/depsera-roundtrip.XXXXXX")
DB="depsera_rt_$$"
FRESH="depsera_rt_$$_fresh"
FAILED=0

# URL of database $1 on the same server as DATABASE_URL.
db_url() {
    case "$DATABASE_URL" in
        postgres://*|postgresql://*)
            # scheme://[userinfo@]host[:port][/dbname][?params]
            printf '%s\n' "$DATABASE_URL" |
                sed -E "s#^(postgres(ql)?://[^/?]*)(/[^?]*)?#\\1/$1#" ;;
        *)  # keyword/value string: a later keyword overrides an earlier one
            printf '%s dbname=%s\n' "$DATABASE_URL" "$1" ;;
    esac
}

PSQL=(psql -X -q -v ON_ERROR_STOP=1)
RESTRICT_OPT=()
if pg_dump --help 2>/dev/null | grep -q -- '--restrict-key'; then
    # pg_dump >= 15.14 writes \restrict <random key>; make it deterministic.
    RESTRICT_OPT=(--restrict-key=depseraroundtrip)
fi

dump() {  # dump DBNAME OUTFILE
    pg_dump -s --no-owner --no-privileges "${RESTRICT_OPT[@]}" -d "$(db_url "$1")" \
        2>"$2.err" | sed -E '/^\\(un)?restrict /d' >"$2"
}

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    "${PSQL[@]}" -d "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $DB" \
        -c "DROP DATABASE IF EXISTS $FRESH" >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; FAILED=1; }

# apply FILE: one transaction, stop at the first error.
apply() {
    "${PSQL[@]}" --single-transaction -d "$(db_url "$DB")" -f "$1" >"$WORK/apply.log" 2>&1
}

# apply_one_query FILE: the whole file as one simple-query message, inside an
# explicit transaction (the runner's BEGIN/COMMIT).
# shellcheck disable=SC2317  # invoked indirectly by full_cycle
apply_one_query() {
    local sql
    sql=$(cat "$1") || return 1
    "${PSQL[@]}" -d "$(db_url "$DB")" -c "BEGIN" -c "$sql" -c "COMMIT" >"$WORK/apply.log" 2>&1
}

show_log() { sed 's/^/    /' "$WORK/apply.log"; }

# ---------------------------------------------------------------- setup
if ! "${PSQL[@]}" -d "$DATABASE_URL" -c "CREATE DATABASE $DB" -c "CREATE DATABASE $FRESH" \
        >"$WORK/apply.log" 2>&1; then
    echo "FAIL: cannot create scratch databases $DB and $FRESH:"
    show_log
    exit 1
fi

# ---------------------------------------------------------------- step 0: lint
UPS=()
for f in "$SCHEMA_DIR"/[0-9][0-9][0-9]_*.up.sql; do   # glob expansion is sorted
    [ -f "$f" ] && UPS+=("${f##*/}")
done
if [ "${#UPS[@]}" -eq 0 ]; then
    echo "FAIL: no NNN_name.up.sql files in $SCHEMA_DIR"
    exit 1
fi
lint_ok=1
prev=0
for up in "${UPS[@]}"; do
    down="${up%.up.sql}.down.sql"
    num=$((10#${up:0:3}))
    if [ "$num" -ne $((prev + 1)) ]; then
        echo "    $up: expected number $(printf '%03d' $((prev + 1)))"; lint_ok=0
    fi
    prev=$num
    if [ ! -f "$SCHEMA_DIR/$down" ]; then
        echo "    $up: missing $down"; lint_ok=0
    fi
    for f in "$up" "$down"; do
        [ -f "$SCHEMA_DIR/$f" ] || continue
        # Transaction control belongs to the runner; CONCURRENTLY cannot run
        # inside a transaction.  (plpgsql blocks use BEGIN without ';'.)
        if grep -n -i -E '^[[:space:]]*(begin|commit|rollback|end|start[[:space:]]+transaction)[[:space:]]*(transaction|work)?[[:space:]]*;' "$SCHEMA_DIR/$f" \
                | grep -v -i -E '^[0-9]+:[[:space:]]*end[[:space:]]*;' | grep -q .; then
            echo "    $f: contains transaction control"; lint_ok=0
        fi
        if grep -n -i -E '\bconcurrently\b' "$SCHEMA_DIR/$f" | grep -v -E '^[0-9]+:[[:space:]]*--' | grep -q .; then
            echo "    $f: uses CONCURRENTLY"; lint_ok=0
        fi
    done
done
for f in "$SCHEMA_DIR"/*.down.sql; do
    [ -f "$f" ] || continue
    [ -f "${f%.down.sql}.up.sql" ] || { echo "    ${f##*/}: no matching up"; lint_ok=0; }
done
if [ "$lint_ok" -eq 1 ]; then
    pass "lint: ${#UPS[@]} migrations, each with a down, no transaction control"
else
    fail "lint"
fi

if ! dump "$FRESH" "$WORK/fresh.sql"; then
    echo "FAIL: pg_dump of $FRESH failed:"; sed 's/^/    /' "$WORK/fresh.sql.err"; exit 1
fi

# ---------------------------------------------------------------- steps 1..N
applied_ok=1
for up in "${UPS[@]}"; do
    name=${up%.up.sql}
    down="$name.down.sql"
    if [ "$applied_ok" -ne 1 ]; then
        fail "$name: skipped (an earlier up failed)"
        continue
    fi
    if ! dump "$DB" "$WORK/$name.before.sql"; then
        fail "$name: pg_dump before up failed"; applied_ok=0; continue
    fi
    if ! apply "$SCHEMA_DIR/$up"; then
        fail "$name: up failed"; show_log; applied_ok=0; continue
    fi
    if ! apply "$SCHEMA_DIR/$down"; then
        fail "$name: down failed"; show_log; applied_ok=0; continue
    fi
    if ! dump "$DB" "$WORK/$name.after.sql"; then
        fail "$name: pg_dump after down failed"; applied_ok=0; continue
    fi
    if diff -u "$WORK/$name.before.sql" "$WORK/$name.after.sql" >"$WORK/$name.diff"; then
        k=$((10#${name:0:3}))
        if [ "$k" -eq 1 ]; then before="of an empty database"; else before="after 001..$(printf '%03d' $((k - 1)))"; fi
        pass "$name: up then down leaves the schema identical to the one $before"
    else
        fail "$name: schema after up+down differs:"; sed 's/^/    /' "$WORK/$name.diff"
    fi
    # Leave k applied for the next step.
    if ! apply "$SCHEMA_DIR/$up"; then
        fail "$name: re-applying up after down failed"; show_log; applied_ok=0
    fi
done

# ---------------------------------------------------------------- full cycle
full_cycle() {  # full_cycle APPLY_FUNCTION LABEL
    local fn=$1 label=$2 i
    for up in "${UPS[@]}"; do
        if ! "$fn" "$SCHEMA_DIR/$up"; then
            fail "$label: $up failed"; show_log; return
        fi
    done
    pass "$label: all ${#UPS[@]} ups applied"
    for ((i = ${#UPS[@]} - 1; i >= 0; i--)); do
        down="${UPS[$i]%.up.sql}.down.sql"
        if ! "$fn" "$SCHEMA_DIR/$down"; then
            fail "$label: $down failed"; show_log; return
        fi
    done
    if ! dump "$DB" "$WORK/empty.sql"; then
        fail "$label: pg_dump failed"; return
    fi
    if diff -u "$WORK/fresh.sql" "$WORK/empty.sql" >"$WORK/empty.diff"; then
        pass "$label: all downs in reverse leave the database identical to a fresh one"
    else
        fail "$label: schema after all downs differs from a fresh database:"
        sed 's/^/    /' "$WORK/empty.diff"
    fi
}

if [ "$applied_ok" -eq 1 ]; then
    # Steps 1..N left every migration applied; undo them to start from empty.
    undone_ok=1
    for ((i = ${#UPS[@]} - 1; i >= 0; i--)); do
        if ! apply "$SCHEMA_DIR/${UPS[$i]%.up.sql}.down.sql"; then
            fail "teardown: ${UPS[$i]%.up.sql}.down.sql failed"; show_log; undone_ok=0; break
        fi
    done
    if [ "$undone_ok" -eq 1 ]; then
        full_cycle apply "full cycle (psql -f)"
        full_cycle apply_one_query "full cycle (one query per file)"
    fi
else
    fail "full cycle: skipped (an up failed)"
fi

if [ "$FAILED" -eq 0 ]; then
    echo "PASS: all checks"
    exit 0
fi
echo "FAIL: see above"
exit 1
