#!/bin/sh
# Keep the variable list of the man page's ENVIRONMENT section equal to what
# the binary's configuration table says (`depsera config --roff`).
#
#   depsera config --roff | scripts/man-env.sh update man/depsera.1
#   depsera config --roff | scripts/man-env.sh check  man/depsera.1
#
# The list lives between two marker lines of the page:
#   .\" BEGIN GENERATED ENVIRONMENT
#   .\" END GENERATED ENVIRONMENT
# `update` replaces what is between them with standard input; `check` exits 1
# with a diff when the page differs from what `update` would write. Exit 2 on
# bad usage, missing markers or empty input (a failed `depsera config --roff`
# upstream of the pipe must not wipe the section).
set -eu

PROG=${0##*/}
BEGIN_MARK='.\" BEGIN GENERATED ENVIRONMENT'
END_MARK='.\" END GENERATED ENVIRONMENT'

usage() {
    echo "usage: depsera config --roff | $PROG check|update MANPAGE" >&2
    exit 2
}
die() {
    echo "$PROG: $*" >&2
    exit 2
}

[ $# -eq 2 ] || usage
mode=$1
page=$2
case $mode in check | update) ;; *) usage ;; esac
[ -f "$page" ] || die "$page: no such file"

tmp=$(mktemp "${TMPDIR:-/tmp}/man-env.XXXXXX")
trap 'rm -f "$tmp" "$tmp.new"' EXIT
trap 'exit 2' HUP INT TERM

cat >"$tmp"
[ -s "$tmp" ] || die "no input on stdin (expected the output of \`depsera config --roff\`)"
# the generated text must end with a newline so that the END marker stays on its own line
[ -z "$(tail -c 1 "$tmp")" ] || echo >>"$tmp"

# Exactly one of each marker, BEGIN first.
nbegin=$(grep -c -x -F -e "$BEGIN_MARK" "$page" || true)
nend=$(grep -c -x -F -e "$END_MARK" "$page" || true)
if [ "$nbegin" -ne 1 ] || [ "$nend" -ne 1 ]; then
    die "$page: expected exactly one '$BEGIN_MARK' and one '$END_MARK' line"
fi
begin=$(grep -n -x -F -e "$BEGIN_MARK" "$page" | cut -d: -f1)
end=$(grep -n -x -F -e "$END_MARK" "$page" | cut -d: -f1)
[ "$begin" -lt "$end" ] || die "$page: '$END_MARK' comes before '$BEGIN_MARK'"

{
    head -n "$begin" "$page"
    cat "$tmp"
    tail -n "+$end" "$page"
} >"$tmp.new"

if [ "$mode" = check ]; then
    if cmp -s "$page" "$tmp.new"; then
        exit 0
    fi
    diff -u "$page" "$tmp.new" | sed "1,2s|$tmp.new|$page (generated)|" >&2 || true
    echo "$PROG: $page: the ENVIRONMENT list differs from \`depsera config --roff\`; run make man" >&2
    exit 1
fi

if cmp -s "$page" "$tmp.new"; then
    exit 0
fi
# replace in place (keeps the file's inode, owner and mode)
cat "$tmp.new" >"$page"
echo "$PROG: updated $page" >&2
