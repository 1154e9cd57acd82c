//! Redis connection set-up and the key layout.
//!
//! Every key is built here, from one prefix, so the layout documented in
//! `docs/architecture.md` has a single source, tests can isolate themselves
//! with a unique prefix, and keys used together by one Lua script share one
//! `{hash tag}` (a requirement for Redis Cluster).

use std::time::Duration;

use anyhow::{Context, Result};
use fred::prelude::*;

/// Connects a client that reconnects forever with capped backoff and fails
/// commands after `command_timeout` instead of queueing them without bound
/// while Redis is down.
pub async fn connect(url: &str, command_timeout: Duration) -> Result<Client> {
    let config = Config::from_url(url).context("parsing REDIS_URL")?;
    let client = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = Duration::from_secs(2);
            c.internal_command_timeout = Duration::from_secs(2);
            c.max_command_attempts = 2;
        })
        .with_performance_config(|p| {
            p.default_command_timeout = command_timeout;
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2))
        .build()
        .context("building Redis client")?;
    client
        .init()
        .await
        .with_context(|| format!("connecting to Redis at {}", crate::config::redact_url(url)))?;
    Ok(client)
}

/// Builds every Redis key of one deployment.
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Token buckets of one user and action; the user hash tag keeps all of
    /// a user's buckets on one cluster slot.
    pub fn rate_limit(&self, user_id: i64, action: &str) -> String {
        format!("{}:rl:{{u{user_id}}}:{action}", self.prefix)
    }

    /// Heartbeat key of a live gateway instance (for /health and ops).
    pub fn instance(&self, instance_id: &str) -> String {
        format!("{}:instance:{instance_id}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_prefix_and_hash_tag() {
        let keys = Keys::new("fc");
        assert_eq!(keys.rate_limit(42, "send"), "fc:rl:{u42}:send");
    }
}
