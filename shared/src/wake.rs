//! Wake messages: what a Pub/Sub channel carries to gateways.
//!
//! Two shapes share one channel:
//! * `"<prev> <id>\n<frame>"` — a durable event just appended to a topic
//!   stream (written by `lua/topic_publish.lua`). `prev` is the id of the
//!   entry before it, so a gateway can tell whether it missed something.
//! * `"- <excludeUserId>\n<frame>"` — an ephemeral event (typing, receipts,
//!   badges) that exists nowhere else; `excludeUserId` (0: nobody) is the
//!   user who caused it and must not receive it.

use std::{fmt, str::FromStr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake<'a> {
    Event {
        prev: StreamId,
        id: StreamId,
        frame: &'a str,
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
        Some(Self::Event {
            prev: a.parse().ok()?,
            id: b.parse().ok()?,
            frame,
        })
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
                frame: "{\"x\":\"a\\nb\"}"
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
}
