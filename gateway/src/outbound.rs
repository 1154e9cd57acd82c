//! One connection's outbound side: the bounded queue every producer feeds
//! without waiting, the backpressure policy, and the writer task that
//! drains the queue onto the socket, several frames per flush.
//! Committed chat events travel as shared [`TimedFrame`]s with the worker's
//! commit time: the writer observes `delivery_latency_seconds` on flush.
//!
//! Everything a connection's handles share lives in one allocation
//! ([`Shared`]: queue, byte count, focus, close reason); an idle
//! connection holds no queue memory (see [`crate::queue`]).

use std::{
    sync::{
        atomic::{AtomicI64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::{stream::SplitSink, SinkExt};
use prometheus::Histogram;
use tokio_util::sync::CancellationToken;

use crate::{
    metrics::{GatewayMetrics, BACKPRESSURE, OVERFLOW},
    queue::{Queue, Refused},
};

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
}

/// A committed chat event and when the worker committed it (ms since the
/// Unix epoch, the worker's clock), shared by every connection it goes to.
#[derive(Debug)]
pub struct TimedFrame {
    pub frame: Utf8Bytes,
    pub committed_ms: u64,
}

/// How a frame may be treated under backpressure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Typing indicators: dropped first, already when the queue is half full.
    Droppable,
    /// Everything else: never dropped; a connection that cannot take it is
    /// closed (the client resyncs).
    Essential,
}

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

/// State of one connection that its clones share.
#[derive(Default)]
struct Shared {
    queue: Queue<Outbound>,
    /// Bytes of frames queued and not yet written.
    queued_bytes: AtomicUsize,
    /// The chat the client shows (`chat.focus`), 0 for none.
    focus: AtomicI64,
    /// How the connection was closed; the first reason given wins.
    reason: Mutex<Option<(u16, Box<str>)>>,
}

/// A handle on one connection, cloned into the hub and its session.
#[derive(Clone)]
pub struct Conn {
    pub id: u64,
    pub user_id: i64,
    /// The session (refresh-token family) of the connection's token.
    pub session: uuid::Uuid,
    /// Bounds of the queue: frames and bytes.
    capacity: usize,
    max_bytes: usize,
    shared: Arc<Shared>,
    /// Cancelled to close the connection; the shared reason says how.
    pub kill: CancellationToken,
}

/// The writer's end of a connection's queue; dropping it refuses further
/// frames and frees the waiting ones.
pub struct Receiver {
    shared: Arc<Shared>,
}

impl Receiver {
    /// Waits for frames and moves up to `max` of them into `out`; 0 once
    /// the queue is closed.
    pub async fn recv(&mut self, out: &mut Vec<Outbound>, max: usize) -> usize {
        self.shared.queue.recv(out, max).await
    }

    /// The next waiting frame, if any.
    pub fn try_recv(&mut self) -> Option<Outbound> {
        let mut one = Vec::with_capacity(1);
        self.shared.queue.take(&mut one, 1);
        one.pop()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.queue.close();
    }
}

impl Conn {
    pub fn new(id: u64, user_id: i64, capacity: usize) -> (Self, Receiver) {
        Self::with_limits(id, user_id, capacity, usize::MAX)
    }

    /// A connection whose queue holds at most `capacity` frames and
    /// `max_bytes` bytes.
    pub fn with_limits(
        id: u64,
        user_id: i64,
        capacity: usize,
        max_bytes: usize,
    ) -> (Self, Receiver) {
        let shared = Arc::new(Shared::default());
        let conn = Self {
            id,
            user_id,
            session: uuid::Uuid::nil(),
            capacity,
            max_bytes,
            shared: shared.clone(),
            kill: CancellationToken::new(),
        };
        (conn, Receiver { shared })
    }

    /// Records the chat the client shows (`None`: none).
    pub fn set_focus(&self, chat: Option<i64>) {
        self.shared
            .focus
            .store(chat.unwrap_or(0), Ordering::Relaxed);
    }

    /// Whether the client shows `chat`: no toasts or unread badges for it.
    pub fn focused_on(&self, chat: i64) -> bool {
        self.shared.focus.load(Ordering::Relaxed) == chat
    }

    /// Closes the connection with `code`; the first reason given wins.
    pub fn close(&self, code: u16, reason: &str) {
        let mut slot = self.shared.reason.lock().expect("reason lock");
        if slot.is_none() {
            *slot = Some((code, reason.into()));
        }
        drop(slot);
        self.kill.cancel();
    }

    pub fn close_reason(&self) -> (u16, String) {
        self.shared
            .reason
            .lock()
            .expect("reason lock")
            .as_ref()
            .map(|(code, reason)| (*code, reason.to_string()))
            .unwrap_or((close::NORMAL, String::new()))
    }

    /// Queues a frame without waiting. Returns false when it was dropped.
    pub fn offer(
        &self,
        frame: Utf8Bytes,
        priority: Priority,
        metrics: &GatewayMetrics,
        kind: &str,
    ) -> bool {
        let len = frame.len();
        self.enqueue(Outbound::Frame(frame), len, priority, metrics, kind)
    }

    /// [`Conn::offer`] for a committed event with its commit time.
    pub fn offer_event(
        &self,
        event: &Arc<TimedFrame>,
        priority: Priority,
        metrics: &GatewayMetrics,
        kind: &str,
    ) -> bool {
        let len = event.frame.len();
        self.enqueue(Outbound::Event(event.clone()), len, priority, metrics, kind)
    }

    fn enqueue(
        &self,
        message: Outbound,
        len: usize,
        priority: Priority,
        metrics: &GatewayMetrics,
        kind: &str,
    ) -> bool {
        let queued = self.shared.queued_bytes.load(Ordering::Relaxed);
        let waiting = self.shared.queue.len();
        let half_full = waiting >= self.capacity - self.capacity / 2 || queued > self.max_bytes / 2;
        if priority == Priority::Droppable && half_full {
            metrics.record_drop(kind, BACKPRESSURE);
            return false;
        }
        // Counted before the frame is queued: the writer (another task)
        // subtracts as soon as it takes the frame, and must never see a
        // frame it has not been counted for.
        let sent = if queued.saturating_add(len) > self.max_bytes {
            Err(Refused::Full)
        } else {
            self.shared.queued_bytes.fetch_add(len, Ordering::Relaxed);
            self.shared
                .queue
                .push(message, self.capacity)
                .inspect_err(|_| {
                    self.shared.queued_bytes.fetch_sub(len, Ordering::Relaxed);
                })
        };
        match sent {
            Ok(()) => {
                metrics.ws_frames_out.with_label_values(&[kind]).inc();
                true
            }
            Err(Refused::Full) => {
                metrics.record_drop(kind, OVERFLOW);
                if priority == Priority::Essential {
                    self.close(
                        close::SLOW_CONSUMER,
                        "slow consumer: reconnect and send sync.request",
                    );
                }
                false
            }
            Err(Refused::Closed) => false,
        }
    }

    /// Queues a server ping; skipped when the queue is full (the client is
    /// evidently receiving).
    pub fn ping(&self) {
        let _ = self.shared.queue.push(Outbound::ping(), self.capacity);
    }

    /// Frames (pings included) and bytes waiting in the queue now.
    pub fn queue_depth(&self) -> (usize, usize) {
        (
            self.shared.queue.len(),
            self.shared.queued_bytes.load(Ordering::Relaxed),
        )
    }
}

/// Drains `rx` onto the socket until the connection closes; `latency` is
/// the gateway's `delivery_latency_seconds`.
pub async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: Receiver,
    conn: Conn,
    latency: Histogram,
) {
    loop {
        let mut batch = Vec::new();
        let taken = tokio::select! {
            biased;
            _ = conn.kill.cancelled() => break,
            n = rx.recv(&mut batch, WRITE_BATCH) => n,
        };
        // Boxed: the write's state only exists while writing, not in
        // every idle connection's writer.
        if taken == 0 {
            break;
        }
        if Box::pin(write_batch(&mut sink, batch, &conn, &latency))
            .await
            .is_err()
        {
            conn.close(close::NORMAL, "");
            return;
        }
    }
    // Closing: send what is already queued (bounded in time), then Close.
    let (code, reason) = conn.close_reason();
    if code != close::SLOW_CONSUMER {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let mut batch = Vec::new();
            while let Some(m) = rx.try_recv() {
                batch.push(m);
            }
            write_batch(&mut sink, batch, &conn, &latency).await
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
    latency: &Histogram,
) -> Result<(), axum::Error> {
    let mut committed = Vec::new();
    for m in batch {
        let msg = match m {
            Outbound::Frame(text) if text.is_empty() => Message::Ping(Default::default()),
            Outbound::Frame(text) => {
                conn.shared
                    .queued_bytes
                    .fetch_sub(text.len(), Ordering::Relaxed);
                Message::Text(text)
            }
            Outbound::Event(event) => {
                conn.shared
                    .queued_bytes
                    .fetch_sub(event.frame.len(), Ordering::Relaxed);
                committed.push(event.committed_ms);
                Message::Text(event.frame.clone())
            }
        };
        sink.feed(msg).await?;
    }
    sink.flush().await?;
    for at in committed {
        crate::metrics::observe_delivery(latency, at);
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

    #[test]
    fn backpressure_drops_typing_first_and_closes_slow_consumers() {
        let metrics = GatewayMetrics::new();
        let (c, _rx) = Conn::new(1, 1, 8);
        for _ in 0..4 {
            assert!(c.offer("x".into(), Priority::Essential, &metrics, "message.new"));
        }
        assert!(!c.offer(
            "t".into(),
            Priority::Droppable,
            &metrics,
            "typing.indicator"
        ));
        assert!(!c.kill.is_cancelled());
        for _ in 0..4 {
            assert!(c.offer("x".into(), Priority::Essential, &metrics, "message.new"));
        }
        assert!(!c.offer("x".into(), Priority::Essential, &metrics, "message.new"));
        assert!(c.kill.is_cancelled());
        assert_eq!(c.close_reason().0, close::SLOW_CONSUMER);
        let dropped = |class, reason| metrics.dropped.with_label_values(&[class, reason]).get();
        assert_eq!(dropped("typing", BACKPRESSURE), 1);
        assert_eq!(dropped("message", OVERFLOW), 1);
    }

    #[test]
    fn events_carry_their_commit_time_to_the_writer() {
        let metrics = GatewayMetrics::new();
        let (c, mut rx) = Conn::new(1, 1, 8);
        let event = Arc::new(TimedFrame {
            frame: "{}".into(),
            committed_ms: 42,
        });
        assert!(c.offer_event(&event, Priority::Essential, &metrics, "message.new"));
        c.ping();
        assert_eq!(c.queue_depth(), (2, 2));
        match rx.try_recv() {
            Some(Outbound::Event(e)) => assert_eq!(e.committed_ms, 42),
            other => panic!("expected the event, got {other:?}"),
        }
        // A ping is the empty frame (written as a WebSocket ping).
        assert!(matches!(rx.try_recv(), Some(Outbound::Frame(f)) if f.is_empty()));
    }

    #[test]
    fn the_byte_bound_applies_next_to_the_frame_bound() {
        let metrics = GatewayMetrics::new();
        let (c, _rx) = Conn::with_limits(1, 1, 1000, 100);
        let big: Utf8Bytes = "x".repeat(40).into();
        assert!(c.offer(big.clone(), Priority::Essential, &metrics, "sync.response"));
        // Over half the bytes: typing is dropped, the connection lives.
        assert!(c.offer(big.clone(), Priority::Essential, &metrics, "sync.response"));
        assert!(!c.offer(
            "t".into(),
            Priority::Droppable,
            &metrics,
            "typing.indicator"
        ));
        assert!(!c.kill.is_cancelled());
        // 120 > 100 bytes: an essential frame that does not fit closes it.
        assert!(!c.offer(big, Priority::Essential, &metrics, "sync.response"));
        assert_eq!(c.close_reason().0, close::SLOW_CONSUMER);
    }
}
