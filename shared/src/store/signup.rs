//! Pending sign-ups (`SIGNUP_MODE=verified`).
//!
//! A sign-up request stores what the account will be (name, password hash,
//! how it is admitted) under the SHA-256 of a random token and mails the
//! token as a link. Following the link creates the account exactly once.
//! When the address already has an account, nothing is stored and the
//! address gets a notice instead; the caller of `POST /api/signup` cannot
//! tell the two apart, so sign-up does not reveal which e-mails exist.

use std::time::Duration;

use sqlx::PgPool;

use crate::{
    model::User,
    store::{
        email::{self, Email},
        user::{self, Admission},
    },
    token::hash_refresh_token,
    AppError, AppResult,
};

/// How long a mailed sign-up link works.
pub const LINK_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// What a followed link turns into.
#[derive(Debug, Clone)]
pub struct PendingSignup {
    pub email: String,
    pub fullname: String,
    pub password_hash: String,
    pub admission: Admission,
}

/// The two mails of a request: the link for a new address, the notice for
/// an address that already has an account.
pub struct Mails {
    pub verify: Email,
    pub already_registered: Email,
}

#[derive(sqlx::FromRow)]
struct Stored {
    id: i64,
    email: String,
    fullname: String,
    password_hash: String,
    workspace_name: Option<String>,
    invite_hash: Option<Vec<u8>>,
    join_workspace_id: Option<i64>,
}

impl Stored {
    fn admission(&self) -> Option<Admission> {
        match (
            &self.workspace_name,
            &self.invite_hash,
            self.join_workspace_id,
        ) {
            (Some(name), None, None) => Some(Admission::NewWorkspace(name.clone())),
            (None, Some(hash), None) => Some(Admission::Invite(hash.clone())),
            (None, None, Some(id)) => Some(Admission::VerifiedDomain(id)),
            _ => None,
        }
    }
}

/// Records the request under `token` and queues `mails.verify`, or, when
/// the address has an account, queues only `mails.already_registered`.
/// One transaction; the caller answers the same either way.
pub async fn request(
    pool: &PgPool,
    pending: &PendingSignup,
    token: &str,
    mails: &Mails,
) -> AppResult<()> {
    let mut tx = pool.begin().await?;
    let (taken,): (bool,) =
        sqlx::query_as("SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($1))")
            .bind(&pending.email)
            .fetch_one(&mut *tx)
            .await?;
    if taken {
        email::enqueue(&mut *tx, &mails.already_registered).await?;
    } else {
        insert(&mut tx, pending, token).await?;
        email::enqueue(&mut *tx, &mails.verify).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn insert(tx: &mut sqlx::PgConnection, p: &PendingSignup, token: &str) -> AppResult<()> {
    let (name, invite, join) = match &p.admission {
        Admission::NewWorkspace(n) => (Some(n.as_str()), None, None),
        Admission::Invite(h) => (None, Some(h.as_slice()), None),
        Admission::VerifiedDomain(id) => (None, None, Some(*id)),
    };
    sqlx::query(
        "INSERT INTO signup_requests (token_hash, email, fullname, password_hash,
                                      workspace_name, invite_hash, join_workspace_id, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8))",
    )
    .bind(hash_refresh_token(token))
    .bind(&p.email)
    .bind(&p.fullname)
    .bind(&p.password_hash)
    .bind(name)
    .bind(invite)
    .bind(join)
    .bind(LINK_LIFETIME.as_secs_f64())
    .execute(tx)
    .await?;
    Ok(())
}

/// Follows a mailed link: creates the account (and its workspace, or
/// redeems the invite, or checks the domain list again) exactly once.
/// Unknown, expired and used links look the same.
pub async fn confirm(pool: &PgPool, token: &str) -> AppResult<User> {
    let mut tx = pool.begin().await?;
    let stored: Option<Stored> = sqlx::query_as(
        "SELECT id, email, fullname, password_hash, workspace_name, invite_hash, join_workspace_id
         FROM signup_requests
         WHERE token_hash = $1 AND consumed_at IS NULL AND expires_at > now()
         FOR UPDATE",
    )
    .bind(hash_refresh_token(token.trim()))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(stored) = stored else {
        return Err(AppError::forbidden(
            "the sign-up link is invalid, expired or already used",
        ));
    };
    let admission = stored.admission().ok_or_else(|| {
        AppError::Internal(anyhow::anyhow!("signup request {} malformed", stored.id))
    })?;
    sqlx::query("UPDATE signup_requests SET consumed_at = now() WHERE id = $1")
        .bind(stored.id)
        .execute(&mut *tx)
        .await?;
    let user = user::create(
        &mut tx,
        &admission,
        &stored.fullname,
        &stored.email,
        &stored.password_hash,
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

/// Deletes requests that expired more than a day ago (the worker's sweep).
pub async fn purge_expired(pool: &PgPool) -> AppResult<u64> {
    Ok(
        sqlx::query("DELETE FROM signup_requests WHERE expires_at < now() - interval '1 day'")
            .execute(pool)
            .await?
            .rows_affected(),
    )
}
