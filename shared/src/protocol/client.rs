//! Client frames: what a connection may send, and how a text frame becomes
//! one. Parsing is two steps, envelope then payload, so that a frame with
//! a readable `id` but a bad payload is still answered with an `error`
//! naming that id ([`Rejected::ref_id`]). The gateway reads every text
//! frame through [`parse_client_frame`], so the limits a client frame must
//! meet (id length, chat count, cursor shape) are checked here, once.

use std::collections::BTreeMap;

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::Value;

use super::{
    ChatFocus, PresenceUpdate, SearchQuery, UserIds, MAX_FRAME_ID_LEN, MAX_PRESENCE_IDS,
    SYNC_MAX_CHATS,
};
use crate::AppError;

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
}
