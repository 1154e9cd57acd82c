//! The steps of one ingest batch, in two halves, so that the consumer can
//! overlap the second half of one batch with the first half of the next.
//!
//! * The **front** ([`Worker::front`]): 1. commit the batch in one
//!   PostgreSQL transaction, 2. clear its pending markers while its events
//!   are appended to the chat topics. When it returns, recipients can see
//!   the events.
//! * The **tail** ([`Worker::finish`]): 3. unread counters, badges,
//!   receipts and the search stream, then the senders' answers
//!   ([`publish::rest`]), 4. acknowledge the entries, 5. hand the new
//!   messages to the toaster.
//!
//! Why two halves: the tail is three or four Redis round trips that no
//! recipient waits for, but a message that arrived during them used to
//! wait for them before its own commit could start. The consumer
//! ([`crate::consumer`]) now runs one batch's tail while it reads and
//! commits the next, and never more than one tail at a time, so tails stay
//! in batch order: a batch's badges (absolute values) are never overtaken
//! by an older batch's, and answers keep their order.
//!
//! What the overlap must not change, and why it does not:
//! * Nothing is acknowledged before it is announced: the ack is in the
//!   tail, after the counters and answers.
//! * The markers are cleared before any answer goes out: in the front.
//! * Topic events of consecutive batches stay in order: the front of the
//!   next batch starts only after this front returned.
//! * A tail that fails (Redis unavailable) leaves its entries pending; the
//!   consumer processes that batch again from the start
//!   ([`Worker::finish_or_redo`]): its commit finds the events already in
//!   PostgreSQL, its topics refuse what they already have, and its tail
//!   runs again. Every step was already safe to repeat for that reason.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use fechatter_shared::{config::SearchBackend, ingest::IngestEntry, AppError};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{consumer::BatchError, entries::Pending, persist, publish, Worker};

/// A batch whose front is done (committed, topics appended) and whose
/// tail is still to run.
pub(crate) struct Tail {
    pub(crate) batch: Vec<Pending>,
    effects: persist::Effects,
    /// When its commit started (`ingest_batch_seconds`).
    started: Instant,
    /// When its announcement started (`topic_publish_seconds`).
    publishing: Instant,
}

impl Worker {
    /// Processes a batch to completion (front and tail): retried while
    /// services are down, split up when an entry in it fails permanently.
    pub(crate) async fn process(
        &self,
        batch: Vec<Pending>,
        shutdown: &CancellationToken,
    ) -> Result<(), BatchError> {
        match self.process_front(batch, shutdown).await? {
            Front::Tail(tail) => self.finish_or_redo(*tail, shutdown).await,
            Front::Split(entries) => self.process_each(entries, shutdown).await,
            Front::Done => Ok(()),
        }
    }

    /// Processes each entry as a batch of its own (isolating the one that
    /// fails a batch permanently).
    pub(crate) async fn process_each(
        &self,
        entries: Vec<Pending>,
        shutdown: &CancellationToken,
    ) -> Result<(), BatchError> {
        for p in entries {
            Box::pin(self.process(vec![p], shutdown)).await?;
        }
        Ok(())
    }

    /// The front of a batch ([`Worker::front`]), retried while services
    /// are down. Returns the tail still to run, or the entries to process
    /// one by one when the batch failed permanently.
    pub(crate) async fn process_front(
        &self,
        batch: Vec<Pending>,
        shutdown: &CancellationToken,
    ) -> Result<Front, BatchError> {
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
            return Ok(Front::Done);
        }
        let mut backoff = Duration::from_millis(100);
        let mut permanent_failures = 0;
        loop {
            match self.front(good.clone()).await {
                Ok(tail) => return Ok(Front::Tail(Box::new(tail))),
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
                        return Ok(Front::Split(good));
                    }
                    if permanent_failures >= 3 {
                        self.dead_letter_until_done(&good[0], &e.to_string(), shutdown)
                            .await;
                        return Ok(Front::Done);
                    }
                }
            }
            if shutdown.is_cancelled() {
                // Leave the entries pending; the next owner of the shard claims them.
                return Ok(Front::Done);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    /// The front of `batch`: steps 1 and 2.
    pub(crate) async fn front(&self, batch: Vec<Pending>) -> Result<Tail, BatchError> {
        let started = Instant::now();
        let entries: Vec<IngestEntry> = batch.iter().filter_map(|p| p.entry.clone().ok()).collect();
        let effects = self.commit(&batch, &entries).await?;
        crate::trace::entries(&entries, "committed");
        if self
            .hooks
            .crash_after_commit
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(BatchError::InjectedCrash);
        }
        let publishing = Instant::now();
        self.topics(&batch, &effects).await?;
        Ok(Tail {
            batch,
            effects,
            started,
            publishing,
        })
    }

    /// The tail of a batch: steps 3-5. On an error the batch is still
    /// pending and must be processed again ([`Self::finish_or_redo`]).
    pub(crate) async fn finish(&self, tail: &mut Tail) -> Result<(), BatchError> {
        publish::rest(&self.target(), &tail.effects)
            .await
            .map_err(|e| publish_failed(&tail.batch, e))?;
        self.metrics
            .topic_publish_seconds
            .observe(tail.publishing.elapsed().as_secs_f64());
        if tracing::enabled!(tracing::Level::DEBUG) {
            let entries: Vec<IngestEntry> = tail
                .batch
                .iter()
                .filter_map(|p| p.entry.clone().ok())
                .collect();
            crate::trace::entries(&entries, "published");
        }
        self.ack(&tail.batch)
            .await
            .map_err(|e| BatchError::Transient(AppError::Redis(e)))?;
        self.metrics
            .batch_seconds
            .observe(tail.started.elapsed().as_secs_f64());
        for (kind, outcome) in &tail.effects.outcomes {
            self.metrics
                .entries
                .with_label_values(&[kind, outcome])
                .inc();
        }
        self.queue_toasts(std::mem::take(&mut tail.effects.messages))
            .await;
        Ok(())
    }

    /// [`Self::finish`]; if it fails, the whole batch again (front and
    /// tail, retried until done like any batch).
    pub(crate) async fn finish_or_redo(
        &self,
        mut tail: Tail,
        shutdown: &CancellationToken,
    ) -> Result<(), BatchError> {
        let span = crate::trace::batch_span(&tail.batch);
        let e = match self.finish(&mut tail).instrument(span).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        self.metrics
            .batch_failures
            .with_label_values(&["transient"])
            .inc();
        tracing::warn!(error = %e, entries = tail.batch.len(), "batch committed but not fully announced; processing it again");
        if shutdown.is_cancelled() {
            // Left pending; the next owner of the shard claims it.
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        Box::pin(self.process(tail.batch, shutdown)).await
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
            .collect::<std::collections::BTreeMap<_, _>>()
            .into_iter()
            .collect();
        match persist::apply_fenced(&self.pool, entries, &here, &fences).await {
            Ok(fx) => Ok(fx),
            Err(persist::CommitError::Fenced(shards)) => Err(BatchError::Fenced(shards)),
            Err(persist::CommitError::App(e)) => Err(e.into()),
        }
    }

    /// Step 2: the topics (recipients) while the pending markers are
    /// cleared: the markers must be gone before any answer goes out
    /// ([`Worker::clear_markers`]), not before the recipients hear of the
    /// events.
    async fn topics(
        &self,
        batch: &[Pending],
        effects: &persist::Effects,
    ) -> Result<(), BatchError> {
        let epochs: HashMap<i64, i64> = batch
            .iter()
            .filter_map(|p| Some((p.entry.as_ref().ok()?.chat_id, p.epoch)))
            .collect();
        let target = self.target();
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
        Ok(())
    }

    /// Where batches are announced.
    fn target(&self) -> publish::Target<'_> {
        publish::Target {
            redis: &self.redis,
            keys: &self.keys,
            pool: &self.pool,
            topic_idle_ttl: self.config.topic_idle_ttl,
            search_index: self.config.search.backend == SearchBackend::Meilisearch,
        }
    }
}

/// What the front of a batch left to do.
pub(crate) enum Front {
    /// Its tail ([`Worker::finish`]).
    Tail(Box<Tail>),
    /// It failed permanently: each entry is processed alone, after any
    /// tail still running (tails stay in batch order).
    Split(Vec<Pending>),
    /// Nothing (dead-lettered, or left pending for shutdown).
    Done,
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
