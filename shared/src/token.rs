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
    decode, encode, errors::ErrorKind, DecodingKey, EncodingKey, Header, Validation,
};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::AppError;

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// User id, as a decimal string (JWT `sub` is a string by spec).
    pub sub: String,
    /// Workspace id.
    pub wid: i64,
    /// Display name at issue time.
    pub name: String,
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

/// The identity established by a verified access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: i64,
    pub workspace_id: i64,
    pub display_name: String,
    /// Expiry, seconds since the epoch.
    pub expires_at: i64,
}

/// Signs and verifies access tokens with one shared secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl: Duration,
}

impl TokenKeys {
    pub fn new(secret: &str, ttl: Duration) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Issues a token for the user, valid for the configured lifetime.
    pub fn issue(&self, user_id: i64, workspace_id: i64, name: &str) -> Result<String, AppError> {
        let now = chrono::Utc::now().timestamp();
        self.issue_at(
            user_id,
            workspace_id,
            name,
            now,
            now + self.ttl.as_secs() as i64,
        )
    }

    /// Issues a token with explicit times (tests use it to mint expired ones).
    pub fn issue_at(
        &self,
        user_id: i64,
        workspace_id: i64,
        name: &str,
        iat: i64,
        exp: i64,
    ) -> Result<String, AppError> {
        let claims = Claims {
            sub: user_id.to_string(),
            wid: workspace_id,
            name: name.to_string(),
            iat,
            exp,
        };
        encode(&Header::default(), &claims, &self.encoding)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("signing token: {e}")))
    }

    /// Verifies signature and expiry and returns the identity.
    pub fn verify(&self, token: &str) -> Result<Identity, AppError> {
        let mut validation = Validation::default();
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data =
            decode::<Claims>(token, &self.decoding, &validation).map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AppError::TokenExpired,
                _ => AppError::unauthorized("invalid access token"),
            })?;
        Ok(Identity {
            user_id: data.claims.user_id()?,
            workspace_id: data.claims.wid,
            display_name: data.claims.name,
            expires_at: data.claims.exp,
        })
    }
}

/// A new random refresh token (256 bits, URL-safe).
pub fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored for a refresh token: its SHA-256.
pub fn hash_refresh_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let keys = TokenKeys::new("s", Duration::from_secs(60));
        let token = keys.issue(7, 3, "Ada").unwrap();
        let id = keys.verify(&token).unwrap();
        assert_eq!(
            (id.user_id, id.workspace_id, id.display_name.as_str()),
            (7, 3, "Ada")
        );
    }

    #[test]
    fn expired_and_forged_are_distinguished() {
        let keys = TokenKeys::new("s", Duration::from_secs(60));
        let now = chrono::Utc::now().timestamp();
        let expired = keys.issue_at(1, 1, "x", now - 120, now - 60).unwrap();
        assert!(matches!(keys.verify(&expired), Err(AppError::TokenExpired)));
        let forged = TokenKeys::new("other", Duration::from_secs(60))
            .issue(1, 1, "x")
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
    fn refresh_tokens_are_random_and_hashed() {
        let (a, b) = (new_refresh_token(), new_refresh_token());
        assert_ne!(a, b);
        assert_eq!(hash_refresh_token(&a).len(), 32);
        assert_ne!(hash_refresh_token(&a), a.as_bytes());
    }
}
