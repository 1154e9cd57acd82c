//! The worker's metrics, registered in the process registry and served on
//! `/metrics`.

use fechatter_shared::metrics::Metrics;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts};

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
    pub toasts: prometheus::IntCounter,
    pub toast_failures: prometheus::IntCounter,
    pub evaluator_seconds: Histogram,
    pub push: push::PushMetrics,
    pub push_jobs: IntCounter,
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
            base,
        }
    }
}
