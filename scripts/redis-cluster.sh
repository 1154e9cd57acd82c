#!/usr/bin/env bash
# A local Redis Cluster of three masters (no replicas), for `make test`
# (the message path against a cluster) and `REDIS_CLUSTER=1 make run`.
#
#   scripts/redis-cluster.sh start DIR BASE_PORT   # ports BASE..BASE+2
#   scripts/redis-cluster.sh url BASE_PORT         # the REDIS_URL to use
#   scripts/redis-cluster.sh stop DIR
#
# Each node keeps nothing on disk (no RDB, no AOF) and its nodes.conf in
# DIR, so a restart with the same DIR starts from a clean cluster: `start`
# stops whatever ran in DIR before and wipes it.
set -euo pipefail

cmd=${1:?usage: $0 start DIR BASE_PORT | url BASE_PORT | stop DIR}

url() {
    local base=$1
    echo "redis-cluster://127.0.0.1:$base?node=127.0.0.1:$((base + 1))&node=127.0.0.1:$((base + 2))"
}

stop() {
    local dir=$1 pids=()
    for pidfile in "$dir"/node-*.pid; do
        [ -f "$pidfile" ] || continue
        pids+=("$(cat "$pidfile" 2>/dev/null)")
    done
    for pid in "${pids[@]}"; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
    # Redis removes its pid file itself on the way out.
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do
            [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    done
    rm -f "$dir"/node-*.pid
}

start() {
    local dir=$1 base=$2
    stop "$dir"
    rm -rf "$dir"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    local nodes=()
    for i in 0 1 2; do
        local port=$((base + i))
        if redis-cli -p "$port" ping >/dev/null 2>&1; then
            echo "redis-cluster: port $port is taken by another Redis" >&2
            exit 1
        fi
        redis-server --port "$port" --bind 127.0.0.1 --daemonize yes \
            --cluster-enabled yes --cluster-config-file "$dir/nodes-$port.conf" \
            --cluster-node-timeout 2000 --save "" --appendonly no \
            --dir "$dir" --pidfile "$dir/node-$port.pid" --logfile "$dir/node-$port.log"
        nodes+=("127.0.0.1:$port")
    done
    for i in 0 1 2; do
        local port=$((base + i))
        for _ in $(seq 100); do
            redis-cli -p "$port" ping >/dev/null 2>&1 && break
            sleep 0.05
        done
    done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$dir/create.log" 2>&1 || {
        cat "$dir/create.log" >&2
        exit 1
    }
    # Every node must agree that all 16384 slots are served before a
    # client connects, or its first commands meet CLUSTERDOWN.
    for i in 0 1 2; do
        local port=$((base + i))
        for _ in $(seq 200); do
            redis-cli -p "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok' && break
            sleep 0.05
        done
        redis-cli -p "$port" cluster info | grep -q '^cluster_state:ok' || {
            echo "redis-cluster: node $port never reached cluster_state:ok" >&2
            exit 1
        }
    done
    url "$base"
}

case "$cmd" in
    start) start "${2:?DIR}" "${3:?BASE_PORT}" ;;
    url) url "${2:?BASE_PORT}" ;;
    stop) stop "${2:?DIR}" ;;
    *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
