//! Workspace invites: the only way into an existing workspace.
//!
//! An invite is a random secret shown once to the owner or admin who made
//! it; only its SHA-256 is stored (like refresh tokens). It expires, may be
//! single-use and may be bound to one e-mail address. It is only as good
//! as its creator: once they are deactivated or no longer owner/admin,
//! their invites admit nobody. Redeeming locks the row, so a single-use
//! invite admits exactly one user even under races.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use crate::{
    token::{hash_refresh_token, new_refresh_token},
    AppError, AppResult,
};

/// An invite as its workspace's owners and admins see it (no secret).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Invite {
    pub id: i64,
    pub email: Option<String>,
    pub single_use: bool,
    pub uses: i32,
    pub created_by: i64,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const INVITE_COLUMNS: &str =
    "id, email, single_use, uses, created_by, expires_at, revoked_at, created_at";

/// The refusal for every unusable invite: unknown, expired, revoked, used
/// up or bound to another e-mail look the same from outside.
fn unusable() -> AppError {
    AppError::forbidden("invite is invalid, expired, revoked or already used")
}

/// Creates an invite; returns it with its secret token.
pub async fn create(
    pool: &PgPool,
    workspace_id: i64,
    created_by: i64,
    email: Option<&str>,
    single_use: bool,
    lifetime: Duration,
) -> AppResult<(Invite, String)> {
    let token = new_refresh_token();
    let invite = sqlx::query_as(&format!(
        "INSERT INTO workspace_invites
            (workspace_id, token_hash, created_by, email, single_use, expires_at)
         VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))
         RETURNING {INVITE_COLUMNS}"
    ))
    .bind(workspace_id)
    .bind(hash_refresh_token(&token))
    .bind(created_by)
    .bind(email)
    .bind(single_use)
    .bind(lifetime.as_secs_f64())
    .fetch_one(pool)
    .await?;
    Ok((invite, token))
}

pub async fn list(pool: &PgPool, workspace_id: i64) -> AppResult<Vec<Invite>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {INVITE_COLUMNS} FROM workspace_invites WHERE workspace_id = $1 ORDER BY id DESC"
    ))
    .bind(workspace_id)
    .fetch_all(pool)
    .await?)
}

/// Revokes an invite of the workspace; not found for other workspaces'.
pub async fn revoke(pool: &PgPool, workspace_id: i64, invite_id: i64) -> AppResult<()> {
    let done = sqlx::query(
        "UPDATE workspace_invites SET revoked_at = coalesce(revoked_at, now())
         WHERE id = $1 AND workspace_id = $2",
    )
    .bind(invite_id)
    .bind(workspace_id)
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(AppError::not_found("invite not found"));
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Redeemable {
    id: i64,
    workspace_id: i64,
    email: Option<String>,
    usable: bool,
}

/// Checks and uses the invite for `email` inside the sign-up transaction;
/// returns the workspace it admits to.
pub async fn redeem(tx: &mut sqlx::PgConnection, token: &str, email: &str) -> AppResult<i64> {
    redeem_hash(tx, &hash_refresh_token(token.trim()), email).await
}

/// [`redeem`] by the token's hash (a pending sign-up keeps only the hash).
pub async fn redeem_hash(tx: &mut sqlx::PgConnection, hash: &[u8], email: &str) -> AppResult<i64> {
    let invite = usable(&mut *tx, hash, email, true).await?;
    sqlx::query("UPDATE workspace_invites SET uses = uses + 1 WHERE id = $1")
        .bind(invite.id)
        .execute(&mut *tx)
        .await?;
    Ok(invite.workspace_id)
}

/// Whether the invite would admit `email` now, without using it (a
/// verified sign-up checks early and redeems when the link is followed).
pub async fn check(pool: &PgPool, token: &str, email: &str) -> AppResult<()> {
    let mut conn = pool.acquire().await?;
    usable(&mut conn, &hash_refresh_token(token.trim()), email, false).await?;
    Ok(())
}

async fn usable(
    conn: &mut sqlx::PgConnection,
    hash: &[u8],
    email: &str,
    lock: bool,
) -> AppResult<Redeemable> {
    let row: Option<Redeemable> = sqlx::query_as(&format!(
        "SELECT i.id, i.workspace_id, i.email,
                i.revoked_at IS NULL AND i.expires_at > now() AND NOT (i.single_use AND i.uses > 0)
                    AND c.deactivated_at IS NULL AND c.role IN ('owner', 'admin') AS usable
         FROM workspace_invites i JOIN users c ON c.id = i.created_by
         WHERE i.token_hash = $1 {}",
        if lock { "FOR UPDATE OF i" } else { "" }
    ))
    .bind(hash)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(invite) = row.filter(|r| r.usable) else {
        return Err(unusable());
    };
    match &invite.email {
        Some(bound) if !bound.eq_ignore_ascii_case(email) => Err(unusable()),
        _ => Ok(invite),
    }
}
