#!/usr/bin/env bash
# Makes sure everything Fechatter needs is installed and running on this
# machine: build tools, HAProxy, Redis and PostgreSQL, and the web client's
# toolchain (Node >= 20, its npm packages, Chromium for the browser tests
# in gateway/tests/web_client.rs). Reuses services that
# already answer on the configured URLs; otherwise installs (apt-get) and
# starts local ones. Idempotent; safe to run before every `make run`/`test`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DATA="$ROOT/.data"
mkdir -p "$DATA"

log() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

APT_UPDATED=0
apt_install() {
    if ! command -v apt-get >/dev/null; then
        echo "apt-get not found: install $* by hand" >&2
        exit 1
    fi
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        $SUDO apt-get update -qq
        APT_UPDATED=1
    fi
    log "installing $*"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

need=()
command -v cc >/dev/null || need+=(build-essential)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v curl >/dev/null || need+=(curl)
command -v haproxy >/dev/null || need+=(haproxy)
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v psql >/dev/null || need+=(postgresql-client)
command -v pg_ctlcluster >/dev/null || need+=(postgresql)
command -v python3 >/dev/null || need+=(python3)
command -v openssl >/dev/null || need+=(openssl)
command -v node >/dev/null || need+=(nodejs npm)
command -v chromium >/dev/null || need+=(chromium)
if [ "${#need[@]}" -gt 0 ]; then apt_install "${need[@]}"; fi
# PyYAML for the docker-compose.yml check, for whichever python3 is first
# on PATH (Debian's package only serves the system interpreter).
if ! python3 -c 'import yaml' 2>/dev/null; then
    python3 -m pip install -q pyyaml 2>/dev/null || apt_install python3-yaml
fi

# --- Web client toolchain ---------------------------------------------------
# playwright-core 1.65 (the browser tests) needs Node >= 20; Debian 12's
# nodejs is 18, so say what is needed rather than fail obscurely later.
node_major=$(node --version | sed -E 's/^v([0-9]+).*/\1/')
if [ "$node_major" -lt 20 ]; then
    echo "Node.js >= 20 is needed for the web client (playwright-core 1.65 requires it); found $(node --version) at $(command -v node)" >&2
    exit 1
fi
# web/node_modules as web/package-lock.json pins it: reinstalled when the
# lock file is newer than the stamp of the last install.
NPM_STAMP=web/node_modules/.fechatter-npm-ci
if [ ! -f "$NPM_STAMP" ] || [ web/package-lock.json -nt "$NPM_STAMP" ]; then
    log "npm ci in web/ (packages of web/package-lock.json)"
    (cd web && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    touch "$NPM_STAMP"
fi

if ! command -v cargo >/dev/null; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    else
        echo "cargo not found: install the Rust toolchain (https://rustup.rs)" >&2
        exit 1
    fi
fi

# --- Redis -----------------------------------------------------------------
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
REDIS_HOSTPORT=${REDIS_URL#redis://}
REDIS_HOSTPORT=${REDIS_HOSTPORT%%/*}
REDIS_HOST=${REDIS_HOSTPORT%%:*}
REDIS_PORT=${REDIS_HOSTPORT##*:}
if redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    log "Redis answers on $REDIS_HOST:$REDIS_PORT"
else
    log "starting Redis on $REDIS_HOST:$REDIS_PORT (data in .data/redis, maxmemory ${REDIS_MAXMEMORY:-1gb}, noeviction)"
    mkdir -p "$DATA/redis"
    # noeviction: at the memory limit writes fail loudly (senders get
    # `unavailable`) instead of Redis silently evicting streams.
    redis-server --daemonize yes --bind "$REDIS_HOST" --port "$REDIS_PORT" \
        --dir "$DATA/redis" --save "" --appendonly no --logfile "$DATA/redis/redis.log" \
        --maxmemory "${REDIS_MAXMEMORY:-1gb}" --maxmemory-policy noeviction
    for _ in $(seq 50); do
        redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping >/dev/null
fi

# --- PostgreSQL ------------------------------------------------------------
PG_HOST=${PG_HOST:-127.0.0.1}
PG_PORT=${PG_PORT:-5432}
if ! pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; then
    if command -v pg_lsclusters >/dev/null && [ -n "$(pg_lsclusters -h 2>/dev/null)" ]; then
        read -r ver name _ < <(pg_lsclusters -h | head -1)
        log "starting PostgreSQL cluster $ver/$name"
        pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start || true
    else
        ver=$(ls /usr/lib/postgresql | sort -V | tail -1)
        log "creating PostgreSQL $ver cluster"
        pg_createcluster "$ver" main --start -- --auth-local=trust --auth-host=trust >/dev/null
    fi
    for _ in $(seq 100); do
        pg_isready -q -h "$PG_HOST" -p "$PG_PORT" && break
        sleep 0.2
    done
    pg_isready -h "$PG_HOST" -p "$PG_PORT"
fi
if ! psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -Atc 'select 1' postgres >/dev/null 2>&1; then
    # A cluster created by the Debian package asks TCP clients for a password;
    # this is a development machine, so trust loopback connections.
    hba=$(su postgres -c "psql -Atc 'show hba_file'")
    log "trusting loopback connections in $hba"
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    su postgres -c "psql -qc 'select pg_reload_conf()'" >/dev/null
    sleep 0.5
    psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -Atc 'select 1' postgres >/dev/null
fi
log "PostgreSQL answers on $PG_HOST:$PG_PORT"
if [ -n "${CREATE_DB:-}" ]; then
    if ! psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -Atc "select 1 from pg_database where datname='$CREATE_DB'" postgres | grep -q 1; then
        log "creating database $CREATE_DB"
        psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -qc "create database \"$CREATE_DB\"" postgres
    fi
fi
