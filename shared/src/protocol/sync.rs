//! The bodies of the answers to `sync.request`: a `sync.response` page per
//! chat (or a refusal), and `sync.user` for the user's own events. They
//! live together because the gateway assembles them in one pass and the
//! byte budget (`SYNC_REQUEST_MAX_BYTES`) spans them all; the request side
//! is parsed with the other client frames in `client.rs`.

use serde::Serialize;

use super::new_frame;
use crate::AppError;

/// The caller's unread counts in one chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Badge {
    pub unread_count: i64,
    pub mention_count: i64,
}

/// Another member's read watermark (a missed read receipt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadWatermark {
    pub user_id: i64,
    pub seq: i64,
}

/// One page of `sync.response` for one chat (see docs/protocol.md, Sync).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncPage {
    pub chat_id: i64,
    pub last_seq: i64,
    pub too_large: bool,
    pub has_more: bool,
    /// `"<seq>-<sub>"`: what to send for the next page.
    pub cursor: String,
    /// `stream`, `database` or `none`.
    pub source: &'static str,
    /// The events' stored frame text, embedded verbatim.
    pub events: Vec<Box<serde_json::value::RawValue>>,
    pub badge: Badge,
    /// `None` (null) for chats of more than 100 other members.
    pub read_receipts: Option<Vec<ReadWatermark>>,
}

/// `sync.user`: the user's events after the `user` cursor of a
/// `sync.request` (badges, membership changes, session revocations).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncUser {
    /// The cursor is older than what the stream keeps: nothing is replayed;
    /// reload chats and badges over REST (`GET /api/chat`).
    pub too_large: bool,
    pub has_more: bool,
    /// The `userEventId` of the last event in the page (the cursor asked
    /// for when the page is empty).
    pub cursor: String,
    /// The events' frames, each with its `userEventId`, embedded verbatim.
    pub events: Vec<Box<serde_json::value::RawValue>>,
}

impl SyncUser {
    pub const TYPE: &'static str = "sync.user";
    pub fn frame(&self) -> String {
        new_frame(Self::TYPE, self)
    }
}

/// `sync.response` for a chat the caller cannot sync: `{chatId, error}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRefused {
    pub chat_id: i64,
    pub error: ErrorBody,
}

/// `{code, message}` of an error inside another frame.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub code: &'static str,
    pub message: String,
}

impl ErrorBody {
    pub fn of(error: &AppError) -> Self {
        Self {
            code: error.code(),
            message: error.public_message(),
        }
    }
}

/// The type of both `sync.response` shapes.
pub const SYNC_RESPONSE: &str = "sync.response";
