//! The gateway's local view: which connections it holds, which users they
//! belong to, which chats those users are in, and how far each chat topic
//! has been delivered.
//!
//! This is the only mutable state of a gateway, and all of it is
//! reconstructible: connections come back by reconnecting, memberships are
//! re-read from PostgreSQL, topic positions from Redis. One mutex guards it;
//! critical sections only copy out channel senders, never await.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
};

use fechatter_shared::wake::StreamId;

pub use crate::{
    outbound::{close, Conn, Outbound, Priority},
    read_state::{BadgeUpdate, Membership, ReadState},
};

#[derive(Default)]
struct UserEntry {
    conns: Vec<Conn>,
    chats: HashSet<i64>,
    /// Read state per chat, for computing badges locally.
    read: HashMap<i64, ReadState>,
}

#[derive(Default)]
struct ChatEntry {
    /// Local users who are members.
    members: HashSet<i64>,
    /// Id of the last topic entry delivered (or known to be older than
    /// any local connection): `<last_seq>-0` as read from PostgreSQL when
    /// the chat became local at a connect, so a catch-up can fill a wake
    /// missed before the first delivery; None when the chat became local
    /// by a membership change, until the first wake.
    last: Option<StreamId>,
}

#[derive(Default)]
struct State {
    users: HashMap<i64, UserEntry>,
    chats: HashMap<i64, ChatEntry>,
    conns: HashMap<u64, Conn>,
}

impl State {
    fn members(&self, chat: i64) -> Vec<i64> {
        self.chats
            .get(&chat)
            .map(|c| c.members.iter().copied().collect())
            .unwrap_or_default()
    }

    fn apply_message(&mut self, chat: i64, seq: i64, sender: i64, mentioned: &[i64]) {
        for user in self.members(chat) {
            let Some(entry) = self.users.get_mut(&user) else {
                continue;
            };
            let state = entry.read.entry(chat).or_default();
            if user == sender {
                state.watermark = state.watermark.max(seq);
            } else if mentioned.contains(&user) {
                state.mentions += 1;
            }
        }
    }

    fn badges(&self, chat: i64, seq: i64, skip: i64) -> Vec<BadgeUpdate> {
        let members = self.chats.get(&chat).map(|c| &c.members);
        members
            .into_iter()
            .flatten()
            .filter(|&&u| u != skip)
            .filter_map(|u| self.users.get(u).map(|e| (*u, e)))
            .map(|(user, entry)| {
                let state = entry.read.get(&chat).copied().unwrap_or_default();
                BadgeUpdate {
                    user,
                    unread: (seq - state.watermark).max(0),
                    mentions: state.mentions,
                    conns: entry.conns.clone(),
                }
            })
            .collect()
    }
}

/// Local registry of connections, memberships and topic positions.
#[derive(Default)]
pub struct Hub {
    state: Mutex<State>,
    next_id: AtomicU64,
}

impl Hub {
    pub fn next_conn_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("hub lock poisoned")
    }

    /// Adds a connection; `chats` are the user's memberships, used when this
    /// is the user's first local connection.
    pub fn register(&self, conn: Conn, chats: &[Membership]) {
        let mut s = self.lock();
        let user = conn.user_id;
        s.conns.insert(conn.id, conn.clone());
        let first = !s.users.contains_key(&user);
        s.users.entry(user).or_default().conns.push(conn);
        if first {
            for m in chats {
                let entry = s.users.get_mut(&user).expect("just inserted");
                entry.chats.insert(m.chat);
                entry.read.insert(m.chat, m.read);
                let chat = s.chats.entry(m.chat).or_default();
                chat.members.insert(user);
                chat.last
                    .get_or_insert(StreamId(m.last_seq.max(0) as u64, 0));
            }
        }
    }

    /// Removes a connection; drops the user (and chats left without local
    /// members) when it was the user's last.
    pub fn unregister(&self, conn_id: u64) {
        let mut s = self.lock();
        let Some(conn) = s.conns.remove(&conn_id) else {
            return;
        };
        let user = conn.user_id;
        let Some(entry) = s.users.get_mut(&user) else {
            return;
        };
        entry.conns.retain(|c| c.id != conn_id);
        if entry.conns.is_empty() {
            let entry = s.users.remove(&user).expect("present");
            for chat in entry.chats {
                remove_member(&mut s, chat, user);
            }
        }
    }

    /// Records that a local user joined a chat. False when the user has no
    /// local connection (nothing to do).
    pub fn add_membership(&self, user: i64, chat: i64) -> bool {
        let mut s = self.lock();
        let Some(entry) = s.users.get_mut(&user) else {
            return false;
        };
        entry.chats.insert(chat);
        entry.read.entry(chat).or_default();
        s.chats.entry(chat).or_default().members.insert(user);
        true
    }

    pub fn remove_membership(&self, user: i64, chat: i64) {
        let mut s = self.lock();
        if let Some(entry) = s.users.get_mut(&user) {
            entry.chats.remove(&chat);
            entry.read.remove(&chat);
        }
        remove_member(&mut s, chat, user);
    }

    /// Replaces a user's memberships and watermarks (after re-reading them
    /// from PostgreSQL).
    pub fn set_memberships(&self, user: i64, chats: &HashMap<i64, i64>) {
        let current: HashSet<i64> = match self.lock().users.get(&user) {
            Some(e) => e.chats.clone(),
            None => return,
        };
        let wanted: HashSet<i64> = chats.keys().copied().collect();
        for &gone in current.difference(&wanted) {
            self.remove_membership(user, gone);
        }
        for &new in wanted.difference(&current) {
            self.add_membership(user, new);
        }
        for (&chat, &watermark) in chats {
            self.set_watermark(user, chat, watermark);
        }
    }

    /// Moves a local user's watermark forward (read receipts, own sends).
    pub fn set_watermark(&self, user: i64, chat: i64, seq: i64) {
        if let Some(state) = self
            .lock()
            .users
            .get_mut(&user)
            .and_then(|e| e.read.get_mut(&chat))
        {
            state.watermark = state.watermark.max(seq);
        }
    }

    /// Replaces a local user's unread mention count (absolute, from a worker).
    pub fn set_mentions(&self, user: i64, chat: i64, mentions: i64) {
        if let Some(state) = self
            .lock()
            .users
            .get_mut(&user)
            .and_then(|e| e.read.get_mut(&chat))
        {
            state.mentions = mentions;
        }
    }

    /// Applies a new message to the read state of the chat's local members
    /// and returns the badge each recipient should see. The sender has read
    /// their own message.
    pub fn on_message(
        &self,
        chat: i64,
        seq: i64,
        sender: i64,
        mentioned: &[i64],
    ) -> Vec<BadgeUpdate> {
        let mut s = self.lock();
        s.apply_message(chat, seq, sender, mentioned);
        s.badges(chat, seq, sender)
    }

    /// [`Self::on_message`] without the badges: a chat in summary mode
    /// sends them once a second ([`Self::badges`]).
    pub fn apply_message(&self, chat: i64, seq: i64, sender: i64, mentioned: &[i64]) {
        self.lock().apply_message(chat, seq, sender, mentioned);
    }

    /// The badge of every local member of the chat but `skip`, as of
    /// message `seq`.
    pub fn badges(&self, chat: i64, seq: i64, skip: i64) -> Vec<BadgeUpdate> {
        self.lock().badges(chat, seq, skip)
    }

    pub fn is_member(&self, user: i64, chat: i64) -> bool {
        self.lock()
            .users
            .get(&user)
            .is_some_and(|e| e.chats.contains(&chat))
    }

    pub fn chats_of(&self, user: i64) -> Vec<i64> {
        let mut v: Vec<i64> = self
            .lock()
            .users
            .get(&user)
            .map(|e| e.chats.iter().copied().collect())
            .unwrap_or_default();
        v.sort_unstable();
        v
    }

    pub fn local_users(&self) -> Vec<i64> {
        self.lock().users.keys().copied().collect()
    }

    /// Chats with at least one local member: the topics to listen to.
    pub fn local_chats(&self) -> HashSet<i64> {
        self.lock().chats.keys().copied().collect()
    }

    pub fn has_chat(&self, chat: i64) -> bool {
        self.lock().chats.contains_key(&chat)
    }

    pub fn has_user(&self, user: i64) -> bool {
        self.lock().users.contains_key(&user)
    }

    pub fn conn(&self, id: u64) -> Option<Conn> {
        self.lock().conns.get(&id).cloned()
    }

    pub fn all_conns(&self) -> Vec<Conn> {
        self.lock().conns.values().cloned().collect()
    }

    /// Calls `f` on every connection under the lock, cloning nothing.
    pub fn for_each_conn(&self, f: impl FnMut(&Conn)) {
        self.lock().conns.values().for_each(f);
    }

    pub fn conns_of_user(&self, user: i64) -> Vec<Conn> {
        self.lock()
            .users
            .get(&user)
            .map(|e| e.conns.clone())
            .unwrap_or_default()
    }

    /// Connections of the chat's local members, except `exclude`'s.
    pub fn conns_of_chat(&self, chat: i64, exclude: i64) -> Vec<Conn> {
        self.conns_where(chat, |user, _| user != exclude)
    }

    /// Connections of the chat's local members that show it
    /// (`chat.focus`), filtered under the lock.
    pub fn focused_conns_of_chat(&self, chat: i64) -> Vec<Conn> {
        self.conns_where(chat, |_, c| c.focused_on(chat))
    }

    /// Connections of the chat's local members that do not show it (the
    /// ones a `chat.summary` is for), filtered under the lock.
    pub fn unfocused_conns_of_chat(&self, chat: i64) -> Vec<Conn> {
        self.conns_where(chat, |_, c| !c.focused_on(chat))
    }

    /// Connections of the chat's local members that `keep` (user, conn).
    fn conns_where(&self, chat: i64, keep: impl Fn(i64, &Conn) -> bool) -> Vec<Conn> {
        let s = self.lock();
        let Some(entry) = s.chats.get(&chat) else {
            return Vec::new();
        };
        entry
            .members
            .iter()
            .filter_map(|u| s.users.get(u).map(|e| (*u, e)))
            .flat_map(|(u, e)| {
                let keep = &keep;
                e.conns.iter().filter(move |c| keep(u, c)).cloned()
            })
            .collect()
    }

    /// Topic position of a chat: `None` if not tracked, `Some(None)` if
    /// tracked but nothing delivered yet.
    pub fn position(&self, chat: i64) -> Option<Option<StreamId>> {
        self.lock().chats.get(&chat).map(|e| e.last)
    }

    /// Moves a chat's position forward (never back).
    pub fn advance(&self, chat: i64, to: StreamId) {
        if let Some(e) = self.lock().chats.get_mut(&chat) {
            if e.last.is_none_or(|l| l < to) {
                e.last = Some(to);
            }
        }
    }

    pub fn connection_count(&self) -> usize {
        self.lock().conns.len()
    }
}

fn remove_member(s: &mut State, chat: i64, user: i64) {
    if let Some(c) = s.chats.get_mut(&chat) {
        c.members.remove(&user);
        if c.members.is_empty() {
            s.chats.remove(&chat);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    #[test]
    fn badges_follow_messages_and_watermarks() {
        let hub = Hub::default();
        let (a, _ra) = Conn::new(1, 10, 8);
        let (b, _rb) = Conn::new(2, 20, 8);
        let read = |watermark, mentions| ReadState {
            watermark,
            mentions,
        };
        hub.register(
            a,
            &[Membership {
                chat: 7,
                last_seq: 0,
                read: read(3, 0),
            }],
        );
        hub.register(
            b,
            &[Membership {
                chat: 7,
                last_seq: 0,
                read: read(1, 2),
            }],
        );
        let badges = hub.on_message(7, 4, 10, &[20]);
        assert_eq!(badges.len(), 1, "the sender gets no badge");
        assert_eq!(
            (badges[0].user, badges[0].unread, badges[0].mentions),
            (20, 3, 3)
        );
        hub.set_watermark(20, 7, 4);
        hub.set_mentions(20, 7, 0);
        let badges = hub.on_message(7, 5, 10, &[]);
        assert_eq!((badges[0].unread, badges[0].mentions), (1, 0));
        // The sender's own watermark followed its message.
        let badges = hub.on_message(7, 6, 20, &[]);
        assert_eq!((badges[0].user, badges[0].unread), (10, 1));
    }

    #[test]
    fn membership_follows_connections() {
        let hub = Hub::default();
        let (a1, _r1) = Conn::new(1, 10, 8);
        let (a2, _r2) = Conn::new(2, 10, 8);
        let (b1, _r3) = Conn::new(3, 20, 8);
        let m = |chat| Membership {
            chat,
            last_seq: 0,
            read: ReadState::default(),
        };
        hub.register(a1, &[m(100), m(200)]);
        hub.register(a2, &[]);
        hub.register(b1, &[m(200)]);
        assert_eq!(hub.local_chats(), HashSet::from([100, 200]));
        assert_eq!(hub.conns_of_chat(200, 0).len(), 3);
        assert_eq!(hub.conns_of_chat(200, 10).len(), 1);
        hub.conn(2).expect("registered").set_focus(Some(200));
        let ids = |conns: Vec<Conn>| conns.iter().map(|c| c.id).collect::<HashSet<_>>();
        assert_eq!(ids(hub.focused_conns_of_chat(200)), HashSet::from([2]));
        assert_eq!(ids(hub.unfocused_conns_of_chat(200)), HashSet::from([1, 3]));
        hub.unregister(1);
        assert!(hub.is_member(10, 100), "user still has a connection");
        hub.unregister(2);
        assert!(!hub.has_user(10));
        assert_eq!(hub.local_chats(), HashSet::from([200]));
        hub.set_memberships(20, &HashMap::from([(300, 0)]));
        assert_eq!(hub.local_chats(), HashSet::from([300]));
    }

    #[test]
    fn positions_only_move_forward() {
        let hub = Hub::default();
        let (c, _r) = Conn::new(1, 1, 8);
        hub.register(
            c,
            &[Membership {
                chat: 5,
                last_seq: 1,
                read: ReadState::default(),
            }],
        );
        // A chat new to the gateway starts where PostgreSQL said it was.
        assert_eq!(hub.position(5), Some(Some(StreamId(1, 0))));
        hub.advance(5, StreamId(3, 0));
        hub.advance(5, StreamId(2, 0));
        assert_eq!(hub.position(5), Some(Some(StreamId(3, 0))));
        assert_eq!(hub.position(6), None);
    }
}
