//! `chat.updated`: a change of a chat's settings (name, description,
//! read-only flag) or owner, as a chat event.
//!
//! Why a chat event and not a user event: the change is ordered with the
//! chat's messages (a send committed after it is checked against it, so a
//! client must learn of it in that order), it is numbered in the chat's
//! gap-free `eventSeq` like an edit, and it reaches every member the way
//! the chat's messages do, one topic append however many members there
//! are, replayed by `sync.request` like any other chat event. The worker
//! commits it (`worker/src/chat_change.rs`), not the REST route, for the
//! same reason every write to a chat goes through its ingest shard.

use serde::Serialize;

use crate::model::{Chat, Role};

/// `chat.updated {chatId, eventId, eventSeq, userId, chat, roles}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatUpdated<'a> {
    pub chat_id: i64,
    pub event_id: String,
    pub event_seq: i64,
    /// Who made the change.
    pub user_id: i64,
    /// The chat after the change.
    pub chat: &'a Chat,
    /// The members whose role changed (an ownership transfer: the new
    /// owner, then the previous one, now an admin); empty otherwise.
    pub roles: &'a [RoleChange],
}

impl ChatUpdated<'_> {
    pub const TYPE: &'static str = "chat.updated";
}

/// A member's new role.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RoleChange {
    pub user_id: i64,
    pub role: Role,
}

/// What the ack of a chat change adds to `{refId, status}`: `{chatId,
/// eventSeq}` (the `chat.updated` event that carries it), plus
/// `duplicate: true` for a retry.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatChangeAck {
    pub chat_id: i64,
    pub event_seq: i64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    use super::*;
    use crate::model::ChatType;

    #[test]
    fn the_event_and_its_ack_have_the_documented_shape() {
        let at = Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap();
        let chat = Chat {
            id: 7,
            workspace_id: 1,
            chat_type: ChatType::PrivateChannel,
            name: Some("launch".into()),
            description: String::new(),
            owner_id: 2,
            read_only: true,
            last_seq: 41,
            member_count: 3,
            created_at: at,
            updated_at: at,
        };
        let roles = [
            RoleChange {
                user_id: 2,
                role: Role::Owner,
            },
            RoleChange {
                user_id: 1,
                role: Role::Admin,
            },
        ];
        let event = ChatUpdated {
            chat_id: 7,
            event_id: "41-3".into(),
            event_seq: 57,
            user_id: 1,
            chat: &chat,
            roles: &roles,
        };
        let value = serde_json::to_value(&event).unwrap();
        assert_eq!(value["eventId"], "41-3");
        assert_eq!(value["eventSeq"], 57);
        assert_eq!(value["userId"], 1);
        assert_eq!(value["chat"]["ownerId"], 2);
        assert_eq!(value["chat"]["readOnly"], true);
        assert_eq!(value["chat"]["type"], "private_channel");
        assert_eq!(
            value["roles"],
            json!([{"userId": 2, "role": "owner"}, {"userId": 1, "role": "admin"}])
        );
        let ack = ChatChangeAck {
            chat_id: 7,
            event_seq: 57,
            duplicate: false,
        };
        assert_eq!(
            serde_json::to_value(ack).unwrap(),
            json!({"chatId": 7, "eventSeq": 57})
        );
    }
}
