//! Summary mode for busy chats (seed 002 §7.4, point 4).
//!
//! Why: a channel producing more than a hundred messages a second is
//! unreadable on a screen that is not showing it, yet delivering every
//! event to every member costs the gateway a frame per member per event
//! and fills slow clients' queues until they are closed. So a gateway that
//! sees a chat pass `SUMMARY_MODE_RATE` messages within one second switches
//! the chat to summary mode: its connections that are not focused on the
//! chat (`chat.focus`) stop getting the chat's events and instead get one
//! `chat.summary` frame per second ("N new messages, up to event X") and
//! one badge per member; focused connections keep getting every event.
//! When a whole second passes with at most half the rate, the chat goes
//! back: a last summary with `live: true` says full delivery resumes.
//! A summarized client fetches what it skipped when it needs it (on focus,
//! `sync.request` from its own cursor, or a REST page).
//!
//! Each gateway decides for its own connections from the events it
//! delivers; every gateway sees the same events, so they agree to within a
//! tick. This module is the pure bookkeeping (windows, transitions,
//! counts), driven by the delivery task with explicit events and ticks so
//! it is tested without Redis or sockets; [`crate::chat_delivery`] applies
//! it to connections.

use std::collections::HashMap;

use fechatter_shared::{protocol::ChatSummary, wake::StreamId};

/// Per-chat rate windows and summary states of one gateway.
#[derive(Debug)]
pub struct Summaries {
    /// Messages per window (one second, between two ticks) above which a
    /// chat is summarized; 0: never.
    rate: u32,
    chats: HashMap<i64, ChatRate>,
}

#[derive(Debug, Default)]
struct ChatRate {
    /// Messages since the last tick.
    in_window: u32,
    /// Some while the chat is in summary mode.
    summary: Option<Withheld>,
}

/// What unfocused connections have not been sent since the last summary.
#[derive(Debug, Default, Clone, Copy)]
struct Withheld {
    messages: u64,
    events: u64,
    /// The newest event of the chat seen (delivered or withheld).
    last: Option<StreamId>,
}

/// What a tick asks the delivery task to send for one chat.
#[derive(Debug, PartialEq, Eq)]
pub struct Flush {
    pub summary: ChatSummary,
    /// The newest message seq: badges are computed up to it.
    pub last_seq: i64,
}

impl Summaries {
    pub fn new(rate: u32) -> Self {
        Self {
            rate,
            chats: HashMap::new(),
        }
    }

    /// Step 1, per delivered chat event `id` of `chat`: counts it and
    /// says whether unfocused connections skip it (the chat is, or just
    /// became, summarized). Only `live` events (a wake as it arrives, not
    /// a catch-up after a reconnect) count toward the rate.
    pub fn on_event(&mut self, chat: i64, id: StreamId, is_message: bool, live: bool) -> bool {
        if self.rate == 0 {
            return false;
        }
        let c = self.chats.entry(chat).or_default();
        if is_message && live {
            c.in_window = c.in_window.saturating_add(1);
        }
        if c.summary.is_none() && c.in_window > self.rate {
            c.summary = Some(Withheld::default());
            tracing::info!(chat, rate = self.rate, "chat switched to summary mode");
        }
        let Some(w) = c.summary.as_mut() else {
            return false;
        };
        w.messages += u64::from(is_message);
        w.events += 1;
        w.last = Some(w.last.map_or(id, |l| l.max(id)));
        true
    }

    /// Step 2, once a second: the summaries to send (one per summarized
    /// chat that had events, plus the closing one of each chat that calmed
    /// down), and a new window for every chat. Chats without events and
    /// without summary state are forgotten.
    pub fn tick(&mut self) -> Vec<Flush> {
        let calm = self.rate / 2;
        let mut out = Vec::new();
        self.chats.retain(|&chat, c| {
            let window = std::mem::take(&mut c.in_window);
            let Some(w) = c.summary.as_mut() else {
                return window > 0;
            };
            let live = window <= calm;
            if let (Some(last), true) = (w.last, w.events > 0 || live) {
                out.push(Flush {
                    summary: ChatSummary {
                        chat_id: chat,
                        new_messages: w.messages,
                        events: w.events,
                        last_seq: last.0 as i64,
                        last_event_id: format!("{}-{}", last.0, last.1),
                        live,
                    },
                    last_seq: last.0 as i64,
                });
            }
            w.messages = 0;
            w.events = 0;
            if live {
                tracing::info!(chat, "chat left summary mode");
                c.summary = None;
            }
            true
        });
        out
    }

    /// For a connection that just focused `chat`: what was withheld since
    /// the last summary, as a summary saying every event follows (`live`),
    /// if the chat is summarized and anything was.
    pub fn pending(&self, chat: i64) -> Option<ChatSummary> {
        let w = self.chats.get(&chat)?.summary?;
        let last = w.last.filter(|_| w.events > 0)?;
        Some(ChatSummary {
            chat_id: chat,
            new_messages: w.messages,
            events: w.events,
            last_seq: last.0 as i64,
            last_event_id: format!("{}-{}", last.0, last.1),
            live: true,
        })
    }

    /// Chats in summary mode now.
    pub fn summarized(&self) -> usize {
        self.chats.values().filter(|c| c.summary.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(s: &mut Summaries, chat: i64, seqs: std::ops::RangeInclusive<u64>) -> Vec<bool> {
        seqs.map(|seq| s.on_event(chat, StreamId(seq, 0), true, true))
            .collect()
    }

    #[test]
    fn a_chat_over_the_rate_is_summarized_until_it_calms_down() {
        let mut s = Summaries::new(10);
        // Ten messages in a second are delivered; the eleventh is not.
        let skipped = messages(&mut s, 7, 1..=12);
        assert_eq!(skipped.iter().filter(|b| **b).count(), 2);
        assert!(!skipped[9] && skipped[10] && skipped[11]);
        // An edit of message 12 is withheld too.
        assert!(s.on_event(7, StreamId(12, 1), false, true));
        assert_eq!(s.summarized(), 1);
        // A connection focusing now hears of what it missed this second.
        let p = s.pending(7).unwrap();
        assert_eq!((p.new_messages, p.events, p.live), (2, 3, true));
        assert!(s.pending(8).is_none());

        // The tick sends one summary of what was withheld.
        let flushed = s.tick();
        assert_eq!(flushed.len(), 1);
        let f = &flushed[0].summary;
        assert_eq!((f.new_messages, f.events), (2, 3));
        assert_eq!((f.last_seq, f.last_event_id.as_str()), (12, "12-1"));
        assert!(!f.live, "12 messages in the window: still busy");

        // A busy second keeps it summarized from its first message on.
        assert!(messages(&mut s, 7, 13..=18).iter().all(|b| *b));
        let flushed = s.tick();
        assert_eq!(flushed[0].summary.new_messages, 6);
        assert!(!flushed[0].summary.live, "6 > 10/2");

        // A calm second (at most half the rate) ends summary mode with a
        // last summary, and the next message is delivered live.
        assert!(messages(&mut s, 7, 19..=20).iter().all(|b| *b));
        let flushed = s.tick();
        assert_eq!(flushed[0].summary.new_messages, 2);
        assert!(flushed[0].summary.live);
        assert_eq!(s.summarized(), 0);
        assert!(!s.on_event(7, StreamId(21, 0), true, true));
        assert!(s.pending(7).is_none(), "not summarized");
    }

    #[test]
    fn a_catch_up_burst_does_not_count_toward_the_rate() {
        let mut s = Summaries::new(3);
        let caught_up: Vec<bool> = (1..=50)
            .map(|seq| s.on_event(1, StreamId(seq, 0), true, false))
            .collect();
        assert!(caught_up.iter().all(|b| !*b));
        assert_eq!(s.summarized(), 0);
    }

    #[test]
    fn a_silent_second_ends_summary_mode_with_an_empty_live_summary() {
        let mut s = Summaries::new(4);
        messages(&mut s, 1, 1..=5);
        assert_eq!(s.tick()[0].summary.new_messages, 1);
        let flushed = s.tick();
        assert_eq!(flushed.len(), 1);
        let f = &flushed[0].summary;
        assert_eq!((f.new_messages, f.events, f.live), (0, 0, true));
        assert_eq!(f.last_seq, 5, "it still names the newest event");
        // Quiet chats are forgotten.
        assert!(s.tick().is_empty());
        assert!(s.chats.is_empty());
    }

    #[test]
    fn chats_are_counted_apart_and_zero_turns_it_off() {
        let mut s = Summaries::new(3);
        messages(&mut s, 1, 1..=3);
        messages(&mut s, 2, 1..=3);
        assert_eq!(s.summarized(), 0, "3 each, not 6 together");
        // The window is per tick: three more next second are fine too.
        s.tick();
        assert!(messages(&mut s, 1, 4..=6).iter().all(|b| !*b));

        let mut off = Summaries::new(0);
        assert!(messages(&mut off, 1, 1..=10_000).iter().all(|b| !*b));
        assert!(off.tick().is_empty());
    }
}
