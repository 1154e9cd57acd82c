//! Time-based archival of messages (issue 13 item 5, seed 002 §7.5; the
//! policy is in docs/architecture.md, "Database growth").
//!
//! Why: `messages` is hash-partitioned by chat, so its size does not slow
//! the hot path (measured to 10M rows), but it is what every backup,
//! vacuum and index build walks. A workspace that sets
//! `archiveAfterDays` (`PUT /api/workspace/archive`) has its older
//! messages moved to `messages_archive`, partitioned by month, which an
//! operator can detach, dump to object storage and drop a month at a
//! time. Archived messages stay readable through REST paging; they are
//! read-only and no longer searched. By default nothing is archived.
//!
//! How: run by the hourly maintenance job ([`crate::retention`], one
//! worker per hour by a Redis lock), chat by chat, in batches of
//! [`BATCH`] messages, each its own short transaction
//! (`store::archive`: lock the chat row, read the oldest hot messages,
//! move the prefix older than the cutoff, raise `chats.archived_seq`).
//!
//! Failure modes: a batch that cannot lock its chat within the lock
//! timeout, deadlocks with a commit, or meets any other database error is
//! rolled back whole; the chat is skipped for this run (logged) and the
//! next run moves it, since nothing moved twice or half. A database that
//! is down ends the run at the first error of the next chat listing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use fechatter_shared::{store::archive, AppResult};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Messages moved per transaction.
pub const BATCH: i64 = 1_000;
/// The pause between two batches, so the hot path keeps the database.
const PAUSE: Duration = Duration::from_millis(50);

/// Archives every archiving workspace's messages older than its setting
/// at `now`; returns how many moved. Stops early at `stop`.
pub async fn archive_all(
    pool: &PgPool,
    now: DateTime<Utc>,
    archived: &prometheus::IntCounter,
    stop: &CancellationToken,
) -> AppResult<u64> {
    let mut total = 0;
    for (workspace, days) in archive::policies(pool).await? {
        let cutoff = now - chrono::Duration::days(days.into());
        for chat in archive::chats_with_hot(pool, workspace).await? {
            if stop.is_cancelled() {
                return Ok(total);
            }
            match archive_chat(pool, chat, cutoff, archived, stop).await {
                Ok(n) => total += n,
                Err(e) => tracing::warn!(
                    chat_id = chat,
                    error = %e,
                    "archiving a chat failed; the next run retries it"
                ),
            }
        }
    }
    Ok(total)
}

/// Moves `chat`'s messages older than `cutoff`, batch after batch.
async fn archive_chat(
    pool: &PgPool,
    chat: i64,
    cutoff: DateTime<Utc>,
    archived: &prometheus::IntCounter,
    stop: &CancellationToken,
) -> AppResult<u64> {
    let mut total = 0;
    loop {
        let n = archive_batch(pool, chat, cutoff).await?;
        total += n;
        archived.inc_by(n);
        if n < BATCH as u64 || stop.is_cancelled() {
            return Ok(total);
        }
        tokio::time::sleep(PAUSE).await;
    }
}

/// One transaction: the numbered steps of `store::archive`.
async fn archive_batch(pool: &PgPool, chat: i64, cutoff: DateTime<Utc>) -> AppResult<u64> {
    let mut tx = pool.begin().await?;
    let head = archive::lock_head(&mut tx, chat, BATCH).await?;
    let Some(upto) = archive::prefix_before(&head, cutoff) else {
        return Ok(0);
    };
    for month in archive::months(&head, upto) {
        archive::ensure_month(&mut tx, month).await?;
    }
    let moved = archive::move_upto(&mut tx, chat, upto).await?;
    tx.commit().await?;
    if moved > 0 {
        tracing::debug!(chat_id = chat, upto, moved, "messages archived");
    }
    Ok(moved)
}
