//! The gateway's metrics: the process-wide ones of
//! [`fechatter_shared::metrics::Metrics`] plus what only a gateway sees —
//! how long a committed event took to reach a socket, what backpressure
//! dropped, how deep the outbound queues are, where sync reads came from
//! and which rate limits refused whom.
//!
//! Why these: delivery latency is the user-visible promise of the whole
//! pipeline (commit on the worker to the socket write here); drops and
//! queue depth say whether slow clients or an overloaded gateway are the
//! cause when it degrades; sync sources show how often the Redis topic
//! streams no longer reach back (PostgreSQL load after reconnect storms);
//! rate-limit refusals tell abuse or a misbehaving client release apart
//! from a real outage. Every label set is bounded and created up front, so
//! each series exists (at 0) from the start and `rate()` and alerts see
//! the first increment.

use std::time::{SystemTime, UNIX_EPOCH};

use fechatter_shared::metrics::Metrics;
use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts};

/// A droppable frame refused because the queue was filling (typing from
/// half full, presence from three quarters).
pub const BACKPRESSURE: &str = "backpressure";
/// A queued droppable frame removed to make room for one that must not be
/// dropped.
pub const EVICTED: &str = "evicted";
/// A frame that did not fit the queue at all (an essential one closes the
/// connection as a slow consumer).
pub const OVERFLOW: &str = "overflow";

/// Frame classes of `outbound_frames_dropped_total{class}`.
pub const CLASSES: [&str; 11] = [
    "typing",
    "presence",
    "receipt",
    "badge",
    "notification",
    "message",
    "reply",
    "sync",
    "session",
    "search",
    "other",
];

/// Actions of `rate_limited_total{action}`: the per-user buckets
/// (`crate::writes::take`) and the authentication buckets.
pub const ACTIONS: [&str; 11] = [
    "send",
    "urgent",
    "chat_change",
    "read",
    "typing",
    "sync",
    "presence",
    "search",
    "auth_ip",
    "auth_account",
    "signin_failures",
];

/// Paths of `sync_reads_total{path}`: `sync.request` answers, and the
/// fan-out's catch-up when a gateway missed wakes.
pub const SYNC_PATHS: [&str; 2] = ["sync", "catch_up"];
/// Sources of `sync_reads_total{source}`.
pub const REDIS: &str = "redis";
pub const POSTGRES: &str = "postgres";

/// Every metric of a gateway; dereferences to the shared ones.
pub struct GatewayMetrics {
    pub base: Metrics,
    /// `delivery_latency_seconds`: worker commit to socket write.
    pub delivery_latency: Histogram,
    /// `outbound_frames_dropped_total{class, reason}`.
    pub dropped: IntCounterVec,
    /// `ws_outbound_queued_frames`, `ws_outbound_queue_max_frames`,
    /// `ws_outbound_queued_bytes`: sampled from every connection.
    pub queued_frames: IntGauge,
    pub queue_max_frames: IntGauge,
    pub queued_bytes: IntGauge,
    /// `sync_reads_total{path, source}`.
    pub sync_reads: IntCounterVec,
    /// `rate_limited_total{action}`.
    pub rate_limited: IntCounterVec,
    /// `ingest_refused_total{reason}`: writes refused because their shard
    /// was full or lagging (back-pressure).
    pub ingest_refused: IntCounterVec,
    /// `fanout_lag_ms`: the pool's fan-out lag as this gateway sees it.
    pub fanout_lag: IntGauge,
    /// `summary_mode_chats`: chats this gateway summarizes now.
    pub summary_chats: IntGauge,
    /// `summarized_events_total`: chat events sent only to focused
    /// connections (the rest got a `chat.summary`).
    pub summarized_events: prometheus::IntCounter,
}

impl std::ops::Deref for GatewayMetrics {
    type Target = Metrics;
    fn deref(&self) -> &Metrics {
        &self.base
    }
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl GatewayMetrics {
    pub fn new() -> Self {
        let base = Metrics::new("gateway");
        let delivery_latency = base.register(
            Histogram::with_opts(
                HistogramOpts::new(
                    "delivery_latency_seconds",
                    "committed chat event: worker commit to the socket write on this gateway",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ]),
            )
            .expect("valid metric"),
        );
        let dropped = base.register(
            IntCounterVec::new(
                Opts::new(
                    "outbound_frames_dropped_total",
                    "server frames not queued for a connection, by frame class and reason",
                ),
                &["class", "reason"],
            )
            .expect("valid metric"),
        );
        let gauge = |name: &str, help: &str| {
            base.register(IntGauge::new(name, help).expect("valid metric"))
        };
        let queued_frames = gauge(
            "ws_outbound_queued_frames",
            "frames waiting in all outbound queues (sampled)",
        );
        let queue_max_frames = gauge(
            "ws_outbound_queue_max_frames",
            "frames waiting in the fullest outbound queue (sampled)",
        );
        let queued_bytes = gauge(
            "ws_outbound_queued_bytes",
            "bytes waiting in all outbound queues (sampled)",
        );
        let sync_reads = base.register(
            IntCounterVec::new(
                Opts::new(
                    "sync_reads_total",
                    "chat event reads to fill a gap, by path and source",
                ),
                &["path", "source"],
            )
            .expect("valid metric"),
        );
        let rate_limited = base.register(
            IntCounterVec::new(
                Opts::new("rate_limited_total", "requests refused by a rate limit"),
                &["action"],
            )
            .expect("valid metric"),
        );
        let ingest_refused = base.register(
            IntCounterVec::new(
                Opts::new(
                    "ingest_refused_total",
                    "writes refused because their ingest shard was full or its oldest entry waited too long",
                ),
                &["reason"],
            )
            .expect("valid metric"),
        );
        let fanout_lag = gauge(
            "fanout_lag_ms",
            "the pool's fan-out lag (commit to socket write, highest over the gateways in the last 250 ms) as this gateway sees it; writes are refused above FANOUT_MAX_LAG_MS",
        );
        let summary_chats = gauge(
            "summary_mode_chats",
            "chats in summary mode on this gateway (more than SUMMARY_MODE_RATE messages a second)",
        );
        let summarized_events = base.register(
            prometheus::IntCounter::new(
                "summarized_events_total",
                "chat events of chats in summary mode: sent only to connections focused on the chat",
            )
            .expect("valid metric"),
        );
        for reason in ["full", "lagging", "fanout"] {
            ingest_refused.with_label_values(&[reason]);
        }
        for class in CLASSES {
            for reason in [BACKPRESSURE, EVICTED, OVERFLOW] {
                dropped.with_label_values(&[class, reason]);
            }
        }
        for path in SYNC_PATHS {
            for source in [REDIS, POSTGRES] {
                sync_reads.with_label_values(&[path, source]);
            }
        }
        for action in ACTIONS {
            rate_limited.with_label_values(&[action]);
        }
        Self {
            base,
            delivery_latency,
            dropped,
            queued_frames,
            queue_max_frames,
            queued_bytes,
            sync_reads,
            rate_limited,
            ingest_refused,
            fanout_lag,
            summary_chats,
            summarized_events,
        }
    }

    /// Counts a frame of type `kind` that was not queued (both the legacy
    /// per-type counter and the per-class one).
    pub fn record_drop(&self, kind: &str, reason: &'static str) {
        self.ws_frames_dropped.with_label_values(&[kind]).inc();
        self.dropped
            .with_label_values(&[class_of(kind), reason])
            .inc();
    }

    /// Counts a refusal of the `action` bucket (`typing:<chat>` counts as
    /// `typing`; an action not in [`ACTIONS`] as `other`).
    pub fn record_rate_limited(&self, action: &str) {
        let name = action.split(':').next().unwrap_or(action);
        let label = ACTIONS.iter().find(|a| **a == name).copied();
        self.rate_limited
            .with_label_values(&[label.unwrap_or("other")])
            .inc();
    }

    /// Counts one gap read on `path` (a [`SYNC_PATHS`] entry) from `source`.
    pub fn record_sync_read(&self, path: &'static str, source: &'static str) {
        self.sync_reads.with_label_values(&[path, source]).inc();
    }

    /// Observes a socket write of an event committed at `committed_ms`. A
    /// worker clock ahead of this one reads as 0, not as a negative time.
    pub fn observe_delivery(&self, committed_ms: u64) {
        observe_delivery(&self.delivery_latency, committed_ms);
    }
}

/// What a connection writer reports per committed event it wrote: the
/// `delivery_latency_seconds` histogram and the gateway's fan-out lag
/// window ([`crate::fanout_lag`]).
#[derive(Clone)]
pub struct DeliveryObserver {
    pub latency: Histogram,
    pub lag: std::sync::Arc<crate::fanout_lag::LagWindow>,
}

impl DeliveryObserver {
    /// One socket write of an event committed at `committed_ms` (a clock
    /// ahead of ours is no lag).
    pub fn observe(&self, committed_ms: u64) {
        observe_delivery(&self.latency, committed_ms);
        self.lag.record(now_ms().saturating_sub(committed_ms));
    }
}

/// [`GatewayMetrics::observe_delivery`] on a cloned histogram.
pub fn observe_delivery(histogram: &Histogram, committed_ms: u64) {
    let waited = now_ms().saturating_sub(committed_ms);
    histogram.observe(waited as f64 / 1000.0);
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The class of a server frame type, for drop accounting.
pub fn class_of(kind: &str) -> &'static str {
    let (family, _) = kind.split_once('.').unwrap_or((kind, ""));
    match (family, kind) {
        ("typing", _) => "typing",
        ("presence", _) => "presence",
        (_, "read.receipt") => "receipt",
        (_, "notification.badge") => "badge",
        ("notification", _) => "notification",
        ("message", _) | (_, "chat.updated") => "message",
        (_, "ack" | "error") => "reply",
        ("sync", _) => "sync",
        ("session" | "token" | "membership", _) => "session",
        ("search", _) => "search",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_types_fall_into_bounded_classes() {
        for (kind, class) in [
            ("typing.indicator", "typing"),
            ("presence.changed", "presence"),
            ("read.receipt", "receipt"),
            ("notification.badge", "badge"),
            ("notification.toast", "notification"),
            ("message.new", "message"),
            ("message.reaction", "message"),
            ("chat.updated", "message"),
            ("ack", "reply"),
            ("error", "reply"),
            ("sync.response", "sync"),
            ("session.revoked", "session"),
            ("token.refresh", "session"),
            ("membership.changed", "session"),
            ("search.results", "search"),
            ("unknown", "other"),
        ] {
            assert_eq!(class_of(kind), class, "{kind}");
            assert!(CLASSES.contains(&class));
        }
    }

    #[test]
    fn every_series_exists_from_the_start() {
        let m = GatewayMetrics::new();
        let text = m.render();
        for needle in [
            r#"fechatter_outbound_frames_dropped_total{class="typing",reason="backpressure"} 0"#,
            r#"fechatter_rate_limited_total{action="send"} 0"#,
            r#"fechatter_sync_reads_total{path="sync",source="postgres"} 0"#,
            "fechatter_delivery_latency_seconds_count 0",
            "fechatter_ws_outbound_queued_frames 0",
        ] {
            assert!(text.contains(needle), "missing {needle}");
        }
        m.record_rate_limited("typing:42");
        m.record_rate_limited("made-up");
        m.record_drop("typing.indicator", BACKPRESSURE);
        let text = m.render();
        assert!(text.contains(r#"fechatter_rate_limited_total{action="typing"} 1"#));
        assert!(text.contains(r#"fechatter_rate_limited_total{action="other"} 1"#));
        assert!(text.contains(
            r#"fechatter_outbound_frames_dropped_total{class="typing",reason="backpressure"} 1"#
        ));
        assert!(text.contains(r#"fechatter_ws_frames_dropped_total{type="typing.indicator"} 1"#));
    }

    #[test]
    fn a_write_reports_its_lag_to_the_window() {
        let m = GatewayMetrics::new();
        let o = DeliveryObserver {
            latency: m.delivery_latency.clone(),
            lag: Default::default(),
        };
        for _ in 0..crate::fanout_lag::MIN_SAMPLES {
            o.observe(now_ms() - 280);
        }
        assert_eq!(o.lag.lag_ms(), 300, "280 ms falls in the 250-300 bucket");
        let ahead = DeliveryObserver {
            latency: m.delivery_latency.clone(),
            lag: Default::default(),
        };
        for _ in 0..crate::fanout_lag::MIN_SAMPLES {
            ahead.observe(now_ms() + 5_000);
        }
        assert_eq!(ahead.lag.lag_ms(), 5, "a clock ahead of ours is no lag");
        assert_eq!(m.delivery_latency.get_sample_count(), 100);
    }

    #[test]
    fn a_clock_ahead_of_ours_is_no_negative_latency() {
        let m = GatewayMetrics::new();
        m.observe_delivery(now_ms() + 60_000);
        m.observe_delivery(now_ms().saturating_sub(20));
        assert_eq!(m.delivery_latency.get_sample_count(), 2);
        assert!(m.delivery_latency.get_sample_sum() < 1.0);
    }
}
