# Fechatter realtime. Quick start: `make run`, then `make test`.
.PHONY: run stop test build fmt lint

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
