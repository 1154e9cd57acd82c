//! Frames of committed chat events and the acks of their writers, as the
//! worker builds them in the commit (the frame text is logged in
//! `chat_events` and published verbatim, so its shape is fixed here once).

use serde::Serialize;

use super::{event_frame_id, server_frame};
use crate::model::{Message, Reaction};

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
    /// Events (messages, edits, deletes, reactions, chat changes) not sent
    /// since then.
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

/// `message.updated {chatId, eventId, eventSeq, message}`: an edit, with
/// the whole edited message.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageUpdated<'a> {
    pub chat_id: i64,
    pub event_id: String,
    pub event_seq: i64,
    pub message: &'a Message,
}

impl MessageUpdated<'_> {
    pub const TYPE: &'static str = "message.updated";
}

/// `message.deleted {chatId, eventId, eventSeq, messageId, seq}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageDeleted {
    pub chat_id: i64,
    pub event_id: String,
    pub event_seq: i64,
    pub message_id: i64,
    pub seq: i64,
}

impl MessageDeleted {
    pub const TYPE: &'static str = "message.deleted";
}

/// `message.reaction {chatId, eventId, eventSeq, messageId, reactions}`:
/// the message's whole reaction set after the change.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageReaction<'a> {
    pub chat_id: i64,
    pub event_id: String,
    pub event_seq: i64,
    pub message_id: i64,
    pub reactions: &'a [Reaction],
}

impl MessageReaction<'_> {
    pub const TYPE: &'static str = "message.reaction";
}

/// What an ack of `message.send` adds to `{refId, status}`:
/// `{messageId, seq}`, plus `duplicate: true` for a retry. The acks of
/// `message.edit` and `message.delete` have the same fields (the edited or
/// deleted message).
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SendAck {
    pub message_id: i64,
    pub seq: i64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// What an ack of `message.react` adds: `{messageId, changed}` (false
/// when the reaction was already there, or already gone), plus
/// `duplicate: true` for a retry.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReactAck {
    pub message_id: i64,
    pub changed: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    use super::*;

    fn json_of(value: impl Serialize) -> serde_json::Value {
        serde_json::to_value(value).unwrap()
    }

    #[test]
    fn a_retry_says_duplicate_and_a_first_ack_does_not() {
        let first = SendAck {
            message_id: 12,
            seq: 41,
            duplicate: false,
        };
        assert_eq!(json_of(first), json!({ "messageId": 12, "seq": 41 }));
        let retry = SendAck {
            duplicate: true,
            ..first
        };
        assert_eq!(
            json_of(retry),
            json!({ "messageId": 12, "seq": 41, "duplicate": true })
        );
        let react = ReactAck {
            message_id: 12,
            changed: false,
            duplicate: false,
        };
        assert_eq!(json_of(react), json!({ "messageId": 12, "changed": false }));
        let react_retry = ReactAck {
            changed: true,
            duplicate: true,
            ..react
        };
        assert_eq!(
            json_of(react_retry),
            json!({ "messageId": 12, "changed": true, "duplicate": true })
        );
    }

    #[test]
    fn change_events_carry_their_event_id_and_number() {
        let message = Message {
            id: 12,
            chat_id: 3,
            seq: 41,
            sender_id: 8,
            content: "edited".into(),
            client_id: "c1".into(),
            reply_to: None,
            mentions: vec![9],
            priority: "normal".into(),
            created_at: Utc.timestamp_millis_opt(1_000).unwrap(),
            edited_at: Some(Utc.timestamp_millis_opt(2_000).unwrap()),
            deleted_at: None,
        };
        let updated = MessageUpdated {
            chat_id: 3,
            event_id: "41-1".into(),
            event_seq: 50,
            message: &message,
        };
        assert_eq!(
            json_of(&updated),
            json!({ "chatId": 3, "eventId": "41-1", "eventSeq": 50, "message": json_of(&message) })
        );
        let deleted = MessageDeleted {
            chat_id: 3,
            event_id: "41-2".into(),
            event_seq: 51,
            message_id: 12,
            seq: 41,
        };
        assert_eq!(
            json_of(&deleted),
            json!({ "chatId": 3, "eventId": "41-2", "eventSeq": 51, "messageId": 12, "seq": 41 })
        );
        let reactions = [Reaction {
            emoji: "👍".into(),
            user_ids: vec![8, 9],
            count: 2,
        }];
        let reaction = MessageReaction {
            chat_id: 3,
            event_id: "41-3".into(),
            event_seq: 52,
            message_id: 12,
            reactions: &reactions,
        };
        assert_eq!(
            json_of(&reaction),
            json!({
                "chatId": 3, "eventId": "41-3", "eventSeq": 52, "messageId": 12,
                "reactions": [{ "emoji": "👍", "userIds": [8, 9], "count": 2 }],
            })
        );
    }
}
