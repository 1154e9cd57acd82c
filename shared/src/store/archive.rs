//! The message archive (migration 16; policy in docs/architecture.md,
//! "Database growth"): a workspace's setting, and the move of a chat's
//! old messages from `messages` to `messages_archive`.
//!
//! Why a prefix: a chat's messages move in seq order, oldest first, and
//! stop at the first one that is not old enough, so "every seq up to
//! `chats.archived_seq` is archived, every later one is hot" holds at
//! every commit. Readers ([`super::history`]) pick the table by comparing
//! a seq with that one number instead of probing both.
//!
//! Why no move ever waits for a lock: the worker's commits lock chat rows
//! and message rows in either order (a send numbers its message on the
//! chat row; an edit locks its message, then numbers the event on the chat
//! row), so a move that waited for either could close a cycle with a
//! commit, and PostgreSQL would abort one of them, perhaps a whole batch of
//! sends. A move takes its row locks with NOWAIT instead and, when a
//! commit holds one, gives way ([`is_busy`]) and is tried again later.
//! Month partitions are created apart, before the move, in their own short
//! transaction with a lock timeout (creating one locks the archive).

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, TimeZone, Utc};
use sqlx::{PgConnection, PgPool};

use crate::{AppError, AppResult};

/// The shortest and longest `archiveAfterDays` a workspace may set. The
/// floor keeps archival far from anything recent: retried sends, edits,
/// reactions and syncs all concern recent messages.
pub const MIN_DAYS: i32 = 30;
pub const MAX_DAYS: i32 = 36_500;

/// `archive_after_days` of `workspace` (`None`: messages stay hot).
pub async fn policy(pool: &PgPool, workspace: i64) -> AppResult<Option<i32>> {
    let row: (Option<i32>,) =
        sqlx::query_as("SELECT archive_after_days FROM workspaces WHERE id = $1")
            .bind(workspace)
            .fetch_one(pool)
            .await?;
    Ok(row.0)
}

/// Sets `archive_after_days` of `workspace` (checked by the caller and by
/// the column's CHECK).
pub async fn set_policy(pool: &PgPool, workspace: i64, days: Option<i32>) -> AppResult<()> {
    sqlx::query("UPDATE workspaces SET archive_after_days = $2 WHERE id = $1")
        .bind(workspace)
        .bind(days)
        .execute(pool)
        .await?;
    Ok(())
}

/// Every workspace that archives: `(workspace, days)`.
pub async fn policies(pool: &PgPool) -> AppResult<Vec<(i64, i32)>> {
    Ok(sqlx::query_as(
        "SELECT id, archive_after_days FROM workspaces
         WHERE archive_after_days IS NOT NULL ORDER BY id",
    )
    .fetch_all(pool)
    .await?)
}

/// The chats of `workspace` that have hot messages.
pub async fn chats_with_hot(pool: &PgPool, workspace: i64) -> AppResult<Vec<i64>> {
    let rows: Vec<(i64,)> = sqlx::query_as(
        "SELECT id FROM chats WHERE workspace_id = $1 AND last_seq > archived_seq ORDER BY id",
    )
    .bind(workspace)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Bounds every lock wait of the current transaction, table locks
/// included (NOWAIT covers row locks only): a move queued behind a
/// schema change (an index being attached) would also queue everything
/// behind it. A timeout is SQLSTATE 55P03, as a NOWAIT refusal: [`is_busy`].
pub async fn bound_lock_waits(tx: &mut PgConnection) -> AppResult<()> {
    sqlx::query("SET LOCAL lock_timeout = '2s'")
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Step 1 of a move: `chat`'s `limit` oldest hot messages' `(seq,
/// created_at)`, in seq order (no row locks: only later seqs can appear
/// meanwhile).
pub async fn head(
    tx: &mut PgConnection,
    chat: i64,
    limit: i64,
) -> AppResult<Vec<(i64, DateTime<Utc>)>> {
    Ok(sqlx::query_as(
        "SELECT seq, created_at FROM messages WHERE chat_id = $1 ORDER BY seq LIMIT $2",
    )
    .bind(chat)
    .bind(limit)
    .fetch_all(tx)
    .await?)
}

/// Step 2: the last seq of the head's prefix created before `cutoff`
/// (`None`: the oldest hot message is too recent).
pub fn prefix_before(head: &[(i64, DateTime<Utc>)], cutoff: DateTime<Utc>) -> Option<i64> {
    head.iter()
        .take_while(|(_, at)| *at < cutoff)
        .last()
        .map(|(seq, _)| *seq)
}

/// The months `(year, month)` of the head's messages up to seq `upto`:
/// the archive partitions the move needs.
pub fn months(head: &[(i64, DateTime<Utc>)], upto: i64) -> BTreeSet<(i32, u32)> {
    head.iter()
        .take_while(|(seq, _)| *seq <= upto)
        .map(|(_, at)| (at.year(), at.month()))
        .collect()
}

/// The archive partition of one month: its name and bounds.
fn month_partition(year: i32, month: u32) -> (String, DateTime<Utc>, DateTime<Utc>) {
    let start = Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0).unwrap();
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    let end = Utc.with_ymd_and_hms(ny, nm, 1, 0, 0, 0).unwrap();
    (
        format!("messages_archive_y{year:04}m{month:02}"),
        start,
        end,
    )
}

/// Step 3: creates the archive partition of `(year, month)` unless it
/// exists, in its own transaction. Checked first because creating a
/// partition locks the whole archive (REST pages reading it wait), and
/// bounded by a lock timeout so it never queues long in front of them.
pub async fn ensure_month(pool: &PgPool, (year, month): (i32, u32)) -> AppResult<()> {
    let (name, start, end) = month_partition(year, month);
    let (exists,): (bool,) = sqlx::query_as("SELECT to_regclass($1) IS NOT NULL")
        .bind(&name)
        .fetch_one(pool)
        .await?;
    if exists {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    bound_lock_waits(&mut tx).await?;
    // DDL takes no bind parameters; the name and bounds are built here from
    // numbers, never from input.
    sqlx::query(&format!(
        "CREATE TABLE IF NOT EXISTS {name} PARTITION OF messages_archive
         FOR VALUES FROM ('{}') TO ('{}')",
        start.to_rfc3339(),
        end.to_rfc3339()
    ))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Step 4: moves `chat`'s messages up to seq `upto` with their reactions
/// (snapshotted as the set clients see, in the order of
/// [`super::message::reactions`]) and records `upto` as archived; returns
/// how many moved. The delete cascades to `reactions` and
/// `urgent_messages`.
pub async fn move_upto(tx: &mut PgConnection, chat: i64, upto: i64) -> AppResult<u64> {
    // Lock the rows first, then the chat, never waiting (module docs). With
    // the rows locked, a reaction cannot commit between the snapshot below
    // and the cascade (it would be lost): the worker's edits and reactions
    // lock their message row, so they wait, then find the message gone.
    sqlx::query("SELECT 1 FROM messages WHERE chat_id = $1 AND seq <= $2 FOR UPDATE NOWAIT")
        .bind(chat)
        .bind(upto)
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT 1 FROM chats WHERE id = $1 FOR UPDATE NOWAIT")
        .bind(chat)
        .execute(&mut *tx)
        .await?;
    let moved = sqlx::query(
        "WITH moved AS (
             DELETE FROM messages WHERE chat_id = $1 AND seq <= $2
             RETURNING id, chat_id, seq, sender_id, content, client_id, reply_to, mentions,
                       priority, created_at, edited_at, deleted_at
         )
         INSERT INTO messages_archive (id, chat_id, seq, sender_id, content, client_id, reply_to,
                                       mentions, priority, created_at, edited_at, deleted_at,
                                       reactions)
         SELECT m.*, coalesce((
             SELECT jsonb_agg(jsonb_build_object('emoji', r.emoji, 'userIds', r.user_ids,
                                                 'count', r.n) ORDER BY r.first, r.emoji)
             FROM (SELECT emoji, array_agg(user_id ORDER BY user_id) AS user_ids,
                          count(*) AS n, min(created_at) AS first
                   FROM reactions WHERE chat_id = m.chat_id AND message_id = m.id
                   GROUP BY emoji) r
         ), '[]'::jsonb)
         FROM moved m",
    )
    .bind(chat)
    .bind(upto)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query("UPDATE chats SET archived_seq = greatest(archived_seq, $2) WHERE id = $1")
        .bind(chat)
        .bind(upto)
        .execute(&mut *tx)
        .await?;
    Ok(moved)
}

/// Whether `e` is a lock that a commit held (SQLSTATE 55P03: a NOWAIT
/// refusal or a lock timeout): the move gave way and may be tried again.
pub fn is_busy(e: &AppError) -> bool {
    matches!(e, AppError::Database(sqlx::Error::Database(db)) if db.code().as_deref() == Some("55P03"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, day, 12, 0, 0).unwrap()
    }

    #[test]
    fn only_a_prefix_of_old_messages_moves() {
        let head = [(1, at(1)), (2, at(2)), (3, at(20)), (4, at(3))];
        assert_eq!(prefix_before(&head, at(10)), Some(2), "stops at seq 3");
        assert_eq!(prefix_before(&head, at(1)), None, "nothing old enough");
        assert_eq!(prefix_before(&head, at(25)), Some(4));
        assert_eq!(prefix_before(&[], at(25)), None);
    }

    #[test]
    fn months_span_the_moved_prefix_only() {
        let dec = Utc.with_ymd_and_hms(2025, 12, 31, 23, 0, 0).unwrap();
        let head = [(1, dec), (2, at(1)), (3, at(2))];
        assert_eq!(months(&head, 1), BTreeSet::from([(2025, 12)]));
        assert_eq!(months(&head, 3), BTreeSet::from([(2025, 12), (2026, 1)]));
    }

    #[test]
    fn month_partitions_are_named_and_bounded_by_month() {
        let (name, start, end) = month_partition(2025, 12);
        assert_eq!(name, "messages_archive_y2025m12");
        assert_eq!(start.to_rfc3339(), "2025-12-01T00:00:00+00:00");
        assert_eq!(end.to_rfc3339(), "2026-01-01T00:00:00+00:00");
        assert_eq!(month_partition(2026, 2).2.month(), 3);
    }
}
