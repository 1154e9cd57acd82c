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

use std::{collections::BTreeSet, time::Duration};

use fechatter_shared::{redis::Keys, scripts};
use fred::prelude::*;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Keeps leases on as many shards as possible and publishes the set held.
/// On shutdown, releases them so another worker can take over at once.
pub fn spawn(
    redis: Client,
    keys: Keys,
    shards: u32,
    holder: String,
    ttl: Duration,
    shutdown: CancellationToken,
) -> (watch::Receiver<BTreeSet<u32>>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(BTreeSet::new());
    let handle = tokio::spawn(async move {
        let ttl_ms = ttl.as_millis() as u64;
        let mut tick = tokio::time::interval(ttl / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut draining: Vec<u32> = Vec::new();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => break,
            }
            for shard in std::mem::take(&mut draining) {
                release(&redis, &keys, shard, &holder).await;
            }
            let fair = match live_workers(&redis, &keys, &holder, ttl_ms).await {
                Ok(live) => shards.div_ceil(live.max(1)) as usize,
                Err(e) => {
                    tracing::warn!(error = %e, "worker registry unavailable; keeping current shards");
                    shards as usize
                }
            };
            let current = tx.borrow().clone();
            let mut held = BTreeSet::new();
            for shard in 0..shards {
                if !current.contains(&shard) && held.len() >= fair {
                    continue;
                }
                match scripts::acquire_lease(&redis, &keys.ingest_lease(shard), &holder, ttl_ms)
                    .await
                {
                    Ok(true) => {
                        held.insert(shard);
                    }
                    Ok(false) => {}
                    // Unsure whether we still hold it: stop processing it.
                    Err(e) => tracing::warn!(shard, error = %e, "lease renewal failed"),
                }
            }
            // Over the fair share: stop processing the highest shards now,
            // release them at the next tick.
            while held.len() > fair {
                let shard = *held.iter().next_back().expect("non-empty");
                held.remove(&shard);
                draining.push(shard);
            }
            tx.send_if_modified(|current| {
                if *current != held {
                    tracing::info!(shards = ?held, fair, "ingest shards owned");
                    *current = held;
                    true
                } else {
                    false
                }
            });
        }
        let owned = tx.borrow().clone();
        tx.send_replace(BTreeSet::new());
        for shard in owned.into_iter().chain(draining) {
            release(&redis, &keys, shard, &holder).await;
        }
        let _: Result<i64, Error> = redis.zrem(keys.workers(), &holder).await;
    });
    (rx, handle)
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
