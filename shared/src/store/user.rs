//! Workspaces and users.

use sqlx::PgPool;

use crate::{
    model::{User, UserWithHash},
    store::conflict_on_unique,
    AppResult,
};

/// Creates the user, creating the workspace first when no workspace of that
/// name (case-insensitive) exists yet. One transaction: a failed signup
/// leaves no empty workspace behind.
pub async fn signup(
    pool: &PgPool,
    fullname: &str,
    email: &str,
    password_hash: &str,
    workspace: &str,
) -> AppResult<User> {
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO workspaces (name) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(workspace)
        .execute(&mut *tx)
        .await?;
    let (workspace_id,): (i64,) =
        sqlx::query_as("SELECT id FROM workspaces WHERE lower(name) = lower($1)")
            .bind(workspace)
            .fetch_one(&mut *tx)
            .await?;
    let user = sqlx::query_as::<_, User>(
        "INSERT INTO users (workspace_id, fullname, email, password_hash)
         VALUES ($1, $2, $3, $4)
         RETURNING id, fullname, email, workspace_id",
    )
    .bind(workspace_id)
    .bind(fullname)
    .bind(email)
    .bind(password_hash)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| conflict_on_unique(e, "a user with this email already exists"))?;
    tx.commit().await?;
    Ok(user)
}

pub async fn find_by_email(pool: &PgPool, email: &str) -> AppResult<Option<UserWithHash>> {
    Ok(sqlx::query_as(
        "SELECT id, fullname, email, workspace_id, password_hash
         FROM users WHERE lower(email) = lower($1)",
    )
    .bind(email)
    .fetch_optional(pool)
    .await?)
}

pub async fn find(pool: &PgPool, user_id: i64) -> AppResult<Option<User>> {
    Ok(
        sqlx::query_as("SELECT id, fullname, email, workspace_id FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(pool)
            .await?,
    )
}

pub async fn list_in_workspace(pool: &PgPool, workspace_id: i64) -> AppResult<Vec<User>> {
    Ok(sqlx::query_as(
        "SELECT id, fullname, email, workspace_id FROM users
         WHERE workspace_id = $1 ORDER BY id",
    )
    .bind(workspace_id)
    .fetch_all(pool)
    .await?)
}

/// The subset of `ids` that are users of `workspace_id`. Ids of other
/// workspaces are indistinguishable from ids that do not exist.
pub async fn existing_in_workspace(
    pool: &PgPool,
    workspace_id: i64,
    ids: &[i64],
) -> AppResult<Vec<i64>> {
    let rows: Vec<(i64,)> =
        sqlx::query_as("SELECT id FROM users WHERE workspace_id = $1 AND id = ANY($2) ORDER BY id")
            .bind(workspace_id)
            .bind(ids)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}
