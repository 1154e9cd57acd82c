#!/usr/bin/env bash
# `make test`: the whole suite. Formatting, lints, config validation, then
# every test against the real local PostgreSQL and Redis.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-services.sh

# Incremental artefacts only help repeated local builds; in a one-shot run
# they double the target directory. Say how much disk there is, because a
# full disk shows up as an obscure linker crash.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
df -h . | sed 's/^/disk: /'

# #[sqlx::test] creates one fresh database per test through this server.
export DATABASE_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> docs/openapi.json is what scripts/openapi.py makes"
fresh=$(mktemp)
python3 scripts/openapi.py "$fresh" >/dev/null
cmp -s "$fresh" docs/openapi.json || { rm -f "$fresh"; echo "docs/openapi.json is stale: run scripts/openapi.py" >&2; exit 1; }
rm -f "$fresh"
echo "==> haproxy -c"
HAPROXY_CERT=$(scripts/tls-cert.sh) haproxy -c -f haproxy.cfg
echo "==> docker-compose.yml"
python3 - <<'PY'
import yaml
doc = yaml.safe_load(open("docker-compose.yml"))
need = {"redis", "postgres", "meilisearch", "gateway1", "gateway2", "worker", "haproxy"}
missing = need - set(doc["services"])
assert not missing, f"docker-compose.yml lacks services: {missing}"
print("docker-compose.yml is valid YAML with services:", ", ".join(sorted(doc["services"])))
PY
echo "==> cargo test"
cargo test --workspace --locked
echo "==> REST API fuzzing (schemathesis against docs/openapi.json)"
scripts/api-fuzz.sh
