//! Process configuration, read once from environment variables.
//!
//! Every variable has a default that works for the local pool started by
//! `make run`, so a developer never has to export anything; production sets
//! them explicitly. This is the single place where variables are named; the
//! README configuration table mirrors [`Config::VARIABLES`].
//! Secrets (the JWT secret, passwords inside URLs) never appear in `Debug`.

use std::{fmt, net::SocketAddr, str::FromStr, time::Duration};

use anyhow::{Context, Result};

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
    pub db_max_connections: u32,
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
    /// Shutdown: how long the liveness check fails before the listener
    /// closes, so the load balancer stops routing here first.
    pub drain_grace: Duration,
    /// Most entries an ingest stream shard holds; beyond it writes are
    /// answered `unavailable` instead of growing Redis without bound.
    pub ingest_max_len: u64,
    /// A chat topic stream without a new event for this long expires.
    pub topic_idle_ttl: Duration,
}

/// An address range (`10.0.0.0/8`, `::1/128`, or a bare address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: std::net::IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        let ip = match ip {
            V6(v6) => v6.to_ipv4_mapped().map(V4).unwrap_or(V6(v6)),
            v4 => v4,
        };
        match (self.addr, ip) {
            (V4(net), V4(ip)) => prefix_match(&net.octets(), &ip.octets(), self.prefix),
            (V6(net), V6(ip)) => prefix_match(&net.octets(), &ip.octets(), self.prefix),
            _ => false,
        }
    }
}

fn prefix_match(net: &[u8], ip: &[u8], prefix: u8) -> bool {
    let bits = prefix as usize;
    let (whole, rest) = (bits / 8, bits % 8);
    if net[..whole] != ip[..whole] {
        return false;
    }
    rest == 0 || (net[whole] ^ ip[whole]) >> (8 - rest) == 0
}

impl FromStr for Cidr {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: std::net::IpAddr = addr
            .parse()
            .with_context(|| format!("{s:?} is not an address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .with_context(|| format!("{s:?} has an invalid prefix length"))?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("bind_addr", &self.bind_addr)
            .field("database_url", &redact_url(&self.database_url))
            .field("db_max_connections", &self.db_max_connections)
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
            .field("drain_grace", &self.drain_grace)
            .field("ingest_max_len", &self.ingest_max_len)
            .field("topic_idle_ttl", &self.topic_idle_ttl)
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
            "20",
            "PostgreSQL pool size per process",
        ),
        (
            "REDIS_URL",
            "redis://127.0.0.1:6379",
            "Redis connection URL",
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
            "15000",
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
            "TOPIC_IDLE_TTL_SECS",
            "604800",
            "a chat topic stream with no new event for this long expires (PostgreSQL keeps all)",
        ),
    ];

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
            db_max_connections: parse("DB_MAX_CONNECTIONS", &get("DB_MAX_CONNECTIONS"))?,
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
            drain_grace: millis("DRAIN_GRACE_MS", &get("DRAIN_GRACE_MS"))?,
            ingest_max_len: parse("INGEST_MAX_LEN", &get("INGEST_MAX_LEN"))?,
            topic_idle_ttl: Duration::from_secs(parse(
                "TOPIC_IDLE_TTL_SECS",
                &get("TOPIC_IDLE_TTL_SECS"),
            )?),
        }
        .validated()
    }

    /// A configuration for tests: local services, a unique Redis prefix.
    pub fn for_tests(database_url: &str) -> Self {
        let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
        let mut config = Self::from_lookup(|_| None).expect("defaults are valid");
        config.bind_addr = ([127, 0, 0, 1], 0).into();
        config.database_url = database_url.to_string();
        config.db_max_connections = 5;
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
        config
    }

    /// Rejects zero and absurd values with a message naming the variable.
    fn validated(self) -> Result<Self> {
        use anyhow::ensure;
        let secs = |d: Duration| d.as_secs_f64();
        ensure!(
            (1..=1024).contains(&self.ingest_shards),
            "INGEST_SHARDS must be 1 to 1024"
        );
        ensure!(self.send_queue >= 8, "SEND_QUEUE must be at least 8");
        ensure!(
            self.send_queue_bytes >= 128 * 1024,
            "SEND_QUEUE_BYTES must be at least 131072 (two of the largest frames)"
        );
        ensure!(
            (1..=10_000).contains(&self.batch_size),
            "BATCH_SIZE must be 1 to 10000"
        );
        ensure!(
            (1..=1000).contains(&self.db_max_connections),
            "DB_MAX_CONNECTIONS must be 1 to 1000"
        );
        ensure!(
            (1..=1000).contains(&self.max_connections_per_user),
            "MAX_CONNECTIONS_PER_USER must be 1 to 1000"
        );
        ensure!(
            secs(self.heartbeat_interval) >= 1.0,
            "HEARTBEAT_INTERVAL_MS must be at least 1000"
        );
        ensure!(
            self.heartbeat_timeout > self.heartbeat_interval,
            "HEARTBEAT_TIMEOUT_MS must exceed HEARTBEAT_INTERVAL_MS"
        );
        ensure!(
            secs(self.idle_timeout) >= 1.0,
            "IDLE_TIMEOUT_MS must be at least 1000"
        );
        ensure!(
            (0.5..=600.0).contains(&secs(self.lease_ttl)),
            "LEASE_TTL_MS must be 500 to 600000"
        );
        ensure!(
            (60.0..=86_400.0).contains(&secs(self.access_token_ttl)),
            "ACCESS_TOKEN_TTL_SECS must be 60 to 86400"
        );
        ensure!(
            self.refresh_token_ttl >= self.access_token_ttl,
            "REFRESH_TOKEN_TTL_SECS must be at least ACCESS_TOKEN_TTL_SECS"
        );
        ensure!(
            self.max_body_bytes >= 1024,
            "MAX_BODY_BYTES must be at least 1024"
        );
        ensure!(
            (ARGON2_MIN_MEMORY_KIB..=ARGON2_MAX_MEMORY_KIB).contains(&self.argon2_memory_kib),
            "ARGON2_MEMORY_KIB must be {ARGON2_MIN_MEMORY_KIB} to {ARGON2_MAX_MEMORY_KIB}"
        );
        ensure!(
            (1..=16).contains(&self.argon2_iterations),
            "ARGON2_ITERATIONS must be 1 to 16"
        );
        ensure!(
            (1..=64).contains(&self.argon2_threads),
            "ARGON2_THREADS must be 1 to 64"
        );
        ensure!(
            self.argon2_queue <= 100_000,
            "ARGON2_QUEUE must be at most 100000"
        );
        ensure!(
            self.auth_ip_per_minute >= 1,
            "AUTH_IP_PER_MINUTE must be at least 1"
        );
        ensure!(
            self.auth_account_per_minute >= 1,
            "AUTH_ACCOUNT_PER_MINUTE must be at least 1"
        );
        ensure!(
            secs(self.drain_grace) <= 300.0,
            "DRAIN_GRACE_MS must be at most 300000"
        );
        ensure!(
            self.ingest_max_len >= 1000,
            "INGEST_MAX_LEN must be at least 1000"
        );
        ensure!(
            self.topic_idle_ttl >= Duration::from_secs(60),
            "TOPIC_IDLE_TTL_SECS must be at least 60"
        );
        Ok(self)
    }

    pub fn uses_dev_secret(&self) -> bool {
        self.jwt_secret == DEV_JWT_SECRET
    }

    /// A gateway refuses to sign tokens with a guessable secret: the
    /// built-in default or anything shorter than 32 bytes, unless
    /// `DEV_MODE=1`.
    pub fn check_jwt_secret(&self) -> Result<()> {
        if self.dev_mode {
            return Ok(());
        }
        anyhow::ensure!(
            !self.uses_dev_secret(),
            "JWT_SECRET is the built-in development default; set a random secret of at least \
             {MIN_JWT_SECRET_BYTES} bytes (or DEV_MODE=1 for local development)"
        );
        anyhow::ensure!(
            self.jwt_secret.len() >= MIN_JWT_SECRET_BYTES,
            "JWT_SECRET is {} bytes; it must be at least {MIN_JWT_SECRET_BYTES} \
             (or DEV_MODE=1 for local development)",
            self.jwt_secret.len()
        );
        Ok(())
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
    fn weak_secrets_are_refused_unless_dev_mode() {
        let with = |secret: &'static str, dev: &'static str| {
            Config::from_lookup(move |name| match name {
                "JWT_SECRET" => Some(secret.into()),
                "DEV_MODE" => Some(dev.into()),
                _ => None,
            })
            .unwrap()
        };
        assert!(with("short", "0").check_jwt_secret().is_err());
        assert!(with("short", "1").check_jwt_secret().is_ok());
        assert!(with(DEV_JWT_SECRET, "1").check_jwt_secret().is_ok());
        let strong = "0123456789abcdef0123456789abcdef";
        assert!(with(strong, "0").check_jwt_secret().is_ok());
    }

    #[test]
    fn absurd_values_are_refused_with_the_variable_named() {
        for (name, value) in [
            ("LEASE_TTL_MS", "0"),
            ("ARGON2_MEMORY_KIB", "8"),
            ("ARGON2_ITERATIONS", "0"),
            ("INGEST_SHARDS", "0"),
            ("BATCH_SIZE", "0"),
            ("HEARTBEAT_INTERVAL_MS", "0"),
            ("ACCESS_TOKEN_TTL_SECS", "0"),
            ("SEND_QUEUE_BYTES", "10"),
            ("TRUSTED_PROXIES", "10.0.0.0/99"),
        ] {
            let err =
                Config::from_lookup(|n| (n == name).then(|| value.to_string())).expect_err(name);
            assert!(format!("{err:#}").contains(name), "{name}: {err:#}");
        }
    }

    #[test]
    fn cidrs_match_addresses() {
        let net: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        let host: Cidr = "127.0.0.1".parse().unwrap();
        assert!(host.contains("::ffff:127.0.0.1".parse().unwrap()));
        let v6: Cidr = "::1/128".parse().unwrap();
        assert!(v6.contains("::1".parse().unwrap()));
        assert!(!v6.contains("127.0.0.1".parse().unwrap()));
        let odd: Cidr = "192.168.1.128/25".parse().unwrap();
        assert!(odd.contains("192.168.1.200".parse().unwrap()));
        assert!(!odd.contains("192.168.1.100".parse().unwrap()));
    }

    #[test]
    fn invalid_value_names_the_variable() {
        let err = Config::from_lookup(|name| (name == "DB_MAX_CONNECTIONS").then(|| "many".into()))
            .unwrap_err();
        assert!(format!("{err:#}").contains("DB_MAX_CONNECTIONS"));
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
        let readme = include_str!("../../README.md");
        for (name, default, _) in super::Config::VARIABLES {
            let row = format!("| `{name}` | `{default}` |");
            assert!(readme.contains(&row), "README.md lacks the row {row}");
        }
    }
}
