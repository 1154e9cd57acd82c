//! Reactions: the one query that turns the `reactions` rows of messages
//! into the `[{emoji, userIds, count}]` set clients see. The worker puts
//! it into `message.reaction` frames and the gateway into REST message
//! pages, so both show a message's reactions in the same shape and order
//! (first reacted emoji first, user ids ascending).

use std::collections::HashMap;

use sqlx::PgExecutor;

use crate::{model::Reaction, AppResult};

#[derive(sqlx::FromRow)]
struct Row {
    message_id: i64,
    #[sqlx(flatten)]
    reaction: Reaction,
}

/// The reactions of each of `ids` that has any, with one query; messages
/// without reactions are absent from the map.
pub async fn of_messages<'c>(
    db: impl PgExecutor<'c>,
    ids: &[i64],
) -> AppResult<HashMap<i64, Vec<Reaction>>> {
    let mut sets: HashMap<i64, Vec<Reaction>> = HashMap::new();
    if ids.is_empty() {
        return Ok(sets);
    }
    let rows: Vec<Row> = sqlx::query_as(
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
pub async fn of_message<'c>(db: impl PgExecutor<'c>, id: i64) -> AppResult<Vec<Reaction>> {
    Ok(of_messages(db, &[id])
        .await?
        .remove(&id)
        .unwrap_or_default())
}
