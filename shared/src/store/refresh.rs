//! Refresh tokens: issue, rotate, revoke. A refresh-token family is a
//! session: its id is the `sid` claim of every access token issued for it.
//!
//! Rotation follows the refresh-token-family scheme: each use replaces the
//! presented token with its successor in the same family. Presenting a
//! token that was already rotated means a copy is in someone else's hands,
//! so the whole family is revoked and both holders must sign in again,
//! except within a short grace window after the rotation: two tabs (or a
//! client retry) refreshing with the same token at once both get the same
//! successor. Successors are derived from the presented token with a
//! server key ([`crate::token::TokenKeys::successor_refresh_token`]), so the
//! second request can be answered although only hashes are stored.

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    model::User,
    token::{hash_refresh_token, new_refresh_token},
    AppError, AppResult,
};

/// How long after a rotation the rotated token still yields its successor.
pub const REUSE_GRACE: Duration = Duration::from_secs(10);

/// Issues the first token of a new family (at sign-in / sign-up); returns
/// the token and the family (session) id.
pub async fn issue(pool: &PgPool, user_id: i64, ttl: Duration) -> AppResult<(String, Uuid)> {
    let token = new_refresh_token();
    let family = Uuid::new_v4();
    insert(pool, user_id, family, &token, ttl).await?;
    Ok((token, family))
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
    in_grace: bool,
    revoked: bool,
    deactivated: bool,
}

/// What presenting a refresh token led to.
pub enum Rotation {
    /// A token for the session: the successor, fresh or (inside the grace
    /// window) the one already issued.
    Issued {
        user: User,
        token: String,
        family: Uuid,
    },
    /// A rotated token came back after the grace window: the family is now
    /// revoked; the caller must end the session's live connections.
    Reused { user_id: i64, family: Uuid },
}

/// Exchanges a valid refresh token for its successor `successor`.
pub async fn rotate(
    pool: &PgPool,
    presented: &str,
    successor: &str,
    ttl: Duration,
) -> AppResult<Rotation> {
    let mut tx = pool.begin().await?;
    // A family with any revoked token is dead: a revocation that raced a
    // rotation (its UPDATE did not see the successor just inserted) still
    // ends the whole family. The user row is share-locked so a concurrent
    // deactivation either waits for this rotation or is seen by it.
    let row: Option<Row> = sqlx::query_as(
        "SELECT r.id, r.user_id, r.family_id, r.expires_at < now() AS expired,
                r.rotated_at IS NOT NULL AS rotated,
                coalesce(r.rotated_at > now() - make_interval(secs => $2), false) AS in_grace,
                EXISTS (SELECT 1 FROM refresh_tokens f
                        WHERE f.family_id = r.family_id AND f.revoked_at IS NOT NULL) AS revoked,
                u.deactivated_at IS NOT NULL AS deactivated
         FROM refresh_tokens r JOIN users u ON u.id = r.user_id
         WHERE r.token_hash = $1 FOR UPDATE OF r FOR SHARE OF u",
    )
    .bind(hash_refresh_token(presented))
    .bind(REUSE_GRACE.as_secs_f64())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Err(AppError::unauthorized("invalid refresh token"));
    };
    if row.revoked {
        return Err(AppError::unauthorized("refresh token revoked"));
    }
    // (`revoked` covers the whole family: see the query.)
    if row.deactivated {
        return Err(AppError::unauthorized("account deactivated"));
    }
    if row.rotated {
        if row.in_grace && successor_is_live(&mut tx, row.family_id, successor).await? {
            let user = user_in(&mut tx, row.user_id).await?;
            tx.commit().await?;
            return Ok(Rotation::Issued {
                user,
                token: successor.to_string(),
                family: row.family_id,
            });
        }
        revoke_family_in(&mut *tx, row.family_id).await?;
        tx.commit().await?;
        tracing::warn!(
            user_id = row.user_id,
            "refresh token reuse detected; family revoked"
        );
        return Ok(Rotation::Reused {
            user_id: row.user_id,
            family: row.family_id,
        });
    }
    if row.expired {
        return Err(AppError::unauthorized("refresh token expired"));
    }
    sqlx::query("UPDATE refresh_tokens SET rotated_at = now() WHERE id = $1")
        .bind(row.id)
        .execute(&mut *tx)
        .await?;
    insert(&mut *tx, row.user_id, row.family_id, successor, ttl).await?;
    let user = user_in(&mut tx, row.user_id).await?;
    tx.commit().await?;
    Ok(Rotation::Issued {
        user,
        token: successor.to_string(),
        family: row.family_id,
    })
}

/// True when `successor` is an unrotated, unrevoked token of `family`.
async fn successor_is_live(
    tx: &mut sqlx::PgConnection,
    family: Uuid,
    successor: &str,
) -> AppResult<bool> {
    let live: Option<(i64,)> = sqlx::query_as(
        "SELECT id FROM refresh_tokens
         WHERE token_hash = $1 AND family_id = $2
           AND rotated_at IS NULL AND revoked_at IS NULL AND expires_at > now()",
    )
    .bind(hash_refresh_token(successor))
    .bind(family)
    .fetch_optional(tx)
    .await?;
    Ok(live.is_some())
}

async fn user_in(tx: &mut sqlx::PgConnection, user_id: i64) -> AppResult<User> {
    crate::store::user::find(tx, user_id)
        .await?
        .ok_or_else(|| AppError::unauthorized("unknown user"))
}

/// Revokes the family of `presented` if it belongs to `user_id`; returns
/// the family. Unknown tokens are ignored: logging out twice is no error.
pub async fn revoke(pool: &PgPool, user_id: i64, presented: &str) -> AppResult<Option<Uuid>> {
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
    Ok(family.map(|(f,)| f))
}

/// Revokes one session (family) of `user_id`.
pub async fn revoke_session(pool: &PgPool, user_id: i64, family: Uuid) -> AppResult<()> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now()
         WHERE family_id = $1 AND user_id = $2 AND revoked_at IS NULL",
    )
    .bind(family)
    .bind(user_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Revokes every session of `user_id` except `keep`; returns the revoked
/// families that were still live.
pub async fn revoke_all_except(
    pool: &PgPool,
    user_id: i64,
    keep: Option<Uuid>,
) -> AppResult<Vec<Uuid>> {
    let rows: Vec<(Uuid,)> = sqlx::query_as(
        "UPDATE refresh_tokens SET revoked_at = now()
         WHERE user_id = $1 AND revoked_at IS NULL
           AND ($2::uuid IS NULL OR family_id <> $2)
         RETURNING family_id",
    )
    .bind(user_id)
    .bind(keep)
    .fetch_all(pool)
    .await?;
    let mut families: Vec<Uuid> = rows.into_iter().map(|(f,)| f).collect();
    families.sort();
    families.dedup();
    Ok(families)
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
