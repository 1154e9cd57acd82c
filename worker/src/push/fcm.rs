//! Firebase Cloud Messaging, HTTP v1 API: `POST
//! {PUSH_FCM_ENDPOINT}/v1/projects/{project}/messages:send` with an OAuth 2
//! access token that a service account (the JSON file named by
//! `PUSH_FCM_CREDENTIALS`) gets by signing an RS256 JWT for its `token_uri`
//! (RFC 7523). The token is cached until a minute before it expires and
//! dropped on a 401.

use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use tokio::sync::Mutex;

use super::provider::{classify, unreachable, BoxFuture, Delivery, Provider, PushJob};
use fechatter_shared::store::push::Device;

const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// The fields of a Google service account file that FCM needs.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceAccount {
    pub project_id: String,
    pub client_email: String,
    pub private_key: String,
    pub token_uri: String,
}

pub struct Fcm {
    http: reqwest::Client,
    endpoint: String,
    account: Option<(ServiceAccount, EncodingKey)>,
    token: Mutex<Option<(String, Instant)>>,
}

impl Fcm {
    /// `credentials`: the service account JSON (None: FCM not configured,
    /// every FCM delivery fails with that reason).
    pub fn new(
        http: reqwest::Client,
        endpoint: &str,
        credentials: Option<&str>,
    ) -> anyhow::Result<Self> {
        let account = match credentials {
            None => None,
            Some(json) => {
                let a: ServiceAccount = serde_json::from_str(json)?;
                let key = EncodingKey::from_rsa_pem(a.private_key.as_bytes())?;
                Some((a, key))
            }
        };
        Ok(Self {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            account,
            token: Mutex::new(None),
        })
    }

    async fn access_token(
        &self,
        account: &ServiceAccount,
        key: &EncodingKey,
    ) -> Result<String, Delivery> {
        let mut cached = self.token.lock().await;
        if let Some((token, until)) = cached.as_ref() {
            if Instant::now() < *until {
                return Ok(token.clone());
            }
        }
        let now = chrono::Utc::now().timestamp();
        let claims = serde_json::json!({
            "iss": account.client_email, "scope": SCOPE, "aud": account.token_uri,
            "iat": now, "exp": now + 3600,
        });
        let assertion = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, key)
            .map_err(|e| Delivery::Failed(format!("signing the FCM token request: {e}")))?;
        let response = self
            .http
            .post(&account.token_uri)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .map_err(|e| unreachable("FCM token endpoint", &e))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(match classify(status, "FCM token endpoint") {
                Delivery::Unregistered => {
                    Delivery::Failed(format!("FCM token endpoint answered {status}"))
                }
                other => other,
            });
        }
        #[derive(Deserialize)]
        struct Token {
            access_token: String,
            expires_in: u64,
        }
        let t: Token = response
            .json()
            .await
            .map_err(|e| Delivery::Retry(format!("unreadable FCM token answer: {e}")))?;
        let life = Duration::from_secs(t.expires_in.saturating_sub(60).max(1));
        *cached = Some((t.access_token.clone(), Instant::now() + life));
        Ok(t.access_token)
    }

    /// The v1 `message` for one device.
    pub fn message(device_token: &str, job: &PushJob) -> serde_json::Value {
        serde_json::json!({ "message": {
            "token": device_token,
            "notification": { "title": job.title, "body": job.body },
            "data": job.data(),
            "android": { "collapse_key": job.collapse_key,
                         "priority": if job.urgent() { "HIGH" } else { "NORMAL" } },
            "apns": { "headers": { "apns-collapse-id": job.collapse_key } },
        }})
    }
}

impl Provider for Fcm {
    fn platform(&self) -> &'static str {
        "fcm"
    }

    fn send<'a>(&'a self, device: &'a Device, job: &'a PushJob) -> BoxFuture<'a, Delivery> {
        Box::pin(async move {
            let Some((account, key)) = &self.account else {
                return Delivery::Failed("FCM is not configured (PUSH_FCM_CREDENTIALS)".into());
            };
            let token = match self.access_token(account, key).await {
                Ok(t) => t,
                Err(d) => return d,
            };
            let url = format!(
                "{}/v1/projects/{}/messages:send",
                self.endpoint, account.project_id
            );
            let sent = self
                .http
                .post(url)
                .bearer_auth(token)
                .json(&Self::message(&device.token, job))
                .send()
                .await;
            match sent {
                Ok(r) if r.status().as_u16() == 401 => {
                    *self.token.lock().await = None;
                    Delivery::Retry("FCM answered 401; the access token is renewed".into())
                }
                Ok(r) => classify(r.status().as_u16(), "FCM"),
                Err(e) => unreachable("FCM", &e),
            }
        })
    }
}
