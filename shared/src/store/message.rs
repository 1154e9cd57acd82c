//! Messages: the columns every query returning a [`crate::model::Message`]
//! selects, shared by the worker (commits) and the gateway (paging), so the
//! wire shape cannot drift between them, and the gateway's reads.

use sqlx::PgPool;

use crate::{model::Message, AppResult};

/// The columns of [`crate::model::Message`], in its field order.
pub const COLUMNS: &str = "id, chat_id, seq, sender_id, content, client_id, reply_to, mentions, \
     priority, created_at, edited_at, deleted_at";

/// The chat of message `id`, if it exists.
pub async fn chat_of(pool: &PgPool, id: i64) -> AppResult<Option<i64>> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT chat_id FROM messages WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|(chat,)| chat))
}

/// Where a page of a chat's messages starts.
#[derive(Debug, Clone, Copy)]
pub enum PageFrom {
    /// Forwards from after this seq.
    After(i64),
    /// Backwards from before this seq (`i64::MAX`: the newest page).
    Before(i64),
}

/// Up to `limit` messages of `chat` from `from`, in seq order, and
/// whether more lie beyond them in that direction.
pub async fn page(
    pool: &PgPool,
    chat: i64,
    from: PageFrom,
    limit: i64,
) -> AppResult<(Vec<Message>, bool)> {
    let (sql, seq) = match from {
        PageFrom::After(seq) => (
            format!("SELECT {COLUMNS} FROM messages WHERE chat_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"),
            seq,
        ),
        PageFrom::Before(seq) => (
            format!("SELECT {COLUMNS} FROM messages WHERE chat_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"),
            seq,
        ),
    };
    let mut rows: Vec<Message> = sqlx::query_as(&sql)
        .bind(chat)
        .bind(seq)
        .bind(limit + 1)
        .fetch_all(pool)
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    if let PageFrom::Before(_) = from {
        rows.reverse();
    }
    Ok((rows, more))
}
