# Sourced by the benchmark scripts (bench.sh, bench-pool.sh,
# bench-scale.sh): the settings of a pool under load test, documented in
# BENCHMARKS.md, and the clean-up of what a script started.
#
#   bench_env <database> <redis prefix tag>
#       re-creates the database, exports DATABASE_URL, REDIS_URL and a
#       fresh REDIS_PREFIX, and the pool settings below
#   bench_spawn <log file> <command...>
#       starts a process in the background; bench_cleanup (on EXIT) stops
#       it and deletes the run's Redis keys

bench_env() {
    local db=$1 tag=$2
    psql -h 127.0.0.1 -U postgres -qc "drop database if exists $db" postgres
    psql -h 127.0.0.1 -U postgres -qc "create database $db" postgres
    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db
    export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
    export REDIS_PREFIX=$tag$(date +%s)
    # Cheap password hashing so thousands of sign-ups take seconds, room
    # for many connections per user (idle and ramp scenarios), auth rate
    # limits and the hashing queue lifted for sign-ups from one address,
    # and a random secret (gateways refuse the default).
    export ARGON2_MEMORY_KIB=1024 ARGON2_ITERATIONS=1 MAX_CONNECTIONS_PER_USER=100 RUST_LOG=warn
    export AUTH_IP_PER_MINUTE=10000000 AUTH_ACCOUNT_PER_MINUTE=10000000 ARGON2_QUEUE=100000
    export SIGNUP_MODE=direct
    export JWT_SECRET=${JWT_SECRET:-$(head -c 48 /dev/urandom | base64 | tr -d '\n')}
    HAPROXY_CERT=$(scripts/tls-cert.sh)
    export HAPROXY_CERT
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    trap bench_cleanup EXIT
}

bench_pids=()

bench_spawn() {
    local log=$1
    shift
    "$@" >"$log" 2>&1 &
    bench_pids+=($!)
}

bench_cleanup() {
    for p in "${bench_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    bench_pids=()
    redis-cli -u "$REDIS_URL" --scan --pattern "$REDIS_PREFIX:*" | xargs -r -n 500 redis-cli -u "$REDIS_URL" del >/dev/null || true
}

# Waits until <url> answers (at most <tenths> tenths of a second).
bench_wait() {
    local url=$1 tenths=${2:-100}
    for _ in $(seq "$tenths"); do curl -fs "$url" >/dev/null && return 0; sleep 0.1; done
    echo "$url did not answer" >&2
    return 1
}

machine_line() {
    echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, Linux $(uname -r)"
}
