//! Messages: the columns every query returning a [`crate::model::Message`]
//! selects, shared by the worker (commits) and the gateway (paging), so the
//! wire shape cannot drift between them; the gateway's reads and the
//! worker's bulk insert of a run of sends.
//!
//! Reactions likewise have one query turning `reactions` rows into the
//! `[{emoji, userIds, count}]` set clients see: the worker puts it into
//! `message.reaction` frames and the gateway into REST message pages, so
//! both show a message's reactions in the same shape and order (earliest
//! reacted emoji first, user ids ascending).

use std::collections::HashMap;

use sqlx::{PgConnection, PgExecutor, PgPool};

use crate::{
    model::{Message, Reaction},
    AppResult,
};

/// The columns of [`crate::model::Message`], in its field order.
pub const COLUMNS: &str = "id, chat_id, seq, sender_id, content, client_id, reply_to, mentions, \
     priority, created_at, edited_at, deleted_at";

/// The chat of message `id`, if it exists, hot or archived (a retried
/// edit of a message archived since is answered as a duplicate by the
/// worker; a new one is refused there as `not_found`). The archive is only
/// read when the message is not hot (the append stops at the first row).
pub async fn chat_of(pool: &PgPool, id: i64) -> AppResult<Option<i64>> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT chat_id FROM messages WHERE id = $1
         UNION ALL SELECT chat_id FROM messages_archive WHERE id = $1 LIMIT 1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(chat,)| chat))
}

/// Where a page of a chat's messages starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageFrom {
    /// Forwards from after this seq.
    After(i64),
    /// Backwards from before this seq (`i64::MAX`: the newest page).
    Before(i64),
}

/// Up to `limit` messages of `chat` from `from`, in seq order, and
/// whether more lie beyond them in that direction.
pub async fn page<'c>(
    db: impl PgExecutor<'c>,
    chat: i64,
    from: PageFrom,
    limit: i64,
) -> AppResult<(Vec<Message>, bool)> {
    page_rows(
        db,
        &format!("SELECT {COLUMNS} FROM messages"),
        chat,
        from,
        limit,
    )
    .await
}

/// One page of rows of `select` (`SELECT … FROM <table>` of a table with
/// `chat_id` and `seq`: `messages` or `messages_archive`), in seq order,
/// and whether more lie beyond (`limit` may be 0: only that answer).
pub(crate) async fn page_rows<'c, T>(
    db: impl PgExecutor<'c>,
    select: &str,
    chat: i64,
    from: PageFrom,
    limit: i64,
) -> AppResult<(Vec<T>, bool)>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let (cond, order, seq) = match from {
        PageFrom::After(seq) => (">", "", seq),
        PageFrom::Before(seq) => ("<", "DESC", seq),
    };
    let mut rows: Vec<T> = sqlx::query_as(&format!(
        "{select} WHERE chat_id = $1 AND seq {cond} $2 ORDER BY seq {order} LIMIT $3"
    ))
    .bind(chat)
    .bind(seq)
    .bind(limit + 1)
    .fetch_all(db)
    .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit.max(0) as usize);
    if let PageFrom::Before(_) = from {
        rows.reverse();
    }
    Ok((rows, more))
}

/// The chat of each of `ids` that exists, hot or archived: `(message id,
/// chat id)`. The archive is only read for ids not found hot (a lookup by
/// id probes every month of it), as in [`chat_of`].
pub async fn chats_of(tx: &mut PgConnection, ids: &[i64]) -> AppResult<Vec<(i64, i64)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut found: Vec<(i64, i64)> =
        sqlx::query_as("SELECT id, chat_id FROM messages WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(&mut *tx)
            .await?;
    let hot: std::collections::HashSet<i64> = found.iter().map(|(id, _)| *id).collect();
    let rest: Vec<i64> = ids.iter().copied().filter(|id| !hot.contains(id)).collect();
    if !rest.is_empty() {
        let archived: Vec<(i64, i64)> =
            sqlx::query_as("SELECT id, chat_id FROM messages_archive WHERE id = ANY($1)")
                .bind(&rest)
                .fetch_all(&mut *tx)
                .await?;
        found.extend(archived);
    }
    Ok(found)
}

/// New messages as columns (one element per message, in one order): the
/// shape of one multi-row insert. A message's seq is not given but
/// reserved by [`insert_numbered`]: `ranks[i]` is message i's place among
/// the new messages of its chat (1, 2, ...; in the order they must be
/// numbered).
pub struct NewMessages<'a> {
    pub chat_ids: &'a [i64],
    pub ranks: &'a [i64],
    pub senders: &'a [i64],
    pub contents: &'a [String],
    pub client_ids: &'a [String],
    pub reply_tos: &'a [Option<i64>],
    /// Each message's mentioned user ids.
    pub mentions: &'a [Vec<i64>],
    pub urgent: &'a [bool],
}

/// A message inserted by [`insert_numbered`], with its chat's numbers
/// before the statement: the chat's new messages have seqs
/// `seq_before + 1 ..` and event numbers `event_before + 1 ..` in rank
/// order.
#[derive(Debug, sqlx::FromRow)]
pub struct Numbered {
    #[sqlx(flatten)]
    pub message: Message,
    pub seq_before: i64,
    pub event_before: i64,
}

/// Reserves each chat's next message seqs and event numbers (one per new
/// message, under the chat row's lock: gap-free numbering) and inserts the
/// messages with their seqs, in one statement; returns the rows (any
/// order). Message ids are drawn in input order. A chat that does not
/// exist gets no row (the caller checked membership first).
pub async fn insert_numbered(
    tx: &mut PgConnection,
    new: &NewMessages<'_>,
) -> AppResult<Vec<Numbered>> {
    // PostgreSQL has no arrays of arrays of varying length: each mention
    // list travels as its array literal text.
    let mentions: Vec<String> = new
        .mentions
        .iter()
        .map(|m| {
            let ids: Vec<String> = m.iter().map(i64::to_string).collect();
            format!("{{{}}}", ids.join(","))
        })
        .collect();
    let priorities: Vec<&str> = new
        .urgent
        .iter()
        .map(|&u| if u { "urgent" } else { "normal" })
        .collect();
    Ok(sqlx::query_as(&format!(
        "WITH v AS (
           SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[],
                                $6::bigint[], $7::text[], $8::text[]) WITH ORDINALITY
             AS v(chat_id, rank, sender_id, content, client_id, reply_to, mentions, priority, ord)
         ), r AS (
           UPDATE chats c SET last_seq = c.last_seq + n.n, last_event = c.last_event + n.n,
                  event_sub = 0, updated_at = now()
           FROM (SELECT chat_id, count(*) AS n FROM v GROUP BY chat_id) n
           WHERE c.id = n.chat_id
           RETURNING c.id, c.last_seq - n.n AS seq_before, c.last_event - n.n AS event_before
         ), ins AS (
           INSERT INTO messages (chat_id, seq, sender_id, content, client_id, reply_to, mentions,
                                 priority)
           SELECT v.chat_id, r.seq_before + v.rank, v.sender_id, v.content, v.client_id,
                  v.reply_to, v.mentions::bigint[], v.priority
           FROM v JOIN r ON r.id = v.chat_id
           ORDER BY v.ord
           RETURNING {COLUMNS}
         )
         SELECT ins.*, r.seq_before, r.event_before FROM ins JOIN r ON r.id = ins.chat_id"
    ))
    .bind(new.chat_ids)
    .bind(new.ranks)
    .bind(new.senders)
    .bind(new.contents)
    .bind(new.client_ids)
    .bind(new.reply_tos)
    .bind(&mentions)
    .bind(&priorities)
    .fetch_all(tx)
    .await?)
}

#[derive(sqlx::FromRow)]
struct ReactionRow {
    message_id: i64,
    #[sqlx(flatten)]
    reaction: Reaction,
}

/// The reactions of each of `ids` that has any, with one query; messages
/// without reactions are absent from the map.
pub async fn reactions<'c>(
    db: impl PgExecutor<'c>,
    ids: &[i64],
) -> AppResult<HashMap<i64, Vec<Reaction>>> {
    let mut sets: HashMap<i64, Vec<Reaction>> = HashMap::new();
    if ids.is_empty() {
        return Ok(sets);
    }
    let rows: Vec<ReactionRow> = sqlx::query_as(
        "SELECT message_id, emoji, array_agg(user_id ORDER BY user_id) AS user_ids, count(*) AS count
         FROM reactions WHERE message_id = ANY($1)
         GROUP BY message_id, emoji ORDER BY message_id, min(created_at), emoji",
    )
    .bind(ids)
    .fetch_all(db)
    .await?;
    for row in rows {
        sets.entry(row.message_id).or_default().push(row.reaction);
    }
    Ok(sets)
}

/// The reactions of message `id` (empty when none).
pub async fn reactions_of<'c>(db: impl PgExecutor<'c>, id: i64) -> AppResult<Vec<Reaction>> {
    Ok(reactions(db, &[id]).await?.remove(&id).unwrap_or_default())
}

/// Message `id` of `chat`, locked until the transaction ends (an edit, a
/// delete or a reaction is decided on the row it changes).
pub async fn lock_in_chat(tx: &mut PgConnection, chat: i64, id: i64) -> AppResult<Option<Message>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM messages WHERE chat_id = $1 AND id = $2 FOR UPDATE"
    ))
    .bind(chat)
    .bind(id)
    .fetch_optional(tx)
    .await?)
}

/// Replaces the content of message `id` of `chat`; the row after the edit.
pub async fn edit(tx: &mut PgConnection, chat: i64, id: i64, content: &str) -> AppResult<Message> {
    Ok(sqlx::query_as(&format!(
        "UPDATE messages SET content = $3, edited_at = now() WHERE chat_id = $1 AND id = $2
         RETURNING {COLUMNS}"
    ))
    .bind(chat)
    .bind(id)
    .bind(content)
    .fetch_one(tx)
    .await?)
}

/// Blanks message `id` of `chat` and marks it deleted (the row stays: its
/// seq is part of the chat's gap-free sequence).
pub async fn soft_delete(tx: &mut PgConnection, chat: i64, id: i64) -> AppResult<()> {
    sqlx::query(
        "UPDATE messages SET content = '', deleted_at = now() WHERE chat_id = $1 AND id = $2",
    )
    .bind(chat)
    .bind(id)
    .execute(tx)
    .await?;
    Ok(())
}

/// Adds (`add`) or removes `user`'s `emoji` on message `id` of `chat`;
/// whether that changed anything.
pub async fn react(
    tx: &mut PgConnection,
    chat: i64,
    id: i64,
    user: i64,
    emoji: &str,
    add: bool,
) -> AppResult<bool> {
    let sql = if add {
        "INSERT INTO reactions (chat_id, message_id, user_id, emoji) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING"
    } else {
        "DELETE FROM reactions WHERE chat_id = $1 AND message_id = $2 AND user_id = $3 AND emoji = $4"
    };
    let done = sqlx::query(sql)
        .bind(chat)
        .bind(id)
        .bind(user)
        .bind(emoji)
        .execute(tx)
        .await?;
    Ok(done.rows_affected() > 0)
}
