#!/usr/bin/env bash
# `make stop`: stops what `make run` started (not Redis/PostgreSQL): the
# processes whose pid files are in this clone's .run/ (worker, gateways,
# HAProxy), PgBouncer when `PGBOUNCER=1 make run` started it and the
# Redis Cluster when `REDIS_CLUSTER=1 make run` did.
set -uo pipefail
cd "$(dirname "$0")/.."
for pidfile in .run/*.pid; do
    [ -e "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" && echo "stopped $(basename "$pidfile" .pid) ($pid)"
    fi
    rm -f "$pidfile"
done
scripts/pgbouncer.sh stop .run/pgbouncer
scripts/redis-cluster.sh stop .run/redis-cluster
