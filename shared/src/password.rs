//! Password hashing with Argon2id.
//!
//! Hashing is deliberately slow (tens of milliseconds), so it runs on the
//! blocking pool: an async worker thread stuck in Argon2 would stall every
//! WebSocket connection scheduled on it.

use std::sync::OnceLock;

use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Algorithm, Argon2, Params, Version,
};

use crate::AppError;

static PARAMS: OnceLock<Params> = OnceLock::new();

/// Sets the Argon2id cost for new hashes (memory in KiB, iterations); the
/// first call wins. Defaults are OWASP's (19 MiB, 2 iterations). Load tests
/// lower them so thousands of sign-ups do not dominate the run; stored
/// hashes carry their own parameters, so verification is unaffected.
pub fn configure(memory_kib: u32, iterations: u32) -> Result<(), AppError> {
    let params = Params::new(memory_kib, iterations, 1, None)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("invalid Argon2 parameters: {e}")))?;
    let _ = PARAMS.set(params);
    Ok(())
}

fn hasher() -> Argon2<'static> {
    let params = PARAMS.get().cloned().unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` into a PHC string (algorithm, parameters, salt, hash).
pub async fn hash(password: String) -> Result<String, AppError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        hasher()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AppError::Internal(anyhow::anyhow!("hashing password: {e}")))
    })
    .await
    .map_err(|e| AppError::Internal(e.into()))?
}

/// True when `password` matches the stored PHC string.
pub async fn verify(password: String, stored: String) -> Result<bool, AppError> {
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&stored)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("stored hash unreadable: {e}")))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(|e| AppError::Internal(e.into()))?
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn hash_then_verify() {
        let stored = super::hash("correct horse".into()).await.unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(super::verify("correct horse".into(), stored.clone())
            .await
            .unwrap());
        assert!(!super::verify("wrong".into(), stored).await.unwrap());
    }
}
