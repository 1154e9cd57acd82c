#!/usr/bin/env bash
# `make bench-growth`: loadtest's `growth` scenario on the `make bench`
# pool (scripts/bench-pool.sh, fresh database fechatter_growth): one probe
# chat measured while filler chats grow `messages` and `chat_events` to
# each of GROWTH_SIZES rows (default 100000,1000000,10000000), then (unless
# GROWTH_ARCHIVE=0) the archival job moving the grown table's old messages,
# measured while it runs and after it. The
# scenario bounds itself (at most 20M rows, fixed sample counts); the pool
# is stopped after BENCH_TIMEOUT seconds (default here 3600). Progress and
# the report are also written to .run/bench/growth.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
DB=fechatter_growth
OUT=.run/bench/growth.txt
mkdir -p .run/bench
# Access tokens outlive the run (a 10M fill alone can take 10 minutes;
# the scenario's sessions connect with the tokens of their sign-up).
export ACCESS_TOKEN_TTL_SECS=${ACCESS_TOKEN_TTL_SECS:-7200}
BENCH_DB=$DB BENCH_TIMEOUT=${BENCH_TIMEOUT:-3600} scripts/bench-pool.sh \
    "${BENCH_BIN:-target/release}/loadtest" --url http://127.0.0.1:18080 \
    growth --database "postgres://postgres@127.0.0.1:5432/$DB" \
    --sizes "${GROWTH_SIZES:-100000,1000000,10000000}" \
    $([ "${GROWTH_ARCHIVE:-1}" = 0 ] || echo --archive) 2>&1 | tee "$OUT"
