//! The push providers behind one trait: each turns a [`PushJob`] for one
//! registered device into the request its platform expects, and says how
//! it went in the platform-neutral [`Delivery`].

use std::{future::Future, pin::Pin};

use fechatter_shared::store::push::Device;
use serde::{Deserialize, Serialize};

/// One push to one user (all their devices), as queued by the evaluator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PushJob {
    pub user_id: i64,
    pub message_id: i64,
    pub chat_id: i64,
    pub title: String,
    pub body: String,
    /// `normal` or `urgent`.
    pub priority: String,
    /// Pushes of one chat replace each other on the device.
    pub collapse_key: String,
    /// When the message was sent (RFC 3339).
    pub sent_at: String,
}

impl PushJob {
    /// The data every platform carries besides title and body.
    pub fn data(&self) -> serde_json::Value {
        serde_json::json!({
            "chatId": self.chat_id.to_string(),
            "messageId": self.message_id.to_string(),
            "priority": self.priority,
        })
    }

    pub fn urgent(&self) -> bool {
        self.priority == "urgent"
    }
}

/// How one delivery attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// 5xx, 408, 429, timeouts, connection errors: try again later.
    Retry(String),
    /// The platform says the device is gone (404/410): forget it.
    Unregistered,
    /// Anything else (bad request, bad credentials, not configured).
    Failed(String),
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub trait Provider: Send + Sync {
    /// `fcm`, `apns`, `webpush` or `webhook`: the devices it serves.
    fn platform(&self) -> &'static str;
    fn send<'a>(&'a self, device: &'a Device, job: &'a PushJob) -> BoxFuture<'a, Delivery>;
}

/// The usual meaning of an HTTP status for a push.
pub fn classify(status: u16, what: &str) -> Delivery {
    match status {
        200..=299 => Delivery::Sent,
        404 | 410 => Delivery::Unregistered,
        408 | 429 | 500..=599 => Delivery::Retry(format!("{what} answered {status}")),
        _ => Delivery::Failed(format!("{what} answered {status}")),
    }
}

/// A transport error: always worth another try.
pub fn unreachable(what: &str, e: &reqwest::Error) -> Delivery {
    Delivery::Retry(format!("{what} unreachable: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(classify(200, "x"), Delivery::Sent);
        assert_eq!(classify(201, "x"), Delivery::Sent);
        assert_eq!(classify(410, "x"), Delivery::Unregistered);
        assert_eq!(classify(404, "x"), Delivery::Unregistered);
        assert!(matches!(classify(503, "x"), Delivery::Retry(_)));
        assert!(matches!(classify(429, "x"), Delivery::Retry(_)));
        assert!(matches!(classify(400, "x"), Delivery::Failed(_)));
        assert!(matches!(classify(403, "x"), Delivery::Failed(_)));
    }
}
