//! Presence (seed 002 §4): statuses, the operations on a user's presence
//! hash in Redis, announcements, and the liveness of gateways.
//!
//! Design, and why:
//! * The truth is one Redis hash per user (`Keys::presence`): a field per
//!   open connection (active or idle), the manual state, the last announced
//!   status and the last-seen time. Every change goes through one Lua
//!   script (lua/presence_update.lua) that recomputes the aggregate and
//!   publishes it only when it changed, so concurrent devices on different
//!   gateways cannot announce out of order.
//! * Manual states (`away`, `dnd`, `brb`) and the last-seen time are also
//!   kept in PostgreSQL (`users.presence_manual`, `users.last_seen_at`), so
//!   they survive reconnects and Redis restarts.
//! * Crash safety without per-connection timers: connections are held under
//!   their gateway's lease. Each gateway renews its entry in
//!   `Keys::presence_nodes` (a sorted set scored by the last renewal) and
//!   records which users it holds connections of. A gateway that stops
//!   renewing (kill -9) is swept by a worker: its connection fields are
//!   deleted user by user and whoever is left without connections goes
//!   offline. Users who reconnected elsewhere meanwhile keep their status,
//!   so a gateway crash does not flap them.

use std::{collections::HashMap, fmt, str::FromStr};

use fred::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{redis::Keys, scripts};

/// A user's aggregate presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Online,
    Away,
    Dnd,
    Brb,
    Offline,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Away => "away",
            Self::Dnd => "dnd",
            Self::Brb => "brb",
            Self::Offline => "offline",
        }
    }
}

impl FromStr for Status {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s {
            "online" => Self::Online,
            "away" => Self::Away,
            "dnd" => Self::Dnd,
            "brb" => Self::Brb,
            "offline" => Self::Offline,
            _ => return Err(()),
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `presence.update {status}` stores: `online` clears the manual
/// state (presence follows activity again); the others persist.
pub fn manual_state(requested: &str) -> Option<Option<&'static str>> {
    match requested {
        "online" => Some(None),
        "away" => Some(Some("away")),
        "dnd" => Some(Some("dnd")),
        "brb" => Some(Some("brb")),
        _ => None,
    }
}

/// One change to a user's presence hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op<'a> {
    /// A connection opened or changed activity; `manual` (from PostgreSQL,
    /// at connect) replaces the stored manual state when given.
    Conn {
        field: &'a str,
        active: bool,
        manual: Option<&'a str>,
    },
    /// A connection closed.
    Drop { field: &'a str },
    /// Every connection of a dead gateway (field prefix) is gone.
    Node { prefix: &'a str },
    /// The manual state changed (`""` clears it).
    Manual(&'a str),
}

/// The aggregate after an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub status: Status,
    pub last_seen_ms: i64,
    /// The status differs from the last announced one (and was announced).
    pub changed: bool,
}

/// How long the presence hash of a user without connections is kept
/// (PostgreSQL keeps the manual state and last-seen time for good).
pub const IDLE_HASH_TTL_MS: u64 = 7 * 86_400_000;

/// The hash field of one connection: `c:<node>|<conn>`.
pub fn conn_field(node: &str, conn: u64) -> String {
    format!("c:{node}|{conn}")
}

/// The field prefix of every connection of a gateway.
pub fn node_prefix(node: &str) -> String {
    format!("c:{node}|")
}

/// Applies `op` to `user`'s presence (lua/presence_update.lua).
pub async fn update(client: &Client, keys: &Keys, user: i64, op: Op<'_>) -> Result<Outcome, Error> {
    let now = chrono::Utc::now().timestamp_millis();
    let (name, field, value, manual) = match op {
        Op::Conn {
            field,
            active,
            manual,
        } => (
            "conn",
            field,
            if active { "a" } else { "i" },
            manual.unwrap_or("-"),
        ),
        Op::Drop { field } => ("drop", field, "", "-"),
        Op::Node { prefix } => ("node", prefix, "", "-"),
        Op::Manual(state) => ("manual", "", state, "-"),
    };
    let (status, seen, changed): (String, String, i64) = scripts::presence_update(
        client,
        &keys.presence(user),
        [
            name,
            field,
            value,
            &now.to_string(),
            manual,
            &keys.presence_channel(user),
            &user.to_string(),
            &IDLE_HASH_TTL_MS.to_string(),
        ],
    )
    .await?;
    Ok(Outcome {
        status: status.parse().unwrap_or(Status::Offline),
        last_seen_ms: seen.parse().unwrap_or(0),
        changed: changed == 1,
    })
}

/// A change announced on a user's presence channel: `<user> <status> <ms>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announcement {
    pub user_id: i64,
    pub status: Status,
    pub last_seen_ms: i64,
}

impl Announcement {
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split(' ');
        let a = Self {
            user_id: parts.next()?.parse().ok()?,
            status: parts.next()?.parse().ok()?,
            last_seen_ms: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(a)
    }
}

/// Every user's presence hash, in one round trip.
async fn hashes(
    client: &Client,
    keys: &Keys,
    users: &[i64],
) -> Result<Vec<HashMap<String, String>>, Error> {
    Ok(match users {
        [] => Vec::new(),
        // A one-command pipeline answers unwrapped: ask directly.
        [user] => vec![client.hgetall(keys.presence(*user)).await?],
        _ => {
            let pipeline = client.pipeline();
            for &user in users {
                let _: () = pipeline.hgetall(keys.presence(user)).await?;
            }
            pipeline.all().await?
        }
    })
}

/// The announced status and last-seen time of each user (`None` for a
/// user Redis knows nothing about: offline, last seen per PostgreSQL).
pub async fn current(
    client: &Client,
    keys: &Keys,
    users: &[i64],
) -> Result<Vec<Option<(Status, i64)>>, Error> {
    Ok(hashes(client, keys, users)
        .await?
        .into_iter()
        .map(|h| {
            let status = h.get("s")?.parse().unwrap_or(Status::Offline);
            let seen = h.get("t").and_then(|t| t.parse().ok()).unwrap_or(0);
            Some((status, seen))
        })
        .collect())
}

/// How many connections each user has open, and how many of them are
/// active (not idle): what decides between a toast and a push.
pub async fn connections(
    client: &Client,
    keys: &Keys,
    users: &[i64],
) -> Result<Vec<(usize, usize)>, Error> {
    Ok(hashes(client, keys, users)
        .await?
        .into_iter()
        .map(|h| {
            let conns = h.iter().filter(|(k, _)| k.starts_with("c:"));
            conns.fold((0, 0), |(open, active), (_, v)| {
                (open + 1, active + usize::from(v == "a"))
            })
        })
        .collect())
}

/// Renews this gateway's lease on its connections' presence.
pub async fn renew_node(client: &Client, keys: &Keys, node: &str) -> Result<(), Error> {
    let now = chrono::Utc::now().timestamp_millis();
    client
        .zadd(
            keys.presence_nodes(),
            None,
            None,
            false,
            false,
            (now as f64, node),
        )
        .await
}

/// Records that `node` holds a connection of `user` (for the sweep).
pub async fn note_user(client: &Client, keys: &Keys, node: &str, user: i64) -> Result<(), Error> {
    client.sadd(keys.presence_node_users(node), user).await
}

/// A gateway that stopped cleanly: nothing left to sweep.
pub async fn retire_node(client: &Client, keys: &Keys, node: &str) -> Result<(), Error> {
    let _: i64 = client.zrem(keys.presence_nodes(), node).await?;
    client.del(keys.presence_node_users(node)).await
}

/// Gateways whose lease is older than `ttl_ms`.
pub async fn dead_nodes(client: &Client, keys: &Keys, ttl_ms: u64) -> Result<Vec<String>, Error> {
    let cutoff = chrono::Utc::now().timestamp_millis() - ttl_ms as i64;
    client
        .zrangebyscore(keys.presence_nodes(), "-inf", cutoff as f64, false, None)
        .await
}

/// The users a (dead) gateway held connections of.
pub async fn node_users(client: &Client, keys: &Keys, node: &str) -> Result<Vec<i64>, Error> {
    client.smembers(keys.presence_node_users(node)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_and_manual_states_parse() {
        assert_eq!(
            Announcement::parse("42 dnd 1700000000000"),
            Some(Announcement {
                user_id: 42,
                status: Status::Dnd,
                last_seen_ms: 1_700_000_000_000
            })
        );
        assert_eq!(Announcement::parse("42 sleepy 1"), None);
        assert_eq!(Announcement::parse("42 online 1 extra"), None);
        assert_eq!(manual_state("online"), Some(None));
        assert_eq!(manual_state("dnd"), Some(Some("dnd")));
        assert_eq!(manual_state("offline"), None, "offline is not settable");
        assert_eq!(conn_field("gw~ab", 7), "c:gw~ab|7");
        assert!(conn_field("gw~ab", 7).starts_with(&node_prefix("gw~ab")));
    }
}
