#!/usr/bin/env bash
# `make run`: the local pool. Ensures Redis and PostgreSQL, builds release
# binaries, migrates, then starts a worker, two gateways and HAProxy in the
# background (logs and pids in .run/). `make stop` stops them.
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

echo "==> migrating"
"$BIN/worker" migrate

start() { # name, then env assignments, then the command
    local name=$1; shift
    env "$@" >"$RUN/$name.log" 2>&1 &
    echo $! >"$RUN/$name.pid"
}
start worker BIND_ADDR=127.0.0.1:$WORKER_PORT INSTANCE_ID=worker1 "$BIN/worker" run
start gw1 BIND_ADDR=127.0.0.1:$GW1_PORT INSTANCE_ID=gw1 "$BIN/gateway"
start gw2 BIND_ADDR=127.0.0.1:$GW2_PORT INSTANCE_ID=gw2 "$BIN/gateway"

for port in "$GW1_PORT" "$GW2_PORT"; do
    for _ in $(seq 100); do
        curl -fs "http://127.0.0.1:$port/health" >/dev/null && break
        sleep 0.1
    done
    curl -fs "http://127.0.0.1:$port/health" >/dev/null || {
        echo "gateway on port $port did not become healthy; see .run/*.log" >&2
        exit 1
    }
done

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
HAPROXY_BIND=0.0.0.0:$PORT HAPROXY_TLS_BIND=0.0.0.0:$TLS_PORT GATEWAY1_ADDR=127.0.0.1:$GW1_PORT GATEWAY2_ADDR=127.0.0.1:$GW2_PORT \
    HAPROXY_STATS_SOCKET="$RUN/haproxy.sock" \
    haproxy -D -f haproxy.cfg -p "$RUN/haproxy.pid" >"$RUN/haproxy.log" 2>&1

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
  API + WebSocket:  http://127.0.0.1:$PORT   (ws://127.0.0.1:$PORT/ws)
  over TLS:         https://127.0.0.1:$TLS_PORT (wss://127.0.0.1:$TLS_PORT/ws)
                    local CA: curl --cacert .data/tls/ca.pem ...
  gateways:         http://127.0.0.1:$GW1_PORT  http://127.0.0.1:$GW2_PORT
  HAProxy stats:    http://127.0.0.1:8404
  logs:             .run/*.log
  stop:             make stop
MSG
