//! What a process refuses to start with: zero or absurd values (each
//! error names its variable) and, for gateways, a guessable JWT secret.

use std::time::Duration;

use anyhow::Result;

use super::{
    Config, ARGON2_MAX_MEMORY_KIB, ARGON2_MIN_MEMORY_KIB, DEV_JWT_SECRET, MIN_JWT_SECRET_BYTES,
};

impl Config {
    /// Rejects zero and absurd values with a message naming the variable.
    pub(super) fn validated(self) -> Result<Self> {
        use anyhow::ensure;
        let secs = |d: Duration| d.as_secs_f64();
        ensure!(
            (1..=1024).contains(&self.ingest_shards),
            "INGEST_SHARDS must be 1 to 1024"
        );
        ensure!(self.send_queue >= 8, "SEND_QUEUE must be at least 8");
        ensure!(
            (0.1..=120.0).contains(&secs(self.write_timeout)),
            "WRITE_TIMEOUT_MS must be 100 to 120000"
        );
        ensure!(
            self.send_queue_bytes >= 2 * crate::protocol::SYNC_REQUEST_MAX_BYTES,
            "SEND_QUEUE_BYTES must be at least {} (twice the events one sync.request may return)",
            2 * crate::protocol::SYNC_REQUEST_MAX_BYTES
        );
        ensure!(
            (1..=10_000).contains(&self.batch_size),
            "BATCH_SIZE must be 1 to 10000"
        );
        ensure!(
            self.db_max_connections
                .is_none_or(|n| (1..=1000).contains(&n)),
            "DB_MAX_CONNECTIONS must be 1 to 1000"
        );
        ensure!(
            (0.1..=120.0).contains(&secs(self.db_acquire_timeout)),
            "DB_ACQUIRE_TIMEOUT_MS must be 100 to 120000"
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
            self.ingest_max_wait.is_zero() || self.ingest_max_wait >= Duration::from_millis(100),
            "INGEST_MAX_WAIT_MS must be 0 (no limit) or at least 100"
        );
        ensure!(
            self.summary_mode_rate <= 10_000,
            "SUMMARY_MODE_RATE must be at most 10000 (0: off)"
        );
        ensure!(
            self.fanout_max_lag.is_zero() || self.fanout_max_lag >= Duration::from_millis(50),
            "FANOUT_MAX_LAG_MS must be 0 (no limit) or at least 50"
        );
        ensure!(
            self.topic_idle_ttl >= Duration::from_secs(60),
            "TOPIC_IDLE_TTL_SECS must be at least 60"
        );
        ensure!(
            (self.public_url.starts_with("http://") || self.public_url.starts_with("https://"))
                && !self.public_url.contains(['\r', '\n', ' ']),
            "PUBLIC_URL must be an http:// or https:// URL"
        );
        ensure!(
            secs(self.presence_away) >= 1.0,
            "PRESENCE_AWAY_MS must be at least 1000"
        );
        ensure!(
            (3.0..=600.0).contains(&secs(self.presence_node_ttl)),
            "PRESENCE_NODE_TTL_MS must be 3000 to 600000"
        );
        ensure!(
            secs(self.presence_sub_ttl) >= 1.0,
            "PRESENCE_SUB_TTL_MS must be at least 1000"
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

#[cfg(test)]
mod tests {
    use super::*;

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
            ("DB_MAX_CONNECTIONS", "0"),
            ("DB_ACQUIRE_TIMEOUT_MS", "0"),
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
}
