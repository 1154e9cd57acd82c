//! Unread badges computed from PostgreSQL: unread = the chat's newest seq
//! minus the member's read watermark; mentions = undeleted messages after
//! the watermark that mention the member. These are the absolute counts
//! that repair any drift of the Redis counters whenever they are sent.

use sqlx::PgConnection;

use crate::AppResult;

/// One member's counts in one chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Counts {
    pub chat_id: i64,
    pub user_id: i64,
    pub unread: i64,
    pub mentions: i64,
}

/// The counts of each (chat, user) pair given as two parallel arrays, in
/// one statement (inside the caller's transaction).
pub async fn of_members(
    tx: &mut PgConnection,
    chat_ids: &[i64],
    user_ids: &[i64],
) -> AppResult<Vec<Counts>> {
    Ok(sqlx::query_as(
        "SELECT m.chat_id, m.user_id, GREATEST(c.last_seq - m.last_read_seq, 0) AS unread,
                (SELECT count(*) FROM messages x
                 WHERE x.chat_id = m.chat_id AND x.seq > m.last_read_seq
                   AND m.user_id = ANY(x.mentions) AND x.deleted_at IS NULL) AS mentions
         FROM unnest($1::bigint[], $2::bigint[]) AS v(chat_id, user_id)
         JOIN chat_members m ON m.chat_id = v.chat_id AND m.user_id = v.user_id
         JOIN chats c ON c.id = m.chat_id",
    )
    .bind(chat_ids)
    .bind(user_ids)
    .fetch_all(tx)
    .await?)
}
