//! Offering a chat's frames to its local connections: committed events
//! (with the badges a new message moves), ephemeral frames (typing,
//! receipts) and, for chats in summary mode, the once-a-second
//! `chat.summary` and badges that replace the events for connections not
//! focused on the chat ([`crate::summary`]).
//!
//! Why apart from [`crate::fanout`]: fan-out decides *which* events to
//! deliver and in what order (wakes, gaps, catch-up); this module decides
//! *who* gets each one and in which form. Each frame is serialized once
//! and shared by every connection it goes to.

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use fechatter_shared::{
    protocol::{frame_kind, ChatSummary},
    wake::{Stamp, StreamId},
};

use crate::{
    hub::{BadgeUpdate, Priority},
    outbound::TimedFrame,
    state::AppState,
};

/// The fields of a `message.new` that badges need.
#[derive(serde::Deserialize)]
struct NewMessage {
    payload: NewMessagePayload,
}

#[derive(serde::Deserialize)]
struct NewMessagePayload {
    message: MessageHead,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageHead {
    seq: i64,
    sender_id: i64,
    #[serde(default)]
    mentions: Vec<i64>,
}

/// Delivers the committed chat event `id`; a new message also updates the
/// unread badges of the chat's local members, computed here from their
/// cached watermarks so the worker does not publish one badge per member.
/// In summary mode only connections focused on the chat get the event and
/// badges wait for the next summary.
pub fn deliver_event(state: &AppState, chat: i64, id: StreamId, frame: &str, how: Delivery) {
    let kind = frame_kind(frame);
    let is_message = kind == "message.new";
    let summarized = state.summaries.lock().expect("summaries lock").on_event(
        chat,
        id,
        is_message,
        how.stamp.filter(|_| how.live).map(Stamp::rate_ms),
    );
    if summarized {
        state.metrics.summarized_events.inc();
    }
    let committed_ms = how.stamp.map(|s| s.committed_ms);
    offer(state, chat, 0, frame, committed_ms, summarized);
    if !is_message {
        return;
    }
    let Ok(new) = serde_json::from_str::<NewMessage>(frame) else {
        tracing::warn!(chat, "unreadable message.new; badges skipped");
        return;
    };
    let m = new.payload.message;
    if summarized {
        state
            .hub
            .apply_message(chat, m.seq, m.sender_id, &m.mentions);
    } else {
        let badges = state.hub.on_message(chat, m.seq, m.sender_id, &m.mentions);
        offer_badges(state, chat, m.seq, badges);
    }
}

/// How an event reached the delivery task.
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    /// Its commit and accept times, when the topic entry carries them.
    pub stamp: Option<Stamp>,
    /// A wake as it arrived (not a catch-up): counts toward summary mode.
    pub live: bool,
}

impl Delivery {
    /// A wake as it arrived.
    pub fn live(stamp: Option<Stamp>) -> Self {
        Self { stamp, live: true }
    }

    /// An event read back to fill a gap (topic stream or PostgreSQL).
    pub fn caught_up(stamp: Option<Stamp>) -> Self {
        Self { stamp, live: false }
    }
}

/// Offers an ephemeral frame (typing, receipt) to the chat's local members
/// except `exclude`.
pub fn deliver_ephemeral(state: &AppState, chat: i64, exclude: i64, frame: &str) {
    offer(state, chat, exclude, frame, None, false);
}

/// Sends what summary mode withheld in the last second: each summarized
/// chat's `chat.summary` and its members' badges, to the connections not
/// focused on it. Runs on the delivery task, so a summary is queued
/// before the events that follow it.
pub fn flush_summaries(state: &AppState) {
    let flushes = {
        let mut s = state.summaries.lock().expect("summaries lock");
        let flushes = s.tick();
        state.metrics.summary_chats.set(s.summarized() as i64);
        flushes
    };
    for summary in flushes {
        let chat = summary.chat_id;
        offer_summary(state, &summary);
        if summary.new_messages > 0 {
            let badges = state.hub.badges(chat, summary.last_seq, 0);
            offer_badges(state, chat, summary.last_seq, badges);
        }
    }
}

fn offer_summary(state: &AppState, summary: &ChatSummary) {
    let chat = summary.chat_id;
    let bytes = Utf8Bytes::from(summary.frame());
    for c in state.hub.unfocused_conns_of_chat(chat) {
        c.offer(
            bytes.clone(),
            Priority::Message,
            &state.metrics,
            ChatSummary::TYPE,
        );
    }
}

/// Offers each recipient's badge to its connections not showing the chat
/// (a device showing the chat does not count it as unread).
fn offer_badges(state: &AppState, chat: i64, seq: i64, badges: Vec<BadgeUpdate>) {
    if badges.is_empty() {
        return;
    }
    // One badge per recipient per message is the hottest serialization in
    // the gateway: format it directly, with a deterministic id (no random
    // UUID, no JSON tree) and one timestamp per event.
    let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for badge in badges {
        let text = format!(
            r#"{{"type":"notification.badge","id":"b{chat}:{seq}:{user}","timestamp":"{ts}","payload":{{"chatId":{chat},"unreadCount":{unread},"mentionCount":{mentions}}}}}"#,
            user = badge.user,
            unread = badge.unread,
            mentions = badge.mentions,
        );
        let bytes = Utf8Bytes::from(text);
        for c in badge.conns.into_iter().filter(|c| !c.focused_on(chat)) {
            c.offer(
                bytes.clone(),
                Priority::User,
                &state.metrics,
                "notification.badge",
            );
        }
    }
}

/// Offers `frame` to the chat's local members except `exclude` (only to
/// those focused on the chat when `focused_only`); with a commit time, as
/// an event whose delivery latency the writers observe.
fn offer(
    state: &AppState,
    chat: i64,
    exclude: i64,
    frame: &str,
    committed_ms: Option<u64>,
    focused_only: bool,
) {
    let conns = if focused_only {
        state.hub.focused_conns_of_chat(chat)
    } else {
        state.hub.conns_of_chat(chat, exclude)
    };
    if conns.is_empty() {
        return;
    }
    let kind = frame_kind(frame);
    let priority = Priority::of_chat_frame(kind);
    let bytes = Utf8Bytes::from(frame.to_string());
    let event = committed_ms.map(|committed_ms| {
        let frame = bytes.clone();
        Arc::new(TimedFrame {
            frame,
            committed_ms,
        })
    });
    for c in conns {
        match &event {
            Some(event) => c.offer_event(event, priority, &state.metrics, kind),
            None => c.offer(bytes.clone(), priority, &state.metrics, kind),
        };
    }
}
