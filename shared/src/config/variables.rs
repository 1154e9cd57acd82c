//! The table of every environment variable: name, default, meaning. The
//! single source for defaults ([`Config::from_lookup`]) and for the README
//! configuration table (checked by a test).

use super::{Config, DEV_JWT_SECRET};

impl Config {
    /// `(name, default, meaning)` of every variable, for docs and `--help`.
    pub const VARIABLES: &'static [(&'static str, &'static str, &'static str)] = &[
        (
            "BIND_ADDR",
            "0.0.0.0:8080",
            "listen address of the gateway (worker: its /metrics endpoint)",
        ),
        (
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/fechatter",
            "PostgreSQL connection URL",
        ),
        (
            "DB_MAX_CONNECTIONS",
            "",
            "PostgreSQL pool size of this process; none: 8 for a gateway, 16 for a worker (the connection budget in docs/architecture.md)",
        ),
        (
            "DB_ACQUIRE_TIMEOUT_MS",
            "5000",
            "longest wait for a pooled PostgreSQL connection; then the request answers 503 `unavailable`",
        ),
        (
            "DATABASE_DIRECT_URL",
            "",
            "PostgreSQL URL bypassing any pooler (PgBouncer), for the session-level work of `worker migrate`/`run`: migrations and the search index build; none: `DATABASE_URL`",
        ),
        (
            "REDIS_URL",
            "redis://127.0.0.1:6379",
            "Redis connection URL: one node (`redis://host:port`) or a Redis Cluster \
             (`redis-cluster://host:port?node=host:port&node=host:port`)",
        ),
        ("REDIS_PREFIX", "fc", "prefix of every Redis key"),
        (
            "JWT_SECRET",
            DEV_JWT_SECRET,
            "HS256 secret for access tokens, at least 32 bytes; the default is refused unless `DEV_MODE=1`",
        ),
        ("ACCESS_TOKEN_TTL_SECS", "900", "access token lifetime"),
        ("REFRESH_TOKEN_TTL_SECS", "604800", "refresh token lifetime"),
        (
            "MAX_BODY_BYTES",
            "1048576",
            "largest accepted REST request body",
        ),
        (
            "INSTANCE_ID",
            "<hostname>-<pid>",
            "name of this process in logs, metrics and Redis",
        ),
        ("LOG_FORMAT", "text", "`json` or `text`"),
        (
            "RUST_LOG",
            "info",
            "tracing filter, e.g. `info,gateway=debug`",
        ),
        (
            "INGEST_SHARDS",
            "8",
            "ingest stream shards; gateways and workers must agree",
        ),
        (
            "HEARTBEAT_INTERVAL_MS",
            "30000",
            "server WebSocket ping interval",
        ),
        (
            "HEARTBEAT_TIMEOUT_MS",
            "90000",
            "close a connection silent for this long",
        ),
        (
            "IDLE_TIMEOUT_MS",
            "300000",
            "close a connection whose client sent nothing for this long",
        ),
        (
            "MAX_CONNECTIONS_PER_USER",
            "5",
            "connections per user across the pool; the oldest is closed",
        ),
        (
            "SEND_QUEUE",
            "1000",
            "outbound frames queued per connection before backpressure",
        ),
        (
            "SUMMARY_MODE_RATE",
            "100",
            "messages per second in one chat above which a gateway sends the chat's unfocused connections `chat.summary` frames instead of every event (0: never)",
        ),
        (
            "DRAIN_TIMEOUT_MS",
            "10000",
            "gateway shutdown: wait this long for connections to close",
        ),
        (
            "BATCH_SIZE",
            "256",
            "worker: ingest entries per PostgreSQL transaction",
        ),
        (
            "LEASE_TTL_MS",
            "3000",
            "worker: ingest shard lease lifetime",
        ),
        (
            "ARGON2_MEMORY_KIB",
            "19456",
            "Argon2id memory cost of new password hashes",
        ),
        (
            "ARGON2_ITERATIONS",
            "2",
            "Argon2id iterations of new password hashes (1 to 16)",
        ),
        (
            "ARGON2_THREADS",
            "2",
            "password hashing threads, each with one reused Argon2 memory buffer",
        ),
        (
            "ARGON2_QUEUE",
            "64",
            "hash requests that may wait for a hashing thread; beyond it 503 + Retry-After",
        ),
        (
            "DEV_MODE",
            "0",
            "`1` allows the default or a short `JWT_SECRET` (local development only)",
        ),
        (
            "TRUSTED_PROXIES",
            "127.0.0.1/32,::1/128",
            "comma-separated peers whose `X-Forwarded-For` is believed",
        ),
        (
            "AUTH_IP_PER_MINUTE",
            "30",
            "sign-up/sign-in/refresh requests per client address per minute (also the burst)",
        ),
        (
            "AUTH_ACCOUNT_PER_MINUTE",
            "10",
            "sign-in/refresh attempts per account (email or session) per minute",
        ),
        (
            "SEND_QUEUE_BYTES",
            "4194304",
            "outbound bytes queued per connection before backpressure",
        ),
        (
            "DRAIN_GRACE_MS",
            "5000",
            "gateway shutdown: liveness check fails this long before the listener closes",
        ),
        (
            "INGEST_MAX_LEN",
            "100000",
            "entries an ingest shard may hold; beyond it writes answer `unavailable`",
        ),
        (
            "INGEST_MAX_WAIT_MS",
            "1000",
            "writes answer `unavailable` (retryAfterMs) while their shard's oldest entry has waited longer than this (workers behind); 0: no limit",
        ),
        (
            "FANOUT_MAX_LAG_MS",
            "250",
            "writes answer `unavailable` (retryAfterMs) while the pool delivers committed events later than this after their commit (fan-out behind); 0: no limit",
        ),
        (
            "TOPIC_IDLE_TTL_SECS",
            "604800",
            "a chat topic stream with no new event for this long expires (PostgreSQL keeps all)",
        ),
        (
            "SIGNUP_MODE",
            "verified",
            "`verified`: sign-up answers 202 and mails a link that creates the account (needed to join by e-mail domain; does not reveal which e-mails exist); `direct`: tokens at once, 409 for a taken e-mail (development)",
        ),
        (
            "WEB_DIR",
            "",
            "serve the web client from this directory, read on every request (development: `npm run build` in web/ shows without rebuilding the gateway); none: the copy of web/dist compiled into the gateway",
        ),
        (
            "PUBLIC_URL",
            "http://127.0.0.1:8080",
            "base URL users reach the pool at, for links in e-mails",
        ),
        (
            "MAIL_TRANSPORT",
            "file",
            "worker: `file` (one .eml per mail in `MAIL_DIR`) or `http` (POST JSON to `MAIL_API_URL`)",
        ),
        ("MAIL_DIR", "mail", "worker: directory of the `file` transport"),
        (
            "MAIL_API_URL",
            "",
            "worker: HTTP mail API endpoint of the `http` transport",
        ),
        (
            "MAIL_API_TOKEN",
            "",
            "worker: bearer token of the `http` transport (secret, never logged)",
        ),
        (
            "PRESENCE_AWAY_MS",
            "300000",
            "a connection whose client sent nothing but pings for this long is idle (`away`)",
        ),
        (
            "PRESENCE_NODE_TTL_MS",
            "30000",
            "a gateway that stopped renewing its presence lease this long ago is swept: its users go offline",
        ),
        (
            "EVENT_RETENTION_DAYS",
            "90",
            "worker: events of the replay log (`chat_events`) older than this many days are deleted, in small batches once an hour (messages are kept); a sync from before the oldest kept event answers `tooLarge`; 0: keep forever",
        ),
        (
            "PRESENCE_SUB_TTL_MS",
            "600000",
            "a `presence.subscribe` lapses after this long unless renewed",
        ),
        (
            "PUSH_FCM_ENDPOINT",
            "https://fcm.googleapis.com",
            "worker: FCM HTTP v1 base URL",
        ),
        (
            "PUSH_FCM_CREDENTIALS",
            "",
            "worker: Google service account JSON file for FCM (none: FCM deliveries fail as not configured)",
        ),
        (
            "PUSH_APNS_ENDPOINT",
            "https://api.push.apple.com",
            "worker: APNs base URL (HTTP/2)",
        ),
        (
            "PUSH_APNS_KEY",
            "",
            "worker: APNs `.p8` token-signing key file (none: APNs deliveries fail as not configured)",
        ),
        (
            "PUSH_APNS_KEY_ID",
            "",
            "worker: the APNs key's id (`kid`)",
        ),
        (
            "PUSH_APNS_TEAM_ID",
            "",
            "worker: the Apple team id (`iss`)",
        ),
        (
            "PUSH_APNS_TOPIC",
            "",
            "worker: the app's bundle id (`apns-topic`)",
        ),
        (
            "PUSH_VAPID_PRIVATE_KEY",
            "",
            "worker: PKCS#8 PEM file of the VAPID P-256 key for Web Push (none: Web Push deliveries fail as not configured)",
        ),
        (
            "PUSH_VAPID_SUBJECT",
            "mailto:ops@fechatter.local",
            "worker: VAPID contact (`sub`)",
        ),
        (
            "PUSH_WEBHOOK_SECRET",
            "",
            "worker: HMAC-SHA256 secret of webhook signatures (secret; none: webhook deliveries fail as not configured)",
        ),
        (
            "PUSH_WEBHOOK_ALLOW_HTTP",
            "0",
            "`1` accepts `http://` and local/private hosts as webhook and Web Push URLs (local setups and tests; otherwise `https://` public hosts only)",
        ),
        (
            "WRITE_TIMEOUT_MS",
            "10000",
            "gateway: how long `POST /api/chat/{id}/messages` waits for the commit before answering 503 with Retry-After (a retry with the same `clientId` is safe)",
        ),
        (
            "SEARCH_BACKEND",
            "postgres",
            "`postgres` (full-text search in PostgreSQL, nothing to install) or `meilisearch` (needs `MEILI_URL`; the worker indexes committed messages)",
        ),
        (
            "MEILI_URL",
            "",
            "Meilisearch base URL, e.g. `http://127.0.0.1:7700` (only with `SEARCH_BACKEND=meilisearch`)",
        ),
        (
            "MEILI_KEY",
            "",
            "Meilisearch API key (secret; none for an unprotected development server)",
        ),
        (
            "MEILI_INDEX",
            "messages",
            "name of the Meilisearch index of messages",
        ),
        (
            "MAIL_FROM",
            "Fechatter <no-reply@fechatter.local>",
            "sender of every e-mail",
        ),
    ];
}
