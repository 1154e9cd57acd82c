//! Process configuration, read once from environment variables.
//!
//! Every variable has a default that works for the local pool started by
//! `make run`, so a developer never has to export anything; production sets
//! them explicitly. This is the single place where variables are named; the
//! README configuration table mirrors [`Config::VARIABLES`].
//! Secrets (the JWT secret, passwords inside URLs) never appear in `Debug`.

mod cidr;
mod mail;
mod push;
mod search;
mod validation;
mod variables;

use std::{fmt, net::SocketAddr, str::FromStr, time::Duration};

use anyhow::{Context, Result};

pub use cidr::Cidr;
pub use mail::{MailSettings, MailTransport, SignupMode};
pub use push::PushSettings;
pub use search::{SearchBackend, SearchSettings};

/// Default signing secret for local development only. A gateway refuses to
/// start with it (or any secret shorter than [`MIN_JWT_SECRET_BYTES`])
/// unless `DEV_MODE=1`.
pub const DEV_JWT_SECRET: &str = "fechatter-dev-secret-change-me";
/// Shortest accepted HS256 secret (RFC 7518 §3.2: at least the hash size).
pub const MIN_JWT_SECRET_BYTES: usize = 32;
/// Lowest accepted Argon2id memory cost (KiB) and iterations. Below this a
/// stolen hash is cheap to crack; load tests use exactly the floor.
pub const ARGON2_MIN_MEMORY_KIB: u32 = 1024;
/// Highest accepted Argon2id memory cost: every hashing thread keeps one
/// block buffer this large for the life of the process.
pub const ARGON2_MAX_MEMORY_KIB: u32 = 262_144;

#[derive(Clone)]
pub struct Config {
    /// Address the gateway (or the worker's metrics endpoint) listens on.
    pub bind_addr: SocketAddr,
    pub database_url: String,
    /// `DB_MAX_CONNECTIONS`: the pool size when set; otherwise the role's
    /// default ([`DbRole::default_pool_size`]), so gateways, which mostly
    /// need Redis, take fewer of PostgreSQL's connections than workers.
    pub db_max_connections: Option<u32>,
    /// How long a request waits for a pooled connection before it fails
    /// with 503 `unavailable` (a saturated pool never hangs a request).
    pub db_acquire_timeout: Duration,
    /// A URL that reaches PostgreSQL itself, not a transaction pooler:
    /// migrations and the search index build need one session throughout
    /// (session advisory locks, `CREATE INDEX CONCURRENTLY`).
    pub database_direct_url: Option<String>,
    pub redis_url: String,
    /// Prefix of every Redis key; lets tests and several deployments share
    /// one Redis without seeing each other's keys.
    pub redis_prefix: String,
    pub jwt_secret: String,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// Largest accepted REST request body.
    pub max_body_bytes: usize,
    /// Identifies this gateway or worker in logs, metrics and Redis.
    pub instance_id: String,
    /// `json` for machine-read logs, anything else for human-readable text.
    pub log_format: String,
    /// Number of ingest stream shards (chat id modulo this); gateways and
    /// workers must agree.
    pub ingest_shards: u32,
    /// Server ping interval on WebSocket connections.
    pub heartbeat_interval: Duration,
    /// Close a connection when nothing was received for this long.
    pub heartbeat_timeout: Duration,
    /// Close a connection when the client sent no frame (data or ping) for
    /// this long; replies to server pings do not count.
    pub idle_timeout: Duration,
    /// Most simultaneous connections of one user across the pool.
    pub max_connections_per_user: u32,
    /// Per-connection outbound queue length (frames).
    pub send_queue: usize,
    /// How long a gateway waits for connections to close on shutdown.
    pub drain_timeout: Duration,
    /// Worker: ingest entries per batch (one PostgreSQL transaction).
    pub batch_size: usize,
    /// Worker: ingest shard lease lifetime; a crashed worker's shards move
    /// to another worker after this long.
    pub lease_ttl: Duration,
    /// Argon2id memory cost (KiB) and iterations for new password hashes.
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    /// Threads that hash passwords (each holds one Argon2 memory buffer)
    /// and how many hash requests may wait for one before sign-ups and
    /// sign-ins are answered 503.
    pub argon2_threads: usize,
    pub argon2_queue: usize,
    /// Allows the development JWT secret and short secrets.
    pub dev_mode: bool,
    /// Peers whose `X-Forwarded-For` is believed (HAProxy); everyone else's
    /// address is the TCP peer address.
    pub trusted_proxies: Vec<Cidr>,
    /// Token-bucket limits of sign-up, sign-in and refresh, per client
    /// address and per account (requests per minute, also the burst).
    pub auth_ip_per_minute: u32,
    pub auth_account_per_minute: u32,
    /// Per-connection outbound queue bound in bytes (next to `send_queue`).
    pub send_queue_bytes: usize,
    /// Messages per second in one chat above which a gateway switches the
    /// chat to summary mode (seed 002 §7.4); 0 turns summary mode off.
    pub summary_mode_rate: u32,
    /// Shutdown: how long the liveness check fails before the listener
    /// closes, so the load balancer stops routing here first.
    pub drain_grace: Duration,
    /// Most entries an ingest stream shard holds; beyond it writes are
    /// answered `unavailable` instead of growing Redis without bound.
    pub ingest_max_len: u64,
    /// Writes are refused (`unavailable`, retry hint) while the oldest
    /// entry of their shard has waited longer than this: the bound on how
    /// long an accepted write waits for a worker. Zero: no limit.
    pub ingest_max_wait: Duration,
    /// Writes are refused (`unavailable`, retry hint) while the pool's
    /// fan-out lag (commit to socket write, the highest over the gateways
    /// in the last 250 ms) is above this. Zero: no limit.
    pub fanout_max_lag: Duration,
    /// A chat topic stream without a new event for this long expires.
    pub topic_idle_ttl: Duration,
    /// Sign-up admission: direct (tokens at once) or verified by e-mail.
    pub signup_mode: SignupMode,
    /// Base URL of the pool as users reach it, for links in e-mails.
    pub public_url: String,
    /// Development: serve the web client from this directory instead of
    /// the copy compiled into the gateway.
    pub web_dir: Option<std::path::PathBuf>,
    /// Worker: where the e-mail outbox is delivered.
    pub mail: MailSettings,
    /// A connection whose client sent nothing but pings for this long
    /// counts as idle (its user shows `away` unless another device is
    /// active).
    pub presence_away: Duration,
    /// A gateway that has not renewed its presence lease for this long is
    /// considered dead and its users' connections are swept.
    pub presence_node_ttl: Duration,
    /// Events of the replay log (`chat_events`) older than this are
    /// deleted by a worker (the messages stay); zero keeps them forever.
    pub event_retention: Duration,
    /// How long a `presence.subscribe` lasts unless renewed.
    pub presence_sub_ttl: Duration,
    /// Worker: push providers.
    pub push: PushSettings,
    /// Gateway: how long a REST write waits for its commit before it is
    /// answered 503 (the write may still commit; a retry is safe).
    pub write_timeout: Duration,
    /// Message search backend (PostgreSQL by default, or Meilisearch).
    pub search: SearchSettings,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("bind_addr", &self.bind_addr)
            .field("database_url", &redact_url(&self.database_url))
            .field("db_max_connections", &self.db_max_connections)
            .field("db_acquire_timeout", &self.db_acquire_timeout)
            .field(
                "database_direct_url",
                &self.database_direct_url.as_deref().map(redact_url),
            )
            .field("redis_url", &redact_url(&self.redis_url))
            .field("redis_prefix", &self.redis_prefix)
            .field("jwt_secret", &"<redacted>")
            .field("access_token_ttl", &self.access_token_ttl)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("instance_id", &self.instance_id)
            .field("log_format", &self.log_format)
            .field("ingest_shards", &self.ingest_shards)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("heartbeat_timeout", &self.heartbeat_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_connections_per_user", &self.max_connections_per_user)
            .field("send_queue", &self.send_queue)
            .field("drain_timeout", &self.drain_timeout)
            .field("batch_size", &self.batch_size)
            .field("lease_ttl", &self.lease_ttl)
            .field("argon2_memory_kib", &self.argon2_memory_kib)
            .field("argon2_iterations", &self.argon2_iterations)
            .field("argon2_threads", &self.argon2_threads)
            .field("argon2_queue", &self.argon2_queue)
            .field("dev_mode", &self.dev_mode)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("auth_ip_per_minute", &self.auth_ip_per_minute)
            .field("auth_account_per_minute", &self.auth_account_per_minute)
            .field("send_queue_bytes", &self.send_queue_bytes)
            .field("summary_mode_rate", &self.summary_mode_rate)
            .field("drain_grace", &self.drain_grace)
            .field("ingest_max_len", &self.ingest_max_len)
            .field("ingest_max_wait", &self.ingest_max_wait)
            .field("fanout_max_lag", &self.fanout_max_lag)
            .field("topic_idle_ttl", &self.topic_idle_ttl)
            .field("signup_mode", &self.signup_mode)
            .field("public_url", &self.public_url)
            .field("web_dir", &self.web_dir)
            .field("mail", &self.mail)
            .field("presence_away", &self.presence_away)
            .field("presence_node_ttl", &self.presence_node_ttl)
            .field("event_retention", &self.event_retention)
            .field("presence_sub_ttl", &self.presence_sub_ttl)
            .field("push", &self.push)
            .field("write_timeout", &self.write_timeout)
            .field("search", &self.search)
            .finish()
    }
}

/// Replaces the password part of `scheme://user:password@host` with `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((auth, host)) = rest.rsplit_once('@') else {
        return url.to_string();
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

/// Which kind of process opens a PostgreSQL pool: each has its own
/// default pool size, the terms of the connection budget in
/// docs/architecture.md ("PostgreSQL connection budget").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbRole {
    /// REST and WebSocket sessions: sign-up/sign-in, chat CRUD, membership
    /// loads at connect, sync and search reads. Short queries; everything
    /// per message goes through Redis.
    Gateway,
    /// Ingest batches (one transaction at a time per worker), push claims,
    /// the mailer, presence sweeps, notification evaluation.
    Worker,
}

impl DbRole {
    /// The pool size when `DB_MAX_CONNECTIONS` is not set.
    pub const fn default_pool_size(self) -> u32 {
        match self {
            Self::Gateway => 8,
            Self::Worker => 16,
        }
    }
}

impl Config {
    /// The PostgreSQL pool size of a process of `role`.
    pub fn db_pool_size(&self, role: DbRole) -> u32 {
        self.db_max_connections
            .unwrap_or_else(|| role.default_pool_size())
    }

    /// Where session-level work (migrations, the search index build) must
    /// connect: `DATABASE_DIRECT_URL`, or `DATABASE_URL` when PostgreSQL
    /// is reached without a transaction pooler.
    pub fn direct_database_url(&self) -> &str {
        self.database_direct_url
            .as_deref()
            .unwrap_or(&self.database_url)
    }

    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, so tests can supply values
    /// without touching the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| -> String {
            lookup(name)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default_of(name).to_string())
        };
        let instance_id = lookup("INSTANCE_ID")
            .filter(|v| !v.is_empty())
            .unwrap_or_else(default_instance_id);
        Self {
            bind_addr: parse("BIND_ADDR", &get("BIND_ADDR"))?,
            database_url: get("DATABASE_URL"),
            db_max_connections: match get("DB_MAX_CONNECTIONS").as_str() {
                "" => None,
                v => Some(parse("DB_MAX_CONNECTIONS", v)?),
            },
            db_acquire_timeout: millis("DB_ACQUIRE_TIMEOUT_MS", &get("DB_ACQUIRE_TIMEOUT_MS"))?,
            database_direct_url: Some(get("DATABASE_DIRECT_URL")).filter(|u| !u.is_empty()),
            redis_url: get("REDIS_URL"),
            redis_prefix: get("REDIS_PREFIX"),
            jwt_secret: get("JWT_SECRET"),
            access_token_ttl: Duration::from_secs(parse(
                "ACCESS_TOKEN_TTL_SECS",
                &get("ACCESS_TOKEN_TTL_SECS"),
            )?),
            refresh_token_ttl: Duration::from_secs(parse(
                "REFRESH_TOKEN_TTL_SECS",
                &get("REFRESH_TOKEN_TTL_SECS"),
            )?),
            max_body_bytes: parse("MAX_BODY_BYTES", &get("MAX_BODY_BYTES"))?,
            instance_id,
            log_format: get("LOG_FORMAT"),
            ingest_shards: parse("INGEST_SHARDS", &get("INGEST_SHARDS"))?,
            heartbeat_interval: millis("HEARTBEAT_INTERVAL_MS", &get("HEARTBEAT_INTERVAL_MS"))?,
            heartbeat_timeout: millis("HEARTBEAT_TIMEOUT_MS", &get("HEARTBEAT_TIMEOUT_MS"))?,
            idle_timeout: millis("IDLE_TIMEOUT_MS", &get("IDLE_TIMEOUT_MS"))?,
            max_connections_per_user: parse(
                "MAX_CONNECTIONS_PER_USER",
                &get("MAX_CONNECTIONS_PER_USER"),
            )?,
            send_queue: parse("SEND_QUEUE", &get("SEND_QUEUE"))?,
            drain_timeout: millis("DRAIN_TIMEOUT_MS", &get("DRAIN_TIMEOUT_MS"))?,
            batch_size: parse("BATCH_SIZE", &get("BATCH_SIZE"))?,
            lease_ttl: millis("LEASE_TTL_MS", &get("LEASE_TTL_MS"))?,
            argon2_memory_kib: parse("ARGON2_MEMORY_KIB", &get("ARGON2_MEMORY_KIB"))?,
            argon2_iterations: parse("ARGON2_ITERATIONS", &get("ARGON2_ITERATIONS"))?,
            argon2_threads: parse("ARGON2_THREADS", &get("ARGON2_THREADS"))?,
            argon2_queue: parse("ARGON2_QUEUE", &get("ARGON2_QUEUE"))?,
            dev_mode: matches!(get("DEV_MODE").as_str(), "1" | "true" | "yes"),
            trusted_proxies: get("TRUSTED_PROXIES")
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| {
                    s.parse()
                        .context("environment variable TRUSTED_PROXIES is invalid")
                })
                .collect::<Result<_>>()?,
            auth_ip_per_minute: parse("AUTH_IP_PER_MINUTE", &get("AUTH_IP_PER_MINUTE"))?,
            auth_account_per_minute: parse(
                "AUTH_ACCOUNT_PER_MINUTE",
                &get("AUTH_ACCOUNT_PER_MINUTE"),
            )?,
            send_queue_bytes: parse("SEND_QUEUE_BYTES", &get("SEND_QUEUE_BYTES"))?,
            summary_mode_rate: parse("SUMMARY_MODE_RATE", &get("SUMMARY_MODE_RATE"))?,
            drain_grace: millis("DRAIN_GRACE_MS", &get("DRAIN_GRACE_MS"))?,
            ingest_max_len: parse("INGEST_MAX_LEN", &get("INGEST_MAX_LEN"))?,
            ingest_max_wait: millis("INGEST_MAX_WAIT_MS", &get("INGEST_MAX_WAIT_MS"))?,
            fanout_max_lag: millis("FANOUT_MAX_LAG_MS", &get("FANOUT_MAX_LAG_MS"))?,
            topic_idle_ttl: Duration::from_secs(parse(
                "TOPIC_IDLE_TTL_SECS",
                &get("TOPIC_IDLE_TTL_SECS"),
            )?),
            signup_mode: get("SIGNUP_MODE").parse()?,
            public_url: get("PUBLIC_URL").trim_end_matches('/').to_string(),
            web_dir: Some(get("WEB_DIR"))
                .filter(|d| !d.trim().is_empty())
                .map(std::path::PathBuf::from),
            mail: MailSettings::from_values(
                &get("MAIL_TRANSPORT"),
                &get("MAIL_DIR"),
                &get("MAIL_API_URL"),
                get("MAIL_API_TOKEN"),
                get("MAIL_FROM"),
            )?,
            presence_away: millis("PRESENCE_AWAY_MS", &get("PRESENCE_AWAY_MS"))?,
            presence_node_ttl: millis("PRESENCE_NODE_TTL_MS", &get("PRESENCE_NODE_TTL_MS"))?,
            event_retention: Duration::from_secs(
                86_400 * parse::<u64>("EVENT_RETENTION_DAYS", &get("EVENT_RETENTION_DAYS"))?,
            ),
            presence_sub_ttl: millis("PRESENCE_SUB_TTL_MS", &get("PRESENCE_SUB_TTL_MS"))?,
            push: PushSettings {
                fcm_endpoint: get("PUSH_FCM_ENDPOINT"),
                fcm_credentials: get("PUSH_FCM_CREDENTIALS"),
                apns_endpoint: get("PUSH_APNS_ENDPOINT"),
                apns_key: get("PUSH_APNS_KEY"),
                apns_key_id: get("PUSH_APNS_KEY_ID"),
                apns_team_id: get("PUSH_APNS_TEAM_ID"),
                apns_topic: get("PUSH_APNS_TOPIC"),
                vapid_private_key: get("PUSH_VAPID_PRIVATE_KEY"),
                vapid_subject: get("PUSH_VAPID_SUBJECT"),
                webhook_secret: get("PUSH_WEBHOOK_SECRET"),
                webhook_allow_http: matches!(
                    get("PUSH_WEBHOOK_ALLOW_HTTP").as_str(),
                    "1" | "true" | "yes"
                ),
            },
            write_timeout: millis("WRITE_TIMEOUT_MS", &get("WRITE_TIMEOUT_MS"))?,
            search: SearchSettings::from_values(
                &get("SEARCH_BACKEND"),
                &get("MEILI_URL"),
                get("MEILI_KEY"),
                &get("MEILI_INDEX"),
            )?,
        }
        .validated()
    }

    /// A configuration for tests: local services, a unique Redis prefix.
    pub fn for_tests(database_url: &str) -> Self {
        let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
        let mut config = Self::from_lookup(|_| None).expect("defaults are valid");
        config.bind_addr = ([127, 0, 0, 1], 0).into();
        config.database_url = database_url.to_string();
        // Tests run through PgBouncer (scripts/test.sh) reach PostgreSQL
        // itself for migrations: the same database on that server.
        config.database_direct_url = std::env::var("DATABASE_DIRECT_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .map(
                |server| match (server.rsplit_once('/'), database_url.rsplit_once('/')) {
                    (Some((server, _)), Some((_, db))) => format!("{server}/{db}"),
                    _ => server,
                },
            );
        config.db_max_connections = Some(5);
        config.redis_url =
            std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        config.redis_prefix = prefix;
        config.jwt_secret = format!("test-secret-{}", uuid::Uuid::new_v4().simple());
        config.lease_ttl = Duration::from_secs(2);
        config.drain_timeout = Duration::from_secs(2);
        config.drain_grace = Duration::ZERO;
        // Tests sign up many users from one address; the rate-limit tests
        // set these low themselves.
        config.auth_ip_per_minute = 100_000;
        config.auth_account_per_minute = 100_000;
        config.argon2_memory_kib = ARGON2_MIN_MEMORY_KIB;
        config.argon2_iterations = 1;
        // Most tests sign up directly; the verified flow's tests switch.
        config.signup_mode = SignupMode::Direct;
        // A loaded test machine must not turn a slow batch into refused
        // writes; the back-pressure test sets its own.
        config.ingest_max_wait = Duration::from_secs(30);
        config.fanout_max_lag = Duration::ZERO;
        // Retention runs in its own tests, not at every worker start.
        config.event_retention = Duration::ZERO;
        config
    }
}

fn default_of(name: &str) -> &'static str {
    Config::VARIABLES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, d, _)| *d)
        .unwrap_or("")
}

fn default_instance_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "local".into());
    format!("{host}-{}", std::process::id())
}

fn millis(name: &str, value: &str) -> Result<Duration> {
    Ok(Duration::from_millis(parse(name, value)?))
}

fn parse<T: FromStr>(name: &str, value: &str) -> Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    value
        .parse()
        .with_context(|| format!("environment variable {name}={value:?} is invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_overrides_apply() {
        let config = Config::from_lookup(|name| match name {
            "BIND_ADDR" => Some("127.0.0.1:9999".into()),
            "MAX_BODY_BYTES" => Some("4242".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(config.bind_addr.port(), 9999);
        assert_eq!(config.max_body_bytes, 4242);
        assert_eq!(config.access_token_ttl, Duration::from_secs(900));
        assert!(config.uses_dev_secret());
        assert!(
            config.check_jwt_secret().is_err(),
            "the default secret is refused"
        );
    }

    #[test]
    fn invalid_value_names_the_variable() {
        let err = Config::from_lookup(|name| (name == "DB_MAX_CONNECTIONS").then(|| "many".into()))
            .unwrap_err();
        assert!(format!("{err:#}").contains("DB_MAX_CONNECTIONS"));
    }

    #[test]
    fn pool_sizes_default_by_role_and_direct_url_falls_back() {
        let defaults = Config::from_lookup(|_| None).unwrap();
        assert_eq!(defaults.db_pool_size(DbRole::Gateway), 8);
        assert_eq!(defaults.db_pool_size(DbRole::Worker), 16);
        assert_eq!(defaults.db_acquire_timeout, Duration::from_secs(5));
        assert_eq!(defaults.direct_database_url(), defaults.database_url);
        let set = Config::from_lookup(|name| match name {
            "DB_MAX_CONNECTIONS" => Some("3".into()),
            "DATABASE_URL" => Some("postgres://app:pw@pgbouncer:6432/x".into()),
            "DATABASE_DIRECT_URL" => Some("postgres://app:pw@db:5432/x".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(set.db_pool_size(DbRole::Gateway), 3);
        assert_eq!(set.db_pool_size(DbRole::Worker), 3);
        assert_eq!(set.direct_database_url(), "postgres://app:pw@db:5432/x");
        assert!(
            !format!("{set:?}").contains(":pw@"),
            "passwords are redacted"
        );
    }

    #[test]
    fn debug_output_hides_secrets() {
        let config = Config::from_lookup(|name| match name {
            "JWT_SECRET" => Some("super-secret-value".into()),
            "DATABASE_URL" => Some("postgres://app:hunter2@db:5432/x".into()),
            _ => None,
        })
        .unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("super-secret-value"));
        assert!(!shown.contains("hunter2"));
        assert!(shown.contains("postgres://app:***@db:5432/x"));
    }
}

#[cfg(test)]
mod docs_tests {
    /// The README's configuration table is the operator's reference: every
    /// variable read here must be documented there.
    #[test]
    fn readme_documents_every_variable() {
        let readme = include_str!("../../../README.md");
        for (name, default, _) in super::Config::VARIABLES {
            let row = if default.is_empty() {
                format!("| `{name}` | (none) |")
            } else {
                format!("| `{name}` | `{default}` |")
            };
            assert!(readme.contains(&row), "README.md lacks the row {row}");
        }
    }
}
