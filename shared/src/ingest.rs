//! What gateways write to the ingest streams and how workers answer.
//!
//! A gateway never writes chat state itself: it validates a client frame
//! and appends an [`IngestEntry`] to the ingest shard of the chat. The
//! worker that owns the shard commits it and answers the sending
//! connection through the gateway's Pub/Sub channel with a
//! [`GatewayNotice`]. Keeping the sender's address (gateway, connection,
//! frame id) in the entry is what lets the ack wait for the commit.

use serde::{Deserialize, Serialize};

use crate::protocol::ReactAction;

/// Stream field holding the JSON entry.
pub const ENTRY_FIELD: &str = "e";
/// Consumer group of the workers on every ingest shard.
pub const GROUP: &str = "workers";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestEntry {
    pub chat_id: i64,
    pub user_id: i64,
    /// Instance id of the gateway holding the sender's connection.
    pub gateway: String,
    /// Connection id on that gateway.
    pub conn: u64,
    /// The client's frame id: the `refId` of the answer and the idempotency key.
    pub ref_id: String,
    pub command: Command,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Command {
    #[serde(rename_all = "camelCase")]
    Send {
        content: String,
        reply_to: Option<i64>,
        mentions: Vec<i64>,
        /// Urgent messages bypass DND and mute (seed §3.7).
        #[serde(default)]
        urgent: bool,
    },
    #[serde(rename_all = "camelCase")]
    Edit { message_id: i64, content: String },
    #[serde(rename_all = "camelCase")]
    Delete { message_id: i64 },
    #[serde(rename_all = "camelCase")]
    React {
        message_id: i64,
        emoji: String,
        action: ReactAction,
    },
    #[serde(rename_all = "camelCase")]
    Read { seq: i64 },
}

impl Command {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Send { .. } => "send",
            Self::Edit { .. } => "edit",
            Self::Delete { .. } => "delete",
            Self::React { .. } => "react",
            Self::Read { .. } => "read",
        }
    }
}

/// A message on a gateway's Pub/Sub channel.
#[derive(Debug, Clone, PartialEq)]
pub enum GatewayNotice {
    /// Deliver `frame` to connection `conn` (acks and errors from workers).
    Frame { conn: u64, frame: String },
    /// Close connection `conn` (evicted by the per-user connection limit).
    Evict { conn: u64 },
}

impl GatewayNotice {
    pub fn encode(&self) -> String {
        match self {
            Self::Frame { conn, frame } => format!("frame {conn}\n{frame}"),
            Self::Evict { conn } => format!("evict {conn}\n"),
        }
    }

    pub fn decode(text: &str) -> Option<Self> {
        let (head, body) = text.split_once('\n')?;
        let (kind, conn) = head.split_once(' ')?;
        let conn = conn.parse().ok()?;
        match kind {
            "frame" => Some(Self::Frame {
                conn,
                frame: body.to_string(),
            }),
            "evict" => Some(Self::Evict { conn }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_round_trip() {
        let e = IngestEntry {
            chat_id: 1,
            user_id: 2,
            gateway: "gw1".into(),
            conn: 3,
            ref_id: "r".into(),
            command: Command::React {
                message_id: 9,
                emoji: "👍".into(),
                action: ReactAction::Add,
            },
        };
        let text = serde_json::to_string(&e).unwrap();
        assert!(text.contains(r#""kind":"react""#), "{text}");
        assert_eq!(serde_json::from_str::<IngestEntry>(&text).unwrap(), e);
    }

    #[test]
    fn notice_round_trip() {
        for n in [
            GatewayNotice::Frame {
                conn: 5,
                frame: "{\"a\":\n1}".into(),
            },
            GatewayNotice::Evict { conn: 6 },
        ] {
            assert_eq!(GatewayNotice::decode(&n.encode()), Some(n));
        }
        assert_eq!(GatewayNotice::decode("garbage"), None);
    }
}
