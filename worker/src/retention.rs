//! The hourly maintenance job: retention of the event log and archival of
//! old messages (issue 13 item 5; the policy is in docs/architecture.md,
//! "Database growth"). The archival is [`crate::archival`]; the event
//! log's retention is here.
//!
//! Why: `chat_events` holds every committed event's frame, one row per
//! message, edit, delete and reaction, and grows with the `messages` table
//! it duplicates; yet it only serves replay: sync of at most 500 missed
//! messages, filling a topic gap, re-publishing after a worker crash, the
//! idempotency of a retried frame. Events older than `EVENT_RETENTION_DAYS`
//! (90 by default) are deleted; `messages` is the customer's record and
//! is never touched here. A sync whose cursor is older than what the log
//! still holds answers `tooLarge` (the client reloads over REST), checked
//! by the gateway (`sync.rs`).
//!
//! How: once an hour one worker (the one that sets the Redis lock, which
//! lives as long as the interval) deletes expired events partition by
//! partition in batches of [`BATCH`] rows, each its own short transaction,
//! pausing between batches so the hot path keeps the database. A BRIN
//! index on `created_at` (migration 15) finds the rows.
//!
//! Failure modes: a PostgreSQL error ends this run (logged, counted); the
//! next hour's run continues where it stopped, since deleting is
//! idempotent. A worker killed mid-run leaves the lock until it lapses,
//! so at most one hour is skipped.

use std::time::Duration;

use chrono::Utc;
use fechatter_shared::{redis::Keys, store, AppResult};
use fred::prelude::*;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Rows deleted per statement.
pub const BATCH: i64 = 5_000;
/// How often a worker tries to run retention (and how long its lock lives).
const INTERVAL: Duration = Duration::from_secs(3_600);
/// The pause between two batches.
const PAUSE: Duration = Duration::from_millis(50);

pub struct Retention {
    pub pool: PgPool,
    pub redis: Client,
    pub keys: Keys,
    /// `EVENT_RETENTION_DAYS`; zero: never run.
    pub keep: Duration,
    pub instance: String,
    /// `chat_events_deleted_total`.
    pub deleted: prometheus::IntCounter,
    /// `messages_archived_total`.
    pub archived: prometheus::IntCounter,
}

impl Retention {
    /// Runs once an hour until `shutdown`: event retention (unless its
    /// retention is zero), then message archival.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            match self.locked().await {
                Ok(true) => self.maintain(&shutdown).await,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "maintenance lock failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(INTERVAL) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// One hour's work, each part logging its own outcome.
    async fn maintain(&self, shutdown: &CancellationToken) {
        // Stop before the lock (taken just now) lapses, so two runs never
        // overlap.
        let deadline = tokio::time::Instant::now() + INTERVAL - Duration::from_secs(300);
        match self.run_once(shutdown).await {
            Ok(n) if n > 0 => tracing::info!(deleted = n, "expired chat events deleted"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "event retention failed; next run in an hour"),
        }
        let archival = crate::archival::archive_all(
            &self.pool,
            Utc::now(),
            &self.archived,
            shutdown,
            deadline,
        );
        match archival.await {
            Ok(n) if n > 0 => tracing::info!(archived = n, "old messages archived"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "message archival failed; next run in an hour"),
        }
    }

    /// Takes this hour's run (SET NX with the interval as lifetime).
    async fn locked(&self) -> AppResult<bool> {
        let key = self.keys.retention_lock();
        Ok(fechatter_shared::redis::try_lock(&self.redis, &key, &self.instance, INTERVAL).await?)
    }

    /// Deletes every event older than the retention, partition by
    /// partition; returns how many. Stops early at `stop`.
    pub async fn run_once(&self, stop: &CancellationToken) -> AppResult<u64> {
        if self.keep.is_zero() {
            return Ok(0);
        }
        let before = Utc::now() - chrono::Duration::from_std(self.keep).unwrap_or_default();
        let mut total = 0;
        for partition in store::partitions(&self.pool, "chat_events").await? {
            loop {
                if stop.is_cancelled() {
                    return Ok(total);
                }
                let n = store::event::delete_expired(&self.pool, &partition, before, BATCH).await?;
                total += n;
                self.deleted.inc_by(n);
                if n < BATCH as u64 {
                    break;
                }
                tokio::time::sleep(PAUSE).await;
            }
        }
        Ok(total)
    }
}
