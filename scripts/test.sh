#!/usr/bin/env bash
# `make test`: the whole suite. Formatting, lints, config validation, then
# every test against the real local PostgreSQL and Redis. The gateway and
# worker crates' tests (every integration test of the pool: REST,
# WebSocket, HAProxy, workers, recovery) run through PgBouncer in
# transaction pooling mode (scripts/pgbouncer.sh), the deployment the
# connection budget is written for; the rest (shared, loadtest) straight
# against PostgreSQL. TEST_PGBOUNCER=0 runs them all straight instead.
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
# The web client (web/): types, unit tests, and the checked-in dist/ the
# gateway compiles in. Its browser tests (Chromium through HAProxy against
# gateway processes) are gateway/tests/web_client.rs, in `cargo test`
# below; a failed scenario leaves screenshots and console logs here.
echo "==> web client: typecheck, unit tests, web/dist up to date"
(cd web && npm run --silent typecheck && npm test --silent && node build.mjs --check)
export FECHATTER_ARTIFACTS=${FECHATTER_ARTIFACTS:-$(pwd)/target/web-e2e}
rm -rf "$FECHATTER_ARTIFACTS"
echo "browser tests (gateway/tests/web_client.rs): screenshots and console logs of failed scenarios go to $FECHATTER_ARTIFACTS"
echo "==> docs/openapi.json is what scripts/openapi.py makes"
fresh=$(mktemp)
python3 scripts/openapi.py "$fresh" >/dev/null
cmp -s "$fresh" docs/openapi.json || { rm -f "$fresh"; echo "docs/openapi.json is stale: run scripts/openapi.py" >&2; exit 1; }
rm -f "$fresh"
echo "==> haproxy -c (static gateways, and DNS discovery as in docker-compose)"
HAPROXY_CERT=$(scripts/tls-cert.sh) haproxy -c -f haproxy.cfg
GATEWAY_SERVICE=gateway:8080 HAPROXY_CERT=$(scripts/tls-cert.sh) haproxy -c -f haproxy.cfg
echo "==> docker-compose.yml"
python3 - <<'PY'
import os, yaml
doc = yaml.safe_load(open("docker-compose.yml"))
need = {"redis", "postgres", "pgbouncer", "meilisearch", "gateway", "worker", "haproxy",
        "prometheus", "grafana"}
missing = need - set(doc["services"])
assert not missing, f"docker-compose.yml lacks services: {missing}"
# One scalable gateway service (`--scale gateway=N`), found by HAProxy
# through DNS: no numbered copies, no published ports, no fixed names.
services = doc["services"]
assert not {"gateway1", "gateway2"} & set(services), "gateways are one scalable service"
gateway = services["gateway"]
assert "ports" not in gateway and "container_name" not in gateway, "gateway must be scalable"
assert services["haproxy"]["environment"].get("GATEWAY_SERVICE") == "gateway:8080"
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
# PgBouncer >= 1.21 may have to be built from Debian 13's source package
# (scripts/pgbouncer.sh). Should that be impossible here (no source
# mirror), say so loudly and run every test straight to PostgreSQL rather
# than fail the suite on an installation problem.
if [ "${TEST_PGBOUNCER:-1}" = 1 ] && ! scripts/pgbouncer.sh install >/dev/null; then
    echo "WARNING: no PgBouncer >= 1.21 could be installed: the gateway and worker tests run straight to PostgreSQL, NOT through PgBouncer" >&2
    TEST_PGBOUNCER=0
fi
# The gateway and worker tests mostly wait (on gateways, workers, HAProxy,
# a browser, timers), so they run four at a time across test binaries with
# cargo-nextest (one process per test), which every machine of this kind
# has; plain `cargo test` (one binary after another, two tests at a time
# on two cores) took about three times as long. Without nextest the
# suite still runs, only slower.
if cargo nextest --version >/dev/null 2>&1; then
    pool_tests=(cargo nextest run --locked --test-threads "${TEST_THREADS:-4}" --no-fail-fast)
else
    echo "WARNING: cargo-nextest not installed: the gateway and worker tests run with cargo test (slower)" >&2
    pool_tests=(cargo test --locked)
fi
if [ "${TEST_PGBOUNCER:-1}" = 1 ]; then
    echo "==> cargo test (shared, loadtest: straight to PostgreSQL)"
    cargo test --workspace --locked --exclude gateway --exclude worker
    echo "==> ${pool_tests[*]:0:2} -p gateway -p worker through PgBouncer (transaction pooling)"
    PGB_DIR="$(pwd)/.run/test-pgbouncer"
    PGB_PORT=${TEST_PGBOUNCER_PORT:-16432}
    # Fewer server connections per test database (5) than its clients
    # (a test's pool, gateway and worker processes): statements of
    # different clients really share server connections. Idle server
    # connections close after 1 s, so that dropping a test's database at
    # its end does not wait (PostgreSQL waits up to 5 s for them).
    PGBOUNCER_POOL_SIZE=5 PGBOUNCER_SERVER_IDLE_TIMEOUT=1 scripts/pgbouncer.sh start "$PGB_DIR" "$PGB_PORT"
    since=$(psql "$DATABASE_URL" -Atc "select now()")
    trap 'scripts/pgbouncer.sh stop "$PGB_DIR"' EXIT
    # #[sqlx::test] creates each test database through PgBouncer (its
    # `*` entry passes every name through); migrations of workers started
    # by tests go straight to PostgreSQL (Config::for_tests).
    DATABASE_DIRECT_URL=$DATABASE_URL \
        DATABASE_URL=$(echo "$DATABASE_URL" | sed -E "s#^(postgres(ql)?://([^@/]*@)?)[^/]+/#\\1127.0.0.1:$PGB_PORT/#") \
        "${pool_tests[@]}" -p gateway -p worker
    scripts/pgbouncer.sh stop "$PGB_DIR"
    trap - EXIT
    # sqlx drops each test database right after its test, while PgBouncer
    # still holds idle server connections to it, so the drop fails
    # (quietly: only a failed test shows it). With PgBouncer stopped they
    # go now (those created by this run).
    for db in $(psql "$DATABASE_URL" -Atc "select db_name from _sqlx_test.databases where created_at >= '$since'" 2>/dev/null); do
        PGOPTIONS="-c client_min_messages=warning" psql "$DATABASE_URL" -qc "drop database if exists \"$db\"" &&
            psql "$DATABASE_URL" -qc "delete from _sqlx_test.databases where db_name = '$db'"
    done
else
    echo "==> cargo test"
    cargo test --workspace --locked
fi
# The message path once more on a Redis Cluster (three masters started
# here on free-standing ports): send, fan-out across gateways, edits,
# sync, typing, receipts, badges, rate limits, leases and worker
# take-overs, and every Lua script, with REDIS_URL naming the cluster.
# gateway/tests/redis_cluster.rs (in the run above) starts its own.
echo "==> the message path against a three-master Redis Cluster"
CLUSTER_DIR="$(pwd)/.run/test-redis-cluster"
CLUSTER_URL=$(scripts/redis-cluster.sh start "$CLUSTER_DIR" "${TEST_REDIS_CLUSTER_PORT:-17100}")
trap 'scripts/redis-cluster.sh stop "$CLUSTER_DIR"' EXIT
REDIS_URL=$CLUSTER_URL cargo test --locked -p fechatter-shared --test lua_scripts --test presence_script
REDIS_URL=$CLUSTER_URL cargo test --locked -p gateway --test ws_messages --test ws_state \
    --test ws_recovery --test user_streams
scripts/redis-cluster.sh stop "$CLUSTER_DIR"
trap - EXIT
echo "==> REST API fuzzing (schemathesis against docs/openapi.json)"
scripts/api-fuzz.sh
