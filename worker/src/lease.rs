//! Ingest shard leases.
//!
//! Each ingest shard is processed by at most one worker at a time, so the
//! events of one chat are committed and published in one order. A worker
//! renews its leases every third of their lifetime; a crashed worker's
//! shards become free when its leases expire and the next worker to take
//! them reclaims their pending entries.
//!
//! Shards are shared fairly: workers announce themselves in a sorted set,
//! and each takes at most `ceil(shards / live workers)`. A worker over its
//! share (another one joined) first stops processing its excess shards —
//! it unpublishes them, so its consumer leaves them after the batch in
//! hand — and releases their leases one tick later.
//!
//! A lease alone does not stop a worker that lost it without noticing
//! (Redis restarted and forgot it; the worker stalled past its lifetime)
//! from committing what it holds. Each new take therefore draws a fencing
//! epoch from PostgreSQL (`fechatter_shared::store::fence`), which the
//! worker's commits and topic publishes carry and which refuse any older
//! holder.

use std::{collections::BTreeMap, time::Duration};

use fechatter_shared::{
    redis::Keys,
    scripts::{self, LeaseGrant},
    store,
};
use fred::prelude::*;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Shard -> the fencing epoch this worker holds it with.
pub type Owned = BTreeMap<u32, i64>;

/// What the lease task needs.
pub struct Leases {
    pub redis: Client,
    /// Where fencing epochs are drawn (`store::fence`).
    pub pool: PgPool,
    pub keys: Keys,
    pub shards: u32,
    pub holder: String,
    pub ttl: Duration,
    /// Counts new takes (each draws an epoch).
    pub takes: prometheus::IntCounter,
}

/// Keeps leases on as many shards as possible and publishes the shards
/// held, each with its fencing epoch. On shutdown, releases them so
/// another worker can take over at once.
pub fn spawn(
    leases: Leases,
    shutdown: CancellationToken,
) -> (watch::Receiver<Owned>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(Owned::new());
    let handle = tokio::spawn(async move {
        let l = leases;
        let mut tick = tokio::time::interval(l.ttl / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut draining: Vec<u32> = Vec::new();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => break,
            }
            for shard in std::mem::take(&mut draining) {
                release(&l.redis, &l.keys, shard, &l.holder).await;
            }
            let current = tx.borrow().clone();
            let (held, excess) = l.renew(&current).await;
            draining = excess;
            tx.send_if_modified(|current| {
                if *current != held {
                    tracing::info!(shards = ?held, "ingest shards owned (shard: epoch)");
                    *current = held;
                    true
                } else {
                    false
                }
            });
        }
        let owned = tx.borrow().clone();
        tx.send_replace(Owned::new());
        for shard in owned.into_keys().chain(draining) {
            release(&l.redis, &l.keys, shard, &l.holder).await;
        }
        let _: Result<i64, Error> = l.redis.zrem(l.keys.workers(), &l.holder).await;
    });
    (rx, handle)
}

impl Leases {
    /// One round: 1. the fair share, 2. renew or take each shard up to it,
    /// 3. shed the excess (returned, released one tick later).
    async fn renew(&self, current: &Owned) -> (Owned, Vec<u32>) {
        let ttl_ms = self.ttl.as_millis() as u64;
        let fair = match live_workers(&self.redis, &self.keys, &self.holder, ttl_ms).await {
            Ok(live) => self.shards.div_ceil(live.max(1)) as usize,
            Err(e) => {
                tracing::warn!(error = %e, "worker registry unavailable; keeping current shards");
                self.shards as usize
            }
        };
        let mut held = Owned::new();
        for shard in 0..self.shards {
            if !current.contains_key(&shard) && held.len() >= fair {
                continue;
            }
            let key = self.keys.ingest_lease(shard);
            match scripts::take_lease(&self.redis, &key, &self.holder, ttl_ms).await {
                Ok(LeaseGrant::Renewed) if current.contains_key(&shard) => {
                    held.insert(shard, current[&shard]);
                }
                // Newly ours (or ours by name only: a restarted worker
                // with the same id, a Redis that forgot the lease): fence
                // every earlier holder out before processing.
                Ok(LeaseGrant::Renewed | LeaseGrant::Taken) => {
                    if let Some(epoch) = self.fence(shard).await {
                        held.insert(shard, epoch);
                    }
                }
                Ok(LeaseGrant::Refused) => {}
                // Unsure whether we still hold it: stop processing it.
                Err(e) => tracing::warn!(shard, error = %e, "lease renewal failed"),
            }
        }
        // Over the fair share: stop processing the highest shards now.
        let mut excess = Vec::new();
        while held.len() > fair {
            let (&shard, _) = held.iter().next_back().expect("non-empty");
            held.remove(&shard);
            excess.push(shard);
        }
        (held, excess)
    }

    /// Draws a new epoch for a shard just taken; None when PostgreSQL is
    /// unavailable (the shard is not processed; the next round retries).
    async fn fence(&self, shard: u32) -> Option<i64> {
        match store::fence::take(&self.pool, shard).await {
            Ok(epoch) => {
                self.takes.inc();
                tracing::info!(shard, epoch, "took ingest shard");
                Some(epoch)
            }
            Err(e) => {
                tracing::warn!(shard, error = %e, "no fencing epoch for a taken shard; retrying");
                None
            }
        }
    }
}

/// Heartbeats this worker and counts the workers seen within one lease
/// lifetime (forgetting older ones).
async fn live_workers(
    redis: &Client,
    keys: &Keys,
    holder: &str,
    ttl_ms: u64,
) -> Result<u32, Error> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as f64;
    let key = keys.workers();
    let _: i64 = redis
        .zadd(&key, None, None, false, false, (now, holder))
        .await?;
    let _: i64 = redis
        .zremrangebyscore(&key, f64::NEG_INFINITY, now - ttl_ms as f64)
        .await?;
    let live: u32 = redis.zcard(&key).await?;
    Ok(live)
}

async fn release(redis: &Client, keys: &Keys, shard: u32, holder: &str) {
    if let Err(e) = scripts::release_lease(redis, &keys.ingest_lease(shard), holder).await {
        tracing::warn!(shard, error = %e, "lease release failed; it expires on its own");
    }
}
