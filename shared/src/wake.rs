//! Wake messages: what a Pub/Sub channel carries to gateways.
//!
//! Two shapes share one channel:
//! * `"<prev> <id>\n<frame>"` — a durable event just appended to a topic
//!   stream (by `lua/chat_publish.lua` or `lua/user_publish.lua`). `prev`
//!   is the id of the entry before it, so a gateway can tell whether it
//!   missed something.
//! * `"- <excludeUserId>\n<frame>"` — an ephemeral event (typing, receipts,
//!   badges) that exists nowhere else; `excludeUserId` (0: nobody) is the
//!   user who caused it and must not receive it.
//!
//! A durable event's frame may carry a commit stamp in front of it,
//! `"@<commit ms>\n<frame>"` ([`stamp`]): the worker adds it when it
//! publishes a committed chat event, so every gateway can measure
//! delivery latency from commit to socket write. The stamp lives in the
//! topic stream entry and the wake, never in what a client receives:
//! [`Wake::parse`] and `crate::topic::read` take it off (JSON frames start
//! with `{`, so a frame without a stamp reads as before).

use std::{fmt, str::FromStr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake<'a> {
    Event {
        prev: StreamId,
        id: StreamId,
        frame: &'a str,
        /// When the worker committed the event (ms since the Unix epoch,
        /// the worker's clock), if the entry was stamped.
        committed_ms: Option<u64>,
    },
    Ephemeral {
        exclude: i64,
        frame: &'a str,
    },
}

impl<'a> Wake<'a> {
    pub fn parse(text: &'a str) -> Option<Self> {
        let (head, frame) = text.split_once('\n')?;
        let (a, b) = head.split_once(' ')?;
        if a == "-" {
            return Some(Self::Ephemeral {
                exclude: b.parse().ok()?,
                frame,
            });
        }
        let (committed_ms, frame) = unstamp(frame);
        Some(Self::Event {
            prev: a.parse().ok()?,
            id: b.parse().ok()?,
            frame,
            committed_ms,
        })
    }
}

/// `frame` with a commit stamp in front (see the module docs).
pub fn stamp(committed_ms: u64, frame: &str) -> String {
    format!("@{committed_ms}\n{frame}")
}

/// Splits an optional commit stamp off `text`: (commit ms, frame).
pub fn unstamp(text: &str) -> (Option<u64>, &str) {
    let stamped = text
        .strip_prefix('@')
        .and_then(|rest| rest.split_once('\n'))
        .and_then(|(ms, frame)| Some((ms.parse().ok()?, frame)));
    match stamped {
        Some((ms, frame)) => (Some(ms), frame),
        None => (None, text),
    }
}

/// Encodes an ephemeral wake.
pub fn ephemeral(exclude: i64, frame: &str) -> String {
    format!("- {exclude}\n{frame}")
}

/// A Redis stream entry id `<ms>-<seq>`; for chat topics `<seq>-<sub>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId(pub u64, pub u64);

impl StreamId {
    pub const ZERO: StreamId = StreamId(0, 0);
}

impl FromStr for StreamId {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (a, b) = s.split_once('-').ok_or(())?;
        Ok(Self(a.parse().map_err(|_| ())?, b.parse().map_err(|_| ())?))
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_shapes() {
        assert_eq!(
            Wake::parse("3-0 3-1\n{\"x\":\"a\\nb\"}"),
            Some(Wake::Event {
                prev: StreamId(3, 0),
                id: StreamId(3, 1),
                frame: "{\"x\":\"a\\nb\"}",
                committed_ms: None,
            })
        );
        let e = ephemeral(7, "{}");
        assert_eq!(
            Wake::parse(&e),
            Some(Wake::Ephemeral {
                exclude: 7,
                frame: "{}"
            })
        );
        assert_eq!(Wake::parse("junk"), None);
        assert!(StreamId(2, 0) > StreamId(1, 9));
        assert_eq!(StreamId(4, 2).to_string(), "4-2");
    }

    #[test]
    fn commit_stamps_are_taken_off_events() {
        let text = format!("3-0 4-0\n{}", stamp(1_700_000_000_123, "{\"a\":1}"));
        assert_eq!(
            Wake::parse(&text),
            Some(Wake::Event {
                prev: StreamId(3, 0),
                id: StreamId(4, 0),
                frame: "{\"a\":1}",
                committed_ms: Some(1_700_000_000_123),
            })
        );
        assert_eq!(unstamp("{\"a\":1}"), (None, "{\"a\":1}"));
        // Not a stamp: left alone.
        assert_eq!(unstamp("@x\n{}"), (None, "@x\n{}"));
        assert_eq!(unstamp("@12"), (None, "@12"));
    }
}
