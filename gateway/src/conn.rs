//! A handle on one connection, shared by the hub, the session and the
//! writer: the bounded outbound queue every producer feeds without
//! waiting, the backpressure policy, and how a connection is closed.
//!
//! A handle is one pointer: every connection holds several of them (hub
//! maps, session, writer), so everything the clones share (ids, bounds,
//! queue, byte count, focus, close state) lives in one allocation, and an
//! idle connection holds no queue memory (see [`crate::queue`]).

use std::{
    ops::Deref,
    sync::{
        atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::Notify;

use crate::{
    metrics::{GatewayMetrics, BACKPRESSURE, EVICTED, OVERFLOW},
    outbound::{close, Outbound, Priority, TimedFrame, EVICTABLE},
    queue::{Queue, Refused},
};

/// What the handles of one connection share.
pub struct Shared {
    pub id: u64,
    pub user_id: i64,
    /// The session (refresh-token family) of the connection's token.
    pub session: uuid::Uuid,
    /// Bounds of the queue: frames and bytes.
    capacity: usize,
    max_bytes: usize,
    queue: Queue<Outbound>,
    /// Bytes of frames queued and not yet written.
    queued_bytes: AtomicUsize,
    /// The chat the client shows (`chat.focus`), 0 for none.
    focus: AtomicI64,
    /// Set once to close the connection; `reason` says how, `killed`
    /// wakes whoever waits for it.
    closed: AtomicBool,
    killed: Notify,
    reason: Mutex<Option<(u16, Box<str>)>>,
}

/// A handle on one connection, cloned into the hub and its session.
#[derive(Clone)]
pub struct Conn(Arc<Shared>);

impl Deref for Conn {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The writer's end of a connection's queue; dropping it refuses further
/// frames and frees the waiting ones.
pub struct Receiver(Arc<Shared>);

impl Receiver {
    /// Waits for frames and moves up to `max` of them into `out`; 0 once
    /// the queue is closed.
    pub async fn recv(&mut self, out: &mut Vec<Outbound>, max: usize) -> usize {
        self.0.queue.recv(out, max).await
    }

    /// The next waiting frame, if any.
    pub fn try_recv(&mut self) -> Option<Outbound> {
        let mut one = Vec::with_capacity(1);
        self.0.queue.take(&mut one, 1);
        one.pop()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.0.queue.close();
    }
}

impl Conn {
    pub fn new(id: u64, user_id: i64, capacity: usize) -> (Self, Receiver) {
        Self::open(id, user_id, uuid::Uuid::nil(), capacity, usize::MAX)
    }

    /// A connection of `user_id`'s `session` whose queue holds at most
    /// `capacity` frames and `max_bytes` bytes.
    pub fn open(
        id: u64,
        user_id: i64,
        session: uuid::Uuid,
        capacity: usize,
        max_bytes: usize,
    ) -> (Self, Receiver) {
        let shared = Arc::new(Shared {
            id,
            user_id,
            session,
            capacity,
            max_bytes,
            queue: Queue::default(),
            queued_bytes: AtomicUsize::new(0),
            focus: AtomicI64::new(0),
            closed: AtomicBool::new(false),
            killed: Notify::new(),
            reason: Mutex::new(None),
        });
        (Self(shared.clone()), Receiver(shared))
    }

    /// Records the chat the client shows (`None`: none).
    pub fn set_focus(&self, chat: Option<i64>) {
        self.focus.store(chat.unwrap_or(0), Ordering::Relaxed);
    }

    /// Whether the client shows `chat`: no toasts or unread badges for it.
    pub fn focused_on(&self, chat: i64) -> bool {
        self.focus.load(Ordering::Relaxed) == chat
    }

    /// Closes the connection with `code`; the first reason given wins.
    pub fn close(&self, code: u16, reason: &str) {
        let mut slot = self.reason.lock().expect("reason lock");
        if slot.is_none() {
            *slot = Some((code, reason.into()));
        }
        drop(slot);
        self.closed.store(true, Ordering::Release);
        self.killed.notify_waiters();
    }

    /// Whether the connection was closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Completes once the connection is closed.
    pub async fn killed(&self) {
        // Registered before the check: a close between the two still wakes it.
        let wake = self.killed.notified();
        if self.is_closed() {
            return;
        }
        wake.await;
    }

    pub fn close_reason(&self) -> (u16, String) {
        self.reason
            .lock()
            .expect("reason lock")
            .as_ref()
            .map(|(code, reason)| (*code, reason.to_string()))
            .unwrap_or((close::NORMAL, String::new()))
    }

    /// The writer took a frame of `len` bytes off the queue.
    pub fn written(&self, len: usize) {
        self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
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
        if self.refuses(priority) {
            metrics.record_drop(kind, BACKPRESSURE);
            return false;
        }
        if !priority.droppable() {
            self.make_room(len, metrics);
        }
        // Counted before the frame is queued: the writer (another task)
        // subtracts as soon as it takes the frame, and must never see a
        // frame it has not been counted for.
        let queued = self.queued_bytes.load(Ordering::Relaxed);
        let sent = if queued.saturating_add(len) > self.max_bytes {
            Err(Refused::Full)
        } else {
            self.queued_bytes.fetch_add(len, Ordering::Relaxed);
            self.queue
                .push(message, priority.lane(), self.capacity)
                .inspect_err(|_| {
                    self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
                })
        };
        match sent {
            Ok(()) => {
                metrics.ws_frames_out.with_label_values(&[kind]).inc();
                true
            }
            Err(Refused::Full) => {
                metrics.record_drop(kind, OVERFLOW);
                if !priority.droppable() {
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

    /// Whether backpressure refuses a droppable frame: the queue (frames or
    /// bytes) is as full as its priority tolerates.
    fn refuses(&self, priority: Priority) -> bool {
        let Some((num, den)) = priority.refused_from() else {
            return false;
        };
        let share =
            |used: usize, bound: usize| used as u128 * den as u128 >= bound as u128 * num as u128;
        share(self.queue.len(), self.capacity)
            || share(self.queued_bytes.load(Ordering::Relaxed), self.max_bytes)
    }

    /// Evicts queued typing, then presence frames (newest first) until a
    /// frame of `len` bytes fits, or none is left to evict.
    fn make_room(&self, len: usize, metrics: &GatewayMetrics) {
        let full = || {
            self.queue.len() >= self.capacity
                || self
                    .queued_bytes
                    .load(Ordering::Relaxed)
                    .saturating_add(len)
                    > self.max_bytes
        };
        while full() {
            let Some((lane, old)) = self.queue.evict(&EVICTABLE) else {
                return;
            };
            self.queued_bytes.fetch_sub(old.len(), Ordering::Relaxed);
            let kind = if lane == Priority::Typing.lane() {
                "typing.indicator"
            } else {
                "presence.changed"
            };
            metrics.record_drop(kind, EVICTED);
        }
    }

    /// Queues a server ping; skipped when the queue is full (the client is
    /// evidently receiving).
    pub fn ping(&self) {
        let _ = self
            .queue
            .push(Outbound::ping(), Priority::Message.lane(), self.capacity);
    }

    /// Frames (pings included) and bytes waiting in the queue now.
    pub fn queue_depth(&self) -> (usize, usize) {
        (self.queue.len(), self.queued_bytes.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backpressure_drops_typing_first_and_closes_slow_consumers() {
        let metrics = GatewayMetrics::new();
        let (c, _rx) = Conn::new(1, 1, 8);
        for _ in 0..4 {
            assert!(c.offer("x".into(), Priority::Message, &metrics, "message.new"));
        }
        assert!(!c.offer("t".into(), Priority::Typing, &metrics, "typing.indicator"));
        assert!(!c.is_closed());
        for _ in 0..4 {
            assert!(c.offer("x".into(), Priority::Message, &metrics, "message.new"));
        }
        assert!(!c.offer("x".into(), Priority::Message, &metrics, "message.new"));
        assert!(c.is_closed());
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
        assert!(c.offer_event(&event, Priority::Message, &metrics, "message.new"));
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
    fn presence_goes_at_three_quarters_and_queued_typing_makes_room() {
        let metrics = GatewayMetrics::new();
        let (c, mut rx) = Conn::new(1, 1, 8);
        assert!(c.offer("t".into(), Priority::Typing, &metrics, "typing.indicator"));
        for _ in 0..5 {
            assert!(c.offer("m".into(), Priority::Message, &metrics, "message.new"));
        }
        // 6 of 8 waiting: presence is refused, a badge is not.
        assert!(!c.offer("p".into(), Priority::Presence, &metrics, "presence.changed"));
        assert!(c.offer("b".into(), Priority::User, &metrics, "notification.badge"));
        assert!(c.offer("r".into(), Priority::Receipt, &metrics, "read.receipt"));
        // Full: the queued typing frame is evicted for the message.
        assert!(c.offer("n".into(), Priority::Message, &metrics, "message.new"));
        assert!(!c.is_closed());
        assert_eq!(c.queue_depth(), (8, 8));
        let dropped = |class, reason| metrics.dropped.with_label_values(&[class, reason]).get();
        assert_eq!(dropped("presence", BACKPRESSURE), 1);
        assert_eq!(dropped("typing", EVICTED), 1);
        // The writer sees messages first, then the badge, then the receipt.
        let mut order = String::new();
        while let Some(Outbound::Frame(f)) = rx.try_recv() {
            order.push_str(&f);
        }
        assert_eq!(order, "mmmmmnbr");
        // Nothing left to evict: the next essential frame that does not fit
        // closes the connection.
        for _ in 0..8 {
            assert!(c.offer("m".into(), Priority::Message, &metrics, "message.new"));
        }
        assert!(!c.offer("b".into(), Priority::User, &metrics, "notification.badge"));
        assert_eq!(c.close_reason().0, close::SLOW_CONSUMER);
    }

    #[test]
    fn the_byte_bound_applies_next_to_the_frame_bound() {
        let metrics = GatewayMetrics::new();
        let (c, _rx) = Conn::open(1, 1, uuid::Uuid::nil(), 1000, 100);
        let big: Utf8Bytes = "x".repeat(40).into();
        assert!(c.offer(big.clone(), Priority::Message, &metrics, "sync.response"));
        // Over half the bytes: typing is dropped, the connection lives.
        assert!(c.offer(big.clone(), Priority::Message, &metrics, "sync.response"));
        assert!(!c.offer("t".into(), Priority::Typing, &metrics, "typing.indicator"));
        assert!(!c.is_closed());
        // 120 > 100 bytes: an essential frame that does not fit closes it.
        assert!(!c.offer(big, Priority::Message, &metrics, "sync.response"));
        assert_eq!(c.close_reason().0, close::SLOW_CONSUMER);
    }
}
