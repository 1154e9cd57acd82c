//! Delivery of per-user events (see `fechatter_shared::user_stream`) to
//! the user's local connections, with the same gap handling as chat
//! topics: each wake carries the id of the entry before it; a gateway that
//! last delivered that id delivers directly, any other reads the gap from
//! the stream first. Every frame goes out with its `userEventId`, the
//! cursor a client gives `sync.request` after being offline.
//!
//! A few event kinds also change this gateway's own state before they are
//! delivered: a badge sets the cached mention count, `membership.changed`
//! starts or stops a chat's delivery, `session.revoked` closes sockets; a
//! toast skips the devices that show its chat (`chat.focus`).

use axum::extract::ws::Utf8Bytes;
use fechatter_shared::{
    protocol::{
        frame_kind, frame_payload as payload, MembershipChanged, NotificationBadge,
        NotificationToast, SessionRevoked,
    },
    user_stream::{self, Replay},
    wake::StreamId,
};

use crate::{
    hub::{Conn, Priority},
    state::AppState,
};

/// Entries read per XRANGE when catching a user up.
const PAGE: u64 = 200;

/// A wake on `user`'s channel for entry `id` after `prev`.
pub async fn on_wake(state: &AppState, user: i64, prev: StreamId, id: StreamId, frame: &str) {
    match state.user_events.get(user) {
        None => {}
        Some(last) if id <= last => {}
        Some(last) if prev == last => {
            deliver(state, user, id, frame).await;
            state.user_events.advance(user, id);
        }
        Some(_) => catch_up(state, user).await,
    }
}

/// Delivers every entry after the user's position, in order.
pub async fn catch_up(state: &AppState, user: i64) {
    while let Some(from) = state.user_events.get(user) {
        let stream = state.keys.user_stream(user);
        let entries =
            match fechatter_shared::topic::read(&state.redis, &stream, &format!("({from}"), PAGE)
                .await
            {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(user, error = %e, "reading the user stream failed");
                    return;
                }
            };
        let n = entries.len() as u64;
        for (id, frame) in entries {
            if state.user_events.get(user).is_some_and(|p| id <= p) {
                continue;
            }
            deliver(state, user, id, &frame).await;
            state.user_events.advance(user, id);
        }
        if n < PAGE {
            return;
        }
    }
}

/// A new connection of `user` whose `session.ready` said `head`: it gets
/// what its user's other local connections got since (it registered after
/// those were delivered), then whatever is newer, like everyone.
pub async fn joined(state: &AppState, conn: &Conn, user: i64, head: StreamId) {
    let position = state.user_events.start(user, head);
    if position > head {
        let stream = state.keys.user_stream(user);
        match fechatter_shared::topic::read(&state.redis, &stream, &format!("({head}"), PAGE).await
        {
            Ok(entries) => {
                for (id, frame) in entries.into_iter().filter(|(id, _)| *id <= position) {
                    offer(state, std::slice::from_ref(conn), id, &frame);
                }
            }
            Err(e) => tracing::warn!(user, error = %e, "reading the user stream failed"),
        }
    }
    catch_up(state, user).await;
}

/// Applies an event to this gateway's state, then sends it to every local
/// connection of the user.
async fn deliver(state: &AppState, user: i64, id: StreamId, frame: &str) {
    match frame_kind(frame) {
        SessionRevoked::TYPE => {
            crate::revocation::on_notice(state, user, frame);
            return;
        }
        NotificationBadge::TYPE => {
            if let Some(b) = payload::<NotificationBadge>(frame) {
                state.hub.set_mentions(user, b.chat_id, b.mention_count);
            }
        }
        MembershipChanged::TYPE => {
            if let Some(m) = payload::<MembershipChanged>(frame) {
                match m.action.as_str() {
                    "added" => {
                        state.hub.add_membership(user, m.chat_id);
                    }
                    "removed" => state.hub.remove_membership(user, m.chat_id),
                    _ => {}
                }
                // The chat's channel is heard before the client learns.
                state.subs.refresh().await;
            }
        }
        NotificationToast::TYPE => {
            // No toast on a device that shows the chat (seed §3.4).
            if let Some(t) = payload::<NotificationToast>(frame) {
                let conns: Vec<Conn> = state
                    .hub
                    .conns_of_user(user)
                    .into_iter()
                    .filter(|c| !c.focused_on(t.chat_id))
                    .collect();
                offer(state, &conns, id, frame);
                return;
            }
        }
        _ => {}
    }
    offer(state, &state.hub.conns_of_user(user), id, frame);
}

fn offer(state: &AppState, conns: &[Conn], id: StreamId, frame: &str) {
    let kind = frame_kind(frame).to_string();
    let bytes = Utf8Bytes::from(user_stream::with_event_id(frame, id));
    for c in conns {
        c.offer(bytes.clone(), Priority::User, &state.metrics, &kind);
    }
}

/// A page of the user's events after `cursor` for `sync.request`, within
/// `budget` bytes: (frames with their `userEventId`, the new cursor,
/// whether more are left), or `None` when the cursor is too old.
pub async fn page(
    state: &AppState,
    user: i64,
    cursor: StreamId,
    budget: usize,
) -> Result<Option<(Vec<String>, StreamId, bool)>, fred::error::Error> {
    let replay = user_stream::read_after(&state.redis, &state.keys, user, cursor, PAGE).await?;
    let Replay::Events(entries) = replay else {
        return Ok(None);
    };
    let full = entries.len() as u64 == PAGE;
    let mut used = 0;
    let mut frames = Vec::new();
    let mut last = cursor;
    for (id, frame) in entries.iter() {
        let f = user_stream::with_event_id(frame, *id);
        if !frames.is_empty() && used + f.len() > budget {
            return Ok(Some((frames, last, true)));
        }
        used += f.len();
        frames.push(f);
        last = *id;
    }
    Ok(Some((frames, last, full)))
}
