#!/usr/bin/env bash
# Property-based fuzzing of the REST API against docs/openapi.json
# (schemathesis), on a live gateway and worker (REST posts are answered
# after the worker's commit) with a fresh database, for a bounded
# time (API_FUZZ_SECS, default 60). Fails on any 5xx, an undocumented
# status, or a response that does not match its schema. Part of `make test`.
# (The "coverage" phase is not run: on this Python it crashes inside
# hypothesis with "AST constructor recursion depth mismatch".)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SECS=${API_FUZZ_SECS:-60}
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug"
cargo build --locked -q -p gateway -p worker

if ! command -v st >/dev/null; then
    echo "==> installing schemathesis (PyPI)"
    python3 -m pip install -q schemathesis
    hash -r
fi

PG=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB="fechatter_fuzz_$$"
psql "$PG" -qc "create database $DB"
export DATABASE_URL="${PG%/*}/$DB"
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
export REDIS_PREFIX="fuzz$$"
export JWT_SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '\n')
export AUTH_IP_PER_MINUTE=1000000 AUTH_ACCOUNT_PER_MINUTE=1000000 RUST_LOG=warn
export ARGON2_MEMORY_KIB=1024 ARGON2_ITERATIONS=1 DRAIN_GRACE_MS=0 SIGNUP_MODE=direct
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
WORKER_PORT=$(free_port)
LOG=$(mktemp)

cleanup() {
    [ -n "${GW:-}" ] && kill "$GW" 2>/dev/null && wait "$GW" 2>/dev/null
    [ -n "${WK:-}" ] && kill "$WK" 2>/dev/null && wait "$WK" 2>/dev/null
    psql "$PG" -qc "drop database if exists $DB" >/dev/null 2>&1 || true
    redis-cli -u "$REDIS_URL" --scan --pattern "$REDIS_PREFIX:*" | xargs -r redis-cli -u "$REDIS_URL" del >/dev/null || true
    rm -f "$LOG"
}
trap cleanup EXIT

"$BIN/worker" migrate
BIND_ADDR=127.0.0.1:$WORKER_PORT INSTANCE_ID=fuzz-worker "$BIN/worker" run >>"$LOG" 2>&1 &
WK=$!
BIND_ADDR=127.0.0.1:$PORT "$BIN/gateway" >>"$LOG" 2>&1 &
GW=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/health/live" >/dev/null && break; sleep 0.1; done

# A user to fuzz with, and a chat so that some ids exist.
TOKEN=$(curl -fs "http://127.0.0.1:$PORT/api/signup" -H 'content-type: application/json' \
    -d '{"fullname":"Fuzz","email":"fuzz@fuzz.test","password":"correct horse battery","workspace":"Fuzz"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["accessToken"])')
curl -fs "http://127.0.0.1:$PORT/api/chat" -H "authorization: Bearer $TOKEN" \
    -H 'content-type: application/json' -d '{"type":"public_channel","name":"general"}' >/dev/null

echo "==> schemathesis against docs/openapi.json for ${SECS}s"
# Logout and password change would end the fuzzing session; /ws is a
# WebSocket upgrade (tested by the WebSocket suites).
set +e
st run docs/openapi.json --url "http://127.0.0.1:$PORT" \
    -H "Authorization: Bearer $TOKEN" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --exclude-path /api/logout --exclude-path /api/me/password --exclude-path /ws \
    --phases examples,fuzzing,stateful \
    --max-time "$SECS" --workers 2 --suppress-health-check all --warnings off
status=$?
set -e
if [ "$status" -ne 0 ]; then
    echo "schemathesis found failures; gateway log:" >&2
    tail -50 "$LOG" >&2
fi
exit "$status"
