# Fechatter realtime. Quick start: `make run`, then `make test`.
.PHONY: run stop test build fmt lint demo bench bench-scale bench-growth

run:
	scripts/run.sh

stop:
	scripts/stop.sh

test:
	scripts/test.sh

build:
	cargo build --workspace --release --locked

fmt:
	cargo fmt --all

lint:
	cargo clippy --workspace --all-targets --locked -- -D warnings

# Two scripted clients chatting through the pool started by `make run`.
# `make demo URL=https://127.0.0.1:8443` runs them over TLS (wss://),
# trusting the local CA of `make run`.
demo:
	cargo run --release --locked -q -p loadtest --bin chat-demo -- $(or $(URL),http://127.0.0.1:$${PORT:-8080}) $(if $(filter https://%,$(URL)),--ca-cert .data/tls/ca.pem)

# The standard load set on a dedicated local pool; writes BENCHMARKS.md.
# BENCH_SCALE=1 also runs bench-scale afterwards.
bench:
	scripts/bench.sh

# 200k idle connections over 12 gateways, half through 12 HAProxy
# processes (about 10 minutes); writes BENCHMARKS.md's "Connections at scale".
bench-scale:
	scripts/bench-scale.sh

# Send, sync-from-PostgreSQL and REST paging latency as the message table
# grows to 10M rows (GROWTH_SIZES, comma-separated; about 15 minutes at
# the default); prints the figures BENCHMARKS.md's "Database growth" cites.
bench-growth:
	scripts/bench-growth.sh
