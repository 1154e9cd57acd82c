//! Fan-out back-pressure (issue 13 item 3): refuse new writes while the
//! pool delivers committed events late.
//!
//! Why: ingest back-pressure (`INGEST_MAX_WAIT_MS`) bounds how long a write
//! waits for a worker, but past the commit, fan-out can still fall behind:
//! a channel of hundreds of members turns each message into hundreds of
//! socket writes, and a saturated gateway builds a backlog of seconds
//! while every send is still acked at once. Senders must hear about it
//! (`unavailable` with `retryAfterMs`) before latency grows without bound.
//!
//! How: every socket write of a committed event reports its lag (commit to
//! write) into this gateway's window (`metrics::DeliveryObserver`, the
//! highest value wins). Every 250 ms the gateway takes its window's maximum,
//! publishes it in the hash `fc:fanout_lag` under its node id with the
//! time, and reads every gateway's entry back (one HSET and one HGETALL,
//! pipelined): the pool's lag is the highest entry younger than 2 s, since
//! a message's delivery spans every gateway with members and the sender's
//! gateway may be idle. A write is refused while the pool's lag, or this
//! gateway's current window, is above `FANOUT_MAX_LAG_MS`. As the backlog
//! drains the lag falls and writes are accepted again; a gateway that
//! stops reporting drops out after 2 s.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use fred::prelude::*;
use tokio_util::sync::CancellationToken;

use crate::metrics::now_ms;

/// How often each gateway publishes its lag and reads the pool's.
const TICK: Duration = Duration::from_millis(250);
/// Entries older than this are a gateway that stopped reporting.
const FRESH_MS: u64 = 2_000;
/// Entries older than this (a gateway that crashed) are deleted.
const FORGET_MS: u64 = 60_000;
/// The retry hint of a refused write.
pub const RETRY_MS: u64 = 1_000;

/// This gateway's fan-out lag and its view of the pool's.
#[derive(Debug, Default)]
pub struct FanoutLag {
    /// Highest commit-to-write lag (ms) since the last tick; shared with
    /// the connection writers.
    window: Arc<AtomicU64>,
    /// The pool's lag as of the last tick.
    pool: AtomicU64,
    /// `FANOUT_MAX_LAG_MS`; 0: never refuse.
    limit_ms: u64,
}

impl FanoutLag {
    pub fn new(limit: Duration) -> Self {
        Self {
            limit_ms: limit.as_millis() as u64,
            ..Self::default()
        }
    }

    /// The writers' handle on this gateway's window.
    pub fn window(&self) -> Arc<AtomicU64> {
        self.window.clone()
    }

    /// Should a new write be refused now?
    pub fn over(&self) -> bool {
        let lag = self
            .pool
            .load(Ordering::Relaxed)
            .max(self.window.load(Ordering::Relaxed));
        self.limit_ms > 0 && lag > self.limit_ms
    }

    /// The pool's lag as of the last tick (ms).
    pub fn pool_ms(&self) -> u64 {
        self.pool.load(Ordering::Relaxed)
    }
}

/// The pool's lag from the entries of `fc:fanout_lag` (`"<lag> <at>"`
/// per node): the highest one written in the last [`FRESH_MS`].
pub fn pool_lag<'a>(entries: impl IntoIterator<Item = &'a str>, now: u64) -> u64 {
    entries
        .into_iter()
        .filter_map(|v| {
            let (lag, at) = v.split_once(' ')?;
            let (lag, at) = (lag.parse::<u64>().ok()?, at.parse::<u64>().ok()?);
            (now.saturating_sub(at) <= FRESH_MS).then_some(lag)
        })
        .max()
        .unwrap_or(0)
}

/// When an entry was written, None for an unreadable one.
fn written_at(v: &str) -> Option<u64> {
    v.split_once(' ')?.1.parse().ok()
}

/// Where and as whom a gateway exchanges its lag.
pub struct Exchange {
    pub lag: Arc<FanoutLag>,
    pub redis: Client,
    /// `fc:fanout_lag`.
    pub key: String,
    /// This gateway's node id (`<instance>~<nonce>`).
    pub node: String,
    /// `fanout_lag_ms`: the pool's lag as this gateway sees it.
    pub gauge: prometheus::IntGauge,
}

/// Publishes this gateway's lag and reads the pool's every [`TICK`] until
/// `shutdown` (only when `FANOUT_MAX_LAG_MS` is set).
pub fn spawn(x: Exchange, shutdown: CancellationToken) {
    if x.lag.limit_ms == 0 {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = exchange(&x).await {
                        tracing::debug!(error = %e, "fan-out lag exchange failed");
                    }
                }
                _ = shutdown.cancelled() => break,
            }
        }
        let _: Result<(), _> = x.redis.hdel(&x.key, x.node.as_str()).await;
    });
}

/// One tick: take this gateway's window, publish it, read the pool's.
async fn exchange(x: &Exchange) -> Result<(), fred::error::Error> {
    let mine = x.lag.window.swap(0, Ordering::Relaxed);
    let now = now_ms();
    let pipe = x.redis.pipeline();
    let _: () = pipe
        .hset(&x.key, (x.node.as_str(), format!("{mine} {now}")))
        .await?;
    let _: () = pipe.hgetall(&x.key).await?;
    let (_, all): (i64, std::collections::HashMap<String, String>) = pipe.all().await?;
    let pool = pool_lag(all.values().map(String::as_str), now);
    x.lag.pool.store(pool, Ordering::Relaxed);
    x.gauge.set(pool as i64);
    let gone: Vec<&String> = all
        .iter()
        .filter(|(_, v)| written_at(v).is_none_or(|at| now.saturating_sub(at) > FORGET_MS))
        .map(|(k, _)| k)
        .collect();
    if !gone.is_empty() {
        let _: () = x.redis.hdel(&x.key, gone).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_lag_is_the_highest_fresh_entry() {
        let now = 100_000;
        let entries = ["40 99900", "900 97000", "120 99000", "junk", "5"];
        // 900 is older than 2 s: that gateway stopped reporting.
        assert_eq!(pool_lag(entries, now), 120);
        assert_eq!(written_at("40 99900"), Some(99900));
        assert_eq!(written_at("junk"), None);
        assert_eq!(pool_lag([], now), 0);
    }

    #[test]
    fn writes_are_refused_above_the_limit_only() {
        let lag = FanoutLag::new(Duration::from_millis(200));
        assert!(!lag.over());
        lag.window.store(200, Ordering::Relaxed);
        assert!(!lag.over(), "at the limit is not over it");
        lag.window.store(201, Ordering::Relaxed);
        assert!(lag.over(), "this gateway's own window counts at once");
        lag.window.store(0, Ordering::Relaxed);
        lag.pool.store(350, Ordering::Relaxed);
        assert!(lag.over(), "another gateway's lag counts");
        let off = FanoutLag::new(Duration::ZERO);
        off.pool.store(10_000, Ordering::Relaxed);
        assert!(!off.over());
    }
}
