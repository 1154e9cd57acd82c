//! Reading a worker's answer (`ack` or `error` frame) back into a result,
//! for a transport other than the socket it was built for: a REST write
//! waits for the same frame a WebSocket write receives and turns it into
//! its HTTP response, so both transports report the same outcome.

use serde::Deserialize;
use serde_json::Value;

use crate::AppError;

/// The worker's answer to one write.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `ack`: the payload (`refId`, `status` and the command's fields).
    Ack(Value),
    /// `error {code, message, retryAfterMs?}`.
    Error {
        code: String,
        message: String,
        retry_after_ms: Option<u64>,
    },
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    payload: Value,
}

impl Answer {
    /// Parses an answer frame; None for anything else.
    pub fn parse(frame: &str) -> Option<Self> {
        let envelope: Envelope = serde_json::from_str(frame).ok()?;
        match envelope.kind.as_str() {
            "ack" => Some(Self::Ack(envelope.payload)),
            "error" => {
                let p = &envelope.payload;
                Some(Self::Error {
                    code: p["code"].as_str()?.to_string(),
                    message: p["message"].as_str().unwrap_or_default().to_string(),
                    retry_after_ms: p["retryAfterMs"].as_u64(),
                })
            }
            _ => None,
        }
    }

    /// The ack payload, or the error the answer carries.
    pub fn into_result(self) -> Result<Value, AppError> {
        match self {
            Self::Ack(payload) => Ok(payload),
            Self::Error {
                code,
                message,
                retry_after_ms,
            } => Err(AppError::relayed(&code, message, retry_after_ms)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ack_frame, error_frame};

    #[test]
    fn acks_and_errors_round_trip() {
        let ack = ack_frame("c1", serde_json::json!({"messageId": 5, "seq": 2}));
        let payload = Answer::parse(&ack).unwrap().into_result().unwrap();
        assert_eq!(payload["seq"], 2);
        for error in [
            AppError::forbidden("only members may post"),
            AppError::not_found("message not found"),
            AppError::validation("bad"),
            AppError::RateLimited {
                retry_after_ms: 700,
            },
            AppError::Unavailable("x".into()),
        ] {
            let back = Answer::parse(&error_frame(Some("c1"), &error))
                .unwrap()
                .into_result()
                .unwrap_err();
            assert_eq!(back.code(), error.code());
            assert_eq!(back.status(), error.status());
            assert_eq!(back.public_message(), error.public_message());
            assert_eq!(back.retry_after_ms(), error.retry_after_ms());
        }
        assert_eq!(Answer::parse(r#"{"type":"message.new"}"#), None);
        assert_eq!(Answer::parse("not json"), None);
    }
}
