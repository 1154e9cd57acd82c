//! Fixtures shared by the store tests of this crate.

use sqlx::PgPool;

/// A new workspace named `w`.
pub async fn workspace(pool: &PgPool) -> i64 {
    sqlx::query_scalar("INSERT INTO workspaces (name) VALUES ('w') RETURNING id")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A user of workspace `ws` named `name` (e-mail `<name>@w.test`).
pub async fn user(pool: &PgPool, ws: i64, name: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO users (workspace_id, fullname, email, password_hash)
         VALUES ($1, $2, $3, 'x') RETURNING id",
    )
    .bind(ws)
    .bind(name)
    .bind(format!("{name}@w.test"))
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Adds `members` to chat `chat` with the default role.
pub async fn add_members(pool: &PgPool, chat: i64, members: &[i64]) {
    sqlx::query("INSERT INTO chat_members (chat_id, user_id) SELECT $1, unnest($2::bigint[])")
        .bind(chat)
        .bind(members)
        .execute(pool)
        .await
        .unwrap();
}
