//! Apple Push Notification service, HTTP/2 provider API with token
//! authentication: `POST {PUSH_APNS_ENDPOINT}/3/device/{token}` with
//! `authorization: bearer <ES256 JWT {iss: team id, iat}, kid: key id>`
//! signed by the `.p8` key named by `PUSH_APNS_KEY`; the JWT is reused for
//! 50 minutes (Apple refuses tokens older than an hour and renewals more
//! often than every 20 minutes).

use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tokio::sync::Mutex;

use super::provider::{classify, unreachable, BoxFuture, Delivery, Provider, PushJob};
use fechatter_shared::store::push::Device;

const TOKEN_LIFE: Duration = Duration::from_secs(50 * 60);

pub struct ApnsKey {
    pub key: EncodingKey,
    pub key_id: String,
    pub team_id: String,
    /// The app's bundle id (`apns-topic`).
    pub topic: String,
}

pub struct Apns {
    http: reqwest::Client,
    endpoint: String,
    key: Option<ApnsKey>,
    token: Mutex<Option<(String, Instant)>>,
}

impl Apns {
    /// `http` must speak HTTP/2 (Apple's API is HTTP/2 only).
    pub fn new(http: reqwest::Client, endpoint: &str, key: Option<ApnsKey>) -> Self {
        Self {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            key,
            token: Mutex::new(None),
        }
    }

    async fn bearer(&self, k: &ApnsKey) -> Result<String, Delivery> {
        let mut cached = self.token.lock().await;
        if let Some((t, until)) = cached.as_ref() {
            if Instant::now() < *until {
                return Ok(t.clone());
            }
        }
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(k.key_id.clone());
        let claims = serde_json::json!({ "iss": k.team_id, "iat": chrono::Utc::now().timestamp() });
        let t = jsonwebtoken::encode(&header, &claims, &k.key)
            .map_err(|e| Delivery::Failed(format!("signing the APNs token: {e}")))?;
        *cached = Some((t.clone(), Instant::now() + TOKEN_LIFE));
        Ok(t)
    }

    /// The APNs payload of a job.
    pub fn payload(job: &PushJob) -> serde_json::Value {
        serde_json::json!({
            "aps": { "alert": { "title": job.title, "body": job.body }, "sound": "default",
                     "thread-id": job.collapse_key },
            "chatId": job.chat_id, "messageId": job.message_id,
        })
    }
}

impl Provider for Apns {
    fn platform(&self) -> &'static str {
        "apns"
    }

    fn send<'a>(&'a self, device: &'a Device, job: &'a PushJob) -> BoxFuture<'a, Delivery> {
        Box::pin(async move {
            let Some(k) = &self.key else {
                return Delivery::Failed("APNs is not configured (PUSH_APNS_KEY)".into());
            };
            let bearer = match self.bearer(k).await {
                Ok(t) => t,
                Err(d) => return d,
            };
            let sent = self
                .http
                .post(format!("{}/3/device/{}", self.endpoint, device.token))
                .header("authorization", format!("bearer {bearer}"))
                .header("apns-topic", &k.topic)
                .header("apns-push-type", "alert")
                .header("apns-priority", if job.urgent() { "10" } else { "5" })
                .header("apns-collapse-id", &job.collapse_key)
                .json(&Self::payload(job))
                .send()
                .await;
            let r = match sent {
                Ok(r) => r,
                Err(e) => return unreachable("APNs", &e),
            };
            let status = r.status().as_u16();
            let reason = r.text().await.unwrap_or_default();
            match status {
                // A device token APNs does not know (anymore).
                400 if reason.contains("BadDeviceToken") => Delivery::Unregistered,
                403 if reason.contains("ExpiredProviderToken") => {
                    *self.token.lock().await = None;
                    Delivery::Retry("APNs provider token expired; renewed".into())
                }
                _ => classify(status, "APNs"),
            }
        })
    }
}
