//! Per-user event streams: one capped Redis Stream per user carrying every
//! event addressed to the user rather than to a chat (badges after read
//! marks and after the user's own sends, `membership.changed`,
//! `session.revoked`).
//!
//! Why a stream and not only Pub/Sub: a device that was offline (or a
//! gateway that missed a wake during a Redis blip) can read what it missed
//! instead of reloading everything. Publishing reuses
//! lua/user_publish.lua with Redis-assigned ids (`<ms>-<n>`): the wake on
//! the user's channel carries the previous entry id, so gateways detect
//! gaps exactly as for chat topics. The entry id is the event's
//! `userEventId`, written into the frame's payload on delivery
//! ([`with_event_id`]), and is the cursor a client gives to `sync.request`.
//!
//! Retention: [`MAX_LEN`] entries (approximately) and [`IDLE_TTL`];
//! a cursor older than what the stream still holds gets `tooLarge`.

use std::time::Duration;

use fred::prelude::*;

use crate::{redis::Keys, scripts, wake::StreamId};

/// Entries kept per user stream (trimmed approximately by Redis).
pub const MAX_LEN: u64 = 1000;
/// A user stream without a new event for this long expires.
pub const IDLE_TTL: Duration = Duration::from_secs(7 * 86_400);

/// Appends `frame` to `user`'s stream and wakes the gateways holding the
/// user's connections.
pub async fn publish(client: &Client, keys: &Keys, user: i64, frame: &str) -> Result<(), Error> {
    publish_all(client, keys, user, &[frame]).await
}

/// Appends `frames` to `user`'s stream in order, in one round trip, with
/// one wake per frame.
pub async fn publish_all(
    client: &Client,
    keys: &Keys,
    user: i64,
    frames: &[&str],
) -> Result<(), Error> {
    scripts::user_publish(
        client,
        &keys.user_stream(user),
        scripts::TopicRetention {
            max_len: MAX_LEN,
            idle_ttl_ms: IDLE_TTL.as_millis() as u64,
        },
        &keys.user_channel(user),
        frames,
    )
    .await?;
    Ok(())
}

/// The id of the user's newest event (`0-0` when there is none).
pub async fn head(client: &Client, keys: &Keys, user: i64) -> Result<StreamId, Error> {
    let reply: Value = client
        .xrevrange(keys.user_stream(user), "+", "-", Some(1))
        .await?;
    Ok(first_id(&reply).unwrap_or(StreamId::ZERO))
}

/// The id of the first entry of an `XRANGE`/`XREVRANGE` reply (any
/// stream), None when the reply holds none.
pub fn first_id(reply: &Value) -> Option<StreamId> {
    let Value::Array(items) = reply else {
        return None;
    };
    let Value::Array(entry) = items.first()? else {
        return None;
    };
    entry.first()?.as_str()?.parse().ok()
}

/// What a cursor can still be served from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// Events after the cursor (possibly none), oldest first, at most the
    /// count asked for.
    Events(Vec<(StreamId, String)>),
    /// The stream no longer holds everything after the cursor (trimmed or
    /// expired): reload instead.
    TooOld,
}

/// The user's events after `after`, at most `count`.
pub async fn read_after(
    client: &Client,
    keys: &Keys,
    user: i64,
    after: StreamId,
    count: u64,
) -> Result<Replay, Error> {
    let stream = keys.user_stream(user);
    // Every id a client can hold was an entry of this stream: a cursor
    // older than the oldest entry left (or any cursor once the stream has
    // expired) means entries after it may be gone.
    let oldest = crate::topic::read(client, &stream, "-", 1).await?;
    if after != StreamId::ZERO && oldest.first().is_none_or(|(first, _)| after < *first) {
        return Ok(Replay::TooOld);
    }
    let events = crate::topic::read(client, &stream, &format!("({after}"), count).await?;
    Ok(Replay::Events(events))
}

/// `frame` with `"userEventId":"<id>"` as the first field of its payload.
/// Server frames are serialized by this code base with `payload` as an
/// object; a frame without one is returned unchanged.
pub fn with_event_id(frame: &str, id: StreamId) -> String {
    const KEY: &str = "\"payload\":{";
    match frame.find(KEY) {
        Some(at) => {
            let split = at + KEY.len();
            let sep = if frame[split..].starts_with('}') {
                ""
            } else {
                ","
            };
            format!(
                "{}\"userEventId\":\"{id}\"{sep}{}",
                &frame[..split],
                &frame[split..]
            )
        }
        None => frame.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_id_goes_into_the_payload() {
        let f = crate::protocol::new_frame("notification.badge", &serde_json::json!({"chatId": 4}));
        let v: serde_json::Value =
            serde_json::from_str(&with_event_id(&f, StreamId(17, 2))).unwrap();
        assert_eq!(v["payload"]["userEventId"], "17-2");
        assert_eq!(v["payload"]["chatId"], 4);
        assert_eq!(v["type"], "notification.badge");
        let empty = crate::protocol::new_frame("x.y", &serde_json::json!({}));
        let v: serde_json::Value =
            serde_json::from_str(&with_event_id(&empty, StreamId(1, 0))).unwrap();
        assert_eq!(v["payload"]["userEventId"], "1-0");
        assert_eq!(with_event_id("{}", StreamId(1, 0)), "{}");
    }
}
