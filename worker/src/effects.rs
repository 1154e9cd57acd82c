//! What a committed batch must announce, collected while the transaction
//! runs and published only after it commits (see [`crate::publish`]).

use fechatter_shared::{ingest::IngestEntry, protocol};

/// An event to append to a chat topic stream, in commit order.
#[derive(Debug, Clone)]
pub struct TopicEvent {
    pub chat_id: i64,
    pub seq: i64,
    pub sub: i64,
    /// Contiguous per-chat event number (`chat_events.event_seq`).
    pub event_seq: i64,
    pub frame: String,
    /// The message the event is about.
    pub message_id: i64,
    /// True when the event changes what search finds for the message
    /// (message.new, message.updated, message.deleted), false for
    /// reactions: only those reach the search index stream.
    pub indexed: bool,
    /// When the write that caused it was accepted (`IngestEntry::accepted_ms`;
    /// 0 unknown): published in the event's stamp.
    pub accepted_ms: u64,
}

/// A frame for one connection on one gateway.
#[derive(Debug, Clone)]
pub struct Reply {
    pub gateway: String,
    pub conn: u64,
    pub frame: String,
}

/// Unread state of one user in one chat, recomputed from PostgreSQL at a
/// read mark or a send (the store's counts, announced as they are).
pub use fechatter_shared::store::badge::Counts as Badge;

/// A message committed in the batch, for the notification evaluator.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub chat_id: i64,
    pub message_id: i64,
    pub sender_id: i64,
    pub content: String,
    /// Resolved mentions (never the sender).
    pub mentions: Vec<i64>,
    pub urgent: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Everything to announce after the batch committed.
#[derive(Debug, Default)]
pub struct Effects {
    /// New messages, for toasts (see `crate::notify`).
    pub messages: Vec<NewMessage>,
    pub topic: Vec<TopicEvent>,
    pub replies: Vec<Reply>,
    pub badges: Vec<Badge>,
    /// (user, chat) whose stored unread mention count grows by one.
    pub mentions: Vec<(i64, i64)>,
    /// Ephemeral chat frames: (chat, user to exclude, frame).
    pub chat_frames: Vec<(i64, i64, String)>,
    /// Count of entries per (kind, outcome) for metrics.
    pub outcomes: Vec<(&'static str, &'static str)>,
    /// When the batch committed (ms since the Unix epoch; 0 before): the
    /// commit stamp of its topic events, from which gateways measure
    /// delivery latency (`fechatter_shared::wake::stamp`).
    pub committed_ms: u64,
}

/// A frame for the connection that sent `entry`.
pub fn reply(entry: &IngestEntry, frame: String) -> Reply {
    Reply {
        gateway: entry.gateway.clone(),
        conn: entry.conn,
        frame,
    }
}

/// Queues `ack {refId, status: "ok", ...fields}` for `e`'s sender;
/// `fields` is one of the ack structs of `fechatter_shared::protocol`.
pub fn ack(fx: &mut Effects, e: &IngestEntry, fields: impl serde::Serialize) {
    fx.replies
        .push(reply(e, protocol::ack_frame(&e.ref_id, fields)));
}
