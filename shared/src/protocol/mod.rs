//! The WebSocket wire protocol: frame envelope, client frames, server frames.
//!
//! Every frame is `{type, id, timestamp, payload}` (seed 002 §2.2). Client
//! frames are parsed in two steps, envelope then payload, so that a bad
//! payload can still be answered with an `error` frame naming the frame's
//! `id`. Server frames are serialized once and shared as text by every
//! connection that receives them.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::Value;

use crate::AppError;

mod ack;
mod answer;
mod chat_change;
mod chat_event;
mod notification;
mod presence;
mod search;
pub use ack::*;
pub use answer::Answer;
pub use chat_change::*;
pub use chat_event::*;
pub use notification::*;
pub use presence::*;
pub use search::*;

/// Largest client frame; larger ones are answered with an error and close 1009.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Largest message content, in characters.
pub const MAX_CONTENT_CHARS: usize = 16_000;
/// Longest client frame id (it doubles as the idempotency key).
pub const MAX_FRAME_ID_LEN: usize = 100;
/// Sync returns `tooLarge` when more messages than this were missed.
pub const SYNC_MAX_GAP: i64 = 500;
/// Most bytes of events answering one `sync.request` (all its chats): a
/// reconnect naming 200 busy chats must not overflow its own outbound
/// queue (`SEND_QUEUE_BYTES` must be at least twice this). Chats past the
/// budget get a page without events and `hasMore`, to be asked again.
pub const SYNC_REQUEST_MAX_BYTES: usize = 1024 * 1024;
/// Most chats one `sync.request` may name.
pub const SYNC_MAX_CHATS: usize = 200;

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: Option<String>,
    id: Option<Value>,
    #[serde(default)]
    payload: Option<Value>,
}

/// A parsed client frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    /// The client's frame id, echoed as `refId`.
    pub id: String,
    pub frame: ClientFrame,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    MessageSend(MessageSend),
    MessageEdit(MessageEdit),
    MessageDelete(MessageRef),
    MessageReact(MessageReact),
    TypingStart(ChatRef),
    TypingStop(ChatRef),
    ReadMark(ReadMark),
    SyncRequest(SyncRequest),
    AuthRefresh(AuthRefresh),
    PresenceUpdate(PresenceUpdate),
    PresenceSubscribe(UserIds),
    PresenceUnsubscribe(UserIds),
    ChatFocus(ChatFocus),
    SearchQuery(SearchQuery),
    Ping,
}

impl ClientFrame {
    /// The frame type, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MessageSend(_) => "message.send",
            Self::MessageEdit(_) => "message.edit",
            Self::MessageDelete(_) => "message.delete",
            Self::MessageReact(_) => "message.react",
            Self::TypingStart(_) => "typing.start",
            Self::TypingStop(_) => "typing.stop",
            Self::ReadMark(_) => "read.mark",
            Self::SyncRequest(_) => "sync.request",
            Self::AuthRefresh(_) => "auth.refresh",
            Self::PresenceUpdate(_) => "presence.update",
            Self::PresenceSubscribe(_) => "presence.subscribe",
            Self::PresenceUnsubscribe(_) => "presence.unsubscribe",
            Self::ChatFocus(_) => "chat.focus",
            Self::SearchQuery(_) => "search.query",
            Self::Ping => "ping",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageSend {
    pub chat_id: i64,
    pub content: String,
    pub reply_to: Option<i64>,
    /// User ids mentioned; ids that are not members are ignored.
    #[serde(default)]
    pub mentions: Vec<i64>,
    /// `normal` (default) or `urgent`.
    #[serde(default)]
    pub priority: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageEdit {
    pub message_id: i64,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageRef {
    pub message_id: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReactAction {
    Add,
    Remove,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageReact {
    pub message_id: i64,
    pub emoji: String,
    pub action: ReactAction,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatRef {
    pub chat_id: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadMark {
    pub chat_id: i64,
    pub seq: i64,
}

/// A fresh access token for a live connection (answer to `token.refresh`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthRefresh {
    pub access_token: String,
}

/// `{chats: {"<chatId>": cursor}}`: the cursor is the last message seq the
/// client has (a number), or the `cursor` of the previous `sync.response`
/// page (`"<seq>-<sub>"`, the id of the last event it has).
#[derive(Debug, Clone, PartialEq)]
pub struct SyncRequest {
    pub chats: BTreeMap<i64, crate::wake::StreamId>,
    /// The last `userEventId` the client has, to replay the user's events
    /// after it (`sync.user`).
    pub user: Option<crate::wake::StreamId>,
}

/// A frame the server could not accept: the error and, when the envelope
/// was readable, the frame id to answer with.
#[derive(Debug)]
pub struct Rejected {
    pub ref_id: Option<String>,
    pub error: AppError,
}

/// Parses one client text frame.
pub fn parse_client_frame(text: &str) -> Result<Incoming, Rejected> {
    let envelope: Envelope = serde_json::from_str(text).map_err(|e| Rejected {
        ref_id: None,
        error: if e.is_data() {
            AppError::validation(format!("frame must be an object: {e}"))
        } else {
            AppError::InvalidJson(e.to_string())
        },
    })?;
    let id = match envelope.id {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_FRAME_ID_LEN => s,
        _ => {
            return Err(Rejected {
                ref_id: None,
                error: AppError::validation(format!(
                "frame needs an `id`: a non-empty string of at most {MAX_FRAME_ID_LEN} characters"
            )),
            })
        }
    };
    let reject = |error: AppError| Rejected {
        ref_id: Some(id.clone()),
        error,
    };
    let Some(kind) = envelope.kind else {
        return Err(reject(AppError::validation("frame needs a `type`")));
    };
    let payload = envelope
        .payload
        .unwrap_or(Value::Object(Default::default()));
    let frame = match kind.as_str() {
        "message.send" => ClientFrame::MessageSend(payload_of(payload).map_err(reject)?),
        "message.edit" => ClientFrame::MessageEdit(payload_of(payload).map_err(reject)?),
        "message.delete" => ClientFrame::MessageDelete(payload_of(payload).map_err(reject)?),
        "message.react" => ClientFrame::MessageReact(payload_of(payload).map_err(reject)?),
        "typing.start" => ClientFrame::TypingStart(payload_of(payload).map_err(reject)?),
        "typing.stop" => ClientFrame::TypingStop(payload_of(payload).map_err(reject)?),
        "read.mark" => ClientFrame::ReadMark(payload_of(payload).map_err(reject)?),
        "sync.request" => ClientFrame::SyncRequest(sync_request(payload).map_err(reject)?),
        "auth.refresh" => ClientFrame::AuthRefresh(payload_of(payload).map_err(reject)?),
        "presence.update" => ClientFrame::PresenceUpdate(payload_of(payload).map_err(reject)?),
        "chat.focus" => ClientFrame::ChatFocus(payload_of(payload).map_err(reject)?),
        "search.query" => ClientFrame::SearchQuery(payload_of(payload).map_err(reject)?),
        "presence.subscribe" => ClientFrame::PresenceSubscribe(user_ids(payload).map_err(reject)?),
        "presence.unsubscribe" => {
            ClientFrame::PresenceUnsubscribe(user_ids(payload).map_err(reject)?)
        }
        "ping" => ClientFrame::Ping,
        other => {
            return Err(reject(AppError::bad_request(format!(
                "unknown frame type {other:?}"
            ))))
        }
    };
    Ok(Incoming { id, frame })
}

fn payload_of<T: DeserializeOwned>(payload: Value) -> Result<T, AppError> {
    serde_json::from_value(payload)
        .map_err(|e| AppError::validation(format!("invalid payload: {e}")))
}

fn user_ids(payload: Value) -> Result<UserIds, AppError> {
    let ids: UserIds = payload_of(payload)?;
    if ids.user_ids.len() > MAX_PRESENCE_IDS {
        return Err(AppError::validation(format!(
            "at most {MAX_PRESENCE_IDS} userIds per frame"
        )));
    }
    Ok(ids)
}

fn sync_request(payload: Value) -> Result<SyncRequest, AppError> {
    #[derive(Deserialize)]
    struct Raw {
        #[serde(default)]
        chats: BTreeMap<String, Value>,
        #[serde(default)]
        user: Option<String>,
    }
    let raw: Raw = payload_of(payload)?;
    if raw.chats.len() > SYNC_MAX_CHATS {
        return Err(AppError::validation(format!(
            "at most {SYNC_MAX_CHATS} chats per sync.request"
        )));
    }
    let mut chats = BTreeMap::new();
    for (key, cursor) in raw.chats {
        let chat_id: i64 = key
            .parse()
            .map_err(|_| AppError::validation(format!("chat id {key:?} is not a number")))?;
        chats.insert(chat_id, sync_cursor(&cursor)?);
    }
    let user = match raw.user.as_deref() {
        None => None,
        Some(cursor) => Some(cursor.parse::<crate::wake::StreamId>().map_err(|_| {
            AppError::validation("`user` is a userEventId \"<ms>-<n>\" (or \"0-0\")")
        })?),
    };
    Ok(SyncRequest { chats, user })
}

/// A sync cursor: a non-negative seq, or `"<seq>-<sub>"`.
fn sync_cursor(value: &Value) -> Result<crate::wake::StreamId, AppError> {
    let invalid = || {
        AppError::validation("a sync cursor is a non-negative seq or a \"<seq>-<sub>\" event id")
    };
    match value {
        Value::Number(n) => n
            .as_u64()
            .filter(|s| *s <= i64::MAX as u64)
            .map(|s| crate::wake::StreamId(s, 0))
            .ok_or_else(invalid),
        Value::String(s) => s
            .parse::<crate::wake::StreamId>()
            .ok()
            .filter(|id| id.0 <= i64::MAX as u64 && id.1 <= i64::MAX as u64)
            .ok_or_else(invalid),
        _ => Err(invalid()),
    }
}

#[derive(Serialize)]
struct Outgoing<'a, P: Serialize + ?Sized> {
    #[serde(rename = "type")]
    kind: &'a str,
    id: &'a str,
    timestamp: String,
    payload: &'a P,
}

/// Serializes a server frame.
pub fn server_frame<P: Serialize + ?Sized>(
    kind: &str,
    id: &str,
    at: DateTime<Utc>,
    payload: &P,
) -> String {
    serde_json::to_string(&Outgoing {
        kind,
        id,
        timestamp: at.to_rfc3339_opts(SecondsFormat::Millis, true),
        payload,
    })
    .expect("server payloads serialize")
}

/// The `type` of a serialized server frame (they all start with it).
pub fn frame_kind(frame: &str) -> &str {
    frame
        .strip_prefix("{\"type\":\"")
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("unknown")
}

/// The payload of a serialized server frame as `T`, None when it is not
/// one.
pub fn frame_payload<T: DeserializeOwned>(frame: &str) -> Option<T> {
    #[derive(Deserialize)]
    struct Payload<T> {
        payload: T,
    }
    serde_json::from_str::<Payload<T>>(frame)
        .ok()
        .map(|f| f.payload)
}

/// A server frame with a fresh random id, stamped now.
pub fn new_frame<P: Serialize + ?Sized>(kind: &str, payload: &P) -> String {
    server_frame(kind, &uuid::Uuid::new_v4().to_string(), Utc::now(), payload)
}

/// The deterministic frame id of a chat event: the same event always has
/// the same id, whether it arrives live, by sync or twice, so clients can
/// de-duplicate on it.
pub fn event_frame_id(chat_id: i64, seq: i64, sub: i64) -> String {
    format!("c{chat_id}:{seq}-{sub}")
}

/// An RFC 3339 timestamp (UTC, milliseconds) for a Unix time in ms:
/// every time in every frame is a string of this form.
pub fn rfc3339_ms(unix_ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(unix_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// [`rfc3339_ms`] for a Unix time in seconds.
pub fn rfc3339(unix_secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(unix_secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

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

/// `error {code, message, refId, retryAfterMs?}` for a failed client frame.
pub fn error_frame(ref_id: Option<&str>, error: &AppError) -> String {
    let mut payload = serde_json::json!({
        "code": error.code(),
        "message": error.public_message(),
        "refId": ref_id,
    });
    if let Some(ms) = error.retry_after_ms() {
        payload["retryAfterMs"] = ms.into();
    }
    new_frame("error", &payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_send() {
        let f = parse_client_frame(
            r#"{"type":"message.send","id":"a1","timestamp":"2026-01-01T00:00:00Z",
                "payload":{"chatId":3,"content":"hi","mentions":[2]}}"#,
        )
        .unwrap();
        assert_eq!(f.id, "a1");
        assert_eq!(
            f.frame,
            ClientFrame::MessageSend(MessageSend {
                chat_id: 3,
                content: "hi".into(),
                reply_to: None,
                mentions: vec![2],
                priority: None,
            })
        );
    }

    #[test]
    fn bad_frames_are_classified() {
        let code = |text: &str| parse_client_frame(text).unwrap_err().error.code();
        assert_eq!(code("{not json"), "invalid_json");
        assert_eq!(code("[1,2]"), "validation_failed");
        assert_eq!(code(r#"{"type":"ping"}"#), "validation_failed");
        assert_eq!(code(r#"{"type":"ping","id":7}"#), "validation_failed");
        let r = parse_client_frame(r#"{"type":"nope","id":"x"}"#).unwrap_err();
        assert_eq!(
            (r.error.code(), r.ref_id.as_deref()),
            ("bad_request", Some("x"))
        );
        let r = parse_client_frame(r#"{"type":"message.send","id":"x","payload":{"chatId":"a"}}"#)
            .unwrap_err();
        assert_eq!(
            (r.error.code(), r.ref_id.as_deref()),
            ("validation_failed", Some("x"))
        );
    }

    #[test]
    fn sync_request_keys_are_chat_ids() {
        let f = parse_client_frame(
            r#"{"type":"sync.request","id":"s","payload":{"chats":{"4":10,"9":0}}}"#,
        )
        .unwrap();
        let ClientFrame::SyncRequest(req) = f.frame else {
            panic!()
        };
        use crate::wake::StreamId;
        assert_eq!(
            req.chats,
            BTreeMap::from([(4, StreamId(10, 0)), (9, StreamId(0, 0))])
        );
        let paged = parse_client_frame(
            r#"{"type":"sync.request","id":"s","payload":{"chats":{"4":"10-3"}}}"#,
        )
        .unwrap();
        let ClientFrame::SyncRequest(req) = paged.frame else {
            panic!()
        };
        assert_eq!(req.chats, BTreeMap::from([(4, StreamId(10, 3))]));
        for bad in [r#"-1"#, r#""x-1""#, r#""10""#, r#"1.5"#, r#"null"#] {
            let text = format!(
                r#"{{"type":"sync.request","id":"s","payload":{{"chats":{{"4":{bad}}}}}}}"#
            );
            assert!(parse_client_frame(&text).is_err(), "{bad}");
        }
        let bad =
            parse_client_frame(r#"{"type":"sync.request","id":"s","payload":{"chats":{"x":1}}}"#);
        assert!(bad.is_err());
    }

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

    #[test]
    fn frames_have_the_envelope() {
        let text = ack_frame("r1", ReadAck { seq: 4 });
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "ack");
        assert_eq!(v["payload"]["refId"], "r1");
        assert_eq!(v["payload"]["status"], "ok");
        assert_eq!(v["payload"]["seq"], 4);
        assert!(v["id"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
        let err = error_frame(Some("r2"), &AppError::RateLimited { retry_after_ms: 90 });
        let v: Value = serde_json::from_str(&err).unwrap();
        assert_eq!(v["payload"]["code"], "rate_limited");
        assert_eq!(v["payload"]["retryAfterMs"], 90);
        assert_eq!(v["payload"]["refId"], "r2");
    }
}
