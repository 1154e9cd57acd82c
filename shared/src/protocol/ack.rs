//! The `ack` frame, `{refId, status: "ok", ...fields}`, and the fields of
//! the acks that answer no chat event: those the gateway sends itself
//! (typing, sync, search, token refresh, focus, a coalesced read mark)
//! and the worker's ack of a read mark. The acks of message writes are
//! in `chat_event.rs`, next to the events they answer; those of presence
//! frames in `presence.rs`.
//!
//! Each ack shape is a struct, so that the field names clients read are
//! spelled once, here, and checked by the tests below.

use serde::Serialize;

use super::new_frame;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AckPayload<'a, E> {
    ref_id: &'a str,
    status: &'static str,
    #[serde(flatten)]
    fields: E,
}

/// `ack {refId, status: "ok", ...fields}`: `fields` is one of the ack
/// structs (or a reference to one), or `()` for a bare ack. It must
/// serialize as a map or struct.
pub fn ack_frame<E: Serialize>(ref_id: &str, fields: E) -> String {
    new_frame(
        "ack",
        &AckPayload {
            ref_id,
            status: "ok",
            fields,
        },
    )
}

/// The ack of `typing.start`: `{throttled}`, true when over the typing
/// limit (the indicator was not re-broadcast).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TypingAck {
    pub throttled: bool,
}

/// The ack of `auth.refresh`: `{expiresAt}` of the new access token
/// (RFC 3339).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthRefreshed {
    pub expires_at: String,
}

/// The ack of `sync.request`, after its `sync.response` frames: how many
/// chats were answered, and whether a `sync.user` was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SyncAck {
    pub chats: usize,
    pub user: bool,
}

/// The ack of `search.query`, after its results frame: how many results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SearchAck {
    pub results: usize,
}

/// The ack of `chat.focus`: the focused chat (null for none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FocusAck {
    pub chat_id: Option<i64>,
}

/// The worker's ack of `read.mark`: the watermark now stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReadAck {
    pub seq: i64,
}

/// The gateway's ack of a held `read.mark` that a newer mark of the same
/// chat superseded before it was sent: `{coalesced: true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReadCoalesced {
    coalesced: bool,
}

impl ReadCoalesced {
    pub const ACK: Self = Self { coalesced: true };
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn payload(frame: &str) -> Value {
        let v: Value = serde_json::from_str(frame).unwrap();
        assert_eq!(v["type"], "ack");
        v["payload"].clone()
    }

    #[test]
    fn the_payload_is_ref_id_and_status_then_the_fields() {
        let frame = ack_frame("r1", ReadAck { seq: 4 });
        let text = frame.split(r#""payload":"#).nth(1).unwrap();
        assert_eq!(text, r#"{"refId":"r1","status":"ok","seq":4}}"#);
        assert_eq!(
            payload(&ack_frame("r2", ())),
            json!({ "refId": "r2", "status": "ok" })
        );
        assert_eq!(
            payload(&ack_frame("r3", SearchAck { results: 2 })),
            json!({ "refId": "r3", "status": "ok", "results": 2 })
        );
    }

    #[test]
    fn gateway_acks_have_their_documented_fields() {
        let cases = [
            (
                serde_json::to_value(TypingAck { throttled: true }),
                json!({ "throttled": true }),
            ),
            (
                serde_json::to_value(AuthRefreshed {
                    expires_at: "2026-01-01T00:00:00.000Z".into(),
                }),
                json!({ "expiresAt": "2026-01-01T00:00:00.000Z" }),
            ),
            (
                serde_json::to_value(SyncAck {
                    chats: 3,
                    user: false,
                }),
                json!({ "chats": 3, "user": false }),
            ),
            (
                serde_json::to_value(SearchAck { results: 0 }),
                json!({ "results": 0 }),
            ),
            (
                serde_json::to_value(FocusAck { chat_id: Some(7) }),
                json!({ "chatId": 7 }),
            ),
            (
                serde_json::to_value(FocusAck { chat_id: None }),
                json!({ "chatId": null }),
            ),
            (
                serde_json::to_value(ReadAck { seq: 12 }),
                json!({ "seq": 12 }),
            ),
            (
                serde_json::to_value(ReadCoalesced::ACK),
                json!({ "coalesced": true }),
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got.unwrap(), want);
        }
    }
}
