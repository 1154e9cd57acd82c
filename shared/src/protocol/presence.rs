//! Presence frames (seed 002 §4.2): what clients send to set and watch
//! presence, and the batched `presence.changed` they receive.

use serde::{Deserialize, Serialize};

use super::new_frame;
use crate::presence::Status;

/// `presence.update {status}`: `online` (follow activity), `away`, `dnd`
/// or `brb` (kept until changed, across reconnects).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PresenceUpdate {
    pub status: String,
}

/// `presence.subscribe {userIds}` / `presence.unsubscribe {userIds}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserIds {
    pub user_ids: Vec<i64>,
}

/// Most user ids one `presence.subscribe` may name.
pub const MAX_PRESENCE_IDS: usize = 500;

/// One user's presence; `lastSeen` is RFC 3339 (null when never seen).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceEntry {
    pub user_id: i64,
    pub status: Status,
    pub last_seen: Option<String>,
}

/// `presence.changed {changes}`: the latest state of each watched user
/// that changed in the last batch window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceChanged {
    pub changes: Vec<PresenceEntry>,
}

impl PresenceChanged {
    pub const TYPE: &'static str = "presence.changed";
    pub fn frame(&self) -> String {
        new_frame(Self::TYPE, self)
    }
}

/// The ack of `presence.subscribe`: the current state of each watched
/// user, and the ids that are not users of the caller's workspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceSubscribed {
    pub presence: Vec<PresenceEntry>,
    pub not_found: Vec<i64>,
    /// How many users the connection watches now.
    pub watching: usize,
}

/// The ack of `presence.update`: the user's aggregate presence now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PresenceSet {
    pub presence: Status,
}

/// The ack of `presence.unsubscribe`: how many users the connection still
/// watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PresenceUnsubscribed {
    pub watching: usize,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn presence_acks_have_their_documented_fields() {
        let subscribed = PresenceSubscribed {
            presence: vec![PresenceEntry {
                user_id: 4,
                status: Status::Away,
                last_seen: None,
            }],
            not_found: vec![99],
            watching: 1,
        };
        assert_eq!(
            serde_json::to_value(subscribed).unwrap(),
            json!({
                "presence": [{ "userId": 4, "status": "away", "lastSeen": null }],
                "notFound": [99],
                "watching": 1,
            })
        );
        assert_eq!(
            serde_json::to_value(PresenceSet {
                presence: Status::Dnd
            })
            .unwrap(),
            json!({ "presence": "dnd" })
        );
        assert_eq!(
            serde_json::to_value(PresenceUnsubscribed { watching: 0 }).unwrap(),
            json!({ "watching": 0 })
        );
    }
}
