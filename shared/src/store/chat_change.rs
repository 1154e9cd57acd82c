//! Changes of a chat's settings and owner, made by the worker inside its
//! batch transaction (see `worker/src/chat_change.rs`): the change, the
//! `chat.updated` event that announces it and the writes committed after
//! it are numbered and ordered together.
//!
//! Each function re-reads the chat in the same transaction, so the event
//! carries exactly what was committed.

use sqlx::PgConnection;

use super::chat;
use crate::{model::Chat, AppError, AppResult};

/// What `PATCH /api/chat/{id}` changes; `None` keeps a field.
#[derive(Debug, Clone, Copy, Default)]
pub struct Settings<'a> {
    pub name: Option<&'a str>,
    pub description: Option<&'a str>,
    pub read_only: Option<bool>,
}

/// Applies `settings` to `chat_id` and returns the chat after it. Text
/// PostgreSQL cannot store (NUL) is refused before any statement runs:
/// gateways refuse it in every REST body, but an entry written any other
/// way must not fail the statement, which would abort the worker's whole
/// batch.
pub async fn update(
    tx: &mut PgConnection,
    chat_id: i64,
    settings: Settings<'_>,
) -> AppResult<Chat> {
    if [settings.name, settings.description]
        .iter()
        .flatten()
        .any(|text| text.contains('\0'))
    {
        return Err(AppError::validation(
            "name and description must not contain NUL characters",
        ));
    }
    sqlx::query(
        "UPDATE chats SET name = coalesce($2, name), description = coalesce($3, description),
                read_only = coalesce($4, read_only), updated_at = now()
         WHERE id = $1",
    )
    .bind(chat_id)
    .bind(settings.name)
    .bind(settings.description)
    .bind(settings.read_only)
    .execute(&mut *tx)
    .await?;
    chat::get(&mut *tx, chat_id).await
}

/// Makes member `to` the owner of `chat_id` and its owner `from` an admin;
/// returns the chat after it. `to` must be a member (422 otherwise). The
/// chat row is locked before the member rows, the order every membership
/// write takes them in (`chat::add_members`, `chat::remove_members`).
pub async fn transfer(tx: &mut PgConnection, chat_id: i64, from: i64, to: i64) -> AppResult<Chat> {
    sqlx::query("SELECT 1 FROM chats WHERE id = $1 FOR UPDATE")
        .bind(chat_id)
        .execute(&mut *tx)
        .await?;
    let promoted =
        sqlx::query("UPDATE chat_members SET role = 'owner' WHERE chat_id = $1 AND user_id = $2")
            .bind(chat_id)
            .bind(to)
            .execute(&mut *tx)
            .await?;
    if promoted.rows_affected() == 0 {
        return Err(AppError::validation(
            "the new owner must be a member of the chat",
        ));
    }
    sqlx::query("UPDATE chat_members SET role = 'admin' WHERE chat_id = $1 AND user_id = $2")
        .bind(chat_id)
        .bind(from)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE chats SET owner_id = $2, updated_at = now() WHERE id = $1")
        .bind(chat_id)
        .bind(to)
        .execute(&mut *tx)
        .await?;
    chat::get(&mut *tx, chat_id).await
}
