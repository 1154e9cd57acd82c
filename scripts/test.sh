#!/usr/bin/env bash
# `make test`: the whole suite. Formatting, lints, config validation, then
# every test against the real local PostgreSQL and Redis.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-services.sh

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
import os, yaml
doc = yaml.safe_load(open("docker-compose.yml"))
need = {"redis", "postgres", "meilisearch", "gateway1", "gateway2", "worker", "haproxy",
        "prometheus", "grafana"}
missing = need - set(doc["services"])
assert not missing, f"docker-compose.yml lacks services: {missing}"
# Every file or directory a service mounts from the repository exists
# (prometheus.yml, alerts.yml, the Grafana provisioning and dashboards).
for name, service in doc["services"].items():
    for volume in service.get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith("./") and not source.startswith("./.data"):
            assert os.path.exists(source), f"{name} mounts {source}, which does not exist"
print("docker-compose.yml is valid YAML with services:", ", ".join(sorted(doc["services"])))
PY
echo "==> Prometheus rules and Grafana dashboards"
python3 - <<'PY'
import glob, json, yaml
for path in ["deploy/prometheus/prometheus.yml", "deploy/prometheus/alerts.yml",
             *glob.glob("deploy/grafana/provisioning/*/*.yml")]:
    yaml.safe_load(open(path))
dashboards = glob.glob("deploy/grafana/dashboards/*.json")
assert dashboards, "no Grafana dashboard"
for path in dashboards:
    doc = json.load(open(path))
    assert doc["uid"] and doc["panels"], f"{path}: no uid or panels"
print("valid:", ", ".join(dashboards))
PY
# gateway/tests/observability.rs checks every metric they name exists.
if command -v promtool >/dev/null; then
    promtool check rules deploy/prometheus/alerts.yml
    promtool test rules deploy/prometheus/alerts.test.yml
else
    echo "promtool not installed: alert rule syntax and deploy/prometheus/alerts.test.yml not checked"
fi
echo "==> cargo test"
cargo test --workspace --locked
echo "==> REST API fuzzing (schemathesis against docs/openapi.json)"
scripts/api-fuzz.sh
