//! Web Push (RFC 8030) with message encryption (RFC 8291, `aes128gcm`
//! content coding of RFC 8188) and VAPID (RFC 8292): the device token is
//! the subscription's endpoint URL, `p256dh` and `auth` its keys.
//!
//! Encryption, per push: a fresh P-256 key pair; ECDH with the
//! subscription's public key; `IKM = HKDF(auth, ecdh, "WebPush: info\0" ||
//! ua_public || as_public, 32)`; with a random 16-byte salt, `CEK =
//! HKDF(salt, IKM, "Content-Encoding: aes128gcm\0", 16)` and `NONCE =
//! HKDF(salt, IKM, "Content-Encoding: nonce\0", 12)`; one record
//! `AES-128-GCM(plaintext || 0x02)`. Body: `salt || rs (4096, u32 BE) ||
//! 65 || as_public || ciphertext`.

use aes_gcm::{aead::Aead, Aes128Gcm, KeyInit};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD as B64, Engine};
use hkdf::Hkdf;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::{ecdh::EphemeralSecret, elliptic_curve::sec1::ToEncodedPoint, PublicKey};
use sha2::Sha256;

use super::provider::{classify, unreachable, BoxFuture, Delivery, Provider, PushJob};
use fechatter_shared::store::push::Device;

const RECORD_SIZE: u32 = 4096;

/// The application server's VAPID key pair.
pub struct Vapid {
    pub key: EncodingKey,
    /// Uncompressed public key, base64url (the `k=` of the header).
    pub public_b64: String,
    /// `mailto:` or `https:` contact (`sub` claim).
    pub subject: String,
}

impl Vapid {
    /// From a PKCS#8 PEM P-256 private key.
    pub fn from_pem(pem: &str, subject: &str) -> anyhow::Result<Self> {
        use p256::pkcs8::DecodePrivateKey;
        let secret = p256::SecretKey::from_pkcs8_pem(pem)?;
        let public = secret.public_key().to_encoded_point(false);
        Ok(Self {
            key: EncodingKey::from_ec_pem(pem.as_bytes())?,
            public_b64: B64.encode(public.as_bytes()),
            subject: subject.to_string(),
        })
    }
}

/// Encrypts `plaintext` for the subscription keys (`p256dh`, `auth`,
/// base64url) as an `aes128gcm` body.
pub fn encrypt(plaintext: &[u8], p256dh: &str, auth: &str) -> Result<Vec<u8>, String> {
    let ua_public_bytes = B64
        .decode(p256dh.trim_end_matches('='))
        .map_err(|e| format!("p256dh: {e}"))?;
    let auth = B64
        .decode(auth.trim_end_matches('='))
        .map_err(|e| format!("auth: {e}"))?;
    let ua_public =
        PublicKey::from_sec1_bytes(&ua_public_bytes).map_err(|e| format!("p256dh: {e}"))?;
    let secret = EphemeralSecret::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let as_public = secret.public_key().to_encoded_point(false);
    let shared = secret.diffie_hellman(&ua_public);

    let mut info = b"WebPush: info\0".to_vec();
    info.extend_from_slice(&ua_public_bytes);
    info.extend_from_slice(as_public.as_bytes());
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(&auth), shared.raw_secret_bytes())
        .expand(&info, &mut ikm)
        .map_err(|e| e.to_string())?;
    let salt: [u8; 16] = rand::random();
    let hk = Hkdf::<Sha256>::new(Some(&salt), &ikm);
    let mut cek = [0u8; 16];
    let mut nonce = [0u8; 12];
    hk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
        .map_err(|e| e.to_string())?;
    hk.expand(b"Content-Encoding: nonce\0", &mut nonce)
        .map_err(|e| e.to_string())?;

    let mut record = plaintext.to_vec();
    record.push(2); // the last (only) record's padding delimiter
    let cipher = Aes128Gcm::new_from_slice(&cek).map_err(|e| e.to_string())?;
    let sealed = cipher
        .encrypt(&nonce.into(), record.as_slice())
        .map_err(|e| e.to_string())?;

    let mut body = Vec::with_capacity(16 + 4 + 1 + 65 + sealed.len());
    body.extend_from_slice(&salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(as_public.as_bytes().len() as u8);
    body.extend_from_slice(as_public.as_bytes());
    body.extend_from_slice(&sealed);
    Ok(body)
}

pub struct WebPush {
    pub http: reqwest::Client,
    pub vapid: Option<Vapid>,
    /// Accept `http://` and local endpoints (tests).
    pub allow_local: bool,
}

impl WebPush {
    /// `Authorization: vapid t=<jwt>, k=<public key>` for the endpoint's
    /// origin.
    fn authorization(v: &Vapid, endpoint: &str) -> Result<String, Delivery> {
        let url = reqwest::Url::parse(endpoint)
            .map_err(|e| Delivery::Failed(format!("endpoint: {e}")))?;
        let origin = url.origin().ascii_serialization();
        let claims = serde_json::json!({
            "aud": origin, "exp": chrono::Utc::now().timestamp() + 12 * 3600, "sub": v.subject,
        });
        let jwt = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &v.key)
            .map_err(|e| Delivery::Failed(format!("signing VAPID: {e}")))?;
        Ok(format!("vapid t={jwt}, k={}", v.public_b64))
    }

    /// A `Topic` header value (at most 32 base64url characters).
    fn topic(collapse_key: &str) -> String {
        collapse_key
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .take(32)
            .collect()
    }
}

impl Provider for WebPush {
    fn platform(&self) -> &'static str {
        "webpush"
    }

    fn send<'a>(&'a self, device: &'a Device, job: &'a PushJob) -> BoxFuture<'a, Delivery> {
        Box::pin(async move {
            let Some(v) = &self.vapid else {
                return Delivery::Failed(
                    "Web Push is not configured (PUSH_VAPID_PRIVATE_KEY)".into(),
                );
            };
            if let Err(why) =
                fechatter_shared::store::push::check_target(&device.token, self.allow_local)
            {
                return Delivery::Failed(format!("endpoint {why}"));
            }
            let (Some(p256dh), Some(auth)) = (&device.p256dh, &device.auth) else {
                return Delivery::Failed("subscription without keys".into());
            };
            let authorization = match Self::authorization(v, &device.token) {
                Ok(a) => a,
                Err(d) => return d,
            };
            let plaintext = serde_json::json!({
                "title": job.title, "body": job.body, "data": job.data(),
            })
            .to_string();
            let body = match encrypt(plaintext.as_bytes(), p256dh, auth) {
                Ok(b) => b,
                Err(e) => return Delivery::Failed(format!("encrypting: {e}")),
            };
            let sent = self
                .http
                .post(&device.token)
                .header("authorization", authorization)
                .header("content-encoding", "aes128gcm")
                .header("content-type", "application/octet-stream")
                .header("ttl", "86400")
                .header("urgency", if job.urgent() { "high" } else { "normal" })
                .header("topic", Self::topic(&job.collapse_key))
                .body(body)
                .send()
                .await;
            match sent {
                Ok(r) => classify(r.status().as_u16(), "Web Push service"),
                Err(e) => unreachable("Web Push service", &e),
            }
        })
    }
}
