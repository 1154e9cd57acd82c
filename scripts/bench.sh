#!/usr/bin/env bash
# `make bench`: starts a dedicated pool (ports 18080-18082, database
# fechatter_bench, a fresh Redis prefix), runs the standard load set
# against it on loopback, writes BENCHMARKS.md and stops the pool. The
# set ends with `chaos` (about 2.5 minutes), which starts a pool of its
# own (free ports, its own redis-server, database fechatter_chaos, logs in
# .run/chaos) so it can kill and cut it.
# Pass BENCH_QUICK=1 for a seconds-long smoke run of the suite itself,
# BENCH_SCALE=1 to run scripts/bench-scale.sh (200k connections, its own
# pool, about 10 minutes) after the set; its section of BENCHMARKS.md is
# kept when the set runs alone.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
RUN="$ROOT/.run/bench"
mkdir -p "$RUN"

scripts/ensure-services.sh
cargo build --release --locked -p gateway -p worker -p loadtest
BIN="$ROOT/target/release"

DB=fechatter_bench
psql -h 127.0.0.1 -U postgres -qc "drop database if exists $DB" postgres
psql -h 127.0.0.1 -U postgres -qc "create database $DB" postgres
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
export REDIS_PREFIX=bench$(date +%s)
# Load-test settings of the pool under test (documented in BENCHMARKS.md):
# cheap password hashing so thousands of sign-ups take seconds, and room
# for many connections per user in the idle/ramp scenarios.
export ARGON2_MEMORY_KIB=1024 ARGON2_ITERATIONS=1 MAX_CONNECTIONS_PER_USER=100 RUST_LOG=warn
# Thousands of sign-ups from one address: lift the auth rate limits and the
# hashing queue; a random secret (gateways refuse the default).
export AUTH_IP_PER_MINUTE=10000000 AUTH_ACCOUNT_PER_MINUTE=10000000 ARGON2_QUEUE=100000
export SIGNUP_MODE=direct
# Pushes of the notify scenario go to a webhook receiver on loopback.
export PUSH_WEBHOOK_SECRET=bench-webhook-secret PUSH_WEBHOOK_ALLOW_HTTP=1
export JWT_SECRET=${JWT_SECRET:-$(head -c 48 /dev/urandom | base64 | tr -d '\n')}
export HAPROXY_CERT=$(scripts/tls-cert.sh) HAPROXY_TLS_BIND=127.0.0.1:18443
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    redis-cli -u "$REDIS_URL" --scan --pattern "$REDIS_PREFIX:*" | xargs -r -n 500 redis-cli -u "$REDIS_URL" del >/dev/null || true
}
trap cleanup EXIT

"$BIN/worker" migrate
BIND_ADDR=127.0.0.1:19100 INSTANCE_ID=bench-worker "$BIN/worker" run >"$RUN/worker.log" 2>&1 & pids+=($!)
BIND_ADDR=127.0.0.1:18081 INSTANCE_ID=bench-gw1 "$BIN/gateway" >"$RUN/gw1.log" 2>&1 & pids+=($!)
BIND_ADDR=127.0.0.1:18082 INSTANCE_ID=bench-gw2 "$BIN/gateway" >"$RUN/gw2.log" 2>&1 & pids+=($!)
for port in 18081 18082; do
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
done
HAPROXY_BIND=127.0.0.1:18080 HAPROXY_STATS_BIND=127.0.0.1:18404 HAPROXY_STATS_SOCKET="$RUN/haproxy.sock" \
    GATEWAY1_ADDR=127.0.0.1:18081 GATEWAY2_ADDR=127.0.0.1:18082 \
    haproxy -f haproxy.cfg -db >"$RUN/haproxy.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do curl -fs http://127.0.0.1:18080/health >/dev/null && break; sleep 0.1; done

machine="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, Linux $(uname -r), open-files limit $(ulimit -n)"
quick=()
[ -n "${BENCH_QUICK:-}" ] && quick=(--quick)
timeout 1200 "$BIN/loadtest" --url http://127.0.0.1:18080 \
    --gateway http://127.0.0.1:18081 --gateway http://127.0.0.1:18082 \
    bench --out "${BENCH_OUT:-BENCHMARKS.md}" --machine "$machine" --commit "$(git rev-parse --short HEAD)" \
    --redis "${REDIS_URL#redis://}" --database "$DATABASE_URL" --chaos "${quick[@]}"
if [ -n "${BENCH_SCALE:-}" ]; then
    cleanup
    trap - EXIT
    scripts/bench-scale.sh
fi
