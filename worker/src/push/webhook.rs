//! Signed webhooks for integrations: the device token is an `https://` URL
//! (`http://` only with `PUSH_WEBHOOK_ALLOW_HTTP=1`, for local setups),
//! and each push is a JSON POST signed like the common webhook APIs:
//! `X-Fechatter-Timestamp: <unix seconds>` and
//! `X-Fechatter-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`,
//! so a receiver can check origin and reject replays.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::provider::{classify, unreachable, BoxFuture, Delivery, Provider, PushJob};
use fechatter_shared::store::push::Device;

pub struct Webhook {
    pub http: reqwest::Client,
    pub secret: String,
    pub allow_http: bool,
}

/// `sha256=<hex>` of `"<timestamp>.<body>"`.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    let bytes = mac.finalize().into_bytes();
    format!(
        "sha256={}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

impl Provider for Webhook {
    fn platform(&self) -> &'static str {
        "webhook"
    }

    fn send<'a>(&'a self, device: &'a Device, job: &'a PushJob) -> BoxFuture<'a, Delivery> {
        Box::pin(async move {
            if self.secret.is_empty() {
                return Delivery::Failed("PUSH_WEBHOOK_SECRET is not set".into());
            }
            if let Err(why) =
                fechatter_shared::store::push::check_target(&device.token, self.allow_http)
            {
                return Delivery::Failed(format!("webhook URL {why}"));
            }
            let body = serde_json::to_string(job).unwrap_or_default();
            let ts = chrono::Utc::now().timestamp();
            let sent = self
                .http
                .post(&device.token)
                .header("content-type", "application/json")
                .header("x-fechatter-timestamp", ts.to_string())
                .header("x-fechatter-signature", signature(&self.secret, ts, &body))
                .header(
                    "x-fechatter-delivery",
                    format!("{}:{}", job.message_id, device.id),
                )
                .body(body)
                .send()
                .await;
            match sent {
                Ok(r) => classify(r.status().as_u16(), "webhook"),
                Err(e) => unreachable("webhook", &e),
            }
        })
    }
}
