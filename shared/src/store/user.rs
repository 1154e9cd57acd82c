//! Workspaces and users.
//!
//! Admission rule: a sign-up without an invite creates a new workspace with
//! the new user as its owner; only a valid invite (see [`super::invite`])
//! or a verified address of a domain the owner allows (see
//! [`super::workspace_domain`]) puts a user into an existing workspace.
//! Workspace names are display names and need not be unique.

use sqlx::PgPool;

use crate::{
    model::{User, UserWithHash},
    store::{conflict_on_unique, invite, workspace_domain},
    AppError, AppResult,
};

/// The columns of [`User`], for every query that returns one.
pub const USER_COLUMNS: &str =
    "id, fullname, email, workspace_id, role, deactivated_at IS NULL AS active";

const DUPLICATE_EMAIL: &str = "cannot sign up with this email; sign in instead";

/// How a new account gets into a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// A new workspace of this name, with the user as its owner.
    NewWorkspace(String),
    /// The workspace of the invite whose token hashes to this (redeemed).
    Invite(Vec<u8>),
    /// An existing workspace whose owner allows the e-mail's domain; only
    /// for addresses verified by a mailed link.
    VerifiedDomain(i64),
}

/// Creates the user as `admission` says, in one transaction: a failed
/// sign-up leaves no empty workspace and no used invite behind.
pub async fn signup(
    pool: &PgPool,
    admission: &Admission,
    fullname: &str,
    email: &str,
    password_hash: &str,
) -> AppResult<User> {
    let mut tx = pool.begin().await?;
    let user = create(&mut tx, admission, fullname, email, password_hash).await?;
    tx.commit().await?;
    Ok(user)
}

/// [`signup`] inside the caller's transaction.
pub async fn create(
    tx: &mut sqlx::PgConnection,
    admission: &Admission,
    fullname: &str,
    email: &str,
    password_hash: &str,
) -> AppResult<User> {
    let (workspace_id, role) = match admission {
        Admission::NewWorkspace(name) => {
            let (id,): (i64,) =
                sqlx::query_as("INSERT INTO workspaces (name) VALUES ($1) RETURNING id")
                    .bind(name)
                    .fetch_one(&mut *tx)
                    .await?;
            (id, "owner")
        }
        Admission::Invite(hash) => (invite::redeem_hash(&mut *tx, hash, email).await?, "member"),
        Admission::VerifiedDomain(id) => {
            if !workspace_domain::allows(&mut *tx, *id, email).await? {
                return Err(AppError::forbidden(
                    "this e-mail domain may not join that workspace; ask for an invite",
                ));
            }
            (*id, "member")
        }
    };
    insert(tx, workspace_id, fullname, email, password_hash, role).await
}

async fn insert(
    tx: &mut sqlx::PgConnection,
    workspace_id: i64,
    fullname: &str,
    email: &str,
    password_hash: &str,
    role: &str,
) -> AppResult<User> {
    sqlx::query_as::<_, User>(&format!(
        "INSERT INTO users (workspace_id, fullname, email, password_hash, role)
         VALUES ($1, $2, $3, $4, $5)
         RETURNING {USER_COLUMNS}"
    ))
    .bind(workspace_id)
    .bind(fullname)
    .bind(email)
    .bind(password_hash)
    .bind(role)
    .fetch_one(tx)
    .await
    .map_err(|e| conflict_on_unique(e, DUPLICATE_EMAIL))
}

pub async fn find_by_email(pool: &PgPool, email: &str) -> AppResult<Option<UserWithHash>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS}, password_hash FROM users WHERE lower(email) = lower($1)"
    ))
    .bind(email)
    .fetch_optional(pool)
    .await?)
}

pub async fn find_with_hash(pool: &PgPool, user_id: i64) -> AppResult<Option<UserWithHash>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS}, password_hash FROM users WHERE id = $1"
    ))
    .bind(user_id)
    .fetch_optional(pool)
    .await?)
}

/// The user `user_id` (any executor: a pool or an open transaction).
pub async fn find<'e, E: sqlx::PgExecutor<'e>>(
    executor: E,
    user_id: i64,
) -> AppResult<Option<User>> {
    Ok(
        sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(user_id)
            .fetch_optional(executor)
            .await?,
    )
}

/// The user `user_id` of `workspace_id`, or not found (other workspaces'
/// users are indistinguishable from ids that do not exist).
pub async fn find_in_workspace(pool: &PgPool, workspace_id: i64, user_id: i64) -> AppResult<User> {
    sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND workspace_id = $2"
    ))
    .bind(user_id)
    .bind(workspace_id)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| AppError::not_found("user not found"))
}

pub async fn list_in_workspace(pool: &PgPool, workspace_id: i64) -> AppResult<Vec<User>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE workspace_id = $1 ORDER BY id"
    ))
    .bind(workspace_id)
    .fetch_all(pool)
    .await?)
}

/// The subset of `ids` that are active users of `workspace_id`. Ids of
/// other workspaces are indistinguishable from ids that do not exist.
pub async fn existing_in_workspace(
    pool: &PgPool,
    workspace_id: i64,
    ids: &[i64],
) -> AppResult<Vec<i64>> {
    let rows: Vec<(i64,)> = sqlx::query_as(
        "SELECT id FROM users
         WHERE workspace_id = $1 AND id = ANY($2) AND deactivated_at IS NULL ORDER BY id",
    )
    .bind(workspace_id)
    .bind(ids)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

pub async fn set_password(pool: &PgPool, user_id: i64, password_hash: &str) -> AppResult<()> {
    sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
        .bind(user_id)
        .bind(password_hash)
        .execute(pool)
        .await?;
    Ok(())
}

/// Marks the user deactivated and revokes every refresh token of theirs.
pub async fn deactivate(pool: &PgPool, user_id: i64) -> AppResult<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE users SET deactivated_at = coalesce(deactivated_at, now()) WHERE id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn set_role(pool: &PgPool, user_id: i64, role: &str) -> AppResult<User> {
    Ok(sqlx::query_as(&format!(
        "UPDATE users SET role = $2 WHERE id = $1 RETURNING {USER_COLUMNS}"
    ))
    .bind(user_id)
    .bind(role)
    .fetch_one(pool)
    .await?)
}
