//! A connection's outbound queue: bounded, many producers that never wait,
//! one consumer (the connection's writer task).
//!
//! Why not `tokio::sync::mpsc`: a bounded channel allocates its first
//! block of 32 slots and a cache-padded channel header up front, about
//! 1.6 KB per connection that an idle connection never uses, and keeps
//! blocks it has grown. Here the frames live in a `VecDeque` that is
//! allocated when the first frame is queued and released whenever the
//! writer has emptied it, so an idle connection holds no queue memory.

use std::{
    collections::VecDeque,
    sync::{Mutex, MutexGuard},
};

use tokio::sync::Notify;

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Full,
    Closed,
}

struct Slots<T> {
    frames: VecDeque<T>,
    closed: bool,
}

/// The queue, shared by the producers' handles and the consumer.
pub struct Queue<T> {
    slots: Mutex<Slots<T>>,
    /// Wakes the consumer; a notification sent while it is busy is kept.
    ready: Notify,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Self {
            slots: Mutex::new(Slots {
                frames: VecDeque::new(),
                closed: false,
            }),
            ready: Notify::new(),
        }
    }
}

impl<T> Queue<T> {
    fn lock(&self) -> MutexGuard<'_, Slots<T>> {
        // A panic while holding this lock cannot leave the slots invalid.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `item` unless `bound` items are waiting or the consumer left.
    pub fn push(&self, item: T, bound: usize) -> Result<(), Refused> {
        let mut s = self.lock();
        if s.closed {
            return Err(Refused::Closed);
        }
        if s.frames.len() >= bound {
            return Err(Refused::Full);
        }
        s.frames.push_back(item);
        drop(s);
        self.ready.notify_one();
        Ok(())
    }

    /// Items waiting now.
    pub fn len(&self) -> usize {
        self.lock().frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves up to `max` waiting items into `out`; gives the queue's
    /// memory back when that emptied it.
    pub fn take(&self, out: &mut Vec<T>, max: usize) -> usize {
        let mut s = self.lock();
        let n = s.frames.len().min(max);
        out.extend(s.frames.drain(..n));
        if s.frames.is_empty() {
            s.frames = VecDeque::new();
        }
        n
    }

    /// Waits until at least one item is waiting, then takes up to `max`
    /// of them into `out`. Returns 0 only once the queue is closed.
    pub async fn recv(&self, out: &mut Vec<T>, max: usize) -> usize {
        loop {
            let n = self.take(out, max);
            if n > 0 || self.lock().closed {
                return n;
            }
            self.ready.notified().await;
        }
    }

    /// Refuses further items and drops the waiting ones.
    pub fn close(&self) {
        let mut s = self.lock();
        s.closed = true;
        s.frames = VecDeque::new();
        drop(s);
        self.ready.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_in_order_and_released_when_empty() {
        let q = Queue::default();
        for i in 0..3 {
            assert_eq!(q.push(i, 3), Ok(()));
        }
        assert_eq!(q.push(9, 3), Err(Refused::Full));
        let mut out = Vec::new();
        assert_eq!(q.take(&mut out, 2), 2);
        assert_eq!(out, vec![0, 1]);
        assert_eq!(q.take(&mut out, 8), 1);
        assert_eq!(out, vec![0, 1, 2]);
        assert_eq!(
            q.lock().frames.capacity(),
            0,
            "an empty queue holds no memory"
        );
        q.close();
        assert_eq!(q.push(1, 3), Err(Refused::Closed));
    }

    #[tokio::test]
    async fn the_consumer_wakes_for_an_item_pushed_while_it_was_not_waiting() {
        let q = std::sync::Arc::new(Queue::default());
        let mut out = Vec::new();
        q.push(1, 8).unwrap();
        assert_eq!(q.recv(&mut out, 8).await, 1);
        let producer = q.clone();
        let task = tokio::spawn(async move {
            tokio::task::yield_now().await;
            producer.push(2, 8).unwrap();
        });
        assert_eq!(q.recv(&mut out, 8).await, 1);
        assert_eq!(out, vec![1, 2]);
        task.await.unwrap();
        q.close();
        assert_eq!(q.recv(&mut out, 8).await, 0);
    }
}
