//! Delivery from Redis to local sockets.
//!
//! A gateway listens (Pub/Sub) only on the wake channels of chats that have
//! a local member, of its local users, and of itself. A wake for a chat
//! event carries the frame and the id of the entry before it: if that is
//! the last entry this gateway delivered, the frame goes out directly (one
//! Redis round trip per event for the whole pool); otherwise the gateway
//! missed something and first reads the gap from the topic stream. After a
//! Redis reconnect or a lagging receiver it re-reads memberships from
//! PostgreSQL and catches every chat up from its stream, so a Redis blip
//! delays events but loses none. Each frame is serialized once and shared
//! by every connection it goes to, with the commit time the topic entry
//! carries (for `delivery_latency_seconds`).

use std::{collections::HashMap, time::Duration};

use axum::extract::ws::Utf8Bytes;
use fechatter_shared::{
    ingest::GatewayNotice,
    redis::Channel,
    wake::{Stamp, StreamId, Wake},
};
use fred::prelude::*;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::{
    chat_delivery::{deliver_ephemeral, deliver_event, flush_summaries, Delivery},
    hub::{close, Priority},
    metrics::{POSTGRES, REDIS},
    state::AppState,
};

/// Entries read per XRANGE when catching a chat up.
const CATCH_UP_PAGE: u64 = 500;

/// After a Redis reconnect every channel is subscribed again (in the
/// background: see `Subscriptions::resubscribe_all`); a wake published
/// before its subscription is back is missed, and the catch-up right after
/// the reconnect may run too early to see the event.
/// So the catch-up runs again at these delays after the reconnect (each a
/// cheap XRANGE per local chat that finds nothing when nothing was missed).
const RESYNC_AFTER_RECONNECT: [Duration; 4] = [
    Duration::from_millis(250),
    Duration::from_secs(1),
    Duration::from_secs(3),
    Duration::from_secs(10),
];

/// Summary mode's window and the interval of its `chat.summary` frames.
const SUMMARY_TICK: Duration = Duration::from_secs(1);

/// Runs the delivery loop until `shutdown` fires. Every delivery, live or
/// catch-up, happens on this one task, so a chat's events go out in order.
pub fn spawn_delivery(state: AppState, shutdown: CancellationToken) {
    let mut messages = state.subscriber.message_rx();
    let mut reconnects = state.subscriber.reconnect_rx();
    tokio::spawn(async move {
        let mut resyncs: Vec<tokio::time::Instant> = Vec::new();
        let summarizing = state.config.summary_mode_rate > 0;
        let mut summaries = tokio::time::interval(SUMMARY_TICK);
        summaries.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next = resyncs.first().copied();
            tokio::select! {
                m = messages.recv() => match m {
                    Ok(msg) => {
                        let channel = msg.channel.to_string();
                        if let Some(text) = msg.value.as_str() {
                            on_message(&state, &channel, &text).await;
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "Pub/Sub receiver lagged; resynchronizing");
                        resync(&state).await;
                    }
                    Err(RecvError::Closed) => break,
                },
                r = reconnects.recv() => if r.is_ok() {
                    tracing::info!("Redis Pub/Sub reconnected; resynchronizing");
                    state.subs.resubscribe_all();
                    let now = tokio::time::Instant::now();
                    resyncs = RESYNC_AFTER_RECONNECT.iter().map(|d| now + *d).collect();
                },
                _ = tokio::time::sleep_until(next.unwrap_or_else(tokio::time::Instant::now)),
                    if next.is_some() =>
                {
                    resyncs.remove(0);
                    resync(&state).await;
                }
                _ = summaries.tick(), if summarizing => flush_summaries(&state),
                _ = shutdown.cancelled() => break,
            }
        }
    });
}

async fn on_message(state: &AppState, channel: &str, text: &str) {
    match state.keys.parse_channel(channel) {
        Some(Channel::Chat(chat)) => match Wake::parse(text) {
            Some(Wake::Event {
                prev,
                id,
                frame,
                stamp,
            }) => on_event(state, chat, (prev, id), frame, stamp).await,
            Some(Wake::Ephemeral { exclude, frame }) => {
                if let Some((user, chat, seq)) = crate::read_state::receipt_of(frame) {
                    state.hub.set_watermark(user, chat, seq);
                }
                deliver_ephemeral(state, chat, exclude, frame)
            }
            None => tracing::warn!(channel, "unreadable wake message"),
        },
        Some(Channel::User(user)) => match Wake::parse(text) {
            Some(Wake::Event {
                prev, id, frame, ..
            }) => crate::user_events::on_wake(state, user, prev, id, frame).await,
            _ => tracing::warn!(channel, "unreadable user wake"),
        },
        Some(Channel::Presence(_)) => crate::presence::on_announcement(state, text),
        Some(Channel::Gateway) => match GatewayNotice::decode(text) {
            Some(GatewayNotice::Frame { conn, frame }) => deliver_answer(state, conn, frame),
            Some(GatewayNotice::Frames(frames)) => {
                for (conn, frame) in frames {
                    deliver_answer(state, conn, frame);
                }
            }
            Some(GatewayNotice::Evict { conn }) => {
                if let Some(c) = state.hub.conn(conn) {
                    c.close(
                        close::REPLACED,
                        "connection limit reached: replaced by a newer connection",
                    );
                }
            }
            None => tracing::warn!(channel, "unreadable gateway notice"),
        },
        None => {}
    }
}

/// A worker's answer (ack or error) for connection `conn`.
fn deliver_answer(state: &AppState, conn: u64, frame: String) {
    match state.hub.conn(conn) {
        Some(c) => {
            let kind = frame_kind(&frame).to_string();
            c.offer(
                Utf8Bytes::from(frame),
                Priority::Message,
                &state.metrics,
                &kind,
            );
        }
        // Not a socket: perhaps a REST write waiting (crate::replies).
        None => {
            state.replies.deliver(conn, frame);
        }
    }
}

/// A wake for the topic entry `id` whose predecessor is `prev`.
async fn on_event(
    state: &AppState,
    chat: i64,
    (prev, id): (StreamId, StreamId),
    frame: &str,
    stamp: Option<Stamp>,
) {
    let live = Delivery::live(stamp);
    match state.hub.position(chat) {
        None => {}
        Some(None) => {
            deliver_event(state, chat, id, frame, live);
            state.hub.advance(chat, id);
        }
        Some(Some(last)) if id <= last => {}
        Some(Some(last)) if prev == last && !skips_messages(last, id) => {
            deliver_event(state, chat, id, frame, live);
            state.hub.advance(chat, id);
        }
        Some(Some(last)) if prev == last => {
            // The stream itself has a hole (entries lost or refused):
            // PostgreSQL has every committed event.
            fill_from_database(state, chat, last, id).await;
            deliver_event(state, chat, id, frame, live);
            state.hub.advance(chat, id);
        }
        Some(Some(last)) => {
            tracing::debug!(chat, %last, %prev, "gap in chat topic; reading the stream");
            catch_up(state, chat, last).await;
        }
    }
}

/// Delivers every topic entry after `from`, in order.
async fn catch_up(state: &AppState, chat: i64, mut from: StreamId) {
    let stream = state.keys.chat_topic(chat);
    loop {
        state.metrics.record_sync_read("catch_up", REDIS);
        let entries = match fechatter_shared::topic::read_stamped(
            &state.redis,
            &stream,
            &format!("({from}"),
            CATCH_UP_PAGE,
        )
        .await
        {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(chat, error = %e, "reading chat topic failed");
                return;
            }
        };
        let n = entries.len() as u64;
        for (id, stamp, frame) in entries {
            if state.hub.position(chat).flatten().is_some_and(|l| id <= l) {
                continue;
            }
            if skips_messages(from, id) {
                fill_from_database(state, chat, from, id).await;
            }
            deliver_event(state, chat, id, &frame, Delivery::caught_up(stamp));
            state.hub.advance(chat, id);
            from = id;
        }
        if n < CATCH_UP_PAGE {
            return;
        }
    }
}

/// True when going from entry `last` to entry `next` skips a message seq
/// (messages are `<seq>-0` with gap-free seqs).
pub fn skips_messages(last: StreamId, next: StreamId) -> bool {
    next.1 == 0 && next.0 > last.0 + 1
}

/// Delivers the committed events strictly between `after` and `before`
/// from PostgreSQL's event log.
async fn fill_from_database(state: &AppState, chat: i64, after: StreamId, before: StreamId) {
    tracing::warn!(chat, %after, %before, "chat topic stream has a gap; filling it from PostgreSQL");
    state.metrics.record_sync_read("catch_up", POSTGRES);
    let rows = fechatter_shared::store::event::between(
        &state.pool,
        chat,
        (after.0 as i64, after.1 as i64),
        (before.0 as i64, before.1 as i64),
    )
    .await;
    match rows {
        Ok(rows) => {
            for (seq, sub, frame) in rows {
                let id = StreamId(seq as u64, sub as u64);
                deliver_event(state, chat, id, &frame, Delivery::caught_up(None));
                state.hub.advance(chat, id);
            }
        }
        Err(e) => tracing::warn!(chat, error = %e, "filling a topic gap failed"),
    }
}

/// Re-reads memberships of local users and catches every chat up.
pub async fn resync(state: &AppState) {
    let users = state.hub.local_users();
    match fechatter_shared::store::chat::memberships(&state.pool, &users).await {
        Ok(memberships) => {
            for user in users {
                let chats: HashMap<i64, i64> = memberships
                    .iter()
                    .filter(|(u, _, _, _)| *u == user)
                    .map(|(_, c, w, _)| (*c, *w))
                    .collect();
                state.hub.set_memberships(user, &chats);
            }
            state.subs.refresh().await;
        }
        Err(e) => tracing::warn!(error = %e, "re-reading memberships failed"),
    }
    for chat in state.hub.local_chats() {
        if let Some(Some(last)) = state.hub.position(chat) {
            catch_up(state, chat, last).await;
        }
    }
    let local = state.hub.local_users();
    state.user_events.retain(&local);
    for user in local {
        crate::user_events::catch_up(state, user).await;
    }
    crate::revocation::recheck_all(state).await;
}

pub use fechatter_shared::protocol::frame_kind;

#[cfg(test)]
mod tests {
    #[test]
    fn message_gaps_are_recognised() {
        use super::{skips_messages, StreamId};
        assert!(!skips_messages(StreamId(4, 0), StreamId(5, 0)));
        assert!(!skips_messages(StreamId(4, 2), StreamId(4, 3)));
        assert!(!skips_messages(StreamId(4, 2), StreamId(5, 0)));
        assert!(skips_messages(StreamId(4, 0), StreamId(6, 0)));
        assert!(skips_messages(StreamId(0, 0), StreamId(2, 0)));
    }

    #[test]
    fn frame_kind_reads_the_leading_type() {
        let f = fechatter_shared::protocol::new_frame("typing.indicator", &serde_json::json!({}));
        assert_eq!(super::frame_kind(&f), "typing.indicator");
        assert_eq!(super::frame_kind("{}"), "unknown");
    }
}
