//! One connection's outbound side: the bounded queue every producer feeds
//! without waiting, the backpressure policy, and the writer task that
//! drains the queue onto the socket, several frames per flush.
//! Committed chat events travel as shared [`TimedFrame`]s with the worker's
//! commit time: the writer observes `delivery_latency_seconds` on flush.
//!
//! The connection handle and its queue are in [`crate::conn`].

use std::{sync::Arc, time::Duration};

use crate::metrics::DeliveryObserver;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::{stream::SplitSink, SinkExt};

pub use crate::conn::{Conn, Receiver};

/// Most queued frames written per flush.
const WRITE_BATCH: usize = 64;

/// What a connection's writer task is asked to send.
///
/// Two variants: a third would grow every queue slot from 32 to 40 bytes,
/// so a server ping is the empty `Frame` ([`Outbound::ping`]); every real
/// frame is a JSON object.
#[derive(Debug)]
pub enum Outbound {
    Frame(Utf8Bytes),
    /// A committed chat event (see the module docs).
    Event(Arc<TimedFrame>),
}

impl Outbound {
    /// A server ping.
    pub fn ping() -> Self {
        Self::Frame(Utf8Bytes::from_static(""))
    }

    /// Bytes of the frame (0 for a ping).
    pub fn len(&self) -> usize {
        match self {
            Self::Frame(text) => text.len(),
            Self::Event(event) => event.frame.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A committed chat event and when the worker committed it (ms since the
/// Unix epoch, the worker's clock), shared by every connection it goes to.
#[derive(Debug)]
pub struct TimedFrame {
    pub frame: Utf8Bytes,
    pub committed_ms: u64,
}

/// A frame's place in its connection's queue (seed 002 §7.4: messages >
/// badges > receipts > typing > presence): the lane it waits in, and
/// whether backpressure may drop it.
///
/// Frames whose relative order matters share a lane: chat events with
/// their `eventSeq`, answers and sync pages travel in `Message`; every
/// badge (absolute counts: a later one must not be overtaken by an
/// earlier one) and every other event of the user's stream (ordered by
/// `userEventId`) travel in `User`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Chat events, replies, sync, session frames: never dropped; a
    /// connection that cannot take one is closed (the client resyncs).
    Message = 0,
    /// Badges and the user's event stream (toasts, settings, membership):
    /// never dropped.
    User = 1,
    /// `read.receipt`: never dropped.
    Receipt = 2,
    /// Typing indicators: dropped first, from a half-full queue on.
    Typing = 3,
    /// `presence.changed`: dropped from a three-quarters-full queue on.
    Presence = 4,
}

impl Priority {
    /// The lane of a chat-stream frame of type `kind`.
    pub fn of_chat_frame(kind: &str) -> Self {
        if kind.starts_with("typing.") {
            Self::Typing
        } else if kind == "read.receipt" {
            Self::Receipt
        } else {
            Self::Message
        }
    }

    /// The queue lane.
    pub fn lane(self) -> usize {
        self as usize
    }

    /// The share of the queue (frames or bytes) from which a frame of this
    /// priority is refused, as (numerator, denominator); `None`: never
    /// refused before the queue is full.
    pub fn refused_from(self) -> Option<(usize, usize)> {
        match self {
            Self::Typing => Some((1, 2)),
            Self::Presence => Some((3, 4)),
            _ => None,
        }
    }

    /// Whether backpressure may drop the frame.
    pub fn droppable(self) -> bool {
        self.refused_from().is_some()
    }
}

/// Lanes whose queued frames are evicted, in this order, to make room for
/// a frame that must not be dropped.
pub const EVICTABLE: [usize; 2] = [Priority::Typing as usize, Priority::Presence as usize];

/// Close codes the gateway uses (documented in docs/protocol.md).
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const TOO_BIG: u16 = 1009;
    pub const HEARTBEAT_TIMEOUT: u16 = 4000;
    pub const REPLACED: u16 = 4001;
    pub const IDLE: u16 = 4002;
    pub const SLOW_CONSUMER: u16 = 4003;
    /// Token expired, or the session was revoked (logout, password change,
    /// deactivation, refresh-token reuse).
    pub const TOKEN_EXPIRED: u16 = 4401;
}

/// Drains `rx` onto the socket until the connection closes; `observer`
/// takes the delivery latency of every committed event written.
pub async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: Receiver,
    conn: Conn,
    observer: DeliveryObserver,
) {
    loop {
        let mut batch = Vec::new();
        let taken = tokio::select! {
            biased;
            _ = conn.killed() => break,
            n = rx.recv(&mut batch, WRITE_BATCH) => n,
        };
        // Boxed: the write's state only exists while writing, not in
        // every idle connection's writer.
        if taken == 0 {
            break;
        }
        if Box::pin(write_batch(&mut sink, batch, &conn, &observer))
            .await
            .is_err()
        {
            conn.close(close::NORMAL, "");
            return;
        }
    }
    // Boxed: only a closing connection needs the closing's state.
    Box::pin(finish(sink, rx, conn, observer)).await;
}

/// Sends what is already queued (bounded in time), then Close.
async fn finish(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: Receiver,
    conn: Conn,
    observer: DeliveryObserver,
) {
    let (code, reason) = conn.close_reason();
    if code != close::SLOW_CONSUMER {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let mut batch = Vec::new();
            while let Some(m) = rx.try_recv() {
                batch.push(m);
            }
            write_batch(&mut sink, batch, &conn, &observer).await
        })
        .await;
    }
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

/// Writes and flushes `batch`; delivery latency of its events is observed
/// once the flush put them on the socket.
async fn write_batch(
    sink: &mut SplitSink<WebSocket, Message>,
    batch: Vec<Outbound>,
    conn: &Conn,
    observer: &DeliveryObserver,
) -> Result<(), axum::Error> {
    let mut committed = Vec::new();
    for m in batch {
        let msg = match m {
            Outbound::Frame(text) if text.is_empty() => Message::Ping(Default::default()),
            Outbound::Frame(text) => {
                conn.written(text.len());
                Message::Text(text)
            }
            Outbound::Event(event) => {
                conn.written(event.frame.len());
                committed.push(event.committed_ms);
                Message::Text(event.frame.clone())
            }
        };
        sink.feed(msg).await?;
    }
    sink.flush().await?;
    for at in committed {
        observer.observe(at);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_slot_stays_small() {
        assert_eq!(std::mem::size_of::<Outbound>(), 32);
    }
}
