//! The per-chat event log (`chat_events`): the exact frames published for
//! every committed chat event, read back by gateways to fill a gap in a
//! topic stream or to answer a sync that reaches further back than the
//! stream holds. (The worker writes it in the commit.)

use sqlx::PgPool;

use crate::AppResult;

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
