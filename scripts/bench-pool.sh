#!/usr/bin/env bash
# The pool `make bench` measures, for one command: a worker, two gateways
# (127.0.0.1:18081-18082) and HAProxy (http 127.0.0.1:18080, https
# 127.0.0.1:18443) on a fresh database (fechatter_bench) and Redis prefix,
# with the load-test settings of scripts/bench-env.sh. Runs the command
# given (with BENCH_URL, BENCH_GW1 and BENCH_GW2 set; stopped after
# BENCH_TIMEOUT seconds, default 1200), then stops the pool.
#
#   scripts/bench-pool.sh target/release/loadtest --url http://127.0.0.1:18080 \
#       --gateway http://127.0.0.1:18081 --gateway http://127.0.0.1:18082 \
#       write-cost --chats 1000 --rate 1
#
# BENCH_BIN picks the gateway and worker binaries (default target/release,
# built first): an A/B of two builds runs each through this script.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
RUN="$ROOT/.run/bench"
mkdir -p "$RUN"
# shellcheck source=scripts/bench-env.sh
. scripts/bench-env.sh

scripts/ensure-services.sh >/dev/null
if [ -z "${BENCH_BIN:-}" ]; then
    cargo build --release --locked -p gateway -p worker -p loadtest
fi
BIN=${BENCH_BIN:-$ROOT/target/release}

bench_env "${BENCH_DB:-fechatter_bench}" bench
# Pushes of the notify scenario go to a webhook receiver on loopback.
export PUSH_WEBHOOK_SECRET=bench-webhook-secret PUSH_WEBHOOK_ALLOW_HTTP=1
export HAPROXY_TLS_BIND=127.0.0.1:18443

"$BIN/worker" migrate
BIND_ADDR=127.0.0.1:19100 INSTANCE_ID=bench-worker bench_spawn "$RUN/worker.log" "$BIN/worker" run
BIND_ADDR=127.0.0.1:18081 INSTANCE_ID=bench-gw1 bench_spawn "$RUN/gw1.log" "$BIN/gateway"
BIND_ADDR=127.0.0.1:18082 INSTANCE_ID=bench-gw2 bench_spawn "$RUN/gw2.log" "$BIN/gateway"
bench_wait http://127.0.0.1:18081/health
bench_wait http://127.0.0.1:18082/health
HAPROXY_BIND=127.0.0.1:18080 HAPROXY_STATS_BIND=127.0.0.1:18404 HAPROXY_STATS_SOCKET="$RUN/haproxy.sock" \
    GATEWAY1_ADDR=127.0.0.1:18081 GATEWAY2_ADDR=127.0.0.1:18082 \
    bench_spawn "$RUN/haproxy.log" haproxy -f haproxy.cfg -db
bench_wait http://127.0.0.1:18080/health

export BENCH_URL=http://127.0.0.1:18080 BENCH_GW1=http://127.0.0.1:18081 BENCH_GW2=http://127.0.0.1:18082
timeout "${BENCH_TIMEOUT:-1200}" "$@"
