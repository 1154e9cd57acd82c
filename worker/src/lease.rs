//! Ingest shard leases.
//!
//! Each ingest shard is processed by at most one worker at a time, so the
//! events of one chat are committed and published in one order. A worker
//! renews its leases every third of their lifetime; a crashed worker's
//! shards become free when its leases expire and the next worker to take
//! them reclaims their pending entries. Assignment is greedy (the first
//! worker takes every free shard; others stand by).

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
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => break,
            }
            let mut held = BTreeSet::new();
            for shard in 0..shards {
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
            tx.send_if_modified(|current| {
                if *current != held {
                    tracing::info!(shards = ?held, "ingest shards owned");
                    *current = held;
                    true
                } else {
                    false
                }
            });
        }
        let owned = tx.borrow().clone();
        tx.send_replace(BTreeSet::new());
        for shard in owned {
            if let Err(e) = scripts::release_lease(&redis, &keys.ingest_lease(shard), &holder).await
            {
                tracing::warn!(shard, error = %e, "lease release failed; it expires on its own");
            }
        }
    });
    (rx, handle)
}
