//! The Fechatter background worker.
//!
//! Owns everything that must happen exactly once per event rather than once
//! per gateway: schema migrations, committing client writes from the ingest
//! streams to PostgreSQL, numbering each chat's events, announcing them on
//! the chat topic streams, maintaining unread counters, delivering the
//! e-mail outbox ([`mailer`]), sweeping the presence of dead gateways
//! ([`presence_sweep`]) and, with the Meilisearch search backend, keeping
//! its index current (`indexer`, feature `meilisearch`). Several workers
//! may run: ingest shards are leased, one worker per shard at a time, and a
//! dead worker's shards move to a live one.

pub mod archival;
pub mod chat_change;
pub mod claims;
pub mod consumer;
pub mod effects;
pub mod entries;
pub mod evaluator;
pub mod here;
#[cfg(feature = "meilisearch")]
pub mod index_rebuild;
#[cfg(feature = "meilisearch")]
pub mod indexer;
pub mod ingest_stats;
pub mod lease;
pub mod mailer;
pub mod metrics;
pub mod notify;
pub mod persist;
pub mod presence_sweep;
pub mod publish;
pub mod push;
pub mod read_state;
pub mod record;
pub mod retention;
pub mod search_events;
pub mod send_batch;
pub mod send_checks;
pub mod settle;
pub mod shard_reader;
pub mod toaster;
pub mod trace;

use std::{
    sync::{atomic::AtomicBool, Arc},
    time::Duration,
};

use anyhow::{Context, Result};
use axum::{routing::get, Router};
use fechatter_shared::{config::SearchBackend, redis::Keys, Config, MIGRATOR};
pub use metrics::WorkerMetrics;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// `worker migrate`: applies pending migrations, then builds the search
/// index if it is missing or invalid; safe to run concurrently from
/// several processes (sqlx takes an advisory lock; one process builds the
/// index) and repeatedly (idempotent). `pool` must reach PostgreSQL
/// directly (`store::connect_direct`), never through a transaction pooler.
pub async fn migrate(pool: &PgPool) -> Result<()> {
    MIGRATOR.run(pool).await.context("running migrations")?;
    fechatter_shared::store::text_index::ensure_index(pool)
        .await
        .context("building the search index")?;
    tracing::info!("database schema is up to date");
    Ok(())
}

/// The migrations for `worker run`: the schema at once, the search index
/// in the background (on a large table a concurrent build takes minutes,
/// and messages must flow meanwhile; search works without the index,
/// only slower). Both on their own direct connection
/// (`store::connect_direct`: session advisory locks must not go through a
/// transaction pooler), closed when done.
async fn migrate_for_run(config: &Config) -> Result<()> {
    let pool = fechatter_shared::store::connect_direct(config).await?;
    MIGRATOR.run(&pool).await.context("running migrations")?;
    tokio::spawn(async move {
        if let Err(e) = fechatter_shared::store::text_index::ensure_index(&pool).await {
            e.log();
            tracing::error!("the search index could not be built; `worker migrate` retries");
        }
        pool.close().await;
    });
    Ok(())
}

/// Fault injection for tests of crash recovery. Production never sets it.
#[derive(Default)]
pub struct Hooks {
    /// Die right after the next batch commits: no publish, no ack, leases
    /// left to expire — what a killed process leaves behind.
    pub crash_after_commit: AtomicBool,
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

/// The search indexer of this process (see `indexer`), started only with
/// the Meilisearch backend, with its own connection for blocking reads.
#[cfg(feature = "meilisearch")]
async fn spawn_indexer(
    worker: &Worker,
    stop: CancellationToken,
) -> Result<Option<tokio::task::JoinHandle<()>>> {
    if worker.config.search.backend != SearchBackend::Meilisearch {
        return Ok(None);
    }
    let blocking =
        fechatter_shared::redis::connect(&worker.config.redis_url, Duration::from_secs(10)).await?;
    let indexer = indexer::Indexer {
        redis: worker.redis.clone(),
        blocking,
        pool: worker.pool.clone(),
        keys: worker.keys.clone(),
        consumer: worker.config.instance_id.clone(),
        index: fechatter_shared::search::meili::MeiliIndex::new(&worker.config.search)?,
        lease_ttl: worker.config.lease_ttl,
        metrics: indexer::IndexerMetrics::new(&worker.metrics.base),
    };
    Ok(Some(tokio::spawn(indexer.run(stop))))
}

#[cfg(not(feature = "meilisearch"))]
async fn spawn_indexer(
    worker: &Worker,
    _: CancellationToken,
) -> Result<Option<tokio::task::JoinHandle<()>>> {
    anyhow::ensure!(
        worker.config.search.backend != SearchBackend::Meilisearch,
        "{NO_MEILISEARCH}"
    );
    Ok(None)
}

#[cfg(not(feature = "meilisearch"))]
const NO_MEILISEARCH: &str = "SEARCH_BACKEND=meilisearch, but this worker was built without the \
     `meilisearch` feature (build it with `cargo build --release -p worker --features meilisearch`)";

/// `worker reindex`: rebuilds the Meilisearch index from PostgreSQL (see
/// `index_rebuild::reindex`); an error with the PostgreSQL backend or in a
/// build without the `meilisearch` feature.
pub async fn reindex(config: Config) -> Result<()> {
    anyhow::ensure!(
        config.search.backend == SearchBackend::Meilisearch,
        "SEARCH_BACKEND is postgres: PostgreSQL search reads the messages table itself and has \
         no index to rebuild (set SEARCH_BACKEND=meilisearch and MEILI_URL)"
    );
    rebuild_index(config).await
}

#[cfg(feature = "meilisearch")]
async fn rebuild_index(config: Config) -> Result<()> {
    index_rebuild::reindex(config).await
}

#[cfg(not(feature = "meilisearch"))]
async fn rebuild_index(_: Config) -> Result<()> {
    anyhow::bail!("{NO_MEILISEARCH}")
}

/// `worker push`: only the push worker (and `/metrics`), to scale push
/// delivery apart from message persistence.
pub async fn run_push(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<()> {
    let worker = Worker::connect(config, Arc::new(Hooks::default())).await?;
    let http = serve_metrics(listener, &worker.metrics.base);
    let probe_stop = probe_dependencies(&worker);
    tracing::info!(instance = %worker.config.instance_id, "push worker started");
    push_worker(&worker).await?.run(shutdown).await;
    probe_stop.cancel();
    http.stop().await;
    tracing::info!("push worker stopped");
    Ok(())
}

/// `/metrics` and `/health/simple` on `listener`, until stopped.
struct MetricsServer {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl MetricsServer {
    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

fn serve_metrics(
    listener: TcpListener,
    metrics: &fechatter_shared::metrics::Metrics,
) -> MetricsServer {
    let metrics = metrics.clone();
    let app = Router::new()
        .route("/metrics", get(move || async move { metrics.render() }))
        .route("/health/simple", get(|| async { "ok" }));
    let stop = CancellationToken::new();
    let serve = axum::serve(listener, app).with_graceful_shutdown(stop.clone().cancelled_owned());
    MetricsServer {
        stop,
        task: tokio::spawn(async move { serve.await }),
    }
}

/// Keeps `dependency_up` current until the returned token is cancelled.
fn probe_dependencies(worker: &Worker) -> CancellationToken {
    let stop = CancellationToken::new();
    fechatter_shared::health::spawn_probe(
        worker.metrics.base.dependency_up.clone(),
        worker.pool.clone(),
        worker.redis.clone(),
        stop.clone(),
    );
    stop
}

impl Worker {
    /// Connects PostgreSQL and two Redis clients (commands; blocking
    /// reads) and loads the Lua scripts.
    async fn connect(config: Config, hooks: Arc<Hooks>) -> Result<Self> {
        let pool =
            fechatter_shared::store::connect(&config, fechatter_shared::config::DbRole::Worker)
                .await?;
        let redis =
            fechatter_shared::redis::connect(&config.redis_url, Duration::from_secs(5)).await?;
        let blocking =
            fechatter_shared::redis::connect(&config.redis_url, Duration::from_secs(10)).await?;
        fechatter_shared::scripts::load_all(&redis)
            .await
            .context("loading Lua scripts")?;
        Ok(Self {
            keys: Keys::new(config.redis_prefix.clone()),
            metrics: WorkerMetrics::new(),
            config,
            pool,
            redis,
            blocking,
            hooks,
            toast_queue: toaster::ToastQueue::default(),
        })
    }
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
    /// Committed batches waiting for their toasts ([`toaster`]).
    pub toast_queue: toaster::ToastQueue,
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
    let worker = Worker::connect(config, hooks).await?;
    migrate_for_run(&worker.config).await?;
    fechatter_shared::redis::check_deployment(
        &worker.redis,
        &worker.keys,
        worker.config.ingest_shards,
    )
    .await?;
    let worker = Arc::new(worker);
    let mail_stop = CancellationToken::new();
    let indexing = spawn_indexer(&worker, mail_stop.clone()).await?;
    let http = serve_metrics(listener, &worker.metrics.base);
    let probe_stop = probe_dependencies(&worker);

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
    let retention = retention::Retention {
        pool: worker.pool.clone(),
        redis: worker.redis.clone(),
        keys: worker.keys.clone(),
        keep: worker.config.event_retention,
        instance: worker.config.instance_id.clone(),
        deleted: worker.metrics.events_deleted.clone(),
        archived: worker.metrics.messages_archived.clone(),
    };
    let retaining = tokio::spawn(retention.run(mail_stop.clone()));

    let lease_stop = CancellationToken::new();
    let (owned, leases) = lease::spawn(
        lease::Leases {
            redis: worker.redis.clone(),
            pool: worker.pool.clone(),
            keys: worker.keys.clone(),
            shards: worker.config.ingest_shards,
            holder: worker.config.instance_id.clone(),
            ttl: worker.config.lease_ttl,
            takes: worker.metrics.shard_takes.clone(),
        },
        lease_stop.clone(),
    );
    let backlog = ingest_stats::spawn(worker.clone(), owned.clone(), mail_stop.clone());
    tracing::info!(instance = %worker.config.instance_id, "worker started");
    let outcome = worker.consume(owned, shutdown).await;
    mail_stop.cancel();
    probe_stop.cancel();
    let _ = backlog.await;
    let _ = mail.await;
    let _ = sweep.await;
    let _ = pushing.await;
    let _ = retaining.await;
    if let Some(indexing) = indexing {
        let _ = indexing.await;
    }
    http.stop().await;
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
