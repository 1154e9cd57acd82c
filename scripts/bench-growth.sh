#!/usr/bin/env bash
# `make bench-growth`: loadtest's `growth` scenario on the `make bench`
# pool (scripts/bench-pool.sh, fresh database fechatter_growth): one probe
# chat measured while filler chats grow `messages` and `chat_events` to
# each of GROWTH_SIZES rows (default 100000,1000000,10000000). The
# scenario bounds itself (at most 20M rows, fixed sample counts); the pool
# is stopped after BENCH_TIMEOUT seconds (default here 2400). Progress and
# the report are also written to .run/bench/growth.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
DB=fechatter_growth
OUT=.run/bench/growth.txt
mkdir -p .run/bench
BENCH_DB=$DB BENCH_TIMEOUT=${BENCH_TIMEOUT:-2400} scripts/bench-pool.sh \
    "${BENCH_BIN:-target/release}/loadtest" --url http://127.0.0.1:18080 \
    growth --database "postgres://postgres@127.0.0.1:5432/$DB" \
    --sizes "${GROWTH_SIZES:-100000,1000000,10000000}" 2>&1 | tee "$OUT"
