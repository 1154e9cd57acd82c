//! The Fechatter background worker.
//!
//! Owns everything that must happen exactly once per event rather than once
//! per gateway: schema migrations, committing client writes from the ingest
//! streams to PostgreSQL, numbering each chat's events, announcing them on
//! the chat topic streams, maintaining unread counters, delivering the
//! e-mail outbox ([`mailer`]) and sweeping the presence of dead gateways
//! ([`presence_sweep`]). Several workers
//! may run: ingest shards are leased, one worker per shard at a time, and a
//! dead worker's shards move to a live one.

pub mod consumer;
pub mod effects;
pub mod entries;
pub mod evaluator;
pub mod lease;
pub mod mailer;
pub mod notify;
pub mod persist;
pub mod presence_sweep;
pub mod publish;
pub mod push;
pub mod read_state;
pub mod send_batch;

use std::{
    sync::{atomic::AtomicBool, Arc},
    time::Duration,
};

use anyhow::{Context, Result};
use axum::{routing::get, Router};
use fechatter_shared::{metrics::Metrics, redis::Keys, Config, MIGRATOR};
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Applies pending migrations; safe to run concurrently from several
/// processes (sqlx takes an advisory lock) and repeatedly (idempotent).
pub async fn migrate(pool: &PgPool) -> Result<()> {
    MIGRATOR.run(pool).await.context("running migrations")?;
    tracing::info!("database schema is up to date");
    Ok(())
}

/// Fault injection for tests of crash recovery. Production never sets it.
#[derive(Default)]
pub struct Hooks {
    /// Die right after the next batch commits: no publish, no ack, leases
    /// left to expire — what a killed process leaves behind.
    pub crash_after_commit: AtomicBool,
}

/// Worker-specific metrics, registered in the process registry.
pub struct WorkerMetrics {
    pub base: Metrics,
    pub entries: IntCounterVec,
    pub batch_seconds: Histogram,
    pub batch_failures: IntCounterVec,
    pub dead_letters: IntCounter,
    pub shards_owned: IntGauge,
    pub toasts: prometheus::IntCounter,
    pub toast_failures: prometheus::IntCounter,
    pub evaluator_seconds: Histogram,
    pub push: push::PushMetrics,
    pub push_jobs: IntCounter,
}

impl WorkerMetrics {
    fn new() -> Self {
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
            base,
        }
    }
}

/// The push worker of this process (see [`push`]), with its own
/// connection for blocking reads (a blocked connection delays every other
/// command on it, and the ingest consumer has its own).
async fn push_worker(worker: &Worker) -> Result<push::PushWorker> {
    let blocking =
        fechatter_shared::redis::connect(&worker.config.redis_url, Duration::from_secs(10)).await?;
    Ok(push::PushWorker {
        redis: worker.redis.clone(),
        blocking,
        pool: worker.pool.clone(),
        keys: worker.keys.clone(),
        consumer: worker.config.instance_id.clone(),
        providers: push::providers(&worker.config.push)?,
        metrics: worker.metrics.push.clone(),
    })
}

/// `worker push`: only the push worker (and `/metrics`), to scale push
/// delivery apart from message persistence.
pub async fn run_push(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<()> {
    let pool = fechatter_shared::store::connect(&config).await?;
    let redis = fechatter_shared::redis::connect(&config.redis_url, Duration::from_secs(5)).await?;
    let blocking =
        fechatter_shared::redis::connect(&config.redis_url, Duration::from_secs(10)).await?;
    fechatter_shared::scripts::load_all(&redis)
        .await
        .context("loading Lua scripts")?;
    let worker = Worker {
        keys: Keys::new(config.redis_prefix.clone()),
        metrics: WorkerMetrics::new(),
        config,
        pool,
        redis,
        blocking,
        hooks: Arc::new(Hooks::default()),
    };
    let metrics = worker.metrics.base.clone();
    let app = Router::new()
        .route("/metrics", get(move || async move { metrics.render() }))
        .route("/health/simple", get(|| async { "ok" }));
    let http_stop = CancellationToken::new();
    let serve =
        axum::serve(listener, app).with_graceful_shutdown(http_stop.clone().cancelled_owned());
    let http = tokio::spawn(async move { serve.await });
    tracing::info!(instance = %worker.config.instance_id, "push worker started");
    push_worker(&worker).await?.run(shutdown).await;
    http_stop.cancel();
    let _ = http.await;
    tracing::info!("push worker stopped");
    Ok(())
}

/// A running worker's connections and settings.
pub struct Worker {
    pub config: Config,
    pub pool: PgPool,
    /// Commands (pipelined, shared).
    pub redis: fred::prelude::Client,
    /// Blocking reads (XREADGROUP BLOCK) get their own connection so they
    /// never delay other commands.
    pub blocking: fred::prelude::Client,
    pub keys: Keys,
    pub metrics: WorkerMetrics,
    pub hooks: Arc<Hooks>,
}

/// Migrates, then works until `shutdown` fires. Serves `/metrics` and
/// `/health/simple` on `listener`.
pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> Result<()> {
    run_with_hooks(config, listener, shutdown, Arc::new(Hooks::default())).await
}

pub async fn run_with_hooks(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
    hooks: Arc<Hooks>,
) -> Result<()> {
    let pool = fechatter_shared::store::connect(&config).await?;
    migrate(&pool).await?;
    let redis = fechatter_shared::redis::connect(&config.redis_url, Duration::from_secs(5)).await?;
    let blocking =
        fechatter_shared::redis::connect(&config.redis_url, Duration::from_secs(10)).await?;
    fechatter_shared::scripts::load_all(&redis)
        .await
        .context("loading Lua scripts")?;
    let keys = Keys::new(config.redis_prefix.clone());
    fechatter_shared::redis::check_deployment(&redis, &keys, config.ingest_shards).await?;
    let worker = Arc::new(Worker {
        keys,
        metrics: WorkerMetrics::new(),
        config,
        pool,
        redis,
        blocking,
        hooks,
    });

    let http_stop = CancellationToken::new();
    let metrics = worker.metrics.base.clone();
    let app = Router::new()
        .route("/metrics", get(move || async move { metrics.render() }))
        .route("/health/simple", get(|| async { "ok" }));
    let serve =
        axum::serve(listener, app).with_graceful_shutdown(http_stop.clone().cancelled_owned());
    let http = tokio::spawn(async move { serve.await });

    let mail_stop = CancellationToken::new();
    let mailer = mailer::Mailer::new(
        worker.pool.clone(),
        worker.config.mail.clone(),
        mailer::MailMetrics::new(&worker.metrics.base),
    );
    let mail = tokio::spawn(mailer.run(mail_stop.clone()));
    let sweeper = presence_sweep::Sweeper {
        redis: worker.redis.clone(),
        pool: worker.pool.clone(),
        keys: worker.keys.clone(),
        node_ttl: worker.config.presence_node_ttl,
        instance: worker.config.instance_id.clone(),
    };
    let sweep = tokio::spawn(sweeper.run(mail_stop.clone()));
    let pusher = push_worker(&worker).await?;
    let pushing = tokio::spawn(pusher.run(mail_stop.clone()));

    let lease_stop = CancellationToken::new();
    let (owned, leases) = lease::spawn(
        worker.redis.clone(),
        worker.keys.clone(),
        worker.config.ingest_shards,
        worker.config.instance_id.clone(),
        worker.config.lease_ttl,
        lease_stop.clone(),
    );
    tracing::info!(instance = %worker.config.instance_id, "worker started");
    let outcome = worker.consume(owned, shutdown).await;
    mail_stop.cancel();
    let _ = mail.await;
    let _ = sweep.await;
    let _ = pushing.await;
    http_stop.cancel();
    let _ = http.await;
    match outcome {
        Ok(()) => {
            // Finished the current batch: hand the shards over at once.
            lease_stop.cancel();
            let _ = leases.await;
            tracing::info!("worker stopped");
            Ok(())
        }
        Err(e) => {
            // A crash releases nothing: leases expire, entries stay pending.
            leases.abort();
            Err(e.into())
        }
    }
}
