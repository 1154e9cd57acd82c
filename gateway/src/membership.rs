//! Tells gateways and clients about membership changes made over REST.
//!
//! After the change is committed, each affected user's channel gets a
//! `membership.changed` frame: every gateway holding a connection of that
//! user starts (or stops) listening to the chat's topic and forwards the
//! frame to the user's sessions, so nobody has to reconnect. A lost notice
//! (Redis down at that moment) is repaired when gateways resynchronize
//! memberships after their Redis connection comes back.

use fechatter_shared::protocol;

use crate::state::AppState;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Added,
    Removed,
}

/// Announces that `users` were added to or removed from `chat_id`.
pub async fn announce(state: &AppState, chat_id: i64, users: &[i64], change: Change) {
    let action = match change {
        Change::Added => "added",
        Change::Removed => "removed",
    };
    for &user in users {
        let frame = protocol::MembershipChanged {
            chat_id,
            user_id: user,
            action: action.to_string(),
        }
        .frame();
        let sent =
            fechatter_shared::user_stream::publish(&state.redis, &state.keys, user, &frame).await;
        if let Err(e) = sent {
            tracing::warn!(chat_id, user, error = %e, "membership change not announced");
        }
    }
}
