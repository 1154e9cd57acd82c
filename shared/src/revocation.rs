//! Session revocation that reaches every gateway within a second.
//!
//! Access tokens are verified without a database round trip, so ending a
//! session needs a second, shared signal. Two Redis keys per user, under
//! the user's hash tag (one MGET, one cluster slot):
//!
//! * `revoked:{u<id>}:s:<sid>`: one session (refresh-token family) ended:
//!   logout, refresh-token reuse, another session's password change;
//! * `revoked:{u<id>}`: every token of the user issued at or before the
//!   stored Unix time is void: deactivation.
//!
//! Both expire after the access-token lifetime (plus leeway): by then every
//! token they void has expired anyway. REST checks them on every request;
//! open WebSockets are told through the user's wake channel (a
//! `session.revoked` frame, see [`crate::protocol::SessionRevoked`]), and
//! gateways re-check all local sessions after a Redis reconnect, so a notice
//! lost in a Pub/Sub gap still takes effect.
//!
//! Redis unavailable: the check fails open (logged, counted by the caller)
//! so a Redis blip does not log everyone out; the exposure is bounded by
//! the access-token lifetime, and refresh (PostgreSQL) still refuses.

use std::time::Duration;

use fred::prelude::*;
use uuid::Uuid;

use crate::{protocol::SessionRevoked, redis::Keys, token::Identity, AppError};

/// Extra lifetime of revocation keys beyond the token lifetime (clock skew).
const SKEW: Duration = Duration::from_secs(30);
/// How far past "now" a user-wide cut-off reaches (the JWT leeway).
const CUTOFF_AHEAD_SECS: i64 = 5;

fn ttl_secs(token_ttl: Duration) -> i64 {
    (token_ttl + SKEW).as_secs() as i64
}

/// Ends one session: stores the mark, then tells the user's gateways.
pub async fn revoke_session(
    redis: &Client,
    keys: &Keys,
    user_id: i64,
    session: Uuid,
    token_ttl: Duration,
) -> Result<(), Error> {
    let _: () = redis
        .set(
            keys.revoked_session(user_id, &session),
            "1",
            Some(Expiration::EX(ttl_secs(token_ttl))),
            None,
            false,
        )
        .await?;
    announce(redis, keys, user_id, Some(session)).await
}

/// Ends every session of the user (deactivation).
pub async fn revoke_user(
    redis: &Client,
    keys: &Keys,
    user_id: i64,
    token_ttl: Duration,
) -> Result<(), Error> {
    // A few seconds ahead: a token minted by a request that raced the
    // deactivation (or by a gateway whose clock runs ahead within the JWT
    // leeway) is still covered.
    let cutoff = chrono::Utc::now().timestamp() + CUTOFF_AHEAD_SECS;
    let _: () = redis
        .set(
            keys.revoked_user(user_id),
            cutoff,
            Some(Expiration::EX(ttl_secs(token_ttl))),
            None,
            false,
        )
        .await?;
    announce(redis, keys, user_id, None).await
}

async fn announce(
    redis: &Client,
    keys: &Keys,
    user_id: i64,
    session: Option<Uuid>,
) -> Result<(), Error> {
    let frame = SessionRevoked {
        session_id: session,
    }
    .frame();
    crate::user_stream::publish(redis, keys, user_id, &frame).await
}

/// The two revocation marks of a session: whether the session itself was
/// revoked, and the user-wide cut-off time if any (one MGET, one slot).
async fn marks(
    redis: &Client,
    keys: &Keys,
    user_id: i64,
    session: &Uuid,
) -> Result<(bool, Option<i64>), Error> {
    let (session, user): (Option<String>, Option<i64>) = redis
        .mget(vec![
            keys.revoked_session(user_id, session),
            keys.revoked_user(user_id),
        ])
        .await?;
    Ok((session.is_some(), user))
}

/// Whether the identity's session was revoked (Redis errors propagate; the
/// caller decides how to fail).
pub async fn is_revoked(redis: &Client, keys: &Keys, who: &Identity) -> Result<bool, Error> {
    let (session, before) = marks(redis, keys, who.user_id, &who.session_id).await?;
    Ok(session || before.is_some_and(|before| who.issued_at <= before))
}

/// Whether a live connection's session (or its whole user) was revoked;
/// used after a Redis reconnect, when notices may have been missed.
pub async fn connection_revoked(
    redis: &Client,
    keys: &Keys,
    user_id: i64,
    session: &Uuid,
) -> Result<bool, Error> {
    let (session, before) = marks(redis, keys, user_id, session).await?;
    Ok(session || before.is_some())
}

/// The check every authenticated request makes: `Unauthorized` when
/// revoked; fails open (with a warning) when Redis cannot answer.
pub async fn ensure_live(redis: &Client, keys: &Keys, who: &Identity) -> Result<(), AppError> {
    match is_revoked(redis, keys, who).await {
        Ok(false) => Ok(()),
        Ok(true) => Err(AppError::unauthorized("session revoked; sign in again")),
        Err(e) => {
            tracing::warn!(error = %e, "revocation check skipped: Redis unavailable");
            Ok(())
        }
    }
}
