//! The search indexer (Meilisearch backend only, feature `meilisearch`):
//! applies the search index stream ([`crate::search_events`]) to
//! Meilisearch (`worker reindex`, [`crate::index_rebuild`], rebuilds the
//! index from PostgreSQL).
//!
//! Each batch (up to [`BATCH`] entries) names messages whose document
//! changed. The indexer loads their *current* state from PostgreSQL
//! ([`fechatter_shared::store::search_index::documents`]), replaces the
//! documents of live ones, deletes those of messages deleted or gone, and
//! only then acknowledges the entries: an entry is acked once its change
//! is in the index, never before. Because the current state is loaded, an
//! entry repeated or processed late does no harm.
//!
//! One indexer runs at a time (a lease, like the ingest shards'): two
//! indexers could load one message before and after an edit and apply
//! the two states in the wrong order. Every worker of the consumer group
//! `indexers` waits for the lease; the holder first claims every entry
//! left pending by an earlier holder (XAUTOCLAIM), then reads new ones.
//!
//! Failure handling, in the style of the ingest consumer:
//! * Meilisearch, PostgreSQL or Redis unavailable (or a Meilisearch task
//!   refused): the batch is retried with backoff (up to 5 s), forever;
//!   nothing is acked, nothing is lost. `fechatter_search_index_lag_seconds`
//!   grows meanwhile, and `fechatter_search_index_failures_total` counts
//!   the attempts.
//! * This worker dies: its lease expires; the next holder claims the
//!   entries it left pending.
//! * The lease is lost (Redis unreachable, taken by `worker reindex`): the
//!   batch in hand stops before its next write and stays pending.
//! * An entry without a readable message id: logged and acknowledged
//!   (there is nothing to index).
//! * The indexer is stopped for longer than the stream keeps entries
//!   ([`crate::search_events::STREAM_MAX_LEN`] changes): run `worker
//!   reindex`.

use std::{
    collections::{BTreeSet, HashSet},
    time::Duration,
};

use anyhow::Context;
use fechatter_shared::{
    redis::Keys,
    scripts,
    search::meili::{MeiliIndex, MessageDocument},
    store::search_index,
};
use fred::prelude::*;
use prometheus::{Gauge, IntCounter, IntCounterVec, Opts};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::{
    entries::{parse_xread, RawEntry},
    search_events::MESSAGE_FIELD,
};

/// The consumer group of indexers.
pub const GROUP: &str = "indexers";
/// Most entries per batch.
pub const BATCH: usize = 500;
/// How long a read waits for new entries.
const BLOCK: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct IndexerMetrics {
    /// Now minus the stream time of the last applied entry; 0 when caught
    /// up or when this worker does not hold the indexer lease.
    pub lag: Gauge,
    /// Documents written, by operation (`upsert`, `delete`).
    pub documents: IntCounterVec,
    /// Batch attempts that failed (and will be retried).
    pub failures: IntCounter,
}

impl IndexerMetrics {
    pub fn new(base: &fechatter_shared::metrics::Metrics) -> Self {
        Self {
            lag: base.register(
                Gauge::new(
                    "search_index_lag_seconds",
                    "age of the last search index change applied to Meilisearch (0 when caught up)",
                )
                .expect("valid metric"),
            ),
            documents: base.register(
                IntCounterVec::new(
                    Opts::new(
                        "search_indexed_documents_total",
                        "documents written to Meilisearch by operation",
                    ),
                    &["op"],
                )
                .expect("valid metric"),
            ),
            failures: base.register(
                IntCounter::new(
                    "search_index_failures_total",
                    "search index batch attempts that failed and will be retried",
                )
                .expect("valid metric"),
            ),
        }
    }
}

/// What one batch changed in the index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    pub upserted: usize,
    pub deleted: usize,
}

/// Brings the documents of messages `ids` to their current state: live
/// messages are (re)written, deleted or unknown ones removed. Returns once
/// Meilisearch applied both. Safe to repeat.
pub async fn apply_ids(pool: &PgPool, index: &MeiliIndex, ids: &[i64]) -> anyhow::Result<Applied> {
    let ids: Vec<i64> = ids
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let rows = search_index::documents(pool, &ids)
        .await
        .context("loading messages to index")?;
    let live: HashSet<i64> = rows.iter().map(|r| r.id).collect();
    let docs: Vec<MessageDocument> = rows.into_iter().map(MessageDocument::from).collect();
    let gone: Vec<i64> = ids.into_iter().filter(|id| !live.contains(id)).collect();
    index.upsert(&docs).await?;
    index.delete(&gone).await?;
    Ok(Applied {
        upserted: docs.len(),
        deleted: gone.len(),
    })
}

/// Renews `key` for `holder` every third of `ttl` until `stop`; cancels
/// `stop` when the lease is lost or cannot be renewed.
pub(crate) fn spawn_renewal(
    redis: Client,
    key: String,
    holder: String,
    ttl: Duration,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(ttl / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            match scripts::acquire_lease(&redis, &key, &holder, ttl.as_millis() as u64).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!("search indexer lease taken by another holder; pausing");
                    stop.cancel();
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "search indexer lease not renewed; pausing");
                    stop.cancel();
                    return;
                }
            }
        }
    })
}

/// The search indexer of one worker.
pub struct Indexer {
    pub redis: Client,
    /// For the blocking XREADGROUP.
    pub blocking: Client,
    pub pool: PgPool,
    pub keys: Keys,
    /// Consumer name and lease holder (the worker's instance id).
    pub consumer: String,
    pub index: MeiliIndex,
    pub lease_ttl: Duration,
    pub metrics: IndexerMetrics,
}

impl Indexer {
    /// Applies the index settings (retried until Meilisearch accepts
    /// them), then indexes whenever this worker holds the lease, until
    /// `shutdown`. The batch in hand at shutdown stays pending.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(500);
        loop {
            let applied = tokio::select! {
                r = self.index.ensure_settings() => r,
                _ = shutdown.cancelled() => return,
            };
            match applied {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = ?e, retry_in = ?backoff, "Meilisearch index settings not applied; retrying");
                    if pause(&shutdown, &mut backoff).await {
                        return;
                    }
                }
            }
        }
        tracing::info!("search indexer ready");
        let ttl_ms = self.lease_ttl.as_millis() as u64;
        while !shutdown.is_cancelled() {
            match scripts::acquire_lease(
                &self.redis,
                &self.keys.search_index_lease(),
                &self.consumer,
                ttl_ms,
            )
            .await
            {
                Ok(true) => self.hold(&shutdown).await,
                Ok(false) => self.metrics.lag.set(0.0),
                Err(e) => tracing::warn!(error = %e, "search indexer lease unavailable"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.lease_ttl / 3) => {}
                _ = shutdown.cancelled() => {}
            }
        }
    }

    /// Indexes while the lease lasts; releases it on shutdown.
    async fn hold(&self, shutdown: &CancellationToken) {
        tracing::info!("search indexer lease taken");
        let stop = shutdown.child_token();
        let renew = spawn_renewal(
            self.redis.clone(),
            self.keys.search_index_lease(),
            self.consumer.clone(),
            self.lease_ttl,
            stop.clone(),
        );
        self.work(&stop).await;
        stop.cancel();
        let _ = renew.await;
        self.metrics.lag.set(0.0);
        if shutdown.is_cancelled() {
            let released = scripts::release_lease(
                &self.redis,
                &self.keys.search_index_lease(),
                &self.consumer,
            )
            .await;
            if let Err(e) = released {
                tracing::warn!(error = %e, "releasing the search indexer lease failed; it expires on its own");
            }
        }
    }

    /// Claims what earlier holders left pending, then reads new entries,
    /// until `stop`.
    async fn work(&self, stop: &CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        let mut claimed = false;
        while !stop.is_cancelled() {
            let read = async {
                if !claimed {
                    let pending = self.claim_pending().await?;
                    claimed = true;
                    if !pending.is_empty() {
                        tracing::info!(
                            entries = pending.len(),
                            "claimed pending search index entries"
                        );
                    }
                    return Ok(pending);
                }
                self.read().await
            };
            let entries: Result<Vec<RawEntry>, Error> = tokio::select! {
                r = read => r,
                _ = stop.cancelled() => return,
            };
            match entries {
                Ok(entries) if entries.is_empty() => self.metrics.lag.set(0.0),
                Ok(entries) => {
                    backoff = Duration::from_millis(100);
                    for chunk in entries.chunks(BATCH) {
                        self.process(chunk, stop).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading the search index stream failed");
                    if pause(stop, &mut backoff).await {
                        return;
                    }
                }
            }
        }
    }

    async fn ensure_group(&self) -> Result<(), Error> {
        crate::entries::ensure_group(&self.redis, &self.keys.search_index(), GROUP).await
    }

    /// Every entry pending in the group, whoever read it: the lease says
    /// its reader is no longer indexing.
    async fn claim_pending(&self) -> Result<Vec<RawEntry>, Error> {
        self.ensure_group().await?;
        let stream = self.keys.search_index();
        crate::entries::claim_all(&self.redis, &stream, GROUP, &self.consumer, BATCH as u64).await
    }

    async fn read(&self) -> Result<Vec<RawEntry>, Error> {
        self.ensure_group().await?;
        let reply: Value = self
            .blocking
            .xreadgroup(
                GROUP,
                &self.consumer,
                Some(BATCH as u64),
                Some(BLOCK.as_millis() as u64),
                false,
                vec![self.keys.search_index()],
                vec![">"],
            )
            .await?;
        Ok(parse_xread(reply).into_iter().map(|(_, e)| e).collect())
    }

    /// Applies one batch and acknowledges it, retrying until done or
    /// `stop` (then the entries stay pending).
    async fn process(&self, entries: &[RawEntry], stop: &CancellationToken) {
        let ids = message_ids(entries);
        let oldest = entries.first().and_then(|e| stream_millis(&e.id));
        let newest = entries.last().and_then(|e| stream_millis(&e.id));
        let mut backoff = Duration::from_millis(100);
        loop {
            if stop.is_cancelled() {
                return;
            }
            match self.try_batch(entries, &ids, stop).await {
                Ok(Some(applied)) => {
                    let docs = &self.metrics.documents;
                    docs.with_label_values(&["upsert"])
                        .inc_by(applied.upserted as u64);
                    docs.with_label_values(&["delete"])
                        .inc_by(applied.deleted as u64);
                    self.metrics.lag.set(lag_seconds(newest));
                    return;
                }
                Ok(None) => return,
                Err(e) => {
                    self.metrics.failures.inc();
                    self.metrics.lag.set(lag_seconds(oldest));
                    tracing::warn!(error = ?e, entries = entries.len(), retry_in = ?backoff, "search index batch not applied; retrying");
                    if pause(stop, &mut backoff).await {
                        return;
                    }
                }
            }
        }
    }

    /// None when stopped before writing.
    async fn try_batch(
        &self,
        entries: &[RawEntry],
        ids: &[i64],
        stop: &CancellationToken,
    ) -> anyhow::Result<Option<Applied>> {
        let applied = tokio::select! {
            r = apply_ids(&self.pool, &self.index, ids) => r?,
            // Stop before a write that another holder might overtake; a
            // write already sent completes or is repeated later.
            _ = stop.cancelled() => return Ok(None),
        };
        let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        let _: i64 = self
            .redis
            .xack(self.keys.search_index(), GROUP, ids.clone())
            .await?;
        let _: i64 = self.redis.xdel(self.keys.search_index(), ids).await?;
        Ok(Some(applied))
    }
}

/// The message ids of `entries`; unreadable entries are logged and left
/// out (they are acknowledged with their batch).
pub fn message_ids(entries: &[RawEntry]) -> Vec<i64> {
    entries
        .iter()
        .filter_map(|e| {
            let id = e
                .fields
                .iter()
                .find(|(k, _)| k == MESSAGE_FIELD)
                .and_then(|(_, v)| v.parse().ok());
            if id.is_none() {
                tracing::warn!(entry = %e.id, "search index entry without a message id; skipped");
            }
            id
        })
        .collect()
}

/// The time part (ms) of a stream entry id `<ms>-<seq>`.
fn stream_millis(id: &str) -> Option<i64> {
    id.split('-').next()?.parse().ok()
}

fn lag_seconds(entry_ms: Option<i64>) -> f64 {
    let Some(ms) = entry_ms else { return 0.0 };
    (chrono::Utc::now().timestamp_millis() - ms).max(0) as f64 / 1000.0
}

/// Sleeps `backoff` (then doubles it, up to 5 s); true when `stop` fired.
async fn pause(stop: &CancellationToken, backoff: &mut Duration) -> bool {
    let stopped = tokio::select! {
        _ = tokio::time::sleep(*backoff) => false,
        _ = stop.cancelled() => true,
    };
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
    stopped
}
