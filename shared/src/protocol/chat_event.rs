//! Frames of committed chat events and the acks of their writers, as the
//! worker builds them in the commit (the frame text is logged in
//! `chat_events` and published verbatim, so its shape is fixed here once).

use serde::Serialize;

use super::{event_frame_id, server_frame};
use crate::model::Message;

/// `message.new {chatId, eventId, eventSeq, message}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageNew<'a> {
    pub chat_id: i64,
    pub event_id: String,
    pub event_seq: i64,
    pub message: &'a Message,
}

impl<'a> MessageNew<'a> {
    /// The event of a new message (`eventId` `"<seq>-0"`).
    pub fn of(message: &'a Message, event_seq: i64) -> Self {
        Self {
            chat_id: message.chat_id,
            event_id: format!("{}-0", message.seq),
            event_seq,
            message,
        }
    }

    /// The frame, stamped with the message's creation time.
    pub fn frame(&self) -> String {
        server_frame(
            "message.new",
            &event_frame_id(self.chat_id, self.message.seq, 0),
            self.message.created_at,
            self,
        )
    }
}

/// `chat.summary {chatId, newMessages, events, lastSeq, lastEventId, live}`:
/// a gateway's once-a-second digest of a chat in summary mode (more than
/// `SUMMARY_MODE_RATE` messages a second) for the connections not focused
/// on it, instead of the events themselves (`gateway/src/summary.rs`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ChatSummary {
    pub chat_id: i64,
    /// Messages not sent since the previous summary.
    pub new_messages: u64,
    /// Events (messages, edits, deletes, reactions) not sent since then.
    pub events: u64,
    /// The chat's newest message seq this gateway has seen.
    pub last_seq: i64,
    /// The chat's newest event (`"<seq>-<sub>"`).
    pub last_event_id: String,
    /// True on the last summary: from the next event on, every event is
    /// delivered again.
    pub live: bool,
}

impl ChatSummary {
    pub const TYPE: &'static str = "chat.summary";

    pub fn frame(&self) -> String {
        super::new_frame(Self::TYPE, self)
    }
}

/// What an ack of `message.send` adds to `{refId, status}`:
/// `{messageId, seq}`, plus `duplicate: true` for a retry.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SendAck {
    pub message_id: i64,
    pub seq: i64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

impl SendAck {
    /// The ack's extra fields as JSON.
    pub fn value(self) -> serde_json::Value {
        serde_json::to_value(self).expect("ack fields serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_says_duplicate_and_a_first_ack_does_not() {
        let first = SendAck {
            message_id: 12,
            seq: 41,
            duplicate: false,
        };
        assert_eq!(
            first.value(),
            serde_json::json!({ "messageId": 12, "seq": 41 })
        );
        let retry = SendAck {
            duplicate: true,
            ..first
        };
        assert_eq!(
            retry.value(),
            serde_json::json!({ "messageId": 12, "seq": 41, "duplicate": true })
        );
    }
}
