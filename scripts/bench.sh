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
scripts/ensure-services.sh
cargo build --release --locked -p gateway -p worker -p loadtest
BIN="$ROOT/target/release"
# shellcheck source=scripts/bench-env.sh
. scripts/bench-env.sh

quick=()
[ -n "${BENCH_QUICK:-}" ] && quick=(--quick)
# The pool (scripts/bench-pool.sh: worker, two gateways, HAProxy) runs the
# standard set; it stops when the set is done.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
machine="$(machine_line), open-files limit $(ulimit -n)"
BENCH_BIN="$BIN" BENCH_TIMEOUT=1200 scripts/bench-pool.sh "$BIN/loadtest" --url http://127.0.0.1:18080 \
    --gateway http://127.0.0.1:18081 --gateway http://127.0.0.1:18082 \
    bench --out "${BENCH_OUT:-BENCHMARKS.md}" --machine "$machine" --commit "$(git rev-parse --short HEAD)" \
    --redis "$(echo "${REDIS_URL:-redis://127.0.0.1:6379}" | sed 's#^redis://##')" --database postgres://postgres@127.0.0.1:5432/fechatter_bench \
    --chaos "${quick[@]}"
if [ -n "${BENCH_SCALE:-}" ]; then
    scripts/bench-scale.sh
fi
