//! Fencing epochs of ingest shards (`shard_fences`, migration 11).
//!
//! A Redis lease says who *should* process a shard; it cannot stop a worker
//! that lost its lease without noticing (Redis restarted and forgot every
//! lease, or the worker stalled past the lease lifetime) from committing a
//! batch it is still holding. The epoch does: a worker draws a new one from
//! PostgreSQL each time it takes a lease, and every commit re-reads the
//! shard's epoch under a share lock in its own transaction. The two
//! statements conflict on the shard's row, so a taker waits for the old
//! owner's in-flight commit, and the old owner's next commit sees a newer
//! epoch and rolls back: at any moment at most one worker commits a
//! shard's events. Epochs come from one sequence, so they also order across
//! shards (the topic-publish script compares them per chat).

use sqlx::{PgConnection, PgPool};

use crate::AppResult;

/// A shard and the epoch its holder was given.
pub type Fence = (u32, i64);

/// Makes the caller the shard's current holder: draws a new epoch, which
/// every earlier holder's commits will now fail against.
pub async fn take(pool: &PgPool, shard: u32) -> AppResult<i64> {
    let (epoch,): (i64,) = sqlx::query_as(
        "INSERT INTO shard_fences (shard, epoch) VALUES ($1, nextval('fence_epochs'))
         ON CONFLICT (shard) DO UPDATE SET epoch = EXCLUDED.epoch
         RETURNING epoch",
    )
    .bind(shard as i32)
    .fetch_one(pool)
    .await?;
    Ok(epoch)
}

/// The shards of `fences` whose epoch is no longer the one given, checked
/// inside the committing transaction and share-locked until it ends.
/// Empty when the caller may commit.
pub async fn stale(tx: &mut PgConnection, fences: &[Fence]) -> AppResult<Vec<u32>> {
    if fences.is_empty() {
        return Ok(Vec::new());
    }
    let shards: Vec<i32> = fences.iter().map(|&(s, _)| s as i32).collect();
    let current: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT shard, epoch FROM shard_fences WHERE shard = ANY($1) ORDER BY shard FOR SHARE",
    )
    .bind(&shards)
    .fetch_all(&mut *tx)
    .await?;
    Ok(fences
        .iter()
        .filter(|&&(shard, epoch)| {
            !current
                .iter()
                .any(|&(s, e)| s as u32 == shard && e == epoch)
        })
        .map(|&(shard, _)| shard)
        .collect())
}
