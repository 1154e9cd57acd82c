//! Property tests of the WebSocket frame decoder: whatever arrives
//! (arbitrary bytes, arbitrary JSON, any payload under any frame type), it
//! never panics, and a rejected frame always turns into exactly one
//! well-formed `error` frame, carrying the frame's id when it had one.

use proptest::prelude::*;
use serde_json::Value;

use fechatter_shared::protocol::{error_frame, parse_client_frame};

const TYPES: &[&str] = &[
    "message.send",
    "message.edit",
    "message.delete",
    "message.react",
    "typing.start",
    "typing.stop",
    "read.mark",
    "sync.request",
    "auth.refresh",
    "ping",
    "nope",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("chatId".to_string()),
                    Just("content".to_string()),
                    Just("messageId".to_string()),
                    Just("chats".to_string()),
                    Just("seq".to_string()),
                    ".{0,8}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The decoder's answer to `text` as the session would send it.
fn answer(text: &str) -> Option<Value> {
    match parse_client_frame(text) {
        Ok(_) => None,
        Err(rejected) => {
            let frame = error_frame(rejected.ref_id.as_deref(), &rejected.error);
            Some(serde_json::from_str(&frame).expect("error frames are JSON"))
        }
    }
}

fn assert_error_frame(v: &Value) {
    assert_eq!(v["type"], "error");
    assert!(v["payload"]["code"].as_str().is_some_and(|c| !c.is_empty()));
    assert!(v["payload"]["message"].is_string());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        if let Some(v) = answer(&text) {
            assert_error_frame(&v);
        }
    }

    #[test]
    fn arbitrary_json_never_panics(value in json_value()) {
        if let Some(v) = answer(&value.to_string()) {
            assert_error_frame(&v);
        }
    }

    #[test]
    fn enveloped_payloads_are_accepted_or_answered_with_their_id(
        kind in prop::sample::select(TYPES),
        id in "[a-z0-9-]{1,20}",
        payload in json_value(),
    ) {
        let frame = serde_json::json!({ "type": kind, "id": id, "payload": payload });
        match parse_client_frame(&frame.to_string()) {
            Ok(incoming) => prop_assert_eq!(incoming.id, id),
            Err(rejected) => {
                prop_assert_eq!(rejected.ref_id.as_deref(), Some(id.as_str()));
                let v: Value = serde_json::from_str(
                    &error_frame(rejected.ref_id.as_deref(), &rejected.error),
                ).unwrap();
                assert_error_frame(&v);
            }
        }
    }
}
