//! Ending open WebSockets of revoked sessions (see
//! `fechatter_shared::revocation` for the keys and the notice).
//!
//! A `session.revoked` notice arrives on the user's wake channel, which
//! every gateway with a connection of that user listens to; matching
//! connections get the frame and close with 4401. After a Redis reconnect
//! (notices may have been lost) every local connection is checked against
//! the revocation keys.

use axum::extract::ws::Utf8Bytes;
use fechatter_shared::{protocol::SessionRevoked, revocation};

use crate::{
    hub::{close, Conn, Priority},
    state::AppState,
};

/// Handles a `session.revoked` frame for `user`.
pub fn on_notice(state: &AppState, user: i64, frame: &str) {
    let Some(notice) = SessionRevoked::parse(frame) else {
        tracing::warn!(user, "unreadable session.revoked notice");
        return;
    };
    for c in state.hub.conns_of_user(user) {
        if notice.session_id.is_none_or(|s| s == c.session) {
            end(state, &c, frame.to_string());
        }
    }
}

/// Sends `session.revoked` and closes the connection with 4401.
fn end(state: &AppState, c: &Conn, frame: String) {
    c.offer(
        Utf8Bytes::from(frame),
        Priority::Message,
        &state.metrics,
        SessionRevoked::TYPE,
    );
    c.close(close::TOKEN_EXPIRED, "session revoked");
}

/// Closes every local connection whose session was revoked meanwhile.
pub async fn recheck_all(state: &AppState) {
    for c in state.hub.all_conns() {
        match revocation::connection_revoked(&state.redis, &state.keys, c.user_id, &c.session).await
        {
            Ok(true) => {
                let notice = SessionRevoked {
                    session_id: Some(c.session),
                };
                end(state, &c, notice.frame());
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "revocation re-check failed");
                return;
            }
        }
    }
}
