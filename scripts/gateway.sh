#!/usr/bin/env bash
# Scaling and draining gateways of the pool `make run` started, without
# editing haproxy.cfg or restarting HAProxy (its Runtime API, on the admin
# socket HAPROXY_STATS_SOCKET, default .run/haproxy.sock):
#
#   scripts/gateway.sh list                 # servers, state, open sessions
#   scripts/gateway.sh start NAME [PORT]    # start gateway NAME (e.g. gw4) and put it in rotation
#   scripts/gateway.sh drain NAME [SECS]    # take NAME out of rotation and let its clients move
#   scripts/gateway.sh ready NAME           # put an existing server back in rotation
#   scripts/gateway.sh add NAME HOST:PORT   # add a running gateway to both backends
#
# `drain` is the one command for taking a gateway away (deploy, shrink,
# host maintenance): (1) HAProxy sets the server to `drain` in both
# backends: weight 0, so no new WebSocket or REST connection goes there,
# and the consistent hash moves exactly this gateway's users; (2) the
# gateway gets SIGTERM, its graceful shutdown: /health/live fails for
# DRAIN_GRACE_MS while it still serves, then its listener closes and
# every WebSocket closes with 1001 after its queued frames, so clients
# reconnect through HAProxy to the other gateways and sync; (3) the
# script waits until HAProxy counts no session on the server and the
# process has exited (at most SECS, default 60), then leaves the server in
# maintenance. `start NAME` brings it back.
#
# Processes are found by their pid files in RUN_DIR (default .run/), which
# `make run` writes; their environment is the one `make run` saved in
# RUN_DIR/env (GATEWAY_BIN: the binary, default target/release/gateway).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
RUN=${RUN_DIR:-$ROOT/.run}
SOCK=${HAPROXY_STATS_SOCKET:-$RUN/haproxy.sock}
BACKENDS=(ws api)

log() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }
die() { echo "$*" >&2; exit 1; }

# One Runtime API command; prints HAProxy's answer.
rt() {
    python3 - "$SOCK" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
out = b""
while chunk := s.recv(65536):
    out += chunk
sys.stdout.write(out.decode())
PY
}

# `show stat` field of backend $1, server $2: scur (5th) or status (18th).
stat_field() {
    rt "show stat" | awk -F, -v b="$1" -v s="$2" -v f="$3" '$1 == b && $2 == s {print $f}'
}
sessions() {
    local total=0 n backend
    for backend in "${BACKENDS[@]}"; do
        n=$(stat_field "$backend" "$1" 5)
        total=$((total + ${n:-0}))
    done
    echo "$total"
}
has_server() { [ -n "$(stat_field ws "$1" 2)" ]; }

# A process that is running (an exited one its parent has not reaped yet
# is a zombie: gone for our purposes).
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

set_state() { # name, state
    local backend out
    for backend in "${BACKENDS[@]}"; do
        out=$(rt "set server $backend/$1 state $2")
        [ -z "${out//[$'\n ']/}" ] || die "HAProxy: $out"
    done
}

add() { # name, host:port
    local backend out id=${1#gw}
    # An explicit server id: HAProxy (2.6 to 2.8, haproxy/haproxy#3413)
    # places a dynamic server on the consistent-hash ring before it has
    # assigned the automatic id, so servers added without one pile up on
    # the same spots and most of them get no users at all. gwN takes id N,
    # the id gw1 and gw2 have by their place in haproxy.cfg.
    case "$id" in
        '' | *[!0-9]*) die "gateway names are gw<number> (the number is its HAProxy server id): $1" ;;
    esac
    for backend in "${BACKENDS[@]}"; do
        # Dynamic servers get no default-server settings: the same health
        # check as the configured servers, spelled out.
        out=$(rt "add server $backend/$1 $2 id $id check inter 1s fall 2 rise 2")
        case "$out" in *"New server registered"*) ;; *) die "HAProxy: $out" ;; esac
        rt "enable health $backend/$1" >/dev/null
        rt "enable server $backend/$1" >/dev/null
    done
    log "$1 ($2) added to HAProxy's ws and api backends"
}

start() { # name, [port]
    local name=$1 port=${2:-} pidfile="$RUN/$1.pid"
    [ -s "$RUN/env" ] || die "no $RUN/env: start the pool with \`make run\` first"
    if [ -s "$pidfile" ] && alive "$(cat "$pidfile")"; then
        die "$name is already running (pid $(cat "$pidfile"))"
    fi
    if [ -z "$port" ]; then
        port=$(cat "$RUN/$name.port" 2>/dev/null || true)
        [ -n "$port" ] || die "usage: $0 start NAME PORT (no port known for $name)"
    fi
    (
        # shellcheck disable=SC1091
        . "$RUN/env"
        BIND_ADDR=127.0.0.1:$port INSTANCE_ID=$name "${GATEWAY_BIN:-$ROOT/target/release/gateway}" \
            >>"$RUN/$name.log" 2>&1 &
        echo $! >"$pidfile"
    )
    echo "$port" >"$RUN/$name.port"
    for _ in $(seq 100); do
        curl -fs "http://127.0.0.1:$port/health" >/dev/null && break
        sleep 0.1
    done
    curl -fs "http://127.0.0.1:$port/health" >/dev/null ||
        die "gateway $name on port $port did not become healthy; see $RUN/$name.log"
    log "$name listening on 127.0.0.1:$port (pid $(cat "$pidfile"))"
    if [ -S "$SOCK" ]; then
        if has_server "$name"; then
            set_state "$name" ready
            log "$name back in rotation"
        else
            add "$name" "127.0.0.1:$port"
        fi
    fi
}

drain() { # name, [timeout secs]
    local name=$1 secs=${2:-60} pid="" deadline n
    has_server "$name" || die "HAProxy has no server $name (see \`$0 list\`)"
    set_state "$name" drain
    log "$name drained in HAProxy: no new connections go to it"
    if [ -s "$RUN/$name.pid" ]; then
        pid=$(cat "$RUN/$name.pid")
        alive "$pid" || pid=""
    fi
    if [ -n "$pid" ]; then
        kill -TERM "$pid"
        log "$name (pid $pid) asked to close its connections (SIGTERM: graceful drain)"
    else
        log "no running process for $name in $RUN: waiting for its sessions to end"
    fi
    deadline=$((SECONDS + secs))
    while :; do
        n=$(sessions "$name")
        if [ "$n" -eq 0 ] && { [ -z "$pid" ] || ! alive "$pid"; }; then
            break
        fi
        [ "$SECONDS" -lt "$deadline" ] || die "$name still has $n sessions after ${secs}s"
        sleep 0.2
    done
    [ -z "$pid" ] || rm -f "$RUN/$name.pid"
    set_state "$name" maint
    log "$name has no connections left and is in maintenance (\`$0 start $name\` brings it back)"
}

list() {
    rt "show stat" | awk -F, '
        NR == 1 || $2 == "FRONTEND" || $2 == "BACKEND" { next }
        $1 == "ws" || $1 == "api" {
            printf "%-4s %-6s %-8s sessions=%s weight=%s\n", $1, $2, $18, $5, $19
        }'
}

[ -S "$SOCK" ] || [ "${1:-}" = start ] || die "no HAProxy Runtime API socket at $SOCK (is the pool running?)"
case "${1:-}" in
    list) list ;;
    start) start "${2:?NAME}" "${3:-}" ;;
    drain) drain "${2:?NAME}" "${3:-60}" ;;
    ready) set_state "${2:?NAME}" ready ;;
    add) add "${2:?NAME}" "${3:?HOST:PORT}" ;;
    *) sed -n '2,13p' "$0" >&2; exit 2 ;;
esac
