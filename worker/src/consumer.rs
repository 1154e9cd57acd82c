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

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use fechatter_shared::{
    config::SearchBackend,
    ingest::{IngestEntry, GROUP},
    protocol, AppError,
};
use fred::prelude::*;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{
    entries::{decode, parse_xread},
    persist, publish, Worker,
};

/// One stream entry read from an ingest shard.
#[derive(Debug, Clone)]
pub struct Pending {
    pub stream: String,
    /// The ingest shard of `stream`, and the fencing epoch this worker held
    /// it with when it read the entry.
    pub shard: u32,
    pub epoch: i64,
    pub id: String,
    pub entry: Result<IngestEntry, String>,
}

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
    pub async fn consume(
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
                            self.process_fenced(chunk.to_vec(), &shutdown, &mut fenced)
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
                for (&shard, &epoch) in &claimed.clone() {
                    match self.sweep(shard, epoch, sweep_every).await {
                        Ok(stuck) => {
                            for chunk in stuck.chunks(self.config.batch_size) {
                                self.process_fenced(chunk.to_vec(), &shutdown, &mut fenced)
                                    .await?;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(shard, error = %e, "sweeping stuck entries failed")
                        }
                    }
                }
            }
            let batch = tokio::select! {
                r = self.read(&claimed) => r,
                _ = shutdown.cancelled() => break,
            };
            match batch {
                Ok(batch) if !batch.is_empty() => {
                    self.process_fenced(batch, &shutdown, &mut fenced).await?
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

    /// Ensures the consumer group exists and claims every entry pending on
    /// the shard: whoever read them before no longer holds the lease.
    async fn take_over(&self, shard: u32, epoch: i64) -> Result<Vec<Pending>, Error> {
        let stream = self.keys.ingest_shard(shard);
        crate::entries::ensure_group(&self.redis, &stream, GROUP).await?;
        let claimed =
            crate::entries::claim_all(&self.redis, &stream, GROUP, &self.config.instance_id, 1000)
                .await?;
        Ok(claimed
            .into_iter()
            .map(|e| Pending {
                stream: stream.clone(),
                shard,
                epoch,
                id: e.id,
                entry: decode(e.fields),
            })
            .collect())
    }

    /// Claims the shard's entries that another consumer read and left
    /// unacknowledged for at least `idle` (a worker that lost the shard
    /// without noticing, then was fenced).
    async fn sweep(&self, shard: u32, epoch: i64, idle: Duration) -> Result<Vec<Pending>, Error> {
        let stream = self.keys.ingest_shard(shard);
        let stuck = crate::entries::claim_idle(
            &self.redis,
            &stream,
            GROUP,
            &self.config.instance_id,
            idle.as_millis() as u64,
            1000,
        )
        .await?;
        if !stuck.is_empty() {
            tracing::warn!(
                shard,
                entries = stuck.len(),
                "claimed entries stuck with another consumer"
            );
        }
        Ok(stuck
            .into_iter()
            .map(|e| Pending {
                stream: stream.clone(),
                shard,
                epoch,
                id: e.id,
                entry: decode(e.fields),
            })
            .collect())
    }

    async fn read(&self, shards: &BTreeMap<u32, i64>) -> Result<Vec<Pending>, Error> {
        let by_stream: HashMap<String, (u32, i64)> = shards
            .iter()
            .map(|(&s, &e)| (self.keys.ingest_shard(s), (s, e)))
            .collect();
        let streams: Vec<String> = by_stream.keys().cloned().collect();
        let ids: Vec<&str> = streams.iter().map(|_| ">").collect();
        let reply: Value = self
            .blocking
            .xreadgroup(
                GROUP,
                &self.config.instance_id,
                Some(self.config.batch_size as u64),
                Some(500),
                false,
                streams,
                ids,
            )
            .await?;
        Ok(parse_xread(reply)
            .into_iter()
            .filter_map(|(stream, e)| {
                let &(shard, epoch) = by_stream.get(&stream)?;
                Some((stream, shard, epoch, e))
            })
            .map(|(stream, shard, epoch, e)| Pending {
                stream,
                shard,
                epoch,
                id: e.id,
                entry: decode(e.fields),
            })
            .collect())
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
            let why = p.entry.clone().err().unwrap_or_default();
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

    async fn try_batch(&self, batch: &[Pending]) -> Result<(), BatchError> {
        let entries: Vec<IngestEntry> = batch.iter().filter_map(|p| p.entry.clone().ok()).collect();
        let timer = self.metrics.batch_seconds.start_timer();
        let here = self.connected_for_here(&entries).await?;
        let fences: Vec<(u32, i64)> = batch
            .iter()
            .map(|p| (p.shard, p.epoch))
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect();
        let effects = match persist::apply_fenced(&self.pool, &entries, &here, &fences).await {
            Ok(fx) => fx,
            Err(persist::CommitError::Fenced(shards)) => return Err(BatchError::Fenced(shards)),
            Err(persist::CommitError::App(e)) => return Err(e.into()),
        };
        if self
            .hooks
            .crash_after_commit
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(BatchError::InjectedCrash);
        }
        self.clear_markers(batch)
            .await
            .map_err(|e| BatchError::Transient(AppError::Redis(e)))?;
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
        match publish::publish(&target, &epochs, &effects).await {
            Ok(()) => {}
            Err(publish::PublishError::Fenced { chat, newer }) => {
                tracing::warn!(chat, newer, "a newer holder publishes this chat");
                let shard = batch
                    .iter()
                    .find(|p| p.entry.as_ref().is_ok_and(|e| e.chat_id == chat))
                    .map(|p| p.shard);
                return Err(BatchError::Fenced(shard.into_iter().collect()));
            }
            Err(publish::PublishError::Redis(e)) => {
                return Err(BatchError::Transient(AppError::Redis(e)))
            }
            Err(e) => return Err(BatchError::Transient(AppError::Internal(e.into()))),
        }
        self.ack(batch)
            .await
            .map_err(|e| BatchError::Transient(AppError::Redis(e)))?;
        timer.observe_duration();
        if let Err(e) = self.toasts(&effects).await {
            self.metrics.toast_failures.inc();
            tracing::warn!(error = %e, "toasts of a committed batch not sent");
        }
        for (kind, outcome) in &effects.outcomes {
            self.metrics
                .entries
                .with_label_values(&[kind, outcome])
                .inc();
        }
        Ok(())
    }

    /// Clears the pending markers of a committed batch's writes
    /// (lua/ingest_append.lua) *before* their answers are published: a
    /// client that retries the moment it gets its answer must be appended
    /// again (and answered from PostgreSQL), not taken for a write still
    /// waiting, whose answer already went out and would never come again.
    async fn clear_markers(&self, batch: &[Pending]) -> Result<(), Error> {
        let mut by_stream: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        for p in batch {
            if let Ok(e) = &p.entry {
                by_stream.entry(&p.stream).or_default().push(
                    self.keys
                        .ingest_pending(&p.stream, e.chat_id, e.user_id, &e.ref_id),
                );
            }
        }
        // A shard's markers share its hash tag: one DEL per shard.
        for (_, markers) in by_stream {
            let _: i64 = self.redis.del(markers).await?;
        }
        Ok(())
    }

    /// Acknowledges and deletes processed entries.
    async fn ack(&self, batch: &[Pending]) -> Result<(), Error> {
        let mut by_stream: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        for p in batch {
            by_stream.entry(&p.stream).or_default().push(p.id.clone());
        }
        for (stream, ids) in by_stream {
            let _: i64 = self.redis.xack(stream, GROUP, ids.clone()).await?;
            let _: i64 = self.redis.xdel(stream, ids).await?;
        }
        Ok(())
    }

    /// Dead-letters an entry, retrying while Redis refuses (an entry left
    /// pending would otherwise wait for the next shard takeover).
    async fn dead_letter_until_done(&self, p: &Pending, why: &str, shutdown: &CancellationToken) {
        while !self.dead_letter(p, why).await {
            if shutdown.is_cancelled() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Parks an entry in the dead-letter stream, answers its sender and
    /// acknowledges it. False when Redis refused.
    async fn dead_letter(&self, p: &Pending, why: &str) -> bool {
        tracing::error!(stream = %p.stream, id = %p.id, reason = why, "moving entry to the dead-letter stream");
        let raw = match &p.entry {
            Ok(e) => serde_json::to_string(e).unwrap_or_default(),
            Err(_) => String::new(),
        };
        let parked: Result<(), Error> = self
            .redis
            .xadd(
                self.keys.dead_letter(),
                false,
                None,
                "*",
                vec![
                    ("stream", p.stream.as_str()),
                    ("id", p.id.as_str()),
                    ("entry", raw.as_str()),
                    ("reason", why),
                ],
            )
            .await;
        if let Err(e) = parked {
            tracing::error!(error = %e, "dead-lettering failed; retrying");
            return false;
        }
        if let Ok(entry) = &p.entry {
            let frame = protocol::error_frame(
                Some(&entry.ref_id),
                &AppError::Internal(anyhow::anyhow!("entry could not be processed")),
            );
            let notice = fechatter_shared::ingest::GatewayNotice::Frame {
                conn: entry.conn,
                frame,
            };
            let _: Result<(), Error> = self
                .redis
                .publish(self.keys.gateway_channel(&entry.gateway), notice.encode())
                .await;
        }
        let one = std::slice::from_ref(p);
        let acked = self.clear_markers(one).await.is_ok() && self.ack(one).await.is_ok();
        if acked {
            self.metrics.dead_letters.inc();
        }
        acked
    }
}
