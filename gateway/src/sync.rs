//! Gap-fill after a reconnect (`sync.request`) and message paging (REST).
//!
//! A chat's recent events are in its Redis topic stream; older ones only in
//! PostgreSQL (`chat_events`). Sync reads the stream when the stream
//! provably still reaches back to the client's position, and the database
//! otherwise; both hold the identical frame text, so the client cannot tell
//! the difference except by the `source` field.

use axum::{
    extract::{Query, State},
    routing::get,
    Json, Router,
};
use fechatter_shared::{
    model::Message,
    protocol::{self, SYNC_MAX_GAP},
    store::chat,
    wake::StreamId,
    AppError, AppResult,
};
use serde::Deserialize;
use serde_json::{json, value::RawValue};

use crate::{
    extract::{ApiPath, AuthUser},
    fanout::{read_topic, skips_messages},
    state::AppState,
};

/// Most events in one `sync.response`; beyond it `hasMore` is set.
pub const SYNC_MAX_EVENTS: usize = 5000;
/// Most bytes of events in one `sync.response`; beyond it `hasMore` is set
/// (at least one event is always included, so paging always progresses).
pub const SYNC_MAX_BYTES: usize = 256 * 1024;

/// The `sync.response` of one chat for a client that has seen `known`.
/// Membership is re-checked in PostgreSQL (not only the gateway's cache):
/// a user removed from the chat gets the refusal even if the "removed"
/// notice never reached this gateway, and the cache is corrected.
pub async fn chat_sync(
    state: &AppState,
    chat_id: i64,
    known: i64,
    user_id: i64,
) -> AppResult<String> {
    let Some(last_seq) = chat::member_last_seq(&state.pool, chat_id, user_id).await? else {
        state.hub.remove_membership(user_id, chat_id);
        return Ok(refused(chat_id));
    };
    let read = read_state(state, chat_id, user_id, last_seq).await?;
    let known = known.min(last_seq);
    if last_seq - known > SYNC_MAX_GAP {
        return Ok(response(
            chat_id,
            last_seq,
            true,
            false,
            "none",
            Vec::new(),
            read,
        ));
    }
    let from = StreamId(known as u64, 0);
    let stream = state.keys.chat_topic(chat_id);
    let first = read_topic(&state.redis, &stream, "-", 1).await?;
    let complete = match first.first() {
        Some((id, _)) => *id <= from || (known == 0 && *id == StreamId(1, 0)),
        None => false,
    };
    // The stream serves the gap only if it holds every message after
    // `known`, contiguously (an entry lost from Redis leaves a hole).
    let from_stream = if complete {
        let entries = read_topic(
            &state.redis,
            &stream,
            &format!("({from}"),
            SYNC_MAX_EVENTS as u64 + 1,
        )
        .await?;
        let contiguous = entries
            .iter()
            .try_fold(from, |last, (id, _)| {
                (!skips_messages(last, *id)).then_some(*id)
            })
            .is_some();
        contiguous.then(|| entries.into_iter().map(|(_, f)| f).collect::<Vec<_>>())
    } else {
        None
    };
    let (source, mut frames) = match from_stream {
        Some(frames) => ("stream", frames),
        None => {
            let rows: Vec<(String,)> = sqlx::query_as(
                "SELECT frame FROM chat_events WHERE chat_id = $1 AND (seq, sub) > ($2, 0)
                 ORDER BY seq, sub LIMIT $3",
            )
            .bind(chat_id)
            .bind(known)
            .bind(SYNC_MAX_EVENTS as i64 + 1)
            .fetch_all(&state.pool)
            .await?;
            ("database", rows.into_iter().map(|(f,)| f).collect())
        }
    };
    let keep = within_byte_budget(&frames, SYNC_MAX_BYTES).min(SYNC_MAX_EVENTS);
    let has_more = frames.len() > keep;
    frames.truncate(keep);
    Ok(response(
        chat_id, last_seq, false, has_more, source, frames, read,
    ))
}

/// How many leading frames fit in `budget` bytes (at least one).
fn within_byte_budget(frames: &[String], budget: usize) -> usize {
    let mut used = 0;
    frames
        .iter()
        .take_while(|f| {
            used += f.len();
            used <= budget
        })
        .count()
        .max(1)
        .min(frames.len())
}

/// Most other members whose read watermarks a sync response lists.
pub const SYNC_MAX_RECEIPTS: i64 = 100;

/// The caller's badge and, for chats of at most [`SYNC_MAX_RECEIPTS`]
/// other members, everyone else's read watermark (missed read receipts).
async fn read_state(
    state: &AppState,
    chat_id: i64,
    user_id: i64,
    last_seq: i64,
) -> AppResult<serde_json::Value> {
    let (mine,): (i64,) = sqlx::query_as(
        "SELECT last_read_seq FROM chat_members WHERE chat_id = $1 AND user_id = $2",
    )
    .bind(chat_id)
    .bind(user_id)
    .fetch_optional(&state.pool)
    .await?
    .unwrap_or((last_seq,));
    let others: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT user_id, last_read_seq FROM chat_members
         WHERE chat_id = $1 AND user_id <> $2 ORDER BY user_id LIMIT $3",
    )
    .bind(chat_id)
    .bind(user_id)
    .bind(SYNC_MAX_RECEIPTS + 1)
    .fetch_all(&state.pool)
    .await?;
    let mentions: Option<i64> = fred::prelude::HashesInterface::hget(
        &state.redis,
        state.keys.unread(user_id),
        format!("{chat_id}:m"),
    )
    .await
    .unwrap_or(None);
    let receipts = (others.len() as i64 <= SYNC_MAX_RECEIPTS).then(|| {
        others
            .iter()
            .map(|(u, seq)| json!({ "userId": u, "seq": seq }))
            .collect::<Vec<_>>()
    });
    Ok(json!({
        "badge": { "unreadCount": (last_seq - mine).max(0), "mentionCount": mentions.unwrap_or(0) },
        "readReceipts": receipts,
    }))
}

/// The answer for a chat the caller is not a member of.
pub fn refused(chat_id: i64) -> String {
    let error = AppError::not_found("chat not found");
    protocol::new_frame(
        "sync.response",
        &json!({ "chatId": chat_id, "error": { "code": error.code(), "message": error.public_message() } }),
    )
}

fn response(
    chat_id: i64,
    last_seq: i64,
    too_large: bool,
    has_more: bool,
    source: &str,
    frames: Vec<String>,
    read: serde_json::Value,
) -> String {
    let events: Vec<Box<RawValue>> = frames
        .into_iter()
        .filter_map(|f| RawValue::from_string(f).ok())
        .collect();
    protocol::new_frame(
        "sync.response",
        &json!({
            "chatId": chat_id,
            "lastSeq": last_seq,
            "tooLarge": too_large,
            "hasMore": has_more,
            "source": source,
            "events": events,
            "badge": read["badge"],
            "readReceipts": read["readReceipts"],
        }),
    )
}

pub fn router() -> Router<AppState> {
    Router::new().route("/api/chat/{id}/messages", get(list_messages))
}

#[cfg(test)]
mod tests {
    #[test]
    fn byte_budget_pages_but_always_progresses() {
        let frames: Vec<String> = (0..10).map(|_| "x".repeat(100)).collect();
        assert_eq!(super::within_byte_budget(&frames, 350), 3);
        assert_eq!(super::within_byte_budget(&frames, 10), 1);
        assert_eq!(super::within_byte_budget(&frames, 1 << 20), 10);
        assert_eq!(super::within_byte_budget(&[], 10), 0);
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Paging {
    before_seq: Option<i64>,
    after_seq: Option<i64>,
    limit: Option<i64>,
}

/// `GET /api/chat/{id}/messages`: newest first page by default; `beforeSeq`
/// pages backwards, `afterSeq` forwards; always returned in seq order.
async fn list_messages(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ApiPath(id): ApiPath<i64>,
    paging: Result<Query<Paging>, axum::extract::rejection::QueryRejection>,
) -> AppResult<Json<serde_json::Value>> {
    let Query(p) =
        paging.map_err(|e| AppError::bad_request(format!("invalid query: {}", e.body_text())))?;
    chat::find_visible(&state.pool, id, me.user_id, me.workspace_id).await?;
    let limit = p.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(AppError::validation("limit must be between 1 and 200"));
    }
    if p.before_seq.is_some() && p.after_seq.is_some() {
        return Err(AppError::validation(
            "use either beforeSeq or afterSeq, not both",
        ));
    }
    use fechatter_shared::store::message::COLUMNS;
    let mut messages: Vec<Message> = if let Some(after) = p.after_seq {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM messages WHERE chat_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        ))
        .bind(id)
        .bind(after)
        .bind(limit + 1)
        .fetch_all(&state.pool)
        .await?
    } else {
        let mut page: Vec<Message> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM messages WHERE chat_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
        ))
        .bind(id)
        .bind(p.before_seq.unwrap_or(i64::MAX))
        .bind(limit + 1)
        .fetch_all(&state.pool)
        .await?;
        page.reverse();
        page
    };
    let has_more = messages.len() as i64 > limit;
    if has_more {
        if p.after_seq.is_some() {
            messages.truncate(limit as usize);
        } else {
            messages.remove(0);
        }
    }
    Ok(Json(json!({ "messages": messages, "hasMore": has_more })))
}
