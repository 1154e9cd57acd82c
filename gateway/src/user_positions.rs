//! Where each local user stands in their event stream: the last entry
//! delivered to their connections (see [`crate::user_events`]). Pure
//! bookkeeping, kept apart so the gateway state can hold it without
//! depending on delivery.

use std::{collections::HashMap, sync::Mutex};

use fechatter_shared::wake::StreamId;

/// The last user-stream entry delivered, per local user.
#[derive(Default)]
pub struct UserPositions(Mutex<HashMap<i64, StreamId>>);

impl UserPositions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, StreamId>> {
        self.0.lock().expect("user positions lock")
    }

    pub fn get(&self, user: i64) -> Option<StreamId> {
        self.lock().get(&user).copied()
    }

    /// Sets the position unless the user has one; returns the position.
    pub fn start(&self, user: i64, at: StreamId) -> StreamId {
        *self.lock().entry(user).or_insert(at)
    }

    pub fn advance(&self, user: i64, id: StreamId) {
        if let Some(p) = self.lock().get_mut(&user) {
            *p = (*p).max(id);
        }
    }

    /// Forgets a user whose last local connection closed: a later
    /// connection starts from its own `session.ready` position, never
    /// from a stale one (which would replay old badges as new).
    pub fn forget(&self, user: i64) {
        self.lock().remove(&user);
    }

    /// Forgets users without local connections.
    pub fn retain(&self, local: &[i64]) {
        self.lock().retain(|u, _| local.contains(u));
    }
}
