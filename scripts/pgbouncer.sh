#!/usr/bin/env bash
# PgBouncer in transaction pooling mode in front of the local PostgreSQL,
# for `PGBOUNCER=1 make run` and the part of `make test` that runs through
# it. Usage:
#
#   scripts/pgbouncer.sh install           # prints the pgbouncer binary it will use
#   scripts/pgbouncer.sh start DIR PORT    # config, log and pid under DIR
#   scripts/pgbouncer.sh stop DIR
#
# Why a version floor: sqlx (0.8) sends every query as named prepared
# statements (`sqlx_s_<n>`, per client connection, prepared in one round
# trip and bound in the next). In transaction pooling, PgBouncer may hand
# each round trip a different server connection, so before 1.21 a client
# meets statements of other clients under the same name ("already
# exists", or another client's statement run with its parameters) or,
# with unnamed statements (`persistent(false)`), binds its parameters to
# whatever the server connection parsed last. `statement_cache_capacity(0)`
# does not help: sqlx 0.8 still names each statement. Measured here with
# PgBouncer 1.18 (Debian 12) under 32 concurrent tasks: errors and wrong
# results either way.
# PgBouncer 1.21 added `max_prepared_statements`: it tracks each client's
# named statements and prepares them on whichever server connection runs
# them; with it sqlx's default statement cache is correct (same probe: 0
# errors). So this script uses Debian's pgbouncer when it is 1.21 or
# later and otherwise builds PgBouncer from the source package of the next
# Debian release (1.24 in Debian 13) into .data/pgbouncer/ (about a
# minute, once per machine).
#
# Variables: PG_HOST, PG_PORT (the PostgreSQL behind it, default
# 127.0.0.1:5432), PGBOUNCER_POOL_SIZE (server connections per database
# and user, default 20), PGBOUNCER_MAX_DB_CONNECTIONS (server connections
# per database over all users, default 40).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD="$ROOT/.data/pgbouncer"
MIN_VERSION=1.21

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
apt_install() {
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# True when version $1 is at least $2.
at_least() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1)" = "$2" ]; }
version_of() { "$1" --version 2>/dev/null | awk 'NR==1 {print $2}'; }

# The Debian mirror this machine already uses (deb822 or one-line format).
debian_mirror() {
    {
        cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ {print $2}'
        cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '/^deb / {print $2}'
    } | grep -v security | head -1 || true
}

build_from_source() {
    log "building PgBouncer >= $MIN_VERSION from Debian 13's source package into .data/pgbouncer"
    $SUDO apt-get update -qq
    apt_install build-essential pkg-config libevent-dev libssl-dev dpkg-dev
    local mirror src
    mirror=$(debian_mirror)
    [ -n "$mirror" ] || { echo "no Debian mirror in the apt sources" >&2; exit 1; }
    src="$BUILD/src"
    rm -rf "$src" && mkdir -p "$src/lists/partial"
    echo "deb-src $mirror trixie main" >"$src/sources.list"
    local opts=(-o "Dir::Etc::sourcelist=$src/sources.list" -o "Dir::Etc::sourceparts=-"
        -o "Dir::State::Lists=$src/lists" -o "APT::Sandbox::User=root")
    apt-get "${opts[@]}" update -qq
    (cd "$src" && apt-get "${opts[@]}" source --download-only -qq pgbouncer >/dev/null)
    tar -xzf "$src"/pgbouncer_*.orig.tar.gz -C "$src"
    (
        cd "$src"/pgbouncer-*/
        ./configure --prefix="$BUILD" --without-cares --with-systemd=no >"$src/configure.log" 2>&1
        make -j"$(nproc)" >"$src/make.log" 2>&1
        make install >"$src/install.log" 2>&1
    ) || { echo "building PgBouncer failed; see $src/*.log" >&2; exit 1; }
    rm -rf "$src"
}

# Prints the path of a pgbouncer binary of at least MIN_VERSION,
# installing or building one when needed.
install() {
    local bin
    for bin in "$(command -v pgbouncer || true)" "$BUILD/bin/pgbouncer"; do
        if [ -n "$bin" ] && [ -x "$bin" ] && at_least "$(version_of "$bin")" "$MIN_VERSION"; then
            echo "$bin"
            return
        fi
    done
    if ! command -v pgbouncer >/dev/null; then
        local candidate
        candidate=$(apt-cache policy pgbouncer 2>/dev/null | awk '/Candidate:/ {print $2}')
        if [ -n "$candidate" ] && [ "$candidate" != "(none)" ] && at_least "${candidate%%-*}" "$MIN_VERSION"; then
            log "installing Debian's pgbouncer $candidate"
            apt_install pgbouncer
            command -v pgbouncer
            return
        fi
    fi
    build_from_source
    echo "$BUILD/bin/pgbouncer"
}

start() {
    local dir=$1 port=$2 bin
    bin=$(install)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    stop "$dir" >/dev/null 2>&1 || true
    # Local PostgreSQL trusts loopback (scripts/ensure-services.sh), and so
    # does this PgBouncer; the user must still be listed.
    echo '"postgres" ""' >"$dir/userlist.txt"
    cat >"$dir/pgbouncer.ini" <<INI
; Generated by scripts/pgbouncer.sh; regenerated at every start.
[databases]
; Every database name is passed through (test databases come and go).
* = host=${PG_HOST:-127.0.0.1} port=${PG_PORT:-5432}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
admin_users = postgres
pool_mode = transaction
; sqlx's named statements, tracked per client (needs PgBouncer >= 1.21).
max_prepared_statements = 500
default_pool_size = ${PGBOUNCER_POOL_SIZE:-20}
max_db_connections = ${PGBOUNCER_MAX_DB_CONNECTIONS:-40}
max_client_conn = 2000
; sqlx asks for extra_float_digits at connect; results are binary anyway.
ignore_startup_parameters = extra_float_digits
; Tests set 1: a test's database is dropped right after the test, and
; PostgreSQL waits up to 5 s (then refuses) while PgBouncer still holds
; idle server connections to it.
server_idle_timeout = ${PGBOUNCER_SERVER_IDLE_TIMEOUT:-10}
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
    local user=()
    # PgBouncer refuses to run as root.
    if [ "$(id -u)" -eq 0 ]; then
        chown -R postgres "$dir"
        user=(-u postgres)
    fi
    "$bin" -d "${user[@]}" "$dir/pgbouncer.ini"
    for _ in $(seq 50); do
        psql -h 127.0.0.1 -p "$port" -U postgres -Atc 'select 1' postgres >/dev/null 2>&1 && break
        sleep 0.1
    done
    psql -h 127.0.0.1 -p "$port" -U postgres -Atc 'select 1' postgres >/dev/null || {
        echo "PgBouncer on port $port does not answer; see $dir/pgbouncer.log" >&2
        exit 1
    }
    log "PgBouncer $(version_of "$bin") on 127.0.0.1:$port (transaction pooling) -> ${PG_HOST:-127.0.0.1}:${PG_PORT:-5432}"
}

stop() {
    local dir=$1 pid
    [ -s "$dir/pgbouncer.pid" ] || return 0
    pid=$(cat "$dir/pgbouncer.pid")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$dir/pgbouncer.pid"
}

case "${1:-}" in
    install) install ;;
    start) start "${2:?DIR}" "${3:?PORT}" ;;
    stop) stop "${2:?DIR}" ;;
    *) echo "usage: $0 install | start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
