//! The WebSocket wire protocol: frame envelope, client frames, server frames.
//!
//! Every frame is `{type, id, timestamp, payload}` (seed 002 §2.2). Client
//! frames are parsed in two steps, envelope then payload, so that a bad
//! payload can still be answered with an `error` frame naming the frame's
//! `id`. Server frames are serialized once and shared as text by every
//! connection that receives them.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::AppError;

mod ack;
mod answer;
mod chat_change;
mod chat_event;
mod client;
mod notification;
mod presence;
mod search;
mod session;
mod sync;
pub use ack::*;
pub use answer::Answer;
pub use chat_change::*;
pub use chat_event::*;
pub use client::*;
pub use notification::*;
pub use presence::*;
pub use search::*;
pub use session::*;
pub use sync::*;

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

/// The payload of an `error` frame. `refId` is always written, `null` when
/// the frame had no usable `id`; `retryAfterMs` only when the error knows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorPayload<'a> {
    code: &'static str,
    message: String,
    ref_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_ms: Option<u64>,
}

/// `error {code, message, refId, retryAfterMs?}` for a failed client frame.
pub fn error_frame(ref_id: Option<&str>, error: &AppError) -> String {
    let payload = ErrorPayload {
        code: error.code(),
        message: error.public_message(),
        ref_id,
        retry_after_ms: error.retry_after_ms(),
    };
    new_frame("error", &payload)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

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

        // The exact payload text of `error` frames: `refId` is always
        // present (null without a usable frame id), `retryAfterMs` only
        // when known.
        let payload = |ref_id: Option<&str>, error: &AppError| {
            let frame = error_frame(ref_id, error);
            assert_eq!(frame_kind(&frame), "error");
            frame_payload::<Box<serde_json::value::RawValue>>(&frame)
                .unwrap()
                .get()
                .to_owned()
        };
        let limited = AppError::RateLimited { retry_after_ms: 90 };
        let invalid = AppError::validation("bad \"x\"");
        assert_eq!(
            payload(Some("r2"), &limited),
            r#"{"code":"rate_limited","message":"rate limited, retry after 90 ms","refId":"r2","retryAfterMs":90}"#
        );
        assert_eq!(
            payload(None, &limited),
            r#"{"code":"rate_limited","message":"rate limited, retry after 90 ms","refId":null,"retryAfterMs":90}"#
        );
        assert_eq!(
            payload(Some("r3"), &invalid),
            r#"{"code":"validation_failed","message":"bad \"x\"","refId":"r3"}"#
        );
        assert_eq!(
            payload(None, &invalid),
            r#"{"code":"validation_failed","message":"bad \"x\"","refId":null}"#
        );
    }
}
