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

/// A watermark moved by [`read_up_to`], with the member's counts after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct ReadUpTo {
    #[sqlx(flatten)]
    pub counts: Counts,
    /// The watermark before the move.
    pub before: i64,
    /// The watermark now.
    pub after: i64,
}

/// Moves each `(chats[i], users[i])` read watermark up to `seqs[i]`, never
/// back and never past the chat's newest message, and returns each moved
/// member's counts after the move: one statement, so a send batch (the
/// senders have read their own messages) and a `read.mark` pay one round
/// trip for the watermark and the badge. Pairs that are not members
/// return no row. The rows are locked before they are read, so `before`
/// is the watermark this statement replaced.
pub async fn read_up_to(
    tx: &mut PgConnection,
    chats: &[i64],
    users: &[i64],
    seqs: &[i64],
) -> AppResult<Vec<ReadUpTo>> {
    Ok(sqlx::query_as(
        "WITH o AS (
           SELECT x.chat_id, x.user_id, x.last_read_seq AS before,
                  GREATEST(x.last_read_seq, LEAST(v.seq, c.last_seq)) AS after
           FROM chat_members x
           JOIN unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS v(chat_id, user_id, seq)
             ON x.chat_id = v.chat_id AND x.user_id = v.user_id
           JOIN chats c ON c.id = x.chat_id
           FOR UPDATE OF x
         ), u AS (
           UPDATE chat_members m SET last_read_seq = o.after
           FROM o WHERE m.chat_id = o.chat_id AND m.user_id = o.user_id
           RETURNING m.chat_id, m.user_id, o.before, o.after
         )
         SELECT u.chat_id, u.user_id, GREATEST(c.last_seq - u.after, 0) AS unread,
                (SELECT count(*) FROM messages x
                 WHERE x.chat_id = u.chat_id AND x.seq > u.after
                   AND u.user_id = ANY(x.mentions) AND x.deleted_at IS NULL) AS mentions,
                u.before, u.after
         FROM u JOIN chats c ON c.id = u.chat_id",
    )
    .bind(chats)
    .bind(users)
    .bind(seqs)
    .fetch_all(tx)
    .await?)
}
