//! Paging cursors of search results.
//!
//! A cursor is opaque to clients. It pins the first page's `as_of`
//! instant (so messages posted meanwhile cannot shift later pages and
//! recency scores stay comparable), carries where the previous page ended
//! and a fingerprint of the request, so a cursor replayed with another
//! query is refused instead of returning nonsense. PostgreSQL pages by
//! keyset (`score`, `id`), which stays fast however deep the page;
//! Meilisearch only offers offsets.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::{AppError, AppResult};

/// Where the previous page ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Position {
    /// The last hit's score and message id (results sort by both, descending).
    Keyset { score: f64, id: i64 },
    /// Hits already returned (backends without keyset paging).
    Offset(usize),
}

/// A decoded cursor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cursor {
    pub as_of: DateTime<Utc>,
    pub position: Position,
}

/// Identifies the request a cursor belongs to: scope, query text and chat.
pub fn fingerprint(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Cursor {
    /// The opaque text handed to the client.
    pub fn encode(&self, fingerprint: &str) -> String {
        let position = match self.position {
            Position::Keyset { score, id } => format!("k.{:x}.{id}", score.to_bits()),
            Position::Offset(n) => format!("o.{n}"),
        };
        let text = format!(
            "1.{fingerprint}.{}.{position}",
            self.as_of.timestamp_micros()
        );
        URL_SAFE_NO_PAD.encode(text)
    }

    /// Reads a cursor back; any malformed cursor, or one of another
    /// request, is a validation error.
    pub fn decode(text: &str, fingerprint: &str) -> AppResult<Self> {
        let invalid = || AppError::validation("invalid cursor");
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let parts: Vec<&str> = text.split('.').collect();
        let (version, print, micros, rest) = match parts.as_slice() {
            [v, f, t, rest @ ..] => (*v, *f, *t, rest),
            _ => return Err(invalid()),
        };
        if version != "1" {
            return Err(invalid());
        }
        if print != fingerprint {
            return Err(AppError::validation(
                "cursor belongs to another search; start again without it",
            ));
        }
        // A cursor is made from a past instant: anything outside 2000 ..
        // now + 1 day is not one of ours (and would overflow dates later).
        let as_of = micros
            .parse()
            .ok()
            .and_then(DateTime::<Utc>::from_timestamp_micros)
            .filter(|t| {
                t.timestamp() >= 946_684_800 && *t <= Utc::now() + chrono::Duration::days(1)
            })
            .ok_or_else(invalid)?;
        let position = match rest {
            ["k", bits, id] => Position::Keyset {
                score: f64::from_bits(u64::from_str_radix(bits, 16).map_err(|_| invalid())?),
                id: id.parse().map_err(|_| invalid())?,
            },
            ["o", n] => Position::Offset(n.parse().map_err(|_| invalid())?),
            _ => return Err(invalid()),
        };
        if let Position::Keyset { score, .. } = position {
            if !score.is_finite() {
                return Err(invalid());
            }
        }
        Ok(Self { as_of, position })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_exactly() {
        let as_of = DateTime::<Utc>::from_timestamp_micros(1_790_000_000_123_456).unwrap();
        let print = fingerprint(&["messages", "budget", ""]);
        for position in [
            Position::Keyset {
                score: 0.1 + 0.2,
                id: 42,
            },
            Position::Keyset { score: 0.0, id: 1 },
            Position::Offset(40),
        ] {
            let c = Cursor { as_of, position };
            let text = c.encode(&print);
            assert_eq!(Cursor::decode(&text, &print).unwrap(), c, "{text}");
        }
    }

    #[test]
    fn foreign_or_broken_cursors_are_refused() {
        let as_of = Utc::now();
        let c = Cursor {
            as_of,
            position: Position::Offset(1),
        };
        let text = c.encode(&fingerprint(&["messages", "a"]));
        let other = fingerprint(&["messages", "b"]);
        assert!(Cursor::decode(&text, &other).is_err());
        let print = fingerprint(&["messages", "a"]);
        let far = URL_SAFE_NO_PAD.encode(format!("1.{print}.9999999999999999.o.1"));
        let early = URL_SAFE_NO_PAD.encode(format!("1.{print}.-210866803200000001.o.1"));
        for bad in [
            "",
            "!!",
            "MS4",
            &URL_SAFE_NO_PAD.encode("1.x.1.k.zz.1"),
            &far,
            &early,
        ] {
            let e = Cursor::decode(bad, &print).unwrap_err();
            assert_eq!(e.code(), "validation_failed", "{bad}");
        }
        let now = Utc::now().timestamp_micros();
        let nan = URL_SAFE_NO_PAD.encode(format!("1.{print}.{now}.k.{:x}.1", f64::NAN.to_bits()));
        assert!(Cursor::decode(&nan, &print).is_err());
    }
}
