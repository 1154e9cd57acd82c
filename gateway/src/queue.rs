//! A connection's outbound queue: bounded, many producers that never wait,
//! one consumer (the connection's writer task), and lanes taken in
//! priority order (seed 002 §7.4: messages > badges > receipts > typing >
//! presence).
//!
//! Why not `tokio::sync::mpsc`: a bounded channel allocates its first
//! block of 32 slots and a cache-padded channel header up front, about
//! 1.6 KB per connection that an idle connection never uses, and keeps
//! blocks it has grown. Here the frames live in `VecDeque`s that are
//! allocated when the first frame is queued and released whenever the
//! writer has emptied them, so an idle connection holds no queue memory;
//! the lanes below the first live in one box that only exists while one
//! of them holds a frame (an idle connection pays one pointer for them).
//!
//! Order holds within a lane, not across lanes: the consumer always takes
//! from the highest lane that has frames, so a frame can overtake frames
//! of lower lanes queued before it. Which frames share a lane so that
//! their relative order survives is the caller's choice
//! ([`crate::outbound::Priority`]).

use std::{
    collections::VecDeque,
    sync::{Mutex, MutexGuard},
};

use tokio::sync::Notify;

/// Lanes of a queue; lane 0 is taken first.
pub const LANES: usize = 5;

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Full,
    Closed,
}

struct Slots<T> {
    /// Lane 0, the busiest.
    first: VecDeque<T>,
    /// Lanes 1.., allocated while one of them holds a frame.
    rest: Option<Box<[VecDeque<T>; LANES - 1]>>,
    /// Frames in all lanes.
    len: usize,
    closed: bool,
}

impl<T> Slots<T> {
    /// Lane `lane` (0..LANES), allocating the lanes below the first.
    fn lane(&mut self, lane: usize) -> &mut VecDeque<T> {
        match lane {
            0 => &mut self.first,
            n => &mut self.rest.get_or_insert_with(Default::default)[n - 1],
        }
    }

    /// Items waiting in lane `lane` (allocates nothing).
    fn waiting(&self, lane: usize) -> usize {
        match (lane, &self.rest) {
            (0, _) => self.first.len(),
            (n, Some(rest)) => rest[n - 1].len(),
            (_, None) => 0,
        }
    }

    /// Gives back the memory of lanes that are empty.
    fn release(&mut self) {
        if self.first.is_empty() {
            self.first = VecDeque::new();
        }
        if self
            .rest
            .as_ref()
            .is_some_and(|r| r.iter().all(VecDeque::is_empty))
        {
            self.rest = None;
        }
    }
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
                first: VecDeque::new(),
                rest: None,
                len: 0,
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

    /// Queues `item` in `lane` unless `bound` items are waiting (all
    /// lanes together) or the consumer left.
    pub fn push(&self, item: T, lane: usize, bound: usize) -> Result<(), Refused> {
        let mut s = self.lock();
        if s.closed {
            return Err(Refused::Closed);
        }
        if s.len >= bound {
            return Err(Refused::Full);
        }
        s.lane(lane).push_back(item);
        s.len += 1;
        drop(s);
        self.ready.notify_one();
        Ok(())
    }

    /// Removes the newest item of the first of `lanes` that holds one, to
    /// make room for a frame that must not be dropped.
    pub fn evict(&self, lanes: &[usize]) -> Option<(usize, T)> {
        let mut s = self.lock();
        let lane = *lanes.iter().find(|&&l| s.waiting(l) > 0)?;
        let item = s.lane(lane).pop_back()?;
        s.len -= 1;
        s.release();
        Some((lane, item))
    }

    /// Items waiting now, all lanes together.
    pub fn len(&self) -> usize {
        self.lock().len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves up to `max` waiting items into `out`, highest lane first;
    /// gives the memory of emptied lanes back.
    pub fn take(&self, out: &mut Vec<T>, max: usize) -> usize {
        let mut s = self.lock();
        let mut n = 0;
        for lane in 0..LANES {
            let k = s.waiting(lane).min(max - n);
            if k > 0 {
                out.extend(s.lane(lane).drain(..k));
                n += k;
            }
        }
        s.len -= n;
        s.release();
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
        s.first = VecDeque::new();
        s.rest = None;
        s.len = 0;
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
            assert_eq!(q.push(i, 0, 3), Ok(()));
        }
        assert_eq!(q.push(9, 0, 3), Err(Refused::Full));
        let mut out = Vec::new();
        assert_eq!(q.take(&mut out, 2), 2);
        assert_eq!(out, vec![0, 1]);
        assert_eq!(q.take(&mut out, 8), 1);
        assert_eq!(out, vec![0, 1, 2]);
        assert_eq!(
            q.lock().first.capacity(),
            0,
            "an empty queue holds no memory"
        );
        q.close();
        assert_eq!(q.push(1, 0, 3), Err(Refused::Closed));
    }

    #[test]
    fn higher_lanes_go_first_and_the_bound_counts_every_lane() {
        let q = Queue::default();
        q.push("presence", 4, 5).unwrap();
        q.push("badge 1", 1, 5).unwrap();
        q.push("message 1", 0, 5).unwrap();
        q.push("badge 2", 1, 5).unwrap();
        q.push("message 2", 0, 5).unwrap();
        assert_eq!(q.push("receipt", 2, 5), Err(Refused::Full));
        let mut out = Vec::new();
        assert_eq!(q.take(&mut out, 3), 3);
        assert_eq!(out, ["message 1", "message 2", "badge 1"]);
        q.push("message 3", 0, 5).unwrap();
        assert_eq!(q.take(&mut out, 8), 3);
        assert_eq!(out[3..], ["message 3", "badge 2", "presence"]);
        let s = q.lock();
        assert!(s.rest.is_none(), "emptied lanes hold no memory");
        assert_eq!(s.len, 0);
    }

    #[test]
    fn eviction_takes_the_newest_item_of_the_first_listed_lane() {
        let q = Queue::default();
        q.push("message", 0, 4).unwrap();
        q.push("presence", 4, 4).unwrap();
        q.push("typing 1", 3, 4).unwrap();
        q.push("typing 2", 3, 4).unwrap();
        assert_eq!(q.evict(&[3, 4]), Some((3, "typing 2")));
        assert_eq!(q.evict(&[3, 4]), Some((3, "typing 1")));
        assert_eq!(q.evict(&[3, 4]), Some((4, "presence")));
        assert_eq!(q.evict(&[3, 4]), None);
        assert_eq!(q.len(), 1);
        assert!(q.lock().rest.is_none());
    }

    #[tokio::test]
    async fn the_consumer_wakes_for_an_item_pushed_while_it_was_not_waiting() {
        let q = std::sync::Arc::new(Queue::default());
        let mut out = Vec::new();
        q.push(1, 0, 8).unwrap();
        assert_eq!(q.recv(&mut out, 8).await, 1);
        let producer = q.clone();
        let task = tokio::spawn(async move {
            tokio::task::yield_now().await;
            producer.push(2, 0, 8).unwrap();
        });
        assert_eq!(q.recv(&mut out, 8).await, 1);
        assert_eq!(out, vec![1, 2]);
        task.await.unwrap();
        q.close();
        assert_eq!(q.recv(&mut out, 8).await, 0);
    }
}
