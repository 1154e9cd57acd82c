//! A WebSocket connection's life around its read loop: what opening one
//! sets up (its queue with `session.ready` first, the hub registration,
//! the writer task, pool-wide admission, presence, user events) and what
//! closing it undoes.
//!
//! Shaped for memory: an open connection costs what its task holds while
//! it waits, for as long as it is open, times every connection. So the
//! setup that needs the socket and the memberships runs before the task's
//! future exists ([`start`] is not async: its locals are gone when it
//! returns), and admission and closing run boxed, so their state exists
//! only while they run.

use std::{future::Future, time::Duration};

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use fechatter_shared::{
    protocol::{self, MAX_FRAME_BYTES},
    token::Identity,
    wake::StreamId,
};
use fred::prelude::*;
use futures::{
    stream::{SplitSink, SplitStream},
    StreamExt,
};
use tokio::task::JoinHandle;

use crate::{
    admission,
    hub::{close, Conn, Membership, Priority},
    outbound::Receiver,
    session::Session,
    state::AppState,
};

/// Opens the connection of `me` on `socket` and returns its task.
pub fn start(
    state: AppState,
    me: Identity,
    chats: Vec<Membership>,
    head: StreamId,
    socket: WebSocket,
) -> impl Future<Output = ()> + Send + 'static {
    let (conn, rx) = open_conn(&state, &me, &chats, head);
    state.hub.register(conn.clone(), &chats);
    state.metrics.ws_connections.inc();
    let (sink, stream) = socket.split();
    // Boxed: the writer's half lives in the task only until admission.
    let writer = Box::new((sink, rx));
    serve(Session::new(state, me, conn), head, stream, writer)
}

type WriterHalf = Box<(SplitSink<WebSocket, Message>, Receiver)>;

async fn serve(
    mut session: Session,
    head: StreamId,
    stream: SplitStream<WebSocket>,
    writer: WriterHalf,
) {
    let writer = Box::pin(admit(&session, head, writer)).await;
    tracing::debug!(
        conn = session.conn.id,
        user = session.me.user_id,
        "connection open"
    );
    session.read_loop(stream).await;
    Box::pin(finish(session, writer)).await;
}

/// This connection's member in its user's pool-wide connection set.
fn member(state: &AppState, id: u64) -> String {
    format!("{}|{id}", state.node)
}

/// A new connection of `me` with `session.ready` already queued: the
/// ready frame goes in before the connection is registered for fan-out,
/// so it is always the first frame the client reads.
fn open_conn(
    state: &AppState,
    me: &Identity,
    chats: &[Membership],
    head: StreamId,
) -> (Conn, Receiver) {
    let id = state.hub.next_conn_id();
    let (conn, rx) = Conn::open(
        id,
        me.user_id,
        me.session_id,
        state.config.send_queue,
        state.config.send_queue_bytes,
    );
    let mut chat_ids: Vec<i64> = chats.iter().map(|m| m.chat).collect();
    chat_ids.sort_unstable();
    let ready = protocol::SessionReady {
        user_id: me.user_id,
        session_id: me.session_id,
        connection_id: id,
        instance: state.config.instance_id.clone(),
        chats: chat_ids,
        heartbeat_interval_ms: state.config.heartbeat_interval.as_millis() as u64,
        max_frame_bytes: MAX_FRAME_BYTES,
        token_expires_at: protocol::rfc3339(me.expires_at),
        user_event_id: head.to_string(),
        unread_total: chats
            .iter()
            .map(|m| (m.last_seq - m.read.watermark).max(0))
            .sum(),
        mention_total: chats.iter().map(|m| m.read.mentions).sum(),
    }
    .frame();
    conn.offer(
        Utf8Bytes::from(ready),
        Priority::Message,
        &state.metrics,
        protocol::SessionReady::TYPE,
    );
    (conn, rx)
}

/// What a registered connection needs before it takes part; then its
/// writer starts, so `session.ready` reaches the client only once the
/// connection is admitted (subscribed, present, caught up).
async fn admit(session: &Session, head: StreamId, writer: WriterHalf) -> JoinHandle<()> {
    let (state, me, conn) = (&session.state, &session.me, &session.conn);
    // Memberships changed between loading them and registering would
    // have been missed (their notices found no local user): re-read.
    admission::refresh_memberships(state, me.user_id).await;
    state.subs.refresh().await;
    admission::enforce_connection_limit(state, me.user_id, &member(state, conn.id)).await;
    // Likewise a revocation published before this connection was
    // registered: check once more now that notices reach it.
    if let Ok(true) = fechatter_shared::revocation::is_revoked(&state.redis, &state.keys, me).await
    {
        conn.close(close::TOKEN_EXPIRED, "session revoked");
    }
    crate::presence::connected(state, me.user_id, conn.id).await;
    crate::user_events::joined(state, conn, me.user_id, head).await;
    let (sink, rx) = *writer;
    tokio::spawn(crate::outbound::write_loop(
        sink,
        rx,
        conn.clone(),
        crate::metrics::DeliveryObserver {
            latency: state.metrics.delivery_latency.clone(),
            lag: state.fanout_lag.window(),
        },
    ))
}

/// Undoes [`start`] and [`admit`] once the read loop ended.
async fn finish(mut session: Session, writer: JoinHandle<()>) {
    session.stop_all_typing().await;
    session.send_held_reads().await;
    let (state, user, conn) = (&session.state, session.me.user_id, &session.conn);
    let id = conn.id;
    conn.close(close::NORMAL, "");
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    state.hub.unregister(id);
    if state.hub.conns_of_user(user).is_empty() {
        state.user_events.forget(user);
    }
    state.metrics.ws_connections.dec();
    crate::presence::disconnected(state, user, id).await;
    state.subs.refresh().await;
    let removed: Result<i64, Error> = state
        .redis
        .zrem(state.keys.connections(user), member(state, id))
        .await;
    if let Err(e) = removed {
        tracing::debug!(error = %e, "could not unregister connection from the per-user set");
    }
    tracing::debug!(conn = id, reason = ?conn.close_reason(), "connection closed");
}
