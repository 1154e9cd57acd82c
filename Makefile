# Fechatter realtime. Quick start: `make run`, then `make test`.
.PHONY: run stop test build fmt lint demo bench

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
demo:
	cargo run --release --locked -q -p loadtest --bin chat-demo -- http://127.0.0.1:$${PORT:-8080}

# The standard load set on a dedicated local pool; writes BENCHMARKS.md.
bench:
	scripts/bench.sh
