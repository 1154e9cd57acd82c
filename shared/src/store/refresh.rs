//! Refresh tokens: issue, rotate, revoke.
//!
//! Rotation follows the refresh-token-family scheme: each use replaces the
//! presented token with a new one of the same family; presenting a token
//! that was already rotated means a copy is in someone else's hands, so the
//! whole family is revoked and both holders must sign in again.

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    model::User,
    token::{hash_refresh_token, new_refresh_token},
    AppError, AppResult,
};

/// Issues the first token of a new family (at sign-in / sign-up).
pub async fn issue(pool: &PgPool, user_id: i64, ttl: Duration) -> AppResult<String> {
    let token = new_refresh_token();
    insert(pool, user_id, Uuid::new_v4(), &token, ttl).await?;
    Ok(token)
}

async fn insert<'e, E: sqlx::PgExecutor<'e>>(
    executor: E,
    user_id: i64,
    family: Uuid,
    token: &str,
    ttl: Duration,
) -> AppResult<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (user_id, family_id, token_hash, expires_at)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
    )
    .bind(user_id)
    .bind(family)
    .bind(hash_refresh_token(token))
    .bind(ttl.as_secs_f64())
    .execute(executor)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    user_id: i64,
    family_id: Uuid,
    expired: bool,
    rotated: bool,
    revoked: bool,
}

/// Exchanges a valid refresh token for a new one; returns the user and the
/// new token. Reuse of a rotated token revokes the family.
pub async fn rotate(pool: &PgPool, presented: &str, ttl: Duration) -> AppResult<(User, String)> {
    let mut tx = pool.begin().await?;
    let row: Option<Row> = sqlx::query_as(
        "SELECT id, user_id, family_id, expires_at < now() AS expired,
                rotated_at IS NOT NULL AS rotated, revoked_at IS NOT NULL AS revoked
         FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
    )
    .bind(hash_refresh_token(presented))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Err(AppError::unauthorized("invalid refresh token"));
    };
    if row.rotated && !row.revoked {
        revoke_family_in(&mut *tx, row.family_id).await?;
        tx.commit().await?;
        tracing::warn!(
            user_id = row.user_id,
            "refresh token reuse detected; family revoked"
        );
        return Err(AppError::unauthorized(
            "refresh token reuse detected; sign in again",
        ));
    }
    if row.revoked || row.rotated {
        return Err(AppError::unauthorized("refresh token revoked"));
    }
    if row.expired {
        return Err(AppError::unauthorized("refresh token expired"));
    }
    sqlx::query("UPDATE refresh_tokens SET rotated_at = now() WHERE id = $1")
        .bind(row.id)
        .execute(&mut *tx)
        .await?;
    let token = new_refresh_token();
    insert(&mut *tx, row.user_id, row.family_id, &token, ttl).await?;
    let user: User =
        sqlx::query_as("SELECT id, fullname, email, workspace_id FROM users WHERE id = $1")
            .bind(row.user_id)
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok((user, token))
}

/// Revokes the family of `presented` if it belongs to `user_id`. Unknown
/// tokens are ignored: logging out twice is not an error.
pub async fn revoke(pool: &PgPool, user_id: i64, presented: &str) -> AppResult<()> {
    let family: Option<(Uuid,)> = sqlx::query_as(
        "SELECT family_id FROM refresh_tokens WHERE token_hash = $1 AND user_id = $2",
    )
    .bind(hash_refresh_token(presented))
    .bind(user_id)
    .fetch_optional(pool)
    .await?;
    if let Some((family,)) = family {
        revoke_family_in(pool, family).await?;
    }
    Ok(())
}

async fn revoke_family_in<'e, E: sqlx::PgExecutor<'e>>(executor: E, family: Uuid) -> AppResult<()> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now()
         WHERE family_id = $1 AND revoked_at IS NULL",
    )
    .bind(family)
    .execute(executor)
    .await?;
    Ok(())
}
