//! Sweeps the presence of dead gateways.
//!
//! Each gateway renews a lease on its connections' presence (see
//! `fechatter_shared::presence`). A gateway killed without a chance to
//! clean up stops renewing; once its lease is `PRESENCE_NODE_TTL_MS` old
//! a worker deletes its connection fields user by user. The presence
//! script announces whoever is left without connections as offline, and
//! the last-seen time goes to PostgreSQL. Users who reconnected to another
//! gateway keep their status: nothing is announced for them.
//!
//! Failure handling: several workers may sweep; a per-gateway lock (SET NX
//! with a lifetime) lets one of them do it, and a sweep that dies half-way
//! is done again by the next one after the lock lapses (deleting a field
//! twice changes nothing). Redis or PostgreSQL errors are logged and the
//! sweep is retried at the next tick.
//!
//! Bound: a dead gateway's users are offline at most
//! `PRESENCE_NODE_TTL_MS` + one renewal interval + one sweep interval
//! after it died (about 30 + 10 + 5 s by default, under the 60 s promise).

use std::time::Duration;

use fechatter_shared::{
    presence::{self, Op, Status},
    redis::{self, Keys},
    store, AppResult,
};
use fred::prelude::*;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// How often workers look for dead gateways: a sixth of the lease, so the
/// bound above holds.
pub fn interval(node_ttl: Duration) -> Duration {
    (node_ttl / 6).clamp(Duration::from_millis(500), Duration::from_secs(5))
}

pub struct Sweeper {
    pub redis: Client,
    pub pool: PgPool,
    pub keys: Keys,
    pub node_ttl: Duration,
    pub instance: String,
}

impl Sweeper {
    /// Sweeps until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.sweep_once().await {
                tracing::warn!(error = %e, "presence sweep failed; retrying");
            }
            tokio::select! {
                _ = tokio::time::sleep(interval(self.node_ttl)) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// Sweeps every dead gateway this worker can lock; returns how many
    /// users went offline.
    pub async fn sweep_once(&self) -> AppResult<usize> {
        let dead =
            presence::dead_nodes(&self.redis, &self.keys, self.node_ttl.as_millis() as u64).await?;
        let mut offline = 0;
        for node in dead {
            let lock = self.keys.presence_sweep_lock(&node);
            let ttl = Duration::from_secs(60);
            if !redis::try_lock(&self.redis, &lock, &self.instance, ttl).await? {
                continue;
            }
            offline += self.sweep_node(&node).await?;
            presence::retire_node(&self.redis, &self.keys, &node).await?;
            tracing::info!(node, offline, "swept the presence of a dead gateway");
        }
        Ok(offline)
    }

    async fn sweep_node(&self, node: &str) -> AppResult<usize> {
        let prefix = presence::node_prefix(node);
        let mut offline = 0;
        for user in presence::node_users(&self.redis, &self.keys, node).await? {
            let outcome =
                presence::update(&self.redis, &self.keys, user, Op::Node { prefix: &prefix })
                    .await?;
            if outcome.changed && outcome.status == Status::Offline {
                store::presence::set_last_seen(&self.pool, user, outcome.last_seen_ms).await?;
                offline += 1;
            }
        }
        Ok(offline)
    }
}
