#!/bin/sh
# Install every Debian package needed to build, test and run depsera.
#
# Idempotent: a package is installed only when dpkg does not report it as
# installed, and nothing is printed when everything is already present.
# Runs as root directly, or through sudo for a normal user.
set -eu

PACKAGES="
build-essential
autoconf
automake
pkg-config
libh2o-evloop-dev
libpq-dev
libjansson-dev
libssl-dev
libcurl4-openssl-dev
zlib1g-dev
libdeflate-dev
libprotobuf-c-dev
protobuf-c-compiler
libcrypt-dev
check
libsubunit-dev
clang
libclang-rt-14-dev
postgresql
postgresql-client
python3
python3-pytest
python3-pytest-xdist
python3-protobuf
protobuf-compiler
curl
wrk
h2o
prometheus-node-exporter
procps
util-linux
"

missing=""
for pkg in $PACKAGES; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    case "$status" in
        *"install ok installed"*) ;;
        *) missing="$missing $pkg" ;;
    esac
done

# Node.js and npm, for the OpenTelemetry JS SDK test (tests/otel-js). Debian's nodejs and npm only
# when no npm is on the PATH: a machine whose Node.js comes from elsewhere (nodesource's nodejs
# ships its own npm, and Debian's npm package conflicts with it) is left as it is.
if ! command -v npm >/dev/null 2>&1; then
    missing="$missing nodejs npm"
fi

[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install-deps: missing packages:$missing" >&2
    echo "install-deps: not root and sudo is not available; run as root:" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends$missing" >&2
    exit 1
fi

echo "install-deps: installing:$missing" >&2
# shellcheck disable=SC2086 # word splitting of the package list is intended
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends $missing >&2
