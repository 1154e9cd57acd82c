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
//! worker per hour by a Redis lock, and stopped before the lock lapses),
//! chat by chat, in batches of [`BATCH`] messages (`store::archive`: read
//! the oldest hot messages, create the months' partitions, then in one
//! short transaction lock and move the prefix older than the cutoff and
//! raise `chats.archived_seq`). A chat whose oldest hot message is recent
//! costs one indexed read.
//!
//! Failure modes: the move never waits for a lock the worker's commits
//! hold; it gives way (rolled back whole) and is retried a few times
//! after a pause, then the chat is skipped for this run (logged). Any
//! other database error skips the chat likewise. The next run moves what
//! this one did not: nothing moves twice or half. A database that is down
//! ends the run at the next chat listing.

use std::time::Duration;

use tokio::time::Instant;

use chrono::{DateTime, Utc};
use fechatter_shared::{store::archive, AppResult};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Messages moved per transaction.
pub const BATCH: i64 = 1_000;
/// The pause between two batches, so the hot path keeps the database.
const PAUSE: Duration = Duration::from_millis(50);
/// Tries of one move while commits hold its locks.
const ATTEMPTS: u32 = 5;

/// Archives every archiving workspace's messages older than its setting
/// at `now`; returns how many moved. Stops early at `stop` or `deadline`.
pub async fn archive_all(
    pool: &PgPool,
    now: DateTime<Utc>,
    archived: &prometheus::IntCounter,
    stop: &CancellationToken,
    deadline: Instant,
) -> AppResult<u64> {
    let mut total = 0;
    for (workspace, days) in archive::policies(pool).await? {
        let cutoff = now - chrono::Duration::days(days.into());
        for chat in archive::chats_with_hot(pool, workspace).await? {
            if stop.is_cancelled() || Instant::now() >= deadline {
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

/// One batch: the numbered steps of `store::archive`.
async fn archive_batch(pool: &PgPool, chat: i64, cutoff: DateTime<Utc>) -> AppResult<u64> {
    let mut tx = pool.begin().await?;
    archive::bound_lock_waits(&mut tx).await?;
    let oldest = archive::head(&mut tx, chat, 1).await?;
    if archive::prefix_before(&oldest, cutoff).is_none() {
        return Ok(0);
    }
    let head = archive::head(&mut tx, chat, BATCH).await?;
    tx.commit().await?;
    let Some(upto) = archive::prefix_before(&head, cutoff) else {
        return Ok(0);
    };
    for month in archive::months(&head, upto) {
        archive::ensure_month(pool, month).await?;
    }
    let moved = move_giving_way(pool, chat, upto).await?;
    if moved > 0 {
        tracing::debug!(chat_id = chat, upto, moved, "messages archived");
    }
    Ok(moved)
}

/// Step 4 in its transaction, tried again after a pause while a commit
/// holds one of its locks.
async fn move_giving_way(pool: &PgPool, chat: i64, upto: i64) -> AppResult<u64> {
    let mut attempt = 1;
    loop {
        let mut tx = pool.begin().await?;
        archive::bound_lock_waits(&mut tx).await?;
        match archive::move_upto(&mut tx, chat, upto).await {
            Ok(moved) => {
                tx.commit().await?;
                return Ok(moved);
            }
            Err(e) if archive::is_busy(&e) && attempt < ATTEMPTS => {
                drop(tx);
                attempt += 1;
                tokio::time::sleep(PAUSE * 2).await;
            }
            Err(e) => return Err(e),
        }
    }
}
