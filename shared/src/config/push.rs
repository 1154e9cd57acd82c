//! Push provider settings (worker). Every provider is optional: one that
//! is not configured fails its deliveries with a clear reason (counted and
//! dead-lettered) instead of failing the worker. Key files are named by
//! path; the webhook secret is a secret and never appears in `Debug`.

use std::fmt;

#[derive(Clone, Default)]
pub struct PushSettings {
    /// FCM HTTP v1 base URL and the service account JSON file.
    pub fcm_endpoint: String,
    pub fcm_credentials: String,
    /// APNs base URL, the `.p8` key file, its key id, the team id and the
    /// app's bundle id (`apns-topic`).
    pub apns_endpoint: String,
    pub apns_key: String,
    pub apns_key_id: String,
    pub apns_team_id: String,
    pub apns_topic: String,
    /// PKCS#8 PEM file of the VAPID P-256 key, and its contact.
    pub vapid_private_key: String,
    pub vapid_subject: String,
    /// HMAC secret of webhook signatures (secret).
    pub webhook_secret: String,
    /// Accept `http://` webhook URLs (local setups and tests only).
    pub webhook_allow_http: bool,
}

impl fmt::Debug for PushSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushSettings")
            .field("fcm_endpoint", &self.fcm_endpoint)
            .field("fcm_credentials", &self.fcm_credentials)
            .field("apns_endpoint", &self.apns_endpoint)
            .field("apns_key", &self.apns_key)
            .field("apns_key_id", &self.apns_key_id)
            .field("apns_team_id", &self.apns_team_id)
            .field("apns_topic", &self.apns_topic)
            .field("vapid_private_key", &self.vapid_private_key)
            .field("vapid_subject", &self.vapid_subject)
            .field("webhook_secret", &"<redacted>")
            .field("webhook_allow_http", &self.webhook_allow_http)
            .finish()
    }
}
