//! Gap-fill after a reconnect (`sync.request`) and message paging (REST).
//!
//! A chat's recent events are in its Redis topic stream; older ones only in
//! PostgreSQL (`chat_events`). Sync reads the stream when the stream
//! provably still reaches back to the client's position, and the database
//! otherwise; both hold the identical frame text, so the client cannot tell
//! the difference except by the `source` field. Which one answered is
//! counted in `sync_reads_total{path="sync", source}`: a growing share of
//! PostgreSQL answers means topic streams no longer reach back far enough
//! (trimmed, expired or lost) and reconnects cost database reads.
//!
//! REST pages carry each message's current reactions (one query per page):
//! the `message.reaction` events that built them may be long gone from the
//! topic stream, and a client opening a chat must still show them.

use axum::{
    extract::{Query, State},
    routing::get,
    Json, Router,
};
use fechatter_shared::{
    model::MessageWithReactions,
    protocol::{
        self, Badge, ErrorBody, ReadWatermark, SyncPage, SyncRefused, SYNC_MAX_GAP, SYNC_RESPONSE,
    },
    store::{chat, history, message::PageFrom},
    wake::StreamId,
    AppError, AppResult,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{
    extract::{ApiPath, AuthUser},
    fanout::skips_messages,
    metrics::{POSTGRES, REDIS},
    state::AppState,
};

/// Most events in one `sync.response`; beyond it `hasMore` is set.
pub const SYNC_MAX_EVENTS: usize = 5000;
/// Most bytes of events in one `sync.response`; beyond it `hasMore` is set
/// (at least one event is always included, so paging always progresses).
pub const SYNC_MAX_BYTES: usize = 256 * 1024;
pub use fechatter_shared::protocol::SYNC_REQUEST_MAX_BYTES;

/// One committed event: its topic id `<seq>-<sub>` and frame text.
type Event = (StreamId, String);

/// The `sync.response` of one chat for a client that has every event up
/// to `known`, with at most `budget` bytes of events; returns the frame
/// and the bytes of events it carries. Membership is re-checked in
/// PostgreSQL (not only the gateway's cache): a user removed from the
/// chat gets the refusal even if the "removed" notice never reached this
/// gateway, and the cache is corrected.
pub async fn chat_sync(
    state: &AppState,
    chat_id: i64,
    known: StreamId,
    user_id: i64,
    budget: usize,
) -> AppResult<(String, usize)> {
    // 1. Membership and the chat's newest seq, from PostgreSQL.
    let Some((last_seq, watermark)) = chat::member_position(&state.pool, chat_id, user_id).await?
    else {
        state.hub.remove_membership(user_id, chat_id);
        return Ok((refused(chat_id), 0));
    };
    let (badge, receipts) = read_state(state, chat_id, user_id, last_seq, watermark).await?;
    let page = Page {
        chat_id,
        last_seq,
        asked: known,
        badge,
        receipts,
    };
    // A cursor past the newest message asks for nothing newer than it.
    let known = known.min(StreamId(last_seq as u64, i64::MAX as u64));
    // 2. Too far behind: the client reloads instead.
    if last_seq - known.0 as i64 > SYNC_MAX_GAP {
        return Ok((page.render(true, false, "none", Vec::new()), 0));
    }
    if budget == 0 {
        return Ok((page.render(false, true, "none", Vec::new()), 0));
    }
    // 3. The events after `known`: from the topic stream when it provably
    //    holds all of them, else from PostgreSQL, unless retention deleted
    //    some of them there (then the client reloads, as when too far).
    let (source, mut events) = match events_from_stream(state, chat_id, known).await? {
        Some(events) => {
            state.metrics.record_sync_read("sync", REDIS);
            ("stream", events)
        }
        None => {
            state.metrics.record_sync_read("sync", POSTGRES);
            if expired_before(state, chat_id, known).await? {
                return Ok((page.render(true, false, "none", Vec::new()), 0));
            }
            let events = events_from_database(state, chat_id, known).await?;
            ("database", events)
        }
    };
    // 4. One page: within the byte budget and the event cap.
    let keep = within_byte_budget(&events, budget.min(SYNC_MAX_BYTES)).min(SYNC_MAX_EVENTS);
    let has_more = events.len() > keep;
    events.truncate(keep);
    let used = events.iter().map(|(_, f)| f.len()).sum();
    let source = if events.is_empty() { "none" } else { source };
    Ok((page.render(false, has_more, source, events), used))
}

/// Events after `known` from the chat's topic stream, if the stream still
/// reaches back to `known` and holds every message after it contiguously
/// (an entry lost from Redis leaves a hole); `None` otherwise.
async fn events_from_stream(
    state: &AppState,
    chat_id: i64,
    known: StreamId,
) -> AppResult<Option<Vec<Event>>> {
    let stream = state.keys.chat_topic(chat_id);
    let first = fechatter_shared::topic::read(&state.redis, &stream, "-", 1).await?;
    let reaches_back = match first.first() {
        Some((id, _)) => *id <= known || (known == StreamId::ZERO && *id == StreamId(1, 0)),
        None => false,
    };
    if !reaches_back {
        return Ok(None);
    }
    let entries = fechatter_shared::topic::read(
        &state.redis,
        &stream,
        &format!("({known}"),
        SYNC_MAX_EVENTS as u64 + 1,
    )
    .await?;
    let contiguous = entries
        .iter()
        .try_fold(known, |last, (id, _)| {
            (!skips_messages(last, *id)).then_some(*id)
        })
        .is_some();
    Ok(contiguous.then_some(entries))
}

/// Did retention delete events after `known` (the log's oldest event is
/// not the chat's first, and `known` is before it)?
async fn expired_before(state: &AppState, chat_id: i64, known: StreamId) -> AppResult<bool> {
    let oldest = fechatter_shared::store::event::oldest(&state.pool, chat_id).await?;
    Ok(oldest
        .is_some_and(|(seq, sub, number)| number > 1 && known < StreamId(seq as u64, sub as u64)))
}

/// Events after `known` from PostgreSQL's event log.
async fn events_from_database(
    state: &AppState,
    chat_id: i64,
    known: StreamId,
) -> AppResult<Vec<Event>> {
    let known = (known.0 as i64, known.1.min(i64::MAX as u64) as i64);
    let rows = fechatter_shared::store::event::after(
        &state.pool,
        chat_id,
        known,
        SYNC_MAX_EVENTS as i64 + 1,
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|(seq, sub, f)| (StreamId(seq as u64, sub as u64), f))
        .collect())
}

/// How many leading events fit in `budget` bytes (at least one).
fn within_byte_budget(events: &[Event], budget: usize) -> usize {
    let mut used = 0;
    events
        .iter()
        .take_while(|(_, f)| {
            used += f.len();
            used <= budget
        })
        .count()
        .max(1)
        .min(events.len())
}

/// Most other members whose read watermarks a sync response lists.
pub const SYNC_MAX_RECEIPTS: i64 = 100;

/// The caller's badge (from their watermark `mine`) and, for chats of at
/// most [`SYNC_MAX_RECEIPTS`] other members, everyone else's read
/// watermark (missed read receipts).
async fn read_state(
    state: &AppState,
    chat_id: i64,
    user_id: i64,
    last_seq: i64,
    mine: i64,
) -> AppResult<(Badge, Option<Vec<ReadWatermark>>)> {
    let others =
        chat::read_watermarks(&state.pool, chat_id, user_id, SYNC_MAX_RECEIPTS + 1).await?;
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
            .map(|&(user_id, seq)| ReadWatermark { user_id, seq })
            .collect()
    });
    let badge = Badge {
        unread_count: (last_seq - mine).max(0),
        mention_count: mentions.unwrap_or(0),
    };
    Ok((badge, receipts))
}

/// The `sync.user` page of the caller's events after `cursor`.
pub async fn user_sync(
    state: &AppState,
    user_id: i64,
    cursor: fechatter_shared::wake::StreamId,
    budget: usize,
) -> AppResult<String> {
    let page = crate::user_events::page(state, user_id, cursor, budget).await?;
    let frame = match page {
        None => protocol::SyncUser {
            too_large: true,
            has_more: false,
            cursor: cursor.to_string(),
            events: Vec::new(),
        },
        Some((frames, last, has_more)) => protocol::SyncUser {
            too_large: false,
            has_more,
            cursor: last.to_string(),
            events: frames
                .into_iter()
                .filter_map(|f| serde_json::value::RawValue::from_string(f).ok())
                .collect(),
        },
    };
    Ok(frame.frame())
}

/// The answer for a chat the caller is not a member of.
pub fn refused(chat_id: i64) -> String {
    let refusal = SyncRefused {
        chat_id,
        error: ErrorBody::of(&AppError::not_found("chat not found")),
    };
    protocol::new_frame(SYNC_RESPONSE, &refusal)
}

/// What every `sync.response` page of one chat carries.
struct Page {
    chat_id: i64,
    last_seq: i64,
    /// The cursor the client sent, echoed when the page has no events.
    asked: StreamId,
    badge: Badge,
    receipts: Option<Vec<ReadWatermark>>,
}

impl Page {
    /// The frame; `cursor` is the id of the last event the client will
    /// have after this page: the value to send for the next page.
    fn render(
        &self,
        too_large: bool,
        has_more: bool,
        source: &'static str,
        events: Vec<Event>,
    ) -> String {
        let cursor = events.last().map_or(self.asked, |(id, _)| *id);
        let page = SyncPage {
            chat_id: self.chat_id,
            last_seq: self.last_seq,
            too_large,
            has_more,
            cursor: cursor.to_string(),
            source,
            events: events
                .into_iter()
                .filter_map(|(_, f)| RawValue::from_string(f).ok())
                .collect(),
            badge: self.badge,
            read_receipts: self.receipts.clone(),
        };
        protocol::new_frame(SYNC_RESPONSE, &page)
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/api/chat/{id}/messages", get(list_messages))
}

#[cfg(test)]
mod tests {
    use fechatter_shared::wake::StreamId;

    #[test]
    fn byte_budget_pages_but_always_progresses() {
        let events: Vec<super::Event> =
            (0..10).map(|i| (StreamId(1, i), "x".repeat(100))).collect();
        assert_eq!(super::within_byte_budget(&events, 350), 3);
        assert_eq!(super::within_byte_budget(&events, 10), 1);
        assert_eq!(super::within_byte_budget(&events, 1 << 20), 10);
        assert_eq!(super::within_byte_budget(&[], 10), 0);
    }

    #[test]
    fn a_message_page_has_its_documented_fields() {
        let page = super::MessagePage {
            messages: Vec::new(),
            has_more: true,
        };
        assert_eq!(
            serde_json::to_value(page).unwrap(),
            serde_json::json!({ "messages": [], "hasMore": true })
        );
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Paging {
    before_seq: Option<i64>,
    after_seq: Option<i64>,
    limit: Option<i64>,
}

/// The body of `GET /api/chat/{id}/messages` (`PagedMessage`s in
/// docs/openapi.json).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MessagePage {
    messages: Vec<MessageWithReactions>,
    /// More messages lie beyond the page in the direction paged.
    has_more: bool,
}

/// `GET /api/chat/{id}/messages`: newest first page by default; `beforeSeq`
/// pages backwards, `afterSeq` forwards; always returned in seq order.
async fn list_messages(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ApiPath(id): ApiPath<i64>,
    paging: Result<Query<Paging>, axum::extract::rejection::QueryRejection>,
) -> AppResult<Json<MessagePage>> {
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
    let from = match p.after_seq {
        Some(after) => PageFrom::After(after),
        None => PageFrom::Before(p.before_seq.unwrap_or(i64::MAX)),
    };
    let (messages, has_more) = history::page(&state.pool, id, from, limit).await?;
    Ok(Json(MessagePage { messages, has_more }))
}
