//! The toaster: sends each committed batch's toasts and push jobs
//! ([`crate::notify`]) beside the consumer, so that the next batch's
//! commit and its senders' acks never wait for the previous batch's
//! alerts. (Before, the consumer sent them itself between two batches:
//! in group chats, where every message alerts every member, that wait
//! halved the write path's capacity; BENCHMARKS.md, "Write path cost
//! model".)
//!
//! Why one queue handled in order rather than a task per batch: a user's
//! toasts must reach the user's stream in commit order, and each toast's
//! group count ("3 new messages in #general") depends on the ones before.
//!
//! Failure handling: the queue is bounded ([`CAPACITY`] batches). When the
//! alerts fall behind, the consumer waits for room: back-pressure on the
//! write path, nothing dropped. A Redis or PostgreSQL error loses that
//! batch's alerts (logged, counted in
//! `fechatter_notification_toast_failures_total`), never its messages,
//! exactly as before. On shutdown the consumer stops first, then what is
//! queued is sent, for at most [`DRAIN`] (the shards' leases are released
//! after it; what is left is logged and counted as failed).
//!
//! Known limit: a worker that loses a shard without stopping (stalled
//! past its lease, fenced) still sends the toasts it had queued, possibly
//! after the new holder's toasts for the same chats: a user may then see
//! two toasts of one chat out of order. Messages and badges are not
//! affected.

use std::sync::Mutex;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{effects::NewMessage, Worker};

/// Batches waiting for their alerts before the consumer waits.
pub const CAPACITY: usize = 64;
/// Longest a stopping worker spends sending queued alerts.
pub const DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// The queue between the consumer and the toaster.
pub struct ToastQueue {
    tx: mpsc::Sender<Vec<NewMessage>>,
    rx: Mutex<Option<mpsc::Receiver<Vec<NewMessage>>>>,
}

impl Default for ToastQueue {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(CAPACITY);
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }
}

impl ToastQueue {
    /// Batches queued and not yet taken by the toaster.
    pub fn backlog(&self) -> usize {
        CAPACITY - self.tx.capacity()
    }
}

impl Worker {
    /// Queues the alerts of a committed batch's new messages, waiting for
    /// room when the queue is full.
    pub(crate) async fn queue_toasts(&self, messages: Vec<NewMessage>) {
        if messages.is_empty() {
            return;
        }
        // The receiver lives as long as the worker's consumer.
        if self.toast_queue.tx.send(messages).await.is_err() {
            tracing::error!("toaster gone: a batch's alerts are not sent");
            self.metrics.toast_failures.inc();
        }
        self.metrics
            .toast_backlog
            .set(self.toast_queue.backlog() as i64);
    }

    /// Sends queued alerts, batch after batch, until `done` fires; then
    /// sends what is still queued and returns. Runs once per worker (a
    /// second call returns at once).
    pub(crate) async fn run_toaster(&self, done: CancellationToken) {
        let Some(mut rx) = self.toast_queue.rx.lock().expect("not poisoned").take() else {
            return;
        };
        loop {
            let messages = tokio::select! {
                biased;
                m = rx.recv() => m,
                _ = done.cancelled() => break,
            };
            let Some(messages) = messages else { break };
            self.toast(&messages).await;
        }
        // What is still queued goes out, for at most DRAIN: the leases are
        // handed over only after this returns.
        let drained = tokio::time::timeout(DRAIN, async {
            while let Ok(messages) = rx.try_recv() {
                self.toast(&messages).await;
            }
        })
        .await;
        if drained.is_err() {
            let left = rx.len();
            tracing::warn!(
                batches = left,
                "shutdown: toasts of the batches still queued are not sent"
            );
            self.metrics.toast_failures.inc_by(left as u64);
        }
    }

    async fn toast(&self, messages: &[NewMessage]) {
        self.metrics
            .toast_backlog
            .set(self.toast_queue.backlog() as i64);
        if let Err(e) = self.toasts(messages).await {
            self.metrics.toast_failures.inc();
            tracing::warn!(error = %e, "toasts of a committed batch not sent");
        }
    }
}
