//! Logs one non-message chat event (an edit, delete, reaction or chat
//! change) in the batch transaction and queues its frame for the topic:
//! the one place such an event gets its numbers, so every kind is
//! numbered the same way (after the chat's newest message, as the chat's
//! next `eventSeq`) and a retry finds it by the client's frame id.

use chrono::Utc;
use fechatter_shared::{ingest::IngestEntry, protocol, store::event, AppResult};
use serde::Serialize;
use sqlx::PgConnection;

use crate::effects::{Effects, TopicEvent};

/// Numbers a non-message event (edit, delete, reaction, chat change)
/// after the chat's newest message and as the chat's next event, builds
/// its payload from its `eventId` and `eventSeq` (`payload(event_id,
/// event_seq)`), logs its frame and queues it for the topic. Returns its
/// `eventSeq`.
pub async fn record_event<P: Serialize>(
    tx: &mut PgConnection,
    e: &IngestEntry,
    kind: &str,
    message_id: i64,
    payload: impl FnOnce(String, i64) -> P,
    fx: &mut Effects,
) -> AppResult<i64> {
    let number = event::number_change(tx, e.chat_id).await?;
    let event::EventNumber {
        seq,
        sub,
        event_seq,
    } = number;
    let frame = protocol::server_frame(
        kind,
        &protocol::event_frame_id(e.chat_id, seq, sub),
        Utc::now(),
        &payload(format!("{seq}-{sub}"), event_seq),
    );
    let logged = event::NewEvent {
        chat_id: e.chat_id,
        number,
        kind,
        client_id: &e.ref_id,
        user_id: e.user_id,
        message_id,
        frame: &frame,
    };
    event::insert(tx, &logged).await?;
    fx.topic.push(TopicEvent {
        chat_id: e.chat_id,
        seq,
        sub,
        event_seq,
        frame,
        message_id,
        indexed: crate::search_events::changes_search(kind),
        accepted_ms: e.accepted_ms,
    });
    Ok(event_seq)
}
