//! The per-chat event log (`chat_events`): the exact frames published for
//! every committed chat event, read back by gateways to fill a gap in a
//! topic stream or to answer a sync that reaches further back than the
//! stream holds. The worker writes it in the commit, and looks up the
//! events a retried client frame id already produced.
//!
//! The functions the worker calls take the `PgConnection` of its batch
//! transaction: numbering an event, logging it and the message it is about
//! commit together or not at all.

use sqlx::{PgConnection, PgPool};

use crate::AppResult;

/// The `message_id` of an event about the chat itself (`chat.updated`),
/// not about one of its messages.
pub const NO_MESSAGE: i64 = 0;

/// One logged event: `(seq, sub, frame)`.
pub type LoggedEvent = (i64, i64, String);

/// Up to `limit` events of `chat` after `(seq, sub)`, in order.
pub async fn after(
    pool: &PgPool,
    chat: i64,
    (seq, sub): (i64, i64),
    limit: i64,
) -> AppResult<Vec<LoggedEvent>> {
    Ok(sqlx::query_as(
        "SELECT seq, sub, frame FROM chat_events WHERE chat_id = $1 AND (seq, sub) > ($2, $3)
         ORDER BY seq, sub LIMIT $4",
    )
    .bind(chat)
    .bind(seq)
    .bind(sub)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// The events of `chat` strictly between `after` and `before`, in order.
pub async fn between(
    pool: &PgPool,
    chat: i64,
    after: (i64, i64),
    before: (i64, i64),
) -> Result<Vec<LoggedEvent>, sqlx::Error> {
    sqlx::query_as(
        "SELECT seq, sub, frame FROM chat_events
         WHERE chat_id = $1 AND (seq, sub) > ($2, $3) AND (seq, sub) < ($4, $5)
         ORDER BY seq, sub",
    )
    .bind(chat)
    .bind(after.0)
    .bind(after.1)
    .bind(before.0)
    .bind(before.1)
    .fetch_all(pool)
    .await
}

/// An event found by its number: `(seq, sub, event_seq, frame)`.
pub type NumberedEvent = (i64, i64, i64, String);

/// The events of `chat` numbered strictly between `after` and `before`
/// (`chat_events.event_seq`), in order: what a topic stream lacks when the
/// publish script reports a hole before `before`.
pub async fn numbered_between(
    pool: &PgPool,
    chat: i64,
    after: i64,
    before: i64,
) -> AppResult<Vec<NumberedEvent>> {
    Ok(sqlx::query_as(
        "SELECT seq, sub, event_seq, frame FROM chat_events
         WHERE chat_id = $1 AND event_seq > $2 AND event_seq < $3
         ORDER BY event_seq",
    )
    .bind(chat)
    .bind(after)
    .bind(before)
    .fetch_all(pool)
    .await?)
}

/// A send already committed under a client frame id (a retry's original).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EarlierSend {
    pub chat_id: i64,
    pub user_id: i64,
    pub client_id: String,
    pub seq: i64,
    pub sub: i64,
    pub event_seq: i64,
    pub message_id: i64,
    pub frame: String,
    /// The seq of the message the event is about.
    pub message_seq: i64,
}

/// The events already committed for any of the `(chat, client id, user)`
/// keys (given as three equally long columns). The message's seq comes
/// from `messages`, or, once the message moved to the archive, from the
/// event (a `message.new` event's seq is its message's), so a retry stays
/// a duplicate for as long as the event is kept.
///
/// Each key is one probe of the `(chat_id, user_id, client_id)` unique
/// index, in the key's own partition. Why the statement is shaped so:
///
/// 1. Written as a plain join of `chat_events` to `unnest`, the planner
///    costs every probe as 16 index scans (it does not count run-time
///    partition pruning), so from a few dozen keys on it chose a
///    (parallel) sequential scan of the whole table and a hash join: 15-19
///    ms for a batch of 150 sends over 40k events, growing with the table,
///    and 30% of PostgreSQL's time at 4,000 messages/s (pg_stat_statements).
/// 2. The `LATERAL … LIMIT 1` subquery (the index is unique, so the limit
///    changes no answer) cannot be flattened into a join: it is always one
///    index probe per key (0.5 ms for 150 keys, 0.1 ms for one).
/// 3. Nothing in the plan depends on the parameters, so after five
///    executions PostgreSQL keeps the generic plan of the prepared
///    statement: no planning per batch (a custom plan over 32 partitions
///    took about 0.7-1.6 ms).
pub async fn earlier_sends(
    tx: &mut PgConnection,
    chats: &[i64],
    client_ids: &[&str],
    users: &[i64],
) -> AppResult<Vec<EarlierSend>> {
    Ok(sqlx::query_as(EARLIER_SENDS)
        .bind(chats)
        .bind(client_ids)
        .bind(users)
        .fetch_all(tx)
        .await?)
}

/// [`earlier_sends`]'s statement: `$1` chats, `$2` client ids, `$3` users
/// (public so a test can check its plan).
pub const EARLIER_SENDS: &str =
    "SELECT ev.chat_id, ev.user_id, ev.client_id, ev.seq, ev.sub, ev.event_seq,
            ev.message_id, ev.frame, coalesce(m.seq, ev.seq) AS message_seq
     FROM unnest($1::bigint[], $2::text[], $3::bigint[]) AS k(chat_id, client_id, user_id)
     CROSS JOIN LATERAL (
       SELECT e.chat_id, e.user_id, e.client_id, e.seq, e.sub, e.event_seq, e.message_id, e.frame
       FROM chat_events e
       WHERE e.chat_id = k.chat_id AND e.user_id = k.user_id AND e.client_id = k.client_id
       LIMIT 1
     ) ev
     LEFT JOIN messages m ON m.chat_id = ev.chat_id AND m.id = ev.message_id";

/// An event already committed under a client frame id (a retry's
/// original), with the seq of the message it is about.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EarlierEvent {
    /// The frame type (`message.updated`, `message.reaction`, ...).
    pub kind: String,
    pub seq: i64,
    pub sub: i64,
    pub event_seq: i64,
    pub message_id: i64,
    pub frame: String,
    pub message_seq: i64,
}

/// The event `user`'s client frame id `client_id` produced in `chat`, if
/// any, with its message's seq (from the archive once the message moved
/// there, so a retried edit, delete or reaction stays a duplicate). A
/// chat change is about no message ([`NO_MESSAGE`]): its `message_seq` is
/// the event's own `seq`.
pub async fn earlier(
    tx: &mut PgConnection,
    chat: i64,
    client_id: &str,
    user: i64,
) -> AppResult<Option<EarlierEvent>> {
    Ok(sqlx::query_as(
        "SELECT ev.kind, ev.seq, ev.sub, ev.event_seq, ev.message_id, ev.frame,
                coalesce(m.seq, a.seq, ev.seq) AS message_seq
         FROM chat_events ev
         LEFT JOIN messages m ON m.chat_id = ev.chat_id AND m.id = ev.message_id
         LEFT JOIN messages_archive a ON a.chat_id = ev.chat_id AND a.id = ev.message_id
         WHERE ev.chat_id = $1 AND ev.client_id = $2 AND ev.user_id = $3
           AND (m.id IS NOT NULL OR a.id IS NOT NULL OR ev.message_id = $4)",
    )
    .bind(chat)
    .bind(client_id)
    .bind(user)
    .bind(NO_MESSAGE)
    .fetch_optional(tx)
    .await?)
}

/// The numbers of a chat event: its topic id `<seq>-<sub>` and its place
/// in the chat's contiguous event numbering (`event_seq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventNumber {
    pub seq: i64,
    pub sub: i64,
    pub event_seq: i64,
}

/// Numbers the next non-message event of `chat` (an edit, delete or
/// reaction): after the chat's newest message (`seq` is its seq, `sub`
/// the chat's next sub-number) and as the chat's next event. The update
/// locks the chat row until the transaction ends, so numbers are
/// gap-free and in commit order.
pub async fn number_change(tx: &mut PgConnection, chat: i64) -> AppResult<EventNumber> {
    let (seq, sub, event_seq): (i64, i64, i64) = sqlx::query_as(
        "UPDATE chats SET event_sub = event_sub + 1, last_event = last_event + 1 WHERE id = $1
         RETURNING last_seq, event_sub, last_event",
    )
    .bind(chat)
    .fetch_one(tx)
    .await?;
    Ok(EventNumber {
        seq,
        sub,
        event_seq,
    })
}

/// One event to log: what [`insert`] writes.
#[derive(Debug, Clone, Copy)]
pub struct NewEvent<'a> {
    pub chat_id: i64,
    pub number: EventNumber,
    /// The frame type.
    pub kind: &'a str,
    /// The client's frame id (the idempotency key) and its sender.
    pub client_id: &'a str,
    pub user_id: i64,
    pub message_id: i64,
    /// The frame text, published verbatim.
    pub frame: &'a str,
}

/// Logs one event.
pub async fn insert(tx: &mut PgConnection, event: &NewEvent<'_>) -> AppResult<()> {
    sqlx::query(
        "INSERT INTO chat_events (chat_id, seq, sub, kind, client_id, user_id, message_id, frame,
                                  event_seq)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(event.chat_id)
    .bind(event.number.seq)
    .bind(event.number.sub)
    .bind(event.kind)
    .bind(event.client_id)
    .bind(event.user_id)
    .bind(event.message_id)
    .bind(event.frame)
    .bind(event.number.event_seq)
    .execute(tx)
    .await?;
    Ok(())
}

/// The `message.new` events of new messages, as columns (one element per
/// message): logged with one statement.
pub struct NewMessageEvents<'a> {
    pub chat_ids: &'a [i64],
    pub seqs: &'a [i64],
    pub event_seqs: &'a [i64],
    pub client_ids: &'a [String],
    pub senders: &'a [i64],
    pub message_ids: &'a [i64],
    pub frames: &'a [String],
}

/// Logs `new` (sub 0, kind `message.new`).
pub async fn insert_message_news(
    tx: &mut PgConnection,
    new: &NewMessageEvents<'_>,
) -> AppResult<()> {
    let kinds = vec!["message.new"; new.chat_ids.len()];
    let zeros = vec![0i64; new.chat_ids.len()];
    sqlx::query(
        "INSERT INTO chat_events (chat_id, seq, sub, kind, client_id, user_id, message_id, frame,
                                  event_seq)
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[],
                              $6::bigint[], $7::bigint[], $8::text[], $9::bigint[])",
    )
    .bind(new.chat_ids)
    .bind(new.seqs)
    .bind(&zeros)
    .bind(&kinds)
    .bind(new.client_ids)
    .bind(new.senders)
    .bind(new.message_ids)
    .bind(new.frames)
    .bind(new.event_seqs)
    .execute(tx)
    .await?;
    Ok(())
}

/// The oldest event the log still holds for `chat`: `(seq, sub,
/// event_seq)`. An `event_seq` above 1 means older events were deleted by
/// retention (events are numbered from 1 without holes).
pub async fn oldest(pool: &PgPool, chat: i64) -> AppResult<Option<(i64, i64, i64)>> {
    Ok(sqlx::query_as(
        "SELECT seq, sub, event_seq FROM chat_events WHERE chat_id = $1
         ORDER BY seq, sub LIMIT 1",
    )
    .bind(chat)
    .fetch_optional(pool)
    .await?)
}

/// Deletes up to `limit` events created before `before` from the
/// partition `partition` (a name `store::partitions` returned); returns how
/// many. One short transaction per call, so retention never holds locks
/// for long.
pub async fn delete_expired(
    pool: &PgPool,
    partition: &str,
    before: chrono::DateTime<chrono::Utc>,
    limit: i64,
) -> AppResult<u64> {
    // The name comes from the catalog, never from a client; quoted anyway.
    let table = format!("\"{}\"", partition.replace('"', ""));
    let done = sqlx::query(&format!(
        "DELETE FROM {table} WHERE ctid = ANY(ARRAY(
             SELECT ctid FROM {table} WHERE created_at < $1 LIMIT $2))"
    ))
    .bind(before)
    .bind(limit)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
