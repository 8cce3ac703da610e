#!/bin/sh
# `make run`: a local depsera on http://127.0.0.1:${PORT:-3001}.
#
#   scripts/run-local.sh ./depsera
#
# Without DATABASE_URL (unset or empty), starts (or reuses) a PostgreSQL
# cluster under <repo>/.pgdata with scripts/pg-cluster.sh; with it, uses that
# database. Then applies the migrations, creates an admin user when the users
# table is empty (password in .pgdata/admin-password, mode 600, reused on
# later runs), prints how to log in, and execs `depsera serve` with
# LOCAL_AUTH=true. Ctrl-C drains and stops depsera; the local PostgreSQL keeps
# running until `scripts/pg-cluster.sh stop .pgdata`.
set -eu

PROG=${0##*/}
die() {
    echo "$PROG: $*" >&2
    exit 1
}

[ $# -eq 1 ] || {
    echo "usage: $PROG ./depsera" >&2
    exit 2
}
case $1 in
/*) bin=$1 ;;
*) bin=$(pwd)/$1 ;;
esac
[ -x "$bin" ] || die "$1: not an executable (run make first)"

repo=$(cd "$(dirname "$0")/.." && pwd)
pgdata=$repo/.pgdata
pwfile=$pgdata/admin-password
admin_email=admin@localhost

if [ -z "${DATABASE_URL:-}" ]; then
    DATABASE_URL=$("$repo/scripts/pg-cluster.sh" start "$pgdata") ||
        die "could not start the local PostgreSQL (see the messages above)"
    [ -n "$DATABASE_URL" ] || die "scripts/pg-cluster.sh printed no URL"
    db_note="local PostgreSQL in .pgdata/ ($DATABASE_URL)"
    stop_note="scripts/pg-cluster.sh stop .pgdata"
else
    # the password, if any, stays off the screen
    db_note="DATABASE_URL ($(printf '%s' "$DATABASE_URL" | sed -e 's|//\([^:@/]*\):[^@/]*@|//\1:***@|' -e 's|password=[^ &]*|password=***|g'))"
    stop_note=""
fi
export DATABASE_URL

"$bin" migrate up

users=$(psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$DATABASE_URL" -c 'SELECT count(*) FROM users') ||
    die "cannot count the users with psql"

if [ "$users" -eq 0 ]; then
    mkdir -p "$pgdata"
    if [ ! -s "$pwfile" ]; then
        # 8 random bytes as 16 hex characters
        (
            umask 077
            od -An -N8 -tx1 /dev/urandom | tr -d ' \n' >"$pwfile"
            echo >>"$pwfile"
        )
    fi
    chmod 600 "$pwfile"
    "$bin" user create --email "$admin_email" --name admin --role admin --password-file "$pwfile"
fi

LOCAL_AUTH=true
export LOCAL_AUTH

case ${HOST:-127.0.0.1} in
0.0.0.0 | :: | 127.0.0.1) url_host=127.0.0.1 ;;
*:*) url_host="[$HOST]" ;;
*) url_host=$HOST ;;
esac

echo
echo "depsera: http://$url_host:${PORT:-3001}  (try /api/health)"
echo "  database: $db_note"
if [ -s "$pwfile" ]; then
    echo "  admin:    $admin_email  password: $(head -n 1 "$pwfile")  (kept in .pgdata/admin-password)"
else
    echo "  users:    $users already in the database; add one with"
    echo "            $1 user create --role admin --email EMAIL --name NAME"
fi
echo "  stop:     Ctrl-C (depsera drains, then exits)"
if [ -n "$stop_note" ]; then
    echo "  PostgreSQL keeps running; stop it with: $stop_note"
fi
echo

exec "$bin" serve
