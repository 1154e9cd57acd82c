#!/usr/bin/env bash
# `make bench-scale` (also the last step of `BENCH_SCALE=1 make bench`):
# idle connections at the scale of this machine. Starts its own pool,
# SCALE_GATEWAYS gateways (default 12, ports 18101-) and SCALE_HAPROXIES
# HAProxy processes (default 12, ports 18201-, the shipped haproxy.cfg with
# every gateway listed), then
# `loadtest scale`: SCALE_DIRECT connections straight to the gateways and
# SCALE_PROXIED through the HAProxy processes (defaults 100,000 each),
# split over `loadtest hold` processes of at most 16,000 connections, each
# from its own source address 127.0.0.x. Writes the "Connections at scale"
# section of BENCHMARKS.md (or BENCH_OUT) and stops the pool.
#
# Why so many processes: the open-files limit (20,000 here) is per
# process, and a HAProxy process needs two descriptors per connection.
# Before anything starts, `loadtest scale` checks the limits and the
# memory a run needs and says which one a run would hit. Nothing here
# changes a sysctl: the defaults of this machine suffice for 200,000
# loopback connections (the run prints the ones that matter).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
RUN="$ROOT/.run/bench-scale"
mkdir -p "$RUN"

GATEWAYS=${SCALE_GATEWAYS:-12}
HAPROXIES=${SCALE_HAPROXIES:-12}
DIRECT=${SCALE_DIRECT:-100000}
PROXIED=${SCALE_PROXIED:-100000}

scripts/ensure-services.sh
cargo build --release --locked -p gateway -p loadtest
BIN="$ROOT/target/release"

# shellcheck source=scripts/bench-env.sh
. scripts/bench-env.sh
# As in `make bench` (scripts/bench-env.sh), and few pooled PostgreSQL
# connections per gateway: 12 gateways share max_connections.
bench_env fechatter_scale scale
export DB_MAX_CONNECTIONS=${SCALE_DB_CONNECTIONS:-4}

# The schema (the worker binary migrates; build it if missing).
[ -x "$BIN/worker" ] || cargo build --release --locked -p worker
"$BIN/worker" migrate

gw_args=()
for i in $(seq "$GATEWAYS"); do
    port=$((18100 + i))
    BIND_ADDR=127.0.0.1:$port INSTANCE_ID=scale-gw$i bench_spawn "$RUN/gw$i.log" "$BIN/gateway"
    gw_args+=(--gateway "http://127.0.0.1:$port")
done
for i in $(seq "$GATEWAYS"); do
    bench_wait "http://127.0.0.1:$((18100 + i))/health" 300
done

# The shipped haproxy.cfg with every gateway listed after gw2, in both
# backends. Not added through the Runtime API as `make run` does: with
# HAProxy 2.6's consistent hash, 10 servers added that way took the users
# of 2 of them, 8 got none (measured here), and 4 gateways then ran out of
# file descriptors.
cfg="$RUN/haproxy.cfg"
awk -v n="$GATEWAYS" '{ print }
    $0 == "    server gw2 \"${GATEWAY2_ADDR}\" check" {
        for (i = 3; i <= n; i++) printf "    server gw%d 127.0.0.1:%d check\n", i, 18100 + i
    }' haproxy.cfg >"$cfg"
proxy_args=()
for h in $(seq "$HAPROXIES"); do
    sock="$RUN/haproxy$h.sock"
    HAPROXY_BIND=127.0.0.1:$((18200 + h)) HAPROXY_TLS_BIND=127.0.0.1:$((18300 + h)) \
        HAPROXY_STATS_BIND=127.0.0.1:$((18400 + h)) HAPROXY_STATS_SOCKET="$sock" \
        GATEWAY1_ADDR=127.0.0.1:18101 GATEWAY2_ADDR=127.0.0.1:18102 \
        bench_spawn "$RUN/haproxy$h.log" haproxy -f "$cfg" -db
    proxy_args+=(--proxy "http://127.0.0.1:$((18200 + h))" --proxy-pid "${bench_pids[-1]}")
    for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
done
# Every HAProxy sees every gateway up before any load.
for h in $(seq "$HAPROXIES"); do
    for _ in $(seq 100); do
        up=$(HAPROXY_STATS_SOCKET="$RUN/haproxy$h.sock" scripts/gateway.sh list 2>/dev/null | grep -cE '^ws +gw[0-9]+ +UP' || true)
        [ "$up" -ge "$GATEWAYS" ] && break
        sleep 0.2
    done
done
[ "$HAPROXIES" -gt 0 ] || PROXIED=0

machine=$(machine_line)
timeout 1500 "$BIN/loadtest" --url http://127.0.0.1:18101 "${gw_args[@]}" \
    scale --direct "$DIRECT" --proxied "$PROXIED" "${proxy_args[@]}" --concurrency "${SCALE_CONCURRENCY:-16}" \
    --out "${BENCH_OUT:-BENCHMARKS.md}" \
    --provenance "on $(date -u '+%Y-%m-%d %H:%M UTC'), commit \`$(git rev-parse --short HEAD)\`; $machine"
