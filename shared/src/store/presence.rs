//! The durable half of presence: a user's manual state (`away`, `dnd`,
//! `brb`, or none) and when they were last seen. Redis holds the live
//! state (see [`crate::presence`]); these columns make the manual state
//! survive reconnects and Redis restarts, and give `lastSeen` for users
//! Redis no longer knows.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::AppResult;

/// The user's manual state (`None`: presence follows activity).
pub async fn manual(pool: &PgPool, user_id: i64) -> AppResult<Option<String>> {
    let row: Option<(Option<String>,)> =
        sqlx::query_as("SELECT presence_manual FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(pool)
            .await?;
    Ok(row.and_then(|(m,)| m))
}

pub async fn set_manual(pool: &PgPool, user_id: i64, state: Option<&str>) -> AppResult<()> {
    sqlx::query("UPDATE users SET presence_manual = $2 WHERE id = $1")
        .bind(user_id)
        .bind(state)
        .execute(pool)
        .await?;
    Ok(())
}

/// Records that the user was last seen at `at_ms` (Unix ms); never moves
/// the time back.
pub async fn set_last_seen(pool: &PgPool, user_id: i64, at_ms: i64) -> AppResult<()> {
    sqlx::query(
        "UPDATE users SET last_seen_at = GREATEST(last_seen_at, to_timestamp($2::float8 / 1000))
         WHERE id = $1",
    )
    .bind(user_id)
    .bind(at_ms as f64)
    .execute(pool)
    .await?;
    Ok(())
}

/// Last-seen times of `ids` in `workspace_id` (active users only; others
/// are absent from the result).
pub async fn last_seen(
    pool: &PgPool,
    workspace_id: i64,
    ids: &[i64],
) -> AppResult<Vec<(i64, Option<DateTime<Utc>>)>> {
    Ok(sqlx::query_as(
        "SELECT id, last_seen_at FROM users
         WHERE workspace_id = $1 AND id = ANY($2) AND deactivated_at IS NULL ORDER BY id",
    )
    .bind(workspace_id)
    .bind(ids)
    .fetch_all(pool)
    .await?)
}
