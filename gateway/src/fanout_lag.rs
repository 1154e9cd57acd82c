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
//! How: every socket write of a committed event records its lag (commit to
//! write) in this gateway's window, a small histogram
//! (`metrics::DeliveryObserver`). The window's lag is its 90th percentile,
//! and only with at least [`MIN_SAMPLES`] writes: one client that reads
//! slowly (its writes wait in its own queue until it is closed as a slow
//! consumer) must not stop the pool's writes, an overloaded gateway makes
//! most writes late. Every 250 ms each gateway reports its window's lag
//! through lua/fanout_lag.lua, which stamps it with Redis's clock and
//! returns the highest report of the last 2 s: a message's delivery spans
//! every gateway with members, and the sender's gateway may be idle. A
//! write is refused while the pool's lag, or this gateway's current
//! window's, is above `FANOUT_MAX_LAG_MS`. As the backlog drains the lag
//! falls and writes pass again. A pool lag not refreshed for 2 s (Redis
//! unreachable) stops counting.
//!
//! The lag is this gateway's clock minus the worker's commit stamp, like
//! `delivery_latency_seconds`: hosts need synchronized clocks (NTP), and
//! skew adds to (or hides) lag.

use std::{
    sync::{
        atomic::{AtomicU32, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use fechatter_shared::scripts::{self, LagReportAges};
use fred::prelude::*;
use tokio_util::sync::CancellationToken;

/// How often each gateway reports its lag and reads the pool's.
const TICK: Duration = Duration::from_millis(250);
/// Reports older than this (Redis time) are a gateway that stopped.
const AGES: LagReportAges = LagReportAges {
    fresh_ms: 2_000,
    forget_ms: 60_000,
};
/// A pool lag older than this on this gateway no longer counts.
const POOL_VALID_MS: u64 = 2_000;
/// Fewer writes than this in a window: no lag (a few late writes to a
/// slow client are not an overloaded gateway).
pub const MIN_SAMPLES: u32 = 50;
/// The retry hint of a refused write.
pub const RETRY_MS: u64 = 1_000;
/// Upper bounds (ms) of the window's buckets; the last is open.
const BOUNDS_MS: [u64; 16] = [
    5, 10, 25, 50, 100, 150, 200, 250, 300, 400, 500, 750, 1_000, 2_500, 5_000, 10_000,
];

/// Commit-to-write lags of one window, bucketed (shared with every
/// connection writer of the gateway).
#[derive(Debug, Default)]
pub struct LagWindow {
    buckets: [AtomicU32; BOUNDS_MS.len() + 1],
}

impl LagWindow {
    /// Counts one write `lag_ms` after its commit.
    pub fn record(&self, lag_ms: u64) {
        let i = BOUNDS_MS.partition_point(|&b| b < lag_ms);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
    }

    /// The window's lag: the upper bound of the bucket holding its 90th
    /// percentile, 0 with fewer than [`MIN_SAMPLES`] writes.
    pub fn lag_ms(&self) -> u64 {
        lag_of(self.buckets.each_ref().map(|b| b.load(Ordering::Relaxed)))
    }

    /// [`Self::lag_ms`], and a new window.
    fn take(&self) -> u64 {
        lag_of(
            self.buckets
                .each_ref()
                .map(|b| b.swap(0, Ordering::Relaxed)),
        )
    }
}

fn lag_of(counts: [u32; BOUNDS_MS.len() + 1]) -> u64 {
    let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
    if total < u64::from(MIN_SAMPLES) {
        return 0;
    }
    let rank = total * 9 / 10;
    let mut seen = 0;
    for (i, &c) in counts.iter().enumerate() {
        seen += u64::from(c);
        if seen > rank {
            return BOUNDS_MS
                .get(i)
                .copied()
                .unwrap_or(2 * BOUNDS_MS[BOUNDS_MS.len() - 1]);
        }
    }
    0
}

/// This gateway's fan-out lag and its view of the pool's.
#[derive(Debug)]
pub struct FanoutLag {
    window: Arc<LagWindow>,
    /// The pool's lag as of the last successful report ...
    pool: AtomicU64,
    /// ... which counts until this many ms after `started`.
    pool_until: AtomicU64,
    started: Instant,
    /// `FANOUT_MAX_LAG_MS`; 0: never refuse.
    limit_ms: u64,
}

impl FanoutLag {
    pub fn new(limit: Duration) -> Self {
        Self {
            window: Default::default(),
            pool: AtomicU64::new(0),
            pool_until: AtomicU64::new(0),
            started: Instant::now(),
            limit_ms: limit.as_millis() as u64,
        }
    }

    /// The writers' handle on this gateway's window.
    pub fn window(&self) -> Arc<LagWindow> {
        self.window.clone()
    }

    /// Should a new write be refused now?
    pub fn over(&self) -> bool {
        self.limit_ms > 0 && self.pool_ms().max(self.window.lag_ms()) > self.limit_ms
    }

    /// The pool's lag as of the last report, 0 once that is too old.
    pub fn pool_ms(&self) -> u64 {
        let now = self.started.elapsed().as_millis() as u64;
        if now < self.pool_until.load(Ordering::Relaxed) {
            self.pool.load(Ordering::Relaxed)
        } else {
            0
        }
    }

    fn set_pool(&self, lag_ms: u64) {
        self.pool.store(lag_ms, Ordering::Relaxed);
        let until = self.started.elapsed().as_millis() as u64 + POOL_VALID_MS;
        self.pool_until.store(until, Ordering::Relaxed);
    }
}

/// Where and as whom a gateway reports its lag.
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

/// Reports this gateway's lag and reads the pool's every [`TICK`] until
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
                    let mine = x.lag.window.take();
                    match scripts::fanout_lag(&x.redis, &x.key, &x.node, mine, AGES).await {
                        Ok(pool) => {
                            x.lag.set_pool(pool);
                            x.gauge.set(pool as i64);
                        }
                        Err(e) => tracing::debug!(error = %e, "fan-out lag report failed"),
                    }
                }
                _ = shutdown.cancelled() => break,
            }
        }
        let _: Result<(), _> = x.redis.hdel(&x.key, x.node.as_str()).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(lags: &[(u64, u32)]) -> LagWindow {
        let w = LagWindow::default();
        for &(lag, n) in lags {
            for _ in 0..n {
                w.record(lag);
            }
        }
        w
    }

    #[test]
    fn a_windows_lag_is_its_90th_percentile_bucket() {
        assert_eq!(window(&[(3, 95), (4_000, 5)]).lag_ms(), 5, "5 slow of 100");
        assert_eq!(window(&[(3, 80), (260, 20)]).lag_ms(), 300);
        assert_eq!(
            window(&[(99_000, 60)]).lag_ms(),
            20_000,
            "past the last bound"
        );
        assert_eq!(window(&[(900, 49)]).lag_ms(), 0, "too few writes to judge");
        let w = window(&[(120, 60)]);
        assert_eq!(w.take(), 150);
        assert_eq!(w.lag_ms(), 0, "taking starts a new window");
    }

    #[test]
    fn writes_are_refused_above_the_limit_only() {
        let lag = FanoutLag::new(Duration::from_millis(200));
        assert!(!lag.over());
        for _ in 0..60 {
            lag.window.record(180);
        }
        assert!(!lag.over(), "the 200 ms bucket is not over 200");
        for _ in 0..600 {
            lag.window.record(230);
        }
        assert!(lag.over(), "this gateway's own window counts at once");
        lag.window.take();
        lag.set_pool(350);
        assert!(lag.over(), "another gateway's lag counts");
        lag.pool_until.store(0, Ordering::Relaxed);
        assert!(!lag.over(), "a pool lag not refreshed stops counting");
        let off = FanoutLag::new(Duration::ZERO);
        off.set_pool(10_000);
        assert!(!off.over());
    }
}
