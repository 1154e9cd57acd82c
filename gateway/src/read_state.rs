//! Per-user read state cached by a gateway for its local users, from which
//! it computes unread badges itself (see `Hub::on_message`): the watermark
//! comes from PostgreSQL at connect and moves with read receipts and the
//! user's own messages; the mention count comes from Redis and moves with
//! mentioning messages and the worker's recomputation at read marks.

use std::time::Instant;

use fechatter_shared::protocol::{self, ReadReceipt};

use crate::outbound::Conn;

/// A user's read watermark and unread mention count in one chat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadState {
    pub watermark: i64,
    pub mentions: i64,
}

/// One membership as loaded at connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    pub chat: i64,
    /// The chat's newest message seq when the membership was read: where
    /// the gateway's topic position starts if the chat is new to it.
    pub last_seq: i64,
    pub read: ReadState,
}

/// A badge to send: the user's counts in a chat and their connections.
pub struct BadgeUpdate {
    pub user: i64,
    pub unread: i64,
    pub mentions: i64,
    pub conns: Vec<Conn>,
}

/// A read mark held back by the read rate limit (seed §7.3: coalesced),
/// waiting for a token: the newest mark of one chat on one connection.
#[derive(Debug, Clone)]
pub struct PendingRead {
    pub seq: i64,
    pub ref_id: String,
    /// Trace id of the frame the held mark came from.
    pub trace_id: String,
    pub due: Instant,
}

/// `(reader, chat, seq)` of a `read.receipt` frame, else None. A committed
/// read mark moves the reader's cached watermark (the reader is excluded
/// from the frame, not from the bookkeeping).
pub fn receipt_of(frame: &str) -> Option<(i64, i64, i64)> {
    if protocol::frame_kind(frame) != ReadReceipt::TYPE {
        return None;
    }
    let r: ReadReceipt = protocol::frame_payload(frame)?;
    Some((r.user_id, r.chat_id, r.seq))
}
