//! Server frames about the connection's session and its user rather than
//! one chat's event log: the greeting (`session.ready`), token expiry and
//! revocation, the user events (membership, badges) and the ephemeral
//! signals of other members (read receipts, typing). None of them is
//! numbered in a chat's `eventSeq`; each is a small struct whose field
//! names clients read, with its `TYPE` and a `frame()` to serialize it.

use serde::{Deserialize, Serialize};

use super::new_frame;

/// `session.ready`: always the first frame of a connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionReady {
    pub user_id: i64,
    pub session_id: uuid::Uuid,
    pub connection_id: u64,
    pub instance: String,
    pub chats: Vec<i64>,
    pub heartbeat_interval_ms: u64,
    pub max_frame_bytes: usize,
    /// When the connection's access token expires (RFC 3339).
    pub token_expires_at: String,
    /// The newest event of the user's event stream when the connection
    /// opened: the cursor to keep for `sync.request {user}`.
    pub user_event_id: String,
    /// Unread messages and unread mentions over all the user's chats.
    pub unread_total: i64,
    pub mention_total: i64,
}

impl SessionReady {
    pub const TYPE: &'static str = "session.ready";
    pub fn frame(&self) -> String {
        new_frame(Self::TYPE, self)
    }
}

/// `membership.changed`: the user was added to or removed from a chat
/// (delivery of that chat starts or stops at once).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MembershipChanged {
    pub chat_id: i64,
    pub user_id: i64,
    /// `added` or `removed`.
    pub action: String,
}

impl MembershipChanged {
    pub const TYPE: &'static str = "membership.changed";
    pub fn frame(&self) -> String {
        new_frame(Self::TYPE, self)
    }
}

/// `notification.badge`: the user's unread and mention counts in a chat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationBadge {
    pub chat_id: i64,
    pub unread_count: i64,
    pub mention_count: i64,
}

impl NotificationBadge {
    pub const TYPE: &'static str = "notification.badge";
    pub fn frame(&self) -> String {
        new_frame(Self::TYPE, self)
    }
}

/// `read.receipt`: a member's read watermark in a chat moved to `seq`
/// (ephemeral, to the chat's other members).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadReceipt {
    pub chat_id: i64,
    pub user_id: i64,
    pub seq: i64,
}

impl ReadReceipt {
    pub const TYPE: &'static str = "read.receipt";
    pub fn frame(&self) -> String {
        new_frame(Self::TYPE, self)
    }
}

/// `typing.indicator`: a member started or stopped typing in a chat
/// (ephemeral, to the chat's other members).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypingIndicator {
    pub chat_id: i64,
    pub user_id: i64,
    pub display_name: String,
    pub active: bool,
}

impl TypingIndicator {
    pub const TYPE: &'static str = "typing.indicator";
    pub fn frame(&self) -> String {
        new_frame(Self::TYPE, self)
    }
}

/// `session.revoked`: the session (or, with no `sessionId`, every session
/// of the user) was ended; the connection closes with 4401 right after.
/// Also the notice gateways receive on the user's wake channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRevoked {
    pub session_id: Option<uuid::Uuid>,
}

impl SessionRevoked {
    pub const TYPE: &'static str = "session.revoked";
    pub fn frame(&self) -> String {
        new_frame(Self::TYPE, self)
    }

    /// Reads the payload of a `session.revoked` frame.
    pub fn parse(frame: &str) -> Option<Self> {
        #[derive(Deserialize)]
        struct Frame {
            payload: SessionRevoked,
        }
        serde_json::from_str::<Frame>(frame).ok().map(|f| f.payload)
    }
}

/// `token.refresh {expiresAt}`: the access token expires soon; answer with
/// `auth.refresh`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRefresh {
    pub expires_at: String,
}

impl TokenRefresh {
    pub const TYPE: &'static str = "token.refresh";
    pub fn frame(&self) -> String {
        new_frame(Self::TYPE, self)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::protocol::rfc3339;

    #[test]
    fn typing_indicators_have_their_documented_fields() {
        let indicator = TypingIndicator {
            chat_id: 3,
            user_id: 8,
            display_name: "Ada".into(),
            active: true,
        };
        let v: Value = serde_json::from_str(&indicator.frame()).unwrap();
        assert_eq!(v["type"], "typing.indicator");
        assert_eq!(
            v["payload"],
            serde_json::json!({ "chatId": 3, "userId": 8, "displayName": "Ada", "active": true })
        );
    }

    #[test]
    fn revocation_notices_round_trip() {
        for sid in [Some(uuid::Uuid::new_v4()), None] {
            let f = SessionRevoked { session_id: sid }.frame();
            assert_eq!(SessionRevoked::parse(&f).unwrap().session_id, sid);
        }
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    }
}
