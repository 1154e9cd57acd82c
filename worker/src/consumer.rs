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
//! Each batch runs in two halves ([`crate::batch_steps`]): the front
//! (commit, topic append), after which recipients can see it, and the tail
//! (counters, answers, ack). In the steady state the consumer runs one
//! batch's tail while it reads and commits the next, so a message that
//! arrives during a tail no longer waits for it. At most one tail runs at a
//! time; it is finished before a takeover, a sweep, or shutdown.
//!
//! Reading and claiming entries is [`crate::claims`]; acknowledging and
//! dead-lettering them, [`crate::settle`].

use std::{collections::BTreeMap, time::Duration};

use fechatter_shared::AppError;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    batch_steps::{Front, Tail},
    Worker,
};

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
        // The batch whose tail runs while the next one is read and committed.
        let mut tail: Option<Tail> = None;
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
                self.drain(&mut tail, &shutdown, &mut fenced).await?;
                tokio::select! {
                    _ = owned.changed() => {}
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
                continue;
            }
            if shards.keys().any(|s| !claimed.contains_key(s)) {
                self.drain(&mut tail, &shutdown, &mut fenced).await?;
                self.take_over_new(&shards, &mut claimed, &shutdown, &mut fenced)
                    .await?;
            }
            claimed.retain(|s, _| !fenced.contains_key(s));
            if claimed.is_empty() {
                continue;
            }
            if swept.elapsed() >= sweep_every {
                swept = tokio::time::Instant::now();
                self.drain(&mut tail, &shutdown, &mut fenced).await?;
                self.sweep_all(&claimed, sweep_every, &shutdown, &mut fenced)
                    .await?;
            }
            let step = Step {
                reader: &mut reader,
                claimed: &claimed,
                shutdown: &shutdown,
            };
            let (front, lost) = self.step(step, &mut tail, &mut fenced).await?;
            tail = front;
            if lost {
                // Redis lost the streams (restart without persistence):
                // take the shards over again, which re-creates groups.
                claimed.clear();
            }
        }
        self.drain(&mut tail, &shutdown, &mut fenced).await
    }

    /// Takes over the shards of `shards` not yet claimed: claims their
    /// pending entries and processes them.
    async fn take_over_new(
        &self,
        shards: &BTreeMap<u32, i64>,
        claimed: &mut BTreeMap<u32, i64>,
        shutdown: &CancellationToken,
        fenced: &mut BTreeMap<u32, i64>,
    ) -> Result<(), BatchError> {
        let new: Vec<(u32, i64)> = shards
            .iter()
            .filter(|(s, _)| !claimed.contains_key(s))
            .map(|(&s, &e)| (s, e))
            .collect();
        for (shard, epoch) in new {
            match self.take_over(shard, epoch).await {
                Ok(pending) => {
                    if !pending.is_empty() {
                        tracing::info!(shard, entries = pending.len(), "reclaimed pending entries");
                    }
                    for chunk in pending.chunks(self.config.batch_size) {
                        let span = crate::trace::batch_span(chunk);
                        self.process_fenced(chunk.to_vec(), shutdown, fenced)
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
        Ok(())
    }

    /// One step of the steady state: the previous batch's tail runs while
    /// the next batch is read and its front (commit, topics) runs
    /// ([`crate::batch_steps`]). Returns that batch's tail, and whether
    /// Redis lost the streams.
    async fn step(
        &self,
        step: Step<'_>,
        tail: &mut Option<Tail>,
        fenced: &mut BTreeMap<u32, i64>,
    ) -> Result<(Option<Tail>, bool), BatchError> {
        let Step {
            reader,
            claimed,
            shutdown,
        } = step;
        let previous = tail.take();
        let previous_epochs = previous.as_ref().map(|t| epochs_of(&t.batch));
        let finishing = async {
            match previous {
                Some(t) => self.finish_or_redo(t, shutdown).await,
                None => Ok(()),
            }
        };
        let next = async {
            let read = tokio::select! {
                r = self.read(reader, claimed) => r,
                _ = shutdown.cancelled() => return Next::Idle,
            };
            match read {
                Ok(batch) if batch.is_empty() => Next::Idle,
                Ok(batch) => {
                    let epochs = epochs_of(&batch);
                    let span = crate::trace::batch_span(&batch);
                    let front = self.process_front(batch, shutdown).instrument(span).await;
                    Next::Read(front, epochs)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading ingest streams failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    Next::Failed(e.details().contains("NOGROUP"))
                }
            }
        };
        let (finished, next) = tokio::join!(finishing, next);
        if let Some(epochs) = previous_epochs {
            self.note_fenced(finished, &epochs, fenced)?;
        }
        let (front, epochs) = match next {
            Next::Idle => return Ok((None, false)),
            Next::Failed(lost) => return Ok((None, lost)),
            Next::Read(front, epochs) => (front, epochs),
        };
        let front = match front {
            Ok(Front::Split(entries)) => self.process_each(entries, shutdown).await.map(|()| None),
            Ok(Front::Tail(tail)) => Ok(Some(*tail)),
            Ok(Front::Done) => Ok(None),
            Err(e) => Err(e),
        };
        Ok((self.note_fenced(front, &epochs, fenced)?.flatten(), false))
    }

    /// Runs the pending tail, if any, to completion.
    async fn drain(
        &self,
        tail: &mut Option<Tail>,
        shutdown: &CancellationToken,
        fenced: &mut BTreeMap<u32, i64>,
    ) -> Result<(), BatchError> {
        let Some(t) = tail.take() else {
            return Ok(());
        };
        let epochs = epochs_of(&t.batch);
        let finished = self.finish_or_redo(t, shutdown).await;
        self.note_fenced(finished, &epochs, fenced).map(|_| ())
    }

    /// [`Self::process`], noting the shards found held by a newer epoch.
    async fn process_fenced(
        &self,
        batch: Vec<Pending>,
        shutdown: &CancellationToken,
        fenced: &mut BTreeMap<u32, i64>,
    ) -> Result<(), BatchError> {
        let epochs = epochs_of(&batch);
        let outcome = self.process(batch, shutdown).await;
        self.note_fenced(outcome, &epochs, fenced).map(|_| ())
    }

    /// A batch's outcome with [`BatchError::Fenced`] turned into a note in
    /// `fenced` (its shards are not processed until a new lease): `None`.
    fn note_fenced<T>(
        &self,
        outcome: Result<T, BatchError>,
        epochs: &BTreeMap<u32, i64>,
        fenced: &mut BTreeMap<u32, i64>,
    ) -> Result<Option<T>, BatchError> {
        match outcome {
            Ok(v) => Ok(Some(v)),
            Err(BatchError::Fenced(shards)) => {
                self.metrics.fenced_batches.inc();
                tracing::warn!(?shards, "lost shards to a newer holder; not acking, not processing them until a new lease");
                for shard in shards {
                    if let Some(&epoch) = epochs.get(&shard) {
                        fenced.insert(shard, epoch);
                    }
                }
                Ok(None)
            }
            Err(e) => Err(e),
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
}

/// What [`Worker::step`] reads and stops on.
struct Step<'a> {
    reader: &'a mut crate::shard_reader::ShardReader,
    claimed: &'a BTreeMap<u32, i64>,
    shutdown: &'a CancellationToken,
}

/// What the read half of a step came to.
enum Next {
    /// Nothing to read (or shutting down).
    Idle,
    /// Reading failed; `true` when Redis lost the streams (NOGROUP).
    Failed(bool),
    /// A batch was read; its front's outcome, and its shards' epochs.
    Read(Result<Front, BatchError>, BTreeMap<u32, i64>),
}

/// Shard -> epoch of a batch's entries.
fn epochs_of(batch: &[Pending]) -> BTreeMap<u32, i64> {
    batch.iter().map(|p| (p.shard, p.epoch)).collect()
}
