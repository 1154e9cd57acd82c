//! The ingest consumer: reads the shards this worker leases, commits each
//! batch in one PostgreSQL transaction, announces it, and only then
//! acknowledges the stream entries.
//!
//! Failure handling, in order of likelihood:
//! * PostgreSQL or Redis unavailable: the batch is retried with backoff,
//!   forever; entries stay pending, nothing is acked, nothing is lost.
//! * This worker dies mid-batch: its leases expire; the worker that takes
//!   a shard next claims the shard's pending entries (XAUTOCLAIM) and
//!   processes them again; idempotent writes make that exactly-once.
//! * A poison entry (unparsable, or failing the same way every time): it is
//!   isolated from its batch, retried alone, then moved to the dead-letter
//!   stream with an `internal` error to its sender.
//! * This worker lost a shard without noticing (Redis restarted and another
//!   worker took the lease, or this one stalled past the lease lifetime):
//!   its commit fails the shard's fencing epoch, or its topic publish meets
//!   a newer epoch ([`BatchError::Fenced`]). Nothing is acked; it stops
//!   processing the shard until the lease task hands it a new epoch. The
//!   entries it read stay pending under its name: the holder sweeps its
//!   shards for entries idle longer than a third of the lease lifetime and
//!   claims them ([`Worker::sweep`]), so they are not stranded until the
//!   next takeover.
//!
//! Reading and claiming entries is [`crate::claims`]; acknowledging and
//! dead-lettering them, [`crate::settle`].

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use fechatter_shared::{config::SearchBackend, ingest::IngestEntry, AppError};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{persist, publish, Worker};

pub use crate::entries::Pending;

/// Why a batch did not complete.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("backing service unavailable: {0}")]
    Transient(AppError),
    #[error("batch failed: {0}")]
    Permanent(AppError),
    #[error("injected crash after commit (test hook)")]
    InjectedCrash,
    #[error("shards {0:?} are held by a newer epoch")]
    Fenced(Vec<u32>),
}

impl From<AppError> for BatchError {
    fn from(e: AppError) -> Self {
        if e.is_transient() {
            Self::Transient(e)
        } else {
            Self::Permanent(e)
        }
    }
}

impl Worker {
    /// Consumes until `shutdown`; returns early only on an injected crash.
    /// The toaster ([`crate::toaster`]) runs beside it and sends what is
    /// queued before this returns.
    pub async fn consume(
        &self,
        owned: watch::Receiver<BTreeMap<u32, i64>>,
        shutdown: CancellationToken,
    ) -> Result<(), BatchError> {
        let done = CancellationToken::new();
        let consuming = async {
            let outcome = self.consume_batches(owned, shutdown).await;
            done.cancel();
            outcome
        };
        let (outcome, ()) = tokio::join!(consuming, self.run_toaster(done.clone()));
        outcome
    }

    async fn consume_batches(
        &self,
        mut owned: watch::Receiver<BTreeMap<u32, i64>>,
        shutdown: CancellationToken,
    ) -> Result<(), BatchError> {
        // Shard -> epoch, taken over (pending entries claimed) with it.
        let mut claimed: BTreeMap<u32, i64> = BTreeMap::new();
        // Shard -> epoch found stale: not processed until a new epoch.
        let mut fenced: BTreeMap<u32, i64> = BTreeMap::new();
        let sweep_every = self.config.lease_ttl / 3;
        let mut swept = tokio::time::Instant::now();
        let mut reader = crate::shard_reader::ShardReader::for_url(&self.config.redis_url);
        while !shutdown.is_cancelled() {
            let mut shards = owned.borrow_and_update().clone();
            fenced.retain(|s, e| shards.get(s) == Some(e));
            shards.retain(|s, _| !fenced.contains_key(s));
            self.metrics.shards_owned.set(shards.len() as i64);
            claimed.retain(|s, e| shards.get(s) == Some(e));
            if shards.is_empty() {
                tokio::select! {
                    _ = owned.changed() => {}
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
                continue;
            }
            let new: Vec<(u32, i64)> = shards
                .iter()
                .filter(|(s, _)| !claimed.contains_key(s))
                .map(|(&s, &e)| (s, e))
                .collect();
            for (shard, epoch) in new {
                match self.take_over(shard, epoch).await {
                    Ok(pending) => {
                        if !pending.is_empty() {
                            tracing::info!(
                                shard,
                                entries = pending.len(),
                                "reclaimed pending entries"
                            );
                        }
                        for chunk in pending.chunks(self.config.batch_size) {
                            let span = crate::trace::batch_span(chunk);
                            self.process_fenced(chunk.to_vec(), &shutdown, &mut fenced)
                                .instrument(span)
                                .await?;
                        }
                        claimed.insert(shard, epoch);
                    }
                    Err(e) => {
                        tracing::warn!(shard, error = %e, "taking over shard failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
            claimed.retain(|s, _| !fenced.contains_key(s));
            if claimed.is_empty() {
                continue;
            }
            if swept.elapsed() >= sweep_every {
                swept = tokio::time::Instant::now();
                self.sweep_all(&claimed, sweep_every, &shutdown, &mut fenced)
                    .await?;
            }
            let batch = tokio::select! {
                r = self.read(&mut reader, &claimed) => r,
                _ = shutdown.cancelled() => break,
            };
            match batch {
                Ok(batch) if !batch.is_empty() => {
                    let span = crate::trace::batch_span(&batch);
                    self.process_fenced(batch, &shutdown, &mut fenced)
                        .instrument(span)
                        .await?
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "reading ingest streams failed");
                    if e.details().contains("NOGROUP") {
                        // Redis lost the stream (restart without persistence):
                        // take the shards over again, which re-creates groups.
                        claimed.clear();
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        Ok(())
    }

    /// [`Self::process`], noting the shards found held by a newer epoch.
    async fn process_fenced(
        &self,
        batch: Vec<Pending>,
        shutdown: &CancellationToken,
        fenced: &mut BTreeMap<u32, i64>,
    ) -> Result<(), BatchError> {
        let epochs: BTreeMap<u32, i64> = batch.iter().map(|p| (p.shard, p.epoch)).collect();
        match self.process(batch, shutdown).await {
            Err(BatchError::Fenced(shards)) => {
                self.metrics.fenced_batches.inc();
                tracing::warn!(?shards, "lost shards to a newer holder; not acking, not processing them until a new lease");
                for shard in shards {
                    if let Some(&epoch) = epochs.get(&shard) {
                        fenced.insert(shard, epoch);
                    }
                }
                Ok(())
            }
            other => other,
        }
    }

    /// Sweeps every claimed shard ([`Self::sweep`]) and processes what it
    /// claimed.
    async fn sweep_all(
        &self,
        claimed: &BTreeMap<u32, i64>,
        idle: Duration,
        shutdown: &CancellationToken,
        fenced: &mut BTreeMap<u32, i64>,
    ) -> Result<(), BatchError> {
        for (&shard, &epoch) in claimed {
            let stuck = match self.sweep(shard, epoch, idle).await {
                Ok(stuck) => stuck,
                Err(e) => {
                    tracing::warn!(shard, error = %e, "sweeping stuck entries failed");
                    continue;
                }
            };
            for chunk in stuck.chunks(self.config.batch_size) {
                let span = crate::trace::batch_span(chunk);
                self.process_fenced(chunk.to_vec(), shutdown, fenced)
                    .instrument(span)
                    .await?;
            }
        }
        Ok(())
    }

    /// Processes a batch to completion: retried while services are down,
    /// split up when an entry in it fails permanently.
    pub(crate) async fn process(
        &self,
        batch: Vec<Pending>,
        shutdown: &CancellationToken,
    ) -> Result<(), BatchError> {
        let (good, poison): (Vec<_>, Vec<_>) = batch.into_iter().partition(|p| p.entry.is_ok());
        for p in poison {
            let why = p
                .entry
                .as_ref()
                .err()
                .map(|u| u.why.clone())
                .unwrap_or_default();
            self.dead_letter_until_done(&p, &why, shutdown).await;
        }
        if good.is_empty() {
            return Ok(());
        }
        let mut backoff = Duration::from_millis(100);
        let mut permanent_failures = 0;
        loop {
            match self.try_batch(&good).await {
                Ok(()) => return Ok(()),
                Err(BatchError::InjectedCrash) => return Err(BatchError::InjectedCrash),
                Err(BatchError::Fenced(shards)) => return Err(BatchError::Fenced(shards)),
                Err(BatchError::Transient(e)) => {
                    self.metrics
                        .batch_failures
                        .with_label_values(&["transient"])
                        .inc();
                    tracing::warn!(error = %e, entries = good.len(), retry_in = ?backoff, "batch not committed; retrying");
                }
                Err(BatchError::Permanent(e)) => {
                    self.metrics
                        .batch_failures
                        .with_label_values(&["permanent"])
                        .inc();
                    permanent_failures += 1;
                    tracing::error!(error = ?e, entries = good.len(), "batch failed");
                    if good.len() > 1 {
                        // Isolate the culprit: each entry on its own.
                        for p in good {
                            Box::pin(self.process(vec![p], shutdown)).await?;
                        }
                        return Ok(());
                    }
                    if permanent_failures >= 3 {
                        self.dead_letter_until_done(&good[0], &e.to_string(), shutdown)
                            .await;
                        return Ok(());
                    }
                }
            }
            if shutdown.is_cancelled() {
                // Leave the entries pending; the next owner of the shard claims them.
                return Ok(());
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    /// One batch: 1. commit it, 2. announce it, 3. acknowledge its
    /// entries, 4. hand its messages to the toaster.
    async fn try_batch(&self, batch: &[Pending]) -> Result<(), BatchError> {
        let entries: Vec<IngestEntry> = batch.iter().filter_map(|p| p.entry.clone().ok()).collect();
        let timer = self.metrics.batch_seconds.start_timer();
        let effects = self.commit(batch, &entries).await?;
        crate::trace::entries(&entries, "committed");
        if self
            .hooks
            .crash_after_commit
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(BatchError::InjectedCrash);
        }
        self.announce(batch, &effects).await?;
        crate::trace::entries(&entries, "published");
        self.ack(batch)
            .await
            .map_err(|e| BatchError::Transient(AppError::Redis(e)))?;
        timer.observe_duration();
        for (kind, outcome) in &effects.outcomes {
            self.metrics
                .entries
                .with_label_values(&[kind, outcome])
                .inc();
        }
        self.queue_toasts(effects.messages).await;
        Ok(())
    }

    /// Step 1: the batch's transaction, under its shards' fences.
    async fn commit(
        &self,
        batch: &[Pending],
        entries: &[IngestEntry],
    ) -> Result<persist::Effects, BatchError> {
        let here = self.connected_for_here(entries).await?;
        let fences: Vec<(u32, i64)> = batch
            .iter()
            .map(|p| (p.shard, p.epoch))
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect();
        match persist::apply_fenced(&self.pool, entries, &here, &fences).await {
            Ok(fx) => Ok(fx),
            Err(persist::CommitError::Fenced(shards)) => Err(BatchError::Fenced(shards)),
            Err(persist::CommitError::App(e)) => Err(e.into()),
        }
    }

    /// Step 2: the topics (recipients) while the pending markers are
    /// cleared, then badges and answers once both are done: the markers
    /// must be gone before any answer goes out ([`Worker::clear_markers`]),
    /// not before the recipients hear of the events.
    async fn announce(
        &self,
        batch: &[Pending],
        effects: &persist::Effects,
    ) -> Result<(), BatchError> {
        let publishing = std::time::Instant::now();
        let epochs: HashMap<i64, i64> = batch
            .iter()
            .filter_map(|p| Some((p.entry.as_ref().ok()?.chat_id, p.epoch)))
            .collect();
        let target = publish::Target {
            redis: &self.redis,
            keys: &self.keys,
            pool: &self.pool,
            topic_idle_ttl: self.config.topic_idle_ttl,
            search_index: self.config.search.backend == SearchBackend::Meilisearch,
        };
        let cleared = async {
            self.clear_markers(batch)
                .await
                .map_err(|e| BatchError::Transient(AppError::Redis(e)))
        };
        let topics = async {
            publish::topics(&target, &epochs, effects)
                .await
                .map_err(|e| publish_failed(batch, e))
        };
        futures::try_join!(cleared, topics)?;
        publish::rest(&target, effects)
            .await
            .map_err(|e| publish_failed(batch, e))?;
        let published = publishing.elapsed().as_secs_f64();
        self.metrics.topic_publish_seconds.observe(published);
        Ok(())
    }
}

/// A failed announcement as the batch's outcome: a newer holder of a
/// chat's shard fences that shard; anything else is retried.
fn publish_failed(batch: &[Pending], e: publish::PublishError) -> BatchError {
    match e {
        publish::PublishError::Fenced { chat, newer } => {
            tracing::warn!(chat, newer, "a newer holder publishes this chat");
            let shard = batch
                .iter()
                .find(|p| p.entry.as_ref().is_ok_and(|e| e.chat_id == chat))
                .map(|p| p.shard);
            BatchError::Fenced(shard.into_iter().collect())
        }
        publish::PublishError::Redis(e) => BatchError::Transient(AppError::Redis(e)),
        e => BatchError::Transient(AppError::Internal(e.into())),
    }
}
