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
//! The rate is read from the times the events carry (their stamp,
//! `fechatter_shared::wake::Stamp::rate_ms`: when the pool accepted the
//! write, else when it committed), not from when this gateway gets to
//! them: a gateway busy fanning out a big channel processes fewer wakes a
//! second than the chat produces, and counting those would keep it from
//! ever noticing. Accept rather than commit times, so a backlog committed
//! at once after a stall of the write path is not taken for a burst. A
//! chat passes the rate when `SUMMARY_MODE_RATE` + 1 of its messages were
//! accepted within one second, or a quarter of that within 250 ms. A tick
//! is calm when no message of the chat arrived since the last one, or
//! when at most half the rate were accepted in the second before the
//! newest; three calm
//! ticks in a row end summary mode. Each gateway decides for its own
//! connections; every gateway sees the same events, so they agree to
//! within a tick. This module is the pure bookkeeping (windows,
//! transitions, counts), driven by the delivery task with explicit events
//! and ticks so it is tested without Redis or sockets;
//! [`crate::chat_delivery`] applies it to connections.

use std::collections::{HashMap, VecDeque};

use fechatter_shared::{protocol::ChatSummary, wake::StreamId};

/// Per-chat message rates and summary states of one gateway.
#[derive(Debug)]
pub struct Summaries {
    /// Messages per second (by accept time) above which a chat is
    /// summarized; 0: never.
    rate: u32,
    chats: HashMap<i64, ChatRate>,
}

/// The span of accept times over which rates are counted.
const SECOND_MS: u64 = 1_000;
/// The shorter span that catches a burst sooner: a quarter of the rate
/// (plus one) accepted within it also switches a chat, for rates of
/// [`QUARTER_FROM`] and more. A chat that bursts into a big channel must
/// switch before its first messages' fan-out pushes the pool over
/// `FANOUT_MAX_LAG_MS`, or back-pressure refuses the sends that would have
/// shown the rate (measured: at 216 messages/s into 5,000 members, the
/// one-second rule alone never switched in the `make bench` run).
const QUARTER_MS: u64 = 250;
const QUARTER_FROM: u32 = 8;
/// Calm ticks in a row before a chat leaves summary mode, so a chat whose
/// senders were held back for a moment by back-pressure does not flip to
/// live delivery and back.
const CALM_TICKS: u8 = 3;

#[derive(Debug, Default)]
struct ChatRate {
    /// Accept times (ms) of the chat's last `rate + 1` live messages.
    recent: VecDeque<u64>,
    /// Live messages since the last tick.
    since_tick: u32,
    /// Calm ticks in a row while summarized.
    calm_ticks: u8,
    /// Some while the chat is in summary mode.
    summary: Option<Withheld>,
}

impl ChatRate {
    /// Did the newest `n` messages were accepted within [`QUARTER_MS`]?
    fn burst(&self, n: usize) -> bool {
        let len = self.recent.len();
        n >= 2 && len >= n && self.recent[len - 1].saturating_sub(self.recent[len - n]) < QUARTER_MS
    }

    /// Messages accepted within the second before the newest one.
    fn last_second(&self) -> usize {
        let Some(&newest) = self.recent.back() else {
            return 0;
        };
        self.recent
            .iter()
            .filter(|&&t| t + SECOND_MS > newest)
            .count()
    }
}

/// What unfocused connections have not been sent since the last summary.
#[derive(Debug, Default, Clone, Copy)]
struct Withheld {
    messages: u64,
    events: u64,
    /// The newest event of the chat seen (delivered or withheld).
    last: Option<StreamId>,
}

impl Withheld {
    /// The summary of what was withheld, if the chat has had an event.
    fn summary(&self, chat: i64, live: bool) -> Option<ChatSummary> {
        let last = self.last?;
        Some(ChatSummary {
            chat_id: chat,
            new_messages: self.messages,
            events: self.events,
            last_seq: last.0 as i64,
            last_event_id: format!("{}-{}", last.0, last.1),
            live,
        })
    }
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
    /// became, summarized). Only messages of live wakes with a time
    /// (`live_at`, see the module docs; not a catch-up after a reconnect)
    /// count toward the rate.
    pub fn on_event(
        &mut self,
        chat: i64,
        id: StreamId,
        is_message: bool,
        live_at: Option<u64>,
    ) -> bool {
        if self.rate == 0 {
            return false;
        }
        let keep = self.rate as usize + 1;
        let c = self.chats.entry(chat).or_default();
        if let (true, Some(at)) = (is_message, live_at) {
            c.since_tick = c.since_tick.saturating_add(1);
            c.recent.push_back(at);
            if c.recent.len() > keep {
                c.recent.pop_front();
            }
        }
        let quarter = if self.rate >= QUARTER_FROM {
            self.rate as usize / 4 + 1
        } else {
            0
        };
        let over = (c.recent.len() == keep && c.last_second() == keep) || c.burst(quarter);
        if c.summary.is_none() && over {
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
    /// down). Chats without messages since the last tick and without
    /// summary state are forgotten.
    pub fn tick(&mut self) -> Vec<ChatSummary> {
        let calm = self.rate as usize / 2;
        let mut out = Vec::new();
        self.chats.retain(|&chat, c| {
            let quiet = std::mem::take(&mut c.since_tick) == 0;
            let busy = !quiet && c.last_second() > calm;
            let Some(w) = c.summary.as_mut() else {
                return !quiet;
            };
            c.calm_ticks = if busy { 0 } else { c.calm_ticks + 1 };
            let live = c.calm_ticks >= CALM_TICKS;
            if w.events > 0 || live {
                out.extend(w.summary(chat, live));
            }
            w.messages = 0;
            w.events = 0;
            if live {
                tracing::info!(chat, "chat left summary mode");
                c.summary = None;
                c.calm_ticks = 0;
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
        w.summary(chat, true).filter(|_| w.events > 0)
    }

    /// Chats in summary mode now.
    pub fn summarized(&self) -> usize {
        self.chats.values().filter(|c| c.summary.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages `seqs` of `chat` accepted `gap` ms apart from `start`.
    fn messages(
        s: &mut Summaries,
        chat: i64,
        seqs: std::ops::RangeInclusive<u64>,
        (start, gap): (u64, u64),
    ) -> Vec<bool> {
        let first = *seqs.start();
        seqs.map(|seq| {
            let at = start + (seq - first) * gap;
            s.on_event(chat, StreamId(seq, 0), true, Some(at))
        })
        .collect()
    }

    #[test]
    fn a_chat_over_the_rate_is_summarized_until_it_calms_down() {
        // Rate 4: the one-second rule alone (the quarter rule starts at 8).
        let mut s = Summaries::new(4);
        // Four messages within a second are delivered; the fifth is not.
        let skipped = messages(&mut s, 7, 1..=7, (0, 50));
        assert_eq!(skipped, [false, false, false, false, true, true, true]);
        // An edit of message 7 is withheld too.
        assert!(s.on_event(7, StreamId(7, 1), false, Some(310)));
        assert_eq!(s.summarized(), 1);
        // A connection focusing now hears of what it missed this second.
        let p = s.pending(7).unwrap();
        assert_eq!((p.new_messages, p.events, p.live), (3, 4, true));
        assert!(s.pending(8).is_none());

        // The tick sends one summary of what was withheld.
        let flushed = s.tick();
        assert_eq!(flushed.len(), 1);
        let f = &flushed[0];
        assert_eq!((f.new_messages, f.events), (3, 4));
        assert_eq!((f.last_seq, f.last_event_id.as_str()), (7, "7-1"));
        assert!(!f.live);

        // A busy second keeps it summarized from its first message on.
        assert!(messages(&mut s, 7, 8..=10, (1_000, 50)).iter().all(|b| *b));
        let flushed = s.tick();
        assert_eq!(flushed[0].new_messages, 3);
        assert!(!flushed[0].live, "3 in the last second > 4/2");

        // Three calm ticks in a row (at most half the rate, or nothing)
        // end summary mode with a last summary; the next message is live.
        assert!(messages(&mut s, 7, 11..=12, (2_500, 500))
            .iter()
            .all(|b| *b));
        let flushed = s.tick();
        assert_eq!(flushed[0].new_messages, 2);
        assert!(!flushed[0].live, "one calm tick is not enough");
        assert!(s.tick().is_empty(), "nothing withheld, still summarized");
        let flushed = s.tick();
        assert_eq!(flushed.len(), 1);
        assert!(flushed[0].live);
        assert_eq!(flushed[0].new_messages, 0);
        assert_eq!(s.summarized(), 0);
        assert!(!s.on_event(7, StreamId(13, 0), true, Some(5_000)));
        assert!(s.pending(7).is_none(), "not summarized");
    }

    #[test]
    fn a_quarter_second_at_the_rate_switches_sooner() {
        let mut s = Summaries::new(100);
        // 26 messages within 125 ms: a quarter of the rate plus one.
        let skipped = messages(&mut s, 1, 1..=26, (0, 5));
        assert_eq!(skipped.iter().filter(|b| **b).count(), 1);
        assert!(skipped[25]);
        // 25 within 250 ms, then a pause, is not a burst.
        let mut calm = Summaries::new(100);
        assert!(messages(&mut calm, 1, 1..=25, (0, 10)).iter().all(|b| !*b));
        assert!(!calm.on_event(1, StreamId(26, 0), true, Some(400)));
    }

    #[test]
    fn a_burst_processed_late_is_still_a_burst() {
        // A gateway busy fanning out gets to 200 messages accepted within
        // one second over several of its ticks: the stamped times decide.
        let mut s = Summaries::new(100);
        let mut skipped = 0;
        for part in 0..4u64 {
            let seqs = (part * 50 + 1)..=(part * 50 + 50);
            let from = part * 50 * 4;
            skipped += messages(&mut s, 1, seqs, (from, 4))
                .iter()
                .filter(|b| **b)
                .count();
            let flushed = s.tick();
            assert!(flushed.iter().all(|f| !f.live), "part {part}");
        }
        // 26 messages within 100 ms switched it.
        assert_eq!(skipped, 175);
    }

    #[test]
    fn a_catch_up_burst_does_not_count_toward_the_rate() {
        let mut s = Summaries::new(3);
        let caught_up: Vec<bool> = (1..=50)
            .map(|seq| s.on_event(1, StreamId(seq, 0), true, None))
            .collect();
        assert!(caught_up.iter().all(|b| !*b));
        assert_eq!(s.summarized(), 0);
    }

    #[test]
    fn silent_seconds_end_summary_mode_with_an_empty_live_summary() {
        let mut s = Summaries::new(4);
        messages(&mut s, 1, 1..=5, (0, 10));
        assert_eq!(s.tick()[0].new_messages, 1);
        assert!(s.tick().is_empty());
        assert!(s.tick().is_empty());
        let flushed = s.tick();
        assert_eq!(flushed.len(), 1);
        let f = &flushed[0];
        assert_eq!((f.new_messages, f.events, f.live), (0, 0, true));
        assert_eq!(f.last_seq, 5, "it still names the newest event");
        // Quiet chats are forgotten.
        assert!(s.tick().is_empty());
        assert!(s.chats.is_empty());
    }

    #[test]
    fn chats_are_counted_apart_and_zero_turns_it_off() {
        let mut s = Summaries::new(3);
        messages(&mut s, 1, 1..=3, (0, 10));
        messages(&mut s, 2, 1..=3, (0, 10));
        assert_eq!(s.summarized(), 0, "3 each, not 6 together");
        // Three more a second later are fine too.
        s.tick();
        assert!(messages(&mut s, 1, 4..=6, (1_500, 10)).iter().all(|b| !*b));

        let mut off = Summaries::new(0);
        assert!(messages(&mut off, 1, 1..=10_000, (0, 0))
            .iter()
            .all(|b| !*b));
        assert!(off.tick().is_empty());
    }
}
