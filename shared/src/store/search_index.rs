//! Messages as an external search index (Meilisearch, see
//! [`crate::search`]) stores them: the rows the indexer and `worker
//! reindex` turn into documents.
//!
//! Only live messages are returned (`deleted_at IS NULL`): a message id
//! asked for and absent from the answer is deleted or gone, and must be
//! removed from the index. The sender's name is denormalised into each
//! row, and `has_link` uses the PostgreSQL backend's rule (`content ~*
//! 'https?://'`), so both backends agree on `has:link`.

use sqlx::PgPool;

pub use crate::search::IndexedMessage;
use crate::AppResult;

const SELECT: &str = "SELECT m.id, m.chat_id, m.seq, m.sender_id, u.fullname AS sender_name,
        m.content, m.created_at, m.mentions, m.content ~* 'https?://' AS has_link
 FROM messages m JOIN users u ON u.id = m.sender_id";

/// The live messages among `ids` (deleted and unknown ids are left out),
/// ordered by id.
pub async fn documents(pool: &PgPool, ids: &[i64]) -> AppResult<Vec<IndexedMessage>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as(&format!(
        "{SELECT} WHERE m.id = ANY($1) AND m.deleted_at IS NULL ORDER BY m.id"
    ))
    .bind(ids)
    .fetch_all(pool)
    .await?)
}

/// Up to `limit` live messages with an id above `after_id`, by id: one
/// page of a full rebuild (pass the last id of a page to get the next).
pub async fn documents_after(
    pool: &PgPool,
    after_id: i64,
    limit: usize,
) -> AppResult<Vec<IndexedMessage>> {
    Ok(sqlx::query_as(&format!(
        "{SELECT} WHERE m.id > $1 AND m.deleted_at IS NULL ORDER BY m.id LIMIT $2"
    ))
    .bind(after_id)
    .bind(limit as i64)
    .fetch_all(pool)
    .await?)
}
