//! REST writes waiting for the worker's answer.
//!
//! The worker answers a write on the Pub/Sub channel of the gateway named
//! in the ingest entry, addressed to a connection id. A WebSocket write is
//! answered on its socket; a REST write (`POST /api/chat/{id}/messages`)
//! has no socket, so it takes an id from the same counter as connections
//! and waits here for the frame addressed to it. Ids never collide with a
//! live connection's, and a frame for an id nobody waits for any more (the
//! request timed out, the client left) is dropped: the write itself is
//! committed or not regardless, and a retry with the same client id is
//! answered from the commit.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use tokio::sync::oneshot;

/// Waiting REST writes by their reply id.
#[derive(Default)]
pub struct Replies {
    waiting: Mutex<HashMap<u64, oneshot::Sender<String>>>,
}

/// One registered wait; dropping it forgets the id.
pub struct Waiter<'a> {
    replies: &'a Replies,
    id: u64,
    answer: oneshot::Receiver<String>,
}

impl Replies {
    /// Starts waiting for the frame addressed to `id`.
    pub fn wait_for(&self, id: u64) -> Waiter<'_> {
        let (tx, answer) = oneshot::channel();
        self.lock().insert(id, tx);
        Waiter {
            replies: self,
            id,
            answer,
        }
    }

    /// Hands `frame` to the request waiting on `id`; false when none is.
    pub fn deliver(&self, id: u64, frame: String) -> bool {
        match self.lock().remove(&id) {
            Some(tx) => tx.send(frame).is_ok(),
            None => false,
        }
    }

    /// How many requests are waiting (a gauge for tests and metrics).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<String>>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Waiter<'_> {
    /// The answer frame, or None after `timeout`.
    pub async fn answer(mut self, timeout: Duration) -> Option<String> {
        tokio::time::timeout(timeout, &mut self.answer)
            .await
            .ok()
            .and_then(Result::ok)
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.replies.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_reach_their_waiter_once() {
        let replies = Replies::default();
        let waiter = replies.wait_for(7);
        assert!(!replies.deliver(8, "other".into()), "nobody waits on 8");
        assert!(replies.deliver(7, "frame".into()));
        assert!(!replies.deliver(7, "again".into()), "delivered once");
        assert_eq!(
            waiter.answer(Duration::from_secs(1)).await.as_deref(),
            Some("frame")
        );
        assert!(replies.is_empty());
    }

    #[tokio::test]
    async fn a_timed_out_wait_is_forgotten() {
        let replies = Replies::default();
        let waiter = replies.wait_for(1);
        assert_eq!(waiter.answer(Duration::from_millis(10)).await, None);
        assert!(replies.is_empty());
        assert!(!replies.deliver(1, "late".into()));
    }
}
