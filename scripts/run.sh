#!/usr/bin/env bash
# `make run`: the local pool. Ensures Redis and PostgreSQL, builds release
# binaries, migrates, then starts a worker, GATEWAYS gateways (default 2)
# and HAProxy in the background (logs and pids in .run/). `make stop`
# stops them. Gateways beyond the first two join HAProxy through its
# Runtime API (scripts/gateway.sh start), the way an SRE adds a replica.
#
# PGBOUNCER=1 puts PgBouncer (transaction pooling, scripts/pgbouncer.sh,
# config in .run/pgbouncer/) between the pool and PostgreSQL on
# PGBOUNCER_PORT (default 6432): gateways and the worker connect to it,
# migrations go straight to PostgreSQL (DATABASE_DIRECT_URL).
#
# REDIS_CLUSTER=1 runs the pool on a local three-master Redis Cluster
# (scripts/redis-cluster.sh, nodes on REDIS_CLUSTER_PORT, default 7000,
# and the two ports after it; data in .run/redis-cluster/, kept in memory
# only) instead of the single Redis on REDIS_URL.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
RUN="$ROOT/.run"

export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/fechatter}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
PORT=${PORT:-8080}
GW1_PORT=${GW1_PORT:-8081}
GW2_PORT=${GW2_PORT:-8082}
WORKER_PORT=${WORKER_PORT:-9100}
TLS_PORT=${TLS_PORT:-8443}
GATEWAYS=${GATEWAYS:-2}
case "$GATEWAYS" in
    [1-9] | [1-9][0-9]) ;;
    *) echo "GATEWAYS must be 1 to 99" >&2; exit 1 ;;
esac
# gw1 and gw2 on GW1_PORT and GW2_PORT, gw3... on the ports after GW2_PORT.
gw_port() {
    case "$1" in
        1) echo "$GW1_PORT" ;;
        *) echo $((GW2_PORT + $1 - 2)) ;;
    esac
}

CREATE_DB=${DATABASE_URL##*/} scripts/ensure-services.sh
scripts/stop.sh >/dev/null 2>&1 || true
mkdir -p "$RUN"

# A random JWT secret, made once and kept in the local state (.data/), so
# tokens survive restarts of the pool; gateways refuse the built-in default.
if [ -z "${JWT_SECRET:-}" ]; then
    SECRET_FILE="$ROOT/.data/jwt-secret"
    if [ ! -s "$SECRET_FILE" ]; then
        (umask 077; head -c 48 /dev/urandom | base64 | tr -d '\n' >"$SECRET_FILE")
    fi
    JWT_SECRET=$(cat "$SECRET_FILE")
fi
export JWT_SECRET
# Local pool: sign-ups get tokens at once (SIGNUP_MODE=verified mails a
# link instead; the worker writes mail to .data/mail either way).
export SIGNUP_MODE=${SIGNUP_MODE:-direct} MAIL_DIR=${MAIL_DIR:-$ROOT/.data/mail}
export HAPROXY_CERT=${HAPROXY_CERT:-$ROOT/.data/tls/haproxy.pem}
scripts/tls-cert.sh >/dev/null

echo "==> building release binaries (first build takes a few minutes)"
cargo build --release --locked -p gateway -p worker
BIN="$ROOT/target/release"
export GATEWAY_BIN="$BIN/gateway"

if [ "${PGBOUNCER:-0}" = 1 ]; then
    PGBOUNCER_PORT=${PGBOUNCER_PORT:-6432}
    scripts/pgbouncer.sh start "$RUN/pgbouncer" "$PGBOUNCER_PORT"
    # Session-level work (migrations) goes straight to PostgreSQL; the
    # pool's queries through PgBouncer.
    export DATABASE_DIRECT_URL=${DATABASE_DIRECT_URL:-$DATABASE_URL}
    DATABASE_URL=$(echo "$DATABASE_URL" | sed -E "s#^(postgres(ql)?://([^@/]*@)?)[^/]+/#\\1127.0.0.1:$PGBOUNCER_PORT/#")
    export DATABASE_URL
fi

if [ "${REDIS_CLUSTER:-0}" = 1 ]; then
    REDIS_URL=$(scripts/redis-cluster.sh start "$RUN/redis-cluster" "${REDIS_CLUSTER_PORT:-7000}")
    export REDIS_URL
fi

echo "==> migrating"
"$BIN/worker" migrate

# The pool's environment, for scripts/gateway.sh to start more gateways
# like these later (secret: it holds JWT_SECRET, like .data/jwt-secret).
(umask 077; export -p | grep -vE '^declare -x (PWD|OLDPWD|SHLVL|_)=' >"$RUN/env")

env BIND_ADDR=127.0.0.1:$WORKER_PORT INSTANCE_ID=worker1 "$BIN/worker" run >"$RUN/worker.log" 2>&1 &
echo $! >"$RUN/worker.pid"
rm -f "$RUN/haproxy.sock"
for i in $(seq "$GATEWAYS"); do
    [ "$i" -le 2 ] || break
    scripts/gateway.sh start "gw$i" "$(gw_port "$i")"
done

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
HAPROXY_BIND=0.0.0.0:$PORT HAPROXY_TLS_BIND=0.0.0.0:$TLS_PORT GATEWAY1_ADDR=127.0.0.1:$GW1_PORT GATEWAY2_ADDR=127.0.0.1:$GW2_PORT \
    HAPROXY_STATS_SOCKET="$RUN/haproxy.sock" HAPROXY_STATS_BIND=${HAPROXY_STATS_BIND:-127.0.0.1:8404} \
    haproxy -D -f haproxy.cfg -p "$RUN/haproxy.pid" >"$RUN/haproxy.log" 2>&1
# One gateway: the second configured server stays in maintenance.
if [ "$GATEWAYS" -eq 1 ]; then
    for backend in ws api; do
        echo "set server $backend/gw2 state maint" | python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.stdin.buffer.read()); s.recv(4096)
' "$RUN/haproxy.sock"
    done
fi
# More gateways join through the Runtime API.
for i in $(seq 3 "$GATEWAYS"); do
    scripts/gateway.sh start "gw$i" "$(gw_port "$i")"
done

# HAProxy marks servers up after its first health checks.
for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$PORT/health" >/dev/null && break
    sleep 0.1
done
curl -fs "http://127.0.0.1:$PORT/health" >/dev/null || {
    echo "HAProxy on port $PORT does not answer /health; see .run/haproxy.log" >&2
    exit 1
}

cat <<MSG

Fechatter realtime is running:
  web client:       http://127.0.0.1:$PORT/  and  https://127.0.0.1:$TLS_PORT/
                    (https: trust .data/tls/ca.pem in the browser, or accept its warning)
  API + WebSocket:  http://127.0.0.1:$PORT   (ws://127.0.0.1:$PORT/ws)
  over TLS:         https://127.0.0.1:$TLS_PORT (wss://127.0.0.1:$TLS_PORT/ws)
                    local CA: curl --cacert .data/tls/ca.pem ...
  gateways:         $(for i in $(seq "$GATEWAYS"); do printf 'http://127.0.0.1:%s  ' "$(gw_port "$i")"; done)
  HAProxy stats:    http://${HAPROXY_STATS_BIND:-127.0.0.1:8404}
  Redis:            $(if [ "${REDIS_CLUSTER:-0}" = 1 ]; then echo "a three-master cluster: $REDIS_URL"; else echo "$REDIS_URL"; fi)
  PostgreSQL:       $(if [ "${PGBOUNCER:-0}" = 1 ]; then echo "through PgBouncer on 127.0.0.1:$PGBOUNCER_PORT (transaction pooling)"; else echo direct; fi)
  scale/drain:      scripts/gateway.sh list | start gwN PORT | drain gwN
  logs:             .run/*.log
  stop:             make stop
MSG
