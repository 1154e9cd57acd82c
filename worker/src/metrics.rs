//! The worker's metrics, registered in the process registry and served on
//! `/metrics`.
//!
//! The ingest backlog gauges (`ingest_consumer_lag`, `ingest_pending_entries`,
//! `ingest_oldest_entry_age_seconds`, label `shard`) are reported by the
//! worker that leases the shard and refreshed by [`crate::ingest_stats`];
//! summed over workers they cover every leased shard once. The oldest
//! entry's age is what the "ingest lag" alert watches: it grows whatever
//! the traffic when nobody commits, and stays near zero otherwise.

use fechatter_shared::metrics::Metrics;
use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};

use crate::push;

/// Worker-specific metrics, registered in the process registry.
pub struct WorkerMetrics {
    pub base: Metrics,
    pub entries: IntCounterVec,
    pub batch_seconds: Histogram,
    pub batch_failures: IntCounterVec,
    pub dead_letters: IntCounter,
    pub shards_owned: IntGauge,
    pub fenced_batches: IntCounter,
    pub shard_takes: IntCounter,
    /// Publish step of a committed batch (topic streams, badges, acks).
    pub topic_publish_seconds: Histogram,
    pub ingest_lag: IntGaugeVec,
    pub ingest_pending: IntGaugeVec,
    pub ingest_oldest_age: prometheus::GaugeVec,
    pub toasts: prometheus::IntCounter,
    pub toast_failures: prometheus::IntCounter,
    pub toast_backlog: IntGauge,
    pub evaluator_seconds: Histogram,
    pub push: push::PushMetrics,
    pub push_jobs: IntCounter,
    /// `chat_events_deleted_total`: events removed by retention.
    pub events_deleted: IntCounter,
    /// `messages_archived_total`: messages moved to the archive.
    pub messages_archived: IntCounter,
}

impl WorkerMetrics {
    pub(crate) fn new() -> Self {
        let base = Metrics::new("worker");
        Self {
            entries: base.register(
                IntCounterVec::new(
                    Opts::new("ingest_entries_total", "ingest entries by kind and outcome"),
                    &["kind", "outcome"],
                )
                .expect("valid metric"),
            ),
            batch_seconds: base.register(
                Histogram::with_opts(HistogramOpts::new(
                    "ingest_batch_seconds",
                    "commit + publish + ack time of one batch",
                ))
                .expect("valid metric"),
            ),
            batch_failures: base.register(
                IntCounterVec::new(
                    Opts::new("ingest_batch_failures_total", "failed batch attempts"),
                    &["reason"],
                )
                .expect("valid metric"),
            ),
            dead_letters: base.register(
                IntCounter::new(
                    "ingest_dead_letters_total",
                    "entries moved to the dead-letter stream",
                )
                .expect("valid metric"),
            ),
            toasts: base.register(
                IntCounter::new("notification_toasts_total", "toasts sent to user streams")
                    .expect("valid metric"),
            ),
            toast_failures: base.register(
                IntCounter::new(
                    "notification_toast_failures_total",
                    "batches whose toasts were lost to an error",
                )
                .expect("valid metric"),
            ),
            toast_backlog: base.register(
                IntGauge::new(
                    "notification_toast_backlog_batches",
                    "committed batches waiting for their toasts and pushes",
                )
                .expect("valid metric"),
            ),
            evaluator_seconds: base.register(
                Histogram::with_opts(HistogramOpts::new(
                    "notification_evaluator_seconds",
                    "time to evaluate a batch's new messages for toasts",
                ))
                .expect("valid metric"),
            ),
            push: push::PushMetrics::new(&base),
            push_jobs: base.register(
                IntCounter::new(
                    "push_jobs_queued_total",
                    "push jobs queued by the evaluator",
                )
                .expect("valid metric"),
            ),
            events_deleted: base.register(
                IntCounter::new(
                    "chat_events_deleted_total",
                    "events of the replay log deleted by retention (EVENT_RETENTION_DAYS)",
                )
                .expect("valid metric"),
            ),
            messages_archived: base.register(
                IntCounter::new(
                    "messages_archived_total",
                    "messages moved to messages_archive (workspace archiveAfterDays)",
                )
                .expect("valid metric"),
            ),
            shards_owned: base.register(
                IntGauge::new("ingest_shards_owned", "ingest shards leased by this worker")
                    .expect("valid metric"),
            ),
            fenced_batches: base.register(
                IntCounter::new(
                    "ingest_fenced_batches_total",
                    "batches refused because a newer holder has their shard",
                )
                .expect("valid metric"),
            ),
            shard_takes: base.register(
                IntCounter::new(
                    "ingest_shard_takes_total",
                    "ingest shard leases taken (each draws a new fencing epoch)",
                )
                .expect("valid metric"),
            ),
            topic_publish_seconds: base.register(
                Histogram::with_opts(
                    HistogramOpts::new(
                        "topic_publish_seconds",
                        "publish step of a committed batch: pending markers with topic streams, then badges and receipts, then acks",
                    )
                    .buckets(vec![
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                    ]),
                )
                .expect("valid metric"),
            ),
            ingest_lag: base.register(
                IntGaugeVec::new(
                    Opts::new(
                        "ingest_consumer_lag",
                        "entries of a leased ingest shard not yet read by a worker",
                    ),
                    &["shard"],
                )
                .expect("valid metric"),
            ),
            ingest_pending: base.register(
                IntGaugeVec::new(
                    Opts::new(
                        "ingest_pending_entries",
                        "entries of a leased ingest shard read but not yet acknowledged",
                    ),
                    &["shard"],
                )
                .expect("valid metric"),
            ),
            ingest_oldest_age: base.register(
                prometheus::GaugeVec::new(
                    Opts::new(
                        "ingest_oldest_entry_age_seconds",
                        "age of the oldest entry still in a leased ingest shard (0: empty)",
                    ),
                    &["shard"],
                )
                .expect("valid metric"),
            ),
            base,
        }
        .with_series()
    }

    /// Creates the fixed label sets up front, so every series exists (at 0)
    /// from the start and alerts see the first increment.
    fn with_series(self) -> Self {
        for reason in ["transient", "permanent"] {
            self.batch_failures.with_label_values(&[reason]);
        }
        self
    }
}
