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
//! A durable event's frame may carry a stamp in front of it ([`stamp`]):
//! `"@<commit ms>\n<frame>"`, or `"@<commit ms>/<accept ms>\n<frame>"`
//! when the event was caused by a write whose ingest entry is known. The
//! worker adds it when it publishes a committed chat event, so every
//! gateway can measure delivery latency from commit to socket write, and
//! count a chat's message rate on when its writes were accepted (summary
//! mode), which a backlog committed in one burst after a stall does not
//! distort. The stamp lives in the topic stream entry and the wake, never
//! in what a client receives: [`Wake::parse`] and `crate::topic::read`
//! take it off (JSON frames start with `{`, so a frame without a stamp
//! reads as before). Gateways read both shapes; a gateway from before the
//! accept time would hand the second shape to its clients, so gateways are
//! upgraded before workers (docs/architecture.md, Rolling upgrades).

use std::{fmt, str::FromStr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake<'a> {
    Event {
        prev: StreamId,
        id: StreamId,
        frame: &'a str,
        /// The entry's stamp, if it was stamped.
        stamp: Option<Stamp>,
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
        let (stamp, frame) = unstamp(frame);
        Some(Self::Event {
            prev: a.parse().ok()?,
            id: b.parse().ok()?,
            frame,
            stamp,
        })
    }
}

/// When a chat event was committed and, if known, when the write that
/// caused it was accepted (ms since the Unix epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The worker's clock at commit.
    pub committed_ms: u64,
    /// The time part of the write's ingest entry id (the clock of the
    /// Redis holding the chat's ingest shard).
    pub accepted_ms: Option<u64>,
}

impl Stamp {
    /// The time a chat's message rate is counted on: when the write was
    /// accepted, else when it committed.
    pub fn rate_ms(self) -> u64 {
        self.accepted_ms.unwrap_or(self.committed_ms)
    }
}

/// `frame` with a stamp in front (see the module docs).
pub fn stamp(stamp: Stamp, frame: &str) -> String {
    match stamp.accepted_ms {
        Some(accepted) => format!("@{}/{accepted}\n{frame}", stamp.committed_ms),
        None => format!("@{}\n{frame}", stamp.committed_ms),
    }
}

/// Splits an optional stamp off `text`: (stamp, frame).
pub fn unstamp(text: &str) -> (Option<Stamp>, &str) {
    let stamped = text
        .strip_prefix('@')
        .and_then(|rest| rest.split_once('\n'))
        .and_then(|(head, frame)| Some((parse_stamp(head)?, frame)));
    match stamped {
        Some((stamp, frame)) => (Some(stamp), frame),
        None => (None, text),
    }
}

/// `<commit ms>` or `<commit ms>/<accept ms>`.
fn parse_stamp(head: &str) -> Option<Stamp> {
    let (committed, accepted) = match head.split_once('/') {
        Some((c, a)) => (c, Some(a.parse().ok()?)),
        None => (head, None),
    };
    Some(Stamp {
        committed_ms: committed.parse().ok()?,
        accepted_ms: accepted,
    })
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
                stamp: None,
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
    fn stamps_are_taken_off_events() {
        let committed = Stamp {
            committed_ms: 1_700_000_000_123,
            accepted_ms: None,
        };
        let accepted = Stamp {
            accepted_ms: Some(1_700_000_000_001),
            ..committed
        };
        for s in [committed, accepted] {
            let text = format!("3-0 4-0\n{}", stamp(s, "{\"a\":1}"));
            assert_eq!(
                Wake::parse(&text),
                Some(Wake::Event {
                    prev: StreamId(3, 0),
                    id: StreamId(4, 0),
                    frame: "{\"a\":1}",
                    stamp: Some(s),
                })
            );
        }
        // The shape workers wrote before accept times still reads.
        assert_eq!(
            unstamp("@5\n{}"),
            (
                Some(Stamp {
                    committed_ms: 5,
                    accepted_ms: None
                }),
                "{}"
            )
        );
        assert_eq!(stamp(accepted, "{}"), "@1700000000123/1700000000001\n{}");
        assert_eq!(
            (committed.rate_ms(), accepted.rate_ms()),
            (1_700_000_000_123, 1_700_000_000_001)
        );
        assert_eq!(unstamp("{\"a\":1}"), (None, "{\"a\":1}"));
        // Not a stamp: left alone.
        for text in ["@x\n{}", "@12", "@1/\n{}", "@1/x\n{}", "@/2\n{}"] {
            assert_eq!(unstamp(text), (None, text), "{text:?}");
        }
    }
}
