//! What gateways write to the ingest streams and how workers answer.
//!
//! A gateway never writes chat state itself: it validates a client frame
//! and appends an [`IngestEntry`] to the ingest shard of the chat. The
//! worker that owns the shard commits it and answers the sending
//! connection through the gateway's Pub/Sub channel with a
//! [`GatewayNotice`]. Keeping the sender's address (gateway, connection,
//! frame id) in the entry is what lets the ack wait for the commit.
//!
//! Each entry also carries a trace id ([`new_trace_id`]) assigned by the
//! gateway when the client frame (or REST request) arrived. It is not part
//! of the protocol and never reaches clients: it exists so one write can be
//! followed through the logs of the gateway that received it and the worker
//! that committed and published it (tracing field `trace_id`).

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
    /// Trace id of the frame or request that caused the entry (see the
    /// module docs); empty in entries written before it existed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub trace_id: String,
    /// When the ingest stream accepted the entry (ms since the Unix epoch:
    /// the time part of its stream id, Redis's clock). Not part of the
    /// entry's text: the worker sets it from the id it read the entry
    /// under (`worker/src/claims.rs`); 0 when unknown. Summary mode counts
    /// a chat's message rate on it (`crate::wake::Stamp`).
    #[serde(skip)]
    pub accepted_ms: u64,
}

/// A fresh trace id: 32 lowercase hex digits (128 random bits, the size of
/// a W3C trace-context trace id), cheap enough to make for every frame.
pub fn new_trace_id() -> String {
    format!("{:032x}", rand::random::<u128>())
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
    /// `PATCH /api/chat/{id}`: the fields to change (owner or admin).
    #[serde(rename_all = "camelCase")]
    UpdateChat {
        name: Option<String>,
        description: Option<String>,
        read_only: Option<bool>,
    },
    /// `PATCH /api/chat/{id}/members/{userId}`: hands the chat to another
    /// member (owner only).
    #[serde(rename_all = "camelCase")]
    TransferChat { new_owner: i64 },
}

impl Command {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Send { .. } => "send",
            Self::Edit { .. } => "edit",
            Self::Delete { .. } => "delete",
            Self::React { .. } => "react",
            Self::Read { .. } => "read",
            Self::UpdateChat { .. } => "update_chat",
            Self::TransferChat { .. } => "transfer_chat",
        }
    }
}

/// A message on a gateway's Pub/Sub channel.
#[derive(Debug, Clone, PartialEq)]
pub enum GatewayNotice {
    /// Deliver `frame` to connection `conn` (acks and errors from workers).
    Frame { conn: u64, frame: String },
    /// Deliver each frame to its connection, in order: the answers of one
    /// worker batch to one gateway, in one message.
    Frames(Vec<(u64, String)>),
    /// Close connection `conn` (evicted by the per-user connection limit).
    Evict { conn: u64 },
}

impl GatewayNotice {
    /// `frame <conn>\n<frame>`, `evict <conn>\n`, or for [`Self::Frames`]
    /// `frames <n>\n` then per frame `<conn> <byte length>\n<frame>`.
    pub fn encode(&self) -> String {
        match self {
            Self::Frame { conn, frame } => format!("frame {conn}\n{frame}"),
            Self::Frames(frames) => {
                let size: usize = frames.iter().map(|(_, f)| f.len() + 24).sum();
                let mut out = String::with_capacity(16 + size);
                out.push_str(&format!("frames {}\n", frames.len()));
                for (conn, frame) in frames {
                    out.push_str(&format!("{conn} {}\n", frame.len()));
                    out.push_str(frame);
                }
                out
            }
            Self::Evict { conn } => format!("evict {conn}\n"),
        }
    }

    pub fn decode(text: &str) -> Option<Self> {
        let (head, body) = text.split_once('\n')?;
        let (kind, arg) = head.split_once(' ')?;
        let arg = arg.parse().ok()?;
        match kind {
            "frame" => Some(Self::Frame {
                conn: arg,
                frame: body.to_string(),
            }),
            "frames" => decode_frames(arg, body).map(Self::Frames),
            "evict" => Some(Self::Evict { conn: arg }),
            _ => None,
        }
    }
}

/// The `n` frames of a `frames` notice's body; None when it is not exactly
/// that.
fn decode_frames(n: u64, mut body: &str) -> Option<Vec<(u64, String)>> {
    let mut frames = Vec::with_capacity(n.min(4096) as usize);
    for _ in 0..n {
        let (head, rest) = body.split_once('\n')?;
        let (conn, len) = head.split_once(' ')?;
        let len: usize = len.parse().ok()?;
        let frame = rest.get(..len)?;
        frames.push((conn.parse().ok()?, frame.to_string()));
        body = &rest[len..];
    }
    body.is_empty().then_some(frames)
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
            trace_id: new_trace_id(),
            accepted_ms: 0,
        };
        let text = serde_json::to_string(&e).unwrap();
        assert!(text.contains(r#""kind":"react""#), "{text}");
        assert!(
            text.contains(&format!(r#""traceId":"{}""#, e.trace_id)),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<IngestEntry>(&text).unwrap(), e);
    }

    #[test]
    fn trace_ids_are_fresh_hex_and_optional_in_old_entries() {
        let (a, b) = (new_trace_id(), new_trace_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        // Written by a gateway from before trace ids: still readable.
        let old = r#"{"chatId":1,"userId":2,"gateway":"gw","conn":3,"refId":"r",
            "command":{"kind":"read","seq":4}}"#;
        let e: IngestEntry = serde_json::from_str(old).unwrap();
        assert_eq!(e.trace_id, "");
        assert!(!serde_json::to_string(&e).unwrap().contains("traceId"));
    }

    #[test]
    fn notice_round_trip() {
        for n in [
            GatewayNotice::Frame {
                conn: 5,
                frame: "{\"a\":\n1}".into(),
            },
            GatewayNotice::Evict { conn: 6 },
            GatewayNotice::Frames(vec![
                (5, "{\"a\":\n1}".into()),
                (7, "é\n".into()),
                (5, String::new()),
            ]),
            GatewayNotice::Frames(vec![]),
        ] {
            assert_eq!(GatewayNotice::decode(&n.encode()), Some(n));
        }
        assert_eq!(GatewayNotice::decode("garbage"), None);
        // Lengths that do not add up are refused, not guessed.
        for bad in [
            "frames 2\n5 2\n{}",
            "frames 1\n5 3\n{}",
            "frames 1\n5 1\n{}",
            "frames 1\n5 9\n{}",
        ] {
            assert_eq!(GatewayNotice::decode(bad), None, "{bad:?}");
        }
    }
}
