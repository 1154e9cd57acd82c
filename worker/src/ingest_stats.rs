//! The backlog of each ingest shard this worker leases, for the gauges
//! `ingest_consumer_lag`, `ingest_pending_entries` and
//! `ingest_oldest_entry_age_seconds` (label `shard`), refreshed every
//! [`REFRESH`].
//!
//! Why not the `lag` of `XINFO GROUPS`: Redis cannot compute it once
//! entries were deleted from the stream (it answers nil), and workers
//! `XDEL` every entry they acknowledge. That same `XDEL` makes simple
//! arithmetic exact instead: a shard holds only unacknowledged entries, so
//! entries never read = `XLEN` − pending (read, not acknowledged: the
//! `XPENDING` summary). The oldest entry's id is its append time in ms,
//! which gives its age: the one number that grows whenever writes wait,
//! whatever the traffic.
//!
//! Only a shard's leaseholder reports it: when a shard moves to another
//! worker its series disappear here and appear there, so a sum over
//! workers counts every leased shard once.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use fechatter_shared::{ingest::GROUP, wake::StreamId};
use fred::prelude::*;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::Worker;

/// How often the gauges are refreshed.
pub const REFRESH: Duration = Duration::from_secs(5);

/// One shard's backlog.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Backlog {
    /// Entries no worker has read yet.
    pub lag: i64,
    /// Entries read and not yet acknowledged.
    pub pending: i64,
    /// Age of the oldest entry in seconds (0 when the shard is empty).
    pub oldest_age_secs: f64,
}

impl Backlog {
    /// From `XLEN`, the pending count and the oldest entry's id, at `now_ms`.
    pub fn from_parts(len: i64, pending: i64, oldest: Option<StreamId>, now_ms: u64) -> Self {
        let age_ms = oldest.map_or(0, |id| now_ms.saturating_sub(id.0));
        Self {
            lag: (len - pending).max(0),
            pending,
            oldest_age_secs: age_ms as f64 / 1000.0,
        }
    }
}

/// Reads the backlog of the ingest stream `stream`.
pub async fn read(redis: &Client, stream: &str) -> Result<Backlog, Error> {
    let len: i64 = redis.xlen(stream).await?;
    let summary: Result<Value, Error> = redis.xpending(stream, GROUP, ()).await;
    let pending = match summary {
        Ok(Value::Array(parts)) => parts.first().and_then(Value::as_i64).unwrap_or(0),
        Ok(_) => 0,
        // No group yet: nobody read anything.
        Err(e) if e.details().contains("NOGROUP") => 0,
        Err(e) => return Err(e),
    };
    let first: Value = redis.xrange(stream, "-", "+", Some(1)).await?;
    Ok(Backlog::from_parts(
        len,
        pending,
        fechatter_shared::user_stream::first_id(&first),
        now_ms(),
    ))
}

fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis().max(0) as u64
}

/// Refreshes the gauges of the shards in `owned` every [`REFRESH`] until
/// `stop`.
pub fn spawn(
    worker: Arc<Worker>,
    owned: watch::Receiver<crate::lease::Owned>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut reported: BTreeSet<u32> = BTreeSet::new();
        let mut tick = tokio::time::interval(REFRESH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => break,
            }
            let shards: BTreeSet<u32> = owned.borrow().keys().copied().collect();
            for gone in reported.difference(&shards) {
                forget(&worker, *gone);
            }
            for &shard in &shards {
                match read(&worker.redis, &worker.keys.ingest_shard(shard)).await {
                    Ok(backlog) => record(&worker, shard, backlog),
                    Err(e) => tracing::debug!(shard, error = %e, "reading shard backlog failed"),
                }
            }
            reported = shards;
        }
        for shard in reported {
            forget(&worker, shard);
        }
    })
}

fn record(worker: &Worker, shard: u32, b: Backlog) {
    let label = [shard.to_string()];
    let m = &worker.metrics;
    m.ingest_lag.with_label_values(&label).set(b.lag);
    m.ingest_pending.with_label_values(&label).set(b.pending);
    m.ingest_oldest_age
        .with_label_values(&label)
        .set(b.oldest_age_secs);
}

fn forget(worker: &Worker, shard: u32) {
    let label = [shard.to_string()];
    let m = &worker.metrics;
    let _ = m.ingest_lag.remove_label_values(&label);
    let _ = m.ingest_pending.remove_label_values(&label);
    let _ = m.ingest_oldest_age.remove_label_values(&label);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backlog_arithmetic() {
        let b = Backlog::from_parts(10, 4, Some(StreamId(1_000, 3)), 3_500);
        assert_eq!(b.lag, 6);
        assert_eq!(b.pending, 4);
        assert!((b.oldest_age_secs - 2.5).abs() < 1e-9);
        // Empty shard; and a read racing an append/ack never goes negative.
        assert_eq!(Backlog::from_parts(0, 0, None, 9), Backlog::default());
        assert_eq!(Backlog::from_parts(3, 5, None, 9).lag, 0);
        // An entry id from a clock ahead of ours is age 0.
        assert_eq!(
            Backlog::from_parts(1, 0, Some(StreamId(10_000, 0)), 9).oldest_age_secs,
            0.0
        );
    }

    #[test]
    fn first_id_of_an_xrange_reply() {
        let reply = Value::Array(vec![Value::Array(vec![
            Value::from("1700000000000-2"),
            Value::Array(vec![Value::from("e"), Value::from("{}")]),
        ])]);
        assert_eq!(
            fechatter_shared::user_stream::first_id(&reply),
            Some(StreamId(1_700_000_000_000, 2))
        );
        assert_eq!(
            fechatter_shared::user_stream::first_id(&Value::Array(vec![])),
            None
        );
        assert_eq!(fechatter_shared::user_stream::first_id(&Value::Null), None);
    }
}
