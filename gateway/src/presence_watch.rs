//! Who on this gateway watches whose presence: per connection, the users
//! it subscribed to (each until an expiry, renewed by subscribing again)
//! and the changes waiting for its next batch.
//!
//! Batching (seed 002 §4.2): a change is not sent when it arrives but
//! parked per connection; every [`BATCH_WINDOW`] each connection with
//! parked changes gets one `presence.changed` frame listing the latest
//! state of each user that changed. A user flapping ten times within a
//! window costs each watcher one entry in one frame.
//!
//! Pure bookkeeping, no I/O: tested without Redis.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Mutex,
    time::{Duration, Instant},
};

use fechatter_shared::presence::Status;

use crate::hub::Conn;

/// How often parked changes are sent.
pub const BATCH_WINDOW: Duration = Duration::from_secs(2);
/// Most users one connection may watch.
pub const MAX_WATCHED: usize = 500;

/// One user's state as sent to watchers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub status: Status,
    pub last_seen_ms: i64,
}

/// One connection's batch: the latest state of each user that changed.
pub type Batch = (Conn, Vec<(i64, Seen)>);

struct Watcher {
    conn: Conn,
    /// Watched user -> when the subscription lapses.
    subs: HashMap<i64, Instant>,
    /// Changes since the last batch, latest per user.
    parked: BTreeMap<i64, Seen>,
}

#[derive(Default)]
struct Inner {
    watchers: HashMap<u64, Watcher>,
    /// Watched user -> connections watching them.
    by_user: HashMap<i64, HashSet<u64>>,
}

#[derive(Default)]
pub struct PresenceWatch {
    inner: Mutex<Inner>,
}

/// A subscription would exceed [`MAX_WATCHED`].
#[derive(Debug, PartialEq, Eq)]
pub struct TooMany {
    pub watching: usize,
}

impl PresenceWatch {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("presence watch lock")
    }

    /// Subscribes `conn` to `users` until `until` (renewing those it has).
    /// All or nothing: refused when the total would exceed the maximum.
    pub fn subscribe(&self, conn: &Conn, users: &[i64], until: Instant) -> Result<(), TooMany> {
        let mut s = self.lock();
        let watcher = s.watchers.entry(conn.id).or_insert_with(|| Watcher {
            conn: conn.clone(),
            subs: HashMap::new(),
            parked: BTreeMap::new(),
        });
        let new = users
            .iter()
            .filter(|u| !watcher.subs.contains_key(u))
            .count();
        if watcher.subs.len() + new > MAX_WATCHED {
            let watching = watcher.subs.len();
            if watching == 0 {
                s.watchers.remove(&conn.id);
            }
            return Err(TooMany { watching });
        }
        for &u in users {
            watcher.subs.insert(u, until);
        }
        for &u in users {
            s.by_user.entry(u).or_default().insert(conn.id);
        }
        Ok(())
    }

    /// Ends `conn`'s subscriptions to `users`.
    pub fn unsubscribe(&self, conn: u64, users: &[i64]) {
        let mut s = self.lock();
        let Some(w) = s.watchers.get_mut(&conn) else {
            return;
        };
        for u in users {
            w.subs.remove(u);
            w.parked.remove(u);
        }
        for u in users {
            forget(&mut s.by_user, *u, conn);
        }
    }

    /// A connection closed.
    pub fn remove_conn(&self, conn: u64) {
        let mut s = self.lock();
        if let Some(w) = s.watchers.remove(&conn) {
            for u in w.subs.keys() {
                forget(&mut s.by_user, *u, conn);
            }
        }
    }

    /// Users watched by any local connection (their channels are heard).
    pub fn watched_users(&self) -> Vec<i64> {
        self.lock().by_user.keys().copied().collect()
    }

    /// How many users `conn` watches.
    pub fn watching(&self, conn: u64) -> usize {
        self.lock().watchers.get(&conn).map_or(0, |w| w.subs.len())
    }

    /// Parks a change for every connection watching `user`.
    pub fn on_change(&self, user: i64, seen: Seen) {
        let mut s = self.lock();
        let Some(conns) = s.by_user.get(&user).cloned() else {
            return;
        };
        for c in conns {
            if let Some(w) = s.watchers.get_mut(&c) {
                w.parked.insert(user, seen);
            }
        }
    }

    /// Takes every connection's parked changes (one batch each) and drops
    /// subscriptions that lapsed before `now`. Returns the batches and
    /// whether the set of watched users shrank.
    pub fn flush(&self, now: Instant) -> (Vec<Batch>, bool) {
        let mut s = self.lock();
        let mut lapsed: Vec<(u64, i64)> = Vec::new();
        let mut batches = Vec::new();
        for (id, w) in s.watchers.iter_mut() {
            w.subs.retain(|u, until| {
                let keep = *until > now;
                if !keep {
                    lapsed.push((*id, *u));
                }
                keep
            });
            for (_, u) in lapsed.iter().filter(|(c, _)| c == id) {
                w.parked.remove(u);
            }
            if !w.parked.is_empty() {
                let changes = std::mem::take(&mut w.parked).into_iter().collect();
                batches.push((w.conn.clone(), changes));
            }
        }
        let before = s.by_user.len();
        for (conn, user) in lapsed {
            forget(&mut s.by_user, user, conn);
        }
        s.watchers.retain(|_, w| !w.subs.is_empty());
        let shrank = s.by_user.len() < before;
        (batches, shrank)
    }
}

fn forget(by_user: &mut HashMap<i64, HashSet<u64>>, user: i64, conn: u64) {
    if let Some(set) = by_user.get_mut(&user) {
        set.remove(&conn);
        if set.is_empty() {
            by_user.remove(&user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(id: u64) -> Conn {
        Conn::new(id, id as i64, 8).0
    }

    fn seen(status: Status, at: i64) -> Seen {
        Seen {
            status,
            last_seen_ms: at,
        }
    }

    #[test]
    fn changes_are_batched_latest_wins_and_only_to_watchers() {
        let w = PresenceWatch::default();
        let now = Instant::now();
        let later = now + Duration::from_secs(600);
        w.subscribe(&conn(1), &[10, 11], later).unwrap();
        w.subscribe(&conn(2), &[11], later).unwrap();
        w.on_change(10, seen(Status::Online, 1));
        w.on_change(10, seen(Status::Away, 2));
        w.on_change(10, seen(Status::Dnd, 3));
        w.on_change(11, seen(Status::Online, 4));
        w.on_change(12, seen(Status::Online, 5));
        let (mut batches, shrank) = w.flush(now);
        assert!(!shrank);
        batches.sort_by_key(|(c, _)| c.id);
        assert_eq!(batches.len(), 2);
        assert_eq!(
            batches[0].1,
            vec![(10, seen(Status::Dnd, 3)), (11, seen(Status::Online, 4))]
        );
        assert_eq!(batches[1].1, vec![(11, seen(Status::Online, 4))]);
        assert!(w.flush(now).0.is_empty(), "nothing parked twice");
    }

    #[test]
    fn subscriptions_are_capped_renewed_and_lapse() {
        let w = PresenceWatch::default();
        let now = Instant::now();
        let all: Vec<i64> = (0..MAX_WATCHED as i64).collect();
        w.subscribe(&conn(1), &all, now + Duration::from_secs(10))
            .unwrap();
        assert_eq!(
            w.subscribe(&conn(1), &[9999], now + Duration::from_secs(10)),
            Err(TooMany {
                watching: MAX_WATCHED
            })
        );
        // Renewing what it has is not "more".
        w.subscribe(&conn(1), &[0], now + Duration::from_secs(100))
            .unwrap();
        let (_, shrank) = w.flush(now + Duration::from_secs(20));
        assert!(shrank);
        assert_eq!(w.watching(1), 1, "only the renewed subscription is left");
        assert_eq!(w.watched_users(), vec![0]);
        w.unsubscribe(1, &[0]);
        assert!(w.watched_users().is_empty());
        w.subscribe(&conn(2), &[5], now + Duration::from_secs(100))
            .unwrap();
        w.remove_conn(2);
        assert!(w.watched_users().is_empty());
    }
}
