//! Access tokens (JWT) and refresh-token secrets.
//!
//! Access tokens are short-lived HS256 JWTs that every gateway can verify
//! without a database round trip; they carry the workspace id so workspace
//! isolation is enforced from the token alone, and the display name so
//! typing indicators need no lookup. Refresh tokens are opaque random
//! strings: only their SHA-256 is stored, so a database leak does not leak
//! usable tokens.

use std::time::Duration;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{
    decode, encode, errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::AppError;

/// Issuer and audience of every access token: a token minted for another
/// system sharing the secret by mistake is still refused.
pub const ISSUER: &str = "fechatter";
pub const AUDIENCE: &str = "fechatter-realtime";
/// Clock skew tolerated between gateways, seconds.
const LEEWAY_SECS: u64 = 5;

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// User id, as a decimal string (JWT `sub` is a string by spec).
    pub sub: String,
    /// Workspace id.
    pub wid: i64,
    /// Display name at issue time.
    pub name: String,
    /// Session id: the refresh-token family this token was issued for, so
    /// revoking the session (logout, reuse detection) reaches its tokens.
    pub sid: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

impl Claims {
    pub fn user_id(&self) -> Result<i64, AppError> {
        self.sub
            .parse()
            .map_err(|_| AppError::unauthorized("malformed token subject"))
    }
}

/// Who a token is issued to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject<'a> {
    pub user_id: i64,
    pub workspace_id: i64,
    pub name: &'a str,
    pub session_id: Uuid,
}

/// The identity established by a verified access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: i64,
    pub workspace_id: i64,
    pub display_name: String,
    pub session_id: Uuid,
    /// Issue time, seconds since the epoch.
    pub issued_at: i64,
    /// Expiry, seconds since the epoch.
    pub expires_at: i64,
}

/// Signs and verifies access tokens with one shared secret (HS256 only).
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Key for deriving refresh-token successors (see
    /// [`TokenKeys::successor_refresh_token`]).
    successor_key: Vec<u8>,
    ttl: Duration,
}

impl TokenKeys {
    pub fn new(secret: &str, ttl: Duration) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            successor_key: Sha256::digest(format!("refresh-successor:{secret}")).to_vec(),
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Issues a token for `subject`, valid for the configured lifetime.
    pub fn issue(&self, subject: &Subject<'_>) -> Result<String, AppError> {
        let now = chrono::Utc::now().timestamp();
        self.issue_at(subject, now, now + self.ttl.as_secs() as i64)
    }

    /// Issues a token with explicit times (tests use it to mint expired ones).
    pub fn issue_at(&self, subject: &Subject<'_>, iat: i64, exp: i64) -> Result<String, AppError> {
        let claims = Claims {
            sub: subject.user_id.to_string(),
            wid: subject.workspace_id,
            name: subject.name.to_string(),
            sid: subject.session_id.to_string(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat,
            exp,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("signing token: {e}")))
    }

    /// Verifies algorithm (HS256 only), signature, issuer, audience, expiry
    /// and lifetime (`exp - iat` at most the configured lifetime), and
    /// returns the identity.
    pub fn verify(&self, token: &str) -> Result<Identity, AppError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        let data =
            decode::<Claims>(token, &self.decoding, &validation).map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AppError::TokenExpired,
                _ => AppError::unauthorized("invalid access token"),
            })?;
        let c = data.claims;
        if c.exp - c.iat > self.ttl.as_secs() as i64 + LEEWAY_SECS as i64 {
            return Err(AppError::unauthorized(
                "access token lifetime exceeds the configured maximum",
            ));
        }
        if c.iat > chrono::Utc::now().timestamp() + LEEWAY_SECS as i64 {
            return Err(AppError::unauthorized("access token issued in the future"));
        }
        let session_id = Uuid::parse_str(&c.sid)
            .map_err(|_| AppError::unauthorized("malformed token session"))?;
        Ok(Identity {
            user_id: c.user_id()?,
            workspace_id: c.wid,
            display_name: c.name,
            session_id,
            issued_at: c.iat,
            expires_at: c.exp,
        })
    }

    /// The refresh token that rotating `presented` yields. Derived (keyed
    /// hash of the presented token), not random, so a second concurrent
    /// refresh with the same token inside the grace window can be answered
    /// with the same successor although only hashes are stored.
    pub fn successor_refresh_token(&self, presented: &str) -> String {
        let mut h = Sha256::new();
        h.update(&self.successor_key);
        h.update(presented.as_bytes());
        // Second pass over the key (HMAC-style envelope; SHA-256 is not
        // length-extension safe on its own).
        let inner = h.finalize();
        let mut outer = Sha256::new();
        outer.update(&self.successor_key);
        outer.update(inner);
        URL_SAFE_NO_PAD.encode(outer.finalize())
    }
}

/// A new random refresh token (256 bits, URL-safe).
pub fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A short, non-secret name for `data`: the first 16 hex digits of its
/// SHA-256. Rate-limit subjects use it (no e-mail or token in a Redis
/// key), and the web client's files use it as their version.
pub fn short_digest(data: &[u8]) -> String {
    Sha256::digest(data)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What is stored for a refresh token: its SHA-256.
pub fn hash_refresh_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ada(session_id: Uuid) -> Subject<'static> {
        Subject {
            user_id: 7,
            workspace_id: 3,
            name: "Ada",
            session_id,
        }
    }

    #[test]
    fn round_trip_carries_the_session() {
        let keys = TokenKeys::new("s", Duration::from_secs(60));
        let sid = Uuid::new_v4();
        let token = keys.issue(&ada(sid)).unwrap();
        let id = keys.verify(&token).unwrap();
        assert_eq!(
            (
                id.user_id,
                id.workspace_id,
                id.display_name.as_str(),
                id.session_id
            ),
            (7, 3, "Ada", sid)
        );
    }

    #[test]
    fn expired_and_forged_are_distinguished() {
        let keys = TokenKeys::new("s", Duration::from_secs(60));
        let now = chrono::Utc::now().timestamp();
        let expired = keys
            .issue_at(&ada(Uuid::new_v4()), now - 120, now - 60)
            .unwrap();
        assert!(matches!(keys.verify(&expired), Err(AppError::TokenExpired)));
        let forged = TokenKeys::new("other", Duration::from_secs(60))
            .issue(&ada(Uuid::new_v4()))
            .unwrap();
        assert!(matches!(
            keys.verify(&forged),
            Err(AppError::Unauthorized(_))
        ));
        assert!(matches!(
            keys.verify("not.a.jwt"),
            Err(AppError::Unauthorized(_))
        ));
    }

    #[test]
    fn lifetime_issuer_audience_and_algorithm_are_enforced() {
        let keys = TokenKeys::new("s", Duration::from_secs(60));
        let now = chrono::Utc::now().timestamp();
        // Longer than the configured lifetime: refused although unexpired.
        let long = keys
            .issue_at(&ada(Uuid::new_v4()), now, now + 3600)
            .unwrap();
        assert!(matches!(keys.verify(&long), Err(AppError::Unauthorized(_))));
        let sign = |claims: serde_json::Value, alg: Algorithm| {
            encode(&Header::new(alg), &claims, &EncodingKey::from_secret(b"s")).unwrap()
        };
        let good = serde_json::json!({
            "sub": "7", "wid": 3, "name": "Ada", "sid": Uuid::new_v4().to_string(),
            "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 30,
        });
        assert!(keys.verify(&sign(good.clone(), Algorithm::HS256)).is_ok());
        for (field, value) in [("iss", "someone-else"), ("aud", "another-api")] {
            let mut c = good.clone();
            c[field] = value.into();
            assert!(keys.verify(&sign(c, Algorithm::HS256)).is_err(), "{field}");
        }
        let mut no_sid = good.clone();
        no_sid.as_object_mut().unwrap().remove("sid");
        assert!(keys.verify(&sign(no_sid, Algorithm::HS256)).is_err());
        // Same secret, other HMAC algorithm: refused (HS256 is pinned).
        assert!(keys.verify(&sign(good, Algorithm::HS512)).is_err());
    }

    #[test]
    fn successors_are_deterministic_per_secret() {
        let a = TokenKeys::new("one", Duration::from_secs(60));
        let b = TokenKeys::new("two", Duration::from_secs(60));
        let t = new_refresh_token();
        assert_eq!(a.successor_refresh_token(&t), a.successor_refresh_token(&t));
        assert_ne!(a.successor_refresh_token(&t), b.successor_refresh_token(&t));
        assert_ne!(a.successor_refresh_token(&t), t);
    }

    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let (a, b) = (new_refresh_token(), new_refresh_token());
        assert_ne!(a, b);
        assert_eq!(hash_refresh_token(&a).len(), 32);
        assert_ne!(hash_refresh_token(&a), a.as_bytes());
    }
}
